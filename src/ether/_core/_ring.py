"""The binding to the C ring: the only module that imports the compiled core.

Ring owns one cffi handle over one mapped segment and turns every C result code
into a typed exception or a plain return value. No ``ffi``/``lib`` object leaves
this module.
"""
from __future__ import annotations

import enum
import secrets
from typing import NamedTuple

import msgspec

from .. import _errors as errors

try:
    from .._ether_c import ffi, lib
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "ether: the compiled core (ether._ether_c) is missing. Install the package with "
        "'pip install -e .' (or 'pip install .') so that its C core is built; that needs "
        f"a C compiler and the Python headers. ({exc})"
    ) from exc

# ether_ring_result_t, named as the compiler numbers it.
RingResult = enum.IntEnum("RingResult", sorted(
    ((name.removeprefix("ETHER_RING_"), value)
     for name, value in ffi.typeof("ether_ring_result_t").relements.items()),
    key=lambda item: abs(item[1])))
# The outcomes callers compare, as plain ints (compared per message).
OK = int(RingResult.OK)
EMPTY = int(RingResult.EMPTY)
PENDING = int(RingResult.PENDING)
FULL = int(RingResult.FULL)
TIMEOUT = int(RingResult.TIMEOUT)
INTERRUPTED = int(RingResult.INTERRUPTED)
CLOSED = int(RingResult.CLOSED)
SKIPPED = int(RingResult.SKIPPED)
_NO_SLOT = int(RingResult.NO_SLOT)
_TOO_LARGE = int(RingResult.TOO_LARGE)
_CORRUPT = int(RingResult.CORRUPT)
_BAD_LAYOUT = int(RingResult.BAD_LAYOUT)

# ether_ring_read_framed's output: one MessagePack array of bin items. Decoded by
# msgspec, never unpickled: the payloads come from other processes.
_decode_batch = msgspec.msgpack.Decoder(list[bytes]).decode
_FRAMED_HEAD = lib.ETHER_RING_FRAMED_HEAD  # the array32 header
_FRAMED_ITEM = lib.ETHER_RING_FRAMED_ITEM  # the bin32 header of each record

RECORD_HEADER_LENGTH = lib.ETHER_RING_HEADER_LENGTH
RECORD_ALIGNMENT = lib.ETHER_RING_ALIGNMENT
MIN_CAPACITY = lib.ETHER_RING_MIN_CAPACITY
MAX_PRODUCERS = lib.ETHER_RING_MAX_PRODUCERS
SLOT_LENGTH = lib.ETHER_RING_SLOT_LENGTH
SLOTS_OFFSET = lib.ETHER_RING_SLOTS_OFFSET
HOLES_OFFSET = lib.ETHER_RING_HOLES_OFFSET
HOLE_LENGTH = lib.ETHER_RING_HOLE_LENGTH
MAX_HOLES = lib.ETHER_RING_MAX_HOLES
NO_WAIT = lib.ETHER_RING_NO_WAIT
WRITE = lib.ether_ring_write  # what an inlined fast send calls (Ring.fast_parts)
REAPING = lib.ETHER_RING_REAPING
# Results that are the caller's error or a broken segment, never a normal outcome.
_RAISE = frozenset(int(r) for r in (RingResult.TOO_LARGE, RingResult.CORRUPT, RingResult.INVALID,
                                    RingResult.BAD_LAYOUT, RingResult.NO_MEMORY))


class RingStatistics(NamedTuple):
    capacity: int
    used: int
    head: int
    tail: int
    max_length: int
    producers: int
    sent: int
    sent_bytes: int
    dropped: int
    blocked: int
    received: int
    received_bytes: int
    skipped_claims: int
    skipped_bytes: int
    closed: bool
    released: int     # producers may reuse space before this position
    holes: int        # skipped claims of live producers whose space is still held for them


def segment_size(capacity: int, max_producers: int) -> int:
    """Bytes a ring segment needs, or 0 if the parameters are invalid."""
    return lib.ether_ring_segment_size(capacity, max_producers)


def record_length(length: int) -> int:
    """Bytes one record of `length` payload bytes occupies in the ring."""
    a = RECORD_ALIGNMENT
    return (RECORD_HEADER_LENGTH + length + a - 1) & ~(a - 1)


