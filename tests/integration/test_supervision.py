"""Supervision on one host: restart policies, a stuck handler, health checks,
services across a restart, and what a publisher counts while an instance is down."""
from __future__ import annotations

import os
import re
import signal
import time

import pytest

import ether as ether_pkg
from ether import ether
from ether.lowlevel import InstanceState, inspect

from conftest import shm_objects, wait_for


def _tap(instances, **config):
    ether.tap(config={"instances": instances, **config})
    return ether.session


def _member(sid, name):
    """(state, restarts, placeholder) of an instance, as inspect() shows it."""
    for m in inspect(sid).members:
        if m.name == name:
            return InstanceState.of(m.state), m.restarts, m.placeholder
    return None


def _wait_back(sid, name, restarts, timeout=20.0):
    """Wait until the instance is ready again with `restarts` restarts."""
    took = wait_for(lambda: _member(sid, name) == (InstanceState.READY, restarts, False), timeout)
    assert took is not None, f"{name} not back with {restarts} restarts: {_member(sid, name)}"


def _undelivered(inbox):
    return sum(s.undelivered for s in ether.statistics() if s.inbox == inbox)


def _pong_from(pid_not, n):
    """Publish ping n; the pong that comes back (from a process other than pid_not)."""
    with ether.listen("pong", timeout=10) as pongs:
        ether.pub({"n": n}, topic="ping")
        for pong in pongs:
            if pong["n"] == n:
                assert pong["pid"] != pid_not
                return pong
    raise AssertionError(f"no pong for ping {n}")


@pytest.mark.timeout(90)
def test_on_failure_restarts_five_times_then_fails_and_shuts_the_session_down(tmp_path, capfd):
    saved, inits = tmp_path / "saved.txt", tmp_path / "inits.txt"
    sid = _tap({"echo": {"class_path": "supervision_apps.Echo", "kwargs": {"path": str(inits)},
                         "restart": "on-failure"},
                "saver": {"class_path": "supervision_apps.Saver", "kwargs": {"path": str(saved)}}},
               supervision={"max_restarts": 5, "restart_window_s": 60, "backoff_s": 0.01,
                            "on_failure": "shutdown"})
    assert _member(sid, "echo") == (InstanceState.READY, 0, False)
    pids = [ether.get("echo", "pid")]
    for count in range(1, 6):
        os.kill(pids[-1], signal.SIGKILL)
        _wait_back(sid, "echo", count)
        pong = _pong_from(pids[-1], count)  # re-subscribed: a publisher's messages reach it
        pids.append(pong["pid"])
        assert ether.get("echo", "pid") == pong["pid"]  # and its service, under the same name
    assert len(set(pids)) == 6
    assert inits.read_text().split("\n")[:-1] == [f"init {p}" for p in pids]  # init ran each time
    os.kill(pids[-1], signal.SIGKILL)  # the 6th death within the window
    assert wait_for(lambda: shm_objects(sid) == [], 30) is not None
    assert saved.read_text() == "saved\n"  # the shutdown was an ordered one
    assert ether.stopping()
    err = capfd.readouterr().err
    for count in range(1, 6):
        assert f"(killed by SIGKILL); restarting it in" in err and f"(restart {count}, " in err
        assert f"is back (restart {count})" in err
    assert re.search(r"instance 'echo' exited \(killed by SIGKILL\); not restarted: restarted 5 "
                     r"times within 60 s already \(max_restarts 5\)\. It is marked failed", err), err
    assert "Shutting down the session: instance 'echo' failed (supervision: on_failure: shutdown)" in err


@pytest.mark.timeout(60)
def test_never_logs_the_exit_code_and_the_rest_carries_on(tmp_path, capfd):
    sid = _tap({"echo": {"class_path": "supervision_apps.Echo"},
                "saver": {"class_path": "supervision_apps.Saver",
                          "kwargs": {"path": str(tmp_path / "saved.txt")}}})
    ether.pub({"code": 3}, topic="die")
    assert wait_for(lambda: _member(sid, "echo") is None, 10) is not None
    assert ether.get("saver", "pid") > 0  # the rest carries on
    with pytest.raises(ether_pkg.ServiceNotFound):
        ether.get("echo", "pid", timeout=0.5)
    err = capfd.readouterr().err
    assert ("instance 'echo' exited (exit code 3); not restarted (restart: never); its topics and "
            "services are gone") in err
    ether.shutdown()
    assert shm_objects(sid) == []


@pytest.mark.timeout(60)
def test_the_backoff_grows_as_configured_up_to_its_cap(capfd):
    sid = _tap({"echo": {"class_path": "supervision_apps.Echo", "restart": "always",
                         "backoff_s": 0.2, "backoff_factor": 2, "backoff_max_s": 0.5,
                         "max_restarts": 10}})
    pid = ether.get("echo", "pid")
    for count in range(1, 5):
        os.kill(pid, signal.SIGKILL)
        _wait_back(sid, "echo", count)
        pid = ether.get("echo", "pid")
    timings = ether._supervisor.restarts.timings
    assert wait_for(lambda: len(timings) == 4, 10) is not None  # the last one's init ran
    ether.shutdown()
    delays = [float(d) for d in re.findall(r"restarting it in ([0-9.]+) s", capfd.readouterr().err)]
    assert delays == [0.2, 0.4, 0.5, 0.5]
    for delay, took in zip(delays, timings):  # death -> ready took the backoff, and more
        assert took >= delay
    assert shm_objects(sid) == []


