"""Ordinary classes that bench_bridge.py runs as Ether instances on the simulated
hosts (benchmarks/ is on the driver's sys.path, and its instances inherit it).

On host B:
  Sink    @ether_sub on "bulk" (64 B: seq, count, run and 48 bytes) and "frames"
          (the same with a float32 frame, a read-only view of B's arena): counts,
          checks per-publisher order, records the last arrival (perf_counter_ns,
          the same CLOCK_MONOTONIC in every namespace) and a CRC of every
          `every`-th frame. At the stream's last message (seq count - 1) it
          publishes one "bulk_done" with all of that, and starts afresh.
          A's "bulk_end", sent after the stream on another topic, checks that a
          publisher's order holds across topics: "overtaken" counts the stream's
          messages that came after it.
  Pong    "ping" -> "pong": the one-message-in-flight row.
  Echo    @ether_get echo(n, size): the request round trip; the reply carries
          `size` bytes.
On host A (the row with and without a bridge):
  LocalPub / LocalCounter: on "local_go", `count` 64 B messages on "local_tick"
          from one instance to the other, then "local_end"; the counter answers
          "local_done" with its count, order and clock readings.
"""
from __future__ import annotations

import os
import time
import zlib

import numpy as np

from ether import ether, ether_get, ether_pub, ether_sub

from _bridge_frames import sampled

_clock = time.perf_counter_ns


class Sink:
    def __init__(self, every: int = 16):
        self.every = every
        self.early: dict[int, int] = {}   # run -> messages still to come when its end came
        self.runs: set[int] = set()
        self.run = None
        self._reset()

    def _reset(self) -> None:
        self.received = 0
        self.next_seq = 0
        self.disorder = 0
        self.last_ns = 0
        self.crcs: dict[str, int] = {}

    def _begin(self, run: int) -> None:
        if run != self.run:   # a new stream (what an unfinished one counted goes)
            self._reset()
            self.run = run
            self.runs.add(run)

    def _seen(self, seq: int, count: int) -> None:
        run = self.run
        if seq != self.next_seq:
            self.disorder += 1
        self.next_seq = seq + 1
        self.received += 1
        self.last_ns = _clock()
        if seq == count - 1:  # the last one: report (a loss shows as received < count)
            ether.pub({"received": self.received, "count": count, "run": run,
                       "disorder": self.disorder, "last_seq": seq, "last_ns": self.last_ns,
                       "crcs": self.crcs, "overtaken": self.early.pop(run, 0)}, topic="bulk_done")
            self._reset()

    @ether_sub(topic="bulk")
    def on_bulk(self, seq: int, count: int, run: int, blob: bytes) -> None:
        self._begin(run)
        self._seen(seq, count)

    @ether_sub(topic="frames")
    def on_frame(self, seq: int, count: int, run: int, frame: np.ndarray) -> None:
        self._begin(run)
        if sampled(seq, self.every):
            self.crcs[str(seq)] = zlib.crc32(frame)
        if frame[0] != seq:
            self.disorder += 1
        self._seen(seq, count)

    @ether_sub(topic="bulk_end")
    def on_end(self, count: int, run: int) -> None:
        """Sent by the same publisher after its stream, on another topic: it must come
        after every message of the stream (a publisher's order holds across topics)."""
        if run == self.run and self.received:
            self.early[run] = count - self.received
        elif run not in self.runs:
            self.early[run] = count


class Pong:
    @ether_sub(topic="ping")
    @ether_pub(topic="pong")
    def pong(self, seq: int, blob: bytes) -> dict:
        return {"seq": seq, "blob": blob}


class Echo:
    def __init__(self) -> None:
        self._blobs: dict[int, bytes] = {}

    @ether_get
    def echo(self, n: int, size: int) -> dict:
        blob = self._blobs.get(size)
        if blob is None:
            blob = self._blobs[size] = os.urandom(size)
        return {"n": n, "blob": blob}


class LocalPub:
    @ether_sub(topic="local_go")
    def go(self, count: int) -> None:
        blob = os.urandom(56)
        pub = ether.pub
        t0 = _clock()
        for seq in range(count):
            pub({"seq": seq, "blob": blob}, topic="local_tick")
        pub({"count": count, "t0_ns": t0}, topic="local_end")


class LocalCounter:
    def __init__(self) -> None:
        self.received = self.next_seq = self.disorder = self.last_ns = 0

    @ether_sub(topic="local_tick")
    def on_tick(self, seq: int, blob: bytes) -> None:
        if seq != self.next_seq:
            self.disorder += 1
        self.next_seq = seq + 1
        self.received += 1
        self.last_ns = _clock()

    @ether_sub(topic="local_end")
    def on_end(self, count: int, t0_ns: int) -> None:
        ether.pub({"received": self.received, "count": count, "disorder": self.disorder,
                   "last_ns": self.last_ns, "t0_ns": t0_ns}, topic="local_done")
        self.received = self.next_seq = self.disorder = self.last_ns = 0
