"""kill -9 of a random instance, again and again, while messages flow and
requests are answered.

Each round taps a session of sources (FaultSource: a thread publishing
(pub, seq, crc, blob) at a steady pace), sinks (FaultSink: checking CRC and
order per publisher) and echo services (FaultEcho), while a thread of the main
calls the service round-robin. One source, one sink and one service are never
killed; the others are killed one at a time, in random order, at random
instants (SIGKILL). After each kill the main waits until the session's
directory no longer lists the victim (the exit watcher's work: that is what
routes and round-robin read). At the end of the round every surviving source
stops and says how many it published ("fault-fin"), every surviving sink says
what it got from each, and the session is shut down.

Figures: messages lost, duplicated or torn between survivors (and among what
the killed sources had sent: a killed source's messages must arrive as a gap-free
prefix), requests lost (a Timeout) or answered wrongly, detection time (kill ->
directory), the longest wait of a caller whose server died (ServiceGone), errors
logged by the survivors, segments left after shutdown, processes left running.
"""
from __future__ import annotations

import os
import random
import shutil
import socket
import tempfile
import threading
import time
import zlib

from . import common
from .common import Outcome, Proc, fmt_s

PROMISE = ("A killed instance never costs the survivors a message: none lost, duplicated "
           "or torn; it is detected within 1 s; nothing of it is left behind")
KINDS = ("source", "sink", "service")
ANCHORS = {"src0": "source", "src1": "source", "sink0": "sink", "sink1": "sink", "svc0": "service",
           "jammer": "jammer"}
JAM_TIMEOUT_S = 3.0  # JamSink's block timeout
DETECT_LIMIT_S = 1.0


def _config(victims: dict[str, str], watchdog_s: float, gate: str) -> dict:
    classes = {"source": "reliability_apps.FaultSource", "sink": "reliability_apps.FaultSink",
               "service": "reliability_apps.FaultEcho", "jammer": "reliability_apps.Jammer",
               "jammed": "reliability_apps.JamSink"}
    instances = {}
    for name, kind in {**ANCHORS, **victims}.items():
        kwargs = {"watchdog_s": watchdog_s} if kind in ("source", "sink", "service") else {}
        if kind in ("source", "sink"):
            kwargs["name"] = name
        if kind == "jammed":
            kwargs["gate"] = gate
        instances[name] = {"class_path": classes[kind], "kwargs": kwargs}
    return {"instances": instances}


class _Caller:
    """A thread of the main calling FaultEcho.echo round-robin until stopped."""

    def __init__(self, ether, seed: int):
        self.ether = ether
        self.stop = threading.Event()
        self.ok = self.wrong = self.gone = self.lost = self.other = 0
        self.gone_wait = 0.0
        self.slowest = 0.0
        self.errors: list[str] = []
        self._rng = random.Random(seed)
        self.thread = threading.Thread(target=self._run, name="fault-caller", daemon=True)

    def _run(self, limit_s: float = 3600.0) -> None:
        import ether as ether_module
        n = 0
        deadline = time.monotonic() + limit_s
        while not self.stop.is_set() and time.monotonic() < deadline:
            n += 1
            blob = self._rng.randbytes(self._rng.randrange(0, 300))
            started = time.monotonic()
            try:
                reply = self.ether.get("FaultEcho", "echo", params={"n": n, "blob": blob}, timeout=5.0)
                if reply["n"] == n and reply["crc"] == zlib.crc32(blob):
                    self.ok += 1
                else:
                    self.wrong += 1
            except ether_module.ServiceGone:
                self.gone += 1
                self.gone_wait = max(self.gone_wait, time.monotonic() - started)
            except ether_module.Timeout:
                self.lost += 1
            except ether_module.EtherError as exc:
                self.other += 1
                if len(self.errors) < 5:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.stop.wait(0.002)  # the caller's pace


