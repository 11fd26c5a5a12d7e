"""Secure by default, at the zenoh level, across two simulated hosts: the configs
that ether.bridge builds (``zenoh_config``) keep out every peer without a
certificate of the site, let the ACL deny a certified host that ``allow_hosts``
does not list, and without ``security`` listen on loopback only
(research/remote.md §2c, §4 test 5). Each case has its positive control: a valid
peer on the same hosts does exchange puts and queries both ways.

Absence is shown by ordering, not by sleeping: the attacker's refusal is awaited in
A's log, its puts go first, and then the valid peer's puts, sent later on the
same hosts, arrive while the attacker's never do.
"""
from __future__ import annotations

import stat

import pytest

from ether import ConfigError
from ether.bridge import zenoh_config
from ether.config import BridgeConfig, EtherConfig, check_security_files

from .agents import Agent
from .conftest import needs_netns

# The site's topic space: with allow_hosts the ACL allows the site's own key spaces
# (t/ topics, s/ calls, live/ liveliness) and, on the agents' (agent/), a name
# only as itself (docs/design/remote-launch.md).
KEYS = "ether/lab1/t/**"
PORT = 7447


def _security(certs, name, ca_dir=None, **extra) -> dict:
    return {"ca": str((ca_dir or certs) / "lab1-ca.pem"), "cert": str(certs / f"{name}.pem"),
            "key": str(certs / f"{name}.key"), **extra}


def _bridge(**section) -> dict:
    return zenoh_config(BridgeConfig(site="lab1", **section), base_dir=None)


def _server(host, good, **security) -> Agent:
    """Host A: mTLS on its address, a canary subscriber on the site's keys, and a
    queryable."""
    agent = Agent(host, _bridge(listen=[f"tls/{host.addr}:{PORT}"],
                                security=_security(good, "hostA", **security)))
    agent.sub(KEYS)
    agent.call("queryable", key="ether/lab1/s/q", reply="pong")
    return agent


def _client(host, good, server, name="hostB", **security) -> Agent:
    return Agent(host, _bridge(connect=[f"tls/{server.addr}:{PORT}"],
                               security=_security(good, name, **security)))


def _exchange_works(a: Agent, b: Agent, tag: str) -> None:
    """The positive control: b sees a's subscriber and a b's, puts cross both ways,
    and b's query is answered."""
    assert b.peers(10), "the valid peer never linked to A"
    assert b.matches("ether/lab1/t/from-b", 10), "the valid peer never saw A's subscriber"
    b.sub(KEYS)
    assert a.matches("ether/lab1/t/from-a", 10), "A never saw the valid peer's subscriber"
    b.put("ether/lab1/t/from-b", f"b-{tag}")
    a.put("ether/lab1/t/from-a", f"a-{tag}")
    assert a.wait_sample(f"b-{tag}", 10), "A's canary missed the valid peer's put"
    assert b.wait_sample(f"a-{tag}", 10), "the valid peer missed A's put"
    assert b.get("ether/lab1/s/q") == ["pong"]


# -- (a) beyond loopback needs security -----------------------------------------

@pytest.mark.timeout(10)
@pytest.mark.parametrize("section", [
    {"listen": ["tls/10.77.0.1:7447"]},
    {"listen": ["tcp/0.0.0.0:7447"]},
    {"connect": ["tls/10.77.0.2:7447"]},
    {"discovery": "multicast"},
], ids=["listen", "listen-any", "connect", "multicast"])
def test_beyond_loopback_without_security_is_a_config_error(section):
    with pytest.raises(ConfigError, match=r"^bridge: .*reaches beyond loopback, which needs "
                                          r"'security'.*`ether certs init SITE`"):
        EtherConfig.load({"bridge": section})


# -- (b) only certificates of the site get in -----------------------------------

def _attacker_config(kind, good, rogue, server) -> tuple[dict, str]:
    """A peer on B trying A's TLS port, and the line A logs when it refuses it."""
    target = f"{server.addr}:{PORT}"
    if kind == "foreign-ca":  # trusts the site CA, but its own certificate is not the site's
        return _bridge(connect=[f"tls/{target}"],
                       security=_security(rogue, "rogueB", ca_dir=good)), "invalid peer certificate"
    base = {"mode": "peer", "listen": {"endpoints": []},
            "scouting": {"multicast": {"enabled": False}, "gossip": {"enabled": False}},
            "transport": {"shared_memory": {"enabled": False}}}
    if kind == "no-cert":
        base["connect"] = {"endpoints": [f"tls/{target}"]}
        base["transport"]["link"] = {"protocols": ["tls"], "tls": {
            "root_ca_certificate": str(good / "lab1-ca.pem")}}
        return base, r"(?i)no ?certificates"
    base["connect"] = {"endpoints": [f"tcp/{target}"]}  # plain TCP to the TLS port
    return base, r"(?i)InvalidContentType|corrupt message"


