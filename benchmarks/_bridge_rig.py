"""The processes of bench_bridge.py on the simulated hosts, driven over JSON lines.

A Peer is one process started on a Host of tests/remote/netns.py (its network
namespace and its own /dev/shm): a raw zenoh session (_zenoh_peer.py) or an Ether
main (_bridge_host.py). Each answers one JSON line per command; every wait for
an answer is bounded, and its stderr goes to a log file that a failure quotes.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


class PeerFailed(RuntimeError):
    pass


class Peer:
    def __init__(self, host, script: str, *args: str, log_dir: Path, name: str,
                 env: dict | None = None, timeout: float = 60.0):
        self.host, self.name = host, name
        self.log = log_dir / f"{name}.log"
        self._log_file = open(self.log, "w")  # noqa: SIM115 (closed in close())
        self.proc = host.python(os.path.join(HERE, script), *args, cwd=ROOT,
                                env={**os.environ, **(env or {})}, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=self._log_file)
        host.on_close(self.close)
        self._buffer = b""
        self.hello = self._answer(self._read(timeout), "start")

    def _read(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PeerFailed(f"{self.name}: no answer within {timeout:g} s{self._tail()}")
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    code = self.proc.wait(5)
                    raise PeerFailed(f"{self.name}: its process ended (exit code {code})"
                                     f"{self._tail()}")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def _tail(self, lines: int = 8) -> str:
        self._log_file.flush()
        text = self.log.read_text(errors="replace").strip().splitlines()[-lines:]
        return ("; its log ends:\n  " + "\n  ".join(text)) if text else ""

    def _answer(self, answer: dict, op: str):
        if "error" in answer:
            raise PeerFailed(f"{self.name}: {op}: {answer['error']}\n{answer.get('traceback', '')}")
        return answer["ok"]

    def call(self, op: str, *, wait: float = 180.0, **args):
        self.proc.stdin.write((json.dumps({"op": op, **args}) + "\n").encode())
        self.proc.stdin.flush()
        return self._answer(self._read(wait), op)

    def close(self, timeout: float = 60.0) -> None:
        """Ask it to exit (an Ether main shuts its session down), bounded; then end
        it by its PID. Safe to call twice."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b'{"op": "exit"}\n')
                self.proc.stdin.flush()
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.host.stop(self.proc)
        self.proc.stdout.close()
        self._log_file.close()


def cpu_ns(pid: int) -> dict[str, int]:
    """CPU time so far (ns, /proc/PID/task/*/schedstat) of pid's threads, summed by
    thread name: Python's threads are all named after the interpreter, zenoh's
    (tokio's) have their own names."""
    by_name: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            ns = int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended meanwhile
        by_name[name] = by_name.get(name, 0) + ns
    return by_name


def rss_bytes(pid: int) -> dict[str, int]:
    """Resident memory of pid by kind: "own" (anonymous and file pages: the
    process's own memory) and "shm" (shared memory it has touched: the session's
    inboxes and arenas, which every process of the session maps)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile", "RssShmem"):
            fields[key] = int(value.split()[0]) * 1024
    if len(fields) != 3:
        raise RuntimeError(f"no RssAnon/RssFile/RssShmem in /proc/{pid}/status")
    return {"own": fields["RssAnon"] + fields["RssFile"], "shm": fields["RssShmem"]}
