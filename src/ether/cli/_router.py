"""``ether router [CONFIG.yaml] [--listen EP ...] [--ca --cert --key] ...``: run a
zenoh router for hosts that reach one another only through it (the WAN), until
Ctrl-C or SIGTERM.

Its settings are a ``bridge:`` section, from CONFIG.yaml or from the options (an
option overrides the file's key), with the same rules as a bridge's: anything
beyond loopback needs mutual TLS. Without ``--listen`` it listens on
``tls/0.0.0.0:7447`` with security, else ``tcp/127.0.0.1:7447``. Paths given as
options are relative to the current directory, those in CONFIG.yaml to its folder.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any


from . import EXIT_OK

__all__ = ["add_parser", "run"]


class _Stop(BaseException):
    """Raised in the main thread by the SIGINT/SIGTERM handler (see _run.py)."""


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "router", help="run a zenoh router for hosts on other networks",
        description="Run a zenoh router that hosts with `connect: [tls/THIS:7447]` reach one "
                    "another through, until Ctrl-C or SIGTERM. Settings come from the "
                    "bridge: section of CONFIG.yaml and/or the options; beyond loopback it "
                    "needs --ca, --cert and --key (see `ether certs`).")
    parser.add_argument("config", nargs="?", default=None, metavar="CONFIG.yaml",
                        help="a config whose bridge: section sets the router up")
    parser.add_argument("--listen", action="append", default=None, metavar="ENDPOINT",
                        help="e.g. tls/0.0.0.0:7447, zenoh's port (repeatable)")
    parser.add_argument("--connect", action="append", default=None, metavar="ENDPOINT",
                        help="another router to join (repeatable)")
    parser.add_argument("--site", default=None, help="the site (its keys, for allow_hosts)")
    parser.add_argument("--discovery", choices=("multicast", "none"), default=None,
                        help="also scout the LAN by multicast (default: none)")
    parser.add_argument("--ca", default=None, metavar="PATH", help="the site CA's certificate")
    parser.add_argument("--cert", default=None, metavar="PATH", help="this router's certificate")
    parser.add_argument("--key", default=None, metavar="PATH", help="its key (mode 0600)")
    parser.add_argument("--allow-host", action="append", default=None, metavar="NAME",
                        help="let only these certificate names in (repeatable)")
    parser.add_argument("--no-verify-name", action="store_true",
                        help="do not check names against certificates on connect")
    parser.add_argument("--lease", type=float, default=None, metavar="SECONDS",
                        help="how long a silent peer lives (default 3)")
    parser.set_defaults(command=run)


def router_section(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """The router's bridge: section (a dict) and the folder its paths start from."""
    from ether import ConfigError  # here (and below): `ether --help` stays light
    from ether.bridge import DEFAULT_PORT
    from ether.config import EtherConfig
    if args.config is not None:
        config = EtherConfig.from_yaml(args.config)
        if config.bridge is None:
            raise ConfigError(f"{args.config}: no bridge: section to run a router from")
        section = config.bridge.model_dump(exclude_defaults=True, mode="json")
        base = config.folder
    else:
        section, base = {}, Path.cwd()
    for key, value in (("listen", args.listen), ("connect", args.connect), ("site", args.site),
                       ("discovery", args.discovery), ("lease_s", args.lease)):
        if value is not None:
            section[key] = value
    files = {k: getattr(args, k) for k in ("ca", "cert", "key") if getattr(args, k) is not None}
    if files or args.allow_host is not None or args.no_verify_name:
        security = dict(section.get("security") or {})
        security.update({k: os.path.abspath(v) for k, v in files.items()})
        if args.allow_host is not None:
            security["allow_hosts"] = args.allow_host
        if args.no_verify_name:
            security["verify_name"] = False
        missing = [k for k in ("ca", "cert", "key") if k not in security]
        if missing:
            raise ConfigError(f"router: security needs --ca, --cert and --key (missing: "
                              f"{', '.join('--' + k for k in missing)})")
        section["security"] = security
    if not section.get("listen"):
        host = "tls/0.0.0.0" if section.get("security") else "tcp/127.0.0.1"
        section["listen"] = [f"{host}:{DEFAULT_PORT}"]
    return section, base


def run(args: argparse.Namespace) -> int:
    from ether.bridge import Router
    from ether.config import EtherConfig
    section, base = router_section(args)
    bridge = EtherConfig.load({"bridge": section}).bridge  # the bridge's rules and messages
    with _stop_on_signals():
        try:
            with Router(bridge, base_dir=base, log=_log):
                threading.Event().wait()  # ends only through _Stop
        except _Stop:
            pass
    return EXIT_OK


def _log(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} ether router: {line}", file=sys.stderr, flush=True)


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stop(signal.Signals(signum).name)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
