"""One "host" of the bridge tests: an Ether main in its own process, driven by JSON
lines on stdin, answering one JSON line per command on stdout.

    python tests/bridge_host.py

A test on one machine runs two of these with loopback endpoints; the two-namespace
rig runs each under `ip netns exec` with the endpoints of its namespace. The
scenarios (tests/integration/test_bridge*.py) are written against Host
(tests/bridge_driver.py) and take the endpoints as parameters.

Commands: {"op": NAME, ...}; the answer is {"ok": value} or {"error": type,
"message": text}. Every wait is bounded by the command's own timeout.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bridge_apps

from ether import ServiceGone, ServiceNotFound, ether  # noqa: E402

_collectors: dict[str, dict] = {}


def _until(condition, timeout: float, what: str, tick: float = 0.02):
    """Poll condition() (every `tick` s: what it reads is another process's) until truthy."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:g} s for {what}")
        pause.wait(tick)


def op_tap(config):
    ether.tap(config)
    return {"session": ether.session_name(), "pid": os.getpid()}


def op_site():
    import ether.bridge
    return ether.bridge.site()


def op_bridge_statistics():
    import ether.bridge
    return ether.bridge.statistics()


def op_wait_remote_interest(topic, timeout=20.0, tick=0.02):
    """Until this host's bridge sends `topic` to another host."""
    import ether.bridge
    return _until(lambda: topic in ether.bridge.statistics()["outbound"]["subscribed"], timeout,
                  f"another host to subscribe to {topic!r}", tick=tick)


def op_wait_proxy(name, timeout=20.0, present=True):
    import ether.bridge
    return _until(lambda: (name in ether.bridge.statistics()["calls"]["proxies"]) == present or None,
                  timeout, f"proxy {name!r} {'to appear' if present else 'to go'}")


def op_wait_host(host, timeout=20.0, present=True):
    import ether.bridge
    return _until(lambda: (host in ether.bridge.site()["hosts"]) == present or None, timeout,
                  f"host {host!r} {'to appear' if present else 'to leave'}")


def op_members():
    from ether.lowlevel import inspect
    snap = inspect(ether.session_name())
    return [[m.name, m.pid, m.class_name] for m in snap.members]


def op_remote():
    """The remote instances' states as the main knows them (name@host -> {"state",
    "pid", "restarts", ...})."""
    supervisor = ether._supervisor
    return supervisor.remote.states() if supervisor is not None and supervisor.remote else {}


def op_wait_remote(name, state="ready", restarts=0, timeout=20.0):
    """Until the remote instance `name@host` is in `state` with at least `restarts`."""
    def there():
        now = op_remote().get(name)
        return now if now and now["state"] == state and now["restarts"] >= restarts else None
    return _until(there, timeout, f"{name} {state} with {restarts} restarts", tick=0.005)


def op_remote_timings():
    """B's supervisor's own restart figures (death -> ready and subscribed), in s."""
    supervisor = ether._supervisor
    return list(supervisor.remote.timings) if supervisor is not None and supervisor.remote else []


def op_bridge_pid():
    return next(m.pid for m in _members() if m.name == "bridge")


def _members():
    from ether.lowlevel import inspect
    return inspect(ether.session_name()).members


def op_wait_bridge_back(old_pid, timeout=20.0):
    """Until a bridge other than `old_pid` is ready (polled every 5 ms): {"pid",
    "restarts", "at": when it was seen ready (time.monotonic())}."""
    from ether.lowlevel import InstanceState

    def back():
        for m in _members():
            if m.name == "bridge" and m.pid != old_pid and \
                    InstanceState.of(m.state) is InstanceState.READY:
                return {"pid": m.pid, "restarts": m.restarts, "at": time.monotonic()}
        return None
    return _until(back, timeout, f"a new bridge (the old one: pid {old_pid})", tick=0.005)


def op_get_until(service, method, params=None, timeout=10.0):
    """Call until it succeeds (ServiceNotFound or ServiceGone: try again at once):
    {"result", "at": when it answered, "failures": [error types, in order]}."""
    failures = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = ether.get(service, method, params, timeout=max(0.1, deadline - time.monotonic()))
            return {"result": result, "at": time.monotonic(), "failures": failures}
        except (ServiceNotFound, ServiceGone) as exc:
            if not failures or failures[-1] != type(exc).__name__:
                failures.append(type(exc).__name__)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{service}.{method} did not answer within {timeout:g} s: "
                                   f"{failures}") from None
            threading.Event().wait(0.005)


