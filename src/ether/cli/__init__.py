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
    args = _parser().parse_args(argv)
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


def _parser() -> argparse.ArgumentParser:
    # the commands, imported once this package is whole (each is small: argparse only)
    from . import (_bag, _bridge, _bw, _call, _certs, _cleanup, _doctor, _echo, _hz, _logs,
                   _monitor, _play, _ps, _pub, _record, _router, _run, _services, _top, _topic,
                   _topics)

    parser = argparse.ArgumentParser(
        prog="ether", description="Run and inspect Ether sessions.")
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for command in (_run, _bridge, _record, _play, _bag, _certs, _router, _ps, _top, _topics,
                    _topic, _services, _echo, _hz, _bw, _pub, _call, _logs, _doctor, _cleanup,
                    _monitor):
        command.add_parser(sub)
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
