"""StatsWatch: the latest counters of every node of a session, from the stats
topic, and the rates between the two latest snapshots of each.

It subscribes to `lowlevel.STATS_TOPIC` with policy "drop", so a watcher that
falls behind never slows the session down; its own drops are `dropped()`.
Nodes start to publish within ~0.1 s of the subscription (then once a second),
and count per topic and time handlers only while watched.
"""
from __future__ import annotations

import threading
import time

from ether import lowlevel

__all__ = ["StatsWatch", "handler_errors"]


def handler_errors(stats: dict | None) -> int:
    """How many times the node's handlers raised (its rejections of that kind)."""
    if not stats:
        return 0
    return sum(n for _topic, reason, n in stats.get("rejected", ()) if reason.startswith("handler raised"))


class StatsWatch:
    def __init__(self, client):
        self._client = client
        self._cond = threading.Condition()
        self._latest: dict[str, dict] = {}
        self._previous: dict[str, dict] = {}
        self.updates = 0
        self._unsubscribe = client.subscribe(lowlevel.STATS_TOPIC, self._on_stats, policy="drop")

    def _on_stats(self, message: dict) -> None:
        name = message.get("instance")
        if not isinstance(name, str):
            return
        with self._cond:
            if name in self._latest:
                self._previous[name] = self._latest[name]
            self._latest[name] = message
            self.updates += 1
            self._cond.notify_all()

    def close(self) -> None:
        self._unsubscribe()

    def latest(self) -> dict[str, dict]:
        with self._cond:
            return dict(self._latest)

    def wait_for(self, names, timeout: float) -> bool:
        """True once every node in `names` has reported at least once."""
        wanted = set(names)
        deadline = time.monotonic() + timeout
        with self._cond:
            while not wanted <= self._latest.keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def wait_updates(self, count: int, timeout: float) -> bool:
        """True once `count` more snapshots have arrived than now."""
        with self._cond:
            target = self.updates + count
            return self._cond.wait_for(lambda: self.updates >= target, timeout)

    def rates(self, name: str) -> dict:
        """Per second, between the node's two latest snapshots: published,
        handled, and published per topic (keys "topic:<name>")."""
        with self._cond:
            new, old = self._latest.get(name), self._previous.get(name)
        if not new or not old:
            return {}
        dt = (new["time_ns"] - old["time_ns"]) / 1e9
        if dt <= 0:
            return {}
        out = {k: max(0.0, (new.get(k, 0) - old.get(k, 0)) / dt) for k in ("published", "handled")}
        old_topics = old.get("topics", {})
        for topic, n in new.get("topics", {}).items():
            out[f"topic:{topic}"] = max(0.0, (n - old_topics.get(topic, 0)) / dt)
        return out

    def dropped(self) -> int:
        """Snapshots this watcher missed because its inbox was full."""
        try:
            return self._client.node.inbox.statistics().dropped
        except Exception:
            return 0
