"""``ether bw TOPIC... [--window N] [--duration S] [--idle S] [--json]``: the
bandwidth of each topic, over the last N messages, from the publishers'
timestamps; arrays sent through the arena count at their size."""
from __future__ import annotations

import argparse

from . import _hz
from ._common import describe, fmt_bytes

__all__ = ["add_parser"]


def add_parser(sub) -> None:
    parser = sub.add_parser("bw", help="bandwidth of topics, arrays included",
                            **describe(__doc__))
    _hz.add_arguments(parser)
    parser.set_defaults(command=run, verb="bw")


def _display(r: dict) -> dict:
    bw = fmt_bytes(r["bytes_per_s"])
    return {**r, "bw": None if bw is None else bw + "/s", "mean": fmt_bytes(r["mean_size"])}


def run(args: argparse.Namespace) -> int:
    return _hz.measure(args, sizes=True, columns=_hz.BW_COLUMNS, display=_display)
