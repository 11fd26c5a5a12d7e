"""Every ETHER_* environment variable, parsed, validated and documented here once.

Each reader parses its variable when it is called, never at import and never
cached (a test sets one with monkeypatch; a process reads them when it needs
them). Unset or empty means the default. Any other value that does not parse or
is out of range is a ConfigError naming the variable, the value and what is
accepted: never a silent fallback.

README.md's settings table is `table()`; `python -m ether._settings` prints it,
and a test fails if the two differ.

This module sits at the bottom layer: it imports nothing of Ether but _errors.
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from ._errors import ConfigError

__all__ = [
    "Setting", "SETTINGS", "MAX_MESSAGE_BYTES", "ARENA_BYTES", "ARRAY_INLINE", "START_METHOD",
    "LOG_DIR", "UNBLOCK_TIMEOUT", "SANITIZE", "LAUNCH_TRACE", "max_message_bytes", "arena_bytes", "array_inline",
    "start_method", "log_dir", "unblock_timeout", "launch_trace", "child_environment", "validate",
    "table",
]

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


@dataclasses.dataclass(frozen=True)
class Setting:
    """One variable, as the README's table shows it."""
    name: str
    type: str       # bytes, seconds, choice, path
    default: str
    accepted: str   # the range, in words: also the second half of its ConfigError
    meaning: str


# The largest message an inbox's ring takes: the ring's capacity (4 messages,
# rounded up to a power of two) stays within ETHER_RING_MAX_CAPACITY (16 GiB).
_MESSAGE_MIN, _MESSAGE_MAX = 1 * KiB, 4 * GiB - 1 * KiB
_ARENA_MIN = 1 * MiB

MAX_MESSAGE_BYTES = Setting(
    "ETHER_MAX_MESSAGE_BYTES", "bytes", f"{1 * MiB} (1 MiB)",
    f"a whole number from {_MESSAGE_MIN} (1 KiB) to {_MESSAGE_MAX} (4 GiB - 1 KiB)",
    "The largest inbox record, envelope included; each inbox holds four. A larger message "
    "travels through the sender's array arena instead. Read when a process creates its "
    "inbox: set it before `tap`.")
ARENA_BYTES = Setting(
    "ETHER_ARENA_BYTES", "bytes",
    "512 MiB, or a quarter of the free /dev/shm if that is less (16 MiB at least)",
    f"a whole number >= {_ARENA_MIN} (1 MiB) that fits in /dev/shm (checked at `tap`)",
    "The size of each publishing process's shared-memory arena, where large arrays travel. "
    "Its pages are reserved as it uses them (the first 16 MiB at once): a /dev/shm that "
    "fills up meanwhile is a ShmSpaceError at the publish that needs more, never a crash.")
ARRAY_INLINE = Setting(
    "ETHER_ARRAY_INLINE", "bytes", f"{64 * KiB} (64 KiB)", "a whole number >= 0",
    "Arrays smaller than this travel inside the message; larger ones through the arena.")
START_METHOD = Setting(
    "ETHER_START_METHOD", "choice", "fork", "fork, forkserver or spawn",
    "How instance processes start. `fork` is fastest and writes to the main's current "
    "stdout/stderr; `forkserver` or `spawn` (the same here) start each in a fresh interpreter "
    "that imports only its class's module, never the main script: for a main that holds "
    "state that must not be forked (e.g. an initialised GPU).")
LOG_DIR = Setting(
    "ETHER_LOG_DIR", "path", "`<tmp>/ether-logs-<uid>`", "a directory (created if missing)",
    "Where each session's log directory `<session>/` goes: one file per instance and "
    "`session.log` for the main process.")
_UNBLOCK_MIN, _UNBLOCK_MAX = 0.001, 3600.0
UNBLOCK_TIMEOUT = Setting(
    "ETHER_UNBLOCK_TIMEOUT", "seconds", "0.5",
    f"a number of seconds from {_UNBLOCK_MIN:g} to {_UNBLOCK_MAX:g}",
    "How long an inbox waits for a sender that has reserved a record and not committed "
    "it (its process stopped, a debugger, a `claim()` left open) before it skips that "
    "record so that the other senders go on, and logs which process stalled. The stalled "
    "sender's send or commit then fails with `ClaimSkipped`; its record is not delivered. "
    "Read by the receiving process while it waits.")
SANITIZE = Setting(
    "ETHER_SANITIZE", "choice", "unset: no sanitizers",
    "address (ASan + UBSan) or thread (TSan)",
    "Build time only, read by csrc/_build.py at `pip install`: compile the C core with "
    "sanitizers (docs/design/sanitizers.md).")

