"""What the scenarios share: the Outcome each returns, the faulthandler watchdogs,
and the processes, shared memory and logs they measure."""
from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import os
import re
import select
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
SHM = "/dev/shm"


def ensure_path() -> None:
    """tests/ on sys.path, as pytest puts it: the instance classes
    (reliability_apps) are found there, by the instances too (they search the
    main's sys.path), and so are this package and the spawned processes."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))


# ---- the result of a scenario ----

@dataclasses.dataclass
class Outcome:
    """One row of the table: a promise, the fault injected, the figures measured,
    and which parts of the promise held (`checks`, each True or False)."""
    name: str
    promise: str
    fault: str
    summary: str = ""                                  # the figures as the table shows them
    figures: dict = dataclasses.field(default_factory=dict)
    checks: dict = dataclasses.field(default_factory=dict)
    notes: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def held(self) -> bool:
        return all(self.checks.values())

    def broken(self) -> list[str]:
        return [k for k, v in self.checks.items() if not v]

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["held"] = self.held
        return out


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 1.0:
        return f"{seconds * 1e3:.0f} ms" if seconds >= 0.01 else f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_bytes(n: int, signed: bool = False) -> str:
    sign = "-" if n < 0 else "+" if n > 0 and signed else ""
    n = abs(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{sign}{n:.0f} {unit}" if unit == "B" else f"{sign}{n:.1f} {unit}"
        n /= 1024
    return str(n)


# ---- hang detection ----

@contextlib.contextmanager
def watchdog(seconds: float):
    """In this process (the main of a scenario, or a spawned one): every thread's
    traceback on stderr if the block still runs after `seconds`, so a hang leaves
    a traceback instead of a silent timeout. (Instances, which are forked, arm
    their own differently: see reliability_apps.arm_watchdog.)"""
    faulthandler.dump_traceback_later(seconds, exit=False)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def wait_for(condition, timeout: float, tick: float = 0.01) -> float | None:
    """Seconds until condition() held, or None after timeout. Polls: only for
    background work that signals nothing (the main's exit watcher, a kernel
    reaping a process); everything else is awaited by handshake."""
    start = time.monotonic()
    pause = threading.Event()
    while not condition():
        if time.monotonic() - start > timeout:
            return None
        pause.wait(tick)
    return time.monotonic() - start


# ---- processes ----

@dataclasses.dataclass(frozen=True)
class Proc:
    """A process we started (directly or through ether.tap), by pid and start
    time, so that a reused pid is never mistaken for it (or killed)."""
    pid: int
    start: int
    name: str = ""

    @classmethod
    def of(cls, pid: int, name: str = "") -> "Proc":
        return cls(pid, _start_time(pid) or 0, name)

    def state(self) -> str | None:
        """The kernel's state letter (R, S, T, Z, ...), or None once it is gone."""
        fields = _stat(self.pid)
        if fields is None or int(fields[19]) != self.start:
            return None
        return fields[0]

    def alive(self) -> bool:
        """Running, sleeping or stopped: not a zombie, not gone."""
        return self.state() not in (None, "Z", "X")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def rss(self) -> dict:
        """VmRSS and RssAnon in KiB ({} once it is gone)."""
        out = {}
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    if key in ("VmRSS", "RssAnon", "RssShmem"):
                        out[key] = int(value.split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
        return out

    def fds(self) -> int | None:
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return None


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2:].split()


