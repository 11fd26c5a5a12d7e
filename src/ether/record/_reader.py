"""Reading recordings: `Recording` over one MCAP file or a folder of them (the
splits of a recording, in name order).

A finished file is read through its summary (chunk indexes: a time window
reads only its chunks). A file without one (its recorder was killed, or the
disk filled up) is read by a linear scan, which stops at the first record that
is not whole or whose CRC fails: it yields only whole messages, and the file's
`status` says "truncated". No other exception comes out of a damaged file.
"""
from __future__ import annotations

import mmap
import os
import struct
import zlib
from pathlib import Path
from typing import Iterable, Iterator

import msgspec

from ether import lowlevel

from . import _format as fmt

__all__ = ["Recording", "RecordedMessage", "RecordingFile", "open_recording"]

_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")
_REC = fmt.RECORD
_CALLS = lowlevel.CALL_PREFIX   # the copies of service calls (ether/service/...)
_MSG = struct.Struct("<HIQQ")
_CHUNK = struct.Struct("<QQQI")


class _Data(msgspec.Struct, array_like=True, frozen=True):
    sender: str
    seq: int
    time_ns: int
    cause: tuple | None
    trace: tuple | None
    origin: tuple | None
    payload: msgspec.Raw
    replay_of: tuple | None = None   # [sender, seq, run]: absent before replays were marked


_decode_data = msgspec.msgpack.Decoder(_Data).decode
_array_header = msgspec.msgpack.Decoder(tuple[str, list[int], bytes]).decode


def _ext_hook(code: int, data: memoryview):
    if code == 1:
        import numpy
        dtype, shape, raw = _array_header(data)
        return numpy.frombuffer(raw, dtype=numpy.dtype(dtype)).reshape(shape)  # read-only
    return msgspec.msgpack.Ext(code, bytes(data))


_decode_payload = msgspec.msgpack.Decoder(ext_hook=_ext_hook).decode


class RecordedMessage:
    """One recorded message: its topic, the envelope's fields, and `data` (the
    payload as a dict, arrays read-only ndarrays, decoded when first read)."""

    __slots__ = ("topic", "sender", "seq", "time_ns", "log_time_ns", "cause", "trace", "origin",
                 "run", "raw", "_data", "file", "replay_of")

    def __init__(self, topic, record: _Data, log_time_ns: int, run: bytes | None, file):
        self.topic = topic
        self.sender, self.seq, self.time_ns = record.sender, record.seq, record.time_ns
        self.log_time_ns = log_time_ns
        cause, trace = record.cause, record.trace
        # A local id is (sender, seq), as on the wire; files and records written
        # from an Envelope's MessageId carry it as [sender, seq, nil].
        if cause is not None and len(cause) == 3 and cause[2] is None:
            cause = cause[:2]
        if trace is not None and len(trace) == 3 and trace[2] is None:
            trace = trace[:2]
        self.cause, self.trace, self.origin = cause, trace, record.origin
        self.run = bytes(record.origin[0]) if record.origin else run   # the run it was first published in
        self.raw = record.payload
        r = record.replay_of      # (run, sender, seq) of the recorded message this replays
        self.replay_of = None if r is None else (bytes(r[2]) if len(r) > 2 and r[2] else None,
                                                  r[0], r[1])
        self._data = None
        self.file = file

    @property
    def data(self) -> dict:
        if self._data is None:
            self._data = _decode_payload(self.raw)
        return self._data

    @property
    def id(self) -> tuple:
        """(run, sender, seq): unique across runs and hosts."""
        return (self.run, self.sender, self.seq)

    def _ref(self, ref) -> tuple | None:
        if ref is None:
            return None
        run = bytes(ref[2]) if len(ref) > 2 and ref[2] is not None else self.run
        return (run, ref[0], ref[1])

    @property
    def cause_id(self) -> tuple | None:
        return self._ref(self.cause)

    @property
    def root_id(self) -> tuple:
        """The id of the root of this message's chain (itself if it is one)."""
        return self._ref(self.trace) or self.id

    def __repr__(self) -> str:
        return f"<RecordedMessage {self.topic!r} {self.sender}:{self.seq}>"


