#!/usr/bin/env python
"""Ether's decorator API end to end: a decorated pipeline's throughput against
two peers, and the tap / shutdown times of the README Quick Start.

What it measures
================
P1  Decorated pipeline throughput.  ether.tap(config={"instances": ...}) starts
    two Ether instances (forked processes) from benchmarks/_pipeline_apps.py:
      TickPublisher  its @ether_start method calls the instance's own
                     @ether_pub(topic="tick") method N times; each call
                     returns a new dict {"seq": i, "t": time.perf_counter(),
                     "name": "sensor-1", "value": i * 0.5}, which Ether
                     publishes (envelope encode + shared-memory inbox send).
      TickCounter    @ether_sub(topic="tick") on_tick(self, seq: int, t: float,
                     name: str, value: float): Ether decodes and validates each
                     message into these typed arguments; the handler counts,
                     checks that seq goes 0, 1, 2 ... and records the first
                     and last arrival (time.perf_counter_ns).
    After its last tick the publisher publishes "pub_done" with its first-send
    clock reading; the counter (same sender, so it comes after every tick)
    answers with one "done" message that the main process receives with
    ether.listen("done", timeout=...).  ether.start() triggers the run.
      rate = N / (counter's last arrival - publisher's clock before its first send)
    The clock is CLOCK_MONOTONIC in every process.  A run verifies: received ==
    N, zero order violations, every field as sent, last seq N-1; otherwise it
    is reported and left out of the medians.  Each run is a fresh tap ... shutdown
    (tap and shutdown are timed too, and /dev/shm is checked for leftovers of the
    run's session, ether_<session>*, after the shutdown).  Target: >= 300,000 msg/s.

P2  Peers, same dict workload, same run (interleaved with P1), one producer and
    one consumer process started with the 'spawn' method, synchronised with a
    multiprocessing.Barrier (bind -> connect -> start), never with sleeps:
      mp-queue  multiprocessing.Queue, put(dict) / get() (pickled by the queue)
      zmq-ipc   pyzmq PUSH/PULL over ipc:// (default HWM, lossless); the producer
                msgspec.msgpack-encodes each dict, the consumer decodes each
                (Encoder / Decoder objects reused)
    Each producer builds each dict in its loop, as the Ether publisher does.
    The same rate formula and checks.  mp-queue gets min(N, 100,000) messages
    (it runs at about 0.1-0.3 M msg/s); the rate is per message either way.
    The "Ether / peer" column divides Ether's median by the peer's.  Issue 15's
    target for P1 is Ether >= 1.5x zmq-ipc and >= 4x mp-queue.
    There is no warm-up in P1 or P2: the first message's costs (routing look-up,
    connection) are inside the timed interval for every row.

P4  Decorated fan-out, 1 -> 3: one TickPublisher and three TickCounter instances
    (the same classes as P1); each tick goes to the three inboxes.  Each counter
    verifies its own stream (every tick once, in order, fields as sent) and
    answers "done"; the main waits for the three.
      rate = 3 N / (the last counter's last arrival - publisher's first clock)
    (aggregate deliveries per second).  Peer, same run: zmq-pubsub, one XPUB
    publisher and three SUB processes (HWM 0: lossless), msgspec both ends,
    started once the publisher has read the three subscriptions.
    Target (issue 15): Ether >= 1.5x zmq-pubsub.

P5  A chain of three decorated stages, the Quick Start shape: TickPublisher ->
    ChainStage1 -> ChainStage2 -> ChainSink (four instances).  Each stage's
    @ether_sub handler is an @ether_pub method too: it receives the tick as typed
    arguments and returns it as a dict, published to the next topic.  The sink
    verifies as P1's counter does.  rate = N / (sink's last arrival - source's
    first clock), end to end.  Peer, same run: zmq-chain, the same four
    processes over PUSH/PULL, each stage msgspec-decoding and re-encoding.
    Target (issue 15): Ether >= 1.5x zmq-chain.

P3  tap and shutdown of the README Quick Start: a fresh Python process (so the
    first-tap cost is real) runs, from the repository root,
      from ether import ether                      (import time, reported)
      ether.tap(config="examples/simple_data_processing/config/dual_processors.yaml")
      ether.start()
      ether.shutdown()       (drains everything in flight first)
    timing tap and shutdown with time.perf_counter; 4 instances.  Its stdout
    (the Quick Start's prints) goes to /dev/null.  A run fails if the process
    exits non-zero or leaves ether_<session>* in /dev/shm.  Targets: tap <= 0.5 s, shutdown <= 0.3 s.

Every workload is repeated --runs times (default 5, 1 with --quick); tables
show the median over the good runs and the min-max spread.

Usage (from the repository root)
-----
  python benchmarks/bench_pipeline.py                 # full: a few minutes
  python benchmarks/bench_pipeline.py --quick         # smoke test
  python benchmarks/bench_pipeline.py --runs 3 --count 500000 --json results.json
The exit status is 1 if any run failed or did not verify.
"""
from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import multiprocessing.connection
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import _harness  # noqa: E402
import _pipeline_peers  # noqa: E402

