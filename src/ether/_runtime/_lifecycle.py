"""An instance's answers to the main process's control messages: drain counts,
lifecycle phases, stop."""
from __future__ import annotations

import logging
import traceback

from .._node import _codec as codec

__all__ = ["Lifecycle"]

log = logging.getLogger("Ether")


class Lifecycle:
    """Answers the main process's control messages."""

    def __init__(self, obj, spec, node, launch):
        """spec: the object's ClassSpec; launch: the instance's LaunchSpec."""
        self.obj, self.spec, self.node, self.launch = obj, spec, node, launch

    def on_control(self, envelope: codec.Envelope) -> None:
        command = envelope.topic
        body = self.node.decoders.payload_dict(envelope)
        reply = {"instance": self.launch.name, "request": body.get("request")}
        if command == "drain":
            reply.update(published=self.node.published, handled=self.node.handled)
        elif command == "lifecycle":
            reply["errors"] = self.run_lifecycle(body["phase"])
        elif command == "stop":
            self.node.running = False
            return
        else:
            log.error("instance %r: unknown control message %r", self.launch.name, command)
            return
        self.node.send_control(self.launch.main_inbox, command + "-ack", reply)

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
