"""An instance's answers to the main process's control messages (_control.py):
drain counts, lifecycle phases, stop."""
from __future__ import annotations

import logging
import traceback

from .._errors import MalformedMessage
from .._node import _codec as codec
from . import _control as control

__all__ = ["Lifecycle"]

log = logging.getLogger("Ether")


class Lifecycle:
    """Answers the main process's control messages."""

    def __init__(self, obj, spec, node, launch):
        """spec: the object's ClassSpec; launch: the instance's LaunchSpec."""
        self.obj, self.spec, self.node, self.launch = obj, spec, node, launch

    def on_control(self, envelope: codec.Envelope) -> None:
        name, main = self.launch.name, self.launch.main_inbox
        try:
            command = control.decode(envelope, control.COMMANDS, sender=main)
        except MalformedMessage as exc:
            log.error("instance %r: ignored a %s", name, exc)
            return
        if isinstance(command, control.Stop):
            self.node.running = False
            return
        if isinstance(command, control.Drain):
            ack = control.DrainAck(name, command.request, self.node.published, self.node.handled)
        else:
            ack = control.PhaseAck(name, command.request, tuple(self.run_lifecycle(command.phase)))
        control.send(self.node, main, ack)

    def run_lifecycle(self, phase: str) -> list[str]:
        failures = []
        for name in self.spec.lifecycle.get(phase, ()):
            try:
                getattr(self.obj, name)()
            except Exception:
                text = traceback.format_exc().rstrip()
                log.error("instance %r: %s handler %s() raised:\n%s", self.launch.name, phase, name, text)
                failures.append(f"{name}(): {text.splitlines()[-1]}")
        return failures
