"""Remote launch across two simulated hosts (issue 13, part 2): one config, tapped
on A, whose instances with `host: hostB` start on B through `ether agent`, over
mutual TLS (docs/design/remote-launch.md).

- the Quick Start with the generator on A and the rest on B runs; an instance
  on B killed with SIGKILL is restarted by its policy there and takes its part
  again; `shutdown` on A runs B's save_all and shutdown phases in order and
  leaves nothing of B's session running;
- the main on A SIGKILLed: B's instances exit within lease + 1 s;
- a launch from a certificate that is not among the agent's operators is
  refused, and the main's tap says which host refused and why.

Each main runs tests/bridge_host.py on A (as test_across.py); the agent runs on
B as `python -m ether agent`, with the tests' folder importable there.
"""
from __future__ import annotations

import os
import select
import signal
import sys
import time

import pytest

from .agents import Watched
from .conftest import needs_netns
from .test_across import Driver, _driver

pytest.importorskip("zenoh", reason="the bridge needs zenoh (pip install 'ether[remote]')")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTS = os.path.join(ROOT, "tests")
GEN = "examples.simple_data_processing.DataGenerator"
PROC = "examples.simple_data_processing.DataProcessor"
COLL = "examples.simple_data_processing.DataCollector"
PORT = 7447
LEASE_S = 1.0
HOSTS = ["hostA", "hostB", "hostC"]


def _security(certs, name: str) -> dict:
    return {"ca": str(certs / "lab1-ca.pem"), "cert": str(certs / f"{name}.pem"),
            "key": str(certs / f"{name}.key"), "allow_hosts": HOSTS}


def _agent(net, certs, operators=("hostA",)) -> Watched:
    """`ether agent` on B, listening on B's address; its line 'agent of host' awaited."""
    argv = [sys.executable, "-m", "ether", "agent", "--site", "lab1", "--host", "hostB",
            "--listen", f"tls/{net['B'].addr}:{PORT}", "--ca", str(certs / "lab1-ca.pem"),
            "--cert", str(certs / "hostB.pem"), "--key", str(certs / "hostB.key"),
            "--lease", str(LEASE_S), "--workdir", ROOT]
    for host in HOSTS:
        argv += ["--allow-host", host]
    for name in operators:
        argv += ["--operator", name]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, TESTS]), PYTHONUNBUFFERED="1")
    agent = Watched(net["B"], argv, env=env)
    assert agent.wait_line(r"ether agent: agent of host 'hostB'", 60), "".join(agent.lines)
    return agent


def _main_bridge(net, certs, cert: str = "hostA") -> dict:
    return {"site": "lab1", "host": cert, "connect": [f"tls/{net['B'].addr}:{PORT}"],
            "lease_s": LEASE_S, "security": _security(certs, cert)}


def _quick_start(net, certs, journal) -> dict:
    on_b = {"host": "hostB"}
    return {"instances": {
        "generator1": {"class_path": GEN},
        "processor2x": {"class_path": PROC, "kwargs": {"multiplier": 2}, "restart": "on-failure",
                        **on_b},
        "processor4x": {"class_path": PROC, "kwargs": {"multiplier": 4}, **on_b},
        "collector1": {"class_path": COLL, **on_b},
        "journal1": {"class_path": "remote_apps.Journal",
                     "kwargs": {"path": str(journal), "name": "journal1"}, **on_b},
        "journal2": {"class_path": "remote_apps.Journal",
                     "kwargs": {"path": str(journal), "name": "journal2"}, **on_b}},
        "bridge": _main_bridge(net, certs)}


def _alive(pid: int) -> bool:
    """Running (a zombie is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _await_exits(fds: list[int], deadline: float) -> None:
    """Until every pidfd is readable (its process exited), or the deadline."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    left = set(fds)
    while left and time.monotonic() < deadline:
        for fd, _ in poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
            poller.unregister(fd)
            left.discard(fd)


