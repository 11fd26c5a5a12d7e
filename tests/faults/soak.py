"""A long run (`seconds`, 10 minutes by default) of a steady pipeline: two
sources (one with a 256 KiB array through its arena every 50th message), two
sinks checking every message, the main checking them too through
ether.subscribe, and a thread of the main calling a service.

After a warm-up (a tenth of the run, at most 30 s) and at the end it samples,
for every process of the session: RSS (VmRSS; RssAnon, the private part), open
descriptors; and the session's use of /dev/shm. At the end every source says
how many it published and every checker what it got.

Figures: messages published and checked; lost, duplicated, torn; requests; each
process's RSS and descriptors at the start and the end; /dev/shm use.
"""
from __future__ import annotations

import os
import threading
import time
import zlib

from . import common
from .common import Outcome, Proc, fmt_bytes
from .kill_instance import _Caller

PROMISE = "A long run loses nothing, and memory, /dev/shm use and descriptors stay flat"
RSS_SLACK_KIB = 16 << 10   # private memory a process may gain after the warm-up (16 MiB) ...
RSS_SLACK_SHARE = 0.25     # ... or this share of what it had, whichever is more


class _MainChecker:
    """The main's own subscriber of "fault-data" (the callback thread's path)."""

    def __init__(self):
        self.stats: dict[str, dict] = {}
        self.lock = threading.Lock()

    def __call__(self, m: dict) -> None:
        with self.lock:
            s = self.stats.setdefault(m["pub"], {"received": 0, "next": 0, "duplicated": 0,
                                                 "torn": 0, "gaps": 0})
            frame = m.get("frame")
            crc = zlib.crc32(m["blob"])
            if frame is not None:
                crc = zlib.crc32(frame, crc)
            if crc != m["crc"]:
                s["torn"] += 1
                return
            if m["seq"] < s["next"]:
                s["duplicated"] += 1
                return
            s["gaps"] += m["seq"] - s["next"]
            s["next"] = m["seq"] + 1
            s["received"] += 1


def _sample(procs: list[Proc], sid: str) -> dict:
    return {"processes": {p.name: {**p.rss(), "fds": p.fds()} for p in procs},
            "shm_bytes": common.shm_bytes(sid), "main_mapped_shm": common.mapped_shm_bytes()}


