"""Producers killed with SIGKILL at any instant never wedge or corrupt an inbox."""
import logging
import multiprocessing
import os
import random
import signal
import threading
import time

import msgspec
import pytest

import ether
import ether.lowlevel

from conftest import shm_objects, wait_for
import workers
from workers import check_payload, drain_until_quiet, claim_and_hang, endless_producer, inbox_holder

SPAWN = multiprocessing.get_context("spawn")


def _members(sid):
    return [n for n in shm_objects(sid) if "_m" in n]


def test_claim_of_a_dead_producer_is_skipped_within_a_second(session):
    inbox = session.create_inbox("sink", capacity=1 << 16, max_length=1024)
    ready = SPAWN.Event()
    p = SPAWN.Process(target=claim_and_hang, args=(session.name, "sink", ready, True))
    p.start()
    assert ready.wait(30)
    p.join(30)
    assert p.exitcode == -signal.SIGKILL
    with session.connect("sink") as tx:
        tx.send(b"after the dead claim")
        start = time.monotonic()
        first = inbox.receive(timeout=5)
        assert check_payload(first) == (99, 0)  # committed before the claim
        assert inbox.receive(timeout=5) == b"after the dead claim"
        assert time.monotonic() - start < 1.0
    st = inbox.statistics()
    assert st.skipped_claims == 1
    assert st.producers == 0  # the dead producer's slot was reclaimed
    assert len(_members(session.name)) == 1  # its liveness lock was removed: only ours


def test_consumer_keeps_receiving_while_producers_are_killed_repeatedly(session):
    inbox = session.create_inbox("sink", capacity=1 << 14, max_length=1024)
    rng = random.Random(1234)
    next_seq: dict[int, int] = {}
    dead: set[int] = set()
    received = 0

    def take(batch):
        nonlocal received
        for data in batch:
            prod, seq = check_payload(data)  # never a torn record
            assert seq == next_seq.get(prod, 0), f"producer {prod}: gap or duplicate at {seq}"
            next_seq[prod] = seq + 1
            received += 1

    steady = []
    for pid in (0, 1):  # two producers that live through the whole test
        ready = SPAWN.Event()
        p = SPAWN.Process(target=endless_producer, args=(session.name, "sink", pid, ready))
        p.start()
        assert ready.wait(30)
        steady.append(p)
    try:
        for victim in range(100, 112):  # twelve short-lived producers, each SIGKILLed mid-stream
            ready = SPAWN.Event()
            p = SPAWN.Process(target=endless_producer, args=(session.name, "sink", victim, ready))
            p.start()
            assert ready.wait(30)
            # Let it get into its stream: until it has delivered a random number of records.
            target = rng.randrange(1, 2000)
            while next_seq.get(victim, 0) < target:
                take(inbox.receive_many(timeout=10))
            os.kill(p.pid, signal.SIGKILL)
            p.join(30)
            dead.add(victim)
            # A steady producer the ring passed over may have delivered nothing yet.
            before = {k: next_seq.get(k, 0) for k in (0, 1)}
            # The steady producers keep flowing past whatever the victim left behind.
            while any(next_seq.get(k, 0) < before[k] + 500 for k in (0, 1)):
                take(inbox.receive_many(timeout=10))
        assert all(p.is_alive() for p in steady)
    finally:
        for p in steady:
            p.kill()
            p.join(30)
    # Drain what is left, including any claim the last kills abandoned.
    drain_until_quiet(inbox, take)
    st = inbox.statistics()
    assert st.used == 0
    assert st.received == received
    assert st.producers == 0  # every dead producer's slot was reclaimed
    assert len(_members(session.name)) == 1


def test_sender_to_a_dead_consumer_fails_clearly(session):
    ready = SPAWN.Event()
    p = SPAWN.Process(target=inbox_holder, args=(session.name, "orphan", ready, 4096))
    p.start()
    assert ready.wait(30)
    tx = session.connect("orphan", timeout=0.2)
    while tx.send(b"x" * 100, policy="drop"):
        pass
    p.kill()
    p.join(30)
    with pytest.raises(ether.InboxClosed, match="its consumer process died"):
        tx.send(b"y" * 100)
    tx.close()
    with pytest.raises(ether.InboxClosed, match="consumer .* is dead"):
        session.connect("orphan")
    # Its name can be taken again, and the dead inbox's segment goes away.
    again = session.create_inbox("orphan", capacity=4096, max_length=64)
    assert len([n for n in shm_objects(session.name) if "_i" in n]) == 1
    again.close()


