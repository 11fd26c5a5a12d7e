"""Trial after trial in one long-lived main: tap a session whose instance
publishes large arrays (through its arena) to the main, keep views of them past
the session's shutdown, shut down, and go on (what tests/integration/
test_cycles.py does five times).

Figures, from this process's own view (other people's sessions share
/dev/shm, so its total use says nothing about us): the Ether shared memory this
process still maps (/proc/self/maps), its open descriptors and its RSS, after a
warm-up trial and after the last; what each session left in /dev/shm.
"""
from __future__ import annotations

import gc
import os
import time

import numpy as np

from . import common
from .common import Outcome, Proc, fmt_bytes

PROMISE = "After shutdown the session's memory is returned: /dev/shm use and descriptors stay flat"


def _trial(frames: int) -> str:
    from ether import ether
    ether.tap(config={"instances": {"source": {"class_path": "reliability_apps.FrameSource"}}})
    sid = ether.session_name()
    kept = []
    try:
        with ether.listen("frame", timeout=20) as got:
            ether.pub({"count": frames}, topic="want-frames")
            for _ in range(frames):
                frame = next(got)
                if not np.all(frame["data"] == frame["i"]):
                    raise AssertionError(f"frame {frame['i']} arrived changed")
                kept.append(frame["data"])  # views that outlive the session
    finally:
        ether.shutdown()
    if not all(k.sum() == i * k.size for i, k in enumerate(kept)):
        raise AssertionError("a kept view changed after shutdown")
    return sid


def run(cycles: int = 30, frames: int = 3, watchdog_s: float = 300.0) -> Outcome:
    common.ensure_path()
    from ether._core import _segment
    started = time.monotonic()
    me = Proc.of(os.getpid(), "main")
    with common.watchdog(watchdog_s):
        _trial(frames)  # warm-up: imports, thread pools, log files
        gc.collect()
        settled = _segment.unmapped(10.0)  # shutdown leaves the rings' munmap to a thread
        fds, held, rss = common.own_fds(), common.mapped_shm_bytes(), me.rss().get("VmRSS", 0)
        sids = [_trial(frames) for _ in range(cycles)]
        gc.collect()
        settled = _segment.unmapped(10.0) and settled
        fds_end, held_end, rss_end = common.own_fds(), common.mapped_shm_bytes(), me.rss().get("VmRSS", 0)
    left = sum(len(common.shm_objects(s)) for s in sids)
    for s in sids:
        common.remove_session_objects(s)
    figures = {"cycles": cycles, "frames_per_cycle": frames, "fds_start": fds, "fds_end": fds_end,
               "mapped_shm_start": held, "mapped_shm_end": held_end, "rss_kib_start": rss,
               "rss_kib_end": rss_end, "objects_left": left}
    checks = {
        "descriptors_flat": fds_end <= fds + 2,
        "shared_memory_returned": held_end <= held,
        "nothing_left_in_dev_shm": left == 0,
        "unmapped_within_10_s": settled,
    }
    summary = (f"after {cycles} cycles (each {frames} x 1 MiB arrays kept past shutdown): mapped Ether "
               f"shared memory {fmt_bytes(held)} -> {fmt_bytes(held_end)}, descriptors {fds} -> "
               f"{fds_end}, RSS {rss / 1024:.0f} -> {rss_end / 1024:.0f} MiB, {left} objects left "
               f"in /dev/shm")
    return Outcome("cycles", PROMISE, f"{cycles} tap/shutdown cycles with arrays in one main",
                   summary, figures, checks, seconds=time.monotonic() - started)
