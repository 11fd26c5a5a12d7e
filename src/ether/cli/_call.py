"""``ether call SERVICE METHOD '{json}' [--timeout S]``: call a service method
(SERVICE: a class name, round-robin over its instances, or an instance name)
and print its reply's result as JSON; a remote error is printed on stderr and
the exit code is 1."""
from __future__ import annotations

import argparse
import json
import sys

from ._common import describe, CommandError, add_session, attach, parse_json_arg, session_of

__all__ = ["add_parser"]


def add_parser(sub) -> None:
    parser = sub.add_parser("call", help="call a service method and print the reply",
                            **describe(__doc__))
    parser.add_argument("service", metavar="SERVICE")
    parser.add_argument("method", metavar="METHOD")
    parser.add_argument("params", metavar="JSON", nargs="?", default="{}",
                        help="the parameters, a JSON object (default {})")
    add_session(parser)
    parser.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                        help="how long to wait for the reply (default 5)")
    parser.set_defaults(command=run, verb="call")


def run(args: argparse.Namespace) -> int:
    from ether import monitor
    from ether import EtherError
    params = parse_json_arg(args.params, "the parameters")
    if not isinstance(params, dict):
        raise CommandError(f"the parameters must be a JSON object ({{...}}), not {type(params).__name__}")
    session = session_of(args)
    with attach(session, "call") as client:
        try:
            reply = client.save(args.service, args.method, params, timeout=args.timeout)
        except EtherError as exc:  # not found, gone, timed out
            raise CommandError(f"{args.service}.{args.method}: {type(exc).__name__}: {exc}", code=1) from None
    if reply.get("status") == "success":
        print(json.dumps(monitor.plain(reply.get("result"))))
        return 0
    print(f"ether call: {args.service}.{args.method} failed in {reply.get('instance', '?')}: "
          f"{reply.get('type', 'Error')}: {reply.get('error', '')}", file=sys.stderr)
    return 1
