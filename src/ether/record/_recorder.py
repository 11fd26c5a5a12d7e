"""The recorder: an ordinary instance (or an attached client, for `ether record`)
that writes the messages of chosen topics into MCAP files.

- It subscribes in its constructor, through the process's client: as the
  config's `record:` section runs it as the session's first instance, and the
  main waits for it before launching the others, it catches everything from the
  first message.
- It takes envelopes (`envelopes=True`), so the payload is written as it came,
  never decoded; arrays are written from their arena views (_inline.py) while
  the message's hold lasts, which ends when the handler returns.
- A plain small message (no arrays, not a replay) on a topic only the recorder
  handles never becomes an Envelope: the recorder shadows its node's dispatch
  (`_dispatch`), decodes only its topic, seq and time, and writes the rest of
  its wire bytes as they came (they are the record's fields), a run of them in
  one Writer.add_many_tails call. Every other record takes the node's way, in
  order, to `_on_envelope`.
- There, small messages are gathered and handed to the writer once per batch read from
  the inbox (`Node.after_batch`; Writer.add_many: one lock and one chunk check
  a batch), or sooner when the chunk in progress is due. The inbox is read
  `read_batch` (512) records at a time, not 4096: what was read and not yet
  written is lost if the recorder is killed, so a batch must be short in time
  even on a starved CPU (docs/design/recording.md, "The loss window").
- `policy="block"` by default: a slow disk slows the publishers down. With
  "drop", what its inbox refused is counted (the inbox's own statistics) into
  the file's `ether.recording.end` metadata, and `bag info` says INCOMPLETE;
  per topic, as the publishers report them on `ether/drops` (_node/_drops.py:
  at the latest when the session drains at its shutdown).
- A flusher thread writes a chunk that waited `flush_interval_s`, fsyncs every
  `fsync_interval_s` and writes a wall/monotonic clock anchor every 10 s.
- It closes its file when its node closes (Node.at_close): after a shutdown
  (everything was delivered), on SIGTERM or when the main died (the watchdog
  unwinds the instance), it first handles what is still in its inbox.
- A write error (disk full) is logged once, loudly, naming the file; the
  recorder stops writing, and the session goes on.
"""
from __future__ import annotations

import fnmatch
import json
import logging
import os
import signal
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Annotated

import msgspec

import ether
from ether import lowlevel

from . import _format as fmt
from ._inline import encode, message_pieces, prefix
from ._writer import LARGE_MESSAGE, RecordingError, Writer

__all__ = ["Recorder", "ALL_PATTERNS", "TRIAL_TOPIC", "PROVENANCE_TOPIC"]

log = logging.getLogger("Ether")

ALL_PATTERNS = ("*", "ether/*")      # every user topic, and Ether's own
TRIAL_TOPIC = "ether/trial"
PROVENANCE_TOPIC = "ether/provenance"
DROPS_TOPIC = lowlevel.DROPS_TOPIC
ANCHOR_S = 10.0                      # a clock anchor this often
DRAIN_S = 2.0                        # at close: handle what is queued for at most this long
READ_BATCH = 512                     # records per read of the inbox (the loss window's batch)
# The first bytes of the wire envelopes the fast path takes (_node/_codec.py): an
# array of 10 fields, or of 11 whose last (holds) is empty, never 12 (replay_of);
# wire version 1; a MESSAGE. Each maps to where its record's tail ends: before the
# empty holds (0x90, the last byte), or at the end.
_PLAIN = {bytes([0x9A, lowlevel.WIRE_VERSION, lowlevel.MESSAGE]): None,
          bytes([0x9B, lowlevel.WIRE_VERSION, lowlevel.MESSAGE]): -1}
_SPECIAL = (PROVENANCE_TOPIC, DROPS_TOPIC, TRIAL_TOPIC)   # _on_envelope reads these


