"""The wire format of one message: a MessagePack array (the envelope) whose
payload is itself a map.

    [version, kind, topic, sender, seq, time_ns, cause, trace, origin, payload(, holds(, replay_of))]

version  WIRE_VERSION (1); a reader refuses any other
kind     MESSAGE (pub/sub), CONTROL (between the main process and instances),
         REQUEST or REPLY (services and sync); | SPILLED when the payload is too
         large for an inbox record and sits in the sender's arena instead, the
         payload field holding its handle (a block of bytes)
topic    str
sender   the name of the publishing process or instance
seq      the sender's 64-bit message counter, from 1
time_ns  wall clock at publish (time.time_ns)
cause    the id of the message whose handler published this one, or nil
trace    the id of the root of the chain of causes, or nil: this message is a root
         (one ether.start(), one trial, is one trace)
origin   [run_id, host]: the 16-byte UUIDv7 of the session where the message was
         first published, and that host's name; nil for a message of the session
         it travels in (every member of a session shares its run and host, so a
         local message need not carry them). A forwarded message always names it.
payload  a map: the handler's keyword arguments
holds    (optional) [[arena token, block, generation], ...]: the arena blocks of the
         large arrays in the payload, held by the receiver while it handles them
         (filled while the payload is encoded: it comes after it)
replay_of (optional) [sender, seq, run_id]: the recorded message this one replays
         (`ether play`); absent from every other message. A trailing optional
         field: a decoder that does not know it ignores it, so the version stays 1

A message id (cause, trace) is [sender, seq] within the message's own origin, or
[sender, seq, run_id] when it comes from another run (a bridged host).

A REQUEST's payload is [id, reply_to, params(, deadline_ns)]: deadline_ns, the
caller's deadline on the wall clock (time.time_ns), is optional (a bridge hands
what is left of it to the other host). Its REPLY's payload is a map with "id",
"status", "instance" (who answered) and: "result" ("success"); "error" and
"type" ("error": the method raised, its params were invalid); or "error" and
"type" naming ServiceGone, ServiceNotFound or Timeout ("failed": the call never
reached a method or its answer could not come back, as a bridge reports it).

Arrays: ARRAY_EXT carries [dtype.str, shape, bytes] inline; ARENA_EXT a handle
into the publisher's arena (see _core/_arena_handle.py).

Encoding is one msgspec call on a tuple. Decoding keeps the payload as
msgspec.Raw (not yet parsed), so each handler parses it once, straight into its
own typed arguments.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable

import msgspec

from .. import _errors as errors
from .._core import _arena_handle
from .._errors import MalformedMessage

__all__ = [
    "WIRE_VERSION", "MESSAGE", "CONTROL", "REQUEST", "REPLY", "SPILLED", "ARRAY_EXT", "ARENA_EXT",
    "MessageId", "Origin", "Envelope", "Request", "Encoder", "Decoders", "envelope_fields",
    "decode", "request_of", "lineage",
]

WIRE_VERSION = 1
MESSAGE = 0
CONTROL = 1
REQUEST = 2
REPLY = 3
# A flag on kind: the payload is an ARENA_EXT handle to a block of bytes in the
# sender's arena holding the real payload (a message larger than an inbox record).
SPILLED = 0x10
KIND_NAMES = {MESSAGE: "message", CONTROL: "control message", REQUEST: "request", REPLY: "reply"}

ARRAY_EXT = 1
ARENA_EXT = _arena_handle.ARENA_EXT


class MessageId(msgspec.Struct, array_like=True, frozen=True):
    """A message's identity: (sender, seq) within a run; run is None for the run
    of the message that names it."""
    sender: str
    seq: int
    run: bytes | None = None


class Origin(msgspec.Struct, array_like=True, frozen=True):
    run: bytes      # 16-byte UUIDv7 of the session
    host: str


class Envelope(msgspec.Struct, array_like=True, frozen=True):
    version: int
    kind: int
    topic: str
    sender: str
    seq: int
    time_ns: int
    cause: MessageId | None
    trace: MessageId | None
    origin: Origin | None
    payload: msgspec.Raw
    holds: tuple[tuple[int, int, int], ...] = ()
    replay_of: MessageId | None = None

    @property
    def id(self) -> MessageId:
        return MessageId(self.sender, self.seq)

    @property
    def root(self) -> MessageId:
        """The trace: the root message of this one's chain of causes."""
        return self.trace if self.trace is not None else MessageId(self.sender, self.seq)


class Request(msgspec.Struct, array_like=True, frozen=True):
    id: int
    reply_to: str
    params: msgspec.Raw
    deadline_ns: int | None = None   # the caller's deadline (time.time_ns), if it said


