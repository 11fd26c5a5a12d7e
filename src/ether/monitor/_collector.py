"""Collector: what the monitor page and /metrics show, refreshed by one thread
every `period` seconds however many browsers watch. It joins the session as a
client (named ether-monitor-<pid>), subscribes to the stats topic, and keeps:
- a row per member, kept after the member is gone (state "dead");
- a row per topic, with the last HISTORY rates for its sparkline;
- the tail of the session's logs."""
from __future__ import annotations

import collections
import os
import threading
import time

from ether import lowlevel

from . import _logs, _members, _stats, _topics

__all__ = ["Collector", "HISTORY", "LOG_TAIL"]

HISTORY = 60
LOG_TAIL = 100


class Collector:
    def __init__(self, session: str, *, period: float = 1.0):
        self.session = session
        self.period = period
        self.client = lowlevel.Client.attach(session, name=f"ether-monitor-{os.getpid()}")
        self.watch = _stats.StatsWatch(self.client)
        self._processes = _members.Processes()
        self._rows: dict[str, dict] = {}
        self._history: dict[str, collections.deque] = {}
        folder = _logs.log_dir(session)
        keep = _logs.Filter()
        self._logs = collections.deque((r.to_dict() for r in _logs.read(folder, keep)[-LOG_TAIL:]
                                        if folder.is_dir()), maxlen=LOG_TAIL) if folder.is_dir() \
            else collections.deque(maxlen=LOG_TAIL)
        self._follower = _logs.Follower(folder, keep)
        self._cond = threading.Condition()
        self.version = 0
        self.ended = False
        self._state: dict = {}
        self._snapshot = None
        self._stop = threading.Event()
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="ether-monitor-collect", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.refresh()
            except Exception:  # a session that ended, a member going away mid-read
                if not lowlevel_live(self.session):
                    with self._cond:
                        self.ended = True
                        self.version += 1
                        self._cond.notify_all()
                    return

    def refresh(self) -> None:
        own = self.client.node.name
        snapshot = lowlevel.inspect(self.session)
        stats = self.watch.latest()
        now = time.time()
        present = set()
        for row in _members.member_rows(snapshot, stats, self._processes):
            if row["instance"] == own:
                continue
            present.add(row["instance"])
            rates = self.watch.rates(row["instance"])
            row["handled_hz"], row["published_hz"] = rates.get("handled"), rates.get("published")
            self._rows[row["instance"]] = row
        for name, row in self._rows.items():
            if name not in present and row["state"] != "dead":
                self._rows[name] = {**row, "state": "dead", "cpu_percent": None, "inbox_fill": None,
                                    "handled_hz": None, "published_hz": None}
        topics = _topics.topic_rows(snapshot, stats, self.watch.rates)
        for t in topics:
            t["subscribers"] = [s for s in t["subscribers"] if s["inbox"] != own]
            h = self._history.setdefault(t["topic"], collections.deque(maxlen=HISTORY))
            h.append(t["rate_hz"] or 0.0)
            t["history"] = list(h)
        for r in self._follower.poll():
            self._logs.append(r.to_dict())
        state = {"session": self.session, "time": now, "run_id": snapshot.run_id,
                 "host": _members._HOST, "hosts": [_members._HOST],
                 "instances": sorted(self._rows.values(), key=lambda r: (r["instance"] != "main", r["instance"])),
                 "topics": topics, "logs": list(self._logs), "stats_dropped": self.watch.dropped()}
        with self._cond:
            self.version += 1
            state["version"] = self.version
            self._state = state
            self._snapshot = snapshot
            self._cond.notify_all()

    def state(self) -> dict:
        with self._cond:
            return self._state

    def stats(self) -> tuple[dict, dict]:
        """(latest stats per node, instance rows): what /metrics exports."""
        with self._cond:
            return self.watch.latest(), {r["instance"]: r for r in self._state.get("instances", ())}

    def wait_newer(self, version: int, timeout: float) -> dict:
        with self._cond:
            self._cond.wait_for(lambda: self.version > version or self.ended, timeout)
            return self._state

    def close(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(5.0)
        with self._cond:
            self.ended = True
            self._cond.notify_all()
        self.watch.close()
        self.client.close()


def lowlevel_live(session: str) -> bool:
    return any(s.name == session for s in lowlevel.list_sessions())
