"""The payloads of bench_bridge.py, built the same way on both sides of every row
(raw zenoh and Ether), so the receiver's CRCs can be checked by the benchmark:
a float32 frame with a fixed pattern whose first element is the message's seq.
Imports numpy only (the raw zenoh peer never imports ether)."""
from __future__ import annotations

import zlib

import numpy as np


def base_frame(nbytes: int) -> np.ndarray:
    n = nbytes // 4
    return (np.arange(n, dtype=np.uint64) * 2654435761 % 1000003).astype(np.float32)


def make_frame(base: np.ndarray, seq: int) -> np.ndarray:
    """base with frame[0] = seq, in place (the publisher reuses one buffer)."""
    base[0] = seq
    return base


def expected_crc(nbytes: int, seq: int, _cache: dict = {}) -> int:  # noqa: B006 (a cache)
    base = _cache.get(nbytes)
    if base is None:
        base = _cache[nbytes] = base_frame(nbytes)
    return zlib.crc32(make_frame(base, seq))


def sampled(seq: int, every: int) -> bool:
    """Which frames the receiver checksums: every `every`-th."""
    return seq % every == 0
