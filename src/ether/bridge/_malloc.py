"""What a bridge asks of glibc's allocator, so that an idle bridge gives back the
memory its large frames took.

Each 16 MiB frame crosses a bridge as buffers that zenoh's and Python's threads
allocate and free. glibc's defaults move the mmap threshold up to the largest
block freed so far (so later 16 MiB buffers come from the threads' heaps) and the
trim threshold to twice that, and malloc_trim(0) leaves the top of a thread's
heap alone: bench_bridge saw a receiving bridge keep two such heaps of 18-19 MiB
each after the frames stopped. Fixed thresholds (set once, at the start) put
blocks of 4 MiB or more in their own mappings, unmapped when freed, and cap the
free top a heap keeps. Elsewhere than glibc, nothing.
"""
from __future__ import annotations

import ctypes

__all__ = ["limit_retention", "trim"]

MMAP_THRESHOLD = 4 << 20   # blocks this large are mapped alone (1 MiB frames stay on the heap)
TRIM_THRESHOLD = 8 << 20   # a heap's free top past this goes back at once
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3   # glibc's malloc.h

_libc = None


def _glibc():
    global _libc
    if _libc is None:
        try:
            libc = ctypes.CDLL(None)
            libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            libc.malloc_trim.argtypes = [ctypes.c_size_t]
            _libc = libc
        except (OSError, AttributeError):
            _libc = False
    return _libc


def limit_retention() -> None:
    """Fix the mmap and trim thresholds (which also stops glibc raising them)."""
    libc = _glibc()
    if libc:
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)


def trim() -> None:
    """malloc_trim(0): the free pages inside every arena back to the system."""
    libc = _glibc()
    if libc:
        libc.malloc_trim(0)