def _a_round(a: Driver, name: str) -> list[int]:
    """ether.start() on A, and the results of that round as A records them. A's
    interest in "result" reaches B's bridge a moment after B's in "data" reached
    A (liveliness, asynchronous): a round published before it is not sent back,
    so a round that brings nothing back within 3 s is run again (at most 5)."""
    from bridge_driver import HostFailed
    for _ in range(5):
        before = len(a.call("recorded", name=name))
        a.call("start")
        try:
            got = a.call("recorded", name=name, count=before + 2, timeout=3, wait=30)
        except HostFailed:
            continue
        return sorted(v["result"] for v in got[before:])
    raise AssertionError("no round of the Quick Start came back to A")


@needs_netns
@pytest.mark.timeout(240)
def test_quick_start_on_two_hosts_from_one_config_restart_on_b_and_ordered_shutdown(
        hosts, site, tmp_path):
    good, _ = site
    net = hosts(2)
    drivers: list[Driver] = []
    journal = tmp_path / "journal.txt"
    try:
        agent = _agent(net, good)
        a = _driver(net["A"], drivers)
        started = time.monotonic()
        a.tap(_quick_start(net, good, journal))
        print(f"two-host tap: {time.monotonic() - started:.3f} s")
        remote = a.call("remote")

        assert set(remote) == {f"{n}@hostB" for n in ("processor2x", "processor4x", "collector1",
                                                      "journal1", "journal2")}
        assert all(r["state"] == "ready" and _alive(r["pid"]) for r in remote.values()), remote

        # The Quick Start: 42 from A, x2 and x4 on B, the results seen on A.
        a.call("record", name="results", topic="result")
        a.call("wait_remote_interest", topic="data", wait=60)
        assert _a_round(a, "results") == [84, 168]

        # SIGKILL on B: restarted there by its policy, and it takes its part again.
        old = remote["processor2x@hostB"]["pid"]
        os.kill(old, signal.SIGKILL)   # the hosts share the machine's pid namespace

        back = a.call("wait_remote", name="processor2x@hostB", restarts=1, timeout=30, wait=60)
        assert back["pid"] != old and _alive(back["pid"])
        a.call("wait_log", text="instance 'processor2x' on host 'hostB' is back (restart 1)")
        assert _a_round(a, "results") == [84, 168]

        # shutdown on A: B's phases in order (every save_all before any shutdown handler).
        pids = [r["pid"] for r in a.call("remote").values()]
        started = time.monotonic()
        a.call("shutdown", wait=90)
        print(f"two-host shutdown: {time.monotonic() - started:.3f} s")
        assert not [p for p in pids if _alive(p)], "B's instances outlived the shutdown"
        lines = [line.split() for line in journal.read_text().splitlines()]
        saves = {l[1]: float(l[3]) for l in lines if l[0] == "save_all"}
        downs = {l[1]: float(l[3]) for l in lines if l[0] == "shutdown"}
        assert set(saves) == set(downs) == {"journal1", "journal2"}, lines
        assert max(saves.values()) < min(downs.values()), lines
        assert agent.wait_line(r"stopped the session of 'hostA'", 10)
    finally:
        for driver in reversed(drivers):
            driver.close()


@needs_netns
@pytest.mark.timeout(180)
def test_main_killed_on_a_ends_b_s_instances_within_the_lease_and_a_second(hosts, site, tmp_path):
    good, _ = site
    net = hosts(2)
    drivers: list[Driver] = []
    try:
        agent = _agent(net, good)
        a = _driver(net["A"], drivers)
        info = a.tap({"instances": {
            "processor2x": {"class_path": PROC, "kwargs": {"multiplier": 2}, "host": "hostB",
                            "restart": "always"},
            "collector1": {"class_path": COLL, "host": "hostB"}},
            "bridge": _main_bridge(net, good)})
        pids = [r["pid"] for r in a.call("remote").values()]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        fds = [os.pidfd_open(p) for p in pids]   # readable once that process has exited
        try:
            killed = time.monotonic()
            os.kill(info["pid"], signal.SIGKILL)
            _await_exits(fds, killed + LEASE_S + 6.0)
        finally:
            for fd in fds:
                os.close(fd)
        took = time.monotonic() - killed
        print(f"B's instances gone {took:.3f} s after the main's SIGKILL")
        assert not [p for p in pids if _alive(p)], "B's instances outlived their main"
        assert took <= LEASE_S + 1.0, f"{took:.2f} s"
        assert agent.wait_line(r"left the site; ending its session", 5)
    finally:
        for driver in reversed(drivers):
            driver.close()


