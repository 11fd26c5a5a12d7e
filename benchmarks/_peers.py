"""Transport adapters used by ``bench_transport.py``.

Every peer exposes the same small surface so that the workload loops in
``_workers.py`` are identical for all transports:

* ``setup(ctx, n_channels, max_len)``  -- in the parent, before the child
  processes start; returns a picklable *spec* (queues, pipes, addresses,
  names).  ``teardown(spec)`` runs after the children exited.
* ``open_rx(spec, ch)``  -- in a child: the receiving end of channel ``ch``.
  Called in the "bind" phase (before any sender exists).
* ``open_tx(spec, ch)``  -- in a child: the sending end of channel ``ch``.
  Called in the "connect" phase, after every receiver exists.

A receiver has ``recv()`` (one message as ``bytes``), ``recv_batch()`` (a
non-empty ``list[bytes]``), ``recv_obj()`` (one pickled Python object; only
mp-queue/mp-pipe) and ``close()``.  A sender has ``send(b)``,
``send_batch(list_of_bytes)``, ``send_obj(obj)`` and ``close()``.  The
callables are, wherever possible, the library's own bound methods so the
adapters add no call layer of their own.

Peers without a batch API (everything except Ether and faster-fifo) batch by
sending one joined frame of fixed-size records; ``recv_batch`` splits the frame
back into ``bytes`` objects of ``RECORD`` bytes, so every peer hands the
consumer the same ``list[bytes]``.
"""
from __future__ import annotations

import ctypes
import functools
import os
import shutil
import socket
import tempfile
import uuid

RECORD = 64          # size of one W1/W3/W4 message (seq in the first 8 bytes)
END_TAG = b"END!"    # end-of-stream marker: b"END!" + u64 little-endian count
END_LEN = 12
INBOX_CAPACITY = 1 << 22     # bytes of buffering per channel where configurable
MAX_LENGTH = 64 * 1024


def end_message(count: int) -> bytes:
    return END_TAG + count.to_bytes(8, "little")


def split_frame(frame: bytes, size: int = RECORD) -> list[bytes]:
    """Split a joined frame of fixed-size records into separate bytes objects.

    A frame that is not a multiple of ``size`` (the END marker) is returned
    whole, as a one-element list."""
    n = len(frame)
    if n % size:
        return [frame]
    return [frame[i:i + size] for i in range(0, n, size)]


class Endpoint:
    """Plain attribute bag; the workers read the callables off it."""

    def __init__(self, **kw):
        self.__dict__.update(kw)
        self.__dict__.setdefault("close", _noop)


def _noop() -> None:
    pass


def _unsupported(*_a, **_k):
    raise NotImplementedError("not supported by this peer")


class Peer:
    name = ""
    import_name = ""          # module whose absence makes the peer unavailable
    batch_how = ""            # what "batch" means for this peer (docs / table)
    w2_how = "msgspec.msgpack (Encoder/Decoder reused)"
    broadcast = False         # one sender reaches every receiver (fan-out)
    workloads = None          # keys of the workloads this peer runs (None: all)
    pingpong_how = "two one-way channels"

    def unavailable(self) -> str | None:
        if not self.import_name:
            return None
        try:
            __import__(self.import_name)
        except Exception as exc:  # ImportError or a broken extension
            return f"{self.import_name} not importable ({type(exc).__name__}: {exc})"
        return None

    # parent side -------------------------------------------------------
    def setup(self, ctx, n_channels: int, max_len: int) -> dict:
        return {"n": n_channels, "max_len": max_len}

    def teardown(self, spec: dict) -> str | None:
        """Release what setup() made; returns a problem description or None."""
        return None

    # child side ---------------------------------------------------------
    def open_rx(self, spec: dict, ch: int) -> Endpoint:
        raise NotImplementedError

    def open_tx(self, spec: dict, ch: int) -> Endpoint:
        raise NotImplementedError

    def open_pingpong(self, spec: dict, side: int, phase: str, state):
        """Ping-pong endpoints. phase "bind": returns state; phase "connect":
        returns (rx, tx). Default: side s receives on channel s, sends on 1-s."""
        if phase == "bind":
            return self.open_rx(spec, side)
        return state, self.open_tx(spec, 1 - side)

    def close_process(self) -> None:
        """Release per-process resources (sessions, contexts, nodes)."""


