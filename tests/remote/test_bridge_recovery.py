"""Crash and recovery of the bridge across two simulated hosts (issue 11, tests 5),
with real Ether sessions on each host (tests/bridge_host.py under `ip netns
exec`, as test_across.py runs them), over mutual TLS. A listens on its address
and B connects to it, so a restarted B dials out at once.

- `kill -9` of B's bridge with 10 requests in flight from A: all fail with
  ServiceGone within 0.5 s; B's supervisor starts the bridge again, and within
  1 s of its Ready a request from A is answered and a topic message from A
  delivered on B.
- A's link down for 5 s, with a lease of 1 s: A's pending calls fail with
  ServiceGone within the lease + 0.5 s; within 10 s of the link coming up calls
  and a stream of B's messages flow again, and no message came twice (their
  seq only grows).
"""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from .conftest import needs_netns
from .test_across import Driver, _driver

pytest.importorskip("zenoh", reason="the bridge needs zenoh (pip install 'ether[remote]')")

SVC = "bridge_apps.DataService"
PORT = 7447
LEASE_S = 1.0


def _bridge(certs, name: str, **section) -> dict:
    return {"site": "lab1", "host": name, "discovery": "none",
            "security": {"ca": str(certs / "lab1-ca.pem"), "cert": str(certs / f"{name}.pem"),
                         "key": str(certs / f"{name}.key")}, **section}


def _linked_pair(net, certs, drivers: list, **section) -> tuple[Driver, Driver]:
    """A listens on its address (nothing runs there); B connects and runs `busy`
    (for calls left in flight) and `data_service` (for calls after the trouble)."""
    endpoint = f"tls/{net['A'].addr}:{PORT}"
    a = _driver(net["A"], drivers)
    a.tap({"bridge": _bridge(certs, "hostA", listen=[endpoint], **section)})
    b = _driver(net["B"], drivers)
    b.tap({"instances": {"busy": {"class_path": SVC, "kwargs": {"where": "B"}},
                         "data_service": {"class_path": SVC, "kwargs": {"where": "B"}}},
           "bridge": _bridge(certs, "hostB", connect=[endpoint], **section),
           "shutdown_timeout_s": 2})   # B stops waiting for the calls it still holds
    a.call("wait_proxy", name="data_service@hostB", wait=60)
    a.call("wait_proxy", name="busy@hostB", wait=60)
    return a, b


@needs_netns
@pytest.mark.timeout(150)
def test_kill_9_of_a_bridge_fails_calls_in_flight_at_once_and_its_restart_carries_traffic(
        hosts, site):
    good, _ = site
    net = hosts(2)
    drivers: list[Driver] = []
    try:
        a, b = _linked_pair(net, good, drivers)
        b.call("record", name="pings", topic="ping")
        old = b.call("bridge_pid")
        ids = a.call("many_later", service="busy", method="slow", params={"seconds": 1},
                     count=10, timeout=20)
        killed_at = a.call("now")
        os.kill(old, signal.SIGKILL)   # the hosts share the machine's pid namespace
        results = a.call("collect_all", ids=ids, timeout=20, wait=60)
        assert [r.get("error") for r in results] == ["ServiceGone"] * 10, results
        assert max(r["at"] for r in results) - killed_at < 0.5, results
        print(f"kill -9: calls failed after {max(r['at'] for r in results) - killed_at:.3f} s")

        back = b.call("wait_bridge_back", old_pid=old, timeout=40, wait=60)
        assert back["restarts"] == 1
        answered = a.call("get_until", service="data_service@hostB", method="where_am_i",
                          timeout=10, wait=30)
        assert answered["result"]["where"] == "B"
        assert answered["at"] - back["at"] <= 1.0, (answered, back)
        a.call("pub_when_wanted", topic="ping", data={"n": 1}, timeout=10, wait=30)
        assert [m["n"] for m in b.call("recorded", name="pings", count=1, timeout=10)] == [1]
        arrived = b.call("arrivals", name="pings")[0]
        assert arrived - back["at"] <= 1.0, (arrived, back)
        print(f"restart: answered {answered['at'] - back['at']:.3f} s, delivered "
              f"{arrived - back['at']:.3f} s after the new bridge was ready")
    finally:
        for driver in reversed(drivers):
            driver.close()


@needs_netns
@pytest.mark.timeout(150)
def test_a_link_down_for_5_s_is_noticed_within_the_lease_and_traffic_resumes_without_duplicates(
        hosts, site):
    good, _ = site
    net = hosts(2)
    drivers: list[Driver] = []
    try:
        a, b = _linked_pair(net, good, drivers, lease_s=LEASE_S)
        a.call("record", name="ticks", topic="ticks", policy="drop", envelopes=True)
        b.call("wait_remote_interest", topic="ticks", wait=30)
        b.call("stream", topic="ticks", hz=50)
        a.call("recorded", name="ticks", count=5, timeout=10, wait=30)
        ids = a.call("many_later", service="busy", method="slow", params={"seconds": 1},
                     count=3, timeout=60)

        cut = time.monotonic()
        net["A"].link(False)
        results = a.call("collect_all", ids=ids, timeout=20, wait=60)
        assert [r.get("error") for r in results] == ["ServiceGone"] * 3, results
        noticed = max(r["at"] for r in results) - cut
        assert noticed <= LEASE_S + 0.5, f"the cut was noticed after {noticed:.2f} s"
        a.call("wait_host", host="hostB", present=False, timeout=5)
        threading.Event().wait(max(0.0, cut + 5.0 - time.monotonic()))  # the outage lasts 5 s
        before = len(a.call("recorded", name="ticks"))

        up = time.monotonic()
        net["A"].link(True)
        answered = a.call("get_until", service="data_service@hostB", method="where_am_i",
                          timeout=10, wait=30)
        assert answered["at"] - up <= 10.0, answered
        ticks = a.call("recorded", name="ticks", count=before + 5, timeout=10, wait=30)
        arrivals = a.call("arrivals", name="ticks")
        assert arrivals[before] - up <= 10.0, (arrivals[before], up)
        stream = b.call("stop_stream", topic="ticks")
        assert stream["sent"] > 0

        seqs = [t["seq"] for t in ticks]
        assert all(t["sender"] == "main@hostB" for t in ticks), {t["sender"] for t in ticks}
        assert seqs == sorted(set(seqs)), "a message came twice, or out of order"
        assert a.call("bridge_statistics")["inbound"]["duplicates"] == 0
        print(f"link: cut noticed after {noticed:.3f} s; back: answered "
              f"{answered['at'] - up:.3f} s, a tick {arrivals[before] - up:.3f} s after it came up")
    finally:
        for driver in reversed(drivers):
            driver.close()
