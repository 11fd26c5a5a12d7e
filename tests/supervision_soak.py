"""The supervision soak: a pipeline runs while one instance is killed every
`kill_every` seconds under `on-failure`. The rest of the pipeline loses nothing,
the victim comes back each time, and /dev/shm, descriptors and memory stay flat
from the end of the first restart (the warm-up) to the end.
Used by tests/integration (seconds) and tests/stress (10 minutes)."""
from __future__ import annotations

import gc
import os
import signal
import threading
import time

from ether import ether
from ether.lowlevel import InstanceState, inspect

from conftest import shm_objects, wait_for


def _shm(sid: str) -> tuple[int, int]:
    """(objects, bytes) of the session in /dev/shm."""
    names = shm_objects(sid)
    return len(names), sum(os.stat(f"/dev/shm/{n}").st_size for n in names)


def _fds() -> int:
    """This process's descriptors, once what earlier tests left to the garbage
    collector is collected (the soak runs inside the test process)."""
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


def _anon_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


def _victim(sid: str):
    for m in inspect(sid).members:
        if m.name == "victim":
            return InstanceState.of(m.state), m.restarts, m.placeholder
    return None


def run(seconds: float, kill_every: float, rate: float = 500.0) -> dict:
    count = int(seconds * rate)
    ether.tap(config={
        "instances": {
            "source": {"class_path": "supervision_apps.Source", "kwargs": {"count": count, "rate": rate}},
            "sink": {"class_path": "supervision_apps.Sink"},
            "victim": {"class_path": "supervision_apps.Sink", "restart": "on-failure"},
        },
        "supervision": {"max_restarts": 1000, "restart_window_s": 60, "backoff_s": 0}})
    sid = ether.session
    try:
        sink_pid = ether.get("sink", "pid")
        pace = threading.Event()  # the fault injector's own pace, not a synchronisation
        kills = 0
        with ether.listen("source-done", timeout=seconds * 3 + 30) as done:
            started = time.monotonic()
            ether.start()
            while time.monotonic() - started < seconds - kill_every / 2:
                pace.wait(kill_every)
                os.kill(ether.get("victim", "pid"), signal.SIGKILL)
                kills += 1
                restarts = ether._supervisor.restarts
                back = wait_for(lambda: _victim(sid) == (InstanceState.READY, kills, False)
                                and len(restarts.timings) == kills, 30)  # its init ran too
                assert back is not None, f"the victim did not come back after kill {kills}"
                if kills == 1:  # the warm-up: every sender and route of the run exists now
                    ether.get("victim", "pid")
                    ether._supervisor.await_provenance()  # its git processes' pipes are closed
                    shm_before, fds_before = _shm(sid), _fds()
                    anon_before = {"main": _anon_kib(os.getpid()), "sink": _anon_kib(sink_pid)}
            finished = next(iter(done))
        ether.get("victim", "pid")
        assert finished == {"count": count}
        seen = ether.get("sink", "seen")
        shm_after, fds_after = _shm(sid), _fds()
        anon_after = {"main": _anon_kib(os.getpid()), "sink": _anon_kib(sink_pid)}
        timings = list(ether._supervisor.restarts.timings)
    finally:
        ether.shutdown()
    return {"sid": sid, "count": count, "seen": seen, "kills": kills, "timings": timings,
            "shm": (shm_before, shm_after), "fds": (fds_before, fds_after),
            "anon_kib": (anon_before, anon_after)}


def check(result: dict, *, memory_slack_kib: int) -> None:
    assert result["seen"] == {"next": result["count"], "problems": 0}, result["seen"]
    assert result["kills"] >= 2 and len(result["timings"]) == result["kills"]
    assert result["shm"][0] == result["shm"][1], result["shm"]
    assert result["fds"][1] <= result["fds"][0], result["fds"]  # no descriptor leaked
    before, after = result["anon_kib"]
    # Under the ASan build (.ci/sanitize preloads libasan) freed memory sits in the
    # sanitizer's quarantine, so a process's private memory says nothing of leaks.
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):
        for who in before:
            assert after[who] - before[who] <= memory_slack_kib, (who, before[who], after[who])
    assert shm_objects(result["sid"]) == []
