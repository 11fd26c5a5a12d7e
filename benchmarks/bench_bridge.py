#!/usr/bin/env python
"""Ether across two hosts, through two bridges, against raw zenoh in the same run.

What it measures
================
Two simulated hosts, A and B: network namespaces joined by a veth pair and a
switch, each with its own tmpfs on /dev/shm (tests/remote/netns.py, imported).
Every process runs on one of them. Over the same links, back to back:

  raw zenoh   one zenoh session per host (_zenoh_peer.py) with the zenoh config
              a bridge of that host uses (ether.bridge.zenoh_config: mTLS with a
              site CA made by ether.bridge.make_ca/make_host, B listening on its
              address, A connecting): a callback subscriber, one put of bytes
              per message, a queryable and get.
  Ether       one session per host (_bridge_host.py), each with its bridge, the
              same security; A's main script publishes or calls, B's instances
              (_bridge_apps.py) subscribe or serve: main -> A's bridge -> zenoh
              -> B's bridge -> B's instance.

Rows (the targets of issue 11):
  64 B stream        N messages of 64 B (seq + 56 bytes; Ether: {"seq", "blob"}),
                     as fast as they go: msg/s = received / (last arrival on B -
                     the publisher's clock before its first send; CLOCK_MONOTONIC,
                     one clock for both namespaces). Target: Ether >= 2.0x raw
                     (the bridge coalesces under load).
  64 B, one in flight  ping-pong: A publishes, B echoes (Ether: an instance's
                     @ether_sub/@ether_pub), A waits for the echo before the next:
                     messages per second. Target >= 0.8x raw.
  1 MiB, 16 MiB arrays  float32 frames (Ether: a numpy array in the message,
                     into A's arena, inline across, into B's arena, a read-only
                     view in B's instance; raw: the same bytes): GB/s.
                     Target >= 0.6x raw.
  request p50        sequential calls, 64 B and 1 MiB replies (Ether:
                     ether.get("Echo", "echo") on B's instance; raw: get on a
                     queryable): p50 of the round trips. Target <= 2.5x raw.
  mTLS cost, 1 MiB   raw zenoh's 1 MiB stream with the bridges' mTLS config
                     against the same config with plain TCP: 1 - tls/tcp. Ether
                     itself cannot run plain TCP beyond loopback (there is no
                     insecure switch), so the link's cost is measured on zenoh.
                     Target <= 20 %.
  idle bridge        CPU of each host's bridge process over a window with no
                     traffic (all threads, /proc/PID/task/*/schedstat) and its
                     RSS: the larger of the two. Target <= 0.5 % CPU, <= 60 MiB.
  local, bridge      on host A, a 64 B stream between two instances of one
                     session (LocalPub -> LocalCounter), in a session with a
                     bridge (linked to B, which subscribes to nothing of it) and
                     in one without, alternately: medians and spreads. Target:
                     the medians differ by less than the runs' own spread.

Integrity: every stream checks its count and per-publisher order (seq), arrays
also a CRC of every 16th frame against the frame that was sent, calls the id and
size of every reply. A run that lost, reordered or corrupted anything is
reported, left out of the medians, and its row shows the problem instead of a
number. Every row is repeated --runs times (5; 1 with --quick), raw and Ether
interleaved; the table shows medians and the min-max spread.

Needs root and `ip netns` (as tests/remote), and zenoh (`pip install -e
".[remote]"`, in dev); without them it says why and exits with status 2.
Timing never fails it; the exit status is 1 if a run failed or did not verify.

Usage (from the repository root)
-----
  sudo .venv/bin/python benchmarks/bench_bridge.py --quick      # ~2 minutes
  sudo .venv/bin/python benchmarks/bench_bridge.py              # full: ~10 minutes
  sudo .venv/bin/python benchmarks/bench_bridge.py --runs 3 --json bridge.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for path in (HERE, ROOT):
    if path not in sys.path:
        sys.path.insert(0, path)

import _bridge_frames as frames  # noqa: E402
import _harness  # noqa: E402
from _bridge_rig import Peer, PeerFailed, cpu_ns, rss_bytes  # noqa: E402

from tests.remote import netns  # noqa: E402  (the rig of the across-hosts tests)

MiB = 1 << 20
SITE = "bench"
EVERY = 16           # the receiver checksums every 16th frame
ETHER_PORT, RAW_PORT, TCP_PORT = 7447, 7450, 7451

FULL = {"n64": 300_000, "pings": 3000, "n1m": 1000, "n16m": 100, "rtt64": 3000, "rtt1m": 300,
        "local": 200_000, "local_runs": 2, "idle_s": 10.0}
QUICK = {"n64": 50_000, "pings": 500, "n1m": 200, "n16m": 20, "rtt64": 300, "rtt1m": 50,
         "local": 100_000, "local_runs": 3, "idle_s": 4.0}
WARM = {"n64": 5000, "pings": 50, "n1m": 20, "n16m": 4, "rtt64": 50, "rtt1m": 10, "local": 20_000}


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---- the rig ----

class Rig:
    """The two hosts, certificates, raw zenoh peers and Ether hosts of one run."""

    def __init__(self, net: netns.Network, log_dir):
        from ether.bridge import make_ca, make_host, zenoh_config
        from ether.config import BridgeConfig

        self.net = net
        A, B = net["A"], net["B"]
        certs = net.root / "certs"
        certs.mkdir()
        make_ca(SITE, certs)
        for host in (A, B):
            make_host(f"host{host.name}", certs, ips=[host.addr])

        def bridge(host, **kw) -> dict:
            name = f"host{host.name}"
            return {"site": SITE, "host": name, "discovery": "none", **kw,
                    "security": {"ca": str(certs / f"{SITE}-ca.pem"),
                                 "cert": str(certs / f"{name}.pem"),
                                 "key": str(certs / f"{name}.key")}}

        def zconf(host, **kw) -> str:
            return json.dumps(zenoh_config(BridgeConfig(**bridge(host, **kw)), base_dir=certs))

        raw_b, raw_a = (zconf(B, listen=[f"tls/{B.addr}:{RAW_PORT}"]),
                        zconf(A, connect=[f"tls/{B.addr}:{RAW_PORT}"]))
        tcp_b, tcp_a = (_plain_tcp(raw_b, RAW_PORT, TCP_PORT), _plain_tcp(raw_a, RAW_PORT, TCP_PORT))
        env = {"RUST_LOG": "warn", "PYTHONUNBUFFERED": "1"}
        log("starting raw zenoh peers (mTLS and plain TCP) and the Ether hosts ...")
        self.zb = Peer(B, "_zenoh_peer.py", raw_b, log_dir=log_dir, name="zenoh-B", env=env)
        self.za = Peer(A, "_zenoh_peer.py", raw_a, log_dir=log_dir, name="zenoh-A", env=env)
        self.tb = Peer(B, "_zenoh_peer.py", tcp_b, log_dir=log_dir, name="zenoh-tcp-B", env=env)
        self.ta = Peer(A, "_zenoh_peer.py", tcp_a, log_dir=log_dir, name="zenoh-tcp-A", env=env)
        self.zb.call("pong", key_in="bench/ping", key_out="bench/pong")
        self.zb.call("queryable", key="bench/q64", size=64)
        self.zb.call("queryable", key="bench/q1m", size=MiB)

        apps = "_bridge_apps."
        self.eb = Peer(B, "_bridge_host.py", log_dir=log_dir, name="ether-B")
        self.eb.call("tap", config={
            "instances": {"sink": {"class_path": apps + "Sink", "kwargs": {"every": EVERY}},
                          "pong": {"class_path": apps + "Pong"},
                          "echo": {"class_path": apps + "Echo"}},
            "bridge": bridge(B, listen=[f"tls/{B.addr}:{ETHER_PORT}"])})
        local = {"local_pub": {"class_path": apps + "LocalPub"},
                 "local_counter": {"class_path": apps + "LocalCounter"}}
        self.ea = Peer(A, "_bridge_host.py", log_dir=log_dir, name="ether-A")
        self.ea.call("tap", config={"instances": local,
                                    "bridge": bridge(A, connect=[f"tls/{B.addr}:{ETHER_PORT}"])})
        self.el = Peer(A, "_bridge_host.py", log_dir=log_dir, name="ether-A-nobridge")
        self.el.call("tap", config={"instances": local})
        # Interest first: each host's bridge must know what the other subscribes to.
        self.eb.call("expect", topic="bulk_done", timeout=180.0)
        self.ea.call("expect", topic="pong", timeout=10.0)
        for topic in ("bulk", "frames", "bulk_end", "ping"):
            self.ea.call("wait_interest", topic=topic)
        self.eb.call("wait_interest", topic="pong")
        self.ea.call("wait_proxy", name="echo@hostB")
        self.bridges = {"A": _pid_of(self.ea, "bridge"), "B": _pid_of(self.eb, "bridge")}
        # Whose CPU the 64 B rows take, Ether's and raw zenoh's (their results' "cpu_us").
        ether_a = {"A main": self.ea.proc.pid, "A bridge": self.bridges["A"],
                   "B bridge": self.bridges["B"]}
        raw = {"A zenoh": self.za.proc.pid, "B zenoh": self.zb.proc.pid}
        self.busy = {"s64": {"ether": {**ether_a, "B sink": _pid_of(self.eb, "sink")}, "raw": raw},
                     "ping": {"ether": {**ether_a, "B pong": _pid_of(self.eb, "pong")}, "raw": raw}}


def _plain_tcp(config: str, port: int, new_port: int) -> str:
    """The same zenoh config over plain TCP (for the mTLS cost only)."""
    conf = json.loads(config)
    conf["transport"]["link"].pop("tls")
    conf["transport"]["link"]["protocols"] = ["tcp"]
    for side in ("listen", "connect"):
        conf[side]["endpoints"] = [e.replace("tls/", "tcp/").replace(f":{port}", f":{new_port}")
                                   for e in conf[side]["endpoints"]]
    return json.dumps(conf)


def _pid_of(peer: Peer, member: str) -> int:
    for name, pid in peer.call("members"):
        if name == member:
            return pid
    raise PeerFailed(f"{peer.name}: no member {member!r}")


# ---- one measurement each ----

def _stream_result(sent: dict, got: dict, count: int, nbytes: int, kind: str) -> dict:
    problems = []
    if got["received"] != count or got["last_seq"] != count - 1:
        problems.append(f"received {got['received']} of {count} (last seq {got['last_seq']})")
    if got["disorder"]:
        problems.append(f"{got['disorder']} out of order")
    if kind != "bytes":
        want = [s for s in range(count) if frames.sampled(s, EVERY)]
        crcs = {int(k): v for k, v in got["crcs"].items()}
        bad = [s for s in want if crcs.get(s) != frames.expected_crc(nbytes, s)]
        if bad:
            problems.append(f"{len(bad)} of {len(want)} sampled frames missing or CRC-different "
                            f"(first: seq {bad[0]})")
    seconds = (got["last_ns"] - sent["t0_ns"]) / 1e9
    out = {"seconds": seconds, "mps": got["received"] / seconds if seconds > 0 else 0.0,
           "gbps": got["received"] * nbytes / seconds / 1e9 if seconds > 0 else 0.0}
    if problems:
        out["problems"] = problems
    return out


def raw_stream(z_src: Peer, z_sink: Peer, key: str, count: int, nbytes: int, kind: str) -> dict:
    z_sink.call("sink", key=key, count=count, every=EVERY, kind=kind)
    sent = z_src.call("source", key=key, count=count, size=nbytes, kind=kind)
    got = z_sink.call("wait_sink", timeout=max(60.0, count * nbytes / 50e6))
    return _stream_result(sent, got, count, nbytes, kind)


_runs = iter(range(1, 1 << 62))


def ether_stream(rig: Rig, topic: str, count: int, nbytes: int, kind: str) -> dict:
    run = next(_runs)
    out0 = rig.ea.call("bridge_statistics")["outbound"]
    sent = rig.ea.call("stream", topic=topic, count=count, run=run, kind=kind, size=nbytes)
    got = rig.eb.call("next", topic="bulk_done")
    out1 = rig.ea.call("bridge_statistics")["outbound"]
    if got["run"] != run:
        return {"error": f"the bulk_done of stream {got['run']}, not of {run}"}
    out = _stream_result(sent, got, count, nbytes, kind)
    out["overtaken"] = got["overtaken"]
    # Coalescing: messages per zenoh sample on A's bridge (the end marker is one more).
    out["per_sample"] = float((out1["sent_frames"] - out0["sent_frames"])
                              / max(1, out1["sent_samples"] - out0["sent_samples"]))
    return out


def _ping_result(out: dict) -> dict:
    if out["lost"]:
        return {"problems": [f"an echo did not come back (or another came) after {out['count']}"],
                "mps": 0.0}
    return {"mps": out["count"] / (out["elapsed_ns"] / 1e9)}


def _rtt_result(out: dict, count: int) -> dict:
    times = out["ns"]
    r = {"p50_us": statistics.median(times) / 1e3 if times else 0.0,
         "p99_us": sorted(times)[int(len(times) * 0.99) - 1] / 1e3 if times else 0.0}
    if out["bad"] or len(times) != count:
        r["problems"] = [f"{out['bad']} bad replies, {len(times)} of {count} timed"]
    return r


def with_cpu(pids: dict[str, int], count: int, measure) -> dict:
    """measure()'s result, with the CPU each of `pids` spent during it in µs per
    message ("cpu_us", every thread of the process): where a row's time goes."""
    def total() -> dict[str, int]:
        return {who: sum(cpu_ns(pid).values()) for who, pid in pids.items()}
    before = total()
    r = measure()
    after = total()
    r["cpu_us"] = {who: round((after[who] - before[who]) / 1e3 / count, 2) for who in pids}
    return r


