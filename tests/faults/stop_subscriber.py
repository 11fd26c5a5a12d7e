"""SIGSTOP of a subscriber while a publisher floods its topic, once with the
block policy (timeout 0.25 s) and once with the drop policy.

The session: a publisher (StopFlooder, publishing from a thread), the stopped
subscriber, and a second subscriber of the same topic that keeps running (the
witness). The subscriber is stopped first; the publisher floods until the
stopped one has missed `missed` messages (InboxFull under block, a short
delivery under drop), says so, and waits; meanwhile the main calls one of the
publisher's services now and then. Then the subscriber is continued, the
publisher ends the flood with a marker, and both subscribers report what they
got.

Figures: the publisher's longest single publish; sends that waited for room
under the drop policy (its SenderStatistics.blocked); received + refused (or
dropped, from the publisher's ether.statistics()) against published; what the
witness got; how long the publisher's services took to answer while it was
blocked; how long the subscriber was stopped.
"""
from __future__ import annotations

import signal
import threading
import time

from . import common
from .common import Outcome, Proc, fmt_s

PROMISE = ("A stopped subscriber costs a publisher at most its block timeout per message "
           "(block) or nothing (drop); received + dropped = published; others still get everything")
BLOCK_TIMEOUT_S = 0.25  # BlockFloodSink's


def _one(policy: str, missed: int, size: int, watchdog_s: float) -> dict:
    from ether import ether
    from ether.lowlevel import inspect
    sink = {"block": "reliability_apps.BlockFloodSink", "drop": "reliability_apps.DropFloodSink"}[policy]
    w = {"watchdog_s": watchdog_s}
    ether.tap(config={"instances": {
        "flooder": {"class_path": "reliability_apps.StopFlooder", "kwargs": w},
        "stopped": {"class_path": sink, "kwargs": {"name": "stopped", **w}},
        "witness": {"class_path": "reliability_apps.FloodWitness", "kwargs": {"name": "witness", **w}},
    }})
    sid = ether.session_name()
    procs = [Proc.of(m.pid, m.name) for m in inspect(sid).members if m.name != "main"]
    stopped = next(p for p in procs if p.name == "stopped")
    paused = {}
    got_paused = threading.Event()

    def on_paused(message: dict) -> None:
        paused.update(message)
        got_paused.set()

    out = {"policy": policy}
    try:
        unsubscribe = ether.subscribe("flood-paused", on_paused)
        with ether.listen("flood-report", timeout=60) as reports:
            stopped.kill(signal.SIGSTOP)
            stopped_at = time.monotonic()
            ether.pub({"missed": missed, "size": size}, topic="flood-go")
            # While it floods (and, under block, waits): are its services answered?
            ping_max, pings = 0.0, 0
            deadline = time.monotonic() + 120
            while not got_paused.wait(0.05) and time.monotonic() < deadline:
                t = time.monotonic()
                ether.get("flooder", "ping", timeout=10)
                ping_max = max(ping_max, time.monotonic() - t)
                pings += 1
            if not got_paused.is_set():
                raise RuntimeError("the publisher never reported its flood")
            out["stopped_for_s"] = time.monotonic() - stopped_at
            stopped.kill(signal.SIGCONT)
            ether.pub({}, topic="flood-resume")
            got = {}
            for report in reports:
                got[report["sink"]] = report
                if len(got) == 2:
                    break
        unsubscribe()
        stats = ether.get("flooder", "statistics", timeout=10)
        entry = [s for s in stats if s["inbox"] == "stopped"]
        out.update(published=paused["published"], refused=paused["refused"],
                   short=paused["short"], max_stall_s=paused["max_stall"], ping_max_s=ping_max,
                   pings=pings, received=got.get("stopped", {}).get("received"),
                   out_of_order=got.get("stopped", {}).get("out_of_order"),
                   witness=got.get("witness", {}).get("received"),
                   dropped=sum(s["dropped"] for s in entry),
                   waited_for_room=sum(s["blocked"] for s in entry))
        return out
    finally:
        stopped.kill(signal.SIGCONT)
        ether.shutdown()
        out["leaked"] = len(common.shm_objects(sid))
        out["orphans"] = sum(p.alive() for p in procs)
        common.kill_and_wait(procs)
        common.remove_session_objects(sid)


def run(block_missed: int = 12, drop_missed: int = 2000, size: int = 16 << 10,
        watchdog_s: float = 300.0) -> Outcome:
    common.ensure_path()
    started = time.monotonic()
    with common.watchdog(watchdog_s):
        block = _one("block", block_missed, size, watchdog_s)
        drop = _one("drop", drop_missed, size, watchdog_s)
    checks = {
        "block_stall_within_timeout": block["max_stall_s"] <= BLOCK_TIMEOUT_S + 1.0,
        "block_received_plus_refused_is_published":
            block["received"] is not None and block["received"] + block["refused"] == block["published"],
        "block_others_get_everything": block["witness"] == block["published"],
        "blocked_publisher_answers_requests": block["ping_max_s"] <= 1.0,
        "drop_never_waits": drop["waited_for_room"] == 0,
        "drop_received_plus_dropped_is_published":
            drop["received"] is not None and drop["received"] + drop["dropped"] == drop["published"],
        "drop_others_get_everything": drop["witness"] == drop["published"],
        "nothing_left_behind": not (block["leaked"] or drop["leaked"] or block["orphans"] or drop["orphans"]),
    }
    summary = (
        f"block (timeout {BLOCK_TIMEOUT_S:g} s): longest publish {fmt_s(block['max_stall_s'])}, "
        f"received {block['received']} + refused {block['refused']} = {block['received'] + block['refused']} "
        f"of {block['published']} published, the other subscriber got {block['witness']}, the publisher's "
        f"service answered within {fmt_s(block['ping_max_s'])} while it was blocked (stopped "
        f"{fmt_s(block['stopped_for_s'])}); drop: longest publish {fmt_s(drop['max_stall_s'])}, "
        f"{drop['waited_for_room']} sends waited, received {drop['received']} + dropped "
        f"{drop['dropped']} = {drop['received'] + drop['dropped']} of {drop['published']}, the other "
        f"subscriber got {drop['witness']}")
    return Outcome("stop_subscriber", PROMISE,
                   "SIGSTOP of a subscriber while a publisher floods it, block and drop policy",
                   summary, {"block": block, "drop": drop}, checks, seconds=time.monotonic() - started)
