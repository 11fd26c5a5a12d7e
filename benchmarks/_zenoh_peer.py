"""Raw zenoh, the baseline of bench_bridge.py: one session on a simulated host,
driven by JSON lines on stdin, one JSON answer per line on stdout.

    python benchmarks/_zenoh_peer.py CONFIG_JSON

The config is the one a bridge of the same host would use (bench_bridge.py builds
it with ether.bridge.zenoh_config), so the raw rows and Ether's go over the same
links, TLS and limits. What a raw zenoh user would do, and no more: a callback
subscriber, one put per message of bytes, a queryable that replies bytes, get.

Commands ({"op": NAME, ...} -> {"ok": value} or {"error": text}):

    sink key count every   callback subscriber expecting `count` messages; the
                           first 8 bytes (64 B) or the first float32 (arrays)
                           are the seq; a CRC of every `every`-th payload
    wait_sink timeout      once `count` arrived (or the timeout): counts, order,
                           CRCs and the last arrival time (perf_counter_ns)
    source key count size kind   wait for a subscriber, then put `count` payloads
                           as fast as zenoh takes them; the clock before the first
    queryable key size     replies `size` bytes whose first 8 are the query's
    rtt key count size     sequential gets: their latencies in ns
    pong key_in key_out    echo every sample of key_in to key_out
    ping key_out key_in count   one message in flight: put, wait for its echo

It never imports ether: zenoh lives only in processes that never fork.
"""
from __future__ import annotations

import os
import struct
import sys
import threading
import time
import zlib

import zenoh

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _bridge_frames as frames  # noqa: E402
import _commands  # noqa: E402

SEQ = struct.Struct("<Q")
_clock = time.perf_counter_ns


def payload_of(seq: int, size: int, kind: str, base: bytearray) -> bytes:
    """64 B: seq in the first 8 bytes; arrays: the float32 frame of
    _bridge_frames with frame[0] = seq, as bytes."""
    if kind == "bytes":
        SEQ.pack_into(base, 0, seq)
    else:
        struct.pack_into("<f", base, 0, float(seq))
    return bytes(base)  # zenoh takes bytes only: the one copy a user pays


def seq_of(data: bytes, kind: str) -> int:
    if kind == "bytes":
        return SEQ.unpack_from(data, 0)[0]
    return int(struct.unpack_from("<f", data, 0)[0])


class Sink:
    def __init__(self, session, key: str, count: int, every: int, kind: str):
        self.count, self.every, self.kind = count, every, kind
        self.received = 0
        self.next_seq = 0
        self.disorder = 0
        self.crcs: dict[int, int] = {}
        self.last_ns = 0
        self.done = threading.Event()
        self.sub = session.declare_subscriber(key, self._on_sample)

    def _on_sample(self, sample) -> None:
        data = sample.payload.to_bytes()
        seq = seq_of(data, self.kind)
        if seq != self.next_seq:
            self.disorder += 1
        self.next_seq = seq + 1
        if self.kind != "bytes" and frames.sampled(seq, self.every):
            self.crcs[seq] = zlib.crc32(data)
        self.received += 1
        self.last_ns = _clock()
        if self.received >= self.count:
            self.done.set()

    def result(self, timeout: float) -> dict:
        self.done.wait(timeout)
        self.sub.undeclare()
        return {"received": self.received, "disorder": self.disorder, "last_seq": self.next_seq - 1,
                "last_ns": self.last_ns, "crcs": {str(k): v for k, v in self.crcs.items()}}


