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


def _busy(seconds: float) -> None:
    """Simulated work (CPU), not a wait on anything."""
    import time
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


from ether import ether, ether_get, ether_save, ether_sync  # noqa: E402


class Store:
    """A small service: get/save, a slow call, a crash, and a sync."""

    def __init__(self, delay: float = 0.0):
        self.items = {}
        self.delay = delay

    @ether_save()
    def put(self, key: str, value: int) -> dict:
        if key in self.items:
            raise KeyError(f"{key} exists")
        self.items[key] = value
        return {"key": key, "pid": os.getpid()}

    @ether_get
    def fetch(self, key: str) -> dict:
        return {"key": key, "value": self.items[key], "pid": os.getpid()}

    @ether_get
    def echo(self, n: int) -> dict:
        return {"n": n, "pid": os.getpid()}

    @ether_get
    def slow(self, n: int) -> dict:
        import time
        _busy(self.delay)
        return {"n": n, "done_ns": time.monotonic_ns()}

    @ether_get
    def crash(self) -> None:
        import signal
        os.kill(os.getpid(), signal.SIGKILL)

    @ether_sync(topic="prepare")
    def prepare(self, level: int = 1) -> dict:
        import time
        _busy(self.delay)
        return {"level": level, "done_ns": time.monotonic_ns(), "pid": os.getpid()}

    @ether_get
    def ask_other(self, service: str, n: int) -> dict:
        """A service that itself calls another service (nested request)."""
        return {"inner": ether.get(service, "echo", params={"n": n})["n"]}


class Picky:
    @ether_sync(topic="prepare")
    def prepare(self, level: int = 1) -> None:
        raise RuntimeError(f"cannot reach level {level}")


# The README's "Automated Lab Monitoring" classes, as written there, with stand-ins
# for the hardware and the database they use.
import time  # noqa: E402


class _FakeHardware:
    def __init__(self, readings):
        self.readings = list(readings)

    def get_temperature(self):
        return self.readings.pop(0)


class _FakeDb:
    def save_temperature(self, temperature, timestamp):
        pass


class TemperatureSensor:
    def __init__(self, readings=(20.5, 95.0)):
        self._hardware = _FakeHardware(readings)

    @ether_pub(topic="DataLogger.log_temperature")
    def read_temperature(self) -> dict:
        temp = self._hardware.get_temperature()
        return {"temperature": temp, "timestamp": time.time()}

    @ether_start
    def run(self, count: int = 2):
        for _ in range(count):  # a sensor loop calls its pub method directly
            self.read_temperature()


class DataLogger:
    def __init__(self):
        self._db = _FakeDb()

    @ether_sub()
    @ether_pub(topic="ExperimentController.check_temperature")
    def log_temperature(self, temperature: float, timestamp: float) -> dict:
        self._db.save_temperature(temperature, timestamp)
        return {"temperature": temperature, "timestamp": timestamp}


class ExperimentController:
    max_temp = 80.0

    @ether_sub()
    def check_temperature(self, temperature: float, timestamp: float):
        if temperature > self.max_temp:
            self._safety_shutdown(temperature)

    def _safety_shutdown(self, temperature):
        ether.pub({"temperature": temperature}, topic="alarm")


import numpy as np  # noqa: E402


class ArrayEcho:
    """Receives arrays by type hint (also nested in a dict) and reports what it got."""

    @ether_sub(topic="frames")
    @ether_pub(topic="echoes")
    def on_frame(self, frame: np.ndarray, extra: dict, label: str = "") -> dict:
        return {"label": label, "frame": frame, "extra": extra, "writeable": frame.flags.writeable,
                "pid": os.getpid()}


class FireAndForget:
    """Sends a slow request to another instance, then dies before the reply."""

    @ether_get
    def fire_and_die(self, service: str) -> None:
        import signal
        ether.get_later(service, "slow", params={"n": 1})
        os.kill(os.getpid(), signal.SIGKILL)


