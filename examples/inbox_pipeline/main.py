"""Two processes exchange messages through Ether inboxes.

A producer process streams readings into the consumer's inbox, in batches; the
main process receives them, checks order, and prints the inbox's statistics.
Run from the project root:  .venv/bin/python examples/inbox_pipeline/main.py
"""
import multiprocessing
import os
import struct
import time

from ether.lowlevel import Session

READING = struct.Struct("<Qd")  # sequence number, value
COUNT = 1_000_000


def produce(session_name: str, ready) -> None:
    with Session.open(session_name) as session, session.connect("readings") as tx:
        ready.set()
        batch = []
        for seq in range(COUNT):
            batch.append(READING.pack(seq, seq * 0.5))
            if len(batch) == 256:
                tx.send_many(batch)
                batch.clear()
        tx.send_many(batch)
        print(f"producer[pid {os.getpid()}]: sent {COUNT} readings, {tx.statistics()}")


def main() -> None:
    with Session.create() as session:
        inbox = session.create_inbox("readings", capacity=1 << 20, max_length=64)
        print(f"main[pid {os.getpid()}]: session {session.name!r}, inbox 'readings' ready")
        ready = multiprocessing.get_context("spawn").Event()
        producer = multiprocessing.get_context("spawn").Process(target=produce, args=(session.name, ready))
        producer.start()
        if not ready.wait(30):
            raise SystemExit("the producer did not start")
        start = time.perf_counter()
        expected = 0
        while expected < COUNT:
            for data in inbox.receive_many(timeout=10):
                seq, _ = READING.unpack(data)
                assert seq == expected, f"expected reading {expected}, got {seq}"
                expected += 1
        elapsed = time.perf_counter() - start
        producer.join(30)
        print(f"main[pid {os.getpid()}]: received {expected} readings in order in {elapsed:.2f} s "
              f"({expected / elapsed / 1e6:.2f} M msg/s)")
        print(f"main[pid {os.getpid()}]: {inbox.statistics()}")
    print(f"main[pid {os.getpid()}]: session closed; leftover segments: "
          f"{[n for n in os.listdir('/dev/shm') if n.startswith('ether_' + session.name)]}")


if __name__ == "__main__":
    main()
