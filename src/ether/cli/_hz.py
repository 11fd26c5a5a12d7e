"""``ether hz TOPIC... [--span S] [--intervals [--window N]] [--duration S] [--idle S] [--json]``:
the rate of each topic (or pattern).

By default from the publishers' own counts on the stats topic, stamped with
their clocks: the messages published since this watcher began, the rate over
the last S seconds (10), and what drop-policy subscribers refused. It costs the
session almost nothing, whatever the rate; it counts what instances and the
main publish, not an attached client's messages (`ether pub`, Client.attach).
With --intervals it subscribes instead (policy drop: it never slows a
publisher) and adds the min/max/std of the intervals over the last N messages,
from the publishers' timestamps; at high rates the watcher then takes CPU and
drops (shown). Prints once a second; the last report when it ends."""
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
    parser.add_argument("--span", type=float, default=10.0, metavar="SECONDS",
                        help="seconds of the publishers' reports the rate is taken over (default 10)")
    parser.add_argument("--intervals", action="store_true",
                        help="subscribe to the topics: every message's timestamp, with the "
                             "min/max/std of the intervals (costs CPU at high rates)")
    parser.add_argument("--window", type=int, default=1000, metavar="N",
                        help="with --intervals: messages the rate is taken over (default 1000)")
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
    if not args.intervals:
        return _from_stats(args, columns, display)
    return _by_subscription(args, sizes=sizes, columns=columns, display=display)


def _from_stats(args: argparse.Namespace, columns, display) -> int:
    import sys
    import threading

    from ether import lowlevel, monitor

    from ._common import attach, print_json, print_table, session_of
    session = session_of(args)
    rates = monitor.PublishedRates(args.topics, args.span)
    heard = threading.Event()

    def on(report: dict) -> None:
        rates.add(report)
        heard.set()

    with attach(session, args.verb) as client:
        client.subscribe(lowlevel.STATS_TOPIC, on, policy="drop")
        _until_done(args, lambda: rates.changed_at, lambda: _print_rows(
            [{**rates.report(t), "final": False} for t in args.topics],
            args, columns, display, print_json, print_table))
        rows = [{**rates.report(t), "final": True} for t in args.topics]
        _print_rows(rows, args, columns, display, print_json, print_table)
    for r in rows:
        if not r["count"]:
            print(f"ether {args.verb}: nothing counted on {r['topic']!r}"
                  + ("" if heard.is_set() else " (no node reported: is the session running?)")
                  + "; a message an attached client publishes (ether pub, Client.attach) is "
                  "counted only with --intervals", file=sys.stderr)
    return 0


def _until_done(args, last_change, report) -> None:
    """Report every --period until --duration passed, or until nothing changed for
    --idle seconds after the first change (last_change(): its monotonic time, or None)."""
    import threading
    import time
    start = time.monotonic()
    tick = threading.Event()
    next_print = start + args.period
    while True:
        now = time.monotonic()
        if args.duration is not None and now - start >= args.duration:
            return
        changed = last_change()
        if changed is not None and args.idle is not None and now - changed >= args.idle:
            return
        if now >= next_print:
            next_print = now + args.period
            report()
        tick.wait(0.05)


def _print_rows(rows, args, columns, display, print_json, print_table) -> None:
    if args.json:
        print_json(rows)
    else:
        print_table([display(r) for r in rows], columns)


def _by_subscription(args: argparse.Namespace, *, sizes: bool, columns, display) -> int:
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

        def last_heard():
            with lock:
                return last[0] if heard.is_set() else None
        _until_done(args, last_heard, lambda: _report(
            rates, lock, client, args, columns, display, print_json, print_table))
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
        rows = [{**r.report(), "dropped": dropped, "final": final, "source": "subscription"}
                for r in rates.values()]
    _print_rows(rows, args, columns, display, print_json, print_table)


def _display(r: dict) -> dict:
    def s(x):
        return None if x is None else f"{x * 1e3:.3f} ms"
    return {**r, "rate": None if r["rate_hz"] is None else f"{r['rate_hz']:.2f}",
            "min": s(r["min_interval_s"]), "max": s(r["max_interval_s"]), "std": s(r["std_interval_s"])}


def run(args: argparse.Namespace) -> int:
    return measure(args, sizes=False, columns=COLUMNS, display=_display)
