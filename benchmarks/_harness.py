"""Shared pieces of the benchmark scripts (their children's result collection)."""
from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection
import time


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
