"""The lease and reconnection settings of zenoh_config, at the zenoh level: a cut
link is noticed within the lease (plus 0.5 s), and once it is back the host that
connects out links again, by its retry schedule, and traffic flows (issue 11's
crash-and-recovery bounds; the bridge's own test adds its messages on top)."""
from __future__ import annotations

import time

import pytest

from .agents import Agent
from .conftest import needs_netns
from .test_security import KEYS, _bridge, _security

LEASE_S = 1.0


@needs_netns
@pytest.mark.timeout(60)
def test_a_cut_link_is_noticed_within_the_lease_and_traffic_comes_back(hosts, site):
    good, _ = site
    net = hosts(2)
    A, B = net["A"], net["B"]
    a = Agent(A, _bridge(listen=[f"tls/{A.addr}:7447"], lease_s=LEASE_S,
                         security=_security(good, "hostA")))
    b = Agent(B, _bridge(connect=[f"tls/{A.addr}:7447"], lease_s=LEASE_S,
                         security=_security(good, "hostB")))
    assert len(b.peers(10)) == 1
    a.sub(KEYS)
    assert b.matches("ether/lab1/t/x", 10)

    cut = time.time()  # the agents stamp their link events with the same clock
    A.link(False)
    for side in (b, a):
        peers, at = side.wait_peers(0, LEASE_S + 5)
        assert peers == [], f"{side.host.name} never noticed the cut"
        assert at - cut <= LEASE_S + 0.5, f"{side.host.name} noticed after {at - cut:.2f} s"

    back = time.time()
    A.link(True)
    peers, at = b.wait_peers(1, 10)
    assert len(peers) == 1, "B never linked to A again"
    assert at - back <= 10, f"B linked again {at - back:.2f} s after the link came up"
    assert b.matches("ether/lab1/t/x", 10)
    b.put("ether/lab1/t/x", "after the cut")
    assert a.wait_sample("after the cut", 5)
