"""What the bridges send each other, and the checks every received byte passes.

A topic sample is a batch of consecutive envelopes of one topic (coalescing:
one zenoh put per batch the bridge drained, so small messages under load cost
one put per batch, and a lone message goes at once):

    payload     MessagePack array of frames, each an Ether envelope as
                _node/_codec.py's Envelope encodes it (the sending bridge
                encodes the whole batch in one call; the receiver decodes and
                type-checks the whole sample in one call)
    attachment  MessagePack [BRIDGE_WIRE, count, first, host, run, epoch,
                             prev_epoch, prev_next, receivers, origin_host]
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
                The last four are optional (0, 0, none, host). host and run: the
                sender's; a frame that names no origin (a message of the sending
                host's own session) has Origin(run, origin_host)

Each frame is an Ether envelope (_node/_codec.py) whose arrays are inline
(ARRAY_EXT): arena handles mean nothing on another host, and a frame that carries
one, or holds, is refused. Its replay mark, if any, is not carried on. A call's query payload is [BRIDGE_WIRE, timeout_s,
params] and its reply the REPLY body map, both MessagePack with inline arrays.

Nothing here unpickles, and nothing trusts a length: msgspec checks every
length against what is left of the sample, every sample is checked against the
size cap, the envelopes and their payloads are decoded with typed decoders
(arrays checked for dtype, shape and length), and a failure is a
MalformedMessage naming what (a sample that fails the one-call check is checked
again frame by frame, to say which frame and why).
"""
from __future__ import annotations

from typing import Annotated, Literal, NamedTuple

import msgspec

from ether import MalformedMessage
from ether.lowlevel import MESSAGE, WIRE_VERSION, Decoders, Envelope, MessageId, Origin, decode_envelope

__all__ = ["BRIDGE_WIRE", "Attachment", "frame", "pack", "encode_frames", "attachment",
           "read_attachment", "Frame", "Checker", "query_payload", "read_query", "read_reply"]

BRIDGE_WIRE = 1      # the bridges' own protocol version, in every attachment and query
CALL_WIRE = BRIDGE_WIRE
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
    origin_host: str = ""   # of the frames that name no origin ("": host)


_decode_attachment = msgspec.msgpack.Decoder(Attachment).decode


def frame(envelope: Envelope, payload, origin: Origin) -> bytes:
    """One frame, encoded: `envelope` with `payload` (its MessagePack, arrays
    inline) and its origin named (what pack() takes)."""
    if not isinstance(payload, msgspec.Raw):
        payload = msgspec.Raw(payload)
    return _encode((WIRE_VERSION, envelope.kind, envelope.topic, envelope.sender, envelope.seq,
                    envelope.time_ns, envelope.cause, envelope.trace, envelope.origin or origin,
                    payload))


def encode_frames(envelopes: list[Envelope]) -> bytes:
    """A sample's payload from the envelopes themselves (no holds, arrays inline),
    in one call: what the sending bridge does with a batch."""
    return _encode(envelopes)


def pack(frames: list[bytes]) -> bytes:
    """A sample's payload from frames already encoded (frame())."""
    n = len(frames)
    head = (bytes((0x90 | n,)) if n < 16 else b"\xdc" + n.to_bytes(2, "big") if n < 1 << 16
            else b"\xdd" + n.to_bytes(4, "big"))
    return head + b"".join(frames)  # one copy


MAX_RECEIVERS = 256    # hosts named in one attachment


def attachment(count: int, first: int, host: str, run: bytes, epoch: int,
               prev: tuple[int, int] | None = None, receivers: tuple[str, ...] = (),
               origin_host: str = "") -> bytes:
    if prev is None and not receivers and not origin_host:
        return _encode((BRIDGE_WIRE, count, first, host, run, epoch))
    return _encode((BRIDGE_WIRE, count, first, host, run, epoch, *(prev or (0, 0)),
                    receivers[:MAX_RECEIVERS], origin_host))


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


class Frame(NamedTuple):
    envelope: Envelope   # with sender (and ids) qualified by host, origin named
    payload: object      # bytes (MessagePack) or, with large arrays, the decoded value


class _Checked(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """A frame as the one-call check takes it: the Envelope's layout, with what a
    frame must be as types where msgspec checks them in C (wire version, kind
    MESSAGE, a sender name, no holds). gc=False: a sample's thousands of them are
    never in a cycle, and the collector's passes over them cost more than the
    decode."""
    version: Literal[1]   # WIRE_VERSION
    kind: Literal[0]      # MESSAGE
    topic: str
    sender: Annotated[str, msgspec.Meta(min_length=1)]
    seq: int
    time_ns: int
    cause: MessageId | None
    trace: MessageId | None
    origin: Origin | None
    payload: msgspec.Raw
    holds: Annotated[tuple[tuple[int, int, int], ...], msgspec.Meta(max_length=0)] = ()
    replay_of: MessageId | None = None


assert _Checked.__struct_fields__ == Envelope.__struct_fields__
assert WIRE_VERSION == 1 and MESSAGE == 0   # _Checked's literals
_SAMPLE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)
_frames_of = msgspec.msgpack.Decoder(list[msgspec.Raw]).decode