@pytest.mark.timeout(60)
def test_a_stuck_handler_is_named_killed_and_restarted(capfd):
    sid = _tap({"hanger": {"class_path": "supervision_apps.Hanger", "restart": "on-failure",
                           "stuck_after_s": 1, "backoff_s": 0}})
    pid = ether.get("hanger", "pid")
    started = time.monotonic()
    ether.pub({}, topic="hang")
    _wait_back(sid, "hanger", 1)
    took = time.monotonic() - started
    assert ether.get("hanger", "pid") != pid
    err = capfd.readouterr().err
    assert re.search(r"instance 'hanger': its handler Hanger\.hang \(supervision_apps\.py:\d+\) "
                     r"had not returned for 1\.\d s; killing it", err), err
    assert "instance 'hanger' exited (killed by SIGKILL; its handler Hanger.hang" in err
    assert took >= 1.0
    ether.shutdown()
    assert shm_objects(sid) == []


@pytest.mark.timeout(60)
def test_a_loop_that_says_it_is_alive_is_not_stuck():
    sid = _tap({"loop": {"class_path": "supervision_apps.AliveLoop", "kwargs": {"seconds": 2.5},
                         "restart": "on-failure", "stuck_after_s": 1}})
    with ether.listen("loop-done", timeout=20) as done:
        ether.start()
        message = next(iter(done))
    assert _member(sid, "loop") == (InstanceState.READY, 0, False)  # never judged stuck
    assert message["pid"] > 0
    ether.shutdown()
    assert shm_objects(sid) == []


@pytest.mark.timeout(60)
def test_a_failed_health_check_restarts_the_instance(capfd):
    sid = _tap({"sick": {"class_path": "supervision_apps.Sickly", "restart": "on-failure",
                         "health_interval_s": 0.2, "backoff_s": 0}})
    pid = ether.get("sick", "pid")
    ether.get("sick", "make_sick", {"why": "the sensor is unplugged"})
    _wait_back(sid, "sick", 1)
    assert ether.get("sick", "pid") != pid
    err = capfd.readouterr().err
    assert ("instance 'sick': its health check failed: healthy(): the sensor is unplugged; "
            "killing it") in err
    ether.shutdown()
    assert shm_objects(sid) == []


@pytest.mark.timeout(60)
def test_a_get_issued_while_its_service_restarts_succeeds_once_it_is_back():
    sid = _tap({"echo": {"class_path": "supervision_apps.Echo", "restart": "on-failure",
                         "backoff_s": 1.0}})
    pid = ether.get("echo", "pid")
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: _member(sid, "echo") == (InstanceState.RESTARTING, 1, True), 10) is not None
    started = time.monotonic()
    assert ether.get("echo", "pid", timeout=10) != pid  # by instance name ...
    waited = time.monotonic() - started
    assert 0 < waited < 10
    assert ether.get("Echo", "pid") != pid  # ... and by class
    ether.shutdown()
    assert shm_objects(sid) == []


@pytest.mark.timeout(60)
def test_a_get_to_a_service_still_restarting_times_out_and_one_that_failed_says_so():
    sid = _tap({"echo": {"class_path": "supervision_apps.Echo", "restart": "on-failure",
                         "backoff_s": 30, "backoff_max_s": 30, "max_restarts": 1}})
    pid = ether.get("echo", "pid")
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: _member(sid, "echo") == (InstanceState.RESTARTING, 1, True), 10) is not None
    started = time.monotonic()
    with pytest.raises(ether_pkg.ServiceNotFound, match=r"'echo' is restarting \(waited 0.3 s\)"):
        ether.get("echo", "pid", timeout=0.3)
    assert time.monotonic() - started >= 0.3
    ether.shutdown()
    assert shm_objects(sid) == []


@pytest.mark.timeout(60)
def test_messages_published_while_an_instance_is_down_are_counted_as_undelivered():
    sid = _tap({"echo": {"class_path": "supervision_apps.Echo", "restart": "on-failure",
                         "backoff_s": 1.0}})
    pid = ether.get("echo", "pid")
    os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: _member(sid, "echo") == (InstanceState.RESTARTING, 1, True), 10) is not None
    for n in range(7):
        assert ether.pub({"n": n}, topic="ping") == 0  # nobody got it ...
    assert _undelivered("echo") == 7  # ... and it says so
    _wait_back(sid, "echo", 1)
    _pong_from(pid, 100)  # delivered again
    assert _undelivered("echo") == 7
    ether.shutdown()
    assert shm_objects(sid) == []


@pytest.mark.timeout(60)
def test_a_broken_supervision_config_names_the_key_and_starts_nothing():
    with pytest.raises(ether_pkg.ConfigError, match=r"instance 'echo': restart 'sometimes' is "
                                                   r"invalid \(valid: never, on-failure, always\)"):
        ether.tap(config={"instances": {"echo": {"class_path": "supervision_apps.Echo",
                                                 "restart": "sometimes"}}})
    with pytest.raises(ether_pkg.ConfigError, match=r"supervision: on_failure 'stop' is invalid"):
        ether.tap(config={"supervision": {"on_failure": "stop"}})
    assert ether.session is None
