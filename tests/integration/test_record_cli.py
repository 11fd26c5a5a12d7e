"""The commands: ether record attached to a running session, ether run --record,
ether bag info|cat|lineage|export|recover, and provenance.json at every tap."""
import json
import os
import pathlib
import signal
import subprocess
import sys

import pytest
from mcap.reader import make_reader

from ether import ether
from ether.lowlevel import session_log_dir

from conftest import shm_objects, wait_for

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=f"{ROOT / 'tests'}:{ROOT / 'src'}")


def ether_cli(*args, check=True):
    done = subprocess.run([sys.executable, "-m", "ether", *map(str, args)], capture_output=True,
                          text=True, env=ENV, cwd=ROOT, timeout=60)
    if check:
        assert done.returncode == 0, done.stderr
    return done


@pytest.mark.timeout(60)
def test_tap_writes_provenance_json_without_a_recorder():
    ether.tap(config={"instances": {"stage": {"class_path": "record_apps.Stage"}}})
    sid = ether.session
    ether.shutdown()   # provenance is captured beside the running session; shutdown waits for it
    record = json.loads((session_log_dir(sid) / "provenance.json").read_text())
    assert record["session"] == sid and record["instances"]["stage"]["class_path"] == "record_apps.Stage"
    assert record["instances"]["stage"]["git"]["repository"]
    assert shm_objects(sid) == []


@pytest.mark.timeout(90)
def test_ether_record_attached_then_bag_info_cat_lineage_export(tmp_path):
    ether.tap(config={"instances": {"gen": {"class_path": "record_apps.Generator"},
                                    "stage": {"class_path": "record_apps.Stage"}}})
    sid = ether.session
    folder = tmp_path / "rec"
    recorder = subprocess.Popen([sys.executable, "-m", "ether", "record", "data", "stage2", "start",
                                 "--session", sid, "-o", str(folder)], stdout=subprocess.PIPE,
                                text=True, env=ENV, cwd=ROOT)
    try:
        assert recorder.stdout.readline().startswith("recording into")
        out = ether.listen("stage2", timeout=20)
        ether.start(n=5)
        for _ in range(5):
            next(out)
        assert wait_for(lambda: sum(1 for p in folder.glob("*.mcap") if p.stat().st_size > 2000), 10)
        recorder.send_signal(signal.SIGINT)
        assert recorder.wait(20) == 0
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.wait()
        recorder.stdout.close()
        ether.shutdown()
    assert shm_objects(sid) == []
    info = json.loads(ether_cli("bag", "info", folder, "--json", "--provenance").stdout)
    assert info["complete"] and info["topics"]["data"]["messages"] == 5
    assert info["topics"]["stage2"]["senders"] == ["stage"]
    assert info["provenance"]["session"]["session"] == sid
    assert "complete" in ether_cli("bag", "info", folder).stdout
    lines = ether_cli("bag", "cat", folder, "--json", "--topics", "stage2").stdout.splitlines()
    assert [json.loads(l)["data"]["i"] for l in lines] == [0, 2, 4, 6, 8]
    last = json.loads(lines[-1])
    chain = ether_cli("bag", "lineage", folder, "--topic", "stage2", "--seq", last["seq"]).stdout
    assert chain.splitlines()[0].startswith("stage2 stage:") and "on_data" in chain
    assert "data gen:" in chain and "start main:" in chain
    out = tmp_path / "view.mcap"
    ether_cli("bag", "export", folder, "--json", out)
    with open(out, "rb") as f:
        reader = make_reader(f, validate_crcs=True)
        msgs = [(s, c, json.loads(m.data)) for s, c, m in reader.iter_messages(topics=["stage2"])]
    assert all(c.message_encoding == "json" and s.encoding == "jsonschema" for s, c, _ in msgs)
    assert json.loads(msgs[0][0].data)["type"] == "object"
    assert [d["data"]["i"] for _, _, d in msgs] == [0, 2, 4, 6, 8]


@pytest.mark.timeout(90)
def test_ether_run_with_record_records_every_topic(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("instances:\n  gen:\n    class_path: record_apps.Generator\n"
                      "  stage:\n    class_path: record_apps.Stage\n")
    ether_cli("run", config, "--duration", "1", "--record", tmp_path / "rec")
    info = json.loads(ether_cli("bag", "info", tmp_path / "rec", "--json").stdout)
    assert info["complete"]
    assert {"start", "data", "stage2", "ether/provenance"} <= set(info["topics"])
    assert info["topics"]["stage2"]["messages"] == 6
