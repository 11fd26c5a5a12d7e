#!/usr/bin/env python
"""The recorder's per-message cost on its own: a Recorder on a node of a private
session, fed batches of wire envelopes like bench_record.py's Burst publishes
(small dicts on one topic, caused by a start) through the node's dispatch and
after_batch, as the node's loop would: no other process, no inbox wait.

    .venv/bin/python benchmarks/profile_recorder.py [--n N] [--batch B] [--profile]
    valgrind --tool=callgrind --callgrind-out-file=OUT .venv/bin/python \
        benchmarks/profile_recorder.py --n 20000 --callgrind

Prints ns per message (wall, best of --rounds). --profile: cProfile's top
functions. --callgrind: the timed part only is counted (CALLGRIND_START/STOP
are not available from Python: subtract a --setup-only run of the same --n).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from ether import lowlevel
from ether.record import Recorder
from ether._node._node import Node  # a private node: the harness, not the recorder


def wire_batches(n, batch, topic="tick"):
    """Envelopes as Node.publish encodes them (11 fields, the holds empty)."""
    enc = lowlevel.Encoder().encode
    cause = trace = ("main", 1)
    t0 = time.time_ns()
    items = [enc((lowlevel.WIRE_VERSION, lowlevel.MESSAGE, topic, "burst", i + 1, t0 + i, cause,
                  trace, None, {"seq": i, "name": "sensor-1", "value": i * 0.5}, []))
             for i in range(n)]
    return [items[at:at + batch] for at in range(0, n, batch)]


class Harness:
    def __init__(self, out):
        self.session = lowlevel.Session.create()
        self.node = Node(self.session, "recorder")
        self.client = lowlevel.Client(self.node)
        self.recorder = Recorder(out, topics=["tick"], client=self.client)

    def run(self, batches):
        node = self.node
        for b in batches:
            node.dispatch(b)
            node.after_batch()

    def close(self):
        self.recorder.close()
        self.node.close()
        self.session.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=200000)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--callgrind", action="store_true")
    p.add_argument("--setup-only", action="store_true",
                   help="build the batches and stop: the baseline to subtract from a --callgrind count")
    args = p.parse_args()
    os.environ.setdefault("ETHER_LOG_DIR", tempfile.mkdtemp(prefix="ether-prof-logs-"))
    with tempfile.TemporaryDirectory() as tmp:
        h = Harness(tmp)
        try:
            batches = wire_batches(args.n, args.batch)
            if args.callgrind:
                if not args.setup_only:
                    h.run(batches)
                return
            if args.profile:
                import cProfile
                import pstats
                pr = cProfile.Profile()
                pr.enable()
                h.run(batches)
                pr.disable()
                pstats.Stats(pr).sort_stats("tottime").print_stats(15)
                return
            best = None
            for _ in range(args.rounds):
                t = time.perf_counter()
                h.run(batches)
                dt = time.perf_counter() - t
                best = dt if best is None else min(best, dt)
            print(f"{best / args.n * 1e9:.0f} ns/message (best of {args.rounds}, n={args.n}, "
                  f"batch={args.batch}); {h.recorder._writer.messages} messages written")
        finally:
            h.close()


if __name__ == "__main__":
    sys.exit(main())
