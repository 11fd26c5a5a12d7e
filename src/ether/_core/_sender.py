"""Sender: one producer's attachment to another process's inbox."""
from __future__ import annotations

import errno
import math
import os
import time
import weakref
from array import array
from dataclasses import dataclass

from .. import _errors as errors
from . import _names as names
from . import _ring as ring_mod
from . import _segment as segment
from ._policy import POLICIES

# A block send waits for room in slices of at most this long, and between two
# slices checks that the inbox's consumer still lives: a dead consumer ends the wait
# within about this time, not at the timeout. (The check opens and flocks the
# consumer's member lock: microseconds, a few times a second, and only while full.)
LIVENESS_CHECK_S = 0.25
_LIVENESS_CHECK_NS = int(LIVENESS_CHECK_S * 1e9)


def _slice_ns(timeout_ns: int) -> int:
    """The first slice of a wait of timeout_ns (NO_WAIT stays NO_WAIT)."""
    return timeout_ns if timeout_ns == ring_mod.NO_WAIT else min(timeout_ns, _LIVENESS_CHECK_NS)


@dataclass(frozen=True, slots=True)
class SenderStatistics:
    """A snapshot of one sender's own counters and the target ring's fill."""
    inbox: str
    session: str
    sent: int
    sent_bytes: int
    dropped: int      # messages dropped because the inbox, or the array arena, was full (drop policy)
    blocked: int      # sends that had to wait for space (block policy)
    capacity: int
    used: int
    max_length: int   # the largest message the inbox accepts
    policy: str = "block"  # what this sender does when the inbox is full
    undelivered: int = 0   # messages not sent because the instance behind the inbox was down
                           # (restarting, or failed): counted by the publisher's router


def _close_sender(ring, seg, pid) -> None:
    if os.getpid() != pid:
        return
    ring.detach()
    ring.free()
    seg.close()


def _check_policy(policy: str, timeout: float, where: str) -> int:
    if policy not in POLICIES:
        raise errors.ConfigError(f"{where}: policy must be one of {POLICIES}, not {policy!r}")
    if (not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout != timeout
            or timeout <= 0 or math.isinf(timeout)):
        raise errors.ConfigError(f"{where}: timeout must be a finite number of seconds > 0, not {timeout!r}")
    return ring_mod.NO_WAIT if policy == "drop" else max(1, int(timeout * 1e9))


