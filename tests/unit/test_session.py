"""Segments and sessions: naming, permissions, validation, cleanup, space checks."""
import multiprocessing
import os
import secrets
import signal
import stat

import pytest

import ether
import ether.lowlevel
from ether._core import _names, _segment
from ether._core._directory import SESSION_SIZE

from conftest import shm_objects
import workers

SPAWN = multiprocessing.get_context("spawn")


def test_names_carry_the_session_id_and_fit_in_30_characters(session):
    session.create_inbox("a-rather-long-inbox-name-that-is-not-in-the-segment-name", capacity=4096, max_length=64)
    objects = shm_objects(session.name)
    assert len(objects) == 3  # session, owner's member lock, inbox
    for name in objects:
        assert name.startswith(f"ether_{session.name}")
        assert len("/" + name) <= _names.MAX_NAME
    longest = _names.inbox_segment("A" * 12, _names.MAX_TOKEN)
    assert len(longest) <= _names.MAX_NAME


def test_segments_are_private_to_the_user(session):
    session.create_inbox("p", capacity=4096, max_length=64)
    for name in shm_objects(session.name):
        st = os.stat(f"/dev/shm/{name}")
        assert stat.S_IMODE(st.st_mode) == 0o600, name
        assert st.st_uid == os.getuid()


def test_session_ids_are_validated():
    for bad in ("", "has space", "a_b", "x" * 13, "ünï"):
        with pytest.raises(ether.ConfigError, match="session name"):
            ether.Session.create(bad)


def test_create_is_exclusive_for_a_live_session(session):
    with pytest.raises(ether.SessionExists, match="already exists"):
        ether.Session.create(session.name)


def test_open_joins_and_close_removes_everything(sid):
    owner = ether.Session.create(sid)
    inbox = owner.create_inbox("box", capacity=4096, max_length=64)
    member = ether.Session.open(sid)
    assert member.token != owner.token
    with member.connect("box") as tx:
        tx.send(b"hi")
    assert inbox.receive(timeout=1) == b"hi"
    assert member.inboxes() == ["box"]
    member.close()
    owner.close()
    assert shm_objects(sid) == []
    with pytest.raises(ether.SessionNotFound):
        ether.Session.open(sid)


def test_closing_an_inbox_removes_its_segment(session):
    before = set(shm_objects(session.name))
    inbox = session.create_inbox("gone", capacity=4096, max_length=64)
    assert len(set(shm_objects(session.name)) - before) == 1
    inbox.close()
    assert set(shm_objects(session.name)) == before


def test_open_rejects_a_segment_that_is_not_a_session(sid):
    seg = _segment.Segment.create(_names.session_segment(sid), SESSION_SIZE, what="test")
    try:
        seg.map[:8] = b"NOTETHER"
        with pytest.raises(ether.SegmentError, match="magic"):
            ether.Session.open(sid)
    finally:
        _segment.unlink(seg.name)
        seg.close()


def test_open_rejects_a_segment_with_loose_permissions(sid):
    seg = _segment.Segment.create(_names.session_segment(sid), SESSION_SIZE, what="test")
    try:
        os.fchmod(seg.fd, 0o644)
        with pytest.raises(ether.SegmentError, match="mode 644"):
            ether.Session.open(sid)
    finally:
        _segment.unlink(seg.name)
        seg.close()


def test_open_rejects_a_truncated_segment(sid):
    seg = _segment.Segment.create(_names.session_segment(sid), 128, what="test")
    try:
        with pytest.raises(ether.SegmentError, match="is 128 bytes, expected at least"):
            ether.Session.open(sid)
    finally:
        _segment.unlink(seg.name)
        seg.close()


def test_sender_rejects_a_corrupted_ring(session):
    inbox = session.create_inbox("bad", capacity=4096, max_length=64)
    with _open_inbox_segment(session) as seg:
        seg.map[0:8] = b"garbage!"
    with pytest.raises(ether.SegmentError, match="not an Ether ring"):
        session.connect("bad")
    with pytest.raises(ether.SegmentError, match="not an Ether ring"):  # (was a NameError)
        ether.lowlevel.inspect(session.name)
    inbox.close()


class _open_inbox_segment:
    def __init__(self, session):
        name = next(n for n in shm_objects(session.name) if "_i" in n)
        self.seg = _segment.Segment.open("/" + name, what="test")

    def __enter__(self):
        return self.seg

    def __exit__(self, *exc):
        self.seg.close()


def test_a_new_session_removes_sessions_whose_owner_died(sid):
    ready = SPAWN.Event()
    p = SPAWN.Process(target=workers.session_owner, args=(sid, ready))
    p.start()
    try:
        assert ready.wait(30)
        assert len(shm_objects(sid)) == 3
        with ether.Session.create() as other:  # the live one is left alone
            assert len(shm_objects(sid)) == 3
            with pytest.raises(ether.SessionExists):
                ether.Session.create(sid)
            other.close()
    finally:
        p.kill()
        p.join(30)
    assert p.exitcode == -signal.SIGKILL
    with ether.Session.create() as other:
        assert shm_objects(sid) == []
        other.close()


