"""The publishing call of a one-topic pub method (_node/_publisher.py) does
Node.publish's work itself: the same guarantees - every message once and in
order per publishing thread when a user thread and the dispatching thread
publish at once, lineage from a handler, the drop policy counted, an InboxFull
that names its topic, the statistics' counts - and a route that follows the
directory (a subscriber that comes later gets the messages after it)."""
from __future__ import annotations

import threading
import time

import pytest

from ether import InboxFull, ether_pub, ether_sub
from ether.lowlevel import Node
from ether._spec._bind import bind
from ether._spec._introspect import introspect


class Source:
    @ether_pub(topic="p")
    def emit(self, who: str, i: int) -> dict:
        return {"who": who, "i": i}


class Relay:
    """Its handler publishes through its own pub method: caused by what it handles."""

    @ether_sub(topic="p")
    def on_p(self, who: str, i: int) -> None:
        self.forward(who, i)

    @ether_pub(topic="q")
    def forward(self, who: str, i: int) -> dict:
        return {"who": who, "i": i}


def _bound(node: Node, cls):
    obj = cls()
    bind(obj, introspect(cls), node, node.name)
    return obj


def _drain(node: Node, into: list, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    with node._consumer:
        while len(into) < count:
            assert time.monotonic() < deadline, f"{len(into)} of {count} arrived in {timeout:g} s"
            node.pump(0.1)


@pytest.mark.timeout(30)
def test_two_threads_publishing_keep_each_ones_order_and_lose_nothing(session):
    pub, sub = Node(session, "pub"), Node(session, "sub")
    got = []
    try:
        sub.add_handler("p", got.append)
        source = _bound(pub, Source)
        n = 3000

        def run(who):
            for i in range(n):
                source.emit(who, i)

        threads = [threading.Thread(target=run, args=(w,)) for w in ("a", "b")]
        for t in threads:
            t.start()
        _drain(sub, got, 2 * n)
        for t in threads:
            t.join(10)
        decoded = [sub.decoders.payload_dict(e) for e in got]
        for who in ("a", "b"):
            assert [d["i"] for d in decoded if d["who"] == who] == list(range(n))
        seqs = [e.seq for e in got]
        assert seqs == sorted(set(seqs))       # one lane: seqs unique and in send order
        assert pub.published == 2 * n
    finally:
        sub.close()
        pub.close()


@pytest.mark.timeout(20)
def test_a_publish_from_a_handler_names_its_cause_and_trace(session):
    pub, mid, out = Node(session, "pub"), Node(session, "mid"), Node(session, "out")
    got = []
    try:
        _bound(mid, Relay)
        out.add_handler("q", got.append)
        source = _bound(pub, Source)
        for i in range(5):
            source.emit("a", i)
        deadline = time.monotonic() + 10.0
        with mid._consumer:
            while mid.handled < 5:
                assert time.monotonic() < deadline, f"mid handled {mid.handled} of 5 in 10 s"
                mid.pump(0.1)
        _drain(out, got, 5)
        assert [e.cause.sender for e in got] == ["pub"] * 5
        assert [e.cause.seq for e in got] == [e.trace.seq for e in got] == [1, 2, 3, 4, 5]
        assert mid._handling == {}             # nothing left behind after the batch
        source.emit("a", 99)                   # outside a handler: a root
        assert pub._handling == {}
    finally:
        for node in (out, mid, pub):
            node.close()


@pytest.mark.timeout(20)
def test_drop_policy_counts_and_block_policy_names_the_topic(session):
    pub, slow = Node(session, "pub", max_length=1024), Node(session, "slow", max_length=1024)
    try:
        slow.add_handler("p", lambda e: None, policy="drop")
        source = _bound(pub, Source)
        capacity = slow.inbox.statistics().capacity
        for i in range(capacity // 16 + 10):   # more than its ring holds: the rest dropped
            source.emit("a", i)
        assert sum(pub.drops.by_sender.values()) > 0
        slow.remove_handler("p", slow._handlers["p"][0])
        blocked = Node(session, "blocked", max_length=1024)
        try:
            blocked.add_handler("p", lambda e: None, policy="block", timeout=0.05)
            with pytest.raises(InboxFull, match="'p'"):
                for i in range(capacity):
                    source.emit("a", i)
        finally:
            blocked.close()
    finally:
        slow.close()
        pub.close()


@pytest.mark.timeout(20)
def test_the_route_follows_the_directory(session):
    pub = Node(session, "pub")
    source = _bound(pub, Source)
    try:
        source.emit("a", 0)                    # nobody subscribes yet: counted, sent nowhere
        assert pub.published == 1
        late, got = Node(session, "late"), []
        try:
            late.add_handler("p", got.append)
            source.emit("a", 1)
            _drain(late, got, 1)
            assert late.decoders.payload_dict(got[0]) == {"who": "a", "i": 1}
        finally:
            late.close()
    finally:
        pub.close()
