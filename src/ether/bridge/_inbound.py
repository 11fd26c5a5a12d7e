"""Topics into this host: for every topic some local member subscribes to, the
bridge declares a zenoh subscriber and a `sub` token (which tells the other
bridges to send it), and re-publishes what arrives with Node.forward, so the
message keeps its origin, seq, time, cause and trace; its sender becomes
`name@host`.

The one subscriber's callback thread (zenoh-python's, fed by a channel from
zenoh's receive task) checks and forwards each small sample itself: no queue and
no thread of ours between them, one hand-off less per sample. A large one (1 MiB
and more) goes through a short queue to the in thread, so that two large samples
overlap (one copied out of zenoh while the other is checked and copied into the
arena); what follows it goes the same way until the in thread caught up, so the
order holds. A coalesced sample
is handled as a batch: every frame decoded and checked, then the plain ones
encoded and sent to each local inbox in one Sender.send_many (Node.forward_many);
a frame with large arrays goes alone, its arrays into this host's arena once.
A slow local subscriber under `block` thus stalls the callback, then zenoh's
channel and delivery, and back-pressure reaches the publisher on the other
host. Every sample is checked (_wire.py) before anything of it is forwarded; a
malformed one is counted and logged with the peer's name, and the next one is
handled as usual.

Losses between the bridges are counted from the sending bridge's frame numbers
(per topic and sending bridge, in streams that start at 0 whenever a host joins
the topic's receivers: _outbound.py), which also drop a sample that came twice.
A message's own seq cannot serve: it counts the sender's messages on every topic.
"""
from __future__ import annotations

import logging
import queue
import threading

import msgspec

from ether import EtherError, MalformedMessage
from ether.lowlevel import RESERVED_PREFIXES, WIRE_VERSION, Envelope, is_pattern, matches

from . import _wire as wire

__all__ = ["Inbound"]

log = logging.getLogger("Ether")

_EMPTY = msgspec.Raw(b"")
MAX_LINKS = 1024   # other hosts counted apart in links()
MAX_TOPIC_KEYS = 4096   # keys whose topic is remembered
LARGE_SAMPLE = 1 << 20   # a sample this large goes through the in thread (see _on_sample)
QUEUE_SAMPLES = 4        # large samples waiting for the in thread


