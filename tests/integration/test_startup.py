"""Start-up: a dying instance says why, limits are checked at tap, a small
/dev/shm is reported up front, and every start method runs without a main guard."""
from __future__ import annotations

import errno
import os
import pathlib
import re

import pytest

import ether as ether_pkg
from ether import ether
from ether._core import _segment

from conftest import shm_objects

MAIN_PID = os.getpid()


def _in_instances(fault):
    """`fault`, in the forked instances only; the original in this (the main) process."""
    def pick(original):
        def call(*args, **kwargs):
            if os.getpid() != MAIN_PID:
                return fault(original, *args, **kwargs)
            return original(*args, **kwargs)
        return call
    return pick


def _no_room(original, required, what):
    raise ether_pkg.ShmSpaceError(
        errno.ENOSPC, f"{what} needs {required} bytes of shared memory but /dev/shm has only "
        f"1048576 available")


def _no_producer_slot(original, session, name, *args):
    if name == "main":
        raise ether_pkg.TooManyProducers(f"inbox 'main' of session {session.name!r}: all 64 "
                                         f"producer slots are held by live senders")
    return original(session, name, *args)


def _no_descriptors(original, name):
    raise OSError(errno.EMFILE, "Too many open files")


def _patch_function(monkeypatch, module, name, fault):
    monkeypatch.setattr(module, name, _in_instances(fault)(getattr(module, name)))


def _patch_classmethod(monkeypatch, cls, name, fault):
    original = getattr(cls, name)  # bound to cls
    call = _in_instances(fault)(original)
    monkeypatch.setattr(cls, name, classmethod(lambda _cls, *a, **kw: call(*a, **kw)))


@pytest.mark.parametrize("cause, expected", [
    ("no room in /dev/shm",
     r"ShmSpaceError: \[Errno 28\] inbox 'a' of session '\w+' needs \d+ bytes of shared memory"),
    ("too many producers", r"TooManyProducers: inbox 'main' of session '\w+': all 64 producer slots"),
    ("out of descriptors", r"OSError: \[Errno 24\] Too many open files"),
])
def test_an_instance_that_dies_at_start_up_gives_its_cause_and_its_log(cause, expected, monkeypatch,
                                                                      tmp_path):
    from ether._core._sender import Sender
    from ether._core._session import Session
    if cause == "no room in /dev/shm":
        _patch_function(monkeypatch, _segment, "check_space", _no_room)
    elif cause == "too many producers":
        _patch_classmethod(monkeypatch, Sender, "_connect", _no_producer_slot)
    else:
        _patch_classmethod(monkeypatch, Session, "open", _no_descriptors)
    monkeypatch.setenv("ETHER_LOG_DIR", str(tmp_path))
    with pytest.raises(ether_pkg.EtherError) as info:
        ether.tap(config={"instances": {"a": {"class_path": "apps.Doubler"}}})
    message = str(info.value)
    assert message.startswith("instance 'a' failed to start: "), message
    assert re.search(expected, message), message
    log = re.search(rf"({re.escape(str(tmp_path))}/(\w+)/a\.log)", message)
    assert log, message  # where the whole story is
    text = pathlib.Path(log.group(1)).read_text()
    assert "Traceback" in text and re.search(expected, text), text
    assert "see its log" not in message
    assert ether.session is None
    assert shm_objects(log.group(2)) == []


def test_a_constructor_error_gives_the_cause_in_one_line_and_the_traceback_in_the_log(monkeypatch,
                                                                                     tmp_path):
    monkeypatch.setenv("ETHER_LOG_DIR", str(tmp_path))
    earlier = set(_children())  # of other tests' fixtures
    with pytest.raises(ether_pkg.EtherError) as info:
        ether.tap(config={"instances": {"a": {"class_path": "apps.Exploding"}}})
    message = str(info.value)
    first, *rest = message.splitlines()
    assert re.fullmatch(r"instance 'a' failed to start: ValueError: constructor refused: boom "
                        r"\(traceback in (/\S+/a\.log)\)", first), message
    log = re.search(r"\(traceback in (/\S+/a\.log)\)", first).group(1)
    assert "Traceback" not in message
    assert "Traceback" in pathlib.Path(log).read_text()
    # Every child of the failed tap is gone and reaped (the provenance child too,
    # forked before the instances and read only once they are up).
    left = [c for c in _children() if c not in earlier]
    assert left == [], left


def _children() -> list[str]:
    """This process's child processes (zombies included), as 'pid state'."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = pathlib.Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid():
                found.append(f"{entry} {fields[0]}")
    return found


# ---- limits ----

def test_a_hundred_and_fifty_instances_start_talk_and_stop(monkeypatch):
    # More than 128: each sends to the main through two lanes (two producer slots),
    # more than a fixed 256-slot inbox takes.
    monkeypatch.setenv("ETHER_MAX_MESSAGE_BYTES", str(64 << 10))  # small inboxes: a fast test
    count = 150
    ether.tap(config={"instances": {f"t{i}": {"class_path": "runtime_apps.Trivial"}
                                    for i in range(count)}})
    sid = ether.session
    try:
        with ether.listen("pong-all", timeout=30) as pongs:
            assert ether.pub({"n": 1}, topic="ping-all") == count
            pids = {next(pongs)["pid"] for _ in range(count)}
        assert len(pids) == count and os.getpid() not in pids
    finally:
        ether.shutdown()
    assert shm_objects(sid) == []


def test_more_instances_than_a_session_holds_fail_at_tap_naming_the_limit():
    try:
        with pytest.raises(ether_pkg.ConfigError,
                           match=r"the config has 300 instances; a session holds at most \d+") as info:
            ether.tap(config={"instances": {f"t{i}": {"class_path": "runtime_apps.Trivial"}
                                            for i in range(300)}})
        assert "split" in str(info.value)
        assert ether.session is None
    finally:
        ether.shutdown()


# ---- a small /dev/shm ----

MiB = 1 << 20


def test_a_small_dev_shm_is_reported_at_tap_with_the_sizes_and_the_fix(monkeypatch, capfd):
    monkeypatch.setattr(_segment, "free_bytes", lambda: 64 * MiB)  # a container's default
    ether.tap(config={"instances": {"echo": {"class_path": "apps.ArrayEcho"},
                                    "d": {"class_path": "apps.Doubler"}}})
    sid = ether.session
    ether.shutdown()
    assert shm_objects(sid) == []
    err = capfd.readouterr().err
    warning = next((line for line in err.splitlines() if "WARNING" in line and "/dev/shm" in line), "")
    assert "64 MiB free" in warning, err
    assert re.search(r"3 inboxes of \d+ MiB", warning), warning
    assert re.search(r"arena of 16 MiB", warning), warning
    assert "--shm-size" in warning and "ETHER_ARENA_BYTES" in warning


def test_a_dev_shm_too_small_for_the_inboxes_fails_at_tap(monkeypatch):
    monkeypatch.setattr(_segment, "free_bytes", lambda: 12 * MiB)
    try:
        with pytest.raises(ether_pkg.ShmSpaceError,
                           match=r"3 inboxes of \d+ MiB.*12 MiB free.*--shm-size"):
            ether.tap(config={"instances": {"echo": {"class_path": "apps.ArrayEcho"},
                                            "d": {"class_path": "apps.Doubler"}}})
        assert ether.session is None
    finally:
        ether.shutdown()
