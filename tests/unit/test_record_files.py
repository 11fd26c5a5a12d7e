"""The MCAP writer and reader without a session: the mcap package agrees with
every file, a file cut anywhere yields only whole messages, recover indexes an
unfinished file, a full disk leaves a file that reads to its last chunk."""
import os
import random
import subprocess
import sys
import threading
import time

import msgspec
import pytest
from mcap.reader import make_reader

from ether.record import RecordingError, Writer
from ether.record._bag import recover
from ether.record._reader import Recording, RecordingFile


def write_file(path, n=4000, chunk_bytes=16 * 1024, close=True, compression="none"):
    w = Writer(str(path), chunk_bytes=chunk_bytes, compression=compression)
    w.metadata("ether.recording", {"session": "s"})
    channels = [w.channel(f"t{i}") for i in range(4)]
    for i in range(n):
        t = 1_000_000_000 + i
        w.add(channels[i % 4], i, t, t, ("src", i, t, None, None, None,
                                          msgspec.Raw(msgspec.msgpack.encode({"i": i, "pad": "x" * (i % 50)}))))
    if close:
        w.close()
    return w


@pytest.mark.parametrize("compression", ["none", "lz4", "zstd"])
def test_the_mcap_package_reads_what_the_writer_wrote_with_crcs(tmp_path, compression):
    path = tmp_path / "a.mcap"
    write_file(path, compression=compression)
    with open(path, "rb") as f:
        reader = make_reader(f, validate_crcs=True)
        assert reader.get_summary().statistics.message_count == 4000
        seqs = [msgspec.msgpack.decode(m.data)[1] for _, _, m in reader.iter_messages()]
    assert seqs == list(range(4000))
    rec = Recording(path)
    assert rec.status == "complete" and [m.data["i"] for m in rec.messages()] == list(range(4000))
    window = list(rec.messages(start=1_000_000_000 + 100, end=1_000_000_000 + 140))
    assert [m.seq for m in window] == list(range(100, 140))


@pytest.mark.timeout(120)
def test_a_file_cut_at_a_thousand_offsets_yields_a_gapless_prefix_and_says_truncated(tmp_path):
    whole = tmp_path / "whole.mcap"
    write_file(whole, n=2000, chunk_bytes=8 * 1024)
    data = whole.read_bytes()
    boundaries = []
    f = RecordingFile(whole)
    for opcode, a, b, start in f._records(8, len(data) - 8):
        boundaries.append(start)
    f.close()
    offsets = set()
    for b in boundaries[:60]:
        offsets.update((b - 1, b, b + 1))
    rng = random.Random(1)
    while len(offsets) < 1000:
        offsets.add(rng.randrange(0, len(data)))
    cut = tmp_path / "cut.mcap"
    seen_partial = 0
    for offset in sorted(offsets):
        cut.write_bytes(data[:max(0, offset)])
        rec = Recording(cut)
        got = [m.seq for m in rec.messages()]
        assert got == list(range(len(got))), offset
        assert all(m.data["i"] == m.seq for m in rec.messages())
        assert rec.status == "truncated", offset
        seen_partial += 0 < len(got) < 2000
        rec.close()
    assert seen_partial > 500


def test_an_unfinished_file_reads_by_scan_and_recover_indexes_it(tmp_path):
    path = tmp_path / "open.mcap"
    w = write_file(path, n=1000, close=False)
    w.flush()                                 # as the flusher does; then the recorder is killed
    rec = Recording(path)
    assert rec.status == "truncated" and len(list(rec.messages())) == 1000
    with open(path, "ab") as f:
        f.write(b"\x06\xff\xff\x00")          # a torn record at the end
    code, text = recover(path, tmp_path / "fixed.mcap")
    assert code == 3 and "recovered 1000 messages" in text
    with open(tmp_path / "fixed.mcap", "rb") as f:
        reader = make_reader(f, validate_crcs=True)
        assert reader.get_summary().statistics.message_count == 1000
        assert [m.name for m in reader.iter_metadata()] == ["ether.recording"]
    assert Recording(tmp_path / "fixed.mcap").status == "complete"