class SelfCaller:
    @ether_get
    def echo(self, n: int) -> int:
        return n

    @ether_get
    def ask_myself(self) -> int:
        return ether.get("me", "echo", params={"n": 1})


class Undecorated:
    """A class with no Ether import, decorated only through a registry."""

    def triple(self, x: int) -> dict:
        return {"x": 3 * x}


class ArrayKeeper:
    """Keeps (or drops) the large arrays it receives; reports their checksums."""

    def __init__(self):
        self.kept = []

    @ether_sub(topic="big")
    @ether_pub(topic="big-seen")
    def on_big(self, frame: np.ndarray, keep: bool = False, seq: int = 0, work: float = 0.0) -> dict:
        _busy(work)  # a slow subscriber: the publisher may outrun it
        if keep:
            self.kept.append(frame)
        return {"seq": seq, "sum": float(frame.sum(dtype=np.float64)), "shape": list(frame.shape),
                "writeable": frame.flags.writeable, "pid": os.getpid(),
                "first": frame.reshape(-1)[:4].tolist()}

    @ether_get
    def slice_sum(self) -> float:
        """Sum of a slice of the first kept array: views of views stay valid."""
        return float(self.kept[0][1:, 2:].sum(dtype=np.float64))

    @ether_get
    def drop_all(self) -> int:
        self.kept.clear()
        return 0

    @ether_get
    def pid(self) -> int:
        return os.getpid()


class LoanPublisher:
    @ether_get
    def pid(self) -> int:
        return os.getpid()

    @ether_get
    def publish_loans(self, count: int, size: int) -> int:
        for i in range(count):
            frame = ether.empty((size,), np.float32)
            frame[:] = i
            ether.pub({"frame": frame, "seq": i}, topic="big")
        return count


class ArrayService:
    @ether_get
    def make(self, n: int) -> dict:
        return {"a": np.full(n, 7.0)}

    @ether_get
    def total(self, a: np.ndarray) -> float:
        return float(a.sum())


# Delivery policies (tests/integration/test_policy.py).
import socket  # noqa: E402

from ether import InboxFull  # noqa: E402


class _Gated:
    """Its first message waits at a gate, a Unix socket the test listens on:
    connecting tells the test the handler is waiting, one byte lets it go on."""

    def __init__(self, gate: str):
        self._gate = gate
        self._passed = False

    def _wait_at_gate(self) -> None:
        if self._passed:
            return
        self._passed = True
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(60)
            s.connect(self._gate)
            s.recv(1)


class DropSubscriber(_Gated):
    @ether_sub(topic="flood", policy="drop")
    @ether_pub(topic="flood-seen")
    def on_flood(self, seq: int, blob: bytes = b"") -> dict:
        self._wait_at_gate()
        return {"seq": seq}


class BlockSubscriber(_Gated):
    @ether_sub(topic="flood", policy="block", timeout=0.2)
    def on_flood(self, seq: int, blob: bytes = b"") -> None:
        self._wait_at_gate()


class Flooder:
    """Publishes from its own process until a subscriber's inbox stays full."""

    @ether_pub(topic="flood")
    def emit(self, seq: int, blob: bytes) -> dict:
        return {"seq": seq, "blob": blob}

    @ether_get
    def flood(self, count: int, size: int) -> dict:
        blob = bytes(size)
        for seq in range(1, count + 1):
            started = time.monotonic()
            try:
                self.emit(seq, blob)
            except InboxFull as exc:
                return {"type": type(exc).__name__, "error": str(exc), "failed_seq": seq,
                        "waited": time.monotonic() - started}
        return {"failed_seq": None}

    @ether_get
    def statistics(self) -> list:
        return [{"inbox": s.inbox, "policy": s.policy, "sent": s.sent, "dropped": s.dropped,
                 "blocked": s.blocked} for s in ether.statistics()]


class ConflictingPolicies:
    @ether_sub(topic="flood", policy="drop")
    def first(self, seq: int) -> None: ...

    @ether_sub(topic="flood", timeout=1.0)
    def second(self, seq: int) -> None: ...


