#!/usr/bin/env python
"""Ether's request-reply services (@ether_get + ether.get) against pyzmq REQ/REP.

What it measures
================
S1  One caller.  ether.tap(config={"instances": ...}) starts one EchoService
    instance (benchmarks/_service_apps.py):
        @ether_get
        def echo(self, n: int) -> dict: return {"n": n}
    The main script calls ether.get("echo", "echo", params={"n": i}) 2,000 times
    untimed (200 with --quick), then N times sequentially (20,000; 2,000 with
    --quick), timing each call with time.perf_counter_ns and checking each
    reply's n.  Reports p50 / p99 / p99.9 per call in microseconds and
    requests/s = N / (clock after the last call - clock before the first).
    The request goes to the instance by name; Ether encodes the request
    envelope, the server validates {"n": i} against the type hint, calls the
    method, and replies with {"status": "success", "result": {"n": i}, ...}.

S4  Four concurrent callers, ONE server.  The same session also runs four Caller
    instances (separate processes).  The main script creates a listener on
    "ready", publishes "warm" (each caller makes 500 untimed calls, 100 with
    --quick, then publishes "ready"), collects four "ready" messages, creates a
    listener on "done" and publishes "go": each caller then makes M timed
    ether.get("echo", "echo", ...) calls from inside its @ether_sub(topic="go")
    method (10,000; 1,000 with --quick), checks every reply, and publishes its
    per-call latencies and its first/last clock readings to "done".  The clock
    is CLOCK_MONOTONIC in every process, so
        aggregate requests/s = 4 * M / (max last - min first)
    and the latency percentiles are over all 4 * M calls pooled.  Five
    processes (one server, four callers) share this machine's cores.

Peers (same run, interleaved: run 1 of Ether, zmq-ipc, zmq-tcp, then run 2 ...)
    zmq-ipc  pyzmq REQ/REP over ipc://; zmq-tcp  the same over tcp://127.0.0.1.
    One REP server process ('spawn' start method) decodes each request with
    msgspec.msgpack into a dict {"n": i} and replies with the encoded {"n": i}
    (Encoder/Decoder objects reused).  S1: one REQ client in the main script
    (as Ether's S1 caller is the main script): encode the dict, send, receive,
    decode, check n; the same warm-up, N and timing.  S4: four REQ client
    processes ('spawn') connected to the one REP socket (it serves them in turn,
    fair-queued); each warms up, then they start together on a
    multiprocessing.Barrier, time M calls each and send their latencies and
    clock readings back through a pipe.  The server reports its bound endpoint
    through a pipe; it stops on a request with n = -1.  No sleeps anywhere.

The peers move only the payload; Ether's messages also carry an envelope
(kind, topic, sender, sequence, cause, request id, reply status) and the server
validates the params against the method's type hints.

Tables show medians over the runs (default 5, 1 with --quick) with the
min-max spread of p50 and of requests/s.  Ratio columns are "Ether / peer":
for latency LOWER is better for Ether (< 1: Ether's calls are faster); for
requests/s HIGHER is better (> 1: Ether serves more).  Targets (printed under
the S1 table): p50 <= 30 us and >= 30,000 requests/s from one caller.

Each Ether run is a fresh tap ... shutdown; after the shutdown /dev/shm must
hold nothing of that session (ether_<session>*), or the run counts as failed.

Usage (from the repository root)
-----
  python benchmarks/bench_services.py                 # full: about 1-3 minutes
  python benchmarks/bench_services.py --quick         # smoke test
  python benchmarks/bench_services.py --runs 3 --calls 50000 --json services.json
The exit status is 1 if any run failed or did not verify.
"""
from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import multiprocessing.connection
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import _harness  # noqa: E402
import _service_apps as apps  # noqa: E402

CALLERS = 4
TARGET_P50_US = 30.0
TARGET_RPS = 30_000
PEERS = ("zmq-ipc", "zmq-tcp")
ALL = ("ether",) + PEERS

FULL = {"runs": 5, "calls": 20_000, "warmup": 2_000, "calls4": 10_000, "warmup4": 500,
        "timeout": 120.0}
QUICK = {"runs": 1, "calls": 2_000, "warmup": 200, "calls4": 1_000, "warmup4": 100,
         "timeout": 60.0}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def shm_leftovers(session: str) -> list[str]:
    prefix = f"ether_{session}"
    try:
        names = os.listdir("/dev/shm")
    except FileNotFoundError:
        return []
    return sorted(f for f in names if f == prefix or f.startswith(prefix + "_"))