def _round(rnd: int, kills: int, rng: random.Random, rate: float, watchdog_s: float,
           logs, totals: dict) -> None:
    from ether import ether
    from ether.lowlevel import inspect
    names = {"source": iter(f"vsrc{i}" for i in range(1000)),
             "sink": iter(f"vsink{i}" for i in range(1000)),
             "service": iter(f"vsvc{i}" for i in range(1000))}
    victims = {"jam0": "jammed"} if kills >= 2 else {}
    for i in range(kills - len(victims)):
        kind = KINDS[(i + rnd) % len(KINDS)]
        victims[next(names[kind])] = kind
    gate_dir = tempfile.mkdtemp(prefix="ether-faults-gate-")
    gate = socket.socket(socket.AF_UNIX)
    gate.bind(os.path.join(gate_dir, "gate"))
    gate.listen(16)  # the jammed sink connects on its first message and waits for a byte
    sid = None
    caller = None
    procs: list[Proc] = []
    try:
        ether.tap(config=_config(victims, watchdog_s, os.path.join(gate_dir, "gate")))
        sid = ether.session_name()
        members = {m.name: m.pid for m in inspect(sid).members if m.name != "main"}
        procs = [Proc.of(pid, name) for name, pid in members.items()]
        by_name = {p.name: p for p in procs}
        caller = _Caller(ether, seed=rnd)
        caller.thread.start()
        ether.pub({"rate": rate, "burst": 10}, topic="fault-go")
        ether.pub({"count": 20_000, "size": 1024}, topic="start-jam")
        order = list(victims)
        rng.shuffle(order)
        pause = threading.Event()
        for victim in order:
            pause.wait(rng.uniform(0.05, 0.3))  # the random instant of the next kill
            jammed = victims[victim] == "jammed"
            if jammed:  # kill it while its publisher waits for room in its inbox
                def ping():
                    return ether.get("jammer", "ping", timeout=10)
                common.wait_for(lambda: ping()["stuck_s"] >= 0.2, 30)
                sent = ping()["sent"]
            by_name[victim].kill()
            detected = common.wait_for(
                lambda: victim not in {m.name for m in inspect(sid).members}, timeout=10.0)
            totals["kills"] += 1
            totals["detect"].append(detected if detected is not None else float("inf"))
            if jammed:  # (measured from the kill: wait_for's clock started after detection)
                released = common.wait_for(
                    lambda: (lambda p: p["sent"] > sent and p["stuck_s"] < 0.1)(ping()),
                    JAM_TIMEOUT_S + 3)
                totals["released"].append(None if released is None else released + (detected or 0))
        sources = [n for n, k in ANCHORS.items() if k == "source"]
        sinks = [n for n, k in ANCHORS.items() if k == "sink"]
        killed_sources = [n for n, k in victims.items() if k == "source"]
        # The survivors' final count: each surviving source's fin reaches each surviving sink.
        expected = {(s, k) for s in sources for k in sinks}
        seen = {}
        with ether.listen("fault-fin-seen", timeout=30) as fins:
            ether.pub({}, topic="fault-halt")
            for fin in fins:
                seen[(fin["pub"], fin["sink"])] = fin
                if expected <= set(seen):
                    break
        caller.stop.set()
        caller.thread.join(30)
        missing = expected - set(seen)
        totals["missing_fins"] += len(missing)
        for fin in seen.values():
            totals["published"] += fin["count"]
            totals["received"] += fin["received"]
            totals["lost"] += fin["count"] - fin["received"]
            totals["duplicated"] += fin["duplicated"]
            totals["torn"] += fin["torn"]
            totals["refused"] += fin["refused"]
            totals["stall"] = max(totals["stall"], fin["max_stall"])
            if fin["error"]:
                totals["errors"].append(fin["error"])
        for sink in sinks:  # what the killed sources had sent: a prefix without holes
            stats = ether.get(sink, "report", timeout=10)["stats"]
            for pub in killed_sources:
                s = stats.get(pub, {"received": 0, "gaps": 0, "duplicated": 0, "torn": 0})
                totals["victim_received"] += s["received"]
                totals["lost"] += s["gaps"]
                totals["duplicated"] += s["duplicated"]
                totals["torn"] += s["torn"]
        for key in ("ok", "wrong", "gone", "lost", "other"):
            totals["calls"][key] += getattr(caller, key)
        totals["gone_wait"] = max(totals["gone_wait"], caller.gone_wait)
        totals["errors"].extend(caller.errors)
    finally:
        if caller is not None:
            caller.stop.set()
            caller.thread.join(30)
        ether.shutdown()
        gate.close()
        shutil.rmtree(gate_dir, ignore_errors=True)
        if sid is None:
            return  # (the tap failed: its error is on its way)
        left = common.shm_objects(sid)
        totals["leaked"] += len(left)
        running = [p for p in procs if p.alive()]
        totals["orphans"] += len(running)
        common.kill_and_wait(running)
        if left:
            common.remove_session_objects(sid)
    for name in ANCHORS:
        for problem in common.problems_logged(logs, sid, name):
            totals["logged"].append(f"{name}: {problem.splitlines()[0][:200]}")


