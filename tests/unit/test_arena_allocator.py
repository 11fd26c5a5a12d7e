"""The arena's allocator in one process: placement, reuse, exhaustion."""
import numpy as np
import pytest

import ether
from ether._core import _arena_writer as _arena


@pytest.fixture
def writer(session):
    w = _arena.Writer(session, 4 << 20)
    yield w
    w.close()


def test_blocks_are_aligned_reused_and_bounded(writer, session):
    bit = writer.holder_bits([session.token])  # a live holder: nothing is swept
    blocks = [writer.allocate(1 << 20, bit) for _ in range(3)]
    assert all(start % 4096 == 0 for _, start, _ in blocks)
    assert len({start for _, start, _ in blocks}) == 3
    with pytest.raises(_arena.ArenaFull, match="no room for a 1048576-byte array"):
        writer.allocate(1 << 20, bit, timeout=0.05)  # waits, then names the sizes
    writer.release(blocks[1][0], bit.bit_length() - 1)  # the holder lets go of the middle block
    block, start, generation = writer.allocate(1 << 20, bit)
    assert start == blocks[1][1]  # its space is reused, although an older block lives


def test_a_dead_holders_blocks_are_swept(writer, session):
    bit = writer.holder_bits([99999])  # no such member: a dead holder
    writer.allocate(3 << 20, bit)
    # No room for a second 3 MiB block until the sweep finds 99999 dead.
    block, start, generation = writer.allocate(3 << 20, writer.holder_bits([session.token]))
    assert start == 0


def test_loans_are_writable_and_free_their_block_when_dropped(writer):
    loan = writer.loan((256, 1024), np.float32)
    assert loan.flags.writeable and loan.shape == (256, 1024)
    loan[:] = 1
    assert writer.loaned(loan) is not None and writer.loaned(loan[:, ::2]) is None  # not contiguous
    del loan
    assert not writer._loans


@pytest.mark.parametrize("shape", [(2,), (7,), (5, 3), (4, 6, 2)])
def test_the_two_thread_copy_copies_everything(shape):
    source = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    destination = np.zeros_like(source)
    _arena._COPIER.copy(destination, source)
    assert np.array_equal(destination, source)
    strided = np.arange(40.0).reshape(8, 5)[::2, ::2]  # a non-contiguous source
    out = np.zeros_like(strided)
    _arena._COPIER.copy(out, strided)
    assert np.array_equal(out, strided)


def test_running_out_of_block_entries_says_so(writer, session):
    bit = writer.holder_bits([session.token])
    held = [writer.allocate(64, bit) for _ in range(_arena.MAX_BLOCKS)]
    assert len({start for _, start, _ in held}) == _arena.MAX_BLOCKS
    with pytest.raises(_arena.ArenaFull, match=rf"all {_arena.MAX_BLOCKS} blocks in use"):
        writer.allocate(64, bit)
    writer.release(held[0][0], bit.bit_length() - 1)
    assert writer.allocate(64, bit)[1] == held[0][1]  # its entry and its place come back
