"""``ether logs [INSTANCE...] [-f] [--since T] [--level L] [--grep RE] [--json]``:
the session's log folder (one file per process: "session" is the main), merged
by timestamp. A dead session's logs read the same way (name it with
--session). --since takes seconds or 30s/5m/2h ago, or an ISO time."""
from __future__ import annotations

import argparse
import datetime
import re
import sys
import threading
import time

from ._common import describe, CommandError, print_json

__all__ = ["add_parser"]

_AGO = re.compile(r"(\d+(?:\.\d*)?)([smhd]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def add_parser(sub) -> None:
    parser = sub.add_parser("logs", help="the session's logs, merged by time",
                            **describe(__doc__))
    parser.add_argument("instances", nargs="*", metavar="INSTANCE",
                        help="only these processes (file names without .log; 'session' is the main)")
    parser.add_argument("--session", metavar="NAME", default=None,
                        help="the session (default: the only live one); may be a dead one")
    parser.add_argument("--site", nargs="?", const="", default=None, metavar="SITE",
                        help="every host of the site (needs the site's bridge)")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    parser.add_argument("--since", default=None, metavar="TIME", help="only records after TIME")
    parser.add_argument("--level", default=None, metavar="LEVEL",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "debug", "info",
                                 "warning", "error", "critical"], help="only records at LEVEL or above")
    parser.add_argument("--grep", default=None, metavar="REGEX", help="only records that match")
    parser.add_argument("--tail", type=int, default=None, metavar="N", help="only the last N records")
    parser.add_argument("--json", action="store_true", help="print JSON Lines")
    parser.set_defaults(command=run, verb="logs")


def since(text: str | None) -> float | None:
    if text is None:
        return None
    m = _AGO.fullmatch(text)
    if m:
        return time.time() - float(m.group(1)) * _UNIT[m.group(2)]
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise CommandError(f"--since {text!r}: give seconds, 30s/5m/2h/1d ago, or an ISO time "
                           f"(2026-01-31T12:00:00)") from None


def _folder(args) -> tuple[str, object]:
    from ether import monitor
    from ._common import session_of
    if args.session is not None and args.site is None:
        folder = monitor.log_dir(args.session)
        if folder.is_dir():
            return args.session, folder
    name = session_of(args)
    return name, monitor.log_dir(name)


def run(args: argparse.Namespace) -> int:
    from ether import monitor
    try:
        keep = monitor.LogFilter(instances=args.instances, since=since(args.since),
                                 level=args.level, grep=args.grep)
    except re.error as exc:
        raise CommandError(f"--grep {args.grep!r} is not a regular expression: {exc}") from None
    name, folder = _folder(args)
    if not folder.is_dir():
        raise CommandError(f"session {name!r} has no log folder ({folder})")
    known = sorted(p.stem for p in folder.glob("*.log"))
    missing = sorted(set(args.instances) - set(known))
    if missing:
        raise CommandError(f"session {name!r} has no log of {', '.join(map(repr, missing))}; "
                           f"its logs: {', '.join(known) or 'none'}")
    follower = monitor.LogFollower(folder, keep) if args.follow else None  # from here on
    records = monitor.read_logs(folder, keep)
    if args.tail is not None:
        records = records[-args.tail:] if args.tail > 0 else []
    _emit(records, args)
    if follower is None:
        return 0
    tick = threading.Event()
    while not tick.wait(0.2):  # polling the files: nothing else says they grew
        _emit(follower.poll(), args)
    return 0


def _emit(records, args) -> None:
    if args.json:
        print_json(r.to_dict() for r in records)
        return
    out = sys.stdout
    for r in records:
        out.write(r.line() + "\n")
    out.flush()
