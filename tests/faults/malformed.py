"""Malformed records of 20 kinds (records.py), sent raw into an instance's
inbox, interleaved one to one with valid messages.

An adversary process joins the session (ether.lowlevel.Session.open(name)
.connect(inbox)) and sends them; first it publishes one real array, so that the
receiver holds a bit in its arena and forged handles into that arena reach the
arena's own bounds checks. The receiver (MalformedTarget) checks the valid
messages (order, CRC) and counts anything else that reaches a handler. After a
final valid marker it reports.

Figures: malformed records sent, and how many reached a handler; valid
messages delivered, in order; whether the receiver is still the same live
process and answers; its log: lines written, how many full (first-of-a-kind)
lines, whether one was written again and again (a flood), how many of the
malformed records the log accounts for.
"""
from __future__ import annotations

import multiprocessing
import re
import time

from . import common, records
from .common import Outcome, Proc, fmt_s

PROMISE = ("Malformed input is rejected and counted, the receiver keeps serving, the valid "
           "messages around it all arrive in order, and the log does not flood")
_COUNT_LINE = re.compile(r"(\d+) more message\(s\) on .*\((\d+) in all\)")
_NUMBERS = re.compile(r"\d+")


def _log_figures(logs, sid: str, process: str) -> dict:
    recs = [(level, msg) for level, msg in common.log_records(logs, sid, process)
            if level in ("WARNING", "ERROR", "CRITICAL")]
    counted = full = errors = 0
    seen: dict[str, int] = {}
    for level, msg in recs:
        first = msg.splitlines()[0]
        m = _COUNT_LINE.search(first)
        if m:
            counted += int(m.group(1))
            continue
        full += 1
        errors += level != "WARNING"  # (a warning, such as an unknown key, is no rejection)
        key = _NUMBERS.sub("#", first)
        seen[key] = seen.get(key, 0) + 1
    repeated = {k: n for k, n in seen.items() if n > 1}
    return {"lines": len(recs), "full_lines": full, "distinct_full_lines": len(seen),
            "repeated_full_lines": sum(repeated.values()),
            "most_repeated": sorted(repeated.items(), key=lambda kv: -kv[1])[:3],
            "accounted": errors + counted}


def run(count: int = 10_000, seed: int = 20, watchdog_s: float = 300.0) -> Outcome:
    common.ensure_path()
    from ether import ether
    from ether.lowlevel import inspect
    from . import processes
    spawn = multiprocessing.get_context("spawn")
    started = time.monotonic()
    with common.watchdog(watchdog_s), common.log_dir() as logs:
        ether.tap(config={"instances": {"target": {"class_path": "reliability_apps.MalformedTarget",
                                                   "kwargs": {"watchdog_s": watchdog_s}}}})
        sid = ether.session_name()
        procs = [Proc.of(m.pid, m.name) for m in inspect(sid).members if m.name != "main"]
        target = procs[0]
        adversary = None
        try:
            with ether.listen("fault-report", timeout=watchdog_s) as reports:
                ready = spawn.Event()
                here, there = spawn.Pipe(duplex=False)
                adversary = spawn.Process(target=processes.adversary,
                                          args=(sid, "target", count, seed, ready, there, watchdog_s))
                sending = time.monotonic()
                adversary.start()
                report = next(reports, None)
                handled_in = time.monotonic() - sending
            kinds = here.recv() if here.poll(60) else {}
            here.close()
            there.close()
            adversary.join(60)
            answered = ether.get("target", "pid", timeout=10)
            alive = target.alive() and answered == target.pid
        finally:
            if adversary is not None and adversary.is_alive():
                adversary.kill()
                adversary.join(10)
            ether.shutdown()
            leaked = common.shm_objects(sid)
            orphans = [p for p in procs if p.alive()]
            common.kill_and_wait(orphans)
            common.remove_session_objects(sid)
        log = _log_figures(logs, sid, "target")
    if report is None:
        report = {"valid": 0, "out_of_order": 0, "bad_crc": 0, "other": 0}
    malformed = sum(n for k, n in kinds.items() if "refused" not in k)
    # The count lines come at most once a second per (topic, reason), plus the rest at close.
    flood_bound = len(records.KINDS) * (2 + int(handled_in + 1))
    figures = {"malformed_sent": malformed, "kinds": len(records.KINDS), "per_kind": kinds,
               "reached_a_handler": report["other"], "valid_sent": count,
               "valid_delivered": report["valid"], "out_of_order": report["out_of_order"],
               "bad_crc": report["bad_crc"], "receiver_alive": alive, "seconds": handled_in,
               "log": log, "log_line_bound": flood_bound, "leaked": len(leaked),
               "orphans": len(orphans)}
    checks = {
        "all_rejected": report["other"] == 0,
        "receiver_alive": alive,
        "valid_all_delivered_in_order": (report["valid"] == count and report["out_of_order"] == 0
                                         and report["bad_crc"] == 0),
        "log_does_not_flood": log["repeated_full_lines"] == 0 and log["lines"] <= flood_bound,
        "nothing_left_behind": not leaked and not orphans,
    }
    flood = ""
    if log["most_repeated"]:
        line, n = log["most_repeated"][0]
        flood = f"; the most repeated, {n} times: \"{line if len(line) <= 110 else line[:110] + ' ...'}\""
    summary = (
        f"{malformed:,} malformed records of {len(records.KINDS)} kinds: {report['other']} reached a handler; "
        f"receiver {'alive, same process' if alive else 'GONE'}; {report['valid']:,} of {count:,} valid "
        f"messages delivered ({report['out_of_order']} out of order, {report['bad_crc']} corrupt) in "
        f"{fmt_s(handled_in)}; log: {log['lines']} lines ({log['full_lines']} in full, "
        f"{log['repeated_full_lines']} of them repeats), whose errors account for {log['accounted']:,} "
        f"records{flood}")
    return Outcome("malformed", PROMISE,
                   f"{malformed:,} malformed records of {len(records.KINDS)} kinds, raw, interleaved with "
                   f"{count:,} valid ones", summary, figures, checks,
                   seconds=time.monotonic() - started)
