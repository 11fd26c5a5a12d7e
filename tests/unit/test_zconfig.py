"""The zenoh config a bridge or router gets (ether.bridge.zenoh_config): built from
nothing, loopback-only by default, mutual TLS and the ACL beyond it; and the
checks on the security files. tests/remote/test_security.py shows on two
simulated hosts that zenoh does what these dicts say."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ether import ConfigError
from ether.bridge import zenoh_config
from ether.bridge._zconfig import ACL_MESSAGES, MAX_BLOCK_TIMEOUT_S
from ether.config import BridgeConfig, EtherConfig, check_security_files

CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"


@pytest.fixture
def files(tmp_path):
    """ca.pem, host.pem and host.key (0600) in tmp_path/certs: PEM-shaped, enough
    for the checks (zenoh itself reads them only in tests/remote)."""
    d = tmp_path / "certs"
    d.mkdir()
    (d / "ca.pem").write_text(CERT)
    (d / "host.pem").write_text(CERT)
    fd = os.open(d / "host.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, KEY.encode())
    os.close(fd)
    return d


def _security(d, **extra):
    return {"ca": str(d / "ca.pem"), "cert": str(d / "host.pem"), "key": str(d / "host.key"),
            **extra}


def test_an_empty_section_is_loopback_only_with_multicast_and_gossip_off():
    config = zenoh_config(BridgeConfig(), base_dir=None)
    assert config["mode"] == "peer"
    assert config["listen"] == {"endpoints": ["tcp/127.0.0.1:0"], "exit_on_failure": True}
    assert config["connect"]["endpoints"] == []
    assert config["scouting"]["multicast"]["enabled"] is False
    assert config["scouting"]["multicast"]["listen"] is False
    assert config["scouting"]["gossip"] == {"enabled": False, "multihop": False}
    assert config["transport"]["link"]["protocols"] == ["tcp"]
    assert "tls" not in config["transport"]["link"]
    assert "access_control" not in config
    json.dumps(config)  # JSON-able, for zenoh.Config.from_json5


def test_what_every_config_sets():
    config = zenoh_config(BridgeConfig(lease_s=2.5, max_message_bytes=1 << 20), base_dir=None)
    assert config["adminspace"] == {"enabled": False}
    assert config["timestamping"] == {"enabled": False}
    assert config["plugins_loading"] == {"enabled": False}
    assert config["transport"]["shared_memory"] == {"enabled": False}
    link = config["transport"]["link"]
    assert link["rx"] == {"max_message_size": 1 << 20}
    assert link["tx"]["lease"] == 2500 and link["tx"]["keep_alive"] == 4
    wait_us = link["tx"]["queue"]["congestion_control"]["block"]["wait_before_close"]
    assert wait_us > MAX_BLOCK_TIMEOUT_S * 1e6


def test_wait_before_close_outlasts_the_longest_block_timeout_ether_has():
    from ether._core._policy import MAX_TIMEOUT_S
    assert MAX_BLOCK_TIMEOUT_S == MAX_TIMEOUT_S


def test_a_loopback_connect_needs_no_security():
    config = zenoh_config(BridgeConfig(connect=["tcp/127.0.0.1:7447"]), base_dir=None)
    assert config["connect"]["endpoints"] == ["tcp/127.0.0.1:7447"]
    assert config["connect"]["exit_on_failure"] is False  # a router that is down comes later
    assert config["transport"]["link"]["protocols"] == ["tcp"]


def test_a_bridge_that_connects_out_is_a_zenoh_router_else_a_peer(files):
    # zenoh >= 1.9 relays nothing between peers that are not all linked to one
    # another, so hosts meeting only at a router run as routers (a mesh).
    assert zenoh_config(BridgeConfig(), base_dir=None)["mode"] == "peer"
    assert zenoh_config(BridgeConfig(connect=["tcp/127.0.0.1:7447"]), base_dir=None)["mode"] == "router"
    listen = BridgeConfig(listen=["tls/10.0.0.1:7447"], discovery="multicast",
                          security=_security(files))
    assert zenoh_config(listen, base_dir=None)["mode"] == "peer"
    assert zenoh_config(listen, base_dir=None, mode="router")["mode"] == "router"
    # Multicast links routers too (zenoh's routers would only wait to be called).
    assert zenoh_config(listen, base_dir=None)["scouting"]["multicast"]["autoconnect"] == {
        "router": ["router", "peer"], "peer": ["router", "peer"]}


def test_with_security_it_is_mutual_tls_only(files):
    bridge = BridgeConfig(site="lab1", listen=["tls/10.0.0.1:7447"],
                          connect=["tls/10.0.0.2:7447"], security=_security(files))
    config = zenoh_config(bridge, base_dir=None)
    assert config["listen"]["endpoints"] == ["tls/10.0.0.1:7447"]
    assert config["connect"]["endpoints"] == ["tls/10.0.0.2:7447"]
    assert config["transport"]["link"]["protocols"] == ["tls"]
    assert config["transport"]["link"]["tls"] == {
        "root_ca_certificate": str(files / "ca.pem"),
        "enable_mtls": True,
        "listen_certificate": str(files / "host.pem"),
        "listen_private_key": str(files / "host.key"),
        "connect_certificate": str(files / "host.pem"),
        "connect_private_key": str(files / "host.key"),
        "verify_name_on_connect": True,
        "close_link_on_expiration": True,
    }
    assert config["scouting"]["multicast"]["enabled"] is False
    assert config["scouting"]["gossip"]["enabled"] is True
    assert "access_control" not in config


def test_verify_name_false_turns_the_name_check_off(files):
    bridge = BridgeConfig(connect=["tls/10.0.0.2:7447"],
                          security=_security(files, verify_name=False))
    assert zenoh_config(bridge, base_dir=None)["transport"]["link"]["tls"][
        "verify_name_on_connect"] is False


def test_multicast_with_security_listens_on_tls_and_scouts(files):
    bridge = BridgeConfig(discovery="multicast", security=_security(files))
    config = zenoh_config(bridge, base_dir=None)
    assert config["listen"]["endpoints"] == ["tls/0.0.0.0:0"]
    assert config["scouting"]["multicast"]["enabled"] is True
    assert config["scouting"]["multicast"]["listen"] is True
    assert config["scouting"]["gossip"] == {"enabled": True, "multihop": False}


def test_security_with_connect_only_opens_no_listener(files):
    bridge = BridgeConfig(connect=["tls/router.example.org:7447"], security=_security(files))
    assert zenoh_config(bridge, base_dir=None)["listen"]["endpoints"] == []


def test_allow_hosts_is_a_default_deny_acl_on_the_sites_keys(files):
    bridge = BridgeConfig(site="lab1", connect=["tls/10.0.0.2:7447"],
                          security=_security(files, allow_hosts=["rig-a", "rig-b"]))
    acl = zenoh_config(bridge, base_dir=None)["access_control"]
    assert acl["enabled"] is True and acl["default_permission"] == "deny"
    rules = {r["id"]: r for r in acl["rules"]}
    assert rules["site"] == {"id": "site", "messages": list(ACL_MESSAGES),
                             "flows": ["ingress", "egress"], "permission": "allow",
                             "key_exprs": ["ether/lab1/t/**", "ether/lab1/s/**", "ether/lab1/live/**"]}
    assert acl["subjects"][0] == {"id": "site_hosts", "cert_common_names": ["rig-a", "rig-b"]}
    assert acl["policies"][0] == {"id": "site_hosts_on_site", "subjects": ["site_hosts"],
                                  "rules": ["site", "agent_out", "agent_events"]}


def test_on_the_agents_keys_a_certificate_speaks_only_as_itself(files):
    """A launch request (a query on agent/<host>/req/<name>) comes in only from the
    certificate <name>; an agent's queryable, replies and events only from the
    certificate named like its host (docs/design/remote-launch.md)."""
    bridge = BridgeConfig(site="lab1", connect=["tls/10.0.0.2:7447"],
                          security=_security(files, allow_hosts=["rig-a", "rig-b"]))
    acl = zenoh_config(bridge, base_dir=None)["access_control"]
    rules = {r["id"]: r for r in acl["rules"]}
    subjects = {s["id"]: s["cert_common_names"] for s in acl["subjects"]}
    for host in ("rig-a", "rig-b"):
        policy = next(p for p in acl["policies"] if p["subjects"] == [f"host_{host}"])
        assert subjects[f"host_{host}"] == [host]
        asks, speaks = (rules[r] for r in policy["rules"])
        assert (asks["messages"], asks["flows"], asks["key_exprs"]) == (
            ["query"], ["ingress"], [f"ether/lab1/agent/*/req/{host}"])
        assert (speaks["flows"], speaks["key_exprs"]) == (["ingress"], [f"ether/lab1/agent/{host}/**"])
    everyone = [rules[r] for r in acl["policies"][0]["rules"]]
    assert not [r for r in everyone if "query" in r["messages"] and "ingress" in r["flows"]
                and any("/agent/" in k for k in r["key_exprs"])]


def test_router_mode(files):
    bridge = BridgeConfig(listen=["tls/0.0.0.0:7447"], security=_security(files))
    assert zenoh_config(bridge, base_dir=None, mode="router")["mode"] == "router"
    with pytest.raises(ValueError, match="mode 'client' is invalid"):
        zenoh_config(bridge, base_dir=None, mode="client")


def test_relative_paths_start_at_the_config_files_folder(files, tmp_path, monkeypatch):
    (tmp_path / "host.yaml").write_text(
        "bridge:\n  connect: [tls/10.0.0.2:7447]\n"
        "  security: {ca: certs/ca.pem, cert: certs/host.pem, key: certs/host.key}\n")
    monkeypatch.chdir(files)  # elsewhere: the paths must not start here
    config = EtherConfig.from_yaml(tmp_path / "host.yaml")
    assert config.folder == tmp_path
    tls = zenoh_config(config.bridge, base_dir=config.folder)["transport"]["link"]["tls"]
    assert tls["root_ca_certificate"] == str(files / "ca.pem")
    assert tls["listen_private_key"] == str(files / "host.key")
    # From a dict there is no file: the current directory.
    monkeypatch.chdir(tmp_path)
    assert EtherConfig.load({}).folder == tmp_path
    checked = check_security_files(BridgeConfig(
        connect=["tls/10.0.0.2:7447"],
        security={"ca": "certs/ca.pem", "cert": "certs/host.pem", "key": "certs/host.key"}
    ).security, None)
    assert checked.key == files / "host.key"


def test_the_module_does_not_import_zenoh():
    code = ("import sys, ether.bridge, ether.bridge._zconfig; "
            "from ether.config import BridgeConfig; "
            "ether.bridge.zenoh_config(BridgeConfig(), base_dir=None); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('zenoh', 'cryptography')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- the security files -------------------------------------------------------------

def _check(d, **paths):
    security = BridgeConfig(connect=["tls/10.0.0.2:7447"],
                            security={**_security(d), **paths}).security
    with pytest.raises(ConfigError) as info:
        check_security_files(security, None)
    return str(info.value)


def test_a_key_readable_by_others_is_refused_with_the_fix(files):
    key = files / "host.key"
    for mode in (0o644, 0o640, 0o604):
        key.chmod(mode)
        assert _check(files) == (f"bridge: security: key: {key}: has mode {mode:04o}, readable "
                                 f"by others; a private key must be mode 0600: "
                                 f"run `chmod 600 {key}`")
    key.chmod(0o400)  # stricter than 0600 is fine
    check_security_files(BridgeConfig(connect=["tls/10.0.0.2:7447"],
                                      security=_security(files)).security, None)


def test_a_key_of_another_user_is_refused(files):
    if os.getuid() != 0:
        pytest.skip("needs root to give the key away")
    key = files / "host.key"
    os.chown(key, 12345, -1)
    assert _check(files) == (f"bridge: security: key: {key}: owned by uid 12345, not by this "
                             f"user (uid 0); a private key must be your own (chown 0 {key})")


def test_a_missing_file_is_named_with_how_to_make_it(files):
    assert _check(files, cert=str(files / "nope.pem")) == (
        f"bridge: security: cert: {files / 'nope.pem'}: file not found (make it with "
        "`ether certs init SITE` and `ether certs host NAME`)")


def test_a_file_that_is_not_pem_is_refused(files):
    (files / "ca.pem").write_text("hello")
    assert _check(files) == f"bridge: security: ca: {files / 'ca.pem'}: not a PEM file holding a certificate"
    (files / "ca.pem").write_text(CERT)
    (files / "other.key").write_text(CERT)
    (files / "other.key").chmod(0o600)
    assert _check(files, key=str(files / "other.key")) == (
        f"bridge: security: key: {files / 'other.key'}: not a PEM file holding a private key")


def test_a_directory_is_not_a_file(files):
    assert _check(files, ca=str(files)) == f"bridge: security: ca: {files}: not a regular file"


def test_zenoh_config_checks_the_files_first(files):
    (files / "host.key").chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        zenoh_config(BridgeConfig(connect=["tls/10.0.0.2:7447"], security=_security(files)),
                     base_dir=None)


# -- errors in the bridge section name their place ----------------------------------

@pytest.mark.parametrize("section,message", [
    ({"security": {"ca": "a"}}, "bridge: security: missing required key 'cert'\n"
                                "bridge: security: missing required key 'key'"),
    ({"security": {"ca": "a", "cert": "b", "key": "c", "bogus": 1}},
     "bridge: security: unknown key 'bogus' (valid: ca, cert, key, allow_hosts, verify_name, operators)"),
    ({"security": {"ca": "a", "cert": "b", "key": "c", "allow_hosts": ["x y"]}},
     "bridge: security: allow_hosts: 'x y' is not a host name (1-64 letters, digits, '_' or '-')"),
    ({"lease_s": 0}, "bridge: lease_s must be between 0.1 and 600 seconds, not 0.0"),
    ({"listen": "tls/x:1"}, "bridge: key 'listen': expected a list, got str 'tls/x:1'"),
    ({"listen": [3]}, "bridge: key 'listen.0': expected a string, got int 3"),
    ({"site": "a/b"}, "bridge: site 'a/b' is invalid: use 1-32 letters, digits, '_' or '-'"),
    ({"color": "red"}, "bridge: unknown key 'color' (valid: site, host, discovery, listen, "
                       "connect, security, export, lease_s, max_message_bytes)"),
    ({"listen": ["tcp/10.0.0.1:7447"], "security": {"ca": "a", "cert": "b", "key": "c"}},
     "bridge: with 'security', endpoints must be tls/: tcp/10.0.0.1:7447"),
])
def test_bridge_errors_name_their_place(section, message):
    with pytest.raises(ConfigError) as info:
        EtherConfig.load({"bridge": section})
    assert str(info.value) == message


def test_errors_in_a_file_name_the_file_too(tmp_path):
    (tmp_path / "x.yaml").write_text("bridge:\n  security: {ca: a, cert: b}\n")
    with pytest.raises(ConfigError) as info:
        EtherConfig.from_yaml(tmp_path / "x.yaml")
    assert str(info.value) == f"{tmp_path / 'x.yaml'}: bridge: security: missing required key 'key'"


def test_a_bare_bridge_key_is_an_empty_section(tmp_path):
    (tmp_path / "x.yaml").write_text("bridge:\n")
    assert EtherConfig.from_yaml(tmp_path / "x.yaml").bridge == BridgeConfig()
    assert EtherConfig.load({}).bridge is None


def test_zenoh_accepts_every_kind_of_config(files):
    """Each dict parses as a zenoh config (in a subprocess: zenoh stays out of
    this test process, which forks)."""
    security = _security(files, allow_hosts=["rig-a"])
    configs = [zenoh_config(b, base_dir=None) for b in (
        BridgeConfig(),
        BridgeConfig(connect=["tcp/127.0.0.1:7447"]),
        BridgeConfig(discovery="multicast", security=security),
        BridgeConfig(listen=["tls/0.0.0.0:7447"], connect=["tls/10.0.0.2:7447"],
                     security=_security(files, verify_name=False)),
    )]
    configs.append(zenoh_config(BridgeConfig(listen=["tls/0.0.0.0:7447"], security=security),
                                base_dir=None, mode="router"))
    code = ("import json, sys, zenoh\n"
            "for d in json.load(sys.stdin):\n"
            "    zenoh.Config.from_json5(json.dumps(d))\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(configs),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == "ok\n", out.stderr


def test_the_readmes_across_hosts_config_loads_with_the_certificates_it_names(tmp_path):
    """The README's snippet, with the files its two `ether certs` commands make."""
    import pathlib
    import re

    from ether.bridge import make_ca, make_host
    readme = (pathlib.Path(__file__).parents[2] / "README.md").read_text()
    part = readme.split("## Across hosts", 1)[1].split("\n## ", 1)[0]
    snippet = re.search(r"```yaml\n(.*?)```", part, re.S).group(1)
    commands = re.findall(r"^ether certs (init|host) (\S+)", part, re.M)
    assert commands[:2] == [("init", "lab1"), ("host", "rig-b")]
    make_ca("lab1", tmp_path / "certs")
    make_host("rig-b", tmp_path / "certs", ips=["192.168.1.12"])
    (tmp_path / "rig-b.yaml").write_text(snippet)
    config = EtherConfig.from_yaml(tmp_path / "rig-b.yaml")
    assert config.bridge.host == "rig-b" and config.bridge.discovery == "multicast"
    built = zenoh_config(config.bridge, base_dir=config.folder)
    assert built["transport"]["link"]["tls"]["listen_private_key"] == str(
        tmp_path / "certs" / "rig-b.key")
    assert built["access_control"]["subjects"][0]["cert_common_names"] == ["rig-a", "rig-b"]
