"""Restart policies: whether an instance that exited comes back, after how long,
and the procedure that brings it back.

The policy is Erlang/OTP's restart intensity and systemd's Restart=:

- `restart`: `never` (the default: the exit is logged, with the policy, and the
  session carries on without it), `on-failure` (an exit with a non-zero code, a
  signal, a failed start or a stuck handler; not `exit(0)`), or `always`;
- at most `max_restarts` restarts within `restart_window_s`: the next exit
  within the window marks the instance failed, with its last exit cause, and
  the session's `on_failure` decides (carry on, or an ordered shutdown);
- the k-th restart within the window waits `backoff_s * backoff_factor**(k-1)`,
  at most `backoff_max_s`.

RestartBook is that arithmetic, for one instance, and nothing else (tested
alone). Restarter runs it for a Supervisor: the watcher thread tells it of each
exit (`on_exit`), before the supervisor's own bookkeeping; a restart runs in a
thread of its own, so the watcher keeps watching the others:

1. the dead instance's directory entry becomes a placeholder with its
   subscriptions (_core/_directory.py): publishers count what they would have
   sent it as undelivered, and `ether.get` waits for it; its ring is unlinked;
2. after the backoff, the same LaunchSpec is launched again from this thread
   (so without the parent-death signal, which follows the forking thread: the
   instance's watchdog still notices the main's death), with its restart count;
3. it joins, subscribes and reports Ready like any instance; then the
   placeholder goes, its entry shows READY and the count, and its `init`
   handlers run (for this instance only).

Everything that changes the supervisor's states happens under the node's
condition, as the supervisor's own changes do; a shutdown (`closing`) cancels
any restart not yet launched, and kills one launched too late to be stopped.
"""
from __future__ import annotations

import collections
import logging
import os
import signal
import time

import msgspec

from .. import _errors as errors
from .._core import _names as names
from .._core import _segment as segment
from . import _control as control
from . import _launch
from ._control import InstanceState

__all__ = ["Decision", "RestartBook", "Restarter", "exit_cause", "take_over"]

log = logging.getLogger("Ether")

HEALTH_GRACE = 3.0   # a health report overdue by this many intervals (at least 2 s) is a hang


class Decision(msgspec.Struct, frozen=True):
    restart: bool
    delay: float = 0.0   # the backoff before this restart
    count: int = 0       # the instance's restarts, this one included
    why: str = ""        # when not restarted: the reason, for the log


class RestartBook:
    """One instance's policy and the times of its recent restarts."""

    def __init__(self, policy):
        """policy: its resolved ether.config.SupervisionConfig."""
        self.policy = policy
        self.count = 0                        # restarts so far
        self._recent: collections.deque[float] = collections.deque()

    def decide(self, now: float, failure: bool) -> Decision:
        """The instance exited at `now` (`failure`: not a clean exit(0)): restart it?
        A restart decided is recorded."""
        p = self.policy
        if p.restart == "never":
            return Decision(False, why="restart: never")
        if p.restart == "on-failure" and not failure:
            return Decision(False, why="it exited cleanly, and restart: on-failure restarts "
                                       "only failures")
        recent = self._recent
        while recent and now - recent[0] > p.restart_window_s:
            recent.popleft()
        if len(recent) >= p.max_restarts:
            return Decision(False, why=f"restarted {len(recent)} time{'s' if len(recent) != 1 else ''} "
                                       f"within {p.restart_window_s:g} s already (max_restarts "
                                       f"{p.max_restarts})")
        delay = min(p.backoff_max_s, p.backoff_s * p.backoff_factor ** len(recent))
        recent.append(now)
        self.count += 1
        return Decision(True, delay, self.count)


def exit_cause(pid: int, process) -> tuple[str, bool]:
    """(what ended the exited child `pid`, whether that is a failure), read
    without reaping it (waitid WNOWAIT) unless someone reaped it already."""
    code = None
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        if info is not None:
            code = info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
    except (ChildProcessError, OSError):
        code = process.exitcode
    if code is None:
        return "it exited", True
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}", True
    return f"exit code {code}", code != 0


