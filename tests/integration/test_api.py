"""The ether facade with instances in their own processes."""
import os
import pathlib
import select
import signal
import subprocess
import sys
import textwrap

import pytest

import ether as ether_pkg
from ether import ether

from conftest import shm_objects

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def tapped():
    """Tap a config; shut down after the test and check nothing is left."""
    sessions = []

    def tap(instances, **kw):
        ether.tap(config={"instances": instances}, **kw)
        sessions.append(ether.session)

    yield tap
    ether.shutdown()
    for sid in sessions:
        assert shm_objects(sid) == [], f"session {sid} left shared memory behind"


def _pids_of(session):
    return {int(line.split()[0]) for line in subprocess.run(
        ["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout.splitlines()
        if f"ether:{session}" in line}


def test_messages_flow_through_instances_and_back(tapped):
    tapped({"doubler": {"class_path": "apps.Doubler"}})
    replies = ether.listen("doubled", timeout=10)
    ether.pub({"x": 21, "label": "a"}, topic="numbers")
    reply = next(replies)
    assert reply["x"] == 42 and reply["label"] == "a"
    assert reply["pid"] != os.getpid()


def test_an_instance_survives_a_bad_message_and_a_handler_exception(tapped, capfd):
    tapped({"doubler": {"class_path": "apps.Doubler"}})
    replies = ether.listen("doubled", timeout=10)
    ether.pub({"x": "not a number"}, topic="numbers")   # fails validation
    ether.pub({"x": 13}, topic="numbers")               # the handler raises
    ether.pub({"label": "no x"}, topic="numbers")       # a required field is missing
    ether.pub({"x": "7"}, topic="numbers")              # coerced to 7
    assert next(replies)["x"] == 14
    ether.shutdown()
    err = capfd.readouterr().err
    assert "instance 'doubler', double() on topic 'numbers'" in err
    assert "field 'x': Expected `int`, got `str`" in err
    assert "RuntimeError: unlucky number" in err
    assert "missing required field `x`" in err


def test_struct_and_pydantic_parameters_and_extra_keys(tapped):
    tapped({"shapes": {"class_path": "apps.Shapes"}})
    areas = ether.listen("areas", timeout=10)
    ether.pub({"point": {"x": 1, "y": 2.5}, "box": {"width": 3, "height": "4"}, "tag": 1},
              topic="shapes")
    assert next(areas) == {"area": 12, "point": [1.0, 2.5], "extra": ["tag"]}


def test_every_handler_on_a_topic_runs_and_default_topics(tapped):
    tapped({"two": {"class_path": "apps.TwoHandlers"}})
    pongs = ether.listen("pong", timeout=10)
    ether.pub({"n": 5}, topic="ping")
    got = sorted(m["by"] for m in (next(pongs), next(pongs)))
    assert got == ["first", "second"]
    ether.pub(None, topic="TwoHandlers.direct")
    assert next(pongs) == {}


def test_subscribe_in_the_main_process(tapped):
    import threading
    tapped({"doubler": {"class_path": "apps.Doubler"}})
    got, done = [], threading.Event()

    def on_doubled(message):
        got.append(message["x"])
        if len(got) == 3:
            done.set()

    unsubscribe = ether.subscribe("doubled", on_doubled)
    for x in (1, 2, 3):
        ether.pub({"x": x}, topic="numbers")
    assert done.wait(10)
    assert got == [2, 4, 6]
    unsubscribe()


def test_a_second_tap_does_nothing_and_restart_restarts(tapped):
    tapped({"doubler": {"class_path": "apps.Doubler"}})
    first = ether.session
    ether.tap(config={"instances": {"doubler": {"class_path": "apps.Doubler"}}})
    assert ether.session == first
    tapped({"doubler": {"class_path": "apps.Doubler"}}, restart=True)
    assert ether.session != first
    assert shm_objects(first) == []


def test_lifecycle_handlers_run_in_order(tapped, tmp_path):
    log = tmp_path / "life.txt"
    tapped({"rec": {"class_path": "apps.Recorder", "kwargs": {"path": str(log)}}})
    ether.start()
    ether.shutdown()
    assert log.read_text().split() == ["init", "start", "save_all", "cleanup", "shutdown"]


@pytest.mark.parametrize("instances, match", [
    ({"a": {"class_path": "apps.Doubler", "kwarg": {}}}, r"instance 'a': unknown key 'kwarg'"),
    ({"a": {"class_path": "apps.NoSuchClass"}}, r"'a'.*has no class 'NoSuchClass'"),
    ({"a": {"class_path": "no_such_module.X"}}, r"'a'.*no_such_module"),
    ({"a": {"class_path": "apps.Exploding"}}, r"instance 'a' failed to start:.*constructor refused: boom"),
    ({"a": {"class_path": "apps.Vanishing"}}, r"instance 'a' died during start-up \(exit code 3\)"),
    ({"a": {"class_path": "apps.Doubler", "kwargs": {"ether_name": "ok"}}},
     r"instances 'ok' and 'a' both have the name 'ok'"),
    ({"main": {"class_path": "apps.Doubler"}}, r"instance 'main': the name 'main' is the main process's"),
])
def test_tap_reports_config_and_start_up_errors(instances, match, monkeypatch):
    from ether._core._session import Session
    started, create = [], Session.create.__func__

    def recording_create(cls, name=None):
        session = create(cls, name)
        started.append(session.name)
        return session

    monkeypatch.setattr(Session, "create", classmethod(recording_create))
    with pytest.raises(ether_pkg.EtherError, match=match):
        ether.tap(config={"instances": {"ok": {"class_path": "apps.Doubler"}, **instances}})
    assert ether.session is None
    # The session tap started, if it got that far (other tests' sessions may come and go).
    assert bool(started) == ("start" in match), started   # start-up errors come after the session
    assert [n for sid in started for n in shm_objects(sid)] == []


def test_instances_exit_when_the_main_process_is_killed(tmp_path):
    script = tmp_path / "main.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT / 'tests')!r})
        from ether import ether
        ether.tap(config={{"instances": {{"d1": {{"class_path": "apps.Doubler"}},
                                          "d2": {{"class_path": "apps.Doubler"}}}}}})
        replies = ether.listen("doubled", timeout=10)
        ether.pub({{"x": 1}}, topic="numbers")
        pids = set()
        pids.add(next(replies)["pid"]); pids.add(next(replies)["pid"])
        print(ether.session, *sorted(pids), flush=True)
        os.kill(os.getpid(), 9)
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    session, *pids = proc.stdout.split()
    for pid in map(int, pids):
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue  # already gone
        try:
            ready, _, _ = select.select([fd], [], [], 10)
            assert ready, f"instance pid {pid} still runs 10 s after its main process died"
        finally:
            os.close(fd)
    ether_pkg.remove_stale_sessions()  # what the next session would do
    assert shm_objects(session) == []


def test_sigterm_of_the_main_script_shuts_the_session_down(tmp_path):
    script = tmp_path / "main.py"
    script.write_text(textwrap.dedent(f"""
        import sys, threading
        sys.path.insert(0, {str(ROOT / 'tests')!r})
        from ether import ether
        ether.tap(config={{"instances": {{"d": {{"class_path": "apps.Doubler"}}}}}})
        print(ether.session, flush=True)
        threading.Event().wait()   # until SIGTERM
    """))
    env = dict(os.environ, ETHER_LOG_DIR=str(tmp_path / "logs"))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    session = proc.stdout.readline().strip()
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "Ether system shutdown complete" in err
    assert shm_objects(session) == []
    logs = sorted(p.name for p in (tmp_path / "logs" / session).iterdir())
    # one file per instance, one for the session, and what produced it
    assert logs == ["d.log", "provenance.json", "session.log"]
    assert "Starting Ether session" in (tmp_path / "logs" / session / "session.log").read_text()


def test_shutdown_never_kills_instances_that_stopped(capfd):
    # The exit watcher once joined children concurrently with stop(); the loser
    # read exitcode None and "killed" an instance that had stopped cleanly.
    for _ in range(8):
        ether.tap(config={"instances": {f"d{i}": {"class_path": "apps.Doubler"} for i in range(3)}})
        ether.shutdown()
    err = capfd.readouterr().err
    assert "did not stop in time" not in err
    assert err.count("Ether system shutdown complete") == 8


def test_shutdown_while_another_thread_listens_ends_its_iteration(tapped):
    import threading
    tapped({"doubler": {"class_path": "apps.Doubler"}})
    listening, ended = threading.Event(), []

    def reader():
        listener = ether.listen("never", timeout=None)
        listening.set()
        ended.extend(listener)  # ends when the session shuts down

    thread = threading.Thread(target=reader)
    thread.start()
    assert listening.wait(10)
    ether.shutdown()  # used to free the inbox under the reader (a segfault)
    thread.join(10)
    assert not thread.is_alive() and ended == []


def test_a_slow_subscribe_callback_neither_delays_replies_nor_blocks_shutdown(tapped):
    import threading
    tapped({"doubler": {"class_path": "apps.Doubler"}, "store": {"class_path": "apps.Store"}})
    entered, release, done = threading.Event(), threading.Event(), threading.Event()

    def slow(message):
        entered.set()
        release.wait(10)
        ether.shutdown()  # from a callback, too
        done.set()

    ether.subscribe("doubled", slow)
    ether.pub({"x": 1}, topic="numbers")
    assert entered.wait(10)
    assert ether.get("store", "echo", params={"n": 3}, timeout=2)["n"] == 3
    release.set()
    assert done.wait(10)
    assert ether.session is None


def test_a_non_map_message_is_dropped_without_losing_its_neighbours(tapped):
    import msgspec

    class Pair(msgspec.Struct, array_like=True):
        a: int
        b: int

    tapped({"doubler": {"class_path": "apps.Doubler"}})
    with ether.listen("mixed", timeout=10) as messages:
        ether.pub({"i": 0}, topic="mixed")
        ether.pub(Pair(1, 2), topic="mixed")  # encodes as an array, not a map
        ether.pub({"i": 2}, topic="mixed")
        assert [next(messages), next(messages)] == [{"i": 0}, {"i": 2}]


def test_a_misspelt_key_is_warned_about_once_naming_the_key_and_the_parameters(tapped, capfd):
    tapped({"doubler": {"class_path": "apps.Doubler"}})
    with ether.listen("doubled", timeout=10) as replies:
        for _ in range(3):
            ether.pub({"x": 2, "lable": "typo"}, topic="numbers")
        got = [next(replies) for _ in range(3)]
    assert [g["x"] for g in got] == [4, 4, 4] and {g["label"] for g in got} == {"none"}
    ether.shutdown()
    err = capfd.readouterr().err
    warning = ("instance 'doubler', double() on topic 'numbers': message key 'lable' matches no "
               "parameter and is ignored; the parameters are: x, label")
    assert err.count(warning) == 1