def _start_time(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def wait_exits(procs: list[Proc], timeout: float) -> dict[Proc, float | None]:
    """Seconds (from now) until each process exited, or None if it still ran after
    `timeout`. A pidfd becomes readable when its process exits, so this waits on
    the kernel, child of ours or not (an orphan's parent is init)."""
    start = time.monotonic()
    out: dict[Proc, float | None] = {}
    poller = select.poll()
    fds: dict[int, Proc] = {}
    try:
        for p in procs:
            if not p.alive():
                out[p] = 0.0
                continue
            try:
                fd = os.pidfd_open(p.pid)
            except ProcessLookupError:
                out[p] = 0.0
                continue
            if not p.alive():  # the pid was reused between the check and the open
                os.close(fd)
                out[p] = 0.0
                continue
            fds[fd] = p
            poller.register(fd, select.POLLIN)
        while fds:
            left = timeout - (time.monotonic() - start)
            if left <= 0:
                break
            for fd, _ in poller.poll(left * 1000):
                out[fds[fd]] = time.monotonic() - start
                poller.unregister(fd)
                os.close(fd)
                del fds[fd]
    finally:
        for fd, p in fds.items():
            out.setdefault(p, None)
            os.close(fd)
    return out


def kill_and_wait(procs: list[Proc], timeout: float = 10.0) -> list[Proc]:
    """SIGKILL whatever of procs still runs (SIGCONT first, for a stopped one) and
    wait until it is gone; returns the ones that would not go."""
    for p in procs:
        p.kill()
    waited = wait_exits(list(procs), timeout)
    return [p for p, t in waited.items() if t is None]


# ---- shared memory and descriptors ----

def shm_objects(sid: str) -> list[str]:
    prefix = f"ether_{sid}"
    try:
        names = os.listdir(SHM)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n == prefix or n.startswith(prefix + "_"))


def shm_bytes(sid: str) -> int:
    """Bytes of /dev/shm the session's objects occupy: allocated blocks, or an
    object's size if larger (an arena reserves its pages as it uses them, so its
    growth is its use, not a leak; a leaked arena still counts whole)."""
    total = 0
    for name in shm_objects(sid):
        try:
            st = os.stat(os.path.join(SHM, name))
        except FileNotFoundError:
            continue
        total += max(st.st_blocks * 512, st.st_size)
    return total


def remove_session_objects(sid: str) -> int:
    """Unlink what is left of one of our sessions (after its processes died).
    Only our own session: other people's sessions on this host are left alone."""
    removed = 0
    for name in shm_objects(sid):
        try:
            os.unlink(os.path.join(SHM, name))
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def mapped_shm_bytes(pid: int | str = "self") -> int:
    """Bytes of Ether shared memory a process maps (unlinked or not), from its
    /proc/<pid>/maps: what it alone keeps from the tmpfs, whatever other
    processes do with /dev/shm."""
    held = {}
    try:
        with open(f"/proc/{pid}/maps") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and fields[5].startswith("/dev/shm/ether_"):
                    start, end = (int(x, 16) for x in fields[0].split("-"))
                    held[fields[4], start] = end - start
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return sum(held.values())


def own_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# ---- logs ----

@contextlib.contextmanager
def log_dir():
    """A private ETHER_LOG_DIR for one scenario (read by its checks), removed after."""
    path = tempfile.mkdtemp(prefix="ether-faults-")
    old = os.environ.get("ETHER_LOG_DIR")
    os.environ["ETHER_LOG_DIR"] = path
    try:
        yield Path(path)
    finally:
        if old is None:
            os.environ.pop("ETHER_LOG_DIR", None)
        else:
            os.environ["ETHER_LOG_DIR"] = old
        shutil.rmtree(path, ignore_errors=True)


_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} - \S+:(\d+) - (\w+) - (.*)$")


def log_records(root: Path, sid: str, process: str) -> list[tuple[str, str]]:
    """(level, message) of every record in one process's log of a session; a
    record's continuation lines (a traceback) are joined to its message."""
    path = root / sid / f"{process}.log"
    out: list[tuple[str, str]] = []
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        m = _RECORD.match(line)
        if m:
            out.append((m.group(2), m.group(3)))
        elif out:
            out[-1] = (out[-1][0], out[-1][1] + "\n" + line)
    return out


def problems_logged(root: Path, sid: str, process: str) -> list[str]:
    """The ERROR and CRITICAL records of one process's log."""
    return [msg for level, msg in log_records(root, sid, process) if level in ("ERROR", "CRITICAL")]
