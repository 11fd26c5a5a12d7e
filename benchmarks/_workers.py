"""Child-process bodies for ``bench_transport.py``.

Every child runs the same phases, separated by a ``multiprocessing.Barrier``
shared by all children of one run (no sleeps anywhere):

  bind     receivers create their inbox / socket / subscriber
  connect  senders connect (every receiver exists by now)
  warm-up  a few thousand untimed messages (or round trips) end to end
  timed    starts right after the barrier; the producer reads the clock
           (time.perf_counter_ns = CLOCK_MONOTONIC, one clock for all
           processes) before its first send, each consumer after it received
           the END marker
  done     everybody waits, then closes; results go back over a Pipe

A child that fails aborts the barrier so its partners fail fast, and reports
the traceback instead of a result.
"""
from __future__ import annotations

import gc
import struct
import time

from _harness import run_child
from _peers import END_LEN, PEERS, RECORD, end_message

BARRIER_TIMEOUT = 120.0
BATCH = 256              # messages per batch call in W1-batch
CHUNK = 256              # single-message loops look at the clock every CHUNK sends
NAME = "sensor-01"

_pack = struct.Struct("<Q56x").pack   # 64-byte record, seq in the first 8 bytes
assert len(_pack(0)) == RECORD


def _wait(barrier):
    barrier.wait(BARRIER_TIMEOUT)


def _run(body, peer_name, barrier, result, *args):
    """_harness.run_child for a transport peer: body(peer, barrier, *args), then
    the peer's process-level close."""
    peer = PEERS[peer_name]

    def whole(barrier, *args):
        out = body(peer, barrier, *args)
        peer.close_process()
        return out

    run_child(whole, barrier, result, *args)


# --------------------------------------------------------------------------
# one-way throughput (W1 single/batch, W2, W4)
# --------------------------------------------------------------------------
def producer_main(peer_name, spec, channels, mode, params, barrier, result):
    _run(_producer, peer_name, barrier, result, spec, channels, mode, params)


def consumer_main(peer_name, spec, channel, mode, params, barrier, result):
    _run(_consumer, peer_name, barrier, result, spec, channel, mode, params)


def _producer(peer, barrier, spec, channels, mode, params):
    _wait(barrier)                                        # bind
    txs = [peer.open_tx(spec, ch) for ch in channels]
    _wait(barrier)                                        # connect
    warm = params["warmup"]
    budget_ns = int(params["budget"] * 1e9)
    cap = params["cap"]
    if mode == "batch":
        sends = [t.send_batch for t in txs]
        for n in range(0, warm, BATCH):
            batch = [_pack(s) for s in range(n, n + BATCH)]
            for snd in sends:
                snd(batch)
    elif mode == "pickle":
        sends = [t.send_obj for t in txs]
        for s in range(warm):
            for snd in sends:
                snd({"seq": s, "t": 0.0, "name": NAME, "value": 0.0})
    else:
        if mode == "msgspec":
            import msgspec
            encode = msgspec.msgpack.Encoder().encode
            make = lambda s: encode({"seq": s, "t": 0.0, "name": NAME, "value": 0.0})  # noqa: E731
        else:
            make = _pack
        sends = [t.send for t in txs]
        for s in range(warm):
            m = make(s)
            for snd in sends:
                snd(m)
    gc.collect()
    _wait(barrier)                                        # start
    t0 = time.perf_counter_ns()
    if mode == "single":
        n = _produce_single(sends, t0 + budget_ns, cap)
    elif mode == "batch":
        n = _produce_batch(sends, t0 + budget_ns, cap)
    elif mode == "msgspec":
        n = _produce_msgspec(sends, t0 + budget_ns, cap)
    elif mode == "pickle":
        n = _produce_objects([t.send_obj for t in txs], t0 + budget_ns, cap)
    else:
        raise ValueError(mode)
    t_sent = time.perf_counter_ns()
    end = end_message(n)
    for t in txs:
        (t.send_obj if mode == "pickle" else t.send)(end)
    _wait(barrier)                                        # done
    for t in txs:
        t.close()
    return {"t0": t0, "t_sent": t_sent, "sent": n}


def _produce_single(sends, deadline, cap):
    clock = time.perf_counter_ns
    pack = _pack
    n = 0
    if len(sends) == 1:
        send = sends[0]
        while True:
            for s in range(n, n + CHUNK):
                send(pack(s))
            n += CHUNK
            if n >= cap or clock() >= deadline:
                return n
    while True:
        for s in range(n, n + CHUNK):
            m = pack(s)
            for send in sends:
                send(m)
        n += CHUNK
        if n >= cap or clock() >= deadline:
            return n


def _produce_batch(sends, deadline, cap):
    clock = time.perf_counter_ns
    pack = _pack
    n = 0
    while True:
        batch = [pack(s) for s in range(n, n + BATCH)]
        for send in sends:
            send(batch)
        n += BATCH
        if n >= cap or clock() >= deadline:
            return n


def _produce_msgspec(sends, deadline, cap):
    import msgspec
    encode = msgspec.msgpack.Encoder().encode
    clock = time.perf_counter_ns
    now = time.perf_counter
    send = sends[0]
    assert len(sends) == 1
    n = 0
    while True:
        for s in range(n, n + CHUNK):
            send(encode({"seq": s, "t": now(), "name": NAME, "value": s * 0.5}))
        n += CHUNK
        if n >= cap or clock() >= deadline:
            return n


