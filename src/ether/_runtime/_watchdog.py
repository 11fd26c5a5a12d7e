"""An instance's watchdog: what must reach it even when its inbox is backlogged
and its dispatch thread is inside a handler that never returns (a sensor loop).

- The session's stage (_control.Stage), which the main writes into its own
  directory entry: STOPPING sets node.stopping (what ether.stopping() says),
  SKIPPING has the node skip its queued messages until the shutdown's save_all.
- While the session stops: a Progress report to the main every PROGRESS_S.
"""
from __future__ import annotations

import logging
import threading
import time

from . import _control as control
from ._control import Stage

__all__ = ["Watchdog", "CHECK_S", "PROGRESS_S"]

log = logging.getLogger("Ether")

CHECK_S = 0.2      # how often the thread checks the stage
PROGRESS_S = 1.0   # while stopping: how often the main hears how far this instance got


class Watchdog:
    def __init__(self, name: str, main_inbox: str):
        self.name, self.main_inbox = name, main_inbox
        self.node = self.session = self.lifecycle = None   # attach() once joined
        self._done = threading.Event()   # the instance is leaving

    def attach(self, node, session, lifecycle) -> None:
        """Start watching, now that the instance has joined its session."""
        self.node, self.session, self.lifecycle = node, session, lifecycle
        threading.Thread(target=self._run, name="ether-watchdog", daemon=True).start()

    def stop(self) -> None:
        """The instance is leaving: stop watching (before it closes its session)."""
        self._done.set()

    def _run(self) -> None:
        session, node = self.session, self.node
        directory = session._directory
        generation, stage, next_progress = None, 0, None
        while not self._done.wait(CHECK_S):
            try:
                if not session.owner_alive():
                    return  # the dispatch loop notices it too, and ends
                if stage < Stage.SKIPPING and directory.generation() != generation:
                    generation = directory.generation()  # a change of any member's entry
                    stage = session.member_state(self.main_inbox) or 0
                    self.lifecycle.on_stage(stage)
                if stage >= Stage.STOPPING:
                    now = time.monotonic()
                    if next_progress is None or now >= next_progress:
                        next_progress = now + PROGRESS_S
                        control.send(node, self.main_inbox, control.Progress(
                            self.name, handled=node.handled, skipped=node.skipped,
                            queued=node.backlog()), timeout=1.0)
            except Exception:
                if self._done.is_set() or node.closed:
                    return
                # A report the main could not take (it is busy, or going): try again.
