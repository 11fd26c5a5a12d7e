"""``ether pub TOPIC '{json}' [--rate HZ] [-n N]``: publish a message (a JSON
object) to a topic of a running session, once, N times, or at a rate until
Ctrl-C (-n 0)."""
from __future__ import annotations

import argparse
import sys
import threading
import time

from ._common import describe, CommandError, add_session, attach, parse_json_arg, session_of

__all__ = ["add_parser"]


def add_parser(sub) -> None:
    parser = sub.add_parser("pub", help="publish a JSON message to a topic",
                            **describe(__doc__))
    parser.add_argument("topic", metavar="TOPIC")
    parser.add_argument("message", metavar="JSON", nargs="?", default="{}",
                        help="the message, a JSON object (default {})")
    add_session(parser)
    parser.add_argument("--rate", type=float, default=None, metavar="HZ",
                        help="publish this many times a second")
    parser.add_argument("-n", type=int, default=None, metavar="N",
                        help="how many times (default 1; with --rate, 0 means until Ctrl-C)")
    parser.set_defaults(command=run, verb="pub")


def run(args: argparse.Namespace) -> int:
    from ether import ConfigError, lowlevel
    data = parse_json_arg(args.message, "the message")
    if not isinstance(data, dict):
        raise CommandError(f"the message must be a JSON object ({{...}}), not {type(data).__name__}")
    try:
        lowlevel.check_topic(args.topic, "ether pub")
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    if args.rate is not None and not args.rate > 0:
        raise CommandError(f"--rate must be > 0, not {args.rate}")
    count = 1 if args.n is None and args.rate is None else (0 if args.n is None else args.n)
    if count < 0 or (count == 0 and args.rate is None):
        raise CommandError(f"-n must be at least 1 (or 0 with --rate), not {args.n}")
    session = session_of(args)
    sent = delivered = 0
    tick = threading.Event()
    with attach(session, "pub") as client:
        start = time.monotonic()
        while count == 0 or sent < count:
            if args.rate is not None:
                tick.wait(max(0.0, start + sent / args.rate - time.monotonic()))
            delivered += client.pub(data, topic=args.topic)
            sent += 1
    print(f"published {sent} message(s) to {args.topic!r}; {delivered} deliveries", file=sys.stderr)
    return 0
