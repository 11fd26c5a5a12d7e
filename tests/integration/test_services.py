"""Request-reply services, deferred requests and sync between processes."""
import os
import pathlib
import subprocess
import sys
import time

import pytest

import ether as ether_pkg
from ether import ether

from conftest import shm_objects

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def tap():
    sessions = []

    def _tap(instances):
        ether.tap(config={"instances": instances})
        sessions.append(ether.session)

    yield _tap
    ether.shutdown()
    for sid in sessions:
        assert shm_objects(sid) == []


def test_readme_get_and_save_example_runs_as_written():
    proc = subprocess.run([sys.executable, "test_ether_save.py"], cwd=ROOT / "examples" / "get_save",
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Save reply: {'status': 'success'" in proc.stderr
    assert "Get item: {'name': 'Test Item', 'tags': ['test', 'new']}" in proc.stderr
    assert "Duplicate save reply: {'status': 'error'" in proc.stderr and "already exists" in proc.stderr


def test_get_raises_remote_errors_with_type_and_message(tap):
    tap({"store": {"class_path": "apps.Store"}})
    assert ether.save("Store", "put", params={"key": "a", "value": 1})["status"] == "success"
    assert ether.get("Store", "fetch", params={"key": "a"})["value"] == 1
    with pytest.raises(ether_pkg.RemoteError, match=r"Store.fetch on instance 'store' failed: KeyError") as info:
        ether.get("Store", "fetch", params={"key": "missing"})
    assert info.value.type == "KeyError" and info.value.instance == "store"
    with pytest.raises(ether_pkg.RemoteError, match="ValidationFailed: invalid params: field 'value'"):
        ether.get("Store", "put", params={"key": "b", "value": "lots"})
    with pytest.raises(ether_pkg.ServiceNotFound, match="no live instance serves service 'Nobody.fetch'"):
        ether.get("Nobody", "fetch")


def test_class_name_round_robins_and_instance_name_targets(tap):
    tap({"s1": {"class_path": "apps.Store"}, "s2": {"class_path": "apps.Store"}})
    pids = {ether.get("Store", "echo", params={"n": i})["pid"] for i in range(6)}
    assert len(pids) == 2
    only = {ether.get("s2", "echo", params={"n": i})["pid"] for i in range(4)}
    assert len(only) == 1


def test_many_deferred_requests_in_flight(tap):
    tap({"s1": {"class_path": "apps.Store"}, "s2": {"class_path": "apps.Store"}})
    ids = [ether.get_later("Store", "echo", params={"n": n}) for n in range(200)]
    assert [ether.collect(i)["n"] for i in reversed(ids)] == list(reversed(range(200)))
    with pytest.raises(ether_pkg.EtherError, match="no request .* is waiting to be collected"):
        ether.collect(ids[0])


def test_a_timed_out_call_never_leaks_its_reply_into_the_next(tap):
    tap({"slow": {"class_path": "apps.Store", "kwargs": {"delay": 0.3}}})
    with pytest.raises(ether_pkg.Timeout, match="no reply from service 'slow.slow'"):
        ether.get("slow", "slow", params={"n": 1}, timeout=0.05)
    assert ether.get("slow", "echo", params={"n": 2}) == {"n": 2, "pid": ether.get("slow", "echo", params={"n": 3})["pid"]}


def test_a_slow_service_does_not_delay_a_fast_one(tap):
    tap({"slow": {"class_path": "apps.Store", "kwargs": {"delay": 0.5}},
         "fast": {"class_path": "apps.Store"}})
    slow = ether.get_later("slow", "slow", params={"n": 1})
    fast = ether.get_later("fast", "slow", params={"n": 2})
    fast_done = ether.collect(fast)["done_ns"]
    answered = time.monotonic_ns()
    slow_done = ether.collect(slow)["done_ns"]
    assert fast_done < slow_done and answered < slow_done


def test_a_server_killed_mid_request_fails_the_caller(tap):
    tap({"victim": {"class_path": "apps.Store"}, "other": {"class_path": "apps.Store"}})
    start = time.monotonic()
    with pytest.raises(ether_pkg.ServiceGone, match="died before it replied"):
        ether.get("victim", "crash", timeout=10)
    assert time.monotonic() - start < 2
    assert ether.get("other", "echo", params={"n": 1})["n"] == 1  # the session carries on


def test_a_service_can_call_another_service(tap):
    tap({"a": {"class_path": "apps.Store"}, "b": {"class_path": "apps.Store"}})
    assert ether.get("a", "ask_other", params={"service": "b", "n": 7}) == {"inner": 7}


def test_sync_returns_after_the_slowest_with_results_per_instance(tap):
    tap({"quick": {"class_path": "apps.Store"},
         "slow": {"class_path": "apps.Store", "kwargs": {"delay": 0.3}}})
    results = ether.sync("prepare", level=3)
    returned = time.monotonic_ns()
    assert set(results) == {"quick", "slow"}
    assert all(r["level"] == 3 for r in results.values())
    assert returned >= max(r["done_ns"] for r in results.values())
    assert results["slow"]["done_ns"] > results["quick"]["done_ns"]


def test_sync_names_the_instances_that_failed(tap):
    tap({"ok": {"class_path": "apps.Store"}, "picky": {"class_path": "apps.Picky"}})
    with pytest.raises(ether_pkg.SyncFailed, match=r"sync 'prepare' failed in 'picky'.*cannot reach level 2") as info:
        ether.sync("prepare", level=2)
    assert set(info.value.failures) == {"picky"}


def test_ether_sync_is_also_the_decorator():
    @ether.sync(topic="prepare_trial")
    def set_state(self, config=None):
        return config
    from ether._spec._decorators import spec_of
    assert spec_of(set_state).syncs == ("prepare_trial",)


def test_save_all_reaches_every_instance(tap, tmp_path):
    log = tmp_path / "life.txt"
    tap({"rec": {"class_path": "apps.Recorder", "kwargs": {"path": str(log)}}})
    ether.save_all()
    assert log.read_text().split() == ["init", "save_all"]


def test_a_caller_that_died_does_not_take_its_server_down(tap):
    tap({"store": {"class_path": "apps.Store", "kwargs": {"delay": 0.2}},
         "caller": {"class_path": "apps.FireAndForget"}})
    with pytest.raises(ether_pkg.ServiceGone):
        ether.get("caller", "fire_and_die", params={"service": "store"})
    # The store's reply to the dead caller fails; the store keeps serving.
    assert ether.get("store", "echo", params={"n": 5})["n"] == 5


def test_round_robin_leaves_a_dead_instance_out(tap):
    tap({"s1": {"class_path": "apps.Store"}, "s2": {"class_path": "apps.Store"}})
    with pytest.raises(ether_pkg.ServiceGone):
        ether.get("s1", "crash")
    pids = {ether.get("Store", "echo", params={"n": i})["pid"] for i in range(6)}
    assert len(pids) == 1  # every call reached the live one


def test_a_handler_asking_its_own_instance_fails_at_once(tap):
    tap({"me": {"class_path": "apps.SelfCaller"}})
    start = time.monotonic()
    with pytest.raises(ether_pkg.RemoteError, match="cannot wait for its own instance"):
        ether.get("me", "ask_myself", timeout=5)
    assert time.monotonic() - start < 1


def test_sync_waits_once_for_all_and_needs_a_method(tap):
    tap({"a": {"class_path": "apps.Store", "kwargs": {"delay": 0.5}},
         "b": {"class_path": "apps.Store", "kwargs": {"delay": 0.5}}})
    start = time.monotonic()
    with pytest.raises(ether_pkg.SyncFailed, match="no reply"):
        ether.sync("prepare", timeout=0.2)
    assert time.monotonic() - start < 0.45  # one deadline, not one per instance
    with pytest.raises(ether_pkg.ServiceNotFound, match="no live instance has an @ether_sync"):
        ether.sync("nobody-has-this")