LAUNCH_TRACE = Setting(
    "ETHER_LAUNCH_TRACE", "path", "unset: no trace", "a file (appended to)",
    "Measurement only: every process of a tap (the main, its bridge, an `ether agent` and "
    "what it starts) appends a line per start-up stage, `monotonic-time pid who stage`, to "
    "this file (`benchmarks/bench_lifecycle.py --trace`).")

SETTINGS = (MAX_MESSAGE_BYTES, ARENA_BYTES, ARRAY_INLINE, START_METHOD, LOG_DIR, UNBLOCK_TIMEOUT,
            SANITIZE, LAUNCH_TRACE)

_WHOLE = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")


def _raw(setting: Setting) -> str | None:
    return os.environ.get(setting.name) or None


def _bad(setting: Setting, raw: str, accepted: str | None = None) -> ConfigError:
    return ConfigError(f"{setting.name}={raw!r} is invalid: expected "
                       f"{accepted or setting.accepted}")


def _bytes(setting: Setting, low: int, high: int | None = None) -> int | None:
    raw = _raw(setting)
    if raw is None:
        return None
    text = raw.strip()
    value = int(text) if _WHOLE.fullmatch(text) else -1
    if value < low or (high is not None and value > high):
        raise _bad(setting, raw)
    return value


def max_message_bytes() -> int:
    """ETHER_MAX_MESSAGE_BYTES: the largest message an inbox accepts."""
    value = _bytes(MAX_MESSAGE_BYTES, _MESSAGE_MIN, _MESSAGE_MAX)
    return 1 * MiB if value is None else value


def arena_bytes() -> int | None:
    """ETHER_ARENA_BYTES, or None if unset: the arena then sizes itself from the
    free /dev/shm (see _core/_arena_writer.py)."""
    return _bytes(ARENA_BYTES, _ARENA_MIN)


def array_inline() -> int:
    """ETHER_ARRAY_INLINE: arrays smaller than this travel inline."""
    value = _bytes(ARRAY_INLINE, 0)
    return 64 * KiB if value is None else value


def start_method() -> str:
    """ETHER_START_METHOD: one of the platform's multiprocessing start methods."""
    raw = _raw(START_METHOD)
    if raw is None:
        return "fork"
    import multiprocessing  # only when asked: importing this module does nothing
    methods = multiprocessing.get_all_start_methods()
    if raw not in methods:
        raise _bad(START_METHOD, raw, f"one of {', '.join(methods)}")
    return raw


def log_dir() -> Path | None:
    """ETHER_LOG_DIR, or None if unset (the default is the logger's to make)."""
    raw = _raw(LOG_DIR)
    if raw is None:
        return None
    path = Path(raw)
    if path.exists() and not path.is_dir():
        raise _bad(LOG_DIR, raw, f"{LOG_DIR.accepted}; it exists and is not one")
    return path


def launch_trace() -> str | None:
    """ETHER_LAUNCH_TRACE, or None if unset: the file start-up stages go to."""
    return _raw(LAUNCH_TRACE)


def child_environment(path_first: str) -> dict[str, str]:
    """The environment of a child interpreter (an instance started by forkserver or
    spawn): this process's, with `path_first` at the front of PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [path_first, env.get("PYTHONPATH")]))
    return env


def unblock_timeout() -> float:
    """ETHER_UNBLOCK_TIMEOUT: seconds an inbox waits for an uncommitted record
    before it skips it."""
    raw = _raw(UNBLOCK_TIMEOUT)
    if raw is None:
        return 0.5  # a stalled record costs the inbox well under a second, detection included
    text = raw.strip()
    value = float(text) if _DECIMAL.fullmatch(text) else -1.0
    if not _UNBLOCK_MIN <= value <= _UNBLOCK_MAX:
        raise _bad(UNBLOCK_TIMEOUT, raw)
    return value


def validate() -> None:
    """Read every run-time setting once: `tap` calls this before it creates anything."""
    max_message_bytes()
    arena_bytes()
    array_inline()
    start_method()
    log_dir()
    unblock_timeout()


def table() -> str:
    """The settings as a Markdown table (README.md carries it)."""
    rows = ["| variable | type | default | accepted | meaning |", "|---|---|---|---|---|"]
    rows += [f"| `{s.name}` | {s.type} | {s.default} | {s.accepted} | {s.meaning} |"
             for s in SETTINGS]
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
