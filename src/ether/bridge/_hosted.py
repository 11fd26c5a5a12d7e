"""`python -m ether.bridge._hosted`: the main of a session an `ether agent` runs
for a main on another host (docs/design/remote-launch.md).

The agent holds zenoh, so it must never fork; this process holds no zenoh, so it
taps as any main script does: it forks the instances (a restart by policy costs
milliseconds) and starts the session's own bridge, which joins the site under
the agent's host name. It is a plain user of the public API (`ether.tap`,
`ether.shutdown`, the `ether/log` topic).

Frames (_agentwire.write_frame) on its stdin and on a copy of its stdout (fd 1
itself becomes stderr: what the instances print goes to the agent's log):

    in   {"config": {...}}                  first: tap it
         {"op": "shutdown", "timeout": s, "graceful": bool}
    out  {"ev": "ready", "session", "instances": {name: pid}}  or  {"ev": "failed", "error"}
         {"ev": "event", "event", "name", "text", "restarts", "pid"}   lifecycle, as they come
         {"ev": "stopped"}

The end of stdin means the agent is gone: this process ends at once (SIGKILL),
and the instances follow by the orphan rules (docs/design/lifecycle.md).
"""
from __future__ import annotations

import os
import signal
import sys
import threading

from ether.lowlevel import launch_trace as mark
from ._agentwire import read_frame, write_frame

_BRIDGE = "ether.bridge"   # the session's bridge's module
_FORWARDED = ("exited", "restarting", "ready", "restarted", "failed")


class _Out:
    def __init__(self, stream):
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, obj) -> None:
        with self._lock:
            try:
                write_frame(self._stream, obj)
            except (BrokenPipeError, OSError, ValueError):
                pass


def _text(item: dict) -> str:
    if item.get("event") == "restarted":   # how long it took: death -> ready and subscribed
        return str(item.get("seconds", ""))
    return str(item.get("cause") or item.get("error") or "")


def main() -> None:
    sys.stdout.flush()
    out = _Out(os.fdopen(os.dup(1), "wb"))
    os.dup2(2, 1)
    # The session's bridge's interpreter, started now: it loads zenoh, TLS and the
    # config models while this one waits, and waits for its spec (_prestart.py).
    from ether.lowlevel import prestart_module
    prestart_module(_BRIDGE)
    # Imported before the config comes: the agent keeps one of these waiting, so a
    # launch does not wait for an interpreter and Ether's imports.
    from ether import ether
    from ether.config import EtherConfig  # noqa: F401  (pydantic's models: tap's first need)
    from ether.lowlevel import inspect
    stdin = sys.stdin.fileno()   # read with os.read (see read_frame), never sys.stdin
    mark("hosted", "imported")
    first = read_frame(stdin)
    mark("hosted", "config in")
    if first is None:   # a spare the agent no longer needs
        os._exit(0)
    if not isinstance(first, dict) or not isinstance(first.get("config"), dict):
        out({"ev": "failed", "error": "no config came"})
        os._exit(2)
    try:
        ether.tap(first["config"])
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the main
        out({"ev": "failed", "error": f"{type(exc).__name__}: {exc}"})
        os._exit(1)

    stopping = threading.Event()   # a shutdown's exits are not news for the main

    def on_log(item: dict) -> None:
        if stopping.is_set():
            return
        if item.get("kind") == "event" and item.get("event") in _FORWARDED and \
                item.get("instance") not in ("main", "bridge"):
            out({"ev": "event", "event": item["event"], "name": item["instance"],
                 "text": _text(item), "restarts": int(item.get("restarts") or 0),
                 "pid": int(item.get("pid") or 0) if item.get("event") == "ready" else 0})

    ether.subscribe("ether/log", on_log, policy="drop")
    members = inspect(ether.session_name()).members
    instances = {m.name: m.pid for m in members
                 if m.class_name and m.name not in ("main", "bridge") and "@" not in m.name
                 and not m.class_name.startswith("bridge proxy")}
    out({"ev": "ready", "session": ether.session_name(), "instances": instances})
    while True:
        try:
            command = read_frame(stdin)
        except (OSError, ValueError):
            command = None
        if command is None:   # the agent is gone: so are we, now
            os.kill(os.getpid(), signal.SIGKILL)
        if isinstance(command, dict) and command.get("op") == "shutdown":
            stopping.set()
            timeout = float(command.get("timeout") or 10.0)
            try:
                ether.shutdown(timeout=timeout if command.get("graceful", True) else min(timeout, 1.0))
            finally:
                out({"ev": "stopped"})
            os._exit(0)


if __name__ == "__main__":
    main()
