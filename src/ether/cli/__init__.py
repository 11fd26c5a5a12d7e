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

Commands build only on the public API (``ether``, ``ether.lowlevel``,
``ether.config``, and ``ether.bridge`` for the remote commands), never on
``ether._*``. ``ether.bridge`` loads neither zenoh nor cryptography until a
command needs them.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ether import ConfigError

__all__ = ["main"]

EXIT_OK, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 2, 130


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.command(args)
    except ConfigError as e:
        print(f"ether: error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        print("ether: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _parser() -> argparse.ArgumentParser:
    from . import _bridge, _run  # the commands, imported once this package is whole
    from . import _bag, _play, _record  # recordings (ether.record)
    from . import _certs, _router  # across hosts (ether.bridge)

    parser = argparse.ArgumentParser(
        prog="ether", description="Run and inspect Ether sessions.")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for command in (_run, _bridge, _record, _play, _bag, _certs, _router):
        command.add_parser(sub)
    return parser
