"""The rows of `ether ps`, `ether top` and the monitor's instance table: one per
member of a session, from inspect() (pid, class, inbox fill), psutil (CPU,
memory, uptime) and the stats topic (handled, published, errors).

`state_of` and `restarts_of` are where a member's state and restart count are
decided: today from the directory entry's state and the process's liveness;
supervision (restart policies, health) adds its states there.
"""
from __future__ import annotations

import socket
import time

from ._stats import handler_errors

__all__ = ["Processes", "member_rows", "state_of", "restarts_of", "COLUMNS"]

COLUMNS = ("instance", "host", "class", "pid", "state", "uptime_s", "restarts", "cpu_percent",
           "rss_bytes", "inbox_fill", "handled", "published", "dropped", "errors")

_MAIN_STAGES = {1: "running", 2: "stopping", 3: "stopping"}  # _runtime's Stage values
_HOST = socket.gethostname()


class Processes:
    """psutil's view of the members' processes. CPU is the share since the last
    sample of the same process (the lifetime average on the first)."""

    def __init__(self):
        import psutil  # only the commands that show processes need it
        self._psutil = psutil
        self._seen: dict[int, object] = {}

    def sample(self, pid: int) -> dict:
        psutil = self._psutil
        try:
            proc = self._seen.get(pid)
            first = proc is None
            if first:
                proc = self._seen[pid] = psutil.Process(pid)
            with proc.oneshot():
                if proc.status() == psutil.STATUS_ZOMBIE:
                    return {"alive": False}
                created = proc.create_time()
                uptime = max(0.0, time.time() - created)
                if first:
                    t = proc.cpu_times()
                    proc.cpu_percent(None)  # the baseline of the next sample
                    cpu = 100.0 * (t.user + t.system) / uptime if uptime > 0 else 0.0
                else:
                    cpu = proc.cpu_percent(None)
                return {"alive": True, "uptime_s": uptime, "cpu_percent": cpu,
                        "rss_bytes": proc.memory_info().rss}
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            self._seen.pop(pid, None)
            return {"alive": False}


def state_of(member, process: dict, stats: dict | None) -> str:
    """A member's state: what its node reports, else what its directory entry
    and its process say."""
    if stats and isinstance(stats.get("state"), str):
        return stats["state"]
    if member.name == "main":
        return _MAIN_STAGES.get(member.state, "running") if process.get("alive") else "dead"
    from ether.lowlevel import InstanceState
    state = InstanceState.of(member.state)   # the supervisor's word (restart policies)
    if getattr(member, "placeholder", False):  # no process behind it: restarting, or failed
        return state.value if state is not None else "restarting"
    if not process.get("alive"):
        return "dead"
    return state.value if state is not None else "running"


def restarts_of(member, stats: dict | None) -> int | None:
    """How often it was restarted, if anything reports it (None: unknown)."""
    if stats and isinstance(stats.get("restarts"), int):
        return stats["restarts"]
    restarts = getattr(member, "restarts", None)   # the directory's count
    return restarts if isinstance(restarts, int) else None


def member_rows(snapshot, stats: dict[str, dict], processes: Processes) -> list[dict]:
    inboxes = {i.name: i for i in snapshot.inboxes}
    rows = []
    for m in snapshot.members:
        process = processes.sample(m.pid)
        s = stats.get(m.name)
        inbox = inboxes.get(m.name)
        rows.append({
            "session": snapshot.name, "instance": m.name, "host": _HOST,
            "class": m.class_name, "pid": m.pid,
            "state": state_of(m, process, s), "uptime_s": process.get("uptime_s"),
            "restarts": restarts_of(m, s), "cpu_percent": process.get("cpu_percent"),
            "rss_bytes": process.get("rss_bytes"),
            "inbox_fill": inbox.fill if inbox else None,
            "handled": s.get("handled") if s else None,
            "published": s.get("published") if s else None,
            # messages meant for it that its full inbox refused (drop policy)
            "dropped": inbox.dropped if inbox else None,
            "errors": handler_errors(s) if s else None,
        })
    return rows
