"""``ether ps [--session NAME] [--json]``: one line per member of a session -
instance, host, class, pid, state, uptime, restarts, CPU, RSS, inbox fill,
handled, published, dropped, errors.

The directory (pids, classes, inbox fill) is read without joining; handled,
published and errors come from the stats topic, so ps joins briefly and waits
up to --wait seconds for every node's first report (~0.1 s)."""
from __future__ import annotations

import argparse

from ._common import (describe, add_json, add_session, attach, fmt_bytes, fmt_count, fmt_ratio, fmt_seconds,
                      print_json, print_table, session_of)

__all__ = ["add_parser", "snapshot_rows", "COLUMNS"]

COLUMNS = [("instance", "INSTANCE"), ("host", "HOST"), ("class", "CLASS"), ("pid", "PID"),
           ("state", "STATE"), ("uptime", "UPTIME"), ("restarts", "RESTARTS"), ("cpu", "CPU"),
           ("rss", "RSS"), ("fill", "INBOX"), ("handled", "HANDLED"),
           ("published", "PUBLISHED"), ("dropped", "DROPPED"), ("errors", "ERRORS")]


def add_parser(sub) -> None:
    parser = sub.add_parser("ps", help="list a session's instances: state, pid, CPU, memory, counters",
                            **describe(__doc__))
    add_session(parser)
    add_json(parser)
    parser.add_argument("--wait", type=float, default=1.5, metavar="SECONDS",
                        help="longest wait for the nodes' counters (default 1.5)")
    parser.set_defaults(command=run, verb="ps")


def snapshot_rows(session: str, watch, processes, *, own: str | None = None) -> list[dict]:
    from ether import lowlevel, monitor
    snapshot = lowlevel.inspect(session)
    rows = monitor.member_rows(snapshot, watch.latest() if watch else {}, processes)
    return [r for r in rows if r["instance"] != own]


def reporting(snapshot) -> list[str]:
    """The members that publish stats: the main and the instances (attached
    clients, this one included, do not)."""
    return [m.name for m in snapshot.members if m.class_name or m.name == "main"]


def display(row: dict) -> dict:
    return {**row, "uptime": fmt_seconds(row["uptime_s"]),
            "cpu": None if row["cpu_percent"] is None else f"{row['cpu_percent']:.1f}%",
            "rss": fmt_bytes(row["rss_bytes"]), "fill": fmt_ratio(row["inbox_fill"]),
            "handled": fmt_count(row["handled"]), "published": fmt_count(row["published"])}


def run(args: argparse.Namespace) -> int:
    from ether import lowlevel, monitor
    session = session_of(args)
    with attach(session, "ps") as client:
        watch = monitor.StatsWatch(client)
        names = reporting(lowlevel.inspect(session))
        processes = monitor.Processes()  # imports psutil while the nodes notice the watcher
        watch.wait_for(names, args.wait)
        rows = snapshot_rows(session, watch, processes, own=client.node.name)
        watch.close()
    if args.json:
        print_json(rows)
    else:
        print_table([display(r) for r in rows], COLUMNS)
    return 0
