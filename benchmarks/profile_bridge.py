#!/usr/bin/env python
"""Where a bridge spends its time per small message, in one process, without zenoh.

bench_bridge.py's 64 B stream crosses four busy processes on two cores (A's
publisher, A's bridge, B's bridge, B's subscriber); this runs the two bridge
halves alone, so their per-message Python can be counted:

  out   A's side: a publisher Node sends N messages of the bench's 64 B shape
        ({"seq", "count", "run", "blob"}) into the bridge node's inbox; the
        bridge node pumps them through Outbound (its handler, the frames, one
        sample per batch) into a stand-in zenoh publisher that keeps the samples.
  in    B's side: those samples, with their attachments, go through
        Inbound.handle (the checks, the local forward) into a subscriber inbox,
        which is drained (not dispatched: that is the subscriber's own cost).

Modes
-----
  --mode time      ns per message of each side (medians of --repeat rounds)
  --mode cprofile  cProfile of one round of each side (calls and tottime)
  --mode round     one round up to --side (what callgrind runs): pub (the
                   publisher alone), out (and A's bridge), both (and B's bridge,
                   and the sink's drain). For instructions per message:
      PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=cg.out.2000 \\
          .venv/bin/python benchmarks/profile_bridge.py --mode round --side out -n 2000
      and the same at -n 6000 and for --side pub; then
      benchmarks/cgdiff.py cg.out.2000 cg.out.6000 4000 --minus cg.pub.2000 cg.pub.6000
      is A's bridge alone (both minus out: B's).
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
import types
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if os.path.join(ROOT, "src") not in sys.path:
    sys.path.insert(0, os.path.join(ROOT, "src"))

from ether._core._session import Session  # noqa: E402
from ether.bridge import _keys, _wire  # noqa: E402
from ether.bridge._inbound import Inbound  # noqa: E402
from ether.bridge._outbound import Outbound  # noqa: E402
from ether.lowlevel import Node  # noqa: E402

TOPIC = "bulk"


class _Publisher:
    """A zenoh publisher that keeps what is put (payload bytes, attachment bytes)."""

    def __init__(self, samples: list):
        self.samples = samples

    def put(self, payload, attachment=None):
        self.samples.append((bytes(payload), bytes(attachment)))

    def undeclare(self):
        pass


_ZENOH = types.SimpleNamespace(
    Priority=types.SimpleNamespace(DATA=0), Locality=types.SimpleNamespace(REMOTE=0),
    CongestionControl=types.SimpleNamespace(BLOCK=0, DROP=1))


class Rig:
    def __init__(self, session: Session, session_b: Session):
        """Two sessions: host A's (the publisher, A's bridge), host B's (its bridge, the sink)."""
        self.samples: list = []
        z = types.SimpleNamespace(declare_publisher=lambda *a, **kw: _Publisher(self.samples))
        self.publisher = Node(session, "main")
        self.bridge_a = Node(session, "bridge")
        self.outbound = Outbound(self.bridge_a, z, _ZENOH, _keys.Keys("bench", "hostA"), ["*"])
        self.outbound.update({TOPIC: "block"}, {TOPIC: frozenset({"hostB"})})
        self.bridge_b = Node(session_b, "bridge")
        self.sink = Node(session_b, "sink")
        self.sink.add_handler(TOPIC, lambda envelope: None, policy="block")
        keys_b = _keys.Keys("bench", "hostB")
        self.key = keys_b.topic(TOPIC)
        self.inbound = Inbound(self.bridge_b, None, _ZENOH, keys_b,
                               _wire.Checker(self.bridge_b.inline_limit), 1 << 28)
        self.inbound.want({TOPIC: "block"})
        self.blob = os.urandom(48)
        self.sent = 0

    def publish(self, n: int) -> None:
        pub, blob, start = self.publisher.publish, self.blob, self.sent
        for seq in range(start, start + n):
            pub(TOPIC, {"seq": seq, "count": n, "run": 1, "blob": blob})
        self.sent += n

    def out(self) -> None:
        """A's bridge: what its inbox holds, through Outbound, into samples."""
        node = self.bridge_a
        with node._consumer:
            while node.backlog():
                node.pump(0.1)

    def into(self, samples) -> None:
        handle, key = self.inbound.handle, self.key
        for payload, attachment in samples:
            handle(key, payload, attachment)

    def drain_sink(self) -> int:
        n = 0
        inbox = self.sink.inbox
        while True:
            got = inbox.drain()
            if not got:
                return n
            n += len(got)

    def close(self) -> None:
        for node in (self.publisher, self.bridge_a, self.bridge_b, self.sink):
            node.close()


def one_round(rig: Rig, n: int, side: str) -> tuple[int, int]:
    """(ns of A's side, ns of B's side) for n messages; the sink checked."""
    rig.publish(n)
    t0 = time.perf_counter_ns()
    if side in ("out", "both"):
        rig.out()
    t1 = time.perf_counter_ns()
    samples, rig.samples[:] = list(rig.samples), []
    if side == "both":
        rig.into(samples)
    t2 = time.perf_counter_ns()
    if side == "both":
        got = rig.drain_sink()
        if got != n:
            raise SystemExit(f"the sink got {got} of {n} messages")
    return t1 - t0, t2 - t1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("time", "cprofile", "round"), default="time")
    ap.add_argument("--side", choices=("pub", "out", "both"), default="both",
                    help="--mode round: how far the messages go")
    ap.add_argument("-n", type=int, default=2000, help="messages per round (the inbox must hold them)")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=1,
                    help="--mode round: this many rounds of -n (-n 1: the cost of a lone message)")
    args = ap.parse_args()
    session = Session.create(f"pa{uuid.uuid4().hex[:10]}")
    session_b = Session.create(f"pb{uuid.uuid4().hex[:10]}")
    rig = Rig(session, session_b)
    try:
        if args.mode == "round":
            for _ in range(args.rounds):   # callgrind counts the process; cgdiff cancels it
                one_round(rig, args.n, args.side)
            print(f"{args.rounds} round(s) of {args.n} messages, as far as {args.side}")
            return 0
        one_round(rig, args.n, "both")   # warm: publishers, streams, caches
        if args.mode == "cprofile":
            for side in ("out", "in"):
                rig.publish(args.n)
                prof = cProfile.Profile()
                if side == "out":
                    prof.enable()
                    rig.out()
                    prof.disable()
                    rig.samples.clear()
                else:
                    rig.out()
                    samples, rig.samples[:] = list(rig.samples), []
                    prof.enable()
                    rig.into(samples)
                    prof.disable()
                    rig.drain_sink()
                print(f"---- {side}: {args.n} messages")
                pstats.Stats(prof).sort_stats("tottime").print_stats(14)
            return 0
        outs, ins = [], []
        for _ in range(args.repeat):
            a, b = one_round(rig, args.n, "both")
            outs.append(a / args.n)
            ins.append(b / args.n)
        frames = rig.outbound.sent_frames / max(1, rig.outbound.sent_samples)
        print(f"A's bridge (inbox -> samples): {statistics.median(outs):.0f} ns/message "
              f"(min {min(outs):.0f}); B's bridge (sample -> inbox): {statistics.median(ins):.0f} "
              f"ns/message (min {min(ins):.0f}); {frames:.0f} frames per sample; "
              f"load {os.getloadavg()[0]:.1f}")
        return 0
    finally:
        rig.close()
        session.close()
        session_b.close()


if __name__ == "__main__":
    sys.exit(main())