QUICKSTART_CONFIG = "examples/simple_data_processing/config/dual_processors.yaml"
TARGET_MPS = 300_000
TARGET_TAP_S = 0.5
TARGET_SHUTDOWN_S = 0.3
MPQUEUE_CAP = 100_000
PEERS = ("mp-queue", "zmq-ipc")
TARGET_VS_ZMQ = 1.5      # issue 15: the decorated path against pyzmq + msgspec
TARGET_VS_MPQ = 4.0
FANOUT = 3               # P4's subscribers
FANOUT_CONFIG = {"publisher": {"class_path": "_pipeline_apps.TickPublisher"},
                 **{f"counter{i}": {"class_path": "_pipeline_apps.TickCounter",
                                    "kwargs": {"ident": f"counter{i}"}} for i in range(FANOUT)}}
CHAIN_CONFIG = {"publisher": {"class_path": "_pipeline_apps.TickPublisher"},
                "stage1": {"class_path": "_pipeline_apps.ChainStage1"},
                "stage2": {"class_path": "_pipeline_apps.ChainStage2"},
                "sink": {"class_path": "_pipeline_apps.ChainSink"}}

QUICKSTART_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
from ether import ether
t1 = time.perf_counter()
ether.tap(config=sys.argv[1])
t2 = time.perf_counter()
sid = ether.session
ether.start()
t3 = time.perf_counter()
ether.shutdown()
t4 = time.perf_counter()
with open(sys.argv[2], "w") as f:
    json.dump({"import": t1 - t0, "tap": t2 - t1, "start": t3 - t2, "shutdown": t4 - t3,
               "session": sid}, f)
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def shm_leftovers(session: str | None = None) -> list[str]:
    """ether_* entries in /dev/shm; with a session id, only that session's.  (Other
    programs may run Ether sessions at the same time, so a run checks its own.)"""
    prefix = f"ether_{session}" if session else None
    try:
        names = os.listdir("/dev/shm")
    except FileNotFoundError:
        return []
    return sorted(f for f in names if "ether_" in f and (
        prefix is None or f == prefix or f.startswith(prefix + "_")))


def _verify(res: dict, expected: int) -> list[str]:
    problems = []
    if res["received"] != expected:
        problems.append(f"received {res['received']} of {expected} messages")
    if res["violations"]:
        problems.append(f"{res['violations']} order violations")
    if res.get("bad_fields"):
        problems.append(f"{res['bad_fields']} messages with wrong fields")
    if res["last_seq"] != expected - 1:
        problems.append(f"last seq {res['last_seq']} != {expected - 1}")
    return problems


def _rate(res: dict, count: int) -> dict:
    seconds = (res["last_ns"] - res["t0_ns"]) / 1e9
    return {"mps": count / seconds, "seconds": seconds,
            "send_seconds": (res["t_sent_ns"] - res["t0_ns"]) / 1e9,
            "first_latency_us": (res["first_ns"] - res["t0_ns"]) / 1e3}


# --------------------------------------------------------------------------
# P1: Ether
# --------------------------------------------------------------------------
RECORDER = _harness.LogRecorder()  # the Ether logger's, per run


def _import_transport() -> None:
    """What the first tap of a process imports (the config models, the supervisor,
    the transport), imported before tap_s is timed: since issue 9 `import ether`
    leaves them to the first tap, and tap_s is the session's start-up, the same
    on every revision and every run. (P3 times a fresh process's imports and tap.)"""
    import importlib
    for name in ("ether.config", "ether._runtime._supervisor", "ether._runtime._child"):
        try:
            importlib.import_module(name)
        except ImportError:  # a revision before the layering: `import ether` did it
            pass


