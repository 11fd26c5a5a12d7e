"""The command loop of the benchmark's host processes (_bridge_host.py,
_zenoh_peer.py): one JSON command a line on stdin, one JSON answer a line on the
original stdout ({"ok": ...} or {"error": "Type: message", "traceback": ...});
fd 1 becomes stderr for everything else the process (or zenoh) prints."""
from __future__ import annotations

import json
import os
import sys
import traceback

__all__ = ["answers", "serve"]


def answers():
    """The answer stream, with this process's own output moved to stderr."""
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    return out


def write(out, answer: dict) -> None:
    out.write(json.dumps(answer, default=str) + "\n")
    out.flush()


def serve(out, call) -> None:
    """Answer commands with call(name, args) until "exit" or the end of stdin."""
    for line in sys.stdin:
        command = json.loads(line)
        name = command.pop("op")
        if name == "exit":
            break
        try:
            answer = {"ok": call(name, command)}
        except BaseException as exc:  # noqa: BLE001 (every failure goes back to the benchmark)
            answer = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        write(out, answer)