def layout_offsets() -> dict[str, int]:
    """Compiler offsets of the shared-memory structs (for the layout test)."""
    out = {}
    for struct, fields in (
        ("ether_ring_descriptor_t", ("magic", "layout_version", "data_offset", "capacity", "segment_size",
                               "max_length", "max_producers", "commit_key", "owner_token")),
        ("ether_ring_header_t", ("head", "consumer_waiting", "closed", "received", "received_bytes",
                           "skipped_claims", "skipped_bytes", "released", "hole_count", "tail",
                           "head_cache", "cover_at", "cover_wanted", "data_futex",
                           "space_futex", "space_waiters", "retired_sent", "retired_sent_bytes",
                           "retired_dropped", "retired_blocked", "holes")),
        ("ether_ring_slot_t", ("token", "intent_start", "intent_end", "next_seq", "sent", "sent_bytes",
                         "dropped", "blocked", "skip", "pid")),
        ("ether_ring_hole_t", ("start", "end", "next", "intent", "token", "cover_start", "cover_end",
                         "slot", "state")),
        ("ether_ring_record_header_t", ("commit", "length", "type", "producer", "seq")),
    ):
        for f in fields:
            out[f"{struct}.{f}"] = ffi.offsetof(struct, f)
        out[f"{struct}.sizeof"] = ffi.sizeof(struct)
    return out


def describe(rc: int) -> str:
    """The name of a ring result, for messages."""
    try:
        return f"ETHER_RING_{RingResult(rc).name}"
    except ValueError:
        return f"result {rc}"


def _statistics(st) -> RingStatistics:
    return RingStatistics(
        st.capacity, st.used, st.head, st.tail, st.max_length, st.producers, st.sent,
        st.sent_bytes, st.dropped, st.blocked, st.received, st.received_bytes,
        st.skipped_claims, st.skipped_bytes, bool(st.closed), st.released, st.holes)


def read_statistics(buffer, where: str) -> RingStatistics:
    """The counters of the ring in `buffer`, which may be a read-only mapping: what
    an inspector reads without attaching. The layout is validated as on open (so
    every slot read lies inside the buffer); after that the C side only loads."""
    buf = ffi.from_buffer(buffer)
    try:
        handle = ffi.new("ether_ring_t **")
        rc = lib.ether_ring_open(buf, len(buf), handle)
        if rc != OK:
            raise errors.SegmentError(
                f"{where}: the segment is not an Ether ring of this layout version ({describe(rc)})")
        try:
            st = ffi.new("ether_ring_stats_t *")
            lib.ether_ring_statistics(handle[0], st)
            return _statistics(st)
        finally:
            lib.ether_ring_free(handle[0])
    finally:
        ffi.release(buf)


