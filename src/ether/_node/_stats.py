"""The stats topic: a node's counters, published about once a second on
STATS_TOPIC, and only while some inbox subscribes to it.

What a watcher (`ether ps`, `ether top`, `ether monitor`, /metrics) cannot read
from shared memory lives in the process: what it published per topic, what it
handled, what its handlers raised and how long they took. A thread per node
(started by the runtime after its forks, `Node.start_stats`) reads the
directory's generation every POLL_S (one load, no lock); once it has settled
after a change (unchanged SETTLE_S later), it looks up STATS_TOPIC's route
again, and while that has a subscriber it publishes a snapshot at once and then every PERIOD_S, through the
node's direct lane, so a user publish waiting for room never holds it up. While
instances join or leave (tap, shutdown) it stays off the directory's lock, and
once the session stops it publishes nothing.

While nobody watches, publish costs one test (`lane.counts is None`) and dispatch
nothing. While watched, each lane counts what it sends per topic (messages, and
bytes with arena arrays at their size: two dict operations in publish), and the
handlers are timed in a *sample*: from each report for SAMPLE_S (to the next
poll, so 0.05-0.08 s) the node gets a timing `_deliver_kind` (undone when the
window ends, once it timed at least one message, so a slow handler is timed
too), which keeps the timer's cost (two clock reads and a histogram a message)
to 5-10 % of the messages.
So the per-topic counts cover the time the node was watched (`watched_ns` says
since when) and the handler times a sample of it; `published`, `handled` and
the rejections are the node's own totals.

Payload (a MessagePack map; STATS_VERSION bumps on an incompatible change):
    version, instance, pid, time_ns, watched_ns, published, handled, skipped,
    rejected: [[topic, reason, count], ...]        (handler errors: "handler raised ...")
    topics: {topic: published while watched}
    topic_bytes: {topic: bytes published while watched, arena arrays at their size}
    topic_drops: {topic: messages full drop-policy inboxes refused (all along)}
    drops: [[inbox, topic, count], ...]   (the same, per receiving inbox)
    senders: [[inbox, policy, sent, dropped, blocked], ...]   (what it sent, per inbox)
    handler_seconds: {topic: [count, sum_s, [count per bucket of BUCKETS_S]]}   (a sample)
"""
from __future__ import annotations

import bisect
import os
import threading
import time

from . import _codec as codec

__all__ = ["STATS_TOPIC", "STATS_VERSION", "BUCKETS_S", "POLL_S", "SETTLE_S", "PERIOD_S", "SAMPLE_S",
           "StatsPublisher"]

STATS_TOPIC = "ether/stats"
STATS_VERSION = 1
POLL_S = 0.03     # how soon a new watcher is noticed (`ether ps` waits for it)
SETTLE_S = 0.01   # after a change of the directory: how soon to look whether it settled
PERIOD_S = 1.0    # how often a watched node publishes
SAMPLE_S = 0.05   # after each report, how long its handlers are timed (at least until the next poll)
# Handler time buckets (upper bounds, seconds), as Prometheus histograms take them.
BUCKETS_S = (1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)


class _Histogram:
    __slots__ = ("count", "sum", "buckets")

    def __init__(self) -> None:
        self.count, self.sum, self.buckets = 0, 0.0, [0] * (len(BUCKETS_S) + 1)

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.sum += seconds
        self.buckets[bisect.bisect_left(BUCKETS_S, seconds)] += 1


