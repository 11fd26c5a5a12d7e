"""Shared pieces of the benchmark scripts: running a child's body, collecting the
children's results, medians, plain-text tables, failed runs and the environment."""
from __future__ import annotations

import logging
import multiprocessing as mp
import multiprocessing.connection
import os
import platform
import statistics
import sys
import time
import traceback


def run_child(body, barrier, result, *args) -> None:
    """Run body(barrier, *args) in a child; send ("ok", out) or ("error", traceback),
    breaking the barrier on failure so the partners do not wait forever."""
    try:
        out = body(barrier, *args)
    except BaseException:
        try:
            barrier.abort()
        finally:
            result.send(("error", traceback.format_exc()))
        return
    result.send(("ok", out))


def summarize(runs: list[dict], keys) -> dict:
    """Median, min and max of each key over the runs that verified."""
    good = [r for r in runs if "error" not in r and "problems" not in r]
    s = {"runs_ok": len(good), "runs_total": len(runs)}
    for k in keys:
        vals = [r[k] for r in good if k in r]
        if vals:
            s[k] = statistics.median(vals)
            s[k + "_min"] = min(vals)
            s[k + "_max"] = max(vals)
    return s


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Left-aligned first column, right-aligned numbers."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(headers), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def collect(children, timeout):
    """Results of child processes: children are (role, process, reader, ...) tuples;
    each child sends ("ok", value) or ("error", text) on its reader's pipe."""
    pending = {r: role for role, _, r, _ in children}
    results = {}
    deadline = time.monotonic() + timeout
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            for role in pending.values():
                results[role] = ("error", f"timeout: no result after {timeout:.0f} s")
            break
        for r in mp.connection.wait(list(pending), timeout=left):
            role = pending.pop(r)
            try:
                results[role] = r.recv()
            except EOFError:
                proc = next(p for ro, p, _, _ in children if ro == role)
                proc.join(5.0)
                results[role] = ("error", f"process died (exit code {proc.exitcode})")
            r.close()
            if results[role][0] != "ok":
                # partners may be blocked in a send/receive that will never finish;
                # give them a moment to report, then the caller kills them
                deadline = min(deadline, time.monotonic() + 3.0)
    return results


def run_children(children, timeout: float, join_timeout: float) -> tuple[dict | None, dict]:
    """Start the children, collect their results, reap them (killing stragglers).
    Returns (error, results): error is {"error", "detail"} if any child failed,
    naming the root cause rather than a partner's broken barrier."""
    try:
        for _, p, _, w in children:
            p.start()
            w.close()
        results = collect(children, timeout)
    finally:
        for _, p, _, _ in children:
            p.join(join_timeout)
            if p.is_alive():
                p.kill()
                p.join()
    failed = {role: v for role, (st, v) in results.items() if st != "ok"}
    if failed:
        root = [v for v in failed.values() if "BrokenBarrierError" not in v] or list(failed.values())
        return {"error": root[0].strip().splitlines()[-1], "detail": failed}, results
    return None, results


def failures(runs: dict) -> list[str]:
    """Report lines for the runs that failed or logged warnings: runs maps a key
    (a name, or a tuple) to its list of run results."""
    bad = []
    for key, rs in runs.items():
        for i, r in enumerate(rs, 1):
            if "error" in r or "problems" in r:
                bad.append(f"  {key} run {i}: {r.get('error') or '; '.join(r['problems'])}")
            for w in r.get("warnings", ()):
                bad.append(f"  {key} run {i} logged: {w}")
    if bad:
        bad.insert(0, "\nFailed or unclean runs (excluded from the medians where they failed):")
    return bad


def environment(modules=("ether", "zmq", "msgspec"), dists=(), **extra) -> dict:
    """What a result depends on: Python, platform, load, versions of modules (by
    __version__) and of distributions (by their metadata), and `extra`."""
    env = {"python": sys.version.split()[0], "platform": platform.platform(),
           "cpus": os.cpu_count(), "loadavg_start": os.getloadavg(),
           "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), **extra}
    for mod in modules:
        try:
            env[mod] = getattr(__import__(mod), "__version__", "?")
        except Exception:
            env[mod] = None
    try:
        import zmq
        env["libzmq"] = zmq.zmq_version()
    except Exception:
        pass
    from importlib import metadata
    for dist in dists:
        try:
            env[dist] = metadata.version(dist)
        except Exception:
            env[dist] = None
    return env


class LogRecorder(logging.Handler):
    """Keeps the warnings and errors a logger emits during the current run."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname}: {record.getMessage()}")
