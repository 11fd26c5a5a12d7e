"""``ether monitor [--port N] [--host 127.0.0.1] [--session NAME]``: a live web
page of a session - its instances, topics with rate sparklines, drops, errors
and the tail of its logs - updated through server-sent events, plus
Prometheus metrics at /metrics. It serves on 127.0.0.1; any other address
needs --allow-remote and a token (--token-file, or --token), and the
page tells how to reach it through `ssh -L` instead. Needs the `monitor`
extra (pip install 'ether[monitor]')."""
from __future__ import annotations

import argparse
import os
import sys

from ._common import describe, CommandError, add_session, session_of

__all__ = ["add_parser"]


def add_parser(sub) -> None:
    parser = sub.add_parser("monitor", help="a live web page of a session (and /metrics)",
                            **describe(__doc__))
    add_session(parser)
    parser.add_argument("--port", type=int, default=8090, metavar="N",
                        help="the port (default 8090; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1", metavar="ADDRESS",
                        help="the address to bind (default 127.0.0.1)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow an address other than loopback (needs a token)")
    parser.add_argument("--token-file", default=None, metavar="PATH",
                        help="a file holding the token every remote request must carry")
    parser.add_argument("--token", default=None, metavar="TOKEN",
                        help="the token itself (visible to `ps`: prefer --token-file)")
    parser.set_defaults(command=run, verb="monitor")


def run(args: argparse.Namespace) -> int:
    from ether import monitor
    token = args.token
    if args.token_file is not None:
        try:
            with open(args.token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as exc:
            raise CommandError(f"--token-file {args.token_file!r}: {exc.strerror}") from None
    try:
        monitor.check_bind(args.host, allow_remote=args.allow_remote, token=token)
    except monitor.BindRefused as exc:
        raise CommandError(str(exc)) from None
    session = session_of(args)
    try:
        server = monitor.serve(session, host=args.host, port=args.port, token=token)
    except ImportError as exc:
        raise CommandError(f"ether monitor needs the monitor extra ({exc.name} is missing): "
                           f"pip install 'ether[monitor]'", code=1) from None
    print(f"ether monitor: session {session} at {server.url}", file=sys.stderr)
    if not monitor.is_loopback(args.host):
        print(f"  from another machine, prefer a tunnel: ssh -L {server.port}:127.0.0.1:{server.port} "
              f"{os.uname().nodename}, then open http://127.0.0.1:{server.port}/", file=sys.stderr)
    try:
        server.wait()
    finally:
        server.close()
    return 0
