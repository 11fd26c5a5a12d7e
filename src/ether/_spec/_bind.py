"""Binding an object to a node: its pub methods publish (also when called
directly, e.g. from a sensor loop), its handlers receive their topics, its
services answer requests. Argument decoders are bound to the node's session, so
arrays in messages resolve through that session's arena reader."""
from __future__ import annotations

import logging
import traceback
from typing import Any

from .. import _errors as errors
from .._node import _codec as codec
from .._node._publisher import publishing_call
from .._node._topics import service_topic, sync_topic, with_topic
from . import _introspect as introspect

__all__ = ["bind", "publishing"]

log = logging.getLogger("Ether")


def publishing(method, topics: tuple[str, ...], node):
    """Wrap a bound pub method so every call also publishes its result."""
    message_of = introspect.message_of
    if len(topics) == 1:  # the usual case: Node.publish's work done in the call itself
        return publishing_call(node, method, topics[0], message_of)
    publish = node.publish

    def call(*args, **kwargs):
        result = method(*args, **kwargs)
        payload = result if type(result) is dict else message_of(result)
        for topic in topics:
            try:
                publish(topic, payload)
            except errors.InboxFull as exc:
                raise with_topic(exc, topic) from None
        return result

    call.__name__ = getattr(method, "__name__", "method")
    call.__wrapped__ = method
    return call


def bind(obj: Any, spec: introspect.ClassSpec, node, instance: str) -> None:
    """Make obj live in the session: its pub methods publish (also when called
    directly, e.g. from a sensor loop), and its handlers receive their topics."""
    ext_hook = node.decoders.ext_hook  # arrays resolve through this node's session
    for name, topics in spec.pubs.items():
        setattr(obj, name, publishing(getattr(obj, name), topics, node))
    node.advertise(topic for topics in spec.pubs.values() for topic in topics)
    for handler in spec.handlers:
        method = getattr(obj, handler.method)
        for topic in handler.topics:
            arguments = handler.bind_arguments(ext_hook, _misspelt(instance, handler.method, topic))
            policy, timeout = handler.delivery_of(topic)
            node.add_handler(topic, _handler(node, method, handler.method, arguments, topic, instance),
                             policy=policy, timeout=timeout)
    for service in spec.services:
        serve = _server(node, instance, [(getattr(obj, service.method), service.method,
                                          service.bind_arguments(ext_hook))], single=True)
        for target in dict.fromkeys((spec.name, instance)):
            node.add_service(service_topic(target, service.method), serve)
    for topic, services in spec.syncs.items():
        node.add_service(sync_topic(topic), _server(
            node, instance, [(getattr(obj, s.method), s.method, s.bind_arguments(ext_hook))
                             for s in services], single=len(services) == 1))


def _misspelt(instance: str, method: str, topic: str):
    """Warn once per key of a message that matches no parameter of the handler (a
    typo would otherwise silently become the parameter's default)."""
    warned: set[str] = set()

    def on_unknown(keys: list[str], parameters: tuple[str, ...]) -> None:
        for key in keys:
            if key not in warned and len(warned) < 64:
                warned.add(key)
                log.warning("instance %r, %s() on topic %r: message key %r matches no parameter "
                            "and is ignored; the parameters are: %s", instance, method, topic, key,
                            ", ".join(parameters) or "(none)")

    return on_unknown


def _server(node, instance: str, methods_: list, *, single: bool):
    """Answer a request by calling the method(s) with the request's params."""

    def serve(envelope: codec.Envelope) -> None:
        request = codec.request_of(envelope)
        results = {}
        body = {"status": "success", "instance": instance}
        for method, name, arguments in methods_:
            try:
                kwargs = arguments(request.params)
                result = method(**kwargs)
            except introspect.ValidationFailed as exc:
                body.update(status="error", type="ValidationFailed", error=f"invalid params: {exc}")
                break
            except Exception as exc:
                log.error("instance %r, %s() for %r raised:\n%s", instance, name,
                          envelope.topic, traceback.format_exc().rstrip())
                body.update(status="error", type=type(exc).__name__, error=str(exc) or repr(exc))
                break
            results[name] = result
        else:  # every method answered: an @ether_get's one result as it is
            body["result"] = result if single else results
        try:
            node.reply(request, envelope.topic, body)
        except (TypeError, errors.ArenaFull, errors.MessageTooLarge) as exc:
            # A result msgspec cannot encode, or too large for the arena: the caller
            # hears why at once instead of waiting out its timeout.
            node.reply(request, envelope.topic, {
                "status": "error", "instance": instance, "type": type(exc).__name__,
                "error": f"the result cannot be sent: {exc}"})

    return serve


def _handler(node, method, name: str, arguments, topic: str, instance: str):
    where = f"instance {instance!r}, {name}() on topic {topic!r}"
    # Plain fields come as a tuple in the signature's order (cheaper than keywords).
    positional = getattr(arguments, "positional", None)
    decode = positional or arguments
    report = node.rejections.report

    def handle(envelope: codec.Envelope) -> None:
        try:
            args = decode(envelope.payload)
        except introspect.ValidationFailed as exc:
            report(topic, "invalid", str(exc),
                   f"{where}: message {envelope.sender}:{envelope.seq} rejected: {exc}")
            return
        try:
            if positional is not None:
                method(*args)
            else:
                method(**args)
        except Exception as exc:
            report(topic, f"handler raised {type(exc).__name__}", str(exc),
                   f"{where}: the handler raised:\n{traceback.format_exc().rstrip()}")

    return handle
