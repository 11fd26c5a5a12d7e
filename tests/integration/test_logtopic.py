"""System-wide logging (src/ether/_runtime/_logtopic.py): an instance's records at
WARNING and above reach the main's session.log and the reserved topic ether/log;
the session's lifecycle events (an instance's death, with its cause) travel there
too."""
import os
import signal

import pytest

from conftest import shm_objects, wait_for
from ether import ether
from ether.lowlevel import inspect


@pytest.mark.timeout(60)
def test_an_instances_error_reaches_session_log_and_ether_log(tmp_path, monkeypatch):
    monkeypatch.setenv("ETHER_LOG_DIR", str(tmp_path))
    ether.tap(config={"instances": {"doubler": {"class_path": "apps.Doubler"}}})
    sid = ether.session
    try:
        with ether.listen("ether/log", timeout=20) as logs, \
                ether.listen("doubled", timeout=20) as doubled:
            ether.pub({"x": 13}, topic="numbers")       # the handler raises
            ether.pub({"x": 2}, topic="numbers")
            assert next(doubled)["x"] == 4               # it kept serving
            # the lifecycle events of the tap ("started", "ready") may come first
            record = next(r for r in logs if r.get("kind") == "record")
        assert record["instance"] == "doubler"
        assert record["level"] == "ERROR" and "unlucky number" in record["message"]
        pid = next(m.pid for m in inspect(sid).members if m.name == "doubler")
        assert record["pid"] == pid
    finally:
        ether.shutdown()
    text = (tmp_path / sid / "session.log").read_text()
    line = next(l for l in text.splitlines() if "[doubler]" in l)
    assert "ERROR" in line and "the handler raised" in line
    assert "unlucky number" in text          # the traceback came along
    assert shm_objects(sid) == []


@pytest.mark.timeout(60)
def test_a_killed_instance_is_an_exited_event_with_its_cause():
    ether.tap(config={"instances": {"doubler": {"class_path": "apps.Doubler"},
                                    "other": {"class_path": "apps.Doubler",
                                              "kwargs": {"ether_name": "other"}}}})
    sid = ether.session
    try:
        pid = next(m.pid for m in inspect(sid).members if m.name == "doubler")
        with ether.listen("ether/log", timeout=20) as logs:
            os.kill(pid, signal.SIGKILL)
            event = next(e for e in logs if e.get("kind") == "event")
        assert event["event"] == "exited" and event["instance"] == "doubler"
        assert event["pid"] == pid and event["cause"] == "killed by SIGKILL"
        assert wait_for(lambda: "doubler" not in [m.name for m in inspect(sid).members], 5) is not None
    finally:
        ether.shutdown()
    assert shm_objects(sid) == []
