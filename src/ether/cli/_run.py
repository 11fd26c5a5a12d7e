"""``ether run CONFIG.yaml [--duration SECONDS]``: tap into a new session with
that config, start it, and shut it down on Ctrl-C, SIGTERM or after the duration.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from . import EXIT_INTERRUPTED, EXIT_OK

__all__ = ["add_parser", "run"]


class _Stop(BaseException):
    """Raised in the main thread by the SIGINT/SIGTERM handler to end the run.

    Raising, rather than setting an Event from the handler, cannot deadlock: the
    handler may run while the main thread holds the Event's own lock.
    """


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "run", help="launch the instances of a config and run until stopped",
        description="Launch every instance of CONFIG, publish 'start', and run until "
                    "Ctrl-C, SIGTERM or --duration; then shut down in order.")
    parser.add_argument("config", metavar="CONFIG.yaml", help="the session's YAML config")
    parser.add_argument("--duration", type=_seconds, default=None, metavar="SECONDS",
                        help="shut down after this many seconds (default: run until stopped)")
    parser.add_argument("--record", default=None, metavar="DIR",
                        help="record every topic into DIR (as a record: section with all: true)")
    parser.set_defaults(command=run)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    try:
        return _run_until_stopped(args)
    except _Stop:  # a second signal cut the shutdown short
        print("ether: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run_until_stopped(args: argparse.Namespace) -> int:
    from ether.config import EtherConfig  # pydantic: imported by the command, not by --help
    config = EtherConfig.from_yaml(args.config)  # fail before anything starts, clearly
    if args.record is not None:
        config = _with_record(config, args.record)
    from ether import ether  # the facade, imported late so `ether --help` stays light

    with _stop_on_signals():
        try:
            ether.tap(config=config)
            ether.start()
            threading.Event().wait(args.duration)  # ends early only through _Stop
        except _Stop:
            pass
        finally:
            ether.shutdown()
    return EXIT_OK


def _with_record(config: EtherConfig, folder: str) -> EtherConfig:
    """The config with a recorder into `folder`: its own record: section's, or all topics."""
    from ether.config import RecordConfig
    if config.record is not None:
        record = config.record.model_copy(update={"output": folder})
    else:
        record = RecordConfig(output=folder, all=True)
    copy = config.model_copy(update={"record": record})
    copy._source = config.source
    return copy


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stop(signal.Signals(signum).name)

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
