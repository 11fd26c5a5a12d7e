"""The arena's pages are reserved before anything writes to them: the first
part at creation, then what each allocation passes, before it is written."""
import errno
import os

import pytest

import ether
from ether._core import _arena_writer as _arena
from ether._core import _segment

SIZE = 64 << 20


def refuse_fallocate(monkeypatch, code: int, past: int = -1) -> None:
    """posix_fallocate fails with `code` for ranges that start after `past`."""
    real = os.posix_fallocate

    def fallocate(fd, offset, length):
        if offset > past:
            raise OSError(code, os.strerror(code))
        return real(fd, offset, length)

    monkeypatch.setattr(_segment.os, "posix_fallocate", fallocate)


def backed(writer) -> int:
    """Bytes of the arena's segment that tmpfs has pages for."""
    return os.fstat(writer._seg.fd).st_blocks * 512


def test_only_the_first_part_is_reserved_until_allocations_pass_it(session):
    w = _arena.Writer(session, SIZE)
    try:
        first = w._seg.reserved
        assert _arena.RESERVE_FIRST <= first < SIZE and backed(w) < SIZE // 2
        bit = w.holder_bits([session.token])
        for _ in range(50):   # a stream of frames reuses the same block: no more pages
            block, start, _ = w.allocate(1 << 20, bit)
            w.release_bits(block, bit)
        assert w._seg.reserved == first
        block, start, _ = w.allocate(40 << 20, bit)
        end = w.data_offset + start + (40 << 20)
        assert end > first and w._seg.reserved >= end and backed(w) >= end - first
        array = w.loan((1 << 20,), "float64")   # the next 8 MiB: written at once, no SIGBUS
        array[:] = 1.0
        assert w._seg.reserved >= w.data_offset + start + (48 << 20)
    finally:
        w.close()


def test_a_full_dev_shm_at_an_allocation_is_an_error_and_gives_the_block_back(session, monkeypatch):
    w = _arena.Writer(session, SIZE)
    try:
        refuse_fallocate(monkeypatch, errno.ENOSPC, past=0)   # the first part is there
        bit = w.holder_bits([session.token])
        live = w.held()
        with pytest.raises(ether.ShmSpaceError, match=r"array arena of session .* needs "
                                                      r"67108864 bytes .*could not reserve bytes"):
            w.allocate(40 << 20, bit)
        assert w.held() == live           # the block went back
        small = w.allocate(1 << 20, bit)  # what is reserved still serves
        assert w.data_offset + small[1] + (1 << 20) <= w._seg.reserved
    finally:
        w.close()


def test_a_file_system_without_fallocate_still_makes_arenas(session, monkeypatch):
    refuse_fallocate(monkeypatch, errno.EOPNOTSUPP)
    w = _arena.Writer(session, SIZE)
    try:
        assert w._seg.reserved == SIZE
        bit = w.holder_bits([session.token])
        w.allocate(40 << 20, bit)
    finally:
        w.close()


def test_a_segment_that_cannot_be_reserved_is_closed_once_and_unlinked(sid, monkeypatch):
    import gc

    refuse_fallocate(monkeypatch, errno.ENOSPC)
    name = f"/ether_{sid}_test"
    with pytest.raises(ether.ShmSpaceError, match="a test segment needs 65536 bytes") as info:
        _segment.Segment.create(name, 1 << 16, what="a test segment")
    other = os.open("/dev/null", os.O_RDONLY)   # the lowest free number: the segment's
    try:
        del info                                  # its traceback held the half-made segment
        gc.collect()                              # a second close would hit `other`
        os.fstat(other)
    finally:
        os.close(other)
    assert not os.path.exists("/dev/shm" + name)
