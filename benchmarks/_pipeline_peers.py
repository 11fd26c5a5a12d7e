"""Child-process bodies of ``bench_pipeline.py``'s peer transports.

The same dict stream as the Ether pipeline: the producer builds
{"seq", "t", "name", "value"} per message, the consumer counts them, checks
the order and records its first and last arrival (time.perf_counter_ns,
CLOCK_MONOTONIC, comparable across processes).

  mp-queue  multiprocessing.Queue: put(dict) / get() (pickled by the queue)
  zmq-ipc   pyzmq PUSH/PULL over ipc:// (default HWM, so lossless), the dict
            encoded with msgspec.msgpack.Encoder and decoded with a Decoder,
            both reused

Phases, separated by one multiprocessing.Barrier (no sleeps): bind (consumer)
-> connect (producer) -> start -> done.  After the last data message the
producer sends an end marker (None / an empty frame) and closes its end only
after the "done" barrier, i.e. once the consumer has received everything (a
zmq PUSH socket closed earlier, even with linger=-1, lost the tail of the
stream in a loaded-machine test).  Results go back over a Pipe.

Fan-out (P4) and chain (P5) peers, the same dicts and the same phases:
  zmq-pubsub  one pyzmq XPUB publisher (bound; SNDHWM 0, so it queues rather than
              drops) and three SUB processes (RCVHWM 0, subscribed to everything).
              The publisher starts only once it has read the three subscriptions
              (XPUB_VERBOSE: a duplicate subscription is passed up too), so no
              subscriber joins late.
  zmq-chain   source -> stage -> stage -> sink over PUSH/PULL (each PULL bound, each
              PUSH connected to the next one); each stage decodes every message with
              msgspec and encodes it again for the next; the end marker (an empty
              frame) is passed on.
"""
from __future__ import annotations

import gc
import time
from _harness import run_child  # noqa: E402

BARRIER_TIMEOUT = 120.0
STALL_TIMEOUT = 10.0      # zmq consumer: give up after this long without a message
NAME = "sensor-1"


def producer_main(peer, chan, count, barrier, result):
    run_child(_producer, barrier, result, peer, chan, count)


def consumer_main(peer, chan, count, barrier, result):
    run_child(_consumer, barrier, result, peer, chan, count)


def _producer(barrier, peer, chan, count):
    barrier.wait(BARRIER_TIMEOUT)                        # bind
    now = time.perf_counter
    clock = time.perf_counter_ns
    if peer == "mp-queue":
        put = chan.put
        gc.collect()
        barrier.wait(BARRIER_TIMEOUT)                    # connect
        barrier.wait(BARRIER_TIMEOUT)                    # start
        t0 = clock()
        for seq in range(count):
            put({"seq": seq, "t": now(), "name": NAME, "value": seq * 0.5})
        t_sent = clock()
        put(None)
        barrier.wait(BARRIER_TIMEOUT)                    # done: the consumer has it all
        chan.close()
        chan.join_thread()
    elif peer == "zmq-ipc":
        import msgspec
        import zmq
        ctx = zmq.Context()
        sock = ctx.socket(zmq.PUSH)
        sock.connect(chan)
        gc.collect()
        barrier.wait(BARRIER_TIMEOUT)                    # connect
        barrier.wait(BARRIER_TIMEOUT)                    # start
        t0, t_sent = _send_ticks(sock.send, count, msgspec.msgpack.Encoder().encode)
        # Close only once the consumer has everything: a PUSH socket closed (even with
        # linger=-1) while the stream is still in flight lost its tail in testing here.
        barrier.wait(BARRIER_TIMEOUT)                    # done
        sock.close(linger=-1)
        ctx.term()
    else:
        raise ValueError(peer)
    return {"t0_ns": t0, "t_sent_ns": t_sent, "sent": count}


def _consumer(barrier, peer, chan, count):
    if peer == "mp-queue":
        recv = chan.get
        decode = None
        end = None
        sock = ctx = None
    elif peer == "zmq-ipc":
        import msgspec
        import zmq
        ctx = zmq.Context()
        sock = ctx.socket(zmq.PULL)
        sock.setsockopt(zmq.RCVTIMEO, int(STALL_TIMEOUT * 1000))  # report a stall, not hang
        sock.bind(chan)
        recv = sock.recv
        decode = msgspec.msgpack.Decoder().decode
        end = b""
    else:
        raise ValueError(peer)
    barrier.wait(BARRIER_TIMEOUT)                        # bind
    barrier.wait(BARRIER_TIMEOUT)                        # connect
    gc.collect()
    barrier.wait(BARRIER_TIMEOUT)                        # start
    out = _tally(peer, recv, decode, end, count)
    barrier.wait(BARRIER_TIMEOUT)                        # done
    if sock is not None:
        sock.close(linger=0)
        ctx.term()
    return out


