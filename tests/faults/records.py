"""Raw inbox records for malformed.py: valid Ether messages and 20 kinds of
malformed ones, written byte by byte against the wire format of
src/ether/_node/_codec.py (pinned by tests/unit/test_codec.py):

    [version, kind, topic, sender, seq, time_ns, cause, trace, origin, payload(, holds)]

Every malformed record is aimed at a topic the receiver (MalformedTarget)
handles: "fault-valid" (seq: int, crc: int, blob: bytes), "fault-any"
(value: Any, **extra) or "fault-array" (frame: np.ndarray), so that a record
that got through would reach a handler and be counted there.
"""
from __future__ import annotations

import os
import random
import struct
import time
import zlib

import msgspec

WIRE_VERSION = 1
MESSAGE, CONTROL, REQUEST, REPLY, SPILLED = 0, 1, 2, 3, 0x10
ARRAY_EXT, ARENA_EXT = 1, 2
SENDER = "adversary"

_enc = msgspec.msgpack.Encoder().encode
ORIGIN = msgspec.Raw(_enc((bytes(16), "adversary-host")))


def arena_token(sid: str) -> int:
    """The token of an arena of session `sid` (its name in /dev/shm says it)."""
    prefix = f"ether_{sid}_a"
    for name in sorted(os.listdir("/dev/shm")):
        if name.startswith(prefix):
            return int(name[len(prefix):], 16)
    raise LookupError(f"session {sid!r} has no arena")


def fields(seq: int, payload, *, topic: str = "fault-valid", kind: int = MESSAGE) -> list:
    return [WIRE_VERSION, kind, topic, SENDER, seq, time.time_ns(), None, None, ORIGIN, payload]


def encode(items: list) -> bytes:
    return _enc(items)


def _bin32(declared: int, actual: bytes) -> bytes:
    return b"\xc6" + struct.pack(">I", declared) + actual


def _nested(depth: int) -> bytes:
    return b"\x91" * depth + b"\x01"  # [[[...[1]...]]]


KINDS = (
    "random bytes", "empty record", "truncated envelope", "not an envelope",
    "short envelope", "wrong wire version", "wrong field types", "invalid UTF-8 topic",
    "unknown kind", "payload not a map", "invalid arguments", "deep nesting (2,000 levels)",
    "forged handle: integers out of range", "forged handle: integers that overflow",
    "bad inline array", "unknown extension type", "oversize length", "oversize count",
    "forged spill and holds", "forged control and request",
)