def run_ether(count: int, timeout: float, instances: dict | None = None) -> dict:
    """One tap ... shutdown of `instances` (default P1's publisher and counter; the
    publisher's count is set here), waiting for one "done" per counter."""
    from ether import ether
    RECORDER.lines.clear()
    instances = dict(instances or {"publisher": {"class_path": "_pipeline_apps.TickPublisher"},
                                   "counter": {"class_path": "_pipeline_apps.TickCounter"}})
    instances["publisher"] = {**instances["publisher"], "kwargs": {"count": count}}
    counters = sum(1 for spec in instances.values()
                   if spec["class_path"].endswith(("TickCounter", "ChainSink")))
    config = {"instances": instances}
    out: dict = {}
    _import_transport()
    t0 = time.perf_counter()
    try:
        ether.tap(config=config)
    except Exception as exc:
        return {"error": f"tap failed: {type(exc).__name__}: {exc}"}
    out["tap_s"] = time.perf_counter() - t0
    sid = out["session"] = ether.session
    dones: list[dict] = []
    try:
        # Subscribe before starting: a run shorter than a lost time slice would
        # otherwise publish "done" to nobody.
        with ether.listen("done", timeout=timeout) as listener:
            ether.start()
            for msg in listener:
                dones.append(msg)
                if len(dones) == counters:
                    break
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        t1 = time.perf_counter()
        try:
            ether.shutdown()
        except Exception as exc:
            out.setdefault("error", f"shutdown failed: {type(exc).__name__}: {exc}")
        out["shutdown_s"] = time.perf_counter() - t1
    if RECORDER.lines:
        out["warnings"] = list(RECORDER.lines)
    leaked = shm_leftovers(sid)
    if leaked:
        out.setdefault("problems", []).append(f"/dev/shm not clean after shutdown: {leaked}")
    if "error" in out:
        return out
    if len(dones) < counters:
        out["error"] = (f"{len(dones)} of {counters} 'done' messages within {timeout:g} s "
                        f"of silence")
        return out
    out.update(_merge(dones, count, out))
    return out


def _merge(dones: list[dict], count: int, out: dict) -> dict:
    """One result from each counter's: every one verified, the rate over all of
    their deliveries (the last arrival of any), its first arrival the earliest."""
    merged = dict(dones[0])
    for done in dones:
        for problem in _verify(done, count):
            out.setdefault("problems", []).append(
                problem if len(dones) == 1 else f"{done.get('ident', '?')}: {problem}")
    merged["received"] = sum(d["received"] for d in dones)
    merged["first_ns"] = min(d["first_ns"] for d in dones)
    merged["last_ns"] = max(d["last_ns"] for d in dones)
    merged.update(_rate(merged, count * len(dones)))
    return merged


# --------------------------------------------------------------------------
# P2: peers
# --------------------------------------------------------------------------
def _child(ctx, name: str, role: str, target, args: tuple) -> tuple:
    """A peer's process (not started) with the pipe it reports on: target(*args, w)."""
    r, w = ctx.Pipe(duplex=False)
    return role, ctx.Process(target=target, args=(*args, w), name=name, daemon=True), r, w


def _run_children(children: list, timeout: float, tmp: str | None):
    """Run the peer's processes to the end; then remove its ipc folder, if any."""
    try:
        return _harness.run_children(children, timeout, 5.0)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def run_peer(ctx, peer: str, count: int, timeout: float) -> dict:
    tmp = None
    if peer == "mp-queue":
        chan = ctx.Queue()
    else:
        tmp = tempfile.mkdtemp(prefix="bench-pipe-")
        chan = f"ipc://{tmp}/push"
    barrier = ctx.Barrier(2)
    children = []
    for role, target in (("consumer", _pipeline_peers.consumer_main),
                         ("producer", _pipeline_peers.producer_main)):
        children.append(_child(ctx, f"bench-{peer}-{role}", role, target, (peer, chan, count, barrier)))
    error, results = _run_children(children, timeout, tmp)
    if error:
        return error
    res = dict(results["consumer"][1])
    res.update(results["producer"][1])
    problems = _verify(res, count)
    if problems:
        res["problems"] = problems
    res.update(_rate(res, count))
    return res


