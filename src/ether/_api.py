"""The `ether` facade: a thin front over the process's Supervisor (in the main
script) or Node (in an instance)."""
from __future__ import annotations

import atexit
import logging
import queue
import signal
import sys
import threading
from typing import Any, Callable

from . import _codec as codec
from . import _errors as errors

log = logging.getLogger("Ether")


class Ether:
    """Start, feed and stop a session of instances; publish and listen from the
    main script. `ether.tap(config)` returns once every instance is ready."""

    def __init__(self):
        self._supervisor = None
        self._node = None          # set in instance processes
        self._lock = threading.RLock()
        self._atexit = False

    # ---- lifecycle ----

    def tap(self, config=None, *, restart: bool = False, start_timeout: float | None = None) -> None:
        """Start a session from `config` (a YAML path, a dict or an EtherConfig) and
        launch each instance in its own process. A second tap does nothing unless
        restart=True."""
        from .config import EtherConfig
        from ._supervisor import START_TIMEOUT_S, Supervisor
        with self._lock:
            if self._supervisor is not None:
                if not restart:
                    log.info("Ether is already tapped (session %s); pass restart=True to restart",
                             self._supervisor.session.name)
                    return
                self.shutdown()
            cfg = EtherConfig.load(config if config is not None else {})
            try:  # so the main's lines interleave with the instances' as they happen
                sys.stdout.reconfigure(line_buffering=True)
            except (AttributeError, ValueError):
                pass
            supervisor = Supervisor(cfg, start_timeout=start_timeout or START_TIMEOUT_S)
            supervisor.start()
            self._supervisor = supervisor
            self._node = supervisor.node
            self._install_exit_hooks()

    def shutdown(self) -> None:
        """Deliver what was published, run the save_all, cleanup and shutdown
        handlers, stop the instances and remove the session's shared memory."""
        with self._lock:
            supervisor, self._supervisor = self._supervisor, None
            if supervisor is None:
                return
            self._node = None
            supervisor.shutdown()

    def _install_exit_hooks(self) -> None:
        if self._atexit:
            return
        self._atexit = True
        atexit.register(self.shutdown)
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            # SIGTERM ends the script as an exception would: atexit runs the shutdown.
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    # ---- messages ----

    def _require_node(self):
        node = self._node
        if node is None:
            raise errors.EtherError("Ether is not tapped in this process: call ether.tap(config) first")
        return node

    def pub(self, data: Any = None, topic: str | None = None) -> int:
        """Publish data (a dict, Struct, pydantic model, dataclass or None) to topic;
        returns how many inboxes received it."""
        if not isinstance(topic, str) or not topic:
            raise errors.ConfigError(f"ether.pub needs a topic (a non-empty str), not {topic!r}")
        from ._methods import message_of
        return self._require_node().publish(topic, message_of(data))

    def start(self, **data) -> int:
        """Publish to the "start" topic (every @ether_start method runs)."""
        return self.pub(data, topic="start")

    def subscribe(self, topic: str, handler: Callable[[dict], Any]) -> Callable[[], None]:
        """Call handler(message_dict) for each message on topic, in a background
        thread of this process. Returns a function that unsubscribes."""
        node = self._require_node()

        def on_message(envelope: codec.Envelope) -> None:
            try:
                handler(codec.payload_dict(envelope))
            except Exception:
                log.exception("subscriber of %r raised", topic)

        node.add_handler(topic, on_message)
        return lambda: node.remove_handler(topic, on_message)

    def listen(self, topic: str, timeout: float | None = None) -> "Listener":
        """Subscribe to topic now, and iterate over its messages as they arrive; the
        iteration stops after `timeout` seconds without a message (None: never).
        Close it (or use it as a context manager) to unsubscribe."""
        return Listener(self._require_node(), topic, timeout)

    @property
    def session(self) -> str | None:
        """The id of the session this process is in, if any."""
        node = self._node
        return node.session.name if node is not None else None


ether = Ether()


class Listener:
    """The messages of one topic, as dicts, from a subscription made at creation."""

    def __init__(self, node, topic: str, timeout: float | None):
        self._node, self._topic, self._timeout = node, topic, timeout
        self._box: queue.SimpleQueue = queue.SimpleQueue()
        node.add_handler(topic, self._on_message)

    def _on_message(self, envelope: codec.Envelope) -> None:
        self._box.put(codec.payload_dict(envelope))

    def __iter__(self) -> "Listener":
        return self

    def __next__(self) -> dict:
        try:
            return self._box.get(timeout=self._timeout)
        except queue.Empty:
            raise StopIteration from None

    def close(self) -> None:
        self._node.remove_handler(self._topic, self._on_message)

    def __enter__(self) -> "Listener":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
