"""Requests across hosts: services, get_later/collect and sync.

Calling side: for every remote instance that serves something (its `r` tokens),
the bridge makes a proxy, a local inbox named `<instance>@<host>` subscribed to
what the instance serves, so the callers' own code (round-robin, get_later and
collect, the reply's correlation, sync's broadcast) covers it unchanged:

    service:<Class>.<method>            with the local instances of the class
    service:<instance>@<host>.<method>  that instance and no other
    service:<instance>.<method>         only if no local instance has that name and
                                        one host alone has it (several: a
                                        responder `<instance>@*` answers
                                        ServiceNotFound, naming them)
    sync:<topic>                        one participant of ether.sync

A proxy turns a request into a zenoh get on that instance's call key, with what
is left of the caller's deadline, and its reply into the REPLY. A get that ends
with no reply while the instance's token lives is zenoh's discovery race: it is
sent again (every RETRY_S) until the deadline. Once the token is gone (the
instance, its bridge or its host died), the caller hears ServiceGone (a reply
of status "failed", which its Client raises).

A get's callbacks run in zenoh's own thread (indirect=False): they decode the
reply and hand it to the caller's inbox (a bounded wait, as any reply's); the
default, a Python thread started for every get, cost about 1.4 ms a call.

Serving side: one queryable takes every call to this host. Its callback thread
sends the call to the local instance from a node of its own (`bridge.calls`,
whose inbox takes only the replies, read by the thread that waits for one), and
if the reply comes within QUICK_S answers the query itself: zenoh -> the
queryable's thread -> the instance -> the same thread -> zenoh. A slower call is
handed to one of a few worker threads, which waits for the rest of its deadline,
so one slow method never holds up the other calls to this host.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import NamedTuple

import msgspec

from ether import EtherError, MalformedMessage, ServiceGone, Timeout
from ether.lowlevel import Decoders, Encoder, Node, Request, matches

from . import _wire as wire

__all__ = ["Calls"]

log = logging.getLogger("Ether")

RETRY_S = 0.01          # a zero-reply get while the token lives: again after this
PROXY_MAX_LENGTH = 256 * 1024
MAX_PROXIES = 128
WORKERS = 4             # threads waiting for the slow answers to calls from other hosts
QUICK_S = 0.002         # a call answered this fast is answered in the queryable's own thread
DEFAULT_TIMEOUT_S = 5.0  # a request that carries no deadline
_request = msgspec.msgpack.Decoder(Request).decode


def _failed(kind: str, error: str, instance: str) -> dict:
    return {"status": "failed", "type": kind, "error": error, "instance": instance}


def _split(topic: str) -> tuple[str, str]:
    """service:<target>.<method> -> (target, method)."""
    target, _, method = topic[len("service:"):].rpartition(".")
    return target, method


class Proxy:
    """The local stand-in of one remote instance."""

    def __init__(self, calls: "Calls", host: str, instance: str, topics: frozenset[str]):
        self.calls, self.host, self.instance, self.topics = calls, host, instance, topics
        self.name = f"{instance}@{host}"
        self.node = Node(calls.session, self.name, max_length=PROXY_MAX_LENGTH)
        self.node.describe(f"bridge proxy of {self.name}")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.node.serve, kwargs={"owner_check": False,
                                                                       "stop": self.stop},
                                       name=f"ether-proxy-{self.name}", daemon=True)

    def serve(self, pairs: tuple, handler_of) -> frozenset:
        """Answer each (local, other) topic pair with handler_of(other), in place: a
        local topic kept across a change of the site view is never without a server
        (closing and remaking the proxy left a gap where a call found no instance).
        Returns the topics it serves no more, for unserve() once every proxy
        serves its new ones (a topic that moves to another proxy has a server
        throughout)."""
        keep = frozenset(local for local, _ in pairs)
        for local, other in pairs:
            self.node.add_service(local, handler_of(other), replace=True)
        stale, self.topics = self.topics - keep, keep
        return stale

    def unserve(self, topics) -> None:
        for topic in topics:
            self.node.remove_service(topic)

    def forwarder(self, remote_topic: str):
        return lambda env: self._call(env, remote_topic)

    def _call(self, envelope, remote_topic: str) -> None:
        raw = self.node.inline_payload(envelope) if envelope.holds else envelope.payload
        try:
            request = _request(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise MalformedMessage(f"a malformed request ({exc})") from None
        if request.deadline_ns is not None:
            deadline = time.monotonic() + (request.deadline_ns - time.time_ns()) / 1e9
        else:
            deadline = time.monotonic() + DEFAULT_TIMEOUT_S
        _Call(self, request, envelope.topic, remote_topic, deadline).send()

    def close(self) -> None:
        self.stop.set()
        self.node.wake()
        if self.thread is not threading.current_thread():
            self.thread.join(2.0)
        self.node.close()


class _Call:
    """One request on its way to another host; its reply, or its failure, back."""

    def __init__(self, proxy: Proxy, request: Request, topic: str, remote_topic: str, deadline: float):
        self.proxy, self.request, self.topic, self.remote_topic = proxy, request, topic, remote_topic
        self.deadline = deadline
        self.body: dict | None = None
        self.error: str | None = None
        self.bridges: frozenset | None = None  # the other host's bridges when it was sent
        self.answered = False

    def send(self) -> None:
        calls = self.proxy.calls
        if self.bridges is None:
            self.bridges = calls.site.bridges_of(self.proxy.host)
            calls.track(self)
        left = self.deadline - time.monotonic()
        if left <= 0:
            return calls.untrack(self)  # the caller gave up already
        zenoh = calls.zenoh
        key = calls.keys.call(self.proxy.host, self.proxy.instance, self.remote_topic)
        try:
            # indirect=False: the reply is handled in zenoh's own thread. The default
            # runs a get's callbacks on a Python thread of its own, started per get:
            # about 1.4 ms a call on this VM, against 0.1 ms (a one-session check).
            calls.z.get(key, zenoh.handlers.Callback(self._on_reply, self._on_done, indirect=False),
                        payload=wire.query_payload(left, self.request.params), timeout=left + 0.5,
                        target=zenoh.QueryTarget.ALL, consolidation=zenoh.ConsolidationMode.NONE,
                        priority=zenoh.Priority.INTERACTIVE_HIGH,
                        express=True, congestion_control=zenoh.CongestionControl.BLOCK)
        except Exception as exc:  # zenoh is closing
            self._answer(_failed("ServiceGone", f"could not call {self.proxy.name}: {exc}",
                                 self.proxy.name))

    def _on_reply(self, reply) -> None:
        sample = reply.ok
        data = sample.payload.to_bytes() if sample is not None else reply.err.payload.to_bytes()
        try:
            body = wire.read_reply(data, self.proxy.calls.decoders)
        except MalformedMessage as exc:
            self.error = str(exc)
            return
        # Answered at the first reply, not at the query's end (consolidation NONE:
        # zenoh hands each reply over as it comes).
        self.body = body
        body["instance"] = body.get("instance") or self.proxy.name
        self._answer(body)

    def _on_done(self) -> None:
        proxy = self.proxy
        if self.body is not None or self.answered:
            return
        if self.error is not None:
            return self._answer(_failed("ServiceGone", f"{proxy.name} sent a malformed reply: "
                                                       f"{self.error}", proxy.name))
        if time.monotonic() >= self.deadline:
            return proxy.calls.untrack(self)  # no reply in time: the caller's own Timeout says so
        site = proxy.calls.site
        if site.serves(proxy.host, proxy.instance, self.remote_topic) and \
                site.bridges_of(proxy.host) & self.bridges and not proxy.stop.is_set():
            # zenoh's discovery race: the queryable is not there yet; try again.
            timer = threading.Timer(RETRY_S, self.send)
            timer.daemon = True
            timer.start()
            return
        self._answer(_failed("ServiceGone", f"{proxy.name} is gone (the instance, its host's "
                                            f"bridge or the host left) before it replied", proxy.name))

    def _answer(self, body: dict) -> None:
        if not self.proxy.calls.untrack(self):
            return  # answered already (its bridge's death and its own end can race)
        try:
            self.proxy.node.reply(self.request, self.topic, body)
        except EtherError as exc:
            log.warning("bridge: could not hand the reply of %s to %r: %s", self.proxy.name,
                        self.request.reply_to, exc)


class _Served(NamedTuple):
    """A call from another host, sent to its local instance."""
    instance: str
    qualified: str
    what: str
    sender: object
    request_id: int
    timeout: float
    deadline: float


class Calls:
    def __init__(self, member_node, session, zsession, zenoh, keys, site, export: list[str]):
        self.node, self.session, self.z, self.zenoh = member_node, session, zsession, zenoh
        self.keys, self.site, self.export = keys, site, list(export)
        self.decoders = Decoders(None)        # replies from other hosts: inline arrays only
        self._encode = Encoder().encode       # replies to other hosts: arrays inline
        self.proxies: dict[str, Proxy] = {}
        self.caller: Node | None = None      # made by start()
        self._wanted: dict[str, tuple] = {}   # proxy name -> its (local, remote) topic pairs
        self._queries: queue.Queue = queue.Queue(256)
        self._senders: dict[str, object] = {}
        self._senders_lock = threading.Lock()
        self.stop = threading.Event()
        self.served = 0
        self.refused = 0
        self._queryable = None
        self._pending: set[_Call] = set()     # calls on their way to another host
        self._pending_lock = threading.Lock()
        self._workers = [threading.Thread(target=self._work, name=f"ether-bridge-call-{i}",
                                          daemon=True) for i in range(WORKERS)]

    def start(self) -> None:
        # Calls from other hosts go to the local instances from this node: its inbox
        # takes their replies only, read by the thread that waits for one (no hand-off).
        self.caller = Node(self.session, f"{self.node.name}.calls")
        for worker in self._workers:
            worker.start()
        self._queryable = self.z.declare_queryable(self.keys.calls_mine, self._on_query,
                                                   allowed_origin=self.zenoh.Locality.REMOTE)

    # ---- the calling side (the control thread) ----

    def update(self, local_instances: set[str]) -> None:
        """Make the proxies the other hosts' request tokens call for."""
        remote: dict[str, dict[str, set[str]]] = {}    # instance -> host -> topics
        for host, view in self.site.others().items():
            if not view.bridges:
                continue
            for instance, topics in view.requests.items():
                remote.setdefault(instance, {})[host] = set(topics)
        wanted: dict[str, tuple] = {}
        for instance, hosts in remote.items():
            alone = instance not in local_instances and len(hosts) == 1
            for host, topics in hosts.items():
                pairs = []
                for topic in sorted(topics):
                    if topic.startswith("sync:"):
                        pairs.append((topic, topic))
                        continue
                    if not topic.startswith("service:"):
                        continue
                    target, method = _split(topic)
                    if target == instance:
                        pairs.append((f"service:{instance}@{host}.{method}", topic))
                        if alone:
                            pairs.append((topic, topic))
                    else:
                        pairs.append((topic, f"service:{instance}.{method}"))
                if pairs:
                    wanted[f"{instance}@{host}"] = (host, instance, tuple(pairs))
            if instance not in local_instances and len(hosts) > 1:
                methods = {_split(t)[1] for ts in hosts.values() for t in ts
                           if t.startswith("service:") and _split(t)[0] == instance}
                if methods:
                    names = ", ".join(f"{instance}@{h}" for h in sorted(hosts))
                    wanted[f"{instance}@*"] = ("*", instance, tuple(
                        (f"service:{instance}.{m}", names) for m in sorted(methods)))
        # What is wanted is served first, then what is not is let go: a topic
        # that moves between proxies (a bare name that turns ambiguous, or back)
        # has at least one server all along.
        gone = [n for n in self.proxies if n not in wanted]
        stale = []
        for name, (host, instance, pairs) in wanted.items():
            proxy = self.proxies.get(name)
            if proxy is None:
                if len(self.proxies) - len(gone) >= MAX_PROXIES:
                    log.warning("bridge: %d remote instances have proxies, the most it makes; "
                                "%s has none", MAX_PROXIES, name)
                    continue
                proxy = Proxy(self, host, instance, frozenset())
                try:
                    proxy.serve(pairs, self._handler_of(proxy, host))
                except Exception:
                    proxy.close()
                    raise
                proxy.thread.start()
                self.proxies[name] = proxy
            elif self._wanted.get(name) == wanted[name]:
                continue
            else:
                stale.append((proxy, proxy.serve(pairs, self._handler_of(proxy, host))))
            self._wanted[name] = wanted[name]
        for proxy, topics in stale:
            proxy.unserve(topics)
        for name in gone:
            self.proxies.pop(name).close()
            self._wanted.pop(name, None)

    def _handler_of(self, proxy: Proxy, host: str):
        if host == "*":
            return lambda names: self._ambiguous(proxy, names)
        return proxy.forwarder

    def _ambiguous(self, proxy: Proxy, names: str):
        def serve(envelope) -> None:
            request = _request(envelope.payload)
            proxy.node.reply(request, envelope.topic, _failed(
                "ServiceNotFound", f"{proxy.instance!r} is an instance on several hosts "
                f"({names}): name one, e.g. {names.split(', ')[0]!r}", proxy.name))
        return serve

    # ---- the serving side ----

    def _on_query(self, query) -> None:
        """The queryable's callback thread: send the call to the local instance and,
        if it answers within QUICK_S, reply from here; a slower call is handed to a
        worker, which waits for the rest, so one slow method never holds up the
        others."""
        try:
            started = self._begin(query)
            if isinstance(started, dict):
                return self._respond(query, started)
            body = self._finish(started, QUICK_S)
            if body is not None:
                return self._respond(query, body)
        except Exception as exc:
            log.error("bridge: could not answer a call on %s: %s", query.key_expr, exc)
            query.drop()
            return
        try:
            self._queries.put((query, started), timeout=1.0)
        except queue.Full:
            self._respond(query, _failed("Timeout", "the bridge is busy", ""))

    def _respond(self, query, body: dict) -> None:
        try:
            query.reply(query.key_expr, self._encode(body))
        except Exception as exc:
            log.error("bridge: could not answer a call on %s: %s", query.key_expr, exc)
        finally:
            query.drop()

    def _work(self) -> None:
        while not self.stop.is_set():
            item = self._queries.get()   # no timeout: an idle bridge stays asleep
            if item is None:
                break   # close()
            query, started = item
            try:
                body = self._finish(started, None)
            except Exception as exc:
                log.error("bridge: could not answer a call on %s: %s", query.key_expr, exc)
                query.drop()
                continue
            self._respond(query, body)

    def _begin(self, query):
        """Check a call and send it to its instance: its _Served, or the answer
        already (a refusal)."""
        try:
            instance, topic = self.keys.call_of(str(query.key_expr))
            timeout, params = wire.read_query(b"" if query.payload is None else query.payload.to_bytes())
        except (ValueError, MalformedMessage) as exc:
            self.refused += 1
            self.node.rejections.report("?", "malformed call", str(exc),
                                        f"refused a call on {query.key_expr}: {exc}")
            return _failed("ServiceNotFound", f"a malformed call: {exc}", "")
        qualified = f"{instance}@{self.keys.host}"
        name = topic.split(":", 1)[-1]
        if not topic.startswith(("service:", "sync:")) or "@" in instance or \
                not any(matches(p, name) for p in self.export):
            return _failed("ServiceNotFound", f"{topic!r} of {qualified} is not served to other hosts",
                           qualified)
        what = f"{topic!r} of {qualified}"
        try:
            sender = self._sender(instance)
            request_id, _ = self.caller.request(topic, params, sender=sender, timeout=timeout, what=what)
        except EtherError as exc:  # no such inbox, it closed
            self._forget(instance)
            return _failed("ServiceNotFound", f"{qualified}: {exc}", qualified)
        return _Served(instance, qualified, what, sender, request_id, timeout,
                       time.monotonic() + timeout)

    def _finish(self, served: "_Served", wait_s: float | None) -> dict | None:
        """The answer to a call sent to its instance, waiting up to wait_s (None: to
        its deadline); None if it has not come within wait_s."""
        left = served.deadline - time.monotonic()
        quick = wait_s is not None and wait_s < left
        try:
            body = self.caller.wait_reply(served.request_id, wait_s if quick else max(0.0, left),
                                          what=served.what, alive=served.sender.consumer_alive,
                                          keep=quick)
        except ServiceGone:
            self._forget(served.instance)
            return _failed("ServiceGone", f"{served.qualified} died before it replied", served.qualified)
        except Timeout:
            if quick:
                return None
            return _failed("Timeout", f"no reply from {served.qualified} within {served.timeout:g} s",
                           served.qualified)
        except EtherError as exc:  # the session is closing
            return _failed("ServiceGone", f"{served.qualified}: {exc}", served.qualified)
        self.served += 1
        body.pop("id", None)
        body["instance"] = f"{body.get('instance') or served.instance}@{self.keys.host}"
        return body

    def _sender(self, instance: str):
        with self._senders_lock:
            sender = self._senders.get(instance)
            if sender is None or sender.closed:
                sender = self._senders[instance] = self.session.connect(instance)
            return sender

    def _forget(self, instance: str) -> None:
        with self._senders_lock:
            sender = self._senders.pop(instance, None)
        if sender is not None:
            sender.close()

    def statistics(self) -> dict:
        return {"served": self.served, "refused": self.refused, "proxies": sorted(self.proxies)}

    # ---- calls on their way ----

    def track(self, call: _Call) -> None:
        with self._pending_lock:
            self._pending.add(call)

    def untrack(self, call: _Call) -> bool:
        """True for the first caller only: the one that answers the call."""
        with self._pending_lock:
            if call.answered:
                return False
            call.answered = True
            self._pending.discard(call)
            return True

    def bridge_gone(self, host: str) -> None:
        """A bridge of `host` went: the calls sent through it while no bridge that
        was there then is left fail now with ServiceGone. Without this a call whose
        query zenoh keeps open after its peer died waits to its caller's timeout, and
        one retried while the bridge restarts would reach the new bridge's instance."""
        alive = self.site.bridges_of(host)
        with self._pending_lock:
            gone = [c for c in self._pending if c.proxy.host == host and not (c.bridges & alive)]
        for call in gone:
            call._answer(_failed("ServiceGone", f"{call.proxy.name} is gone (its host's bridge "
                                                f"left) before it replied", call.proxy.name))

    def close(self) -> None:
        self.stop.set()
        if self._queryable is not None:
            self._queryable.undeclare()
        for proxy in self.proxies.values():
            proxy.close()
        self.proxies.clear()
        for _ in self._workers:   # wake the idle ones; a busy one sees stop
            try:
                self._queries.put(None, timeout=0.1)
            except queue.Full:
                break
        for worker in self._workers:
            worker.join(2.0)
        if self.caller is not None:
            self.caller.close()
