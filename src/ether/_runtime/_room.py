"""How much shared memory a session takes, as the supervisor sizes it: for
`ether doctor`, which must judge a /dev/shm without starting anything.
(_supervisor._check_room applies the same sizes at tap.)"""
from __future__ import annotations

from typing import NamedTuple

from .. import _settings
from .._core._directory import SESSION_SIZE
from .._core._ring import segment_size
from .._node._node import DEFAULT_PRODUCERS, inbox_capacity, message_limit

__all__ = ["ShmNeeds", "shm_needs"]

MiB = 1 << 20


class ShmNeeds(NamedTuple):
    inbox_bytes: int      # one process's inbox segment
    inboxes_bytes: int    # every process's, and the session's directory
    arena_bytes: int      # the arena of one process that publishes large arrays


def shm_needs(processes: int, free: int) -> ShmNeeds:
    """The sizes for a session of `processes` (its main included) in a /dev/shm
    with `free` bytes free; raises ConfigError for a bad ETHER_* value."""
    inbox = segment_size(inbox_capacity(message_limit()), DEFAULT_PRODUCERS)
    need = processes * inbox + SESSION_SIZE
    arena = _settings.arena_bytes() or max(16 * MiB, min(512 * MiB, max(0, free - need) // 4))
    return ShmNeeds(inbox, need, arena)