class Ring:
    """A process-local handle over one mapped ring segment.

    `where` names the ring in error messages (e.g. "inbox 'worker' of session 'ab12'").
    The caller keeps `buffer` (a writable mmap) alive and open while the Ring lives.
    """

    __slots__ = ("_buf", "_handle", "_where", "_out", "_out_view", "_fast", "fast_parts",
                 "_out_capacity", "_count", "_bytes", "_written", "_offset", "__weakref__")

    def __init__(self, buffer, where: str):
        self._where = where
        self._buf = ffi.from_buffer(buffer, require_writable=True)
        handle = ffi.new("ether_ring_t **")
        rc = lib.ether_ring_open(self._buf, len(self._buf), handle)
        if rc != OK:
            ffi.release(self._buf)
            if rc == _BAD_LAYOUT:
                raise errors.SegmentError(
                    f"{where}: the segment is not an Ether ring of this layout version "
                    f"(bad magic, version or sizes)")
            raise errors.SegmentError(f"{where}: cannot open ring ({describe(rc)})")
        self._handle = handle[0]
        self._out = None
        self._fast = None
        self.fast_parts = None
        self._count = ffi.new("uint32_t *")
        self._bytes = ffi.new("uint64_t *")
        self._written = ffi.new("uint32_t *")
        self._offset = ffi.new("uint64_t *")

    @staticmethod
    def initialize(buffer, capacity: int, max_length: int, max_producers: int, owner_token: int) -> None:
        """Lay out a fresh ring in a zeroed writable buffer."""
        buf = ffi.from_buffer(buffer, require_writable=True)
        try:
            rc = lib.ether_ring_init(buf, len(buf), capacity, max_length, max_producers,
                                     owner_token, secrets.randbits(64))
        finally:
            ffi.release(buf)
        if rc != OK:
            raise errors.ConfigError(
                f"invalid ring parameters: capacity={capacity} (a power of two, "
                f">= {MIN_CAPACITY}), max_length={max_length} (a record must fit in half "
                f"the capacity), max_producers={max_producers} (1..{MAX_PRODUCERS})")

    def forget(self) -> None:
        """In a forked child: drop the inherited handle without touching shared state."""
        self.disable_fast_send()
        self._handle = None

    def free(self) -> None:
        """Drop the handle and the buffer export; the Ring is unusable afterwards."""
        self.disable_fast_send()
        if self._handle is not None:
            lib.ether_ring_free(self._handle)
            self._handle = None
            ffi.release(self._buf)
            if self._out is not None:
                self._out_view.release()
                self._out = None

    @property
    def owner_token(self) -> int:
        """The member token of the consumer that created the ring."""
        return lib.ether_ring_owner_token(self._handle)

    # ---- producer side ----

    def attach(self, token: int) -> bool:
        rc = lib.ether_ring_attach(self._handle, token)
        if rc == OK:
            return True
        if rc == _NO_SLOT:
            return False
        raise errors.EtherError(f"{self._where}: attach failed ({describe(rc)})")

    def detach(self) -> None:
        lib.ether_ring_detach(self._handle)

    def fast_send(self, timeout_ns: int, slow):
        """A send function for the common case (bytes, default policy) that makes one
        C call; anything else, and any result but OK (or FULL under the drop policy:
        False), goes to slow(data, policy, timeout, rc) with the result code, or
        rc=None if nothing was tried. It stops
        touching the ring once `disable_fast_send` is called."""
        write = lib.ether_ring_write
        state = [self._handle]
        self._fast = state

        drops = timeout_ns == NO_WAIT  # a full drop-policy inbox is an outcome, not a case for slow()
        # For a caller that inlines send() (a publish loop: one Python frame less per
        # receiver): ([handle or None once disabled], timeout_ns, drops). It writes
        # with lib.ether_ring_write (WRITE) when the handle is not None, and calls
        # slow(data, None, None, rc) for any result but OK (and FULL under drops).
        self.fast_parts = (state, timeout_ns, drops)

        def send(data, *, policy=None, timeout=None):
            handle = state[0]
            if handle is not None and policy is None and timeout is None and type(data) is bytes:
                rc = write(handle, data, len(data), timeout_ns)
                if rc == OK:
                    return True
                if rc == FULL and drops:  # a watcher that lags costs its publishers one C call
                    return False
                return slow(data, policy, timeout, rc)
            return slow(data, policy, timeout, None)

        return send

    def disable_fast_send(self) -> None:
        if self._fast is not None:
            self._fast[0] = None

    def write(self, data, timeout_ns: int) -> int:
        """Append one record; returns OK, FULL, TIMEOUT, INTERRUPTED or CLOSED."""
        if type(data) is not bytes:
            data = ffi.from_buffer(data)
        return self.check(lib.ether_ring_write(self._handle, data, len(data), timeout_ns), len(data))

    def check(self, rc: int, length: int) -> int:
        """Raise for a result that is an error, not an outcome; else return it."""
        if rc in _RAISE:
            self._raise(rc, length)
        return rc

    def write_batch(self, blob: bytes, lengths, timeout_ns: int) -> tuple[int, int]:
        """Append records laid end to end in blob; returns (result, records written)."""
        lens = ffi.from_buffer("uint32_t[]", lengths)
        rc = lib.ether_ring_write_batch(self._handle, blob, lens, len(lengths), timeout_ns,
                                        self._written)
        if rc in _RAISE:
            self._raise(rc, max(lengths))
        return rc, self._written[0]

    def try_claim(self, length: int, timeout_ns: int) -> tuple[int, int]:
        """Reserve one record; returns (result, payload offset in the segment)."""
        rc = lib.ether_ring_try_claim(self._handle, length, timeout_ns, self._offset)
        if rc in _RAISE:
            self._raise(rc, length)
        return rc, self._offset[0]

    def commit(self) -> None:
        if self._handle is None:
            raise errors.InboxClosed(f"{self._where}: the sender was closed before the commit")
        rc = lib.ether_ring_commit(self._handle)
        if rc == SKIPPED:
            raise errors.ClaimSkipped(
                f"{self._where}: the claim was held uncommitted longer than the consumer's "
                f"unblock timeout (ETHER_UNBLOCK_TIMEOUT) and the consumer skipped it; it was "
                f"not delivered (was this process stopped?)")
        if rc != OK:
            raise errors.EtherError(f"{self._where}: commit without a claim")

    def abort(self) -> None:
        """Give back a loan: the consumer skips it."""
        if self._handle is not None:
            lib.ether_ring_abort(self._handle)

    def wait_deadline_ns(self) -> int:
        """The deadline (time.monotonic_ns clock) of the last write's wait for space,
        or 0 if it did not wait."""
        return lib.ether_ring_wait_deadline(self._handle)

    def continue_wait(self) -> None:
        """The next write, batch or claim continues the last one's wait: it is not
        counted as another blocked send."""
        lib.ether_ring_continue_wait(self._handle)

    # ---- consumer side ----

    def set_read_buffer(self, capacity: int, max_count: int) -> None:
        # Room for max_count records' framing on top of the payloads.
        capacity += _FRAMED_HEAD + _FRAMED_ITEM * max_count
        self._out = ffi.new("char[]", capacity)
        self._out_view = memoryview(ffi.buffer(self._out))
        self._out_capacity = capacity

    def read(self, max_count: int) -> tuple[int, list[bytes]]:
        """Drain up to max_count records; returns (result, payloads)."""
        rc = lib.ether_ring_read_framed(self._handle, self._out, self._out_capacity,
                                        max_count, self._count, self._bytes)
        if self._count[0] == 0:
            if rc == _CORRUPT:
                self._raise(rc, 0)
            return rc, []
        # The C side framed the batch as a MessagePack array of bin items, with every
        # length from a checked record header: msgspec builds the list in one call.
        out = _decode_batch(self._out_view[:self._bytes[0]])
        # On CORRUPT, hand back what was good; the next read raises at the bad record.
        return (OK if rc == _CORRUPT else rc), out

    def wait(self, timeout_ns: int) -> int:
        """Wait for a committed record at head: OK, TIMEOUT or INTERRUPTED."""
        return lib.ether_ring_wait(self._handle, timeout_ns)

    def stalled_slots(self) -> list[tuple[int, int]]:
        """(slot, token) of every producer whose claim covers an uncommitted head."""
        n = lib.ether_ring_max_producers(self._handle)
        slots = ffi.new("uint32_t[]", n)
        tokens = ffi.new("uint64_t[]", n)
        rc = lib.ether_ring_stalled_slots(self._handle, slots, tokens, n, self._count)
        if rc != PENDING:
            return []
        return [(slots[i], tokens[i]) for i in range(self._count[0])]

    def skip_dead(self, slots: list[int]) -> int:
        """Skip the uncommitted claim at head owned by dead slots; returns bytes skipped."""
        arr = ffi.new("uint32_t[]", slots)
        skipped = ffi.new("uint64_t *")
        rc = lib.ether_ring_skip_dead(self._handle, arr, len(slots), skipped)
        if rc == _CORRUPT:
            self._raise(rc, 0)
        return skipped[0] if rc == OK else 0

    def skip_stalled(self, slot: int, dead: list[int]) -> int:
        """Skip the uncommitted claim at head of the live producer `slot`, which held
        it past the unblock timeout (`dead`: the other slots covering head, found
        dead); returns the bytes skipped, 0 if it committed meanwhile or cannot be
        skipped yet."""
        arr = ffi.new("uint32_t[]", dead or [0])
        skipped = ffi.new("uint64_t *")
        rc = lib.ether_ring_skip_stalled(self._handle, slot, arr, len(dead), skipped)
        if rc == _CORRUPT:
            self._raise(rc, 0)
        return skipped[0] if rc == OK else 0

    def slot_pid(self, slot: int) -> int:
        """The process id the owner of `slot` attached from (0 if unknown)."""
        return lib.ether_ring_slot_pid(self._handle, slot)

    def slot_tokens(self) -> list[tuple[int, int]]:
        """(slot, token) of every attached slot."""
        out = []
        for i in range(lib.ether_ring_max_producers(self._handle)):
            token = lib.ether_ring_slot_token(self._handle, i)
            if token:
                out.append((i, token))
        return out

    def reap_dead(self, alive, reaper: int) -> None:
        """Free the slots of dead producers (alive(token) says who lives); reaper is
        the caller's own token. A slot whose reaper died is taken over."""
        for slot, token in self.slot_tokens():
            if not alive(token & ~REAPING):
                lib.ether_ring_reap(self._handle, slot, token, reaper)

    def close(self) -> None:
        lib.ether_ring_close(self._handle)

    def statistics(self, producer: bool = False) -> RingStatistics:
        """The ring's counters; with producer=True, sent/dropped/blocked are this slot's."""
        st = ffi.new("ether_ring_stats_t *")
        (lib.ether_ring_producer_statistics if producer else lib.ether_ring_statistics)(self._handle, st)
        return _statistics(st)

    def _raise(self, rc: int, length: int):
        if rc == _TOO_LARGE:
            raise errors.MessageTooLarge(
                f"{self._where}: a {length}-byte message is larger than the inbox's "
                f"max_length; create the inbox with a larger max_length")
        if rc == _CORRUPT:
            raise errors.RingCorrupt(
                f"{self._where}: a record header failed its bounds check; the segment "
                f"was written by something other than Ether")
        raise errors.EtherError(f"{self._where}: ring call failed ({describe(rc)})")
