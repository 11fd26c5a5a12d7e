#!/usr/bin/env python
"""Recording: Ether's MCAP writer and recorder against raw writes of the same
bytes, the `mcap` package's default writer, and the same pipeline without a
recorder; all in one run, reported as ratios (the issue's table).

R1  writer alone, small envelopes: N msgpack records of ~80 B (sender, seq,
    time, cause, trace, origin, payload) through Writer.add_many_bytes in
    batches of 512 (the recorder hands the writer what one read of its inbox
    brought, at most 512 records: Recorder._hand_over), against a raw
    length-prefixed file write of the same bytes (a u32 length and the record
    per message, BufferedWriter) and mcap.writer.Writer's defaults (zstd, 1 MiB
    chunks); Writer.add_bytes, one call a message, for reference. The records,
    with their channel, sequence and times, are built before the clock starts,
    for every writer alike. msg/s; file closed (summary written, fsynced) in
    the time. Ratios: the median of the runs' own ratios (alternated runs).
R2  writer alone, 1-16 MiB float32 arrays (64 x 1, 16 x 4, 8 x 16 MiB) through
    Writer.add_data (own chunk, writev from the array), against f.write of the
    arrays (fsynced at the end, as the writer's close does). GB/s. The runs
    alternate which goes first, each file is unlinked once measured; the ratio
    is the median of the runs' own ratios (--reps rounded up to even, >= 2).
R3  pipeline, small messages: ether.tap of Burst (N small dicts) plus either a
    Null subscriber instance or a recorder (record: topics [tick]); wall time
    from ether.start() to the shutdown's end (which waits until every message
    is handled, and for the recorder, written and closed). Ratio = null time /
    recorder time (>= 1 means the recorder costs nothing).
R4  pipeline, 1 MiB frames: the same with 200 frames among 20,000 small dicts.
    Beside it, two floors that the disk sets: the same pipeline with a
    hand-written sink instead of the recorder (RawFile: each message's bytes
    appended to a file, fsynced every second and at shutdown, as the recorder
    is), and the disk bound: when the null pipeline's subscriber gets its first
    frame, plus the frames' bytes at R2's raw f.write rate (fsynced); no sink
    that keeps them durable can end sooner.
R5  loss window after SIGKILL: a writer process adds messages at about 10 kHz
    and counts them in a shared counter, killed after 1.5 s; the messages
    read back from its file, against those handed over; loss in seconds.
R6  a 1 % time window: a file of 10^6 messages over 100 s of log time; a
    1 s window read through the chunk index, against a full scan: medians of
    5 scans and of 25 queries interleaved with them.

Medians of --reps runs (3; --quick: 1 run at a tenth of the sizes); R1 runs
max(7, --reps) times (--quick: 3), as one run takes well under a second.
"""
from __future__ import annotations

import argparse
import ctypes
import io
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import struct
import sys
import tempfile
import time

import msgspec

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ether.record import Writer  # noqa: E402
from ether.record._reader import Recording  # noqa: E402
from ether.record._recorder import READ_BATCH  # noqa: E402


def small_records(n):
    enc = msgspec.msgpack.encode
    return [enc(("sensor", i, 1_700_000_000_000_000_000 + i, ["gen", i], ["gen", 1], None,
                 msgspec.Raw(enc({"seq": i, "name": "sensor-1", "value": i * 0.5}))))
            for i in range(n)]


BATCH = READ_BATCH   # what the recorder hands the writer at most in one call


def r1(tmp, n):
    data = small_records(n)
    path = os.path.join(tmp, "r1")
    out = {}
    base = time.time_ns()
    items = [(1, i, base + i, i, d) for i, d in enumerate(data)]
    batches = [items[at:at + BATCH] for at in range(0, n, BATCH)]
    t = time.perf_counter()
    with open(path + ".raw", "wb") as f:
        pack = struct.Struct("<I").pack
        for d in data:
            f.write(pack(len(d)))
            f.write(d)
        f.flush()
        os.fsync(f.fileno())
    out["raw framed"] = n / (time.perf_counter() - t)
    t = time.perf_counter()
    w = Writer(path + ".ours")
    assert w.channel("tick") == 1
    for batch in batches:
        w.add_many_bytes(batch)
    w.close()
    out["ether writer"] = n / (time.perf_counter() - t)
    t = time.perf_counter()
    w = Writer(path + ".single")
    add = w.add_bytes
    w.channel("tick")
    for c, seq, log_time, publish_time, d in items:
        add(c, seq, log_time, publish_time, d)
    w.close()
    out["ether writer, add per message"] = n / (time.perf_counter() - t)
    from mcap.writer import Writer as McapWriter
    t = time.perf_counter()
    with open(path + ".mcap", "wb") as f:
        m = McapWriter(f)
        m.start("ether", "bench")
        ch = m.register_channel("tick", "msgpack", 0)
        for _, seq, log_time, publish_time, d in items:
            m.add_message(ch, log_time, d, publish_time, seq)
        m.finish()
        f.flush()
        os.fsync(f.fileno())
    out["mcap package"] = n / (time.perf_counter() - t)
    for suffix in (".raw", ".ours", ".single", ".mcap"):
        os.unlink(path + suffix)
    return out


