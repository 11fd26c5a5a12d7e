"""Fork safety, the discovery race and the name clash across two simulated
hosts (issue 11, tests 6 and 8), as the loopback tests (tests/integration/
test_bridge*.py) check them on one machine: real Ether sessions under `ip netns
exec`, over mutual TLS, one host listening on its address, the other connecting.

- With the default start method no instance has zenoh in sys.modules, and none
  descends from the bridge; a call from A reaches such an instance on B.
- A call made from A just as B's service appears never fails spuriously: before
  B's proxy exists it is ServiceNotFound, then it is answered, and never
  ServiceGone (zenoh's zero-reply race is retried while the token lives).
- A second host claiming a host name in use is refused, naming both bridges.
  It connects to the holder: the check asks the site's liveliness, and a zenoh
  peer does not relay between two others (three hosts, the third connecting to a
  listening peer, would not see the second's tokens through it).
"""
from __future__ import annotations

import pytest

from .conftest import needs_netns
from .test_across import Driver, _driver
from .test_bridge_recovery import PORT, SVC, _bridge

pytest.importorskip("zenoh", reason="the bridge needs zenoh (pip install 'ether[remote]')")


@needs_netns
@pytest.mark.timeout(150)
def test_no_instance_holds_zenoh_or_descends_from_the_bridge_and_a_call_just_as_it_appears_succeeds(
        hosts, site):
    good, _ = site
    net = hosts(2)
    endpoint = f"tls/{net['A'].addr}:{PORT}"
    drivers: list[Driver] = []
    try:
        a = _driver(net["A"], drivers)
        a.tap({"bridge": _bridge(good, "hostA", listen=[endpoint])})
        b = _driver(net["B"], drivers)
        b.tap({"instances": {"data_service": {"class_path": SVC, "kwargs": {"where": "B"}}},
               "bridge": _bridge(good, "hostB", connect=[endpoint])})
        # At once, while B's tokens and queryable reach A.
        answered = a.call("get_until", service="DataService", method="where_am_i", timeout=30,
                          wait=60)
        assert answered["result"]["where"] == "B"
        assert set(answered["failures"]) <= {"ServiceNotFound"}, answered
        facts = answered["result"]
        members = {m[0]: m[1] for m in b.call("members")}
        assert facts["zenoh"] is False
        assert facts["pid"] == members["data_service"]
        assert facts["ppid"] != members["bridge"]   # forked by B's main, not by its bridge
    finally:
        for driver in reversed(drivers):
            driver.close()


@needs_netns
@pytest.mark.timeout(150)
def test_a_second_host_claiming_a_host_name_in_use_is_refused_naming_both(hosts, site):
    good, _ = site
    net = hosts(2)
    endpoint = f"tls/{net['B'].addr}:{PORT}"
    drivers: list[Driver] = []
    try:
        b = _driver(net["B"], drivers)
        b.tap({"bridge": _bridge(good, "hostB", listen=[endpoint])})
        a = _driver(net["A"], drivers)   # with hostB's own certificate: only the name clashes
        answer = a.ask("tap", config={"bridge": _bridge(good, "hostB", connect=[endpoint])},
                       wait=60)
        assert answer["error"] == "ConfigError", answer
        assert "hostB" in answer["message"] and answer["message"].count("zenoh id") == 2, answer
    finally:
        for driver in reversed(drivers):
            driver.close()