def lineage(current: Envelope, origin: Origin) -> tuple[tuple, tuple]:
    """(cause, trace) as tuples ready to encode, for a message published while
    `current` is handled by a node whose own origin is `origin`."""
    trace = current.trace
    theirs = current.origin
    if theirs is None or theirs == origin:   # a message of this run
        cause = (current.sender, current.seq)
        if trace is None:
            return cause, cause
        return cause, ((trace.sender, trace.seq) if trace.run is None else
                       (trace.sender, trace.seq, trace.run))
    # Another run's message (forwarded from another host): name its run.
    run = theirs.run
    cause = (current.sender, current.seq, run)
    if trace is None:
        return cause, cause
    return cause, (trace.sender, trace.seq, trace.run if trace.run is not None else run)


# ---- arrays ----

_array_header = msgspec.msgpack.Encoder()
_decode_header = msgspec.msgpack.Decoder(tuple[str, list[int], bytes]).decode


def _array_ext(numpy, obj) -> msgspec.msgpack.Ext:
    array = numpy.asarray(obj)
    if array.dtype.hasobject:
        raise TypeError(f"cannot publish an array of dtype {array.dtype} (object arrays hold "
                        f"pointers into this process); use a numeric or bool dtype")
    if array.dtype.fields is not None:
        raise TypeError(f"cannot publish a structured array (dtype {array.dtype})")
    data = numpy.ascontiguousarray(array)  # the one copy, for a non-contiguous input
    return msgspec.msgpack.Ext(ARRAY_EXT, _array_header.encode(
        (array.dtype.str, list(array.shape), memoryview(data).cast("B") if data.nbytes else b"")))


def _inline_array(data) -> Any:
    import numpy
    try:
        dtype, shape, raw = _decode_header(data)
        array = numpy.frombuffer(raw, dtype=numpy.dtype(dtype))
        return array.reshape(shape)  # frombuffer over bytes: read-only
    except (msgspec.DecodeError, msgspec.ValidationError, TypeError, ValueError) as exc:
        raise MalformedMessage(f"malformed array ({exc})") from None


def _not_array(numpy, obj: Any) -> Any:
    """enc_hook for what is not an ndarray: a numpy scalar, a pydantic model."""
    if numpy is not None and isinstance(obj, numpy.generic):
        return _array_ext(numpy, obj)
    dump = getattr(obj, "model_dump", None)  # pydantic models
    if dump is not None:
        return dump()
    raise TypeError(f"cannot publish a value of type {type(obj).__name__}")


def make_enc_hook(arena_handle: Callable | None) -> Callable[[Any], Any]:
    """msgspec's enc_hook for one node: arrays go to its arena through
    `arena_handle(array)` (None: inline), numpy scalars and pydantic models as
    values. It never runs for plain values."""
    ndarray = None  # numpy's, once an array came (numpy is never imported here)

    def enc_hook(obj: Any) -> Any:
        nonlocal ndarray
        if type(obj) is not ndarray:  # the first array, a subclass, a scalar, a model...
            numpy = sys.modules.get("numpy")  # never import numpy for a message without arrays
            if numpy is None or not isinstance(obj, numpy.ndarray):
                return _not_array(numpy, obj)
            ndarray = numpy.ndarray
        if arena_handle is not None:
            ext = arena_handle(obj)
            if ext is not None:
                return ext
        return _array_ext(sys.modules["numpy"], obj)

    return enc_hook


def make_ext_hook(view: Callable | None) -> Callable[[int, memoryview], Any]:
    """msgspec's ext_hook for one session: arena handles become read-only views
    through `view(*handle)` (the session's arena reader), inline arrays read-only
    arrays over the message's bytes."""

    decode_handle = _arena_handle.decode_raw

    def ext_hook(code: int, data: memoryview) -> Any:
        if code == ARENA_EXT:
            try:  # _arena_handle.decode, inlined: every received array
                handle = decode_handle(data)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise MalformedMessage(f"malformed array handle ({exc})") from None
            if view is None:
                raise MalformedMessage("an array handle arrived where no arena reader is")
            try:
                return view(*handle)
            except MalformedMessage:
                raise
            except (errors.EtherError, TypeError, ValueError, OverflowError) as exc:  # forged integers
                raise MalformedMessage(str(exc)) from None
        if code == ARRAY_EXT:
            return _inline_array(data)
        raise MalformedMessage(f"unknown extension type {code}")

    return ext_hook


def _keep_ext(code: int, data: memoryview) -> Any:
    """An ext_hook that keeps every extension value as it travels (inline_arrays
    resolves the arena handles among them)."""
    return msgspec.msgpack.Ext(code, bytes(data))


# ---- encoders and decoders ----

