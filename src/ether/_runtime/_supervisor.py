"""The main process's side of a session: launch the configured instances, wait
for each to report ready, and shut everything down in order.

Everything waits on messages, never on the clock: a start-up ends when every
instance has said "ready" (or one has said "failed", or died); a shutdown first
drains the pipeline - it asks every instance how many messages it has published,
and repeats until two rounds agree, which means nothing is in flight (each round
is queued behind everything sent before it) - then runs the save_all, cleanup and
shutdown handlers, then stops the instances in config order.
"""
from __future__ import annotations

import itertools
import logging
import multiprocessing
import multiprocessing.connection
import os
import sys
import threading
import time
from typing import Any

from .._node import _codec as codec
from .. import _errors as errors
from . import _child
from .._node._node import Node
from .._core._session import Session

log = logging.getLogger("Ether")

MAIN_INBOX = "main"
START_TIMEOUT_S = 30.0
PHASE_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
DRAIN_BUDGET_S = 10.0


def _context():
    # fork (the default): instances start in milliseconds, already holding what the
    # main script imported, and write to the stdout/stderr the main has *now*. A
    # fork server would keep the descriptors it had when it first started.
    # ETHER_START_METHOD=forkserver or spawn choose otherwise (e.g. after CUDA init).
    method = os.environ.get("ETHER_START_METHOD", "fork")
    if method not in multiprocessing.get_all_start_methods():
        raise errors.ConfigError(
            f"ETHER_START_METHOD={method!r} is not one of {multiprocessing.get_all_start_methods()}")
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(["ether._runtime._child", "ether._node._node", "ether._spec._introspect"])
    return ctx


def _await_zombie(pid: int) -> None:
    """Return once the exited child pid has closed all its descriptors (it is a
    zombie), without reaping it. Its sentinel fires as soon as that pipe closes,
    which may be before its liveness lock is let go: whoever judges the dead
    member's resources right after would still see it alive."""
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    except (ChildProcessError, OSError):  # not our child (forkserver), or reaped already
        pass


