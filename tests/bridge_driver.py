"""Drive a bridge test "host" (tests/bridge_host.py) from a test: one process per
host, commands as JSON lines, every answer awaited with a bound.

The endpoints are parameters: `loopback_pair()` gives two hosts linked over
127.0.0.1 (no security needed there); the two-namespace rig can build the same
configs with tls endpoints and run `prefix=["ip", "netns", "exec", NS]`.
"""
from __future__ import annotations

import io
import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time

HOST_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bridge_host.py")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class HostFailed(AssertionError):
    pass


class Lines:
    """A text stream read line by line in a thread, to wait for a line (bounded)."""

    def __init__(self, stream):
        self.stream = stream
        self.lines: list[str] = []
        self._lock = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.stream:
            with self._lock:
                self.lines.append(line)
                self._lock.notify_all()

    def wait_line(self, pattern: str, timeout: float) -> str | None:
        regex = re.compile(pattern)
        with self._lock:
            self._lock.wait_for(lambda: any(regex.search(l) for l in self.lines), timeout)
            return next((l for l in self.lines if regex.search(l)), None)

    def close(self, timeout: float) -> None:
        self._reader.join(timeout)
        self.stream.close()


class Host:
    def __init__(self, name: str, *, prefix: list[str] | None = None, env: dict | None = None,
                 watch_stderr: bool = False):
        """watch_stderr: read the host's stderr (its session's log lines, its
        bridge's among them) into `stderr`, to wait for a line; else it is this
        process's."""
        self.name = name
        self.session: str | None = None
        self.process = subprocess.Popen(
            [*(prefix or []), sys.executable, HOST_SCRIPT], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE if watch_stderr else None, cwd=ROOT,
            env={**os.environ, **(env or {})})
        self.stderr = (Lines(io.TextIOWrapper(self.process.stderr, errors="replace"))
                       if watch_stderr else None)
        self._buffer = b""
        assert self._read(60) == {"ok": "hello"}

    def _read(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HostFailed(f"host {self.name}: no answer within {timeout:g} s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise HostFailed(f"host {self.name}: its process ended "
                                     f"(exit code {self.process.wait(5)})")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def ask(self, op: str, *, wait: float = 60.0, **args) -> dict:
        """The raw answer: {"ok": ...} or {"error": type, "message": ...}."""
        self.send(op, **args)
        return self._read(wait)

    def send(self, op: str, **args) -> None:
        """A command whose answer `answer` reads later (meanwhile, the test acts)."""
        self.process.stdin.write((json.dumps({"op": op, **args}) + "\n").encode())
        self.process.stdin.flush()

    def answer(self, wait: float = 60.0) -> dict:
        return self._read(wait)

    def call(self, op: str, *, wait: float = 60.0, **args):
        answer = self.ask(op, wait=wait, **args)
        if "error" in answer:
            raise HostFailed(f"host {self.name}: {op} raised {answer['error']}: "
                             f"{answer['message']}\n{answer.get('traceback', '')}")
        return answer["ok"]

    def tap(self, config: dict) -> dict:
        info = self.call("tap", config=config)
        self.session = info["session"]
        return info

    def close(self, timeout: float = 60.0) -> None:
        """Shut the session down and end the process (killed if it does not end)."""
        if self.process.poll() is None:
            try:
                self.process.stdin.write(b'{"op": "exit"}\n')
                self.process.stdin.flush()
                self.process.stdin.close()
            except OSError:
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for pipe in (self.process.stdin, self.process.stdout):
            try:
                pipe.close()
            except OSError:   # a killed host's stdin: nothing reads it
                pass
        if self.stderr is not None:
            self.stderr.close(5.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loopback_bridges(site: str, port: int, hosts=("hostA", "hostB")) -> tuple[dict, dict]:
    """bridge: sections of two hosts over loopback: the second listens, the first
    connects (the listener taps first)."""
    a, b = hosts
    return ({"site": site, "host": a, "connect": [f"tcp/127.0.0.1:{port}"]},
            {"site": site, "host": b, "listen": [f"tcp/127.0.0.1:{port}"]})


def loopback_pair():
    """The body of a test's `pair` fixture: yields (make(name, **Host args), A's
    bridge section, B's) for two hosts over loopback on a site of their own; at the
    end closes every host made (the connecting side first) and checks that none
    left shared memory behind."""
    site = f"s{os.getpid()}x{free_port()}"
    bridge_a, bridge_b = loopback_bridges(site, free_port())
    hosts: list[Host] = []

    def make(name, **kw):
        host = Host(name, **kw)
        hosts.append(host)
        return host

    yield make, bridge_a, bridge_b
    for host in reversed(hosts):
        host.close()
    left = [n for h in hosts for n in shm_left(h.session)]
    assert not left, f"shared memory left: {left}"


def shm_left(session: str | None) -> list[str]:
    if not session:
        return []
    prefix = f"ether_{session}"
    return sorted(n for n in os.listdir("/dev/shm") if n == prefix or n.startswith(prefix + "_"))
