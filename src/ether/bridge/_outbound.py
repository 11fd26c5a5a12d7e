"""Topics out of this host, by interest: the bridge subscribes its own inbox to a
topic only while another host's bridge holds a `sub` token for it (and the
topic may leave: `export`), so with no remote interest local publishers send it
nothing at all.

What its inbox receives is sent on as it is drained: the handler keeps each
envelope as it came (one with arena arrays gets them inline, from the
publisher's arena: the one copy), consecutive envelopes of one topic gather
into one sample, encoded in one call (_wire.py), and the node's after_batch
hook puts what gathered. There is no timer: a lone message goes as soon as its
batch (of one) ends.

A remote subscription's policy is the local one's: `block` subscribes with block
and puts with CongestionControl.BLOCK, `drop` with drop and DROP; every topic
at one priority (DATA), so a publisher's order holds across topics. An envelope
whose sender is `name@host` came from another host and is never sent back out.

Frames are numbered per topic in streams (_wire.py): when another host joins a
topic's receivers (its `sub` token appears), the topic's next sample starts a
new stream from 0, naming the one it ends and the hosts it is for. So a joiner
counts a loss of its very first frames too, and never a gap for frames of a
stream that began before it joined (a sample the reader sent before it saw the
join).
"""
from __future__ import annotations

import logging
import random

import msgspec

from ether.lowlevel import RESERVED_PREFIXES, matches

from . import _wire as wire

__all__ = ["Outbound"]

log = logging.getLogger("Ether")

FLUSH_BYTES = 1 << 20   # a sample gathers frames up to about this much, then goes
_STRONGER = {"block": 2, "drop": 1}


class Outbound:
    def __init__(self, node, zsession, zenoh, keys, export: list[str]):
        self.node, self.z, self.zenoh, self.keys = node, zsession, zenoh, keys
        self.export = list(export)
        self.origin = node.origin
        self._subscribed: dict[str, str] = {}     # topic or pattern -> policy (local subscriptions)
        self._publishers: dict[tuple[str, str], object] = {}
        self._congestion: dict[str, str | None] = {}   # concrete topic -> policy (None: not sent)
        self._streams: dict[str, list] = {}      # topic -> [epoch, next, joins seen, prev, receivers]
        self._hosts: dict[str, frozenset] = {}    # topic or pattern -> the hosts that want it
        self._joins: dict[str, int] = {}          # topic or pattern -> hosts that joined (replaced)
        self._joins_of: dict[str, int] = {}       # concrete topic -> its joins (a cache, replaced)
        self._frames: list = []                   # envelopes of the sample in the making
        self._size = 0
        self._topic: str | None = None
        self._policy = "block"
        self._last = None                         # one copy though two handlers match
        self.sent_frames = 0
        self.sent_samples = 0
        self.errors = 0
        node.after_batch = self.flush

    # ---- interest (the control thread) ----

    def update(self, wanted: dict[str, str], hosts: dict[str, frozenset] | None = None) -> None:
        """wanted: topic or pattern -> the strongest policy some other host asks;
        hosts: topic or pattern -> the hosts that ask it."""
        wanted = {t: p for t, p in wanted.items() if not t.startswith(RESERVED_PREFIXES)}
        hosts = hosts or {}
        joins = dict(self._joins)
        for topic, now in hosts.items():
            if now - self._hosts.get(topic, frozenset()):
                joins[topic] = joins.get(topic, 0) + 1
        self._hosts = dict(hosts)
        if joins != self._joins:
            self._joins, self._joins_of = joins, {}   # replaced: the reader may hold the old ones
        for topic, policy in list(self._subscribed.items()):
            if wanted.get(topic) != policy:
                self.node.remove_handler(topic, self._on_message)
                del self._subscribed[topic]
        for topic, policy in wanted.items():
            if topic not in self._subscribed:
                self.node.add_handler(topic, self._on_message, policy=policy)
                self._subscribed[topic] = policy
        self._congestion = {}   # replaced, not cleared: the reader may hold the old one

    def _policy_of(self, topic: str) -> str | None:
        table = self._congestion
        policy = table.get(topic, 0)
        if policy == 0:
            policy = None
            if any(matches(p, topic) for p in self.export):
                for pattern, p in list(self._subscribed.items()):
                    if matches(pattern, topic) and (policy is None or _STRONGER[p] > _STRONGER[policy]):
                        policy = p
            if len(table) < 4096:
                table[topic] = policy
        return policy

    # ---- sending (the thread that reads the bridge's inbox) ----

    def _on_message(self, envelope) -> None:
        if envelope is self._last:
            return  # a topic and a pattern both matched: the node hands the one envelope twice
        self._last = envelope
        if "@" in envelope.sender:
            return  # it came from another host: never back out (no loops)
        topic = envelope.topic
        policy = self._congestion.get(topic, 0)
        if policy == 0:
            policy = self._policy_of(topic)
        if policy is None:
            return  # not exported
        if envelope.holds:   # its arrays inline, from the publisher's arena (the one copy)
            envelope = msgspec.structs.replace(
                envelope, payload=msgspec.Raw(self.node.inline_payload(envelope)), holds=())
        if self._topic != topic or self._policy != policy:
            self.flush()
            self._topic, self._policy = topic, policy
        self._frames.append(envelope)
        self._size += len(envelope.payload)
        if self._size >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        frames = self._frames
        if not frames:
            return
        topic, policy = self._topic, self._policy
        self._frames, self._size = [], 0
        stream = self._stream(topic)
        first = stream[1]
        stream[1] += len(frames)
        try:
            self._publisher(topic, policy).put(
                wire.encode_frames(frames),
                attachment=wire.attachment(len(frames), first, self.keys.host, self.origin.run,
                                           stream[0], stream[3], stream[4], self.origin.host))
            self.sent_frames += len(frames)
            self.sent_samples += 1
        except Exception as exc:  # zenoh refused it (closing, too large): say so, go on
            self.errors += 1
            log.error("bridge: could not send %d message(s) on %r to other hosts: %s",
                      len(frames), topic, exc)

    def _stream(self, topic: str) -> list:
        """The topic's stream: a new one if a host joined its receivers since."""
        cache = self._joins_of
        joins = cache.get(topic)
        if joins is None:
            joins = sum(n for t, n in self._joins.items() if t == topic or matches(t, topic))
            if len(cache) < 4096:
                cache[topic] = joins
        stream = self._streams.get(topic)
        if stream is None or stream[2] != joins:
            prev = None if stream is None else (stream[0], stream[1])
            receivers = set()
            for t, hosts in self._hosts.items():
                if t == topic or matches(t, topic):
                    receivers |= hosts
            stream = self._streams[topic] = [random.getrandbits(63) | 1, 0, joins, prev,
                                             tuple(sorted(receivers))]
        return stream

    def _publisher(self, topic: str, policy: str):
        key = (topic, policy)
        publisher = self._publishers.get(key)
        if publisher is None:
            zenoh = self.zenoh
            if len(self._publishers) >= 4096:
                for old in self._publishers.values():
                    old.undeclare()
                self._publishers.clear()
            publisher = self._publishers[key] = self.z.declare_publisher(
                self.keys.topic(topic), priority=zenoh.Priority.DATA,
                allowed_destination=zenoh.Locality.REMOTE,  # never to this bridge's own subscribers
                congestion_control=(zenoh.CongestionControl.BLOCK if policy == "block"
                                    else zenoh.CongestionControl.DROP))
        return publisher

    def statistics(self) -> dict:
        return {"sent_frames": self.sent_frames, "sent_samples": self.sent_samples,
                "errors": self.errors, "subscribed": dict(self._subscribed)}
