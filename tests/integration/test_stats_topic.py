"""The stats topic: a node publishes its counters only while someone subscribes,
and counts per topic and times a sample of its handlers only then (one test on
the publish path otherwise)."""
from __future__ import annotations

import pytest

from ether import lowlevel
from ether.lowlevel import STATS_TOPIC, Node

from conftest import wait_for


@pytest.mark.timeout(30)
def test_counters_flow_only_while_watched(session):
    publisher = Node(session, "pub")
    worker = Node(session, "worker")
    watcher = Node(session, "watcher")
    try:
        seen = []
        worker.add_handler("x", lambda envelope: seen.append(envelope.seq))
        publisher.start_stats()
        worker.start_stats()
        assert publisher._user.counts is None  # not watched: nothing counted per topic
        assert "_deliver_kind" not in vars(worker)  # and the methods as they are

        reports = []
        on_stats = lambda envelope: reports.append(watcher.decoders.payload_dict(envelope))  # noqa: E731
        watcher.add_handler(STATS_TOPIC, on_stats, policy="drop")

        def heard(name):
            return lambda: any(r["instance"] == name for r in reports)
        for name in ("pub", "worker"):
            watcher.wait_until(heard(name), 5.0, describe=lambda: f"no stats from {name}")
        assert publisher._user.counts is not None
        # A timing window opened with the first report, and stays open until it timed one.
        assert "_deliver_kind" in vars(worker)

        for n in range(10):
            publisher.publish("x", {"n": n})
        worker.wait_until(lambda: len(seen) == 10, 5.0, describe=lambda: f"{len(seen)} of 10 handled")
        del reports[:]

        def counted():
            last = {r["instance"]: r for r in reports}
            return (last.get("pub", {}).get("topics", {}).get("x") == 10
                    and last.get("worker", {}).get("handler_seconds", {}).get("x", [0])[0] >= 1)
        watcher.wait_until(counted, 5.0, describe=lambda: f"reports: {reports[-2:]}")
        last = {r["instance"]: r for r in reports}
        assert last["pub"]["published"] == 10 and last["worker"]["handled"] == 10
        count, total, buckets = last["worker"]["handler_seconds"]["x"]  # a sample of the ten
        assert 1 <= count <= 10 and sum(buckets) == count and total > 0
        assert len(buckets) == len(lowlevel.STATS_BUCKETS_S) + 1
        assert last["pub"]["topic_bytes"]["x"] > 10 * len(b"\x81\xa1n\x00")  # envelopes, not payloads
        assert ["worker", "block", 10, 0, 0] in last["pub"]["senders"]

        watcher.remove_handler(STATS_TOPIC, on_stats)  # nobody watches: back to the plain path
        assert wait_for(lambda: publisher._user.counts is None
                        and "_deliver_kind" not in vars(worker), 5.0) is not None
    finally:
        for node in (watcher, worker, publisher):
            node.close()


@pytest.mark.timeout(60)
def test_drops_are_reported_per_receiving_inbox_and_topic(session):
    publisher = Node(session, "pub")
    lagging = Node(session, "lag")   # never reads its inbox: it fills, then refuses
    watcher = Node(session, "watcher")
    try:
        lagging.add_handler("d", lambda envelope: None, policy="drop")
        publisher.start_stats()
        reports = []
        on_stats = lambda envelope: reports.append(watcher.decoders.payload_dict(envelope))  # noqa: E731
        watcher.add_handler(STATS_TOPIC, on_stats, policy="drop")
        watcher.wait_until(lambda: any(r["instance"] == "pub" for r in reports), 5.0,
                           describe=lambda: "no stats from pub")
        sent = 0
        while publisher.publish("d", {"n": sent}) == 1:  # until the inbox is full
            sent += 1
            assert sent < 1_000_000
        for n in range(99):
            assert publisher.publish("d", {"n": n}) == 0
        assert publisher.drops.counts == {"lag": {"d": 100}}

        def reported():
            last = [r for r in reports if r["instance"] == "pub"][-1]
            return ["lag", "d", 100] in last["drops"] and last["topic_drops"] == {"d": 100}
        watcher.wait_until(reported, 5.0, describe=lambda: f"reports: {reports[-1:]}")
        assert lagging.inbox.statistics().dropped == 100  # the ring's own count agrees
    finally:
        for node in (watcher, lagging, publisher):
            node.close()
