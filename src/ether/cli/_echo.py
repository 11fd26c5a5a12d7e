"""``ether echo TOPIC|PATTERN [--once] [-n N] [--field a.b] [--json] [--full] [--rate HZ]``:
print a topic's messages as they arrive. No type information is needed (the
wire format describes itself); arrays are summarised (dtype, shape, min, max,
mean) unless --full. The subscription drops rather than waits when echo falls
behind, so watching never slows a publisher; what it missed is printed at the
end (on stderr).

At most --rate messages a second are shown (100; 0: no limit). Past that, echo
shows the first ones of each second and unsubscribes until the next: the
publishers then send it nothing, so a fast topic costs them (and this machine's
cores) next to nothing, and what is shown is fresh, never a backlog. How long
it paused is printed at the end."""
from __future__ import annotations

import argparse
import json
import queue
import sys

from ._common import describe, CommandError, add_json, add_session, attach, session_of

__all__ = ["add_parser"]


def add_parser(sub) -> None:
    parser = sub.add_parser("echo", help="print a topic's messages (or a pattern's)",
                            **describe(__doc__))
    parser.add_argument("topic", metavar="TOPIC|PATTERN")
    add_session(parser)
    add_json(parser)
    parser.add_argument("--once", action="store_true", help="print one message and exit")
    parser.add_argument("-n", type=int, default=None, metavar="N", help="print N messages and exit")
    parser.add_argument("--field", default=None, metavar="A.B", help="print only this part of each message")
    parser.add_argument("--full", action="store_true", help="print arrays in full")
    parser.add_argument("--rate", type=float, default=100.0, metavar="HZ",
                        help="show at most HZ messages a second (default 100; 0: every message)")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="exit after this long without a message (exit code 1 if none came)")
    parser.set_defaults(command=run, verb="echo")


def run(args: argparse.Namespace) -> int:
    import threading
    import time

    from ether import monitor
    limit = 1 if args.once else args.n
    if limit is not None and limit < 1:
        raise CommandError(f"-n must be at least 1, not {limit}")
    if not args.rate >= 0:
        raise CommandError(f"--rate must be a number of messages a second >= 0, not {args.rate}")
    session = session_of(args)
    out: queue.SimpleQueue = queue.SimpleQueue()
    shown = 0
    budget = int(args.rate) if args.rate >= 1 else (1 if args.rate else None)
    period = 1.0 if args.rate >= 1 or not args.rate else 1.0 / args.rate
    full = threading.Event()      # this second's messages are taken: pause the subscription
    taken = [0]
    with attach(session, "echo") as client:
        decode = client.node.decoders.payload_dict

        def on(envelope) -> None:
            # In the reader thread, while the message's arrays are held: copy out now.
            if budget is not None:
                if taken[0] >= budget:
                    return  # arrived before the pause took effect: not shown
                taken[0] += 1
                if taken[0] >= budget:
                    full.set()
            try:
                value = monitor.plain(monitor.pick(decode(envelope), args.field), full=args.full)
            except monitor.FieldMissing as exc:
                value = {"error": str(exc)}
            except Exception as exc:  # a payload this process cannot decode
                value = {"error": f"cannot decode: {type(exc).__name__}: {exc}"}
            out.put({"topic": envelope.topic, "sender": envelope.sender, "seq": envelope.seq,
                     "time_ns": envelope.time_ns, "data": value})

        unsubscribe = client.subscribe(args.topic, on, policy="drop", envelopes=True)
        second = time.monotonic() + period
        paused_s = 0.0
        idle_since = time.monotonic()
        try:
            while limit is None or shown < limit:
                if full.is_set():  # pause until the next period; publishers send nothing
                    unsubscribe()
                    now = time.monotonic()
                    while not out.empty() and (limit is None or shown < limit):
                        _print(out.get(), args)
                        shown += 1
                    if limit is not None and shown >= limit:
                        break
                    rest = max(0.0, second - now)
                    paused_s += rest
                    if rest:
                        threading.Event().wait(rest)  # the pace of the display, not a wait for an event
                    taken[0] = 0
                    full.clear()
                    second = time.monotonic() + period
                    unsubscribe = client.subscribe(args.topic, on, policy="drop", envelopes=True)
                    idle_since = time.monotonic()
                try:
                    item = out.get(timeout=0.1)
                except queue.Empty:
                    now = time.monotonic()
                    if args.timeout is not None and now - idle_since >= args.timeout:
                        break
                    if now >= second and not full.is_set():
                        taken[0] = 0
                        second = now + period
                    continue
                _print(item, args)
                shown += 1
                idle_since = time.monotonic()
                if time.monotonic() >= second and not full.is_set():
                    taken[0] = 0
                    second = time.monotonic() + period
        finally:
            dropped = client.node.inbox.statistics().dropped
            if dropped:
                print(f"ether echo: {dropped} message(s) dropped (echo fell behind)", file=sys.stderr)
            if paused_s:
                print(f"ether echo: paused its subscription for {paused_s:.1f} s in all (more than "
                      f"{args.rate:g} messages a second; --rate 0 shows every one)", file=sys.stderr)
    return 0 if shown or args.timeout is None else 1


def _print(item: dict, args) -> None:
    if args.json:
        sys.stdout.write(json.dumps(item) + "\n")
    else:
        data = item["data"]
        text = data if isinstance(data, str) else json.dumps(data)
        sys.stdout.write(f"[{item['topic']}] {item['sender']}#{item['seq']}: {text}\n")
    sys.stdout.flush()