class Inbound:
    def __init__(self, node, zsession, zenoh, keys, checker: wire.Checker, max_bytes: int):
        self.node, self.z, self.zenoh, self.keys = node, zsession, zenoh, keys
        self.checker = checker
        self.max_bytes = max_bytes
        self._subscribers: dict[str, object] = {}   # key -> zenoh subscriber
        self._tokens: dict[str, object] = {}        # sub token key -> token
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue(QUEUE_SAMPLES)
        self._handed = 0                            # samples queued for, or in, the in thread
        self._handed_lock = threading.Lock()
        self._links: dict[str, list] = {}           # sending host -> [frames arrived, frames lost]
        self._expected: dict[tuple, int] = {}       # (host, epoch, topic) -> next frame number
        self._topics: frozenset = frozenset()       # what local members subscribe to
        self._patterns: tuple = ()
        self._wanted: dict[str, bool] = {}          # topic -> wanted here (cleared on update)
        self._topic_of: dict[str, str] = {}         # key -> topic (a cache: parsing costs per sample)
        self.received = 0          # frames forwarded
        self.gaps = 0              # frames lost between the bridges
        self.duplicates = 0
        self.rejected = 0          # samples refused
        self.forward_errors = 0
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ether-bridge-in", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # ---- interest (the control thread) ----

    def update(self, interest: dict[str, str]) -> None:
        """interest: local topic or pattern -> its strongest policy."""
        interest = {t: p for t, p in interest.items() if not t.startswith(RESERVED_PREFIXES)}
        tokens = {self.keys.sub_live(t, p) for t, p in interest.items()}
        # One subscriber for all topics, whatever is wanted: zenoh-python runs each
        # subscriber's callbacks on a thread of its own, so with one per topic a
        # sample on one topic passed the samples queued before it on another, and a
        # publisher's order across topics was lost (bench_bridge saw an end marker
        # arrive before 133,000 of the stream it ended). Other bridges still send a
        # topic only to hosts whose `sub` token asks for it; what no local member
        # wants (another host's interest) is forwarded to nobody.
        keys = {self.keys.topics_all} if interest else set()
        self.want(interest)
        for key in list(self._subscribers):
            if key not in keys:
                self._subscribers.pop(key).undeclare()
        for key in keys - set(self._subscribers):
            self._subscribers[key] = self.z.declare_subscriber(
                key, self._on_sample, allowed_origin=self.zenoh.Locality.REMOTE)
        # Tokens after subscribers: once another bridge sees one, what it sends is taken.
        for key in list(self._tokens):
            if key not in tokens:
                self._tokens.pop(key).undeclare()
        for key in tokens - set(self._tokens):
            self._tokens[key] = self.z.liveliness().declare_token(key)

    # ---- receiving ----

    def _on_sample(self, sample) -> None:
        """zenoh's callback thread (one, the one subscriber's): check and forward a
        small sample itself; hand a large one (and whatever follows it while the in
        thread is behind: the order holds) to the in thread, so that the copy of
        the next large sample out of zenoh overlaps this one's check and its copy
        into the arena."""
        if self.stop.is_set():
            return
        attachment = sample.attachment
        item = (str(sample.key_expr), sample.payload.to_bytes(),
                None if attachment is None else attachment.to_bytes())
        if self._handed == 0 and len(item[1]) < LARGE_SAMPLE:
            return self.handle(*item)
        with self._handed_lock:
            self._handed += 1
        while not self.stop.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue
        with self._handed_lock:
            self._handed -= 1

    def _run(self) -> None:
        while True:
            item = self._queue.get()   # no timeout: an idle bridge stays asleep
            if item is None:
                return   # close()
            try:
                if not self.stop.is_set():
                    self.handle(*item)
            except Exception:
                log.exception("bridge: a received sample could not be handled")
            finally:
                item = None   # not the last frame's bytes while waiting for the next
                with self._handed_lock:
                    self._handed -= 1

    def handle(self, key: str, data: bytes, attachment: bytes | None) -> None:
        with self._lock:   # a subscriber being replaced may still deliver its last sample
            self._handle(key, data, attachment)

    def _handle(self, key: str, data: bytes, attachment: bytes | None) -> None:
        topic = self._topic_of.get(key)
        if topic is None:
            try:
                topic = self.keys.topic_of(key)
            except ValueError as exc:
                return self._reject(key, "?", "malformed key", str(exc))
            if len(self._topic_of) < MAX_TOPIC_KEYS:
                self._topic_of[key] = topic
        if not self._is_wanted(topic):
            return  # another host's interest: nothing here subscribes to it
        peer = "?"
        try:
            att = wire.read_attachment(attachment)
            peer = att.host
            if len(data) > self.max_bytes:
                raise MalformedMessage(f"a sample of {len(data)} bytes, more than max_message_bytes "
                                       f"({self.max_bytes})")
            checked = self.checker.check_sample(data, topic, att)
        except MalformedMessage as exc:
            return self._reject(topic, peer, "malformed", str(exc))
        stream = (att.host, att.epoch, topic)
        expected = self._expected.get(stream)
        ended_gap = 0
        if expected is None:  # a new stream: from 0 if it began for this host
            expected = 0 if self.keys.host in att.receivers else att.first
            if att.prev_epoch:  # and the end of the one it follows
                ended = self._expected.pop((att.host, att.prev_epoch, topic), None)
                if ended is not None and att.prev_next > ended:
                    ended_gap = att.prev_next - ended
                    self.gaps += ended_gap
        link = self._links.get(att.host)
        if link is None:
            link = [0, 0]
            if len(self._links) < MAX_LINKS:
                self._links[att.host] = link
        if ended_gap:
            link[1] += ended_gap
        skip = 0
        if att.first > expected:
            self.gaps += att.first - expected
            link[1] += att.first - expected
        elif att.first < expected:
            skip = min(len(checked), expected - att.first)
            self.duplicates += skip
        self._expected[stream] = max(expected, att.first + att.count)
        if skip:
            checked = checked[skip:]
        if checked:
            link[0] += self._forward(topic, checked)

    def _forward(self, topic: str, checked: list) -> int:
        """The checked frames into the local inboxes: runs of plain ones in one batch,
        one with large arrays alone (its arrays into the arena)."""
        own = self.node.inbox.name
        node = self.node
        start = forwarded = 0
        n = len(checked)
        while start < n:
            end = start
            while end < n and type(checked[end][7]) is msgspec.Raw:
                end += 1
            try:
                if end > start:
                    node.forward_many(topic, checked[start:end] if start or end < n else checked,
                                      skip=own)
                else:
                    kind, sender, seq, time_ns, cause, trace, origin, value = checked[start]
                    end = start + 1
                    node.forward(Envelope(WIRE_VERSION, kind, topic, sender, seq, time_ns, cause,
                                          trace, origin, _EMPTY), payload=value, skip=own)
                self.received += end - start
                forwarded += end - start
            except EtherError as exc:  # a block subscriber stayed full, the arena is full
                self.forward_errors += 1
                sender = checked[start][1]
                node.rejections.report(topic, f"not forwarded: {type(exc).__name__}", str(exc),
                                       f"a message on {topic!r} from {sender!r} could not be "
                                       f"forwarded: {exc}")
            start = end
        return forwarded

    def want(self, interest) -> None:
        """Forward only these topics and patterns (the local interest)."""
        self._topics = frozenset(t for t in interest if not is_pattern(t))
        self._patterns = tuple(t for t in interest if is_pattern(t))
        self._wanted = {}  # last: a reader that sees the new cache sees the new sets

    def _is_wanted(self, topic: str) -> bool:
        wanted = self._wanted.get(topic)
        if wanted is None:
            wanted = self._wanted[topic] = topic in self._topics or any(
                matches(p, topic) for p in self._patterns)
        return wanted

    def _reject(self, topic: str, peer: str, reason: str, error: str) -> None:
        self.rejected += 1
        self.node.rejections.report(topic, f"{reason} sample", error,
                                    f"refused a sample on {topic!r} from host {peer!r}: {error}")

    def links(self) -> list[dict]:
        """Per other host that sent topics here: frames that arrived, frames lost."""
        return [{"host": h, "received": r, "gaps": g} for h, (r, g) in sorted(self._links.items())]

    def statistics(self) -> dict:
        return {"received": self.received, "gaps": self.gaps, "duplicates": self.duplicates,
                "rejected": self.rejected, "forward_errors": self.forward_errors,
                "subscribers": sorted(self._subscribers)}

    def close(self) -> None:
        self.stop.set()   # zenoh's close ends the subscriber; what it still delivers is let go
        try:
            self._queue.put_nowait(None)   # wakes the in thread if it waits; if full, it sees stop
        except queue.Full:
            pass
        if self._thread.is_alive():
            self._thread.join(2.0)
