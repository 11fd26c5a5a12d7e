"""``ether bridge CONFIG.yaml [--duration SECONDS]``: a session with a bridge and no
instances, for a host that only watches or calls (other processes attach to it:
`ether.attach(name)`). The config needs a `bridge:` section; its instances, if
any, are not run.
"""
from __future__ import annotations

import argparse
import sys
import threading


from . import EXIT_INTERRUPTED, EXIT_OK
from ._run import _seconds, _Stop, _stop_on_signals

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "bridge", help="run this host's bridge to the site, with no instances",
        description="Start a session with only the bridge of CONFIG's bridge: section, so that "
                    "this host sees the site's topics and services; run until Ctrl-C, SIGTERM "
                    "or --duration.")
    parser.add_argument("config", metavar="CONFIG.yaml", help="a config with a bridge: section")
    parser.add_argument("--duration", type=_seconds, default=None, metavar="SECONDS",
                        help="stop after this many seconds (default: run until stopped)")
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    try:
        return _run_bridge(args)
    except _Stop:  # a second signal cut the shutdown short
        print("ether: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run_bridge(args: argparse.Namespace) -> int:
    from ether import ConfigError
    from ether.config import EtherConfig  # here: `ether --help` stays light
    config = EtherConfig.from_yaml(args.config)
    if config.bridge is None:
        raise ConfigError(f"{args.config}: no bridge: section (ether bridge runs only a bridge)")
    only_bridge = EtherConfig(bridge=config.bridge, shutdown_timeout_s=config.shutdown_timeout_s)
    from ether import ether

    with _stop_on_signals():
        try:
            ether.tap(config=only_bridge)
            print(f"ether: bridge of host {config.bridge.host_name()!r} in site "
                  f"{config.bridge.site!r} is up; session {ether.session_name()}", flush=True)
            threading.Event().wait(args.duration)
        except _Stop:
            pass
        finally:
            ether.shutdown()
    return EXIT_OK
