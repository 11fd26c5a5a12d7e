"""One Ether "host" of bench_bridge.py: a main script in its own process on a
simulated host, driven by JSON lines on stdin, one JSON answer per line on stdout
(as tests/bridge_host.py is for the tests; these are the benchmark's commands).

    python benchmarks/_bridge_host.py

Commands ({"op": NAME, ...} -> {"ok": value} or {"error": text}); every wait is
bounded by the command's timeout:

    tap config                 ether.tap(config); the session's name
    members                    [name, pid] of the session's members (the bridge's pid)
    wait_interest topic        until this host's bridge sends `topic` to another host
    bridge_statistics          this host's bridge's counters (ether.bridge.statistics())
    wait_proxy name            until a remote instance `name` is callable from here
    expect topic timeout       listen to `topic` from now on (before the other host sends)
    next topic                 the next message of an expected topic, within that timeout
    stream topic count run kind size   publish `count` messages (64 B or float32
                               frames of _bridge_frames), then "bulk_end"; the clock
                               before the first
    ping count warm            "ping" -> B's Pong -> "pong", one at a time
    rtt service count size warm    sequential ether.get(service, "echo"): ns each
    local count timeout        "local_go" to LocalPub, then LocalCounter's "local_done"
    shutdown
"""
from __future__ import annotations

import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from ether import ether  # noqa: E402

import _bridge_frames as frames  # noqa: E402
import _commands  # noqa: E402

_clock = time.perf_counter_ns
_listeners: dict = {}


def _until(condition, timeout: float, what: str):
    """Poll condition() every 20 ms (what it reads is another process's)."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:g} s for {what}")
        tick.wait(0.02)


def op_tap(config):
    ether.tap(config)
    return ether.session_name()


def op_members():
    from ether.lowlevel import inspect
    return [[m.name, m.pid] for m in inspect(ether.session_name()).members]


def op_wait_interest(topic, timeout=30.0):
    import ether.bridge
    return _until(lambda: topic in ether.bridge.statistics()["outbound"]["subscribed"], timeout,
                  f"another host to subscribe to {topic!r}")


def op_bridge_statistics():
    import ether.bridge
    return ether.bridge.statistics()


def op_wait_proxy(name, timeout=30.0):
    import ether.bridge
    return _until(lambda: name in ether.bridge.statistics()["calls"]["proxies"], timeout,
                  f"the remote instance {name!r}")


def op_expect(topic, timeout=30.0):
    _listeners[topic] = ether.listen(topic, timeout=timeout)
    return True


def op_next(topic):
    """The next message of an expected topic, within the timeout given to expect."""
    for message in _listeners[topic]:
        return message
    raise TimeoutError(f"no message on {topic!r} within the timeout of expect")


def op_stream(topic, count, run, kind="bytes", size=64):
    """64 B: {"seq", "count", "run", "blob"} with 48 bytes of blob (64 in all with
    the three ints); arrays: the frame of _bridge_frames."""
    pub = ether.pub
    if kind == "bytes":
        blob = os.urandom(size - 16)
        t0 = _clock()
        for seq in range(count):
            pub({"seq": seq, "count": count, "run": run, "blob": blob}, topic=topic)
    else:
        base = frames.base_frame(size)
        make = frames.make_frame
        t0 = _clock()
        for seq in range(count):
            pub({"seq": seq, "count": count, "run": run, "frame": make(base, seq)}, topic=topic)
    t_sent = _clock()
    pub({"count": count, "run": run}, topic="bulk_end")
    return {"t0_ns": t0, "t_sent_ns": t_sent}


def op_ping(count, warm=50, size=64):
    listener = _listeners["pong"]  # expected first, so that B's bridge sends it
    blob = os.urandom(size - 8)
    lost = 0
    t0 = 0
    for seq in range(warm + count):
        if seq == warm:
            t0 = _clock()
        ether.pub({"seq": seq, "blob": blob}, topic="ping")
        echo = next(listener, None)
        if echo is None or echo["seq"] != seq:
            lost += 1
            break
    return {"elapsed_ns": _clock() - t0, "count": count, "lost": lost}


def op_rtt(service, count, size, warm=20, timeout=10.0):
    times, bad = [], 0
    get = ether.get
    for i in range(-warm, count):
        t = _clock()
        reply = get(service, "echo", {"n": i, "size": size}, timeout=timeout)
        took = _clock() - t
        if reply["n"] != i or len(reply["blob"]) != size:
            bad += 1
        elif i >= 0:
            times.append(took)
    return {"ns": times, "bad": bad}


def op_local(count, timeout=60.0):
    listener = _listeners.get("local_done") or ether.listen("local_done", timeout=timeout)
    _listeners["local_done"] = listener
    ether.pub({"count": count}, topic="local_go")
    done = next(listener, None)
    if done is None:
        raise TimeoutError(f"no local_done within {timeout:g} s")
    return done


def op_shutdown():
    for listener in _listeners.values():
        listener.close()
    _listeners.clear()
    ether.shutdown()
    return True


OPS = {k[3:]: v for k, v in dict(globals()).items() if k.startswith("op_")}


def main() -> None:
    out = _commands.answers()
    _commands.write(out, {"ok": os.getpid()})
    _commands.serve(out, lambda name, args: OPS[name](**args))
    ether.shutdown()


if __name__ == "__main__":
    main()
