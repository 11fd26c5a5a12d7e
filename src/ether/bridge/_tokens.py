"""Waiting for a liveliness token to appear: a bridge's start waits for any token
of its site (the link is up), a launch for the agent of the host it goes to."""
from __future__ import annotations

import threading
from typing import Callable

__all__ = ["await_token"]


def await_token(z, key: str, timeout: float, *, waiting: Callable[[], None] | None = None,
                quiet_s: float = 0.25) -> bool:
    """True once a token on `key` (a key expression) is live, False after `timeout`
    without one. `waiting` is called once if none came within `quiet_s`: the
    caller's word that the wait may be long. The history brings the tokens that
    are live already, so a linked peer's answer is immediate."""
    import zenoh
    seen = threading.Event()

    def on_sample(sample) -> None:
        if sample.kind == zenoh.SampleKind.PUT:
            seen.set()

    listener = z.liveliness().declare_subscriber(key, on_sample, history=True)
    try:
        first = min(quiet_s, timeout) if waiting is not None else timeout
        if seen.wait(first):
            return True
        if waiting is not None and timeout > first:
            waiting()
            return seen.wait(timeout - first)
        return False
    finally:
        listener.undeclare()
