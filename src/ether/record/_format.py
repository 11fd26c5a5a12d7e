"""The MCAP records Ether writes and reads, as bytes (spec: mcap.dev/spec).

Only what the writer (_writer.py) and the reader (_reader.py) share lives here:
the opcodes, the magic, and the encoders of the summary records. Every record
is `opcode u8, length u64, content`; strings are `u32 length + UTF-8`, maps
`u32 byte length + entries`, all little-endian.

The message data Ether stores (profile "ether", encoding "msgpack", schema id 0)
is one MessagePack array:

    [sender, seq, time_ns, cause, trace, origin, payload]

with the fields of the envelope (see ether/_node/_codec.py): `cause` and `trace`
are message ids `[sender, seq]` or `[sender, seq, run]`, `origin` is nil for a
message of the recording's own session (its run and host are in the
`ether.session` metadata) or `[run, host]`, and `payload` is the map as it was
received, with arrays inline (extension type 1: `[dtype.str, shape, bytes]`).
"""
from __future__ import annotations

import struct

MAGIC = b"\x89MCAP0\r\n"
PROFILE = "ether"
ENCODING = "msgpack"

HEADER, FOOTER, SCHEMA, CHANNEL, MESSAGE, CHUNK = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
MESSAGE_INDEX, CHUNK_INDEX, ATTACHMENT, ATTACHMENT_INDEX = 0x07, 0x08, 0x09, 0x0A
STATISTICS, METADATA, METADATA_INDEX, SUMMARY_OFFSET, DATA_END = 0x0B, 0x0C, 0x0D, 0x0E, 0x0F

RECORD = struct.Struct("<BQ")                    # opcode, length
MESSAGE_HEAD = struct.Struct("<BQHIQQ")          # record + channel, sequence, log, publish
MESSAGE_HEAD_SIZE = MESSAGE_HEAD.size            # 31
CHUNK_HEAD = struct.Struct("<BQQQQI")            # record + start, end, uncompressed size, crc
INDEX_ENTRY = struct.Struct("<QQ")


def string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<I", len(data)) + data


def string_map(mapping: dict[str, str]) -> bytes:
    body = b"".join(string(k) + string(v) for k, v in mapping.items())
    return struct.pack("<I", len(body)) + body


def record(opcode: int, content: bytes) -> bytes:
    return RECORD.pack(opcode, len(content)) + content


def header(library: str) -> bytes:
    return record(HEADER, string(PROFILE) + string(library))


def channel(channel_id: int, topic: str, encoding: str = ENCODING, schema_id: int = 0,
            metadata: dict[str, str] | None = None) -> bytes:
    return record(CHANNEL, struct.pack("<HH", channel_id, schema_id) + string(topic) +
                  string(encoding) + string_map(metadata or {}))


def schema(schema_id: int, name: str, encoding: str, data: bytes) -> bytes:
    return record(SCHEMA, struct.pack("<H", schema_id) + string(name) + string(encoding) +
                  struct.pack("<I", len(data)) + data)


def metadata(name: str, values: dict[str, str]) -> bytes:
    return record(METADATA, string(name) + string_map(values))


def attachment(name: str, media_type: str, data: bytes, time_ns: int) -> bytes:
    import zlib
    content = struct.pack("<QQ", time_ns, time_ns) + string(name) + string(media_type) + \
        struct.pack("<Q", len(data)) + data
    return record(ATTACHMENT, content + struct.pack("<I", zlib.crc32(content)))


def message_index(channel_id: int, entries: list[tuple[int, int]]) -> bytes:
    body = b"".join(INDEX_ENTRY.pack(t, o) for t, o in entries)
    return message_index_head(channel_id, len(body)) + body


def message_index_head(channel_id: int, body_length: int) -> bytes:
    """A Message Index record before its `body_length` bytes of (log time, offset) entries."""
    return struct.pack("<BQHI", MESSAGE_INDEX, 6 + body_length, channel_id, body_length)


def chunk_index(start: int, end: int, offset: int, length: int, index_offsets: dict[int, int],
                index_length: int, compression: str, compressed: int, uncompressed: int) -> bytes:
    offsets = b"".join(struct.pack("<HQ", c, o) for c, o in index_offsets.items())
    return record(CHUNK_INDEX, struct.pack("<QQQQI", start, end, offset, length, len(offsets)) +
                  offsets + struct.pack("<Q", index_length) + string(compression) +
                  struct.pack("<QQ", compressed, uncompressed))


def statistics(messages: int, schemas: int, channels: int, attachments: int, metadata_count: int,
               chunks: int, start: int, end: int, per_channel: dict[int, int]) -> bytes:
    counts = b"".join(struct.pack("<HQ", c, n) for c, n in sorted(per_channel.items()))
    return record(STATISTICS, struct.pack("<QHIIIIQQI", messages, schemas, channels, attachments,
                                          metadata_count, chunks, start, end, len(counts)) + counts)


def metadata_index(offset: int, length: int, name: str) -> bytes:
    return record(METADATA_INDEX, struct.pack("<QQ", offset, length) + string(name))


def attachment_index(offset: int, length: int, time_ns: int, size: int, name: str,
                     media_type: str) -> bytes:
    return record(ATTACHMENT_INDEX, struct.pack("<QQQQQ", offset, length, time_ns, time_ns, size) +
                  string(name) + string(media_type))


def summary_offset(opcode: int, start: int, length: int) -> bytes:
    return record(SUMMARY_OFFSET, struct.pack("<BQQ", opcode, start, length))


def data_end(crc: int = 0) -> bytes:
    return record(DATA_END, struct.pack("<I", crc))