def test_a_forked_child_does_not_keep_a_dead_producer_alive(session):
    from workers import fork_claim_and_die
    inbox = session.create_inbox("sink", capacity=1 << 16, max_length=1024)
    here, there = SPAWN.Pipe()
    p = SPAWN.Process(target=fork_claim_and_die, args=(session.name, "sink", there))
    p.start()
    assert here.poll(30)
    first, second = here.recv(), (here.recv() if here.poll(30) else None)
    child = first if isinstance(first, int) else second
    verdict = second if isinstance(first, int) else first
    try:
        assert verdict == "child refused"  # an inherited Sender is not usable
        with session.connect("sink") as tx:
            tx.send(b"next")
            # The grandchild still holds a copy of the dead producer's lock fd
            # unless the at-fork hook closed it; then this would never arrive.
            assert inbox.receive(timeout=2) == b"next"
        assert inbox.statistics().skipped_claims == 1
    finally:
        os.kill(child, signal.SIGKILL)
    p.join(30)  # (the grandchild held the process sentinel until now)
    assert p.exitcode == -signal.SIGKILL


def _blocked(sid, inbox, at_least):
    """True once `at_least` sends have waited for room in `inbox` (read-only view)."""
    snapshot = ether.lowlevel.inspect(sid)
    return any(i.name == inbox and i.blocked >= at_least for i in snapshot.inboxes)


def test_a_send_blocked_on_a_killed_consumer_ends_within_a_second(session):
    # The wait checks the consumer's liveness between slices of at most 0.25 s: it
    # used to last until its timeout (10 s here), whenever the consumer died.
    ready = SPAWN.Event()
    p = SPAWN.Process(target=inbox_holder, args=(session.name, "victim", ready, 4096))
    p.start()
    outcome = {}
    try:
        assert ready.wait(30)
        tx = session.connect("victim", timeout=10.0)
        other = session.connect("victim", timeout=10.0)
        while tx.send(b"x" * 100, policy="drop"):
            pass

        def blocked_send():
            try:
                tx.send(b"y" * 100)
                outcome["result"] = "sent"
            except ether.EtherError as exc:
                outcome["result"] = exc
            outcome["at"] = time.monotonic()

        thread = threading.Thread(target=blocked_send)
        thread.start()
        assert wait_for(lambda: _blocked(session.name, "victim", 1), 10) is not None
        p.kill()
        killed = time.monotonic()
        p.join(30)
        thread.join(15)
        stalled = outcome["at"] - killed
        print(f"the blocked send returned {stalled:.3f} s after its consumer was killed")
        assert isinstance(outcome["result"], ether.InboxClosed), outcome
        assert f"its consumer process died (pid {p.pid})" in str(outcome["result"])
        assert stalled < 2.0
        # The one who noticed closed the inbox: another sender learns at once.
        start = time.monotonic()
        with pytest.raises(ether.InboxClosed, match="its consumer process died"):
            other.send(b"z" * 100)
        assert time.monotonic() - start < 0.5
        assert [i.closed for i in ether.lowlevel.inspect(session.name).inboxes
                if i.name == "victim"] in ([True], [])
        tx.close()
        other.close()
    finally:
        if p.is_alive():
            p.kill()
            p.join(30)


