"""The control protocol: each message round-trips through a real envelope, and a
malformed or unexpected one is refused with the reason."""
from __future__ import annotations

import threading
import types

import msgspec
import pytest

from ether import MalformedMessage
from ether._node import _codec as codec
from ether._runtime import _control as control
from ether._runtime._control import InstanceState
from ether._runtime._supervisor import Supervisor

_encoder = codec.Encoder()


def envelope(topic: str, sender: str, payload) -> codec.Envelope:
    """The envelope a node would send: payload encoded by the node's encoder."""
    return codec.decode(_encoder.envelope(codec.CONTROL, topic, sender, 1, payload))


def raw(topic: str, sender: str, payload) -> codec.Envelope:
    """An envelope whose payload is bytes built by hand (what a stray sender could send)."""
    return envelope(topic, sender, msgspec.Raw(msgspec.msgpack.encode(payload)))


MESSAGES = [
    ("ready", "a", control.Ready("a", 1234)),
    ("failed", "a", control.Failed("a", "ValueError: boom", "ValueError", "Traceback ...")),
    ("failed", "a", control.Failed("a", "ValueError: boom")),
    ("drain", "main", control.Drain(7)),
    ("drain-ack", "a", control.DrainAck("a", 7, published=3, handled=5)),
    ("phase", "main", control.Phase(8, "save_all")),
    ("phase-ack", "a", control.PhaseAck("a", 8, ("save(): OSError: full",))),
    ("phase", "main", control.Phase(9, "save_all", stopping=True)),
    ("phase-ack", "a", control.PhaseAck("a", 9, (), skipped=183)),
    ("progress", "a", control.Progress("a", handled=17, skipped=0, queued=183)),
    ("stop", "main", control.Stop()),
    ("remote", "bridge", control.Remote("bridge", "hostB", "restarted", "p", "0.12", restarts=1)),
]


@pytest.mark.parametrize("tag, sender, message", MESSAGES)
def test_every_message_round_trips_with_its_tag_as_the_topic(tag, sender, message):
    assert message.tag == tag and control.TYPES[tag] is type(message)
    accept = control.REPORTS if isinstance(message, control.Report) else control.COMMANDS
    assert control.decode(envelope(tag, sender, message), accept) == message


def test_the_wire_form_is_a_map_of_the_fields():
    payload = envelope("drain-ack", "a", control.DrainAck("a", 7, 3, 5)).payload
    assert msgspec.msgpack.decode(payload) == {
        "instance": "a", "request": 7, "published": 3, "handled": 5}
    assert msgspec.msgpack.decode(envelope("stop", "main", control.Stop()).payload) == {}


def test_the_two_sides_accept_disjoint_sets_and_every_tag_is_one_of_them():
    assert set(control.REPORTS).isdisjoint(control.COMMANDS)
    assert set(control.REPORTS) | set(control.COMMANDS) == set(control.TYPES.values())
    for command in control.COMMANDS:
        answer = getattr(command, "answer", None)
        assert answer is None or answer in control.REPORTS


def test_a_command_sent_by_send_goes_through_send_control():
    sent = []
    node = types.SimpleNamespace(send_control=lambda *a, **kw: sent.append((a, kw)))
    control.send(node, "a", control.Drain(3), timeout=1.0)
    assert sent == [(("a", "drain", control.Drain(3)), {"timeout": 1.0})]


@pytest.mark.parametrize("env, accept, reason", [
    (raw("bogus", "a", {}), control.REPORTS,
     "control message 'bogus' from 'a': unknown type (known: ready, failed, progress, stuck, health, remote, "
     "drain, drain-ack, phase, phase-ack, stop)"),
    (raw("drain", "a", {"request": 1}), control.REPORTS,
     "control message 'drain' from 'a': not expected here (expected: ready, failed, progress, stuck, health, "
     "remote, drain-ack, phase-ack)"),
    (raw("failed", "a", {"instance": "a"}), control.REPORTS,
     "control message 'failed' from 'a': Object missing required field `error`"),
    (raw("ready", "a", {"instance": "a", "pid": 5, "host": "x"}), control.REPORTS,
     "control message 'ready' from 'a': Object contains unknown field `host`"),
    (raw("ready", "a", {"instance": "a", "pid": "5"}), control.REPORTS,
     "control message 'ready' from 'a': Expected `int`, got `str` - at `$.pid`"),
    (raw("ready", "a", {"instance": "a", "pid": 0}), control.REPORTS,
     "control message 'ready' from 'a': Expected `int` >= 1 - at `$.pid`"),
    (raw("drain-ack", "a", ["a", 1, 2, 3]), control.REPORTS,
     "control message 'drain-ack' from 'a': Expected `object`, got `array`"),
    (raw("drain-ack", "a", {"instance": "a", "request": 1, "published": -1, "handled": 0}),
     control.REPORTS, "control message 'drain-ack' from 'a': Expected `int` >= 0 - at `$.published`"),
    (envelope("failed", "b", control.Failed("a", "boom")), control.REPORTS,
     "control message 'failed' from 'b': it claims to come from 'a'"),
    (codec.Envelope(codec.WIRE_VERSION, codec.CONTROL, "phase", "main", 1, 0, None, None,
                    msgspec.Raw(b""), msgspec.Raw(b"\xc1")), control.COMMANDS,
     "control message 'phase' from 'main': MessagePack data is malformed: invalid opcode"),
    (raw("phase", "main", {"request": 1, "phase": "reboot"}), control.COMMANDS,
     "control message 'phase' from 'main': Invalid enum value 'reboot' - at `$.phase`"),
    (raw("drain", "main", {"request": 0}), control.COMMANDS,
     "control message 'drain' from 'main': Expected `int` >= 1 - at `$.request`"),
    (envelope("stop", "intruder", control.Stop()), control.COMMANDS,
     "control message 'stop' from 'intruder': only 'main' sends these"),
])
def test_a_malformed_or_unexpected_message_is_refused_with_the_reason(env, accept, reason):
    with pytest.raises(MalformedMessage) as info:
        control.decode(env, accept, sender="main" if accept is control.COMMANDS else None)
    assert str(info.value).startswith(reason)


