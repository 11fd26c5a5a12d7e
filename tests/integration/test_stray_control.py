"""Stray and malformed control records, written straight into the inboxes of a
running session, are logged and ignored: the instances keep serving and
ether.shutdown() runs every phase, completes and leaves nothing behind."""
from __future__ import annotations

import time

import msgspec

from ether import ether
from ether.lowlevel import Session
from ether._runtime._control import InstanceState

from conftest import shm_objects, wait_for

CONTROL = 1  # the envelope kind of control messages (_node/_codec.py)


def record(topic: str, sender: str, payload) -> bytes:
    """A control envelope built by hand, as any process of the session could."""
    return msgspec.msgpack.encode(
        [1, CONTROL, topic, sender, 1, time.time_ns(), None, None, [bytes(16), "stray"], payload])


def test_stray_control_records_neither_break_shutdown_nor_leave_anything(capfd, tmp_path):
    life = tmp_path / "life.txt"
    ether.tap(config={"instances": {
        "doubler": {"class_path": "apps.Doubler"},
        "rec": {"class_path": "apps.Recorder", "kwargs": {"path": str(life)}}}})
    sid = ether.session
    supervisor = ether._supervisor
    try:
        with Session.open(sid) as session:
            with session.connect("main") as main:
                for data in (
                    b"not an envelope",
                    record("bogus", "doubler", {}),
                    record("failed", "doubler", {"instance": "doubler"}),
                    record("failed", "intruder", {"instance": "doubler", "error": "x"}),
                    record("failed", "doubler", {"instance": "doubler", "error": "Error: late"}),
                    record("drain-ack", "doubler", {"instance": "doubler", "request": 999,
                                                    "published": 0, "handled": 0}),
                    record("ready", "doubler", {"instance": "doubler", "pid": 1}),
                    record("phase-ack", "doubler", ["doubler", 1, []]),
                    record("drain", "doubler", {"request": 1}),
                ):
                    assert main.send(data)
            with session.connect("doubler") as doubler:
                for data in (
                    record("stop", "intruder", {}),
                    record("phase", "main", {"request": 1, "phase": "reboot"}),
                    record("drain-ack", "main", {}),
                ):
                    assert doubler.send(data)
        # Queued behind those records: the doubler has read them all and still serves.
        with ether.listen("doubled", timeout=10) as doubled:
            ether.pub({"x": 4}, topic="numbers")
            assert next(doubled)["x"] == 8
        assert supervisor.states() == {"doubler": InstanceState.READY, "rec": InstanceState.READY}
    finally:
        ether.shutdown()  # reads the main inbox's strays while it drains
    assert supervisor.states() == {"doubler": InstanceState.STOPPED, "rec": InstanceState.STOPPED}
    assert life.read_text().split() == ["init", "save_all", "cleanup", "shutdown"]
    assert shm_objects(sid) == []
    err = capfd.readouterr().err
    for line in (
        "main: dropped a malformed message: not an Ether envelope",
        "main: ignored a control message 'bogus' from 'doubler': unknown type",
        "main: ignored a control message 'failed' from 'doubler': "
        "Object missing required field `error`",
        "main: ignored a control message 'failed' from 'intruder': "
        "it claims to come from 'doubler'",
        "main: ignored a control message 'failed' from 'doubler': "
        "the instance is ready, not starting",
        "main: ignored a control message 'drain-ack' from 'doubler': "
        "nobody waits for it (request 999)",
        "main: ignored a control message 'ready' from 'doubler': the instance is ready",
        "main: ignored a control message 'phase-ack' from 'doubler': "
        "Expected `object`, got `array`",
        "main: ignored a control message 'drain' from 'doubler': not expected here",
        "instance 'doubler': ignored a control message 'stop' from 'intruder': "
        "only 'main' sends these",
        "instance 'doubler': ignored a control message 'phase' from 'main': "
        "Invalid enum value 'reboot' - at `$.phase`",
        "instance 'doubler': ignored a control message 'drain-ack' from 'main': "
        "not expected here",
    ):
        assert err.count(line) == 1, (line, err)
    assert "Ether system shutdown complete" in err
    assert "Traceback" not in err


def test_an_instance_that_dies_after_ready_is_exited_and_shutdown_completes():
    ether.tap(config={"instances": {"doubler": {"class_path": "apps.Doubler"},
                                    "other": {"class_path": "apps.Doubler"}}})
    sid = ether.session
    supervisor = ether._supervisor
    try:
        process = supervisor.processes["doubler"]
        process.kill()
        # The exit watcher signals nothing a test can wait on: poll its result.
        assert wait_for(lambda: supervisor.states()["doubler"] is InstanceState.EXITED, 10)
        assert supervisor.states()["other"] is InstanceState.READY
    finally:
        ether.shutdown()
    assert supervisor.states() == {"doubler": InstanceState.EXITED, "other": InstanceState.STOPPED}
    assert shm_objects(sid) == []
