"""Signals of the main script, sent for real to a real main process: the first
SIGINT or SIGTERM shuts down gracefully, a second one skips the wait for queued
messages but still runs save_all; no path leaves an instance or a segment."""
from __future__ import annotations

import os
import pathlib
import queue
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from conftest import shm_objects

TESTS = pathlib.Path(__file__).resolve().parents[1]


def _alive(pid: int) -> bool:
    """True while pid runs (a zombie has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


class Main:
    """A main script in its own process; its stderr read line by line."""

    def __init__(self, tmp_path: pathlib.Path, instances: dict, messages: dict,
                 start_method: str = "fork"):
        script = tmp_path / "main.py"
        script.write_text(textwrap.dedent(f"""
            import sys, threading
            sys.path.insert(0, {str(TESTS)!r})
            from ether import ether
            instances = {instances!r}
            ether.tap(config={{"instances": instances}})
            pids = [ether.get(name, "pid") for name in instances]
            for topic, count in {messages!r}.items():
                for seq in range(count):
                    ether.pub({{"seq": seq}}, topic=topic)
            print(ether.session, *pids, flush=True)
            threading.Event().wait()   # until a signal
        """))
        env = dict(os.environ, ETHER_LOG_DIR=str(tmp_path / "logs"), ETHER_START_METHOD=start_method)
        self.proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.lines: queue.SimpleQueue = queue.SimpleQueue()
        self.err: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        first = self.proc.stdout.readline().split()
        assert first, self.wait_and_report()
        self.session, self.pids = first[0], [int(p) for p in first[1:]]

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.err.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_for_line(self, pattern: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            assert line is not None, "".join(self.err)
            if re.search(pattern, line):
                return line

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    def wait_and_report(self, timeout: float = 60) -> str:
        self.proc.wait(timeout)
        self._reader.join(5)  # its last lines (an orphan holding stderr would keep it open)
        return "".join(self.err)

    def kill(self) -> None:
        """Whatever happened: nothing of this test keeps running."""
        for pid in [self.proc.pid, *getattr(self, "pids", [])]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)
        self._reader.join(5)
        self.proc.stdout.close()
        self.proc.stderr.close()


def _slow(tmp_path, work):
    return {"slow": {"class_path": "runtime_apps.SlowSaver",
                     "kwargs": {"path": str(tmp_path / "slow.txt"), "work": work}}}


def _handled(tmp_path) -> list[str]:
    path = tmp_path / "slow.txt"
    return path.read_text().split() if path.exists() else []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_first_signal_shuts_down_gracefully(tmp_path, signum):
    main = Main(tmp_path, _slow(tmp_path, 0.03), {"slow": 100})
    try:
        main.signal(signum)
        err = main.wait_and_report(60)
        assert "Ether system shutdown complete" in err, err
        assert _handled(tmp_path) == [str(s) for s in range(100)]
        assert (tmp_path / "slow.txt.saved").read_text() == "saved 100\n"
        assert not [p for p in main.pids if _alive(p)]
        assert shm_objects(main.session) == []
        if signum == signal.SIGTERM:
            assert main.proc.returncode == 128 + signal.SIGTERM
    finally:
        main.kill()


@pytest.mark.parametrize("signum, start_method", [
    (signal.SIGINT, "fork"), (signal.SIGTERM, "fork"), (signal.SIGINT, "spawn")])
def test_a_second_signal_skips_the_backlog_but_runs_save_all(tmp_path, signum, start_method):
    main = Main(tmp_path, _slow(tmp_path, 0.06), {"slow": 200}, start_method)
    try:
        main.signal(signum)
        main.wait_for_line(r"Shutting down Ether session")
        second = time.monotonic()
        main.signal(signum)
        err = main.wait_and_report(60)
        took = time.monotonic() - second
        print(f"exited {took:.1f} s after the second signal")
        handled = _handled(tmp_path)
        assert len(handled) < 200
        assert (tmp_path / "slow.txt.saved").read_text() == f"saved {len(handled)}\n"
        skipped = re.search(r"instance 'slow': (\d+) queued messages? (?:was|were) not handled", err)
        assert skipped and int(skipped.group(1)) + len(handled) == 200, err
        assert took < 15, err
        assert not [p for p in main.pids if _alive(p)]
        assert shm_objects(main.session) == []
        for word in ("drain-ack", "unresponsive"):
            assert word not in err
    finally:
        main.kill()


def test_a_handler_that_never_returns_cannot_keep_the_main_or_an_instance_alive(tmp_path):
    instances = {"stuck": {"class_path": "runtime_apps.StuckHandler",
                           "kwargs": {"path": str(tmp_path / "stuck.txt")}},
                 **_slow(tmp_path, 0.001)}
    main = Main(tmp_path, instances, {"stuck": 1, "slow": 10})
    try:
        main.signal(signal.SIGINT)
        main.wait_for_line(r"Shutting down Ether session")
        second = time.monotonic()
        main.signal(signal.SIGINT)
        err = main.wait_and_report(60)
        took = time.monotonic() - second
        print(f"exited {took:.1f} s after the second signal")
        assert took < 15, err
        assert _handled(tmp_path) == [str(s) for s in range(10)]
        assert (tmp_path / "slow.txt.saved").read_text() == "saved 10\n"
        assert not [p for p in main.pids if _alive(p)]
        assert shm_objects(main.session) == []
    finally:
        main.kill()
