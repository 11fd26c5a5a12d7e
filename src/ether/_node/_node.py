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
from .._core import _arena_handle
from .._core._arena_writer import Writer, arena_bytes, inline_limit
from .._errors import ArenaFull, Dropped, MalformedMessage
from . import _codec as codec
from ._delivery import DEFAULT_POLICY, DEFAULT_TIMEOUT_S, Delivery, describe_delivery
from ._router import Router
from ._topics import is_pattern, matches

__all__ = ["Node", "WAKE", "message_limit", "inbox_capacity"]

log = logging.getLogger("Ether")

_KIND_NAMES = codec.KIND_NAMES
_WIRE = codec.WIRE_VERSION
_MESSAGE = codec.MESSAGE
_now_ns = time.time_ns
_HOST = socket.gethostname()
WAKE = "wake"  # the topic of wake(): a control message for the node itself

def message_limit() -> int:
    """The largest message (bytes, envelope included) a node's inbox accepts:
    $ETHER_MAX_MESSAGE_BYTES, 1 MiB by default. Each inbox holds four of them."""
    return _settings.max_message_bytes()


def inbox_capacity(max_length: int) -> int:
    return max(1 << 22, 1 << (4 * max_length + 64).bit_length())


class _Handling(threading.local):
    """The envelope each thread is handling, if any (a class default: reading it
    in a thread that never set it costs no AttributeError)."""
    current = None


# How long close() waits for the thread reading the inbox to let go of it.
CLOSE_TIMEOUT_S = 2.0

# While idle, check this often that the session's owner is still alive.
OWNER_CHECK_S = 0.5


