"""Which session a command means: the one named, else the only live one.

A name that is not live, or no name while zero or several sessions live, is a
SessionChoiceError whose text lists the live sessions (the CLI exits 2 on it).
"""
from __future__ import annotations

from ether import EtherError
from ether import lowlevel

__all__ = ["SessionChoiceError", "choose", "live_names", "needs_bridge"]


class SessionChoiceError(EtherError, LookupError):
    """No session, or no single session, fits what was asked."""


def live_names() -> list[str]:
    return [s.name for s in lowlevel.list_sessions()]


def _listing(names: list[str]) -> str:
    return ", ".join(names) if names else "none"


def choose(name: str | None) -> str:
    """The session `name` if it lives; with None, the only live session."""
    live = live_names()
    if name is not None:
        if name not in live:
            raise SessionChoiceError(
                f"no live session named {name!r} on this host; live sessions: {_listing(live)}")
        return name
    if len(live) == 1:
        return live[0]
    if not live:
        raise SessionChoiceError("no live session on this host (start one with `ether run "
                                 "CONFIG.yaml` or ether.tap)")
    raise SessionChoiceError(f"{len(live)} sessions live on this host; choose one with "
                             f"--session NAME: {_listing(live)}")


def bridge_members(snapshot) -> list:
    """The members of a session that bridge it to a site (issue 8's bridge
    joins the session as a member whose name starts with "bridge")."""
    return [m for m in snapshot.members if m.name.startswith("bridge")]


def needs_bridge(session: str, site: str | None) -> str:
    """Why `--site` cannot be served for `session`: the text of the error."""
    where = f" {site!r}" if site else ""
    return (f"--site{where}: seeing other hosts needs the site's bridge (`ether bridge`, "
            f"issue 8), and no bridge is attached to session {session!r}; without --site "
            f"this command shows this host")
