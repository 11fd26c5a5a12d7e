"""Instance classes for the runtime tests: start-up, limits, shutdown, signals, orphans."""
from __future__ import annotations

import os
import pathlib
import threading

from ether import ether, ether_get, ether_init, ether_pub, ether_save_all, ether_start, ether_sub

from apps import Undecorated, _busy


def _append(path: pathlib.Path, line: str) -> None:
    with path.open("a") as f:
        f.write(line + "\n")


class _AnnouncesPid:
    """Tells its pid (ask before making it busy: a busy instance answers late)."""

    @ether_get
    def pid(self) -> int:
        return os.getpid()


class SlowSaver(_AnnouncesPid):
    """Takes `work` seconds (CPU) per message and appends each seq it handled to
    `path`; its save_all appends "saved <count>" to `path`.saved."""

    def __init__(self, path: str, work: float = 0.06):
        self.path = pathlib.Path(path)
        self.work = work
        self.count = 0

    @ether_sub(topic="slow")
    def on_item(self, seq: int) -> None:
        _busy(self.work)
        self.count += 1
        _append(self.path, str(seq))

    @ether_save_all
    def save(self) -> None:
        _append(pathlib.Path(f"{self.path}.saved"), f"saved {self.count}")


class StuckHandler(_AnnouncesPid):
    """Its handler never returns (a read from a device that hangs)."""

    def __init__(self, path: str):
        self.path = pathlib.Path(path)

    @ether_sub(topic="stuck")
    def on_item(self, seq: int) -> None:
        threading.Event().wait()

    @ether_save_all
    def save(self) -> None:
        _append(pathlib.Path(f"{self.path}.saved"), "saved")


class SensorLoop(_AnnouncesPid):
    """An @ether_start loop that never returns and never asks ether.stopping()."""

    @ether_pub(topic="reading")
    def read(self) -> dict:
        return {"value": 1.0}

    @ether_start
    def run(self) -> None:
        while True:
            self.read()
            _busy(0.001)


class WaitingLoop(_AnnouncesPid):
    """An @ether_start handler that waits forever in C (a blocking driver call)."""

    @ether_start
    def run(self) -> None:
        threading.Event().wait()


class StubbornLoop(_AnnouncesPid):
    """A loop that swallows every exception, SystemExit included."""

    @ether_start
    def run(self) -> None:
        while True:
            try:
                threading.Event().wait()
            except BaseException:
                pass


class LingeringThread(_AnnouncesPid):
    """Leaves a thread behind that is not a daemon and never ends: the interpreter's
    exit would wait for it for ever."""

    def __init__(self):
        threading.Thread(target=threading.Event().wait, name="lingering", daemon=False).start()


class PoliteSensorLoop:
    """A sensor loop as the README writes it: it ends once shutdown begins."""

    def __init__(self, path: str):
        self.path = pathlib.Path(path)
        self.readings = 0

    @ether_pub(topic="reading")
    def read(self) -> dict:
        return {"value": 1.0}

    @ether_start
    def run(self) -> None:
        _append(self.path, "started")
        while not ether.stopping():
            self.read()
            self.readings += 1
            _busy(0.001)
        _append(self.path, "stopped")

    @ether_save_all
    def save(self) -> None:
        _append(self.path, "saved")


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


class CollectorState:
    """Tells how its garbage collector stands (the tap pauses the main's)."""

    @ether_get
    def collector(self) -> dict:
        import gc
        return {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}


class CollectorStateWithInit(CollectorState):
    """The same, with an init handler (that says it ran)."""

    def __init__(self):
        self.inited = False

    @ether_init
    def on_init(self) -> None:
        self.inited = True

    @ether_get
    def was_inited(self) -> bool:
        return self.inited
