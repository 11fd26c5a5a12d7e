"""Ether across hosts: the bridge, one process per host and session, which joins
the sessions of one site over Zenoh (research/remote.md, docs/design/bridge.md).

A config with a `bridge:` section makes `ether.tap` start it; nothing else in
Ether imports zenoh (a forking process must never hold it). This package's
import is light: `site()` and `statistics()` ask the running bridge of a session
through any Client (the main script's `ether`, or `Client.attach(name)`).
"""
from __future__ import annotations

__all__ = ["site", "statistics"]


def _client(client):
    if client is not None:
        return client
    from ether import ether
    return ether


def site(client=None, *, timeout: float = 5.0) -> dict:
    """The site as this host's bridge sees it, from the liveliness tokens of every
    bridge: {"site", "host", "hosts": {host: {"bridges", "instances",
    "subscriptions", "requests"}}}."""
    return _client(client).get("bridge", "site", timeout=timeout)


def statistics(client=None, *, timeout: float = 5.0) -> dict:
    """The bridge's counters: frames sent and received, losses between the bridges
    (`inbound.gaps`), refused samples (`inbound.rejected`), what its re-publishing
    dropped (`senders`), and its calls."""
    return _client(client).get("bridge", "statistics", timeout=timeout)
