"""Ordinary classes that ``bench_arrays.py`` runs as Ether instances.

The benchmark's main process publishes {"frame": ndarray, "seq": i} to the topic
"frames" (ordinary arrays: Ether copies each one once into the main process's
arena; loans: ether.empty() arrays that already live there). Every FrameSink
instance receives each frame as a read-only ndarray view of the same arena
block, through a typed @ether_sub handler.

FrameSink(name, touch, warm, last, ack_every)
    touch="pages": reads one float32 per 4 KiB page, frame[::1024].sum(), so
                   every page of the array is really readable in this process
                   (no copy of the array is made);
    touch="first": reads frame[0] only (the loan hand-off measurement).
    Both check frame[0] == seq (the publisher writes the sequence number there).
    It publishes {"who", "seq"} to "ack" every `ack_every` frames, on the last
    warm-up frame (seq warm - 1) and on the last frame (seq last): the main
    process keeps a window of outstanding frames with these, so it never fills
    its arena (which raises ArenaFull). After the last frame it publishes one
    "done" message: the arrival time of that frame (time.perf_counter_ns,
    CLOCK_MONOTONIC in every process, taken after the touch), the number of
    timed frames received and the number that failed the check.
"""
from __future__ import annotations

import time

import numpy as np

from ether import ether, ether_sub

PAGE_FLOATS = 4096 // 4


class FrameSink:
    def __init__(self, name: str = "sink", touch: str = "pages", warm: int = 0, last: int = 0,
                 ack_every: int = 1):
        self.name, self.touch, self.warm, self.last = name, touch, warm, last
        self.ack_every = max(1, ack_every)
        self.received = 0
        self.bad = 0
        self.checksum = 0.0

    @ether_sub(topic="frames")
    def on_frame(self, frame: np.ndarray, seq: int) -> None:
        if self.touch == "pages":
            self.checksum += float(frame[::PAGE_FLOATS].sum(dtype=np.float64))
        if frame[0] != seq:
            self.bad += 1
        now = time.perf_counter_ns()
        if seq >= self.warm:
            self.received += 1
        if seq == self.last:
            ether.pub({"who": self.name, "seq": seq}, topic="ack")
            ether.pub({"who": self.name, "last_ns": now, "received": self.received,
                       "bad": self.bad, "writeable": bool(frame.flags.writeable),
                       "checksum": self.checksum}, topic="done")
        elif seq % self.ack_every == 0 or seq == self.warm - 1:
            ether.pub({"who": self.name, "seq": seq}, topic="ack")
