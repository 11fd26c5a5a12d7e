"""The array arena's owner side: shared-memory blocks in which large arrays
travel by handle.

One arena per publishing process, created on its first large array or loan. The
layout, the allocator (recently freed blocks first, then first fit; freeing is
announced by holders) and the memory order are in csrc/ether_arena.h; the why is
in docs/design/arena.md.

The Writer allocates under the node's send lock, copies arrays in, lends blocks
(ether.empty), and clears the bits of holders that died. Every process's side,
turning handles into views, is _arena_reader.py.
"""
from __future__ import annotations

import math
import os
import threading
import time
import weakref

from .. import _errors as errors
from .. import _settings
from .._errors import ArenaFull
from . import _arena_handle as handle
from . import _names as names
from . import _segment as segment
from ._arena_c import BLOCKS_OFFSET, HOLDERS, MAX_BLOCKS, NO_ENTRY, OK, TOO_LARGE, Arena, owner_of
from ._dtypes import loanable, np, plain_dtypes

SWEEP_INTERVAL_S = 0.5
# An arena's pages are reserved (fallocate) before anything writes to them, so a
# full /dev/shm is an error and never a SIGBUS. Reserving all 512 MiB at once took
# a publisher's first array 0.11-0.13 s on this VM, and most arenas never use
# most of it (the allocator reuses the lowest blocks first), so an arena reserves
# RESERVE_FIRST at creation, and an allocation past what is reserved reserves up
# to its end first, at least RESERVE_STEP more (docs/design/arena.md, "Shape").
RESERVE_FIRST = 16 << 20
RESERVE_STEP = 8 << 20
LOAN_TIMEOUT_S = 5.0  # a loan waits for room like a publish to a block subscriber


