"""Rejections: the messages a node could not take (malformed, failed validation,
unknown request, refused control) and the handlers that raised, counted per
(topic, reason) and logged without flooding: the first of each reason in full,
then a count at most once a second while more come, and what is left at close.

A reason is the kind of failure ("malformed", "invalid", "handler raised
KeyError", ...), never the error's text: a flood of garbage yields endless
distinct texts, and keying by text would log each of them in full. The count
line carries the latest error's text, so nothing of what went wrong is hidden."""
from __future__ import annotations

import logging
import threading
import time
from typing import NamedTuple

__all__ = ["Rejection", "Rejections", "LOG_INTERVAL_S"]

log = logging.getLogger("Ether")

LOG_INTERVAL_S = 1.0
_TEXT_MAX = 160   # of the latest error in a count line


class Rejection(NamedTuple):
    topic: str
    reason: str      # the kind of failure
    count: int


class Rejections:
    def __init__(self, where: str):
        self._where = where
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}
        self._unlogged: dict[tuple[str, str], int] = {}   # counted since the last line
        self._latest: dict[tuple[str, str], str] = {}     # error text, for the count line
        self._next_log = 0.0

    def report(self, topic: str, reason: str, error: str, detail: str) -> None:
        """Count one under (topic, reason); log `detail` in full if it is the first."""
        key = (topic, reason)
        with self._lock:
            count = self._counts.get(key, 0) + 1
            self._counts[key] = count
            if count == 1:
                log.error("%s: %s", self._where, detail)
                return
            self._unlogged[key] = self._unlogged.get(key, 0) + 1
            self._latest[key] = error
            now = time.monotonic()
            if now < self._next_log:
                return
            self._next_log = now + LOG_INTERVAL_S
            pending, self._unlogged = self._unlogged, {}
            lines = self._count_lines(pending)
        for line in lines:
            log.error("%s", line)

    def flush(self) -> None:
        """Log what was counted and not yet said (at close)."""
        with self._lock:
            pending, self._unlogged = self._unlogged, {}
            lines = self._count_lines(pending)
        for line in lines:
            log.error("%s", line)

    def _count_lines(self, pending: dict) -> list[str]:
        out = []
        for (topic, reason), n in sorted(pending.items()):
            latest = " ".join(self._latest.get((topic, reason), "").split())[:_TEXT_MAX]
            out.append(f"{self._where}: {n} more message(s) on {topic!r}: {reason}"
                       f"{f', the latest: {latest}' if latest else ''}"
                       f" ({self._counts[(topic, reason)]} in all)")
        return out

    def counts(self) -> tuple[Rejection, ...]:
        with self._lock:
            return tuple(Rejection(t, r, n) for (t, r), n in sorted(self._counts.items()))