# ---- the supervisor's bookkeeping, without processes ----

@pytest.fixture
def supervisor():
    sup = Supervisor(config=None)
    sup._cond = threading.Condition()
    sup.processes = {"a": types.SimpleNamespace(pid=100), "b": types.SimpleNamespace(pid=200)}
    sup._states = {"a": InstanceState.STARTING, "b": InstanceState.STARTING}
    from ether._node._rejections import Rejections
    sup.node = types.SimpleNamespace(rejections=Rejections("main"))  # where refusals are counted
    return sup


def test_reports_move_an_instance_through_its_states(supervisor):
    assert supervisor._accept(control.Ready("a", 100)) is None
    assert supervisor._accept(control.Failed("b", "ValueError: x")) is None
    assert supervisor.states() == {"a": InstanceState.READY, "b": InstanceState.FAILED}
    supervisor._exited("b")  # a failed start stays failed
    supervisor._exited("a")  # a crash after ready
    assert supervisor.states() == {"a": InstanceState.EXITED, "b": InstanceState.FAILED}


def test_an_exit_after_stop_is_stopped_and_an_exit_while_starting_failed(supervisor):
    supervisor._states["a"] = InstanceState.STOPPING
    supervisor._exited("a")
    supervisor._exited("b")
    assert supervisor.states() == {"a": InstanceState.STOPPED, "b": InstanceState.FAILED}
    # Its report, read after its exit was seen, still says why.
    assert supervisor._accept(control.Failed("b", "ValueError: x")) is None
    assert supervisor._failures["b"].error == "ValueError: x"


@pytest.mark.parametrize("message, reason", [
    (control.Ready("c", 300), "no instance of this session has that name"),
    (control.Ready("a", 999), "pid 999 is not its process's (100)"),
    (control.DrainAck("a", 5, 0, 0), "nobody waits for it (request 5)"),
    (control.PhaseAck("a", 5, ()), "nobody waits for it (request 5)"),
])
def test_a_report_that_does_not_fit_is_refused(supervisor, message, reason):
    assert supervisor._accept(message) == reason
    assert supervisor.states() == {"a": InstanceState.STARTING, "b": InstanceState.STARTING}


def test_a_ready_or_failed_instance_cannot_report_ready_or_failed_again(supervisor):
    supervisor._accept(control.Ready("a", 100))
    assert supervisor._accept(control.Ready("a", 100)) == "the instance is ready"
    assert supervisor._accept(control.Failed("a", "boom")) == "the instance is ready, not starting"
    assert supervisor.states()["a"] is InstanceState.READY


def test_only_the_asked_instances_answer_a_request_and_each_once(supervisor):
    answers = supervisor._awaited[(control.DrainAck, 4)] = {"a": None}
    assert supervisor._accept(control.DrainAck("b", 4, 0, 0)) == "nobody waits for it (request 4)"
    assert supervisor._accept(control.PhaseAck("a", 4, ())) == "nobody waits for it (request 4)"
    assert supervisor._accept(control.DrainAck("a", 4, 1, 2)) is None
    assert supervisor._accept(control.DrainAck("a", 4, 9, 9)) == "request 4 was answered already"
    assert answers == {"a": control.DrainAck("a", 4, 1, 2)}


def test_on_control_never_raises_on_a_bad_message(supervisor):
    for env in (raw("bogus", "a", {}), raw("failed", "a", {"instance": "a"}),
                envelope("ready", "b", control.Ready("a", 100)),
                envelope("drain-ack", "a", control.DrainAck("a", 99, 0, 0))):
        supervisor._on_control(env)
    assert supervisor.states() == {"a": InstanceState.STARTING, "b": InstanceState.STARTING}
