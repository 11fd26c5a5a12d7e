"""Member restarts: a member (the bridge) that dies while the session runs is
started again, always, as a fresh interpreter.

Why always, and not by a `restart:` setting: a member is Ether's own process,
not user code. It keeps no state of its own that a restart could lose (the
bridge rebuilds everything from the session's directory and the site's
liveliness tokens), and a dead bridge silently cuts its host off from the site.
So no setting turns it off; the limits are the session's `supervision:` ones
(max_restarts within restart_window_s, the backoff), as for an instance, and a
member that keeps dying is marked failed with its last cause, and the session's
`on_failure` decides (docs/design/bridge.md).

The procedure differs from an instance's (_restarts.py) in one point: no
placeholder. The dead member leaves the directory at once, with every inbox it
held (the bridge's proxies of remote instances), so calls pending through it
fail with ServiceGone now rather than wait for it; the new one declares what it
stands for again. The supervisor's watcher calls `on_exit`; the restart runs
in a thread of its own; lifecycle events `restarting`, `restarted` and `failed`
go on ether/log as an instance's do.
"""
from __future__ import annotations

import logging
import time

from .. import _errors as errors
from ._control import InstanceState
from ._restarts import RestartBook, exit_cause, take_over

__all__ = ["MemberRestarts"]

log = logging.getLogger("Ether")


class MemberRestarts:
    """Restarts a Supervisor's members. `launch(name, restarts)` starts one again
    and returns its process."""

    def __init__(self, supervisor, policy, on_failure: str, launch):
        """policy: the session's SupervisionConfig (its limits; restart is always)."""
        self.sup = supervisor
        self.policy = policy.model_copy(update={"restart": "always"})
        self.on_failure = on_failure
        self.launch = launch
        self.books: dict[str, RestartBook] = {}
        self._dead: set[int] = set()     # pids seen exiting
        self.timings: list[float] = []   # death -> ready, per restart done

    def on_exit(self, name: str, process) -> bool:
        """The member's process exited. True if handled here (restarting, or failed
        for good); False: the supervisor's own path (a failed start at tap, a stop)."""
        sup = self.sup
        cause, _ = exit_cause(process.pid, process)
        now = time.monotonic()
        with sup._cond:
            self._dead.add(process.pid)
            sup._cond.notify_all()  # a restart waiting for this one's Ready stops waiting
            state = sup._states.get(name)
            if sup.processes.get(name) is not process or sup._closing.is_set() or state not in (
                    InstanceState.READY, InstanceState.RESTARTING):
                return False
            if name in sup._failures:  # a restart that could not start says why
                cause = f"{cause}; it failed to start: {sup._failures.pop(name).error}"
            book = self.books.setdefault(name, RestartBook(self.policy))
            decision = book.decide(now, True)  # no exit of a member is asked for but Stop's
            sup._states[name] = InstanceState.RESTARTING if decision.restart else InstanceState.FAILED
            sup._cond.notify_all()
        sup._forget_instance(name)  # now: calls through it fail with ServiceGone
        what = f"{sup._what(name)} exited ({cause})"
        if not decision.restart:
            sup._event("failed", name, cause=cause)
            log.error("%s; not restarted: %s. It is marked failed%s", what, decision.why,
                      "; on_failure: shutdown ends the session" if self.on_failure == "shutdown"
                      else " (on_failure: continue: the session carries on without it)")
            if self.on_failure == "shutdown" and sup.on_failure_shutdown is not None:
                sup.on_failure_shutdown(f"{sup._what(name)} failed")
            return True
        sup._event("restarting", name, cause=cause)
        log.warning("%s; what it carried is gone until it is back; restarting it in %.2g s "
                    "(restart %d)", what, decision.delay, decision.count)
        sup._spawn_thread(lambda: self._restart(name, decision, process, now),
                          f"ether-restart-{name}")
        return True

    def _restart(self, name: str, decision, old, died_at: float) -> None:
        sup = self.sup
        if sup._closing.wait(decision.delay):
            return
        try:
            process = self.launch(name, decision.count)
        except Exception as exc:  # no process: failed for good
            log.error("%s: could not launch it again: %s", sup._what(name), exc)
            with sup._cond:
                sup._states[name] = InstanceState.FAILED
            sup._event("failed", name, cause=str(exc))
            return
        if not take_over(sup, name, process, old, self._dead, sup._what(name)):
            return
        try:
            with sup.session._directory as d:
                entry = d.find(name)
                if entry is not None:
                    d.set_info(entry.token, state=InstanceState.READY.code,
                               restarts=decision.count)
        except errors.EtherError:
            return
        took = time.monotonic() - died_at
        self.timings.append(took)
        log.info("%s is back (restart %d): ready %.3f s after it died", sup._what(name),
                 decision.count, took)
        sup._event("restarted", name, restarts=decision.count, seconds=round(took, 4))
