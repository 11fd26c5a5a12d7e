"""System-wide logging: each process's records at WARNING and above, and the
session's lifecycle events (an instance started, is ready, died with its exit
cause), travel on the reserved topic `ether/log`, for a recorder (`--all`), a
monitor or `ether echo ether/log`. An instance's records also land in the main's
`session.log`, beside the main's own, so one file tells what went wrong where.

A record is never published from inside the logging call: a handler runs in
whichever thread logged, and that thread may hold a lane's lock (a publish that
failed and says so), or be the watchdog, which must never wait. The handler
queues the record; a thread of its own publishes it. The queue is bounded: in a
flood the oldest records give way and are counted, so memory stays flat.

session.log is appended to by every process of the session (O_APPEND: each
record one write of one line or one traceback, so records never interleave
within a line)."""
from __future__ import annotations

import collections
import logging
import os
import threading
import time

from .._errors import EtherError
from . import _logs

__all__ = ["TOPIC", "QUEUE_MAX", "LogTopic", "exit_cause"]

TOPIC = "ether/log"
QUEUE_MAX = 1000


def exit_cause(status: int | None, signaled: bool) -> str:
    """'exit code 3', 'killed by SIGKILL', ... from a waitid() result."""
    import signal
    if status is None:
        return "exit cause unknown"
    if signaled:
        try:
            return f"killed by {signal.Signals(status).name}"
        except ValueError:
            return f"killed by signal {status}"
    return f"exit code {status}"


class _Forward(logging.Handler):
    def __init__(self, owner: "LogTopic"):
        super().__init__(logging.WARNING)
        self._owner = owner

    def emit(self, record: logging.LogRecord) -> None:
        if threading.current_thread() is self._owner._thread:
            return   # what publishing a record logged: forwarding it would feed a loop
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            self._owner.put({"kind": "record", "level": record.levelname, "instance": self._owner.name,
                             "logger": record.name, "message": text, "pid": record.process,
                             "time_ns": int(record.created * 1e9)})
        except Exception:
            self.handleError(record)


class LogTopic:
    """The ether/log publisher of one process (its node), and, for an instance,
    the handler that copies its records into the main's session.log."""

    def __init__(self, node, name: str, *, session: str | None = None, start: bool = True):
        """start=False: queue, but start no thread until start() (the main: not
        before its forks are done)."""
        self.node, self.name = node, name
        self._may_start = start
        self.dropped = 0
        self._queue: collections.deque = collections.deque(maxlen=QUEUE_MAX)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._handlers: list[logging.Handler] = [_Forward(self)]
        if session is not None:   # an instance: its records into session.log too
            path = _logs.session_log_dir(session) / "session.log"
            to_session = logging.FileHandler(path, mode="a", encoding="utf-8", delay=True)
            to_session.setLevel(logging.WARNING)
            to_session.setFormatter(logging.Formatter(
                f"%(asctime)s.%(msecs)03d - %(name)s:%(process)d [{name}] - %(levelname)s - "
                f"%(message)s", _logs.DATEFMT))
            self._handlers.append(to_session)
        logger = logging.getLogger(_logs.LOGGER_NAME)
        for handler in self._handlers:
            logger.addHandler(handler)

    def event(self, event: str, instance: str, **fields) -> None:
        """A lifecycle event: started, ready, exited, failed, restarted, ..."""
        self.put({"kind": "event", "event": event, "instance": instance, "pid": os.getpid(),
                  "time_ns": time.time_ns(), **fields})

    def put(self, item: dict) -> None:
        with self._lock:
            if self._closed:
                return
            if len(self._queue) == QUEUE_MAX:
                self.dropped += 1
            self._queue.append(item)
            self._start_locked()
        self._wake.set()

    def start(self) -> None:
        with self._lock:
            self._may_start = True
            self._start_locked()
        self._wake.set()

    def _start_locked(self) -> None:
        if self._thread is None and self._may_start and self._queue:  # only once needed
            self._thread = threading.Thread(target=self._run, name="ether-log", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            while True:
                with self._lock:
                    if not self._queue:
                        closed = self._closed
                        break
                    item = self._queue.popleft()
                try:
                    self.node.publish(TOPIC, item)
                except EtherError:
                    pass   # a full or vanished subscriber: this is the log's own log
            if closed:
                return

    def close(self, timeout: float = 1.0) -> None:
        """Detach the handlers; publish what is queued (within `timeout`)."""
        logger = logging.getLogger(_logs.LOGGER_NAME)
        for handler in self._handlers:
            logger.removeHandler(handler)
            handler.close()
        with self._lock:
            self._closed = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout)