def op_pub_when_wanted(topic, data, timeout=10.0):
    """Publish `data` once another host subscribes to `topic` (polled every 5 ms);
    returns when it was published (time.monotonic())."""
    op_wait_remote_interest(topic, timeout, tick=0.005)
    ether.pub(data, topic=topic)
    return time.monotonic()


_streams: dict[str, dict] = {}


def op_stream(topic, hz=50.0):
    """Publish {"i": 0, 1, ...} on topic at about hz in a thread, until stop_stream;
    a failed publish is counted and the stream goes on."""
    state = _streams[topic] = {"sent": 0, "failed": 0, "stop": threading.Event()}

    def run():
        i = 0
        while not state["stop"].wait(1.0 / hz):
            try:
                ether.pub({"i": i}, topic=topic)
                state["sent"] += 1
            except Exception:  # noqa: BLE001 - counted; the stream goes on
                state["failed"] += 1
            i += 1
    state["thread"] = threading.Thread(target=run, daemon=True)
    state["thread"].start()
    return True


def op_stop_stream(topic):
    state = _streams.pop(topic)
    state["stop"].set()
    state["thread"].join(5.0)
    return {"sent": state["sent"], "failed": state["failed"]}


def op_arrivals(name):
    """When each message recorded under `name` arrived (time.monotonic())."""
    box = _collectors[name]
    with box["lock"]:
        return list(box["at"])


def op_get(service, method, params=None, timeout=5.0):
    return ether.get(service, method, params, timeout=timeout)


def op_save(service, method, params=None, timeout=5.0):
    return ether.save(service, method, params, timeout=timeout)


_later: dict[int, int] = {}


def op_get_later(service, method, params=None, timeout=5.0):
    return ether.get_later(service, method, params, timeout=timeout)


def op_collect(request_id, timeout=None):
    return ether.collect(request_id, timeout=timeout)


def op_many_later(service, method, params, count, timeout=10.0):
    """count get_later calls, then collect them all: [(seconds after the first
    collect began, result or error type)]."""
    ids = [ether.get_later(service, method, params, timeout=timeout) for _ in range(count)]
    return ids


def op_collect_all(ids, timeout=10.0):
    out = []
    for request_id in ids:
        try:
            out.append({"ok": ether.collect(request_id, timeout=timeout), "at": time.monotonic()})
        except Exception as exc:
            out.append({"error": type(exc).__name__, "message": str(exc), "at": time.monotonic()})
    return out


def op_now():
    return time.monotonic()


def op_sync(topic, timeout=10.0, **params):
    return ether.sync(topic, timeout=timeout, **params)


def op_start():
    return ether.start()


def op_pub(topic, data):
    return ether.pub(data, topic=topic)


def op_record(name, topic, policy="block", envelopes=False, slow_s=0.0, timeout=None):
    """Start collecting what arrives on topic (a background subscription); each
    message waits slow_s first, or until op_release."""
    pause = threading.Event()
    box = _collectors[name] = {"items": [], "at": [], "lock": threading.Lock(), "pause": pause}

    def on_message(message):
        if envelopes:
            item = {"topic": message.topic, "sender": message.sender, "seq": message.seq,
                    "cause": None if message.cause is None else [message.cause.sender, message.cause.seq],
                    "trace": None if message.trace is None else [message.trace.sender, message.trace.seq],
                    "origin_host": None if message.origin is None else message.origin.host}
        else:
            item = _describe(message)
            if slow_s:
                pause.wait(slow_s)
        with box["lock"]:
            box["items"].append(item)
            box["at"].append(time.monotonic())

    from ether._client import default  # the main's Client: envelopes=True is for extensions
    extra = {} if timeout is None else {"timeout": timeout}
    box["unsubscribe"] = default().subscribe(topic, on_message, policy=policy, envelopes=envelopes,
                                             **extra)
    return True


