"""The recorder: a round trip through MCAP checked by the `mcap` package with
CRCs, lineage and trials, drops, splits."""
import json
import os
import pathlib
import signal
import subprocess
import sys

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap.stream_reader import StreamReader

from ether.recording import open as open_recording
from ether import ether

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import record_apps  # noqa: E402



def oracle(folder) -> dict:
    """Per-topic message counts as the mcap package reads them, CRCs checked, and
    its summary's statistics agreeing."""
    counts: dict = {}
    for path in sorted(pathlib.Path(folder).glob("*.mcap")):
        with open(path, "rb") as f:
            reader = make_reader(f, validate_crcs=True)
            stats = reader.get_summary().statistics
            n = 0
            for _, channel, _ in reader.iter_messages():
                counts[channel.topic] = counts.get(channel.topic, 0) + 1
                n += 1
            assert n == stats.message_count
        with open(path, "rb") as f:   # the data section read linearly, CRCs checked
            for _ in StreamReader(f, validate_crcs=True).records:
                pass
    return counts


def wait_done(n_done=1, timeout=30):
    got = 0
    for _ in ether.listen("done", timeout=timeout):
        got += 1
        if got == n_done:
            return
    raise AssertionError("no 'done' message")


@pytest.mark.timeout(90)
def test_round_trip_every_message_once_in_order_with_equal_payloads(recorded):
    n, arrays = 4000, 100
    folder = recorded({"source": {"class_path": "record_apps.Source"}})
    done = ether.listen("done", timeout=30)
    ether.start(n=n, arrays=arrays)
    next(done)
    ether.shutdown()
    rec = open_recording(folder)
    assert rec.status == "complete"
    by_topic = {}
    for m in rec.messages():
        by_topic.setdefault(m.topic, []).append(m)
    for t in range(4):
        got = by_topic[f"t{t}"]
        assert [m.data["i"] for m in got] == list(range(t, n, 4))
        assert all(m.data["text"] == f"m{m.data['i']}" for m in got)
    seqs = [m.seq for m in rec.messages() if m.sender == "source"]
    assert len(seqs) == len(set(seqs))  # one counter for both of its lanes
    # In order on its user lane; Ether's own topics (its stats) go by the other
    # lane, whose seq may pass one of the user lane's on the way.
    user = [m.seq for m in rec.messages() if m.sender == "source" and not m.topic.startswith("ether/")]
    assert user == sorted(user)
    rng = np.random.default_rng(7)
    for k, m in enumerate(by_topic["arrays"]):
        want = record_apps.array_of(k, rng)
        a = m.data["a"]
        assert m.data["k"] == k and a.dtype == want.dtype and a.shape == want.shape
        assert np.array_equal(a, want) and not a.flags.writeable
    loaned = by_topic["loaned"]
    assert [m.data["k"] for m in loaned] == list(range(0, arrays, 10))
    assert all((m.data["a"] == m.data["k"]).all() and m.data["a"].shape == (256, 256) for m in loaned)
    counts = oracle(folder)
    assert counts == {t: len(ms) for t, ms in by_topic.items()}
    assert rec.metadata["ether.recording.end"]["status"] == "complete"
    assert rec.dropped() == 0


@pytest.mark.timeout(60)
def test_lineage_of_a_pipeline_with_an_aggregator_goes_back_to_start(recorded):
    folder = recorded({"gen": {"class_path": "record_apps.Generator"},
                       "stage": {"class_path": "record_apps.Stage"},
                       "agg": {"class_path": "record_apps.Aggregator", "kwargs": {"every": 3}}})
    finals = ether.listen("final", timeout=20)
    ether.start(n=6)
    next(finals), next(finals)
    ether.shutdown()
    rec = open_recording(folder)
    final = list(rec.messages("final"))[-1]
    steps = rec.lineage(final)
    assert [(s["topic"], s["instance"]) for s in steps] == [
        ("final", "agg"), ("stage2", "stage"), ("data", "gen"), ("start", "main")]
    assert [s["method"] for s in steps[:3]] == ["on_stage", "on_data", "go"]
    assert steps[2]["message"].data == {"i": 5}
    assert steps[0]["class_path"] == "record_apps.Aggregator" and steps[0]["module_sha256"]
    start = next(rec.messages("start"))
    below = rec.descendants(start)
    assert sorted((m.topic, m.seq) for m in below) == sorted(
        (m.topic, m.seq) for m in rec.messages(["data", "stage2", "final"]))
    assert all(m.root_id == start.id for m in below)


