"""Router: which inboxes get a topic's messages, cached until the directory changes.

A publish costs one load of the directory's generation; the subscriber list is
re-read (under the directory lock) only after a subscription or an inbox came or
went. Each subscribing inbox gets one copy, however many of its handlers listen.
"""
from __future__ import annotations

import logging

from .. import _errors as errors
from ._delivery import DEFAULT_POLICY, DEFAULT_TIMEOUT_S
from ._topics import matches

log = logging.getLogger("Ether")


class Router:
    def __init__(self, session):
        self._session = session
        self._directory = session._directory
        self._generation = -1
        self._subscriptions = None
        self._routes: dict[str, tuple] = {}
        self._senders: dict[tuple, object] = {}

    def targets(self, topic: str) -> tuple:
        """The senders to every inbox subscribed to topic."""
        generation = self._directory.generation()
        if generation != self._generation:
            self._generation = generation
            self._routes.clear()
            self._subscriptions = None
        route = self._routes.get(topic)
        if route is None:
            route = self._routes[topic] = self._resolve(topic)
        return route

    def _resolve(self, topic: str) -> tuple:
        if self._subscriptions is None:
            with self._directory as d:
                self._subscriptions = d.subscriptions()
        route, seen = [], set()
        for sub in self._subscriptions:
            if sub.inbox_token in seen or (sub.topic != topic and not matches(sub.topic, topic)):
                continue
            seen.add(sub.inbox_token)
            key = (sub.inbox_token, sub.policy, sub.timeout)
            sender = self._senders.get(key)
            if sender is None:
                try:
                    sender = self._session.connect(sub.inbox, policy=sub.policy, timeout=sub.timeout)
                except (errors.InboxClosed, errors.InboxNotFound):
                    continue  # its consumer is gone; the directory will drop it
                self._senders[key] = sender
            route.append(sender)
        return tuple(route)

    def sender_to(self, inbox: str, policy: str = DEFAULT_POLICY, timeout: float = DEFAULT_TIMEOUT_S):
        """A cached sender to a named inbox (control messages, replies)."""
        key = (inbox, policy, timeout)
        sender = self._senders.get(key)
        if sender is None or sender.closed:
            sender = self._senders[key] = self._session.connect(inbox, policy=policy, timeout=timeout)
        return sender

    def statistics(self) -> tuple:
        """A SenderStatistics of every open sender (one per inbox and policy)."""
        out = []
        for sender in dict.fromkeys(self._senders.values()):
            try:
                out.append(sender.statistics())
            except errors.InboxClosed:
                continue
        return tuple(sorted(out, key=lambda s: (s.inbox, s.policy)))

    def forget(self, sender) -> None:
        """Drop a sender whose inbox closed; the next lookup re-reads the directory."""
        for key, value in list(self._senders.items()):
            if value is sender:
                del self._senders[key]
        sender.close()
        self._generation = -1  # re-read the directory on the next lookup

    def close(self) -> None:
        for sender in self._senders.values():
            sender.close()
        self._senders.clear()
        self._routes.clear()