class Supervisor:
    def __init__(self, config, *, start_timeout: float = START_TIMEOUT_S):
        self.config = config
        self.start_timeout = start_timeout
        self.session: Session | None = None
        self.node: Node | None = None
        self.processes: dict[str, Any] = {}
        self._cond: threading.Condition | None = None  # the node's, once it exists
        self._dispatcher: threading.Thread | None = None
        self._replies: dict[tuple[str, Any], dict] = {}
        self._exited: dict[str, int] = {}
        self._requests = itertools.count(1)
        self._stop = threading.Event()
        self._unresponsive: set[str] = set()  # silent at shutdown: skipped, then killed
        self._registry_undo: list = []
        self._threads: list[threading.Thread] = []

    # ---- start ----

    def start(self) -> None:
        from . import _logs
        from .._spec._importer import import_class
        from .._spec._introspect import introspect
        from .._spec import _registry
        search_path = self._search_path()
        registry = _registry.flatten(self.config.registry)
        self._registry_undo = _registry.apply(registry, search_path=search_path)
        try:
            names: dict[str, str] = {}
            for key, inst in self.config.instances.items():  # fail before launching anything
                name = self._instance_name(key, inst)
                if name == MAIN_INBOX:
                    raise errors.ConfigError(f"instance {key!r}: the name {name!r} is the main process's")
                if name in names:
                    raise errors.ConfigError(
                        f"instances {names[name]!r} and {key!r} both have the name {name!r}")
                names[name] = key
                cls = import_class(inst.class_path, search_path=search_path, instance=key)
                try:
                    introspect(cls)
                except errors.ConfigError as exc:
                    raise errors.ConfigError(f"instance {key!r}: {exc}") from None
            from .._core import _arena_writer
            _arena_writer.check_configured_space()  # before anything starts
            self.session = Session.create()
        except BaseException:  # nothing started: the classes are plain again
            _registry.undo(self._registry_undo)
            self._registry_undo = []
            raise
        sid = self.session.name
        _logs.configure_process_logging(sid, "session", console=True)
        log.info("Starting Ether session: %s...", sid)
        try:
            self.node = Node(self.session, MAIN_INBOX)
            self.node.on_control = self._on_control
            self._cond = self.node.condition
            ctx = _context()
            for name, inst in self.config.instances.items():
                spec = _child.LaunchSpec(
                    session=sid, name=self._instance_name(name, inst), class_path=inst.class_path,
                    args=tuple(inst.args), kwargs=inst.class_kwargs(), sys_path=tuple(search_path),
                    cwd=os.getcwd(), main_inbox=MAIN_INBOX, registry=registry)
                process = ctx.Process(target=_child.run, args=(spec,), name=f"ether:{spec.name}")
                process.start()
                self.processes[spec.name] = process
            # Threads only after the forks: a forked child gets no copy of them.
            self._spawn_thread(self._watch_exits, "ether-watch")
            self._await_all("ready", None, self.start_timeout, starting=True)
            # Every instance has joined and subscribed: now init handlers may publish.
            for name, reply in self.request_all("lifecycle", {"phase": "init"}).items():
                if reply.get("errors"):
                    raise errors.EtherError(
                        f"instance {name!r}: init handler failed: {'; '.join(reply['errors'])}")
        except BaseException:
            self.stop(graceful=False)
            raise
        log.info("Ether system started successfully")

    @staticmethod
    def _instance_name(key: str, inst) -> str:
        return inst.ether_options().get("ether_name", key)

    @staticmethod
    def _search_path() -> list[str]:
        # Instances import classes as the main script would: its sys.path, then
        # the working directory (so "examples.x.Class" works from the project root).
        path = [p if p else os.getcwd() for p in sys.path]
        if os.getcwd() not in path:
            path.append(os.getcwd())
        return path

    # ---- the main node's threads ----

    def _spawn_thread(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def start_dispatcher(self) -> None:
        """Read the main inbox in a background thread (for ether.subscribe callbacks);
        otherwise whichever thread waits for something reads it."""
        if self._dispatcher is None:
            self._dispatcher = threading.Thread(
                target=self.node.serve, kwargs={"owner_check": False, "stop": self._stop},
                name="ether-dispatch", daemon=True)
            self._dispatcher.start()
            self._threads.append(self._dispatcher)

    def _watch_exits(self) -> None:
        pending = {p.sentinel: name for name, p in self.processes.items()}
        while pending and not self._stop.is_set():
            for sentinel in multiprocessing.connection.wait(list(pending), timeout=0.5):
                name = pending.pop(sentinel)
                # Only record it: joining here would race the join in stop() (the
                # loser's waitpid fails and it reads exitcode None).
                with self._cond:
                    self._exited[name] = None
                    self._cond.notify_all()  # waiters re-check: an instance is gone
                _await_zombie(self.processes[name].pid)
                self._forget_instance(name)

    def _forget_instance(self, name: str) -> None:
        """A dead instance leaves the directory: no route, no service leads to it."""
        try:
            with self.session._directory as d:
                if d.remove_named(name):
                    log.warning("instance %r exited; its topics and services are gone", name)
            from .._core import _arena_writer
            _arena_writer.remove_dead_arenas(self.session)  # its arena, if it published arrays
        except Exception:  # the session may be closing
            pass

    def _on_control(self, envelope: codec.Envelope) -> None:
        body = self.node.decoders.payload_dict(envelope)
        with self._cond:
            self._replies[(envelope.topic, body.get("request"), body.get("instance"))] = body
            self._cond.notify_all()

    # ---- requests to every instance ----

    def _await_all(self, reply: str, request, timeout: float, *, starting: bool = False,
                   partial: bool = False) -> dict:
        """Wait until every live, responsive instance sent `reply` for `request`.
        partial=True: on timeout, mark the silent ones unresponsive and return what came."""
        outcome: dict = {}

        def waiting() -> list[str]:
            return [n for n in self.processes
                    if (reply, request, n) not in self._replies and n not in self._exited
                    and n not in self._unresponsive]

        def done() -> bool:  # runs under the condition's lock
            failed = [(n, r) for (c, _, n), r in self._replies.items() if c == "failed"]
            if failed:
                outcome["failed"] = failed[0]
                return True
            if starting:
                dead = [n for n in self.processes
                        if (reply, request, n) not in self._replies and n in self._exited]
                if dead:
                    outcome["dead"] = dead[0]
                    return True
            return not waiting()

        try:
            self.node.wait_until(done, timeout, describe=lambda: (
                f"waited {timeout:g} s for {', '.join(map(repr, waiting()))} to answer {reply!r}"))
        except errors.Timeout as exc:
            if not partial:
                raise
            with self._cond:
                silent = waiting()
            self._unresponsive.update(silent)
            log.error("%s; going on without them", exc)
        if "failed" in outcome:
            name, body = outcome["failed"]
            detail = body["error"]
            cause = detail.strip().splitlines()[-1] if detail.strip() else "unknown error"
            raise errors.EtherError(f"instance {name!r} failed to start: {cause}\n{detail}")
        if "dead" in outcome:
            name = outcome["dead"]
            process = self.processes[name]
            process.join(5.0)  # its sentinel fired: it is exiting, reap it for the code
            raise errors.EtherError(f"instance {name!r} died during start-up "
                                    f"(exit code {process.exitcode}); see its log for the cause")
        with self._cond:
            return {n: self._replies.pop((reply, request, n)) for n in self.processes
                    if (reply, request, n) in self._replies}

    def request_all(self, command: str, payload: dict | None = None,
                    timeout: float = PHASE_TIMEOUT_S, *, partial: bool = False) -> dict:
        request = next(self._requests)
        body = dict(payload or {}, request=request)
        for name in self.processes:
            if name not in self._exited and name not in self._unresponsive:
                try:
                    self.node.send_control(name, command, body)
                except errors.EtherError as exc:  # gone between the check and the send
                    log.warning("instance %r: %s", name, exc)
        return self._await_all(command + "-ack", request, timeout, partial=partial)

    def drain(self, budget: float = DRAIN_BUDGET_S) -> None:
        """Return once no message is in flight anywhere in the session."""
        deadline = time.monotonic() + budget
        last = None
        while time.monotonic() < deadline:
            replies = self.request_all("drain", timeout=max(0.1, deadline - time.monotonic()),
                                       partial=True)
            total = self.node.published + sum(r["published"] for r in replies.values())
            if total == last:
                return
            last = total
        log.warning("messages were still flowing after %.1f s of draining", budget)

    # ---- stop ----

    def shutdown(self) -> None:
        sid = self.session.name if self.session else "?"
        log.info("Shutting down Ether session: %s...", sid)
        self.stop(graceful=True)
        log.info("Ether system shutdown complete")
        from . import _logs
        _logs.close_process_logging()

    def stop(self, *, graceful: bool) -> None:
        if graceful and self.node is not None:
            try:
                self.drain()
                for phase in ("save_all", "cleanup", "shutdown"):
                    replies = self.request_all("lifecycle", {"phase": phase}, partial=True)
                    for name, reply in replies.items():
                        for failure in reply.get("errors", ()):
                            log.error("instance %r: %s handler failed: %s", name, phase, failure)
                    self.drain()
            except errors.EtherError as exc:
                log.error("shutdown: %s", exc)
        for name, process in self.processes.items():  # in config order
            if process.exitcode is None and self.node is not None:
                try:
                    self.node.send_control(name, "stop", {}, timeout=1.0)
                except errors.EtherError:
                    pass
        # A failed start does not wait for instances still starting up.
        deadline = time.monotonic() + (STOP_TIMEOUT_S if graceful else 0.5)
        for name, process in self.processes.items():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                if graceful:
                    log.warning("instance %r did not stop in time; killing it", name)
                process.kill()
                process.join(1.0)
        self._stop.set()
        if self._dispatcher is not None and self.node is not None:
            self.node.send_control(MAIN_INBOX, "wake", {})  # the dispatch thread sees _stop now
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(2.0)
        if self.node is not None:
            self.node.close()
            self.node = None
        if self.session is not None:
            self.session.close()
            self.session = None
        from .._spec import _registry
        _registry.undo(self._registry_undo)  # the classes are plain again in this process
        self._registry_undo = []
