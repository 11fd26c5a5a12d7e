"""``ether top [--session NAME] [--once] [--json] [--interval S]``: the `ps`
table, refreshed live (1 Hz), with rates; --once prints one snapshot (with
--json, one JSON line per member) and exits."""
from __future__ import annotations

import argparse
import sys
import threading

from . import _ps
from ._common import describe, add_json, add_session, attach, fmt_count, print_json, print_table, session_of

__all__ = ["add_parser"]

COLUMNS = _ps.COLUMNS[:10] + [("handled_hz", "HANDLED/S"), ("published_hz", "PUB/S")] + _ps.COLUMNS[10:]


def add_parser(sub) -> None:
    parser = sub.add_parser("top", help="the ps table, live, with rates",
                            **describe(__doc__))
    add_session(parser)
    add_json(parser)
    parser.add_argument("--once", action="store_true", help="print one snapshot and exit")
    parser.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                        help="refresh period (default 1)")
    parser.set_defaults(command=run, verb="top")


def _rows(session, watch, processes, own):
    rows = _ps.snapshot_rows(session, watch, processes, own=own)
    for r in rows:
        rates = watch.rates(r["instance"])
        r["handled_hz"], r["published_hz"] = rates.get("handled"), rates.get("published")
    return rows


def _display(rows):
    return [{**_ps.display(r), "handled_hz": fmt_count(r["handled_hz"]),
             "published_hz": fmt_count(r["published_hz"])} for r in rows]


def run(args: argparse.Namespace) -> int:
    from ether import SessionNotFound, lowlevel, monitor
    session = session_of(args)
    with attach(session, "top") as client:
        own = client.node.name
        watch = monitor.StatsWatch(client)
        processes = monitor.Processes()
        watch.wait_for(_ps.reporting(lowlevel.inspect(session)), 1.5)
        if args.once:
            # two reports of each node, for a rate
            watch.wait_updates(2 * len(_ps.reporting(lowlevel.inspect(session))), 2.5)
            rows = _rows(session, watch, processes, own)
            print_json(rows) if args.json else print_table(_display(rows), COLUMNS)
            return 0
        stop = threading.Event()
        if args.json or not sys.stdout.isatty():
            while not stop.wait(args.interval):
                try:
                    rows = _rows(session, watch, processes, own)
                except SessionNotFound:
                    break
                print_json(rows) if args.json else print_table(_display(rows), COLUMNS)
            return 0
        from rich.live import Live
        from ._common import table_renderable
        title = f"ether top - session {session} (Ctrl-C to quit)"
        with Live(table_renderable(_display(_rows(session, watch, processes, own)), COLUMNS,
                                   title=title), auto_refresh=False) as live:
            while not stop.wait(args.interval):
                try:
                    rows = _rows(session, watch, processes, own)
                except SessionNotFound:
                    break
                live.update(table_renderable(_display(rows), COLUMNS, title=title), refresh=True)
    return 0
