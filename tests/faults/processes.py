"""Bodies of the processes the scenarios start themselves (with the spawn
method: a fresh interpreter each). Each arms a faulthandler watchdog first.
Payloads are tests/workers.py's: (producer, seq, crc32) and a filler."""
from __future__ import annotations

import faulthandler
import os
import signal
import time


def healthy_producer(sid: str, inbox: str, producer_id: int, ready, stop, result,
                     watchdog_s: float, pace_s: float = 0.001, burst: int = 8) -> None:
    """Send payloads in bursts at a steady pace until `stop` is set; then send
    (count, longest single send) on `result`."""
    faulthandler.dump_traceback_later(watchdog_s, exit=True)
    import ether
    from workers import make_payload
    with ether.Session.open(sid) as s, s.connect(inbox, timeout=60.0) as tx:
        ready.set()
        seq, longest = 0, 0.0
        deadline = time.monotonic() + watchdog_s
        while not stop.is_set() and time.monotonic() < deadline:
            for _ in range(burst):
                started = time.monotonic()
                tx.send(make_payload(producer_id, seq))
                longest = max(longest, time.monotonic() - started)
                seq += 1
            stop.wait(pace_s)  # the producer's pace
        result.send((seq, longest))


def stalled_claimer(sid: str, inbox: str, ready, done, watchdog_s: float) -> None:
    """Send one payload (99, 0), claim the next record and stop itself (SIGSTOP)
    before committing it; once continued, fill it as payload (99, 1) and commit.
    (A producer stopped by a debugger, or a claim() never committed.)"""
    faulthandler.dump_traceback_later(watchdog_s, exit=True)
    import ether
    from workers import make_payload
    s = ether.Session.open(sid)
    tx = s.connect(inbox, timeout=60.0)
    tx.send(make_payload(99, 0))
    record = make_payload(99, 1)
    claim = tx.claim(len(record))
    claim.buffer[:8] = record[:8]          # half-written
    ready.set()
    os.kill(os.getpid(), signal.SIGSTOP)   # stopped between claim and commit
    try:
        claim.buffer[:] = record
        claim.commit()
        outcome = "committed"
    except ether.EtherError as exc:       # (a fixed ring may tell it that its record was skipped)
        outcome = f"{type(exc).__name__}: {exc}"
    done.send(outcome)
    tx.close()
    s.close()


def adversary(sid: str, target: str, count: int, seed: int, ready, result, watchdog_s: float) -> None:
    """Join the session, make an arena (so that forged handles can name a real
    one), then send `count` malformed records interleaved with `count` valid
    messages to the inbox `target`, raw; then a valid end marker. Sends the
    number of records of each kind on `result`."""
    faulthandler.dump_traceback_later(watchdog_s, exit=True)
    import numpy as np
    import ether as ether_module
    from ether import ether
    from ether.lowlevel import Session
    from faults import records
    client = ether.attach(sid)
    try:
        # A real array first: this process's arena now exists, and the target holds
        # a bit in it, so forged handles into it reach the arena's own bounds checks.
        client.pub({"frame": np.zeros(1 << 16, np.float32)}, topic="fault-warmup")
        token = records.arena_token(sid)
        with Session.open(sid) as s, s.connect(target, timeout=30.0) as tx:
            ready.set()
            made = records.Maker(seed, arena_token=token)
            counts: dict[str, int] = {}
            for i in range(count):
                tx.send(made.valid(i))
                kind, data = made.malformed(i)
                counts[kind] = counts.get(kind, 0) + 1
                try:
                    tx.send(data)
                except ether_module.MessageTooLarge:
                    counts[kind + " (refused by the ring)"] = counts.get(kind + " (refused by the ring)", 0) + 1
            tx.send(made.end(count))
        result.send(counts)
    finally:
        client.close()
