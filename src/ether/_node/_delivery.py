"""Delivery: what a publisher does when a subscriber's inbox is full, as one value
(policy, timeout) that every layer passes around and the directory stores.

"block" waits up to `timeout` seconds for room, then raises InboxFull; "drop"
skips that subscriber at once and counts the drop (its timeout is unused).
"""
from __future__ import annotations

import math
from typing import NamedTuple

from .._core._policy import DEFAULT_POLICY, DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S, POLICIES

__all__ = ["Delivery", "DEFAULT_DELIVERY", "DEFAULT_POLICY", "DEFAULT_TIMEOUT_S", "MAX_TIMEOUT_S",
           "POLICIES", "check_delivery", "describe_delivery"]


class Delivery(NamedTuple):
    policy: str = DEFAULT_POLICY
    timeout: float = DEFAULT_TIMEOUT_S

    def describe(self) -> str:
        return describe_delivery(self)


DEFAULT_DELIVERY = Delivery()


def check_delivery(policy, timeout, where: str) -> Delivery:
    """Validate a subscription's policy and block timeout; return them normalised
    (a drop subscription never waits, so its timeout is the default)."""
    if not isinstance(policy, str):
        raise TypeError(f"{where}: policy must be one of {', '.join(map(repr, POLICIES))}, "
                        f"not {type(policy).__name__} {policy!r}")
    if policy not in POLICIES:
        raise ValueError(f"{where}: policy must be one of {', '.join(map(repr, POLICIES))}, "
                         f"not {policy!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{where}: timeout must be a number of seconds, not "
                        f"{type(timeout).__name__} {timeout!r}")
    if not (0 < timeout <= MAX_TIMEOUT_S) or math.isnan(timeout):
        raise ValueError(f"{where}: timeout must be a finite number of seconds > 0 "
                         f"(at most {MAX_TIMEOUT_S:g}), not {timeout!r}")
    return Delivery(policy, float(timeout)) if policy == "block" else Delivery(policy, DEFAULT_TIMEOUT_S)


def describe_delivery(delivery: tuple[str, float]) -> str:
    policy, timeout = delivery
    return f"policy='block', timeout={timeout:g}" if policy == "block" else "policy='drop'"
