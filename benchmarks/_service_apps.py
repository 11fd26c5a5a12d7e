"""Ordinary classes that ``bench_services.py`` runs as Ether instances, and the
pyzmq REQ/REP peer's processes.

The config names the classes by class_path (``_service_apps.EchoService``); the
instance processes are forked from the benchmark's main process and import this
module through its sys.path (benchmarks/ is sys.path[0] there).  The peer's
processes are started with the 'spawn' method and import it the same way.

EchoService  one request-reply method, @ether_get echo(n: int) -> {"n": n}.
Caller       a client that runs inside an instance process:
               "warm" topic   `warmup` untimed ether.get calls, then one "ready"
                              message (so every caller is warm before any timed
                              loop starts);
               "go" topic     `count` timed ether.get(service, "echo", {"n": i})
                              calls, each timed with time.perf_counter_ns and each
                              reply checked; then one "done" message with the
                              per-call latencies (ns), the clock before the first
                              call and after the last one, and the number of bad
                              replies.
             time.perf_counter_ns is CLOCK_MONOTONIC: comparable across processes.
"""
from __future__ import annotations

import time

from ether import ether, ether_get, ether_sub


class EchoService:
    @ether_get
    def echo(self, n: int) -> dict:
        return {"n": n}


def _timed_calls(call, start: int, count: int) -> tuple[list[int], int, int, int]:
    """Run call(i) for i in start..start+count-1, each timed; returns
    (latencies ns, first clock, last clock, bad replies).  call(i) returns the
    reply's n."""
    clock = time.perf_counter_ns
    lat = [0] * count
    bad = 0
    t_first = clock()
    t0 = t_first
    for k in range(count):
        i = start + k
        n = call(i)
        t1 = clock()
        lat[k] = t1 - t0
        t0 = t1
        if n != i:
            bad += 1
    return lat, t_first, t0, bad


class Caller:
    def __init__(self, index: int = 0):
        self.index = index

    def _call(self, service: str):
        get = ether.get
        return lambda i: get(service, "echo", params={"n": i})["n"]

    @ether_sub(topic="warm")
    def warm(self, service: str, warmup: int) -> None:
        call = self._call(service)
        bad = sum(call(i) != i for i in range(warmup))
        ether.pub({"caller": self.index, "bad": bad}, topic="ready")

    @ether_sub(topic="go")
    def go(self, service: str, count: int) -> None:
        error = ""
        lat, t_first, t_last, bad = [], 0, 0, 0
        try:
            lat, t_first, t_last, bad = _timed_calls(self._call(service), self.index * 1_000_000, count)
        except Exception as exc:  # report it rather than leave the main waiting
            error = f"{type(exc).__name__}: {exc}"
        ether.pub({"caller": self.index, "lat_ns": lat, "t_first": t_first, "t_last": t_last,
                   "bad": bad, "error": error}, topic="done")


# --------------------------------------------------------------------------
# the pyzmq REQ/REP peer (spawned processes)
# --------------------------------------------------------------------------
STOP = -1


def zmq_server_main(endpoint: str, conn) -> None:
    """REP server: bind (tcp://127.0.0.1:0 picks a free port), send the bound
    endpoint through conn, then decode {"n": i} and reply {"n": i} until n == STOP."""
    import msgspec
    import zmq
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP)
    sock.linger = 0
    if endpoint.endswith(":0"):
        port = sock.bind_to_random_port(endpoint[:-2])
        endpoint = f"{endpoint[:-2]}:{port}"
    else:
        sock.bind(endpoint)
    enc, dec = msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder()
    conn.send(endpoint)
    conn.close()
    recv, send, decode, encode = sock.recv, sock.send, dec.decode, enc.encode
    try:
        while True:
            n = decode(recv())["n"]
            send(encode({"n": n}))
            if n == STOP:
                break
    finally:
        sock.close()
        ctx.term()


class ZmqClient:
    """A REQ client with the same call shape as ether.get: encode the request
    dict, send, receive, decode, return the reply's n."""

    def __init__(self, endpoint: str):
        import msgspec
        import zmq
        self._ctx = zmq.Context()
        self.sock = self._ctx.socket(zmq.REQ)
        self.sock.linger = 0
        self.sock.connect(endpoint)
        enc, dec = msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder()
        send, recv, encode, decode = self.sock.send, self.sock.recv, enc.encode, dec.decode

        def call(i: int) -> int:
            send(encode({"n": i}))
            return decode(recv())["n"]

        self.call = call

    def close(self) -> None:
        self.sock.close()
        self._ctx.term()


def zmq_client_main(endpoint: str, index: int, warmup: int, count: int, barrier, conn) -> None:
    """One of the concurrent REQ clients: connect, warm up, wait for all, time
    `count` calls, send the result dict through conn."""
    try:
        client = ZmqClient(endpoint)
        bad = sum(client.call(i) != i for i in range(warmup))
        barrier.wait()
        lat, t_first, t_last, b = _timed_calls(client.call, index * 1_000_000, count)
        client.close()
        conn.send({"caller": index, "lat_ns": lat, "t_first": t_first, "t_last": t_last,
                   "bad": bad + b, "error": ""})
    except Exception as exc:
        try:
            barrier.abort()
        except Exception:
            pass
        conn.send({"caller": index, "lat_ns": [], "t_first": 0, "t_last": 0, "bad": 0,
                   "error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()
