"""The control protocol between the main process and its instances: one typed
message per kind, and the states the main tracks each instance through.

Wire form: a CONTROL envelope (see _node/_codec.py) whose topic is the message's
tag and whose payload is the Struct as a MessagePack map of its fields:

    tag         direction        fields
    ready       instance -> main instance, pid
    failed      instance -> main instance, error, type, traceback
    progress    instance -> main instance, handled, skipped, queued
    stuck       instance -> main instance, handler, seconds
    health      instance -> main instance, ok, detail
    remote      bridge -> main   instance, host, event, name, text, restarts, pid
    drain       main -> instance request
    drain-ack   instance -> main instance, request, published, handled
    phase       main -> instance request, phase, stopping
    phase-ack   instance -> main instance, request, errors, skipped
    stop        main -> instance (none)

A request (drain, phase) carries a number that its ack repeats; the main waits
for the acks of the requests it sent and no others. `stuck` and `health` come
unasked from the instance's watchdog (_health.py): the main kills and restarts
by policy an instance that is stuck or unhealthy, and one whose health reports
stop coming (_restarts.py).

A command waits in the instance's inbox behind every message queued before it.
What must reach an instance at once - that shutdown began, that it should skip
its backlog - is the main's Stage, which the main writes into its own entry of
the session directory and each instance's watchdog reads (_watchdog.py); its
progress reports come back as `progress`, sent by that watchdog.

decode() turns an envelope into one of these or raises MalformedMessage saying
why not: an unknown tag, a message not meant for this side, fields missing,
extra or of the wrong type, a report naming another instance than its
envelope's sender. The receivers log that and carry on.
"""
from __future__ import annotations

import enum
from typing import Annotated, ClassVar, Literal

import msgspec

from .._core import _states as codes
from .._errors import MalformedMessage
from .._node import _codec as codec
from .._spec._decorators import LIFECYCLE

__all__ = [
    "InstanceState", "Stage", "Control", "Report", "Ready", "Failed", "Progress", "Stuck",
    "Health", "Remote", "Ack",
    "DrainAck", "PhaseAck", "Command", "Drain", "Phase", "Stop", "TYPES", "REPORTS", "COMMANDS",
    "decode", "refused", "reason_of", "send",
]

_Count = Annotated[int, msgspec.Meta(ge=0)]
_Request = Annotated[int, msgspec.Meta(ge=1)]


class InstanceState(enum.Enum):
    """Where an instance is in its life, as the main process knows it.

        STARTING --Ready--> READY --Stop sent--> STOPPING --exit--> STOPPED
            |                 |
            | Failed, exit    | exit, unasked
            v                 v
          FAILED            EXITED

    A failed start stops the instances still starting: STARTING -> STOPPING.
    With a restart policy (_restarts.py), an exit while READY (or a failed
    restart) goes to RESTARTING instead, and back to READY when the new process
    reports ready; past the policy's limit, to FAILED. A stuck handler or a
    failed health check: READY -> STUCK -> (killed) -> RESTARTING or EXITED.

    `code` is the number the main writes into the instance's directory entry
    (_core/_states.py), which `ether.lowlevel.inspect()` shows; `of(code)` reads it.
    """
    STARTING = "starting"   # launched; has not reported ready yet
    READY = "ready"         # reported ready: serving, answers requests
    STOPPING = "stopping"   # told to stop; its process has not exited yet
    STOPPED = "stopped"     # exited after it was told to stop (or was killed then)
    FAILED = "failed"       # could not start, or restarted too often within its window
    EXITED = "exited"       # exited on its own after it was ready (a crash), not restarted
    RESTARTING = "restarting"  # exited; a new process is on its way (after its backoff)
    STUCK = "stuck"         # a handler did not return in time, or its health check failed

    @property
    def code(self) -> int:
        return _CODES[self]

    @classmethod
    def of(cls, code: int) -> "InstanceState | None":
        """The state a directory entry's state word holds (None: unknown, 0)."""
        return _STATES.get(code)


_CODES = {InstanceState.STARTING: codes.STARTING, InstanceState.READY: codes.READY,
          InstanceState.STOPPING: codes.STOPPING, InstanceState.STOPPED: codes.STOPPED,
          InstanceState.FAILED: codes.FAILED, InstanceState.EXITED: codes.EXITED,
          InstanceState.RESTARTING: codes.RESTARTING, InstanceState.STUCK: codes.STUCK}
_STATES = {code: state for state, code in _CODES.items()}


class Stage(enum.IntEnum):
    """The session's stage, as the main process writes it into the state of its own
    directory entry (0 there: not yet known)."""
    RUNNING = 1     # tap has started the instances
    STOPPING = 2    # shutdown began: ether.stopping() is True everywhere
    SKIPPING = 3    # shutdown stopped waiting: skip what is queued, then save