def run_zmq_fanout(ctx, count: int, timeout: float) -> dict:
    tmp = tempfile.mkdtemp(prefix="bench-pipe-")
    chan = f"ipc://{tmp}/pub"
    barrier = ctx.Barrier(1 + FANOUT)
    children = []
    for role, target, args in ([("publisher", _pipeline_peers.fanout_pub_main, (chan, count, FANOUT))]
                               + [(f"sub{i}", _pipeline_peers.fanout_sub_main, (chan, count))
                                  for i in range(FANOUT)]):
        children.append(_child(ctx, f"bench-fanout-{role}", role, target, (*args, barrier)))
    error, results = _run_children(children, timeout, tmp)
    if error:
        return error
    sent = results["publisher"][1]
    dones = [{**results[f"sub{i}"][1], **sent, "ident": f"sub{i}"} for i in range(FANOUT)]
    res: dict = {}
    res.update(_merge(dones, count, res))
    return res


def run_zmq_chain(ctx, count: int, timeout: float) -> dict:
    tmp = tempfile.mkdtemp(prefix="bench-pipe-")
    hops = [f"ipc://{tmp}/hop{i}" for i in range(3)]
    barrier = ctx.Barrier(4)
    children = []
    for role, kind, pull, push in (("source", "source", None, hops[0]),
                                   ("stage1", "stage", hops[0], hops[1]),
                                   ("stage2", "stage", hops[1], hops[2]),
                                   ("sink", "sink", hops[2], None)):
        children.append(_child(ctx, f"bench-chain-{role}", role, _pipeline_peers.chain_main,
                               (kind, pull, push, count, barrier)))
    error, results = _run_children(children, timeout, tmp)
    if error:
        return error
    res = {**results["sink"][1], **results["source"][1]}
    problems = _verify(res, count)
    if problems:
        res["problems"] = problems
    res.update(_rate(res, count))
    return res


# --------------------------------------------------------------------------
# P3: Quick Start tap / shutdown in a fresh process
# --------------------------------------------------------------------------
def run_quickstart(timeout: float) -> dict:
    fd, path = tempfile.mkstemp(prefix="bench-qs-", suffix=".json")
    os.close(fd)
    try:
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, "-c", QUICKSTART_SCRIPT, QUICKSTART_CONFIG, path],
                                  cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"the Quick Start process did not finish in {timeout:g} s"}
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or ["(no stderr)"]
            return {"error": f"exit code {proc.returncode}: {tail[0]}", "stderr": proc.stderr}
        with open(path) as f:
            out = json.load(f)
    finally:
        os.unlink(path)
    out["process_s"] = wall
    warnings = [ln for ln in proc.stderr.splitlines() if " - WARNING - " in ln or " - ERROR - " in ln]
    if warnings:
        out["warnings"] = warnings
    leaked = shm_leftovers(out["session"])
    if leaked:
        out["problems"] = [f"/dev/shm not clean after shutdown: {leaked}"]
    return out