@pytest.mark.timeout(60)
def test_a_service_chain_links_the_reply_to_the_request_and_the_request_to_its_cause(recorded):
    folder = recorded({"gen": {"class_path": "record_apps.Generator"},
                       "caller": {"class_path": "record_apps.Caller"},
                       "doubler": {"class_path": "record_apps.Doubler"}})
    doubled = ether.listen("doubled", timeout=20)
    ether.start(n=3)
    assert sorted(next(doubled)["i"] for _ in range(3)) == [0, 2, 4]
    ether.shutdown()
    rec = open_recording(folder)
    calls = "ether/service/Doubler.double/"
    requests = list(rec.messages(calls + "request"))
    replies = list(rec.messages(calls + "reply"))
    assert len(requests) == len(replies) == 3
    reply = next(r for r in replies if r.data["result"] == 4)
    assert reply.data["status"] == "success" and reply.data["instance"] == "doubler"
    steps = rec.lineage(reply)
    assert [(s["topic"], s["instance"]) for s in steps] == [
        (calls + "reply", "doubler"), (calls + "request", "caller"), ("data", "gen"),
        ("start", "main")]
    assert [s["method"] for s in steps[:3]] == ["double", "on_data", "go"]
    request = steps[1]["message"]
    assert request.data["params"] == {"i": 2} and request.data["id"] == reply.data["id"]
    assert request.data["caller"] == "caller" and request.data["server"] == "doubler"
    assert steps[2]["message"].data == {"i": 2}
    assert steps[0]["class_path"] == "record_apps.Doubler"
    # the reply is among what the data message caused, next to the caller's result
    below = {(m.topic, m.sender) for m in rec.descendants(steps[2]["message"])}
    assert below == {(calls + "request", "caller"), (calls + "reply", "doubler"),
                     ("doubled", "caller")}


@pytest.mark.timeout(60)
def test_a_selection_without_the_service_topics_records_no_calls(recorded):
    folder = recorded({"gen": {"class_path": "record_apps.Generator"},
                       "caller": {"class_path": "record_apps.Caller"},
                       "doubler": {"class_path": "record_apps.Doubler"}},
                      all=False, topics=["data", "doubled"])
    doubled = ether.listen("doubled", timeout=20)
    ether.start(n=2)
    next(doubled), next(doubled)
    ether.shutdown()
    assert open_recording(folder).topics() == ["data", "doubled"]


@pytest.mark.timeout(60)
def test_three_interleaved_trials_are_separated_by_their_trace(recorded):
    folder = recorded({"stage": {"class_path": "record_apps.Stage"}})
    out = ether.listen("stage2", timeout=20)
    trials = [ether.trial(t, speed=t * 10) for t in (1, 2, 3)]
    entered = [t.__enter__() for t in trials]       # open all three, then interleave
    for i in range(9):
        from ether.lowlevel import default_client
        with default_client().node.handling(entered[i % 3]):
            ether.pub({"i": i}, topic="data")
    for t in reversed(trials):
        t.__exit__(None, None, None)
    with ether.trial(4):
        ether.start(n=0)
    for _ in range(9):
        next(out)
    ether.shutdown()
    rec = open_recording(folder)
    for t in (1, 2, 3):
        got = [(m.topic, m.data.get("i")) for m in rec.messages(trial=t)]
        data = [("data", i) for i in range(t - 1, 9, 3)]
        stage = [("stage2", i * 2) for i in range(t - 1, 9, 3)]
        assert sorted(x for x in got if x[0] == "data") == data
        assert sorted(x for x in got if x[0] == "stage2") == stage
        assert ("ether/trial", None) in got            # its start and its end
    starts = [m.data for m in rec.messages("ether/trial") if m.data["event"] == "start"]
    assert [s["trial"] for s in starts] == [1, 2, 3, 4] and starts[1]["params"] == {"speed": 20}
    assert [m.topic for m in rec.messages(trial=4)] == ["ether/trial", "start", "ether/trial"]


