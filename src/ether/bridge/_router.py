"""A zenoh router for the WAN: hosts that cannot find one another by multicast
(other subnets, the Internet, CI without multicast) all ``connect`` to it, and it
forwards between them (research/remote.md §2a).

It is zenoh's own router, run from Python in this process with a config that
``zenoh_config`` builds like a bridge's: beyond loopback only with mutual TLS, and
with ``allow_hosts`` only for the listed certificate names. The hosts' own
``allow_hosts`` must then list the router's name too, since what the router
forwards arrives on their link to it.

zenoh is imported here, when a router opens: never in a process that forks.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from ether import ConfigError
from ether.config import BridgeConfig

from ._zconfig import zenoh_config

__all__ = ["DEFAULT_PORT", "Router"]

#: zenoh's usual router port.
DEFAULT_PORT = 7447


class Router:
    """An open zenoh router; ``close()`` (or ``with``) ends it. ``log`` gets one line
    per event: the endpoints it listens on and every peer that links or leaves."""

    def __init__(self, bridge: BridgeConfig, *, base_dir: str | os.PathLike[str] | None,
                 log: Callable[[str], None] = print):
        self._log = log
        config = zenoh_config(bridge, base_dir=base_dir, mode="router")
        zenoh = _import_zenoh()
        self._linked = zenoh.SampleKind.PUT
        try:
            self._session = zenoh.open(zenoh.Config.from_json5(json.dumps(config)))
        except zenoh.ZError as e:
            raise ConfigError(f"the router cannot start: {e}") from None
        self._listener = self._session.info.declare_link_events_listener(
            self._on_link, history=True)
        security = "mutual TLS" if bridge.security is not None else "loopback, no TLS"
        if bridge.security is not None and bridge.security.allow_hosts is not None:
            security += f", only {', '.join(bridge.security.allow_hosts)}"
        log(f"router {self._session.zid()} listening on {', '.join(config['listen']['endpoints'])}"
            f" ({security})")
        for endpoint in config["connect"]["endpoints"]:
            log(f"connecting to {endpoint}")

    @property
    def zid(self) -> str:
        return str(self._session.zid())

    def peers(self) -> list[tuple[str, str | None]]:
        """(zenoh id, certificate name) of every linked peer."""
        return sorted({(str(link.zid), link.auth_identifier)
                       for link in self._session.info.links()})

    def _on_link(self, event: Any) -> None:
        link = event.link
        kind = "linked" if event.kind == self._linked else "left"
        name = f" ({link.auth_identifier})" if link.auth_identifier else ""
        self._log(f"{kind}: {link.zid}{name} {link.dst} -> {link.src}")

    def close(self) -> None:
        if self._session is None:
            return
        session, self._session = self._session, None
        self._listener.undeclare()
        session.close()
        self._log("router closed")

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _import_zenoh() -> Any:
    try:
        import zenoh
    except ImportError:
        raise ConfigError('the router needs zenoh: pip install "ether[remote]"') from None
    return zenoh
