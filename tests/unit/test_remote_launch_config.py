"""Remote launch's config and wire, without hosts (docs/design/remote-launch.md):
`host:` on an instance, `operators`, the agents' keys and messages."""
from __future__ import annotations

import io

import msgspec
import pytest

from ether import ConfigError
from ether.bridge import _agentwire as wire
from ether.config import EtherConfig

SECURITY = {"ca": "ca.pem", "cert": "a.pem", "key": "a.key", "allow_hosts": ["hostA", "hostB"]}


def test_a_host_needs_a_bridge_section_and_the_error_names_the_instance():
    with pytest.raises(ConfigError, match=r"instance 'p': host 'hostB' needs a bridge: section"):
        EtherConfig.load({"instances": {"p": {"class_path": "m.P", "host": "hostB"}}})


def test_a_host_must_be_a_host_name_and_one_of_the_site_when_allow_hosts_says():
    with pytest.raises(ConfigError, match=r"instance 'p': host 'b/1' is invalid"):
        EtherConfig.load({"instances": {"p": {"class_path": "m.P", "host": "b/1"}}, "bridge": {}})
    with pytest.raises(ConfigError, match=r"instance 'p': host 'hostC' is not a host of the site"):
        EtherConfig.load({"instances": {"p": {"class_path": "m.P", "host": "hostC"}},
                          "bridge": {"host": "hostA", "connect": ["tls/10.0.0.2:7447"],
                                     "security": SECURITY}})


def test_remote_instances_are_those_on_another_host():
    config = EtherConfig.load({"instances": {
        "here": {"class_path": "m.P"}, "also_here": {"class_path": "m.P", "host": "hostA"},
        "there": {"class_path": "m.P", "host": "hostB"}}, "bridge": {"host": "hostA"}})
    assert list(config.remote_instances()) == ["there"]


def test_operators_default_to_allow_hosts_and_must_be_among_them():
    bridge = {"connect": ["tls/10.0.0.2:7447"], "security": dict(SECURITY)}
    assert EtherConfig.load({"bridge": bridge}).bridge.security.launchers() == ["hostA", "hostB"]
    bridge["security"]["operators"] = ["hostA"]
    assert EtherConfig.load({"bridge": bridge}).bridge.security.launchers() == ["hostA"]
    bridge["security"]["operators"] = ["hostZ"]
    with pytest.raises(ConfigError, match=r"operators: 'hostZ' not in allow_hosts"):
        EtherConfig.load({"bridge": bridge})


def test_a_request_key_names_its_certificate_and_nothing_else_passes():
    keys = wire.AgentKeys("lab1")
    assert keys.request("hostB", "hostA") == "ether/lab1/agent/hostB/req/hostA"
    assert keys.requester("ether/lab1/agent/hostB/req/hostA", "hostB") == "hostA"
    for key in ("ether/lab1/agent/hostB/req/*", "ether/lab1/agent/hostB/req/$*",
                "ether/lab1/agent/hostB/req/**", "ether/lab1/agent/hostC/req/hostA",
                "ether/lab1/agent/hostB/req/hostA/x"):
        assert keys.requester(key, "hostB") is None, key
    assert keys.host_of_events(keys.events("hostB", "s1")) == "hostB"
    assert keys.host_of_events("ether/lab1/agent/*/ev/s1") is None


def test_messages_are_typed_data_and_anything_else_is_refused():
    request = wire.Request("launch", "s1", "hostA", {"instances": {}}, 5.0)
    assert wire.decode_request(wire.encode_msg(request)) == request
    for bad in (b"\x93\x01\x02\x03", msgspec.msgpack.encode({"op": "exec", "session": "s",
                                                              "main_host": "a"}),
                msgspec.msgpack.encode({"op": "launch", "session": "s", "main_host": "a",
                                        "code": "import os"})):
        with pytest.raises(ValueError, match="malformed launch request"):
            wire.decode_request(bad)


def test_frames_round_trip_through_a_file_and_a_descriptor(tmp_path):
    stream = io.BytesIO()
    wire.write_frame(stream, {"ev": "ready", "instances": {"p": 12}})
    wire.write_frame(stream, {"ev": "stopped"})
    path = tmp_path / "frames"
    path.write_bytes(stream.getvalue())
    stream.seek(0)
    assert wire.read_frame(stream) == {"ev": "ready", "instances": {"p": 12}}
    import os
    fd = os.open(path, os.O_RDONLY)
    try:
        assert [wire.read_frame(fd), wire.read_frame(fd), wire.read_frame(fd)] == [
            {"ev": "ready", "instances": {"p": 12}}, {"ev": "stopped"}, None]
    finally:
        os.close(fd)


def test_ether_agent_without_mutual_tls_or_operators_says_what_it_needs(capsys, tmp_path):
    from ether import cli
    assert cli.main(["agent", "--site", "lab1", "--listen", "tcp/127.0.0.1:7447"]) == 2
    assert "agent: it needs mutual TLS: --ca, --cert and --key" in capsys.readouterr().err
    from ether.bridge import Agent, make_ca, make_host
    make_ca("lab1", tmp_path)
    make_host("hostB", tmp_path, ips=["127.0.0.1"])
    security = {"ca": str(tmp_path / "lab1-ca.pem"), "cert": str(tmp_path / "hostB.pem"),
                "key": str(tmp_path / "hostB.key")}
    bridge = EtherConfig.load({"bridge": {"site": "lab1", "listen": ["tls/127.0.0.1:7447"],
                                          "security": security}}).bridge
    with pytest.raises(ConfigError, match="name the certificates that may launch here"):
        Agent(bridge, base_dir=tmp_path)
    bridge = EtherConfig.load({"bridge": {"site": "lab1", "listen": ["tls/0.0.0.0:7447"],
                                          "security": dict(security, allow_hosts=["hostA"])}}).bridge
    with pytest.raises(ConfigError, match="listen on this host's address, not tls/0.0.0.0:7447"):
        Agent(bridge, base_dir=tmp_path)