def _pct(sorted_ns: list[int], q: float) -> float:
    """Nearest-rank percentile of sorted nanoseconds, in microseconds."""
    if not sorted_ns:
        return float("nan")
    k = min(len(sorted_ns) - 1, max(0, int(round(q * len(sorted_ns))) - 1))
    return sorted_ns[k] / 1e3


def _lat_stats(lat_ns: list[int]) -> dict:
    s = sorted(lat_ns)
    return {"p50": _pct(s, 0.50), "p99": _pct(s, 0.99), "p999": _pct(s, 0.999),
            "mean": (sum(s) / len(s) / 1e3) if s else float("nan"),
            "max": s[-1] / 1e3 if s else float("nan")}


def one_result(lat: list[int], t_first: int, t_last: int, bad: int, count: int) -> dict:
    res = {"calls": count, "rps": count / ((t_last - t_first) / 1e9), **_lat_stats(lat)}
    if bad or len(lat) != count:
        res["problems"] = [f"{bad} wrong replies, {len(lat)} of {count} calls timed"]
    return res


def four_result(reports: list[dict], count: int) -> dict:
    """Aggregate the callers' reports (each: lat_ns, t_first, t_last, bad, error)."""
    errors = [f"caller {r['caller']}: {r['error']}" for r in reports if r.get("error")]
    if len(reports) != CALLERS:
        errors.append(f"{len(reports)} of {CALLERS} callers reported")
    if errors:
        return {"error": "; ".join(errors)}
    pooled = [x for r in reports for x in r["lat_ns"]]
    total = len(pooled)
    span = max(r["t_last"] for r in reports) - min(r["t_first"] for r in reports)
    res = {"calls": total, "rps": total / (span / 1e9), **_lat_stats(pooled),
           "per_caller_p50": [_lat_stats(r["lat_ns"])["p50"] for r in sorted(reports, key=lambda r: r["caller"])],
           "per_caller_rps": [len(r["lat_ns"]) / ((r["t_last"] - r["t_first"]) / 1e9) for r in reports],
           "start_skew_us": (max(r["t_first"] for r in reports) - min(r["t_first"] for r in reports)) / 1e3}
    bad = sum(r["bad"] for r in reports)
    if bad or total != CALLERS * count:
        res["problems"] = [f"{bad} wrong replies, {total} of {CALLERS * count} calls timed"]
    return res


# --------------------------------------------------------------------------
# Ether
# --------------------------------------------------------------------------
def _collect_messages(listener, want: int, what: str) -> list[dict]:
    got = []
    for msg in listener:
        got.append(msg)
        if len(got) == want:
            break
    listener.close()
    if len(got) != want:
        raise RuntimeError(f"{len(got)} of {want} {what!r} messages arrived")
    return got


