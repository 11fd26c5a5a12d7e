"""The binding of the C arena (csrc/ether_arena.h): with _ring.py, the only
module that imports the compiled core. No ``ffi``/``lib`` object leaves it: the
arena writer and reader above it use the classes here, whose per-message calls
are C functions bound once (functools.partial), not Python wrappers. The arena's
header is read through C, never at raw offsets.
"""
from __future__ import annotations

import enum
import errno
import functools

from .. import _errors as errors
from . import _ring  # noqa: F401  (first: its ImportError says how to build a missing core)
from .._ether_c import ffi, lib

HOLDERS = lib.ETHER_ARENA_HOLDERS          # holder bits per block (processes)
BLOCKS_OFFSET = lib.ETHER_ARENA_BLOCKS_AT  # where the block table starts
MAX_BLOCKS = lib.ETHER_ARENA_MAX_BLOCKS

# ether_arena_result_t, named as the compiler numbers it.
ArenaResult = enum.IntEnum("ArenaResult", sorted(
    ((name.removeprefix("ETHER_ARENA_"), value)
     for name, value in ffi.typeof("ether_arena_result_t").relements.items()),
    key=lambda item: abs(item[1])))
# Plain ints of the same values: compared on per-message paths.
OK = int(ArenaResult.OK)
NO_ROOM = int(ArenaResult.NO_ROOM)
NO_ENTRY = int(ArenaResult.NO_ENTRY)
TOO_LARGE = int(ArenaResult.TOO_LARGE)
OUT_OF_BOUNDS = int(ArenaResult.OUT_OF_BOUNDS)
STALE = int(ArenaResult.STALE)
BAD_SEGMENT = int(ArenaResult.BAD_SEGMENT)
NO_MEMORY = int(ArenaResult.NO_MEMORY)
_WAIT_TIMED_OUT = lib.ETHER_WAIT_TIMED_OUT


def describe(rc: int) -> str:
    """The name of an arena result, for messages."""
    try:
        return f"ETHER_ARENA_{ArenaResult(rc).name}"
    except ValueError:
        return f"result {rc}"


def owner_of(buffer) -> int:
    """The member token of the process that owns the arena mapped in `buffer`;
    0 if its header does not validate (not an arena, or not yet written)."""
    base = ffi.from_buffer(buffer)
    try:
        return lib.ether_arena_owner(base, len(base))
    finally:
        ffi.release(base)


def layout_offsets() -> dict[str, int]:
    """Compiler offsets of the arena's shared-memory structs (for the layout test)."""
    out = {}
    for struct, fields in (
        ("ether_arena_header_t", ("magic", "version", "max_blocks", "size", "data_offset", "owner",
                                  "freed", "waiting", "summary", "reserved", "holders", "released",
                                  "blocks")),
        ("ether_arena_block_t", ("bitmap", "offset", "length", "generation")),
    ):
        for f in fields:
            out[f"{struct}.{f}"] = ffi.offsetof(struct, f)
        out[f"{struct}.sizeof"] = ffi.sizeof(struct)
    return out


