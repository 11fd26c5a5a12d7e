"""``ether services [--session NAME] [--json]``: every service method (by class
and by instance name) and every sync topic, with the instances that serve it."""
from __future__ import annotations

import argparse

from ._common import describe, add_json, add_session, print_json, print_table, session_of

__all__ = ["add_parser"]


def add_parser(sub) -> None:
    parser = sub.add_parser("services", help="list services and sync topics, and who serves them",
                            **describe(__doc__))
    add_session(parser)
    add_json(parser)
    parser.set_defaults(command=run, verb="services")


def run(args: argparse.Namespace) -> int:
    from ether import lowlevel, monitor
    rows = monitor.service_rows(lowlevel.inspect(session_of(args)))
    if args.json:
        print_json(rows)
    else:
        print_table([{**r, "name": f"{r['service']}.{r['method']}" if r["kind"] == "service" else r["topic"]}
                     for r in rows], [("kind", "KIND"), ("name", "NAME"), ("served_by", "SERVED BY")])
    return 0
