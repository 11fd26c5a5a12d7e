"""``ether bag info|recover|cat|lineage|export``: read recordings."""
from __future__ import annotations

import argparse
import json
import sys

from . import EXIT_OK

__all__ = ["add_parser"]


def add_parser(sub) -> None:
    parser = sub.add_parser("bag", help="inspect, recover and export recordings")
    verbs = parser.add_subparsers(title="verbs", metavar="VERB", required=True)
    p = verbs.add_parser("info", help="topics, counts, status, drops (INCOMPLETE), provenance")
    p.add_argument("path", metavar="FILE|DIR")
    p.add_argument("--provenance", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(command=_info)
    p = verbs.add_parser("recover", help="rewrite an unfinished file as an indexed one")
    p.add_argument("path", metavar="FILE")
    p.add_argument("-o", "--output", required=True, metavar="OUT.mcap")
    p.set_defaults(command=_recover)
    p = verbs.add_parser("cat", help="print messages (--json: NDJSON)")
    p.add_argument("path", metavar="FILE|DIR")
    p.add_argument("--topics", nargs="+", default=None)
    p.add_argument("--start", type=int, default=None, metavar="NS")
    p.add_argument("--end", type=int, default=None, metavar="NS")
    p.add_argument("--trial", type=int, default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(command=_cat)
    p = verbs.add_parser("lineage", help="the chain of causes of one message")
    p.add_argument("path", metavar="FILE|DIR")
    p.add_argument("--topic", required=True)
    p.add_argument("--seq", type=int, required=True)
    p.add_argument("--sender", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(command=_lineage)
    p = verbs.add_parser("export", help="json + jsonschema channels, for Foxglove and Lichtblick")
    p.add_argument("path", metavar="FILE|DIR")
    p.add_argument("--json", required=True, metavar="OUT.mcap", dest="out")
    p.set_defaults(command=_export)


def _info(args: argparse.Namespace) -> int:
    from ether.record import format_info, info
    summary = info(args.path, provenance=args.provenance)
    print(json.dumps(summary, default=str) if args.json else format_info(summary))
    return EXIT_OK


def _recover(args: argparse.Namespace) -> int:
    from ether.record import recover
    code, text = recover(args.path, args.output)
    print(text, file=sys.stderr if code == 1 else sys.stdout)
    return code


def _cat(args: argparse.Namespace) -> int:
    from ether.record import cat_lines
    for line in cat_lines(args.path, topics=args.topics, start=args.start, end=args.end,
                          trial=args.trial, as_json=args.json):
        print(line)
    return EXIT_OK


def _lineage(args: argparse.Namespace) -> int:
    from ether.record import lineage_lines
    try:
        for line in lineage_lines(args.path, args.topic, args.seq, args.sender, as_json=args.json):
            print(line)
    except LookupError as exc:
        print(f"ether bag lineage: {exc}", file=sys.stderr)
        return 1
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from ether.record import export_json
    count = export_json(args.path, args.out)
    print(f"exported {count} messages to {args.out}")
    return EXIT_OK