def _produce_objects(sends, deadline, cap):
    clock = time.perf_counter_ns
    now = time.perf_counter
    send = sends[0]
    assert len(sends) == 1
    n = 0
    while True:
        for s in range(n, n + CHUNK):
            send({"seq": s, "t": now(), "name": NAME, "value": s * 0.5})
        n += CHUNK
        if n >= cap or clock() >= deadline:
            return n


def _consumer(peer, barrier, spec, channel, mode, params):
    rx = peer.open_rx(spec, channel)
    _wait(barrier)                                        # bind
    _wait(barrier)                                        # connect
    warm = params["warmup"]
    if mode == "batch":
        got = 0
        while got < warm:
            got += len(rx.recv_batch())
    elif mode == "pickle":
        for _ in range(warm):
            rx.recv_obj()
    else:
        for _ in range(warm):
            rx.recv()
    gc.collect()
    _wait(barrier)                                        # start
    if mode == "single":
        count, last, end = _consume_single(rx.recv)
        last_seq = int.from_bytes(last[:8], "little") if last is not None else -1
    elif mode == "batch":
        count, last, end = _consume_batch(rx.recv_batch)
        last_seq = int.from_bytes(last[:8], "little") if last is not None else -1
    elif mode == "msgspec":
        count, last, end = _consume_msgspec(rx.recv)
        last_seq = last["seq"] if last is not None else -1
    elif mode == "pickle":
        count, last, end = _consume_objects(rx.recv_obj)
        last_seq = last["seq"] if last is not None else -1
    else:
        raise ValueError(mode)
    t_end = time.perf_counter_ns()
    _wait(barrier)                                        # done
    rx.close()
    announced = int.from_bytes(end[4:12], "little") if len(end) == END_LEN else -1
    problems = []
    if end[:4] != b"END!":
        problems.append(f"bad END marker {end[:16]!r}")
    if announced != count:
        problems.append(f"received {count} messages, producer sent {announced}")
    if last_seq != count - 1:
        problems.append(f"last seq {last_seq} != count-1 ({count - 1})")
    return {"t_end": t_end, "count": count, "last_seq": last_seq, "problems": problems}


def _consume_single(recv):
    count = 0
    last = None
    while True:
        m = recv()
        if len(m) != RECORD:
            return count, last, m
        last = m
        count += 1


def _consume_batch(recv_batch):
    count = 0
    last = None
    while True:
        ms = recv_batch()
        tail = ms[-1]
        if len(tail) != RECORD:       # END is always the very last message
            if len(ms) > 1:
                last = ms[-2]
            return count + len(ms) - 1, last, tail
        count += len(ms)
        last = tail


def _consume_msgspec(recv):
    import msgspec
    decode = msgspec.msgpack.Decoder().decode
    count = 0
    last = None
    while True:
        m = recv()
        if len(m) == END_LEN:         # encoded dicts are always longer than 12 bytes
            return count, last, m
        last = decode(m)
        count += 1


def _consume_objects(recv_obj):
    count = 0
    last = None
    while True:
        o = recv_obj()
        if o.__class__ is bytes:      # END marker; data messages are dicts
            return count, last, o
        last = o
        count += 1


# --------------------------------------------------------------------------
# round-trip latency (W3)
# --------------------------------------------------------------------------
def pinger_main(peer_name, spec, params, barrier, result):
    _run(_pinger, peer_name, barrier, result, spec, params)


def ponger_main(peer_name, spec, params, barrier, result):
    _run(_ponger, peer_name, barrier, result, spec, params)


def _pinger(peer, barrier, spec, params):
    state = peer.open_pingpong(spec, 0, "bind", None)
    _wait(barrier)                                        # bind
    rx, tx = peer.open_pingpong(spec, 0, "connect", state)
    _wait(barrier)                                        # connect
    warm, n = params["warmup"], params["roundtrips"]
    msgs = [_pack(i) for i in range(warm + n)]
    send, recv = tx.send, rx.recv
    bad = 0
    for m in msgs[:warm]:
        send(m)
        if recv() != m:
            bad += 1
    gc.collect()
    _wait(barrier)                                        # start (ponger is waiting in recv)
    clock = time.perf_counter_ns
    lat = [0] * n
    for i in range(n):
        m = msgs[warm + i]
        t = clock()
        send(m)
        r = recv()
        lat[i] = clock() - t
        if r != m:
            bad += 1
    send(end_message(warm + n))
    _wait(barrier)                                        # done
    tx.close()
    rx.close()
    import numpy as np
    a = np.asarray(lat, dtype=np.float64) / 1e3          # microseconds
    problems = [f"{bad} replies differed from their ping"] if bad else []
    return {"count": n, "p50": float(np.percentile(a, 50)),
            "p99": float(np.percentile(a, 99)), "p999": float(np.percentile(a, 99.9)),
            "mean": float(a.mean()), "min": float(a.min()), "max": float(a.max()),
            "problems": problems}


def _ponger(peer, barrier, spec, params):
    state = peer.open_pingpong(spec, 1, "bind", None)
    _wait(barrier)                                        # bind
    rx, tx = peer.open_pingpong(spec, 1, "connect", state)
    _wait(barrier)                                        # connect
    send, recv = tx.send, rx.recv
    expected = params["warmup"] + params["roundtrips"]
    for _ in range(params["warmup"]):
        send(recv())
    gc.collect()
    _wait(barrier)                                        # start
    count = params["warmup"]
    while True:
        m = recv()
        if len(m) != RECORD:
            break
        send(m)
        count += 1
    _wait(barrier)                                        # done
    tx.close()
    rx.close()
    problems = []
    if count != expected or m != end_message(expected):
        problems.append(f"ponger echoed {count} messages, expected {expected}")
    return {"count": count, "problems": problems}
