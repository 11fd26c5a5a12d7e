"""The site as this bridge sees it: every host's bridge, instances, interest and
request topics, from the liveliness tokens the bridges hold (_keys.py).

A token is declared by one bridge and lives as long as that bridge's zenoh
session (a killed bridge's vanish at once; a hung or cut-off host's at the
lease), so this view is the site's membership: what a proxy's pending call
asks ("is that instance still there?") and what `site` answers.

One thread changes it (the bridge's control thread, in liveliness order);
others read it under its lock.
"""
from __future__ import annotations

import threading
from collections import Counter

from ._keys import LiveKey

__all__ = ["Site", "HostView"]


class HostView:
    def __init__(self) -> None:
        self.bridges: Counter = Counter()                # zenoh ids
        self.instances: dict[str, Counter] = {}          # name -> class paths
        self.subs: dict[str, Counter] = {}               # topic or pattern -> policies
        self.requests: dict[str, Counter] = {}           # instance -> request topics

    def empty(self) -> bool:
        return not (self.bridges or self.instances or self.subs or self.requests)

    def to_dict(self) -> dict:
        return {"bridges": sorted(self.bridges),
                "instances": {n: sorted(c)[0] for n, c in sorted(self.instances.items()) if c},
                "subscriptions": {t: sorted(c) for t, c in sorted(self.subs.items()) if c},
                "requests": {n: sorted(c) for n, c in sorted(self.requests.items()) if c}}


def _change(table: dict[str, Counter], name: str, value: str, put: bool) -> None:
    counter = table.setdefault(name, Counter())
    counter[value] += 1 if put else -1
    if counter[value] <= 0:
        del counter[value]
    if not counter:
        del table[name]


class Site:
    def __init__(self, site: str, host: str):
        self.site, self.host = site, host
        self._lock = threading.Lock()
        self._hosts: dict[str, HostView] = {}
        self.version = 0   # bumped by every change: the control thread recomputes on it

    def apply(self, live: LiveKey, put: bool) -> None:
        """A token appeared (put) or vanished."""
        with self._lock:
            view = self._hosts.setdefault(live.host, HostView())
            if live.kind == "bridge":
                view.bridges[live.names[0]] += 1 if put else -1
                if view.bridges[live.names[0]] <= 0:
                    del view.bridges[live.names[0]]
            elif live.kind == "i":
                _change(view.instances, live.names[0], live.names[1], put)
            elif live.kind == "sub":
                _change(view.subs, live.names[0], live.names[1], put)
            elif live.kind == "r":
                _change(view.requests, live.names[0], live.names[1], put)
            if view.empty():
                del self._hosts[live.host]
            self.version += 1

    def others(self) -> dict[str, HostView]:
        """The other hosts' views (a copy of the dict; the views are read under no
        lock by the control thread only, which alone changes them)."""
        with self._lock:
            return {h: v for h, v in self._hosts.items() if h != self.host}

    def serves(self, host: str, instance: str, topic: str) -> bool:
        """Is instance@host still there, serving topic (its token alive)?"""
        with self._lock:
            view = self._hosts.get(host)
            return bool(view and view.bridges and topic in view.requests.get(instance, ()))

    def bridges_of(self, host: str) -> frozenset:
        """The zenoh ids of the host's live bridges (a restarted bridge has a new one)."""
        with self._lock:
            view = self._hosts.get(host)
            return frozenset(view.bridges) if view else frozenset()

    def to_dict(self) -> dict:
        with self._lock:
            return {"site": self.site, "host": self.host,
                    "hosts": {h: v.to_dict() for h, v in sorted(self._hosts.items())}}