class _Warnings(logging.Handler):
    """Collects what Ether logs at WARNING or above in the main process."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


def run_ether(P: dict) -> dict:
    """One tap ... shutdown: S1 from the main script, then S4 with four callers."""
    from ether import ether
    warnings = _Warnings()
    logging.getLogger("Ether").addHandler(warnings)
    try:
        out = _run_ether(ether, P)
    finally:
        logging.getLogger("Ether").removeHandler(warnings)
    out["warnings"] = warnings.records
    return out


def _run_ether(ether, P: dict) -> dict:
    config = {"instances": {"echo": {"class_path": "_service_apps.EchoService"}}}
    for i in range(CALLERS):
        config["instances"][f"caller{i}"] = {"class_path": "_service_apps.Caller",
                                            "kwargs": {"index": i}}
    out: dict = {}
    t0 = time.perf_counter()
    try:
        ether.tap(config=config)
    except Exception as exc:
        return {"S1": {"error": f"tap failed: {type(exc).__name__}: {exc}"}, "S4": {"error": "tap failed"}}
    out["tap_s"] = time.perf_counter() - t0
    sid = out["session"] = ether.session
    try:
        get = ether.get
        try:
            bad = sum(get("echo", "echo", params={"n": i})["n"] != i for i in range(P["warmup"]))
            lat, t_first, t_last, b = apps._timed_calls(
                lambda i: get("echo", "echo", params={"n": i})["n"], 0, P["calls"])
            out["S1"] = one_result(lat, t_first, t_last, bad + b, P["calls"])
        except Exception as exc:
            out["S1"] = {"error": f"{type(exc).__name__}: {exc}"}
        try:
            ready = ether.listen("ready", timeout=P["timeout"])
            ether.pub({"service": "echo", "warmup": P["warmup4"]}, topic="warm")
            warm = _collect_messages(ready, CALLERS, "ready")
            done = ether.listen("done", timeout=P["timeout"])
            ether.pub({"service": "echo", "count": P["calls4"]}, topic="go")
            reports = _collect_messages(done, CALLERS, "done")
            out["S4"] = four_result(reports, P["calls4"])
            wbad = sum(m["bad"] for m in warm)
            if wbad:
                out["S4"].setdefault("problems", []).append(f"{wbad} wrong replies in the warm-up")
        except Exception as exc:
            out["S4"] = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        t1 = time.perf_counter()
        try:
            ether.shutdown()
        except Exception as exc:
            out["shutdown_error"] = f"{type(exc).__name__}: {exc}"
        out["shutdown_s"] = time.perf_counter() - t1
    leaked = shm_leftovers(sid)
    for key in ("S1", "S4"):
        if leaked:
            out[key].setdefault("problems", []).append(f"/dev/shm not clean after shutdown: {leaked}")
        if "shutdown_error" in out:
            out[key].setdefault("problems", []).append("shutdown failed: " + out["shutdown_error"])
    return out


# --------------------------------------------------------------------------
# pyzmq REQ/REP
# --------------------------------------------------------------------------
def _recv(conn, timeout: float, what: str):
    if not conn.poll(timeout):
        raise TimeoutError(f"nothing from {what} within {timeout:g} s")
    return conn.recv()


def run_zmq(ctx, peer: str, P: dict, run: int) -> dict:
    if peer == "zmq-ipc":
        path = os.path.join(tempfile.gettempdir(), f"ether-bench-svc-{os.getpid()}-{run}.sock")
        endpoint = f"ipc://{path}"
    else:
        path, endpoint = None, "tcp://127.0.0.1:0"
    out: dict = {}
    procs = []
    r, w = ctx.Pipe(duplex=False)
    server = ctx.Process(target=apps.zmq_server_main, args=(endpoint, w),
                         name=f"bench-{peer}-server", daemon=True)
    server.start()
    w.close()
    procs.append(server)
    client = None
    try:
        endpoint = _recv(r, P["timeout"], f"the {peer} server")
        client = apps.ZmqClient(endpoint)
        call = client.call
        try:
            bad = sum(call(i) != i for i in range(P["warmup"]))
            lat, t_first, t_last, b = apps._timed_calls(call, 0, P["calls"])
            out["S1"] = one_result(lat, t_first, t_last, bad + b, P["calls"])
        except Exception as exc:
            out["S1"] = {"error": f"{type(exc).__name__}: {exc}"}
        try:
            barrier = ctx.Barrier(CALLERS)
            pipes = []
            for i in range(CALLERS):
                cr, cw = ctx.Pipe(duplex=False)
                p = ctx.Process(target=apps.zmq_client_main,
                                args=(endpoint, i, P["warmup4"], P["calls4"], barrier, cw),
                                name=f"bench-{peer}-client{i}", daemon=True)
                p.start()
                cw.close()
                procs.append(p)
                pipes.append(cr)
            reports = []
            deadline = time.monotonic() + P["timeout"]
            pending = list(pipes)
            while pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                for c in mp.connection.wait(pending, timeout=left):
                    pending.remove(c)
                    try:
                        reports.append(c.recv())
                    except EOFError:
                        reports.append({"caller": pipes.index(c), "error": "client died"})
            out["S4"] = four_result(reports, P["calls4"])
        except Exception as exc:
            out["S4"] = {"error": f"{type(exc).__name__}: {exc}"}
        call(apps.STOP)  # the server replies, then stops
    except Exception as exc:
        out.setdefault("S1", {"error": f"{type(exc).__name__}: {exc}"})
        out.setdefault("S4", {"error": f"{type(exc).__name__}: {exc}"})
    finally:
        if client is not None:
            client.close()
        for p in procs:
            p.join(10.0)
            if p.is_alive():
                p.kill()
                p.join()
        if path and os.path.exists(path):
            os.unlink(path)
    return out


# --------------------------------------------------------------------------
# summary and tables
# --------------------------------------------------------------------------
def summarize(runs: list[dict]) -> dict:
    good = [r for r in runs if "error" not in r and "problems" not in r]
    s = {"runs_ok": len(good), "runs_total": len(runs)}
    if not good:
        return s
    for m in ("p50", "p99", "p999", "rps"):
        vals = [r[m] for r in good]
        s[m] = statistics.median(vals)
        s[m + "_min"], s[m + "_max"] = min(vals), max(vals)
    if "per_caller_p50" in good[0]:
        s["per_caller_p50"] = [statistics.median(r["per_caller_p50"][i] for r in good)
                               for i in range(CALLERS)]
        s["start_skew_us"] = statistics.median(r["start_skew_us"] for r in good)
    return s


def render_table(title: str, data: dict) -> str:
    """data[peer] = {"runs": [...], "summary": {...}}"""
    cols = ["", "p50 us", "p99 us", "p99.9 us", "p50 min-max", "k req/s", "req/s min-max",
            "runs", "Ether/peer p50", "p99", "req/s"]
    ether = data.get("ether", {}).get("summary", {})
    rows, notes = [], []
    for p in ALL:
        s = data[p]["summary"]
        runs = f"{s['runs_ok']}/{s['runs_total']}"
        if "p50" not in s:
            errs = [r.get("error") or "; ".join(r.get("problems", [])) for r in data[p]["runs"]]
            rows.append([p, f"FAILED ({runs} ok): {errs[0] if errs else '?'}"])
            continue
        ratio = ["-", "-", "-"]
        if p != "ether" and "p50" in ether:
            ratio = [f"{ether['p50'] / s['p50']:.2f}", f"{ether['p99'] / s['p99']:.2f}",
                     f"{ether['rps'] / s['rps']:.2f}"]
        row = [p, f"{s['p50']:.1f}", f"{s['p99']:.1f}", f"{s['p999']:.1f}",
               f"{s['p50_min']:.1f}-{s['p50_max']:.1f}", f"{s['rps'] / 1e3:.1f}",
               f"{s['rps_min'] / 1e3:.1f}-{s['rps_max'] / 1e3:.1f}", runs] + ratio
        bad = [r for r in data[p]["runs"] if "error" in r or "problems" in r]
        if bad:
            row[0] += f" [{len(notes) + 1}]"
            notes.append(f"[{len(notes) + 1}] {p}: {len(bad)} of {len(data[p]['runs'])} run(s) "
                         f"failed and are left out: {bad[0].get('error') or bad[0]['problems'][0]}")
        rows.append(row)
    full = [r for r in rows if len(r) > 2]
    widths = [max(len(str(r[i])) for r in full + [cols]) for i in range(len(cols))]
    fmt = lambda r: "  ".join(str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i])  # noqa: E731
                              for i, c in enumerate(r))
    lines = [f"\n{title}", fmt(cols), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) if len(r) > 2 else f"{r[0].ljust(widths[0])}  {r[1]}" for r in rows]
    return "\n".join(lines + notes)


def environment() -> dict:
    return _harness.environment(ether_start_method=os.environ.get("ETHER_START_METHOD", "fork"))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small N, 1 run (smoke test)")
    ap.add_argument("--runs", type=int, help="repetitions (default 5; 1 with --quick)")
    ap.add_argument("--calls", type=int, help="S1: timed calls of the one caller (default 20,000)")
    ap.add_argument("--calls4", type=int, help="S4: timed calls per caller (default 10,000)")
    ap.add_argument("--json", metavar="PATH", help="write all results as JSON to PATH")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    P = dict(QUICK if args.quick else FULL)
    if args.calls:
        P["calls"] = args.calls
    if args.calls4:
        P["calls4"] = args.calls4
    runs = args.runs or (1 if args.quick else 5)
    P["runs"] = runs
    try:
        import zmq  # noqa: F401
        import msgspec  # noqa: F401
        peers = PEERS
    except ImportError as exc:
        log(f"skipping the zmq peers: {exc}")
        peers = ()
    ctx = mp.get_context("spawn")
    env = environment()
    mode = "quick" if args.quick else "full"
    log(f"bench_services: {mode} mode, {runs} run(s); S1 {P['calls']} calls, "
        f"S4 {CALLERS} x {P['calls4']} calls; load avg {env['loadavg_start'][0]:.2f}")
    results = {w: {p: [] for p in ALL} for w in ("S1", "S4")}
    extra = {"tap_s": [], "shutdown_s": [], "warnings": []}
    t_start = time.monotonic()
    for i in range(runs):
        for p in ("ether",) + peers:
            t = time.monotonic()
            try:
                res = run_ether(P) if p == "ether" else run_zmq(ctx, p, P, i)
            except Exception as exc:
                res = {"S1": {"error": f"{type(exc).__name__}: {exc}"},
                       "S4": {"error": f"{type(exc).__name__}: {exc}"}}
            load = os.getloadavg()[0]
            for w in ("S1", "S4"):
                res[w]["loadavg_1m"] = load
                results[w][p].append(res[w])
            for k in ("tap_s", "shutdown_s"):
                if k in res:
                    extra[k].append(res[k])
            extra["warnings"] += [f"run {i + 1}: {m}" for m in res.get("warnings", [])]
            log(f"  [{i + 1}/{runs}] {p:8s} S1 {_brief(res['S1'])} | S4 {_brief(res['S4'])}  "
                f"({time.monotonic() - t:.1f} s)")
    elapsed = time.monotonic() - t_start
    env["loadavg_end"] = os.getloadavg()
    env["elapsed_s"] = round(elapsed, 1)

    data = {w: {p: {"runs": results[w][p], "summary": summarize(results[w][p])} for p in ALL}
            for w in results}
    for w in data:
        for p in ALL:
            if p != "ether" and p not in peers:
                data[w][p]["summary"] = {"runs_ok": 0, "runs_total": 0}
                data[w][p]["runs"] = [{"error": "skipped (pyzmq or msgspec missing)"}]
    print(f"Ether services benchmark ({mode}, median of {runs} run(s); python {env['python']}, "
          f"{env['cpus']} CPUs, load avg {env['loadavg_start'][0]:.2f} -> "
          f"{env['loadavg_end'][0]:.2f}, took {elapsed:.0f} s)")
    print("Ratios are Ether / peer: latency lower is better for Ether (< 1 = Ether faster); "
          "req/s higher is better (> 1 = Ether serves more).")
    print(render_table(f"S1: one caller, {P['calls']:,} sequential calls of echo(n) -> {{'n': n}}",
                       data["S1"]))
    s1 = data["S1"]["ether"]["summary"]
    if "p50" in s1:
        print(f"Targets (Ether, one caller): p50 <= {TARGET_P50_US:.0f} us: {s1['p50']:.1f} us "
              f"({'met' if s1['p50'] <= TARGET_P50_US else 'NOT met'}); >= {TARGET_RPS:,} req/s: "
              f"{s1['rps']:,.0f} ({'met' if s1['rps'] >= TARGET_RPS else 'NOT met'})")
    print(render_table(f"S4: {CALLERS} concurrent callers x {P['calls4']:,} calls, one server "
                       f"(aggregate req/s; latency pooled over all calls)", data["S4"]))
    for p in ALL:
        s = data["S4"][p]["summary"]
        if "per_caller_p50" in s:
            print(f"  {p}: per-caller p50 " + " / ".join(f"{v:.1f}" for v in s["per_caller_p50"])
                  + f" us; start skew {s['start_skew_us']:.0f} us")
    if extra["tap_s"]:
        print(f"Ether tap {statistics.median(extra['tap_s']):.3f} s, shutdown "
              f"{statistics.median(extra['shutdown_s']):.3f} s (medians; 5 instances)")
    if extra["warnings"]:
        print(f"Ether logged {len(extra['warnings'])} warning(s) in the main process "
              f"(not counted as failures): " + "; ".join(extra["warnings"][:6])
              + (" ..." if len(extra["warnings"]) > 6 else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": dict(env, mode=mode, params=P), "tap_s": extra["tap_s"],
                       "shutdown_s": extra["shutdown_s"],
                       "ether_warnings": extra["warnings"], "workloads": data}, f, indent=2, default=str)
        log(f"wrote {args.json}")
    failed = any("error" in r or "problems" in r
                 for w in results.values() for p in ("ether",) + peers for r in w[p])
    return 1 if failed else 0


def _brief(res: dict) -> str:
    if "error" in res:
        return "ERROR " + res["error"]
    tail = " PROBLEMS: " + "; ".join(res["problems"]) if "problems" in res else ""
    return f"p50 {res['p50']:.1f} p99 {res['p99']:.1f} us, {res['rps'] / 1e3:.1f} k req/s{tail}"


if __name__ == "__main__":
    sys.exit(main())
