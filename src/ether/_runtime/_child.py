"""The life of one configured instance in its own process.

The main process (see _supervisor.py) starts this with a LaunchSpec. It joins
the session, imports and constructs the class, binds the decorated methods to
its node, reports "ready" (or "failed", with the traceback), then dispatches
until told to stop, or until the main process dies.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import traceback
from typing import Any

from .._node import _codec as codec
from .. import _errors as errors
from .._spec import _introspect as methods
from .._core._session import Session

log = logging.getLogger("Ether")


@dataclasses.dataclass(frozen=True)
class LaunchSpec:
    session: str
    name: str
    class_path: str
    args: tuple
    kwargs: dict
    sys_path: tuple[str, ...]
    cwd: str
    main_inbox: str
    registry: tuple = ()   # (class_path, method, decorator, kwargs) to apply first


def publishing(method, topics: tuple[str, ...], node):
    """Wrap a bound pub method so every call also publishes its result."""
    publish = node.publish
    message_of = methods.message_of
    only = topics[0] if len(topics) == 1 else None

    def call(*args, **kwargs):
        result = method(*args, **kwargs)
        payload = result if type(result) is dict else message_of(result)
        if only is not None:  # the usual case: one topic, no loop
            try:
                publish(only, payload)
            except errors.InboxFull as exc:
                raise naming_topic(exc, only) from None
            return result
        for topic in topics:
            try:
                publish(topic, payload)
            except errors.InboxFull as exc:
                raise naming_topic(exc, topic) from None
        return result

    call.__name__ = getattr(method, "__name__", "method")
    call.__wrapped__ = method
    return call


def naming_topic(exc: errors.InboxFull, topic: str) -> errors.InboxFull:
    """The InboxFull of a publish (a block subscriber's inbox stayed full), saying
    which topic was being published."""
    return errors.InboxFull(exc.errno, f"publishing to topic {topic!r}: {exc.strerror or exc}")


def bind(obj: Any, spec: methods.ClassSpec, node, instance: str) -> None:
    """Make obj live in the session: its pub methods publish (also when called
    directly, e.g. from a sensor loop), and its handlers receive their topics."""
    for name, topics in spec.pubs.items():
        setattr(obj, name, publishing(getattr(obj, name), topics, node))
    for handler in spec.handlers:
        method = getattr(obj, handler.method)
        for topic in handler.topics:
            policy, timeout = handler.delivery_of(topic)
            node.add_handler(topic, _handler(method, handler, topic, instance),
                             policy=policy, timeout=timeout)
    for service in spec.services:
        serve = _server(node, instance, [(getattr(obj, service.method), service)], single=True)
        for target in dict.fromkeys((spec.name, instance)):
            node.add_service(service_topic(target, service.method), serve)
    for topic, services in spec.syncs.items():
        node.add_service(sync_topic(topic), _server(
            node, instance, [(getattr(obj, s.method), s) for s in services], single=len(services) == 1))


def service_topic(target: str, method: str) -> str:
    """Where requests for target.method go (target: a class or an instance name)."""
    return f"service:{target}.{method}"


def sync_topic(topic: str) -> str:
    return f"sync:{topic}"


def _server(node, instance: str, methods_: list, *, single: bool):
    """Answer a request by calling the method(s) with the request's params."""

    def serve(envelope: codec.Envelope) -> None:
        request = codec.request_of(envelope)
        results = {}
        body = {"status": "success", "instance": instance}
        for method, service in methods_:
            try:
                kwargs = service.arguments(request.params)
                results[service.method] = method(**kwargs)
            except methods.ValidationFailed as exc:
                body.update(status="error", type="ValidationFailed", error=f"invalid params: {exc}")
                break
            except Exception as exc:
                log.error("instance %r, %s() for %r raised:\n%s", instance, service.method,
                          envelope.topic, traceback.format_exc().rstrip())
                body.update(status="error", type=type(exc).__name__, error=str(exc) or repr(exc))
                break
        if body["status"] == "success":
            body["result"] = next(iter(results.values())) if single else results
        try:
            node.reply(request, envelope.topic, body)
        except TypeError as exc:  # a result msgspec cannot encode
            node.reply(request, envelope.topic, {
                "status": "error", "instance": instance, "type": "TypeError",
                "error": f"the result cannot be sent: {exc}"})

    return serve


def _handler(method, handler: methods.Handler, topic: str, instance: str):
    where = f"instance {instance!r}, {handler.method}() on topic {topic!r}"
    # Plain fields come as a tuple in the signature's order (cheaper than keywords).
    positional = getattr(handler.arguments, "positional", None)
    decode = positional or handler.arguments

    def handle(envelope: codec.Envelope) -> None:
        try:
            args = decode(envelope.payload)
        except methods.ValidationFailed as exc:
            log.error("%s: message %s:%d rejected: %s", where, envelope.sender, envelope.seq, exc)
            return
        try:
            if positional is not None:
                method(*args)
            else:
                method(**args)
        except Exception:
            log.error("%s: the handler raised:\n%s", where, traceback.format_exc().rstrip())

    return handle


def run(spec: LaunchSpec) -> None:
    """Process entry point."""
    # Ctrl-C in a terminal reaches the whole process group: the main process
    # orchestrates the shutdown, so instances leave SIGINT to it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from . import _stdio as _output
    _output.install()  # whole lines, one write each, as they are printed
    os.chdir(spec.cwd)
    sys.path[:0] = [p for p in spec.sys_path if p not in sys.path]
    from . import _logs
    _logs.configure_process_logging(spec.session, spec.name, console=True)
    session = Session.open(spec.session)
    node = None
    try:
        from .._spec._importer import import_class
        from .._node._node import Node
        node = Node(session, spec.name)
        from .._spec import _registry
        _registry.apply(spec.registry, search_path=list(spec.sys_path))
        cls = import_class(spec.class_path, search_path=list(spec.sys_path), instance=spec.name)
        spec_of_class = methods.introspect(cls)
        obj = cls(*spec.args, **spec.kwargs)
        bind(obj, spec_of_class, node, spec.name)
    except BaseException as exc:
        detail = "".join(traceback.format_exception(exc)).rstrip()
        try:
            if node is None:
                raise
            node.send_control(spec.main_inbox, "failed", {"instance": spec.name, "error": detail})
        except BaseException:
            print(f"Ether instance {spec.name!r} failed to start:\n{detail}", file=sys.stderr)
        session.close()
        os._exit(1)
    from .._facade import ether
    ether._node = node  # ether.pub() from user code in this process
    lifecycle = Lifecycle(obj, spec_of_class, node, spec)
    node.on_control = lifecycle.on_control
    node.send_control(spec.main_inbox, "ready", {"instance": spec.name, "pid": os.getpid()})
    try:
        node.serve()
    finally:
        node.close()
        session.close()
        sys.stdout.flush()
        sys.stderr.flush()


class Lifecycle:
    """Answers the main process's control messages."""

    def __init__(self, obj, spec: methods.ClassSpec, node, launch: LaunchSpec):
        self.obj, self.spec, self.node, self.launch = obj, spec, node, launch

    def on_control(self, envelope: codec.Envelope) -> None:
        command = envelope.topic
        body = codec.payload_dict(envelope)
        reply = {"instance": self.launch.name, "request": body.get("request")}
        if command == "drain":
            reply.update(published=self.node.published, handled=self.node.handled)
        elif command == "lifecycle":
            reply["errors"] = self.run_lifecycle(body["phase"])
        elif command == "stop":
            self.node.running = False
            return
        else:
            log.error("instance %r: unknown control message %r", self.launch.name, command)
            return
        self.node.send_control(self.launch.main_inbox, command + "-ack", reply)

    def run_lifecycle(self, phase: str) -> list[str]:
        failures = []
        for name in self.spec.lifecycle.get(phase, ()):
            try:
                getattr(self.obj, name)()
            except Exception:
                text = traceback.format_exc().rstrip()
                log.error("instance %r: %s handler %s() raised:\n%s", self.launch.name, phase, name, text)
                failures.append(f"{name}(): {text.splitlines()[-1]}")
        return failures
