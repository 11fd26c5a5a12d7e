"""Instance classes for the reliability tests (issue: nothing lost, nothing hangs)."""
import threading
import time

from ether import ether_get, ether_pub, ether_sub

from apps import _Gated


class SlowSink(_Gated):
    """Waits at the gate on its first message, so its inbox fills up."""

    @ether_sub(topic="jam", policy="block", timeout=60)
    def on_jam(self, seq: int, blob: bytes = b"") -> None:
        self._wait_at_gate()


class Jammer:
    """A sensor-loop thread that publishes until a block subscriber's full inbox
    stops it; its services must still answer meanwhile."""

    def __init__(self):
        self.sent = 0
        self.publishing_since = None

    @ether_pub(topic="jam")
    def emit(self, seq: int, blob: bytes) -> dict:
        return {"seq": seq, "blob": blob}

    @ether_sub(topic="start-jam")
    def start(self, count: int = 100_000, size: int = 1024) -> None:
        def loop():
            blob = bytes(size)
            for seq in range(count):
                self.publishing_since = time.monotonic()
                self.emit(seq, blob)
                self.publishing_since = None
                self.sent += 1
        threading.Thread(target=loop, daemon=True).start()

    @ether_get
    def ping(self) -> dict:
        since = self.publishing_since
        return {"sent": self.sent, "stuck_s": 0.0 if since is None else time.monotonic() - since}


