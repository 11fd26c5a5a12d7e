"""``ether topics [--session NAME] [--all] [--json]``: every topic someone
publishes or subscribes to, with its publishers, its subscribers (policy and
timeout), the rate and count published (from the stats topic) and the drops
at drop-policy subscribers. --all adds Ether's own topics (ether/...)."""
from __future__ import annotations

import argparse

from ._common import describe, add_json, add_session, attach, fmt_count, print_json, print_table, session_of

__all__ = ["add_parser", "collect"]

COLUMNS = [("topic", "TOPIC"), ("publishers", "PUBLISHERS"), ("subs", "SUBSCRIBERS"),
           ("rate", "RATE/S"), ("published", "PUBLISHED"), ("dropped", "DROPPED")]


def add_parser(sub) -> None:
    parser = sub.add_parser("topics", help="list topics: publishers, subscribers, rates, drops",
                            **describe(__doc__))
    add_session(parser)
    add_json(parser)
    parser.add_argument("--all", action="store_true", help="include Ether's own topics (ether/...)")
    parser.add_argument("--wait", type=float, default=1.5, metavar="SECONDS",
                        help="how long to gather rates from the stats topic (0: none; default 1.5)")
    parser.set_defaults(command=run, verb="topics")


def collect(session: str, *, wait: float, system: bool) -> list[dict]:
    from ether import lowlevel, monitor
    from . import _ps
    if wait <= 0:
        return monitor.topic_rows(lowlevel.inspect(session), system=system)
    with attach(session, "topics") as client:
        watch = monitor.StatsWatch(client)
        reporters = _ps.reporting(lowlevel.inspect(session))
        if watch.wait_for(reporters, wait):
            watch.wait_updates(len(reporters), wait)  # a second report of each: a rate
        own = client.node.name
        snapshot = lowlevel.inspect(session)
        rows = monitor.topic_rows(snapshot, watch.latest(), watch.rates, system=system)
        watch.close()
    for r in rows:  # this command's own subscription is not the session's
        r["subscribers"] = [s for s in r["subscribers"] if s["inbox"] != own]
    return [r for r in rows if r["subscribers"] or r["publishers"]]


def _subs(r: dict) -> str:
    return ",".join(f"{s['inbox']}({s['policy']})" for s in r["subscribers"]) or "-"


def run(args: argparse.Namespace) -> int:
    session = session_of(args)
    rows = collect(session, wait=args.wait, system=args.all)
    if args.json:
        print_json(rows)
    else:
        print_table([{**r, "subs": _subs(r), "rate": fmt_count(r["rate_hz"])} for r in rows], COLUMNS)
    return 0
