"""The wire format of one message: a MessagePack array (the envelope) whose last
element is the payload.

    [kind, topic, sender, seq, time_ns, cause, payload(, holds)]

kind     MESSAGE (pub/sub), CONTROL (between the main process and instances),
         REQUEST or REPLY (services and sync)
topic    str
sender   the name of the publishing process or instance
seq      the sender's 64-bit message counter, from 1
time_ns  wall clock at publish (time.time_ns)
cause    [sender, seq] of the message whose handler published this one, or nil
payload  a map: the handler's keyword arguments
holds    (optional) [[arena token, block, generation], ...]: the arena blocks of the
         large arrays in the payload, held by the receiver while it handles them
         (filled while the payload is encoded: it comes after it)

A REQUEST's payload is [id, reply_to, params]; its REPLY's payload is a map with
"id", "status" ("success" or "error"), "result" or "error" and "type", and
"instance" (who answered).

Encoding is one msgspec call on a tuple. Decoding keeps the payload as
msgspec.Raw (no copy, not yet parsed), so each handler parses it once, straight
into its own typed arguments.
"""
from __future__ import annotations

import sys
import time
from typing import Any

import msgspec

from .. import _errors as errors

MESSAGE = 0
CONTROL = 1
REQUEST = 2
REPLY = 3


class Envelope(msgspec.Struct, array_like=True, frozen=True):
    kind: int
    topic: str
    sender: str
    seq: int
    time_ns: int
    cause: tuple[str, int] | None
    payload: msgspec.Raw
    holds: tuple[tuple[int, int, int], ...] = ()


class Request(msgspec.Struct, array_like=True, frozen=True):
    id: int
    reply_to: str
    params: msgspec.Raw


class MalformedMessage(errors.EtherError, ValueError):
    """Bytes in an inbox that are not an Ether envelope."""


# MessagePack extension type of a numpy array: [dtype.str, shape, data] where data
# is the C-contiguous bytes. (Large arrays will travel by handle through a
# shared-memory arena instead; this is the inline form.)
ARRAY_EXT = 1
# ... and of an array in a publisher's arena: [arena token, block, generation,
# offset, length, dtype.str, shape] (see _arena.py).
ARENA_EXT = 2
_array_header = msgspec.msgpack.Encoder()

# The process's publishing node, which puts large arrays into its arena. Set by
# the node; consulted only for arrays (enc_hook never runs for plain values).
publisher = None


_ndarray = None  # numpy.ndarray, once numpy is imported


def _enc_hook(obj: Any) -> Any:
    global _ndarray
    if _ndarray is None:
        numpy = sys.modules.get("numpy")  # never import numpy for a message without arrays
        if numpy is not None:
            _ndarray = numpy.ndarray
    if _ndarray is not None and isinstance(obj, _ndarray):
        node = publisher
        if node is not None:
            ext = node.arena_handle(obj)  # None: it travels inline
            if ext is not None:
                return ext
        return _array_ext(sys.modules["numpy"], obj)
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(obj, numpy.generic):
        return _array_ext(numpy, obj)
    dump = getattr(obj, "model_dump", None)  # pydantic models
    if dump is not None:
        return dump()
    raise TypeError(f"cannot publish a value of type {type(obj).__name__}")


def arena_ext(token: int, block: int, generation: int, offset: int, array) -> msgspec.msgpack.Ext:
    """The handle of an array in an arena (see ARENA_EXT)."""
    return msgspec.msgpack.Ext(ARENA_EXT, _array_header.encode(
        (token, block, generation, offset, array.nbytes, array.dtype.str, array.shape)))


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


_decode_header = msgspec.msgpack.Decoder(tuple[str, list[int], bytes]).decode


_decode_handle = msgspec.msgpack.Decoder(tuple[int, int, int, int, int, str, list[int]]).decode


# Turns an arena handle into a read-only view: set by _arena (which imports the C
# core) to its READER.view; arena handles only come to processes with a node.
view_array = None


def ext_hook(code: int, data: memoryview) -> Any:
    """Decode Ether's extension types; arrays come back read-only."""
    if code == ARENA_EXT:
        try:
            handle = _decode_handle(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise MalformedMessage(f"malformed array handle ({exc})") from None
        if view_array is None:
            raise MalformedMessage("an array handle arrived in a process without an arena reader")
        try:
            return view_array(*handle)
        except (errors.EtherError, TypeError, ValueError) as exc:
            raise MalformedMessage(str(exc)) from None
    if code != ARRAY_EXT:
        raise MalformedMessage(f"unknown extension type {code}")
    import numpy
    try:
        dtype, shape, raw = _decode_header(data)
        array = numpy.frombuffer(raw, dtype=numpy.dtype(dtype))
        array = array.reshape(shape)
    except (msgspec.DecodeError, msgspec.ValidationError, TypeError, ValueError) as exc:
        raise MalformedMessage(f"malformed array ({exc})") from None
    return array  # frombuffer over bytes: read-only


_encode = msgspec.msgpack.Encoder(enc_hook=_enc_hook).encode
_decode = msgspec.msgpack.Decoder(Envelope).decode
_decode_any = msgspec.msgpack.Decoder(ext_hook=ext_hook).decode
now_ns = time.time_ns


def encode(kind: int, topic: str, sender: str, seq: int, cause, payload) -> bytes:
    """An envelope without arena holds (a node's encoding adds them)."""
    return _encode((kind, topic, sender, seq, now_ns(), cause, payload))


# For the publish hot path: the envelope tuple, already built, in one call.
encode_tuple = _encode


def decode(data) -> Envelope:
    try:
        return _decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedMessage(f"not an Ether envelope ({exc}); {len(data)} bytes") from None


_decode_request = msgspec.msgpack.Decoder(Request).decode


def request_of(envelope: Envelope) -> Request:
    try:
        return _decode_request(envelope.payload)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedMessage(f"topic {envelope.topic!r}: malformed request ({exc})") from None


def payload_dict(envelope: Envelope) -> dict:
    """The payload as a plain dict (for control messages and listeners)."""
    try:
        value = _decode_any(envelope.payload)
    except msgspec.DecodeError as exc:
        raise MalformedMessage(f"topic {envelope.topic!r}: malformed payload ({exc})") from None
    if not isinstance(value, dict):
        raise MalformedMessage(f"topic {envelope.topic!r}: payload is a {type(value).__name__}, not a map")
    return value
