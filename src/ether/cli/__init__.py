"""The ``ether`` command line: this module is the argparse front; each command is
one module, ``_<command>.py``, with ``add_parser(subparsers)``, which registers
it and sets ``command`` to the function that runs it and returns the exit code.

    ether run CONFIG.yaml [--duration SECONDS] [--record DIR]     _run.py
    ether record [TOPIC|PATTERN ...] [--all] -o DIR              _record.py
    ether play FILE|DIR [--rate R] [--topics ...] [--trial N]    _play.py
    ether bag info|recover|cat|lineage|export                    _bag.py
    ether bridge CONFIG.yaml [--duration SECONDS]                _bridge.py
    ether certs init SITE | host NAME [--ip IP ...]              _certs.py
    ether router [CONFIG.yaml] [--listen EP ...] [--ca ...]      _router.py
    ether agent [CONFIG.yaml] --site SITE [--listen EP] [--operator NAME ...]   _agent.py
    ether ps / top / topics / topic info / services / echo / hz / bw / pub /
          call / logs / doctor / cleanup / monitor                  _<command>.py

``_common.py`` is what the observing commands share (not a command). Commands
build only on the public API (``ether``, ``ether.lowlevel``, ``ether.config``)
and on the extensions they front (``ether.record``, ``ether.monitor``,
``ether.bridge``), never on ``ether._*``. ``ether.bridge`` loads neither zenoh
nor cryptography until a command needs them.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ether import ConfigError

from ._common import CommandError

__all__ = ["main"]

EXIT_OK, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 2, 130


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser(_command_in(argv)).parse_args(argv)
    try:
        return args.command(args)
    except BrokenPipeError:  # `ether ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
        return EXIT_OK
    except CommandError as e:
        print(f"ether {getattr(args, 'verb', '')}: error: {e}".replace("  ", " "), file=sys.stderr)
        return e.code
    except ConfigError as e:
        print(f"ether: error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        print("ether: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


# Each command's module, in the order `ether --help` lists them.
COMMANDS = ("run", "bridge", "record", "play", "bag", "certs", "router", "agent", "ps", "top",
            "topics", "topic", "services", "echo", "hz", "bw", "pub", "call", "logs", "doctor",
            "cleanup", "monitor")


def _command_in(argv: Sequence[str]) -> str | None:
    """The command argv names, if it is one: only its module is then imported
    (`ether ps` does not load the other twenty)."""
    first = next((a for a in argv if not a.startswith("-")), None)
    if first in COMMANDS and argv[:1] not in (["--help"], ["-h"], ["--version"]):
        return first
    return None


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of just `command` (its arguments and help
    are the same either way)."""
    import importlib

    parser = argparse.ArgumentParser(
        prog="ether", description="Run and inspect Ether sessions.")
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for name in COMMANDS if command is None else (command,):
        importlib.import_module(f"{__name__}._{name}").add_parser(sub)
    return parser


class _Version(argparse.Action):
    """--version, looked up only when asked (importlib.metadata is not light)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"ether {_version()}")
        parser.exit()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("ether")
    except PackageNotFoundError:
        return "unknown"
