"""ether.lowlevel.list_sessions and inspect: read-only views that never join a session."""
import multiprocessing
import os
import time
import uuid

import pytest

import ether
from ether import lowlevel
from ether._core import _names, _ring, _segment
from ether._core._directory import SESSION_SIZE
from ether._node._node import Node

from conftest import shm_objects
import workers

SPAWN = multiprocessing.get_context("spawn")
SMALL = {"capacity": 4096, "max_length": 256}


def _listed(sid):
    return [s for s in lowlevel.list_sessions() if s.name == sid]


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def dead_session(sid):
    """A session whose owner was killed: stale, left for remove_stale_sessions."""
    ready = SPAWN.Event()
    p = SPAWN.Process(target=workers.session_owner, args=(sid, ready))
    p.start()
    assert ready.wait(30)
    pid = p.pid
    p.kill()
    p.join(30)
    yield sid, pid
    ether.remove_stale_sessions()


# ---- list_sessions ----

def test_a_live_session_is_listed_with_its_owner(sid):
    before = time.time_ns()
    with ether.Session.create(sid) as session:
        after = time.time_ns()
        (info,) = _listed(sid)
        assert info.owner_pid == os.getpid()
        assert before <= info.created_ns <= after
        assert info.created.timestamp() == pytest.approx(info.created_ns / 1e9)
        assert info.run_id == str(uuid.UUID(bytes=session.run_id))
        assert uuid.UUID(info.run_id).version == 7
        assert info.members == 0
        a = session.create_inbox("a", **SMALL)
        b = session.create_inbox("b", **SMALL)
        assert _listed(sid)[0].members == 2
        a.close()
        assert _listed(sid)[0].members == 1
        b.close()
    assert _listed(sid) == []


def test_a_stale_session_is_not_listed(dead_session):
    sid, _ = dead_session
    assert _listed(sid) == []


def test_a_segment_of_another_layout_is_not_listed(sid):
    seg = _segment.Segment.create(_names.session_segment(sid), SESSION_SIZE, what="test")
    try:
        seg.map[:8] = b"NOTETHER"
        assert _listed(sid) == []
        with pytest.raises(ether.SegmentError, match="magic"):
            lowlevel.inspect(sid)
    finally:
        _segment.unlink(seg.name)
        seg.close()


def test_listing_and_inspecting_take_nothing_from_the_session(session):
    inbox = session.create_inbox("a", **SMALL)
    objects, header, fds = shm_objects(session.name), session._directory.header(), _open_fds()
    lowlevel.list_sessions()
    lowlevel.inspect(session.name)
    assert shm_objects(session.name) == objects         # no member lock, no inbox
    assert session._directory.header() == header        # no token taken, nothing changed
    assert _open_fds() == fds                           # every segment it opened is closed
    assert inbox.statistics().producers == 0            # no sender attached
    inbox.close()


# ---- inspect ----