# --------------------------------------------------------------------------
# Ether
# --------------------------------------------------------------------------
class EtherPeer(Peer):
    name = "ether"
    import_name = "ether"
    batch_how = "native: Sender.send_many(256 msgs) / Inbox.receive_many(max_count=4096)"
    pingpong_how = "one inbox per side, a Sender to the other side's inbox"

    _session = None  # per child process

    def unavailable(self) -> str | None:
        reason = super().unavailable()
        if reason is None:
            import ether
            if not hasattr(ether, "Session"):
                return "ether.Session missing"
        return reason

    def setup(self, ctx, n_channels, max_len):
        import ether
        session = ether.Session.create()
        tag = uuid.uuid4().hex[:8]
        spec = {"session": session.name,
                "inboxes": [f"bench-{tag}-{i}" for i in range(n_channels)],
                "max_len": max_len}
        spec["_owner"] = session  # stripped before pickling (see public_spec)
        return spec

    def teardown(self, spec):
        session = spec.pop("_owner", None)
        if session is not None:
            session.close()
            # the owner's close must remove every shared-memory object of the session
            left = [f for f in os.listdir("/dev/shm") if spec["session"] in f] \
                if os.path.isdir("/dev/shm") else []
            if left:
                return f"Session.close() left {len(left)} object(s) in /dev/shm: {sorted(left)[:4]}"
        return None

    def _sess(self, spec):
        if EtherPeer._session is None:
            import ether
            EtherPeer._session = ether.Session.open(spec["session"])
        return EtherPeer._session

    def open_rx(self, spec, ch):
        inbox = self._sess(spec).create_inbox(
            spec["inboxes"][ch], capacity=INBOX_CAPACITY, max_length=MAX_LENGTH)
        return Endpoint(
            recv=inbox.receive,
            recv_batch=functools.partial(inbox.receive_many, max_count=4096),
            recv_obj=_unsupported,
            close=inbox.close)

    def open_tx(self, spec, ch):
        tx = self._sess(spec).connect(spec["inboxes"][ch], policy="block", timeout=30.0)
        send_many = tx.send_many

        def send_batch(items):
            done = send_many(items)
            while done < len(items):       # policy="block" should accept all at once
                done += send_many(items[done:])

        return Endpoint(send=tx.send, send_batch=send_batch, send_obj=_unsupported,
                        close=tx.close)

    def close_process(self):
        if EtherPeer._session is not None:
            EtherPeer._session.close()
            EtherPeer._session = None


# --------------------------------------------------------------------------
# multiprocessing.Queue / multiprocessing.Pipe
# --------------------------------------------------------------------------
class MpQueuePeer(Peer):
    name = "mp-queue"
    batch_how = "one joined 16 KiB bytes frame per put(), split on get()"
    w2_how = "native pickling of the dict (put(dict) / get())"
    pingpong_how = "two Queues"

    def setup(self, ctx, n_channels, max_len):
        return {"queues": [ctx.Queue() for _ in range(n_channels)]}

    def open_rx(self, spec, ch):
        q = spec["queues"][ch]
        get = q.get
        return Endpoint(recv=get, recv_batch=lambda: split_frame(get()), recv_obj=get)

    def open_tx(self, spec, ch):
        q = spec["queues"][ch]
        put = q.put

        def close():
            q.close()
            q.join_thread()      # flush the feeder thread before the process ends

        return Endpoint(send=put, send_batch=lambda items: put(b"".join(items)),
                        send_obj=put, close=close)


class MpPipePeer(Peer):
    name = "mp-pipe"
    batch_how = "one joined 16 KiB frame per send_bytes(), split on recv_bytes()"
    w2_how = "native pickling of the dict (send(dict) / recv())"
    pingpong_how = "two one-way Pipes (send_bytes/recv_bytes)"

    def setup(self, ctx, n_channels, max_len):
        return {"pipes": [ctx.Pipe(duplex=False) for _ in range(n_channels)]}

    def teardown(self, spec):
        for r, w in spec["pipes"]:
            r.close()
            w.close()

    def open_rx(self, spec, ch):
        r = spec["pipes"][ch][0]
        recv_bytes = r.recv_bytes
        return Endpoint(recv=recv_bytes, recv_batch=lambda: split_frame(recv_bytes()),
                        recv_obj=r.recv, close=r.close)

    def open_tx(self, spec, ch):
        w = spec["pipes"][ch][1]
        send_bytes = w.send_bytes
        return Endpoint(send=send_bytes,
                        send_batch=lambda items: send_bytes(b"".join(items)),
                        send_obj=w.send, close=w.close)


