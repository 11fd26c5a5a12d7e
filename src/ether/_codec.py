"""The wire format of one message: a MessagePack array (the envelope) whose last
element is the payload.

    [kind, topic, sender, seq, time_ns, cause, payload]

kind     MESSAGE (pub/sub), CONTROL (between the main process and instances),
         REQUEST or REPLY (services and sync)
topic    str
sender   the name of the publishing process or instance
seq      the sender's 64-bit message counter, from 1
time_ns  wall clock at publish (time.time_ns)
cause    [sender, seq] of the message whose handler published this one, or nil
payload  a map: the handler's keyword arguments

A REQUEST's payload is [id, reply_to, params]; its REPLY's payload is a map with
"id", "status" ("success" or "error"), "result" or "error" and "type", and
"instance" (who answered).

Encoding is one msgspec call on a tuple. Decoding keeps the payload as
msgspec.Raw (no copy, not yet parsed), so each handler parses it once, straight
into its own typed arguments.
"""
from __future__ import annotations

import time
from typing import Any

import msgspec

from . import _errors as errors

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


class Request(msgspec.Struct, array_like=True, frozen=True):
    id: int
    reply_to: str
    params: msgspec.Raw


class MalformedMessage(errors.EtherError, ValueError):
    """Bytes in an inbox that are not an Ether envelope."""


def _enc_hook(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)  # pydantic models
    if dump is not None:
        return dump()
    raise TypeError(f"cannot publish a value of type {type(obj).__name__}")


_encode = msgspec.msgpack.Encoder(enc_hook=_enc_hook).encode
_decode = msgspec.msgpack.Decoder(Envelope).decode
_decode_any = msgspec.msgpack.Decoder().decode
now_ns = time.time_ns


def encode(kind: int, topic: str, sender: str, seq: int, cause, payload) -> bytes:
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