class Node:
    def __init__(self, session, name: str, *, max_length: int | None = None):
        self.session = session
        self.name = name
        max_length = max_length or message_limit()
        self.inbox = session.create_inbox(name, capacity=inbox_capacity(max_length),
                                          max_length=max_length)
        self.router = Router(session)
        self._seq = 0
        self._handlers: dict[str, tuple[Callable, ...]] = {}
        self._patterns: tuple[str, ...] = ()   # subscribed patterns, in _handlers by pattern
        self._matched: dict[str, tuple[Callable, ...]] = {}  # topic -> handlers, while patterns exist
        self._subscriptions: dict[str, int] = {}
        self._deliveries: dict[str, Delivery] = {}  # topic or pattern -> its delivery
        self.advertised: set[str] = set()       # topics this node said it publishes
        self.on_control: Callable[[codec.Envelope], None] | None = None
        self._services: dict[str, Callable[[codec.Envelope], None]] = {}
        # Request-reply: replies by request id; None until the reply arrives.
        self._pending: dict[int, dict | None] = {}
        self._replies = threading.Condition()
        self._request_ids = itertools.count(1)
        self._round_robin: dict[str, int] = {}
        self._deferred: deque[bytes] = deque()  # arrived while a handler awaited a reply
        self._consumer = threading.RLock()      # held by the thread that reads the inbox
        self._depth = 0                         # > 0 while dispatching (re-entry defers)
        self.late_replies = 0
        self._reply_to: dict[str, object] = {}  # caller inbox name -> sender
        self._closing = False
        self._arena = None                 # created by the first large array published
        self._targets: tuple = ()          # of the message being encoded (arena holders)
        self._blocks: list = []            # its arena blocks: [token, block, generation]
        self._inline = inline_limit()
        self.arena_dropped = 0             # receivers that missed a message: arena full, drop policy
        self._next_drop_log = 0.0
        # This node's wire identity and codec: nothing process-wide, so a process
        # may hold several nodes, in one session or in several.
        reader = session.arena_reader
        self._hold, self._release = reader.hold, reader.release
        self.origin = codec.encode_origin(session.run_id, _HOST)
        self.encoder = codec.Encoder(self.origin, self.arena_handle)
        self._encode = self.encoder.encode
        self.decoders = codec.Decoders(reader.view)
        self._reader = reader
        self._subscribe_lock = threading.Lock()
        self._local = _Handling()  # the message each thread is handling (lineage)
        self.running = False
        self.published = 0
        self.handled = 0
        # Senders are single-threaded; a user thread (a sensor loop calling a pub
        # method) may publish while the dispatch loop does.
        self._send_lock = threading.Lock()

    # ---- publishing ----

    def publish(self, topic: str, payload, *, kind: int = codec.MESSAGE) -> int:
        """Send payload to every subscriber of topic; returns how many inboxes got it."""
        current = self._local.current
        if current is None:
            cause = trace = None
        else:
            cause, trace = codec.lineage(current, self.origin)
        with self._send_lock:
            self._seq = seq = self._seq + 1
            self.published += 1
            # The hot path of every publish: one route lookup, one encode, one send each.
            targets = self.router.targets(topic)
            if not targets:
                return 0
            self._targets = targets
            holds = self._blocks  # reused: nothing else refers to it once encoded
            if holds:
                holds.clear()
            try:
                # The envelope (see _codec.py), built inline: this is every publish.
                data = self._encode((_WIRE, kind, topic, self.name, seq, _now_ns(), cause, trace,
                                     self.origin, payload, holds))
            except Dropped as exc:
                self._unhold(targets)
                self._count_arena_drop(topic, targets, exc)
                return 0
            except BaseException:
                self._unhold(targets)
                raise
            if not holds:  # the hot path: no arrays, so no holds to give back
                delivered = 0
                for sender in targets:
                    try:
                        if sender.send(data):
                            delivered += 1
                    except errors.EtherError as exc:
                        return self._send_rest(topic, targets, data, targets.index(sender), exc,
                                               delivered)
                return delivered
            return self._send_rest(topic, targets, data, 0, None, 0)

    def _send_rest(self, topic: str, targets: tuple, data: bytes, at: int, failed, delivered: int) -> int:
        """Send to targets[at:], the first of which raised `failed` already (if not
        None): a closed inbox is forgotten, a full block subscriber does not stop the
        others (InboxFull is raised after them), and a receiver that does not get the
        message has its arena holds cleared."""
        holds = self._blocks
        full = None
        for i in range(at, len(targets)):
            sender = targets[i]
            try:
                if failed is not None:
                    exc, failed = failed, None
                    raise exc
                sent = sender.send(data)
            except errors.InboxClosed:
                self.router.forget(sender)
                sent = False
            except errors.InboxFull as exc:  # a block subscriber stayed full: the others still get it
                full = full or exc
                sent = False
            except errors.MessageTooLarge:
                self._unhold(targets[i:])
                raise errors.MessageTooLarge(
                    f"a message on topic {topic!r} is {len(data)} bytes; an inbox takes at "
                    f"most {sender.statistics().max_length} per message. Set "
                    f"ETHER_MAX_MESSAGE_BYTES (before tap) to allow more") from None
            except BaseException:
                # It may have gone in (a signal's exception lands anywhere):
                # leaving this receiver's bits set risks a leak, clearing them
                # a view of a reused block.
                self._unhold(targets[i + 1:])
                raise
            if sent:
                delivered += 1
            elif holds:
                self._unhold((sender,))  # not delivered: it will never release them itself
        if full is not None:
            raise full
        return delivered

    def _envelope(self, kind: int, topic: str, payload) -> tuple:
        """The envelope fields of a new message from this node, before its holds: the
        one constructor besides publish's inline copy (send lock held)."""
        self._seq = seq = self._seq + 1
        current = self._local.current
        cause, trace = codec.lineage(current, self.origin) if current is not None else (None, None)
        return (_WIRE, kind, topic, self.name, seq, _now_ns(), cause, trace, self.origin, payload)

    def _encode_for(self, targets: tuple, envelope: tuple) -> bytes:
        """Encode envelope fields (from _envelope, or a forwarded message's) whose
        arrays, if any, go to `targets` (send lock held)."""
        self._targets = targets
        holds = self._blocks
        if holds:
            holds.clear()
        try:
            return self._encode((*envelope, holds))
        except BaseException:
            self._unhold(targets)
            raise

    def _send_to(self, sender, envelope: tuple) -> None:
        """Encode and send to one inbox (send lock held)."""
        data = self._encode_for((sender,), envelope)
        try:
            sender.send(data)
        except BaseException:
            self._unhold((sender,))
            raise

    def _unhold(self, targets) -> None:
        """The message being sent will not reach targets: clear their bits on the
        arena blocks it carries."""
        blocks = self._blocks
        if blocks:
            arena = self._arena
            bits = arena.known_bits(t.consumer_token for t in targets)
            for _, block, _ in blocks:
                arena.release_bits(block, bits)

    def _count_arena_drop(self, topic: str, targets: tuple, exc: Exception) -> None:
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

    def send_control(self, inbox: str, topic: str, payload, *, timeout: float = 5.0) -> None:
        """A control message (any encodable payload) straight to one inbox, not
        through topics."""
        with self._send_lock:
            sender = self.router.sender_to(inbox, timeout=timeout)
            self._send_to(sender, self._envelope(codec.CONTROL, topic, payload))

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

    def forward(self, envelope: codec.Envelope, *, topic: str | None = None, payload=None) -> int:
        """Re-send a message to the subscribers of its topic (or `topic`), keeping its
        origin, sender, seq, time, cause and trace: what a bridge or a player does.
        Arena handles in it are replaced by inline arrays (a handle is only good
        for its own session's holders); `payload`, if given, is the payload's
        already-encoded MessagePack instead. Returns how many inboxes got it."""
        if payload is None:
            payload = self.inline_payload(envelope) if envelope.holds else envelope.payload
        if not isinstance(payload, msgspec.Raw):
            payload = msgspec.Raw(payload)
        topic = envelope.topic if topic is None else topic
        fields = (_WIRE, envelope.kind, topic, envelope.sender, envelope.seq, envelope.time_ns,
                  envelope.cause, envelope.trace, envelope.origin, payload)
        with self._send_lock:
            targets = self.router.targets(topic)
            if not targets:
                return 0
            data = self._encode_for(targets, fields)
            return self._send_rest(topic, targets, data, 0, None, 0)

    def inline_payload(self, envelope: codec.Envelope) -> bytes:
        """The envelope's payload (MessagePack) with every arena handle replaced by
        the inline array it names: what a recorder writes and a bridge sends."""
        return codec.inline_arrays(envelope, self._reader.view)

    def statistics(self) -> tuple:
        """A SenderStatistics of every inbox this node sends to (see Router)."""
        # The router is shared with publishing threads: read it under their lock
        # (a sender closed meanwhile would be freed under our feet).
        with self._send_lock:
            return self.router.statistics()

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

    def add_service(self, topic: str, serve: Callable[[codec.Envelope], None]) -> None:
        """Answer requests on topic (one handler per topic)."""
        if topic in self._services:
            raise errors.ConfigError(f"{self.name}: two methods serve {topic!r}")
        self._services[topic] = serve
        with self.session._directory as d:
            d.subscribe(topic, self.inbox.token)

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

    def arena_handle(self, array):
        """Put a large array into this process's arena for the message being
        encoded (called by the codec, under the send lock): its handle (an Ext),
        or None to send it inline."""
        targets = self._targets
        if array.nbytes < self._inline or not targets:
            return None
        arena = self._arena or self._open_arena()
        holders = arena.bits_for(targets)
        lent = arena.lent(array, holders)
        if lent is not None:  # already in shared memory: no copy at all
            block, generation, ext = lent
        else:
            dtype = array.dtype
            if dtype.hasobject or dtype.fields is not None:
                return None  # refused, with the reason, by the inline encoder
            # A full arena follows the subscriptions' policy, like a full inbox: wait
            # up to the longest block timeout; with only drop subscriptions, drop.
            wait = max((t.timeout for t in targets if t.policy == "block"), default=None)
            try:
                block, start, generation = arena.copy_in(array, holders, wait or 0.0)
            except ArenaFull as exc:
                if wait is None:
                    raise Dropped(str(exc)) from None
                raise
            ext = _arena_handle.encode(arena.token, block, generation, start, array)
        # The envelope's last field: msgspec encodes it after the payload, so
        # it lists every block the payload's arrays were given.
        self._blocks.append((arena.token, block, generation))
        return ext

    def _open_arena(self):
        self._arena = Writer(self.session, arena_bytes(), self._send_lock)
        return self._arena

    def loan(self, shape, dtype):
        """A writable array in shared memory: publishing it copies nothing."""
        with self._send_lock:
            if self._closing:
                raise errors.SessionClosed(f"{self.name}: the session was shut down")
            return (self._arena or self._open_arena()).loan(shape, dtype)

    def dispatch(self, batch: list[bytes]) -> None:
        self._depth += 1
        try:
            self._dispatch(batch)
        finally:
            self._depth -= 1

    def _dispatch(self, batch) -> None:
        for data in batch:
            try:
                envelope = codec.decode(data)
            except MalformedMessage as exc:
                log.error("%s: dropped a malformed message: %s", self.name, exc)
                continue
            try:
                self._deliver(envelope)
            except Exception:
                # One message never takes the loop (or the rest of its batch) down.
                log.error("%s: a %s on %r could not be handled:\n%s", self.name,
                          _KIND_NAMES.get(envelope.kind, "message"), envelope.topic,
                          traceback.format_exc().rstrip())

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
            self.handled += 1
            local = self._local
            previous, local.current = local.current, envelope
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
                local.current = previous
        elif kind == codec.REPLY:
            self._on_reply(envelope)
        elif kind == codec.REQUEST:
            service = self._services.get(envelope.topic)
            if service is None:
                log.error("%s: request for %r, which it does not serve", self.name, envelope.topic)
                return
            local = self._local
            previous, local.current = local.current, envelope
            try:
                service(envelope)
            finally:
                local.current = previous
        elif self.on_control is not None and envelope.topic != WAKE:  # a wake only ends a read
            self.on_control(envelope)

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
        else:  # re-entered from a handler: take replies now, everything else later
            for data in batch:
                try:
                    envelope = codec.decode(data)
                except MalformedMessage:
                    envelope = None
                if envelope is not None and envelope.kind == codec.REPLY:
                    self._on_reply(envelope)
                else:
                    self._deferred.append(data)
        with self._replies:
            self._replies.notify_all()

    def wait_until(self, done: Callable[[], bool], timeout: float | None, *,
                   describe: Callable[[], str], alive=None, gone: str = "") -> None:
        """Return once done() is true (checked under the condition's lock), reading
        the inbox meanwhile if no other thread does. Raise Timeout (with describe())
        after timeout seconds (None: no limit), or ServiceGone(gone) if alive()
        turns False."""
        deadline = None if timeout is None else time.monotonic() + timeout
        next_alive_check = time.monotonic() + 0.1
        while True:
            with self._replies:
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
            slice_s = 0.1 if left is None else min(left, 0.1)
            if self._consumer.acquire(blocking=False):
                try:
                    self.pump(slice_s)
                finally:
                    self._consumer.release()
            else:
                with self._replies:
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

    def request(self, topic: str, params, *, sender=None, what: str) -> tuple[int, object]:
        """Send a request to one subscriber of topic (round-robin) or to `sender`;
        returns (request id, the sender used)."""
        in_handler = self._consumer._is_owned() and self._depth > 0
        if sender is None:
            with self._send_lock:  # the router is shared with publish()
                targets = self.router.targets(topic)
            if in_handler and len(targets) > 1:  # never round-robin onto ourselves from a handler
                targets = tuple(t for t in targets if t.inbox != self.inbox.name) or targets
            if not targets:
                raise errors.ServiceNotFound(f"no live instance serves {what}")
            turn = self._round_robin.get(topic, 0)
            self._round_robin[topic] = turn + 1
            sender = targets[turn % len(targets)]
        if in_handler and sender.inbox == self.inbox.name:
            raise errors.EtherError(
                f"{self.name}: a handler cannot wait for its own instance's {what} (it would "
                f"wait for itself); call the method directly")
        request_id = next(self._request_ids)
        with self._replies:
            self._pending[request_id] = None
        with self._send_lock:
            try:
                self._send_to(sender, self._envelope(codec.REQUEST, topic,
                                                     (request_id, self.inbox.name, params)))
            except BaseException:
                with self._replies:
                    self._pending.pop(request_id, None)
                raise
        return request_id, sender

    def forget_inbox(self, sender) -> None:
        """The consumer behind sender died: drop the route and its directory entry."""
        with self._send_lock:
            self.router.forget(sender)
        with self.session._directory as d:
            d.remove_named(sender.inbox)

    def broadcast_request(self, topic: str, params) -> list[tuple[int, object]]:
        """Send one request to every subscriber of topic."""
        with self._send_lock:
            targets = self.router.targets(topic)
        sent = []
        try:
            for target in targets:
                sent.append(self.request(topic, params, sender=target, what=topic))
        except BaseException:
            with self._replies:  # nobody will wait for the ones already sent
                for request_id, _ in sent:
                    self._pending.pop(request_id, None)
            raise
        return sent

    def reply(self, request: codec.Request, topic: str, body: dict) -> None:
        """Answer a request. A caller that is gone (or whose inbox stays full) costs
        a log line, never the server."""
        try:
            self._reply(request, topic, body)
        except (errors.InboxClosed, errors.InboxNotFound, errors.InboxFull) as exc:
            log.warning("%s: could not reply to %r for %r: %s", self.name, request.reply_to, topic, exc)

    def _reply(self, request: codec.Request, topic: str, body: dict) -> None:
        body["id"] = request.id
        with self._send_lock:
            sender = self._reply_to.get(request.reply_to)
            if sender is None or sender.closed:
                sender = self._reply_to[request.reply_to] = self.router.sender_to(request.reply_to)
            self._send_to(sender, self._envelope(codec.REPLY, topic, body))

    def _on_reply(self, envelope: codec.Envelope) -> None:
        body = self.decoders.payload_dict(envelope)
        with self._replies:
            request_id = body.get("id")
            if request_id in self._pending and self._pending[request_id] is None:
                self._pending[request_id] = body
                self._replies.notify_all()
            else:
                self.late_replies += 1  # its caller gave up: never hand it to anyone else

    def wait_reply(self, request_id: int, timeout: float, *, what: str, alive=None) -> dict:
        """The reply to a request; raise Timeout after `timeout` s, or ServiceGone
        if alive() turns False. Either way the request is forgotten, so a late
        reply is dropped."""
        try:
            self.wait_until(lambda: self._pending.get(request_id) is not None, timeout,
                            describe=lambda: f"no reply from {what} within {timeout:g} s",
                            alive=alive, gone=f"{what} died before it replied")
        except BaseException:
            with self._replies:
                self._pending.pop(request_id, None)
            raise
        with self._replies:
            return self._pending.pop(request_id)

    @property
    def closed(self) -> bool:
        return self._closing or self.inbox.closed

    def wake(self) -> None:
        """Wake the thread blocked reading this node's inbox (it re-checks why it reads)."""
        try:
            self.router.sender_to(self.inbox.name).send(
                codec.encode_plain(codec.CONTROL, WAKE, self.name, {}))
        except errors.EtherError:
            pass

    def close(self) -> None:
        """Stop every waiter, then free the inbox - only once no thread is inside it."""
        self._closing = True
        with self._replies:
            self._replies.notify_all()  # followers see _closing at once
        self.wake()
        if self._consumer.acquire(timeout=CLOSE_TIMEOUT_S):
            try:
                with self._send_lock:
                    self.router.close()
                    if self._arena is not None:
                        self._arena.close()
                        self._arena = None
                self.inbox.close()
            finally:
                self._consumer.release()
        else:  # a handler still runs in the reader: leave its ring mapped rather than free it
            log.warning("%s: a handler still runs; its inbox is left to process exit", self.name)
            with self._send_lock:
                self.router.close()
