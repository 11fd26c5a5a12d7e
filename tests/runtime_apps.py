"""Instance classes for the runtime tests: start-up, limits, shutdown, signals, orphans."""
from __future__ import annotations

import os

from ether import ether_get, ether_pub, ether_sub

from apps import Undecorated


class Trivial:
    """The smallest instance: one subscription, one reply."""

    @ether_sub(topic="ping-all")
    @ether_pub(topic="pong-all")
    def ping(self, n: int) -> dict:
        return {"n": n, "pid": os.getpid()}

    @ether_get
    def pid(self) -> int:
        return os.getpid()


UndecoratedAlias = Undecorated  # the same class under a second path


class UndecoratedChild(Undecorated):
    """Inherits the method a registry entry for Undecorated decorates."""
