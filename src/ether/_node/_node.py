"""Node: one process's presence in a session - its inbox, its publishing, its
handlers and the loop that dispatches to them.

Handlers take the decoded Envelope. A handler that raises is logged with its
traceback and the loop carries on; so is a message that is not an envelope.

Reading the inbox is leader/follower: a thread that waits for something (a
reply, an acknowledgement, a listened message) reads and dispatches the inbox
itself while it holds the consumer lock, so a reply reaches its caller without a
hand-off between threads; other waiting threads sleep on a condition that every
dispatched batch notifies. A handler that waits (a service calling a service)
re-enters as the holder: it takes replies and defers everything else.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import threading
import time
import traceback
from collections import deque
from typing import Callable

import msgspec

from .. import _errors as errors
from .. import _settings
from .._core._arena_writer import Writer, arena_bytes, inline_limit
from .._core._states import RESTARTING_STATES
from .._errors import Dropped, MalformedMessage
from . import _codec as codec
from ._delivery import DEFAULT_POLICY, DEFAULT_TIMEOUT_S, Delivery, describe_delivery
from ._calls import REPLY_COPIES, REQUEST_COPIES, call_topic, mirror
from ._drops import DROPS_TOPIC, DropCounts
from ._rejections import Rejections
from ._lane import Lane, lane_turn
from ._topics import is_pattern, matches

__all__ = ["Node", "WAKE", "message_limit", "inbox_capacity"]

log = logging.getLogger("Ether")

_KIND_NAMES = codec.KIND_NAMES
_WIRE = codec.WIRE_VERSION
_MESSAGE = codec.MESSAGE
_REQUEST = codec.REQUEST
_now_ns = time.time_ns
_get_ident = threading.get_ident
_HOST = socket.gethostname()
WAKE = "wake"  # the topic of wake(): a control message for the node itself

def message_limit() -> int:
    """The largest message (bytes, envelope included) a node's inbox accepts:
    $ETHER_MAX_MESSAGE_BYTES, 1 MiB by default. Each inbox holds four of them."""
    return _settings.max_message_bytes()


def inbox_capacity(max_length: int) -> int:
    return max(1 << 22, 1 << (4 * max_length + 64).bit_length())


def _handle_as(handling: dict, ident: int, envelope) -> None:
    """Set what thread `ident` handles (None: nothing) in a node's `_handling`."""
    if envelope is None:
        handling.pop(ident, None)
    else:
        handling[ident] = envelope


# Producer slots of a node's inbox: a sender per lane of every process that sends
# to it (64 B each). The main process's inbox is sized from the config instead.
DEFAULT_PRODUCERS = 256

# How long close() waits for the thread reading the inbox to let go of it.
CLOSE_TIMEOUT_S = 2.0

# While idle, check this often that the session's owner is still alive.
OWNER_CHECK_S = 0.5


