"""The recorder's fast path (Recorder._dispatch): plain small messages written
from their wire bytes. Two recorders on two nodes get the same traffic, one with
the fast path and one without (the node's own dispatch and _on_envelope for
every record): their files hold the same messages, field for field, in the same
order; a record the fast path cannot take goes the node's way, in its place; a
handler that shares a recorded topic still gets every message."""
from __future__ import annotations

import time

import msgspec
import numpy as np
import pytest
from mcap.reader import make_reader

from ether.lowlevel import Client, MessageId, Node, Origin
from ether.record import Recorder
from ether.recording import open as open_recording

TOPICS = ["t", "u", "arrays", "shared"]


def _pump_until_drained(node: Node) -> None:
    def drained() -> bool:
        s = node.inbox.statistics()
        return s.received == s.sent and not s.buffered and not node._deferred

    deadline = time.monotonic() + 10.0
    with node._consumer:
        while not drained():
            assert time.monotonic() < deadline, "the node's inbox did not drain in 10 s"
            node.pump(0.1)


def _messages(folder) -> list[tuple]:
    """Every message of a recording, its envelope fields and payload, as read by
    Ether's reader; the mcap package reads the same count, CRCs checked."""
    rec = open_recording(folder)
    assert rec.status == "complete"
    out = []
    for m in rec.messages():
        data = {k: (v.tolist(), str(v.dtype)) if isinstance(v, np.ndarray) else v
                for k, v in m.data.items()}
        out.append((m.topic, m.sender, m.seq, m.time_ns, m.cause, m.trace, m.origin, m.replay_of,
                    data))
    for path in sorted(folder.glob("*.mcap")):
        with open(path, "rb") as f:
            reader = make_reader(f, validate_crcs=True)
            n = sum(1 for _ in reader.iter_messages())
            assert n == reader.get_summary().statistics.message_count
    return out


class _Pair:
    """A recorder with the fast path (`fast`) and one without (`slow`), each on
    a node of its own, both recording TOPICS."""

    def __init__(self, session, tmp_path, **options):
        self.nodes, self.recorders = [], []
        for name in ("fast", "slow"):
            node = Node(session, name)
            recorder = Recorder(str(tmp_path / name), topics=TOPICS, client=Client(node),
                                **options)
            self.nodes.append(node)
            self.recorders.append(recorder)
        del self.nodes[1].dispatch          # the slow one: the node's own dispatch
        self.slow_records = 0
        plain = self.recorders[0]._node_dispatch

        def counted(batch):
            self.slow_records += len(batch)
            return plain(batch)

        self.recorders[0]._node_dispatch = counted

    def pump(self) -> None:
        for node in self.nodes:
            _pump_until_drained(node)

    def close(self) -> None:
        for recorder in self.recorders:
            recorder.close()
        for node in self.nodes:
            node.close()


@pytest.mark.timeout(30)
def test_the_fast_path_writes_what_the_node_path_writes_in_the_same_order(session, tmp_path):
    pair = _Pair(session, tmp_path)
    pub, mid = Node(session, "pub"), Node(session, "mid")
    other = []
    try:
        pair.nodes[0].add_handler("shared", other.append, timeout=60.0)   # the node's way
        foreign = Origin(b"\x01" * 16, "elsewhere")

        def on_a(envelope):                 # caused messages: cause and trace set
            i = mid.decoders.payload_dict(envelope)["i"]
            mid.publish("u", {"i": i, "text": "é" * (i % 5), "nested": {"l": [1, 2.5, None]}})
            if i % 10 == 0:
                mid.forward(envelope, topic="t", origin=foreign)   # another run's, kept as is
            if i % 17 == 0:                 # a replay: replay_of, 12 fields
                mid.forward(envelope, topic="t", replay_of=MessageId("gen", i, b"\x02" * 16))

        mid.add_handler("a", on_a)
        for i in range(300):
            pub.publish("a", {"i": i})
            pub.publish("t", {"i": i, "value": i * 0.5})
            if i % 50 == 0:
                # Inline arrays (the arena's go by holds, the node's way: the
                # integration round trip records them; two nodes of one process
                # share its arena reader, whose holds are the process's).
                pub.publish("arrays", {"small": np.arange(i % 7, dtype=np.int16),
                                       "grid": np.eye(3, dtype=np.float32)})
            if i % 30 == 0:
                pub.publish("shared", {"i": i})
            if i == 150:   # no envelope; a plain head with a time the MCAP header cannot hold
                pub.router.sender_to("fast").send(b"\xc1not msgpack")
                pub.router.sender_to("fast").send(
                    msgspec.msgpack.encode((1, 0, "t", "forged", 1, -5, None, None, None, {}, [])))
            _pump_until_drained(mid)
            pair.pump()            # while the arena's blocks are held for them
        fast_handled = pair.nodes[0].handled
        pair.close()
        fast, slow = _messages(tmp_path / "fast"), _messages(tmp_path / "slow")
        short = lambda ms: [(m[0], m[1], m[2]) for m in ms]
        assert short(fast) == short(slow)
        assert fast == slow
        topics = {m[0] for m in fast}
        assert topics == {"t", "u", "arrays", "shared"}
        assert len(fast) == 300 + 300 + 30 + 18 + 6 + 10
        assert [m[-1]["i"] for m in fast if m[0] == "shared"] == list(range(0, 300, 30))
        assert len(other) == 10                                   # the other handler, too
        assert any(m[6] is not None for m in fast)                # a foreign origin
        assert any(m[7] is not None for m in fast)                # a replay
        # The fast path took the plain messages (inline arrays too); the node's
        # way only the rest: the replays, the shared topic, the two bad records.
        assert pair.slow_records == 18 + 10 + 2
        assert fast_handled == pair.nodes[1].handled + 1   # + the forged one (handled, raised)
    finally:
        pub.close()
        mid.close()


@pytest.mark.timeout(30)
def test_a_handler_that_comes_and_goes_on_a_recorded_topic_gets_its_messages(session, tmp_path):
    pair = _Pair(session, tmp_path)
    pub = Node(session, "pub")
    try:
        node = pair.nodes[0]
        seen = []
        handler = seen.append               # one object: remove_handler goes by identity
        for phase in range(3):
            if phase == 1:
                node.add_handler("t", handler, timeout=60.0)
            if phase == 2:
                node.remove_handler("t", handler)
            before = pair.slow_records
            for i in range(100):
                pub.publish("t", {"phase": phase, "i": i})
            pair.pump()
            assert pair.slow_records - before == (100 if phase == 1 else 0)
        assert [(e.seq) for e in seen] == list(range(101, 201))
        pair.close()
        fast, slow = _messages(tmp_path / "fast"), _messages(tmp_path / "slow")
        assert fast == slow and len(fast) == 300
    finally:
        pub.close()


@pytest.mark.timeout(30)
def test_splits_by_size_on_the_fast_path_hold_every_message_once(session, tmp_path):
    pair = _Pair(session, tmp_path, split_size=64 * 1024, chunk_bytes=16 * 1024)
    pub = Node(session, "pub")
    try:
        for i in range(5000):
            pub.publish("t", {"i": i, "pad": "x" * 40})
            if i % 500 == 0:
                pair.pump()
        pair.pump()
        pair.close()
        assert len(pair.recorders[0].files) > 3
        fast, slow = _messages(tmp_path / "fast"), _messages(tmp_path / "slow")
        assert [m[-1]["i"] for m in fast] == list(range(5000))
        assert fast == slow
    finally:
        pub.close()
