"""Classes the bridge tests run as instances on either "host"."""
from __future__ import annotations

import os
import sys

from ether import ether_get, ether_save, ether_sub, ether_sync


class DataService:
    """The README's data service; `where` says which host answered."""

    def __init__(self, where: str = "?"):
        self.where = where
        self.data: dict[int, dict] = {}

    @ether_save()
    def save_item(self, id: int, name: str, tags: list[str]) -> dict:
        if id in self.data:
            raise ValueError(f"Item {id} already exists")
        self.data[id] = {"name": name, "tags": tags}
        return self.data[id]

    @ether_get
    def get_item(self, id: int) -> dict:
        if id not in self.data:
            raise KeyError(f"Item {id} not found")
        return self.data[id]

    @ether_get
    def where_am_i(self) -> dict:
        return {"where": self.where, "pid": os.getpid(), "zenoh": "zenoh" in sys.modules,
                "ppid": os.getppid()}

    @ether_get
    def slow(self, seconds: float) -> dict:
        import threading
        threading.Event().wait(seconds)
        return {"slept": seconds}


class Participant:
    """A sync participant that fails when told to."""

    def __init__(self, fail: bool = False):
        self.fail = fail

    @ether_sync(topic="prepare")
    def prepare(self, trial: int = 0) -> dict:
        if self.fail:
            raise RuntimeError(f"cannot prepare trial {trial}")
        return {"trial": trial, "pid": os.getpid()}


class SlowSink:
    """A drop subscriber of frames that takes its time over each."""

    def __init__(self, seconds: float = 0.1):
        self.seconds = seconds
        self.seen: list[int] = []

    @ether_sub(topic="frames", policy="drop")
    def take(self, i: int, frame) -> None:
        import threading
        self.seen.append(i)
        threading.Event().wait(self.seconds)

    @ether_get
    def taken(self) -> list:
        return self.seen


class SlowBlockSink:
    """A block subscriber of "slow" (waits up to a minute for room) that takes
    `seconds` over each message: a slow remote subscriber."""

    def __init__(self, seconds: float = 1.0):
        self.seconds = seconds

    @ether_sub(topic="slow", policy="block", timeout=60.0)
    def take(self, i: int, blob) -> None:
        import threading
        threading.Event().wait(self.seconds)
