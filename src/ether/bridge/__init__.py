"""Ether across hosts: the bridge, one process per host and session, which joins
the sessions of one site over Zenoh (research/remote.md, docs/design/bridge.md),
with what it stands on: its zenoh config, the site's certificates and the router
for the WAN (docs/design/remote-security.md), and `ether agent`'s launcher
(docs/design/remote-launch.md). The ``remote`` extra brings them:
``pip install "ether[remote]"``.

A config with a `bridge:` section makes `ether.tap` start it; nothing else in
Ether imports zenoh (a forking process must never hold it), and `ether router`
imports it only in its own process. This package's import is light: it loads
neither zenoh nor cryptography. `site()` and `statistics()` ask the running
bridge of a session through any Client (the main script's `ether`, or
`Client.attach(name)`).
"""
from __future__ import annotations

__all__ = ["Agent", "DEFAULT_PORT", "Router", "Written", "make_ca", "make_host", "site", "statistics",
           "zenoh_config"]

# Loaded on first use (PEP 562): the bridge's process (`python -m ether.bridge`)
# imports this package first, and starts its zenoh session before it loads the
# config models (pydantic, a fifth of a second) that _agent.py and _zconfig.py need.
_LAZY = {"Agent": "_agent", "Written": "_certs", "make_ca": "_certs", "make_host": "_certs",
         "DEFAULT_PORT": "_router", "Router": "_router", "zenoh_config": "_zconfig"}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ether.bridge' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


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
