"""The command line's shape: one module per command, on the public API only."""
from __future__ import annotations

import ast
import pathlib

import pytest

from ether import cli

CLI = pathlib.Path(cli.__file__).parent
# ether.record, ether.bridge and ether.monitor: packages whose commands (record, play,
# bag; certs, router; the observing verbs) use their public names (their __init__),
# as a user would.
PUBLIC = {"ether", "ether.lowlevel", "ether.config", "ether.record", "ether.bridge", "ether.monitor"}
HELPERS = {"_common"}  # shared by the commands, not one


@pytest.mark.parametrize("path", sorted(CLI.glob("*.py")), ids=lambda p: p.name)
def test_the_cli_imports_only_the_public_api(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level > 0:  # within cli/ only
                assert node.level == 1 and not (node.module or "").startswith("."), ast.dump(node)
                continue
            names = [node.module]
        else:
            continue
        for name in names:
            if name == "ether" or name.startswith("ether."):
                assert name in PUBLIC, (f"{path.name} imports {name}: use ether, ether.lowlevel, "
                                        "ether.config, ether.record, ether.bridge or ether.monitor")


def test_every_command_module_registers_itself(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    commands = sorted(p.stem[1:] for p in CLI.glob("_*.py")
                      if p.name != "__init__.py" and p.stem not in HELPERS)
    assert commands == ["agent", "bag", "bridge", "bw", "call", "certs", "cleanup", "doctor", "echo", "hz",
                        "logs", "monitor", "play", "ps", "pub", "record", "router", "run",
                        "services", "top", "topic", "topics"]
    for command in commands:
        assert f"    {command} " in out


def test_run_rejects_a_bad_duration(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["run", "x.yaml", "--duration", "-1"])
    assert info.value.code == 2
    assert "must be a finite number >= 0, got '-1'" in capsys.readouterr().err


def _router_section(tmp_path, *argv):
    from ether.cli import _router
    return _router.router_section(cli._parser().parse_args(["router", *argv]))


def test_router_defaults_to_loopback_without_security(tmp_path):
    assert _router_section(tmp_path) == ({"listen": ["tcp/127.0.0.1:7447"]}, pathlib.Path.cwd())


def test_router_options_make_a_bridge_section(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    section, base = _router_section(tmp_path, "--ca", "c/ca.pem", "--cert", "c/r.pem",
                                    "--key", "c/r.key", "--allow-host", "rig-a",
                                    "--allow-host", "rig-b", "--site", "lab1")
    assert section == {"site": "lab1", "listen": ["tls/0.0.0.0:7447"], "security": {
        "ca": str(tmp_path / "c/ca.pem"), "cert": str(tmp_path / "c/r.pem"),
        "key": str(tmp_path / "c/r.key"), "allow_hosts": ["rig-a", "rig-b"]}}


def test_router_options_override_the_configs_section(tmp_path):
    (tmp_path / "wan.yaml").write_text(
        "bridge:\n  site: lab1\n  listen: [tls/0.0.0.0:7447]\n"
        "  security: {ca: c/ca.pem, cert: c/r.pem, key: c/r.key}\n")
    section, base = _router_section(tmp_path, str(tmp_path / "wan.yaml"),
                                    "--listen", "tls/10.0.0.1:7448")
    assert base == tmp_path
    assert section == {"site": "lab1", "listen": ["tls/10.0.0.1:7448"],
                       "security": {"ca": "c/ca.pem", "cert": "c/r.pem", "key": "c/r.key"}}


def test_router_refuses_what_a_bridge_refuses(tmp_path, capsys):
    assert cli.main(["router", "--listen", "tcp/0.0.0.0:7447"]) == 2
    assert "reaches beyond loopback, which needs 'security'" in capsys.readouterr().err
    assert cli.main(["router", "--ca", "ca.pem"]) == 2
    assert capsys.readouterr().err == (
        "ether: error: router: security needs --ca, --cert and --key (missing: --cert, --key)\n")
    (tmp_path / "none.yaml").write_text("instances: {}\n")
    assert cli.main(["router", str(tmp_path / "none.yaml")]) == 2
    assert "no bridge: section to run a router from" in capsys.readouterr().err