def run(kills: int = 100, per_round: int = 10, rate: float = 400.0, seed: int = 10,
        watchdog_s: float = 600.0) -> Outcome:
    """`kills` SIGKILLs in rounds of `per_round` (one session each)."""
    common.ensure_path()
    rng = random.Random(seed)
    totals = {"kills": 0, "detect": [], "released": [], "published": 0, "received": 0, "lost": 0,
              "duplicated": 0, "torn": 0, "refused": 0, "stall": 0.0, "victim_received": 0,
              "missing_fins": 0, "leaked": 0, "orphans": 0, "gone_wait": 0.0, "errors": [],
              "logged": [], "calls": {"ok": 0, "wrong": 0, "gone": 0, "lost": 0, "other": 0}}
    started = time.monotonic()
    rounds = max(1, -(-kills // per_round))
    with common.watchdog(watchdog_s), common.log_dir() as logs:
        done = 0
        for rnd in range(rounds):
            n = min(per_round, kills - done)
            _round(rnd, n, rng, rate, watchdog_s, logs, totals)
            done += n
    detect_max = max(totals["detect"], default=0.0)
    released = totals["released"]
    release_max = None if None in released else max(released, default=0.0)
    calls = totals["calls"]
    figures = {
        "kills": totals["kills"], "messages_checked": totals["received"] + totals["victim_received"],
        "published_by_survivors": totals["published"], "lost": totals["lost"],
        "duplicated": totals["duplicated"], "torn": totals["torn"],
        "refused_inbox_full": totals["refused"], "longest_publish_s": totals["stall"],
        "missing_fins": totals["missing_fins"], "detect_max_s": detect_max,
        "detect_median_s": sorted(totals["detect"])[len(totals["detect"]) // 2] if totals["detect"] else 0.0,
        "calls": calls, "service_gone_longest_wait_s": totals["gone_wait"],
        "blocked_publisher_released_max_s": release_max, "jammed_kills": len(released),
        "leaked_segments": totals["leaked"], "orphans": totals["orphans"],
        "survivor_errors_logged": len(totals["logged"]), "errors": totals["errors"][:10],
        "logged": totals["logged"][:10],
    }
    checks = {
        "no_loss": totals["lost"] == 0 and totals["missing_fins"] == 0 and calls["lost"] == 0,
        "no_duplicates": totals["duplicated"] == 0,
        "no_torn": totals["torn"] == 0 and calls["wrong"] == 0,
        "detected_within_1s": detect_max <= DETECT_LIMIT_S,
        "callers_released_within_1s": totals["gone_wait"] <= DETECT_LIMIT_S,
        "blocked_publisher_released_within_1s": release_max is not None and release_max <= DETECT_LIMIT_S,
        "no_leaked_segments": totals["leaked"] == 0,
        "no_orphans": totals["orphans"] == 0,
        "survivors_log_no_errors": not totals["logged"],
    }
    summary = (
        f"{totals['kills']} kills; {figures['messages_checked']:,} messages checked: lost "
        f"{totals['lost']}, duplicated {totals['duplicated']}, torn {totals['torn']}; requests: "
        f"{calls['ok']:,} ok, {calls['gone']} ServiceGone (longest wait {fmt_s(totals['gone_wait'])}), "
        f"{calls['lost']} lost, {calls['wrong']} wrong; detection max {fmt_s(detect_max)} "
        f"(median {fmt_s(figures['detect_median_s'])}); a publisher blocked on a killed block "
        f"subscriber was released after {fmt_s(release_max) if release_max is not None else f'> {JAM_TIMEOUT_S + 3:g} s'} "
        f"(max of {len(released)}; its block timeout: {JAM_TIMEOUT_S:g} s); leaked segments "
        f"{totals['leaked']}; orphans {totals['orphans']}")
    if totals["logged"]:
        summary += f"; {len(totals['logged'])} errors logged by survivors"
    return Outcome("kill_instance", PROMISE,
                   f"kill -9 of a random instance (source, sink or service), {totals['kills']} times, "
                   f"during pub/sub and requests", summary, figures, checks,
                   seconds=time.monotonic() - started)