@needs_netns
@pytest.mark.timeout(45)
@pytest.mark.parametrize("kind", ["foreign-ca", "no-cert", "plain-tcp"])
def test_a_peer_without_a_site_certificate_sees_and_delivers_nothing(hosts, site, kind):
    good, rogue = site
    net = hosts(2)
    A, B = net["A"], net["B"]
    a = _server(A, good)
    config, refusal = _attacker_config(kind, good, rogue, A)
    attacker = Agent(B, config)
    attacker.sub(KEYS)
    assert a.wait_log(refusal, 15), f"A never refused the {kind} peer: {a.log[-3:]}"
    attacker.put("ether/lab1/t/evil", "evil-1")
    a.put("ether/lab1/t/from-a", "a-1")
    assert attacker.get("ether/lab1/s/q", timeout=0.5) == []

    good_b = _client(B, good, A)  # the positive control, on the same hosts, afterwards
    _exchange_works(a, good_b, "1")
    attacker.put("ether/lab1/t/evil", "evil-2")
    _exchange_works(a, good_b, "2")  # a round trip after the attacker's last put

    assert attacker.peers(0) == []
    assert [p for p in a.payloads() if p.startswith("evil")] == []
    assert attacker.payloads() == ["evil-1", "evil-2"]  # its own, locally: none of A's


# -- (c) allow_hosts: the ACL, by certificate name ------------------------------

@needs_netns
@pytest.mark.timeout(45)
def test_a_site_certificate_that_allow_hosts_does_not_list_is_denied(hosts, site):
    good, _ = site
    net = hosts(2)
    A, B = net["A"], net["B"]
    a = _server(A, good, allow_hosts=["hostA", "hostB"])
    # hostC is signed by the site CA: it links (mTLS lets it in) but the ACL denies it.
    c = _client(B, good, A, name="hostC", allow_hosts=["hostA", "hostB", "hostC"])
    assert [p["cn"] for p in c.peers(10)] == ["hostA"]
    c.sub(KEYS)
    c.put("ether/lab1/t/evil", "evil-1")
    assert c.get("ether/lab1/s/q", timeout=0.5) == []

    b = _client(B, good, A, allow_hosts=["hostA", "hostB"])  # listed: it works
    _exchange_works(a, b, "1")
    assert not c.matches("ether/lab1/t/evil", 0.2), "the unlisted host saw A's subscriber"
    c.put("ether/lab1/t/evil", "evil-2")
    assert c.get("ether/lab1/s/q", timeout=0.5) == []
    _exchange_works(a, b, "2")

    assert [p for p in a.payloads() if p.startswith("evil")] == []
    assert c.payloads() == ["evil-1", "evil-2"]  # its own, locally: none of A's


# -- (d) bridge: {} is loopback only ----------------------------------------------

def _exposed(listening) -> list[tuple[str, str]]:
    return [(proto, addr) for proto, addr in listening
            if not (addr.startswith("127.") or addr.startswith("[::1]"))
            or addr.endswith(":7446")]


@needs_netns
@pytest.mark.timeout(30)
def test_an_empty_bridge_section_listens_on_loopback_only(hosts):
    net = hosts(1)
    A = net["A"]
    assert A.listening() == []
    quiet = Agent(A, zenoh_config(EtherConfig.load({"bridge": None}).bridge, base_dir=None))
    sockets = A.listening()
    assert sockets and _exposed(sockets) == [], sockets
    quiet.close()
    # The control: zenoh's own default, which Ether never starts from, is exposed.
    loud = Agent(A, {"mode": "peer"})
    exposed = _exposed(A.listening())
    assert any(addr.endswith(":7446") for _, addr in exposed), exposed
    assert any(proto == "tcp" for proto, _ in exposed), exposed
    loud.close()


# -- (e) multicast discovery, with mTLS ---------------------------------------------

@needs_netns
@pytest.mark.timeout(45)
def test_multicast_finds_the_other_host_with_no_address_configured(hosts, site):
    good, _ = site
    net = hosts(2)
    A, B = net["A"], net["B"]
    a = Agent(A, _bridge(discovery="multicast", security=_security(good, "hostA")))
    a.sub(KEYS)
    a.call("queryable", key="ether/lab1/s/q", reply="pong")
    b = Agent(B, _bridge(discovery="multicast", security=_security(good, "hostB")))
    assert [p["cn"] for p in b.peers(10)] == ["hostA"]
    _exchange_works(a, b, "1")


# -- (f) the key file must be private ------------------------------------------------

@pytest.mark.timeout(10)
def test_a_key_file_readable_by_others_is_refused_with_the_fix(site):
    good, _ = site
    security = BridgeConfig(site="lab1", listen=["tls/10.77.0.1:7447"],
                            security=_security(good, "hostC")).security
    key = good / "hostC.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    check_security_files(security, None)
    key.chmod(0o644)
    try:
        with pytest.raises(ConfigError) as info:
            zenoh_config(BridgeConfig(site="lab1", listen=["tls/10.77.0.1:7447"],
                                      security=security), base_dir=None)
    finally:
        key.chmod(0o600)
    assert str(info.value) == (f"bridge: security: key: {key}: has mode 0644, readable by "
                               f"others; a private key must be mode 0600: run `chmod 600 {key}`")
