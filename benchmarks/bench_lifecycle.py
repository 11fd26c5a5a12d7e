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

Target: <= 0.3 s with fork.

Two hosts (issue 13, part 2: remote launch; --remote, or --only-remote)
---------------------------------------------------------------------
Two simulated hosts (tests/remote/netns.py: network namespaces, each with its
own /dev/shm), a site CA and a certificate per host (ether.bridge.make_ca,
make_host), mutual TLS. B runs `ether agent` (operators: hostA), listening on
B's address; A runs a main (tests/bridge_host.py, driven over JSON lines) whose
bridge connects to it. The config is the Quick Start split over the hosts:
generator1 on A; processor2x (restart: on-failure, backoff_s 0), processor4x
and collector1 with `host: hostB`.

R2  Two-host tap: from the driver's `tap` command to its answer: ether.tap on A,
    which starts A's bridge, sends the launch, starts A's instance, and returns
    when the agent says B's instances are ready (B's hosted main taps B's own
    session: its bridge, then its instances, forked).
R3  Restart on B: SIGKILL of processor2x's pid (the hosts share a pid
    namespace) until A's main knows it is ready again with the next restart
    count (the agent's event, through both bridges; A polls its own state every
    5 ms). Also B's supervisor's own figure (death -> ready and subscribed).
R4  Two-host shutdown: the driver's `shutdown` command: A's instances, then B's
    session (drain, save_all, cleanup, shutdown, stop), then A's bridge.

Targets: restart on a remote host <= 1.0 s, two-host tap <= 1.5 s, shutdown
<= 0.5 s. Needs root and `ip netns` (as tests/remote) and zenoh.

Usage (from the repository root)
-----
  python benchmarks/bench_lifecycle.py            # about 30 s
  python benchmarks/bench_lifecycle.py --quick    # about 5 s
  python benchmarks/bench_lifecycle.py --remote   # and the two-host rows, about 60 s more
  python benchmarks/bench_lifecycle.py --json out.json
  python benchmarks/bench_lifecycle.py --only-remote --trace   # and the tap's stages:
      every process appends `time pid who stage` to ETHER_LAUNCH_TRACE's file; printed
      as each stage's median time since A's ether.tap began

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
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

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


GEN = "examples.simple_data_processing.DataGenerator"
PROC = "examples.simple_data_processing.DataProcessor"
COLL = "examples.simple_data_processing.DataCollector"


def _read_trace(path: pathlib.Path) -> list[tuple[float, str, str]]:
    """One tap's ETHER_LAUNCH_TRACE lines, (seconds since A's tap, who, stage), in
    order; the file is emptied for the next run."""
    rows = []
    for line in path.read_text().splitlines():
        t, pid, who, stage = line.split(" ", 3)
        rows.append((float(t), pid, who, stage))
    path.write_text("")
    # A process marks itself "main" or "bridge" until it knows its host: name it
    # by its later marks ("bridge@hostB"), or "(spare)" (the next launch's).
    named = {pid: who for _, pid, who, _ in rows if "@" in who}
    rows = [(t, named.get(pid, who if "@" in who else f"{who} (spare)"), stage)
            for t, pid, who, stage in rows]
    starts = [t for t, who, stage in rows if stage == "ether.tap"]   # A's comes first
    if not starts:
        return []
    return sorted((t - min(starts), who, stage) for t, who, stage in rows if t >= min(starts))


def print_trace(taps: list[list[tuple[float, str, str]]]) -> None:
    """Each stage's median time since A's tap began, over the runs, in order."""
    seen: dict[tuple[str, str], list[float]] = {}
    for rows in taps:
        for t, who, stage in rows:
            seen.setdefault((who, stage), []).append(t)
    print()
    print(f"the two-host tap, stage by stage (ETHER_LAUNCH_TRACE; median over {len(taps)} run(s), "
          "ms since A's ether.tap began)")
    ordered = sorted(seen.items(), key=lambda kv: statistics.median(kv[1]))
    previous = 0.0
    for (who, stage), ts in ordered:
        t = statistics.median(ts)
        print(f"{t * 1000:>8.0f} ms  (+{(t - previous) * 1000:>4.0f})  {who:<12} {stage}")
        previous = t


