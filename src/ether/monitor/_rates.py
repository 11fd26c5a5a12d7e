"""Windowed rates of a topic, as `ether hz` and `ether bw` report them: from the
publishers' own timestamps (the envelope's time_ns), so the watcher's delays do
not bend them; over the last `window` messages."""
from __future__ import annotations

import collections
import statistics

__all__ = ["TopicRate"]


class TopicRate:
    def __init__(self, topic: str, window: int = 1000):
        self.topic = topic
        self.count = 0          # every message seen
        self.bytes = 0
        self._window: collections.deque = collections.deque(maxlen=max(2, window))

    def add(self, time_ns: int, size: int) -> None:
        self.count += 1
        self.bytes += size
        self._window.append((time_ns, size))

    def report(self) -> dict:
        out = {"topic": self.topic, "count": self.count, "bytes": self.bytes, "window": len(self._window),
               "rate_hz": None, "bytes_per_s": None, "mean_size": None,
               "min_interval_s": None, "max_interval_s": None, "std_interval_s": None}
        w = list(self._window)
        if w:
            out["mean_size"] = sum(s for _, s in w) / len(w)
        if len(w) >= 2:
            span = (w[-1][0] - w[0][0]) / 1e9
            # intervals in publish order: several publishers' clocks interleave
            times = sorted(t for t, _ in w)
            gaps = [(b - a) / 1e9 for a, b in zip(times, times[1:])]
            if span > 0:
                out["rate_hz"] = (len(w) - 1) / span
                out["bytes_per_s"] = sum(s for _, s in w[1:]) / span
            out.update(min_interval_s=min(gaps), max_interval_s=max(gaps),
                       std_interval_s=statistics.pstdev(gaps))
        return out
