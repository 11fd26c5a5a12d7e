"""What a recording keeps when something dies: the recorder (SIGKILL), the main
process (SIGKILL), a publisher; and a replay of what was kept."""
import os
import pathlib
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from ether import ether
from ether.lowlevel import inspect
from ether.record._bag import recover
from ether.recording import open as open_recording

from conftest import shm_objects, wait_for
from mcap.reader import make_reader

ROOT = pathlib.Path(__file__).resolve().parents[2]
KILLS = int(os.environ.get("ETHER_RECORD_KILLS", "3"))



def pid_of(name):
    return next(m.pid for m in inspect(ether.session).members if m.name == name)


def count_on_disk(folder, topic):
    try:
        rec = open_recording(folder)
    except FileNotFoundError:
        return 0
    try:
        return sum(1 for _ in rec.messages(topic))
    finally:
        rec.close()


def records_on_disk(folder, topic):
    """count_on_disk without decoding a message: the kill test's poll, kept
    cheap so that its own CPU does not starve the recorder it measures."""
    try:
        rec = open_recording(folder)
    except FileNotFoundError:
        return 0
    try:
        return sum(1 for f in rec.files for _ in f.records(topics={topic}))
    finally:
        rec.close()


def gone(pid):
    """The process has exited (a zombie its parent has not reaped counts)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@pytest.mark.timeout(60)
def test_a_killed_recorder_has_written_what_it_got_one_flush_interval_earlier(recorded, tmp_path):
    folder = recorded({})
    for i in range(500):
        ether.pub({"i": i}, topic="idle")
    # Nothing else comes: only the flusher writes the last chunk, within 0.1 s.
    assert wait_for(lambda: count_on_disk(folder, "idle") == 500, 10) is not None
    pid = pid_of("recorder")
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: gone(pid), 10) is not None
    (path,) = folder.glob("*.mcap")
    rec = open_recording(path)
    assert rec.status == "truncated"
    assert [m.data["i"] for m in rec.messages("idle")] == list(range(500))
    code, text = recover(path, tmp_path / "fixed.mcap")
    assert code == 0, text
    with open(tmp_path / "fixed.mcap", "rb") as f:
        counts = {}
        for _, channel, _ in make_reader(f, validate_crcs=True).iter_messages():
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
    assert counts["idle"] == 500


FLUSH_S = 0.1
# The loss window's allowance beyond the flush interval: one batch being handled
# and the scheduling of a loaded 2-core machine (the benchmark's R5 measures the
# window itself; here it must only stay bounded).
SLACK_S = float(os.environ.get("ETHER_RECORD_SLACK_S", "0.5"))
# Records of the recorder's inbox that are not messages of the file (control).
CONTROL = 8


class Received:
    """Samples (monotonic time, records the recorder has read from its inbox)
    every 5 ms, in a process of its own (tests/inbox_sampler.py), until ended:
    what was handed to it, and when."""

    def __init__(self, session, path, inbox="recorder"):
        self.path = path
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "inbox_sampler.py"), session, inbox, str(path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline() == "ready\n"
        self.samples = []

    def end(self):
        self.process.stdin.close()            # its signal to stop
        self.process.wait(10)
        self.process.stdout.close()
        with open(self.path) as f:
            self.samples = [(float(t), int(n)) for t, n in (line.split() for line in f)]

    def window(self, kill_time, on_disk):
        """Seconds before the kill since which what the recorder read may be
        missing from the file: the last moment it had read no more than is on
        disk, plus CONTROL records (its inbox also reads a few control records,
        which no file holds; without the allowance, one of them read just after
        a chunk was written makes a window as long as the pause before it)."""
        covered = max((t for t, n in self.samples if n <= on_disk + CONTROL and t <= kill_time),
                      default=None)
        assert covered is not None, "no sample before the recorder had read its first message"
        return kill_time - covered


@pytest.mark.timeout(30 + 15 * KILLS)
def test_a_recorder_killed_at_random_leaves_a_gapless_prefix_per_sender(tmp_path):
    rng = random.Random(12)
    windows = []
    for run in range(KILLS):
        folder = tmp_path / f"rec{run}"
        ether.tap(config={"instances": {"steady": {"class_path": "record_apps.Steady"}},
                          "record": {"output": str(folder), "topics": ["steady"],
                                     "flush_interval_s": FLUSH_S}})
        sid = ether.session
        received = Received(sid, tmp_path / f"received{run}.txt")
        try:
            ether.start()
            assert wait_for(lambda: records_on_disk(folder, "steady") > 0, 10) is not None
            threshold = records_on_disk(folder, "steady") + rng.randrange(0, 3000)
            wait_for(lambda: records_on_disk(folder, "steady") >= threshold, 5)
            killed_at = time.monotonic()
            os.kill(pid_of("recorder"), signal.SIGKILL)
        finally:
            received.end()
            ether.shutdown()
        assert shm_objects(sid) == []
        (path,) = folder.glob("*.mcap")
        rec = open_recording(path)
        got = [m.data["i"] for m in rec.messages("steady")]
        assert got == list(range(len(got))) and len(got) >= threshold - 3000
        windows.append(received.window(killed_at, len(got)))
        code, _ = recover(path, folder / "fixed.mcap.tmp")
        assert code in (0, 3)
        rec.close()
    print(f"\n{KILLS} kills: loss window max {max(windows):.3f} s, median "
          f"{sorted(windows)[len(windows) // 2]:.3f} s (bound {FLUSH_S} s + {SLACK_S} s)")
    assert max(windows) <= FLUSH_S + SLACK_S, windows


VICTIM = """
import sys, threading
sys.path[:0] = [{root!r}, {tests!r}]
from ether import ether
ether.tap(config={{"instances": {{"steady": {{"class_path": "record_apps.Steady"}}}},
                  "record": {{"output": {folder!r}, "all": True}}}})
