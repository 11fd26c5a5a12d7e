"""The observing verbs (`ether ps`, `topics`, `echo`, `hz`, `call`, `logs`, ...)
called through main(argv) against a live session this test starts. Other
engineers' sessions may live on the same host, so every call names its session."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from ether import ether, lowlevel
from ether.cli import main

from conftest import shm_objects, wait_for

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))



def run(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def in_thread(*argv):
    """main(argv) in a thread: (thread, result list with the exit code once done)."""
    result = []
    thread = threading.Thread(target=lambda: result.append(main(list(argv))), daemon=True)
    thread.start()
    return thread, result


def wait_subscribed(sid: str, verb: str, topic: str) -> None:
    """Until the verb's own inbox subscribes to topic (it joins as ether-<verb>-<pid>)."""
    inbox = f"ether-{verb}-{os.getpid()}-"
    assert wait_for(lambda: any(s.inbox.startswith(inbox) and s.topic == topic
                                for s in lowlevel.inspect(sid).subscriptions), 10.0) is not None


@pytest.mark.timeout(60)
def test_ps_json_gives_the_real_pids_and_counters(live, capsys):
    assert ether.get("ticker", "burst", params={"count": 50}) == {"sent": 50}
    code, out, err = run(capsys, "ps", "--json", "--session", live)
    assert code == 0, err
    rows = {r["instance"]: r for r in lines(out)}
    assert set(rows) == {"main", "ticker", "scaler", "sink"}
    assert rows["main"]["pid"] == os.getpid()
    for name in ("ticker", "scaler", "sink"):
        assert rows[name]["pid"] == ether.get(name, "pid"), name
        assert rows[name]["class"] == f"observe_apps.{name.capitalize()}"
        assert rows[name]["state"] == "ready"   # the supervisor's word, from the directory
        assert rows[name]["rss_bytes"] > 0 and rows[name]["uptime_s"] >= 0
        assert 0 <= rows[name]["inbox_fill"] <= 1
    assert rows["ticker"]["published"] == 50
    assert rows["ticker"]["errors"] == 0 and rows["scaler"]["dropped"] == 0
    code, out, err = run(capsys, "ps", "--session", live)  # the table
    assert code == 0 and "INSTANCE" in out and "observe_apps.Ticker" in out


@pytest.mark.timeout(60)
def test_topics_json_lists_every_subscription_and_publisher(live, capsys):
    code, out, err = run(capsys, "topics", "--json", "--session", live, "--wait", "0")
    assert code == 0, err
    rows = {r["topic"]: r for r in lines(out)}
    subs = {(r["topic"], s["inbox"], s["policy"], s["timeout"]) for r in rows.values() for s in r["subscribers"]}
    assert subs == {("ticks", "scaler", "block", 5.0), ("scaled", "sink", "drop", 5.0),
                    ("frames", "sink", "block", 5.0)}
    assert rows["ticks"]["publishers"] == ["ticker"] and rows["scaled"]["publishers"] == ["scaler"]
    code, out, err = run(capsys, "services", "--json", "--session", live)
    assert code == 0, err
    served = {(r["service"], r["method"]): r["served_by"] for r in lines(out)}
    assert served[("Ticker", "burst")] == ["ticker"] and served[("scaler", "describe")] == ["scaler"]


@pytest.mark.timeout(60)
def test_topics_rates_and_topic_info_come_from_the_stats_topic(live, capsys):
    done = threading.Event()

    def publish():  # a steady publisher while topics samples the rates
        n = 0
        while not done.is_set():
            ether.pub({"n": n}, topic="ticks")
            n += 1
            done.wait(0.002)

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    try:
        code, out, err = run(capsys, "topics", "--json", "--session", live)
        assert code == 0, err
        ticks = {r["topic"]: r for r in lines(out)}["ticks"]
        assert ticks["published"] > 0 and ticks["rate_hz"] > 0
        assert "main" in ticks["publishers"]  # published with ether.pub: no advert, but counted
        code, out, err = run(capsys, "topic", "info", "ticks", "--json", "--session", live)
        assert code == 0, err
        (info,) = lines(out)
        assert info["sampled"] > 0 and info["size_min"] > 0 and info["last_message_ns"] > 0
        assert [(s["inbox"], s["policy"]) for s in info["subscribers"]] == [("scaler", "block")]
    finally:
        done.set()
        publisher.join(10)
    code, out, err = run(capsys, "topic", "info", "nobody", "--session", live, "--sample", "0.1")
    assert code == 1 and "nobody publishes or subscribes to 'nobody'" in err and "ticks" in err