class Maker:
    """Deterministic records (seeded): valid(i), malformed(i) -> (kind, bytes), end(n)."""

    def __init__(self, seed: int, arena_token: int):
        self.rng = random.Random(seed)
        self.token = arena_token
        self.seq = 0  # the envelope seq of every record this sender makes

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def valid(self, i: int) -> bytes:
        blob = self.rng.randbytes(self.rng.randrange(0, 120))
        return encode(fields(self._next(), {"seq": i, "crc": zlib.crc32(blob), "blob": blob}))

    def end(self, count: int) -> bytes:
        return encode(fields(self._next(), {"valid": count}, topic="fault-end"))

    def malformed(self, i: int) -> tuple[str, bytes]:
        kind = KINDS[i % len(KINDS)]
        variant = (i // len(KINDS)) % 4
        return kind, getattr(self, "_" + str(KINDS.index(kind)))(variant)

    # ---- the kinds, by index; `v` picks one of up to four variants ----

    def _valid_fields(self, topic: str = "fault-valid") -> list:
        blob = self.rng.randbytes(16)
        return fields(self._next(), {"seq": 0, "crc": zlib.crc32(blob), "blob": blob}, topic=topic)

    def _0(self, v):   # random bytes
        return self.rng.randbytes(self.rng.randrange(1, 300))

    def _1(self, v):   # empty record
        return b""

    def _2(self, v):   # truncated envelope
        full = encode(self._valid_fields())
        return full[:self.rng.randrange(1, len(full))]

    def _3(self, v):   # not an envelope: a map, a string, an int, nil
        return _enc([{"version": 1, "topic": "fault-valid"}, "fault-valid", 12345, None][v])

    def _4(self, v):   # short envelope
        return encode(self._valid_fields()[:[1, 5, 8, 9][v]])

    def _5(self, v):   # wrong wire version
        f = self._valid_fields()
        f[0] = [0, 2, 255, 2 ** 40][v]
        return encode(f)

    def _6(self, v):   # wrong field types: kind, topic, seq, cause
        f = self._valid_fields()
        index, value = [(1, "message"), (2, 42), (4, "seven"), (6, "cause")][v]
        f[index] = value
        return encode(f)

    def _7(self, v):   # invalid UTF-8 topic (same length as "fault-valid")
        data = encode(self._valid_fields())
        return data.replace(b"\xabfault-valid", b"\xab" + b"\xff\xfe" * 5 + b"\xc3", 1)

    def _8(self, v):   # unknown kind (not one of 0-3, no SPILLED bit)
        f = self._valid_fields()
        f[1] = [4, 7, 15, 200][v]
        return encode(f)

    def _9(self, v):   # payload not a map
        f = self._valid_fields()
        f[9] = [[1, 2, 3], 7, "payload", None][v]
        return encode(f)

    def _10(self, v):  # invalid arguments: wrong types, missing, out of range
        f = self._valid_fields()
        f[9] = [{"seq": "x", "crc": 1, "blob": b""}, {"seq": 1.5, "crc": 1, "blob": b""},
                {"crc": 1}, {"seq": 2 ** 64 - 1, "crc": -1, "blob": 5}][v]
        return encode(f)

    def _11(self, v):  # deep nesting, in the payload or in the envelope itself
        if v % 2:
            return b"\x9a" + _nested(2000)
        head = encode(fields(self._next(), None, topic="fault-any"))[:-1]  # all but the nil payload
        return head + b"\x81\xa5value" + _nested(2000)

    def _handle(self, token, block, generation, offset, length, dtype="<f4", shape=None) -> bytes:
        shape = [max(0, length // 4)] if shape is None else shape
        return msgspec.msgpack.Ext(ARENA_EXT, _enc((token, block, generation, offset, length, dtype, shape)))

    def _12(self, v):  # forged handle into a live arena: block, generation, offset, length out of range
        token = self.token
        handle = [self._handle(token, 2 ** 32 - 1, 0, 0, 64),
                  self._handle(token, 0, 2 ** 63, 0, 64),
                  self._handle(token, 0, 0, 2 ** 62, 64),
                  self._handle(token, 0, 0, 0, 2 ** 40)][v]
        return encode(fields(self._next(), {"frame": handle}, topic="fault-array"))

    def _13(self, v):  # forged handle: negative or 64-bit-overflowing integers, other arenas
        token = self.token
        handle = [self._handle(token, -1, 0, 0, 64),
                  self._handle(token, 0, -(2 ** 63), -5, 64),
                  self._handle(2 ** 64 - 1, 0, 0, 0, 64),
                  self._handle(token + 977, 0, 0, 0, 64, shape=[-3])][v]
        return encode(fields(self._next(), {"frame": handle}, topic="fault-array"))

    def _14(self, v):  # bad inline array: bytes that do not fit the shape, object dtype, bad dtype
        header = [("<f4", [10], b"\0" * 7), ("|O", [1], b"\0" * 8), ("zz", [1], b""),
                  ("<f8", [2 ** 40, 2 ** 40], b"\0" * 8)][v]
        frame = msgspec.msgpack.Ext(ARRAY_EXT, _enc(header))
        return encode(fields(self._next(), {"frame": frame}, topic="fault-array"))

    def _15(self, v):  # unknown extension type
        code = [3, 42, 127, -7][v]
        return encode(fields(self._next(), {"value": msgspec.msgpack.Ext(code, b"xyz")}, topic="fault-any"))

    def _16(self, v):  # oversize length: a bin or str that claims ~4 GiB
        head = encode(fields(self._next(), None))[:-1]
        if v % 2:
            return head + b"\x83\xa3seq\x01\xa3crc\x01\xa4blob" + _bin32(0xFFFFFFF0, b"xx")
        return encode(fields(self._next(), {"seq": 1})).replace(b"\xabfault-valid",
                                                                b"\xdb\xff\xff\xff\xf0fault", 1)

    def _17(self, v):  # oversize count: an array or map that claims 2**32 - 1 entries
        if v % 2:
            return b"\xdd\xff\xff\xff\xff" + encode(self._valid_fields())[1:]
        head = encode(fields(self._next(), None, topic="fault-any"))[:-1]
        return head + b"\xdf\xff\xff\xff\xff\xa5value\x01"

    def _18(self, v):  # forged spill (SPILLED kind, bogus handle) and holds (blocks out of range)
        f = self._valid_fields()
        if v == 0:
            f[1] = MESSAGE | SPILLED
            f[9] = self._handle(self.token, 2 ** 31, 7, 0, 100, dtype="|u1", shape=[100])
        elif v == 1:
            f[1] = MESSAGE | SPILLED
            f[9] = {"not": "a handle"}
        elif v == 2:  # (and no frame for the handler: the payload is invalid too)
            f = fields(self._next(), {"seq": 0}, topic="fault-array")
            f.append([[self.token, 2 ** 32 - 1, 0], [-1, -1, -1]])
        else:
            f.append([["x", 0, 0]])
        return encode(f)

    def _19(self, v):  # forged control (from a stranger; malformed from "main") and requests
        if v == 0:
            f = fields(self._next(), {}, topic="stop", kind=CONTROL)  # from "adversary"
        elif v == 1:
            f = fields(self._next(), {"request": -1}, topic="drain", kind=CONTROL)
            f[3] = "main"
        elif v == 2:
            f = fields(self._next(), [1, 2, 3], topic="service:MalformedTarget.pid", kind=REQUEST)
        else:
            f = fields(self._next(), "not a request", topic="service:target.pid", kind=REQUEST)
        return encode(f)


assert len(KINDS) == 20
