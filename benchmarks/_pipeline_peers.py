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
        encode = msgspec.msgpack.Encoder().encode
        send = sock.send
        gc.collect()
        barrier.wait(BARRIER_TIMEOUT)                    # connect
        barrier.wait(BARRIER_TIMEOUT)                    # start
        t0 = clock()
        for seq in range(count):
            send(encode({"seq": seq, "t": now(), "name": NAME, "value": seq * 0.5}))
        t_sent = clock()
        send(b"")
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
    barrier.wait(BARRIER_TIMEOUT)                        # done
    if sock is not None:
        sock.close(linger=0)
        ctx.term()
    return {"received": received, "violations": violations, "bad_fields": bad,
            "last_seq": next_seq - 1, "first_ns": first_ns, "last_ns": last_ns}