class Encoder:
    """An encoder of envelopes with an arena (through `arena_handle`) and an origin
    to name (None: the messages are of the session they travel in)."""

    def __init__(self, origin: Origin | None = None, arena_handle: Callable | None = None):
        self.origin = origin
        self.encode = msgspec.msgpack.Encoder(enc_hook=make_enc_hook(arena_handle)).encode

    def envelope(self, kind: int, topic: str, sender: str, seq: int, payload, *,
                 cause=None, trace=None, holds: list | None = None) -> bytes:
        """An encoded envelope; `holds`, if given, is filled by the arena while the
        payload encodes."""
        fields = envelope_fields(kind, topic, sender, seq, time.time_ns(), cause, trace,
                                 self.origin, payload)
        return self.encode(fields if holds is None else (*fields, holds))


def envelope_fields(kind: int, topic: str, sender: str, seq: int, time_ns: int, cause, trace,
                    origin: Origin | None, payload) -> tuple:
    """The envelope's fields in wire order, without the holds (which the arena
    fills while the payload encodes, so they go last): the one constructor. Only
    Node.publish, Node.request and Node.reply, the hot paths of a message, a call
    and a server, build the same tuple inline (tests/unit/test_codec.py pins the
    order)."""
    return (WIRE_VERSION, kind, topic, sender, seq, time_ns, cause, trace, origin, payload)


class Decoders:
    """A session's decoders: payloads whose arrays resolve through its arena reader."""

    def __init__(self, view: Callable | None):
        self.ext_hook = make_ext_hook(view)
        self._any = msgspec.msgpack.Decoder(ext_hook=self.ext_hook).decode

    def payload_dict(self, envelope: Envelope) -> dict:
        """The payload as a plain dict (control messages, listeners)."""
        try:
            value = self._any(envelope.payload)
        except (msgspec.DecodeError, RecursionError) as exc:
            raise MalformedMessage(f"topic {envelope.topic!r}: malformed payload ({exc})") from None
        if not isinstance(value, dict):
            raise MalformedMessage(
                f"topic {envelope.topic!r}: payload is a {type(value).__name__}, not a map")
        return value

    def value(self, raw) -> Any:
        """Any MessagePack value (a reply's result)."""
        try:
            return self._any(raw)
        except (msgspec.DecodeError, RecursionError) as exc:
            raise MalformedMessage(f"malformed value ({exc})") from None


_decode = msgspec.msgpack.Decoder(Envelope).decode
# The same decoder for a caller that inlines decode() (Node._dispatch, per message):
# it raises msgspec's errors, and the caller checks the version itself.
ENVELOPE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)
decode_unchecked = _decode
_decode_spill = msgspec.msgpack.Decoder(msgspec.msgpack.Ext).decode


def spilled_handle(envelope: Envelope) -> tuple:
    """The arena handle (see _core/_arena_handle.py) of a SPILLED envelope's payload."""
    try:
        ext = _decode_spill(envelope.payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedMessage(f"topic {envelope.topic!r}: malformed spilled payload ({exc})") from None
    if ext.code != ARENA_EXT:
        raise MalformedMessage(f"topic {envelope.topic!r}: a spilled payload of extension type {ext.code}")
    return _arena_handle.decode(ext.data)


def decode(data) -> Envelope:
    try:
        envelope = _decode(data)
    except ENVELOPE_ERRORS as exc:
        raise MalformedMessage(f"not an Ether envelope ({exc}); {len(data)} bytes") from None
    if envelope.version != WIRE_VERSION:
        raise MalformedMessage(f"an envelope of wire version {envelope.version} from "
                               f"{envelope.sender!r}; this Ether reads version {WIRE_VERSION}")
    return envelope


_decode_request = msgspec.msgpack.Decoder(Request).decode


def request_of(envelope: Envelope) -> Request:
    try:
        return _decode_request(envelope.payload)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        raise MalformedMessage(f"topic {envelope.topic!r}: malformed request ({exc})") from None


# Messages that carry no array and no lineage (a wake-up): no node needed.
_plain = msgspec.msgpack.Encoder().encode


def encode_plain(kind: int, topic: str, sender: str, payload) -> bytes:
    return _plain(envelope_fields(kind, topic, sender, 0, time.time_ns(), None, None, None, payload))


_to_ext = msgspec.msgpack.Decoder(ext_hook=_keep_ext).decode
_from_ext = msgspec.msgpack.Encoder().encode


def inline_arrays(envelope: Envelope, view: Callable) -> bytes:
    """The payload of envelope with every arena handle replaced by the inline array
    it names (read through `view`, the session's reader): what a recorder writes and
    a bridge sends, since a handle means nothing outside its session."""
    hook = make_ext_hook(view)

    def resolve(value):
        if isinstance(value, msgspec.msgpack.Ext) and value.code == ARENA_EXT:
            array = hook(value.code, memoryview(value.data))
            return _array_ext(sys.modules["numpy"], array)
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    try:
        value = _to_ext(envelope.payload)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise MalformedMessage(f"topic {envelope.topic!r}: malformed payload ({exc})") from None
    return _from_ext(resolve(value))
