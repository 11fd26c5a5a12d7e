"""Child-process bodies of ``bench_arrays.py``'s peer transports.

One producer process sends `warm` + `count` float32 arrays of `size` bytes (all
ones) to R consumer processes; each consumer gets every array as an ndarray it
can read, touches it as Ether's subscribers do (frame[::1024].sum(): one float32
per 4 KiB page, no copy), checks the sum and the last element, and records the
arrival time (time.perf_counter_ns, CLOCK_MONOTONIC, comparable across
processes) of the last array, after the touch.

  zmq-ipc   pyzmq PUSH/PULL over ipc://, one PUSH socket per consumer: the
            producer sends a small seq frame and then the array with
            send(array, copy=False) (multipart); the consumer receives with
            recv(copy=False) and makes np.frombuffer(frame.buffer, float32).
            SNDHWM = RCVHWM = 2 messages, so memory stays bounded.
  mp-queue  one multiprocessing.Queue per consumer: put((seq, array)), pickled
            by the queue's feeder thread; get() unpickles a new array.
  iceoryx2  one publish-subscribe service of Slice[c_uint8], R subscribers: the
            producer loans a slice of `size` bytes (loan_slice_uninit),
            copies the array into it with ctypes.memmove (the user's copy),
            sends; each subscriber polls receive() (+ sched_yield: iceoryx2's
            Python subscriber has no blocking receive), views the payload with
            np.frombuffer (no copy) and deletes the sample after the touch.
            initial_max_slice_len = size, subscriber buffer 16 (4 at 256 MiB: a buffer
            of 2 lost samples when a subscriber lagged), one borrowed
            sample per subscriber, one loan, RetryUntilDelivered backpressure.

Phases, separated by one multiprocessing.Barrier of R + 1 parties (no sleeps):
setup (iceoryx2: producer creates the service) -> bind (consumers) -> connect
(producer) -> warm (the warm-up arrays are sent and received; the producer
takes t0 right after this barrier) -> done (every consumer has every array;
only then the producer closes its ends). Results go back over a Pipe.
"""
from __future__ import annotations

import ctypes
import gc
import os
import time

import numpy as np
from _harness import run_child  # noqa: E402

BARRIER_TIMEOUT = 300.0
STALL_TIMEOUT = 60.0
PAGE_FLOATS = 4096 // 4


def producer_main(peer, spec, barrier, result):
    run_child(_producer, barrier, result, peer, spec)


def consumer_main(peer, spec, index, barrier, result):
    run_child(_consumer, barrier, result, peer, spec, index)


# --------------------------------------------------------------------------
# iceoryx2 service
# --------------------------------------------------------------------------
def _iox_service(spec, create: bool):
    import iceoryx2 as iox2
    iox2.set_log_level(iox2.LogLevel.Error)
    node = (iox2.NodeBuilder.new().signal_handling_mode(iox2.SignalHandlingMode.Disabled)
            .create(iox2.ServiceType.Ipc))
    builder = (node.service_builder(iox2.ServiceName.new(spec["service"]))
               .publish_subscribe(iox2.Slice[ctypes.c_uint8])
               .enable_safe_overflow(False)
               .history_size(0)
               .max_publishers(1)
               .max_subscribers(spec["receivers"])
               .subscriber_max_buffer_size(spec.get("buffer", 2))
               .subscriber_max_borrowed_samples(1))
    svc = builder.create() if create else builder.open()
    return node, svc


