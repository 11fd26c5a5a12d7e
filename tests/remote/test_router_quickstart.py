"""The Quick Start through `ether router` (issue 11, tests 9): with `discovery:
none`, hosts A and B know only the address of a router on a third simulated host
C and connect to it over mutual TLS; the generator on A, the processors and the
collector on B give the one-host output, with lineage naming `generator1@hostA`.
Real Ether sessions on A and B (tests/bridge_host.py under `ip netns exec`)."""
from __future__ import annotations

import sys

import pytest

from .agents import Watched
from .conftest import needs_netns
from .test_across import COLL, GEN, PROC, Driver, _driver
from .test_bridge_recovery import PORT, _bridge

pytest.importorskip("zenoh", reason="the bridge needs zenoh (pip install 'ether[remote]')")

NAMES = ["hostA", "hostB", "hostC"]


@needs_netns
@pytest.mark.timeout(180)
def test_quick_start_across_two_hosts_through_a_router_on_a_third(hosts, site):
    good, _ = site
    net = hosts(3)
    A, B, C = net["A"], net["B"], net["C"]
    router = Watched(C, [sys.executable, "-m", "ether", "router", "--site", "lab1",
                         "--listen", f"tls/{C.addr}:{PORT}",
                         "--ca", str(good / "lab1-ca.pem"), "--cert", str(good / "hostC.pem"),
                         "--key", str(good / "hostC.key"),
                         *[a for n in NAMES for a in ("--allow-host", n)]])
    assert router.wait_line(r"listening on tls/", 20), router.lines
    via_router = {"connect": [f"tls/{C.addr}:{PORT}"]}
    drivers: list[Driver] = []
    try:
        b = _driver(B, drivers)
        b.tap({"instances": {"processor2x": {"class_path": PROC, "kwargs": {"multiplier": 2}},
                             "processor4x": {"class_path": PROC, "kwargs": {"multiplier": 4}},
                             "collector1": {"class_path": COLL}},
               "bridge": _bridge(good, "hostB", **via_router)})
        b.call("record", name="results", topic="result", envelopes=True)
        b.call("record", name="values", topic="result")
        a = _driver(A, drivers)
        a.tap({"instances": {"generator1": {"class_path": GEN}},
               "bridge": _bridge(good, "hostA", **via_router)})
        assert router.wait_line(r"linked: \w+ \(hostA\)", 20), router.lines
        assert router.wait_line(r"linked: \w+ \(hostB\)", 20), router.lines
        a.call("wait_remote_interest", topic="data", wait=60)
        a.call("start")
        values = b.call("recorded", name="values", count=2, timeout=30, wait=60)
        envelopes = b.call("recorded", name="results", count=2, timeout=30, wait=60)
        assert sorted(v["result"] for v in values) == [84, 168]   # as on one host
        assert {e["cause"][0] for e in envelopes} == {"generator1@hostA"}
        assert {e["trace"][0] for e in envelopes} == {"main@hostA"}
        assert set(a.call("site")["hosts"]) == {"hostA", "hostB"}   # the router is no host
    finally:
        for driver in reversed(drivers):
            driver.close()
