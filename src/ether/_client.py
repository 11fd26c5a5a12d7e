"""Client: the message verbs (pub, subscribe, listen, get, save, get_later,
collect, sync, statistics, empty, zeros) over one Node.

Every process that talks to a session has one: the main script's comes from
`ether.tap` (over the supervisor's node), an instance's from its launch, and
`Client.attach(name)` makes one for any other process (a CLI, a recorder, a
notebook) that joins a session someone else started. `ether`'s verbs delegate
to the process's default client (`default()`); nothing here is process-wide
otherwise, so one process may hold several clients, in one session or several.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import os
import queue
import threading
import time
from typing import Any, Callable

from . import _errors as errors
from ._node import _codec as codec
from ._node._delivery import DEFAULT_POLICY, DEFAULT_TIMEOUT_S, Delivery, check_delivery, describe_delivery
from ._node._topics import BRIDGE_LINKS, check_topic, service_topic, sync_topic, with_topic

__all__ = ["Client", "Listener", "default", "set_default"]

log = logging.getLogger("Ether")

REQUEST_TIMEOUT_S = 5.0
NAMES_KEPT = 4096  # cached call names (per service and method, and per server)
TRIAL_TOPIC = "ether/trial"   # trial starts and ends (see Client.trial)
SYNC_TIMEOUT_S = 30.0
LINKS_TIMEOUT_S = 0.5   # statistics() waits this long, at most, for the bridge's links
_attached = itertools.count(1)


class Client:
    """The message verbs of one node. `Client.attach(name)` joins a running
    session; `close()` (or the with-block's end) leaves it without disturbing it."""

    def __init__(self, node, *, start_reader: Callable[[], None] | None = None,
                 owns_session: bool = False):
        """node: the process's presence in the session. start_reader: starts a
        thread that reads the node's inbox when a subscription needs one (None:
        the process already runs a reader, as an instance does)."""
        self.node = node
        self._start_reader = start_reader
        self._owns_session = owns_session
        self._lock = threading.RLock()
        self._requests: dict[int, tuple] = {}   # get_later ids awaiting collect()
        self._names: dict[tuple, tuple] = {}      # (service, method) -> get's names
        self._described: dict[tuple, str] = {}    # (names, sender) -> a wait's name
        self._callbacks: queue.SimpleQueue | None = None
        self._stop_reader = threading.Event()
        self._reader: threading.Thread | None = None

    # ---- joining ----

    @classmethod
    def attach(cls, session_name: str, *, name: str | None = None) -> "Client":
        """Join the live session `session_name` that another process started.
        Raises SessionNotFound if there is none by that name or its owner died."""
        from ._core._session import Session
        from ._node._node import Node
        session = Session.open(session_name)
        try:
            node = Node(session, name or f"attach-{os.getpid()}-{next(_attached)}")
        except BaseException:
            session.close()
            raise
        client = cls(node, owns_session=True)
        client._start_reader = client._run_reader
        return client

    def _run_reader(self) -> None:
        with self._lock:
            if self._reader is None:
                self._reader = threading.Thread(
                    target=self.node.serve, kwargs={"stop": self._stop_reader},
                    name=f"ether-client-{self.node.name}", daemon=True)
                self._reader.start()

    def session_name(self) -> str:
        return self.node.session.name

    @property
    def closed(self) -> bool:
        return self.node.closed

    def close(self) -> None:
        """Leave: unsubscribe, free this client's inbox and, for an attached client,
        leave the session (which runs on). Callbacks queued so far still run."""
        with self._lock:
            self._stop_reader.set()
            if self._callbacks is not None:
                self._callbacks.put(None)
                self._callbacks = None
            if self._owns_session:
                node, self._owns_session = self.node, False
                reader = self._reader
                if reader is not None and reader is not threading.current_thread():
                    node.wake()
                    reader.join(2.0)
                node.close()
                node.session.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ether.Client {self.node.name!r} in session {self.node.session.name!r}>"

    # ---- publishing ----

    def pub(self, data: Any = None, topic: str | None = None) -> int:
        """Publish data (a dict, Struct, pydantic model, dataclass or None) to topic;
        returns how many inboxes received it (a drop subscriber whose inbox is full
        does not). Raises InboxFull, naming the topic, if a block subscriber's inbox
        stays full longer than its timeout."""
        if type(data) is not dict or type(topic) is not str or not topic:
            if not isinstance(topic, str) or not topic:
                raise errors.ConfigError(f"ether.pub needs a topic (a non-empty str), not {topic!r}")
            from ._spec._introspect import message_of  # a model or a Struct: rare here
            data = message_of(data)
        node = self.node
        if topic not in node.advertised:
            check_topic(topic, "ether.pub")
            node.advertise((topic,))
        try:
            return node.publish(topic, data)
        except errors.InboxFull as exc:
            raise with_topic(exc, topic) from None

    def start(self, **data) -> int:
        """Publish to the "start" topic (every @ether_start method runs). With
        trial=N, the start is trial N's: see trial()."""
        if "trial" in data:
            number = data.pop("trial")
            with self.trial(number):
                return self.pub(data, topic="start")
        return self.pub(data, topic="start")

    @contextlib.contextmanager
    def trial(self, trial, **params):
        """Publish a trial start on ether/trial ({"event": "start", "trial",
        "params"}); what this thread publishes in the block, and everything that
        causes, carries the start's id as its trace: "everything trial 7 caused"
        is then a filter (a recording's messages(trial=7)). The end is published
        on leaving."""
        node = self.node
        start = node.publish_root(TRIAL_TOPIC, {"event": "start", "trial": trial, "params": params})
        with node.handling(start):
            try:
                yield start
            finally:
                node.publish(TRIAL_TOPIC, {"event": "end", "trial": trial})

    # ---- subscribing ----

    def subscribe(self, topic: str, handler: Callable[[dict], Any], *,
                  policy: str = DEFAULT_POLICY, timeout: float = DEFAULT_TIMEOUT_S,
                  envelopes: bool = False) -> Callable[[], None]:
        """Call handler(message_dict) for each message on topic (or on every topic a
        pattern such as "sensors/*" matches), in a background thread of this
        process. Returns a function that unsubscribes.

        When this process's inbox is full, a publisher waits up to `timeout` seconds
        and then raises InboxFull (policy="block"), or drops the message for this
        process and counts the drop in its statistics() (policy="drop").

        envelopes=True (for extensions: recorders, bridges, monitors): handler gets
        the Envelope itself (sender, seq, cause, trace, origin, undecoded payload)
        and runs in the thread that reads the inbox, so it must be quick; arena
        arrays in the message are held only while it runs (node.inline_payload
        copies them out)."""
        delivery = check_delivery(policy, timeout, f"ether.subscribe({topic!r})")
        check_topic(topic, "ether.subscribe", pattern=True)
        node = self.node
        if envelopes:
            on_message = handler
        else:
            callbacks = self._callback_queue()
            payload_dict = node.decoders.payload_dict

            def on_message(envelope: codec.Envelope) -> None:
                # Decoded here, while the message's arrays are held; run elsewhere:
                # never run user code in the reader.
                callbacks.put((handler, envelope.topic, payload_dict(envelope)))

        _add_handler(node, topic, on_message, delivery, "ether.subscribe")
        if self._start_reader is not None:
            self._start_reader()  # callbacks come without anyone waiting
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
        """Subscribe to topic (or a pattern) now, and iterate over its messages as
        they arrive; the iteration stops after `timeout` seconds without a message
        (None: never). Close it (or use it as a context manager) to unsubscribe.

        `policy` and `block_timeout` are what publishers do when this process's
        inbox is full: wait up to `block_timeout` seconds, then raise InboxFull
        ("block"), or drop the message for this process and count it ("drop")."""
        delivery = check_delivery(policy, block_timeout, f"ether.listen({topic!r})")
        check_topic(topic, "ether.listen", pattern=True)
        return Listener(self.node, topic, timeout, delivery)

    def statistics(self) -> tuple:
        """What this process has sent: one SenderStatistics (sent, dropped, blocked,
        the target inbox's fill) per inbox and delivery policy it has published,
        requested or replied to. A drop subscriber's lost messages show as
        `dropped` of the entry whose `inbox` is the subscriber's and `policy` is
        "drop". `undelivered` counts the messages not sent to an instance while it
        was down (restarting, or failed; see the restart policies): the entry is
        kept for that count after its inbox closed.

        With a bridge in the session, one entry more per other host this host
        receives topics from, whose `inbox` is `bridge@<host>` and `policy` "drop":
        `sent` counts the messages that arrived from it, `dropped` those lost on
        the way (gaps in the sending bridge's frame numbers, counted here). It
        asks the bridge (a request of at most LINKS_TIMEOUT_S); a bridge that does
        not answer in time leaves them out."""
        return self.node.statistics() + self._links()

    def _links(self) -> tuple:
        node = self.node
        try:
            request_id, sender = node.request(BRIDGE_LINKS, {}, what="the bridge's links",
                                              timeout=LINKS_TIMEOUT_S)
        except errors.ServiceNotFound:
            return ()   # no bridge: nothing to ask
        except errors.EtherError as exc:
            log.debug("statistics: could not ask the bridge: %s", exc)
            return ()
        try:
            reply = node.wait_reply(request_id, LINKS_TIMEOUT_S, what="the bridge's links",
                                    alive=sender.consumer_alive)
            links = reply["result"]
            from ._core._sender import SenderStatistics  # the transport: loaded by then
            return tuple(SenderStatistics(
                inbox=f"bridge@{link['host']}", session=node.session.name, sent=int(link["received"]),
                sent_bytes=0, dropped=int(link["gaps"]), blocked=0, capacity=0, used=0,
                max_length=0, policy="drop") for link in links)
        except (errors.EtherError, KeyError, TypeError, ValueError) as exc:
            log.debug("statistics: the bridge's links are left out: %s", exc)
            return ()

    # ---- arrays ----

    def empty(self, shape, dtype="float64"):
        """A writable ndarray that already lives in this process's shared-memory
        arena: publishing it copies nothing. Writing to it after publishing changes
        what subscribers see (that is the point of a loan)."""
        return self.node.loan(shape, dtype)

    def zeros(self, shape, dtype="float64"):
        """As empty(), filled with zeros."""
        array = self.empty(shape, dtype)
        array.fill(0)
        return array

    # ---- requests ----

    def get(self, service: str, method: str, params: dict | None = None, *,
            timeout: float = REQUEST_TIMEOUT_S):
        """Call service.method (service: a class name, round-robin over its live
        instances, or an instance name) and return its result. Raises RemoteError
        (the method raised, or the params failed validation), ServiceNotFound,
        ServiceGone (the server died) or Timeout. A service whose only instances
        are restarting is waited for, within the timeout."""
        # The call path of every request, _send and _call inlined (names cached).
        deadline = time.monotonic() + timeout
        names = self._names.get((service, method))
        if names is None:
            names = self._name(service, method)
        node = self.node
        request_id, sender = node.request(names[0], params or {}, what=names[2],
                                          timeout=timeout, wait=timeout)
        described = self._described.get((names, sender))
        if described is None:
            described = self._describe(names, sender)
        try:
            reply = node.wait_reply(request_id, max(0.0, deadline - time.monotonic()),
                                    alive=sender.consumer_alive, what=described)
        except errors.ServiceGone:
            node.forget_inbox(sender)  # round-robin skips it from now on
            raise
        status = reply.get("status")
        if status == "success":
            return reply.get("result")
        if status == "failed":  # a bridge: it never reached a method on the other host
            raise _failure(reply)
        return _result(reply, names[1])

    def _name(self, service: str, method: str) -> tuple[str, str, str]:
        """(request topic, "Service.method", "service 'Service.method'") of a call."""
        what = f"{service}.{method}"
        if len(self._names) >= NAMES_KEPT:
            self._names.clear()
        names = self._names[(service, method)] = (service_topic(service, method), what,
                                                  f"service {what!r}")
        return names

    def _describe(self, names: tuple, sender) -> str:
        """How a wait for a reply from `sender` names what it waits for."""
        if len(self._described) >= NAMES_KEPT:
            self._described.clear()
        text = self._described[(names, sender)] = f"{names[2]} (instance {sender.inbox!r})"
        return text

    def save(self, service: str, method: str, params: dict | None = None, *,
             timeout: float = REQUEST_TIMEOUT_S) -> dict:
        """Call service.method and return the reply: {"status": "success", "result": ...}
        or {"status": "error", "error": "...", "type": "..."}."""
        deadline = time.monotonic() + timeout
        sent = self._send(service, method, params, timeout)
        reply, _ = self._call(sent, max(0.0, deadline - time.monotonic()))
        return {k: v for k, v in reply.items() if k != "id"}

    def get_later(self, service: str, method: str, params: dict | None = None, *,
                  timeout: float = REQUEST_TIMEOUT_S) -> int:
        """Send the request now (or, if its instances are restarting, once one is
        back, within the timeout); return its id for collect()."""
        request_id, sender, what = self._send(service, method, params, timeout)
        with self._lock:
            self._requests[request_id] = (request_id, sender, what, timeout)
        return request_id

    def _send(self, service: str, method: str, params, wait: float) -> tuple[int, object, str]:
        names = self._names.get((service, method)) or self._name(service, method)
        request_id, sender = self.node.request(names[0], params or {}, what=names[2],
                                               timeout=wait, wait=wait)
        return request_id, sender, names[1]

    def collect(self, request_id: int, timeout: float | None = None):
        """The result of a get_later request (as get would return it)."""
        with self._lock:
            entry = self._requests.pop(request_id, None)
        if entry is None:
            raise errors.EtherError(f"no request {request_id} is waiting to be collected")
        default_timeout = entry[3]
        return _result(*self._call(entry[:3], default_timeout if timeout is None else timeout))

    def _call(self, sent: tuple, timeout: float) -> tuple[dict, str]:
        """Wait for the reply to a sent request: (reply, "Service.method")."""
        request_id, sender, what = sent
        node = self.node
        try:
            reply = node.wait_reply(request_id, timeout, alive=sender.consumer_alive,
                                    what=f"service {what!r} (instance {sender.inbox!r})")
        except errors.ServiceGone:
            node.forget_inbox(sender)  # round-robin skips it from now on
            raise
        if reply.get("status") == "failed":  # a bridge: it never reached a method on the other host
            raise _failure(reply)
        return reply, what

    def sync(self, topic: str, *, timeout: float = SYNC_TIMEOUT_S, **params) -> dict:
        """Call every @ether_sync(topic=...) method in all instances and return
        {instance: result} once the slowest has finished; raise SyncFailed naming
        the instances that failed."""
        node = self.node
        sent = node.broadcast_request(sync_topic(topic), params, timeout=timeout)
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


# What a reply of status "failed" may raise (see _node/_codec.py).
_FAILURES = {"ServiceGone": errors.ServiceGone, "ServiceNotFound": errors.ServiceNotFound,
             "Timeout": errors.Timeout}


def _failure(reply: dict) -> errors.EtherError:
    kind = _FAILURES.get(reply.get("type"), errors.ServiceGone)
    return kind(f"{reply.get('error')} (instance {reply.get('instance')!r})")


def _result(reply: dict, what: str):
    if reply.get("status") == "success":
        return reply.get("result")
    raise errors.RemoteError(
        f"{what} on instance {reply.get('instance')!r} failed: {reply.get('type')}: "
        f"{reply.get('error')}", type=reply.get("type", ""), remote=reply.get("error", ""),
        instance=reply.get("instance", ""))


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


def _add_handler(node, topic: str, handler, delivery: Delivery, call: str) -> None:
    """node.add_handler; its refusal of a second policy for one topic names the call."""
    try:
        node.add_handler(topic, handler, policy=delivery[0], timeout=delivery[1])
    except errors.ConfigError as exc:
        raise errors.ConfigError(f"{call}({topic!r}, {describe_delivery(delivery)}): {exc}") from None


class Listener:
    """The messages of one topic (or pattern), as dicts, from a subscription made
    at creation."""

    def __init__(self, node, topic: str, timeout: float | None, delivery: Delivery = Delivery()):
        self._node, self._topic, self._timeout = node, topic, timeout
        self._box = box = queue.SimpleQueue()
        payload_dict, report = node.decoders.payload_dict, node.rejections.report

        # Not a bound method: the node must not keep the listener alive (an abandoned
        # one unsubscribes when collected), and close() removes this very object.
        def on_message(envelope: codec.Envelope) -> None:
            try:
                box.put(payload_dict(envelope))
            except errors.MalformedMessage as exc:
                report(envelope.topic, "malformed", str(exc), f"listener of {topic!r}: {exc}")

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


# ---- the process's default client ----

_default: Client | None = None


def default() -> Client | None:
    """The client `ether`'s verbs use in this process (None: not tapped or launched)."""
    return _default


def set_default(client: Client | None) -> None:
    global _default
    _default = client


def _after_fork_in_child() -> None:
    # An instance is forked from the main: it gets a client of its own at launch.
    global _default
    _default = None


os.register_at_fork(after_in_child=_after_fork_in_child)
