"""Classes the recording tests run as instances."""
import numpy as np

from ether import ether, ether_get, ether_pub, ether_sub, ether_start


class Source:
    """On start: n small messages over four topics, then the arrays, then done."""

    @ether_start()
    def go(self, n: int = 100, arrays: int = 0, loaned: bool = True):
        for i in range(n):
            ether.pub({"i": i, "text": f"m{i}"}, topic=f"t{i % 4}")
        rng = np.random.default_rng(7)
        for k in range(arrays):
            ether.pub({"k": k, "a": array_of(k, rng)}, topic="arrays")
            if loaned and k % 10 == 0:
                big = ether.empty((256, 256), "float32")
                big[...] = k
                ether.pub({"k": k, "a": big}, topic="loaned")
        ether.pub({"n": n}, topic="done")


def array_of(k: int, rng) -> np.ndarray:
    """Mixed dtypes and shapes: 0-d, bool, non-contiguous, small and large."""
    kind = k % 6
    if kind == 0:
        return np.array(k, dtype=np.int64)
    if kind == 1:
        return rng.random((3, 5)) > 0.5
    if kind == 2:
        return np.arange(40000, dtype=np.float32).reshape(200, 200)[::2, ::3]
    if kind == 3:
        return rng.standard_normal((128, 128))        # 128 KiB: through the arena
    if kind == 4:
        return np.arange(10, dtype=np.uint16)
    return rng.integers(0, 255, size=(64, 1024), dtype=np.uint8)   # 64 KiB: the arena


class Stage:
    """data -> stage (x2) on out_topic."""

    def __init__(self, out_topic: str = "stage2"):
        self.out_topic = out_topic

    @ether_sub(topic="data")
    def on_data(self, i: int):
        ether.pub({"i": i * 2}, topic=self.out_topic)


class Aggregator:
    """Publishes one 'final' for every `every` stage2 messages."""

    def __init__(self, every: int = 3):
        self.every, self.seen = every, 0

    @ether_sub(topic="stage2")
    @ether_pub(topic="final")
    def on_stage(self, i: int):
        self.seen += 1
        if self.seen % self.every == 0:
            return {"count": self.seen}
        return None


class Generator:
    @ether_start()
    def go(self, n: int = 6):
        for i in range(n):
            ether.pub({"i": i}, topic="data")


class Steady:
    """Publishes on 'steady' until stopped: the crash tests' load."""

    @ether_start()
    def go(self, n: int = 10 ** 9):
        i = 0
        while not ether.stopping() and i < n:
            ether.pub({"i": i}, topic="steady")
            i += 1


class Doubler:
    """A service: Doubler.double(i) -> 2 i."""

    @ether_get
    def double(self, i: int) -> int:
        return 2 * i


class Caller:
    """On each 'data' message, calls Doubler.double and publishes the result."""

    @ether_sub(topic="data")
    def on_data(self, i: int):
        ether.pub({"i": ether.get("Doubler", "double", params={"i": i})}, topic="doubled")
