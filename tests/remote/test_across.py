"""The Quick Start across two simulated hosts (network namespaces, each with its
own /dev/shm): the generator on A, the processors and the collector on B, found
by multicast with no address configured, over mutual TLS with certificates made
by `ether certs`. Each host runs a bridge test host (tests/bridge_host.py),
driven through tests/bridge_driver.py as the loopback tests are."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import needs_netns

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bridge_driver import Host as Driver  # noqa: E402

pytest.importorskip("zenoh", reason="the bridge needs zenoh (pip install 'ether[remote]')")

GEN = "examples.simple_data_processing.DataGenerator"
PROC = "examples.simple_data_processing.DataProcessor"
COLL = "examples.simple_data_processing.DataCollector"
_ON_HOST = 'mount --bind "$0" /dev/shm && exec "$@"'


def _certs(folder, net) -> None:
    """The site's CA and one certificate per host, by the CLI, as a user makes them."""
    def ether(*args):
        done = subprocess.run([sys.executable, "-m", "ether", "certs", *args, "--dir", str(folder)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    ether("init", "lab1")
    for host in (net["A"], net["B"]):
        ether("host", f"host{host.name}", "--ip", host.addr, "--site", "lab1")


def _driver(host, drivers: list, env: dict | None = None, **options) -> Driver:
    """A bridge test host running on `host`: its namespace and its /dev/shm
    (options: Driver's, as watch_stderr)."""
    prefix = ["ip", "netns", "exec", host.ns, "unshare", "--mount", "--propagation", "private",
              "sh", "-c", _ON_HOST, str(host.shm)]
    driver = Driver(host.name, prefix=prefix, env=env, **options)
    drivers.append(driver)
    return driver


def _bridge(folder, name: str) -> dict:
    return {"site": "lab1", "host": name, "discovery": "multicast",
            "security": {"ca": str(folder / "lab1-ca.pem"), "cert": str(folder / f"{name}.pem"),
                         "key": str(folder / f"{name}.key")}}


@needs_netns
@pytest.mark.timeout(180)
def test_quick_start_across_two_hosts_by_multicast_over_mtls(hosts, tmp_path):
    net = hosts(2)
    _certs(tmp_path, net)
    drivers: list[Driver] = []
    try:
        b = _driver(net["B"], drivers)
        b.tap({"instances": {"processor2x": {"class_path": PROC, "kwargs": {"multiplier": 2}},
                             "processor4x": {"class_path": PROC, "kwargs": {"multiplier": 4}},
                             "collector1": {"class_path": COLL}},
               "bridge": _bridge(tmp_path, "hostB")})
        b.call("record", name="results", topic="result", envelopes=True)
        b.call("record", name="values", topic="result")
        a = _driver(net["A"], drivers)
        a.tap({"instances": {"generator1": {"class_path": GEN}}, "bridge": _bridge(tmp_path, "hostA")})
        a.call("wait_remote_interest", topic="data", wait=60)
        a.call("start")
        values = b.call("recorded", name="values", count=2, timeout=30, wait=60)
        envelopes = b.call("recorded", name="results", count=2, timeout=30, wait=60)
        assert sorted(v["result"] for v in values) == [84, 168]   # as on one host
        assert {e["cause"][0] for e in envelopes} == {"generator1@hostA"}
        assert {e["trace"][0] for e in envelopes} == {"main@hostA"}
        site = a.call("site")
        assert set(site["hosts"]) == {"hostA", "hostB"}
    finally:
        for driver in reversed(drivers):   # shut each session down before the rig goes
            driver.close()


@needs_netns
@pytest.mark.timeout(180)
def test_services_across_two_hosts_over_an_explicit_tls_link(hosts, tmp_path):
    """B listens on its address, A connects to it (no multicast): get, save, a
    remote exception, get_later/collect, and `name@host`."""
    net = hosts(2)
    _certs(tmp_path, net)
    endpoint = f"tls/{net['B'].addr}:7447"
    drivers: list[Driver] = []
    try:
        b = _driver(net["B"], drivers)
        b.tap({"instances": {"data_service": {"class_path": "bridge_apps.DataService",
                                              "kwargs": {"where": "B"}}},
               "bridge": dict(_bridge(tmp_path, "hostB"), discovery="none", listen=[endpoint])})
        a = _driver(net["A"], drivers)
        a.tap({"bridge": dict(_bridge(tmp_path, "hostA"), discovery="none", connect=[endpoint])})
        a.call("wait_proxy", name="data_service@hostB", wait=60)
        saved = a.call("save", service="DataService", method="save_item",
                       params={"id": 1, "name": "Item", "tags": ["x"]})
        assert saved == {"status": "success", "result": {"name": "Item", "tags": ["x"]},
                         "instance": "data_service@hostB"}
        assert a.call("get", service="data_service@hostB", method="get_item",
                      params={"id": 1}) == {"name": "Item", "tags": ["x"]}
        missing = a.ask("get", service="DataService", method="get_item", params={"id": 9})
        assert missing["error"] == "RemoteError" and "KeyError" in missing["message"]
        request_id = a.call("get_later", service="data_service", method="get_item", params={"id": 1})
        assert a.call("collect", request_id=request_id)["name"] == "Item"
    finally:
        for driver in reversed(drivers):
            driver.close()
