"""A bridge that dies is started again (docs/design/bridge.md, "Restarts"): over
loopback, a killed bridge comes back as a new process, rejoins the site and
carries calls again, with the lifecycle events and log lines of a restart; one
that keeps dying gives up after the session's max_restarts, and the session
carries on without it. (The two-namespace version: tests/remote/test_bridge_recovery.py.)"""
from __future__ import annotations

import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bridge_driver import loopback_pair  # noqa: E402

pytest.importorskip("zenoh", reason="the bridge needs zenoh (pip install 'ether[remote]')")

SVC = "bridge_apps.DataService"


@pytest.fixture
def pair():
    """Two hosts over loopback (A connects, B listens): bridge_driver.loopback_pair."""
    yield from loopback_pair()


@pytest.mark.timeout(120)
def test_a_killed_bridge_is_restarted_rejoins_the_site_and_carries_calls(pair):
    make, bridge_a, bridge_b = pair
    b = make("B")
    b.tap({"instances": {"data_service": {"class_path": SVC, "kwargs": {"where": "B"}}},
           "bridge": bridge_b})
    b.call("record", name="events", topic="ether/log", envelopes=False)
    a = make("A")
    a.tap({"bridge": bridge_a})
    a.call("wait_proxy", name="data_service@hostB")
    old = b.call("bridge_pid")
    os.kill(old, signal.SIGKILL)   # B's bridge is the one that listens: its port is taken again
    back = b.call("wait_bridge_back", old_pid=old, timeout=30, wait=40)
    assert back["pid"] != old and back["restarts"] == 1
    answered = a.call("get_until", service="data_service@hostB", method="where_am_i", timeout=20,
                      wait=30)
    assert answered["result"]["where"] == "B"
    log = b.call("session_log")
    assert "the bridge exited (killed by SIGKILL)" in log and "restarting it in" in log, log
    assert "the bridge is back (restart 1)" in log, log
    events = [(e.get("event"), e.get("instance")) for e in b.call("recorded", name="events")
              if e.get("kind") == "event"]
    for event in ("exited", "restarting", "ready", "restarted"):
        assert (event, "bridge") in events, events


@pytest.mark.timeout(120)
def test_a_bridge_that_keeps_dying_gives_up_after_max_restarts_and_the_session_carries_on(pair):
    make, _, bridge_b = pair
    b = make("B")
    b.tap({"instances": {"data_service": {"class_path": SVC, "kwargs": {"where": "B"}}},
           "bridge": bridge_b, "supervision": {"max_restarts": 1, "backoff_s": 0.05}})
    first = b.call("bridge_pid")
    os.kill(first, signal.SIGKILL)
    second = b.call("wait_bridge_back", old_pid=first, timeout=30, wait=40)["pid"]
    os.kill(second, signal.SIGKILL)
    b.call("wait_log", text="It is marked failed", timeout=20, wait=30)
    log = b.call("session_log")
    assert ("the bridge exited (killed by SIGKILL); not restarted: restarted 1 time within 60 s "
            "already (max_restarts 1)") in log, log
    assert "bridge" not in [m[0] for m in b.call("members")]
    # The session carries on without it (on_failure: continue).
    assert b.call("get", service="data_service", method="where_am_i")["where"] == "B"