def guarded(fn, *args) -> dict:
    """A measurement's result, or {"error"} if a peer failed (the run goes on)."""
    try:
        return fn(*args)
    except (PeerFailed, KeyError, TypeError, ValueError) as exc:
        return {"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                "detail": traceback.format_exc()}


def one_run(rig: Rig, P: dict, results: dict, only: set[str] | None = None) -> None:
    """Each row once: raw zenoh, then Ether, back to back."""
    def add(row, side, r):
        if only and row not in only:
            return
        r = r() if callable(r) else r
        results.setdefault(row, {"raw": [], "ether": []})[side].append(r)
        value = r.get("error") or "; ".join(r.get("problems", [])) or ", ".join(
            f"{k}={v:.4g}" for k, v in r.items() if isinstance(v, float))
        if "cpu_us" in r:
            value += "; CPU µs/message: " + ", ".join(f"{k} {v:g}" for k, v in r["cpu_us"].items())
        log(f"  {row:>10} {side:>5}: {value}")

    busy, n64, pings = rig.busy, P["n64"], P["pings"]
    add("s64", "raw", lambda: guarded(with_cpu, busy["s64"]["raw"], n64, lambda: raw_stream(
        rig.za, rig.zb, "bench/s64", n64, 64, "bytes")))
    add("s64", "ether", lambda: guarded(with_cpu, busy["s64"]["ether"], n64, lambda: ether_stream(
        rig, "bulk", n64, 64, "bytes")))
    add("ping", "raw", lambda: guarded(with_cpu, busy["ping"]["raw"], pings, lambda: _ping_result(
        rig.za.call("ping", key_out="bench/ping", key_in="bench/pong", count=pings))))
    add("ping", "ether", lambda: guarded(with_cpu, busy["ping"]["ether"], pings, lambda: _ping_result(
        rig.ea.call("ping", count=pings))))
    for row, n, size in (("a1m", P["n1m"], MiB), ("a16m", P["n16m"], 16 * MiB)):
        add(row, "raw", lambda: guarded(raw_stream, rig.za, rig.zb, f"bench/{row}", n, size,
                                        "array"))
        add(row, "ether", lambda: guarded(ether_stream, rig, "frames", n, size, "array"))
    if not only or {"a1m", "tls1m"} <= only:
        add("tls1m", "raw", lambda: guarded(raw_stream, rig.ta, rig.tb, "bench/tcp1m", P["n1m"],
                                            MiB, "array"))
        add("tls1m", "ether", results["a1m"]["raw"][-1])   # the mTLS run just before
    for row, n, size, key in (("rtt64", P["rtt64"], 64, "bench/q64"),
                              ("rtt1m", P["rtt1m"], MiB, "bench/q1m")):
        add(row, "raw", lambda: guarded(lambda: _rtt_result(rig.za.call(
            "rtt", key=key, count=n, size=size), n)))
        add(row, "ether", lambda: guarded(lambda: _rtt_result(rig.ea.call(
            "rtt", service="Echo", count=n, size=size), n)))
    for _ in range(P["local_runs"]):   # alternately: with a bridge, without
        add("local", "ether", lambda: guarded(_local, rig.ea, P["local"]))
        add("local", "raw", lambda: guarded(_local, rig.el, P["local"]))


def _local(peer: Peer, count: int) -> dict:
    got = peer.call("local", count=count)
    seconds = (got["last_ns"] - got["t0_ns"]) / 1e9
    r = {"mps": got["received"] / seconds}
    if got["received"] != count or got["disorder"]:
        r["problems"] = [f"received {got['received']} of {count}, {got['disorder']} out of order"]
    return r


def idle(rig: Rig, window: float) -> dict:
    """CPU share and RSS of each bridge over `window` seconds without traffic."""
    before = {h: (cpu_ns(pid), time.monotonic_ns()) for h, pid in rig.bridges.items()}
    threading.Event().wait(window)   # the measuring window itself, not a wait for an event
    out = {}
    for h, pid in rig.bridges.items():
        cpu0, t0 = before[h]
        cpu1, elapsed = cpu_ns(pid), time.monotonic_ns() - t0
        threads = {name: 100.0 * (ns - cpu0.get(name, 0)) / elapsed for name, ns in cpu1.items()}
        rss = rss_bytes(pid)
        out[h] = {"cpu_pct": sum(threads.values()), "rss_mib": rss["own"] / MiB,
                  "shm_mib": rss["shm"] / MiB,
                  "threads": {n: round(v, 3) for n, v in sorted(threads.items(), key=lambda kv: -kv[1])
                              if v >= 0.01}}
    return out


def warm_up(rig: Rig) -> None:
    """Every path once, untimed: publishers declared, proxies and arenas made."""
    W = WARM
    checks = [raw_stream(rig.za, rig.zb, "bench/s64", W["n64"], 64, "bytes"),
              ether_stream(rig, "bulk", W["n64"], 64, "bytes"),
              ether_stream(rig, "frames", W["n1m"], MiB, "array"),
              ether_stream(rig, "frames", W["n16m"], 16 * MiB, "array"),
              raw_stream(rig.za, rig.zb, "bench/w16m", W["n16m"], 16 * MiB, "array"),
              raw_stream(rig.ta, rig.tb, "bench/wtcp", W["n1m"], MiB, "array"),
              _ping_result(rig.ea.call("ping", count=W["pings"])),
              _ping_result(rig.za.call("ping", key_out="bench/ping", key_in="bench/pong",
                                       count=W["pings"])),
              _rtt_result(rig.ea.call("rtt", service="Echo", count=W["rtt1m"], size=MiB),
                          W["rtt1m"]),
              _rtt_result(rig.za.call("rtt", key="bench/q1m", count=W["rtt1m"], size=MiB),
                          W["rtt1m"]),
              _local(rig.ea, W["local"]), _local(rig.el, W["local"])]
    bad = [c["problems"] for c in checks if "problems" in c]
    if bad:
        log(f"warm-up problems (the timed runs check again): {bad}")


# ---- the table ----

ALL_ROWS = ("s64", "ping", "a1m", "a16m", "tls1m", "rtt64", "rtt1m", "local")
ROWS = [  # row, label, key, unit, scale, "higher" or "lower" is better, target
    ("s64", "64 B stream", "mps", "k msg/s", 1e-3, "higher", 2.0),
    ("ping", "64 B, one in flight (ping-pong)", "mps", "msg/s", 1.0, "higher", 0.8),
    ("a1m", "1 MiB arrays", "gbps", "GB/s", 1.0, "higher", 0.6),
    ("a16m", "16 MiB arrays", "gbps", "GB/s", 1.0, "higher", 0.6),
    ("rtt64", "request p50, 64 B", "p50_us", "µs", 1.0, "lower", 2.5),
    ("rtt1m", "request p50, 1 MiB", "p50_us", "µs", 1.0, "lower", 2.5),
]


def _spread(s: dict, key: str, scale: float) -> str:
    return f"{s[key + '_min'] * scale:.3g}-{s[key + '_max'] * scale:.3g}"


def _problem(rs: list[dict]) -> str | None:
    for r in rs:
        if "error" in r or "problems" in r:
            return r.get("error") or "; ".join(r["problems"])
    return None


def render(results: dict, idle_out: dict | None, runs: int) -> tuple[str, dict]:
    headers = ["workload", "raw zenoh", "Ether (2 bridges)", "ratio", "target", "met"]
    rows, summary = [], {}
    for row, label, key, unit, scale, better, target in ROWS:
        rs = results.get(row, {"raw": [], "ether": []})
        why = _problem(rs["raw"] + rs["ether"])
        sr, se = _harness.summarize(rs["raw"], [key]), _harness.summarize(rs["ether"], [key])
        if why or key not in sr or key not in se or not sr[key]:
            rows.append([label, "problem" if why else "-", "problem" if why else "-", "-",
                         f"{'>=' if better == 'higher' else '<='} {target}x",
                         f"NOT measured: {why or 'no good run'}"])
            continue
        ratio = se[key] / sr[key]
        met = ratio >= target if better == "higher" else ratio <= target
        summary[row] = {"raw": sr, "ether": se, "ratio": ratio, "met": met}
        rows.append([label, f"{sr[key] * scale:.4g} {unit} ({_spread(sr, key, scale)})",
                     f"{se[key] * scale:.4g} {unit} ({_spread(se, key, scale)})", f"{ratio:.2f}x",
                     f"{'>=' if better == 'higher' else '<='} {target}x",
                     "met" if met else "NOT met"])
    # mTLS cost: raw zenoh, plain TCP ("raw" side) against mTLS ("ether" side).
    rs = results.get("tls1m", {"raw": [], "ether": []})
    why = _problem(rs["raw"] + rs["ether"])
    st, sl = _harness.summarize(rs["raw"], ["gbps"]), _harness.summarize(rs["ether"], ["gbps"])
    if why or "gbps" not in st or "gbps" not in sl:
        rows.append(["mTLS cost, 1 MiB (raw zenoh)", "problem", "problem", "-", "<= 20 %",
                     f"NOT measured: {why or 'no good run'}"])
    else:
        cost = 1 - sl["gbps"] / st["gbps"]
        summary["tls1m"] = {"tcp": st, "tls": sl, "cost": cost, "met": cost <= 0.20}
        rows.append(["mTLS cost, 1 MiB (raw zenoh)", f"tcp {st['gbps']:.3g} GB/s",
                     f"mTLS {sl['gbps']:.3g} GB/s", f"{100 * cost:.0f} %", "<= 20 %",
                     "met" if cost <= 0.20 else "NOT met"])
    for when, label in (("fresh", "idle bridge, fresh (max of A, B)"),
                        ("after", "idle bridge, after the runs")):
        if not idle_out or when not in idle_out:
            rows.append([label, "-", "-", "-", "<= 0.5 % CPU, <= 60 MiB", "NOT measured"])
            continue
        cpu = max(v["cpu_pct"] for v in idle_out[when].values())
        rss = max(v["rss_mib"] for v in idle_out[when].values())
        met = cpu <= 0.5 and rss <= 60
        summary["idle_" + when] = {**idle_out[when], "met": met}
        rows.append([label, "-", f"{cpu:.2f} % CPU, {rss:.0f} MiB RSS", "-",
                     "<= 0.5 % CPU, <= 60 MiB", "met" if met else "NOT met"])
    rs = results.get("local", {"raw": [], "ether": []})
    why = _problem(rs["raw"] + rs["ether"])
    sn, sb = _harness.summarize(rs["raw"], ["mps"]), _harness.summarize(rs["ether"], ["mps"])
    if why or "mps" not in sn or "mps" not in sb:
        rows.append(["local 64 B, bridge vs none", "problem", "problem", "-", "within spread",
                     f"NOT measured: {why or 'no good run'}"])
    else:
        spread = max(sn["mps_max"] - sn["mps_min"], sb["mps_max"] - sb["mps_min"])
        diff = sb["mps"] - sn["mps"]
        met = abs(diff) <= spread
        summary["local"] = {"no_bridge": sn, "bridge": sb, "diff": diff, "spread": spread,
                            "met": met}
        rows.append(["local 64 B, bridge vs none",
                     f"none {sn['mps'] / 1e3:.0f} k ({_spread(sn, 'mps', 1e-3)})",
                     f"bridge {sb['mps'] / 1e3:.0f} k ({_spread(sb, 'mps', 1e-3)})",
                     f"{sb['mps'] / sn['mps']:.2f}x", f"|diff| <= spread ({spread / 1e3:.0f} k)",
                     "met" if met else "NOT met"])
    return _harness.table(headers, rows), summary


def order_note(results: dict) -> str:
    """Whether A's "bulk_end", published after each stream on another topic, came
    after the whole stream on B (a publisher's order across topics)."""
    seen = [(row, i, r["overtaken"]) for row in ("s64", "a1m", "a16m")
            for i, r in enumerate(results.get(row, {}).get("ether", ()), 1) if "overtaken" in r]
    late = [f"{row} run {i}: {n}" for row, i, n in seen if n]
    if not late:
        return (f"\nOrder across topics: in all {len(seen)} Ether streams, the end marker "
                f"published after the stream on another topic arrived after all of it.")
    return ("\nOrder across topics NOT kept: the end marker, published after the stream on "
            "another topic, arrived before this many of the stream's messages: " + ", ".join(late))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 run with smaller counts (~2 min)")
    ap.add_argument("--runs", type=int, default=None, help="repetitions (default 5; 1 with --quick)")
    ap.add_argument("--json", metavar="PATH", help="also write every run and the summary as JSON")
    ap.add_argument("--only", metavar="ROWS", help="a subset of the rows: " + ",".join(ALL_ROWS))
    ap.add_argument("--count64", type=int, help="messages per 64 B stream")
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None
    if only and only - set(ALL_ROWS):
        ap.error(f"--only: unknown rows {sorted(only - set(ALL_ROWS))} (valid: {','.join(ALL_ROWS)})")
    runs = args.runs or (1 if args.quick else 5)
    if runs < 1:
        ap.error("--runs must be positive")
    P = dict(QUICK if args.quick else FULL)
    if args.count64:
        P["n64"] = args.count64
    why = netns.unavailable()
    if why is None:
        try:
            import zenoh  # noqa: F401  (only to know it is there; no session in this process)
        except ImportError:
            why = "zenoh is not installed (pip install -e '.[remote]')"
    if why:
        log(f"bench_bridge: cannot run here: {why}")
        return 2
    os.chdir(ROOT)
    env = _harness.environment(modules=("ether", "numpy"), dists=("eclipse-zenoh",),
                               runs=runs, quick=args.quick, counts=P)
    started = time.monotonic()
    results: dict = {}
    idle_out = None
    failed = None
    with netns.Network(2) as net:
        log_dir = net.root / "logs"
        log_dir.mkdir()
        try:
            rig = Rig(net, log_dir)
            log(f"rig ready in {time.monotonic() - started:.1f} s; idle bridges: measuring "
                f"over {P['idle_s']:g} s ...")
            idle_out = {"fresh": idle(rig, P["idle_s"])}
            log("warming up ...")
            warm_up(rig)
            for i in range(1, runs + 1):
                log(f"run {i}/{runs}:")
                one_run(rig, P, results, only)
            log(f"idle bridges after the runs: measuring over {P['idle_s']:g} s ...")
            idle_out["after"] = idle(rig, P["idle_s"])
        except (PeerFailed, subprocess.SubprocessError, OSError) as exc:
            failed = str(exc)
            log(f"bench_bridge: the rig failed: {exc}")
            for peer_log in sorted(log_dir.glob("*.log")):
                text = peer_log.read_text(errors="replace").strip()
                if text:
                    log(f"--- {peer_log.name} (last lines)\n" + "\n".join(text.splitlines()[-15:]))
    table, summary = render(results, idle_out, runs)
    env["loadavg_end"] = os.getloadavg()
    print(f"Ether across two hosts (network namespaces, veth, mTLS) vs raw zenoh: {runs} run(s), "
          f"Python {platform.python_version()}, zenoh {env.get('eclipse-zenoh')}, "
          f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs, {env['date']}, load average {env['loadavg_start'][0]:.1f} at the "
          f"start, {env['loadavg_end'][0]:.1f} at the end")
    print(f"counts: 64 B {P['n64']}, pings {P['pings']}, 1 MiB {P['n1m']}, 16 MiB {P['n16m']}, "
          f"calls {P['rtt64']} / {P['rtt1m']}, local {P['local']} x {P['local_runs']} per run; "
          f"medians (min-max)")
    print(table)
    bad = _harness.failures({f"{row} {side}": rs for row, sides in results.items()
                             for side, rs in sides.items() if row != "tls1m" or side != "ether"})
    for line in bad:
        print(line)
    print(order_note(results))
    for when, hosts in (idle_out or {}).items():
        print(f"idle bridges ({when}): " + "; ".join(
            f"{h}: {v['cpu_pct']:.2f} % CPU, {v['rss_mib']:.0f} MiB RSS (anonymous and file), "
            f"{v['shm_mib']:.0f} MiB of the session's shared memory touched; CPU % by thread "
            f"name: {v['threads']}" for h, v in hosts.items()))
    if failed:
        print(f"\nThe rig failed, so some rows were not measured: {failed}")
    print(f"\n(took {time.monotonic() - started:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "results": results, "idle": idle_out,
                       "summary": summary, "failed": failed}, f, indent=1, default=str)
    return 1 if (bad or failed) else 0


if __name__ == "__main__":
    sys.exit(main())
