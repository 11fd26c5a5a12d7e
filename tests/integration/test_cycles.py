"""A long-lived main that runs trial after trial (tap, arrays, shutdown) gives
back the session's memory each time: /dev/shm and descriptors stay flat."""
import gc
import os

import numpy as np

from ether import ether
from ether._core import _segment

from conftest import shm_objects

CYCLES = int(os.environ.get("ETHER_TEST_CYCLES", "5"))


def _shm_held() -> int:
    """Bytes of Ether shared memory this process still maps (so the tmpfs cannot
    take them back, unlinked or not): read from /proc/self/maps, so other
    processes' use of /dev/shm does not count."""
    held = {}
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].startswith("/dev/shm/ether_"):
                start, end = (int(x, 16) for x in fields[0].split("-"))
                held[fields[4], start] = end - start
    return sum(held.values())


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _trial() -> str:
    ether.tap(config={"instances": {"source": {"class_path": "reliability_apps.FrameSource"}}})
    sid = ether.session_name()
    kept = []
    with ether.listen("frame", timeout=20) as frames:
        ether.pub({"count": 3}, topic="want-frames")
        for _ in range(3):
            frame = next(frames)
            assert np.all(frame["data"] == frame["i"])
            kept.append(frame["data"])       # views outlive the session
    ether.shutdown()
    assert all(k.sum() == i * k.size for i, k in enumerate(kept))  # still readable after shutdown
    return sid


def test_trial_after_trial_returns_the_sessions_memory():
    _trial()                                  # warm-up: imports, thread pools, log files
    gc.collect()
    assert _segment.unmapped(5.0)             # shutdown leaves the rings' munmap to a thread
    fds, held = _fds(), _shm_held()
    sids = [_trial() for _ in range(CYCLES)]
    gc.collect()
    assert _segment.unmapped(5.0)
    assert [shm_objects(s) for s in sids] == [[] for _ in sids]
    assert _fds() <= fds + 2, f"descriptors grew from {fds} to {_fds()} over {CYCLES} trials"
    assert _shm_held() <= held, f"still mapped after {CYCLES} trials: {_shm_held() - held} bytes more"


def test_a_tap_forks_nothing_while_an_earlier_shutdown_still_unmaps(monkeypatch):
    """A child forked while another thread of its parent is inside munmap may start
    deadlocked (CI's ASan run lost an instance so, right after a shutdown): the next
    tap waits for the unmapping thread before it starts any process."""
    import threading

    from ether._runtime import _launch

    gate, entered = threading.Event(), threading.Event()
    unmap, unmapped, start = _segment._unmap, _segment.unmapped, _launch.start
    forked_while_unmapping = []

    me = os.getpid()

    def slow_unmap(maps):
        # Held open until the test lets it go: in this process's unmapping thread
        # only (an instance, forked with this patch, unmaps as before).
        if os.getpid() == me and threading.current_thread().name == "ether-unmap":
            gate.wait(20)
        unmap(maps)

    def watched_unmapped(timeout):
        entered.set()
        return unmapped(timeout)

    def watched_start(*args, **kwargs):
        forked_while_unmapping.append(any(t.is_alive() for t in _segment._unmapping))
        entered.set()   # (a tap that does not wait forks at once: the check below says so)
        return start(*args, **kwargs)

    monkeypatch.setattr(_segment, "_unmap", slow_unmap)
    monkeypatch.setattr(_segment, "unmapped", watched_unmapped)
    monkeypatch.setattr(_launch, "start", watched_start)
    config = {"instances": {"d": {"class_path": "apps.Doubler"}}}
    ether.tap(config=config)
    ether.shutdown()   # its unmapping thread now waits at the gate
    assert any(t.is_alive() for t in _segment._unmapping)
    entered.clear()    # the first tap asked too
    errors = []

    def tap():
        try:
            ether.tap(config=config)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    second = threading.Thread(target=tap)
    second.start()
    try:
        assert entered.wait(20), "the second tap neither waited nor forked"
        assert forked_while_unmapping == [False], "the second tap forked while unmapping"
        gate.set()
        second.join(60)
        assert not second.is_alive() and errors == []
        assert forked_while_unmapping == [False, False]
    finally:
        gate.set()
        second.join(60)
        ether.shutdown()
    assert unmapped(10.0)