@pytest.mark.timeout(60)
def test_echo_once_json_equals_what_was_published(live, capsys):
    thread, result = in_thread("echo", "probe", "--once", "--json", "--session", live, "--timeout", "20")
    wait_subscribed(live, "echo", "probe")
    message = {"x": 1, "name": "a", "nested": {"k": [1, 2]}, "f": 0.5, "none": None}
    ether.pub(message, topic="probe")
    thread.join(20)
    assert result == [0]
    (line,) = lines(capsys.readouterr().out)
    assert line["data"] == message and line["topic"] == "probe" and line["sender"] == "main"

    thread, result = in_thread("echo", "probe", "-n", "2", "--json", "--session", live,
                               "--field", "frame", "--timeout", "20")
    wait_subscribed(live, "echo", "probe")
    big = np.arange(100_000, dtype=np.float32).reshape(100, 1000)  # through the arena
    ether.pub({"frame": big}, topic="probe")
    ether.pub({"frame": np.array([1, 2, 3], dtype=np.int16)}, topic="probe")
    thread.join(20)
    assert result == [0]
    first, second = (r["data"] for r in lines(capsys.readouterr().out))
    assert first == {"dtype": "float32", "shape": [100, 1000], "min": 0.0, "max": 99999.0,
                     "mean": pytest.approx(49999.5)}
    assert second == {"dtype": "int16", "shape": [3], "min": 1.0, "max": 3.0, "mean": 2.0}


@pytest.mark.timeout(60)
def test_echo_full_and_a_missing_field(live, capsys):
    thread, result = in_thread("echo", "probe", "-n", "2", "--json", "--full", "--session", live,
                               "--field", "a.b", "--timeout", "20")
    wait_subscribed(live, "echo", "probe")
    ether.pub({"a": {"b": np.array([[1, 2], [3, 4]])}}, topic="probe")
    ether.pub({"a": {}}, topic="probe")
    thread.join(20)
    assert result == [0]
    first, second = (r["data"] for r in lines(capsys.readouterr().out))
    assert first == [[1, 2], [3, 4]]
    assert second == {"error": "the message has no field 'a.b' (no 'b')"}


@pytest.mark.timeout(60)
def test_echo_past_its_rate_pauses_its_subscription_and_says_so(live, capsys):
    thread, result = in_thread("echo", "probe", "--json", "--session", live, "--rate", "20",
                               "--timeout", "1.5")
    wait_subscribed(live, "echo", "probe")
    for i in range(2000):
        ether.pub({"i": i}, topic="probe")
    # Once 20 are taken, echo leaves the topic until its next second.
    assert wait_for(lambda: not any(s.topic == "probe" and s.inbox.startswith(f"ether-echo-{os.getpid()}-")
                                    for s in lowlevel.inspect(live).subscriptions), 10.0) is not None
    thread.join(20)
    assert result == [0]
    captured = capsys.readouterr()
    shown = [r["data"]["i"] for r in lines(captured.out)]
    assert 20 <= len(shown) <= 40 and shown == sorted(shown)  # the first of each second, in order
    assert shown[:20] == list(range(20))
    assert "paused its subscription" in captured.err and "--rate 0" in captured.err


def heard_from(names):
    """A stats watcher of the test's own: once it has a report from each of
    `names`, those nodes count per topic for every watcher subscribed before it."""
    reports, cond = set(), threading.Condition()

    def on(report):
        with cond:
            reports.add(report.get("instance"))
            cond.notify_all()
    unsubscribe = lowlevel.default_client().subscribe(lowlevel.STATS_TOPIC, on, policy="drop")
    with cond:
        ok = cond.wait_for(lambda: set(names) <= reports, 10.0)
    unsubscribe()
    assert ok, f"no stats report from {set(names) - reports}"


@pytest.mark.timeout(60)
def test_hz_and_bw_count_a_publisher_of_known_count(live, capsys):
    # By default from the publishers' counts on the stats topic.
    thread, result = in_thread("hz", "ticks", "--json", "--session", live, "--idle", "2.5")
    wait_subscribed(live, "hz", lowlevel.STATS_TOPIC)
    heard_from(["ticker"])
    assert ether.get("ticker", "burst", params={"count": 300}) == {"sent": 300}
    thread.join(30)
    assert result == [0]
    (report,) = [r for r in lines(capsys.readouterr().out) if r["final"]]
    assert report["topic"] == "ticks" and report["count"] == 300 and report["dropped"] == 0
    assert report["source"] == "stats" and report["rate_hz"] > 0

    thread, result = in_thread("bw", "frames", "--json", "--session", live, "--idle", "2.5")
    wait_subscribed(live, "bw", lowlevel.STATS_TOPIC)
    heard_from(["main"])
    for _ in range(4):
        ether.pub({"frame": np.zeros(250_000, dtype=np.uint8)}, topic="frames")
    thread.join(30)
    assert result == [0]
    (report,) = [r for r in lines(capsys.readouterr().out) if r["final"]]
    assert report["count"] == 4 and report["bytes"] >= 4 * 250_000  # arena arrays at their size