@needs_netns
@pytest.mark.timeout(180)
def test_a_cut_link_ends_b_s_instances_within_the_lease_and_a_second(hosts, site):
    good, _ = site
    net = hosts(2)
    drivers: list[Driver] = []
    try:
        agent = _agent(net, good)
        a = _driver(net["A"], drivers)
        a.tap({"instances": {"collector1": {"class_path": COLL, "host": "hostB"}},
               "bridge": _main_bridge(net, good)})
        pids = [r["pid"] for r in a.call("remote").values()]
        fds = [os.pidfd_open(p) for p in pids]
        try:
            cut = time.monotonic()
            net["A"].link(False)
            _await_exits(fds, cut + LEASE_S + 6.0)
        finally:
            for fd in fds:
                os.close(fd)
        took = time.monotonic() - cut
        print(f"B's instances gone {took:.3f} s after A's link was cut")
        assert not [p for p in pids if _alive(p)], "B's instances outlived the link to their main"
        assert took <= LEASE_S + 1.0, f"{took:.2f} s"
        assert agent.wait_line(r"left the site; ending its session", 5)
        net["A"].link(True)
    finally:
        for driver in reversed(drivers):
            driver.close()


@needs_netns
@pytest.mark.timeout(180)
def test_a_launch_sent_while_the_link_is_down_waits_for_the_agent_and_starts_once(hosts, site):
    """A's link is down as its tap starts: the bridge comes up without the site, and
    the launch waits for B's agent, saying so, instead of failing at once (zenoh
    ends a query that meets no queryable); once the link is back, B starts the
    instance, once."""
    good, _ = site
    net = hosts(2)
    drivers: list[Driver] = []
    try:
        agent = _agent(net, good)
        a = _driver(net["A"], drivers, watch_stderr=True)
        net["A"].link(False)
        a.send("tap", config={"instances": {"collector1": {"class_path": COLL, "host": "hostB"}},
                              "bridge": _main_bridge(net, good)})
        assert a.stderr.wait_line(r"the launch on host 'hostB' waits for its agent", 60), \
            "".join(a.stderr.lines)
        net["A"].link(True)
        answer = a.answer(90)
        assert "ok" in answer, (answer, "".join(a.stderr.lines))
        a.session = answer["ok"]["session"]
        remote = a.call("remote")
        assert list(remote) == ["collector1@hostB"], remote
        assert remote["collector1@hostB"]["state"] == "ready", remote
        assert _alive(remote["collector1@hostB"]["pid"])
        launches = [l for l in agent.lines if "launched for 'hostA'" in l]
        assert len(launches) == 1, agent.lines
    finally:
        for driver in reversed(drivers):
            driver.close()


@needs_netns
@pytest.mark.timeout(180)
def test_a_launch_from_a_certificate_not_among_the_operators_is_refused_and_errors_say_why(
        hosts, site):
    good, _ = site
    net = hosts(2)
    drivers: list[Driver] = []
    try:
        agent = _agent(net, good, operators=("hostA",))
        c = _driver(net["A"], drivers)   # on A's address, with hostC's certificate
        answer = c.ask("tap", config={
            "instances": {"collector1": {"class_path": COLL, "host": "hostB"}},
            "bridge": _main_bridge(net, good, cert="hostC")})
        assert answer.get("error") == "EtherError", answer
        assert "host 'hostB'" in answer["message"], answer
        assert "'hostC' is not among this agent's operators" in answer["message"], answer
        assert agent.wait_line(r"refused a request from 'hostC'", 5)
        c.close()

        # An operator's launch that cannot start says why, naming the host.
        a = _driver(net["A"], drivers)
        answer = a.ask("tap", config={
            "instances": {"ghost": {"class_path": "remote_apps.Missing", "host": "hostB"}},
            "bridge": _main_bridge(net, good)})
        assert answer.get("error") == "EtherError", answer
        assert "host 'hostB' could not start 'ghost'" in answer["message"], answer
        assert "Missing" in answer["message"], answer
        a.close()

        # The failed launch is forgotten: the host takes the next one.
        b = _driver(net["A"], drivers)
        b.tap({"instances": {"collector1": {"class_path": COLL, "host": "hostB"}},
               "bridge": _main_bridge(net, good)})
        remote = b.call("remote")
        assert list(remote) == ["collector1@hostB"] and _alive(remote["collector1@hostB"]["pid"])
    finally:
        for driver in reversed(drivers):
            driver.close()


