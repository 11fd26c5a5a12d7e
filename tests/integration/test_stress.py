"""Four producer processes, one consumer: no loss, no duplicates, per-producer
order, no torn record - with a roomy ring and with a tiny one that wraps constantly."""
import multiprocessing

import pytest

from workers import check_payload, producer

SPAWN = multiprocessing.get_context("spawn")
PRODUCERS = 4
PER_PRODUCER = 250_000  # 1,000,000 records in all


def run_stress(session, capacity: int, batches: list[int]) -> dict:
    inbox = session.create_inbox("sink", capacity=capacity, max_length=1024)
    go = SPAWN.Event()
    readies, procs = [], []
    for pid, batch in enumerate(batches):
        ready = SPAWN.Event()
        p = SPAWN.Process(target=producer,
                          args=(session.name, "sink", pid, PER_PRODUCER, batch, ready, go))
        p.start()
        readies.append(ready)
        procs.append(p)
    try:
        for r in readies:
            assert r.wait(60), "a producer did not start"
        go.set()
        next_seq = [0] * len(batches)
        total = PER_PRODUCER * len(batches)
        received = 0
        while received < total:
            for data in inbox.receive_many(timeout=30):
                prod, seq = check_payload(data)  # raises on a torn record
                assert seq == next_seq[prod], (
                    f"producer {prod}: expected seq {next_seq[prod]}, got {seq} "
                    f"({'duplicate' if seq < next_seq[prod] else 'loss or reorder'})")
                next_seq[prod] = seq + 1
                received += 1
        assert next_seq == [PER_PRODUCER] * len(batches)
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        assert inbox.drain() == []
        st = inbox.statistics()
        assert st.received == st.sent == total
        assert st.dropped == 0 and st.skipped_claims == 0
        return {"blocked": st.blocked}
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(10)


@pytest.mark.timeout(240)
def test_four_producers_one_million_records(session):
    run_stress(session, capacity=1 << 20, batches=[1, 1, 64, 1])


@pytest.mark.timeout(300)
def test_four_producers_one_million_records_through_a_4_kib_ring(session):
    stats = run_stress(session, capacity=4096, batches=[1, 8, 1, 1])
    assert stats["blocked"] > 0  # the tiny ring really was full and waited