# --------------------------------------------------------------------------
# pyzmq
# --------------------------------------------------------------------------
def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _ZmqPeer(Peer):
    import_name = "zmq"
    batch_how = "one joined 16 KiB frame per send(), split on recv()"
    pingpong_how = "PAIR socket (side 0 binds, side 1 connects)"
    _ctx = None

    def _addresses(self, spec, n):
        raise NotImplementedError

    def setup(self, ctx, n_channels, max_len):
        spec = {}
        # one PUSH/PULL address per channel, plus one for the ping-pong PAIR socket
        spec["addrs"] = self._addresses(spec, n_channels + 1)
        return spec

    def _context(self):
        if _ZmqPeer._ctx is None:
            import zmq
            _ZmqPeer._ctx = zmq.Context()
        return _ZmqPeer._ctx

    def open_rx(self, spec, ch):
        import zmq
        sock = self._context().socket(zmq.PULL)
        sock.bind(spec["addrs"][ch])
        self._sock_rx = sock
        recv = sock.recv
        return Endpoint(recv=recv, recv_batch=lambda: split_frame(recv()),
                        recv_obj=_unsupported, close=lambda: sock.close(linger=0))

    def open_tx(self, spec, ch):
        import zmq
        sock = self._context().socket(zmq.PUSH)
        sock.connect(spec["addrs"][ch])
        self._sock_tx = sock
        send = sock.send
        # the workers only close after the consumer confirmed END, so nothing is in flight
        return Endpoint(send=send, send_batch=lambda items: send(b"".join(items)),
                        send_obj=_unsupported, close=lambda: sock.close(linger=1000))

    def open_pingpong(self, spec, side, phase, state):
        import zmq
        addr = spec["addrs"][-1]
        if phase == "bind":
            sock = self._context().socket(zmq.PAIR)
            if side == 0:
                sock.bind(addr)
            return sock
        sock = state
        if side == 1:
            sock.connect(addr)
        close = lambda: sock.close(linger=0)  # noqa: E731
        return (Endpoint(recv=sock.recv, recv_batch=_unsupported, recv_obj=_unsupported),
                Endpoint(send=sock.send, send_batch=_unsupported, send_obj=_unsupported,
                         close=close))

    def close_process(self):
        if _ZmqPeer._ctx is not None:
            _ZmqPeer._ctx.term()
            _ZmqPeer._ctx = None


class ZmqIpcPeer(_ZmqPeer):
    name = "zmq-ipc"

    def _addresses(self, spec, n):
        spec["dir"] = d = tempfile.mkdtemp(prefix="etherbench-zmq-")
        return [f"ipc://{d}/ch{i}" for i in range(n)]

    def teardown(self, spec):
        shutil.rmtree(spec["dir"], ignore_errors=True)


class ZmqTcpPeer(_ZmqPeer):
    name = "zmq-tcp"

    def _addresses(self, spec, n):
        return [f"tcp://127.0.0.1:{_free_tcp_port()}" for _ in range(n)]


# --------------------------------------------------------------------------
# faster-fifo
# --------------------------------------------------------------------------
def ff_dumps(b):
    """faster-fifo serializer: messages are bytes already, pass them through."""
    return b


def ff_loads(view):
    """faster-fifo deserializer: hand the consumer an owned bytes object."""
    return bytes(view)


class FasterFifoPeer(Peer):
    name = "faster-fifo"
    import_name = "faster_fifo"
    batch_how = "native: put_many(256 msgs) / get_many(max_messages_to_get=4096)"
    pingpong_how = "two Queues"

    def setup(self, ctx, n_channels, max_len):
        import faster_fifo
        # raw bytes in, bytes out (no pickling of the payload), 4 MiB ring like Ether's inbox
        qs = [faster_fifo.Queue(max_size_bytes=INBOX_CAPACITY, loads=ff_loads, dumps=ff_dumps)
              for _ in range(n_channels)]
        return {"queues": qs}

    def open_rx(self, spec, ch):
        q = spec["queues"][ch]
        return Endpoint(recv=q.get,
                        recv_batch=functools.partial(q.get_many, max_messages_to_get=4096),
                        recv_obj=_unsupported)

    def open_tx(self, spec, ch):
        q = spec["queues"][ch]
        return Endpoint(send=q.put, send_batch=q.put_many, send_obj=_unsupported)