class Sender:
    """Appends messages to one inbox. Get one with ``Session.connect(name)``.

    ``policy="block"`` waits up to ``timeout`` seconds for space in a full inbox,
    then raises InboxFull; ``policy="drop"`` returns False at once and counts the
    drop. A wait ends early with InboxClosed if the inbox's consumer dies (it
    checks every LIVENESS_CHECK_S), and the dead consumer's inbox is then closed,
    so every other sender to it learns at once. Each message arrives whole, once,
    and in send order. Not safe to share between threads: give each thread its own
    Sender.
    """

    def __init__(self, *a):
        raise TypeError("get a Sender with Session.connect(name)")

    @classmethod
    def _connect(cls, session, name: str, policy: str, timeout: float) -> "Sender":
        sid = session.name
        where = f"inbox {name!r} of session {sid!r}"
        timeout_ns = _check_policy(policy, timeout, where)
        with session._directory as t:
            entry = t.find(name)
            known = [e.name + (" (no process: restarting or failed)" if e.placeholder else "")
                     for e in t.entries()]
        if entry is None:
            raise errors.InboxNotFound(f"session {sid!r} has no inbox named {name!r} (inboxes: {known})")
        if not session._member_alive(entry.owner):
            raise errors.InboxClosed(f"{where}: its consumer (pid {entry.owner_pid}) is dead")
        try:
            seg = segment.Segment.open(names.inbox_segment(sid, entry.token), what=where,
                                       min_size=ring_mod.segment_size(entry.capacity, 1))
        except FileNotFoundError:
            raise errors.InboxClosed(f"{where} was closed") from None
        try:
            ring = ring_mod.Ring(seg.map, where)
        except BaseException:
            seg.close()
            raise
        if ring.owner_token != entry.owner:
            ring.free()
            seg.close()
            raise errors.SegmentError(
                errno.EINVAL, f"{where}: the ring's owner token {ring.owner_token} is not the "
                f"consumer registered in the session ({entry.owner})")
        try:
            if not ring.attach(session.token):
                ring.reap_dead(session._member_alive, session.token)
                if not ring.attach(session.token):
                    raise errors.TooManyProducers(
                        f"{where}: all {ring.statistics().producers} producer slots are held by "
                        f"live senders; create the inbox with a larger max_producers")
        except BaseException:
            ring.free()
            seg.close()
            raise
        self = object.__new__(cls)
        self._ring = ring
        self._seg = seg
        self._session = session
        self._inbox = name
        self._owner = entry.owner
        self._owner_pid = entry.owner_pid
        self._where = where
        self._policy = policy
        self._timeout = timeout
        self._timeout_ns = timeout_ns
        self._slice_ns = _slice_ns(timeout_ns)  # a block wait's first slice
        self._loan = None
        self.arena_dropped = 0  # messages dropped before the ring: the array arena was full
        # The common case - bytes, default policy, accepted - is one C call. A block
        # wait in it lasts one liveness slice at most; _send waits out the rest.
        self.send = ring.fast_send(self._slice_ns, self._send)
        # The same, for a publish loop that inlines it: (state, timeout_ns, drops,
        # slow); see Ring.fast_parts.
        self.inline_send = (*ring.fast_parts, self._send)
        self._finalizer = weakref.finalize(self, _close_sender, ring, seg, os.getpid())
        return self

    @property
    def inbox(self) -> str:
        return self._inbox

    @property
    def policy(self) -> str:
        return self._policy

    @property
    def timeout(self) -> float:
        return self._timeout

    @property
    def consumer_token(self) -> int:
        """The member token of the process that reads the inbox."""
        return self._owner

    def consumer_alive(self) -> bool:
        """False once the process that reads the inbox has died."""
        return self._session._member_alive(self._owner)

    def send(self, data, *, policy: str | None = None, timeout: float | None = None) -> bool:
        """Append one message (bytes or any buffer). True if it went in, False if
        dropped under the drop policy."""
        # Replaced per instance by the binding's fast path, which falls back here.
        return self._send(data, policy, timeout)

    def _send(self, data, policy, timeout, rc) -> bool:
        """Everything but the fast path: other policies, buffers, and any result but OK."""
        if policy is None and timeout is None:
            timeout_ns = self._timeout_ns
        else:
            timeout_ns = _check_policy(policy or self._policy, timeout or self._timeout, self._where)
        ring = self._ring
        if ring is None:
            raise errors.InboxClosed(f"sender to {self._where} is closed")
        if rc is None:
            try:
                rc = ring.write(data, _slice_ns(timeout_ns))
            except TypeError:
                raise TypeError(f"send() takes bytes or a buffer, not {type(data).__name__}") from None
        else:
            ring.check(rc, len(data))
        if rc == ring_mod.OK:
            return True
        if rc == ring_mod.TIMEOUT or rc == ring_mod.INTERRUPTED:
            end = self._wait_end(timeout_ns)
            while rc == ring_mod.TIMEOUT or rc == ring_mod.INTERRUPTED:
                left = self._next_slice(end)
                if not left:
                    break
                rc = ring.write(data, left)
            if rc == ring_mod.OK:
                return True
        return self._outcome(rc, 1, 0, timeout_ns)

    def _wait_end(self, timeout_ns: int) -> int:
        """When the wait the last call began ends (time.monotonic_ns clock): its
        first slice's deadline, less the slice, plus the whole timeout."""
        return self._ring.wait_deadline_ns() - _slice_ns(timeout_ns) + timeout_ns

    def _next_slice(self, end: int) -> int:
        """Between two slices of a block wait (or after a signal handler ran): raise
        InboxClosed if the consumer died, else the length of the next slice, 0 once
        the wait is over. The next call continues this wait (not counted again)."""
        if not self._session._member_alive(self._owner):
            self._consumer_died()
        left = end - time.monotonic_ns()
        if left <= 0:
            return 0
        self._ring.continue_wait()
        return min(left, _LIVENESS_CHECK_NS)

    def _consumer_died(self):
        """The inbox's consumer is dead: close its inbox, so that every sender waiting
        for room in it wakes with CLOSED and none waits again, and raise."""
        self._ring.close()
        raise errors.InboxClosed(
            f"{self._where}: its consumer process died (pid {self._owner_pid}); the inbox "
            f"is closed")

    def send_many(self, items, *, policy: str | None = None, timeout: float | None = None) -> int:
        """Append messages in order; returns how many went in (the rest were dropped
        under the drop policy). Under the block policy, raises InboxFull if the
        timeout passes, with `.sent` telling how many went in."""
        if policy is None and timeout is None:
            timeout_ns, slice_ns = self._timeout_ns, self._slice_ns
        else:
            timeout_ns = _check_policy(policy or self._policy, timeout or self._timeout, self._where)
            slice_ns = _slice_ns(timeout_ns)
        if not isinstance(items, (list, tuple)):
            items = list(items)
        if not items:
            return 0
        if self._ring is None:
            raise errors.InboxClosed(f"sender to {self._where} is closed")
        try:
            blob = b"".join(items)
        except TypeError:
            raise TypeError("send_many() takes a sequence of bytes-like objects") from None
        lengths = array("I", map(len, items))
        if sum(lengths) != len(blob):  # a buffer whose len() is not its size in bytes
            lengths = array("I", (memoryview(i).nbytes for i in items))
        ring = self._ring
        rc, n = ring.write_batch(blob, lengths, slice_ns)
        if rc == ring_mod.TIMEOUT or rc == ring_mod.INTERRUPTED:
            end = self._wait_end(timeout_ns)
            while (rc == ring_mod.TIMEOUT or rc == ring_mod.INTERRUPTED) and n < len(items):
                left = self._next_slice(end)
                if not left:
                    break
                rc, more = ring.write_batch(blob[sum(lengths[:n]):], lengths[n:], left)
                n += more
        if rc == ring_mod.OK:
            return n
        return self._outcome(rc, len(items), n, timeout_ns)

    def _outcome(self, rc: int, count: int, sent: int, timeout_ns: int):
        if rc == ring_mod.FULL:  # drop policy
            return sent if count > 1 else False
        if rc == ring_mod.SKIPPED:
            exc = errors.ClaimSkipped(
                f"{self._where}: this sender held a record uncommitted longer than the "
                f"consumer's unblock timeout (ETHER_UNBLOCK_TIMEOUT; was this process "
                f"stopped?), and the consumer skipped it; {sent} of {count} message(s) went "
                f"in, the rest were not delivered")
            exc.sent = sent
            raise exc
        if rc == ring_mod.CLOSED:
            if not self._session._member_alive(self._owner):
                raise errors.InboxClosed(f"{self._where}: its consumer process died (pid "
                                         f"{self._owner_pid}); the inbox is closed")
            raise errors.InboxClosed(f"{self._where} was closed by its consumer")
        if rc == ring_mod.TIMEOUT:
            if not self._session._member_alive(self._owner):
                self._consumer_died()
            s = self._ring.statistics()
            exc = errors.InboxFull(
                errno.ETIMEDOUT,
                f"{self._where} stayed full for {timeout_ns / 1e9:g} s "
                f"({s.used} of {s.capacity} bytes in use); {sent} of {count} message(s) went in. "
                f"Is its consumer keeping up?")
            exc.sent = sent
            raise exc
        raise errors.EtherError(f"{self._where}: send failed ({ring_mod.describe(rc)})")

    def claim(self, length: int, *, timeout: float | None = None) -> "Claim":
        """Reserve a `length`-byte record to fill in place; commit it with
        ``loan.commit()`` or by leaving the ``with`` block."""
        if self._ring is None:
            raise errors.InboxClosed(f"sender to {self._where} is closed")
        timeout_ns = self._timeout_ns if timeout is None else _check_policy("block", timeout, self._where)
        if self._loan is not None and self._loan() is not None:
            raise errors.EtherError(f"sender to {self._where} has a loan outstanding: commit it first")
        ring = self._ring
        rc, offset = ring.try_claim(length, _slice_ns(timeout_ns))
        if rc == ring_mod.TIMEOUT or rc == ring_mod.INTERRUPTED:
            end = self._wait_end(timeout_ns)
            while rc == ring_mod.TIMEOUT or rc == ring_mod.INTERRUPTED:
                left = self._next_slice(end)
                if not left:
                    break
                rc, offset = ring.try_claim(length, left)
        if rc != ring_mod.OK:
            self._outcome(rc, 1, 0, timeout_ns)
            raise errors.WouldBlock(f"{self._where} is full")
        loan = Claim(self._ring, memoryview(self._seg.map)[offset:offset + length])
        self._loan = weakref.ref(loan)
        return loan

    def statistics(self) -> SenderStatistics:
        if self._ring is None:
            raise errors.InboxClosed(f"sender to {self._where} is closed")
        s = self._ring.statistics(producer=True)
        return SenderStatistics(self._inbox, self._session.name, s.sent, s.sent_bytes,
                                s.dropped + self.arena_dropped, s.blocked, s.capacity, s.used, s.max_length,
                                self._policy)

    def _forget(self) -> None:
        """After fork, in the child: the slot belongs to the parent's sender."""
        self._finalizer.detach()
        if self._ring is not None:
            self._ring.forget()
        self._ring = None

    def close(self) -> None:
        """Release the producer slot; messages already sent stay in the inbox.
        A loan still outstanding is given back (never delivered)."""
        loan = self._loan() if self._loan is not None else None
        if loan is not None:
            loan.abort()
        if self._ring is not None:
            self._ring.disable_fast_send()
        if self._finalizer.alive:
            self._finalizer()
        self._ring = None

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def __enter__(self) -> "Sender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ether.Sender to {self._where}{' closed' if self.closed else ''}>"


class Claim:
    """A claimed record being filled in place (zero-copy send).

    ``commit()`` delivers it; ``abort()`` gives it back, and the consumer skips it.
    Leaving a ``with`` block commits, unless an exception is on its way, which
    aborts. A loan dropped without either is aborted, so it never blocks the inbox.
    """

    __slots__ = ("_ring", "buffer", "__weakref__")

    def __init__(self, ring, buffer: memoryview):
        self._ring = ring
        self.buffer = buffer

    def commit(self) -> None:
        if self.buffer is not None:
            self.buffer.release()
            self.buffer = None
            self._ring.commit()

    def abort(self) -> None:
        if self.buffer is not None:
            self.buffer.release()
            self.buffer = None
            self._ring.abort()

    def __enter__(self) -> memoryview:
        return self.buffer

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def __del__(self) -> None:
        self.abort()