# --------------------------------------------------------------------------
# summary and tables
# --------------------------------------------------------------------------
def render(P: dict, summ: dict, runs: dict) -> str:
    out = []
    n = P["count"]
    e = summ["ether"]
    out.append(f"\nP1/P2: one-way stream of small dicts, 1 producer -> 1 consumer process "
               f"(N = {n:,}; mp-queue N = {P['mpq_count']:,})")
    rows = []
    for name, label in (("ether", "ether (decorated pub/sub)"), ("mp-queue", "mp-queue (pickle)"),
                        ("zmq-ipc", "zmq-ipc + msgspec")):
        s = summ[name]
        if "mps" not in s:
            rows.append([label, "-", "-", "-", f"{s['runs_ok']}/{s['runs_total']}", "-"])
            continue
        ratio = "1.00" if name == "ether" else (
            f"{e['mps'] / s['mps']:.2f}" if "mps" in e else "-")
        rows.append([label, f"{s['mps'] / 1e6:.3f}",
                     f"{s['mps_min'] / 1e6:.3f}-{s['mps_max'] / 1e6:.3f}",
                     f"{s['send_seconds'] / s['seconds'] * 100:.0f}%" if "seconds" in s else "-",
                     f"{s['runs_ok']}/{s['runs_total']}", ratio])
    out.append(_harness.table(["transport", "M msg/s", "min-max", "send/total", "runs ok", "Ether / peer"],
                      rows))
    if "mps" in e:
        for peer, target in (("zmq-ipc", TARGET_VS_ZMQ), ("mp-queue", TARGET_VS_MPQ)):
            out.append(_target_line(e, summ.get(peer, {}), peer, target))
        verdict = "met" if e["mps"] >= TARGET_MPS else "NOT met"
        out.append(f"Ether target >= {TARGET_MPS / 1e6:.2f} M msg/s: {verdict} "
                   f"(median {e['mps'] / 1e6:.3f} M msg/s = {e['mps'] / TARGET_MPS:.2f}x target)")
        out.append(f"Ether publisher send side alone: {n / e['send_seconds'] / 1e6:.3f} M msg/s "
                   f"(N / publisher loop time, median); first tick arrived "
                   f"{e['first_latency_us']:.0f} us after the first send (median)")
        out.append(f"this 2-instance pipeline: tap {e['tap_s']:.3f} s "
                   f"({e['tap_s_min']:.3f}-{e['tap_s_max']:.3f}), shutdown {e['shutdown_s']:.3f} s "
                   f"({e['shutdown_s_min']:.3f}-{e['shutdown_s_max']:.3f}), median")
    for key, peer, title in (
            ("fanout", "zmq-pubsub", f"\nP4: fan-out, 1 publisher -> {FANOUT} subscriber processes, "
                                     f"aggregate deliveries (N = {n:,} per subscriber)"),
            ("chain", "zmq-chain", f"\nP5: a chain of 3 stages, source -> stage -> stage -> sink, "
                                   f"end to end (N = {n:,})")):
        e, z = summ[key], summ[peer]
        rows = []
        for s, label in ((e, f"ether (decorated, {key})"), (z, f"{peer} + msgspec")):
            if "mps" not in s:
                rows.append([label, "-", "-", f"{s['runs_ok']}/{s['runs_total']}", "-"])
                continue
            ratio = "1.00" if s is e else (f"{e['mps'] / s['mps']:.2f}" if "mps" in e else "-")
            rows.append([label, f"{s['mps'] / 1e6:.3f}",
                         f"{s['mps_min'] / 1e6:.3f}-{s['mps_max'] / 1e6:.3f}",
                         f"{s['runs_ok']}/{s['runs_total']}", ratio])
        out.append(title)
        out.append(_harness.table(["transport", "M msg/s", "min-max", "runs ok", "Ether / peer"], rows))
        if "mps" in e:
            out.append(_target_line(e, z, peer, TARGET_VS_ZMQ))
    q = summ["quickstart"]
    out.append("\nP3: README Quick Start (4 instances) in a fresh process, seconds")
    rows = []
    for key, label, target in (("tap", "ether.tap(config=...yaml)", TARGET_TAP_S),
                               ("shutdown", "ether.shutdown()", TARGET_SHUTDOWN_S),
                               ("start", "ether.start()", None),
                               ("import", "from ether import ether", None),
                               ("process_s", "whole process (parent's view)", None)):
        if key not in q:
            rows.append([label, "-", "-", "-", "-"])
            continue
        t = "-" if target is None else f"<= {target:g}: " + (
            f"met ({q[key] / target:.2f}x)" if q[key] <= target else f"NOT met ({q[key] / target:.2f}x)")
        rows.append([label, f"{q[key]:.3f}", f"{q[key + '_min']:.3f}-{q[key + '_max']:.3f}",
                     f"{q['runs_ok']}/{q['runs_total']}", t])
    out.append(_harness.table(["step", "median s", "min-max", "runs ok", "target"], rows))
    out.extend(_harness.failures(runs))
    return "\n".join(out)