def arena_bytes() -> int:
    """ETHER_ARENA_BYTES if set; else 512 MiB, or a quarter of the free /dev/shm if
    that is less (but 16 MiB at least), so a small /dev/shm (a container's 64 MiB)
    still taps."""
    value = _settings.arena_bytes()
    if value is None:
        free = segment.free_bytes()
        return max(16 << 20, min(512 << 20, free // 4)) if free is not None else 512 << 20
    return value


def check_configured_space() -> None:
    """At tap: an explicit ETHER_ARENA_BYTES must fit in /dev/shm."""
    if _settings.arena_bytes() is not None:
        segment.check_space(arena_bytes(), "the array arena (ETHER_ARENA_BYTES)")


def inline_limit() -> int:
    """Arrays smaller than this travel inside the message instead."""
    return _settings.array_inline()


PARALLEL_COPY_BYTES = 64 << 20  # copies this large are split over two cores


class _Copier:
    """A second thread for very large copies: one core does not reach the memory
    bandwidth here (12 GB/s alone, 14 GB/s with two threads). numpy releases the
    GIL while it copies, so the halves really run at once."""

    def __init__(self):
        self._jobs = None
        self._pid = 0

    def usable(self) -> bool:
        return (os.cpu_count() or 1) > 1

    def copy(self, destination, source) -> None:
        if self._pid != os.getpid():  # first use, or a forked child (no thread there)
            import queue
            self._jobs, self._done, self._pid = queue.SimpleQueue(), queue.SimpleQueue(), os.getpid()
            threading.Thread(target=self._work, args=(self._jobs, self._done),
                             name="ether-arena-copier", daemon=True).start()
        half = len(source) // 2
        self._jobs.put((destination[half:], source[half:]))
        try:
            np().copyto(destination[:half], source[:half])
        finally:
            error = self._done.get()  # always: a stale answer must not end the next copy
        if error is not None:
            raise error

    @staticmethod
    def _work(jobs, done) -> None:
        copyto = np().copyto
        while True:
            destination, source = jobs.get()
            try:
                copyto(destination, source)
                done.put(None)
            except BaseException as exc:  # handed back to the publishing thread
                done.put(exc)


_COPIER = _Copier()


class _Loan(weakref.ref):
    """A loaned array's weak reference; its callback gives the block back."""
    __slots__ = ("key", "block", "info", "ext")



class Writer:
    """The owner's side: allocate blocks, copy arrays in, lend them, sweep the dead."""

    def __init__(self, session, size: int, lock: threading.Lock | None = None):
        """Callers serialise the calls (the node: under its send lock, passed as
        `lock`, which the sweeper thread also takes). Without a lock: one thread,
        no sweeper (dead holders are swept when room runs out)."""
        self._session = session
        self._lock = lock or threading.Lock()
        with session._directory as d:
            self.token = d.next_token()
        name = names.arena_segment(session.name, self.token)
        self._what = f"array arena of session {session.name!r}"
        self._seg = segment.Segment.create(name, size, what=self._what, reserve=RESERVE_FIRST)
        try:
            self._arena = arena = Arena(self._seg.map, size, session.token)
        except BaseException:
            self._seg.close()
            segment.unlink(name)
            raise
        self._size = size
        self.data_offset = arena.data_offset
        self.data_size = arena.data_size
        self._alloc_into = arena.alloc_into
        self._grant = arena.new_grant()  # allocate's: filled by each alloc_into
        self._hold = arena.hold
        self._drop_holders = arena.drop_holders
        self._bits: dict[int, int] = {}                       # holder token -> bit
        self._bits_of: tuple = ((), 0)                        # (targets, bits) of the last publish
        self._last_sweep = time.monotonic()
        self._loans: dict[int, _Loan] = {}                    # id(array) -> its weak reference
        self._own_bits = self.holder_bits([session.token])
        self._release_own = arena.releaser(self._own_bits.bit_length() - 1)
        self._map = self._seg.map
        self._frombuffer = np().frombuffer  # loan's, without a call to np() per loan
        self._end_loan = self._make_end_loan()
        self._closed = threading.Event()
        _WRITERS.add(self)
        if lock is not None:  # a node's: it serialises everything, so a sweeper may join in
            threading.Thread(target=self._sweeper, name="ether-arena-sweeper", daemon=True).start()

    # ---- reservation ----

    def _cover(self, block: int, end: int, holders: int) -> None:
        """Reserve the arena up to data offset `end` (a new block's end) before
        anyone writes there (allocations are serialised, see __init__); on
        failure give the block back and raise."""
        seg = self._seg
        need = self.data_offset + end
        done = seg.reserved
        try:
            if not seg.reserve(done, max(need, min(self._size, done + RESERVE_STEP)) - done,
                               what=self._what):
                seg.reserved = self._size   # cannot reserve here: pages come as written
        except BaseException:
            self._drop_holders(block, holders)
            raise

    def _sweeper(self) -> None:
        """Every SWEEP_INTERVAL_S, while other processes hold blocks: give back the
        blocks of holders that died (a killed subscriber's are free within a second,
        even if this process publishes nothing meanwhile)."""
        while not self._closed.wait(SWEEP_INTERVAL_S):
            with self._lock:
                if self._closed.is_set() or self._session.closed:
                    return
                if self._arena.bits_in_use() & ~self._own_bits and \
                        time.monotonic() - self._last_sweep >= SWEEP_INTERVAL_S:
                    self.sweep()

    # ---- holders ----

    def holder_bits(self, tokens) -> int:
        bits = 0
        for token in tokens:
            bit = self._bits.get(token)
            if bit is None:
                bit = self._new_bit(token)
            bits |= 1 << bit
        return bits

    def known_bits(self, tokens) -> int:
        """The bits these tokens hold already (no new bit, no sweep)."""
        bits = 0
        for token in tokens:
            bit = self._bits.get(token)
            if bit is not None:
                bits |= 1 << bit
        return bits

    def bits_for(self, targets) -> int:
        """holder_bits of the senders' consumers, cached for the same targets tuple."""
        cached, bits = self._bits_of
        if cached is targets:
            return bits
        bits = self.holder_bits(t.consumer_token for t in targets)
        self._bits_of = (targets, bits)
        return bits

    def _new_bit(self, token: int) -> int:
        for attempt in range(2):
            used = set(self._bits.values())
            free = next((b for b in range(HOLDERS) if b not in used), None)
            if free is not None:
                self._arena.set_holder(free, token)
                self._bits[token] = free
                return free
            if attempt == 0:
                self.sweep()
        raise ArenaFull(f"more than {HOLDERS} processes hold arrays of this arena")

    def sweep(self) -> None:
        """Clear the bits of holders that died, so their blocks come back."""
        self._last_sweep = time.monotonic()
        alive = self._session._member_alive
        in_use = self._arena.bits_in_use()
        for token, bit in list(self._bits.items()):
            if token == self._session.token or alive(token):
                continue
            if in_use & (1 << bit):
                self._arena.clear_bits(1 << bit)
            self._arena.set_holder(bit, 0)
            del self._bits[token]
            self._bits_of = ((), 0)

    def held(self) -> tuple[int, int]:
        """(live blocks, their bytes): blocks some process may still read."""
        with self._lock:
            return self._held()

    def _held(self) -> tuple[int, int]:
        return self._arena.live()

    # ---- blocks ----

    def allocate(self, length: int, holders: int, timeout: float = 0.0) -> tuple[int, int, int]:
        """A block of length bytes held by `holders`: (block, data offset, generation).
        When the arena is full, wait up to `timeout` seconds for holders to free room."""
        alignment = 4096 if length >= (64 << 10) else 64
        rc = self._alloc_into(length, alignment, holders, self._grant)
        return self._granted(rc, length, alignment, holders, timeout)

    def _granted(self, rc: int, length: int, alignment: int, holders: int,
                 timeout: float) -> tuple[int, int, int]:
        """allocate's rest, once its first try returned rc (the grant filled if OK)."""
        grant = self._grant
        if rc == OK:  # (dead holders: the sweeper thread, or the sweep below when full)
            block, start = grant.block, grant.offset
            if self.data_offset + start + length > self._seg.reserved:
                self._cover(block, start + length, holders)
            return block, start, grant.generation
        if rc == TOO_LARGE:
            raise ArenaFull(f"a {length}-byte array is larger than the whole {self.data_size}-byte "
                            f"arena; raise ETHER_ARENA_BYTES (before tap)")
        deadline = time.monotonic() + timeout
        swept = False
        while True:
            if not swept:
                self.sweep()  # a holder may have died holding blocks
                swept = True
            rc = self._alloc_into(length, alignment, holders, grant)
            if rc == OK:
                block, start = grant.block, grant.offset
                if self.data_offset + start + length > self._seg.reserved:
                    self._cover(block, start + length, holders)
                return block, start, grant.generation
            left = deadline - time.monotonic()
            if left <= 0:
                blocks, held = self._held()
                room = (f"all {MAX_BLOCKS} blocks in use" if rc == NO_ENTRY else
                        f"no room for a {length}-byte array") + \
                    f" in the {self.data_size}-byte arena of session {self._session.name!r}"
                raise ArenaFull(
                    f"{room} ({held} bytes in {blocks} blocks held by arrays still alive); drop "
                    f"references to received or loaned arrays sooner, or raise ETHER_ARENA_BYTES")
            if not self._arena.wait_freed(min(left, SWEEP_INTERVAL_S)):
                swept = False  # nobody freed anything for a while: look for the dead

    def release(self, block: int, bit: int) -> None:
        self.release_bits(block, 1 << bit)

    def release_bits(self, block: int, bits: int) -> None:
        """Clear holder bits of a block (receivers a message did not reach)."""
        self._drop_holders(block, bits)

    def copy_in(self, array, holders: int, timeout: float) -> tuple[int, int, int]:
        """The one copy of an ordinary array into a new block (also makes a
        non-contiguous input contiguous)."""
        nbytes = array.nbytes
        block, start, generation = self.allocate(nbytes, holders, timeout)
        destination = np().frombuffer(self._seg.map, dtype=array.dtype, count=array.size,
                                       offset=self.data_offset + start).reshape(array.shape)
        if nbytes >= PARALLEL_COPY_BYTES and array.ndim and len(array) > 1 and _COPIER.usable():
            _COPIER.copy(destination, array)
        else:
            np().copyto(destination, array)
        return block, start, generation

    # ---- loans ----

    def loan(self, shape, dtype, timeout: float = LOAN_TIMEOUT_S):
        """A writable array in a block held by this process until the array dies.
        A full arena waits up to `timeout` seconds for room."""
        try:
            dtype = plain_dtypes[dtype]
        except (KeyError, TypeError):  # new, or unhashable (a structured spec)
            dtype = loanable(dtype)
        if type(shape) is not tuple:
            shape = tuple(shape) if isinstance(shape, list) else (int(shape),)
        count = shape[0] if len(shape) == 1 else math.prod(shape)
        nbytes = count * dtype.itemsize
        # allocate's common case, inlined: a block within what is reserved.
        alignment = 4096 if nbytes >= (64 << 10) else 64
        grant = self._grant
        rc = self._alloc_into(nbytes, alignment, self._own_bits, grant)
        if rc == OK and self.data_offset + grant.offset + nbytes <= self._seg.reserved:
            block, start, generation = grant.block, grant.offset, grant.generation
        else:
            block, start, generation = self._granted(rc, nbytes, alignment, self._own_bits, timeout)
        array = anchor = self._frombuffer(self._map, dtype=dtype, count=count,
                                           offset=self.data_offset + start)
        if len(shape) != 1:
            array = array.reshape(shape)  # its base: the 1-d array, which the loan tracks
        ref = _Loan(anchor, self._end_loan)
        ref.key = key = id(anchor)
        ref.block = block
        ref.info = (generation, start, nbytes, shape, dtype)
        ref.ext = None  # its handle, made when it is first published
        self._loans[key] = ref
        return array

    def loaned(self, array):
        """The loan (its weak reference) that array is, or is a contiguous view
        into; None otherwise."""
        ref = self._loans.get(id(array))
        if ref is None or ref() is not array:
            base = array.base
            ref = self._loans.get(id(base)) if base is not None else None
            if ref is None or ref() is not base:
                return None
        return ref if array.flags.c_contiguous else None

    def lent(self, array, holders: int):
        """(block, generation, handle) of a loaned array, its block now held by `holders` too;
        None if array is not (a contiguous part of) a loan."""
        ref = self._loans.get(id(array))
        if ref is None or ref() is not array or array.ndim != 1:
            ref = self.loaned(array)
            if ref is None:
                return None
        if holders & self._own_bits:
            return None  # a receiver in this process gets a copy: the loan's bit is its own
        block = ref.block
        before = self._hold(block, holders)
        if before & holders:
            # A receiver still holds this loan from an earlier message, and one bit
            # cannot stand for two messages: this message carries a copy instead.
            self.release_bits(block, holders & ~before)
            return None
        generation, start, nbytes, shape, dtype = ref.info
        if array.dtype is dtype and array.shape == shape:  # the whole loan, as lent
            ext = ref.ext
            if ext is None:
                ext = ref.ext = handle.encode(self.token, block, generation, start, array)
            return block, generation, ext
        offset = array.__array_interface__["data"][0] - ref().__array_interface__["data"][0]
        return block, generation, handle.encode(self.token, block, generation, start + offset, array)

    def _make_end_loan(self):
        loans, release = self._loans, self._release_own

        def end_loan(ref) -> None:
            loans.pop(ref.key, None)
            release(ref.block)

        return end_loan

    def close(self) -> None:
        """Stop lending and sweeping. The name stays until the session's owner
        removes the session (or the exit watcher, if this process dies first): a
        receiver may still have to map it for a message in flight."""
        self._closed.set()
        self._seg.close()  # stays mapped while a loaned or received array still uses it

    def _forget(self) -> None:
        """In a forked child: the loans and the arena are the parent's. Dropping the
        weak references (not the arrays) means no callback will release them here."""
        self._loans.clear()
        self._closed.set()


_WRITERS: weakref.WeakSet = weakref.WeakSet()


def remove_dead_arenas(session, keep: list | None = None) -> list[str]:
    """Unlink the arenas of the session whose owners died (called when an instance
    exits; processes that mapped one keep their views). Returns the names.

    keep: a list that takes each removed arena's open segment. Whoever lets go of
    an unlinked arena last frees its memory (about 0.12 s for 512 MiB of used pages); a
    shutdown keeps them, so that this is not the exit of a recorder it waits for,
    and frees them after it has returned."""
    removed = []
    for name in segment.list_names():
        parsed = names.parse(name)
        if not parsed or parsed[0] != session.name or parsed[1] != "a":
            continue
        try:
            seg = segment.Segment.open("/" + name.lstrip("/"), what="array arena",
                                       min_size=BLOCKS_OFFSET)
        except (FileNotFoundError, errors.EtherError):
            continue
        try:
            owner = owner_of(seg.map)
            # 0: not a valid arena (yet): its creator may still be writing the header.
            if owner and owner != session.token and not session._member_alive(owner):
                segment.unlink(seg.name)
                removed.append(seg.name)
                if keep is not None:
                    keep.append(seg)
                    seg = None
        finally:
            if seg is not None:
                seg.close()
    return removed


def _after_fork_in_child() -> None:
    for writer in list(_WRITERS):
        writer._forget()


os.register_at_fork(after_in_child=_after_fork_in_child)