class Peer:
    def __init__(self, config: str):
        self.z = zenoh.open(zenoh.Config.from_json5(config))
        self.sink: Sink | None = None
        self._keep: list = []
        self._echo = threading.Event()
        self._echoed = -1

    def _publisher(self, key: str, wait: float = 20.0):
        publisher = self.z.declare_publisher(key, congestion_control=zenoh.CongestionControl.BLOCK)
        matched = threading.Event()
        listener = publisher.declare_matching_listener(
            lambda status: matched.set() if status.matching else None)
        if not (publisher.matching_status.matching or matched.wait(wait)):
            raise TimeoutError(f"no subscriber of {key!r} within {wait} s")
        listener.undeclare()
        return publisher

    def op_sink(self, key: str, count: int, every: int = 16, kind: str = "bytes") -> bool:
        self.sink = Sink(self.z, key, count, every, kind)
        return True

    def op_wait_sink(self, timeout: float) -> dict:
        sink, self.sink = self.sink, None
        return sink.result(timeout)

    def op_source(self, key: str, count: int, size: int, kind: str = "bytes") -> dict:
        publisher = self._publisher(key)
        base = bytearray(os.urandom(size)) if kind == "bytes" else bytearray(
            frames.base_frame(size).tobytes())
        put = publisher.put
        t0 = _clock()
        for seq in range(count):
            put(payload_of(seq, size, kind, base))
        t_sent = _clock()
        publisher.undeclare()
        return {"t0_ns": t0, "t_sent_ns": t_sent}

    def op_queryable(self, key: str, size: int) -> bool:
        body = bytearray(os.urandom(size))

        def on_query(query) -> None:
            asked = query.payload.to_bytes() if query.payload is not None else b"\0" * 8
            reply = bytearray(body)
            reply[:8] = asked[:8]
            query.reply(query.key_expr, bytes(reply))
        self._keep.append(self.z.declare_queryable(key, on_query))
        return True

    def op_rtt(self, key: str, count: int, size: int, warm: int = 20, timeout: float = 5.0) -> dict:
        times, bad = [], 0
        for i in range(-warm, count):
            asked = SEQ.pack(i % (1 << 63))
            t = _clock()
            replies = [r for r in self.z.get(key, payload=asked, timeout=timeout)]
            took = _clock() - t
            good = [r.ok.payload.to_bytes() for r in replies if r.ok is not None]
            if len(good) != 1 or good[0][:8] != asked or len(good[0]) != size:
                bad += 1
            elif i >= 0:
                times.append(took)
        return {"ns": times, "bad": bad}

    def op_pong(self, key_in: str, key_out: str) -> bool:
        publisher = self.z.declare_publisher(key_out, congestion_control=zenoh.CongestionControl.BLOCK)
        self._keep += [publisher, self.z.declare_subscriber(
            key_in, lambda sample: publisher.put(sample.payload.to_bytes()))]
        return True

    def op_ping(self, key_out: str, key_in: str, count: int, size: int = 64, warm: int = 50,
                timeout: float = 5.0) -> dict:
        got = threading.Condition()
        last = [-1]

        def on_echo(sample) -> None:
            with got:
                last[0] = SEQ.unpack_from(sample.payload.to_bytes(), 0)[0]
                got.notify()
        sub = self.z.declare_subscriber(key_in, on_echo)
        publisher = self._publisher(key_out)
        base = bytearray(os.urandom(size))
        lost = 0
        t0 = 0
        for seq in range(warm + count):
            if seq == warm:
                t0 = _clock()
            with got:
                publisher.put(payload_of(seq, size, "bytes", base))
                if not got.wait_for(lambda s=seq: last[0] >= s, timeout):
                    lost += 1
                    break
        elapsed = _clock() - t0
        sub.undeclare()
        publisher.undeclare()
        return {"elapsed_ns": elapsed, "count": count, "lost": lost, "last": last[0]}


def main() -> None:
    out = _commands.answers()  # zenoh's own output goes to stderr; answers alone on the pipe
    try:
        peer = Peer(sys.argv[1])
    except Exception as exc:  # noqa: BLE001 (reported to the benchmark)
        return _commands.write(out, {"error": f"zenoh.open: {exc}"})
    _commands.write(out, {"ok": str(peer.z.zid())})
    _commands.serve(out, lambda name, args: getattr(peer, "op_" + name)(**args))
    peer.z.close()


if __name__ == "__main__":
    main()