class Checker:
    """Typed decoding of received frames: an envelope of wire version WIRE_VERSION,
    kind MESSAGE, no holds, the sample's topic, a plain sender name, and a payload
    that decodes to a map whose arrays (inline only) pass the dtype/shape/length
    checks.

    A sample of small frames is checked in two calls into msgspec whatever its
    frame count (the envelopes, then the payloads); one whose frames are large
    on average (arrays), or in which a large array turns up, frame by frame, so
    that each large array is decoded once, for this host's arena."""

    def __init__(self, inline_limit: int):
        self._inline_limit = inline_limit
        self._large_frame = max(1, inline_limit // 2)
        base = Decoders(None).ext_hook   # arena handles: refused (no arena reader here)
        self._large = False

        def hook(code, data):
            value = base(code, data)
            if getattr(value, "nbytes", 0) >= inline_limit:
                self._large = True
            return value

        self._decode = msgspec.msgpack.Decoder(ext_hook=hook).decode
        self._decode_sample = msgspec.msgpack.Decoder(list[_Checked]).decode
        self._decode_map = msgspec.msgpack.Decoder(dict, ext_hook=hook).decode

    def check(self, data, topic: str, att: Attachment) -> Frame:
        """One frame (encoded, as frame() makes it), checked: its envelope (sender
        qualified, origin named) and payload."""
        kind, sender, seq, time_ns, cause, trace, origin, payload = \
            self.check_sample(pack([bytes(data)]), topic, msgspec.structs.replace(att, count=1))[0]
        envelope = Envelope(WIRE_VERSION, kind, topic, sender, seq, time_ns, cause, trace, origin,
                            payload if isinstance(payload, msgspec.Raw) else msgspec.Raw(b""))
        return Frame(envelope, bytes(payload) if isinstance(payload, msgspec.Raw) else payload)

    def check_sample(self, data: bytes, topic: str, att: Attachment) -> list[tuple]:
        """Every frame of a sample, checked, as the fields Node.forward_many takes:
        (kind, sender, seq, time_ns, cause, trace, origin, payload), the sender and
        ids qualified by host and the origin named. payload is the frame's
        MessagePack (msgspec.Raw), or, with large arrays, the decoded map, so that
        they enter this host's arena once. MalformedMessage if any frame is bad,
        or if the sample holds other than att.count frames."""
        if len(data) >= att.count * self._large_frame:
            return self.check_batch(self._split(data, att.count), topic, att)
        suffix = "@" + att.host
        default_origin = Origin(att.run, att.origin_host or att.host)
        decode_map = self._decode_map
        out = []
        add = out.append
        self._large = False
        try:
            frames = self._decode_sample(data)
            if len(frames) != att.count:
                raise MalformedMessage(f"{len(frames)} frames where the attachment says {att.count}")
            for f in frames:
                sender = f.sender
                if f.topic != topic or "@" in sender:
                    raise ValueError   # the frame-by-frame checks say which and why
                decode_map(f.payload)
                cause, trace = f.cause, f.trace
                if cause is not None and "@" not in cause.sender:
                    cause = MessageId(cause.sender + suffix, cause.seq, cause.run)
                if trace is not None and "@" not in trace.sender:
                    trace = MessageId(trace.sender + suffix, trace.seq, trace.run)
                add((MESSAGE, sender + suffix, f.seq, f.time_ns, cause, trace,
                     f.origin or default_origin, f.payload))
        except (*_SAMPLE_ERRORS, ValueError):
            # Which frame, and why: the frame-by-frame checks name it.
            self.check_batch(self._split(data, att.count), topic, att)
            raise MalformedMessage("a malformed sample") from None   # (they found nothing)
        if self._large:   # an array for the arena after all: decoded once, frame by frame
            return self.check_batch(self._split(data, att.count), topic, att)
        return out

    @staticmethod
    def _split(data: bytes, count: int) -> list[msgspec.Raw]:
        try:
            frames = _frames_of(data)
        except _SAMPLE_ERRORS as exc:
            raise MalformedMessage(f"a sample that is not an array of frames ({exc})") from None
        if len(frames) != count:
            raise MalformedMessage(f"{len(frames)} frames where the attachment says {count}")
        return frames

    def check_batch(self, frames, topic: str, att: Attachment) -> list[tuple]:
        """check_sample() frame by frame (each frame its own MessagePack)."""
        host = att.host
        suffix = "@" + host
        default_origin = Origin(att.run, att.origin_host or host)
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