@needs_netns
@pytest.mark.timeout(120)
def test_zenohs_acl_lets_a_request_name_only_its_own_certificate(hosts, site):
    """A raw zenoh session with hostC's certificate (listed in allow_hosts): its query
    on the key that names hostC reaches the agent and is refused; one on the key that
    names the operator hostA never reaches it (the ACL denies it on B's side)."""
    import msgspec

    from ether.bridge import zenoh_config
    from ether.config import BridgeConfig

    from .agents import Agent
    good, _ = site
    net = hosts(2)
    agent = _agent(net, good, operators=("hostA",))
    c = Agent(net["A"], zenoh_config(BridgeConfig(**_main_bridge(net, good, cert="hostC")),
                                     base_dir=None, mode="router"))
    assert c.peers(10), "hostC never linked to the agent"
    key = "ether/lab1/agent/hostB/req/{}"
    own = c.call("get", wait=20, key=key.format("hostC"), timeout=5.0, hex=True)["replies"]
    assert len(own) == 1, own
    refused = msgspec.msgpack.decode(bytes.fromhex(own[0]))
    assert refused["ok"] is False and "'hostC' is not among" in refused["reason"], refused
    assert c.call("get", wait=20, key=key.format("hostA"), timeout=2.0, hex=True)["replies"] == []
    assert agent.wait_line(r"refused a request from 'hostC'", 5)
    assert not agent.wait_line(r"from 'hostA'", 0.5), "a request named hostA reached the agent"


@needs_netns
@pytest.mark.timeout(120)
def test_the_same_launch_twice_starts_one_session_and_gets_the_same_answer(hosts, site):
    """A launch whose answer was lost is asked again by the main's bridge: the agent
    answers the second with the first's answer (the same session, the same pids),
    and starts nothing more. Sent here from a raw zenoh session with hostA's
    certificate; then a stop ends that session."""
    import msgspec

    from ether.bridge import zenoh_config
    from ether.bridge._agentwire import Request, encode_msg
    from ether.config import BridgeConfig

    from .agents import Agent
    good, _ = site
    net = hosts(2)
    agent = _agent(net, good)
    a = Agent(net["A"], zenoh_config(BridgeConfig(**_main_bridge(net, good)), base_dir=None,
                                     mode="router"))
    assert a.peers(10), "hostA never linked to the agent"
    key = "ether/lab1/agent/hostB/req/hostA"
    config = {"instances": {"collector1": {"class_path": COLL}}}

    def ask(op: str) -> dict:
        payload = encode_msg(Request(op, "twice", "hostA", config if op == "launch" else {},
                                     30.0, True)).hex()
        replies = a.call("get", wait=60, key=key, timeout=45.0, hex=True,
                         payload_hex=payload)["replies"]
        assert len(replies) == 1, replies
        return msgspec.msgpack.decode(bytes.fromhex(replies[0]))

    first = ask("launch")
    assert first["ok"] is True and set(first["instances"]) == {"collector1"}, first
    second = ask("launch")
    assert second == first
    assert _alive(first["instances"]["collector1"])
    assert len([l for l in agent.lines if "launched for 'hostA'" in l]) == 1, agent.lines
    stopped = ask("stop")
    assert stopped["ok"] is True and stopped["session"] == first["session"], stopped
    assert not _alive(first["instances"]["collector1"])
