"""The zenoh config of a bridge or a router, built from nothing.

Zenoh's own default listens on every interface (``tcp/[::]:0``) and joins
multicast scouting on 224.0.0.224:7446, so the bridge never starts from it: every
key that matters is set here, from the ``bridge:`` section alone
(research/remote.md §2c, §3.7):

- ``bridge: {}``: one listener on ``tcp/127.0.0.1:0``, multicast and gossip off.
- Beyond loopback (``EtherConfig`` refuses it without ``security``): TLS only,
  mutual (a site CA signs every host), the certificate's name checked on connect
  unless ``verify_name: false``, and with ``allow_hosts`` zenoh's ACL denies
  everything but ``ether/<site>/**`` to the listed certificate names, and on the
  agents' keys lets a name speak only as itself (``_acl``).
- Always: a cap on one message, the lease, no zenoh shared memory (it would map
  segments outside Ether's rules), no adminspace, no plugins.

The result is a plain JSON-able dict; the process that runs zenoh does
``zenoh.Config.from_json5(json.dumps(d))``. This module never imports zenoh.
"""
from __future__ import annotations

import math
import os
from typing import Any

from ether.config import BridgeConfig, check_security_files

__all__ = ["ACL_MESSAGES", "KEEP_ALIVES_PER_LEASE", "MAX_BLOCK_TIMEOUT_S", "bridge_mode",
           "connects_out", "bridge_zenoh_config", "zenoh_config"]

#: Every message kind zenoh 1.10's ACL knows; the site rule allows all of them.
ACL_MESSAGES = ("put", "delete", "declare_subscriber", "query", "reply", "declare_queryable",
                "liveliness_token", "declare_liveliness_subscriber", "liveliness_query")
#: Zenoh's own ratio: a link is dead after a lease without any of its keep-alives.
KEEP_ALIVES_PER_LEASE = 4
#: The longest block timeout a subscription can have (the session directory stores
#: 32-bit milliseconds; ether._core._policy.MAX_TIMEOUT_S, pinned by a unit test).
MAX_BLOCK_TIMEOUT_S = (2 ** 32 - 1) / 1000
# Reconnecting after a cut link: from 250 ms doubling up to 2 s, so traffic is back
# within a few seconds of the link (zenoh's default climbs to 4 s).
_RETRY = {"period_init_ms": 250, "period_max_ms": 2000, "period_increase_factor": 2}
_MODES = ("peer", "router")


def zenoh_config(bridge: BridgeConfig, *, base_dir: str | os.PathLike[str] | None,
                 mode: str | None = None) -> dict[str, Any]:
    """The whole zenoh config for ``bridge``, as a dict.

    ``base_dir`` is where relative certificate paths start (``EtherConfig.folder``;
    the current directory when None). The security files are checked here
    (``check_security_files``), so a bad key fails before zenoh sees it.
    ``mode`` is ``"router"`` for ``ether router``; for a bridge (None) it is
    :func:`bridge_mode`.
    """
    mode = bridge_mode(bridge) if mode is None else mode
    if mode not in _MODES:
        raise ValueError(f"mode {mode!r} is invalid (valid: {', '.join(_MODES)})")
    security = bridge.security
    multicast = bridge.discovery == "multicast"
    if security is None:
        listen = list(bridge.listen) or ["tcp/127.0.0.1:0"]
    elif bridge.listen:
        listen = list(bridge.listen)
    else:
        # Found by multicast means reachable: listen, mTLS-only, on an ephemeral port
        # that the Hellos advertise. Otherwise only dial out (`connect`).
        listen = ["tls/0.0.0.0:0"] if multicast else []
    config: dict[str, Any] = {
        "mode": mode,
        "listen": {"endpoints": listen, "exit_on_failure": True},
        "connect": {"endpoints": list(bridge.connect), "exit_on_failure": False,
                    "retry": dict(_RETRY)},
        "scouting": {
            # Routers (a bridge that connects out, ether router) link to each other
            # when they meet on the LAN too; zenoh's own routers wait to be called.
            "multicast": {"enabled": multicast, "listen": multicast,
                          "autoconnect": {"router": ["router", "peer"],
                                          "peer": ["router", "peer"]}},
            # Gossip passes peers' locators between hosts already linked, so hosts
            # that share a router or a LAN find each other; loopback-only has no use.
            "gossip": {"enabled": security is not None, "multihop": False},
        },
        "timestamping": {"enabled": False},  # Ether stamps its own; routers would stamp all
        "adminspace": {"enabled": False},
        "plugins_loading": {"enabled": False},
        "transport": {
            "shared_memory": {"enabled": False},
            "link": {
                "protocols": ["tls"] if security is not None else ["tcp"],
                "rx": {"max_message_size": bridge.max_message_bytes},
                "tx": {
                    "lease": max(1, round(bridge.lease_s * 1000)),
                    "keep_alive": KEEP_ALIVES_PER_LEASE,
                    # A put that blocks this long closes the whole link to that host:
                    # it must outlast any block timeout Ether itself would wait out.
                    "queue": {"congestion_control": {"block": {
                        "wait_before_close": math.ceil(MAX_BLOCK_TIMEOUT_S * 1e6) + 1}}},
                },
            },
        },
    }
    if security is not None:
        files = check_security_files(security, base_dir)
        config["transport"]["link"]["tls"] = {
            "root_ca_certificate": str(files.ca),
            "enable_mtls": True,
            "listen_certificate": str(files.cert),
            "listen_private_key": str(files.key),
            "connect_certificate": str(files.cert),
            "connect_private_key": str(files.key),
            "verify_name_on_connect": security.verify_name,
            "close_link_on_expiration": True,
        }
        if security.allow_hosts is not None:
            config["access_control"] = _acl(bridge.site, security.allow_hosts)
    return config


