"""The `ether` facade: a thin front over the process's Supervisor (in the main
script) or Node (in an instance)."""
from __future__ import annotations

import atexit
import logging
import os
import queue
import signal
import sys
import threading
import time
from typing import Any, Callable

from ._node import _codec as codec
from . import _errors as errors
from ._spec._decorators import DEFAULT_POLICY, DEFAULT_TIMEOUT_S, check_delivery, describe_delivery
from ._runtime._child import naming_topic, service_topic, sync_topic
from ._spec._introspect import message_of

log = logging.getLogger("Ether")


class Ether:
    """Start, feed and stop a session of instances; publish and listen from the
    main script. `ether.tap(config)` returns once every instance is ready."""

    def __init__(self):
        self._supervisor = None
        self._node = None          # set in instance processes
        self._lock = threading.RLock()
        self._atexit = False
        self._requests: dict[int, tuple] = {}   # get_later ids awaiting collect()
        self._callbacks: queue.SimpleQueue | None = None

    # ---- lifecycle ----

    def tap(self, config=None, *, restart: bool = False, start_timeout: float | None = None) -> None:
        """Start a session from `config` (a YAML path, a dict or an EtherConfig) and
        launch each instance in its own process. A second tap does nothing unless
        restart=True."""
        from .config import EtherConfig
        from ._runtime._supervisor import START_TIMEOUT_S, Supervisor
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
            if self._callbacks is not None:
                self._callbacks.put(None)  # the worker ends after the callbacks queued so far
                self._callbacks = None

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
        returns how many inboxes received it (a drop subscriber whose inbox is full
        does not). Raises InboxFull, naming the topic, if a block subscriber's inbox
        stays full longer than its timeout."""
        node = self._node
        if node is None or type(data) is not dict or type(topic) is not str or not topic:
            if not isinstance(topic, str) or not topic:
                raise errors.ConfigError(f"ether.pub needs a topic (a non-empty str), not {topic!r}")
            node, data = self._require_node(), message_of(data)
        try:
            return node.publish(topic, data)
        except errors.InboxFull as exc:
            raise naming_topic(exc, topic) from None

    def start(self, **data) -> int:
        """Publish to the "start" topic (every @ether_start method runs)."""
        return self.pub(data, topic="start")

    def subscribe(self, topic: str, handler: Callable[[dict], Any], *,
                  policy: str = DEFAULT_POLICY, timeout: float = DEFAULT_TIMEOUT_S) -> Callable[[], None]:
        """ether.subscribe(topic, handler, *, policy="block", timeout=5.0)

        Call handler(message_dict) for each message on topic, in a background
        thread of this process. Returns a function that unsubscribes.

        When this process's inbox is full, a publisher waits up to `timeout` seconds
        and then raises InboxFull (policy="block"), or drops the message for this
        process and counts the drop in its ether.statistics() (policy="drop")."""
        delivery = check_delivery(policy, timeout, f"ether.subscribe({topic!r})")
        node = self._require_node()
        callbacks = self._callback_queue()

        def on_message(envelope: codec.Envelope) -> None:
            # Decoded here, while the message's arrays are held; run elsewhere:
            # never run user code in the reader.
            callbacks.put((handler, topic, codec.payload_dict(envelope)))

        _add_handler(node, topic, on_message, delivery, "ether.subscribe")
        if self._supervisor is not None:
            self._supervisor.start_dispatcher()  # callbacks come without anyone waiting
        return lambda: node.remove_handler(topic, on_message)

    def _callback_queue(self) -> queue.SimpleQueue:
        """Subscribe callbacks run, in order, on one worker thread: a slow one delays
        no reply, and one may even call ether.shutdown()."""
        with self._lock:
            if self._callbacks is None:
                self._callbacks = queue.SimpleQueue()
                threading.Thread(target=_run_callbacks, args=(self._callbacks,),
                                 name="ether-callbacks", daemon=True).start()
            return self._callbacks

    def listen(self, topic: str, timeout: float | None = None, *, policy: str = DEFAULT_POLICY,
               block_timeout: float = DEFAULT_TIMEOUT_S) -> "Listener":
        """ether.listen(topic, timeout=None, *, policy="block", block_timeout=5.0)

        Subscribe to topic now, and iterate over its messages as they arrive; the
        iteration stops after `timeout` seconds without a message (None: never).
        Close it (or use it as a context manager) to unsubscribe.

        `policy` and `block_timeout` are what publishers do when this process's
        inbox is full: wait up to `block_timeout` seconds, then raise InboxFull
        ("block"), or drop the message for this process and count it ("drop")."""
        delivery = check_delivery(policy, block_timeout, f"ether.listen({topic!r})")
        return Listener(self._require_node(), topic, timeout, delivery)

    def statistics(self) -> tuple:
        """What this process has sent: one SenderStatistics (sent, dropped, blocked,
        the target inbox's fill) per inbox and delivery policy it has published,
        requested or replied to. A drop subscriber's lost messages show as
        `dropped` of the entry whose `inbox` is the subscriber's and `policy` is
        "drop". The entry of an inbox that closed is gone with its sender."""
        node = self._require_node()
        # The router is shared with publishing threads: read it under their lock
        # (a sender closed meanwhile would be freed under our feet).
        with node._send_lock:
            return node.router.statistics()

    # ---- arrays ----

    def empty(self, shape, dtype="float64"):
        """A writable ndarray that already lives in this process's shared-memory
        arena: publishing it copies nothing. Writing to it after publishing changes
        what subscribers see (that is the point of a loan)."""
        return (self._node or self._require_node()).loan(shape, dtype)

    def zeros(self, shape, dtype="float64"):
        """As empty(), filled with zeros."""
        array = self.empty(shape, dtype)
        array.fill(0)
        return array

    # ---- requests ----

    def get(self, service: str, method: str, params: dict | None = None, *, timeout: float = 5.0):
        """Call service.method (service: a class name, round-robin over its live
        instances, or an instance name) and return its result. Raises RemoteError
        (the method raised, or the params failed validation), ServiceNotFound,
        ServiceGone (the server died) or Timeout."""
        return self._result(*self._call(self._send(service, method, params), timeout))

    def save(self, service: str, method: str, params: dict | None = None, *,
             timeout: float = 5.0) -> dict:
        """Call service.method and return the reply: {"status": "success", "result": ...}
        or {"status": "error", "error": "...", "type": "..."}."""
        reply, _ = self._call(self._send(service, method, params), timeout)
        return {k: v for k, v in reply.items() if k != "id"}

    def get_later(self, service: str, method: str, params: dict | None = None, *,
                  timeout: float = 5.0) -> int:
        """Send the request now; return its id for collect()."""
        request_id, sender, what = self._send(service, method, params)
        with self._lock:
            self._requests[request_id] = (request_id, sender, what, timeout)
        return request_id

    def _send(self, service: str, method: str, params) -> tuple[int, object, str]:
        what = f"{service}.{method}"
        request_id, sender = self._require_node().request(
            service_topic(service, method), params or {}, what=f"service {what!r}")
        return request_id, sender, what

    def collect(self, request_id: int, timeout: float | None = None):
        """The result of a get_later request (as get would return it)."""
        with self._lock:
            entry = self._requests.pop(request_id, None)
        if entry is None:
            raise errors.EtherError(f"no request {request_id} is waiting to be collected")
        request_id, sender, what, default_timeout = entry
        return self._result(*self._call(entry[:3], default_timeout if timeout is None else timeout))

    @staticmethod
    def _result(reply: dict, what: str):
        if reply.get("status") == "success":
            return reply.get("result")
        raise errors.RemoteError(
            f"{what} on instance {reply.get('instance')!r} failed: {reply.get('type')}: "
            f"{reply.get('error')}", type=reply.get("type", ""), remote=reply.get("error", ""),
            instance=reply.get("instance", ""))

    def _call(self, sent: tuple, timeout: float) -> tuple[dict, str]:
        """Wait for the reply to a sent request: (reply, "Service.method")."""
        request_id, sender, what = sent
        node = self._require_node()
        try:
            reply = node.wait_reply(request_id, timeout, alive=sender.consumer_alive,
                                    what=f"service {what!r} (instance {sender.inbox!r})")
        except errors.ServiceGone:
            node.forget_inbox(sender)  # round-robin skips it from now on
            raise
        return reply, what

    def sync(self, *args, timeout: float = 30.0, **params):
        """ether.sync(topic, **params): call every @ether_sync(topic=...) method in all
        instances and return {instance: result} once the slowest has finished;
        raise SyncFailed naming the instances that failed.

        @ether.sync(topic=...) is also the decorator (ether_sync)."""
        if not args:
            from ._spec._decorators import ether_sync
            return ether_sync(**params)
        if len(args) != 1 or not isinstance(args[0], str):
            raise TypeError("ether.sync(topic, **params) takes one topic name")
        node = self._require_node()
        topic = args[0]
        sent = node.broadcast_request(sync_topic(topic), params)
        if not sent:
            raise errors.ServiceNotFound(f"no live instance has an @ether_sync(topic={topic!r}) method")
        deadline = time.monotonic() + timeout  # one deadline for all, not one per instance
        results, failures = {}, {}
        for request_id, sender in sent:
            try:
                reply = node.wait_reply(request_id, max(0.0, deadline - time.monotonic()),
                                        what=f"sync {topic!r} in {sender.inbox!r}",
                                        alive=sender.consumer_alive)
            except errors.EtherError as exc:
                failures[sender.inbox] = str(exc)
                continue
            if reply.get("status") == "success":
                results[reply["instance"]] = reply.get("result")
            else:
                failures[reply["instance"]] = f"{reply.get('type')}: {reply.get('error')}"
        if failures:
            raise errors.SyncFailed(
                f"sync {topic!r} failed in {', '.join(map(repr, sorted(failures)))}: " +
                "; ".join(f"{k}: {v}" for k, v in sorted(failures.items())), failures)
        return results

    def save_all(self, timeout: float = 10.0) -> None:
        """Call every @ether_save_all handler and wait until each has finished."""
        supervisor = self._supervisor
        if supervisor is None:
            raise errors.EtherError("ether.save_all() runs from the main script after ether.tap()")
        for name, reply in supervisor.request_all("lifecycle", {"phase": "save_all"}, timeout).items():
            if reply.get("errors"):
                raise errors.EtherError(f"instance {name!r}: save_all failed: {'; '.join(reply['errors'])}")

    @property
    def session(self) -> str | None:
        """The id of the session this process is in, if any."""
        node = self._node
        return node.session.name if node is not None else None


    def _after_fork_in_child(self) -> None:
        # An instance is forked while tap() holds the lock: start the child clean.
        self._lock = threading.RLock()
        self._supervisor = None
        self._node = None
        self._requests = {}
        self._callbacks = None
        self._atexit = False


ether = Ether()
os.register_at_fork(after_in_child=ether._after_fork_in_child)


def _run_callbacks(callbacks: queue.SimpleQueue) -> None:
    while True:
        item = callbacks.get()
        if item is None:
            return
        handler, topic, message = item
        try:
            handler(message)
        except Exception:
            log.exception("subscriber of %r raised", topic)


def _add_handler(node, topic: str, handler, delivery: tuple[str, float], call: str) -> None:
    """node.add_handler; its refusal of a second policy for one topic names the call."""
    try:
        node.add_handler(topic, handler, policy=delivery[0], timeout=delivery[1])
    except errors.ConfigError as exc:
        raise errors.ConfigError(f"{call}({topic!r}, {describe_delivery(delivery)}): {exc}") from None


class Listener:
    """The messages of one topic, as dicts, from a subscription made at creation."""

    def __init__(self, node, topic: str, timeout: float | None,
                 delivery: tuple[str, float] = (DEFAULT_POLICY, DEFAULT_TIMEOUT_S)):
        self._node, self._topic, self._timeout = node, topic, timeout
        self._box = box = queue.SimpleQueue()

        # Not a bound method: the node must not keep the listener alive (an abandoned
        # one unsubscribes when collected), and close() removes this very object.
        def on_message(envelope: codec.Envelope) -> None:
            try:
                box.put(codec.payload_dict(envelope))
            except codec.MalformedMessage as exc:
                log.error("listener of %r: %s", topic, exc)

        self._on_message = on_message
        _add_handler(node, topic, on_message, delivery, "ether.listen")

    def __iter__(self) -> "Listener":
        return self

    def __next__(self) -> dict:
        box = self._box
        if self._node is None:
            raise StopIteration
        try:
            self._node.wait_until(lambda: not box.empty(), self._timeout,
                                  describe=lambda: f"no message on {self._topic!r}")
        except (errors.Timeout, errors.SessionClosed):
            raise StopIteration from None
        return box.get_nowait()

    def close(self) -> None:
        node, self._node = self._node, None
        if node is not None:
            node.remove_handler(self._topic, self._on_message)

    def __del__(self) -> None:
        try:  # a listener abandoned mid-iteration stops collecting messages
            self.close()
        except Exception:
            pass

    def __enter__(self) -> "Listener":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
