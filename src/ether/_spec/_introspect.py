"""Introspection: what an annotated class offers, and how each message becomes
the keyword arguments of its handler.

A handler's arguments are decoded straight from the message's MessagePack
payload into a msgspec Struct built from the method's signature: validation,
coercion (``strict=False``: "5" becomes 5 for an int) and defaults happen in
msgspec's C code, once per message.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from typing import Any, Callable

import msgspec

from .. import _errors as errors
from .._errors import MalformedMessage, ValidationFailed
from .._node import _codec as codec
from .._node._delivery import DEFAULT_DELIVERY, describe_delivery
from .._node._topics import default_topic
from ._decorators import HEALTH, LIFECYCLE, spec_of

__all__ = ["Handler", "Service", "ClassSpec", "introspect", "argument_decoder", "message_of",
           "ValidationFailed"]

# Without a session's reader: inline arrays decode, arena handles are refused.
_INLINE_ONLY = codec.make_ext_hook(None)


# Structs, not dataclasses: made in C at import (each dataclass built and compiled
# its methods, about 0.5-0.7 ms, on the first tap's path; layers.md).
class Handler(msgspec.Struct, frozen=True):
    """One method that receives messages."""
    method: str                               # attribute name on the class
    topics: tuple[str, ...]
    pubs: tuple[str, ...]                     # where its result goes, if anywhere
    arguments: Callable[[Any], dict]          # payload (bytes / Raw) -> kwargs (inline arrays only)
    # topic -> (policy, timeout) where not the default (block, 5 s)
    delivery: dict[str, tuple[str, float]] = msgspec.field(default_factory=dict)
    func: Callable | None = None              # the function, for decoders bound to a session
    where: str = ""
    bound: bool = True                        # its first parameter is the instance

    def bind_arguments(self, ext_hook, on_unknown=None) -> Callable[[Any], dict]:
        """The decoder of this handler's arguments whose arrays come through ext_hook
        (a session's arena reader); on_unknown: see argument_decoder."""
        return argument_decoder(self.func, self.where, ext_hook, bound=self.bound, on_unknown=on_unknown)

    def delivery_of(self, topic: str) -> tuple[str, float]:
        """(policy, timeout) of this handler's subscription to topic."""
        return self.delivery.get(topic, DEFAULT_DELIVERY)


class Service(msgspec.Struct, frozen=True):
    """One method that answers requests (ether_get / ether_save) or syncs."""
    method: str
    kind: str                                 # "get", "save" or "sync"
    arguments: Callable[[Any], dict]
    func: Callable | None = None
    where: str = ""
    bound: bool = True

    def bind_arguments(self, ext_hook) -> Callable[[Any], dict]:
        return argument_decoder(self.func, self.where, ext_hook, bound=self.bound)


class ClassSpec(msgspec.Struct, frozen=True):
    """Everything the Ether decorators say about one class."""
    name: str
    handlers: tuple[Handler, ...]
    pubs: dict[str, tuple[str, ...]]          # method -> topics its result goes to
    lifecycle: dict[str, tuple[str, ...]]     # "init"/"cleanup"/.../"health" -> methods
    services: tuple[Service, ...] = ()
    syncs: dict[str, tuple[Service, ...]] = msgspec.field(default_factory=dict)

    def topics(self) -> list[str]:
        seen: dict[str, None] = {}
        for h in self.handlers:
            for t in h.topics:
                seen.setdefault(t, None)
        return list(seen)


def introspect(cls: type) -> ClassSpec:
    """Read the Ether annotations of cls (including inherited methods)."""
    handlers, pubs, services = [], {}, []
    syncs: dict[str, list[Service]] = {}
    lifecycle: dict[str, list[str]] = {k: [] for k in (*LIFECYCLE, HEALTH)}
    for name, func, bound in _annotated_functions(cls):
        spec = spec_of(func)
        resolve = lambda t: t if t is not None else default_topic(cls.__name__, name)  # noqa: E731
        out = tuple(dict.fromkeys(resolve(t) for t in spec.pubs))
        if out:
            pubs[name] = out
        if spec.subs:
            topics = tuple(dict.fromkeys(resolve(t) for t in spec.subs))
            delivery = {resolve(t): spec.delivery_of(t) for t in spec.subs
                        if spec.delivery_of(t) != DEFAULT_DELIVERY}
            where = f"{cls.__name__}.{name}"
            handlers.append(Handler(name, topics, out, argument_decoder(func, where, bound=bound),
                                    delivery, func, where, bound))
        for kind in spec.lifecycle:
            lifecycle[kind].append(name)
        if spec.service or spec.syncs:
            where = f"{cls.__name__}.{name}"
            arguments = argument_decoder(func, where, bound=bound)
            if spec.service:
                services.append(Service(name, spec.service, arguments, func, where, bound))
            for topic in spec.syncs:
                syncs.setdefault(topic, []).append(Service(name, "sync", arguments, func, where, bound))
    _check_delivery(cls.__name__, handlers)
    return ClassSpec(cls.__name__, tuple(handlers), pubs,
                     {k: tuple(v) for k, v in lifecycle.items()}, tuple(services),
                     {k: tuple(v) for k, v in syncs.items()})


def _check_delivery(cls_name: str, handlers: list[Handler]) -> None:
    """An instance's inbox has one subscription per topic: its handlers of one topic
    must agree on the policy and timeout."""
    first: dict[str, Handler] = {}
    for h in handlers:
        for topic in h.topics:
            other = first.setdefault(topic, h)
            if other.delivery_of(topic) != h.delivery_of(topic):
                raise errors.ConfigError(
                    f"class {cls_name}: {other.method}() and {h.method}() both subscribe to topic "
                    f"{topic!r}, with {describe_delivery(other.delivery_of(topic))} and "
                    f"{describe_delivery(h.delivery_of(topic))}; an instance has one subscription "
                    f"per topic: give both the same policy and timeout")


def _annotated_functions(cls: type):
    seen = set()
    for klass in cls.__mro__:
        for name, value in vars(klass).items():
            if name in seen:
                continue
            seen.add(name)
            func = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
            if callable(func) and spec_of(func) is not None:
                # Python binds a method's first parameter (the instance, or the class
                # of a classmethod) whatever its name; a staticmethod has none.
                yield name, func, not isinstance(value, staticmethod)


def _is_pydantic_model(t) -> bool:
    return isinstance(t, type) and hasattr(t, "model_validate") and hasattr(t, "model_fields")


def _field(name: str, annotation, default):
    if default is inspect.Parameter.empty:
        return (name, annotation)
    if isinstance(default, (list, dict, set, bytearray)):
        return (name, annotation, msgspec.field(default_factory=lambda d=default: type(d)(d)))
    return (name, annotation, default)


def _plan(func, where: str, bound: bool | None, watching: bool) -> tuple:
    """What argument_decoder needs of func that does not depend on the session:
    (fields, models, arrays, takes_kwargs, in_order, struct, lenient_struct or None).
    Cached: the type hints, the signature and msgspec's struct types cost about a
    millisecond per handler, and every tap introspects each class, and each
    instance binds its own (a forked instance inherits the main's cache)."""
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # unresolvable forward references: validate nothing rather than fail
        hints = {}
    params = list(inspect.signature(func).parameters.values())
    if bound is None:
        bound = bool(params) and params[0].name in ("self", "cls")
    if bound and params and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        params = params[1:]
    fields, models, arrays, takes_kwargs = [], {}, set(), False
    in_order = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
    for p in params:
        if p.kind is p.VAR_KEYWORD:
            takes_kwargs = True
            continue
        if p.kind is p.VAR_POSITIONAL:
            continue
        if p.kind is p.POSITIONAL_ONLY:
            raise TypeError(f"{where}: positional-only parameter {p.name!r} cannot receive a message field")
        annotation = hints.get(p.name, Any)
        if _is_pydantic_model(annotation):
            models[p.name] = annotation  # msgspec hands over the raw map; pydantic validates it
            annotation = Any
        elif _is_ndarray(annotation):
            arrays.add(p.name)  # decoded by the extension hook, checked below
            annotation = Any
        elif not _msgspec_can_check(annotation):
            annotation = Any  # a type msgspec cannot check: accept any value for this field
        fields.append(_field(p.name, annotation, p.default))
    watch = watching and not takes_kwargs
    struct = msgspec.defstruct(f"{where}.arguments", fields, kw_only=True, forbid_unknown_fields=watch)
    lenient_struct = msgspec.defstruct(f"{where}.arguments", fields, kw_only=True) if watch else None
    return tuple(fields), models, frozenset(arrays), takes_kwargs, in_order, struct, lenient_struct


_cached_plan = functools.lru_cache(maxsize=1024)(_plan)


def argument_decoder(func, where: str, ext_hook=None, *, bound: bool | None = None,
                     on_unknown: Callable[[list[str], tuple[str, ...]], None] | None = None
                     ) -> Callable[[Any], dict]:
    """A function turning a MessagePack payload (a map) into func's keyword arguments;
    arrays in it decode through ext_hook (default: inline arrays only). bound: the
    first positional parameter is the instance (None: if it is named self or cls).

    Keys that match no parameter are ignored (unless func takes **kwargs); with
    on_unknown, they are first handed to on_unknown(keys, parameters), so a
    misspelt key can be reported instead of silently becoming the default. The
    check costs nothing while messages carry only known keys: a strict decoder
    goes first, and only its refusal of an unknown field takes the slow path."""
    ext_hook = ext_hook or _INLINE_ONLY
    try:
        hash(func)
        plan = _cached_plan
    except TypeError:  # a callable object that cannot be a cache key
        plan = _plan
    fields, models, arrays, takes_kwargs, in_order, struct, lenient_struct = plan(
        func, where, bound, on_unknown is not None)
    names = frozenset(f[0] for f in fields)
    watch = lenient_struct is not None
    decode = msgspec.msgpack.Decoder(struct, strict=False, ext_hook=ext_hook).decode
    if watch:
        lenient = msgspec.msgpack.Decoder(lenient_struct, strict=False, ext_hook=ext_hook).decode
        parameters = tuple(f[0] for f in fields)

        def unknown_keys(payload, exc: msgspec.ValidationError):
            """The lenient decoding of a payload the strict decoder refused for its
            unknown keys (reported first); re-raises any other refusal."""
            if "unknown field" not in str(exc):
                raise exc
            try:
                keys = _keys(payload)
            except (msgspec.DecodeError, msgspec.ValidationError):
                raise exc from None
            on_unknown([k for k in keys if k not in names], parameters)
            return lenient(payload)
    asdict = msgspec.structs.asdict
    loose = msgspec.msgpack.Decoder(dict, ext_hook=ext_hook).decode if takes_kwargs else None

    def arguments(payload) -> dict:
        try:
            try:
                decoded = decode(payload)
            except msgspec.ValidationError as exc:
                if not watch:
                    raise
                decoded = unknown_keys(payload, exc)
            kwargs = asdict(decoded)
            for name, model in models.items():
                if kwargs.get(name) is not None:
                    kwargs[name] = model.model_validate(kwargs[name])
            for name in arrays:
                value = kwargs.get(name)
                if value is not None and type(value).__name__ != "ndarray":
                    kwargs[name] = _as_array(name, value)
            if loose is not None:
                for key, value in loose(payload).items():
                    if key not in names:
                        kwargs[key] = value
        except msgspec.ValidationError as exc:
            raise ValidationFailed(_describe(exc)) from None
        except (msgspec.DecodeError, MalformedMessage) as exc:
            raise ValidationFailed(f"malformed message ({exc})") from None
        except ValueError as exc:  # pydantic's ValidationError
            raise ValidationFailed(str(exc).replace("\n", "; ")) from None
        return kwargs

    if in_order and not models and loose is None:
        # Plain fields, in the signature's order: the handler can take them
        # positionally (a tuple, no keyword dict to build and unpack).
        astuple = msgspec.structs.astuple
        array_at = [(i, f[0]) for i, f in enumerate(fields) if f[0] in arrays]

        def positional(payload) -> tuple:
            try:
                try:
                    decoded = decode(payload)
                except msgspec.ValidationError as exc:
                    if not watch:
                        raise
                    decoded = unknown_keys(payload, exc)
                args = astuple(decoded)
                for i, name in array_at:
                    value = args[i]
                    if value is not None and type(value).__name__ != "ndarray":
                        args = args[:i] + (_as_array(name, value),) + args[i + 1:]
                return args
            except msgspec.ValidationError as exc:
                raise ValidationFailed(_describe(exc)) from None
            except (msgspec.DecodeError, MalformedMessage) as exc:
                raise ValidationFailed(f"malformed message ({exc})") from None

        arguments.positional = positional
    return arguments


_keys = msgspec.msgpack.Decoder(dict[str, msgspec.Raw]).decode


def _is_ndarray(t) -> bool:
    return getattr(t, "__module__", "") == "numpy" and getattr(t, "__name__", "") == "ndarray"


def _msgspec_can_check(t) -> bool:
    try:
        msgspec.msgpack.Decoder(t)
        return True
    except TypeError:
        return False


def _as_array(name: str, value):
    """Coerce a list (or scalar) sent for an ndarray parameter, read-only like a received array."""
    import numpy
    try:
        array = numpy.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(f"field {name!r}: expected an array ({exc})") from None
    if array.dtype.hasobject:
        raise ValidationFailed(f"field {name!r}: expected a numeric array, got {type(value).__name__}")
    array.flags.writeable = False
    return array


def _describe(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    # msgspec says "... - at `$.field`": name the field plainly.
    if " - at `$." in text:
        message, _, path = text.partition(" - at `$.")
        return f"field {path.rstrip('`')!r}: {message}"
    return text


def message_of(result) -> Any:
    """The payload a pub method's return value publishes (None: an empty message)."""
    if result is None:
        return {}
    if type(result) is dict or isinstance(result, (dict, msgspec.Struct)) or \
            (dataclasses.is_dataclass(result) and not isinstance(result, type)) or \
            hasattr(result, "model_dump"):
        return result
    raise TypeError(
        f"a published result must be a dict, a msgspec Struct, a pydantic model, a dataclass "
        f"or None, not {type(result).__name__}")
