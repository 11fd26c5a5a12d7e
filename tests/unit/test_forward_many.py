"""Node.forward_many: a bridge's batch of one topic, each message encoded once and
sent to every subscriber in one batch, keeping its sender, seq, time, cause,
trace and origin; drop-policy refusals counted; the skipped inbox left out."""
from __future__ import annotations

import msgspec
import pytest

from ether.lowlevel import MESSAGE, MessageId, Node, Origin

ORIGIN = Origin(b"r" * 16, "hostA")


def _messages(n: int, start: int = 0) -> list[tuple]:
    return [(MESSAGE, "gen@hostA", i, 1000 + i, MessageId("p@hostA", i, None), None, ORIGIN,
             msgspec.Raw(msgspec.msgpack.encode({"i": i})))
            for i in range(start, start + n)]


def _drain(node: Node) -> None:
    while node.backlog():
        node.pump(0.1)


@pytest.mark.timeout(20)
def test_a_batch_reaches_every_subscriber_in_order_with_its_lineage(session):
    bridge, keep, other = Node(session, "bridge"), Node(session, "keep"), Node(session, "other")
    got = {"keep": [], "other": []}
    try:
        keep.add_handler("t", got["keep"].append, policy="block")
        other.add_handler("t", got["other"].append, policy="block")
        bridge.add_handler("t", lambda e: None)   # its own subscription: skipped
        assert bridge.forward_many("t", _messages(50), skip="bridge") == 100
        assert bridge.forward_many("nobody", _messages(3), skip="bridge") == 0
        for node in (keep, other):
            with node._consumer:
                _drain(node)
        assert bridge.backlog() == 0
        for envs in got.values():
            assert [e.seq for e in envs] == list(range(50))
            e = envs[7]
            assert (e.sender, e.time_ns, e.cause, e.origin) == (
                "gen@hostA", 1007, MessageId("p@hostA", 7, None), ORIGIN)
            assert msgspec.msgpack.decode(e.payload) == {"i": 7}
    finally:
        for node in (bridge, keep, other):
            node.close()


@pytest.mark.timeout(20)
def test_what_a_full_drop_subscriber_refuses_is_counted_per_topic(session):
    bridge, lossy = Node(session, "bridge"), Node(session, "lossy", max_length=256)
    try:
        lossy.add_handler("t", lambda e: None, policy="drop")
        sent = 0
        for k in range(1000):   # never read: the 4 MiB inbox fills, then refuses
            sent += bridge.forward_many("t", _messages(100, 100 * k))
        dropped = bridge.drops.counts["lossy"]["t"]
        assert dropped > 0 and sent + dropped == 100_000
        (stats,) = [s for s in bridge.statistics() if s.inbox == "lossy"]
        assert stats.dropped == dropped
    finally:
        bridge.close()
        lossy.close()
