"""Interpreters started ahead (ether/_runtime/_prestart.py): taking and
discarding them, and a bridge's interpreter that is never given a spec ending
quietly."""
import os
import subprocess
import sys

import pytest

import ether
from ether import ConfigError
from ether._runtime import _prestart
from ether.lowlevel import Member

BLOCKS_ON_STDIN = _prestart.BRIDGE   # waits for its spec on stdin, and ends quietly without one


@pytest.fixture(autouse=True)
def nothing_left():
    yield
    left = dict(_prestart._waiting)
    _prestart.discard()
    assert left == {}, f"left started ahead: {left}"


def test_take_gives_the_interpreter_once_and_discard_kills_what_is_left():
    _prestart.start(BLOCKS_ON_STDIN)
    _prestart.start(BLOCKS_ON_STDIN)   # one per module
    process = _prestart.take(BLOCKS_ON_STDIN)
    assert process is not None and process.poll() is None
    assert _prestart.take(BLOCKS_ON_STDIN) is None
    process.stdin.close()
    assert process.wait(30) == 0
    _prestart.start(BLOCKS_ON_STDIN)
    waiting = _prestart._waiting[BLOCKS_ON_STDIN]
    _prestart.discard()
    assert waiting.returncode is not None and waiting.returncode < 0   # killed, and reaped


def test_a_dead_one_is_not_taken():
    _prestart.start(BLOCKS_ON_STDIN)
    waiting = _prestart._waiting[BLOCKS_ON_STDIN]
    waiting.kill()
    waiting.wait(30)
    assert _prestart.take(BLOCKS_ON_STDIN) is None


def test_a_member_given_no_spec_exits_quietly():
    done = subprocess.run([sys.executable, "-c", "from ether.lowlevel import Member; "
                           "Member.from_stdin()"], stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, b"")
    assert Member  # the public name


def test_a_bridge_started_ahead_and_not_needed_exits_quietly():
    done = subprocess.run([sys.executable, "-m", "ether.bridge", "prestarted"],
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, b"")


def test_a_tap_that_fails_kills_the_bridge_it_started_ahead(monkeypatch):
    started = []
    real = _prestart.start
    monkeypatch.setattr(_prestart, "start", lambda module: (real(module),
                                                            started.append(_prestart._waiting[module])))
    with pytest.raises(ConfigError):
        ether.ether.tap(config={"bridge": {}, "instances": {
            "x": {"class_path": "no_such_module_here.Thing"}}})
    assert ether.ether.session is None
    assert started, "the bridge's interpreter was not started ahead"
    assert all(p.returncode is not None for p in started)   # killed and reaped
