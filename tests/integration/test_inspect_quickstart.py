"""inspect() from a process that has nothing to do with the session shows a
running Quick Start: its members, subscriptions and publishers."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

from ether import ether
from ether.lowlevel import InstanceState

from conftest import shm_objects

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = ROOT / "examples" / "simple_data_processing" / "config" / "dual_processors.yaml"
CLASSES = "examples.simple_data_processing."

# Run with `python -c`: not a fork of this process, and it never joins the session.
INSPECTOR = """
import dataclasses, json, sys
from ether import lowlevel
sid = sys.argv[1]
listed = [dataclasses.asdict(s) for s in lowlevel.list_sessions() if s.name == sid]
print(json.dumps({"listed": listed, "snapshot": lowlevel.inspect(sid).to_dict()}))
"""


@pytest.mark.timeout(120)
def test_inspect_from_an_unrelated_process_shows_the_running_quick_start(monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    ether.tap(config=str(CONFIG))
    sid = ether.session
    try:
        before = shm_objects(sid)
        proc = subprocess.run([sys.executable, "-c", INSPECTOR, sid], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert shm_objects(sid) == before  # no member lock, no inbox: it did not join
    finally:
        ether.shutdown()
    assert shm_objects(sid) == []

    out = json.loads(proc.stdout)
    snap = out["snapshot"]
    (listed,) = out["listed"]
    assert listed["owner_pid"] == snap["owner_pid"] == os.getpid()
    assert listed["run_id"] == snap["run_id"] and listed["members"] == 5

    members = {m["name"]: m for m in snap["members"]}
    assert {name: m["class_name"] for name, m in members.items()} == {
        "main": "",
        "generator1": CLASSES + "DataGenerator",
        "processor2x": CLASSES + "DataProcessor",
        "processor4x": CLASSES + "DataProcessor",
        "collector1": CLASSES + "DataCollector",
    }
    assert members["main"]["pid"] == os.getpid()
    instance_pids = {m["pid"] for name, m in members.items() if name != "main"}
    assert len(instance_pids) == 4 and os.getpid() not in instance_pids
    # The main records the session's stage in its entry (_runtime/_control.Stage), and
    # each instance's state in the instance's (_runtime/_control.InstanceState).
    assert {name: m["state"] for name, m in members.items()} == {
        name: 1 if name == "main" else InstanceState.READY.code for name in members}
    assert {m["restarts"] for m in members.values()} == {0}

    assert {i["name"] for i in snap["inboxes"]} == set(members)
    for inbox in snap["inboxes"]:
        assert inbox["capacity"] > 0 and 0 <= inbox["used"] <= inbox["capacity"]

    subscriptions = {(s["topic"], s["inbox"]): (s["policy"], s["timeout"]) for s in snap["subscriptions"]}
    for key in [("data", "processor2x"), ("data", "processor4x"), ("result", "collector1"),
                ("summarize", "collector1")]:
        assert subscriptions[key] == ("block", 5.0), key
    assert {(p["topic"], p["inbox"]) for p in snap["publishers"]} == {
        ("data", "generator1"), ("result", "processor2x"), ("result", "processor4x"),
        ("summarize", "collector1")}
