"""The handle of an array in an arena, as it travels inside a message: the
MessagePack extension type ARENA_EXT whose data is

    [arena token, block, generation, offset, length, dtype.str, shape]

offset and length are bytes within the block's data; the reader checks both
against the block (in C) before it makes a view.
"""
from __future__ import annotations

import msgspec

from .. import _errors as errors

ARENA_EXT = 2

_encode = msgspec.msgpack.Encoder().encode
# The handle's decoder; it raises msgspec's errors (decode() turns them into ours).
decode_raw = msgspec.msgpack.Decoder(tuple[int, int, int, int, int, str, list[int]]).decode


def encode(token: int, block: int, generation: int, offset: int, array) -> msgspec.msgpack.Ext:
    return msgspec.msgpack.Ext(ARENA_EXT, _encode(
        (token, block, generation, offset, array.nbytes, array.dtype.str, array.shape)))


def decode(data) -> tuple:
    """(token, block, generation, offset, length, dtype, shape); MalformedMessage
    if data is not a handle."""
    try:
        return decode_raw(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise errors.MalformedMessage(f"malformed array handle ({exc})") from None
