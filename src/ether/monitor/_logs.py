"""A session's log folder, read back: one file per process (`session.log` for
the main, `<instance>.log` for each instance) in Ether's log format, merged by
timestamp. A record's continuation lines (a traceback) stay with it. The
folder outlives the session, so a dead session's logs read the same way."""
from __future__ import annotations

import dataclasses
import datetime
import heapq
import logging
import re
from pathlib import Path

from ether import lowlevel

__all__ = ["LogRecord", "log_dir", "read", "Filter", "Follower", "LEVELS"]

_LINE = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{3}) - (.*?):(\d+) - ([A-Z]+) - (.*)")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclasses.dataclass(frozen=True, slots=True)
class LogRecord:
    time: float        # seconds since the epoch (local time as logged)
    instance: str      # the file's process: "session" (the main) or an instance
    logger: str
    pid: int
    level: str
    message: str       # continuation lines included

    def to_dict(self) -> dict:
        return {"time": self.time,
                "time_iso": datetime.datetime.fromtimestamp(self.time).isoformat(timespec="milliseconds"),
                "instance": self.instance, "logger": self.logger, "pid": self.pid,
                "level": self.level, "message": self.message}

    def line(self) -> str:
        stamp = datetime.datetime.fromtimestamp(self.time).strftime("%H:%M:%S.%f")[:-3]
        return f"{stamp} {self.instance:<12} {self.level:<7} {self.message}"


def log_dir(session: str) -> Path:
    return lowlevel.log_root() / session


def _parse(lines, instance: str):
    current = None
    for raw in lines:
        text = raw.rstrip("\n")
        m = _LINE.fullmatch(text)
        if m is None:
            if current is not None:
                current[5].append(text)
            continue
        if current is not None:
            yield _record(current, instance)
        stamp, ms, logger, pid, level, message = m.groups()
        t = datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").timestamp() + int(ms) / 1000
        current = (t, logger, int(pid), level, message, [])
    if current is not None:
        yield _record(current, instance)


def _record(parts, instance: str) -> LogRecord:
    t, logger, pid, level, message, more = parts
    return LogRecord(t, instance, logger, pid, level, "\n".join([message, *more]))


class Filter:
    def __init__(self, *, instances=(), since: float | None = None, level: str | None = None,
                 grep: str | None = None):
        self.instances = set(instances)
        self.since = since
        self.level = logging.getLevelName(level.upper()) if level else None
        self.grep = re.compile(grep) if grep else None

    def files(self, folder: Path) -> list[Path]:
        return sorted(p for p in folder.glob("*.log")
                      if not self.instances or p.stem in self.instances)

    def __call__(self, r: LogRecord) -> bool:
        if self.since is not None and r.time < self.since:
            return False
        if self.level is not None and logging.getLevelName(r.level) < self.level:
            return False
        return self.grep is None or bool(self.grep.search(r.message))


def read(folder: Path, keep: Filter) -> list[LogRecord]:
    """Every record of the folder's files that `keep` takes, oldest first."""
    streams = []
    for path in keep.files(folder):
        with open(path, encoding="utf-8", errors="replace") as f:
            streams.append([r for r in _parse(f, path.stem) if keep(r)])
    return list(heapq.merge(*streams, key=lambda r: r.time))


class Follower:
    """New records as the files grow (and new files as instances start): call
    poll() now and then. A record is yielded once its next line (or nothing
    more within one poll) shows it is whole."""

    def __init__(self, folder: Path, keep: Filter, *, from_end: bool = True):
        self.folder, self.keep = folder, keep
        self._offsets: dict[Path, int] = {}
        self._partial: dict[Path, str] = {}
        if from_end:
            for path in keep.files(folder):
                self._offsets[path] = path.stat().st_size

    def poll(self) -> list[LogRecord]:
        out = []
        for path in self.keep.files(self.folder):
            at = self._offsets.get(path, 0)
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    f.seek(at)
                    chunk = f.read()
                    self._offsets[path] = f.tell()
            except FileNotFoundError:
                continue
            if not chunk:
                continue
            text = self._partial.pop(path, "") + chunk
            if not text.endswith("\n"):
                text, _, rest = text.rpartition("\n")
                self._partial[path] = rest
                if not text:
                    continue
            out.extend(r for r in _parse(text.splitlines(), path.stem) if self.keep(r))
        out.sort(key=lambda r: r.time)
        return out
