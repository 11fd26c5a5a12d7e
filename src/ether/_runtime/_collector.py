"""The main's garbage collector while a tap sets up and forks.

A tap imports the config's and the runtime's modules (pydantic's among them) and
builds what it launches: allocations that are almost never garbage, over which
the cyclic collector ran some sixty times in the Quick Start's tap (measured in
docs/design/layers.md). So the tap pauses it from its start until its forks are
done, and freezes what the main holds just before them (`gc.freeze`): the
instances share those pages copy-on-write, and their collections never walk
them. Once the forks are done (or the tap failed), the main's objects are
collectable again and the collector is as the user left it; an instance forked
during the pause restores that state first thing, one forked later (a restart)
inherits the main's as it is then.

A user who froze objects (for forks of their own) keeps them frozen: the tap
then freezes nothing and unfreezes nothing. The state is this module's, as the
collector is the process's: a tap inside a tap (a class module that taps when
imported) leaves it to the outer one.
"""
from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["paused", "before_forks", "resume", "in_child"]


class _Pause:
    active = False      # between paused()'s start and resume()
    enabled = True      # the collector as the user had it (restored by resume, in_child)
    frozen = False      # before_forks froze the heap (resume unfreezes it)


_pause = _Pause()


@contextmanager
def paused() -> Iterator[None]:
    """No collection inside, until resume() (the supervisor's, after the forks);
    on the way out, resumed whatever happened. Nested: the outer one rules."""
    if _pause.active:
        yield
        return
    _pause.enabled, _pause.frozen, _pause.active = gc.isenabled(), False, True
    gc.disable()
    try:
        yield
    finally:
        resume()


def before_forks() -> None:
    """Freeze what the main holds now, unless the user froze something already."""
    if _pause.active and not _pause.frozen and not gc.get_freeze_count():
        gc.freeze()
        _pause.frozen = True


def resume() -> None:
    """End the pause: the main's objects collectable, the collector as it was."""
    if not _pause.active:
        return
    _pause.active = False
    if _pause.frozen:
        _pause.frozen = False
        gc.unfreeze()
    if _pause.enabled:
        gc.enable()


def in_child() -> None:
    """First thing in a forked instance: forked during a pause, the collector as the
    user had it (a fresh interpreter, or a fork after the tap, has it already)."""
    if _pause.active:
        _pause.active = _pause.frozen = False   # this process's own state from here on
        if _pause.enabled:
            gc.enable()
