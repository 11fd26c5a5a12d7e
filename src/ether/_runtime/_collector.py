"""The main's garbage collector during a tap.

A tap imports the config's and the runtime's modules (pydantic's among them) and
builds what it launches: allocations that are almost never garbage, over which
the cyclic collector ran some sixty times in the Quick Start's tap (12-14 ms of a
fresh process's 250). So the tap pauses it, and freezes what the main holds just
before the forks (`gc.freeze`): the children share those pages copy-on-write,
and neither their collections nor the main's later ones walk them. After the
tap the main's objects are collectable again (`gc.unfreeze`; unless the user had
frozen some, for forks of their own: then everything stays frozen), and the
collector is as the user left it; each instance starts with the state the main
had at the tap, not the paused one it was forked in.
"""
from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["paused", "before_forks", "in_child"]

_enabled_at_tap = True   # what paused() found: a forked instance restores it


@contextmanager
def paused() -> Iterator[None]:
    """No collection inside; afterwards, nothing frozen and the collector as it was."""
    global _enabled_at_tap
    _enabled_at_tap = gc.isenabled()
    frozen_by_user = gc.get_freeze_count()
    gc.disable()
    try:
        yield
    finally:
        if not frozen_by_user:   # a user's own freeze (for their forks) stays, and ours with it
            gc.unfreeze()
        if _enabled_at_tap:
            gc.enable()


def before_forks() -> None:
    """Freeze what the main holds now (see the module's note)."""
    gc.freeze()


def in_child() -> None:
    """In a forked instance, first thing: the collector as the main had it at the tap."""
    if _enabled_at_tap:
        gc.enable()
