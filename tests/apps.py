"""Classes that the integration tests run as instances (importable by them)."""
from __future__ import annotations

import os
import pathlib

import msgspec
import pydantic

from ether import (ether_cleanup, ether_init, ether_pub, ether_save_all, ether_shutdown,
                   ether_start, ether_sub)


class Doubler:
    """Doubles x; rejects bad input by type hint; raises on 13."""

    @ether_sub(topic="numbers")
    @ether_pub(topic="doubled")
    def double(self, x: int, label: str = "none") -> dict:
        if x == 13:
            raise RuntimeError("unlucky number")
        return {"x": x * 2, "label": label, "pid": os.getpid()}


class Point(msgspec.Struct):
    x: float
    y: float


class Box(pydantic.BaseModel):
    width: int
    height: int


class Shapes:
    """Parameters that are msgspec Structs and pydantic models; **kwargs."""

    @ether_sub(topic="shapes")
    @ether_pub(topic="areas")
    def area(self, point: Point, box: Box, **extra) -> dict:
        return {"area": box.width * box.height, "point": [point.x, point.y],
                "extra": sorted(extra)}


class TwoHandlers:
    """Two handlers on one topic both run; a default topic; a result that is None."""

    @ether_sub(topic="ping")
    @ether_pub(topic="pong")
    def first(self, n: int) -> dict:
        return {"by": "first", "n": n}

    @ether_sub(topic="ping")
    @ether_pub(topic="pong")
    def second(self, n: int) -> dict:
        return {"by": "second", "n": n}

    @ether_sub()
    @ether_pub(topic="pong")
    def direct(self) -> None:
        return None


class Recorder:
    """Writes its lifecycle to a file, in order."""

    def __init__(self, path: str):
        self.path = pathlib.Path(path)

    def _note(self, what: str) -> None:
        with self.path.open("a") as f:
            f.write(what + "\n")

    @ether_init
    def on_init(self):
        self._note("init")

    @ether_start
    def on_start(self):
        self._note("start")

    @ether_save_all
    def save(self):
        self._note("save_all")

    @ether_cleanup()
    def clean(self):
        self._note("cleanup")

    @ether_shutdown
    def bye(self):
        self._note("shutdown")


class Exploding:
    def __init__(self, fuse: str = "boom"):
        raise ValueError(f"constructor refused: {fuse}")


class Vanishing:
    def __init__(self):
        os._exit(3)
