"""Large arrays travel through the publisher's shared-memory arena."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import ether as ether_pkg
from ether import ether

from conftest import shm_objects, wait_for

BIG = 1 << 20  # 1 MiB of float32: well above the inline limit


@pytest.fixture
def keepers(monkeypatch):
    monkeypatch.setenv("ETHER_ARENA_BYTES", str(16 << 20))  # small: exhaustion is reachable
    ether.tap(config={"instances": {f"k{i}": {"class_path": "apps.ArrayKeeper"} for i in range(3)}})
    sid = ether.session
    yield sid
    ether.shutdown()
    assert shm_objects(sid) == []


def test_a_large_array_reaches_three_subscribers_intact_and_read_only(keepers):
    frame = np.random.default_rng(1).standard_normal((512, 512)).astype(np.float32)
    with ether.listen("big-seen", timeout=10) as seen:
        ether.pub({"frame": frame, "seq": 1}, topic="big")
        got = [next(seen) for _ in range(3)]
    assert len({g["pid"] for g in got}) == 3
    for g in got:
        assert g["shape"] == [512, 512] and g["writeable"] is False
        assert g["sum"] == pytest.approx(float(frame.sum(dtype=np.float64)))
    assert any(n.startswith(f"ether_{keepers}_a") for n in os.listdir("/dev/shm"))  # it went by arena


def test_mutating_the_published_array_changes_nothing_received(keepers):
    frame = np.ones(BIG // 4, np.float32)
    with ether.listen("big-seen", timeout=10) as seen:
        ether.pub({"frame": frame[::1], "keep": True}, topic="big")
        frame[:] = 7
        assert [next(seen)["first"] for _ in range(3)] == [[1.0] * 4] * 3


def test_blocks_come_back_when_views_die_and_stay_while_they_live(keepers):
    frame = np.arange(256 * 1024, dtype=np.float32).reshape(512, 512)  # 1 MiB
    with ether.listen("big-seen", timeout=10) as seen:
        ether.pub({"frame": frame, "keep": True}, topic="big")
        [next(seen) for _ in range(3)]
        # 15 more 1 MiB arrays, not kept: the arena (16 MiB) recycles their blocks.
        for i in range(40):
            ether.pub({"frame": frame, "seq": i}, topic="big")
            [next(seen) for _ in range(3)]
    expected = float(frame[1:, 2:].sum(dtype=np.float64))
    for k in ("k0", "k1", "k2"):
        assert ether.get(k, "slice_sum") == pytest.approx(expected)  # the kept view is intact


def test_a_publisher_that_outruns_its_subscribers_waits_for_room(keepers):
    frame = np.zeros((3 << 20) // 4, np.float32)  # 3 MiB: five fit in the 16 MiB arena
    with ether.listen("big-seen", timeout=20) as seen:
        for seq in range(12):  # each subscriber holds a frame for 20 ms of work
            ether.pub({"frame": frame, "seq": seq, "work": 0.02}, topic="big")
        got = sorted(m["seq"] for m in (next(seen) for _ in range(36)))
    assert got == sorted(list(range(12)) * 3)


def test_an_array_larger_than_the_arena_fails_at_once_with_the_sizes(keepers):
    with pytest.raises(ether_pkg.ArenaFull, match=r"a \d+-byte array is larger than the whole \d+-byte arena"):
        ether.pub({"frame": np.zeros(5 << 20, np.float32)}, topic="big")


def test_a_killed_subscriber_gives_its_blocks_back(keepers):
    frame = np.zeros((3 << 20) // 4, np.float32)  # 3 MiB
    with ether.listen("big-seen", timeout=10) as seen:
        for _ in range(4):  # every keeper keeps 12 MiB of the 16
            ether.pub({"frame": frame, "keep": True}, topic="big")
            [next(seen) for _ in range(3)]
        for k in ("k1", "k2"):
            ether.get(k, "drop_all")
        os.kill(ether.get("k0", "pid"), signal.SIGKILL)  # k0 dies holding 4 blocks
        ether.pub({"frame": frame}, topic="big")  # the sweep clears k0's bits: room again
        got = [next(seen) for _ in range(2)]
    assert len(got) == 2


def _main_arena():
    from ether import _client
    return _client.default().node._arena


def test_a_killed_subscriber_releases_its_blocks_within_a_second_without_publishing(keepers):
    frame = np.zeros((3 << 20) // 4, np.float32)  # 3 MiB
    with ether.listen("big-seen", timeout=10) as seen:
        for _ in range(2):
            ether.pub({"frame": frame, "keep": True}, topic="big")
            [next(seen) for _ in range(3)]
    for k in ("k1", "k2"):
        ether.get(k, "drop_all")
    arena = _main_arena()
    assert arena.held()[0] == 2  # k0 still holds both blocks
    os.kill(ether.get("k0", "pid"), signal.SIGKILL)
    # Nothing is published meanwhile: the sweeper thread frees them.
    released_after = wait_for(lambda: arena.held() == (0, 0), timeout=5)
    assert released_after is not None and released_after < 1.0


def test_loaned_arrays_are_published_without_a_copy(keepers):
    ether.shutdown()
    ether.tap(config={"instances": {"pub": {"class_path": "apps.LoanPublisher"},
                                    "k": {"class_path": "apps.ArrayKeeper"}}})
    with ether.listen("big-seen", timeout=10) as seen:
        assert ether.get("pub", "publish_loans", params={"count": 20, "size": BIG // 4}) == 20
        got = sorted((m["seq"], m["first"][0]) for m in (next(seen) for _ in range(20)))
    assert got == [(i, float(i)) for i in range(20)]


def test_the_arena_of_an_instance_that_died_is_removed(keepers):
    ether.shutdown()
    ether.tap(config={"instances": {"pub": {"class_path": "apps.LoanPublisher"},
                                    "k": {"class_path": "apps.ArrayKeeper"}}})
    sid = ether.session
    with ether.listen("big-seen", timeout=10) as seen:
        assert ether.get("pub", "publish_loans", params={"count": 2, "size": BIG // 4}) == 2
        kept = [next(seen) for _ in range(2)]
    arenas = [n for n in shm_objects(sid) if n.startswith(f"ether_{sid}_a")]
    assert len(arenas) == 1  # the publisher's (the main published no array)
    os.kill(ether.get("pub", "pid"), signal.SIGKILL)
    assert wait_for(lambda: arenas[0] not in shm_objects(sid), timeout=10) is not None  # exit watcher
    assert len(kept) == 2


def test_a_view_used_after_the_session_closed_never_crashes(tmp_path):
    script = tmp_path / "after_close.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.path.join(os.path.dirname(__file__), '..')!r})
        import numpy as np
        from ether import ether
        ether.tap(config={{"instances": {{"k": {{"class_path": "apps.ArrayEcho"}}}}}})
        with ether.listen("echoes", timeout=10) as echoes:
            ether.pub({{"frame": np.full(1 << 18, 3.0), "extra": {{}}}}, topic="frames")
            frame = next(echoes)["frame"]
        ether.shutdown()
        print(float(frame.sum()), frame.flags.writeable)
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(3.0 * (1 << 18)), "False"]


def test_a_configured_arena_larger_than_dev_shm_fails_at_tap(monkeypatch):
    free = os.statvfs("/dev/shm").f_bavail * os.statvfs("/dev/shm").f_frsize
    monkeypatch.setenv("ETHER_ARENA_BYTES", str(free + (1 << 30)))
    with pytest.raises(ether_pkg.ShmSpaceError, match=r"the array arena \(ETHER_ARENA_BYTES\) needs \d+ bytes"
                       r" of shared memory but /dev/shm has only \d+ available.*--shm-size"):
        ether.tap(config={"instances": {"k": {"class_path": "apps.ArrayKeeper"}}})
    assert ether.session is None


def test_large_arrays_in_requests_and_replies():
    ether.tap(config={"instances": {"svc": {"class_path": "apps.ArrayService"}}})
    try:
        for _ in range(5):  # replies and requests each get blocks held by their receiver
            reply = ether.get("svc", "make", params={"n": 1 << 18})  # 2 MiB
            assert reply["a"].shape == (1 << 18,) and float(reply["a"][-1]) == 7.0
            assert not reply["a"].flags.writeable
            assert ether.get("svc", "total", params={"a": np.ones(1 << 18)}) == float(1 << 18)
    finally:
        ether.shutdown()


@pytest.fixture
def policy_keeper(monkeypatch):
    monkeypatch.setenv("ETHER_ARENA_BYTES", str(16 << 20))  # five 3 MiB arrays fit
    ether.tap(config={"instances": {"pk": {"class_path": "apps.PolicyKeeper"}}})
    sid = ether.session
    yield sid
    ether.shutdown()
    assert shm_objects(sid) == []


def _fill(topic: str, frame, seen) -> None:
    for seq in range(5):
        assert ether.pub({"frame": frame, "seq": seq}, topic=topic) == 1
    assert sorted(next(seen)["seq"] for _ in range(5)) == list(range(5))


def test_a_full_arena_drops_and_counts_for_a_drop_subscriber(policy_keeper):
    frame = np.zeros((3 << 20) // 4, np.float32)
    with ether.listen("kept", timeout=10) as seen:
        _fill("keep-drop", frame, seen)
        started = time.monotonic()
        assert ether.pub({"frame": frame, "seq": 5}, topic="keep-drop") == 0  # dropped at once
        assert time.monotonic() - started < 2.0  # not the 5 s a block subscription would wait
        stats = [s for s in ether.statistics() if s.inbox == "pk" and s.policy == "drop"]
        assert [s.dropped for s in stats] == [1]
        ether.get("pk", "drop_all")  # the subscriber lets go: room again
        assert ether.pub({"frame": frame, "seq": 6}, topic="keep-drop") == 1
        assert next(seen)["seq"] == 6


def test_a_full_arena_blocks_for_a_block_subscriber_then_raises(policy_keeper):
    frame = np.zeros((3 << 20) // 4, np.float32)
    with ether.listen("kept", timeout=10) as seen:
        _fill("keep-block", frame, seen)
        started = time.monotonic()
        with pytest.raises(ether_pkg.ArenaFull, match=r"no room for a 3145728-byte array"):
            ether.pub({"frame": frame, "seq": 5}, topic="keep-block")
        assert time.monotonic() - started >= 0.29  # it waited the subscription's 0.3 s
        ether.get("pk", "drop_all")
        assert ether.pub({"frame": frame, "seq": 6}, topic="keep-block") == 1
        assert next(seen)["seq"] == 6


def test_a_loan_published_again_while_still_held_reaches_everyone(keepers):
    frame = ether.empty((BIG // 4,), np.float32)
    frame[:] = 1
    with ether.listen("big-seen", timeout=10) as seen:
        ether.pub({"frame": frame, "keep": True, "seq": 1}, topic="big")  # the keepers hold it
        assert sorted(m["seq"] for m in (next(seen) for _ in range(3))) == [1, 1, 1]
        frame[:] = 2
        ether.pub({"frame": frame, "seq": 2}, topic="big")  # one bit cannot hold it twice: a copy
        got = [next(seen) for _ in range(3)]
    assert [(m["seq"], m["first"]) for m in got] == [(2, [2.0] * 4)] * 3


def test_a_loan_received_by_its_own_process_keeps_its_block(keepers):
    loan = ether.empty((BIG // 4,), np.float32)
    loan[:] = 5
    with ether.listen("big", timeout=10) as mine:
        ether.pub({"frame": loan, "seq": 1}, topic="big")
        received = next(mine)["frame"]
    assert float(received[0]) == 5.0
    del received  # the main's own view goes: the loan must keep its block
    others = [ether.empty((BIG // 4,), np.float32) for _ in range(4)]
    for i, other in enumerate(others):
        other[:] = 100 + i
    assert float(loan.min()) == float(loan.max()) == 5.0


def _tap_small(monkeypatch, class_path: str) -> str:
    monkeypatch.setenv("ETHER_ARENA_BYTES", str(16 << 20))
    ether.tap(config={"instances": {"s": {"class_path": class_path}}})
    return ether.session


def test_blocks_come_back_when_no_handler_takes_the_array(monkeypatch):
    sid = _tap_small(monkeypatch, "apps.FrameIgnorer")
    try:
        frame = np.zeros((3 << 20) // 4, np.float32)  # 3 MiB: five fit
        with ether.listen("big-seen", timeout=10) as seen:
            for seq in range(12):
                ether.pub({"seq": seq, "frame": frame}, topic="big")  # no frame parameter
                assert next(seen)["seq"] == seq
            for seq in range(12):  # a message that fails validation releases them too
                ether.pub({"seq": "not a number", "frame": frame}, topic="big")
            ether.pub({"seq": 99, "frame": frame}, topic="big")
            assert next(seen)["seq"] == 99
    finally:
        ether.shutdown()
    assert shm_objects(sid) == []


def test_every_handler_of_a_topic_in_one_process_gets_the_array(monkeypatch):
    sid = _tap_small(monkeypatch, "apps.TwoFrameHandlers")
    try:
        with ether.listen("big-seen", timeout=10) as seen:
            for seq in range(3):
                ether.pub({"seq": seq, "frame": np.full(1 << 18, seq, np.float32)}, topic="big")
            got = sorted((m["who"], m["seq"], m["value"]) for m in (next(seen) for _ in range(6)))
        assert got == sorted((who, seq, float(seq)) for who in ("first", "second") for seq in range(3))
    finally:
        ether.shutdown()
    assert shm_objects(sid) == []


def test_subscribe_and_listen_in_one_process_both_get_the_array(monkeypatch):
    sid = _tap_small(monkeypatch, "apps.FrameIgnorer")
    try:
        values = []
        done = threading.Event()

        def on_big(message):
            values.append(float(message["frame"][0]))
            done.set()

        unsubscribe = ether.subscribe("big", on_big)
        with ether.listen("big", timeout=10) as mine:
            ether.pub({"seq": 1, "frame": np.full(1 << 18, 4.0, np.float32)}, topic="big")
            assert float(next(mine)["frame"][0]) == 4.0
        assert done.wait(10) and values == [4.0]
        unsubscribe()
    finally:
        ether.shutdown()
    assert shm_objects(sid) == []


def test_a_forked_child_dropping_its_copies_does_not_free_the_parents_arrays(monkeypatch):
    sid = _tap_small(monkeypatch, "apps.FrameIgnorer")
    try:
        with ether.listen("big", timeout=10) as mine:
            ether.pub({"seq": 1, "frame": np.full(1 << 19, 1.0, np.float32)}, topic="big")
            kept = next(mine)["frame"]
            loan = ether.empty((1 << 19,), np.float32)
            loan[:] = 2.0
            pid = os.fork()
            if pid == 0:  # the child drops its copies of the view and of the loan
                del kept, loan
                import gc
                gc.collect()
                os._exit(0)
            assert os.waitpid(pid, 0)[1] == 0
            for value in (7.0, 8.0, 9.0):  # blocks freed by the child would be reused here
                ether.pub({"seq": 2, "frame": np.full(1 << 19, value, np.float32)}, topic="big")
                next(mine)
                other = ether.empty((1 << 19,), np.float32)
                other[:] = value
        assert float(kept.min()) == float(kept.max()) == 1.0
        assert float(loan.min()) == float(loan.max()) == 2.0
    finally:
        ether.shutdown()
    assert shm_objects(sid) == []
