"""The opening of tests/integration/test_crash.py's
test_consumer_keeps_receiving_while_producers_are_killed_repeatedly, measured:
its one unexplained failure (KeyError: 1 at test_crash.py:80) comes from here.

Two "steady" producers start and fill the 16 KiB ring while the consumer does
not read yet (it waits for the next producer to start); then a third producer
(the test's first victim) starts and the consumer reads until that one has
delivered `target` records (the test draws 1,980 first). The test then takes
`before = {k: v for k, v in next_seq.items() if k in (0, 1)}` and reads
`before[k]` for k in (0, 1): a steady producer that has delivered nothing by
then is missing from `before`, and the test dies with KeyError.

Whether a steady producer got a record in by then is up to the ring: when it
is full, a sender sleeps in wait_for_space (csrc/ether_ring.c); each batch the
consumer reads wakes every sleeper (wake_space_waiters: FUTEX_WAKE of all), and
they race for the room with whoever is running; a producer that is running
(the victim, sending without pause) refills the ring before a woken one is on a
CPU. Nothing bounds how often a waiting producer can lose that race.

run() repeats the opening `rounds` times and reports, per round, how many
records each steady producer delivered while the victim delivered `target`.
"""
from __future__ import annotations

import multiprocessing
import os
import secrets
import time

from . import common

SPAWN = multiprocessing.get_context("spawn")


def _producer(sid: str, inbox: str, producer_id: int, ready, cpu: int | None) -> None:
    import faulthandler
    faulthandler.dump_traceback_later(300, exit=True)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    from workers import endless_producer
    endless_producer(sid, inbox, producer_id, ready)


def late_steady_producer(sid: str, inbox: str, producer_id: int, ready) -> None:
    """tests/workers.py's endless_producer, except that producer 1 (the second
    steady one) gets its first record in only after `LATE_S`: what the ring's
    scheduling did to it in the crash test's failing runs (see the module's
    docstring), made certain."""
    import faulthandler
    import threading
    faulthandler.dump_traceback_later(300, exit=True)
    from workers import endless_producer
    if producer_id == 1:
        class Late:
            def set(self):
                ready.set()
                threading.Event().wait(LATE_S)  # passed over, for this long
        endless_producer(sid, inbox, producer_id, Late())
    else:
        endless_producer(sid, inbox, producer_id, ready)


LATE_S = 4.0


def opening(target: int = 1980, pin: bool = False) -> dict:
    """One run of the crash test's opening; the records each producer delivered
    (after the first fill of the ring, as the test's own counts are) by the time
    the victim has delivered `target`."""
    import ether
    from workers import check_payload
    common.ensure_path()
    cpus = sorted(os.sched_getaffinity(0))
    pinned = pin and len(cpus) >= 2
    sid = "v" + secrets.token_hex(5)
    session = ether.Session.create(sid)
    procs = []
    try:
        inbox = session.create_inbox("sink", capacity=1 << 14, max_length=1024)
        for k in (0, 1, 100):  # as in the test: 0 and 1 steady, 100 the first victim
            ready = SPAWN.Event()
            p = SPAWN.Process(target=_producer,
                              args=(sid, "sink", k, ready, cpus[-1] if pinned else None))
            p.start()
            procs.append(p)
            if not ready.wait(60):
                raise RuntimeError(f"producer {k} did not start")
        next_seq: dict[int, int] = {}
        deadline = time.monotonic() + 60
        while next_seq.get(100, 0) < target and time.monotonic() < deadline:
            for data in inbox.receive_many(timeout=10):
                prod, seq = check_payload(data)
                next_seq[prod] = seq + 1
        return {k: next_seq.get(k, 0) for k in (0, 1, 100)}
    finally:
        for p in procs:
            p.kill()
            p.join(10)
        session.close()


def run(rounds: int = 40, target: int = 1980, pin: bool = False, limit_s: float = 150.0) -> dict:
    """Repeat the opening; `starved` counts the rounds in which a steady producer
    had delivered nothing when the victim reached `target` (the crash test's
    KeyError)."""
    results = []
    started = time.monotonic()
    with common.watchdog(limit_s + 120):
        for _ in range(rounds):
            if time.monotonic() - started > limit_s:
                break
            results.append(opening(target, pin))
    starved = [r for r in results if r[0] == 0 or r[1] == 0]
    return {"rounds": len(results), "starved": len(starved), "examples": starved[:5],
            "least_delivered_by_a_steady_producer": min((min(r[0], r[1]) for r in results), default=None)}
