"""Delivery policies on the decorator API: @ether_sub(policy="block"|"drop", timeout=s),
the registry, ether.subscribe/listen, and what a full inbox does to a publisher.

A subscriber's inbox is filled by holding its handler at a gate (a Unix socket the
test listens on) while the publisher sends large messages: no sleeps, and the point
where the inbox is full is found by the publisher itself (a drop, or InboxFull).
"""
import math
import socket
import time

import pytest

import ether as ether_pkg
from ether import ether, ether_pub, ether_start, ether_sub
from ether._spec._decorators import MethodSpec, spec_of
from ether._spec._introspect import introspect

from conftest import shm_objects

BLOB = bytes(512 * 1024)  # a few of these fill an inbox (8 MiB with the default limits)


@pytest.fixture
def tapped():
    """Tap a config; shut down after the test and check nothing is left."""
    sessions = []

    def tap(instances, **kw):
        ether.tap(config={"instances": instances, **kw})
        sessions.append(ether.session)

    yield tap
    ether.shutdown()
    for sid in sessions:
        assert shm_objects(sid) == [], f"session {sid} left shared memory behind"


class Gate:
    """The test's end of apps._Gated: a handler connects when it starts waiting and
    goes on when it reads a byte."""

    def __init__(self, path):
        self.path = str(path)
        assert len(self.path) < 100, "a Unix socket path must be short"
        self._server = socket.socket(socket.AF_UNIX)
        self._server.bind(self.path)
        self._server.listen(1)
        self._server.settimeout(30)
        self._waiter = None

    def wait_for_waiter(self) -> None:
        self._waiter, _ = self._server.accept()

    def open(self) -> None:
        self._waiter.sendall(b"x")

    def close(self) -> None:
        if self._waiter is not None:
            self._waiter.close()
        self._server.close()


@pytest.fixture
def gate(tmp_path):
    g = Gate(tmp_path / "gate")
    yield g
    if g._waiter is not None:
        try:
            g.open()  # never leave a handler waiting (the shutdown drains it)
        except OSError:
            pass
    ether.shutdown()
    g.close()


# ---- the decorator ----

def _f(self, seq: int): ...


def test_policy_and_timeout_are_recorded_and_the_defaults_change_nothing():
    def a(self): ...
    def b(self): ...
    def c(self): ...
    ether_sub(topic="in")(a)
    ether_sub(topic="in", policy="block", timeout=5.0)(b)
    ether_sub(topic="in", policy="drop", timeout=0.5)(c)  # a drop never waits: accepted, unused
    assert spec_of(a) == spec_of(b) == MethodSpec(subs=("in",))
    assert spec_of(a).delivery_of("in") == ("block", 5.0)
    assert spec_of(c).delivery_of("in") == ("drop", 5.0)

    class C:
        @ether_sub(topic="x", policy="block", timeout=0.25)
        @ether_sub(policy="drop")
        def m(self): ...

        @ether_start
        def s(self): ...
    (handler,) = [h for h in introspect(C).handlers if h.method == "m"]
    assert handler.topics == ("C.m", "x")
    assert handler.delivery_of("x") == ("block", 0.25)
    assert handler.delivery_of("C.m") == ("drop", 5.0)
    assert introspect(C).handlers[1].delivery_of("start") == ("block", 5.0)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"policy": "fast"}, ValueError, r"ether_sub on _f: policy must be one of 'block', 'drop', not 'fast'"),
    ({"policy": None}, TypeError, r"ether_sub on _f: policy must be one of 'block', 'drop', not NoneType"),
    ({"timeout": 0}, ValueError, r"ether_sub on _f: timeout must be a finite number of seconds > 0"),
    ({"timeout": -1.0}, ValueError, r"timeout must be a finite number of seconds > 0 .*not -1.0"),
    ({"timeout": math.inf}, ValueError, r"not inf"),
    ({"timeout": math.nan}, ValueError, r"not nan"),
    ({"timeout": 1e12}, ValueError, r"at most 4.29497e\+06"),
    ({"timeout": "5"}, TypeError, r"ether_sub on _f: timeout must be a number of seconds, not str '5'"),
    ({"timeout": True}, TypeError, r"timeout must be a number of seconds, not bool"),
    ({"policy": "drop", "timeout": 0}, ValueError, r"timeout must be a finite number"),
])
def test_bad_policies_and_timeouts_fail_at_decoration_naming_the_method(kwargs, error, match):
    with pytest.raises(error, match=match):
        ether_sub(topic="t", **kwargs)(_f)
    assert spec_of(_f) is None


def test_unknown_arguments_list_policy_and_timeout():
    with pytest.raises(TypeError, match=r"got unknown argument\(s\) polcy; valid: topic, policy, timeout"):
        ether_sub(polcy="drop")