def test_a_publish_blocked_on_a_killed_subscriber_reaches_the_others_within_a_second(session):
    # A node publishing to two block subscribers waits on the first one's full inbox;
    # that subscriber is killed. The second gets the message within a second (it
    # used to get nothing until the publish's 10 s timeout), and the node forgets
    # the dead one.
    from ether._node import _codec as codec
    from workers import subscriber_holder
    ready = SPAWN.Event()
    p = SPAWN.Process(target=subscriber_holder, args=(session.name, "victim", "t", ready, 4096))
    p.start()
    node = None
    done = threading.Event()
    errors = []
    try:
        assert ready.wait(30)
        live = session.create_inbox("live", capacity=1 << 20, max_length=1024)
        with session._directory as d:
            d.subscribe("t", live.token, "block", 10.0)
        node = ether.lowlevel.Node(session, "pub")
        count = 100  # the victim's 4 KiB inbox takes far fewer

        def publish_all():
            try:
                for i in range(count):
                    node.publish("t", {"i": i})
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            done.set()

        thread = threading.Thread(target=publish_all)
        thread.start()
        assert wait_for(lambda: _blocked(session.name, "victim", 1), 10) is not None
        got = []

        def take():
            got.extend(codec.decode(m).payload for m in live.drain())
            return got
        take()
        waiting_for = len(got)  # the message the publisher is blocked on
        p.kill()
        killed = time.monotonic()
        while len(got) <= waiting_for and time.monotonic() - killed < 15:
            got.append(codec.decode(live.receive(timeout=15)).payload)
        stalled = time.monotonic() - killed
        print(f"the other subscriber got the blocked message {stalled:.3f} s after the first "
              f"was killed")
        assert stalled < 2.0
        assert done.wait(15) and errors == []
        thread.join(15)
        while len(got) < count:
            got.append(codec.decode(live.receive(timeout=5)).payload)
        assert [msgspec.msgpack.decode(g)["i"] for g in got] == list(range(count))
        assert [s.inbox for s in node.router.targets("t")] == ["live"]
    finally:
        if p.is_alive():
            p.kill()
            p.join(30)
        if node is not None:
            node.close()


def _state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_a_producer_stopped_between_claim_and_commit_is_skipped_after_the_unblock_timeout(
        session, monkeypatch):
    # A process SIGSTOPped with a claim open used to hold the inbox for as long as it
    # lived: every other sender blocked behind it, and nothing after it was read.
    monkeypatch.setenv("ETHER_UNBLOCK_TIMEOUT", "0.5")
    inbox = session.create_inbox("sink", capacity=1 << 13, max_length=1024)
    here, there = SPAWN.Pipe()
    p = SPAWN.Process(target=workers.claim_and_stall, args=(session.name, "sink", there))
    logs = _Records()
    logging.getLogger("Ether").addHandler(logs)
    feeder = None
    try:
        p.start()
        assert here.poll(30)
        assert here.recv() == ("claimed", p.pid)
        os.kill(p.pid, signal.SIGSTOP)
        assert wait_for(lambda: _state(p.pid) == "T", 10) is not None
        assert check_payload(inbox.receive(timeout=5)) == (99, 0)
        # Another producer streams 2,000 records (about 30 laps of the 8 KiB ring)
        # while the stopped one holds its claim.
        count = 2000
        tx = session.connect("sink", timeout=30.0)
        feeder = threading.Thread(target=lambda: [tx.send(workers.make_payload(1, i))
                                                  for i in range(count)])
        start = time.monotonic()
        feeder.start()
        first = inbox.receive(timeout=10)
        stalled = time.monotonic() - start
        print(f"the inbox was stalled {stalled:.3f} s by the stopped producer "
              f"(ETHER_UNBLOCK_TIMEOUT=0.5)")
        got = [check_payload(first)]
        while len(got) < count:
            got.extend(check_payload(m) for m in inbox.receive_many(timeout=10))
        assert got == [(1, i) for i in range(count)]  # whole, once, in order
        assert 0.4 <= stalled < 3.0
        feeder.join(30)
        tx.close()
        assert any(f"pid {p.pid}" in m and "held a record uncommitted" in m for m in logs.messages), \
            logs.messages
        assert inbox.statistics().skipped_claims == 1
        # It resumes: its commit is refused, and it sends normally again.
        os.kill(p.pid, signal.SIGCONT)
        here.send("commit")
        assert here.poll(30)
        outcome, message = here.recv()
        assert outcome == "skipped" and "unblock timeout" in message, (outcome, message)
        assert here.poll(30) and here.recv() == ("sent", "")
        assert check_payload(inbox.receive(timeout=5)) == (99, 1)
        assert inbox._ring.statistics().holes == 0  # its space was given back
        here.send("exit")
        p.join(30)
        assert p.exitcode == 0
    finally:
        logging.getLogger("Ether").removeHandler(logs)
        if p.is_alive():
            os.kill(p.pid, signal.SIGCONT)
            p.kill()
            p.join(30)
        if feeder is not None:
            feeder.join(30)