class Restarter:
    """Restarts a Supervisor's instances by their policies."""

    def __init__(self, supervisor, policies: dict, on_failure: str):
        """policies: instance name -> its SupervisionConfig."""
        self.sup = supervisor
        self.books = {name: RestartBook(p) for name, p in policies.items()}
        self.on_failure = on_failure
        self._subscriptions: dict[str, list] = {}   # what each subscribed when last ready
        self._dead: set[int] = set()                # pids seen exiting
        self._said: set[str] = set()                # deaths this logged (restart: never)
        self._died_at: dict[str, float] = {}
        self._why_stuck: dict[str, str] = {}
        self._last_health: dict[str, float] = {}    # instances with health checks
        self.timings: list[float] = []   # death -> ready and subscribed, per restart done

    # ---- what the supervisor calls ----

    def remember(self, *names: str) -> None:
        """The instance is ready: note its subscriptions (its placeholder keeps them
        even if a caller removed its dead entry before the watcher saw the exit)."""
        session = self.sup.session
        try:
            with session._directory as d:
                subscriptions = d.subscriptions()
                for name in names:
                    entry = d.find(name)
                    if entry is not None:
                        self._subscriptions[name] = [s for s in subscriptions
                                                     if s.inbox_token == entry.token]
        except errors.EtherError:
            pass
        for name in names:
            if name in self.books and self.books[name].policy.health_interval_s:
                self._last_health[name] = time.monotonic()

    def said_exit(self, name: str) -> bool:
        """Whether on_exit logged this death already (then the supervisor does not)."""
        if name in self._said:
            self._said.discard(name)
            return True
        return False

    def on_exit(self, name: str, process) -> bool:
        """The process of `name` has exited (a zombie, or reaped). True if handled
        here (restarting, or failed by policy); False: the supervisor's own path
        (a start-up failure at tap, a shutdown, or restart: never - logged here)."""
        sup = self.sup
        if name not in self.books:  # not a configured instance (a member such as a bridge)
            return False
        cause, failure = exit_cause(process.pid, process)
        now = time.monotonic()
        with sup._cond:
            self._dead.add(process.pid)
            state = sup._states.get(name)
            if sup.processes.get(name) is not process or sup._closing.is_set() or state not in (
                    InstanceState.READY, InstanceState.STUCK, InstanceState.RESTARTING):
                return False
            stuck = self._why_stuck.pop(name, None)
            if name in sup._failures:  # a restart that could not start says why
                cause = f"{cause}; it failed to start: {sup._failures.pop(name).error}"
            decision = self.books[name].decide(now, failure or stuck is not None)
            self._last_health.pop(name, None)
            if decision.restart:
                sup._states[name] = InstanceState.RESTARTING
                self._died_at.setdefault(name, now)
            elif self.books[name].policy.restart != "never":
                sup._states[name] = InstanceState.FAILED
            sup._cond.notify_all()
        what = f"instance {name!r} exited ({cause}{'; ' + stuck if stuck else ''})"
        if not decision.restart and self.books[name].policy.restart == "never":
            log.warning("%s; not restarted (restart: never); its topics and services are gone",
                        what)
            self._said.add(name)
            return False
        self._to_placeholder(name, InstanceState.RESTARTING if decision.restart else
                             InstanceState.FAILED)
        self._event("restarting" if decision.restart else "failed", name, cause=cause)
        if not decision.restart:
            self._died_at.pop(name, None)
            log.error("%s; not restarted: %s. It is marked failed%s", what, decision.why,
                      "; on_failure: shutdown ends the session" if self.on_failure == "shutdown"
                      else " (on_failure: continue: the session carries on without it)")
            if self.on_failure == "shutdown" and sup.on_failure_shutdown is not None:
                sup.on_failure_shutdown(f"instance {name!r} failed")
            return True
        log.warning("%s; restarting it in %.2g s (restart %d, restart: %s)", what,
                    decision.delay, decision.count, self.books[name].policy.restart)
        sup._spawn_thread(lambda: self._restart(name, decision, process),
                          f"ether-restart-{name}")
        return True

    def on_stuck(self, name: str, why: str) -> bool:
        """A report says the instance is stuck or unhealthy (under the condition): mark
        it; the caller kills it (outside the lock). False if it does not apply."""
        sup = self.sup
        if sup._states.get(name) is not InstanceState.READY or sup._closing.is_set():
            return False
        sup._states[name] = InstanceState.STUCK
        self._why_stuck[name] = why
        return True

    def on_health(self, name: str) -> None:
        """A health report came (under the condition)."""
        if name in self._last_health:
            self._last_health[name] = time.monotonic()

    def overdue(self, now: float) -> list[tuple[str, float]]:
        """Instances whose health reports stopped coming (the watchdog thread cannot
        run: the process is stopped, or a C call holds the GIL): (name, silence)."""
        out = []
        for name, last in list(self._last_health.items()):
            interval = self.books[name].policy.health_interval_s
            if now - last > max(HEALTH_GRACE * interval, interval + 2.0):
                out.append((name, now - last))
        return out

    # ---- the restart ----

    def _to_placeholder(self, name: str, state: InstanceState) -> None:
        sup = self.sup
        session = sup.session
        try:
            with session._directory as d:
                dead = d.replace_with_placeholder(name, session.token, state=state.code,
                                                  restarts=self.books[name].count)
                if dead is None and self._subscriptions.get(name):
                    placeholder = d.find_placeholder(name)
                    known = {(s.topic, s.policy, s.timeout) for s in d.subscriptions()
                             if placeholder is not None and s.inbox_token == placeholder.token}
                    for s in self._subscriptions[name]:
                        if placeholder is not None and (s.topic, s.policy, s.timeout) not in known:
                            d.subscribe(s.topic, placeholder.token, s.policy, s.timeout)
            if dead is not None:  # its ring: nobody reads it any more; its liveness lock
                segment.unlink(names.inbox_segment(session.name, dead.token))
                segment.holder_alive(names.member_lock(session.name, dead.owner))  # unlinks it
            from .._core import _arena_writer
            _arena_writer.remove_dead_arenas(session)
        except errors.EtherError as exc:  # the session is closing
            log.debug("instance %r: placeholder not made: %s", name, exc)

    def _restart(self, name: str, decision: Decision, old) -> None:
        sup = self.sup
        if sup._closing.wait(decision.delay):
            return
        spec = msgspec.structs.replace(sup._specs[name], restarts=decision.count,
                                   parent_death_signal=False)
        try:
            process = _launch.start(spec, sup._method)
        except Exception as exc:  # no process: as a failed start
            log.error("instance %r: could not launch it again: %s", name, exc)
            with sup._cond:
                sup._states[name] = InstanceState.FAILED
            self._to_placeholder(name, InstanceState.FAILED)
            return
        if take_over(sup, name, process, old, self._dead, f"instance {name!r}"):
            self._back(name, decision)

    def _back(self, name: str, decision: Decision) -> None:
        """The new process reported ready: it serves, under its name, with its count."""
        sup = self.sup
        session = sup.session
        try:
            with session._directory as d:
                d.remove_placeholder(name)
                entry = d.find(name)
                if entry is not None:
                    d.set_info(entry.token, state=InstanceState.READY.code,
                               restarts=decision.count)
        except errors.EtherError:
            return
        took = time.monotonic() - self._died_at.pop(name, time.monotonic())
        self.remember(name)
        acks = {}
        try:
            acks = sup.run_phase("init", only=(name,))
        except errors.EtherError as exc:
            log.error("instance %r: after its restart: %s", name, exc)
        for ack in acks.values():
            for failure in ack.errors:
                log.error("instance %r: init handler failed after its restart: %s", name, failure)
        self.timings.append(took)  # last: the restart is over, its init included
        log.info("instance %r is back (restart %d): ready and subscribed %.3f s after it died",
                 name, decision.count, took)
        self._event("restarted", name, restarts=decision.count, seconds=round(took, 4))

    def _event(self, event: str, name: str, **fields) -> None:
        self.sup._event(event, name, **fields)   # ether/log