def test_one_method_cannot_subscribe_to_one_topic_twice_with_different_policies():
    def m(self): ...
    ether_sub(topic="t", policy="drop")(m)
    ether_sub(topic="t", policy="drop")(m)  # the same again is fine
    with pytest.raises(ValueError, match=r"ether_sub on .*m: topic 't' is already subscribed with "
                                         r"policy='drop', not policy='block', timeout=5"):
        ether_sub(topic="t")(m)
    assert spec_of(m).subs == ("t",) and spec_of(m).delivery == (("t", "drop", 5.0),)


def test_a_class_whose_handlers_disagree_on_a_topic_is_refused():
    class Two:
        @ether_sub(topic="t", policy="drop")
        def a(self): ...

        @ether_sub(topic="t")
        def b(self): ...
    with pytest.raises(ether_pkg.ConfigError, match=r"class Two: a\(\) and b\(\) both subscribe to topic "
                                                    r"'t', with policy='drop' and policy='block', timeout=5"):
        introspect(Two)


def test_the_class_stays_plain():
    class P:
        @ether_sub(topic="t", policy="drop", timeout=1)
        @ether_pub(topic="u")
        def m(self, x: int) -> dict:
            return {"x": x}
    assert P().m(2) == {"x": 2}


# ---- in a session ----

def test_conflicting_policies_in_one_instance_fail_tap_naming_instance_topic_and_methods():
    with pytest.raises(ether_pkg.ConfigError,
                       match=r"instance 'c': class ConflictingPolicies: first\(\) and second\(\) both "
                             r"subscribe to topic 'flood', with policy='drop' and policy='block', "
                             r"timeout=1; an instance has one subscription per topic"):
        ether.tap(config={"instances": {"c": {"class_path": "apps.ConflictingPolicies"}}})
    assert ether.session is None


def test_a_full_drop_subscriber_never_blocks_the_publisher_and_each_drop_is_counted(tapped, gate):
    tapped({"dropper": {"class_path": "apps.DropSubscriber", "kwargs": {"gate": gate.path}}})
    with ether.listen("flood-seen", timeout=30) as seen:
        assert ether.pub({"seq": 0}, topic="flood") == 1
        gate.wait_for_waiter()  # its handler holds the first message: nothing is read now
        outcomes = []           # (seq, delivered to how many inboxes)
        for seq in range(1, 200):
            outcomes.append((seq, ether.pub({"seq": seq, "blob": BLOB}, topic="flood")))
            if outcomes[-1][1] == 0 and len(outcomes) >= 3 and outcomes[-3][1] == 0:
                break
        delivered = [0] + [s for s, n in outcomes if n == 1]
        dropped = [s for s, n in outcomes if n == 0]
        # Once full, it stays full: every message after the first drop is dropped too.
        assert dropped == [delivered[-1] + 1, delivered[-1] + 2, delivered[-1] + 3]
        assert set(n for _, n in outcomes) <= {0, 1}

        (stats,) = [s for s in ether.statistics() if s.inbox == "dropper" and s.policy == "drop"]
        assert (stats.sent, stats.dropped, stats.blocked) == (len(delivered), 3, 0)

        gate.open()
        assert [next(seen)["seq"] for _ in delivered] == delivered
        # The inbox is empty again: a new message goes in, and it comes next (the
        # dropped ones never arrive).
        assert ether.pub({"seq": 1000}, topic="flood") == 1
        assert next(seen)["seq"] == 1000


def test_a_full_block_subscriber_makes_the_publisher_raise_after_its_timeout(tapped, gate):
    tapped({"blocker": {"class_path": "apps.BlockSubscriber", "kwargs": {"gate": gate.path}},
            "flooder": {"class_path": "apps.Flooder"}})
    assert ether.pub({"seq": 0}, topic="flood") == 1
    gate.wait_for_waiter()
    # The flooder's pub method publishes until the blocker's inbox stays full for
    # the subscription's 0.2 s: the call then raises InboxFull, naming the topic.
    result = ether.get("flooder", "flood", params={"count": 200, "size": len(BLOB)}, timeout=30)
    assert result["type"] == "InboxFull"
    assert result["failed_seq"] is not None and result["failed_seq"] > 1
    assert "publishing to topic 'flood': inbox 'blocker'" in result["error"]
    assert "stayed full for 0.2 s" in result["error"]
    assert result["waited"] >= 0.19  # it did wait (the wait has its timeout as a floor)
    stats = ether.get("flooder", "statistics", timeout=30)
    (to_blocker,) = [s for s in stats if s["inbox"] == "blocker" and s["policy"] == "block"]
    assert to_blocker["sent"] == result["failed_seq"] - 1
    assert to_blocker["dropped"] == 0 and to_blocker["blocked"] >= 1
    gate.open()


