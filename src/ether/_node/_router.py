"""Router: which inboxes get a topic's messages, cached until the directory changes.

A publish costs one load of the directory's generation; the subscriber list is
re-read (under the directory lock) only after a subscription or an inbox came or
went. Each subscribing inbox gets one copy, however many of its handlers listen.

An instance that is restarting (or failed) is a placeholder in the directory
that keeps its subscriptions (see _core/_directory.py). A topic with such a
subscriber is not cached with the others: each publish to it finds its route in
`_absent` and counts one `undelivered` message per absent subscriber, by inbox
and policy, which `statistics()` reports. So the count costs nothing on the
topics of live subscribers, and a message is never lost without a count. A
placeholder's subscription is left out while an entry with a ring of the same
name subscribes the same topic (the new process, before the placeholder goes).
Senders to inboxes whose consumer is gone are closed when the directory changes
(the routes' senders when the subscriptions are read again; a named inbox's
sender by a probe of its consumer's liveness lock when it is next used).
"""
from __future__ import annotations

import logging

from .. import _errors as errors
from .._core._sender import SenderStatistics
from ._delivery import DEFAULT_POLICY, DEFAULT_TIMEOUT_S
from ._topics import matches

log = logging.getLogger("Ether")


class Router:
    def __init__(self, session):
        self._session = session
        self._directory = session._directory
        self._generation = -1
        self._subscriptions = None
        self._placeholders: dict = {}   # token -> InboxEntry, read with the subscriptions
        self._routes: dict[str, tuple] = {}
        self._absent: dict[str, tuple[tuple, tuple]] = {}  # topic -> (route, absent keys)
        self._senders: dict[tuple, object] = {}
        self.undelivered: dict[tuple[str, str], int] = {}  # (inbox, policy) -> count
        self._checked: dict[tuple, int] = {}  # sender_to key -> generation it was checked at

    def inline_check(self) -> tuple[dict, memoryview, int]:
        """(routes, words, i), for a publish that checks its route inline instead of
        calling targets(): while `router._generation == words[i]`, routes.get(topic)
        is targets(topic) when it is not None (None: call targets(), which also
        counts the undelivered of a topic with absent subscribers). routes is
        cleared in place, never replaced; forget() resets _generation."""
        words, at = self._directory.generation_word()
        return self._routes, words, at

    def _changed(self) -> bool:
        generation = self._directory.generation()
        if generation == self._generation:
            return False
        self._generation = generation
        self._routes.clear()
        self._absent.clear()
        self._subscriptions = None
        return True

    def targets(self, topic: str) -> tuple:
        """The senders to every inbox subscribed to topic (one publish: a subscriber
        that is down counts it as undelivered)."""
        generation = self._directory.generation()
        if generation != self._generation:
            self._changed()
        route = self._routes.get(topic)
        if route is None:
            absent = self._absent.get(topic)
            if absent is None:
                route, keys = self._resolve(topic)
                if not keys:
                    self._routes[topic] = route
                    return route
                absent = self._absent[topic] = (route, keys)
            undelivered = self.undelivered
            for key in absent[1]:
                undelivered[key] = undelivered.get(key, 0) + 1
            return absent[0]
        return route

    def lookup(self, topic: str) -> tuple[tuple, tuple]:
        """(the senders to the live subscribers of topic, the placeholder entries of
        those that are down), counting nothing: what a request looks at."""
        if self._directory.generation() != self._generation:
            self._changed()
        route = self._routes.get(topic)
        if route is not None:
            return route, ()
        absent = self._absent.get(topic)
        if absent is None:
            route, keys = self._resolve(topic)
            if not keys:
                self._routes[topic] = route
                return route, ()
            absent = self._absent[topic] = (route, keys)
        names = {name for name, _ in absent[1]}
        return absent[0], tuple(e for e in self._placeholders.values() if e.name in names)

    def _load(self) -> None:
        with self._directory as d:
            entries, self._subscriptions = d.routing()
        self._placeholders = {e.token: e for e in entries if e.placeholder}
        live = {(e.name, e.owner) for e in entries if not e.placeholder}
        for key, sender in list(self._senders.items()):  # consumers that are gone
            if (sender.inbox, sender.consumer_token) not in live:
                del self._senders[key]
                sender.close()

    def _resolve(self, topic: str) -> tuple[tuple, tuple]:
        if self._subscriptions is None:
            self._load()
        placeholders = self._placeholders
        route, seen, absent, live_names = [], set(), [], set()
        for sub in self._subscriptions:
            if sub.inbox_token in seen or (sub.topic != topic and not matches(sub.topic, topic)):
                continue
            seen.add(sub.inbox_token)
            if sub.inbox_token in placeholders:
                absent.append((sub.inbox, sub.policy))
                continue
            live_names.add(sub.inbox)
            key = (sub.inbox_token, sub.policy, sub.timeout)
            sender = self._senders.get(key)
            if sender is None:
                try:
                    sender = self._session.connect(sub.inbox, policy=sub.policy, timeout=sub.timeout)
                except (errors.InboxClosed, errors.InboxNotFound):
                    continue  # its consumer is gone; the directory will drop it
                self._senders[key] = sender
            route.append(sender)
        # A new process that subscribes this topic already takes it from its placeholder.
        keys = tuple(dict.fromkeys(k for k in absent if k[0] not in live_names))
        return tuple(route), keys

    def sender_to(self, inbox: str, policy: str = DEFAULT_POLICY, timeout: float = DEFAULT_TIMEOUT_S):
        """A cached sender to a named inbox (control messages, replies): the one of
        its current consumer (a restarted instance's inbox is a new one).
        Node.reply checks its cache inline: _senders[key] is what this returns while
        _checked[key] is the directory's current generation and the sender is open."""
        key = (inbox, policy, timeout)
        sender = self._senders.get(key)
        generation = self._directory.generation()
        if sender is not None and self._checked.get(key) != generation:
            # The directory changed since this sender was last checked: if its consumer
            # died, the inbox of that name may be a restarted instance's new one. (A
            # probe of one liveness lock, not a read of the directory under its lock.)
            self._checked[key] = generation
            if not sender.closed and not sender.consumer_alive():
                del self._senders[key]
                sender.close()
                sender = None
        if sender is None or sender.closed:
            self._checked[key] = generation
            sender = self._senders[key] = self._session.connect(inbox, policy=policy, timeout=timeout)
        return sender

    def statistics(self) -> tuple:
        """A SenderStatistics of every open sender (one per inbox and policy), with
        what could not be sent to that inbox and policy while its instance was down;
        one with only that count for an inbox that has no open sender."""
        out = {}
        for sender in dict.fromkeys(self._senders.values()):
            try:
                s = sender.statistics()
            except errors.InboxClosed:
                continue
            out[(s.inbox, s.policy)] = s
        for (inbox, policy), count in self.undelivered.items():
            s = out.get((inbox, policy))
            if s is None:
                out[(inbox, policy)] = SenderStatistics(
                    inbox, self._session.name, 0, 0, 0, 0, 0, 0, 0, policy, count)
            else:
                out[(inbox, policy)] = _with_undelivered(s, count)
        return tuple(sorted(out.values(), key=lambda s: (s.inbox, s.policy)))

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
        self._absent.clear()


def _with_undelivered(s: SenderStatistics, count: int) -> SenderStatistics:
    import dataclasses
    return dataclasses.replace(s, undelivered=s.undelivered + count)
