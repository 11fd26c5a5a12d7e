"""Start-up stages, timestamped, for measurement only (ETHER_LAUNCH_TRACE).

A tap across hosts runs in several processes (the main, its bridge, the agent of
another host, the hosted main and bridge it starts); each appends
`monotonic-time pid who stage` lines to the one file, and
benchmarks/bench_lifecycle.py --trace lays them out. CLOCK_MONOTONIC is the
machine's, shared by network namespaces, so the simulated hosts' lines compare.
Unset (always, outside a benchmark), a mark costs one environment lookup.
"""
from __future__ import annotations

import os
import time

from . import _settings

__all__ = ["mark"]


def mark(who: str, stage: str) -> None:
    path = _settings.launch_trace()
    if path is None:
        return
    line = f"{time.monotonic():.6f} {os.getpid()} {who} {stage}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)   # one write with O_APPEND: lines of several processes do not mix
    finally:
        os.close(fd)