def test_ether_pub_from_the_main_script_names_the_topic_too(tapped, gate):
    tapped({"blocker": {"class_path": "apps.BlockSubscriber", "kwargs": {"gate": gate.path}}})
    ether.pub({"seq": 0}, topic="flood")
    gate.wait_for_waiter()
    with pytest.raises(ether_pkg.InboxFull, match=r"publishing to topic 'flood': inbox 'blocker' .*"
                                                  r"stayed full for 0.2 s"):
        for seq in range(1, 200):
            ether.pub({"seq": seq, "blob": BLOB}, topic="flood")
    gate.open()


# ---- the registry ----

def test_a_registry_entry_sets_the_policy():
    ether.tap(config={
        "registry": {"apps.Undecorated": {"methods": {"triple": {
            "ether_sub": {"topic": "in", "policy": "drop", "timeout": 2},
            "ether_pub": {"topic": "out"}}}}},
        "instances": {"u": {"class_path": "apps.Undecorated"}}})
    try:
        with ether.listen("out", timeout=10) as out:
            assert ether.pub({"x": 2}, topic="in") == 1
            assert next(out) == {"x": 6}
        assert [(s.sent, s.dropped) for s in ether.statistics()
                if s.inbox == "u" and s.policy == "drop"] == [(1, 0)]
    finally:
        ether.shutdown()


@pytest.mark.parametrize("sub, match", [
    ({"topic": "in", "policy": "fast"},
     r"registry: apps.Undecorated.triple: ether_sub on Undecorated.triple: policy must be one of "
     r"'block', 'drop', not 'fast'"),
    ({"topic": "in", "timeout": -2},
     r"registry: apps.Undecorated.triple: ether_sub on Undecorated.triple: timeout must be a "
     r"finite number of seconds > 0"),
    ({"topic": "in", "timeout": "soon"},
     r"registry: apps.Undecorated.triple: .*timeout must be a number of seconds, not str 'soon'"),
])
def test_a_bad_policy_in_a_registry_entry_fails_tap_naming_the_entry(sub, match):
    import apps
    with pytest.raises(ether_pkg.ConfigError, match=match):
        ether.tap(config={"registry": {"apps.Undecorated": {"methods": {"triple": {"ether_sub": sub}}}},
                          "instances": {"u": {"class_path": "apps.Undecorated"}}})
    assert ether.session is None
    assert spec_of(apps.Undecorated.triple) is None


def test_registry_entries_that_disagree_on_a_topic_fail_tap_and_are_undone():
    import apps
    before = spec_of(apps.TwoHandlers.direct)
    with pytest.raises(ether_pkg.ConfigError, match=r"instance 't': class TwoHandlers: first\(\) and "
                                                    r"direct\(\) both subscribe to topic 'ping'"):
        ether.tap(config={
            "registry": {"apps.TwoHandlers": {"methods": {
                "direct": {"ether_sub": {"topic": "ping", "policy": "drop"}}}}},
            "instances": {"t": {"class_path": "apps.TwoHandlers"}}})
    assert ether.session is None
    assert spec_of(apps.TwoHandlers.direct) == before == MethodSpec(subs=(None,), pubs=("pong",))


# ---- ether.subscribe and ether.listen ----

def test_subscribe_and_listen_take_a_policy(tapped):
    tapped({"doubler": {"class_path": "apps.Doubler"}})
    got = []
    with ether.listen("doubled", timeout=10, policy="drop", block_timeout=1.0) as replies:
        with pytest.raises(ether_pkg.ConfigError, match=r"ether.subscribe\('doubled', policy='block', "
                                                        r"timeout=5\): this process already subscribes "
                                                        r"to 'doubled' with policy='drop'"):
            ether.subscribe("doubled", got.append)
        unsubscribe = ether.subscribe("doubled", got.append, policy="drop", timeout=3)  # same: fine
        ether.pub({"x": 4}, topic="numbers")
        assert next(replies)["x"] == 8
        unsubscribe()
    assert ether.pub({"x": 0}, topic="doubled") == 0  # both unsubscribed: nobody listens
    ether.listen("doubled", policy="drop")  # abandoned at once: unsubscribes too
    assert ether.pub({"x": 0}, topic="doubled") == 0
    with pytest.raises(ValueError, match=r"ether.listen\('doubled'\): policy must be one of 'block', "
                                         r"'drop', not 'lossy'"):
        ether.listen("doubled", policy="lossy")
    with pytest.raises(ValueError, match=r"ether.subscribe\('doubled'\): timeout must be a finite"):
        ether.subscribe("doubled", got.append, timeout=0)
    with ether.listen("doubled", timeout=10, block_timeout=0.5) as replies:  # the old one is gone
        ether.pub({"x": 5}, topic="numbers")
        assert next(replies)["x"] == 10
        with pytest.raises(ether_pkg.ConfigError, match=r"already subscribes to 'doubled' with "
                                                        r"policy='block', timeout=0.5"):
            ether.listen("doubled", block_timeout=0.6)
