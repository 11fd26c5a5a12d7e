"""Where and how Ether logs: one file per process in the session's log directory,
plus a console handler on stderr.

Records go to stderr, not stdout, so a pipeline's own prints on stdout stay clean to
pipe; on a terminal the two interleave as in the README. Every handler hangs on the
"Ether" logger, which does not propagate to the root logger (records would show
twice under a root basicConfig). Nothing here runs at import time.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from pathlib import Path

from .. import _settings
from .._errors import ConfigError

__all__ = ["DATEFMT", "FORMAT", "LOGGER_NAME", "close_process_logging",
           "configure_process_logging", "ensure_console", "get_ether_logger",
           "log_root", "make_formatter", "session_log_dir"]

LOGGER_NAME = "Ether"
FORMAT = "%(asctime)s.%(msecs)03d - %(name)s:%(process)d - %(levelname)s - %(message)s"
DATEFMT = "%Y-%m-%d %H:%M:%S"
LOG_DIR_ENV = "ETHER_LOG_DIR"

# Session ids and process names become path components.
_PATH_PART = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def make_formatter() -> logging.Formatter:
    return logging.Formatter(FORMAT, DATEFMT)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at emit time (as logging's lastResort does),
    so redirecting or capturing stderr later still works."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


class _SessionFileHandler(logging.FileHandler):
    """The per-process log file of one session; marked so it can be found again."""

    def __init__(self, path: Path, session_id: str) -> None:
        super().__init__(path, mode="a", encoding="utf-8")
        self.session_id = session_id


class _ToEther(logging.Handler):
    """Hands a record of a user logger to the "Ether" logger's current handlers, so
    handlers added later (a session's log file) apply to it too."""

    def emit(self, record: logging.LogRecord) -> None:
        for handler in _ether_logger().handlers:
            if record.levelno >= handler.level:
                handler.handle(record)


def _ether_logger() -> logging.Logger:
    logger = logging.getLogger(LOGGER_NAME)
    if logger.level == logging.NOTSET:  # keep a level the user chose
        logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def _check_part(value: str, what: str) -> str:
    if not isinstance(value, str) or not _PATH_PART.fullmatch(value) or set(value) == {"."}:
        raise ConfigError(f"{what} {value!r} is invalid for a log path: "
                          "use 1-64 letters, digits, '_', '-' or '.'")
    return value


def log_root() -> Path:
    """Where every session's log directory lives: ``$ETHER_LOG_DIR``, else
    ``<tmp>/ether-logs-<uid>``. Nothing is created (a reader's view)."""
    root = _settings.log_dir()
    return root if root is not None else Path(tempfile.gettempdir()) / f"ether-logs-{os.getuid()}"


def session_log_dir(session_id: str) -> Path:
    """``$ETHER_LOG_DIR/<session_id>``, else ``<tmp>/ether-logs-<uid>/<session_id>``;
    created if missing."""
    _check_part(session_id, "session id")
    root = _settings.log_dir()
    if root is None:
        root = Path(tempfile.gettempdir()) / f"ether-logs-{os.getuid()}"
        root.mkdir(mode=0o700, exist_ok=True)
        # A shared /tmp: never write into a directory another user planted.
        if root.stat().st_uid != os.getuid():
            raise PermissionError(f"log directory {root} belongs to another user; "
                                  f"set {LOG_DIR_ENV} to a directory of yours")
    path = root / session_id
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def ensure_console() -> None:
    """Attach the stderr handler to the "Ether" logger unless it has one."""
    logger = _ether_logger()
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(make_formatter())
        logger.addHandler(handler)


def configure_process_logging(session_id: str, process_name: str, *, console: bool) -> Path:
    """Log this process to ``<session_log_dir>/<process_name>.log`` (the main process
    is "session"), and to stderr if ``console``. Idempotent; a new session id moves
    the file handler to the new session. Returns the log file's path."""
    _check_part(process_name, "process name")
    path = session_log_dir(session_id) / f"{process_name}.log"
    logger = _ether_logger()
    current = [h for h in logger.handlers if isinstance(h, _SessionFileHandler)]
    if not any(h.baseFilename == os.path.abspath(path) for h in current):
        for handler in current:
            logger.removeHandler(handler)
            handler.close()
        handler = _SessionFileHandler(path, session_id)
        handler.setFormatter(make_formatter())
        logger.addHandler(handler)
    if console:
        ensure_console()
    return path


def close_process_logging() -> None:
    """Detach and close the session log file handler(s); the console one stays."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in [h for h in logger.handlers if isinstance(h, _SessionFileHandler)]:
        logger.removeHandler(handler)
        handler.close()


def get_ether_logger(name: str) -> logging.Logger:
    """A logger named ``name`` whose records go through Ether's handlers (console and
    the session's log file), at level INFO, in Ether's format."""
    if name == LOGGER_NAME or name.startswith(LOGGER_NAME + "."):
        ensure_console()
        return logging.getLogger(name)  # already in the hierarchy
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # Ether's handlers print it; the root must not again
    if not any(isinstance(h, _ToEther) for h in logger.handlers):
        logger.addHandler(_ToEther())
    ensure_console()
    return logger
