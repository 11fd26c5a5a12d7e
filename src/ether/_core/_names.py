"""The naming scheme of shared-memory objects.

Every object of a session is named ``/ether_<sid>`` (the session segment) or
``/ether_<sid>_<kind><token>`` with kind ``m`` (a member's liveness lock), ``i``
(an inbox ring) or ``a`` (a publisher's array arena) and token as 8 hex digits. A session id is 1-12 ASCII letters and
digits, so a name is at most 29 characters: under the 30 that macOS allows.
"""
from __future__ import annotations

import os
import re
import secrets
import time

from .._errors import ConfigError

PREFIX = "ether_"
MAX_NAME = 30
_SID = re.compile(r"[A-Za-z0-9]{1,12}")
_NAME = re.compile(r"ether_([A-Za-z0-9]{1,12})(?:_([mia])([0-9a-f]{8}))?")
MAX_TOKEN = 0xFFFFFFFF


def new_session_id() -> str:
    return secrets.token_hex(4)


def check_session_id(sid: str) -> str:
    if not isinstance(sid, str) or not _SID.fullmatch(sid):
        raise ConfigError(
            f"session name {sid!r} is invalid: use 1-12 ASCII letters or digits")
    return sid


def session_segment(sid: str) -> str:
    return f"/{PREFIX}{sid}"


def member_lock(sid: str, token: int) -> str:
    return f"/{PREFIX}{sid}_m{token:08x}"


def inbox_segment(sid: str, token: int) -> str:
    return f"/{PREFIX}{sid}_i{token:08x}"


def arena_segment(sid: str, token: int) -> str:
    return f"/{PREFIX}{sid}_a{token:08x}"


def parse(name: str) -> tuple[str, str | None, int | None] | None:
    """(sid, kind, token) of an Ether object name (with or without '/'), else None."""
    m = _NAME.fullmatch(name.lstrip("/"))
    if m is None:
        return None
    sid, kind, token = m.groups()
    return sid, kind, (int(token, 16) if token else None)


def new_run_id() -> bytes:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits, so ids
    sort by creation time and never repeat across hosts."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76            # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62            # variant 10
    return value.to_bytes(16, "big")
