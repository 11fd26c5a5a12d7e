"""Classes the observing tests (the CLI verbs, the monitor) run in a session."""
from __future__ import annotations

import os

import numpy as np

from ether import ether_get, ether_pub, ether_sub
from ether.utils import get_ether_logger

log = get_ether_logger("ObserveApps")


class Ticker:
    """Publishes `count` ticks on "ticks" when asked (a service, so the test
    decides when): the publisher of a known count."""

    @ether_pub(topic="ticks")
    def tick(self, n: int) -> dict:
        return {"n": n}

    @ether_get
    def pid(self) -> int:
        return os.getpid()

    @ether_get
    def burst(self, count: int) -> dict:
        for n in range(count):
            self.tick(n)
        return {"sent": count}


class Scaler:
    """Multiplies what arrives on "ticks" and logs every 10th."""

    def __init__(self, factor: int = 2):
        self.factor = factor

    @ether_sub(topic="ticks")
    @ether_pub(topic="scaled")
    def scale(self, n: int) -> dict:
        if n % 10 == 0:
            log.info("scaler saw tick %d", n)
        return {"n": n, "value": n * self.factor}

    @ether_get
    def pid(self) -> int:
        return os.getpid()

    @ether_get
    def describe(self, verbose: bool = False) -> dict:
        return {"factor": self.factor, "verbose": verbose}

    @ether_get
    def fail(self) -> dict:
        raise ValueError("asked to fail")


class Sink:
    """Counts what reaches it, on "scaled" (drop policy) and "frames"."""

    def __init__(self):
        self.seen = 0

    @ether_sub(topic="scaled", policy="drop")
    def take(self, n: int, value: int) -> None:
        self.seen += 1

    @ether_sub(topic="frames")
    def frame(self, frame: np.ndarray) -> None:
        self.seen += 1

    @ether_get
    def pid(self) -> int:
        return os.getpid()

    @ether_get
    def count(self) -> dict:
        return {"seen": self.seen}


CONFIG = {
    "instances": {
        "ticker": {"class_path": "observe_apps.Ticker"},
        "scaler": {"class_path": "observe_apps.Scaler", "kwargs": {"factor": 3}},
        "sink": {"class_path": "observe_apps.Sink"},
    }
}
