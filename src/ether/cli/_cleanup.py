"""``ether cleanup [--dry-run] [--json]``: remove what dead sessions left in
/dev/shm (a session whose main process died without cleaning up), never
anything of a live session, and say what was removed. Logs stay."""
from __future__ import annotations

import argparse
import os

from ._common import describe, print_json

__all__ = ["add_parser"]


def add_parser(sub) -> None:
    parser = sub.add_parser("cleanup", help="remove what dead sessions left in /dev/shm",
                            **describe(__doc__))
    parser.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    parser.add_argument("--json", action="store_true", help="print JSON Lines")
    parser.set_defaults(command=run, verb="cleanup")


def run(args: argparse.Namespace) -> int:
    from ether import lowlevel
    from ._doctor import stale
    found = stale()["sessions"]
    before = {sid: sorted(n for n in os.listdir("/dev/shm") if n == f"ether_{sid}"
                          or n.startswith(f"ether_{sid}_")) for sid in found}
    removed = found if args.dry_run else lowlevel.remove_stale_sessions()
    rows = [{"session": sid, "objects": before.get(sid, []), "removed": not args.dry_run}
            for sid in removed]
    if args.json:
        print_json(rows)
    elif not rows:
        print("nothing to clean up: no dead session left anything in /dev/shm")
    else:
        verb = "would remove" if args.dry_run else "removed"
        for r in rows:
            print(f"{verb} session {r['session']}: {len(r['objects'])} object(s) "
                  f"({', '.join(r['objects'])})")
    return 0
