"""A received message as the buffers of its recorded form, arrays inline.

An arena array travels as a handle that means nothing outside its session, so
a recording stores the array itself (extension type 1, `[dtype.str, shape,
bytes]`, as a small array travels). Rather than build those bytes (a copy of
every frame, twice with msgspec's re-encode), the payload is re-encoded with a
16-byte marker in place of each array, then cut at the markers: the pieces are
the MessagePack around the arrays, each array's extension header, and the
array's own memory in the arena. The writer hands them to one `writev`: the
frame is copied once, into the page cache, while the message's hold keeps its
block alive; the hold is let go as soon as the handler returns.
"""
from __future__ import annotations

import os
import struct

import msgspec

__all__ = ["message_pieces", "prefix", "encode"]

ARRAY_EXT = 1
ARENA_EXT = 2
_TOKEN = os.urandom(12)       # this process's marker: no payload holds it by chance
_MARK = b"\xd8" + bytes([ARRAY_EXT]) + _TOKEN   # fixext16, code 1, token, then an index
_encode = encode = msgspec.msgpack.Encoder().encode
_head = msgspec.msgpack.Encoder().encode


def prefix(sender, seq, time_ns, cause, trace, origin, tail: int = 0) -> bytes:
    """The recorded message's bytes before its payload: a (7 + tail)-array's head
    and six fields; the payload, then `tail` more fields (replay_of) follow."""
    head = _encode((sender, seq, time_ns, cause, trace, origin))
    return bytes([0x97 + tail]) + head[1:]   # fixarray 6 -> 7 (+ tail)


def _ext_header(length: int) -> bytes:
    if length < 256:
        return struct.pack(">BBb", 0xC7, length, ARRAY_EXT)
    if length < 65536:
        return struct.pack(">BHb", 0xC8, length, ARRAY_EXT)
    return struct.pack(">BIb", 0xC9, length, ARRAY_EXT)


def _bin_header(length: int) -> bytes:
    if length < 256:
        return struct.pack(">BB", 0xC4, length)
    if length < 65536:
        return struct.pack(">BH", 0xC5, length)
    return struct.pack(">BI", 0xC6, length)


def _array_pieces(array) -> list:
    import numpy
    if not array.flags.c_contiguous:
        array = numpy.ascontiguousarray(array)
    data = memoryview(array).cast("B") if array.nbytes else b""
    inner = _head((array.dtype.str, list(array.shape)))
    inner = b"\x93" + inner[1:]        # [dtype, shape] -> [dtype, shape, bytes]
    binary = _bin_header(array.nbytes)
    length = len(inner) + len(binary) + array.nbytes
    return [_ext_header(length) + inner + binary, data]


def message_pieces(head: bytes, payload, resolve) -> tuple[list, int]:
    """(buffers, total size) of a recorded message: `head` (prefix()), then the
    payload with every arena handle replaced by its array, read through
    `resolve(code, data)` (the node's ext hook)."""
    arrays: list = []

    def hook(code: int, data: memoryview):
        if code == ARENA_EXT:
            arrays.append(resolve(code, data))
            return msgspec.msgpack.Ext(ARRAY_EXT, _TOKEN + struct.pack("<I", len(arrays) - 1))
        return msgspec.msgpack.Ext(code, bytes(data))

    value = msgspec.msgpack.decode(payload, ext_hook=hook)
    if not arrays:
        return [head, payload], len(head) + len(payload)
    out = _encode(value)
    pieces, at = [head], 0
    while True:
        found = out.find(_MARK, at)
        if found < 0:
            break
        pieces.append(out[at:found])
        index = struct.unpack_from("<I", out, found + len(_MARK))[0]
        pieces.extend(_array_pieces(arrays[index]))
        at = found + len(_MARK) + 4
    pieces.append(out[at:])
    return pieces, sum(len(p) if not isinstance(p, memoryview) else p.nbytes for p in pieces)
