"""An instance's answers to the main process's control messages (_control.py):
drain counts, lifecycle phases, stop; and what the session's stage means for it
(read by its watchdog, _watchdog.py)."""
from __future__ import annotations

import logging
import threading
import traceback

from .._errors import MalformedMessage
from .._node import _codec as codec
from . import _control as control
from ._control import Stage

__all__ = ["Lifecycle"]

log = logging.getLogger("Ether")


class Lifecycle:
    """Answers the main process's control messages."""

    def __init__(self, obj, spec, node, launch):
        """spec: the object's ClassSpec; launch: the instance's LaunchSpec."""
        self.obj, self.spec, self.node, self.launch = obj, spec, node, launch
        # The watchdog starts the skipping, the shutdown's save_all ends it: never
        # the other way round, whatever the order in which the two threads come.
        self._skip_lock = threading.Lock()
        self._saved = False

    def on_stage(self, stage: int) -> None:
        """The session's stage changed (the watchdog's thread)."""
        if stage >= Stage.STOPPING:
            self.node.stopping = True
        if stage >= Stage.SKIPPING:
            with self._skip_lock:
                if not self._saved:
                    self.node.skipping = True

    def _end_skipping(self) -> int:
        """The shutdown's save_all came: handle what comes from now on; return how
        many queued messages were skipped."""
        node = self.node
        node.stopping = True
        with self._skip_lock:
            self._saved = True
            node.skipping = False
            skipped = node.skipped
        if skipped:
            log.warning("instance %r: the shutdown stopped waiting; %d queued message%s "
                        "not handled", self.launch.name, skipped, " was" if skipped == 1 else "s were")
        return skipped

    def on_control(self, envelope: codec.Envelope) -> None:
        name, main = self.launch.name, self.launch.main_inbox
        try:
            command = control.decode(envelope, control.COMMANDS, sender=main)
        except MalformedMessage as exc:  # counted, and logged without flooding
            self.node.rejections.report(envelope.topic, control.reason_of(exc), str(exc),
                                        f"instance {name!r}: ignored a {exc}")
            return
        if isinstance(command, control.Stop):
            self.node.running = False
            return
        if isinstance(command, control.Drain):
            self.node.report_drops()   # counted in `published`: this round waits for them
            ack = control.DrainAck(name, command.request, self.node.published, self.node.handled)
        else:
            skipped = 0
            if command.stopping and command.phase == "save_all":
                skipped = self._end_skipping()
            ack = control.PhaseAck(name, command.request, tuple(self.run_lifecycle(command.phase)),
                                   skipped=skipped)
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
