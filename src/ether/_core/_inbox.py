"""Inbox: the receiving end of a ring, owned by the process that created it."""
from __future__ import annotations

import logging
import math
import os
import time
import weakref
from collections import deque
from dataclasses import dataclass

from .. import _errors as errors
from .. import _settings as settings
from . import _names as names
from . import _ring as ring_mod
from . import _segment as segment

log = logging.getLogger("Ether")

# While the record at head is claimed but not committed, look for a dead owner
# this often. A live producer commits within microseconds; a dead one never does,
# and a stopped one is skipped after ETHER_UNBLOCK_TIMEOUT (see _recover).
STALL_CHECK_S = 0.1
# Longest single sleep in C, so Python-level signal handlers and recovery run.
WAIT_SLICE_S = 0.5
# An idle reader frees dead producers' slots at most this often: each look asks
# every producer's liveness (a lock file each), the largest part of an idle
# wake-up's cost in a process that many others send to (a bridge). A sender that
# finds no free slot reaps at once itself (Sender._connect).
REAP_IDLE_S = 2.0
READ_BUFFER = 1 << 18
READ_BATCH = 4096


@dataclass(frozen=True, slots=True)
class InboxStatistics:
    """A snapshot of one inbox's counters (all producers, past and present)."""
    name: str
    session: str
    capacity: int
    used: int             # bytes senders cannot use yet: claimed and not yet read (and the
                          # space of a skipped claim, kept while its stalled sender lives)
    max_length: int
    producers: int        # senders attached now
    sent: int             # records committed by all senders
    dropped: int          # sends refused because the ring was full (drop policy)
    blocked: int          # sends that waited for space (block policy)
    received: int         # records read out of the ring by this inbox
    received_bytes: int
    skipped_claims: int   # claims skipped: of dead producers, and of stalled ones (unblock timeout)
    skipped_bytes: int
    buffered: int         # records read from the ring, not yet returned by receive