def _target_line(e: dict, peer_summary: dict, peer: str, target: float) -> str:
    """Issue 15's target for one comparison: Ether's median >= target x the peer's."""
    if "mps" not in peer_summary:
        return f"target Ether >= {target:g}x {peer}: - (no good {peer} run)"
    ratio = e["mps"] / peer_summary["mps"]
    return (f"target Ether >= {target:g}x {peer}: {'met' if ratio >= target else 'NOT met'} "
            f"({ratio:.2f}x; {ratio / target:.2f} of the target)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 run, N = 50,000")
    ap.add_argument("--runs", type=int, default=None, help="repetitions (default 5; 1 with --quick)")
    ap.add_argument("--count", type=int, default=None,
                    help="messages per P1/P2 run (default 200,000; 50,000 with --quick)")
    ap.add_argument("--json", metavar="PATH", help="also write every run and summary as JSON")
    args = ap.parse_args()
    runs = args.runs or (1 if args.quick else 5)
    count = args.count or (50_000 if args.quick else 200_000)
    if runs < 1 or count < 1:
        ap.error("--runs and --count must be positive")
    P = {"runs": runs, "count": count, "mpq_count": min(count, MPQUEUE_CAP),
         "timeout": max(60.0, count / 20_000), "quick": args.quick}
    os.chdir(ROOT)
    logging.getLogger("Ether").setLevel(logging.WARNING)   # no INFO lines from tap/shutdown
    logging.getLogger("Ether").addHandler(RECORDER)         # warnings are listed per run
    ctx = mp.get_context("spawn")
    pre = shm_leftovers()
    if pre:
        log(f"note: /dev/shm already holds ether_* entries (other sessions; each run checks "
            f"only its own): {pre}")

    results: dict[str, list[dict]] = {"ether": [], "mp-queue": [], "zmq-ipc": [], "fanout": [],
                                      "zmq-pubsub": [], "chain": [], "zmq-chain": [],
                                      "quickstart": []}
    try:
        import zmq  # noqa: F401  (only to know whether the peer can run; no context in this process)
    except ImportError:
        log("zmq peers skipped: pyzmq is not installed (pip install -e '.[bench]')")
        for peer in ("zmq-ipc", "zmq-pubsub", "zmq-chain"):
            results.pop(peer)

    def report(i: int, name: str, r: dict) -> None:
        results[name].append(r)
        log(f"run {i}/{runs} {name}: " + (r.get("error") or f"{r['mps'] / 1e6:.3f} M msg/s"
                                          + (f" PROBLEMS {r['problems']}" if "problems" in r else "")))
    for i in range(1, runs + 1):
        report(i, "ether", run_ether(count, P["timeout"]))
        for peer in PEERS:
            if peer not in results:
                continue
            n = P["mpq_count"] if peer == "mp-queue" else count
            report(i, peer, run_peer(ctx, peer, n, P["timeout"]))
        # P4 and P5 in the same rounds: each Ether run next to its peer's.
        report(i, "fanout", run_ether(count, P["timeout"], FANOUT_CONFIG))
        if "zmq-pubsub" in results:
            report(i, "zmq-pubsub", run_zmq_fanout(ctx, count, P["timeout"]))
        report(i, "chain", run_ether(count, P["timeout"], CHAIN_CONFIG))
        if "zmq-chain" in results:
            report(i, "zmq-chain", run_zmq_chain(ctx, count, P["timeout"]))
    for i in range(1, runs + 1):
        r = run_quickstart(timeout=120.0)
        results["quickstart"].append(r)
        log(f"run {i}/{runs} quickstart: " + (r.get("error") or
            f"tap {r['tap']:.3f} s, shutdown {r['shutdown']:.3f} s"
            + (f" PROBLEMS {r['problems']}" if "problems" in r else "")))

    rate_keys = ["mps", "seconds", "send_seconds", "first_latency_us"]
    summ = {"ether": _harness.summarize(results["ether"], rate_keys + ["tap_s", "shutdown_s"]),
            "mp-queue": _harness.summarize(results["mp-queue"], rate_keys),
            "zmq-ipc": _harness.summarize(results.get("zmq-ipc", []), rate_keys),
            **{k: _harness.summarize(results.get(k, []), rate_keys)
               for k in ("fanout", "zmq-pubsub", "chain", "zmq-chain")},
            "quickstart": _harness.summarize(results["quickstart"],
                                    ["import", "tap", "start", "shutdown", "process_s"])}
    print(f"Ether pipeline benchmark: {runs} run(s), Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs")
    print(render(P, summ, results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"params": P, "python": platform.python_version(),
                       "platform": platform.platform(), "cpus": os.cpu_count(),
                       "summary": summ, "runs": results}, f, indent=1, default=str)
        print(f"\nwrote {args.json}")
    failed = any("error" in r or "problems" in r for rs in results.values() for r in rs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
