"""Process entry points for the multi-process tests (importable under spawn).

Stress payloads carry (producer, seq, crc32) so loss, duplication, reordering
and tearing are all detected on the receiving side.
"""
from __future__ import annotations

import os
import signal
import struct
import zlib

import ether

# payload = producer u32 | seq u64 | crc32 u32 of the filler | filler
HEAD = struct.Struct("<IQI")


def make_payload(producer: int, seq: int) -> bytes:
    size = (seq * 7919 + producer * 104729) % 200  # 0..199 filler bytes: many record sizes
    filler = os.urandom(size)
    return HEAD.pack(producer, seq, zlib.crc32(filler)) + filler


def check_payload(data: bytes) -> tuple[int, int]:
    """(producer, seq) of a payload; raises AssertionError if it is torn."""
    assert len(data) >= HEAD.size, f"short record: {len(data)} bytes"
    producer, seq, crc = HEAD.unpack_from(data)
    assert zlib.crc32(data[HEAD.size:]) == crc, f"CRC mismatch: producer {producer} seq {seq}"
    return producer, seq


def producer(sid: str, inbox: str, producer_id: int, count: int, batch: int,
             ready, go, start_seq: int = 0) -> None:
    """Send `count` stress payloads, one at a time (batch <= 1) or in batches."""
    with ether.Session.open(sid) as s, s.connect(inbox, timeout=30.0) as tx:
        payloads = [make_payload(producer_id, seq) for seq in range(start_seq, start_seq + count)]
        ready.set()
        if not go.wait(30):
            raise SystemExit("no go signal")
        if batch <= 1:
            send = tx.send
            for p in payloads:
                send(p)
        else:
            for i in range(0, count, batch):
                chunk = payloads[i:i + batch]
                assert tx.send_many(chunk) == len(chunk)


def endless_producer(sid: str, inbox: str, producer_id: int, ready) -> None:
    """Send stress payloads until killed."""
    with ether.Session.open(sid) as s, s.connect(inbox, timeout=30.0) as tx:
        ready.set()
        seq = 0
        send = tx.send
        while True:
            send(make_payload(producer_id, seq))
            seq += 1


def claim_and_hang(sid: str, inbox: str, ready, kill_self: bool) -> None:
    """Claim a record and never commit it: die (kill_self) or wait to be killed."""
    s = ether.Session.open(sid)
    tx = s.connect(inbox)
    tx.send(make_payload(99, 0))
    loan = tx.claim(64)
    loan.buffer[:4] = b"torn"
    ready.set()
    if kill_self:
        os.kill(os.getpid(), signal.SIGKILL)
    signal.pause()


def consumer_echo(sid: str, inbox: str, reply_to: str, ready, count: int) -> None:
    """Create an inbox, echo `count` messages back to `reply_to`."""
    with ether.Session.open(sid) as s, s.create_inbox(inbox, capacity=4096, max_length=1024) as ib:
        ready.set()
        with s.connect(reply_to) as tx:
            for _ in range(count):
                tx.send(ib.receive(timeout=30))


def inbox_holder(sid: str, inbox: str, ready, capacity: int) -> None:
    """Create an inbox, never read it, and wait to be killed."""
    s = ether.Session.open(sid)
    s.create_inbox(inbox, capacity=capacity, max_length=1024)
    ready.set()
    signal.pause()


def session_owner(sid: str, ready) -> None:
    """Create a session with an inbox and wait to be killed."""
    s = ether.Session.create(sid)
    s.create_inbox("box", capacity=4096, max_length=512)
    ready.set()
    signal.pause()


def fork_claim_and_die(sid: str, inbox: str, conn) -> None:
    """Fork a long-lived child, then claim a record and die with the claim open.
    The child inherits our liveness lock fd; it must not keep us 'alive'."""
    s = ether.Session.open(sid)
    tx = s.connect(inbox)
    child = os.fork()
    if child == 0:
        try:
            tx.send(b"from the child")
            conn.send("child could send")
        except ether.InboxClosed:
            conn.send("child refused")
        signal.pause()
        os._exit(0)
    loan = tx.claim(32)
    conn.send(child)
    os.kill(os.getpid(), signal.SIGKILL)
    del loan


def slow_receiver(sid: str, inbox: str, ready, count: int, done) -> None:
    """Create a 4 KiB inbox and receive `count` messages with long waits."""
    with ether.Session.open(sid) as s, s.create_inbox(inbox, capacity=4096, max_length=1024) as ib:
        ready.set()
        for _ in range(count):
            ib.receive(timeout=30)
        done.set()


def drain_until_quiet(inbox, take, quiet: float = 1.5) -> None:
    """Pass every batch to take() until nothing arrives for `quiet` seconds
    (including claims of killed producers, which the inbox skips meanwhile)."""
    while True:
        try:
            take(inbox.receive_many(timeout=quiet))
        except ether.Timeout:
            return


def create_sessions(prefix: str, index: int, count: int, seconds: float, ready, go, results) -> None:
    """Create and close up to `count` sessions named prefix + index + serial, for at
    most `seconds` after the go signal; put (attempts, failures, first errors)."""
    import time
    ready.set()
    if not go.wait(60):
        raise SystemExit("no go signal")
    deadline = time.monotonic() + seconds
    attempts, errors = 0, []
    for i in range(count):
        if time.monotonic() > deadline:
            break
        attempts += 1
        try:
            ether.Session.create(f"{prefix}{index}{i:04d}").close()
        except ether.EtherError as exc:
            errors.append(str(exc))
    results.put((attempts, len(errors), errors[:3]))


def subscriber_holder(sid: str, inbox: str, topic: str, ready, capacity: int) -> None:
    """Create an inbox subscribed to `topic` (block policy, 10 s timeout), never read
    it, and wait to be killed."""
    s = ether.Session.open(sid)
    box = s.create_inbox(inbox, capacity=capacity, max_length=1024)
    with s._directory as d:
        d.subscribe(topic, box.token, "block", 10.0)
    ready.set()
    signal.pause()


def claim_and_stall(sid: str, inbox: str, conn) -> None:
    """Send one payload, claim a record and fill half of it, say so, then wait (the
    test stops this process here). On "commit": finish the record, commit it and
    report the outcome, then send one more payload; on "exit", return."""
    with ether.Session.open(sid) as s, s.connect(inbox, timeout=30.0) as tx:
        tx.send(make_payload(99, 0))
        loan = tx.claim(64)
        loan.buffer[:4] = b"half"
        conn.send(("claimed", os.getpid()))
        if conn.recv() != "commit":
            return
        loan.buffer[4:] = b"x" * 60  # late writes into a record that was skipped
        try:
            loan.commit()
            conn.send(("committed", ""))
        except ether.ClaimSkipped as exc:
            conn.send(("skipped", str(exc)))
        tx.send(make_payload(99, 1))
        conn.send(("sent", ""))
        conn.recv()


def tap_and_shutdown(count: int, ready, go, results) -> None:
    """tap a one-instance config and shut it down `count` times after the go signal;
    put (sessions used, errors)."""
    from ether import ether as facade
    ready.set()
    if not go.wait(60):
        raise SystemExit("no go signal")
    sessions, errors = [], []
    for _ in range(count):
        try:
            facade.tap(config={"instances": {"d": {"class_path": "apps.Doubler"}}})
            sessions.append(facade.session_name())
        except ether.EtherError as exc:
            errors.append(repr(exc))
        finally:
            facade.shutdown()
    results.put((sessions, errors))
