"""Rejections: the messages a node could not take (malformed, failed validation,
unknown request) and the handlers that raised, counted per (topic, reason) and
logged without flooding: the first of each kind in full, then a count at most
once a second while more come, and what is left at close."""
from __future__ import annotations

import logging
import re
import threading
import time
from typing import NamedTuple

__all__ = ["Rejection", "Rejections", "reason_of", "LOG_INTERVAL_S"]

log = logging.getLogger("Ether")

LOG_INTERVAL_S = 1.0


class Rejection(NamedTuple):
    topic: str
    reason: str      # the kind and the gist of the error, numbers left out
    count: int


_NUMBERS = re.compile(r"\d+")


def reason_of(kind: str, error: str) -> str:
    """The key a rejection is counted under: its kind ("malformed", "invalid",
    "handler raised", ...) and the error's first line, numbers masked (so a flood
    of one mistake is one reason, and two different mistakes are two)."""
    line = error.strip().splitlines()[-1] if error.strip() else ""
    return f"{kind}: {_NUMBERS.sub('#', line)[:160]}"


class Rejections:
    def __init__(self, where: str):
        self._where = where
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}
        self._unlogged: dict[tuple[str, str], int] = {}   # counted since the last line
        self._next_log = 0.0

    def report(self, topic: str, kind: str, error: str, detail: str) -> None:
        """Count one; log `detail` in full if it is the first of its (topic, reason)."""
        key = (topic, reason_of(kind, error))
        with self._lock:
            count = self._counts.get(key, 0) + 1
            self._counts[key] = count
            if count == 1:
                log.error("%s: %s", self._where, detail)
                return
            self._unlogged[key] = self._unlogged.get(key, 0) + 1
            now = time.monotonic()
            if now < self._next_log:
                return
            self._next_log = now + LOG_INTERVAL_S
            pending, self._unlogged = self._unlogged, {}
        self._log_counts(pending)

    def flush(self) -> None:
        """Log what was counted and not yet said (at close)."""
        with self._lock:
            pending, self._unlogged = self._unlogged, {}
        self._log_counts(pending)

    def _log_counts(self, pending: dict) -> None:
        for (topic, reason), n in sorted(pending.items()):
            log.error("%s: %d more message(s) on %r: %s (%d in all)", self._where, n, topic,
                      reason, self._counts[(topic, reason)])

    def counts(self) -> tuple[Rejection, ...]:
        with self._lock:
            return tuple(Rejection(t, r, n) for (t, r), n in sorted(self._counts.items()))
