"""The binding of the C arena (csrc/ether_arena.h): with _ring.py, the only
module that imports the compiled core. The arena writer and reader above it
call what is here; the arena's header is read through C, never at raw offsets.
"""
from __future__ import annotations

import errno

from .. import _errors as errors
from . import _ring  # noqa: F401  (first: its ImportError says how to build a missing core)
from .._ether_c import ffi, lib

HOLDERS = 64                               # holder bits per block (processes)
BLOCKS_OFFSET = lib.ETHER_ARENA_BLOCKS_AT  # where the block table starts
MAX_BLOCKS = lib.ETHER_ARENA_MAX_BLOCKS
# ether_arena.h's results
OK, NO_ENTRY, TOO_LARGE, STALE = 0, -2, -3, -5


def view_struct(seg, base, bit: int):
    """The C side of a process's mapping of an arena (ether_arena_view_t)."""
    import struct
    max_blocks, size, data_offset = struct.unpack_from("<IQQ", seg.map, 12)
    view = ffi.new("ether_arena_view_t *")
    view.base, view.size, view.data_offset = ffi.cast("uint8_t *", base), size, data_offset
    view.max_blocks, view.bit = max_blocks, bit
    return view


class Mapped:
    """A process's mapping of one publisher's arena, and its C reader."""
    __slots__ = ("seg", "base", "reader", "data", "__weakref__")

    def __init__(self, seg, token: int):
        self.seg = seg
        self.base = ffi.from_buffer(seg.map, require_writable=True)
        error = ffi.new("int *")
        reader = lib.ether_arena_reader_open(self.base, seg.size, token, error)
        if reader == ffi.NULL:
            if error[0] == STALE:
                raise errors.EtherError(f"an array handle of {seg.name} arrived, but this process "
                                        f"holds no bit there")
            raise errors.SegmentError(errno.EINVAL, f"{seg.name} is not an Ether arena of this version")
        self.reader = ffi.gc(reader, lib.ether_arena_reader_close)
        # Views are made from a read-only window on the data area: they are born read-only.
        self.data = memoryview(seg.map).toreadonly()[lib.ether_arena_reader_data_offset(reader):]