class PolicyKeeper:
    """Keeps every large array it receives: on "keep-drop" with the drop policy,
    on "keep-block" with the block policy and a 0.3 s timeout."""

    def __init__(self):
        self.kept = []

    @ether_sub(topic="keep-drop", policy="drop")
    @ether_pub(topic="kept")
    def on_drop(self, frame: np.ndarray, seq: int) -> dict:
        self.kept.append(frame)
        return {"seq": seq}

    @ether_sub(topic="keep-block", policy="block", timeout=0.3)
    @ether_pub(topic="kept")
    def on_block(self, frame: np.ndarray, seq: int) -> dict:
        self.kept.append(frame)
        return {"seq": seq}

    @ether_get
    def drop_all(self) -> int:
        self.kept.clear()
        return 0


class FrameIgnorer:
    """Subscribes to "big" without taking its array (or rejecting it): the
    message's blocks must come back all the same."""

    @ether_sub(topic="big")
    @ether_pub(topic="big-seen")
    def on_big(self, seq: int) -> dict:
        return {"seq": seq}


class TwoFrameHandlers:
    """Two handlers of one topic in one process: both get the array."""

    @ether_sub(topic="big")
    @ether_pub(topic="big-seen")
    def first(self, seq: int, frame: np.ndarray) -> dict:
        return {"who": "first", "seq": seq, "value": float(frame[0])}

    @ether_sub(topic="big")
    @ether_pub(topic="big-seen")
    def second(self, seq: int, frame: np.ndarray) -> dict:
        return {"who": "second", "seq": seq, "value": float(frame[0])}


class ArrayStreamer:
    """Publishes `count` large arrays on "stream": sizes from 64 KiB to 2 MiB,
    ordinary and loaned in turn, each with its sequence number and CRC-32."""

    @ether_get
    def stream(self, count: int, seed: int = 0) -> int:
        import zlib
        rng = np.random.default_rng(seed)
        for seq in range(count):
            n = int(rng.integers(16 << 10, 512 << 10))  # float32 elements: 64 KiB .. 2 MiB
            if seq % 2:
                frame = ether.empty((n,), np.float32)
                frame[:] = rng.standard_normal(n, dtype=np.float32)
            else:
                frame = rng.standard_normal(n, dtype=np.float32)
            ether.pub({"seq": seq, "crc": zlib.crc32(frame), "frame": frame}, topic="stream")
            del frame
        ether.pub({"count": count}, topic="stream-end")
        return count


class ArrayChecker:
    """Checks every array of "stream": in order, none missing or repeated, its CRC
    right; keeps some of them for a while (the arena fills and recycles meanwhile)
    and checks those again when it lets go of them and at the end."""

    def __init__(self, keep_every: int = 7, keep_for: int = 20):
        self.keep_every, self.keep_for = keep_every, keep_for
        self.next = 0
        self.problems = []
        self.kept = []

    def _recheck(self, seq, crc, frame) -> None:
        import zlib
        if zlib.crc32(frame) != crc:
            self.problems.append(f"kept array {seq} changed")

    @ether_sub(topic="stream")
    def on_frame(self, seq: int, crc: int, frame: np.ndarray) -> None:
        import zlib
        if seq != self.next:
            self.problems.append(f"expected {self.next}, got {seq}")
        self.next = seq + 1
        if zlib.crc32(frame) != crc:
            self.problems.append(f"array {seq}: CRC mismatch")
        if seq % self.keep_every == 0:
            self.kept.append((seq, crc, frame))
        while self.kept and self.kept[0][0] <= seq - self.keep_for:
            self._recheck(*self.kept.pop(0))

    @ether_sub(topic="stream-end")
    @ether_pub(topic="stream-report")
    def on_end(self, count: int) -> dict:
        for item in self.kept:
            self._recheck(*item)
        return {"pid": os.getpid(), "received": self.next, "count": count,
                "problems": self.problems[:10]}