@pytest.mark.timeout(60)
def test_start_with_a_trial_makes_the_start_its_trace(recorded):
    folder = recorded({"gen": {"class_path": "record_apps.Generator"},
                       "stage": {"class_path": "record_apps.Stage"}})
    out = ether.listen("stage2", timeout=20)
    ether.start(trial=7, n=2)
    next(out), next(out)
    ether.start(n=1)
    next(out)
    ether.shutdown()
    rec = open_recording(folder)
    assert sorted(m.data["i"] for m in rec.messages("stage2", trial=7)) == [0, 2]
    assert [m.data for m in rec.messages("start", trial=7)] == [{"n": 2}]


def recorder_pid(name="recorder") -> int:
    from ether.lowlevel import inspect
    return next(m.pid for m in inspect(ether.session).members if m.name == name)


@pytest.mark.timeout(90)
def test_drop_policy_counts_what_the_inbox_dropped_per_topic(recorded):
    folder = recorded({}, policy="drop", topics=["t*"], all=False)
    pid = recorder_pid()
    os.kill(pid, signal.SIGSTOP)           # a recorder that cannot keep up
    try:
        pad = "x" * 1000
        for i in range(8000):              # 8 MB into a 4 MiB inbox
            ether.pub({"i": i, "pad": pad}, topic=f"t{i % 3 // 2}")   # t0 twice as often as t1
    finally:
        os.kill(pid, signal.SIGCONT)
    sent = {(s.inbox, s.policy): s for s in ether.statistics()}[("recorder", "drop")]
    assert sent.dropped > 0
    from ether.lowlevel import inspect
    inbox = next(i for i in inspect(ether.session).inboxes if i.name == "recorder")
    assert inbox.dropped == sent.dropped        # the inbox's own count, in shared memory
    ether.shutdown()
    rec = open_recording(folder)
    got = {t: [m.data["i"] for m in rec.messages(t)] for t in ("t0", "t1")}
    published = {"t0": [i for i in range(8000) if i % 3 != 2], "t1": list(range(2, 8000, 3))}
    assert rec.dropped() == sent.dropped
    by_topic = rec.dropped_by_topic()
    for t in ("t0", "t1"):
        assert got[t] == sorted(got[t]) and set(got[t]) <= set(published[t])
        assert by_topic.get(t, 0) == len(published[t]) - len(got[t]), (t, by_topic)
    assert sum(by_topic.values()) == sent.dropped
    info = subprocess.run([sys.executable, "-m", "ether", "bag", "info", str(folder)],
                          capture_output=True, text=True)
    assert "INCOMPLETE" in info.stdout and f"{sent.dropped} dropped" in info.stdout, info
    t0 = next(line for line in info.stdout.splitlines() if line.strip().startswith("t0 "))
    assert t0.endswith(f"{by_topic['t0']} dropped"), info.stdout
    summary = json.loads(subprocess.run([sys.executable, "-m", "ether", "bag", "info", str(folder),
                                         "--json"], capture_output=True, text=True).stdout)
    assert {t: summary["topics"][t]["dropped"] for t in ("t0", "t1")} == \
        {t: by_topic.get(t, 0) for t in ("t0", "t1")}


@pytest.mark.timeout(90)
def test_splits_by_size_hold_every_message_once(recorded):
    folder = recorded({"source": {"class_path": "record_apps.Source"}}, split_size=64 * 1024)
    done = ether.listen("done", timeout=30)
    ether.start(n=20000)
    next(done)
    ether.shutdown()
    files = sorted(folder.glob("*.mcap"))
    # A split is judged at each chunk's end (every 0.1 s or 1 MiB), so how many
    # there are depends on the machine's speed; that it split, and lost nothing, not.
    assert len(files) >= 2
    for f in files:   # every closed split is complete
        assert open_recording(f).status == "complete"
    rec = open_recording(folder)
    got = sorted(m.data["i"] for m in rec.messages() if m.topic.startswith("t"))
    assert got == list(range(20000))
    assert sum(v for k, v in oracle(folder).items() if k.startswith("t")) == 20000
