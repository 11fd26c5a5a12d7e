"""Inboxes across processes: request/echo, blocking senders, wake-ups."""
import multiprocessing

import pytest

import ether

from conftest import shm_objects
from workers import consumer_echo, tap_and_shutdown

SPAWN = multiprocessing.get_context("spawn")


def test_echo_between_processes_in_order(session):
    back = session.create_inbox("back", capacity=1 << 16, max_length=4096)
    ready = SPAWN.Event()
    p = SPAWN.Process(target=consumer_echo, args=(session.name, "echo", "back", ready, 2000))
    p.start()
    try:
        assert ready.wait(30)
        with session.connect("echo") as tx:
            for i in range(2000):  # strict ping-pong: every wake-up path is exercised
                msg = i.to_bytes(4, "little") * (1 + i % 250)
                tx.send(msg)
                assert back.receive(timeout=10) == msg
        p.join(30)
        assert p.exitcode == 0
    finally:
        if p.is_alive():
            p.kill()
            p.join(10)


def test_a_blocked_sender_resumes_when_the_consumer_drains(session):
    # "back" holds every echo, so only the 4 KiB "echo" inbox ever fills.
    back = session.create_inbox("back", capacity=1 << 18, max_length=4096)
    ready = SPAWN.Event()
    count = 3000  # far more than the 4 KiB echo inbox holds: the sender blocks again and again
    p = SPAWN.Process(target=consumer_echo, args=(session.name, "echo", "back", ready, count))
    p.start()
    try:
        assert ready.wait(30)
        with session.connect("echo", timeout=10) as tx:
            sent = [i.to_bytes(8, "little") for i in range(count)]
            assert tx.send_many(sent[:1000]) == 1000
            for m in sent[1000:]:
                tx.send(m)
            got = []
            while len(got) < count:
                got.extend(back.receive_many(timeout=10))
            assert got == sent
        p.join(30)
        assert p.exitcode == 0
    finally:
        if p.is_alive():
            p.kill()
            p.join(10)


def test_receive_times_out_with_the_inbox_named(session):
    inbox = session.create_inbox("quiet", capacity=4096, max_length=64)
    with pytest.raises(ether.Timeout, match="inbox 'quiet' of session"):
        inbox.receive(timeout=0.05)
    with pytest.raises(ether.Timeout):
        inbox.receive_many(timeout=0.05)


def test_a_batch_larger_than_the_inbox_wakes_a_sleeping_consumer(session):
    from workers import slow_receiver
    ready, done = SPAWN.Event(), SPAWN.Event()
    p = SPAWN.Process(target=slow_receiver, args=(session.name, "small", ready, 10, done))
    p.start()
    try:
        assert ready.wait(30)
        with session.connect("small") as tx:
            # 10 x 1000 B into 4 KiB: the sender must wake the sleeping consumer
            # before it sleeps for space, well inside its 0.3 s timeout.
            assert tx.send_many([bytes([i]) * 1000 for i in range(10)], timeout=0.3) == 10
        assert done.wait(30)
        p.join(30)
    finally:
        if p.is_alive():
            p.kill()
            p.join(10)


def test_concurrent_taps_all_succeed_and_leave_nothing():
    # Each tap creates a session, and each create sweeps other sessions first: they
    # must never take one another's new member locks for dead ones.
    processes, count = 4, 5
    ready = [SPAWN.Event() for _ in range(processes)]
    go, results = SPAWN.Event(), SPAWN.Queue()
    ps = [SPAWN.Process(target=tap_and_shutdown, args=(count, ready[i], go, results))
          for i in range(processes)]
    try:
        for p in ps:
            p.start()
        assert all(r.wait(60) for r in ready)
        go.set()
        outcomes = [results.get(timeout=120) for _ in ps]
        for p in ps:
            p.join(30)
    finally:
        for p in ps:
            if p.is_alive():
                p.kill()
                p.join(30)
    assert [e for _, errors in outcomes for e in errors] == []
    sessions = [sid for used, _ in outcomes for sid in used]
    assert len(sessions) == processes * count
    assert [shm_objects(sid) for sid in sessions if shm_objects(sid)] == []
