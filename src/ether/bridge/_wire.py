"""What the bridges send each other, and the checks every received byte passes.

A topic sample is a batch of consecutive envelopes of one topic (coalescing:
one zenoh put per batch the bridge drained, so small messages under load cost
one put per batch, and a lone message goes at once):

    payload     (u32 little-endian length, envelope)*      frames, back to back
    attachment  MessagePack [BRIDGE_WIRE, count, first, host, run, epoch,
                             prev_epoch, prev_next, receivers]
                count: frames in the payload; first: the number of the first
                frame in its stream, which `epoch` names (a random number): a
                topic's frames from one bridge, numbered from 0, so a gap means
                zenoh dropped samples and a number seen already a duplicate.
                A bridge starts a topic's new stream whenever another host
                joins its receivers; `receivers` are the hosts it started for
                (they count losses from frame 0; a host not among them joined
                later and counts from the first frame it sees). prev_epoch and
                prev_next name the stream it ended and that stream's next
                number, so that the old one's receivers count its last losses.
                The last three are optional (0, 0, none). host and run: the
                sender's, the origin of frames that name none

Each frame is an Ether envelope (_node/_codec.py) whose arrays are inline
(ARRAY_EXT): arena handles mean nothing on another host, and a frame that carries
one, or holds, is refused. A call's query payload is [BRIDGE_WIRE, timeout_s,
params] and its reply the REPLY body map, both MessagePack with inline arrays.

Nothing here unpickles, and nothing trusts a length: every frame length is
checked against what is left of the sample, every sample against the size cap,
the envelope and its payload are decoded with typed decoders (arrays checked for
dtype, shape and length), and a failure is a MalformedMessage naming what.
"""
from __future__ import annotations

import struct
from typing import NamedTuple

import msgspec

from ether import MalformedMessage
from ether.lowlevel import MESSAGE, WIRE_VERSION, Decoders, Envelope, MessageId, Origin, decode_envelope

__all__ = ["BRIDGE_WIRE", "Attachment", "frame", "pack", "attachment", "read_attachment",
           "unpack", "Frame", "Checker", "query_payload", "read_query", "read_reply"]

BRIDGE_WIRE = 1      # the bridges' own protocol version, in every attachment and query
CALL_WIRE = BRIDGE_WIRE
_LEN = struct.Struct("<I")
_encode = msgspec.msgpack.Encoder().encode


