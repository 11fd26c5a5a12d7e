"""An MCAP writer built for a recorder that may be killed at any instant.

Ether writes MCAP itself (docs/design/recording.md says why: the `mcap`
package's writer costs 4-6x more per message and keeps a whole chunk in memory);
the `mcap` package reads every file back in the tests, with CRCs checked.

- Messages go into a chunk in memory: one `encode_into` of the record's fields
  straight into the chunk's buffer, a header packed in front of it. Each
  message's index entry (log time, offset) goes into its channel's list; the
  chunk's message indexes are those lists packed in one call each (sorted only
  if the wall clock went back), never a Python loop over the messages.
- `add_many_tails` takes records whose fields are already MessagePack (the
  recorder's plain messages, from their wire bytes): per message a header
  pack, the 0x97 array head in it, and two appends.
- `add_many` takes a batch (what the recorder read from its inbox at once):
  one lock, one call and one due check for the batch; per message only its
  framing. A chunk a batch opens is due `flush_interval` after the batch was
  received, not after it was handled.
- A chunk is written (one `writev` of any new channel records, the chunk and its
  message indexes) once it holds `chunk_bytes`, or `flush_interval` after its
  first message (the flusher calls `tick()` when no message comes), so a kill
  loses at most that much. `fsync` runs every `fsync_interval`, in the flusher's
  thread, never in the one that adds messages.
- A large message (an array frame) gets a chunk of its own, written from the
  caller's buffers (the arena's memory) in one `writev`: one copy, into the page
  cache.
- Write-behind (_behind.py, a thread): the kernel starts writing every 8 MiB
  back as it comes, and the page cache keeps only the file's last 32 MiB. Only
  a hint: the fsyncs stay.
- `close()` writes the data end, the summary (channels, statistics, chunk,
  metadata and attachment indexes, summary offsets) and the footer. Without
  them (a kill) the file still reads by a linear scan, and `recover` rebuilds
  the index.
- A write error (disk full, I/O error) is raised once as RecordingError naming
  the file; the file is cut back to its last whole chunk, and nothing more is
  written to it.

The buffer state changes in an order that survives an exception raised between
any two steps (the watchdog's SystemExit lands in the thread that adds
messages): only `committed` bytes of the chunk are ever written.
"""
from __future__ import annotations

import errno
import os
import struct
import threading
from array import array
import time
import zlib

import msgspec
import numpy

from . import _behind
from . import _format as fmt

__all__ = ["Writer", "RecordingError", "LARGE_MESSAGE"]

#: A message at least this large gets a chunk of its own, written from its buffers.
LARGE_MESSAGE = 64 * 1024

_pack_head = fmt.MESSAGE_HEAD.pack_into
_head = fmt.MESSAGE_HEAD.pack
_head_tail = struct.Struct(fmt.MESSAGE_HEAD.format + "B").pack   # ... and the record's first byte
_ZERO_HEAD = bytes(fmt.MESSAGE_HEAD_SIZE)
_MESSAGE = fmt.MESSAGE


def _trim(entries: list, committed: int) -> None:
    """Drop the index entry (channel, log time, offset) of a message past
    `committed`: one that an interrupted add left."""
    del entries[len(entries) - len(entries) % 3:]
    while entries and entries[-1] >= committed:
        del entries[-3:]


def _message_indexes(entries: list) -> tuple[dict[int, bytes], int, int, int]:
    """({channel: its (log time, offset) u64 pairs, sorted by time, packed}, the
    chunk's first and last log time, how many): in numpy, not per message."""
    table = numpy.frombuffer(array("Q", entries), dtype=numpy.uint64).reshape(-1, 3)
    times = table[:, 1]
    first, last = int(times.min()), int(times.max())
    ordered = bool((times[1:] >= times[:-1]).all())
    if entries[0::3].count(entries[0]) * 3 == len(entries):  # one channel (the common case)
        if not ordered:
            table = table[numpy.lexsort((table[:, 2], times))]
        pairs = numpy.ascontiguousarray(table[:, 1:], dtype="<u8")
        return {int(entries[0]): pairs.tobytes()}, first, last, len(table)
    if not ordered:                                         # the wall clock went back
        table = table[numpy.lexsort((table[:, 2], times, table[:, 0]))]
    else:                                                   # several channels: group them,
        table = table[numpy.argsort(table[:, 0].astype(numpy.uint16), kind="stable")]  # in order
    channels, at = numpy.unique(table[:, 0], return_index=True)
    pairs = numpy.ascontiguousarray(table[:, 1:], dtype="<u8")
    bounds = [*at.tolist(), len(table)]
    per = {int(c): pairs[bounds[i]:bounds[i + 1]].tobytes() for i, c in enumerate(channels)}
    return per, first, last, len(table)


