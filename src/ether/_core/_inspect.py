"""Read-only views of sessions from any process of the same user, without
joining them: which sessions live on this host, and a snapshot of one."""
from __future__ import annotations

__all__ = ["list_sessions", "inspect"]


def list_sessions():
    """The live sessions on this host (not implemented yet)."""
    raise NotImplementedError


def inspect(session_name: str):
    """A snapshot of a running session (not implemented yet)."""
    raise NotImplementedError