class FrameSource:
    """Publishes `count` arena-sized frames when asked (to the main, say)."""

    @ether_sub(topic="want-frames")
    def want(self, count: int = 3, size: int = 1 << 20) -> None:
        import numpy as np
        for i in range(count):
            self.frame(i, np.full(size // 8, float(i)))

    @ether_pub(topic="frame")
    def frame(self, i: int, data) -> dict:
        return {"i": i, "data": data}


# ---- The fault suite (tests/faults): instances that check what reaches them ----

import os  # noqa: E402
import random  # noqa: E402
import zlib  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from ether import (EtherError, InboxFull, ether, ether_cleanup, ether_save_all,  # noqa: E402
                   ether_shutdown, ether_start)


def arm_watchdog(seconds: float) -> None:
    """Dump every thread's traceback to stderr if this process still runs after
    `seconds` (0: not armed), so that a hang leaves a traceback.

    Not faulthandler.dump_traceback_later: an instance is forked from a main that
    may have armed it itself (pytest's faulthandler_timeout does, and so do the
    fault scenarios), and in such a child dump_traceback_later (like
    cancel_dump_traceback_later) waits forever for the parent's watchdog thread,
    which the fork did not copy (CPython 3.11). A SIGALRM timer whose handler is
    faulthandler's needs no thread."""
    if seconds > 0:
        import faulthandler
        import signal
        faulthandler.register(signal.SIGALRM, all_threads=True, chain=False)
        signal.setitimer(signal.ITIMER_REAL, seconds)


def _slow_io(seconds: float) -> None:
    """Simulated slow work that does not use the CPU (a disk write, a device):
    it waits for nothing."""
    threading.Event().wait(seconds)


def _crc(blob: bytes, frame=None) -> int:
    crc = zlib.crc32(blob)
    return zlib.crc32(frame, crc) if frame is not None else crc


class _Watched:
    """An instance with a watchdog (watchdog_s) that tells its pid."""

    def __init__(self, watchdog_s: float = 0.0):
        arm_watchdog(watchdog_s)

    @ether_get
    def pid(self) -> int:
        return os.getpid()


class FaultSource(_Watched):
    """On "fault-go": a thread publishes (pub, seq, crc, blob[, frame]) on
    "fault-data" at `rate` messages/s, until "fault-halt"; then it publishes
    "fault-fin" with how many it published. Every frame_every-th message carries
    an array large enough for the arena (0: none)."""

    def __init__(self, name: str, watchdog_s: float = 0.0, frame_every: int = 0,
                 frame_bytes: int = 256 << 10):
        super().__init__(watchdog_s)
        self.name, self.frame_every, self.frame_bytes = name, frame_every, frame_bytes
        self.halted = threading.Event()
        self.thread = None
        self.published = self.refused = 0
        self.max_stall = 0.0
        self.error = ""

    @ether_pub(topic="fault-data")
    def emit(self, pub: str, seq: int, crc: int, blob: bytes, frame=None) -> dict:
        message = {"pub": pub, "seq": seq, "crc": crc, "blob": blob}
        if frame is not None:
            message["frame"] = frame
        return message

    @ether_sub(topic="fault-go")
    def go(self, rate: float = 500.0, burst: int = 10, limit_s: float = 3600.0) -> None:
        if self.thread is not None:
            return
        pause = burst / rate
        deadline = time.monotonic() + limit_s

        def loop():
            rng = random.Random(self.name)
            seq = 0
            while not self.halted.is_set() and time.monotonic() < deadline:
                for _ in range(burst):
                    blob = rng.randbytes(rng.randrange(0, 200))
                    frame = None
                    if self.frame_every and seq % self.frame_every == self.frame_every - 1:
                        frame = np.frombuffer(rng.randbytes(self.frame_bytes), np.uint8)
                    started = time.monotonic()
                    try:
                        self.emit(self.name, seq, _crc(blob, frame), blob, frame)
                    except InboxFull:
                        self.refused += 1
                    except EtherError as exc:
                        self.error = self.error or f"{type(exc).__name__}: {exc}"
                    self.max_stall = max(self.max_stall, time.monotonic() - started)
                    seq += 1
                    self.published = seq
                self.halted.wait(pause)  # a sensor's pace, not a wait for anything

        self.thread = threading.Thread(target=loop, name="fault-source", daemon=True)
        self.thread.start()

    @ether_sub(topic="fault-halt")
    @ether_pub(topic="fault-fin")
    def halt(self) -> dict:
        self.halted.set()
        if self.thread is not None:
            self.thread.join(60)
        return {"pub": self.name, "count": self.published, "refused": self.refused,
                "max_stall": self.max_stall, "error": self.error}


class FaultSink(_Watched):
    """Checks every message of "fault-data": its CRC, and per publisher that seq
    goes 0, 1, 2, ... (gaps are lost messages, a seq seen again a duplicate).
    On "fault-fin" from a publisher it says what it got from it."""

    def __init__(self, name: str, watchdog_s: float = 0.0):
        super().__init__(watchdog_s)
        self.name = name
        self.stats: dict[str, dict] = {}

    def _of(self, pub: str) -> dict:
        s = self.stats.get(pub)
        if s is None:
            s = self.stats[pub] = {"received": 0, "next": 0, "duplicated": 0, "torn": 0, "gaps": 0}
        return s

    @ether_sub(topic="fault-data")
    def on_data(self, pub: str, seq: int, crc: int, blob: bytes, frame: np.ndarray = None) -> None:
        s = self._of(pub)
        if _crc(blob, frame) != crc:
            s["torn"] += 1
            return
        if seq < s["next"]:
            s["duplicated"] += 1  # (or reordered: either breaks the promise)
            return
        s["gaps"] += seq - s["next"]
        s["next"] = seq + 1
        s["received"] += 1

    @ether_sub(topic="fault-fin")
    @ether_pub(topic="fault-fin-seen")
    def on_fin(self, pub: str, count: int, refused: int = 0, max_stall: float = 0.0,
               error: str = "") -> dict:
        return {"sink": self.name, "pub": pub, "count": count, "refused": refused,
                "max_stall": max_stall, "error": error, **self._of(pub)}

    @ether_get
    def report(self) -> dict:
        return {"sink": self.name, "stats": self.stats}


class FaultEcho(_Watched):
    """A service: echoes n and the CRC of the blob it was sent."""

    @ether_get
    def echo(self, n: int, blob: bytes) -> dict:
        return {"n": n, "crc": zlib.crc32(blob), "pid": os.getpid()}


class Looper(_Watched):
    """A sensor loop in an @ether_start handler that does not return (for
    limit_s): publishes "fault-looping" every `period` s."""

    @ether_pub(topic="fault-looping")
    def tick(self, n: int) -> dict:
        return {"n": n, "pid": os.getpid()}

    @ether_start
    def run(self, period: float = 0.01, limit_s: float = 120.0) -> None:
        pace = threading.Event()
        for n in range(int(limit_s / period)):
            self.tick(n)
            pace.wait(period)  # a sensor's pace


class Backlogged(_Watched):
    """Each message of "fault-backlog" costs it `seconds` of slow work; it says
    "fault-working" for each."""

    @ether_sub(topic="fault-backlog")
    @ether_pub(topic="fault-working")
    def work(self, seq: int, seconds: float = 0.05) -> dict:
        _slow_io(seconds)
        return {"seq": seq, "pid": os.getpid()}


class StopFlooder(_Watched):
    """On "flood-go": a thread publishes "flood-data" (seq, blob) until the
    subscriber under test has missed `missed` messages (InboxFull under the block
    policy; a delivery to fewer than all subscribers under the drop policy), then
    reports on "flood-paused", waits for "flood-resume" and ends with "flood-end".
    Its services answer meanwhile (ping)."""

    def __init__(self, watchdog_s: float = 0.0):
        super().__init__(watchdog_s)
        self.resume = threading.Event()
        self.published = 0
        self.blocked_since = None

    @ether_sub(topic="flood-go")
    def go(self, missed: int, size: int, subscribers: int = 2, limit: int = 1_000_000) -> None:
        def flood():
            blob = bytes(size)
            refused = short = 0
            max_stall = 0.0
            for seq in range(limit):
                started = self.blocked_since = time.monotonic()
                try:
                    if ether.pub({"seq": seq, "blob": blob}, topic="flood-data") < subscribers:
                        short += 1
                except InboxFull:
                    refused += 1
                self.blocked_since = None
                max_stall = max(max_stall, time.monotonic() - started)
                self.published = seq + 1
                if refused + short >= missed:
                    break
            ether.pub({"published": self.published, "refused": refused, "short": short,
                       "max_stall": max_stall}, topic="flood-paused")
            if self.resume.wait(120):
                ether.pub({"published": self.published}, topic="flood-end")

        threading.Thread(target=flood, name="flood", daemon=True).start()

    @ether_sub(topic="flood-resume")
    def on_resume(self) -> None:
        self.resume.set()

    @ether_get
    def ping(self) -> dict:
        since = self.blocked_since
        return {"published": self.published,
                "blocked_for": 0.0 if since is None else time.monotonic() - since}

    @ether_get
    def statistics(self) -> list:
        return [{"inbox": s.inbox, "policy": s.policy, "sent": s.sent, "dropped": s.dropped,
                 "blocked": s.blocked} for s in ether.statistics()]


class _FloodCounter(_Watched):
    def __init__(self, name: str, watchdog_s: float = 0.0):
        super().__init__(watchdog_s)
        self.name = name
        self.received = self.next = self.out_of_order = 0

    def _count(self, seq: int) -> None:
        if seq < self.next:
            self.out_of_order += 1
        self.next = max(self.next, seq + 1)
        self.received += 1

    @ether_sub(topic="flood-end")
    @ether_pub(topic="flood-report")
    def end(self, published: int) -> dict:
        return {"sink": self.name, "received": self.received, "out_of_order": self.out_of_order,
                "published": published}


class BlockFloodSink(_FloodCounter):
    @ether_sub(topic="flood-data", policy="block", timeout=0.25)
    def on_data(self, seq: int, blob: bytes) -> None:
        self._count(seq)


class DropFloodSink(_FloodCounter):
    @ether_sub(topic="flood-data", policy="drop")
    def on_data(self, seq: int, blob: bytes) -> None:
        self._count(seq)


class FloodWitness(_FloodCounter):
    """Another subscriber of the flood (block policy, 5 s): it should miss nothing."""

    @ether_sub(topic="flood-data")
    def on_data(self, seq: int, blob: bytes) -> None:
        self._count(seq)


class MalformedTarget(_Watched):
    """The receiver of the malformed records: "fault-valid" messages are checked
    (in order, CRC right); anything that reaches its other handlers is counted,
    since no record sent there is well formed."""

    def __init__(self, watchdog_s: float = 0.0):
        super().__init__(watchdog_s)
        self.valid = self.next = self.out_of_order = self.bad_crc = self.other = 0

    @ether_sub(topic="fault-valid")
    def on_valid(self, seq: int, crc: int, blob: bytes) -> None:
        if zlib.crc32(blob) != crc:
            self.bad_crc += 1
        if seq != self.next:
            self.out_of_order += 1
        self.next = seq + 1
        self.valid += 1

    @ether_sub(topic="fault-any")
    def on_any(self, value: Any = None, **extra) -> None:
        self.other += 1

    @ether_sub(topic="fault-array")
    def on_array(self, frame: np.ndarray) -> None:
        self.other += 1

    @ether_sub(topic="fault-warmup")
    def on_warmup(self, frame: np.ndarray) -> None:
        """A real array from the sender: this process now holds a bit in its arena,
        so that forged handles into that arena reach the arena's own checks."""

    @ether_sub(topic="fault-end")
    @ether_pub(topic="fault-report")
    def on_end(self, valid: int) -> dict:
        return {"sent": valid, "valid": self.valid, "next": self.next,
                "out_of_order": self.out_of_order, "bad_crc": self.bad_crc, "other": self.other,
                "pid": os.getpid()}


class SlowSaver(_Watched):
    """Each message of "fault-backlog" costs `work_s` of slow work; after each, and
    in each of its lifecycle handlers, it writes what it has handled to `path`
    (one JSON line each)."""

    def __init__(self, path: str, work_s: float = 0.05, watchdog_s: float = 0.0):
        super().__init__(watchdog_s)
        self.path, self.work_s = path, work_s
        self.handled = self.next = self.out_of_order = 0

    @ether_sub(topic="fault-backlog")
    def work(self, seq: int) -> None:
        _slow_io(self.work_s)
        if seq != self.next:
            self.out_of_order += 1
        self.next = seq + 1
        self.handled += 1
        self._note("work")  # so that what it handled is known even if no phase runs

    def _note(self, phase: str) -> None:
        import json
        with open(self.path, "a") as f:
            f.write(json.dumps({"phase": phase, "handled": self.handled,
                                "out_of_order": self.out_of_order}) + "\n")

    @ether_save_all
    def save(self) -> None:
        self._note("save_all")

    @ether_cleanup
    def clean(self) -> None:
        self._note("cleanup")

    @ether_shutdown
    def bye(self) -> None:
        self._note("shutdown")


class JamSink(_Gated):
    """A block subscriber (timeout 3 s) of "jam" that stops reading at its first
    message (it waits at the gate): its inbox fills and its publisher blocks."""

    @ether_sub(topic="jam", policy="block", timeout=3.0)
    def on_jam(self, seq: int, blob: bytes = b"") -> None:
        self._wait_at_gate()

    @ether_get
    def pid(self) -> int:
        return os.getpid()
