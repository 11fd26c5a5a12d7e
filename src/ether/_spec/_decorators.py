"""Decorators that only annotate.

Each decorator attaches one frozen MethodSpec to the function (merged with what
other Ether decorators attached before) and returns the same function. The class
stays a plain class: nothing happens until an instance is run by Ether.
All work with or without parentheses and stack in any order.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from .._node._delivery import (DEFAULT_DELIVERY, DEFAULT_POLICY, DEFAULT_TIMEOUT_S, POLICIES,  # noqa: F401
                               check_delivery, describe_delivery)
from .._node._topics import check_topic

SPEC_ATTR = "__ether__"
LIFECYCLE = ("init", "cleanup", "save_all", "shutdown")
HEALTH = "health"   # @ether_health: not a phase the main runs; the watchdog calls it



@dataclasses.dataclass(frozen=True, slots=True)
class MethodSpec:
    """What the Ether decorators said about one method.

    A topic of None stands for the method's default topic, "ClassName.method_name",
    which is only known once the method is looked up on its class.

    `delivery` holds (topic, policy, timeout) for each subscription whose delivery
    is not the default (block, 5 s); `delivery_of(topic)` reads it.
    """
    subs: tuple[str | None, ...] = ()
    pubs: tuple[str | None, ...] = ()
    lifecycle: frozenset[str] = frozenset()
    service: str | None = None          # "get" or "save": answers requests
    syncs: tuple[str, ...] = ()         # ether.sync(topic) calls it
    delivery: tuple[tuple[str | None, str, float], ...] = ()

    def delivery_of(self, topic: str | None) -> tuple[str, float]:
        """(policy, timeout) of the subscription to topic."""
        for t, policy, timeout in self.delivery:
            if t == topic:
                return policy, timeout
        return DEFAULT_DELIVERY


def spec_of(func) -> MethodSpec | None:
    """The MethodSpec attached to func, or None."""
    return getattr(func, SPEC_ATTR, None)


def _attach(func, service: str | None = None, **extend) -> Callable:
    spec = spec_of(func) or MethodSpec()
    changes = {}
    if service is not None:
        if spec.service not in (None, service):
            raise TypeError(f"{getattr(func, '__qualname__', func)} cannot be both ether_{spec.service} "
                            f"and ether_{service}")
        changes["service"] = service
    for field, values in extend.items():
        current = getattr(spec, field)
        if isinstance(current, frozenset):
            changes[field] = current | frozenset(values)
        else:
            changes[field] = current + tuple(v for v in values if v not in current)
    setattr(func, SPEC_ATTR, dataclasses.replace(spec, **changes))
    return func


def _subscribe(f, topic=None, policy=DEFAULT_POLICY, timeout=DEFAULT_TIMEOUT_S) -> Callable:
    where = f"ether_sub on {getattr(f, '__qualname__', f)}"
    delivery = check_delivery(policy, timeout, where)
    spec = spec_of(f)
    if spec is not None and topic in spec.subs and spec.delivery_of(topic) != delivery:
        raise ValueError(
            f"{where}: topic {describe_topic(topic)} is already subscribed with "
            f"{describe_delivery(spec.delivery_of(topic))}, not {describe_delivery(delivery)}: "
            f"one method has one subscription per topic")
    _attach(f, subs=(topic,))
    if delivery != DEFAULT_DELIVERY:
        _attach(f, delivery=((topic,) + delivery,))
    return f


def describe_topic(topic: str | None) -> str:
    return repr(topic) if topic is not None else "the default topic"


def _check_topic(name: str, topic) -> None:
    if topic is not None and (not isinstance(topic, str) or not topic or topic != topic.strip()):
        raise TypeError(f"{name}(): topic must be a non-empty str without surrounding spaces, not {topic!r}")
    if topic is not None:  # reserved names; a subscription may be a pattern
        check_topic(topic, f"{name}()", pattern=name == "ether_sub")


def _decorator(name: str, allowed: tuple[str, ...], apply: Callable[..., Callable], doc: str):
    """Build a decorator usable as @name, @name() or @name(**kwargs)."""

    def deco(func=None, /, **kwargs):
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            valid = ", ".join(allowed) if allowed else "none"
            raise TypeError(f"{name}() got unknown argument(s) {', '.join(unknown)}; valid: {valid}")
        if "topic" in kwargs:
            _check_topic(name, kwargs["topic"])

        def wrap(f):
            if not callable(f):
                hint = " (pass the topic by name: topic=...)" if isinstance(f, str) else ""
                raise TypeError(f"{name} decorates a function, not {type(f).__name__}{hint}")
            return apply(f, **kwargs)

        return wrap if func is None else wrap(func)

    deco.__name__ = deco.__qualname__ = name
    deco.__doc__ = doc
    return deco


ether_pub = _decorator(
    "ether_pub", ("topic",),
    lambda f, topic=None: _attach(f, pubs=(topic,)),
    "Publish the method's result (a dict, msgspec Struct, pydantic model, dataclass or\n"
    "None) to `topic` (default: 'ClassName.method_name') whenever Ether runs it.")

ether_sub = _decorator(
    "ether_sub", ("topic", "policy", "timeout"), _subscribe,
    "Call the method for each message on `topic` (default: 'ClassName.method_name');\n"
    "the message's keys become its keyword arguments, validated against its type hints.\n"
    "When this instance's inbox is full, a publisher waits up to `timeout` seconds\n"
    "(default 5.0) and then raises InboxFull (policy='block', the default), or drops the\n"
    "message for this instance and counts it in its ether.statistics() (policy='drop').")

ether_start = _decorator(
    "ether_start", (),
    lambda f: _attach(f, subs=("start",)),
    "Short for @ether_sub(topic='start'): called by ether.start().")

ether_get = _decorator(
    "ether_get", (), lambda f: _attach(f, service="get"),
    "Serve requests: ether.get('ClassName' or 'instance', 'method', params={...})\n"
    "calls it and returns its result to the caller.")

ether_save = _decorator(
    "ether_save", (), lambda f: _attach(f, service="save"),
    "Serve requests: ether.save(...) calls it and returns {'status': 'success',\n"
    "'result': ...} or {'status': 'error', 'error': ...}.")

ether_sync = _decorator(
    "ether_sync", ("topic",),
    lambda f, topic=None: _attach(f, syncs=(topic,) if topic else ()),
    "Called by ether.sync(topic, **params) in every instance; ether.sync returns\n"
    "when all of them have finished.")

ether_init = _decorator(
    "ether_init", (), lambda f: _attach(f, lifecycle=("init",)),
    "Called once the instance has joined the session.")

ether_cleanup = _decorator(
    "ether_cleanup", (), lambda f: _attach(f, lifecycle=("cleanup",)),
    "Called at shutdown, after the save_all handlers.")

ether_save_all = _decorator(
    "ether_save_all", (), lambda f: _attach(f, lifecycle=("save_all",)),
    "Called by ether.save_all() and first thing at shutdown: persist what must survive.")

ether_shutdown = _decorator(
    "ether_shutdown", (), lambda f: _attach(f, lifecycle=("shutdown",)),
    "Called last at shutdown, after cleanup.")

ether_health = _decorator(
    "ether_health", (), lambda f: _attach(f, lifecycle=(HEALTH,)),
    "Called every health_interval_s (config) in the instance's watchdog thread, while\n"
    "handlers run: return False (or a str, the reason) or raise, and the instance is\n"
    "restarted by its policy. It must not wait for the handlers.")

