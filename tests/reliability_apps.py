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
