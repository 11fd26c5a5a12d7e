"""The `ether` object: tap, start, shutdown and save_all, and the message verbs of
the process's default Client (see _client.py), to which it delegates.

In the main script, `tap` starts a Supervisor (the session and its instance
processes) and makes a Client over the supervisor's node the default; in an
instance process the launcher does that with the instance's node.
"""
from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Any, Callable

from . import _client
from . import _errors as errors
from ._node._delivery import DEFAULT_POLICY, DEFAULT_TIMEOUT_S
from ._node._topics import with_topic
from ._platform import require_platform

__all__ = ["Ether", "ether"]

log = logging.getLogger("Ether")


class Ether:
    """Start, feed and stop a session of instances; publish and listen from the
    main script. `ether.tap(config)` returns once every instance is ready."""

    def __init__(self):
        self._supervisor = None
        self._lock = threading.RLock()
        self._atexit = False
        self._stopping = False     # from a shutdown until the next tap
        self._signalled = False    # a SIGINT or SIGTERM has reached this script

    # ---- lifecycle ----

    def tap(self, config=None, *, restart: bool = False, start_timeout: float | None = None) -> None:
        """Start a session from `config` (a YAML path, a dict or an EtherConfig) and
        launch each instance in its own process. A second tap does nothing unless
        restart=True."""
        require_platform("ether.tap")
        from ._trace import mark
        mark("main", "ether.tap")
        from ._runtime import _prestart
        with self._lock:
            try:
                self._tap(config, restart, start_timeout)
            finally:
                _prestart.discard()   # a bridge's interpreter the tap did not use (it failed)
        mark("main", "ether.tap returns")

    def _tap(self, config, restart: bool, start_timeout: float | None) -> None:
        from ._runtime import _collector
        if self._supervisor is not None:
            if not restart:
                log.info("Ether is already tapped (session %s); pass restart=True to restart",
                         self._supervisor.session.name)
                return
            self.shutdown()
        with _collector.paused():   # until the forks are done (_collector.py)
            self._start(config, start_timeout)

    def _start(self, config, start_timeout: float | None) -> None:
        from ._runtime import _prestart
        from ._trace import mark
        if _has_bridge(config):
            # Its interpreter starts now, beside the checks and imports below (a
            # third of a second or more); the supervisor takes it (_prestart.py).
            _prestart.start(_prestart.BRIDGE)
        from .config import EtherConfig
        from ._runtime._supervisor import START_TIMEOUT_S, Supervisor
        cfg = EtherConfig.load(config if config is not None else {})
        mark("main", "config loaded")
        if cfg.bridge is not None:
            _prestart.start(_prestart.BRIDGE)   # a YAML file's: known only now
        try:  # so the main's lines interleave with the instances' as they happen
            sys.stdout.reconfigure(line_buffering=True)
        except (AttributeError, ValueError):
            pass
        supervisor = Supervisor(cfg, start_timeout=start_timeout or START_TIMEOUT_S)
        supervisor.on_failure_shutdown = lambda why: self._shutdown_for_failure(supervisor, why)
        supervisor.start()
        self._supervisor = supervisor
        self._stopping = self._signalled = False
        _client.set_default(_client.Client(supervisor.node, start_reader=supervisor.start_dispatcher))
        self._install_exit_hooks()

    def shutdown(self, timeout: float | None = None) -> None:
        """Deliver what was published, run the save_all, cleanup and shutdown
        handlers, stop the instances and remove the session's shared memory.

        It waits for the instances to handle what was published before it was
        called for as long as they make progress, at most `timeout` seconds (None:
        the config's shutdown_timeout_s, 120 s by default), logging every few
        seconds how far they got. If they do not finish in time (or none handles
        anything for 10 s), they skip what is still queued, the log says how many
        messages each did not handle, and the save_all, cleanup and shutdown
        handlers run all the same. A second Ctrl-C (SIGINT or SIGTERM) while it
        waits stops the waiting: save_all still runs, for at most 5 s, then every
        instance is stopped (killed if need be); a third one kills them at once."""
        with self._lock:
            supervisor, self._supervisor = self._supervisor, None
            if supervisor is None:
                return
            self._stopping = True
            client = _client.default()
            _client.set_default(None)
            with self._signals_shorten(supervisor):
                supervisor.shutdown(timeout)
            if client is not None:
                client.close()  # its callbacks queued so far still run

    def _shutdown_for_failure(self, supervisor, why: str) -> None:
        """on_failure: shutdown (supervision config): an instance failed for good, so
        the session shuts down in order (save_all included), from a thread of its own."""
        def run() -> None:
            if self._supervisor is not supervisor:
                return  # shut down already, or tapped again
            log.error("Shutting down the session: %s (supervision: on_failure: shutdown)", why)
            self.shutdown()
        threading.Thread(target=run, name="ether-failure-shutdown", daemon=True).start()

    def alive(self) -> None:
        """Say that this instance is alive: a handler that loops for long (an
        @ether_start sensor loop) calls it now and then, so that its watchdog
        does not judge it stuck (stuck_after_s in the config). One attribute
        increment: call it every iteration if that is simpler. Does nothing
        outside an instance."""
        client = _client._default
        if client is not None:
            client.node.beats += 1

    def stopping(self) -> bool:
        """True once this process's session began to shut down: `ether.shutdown()`
        (or Ctrl-C) in the main script; in an instance, its main's shutdown, or the
        main's death. A handler that loops (an @ether_start sensor loop) checks it
        to end in time: ``while not ether.stopping(): ...``. In the main script it
        stays True until the next tap."""
        if self._stopping:
            return True
        client = _client.default()
        return client is not None and client.node.stopping

    def _install_exit_hooks(self) -> None:
        if self._atexit:
            return
        self._atexit = True
        atexit.register(self.shutdown)
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers are the main thread's to set
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            # SIGTERM ends the script as an exception would: atexit runs the shutdown.
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(signum)
            if callable(previous):  # the script's own stays: we only note the signal
                signal.signal(signum, self._noting(previous))

    def _noting(self, handler):
        def note(signum, frame):
            self._signalled = True  # the shutdown it starts counts it as the first
            return handler(signum, frame)
        return note

    @contextlib.contextmanager
    def _signals_shorten(self, supervisor):
        """While shutdown runs (in the main thread), SIGINT and SIGTERM raise
        nothing into it: counting the one that started it, the second stops the
        wait for queued messages, the third stops waiting for anything."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        count = [1 if self._signalled else 0]

        def shorten(signum, frame):  # flags only: it may run inside any lock
            count[0] += 1
            if count[0] == 1:
                supervisor.hint()
            elif count[0] == 2:
                supervisor.force()
            else:
                supervisor.abort()

        previous = {s: signal.signal(s, shorten) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def save_all(self, timeout: float = 10.0) -> None:
        """Call every @ether_save_all handler and wait until each has finished."""
        supervisor = self._supervisor
        if supervisor is None:
            raise errors.EtherError("ether.save_all() runs from the main script after ether.tap()")
        for name, ack in supervisor.run_phase("save_all", timeout).items():
            if ack.errors:
                raise errors.EtherError(f"instance {name!r}: save_all failed: {'; '.join(ack.errors)}")

    # ---- joining ----

    @staticmethod
    def attach(session_name: str) -> _client.Client:
        """A Client of the live session `session_name`, started by another process:
        it publishes, subscribes (by topic or pattern), calls services and syncs,
        and leaves with close() without disturbing the session."""
        require_platform("ether.tap")
        return _client.Client.attach(session_name)

    def session_name(self) -> str | None:
        """The name of the session this process is in (tap logs it too), or None."""
        client = _client.default()
        return client.session_name() if client is not None else None

    @property
    def session(self) -> str | None:
        """The id of the session this process is in, if any (as session_name())."""
        return self.session_name()

    # ---- the message verbs, delegated to the process's client ----

    def _require_client(self) -> _client.Client:
        client = _client.default()
        if client is None:
            raise errors.EtherError("Ether is not tapped in this process: call ether.tap(config) first")
        return client

    def pub(self, data: Any = None, topic: str | None = None) -> int:
        """Publish data (a dict, Struct, pydantic model, dataclass or None) to topic;
        returns how many inboxes received it. See Client.pub."""
        client = _client._default
        if client is None:
            client = self._require_client()
        if type(data) is dict and type(topic) is str:  # Client.pub's common case, inlined
            node = client.node
            if topic in node.advertised:
                try:
                    return node.publish(topic, data)
                except errors.InboxFull as exc:
                    raise with_topic(exc, topic) from None
        return client.pub(data, topic)

    def start(self, **data) -> int:
        """Publish to the "start" topic (every @ether_start method runs);
        ether.start(trial=7) makes it trial 7's start (see trial())."""
        if "trial" in data:
            return self._require_client().start(**data)
        return self.pub(data, topic="start")

    def trial(self, trial, **params):
        """``with ether.trial(7, **params):`` publishes trial 7's start on
        ether/trial; everything published in the block, and everything that
        causes, is in that trial's trace. See Client.trial."""
        return self._require_client().trial(trial, **params)

    def subscribe(self, topic: str, handler: Callable[[dict], Any], *,
                  policy: str = DEFAULT_POLICY, timeout: float = DEFAULT_TIMEOUT_S) -> Callable[[], None]:
        """ether.subscribe(topic, handler, *, policy="block", timeout=5.0)

        Call handler(message_dict) for each message on topic (or pattern), in a
        background thread of this process. Returns a function that unsubscribes.
        See Client.subscribe."""
        return self._require_client().subscribe(topic, handler, policy=policy, timeout=timeout)

    def listen(self, topic: str, timeout: float | None = None, *, policy: str = DEFAULT_POLICY,
               block_timeout: float = DEFAULT_TIMEOUT_S) -> _client.Listener:
        """ether.listen(topic, timeout=None, *, policy="block", block_timeout=5.0)

        Iterate over a topic's (or pattern's) messages as they arrive; stops after
        `timeout` seconds without one. See Client.listen."""
        return self._require_client().listen(topic, timeout, policy=policy, block_timeout=block_timeout)

    def statistics(self) -> tuple:
        """What this process has sent: one SenderStatistics per inbox and policy.
        See Client.statistics."""
        return self._require_client().statistics()

    def empty(self, shape, dtype="float64"):
        """A writable ndarray in this process's shared-memory arena: publishing it
        copies nothing. See Client.empty."""
        client = _client._default  # as pub: a loan per frame is a hot path too
        if client is None:
            client = self._require_client()
        return client.node.loan(shape, dtype)  # Client.empty, inlined

    def zeros(self, shape, dtype="float64"):
        """As empty(), filled with zeros."""
        return self._require_client().zeros(shape, dtype)

    def get(self, service: str, method: str, params: dict | None = None, *,
            timeout: float = _client.REQUEST_TIMEOUT_S):
        """Call service.method and return its result. See Client.get."""
        client = _client._default
        if client is None:
            client = self._require_client()
        return client.get(service, method, params, timeout=timeout)

    def save(self, service: str, method: str, params: dict | None = None, *,
             timeout: float = _client.REQUEST_TIMEOUT_S) -> dict:
        """Call service.method and return the reply as a status dict. See Client.save."""
        return self._require_client().save(service, method, params, timeout=timeout)

    def get_later(self, service: str, method: str, params: dict | None = None, *,
                  timeout: float = _client.REQUEST_TIMEOUT_S) -> int:
        """Send the request now; return its id for collect()."""
        return self._require_client().get_later(service, method, params, timeout=timeout)

    def collect(self, request_id: int, timeout: float | None = None):
        """The result of a get_later request (as get would return it)."""
        return self._require_client().collect(request_id, timeout)

    def sync(self, *args, timeout: float = _client.SYNC_TIMEOUT_S, **params):
        """ether.sync(topic, **params): call every @ether_sync(topic=...) method in all
        instances and return {instance: result} once the slowest has finished;
        raise SyncFailed naming the instances that failed.

        @ether.sync(topic=...) is also the decorator (ether_sync)."""
        if not args:
            from ._spec._decorators import ether_sync
            return ether_sync(**params)
        if len(args) != 1 or not isinstance(args[0], str):
            raise TypeError("ether.sync(topic, **params) takes one topic name")
        return self._require_client().sync(args[0], timeout=timeout, **params)

    def _after_fork_in_child(self) -> None:
        # An instance is forked while tap() holds the lock: start the child clean.
        self._lock = threading.RLock()
        self._supervisor = None
        self._atexit = False
        self._stopping = self._signalled = False


ether = Ether()
os.register_at_fork(after_in_child=ether._after_fork_in_child)


def _has_bridge(config) -> bool:
    """Whether `config` (a dict or an EtherConfig) has a bridge: section, before it
    is checked; a YAML file's is known once it is read."""
    if isinstance(config, dict):
        return config.get("bridge") is not None
    return getattr(config, "bridge", None) is not None
