"""Ordinary classes that ``bench_pipeline.py`` runs as Ether instances.

The config names them by class_path (``_pipeline_apps.TickPublisher``); the
instance processes are forked from the benchmark's main process and import this
module through its sys.path (benchmarks/ is sys.path[0] there).

TickPublisher  on ether.start(): calls its own @ether_pub(topic="tick") method
               `count` times (each call builds one small dict, and Ether
               publishes the result), then publishes a "pub_done" message with
               its clock readings.
TickCounter    @ether_sub(topic="tick") with type hints: counts the messages,
               checks their order and records the first and last arrival time;
               on "pub_done" (sent by the same publisher after its last tick, so
               it arrives after every tick that made it) it publishes one "done"
               message with everything the main process needs.

Fan-out (P4): one TickPublisher and three TickCounter instances (`ident` names
each in its "done" message); every tick goes to all three inboxes.

Chain (P5), the Quick Start shape: TickPublisher -> ChainStage1 -> ChainStage2
-> ChainSink.  Each stage's @ether_sub handler is also an @ether_pub method: its
return value (the tick, rebuilt from its typed arguments) is published to the
next topic ("tick" -> "hop1" -> "hop2").  The end marker travels the same way
("pub_done" -> "hop1_done" -> "hop2_done"), behind every tick of its stage.
"""
from __future__ import annotations

import time

from ether import ether, ether_pub, ether_start, ether_sub

NAME = "sensor-1"


class TickPublisher:
    def __init__(self, count: int = 1000):
        self.count = count

    @ether_pub(topic="tick")
    def tick(self, seq: int) -> dict:
        return {"seq": seq, "t": time.perf_counter(), "name": NAME, "value": seq * 0.5}

    @ether_start()
    def run(self) -> None:
        tick = self.tick              # the publishing wrapper Ether bound to this instance
        clock = time.perf_counter_ns
        t0 = clock()
        for seq in range(self.count):
            tick(seq)
        t_sent = clock()
        ether.pub({"count": self.count, "t0_ns": t0, "t_sent_ns": t_sent}, topic="pub_done")


class _Tally:
    """What a counter keeps and reports (no handlers: subclasses subscribe)."""

    def __init__(self, ident: str = "counter") -> None:
        self.ident = ident
        self.received = 0
        self.next_seq = 0
        self.violations = 0
        self.bad_fields = 0
        self.first_ns = 0
        self.last_ns = 0

    def count(self, seq: int, name: str, value: float) -> None:
        """Take one tick: its arrival time, order and fields."""
        now = time.perf_counter_ns()
        if self.received == 0:
            self.first_ns = now
        self.last_ns = now
        if seq != self.next_seq:
            self.violations += 1
        if name != NAME or value != seq * 0.5:
            self.bad_fields += 1
        self.next_seq = seq + 1
        self.received += 1

    def report(self, count: int, t0_ns: int, t_sent_ns: int) -> None:
        ether.pub({"ident": self.ident, "received": self.received, "sent": count,
                   "violations": self.violations, "bad_fields": self.bad_fields,
                   "last_seq": self.next_seq - 1, "first_ns": self.first_ns,
                   "last_ns": self.last_ns, "t0_ns": t0_ns, "t_sent_ns": t_sent_ns}, topic="done")


class TickCounter(_Tally):
    @ether_sub(topic="tick")
    def on_tick(self, seq: int, t: float, name: str, value: float) -> None:
        self.count(seq, name, value)

    @ether_sub(topic="pub_done")
    def on_pub_done(self, count: int, t0_ns: int, t_sent_ns: int) -> None:
        self.report(count, t0_ns, t_sent_ns)


def _chain_stage(source: str, target: str):
    """A stage of the chain: each tick on `source` goes on, as it came, to `target`
    (and its end, `{source}_done` or pub_done, to `{target}_done`)."""

    class Stage:
        @ether_sub(topic=source)
        @ether_pub(topic=target)
        def on_tick(self, seq: int, t: float, name: str, value: float) -> dict:
            return {"seq": seq, "t": t, "name": name, "value": value}

        @ether_sub(topic="pub_done" if source == "tick" else f"{source}_done")
        @ether_pub(topic=f"{target}_done")
        def on_done(self, count: int, t0_ns: int, t_sent_ns: int) -> dict:
            return {"count": count, "t0_ns": t0_ns, "t_sent_ns": t_sent_ns}

    return Stage


ChainStage1 = _chain_stage("tick", "hop1")
ChainStage1.__name__ = ChainStage1.__qualname__ = "ChainStage1"
ChainStage2 = _chain_stage("hop1", "hop2")
ChainStage2.__name__ = ChainStage2.__qualname__ = "ChainStage2"


class ChainSink(_Tally):
    """TickCounter at the end of the chain: the same body, on the last stage's topics."""

    @ether_sub(topic="hop2")
    def on_tick(self, seq: int, t: float, name: str, value: float) -> None:
        self.count(seq, name, value)

    @ether_sub(topic="hop2_done")
    def on_done(self, count: int, t0_ns: int, t_sent_ns: int) -> None:
        self.report(count, t0_ns, t_sent_ns)
