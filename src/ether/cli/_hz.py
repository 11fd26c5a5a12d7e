"""``ether hz TOPIC... [--window N] [--duration S] [--idle S] [--json]``: the
rate of each topic (or pattern), over the last N messages, from the
publishers' timestamps: mean rate, min/max/std of the intervals, the count
seen and the messages this watcher dropped (its subscription drops rather
than waits). Prints once a second; the last report when it ends."""
from __future__ import annotations

import argparse

from ._common import describe, add_json, add_session

__all__ = ["add_parser", "measure"]

COLUMNS = [("topic", "TOPIC"), ("count", "COUNT"), ("rate", "RATE/S"), ("min", "MIN"),
           ("max", "MAX"), ("std", "STD"), ("dropped", "DROPPED")]
BW_COLUMNS = [("topic", "TOPIC"), ("count", "COUNT"), ("bw", "BYTES/S"), ("mean", "MEAN SIZE"),
              ("dropped", "DROPPED")]


def add_arguments(parser) -> None:
    parser.add_argument("topics", nargs="+", metavar="TOPIC")
    add_session(parser)
    add_json(parser)
    parser.add_argument("--window", type=int, default=1000, metavar="N",
                        help="messages the rate is taken over (default 1000)")
    parser.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                        help="stop after this long")
    parser.add_argument("--idle", type=float, default=None, metavar="SECONDS",
                        help="stop once no message came for this long (after the first)")
    parser.add_argument("--period", type=float, default=1.0, metavar="SECONDS",
                        help="how often to print (default 1)")


def add_parser(sub) -> None:
    parser = sub.add_parser("hz", help="message rates of topics, from the publishers' timestamps",
                            **describe(__doc__))
    add_arguments(parser)
    parser.set_defaults(command=run, verb="hz")


def measure(args: argparse.Namespace, *, sizes: bool, columns, display) -> int:
    import threading
    import time

    from ether import monitor

    from ._common import attach, print_json, print_table, session_of
    session = session_of(args)
    rates = {t: monitor.TopicRate(t, args.window) for t in args.topics}
    lock = threading.Lock()
    heard = threading.Event()
    last = [0.0]
    with attach(session, args.verb) as client:
        decode = client.node.decoders.payload_dict

        def on_for(key):
            rate = rates[key]

            def on(envelope) -> None:
                size = _size(envelope, decode) if sizes else len(envelope.payload)
                with lock:
                    rate.add(envelope.time_ns, size)
                    last[0] = time.monotonic()
                heard.set()
            return on

        for topic in args.topics:
            client.subscribe(topic, on_for(topic), policy="drop", envelopes=True)
        start = time.monotonic()
        tick = threading.Event()
        next_print = start + args.period
        while True:
            now = time.monotonic()
            if args.duration is not None and now - start >= args.duration:
                break
            with lock:
                quiet = heard.is_set() and args.idle is not None and now - last[0] >= args.idle
            if quiet:
                break
            if now >= next_print:
                next_print = now + args.period
                _report(rates, lock, client, args, columns, display, print_json, print_table)
            tick.wait(0.05)
        _report(rates, lock, client, args, columns, display, print_json, print_table, final=True)
    return 0


def _size(envelope, decode) -> int:
    """Payload bytes, with the arrays an arena handle stands for at their size."""
    size = len(envelope.payload)
    if envelope.holds:
        size += sum(getattr(v, "nbytes", 0) for v in decode(envelope).values())
    return size


def _report(rates, lock, client, args, columns, display, print_json, print_table, final=False):
    dropped = client.node.inbox.statistics().dropped
    with lock:
        rows = [{**r.report(), "dropped": dropped, "final": final} for r in rates.values()]
    if args.json:
        print_json(rows)
    else:
        print_table([display(r) for r in rows], columns)


def _display(r: dict) -> dict:
    def s(x):
        return None if x is None else f"{x * 1e3:.3f} ms"
    return {**r, "rate": None if r["rate_hz"] is None else f"{r['rate_hz']:.2f}",
            "min": s(r["min_interval_s"]), "max": s(r["max_interval_s"]), "std": s(r["std_interval_s"])}


def run(args: argparse.Namespace) -> int:
    return measure(args, sizes=False, columns=COLUMNS, display=_display)