@pytest.mark.timeout(60)
def test_hz_and_bw_with_intervals_subscribe_and_count_every_message(live, capsys):
    thread, result = in_thread("hz", "ticks", "--intervals", "--json", "--session", live, "--idle", "1.0")
    wait_subscribed(live, "hz", "ticks")
    assert ether.get("ticker", "burst", params={"count": 300}) == {"sent": 300}
    thread.join(30)
    assert result == [0]
    (report,) = [r for r in lines(capsys.readouterr().out) if r["final"]]
    assert report["topic"] == "ticks" and report["count"] == 300 and report["dropped"] == 0
    assert report["rate_hz"] > 0 and report["min_interval_s"] >= 0

    thread, result = in_thread("bw", "frames", "--intervals", "--json", "--session", live, "--idle", "1.0")
    wait_subscribed(live, "bw", "frames")
    for _ in range(4):
        ether.pub({"frame": np.zeros(250_000, dtype=np.uint8)}, topic="frames")
    thread.join(30)
    assert result == [0]
    (report,) = [r for r in lines(capsys.readouterr().out) if r["final"]]
    assert report["count"] == 4 and report["bytes"] >= 4 * 250_000


@pytest.mark.timeout(60)
def test_hz_names_what_it_could_not_count(live, capsys):
    code, out, err = run(capsys, "hz", "nothing-here", "--json", "--session", live, "--duration", "1.2")
    assert code == 0
    (report,) = [r for r in lines(out) if r["final"]]
    assert report["count"] == 0 and report["rate_hz"] in (None, 0.0)
    assert "nothing counted on 'nothing-here'" in err and "--intervals" in err


@pytest.mark.timeout(60)
def test_call_prints_the_reply_or_the_remote_error(live, capsys):
    code, out, err = run(capsys, "call", "scaler", "describe", '{"verbose": true}', "--session", live)
    assert code == 0, err
    assert json.loads(out) == {"factor": 3, "verbose": True}
    code, out, err = run(capsys, "call", "Scaler", "fail", "--session", live)
    assert code == 1 and "ValueError: asked to fail" in err and out == ""
    code, out, err = run(capsys, "call", "scaler", "describe", "{nope", "--session", live)
    assert code == 2 and "the parameters is not JSON" in err
    code, out, err = run(capsys, "call", "nobody", "x", "--session", live, "--timeout", "1")
    assert code == 1 and "ServiceNotFound" in err


@pytest.mark.timeout(60)
def test_pub_reaches_a_subscriber(live, capsys):
    with ether.listen("probe", timeout=10) as messages:
        code, out, err = run(capsys, "pub", "probe", '{"x": 5}', "-n", "3", "--session", live)
        assert code == 0, err
        got = [m for _, m in zip(range(3), messages)]
    assert got == [{"x": 5}] * 3
    code, out, err = run(capsys, "pub", "ether/stats", "{}", "--session", live)
    assert code == 2 and "reserved prefix" in err
    code, out, err = run(capsys, "pub", "probe", "[1]", "--session", live)
    assert code == 2 and "must be a JSON object" in err


@pytest.mark.timeout(60)
def test_logs_grep_finds_a_line_a_handler_logged(live, capsys):
    assert ether.get("ticker", "burst", params={"count": 50}) == {"sent": 50}
    ether.get("scaler", "describe")  # queued behind the ticks: they are handled (and logged)
    code, out, err = run(capsys, "logs", "--session", live, "--grep", r"saw tick 4\d", "--json")
    assert code == 0, err
    (record,) = lines(out)
    assert record["instance"] == "scaler" and record["message"] == "scaler saw tick 40"
    assert record["level"] == "INFO" and record["pid"] == ether.get("scaler", "pid")
    code, out, err = run(capsys, "logs", "scaler", "--session", live, "--level", "error")
    assert code == 0 and out == ""
    code, out, err = run(capsys, "logs", "nobody", "--session", live)
    assert code == 2 and "no log of 'nobody'" in err and "scaler" in err
    # merged by time: the main's start-up line comes before the scaler's
    code, out, err = run(capsys, "logs", "--session", live, "--json")
    records = lines(out)
    assert [r["time"] for r in records] == sorted(r["time"] for r in records)
    assert {"session", "scaler"} <= {r["instance"] for r in records}