def _validate(name, capacity, max_length, max_producers) -> bytes:
    if not isinstance(name, str) or not name:
        raise errors.ConfigError(f"inbox name must be a non-empty str, not {name!r}")
    raw = name.encode("utf-8")
    from ._directory import MAX_INBOX_NAME
    if len(raw) > MAX_INBOX_NAME:
        raise errors.ConfigError(f"inbox name {name!r} is {len(raw)} bytes; the limit is {MAX_INBOX_NAME}")
    for label, value in (("capacity", capacity), ("max_length", max_length), ("max_producers", max_producers)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise errors.ConfigError(f"inbox {name!r}: {label} must be a positive int, not {value!r}")
    if capacity & (capacity - 1) or capacity < ring_mod.MIN_CAPACITY:
        raise errors.ConfigError(
            f"inbox {name!r}: capacity {capacity} must be a power of two >= {ring_mod.MIN_CAPACITY}")
    if ring_mod.record_length(max_length) > capacity // 2:
        raise errors.ConfigError(
            f"inbox {name!r}: max_length {max_length} needs a capacity of at least "
            f"{2 * ring_mod.record_length(max_length)} (a record may use half the ring); got {capacity}")
    if max_producers > ring_mod.MAX_PRODUCERS:
        raise errors.ConfigError(
            f"inbox {name!r}: max_producers {max_producers} is above {ring_mod.MAX_PRODUCERS}")
    return raw


def _claim(t, session, name: str, where: str) -> None:
    """Under the directory's flock: free `name` if a dead consumer held it (its entry
    and segment go); InboxExists if a live one does."""
    existing = t.find(name)
    if existing is not None:
        if session._member_alive(existing.owner):
            raise errors.InboxExists(
                17, f"{where} already exists (consumer pid {existing.owner_pid})")
        t.remove(existing.index, existing.token)
        segment.unlink(names.inbox_segment(session.name, existing.token))


def _close_inbox(ring, seg, table, index, token, pid) -> None:
    if os.getpid() != pid:  # an inherited copy in a forked child owns nothing
        return
    ring.close()
    ring.free()
    if table.seg.map is not None:  # the session may already be gone at exit
        with table as t:
            t.remove(index, token)
    segment.unlink(seg.name)
    seg.close()


def _timeout_ns(timeout: float | None) -> float:
    if timeout is None:
        return math.inf
    if not isinstance(timeout, (int, float)) or timeout != timeout or timeout < 0:
        raise errors.ConfigError(f"timeout must be a number of seconds >= 0 or None, not {timeout!r}")
    return timeout


class Inbox:
    """The receiving end of one ring; any process of the session can send to it.

    Only the creating process reads it. ``receive`` returns one message,
    ``receive_many`` a batch; both wait with a timeout. ``drain`` and
    ``receive_nowait`` never wait. Not safe to share between threads.
    """

    def __init__(self, *a):
        raise TypeError("create an Inbox with Session.create_inbox(name)")

    @classmethod
    def _create(cls, session, name, capacity, max_length, max_producers) -> "Inbox":
        raw = _validate(name, capacity, max_length, max_producers)
        sid = session.name
        where = f"inbox {name!r} of session {sid!r}"
        size = ring_mod.segment_size(capacity, max_producers)
        table = session._directory
        # The directory's flock is held only to claim the name and a token, and to
        # add the entry: the segment is made and its ring laid out in between,
        # unlocked. Held across them, the flock serialized every process's start
        # (a tap's instances each waited 3-10 ms for the others' inboxes, 1 MB of
        # fallocate and a ring's layout each, longer when preempted while holding
        # it). Nothing finds the inbox before its entry; the owner's close removes
        # the segment of one that died in between (by its name).
        with table as t:
            _claim(t, session, name, where)
            token = t.next_token()
        seg = segment.Segment.create(names.inbox_segment(sid, token), size, what=where)
        ring = index = None
        try:
            ring_mod.Ring.initialize(seg.map, capacity, max_length, max_producers, session.token)
            ring = ring_mod.Ring(seg.map, where)
            with table as t:
                _claim(t, session, name, where)   # another process may have taken it meanwhile
                index = t.add(raw, token, session.token, capacity, max_length)
        except BaseException:
            if index is not None:   # added, and then interrupted: no entry without its ring
                with table as t:
                    t.remove(index, token)
            if ring is not None:
                ring.free()   # its export of the map, before the unmap
            segment.unlink(seg.name)
            seg.close()
            raise
        self = object.__new__(cls)
        self._name = name
        self._token = token
        self._session = session
        self._where = where
        self._ring = ring
        self._pending: deque[bytes] = deque()
        self._stall_since = 0.0   # last stall check (0: not stalled)
        self._stall_began = 0.0   # when the consumer first found head claimed and uncommitted
        self._reaped_at = 0.0
        self._read_batch = READ_BATCH
        ring.set_read_buffer(max(READ_BUFFER, max_length), READ_BATCH)
        self._finalizer = weakref.finalize(self, _close_inbox, ring, seg, table, index, token, os.getpid())
        return self

    @property
    def name(self) -> str:
        return self._name

    @property
    def read_batch(self) -> int:
        """The most records one read takes out of the ring (READ_BATCH unless
        lowered). A consumer whose batch is only safe once handled (a recorder:
        what it has read and not yet written is lost if it is killed) lowers it;
        what it does not read stays in the ring, where senders see it as used."""
        return self._read_batch

    @read_batch.setter
    def read_batch(self, count: int) -> None:
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= READ_BATCH:
            raise errors.ConfigError(
                f"{self._where}: read_batch must be an int from 1 to {READ_BATCH}, not {count!r}")
        self._read_batch = count

    @property
    def token(self) -> int:
        """The inbox's token in the session directory (names its segment)."""
        return self._token

    # ---- receiving ----

    def receive(self, timeout: float | None = None) -> bytes:
        """The next message; waits up to `timeout` seconds (None: no limit)."""
        pending = self._pending
        if pending:
            return pending.popleft()
        pending.extend(self._fill(timeout, READ_BATCH))
        return pending.popleft()

    def receive_nowait(self) -> bytes:
        """The next message if one is ready, else raise WouldBlock."""
        pending = self._pending
        if not pending:
            pending.extend(self._read(READ_BATCH)[1])
            if not pending:
                raise errors.WouldBlock(f"{self._where} has no message ready")
        return pending.popleft()

    def receive_many(self, max_count: int = READ_BATCH, timeout: float | None = None) -> list[bytes]:
        """Between 1 and max_count messages; waits up to `timeout` for the first."""
        if not self._pending:
            return self._fill(timeout, max_count)
        return self._take(max_count)

    def drain(self, max_count: int = READ_BATCH) -> list[bytes]:
        """Up to max_count messages that are ready now (possibly none)."""
        if not self._pending:
            return self._read(max_count)[1]   # InboxClosed once closed
        return self._take(max_count)

    def wait_readable(self, timeout: float | None = None) -> None:
        """Return once a message is ready; raise Timeout after `timeout` seconds."""
        if not self._pending:
            self._pending.extend(self._fill(timeout, READ_BATCH))

    # ---- internals ----

    def _take(self, max_count: int) -> list[bytes]:
        pending = self._pending
        if len(pending) <= max_count:
            out = list(pending)
            pending.clear()
            return out
        return [pending.popleft() for _ in range(max_count)]

    def _read(self, max_count: int) -> tuple[int, list[bytes]]:
        """(result, a batch read now: possibly empty); InboxClosed if closed."""
        ring = self._ring
        if ring is None:
            raise errors.InboxClosed(f"{self._where} is closed")
        rc, items = ring.read(min(max_count, self._read_batch))
        if items:
            self._stall_since = self._stall_began = 0.0
        elif rc == ring_mod.PENDING:
            self._stalled()
        return rc, items

    def _stalled(self) -> None:
        """The record at head is claimed and not committed: after STALL_CHECK_S of
        that, look for a dead owner."""
        now = time.monotonic()
        if not self._stall_began:
            self._stall_began = now
        if not self._stall_since:
            self._stall_since = now
        elif now - self._stall_since >= STALL_CHECK_S:
            self._stall_since = now
            self._recover(now - self._stall_began)

    def _fill(self, timeout: float | None, max_count: int) -> list[bytes]:
        """Wait for messages and return the batch read (never empty): receive_many's
        result as it is, not through _pending."""
        deadline = time.monotonic() + _timeout_ns(timeout)
        while True:
            rc, items = self._read(max_count)   # a stall it finds keeps the short slices
            if items:
                return items
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise errors.Timeout(f"no message arrived in {self._where} within {timeout} s")
            slice_s = STALL_CHECK_S if rc == ring_mod.PENDING else WAIT_SLICE_S
            ring = self._ring
            if ring is None:  # closed while this thread waited
                raise errors.InboxClosed(f"{self._where} is closed")
            if ring.wait(int(min(remaining, slice_s) * 1e9)) == ring_mod.TIMEOUT:
                self._reap_dead(REAP_IDLE_S)  # idle: a good moment to free dead producers' slots

    def _recover(self, stalled_for: float) -> None:
        """Skip a claim at head whose producers are all dead, or, once head has been
        stalled for ETHER_UNBLOCK_TIMEOUT, the claim of the one live producer that
        holds it (stopped, or a claim() left open: csrc/ether_ring.h, "Stalled
        producers"); free dead slots."""
        ring = self._ring
        alive = self._session._member_alive
        stalled = ring.stalled_slots()
        if stalled:
            live = [(slot, token) for slot, token in stalled if alive(token)]
            if not live:
                if ring.skip_dead([slot for slot, _ in stalled]):
                    self._stall_began = 0.0
            elif len(live) == 1 and stalled_for >= settings.unblock_timeout():
                slot, token = live[0]
                skipped = ring.skip_stalled(slot, [s for s, _ in stalled if s != slot])
                if skipped:
                    self._stall_began = 0.0
                    self._log_unblock(slot, token, skipped, stalled_for)
        self._reap_dead(force=True)

    def _log_unblock(self, slot: int, token: int, skipped: int, stalled_for: float) -> None:
        """Say which process stalled the inbox, and what it costs."""
        try:
            with self._session._directory as d:
                inboxes = [e.name for e in d.entries() if e.owner == token]
        except errors.EtherError:
            inboxes = []
        who = f"the sender in pid {self._ring.slot_pid(slot)} (member {token}"
        who += f", inbox {inboxes[0]!r})" if inboxes else ")"
        log.warning("%s: %s held a record uncommitted for %.1f s (ETHER_UNBLOCK_TIMEOUT is "
                    "%g s): skipped it (%d bytes) so the other senders can go on. Its send or "
                    "commit fails with ClaimSkipped; was it stopped (SIGSTOP, a debugger) or a "
                    "claim() left open?", self._where, who, stalled_for,
                    settings.unblock_timeout(), skipped)

    def _reap_dead(self, every: float = STALL_CHECK_S, force: bool = False) -> None:
        """Free the slots of dead producers (at most every `every` s unless forced)."""
        now = time.monotonic()
        if not force and now - self._reaped_at < every:
            return
        self._reaped_at = now
        self._ring.reap_dead(self._session._member_alive, self._session.token)

    # ---- introspection and closing ----

    def _forget(self) -> None:
        """After fork, in the child: this inbox belongs to the parent."""
        self._finalizer.detach()
        if self._ring is not None:
            self._ring.forget()
        self._ring = None

    def statistics(self) -> InboxStatistics:
        if self._ring is None:
            raise errors.InboxClosed(f"{self._where} is closed")
        s = self._ring.statistics()
        return InboxStatistics(
            self._name, self._session.name, s.capacity, s.used, s.max_length, s.producers,
            s.sent, s.dropped, s.blocked, s.received, s.received_bytes, s.skipped_claims,
            s.skipped_bytes, len(self._pending))

    def close(self) -> None:
        """Refuse further sends, wake blocked senders, and remove the segment.
        Messages already read into this process stay readable with drain()."""
        if self._finalizer.alive:
            self._finalizer()
        self._ring = None
        self._session._inboxes.discard(self)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def __enter__(self) -> "Inbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ether.Inbox {self._name!r} of session {self._session.name!r}{' closed' if self.closed else ''}>"
