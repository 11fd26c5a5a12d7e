"""The array arena's reader side, one per session in every process: it turns
handles into read-only views and clears this process's bit on a block when the
last view of it dies (the count is in C, csrc/ether_arena.h)."""
from __future__ import annotations

import os
import threading
import weakref

from .. import _errors as errors
from . import _names as names
from . import _segment as segment
from ._arena_c import BLOCKS_OFFSET, OK, STALE, Mapped
from ._dtypes import np, plain_dtype, plain_dtypes


class _Hold(weakref.ref):
    """A received view's weak reference; its death counts the view out."""
    __slots__ = ("arena", "block", "generation")



class Reader:
    """Every process's side: turn handles into read-only views, and give the block
    back when the last view of it in this process dies (the count is in C)."""

    def __init__(self, session):
        self._lock = threading.Lock()
        self._session = session
        self._arenas: dict[int, Mapped] = {}
        self._holds: dict[int, _Hold] = {}     # keeps the weak references (and callbacks) alive
        self._drop = self._make_drop()
        self._frombuffer = None   # numpy's, bound at the first view (numpy comes with it)
        _READERS.add(self)

    def close(self) -> None:
        """The session closed: map no new arena. A mapping stays while a view of it
        lives (each view's hold keeps it), and goes with the last one."""
        with self._lock:
            self._session = None
            self._arenas = {}

    def _arena(self, token: int) -> Mapped:
        with self._lock:
            mapped = self._arenas.get(token)
            if mapped is not None:
                return mapped
            session = self._session
            if session is None or session.closed:
                raise errors.SessionClosed("an array handle arrived after its session closed")
            name = names.arena_segment(session.name, token)
            try:
                seg = segment.Segment.open(name, what="array arena", min_size=BLOCKS_OFFSET)
            except FileNotFoundError:
                raise errors.EtherError(f"the arena {name} of an array handle is gone") from None
            try:
                mapped = Mapped(seg, session.token)
            except BaseException:
                seg.close()
                raise
            self._arenas[token] = mapped
            return mapped

    def view(self, token: int, block: int, generation: int, offset: int, length: int,
             dtype: str, shape: list[int]):
        arena = self._arenas.get(token) or self._arena(token)
        dtype = plain_dtypes.get(dtype) or plain_dtype(dtype)
        itemsize = dtype.itemsize
        if length % itemsize:
            raise errors.MalformedMessage(f"a malformed array handle ({length} bytes of {dtype})")
        rc = arena.acquire(block, generation, offset, length)
        if rc != OK:
            if rc == STALE:
                raise errors.MalformedMessage("a stale array handle (its block was reused)")
            raise errors.MalformedMessage(f"array handle out of bounds (block {block}, {length} bytes)")
        frombuffer = self._frombuffer or self._bind_frombuffer()
        try:
            anchor = frombuffer(arena.data, dtype=dtype, count=length // itemsize, offset=offset)
        except BaseException:
            arena.unhold(block, generation)
            raise
        # The anchor is the base of every view derived from the array; the hold
        # keeps the arena's mapping (and its C reader) alive until it counted out.
        hold = _Hold(anchor, self._drop)
        hold.arena, hold.block, hold.generation = arena, block, generation
        self._holds[id(hold)] = hold
        if len(shape) == 1 and shape[0] * itemsize == length:
            return anchor
        return anchor.reshape(shape)  # a shape that does not match raises ValueError

    def _bind_frombuffer(self):
        self._frombuffer = np().frombuffer
        return self._frombuffer

    def hold(self, holds) -> list:
        """Hold the blocks a message carries (its envelope lists them) while its
        handlers run, whether or not they decode the arrays; returns what to give
        to `release`. A block that cannot be held is left to the handlers' errors."""
        held = []
        for token, block, generation in holds:
            arena = self._arenas.get(token)
            if arena is None:
                try:
                    arena = self._arena(token)
                except errors.EtherError:
                    continue
            if arena.acquire(block, generation, 0, 0) == OK:
                held.append((arena, block, generation))  # the arena: it keeps the mapping
        return held

    @staticmethod
    def release(held) -> None:
        for arena, block, generation in held:
            arena.unhold(block, generation)

    def _forget(self) -> None:
        """In a forked child: the views' holds are the parent's (same bit, same
        counts). Dropping the weak references means no callback releases them; the
        C readers are kept, never freed, in case the parent held their mutexes."""
        _GRAVEYARD.extend(self._arenas.values())
        self._holds.clear()
        self._arenas = {}
        self._lock = threading.Lock()
        self._session = None

    def _make_drop(self):
        holds = self._holds

        def drop(hold) -> None:
            holds.pop(id(hold), None)
            hold.arena.unhold(hold.block, hold.generation)

        return drop



_READERS: weakref.WeakSet = weakref.WeakSet()
_GRAVEYARD: list = []


def _after_fork_in_child() -> None:
    for reader in list(_READERS):
        reader._forget()


os.register_at_fork(after_in_child=_after_fork_in_child)
