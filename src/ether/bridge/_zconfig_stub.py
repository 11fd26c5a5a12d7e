"""A stand-in for `_zconfig.py` (the bridge-security branch), until it is merged:
the zenoh config of a bridge on loopback, plain TCP, built from nothing (zenoh's
own default listens on every interface and joins multicast). It refuses what it
does not cover (security, multicast) rather than do it badly."""
from __future__ import annotations

from ether import ConfigError

__all__ = ["zenoh_config"]


def zenoh_config(bridge, *, base_dir, mode: str = "peer") -> dict:
    """The zenoh config (a JSON-able dict) of `bridge` (an ether.config.BridgeConfig)."""
    if bridge.security is not None or bridge.discovery != "none":
        raise ConfigError("bridge: security and multicast discovery need ether.bridge._zconfig "
                          "(not in this build yet); use loopback tcp endpoints")
    return {
        "mode": mode,
        "listen": {"endpoints": list(bridge.listen) or
                   ([] if bridge.connect else ["tcp/127.0.0.1:0"])},
        "connect": {"endpoints": list(bridge.connect)},
        "scouting": {"multicast": {"enabled": False}, "gossip": {"enabled": False}},
        "transport": {
            "link": {"tx": {"lease": int(bridge.lease_s * 1000), "keep_alive": 4},
                     "rx": {"max_message_size": bridge.max_message_bytes}},
            "shared_memory": {"enabled": False},
        },
        "adminspace": {"enabled": False},
    }