def test_open_refuses_a_session_whose_owner_died(sid):
    ready = SPAWN.Event()
    p = SPAWN.Process(target=workers.session_owner, args=(sid, ready))
    p.start()
    assert ready.wait(30)
    p.kill()
    p.join(30)
    with pytest.raises(ether.SessionNotFound, match="stale: its owner .* is dead"):
        ether.Session.open(sid)
    ether.remove_stale_sessions()


def test_too_little_shared_memory_fails_with_required_and_available(session, monkeypatch):
    real = os.statvfs("/dev/shm")

    class Small:
        f_bavail = 10
        f_frsize = real.f_frsize

    monkeypatch.setattr(_segment.os, "statvfs", lambda path: Small)
    with pytest.raises(ether.ShmSpaceError) as info:
        session.create_inbox("huge", capacity=1 << 20)
    msg = str(info.value)
    assert "inbox 'huge'" in msg and f"needs {(1 << 20) + 12288} bytes" in msg
    assert f"has only {10 * real.f_frsize} available" in msg


def test_session_objects_refuse_use_after_fork(session):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            session.create_inbox("child")
            os.write(w, b"no error")
        except ether.EtherError as exc:
            os.write(w, str(exc).encode()[:200])
        os._exit(0)
    os.close(w)
    msg = os.read(r, 300).decode()
    os.close(r)
    os.waitpid(pid, 0)
    assert "after fork, call Session.open" in msg


def test_concurrent_creates_never_race_each_others_stale_session_sweeps():
    # Each create sweeps stale sessions first. A sweep that met another process's
    # member lock between its creation and its flock took it for a dead member's
    # and removed it: 1.2 % of these creates failed with "member lock ... was taken".
    prefix = "c" + secrets.token_hex(3)[:5]
    processes, count = 8, 300
    ready = [SPAWN.Event() for _ in range(processes)]
    go, results = SPAWN.Event(), SPAWN.Queue()
    ps = [SPAWN.Process(target=workers.create_sessions,
                        args=(prefix, i, count, 20.0, ready[i], go, results))
          for i in range(processes)]
    try:
        for p in ps:
            p.start()
        assert all(r.wait(60) for r in ready)
        go.set()
        outcomes = [results.get(timeout=90) for _ in ps]
        for p in ps:
            p.join(30)
    finally:
        for p in ps:
            if p.is_alive():
                p.kill()
                p.join(30)
    attempts = sum(o[0] for o in outcomes)
    failures = sum(o[1] for o in outcomes)
    print(f"{failures} of {attempts} concurrent Session.create() calls failed "
          f"({processes} processes)")
    assert failures == 0, [e for o in outcomes for e in o[2]][:3]
    assert attempts >= processes * 50
    left = [n for n in os.listdir("/dev/shm") if n.startswith(f"ether_{prefix}")]
    assert left == []


def _flock_is_free(session) -> bool:
    """Whether another open file of the session segment gets its flock at once (a
    flock belongs to an open file, so this process's own hold counts)."""
    import fcntl
    fd = os.open(f"/dev/shm/{_names.session_segment(session.name)}", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)   # and its lock with it
    return True


def test_an_inbox_s_segment_is_made_outside_the_directory_s_flock(session, monkeypatch):
    """Every process of a starting session creates its inbox at once: the flock is
    held only to claim the name and to add the entry, not across the segment's
    fallocate and the ring's layout (which serialized a tap's instances)."""
    seen = []
    create = _segment.Segment.create

    def watched(name, size, **kw):
        seen.append(_flock_is_free(session))
        return create(name, size, **kw)

    monkeypatch.setattr(_segment.Segment, "create", staticmethod(watched))
    inbox = session.create_inbox("free", capacity=4096, max_length=64)
    assert seen == [True]
    assert session.inboxes() == ["free"]
    inbox.close()


def test_a_name_taken_while_its_segment_was_made_is_refused_and_leaves_nothing(session,
                                                                              monkeypatch):
    """Two creators of one name: the one whose entry comes second gets InboxExists,
    and its segment (and the ring's export of it) is gone."""
    create = _segment.Segment.create
    winner = []

    def racing(name, size, **kw):
        if not winner:   # another creator of "twin" adds its entry meanwhile
            winner.append(None)
            winner[0] = session.create_inbox("twin", capacity=4096, max_length=64)
        return create(name, size, **kw)

    monkeypatch.setattr(_segment.Segment, "create", staticmethod(racing))
    before = set(shm_objects(session.name))
    with pytest.raises(ether.InboxExists, match="inbox 'twin'.*already exists"):
        session.create_inbox("twin", capacity=4096, max_length=64)
    monkeypatch.undo()
    assert session.inboxes() == ["twin"]
    left = set(shm_objects(session.name)) - before
    assert len(left) == 1, left   # the winner's segment only
    winner[0].close()
    assert set(shm_objects(session.name)) == before