class StatsPublisher:
    def __init__(self, node):
        self.node = node
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._counts: dict[str, list[int]] = {}   # topic -> [messages, bytes] (the user lane's)
        self._times: dict[str, _Histogram] = {}
        self._timed = 0            # messages timed so far (the sample window ends after one)
        self._timing_until = None  # while timing: when the window ends
        self._watched_ns = 0
        self._watching = False

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"ether-stats-{self.node.name}",
                                            daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(2.0)
        self._unwatch()

    # ---- the thread ----

    def _run(self) -> None:
        node, lane = self.node, self.node._direct
        directory = node.session._directory
        next_at = 0.0
        seen = resolved = None
        watched = False
        pause = POLL_S
        timed_at = 0
        while not self._stop.wait(pause):
            pause = POLL_S
            if node.closed:
                return
            if node.stopping:  # the session shuts down: nobody needs figures now
                self._unwatch()
                continue
            try:
                # Re-read the route only once the directory has settled: while
                # instances join or leave (tap, shutdown), its lock is not ours to contend.
                generation = directory.generation()
                if generation != seen:
                    seen, pause = generation, SETTLE_S
                    continue
                if generation != resolved:
                    with lane.lock:
                        watched = bool(lane.router.targets(STATS_TOPIC))
                    resolved = generation
                if not watched:
                    self._unwatch()
                    continue
                if not self._watching:
                    self._watch()
                    next_at = 0.0  # a new watcher hears at once
                now = time.monotonic()
                until = self._timing_until
                if until is not None and now >= until and self._timed > timed_at:
                    self._stop_timing()
                if now < next_at:
                    continue
                next_at = now + PERIOD_S
                if self._timing_until is None:
                    timed_at = self._timed
                    self._start_timing(now + SAMPLE_S)
                payload = self.snapshot()  # takes both lanes' locks: not under one
                with lane.lock:
                    targets = lane.router.targets(STATS_TOPIC)
                    if targets:
                        data = lane.encode_for(targets, node._envelope(codec.MESSAGE, STATS_TOPIC, payload))
                        lane.send_rest(STATS_TOPIC, targets, data, 0, None, 0)
            except Exception:  # an inbox that closed meanwhile, a session going away
                resolved = None
                if node.closed:
                    return

    # ---- switching the instrumentation ----

    def _watch(self) -> None:
        lane = self.node._user
        with lane.lock:
            lane.array_bytes = 0
            lane.counts = self._counts
        if not self._watched_ns:
            self._watched_ns = time.time_ns()
        self._watching = True

    def _unwatch(self) -> None:
        if not self._watching:
            return
        lane = self.node._user
        with lane.lock:
            lane.counts = None
        self._stop_timing()
        self._watching = False

    def _start_timing(self, until: float) -> None:
        """Time the handlers of the messages dispatched from now until `until` (and
        at least one): the node's `_deliver_kind`, shadowed by a timing one."""
        node = self.node
        plain = type(node)._deliver_kind.__get__(node)
        times, clock, message = self._times, time.perf_counter, codec.MESSAGE

        def timed(envelope) -> None:
            if envelope.kind != message:
                return plain(envelope)
            start = clock()
            try:
                plain(envelope)
            finally:
                hist = times.get(envelope.topic)
                if hist is None:
                    hist = times[envelope.topic] = _Histogram()
                hist.observe(clock() - start)
                self._timed += 1

        self._timing_until = until
        node._deliver_kind = timed  # shadows the method during the window

    def _stop_timing(self) -> None:
        self._timing_until = None
        self.node.__dict__.pop("_deliver_kind", None)

    # ---- the payload ----

    def snapshot(self) -> dict:
        node = self.node
        return {
            "version": STATS_VERSION, "instance": node.name, "pid": os.getpid(),
            "time_ns": time.time_ns(), "watched_ns": self._watched_ns,
            "published": node.published, "handled": node.handled, "skipped": node.skipped,
            "rejected": [list(r) for r in node.rejections.counts()],
            "topics": {t: c[0] for t, c in list(self._counts.items())},
            "topic_bytes": {t: c[1] for t, c in list(self._counts.items())},
            "topic_drops": _drops_per_topic(node.drops.by_sender),
            "drops": [[inbox, topic, n] for inbox, topics in node.drops.counts.items()
                      for topic, n in topics.items()],
            "senders": [[s.inbox, s.policy, s.sent, s.dropped, s.blocked]
                        for s in node.statistics() if s.inbox != node.name],
            "handler_seconds": {t: [h.count, h.sum, list(h.buckets)]
                                for t, h in list(self._times.items())},
        }


def _drops_per_topic(by_sender: dict) -> dict[str, int]:
    out: dict[str, int] = {}
    for (_sender, topic), n in list(by_sender.items()):
        out[topic] = out.get(topic, 0) + n
    return out
