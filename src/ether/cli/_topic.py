"""``ether topic info TOPIC [--session NAME] [--sample S] [--json]``: one
topic in detail - its publishers, each subscriber's inbox with policy, timeout,
fill and drops, the count and rate published, and, from a short drop-policy
sample of its messages, their sizes and the last message's time."""
from __future__ import annotations

import argparse
import datetime
import threading

from ._common import describe, CommandError, add_json, add_session, attach, print_json, session_of

__all__ = ["add_parser"]


def add_parser(sub) -> None:
    parser = sub.add_parser("topic", help="one topic in detail (topic info TOPIC)",
                            description="Details of one topic.")
    verbs = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND", required=True)
    info = verbs.add_parser("info", help="publishers, subscribers, rate, sizes, last message",
                            **describe(__doc__))
    info.add_argument("topic", metavar="TOPIC")
    add_session(info)
    add_json(info)
    info.add_argument("--sample", type=float, default=1.0, metavar="SECONDS",
                      help="how long to sample its messages for sizes (default 1)")
    info.set_defaults(command=run, verb="topic info")


def run(args: argparse.Namespace) -> int:
    from ether import lowlevel, monitor
    from . import _ps
    session = session_of(args)
    sizes: list[int] = []
    last: list[int] = []
    with attach(session, "topic") as client:
        watch = monitor.StatsWatch(client)
        lock = threading.Lock()

        def on(envelope) -> None:
            with lock:
                sizes.append(len(envelope.payload))
                last[:] = [envelope.time_ns]

        unsubscribe = client.subscribe(args.topic, on, policy="drop", envelopes=True)
        reporters = _ps.reporting(lowlevel.inspect(session))
        watch.wait_for(reporters, args.sample)
        watch.wait_updates(len(reporters), args.sample)
        unsubscribe()
        own = client.node.name
        rows = monitor.topic_rows(lowlevel.inspect(session), watch.latest(), watch.rates, system=True)
        watch.close()
    row = next((r for r in rows if r["topic"] == args.topic), None)
    if row is None:
        known = ", ".join(r["topic"] for r in rows if monitor.user_topic(r["topic"])) or "none"
        raise CommandError(f"nobody publishes or subscribes to {args.topic!r} in session "
                           f"{session!r}; its topics: {known}", code=1)
    row["subscribers"] = [s for s in row["subscribers"] if s["inbox"] != own]
    with lock:
        row["sampled"] = len(sizes)
        row["size_min"] = min(sizes) if sizes else None
        row["size_max"] = max(sizes) if sizes else None
        row["size_mean"] = sum(sizes) / len(sizes) if sizes else None
        row["last_message_ns"] = last[0] if last else None
    if args.json:
        print_json([row])
        return 0
    print(f"topic: {row['topic']}{'  (a pattern)' if row['pattern'] else ''}")
    print(f"publishers: {', '.join(row['publishers']) or 'none advertised'}")
    print("subscribers:" + ("" if row["subscribers"] else " none"))
    for s in row["subscribers"]:
        fill = "-" if s["fill"] is None else f"{100 * s['fill']:.1f}%"
        print(f"  {s['inbox']}: policy {s['policy']}, timeout {s['timeout']:g} s, "
              f"inbox fill {fill}, dropped {s['dropped']}")
    rate = "-" if row["rate_hz"] is None else f"{row['rate_hz']:.1f}/s"
    print(f"published (while watched): {row['published'] if row['published'] is not None else '-'}, rate {rate}")
    print(f"dropped at drop-policy subscribers: {row['dropped']}")
    if sizes:
        when = datetime.datetime.fromtimestamp(row["last_message_ns"] / 1e9).isoformat(timespec="milliseconds")
        print(f"sampled {len(sizes)} message(s) in {args.sample:g} s: payload {row['size_min']}-"
              f"{row['size_max']} bytes (mean {row['size_mean']:.0f}); last at {when}")
    else:
        print(f"no message in the {args.sample:g} s sample")
    return 0
