"""The frame streams between bridges, without zenoh: a host that joins a topic's
receivers starts a new stream that names it (so it counts a loss of its very
first frames), the old stream's end is named so its receivers count its last
losses, and a host that joined after a stream began counts no gap for the frames
before it saw one."""
from __future__ import annotations

import types

import msgspec

from ether.bridge import _keys, _wire
from ether.bridge._inbound import Inbound
from ether.bridge._outbound import Outbound

RUN = b"r" * 16


class _Node:
    def __init__(self):
        self.after_batch = None
        self.origin = None
        self.inbox = types.SimpleNamespace(name="bridge")
        self.forwarded = 0

    def add_handler(self, *args, **kw):
        pass

    def remove_handler(self, *args, **kw):
        pass

    def forward_many(self, topic, messages, skip):
        self.forwarded += len(messages)


class _Checker:
    def check_sample(self, data, topic, att):
        return [(0, "gen@hostA", 0, 0, None, None, None, msgspec.Raw(b"\x80"))
                for _ in range(att.count)]


def _inbound(host: str) -> Inbound:
    inbound = Inbound(_Node(), None, None, _keys.Keys("lab1", host), _Checker(), 1 << 20)
    inbound.want({"frames": "drop"})
    return inbound


def _sample(inbound: Inbound, first: int, count: int, epoch: int, prev=None, receivers=()):
    key = inbound.keys.topic("frames")
    inbound.handle(key, _wire.pack([b"f"] * count),
                   _wire.attachment(count, first, "hostA", RUN, epoch, prev, receivers))


def test_a_new_host_starts_a_new_stream_for_it_naming_the_old_one():
    out = Outbound(_Node(), None, None, _keys.Keys("lab1", "hostA"), ["*"])
    out.update({"frames": "drop"}, {"frames": frozenset({"hostB"})})
    first = out._stream("frames")
    assert first[1] == 0 and first[3] is None and first[4] == ("hostB",)
    first[1] = 7                      # seven frames sent in it
    out.update({"frames": "drop"}, {"frames": frozenset({"hostB"})})
    assert out._stream("frames") is first          # nobody joined: the same stream
    out.update({"frames": "drop"}, {"frames": frozenset({"hostB", "hostC"})})
    second = out._stream("frames")
    assert second[0] != first[0] and second[1] == 0
    assert second[3] == (first[0], 7) and second[4] == ("hostB", "hostC")
    out.update({"frames": "drop"}, {"frames": frozenset({"hostC"})})   # B leaves: no new one
    assert out._stream("frames") is second
    out.update({"*": "drop"}, {"*": frozenset({"hostB"}), "frames": frozenset({"hostC"})})
    assert out._stream("frames")[4] == ("hostB", "hostC")   # B is back, by a pattern


def test_a_receiver_the_stream_began_for_counts_its_lost_first_frames():
    inbound = _inbound("hostB")
    _sample(inbound, first=2, count=1, epoch=11, receivers=("hostB",))
    assert (inbound.gaps, inbound.received) == (2, 1)


def test_a_receiver_that_joined_later_counts_no_gap_before_its_first_frame():
    inbound = _inbound("hostC")
    _sample(inbound, first=500, count=2, epoch=11, receivers=("hostB",))
    _sample(inbound, first=503, count=1, epoch=11, receivers=("hostB",))
    assert (inbound.gaps, inbound.received) == (1, 3)


def test_the_end_of_a_stream_is_counted_when_the_next_one_begins():
    inbound = _inbound("hostB")
    _sample(inbound, first=0, count=5, epoch=11, receivers=("hostB",))
    # Frames 5 and 6 of stream 11 were lost; stream 12 (for B and C) names its end: 7.
    _sample(inbound, first=0, count=1, epoch=12, prev=(11, 7), receivers=("hostB", "hostC"))
    _sample(inbound, first=0, count=1, epoch=12, prev=(11, 7), receivers=("hostB", "hostC"))
    assert (inbound.gaps, inbound.duplicates, inbound.received) == (2, 1, 6)
    # What ether.statistics() shows as the entry `bridge@hostA` (via BRIDGE_LINKS).
    assert inbound.links() == [{"host": "hostA", "received": 6, "gaps": 2}]


def test_a_topic_only_another_host_wants_is_neither_forwarded_nor_counted():
    # One zenoh subscriber takes every topic (one callback thread: a publisher's
    # order across topics holds); what no local member wants is let go at once.
    inbound = _inbound("hostB")
    inbound.want({"other": "block", "fr*": "drop"})
    _sample(inbound, first=0, count=2, epoch=11, receivers=("hostB",))    # "frames" matches fr*
    assert (inbound.received, inbound.gaps) == (2, 0)
    inbound.want({"other": "block"})
    _sample(inbound, first=5, count=1, epoch=11)
    assert (inbound.received, inbound.gaps, inbound.rejected) == (2, 0, 0)