class Node:
    def __init__(self, session, name: str, *, max_length: int | None = None,
                 max_producers: int = DEFAULT_PRODUCERS):
        """max_producers: how many senders the inbox takes at once (each process that
        sends to it uses one per lane; see _lane.py)."""
        self.session = session
        self.name = name
        max_length = max_length or message_limit()
        self.inbox = session.create_inbox(name, capacity=inbox_capacity(max_length),
                                          max_length=max_length, max_producers=max_producers)
        self._seqs = itertools.count(1)        # message seq, unique across both lanes
        self._handlers: dict[str, tuple[Callable, ...]] = {}
        self._patterns: tuple[str, ...] = ()   # subscribed patterns, in _handlers by pattern
        self._matched: dict[str, tuple[Callable, ...]] = {}  # topic -> handlers, while patterns exist
        self._subscriptions: dict[str, int] = {}
        self._deliveries: dict[str, Delivery] = {}  # topic or pattern -> its delivery
        self.advertised: set[str] = set()       # topics this node said it publishes
        self.on_control: Callable[[codec.Envelope], None] | None = None
        # Called after each batch read from the inbox is dispatched, in the reading
        # thread (a bridge sends what its handlers gathered from the batch).
        self.after_batch: Callable[[], None] | None = None
        self._services: dict[str, Callable[[codec.Envelope], None]] = {}
        self._service_subscriptions: dict[str, int] = {}  # topic -> directory index
        # Request-reply: replies by request id; None until the reply arrives.
        self._pending: dict[int, dict | None] = {}
        # Held with its lock directly (`with self._replies_lock`): the same lock as
        # the condition's, without Condition.__enter__/__exit__'s two Python calls,
        # six times per request (bench_services' S1 and S4).
        self._replies_lock = threading.RLock()
        self._replies = threading.Condition(self._replies_lock)
        self._request_ids = itertools.count(1)
        self._round_robin: dict[str, int] = {}
        self._deferred: deque[bytes] = deque()  # arrived while a handler awaited a reply
        self._consumer = threading.RLock()      # held by the thread that reads the inbox
        self._depth = 0                         # > 0 while dispatching (re-entry defers)
        self.late_replies = 0
        self._closing = False
        self._arena = None                 # created by the first large array published
        self.arena_lock = threading.Lock()  # the arena is shared by both lanes (and its sweeper)
        self.inline_limit = inline_limit()
        self.arena_dropped = 0             # receivers that missed a message: arena full, drop policy
        self._next_drop_log = 0.0
        # This node's wire identity and codec: nothing process-wide, so a process
        # may hold several nodes, in one session or in several.
        reader = session.arena_reader
        self._hold, self._release = reader.hold, reader.release
        # Where its messages come from. Local ones carry no origin on the wire
        # (every member shares it); origin_of(envelope) fills it in.
        self.origin = codec.Origin(session.run_id, _HOST)
        self.decoders = codec.Decoders(reader.view)
        self._reader = reader
        self.rejections = Rejections(name)   # what it could not take, counted and logged sparingly
        self._subscribe_lock = threading.Lock()
        # Lineage: thread ident -> the envelope that thread handles, only while it
        # handles one (a plain dict, not a threading.local: a publish outside any
        # handler tests it for emptiness, one in a handler pays a get_ident() and a
        # dict get, against ~500 instructions per threading.local access).
        self._handling: dict[int, codec.Envelope] = {}
        # (an envelope, its cause, its trace): a handler publishes many. One for the
        # node, not per thread: keyed by the envelope itself, so right in any thread.
        self._known: tuple = (None, None, None)
        self.running = False
        self.published = 0
        self.handled = 0
        # Shutdown (set by the runtime): `stopping` is what ether.stopping() says;
        # while `skipping`, user messages are counted in `skipped`, not handled.
        self.stopping = False
        self.skipping = False
        self.skipped = 0
        # (records, handled + skipped at its start, the thread dispatching it): what
        # backlog() and the stuck check (_runtime/_health.py) read; one tuple a batch.
        self._batch = (0, 0, 0)
        self.served = 0      # requests handled (their handlers' returns: stuck check)
        self.beats = 0       # ether.alive() calls: a loop inside a handler is alive
        self._inbox_lock = threading.Lock()  # backlog() reads the inbox that close() frees
        # Senders are single-threaded, and a user thread (a sensor loop calling a pub
        # method) may publish while the dispatch loop does: each lane has a lock.
        # Replies and control messages go their own way, never behind a publish
        # that waits for room (see _lane.py).
        self._user = Lane(self, session)
        self._direct = Lane(self, session)
        self.router = self._user.router
        self._routes, self._words, self._at = self.router.inline_check()
        self._stats = None                  # the stats topic's publisher (start_stats)
        self._at_close: list[Callable[[], None]] = []
        self.drops = DropCounts()           # per (inbox, topic): what drop-policy inboxes refused

    # ---- publishing ----

    def publish(self, topic: str, payload, *, kind: int = codec.MESSAGE) -> int:
        """Send payload to every subscriber of topic; returns how many inboxes got it."""
        handling = self._handling
        current = handling.get(_get_ident()) if handling else None
        if current is None:
            cause = trace = None
        else:
            known = self._known
            if known[0] is current:  # the handler's earlier publishes computed it
                cause, trace = known[1], known[2]
            else:
                cause, trace = codec.lineage(current, self.origin)
                self._known = (current, cause, trace)
        lane = self._user
        lock = lane.lock
        if lock.locked():  # another thread has the lane: wait out here (see lane_turn)
            lane_turn(lock)
        try:
            lock.acquire()
            seq = next(self._seqs)
            self.published += 1
            # The hot path of every publish: one route lookup (inline while the
            # directory has not changed: Router.inline_check), one encode, one send each.
            router = lane.router
            targets = self._routes.get(topic) if router._generation == self._words[self._at] else None
            if targets is None:
                targets = router.targets(topic)
            counts = lane.counts  # None unless the node is watched (_stats.py)
            if not targets:
                if counts is not None:
                    lane.count(topic, None)
                return 0
            lane.targets = targets
            holds = lane.blocks  # reused: nothing else refers to it once encoded
            if holds:
                holds.clear()
            try:
                # codec.envelope_fields, inlined: this is every publish (and
                # _publisher.publishing_call's copy, a decorated one's).
                data = lane.encode((_WIRE, kind, topic, self.name, seq, _now_ns(), cause, trace,
                                    None, payload, holds))
            except Dropped as exc:
                lane.unhold(targets)
                self.count_arena_drop(topic, targets, exc)
                return 0
            except BaseException:
                lane.unhold(targets)
                raise
            if counts is not None:  # Lane.count, inlined
                c = counts.get(topic)
                if c is None:
                    c = counts[topic] = [0, 0]
                c[0] += 1
                c[1] += len(data) + lane.array_bytes
                lane.array_bytes = 0
            if not holds:  # the hot path: no arrays, so no holds to give back
                delivered = 0
                for sender in targets:
                    try:
                        if sender.send(data):
                            delivered += 1
                        else:  # a full drop-policy inbox refused it (DropCounts.add, inlined)
                            drops, key = self.drops.by_sender, (sender, topic)
                            drops[key] = drops.get(key, 0) + 1
                    except errors.EtherError as exc:
                        return lane.send_rest(topic, targets, data, targets.index(sender), exc,
                                              delivered)
                return delivered
            return lane.send_rest(topic, targets, data, 0, None, 0)
        finally:
            lock.release()

    def publish_root(self, topic: str, payload) -> codec.Envelope:
        """Publish a message that starts a chain of causes of its own (a trial's
        start), whatever this thread handles; return its envelope, for handling()."""
        lane = self._user
        with lane.lock:
            seq = next(self._seqs)
            self.published += 1
            now = _now_ns()
            targets = lane.router.targets(topic)
            if targets:
                data = lane.encode_for(targets, codec.envelope_fields(
                    _MESSAGE, topic, self.name, seq, now, None, None, None, payload))
                lane.count(topic, data)
                lane.send_rest(topic, targets, data, 0, None, 0)
            else:
                lane.count(topic, None)
        return codec.Envelope(_WIRE, _MESSAGE, topic, self.name, seq, now, None, None, None,
                              msgspec.Raw(b"\x80"))

    @contextlib.contextmanager
    def handling(self, envelope: codec.Envelope):
        """While in the block, what this thread publishes is caused by `envelope`
        (and is in its trace), as if a handler of it published it."""
        handling, ident = self._handling, _get_ident()
        previous = handling.get(ident)
        handling[ident] = envelope
        try:
            yield envelope
        finally:
            _handle_as(handling, ident, previous)

    def _envelope(self, kind: int, topic: str, payload) -> tuple:
        """The envelope fields of a new message from this node, before its holds: the
        one constructor besides the inline copies in publish and reply."""
        seq = next(self._seqs)
        cause, trace = self._lineage_now()
        return codec.envelope_fields(kind, topic, self.name, seq, _now_ns(), cause, trace, None, payload)

    def _lineage_now(self) -> tuple:
        """(cause, trace) of what this thread sends now: those of the message it
        handles, cached per handled envelope in _known (publish inlines the same)."""
        current = self._handling.get(_get_ident()) if self._handling else None
        if current is None:
            return None, None
        known = self._known
        if known[0] is not current:
            known = self._known = (current, *codec.lineage(current, self.origin))
        return known[1], known[2]

    def _unspill(self, envelope: codec.Envelope) -> codec.Envelope:
        """The envelope a SPILLED one stands for: its payload read from the sender's
        arena (a read-only view, held while anything refers to it)."""
        view = self._reader.view(*codec.spilled_handle(envelope))
        return msgspec.structs.replace(envelope, kind=envelope.kind & ~codec.SPILLED,
                                       payload=msgspec.Raw(memoryview(view)))

    def count_arena_drop(self, topic: str, targets: tuple, exc: Exception) -> None:
        """The array arena is full and every receiver drops: count it per receiver
        (in their statistics' `dropped`) and say so, at most once a second."""
        for sender in targets:
            sender.arena_dropped += 1
        self.arena_dropped += len(targets)
        now = time.monotonic()
        if now >= self._next_drop_log:
            self._next_drop_log = now + 1.0
            log.warning("%s: dropped a message on %r for its %d drop-policy subscriber(s) "
                        "(%d so far): %s", self.name, topic, len(targets), self.arena_dropped, exc)

    def report_drops(self, timeout: float = 1.0) -> int:
        """Send each inbox that subscribes to DROPS_TOPIC (a recorder) and lost
        messages of this node's since the last report the cumulative counts per
        topic (see _drops.py); how many reports went. Counted as published, so
        the drain protocol waits for them."""
        pending = self.drops.unreported()
        if not pending:
            return 0
        sent = 0
        lane = self._user
        with lane.lock:
            listeners = {s.inbox: s for s in lane.router.targets(DROPS_TOPIC)}
            for inbox, counts in pending.items():
                sender = listeners.get(inbox)
                if sender is None:
                    continue
                self.published += 1
                data = lane.encode_for((sender,), self._envelope(
                    codec.MESSAGE, DROPS_TOPIC, {"drops": counts}))
                try:
                    if sender.send(data, policy="block", timeout=timeout):
                        self.drops.reported(inbox, counts)
                        sent += 1
                except errors.EtherError as exc:
                    log.warning("%s: could not report its drops to %r: %s", self.name, inbox, exc)
        return sent

    def send_control(self, inbox: str, topic: str, payload, *, timeout: float = 5.0) -> None:
        """A control message (any encodable payload) straight to one inbox, not
        through topics."""
        lane = self._direct
        with lane.lock:
            lane.send_to(lane.router.sender_to(inbox, timeout=timeout),
                         self._envelope(codec.CONTROL, topic, payload))

    def advertise(self, topics) -> None:
        """Record in the session's directory that this node publishes `topics` (what
        `inspect()`, `ether topics` and a bridge read)."""
        new = [t for t in dict.fromkeys(topics) if t not in self.advertised]
        if not new:
            return
        with self.session._directory as d:
            for topic in new:
                d.advertise(topic, self.inbox.token)
        self.advertised.update(new)

    def start_stats(self) -> None:
        """Publish this node's counters on STATS_TOPIC while someone subscribes to
        it (see _stats.py). Starts a thread: the runtime calls it after its forks."""
        if self._stats is None:
            from ._stats import StatsPublisher
            self._stats = StatsPublisher(self)
            self._stats.start()

    def describe(self, class_name: str) -> None:
        """Record in the session's directory the class this node runs (what `inspect()` shows)."""
        with self.session._directory as d:
            d.set_info(self.inbox.token, class_name=class_name)

    def origin_of(self, envelope: codec.Envelope) -> codec.Origin:
        """The run and host a message came from (its own, or this session's)."""
        return envelope.origin or self.origin

    def forward(self, envelope: codec.Envelope, *, topic: str | None = None, payload=None,
                origin: codec.Origin | None = None, skip: str | None = None,
                replay_of: codec.MessageId | None = None) -> int:
        """Re-send a message to the subscribers of its topic (or `topic`), keeping its
        origin, sender, seq, time, cause and trace: what a bridge or a player does.
        `origin` is the message's if it names none (a message read in another
        session: that session's node.origin). Arena handles in it are replaced by
        inline arrays (a handle is only good for its own session's holders);
        `payload`, if given, is the payload's already-encoded MessagePack (bytes)
        instead, or the decoded payload itself, encoded again here so that its
        large arrays go into this node's arena (once, for every subscriber).
        `skip` names an inbox left out (a bridge's own). `replay_of` marks it as
        the replay of that recorded message (a player's; default: the envelope's
        own mark, kept). Returns how many inboxes got it."""
        if payload is None:
            payload = self.inline_payload(envelope) if envelope.holds else envelope.payload
        if isinstance(payload, (bytes, bytearray, memoryview)):
            payload = msgspec.Raw(payload)
        topic = envelope.topic if topic is None else topic
        fields = codec.envelope_fields(envelope.kind, topic, envelope.sender, envelope.seq,
                                       envelope.time_ns, envelope.cause, envelope.trace,
                                       envelope.origin or origin, payload)
        lane = self._user
        with lane.lock:
            targets = lane.router.targets(topic)
            if skip is not None and targets:
                targets = tuple(t for t in targets if t.inbox != skip)
            if not targets:
                lane.count(topic, None)
                return 0
            try:
                data = lane.encode_for(targets, fields, replay_of or envelope.replay_of)
            except Dropped as exc:  # the arena is full and every receiver drops: counted
                self.count_arena_drop(topic, targets, exc)
                return 0
            lane.count(topic, data)
            return lane.send_rest(topic, targets, data, 0, None, 0)

    def forward_many(self, topic: str, messages: list, *, skip: str | None = None) -> int:
        """Forward several messages of one topic, each given as its fields (kind,
        sender, seq, time_ns, cause, trace, origin, payload) with payload its
        MessagePack (msgspec.Raw) without arena handles: each encoded once, and
        sent to every subscriber in one batch (what a bridge does with a
        coalesced sample). `skip` as forward's. Returns how many deliveries."""
        lane = self._user
        with lane.lock:
            targets = lane.router.targets(topic)
            if skip is not None and targets:
                targets = tuple(t for t in targets if t.inbox != skip)
            if not targets:
                if lane.counts is not None:
                    for _ in messages:
                        lane.count(topic, None)
                return 0
            if lane.blocks:
                lane.blocks.clear()
            encode = lane.encode
            datas = [encode((_WIRE, kind, topic, sender, seq, time_ns, cause, trace, origin, payload, ()))
                     for kind, sender, seq, time_ns, cause, trace, origin, payload in messages]
            if lane.counts is not None:  # watched (_stats.py)
                lane.array_bytes = 0  # these carry no arena arrays
                for data in datas:
                    lane.count(topic, data)
            return lane.send_batch(topic, targets, datas)

    def inline_payload(self, envelope: codec.Envelope) -> bytes:
        """The envelope's payload (MessagePack) with every arena handle replaced by
        the inline array it names: what a recorder writes and a bridge sends."""
        return codec.inline_arrays(envelope, self._reader.view)

    def statistics(self) -> tuple:
        """A SenderStatistics of every inbox this node sends to (see Router)."""
        # Each router is shared with the threads sending through its lane: read it
        # under the lane's lock (a sender closed meanwhile would be freed under our feet).
        out = []
        for lane in (self._user, self._direct):
            with lane.lock:
                out.extend(lane.router.statistics())
        return tuple(sorted(out, key=lambda s: (s.inbox, s.policy)))

    # ---- subscribing ----

    def add_handler(self, topic: str, handler: Callable[[codec.Envelope], None],
                    *, policy: str = DEFAULT_POLICY, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        """Call handler for each message on topic, or on every user topic that the
        pattern `topic` matches (see _topics.py). The inbox has one subscription per
        topic: a second handler of it must ask for the same policy and timeout."""
        with self._subscribe_lock:
            self._add_handler(topic, handler, Delivery(policy, timeout))
            self._patterns_changed()

    def _patterns_changed(self) -> None:
        self._patterns = tuple(t for t in self._handlers if is_pattern(t))
        self._matched = {}  # replaced, not cleared: a dispatching thread may hold the old one

    def _handlers_of(self, topic: str) -> tuple:
        """The handlers of a topic when patterns are subscribed: exact ones first."""
        matched = self._matched
        handlers = matched.get(topic)
        if handlers is None:
            handlers = self._handlers.get(topic, ())
            for pattern in self._patterns:
                if pattern != topic and matches(pattern, topic):
                    handlers += self._handlers.get(pattern, ())
            if len(matched) < 4096:
                matched[topic] = handlers
        return handlers

    def _add_handler(self, topic, handler, delivery) -> None:
        current = self._deliveries.get(topic)
        if current is None:
            with self.session._directory as d:
                self._subscriptions[topic] = d.subscribe(topic, self.inbox.token, *delivery)
            self._deliveries[topic] = delivery
        elif current != delivery:
            raise errors.ConfigError(
                f"this process already subscribes to {topic!r} with {describe_delivery(current)}, "
                f"and its inbox has one subscription per topic: use the same policy and timeout")
        self._handlers[topic] = self._handlers.get(topic, ()) + (handler,)

    def add_service(self, topic: str, serve: Callable[[codec.Envelope], None], *,
                    replace: bool = False) -> None:
        """Answer requests on topic (one handler per topic; `replace` swaps the
        handler of a topic already served, with no moment where none serves it)."""
        if topic in self._services:
            if not replace or topic not in self._service_subscriptions:
                raise errors.ConfigError(f"{self.name}: two methods serve {topic!r}")
            self._services[topic] = serve
            return
        # Subscribed first: a subscribe that fails leaves nothing half served.
        with self.session._directory as d:
            index = d.subscribe(topic, self.inbox.token)
        self._services[topic] = serve
        self._service_subscriptions[topic] = index

    def remove_service(self, topic: str) -> None:
        """Stop answering requests on topic: unsubscribed first; a request routed
        here before that is answered ServiceNotFound (_refuse)."""
        index = self._service_subscriptions.pop(topic, None)
        if index is not None and not self.closed:
            with self.session._directory as d:
                d.unsubscribe(index, self.inbox.token)
        self._services.pop(topic, None)

    def remove_handler(self, topic: str, handler) -> None:
        if self.closed:
            return  # the session is gone, and its directory with it
        with self._subscribe_lock:
            self._remove_handler(topic, handler)
            self._patterns_changed()

    def _remove_handler(self, topic: str, handler) -> None:
        handlers = tuple(h for h in self._handlers.get(topic, ()) if h is not handler)
        self._handlers[topic] = handlers
        if not handlers and topic in self._subscriptions:
            with self.session._directory as d:
                d.unsubscribe(self._subscriptions.pop(topic), self.inbox.token)
            self._deliveries.pop(topic, None)
            self._handlers.pop(topic, None)

    # ---- dispatching ----

    @property
    def condition(self) -> threading.Condition:
        """Notified after every dispatched batch (and by anyone who changes what
        waiters wait for)."""
        return self._replies

    def arena(self):
        """This node's arena, made on first use (arena lock held)."""
        arena = self._arena
        if arena is None:
            arena = self._arena = Writer(self.session, arena_bytes(), self.arena_lock)
        return arena

    def loan(self, shape, dtype):
        """A writable array in shared memory: publishing it copies nothing."""
        lock = self.arena_lock
        if lock.locked():  # not `with` (~0.3 us a loan): acquire in the try, as publish does
            lane_turn(lock)
        try:
            lock.acquire()
            if self._closing:
                raise errors.SessionClosed(f"{self.name}: the session was shut down")
            return (self._arena or self.arena()).loan(shape, dtype)
        finally:
            lock.release()

    def dispatch(self, batch: list[bytes]) -> None:
        self._batch = (len(batch), self.handled + self.skipped, _get_ident())
        self._depth += 1
        try:
            self._dispatch(batch)
        finally:
            self._depth -= 1

    def _dispatch(self, batch) -> None:
        """Deliver a batch. The common message - a MESSAGE without arrays, while no
        pattern is subscribed and nothing times _deliver_kind (_stats.py) - is
        delivered inline, what codec.decode, _deliver and _deliver_kind would do for
        it without their three calls; so is a request to a service of this node
        (what _deliver_kind does for it). The lineage is restored once per batch, and
        before any other message. Another well-formed envelope goes to _deliver
        (with holds) or _deliver_kind, decoded once; a record that is not one (or of
        another wire version) through _dispatch_one."""
        if "_deliver_kind" in self.__dict__:  # shadowed by the stats' timing one
            for data in batch:
                self._dispatch_one(data)
            return
        decode = codec.decode_unchecked
        handlers_of = self._handlers   # a dict add/remove_handler change in place
        services = self._services
        handling, ident = self._handling, _get_ident()
        previous = handling.get(ident)
        # Set once this batch has made `ident` handle one of its messages: until
        # then handling[ident] is still `previous`, and nothing needs restoring.
        dirty = False
        try:
            for data in batch:
                try:
                    envelope = decode(data)
                except codec.ENVELOPE_ERRORS:
                    envelope = None
                if envelope is None or envelope.version != _WIRE:
                    if dirty:
                        _handle_as(handling, ident, previous)
                        dirty = False
                    self._dispatch_one(data)  # decodes it again, for the error's words
                    continue
                kind, holds = envelope.kind, envelope.holds
                if kind == _REQUEST and not holds:
                    # What _deliver_kind does for a request, inline: a server's every call.
                    service = services.get(envelope.topic)
                    if service is not None:
                        handling[ident] = envelope
                        dirty = True
                        try:
                            service(envelope)
                        except Exception as exc:
                            self._not_handled(envelope, exc)
                        finally:
                            self.served += 1
                        continue
                if holds or kind != _MESSAGE or self._patterns or self.skipping:
                    # Arrays in an arena (held while its handlers run), a reply, a
                    # control message...: decoded and checked already, so straight to
                    # its delivery (_dispatch_one would decode it again: a round trip's
                    # two envelopes each went twice, and every array message).
                    if dirty:
                        _handle_as(handling, ident, previous)
                        dirty = False
                    try:
                        if holds:
                            self._deliver(envelope)
                        else:
                            self._deliver_kind(envelope)
                    except Exception as exc:
                        self._not_handled(envelope, exc)
                    continue
                self.handled += 1
                handling[ident] = envelope
                dirty = True
                try:
                    # A tuple, replaced (not changed) by add/remove_handler: a handler
                    # that unsubscribes does not make another one miss this message.
                    for handler in handlers_of.get(envelope.topic, ()):
                        handler(envelope)
                except Exception as exc:
                    self._not_handled(envelope, exc)
        finally:
            if dirty:
                _handle_as(handling, ident, previous)

    def _not_handled(self, envelope: codec.Envelope, exc: Exception) -> None:
        # One message never takes the loop (or the rest of its batch) down.
        self.rejections.report(
            envelope.topic, "not handled", f"{type(exc).__name__}: {exc}",
            f"a {_KIND_NAMES.get(envelope.kind, 'message')} on {envelope.topic!r} from "
            f"{envelope.sender!r} could not be handled:\n{traceback.format_exc().rstrip()}")

    def _dispatch_one(self, data) -> None:
        """Decode and deliver one message, whatever it is."""
        try:
            envelope = codec.decode(data)
        except MalformedMessage as exc:
            self.rejections.report("?", "malformed", str(exc), f"dropped a malformed message: {exc}")
            return
        try:
            self._deliver(envelope)
        except Exception as exc:
            self._not_handled(envelope, exc)

    def _deliver(self, envelope: codec.Envelope) -> None:
        holds = envelope.holds
        if not holds:
            return self._deliver_kind(envelope)
        held = self._hold(holds)
        try:
            self._deliver_kind(envelope)
        finally:
            if held:
                self._release(held)

    def _deliver_kind(self, envelope: codec.Envelope) -> None:
        kind = envelope.kind
        if kind == codec.MESSAGE:
            if self.skipping:
                self.skipped += 1
                return
            self.handled += 1
            handling, ident = self._handling, _get_ident()
            previous = handling.get(ident)
            handling[ident] = envelope
            try:
                # A tuple, replaced (not changed) by add/remove_handler: a handler
                # that unsubscribes does not make another one miss this message.
                if self._patterns:
                    handlers = self._handlers_of(envelope.topic)
                else:
                    handlers = self._handlers.get(envelope.topic, ())
                for handler in handlers:
                    handler(envelope)
            finally:
                _handle_as(handling, ident, previous)
        elif kind == codec.REPLY:
            self._on_reply(envelope)
        elif kind == codec.REQUEST:
            service = self._services.get(envelope.topic)
            if service is None:
                self.rejections.report(envelope.topic, "unknown request", "",
                                       f"request for {envelope.topic!r}, which it does not serve")
                self._refuse(envelope)
                return
            handling, ident = self._handling, _get_ident()
            previous = handling.get(ident)
            handling[ident] = envelope
            try:
                service(envelope)
            finally:
                _handle_as(handling, ident, previous)
                self.served += 1
        elif kind & codec.SPILLED:
            self._deliver_kind(self._unspill(envelope))
        elif self.on_control is not None and envelope.topic != WAKE:  # a wake only ends a read
            self.on_control(envelope)

    def _refuse(self, envelope: codec.Envelope) -> None:
        """Answer a request for a topic this node no longer serves (it was routed
        here before remove_service), so that its caller does not wait it out."""
        try:
            request = codec.request_of(envelope)
        except MalformedMessage:
            return
        self.reply(request, envelope.topic, {
            "status": "failed", "type": "ServiceNotFound", "instance": self.name,
            "error": f"{self.name} does not serve {envelope.topic!r} (any more)"})

    def pump(self, timeout: float) -> None:
        """Read one batch (waiting up to timeout) and dispatch it. Call with the
        consumer lock held."""
        if self._deferred and self._depth == 0:
            batch, self._deferred = list(self._deferred), deque()
        else:
            try:
                batch = self.inbox.receive_many(timeout=timeout)
            except errors.Timeout:
                return
        if self._depth == 0:
            self.dispatch(batch)
            if self.after_batch is not None:
                self.after_batch()
        else:  # re-entered from a handler: take replies now, everything else later
            for data in batch:
                try:
                    envelope = codec.decode(data)
                except MalformedMessage:
                    envelope = None
                if envelope is not None and envelope.kind == codec.REPLY | codec.SPILLED:
                    try:
                        envelope = self._unspill(envelope)
                    except errors.EtherError as exc:
                        self.rejections.report(envelope.topic, "malformed", str(exc),
                                               f"a spilled reply could not be read: {exc}")
                        continue
                if envelope is not None and envelope.kind == codec.REPLY:
                    self._on_reply(envelope)
                else:
                    self._deferred.append(data)
        with self._replies_lock:
            if self._replies._waiters:  # nobody waits, as a lone serving thread: no calls
                self._replies.notify_all()

    def wait_until(self, done: Callable[[], bool], timeout: float | None, *,
                   describe: Callable[[], str], alive=None, gone: str = "") -> None:
        """Return once done() is true (checked under the condition's lock), reading
        the inbox meanwhile if no other thread does. Raise Timeout (with describe())
        after timeout seconds (None: no limit), or ServiceGone(gone) if alive()
        turns False."""
        now = time.monotonic()
        deadline = None if timeout is None else now + timeout
        next_alive_check = now + 0.1
        while True:
            with self._replies_lock:
                if done():
                    return
            if self._closing:
                raise errors.SessionClosed(f"{self.name}: the session was shut down while waiting")
            now = time.monotonic()
            left = None if deadline is None else deadline - now
            if left is not None and left <= 0:
                raise errors.Timeout(describe())
            if alive is not None and now >= next_alive_check:
                next_alive_check = now + 0.1
                if not alive():
                    raise errors.ServiceGone(gone)
            slice_s = 0.1 if left is None or left > 0.1 else left
            if self._consumer.acquire(blocking=False):
                try:
                    self.pump(slice_s)
                finally:
                    self._consumer.release()
            else:
                with self._replies_lock:
                    if not done():
                        self._replies.wait(slice_s)

    def serve(self, *, owner_check: bool = True, stop: threading.Event | None = None) -> None:
        """Read and dispatch until `running` is cleared (by a control handler), `stop`
        is set, or the session's owner dies."""
        self.running = True
        next_check = time.monotonic() + OWNER_CHECK_S
        with self._consumer:
            while self.running and not self._closing and not (stop is not None and stop.is_set()):
                self.pump(OWNER_CHECK_S)
                if owner_check and time.monotonic() >= next_check:
                    next_check = time.monotonic() + OWNER_CHECK_S
                    if not self.session.owner_alive():
                        log.warning("%s: the session's main process is gone; exiting", self.name)
                        self.running = False

    # ---- request-reply ----

    def request(self, topic: str, params, *, sender=None, what: str,
                timeout: float | None = None, wait: float = 0.0) -> tuple[int, object]:
        """Send a request to one subscriber of topic (round-robin) or to `sender`;
        returns (request id, the sender used). `timeout`: how long the caller will
        wait, carried as its deadline (what a bridge hands to the other host). If no
        live instance serves it but one is restarting, wait up to `wait` seconds for
        it to come back."""
        in_handler = self._consumer._is_owned() and self._depth > 0
        lane = self._user
        lock = lane.lock   # the router and the lane's seqs are shared with publish()
        if sender is None:
            if lock.locked():  # not `with`, as in publish (lane_turn says why)
                lane_turn(lock)
            try:
                lock.acquire()
                targets, down = lane.router.lookup(topic)
            finally:
                lock.release()
            if not targets:
                targets = self._live_targets(topic, what, wait, down)
            if in_handler and len(targets) > 1:  # never round-robin onto ourselves from a handler
                targets = tuple(t for t in targets if t.inbox != self.inbox.name) or targets
            turn = self._round_robin.get(topic, 0)
            self._round_robin[topic] = turn + 1
            sender = targets[turn % len(targets)]
        if in_handler and sender.inbox == self.inbox.name:
            raise errors.EtherError(
                f"{self.name}: a handler cannot wait for its own instance's {what} (it would "
                f"wait for itself); call the method directly")
        request_id = next(self._request_ids)
        with self._replies_lock:
            self._pending[request_id] = None
        if lock.locked():
            lane_turn(lock)
        try:
            lock.acquire()
            try:
                body = (request_id, self.inbox.name, params) if timeout is None else (
                    request_id, self.inbox.name, params, _now_ns() + int(timeout * 1e9))
                # Node._envelope, inline: a call from outside any handler has no lineage.
                cause, trace = self._lineage_now() if self._handling else (None, None)
                fields = (_WIRE, codec.REQUEST, topic, self.name, next(self._seqs), _now_ns(),
                          cause, trace, None, body)
                lane.send_to(sender, fields)
            except BaseException:
                with self._replies_lock:
                    self._pending.pop(request_id, None)
                raise
            copy = REQUEST_COPIES.get(topic, "")  # its copy (_calls.py), if watched
            if copy == "":
                copy = call_topic(topic, "request")
            if copy is not None:
                router = lane.router   # its route checked inline (Router.inline_check)
                watchers = router._routes.get(copy) if router._generation == self._words[self._at] \
                    else None
                if watchers is None:
                    watchers = router.targets(copy)
                if watchers:
                    mirror(self, lane, fields, copy, watchers, "request", lambda: {
                        "id": request_id, "caller": self.inbox.name, "server": sender.inbox,
                        "params": params})
        finally:
            lock.release()
        return request_id, sender

    def _live_targets(self, topic: str, what: str, wait: float, down: tuple) -> tuple:
        """The live servers of a request topic that has none now (`down`: its
        placeholders); while one is restarting (its placeholder says so: _runtime's
        RESTARTING_STATES), wait for the directory to change, up to `wait` seconds."""
        lane = self._user
        targets = ()
        deadline = time.monotonic() + wait
        directory = self.session._directory
        while True:
            if targets:
                return targets
            restarting = [e.name for e in down if e.state in RESTARTING_STATES]
            left = deadline - time.monotonic()
            if not restarting or left <= 0:
                if down:
                    states = ", ".join(f"{e.name!r} " + ("is restarting" if e.name in restarting
                                                        else "failed") for e in down)
                    waited = f" (waited {wait:g} s)" if restarting else ""
                    raise errors.ServiceNotFound(f"no live instance serves {what}: {states}{waited}")
                raise errors.ServiceNotFound(f"no live instance serves {what}")
            generation = directory.generation()
            try:  # keeps reading this node's inbox meanwhile, if no other thread does
                self.wait_until(lambda: directory.generation() != generation, min(left, 0.05),
                                describe=str)
            except errors.Timeout:
                pass
            with lane.lock:
                targets, down = lane.router.lookup(topic)

    def forget_inbox(self, sender) -> None:
        """The consumer behind sender died: drop the route and its directory entry
        (that consumer's: a restarted instance's new entry has the same name)."""
        with self._user.lock:
            self._user.router.forget(sender)
        with self.session._directory as d:
            entry = d.find(sender.inbox)
            if entry is not None and entry.owner == sender.consumer_token:
                d.remove(entry.index, entry.token)

    def broadcast_request(self, topic: str, params, *,
                          timeout: float | None = None) -> list[tuple[int, object]]:
        """Send one request to every subscriber of topic."""
        with self._user.lock:
            targets, _ = self._user.router.lookup(topic)  # one that is down is not asked
        sent = []
        try:
            for target in targets:
                sent.append(self.request(topic, params, sender=target, what=topic,
                                         timeout=timeout))
        except BaseException:
            with self._replies_lock:  # nobody will wait for the ones already sent
                for request_id, _ in sent:
                    self._pending.pop(request_id, None)
            raise
        return sent

    def reply(self, request: codec.Request, topic: str, body: dict) -> None:
        """Answer a request. A caller that is gone (or whose inbox stays full) costs
        a log line, never the server.

        Every request a server answers comes here, so what Node._envelope,
        Router.sender_to and Router.targets do is inline for the common case (the
        caller's sender checked at this directory generation, the copy topic's
        route cached): S4 in bench_services is bound by its one server's Python."""
        body["id"] = request.id
        lane = self._direct
        router = lane.router
        words, at = self._words, self._at
        # The reply's lineage: _lineage_now and codec.lineage's common case, inline
        # (a server's every request is a new envelope, so no cache would hit).
        handling = self._handling
        current = handling.get(_get_ident()) if handling else None
        if current is None:
            cause = trace = None
        elif current.origin is None and current.trace is None:  # a root of this run
            cause = trace = (current.sender, current.seq)
        else:
            cause, trace = codec.lineage(current, self.origin)
        try:
            with lane.lock:
                fields = (_WIRE, codec.REPLY, topic, self.name, next(self._seqs), _now_ns(),
                          cause, trace, None, body)
                reply_to = request.reply_to
                key = (reply_to, DEFAULT_POLICY, DEFAULT_TIMEOUT_S)
                sender = router._senders.get(key)
                if sender is None or router._checked.get(key) != words[at] or sender.closed:
                    sender = router.sender_to(reply_to)
                lane.send_to(sender, fields)
                # Its copy goes the reply's way too: never behind a user publish that
                # waits for room elsewhere (see _calls.py).
                copy = REPLY_COPIES.get(topic, "")
                if copy == "":
                    copy = call_topic(topic, "reply")
                if copy is not None:
                    watchers = router._routes.get(copy) if router._generation == words[at] else None
                    if watchers is None:
                        watchers = router.targets(copy)
                    if watchers:
                        mirror(self, lane, fields, copy, watchers, "reply",
                               lambda: {**body, "caller": reply_to})
        except (errors.InboxClosed, errors.InboxNotFound, errors.InboxFull) as exc:
            log.warning("%s: could not reply to %r for %r: %s", self.name, request.reply_to, topic, exc)

    def _on_reply(self, envelope: codec.Envelope) -> None:
        body = self.decoders.payload_dict(envelope)
        with self._replies_lock:
            request_id = body.get("id")
            if request_id in self._pending and self._pending[request_id] is None:
                self._pending[request_id] = body
                self._replies.notify_all()
            else:
                self.late_replies += 1  # its caller gave up: never hand it to anyone else

    def wait_reply(self, request_id: int, timeout: float, *, what: str, alive=None,
                   keep: bool = False) -> dict:
        """The reply to a request; raise Timeout after `timeout` s, or ServiceGone
        if alive() turns False. Either way the request is forgotten, so a late
        reply is dropped; with `keep`, a Timeout leaves it pending, for a later
        wait_reply (a bridge waits a little in one thread, then in another)."""
        try:
            self.wait_until(lambda: self._pending.get(request_id) is not None, timeout,
                            describe=lambda: f"no reply from {what} within {timeout:g} s",
                            alive=alive, gone=f"{what} died before it replied")
        except errors.Timeout:
            if not keep:
                with self._replies_lock:
                    self._pending.pop(request_id, None)
            raise
        except BaseException:
            with self._replies_lock:
                self._pending.pop(request_id, None)
            raise
        with self._replies_lock:
            return self._pending.pop(request_id)

    def backlog(self) -> int:
        """About how many messages wait to be handled: unread in the inbox, read but
        not dispatched yet (records of every kind count). Any thread may ask."""
        with self._inbox_lock:
            if self._closing or self.inbox.closed:
                return 0
            s = self.inbox.statistics()
        records, base, _ = self._batch
        in_batch = max(0, records - (self.handled + self.skipped - base))
        return max(0, s.sent - s.received) + s.buffered + len(self._deferred) + in_batch

    @property
    def closed(self) -> bool:
        return self._closing or self.inbox.closed

    def wake(self) -> None:
        """Wake the thread blocked reading this node's inbox (it re-checks why it reads)."""
        lane = self._direct
        try:
            with lane.lock:
                lane.router.sender_to(self.inbox.name).send(
                    codec.encode_plain(codec.CONTROL, WAKE, self.name, {}))
        except errors.EtherError:
            pass

    def at_close(self, hook: Callable[[], None]) -> None:
        """Call hook() when the node closes, before anything of it is freed (it may
        still read the inbox: a recorder writes what is queued, then its file)."""
        self._at_close.append(hook)

    def close(self) -> None:
        """Stop every waiter, then free the inbox - only once no thread is inside it."""
        hooks, self._at_close = self._at_close, []
        for hook in hooks:
            try:
                hook()
            except BaseException:
                log.exception("%s: a close hook raised", self.name)
        self._closing = True
        if self._stats is not None:
            self._stats.close()
        self.rejections.flush()
        with self._replies_lock:
            self._replies.notify_all()  # followers see _closing at once
        self.wake()
        if self._consumer.acquire(timeout=CLOSE_TIMEOUT_S):
            try:
                self._close_lanes()
                with self.arena_lock:
                    if self._arena is not None:
                        self._arena.close()
                        self._arena = None
                with self._inbox_lock:
                    self.inbox.close()
            finally:
                self._consumer.release()
        else:  # a handler still runs in the reader: leave its ring mapped rather than free it
            log.warning("%s: a handler still runs; its inbox is left to process exit", self.name)
            self._close_lanes()

    def _close_lanes(self) -> None:
        for lane in (self._user, self._direct):
            with lane.lock:
                lane.router.close()