class RecordingFile:
    """One MCAP file: its channels, metadata, attachments and status."""

    def __init__(self, path):
        self.path = Path(path)
        self.status = "complete"
        self.problem = ""
        self.channels: dict[int, tuple[str, str, dict]] = {}   # id -> (topic, encoding, metadata)
        self.metadata: list[tuple[str, dict]] = []
        self.attachments: list[tuple[str, str, bytes]] = []
        self.chunk_indexes: list[tuple] = []                   # (start, end, offset, channels)
        self.statistics: dict | None = None
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        self.size = size
        self._messages_scanned: list | None = None
        if not self._read_summary():
            self.status = "truncated"
            self._scan()

    def close(self) -> None:
        if isinstance(self._map, mmap.mmap):
            self._map.close()

    # ---- records ----

    def _records(self, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
        """(opcode, content start, content end, record start) of whole records."""
        buf, at = self._map, start
        while at + 9 <= end:
            opcode, length = _REC.unpack_from(buf, at)
            if at + 9 + length > end:
                raise _Torn(f"a record at offset {at} is cut ({length} bytes declared)")
            yield opcode, at + 9, at + 9 + length, at
            at += 9 + length
        if at != end:
            raise _Torn(f"the file ends inside a record header at offset {at}")

    def _read_summary(self) -> bool:
        buf, size = self._map, self.size
        if size < 8 or bytes(buf[:8]) != fmt.MAGIC:
            self.problem = "not an MCAP file (no magic)"
            return False
        if size < 8 + 9 + 20 + 8 or bytes(buf[size - 8:]) != fmt.MAGIC:
            return False
        opcode, length = _REC.unpack_from(buf, size - 8 - 29)
        if opcode != fmt.FOOTER or length != 20:
            return False
        summary_start, offsets_start, crc = struct.unpack_from("<QQI", buf, size - 8 - 20)
        footer = size - 8 - 29
        if not summary_start or summary_start > footer:
            return False
        if crc and zlib.crc32(buf[summary_start:size - 8 - 4]) != crc:
            return False
        try:
            for opcode, a, b, _ in self._records(summary_start, footer):
                self._summary_record(opcode, a, b)
            for opcode, a, b, _ in self._records(8, summary_start):
                if opcode == fmt.METADATA:
                    self.metadata.append(_metadata(buf, a))
                elif opcode == fmt.ATTACHMENT:
                    self.attachments.append(_attachment(buf, a))
                elif opcode in (fmt.CHUNK, fmt.MESSAGE_INDEX, fmt.CHANNEL, fmt.HEADER,
                                fmt.DATA_END, fmt.SCHEMA):
                    continue
        except (_Torn, struct.error, UnicodeDecodeError) as exc:
            self.problem = str(exc)
            self.channels, self.metadata, self.attachments, self.chunk_indexes = {}, [], [], []
            return False
        return True

    def _summary_record(self, opcode: int, a: int, b: int) -> None:
        buf = self._map
        if opcode == fmt.CHANNEL:
            self._channel(a)
        elif opcode == fmt.CHUNK_INDEX:
            start, end, offset, _length, size = struct.unpack_from("<QQQQI", buf, a)
            channels = {struct.unpack_from("<H", buf, a + 36 + i)[0] for i in range(0, size, 10)}
            self.chunk_indexes.append((start, end, offset, channels))
        elif opcode == fmt.STATISTICS:
            messages, _s, channels, _a, _m, chunks, start, end = struct.unpack_from(
                "<QHIIIIQQ", buf, a)
            size = _U32.unpack_from(buf, a + 42)[0]
            per = {}
            for i in range(0, size, 10):
                cid, count = struct.unpack_from("<HQ", buf, a + 46 + i)
                per[cid] = count
            self.statistics = {"messages": messages, "channels": channels, "chunks": chunks,
                               "start": start, "end": end, "per_channel": per}

    def _channel(self, a: int) -> None:
        buf = self._map
        cid, _schema = struct.unpack_from("<HH", buf, a)
        topic, at = _string(buf, a + 4)
        encoding, at = _string(buf, at)
        meta = _string_map(buf, at)[0]
        self.channels[cid] = (topic, encoding, meta)

    def _scan(self) -> None:
        """Read an unfinished file from the front, as far as its records are whole."""
        buf, found = self._map, []
        if self.size < 8 or bytes(buf[:8]) != fmt.MAGIC:
            self.problem = self.problem or "not an MCAP file (no magic)"
            self._messages_scanned = []
            return
        at, end = 8, self.size
        try:
            while at + 9 <= end:
                opcode, length = _REC.unpack_from(buf, at)
                if at + 9 + length > end:
                    raise _Torn(f"the file ends inside a record at offset {at}")
                a, b = at + 9, at + 9 + length
                if opcode == fmt.CHUNK:
                    records = self._chunk_records(a)   # raises _Torn on a bad CRC
                    found.append(records)
                elif opcode == fmt.CHANNEL:
                    self._channel(a)
                elif opcode == fmt.METADATA:
                    self.metadata.append(_metadata(buf, a))
                elif opcode == fmt.ATTACHMENT:
                    self.attachments.append(_attachment(buf, a))
                elif opcode == fmt.MESSAGE:
                    found.append((bytes(buf[at:b]), 0, b - at))
                elif opcode == fmt.FOOTER:
                    break
                at = b
            else:
                if at != end:
                    raise _Torn(f"the file ends inside a record header at offset {at}")
        except (_Torn, struct.error, UnicodeDecodeError, ValueError, MemoryError,
                RuntimeError) as exc:
            self.problem = str(exc)
        self._valid_end = at
        self._messages_scanned = found

    def _chunk_records(self, a: int) -> tuple[bytes, int, int]:
        buf = self._map
        start, end, usize, crc = _CHUNK.unpack_from(buf, a)
        compression, at = _string(buf, a + 28)
        rlen = _U64.unpack_from(buf, at)[0]
        data = buf[at + 8:at + 8 + rlen]
        if compression == "lz4":
            import lz4.frame
            data = lz4.frame.decompress(data)
        elif compression == "zstd":
            import zstandard
            data = zstandard.ZstdDecompressor().decompress(data, max_output_size=usize)
        elif compression:
            raise _Torn(f"unknown compression {compression!r}")
        if crc and zlib.crc32(data) != crc:
            raise _Torn(f"the chunk at offset {a - 9} fails its CRC")
        return data, 0, len(data)

    # ---- messages ----

    def _chunks(self, start, end, channel_ids) -> Iterator[tuple]:
        if self._messages_scanned is not None:
            yield from self._messages_scanned
            return
        for cstart, cend, offset, channels in self.chunk_indexes:
            if start is not None and cend < start:
                continue
            if end is not None and cstart >= end:
                continue
            if channel_ids is not None and channels and not (channels & channel_ids):
                continue
            try:
                yield self._chunk_records(offset + 9)
            except _Torn as exc:
                self.status, self.problem = "corrupt", str(exc)
                return

    def records(self, topics=None, start=None, end=None) -> Iterator[tuple]:
        """(channel id, sequence, log time, publish time, data) of every whole
        message record, in file order."""
        ids = None
        if topics is not None:
            ids = {cid for cid, (topic, _, _) in self.channels.items() if topic in topics}
        for data, a, b in self._chunks(start, end, ids):
            at = a
            while at + 9 <= b:
                opcode, length = _REC.unpack_from(data, at)
                c = at + 9
                at = c + length
                if opcode != fmt.MESSAGE or at > b:
                    continue
                cid, seq, log_time, pub = _MSG.unpack_from(data, c)
                if ids is not None and cid not in ids:
                    continue
                if (start is not None and log_time < start) or (end is not None and log_time >= end):
                    continue
                yield cid, seq, log_time, pub, data[c + 22:at]

    def messages(self, topics=None, start=None, end=None) -> Iterator[RecordedMessage]:
        run = self.run
        channels = self.channels
        for cid, _seq, log_time, _pub, data in self.records(topics, start, end):
            channel = channels.get(cid)
            if channel is None or channel[1] != fmt.ENCODING:
                continue
            try:
                record = _decode_data(data)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            yield RecordedMessage(channel[0], record, log_time, run, self)

    @property
    def run(self) -> bytes | None:
        meta = self.meta("ether.recording")
        if meta and meta.get("run_id"):
            import uuid
            return uuid.UUID(meta["run_id"]).bytes
        return None

    def meta(self, name: str) -> dict | None:
        for n, values in self.metadata:
            if n == name:
                return values
        return None


class _Torn(Exception):
    pass


def _string(buf, at: int) -> tuple[str, int]:
    n = _U32.unpack_from(buf, at)[0]
    return bytes(buf[at + 4:at + 4 + n]).decode(), at + 4 + n


def _string_map(buf, at: int) -> tuple[dict, int]:
    n = _U32.unpack_from(buf, at)[0]
    end, at, out = at + 4 + n, at + 4, {}
    while at < end:
        k, at = _string(buf, at)
        v, at = _string(buf, at)
        out[k] = v
    return out, end


def _metadata(buf, a: int) -> tuple[str, dict]:
    name, at = _string(buf, a)
    return name, _string_map(buf, at)[0]


def _attachment(buf, a: int) -> tuple[str, str, bytes]:
    name, at = _string(buf, a + 16)
    media, at = _string(buf, at)
    n = _U64.unpack_from(buf, at)[0]
    return name, media, bytes(buf[at + 8:at + 8 + n])


class Recording:
    """A recording: one MCAP file, or a folder of them (its splits)."""

    def __init__(self, path):
        path = Path(path)
        if path.is_dir():
            paths = sorted(path.glob("*.mcap"))
            if not paths:
                raise FileNotFoundError(f"{path}: no .mcap file in this folder")
        elif path.exists():
            paths = [path]
        else:
            raise FileNotFoundError(f"{path}: no such recording (a .mcap file or a folder of them)")
        self.path = path
        self.files = [RecordingFile(p) for p in paths]
        self._by_id = None
        self._children = None

    def close(self) -> None:
        for f in self.files:
            f.close()

    def __enter__(self) -> "Recording":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def status(self) -> str:
        """"complete", or the first file's other status ("truncated", "corrupt")."""
        for f in self.files:
            if f.status != "complete":
                return f.status
        return "complete"

    @property
    def metadata(self) -> dict:
        """The metadata records by name: each a dict (of the first file that has
        it), "ether.instance" a list of one dict per instance."""
        out: dict = {}
        for f in self.files:
            for name, values in f.metadata:
                if name == "ether.instance":
                    out.setdefault(name, {}).setdefault(values.get("name"), values)
                elif name in ("ether.clock",):
                    out.setdefault(name, []).append(values)
                else:
                    out.setdefault(name, values)
        if "ether.instance" in out:
            out["ether.instance"] = list(out["ether.instance"].values())
        return out

    def dropped(self) -> int:
        total = 0
        for f in self.files:
            end = f.meta("ether.recording.end")
            if end:
                total += int(end.get("dropped", 0)) + int(end.get("lost_after_error", 0))
        return total

    def dropped_by_topic(self) -> dict[str, int]:
        """What the recorder's inbox refused, per topic, as the publishers reported
        it (files written before per-topic counts: {})."""
        out: dict[str, int] = {}
        for f in self.files:
            for topic, n in (_loads((f.meta("ether.recording.end") or {}).get("dropped_by_topic"))
                             or {}).items():
                out[topic] = out.get(topic, 0) + n
        return out

    def topics(self) -> list[str]:
        seen: dict[str, None] = {}
        for f in self.files:
            for topic, encoding, _ in f.channels.values():
                seen[topic] = None
        return list(seen)

    def messages(self, topics: Iterable[str] | str | None = None, start: int | None = None,
                 end: int | None = None, trial=None) -> Iterator[RecordedMessage]:
        """Messages in the order they were recorded; `start`/`end` are log times
        (ns, end excluded); `trial` keeps the messages of that trial's trace."""
        if isinstance(topics, str):
            topics = [topics]
        topics = None if topics is None else set(topics)
        roots = None
        if trial is not None:
            roots = self.trial_roots(trial)
        for f in self.files:
            for message in f.messages(topics, start, end):
                if roots is not None and message.root_id not in roots:
                    continue
                yield message

    def trial_roots(self, trial) -> set:
        """The ids of the trial-start messages of `trial` (the traces of its messages)."""
        roots = set()
        for f in self.files:
            for m in f.messages({"ether/trial"}):
                d = m.data
                if d.get("trial") == trial and d.get("event") == "start":
                    roots.add(m.id)
        return roots

    # ---- lineage ----

    def _index(self) -> None:
        if self._by_id is None:
            by_id, children = {}, {}
            for m in self.messages():
                by_id[m.id] = m
                cause = m.cause_id
                if cause is not None:
                    children.setdefault(cause, []).append(m)
            self._by_id, self._children = by_id, children

    def find(self, topic: str, seq: int, sender: str | None = None) -> RecordedMessage:
        for m in self.messages(topic):
            if m.seq == seq and (sender is None or m.sender == sender):
                return m
        raise LookupError(f"no message {seq} on {topic!r}" + (f" from {sender!r}" if sender else ""))

    def lineage(self, message: RecordedMessage) -> list[dict]:
        """The chain of causes from `message` back to its root: one step per
        message, each with the message (None where it was not recorded), its id,
        and the instance that published it with its method and code version."""
        self._index()
        instances = {i.get("name"): i for i in self.metadata.get("ether.instance", [])}
        steps, current, seen = [], message, set()
        while True:
            steps.append(self._step(current, instances))
            cause = current.cause_id
            if cause is None or cause in seen:
                break
            seen.add(cause)
            parent = self._by_id.get(cause)
            if parent is None:
                steps.append({"id": cause, "message": None, "instance": cause[1],
                              "note": "not in the recording"})
                break
            current = parent
        return steps

    def _step(self, m: RecordedMessage, instances: dict) -> dict:
        inst = instances.get(m.sender, {})
        method = None
        parent = self._by_id.get(m.cause_id) if m.cause_id else None
        handlers = _loads(inst.get("handlers"))
        if parent is not None and isinstance(handlers, dict):
            found = [h for t, hs in handlers.items() if t == parent.topic or _glob(t, parent.topic)
                     for h in hs]
            method = found[0] if len(found) == 1 else (found or None)
        if m.topic.startswith(_CALLS) and m.topic.endswith("/reply"):
            method = m.topic[len(_CALLS):-len("/reply")].rpartition(".")[2]   # the service's
        return {"id": m.id, "message": m, "topic": m.topic, "instance": m.sender, "method": method,
                "class_path": inst.get("class_path"), "module_sha256": inst.get("module_sha256"),
                "version": inst.get("version"), "git_commit": inst.get("git.commit"),
                "git_dirty": inst.get("git.dirty")}

    def descendants(self, message: RecordedMessage) -> list[RecordedMessage]:
        """Every recorded message caused, directly or not, by `message`."""
        self._index()
        out, todo, seen = [], [message.id], {message.id}
        while todo:
            for child in self._children.get(todo.pop(), ()):
                if child.id not in seen:
                    seen.add(child.id)
                    out.append(child)
                    todo.append(child.id)
        return out


def _loads(text):
    import json
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _glob(pattern: str, topic: str) -> bool:
    import fnmatch
    return any(c in pattern for c in "*?[") and fnmatch.fnmatchcase(topic, pattern)


def open_recording(path) -> Recording:
    """A Recording of a .mcap file or a folder of them."""
    return Recording(path)