def r2(tmp, scale, first="raw"):
    """One run: the raw write and the writer's, in the order `first` says (the
    runs alternate it); each file unlinked once measured, so the second never
    writes while the first's 256 MiB still hold the page cache."""
    import numpy as np
    arrays = [np.random.default_rng(1).random((1 << 18) * mb // 2, dtype=np.float64).astype(np.float32)
              for mb, count in ((1, 64 // scale), (4, 16 // scale), (16, max(1, 8 // scale)))
              for _ in range(count)]
    total = sum(a.nbytes for a in arrays)
    path = os.path.join(tmp, "r2")

    def raw():
        t = time.perf_counter()
        with open(path + ".raw", "wb") as f:
            for a in arrays:
                f.write(memoryview(a).cast("B"))
            f.flush()
            os.fsync(f.fileno())
        rate = total / (time.perf_counter() - t) / 1e9
        os.unlink(path + ".raw")
        return rate

    def ours():
        t = time.perf_counter()
        w = Writer(path + ".ours")
        c = w.channel("frames")
        for i, a in enumerate(arrays):
            view = memoryview(a).cast("B")
            w.add_data(c, i, time.time_ns(), 0, [b"\x97", view], 1 + view.nbytes)
        w.close()
        rate = total / (time.perf_counter() - t) / 1e9
        os.unlink(path + ".ours")
        return rate

    if first == "raw":
        r = raw()
        o = ours()
    else:
        o = ours()
        r = raw()
    return {"raw f.write": r, "ether writer": o}


def pipeline(tmp, n, frames, sink):
    """sink: "null", "recorder" or "raw file". Returns (seconds, when the null
    subscriber got its first frame, or None)."""
    from ether import ether
    instances = {"burst": {"class_path": "_record_apps.Burst"}}
    config = {"instances": instances}
    out = os.path.join(tmp, f"rec{time.monotonic_ns()}")
    if sink == "recorder":
        config["record"] = {"output": out, "topics": ["tick", "frames"]}
    elif sink == "raw file":
        instances["raw"] = {"class_path": "_record_apps.RawFile", "kwargs": {"path": out}}
    else:
        instances["null"] = {"class_path": "_record_apps.Null"}
    ether.tap(config=config)
    done = ether.listen("burst_done", timeout=120)
    first = ether.listen("first_frame", timeout=120) if frames and sink == "null" else None
    t = time.perf_counter()
    t0 = time.monotonic()
    ether.start(n=n, frames=frames)
    next(done)
    first_at = next(first)["t"] - t0 if first is not None else None
    ether.shutdown()
    took = time.perf_counter() - t
    # Unlinked once measured (as R2's files): a kept recording's page cache would
    # make every later run's writes fill new memory (docs/design/recording.md).
    if os.path.isdir(out):
        shutil.rmtree(out)
    elif os.path.exists(out):
        os.unlink(out)
    return took, first_at


def _killed_writer(path, counter):
    w = Writer(path)
    c = w.channel("tick")
    i = 0
    next_at = time.perf_counter()
    while True:
        now = time.perf_counter()
        if now < next_at:
            time.sleep(next_at - now)     # the 10 kHz pace of a sensor
        next_at += 1e-4
        t = time.time_ns()
        w.add(c, i, t, t, ("s", i, t, None, None, None, msgspec.Raw(b"\x81\xa1i\x00")))
        i += 1
        counter.value = i


def r5(tmp):
    ctx = multiprocessing.get_context("fork")
    counter = ctx.Value(ctypes.c_long, 0, lock=False)
    path = os.path.join(tmp, f"r5-{time.monotonic_ns()}.mcap")
    p = ctx.Process(target=_killed_writer, args=(path, counter))
    p.start()
    time.sleep(1.5)   # the run's length, not a synchronisation
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    handed = counter.value
    with Recording(path) as rec:
        got = sum(1 for _ in rec.messages())
    os.unlink(path)
    return (handed - got) / 10000.0, handed, got


def r6(tmp, n):
    path = os.path.join(tmp, "r6.mcap")
    data = small_records(n)
    w = Writer(path)
    c = [w.channel(f"t{k}") for k in range(4)]
    span = 100 * 10 ** 9
    base = 1_700_000_000_000_000_000
    for i, d in enumerate(data):
        w.add_bytes(c[i % 4], i, base + span * i // n, 0, d)
    w.close()
    scans, queries = [], []
    with Recording(path) as rec:
        f = rec.files[0]
        for _ in range(5):
            t = time.perf_counter()
            full = sum(1 for _ in f.records())
            scans.append(time.perf_counter() - t)
            for _ in range(5):
                t = time.perf_counter()
                window = sum(1 for _ in f.records(start=base + span // 2,
                                                  end=base + span // 2 + span // 100))
                queries.append(time.perf_counter() - t)
    os.unlink(path)
    return statistics.median(scans), statistics.median(queries), full, window


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    reps = 1 if args.quick else args.reps
    scale = 10 if args.quick else 1
    os.environ.setdefault("ETHER_LOG_DIR", tempfile.mkdtemp(prefix="ether-bench-logs-"))
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        w1 = [r1(tmp, 100000 // scale) for _ in range(3 if args.quick else max(7, args.reps))]
        med = {k: statistics.median(r[k] for r in w1) for k in w1[0]}

        def ratio(a, b):
            return statistics.median(r[a] / r[b] for r in w1)
        rows["R1 writer, small envelopes"] = {
            "msg/s": med, "batched": f"add_many_bytes, {BATCH} a batch",
            "x raw framed": ratio("ether writer", "raw framed"),
            "x mcap package": ratio("ether writer", "mcap package"),
            "add per message x raw framed": ratio("ether writer, add per message", "raw framed"),
            "runs": len(w1), "target": ">= 0.5x raw framed, >= 4x mcap package"}
        w2 = [r2(tmp, scale, ("raw", "ours")[i % 2]) for i in range(2 * ((max(2, reps) + 1) // 2))]
        med = {k: statistics.median(r[k] for r in w2) for k in w2[0]}
        rows["R2 writer, 1-16 MiB arrays"] = {
            "GB/s": med, "x raw": statistics.median(r["ether writer"] / r["raw f.write"] for r in w2),
            "runs": [round(r["ether writer"] / r["raw f.write"], 2) for r in w2],
            "target": ">= 0.9x raw f.write"}
        for name, n, frames in (("R3 pipeline, small messages", 200000 // scale, 0),
                                ("R4 pipeline, 1 MiB frames", 20000 // scale, 200 // scale)):
            null, rec, raw = [], [], []
            firsts = []
            for _ in range(reps):
                took, first_at = pipeline(tmp, n, frames, "null")
                null.append(took)
                rec.append(pipeline(tmp, n, frames, "recorder")[0])
                if frames:
                    firsts.append(first_at)
                    raw.append(pipeline(tmp, n, frames, "raw file")[0])
            rows[name] = {"null s": statistics.median(null), "recorder s": statistics.median(rec),
                          "x null": statistics.median(null) / statistics.median(rec),
                          "target": ">= 0.8x null" if not frames else ">= 0.6x null"}
            if raw:   # the disk's own bound on this row
                # No sink can have the frames on disk before the first exists plus
                # their bytes at the disk's rate (R2's raw f.write, fsynced).
                raw_gbs = rows["R2 writer, 1-16 MiB arrays"]["GB/s"]["raw f.write"]
                bound = statistics.median(firsts) + frames * (1 << 20) / (raw_gbs * 1e9)
                rows[name].update({
                    "first frame at s": statistics.median(firsts),
                    "disk bound s": bound,
                    "disk bound x null": statistics.median(null) / bound,
                    "raw file s": statistics.median(raw),
                    "raw file x null": statistics.median(null) / statistics.median(raw),
                    "recorder x raw file": statistics.median(raw) / statistics.median(rec)})
        loss = [r5(tmp) for _ in range(reps)]
        rows["R5 loss window after SIGKILL"] = {
            "lost s": max(l[0] for l in loss), "handed over": [l[1] for l in loss],
            "read back": [l[2] for l in loss], "target": "<= 0.1 s + one batch"}
        scan, query, full, window = r6(tmp, 1_000_000 // scale)
        rows["R6 1 % time window"] = {"full scan s": scan, "window s": query, "messages": full,
                                      "in window": window, "x faster": scan / query,
                                      "target": ">= 50x faster"}
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
        return
    for name, row in rows.items():
        print(f"{name}: " + ", ".join(
            f"{k} {_fmt(v)}" for k, v in row.items()))


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} {_fmt(x)}" for k, x in v.items()) + "}"
    return str(v)


if __name__ == "__main__":
    main()
