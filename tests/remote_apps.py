"""Instances for the remote-launch tests (tests/remote/test_remote_launch.py),
imported by the sessions an `ether agent` starts on the other host."""
from __future__ import annotations

import os
import time

from ether import ether_save_all, ether_shutdown


class Journal:
    """Appends "<phase> <name> <time.monotonic()>" to `path` at save_all and at
    shutdown: the proof that a shutdown ran its phases, in order."""

    def __init__(self, path: str, name: str):
        self.path, self.name = path, name

    def _note(self, phase: str) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(f"{phase} {self.name} {os.getpid()} {time.monotonic():.6f}\n")

    @ether_save_all
    def save(self) -> None:
        self._note("save_all")

    @ether_shutdown
    def done(self) -> None:
        self._note("shutdown")