def test_inspect_shows_members_inboxes_subscriptions_and_publishers(session):
    a = Node(session, "camera")
    a.describe("pkg.Camera")
    a.advertise(["frames", "status"])
    b = session.create_inbox("b", **SMALL)
    with session._directory as d:
        d.subscribe("frames", b.token, policy="drop", timeout=0.25)
        d.subscribe("status/*", b.token)
    session.set_member_state("b", 2)
    tx = session.connect("b")
    tx.send(b"x" * 100)

    snap = lowlevel.inspect(session.name)
    assert (snap.name, snap.owner_pid) == (session.name, os.getpid())
    assert snap.run_id == str(uuid.UUID(bytes=session.run_id))
    assert snap.generation == session._directory.generation()
    assert [(m.name, m.pid, m.class_name, m.state, m.token) for m in snap.members] == [
        ("camera", os.getpid(), "pkg.Camera", 0, a.inbox.token), ("b", os.getpid(), "", 2, b.token)]
    inboxes = {i.name: i for i in snap.inboxes}
    assert set(inboxes) == {"camera", "b"}
    assert inboxes["b"].capacity == 4096 and inboxes["b"].max_length == 256
    assert inboxes["b"].used == _ring.record_length(100)
    assert inboxes["b"].fill == _ring.record_length(100) / 4096
    assert (inboxes["b"].producers, inboxes["b"].sent, inboxes["b"].received) == (1, 1, 0)
    assert inboxes["camera"].used == 0 and not inboxes["camera"].closed
    assert sorted(snap.subscriptions) == [("frames", "b", b.token, "drop", 0.25),
                                          ("status/*", "b", b.token, "block", 5.0)]
    assert sorted(snap.publishers) == [("frames", "camera", a.inbox.token),
                                       ("status", "camera", a.inbox.token)]
    assert session.inspect() == snap  # a member's own view is the same snapshot

    plain = snap.to_dict()
    assert plain["members"][0] == {"name": "camera", "pid": os.getpid(), "class_name": "pkg.Camera",
                                   "state": 0, "token": a.inbox.token, "restarts": 0,
                                   "placeholder": False}
    assert {"topic": "frames", "inbox": "b", "inbox_token": b.token, "policy": "drop",
            "timeout": 0.25} in plain["subscriptions"]
    with pytest.raises(AttributeError):
        snap.members[0].state = 5  # frozen

    assert b.receive(timeout=5) == b"x" * 100
    assert {i.name: i for i in lowlevel.inspect(session.name).inboxes}["b"].used == 0
    tx.close()
    b.close()
    a.close()
    snap = lowlevel.inspect(session.name)
    assert (snap.members, snap.inboxes, snap.subscriptions, snap.publishers) == ((), (), (), ())


def test_inspecting_a_name_that_does_not_exist_names_the_live_sessions(session):
    missing = session.name[:-1] + ("x" if session.name[-1] != "x" else "y")
    with pytest.raises(ether.SessionNotFound, match=f"no session named '{missing}' exists; live "
                                                    f"sessions on this host: .*'{session.name}'"):
        lowlevel.inspect(missing)
    with pytest.raises(ether.SessionNotFound, match=f"live sessions on this host: .*'{session.name}'"):
        ether.Session.open(missing)
    with pytest.raises(ether.ConfigError, match="session name"):
        lowlevel.inspect("not a name")


def test_inspecting_a_dead_session_is_session_not_found(dead_session):
    sid, pid = dead_session
    with pytest.raises(ether.SessionNotFound, match=f"session '{sid}' is stale: its owner \\(pid "
                                                    f"{pid}\\) is dead; live sessions on this host"):
        lowlevel.inspect(sid)


def churn(sid: str, ready, go, rounds: int) -> None:
    """Join sid and keep its tables changing: inboxes, subscriptions, adverts, info."""
    s = ether.Session.open(sid)
    ready.set()
    go.wait(30)
    d = s._directory
    for i in range(rounds):
        inbox = s.create_inbox(f"churn-{i % 7}-{'x' * (i % 60)}", capacity=4096, max_length=64)
        with d:
            d.subscribe(f"topic/{i}" + "y" * (i % 90), inbox.token, policy="drop")
            d.advertise(f"adv-{i}" + "z" * (i % 95), inbox.token)
            d.set_info(inbox.token, class_name="C" * (i % 116), state=i)
        if i % 3:
            inbox.close()
    s.close()


def test_inspect_never_fails_while_another_process_changes_the_tables(session):
    ready, go = SPAWN.Event(), SPAWN.Event()
    p = SPAWN.Process(target=churn, args=(session.name, ready, go, 300))
    p.start()
    try:
        assert ready.wait(30)
        go.set()
        snapshots = 0
        while p.exitcode is None or snapshots == 0:
            snap = lowlevel.inspect(session.name)
            names = {m.name for m in snap.members}
            assert {s.inbox for s in snap.subscriptions} <= names
            assert {p_.inbox for p_ in snap.publishers} <= names
            assert {i.name for i in snap.inboxes} <= names
            for m in snap.members:
                assert m.class_name == "C" * len(m.class_name)
            lowlevel.list_sessions()
            snapshots += 1
            p.join(0)
    finally:
        p.join(60)
    assert p.exitcode == 0
    # The churner's inboxes closed with its session: nothing of it is left.
    assert lowlevel.inspect(session.name).members == ()
