"""Restart policies as arithmetic (RestartBook), the directory's placeholders,
and what a publisher counts while a subscriber is a placeholder."""
import pytest

import ether
from ether._core import _directory as directory
from ether._core import _states
from ether._node._node import Node
from ether._runtime._control import InstanceState
from ether._runtime._health import handler_in
from ether._runtime._restarts import RestartBook
from ether.config import SupervisionConfig

SMALL = {"capacity": 4096, "max_length": 64}


def _book(**policy):
    return RestartBook(SupervisionConfig(**policy))


def test_never_restarts_nothing():
    decision = _book().decide(0.0, failure=True)
    assert (decision.restart, decision.why) == (False, "restart: never")


def test_on_failure_leaves_a_clean_exit_alone_and_always_does_not():
    assert not _book(restart="on-failure").decide(0.0, failure=False).restart
    assert _book(restart="on-failure").decide(0.0, failure=True).restart
    assert _book(restart="always").decide(0.0, failure=False).restart


def test_the_backoff_grows_by_its_factor_up_to_its_cap():
    book = _book(restart="always", max_restarts=10, backoff_s=0.1, backoff_factor=3,
                 backoff_max_s=2.0)
    decisions = [book.decide(float(t), failure=True) for t in range(6)]
    assert [round(d.delay, 6) for d in decisions] == [0.1, 0.3, 0.9, 2.0, 2.0, 2.0]
    assert [d.count for d in decisions] == [1, 2, 3, 4, 5, 6]


def test_past_max_restarts_within_the_window_it_fails_and_the_window_forgets():
    book = _book(restart="on-failure", max_restarts=2, restart_window_s=10, backoff_s=1)
    assert [book.decide(t, failure=True).restart for t in (0.0, 1.0, 2.0)] == [True, True, False]
    assert "restarted 2 times within 10 s already (max_restarts 2)" in book.decide(3.0, True).why
    later = book.decide(10.5, failure=True)  # the restart at 0.0 is out of the window now
    assert later.restart and later.delay == 2.0 and later.count == 3


def test_the_states_have_codes_inspect_can_read_back():
    for state in InstanceState:
        assert InstanceState.of(state.code) is state
        assert _states.NAMES[state.code] == state.value
    assert InstanceState.of(0) is None


def test_a_placeholder_keeps_the_name_and_subscriptions_and_is_never_found_as_an_inbox(session):
    victim = session.create_inbox("victim", **SMALL)
    with session._directory as d:
        d.subscribe("data", victim.token, policy="drop", timeout=0.5)
        d.advertise("out", victim.token)
        d.set_info(victim.token, class_name="pkg.Victim")
        dead = d.replace_with_placeholder("victim", session.token, state=_states.RESTARTING,
                                          restarts=1)
        assert dead.token == victim.token
        assert d.find("victim") is None
        ph = d.find_placeholder("victim")
        assert (ph.placeholder, ph.class_name, ph.state, ph.restarts) == (
            True, "pkg.Victim", _states.RESTARTING, 1)
        assert [(s.topic, s.inbox, s.policy, s.timeout) for s in d.subscriptions()] == [
            ("data", "victim", "drop", 0.5)]
        assert d.publishers() == []
    with pytest.raises(ether.InboxNotFound, match="restarting or failed"):
        session.connect("victim")
    snap = session.inspect()
    assert [(m.name, m.placeholder, m.restarts) for m in snap.members] == [("victim", True, 1)]
    assert snap.inboxes == ()  # no ring behind it
    victim.close()
    with session._directory as d:
        assert d.set_placeholder("victim", state=_states.FAILED)
        assert d.find_placeholder("victim").state == _states.FAILED
        assert d.remove_placeholder("victim")
        assert d.subscriptions() == [] and list(d.entries()) == []


def test_a_publisher_counts_what_a_placeholder_would_have_had(session):
    publisher = Node(session, "pub", **{"max_length": 256})
    victim = session.create_inbox("victim", **SMALL)
    other = session.create_inbox("other", **SMALL)
    with session._directory as d:
        d.subscribe("data", victim.token)
        d.subscribe("data", other.token)
    assert publisher.publish("data", {"n": 0}) == 2
    with session._directory as d:
        d.replace_with_placeholder("victim", session.token, state=_states.RESTARTING, restarts=1)
    for n in range(1, 4):
        assert publisher.publish("data", {"n": n}) == 1   # the other still gets each
    stats = {s.inbox: s for s in publisher.statistics()}
    assert stats["victim"].undelivered == 3 and stats["other"].undelivered == 0
    back = Node(session, "victim", **{"max_length": 256})  # the new process, same name
    back.add_handler("data", lambda envelope: None)
    assert publisher.publish("data", {"n": 4}) == 2  # no double count while both exist
    with session._directory as d:
        d.remove_placeholder("victim")
    assert publisher.publish("data", {"n": 5}) == 2
    assert {s.inbox: s.undelivered for s in publisher.statistics()}["victim"] == 3
    for node in (publisher, back):
        node.close()
    for inbox in (victim, other):
        inbox.close()


def test_a_request_to_a_restarting_service_says_so_when_its_wait_ends(session):
    caller = Node(session, "caller", max_length=256)
    server = session.create_inbox("svc", **SMALL)
    with session._directory as d:
        d.subscribe("svc/ping", server.token)
        d.replace_with_placeholder("svc", session.token, state=_states.RESTARTING, restarts=1)
    with pytest.raises(ether.ServiceNotFound, match=r"'svc' is restarting \(waited 0.1 s\)"):
        caller.request("svc/ping", {}, what="service 'svc.ping'", wait=0.1)
    with session._directory as d:
        d.set_placeholder("svc", state=_states.FAILED)
    with pytest.raises(ether.ServiceNotFound, match=r"'svc' failed$"):
        caller.request("svc/ping", {}, what="service 'svc.ping'", wait=5.0)  # at once
    caller.close()
    server.close()


def _stuck_here(depth):
    if depth:
        return _stuck_here(depth - 1)
    import sys
    return handler_in(sys._getframe())


def test_the_stuck_handler_is_the_first_frame_outside_ether_below_the_dispatch():
    assert handler_in(None) is None
    assert _stuck_here(2) is None  # no dispatch on this stack