ether.start()
print(ether.session, flush=True)
threading.Event().wait()
"""


@pytest.mark.timeout(60)
def test_when_the_main_is_killed_the_recorder_drains_and_closes_a_complete_file(tmp_path):
    folder = tmp_path / "rec"
    code = VICTIM.format(root=str(ROOT / "src"), tests=str(ROOT / "tests"), folder=str(folder))
    main = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                            text=True)
    try:
        sid = main.stdout.readline().strip()
        assert sid
        members = {m.name: m.pid for m in inspect(sid).members}
        assert wait_for(lambda: count_on_disk(folder, "steady") > 1000, 20) is not None
        main.kill()
        main.wait(10)
        assert wait_for(lambda: gone(members["recorder"]), 10) is not None
    finally:
        if main.poll() is None:
            main.kill()
            main.wait()
        main.stdout.close()
    rec = open_recording(folder)
    assert rec.status == "complete"
    assert rec.metadata["ether.recording.end"]["status"] == "complete"
    got = [m.data["i"] for m in rec.messages("steady")]
    assert got == list(range(len(got))) and len(got) > 1000
    assert wait_for(lambda: shm_objects(sid) == [], 10) is not None


@pytest.mark.timeout(60)
def test_a_publisher_that_crashes_leaves_its_messages_and_the_recording_goes_on(recorded):
    folder = recorded({"steady": {"class_path": "record_apps.Steady"}}, topics=["steady", "after"],
                      all=False)
    ether.start()
    assert wait_for(lambda: count_on_disk(folder, "steady") > 500, 10) is not None
    os.kill(pid_of("steady"), signal.SIGKILL)
    for i in range(100):
        ether.pub({"i": i}, topic="after")
    ether.shutdown()
    rec = open_recording(folder)
    got = [m.data["i"] for m in rec.messages("steady")]
    assert got == list(range(len(got))) and len(got) > 500
    assert [m.data["i"] for m in rec.messages("after")] == list(range(100))
    assert rec.status == "complete"


@pytest.mark.timeout(60)
def test_a_replay_gives_the_same_payloads_in_order_keeps_causes_and_filters_exactly(recorded):
    from ether.lowlevel import Client, MessageId, default_client
    from ether.record._player import play
    folder = recorded({"gen": {"class_path": "record_apps.Generator"},
                       "stage": {"class_path": "record_apps.Stage"}})
    out = ether.listen("stage2", timeout=20)
    ether.start(n=20)
    for _ in range(20):
        next(out)
    ether.shutdown()
    rec = open_recording(folder)
    want = {t: [m.data for m in rec.messages(t)] for t in ("data", "stage2")}
    ether.tap(config={})
    try:
        got, envelopes = {"data": [], "stage2": []}, []
        client = default_client()
        done = threading.Event()

        def on(envelope):
            envelopes.append(envelope)
            got[envelope.topic].append(client.node.decoders.payload_dict(envelope))
            if sum(map(len, got.values())) == 40:
                done.set()

        client.subscribe("data", on, envelopes=True)
        client.subscribe("stage2", on, envelopes=True)
        assert play(folder, client, rate=0, topics=["data", "stage2"]) == 40
        assert done.wait(10)
        assert got == want
        by_id = {(e.sender, e.seq): e for e in envelopes}
        for e in envelopes:
            if e.topic == "stage2":
                assert by_id[(e.cause.sender, e.cause.seq)].topic == "data"
            assert client.node.origin_of(e).run == rec.files[0].run   # its recorded run
            assert e.replay_of == MessageId(e.sender, e.seq, rec.files[0].run)
        first = list(rec.messages("data"))
        start, end = first[5].log_time_ns, first[10].log_time_ns
        envelopes.clear()
        got["data"].clear()
        assert play(folder, client, rate=0, topics=["data"], start=start, end=end) == 5
        assert wait_for(lambda: len(got["data"]) == 5, 10) is not None
        assert [g["i"] for g in got["data"]] == [5, 6, 7, 8, 9]
    finally:
        ether.shutdown()


@pytest.mark.timeout(90)
def test_a_recorded_replay_keeps_replay_of_and_its_arrays_and_a_replay_of_it_names_the_first(
        recorded, tmp_path):
    import numpy as np
    from ether.lowlevel import default_client
    from ether.record._player import play
    folder = recorded({"source": {"class_path": "record_apps.Source"}})
    done = ether.listen("done", timeout=30)
    ether.start(n=8, arrays=12)
    next(done)
    ether.shutdown()
    first = open_recording(folder)
    topics = ["t0", "arrays", "loaned"]
    original = {t: list(first.messages(t)) for t in topics}
    assert len(original["loaned"]) == 2 and len(original["arrays"]) == 12
    again = [tmp_path / "replayed", tmp_path / "replayed-again"]
    for source, target in ((folder, again[0]), (again[0], again[1])):
        ether.tap(config={"record": {"output": str(target), "topics": topics}})
        try:
            assert play(source, default_client(), rate=0, topics=topics) == 16
        finally:
            ether.shutdown()        # the recorder drains what was delivered, then closes
        replayed = open_recording(target)
        assert replayed.status == "complete"
        for t in topics:
            got = list(replayed.messages(t))
            assert [(m.sender, m.seq) for m in got] == [(m.sender, m.seq) for m in original[t]]
            for m, o in zip(got, original[t]):
                assert m.replay_of == (first.files[0].run, o.sender, o.seq)   # the first original
                assert m.run == first.files[0].run
                for key, value in o.data.items():
                    assert np.array_equal(m.data[key], value)