class _Head(msgspec.Struct, array_like=True, gc=False):
    """An envelope decoded no further than the fast path needs: the topic, seq
    and time, bounded as the MCAP header packs them, the holds checked empty,
    the rest left raw (its structure checked, nothing built). One that fails
    goes the slow way, where the node reports what is wrong with it."""
    version: int
    kind: int
    topic: str
    sender: str
    seq: Annotated[int, msgspec.Meta(ge=0)]
    time_ns: Annotated[int, msgspec.Meta(ge=0)]
    cause: msgspec.Raw
    trace: msgspec.Raw
    origin: msgspec.Raw
    payload: msgspec.Raw
    holds: Annotated[tuple, msgspec.Meta(max_length=0)] = ()


_decode_head = msgspec.msgpack.Decoder(_Head).decode
_HEAD_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)
_topic_bytes = msgspec.msgpack.Encoder().encode


class Recorder:
    def __init__(self, output: str = "recordings", topics=(), all: bool = False, exclude=(),
                 policy: str = "block", timeout_s: float = 60.0, compression: str = "none",
                 flush_interval_s: float = 0.1, fsync_interval_s: float = 1.0,
                 split_size: int | None = None, split_duration_s: float | None = None,
                 split_on_trial: bool = False, *, client=None, chunk_bytes: int = 1 << 20,
                 read_batch: int = READ_BATCH):
        client = client or lowlevel.default_client()
        if client is None:
            raise ether.EtherError(
                "a Recorder runs inside a session: as the config's `record:` section, as an "
                "instance, or given a client (ether.attach(name))")
        self.client = client
        self.node = node = client.node
        patterns = list(ALL_PATTERNS if all else ()) + [t for t in topics if t not in ALL_PATTERNS]
        if not patterns:
            raise ether.ConfigError("Recorder: give topics (or patterns) to record, or all=True")
        self.patterns = tuple(dict.fromkeys(patterns))
        self.exclude = tuple(exclude)
        self.policy, self.timeout_s = policy, timeout_s
        self.output = Path(output)
        self.output.mkdir(parents=True, exist_ok=True)
        self._options = dict(compression=compression, flush_interval=flush_interval_s,
                             fsync_interval=fsync_interval_s, chunk_bytes=chunk_bytes)
        self.split_size, self.split_duration_s = split_size, split_duration_s
        self.split_on_trial = split_on_trial
        self.session = client.session_name()
        self.origin = node.origin
        self.files: list[Path] = []
        self.failed: RecordingError | None = None
        self.lost = 0                         # messages not written after a write error
        self._closed = False
        self._provenance = _read_provenance(self.session)
        self._resolve = node.decoders.ext_hook
        self._payload_dict = node.decoders.payload_dict
        self._writer: Writer | None = None
        self._channels: dict[str, int] = {}
        # Small messages of the batch in hand, for Writer.add_many; when the first
        # of them was handled (~ when the batch was read; 0: none yet), and when
        # they must be handed over (the chunk in progress is due).
        self._batch: list[tuple] = []
        self._batch_began = 0
        self._flush_by = 0
        self._dropped_at_open = 0
        self._drops: dict[tuple[str, str], int] = {}   # (sender, topic) -> drops it reported
        self._drops_at_open: dict[tuple[str, str], int] = {}
        self._open_file()
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, name="ether-recorder-flush",
                                         daemon=True)
        self._flusher.start()
        self._unsubscribe = []
        if not self._selects(PROVENANCE_TOPIC):
            self._unsubscribe.append(client.subscribe(
                PROVENANCE_TOPIC, self._on_provenance_only, envelopes=True, policy=policy,
                timeout=timeout_s))
        if policy == "drop" and not self._selects(DROPS_TOPIC):
            self._unsubscribe.append(client.subscribe(
                DROPS_TOPIC, self._on_drops_only, envelopes=True, policy="block",
                timeout=timeout_s))
        for pattern in self.patterns:
            self._unsubscribe.append(client.subscribe(
                pattern, self._on_envelope, envelopes=True, policy=policy, timeout=timeout_s))
        node.at_close(self.close)
        node.inbox.read_batch = read_batch
        # The fast path (_dispatch) shadows the node's dispatch on this node only.
        self._routes: dict[str, tuple | None] = {}
        self._routes_for = None
        self._node_dispatch = node.dispatch
        node.dispatch = self._dispatch
        chained = node.after_batch
        if chained is None:
            node.after_batch = self._end_batch
        else:
            def after_batch():
                self._end_batch()
                chained()
            node.after_batch = after_batch
        self._wake = False
        if client is lowlevel.default_client() and \
                threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_sigterm)
        log.info("recorder: recording %s into %s", ", ".join(map(repr, self.patterns)),
                 self.files[-1])

    def _selects(self, topic: str) -> bool:
        """True if `topic` is recorded (its messages reach _on_envelope's end)."""
        return any(lowlevel.matches(p, topic) for p in self.patterns) and \
            not any(fnmatch.fnmatchcase(topic, p) for p in self.exclude)

    # ---- files ----

    def _open_file(self) -> None:
        index = len(self.files)
        while True:
            path = self.output / f"{self.session}-{index:03d}.mcap"
            try:
                writer = Writer(str(path), library=f"ether {ether.__version__}", **self._options)
                break
            except FileExistsError:
                index += 1
        self._writer = writer
        self._channels = {}
        self._routes = {}
        self.files.append(path)
        self._dropped_at_open = self._dropped()
        self._drops_at_open = dict(self._drops)
        now = time.time_ns()
        self._split_at = now + int(self.split_duration_s * 1e9) if self.split_duration_s else 1 << 63
        writer.metadata("ether.recording", {
            "session": self.session, "run_id": str(uuid.UUID(bytes=self.origin.run)),
            "host": self.origin.host, "recorder_host": socket.gethostname(), "pid": str(os.getpid()),
            "patterns": json.dumps(self.patterns), "exclude": json.dumps(self.exclude),
            "policy": self.policy, "file_index": str(len(self.files) - 1), "started_ns": str(now),
            "compression": self._options["compression"],
            "flush_interval_s": str(self._options["flush_interval"])})
        self._anchor()
        if self._provenance is not None:
            self._write_provenance(self._provenance)

    def _anchor(self) -> None:
        self._writer.metadata("ether.clock", {"wall_ns": str(time.time_ns()),
                                              "monotonic_ns": str(time.monotonic_ns())})

    def _write_provenance(self, record: dict) -> None:
        writer = self._writer
        session = {k: v for k, v in record.items()
                   if k not in ("instances", "diffs", "config_yaml", "versions", "anchor")}
        session.update({f"version.{k}": v for k, v in record.get("versions", {}).items()})
        session.update({f"anchor.{k}": v for k, v in record.get("anchor", {}).items()})
        writer.metadata("ether.session", {k: _text(v) for k, v in session.items()})
        for name, inst in record.get("instances", {}).items():
            flat = {k: v for k, v in inst.items() if k != "git"}
            flat.update({f"git.{k}": v for k, v in inst.get("git", {}).items()})
            writer.metadata("ether.instance", {k: _text(v) for k, v in flat.items()})
        if record.get("config_yaml"):
            writer.attachment("config.yaml", "application/yaml", record["config_yaml"].encode())
        for root, diff in record.get("diffs", {}).items():
            writer.attachment(f"git.diff:{root}", "text/x-diff", diff.encode())
        writer.attachment("provenance.json", "application/json",
                          json.dumps(record, indent=1, default=str).encode())

    def _dropped(self) -> int:
        try:
            return self.node.inbox.statistics().dropped
        except ether.EtherError:
            return self._dropped_at_open

    def _finish_file(self, status: str) -> None:
        self._hand_over()
        self._batch_began = 0
        writer = self._writer
        dropped = self._dropped() - self._dropped_at_open
        by_topic: dict[str, int] = {}
        for (sender, topic), count in self._drops.items():
            count -= self._drops_at_open.get((sender, topic), 0)
            if count:
                by_topic[topic] = by_topic.get(topic, 0) + count
        try:
            if writer.failed is None:
                writer.metadata("ether.recording.end", {
                    "status": status, "messages": str(writer.messages), "dropped": str(dropped),
                    "dropped_by_topic": json.dumps(by_topic, sort_keys=True),
                    "lost_after_error": str(self.lost), "ended_ns": str(time.time_ns())})
        except RecordingError:
            pass
        try:
            writer.close()
        except RecordingError as exc:
            self._report(exc)

    def _split(self) -> None:
        self._finish_file("complete")
        self._open_file()

    # ---- messages (the thread that reads the inbox) ----

    def _channel(self, topic: str) -> int:
        if any(fnmatch.fnmatchcase(topic, p) for p in self.exclude):
            self._channels[topic] = 0
            return 0
        channel = self._writer.channel(topic, metadata={"ether.policy": self.policy})
        self._channels[topic] = channel
        return channel

    def _dispatch(self, batch) -> None:
        """The node's dispatch, shadowed on the recorder's node. A plain small
        message (no arrays, not a replay: _PLAIN) on a topic whose only handler
        is _on_envelope is written from its wire bytes, never decoded into an
        Envelope: the record's fields are the envelope's from the sender to the
        payload, in the same encoding (_format.py), so its data is 0x97 and
        that slice of the bytes the inbox returned. Only the topic, seq and
        time are decoded (_Head); each message is logged when handled, as in
        _on_envelope, and the run goes to the writer in one call
        (Writer.add_many_tails), after what _on_envelope gathered before it.
        Every other record goes, in order, through the node's own dispatch (and
        _on_envelope): arrays, replays, control messages, the Ether topics the
        recorder reads, a topic another handler of the node shares, and every
        record while a split is due, the node is timed (its stats) or skipping
        (a shutdown), or the recording failed."""
        node = self.node
        if (self._closed or self.failed is not None or node.skipping
                or "_deliver_kind" in node.__dict__):   # timed by the node's stats
            return self._node_dispatch(batch)
        received = time.time_ns()
        if received >= self._split_at:
            return self._node_dispatch(batch)           # _on_envelope splits
        if node._matched is not self._routes_for:       # a handler came or went
            self._routes, self._routes_for = {}, node._matched
        routes = self._routes
        plain, now = _PLAIN, time.time_ns
        fast, slow = [], []          # never both non-empty: each run goes on in order
        taken = 0
        try:
            for data in batch:
                end = plain.get(data[:3], False)
                if end is not False and len(data) < LARGE_MESSAGE:
                    try:
                        head = _decode_head(data)
                    except _HEAD_ERRORS:
                        head = None
                    if head is not None:
                        topic = head.topic
                        route = routes.get(topic, False)
                        if route is False:
                            route = routes[topic] = self._route(topic)
                        if route is not None:
                            if slow:
                                self._node_dispatch(slow)
                                slow = []
                                if self._routes is not routes:   # a split: new channels
                                    routes = self._routes
                                    route = routes[topic] = self._route(topic)
                            if route[0]:                # 0: an excluded topic
                                fast.append((route[0], head.seq, now(), head.time_ns,
                                             data[route[1]:end]))
                            taken += 1
                            continue
                if fast:
                    self._write_fast(fast, received)
                    fast = []
                slow.append(data)
            if slow:
                self._node_dispatch(slow)
            elif fast:
                self._write_fast(fast, received)
        finally:
            node.handled += taken

    def _route(self, topic: str) -> tuple | None:
        """(channel, where the sender starts in its envelopes) for the fast path,
        or None: a topic _on_envelope must see."""
        if topic in _SPECIAL:
            return None
        node = self.node
        # What Node._dispatch would call (its private tables; _routes is dropped
        # whenever they change: Node replaces _matched on every add and remove).
        handlers = node._handlers_of(topic) if node._patterns else node._handlers.get(topic, ())
        if handlers != (self._on_envelope,):
            return None
        channel = self._channels.get(topic)
        if channel is None:
            channel = self._channel(topic)
        return channel, 3 + len(_topic_bytes(topic))

    def _write_fast(self, fast: list, received_ns: int) -> None:
        """Hand the fast path's messages to the writer, after what _on_envelope
        gathered before them."""
        if self._batch:
            self._hand_over()
            self._batch_began = 0
        if not fast:
            return
        writer = self._writer
        try:
            writer.add_many_tails(fast, received_ns, now=time.time_ns())
        except RecordingError as exc:
            self.lost += len(fast)
            self._report(exc)
            return
        if self.split_size and writer.offset >= self.split_size:
            self._split_at = 0   # at the next message

    def _on_envelope(self, envelope) -> None:
        if self._closed:
            return
        topic = envelope.topic
        channel = self._channels.get(topic)
        if channel is None:
            if self.failed is not None:
                self.lost += 1
                return
            channel = self._channel(topic)
        if not channel:
            return
        log_time = time.time_ns()
        if log_time >= self._split_at:
            self._split()
            channel = self._channel(topic)
        elif topic == TRIAL_TOPIC and self.split_on_trial and (
                self._batch or self._writer.messages or self._writer._committed) and \
                self._payload_dict(envelope).get("event") == "start":
            self._split()
            channel = self._channel(topic)
        if not 0 <= envelope.time_ns < 1 << 64:   # the MCAP header's u64 (never in a batch)
            raise ether.MalformedMessage(f"a time_ns of {envelope.time_ns} on {topic!r}")
        payload = envelope.payload
        replay_of = envelope.replay_of
        if envelope.holds or len(payload) >= LARGE_MESSAGE:
            self._hand_over()                  # what came before it goes first
            head = prefix(envelope.sender, envelope.seq, envelope.time_ns, envelope.cause,
                          envelope.trace, envelope.origin, replay_of is not None)
            pieces, size = message_pieces(head, payload, self._resolve)
            if replay_of is not None:
                pieces.append(encode(replay_of))
                size += len(pieces[-1])
            try:
                self._writer.add_data(channel, envelope.seq, log_time, envelope.time_ns,
                                      pieces, size)
            except RecordingError as exc:
                self.lost += 1
                self._report(exc)
                return
            self._batch_began = 0              # the next small message starts a chunk
        else:
            if not self._batch_began:
                self._batch_began = log_time
                self._flush_by = self._writer.due_after(log_time)
            if replay_of is None:
                self._batch.append((channel, envelope.seq, log_time, envelope.time_ns, (
                    envelope.sender, envelope.seq, envelope.time_ns, envelope.cause,
                    envelope.trace, envelope.origin, payload)))
            else:
                self._batch.append((channel, envelope.seq, log_time, envelope.time_ns, (
                    envelope.sender, envelope.seq, envelope.time_ns, envelope.cause,
                    envelope.trace, envelope.origin, payload, replay_of)))
            if log_time >= self._flush_by:     # the chunk is due: write it now
                self._hand_over()
                self._batch_began = 0
        if topic == PROVENANCE_TOPIC:
            self._on_provenance(envelope)
        elif topic == DROPS_TOPIC:
            self._on_drops(envelope)

    def _on_drops_only(self, envelope) -> None:
        if not self._closed:
            self._on_drops(envelope)

    def _on_drops(self, envelope) -> None:
        """A publisher's cumulative drops into this inbox, per topic."""
        try:
            counts = self._payload_dict(envelope).get("drops")
            if not isinstance(counts, dict) or not all(
                    isinstance(t, str) and type(n) is int and n >= 0 for t, n in counts.items()):
                raise ether.MalformedMessage(f"'drops' must map topics to counts, not {counts!r}")
        except ether.EtherError as exc:
            log.warning("recorder: a malformed %s message from %r: %s", DROPS_TOPIC,
                        envelope.sender, exc)
            return
        for topic, count in counts.items():
            key = (envelope.sender, topic)
            if count > self._drops.get(key, 0):
                self._drops[key] = count

    def _on_provenance_only(self, envelope) -> None:
        if not self._closed:
            self._on_provenance(envelope)

    def _on_provenance(self, envelope) -> None:
        try:
            record = self._payload_dict(envelope)
            self._provenance = record
            self._hand_over()                  # the message before its metadata
            self._write_provenance(record)
        except RecordingError as exc:
            self._report(exc)
        except ether.EtherError as exc:
            log.warning("recorder: a malformed %s message: %s", PROVENANCE_TOPIC, exc)

    def _hand_over(self) -> None:
        """Give the writer the small messages gathered so far (it writes the chunk
        if that is due). In the thread that reads the inbox."""
        batch = self._batch
        if batch:
            self._batch = []
            writer = self._writer
            try:
                writer.add_many(batch, self._batch_began or None)
            except RecordingError as exc:
                self.lost += len(batch)
                self._report(exc)
                return
            # A chunk the batch filled was written: judge the split here too, not
            # only at the flush thread's next tick (a fast burst may end before it).
            if self.split_size and writer.offset >= self.split_size:
                self._split_at = 0   # at the next message

    def _end_batch(self) -> None:
        """After each batch read from the inbox is dispatched."""
        if self._batch:
            self._hand_over()
        self._batch_began = 0

    def _report(self, exc: RecordingError) -> None:
        if self.failed is None:
            self.failed = exc
            self._channels = {}      # every later message counts as lost
            log.error("recorder: %s; recording stopped, the session goes on", exc)

    def _on_sigterm(self, signum, frame) -> None:
        """SIGTERM (asked to end, or the main died: the kernel's parent-death
        signal, the watchdog's): end the dispatch loop after the batch in hand,
        never inside it, so the close that follows handles what is queued and
        loses nothing. Flags only: the flusher wakes the loop."""
        self.node.stopping = True
        self.node.running = False
        self._wake = True

    # ---- the flusher ----

    def _flush_loop(self) -> None:
        interval = self._options["flush_interval"]
        next_anchor = time.monotonic() + ANCHOR_S
        while not self._stop.wait(interval):
            if self._wake:
                self._wake = False
                self.node.wake()               # the loop sees running is False
            writer = self._writer
            try:
                writer.tick()
                if self.split_size and writer.offset >= self.split_size:
                    self._split_at = 0         # the reader thread splits at its next message
                if time.monotonic() >= next_anchor and writer.failed is None:
                    next_anchor = time.monotonic() + ANCHOR_S
                    self._anchor()
            except RecordingError as exc:
                self._report(exc)
            except Exception:  # a file closed by a split meanwhile
                if self._closed:
                    return

    # ---- the end ----

    def close(self) -> None:
        """Handle what is still queued (for at most DRAIN_S), then close the file
        with its summary. Called when the node closes; idempotent."""
        if self._closed:
            return
        node = self.node

        def drained() -> bool:
            try:
                s = node.inbox.statistics()
            except ether.EtherError:
                return True
            return s.sent - s.received <= 0 and not s.buffered

        try:
            node.wait_until(drained, DRAIN_S, describe=str)
        except ether.EtherError:  # Timeout, or the session closing
            pass
        self._closed = True
        for unsubscribe in self._unsubscribe:
            try:
                unsubscribe()
            except Exception:
                pass
        self._stop.set()
        if self._flusher is not threading.current_thread():
            self._flusher.join(2.0)
        self._finish_file("complete")
        log.info("recorder: closed %s", ", ".join(map(str, self.files)))


def _text(value) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def _read_provenance(session: str) -> dict | None:
    """The provenance.json `tap` wrote for the session, if this host has it."""
    try:
        path = lowlevel.session_log_dir(session) / "provenance.json"
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, ether.EtherError):
        return None
