"""Lane: one way out of a node. A node has two: publishes, forwards and requests
go through its user lane; replies and control messages through its direct lane,
so that a publisher waiting for room in a full inbox never holds up an answer to
`ether.get`, a shutdown acknowledgement or another instance.

A lane is used by one thread at a time (its lock): it owns a Router, and so its
own Senders (one producer slot in each inbox it sends to), and the encoding
state the arena hook reads while a payload encodes: the receivers of the message
and the arena blocks its arrays were given. The arena itself is shared by both
lanes, under the node's arena lock.
"""
from __future__ import annotations

import threading

import msgspec

from .. import _errors as errors
from .._core import _arena_handle
from .._core._dtypes import np
from .._errors import ArenaFull, Dropped
from . import _codec as codec
from ._router import Router

__all__ = ["Lane", "BRIDGE_CLASS", "lane_turn"]

# The class name a bridge gives its inbox in the directory, followed by the hosts
# whose subscribers under `block` it forwards to: a publisher whose send to the
# bridge stayed full names them (the wait it saw is theirs, across the link).
BRIDGE_CLASS = "ether bridge; block subscribers on "

def lane_turn(lock) -> None:
    """Wait until `lock` (a lane's) is free, without taking it. On a publish,
    `with lock` costs about 400 ns (its __enter__/__exit__ go through generic
    calls), a plain acquire() first in a try and release() in its finally about
    150 (acquire() inside the try: a Ctrl-C raised just after it returns still
    releases). But a signal handler that raises while acquire() waits would make
    that finally release another thread's lock: so a publish that finds the lane
    taken waits here first, before its try, where an interruption holds nothing
    (and `with` is exact). Only a thread that takes the lane between that check
    and acquire(), and a signal in that wait, leave the window open."""
    with lock:
        pass