class Attachment(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    version: int
    count: int
    first: int
    host: str
    run: bytes
    epoch: int
    prev_epoch: int = 0     # the stream this one follows (0: none)
    prev_next: int = 0      # the number that stream's next frame would have had
    receivers: tuple[str, ...] = ()   # the hosts this stream was started for


_decode_attachment = msgspec.msgpack.Decoder(Attachment).decode


def frame(envelope: Envelope, payload, origin: Origin) -> bytes:
    """One frame: `envelope` with `payload` (its MessagePack, arrays inline) and
    its origin named."""
    if not isinstance(payload, msgspec.Raw):
        payload = msgspec.Raw(payload)
    return _encode((WIRE_VERSION, envelope.kind, envelope.topic, envelope.sender, envelope.seq,
                    envelope.time_ns, envelope.cause, envelope.trace, envelope.origin or origin,
                    payload))


def pack(frames: list[bytes]) -> bytes:
    parts = []
    for f in frames:
        parts.append(_LEN.pack(len(f)))
        parts.append(f)
    return b"".join(parts)  # one copy


MAX_RECEIVERS = 256    # hosts named in one attachment


def attachment(count: int, first: int, host: str, run: bytes, epoch: int,
               prev: tuple[int, int] | None = None, receivers: tuple[str, ...] = ()) -> bytes:
    if prev is None and not receivers:
        return _encode((BRIDGE_WIRE, count, first, host, run, epoch))
    return _encode((BRIDGE_WIRE, count, first, host, run, epoch, *(prev or (0, 0)),
                    receivers[:MAX_RECEIVERS]))


def read_attachment(data: bytes | None) -> Attachment:
    if data is None:
        raise MalformedMessage("a sample without its attachment")
    try:
        att = _decode_attachment(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedMessage(f"a malformed attachment ({exc})") from None
    if att.version != BRIDGE_WIRE:
        raise MalformedMessage(f"bridge wire version {att.version}; this bridge speaks {BRIDGE_WIRE}")
    if (att.count < 1 or att.first < 0 or att.prev_next < 0 or len(att.run) != 16
            or not att.host or "@" in att.host or len(att.receivers) > MAX_RECEIVERS):
        raise MalformedMessage(f"an attachment out of range ({att.count} frames from {att.host!r})")
    return att


def unpack(data: bytes, count: int) -> list[memoryview]:
    """The `count` frames of a sample; MalformedMessage unless they fill it exactly."""
    view = memoryview(data)
    frames, at, end = [], 0, len(data)
    while at < end:
        if end - at < 4:
            raise MalformedMessage(f"a sample cut inside a frame length at byte {at}")
        (length,) = _LEN.unpack_from(view, at)
        at += 4
        if length > end - at:
            raise MalformedMessage(f"a frame of {length} bytes where {end - at} are left")
        frames.append(view[at:at + length])
        at += length
    if len(frames) != count:
        raise MalformedMessage(f"{len(frames)} frames where the attachment says {count}")
    return frames


class Frame(NamedTuple):
    envelope: Envelope   # with sender (and ids) qualified by host, origin named
    payload: object      # bytes (MessagePack) or, with large arrays, the decoded value


class Checker:
    """Typed decoding of received frames: an envelope of wire version WIRE_VERSION,
    kind MESSAGE, no holds, the sample's topic, a plain sender name, and a payload
    that decodes to a map whose arrays (inline only) pass the dtype/shape/length
    checks."""

    def __init__(self, inline_limit: int):
        self._inline_limit = inline_limit
        base = Decoders(None).ext_hook   # arena handles: refused (no arena reader here)
        self._large = False

        def hook(code, data):
            value = base(code, data)
            if getattr(value, "nbytes", 0) >= inline_limit:
                self._large = True
            return value

        self._decode = msgspec.msgpack.Decoder(ext_hook=hook).decode

    def check(self, data, topic: str, att: Attachment) -> Frame:
        """One frame, checked: its envelope (sender qualified, origin named) and payload."""
        kind, sender, seq, time_ns, cause, trace, origin, payload = self.check_batch([data], topic, att)[0]
        envelope = Envelope(WIRE_VERSION, kind, topic, sender, seq, time_ns, cause, trace, origin,
                            payload if isinstance(payload, msgspec.Raw) else msgspec.Raw(b""))
        return Frame(envelope, bytes(payload) if isinstance(payload, msgspec.Raw) else payload)

    def check_batch(self, frames, topic: str, att: Attachment) -> list[tuple]:
        """Every frame of a sample, checked, as the fields Node.forward_many takes:
        (kind, sender, seq, time_ns, cause, trace, origin, payload), the sender and
        ids qualified by host and the origin named. payload is the frame's
        MessagePack (msgspec.Raw), or, with large arrays, the decoded map, so that
        they enter this host's arena once. MalformedMessage if any frame is bad."""
        host = att.host
        suffix = "@" + host
        default_origin = Origin(att.run, host)
        decode = self._decode
        out = []
        for data in frames:
            e = decode_envelope(data)
            if e.kind != MESSAGE:
                raise MalformedMessage(f"a frame of kind {e.kind} (only messages travel as topics)")
            if e.holds:
                raise MalformedMessage("a frame with arena holds")
            if e.topic != topic:
                raise MalformedMessage(f"a frame of topic {e.topic!r} on the key of {topic!r}")
            sender = e.sender
            if not sender or "@" in sender:
                raise MalformedMessage(f"a frame from {sender!r} (not a local name of its host)")
            self._large = False
            try:
                value = decode(e.payload)
            except (msgspec.DecodeError, RecursionError) as exc:
                raise MalformedMessage(f"a malformed payload ({exc})") from None
            if type(value) is not dict:
                raise MalformedMessage(f"a payload that is a {type(value).__name__}, not a map")
            cause, trace = e.cause, e.trace
            if cause is not None and "@" not in cause.sender:
                cause = MessageId(cause.sender + suffix, cause.seq, cause.run)
            if trace is not None and "@" not in trace.sender:
                trace = MessageId(trace.sender + suffix, trace.seq, trace.run)
            out.append((MESSAGE, sender + suffix, e.seq, e.time_ns, cause, trace,
                        e.origin or default_origin, value if self._large else e.payload))
        return out


# ---- calls ----

_query = msgspec.msgpack.Decoder(tuple[int, float, msgspec.Raw]).decode
_STATUSES = ("success", "error", "failed")


def query_payload(timeout: float, params) -> bytes:
    """A call: what is left of the caller's timeout, and its params (MessagePack,
    arrays inline)."""
    return _encode((CALL_WIRE, timeout, params))


def read_query(data) -> tuple[float, msgspec.Raw]:
    try:
        version, timeout, params = _query(data)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        raise MalformedMessage(f"a malformed call ({exc})") from None
    if version != CALL_WIRE:
        raise MalformedMessage(f"a call of bridge wire version {version}; this bridge speaks {CALL_WIRE}")
    if not 0 < timeout <= 86400:
        raise MalformedMessage(f"a call with a timeout of {timeout!r} s")
    return timeout, params


def read_reply(data, decoders: Decoders) -> dict:
    """A reply body: a map with a known status (its arrays inline, checked)."""
    body = decoders.value(data)
    if not isinstance(body, dict) or body.get("status") not in _STATUSES:
        raise MalformedMessage("a reply that is not a reply body")
    return body