# --------------------------------------------------------------------------
# iceoryx2 (publish-subscribe, Slice[c_uint8] payload, subscriber polls)
# --------------------------------------------------------------------------
class Iceoryx2Peer(Peer):
    name = "iceoryx2"
    import_name = "iceoryx2"
    batch_how = "one 16 KiB slice sample per loan/send, split on receive"
    broadcast = True
    pingpong_how = "two pub/sub services; subscribers poll (receive() + sched_yield)"
    _node = None
    _services: dict = {}

    def setup(self, ctx, n_channels, max_len):
        tag = uuid.uuid4().hex[:12]
        return {"services": [f"etherbench/{tag}/ch{i}" for i in range(n_channels)],
                "max_len": max_len}

    @staticmethod
    def _buffer(max_len):
        # about INBOX_CAPACITY bytes in flight per subscriber, within sane limits
        return max(16, min(4096, INBOX_CAPACITY // max(max_len, RECORD)))

    def _service(self, spec, ch):
        import iceoryx2 as iox2
        if Iceoryx2Peer._node is None:
            iox2.set_log_level(iox2.LogLevel.Error)
            Iceoryx2Peer._node = (iox2.NodeBuilder.new()
                                  .signal_handling_mode(iox2.SignalHandlingMode.Disabled)
                                  .create(iox2.ServiceType.Ipc))
        name = spec["services"][ch]
        svc = Iceoryx2Peer._services.get(name)
        if svc is None:
            svc = (Iceoryx2Peer._node.service_builder(iox2.ServiceName.new(name))
                   .publish_subscribe(iox2.Slice[ctypes.c_uint8])
                   .enable_safe_overflow(False)          # never overwrite: no silent loss
                   .history_size(0)
                   .max_publishers(2)
                   .max_subscribers(4)
                   .subscriber_max_buffer_size(self._buffer(spec["max_len"]))
                   .open_or_create())
            Iceoryx2Peer._services[name] = svc
        return svc

    def open_rx(self, spec, ch):
        sub = self._service(spec, ch).subscriber_builder().buffer_size(
            self._buffer(spec["max_len"])).create()
        receive = sub.receive
        string_at = ctypes.string_at
        yield_ = os.sched_yield

        def recv():
            sample = receive()
            while sample is None:
                yield_()
                sample = receive()
            data = string_at(sample.payload_ptr, sample.header.number_of_elements)
            sample.delete()
            return data

        return Endpoint(recv=recv, recv_batch=lambda: split_frame(recv()),
                        recv_obj=_unsupported, close=sub.delete)

    def open_tx(self, spec, ch):
        import iceoryx2 as iox2
        pub = (self._service(spec, ch).publisher_builder()
               .initial_max_slice_len(spec["max_len"])
               .allocation_strategy(iox2.AllocationStrategy.PowerOfTwo)
               .backpressure_strategy(iox2.BackpressureStrategy.RetryUntilDelivered)
               .create())
        loan = pub.loan_slice_uninit
        memmove = ctypes.memmove

        def send(data):
            n = len(data)
            sample = loan(n)
            memmove(sample.payload_ptr, data, n)
            sample.assume_init().send()

        return Endpoint(send=send, send_batch=lambda items: send(b"".join(items)),
                        send_obj=_unsupported, close=pub.delete)

    def close_process(self):
        Iceoryx2Peer._services.clear()
        Iceoryx2Peer._node = None


# --------------------------------------------------------------------------
# Batch variants that use each peer's own batch idiom for separate messages
# (W1-batch only): what a user would write without inventing a framing.
# --------------------------------------------------------------------------
class MpPipeListPeer(MpPipePeer):
    name = "mp-pipe-list"
    batch_how = "native: send(list of 256 bytes) / recv() (pickled list)"
    workloads = frozenset({"W1-batch"})

    def open_rx(self, spec, ch):
        ep = super().open_rx(spec, ch)
        recv = spec["pipes"][ch][0].recv
        ep.recv_batch = lambda: _unwrap(recv())
        return ep

    def open_tx(self, spec, ch):
        ep = super().open_tx(spec, ch)
        ep.send_batch = ep.send = spec["pipes"][ch][1].send  # END is pickled too
        return ep


class ZmqIpcMultipartPeer(ZmqIpcPeer):
    name = "zmq-ipc-multipart"
    batch_how = "native: send_multipart(256 frames) / recv_multipart()"
    workloads = frozenset({"W1-batch"})

    def open_rx(self, spec, ch):
        ep = super().open_rx(spec, ch)
        ep.recv_batch = self._sock_rx.recv_multipart
        return ep

    def open_tx(self, spec, ch):
        ep = super().open_tx(spec, ch)
        ep.send_batch = self._sock_tx.send_multipart
        return ep


def _unwrap(obj):
    # the END marker travels as plain bytes through the same channel
    return obj if isinstance(obj, list) else [obj]


PEERS: dict[str, Peer] = {p.name: p for p in (
    EtherPeer(), MpQueuePeer(), MpPipePeer(), ZmqIpcPeer(), ZmqTcpPeer(),
    FasterFifoPeer(), Iceoryx2Peer(), MpPipeListPeer(), ZmqIpcMultipartPeer())}


def public_spec(spec: dict) -> dict:
    """The part of a spec that is sent to the children (drops parent-only keys)."""
    return {k: v for k, v in spec.items() if not k.startswith("_")}
