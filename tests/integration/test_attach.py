"""Client.attach: another process joins a running session, sees its messages with
their provenance, calls its services, and leaves it running; one process holds
clients of two sessions at once."""
import json
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import numpy as np
import pytest

import ether as ether_pkg
from ether import ether
from ether.lowlevel import Client

from conftest import shm_objects

PIPELINE = {
    "source": {"class_path": "lineage_apps.Source"},
    "relay": {"class_path": "lineage_apps.Relay"},
    "echo": {"class_path": "lineage_apps.Echo", "kwargs": {"label": "here"}},
}


class Lines:
    """The stdout of a child process, line by line, each read bounded in time."""

    def __init__(self, process: subprocess.Popen):
        self.process, self._buffer = process, b""

    def next(self, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line from the child within {timeout} s; got {self._buffer!r}")
            ready, _, _ = select.select([self.process.stdout], [], [], left)
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError(f"the child exited ({self.process.wait()}); got {self._buffer!r}")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()


def _child(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def _end(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(10)
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()


ATTACHER = """
    import json, sys, threading
    from ether import ether as facade

    session, expected = sys.argv[1], int(sys.argv[2])
    client = facade.attach(session)
    seen = []

    def record(envelope):
        origin = client.node.origin_of(envelope)
        seen.append({"topic": envelope.topic, "sender": envelope.sender, "seq": envelope.seq,
                     "cause": None if envelope.cause is None else [envelope.cause.sender, envelope.cause.seq],
                     "trace": [envelope.root.sender, envelope.root.seq],
                     "run": origin.run.hex(), "host": origin.host})
        if len(seen) == expected:
            done.set()

    done = threading.Event()
    client.subscribe("*", record, envelopes=True)
    print("subscribed", client.session_name(), flush=True)
    if not done.wait(20):
        print("timeout", len(seen), flush=True)
        sys.exit(1)
    for message in seen:
        print(json.dumps(message), flush=True)
    print("echo", json.dumps(client.get("Echo", "echo", {"value": 7})), flush=True)
    print("sync", json.dumps(client.sync("prepare", level=3)), flush=True)
    client.close()
    print("detached", flush=True)
"""


@pytest.fixture
def tapped():
    sessions = []

    def tap(instances):
        ether.tap(config={"instances": instances})
        sessions.append(ether.session_name())
        return sessions[-1]

    yield tap
    ether.shutdown()
    for sid in sessions:
        assert shm_objects(sid) == [], f"session {sid} left shared memory behind"


def test_an_attached_process_sees_every_message_with_origin_trace_and_cause(tapped):
    name = tapped(PIPELINE)
    n = 20
    attacher = _child(ATTACHER, name, str(1 + 2 * n))
    try:
        lines = Lines(attacher)
        assert lines.next() == f"subscribed {name}"
        ether.pub({"n": n, "tag": "a"}, topic="go")
        seen = []
        while True:
            line = lines.next()
            if line.startswith("echo "):
                echo = json.loads(line[5:])
                break
            assert line != "timeout", line
            seen.append(json.loads(line))
        assert lines.next() == 'sync {"echo": "here at 3"}'
        assert lines.next() == "detached"
        assert attacher.wait(10) == 0
    finally:
        _end(attacher)

    by_topic = {t: [m for m in seen if m["topic"] == t] for t in ("go", "raw", "cooked")}
    assert [len(by_topic[t]) for t in ("go", "raw", "cooked")] == [1, n, n]
    go = by_topic["go"][0]
    assert go["sender"] == "main" and go["cause"] is None
    root = [go["sender"], go["seq"]]
    assert go["trace"] == root
    # Each publisher's messages in order, none twice.
    assert [m["seq"] for m in by_topic["raw"]] == sorted({m["seq"] for m in by_topic["raw"]})
    for m in by_topic["raw"]:
        assert m["sender"] == "source" and m["cause"] == root and m["trace"] == root
    raw_ids = {(m["sender"], m["seq"]) for m in by_topic["raw"]}
    for m in by_topic["cooked"]:
        assert m["sender"] == "relay" and tuple(m["cause"]) in raw_ids and m["trace"] == root
    assert len({tuple(m["cause"]) for m in by_topic["cooked"]}) == n
    # One origin for the whole session: its UUIDv7 run id and this host.
    assert len({(m["run"], m["host"]) for m in seen}) == 1
    assert uuid.UUID(hex=seen[0]["run"]).version == 7 and seen[0]["host"] == socket.gethostname()
    assert echo == {"value": 7, "label": "here"}

    # The session carries on without the attached process, and its inbox is gone.
    with ether.listen("cooked", timeout=10) as cooked:
        ether.pub({"n": 1, "tag": "after"}, topic="go")
        assert next(cooked)["tag"] == "after"
    members = {m.name for m in ether_pkg.lowlevel.inspect(name).members}  # the attached inbox is gone
    assert members == {"main", "source", "relay", "echo"}


def test_attaching_to_a_session_that_does_not_exist_fails_clearly():
    with pytest.raises(ether_pkg.SessionNotFound, match="no session named 'tnosuch01'"):
        ether.attach("tnosuch01")


def test_attaching_to_a_dead_session_fails_clearly(sid):
    owner = _child("""
        import sys, ether
        session = ether.lowlevel.Session.create(sys.argv[1])
        print("created", flush=True)
        sys.stdin.read()
    """, sid)
    try:
        assert Lines(owner).next() == "created"
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(10)
        with pytest.raises(ether_pkg.SessionNotFound, match=f"session {sid!r} is stale: its owner"):
            Client.attach(sid)
    finally:
        _end(owner)
        ether_pkg.lowlevel.remove_stale_sessions()


TAPPER = """
    import sys
    from ether import ether
    fill = float(sys.argv[1])
    ether.tap(config={"instances": {
        "frames": {"class_path": "lineage_apps.Frames", "kwargs": {"fill": fill}},
        "echo": {"class_path": "lineage_apps.Echo", "kwargs": {"label": sys.argv[1]}}}})
    print(ether.session_name(), flush=True)
    sys.stdin.read()   # until the test closes our stdin
    ether.shutdown()
    print("stopped", flush=True)
"""


def test_two_clients_in_one_process_attach_to_two_sessions_without_mixing_anything():
    tests_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [tests_dir, os.environ.get("PYTHONPATH")])))
    tappers = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(TAPPER), fill],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
               for fill in ("1", "2")]
    clients = []
    lines = [Lines(p) for p in tappers]
    try:
        names = [lines[0].next(), lines[1].next()]
        assert names[0] != names[1]
        clients = [Client.attach(name) for name in names]
        frames = [[], []]
        got_all = [threading.Event() for _ in clients]

        def keeper(k):
            def keep(message):
                frames[k].append(message)
                if len(frames[k]) == 5:
                    got_all[k].set()
            return keep

        for k, client in enumerate(clients):
            client.subscribe("frames", keeper(k))
        for client in clients:
            client.pub({"count": 5}, topic="emit")
        for k, client in enumerate(clients):
            assert client.get("Echo", "echo", {"value": k}) == {"value": k, "label": str(k + 1)}
        for event in got_all:
            assert event.wait(20)
        for k in (0, 1):
            assert [f["i"] for f in frames[k]] == list(range(5))
            for f in frames[k]:
                assert isinstance(f["data"], np.ndarray) and not f["data"].flags.writeable
                assert f["data"].shape == (1 << 16,) and np.all(f["data"] == k + 1)
    finally:
        for client in clients:
            client.close()
        for p in tappers:
            try:
                p.stdin.close()
            except OSError:
                pass
        for p, line in zip(tappers, lines):
            try:
                assert line.next() == "stopped"
            finally:
                _end(p)
    for name in names:
        assert shm_objects(name) == []


def test_a_decorated_pattern_subscription_gets_every_matching_topic(tapped):
    tapped({"watcher": {"class_path": "lineage_apps.SensorWatcher"}})
    with ether.listen("watched", timeout=10) as watched:
        for i, topic in enumerate(["sensors/a", "sensors/b/c", "other", "sensors/d"]):
            ether.pub({"value": i}, topic=topic)
        got = [next(watched)["value"] for _ in range(3)]
    assert got == [0, 1, 3]


@pytest.mark.timeout(60)
def test_a_client_that_attaches_again_under_the_same_name_gets_its_replies():
    """The server's cached sender to the first client's inbox must not swallow the
    replies meant for the second one of that name (same process, new inbox)."""
    ether.tap(config={"instances": {"store": {"class_path": "apps.Store"}}})
    sid = ether.session_name()
    try:
        for n in range(3):
            with Client.attach(sid, name="again") as client:
                assert client.get("store", "echo", {"n": n}, timeout=5)["n"] == n
    finally:
        ether.shutdown()
    assert shm_objects(sid) == []
