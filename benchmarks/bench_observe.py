#!/usr/bin/env python
"""What watching a session costs it: a pipeline's throughput with and without
`ether echo`, `ether hz`, a stats-topic watcher and `ether monitor` attached,
in the same run; and the wall time of `ether --help` and `ether ps`.

What it measures
================
O1  The decorated pipeline of bench_pipeline.py P1 (TickPublisher publishes N
    small dicts on "tick", TickCounter validates and counts them; rate = N /
    (counter's last arrival - publisher's clock before its first send)), run
    once per variant, the variants interleaved round by round:
      none      nothing attached
      echo      `ether echo tick --json` (a drop-policy subscriber that decodes
                every message it gets), stdout to /dev/null
      hz        `ether hz tick --json`
      stats     a process subscribed to the stats topic (ether/stats): every
                node publishes its counters at 1 Hz, counts per topic and
                times its handlers
      monitor   `ether monitor --port 0` (stats topic, inspect() and psutil
                every second, the log tail), no browser
      all       echo + hz + stats + monitor at once
    Each run is a fresh tap; the watchers are started with --session, and the
    run starts once each has subscribed (read from inspect()) and the nodes
    have had POLL_S (0.03 s) to notice a stats subscriber. The watchers are
    separate processes on the same cores as the pipeline: on a 2-core machine
    a watcher that decodes every message takes CPU from it, which is part of
    what this measures. Target: >= 0.95x of "none" with everything attached.
O2  `ether --help` and `ether ps --session S` (a live, idle session of 2
    instances) in a fresh process each, wall time, median of --runs * 3.
    Targets: <= 0.15 s and <= 0.3 s.

Usage (from the repository root)
-----
  python benchmarks/bench_observe.py            # 3 rounds, N = 200,000
  python benchmarks/bench_observe.py --quick    # 1 round, N = 50,000
  python benchmarks/bench_observe.py --json results.json
Never fails on a target; the exit status is 1 only if a run did not verify.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

VARIANTS = ("none", "echo", "hz", "stats", "monitor", "all")
TARGET_RATIO = 0.95
TARGET_HELP_S = 0.15
TARGET_PS_S = 0.3

STATS_WATCHER = r"""
import sys, threading
from ether import lowlevel
with lowlevel.Client.attach(sys.argv[1], name="bench-stats") as client:
    client.subscribe(lowlevel.STATS_TOPIC, lambda m: None, policy="drop")
    sys.stdin.read()   # until the benchmark closes our stdin
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _watchers(variant: str, sid: str) -> list[tuple[list[str], str]]:
    """(argv, topic it subscribes to) of each process the variant attaches."""
    ether_cmd = [sys.executable, "-m", "ether"]
    parts = {
        "echo": (ether_cmd + ["echo", "tick", "--json", "--session", sid], "tick"),
        "hz": (ether_cmd + ["hz", "tick", "--json", "--session", sid], "tick"),
        "stats": ([sys.executable, "-c", STATS_WATCHER, sid], "ether/stats"),
        "monitor": (ether_cmd + ["monitor", "--port", "0", "--session", sid], "ether/stats"),
    }
    names = list(parts) if variant == "all" else ([] if variant == "none" else [variant])
    return [parts[n] for n in names]


def _wait_subscribed(sid: str, expected: int, timeout: float = 30.0) -> bool:
    """Until `expected` inboxes besides the pipeline's subscribe to tick or ether/stats."""
    from ether import lowlevel
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while time.monotonic() < deadline:
        subs = lowlevel.inspect(sid).subscriptions
        watchers = {s.inbox for s in subs if s.topic in ("tick", "ether/stats") and s.inbox != "counter"}
        if len(watchers) >= expected:
            return True
        tick.wait(0.02)
    return False


