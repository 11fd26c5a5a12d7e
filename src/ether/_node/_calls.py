"""The copy of a service call that a recorder sees.

A request goes to one server's inbox and its reply to the caller's: neither is
published, so no subscriber (a recorder) can see them, and subscribing to the
service topic itself would take requests from the servers (round-robin). So the
caller, after sending a request, publishes a copy of it on
`ether/service/<Service.method>/request`, and the server, after replying, a copy
of the reply on `.../reply`: ordinary messages with the original's sender, seq,
time, cause and trace, so a recording's lineage runs reply -> request -> the
caller's message. A copy costs one route lookup when nobody subscribes. Each
copy goes through the lane of what it copies: a request's the user lane, a
reply's the direct lane, so a reply never waits for another thread's publish
(blocked on a full inbox) to let go of the user lane; it waits only for room in
a block-policy subscriber of the copies (a recorder: a slow disk slows the
servers, as it slows publishers).
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from .. import _errors as errors
from .._errors import Dropped
from . import _codec as codec
from ._topics import SERVICE_PREFIX, SYSTEM_PREFIX

__all__ = ["CALL_PREFIX", "REPLY_COPIES", "REQUEST_COPIES", "call_topic", "mirror"]

log = logging.getLogger("Ether")

CALL_PREFIX = f"{SYSTEM_PREFIX}service/"
# Request topic -> its copy's topic (None: not copied), per part. Node reads them
# inline (a dict lookup, then one route lookup) so a call that nobody watches pays
# no function call for its copy.
REQUEST_COPIES: dict[str, str | None] = {}
REPLY_COPIES: dict[str, str | None] = {}
_tables = {"request": REQUEST_COPIES, "reply": REPLY_COPIES}
_next_log = [0.0]


def call_topic(topic: str, part: str) -> str | None:
    """The copy's topic for a request or reply (`part`) on a service topic; None
    for any other request (sync barriers are not copied)."""
    table = _tables[part]
    name = table.get(topic, "")
    if name == "":
        name = table[topic] = (f"{CALL_PREFIX}{topic[len(SERVICE_PREFIX):]}/{part}"
                               if topic.startswith(SERVICE_PREFIX) else None)
    return name


def mirror(node, lane, fields: tuple, topic: str, targets: tuple, part: str,
           payload: Callable[[], dict]) -> None:
    """Publish the copy of the request or reply whose envelope `fields` were just
    sent, on its copy's `topic` to `targets` (its subscribers, none empty), through
    `lane` (its lock held). `payload()` makes the copy's payload. A copy that cannot
    go out costs a log line, never the call."""
    copy = (fields[0], codec.MESSAGE, topic, *fields[3:9], payload())
    try:
        data = lane.encode_for(targets, copy)
        lane.count(topic, data)
        lane.send_rest(topic, targets, data, 0, None, 0)
    except Dropped as exc:
        node.count_arena_drop(topic, targets, exc)
    except (errors.EtherError, TypeError) as exc:
        now = time.monotonic()
        if now >= _next_log[0]:
            _next_log[0] = now + 1.0
            log.warning("%s: the copy of a %s on %r was not sent: %s", node.name, part,
                        fields[2], exc)
