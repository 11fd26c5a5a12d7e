"""ether.shutdown() while a slow subscriber is far behind: `backlog` messages
of `work_s` of slow work each (20 s by default) are published, and shutdown is
called at once.

The subscriber (SlowSaver) writes what it had handled when its save_all,
cleanup and shutdown handlers run, to a file this scenario reads afterwards.

Figures: messages handled of those published (and in order), which lifecycle
handlers ran, how long shutdown took, and what the main's log said about it.
"""
from __future__ import annotations

import json
import os
import tempfile
import time

from . import common
from .common import Outcome, Proc, fmt_s

PROMISE = ("Shutdown delivers everything published before it, waits while the instances make "
           "progress, and runs save_all")


def run(backlog: int = 400, work_s: float = 0.05, watchdog_s: float = 240.0) -> Outcome:
    common.ensure_path()
    from ether import ether
    from ether.lowlevel import inspect
    started = time.monotonic()
    fd, path = tempfile.mkstemp(prefix="ether-faults-saver-", suffix=".jsonl")
    os.close(fd)
    try:
        with common.watchdog(watchdog_s), common.log_dir() as logs:
            ether.tap(config={"instances": {"saver": {
                "class_path": "reliability_apps.SlowSaver",
                "kwargs": {"path": path, "work_s": work_s, "watchdog_s": watchdog_s}}}})
            sid = ether.session_name()
            procs = [Proc.of(m.pid, m.name) for m in inspect(sid).members if m.name != "main"]
            try:
                for seq in range(backlog):
                    ether.pub({"seq": seq}, topic="fault-backlog")
            finally:
                t0 = time.monotonic()
                ether.shutdown()
                took = time.monotonic() - t0
                leaked = common.shm_objects(sid)
                orphans = [p for p in procs if p.alive()]
                common.kill_and_wait(orphans)
                common.remove_session_objects(sid)
            said = [f"{level}: {msg.splitlines()[0][:160]}"
                    for level, msg in common.log_records(logs, sid, "session")
                    if level in ("WARNING", "ERROR")]
        with open(path) as f:
            notes = [json.loads(line) for line in f if line.strip()]
    finally:
        os.unlink(path)
    phases = {n["phase"]: n for n in notes if n["phase"] != "work"}
    handled = max((n["handled"] for n in notes), default=0)
    saved = phases.get("save_all", {}).get("handled")
    in_order = all(n["out_of_order"] == 0 for n in notes)
    figures = {"published": backlog, "backlog_s": backlog * work_s, "handled": handled,
               "handled_at_save_all": saved, "phases_ran": list(phases), "shutdown_s": took,
               "main_log": said[:8], "leaked": len(leaked), "orphans": len(orphans)}
    checks = {
        "every_message_handled": handled == backlog and in_order,
        "save_all_ran": "save_all" in phases,
        "cleanup_and_shutdown_ran": "cleanup" in phases and "shutdown" in phases,
        "nothing_left_behind": not leaked and not orphans,
    }
    shown = "none" if not phases else ", ".join(phases)
    summary = (f"{handled} of {backlog} messages handled"
               f"{f' ({saved} when save_all ran)' if saved is not None else ''}; lifecycle handlers "
               f"that ran: {shown}; shutdown took {fmt_s(took)}")
    if said:
        summary += f"; the main logged: \"{said[0].split(': ', 1)[1][:120]}\""
    if not phases:
        summary += " (none of its lifecycle handlers ran)"
    return Outcome("shutdown_backlog", PROMISE,
                   f"ether.shutdown() with a {backlog * work_s:g} s backlog ({backlog} messages x "
                   f"{work_s * 1e3:.0f} ms) in one subscriber", summary, figures, checks,
                   seconds=time.monotonic() - started)