def run_variant(variant: str, count: int, timeout: float) -> dict:
    from ether import ether
    config = {"instances": {
        "publisher": {"class_path": "_pipeline_apps.TickPublisher", "kwargs": {"count": count}},
        "counter": {"class_path": "_pipeline_apps.TickCounter"},
    }}
    ether.tap(config=config)
    sid = ether.session_name()
    out: dict = {"variant": variant}
    procs = []
    try:
        for argv, _ in _watchers(variant, sid):
            procs.append(subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.PIPE,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if procs and not _wait_subscribed(sid, len(procs)):
            out["error"] = "the watchers did not subscribe within 30 s"
            return out
        if procs:
            threading.Event().wait(0.3)  # nodes switch their counting on within POLL_S (0.03 s)
        done = None
        with ether.listen("done", timeout=timeout) as listener:
            ether.start()
            for msg in listener:
                done = msg
                break
        if done is None:
            out["error"] = f"no 'done' within {timeout:g} s"
            return out
        if done["received"] != count or done["violations"] or done["bad_fields"]:
            out["error"] = f"did not verify: {done}"
            return out
        out["mps"] = count / ((done["last_ns"] - done["t0_ns"]) / 1e9)
        return out
    finally:
        for p in procs:
            try:
                p.stdin.close()
            except OSError:
                pass
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        ether.shutdown()


def wall_times(runs: int) -> dict:
    from ether import ether
    env = dict(os.environ)
    times = {"help": [], "ps": []}
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ether", "--help"], cwd=ROOT, env=env,
                       stdout=subprocess.DEVNULL, check=True)
        times["help"].append(time.perf_counter() - t0)
    ether.tap(config={"instances": {"counter": {"class_path": "_pipeline_apps.TickCounter"},
                                    "other": {"class_path": "_pipeline_apps.TickCounter"}}})
    try:
        sid = ether.session_name()
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "ether", "ps", "--session", sid], cwd=ROOT,
                           env=env, stdout=subprocess.DEVNULL, check=True)
            times["ps"].append(time.perf_counter() - t0)
    finally:
        ether.shutdown()
    return {k: {"median": statistics.median(v), "min": min(v), "max": max(v)} for k, v in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 round, N = 50,000")
    ap.add_argument("--runs", type=int, default=None, help="rounds (default 3; 1 with --quick)")
    ap.add_argument("--count", type=int, default=None, help="messages per run (default 200,000)")
    ap.add_argument("--json", metavar="PATH", help="also write every run and the summary as JSON")
    args = ap.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    count = args.count or (50_000 if args.quick else 200_000)
    os.chdir(ROOT)
    import logging
    logging.getLogger("Ether").setLevel(logging.WARNING)
    results: dict[str, list] = {v: [] for v in VARIANTS}
    bad = 0
    for r in range(runs):
        for variant in VARIANTS:
            res = run_variant(variant, count, timeout=60.0)
            results[variant].append(res)
            if "error" in res:
                bad += 1
                log(f"round {r + 1} {variant}: {res['error']}")
            else:
                log(f"round {r + 1} {variant}: {res['mps'] / 1e3:.0f} k msg/s")
    walls = wall_times(runs * 3)
    summary = {}
    base = statistics.median([x["mps"] for x in results["none"] if "mps" in x] or [float("nan")])
    print(f"\nO1  pipeline of {count:,} messages, {runs} round(s); {platform.node()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'attached':<10} {'median msg/s':>13} {'min-max':>19} {'x none':>8}")
    for variant in VARIANTS:
        rates = [x["mps"] for x in results[variant] if "mps" in x]
        if not rates:
            print(f"{variant:<10} {'failed':>13}")
            continue
        med = statistics.median(rates)
        summary[variant] = {"mps": med, "min": min(rates), "max": max(rates), "ratio": med / base}
        print(f"{variant:<10} {med:>13,.0f} {min(rates):>9,.0f}-{max(rates):<9,.0f} {med / base:>7.2f}x")
    if "all" in summary:
        verdict = "meets" if summary["all"]["ratio"] >= TARGET_RATIO else "misses"
        print(f"with everything attached: {summary['all']['ratio']:.2f}x ({verdict} the "
              f"{TARGET_RATIO}x target)")
    print(f"\nO2  wall time, median of {runs * 3} (min-max)")
    for key, target in (("help", TARGET_HELP_S), ("ps", TARGET_PS_S)):
        w = walls[key]
        print(f"ether {key:<5} {w['median']:.3f} s ({w['min']:.3f}-{w['max']:.3f})  target <= {target} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"count": count, "runs": results, "summary": summary, "wall": walls}, f, indent=1)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
