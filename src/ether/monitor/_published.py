"""PublishedRates: what `ether hz` and `ether bw` report by default, from the
publishers' own counts on the stats topic instead of a subscription to the topic.

A subscription that takes every message costs the publishers a send and the
watcher a core at high rates; the stats topic costs a watched node two dict
operations a publish (see `_node/_stats.py`). Each node reports, once a second,
with its own clock (`time_ns`), the messages and bytes it published per topic
while watched. So for a topic (or pattern) T:

- count: what the reporting nodes published on T since this watcher began. A
  node whose counting began after the watcher subscribed (`watched_ns` later
  than its start) counts from zero; one that was watched already counts from
  its first report here (what it published before that report is not seen).
- rate: per node, (newest - oldest count) / (their time difference) over the
  reports of the last `span_s` seconds, summed over the nodes.
- dropped: what the nodes' drop-policy subscribers of T refused since the
  node's first report here, from the publishers' own per-topic drop counts.

An attached client (`ether pub`, `Client.attach`) does not report: its messages
are not counted here; `ether hz --intervals` subscribes instead.
"""
from __future__ import annotations

import threading
import time

from ether import lowlevel

__all__ = ["PublishedRates"]


class PublishedRates:
    def __init__(self, topics, span_s: float = 10.0):
        self.topics = list(topics)
        self.span_ns = int(span_s * 1e9)
        self.start_ns = time.time_ns()
        self._lock = threading.Lock()
        self._history: dict[str, list[dict]] = {}   # node -> its reports (newest last)
        self._first: dict[str, dict] = {}           # node -> its first report here
        self._fresh: set[str] = set()               # nodes that began counting for this watcher
        self.reports = 0
        self.changed_at = None                      # monotonic time a count last grew

    def add(self, report: dict) -> None:
        """One stats-topic message (a node's counters)."""
        name = report.get("instance")
        if not isinstance(name, str) or not isinstance(report.get("time_ns"), int):
            return
        with self._lock:
            before = self._totals_locked()
            history = self._history.setdefault(name, [])
            if name not in self._first:
                self._first[name] = report
                watched = report.get("watched_ns")
                if isinstance(watched, int) and watched >= self.start_ns:
                    self._fresh.add(name)
            history.append(report)
            cutoff = report["time_ns"] - self.span_ns
            while len(history) > 2 and history[1]["time_ns"] <= cutoff:
                del history[0]
            self.reports += 1
            if self._totals_locked() != before:
                self.changed_at = time.monotonic()

    def _matching(self, counts: dict, topic: str) -> int:
        if not isinstance(counts, dict):
            return 0
        if lowlevel.is_pattern(topic):
            return sum(n for t, n in counts.items()
                       if isinstance(n, int) and lowlevel.matches(topic, t))
        n = counts.get(topic, 0)
        return n if isinstance(n, int) else 0

    def _totals_locked(self) -> tuple:
        return tuple(self._count_locked(t, "topics") for t in self.topics)

    def _count_locked(self, topic: str, field: str) -> int:
        total = 0
        for name, history in self._history.items():
            # Drops are counted all along: always from the first report.
            base = {} if name in self._fresh and field != "topic_drops" else self._first[name]
            total += (self._matching(history[-1].get(field), topic)
                      - self._matching(base.get(field), topic))
        return total

    def report(self, topic: str) -> dict:
        with self._lock:
            count = self._count_locked(topic, "topics")
            size = self._count_locked(topic, "topic_bytes")
            dropped = self._count_locked(topic, "topic_drops")
            rate = rate_bytes = None
            for history in self._history.values():
                if len(history) < 2:
                    continue
                old, new = history[0], history[-1]
                dt = (new["time_ns"] - old["time_ns"]) / 1e9
                if dt <= 0:
                    continue
                rate = (rate or 0.0) + max(0, self._matching(new.get("topics"), topic)
                                           - self._matching(old.get("topics"), topic)) / dt
                rate_bytes = (rate_bytes or 0.0) + max(
                    0, self._matching(new.get("topic_bytes"), topic)
                    - self._matching(old.get("topic_bytes"), topic)) / dt
        return {"topic": topic, "count": count, "bytes": size, "window": None,
                "rate_hz": rate, "bytes_per_s": rate_bytes,
                "mean_size": size / count if count else None,
                "min_interval_s": None, "max_interval_s": None, "std_interval_s": None,
                "dropped": dropped, "source": "stats"}