def op_release(name):
    """A slow collector (slow_s) takes everything at once from now on."""
    _collectors[name]["pause"].set()
    return True


def op_pub_until_full(topic, size, timeout=60.0):
    """Publish `size`-byte messages on topic until a publish raises (or `timeout`
    s pass): the error, how many went, and how long the failing publish waited."""
    blob = os.urandom(size)
    deadline = time.monotonic() + timeout
    sent = 0
    while time.monotonic() < deadline:
        start = time.monotonic()
        try:
            ether.pub({"i": sent, "blob": blob}, topic=topic)
        except Exception as exc:
            return {"error": type(exc).__name__, "message": str(exc), "sent": sent,
                    "waited_s": time.monotonic() - start}
        sent += 1
    return {"error": None, "sent": sent}


def _describe(message: dict) -> dict:
    out = {}
    for key, value in message.items():
        if hasattr(value, "dtype"):
            out[key] = {"array": True, "crc": zlib.crc32(value.tobytes()) if value.size else 0,
                        "writeable": bool(value.flags.writeable), "shape": list(value.shape),
                        "dtype": str(value.dtype)}
        else:
            out[key] = value
    return out


def op_recorded(name, count=None, timeout=10.0):
    box = _collectors[name]
    if count is not None:
        _until(lambda: len(box["items"]) >= count or None, timeout, f"{count} messages in {name!r}")
    with box["lock"]:
        return list(box["items"])


def op_pub_frames(topic, count, mib, seed=0, start=0):
    """Publish `count` float32 frames of `mib` MiB, numbered from `start`; return
    their CRCs."""
    import numpy as np
    crcs = []
    n = mib * (1 << 20) // 4
    for i in range(start, start + count):
        frame = np.full(n, i + seed, dtype=np.float32)
        frame[::1024] = np.arange(len(frame[::1024]), dtype=np.float32) * (i + 1)
        crcs.append(zlib.crc32(frame.tobytes()))
        ether.pub({"i": i, "frame": frame}, topic=topic)
    return crcs


def op_statistics():
    return [{"inbox": s.inbox, "policy": s.policy, "sent": s.sent, "dropped": s.dropped}
            for s in ether.statistics()]


def op_import_zenoh():
    import zenoh  # noqa: F401  (as a user's main script might)
    return True


def op_session_log():
    from ether._runtime._logs import session_log_dir
    return (session_log_dir(ether.session_name()) / "session.log").read_text()


def op_wait_log(text, timeout=10.0):
    """Until the session's log has a line with `text`; returns that line."""
    def found():
        return next((l for l in op_session_log().splitlines() if text in l), None)
    return _until(found, timeout, f"{text!r} in session.log")


def op_shutdown():
    ether.shutdown()
    return True


OPS = {k[3:]: v for k, v in dict(globals()).items() if k.startswith("op_")}


def main() -> None:
    # Answers alone on the original stdout; fd 1 becomes stderr for everything else
    # (this process's prints and its forked instances').
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    out.write(json.dumps({"ok": "hello"}) + "\n")
    out.flush()
    for line in sys.stdin:
        command = json.loads(line)
        name = command.pop("op")
        if name == "exit":
            break
        try:
            answer = {"ok": OPS[name](**command)}
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the test
            answer = {"error": type(exc).__name__, "message": str(exc),
                      "traceback": traceback.format_exc()}
        out.write(json.dumps(answer, default=str) + "\n")
        out.flush()
    ether.shutdown()


if __name__ == "__main__":
    main()
