"""Replaying a recording into a session: each message is re-sent with its own
sender, seq, time, cause and trace (Node.forward), names the recorded run as
its origin, so the causes among replayed messages still hold, and carries
`replay_of` = [sender, seq, run]: the recorded message it replays (the first
original's, when the recording was itself of a replay). A receiver that takes
envelopes reads it as `envelope.replay_of`; a recorder writes it down.

`rate` 1.0 keeps the recorded pace (log times), 2.0 plays twice as fast, 0 as
fast as the subscribers take it, in order.

Without `topics`, Ether's own topics are left out but for `ether/trial` (the
trials' roots): a replayed `ether/provenance` or `ether/drops` would pass the
recorded session's code versions or losses off as the new session's, and
`ether/log`, `ether/stats` and the service-call copies describe the recorded
session, not this one. Name them in `topics` to replay them all the same.
"""
from __future__ import annotations

import threading
import time

import msgspec

from ether import lowlevel

from ._reader import Recording

__all__ = ["play"]

SYSTEM = "ether/"
TRIAL = "ether/trial"


def _id(ref):
    if ref is None:
        return None
    return lowlevel.MessageId(ref[0], ref[1], bytes(ref[2]) if len(ref) > 2 and ref[2] else None)


def play(path, client, *, rate: float = 1.0, topics=None, start=None, end=None, trial=None,
         loop: bool = False, stop: threading.Event | None = None) -> int:
    """Re-publish the messages of a recording through `client`; how many."""
    node = client.node
    stop = stop or threading.Event()
    count = 0
    with Recording(path) as rec:
        if topics is None:
            topics = [t for t in rec.topics() if not t.startswith(SYSTEM) or t == TRIAL]
        host = (rec.metadata.get("ether.recording") or {}).get("host", "recorded")
        while not stop.is_set():
            first = began = None
            for m in rec.messages(topics, start, end, trial):
                if stop.is_set():
                    break
                if rate > 0:
                    if first is None:
                        first, began = m.log_time_ns, time.monotonic()
                    due = began + (m.log_time_ns - first) / 1e9 / rate
                    delay = due - time.monotonic()
                    if delay > 0 and stop.wait(delay):   # pacing, interruptible
                        break
                origin = lowlevel.Origin(m.run or bytes(16), host) if m.origin is None else \
                    lowlevel.Origin(bytes(m.origin[0]), m.origin[1])
                envelope = lowlevel.Envelope(lowlevel.WIRE_VERSION, 0, m.topic, m.sender, m.seq,
                                             m.time_ns, _id(m.cause), _id(m.trace), origin,
                                             msgspec.Raw(bytes(m.raw)))
                replay_of = lowlevel.MessageId(m.sender, m.seq, origin.run) \
                    if m.replay_of is None else \
                    lowlevel.MessageId(m.replay_of[1], m.replay_of[2], m.replay_of[0] or origin.run)
                node.forward(envelope, replay_of=replay_of)
                count += 1
            if not loop:
                break
    return count
