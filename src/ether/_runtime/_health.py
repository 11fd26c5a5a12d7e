"""An instance's health, judged by its own watchdog thread (_watchdog.py), so that
the dispatch path pays nothing for it.

Stuck (`stuck_after_s`): every CHECK_S the watchdog reads what the node already
keeps - the batch being dispatched (one tuple a batch, with the dispatching
thread's id), `handled + skipped + served`, and `beats` (ether.alive()). While a
batch is in progress and none of these moved for stuck_after_s, a handler has not
returned: the thread's stack (sys._current_frames) names the handler - the first
frame outside the ether package - and a Stuck report goes to the main, which
kills the instance and restarts it by policy. A lifecycle handler (init,
save_all, ...) is never judged stuck: the main bounds those phases itself. A
sensor loop inside a handler calls `ether.alive()` (one attribute increment) to
say it is alive.

Health (`health_interval_s`): every interval the watchdog calls the class's
@ether_health methods (in its own thread: they must not wait for the dispatch
thread) and sends the verdict as a Health report; that report is also the
instance's heartbeat, whose absence the main notices (a process stopped, or a C
call that holds the GIL, which also stops this thread). A method is unhealthy
if it returns False (or a str: the reason) or raises.
"""
from __future__ import annotations

import logging
import os
import sys
import time

from . import _control as control
from ._control import Stage

__all__ = ["Health"]

log = logging.getLogger("Ether")

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _is_ether(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_PACKAGE)


def handler_in(frame) -> str | None:
    """The user handler a dispatch thread's stack is in: "Class.method (file:line)",
    the first frame outside the ether package below the node's innermost
    dispatch; None if that thread is in a lifecycle handler or in no handler."""
    stack = []
    while frame is not None:
        stack.append(frame)
        frame = frame.f_back
    stack.reverse()  # outermost first
    start = max((i for i, f in enumerate(stack) if f.f_code.co_name == "dispatch"
                 and _is_ether(f.f_code.co_filename)), default=None)
    if start is None:
        return None
    for f in stack[start + 1:]:
        code = f.f_code
        if _is_ether(code.co_filename):
            if code.co_name in ("run_lifecycle", "on_control"):
                return None
            continue
        name = getattr(code, "co_qualname", code.co_name)
        return f"{name} ({os.path.basename(code.co_filename)}:{f.f_lineno})"
    return None


class Health:
    """Run by an instance's watchdog: stuck detection and health checks."""

    def __init__(self, name: str, main_inbox: str, node, obj, methods: tuple[str, ...], *,
                 stuck_after_s: float | None, health_interval_s: float | None):
        self.name, self.main_inbox, self.node, self.obj = name, main_inbox, node, obj
        self.methods = methods
        self.stuck_after_s = stuck_after_s
        self.health_interval_s = health_interval_s
        self._seen = None        # (batch, progress, beats) last time it changed
        self._since = 0.0
        self._reported = False
        self._next_health = time.monotonic() + (health_interval_s or 0.0)

    @property
    def active(self) -> bool:
        return bool(self.stuck_after_s or self.health_interval_s)

    def tick(self, now: float, stage: int) -> None:
        """Once per watchdog round (its thread)."""
        if stage >= Stage.STOPPING:
            return  # the shutdown bounds every wait itself
        if self.stuck_after_s:
            self._check_stuck(now)
        if self.health_interval_s and now >= self._next_health:
            self._next_health = now + self.health_interval_s
            ok, detail = self._check_health()
            control.send(self.node, self.main_inbox, control.Health(self.name, ok, detail),
                         timeout=1.0)

    def _check_stuck(self, now: float) -> None:
        node = self.node
        batch = node._batch
        seen = (batch, node.handled + node.skipped + node.served, node.beats)
        previous = self._seen
        if (node._depth == 0 or previous is None or previous[0] is not batch
                or previous[1:] != seen[1:]):
            self._seen, self._since, self._reported = seen, now, False
            return
        waited = now - self._since
        if self._reported or waited < self.stuck_after_s:
            return
        frame = sys._current_frames().get(batch[2])
        handler = handler_in(frame) if frame is not None else None
        if handler is None:  # a lifecycle phase, or between handlers: start again
            self._since = now
            return
        self._reported = True
        log.error("instance %r: handler %s has not returned for %.1f s (stuck_after_s %g)",
                  self.name, handler, waited, self.stuck_after_s)
        control.send(self.node, self.main_inbox, control.Stuck(self.name, handler, waited),
                     timeout=1.0)

    def _check_health(self) -> tuple[bool, str]:
        for method in self.methods:
            try:
                verdict = getattr(self.obj, method)()
            except Exception as exc:
                return False, f"{method}() raised {type(exc).__name__}: {exc}"
            if verdict is False:
                return False, f"{method}() returned False"
            if isinstance(verdict, str):
                return False, f"{method}(): {verdict}"
        return True, ""