def _tally(peer, recv, decode, end, count) -> dict:
    """Receive until the end marker: count, check the order and the fields, and
    record the first and last arrival."""
    clock = time.perf_counter_ns
    received = violations = bad = 0
    next_seq = 0
    first_ns = last_ns = 0
    while True:
        try:
            m = recv()
        except Exception as exc:     # zmq.Again after STALL_TIMEOUT without a message
            raise RuntimeError(f"{peer} consumer: no message for {STALL_TIMEOUT:g} s after "
                               f"{received} of {count} messages ({type(exc).__name__})") from None
        if m == end:
            break
        now = clock()
        if received == 0:
            first_ns = now
        last_ns = now
        d = m if decode is None else decode(m)
        seq = d["seq"]
        if seq != next_seq:
            violations += 1
        if d["name"] != NAME or d["value"] != seq * 0.5 or d["t"].__class__ is not float:
            bad += 1
        next_seq = seq + 1
        received += 1
    return {"received": received, "violations": violations, "bad_fields": bad,
            "last_seq": next_seq - 1, "first_ns": first_ns, "last_ns": last_ns}


# ---- P4: fan-out over PUB/SUB ----

def fanout_pub_main(chan, count, subscribers, barrier, result):
    run_child(_fanout_pub, barrier, result, chan, count, subscribers)


def fanout_sub_main(chan, count, barrier, result):
    run_child(_fanout_sub, barrier, result, chan, count)


def _send_ticks(send, count: int, encode) -> tuple[int, int]:
    """A zmq producer's timed loop: `count` encoded ticks, then the empty frame
    that ends the stream; (clock before, clock after the last tick)."""
    now, clock = time.perf_counter, time.perf_counter_ns
    t0 = clock()
    for seq in range(count):
        send(encode({"seq": seq, "t": now(), "name": NAME, "value": seq * 0.5}))
    t_sent = clock()
    send(b"")
    return t0, t_sent


def _fanout_pub(barrier, chan, count, subscribers):
    import msgspec
    import zmq
    ctx = zmq.Context()
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.SNDHWM, 0)        # lossless: queue, never drop
    sock.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscription is read, duplicates too
    sock.setsockopt(zmq.RCVTIMEO, int(BARRIER_TIMEOUT * 1000))
    sock.bind(chan)
    barrier.wait(BARRIER_TIMEOUT)                        # bind
    barrier.wait(BARRIER_TIMEOUT)                        # connect
    for _ in range(subscribers):                         # each SUB's subscription has arrived
        sock.recv()
    gc.collect()
    barrier.wait(BARRIER_TIMEOUT)                        # start
    t0, t_sent = _send_ticks(sock.send, count, msgspec.msgpack.Encoder().encode)
    barrier.wait(BARRIER_TIMEOUT)                        # done
    sock.close(linger=-1)
    ctx.term()
    return {"t0_ns": t0, "t_sent_ns": t_sent, "sent": count}


def _fanout_sub(barrier, chan, count):
    import msgspec
    import zmq
    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.setsockopt(zmq.RCVTIMEO, int(STALL_TIMEOUT * 1000))
    barrier.wait(BARRIER_TIMEOUT)                        # bind
    sock.connect(chan)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    barrier.wait(BARRIER_TIMEOUT)                        # connect
    gc.collect()
    barrier.wait(BARRIER_TIMEOUT)                        # start
    out = _tally("zmq-pubsub", sock.recv, msgspec.msgpack.Decoder().decode, b"", count)
    barrier.wait(BARRIER_TIMEOUT)                        # done
    sock.close(linger=0)
    ctx.term()
    return out


# ---- P5: a chain of stages over PUSH/PULL ----

def chain_main(role, pull, push, count, barrier, result):
    run_child(_chain, barrier, result, role, pull, push, count)


def _chain(barrier, role, pull, push, count):
    """role: "source" (push only), "stage" (pull, then push) or "sink" (pull only)."""
    import msgspec
    import zmq
    ctx = zmq.Context()
    inp = out = None
    if pull is not None:
        inp = ctx.socket(zmq.PULL)
        inp.setsockopt(zmq.RCVTIMEO, int(STALL_TIMEOUT * 1000))
        inp.bind(pull)
    barrier.wait(BARRIER_TIMEOUT)                        # bind
    if push is not None:
        out = ctx.socket(zmq.PUSH)
        out.connect(push)
    barrier.wait(BARRIER_TIMEOUT)                        # connect
    encode = msgspec.msgpack.Encoder().encode
    decode = msgspec.msgpack.Decoder().decode
    gc.collect()
    barrier.wait(BARRIER_TIMEOUT)                        # start
    res = {}
    if role == "source":
        now = time.perf_counter
        clock = time.perf_counter_ns
        send = out.send
        t0 = clock()
        for seq in range(count):
            send(encode({"seq": seq, "t": now(), "name": NAME, "value": seq * 0.5}))
        res = {"t0_ns": t0, "t_sent_ns": clock(), "sent": count}
        send(b"")
    elif role == "stage":
        recv, send = inp.recv, out.send
        while True:
            try:
                m = recv()
            except zmq.Again:
                raise RuntimeError(f"zmq-chain stage: no message for {STALL_TIMEOUT:g} s") from None
            if m == b"":
                send(b"")
                break
            send(encode(decode(m)))
    else:
        res = _tally("zmq-chain", inp.recv, decode, b"", count)
    barrier.wait(BARRIER_TIMEOUT)                        # done
    for sock in (inp, out):
        if sock is not None:
            sock.close(linger=-1 if sock is out else 0)
    ctx.term()
    return res