def test_a_full_disk_is_a_loud_error_naming_the_file_and_the_file_reads_to_its_last_chunk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        path = mount / "full.mcap"
        w = Writer(str(path), chunk_bytes=8 * 1024)
        c = w.channel("t")
        with pytest.raises(RecordingError) as caught:
            for i in range(100000):
                w.add(c, i, i, i, ("s", i, i, None, None, None, msgspec.Raw(msgspec.msgpack.encode({"i": i, "p": "y" * 100}))))
        assert str(path) in str(caught.value) and "ENOSPC" in str(caught.value)
        with pytest.raises(RecordingError):
            w.close()
        rec = Recording(path)
        got = [m.seq for m in rec.messages()]
        assert got == list(range(len(got))) and len(got) > 100
        assert rec.files[0].problem == ""     # ends on a whole chunk
        rec.close()
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_message_indexes_group_channels_and_sort_a_clock_that_went_back(tmp_path):
    """Each chunk's message indexes, built in bulk, agree with the mcap package
    (which reads through them in log-time order) for interleaved channels and
    log times that go back within a chunk."""
    from mcap.reader import make_reader as reader_of
    path = tmp_path / "a.mcap"
    w = Writer(str(path), chunk_bytes=4096)
    channels = [w.channel(f"t{i}") for i in range(3)]
    rng = random.Random(3)
    times = [1_000_000 + i * 10 + rng.randrange(-25, 25) for i in range(2000)]   # not monotonic
    for i, t in enumerate(times):
        w.add_bytes(channels[i % 3], i, t, t, msgspec.msgpack.encode(("s", i, t, None, None, None, {})))
    w.close()
    with open(path, "rb") as f:
        reader = reader_of(f, validate_crcs=True)
        summary = reader.get_summary()
        assert summary.statistics.channel_message_counts == {1: 667, 2: 667, 3: 666}
        got = [(m.log_time, msgspec.msgpack.decode(m.data)[1]) for _, _, m in
               reader.iter_messages(log_time_order=True)]
        by_index = [(index.message_start_time, index.message_end_time) for index in summary.chunk_indexes]
    assert sorted(got) == sorted((t, i) for i, t in enumerate(times))
    assert [t for t, _ in got] == sorted(times)
    window = [m.seq for m in Recording(path).messages(start=1_005_000, end=1_006_000)]
    assert sorted(window) == sorted(i for i, t in enumerate(times) if 1_005_000 <= t < 1_006_000)
    assert all(start <= end for start, end in by_index)


def test_an_add_interrupted_past_committed_leaves_no_torn_record(tmp_path):
    """What an add left when an exception cut it short (its bytes, its index
    entry, before `committed`) is undone by the next add: the file holds the
    whole messages only."""
    path = tmp_path / "a.mcap"
    w = Writer(str(path))
    c = w.channel("t")
    w.add_bytes(c, 1, 10, 10, msgspec.msgpack.encode(("s", 1, 10, None, None, None, {"i": 1})))
    w._buf += b"\x05torn"                    # an add cut short after its index entry
    w._entries += (c, 11, w._committed)
    w.add_bytes(c, 3, 12, 12, msgspec.msgpack.encode(("s", 3, 12, None, None, None, {"i": 3})))
    w._buf += b"\x05tor"                     # ... and one cut short at the end
    w._entries += (c,)
    w.close()
    with open(path, "rb") as f:
        assert [m.sequence for _, _, m in make_reader(f, validate_crcs=True).iter_messages()] == [1, 3]
    assert [m.data["i"] for m in Recording(path).messages()] == [1, 3]


def read_back(path):
    """(topic, sequence, log_time, publish_time, data) of every message, through
    the mcap package with CRCs checked, and its statistics' per-channel counts."""
    with open(path, "rb") as f:
        reader = make_reader(f, validate_crcs=True)
        counts = reader.get_summary().statistics.channel_message_counts
        return [(c.topic, m.sequence, m.log_time, m.publish_time, bytes(m.data))
                for _, c, m in reader.iter_messages()], counts


