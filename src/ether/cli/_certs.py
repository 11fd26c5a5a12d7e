"""``ether certs init SITE`` and ``ether certs host NAME``: the site CA and the
host certificates for mutual TLS between hosts, so that going beyond loopback
costs one command per host (ether.bridge makes them; ``cryptography``, in the
``remote`` extra, signs them).
"""
from __future__ import annotations

import argparse
import os
import posixpath


from . import EXIT_OK

__all__ = ["add_parser"]

DEFAULT_DIR = "certs"


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "certs", help="make the site CA and host certificates for mutual TLS",
        description="Make the certificates that hosts of one site authenticate each other "
                    "with: `init` once per site, then `host` once per host.")
    commands = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND", required=True)

    init = commands.add_parser(
        "init", help="make the site CA (SITE-ca.pem, SITE-ca.key)",
        description="Make the site's certificate authority: SITE-ca.pem goes to every host, "
                    "SITE-ca.key (mode 0600) stays where host certificates are made.")
    init.add_argument("site", metavar="SITE", help="the site's name (bridge: site:)")
    _common(init)
    init.set_defaults(command=run_init)

    host = commands.add_parser(
        "host", help="make a host certificate signed by the site CA (NAME.pem, NAME.key)",
        description="Make NAME.pem and NAME.key (mode 0600), a certificate for host NAME "
                    "signed by the site CA in DIR, for client and server use, valid for "
                    "NAME and each --ip and --dns given.")
    host.add_argument("name", metavar="NAME", help="the host's name (bridge: host:), its CN")
    host.add_argument("--ip", action="append", default=[], metavar="IP",
                      help="an address the host is reached at (repeatable)")
    host.add_argument("--dns", action="append", default=[], metavar="NAME",
                      help="a DNS name the host is reached by (repeatable)")
    host.add_argument("--site", default=None, metavar="SITE",
                      help="which site CA in DIR signs it (needed when DIR holds several)")
    _common(host)
    host.set_defaults(command=run_host)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default=DEFAULT_DIR, metavar="DIR",
                        help=f"where the files go (default: {DEFAULT_DIR})")
    parser.add_argument("--days", type=int, default=None, metavar="DAYS",
                        help="validity in days (default: 3650 for a CA, 825 for a host)")
    parser.add_argument("--force", action="store_true", help="replace existing files")


def _days(args: argparse.Namespace) -> dict:
    return {} if args.days is None else {"days": args.days}


def run_init(args: argparse.Namespace) -> int:
    from ether.bridge import make_ca  # here: `ether --help` stays light
    written = make_ca(args.site, args.dir, force=args.force, **_days(args))
    print(f"wrote {written.cert}  (the site CA's certificate: copy it to every host)")
    print(f"wrote {written.key}  (mode 0600, the CA's secret key: keep it here, off the hosts)")
    print(f"valid until {written.not_after:%Y-%m-%d}")
    print("next, once per host:")
    print(f"  ether certs host NAME --ip ADDRESS --dir {args.dir}")
    return EXIT_OK


def run_host(args: argparse.Namespace) -> int:
    from ether.bridge import make_host
    written = make_host(args.name, args.dir, site=args.site, ips=args.ip, dns=args.dns,
                        force=args.force, **_days(args))
    site = written.ca.name[:-len("-ca.pem")]
    names = ", ".join([args.name, *args.ip, *args.dns])
    print(f"wrote {written.cert}  (host {args.name}, signed by site {site}'s CA; "
          f"valid for {names} until {written.not_after:%Y-%m-%d})")
    print(f"wrote {written.key}  (mode 0600: copy it to {args.name} only, keeping the mode)")
    if not args.ip and not args.dns:
        print("note: no --ip or --dns: peers that check names on connect reach this host "
              f"only as '{args.name}'; or set verify_name: false")
    print(f"next: copy {written.ca}, {written.cert} and {written.key} to {args.name}, "
          "and give its config (paths are relative to the config file's folder):")
    print(_snippet(site, args.name, written))
    return EXIT_OK


def _snippet(site: str, host: str, written) -> str:
    def rel(path) -> str:
        text = os.fspath(path)
        return text if os.path.isabs(text) else posixpath.normpath(text.replace(os.sep, "/"))

    return "\n".join([
        "  bridge:",
        f"    site: {site}",
        f"    host: {host}",
        "    discovery: multicast        # or none, with connect: [tls/ROUTER:7447]",
        "    listen: [tls/0.0.0.0:7447]",
        "    security:",
        f"      ca: {rel(written.ca)}",
        f"      cert: {rel(written.cert)}",
        f"      key: {rel(written.key)}",
        f"      # allow_hosts: [{host}, ...]   # only these certificate names",
    ])
