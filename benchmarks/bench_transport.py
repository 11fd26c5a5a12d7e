#!/usr/bin/env python
"""Inter-process transport benchmark: Ether versus common Python IPC transports.

What it measures
================
Message throughput and round-trip latency between *separate processes*
(multiprocessing, 'spawn' start method) on one machine, for Ether's
shared-memory inboxes and for these peers:

  mp-queue     multiprocessing.Queue (unbounded, the default)
  mp-pipe      multiprocessing.Pipe(duplex=False), send_bytes/recv_bytes
  zmq-ipc      pyzmq PUSH/PULL over ipc:// (default HWM), PAIR for W3
  zmq-tcp      pyzmq PUSH/PULL over tcp://127.0.0.1, PAIR for W3
  faster-fifo  faster_fifo.Queue, 4 MiB ring, bytes passed through without
               pickling (loads/dumps overridden), blocking get/get_many
  iceoryx2     iceoryx2 Python bindings, publish-subscribe with a
               Slice[c_uint8] payload, safe-overflow off and publisher
               backpressure RetryUntilDelivered (lossless).  The binding has
               no blocking receive on a subscriber, so the subscriber POLLS:
               receive() and os.sched_yield() while empty (no busy spin
               without yielding, no WaitSet/Listener).  Payloads are copied in
               with ctypes.memmove and out with ctypes.string_at (bytes).

Ether uses inboxes with capacity 4 MiB and senders with policy="block".
A peer whose module cannot be imported is listed as skipped.

Workloads (all lossless; every consumer verifies what it got)
-------------------------------------------------------------
W1-single  one-way throughput, 64-byte bytes messages, one message per send
           call and one per receive call, 1 producer -> 1 consumer.
W1-batch   the same stream in batches of 256 messages per send call.  Ether
           uses send_many / receive_many(max_count=4096) and faster-fifo
           put_many / get_many(max_messages_to_get=4096): these deliver
           separate messages.  The other peers have no batch API, so they send
           ONE joined 16 KiB frame (256 x 64 B records) per call and the
           consumer splits it back into 256 bytes objects; that relies on the
           fixed record size, which is a favour to those peers.  Each message
           counts as one, so the figure is still messages per second.
           Two W1-batch-only rows use a peer's own idiom for a batch of
           separate messages instead: mp-pipe-list (Connection.send(list),
           pickled) and zmq-ipc-multipart (send_multipart/recv_multipart).
W2         as W1-single, but every message is a dict {"seq": int, "t": float,
           "name": str, "value": float} built per message by the producer,
           encoded with msgspec.msgpack (Encoder/Decoder objects reused) and
           decoded by the consumer, one by one.  Exception: mp-queue and
           mp-pipe send the dict itself with their native pickling
           (Queue.put(dict) / Connection.send(dict)), as a user would.
W3         round-trip latency: ping-pong of 64-byte messages between two
           processes; each round trip is timed with time.perf_counter_ns on
           the pinging side (send + blocking receive of the echo).  Reports
           p50 / p99 / p99.9 in microseconds over 20,000 round trips (2,000
           with --quick) after 2,000 (200) untimed warm-up round trips.  Ether
           and the queues use one channel per direction; zmq uses one PAIR
           socket; iceoryx2 two pub/sub services with polling subscribers.
W4         fan-out of W1-single to 3 consumer processes: the producer sends
           each message to all 3.  Ether: 3 senders, one per consumer inbox;
           zmq: 3 PUSH sockets; mp-queue / mp-pipe / faster-fifo: 3 queues or
           pipes; iceoryx2: ONE publisher with 3 subscribers (one loan+send
           reaches all three, which is how iceoryx2 fans out).  Reports the
           aggregate delivered msg/s (sum of the 3 consumers' messages divided
           by the time until the last consumer finished) and the per-consumer
           rates.  Note: 4 processes share this machine's cores.

Timing and verification
-----------------------
All child processes are started and connected before anything is timed;
they synchronise with a multiprocessing.Barrier (bind -> connect -> warm-up
-> start), never with sleeps.  Throughput runs are TIME-BUDGETED: after the
start barrier the producer reads the clock and sends as fast as the transport
accepts for the budget (1.5 s full, 1.0 s for W1-batch; 0.25 s with --quick)
or until a per-peer message cap, then sends an END marker carrying the count.
The consumer stops its clock when END arrives, so the rate is
  messages delivered / (consumer's END time - producer's first-send time)
measured on CLOCK_MONOTONIC (time.perf_counter_ns, one clock for all
processes); messages still queued when the budget ends are included in both
numerator and denominator.  2,048 untimed warm-up messages precede the timed
stream.  Each 64-byte message carries its sequence number in its first 8
bytes (W2: the "seq" field); the consumer counts every message and checks
that the count equals the producer's count and that the last sequence number
is count - 1.  A run that fails verification is reported and left out of the
medians.  Every workload is repeated --runs times (default 5, 1 with --quick)
and the tables show the median over the runs and the min-max spread; the
runs are interleaved (run 1 of every peer, then run 2 ...) so a noisy period
does not hit one peer only.

The "x best other" column divides each row by the best non-Ether peer
(throughput: >1 means faster than that peer; latency: <1 means lower).  The
Ether row is therefore "Ether / best non-Ether".

Usage
-----
  python benchmarks/bench_transport.py                 # full: about 10 minutes
  python benchmarks/bench_transport.py --quick         # smoke test, < ~60 s
  python benchmarks/bench_transport.py --only W1,W3 --peers ether,zmq-ipc --runs 3
  python benchmarks/bench_transport.py --json results.json
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import multiprocessing.connection
import os
import statistics
import sys
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import _harness  # noqa: E402
import _peers  # noqa: E402
import _workers  # noqa: E402


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    kind: str            # "throughput" | "pingpong"
    mode: str = "single"  # single | batch | msgspec
    fanout: int = 1
    max_len: int = _peers.RECORD


WORKLOADS = [
    Workload("W1-single", "W1 single: one-way throughput, 64 B bytes, 1 msg per call",
             "throughput", "single"),
    Workload("W1-batch", "W1 batch: one-way throughput, 64 B bytes, 256 msgs per call",
             "throughput", "batch", max_len=_workers.BATCH * _peers.RECORD),
    Workload("W2", "W2: one-way throughput, small dict encoded per message (msgspec; "
             "mp-queue/mp-pipe pickle)", "throughput", "msgspec", max_len=128),
    Workload("W3", "W3: round-trip latency, 64 B ping-pong (microseconds)", "pingpong"),
    Workload("W4", "W4: fan-out of W1-single to 3 consumers", "throughput", "single",
             fanout=3),
]

FULL = {"runs": 5, "budget": 1.5, "budget_batch": 1.0, "warmup": 2048,
        "roundtrips": 20000, "rt_warmup": 2000, "timeout": 180.0, "quick": False}
QUICK = {"runs": 1, "budget": 0.25, "budget_batch": 0.25, "warmup": 2048,
         "roundtrips": 2000, "rt_warmup": 200, "timeout": 60.0, "quick": True}

# Per-peer message caps per timed run (full mode; quick scales them by the
# budget ratio).  They only matter where the send side can run far ahead of
# the consumer: mp.Queue is unbounded, so without a cap the consumer would
# spend several seconds draining the backlog after the budget ended.  The
# rate is measured at the consumer either way; the cap only bounds run time.
CAPS = {("mp-queue", "W1-single"): 400_000, ("mp-queue", "W1-batch"): 6_000_000,
        ("mp-queue", "W2"): 400_000, ("mp-queue", "W4"): 120_000}
DEFAULT_CAP = 50_000_000


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# one run
# --------------------------------------------------------------------------
def run_once(ctx, peer, wl: Workload, P: dict) -> dict:
    """Run one workload once for one peer; returns a result dict (may hold 'error')."""
    if wl.kind == "pingpong":
        n_channels = 2
    elif wl.fanout > 1 and not peer.broadcast:
        n_channels = wl.fanout
    else:
        n_channels = 1
    spec = peer.setup(ctx, n_channels, wl.max_len)
    children = []
    leak = None
    try:
        pub = _peers.public_spec(spec)
        if wl.kind == "pingpong":
            params = {"warmup": P["rt_warmup"], "roundtrips": P["roundtrips"]}
            plan = [("pinger", _workers.pinger_main, (peer.name, pub, params)),
                    ("ponger", _workers.ponger_main, (peer.name, pub, params))]
        else:
            mode = wl.mode
            if mode == "msgspec" and peer.name in ("mp-queue", "mp-pipe"):
                mode = "pickle"
            budget = P["budget_batch"] if mode == "batch" else P["budget"]
            cap = CAPS.get((peer.name, wl.key))
            if cap is None:
                cap = DEFAULT_CAP
            else:   # caps are sized for the full budget
                cap = max(int(cap * budget / FULL["budget"]), 10 * _workers.BATCH)
            params = {"warmup": P["warmup"], "cap": cap, "budget": budget}
            rx_channels = [0] * wl.fanout if peer.broadcast else list(range(wl.fanout))
            tx_channels = sorted(set(rx_channels))
            plan = [(f"consumer{i}", _workers.consumer_main,
                     (peer.name, pub, ch, mode, params))
                    for i, ch in enumerate(rx_channels)]
            plan.append(("producer", _workers.producer_main,
                         (peer.name, pub, tx_channels, mode, params)))
        barrier = ctx.Barrier(len(plan))
        for role, target, args in plan:
            r, w = ctx.Pipe(duplex=False)
            p = ctx.Process(target=target, args=args + (barrier, w),
                            name=f"bench-{peer.name}-{role}", daemon=True)
            children.append((role, p, r, w))
        for _, p, _, w in children:
            p.start()
            w.close()
        results = _harness.collect(children, P["timeout"])
    finally:
        for _, p, _, _ in children:
            if p.is_alive():
                p.join(5.0)
            if p.is_alive():
                p.kill()
                p.join()
        leak = peer.teardown(spec)
    errors = {role: v for role, (st, v) in results.items() if st != "ok"}
    if errors:
        # prefer the root cause over partners that only saw a broken barrier
        root = [v for v in errors.values() if "BrokenBarrierError" not in v] or list(errors.values())
        return {"error": root[0].strip().splitlines()[-1], "detail": errors}
    out = {role: v for role, (_, v) in results.items()}
    res = _metrics(wl, out)
    if leak:
        res.setdefault("problems", []).append("teardown: " + leak)
    return res


def _metrics(wl: Workload, out: dict) -> dict:
    problems = [f"{role}: {p}" for role, v in out.items() for p in v.get("problems", [])]
    if wl.kind == "pingpong":
        ping = out["pinger"]
        res = {k: ping[k] for k in ("p50", "p99", "p999", "mean", "min", "max", "count")}
    else:
        prod = out["producer"]
        cons = [out[k] for k in sorted(out) if k.startswith("consumer")]
        t0 = prod["t0"]
        total = sum(c["count"] for c in cons)
        t_last = max(c["t_end"] for c in cons)
        res = {"mps": total / ((t_last - t0) / 1e9), "delivered": total, "sent": prod["sent"],
               "seconds": (t_last - t0) / 1e9,
               "send_seconds": (prod["t_sent"] - t0) / 1e9}
        if len(cons) > 1:
            res["per_consumer_mps"] = [c["count"] / ((c["t_end"] - t0) / 1e9) for c in cons]
    if problems:
        res["problems"] = problems
    return res


# --------------------------------------------------------------------------
# summary and tables
# --------------------------------------------------------------------------
METRICS = {"throughput": ["mps"], "pingpong": ["p50", "p99", "p999"]}


def summarize(wl: Workload, runs: list[dict]) -> dict:
    good = [r for r in runs if "error" not in r and "problems" not in r]
    s = {"runs_ok": len(good), "runs_total": len(runs)}
    if not good:
        return s
    for m in METRICS[wl.kind]:
        vals = [r[m] for r in good]
        s[m] = statistics.median(vals)
        s[m + "_min"] = min(vals)
        s[m + "_max"] = max(vals)
    if wl.fanout > 1:
        per = [statistics.median(r["per_consumer_mps"][i] for r in good)
               for i in range(wl.fanout)]
        s["per_consumer_mps"] = per
    return s


def _fmt(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}f}"


def render_table(wl: Workload, peers: list[str], data: dict) -> str:
    """data[peer] = {"skipped": reason} | {"summary": ..., "runs": [...]}"""
    lines = [f"\n{wl.title}"]
    key = "mps" if wl.kind == "throughput" else "p50"
    others = [data[p]["summary"][key] for p in peers
              if p != "ether" and key in data[p].get("summary", {})]
    if wl.kind == "throughput":
        best = max(others) if others else None
    else:
        best = min(others) if others else None
    if wl.kind == "throughput":
        cols = ["peer", "M msg/s", "min-max", "runs", "x best other"]
        if wl.fanout > 1:
            cols.insert(4, "per consumer M msg/s")
    else:
        cols = ["peer", "p50 us", "p99 us", "p99.9 us", "p50 min-max", "runs",
                "x best other (p50)", "x (p99)"]
        best99 = [data[p]["summary"]["p99"] for p in peers
                  if p != "ether" and "p99" in data[p].get("summary", {})]
        best99 = min(best99) if best99 else None
    rows = []
    notes = []
    for p in peers:
        d = data[p]
        if "skipped" in d:
            rows.append([p, f"skipped: {d['skipped']}"])
            continue
        s = d["summary"]
        runs = f"{s['runs_ok']}/{s['runs_total']}"
        if key not in s:
            errs = [r.get("error") or "; ".join(r.get("problems", [])) for r in d["runs"]]
            rows.append([p, f"FAILED ({runs} ok): {errs[0]}"])
            continue
        if wl.kind == "throughput":
            row = [p, _fmt(s["mps"] / 1e6, 3),
                   f"{s['mps_min'] / 1e6:.3f}-{s['mps_max'] / 1e6:.3f}", runs,
                   _fmt(s["mps"] / best) if best else "-"]
            if wl.fanout > 1:
                row.insert(4, " / ".join(f"{v / 1e6:.3f}" for v in s["per_consumer_mps"]))
        else:
            row = [p, _fmt(s["p50"], 1), _fmt(s["p99"], 1), _fmt(s["p999"], 1),
                   f"{s['p50_min']:.1f}-{s['p50_max']:.1f}", runs,
                   _fmt(s["p50"] / best) if best else "-",
                   _fmt(s["p99"] / best99) if best99 else "-"]
        bad = [r for r in d["runs"] if "error" in r or "problems" in r]
        if bad:
            row[0] += f" [{len(notes) + 1}]"
            notes.append(f"[{len(notes) + 1}] {p}: {len(bad)} of {len(d['runs'])} run(s) failed "
                         f"and are left out: {bad[0].get('error') or bad[0]['problems'][0]}")
        rows.append(row)
    widths = [max(len(str(r[i])) for r in rows + [cols] if i < len(r) and len(r) > 2)
              for i in range(len(cols))]
    fmt_row = lambda r: "  ".join(str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i])  # noqa: E731
                                  for i, c in enumerate(r))
    lines.append(fmt_row(cols))
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append(fmt_row(r) if len(r) > 2 else f"{r[0].ljust(widths[0])}  {r[1]}")
    lines.extend(notes)
    return "\n".join(lines)


def environment() -> dict:
    return _harness.environment(("ether", "zmq", "msgspec", "numpy"), ("faster-fifo", "iceoryx2"),
                                start_method="spawn")


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short runs for smoke tests (< ~60 s)")
    ap.add_argument("--runs", type=int, help="repetitions per workload (default 5; 1 with --quick)")
    ap.add_argument("--json", metavar="PATH", help="write all results as JSON to PATH")
    ap.add_argument("--only", metavar="W1,W3",
                    help="workloads: W1 (both variants), W1-single, W1-batch, W2, W3, W4")
    ap.add_argument("--peers", metavar="ether,zmq-ipc",
                    help="peers: " + ",".join(_peers.PEERS))
    ap.add_argument("--budget", type=float, help="override the per-run time budget in seconds")
    return ap.parse_args(argv)


def select(args):
    wls = WORKLOADS
    if args.only:
        want = {w.strip().upper() for w in args.only.split(",") if w.strip()}
        wls = [w for w in WORKLOADS if w.key.upper() in want or w.key.split("-")[0].upper() in want]
        unknown = want - {w.key.upper() for w in WORKLOADS} - {"W1"}
        if unknown or not wls:
            sys.exit(f"unknown workload(s) in --only: {sorted(unknown) or args.only}")
    peers = list(_peers.PEERS)
    if args.peers:
        peers = [p.strip() for p in args.peers.split(",") if p.strip()]
        bad = [p for p in peers if p not in _peers.PEERS]
        if bad:
            sys.exit(f"unknown peer(s): {bad}; known: {', '.join(_peers.PEERS)}")
    return wls, peers


def main(argv=None) -> int:
    args = parse_args(argv)
    wls, peers = select(args)
    P = QUICK if args.quick else FULL
    runs = args.runs or P["runs"]
    if args.budget:
        P = dict(P, budget=args.budget, budget_batch=args.budget)
    ctx = mp.get_context("spawn")
    env = environment()
    log(f"bench_transport: {'quick' if args.quick else 'full'} mode, {runs} run(s), "
        f"workloads {','.join(w.key for w in wls)}, peers {','.join(peers)}")
    skipped = {p: _peers.PEERS[p].unavailable() for p in peers}
    for p, why in skipped.items():
        if why:
            log(f"  skipping {p}: {why}")
    all_runs = {w.key: {p: [] for p in peers} for w in wls}
    t_start = time.monotonic()
    for i in range(runs):
        for wl in wls:
            for p in peers:
                if skipped[p] or not _runs(p, wl):
                    continue
                t = time.monotonic()
                try:
                    res = run_once(ctx, _peers.PEERS[p], wl, P)
                except Exception as exc:  # setup/teardown failure in the parent
                    res = {"error": f"{type(exc).__name__}: {exc}"}
                res["loadavg_1m"] = os.getloadavg()[0]
                all_runs[wl.key][p].append(res)
                log(f"  [{i + 1}/{runs}] {wl.key:9s} {p:12s} {_brief(res)}  "
                    f"({time.monotonic() - t:.1f} s)")
    elapsed = time.monotonic() - t_start
    env["loadavg_end"] = os.getloadavg()
    env["elapsed_s"] = round(elapsed, 1)

    report = {"meta": dict(env, mode="quick" if args.quick else "full", runs=runs,
                           params=P, caps={f"{k[0]}/{k[1]}": v for k, v in CAPS.items()},
                           peers={p: {"batch": _peers.PEERS[p].batch_how or "n/a",
                                      "W2": _peers.PEERS[p].w2_how,
                                      "W3": _peers.PEERS[p].pingpong_how,
                                      "W4": "one sender, all consumers subscribe"
                                      if _peers.PEERS[p].broadcast else "one sender per consumer"}
                                  for p in peers}), "workloads": {}}
    print(f"Ether transport benchmark ({'quick' if args.quick else 'full'}, median of {runs} "
          f"run(s); python {env['python']}, {env['cpus']} CPUs, load avg "
          f"{env['loadavg_start'][0]:.2f} -> {env['loadavg_end'][0]:.2f}, "
          f"took {elapsed:.0f} s)")
    for wl in wls:
        data = {}
        wl_peers = [p for p in peers if _runs(p, wl)]
        for p in wl_peers:
            if skipped[p]:
                data[p] = {"skipped": skipped[p]}
            else:
                data[p] = {"runs": all_runs[wl.key][p],
                           "summary": summarize(wl, all_runs[wl.key][p])}
        print(render_table(wl, wl_peers, data))
        report["workloads"][wl.key] = {"title": wl.title, "peers": data}
    print()
    print("Batch for peers without a batch API = one joined 16 KiB frame per call; "
          "iceoryx2 subscribers poll with sched_yield. See the module docstring.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2, default=str)
        log(f"wrote {args.json}")
    failed = any("error" in r or "problems" in r
                 for w in all_runs.values() for rs in w.values() for r in rs)
    return 1 if failed else 0


def _runs(peer: str, wl) -> bool:
    only = _peers.PEERS[peer].workloads
    return only is None or wl.key in only


def _brief(res: dict) -> str:
    if "error" in res:
        return "ERROR " + res["error"]
    tail = "  PROBLEMS: " + "; ".join(res["problems"]) if "problems" in res else ""
    if "mps" in res:
        return f"{res['mps'] / 1e6:8.3f} M msg/s ({res['delivered']} msgs in {res['seconds']:.2f} s){tail}"
    return f"p50 {res['p50']:.1f} us  p99 {res['p99']:.1f} us  p99.9 {res['p999']:.1f} us{tail}"


if __name__ == "__main__":
    sys.exit(main())
