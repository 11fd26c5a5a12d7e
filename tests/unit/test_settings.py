"""ETHER_* settings: parsed when read, validated with a message naming the
variable, the value and the range, and documented once (README's table)."""
from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys

import pytest

import ether
from ether import ConfigError, _settings

ROOT = pathlib.Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "ether"
NAMES = [s.name for s in _settings.SETTINGS]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("read, default", [
    (_settings.max_message_bytes, 1 << 20),
    (_settings.arena_bytes, None),
    (_settings.array_inline, 64 << 10),
    (_settings.start_method, "fork"),
    (_settings.log_dir, None),
    (_settings.unblock_timeout, 0.5),
])
def test_unset_or_empty_means_the_default(monkeypatch, read, default):
    assert read() == default
    monkeypatch.setenv(_setting_of(read).name, "")
    assert read() == default


def _setting_of(read):
    return {_settings.max_message_bytes: _settings.MAX_MESSAGE_BYTES,
            _settings.arena_bytes: _settings.ARENA_BYTES,
            _settings.array_inline: _settings.ARRAY_INLINE,
            _settings.start_method: _settings.START_METHOD,
            _settings.log_dir: _settings.LOG_DIR,
            _settings.unblock_timeout: _settings.UNBLOCK_TIMEOUT}[read]


@pytest.mark.parametrize("read, raw, value", [
    (_settings.max_message_bytes, "1024", 1024),
    (_settings.max_message_bytes, " 4194304 ", 4 << 20),
    (_settings.max_message_bytes, str((4 << 30) - 1024), (4 << 30) - 1024),
    (_settings.arena_bytes, "1048576", 1 << 20),
    (_settings.arena_bytes, str(1 << 40), 1 << 40),  # the room is checked at tap, not here
    (_settings.array_inline, "0", 0),
    (_settings.array_inline, "1000000", 1_000_000),
    (_settings.start_method, "spawn", "spawn"),
    (_settings.start_method, "forkserver", "forkserver"),
    (_settings.unblock_timeout, "0.25", 0.25),
    (_settings.unblock_timeout, " 5 ", 5.0),
    (_settings.unblock_timeout, ".5", 0.5),
])
def test_a_valid_value_is_parsed(monkeypatch, read, raw, value):
    monkeypatch.setenv(_setting_of(read).name, raw)
    assert read() == value


@pytest.mark.parametrize("read, raw, accepted", [
    (_settings.max_message_bytes, "1023", "a whole number from 1024 (1 KiB) to 4294966272"),
    (_settings.max_message_bytes, str(4 << 30), "a whole number from 1024 (1 KiB) to 4294966272"),
    (_settings.max_message_bytes, "1MiB", "a whole number from 1024"),
    (_settings.max_message_bytes, "1e6", "a whole number from 1024"),
    (_settings.arena_bytes, "1048575", "a whole number >= 1048576 (1 MiB)"),
    (_settings.arena_bytes, "-5", "a whole number >= 1048576 (1 MiB)"),
    (_settings.array_inline, "abc", "a whole number >= 0"),      # once a silent 64 KiB
    (_settings.array_inline, "-1", "a whole number >= 0"),
    (_settings.array_inline, "64k", "a whole number >= 0"),
    (_settings.array_inline, "1_000", "a whole number >= 0"),
    (_settings.array_inline, "\u0661\u0662", "a whole number >= 0"),  # non-ASCII digits
    (_settings.start_method, "threads", "one of fork, "),
    (_settings.start_method, "Fork", "one of fork, "),
    (_settings.unblock_timeout, "0", "a number of seconds from 0.001 to 3600"),
    (_settings.unblock_timeout, "1s", "a number of seconds from 0.001 to 3600"),
    (_settings.unblock_timeout, "nan", "a number of seconds from 0.001 to 3600"),
    (_settings.unblock_timeout, "1e3", "a number of seconds from 0.001 to 3600"),
    (_settings.unblock_timeout, "7200", "a number of seconds from 0.001 to 3600"),
])
def test_a_bad_value_names_the_variable_the_value_and_the_range(monkeypatch, read, raw, accepted):
    name = _setting_of(read).name
    monkeypatch.setenv(name, raw)
    with pytest.raises(ConfigError) as info:
        read()
    message = str(info.value)
    assert message.startswith(f"{name}={raw!r} is invalid: expected ")
    assert accepted in message


def test_a_log_dir_is_a_path_and_a_file_there_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("ETHER_LOG_DIR", str(tmp_path / "logs"))
    assert _settings.log_dir() == tmp_path / "logs"  # created by the logger, not here
    assert not (tmp_path / "logs").exists()
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("ETHER_LOG_DIR", str(tmp_path / "file"))
    with pytest.raises(ConfigError, match=r"ETHER_LOG_DIR='.*file' is invalid: expected a "
                                          r"directory \(created if missing\); it exists"):
        _settings.log_dir()


def test_settings_are_read_when_asked_never_cached(monkeypatch):
    monkeypatch.setenv("ETHER_ARRAY_INLINE", "100")
    assert _settings.array_inline() == 100
    monkeypatch.setenv("ETHER_ARRAY_INLINE", "200")
    assert _settings.array_inline() == 200
    monkeypatch.setenv("ETHER_ARRAY_INLINE", "bad")
    with pytest.raises(ConfigError):
        _settings.validate()


def test_importing_settings_reads_nothing_and_imports_only_errors():
    env = dict(os.environ, **{name: "not valid" for name in NAMES})
    code = ("import sys; import ether._settings\n"
            "assert 'multiprocessing' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    tree = ast.parse((SRC / "_settings.py").read_text())
    ours = {node.module for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level > 0}
    assert ours == {"_errors"}


def test_only_settings_reads_the_environment():
    readers = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb") \
                    and isinstance(node.value, ast.Name) and node.value.id == "os":
                readers.append(str(path.relative_to(SRC)))
    assert sorted(set(readers)) == ["_settings.py"]


def test_the_readme_table_is_the_settings_table():
    readme = (ROOT / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `ETHER_")]
    expected = _settings.table()
    assert rows == expected.splitlines()[2:], \
        "README.md's settings table is stale: paste `python -m ether._settings` over it"
    assert expected in readme


def test_the_build_time_sanitizer_setting_matches_the_build_script():
    build = (ROOT / "csrc" / "_build.py").read_text()
    assert "is not one of 'address', 'thread'" in build
    assert _settings.SANITIZE.accepted.startswith("address") and "thread" in _settings.SANITIZE.accepted


def test_tap_refuses_a_bad_setting_before_it_creates_anything(monkeypatch):
    from ether._core._session import Session

    def create(*args, **kwargs):
        raise AssertionError("tap created a session despite a bad setting")

    monkeypatch.setattr(Session, "create", create)
    monkeypatch.setenv("ETHER_ARRAY_INLINE", "64k")
    with pytest.raises(ConfigError, match=r"ETHER_ARRAY_INLINE='64k' is invalid"):
        ether.ether.tap(config={"instances": {"d": {"class_path": "apps.Doubler"}}})
    assert ether.ether.session is None
