"""The publishing call of a pub method with one topic: the user's method, then
what Node.publish does, in the same frame.

A decorated publish is every message of a sensor loop or a pipeline stage, so
its Python is the cost that matters (docs/design/hot-path.md): this call saves
Node.publish's frame and Router.targets' two (its route is checked inline:
the directory's generation, then the route cache). Everything it does not do
inline - arrays (holds), the arena full, a full, closed or too small inbox, a
topic with absent subscribers - goes to the same Lane/Router code as
Node.publish, so the guarantees are Node.publish's: one seq under the lane lock,
order per lane, the policies, the lineage, the statistics.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

from .. import _errors as errors
from .._errors import Dropped
from .._core._ring import FULL, OK, WRITE as write
from . import _codec as codec
from ._lane import lane_turn
from ._topics import with_topic

__all__ = ["publishing_call"]

_WIRE = codec.WIRE_VERSION
_MESSAGE = codec.MESSAGE
_now_ns = time.time_ns
_get_ident = threading.get_ident


def publishing_call(node, method: Callable, topic: str, message_of: Callable) -> Callable:
    """call(*args, **kwargs): run method, publish its result (a dict as it is,
    anything else through message_of) on topic from node, return the result.
    An InboxFull names the topic."""
    lane = node._user
    lock = lane.lock
    acquire, release, locked = lock.acquire, lock.release, lock.locked
    router = lane.router
    routes, words, at = router.inline_check()
    targets_of = router.targets
    seqs = node._seqs
    name = node.name
    origin = node.origin
    handling = node._handling
    encode = lane.encode
    by_sender = node.drops.by_sender
    lineage = codec.lineage

    def call(*args, **kwargs):
        result = method(*args, **kwargs)
        payload = result if type(result) is dict else message_of(result)
        # Node.publish from here on, inlined (keep the two alike).
        current = handling.get(_get_ident()) if handling else None
        if current is None:
            cause = trace = None
        else:
            known = node._known
            if known[0] is current:  # the handler's earlier publishes computed it
                cause, trace = known[1], known[2]
            else:
                cause, trace = lineage(current, origin)
                node._known = (current, cause, trace)
        if locked():  # another thread has the lane: wait out here (see _lane.lane_turn)
            lane_turn(lock)
        try:
            acquire()
            seq = next(seqs)
            node.published += 1
            targets = routes.get(topic) if router._generation == words[at] else None
            if targets is None:
                targets = targets_of(topic)
            counts = lane.counts  # None unless the node is watched (_stats.py)
            if not targets:
                if counts is not None:
                    lane.count(topic, None)
                return result
            lane.targets = targets
            holds = lane.blocks  # reused: nothing else refers to it once encoded
            if holds:
                holds.clear()
            try:
                data = encode((_WIRE, _MESSAGE, topic, name, seq, _now_ns(), cause, trace,
                               None, payload, holds))
            except Dropped as exc:
                lane.unhold(targets)
                node.count_arena_drop(topic, targets, exc)
                return result
            except BaseException:
                lane.unhold(targets)
                raise
            if counts is not None:
                lane.count(topic, data)
            if holds:
                lane.send_rest(topic, targets, data, 0, None, 0)
                return result
            size = len(data)
            for sender in targets:
                # sender.send(data), inlined (Ring.fast_parts): one C call when
                # the record goes in, the sender's own path for anything else.
                state, timeout_ns, drops, slow = sender.inline_send
                handle = state[0]
                try:
                    if handle is not None:
                        rc = write(handle, data, size, timeout_ns)
                        if rc == OK:
                            continue
                        sent = False if rc == FULL and drops else slow(data, None, None, rc)
                    else:
                        sent = slow(data, None, None, None)
                    if not sent:  # a full drop-policy inbox refused it
                        key = (sender, topic)
                        by_sender[key] = by_sender.get(key, 0) + 1
                except errors.EtherError as exc:
                    lane.send_rest(topic, targets, data, targets.index(sender), exc, 0)
                    return result
            return result
        except errors.InboxFull as exc:
            raise with_topic(exc, topic) from None
        finally:
            release()

    call.__name__ = getattr(method, "__name__", "method")
    call.__wrapped__ = method
    return call
