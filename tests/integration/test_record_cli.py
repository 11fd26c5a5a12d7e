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


@pytest.mark.timeout(120)
def test_ether_play_into_another_session_selects_exactly_and_marks_replay_of(recorded):
    import threading
    from ether.lowlevel import MessageId, default_client
    from ether.recording import open as open_recording
    folder = recorded({"gen": {"class_path": "record_apps.Generator"},
                       "stage": {"class_path": "record_apps.Stage"}})
    out = ether.listen("stage2", timeout=20)
    ether.start(trial=1, n=3)
    for _ in range(3):
        next(out)
    ether.start(trial=2, n=4)
    for _ in range(4):
        next(out)
    ether.shutdown()
    rec = open_recording(folder)
    run = rec.files[0].run

    def recorded_as(**select):
        return {t: [(m.sender, m.seq, m.data) for m in rec.messages(t, **select)]
                for t in ("data", "stage2")}

    ether.tap(config={})                  # a new session, with a subscriber of its own
    try:
        client = default_client()
        got, lock, enough = {"data": [], "stage2": []}, threading.Lock(), threading.Event()
        want_n = [0]

        def on(envelope):
            assert envelope.replay_of == MessageId(envelope.sender, envelope.seq, run)
            with lock:
                got[envelope.topic].append((envelope.sender, envelope.seq,
                                            client.node.decoders.payload_dict(envelope)))
                if sum(map(len, got.values())) >= want_n[0]:
                    enough.set()

        for topic in ("data", "stage2", "start"):
            client.subscribe(topic, on, envelopes=True)

        def play(*args, want):
            with lock:
                for v in got.values():
                    v.clear()
                want_n[0] = sum(map(len, want.values()))
                enough.clear()
            done = ether_cli("play", folder, "--session", ether.session, "--rate", "0", *args)
            assert f"played {want_n[0]} messages" in done.stdout
            assert enough.wait(10)
            with lock:
                assert got == want

        play("--topics", "data", "stage2", want=recorded_as())
        assert [d["i"] for _, _, d in recorded_as()["stage2"]] == [0, 2, 4, 0, 2, 4, 6]
        trial2 = recorded_as(trial=2)
        assert [d["i"] for _, _, d in trial2["data"]] == [0, 1, 2, 3]
        play("--topics", "data", "stage2", "--trial", "2", want=trial2)
        first = list(rec.messages("data"))
        start, end = first[1].log_time_ns, first[4].log_time_ns
        play("--topics", "data", "--start", start, "--end", end,
             want={"data": recorded_as(start=start, end=end)["data"], "stage2": []})
        assert len(got["data"]) == 3
    finally:
        ether.shutdown()
    done = ether_cli("play", folder, "--rate", "0", "--topics", "data")   # into a new session
    assert "played 7 messages" in done.stdout
    session = done.stdout.split("playing into session ", 1)[1].split()[0]
    assert shm_objects(session) == []
    # Without --topics: every user topic and the trials, none of Ether's own records
    assert {"ether/provenance", "ether/trial"} <= set(rec.topics())
    user = sum(1 for m in rec.messages() if not m.topic.startswith("ether/") or
               m.topic == "ether/trial")
    assert f"played {user} messages" in ether_cli("play", folder, "--rate", "0").stdout