def remote_runs(runs: int, kills: int, trace: bool = False) -> dict:
    """R2-R4 on two simulated hosts; {"tap_s": [...], "restart_s": [...],
    "restart_b_s": [...], "shutdown_s": [...]} (and "trace": one list of stages per
    tap, with `trace`)."""
    from bridge_driver import Host as Driver
    from ether.bridge import make_ca, make_host
    from tests.remote import netns
    from tests.remote.agents import Watched
    out: dict[str, list] = {"tap_s": [], "restart_s": [], "restart_b_s": [], "shutdown_s": []}
    with netns.Network(2) as net:
        trace_env = {}
        if trace:
            trace_file = net.root / "launch.trace"
            trace_file.write_text("")
            trace_env = {"ETHER_LAUNCH_TRACE": str(trace_file)}
            out["trace"] = []
        a_host, b_host = net["A"], net["B"]
        certs = net.root / "certs"
        certs.mkdir()
        make_ca("bench", certs)
        for host in (a_host, b_host):
            make_host(f"host{host.name}", certs, ips=[host.addr])
        files = {"ca": str(certs / "bench-ca.pem")}
        endpoint = f"tls/{b_host.addr}:7447"
        agent = Watched(b_host, [
            sys.executable, "-m", "ether", "agent", "--site", "bench", "--host", "hostB",
            "--listen", endpoint, "--ca", files["ca"], "--cert", str(certs / "hostB.pem"),
            "--key", str(certs / "hostB.key"), "--allow-host", "hostA", "--allow-host", "hostB",
            "--operator", "hostA", "--workdir", str(ROOT)],
            env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
                     **trace_env))
        if not agent.wait_line(r"ether agent: agent of host", 60):
            raise RuntimeError("the agent did not start: " + "".join(agent.lines[-10:]))
        on_b = {"host": "hostB"}
        config = {"instances": {
            "generator1": {"class_path": GEN},
            "processor2x": {"class_path": PROC, "kwargs": {"multiplier": 2},
                            "restart": "on-failure", "backoff_s": 0, **on_b},
            "processor4x": {"class_path": PROC, "kwargs": {"multiplier": 4}, **on_b},
            "collector1": {"class_path": COLL, **on_b}},
            "supervision": {"max_restarts": 1000},
            "bridge": {"site": "bench", "host": "hostA", "connect": [endpoint], "security": {
                **files, "cert": str(certs / "hostA.pem"), "key": str(certs / "hostA.key"),
                "allow_hosts": ["hostA", "hostB"]}}}
        prefix = ["ip", "netns", "exec", a_host.ns, "unshare", "--mount", "--propagation",
                  "private", "sh", "-c", 'mount --bind "$0" /dev/shm && exec "$@"', str(a_host.shm)]
        for _ in range(runs):
            main = Driver("A", prefix=prefix, env=trace_env)
            try:
                if trace:
                    trace_file.write_text("")
                started = time.monotonic()
                main.tap(config)
                out["tap_s"].append(time.monotonic() - started)
                if trace:
                    out["trace"].append(_read_trace(trace_file))
                for k in range(1, kills + 1):
                    pid = main.call("remote")["processor2x@hostB"]["pid"]
                    started = time.monotonic()
                    os.kill(pid, signal.SIGKILL)
                    main.call("wait_remote", name="processor2x@hostB", restarts=k, timeout=30)
                    out["restart_s"].append(time.monotonic() - started)
                out["restart_b_s"] += main.call("remote_timings")
                started = time.monotonic()
                main.call("shutdown")
                out["shutdown_s"].append(time.monotonic() - started)
            finally:
                main.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--remote", action="store_true", help="also the two-host rows (root)")
    parser.add_argument("--only-remote", action="store_true", help="only the two-host rows")
    parser.add_argument("--trace", action="store_true",
                        help="with the two-host rows: the tap's stages (ETHER_LAUNCH_TRACE)")
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 5)
    kills = 3 if args.quick else 10
    import logging
    logging.getLogger("Ether").setLevel(logging.WARNING)  # the restarts' lines, not the table's
    results = {}
    for method in () if args.only_remote else ("fork", "spawn"):
        medians, own_medians = [], []
        for _ in range(runs):
            took, own = one_run(method, kills)
            medians.append(statistics.median(took))
            own_medians.append(statistics.median(own))
        results[method] = {"median_s": statistics.median(medians), "min_s": min(medians),
                           "max_s": max(medians), "supervisor_median_s": statistics.median(own_medians),
                           "runs": runs, "kills_per_run": kills}
    if results:
        print()
        print(f"death -> replacement ready and subscribed (kill -9, restart: on-failure, backoff 0); "
              f"median of {runs} run(s) x {kills} kills")
        print(f"{'start method':<14}{'median':>10}{'min-max of runs':>22}{'supervisor saw':>18}")
        for method, r in results.items():
            print(f"{method:<14}{r['median_s'] * 1000:>8.0f} ms"
                  f"{r['min_s'] * 1000:>13.0f}-{r['max_s'] * 1000:.0f} ms"
                  f"{r['supervisor_median_s'] * 1000:>15.0f} ms")
        fork = results["fork"]["median_s"]
        print(f"target: <= 300 ms with fork: {'met' if fork <= 0.3 else 'NOT met'} "
              f"({fork * 1000:.0f} ms)")
    if args.remote or args.only_remote:
        remote_runs_n = args.runs or (1 if args.quick else 3)
        remote_kills = 3 if args.quick else 5
        got = remote_runs(remote_runs_n, remote_kills, trace=args.trace)
        taps = got.pop("trace", None)
        results["remote"] = {k: {"median_s": statistics.median(v), "min_s": min(v),
                                 "max_s": max(v), "n": len(v)} for k, v in got.items() if v}
        if taps:
            print_trace(taps)
            results["remote"]["trace"] = taps
        print()
        print(f"two hosts (network namespaces, mutual TLS; Quick Start split A/B); "
              f"{remote_runs_n} run(s), {remote_kills} kills each")
        print(f"{'row':<44}{'median':>10}{'min-max':>18}{'target':>10}")
        rows = (("restart_s", "restart on B (death -> A knows it is ready)", 1.0),
                ("restart_b_s", "  of which B's supervisor: death -> ready", None),
                ("tap_s", "two-host tap", 1.5), ("shutdown_s", "two-host shutdown", 0.5))
        for key, label, target in rows:
            r = results["remote"].get(key)
            if r is None:
                continue
            verdict = "" if target is None else (
                f"{'met' if r['median_s'] <= target else 'NOT met'} (<= {target * 1000:.0f})")
            print(f"{label:<44}{r['median_s'] * 1000:>8.0f} ms{r['min_s'] * 1000:>9.0f}-"
                  f"{r['max_s'] * 1000:.0f} ms  {verdict}")
    elif not args.only_remote:
        print("two hosts (restart on B, two-host tap and shutdown): run with --remote (root)")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
