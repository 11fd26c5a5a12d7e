"""Requests across two hosts over loopback: get, save, get_later/collect,
RemoteError, ServiceNotFound before the other host joins and after its bridge
stops, round-robin over a local and a remote instance, `name@host`, an
ambiguous name, sync and SyncFailed naming `inst@host`, and ServiceGone within
0.5 s when the remote bridge is killed with calls in flight."""
from __future__ import annotations

import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bridge_driver import loopback_pair  # noqa: E402

pytest.importorskip("zenoh", reason="the bridge needs zenoh (pip install 'ether[remote]')")

SVC = "bridge_apps.DataService"


@pytest.fixture
def pair():
    """Two hosts over loopback (A connects, B listens): bridge_driver.loopback_pair."""
    yield from loopback_pair()


def service_on_b(make, bridge_a, bridge_b, *, a_instances=None, b_name="data_service", **b_config):
    b = make("B")
    b.tap({"instances": {b_name: {"class_path": SVC, "kwargs": {"where": "B"}}}, "bridge": bridge_b,
           **b_config})
    a = make("A")
    a.tap({"instances": a_instances or {}, "bridge": bridge_a})
    a.call("wait_proxy", name=f"{b_name}@hostB")
    return a, b


@pytest.mark.timeout(120)
def test_get_save_get_later_collect_and_remote_error_across_hosts(pair):
    make, bridge_a, bridge_b = pair
    a, b = service_on_b(make, bridge_a, bridge_b)
    reply = a.call("save", service="DataService", method="save_item",
                   params={"id": 1, "name": "Test Item", "tags": ["test", "new"]})
    assert reply == {"status": "success", "result": {"name": "Test Item", "tags": ["test", "new"]},
                     "instance": "data_service@hostB"}
    assert a.call("get", service="DataService", method="get_item", params={"id": 1}) == \
        {"name": "Test Item", "tags": ["test", "new"]}
    duplicate = a.call("save", service="DataService", method="save_item",
                       params={"id": 1, "name": "Duplicate", "tags": []})
    assert duplicate["status"] == "error" and "already exists" in duplicate["error"]
    assert duplicate["type"] == "ValueError"
    missing = a.ask("get", service="data_service@hostB", method="get_item", params={"id": 9})
    assert missing["error"] == "RemoteError" and "KeyError" in missing["message"]
    request_id = a.call("get_later", service="data_service", method="get_item", params={"id": 1})
    assert a.call("collect", request_id=request_id)["name"] == "Test Item"
    # Requests carry the caller's deadline: a slow remote method times the caller out.
    slow = a.ask("get", service="DataService", method="slow", params={"seconds": 2.0}, timeout=0.5)
    assert slow["error"] == "Timeout"


@pytest.mark.timeout(120)
def test_service_not_found_before_the_other_host_joins_and_after_its_bridge_stops(pair):
    make, bridge_a, bridge_b = pair
    # Here A listens and B connects: A is up before B joins.
    listen, connect = bridge_b["listen"], bridge_a["connect"]
    a = make("A")
    a.tap({"bridge": dict(bridge_a, connect=[], listen=listen)})
    assert a.ask("get", service="DataService", method="get_item", params={"id": 1})["error"] == \
        "ServiceNotFound"
    b = make("B")
    b.tap({"instances": {"data_service": {"class_path": SVC, "kwargs": {"where": "B"}}},
           "bridge": dict(bridge_b, listen=[], connect=connect)})
    a.call("wait_proxy", name="data_service@hostB")
    assert a.call("get", service="DataService", method="where_am_i")["where"] == "B"
    b.call("shutdown")
    a.call("wait_proxy", name="data_service@hostB", present=False)
    assert a.ask("get", service="DataService", method="get_item", params={"id": 1})["error"] == \
        "ServiceNotFound"


@pytest.mark.timeout(120)
def test_round_robin_over_a_local_and_a_remote_instance_and_name_at_host(pair):
    make, bridge_a, bridge_b = pair
    a, b = service_on_b(make, bridge_a, bridge_b, a_instances={
        "local_service": {"class_path": SVC, "kwargs": {"where": "A"}}})
    wheres = [a.call("get", service="DataService", method="where_am_i")["where"] for _ in range(6)]
    assert sorted(wheres) == ["A", "A", "A", "B", "B", "B"]
    assert {a.call("get", service="data_service@hostB", method="where_am_i")["where"]
            for _ in range(3)} == {"B"}
    # An unqualified name that only one other host has resolves there.
    assert a.call("get", service="data_service", method="where_am_i")["where"] == "B"


@pytest.mark.timeout(120)
def test_an_unqualified_name_on_two_other_hosts_is_an_error_listing_them(pair):
    make, bridge_a, bridge_b = pair
    listen, connect = bridge_b["listen"], bridge_a["connect"]
    a = make("A")  # A listens; B and C connect to it (peers do not relay for each other)
    a.tap({"bridge": dict(bridge_a, connect=[], listen=listen)})
    for name in ("B", "C"):
        host = make(name)
        host.tap({"instances": {"twin": {"class_path": SVC, "kwargs": {"where": name}}},
                  "bridge": dict(bridge_b, host=f"host{name}", listen=[], connect=connect)})
    a.call("wait_proxy", name="twin@*")
    answer = a.ask("get", service="twin", method="where_am_i")
    assert answer["error"] == "ServiceNotFound"
    assert "twin@hostB" in answer["message"] and "twin@hostC" in answer["message"]
    assert a.call("get", service="twin@hostC", method="where_am_i")["where"] == "C"


@pytest.mark.timeout(120)
def test_sync_across_hosts_and_sync_failed_naming_inst_at_host(pair):
    make, bridge_a, bridge_b = pair
    b = make("B")
    b.tap({"instances": {"good_b": {"class_path": "bridge_apps.Participant"},
                         "bad_b": {"class_path": "bridge_apps.Participant", "kwargs": {"fail": True}}},
           "bridge": bridge_b})
    a = make("A")
    a.tap({"instances": {"good_a": {"class_path": "bridge_apps.Participant"}}, "bridge": bridge_a})
    a.call("wait_proxy", name="good_b@hostB")
    a.call("wait_proxy", name="bad_b@hostB")
    answer = a.ask("sync", topic="prepare", trial=3)
    assert answer["error"] == "SyncFailed"
    assert "bad_b@hostB" in answer["message"] and "cannot prepare trial 3" in answer["message"]
    assert "good_a" not in answer["message"] and "good_b" not in answer["message"]
    b.call("shutdown")
    b = None
    a.call("wait_proxy", name="bad_b@hostB", present=False)
    assert set(a.call("sync", topic="prepare", trial=4)) == {"good_a"}


@pytest.mark.timeout(120)
def test_killing_the_remote_bridge_fails_calls_in_flight_with_service_gone_within_half_a_second(pair):
    make, bridge_a, bridge_b = pair
    # B stops waiting for its queued calls after 2 s at its shutdown.
    a, b = service_on_b(make, bridge_a, bridge_b, shutdown_timeout_s=2)
    bridge_pid = {m[0]: m[1] for m in b.call("members")}["bridge"]
    ids = a.call("many_later", service="DataService", method="slow", params={"seconds": 3},
                 count=10, timeout=20)
    killed_at = a.call("now")
    os.kill(bridge_pid, signal.SIGKILL)
    results = a.call("collect_all", ids=ids, timeout=20)
    assert [r.get("error") for r in results] == ["ServiceGone"] * 10, results
    assert max(r["at"] for r in results) - killed_at < 0.5 + 0.1, results
