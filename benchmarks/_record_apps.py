"""Instances for bench_record.py: a publisher of small dicts or 1 MiB frames, and
a null subscriber that counts (the baseline a recorder is compared with), and a
hand-written file sink (what the disk allows a recorder)."""
import os
import time

import numpy as np

from ether import ether, ether_shutdown, ether_start, ether_sub


class Burst:
    @ether_start()
    def go(self, n: int = 100000, frames: int = 0):
        frame = np.zeros(1 << 18, dtype=np.float32)          # 1 MiB
        for i in range(n):
            ether.pub({"seq": i, "name": "sensor-1", "value": i * 0.5}, topic="tick")
            if frames and i % max(1, n // frames) == 0:
                ether.pub({"seq": i, "frame": frame}, topic="frames")
        ether.pub({"t": time.monotonic()}, topic="burst_done")


class Null:
    first = True

    @ether_sub(topic="tick")
    def on_tick(self, seq: int, name: str, value: float):
        pass

    @ether_sub(topic="frames")
    def on_frame(self, seq: int, frame: np.ndarray):
        if self.first:    # when a sink could first write a frame (R4's disk bound)
            self.first = False
            ether.pub({"t": time.monotonic()}, topic="first_frame")


class RawFile:
    """What a recorder must at least do, done by hand: the same subscriptions as
    Null, each message's bytes appended to one file (a u32 length, then the
    msgpack of the dict; a frame's array bytes), fsynced every second and at
    shutdown, as the recorder's writer is. R4's floor on a given disk."""

    def __init__(self, path: str):
        import msgspec
        self._encode = msgspec.msgpack.Encoder().encode
        self._f = open(path, "wb", buffering=1 << 20)
        self._synced = time.monotonic()

    def _put(self, data) -> None:
        self._f.write(len(data).to_bytes(4, "little"))
        self._f.write(data)
        if time.monotonic() - self._synced >= 1.0:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._synced = time.monotonic()

    @ether_sub(topic="tick")
    def on_tick(self, seq: int, name: str, value: float):
        self._put(self._encode({"seq": seq, "name": name, "value": value}))

    @ether_sub(topic="frames")
    def on_frame(self, seq: int, frame: np.ndarray):
        self._put(memoryview(frame).cast("B"))

    @ether_shutdown()
    def close(self):
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
