"""Opt-in soak: many producers killed at random instants, large and small records.

Run with:  .venv/bin/python -m pytest tests/stress -p no:cacheprovider
"""
import multiprocessing
import os
import random
import signal

import pytest

import ether

from workers import check_payload, drain_until_quiet, endless_producer

SPAWN = multiprocessing.get_context("spawn")


@pytest.mark.stress
@pytest.mark.timeout(900)
@pytest.mark.parametrize("capacity", [4096, 1 << 16])
def test_two_hundred_kills(session, capacity):
    inbox = session.create_inbox("sink", capacity=capacity, max_length=1024)
    rng = random.Random(capacity)
    next_seq: dict[int, int] = {}

    def take(batch):
        for data in batch:
            prod, seq = check_payload(data)
            assert seq == next_seq.get(prod, 0), f"producer {prod}: gap or duplicate at {seq}"
            next_seq[prod] = seq + 1

    live = {}
    for victim in range(200):
        ready = SPAWN.Event()
        p = SPAWN.Process(target=endless_producer, args=(session.name, "sink", victim, ready))
        p.start()
        assert ready.wait(60)
        live[victim] = p
        if len(live) >= 3:
            target = rng.choice(sorted(live))
            goal = next_seq.get(target, 0) + rng.randrange(1, 500)
            while next_seq.get(target, 0) < goal:
                take(inbox.receive_many(timeout=20))
            os.kill(live[target].pid, signal.SIGKILL)
            live.pop(target).join(30)
    for p in live.values():
        p.kill()
        p.join(30)
    drain_until_quiet(inbox, take)
    st = inbox.statistics()
    print(f"capacity {capacity}: received {st.received}, skipped claims {st.skipped_claims}")
    assert st.used == 0 and st.producers == 0
