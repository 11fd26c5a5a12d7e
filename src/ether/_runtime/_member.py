"""Member: a process the supervisor starts by module name (`python -m MODULE`),
such as the bridge, and which is an ordinary member of the session without being
a configured instance.

The supervisor knows no such module: it starts the interpreter with a MemberSpec
on stdin (MessagePack, never pickle), and the module builds itself on
`ether.lowlevel.Member`, which gives it what an instance gets from _child.py: its
log file in the session's log folder, the main's death noticed (_watchdog.py),
the readiness handshake (Ready, or Failed with the cause), and Stop. It is
told nothing of drains and lifecycle phases: the supervisor leaves members out
of those, and stops them after the instances.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading

import msgspec

from .. import _errors as errors
from . import _control as control

__all__ = ["MemberSpec", "Member"]

log = logging.getLogger("Ether")


class MemberSpec(msgspec.Struct, frozen=True):
    session: str
    name: str                  # its inbox and its log file's name
    main_inbox: str
    parent_pid: int
    parent_death_signal: bool = False
    cwd: str = ""
    restarts: int = 0          # how many times it was started again (_member_restarts.py)
    options: dict = {}         # the module's own (e.g. the bridge's config section)


class Member:
    """One member process: `Member.from_stdin()`, then `join()`, `ready()` (or
    `fail(exc)`), wait on `stopping`, and `close()`."""

    def __init__(self, spec: MemberSpec):
        self.spec = spec
        self.name = spec.name
        self.options = spec.options
        self.stopping = threading.Event()  # Stop came, or the main died
        self.session = self.node = None
        self.log_path = None
        self._watchdog = None

    @classmethod
    def from_stdin(cls) -> "Member":
        """The spec from stdin; SIGINT left to the main; logging to `<name>.log`;
        the main's death watched from now on."""
        data = sys.stdin.buffer.read()
        if not data:  # started ahead (_launch.prestart_module), and not needed after all
            raise SystemExit(0)
        spec = msgspec.msgpack.decode(data, type=MemberSpec)
        sys.stdin.close()
        sys.stdin = open(os.devnull)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group: the main orchestrates
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        if spec.cwd:
            os.chdir(spec.cwd)
        member = cls(spec)
        from ._watchdog import Watchdog
        member._watchdog = Watchdog(spec.name, spec.main_inbox, spec.parent_pid)
        member._watchdog.install(parent_death_signal=spec.parent_death_signal)
        from . import _logs
        member.log_path = _logs.configure_process_logging(spec.session, spec.name, console=True)
        return member

    def join(self, *, max_producers: int = 1024):
        """Open the session and make this member's node; returns (session, node)."""
        from .._core._session import Session
        from .._node._node import Node
        self.session = Session.open(self.spec.session)
        self.node = Node(self.session, self.name, max_producers=max_producers)
        self.node.on_control = self._on_control
        if self.spec.restarts:  # what inspect() shows, from its first appearance
            with self.session._directory as d:
                d.set_info(self.node.inbox.token, restarts=self.spec.restarts)
        self._watchdog.attach(self.node, self.session, self)
        return self.session, self.node

    def ready(self) -> None:
        control.send(self.node, self.spec.main_inbox, control.Ready(self.name, os.getpid()))

    def remote(self, host: str, event: str, name: str, text: str = "", restarts: int = 0,
               pid: int = 0) -> None:
        """Tell the main what the agent of `host` says of its instance `name`
        (the bridge's part of remote launch, docs/design/remote-launch.md)."""
        control.send(self.node, self.spec.main_inbox, control.Remote(
            self.name, host, event, name, text, restarts, pid))

    def fail(self, exc: BaseException) -> None:
        """Tell the main why this member cannot start (a report and a failure file)."""
        from ._child import _report_failure
        _report_failure(self.spec, exc, self.node, self.log_path)

    # what the watchdog calls
    def on_stage(self, stage: int) -> None:
        if stage >= control.Stage.STOPPING and self.node is not None:
            self.node.stopping = True

    def _on_control(self, envelope) -> None:
        try:
            command = control.decode(envelope, control.COMMANDS, sender=self.spec.main_inbox)
        except errors.MalformedMessage as exc:
            self.node.rejections.report(envelope.topic, "control refused", str(exc),
                                        f"{self.name}: ignored a {exc}")
            return
        if isinstance(command, control.Stop):
            self.stopping.set()
        elif isinstance(command, control.Drain):  # not asked today; answered all the same
            control.send(self.node, self.spec.main_inbox, control.DrainAck(
                self.name, command.request, self.node.published, self.node.handled))
        else:
            control.send(self.node, self.spec.main_inbox,
                         control.PhaseAck(self.name, command.request, ()))

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.stop()
        node, session = self.node, self.session
        if node is not None:
            node.close()
        if session is not None:
            try:
                session.remove_if_orphaned()  # the last one out of a dead session cleans up
            except Exception:
                pass
            session.close()
