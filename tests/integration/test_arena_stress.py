"""Many large arrays through a small arena, ordinary and loaned: none lost,
repeated, reordered or changed, including the ones subscribers keep."""
import pytest

from ether import ether

from conftest import shm_objects


@pytest.mark.timeout(120)
def test_arrays_arrive_in_order_intact_through_a_recycling_arena(monkeypatch):
    monkeypatch.setenv("ETHER_ARENA_BYTES", str(24 << 20))  # ~1 MiB frames: it recycles constantly
    ether.tap(config={"instances": {
        "streamer": {"class_path": "apps.ArrayStreamer"},
        "check1": {"class_path": "apps.ArrayChecker"},
        "check2": {"class_path": "apps.ArrayChecker", "kwargs": {"keep_every": 5, "keep_for": 9}},
    }})
    sid = ether.session
    try:
        count = 400
        with ether.listen("stream-report", timeout=60) as reports:
            assert ether.get("streamer", "stream", params={"count": count, "seed": 3},
                             timeout=90) == count
            got = [next(reports) for _ in range(2)]
        for report in got:
            assert report["problems"] == [] and report["received"] == count == report["count"]
    finally:
        ether.shutdown()
    assert shm_objects(sid) == []
