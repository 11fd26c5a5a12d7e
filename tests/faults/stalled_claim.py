"""A producer stopped between claim and commit: a raw ether.lowlevel
Sender.claim() left uncommitted in a process that SIGSTOPs itself, while a
healthy producer keeps sending to the same inbox.

This process creates the session and reads the inbox (64 KiB ring). The
healthy producer sends paced payloads (producer, seq, crc); the stalled one
sends one payload, claims the next record, writes half of it and stops. After
`stop_s` it is continued (it then commits its record). Meanwhile the consumer
measures the longest time without a message.

Figures: the consumer's longest stall; whether the stalled record was
delivered or skipped; the healthy producer's stream (complete, in order, intact)
and its longest single send.
"""
from __future__ import annotations

import multiprocessing
import secrets
import signal
import time

from . import common
from .common import Outcome, Proc, fmt_s

PROMISE = ("A producer stopped mid-claim holds up its inbox for at most 1 s; the other "
           "producers' messages keep flowing, whole and in order")
LIMIT_S = 1.0


def run(stop_s: float = 5.0, after: int = 2000, watchdog_s: float = 180.0) -> Outcome:
    common.ensure_path()
    import ether
    from workers import check_payload
    from . import processes
    spawn = multiprocessing.get_context("spawn")
    started = time.monotonic()
    sid = "f" + secrets.token_hex(5)
    procs: list[Proc] = []
    children = []
    with common.watchdog(watchdog_s):
        session = ether.Session.create(sid)
        try:
            inbox = session.create_inbox("sink", capacity=1 << 16, max_length=1024)
            stop = spawn.Event()
            ready_h, ready_s = spawn.Event(), spawn.Event()
            result_here, result_there = spawn.Pipe(duplex=False)
            outcome_here, outcome_there = spawn.Pipe(duplex=False)
            healthy = spawn.Process(target=processes.healthy_producer,
                                    args=(sid, "sink", 1, ready_h, stop, result_there, watchdog_s))
            stalled = spawn.Process(target=processes.stalled_claimer,
                                    args=(sid, "sink", ready_s, outcome_there, watchdog_s))
            children = [healthy, stalled]
            healthy.start()
            procs.append(Proc.of(healthy.pid, "healthy"))
            if not ready_h.wait(60):
                raise RuntimeError("the healthy producer did not start")
            next_seq = {1: 0, 99: 0}
            problems = []
            longest = 0.0
            resumed_at = None
            healthy_after_resume = 0

            def take(batch) -> int:
                n = 0
                for data in batch:
                    try:
                        prod, seq = check_payload(data)
                    except AssertionError as exc:
                        problems.append(str(exc))
                        continue
                    if seq != next_seq.get(prod):
                        problems.append(f"producer {prod}: expected {next_seq.get(prod)}, got {seq}")
                    next_seq[prod] = seq + 1
                    n += prod == 1
                return n

            # The healthy producer's messages flow; the stalled one joins, claims and stops.
            stalled.start()
            stuck = Proc.of(stalled.pid, "stalled")
            procs.append(stuck)
            joined_by = time.monotonic() + 60
            while not (ready_s.is_set() and stuck.state() == "T"):
                if time.monotonic() > joined_by:
                    raise RuntimeError(f"the stalled producer did not stop itself (state "
                                       f"{stuck.state()}, exit code {stalled.exitcode})")
                try:
                    take(inbox.receive_many(timeout=0.05))
                except ether.Timeout:
                    pass
            stopped_at = last = time.monotonic()
            deadline = stopped_at + stop_s + 120

            while time.monotonic() < deadline:
                try:
                    batch = inbox.receive_many(timeout=0.05)
                except ether.Timeout:
                    batch = []
                now = time.monotonic()
                if batch:
                    longest = max(longest, now - last)
                    last = now
                    got = take(batch)
                    if resumed_at is not None:
                        healthy_after_resume += got
                if resumed_at is None and now - stopped_at >= stop_s:
                    stuck.kill(signal.SIGCONT)  # the fault lasted stop_s
                    resumed_at = now
                if resumed_at is not None and healthy_after_resume >= after:
                    break
            stop.set()
            count, longest_send = result_here.recv() if result_here.poll(30) else (None, None)
            stalled_outcome = outcome_here.recv() if outcome_here.poll(30) else "no answer"
            common.wait_exits(procs, 30)

            def rest(batch):
                take(batch)

            from workers import drain_until_quiet
            drain_until_quiet(inbox, rest, quiet=0.5)
            st = inbox.statistics()
        finally:
            common.kill_and_wait(procs)
            for child in children:
                if child.pid is not None:
                    child.join(10)
            session.close()
    leaked = common.shm_objects(sid)
    stalled_delivered = next_seq[99] == 2
    figures = {"stop_s": stop_s, "consumer_longest_stall_s": longest, "healthy_sent": count,
               "healthy_received": next_seq[1], "healthy_longest_send_s": longest_send,
               "stalled_record": "delivered" if stalled_delivered else "skipped",
               "stalled_producer_after_resume": stalled_outcome, "skipped_claims": st.skipped_claims,
               "problems": problems[:10], "leaked": len(leaked)}
    checks = {
        "consumer_stall_within_1s": longest <= LIMIT_S,
        "healthy_stream_intact": not problems and count is not None and next_seq[1] == count,
        "nothing_left_behind": not leaked,
    }
    summary = (f"consumer's longest stall {fmt_s(longest)} with the producer stopped for "
               f"{fmt_s(stop_s)}; the other producer's {next_seq[1]:,} of {count or 0:,} messages "
               f"arrived in order, intact ({len(problems)} problems), its longest send "
               f"{fmt_s(longest_send)}; the stalled record was {figures['stalled_record']} "
               f"(the producer: {stalled_outcome})")
    if leaked:
        summary += f"; {len(leaked)} segments left"
    return Outcome("stalled_claim", PROMISE,
                   f"a producer SIGSTOPped between claim() and commit for {stop_s:g} s",
                   summary, figures, checks, seconds=time.monotonic() - started)
