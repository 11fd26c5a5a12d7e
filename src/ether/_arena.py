"""The array arena: shared-memory blocks in which large arrays travel by handle.

One arena per publishing process, created on its first large array. Only its
owner allocates (under the node's send lock); readers only clear their bit.

Segment layout (little-endian; see docs/design/arena.md for the why):

      0 u64 magic        b"ETHERARN"
      8 u32 version      ARENA_LAYOUT_VERSION
     12 u32 max_blocks
     16 u64 size         segment bytes
     24 u64 data_offset  start of the data area (page aligned)
     32 u64 owner        member token of the publishing process
     40 u32 freed        bumped by a holder whose release freed a block (futex word)
     44 u32 waiting      1 while the owner sleeps for room (holders then wake it)
     48 .. 63 reserved
     64 u64 holders[64]  member token of each holder bit (0: free); owner writes
    576 block[max_blocks], 32 B each:
          0 u64 holders   bitmap of processes that may hold views (atomic):
                          set by the owner before a handle is sent, cleared
                          bit by bit by each holder (fetch_and) when its last
                          view dies, or by the owner for a dead holder
          8 u64 offset    in the data area
         16 u64 length
         24 u64 generation  bumped by the owner at each allocation of the block

A block is free again once its bitmap is zero. Allocation is next-fit over the
gaps between live blocks, from where the last allocation ended: blocks are reused
in roughly the order they were taken, and a long-held block costs only its own
space. ArenaFull names the sizes when no gap fits.
"""
from __future__ import annotations

import collections
import errno
import math
import os
import struct
import threading
import time
import weakref

from . import _errors as errors
from . import _names as names
from . import _segment as segment
from ._ring import ffi, lib

ARENA_MAGIC = b"ETHERARN"
ARENA_LAYOUT_VERSION = 1
HOLDERS = 64
HOLDERS_OFFSET = 64
BLOCKS_OFFSET = HOLDERS_OFFSET + 8 * HOLDERS
BLOCK_ENTRY = 32
MAX_BLOCKS = 4096
_HEADER = struct.Struct("<8sIIQQQ")
SWEEP_INTERVAL_S = 0.5
FREED_OFFSET = 40
WAITING_OFFSET = 44


class ArenaFull(errors.EtherError):
    """No room in the publisher's arena for an array."""


