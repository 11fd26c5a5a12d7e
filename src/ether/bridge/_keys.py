"""The bridge's key expressions: where each thing lives in zenoh's key space.

    ether/<site>/t/<topic%>                       topic data (one sample: a batch of frames)
    ether/<site>/s/<host>/<instance%>/<topic%>    a call to one instance of <host>: a
                                                  service (service:<instance>.<method>)
                                                  or a sync (sync:<topic>); one
                                                  queryable per bridge serves s/<host>/**
    ether/<site>/live/<host>/bridge/<zid>         the bridge of <host> (liveliness)
    ether/<site>/live/<host>/i/<instance%>/<class%>   a local instance and its class
    ether/<site>/live/<host>/sub/<topic%>/<policy>    a local subscription (interest)
    ether/<site>/live/<host>/r/<instance%>/<topic%>   a request topic an instance serves

`<x%>` percent-encodes every byte outside [A-Za-z0-9._-] (UTF-8), so an Ether name
is always one key chunk and never a wildcard or a verbatim chunk. Site and host
names are checked by the config to need no encoding.
"""
from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["encode", "decode", "Keys", "LiveKey"]

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_ESCAPE = re.compile(r"%([0-9A-F]{2})")


def encode(name: str) -> str:
    """One key chunk for any non-empty name."""
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in name.encode("utf-8"))


def decode(chunk: str) -> str:
    """The name of encode(name); ValueError for a chunk encode() never makes."""
    data = bytearray()
    i = 0
    while i < len(chunk):
        c = chunk[i]
        if c == "%":
            match = _ESCAPE.match(chunk, i)
            if match is None:
                raise ValueError(f"bad escape in key chunk {chunk!r}")
            data.append(int(match.group(1), 16))
            i += 3
        elif ord(c) < 128 and ord(c) in _SAFE:
            data.append(ord(c))
            i += 1
        else:
            raise ValueError(f"character {c!r} in key chunk {chunk!r}")
    name = data.decode("utf-8")  # UnicodeDecodeError is a ValueError
    if not name:
        raise ValueError("empty key chunk")
    return name


class LiveKey(NamedTuple):
    """A parsed liveliness key: host, kind (bridge, i, sub, r) and its names."""
    host: str
    kind: str
    names: tuple[str, ...]


_LIVE_ARITY = {"bridge": 1, "i": 2, "sub": 2, "r": 2}


class Keys:
    """The keys of one site, seen from one host."""

    def __init__(self, site: str, host: str):
        self.site, self.host = site, host
        self.root = f"ether/{site}"
        self.live_all = f"{self.root}/live/**"
        self.topics_all = f"{self.root}/t/*"
        self.calls_mine = f"{self.root}/s/{host}/**"

    def topic(self, topic: str) -> str:
        return f"{self.root}/t/{encode(topic)}"

    def topic_of(self, key: str) -> str:
        prefix = f"{self.root}/t/"
        if not key.startswith(prefix):
            raise ValueError(f"{key!r} is not a topic key of site {self.site!r}")
        return decode(key[len(prefix):])

    def call(self, host: str, instance: str, topic: str) -> str:
        return f"{self.root}/s/{host}/{encode(instance)}/{encode(topic)}"

    def call_of(self, key: str) -> tuple[str, str]:
        """(instance, topic) of a call key addressed to this host."""
        prefix = f"{self.root}/s/{self.host}/"
        parts = key[len(prefix):].split("/") if key.startswith(prefix) else []
        if len(parts) != 2:
            raise ValueError(f"{key!r} is not a call to host {self.host!r}")
        return decode(parts[0]), decode(parts[1])

    def bridge_live(self, zid: str, host: str | None = None) -> str:
        return f"{self.root}/live/{host or self.host}/bridge/{zid}"

    def bridges_of(self, host: str) -> str:
        return f"{self.root}/live/{host}/bridge/*"

    def instance_live(self, instance: str, class_path: str) -> str:
        return f"{self.root}/live/{self.host}/i/{encode(instance)}/{encode(class_path or '?')}"

    def sub_live(self, topic: str, policy: str) -> str:
        return f"{self.root}/live/{self.host}/sub/{encode(topic)}/{policy}"

    def request_live(self, instance: str, topic: str) -> str:
        return f"{self.root}/live/{self.host}/r/{encode(instance)}/{encode(topic)}"

    def parse_live(self, key: str) -> LiveKey | None:
        """The LiveKey of a liveliness key of this site; None if it is not one."""
        prefix = f"{self.root}/live/"
        if not key.startswith(prefix):
            return None
        parts = key[len(prefix):].split("/")
        if len(parts) < 2 or _LIVE_ARITY.get(parts[1]) != len(parts) - 2:
            return None
        try:
            names = tuple(p if parts[1] == "bridge" else decode(p) for p in parts[2:])
        except ValueError:
            return None
        return LiveKey(parts[0], parts[1], names)