@pytest.mark.timeout(60)
def test_top_once_json(live, capsys):
    code, out, err = run(capsys, "top", "--once", "--json", "--session", live)
    assert code == 0, err
    rows = {r["instance"]: r for r in lines(out)}
    assert set(rows) == {"main", "ticker", "scaler", "sink"}
    assert rows["sink"]["pid"] == ether.get("sink", "pid")
    assert rows["sink"]["handled_hz"] is not None  # two reports: a rate


@pytest.mark.timeout(60)
def test_cleanup_removes_a_killed_sessions_leftovers_and_nothing_live(live, capsys):
    # A process that makes a session and is killed before it can clean up.
    code = ("import os, signal, sys; from ether import lowlevel; s = lowlevel.Session.create(); "
            "s.create_inbox('x', capacity=1 << 16, max_length=1024); print(s.name, flush=True); "
            "sys.stdin.read(); os.kill(os.getpid(), signal.SIGKILL)")
    with subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as victim:
        dead = victim.stdout.readline().strip()
        left = shm_objects(dead)
        assert left
        victim.stdin.close()
        assert victim.wait(10) == -signal.SIGKILL
    before = shm_objects(live)
    code, out, err = run(capsys, "cleanup", "--dry-run", "--json")
    assert code == 0 and dead in {r["session"] for r in lines(out)} and shm_objects(dead)
    code, out, err = run(capsys, "cleanup", "--json")
    assert code == 0, err
    rows = {r["session"]: r for r in lines(out)}
    assert live not in rows
    assert sorted(rows[dead]["objects"]) == left
    assert shm_objects(dead) == []
    assert shm_objects(live) == before
    assert ether.get("sink", "count")["seen"] >= 0  # the live session still serves


VERBS = [["ps"], ["top", "--once"], ["topics"], ["topic", "info", "x"], ["services"], ["echo", "x"],
         ["hz", "x"], ["bw", "x"], ["pub", "x"], ["call", "a", "b"], ["logs"], ["monitor"]]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("verb", VERBS, ids=lambda v: v[0] if v[0] != "topic" else "topic-info")
def test_an_unknown_session_exits_2_naming_the_live_ones(verb, live, capsys):
    code, out, err = run(capsys, *verb, "--session", "nosuch0")
    assert code == 2
    assert "no live session named 'nosuch0'" in err and live in err


@pytest.mark.timeout(60)
def test_site_without_a_bridge_says_it_needs_one(live, capsys):
    code, out, err = run(capsys, "ps", "--session", live, "--site")
    assert code == 2 and "needs the site's bridge" in err and live in err


@pytest.mark.timeout(60)
def test_doctor_checks_and_versions(capsys):
    code, out, err = run(capsys, "doctor", "--json")
    checks = {r["check"]: r for r in lines(out)}
    assert {"shm", "remove_ipc", "stale_sessions", "log_disk", "record_disk", "ulimits", "versions",
            "extra:cli", "extra:monitor", "extra:remote", "certificates"} <= set(checks)
    assert checks["versions"]["status"] == "ok" and checks["versions"]["ether"]
    assert checks["extra:cli"]["status"] == "ok"
    assert code == (1 if any(c["status"] == "fail" for c in checks.values()) else 0)


@pytest.mark.timeout(60)
def test_doctor_reports_a_too_small_dev_shm_in_a_private_mount_namespace():
    script = (f"mount -t tmpfs -o size=2m tmpfs /dev/shm && cd {TESTS} && "
              f"exec {sys.executable} -m ether doctor --json")
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a private mount namespace here: {probe.stderr.strip()}")
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60)
    checks = {r["check"]: r for r in lines(proc.stdout)}
    assert proc.returncode == 1, proc.stderr
    shm = checks["shm"]
    assert shm["status"] == "fail" and shm["total_bytes"] == 2 << 20
    assert "needs" in shm["detail"] and "enlarge it" in shm["detail"]


@pytest.mark.timeout(60)
def test_help_lists_every_verb_and_version_works():
    proc = subprocess.run([sys.executable, "-m", "ether", "--help"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0
    for verb in ("run", "ps", "top", "topics", "topic", "services", "echo", "hz", "bw", "pub", "call",
                 "logs", "doctor", "cleanup", "monitor"):
        assert f"\n    {verb} " in proc.stdout, verb
    proc = subprocess.run([sys.executable, "-m", "ether", "--version"], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0 and proc.stdout.startswith("ether ")
