"""``ether play FILE|DIR [--rate R] [--topics ...] [--start/--end] [--trial N]
[--loop] [--session NAME]``: re-publish a recording into a running session (or
a new one, without --session)."""
from __future__ import annotations

import argparse
import signal
import threading

from . import EXIT_OK

__all__ = ["add_parser", "play"]


def add_parser(sub) -> None:
    parser = sub.add_parser("play", help="replay a recording into a session")
    parser.add_argument("path", metavar="FILE|DIR")
    parser.add_argument("--rate", type=float, default=1.0, help="1 = as recorded, 0 = at once")
    parser.add_argument("--topics", nargs="+", default=None)
    parser.add_argument("--start", type=int, default=None, metavar="NS", help="log time, ns")
    parser.add_argument("--end", type=int, default=None, metavar="NS")
    parser.add_argument("--trial", type=_trial, default=None)
    parser.add_argument("--loop", action="store_true")
    parser.add_argument("--session", default=None, help="a running session (default: a new one)")
    parser.set_defaults(command=play)


def _trial(text: str):
    try:
        return int(text)
    except ValueError:
        return text


def play(args: argparse.Namespace) -> int:
    from ether.record import play as replay
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    options = dict(rate=args.rate, topics=args.topics, start=args.start, end=args.end,
                   trial=args.trial, loop=args.loop, stop=stop)
    try:
        if args.session:
            from ether.lowlevel import Client
            with Client.attach(args.session, name="play") as client:
                count = replay(args.path, client, **options)
        else:
            from ether import ether
            from ether.lowlevel import default_client
            ether.tap(config={})
            print(f"playing into session {ether.session_name()}", flush=True)
            try:
                count = replay(args.path, default_client(), **options)
            finally:
                ether.shutdown()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    print(f"played {count} messages", flush=True)
    return EXIT_OK