def take_over(sup, name: str, process, old, dead: set, what: str) -> bool:
    """A relaunched process (an instance's or a member's) takes `name` over from
    `old`: the supervisor runs and watches it from now on, and this waits until
    it reports ready. True once it has; False if the session closes, it died
    again (the watcher decides what follows) or it did not report ready within
    the start timeout (then it is killed, and its exit goes the watcher's way)."""
    with sup._cond:
        closing = sup._closing.is_set()
        if not closing:
            sup.processes[name] = process
            early = sup._early_ready.pop(name, None)
            if early is not None and early.pid == process.pid:
                sup._states[name] = InstanceState.READY
                sup._cond.notify_all()
    if closing:
        process.kill()
        process.join(1.0)
        return False
    old.join(1.0)  # reap it: nothing else refers to it now
    try:
        old.close()  # its sentinel (and a fork's other pipe end), now, not at gc
    except ValueError:  # still running: left to the process's end
        pass
    sup._watch(name, process)

    def settled() -> bool:  # under the condition
        return (sup._states.get(name) is not InstanceState.RESTARTING
                or process.pid in dead or sup._closing.is_set())
    try:
        sup.node.wait_until(settled, sup.start_timeout, describe=lambda: (
            f"{what} did not report ready within {sup.start_timeout:g} s of its restart"))
    except errors.Timeout as exc:
        log.error("%s; killing it", exc)
        process.kill()
        return False
    except errors.EtherError:  # the session closed
        return False
    with sup._cond:
        return sup._states.get(name) is InstanceState.READY and sup.processes.get(name) is process


def stuck_reason(report) -> str:
    """The log's words for a Stuck or failed Health report."""
    if isinstance(report, control.Stuck):
        return f"its handler {report.handler} had not returned for {report.seconds:.1f} s"
    return f"its health check failed: {report.detail}"