class Control(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A control message; `tag` is its envelope's topic. Subclasses inherit the
    config: frozen, and a field the type does not have is an error."""
    tag: ClassVar[str]


class Report(Control):
    """From an instance, about itself: accepted only from the instance it names."""
    instance: str


class Ready(Report):
    """Joined, constructed, bound and subscribed: it serves from now on."""
    tag: ClassVar[str] = "ready"
    pid: Annotated[int, msgspec.Meta(ge=1)]


class Failed(Report):
    """Could not start; the process exits next."""
    tag: ClassVar[str] = "failed"
    error: str            # one line: the exception as the traceback's last line shows it
    type: str = ""        # the exception's class name
    traceback: str = ""   # the whole traceback, for the main's error


class Progress(Report):
    """Sent about once a second while the session shuts down: how far it got."""
    tag: ClassVar[str] = "progress"
    handled: _Count       # messages handled so far
    skipped: _Count       # messages skipped because the shutdown stopped waiting
    queued: _Count        # about how many wait in its inbox


class Stuck(Report):
    """From the watchdog: a handler has not returned (nor called ether.alive())
    for `seconds`; the main kills the instance and restarts it by policy."""
    tag: ClassVar[str] = "stuck"
    handler: str          # "Class.method (file.py:line)", or what the stack showed
    seconds: Annotated[float, msgspec.Meta(ge=0)]


class Health(Report):
    """From the watchdog, every health_interval_s: the @ether_health methods'
    verdict (ok, and why not); its absence for long is a sign too."""
    tag: ClassVar[str] = "health"
    ok: bool
    detail: str = ""


class Remote(Report):
    """From the bridge: what the agent of another host says of an instance it runs
    for this session (docs/design/remote-launch.md): exited, restarting,
    restarted, failed, gone (the agent or its host left the site)."""
    tag: ClassVar[str] = "remote"
    host: str
    event: str
    name: str
    text: str = ""
    restarts: _Count = 0
    pid: _Count = 0


class Ack(Report):
    """The answer to one Command: `request` is the command's."""
    request: _Request


class DrainAck(Ack):
    tag: ClassVar[str] = "drain-ack"
    published: _Count     # messages this instance has published so far
    handled: _Count       # messages it has handled so far


class PhaseAck(Ack):
    tag: ClassVar[str] = "phase-ack"
    errors: tuple[str, ...]   # "method(): Exception: text" per handler that raised
    skipped: _Count = 0       # queued messages it did not handle (a shutdown's save_all)


class Command(Control):
    """From the main process; answered by an `answer` with the same request."""
    answer: ClassVar[type[Ack]]
    request: _Request


class Drain(Command):
    """How many messages have you published? (see docs/design/lifecycle.md)"""
    tag: ClassVar[str] = "drain"
    answer: ClassVar[type[Ack]] = DrainAck


class Phase(Command):
    """Run your handlers of this lifecycle phase."""
    tag: ClassVar[str] = "phase"
    answer: ClassVar[type[Ack]] = PhaseAck
    phase: Literal[LIFECYCLE]  # type: ignore[valid-type]
    stopping: bool = False     # part of the shutdown: end the skipping (see Stage)


class Stop(Control):
    """Leave the dispatch loop and exit; not answered (the main joins the process)."""
    tag: ClassVar[str] = "stop"


TYPES: dict[str, type[Control]] = {
    t.tag: t for t in (Ready, Failed, Progress, Stuck, Health, Remote, Drain, DrainAck, Phase,
                       PhaseAck, Stop)}
REPORTS = (Ready, Failed, Progress, Stuck, Health, Remote, DrainAck, PhaseAck)  # what the main accepts
COMMANDS = (Drain, Phase, Stop)                # what an instance accepts

_DECODE: dict = {}   # tag -> decoder, built at its first message (a tap uses few of them)


def _decoder(tag: str):
    decode = _DECODE.get(tag)
    if decode is None:
        decode = _DECODE[tag] = msgspec.msgpack.Decoder(TYPES[tag]).decode
    return decode


def decode(envelope: codec.Envelope, accept: tuple[type[Control], ...], *,
           sender: str | None = None) -> Control:
    """The control message in `envelope`, if it is one of `accept`, well formed,
    from `sender` (if given) and, for a Report, from the instance it names.
    Raise MalformedMessage with the reason otherwise."""
    what = f"control message {envelope.topic!r} from {envelope.sender!r}"
    kind = TYPES.get(envelope.topic)
    if kind is None:
        raise refused(what, "unknown type", f"known: {', '.join(TYPES)}")
    if kind not in accept:
        raise refused(what, "not expected here",
                      f"expected: {', '.join(t.tag for t in accept)}")
    if sender is not None and envelope.sender != sender:
        raise refused(what, "wrong sender", f"only {sender!r} sends these")
    try:
        message = _decoder(envelope.topic)(envelope.payload)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        raise refused(what, "malformed", str(exc)) from None
    if isinstance(message, Report) and message.instance != envelope.sender:
        raise refused(what, "forged instance", f"it claims to come from {message.instance!r}")
    return message


def refused(what: str, reason: str, detail: str) -> MalformedMessage:
    """The error for a refused control message; `reason` (a few fixed words) is
    what its rejections are counted under, so a flood of forgeries is one line."""
    exc = MalformedMessage(f"{what}: {detail}" if reason in ("malformed", "wrong sender",
                                                              "forged instance")
                           else f"{what}: {reason} ({detail})")
    exc.reason = reason
    return exc


def reason_of(exc: MalformedMessage) -> str:
    return f"control refused: {getattr(exc, 'reason', 'malformed')}"


def send(node, inbox: str, message: Control, *, timeout: float = 5.0) -> None:
    """Send `message` straight to `inbox` through `node`."""
    node.send_control(inbox, message.tag, message, timeout=timeout)
