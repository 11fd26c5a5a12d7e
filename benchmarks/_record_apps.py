"""Instances for bench_record.py: a publisher of small dicts or 1 MiB frames, and
a null subscriber that counts (the baseline a recorder is compared with)."""
import time

import numpy as np

from ether import ether, ether_start, ether_sub


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
    @ether_sub(topic="tick")
    def on_tick(self, seq: int, name: str, value: float):
        pass

    @ether_sub(topic="frames")
    def on_frame(self, seq: int, frame: np.ndarray):
        pass
