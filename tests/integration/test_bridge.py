"""Two Ether sessions on this machine, each with its own bridge, linked over
loopback: pub/sub across them (the Quick Start split over two hosts), lineage,
fork safety, the name clash, and the bridge as a member of its session.

Each "host" is its own process (tests/bridge_host.py) driven through
tests/bridge_driver.py; the scenarios take the bridge sections as parameters, so
the two-namespace rig can run them with its own endpoints."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bridge_driver import Host, loopback_pair, shm_left  # noqa: E402

pytest.importorskip("zenoh", reason="the bridge needs zenoh (pip install 'ether[remote]')")

GEN = "examples.simple_data_processing.DataGenerator"
PROC = "examples.simple_data_processing.DataProcessor"
COLL = "examples.simple_data_processing.DataCollector"


@pytest.fixture
def pair():
    """Two hosts over loopback (A connects, B listens): bridge_driver.loopback_pair."""
    yield from loopback_pair()


def quick_start_across(make, bridge_a, bridge_b):
    """The Quick Start with its generator on A, processors and collector on B."""
    b = make("B")
    b.tap({"instances": {"processor2x": {"class_path": PROC, "kwargs": {"multiplier": 2}},
                         "processor4x": {"class_path": PROC, "kwargs": {"multiplier": 4}},
                         "collector1": {"class_path": COLL}},
           "bridge": bridge_b})
    b.call("record", name="results", topic="result", envelopes=True)
    b.call("record", name="values", topic="result")
    a = make("A")
    a.tap({"instances": {"generator1": {"class_path": GEN}}, "bridge": bridge_a})
    a.call("wait_remote_interest", topic="data")
    a.call("start")
    values = b.call("recorded", name="values", count=2, timeout=20)
    envelopes = b.call("recorded", name="results", count=2, timeout=20)
    return a, b, values, envelopes


@pytest.mark.timeout(120)
def test_quick_start_across_two_hosts_keeps_its_output_and_lineage(pair):
    make, bridge_a, bridge_b = pair
    a, b, values, envelopes = quick_start_across(make, bridge_a, bridge_b)
    assert sorted(v["result"] for v in values) == [84, 168]
    # Each result was caused by generator1's message, named by its host.
    assert {e["cause"][0] for e in envelopes} == {"generator1@hostA"}
    assert {e["trace"][0] for e in envelopes} == {"main@hostA"}  # the root: A's ether.start()
    assert sorted(e["sender"] for e in envelopes) == ["processor2x", "processor4x"]
    stats = b.call("bridge_statistics")
    assert stats["inbound"]["received"] >= 1 and stats["inbound"]["rejected"] == 0
    # The bridge is a member of each session, with its own log.
    for host in (a, b):
        members = {m[0]: m for m in host.call("members")}
        assert "bridge" in members
    site = a.call("site")
    assert set(site["hosts"]) == {"hostA", "hostB"}
    assert set(site["hosts"]["hostB"]["instances"]) == {"processor2x", "processor4x", "collector1"}
    assert "data" in site["hosts"]["hostB"]["subscriptions"]


@pytest.mark.timeout(120)
def test_no_remote_interest_sends_nothing_and_nothing_loops_back(pair):
    make, bridge_a, bridge_b = pair
    b = make("B")
    b.tap({"bridge": bridge_b})
    b.call("record", name="x", topic="x")
    a = make("A")
    a.tap({"bridge": bridge_a})
    a.call("record", name="x", topic="x")   # A wants x too: whatever B gets must not come back
    a.call("wait_remote_interest", topic="x")
    b.call("wait_remote_interest", topic="x")
    assert a.call("pub", topic="nobody-wants-this", data={"n": 0}) == 0  # not even the bridge
    for n in range(5):
        a.call("pub", topic="x", data={"n": n})
    assert [m["n"] for m in b.call("recorded", name="x", count=5)] == [0, 1, 2, 3, 4]
    for n in range(5, 8):
        b.call("pub", topic="x", data={"n": n})
    assert [m["n"] for m in a.call("recorded", name="x", count=8)] == [0, 1, 2, 3, 4, 5, 6, 7]
    assert [m["n"] for m in b.call("recorded", name="x", count=8)] == [0, 1, 2, 3, 4, 5, 6, 7]
    sa, sb = a.call("bridge_statistics"), b.call("bridge_statistics")
    assert sa["outbound"]["sent_frames"] == 5 and sb["outbound"]["sent_frames"] == 3
    assert sa["inbound"]["received"] == 3 and sb["inbound"]["received"] == 5
    assert "nobody-wants-this" not in sa["outbound"]["subscribed"]


@pytest.mark.timeout(120)
def test_fork_safety_no_instance_holds_zenoh_or_descends_from_the_bridge(pair):
    make, bridge_a, bridge_b = pair
    b = make("B")
    b.tap({"instances": {"svc": {"class_path": "bridge_apps.DataService", "kwargs": {"where": "B"}}},
           "bridge": bridge_b})
    members = {m[0]: m[1] for m in b.call("members")}
    facts = b.call("get", service="svc", method="where_am_i")
    assert facts["zenoh"] is False
    assert facts["ppid"] != members["bridge"]  # forked by the main, not by the bridge
    assert facts["pid"] == members["svc"]


@pytest.mark.timeout(120)
def test_a_second_host_claiming_a_host_name_in_use_is_refused_naming_both(pair):
    make, bridge_a, bridge_b = pair
    b = make("B")
    b.tap({"bridge": bridge_b})
    a = make("A")
    clash = dict(bridge_a, host=bridge_b["host"])
    answer = a.ask("tap", config={"bridge": clash})
    assert answer["error"] == "ConfigError", answer
    assert "hostB" in answer["message"] and answer["message"].count("zenoh id") == 2


@pytest.mark.timeout(60)
def test_a_bridge_without_zenoh_fails_tap_saying_what_to_install(pair, tmp_path):
    make, _, bridge_b = pair
    # zenoh is installed here: a finder first in sys.meta_path hides it.
    fake = tmp_path / "hide"
    fake.mkdir()
    (fake / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'zenoh' or name.startswith('zenoh.'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, _Hide())\n")
    host = Host("nozenoh", env={"PYTHONPATH": str(fake)})
    try:
        answer = host.ask("tap", config={"bridge": bridge_b})
        assert answer["error"] == "ConfigError", answer
        assert 'pip install "ether[remote]"' in answer["message"]
    finally:
        host.close()


@pytest.mark.timeout(120)
def test_ether_bridge_runs_a_session_with_only_the_bridge(pair, tmp_path):
    import subprocess
    make, bridge_a, bridge_b = pair
    b = make("B")
    b.tap({"instances": {"data_service": {"class_path": "bridge_apps.DataService",
                                          "kwargs": {"where": "B"}}}, "bridge": bridge_b})
    config = tmp_path / "watch.yaml"
    config.write_text(f"bridge:\n  site: {bridge_a['site']}\n  host: watcher\n"
                      f"  connect: [{bridge_a['connect'][0]}]\n")
    out = subprocess.run([sys.executable, "-m", "ether", "bridge", str(config), "--duration", "0"],
                         capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    assert "bridge of host 'watcher'" in out.stdout
    session = out.stdout.split("session ")[-1].strip()
    assert not shm_left(session)
    no_bridge = tmp_path / "plain.yaml"
    no_bridge.write_text("instances: {}\n")
    out = subprocess.run([sys.executable, "-m", "ether", "bridge", str(no_bridge)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "no bridge: section" in out.stderr


@pytest.mark.timeout(120)
def test_a_main_that_imported_zenoh_starts_its_instances_with_forkserver(pair):
    make, bridge_a, bridge_b = pair
    b = make("B")
    b.call("import_zenoh")
    b.tap({"instances": {"svc": {"class_path": "bridge_apps.DataService", "kwargs": {"where": "B"}}},
           "bridge": bridge_b})
    facts = b.call("get", service="svc", method="where_am_i")
    assert facts["zenoh"] is False
    assert "instances start with forkserver" in b.call("session_log")


@pytest.mark.timeout(150)
def test_a_slow_remote_block_subscriber_holds_up_the_publisher_then_inbox_full_names_its_host(pair):
    make, bridge_a, bridge_b = pair
    a, b = make("A"), make("B")   # B closes first (the fixture closes in reverse): A's
    # bridge, held up by B, then lets go at once.
    # B's bridge waits up to a minute for room in the sink's inbox, and the sink takes
    # a second over each message: back-pressure reaches A's publisher.
    b.tap({"instances": {"sink": {"class_path": "bridge_apps.SlowBlockSink"}},
           "bridge": bridge_b, "shutdown_timeout_s": 1.0})
    a.tap({"bridge": bridge_a})
    a.call("wait_remote_interest", topic="slow")
    answer = a.call("pub_until_full", topic="slow", size=32768, timeout=60.0, wait=90.0)
    assert answer["error"] == "InboxFull", answer
    assert answer["waited_s"] >= 4.0          # it waited (the bridge's 5 s) before it failed
    message = answer["message"]
    assert "'bridge'" in message and "on hostB" in message and "'slow'" in message, message