class Lane:
    def __init__(self, node, session):
        self.node = node
        self.lock = threading.Lock()
        self.router = Router(session)
        self.targets: tuple = ()   # receivers of the message being encoded (arena holders)
        self.blocks: list = []     # its arena blocks: [token, block, generation]
        # While the node is watched (_stats.py): topic -> [messages, bytes] sent through
        # this lane, arena arrays at their size; None otherwise, the one test publish makes.
        self.counts: dict[str, list[int]] | None = None
        self.array_bytes = 0       # arena arrays of the messages encoded since it was read
        self.encode = msgspec.msgpack.Encoder(enc_hook=codec.make_enc_hook(self.arena_handle)).encode

    # ---- arrays ----

    def arena_handle(self, array):
        """Put a large array into the node's arena for the message being encoded
        (called by the codec, lane lock held): its handle (an Ext), or None to send
        it inline."""
        targets = self.targets
        node = self.node
        if array.nbytes < node.inline_limit or not targets:
            return None
        lock = node.arena_lock
        if lock.locked():  # not `with` (see lane_turn): every array published
            lane_turn(lock)
        try:
            lock.acquire()
            arena = node._arena or node.arena()
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
        finally:
            lock.release()
        # The envelope's last field: msgspec encodes it after the payload, so
        # it lists every block the payload's arrays were given.
        self.blocks.append((arena.token, block, generation))
        self.array_bytes += array.nbytes
        return ext

    # ---- counting, while watched ----

    def count(self, topic: str, data: bytes | None) -> None:
        """Count one message on topic (data: what was sent; None if it went to
        nobody) when watched. The publish path inlines this."""
        counts = self.counts
        if counts is not None:
            c = counts.get(topic)
            if c is None:
                c = counts[topic] = [0, 0]
            c[0] += 1
            if data is not None:
                c[1] += len(data) + self.array_bytes
                self.array_bytes = 0

    def unhold(self, targets) -> None:
        """The message being sent will not reach targets: clear their bits on the
        arena blocks it carries."""
        blocks = self.blocks
        if blocks:
            node = self.node
            with node.arena_lock:
                arena = node.arena()
                bits = arena.known_bits(t.consumer_token for t in targets)
                for _, block, _ in blocks:
                    arena.release_bits(block, bits)

    def spill(self, topic: str, data: bytes, targets: tuple) -> bytes:
        """data is larger than an inbox record: put its payload into the node's arena
        (held by targets, and by them while they handle it) and return the envelope
        with a handle to it instead."""
        envelope = codec.decode(data)
        payload = np().frombuffer(memoryview(envelope.payload), dtype=np().uint8)
        wait = max((t.timeout for t in targets if t.policy == "block"), default=None)
        node = self.node
        with node.arena_lock:
            arena = node.arena()
            try:
                block, start, generation = arena.copy_in(payload, arena.bits_for(targets), wait or 0.0)
            except ArenaFull as exc:
                if wait is None:
                    raise Dropped(str(exc)) from None
                raise ArenaFull(f"a message on topic {topic!r} is {len(data)} bytes, more than an "
                                f"inbox record takes, and it does not fit the array arena: {exc}") from None
        held = (arena.token, block, generation)
        self.blocks.append(held)
        handle = _arena_handle.encode(arena.token, block, generation, start, payload)
        fields = (*codec.envelope_fields(
            envelope.kind | codec.SPILLED, envelope.topic, envelope.sender, envelope.seq,
            envelope.time_ns, envelope.cause, envelope.trace, envelope.origin, handle),
            [*envelope.holds, held])
        return self.encode(fields if envelope.replay_of is None else (*fields, envelope.replay_of))

    # ---- sending (lane lock held) ----

    def encode_for(self, targets: tuple, envelope: tuple, replay_of=None) -> bytes:
        """Encode envelope fields (Node._envelope's, or a forwarded message's) whose
        arrays, if any, go to `targets`; `replay_of`, the field after the holds, if given."""
        self.targets = targets
        holds = self.blocks
        if holds:
            holds.clear()
        self.array_bytes = 0
        try:
            if replay_of is not None:
                return self.encode((*envelope, holds, replay_of))
            return self.encode((*envelope, holds))
        except BaseException:
            self.unhold(targets)
            raise

    def send_to(self, sender, envelope: tuple) -> None:
        """Encode and send to one inbox."""
        data = self.encode_for((sender,), envelope)
        try:
            try:
                sender.send(data)
            except errors.MessageTooLarge:
                sender.send(self.spill(envelope[2], data, (sender,)))
        except BaseException:
            self.unhold((sender,))
            raise

    def send_batch(self, topic: str, targets: tuple, datas: list) -> int:
        """Send encoded messages without arena holds to each of targets, one batch
        (Sender.send_many) per receiver, with send_rest's rules: a closed inbox is
        forgotten, a full block subscriber does not stop the others (its InboxFull
        is raised after them), a drop-policy refusal is counted, and a receiver
        whose records are too small for one of them gets them one by one (the large
        ones spilled). Returns how many deliveries."""
        delivered = 0
        full = None
        count = len(datas)
        for sender in targets:
            try:
                sent = sender.send_many(datas)
            except errors.InboxClosed:
                self.router.forget(sender)
                continue
            except (errors.InboxFull, errors.ClaimSkipped) as exc:
                full = full or exc
                delivered += getattr(exc, "sent", 0)
                continue
            except errors.MessageTooLarge:
                for data in datas:
                    self.blocks.clear()   # a spilled one's blocks are its receiver's now
                    try:
                        delivered += self.send_rest(topic, (sender,), data, 0, None, 0)
                    except (errors.InboxFull, errors.ClaimSkipped) as exc:
                        full = full or exc
                        break
                self.blocks.clear()
                continue
            delivered += sent
            if sent < count:   # a full drop-policy inbox refused the rest
                self.node.drops.add(sender, topic, count - sent)
        if full is not None:
            raise full
        return delivered

    def send_rest(self, topic: str, targets: tuple, data: bytes, at: int, failed, delivered: int) -> int:
        """Send to targets[at:], the first of which raised `failed` already (if not
        None): a closed inbox is forgotten, a full block subscriber does not stop the
        others (InboxFull is raised after them), nor does one that skipped this
        sender's stalled record (ClaimSkipped, likewise), a message too large for a record is
        spilled into the arena, and a receiver that does not get the message has its
        arena holds cleared."""
        holds = self.blocks
        full = skipped = None
        i = at
        while i < len(targets):
            sender = targets[i]
            try:
                if failed is not None:
                    exc, failed = failed, None
                    raise exc
                sent = sender.send(data)
                if not sent:  # a full drop-policy inbox refused it
                    self.node.drops.add(sender, topic)
            except errors.InboxClosed:
                self.router.forget(sender)
                sent = False
            except errors.InboxFull as exc:  # a block subscriber stayed full: the others still get it
                full = full or self.explain_full(exc, sender, topic)
                sent = False
            except errors.ClaimSkipped as exc:  # we stalled and it skipped us: the others get it
                skipped = skipped or exc
                sent = False
            except errors.MessageTooLarge:
                # Larger than an inbox record: this and the remaining receivers get
                # the payload through the arena instead (then the same receiver again).
                try:
                    data = self.spill(topic, data, targets[i:])
                except Dropped as exc:
                    self.unhold(targets[i:])
                    self.node.count_arena_drop(topic, targets[i:], exc)
                    break
                except BaseException:
                    self.unhold(targets[i:])
                    raise
                continue
            except BaseException:
                # It may have gone in (a signal's exception lands anywhere):
                # leaving this receiver's bits set risks a leak, clearing them
                # a view of a reused block.
                self.unhold(targets[i + 1:])
                raise
            if sent:
                delivered += 1
            elif holds:
                self.unhold((sender,))  # not delivered: it will never release them itself
            i += 1
        if full is not None or skipped is not None:
            raise full or skipped
        return delivered

    def explain_full(self, exc, sender, topic: str):
        """exc (InboxFull) from `sender`; if its inbox is this host's bridge, an
        InboxFull that names the other hosts whose slow subscribers it waits for."""
        try:
            with self.node.session._directory as d:
                entry = d.find(sender.inbox)
        except errors.EtherError:
            return exc
        if entry is None or not entry.class_name.startswith(BRIDGE_CLASS):
            return exc
        hosts = entry.class_name[len(BRIDGE_CLASS):] or "another host"
        text = exc.strerror or str(exc)
        new = errors.InboxFull(exc.errno, f"{text} It is this host's bridge to other hosts: a "
                                          f"subscriber of {topic!r} under block on {hosts} is not "
                                          f"keeping up, and its wait reached this publisher "
                                          f"across the link.")
        new.sent = getattr(exc, "sent", 0)
        return new
