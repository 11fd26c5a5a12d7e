"""An instance's watchdog: what must reach it even when its inbox is backlogged
and its dispatch thread is inside a handler that never returns (a sensor loop).

- The main process's death. The kernel sends SIGTERM when the parent dies
  (PR_SET_PDEATHSIG; set only when tap ran in the main's main thread, because the
  signal follows the thread that forked, not the process), and a thread checks
  the owner's liveness lock every CHECK_S besides. On either, the main thread is
  asked to unwind (the SIGTERM handler raises SystemExit: `finally` blocks and
  context managers run), and GRACE_S later the process ends regardless, after
  removing the dead session's segments (the last instance out leaves nothing);
  so does a close that has not finished GRACE_S after the handlers let go.
- The session's stage (_control.Stage), which the main writes into its own
  directory entry: STOPPING sets node.stopping (what ether.stopping() says),
  SKIPPING has the node skip its queued messages until the shutdown's save_all.
- While the session stops: a Progress report to the main every PROGRESS_S.
- While it runs: the instance's health (_health.py: a stuck handler, the
  @ether_health methods), when its config asks for it.

A SIGTERM while the main lives is someone asking this instance to end, or the
main dying: the kernel sends the parent-death signal when the forking thread
exits, and may reparent the child to another thread of the dying main first, so
the pid and the liveness lock still look alive while the rest of the main exits
(tens of milliseconds, or more than a second on a loaded machine with large
mappings to tear down). A dying main says so in /proc: its state is a zombie or
its flags have PF_EXITING (`_exiting`). So a SIGTERM is an orphan's if the main
is gone or exiting; otherwise the thread looks again for TERM_WAIT_S (the main's
death may not have begun) and then the instance ends as it would without a
handler. An orphan whose main is still exiting waits for its liveness lock to
go (at most OWNER_GONE_S) before it removes the session's segments: until then
they look alive, and the last instance out would leave them behind.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

from . import _control as control
from ._control import Stage

__all__ = ["Watchdog", "CHECK_S", "GRACE_S", "PROGRESS_S"]

log = logging.getLogger("Ether")

CHECK_S = 0.2      # how often the thread checks the owner and the stage
GRACE_S = 0.5      # after the owner died: how long the main thread may take to unwind
PROGRESS_S = 1.0   # while stopping: how often the main hears how far this instance got
TERM_WAIT_S = 0.3  # after a SIGTERM: how long the main may take to look dead or dying
OWNER_GONE_S = 5.0  # an orphan of a dying main: how long to wait for its liveness lock to go
_PF_EXITING = 0x4   # include/linux/sched.h: the task is exiting


def _exiting(pid: int) -> bool:
    """True if process `pid` is gone, a zombie, or exiting (its group is being torn
    down: PF_EXITING in /proc/PID/stat's flags)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return True
    fields = data.rsplit(b")", 1)[-1].split()
    try:
        return fields[0] in (b"Z", b"X") or bool(int(fields[6]) & _PF_EXITING)
    except (IndexError, ValueError):
        return False


def _set_parent_death_signal() -> bool:
    from .._core._process import set_parent_death_signal
    return set_parent_death_signal(signal.SIGTERM)


class Watchdog:
    def __init__(self, name: str, main_inbox: str, parent_pid: int):
        self.name, self.main_inbox, self.parent_pid = name, main_inbox, parent_pid
        self.pid = os.getpid()
        self.node = self.session = self.lifecycle = None   # attach() once joined
        self.health = None      # a _health.Health, if stuck_after_s or health_interval_s is set
        self._done = threading.Event()   # the instance is leaving by itself
        self._unwinding = False
        self._term_at = 0.0     # a SIGTERM came while the main still looked alive
        self._genuine = False   # ... and it is still alive: end as SIGTERM does
        self._watching = False

    # ---- the parent-death signal (call in the process's main thread) ----

    def install(self, *, parent_death_signal: bool) -> None:
        """Handle SIGTERM; ask the kernel for it when the parent dies. Exits at once
        if the parent is already gone (it died before the request took effect)."""
        signal.signal(signal.SIGTERM, self._on_sigterm)
        if parent_death_signal:
            _set_parent_death_signal()
        if os.getppid() != self.parent_pid:
            os._exit(1)

    def _orphaned(self) -> bool:
        if os.getppid() != self.parent_pid or _exiting(self.parent_pid):
            return True
        session = self.session
        try:
            return session is not None and not session.owner_alive()
        except Exception:  # the session is being closed
            return False

    def _on_sigterm(self, signum, frame) -> None:
        # Flags only, or the end of the process: it may run inside any lock.
        mine = os.getpid() == self.pid  # not a child that user code forked
        if mine and self._unwinding:
            return  # the watchdog's own nudge, after the kernel's
        if mine and self._orphaned():
            self._unwinding = True
            self._stop_node()
            raise SystemExit(1)  # finally blocks and context managers run
        if mine and self._watching and not self._genuine:
            self._term_at = time.monotonic()  # the thread decides (see the docstring)
            return
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    # ---- the thread ----

    def attach(self, node, session, lifecycle, health=None) -> None:
        """Start watching, now that the instance has joined its session."""
        self.node, self.session, self.lifecycle = node, session, lifecycle
        self.health = health if health is not None and health.active else None
        threading.Thread(target=self._run, name="ether-watchdog", daemon=True).start()
        self._watching = True

    def stop(self) -> None:
        """The instance is leaving by itself: stop watching (before it closes its session)."""
        self._done.set()

    def remove_if_orphaned(self) -> None:
        """The last one out of a dead session removes its segments. If the main is
        still exiting, wait (at most OWNER_GONE_S) until its liveness lock is gone:
        it looks alive until then."""
        session = self.session
        if session is None:
            return
        deadline = time.monotonic() + OWNER_GONE_S
        pause = threading.Event()
        try:
            while not session.remove_if_orphaned():
                if not _exiting(self.parent_pid) or time.monotonic() >= deadline:
                    return
                pause.wait(0.01)
        except Exception:  # the session is being closed by the other thread
            pass

    def _stop_node(self) -> None:
        node = self.node
        if node is not None:
            node.stopping = True
            node.running = False

    def _run(self) -> None:
        session, node = self.session, self.node
        directory = session._directory
        generation, stage, next_progress = None, 0, None
        while not self._done.wait(0.02 if self._term_at else CHECK_S):
            try:
                if not session.owner_alive():
                    self._orphan()
                    return
                if (self._term_at and time.monotonic() - self._term_at >= TERM_WAIT_S
                        and not _exiting(self.parent_pid)):
                    self._genuine = True  # the main lives: someone asked this instance to end
                    os.kill(os.getpid(), signal.SIGTERM)
                    return
                if stage < Stage.SKIPPING and directory.generation() != generation:
                    generation = directory.generation()  # a change of any member's entry
                    stage = session.member_state(self.main_inbox) or 0
                    self.lifecycle.on_stage(stage)
                if self.health is not None:
                    self.health.tick(time.monotonic(), stage)
                if stage >= Stage.STOPPING:
                    now = time.monotonic()
                    if next_progress is None or now >= next_progress:
                        next_progress = now + PROGRESS_S
                        control.send(node, self.main_inbox, control.Progress(
                            self.name, handled=node.handled, skipped=node.skipped,
                            queued=node.backlog()), timeout=1.0)
            except Exception:
                if self._done.is_set() or node.closed:
                    break
                # A report the main could not take (it is busy, or going): try again.
        if self._unwinding:  # the kernel's signal began it: the close gets its bound too
            self._orphan()

    def _orphan(self) -> None:
        log.warning("instance %r: the main process is gone; exiting", self.name)
        self._stop_node()
        if not self._unwinding:
            os.kill(os.getpid(), signal.SIGTERM)  # the main thread unwinds (_on_sigterm)
        if self._done.wait(GRACE_S):
            # The handlers let go, and the process closes. That close may still wait
            # for ever: the SystemExit lands wherever the main thread was, and may
            # leave a lock taken between its acquire and its release (a publisher
            # then waits on it with a lane's lock held, and the close on the lane).
            # So the close gets GRACE_S too; a process that exits stops this thread.
            threading.Event().wait(GRACE_S)
            log.warning("instance %r: its close still runs %.1f s after its handlers let go; "
                        "ending the process", self.name, GRACE_S)
        else:  # a handler that does not let go (a C call, a loop that catches SystemExit)
            log.warning("instance %r: a handler still runs %.1f s after the main process "
                        "died; ending the process", self.name, GRACE_S)
        self.remove_if_orphaned()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(1)
