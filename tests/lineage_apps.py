"""Instance classes for the attach and provenance tests: a two-stage pipeline
whose messages have known causes, and a service."""
import numpy as np

from ether import ether_get, ether_pub, ether_sub, ether_sync


class Source:
    """On "go", publishes n messages to "raw" (their cause: the go message)."""

    @ether_sub(topic="go")
    def go(self, n: int = 1, tag: str = "") -> None:
        for i in range(n):
            self.emit(i=i, tag=tag)

    @ether_pub(topic="raw")
    def emit(self, i: int, tag: str) -> dict:
        return {"i": i, "tag": tag}


class Relay:
    @ether_sub(topic="raw")
    @ether_pub(topic="cooked")
    def cook(self, i: int, tag: str) -> dict:
        return {"i": i, "tag": tag, "cooked": True}


class Echo:
    def __init__(self, label: str = ""):
        self.label = label

    @ether_get
    def echo(self, value: int) -> dict:
        return {"value": value, "label": self.label}

    @ether_sync(topic="prepare")
    def prepare(self, level: int = 0) -> str:
        return f"{self.label} at {level}"


class Frames:
    """On "emit", publishes `count` arrays large enough for the arena, filled with
    its own `fill` (so a receiver can tell which session a frame came from)."""

    def __init__(self, fill: float = 0.0):
        self.fill = fill

    @ether_sub(topic="emit")
    def emit(self, count: int = 1) -> None:
        for i in range(count):
            self.frame(i=i)

    @ether_pub(topic="frames")
    def frame(self, i: int) -> dict:
        return {"i": i, "data": np.full(1 << 16, self.fill, dtype=np.float32)}


class Big:
    """Replies of any size a publish may have."""

    @ether_get
    def numbers(self, n: int) -> list:
        return list(range(n))

    @ether_get
    def frame(self, mib: int) -> dict:
        data = np.arange((mib << 20) // 4, dtype=np.float32)
        return {"data": data, "sum": float(data.sum(dtype=np.float64))}

    @ether_get
    def blob(self, mib: int) -> bytes:
        return b"z" * (mib << 20)


class SensorWatcher:
    """A decorated pattern subscription: every topic under sensors/."""

    @ether_sub(topic="sensors/*")
    @ether_pub(topic="watched")
    def watch(self, value: int) -> dict:
        return {"value": value}
