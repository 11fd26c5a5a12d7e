"""The command line's shape: one module per command, on the public API only."""
from __future__ import annotations

import ast
import pathlib

import pytest

from ether import cli

CLI = pathlib.Path(cli.__file__).parent
# ether.record: the recorder's package, whose commands (record, play, bag) use
# its public names (its __init__), as a user would; ether.monitor likewise for
# the observing commands.
PUBLIC = {"ether", "ether.lowlevel", "ether.config", "ether.record", "ether.monitor"}
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
                assert name in PUBLIC, f"{path.name} imports {name}: use ether, ether.lowlevel, ether.config or ether.monitor"


def test_every_command_module_registers_itself(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    commands = sorted(p.stem[1:] for p in CLI.glob("_*.py")
                      if p.name != "__init__.py" and p.stem not in HELPERS)
    assert commands == ["bag", "bw", "call", "cleanup", "doctor", "echo", "hz", "logs", "monitor",
                        "play", "ps", "pub", "record", "run", "services", "top", "topic", "topics"]
    for command in commands:
        assert f"    {command} " in out


def test_run_rejects_a_bad_duration(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["run", "x.yaml", "--duration", "-1"])
    assert info.value.code == 2
    assert "must be a finite number >= 0, got '-1'" in capsys.readouterr().err