class RecordingError(OSError):
    """The recording's file could not be written (disk full, an I/O error)."""


def _compressor(name: str):
    if name == "none":
        return ""
    if name == "lz4":
        import lz4.frame
        return "lz4", lz4.frame.compress
    if name == "zstd":
        import zstandard
        return "zstd", zstandard.ZstdCompressor(level=1).compress
    raise ValueError(f"compression {name!r} is not one of none, lz4, zstd")


class Writer:
    def __init__(self, path: str, *, library: str = "ether", compression: str = "none",
                 chunk_bytes: int = 1 << 20, flush_interval: float = 0.1,
                 fsync_interval: float = 1.0, large_crc: bool = False,
                 write_behind: bool = True):
        """path: the file to create (it must not exist). large_crc: also compute
        the CRC of a large message's own chunk (2.5 GB/s of CPU; off by default,
        since the arrays' chunks would otherwise cost twice the write).
        write_behind: start writeback every 8 MiB and keep about 32 MiB of the
        file in the page cache (_behind.py)."""
        self.path = os.fspath(path)
        self._compression = _compressor(compression)
        self.chunk_bytes = chunk_bytes
        self.flush_ns = int(flush_interval * 1e9)
        self.fsync_interval = fsync_interval
        self.large_crc = large_crc
        self._lock = threading.Lock()
        self._acquire, self._release = self._lock.acquire, self._lock.release
        self._sync_lock = threading.Lock()   # fsync against close
        self._encode_into = msgspec.msgpack.Encoder().encode_into
        self._encode = msgspec.msgpack.Encoder().encode
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        self.offset = 0                       # bytes written so far (whole records)
        self.failed: RecordingError | None = None
        self.closed = False
        self.topics: dict[str, int] = {}      # topic -> channel id
        self._channels: list[bytes] = []      # channel records, for the summary
        self._schemas: list[bytes] = []
        self._pending: list[bytes] = []       # records to write before the next chunk
        self._buf = bytearray()
        self._entries: list[int] = []         # channel, log_time, offset per message in the chunk
        self._committed = 0                   # bytes of _buf that hold whole messages
        self._opened = 0                      # log time of the chunk's first message
        self._due = 0                         # ... plus the flush interval
        self._chunk_indexes: list[bytes] = []
        self._metadata_indexes: list[bytes] = []
        self._attachment_indexes: list[bytes] = []
        self.messages = 0
        self.per_channel: dict[int, int] = {}
        self.start_time = 0
        self.end_time = 0
        self._last_sync = time.monotonic()
        self.behind = _behind.WriteBehind(self._fd, self._sync_lock) \
            if write_behind and _behind.available() else None
        self._write([fmt.MAGIC, fmt.header(library)])

    # ---- registering ----

    def channel(self, topic: str, *, encoding: str = fmt.ENCODING, schema_id: int = 0,
                metadata: dict[str, str] | None = None) -> int:
        """The channel id of topic, registered at first use (written before the
        chunk that first holds one of its messages)."""
        with self._lock:
            found = self.topics.get(topic)
            if found is not None:
                return found
            channel_id = len(self.topics) + 1
            record = fmt.channel(channel_id, topic, encoding, schema_id, metadata)
            self.topics[topic] = channel_id
            self._channels.append(record)
            self._pending.append(record)
            self.per_channel[channel_id] = 0
            return channel_id

    def schema(self, name: str, encoding: str, data: bytes) -> int:
        with self._lock:
            schema_id = len(self._schemas) + 1
            record = fmt.schema(schema_id, name, encoding, data)
            self._schemas.append(record)
            self._pending.append(record)
            return schema_id

    # ---- messages ----
    # The three adds are the recorder's per-message path: the lock is taken by
    # its bound methods in a try (cheaper than `with`), and the only state
    # touched is the chunk's buffer, its entry list and `committed`.

    def add(self, channel_id: int, sequence: int, log_time: int, publish_time: int, fields) -> None:
        """Add one message whose data is `fields` encoded as MessagePack."""
        self._acquire()
        try:
            buf = self._buf
            start = self._committed
            if not start or len(buf) != start:
                self._begin(log_time)
            buf += _ZERO_HEAD
            self._encode_into(fields, buf, -1)
            end = len(buf)
            _pack_head(buf, start, _MESSAGE, end - start - 9, channel_id, sequence & 0xFFFFFFFF,
                       log_time, publish_time)
            self._entries += (channel_id, log_time, start)
            self._committed = end
            if end >= self.chunk_bytes or log_time >= self._due:
                self._write_chunk()
        finally:
            self._release()

    def add_bytes(self, channel_id: int, sequence: int, log_time: int, publish_time: int,
                  data) -> None:
        """Add one message whose data is the buffer `data`."""
        size = len(data)
        if size >= LARGE_MESSAGE:
            return self.add_data(channel_id, sequence, log_time, publish_time, (data,), size)
        self._acquire()
        try:
            buf = self._buf
            start = self._committed
            if not start or len(buf) != start:
                self._begin(log_time)
            buf += _head(_MESSAGE, size + 22, channel_id, sequence & 0xFFFFFFFF, log_time,
                         publish_time)
            buf += data
            self._entries += (channel_id, log_time, start)
            self._committed = end = start + size + 31
            if end >= self.chunk_bytes or log_time >= self._due:
                self._write_chunk()
        finally:
            self._release()

    # The batch adds: the recorder hands over what one read of its inbox brought
    # (Recorder._hand_over): one lock, one call and one due check per batch, and
    # per message only its framing, its index entry and `committed`, in that
    # order, so a batch cut short keeps its whole messages (as single adds would).

    def add_many(self, messages, received_ns: int | None = None) -> None:
        """Add a batch of messages, each (channel_id, sequence, log_time,
        publish_time, fields), fields encoded as MessagePack. received_ns: when
        the batch reached the caller; a chunk the batch opens is due one flush
        interval after it (default: its first message's log time)."""
        if not messages:
            return
        self._acquire()
        try:
            buf = self._buf
            start = self._committed
            if not start or len(buf) != start:
                self._begin(messages[0][2] if received_ns is None else received_ns)
            entries = self._entries
            limit = self.chunk_bytes
            encode_into = self._encode_into
            log_time = 0
            for channel_id, sequence, log_time, publish_time, fields in messages:
                buf += _ZERO_HEAD
                encode_into(fields, buf, -1)
                end = len(buf)
                _pack_head(buf, start, _MESSAGE, end - start - 9, channel_id,
                           sequence & 0xFFFFFFFF, log_time, publish_time)
                entries += (channel_id, log_time, start)
                self._committed = start = end
                if end >= limit:
                    self._write_chunk()
                    buf, entries, start = self._buf, self._entries, 0
                    self._begin(log_time)
            if start and log_time >= self._due:
                self._write_chunk()
        finally:
            self._release()

    def add_many_bytes(self, messages, received_ns: int | None = None) -> None:
        """Add a batch of messages, each (channel_id, sequence, log_time,
        publish_time, data), data a buffer (a large one gets a chunk of its own,
        as in add_bytes). received_ns: as in add_many."""
        if not messages:
            return
        self._acquire()
        try:
            buf = self._buf
            start = self._committed
            if not start or len(buf) != start:
                self._begin(messages[0][2] if received_ns is None else received_ns)
            entries = self._entries
            limit = self.chunk_bytes
            log_time = 0
            for channel_id, sequence, log_time, publish_time, data in messages:
                size = len(data)
                if size >= LARGE_MESSAGE:
                    if start:
                        self._write_chunk()
                    self._write_large(channel_id, sequence, log_time, publish_time, (data,), size)
                    buf, entries, start = self._buf, self._entries, 0
                    self._begin(log_time)
                    continue
                buf += _head(_MESSAGE, size + 22, channel_id, sequence & 0xFFFFFFFF, log_time,
                             publish_time)
                buf += data
                entries += (channel_id, log_time, start)
                self._committed = start = start + size + 31
                if start >= limit:
                    self._write_chunk()
                    buf, entries, start = self._buf, self._entries, 0
                    self._begin(log_time)
            if start and log_time >= self._due:
                self._write_chunk()
        finally:
            self._release()

    def add_many_tails(self, messages, received_ns: int | None = None,
                       now: int | None = None) -> None:
        """Add a batch of small messages, each (channel_id, sequence, log_time,
        publish_time, tail), whose record is a 7-field array: the byte 0x97, then
        `tail`, its fields from the sender on (the recorder takes them from its
        wire envelopes: Recorder._dispatch). Per message one header pack and two
        appends, no encoding. received_ns: as in add_many. now: the clock the
        due check reads (default: the last message's log time)."""
        if not messages:
            return
        self._acquire()
        try:
            buf = self._buf
            start = self._committed
            if not start or len(buf) != start:
                self._begin(messages[0][2] if received_ns is None else received_ns)
            entries = self._entries
            limit = self.chunk_bytes
            pack = _head_tail
            log_time = 0
            for channel_id, sequence, log_time, publish_time, tail in messages:
                size = len(tail) + 1                   # 0x97 and the tail
                buf += pack(_MESSAGE, size + 22, channel_id, sequence & 0xFFFFFFFF, log_time,
                            publish_time, 0x97)
                buf += tail
                entries += (channel_id, log_time, start)
                self._committed = start = start + size + 31
                if start >= limit:
                    self._write_chunk()
                    buf, entries, start = self._buf, self._entries, 0
                    self._begin(log_time)
            if start and (log_time if now is None else now) >= self._due:
                self._write_chunk()
        finally:
            self._release()

    def due_after(self, received_ns: int) -> int:
        """When the chunk in progress must be written: its due time, or, if none is
        open, one flush interval after received_ns (when a message that would open
        it was received)."""
        return self._due if self._committed else received_ns + self.flush_ns

    def add_data(self, channel_id: int, sequence: int, log_time: int, publish_time: int,
                 pieces, size: int) -> None:
        """Add one message whose data is the concatenation of `pieces` (buffers,
        `size` bytes in all). A large one is written at once, in a chunk of its own,
        straight from those buffers."""
        with self._lock:
            if self.failed is not None or self.closed:
                raise self._refusal()
            if size < LARGE_MESSAGE:
                buf = self._buf
                start = self._committed
                if not start or len(buf) != start:
                    self._begin(log_time)
                buf += _ZERO_HEAD
                for piece in pieces:
                    buf += piece
                _pack_head(buf, start, _MESSAGE, len(buf) - start - 9, channel_id,
                           sequence & 0xFFFFFFFF, log_time, publish_time)
                self._entries += (channel_id, log_time, start)
                self._committed = end = len(buf)
                if end >= self.chunk_bytes or log_time >= self._due:
                    self._write_chunk()
                return
            if self._committed:
                self._write_chunk()
            self._write_large(channel_id, sequence, log_time, publish_time, pieces, size)

    def _begin(self, log_time: int) -> None:
        """Before a message goes into the chunk: open the chunk (refused after an
        error or the close), or first undo what an interrupted add left past
        `committed` (its bytes, its index entry)."""
        committed = self._committed
        if not committed:
            if self.failed is not None or self.closed:
                raise self._refusal()
            self._opened = log_time
            self._due = log_time + self.flush_ns
        del self._buf[committed:]
        _trim(self._entries, committed)

    def _write_large(self, channel_id, sequence, log_time, publish_time, pieces, size) -> None:
        head = bytearray(_ZERO_HEAD)
        _pack_head(head, 0, _MESSAGE, size + 22, channel_id, sequence & 0xFFFFFFFF, log_time,
                   publish_time)
        records_size = len(head) + size
        crc = 0
        if self.large_crc:
            crc = zlib.crc32(head)
            for piece in pieces:
                crc = zlib.crc32(piece, crc)
        compression = fmt.string("")
        content = 8 + 8 + 8 + 4 + len(compression) + 8 + records_size
        chunk_head = fmt.CHUNK_HEAD.pack(fmt.CHUNK, content, log_time, log_time, records_size, crc) \
            + compression + struct.pack("<Q", records_size)
        chunk_start = self.offset + sum(map(len, self._pending))
        chunk_length = 9 + content
        index = fmt.message_index(channel_id, [(log_time, 0)])
        self._write([*self._pending, chunk_head, head, *pieces, index])
        self._pending = []
        self._chunk_indexes.append(fmt.chunk_index(
            log_time, log_time, chunk_start, chunk_length, {channel_id: chunk_start + chunk_length},
            len(index), "", records_size, records_size))
        self.per_channel[channel_id] += 1
        self._count(log_time, log_time, 1)

    def _count(self, start: int, end: int, count: int) -> None:
        if self.messages == 0 or start < self.start_time:
            self.start_time = start
        if end > self.end_time:
            self.end_time = end
        self.messages += count

    # ---- chunks ----

    def flush(self) -> None:
        """Write the chunk in progress now (to the OS; sync() makes it durable)."""
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        if self._committed and self.failed is None:
            self._write_chunk()
        elif self._pending and self.failed is None:
            self._write(self._pending)
            self._pending = []

    def tick(self) -> None:
        """The flusher's call, every flush interval: write a chunk that has waited
        that long; fsync once every fsync interval."""
        with self._lock:
            if self._committed and time.time_ns() - self._opened >= self.flush_ns \
                    and self.failed is None and not self.closed:
                try:
                    self._write_chunk()
                except RecordingError:
                    pass  # raised (and reported) by the next add, and by close
        if time.monotonic() - self._last_sync >= self.fsync_interval:
            self.sync()

    def sync(self) -> None:
        with self._sync_lock:
            if self.closed:
                return
            self._last_sync = time.monotonic()
            try:
                self._behind_error()
                os.fsync(self._fd)
            except OSError as exc:
                self._fail(exc)

    def _behind_error(self) -> None:
        """Raise what the write-behind's fdatasync saw: the kernel reports a
        writeback error once per open file, so our own fsync would not."""
        if self.behind is not None and self.behind.error is not None:
            raise self.behind.error

    def _write_chunk(self) -> None:
        committed = self._committed
        buf, entries = self._buf, self._entries
        self._buf, self._entries, self._committed = bytearray(), [], 0
        del buf[committed:]                   # what an interrupted add left
        _trim(entries, committed)
        per, start, end, count = _message_indexes(entries)
        crc = zlib.crc32(buf)
        if self._compression:
            name, compress = self._compression
            data = compress(bytes(buf))
        else:
            name, data = "", buf
        compression = fmt.string(name)
        content = 8 + 8 + 8 + 4 + len(compression) + 8 + len(data)
        chunk = fmt.CHUNK_HEAD.pack(fmt.CHUNK, content, start, end, len(buf), crc) + compression \
            + struct.pack("<Q", len(data))
        pending = self._pending
        chunk_start = self.offset + sum(map(len, pending))
        chunk_length = 9 + content
        offsets, indexes, at = {}, [], chunk_start + chunk_length
        for channel_id, body in per.items():
            head = fmt.message_index_head(channel_id, len(body))
            offsets[channel_id] = at
            at += len(head) + len(body)
            indexes += (head, body)
            self.per_channel[channel_id] += len(body) // 16
        self._write([*pending, chunk, data, *indexes])
        self._pending = []
        self._chunk_indexes.append(fmt.chunk_index(
            start, end, chunk_start, chunk_length, offsets, at - chunk_start - chunk_length,
            name, len(data), len(buf)))
        self._count(start, end, count)

    # ---- metadata, attachments ----

    def metadata(self, name: str, values: dict[str, str]) -> None:
        """A Metadata record, written now (after the chunk in progress)."""
        with self._lock:
            self._check()
            if self._committed:
                self._write_chunk()
            record = fmt.metadata(name, {k: str(v) for k, v in values.items()})
            offset = self.offset + sum(map(len, self._pending))
            self._write([*self._pending, record])
            self._pending = []
            self._metadata_indexes.append(fmt.metadata_index(offset, len(record), name))

    def attachment(self, name: str, media_type: str, data: bytes) -> None:
        with self._lock:
            self._check()
            if self._committed:
                self._write_chunk()
            now = time.time_ns()
            record = fmt.attachment(name, media_type, data, now)
            offset = self.offset + sum(map(len, self._pending))
            self._write([*self._pending, record])
            self._pending = []
            self._attachment_indexes.append(
                fmt.attachment_index(offset, len(record), now, len(data), name, media_type))

    # ---- the end ----

    def close(self) -> None:
        """Write what is left, the summary and the footer; fsync; close. After a
        write error: just close (the file ends at its last whole chunk)."""
        with self._lock:
            if self.closed:
                return
            try:
                if self.failed is None:
                    self._flush()
                    self._write_summary()
                    with self._sync_lock:   # no fdatasync of the write-behind in between
                        self._behind_error()
                        os.fsync(self._fd)
            except OSError as exc:
                if not isinstance(exc, RecordingError):
                    self._fail(exc)
            finally:
                with self._sync_lock:
                    self.closed = True
                    if self.behind is not None:
                        self.behind.stop()
                    os.close(self._fd)
        if self.failed is not None:
            raise self.failed

    def _write_summary(self) -> None:
        data_end = fmt.data_end()
        self._write([data_end])
        start = self.offset
        groups, parts, at = [], [], start

        def group(opcode: int, records: list[bytes]) -> None:
            nonlocal at
            if records:
                length = sum(map(len, records))
                groups.append(fmt.summary_offset(opcode, at, length))
                parts.extend(records)
                at += length

        group(fmt.SCHEMA, self._schemas)
        group(fmt.CHANNEL, self._channels)
        group(fmt.STATISTICS, [fmt.statistics(
            self.messages, len(self._schemas), len(self._channels), len(self._attachment_indexes),
            len(self._metadata_indexes), len(self._chunk_indexes), self.start_time, self.end_time,
            self.per_channel)])
        group(fmt.CHUNK_INDEX, self._chunk_indexes)
        group(fmt.ATTACHMENT_INDEX, self._attachment_indexes)
        group(fmt.METADATA_INDEX, self._metadata_indexes)
        offsets_start = at
        summary = b"".join(parts + groups)
        footer_head = struct.pack("<BQQQ", fmt.FOOTER, 20, start, offsets_start)
        crc = zlib.crc32(footer_head, zlib.crc32(summary))
        self._write([summary, footer_head, struct.pack("<I", crc), fmt.MAGIC])

    # ---- the file ----

    def _write(self, parts) -> None:
        """Write whole records; on an error cut the file back to the last whole one."""
        views = [memoryview(p) for p in parts]
        total = sum(v.nbytes for v in views)
        done = 0
        try:
            while views:
                n = os.writev(self._fd, views[:1024])
                done += n
                while views and n >= views[0].nbytes:
                    n -= views[0].nbytes
                    views.pop(0)
                if n:
                    views[0] = views[0][n:]
        except OSError as exc:
            try:
                os.ftruncate(self._fd, self.offset)
            except OSError:
                pass
            self._fail(exc, wrote=done, wanted=total)
        self.offset += total
        if self.behind is not None:
            self.behind.advance(self.offset)

    def _fail(self, exc: OSError, *, wrote: int = 0, wanted: int = 0) -> None:
        if self.failed is None:
            what = errno.errorcode.get(exc.errno or 0, "error")
            detail = f" ({wrote} of {wanted} bytes of a write went in)" if wanted else ""
            self.failed = RecordingError(
                exc.errno, f"cannot write the recording {self.path}: {what}: {exc.strerror or exc}"
                f"{detail}; the file keeps its first {self.offset} bytes (whole chunks), and "
                f"'ether bag recover' makes it indexed")
            self.failed.filename = self.path
        raise self.failed

    def _check(self) -> None:
        if self.failed is not None or self.closed:
            raise self._refusal()

    def _refusal(self) -> RecordingError:
        return self.failed or RecordingError(errno.EBADF, f"the recording {self.path} is closed")

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
