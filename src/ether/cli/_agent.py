"""``ether agent [CONFIG.yaml] --site SITE --listen tls/ADDRESS:PORT --ca --cert --key
--operator NAME ...``: run this host's agent, which starts instances here for
mains on other hosts of the site (docs/design/remote-launch.md), until Ctrl-C or
SIGTERM; then it shuts down the sessions it runs, in order.

Its settings are a ``bridge:`` section, from CONFIG.yaml and/or the options (an
option overrides the file's key), under the bridge's rules. It needs mutual TLS
and the names that may launch (``--operator``, else ``allow_hosts``). The
classes it may run are those importable here: from the current directory (or
``--workdir``) and the environment's ``PYTHONPATH``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from . import EXIT_OK
from ._router import _stop_on_signals, _Stop

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "agent", help="launch instances here for mains on other hosts",
        description="Run this host's agent: mains on other hosts of the site whose config "
                    "names this host (host: NAME) start their instances here through it. "
                    "It needs --ca, --cert and --key, and the certificate names that may "
                    "launch (--operator, else --allow-host).")
    parser.add_argument("config", nargs="?", default=None, metavar="CONFIG.yaml",
                        help="a config whose bridge: section sets the agent up")
    parser.add_argument("--site", default=None, help="the site (as in the mains' bridge: site)")
    parser.add_argument("--host", default=None, help="this host's name in the site "
                        "(default: the machine's host name)")
    parser.add_argument("--listen", action="append", default=None, metavar="ENDPOINT",
                        help="e.g. tls/10.0.0.2:7447: this host's address (repeatable)")
    parser.add_argument("--connect", action="append", default=None, metavar="ENDPOINT",
                        help="a router or host to join (repeatable)")
    parser.add_argument("--discovery", choices=("multicast", "none"), default=None,
                        help="also scout the LAN by multicast (default: none)")
    parser.add_argument("--ca", default=None, metavar="PATH", help="the site CA's certificate")
    parser.add_argument("--cert", default=None, metavar="PATH", help="this host's certificate")
    parser.add_argument("--key", default=None, metavar="PATH", help="its key (mode 0600)")
    parser.add_argument("--allow-host", action="append", default=None, metavar="NAME",
                        help="let only these certificate names in (repeatable)")
    parser.add_argument("--operator", action="append", default=None, metavar="NAME",
                        help="certificate names that may launch here (repeatable; "
                             "default: the --allow-host names)")
    parser.add_argument("--no-verify-name", action="store_true",
                        help="do not check names against certificates on connect")
    parser.add_argument("--lease", type=float, default=None, metavar="SECONDS",
                        help="how long a silent peer lives (default 3)")
    parser.add_argument("--workdir", default=None, metavar="DIR",
                        help="where the sessions it starts run and import from (default: here)")
    parser.set_defaults(command=run)


def agent_section(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """The agent's bridge: section (a dict) and the folder its paths start from."""
    from ether import ConfigError  # here (and below): `ether --help` stays light
    from ether.config import EtherConfig
    if args.config is not None:
        config = EtherConfig.from_yaml(args.config)
        if config.bridge is None:
            raise ConfigError(f"{args.config}: no bridge: section to run an agent from")
        section = config.bridge.model_dump(exclude_defaults=True, mode="json")
        base = config.folder
    else:
        section, base = {}, Path.cwd()
    for key, value in (("listen", args.listen), ("connect", args.connect), ("site", args.site),
                       ("host", args.host), ("discovery", args.discovery), ("lease_s", args.lease)):
        if value is not None:
            section[key] = value
    files = {k: getattr(args, k) for k in ("ca", "cert", "key") if getattr(args, k) is not None}
    security = dict(section.get("security") or {})
    security.update({k: os.path.abspath(v) for k, v in files.items()})
    if args.allow_host is not None:
        security["allow_hosts"] = args.allow_host
    if args.operator is not None:
        security["operators"] = args.operator
    if args.no_verify_name:
        security["verify_name"] = False
    missing = [k for k in ("ca", "cert", "key") if k not in security]
    if missing:
        raise ConfigError(f"agent: it needs mutual TLS: --ca, --cert and --key (missing: "
                          f"{', '.join('--' + k for k in missing)})")
    section["security"] = security
    return section, base


def _log(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} ether agent: {line}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from ether.bridge import Agent
    from ether.config import EtherConfig
    section, base = agent_section(args)
    bridge = EtherConfig.load({"bridge": section}).bridge  # the bridge's rules and messages
    workdir = os.path.abspath(args.workdir) if args.workdir else os.getcwd()
    with _stop_on_signals():
        agent = Agent(bridge, base_dir=base, workdir=workdir, say=_log)
        try:
            import threading
            threading.Event().wait()  # ends only through _Stop
        except _Stop:
            pass
        finally:
            agent.close()
    return EXIT_OK
