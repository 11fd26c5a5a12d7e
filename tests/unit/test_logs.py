"""Ether's log records: the README's format, on stderr and in one file per process
of the session's log directory, configured idempotently and never at import."""
from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import tempfile

import pytest

from ether import ConfigError
from ether._runtime._logs import (close_process_logging, configure_process_logging,
                         session_log_dir)
from ether.utils import get_ether_logger

LINE = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} - %s:%d - %s - %s"


def line_re(name: str, level: str, message: str) -> re.Pattern[str]:
    return re.compile(LINE % (re.escape(name), os.getpid(), level, re.escape(message)))


@pytest.fixture(autouse=True)
def isolated_logging(tmp_path, monkeypatch):
    """Each test starts with a bare "Ether" logger and its own log root; whatever it
    attaches is closed afterwards."""
    monkeypatch.setenv("ETHER_LOG_DIR", str(tmp_path / "logs"))
    ether = logging.getLogger("Ether")
    saved = (ether.handlers[:], ether.level, ether.propagate)
    ether.handlers[:] = []
    ether.setLevel(logging.NOTSET)
    yield
    for handler in ether.handlers:
        if handler not in saved[0]:
            handler.close()
    ether.handlers[:], ether.level, ether.propagate = saved


def handlers(kind: str) -> list[logging.Handler]:
    return [h for h in logging.getLogger("Ether").handlers if type(h).__name__ == kind]


def test_session_log_dir_honours_ether_log_dir(tmp_path):
    path = session_log_dir("s1")
    assert path == tmp_path / "logs" / "s1" and path.is_dir()


def test_session_log_dir_defaults_to_a_private_per_user_temp_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("ETHER_LOG_DIR")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    path = session_log_dir("abc123")
    root = tmp_path / f"ether-logs-{os.getuid()}"
    assert path == root / "abc123" and path.is_dir()
    assert root.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "..", "."])
def test_session_log_dir_rejects_ids_that_are_not_one_path_part(bad):
    with pytest.raises(ConfigError, match="session id .* is invalid for a log path"):
        session_log_dir(bad)


def test_process_log_file_gets_records_in_the_readme_format(tmp_path):
    path = configure_process_logging("s1", "session", console=False)
    assert path == tmp_path / "logs" / "s1" / "session.log"
    logging.getLogger("Ether").info("Starting Ether session: s1...")
    close_process_logging()
    assert line_re("Ether", "INFO", "Starting Ether session: s1...").fullmatch(
        path.read_text().rstrip("\n"))


def test_console_records_go_to_stderr_in_the_readme_format(capsys):
    configure_process_logging("s1", "session", console=True)
    logging.getLogger("Ether").info("Ether system started successfully")
    logging.getLogger("Ether").debug("not shown at INFO")
    out, err = capsys.readouterr()
    assert out == ""
    assert line_re("Ether", "INFO", "Ether system started successfully").fullmatch(
        err.rstrip("\n"))


def test_configuring_twice_adds_no_second_handler(tmp_path, capsys):
    first = configure_process_logging("s1", "session", console=True)
    second = configure_process_logging("s1", "session", console=True)
    assert first == second
    assert len(handlers("_SessionFileHandler")) == 1
    assert len(handlers("_StderrHandler")) == 1
    logging.getLogger("Ether").info("once")
    assert capsys.readouterr().err.count("once") == 1
    close_process_logging()
    assert first.read_text().count("once") == 1


def test_a_new_session_id_replaces_the_file_handler(tmp_path):
    old = configure_process_logging("s1", "gen1", console=False)
    old_handler = handlers("_SessionFileHandler")[0]
    new = configure_process_logging("s2", "gen1", console=False)
    assert new == tmp_path / "logs" / "s2" / "gen1.log"
    assert handlers("_SessionFileHandler") != [old_handler]
    assert len(handlers("_SessionFileHandler")) == 1
    assert old_handler.stream is None  # closed
    logging.getLogger("Ether").info("to the new session")
    close_process_logging()
    assert "to the new session" in new.read_text()
    assert "to the new session" not in old.read_text()


def test_close_process_logging_detaches_file_handlers_only(capsys):
    path = configure_process_logging("s1", "session", console=True)
    close_process_logging()
    assert handlers("_SessionFileHandler") == []
    logging.getLogger("Ether").info("after close")
    assert "after close" not in path.read_text()
    assert "after close" in capsys.readouterr().err
    close_process_logging()  # closing again is harmless


def test_bad_process_name_is_rejected():
    with pytest.raises(ConfigError, match="process name 'a/b' is invalid"):
        configure_process_logging("s1", "a/b", console=False)


def test_get_ether_logger_uses_ethers_format_and_handlers(capsys):
    logger = get_ether_logger("EtherDataServiceMain")
    assert logger.name == "EtherDataServiceMain"
    assert logger.level == logging.INFO
    logger.info("Save reply: {'status': 'success'}")
    err = capsys.readouterr().err
    assert line_re("EtherDataServiceMain", "INFO", "Save reply: {'status': 'success'}"
                   ).fullmatch(err.rstrip("\n"))


def test_a_user_logger_made_before_the_session_reaches_the_session_file(capsys):
    logger = get_ether_logger("MyMain")
    path = configure_process_logging("s1", "session", console=True)
    get_ether_logger("MyMain").warning("late handler")  # a second call adds nothing
    close_process_logging()
    assert line_re("MyMain", "WARNING", "late handler").fullmatch(
        path.read_text().rstrip("\n"))
    assert capsys.readouterr().err.count("late handler") == 1
    assert len(logger.handlers) == 1


def test_importing_ether_configures_no_logging():
    code = ("import logging, ether, ether.config, ether.utils, ether._runtime._logs, ether.cli\n"
            "assert logging.getLogger('Ether').handlers == []\n"
            "assert logging.getLogger().handlers == []\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_formatter_pads_milliseconds_and_uses_the_readme_date_format():
    configure_process_logging("s1", "session", console=True)
    formatter = handlers("_StderrHandler")[0].formatter
    record = logging.makeLogRecord({"name": "Ether", "levelno": logging.INFO,
                                    "levelname": "INFO", "msg": "Ether system shutdown complete",
                                    "process": 51475, "created": 1737026925.005, "msecs": 5.0})
    text = formatter.format(record)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.005 - Ether:51475 - INFO - "
                        r"Ether system shutdown complete", text), text
