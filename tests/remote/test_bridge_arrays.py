"""Arrays across two simulated hosts (issue 11, tests 3), with real Ether sessions
on each (tests/bridge_host.py under `ip netns exec`) over mutual TLS: 200 float32
frames of 16 MiB from A arrive on B CRC-equal, in order and read-only; under
`drop`, every loss is counted, and the losses between the bridges are exactly
what A's bridge sent less what B's received."""
from __future__ import annotations

import threading
import time

import pytest

from .conftest import needs_netns
from .test_across import Driver, _driver
from .test_bridge_recovery import PORT, _bridge

pytest.importorskip("zenoh", reason="the bridge needs zenoh (pip install 'ether[remote]')")

FRAMES = 200
MIB = 16


def _pair(net, certs, drivers: list, b_instances=None, b_env=None) -> tuple[Driver, Driver]:
    """B listens on its address, A connects."""
    endpoint = f"tls/{net['B'].addr}:{PORT}"
    b = _driver(net["B"], drivers, env=b_env)
    b.tap({"instances": b_instances or {},
           "bridge": _bridge(certs, "hostB", listen=[endpoint])})
    a = _driver(net["A"], drivers)
    a.tap({"bridge": _bridge(certs, "hostA", connect=[endpoint])})
    return a, b


@needs_netns
@pytest.mark.timeout(240)
def test_200_frames_of_16_mib_arrive_crc_equal_in_order_and_read_only(hosts, site):
    good, _ = site
    net = hosts(2)
    drivers: list[Driver] = []
    try:
        a, b = _pair(net, good, drivers)
        b.call("record", name="frames", topic="frames")
        a.call("wait_remote_interest", topic="frames", wait=60)
        started = time.monotonic()
        crcs = a.call("pub_frames", topic="frames", count=FRAMES, mib=MIB, wait=200)
        got = b.call("recorded", name="frames", count=FRAMES, timeout=200, wait=220)
        took = time.monotonic() - started
        print(f"arrays: {FRAMES} x {MIB} MiB in {took:.1f} s "
              f"({FRAMES * MIB / 1024 / took:.2f} GiB/s)")
        assert [m["i"] for m in got] == list(range(FRAMES))
        assert [m["frame"]["crc"] for m in got] == crcs
        assert all(m["frame"]["writeable"] is False for m in got)
        assert all(m["frame"]["shape"] == [MIB << 18] and m["frame"]["dtype"] == "float32"
                   for m in got)
        stats = b.call("bridge_statistics")
        assert stats["inbound"]["gaps"] == 0 and stats["inbound"]["rejected"] == 0
    finally:
        for driver in reversed(drivers):
            driver.close()


@needs_netns
@pytest.mark.timeout(240)
def test_under_drop_every_lost_frame_is_counted(hosts, site):
    good, _ = site
    net = hosts(2)
    drivers: list[Driver] = []
    count = 40
    try:
        # B's arena holds two frames and its drop subscriber is slow (0.3 s a frame,
        # slower than A publishes), so frames must be lost.
        a, b = _pair(net, good, drivers, b_env={"ETHER_ARENA_BYTES": str(40 << 20)},
                     b_instances={"sink": {"class_path": "bridge_apps.SlowSink",
                                           "kwargs": {"seconds": 0.3}}})
        a.call("wait_remote_interest", topic="frames", wait=60)
        a.call("pub_frames", topic="frames", count=count, mib=MIB, wait=200)
        published = count

        def accounted():
            taken = b.call("get", service="sink", method="taken")
            stats_b, stats_a = b.call("bridge_statistics"), a.call("bridge_statistics")
            to_sink = sum(s["dropped"] for s in stats_b["senders"] if s["inbox"] == "sink")
            to_sink += stats_b["inbound"]["forward_errors"]   # e.g. B's arena was full
            at_a = sum(s["dropped"] for s in a.call("statistics") if s["inbox"] == "bridge")
            return taken, to_sink, at_a, stats_a["outbound"], stats_b["inbound"]

        # Until every frame is accounted for (bounded). A loss between the bridges is
        # seen as a gap once a later frame arrives: if the last ones were lost, one
        # more frame, alone on the link, shows them.
        deadline = time.monotonic() + 90
        tick = threading.Event()
        last, quiet_since = None, time.monotonic()
        while True:
            taken, to_sink, at_a, out_a, in_b = now = accounted()
            between = out_a["sent_frames"] - in_b["received"] - in_b["forward_errors"]
            if (len(taken) + to_sink + in_b["gaps"] + at_a == published
                    and between == in_b["gaps"]) or time.monotonic() > deadline:
                break
            if now != last:
                last, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since > 2.0:
                a.call("pub_frames", topic="frames", count=1, mib=MIB, start=published)
                published += 1
                quiet_since = time.monotonic()
            tick.wait(0.2)
        print(f"drop: {published} published ({published - count} after the burst): "
              f"{len(taken)} taken, {at_a} dropped at A's publisher, {in_b['gaps']} between "
              f"the bridges, {to_sink} at B's bridge ({in_b['forward_errors']} of them not "
              f"forwarded)")
        assert len(taken) + to_sink + in_b["gaps"] + at_a == published, (
            taken, to_sink, at_a, out_a, in_b)
        # Between the bridges: what A's bridge sent and B's did not receive is a gap.
        assert in_b["gaps"] == between, (out_a, in_b)
        assert taken == sorted(taken) and len(set(taken)) == len(taken)  # in order, no duplicate
        assert to_sink + in_b["gaps"] + at_a > 0  # the test made losses happen
    finally:
        for driver in reversed(drivers):
            driver.close()