def test_batches_write_what_single_adds_write_across_chunk_boundaries_and_large_messages(tmp_path):
    """add_many and add_many_bytes, in batches of random sizes that cross chunk
    boundaries (and, for bytes, hold messages large enough for a chunk of their
    own), give the same messages in the same order as add and add_bytes."""
    rng = random.Random(5)
    messages = []
    for i in range(3000):
        size = 70_000 if i % 500 == 7 else rng.randrange(0, 300)
        fields = ("s", i, 1000 + i, None, None, None, {"i": i, "p": "z" * size})
        messages.append((i % 3, i, 1_000_000 + i, 500 + i, fields))

    def write(name, batched, encoded):
        w = Writer(str(tmp_path / name), chunk_bytes=8 * 1024)
        channels = [w.channel(f"t{k}") for k in range(3)]
        items = [(channels[c], s, t, p, msgspec.msgpack.encode(f) if encoded else f)
                 for c, s, t, p, f in messages]
        if batched:
            add = w.add_many_bytes if encoded else w.add_many
            at = 0
            while at < len(items):
                size = rng.choice([1, 2, 17, 100, 700])
                add(items[at:at + size], received_ns=items[at][2])
                at += size
            add([])
        else:
            for c, s, t, p, f in items:
                (w.add_bytes if encoded else w.add)(c, s, t, p, f)
        w.close()
        return read_back(tmp_path / name)

    single = write("single.mcap", False, False)
    assert len(single[0]) == 3000 and single[1] == {1: 1000, 2: 1000, 3: 1000}
    assert [m[1] for m in single[0]] == list(range(3000))
    assert write("many.mcap", True, False) == single
    assert write("single-bytes.mcap", False, True) == single
    assert write("many-bytes.mcap", True, True) == single
    assert [m.data["i"] for m in Recording(tmp_path / "many-bytes.mcap").messages()] == \
        list(range(3000))


def test_a_batch_writes_its_chunk_when_due_from_when_it_was_received(tmp_path):
    """A chunk a batch opens is due one flush interval after received_ns: a batch
    whose last message is past that writes the chunk at once; one before it does
    not; due_after says when the caller must hand over again."""
    w = Writer(str(tmp_path / "a.mcap"), flush_interval=0.1)
    c = w.channel("t")
    enc = msgspec.msgpack.encode
    assert w.due_after(5_000) == 5_000 + 100_000_000
    w.add_many_bytes([(c, 1, 1_000, 1_000, enc({"i": 1}))], received_ns=1_000)
    assert w.messages == 0 and w.due_after(7) == 1_000 + 100_000_000    # still in memory
    w.add_many_bytes([(c, 2, 50_000_000, 0, enc({"i": 2}))])
    assert w.messages == 0
    w.add_many_bytes([(c, 3, 100_001_000, 0, enc({"i": 3}))])            # due: written
    assert w.messages == 3 and w.offset == os.path.getsize(tmp_path / "a.mcap")
    w.add_many_bytes([(c, 4, 100_002_000, 0, enc({"i": 4}))], received_ns=1)
    assert w.messages == 4                                              # received long ago
    w.close()


def test_a_batch_cut_short_keeps_its_whole_messages_and_no_torn_record(tmp_path):
    """An exception inside a batch (here: a field msgpack cannot encode) leaves
    the messages before it, whole, and nothing of the one it interrupted."""
    path = tmp_path / "a.mcap"
    w = Writer(str(path), chunk_bytes=2048)
    c = w.channel("t")
    good = [(c, i, 10 + i, 0, ("s", i, 0, None, None, None, {"i": i, "p": "q" * 40}))
            for i in range(100)]
    with pytest.raises(TypeError):
        w.add_many(good[:60] + [(c, 60, 70, 0, ("s", 60, object()))] + good[61:])
    w.add_many(good[61:])
    w.close()
    got = [m.data["i"] for m in Recording(path).messages()]
    assert got == list(range(60)) + list(range(61, 100))
    assert [m[1] for m in read_back(path)[0]] == got