def run(seconds: float = 600.0, rate: float = 500.0, watchdog_s: float | None = None) -> Outcome:
    common.ensure_path()
    from ether import ether
    from ether.lowlevel import inspect
    watchdog_s = watchdog_s or seconds + 300
    started = time.monotonic()
    warm = min(30.0, seconds / 10)
    old_arena = os.environ.get("ETHER_ARENA_BYTES")
    os.environ["ETHER_ARENA_BYTES"] = str(64 << 20)  # a good neighbour on a shared /dev/shm
    w = {"watchdog_s": watchdog_s}
    try:
        with common.watchdog(watchdog_s), common.log_dir() as logs:
            ether.tap(config={"instances": {
                "src0": {"class_path": "reliability_apps.FaultSource",
                         "kwargs": {"name": "src0", "frame_every": 50, **w}},
                "src1": {"class_path": "reliability_apps.FaultSource", "kwargs": {"name": "src1", **w}},
                "sink0": {"class_path": "reliability_apps.FaultSink", "kwargs": {"name": "sink0", **w}},
                "sink1": {"class_path": "reliability_apps.FaultSink", "kwargs": {"name": "sink1", **w}},
                "svc0": {"class_path": "reliability_apps.FaultEcho", "kwargs": w},
            }})
            sid = ether.session_name()
            procs = [Proc.of(os.getpid(), "main")] + [
                Proc.of(m.pid, m.name) for m in inspect(sid).members if m.name != "main"]
            checker = _MainChecker()
            caller = _Caller(ether, seed=99)
            try:
                unsubscribe = ether.subscribe("fault-data", checker)
                caller.thread.start()
                ether.pub({"rate": rate, "burst": 10, "limit_s": seconds + 120}, topic="fault-go")
                clock = threading.Event()
                clock.wait(warm)  # the run's schedule: the warm-up, then the rest
                first = _sample(procs, sid)
                clock.wait(max(0.0, seconds - warm))
                last = _sample(procs, sid)
                expected = {(s, k) for s in ("src0", "src1") for k in ("sink0", "sink1")}
                seen = {}
                with ether.listen("fault-fin-seen", timeout=60) as fins:
                    ether.pub({}, topic="fault-halt")
                    for fin in fins:
                        seen[(fin["pub"], fin["sink"])] = fin
                        if expected <= set(seen):
                            break
                caller.stop.set()
                caller.thread.join(30)
                # The main's own subscription: the sources' fins reach it after their data.
                counts = {fin["pub"]: fin["count"] for fin in seen.values()}
                common.wait_for(lambda: all(checker.stats.get(p, {}).get("next", 0) >= n
                                            for p, n in counts.items()), 30)
                unsubscribe()
            finally:
                caller.stop.set()
                ether.shutdown()
                leaked = common.shm_objects(sid)
                orphans = [p for p in procs[1:] if p.alive()]
                common.kill_and_wait(orphans)
                common.remove_session_objects(sid)
            errors_logged = [f"{p.name}: {e.splitlines()[0][:160]}" for p in procs[1:]
                             for e in common.problems_logged(logs, sid, p.name)]
    finally:
        if old_arena is None:
            os.environ.pop("ETHER_ARENA_BYTES", None)
        else:
            os.environ["ETHER_ARENA_BYTES"] = old_arena
    published = sum(counts.values())
    lost = dup = torn = checked = 0
    for fin in seen.values():
        lost += fin["count"] - fin["received"]
        dup += fin["duplicated"]
        torn += fin["torn"]
        checked += fin["received"]
    for pub, n in counts.items():
        s = checker.stats.get(pub, {"received": 0, "duplicated": 0, "torn": 0})
        lost += n - s["received"]
        dup += s["duplicated"]
        torn += s["torn"]
        checked += s["received"]
    missing = len(expected - set(seen))
    growth = {}
    for name, a in first["processes"].items():
        b = last["processes"].get(name, {})
        growth[name] = {"rss_kib": (a.get("VmRSS"), b.get("VmRSS")),
                        "anon_kib": (a.get("RssAnon"), b.get("RssAnon")),
                        "fds": (a.get("fds"), b.get("fds"))}

    def flat_anon(a, b):
        return a is not None and b is not None and b - a <= max(RSS_SLACK_KIB, RSS_SLACK_SHARE * a)

    def flat_fds(a, b):
        return a is not None and b is not None and b <= a + 2

    calls = {k: getattr(caller, k) for k in ("ok", "wrong", "gone", "lost", "other")}
    figures = {"seconds": seconds, "warm_up_s": warm, "published": published,
               "messages_checked": checked, "lost": lost, "duplicated": dup, "torn": torn,
               "missing_fins": missing, "calls": calls, "start": first, "end": last,
               "growth": growth, "leaked": len(leaked), "orphans": len(orphans),
               "errors_logged": errors_logged[:10]}
    checks = {
        "no_loss": lost == 0 and missing == 0 and calls["lost"] == 0,
        "no_duplicates_or_torn": dup == 0 and torn == 0 and calls["wrong"] == 0,
        "memory_flat": all(flat_anon(*g["anon_kib"]) for g in growth.values()),
        "descriptors_flat": all(flat_fds(*g["fds"]) for g in growth.values()),
        "shm_flat": last["shm_bytes"] <= first["shm_bytes"],
        "nothing_left_behind": not leaked and not orphans,
        "no_errors_logged": not errors_logged,
    }

    def mib(kib):
        return "?" if kib is None else f"{kib / 1024:.0f}"

    rss = ", ".join(f"{n} {mib(g['rss_kib'][0])}->{mib(g['rss_kib'][1])}" for n, g in growth.items())
    anon = max(((g["anon_kib"][1] or 0) - (g["anon_kib"][0] or 0), n) for n, g in growth.items())
    fds = ", ".join(f"{n} {g['fds'][0]}->{g['fds'][1]}" for n, g in growth.items())
    summary = (f"{seconds / 60:g} min: {published:,} published, {checked:,} deliveries checked: lost "
               f"{lost}, duplicated {dup}, torn {torn}; {calls['ok']:,} requests ok, {calls['lost']} "
               f"lost; from the end of the {warm:g} s warm-up to the end: RSS (MiB) {rss}; private "
               f"memory grew at most {anon[0] / 1024:+.1f} MiB ({anon[1]}); descriptors {fds}; "
               f"the session's /dev/shm {fmt_bytes(first['shm_bytes'])} -> {fmt_bytes(last['shm_bytes'])}")
    if errors_logged:
        summary += f"; {len(errors_logged)} errors logged"
    return Outcome("soak", PROMISE,
                   f"a {seconds / 60:g}-minute run: 2 sources ({2 * rate:g} msg/s, arrays every 50th "
                   f"of one), 2 sinks, the main subscribed, requests", summary, figures, checks,
                   seconds=time.monotonic() - started)
