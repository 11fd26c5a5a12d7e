"""kill -9 of the main process, with instances that are busy: one loops in its
@ether_start handler (a sensor loop), one works off a backlog of slow messages,
one is idle.

Each trial starts victim_main.py in a fresh interpreter; it taps the session,
waits until the loop runs and the backlog is being worked off, and reports the
instances' pids. Then it is SIGKILLed, and each instance's exit is awaited (a
pidfd per process: they are orphans by then, not our children) for up to
`cap_s`. Whatever still runs after that is killed.

Figures: time from the kill until the last instance exited (max over trials),
per kind of instance; trials that left an instance running past the cap. (What
the dead session leaves in /dev/shm is not a figure here: any other session
created on this host meanwhile sweeps it, so it depends on the neighbours.)
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time

from . import common
from .common import Outcome, Proc, fmt_s

PROMISE = "Every instance exits within 1 s of its main dying, whatever its handlers are doing"
LIMIT_S = 1.0


def _trial(cap_s: float, backlog: int, work_s: float, watchdog_s: float, out_dir: str) -> dict:
    r, w = os.pipe()
    params = {"backlog": backlog, "work_s": work_s, "watchdog_s": watchdog_s,
              "instance_watchdog_s": watchdog_s}
    log = open(os.path.join(out_dir, "victim.log"), "ab")
    victim = subprocess.Popen(
        [sys.executable, "-m", "faults.victim_main", json.dumps(params), str(w)],
        cwd=common.TESTS, pass_fds=(w,), stdin=subprocess.DEVNULL, stdout=log,
        stderr=subprocess.STDOUT, env={**os.environ, "ETHER_LOG_DIR": out_dir})
    os.close(w)
    log.close()
    procs: list[Proc] = []
    sid = None
    try:
        # The report comes once the session runs as described (or never: the
        # victim's own watchdog ends it, and the read below gives up).
        ready, _, _ = select.select([r], [], [], 60)
        line = b""
        while ready and not line.endswith(b"\n"):
            chunk = os.read(r, 4096)
            if not chunk:
                break
            line += chunk
        if not line.endswith(b"\n"):
            raise RuntimeError(f"the victim main did not report (exit code {victim.poll()}); "
                               f"see {out_dir}/victim.log")
        report = json.loads(line)
        sid = report["session"]
        procs = [Proc.of(pid, name) for name, pid in report["pids"].items()]
        victim.kill()
        killed_at = time.monotonic()
        victim.wait(10)
        base = time.monotonic() - killed_at  # wait_exits counts from its own start
        exits = common.wait_exits(procs, cap_s - base)
        exited = {p.name: (None if t is None else base + t) for p, t in exits.items()}
        running = [p.name for p in procs if p.alive()]
        common.kill_and_wait(procs)
        return {"exits": exited, "running": running}
    finally:
        os.close(r)
        if victim.poll() is None:
            victim.kill()
            victim.wait(10)
        common.kill_and_wait(procs)
        if sid is not None:
            common.remove_session_objects(sid)


def run(trials: int = 20, cap_s: float = 3.0, backlog: int = 200, work_s: float = 0.05,
        watchdog_s: float = 120.0) -> Outcome:
    common.ensure_path()
    started = time.monotonic()
    results = []
    with common.watchdog(watchdog_s + trials * (cap_s + 30)), \
            tempfile.TemporaryDirectory(prefix="ether-faults-main-") as out_dir:
        for _ in range(trials):
            results.append(_trial(cap_s, backlog, work_s, watchdog_s, out_dir))
    kinds = ("idle", "backlog", "looper")
    worst = {}
    for kind in kinds:
        times = [r["exits"].get(kind) for r in results]
        worst[kind] = None if any(t is None for t in times) else max(times, default=0.0)
    still = sum(1 for r in results if r["running"])
    last = None if still else max((t for r in results for t in r["exits"].values()), default=0.0)
    figures = {"trials": trials, "cap_s": cap_s, "last_exit_max_s": last,
               "exit_max_s_by_kind": worst, "trials_with_instances_running_at_cap": still,
               "still_running_by_kind": {k: sum(k in r["running"] for r in results) for k in kinds},
               "idle_exit_s_each": [r["exits"].get("idle") for r in results]}

    def shown(t):
        return f"> {cap_s:g} s" if t is None else fmt_s(t)

    checks = {f"{kind}_exits_within_1s": worst[kind] is not None and worst[kind] <= LIMIT_S
              for kind in kinds}
    # The idle one's 1 s is close to its design (it looks for its main every 0.5 s,
    # between reads that wait up to 0.5 s), so a loaded machine can push it over:
    # that it goes at all, by itself, is a separate check.
    checks["idle_exits_by_itself"] = worst["idle"] is not None
    summary = (f"last instance exited after {shown(last)} (max of {trials}); idle {shown(worst['idle'])}, "
               f"backlogged {shown(worst['backlog'])}, looping {shown(worst['looper'])}; "
               f"{still} of {trials} trials still had instances running after {cap_s:g} s "
               f"(looping {figures['still_running_by_kind']['looper']}, backlogged "
               f"{figures['still_running_by_kind']['backlog']}, idle {figures['still_running_by_kind']['idle']})")
    return Outcome("kill_main", PROMISE,
                   f"kill -9 of the main, {trials} times, with a looping, a backlogged "
                   f"({backlog} x {work_s * 1e3:.0f} ms) and an idle instance",
                   summary, figures, checks, seconds=time.monotonic() - started)