class Arena:
    """The owner's allocator (ether_arena_t) over its mapped arena segment.

    Callers serialise every call but `releaser`'s functions (the Writer: under
    its lock). `hold(block, bits)` and `drop_holders(block, bits)` are the C
    functions, bound: each returns the block's bitmap before. `alloc_into(length,
    alignment, holders, grant)` is ether_arena_alloc, bound: it fills `grant` (an
    ether_arena_grant_t *, see new_grant) with a new block held by `holders` and
    returns OK, or NO_ROOM / NO_ENTRY / TOO_LARGE / OUT_OF_BOUNDS. (Bound, not a
    method returning a tuple: the Writer calls it per array, and a frame costs.)
    """

    __slots__ = ("_base", "_c", "data_offset", "data_size", "hold", "drop_holders",
                 "alloc_into")

    def __init__(self, buffer, size: int, owner_token: int):
        base = ffi.from_buffer(buffer, require_writable=True)
        arena = lib.ether_arena_create(base, size, MAX_BLOCKS, owner_token)
        if arena == ffi.NULL:
            ffi.release(base)
            raise errors.ArenaFull(f"ETHER_ARENA_BYTES={size} cannot hold an arena's header and one page")
        self._base = base
        self._c = ffi.gc(arena, lib.ether_arena_destroy)
        self.data_offset = lib.ether_arena_data_offset(arena)
        self.data_size = lib.ether_arena_data_size(arena)
        self.hold = functools.partial(lib.ether_arena_hold, self._c)
        self.drop_holders = functools.partial(lib.ether_arena_drop_holders, self._c)
        self.alloc_into = functools.partial(lib.ether_arena_alloc, self._c)

    @staticmethod
    def new_grant():
        """An ether_arena_grant_t * for alloc_into: .block, .offset, .generation."""
        return ffi.new("ether_arena_grant_t *")

    def wait_freed(self, timeout_s: float) -> bool:
        """Sleep until a holder frees a block, for at most timeout_s; False on timeout."""
        return lib.ether_arena_wait(self._c, int(timeout_s * 1e9)) != _WAIT_TIMED_OUT

    def live(self) -> tuple[int, int]:
        """(live blocks, their bytes), after taking back the freed ones."""
        out = ffi.new("uint64_t *")
        return lib.ether_arena_live(self._c, out), out[0]

    def bits_in_use(self) -> int:
        """The holder bits set in any live block."""
        return lib.ether_arena_bits_in_use(self._c)

    def set_holder(self, bit: int, token: int) -> None:
        """Name the member token of holder `bit` in the segment (0: unused)."""
        lib.ether_arena_set_holder(self._c, bit, token)

    def clear_bits(self, mask: int) -> None:
        """Clear the bits of `mask` in every live block (holders that died)."""
        lib.ether_arena_clear_bits(self._c, mask)

    def releaser(self, bit: int):
        """A function block -> int that clears holder `bit` of a block as a holder
        would: lock-free, from any thread; the owner takes the block back at its
        next allocation. The Arena must outlive it."""
        view = ffi.new("ether_arena_view_t *")
        rc = lib.ether_arena_view_init(view, self._base, len(self._base), bit)
        if rc != OK:
            raise errors.SegmentError(
                errno.EINVAL, f"the arena's own header does not validate ({describe(rc)})")
        return functools.partial(lib.ether_arena_release, view)


class Mapped:
    """A process's mapping of one publisher's arena, and its C reader.

    `acquire(block, generation, offset, length)` checks a handle and counts one
    more hold of its block (OK, STALE or OUT_OF_BOUNDS); `unhold(block,
    generation)` counts one out, and the last one gives the block back. Both are
    the C functions, bound. `data` is a read-only window on the data area.
    """
    __slots__ = ("seg", "_base", "_reader", "data", "acquire", "unhold", "__weakref__")

    def __init__(self, seg, token: int):
        self.seg = seg
        self._base = ffi.from_buffer(seg.map, require_writable=True)
        error = ffi.new("int *")
        reader = lib.ether_arena_reader_open(self._base, seg.size, token, error)
        if reader == ffi.NULL:
            ffi.release(self._base)
            if error[0] == STALE:
                raise errors.EtherError(f"an array handle of {seg.name} arrived, but this process "
                                        f"holds no bit there")
            if error[0] == NO_MEMORY:
                raise MemoryError(f"no memory for the reader of the arena {seg.name}")
            raise errors.SegmentError(errno.EINVAL, f"{seg.name} is not an Ether arena of this version")
        self._reader = ffi.gc(reader, lib.ether_arena_reader_close)
        self.acquire = functools.partial(lib.ether_arena_acquire, self._reader)
        self.unhold = functools.partial(lib.ether_arena_unhold, self._reader)
        # Views are made from a read-only window on the data area: they are born read-only.
        self.data = memoryview(seg.map).toreadonly()[lib.ether_arena_reader_data_offset(reader):]
