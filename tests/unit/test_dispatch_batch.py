"""Node._dispatch delivers the common message inline: one batch that mixes plain
messages with control messages, malformed records and a raising handler keeps
every guarantee of the one-by-one path - order, lineage per message (and none
for a control handler between two messages), a raise or a bad record costing
only itself, the thread's lineage restored after the batch."""
from __future__ import annotations

import pytest

from ether.lowlevel import Node
from ether._node import _codec as codec


def _pump_until(node: Node, done) -> None:
    with node._consumer:
        while not done():
            node.pump(0.1)


@pytest.mark.timeout(20)
def test_a_mixed_batch_keeps_order_lineage_and_isolation(session):
    pub, sub, out = Node(session, "pub"), Node(session, "sub"), Node(session, "out")
    seen, controls, forwarded = [], [], []
    try:
        def on_t(envelope):
            seen.append(envelope.seq)
            if envelope.seq % 7 == 0:
                raise RuntimeError("boom")
            sub.publish("u", {"from": envelope.seq})   # caused by the message handled

        def on_control(envelope):
            controls.append(envelope.topic)
            sub.publish("u", {"from": "control"})      # caused by nothing

        sub.add_handler("t", on_t)
        sub.on_control = on_control
        out.add_handler("u", forwarded.append)
        for i in range(30):
            pub.publish("t", {"i": i})
            if i == 10:
                pub.send_control("sub", "ctl", {})
            if i == 20:   # a record that is no envelope: dropped, counted, the rest goes on
                pub.router.sender_to("sub").send(b"\xc1not msgpack")
        _pump_until(sub, lambda: len(seen) == 30)
        raised = [s for s in seen if s % 7 == 0]
        _pump_until(out, lambda: len(forwarded) == 30 - len(raised) + 1)
        assert controls == ["ctl"]
        assert len(seen) == 30 and seen == sorted(set(seen))   # each once, in order
        assert sub.handled == 30
        from_control = [e for e in forwarded if codec.Decoders(None).payload_dict(e) ==
                        {"from": "control"}]
        assert len(from_control) == 1 and from_control[0].cause is None
        plain = [e for e in forwarded if e not in from_control]
        # every message whose handler did not raise caused exactly one, named by its seq
        assert [e.cause.seq for e in plain] == [s for s in seen if s % 7 != 0]
        assert all(e.cause.sender == "pub" and e.trace == e.cause for e in plain)
        assert sub._handling == {}      # restored after the batch
        counts = {(r.topic, r.reason): r.count for r in sub.rejections.counts()}
        assert counts == {("?", "malformed"): 1, ("t", "not handled"): len(raised)}
    finally:
        for node in (pub, sub, out):
            node.close()
