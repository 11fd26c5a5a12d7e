"""Instance classes for the supervision tests: restarts, stuck handlers, health."""
from __future__ import annotations

import os
import pathlib
import time

from ether import ether, ether_get, ether_health, ether_init, ether_pub, ether_save_all, ether_start, \
    ether_sub


class Echo:
    """Answers pings with its pid (so a test sees which process got them), and
    says how often its init ran (in `path`, one line per run)."""

    def __init__(self, path: str = ""):
        self.path = pathlib.Path(path) if path else None

    @ether_init
    def started(self) -> None:
        if self.path is not None:
            with self.path.open("a") as f:
                f.write(f"init {os.getpid()}\n")

    @ether_get
    def pid(self) -> int:
        return os.getpid()

    @ether_sub(topic="ping")
    @ether_pub(topic="pong")
    def ping(self, n: int) -> dict:
        return {"n": n, "pid": os.getpid()}

    @ether_sub(topic="die")
    def die(self, code: int) -> None:
        os._exit(code)


class Saver:
    """Its save_all appends "saved" to `path` (the shutdown's proof)."""

    def __init__(self, path: str):
        self.path = pathlib.Path(path)

    @ether_get
    def pid(self) -> int:
        return os.getpid()

    @ether_save_all
    def save(self) -> None:
        with self.path.open("a") as f:
            f.write("saved\n")


class Hanger:
    """A handler that never returns (a device read that hangs)."""

    @ether_get
    def pid(self) -> int:
        return os.getpid()

    @ether_sub(topic="hang")
    def hang(self) -> None:
        time.sleep(1e9)


class AliveLoop:
    """A sensor loop that runs `seconds` inside its start handler, saying it is
    alive, then publishes 'loop-done' with its pid."""

    def __init__(self, seconds: float = 2.5):
        self.seconds = seconds

    @ether_start
    def run(self) -> None:
        end = time.monotonic() + self.seconds
        while time.monotonic() < end:
            ether.alive()
            time.sleep(0.01)  # a sensor's sampling period
        ether.pub({"pid": os.getpid()}, topic="loop-done")


class Sickly:
    """Healthy until told otherwise."""

    def __init__(self):
        self.sick = ""

    @ether_get
    def pid(self) -> int:
        return os.getpid()

    @ether_get
    def make_sick(self, why: str) -> None:
        self.sick = why

    @ether_health
    def healthy(self):
        return self.sick or True


class Source:
    """Publishes `count` numbered messages on 'stream' at `rate` per second once
    started, then 'source-done'."""

    def __init__(self, count: int, rate: float):
        self.count, self.rate = count, rate

    @ether_start
    def run(self) -> None:
        period = 1.0 / self.rate
        next_at = time.monotonic()
        for seq in range(self.count):
            ether.pub({"seq": seq}, topic="stream")
            next_at += period
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # the source's own pace
        ether.pub({"count": self.count}, topic="source-done")


class Sink:
    """Checks that 'stream' arrives whole and in order; answers with what it saw."""

    def __init__(self):
        self.next = 0
        self.problems = 0

    @ether_sub(topic="stream")
    def on_item(self, seq: int) -> None:
        if seq != self.next:
            self.problems += 1
        self.next = seq + 1

    @ether_get
    def seen(self) -> dict:
        return {"next": self.next, "problems": self.problems}

    @ether_get
    def pid(self) -> int:
        return os.getpid()
