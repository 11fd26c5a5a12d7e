"""Arrays and garbage across two hosts over loopback: 50 frames of 4 MiB arrive
CRC-equal, in order and read-only; under `drop`, every loss is counted
somewhere; 10,000 malformed samples from a raw zenoh peer are refused and
counted while valid traffic flows."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)
from bridge_driver import loopback_pair  # noqa: E402

pytest.importorskip("zenoh", reason="the bridge needs zenoh (pip install 'ether[remote]')")


@pytest.fixture
def pair():
    """Two hosts over loopback (A connects, B listens): bridge_driver.loopback_pair."""
    yield from loopback_pair()


@pytest.mark.timeout(240)
def test_fifty_frames_of_4_mib_arrive_crc_equal_in_order_and_read_only(pair):
    make, bridge_a, bridge_b = pair
    b = make("B")
    b.tap({"bridge": bridge_b})
    b.call("record", name="frames", topic="frames")
    a = make("A")
    a.tap({"bridge": bridge_a})
    a.call("wait_remote_interest", topic="frames")
    crcs = a.call("pub_frames", topic="frames", count=50, mib=4, wait=180)
    got = b.call("recorded", name="frames", count=50, timeout=180, wait=200)
    assert [m["i"] for m in got] == list(range(50))
    assert [m["frame"]["crc"] for m in got] == crcs
    assert all(m["frame"]["writeable"] is False for m in got)
    assert all(m["frame"]["shape"] == [1 << 20] and m["frame"]["dtype"] == "float32" for m in got)
    stats = b.call("bridge_statistics")
    assert stats["inbound"]["gaps"] == 0 and stats["inbound"]["rejected"] == 0


@pytest.mark.timeout(240)
def test_under_drop_every_lost_frame_is_counted(pair):
    make, bridge_a, bridge_b = pair
    # B's arenas are small and its drop subscriber slow (0.5 s a frame, slower than a
    # loaded machine publishes), so B's bridge must drop frames.
    b = make("B", env={"ETHER_ARENA_BYTES": str(24 << 20)})
    b.tap({"instances": {"sink": {"class_path": "bridge_apps.SlowSink", "kwargs": {"seconds": 0.5}}},
           "bridge": bridge_b})
    a = make("A")
    a.tap({"bridge": bridge_a})
    a.call("wait_remote_interest", topic="frames")
    a.call("pub_frames", topic="frames", count=50, mib=4, wait=180)

    def accounted():
        taken = b.call("get", service="sink", method="taken")
        stats = b.call("bridge_statistics")
        to_sink = sum(s["dropped"] for s in stats["senders"] if s["inbox"] == "sink")
        at_a = sum(s["dropped"] for s in a.call("statistics") if s["inbox"] == "bridge")
        return taken, to_sink, stats["inbound"]["gaps"], at_a

    deadline = time.monotonic() + 120
    tick = threading.Event()
    while True:
        taken, to_sink, gaps, at_a = accounted()
        if len(taken) + to_sink + gaps + at_a >= 50 or time.monotonic() > deadline:
            break
        tick.wait(0.2)
    assert len(taken) + to_sink + gaps + at_a == 50, (taken, to_sink, gaps, at_a)
    assert taken == sorted(taken) and len(set(taken)) == len(taken)  # in order, no duplicate
    assert to_sink + gaps + at_a > 0  # the test made losses happen
    # The losses between the bridges show in ether.statistics() of B's main too.
    (link,) = [s for s in b.call("statistics") if s["inbox"] == "bridge@hostA"]
    assert (link["policy"], link["dropped"]) == ("drop", gaps)
    assert link["sent"] == b.call("bridge_statistics")["inbound"]["received"]


@pytest.mark.timeout(240)
def test_ten_thousand_malformed_samples_are_refused_and_counted_while_valid_traffic_flows(pair):
    make, bridge_a, bridge_b = pair
    b = make("B")
    b.tap({"bridge": bridge_b})
    b.call("record", name="x", topic="x")
    a = make("A")
    a.tap({"bridge": bridge_a})
    a.call("wait_remote_interest", topic="x")
    raw = subprocess.Popen([sys.executable, os.path.join(HERE, "bridge_raw_peer.py"),
                            bridge_b["listen"][0], bridge_b["site"], "x", "10000"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        for n in range(200):
            a.call("pub", topic="x", data={"n": n})
        sent = json.loads(raw.stdout.readline())
        assert sum(sent.values()) == 10000
        assert [m["n"] for m in b.call("recorded", name="x", count=200, timeout=60)] == list(range(200))
        deadline = time.monotonic() + 60
        tick = threading.Event()
        while b.call("bridge_statistics")["inbound"]["rejected"] < 10000 and time.monotonic() < deadline:
            tick.wait(0.1)
        stats = b.call("bridge_statistics")
        assert stats["inbound"]["rejected"] == 10000
    finally:
        raw.stdin.close()
        try:
            raw.wait(30)
        except subprocess.TimeoutExpired:
            raw.kill()
            raw.wait(5)
        raw.stdout.close()
    assert stats["inbound"]["received"] == 200
    # Counted per kind of failure; the log names the peer (the host it claims).
    assert sum(n for topic, reason, n in stats["rejections"] if reason.endswith("sample")) == 10000
    # The bridge still carries traffic afterwards.
    a.call("pub", topic="x", data={"n": 200})
    assert b.call("recorded", name="x", count=201, timeout=30)[-1]["n"] == 200
