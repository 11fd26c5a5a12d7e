"""``ether record [TOPIC|PATTERN ...] [--all] [--exclude P] -o DIR``: attach to a
running session and record it until Ctrl-C, SIGTERM or --duration."""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from . import EXIT_OK

__all__ = ["add_parser", "record", "pick_session"]


def add_parser(sub) -> None:
    parser = sub.add_parser("record", help="record topics of a running session into MCAP files",
                            description="Attach to a running session and record topics (or "
                                        "patterns) into MCAP files until Ctrl-C.")
    parser.add_argument("topics", nargs="*", metavar="TOPIC|PATTERN")
    parser.add_argument("--all", action="store_true", help="every topic, Ether's own included")
    parser.add_argument("--exclude", action="append", default=[], metavar="PATTERN")
    parser.add_argument("-o", "--output", default="recordings", metavar="DIR")
    parser.add_argument("--session", default=None, help="the session (default: the only live one)")
    parser.add_argument("--policy", choices=("block", "drop"), default="block")
    parser.add_argument("--compression", choices=("none", "lz4", "zstd"), default="none")
    parser.add_argument("--split-size", type=int, default=None, metavar="BYTES")
    parser.add_argument("--split-duration", type=float, default=None, metavar="SECONDS")
    parser.add_argument("--split-on-trial", action="store_true")
    parser.add_argument("--flush-interval", type=float, default=0.1, metavar="SECONDS")
    parser.add_argument("--fsync-interval", type=float, default=1.0, metavar="SECONDS")
    parser.add_argument("--duration", type=float, default=None, metavar="SECONDS")
    parser.set_defaults(command=record)


def pick_session(name: str | None) -> str:
    from ether import ConfigError
    from ether.lowlevel import list_sessions
    if name:
        return name
    live = [s.name for s in list_sessions()]
    if len(live) != 1:
        raise ConfigError(f"name the session with --session (live sessions: "
                          f"{', '.join(live) if live else 'none'})")
    return live[0]


def record(args: argparse.Namespace) -> int:
    from ether import ConfigError
    from ether.lowlevel import Client
    from ether.record import Recorder
    if not args.topics and not args.all:
        raise ConfigError("ether record: name topics (or patterns) to record, or --all")
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with Client.attach(pick_session(args.session), name="record") as client:
            recorder = Recorder(args.output, topics=args.topics, all=args.all,
                                exclude=args.exclude, policy=args.policy,
                                compression=args.compression, split_size=args.split_size,
                                split_duration_s=args.split_duration,
                                split_on_trial=args.split_on_trial,
                                flush_interval_s=args.flush_interval,
                                fsync_interval_s=args.fsync_interval, client=client)
            print(f"recording into {recorder.files[-1]}", flush=True)
            stop.wait(args.duration)
            recorder.close()
            print("closed " + ", ".join(map(str, recorder.files)), flush=True)
            if recorder.failed is not None:
                print(f"ether record: {recorder.failed}", file=sys.stderr)
                return 1
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return EXIT_OK