def arena_bytes() -> int:
    """ETHER_ARENA_BYTES if set; else 512 MiB, or a quarter of the free /dev/shm if
    that is less (but 16 MiB at least), so a small /dev/shm (a container's 64 MiB)
    still taps."""
    raw = os.environ.get("ETHER_ARENA_BYTES", "")
    if not raw:
        free = segment.free_bytes()
        return max(16 << 20, min(512 << 20, free // 4)) if free is not None else 512 << 20
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < (1 << 20):
        raise errors.ConfigError(f"ETHER_ARENA_BYTES={raw!r}: give a number of bytes >= 1048576")
    return value


def check_configured_space() -> None:
    """At tap: an explicit ETHER_ARENA_BYTES must fit in /dev/shm."""
    if os.environ.get("ETHER_ARENA_BYTES"):
        segment.check_space(arena_bytes(), "the array arena (ETHER_ARENA_BYTES)")


def inline_limit() -> int:
    """Arrays smaller than this travel inside the message instead."""
    raw = os.environ.get("ETHER_ARRAY_INLINE", "")
    return int(raw) if raw.isdigit() else 64 << 10


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) & ~(alignment - 1)


class Writer:
    """The owner's side: allocate blocks, copy arrays in, reclaim, sweep the dead."""

    def __init__(self, session, size: int):
        import numpy
        self._session = session
        data_offset = _align(BLOCKS_OFFSET + BLOCK_ENTRY * MAX_BLOCKS, 4096)
        self.data_size = size - data_offset
        with session._directory as d:
            self.token = d.next_token()
        name = names.arena_segment(session.name, self.token)
        self._seg = segment.Segment.create(name, size, what=f"array arena of session {session.name!r}")
        _HEADER.pack_into(self._seg.map, 0, ARENA_MAGIC, ARENA_LAYOUT_VERSION, MAX_BLOCKS, size,
                          data_offset, session.token)
        self.data_offset = data_offset
        self._base = ffi.from_buffer(self._seg.map, require_writable=True)
        self._bytes = numpy.frombuffer(self._seg.map, dtype=numpy.uint8)
        self._live: dict[int, tuple[int, int]] = {}           # block -> (start, end)
        self._cursor = 0                                      # where the last allocation ended
        self._free = list(range(MAX_BLOCKS - 1, -1, -1))
        self._generation = [0] * MAX_BLOCKS
        self._bits: dict[int, int] = {}                       # holder token -> bit
        self._last_sweep = time.monotonic()
        self._lock = threading.Lock()                         # loans free from any thread
        self._loans: dict[int, tuple] = {}                    # id(anchor) -> (block, start, gen)

    # ---- holders ----

    def holder_bits(self, tokens) -> int:
        bits = 0
        for token in tokens:
            bit = self._bits.get(token)
            if bit is None:
                used = set(self._bits.values())
                free = next((b for b in range(HOLDERS) if b not in used), None)
                if free is None:
                    self.sweep()
                    used = set(self._bits.values())
                    free = next((b for b in range(HOLDERS) if b not in used), None)
                    if free is None:
                        raise ArenaFull(f"more than {HOLDERS} processes hold arrays of this arena")
                struct.pack_into("<Q", self._seg.map, HOLDERS_OFFSET + 8 * free, token)
                self._bits[token] = bit = free
            bits |= 1 << bit
        return bits

    def sweep(self) -> None:
        """Clear the bits of holders that died, so their blocks come back."""
        self._last_sweep = time.monotonic()
        alive = self._session._member_alive
        for token, bit in list(self._bits.items()):
            if token == self._session.token or alive(token):
                continue
            mask = ~(1 << bit) & 0xFFFFFFFFFFFFFFFF
            for block in self._live:
                lib.ether_shm_fetch_and_u64(self._word(block, 0), mask)
            struct.pack_into("<Q", self._seg.map, HOLDERS_OFFSET + 8 * bit, 0)
            del self._bits[token]

    # ---- blocks ----

    def _word(self, block: int, field: int):
        return self._base + BLOCKS_OFFSET + BLOCK_ENTRY * block + field

    def _reclaim(self) -> None:
        load, word = lib.ether_shm_load_u64, self._word
        for block in [b for b in self._live if load(word(b, 0)) == 0]:
            del self._live[block]
            self._free.append(block)

    def _place(self, length: int, alignment: int) -> int | None:
        """Next-fit: the first gap, from the cursor round to it again, that holds length."""
        spans = sorted(self._live.values())
        gaps, previous = [], 0
        for start, end in spans:
            if start > previous:
                gaps.append((previous, start))
            previous = max(previous, end)
        gaps.append((previous, self.data_size))
        cursor = self._cursor
        ordered = [g for g in gaps if g[1] > cursor] + [g for g in gaps if g[1] <= cursor]
        for begin, end in ordered:
            start = _align(max(begin, cursor) if begin <= cursor < end else begin, alignment)
            if start + length <= end:
                return start
            start = _align(begin, alignment)  # the part of the cursor's gap before it
            if start + length <= end:
                return start
        return None

    def allocate(self, length: int, holders: int, timeout: float = 0.0) -> tuple[int, int, int]:
        """A block of length bytes held by `holders`: (block, data offset, generation).
        When the arena is full, wait up to `timeout` seconds for holders to free room."""
        if length > self.data_size:
            raise ArenaFull(f"a {length}-byte array is larger than the whole {self.data_size}-byte "
                            f"arena; raise ETHER_ARENA_BYTES (before tap)")
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._allocate(length, holders)
            except ArenaFull:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                self._wait_for_room(left)

    def _wait_for_room(self, timeout: float) -> None:
        """Sleep until a holder frees a block (or timeout), without a lost wake-up."""
        freed, waiting = self._base + FREED_OFFSET, self._base + WAITING_OFFSET
        seq = lib.ether_shm_load_u32(freed)
        lib.ether_shm_add_u32(waiting, 1)  # SYNC POINT: full barrier, then re-check
        try:
            with self._lock:
                self._reclaim()
                if self._place(1, 64) is not None and len(self._live) < MAX_BLOCKS:
                    return  # something was freed meanwhile: try again
            lib.ether_shm_wait_u32(freed, seq, int(min(timeout, SWEEP_INTERVAL_S) * 1e9))
            self.sweep()  # a holder may have died holding blocks
        finally:
            lib.ether_shm_add_u32(waiting, -1)

    def _allocate(self, length: int, holders: int) -> tuple[int, int, int]:
        alignment = 4096 if length >= (64 << 10) else 64
        with self._lock:
            if time.monotonic() - self._last_sweep > SWEEP_INTERVAL_S:
                self.sweep()
            self._reclaim()
            start = self._place(length, alignment) if self._free else None
            if start is None:
                self.sweep()
                self._reclaim()
                start = self._place(length, alignment) if self._free else None
            if start is None:
                held = sum(end - begin for begin, end in self._live.values())
                raise ArenaFull(
                    f"no room for a {length}-byte array in the {self.data_size}-byte arena of "
                    f"session {self._session.name!r} ({held} bytes held by views still alive); "
                    f"drop references to received arrays sooner, or raise ETHER_ARENA_BYTES")
            block = self._free.pop()
            self._generation[block] += 1
            generation = self._generation[block]
            entry = BLOCKS_OFFSET + BLOCK_ENTRY * block
            struct.pack_into("<QQ", self._seg.map, entry + 8, start, length)
            lib.ether_shm_store_u64(self._word(block, 24), generation)
            # SYNC POINT (via the ring): the bits are set before the handle is sent.
            lib.ether_shm_store_u64(self._word(block, 0), holders)
            self._live[block] = (start, start + length)
            self._cursor = start + length
            return block, start, generation

    def add_holders(self, block: int, holders: int) -> None:
        lib.ether_shm_fetch_or_u64(self._word(block, 0), holders)

    def release(self, block: int, bit: int) -> None:
        lib.ether_shm_fetch_and_u64(self._word(block, 0), ~(1 << bit) & 0xFFFFFFFFFFFFFFFF)

    def bytes_at(self, start: int, length: int):
        """A writable uint8 array over [start, start+length) of the data area."""
        import numpy
        return numpy.frombuffer(self._seg.map, dtype=numpy.uint8, count=length,
                                offset=self.data_offset + start)

    # ---- loans ----

    def loan(self, shape, dtype):
        """A writable array in a block held by this process until the array dies."""
        import numpy
        dtype = numpy.dtype(dtype)
        if dtype.hasobject:
            raise TypeError(f"cannot loan an array of dtype {dtype}")
        shape = tuple(shape) if isinstance(shape, (tuple, list)) else (int(shape),)
        nbytes = math.prod(shape) * dtype.itemsize
        length = max(1, nbytes)
        bit = self.holder_bits([self._session.token])
        block, start, generation = self.allocate(length, bit)
        anchor = self.bytes_at(start, length)
        self._loans[id(anchor)] = (block, start, generation)
        weakref.finalize(anchor, self._end_loan, id(anchor), block, bit.bit_length() - 1, self._base)
        return anchor[:nbytes].view(dtype).reshape(shape)

    def loaned(self, array):
        """(block, offset, generation) if array lies in one of our loans, contiguous."""
        base = array.base
        entry = self._loans.get(id(base)) if base is not None else None
        if entry is None or not array.flags.c_contiguous:
            return None
        block, start, generation = entry
        address = array.__array_interface__["data"][0] - base.__array_interface__["data"][0]
        return block, start + address, generation

    def _end_loan(self, key, block, bit, base) -> None:
        self._loans.pop(key, None)
        lib.ether_shm_fetch_and_u64(base + BLOCKS_OFFSET + BLOCK_ENTRY * block,
                                    ~(1 << bit) & 0xFFFFFFFFFFFFFFFF)

    def close(self) -> None:
        segment.unlink(self._seg.name)
        self._seg.close()  # stays mapped while a loaned or received array still uses it


class Reader:
    """Every process's side: turn handles into read-only views, and give the block
    back when the last view of it in this process dies."""

    def __init__(self):
        self._lock = threading.Lock()
        self._session = None
        self._arenas: dict[int, tuple] = {}          # token -> (seg, base cdata, max_blocks, size, data_offset, my bit)
        self._held: collections.Counter = collections.Counter()

    def join(self, session) -> None:
        with self._lock:
            if self._session is not session:
                self._session = session
                self._arenas.clear()

    def _arena(self, token: int):
        arena = self._arenas.get(token)
        if arena is None:
            session = self._session
            if session is None:
                raise errors.EtherError("an array handle arrived in a process that is not in a session")
            name = names.arena_segment(session.name, token)
            try:
                seg = segment.Segment.open(name, what="array arena", min_size=BLOCKS_OFFSET)
            except FileNotFoundError:
                raise errors.EtherError(f"the arena {name} of an array handle is gone") from None
            magic, version, max_blocks, size, data_offset, _ = _HEADER.unpack_from(seg.map, 0)
            if magic != ARENA_MAGIC or version != ARENA_LAYOUT_VERSION or size != seg.size or \
                    data_offset < BLOCKS_OFFSET + BLOCK_ENTRY * max_blocks or data_offset > size:
                seg.close()
                raise errors.SegmentError(errno.EINVAL, f"{name} is not an Ether arena of this version")
            tokens = struct.unpack_from(f"<{HOLDERS}Q", seg.map, HOLDERS_OFFSET)
            bit = tokens.index(session.token) if session.token in tokens else None
            arena = (seg, ffi.from_buffer(seg.map), max_blocks, size, data_offset, bit)
            if bit is not None:
                self._arenas[token] = arena
        return arena

    def view(self, token: int, block: int, generation: int, offset: int, length: int,
             dtype: str, shape: list[int]):
        import numpy
        with self._lock:
            seg, base, max_blocks, size, data_offset, bit = self._arena(token)
            if bit is None or block >= max_blocks or data_offset + offset + length > size:
                raise errors.EtherError(f"array handle out of bounds (block {block}, {length} bytes)")
            word = base + BLOCKS_OFFSET + BLOCK_ENTRY * block
            holders = lib.ether_shm_load_u64(word)
            if lib.ether_shm_load_u64(word + 24) != generation or not holders & (1 << bit):
                raise errors.EtherError("a stale array handle (its block was reused)")
            key = (token, block, generation)
            self._held[key] += 1
        anchor = numpy.frombuffer(seg.map, dtype=numpy.uint8, count=length, offset=data_offset + offset)
        anchor.flags.writeable = False
        # The anchor outlives every view derived from it; the finalizer keeps the
        # arena's mapping alive until it has cleared the bit.
        weakref.finalize(anchor, self._drop, key, word, bit, self._arenas[token])
        array = anchor.view(numpy.dtype(dtype)).reshape(shape)
        return array

    def _drop(self, key, word, bit, arena) -> None:
        with self._lock:
            self._held[key] -= 1
            if self._held[key]:
                return
            del self._held[key]
        before = lib.ether_shm_fetch_and_u64(word, ~(1 << bit) & 0xFFFFFFFFFFFFFFFF)
        if before == 1 << bit:  # we were the last holder: the block is free
            base = arena[1]
            lib.ether_shm_add_u32(base + FREED_OFFSET, 1)  # SYNC POINT: full barrier
            if lib.ether_shm_load_u32(base + WAITING_OFFSET):
                lib.ether_shm_wake_u32(base + FREED_OFFSET)


READER = Reader()