# --------------------------------------------------------------------------
# producer
# --------------------------------------------------------------------------
def _producer(barrier, peer, spec):
    size, count, warm, R = spec["size"], spec["count"], spec["warm"], spec["receivers"]
    src = np.ones(size // 4, np.float32)
    clock = time.perf_counter_ns
    closers = []
    if peer == "iceoryx2":
        node, svc = _iox_service(spec, create=True)
    barrier.wait(BARRIER_TIMEOUT)                        # setup
    barrier.wait(BARRIER_TIMEOUT)                        # bind
    if peer == "zmq-ipc":
        import zmq
        ctx = zmq.Context()
        socks = []
        for addr in spec["addrs"]:
            s = ctx.socket(zmq.PUSH)
            s.setsockopt(zmq.SNDHWM, 2)
            s.connect(addr)
            socks.append(s)
        more = zmq.SNDMORE

        def send(seq):
            head = seq.to_bytes(8, "little")
            for s in socks:
                s.send(head, more)
                s.send(src, copy=False)

        closers.append(lambda: ([s.close(linger=-1) for s in socks], ctx.term()))
    elif peer == "mp-queue":
        queues = spec["queues"]

        def send(seq):
            item = (seq, src)
            for q in queues:
                q.put(item)

        def close_queues():
            for q in queues:
                q.close()
                q.join_thread()
        closers.append(close_queues)
    elif peer == "iceoryx2":
        import iceoryx2 as iox2
        pub = (svc.publisher_builder()
               .initial_max_slice_len(size)
               .max_loaned_samples(1)
               .backpressure_strategy(iox2.BackpressureStrategy.RetryUntilDelivered)
               .create())
        loan = pub.loan_slice_uninit
        memmove = ctypes.memmove
        address = src.ctypes.data

        def send(seq):
            sample = loan(size)
            memmove(sample.payload_ptr, address, size)
            sample.assume_init().send()

        closers.append(lambda: (pub.delete(), None))
    else:
        raise ValueError(peer)
    gc.collect()
    barrier.wait(BARRIER_TIMEOUT)                        # connect
    for seq in range(warm):
        send(seq)
    barrier.wait(BARRIER_TIMEOUT)                        # warm
    t0 = clock()
    for seq in range(warm, warm + count):
        send(seq)
    t_sent = clock()
    barrier.wait(BARRIER_TIMEOUT)                        # done
    for close in closers:
        close()
    return {"t0_ns": t0, "t_sent_ns": t_sent, "sent": count}


# --------------------------------------------------------------------------
# consumer
# --------------------------------------------------------------------------
def _consumer(barrier, peer, spec, index):
    size, count, warm = spec["size"], spec["count"], spec["warm"]
    pages = size // 4096
    n = size // 4
    frombuffer = np.frombuffer
    close = None
    barrier.wait(BARRIER_TIMEOUT)                        # setup
    if peer == "zmq-ipc":
        import zmq
        ctx = zmq.Context()
        sock = ctx.socket(zmq.PULL)
        sock.setsockopt(zmq.RCVHWM, 2)
        sock.setsockopt(zmq.RCVTIMEO, int(STALL_TIMEOUT * 1000))
        sock.bind(spec["addrs"][index])
        recv = sock.recv

        def receive():
            recv(copy=False)                             # the seq frame
            frame = recv(copy=False)
            return frombuffer(frame.buffer, np.float32), None

        close = lambda: (sock.close(linger=0), ctx.term())  # noqa: E731
    elif peer == "mp-queue":
        get = spec["queues"][index].get

        def receive():
            _, array = get(timeout=STALL_TIMEOUT)
            return array, None
    elif peer == "iceoryx2":
        node, svc = _iox_service(spec, create=False)
        sub = svc.subscriber_builder().buffer_size(spec.get("buffer", 2)).create()
        take = sub.receive
        yield_ = os.sched_yield
        array_of = ctypes.c_char * size

        def receive():
            sample = take()
            if sample is None:
                deadline = time.monotonic() + STALL_TIMEOUT
                while sample is None:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"iceoryx2 subscriber: no sample for {STALL_TIMEOUT:g} s "
                                           f"after {received} timed + warm-up samples")
                    yield_()
                    sample = take()
            view = frombuffer(array_of.from_address(sample.payload_ptr), np.float32, count=n)
            return view, sample

        close = sub.delete
    else:
        raise ValueError(peer)
    barrier.wait(BARRIER_TIMEOUT)                        # bind
    barrier.wait(BARRIER_TIMEOUT)                        # connect
    gc.collect()
    clock = time.perf_counter_ns
    bad = received = 0
    last_ns = first_ns = 0
    for i in range(warm + count):
        if i == warm:
            barrier.wait(BARRIER_TIMEOUT)                # warm
        frame, sample = receive()
        if frame[::PAGE_FLOATS].sum(dtype=np.float64) != pages or frame[-1] != 1.0:
            bad += 1
        now = clock()
        if sample is not None:
            del frame
            sample.delete()
        else:
            del frame
        if i >= warm:
            if not received:
                first_ns = now
            received += 1
            last_ns = now
    barrier.wait(BARRIER_TIMEOUT)                        # done
    if close is not None:
        close()
    return {"received": received, "bad": bad, "first_ns": first_ns, "last_ns": last_ns}
