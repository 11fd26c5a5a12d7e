"""What the observing commands share (not a command): --session, --site and
--json, choosing the session, joining it, and printing rows as a table (rich
on a terminal, plain columns otherwise) or as JSON Lines.

Everything heavy (the transport, rich, psutil) is imported inside the
functions, so `ether --help` stays light."""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys

__all__ = ["add_session", "add_json", "session_of", "attach", "print_json", "print_table",
           "CommandError", "fmt_bytes", "fmt_seconds", "fmt_ratio", "fmt_count", "parse_json_arg"]


class CommandError(Exception):
    """A clear, expected failure of a command: its text is printed, and the
    command exits with `code` (2: the session or the arguments)."""

    def __init__(self, text: str, code: int = 2):
        super().__init__(text)
        self.code = code


def add_session(parser: argparse.ArgumentParser, *, site: bool = True) -> None:
    parser.add_argument("--session", metavar="NAME", default=None,
                        help="the session to watch (default: the only live one)")
    if site:
        parser.add_argument("--site", nargs="?", const="", default=None, metavar="SITE",
                            help="every host of the site (needs the site's bridge)")


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print JSON Lines (one object per line) instead of a table")


def session_of(args: argparse.Namespace) -> str:
    """The session the command is about; CommandError (exit 2) listing the
    live ones if it is not live, or if none was named and not exactly one lives."""
    from ether import monitor
    try:
        name = monitor.choose(args.session)
    except monitor.SessionChoiceError as exc:
        raise CommandError(str(exc)) from None
    if getattr(args, "site", None) is not None:
        from ether import lowlevel
        if not monitor.bridge_members(lowlevel.inspect(name)):
            raise CommandError(monitor.needs_bridge(name, args.site or None))
        raise CommandError(f"--site: session {name!r} has a bridge, but this version of "
                           f"`ether {args.verb}` shows one host only")
    return name


_joined = itertools.count(1)


def attach(session: str, verb: str):
    """A Client joined to `session`, named after the command (as `ps` lists it):
    ether-<verb>-<pid>-<n>. Never a name used before in this process: a server
    keeps its sender to a closed inbox of that name, and its reply would go there."""
    from ether import lowlevel
    return lowlevel.Client.attach(session, name=f"ether-{verb}-{os.getpid()}-{next(_joined)}")


def print_json(rows) -> None:
    out = sys.stdout
    for row in rows:
        out.write(json.dumps(row, default=str) + "\n")
    out.flush()


def print_table(rows: list[dict], columns: list[tuple[str, str]], *, title: str | None = None,
                console=None) -> None:
    """rows as a table: columns are (key, header); values already formatted or
    formatted with str()."""
    cells = [[_cell(row.get(key)) for key, _ in columns] for row in rows]
    if console is None and not sys.stdout.isatty():
        headers = [h for _, h in columns]
        widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
        if title:
            print(title)
        print("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
        for r in cells:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        return
    from rich.console import Console
    from rich.table import Table
    table = Table(title=title, box=None, header_style="bold", pad_edge=False)
    for _, header in columns:
        table.add_column(header, overflow="fold")
    for r in cells:
        table.add_row(*r)
    (console or Console()).print(table)


def table_renderable(rows, columns, *, title=None):
    from rich.table import Table
    table = Table(title=title, box=None, header_style="bold", pad_edge=False)
    for _, header in columns:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*[_cell(row.get(key)) for key, _ in columns])
    return table


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "-"
    return str(value)


def fmt_bytes(n) -> str | None:
    if n is None:
        return None
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def fmt_seconds(s) -> str | None:
    if s is None:
        return None
    s = int(s)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def fmt_ratio(x) -> str | None:
    return None if x is None else f"{100 * x:.1f}%"


def fmt_count(x) -> str | None:
    if x is None:
        return None
    return f"{x:.1f}" if isinstance(x, float) else str(x)


def parse_json_arg(text: str, what: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{what} is not JSON: {exc.msg} at position {exc.pos} of {text!r}") from None


def describe(doc: str) -> dict:
    """add_parser keywords from a command module's docstring: its text after the
    usage line's ``...``: as the description, laid out as written."""
    _, _, rest = doc.partition("``:")
    return {"description": (rest or doc).strip(), "formatter_class": argparse.RawDescriptionHelpFormatter}
