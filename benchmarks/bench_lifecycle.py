#!/usr/bin/env python
"""How long an instance is gone: from its death to its replacement being ready
and subscribed, on this host (issue 13, part 1).

What it measures
================
R1  Restart.  ether.tap starts one instance, `victim` (tests/supervision_apps.Echo:
    a service and a subscriber of "ping"), with `restart: on-failure` and
    `backoff_s: 0` (the mechanism alone; a configured backoff adds itself).
    The main script asks the victim its pid (ether.get), takes the clock
    (time.monotonic), sends it SIGKILL, and polls ether.lowlevel.inspect() until
    the victim's directory entry is back: a live entry (not a placeholder) in
    state READY with the new restart count. The supervisor writes READY after
    the new process reported Ready, which it sends only once it has joined,
    constructed its class and subscribed; so that moment is "ready and
    subscribed". The poll's own cost (one inspect, ~0.3 ms) is the resolution.
    Then, untimed, a ping must come back as a pong from the new pid: it really
    is subscribed. K kills per run (10; 3 with --quick), one tap per run.

    Reported per start method (fork, the default; spawn, a fresh interpreter):
    the median over runs (5; 1 with --quick) of each run's median, with the
    min-max of the run medians, and the supervisor's own figure for the same
    restarts (from its watcher seeing the exit to READY: it leaves out the
    kernel's and the watcher's part of the detection).

Target: <= 0.3 s with fork.  The remote rows of the issue (restart on another
host, a two-host tap and shutdown) belong to part 2 (remote launch) and are not
measured here.

Usage (from the repository root)
-----
  python benchmarks/bench_lifecycle.py            # about 30 s
  python benchmarks/bench_lifecycle.py --quick    # about 5 s
  python benchmarks/bench_lifecycle.py --json out.json

Each run is a fresh tap ... shutdown; after it /dev/shm must hold nothing of
that session, or the run counts as failed.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import statistics
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

from ether import ether  # noqa: E402
from ether.lowlevel import InstanceState, inspect  # noqa: E402


def _back(sid: str, restarts: int) -> bool:
    for m in inspect(sid).members:
        if m.name == "victim":
            return (not m.placeholder and m.restarts == restarts
                    and InstanceState.of(m.state) is InstanceState.READY)
    return False


def one_run(method: str, kills: int) -> tuple[list[float], list[float]]:
    os.environ["ETHER_START_METHOD"] = method
    ether.tap(config={"instances": {"victim": {
        "class_path": "supervision_apps.Echo", "restart": "on-failure", "backoff_s": 0}},
        "supervision": {"max_restarts": 1000}})
    sid = ether.session
    tick = threading.Event()
    took = []
    try:
        for k in range(1, kills + 1):
            pid = ether.get("victim", "pid")
            start = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            while not _back(sid, k):
                if time.monotonic() - start > 30:
                    raise RuntimeError(f"restart {k} did not come back within 30 s")
                tick.wait(0.0002)
            took.append(time.monotonic() - start)
            with ether.listen("pong", timeout=10) as pongs:  # untimed: it is subscribed
                ether.pub({"n": k}, topic="ping")
                pong = next(iter(pongs))
            if pong["pid"] == pid:
                raise RuntimeError("the pong came from the dead process")
        own = list(ether._supervisor.restarts.timings)
    finally:
        ether.shutdown()
    left = [n for n in os.listdir("/dev/shm") if n.startswith(f"ether_{sid}")]
    if left:
        raise RuntimeError(f"left in /dev/shm: {left}")
    return took, own


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--runs", type=int)
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 5)
    kills = 3 if args.quick else 10
    import logging
    logging.getLogger("Ether").setLevel(logging.WARNING)  # the restarts' lines, not the table's
    results = {}
    for method in ("fork", "spawn"):
        medians, own_medians = [], []
        for _ in range(runs):
            took, own = one_run(method, kills)
            medians.append(statistics.median(took))
            own_medians.append(statistics.median(own))
        results[method] = {"median_s": statistics.median(medians), "min_s": min(medians),
                           "max_s": max(medians), "supervisor_median_s": statistics.median(own_medians),
                           "runs": runs, "kills_per_run": kills}
    print()
    print(f"death -> replacement ready and subscribed (kill -9, restart: on-failure, backoff 0); "
          f"median of {runs} run(s) x {kills} kills")
    print(f"{'start method':<14}{'median':>10}{'min-max of runs':>22}{'supervisor saw':>18}")
    for method, r in results.items():
        print(f"{method:<14}{r['median_s'] * 1000:>8.0f} ms"
              f"{r['min_s'] * 1000:>13.0f}-{r['max_s'] * 1000:.0f} ms"
              f"{r['supervisor_median_s'] * 1000:>15.0f} ms")
    fork = results["fork"]["median_s"]
    print(f"target: <= 300 ms with fork: {'met' if fork <= 0.3 else 'NOT met'} ({fork * 1000:.0f} ms)")
    print("remote host (restart, two-host tap and shutdown): not measured - part 2 of issue 13")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
