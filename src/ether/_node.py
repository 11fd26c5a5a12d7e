"""Node: one process's presence in a session - its inbox, its publishing, its
handlers and the loop that dispatches to them.

Handlers take the decoded Envelope. A handler that raises is logged with its
traceback and the loop carries on; so is a message that is not an envelope.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from . import _codec as codec
from . import _errors as errors
from ._router import Router

log = logging.getLogger("Ether")

# While idle, check this often that the session's owner is still alive.
OWNER_CHECK_S = 0.5


class Node:
    def __init__(self, session, name: str, *, capacity: int = 1 << 22, max_length: int = 1 << 20):
        self.session = session
        self.name = name
        self.inbox = session.create_inbox(name, capacity=capacity, max_length=max_length)
        self.router = Router(session)
        self._seq = 0
        self._handlers: dict[str, list[Callable]] = {}
        self._subscriptions: dict[str, int] = {}
        self.on_control: Callable[[codec.Envelope], None] | None = None
        self.current: codec.Envelope | None = None  # the message being handled (lineage)
        self.running = False
        self.published = 0
        self.handled = 0
        # Senders are single-threaded; a user thread (a sensor loop calling a pub
        # method) may publish while the dispatch loop does.
        self._send_lock = threading.Lock()

    # ---- publishing ----

    def publish(self, topic: str, payload, *, kind: int = codec.MESSAGE) -> int:
        """Send payload to every subscriber of topic; returns how many inboxes got it."""
        current = self.current
        cause = (current.sender, current.seq) if current is not None else None
        with self._send_lock:
            self._seq += 1
            data = codec.encode(kind, topic, self.name, self._seq, cause, payload)
            self.published += 1
            return self.router.send(topic, data)

    def send_control(self, inbox: str, command: str, payload: dict, *, timeout: float = 5.0) -> None:
        """A control message straight to one inbox (not through topics)."""
        with self._send_lock:
            self._seq += 1
            data = codec.encode(codec.CONTROL, command, self.name, self._seq, None, payload)
            self.router.sender_to(inbox, timeout=timeout).send(data)

    # ---- subscribing ----

    def add_handler(self, topic: str, handler: Callable[[codec.Envelope], None],
                    *, policy: str = "block", timeout: float = 5.0) -> None:
        handlers = self._handlers.setdefault(topic, [])
        handlers.append(handler)
        if topic not in self._subscriptions:
            with self.session._directory as d:
                self._subscriptions[topic] = d.subscribe(topic, self.inbox.token, policy, timeout)

    def remove_handler(self, topic: str, handler) -> None:
        if self.closed:
            return  # the session is gone, and its directory with it
        handlers = self._handlers.get(topic, [])
        if handler in handlers:
            handlers.remove(handler)
        if not handlers and topic in self._subscriptions:
            with self.session._directory as d:
                d.unsubscribe(self._subscriptions.pop(topic), self.inbox.token)
            self._handlers.pop(topic, None)

    # ---- dispatching ----

    def dispatch(self, batch: list[bytes]) -> None:
        handlers = self._handlers
        for data in batch:
            try:
                envelope = codec.decode(data)
            except codec.MalformedMessage as exc:
                log.error("%s: dropped a malformed message: %s", self.name, exc)
                continue
            if envelope.kind == codec.CONTROL:
                if self.on_control is not None:
                    self.on_control(envelope)
                continue
            self.handled += 1
            self.current = envelope
            try:
                for handler in handlers.get(envelope.topic, ()):
                    handler(envelope)
            finally:
                self.current = None

    def serve(self, *, owner_check: bool = True) -> None:
        """Dispatch until `running` is cleared (by a control handler), or the
        session's owner dies."""
        self.running = True
        receive = self.inbox.receive_many
        next_check = time.monotonic() + OWNER_CHECK_S
        while self.running:
            try:
                batch = receive(timeout=OWNER_CHECK_S)
            except errors.Timeout:
                batch = ()
            if batch:
                self.dispatch(batch)
            if owner_check and time.monotonic() >= next_check:
                next_check = time.monotonic() + OWNER_CHECK_S
                if not self.session.owner_alive():
                    log.warning("%s: the session's main process is gone; exiting", self.name)
                    self.running = False

    @property
    def closed(self) -> bool:
        return self.inbox.closed

    def close(self) -> None:
        self.router.close()
        self.inbox.close()
