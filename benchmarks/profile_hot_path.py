#!/usr/bin/env python
"""Where one decorated publish and one delivery spend their time, in one process.

A publisher Node and a subscriber Node share one session, one process and one
thread. The publisher runs P1's TickPublisher.tick (an @ether_pub method bound
by Ether's own bind()); the subscriber P1's TickCounter (its @ether_sub handler
bound the same way). One round publishes N ticks (the inbox takes them all),
then pumps the subscriber's inbox until the N are handled. No other process
and no waiting, so the work is deterministic.

Modes
-----
  --mode round   N messages once (what callgrind runs: see below)
  --mode steps   perf_counter_ns of each step of the path, measured by the
                 step alone in a loop (medians of --repeat), next to a whole
                 publish and a whole delivery
  --mode cprofile  cProfile of ROUNDS rounds (calls per message, tottime)

Instruction counts per message, from two values of N (the fixed costs cancel):
  PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=cg.publish.1000 \\
      .venv/bin/python benchmarks/profile_hot_path.py --mode round --side publish -n 1000
  ... the same for --side publish/both and -n 1000/3000, then benchmarks/cgdiff.py
  (docs/design/hot-path.md has the exact lines). --mode round prints what it did
  (messages handled, order violations, wrong fields), so a run can be checked.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import _pipeline_apps  # noqa: E402
from ether._core._session import Session  # noqa: E402
from ether._node import _codec as codec  # noqa: E402
from ether._node._node import Node  # noqa: E402
from ether._spec._bind import bind  # noqa: E402
from ether._spec._introspect import introspect  # noqa: E402


def rig(session):
    """(publisher object, its node, counter object, its node), bound as Ether binds them."""
    pub_node = Node(session, "publisher")
    sub_node = Node(session, "counter")
    counter = _pipeline_apps.TickCounter()
    bind(counter, introspect(_pipeline_apps.TickCounter), sub_node, "counter")
    publisher = _pipeline_apps.TickPublisher(0)
    bind(publisher, introspect(_pipeline_apps.TickPublisher), pub_node, "publisher")
    return publisher, pub_node, counter, sub_node


def publish_n(tick, start: int, n: int) -> None:
    for seq in range(start, start + n):
        tick(seq)


def deliver_n(node, counter, n: int) -> None:
    target = counter.received + n
    while counter.received < target:
        node.pump(0.0)


def one_round(publisher, sub_node, counter, n: int) -> None:
    publish_n(publisher.tick, counter.next_seq, n)
    deliver_n(sub_node, counter, n)


def steps(publisher, pub_node, counter, sub_node, n: int, repeat: int) -> None:
    """Each step of the path alone, n times per sample, median ns per message."""
    import msgspec
    lane = pub_node._user
    topic = "tick"
    targets = lane.router.targets(topic)
    sender = targets[0]
    method = publisher.tick.__wrapped__
    payload = method(1)
    fields = (1, 0, topic, "publisher", 1, time.time_ns(), None, None, None, payload, [])
    data = lane.encode(fields)
    envelope = codec.decode(data)
    handler = sub_node._handlers[topic][0]
    # the handler's closure: decode (positional) and the bound method
    cells = {name: c.cell_contents for name, c in
             zip(handler.__code__.co_freevars, handler.__closure__)}
    decode = cells["decode"]
    bound_method = cells["method"]
    args = decode(envelope.payload)
    handling = pub_node._handling
    import threading
    get_ident = threading.get_ident
    inbox = sub_node.inbox
    seqs = pub_node._seqs

    def loop(fn):
        samples = []
        for _ in range(repeat):
            gc.disable()
            t0 = time.perf_counter_ns()
            fn()
            t1 = time.perf_counter_ns()
            gc.enable()
            samples.append((t1 - t0) / n)
        return statistics.median(samples)

    rng = range(n)
    empty = loop(lambda: [None for _ in rng])
    results = []

    def step(name, fn):
        results.append((name, loop(fn) - empty))

    lock = lane.lock

    def drain():  # keep the ring from filling while sends are measured
        while inbox.drain():
            pass

    # ---- publish side ----
    step("user method (builds the dict)", lambda: [method(i) for i in rng])
    step("lineage read (outside a handler)", lambda: [handling.get(get_ident()) if handling else None
                                                      for _ in rng])
    step("lock acquire+release", lambda: [(lock.acquire(), lock.release()) for _ in rng])
    step("next(seq)", lambda: [next(seqs) for _ in rng])
    step("time.time_ns()", lambda: [time.time_ns() for _ in rng])
    step("route lookup router.targets", lambda: [lane.router.targets(topic) for _ in rng])
    step("envelope tuple (11 fields)", lambda: [(1, 0, topic, "publisher", i, i, None, None, None,
                                                 payload, []) for i in rng])
    step("msgspec encode envelope+payload", lambda: [lane.encode(fields) for _ in rng])
    enc_payload = msgspec.msgpack.Encoder().encode
    step("  of which: payload alone", lambda: [enc_payload(payload) for _ in rng])
    drain()
    step("ring write (sender.send)", lambda: [sender.send(data) for _ in rng])
    drain()
    step("whole publish (pub method call)", lambda: [publisher.tick(i) for i in rng])
    drain()
    # ---- delivery side ----
    for _ in range(n):
        sender.send(data)
    t0 = time.perf_counter_ns()
    batch = inbox.receive_many(max_count=n)
    ring_read = (time.perf_counter_ns() - t0) / n
    results.append(("ring read (receive_many, per message)", ring_read))
    step("envelope decode codec.decode", lambda: [codec.decode(data) for _ in rng])
    step("argument decode (typed, positional)", lambda: [decode(envelope.payload) for _ in rng])
    step("user handler call (method(*args))", lambda: [bound_method(*args) for _ in rng])
    step("decorated handler (decode+call)", lambda: [handler(envelope) for _ in rng])
    step("node._deliver_kind (lineage set, lookup)", lambda: [sub_node._deliver_kind(envelope)
                                                          for _ in rng])
    step("node.dispatch of a batch (per message)", lambda: sub_node.dispatch(batch))

    def whole():
        for _ in range(n):
            sender.send(data)
        deliver_n(sub_node, counter, n)
    step("whole delivery (send+pump, per message)", whole)
    print(f"{'step':44s} {'ns/msg':>8s}")
    for name, ns in results:
        print(f"{name:44s} {ns:8.0f}")
    print(f"(loop overhead {empty:.0f} ns/msg subtracted; n={n}, medians of {repeat})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("round", "steps", "cprofile"), default="round")
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--side", choices=("both", "publish"), default="both",
                    help="round: publish and deliver, or only publish (callgrind's "
                         "delivery cost is the difference)")
    args = ap.parse_args()
    import logging
    logging.getLogger("Ether").setLevel(logging.ERROR)
    with Session.create() as session:
        publisher, pub_node, counter, sub_node = rig(session)
        try:
            one_round(publisher, sub_node, counter, 200)  # warm: routes, caches, code paths
            if args.mode == "round":
                gc.collect()
                gc.disable()
                if args.side == "publish":   # the messages stay in the inbox (it takes them)
                    publish_n(publisher.tick, counter.next_seq, args.n)
                else:
                    one_round(publisher, sub_node, counter, args.n)
                print(f"round ({args.side}): {args.n} published; counter received "
                      f"{counter.received}, violations {counter.violations}, "
                      f"bad fields {counter.bad_fields}")
            elif args.mode == "steps":
                steps(publisher, pub_node, counter, sub_node, args.n, args.repeat)
            else:
                import cProfile
                import pstats
                prof = cProfile.Profile()
                prof.enable()
                for _ in range(5):
                    one_round(publisher, sub_node, counter, args.n)
                prof.disable()
                st = pstats.Stats(prof)
                st.sort_stats("tottime")
                st.print_stats(25)
        finally:
            sub_node.close()
            pub_node.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
