"""Interpreters started ahead: `python -m MODULE` begun before the session it
will serve exists, so that its start (an interpreter and its imports: the
bridge's, with zenoh and TLS, about 0.3 s here and more under load) overlaps
what comes before it instead of following it (docs/design/remote-launch.md).

`start(module)` starts one; `_launch.start_module` takes it (`take`) and writes
its spec to its stdin as to a new one. Such an interpreter imports what it needs
and then waits for its spec; if the spec never comes (the tap failed, or the
process that started it ended) its stdin reaches its end and it exits quietly
(_member.Member.from_stdin). Nothing else differs: the same environment, user
and working directory rules as start_module's own.

Who starts one: `ether.tap` as soon as it knows the config has a `bridge:`
section, before it checks the rest and imports the supervisor; and the hosted
main of `ether agent` at its own start, long before its launch comes.
"""
from __future__ import annotations

import pathlib
import signal
import subprocess
import sys

from .. import _settings

__all__ = ["BRIDGE", "start", "take", "discard", "popen"]

BRIDGE = "ether.bridge"   # the bridge's module (_supervisor.BRIDGE_MODULE): started ahead

_waiting: dict[str, subprocess.Popen] = {}   # module -> its interpreter, waiting for a spec


def popen(module: str, tag: str, cwd) -> subprocess.Popen:
    """`python -m module tag`, its stdin a pipe for its spec."""
    # The directory that holds this `ether`, first: the child imports the same one.
    env = _settings.child_environment(str(pathlib.Path(__file__).resolve().parents[2]))
    return subprocess.Popen([sys.executable, "-m", module, tag], stdin=subprocess.PIPE,
                            cwd=cwd, env=env, close_fds=True)


def start(module: str) -> None:
    """Start `python -m module` now, for the next start_module(module)."""
    if module in _waiting:
        return
    # As start_module's: SIGINT blocked until the child ignores it itself.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        _waiting[module] = popen(module, "prestarted", None)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def take(module: str) -> subprocess.Popen | None:
    """The interpreter started for `module`, if it is still alive."""
    process = _waiting.pop(module, None)
    if process is not None and process.poll() is not None:
        process.stdin.close()
        return None
    return process


def discard() -> None:
    """End the ones not taken (the tap failed first): they hold nothing yet, so a
    kill, at once, rather than waiting for them to finish importing."""
    while _waiting:
        _, process = _waiting.popitem()
        process.kill()
        process.wait()
        process.stdin.close()