def connects_out(bridge: BridgeConfig) -> bool:
    """A bridge that connects out and does not scout: it waits for the site itself
    (_bridge.Bridge._await_the_site), not zenoh's open."""
    return bool(bridge.connect) and bridge.discovery != "multicast"


def bridge_zenoh_config(bridge: BridgeConfig, *, base_dir) -> dict[str, Any]:
    """A bridge process's zenoh config: zenoh_config(bridge), and for a bridge that
    connects out no 500 ms wait (scouting/delay) at open for its first links: it
    waits for the site itself, as long as it needs and no longer. The bridge's
    process builds it twice (__main__.py, before its imports; Bridge.start) and
    keeps the first session only if both agree."""
    config = zenoh_config(bridge, base_dir=base_dir)
    if connects_out(bridge):
        config["scouting"]["delay"] = 0
    return config


def bridge_mode(bridge: BridgeConfig) -> str:
    """The zenoh mode of a bridge: ``"router"`` when it connects out, else ``"peer"``.

    Since zenoh 1.9, peers must all link to one another (a clique): a router no
    longer relays between peers that reach only it. Hosts that ``connect`` to a
    router (or to another host) may not reach one another directly, so their
    bridges run as routers themselves, which route through any mesh. Bridges that
    only listen or scout stay peers. (docs/design/remote-security.md)
    """
    return "router" if bridge.connect else "peer"


def _acl(site: str, hosts: list[str]) -> dict[str, Any]:
    """Deny everything, then allow the listed certificate common names, both ways,
    every kind of message on the site's own keys (topics ``t/``, calls ``s/``,
    liveliness ``live/``) and, on the agents' keys (``agent/``,
    docs/design/remote-launch.md), only what proves who speaks: a launch request
    (a query on ``agent/<host>/req/<name>``) is let in only from the certificate
    named ``<name>``, and what an agent says (its queryable, its replies, its
    events) only from the certificate named like the agent's host."""
    root = f"ether/{site}"
    agent = f"{root}/agent"
    rules = [
        {"id": "site", "messages": list(ACL_MESSAGES), "flows": ["ingress", "egress"],
         "permission": "allow", "key_exprs": [f"{root}/t/**", f"{root}/s/**", f"{root}/live/**"]},
        {"id": "agent_out", "messages": ["query", "declare_subscriber", "put", "reply",
                                         "declare_queryable"],
         "flows": ["egress"], "permission": "allow", "key_exprs": [f"{agent}/**"]},
        {"id": "agent_events", "messages": ["declare_subscriber"], "flows": ["ingress"],
         "permission": "allow", "key_exprs": [f"{agent}/*/ev/**"]},
    ]
    subjects = [{"id": "site_hosts", "cert_common_names": list(hosts)}]
    policies = [{"id": "site_hosts_on_site", "rules": ["site", "agent_out", "agent_events"],
                 "subjects": ["site_hosts"]}]
    for host in hosts:
        rules.append({"id": f"asks_{host}", "messages": ["query"], "flows": ["ingress"],
                      "permission": "allow", "key_exprs": [f"{agent}/*/req/{host}"]})
        rules.append({"id": f"agent_{host}", "messages": ["declare_queryable", "put", "reply"],
                      "flows": ["ingress"], "permission": "allow",
                      "key_exprs": [f"{agent}/{host}/**"]})
        subjects.append({"id": f"host_{host}", "cert_common_names": [host]})
        policies.append({"id": f"host_{host}_as_itself", "rules": [f"asks_{host}", f"agent_{host}"],
                         "subjects": [f"host_{host}"]})
    return {"enabled": True, "default_permission": "deny", "rules": rules,
            "subjects": subjects, "policies": policies}