def test_one_channel_whose_clock_went_back_is_indexed_in_time_order(tmp_path):
    """The one-channel fast path of the message indexes sorts by log time too."""
    path = tmp_path / "a.mcap"
    w = Writer(str(path), chunk_bytes=4096)
    c = w.channel("t")
    rng = random.Random(4)
    times = [1_000_000 + i * 10 + rng.randrange(-25, 25) for i in range(1500)]
    w.add_many_bytes([(c, i, t, t, msgspec.msgpack.encode(("s", i, t, None, None, None, {})))
                      for i, t in enumerate(times)])
    w.close()
    with open(path, "rb") as f:
        got = [m.log_time for _, _, m in make_reader(f, validate_crcs=True).iter_messages(
            log_time_order=True)]
    assert got == sorted(times)
    window = [m.seq for m in Recording(path).messages(start=1_005_000, end=1_006_000)]
    assert sorted(window) == [i for i, t in enumerate(times) if 1_005_000 <= t < 1_006_000]



def test_write_behind_changes_no_byte_and_leaves_only_the_tail_to_the_page_cache(tmp_path, monkeypatch):
    import numpy
    from ether.record import _behind
    calls = []
    real = os.posix_fadvise

    def advise(fd, offset, length, advice):
        calls.append((offset, offset + length, writer.offset, advice))
        return real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", advise)
    frame = numpy.arange(1 << 18, dtype=numpy.float32)          # 1 MiB
    for name, behind in (("behind.mcap", True), ("plain.mcap", False)):
        calls.clear()
        writer = w = Writer(str(tmp_path / name), write_behind=behind)
        c = w.channel("frames")
        for i in range(60):
            view = memoryview(frame).cast("B")
            w.add_data(c, i, 1_000 + i, 1_000 + i, [b"\x97", view], 1 + view.nbytes)
            w.add_bytes(c, i, 1_000 + i, 1_000 + i, b"\x91\x01")
        if behind:   # the thread catches up with the last wake-up (a handshake, not a pause)
            deadline = time.monotonic() + 20
            while w.behind.started < w.behind._asked and time.monotonic() < deadline:
                time.sleep(0.005)
        w.close()
        if not behind:
            assert calls == [] and w.behind is None
            continue
        assert {advice for *_, advice in calls} == {os.POSIX_FADV_DONTNEED}
        # Each wake-up: writeback started on the new bytes, then (past DROP_LAG)
        # the page cache dropped up to DROP_LAG behind the same end, so the calls
        # continue one of two runs: [started, end) or [dropped, end - DROP_LAG).
        started = dropped = 0
        for a, b, offset, _ in calls:
            if a == started:     # (a drop starts at `dropped`, DROP_LAG or more behind)
                assert b - a >= _behind.WRITE_BEHIND and b <= offset
                started = b
            else:
                assert a == dropped and b <= offset - _behind.DROP_LAG and b <= started - _behind.DROP_LAG
                dropped = b
        assert started > w.offset - _behind.WRITE_BEHIND - (1 << 20) - 100
        assert dropped > w.offset - _behind.DROP_LAG - _behind.WRITE_BEHIND - (1 << 20) - 100
        w.behind._thread.join(10)                 # the close ended the thread
        assert not w.behind._thread.is_alive()
    assert (tmp_path / "behind.mcap").read_bytes() == (tmp_path / "plain.mcap").read_bytes()
    with open(tmp_path / "behind.mcap", "rb") as f:
        assert make_reader(f, validate_crcs=True).get_summary().statistics.message_count == 120


def test_a_writeback_error_the_write_behind_saw_is_raised_by_the_close(tmp_path, monkeypatch):
    """The write-behind waits for its writeback with fdatasync, which takes the
    file's error report for itself: the writer's close must still raise it."""
    import errno

    import numpy
    synced = threading.Event()

    def failing(fd):
        synced.set()
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing)
    frame = memoryview(numpy.arange(1 << 18, dtype=numpy.float32)).cast("B")   # 1 MiB
    path = tmp_path / "eio.mcap"
    w = Writer(str(path))
    c = w.channel("frames")
    for i in range(12):                       # past WRITE_BEHIND: the thread wakes
        w.add_data(c, i, 1_000 + i, 1_000 + i, [b"\x97", frame], 1 + frame.nbytes)
    assert synced.wait(10)
    deadline = time.monotonic() + 10          # the thread keeps the error (a handshake)
    while w.behind.error is None and time.monotonic() < deadline:
        synced.wait(0.005)
    with pytest.raises(RecordingError, match=f"cannot write the recording {path}: EIO"):
        w.close()
