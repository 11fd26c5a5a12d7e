"""``ether router`` on a third simulated host: two hosts that know only its address
(no multicast, no listener of their own) exchange puts and queries through it,
over mutual TLS, and it logs who linked; SIGTERM ends it cleanly
(research/remote.md §2a; the Quick Start through it is the bridge's test)."""
from __future__ import annotations

import sys

import pytest

from .agents import Agent, Watched
from .conftest import needs_netns
from .test_security import KEYS, _bridge, _security


@needs_netns
@pytest.mark.timeout(60)
def test_two_hosts_reach_each_other_only_through_the_router(hosts, site):
    good, _ = site
    net = hosts(3)
    A, B, C = net["A"], net["B"], net["C"]
    names = ["hostA", "hostB", "hostC"]
    router = Watched(A, [sys.executable, "-m", "ether", "router", "--site", "lab1",
                         "--listen", f"tls/{A.addr}:7447",
                         "--ca", str(good / "lab1-ca.pem"), "--cert", str(good / "hostA.pem"),
                         "--key", str(good / "hostA.key"),
                         *[a for n in names for a in ("--allow-host", n)]])
    assert router.wait_line(r"listening on tls/", 20), router.lines
    endpoint = [f"tls/{A.addr}:7447"]
    b = Agent(B, _bridge(connect=endpoint, security=_security(good, "hostB", allow_hosts=names)))
    c = Agent(C, _bridge(connect=endpoint, security=_security(good, "hostC", allow_hosts=names)))
    assert [p["cn"] for p in b.peers(10)] == ["hostA"]  # the router, and no one else
    assert [p["cn"] for p in c.peers(10)] == ["hostA"]
    assert router.wait_line(r"linked: \w+ \(hostB\)", 10), router.lines
    assert router.wait_line(r"linked: \w+ \(hostC\)", 10), router.lines

    b.sub(KEYS)
    c.call("queryable", key="ether/lab1/s/q", reply="pong from C")
    assert c.matches("ether/lab1/t/x", 10), "C never saw B's subscriber through the router"
    c.put("ether/lab1/t/x", "hello from C")
    assert b.wait_sample("hello from C", 10)
    assert b.get("ether/lab1/s/q") == ["pong from C"]

    b.close()
    assert router.wait_line(r"left: \w+ \(hostB\)", 10), router.lines
    assert router.close() == 0
    assert router.lines[-1].endswith("ether router: router closed\n"), router.lines
