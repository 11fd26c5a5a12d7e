"""Starting an instance's process, by ETHER_START_METHOD.

fork (the default): the child is a copy of the main, started in milliseconds,
holding what the main script imported and writing to the stdout/stderr the main
has now; it runs _child.run(spec).

forkserver and spawn: a fresh interpreter, `python -m ether._runtime`, that
reads its LaunchSpec as MessagePack on stdin and imports only what the
instance's class needs (its module path), never the main script, so a script
without an `if __name__ == "__main__":` guard works as with fork. Nothing it
reads from the main is unpickled. (Ether keeps no fork server: both names mean
a fresh interpreter, for a main whose state must not be forked, e.g. CUDA.)

Either way SIGINT is blocked while the child starts, until it ignores SIGINT
itself: Ctrl-C reaches the whole process group, and the main orchestrates.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess

import msgspec

from .. import _errors as errors
from . import _child
from . import _prestart

__all__ = ["Interpreter", "fresh_interpreter", "check_spec", "start", "start_module", "read_spec"]


def fresh_interpreter(method: str) -> bool:
    return method in ("forkserver", "spawn")


def check_spec(spec: _child.LaunchSpec, where: str) -> None:
    """What a fresh interpreter needs of a spec, checked before anything starts."""
    for path in [spec.class_path, *(entry[0] for entry in spec.registry)]:
        if path.split(".", 1)[0] == "__main__":
            raise errors.ConfigError(
                f"{where}: {path!r} is a class of the main script, which an instance started "
                f"by ETHER_START_METHOD=forkserver or spawn cannot import without running the "
                f"script again; move the class into a module, or use fork")
    try:
        msgspec.msgpack.encode(spec)
    except (TypeError, ValueError, OverflowError) as exc:
        raise errors.ConfigError(
            f"{where}: with ETHER_START_METHOD=forkserver or spawn, args and kwargs travel as "
            f"MessagePack and must be plain data (str, numbers, bool, None, bytes, lists, "
            f"dicts): {exc}") from None


def read_spec(data: bytes) -> _child.LaunchSpec:
    return msgspec.msgpack.decode(data, type=_child.LaunchSpec)


class Interpreter:
    """A fresh interpreter's process, as the supervisor uses a multiprocessing one."""

    def __init__(self, popen: subprocess.Popen):
        self._popen = popen
        self.pid = popen.pid
        self.sentinel = os.pidfd_open(popen.pid)  # readable once it has exited

    @property
    def exitcode(self) -> int | None:
        return self._popen.poll()

    def join(self, timeout: float | None = None) -> None:
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def kill(self) -> None:
        if self._popen.poll() is None:
            self._popen.kill()

    def close(self) -> None:
        if self.sentinel >= 0:
            os.close(self.sentinel)
            self.sentinel = -1


def start(spec: _child.LaunchSpec, method: str):
    """Start the instance of `spec`; returns its process (pid, sentinel, exitcode,
    join, kill)."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        if not fresh_interpreter(method):
            _child.preload()  # once, here: every forked child then starts with them loaded
            process = multiprocessing.get_context("fork").Process(
                target=_child.run, args=(spec,), name=f"ether:{spec.name}")
            process.start()
            return process
        return _interpreter("ether._runtime", f"{spec.session}:{spec.name}", spec, spec.cwd)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def start_module(module: str, spec, *, tag: str):
    """Start `python -m module tag` with the MemberSpec `spec` on stdin (see
    _member.py): a member such as the bridge, known here only by its module's
    name. Always a fresh interpreter, whatever ETHER_START_METHOD says: the one
    started ahead for it (_prestart.py), if there is one, else a new one."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        return _interpreter(module, tag, spec, spec.cwd or None, _prestart.take(module))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _interpreter(module: str, tag: str, spec, cwd, popen=None) -> "Interpreter":
    """`python -m module tag` (or `popen`, started already) with `spec` (msgpack)
    on its stdin."""
    if popen is None:
        popen = _prestart.popen(module, tag, cwd)
    try:
        popen.stdin.write(msgspec.msgpack.encode(spec))
        popen.stdin.close()
    except BaseException:
        popen.kill()
        try:
            popen.wait(5.0)  # killed: it ends, unless stuck in the kernel
        except subprocess.TimeoutExpired:
            pass
        raise
    return Interpreter(popen)
