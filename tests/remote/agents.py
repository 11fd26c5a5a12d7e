"""The test side of zagent.py: start a zenoh session on a simulated host and drive
it. Every wait is bounded; the process is ended by PID when its host closes."""
from __future__ import annotations

import json
import os
import pathlib
import queue
import re
import subprocess
import threading
import time

from bridge_driver import Lines

from .netns import Host

_MARK = "@zagent "
ZAGENT = str(pathlib.Path(__file__).with_name("zagent.py"))


class AgentFailed(RuntimeError):
    pass


class Agent:
    """One zagent.py process on ``host`` with the zenoh config ``config`` (a dict)."""

    def __init__(self, host: Host, config: dict, *, log: str = "warn", timeout: float = 15.0):
        self.host = host
        env = dict(os.environ, RUST_LOG=log, PYTHONUNBUFFERED="1")
        self.proc = host.python(ZAGENT, json.dumps(config), env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._replies: queue.Queue[dict] = queue.Queue()
        self._lock = threading.Condition()
        self.samples: list[dict] = []
        self.log: list[str] = []
        self._next_id = 0
        self._readers = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for reader in self._readers:
            reader.start()
        host.on_close(self.close)
        first = self._reply(timeout)
        if first.get("ev") != "ready":
            raise AgentFailed(f"on {host.name}: {first.get('error', first)}")
        self.zid = first["zid"]

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            if not line.startswith(_MARK):
                with self._lock:
                    self.log.append(line)
                    self._lock.notify_all()
                continue
            msg = json.loads(line[len(_MARK):])
            if msg.get("ev") == "sample":
                with self._lock:
                    self.samples.append(msg)
                    self._lock.notify_all()
            else:
                self._replies.put(msg)
        self._replies.put({"ev": "exited", "error": f"exited with {self.proc.wait()}: "
                                                    + "".join(self.log[-5:])})

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            with self._lock:
                self.log.append(line)
                self._lock.notify_all()

    def _reply(self, timeout: float) -> dict:
        try:
            return self._replies.get(timeout=timeout)
        except queue.Empty:
            raise AgentFailed(f"on {self.host.name}: no answer within {timeout} s") from None

    def call(self, op: str, *, wait: float = 15.0, **args) -> dict:
        self._next_id += 1
        self.proc.stdin.write(json.dumps({"op": op, "id": self._next_id, **args}) + "\n")
        self.proc.stdin.flush()
        reply = self._reply(wait)
        if reply.get("id") != self._next_id:
            raise AgentFailed(f"on {self.host.name}: {op}: unexpected {reply}")
        return reply

    # -- conveniences -------------------------------------------------------------

    def sub(self, key: str) -> None:
        self.call("sub", key=key)

    def put(self, key: str, payload: str) -> None:
        self.call("put", key=key, payload=payload)

    def payloads(self) -> list[str]:
        with self._lock:
            return [s["payload"] for s in self.samples]

    def wait_sample(self, payload: str, timeout: float) -> bool:
        with self._lock:
            return self._lock.wait_for(
                lambda: any(s["payload"] == payload for s in self.samples), timeout)

    def wait_log(self, pattern: str, timeout: float) -> str | None:
        """The first stderr line matching ``pattern`` (a regex), waiting up to timeout."""
        regex = re.compile(pattern)
        with self._lock:
            self._lock.wait_for(lambda: any(regex.search(l) for l in self.log), timeout)
            return next((l for l in self.log if regex.search(l)), None)

    def peers(self, timeout: float) -> list[dict]:
        """The peers linked to this session, waiting up to timeout for the first."""
        return self.call("wait_peer", wait=timeout + 10, timeout=timeout)["peers"]

    def wait_peers(self, count: int, timeout: float) -> tuple[list[dict], float]:
        """The linked peers once there are exactly ``count`` (or after timeout), and
        when (time.time()) the last link came or went."""
        reply = self.call("wait_count", wait=timeout + 10, count=count, timeout=timeout)
        return reply["peers"], reply["at"]

    def get(self, key: str, timeout: float = 2.0) -> list[str]:
        return self.call("get", wait=timeout + 10, key=key, timeout=timeout)["replies"]

    def matches(self, key: str, timeout: float) -> bool:
        """Whether a publisher on key sees a subscriber within timeout."""
        return self.call("wait_match", wait=timeout + 10, key=key, timeout=timeout)["matching"]

    def close(self, timeout: float = 10.0) -> None:
        """Quit cleanly (the session closes), bounded, else kill it by PID; then
        reap its readers and pipes. Safe to call twice."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.host.stop(self.proc)
        for reader in self._readers:
            reader.join(timeout)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                pipe.close()
            except BrokenPipeError:
                pass


class Watched:
    """Any process on a host whose stderr (or merged output) is read line by line,
    to wait for a line; its pipe is closed when the host closes."""

    def __init__(self, host: Host, argv: list[str], *, env: dict | None = None):
        self.host = host
        self.proc = host.popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        self.out = Lines(self.proc.stdout)
        host.on_close(self.close)

    @property
    def lines(self) -> list[str]:
        return self.out.lines

    def wait_line(self, pattern: str, timeout: float) -> str | None:
        return self.out.wait_line(pattern, timeout)

    def close(self, timeout: float = 10.0) -> int:
        code = self.host.stop(self.proc, timeout)
        self.out.close(timeout)
        return code
