"""The main process's side of a session: launch the configured instances, wait
for each to report ready, and shut everything down in order.

Everything waits on messages (_control.py), never on the clock: a start-up ends
when every instance has reported Ready (or one has reported Failed, or died). A
shutdown (docs/design/lifecycle.md) first delivers what was published - it asks
every instance how many messages it has published, and repeats until two rounds
agree, which means nothing is in flight (each round is queued behind everything
sent before it) - for as long as the instances make progress, within a limit;
then runs the save_all, cleanup and shutdown phases (save_all even when the
delivery was cut short: the instances then skip what is still queued), then
stops the instances in config order and kills what does not stop.

Each instance's InstanceState changes only here (and in _restarts.py, which
restarts instances by their policies), under the node's condition: on its
reports, when its process exits, and when it is told to stop. A control message
that is malformed, or does not fit that state or an awaited request, is logged
and ignored.
"""
from __future__ import annotations

import errno
import itertools
import logging
import os
import select
import sys
import threading
import time
from typing import Any, Callable

import msgspec

from .._node import _codec as codec
from .. import _errors as errors
from .. import _settings
from .. import _trace
from . import _child
from . import _collector
from . import _control as control
from . import _launch
from . import _prestart
from . import _restarts
from ._member_restarts import MemberRestarts
from ._control import InstanceState, Stage
from ._logtopic import LogTopic
from .._node._topics import PROVENANCE_TOPIC
from .._node._node import DEFAULT_PRODUCERS, WAKE, Node, inbox_capacity, message_limit
from .._core import _segment as segment
from .._core._session import Session

log = logging.getLogger("Ether")

MAIN_INBOX = "main"
BRIDGE = "bridge"              # the bridge's member name: its inbox, its log file (bridge.log)
BRIDGE_MODULE = _prestart.BRIDGE  # "ether.bridge", started by name: nothing here imports it
START_TIMEOUT_S = 30.0
PHASE_TIMEOUT_S = 10.0   # a shutdown phase waits at least this long (more if the limit leaves more)
STOP_TIMEOUT_S = 5.0     # then each instance has this long to exit before it is killed
PROVENANCE_TIMEOUT_S = 30.0  # shutdown waits this long, at most, for provenance.json
UNMAP_WAIT_S = 5.0  # a tap waits this long, at most, for an earlier shutdown's unmapping
STALL_S = 10.0           # shutdown stops waiting once no instance it waits for handled anything for this long
PROGRESS_LOG_S = 5.0     # while waiting, say how far it got this often
FORCED_SAVE_S = 5.0      # after a second signal: how long save_all may take
CLIENT_HEADROOM = 16     # inboxes (and senders) kept for attached clients: CLIs, monitors, recorders
MAX_PRODUCERS = 1024     # the ring's limit

MiB = 1 << 20


def _mib(size: int) -> str:
    return f"{size / MiB:.1f}".removesuffix(".0")


def _await_zombie(pid: int) -> None:
    """Return once the exited child pid has closed all its descriptors (it is a
    zombie), without reaping it. Its sentinel fires as soon as that pipe closes,
    which may be before its liveness lock is let go: whoever judges the dead
    member's resources right after would still see it alive."""
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    except (ChildProcessError, OSError):  # reaped already
        pass


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class Supervisor:
    def __init__(self, config, *, start_timeout: float = START_TIMEOUT_S):
        self.config = config.with_recorder() if config is not None else None  # record: runs first
        self._provenance: threading.Thread | None = None
        self.provenance: dict | None = None
        self.start_timeout = start_timeout
        self.session: Session | None = None
        self.node: Node | None = None
        self.logtopic: LogTopic | None = None   # ether/log: records and lifecycle events
        self.processes: dict[str, Any] = {}
        self._cond: threading.Condition | None = None  # the node's, once it exists
        self._dispatcher: threading.Thread | None = None
        self._states: dict[str, InstanceState] = {}   # under _cond once it exists
        self._failures: dict[str, control.Failed] = {}
        # (ack type, request) -> {instance asked: its ack, None until it comes}
        self._awaited: dict[tuple[type, int], dict[str, control.Ack | None]] = {}
        self._requests = itertools.count(1)
        self._abandoned: set[int] = set()   # requests given up on: their late acks are expected
        self._stop = threading.Event()
        self._progress: dict[str, tuple[control.Progress, int]] = {}  # latest report, _asked then
        self._asked: dict[str, int] = {}     # commands sent to each and not answered yet
        self._moved: dict[str, float] = {}   # when each last handled something (shutdown)
        self._silent: set[str] = set()       # missed a shutdown phase: asked nothing more
        self._hinted = 0                      # a signal during a shutdown no signal began
        self._forced_at: float | None = None  # a second signal: skip the wait for the backlog
        self._aborted = False                 # a third: wait for nothing
        self._limit = 0.0                     # the shutdown's, while it runs
        self.max_producers = DEFAULT_PRODUCERS
        self._members: set[str] = set()       # started by module name (the bridge): no drains, no phases
        self._registry_undo: list = []
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()     # stop() began: no more restarts
        self._unlinked: list | None = []      # dead arenas a shutdown frees after it returns
        self._unlinked_lock = threading.Lock()  # the exit watcher adds, the shutdown takes
        self._started = False                  # tap's instances are all ready
        self._early_ready: dict[str, control.Ready] = {}  # a restarted one's, before its pid was known
        self._specs: dict[str, _child.LaunchSpec] = {}
        self._method = "fork"
        self._watched: dict[Any, str] = {}     # sentinel -> instance, for _watch_exits
        self._wake_r, self._wake_w = -1, -1    # a pipe: _watch() wakes the watcher
        self.restarts: _restarts.Restarter | None = None
        self.member_restarts: MemberRestarts | None = None   # the bridge's
        self.on_failure_shutdown: Callable[[str], None] | None = None  # on_failure: shutdown
        self.remote = None   # _remote.RemoteHosts: the instances other hosts' agents run

    # ---- start ----

    def start(self) -> None:
        who = "main@" + (self.config.bridge.host_name() if self.config.bridge is not None else "")
        _trace.mark(who, "tap")
        from . import _logs
        from .._spec._importer import import_class
        from .._spec._introspect import introspect
        from .._spec import _registry
        search_path = self._search_path()
        registry = _registry.flatten(self.config.registry)
        self._registry_undo = _registry.apply(registry, search_path=search_path)
        method = self._method = _settings.start_method()
        forkserver_why = None
        if self.config.bridge is not None:
            method, forkserver_why = self._check_bridge(method)
            self._method = method
        try:
            names: dict[str, str] = {}
            classes = []
            launched: dict[str, tuple] = {}
            specs: dict = {}   # name -> its class's introspection (the provenance reads it)
            remote = self.config.remote_instances()
            for key, inst in self.config.instances.items():  # fail before launching anything
                name = self._instance_name(key, inst)
                if name == MAIN_INBOX:
                    raise errors.ConfigError(f"instance {key!r}: the name {name!r} is the main process's")
                if name == BRIDGE and self.config.bridge is not None:
                    raise errors.ConfigError(f"instance {key!r}: the name {name!r} is the bridge's "
                                             f"(the config has a bridge: section); rename it")
                if name in names:
                    raise errors.ConfigError(
                        f"instances {names[name]!r} and {key!r} both have the name {name!r}")
                names[name] = key
                if key in remote:  # its class is imported there, by its agent
                    continue
                cls = import_class(inst.class_path, search_path=search_path, instance=key)
                try:
                    specs[name] = introspect(cls)
                except errors.ConfigError as exc:
                    raise errors.ConfigError(f"instance {key!r}: {exc}") from None
                classes.append(cls)
                launched[name] = (inst, cls)
                if _launch.fresh_interpreter(method):
                    _launch.check_spec(self._spec("", name, inst, search_path, registry),
                                       f"instance {key!r}")
            if not remote:  # a remote instance may run the class an entry is for
                self._check_registry_is_used(classes, search_path)
            self._check_size()
            _settings.validate()  # before anything starts, every ETHER_* variable
            from .._core import _arena_writer
            _arena_writer.check_configured_space()
            room = self._check_room(len(self.config.instances) - len(remote) + 1
                                    + (self.config.bridge is not None))
            self.session = Session.create()
        except BaseException:  # nothing started: the classes are plain again
            _registry.undo(self._registry_undo)
            self._registry_undo = []
            raise
        sid = self.session.name
        _logs.configure_process_logging(sid, "session", console=True)
        log.info("Starting Ether session: %s...", sid)
        if room is not None:
            log.warning("%s", room)
        if forkserver_why is not None:
            log.info("%s", forkserver_why)
        if not self.config.instances and self.config.bridge is None:
            log.warning("the config has no instances: nothing runs but this process "
                        "(add some under `instances:`)")
        capture = None   # the provenance, until the thread that finishes it runs
        # No fork while an earlier shutdown's thread still unmaps (segment.unmap_later):
        # a child forked while another thread of its parent is inside munmap (and the
        # allocator's state around it) may start deadlocked; CI's ASan run once lost an
        # instance that never reached its first line, most likely so. The unmapping
        # ends a few ms after that shutdown: only a tap that follows at once waits.
        if not segment.unmapped(UNMAP_WAIT_S):
            log.warning("an earlier session's shared memory is still being unmapped after "
                        "%g s; starting anyway", UNMAP_WAIT_S)
        try:
            self.node = Node(self.session, MAIN_INBOX, max_producers=self.max_producers)
            self.node.on_control = self._on_control
            self.logtopic = LogTopic(self.node, MAIN_INBOX, start=False)
            self._cond = self.node.condition
            self._set_stage(Stage.RUNNING)
            _trace.mark(who, "session created")
            if self.config.bridge is not None:
                # First, and awaited after the instances have forked: its interpreter's
                # start is the longest part of a tap, and the instances do not need it
                # to start. It is ready (remote interest in place) before any init
                # handler runs, as every instance is.
                self._start_bridge()
            # The provenance's local part (hashes, versions, the config) now, before
            # the forks; git runs beside the instances, and a thread reads it once
            # they are up: the first calls and messages after the tap share the
            # cores with nothing of it. (A bridge's interpreter starts meanwhile:
            # its imports take the other core.)
            capture = self._begin_provenance(launched, specs)
            if capture is not None:
                # git's processes start now, not after the forks: a process started
                # while the instances start waits (in Popen, until it has exec'd) for
                # a turn on a core, 20-30 ms on two cores; at nice 10 they then yield
                # to the instances.
                capture.start_git()
            if not _launch.fresh_interpreter(method):
                _child.preload()   # before the freeze: the instances' modules frozen too
            _collector.before_forks()
            policies = {}
            for key, inst in self.config.instances.items():
                if key in remote:
                    continue
                spec = self._spec(sid, self._instance_name(key, inst), inst, search_path, registry)
                policies[spec.name] = inst.supervision(self.config.supervision)
                spec = msgspec.structs.replace(spec, stuck_after_s=policies[spec.name].stuck_after_s,
                                           health_interval_s=policies[spec.name].health_interval_s)
                self._specs[spec.name] = spec
                process = _launch.start(spec, method)
                self.processes[spec.name] = process
                self._event("started", spec.name, pid=process.pid)
                with self._cond:
                    self._states[spec.name] = InstanceState.STARTING
                if self.config.record is not None and spec.name == self.config.record.name:
                    # The recorder subscribes before anything else runs.
                    self._await_ready(self.start_timeout, watch=process, names=(spec.name,))
            _trace.mark(who, "instances forked")
            _collector.resume()   # the forks are done: the waits ahead collect as usual
            if self.config.bridge is not None:
                self._await_ready(self.start_timeout, names=(BRIDGE,))
                _trace.mark(who, "bridge ready")
            if remote:  # the other hosts start theirs while this host's get ready (_remote.py)
                from ._remote import RemoteHosts
                self.remote = RemoteHosts(self, remote)
                self.remote.launch(self.start_timeout)
                _trace.mark(who, "launch sent")
            self.restarts = _restarts.Restarter(self, policies, self.config.supervision.on_failure)
            self.member_restarts = MemberRestarts(self, self.config.supervision,
                                                  self.config.supervision.on_failure,
                                                  self._launch_member)
            # Threads only after the forks: a forked child gets no copy of them.
            self._wake_r, self._wake_w = os.pipe()
            self._spawn_thread(self._watch_exits, "ether-watch")
            self.logtopic.start()
            self._await_ready(self.start_timeout)
            _trace.mark(who, "instances ready")
            if self.remote is not None:
                self.remote.await_ready(self.start_timeout)
                _trace.mark(who, "remote ready")
                self.start_dispatcher()  # what the agents say is read as it comes
            # Its thread starts once the instances are up: a thread started while
            # five processes start on two cores waits milliseconds for its first turn.
            self._finish_provenance(capture)
            capture = None  # the thread reads git and reaps it
            self._show_state(*self.processes, state=InstanceState.READY)  # one change for all
            self.node.start_stats()  # the stats topic, while someone watches
            self._started = True
            self.restarts.remember(*[n for n in self.processes if n not in self._members])
            if any(p.stuck_after_s or p.health_interval_s for p in policies.values()):
                self.start_dispatcher()  # their reports are read as they come
            # Every instance has joined and subscribed: now init handlers may publish.
            # Only instances that have one are asked: the round trip wakes each in
            # turn (5 ms of the Quick Start's tap, whose four have none).
            with self._cond:
                with_init = tuple(n for n in self._states
                                  if n not in specs or specs[n].lifecycle.get("init"))
            for name, ack in (self.run_phase("init", only=with_init) if with_init else {}).items():
                if ack.errors:
                    raise errors.EtherError(
                        f"instance {name!r}: init handler failed: {'; '.join(ack.errors)}")
        except BaseException:
            if capture is not None:  # a tap that failed before reading git: reap it
                capture.finish()
            self.stop(graceful=False)
            raise
        _trace.mark(who, "started")
        log.info("Ether system started successfully")

    def _begin_provenance(self, launched: dict, specs: dict):
        """The local part of the session's provenance (_provenance.py), or None if
        even that failed (a warning: never a reason to fail the tap)."""
        from . import _provenance
        try:
            return _provenance.begin(self.config, launched, session=self.session.name,
                                     run_id=self.session.run_id, specs=specs)
        except Exception as exc:
            log.warning("could not capture the session's provenance: %s", exc)
            return None

    def _finish_provenance(self, capture) -> None:
        """In a thread: read git's part of the provenance, write provenance.json to
        the log folder and publish it on ether/provenance (a recorder stores it).
        Shutdown waits for it."""
        if capture is None:
            return
        node = self.node

        def finish() -> None:
            from . import _provenance
            try:
                found = capture.finish()
                try:
                    _provenance.write(self._log_dir(), found)
                except OSError as exc:
                    log.warning("could not write %s: %s", _provenance.FILE_NAME, exc)
            except Exception as exc:  # never a reason to fail the session
                log.warning("could not capture the session's provenance: %s", exc)
                return
            self.provenance = found
            try:
                node.publish(PROVENANCE_TOPIC, found)
            except errors.EtherError as exc:  # the session is closing
                log.warning("could not publish the session's provenance: %s", exc)

        self._provenance = threading.Thread(target=finish, name="ether-provenance", daemon=True)
        self._provenance.start()

    def await_provenance(self, timeout: float = PROVENANCE_TIMEOUT_S) -> None:
        """Wait (bounded) until provenance.json is written and published."""
        thread = self._provenance
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("the session's provenance was not captured within %g s; "
                            "provenance.json is missing", timeout)

    def _check_bridge(self, method: str) -> tuple[str, str | None]:
        """A bridge needs zenoh (imported by the bridge process only, never here); and
        a main that has imported zenoh must not fork (a forked child that opens a
        zenoh session hangs, and breaks the parent's). Returns the start method and
        the log line saying it changed."""
        import importlib.util
        try:
            found = importlib.util.find_spec("zenoh") is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise errors.ConfigError(
                "the config has a bridge: section, which needs zenoh: pip install \"ether[remote]\"")
        if self.config.bridge.security is not None:
            # The certificates and the key's mode, here, before anything starts.
            from ..config import check_security_files  # the bridge section's models
            check_security_files(self.config.bridge.security, self.config.folder)
        if "zenoh" in sys.modules and not _launch.fresh_interpreter(method):
            return "forkserver", ("zenoh is loaded in this process, which must not fork: the "
                                  "instances start with forkserver (a fresh interpreter each)")
        return method, None

    def _bridge_base(self) -> str:
        """Where the bridge's relative certificate paths start."""
        return str(self.config.source.parent if self.config.source is not None else os.getcwd())

    def _start_bridge(self) -> None:
        """Start the bridge (`python -m ether.bridge`); its Ready is awaited as an
        instance's."""
        _trace.mark("main@" + self.config.bridge.host_name(), "bridge popen")
        self.processes[BRIDGE] = self._launch_member(BRIDGE)
        self._members.add(BRIDGE)
        with self._cond:
            self._states[BRIDGE] = InstanceState.STARTING

    def _launch_member(self, name: str, restarts: int = 0):
        """Start a member's fresh interpreter (the bridge's, at tap or again after
        it died: _member_restarts.py); returns its process."""
        from ._member import MemberSpec
        assert name == BRIDGE, name  # the only member today
        base = self._bridge_base()
        spec = MemberSpec(
            session=self.session.name, name=name, main_inbox=MAIN_INBOX, parent_pid=os.getpid(),
            # The kernel's parent-death signal follows the thread that starts it: only
            # tap's, in the main thread (a restart's thread ends; the watchdog remains).
            parent_death_signal=(restarts == 0 and
                                 threading.current_thread() is threading.main_thread()),
            cwd=os.getcwd(), restarts=restarts,
            options={"bridge": self.config.bridge.model_dump(mode="json"), "base_dir": base})
        return _launch.start_module(BRIDGE_MODULE, spec, tag=f"{self.session.name}:{name}")

    def _spec(self, sid: str, name: str, inst, search_path: list[str], registry) -> _child.LaunchSpec:
        return _child.LaunchSpec(
            session=sid, name=name, class_path=inst.class_path, args=tuple(inst.args),
            kwargs=inst.class_kwargs(), sys_path=tuple(search_path), cwd=os.getcwd(),
            main_inbox=MAIN_INBOX, registry=registry, parent_pid=os.getpid(),
            # The kernel's parent-death signal follows the thread that forks, and
            # only the main thread lives as long as the process.
            parent_death_signal=threading.current_thread() is threading.main_thread(),
            max_producers=self.max_producers)

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

    def _check_registry_is_used(self, classes: list[type], search_path: list[str]) -> None:
        """A registry entry decorates a class for the instances that run it (or a
        subclass): one that none runs is a mistake, unless marked allow_unused."""
        from .._spec._importer import import_class
        run = sorted({inst.class_path for inst in self.config.instances.values()})
        for class_path, entry in self.config.registry.items():
            if entry.allow_unused:
                continue
            cls = import_class(class_path, search_path=search_path)
            if not any(issubclass(c, cls) for c in classes):
                raise errors.ConfigError(
                    f"registry {class_path!r}: no instance runs this class "
                    f"(the instances run {', '.join(run) if run else 'nothing'}), so its "
                    f"decorators change nothing; fix the class path, or mark the entry "
                    f"`allow_unused: true` if that is intended")

    def _check_size(self) -> None:
        """The session directory has INBOX_ENTRIES inboxes: the main's, the
        instances', and CLIENT_HEADROOM for attached clients. Each process sends to
        an inbox through up to two lanes, so the inboxes' producer slots follow."""
        from .._core._directory import INBOX_ENTRIES
        count = len(self.config.instances)
        limit = INBOX_ENTRIES - 1 - CLIENT_HEADROOM
        if count > limit:
            raise errors.ConfigError(
                f"the config has {count} instances; a session holds at most {limit} (its "
                f"directory has {INBOX_ENTRIES} inboxes: one is the main process's and "
                f"{CLIENT_HEADROOM} are kept for attached clients); split the config into "
                f"several sessions")
        self.max_producers = min(MAX_PRODUCERS,
                                 max(DEFAULT_PRODUCERS, 2 * (count + 1 + CLIENT_HEADROOM)))

    def _check_room(self, processes: int) -> str | None:
        """/dev/shm must hold every inbox (reserved when it is made): fail now if it
        cannot. Each process that publishes large arrays also makes an arena: warn
        (the text returned) if there is no room for one per process. Not an error:
        a pipeline without large arrays runs fine in a small /dev/shm, and a
        publish that finds no room fails, naming the sizes."""
        from .._core._directory import SESSION_SIZE
        from .._core._ring import segment_size
        free = segment.free_bytes()
        if free is None:
            return None
        inbox = segment_size(inbox_capacity(message_limit()), self.max_producers)
        need = processes * inbox + SESSION_SIZE
        fix = ("enlarge /dev/shm (docker run --shm-size=1g, or mount -o remount,size=2G "
               "/dev/shm)")
        inboxes = f"{processes} inboxes of {_mib(inbox)} MiB ({_mib(need)} MiB with the session's directory)"
        if need > free:
            raise errors.ShmSpaceError(
                errno.ENOSPC, f"this session needs {inboxes} of shared memory, but /dev/shm has "
                f"{_mib(free)} MiB free; {fix}, or lower ETHER_MAX_MESSAGE_BYTES (each inbox "
                f"holds four messages of that size)")
        left = free - need
        # As _core/_arena_writer.arena_bytes() will size it, once the inboxes exist.
        arena = _settings.arena_bytes() or max(16 * MiB, min(512 * MiB, left // 4))
        room = left // arena
        if room >= processes:
            return None
        return (f"/dev/shm has {_mib(free)} MiB free: {inboxes}, and each process that "
                f"publishes large arrays ({_settings.array_inline() >> 10} KiB and more) makes an "
                f"arena of {_mib(arena)} MiB, so there is room for the arenas of {room} of the "
                f"{processes} processes; " + ("array publishes will fail" if room == 0 else
                                              f"array publishes fail in any process beyond {room}")
                + f". To fix: {fix}, or lower ETHER_ARENA_BYTES")

    # ---- the main node's threads ----

    def _spawn_thread(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def start_dispatcher(self) -> None:
        """Read the main inbox in a background thread (for ether.subscribe callbacks);
        otherwise whichever thread waits for something reads it."""
        if self._dispatcher is None:
            self._dispatcher = threading.Thread(
                target=self.node.serve, kwargs={"owner_check": False, "stop": self._stop},
                name="ether-dispatch", daemon=True)
            self._dispatcher.start()
            self._threads.append(self._dispatcher)

    def _watch(self, name: str, process) -> None:
        """Watch one more process (a restarted instance's)."""
        with self._cond:
            self._watched[process.sentinel] = name
        try:
            os.write(self._wake_w, b"w")
        except OSError:
            pass

    def _watch_exits(self) -> None:
        with self._cond:
            self._watched.update({p.sentinel: name for name, p in self.processes.items()})
        while not self._stop.is_set():
            with self._cond:
                pending = dict(self._watched)
            ready = _readable([*pending, self._wake_r], timeout=0.5)
            if self._wake_r in ready:
                os.read(self._wake_r, 64)
            for sentinel in ready:
                if sentinel == self._wake_r:
                    continue
                name = pending[sentinel]
                with self._cond:
                    self._watched.pop(sentinel, None)
                    process = self.processes[name]
                # Only record it: joining here would race the join in stop() (the
                # loser's waitpid fails and it reads exitcode None).
                cause, _ = _restarts.exit_cause(process.pid, process)
                self._event("exited", name, pid=process.pid, cause=cause)
                if self.restarts is not None and self.restarts.on_exit(name, process):
                    continue
                if (name in self._members and self.member_restarts is not None
                        and self.member_restarts.on_exit(name, process)):
                    continue
                self._exited(name)
                said = self.restarts is not None and self.restarts.said_exit(name)
                self._forget_instance(name, None if said else cause)
            if self.restarts is not None:
                self._kill_overdue()

    def _kill_overdue(self) -> None:
        """Instances whose health reports stopped coming: stuck, killed, restarted by policy."""
        for name, silent in self.restarts.overdue(time.monotonic()):
            with self._cond:
                marked = self.restarts.on_stuck(
                    name, f"no health report for {silent:.1f} s (its watchdog thread cannot run)")
            if marked:
                log.error("instance %r: no health report for %.1f s; killing it", name, silent)
                self._kill_stuck(name)

    def _kill_stuck(self, name: str) -> None:
        self._show_state(name, state=InstanceState.STUCK)
        with self._cond:
            process = self.processes.get(name)
        if process is not None:
            process.kill()  # its exit goes the watcher's way: restarted by policy

    def _event(self, event: str, name: str, **fields) -> None:
        """A lifecycle event on ether/log (_logtopic.py)."""
        if self.logtopic is not None:
            self.logtopic.event(event, name, **fields)

    def _exited(self, name: str) -> None:
        """The process of `name` has ended: the state says whether that was asked for."""
        after = {InstanceState.STARTING: InstanceState.FAILED,
                 InstanceState.READY: InstanceState.EXITED,
                 InstanceState.STUCK: InstanceState.EXITED,
                 InstanceState.STOPPING: InstanceState.STOPPED}
        with self._cond:
            state = self._states[name]
            self._states[name] = after.get(state, state)
            self._cond.notify_all()  # waiters re-check: an instance is gone

    def states(self) -> dict[str, InstanceState]:
        """Each instance's state, by name, in config order."""
        if self._cond is None:
            return dict(self._states)
        with self._cond:
            return dict(self._states)

    def _show_state(self, *names: str, state: InstanceState) -> None:
        """Write instances' state into their directory entries (what inspect() shows),
        in one hold of the directory's lock: readers see one change."""
        try:
            with self.session._directory as d:
                for name in names:
                    entry = d.find(name)
                    if entry is not None:
                        d.set_info(entry.token, state=state.code)
        except errors.EtherError:  # the session is closing
            pass

    def _forget_instance(self, name: str, cause: str | None = None) -> None:
        """A dead instance leaves the directory: no route, no service leads to it
        (nor, for the bridge, to the remote instances it stood for). `cause`: how it
        ended, for the log line (None: said already)."""
        try:
            with self.session._directory as d:
                entry = d.find(name)
                pid = self.processes[name].pid
                gone = [e.name for e in d.entries() if e.owner_pid == pid and e.name != name]
                for other in gone:
                    d.remove_named(other)
                if d.remove_named(name) and entry is not None:
                    from .._core import _names
                    segment.unlink(_names.inbox_segment(self.session.name, entry.token))
                    segment.holder_alive(_names.member_lock(self.session.name, entry.owner))
                    if cause is not None:
                        what = "the bridge" if name in self._members else f"instance {name!r}"
                        log.warning("%s exited (%s); its topics and services are gone", what, cause)
            from .._core import _arena_writer
            # Its arena, if it published arrays; in a shutdown, freed after it returns.
            kept: list = []
            _arena_writer.remove_dead_arenas(self.session, kept if self._closing.is_set() else None)
            with self._unlinked_lock:
                if self._unlinked is not None:
                    self._unlinked.extend(kept)
                    kept = []
            _free(kept)   # too late for the shutdown's thread: here, now
        except Exception:  # the session may be closing
            pass

    def _set_stage(self, stage: Stage) -> None:
        """Tell every instance at once (not behind its backlog): see _watchdog.py."""
        try:
            self.session.set_member_state(MAIN_INBOX, int(stage))
        except errors.EtherError:  # the session is closing
            pass

    def _on_control(self, envelope: codec.Envelope) -> None:
        try:
            message = control.decode(envelope, control.REPORTS)
        except errors.MalformedMessage as exc:  # counted, and logged without flooding
            self.node.rejections.report(envelope.topic, control.reason_of(exc), str(exc),
                                        f"ignored a {exc}")
            return
        with self._cond:
            refused = self._accept(message)
            if refused is None:
                self._cond.notify_all()
        if refused is not None:
            if refused:  # "" : accepted, nothing to say (a late stuck report)
                log.warning("main: ignored a control message %r from %r: %s",
                            message.tag, message.instance, refused)
            return
        if isinstance(message, control.Remote):
            if self.remote is not None:
                self.remote.on_event(message)
        elif isinstance(message, control.Ready):
            if self._started:  # a restarted one (tap shows them all at once)
                self._show_state(message.instance, state=InstanceState.READY)
        elif isinstance(message, (control.Stuck, control.Health)) and self._marked(message):
            log.error("instance %r: %s; killing it", message.instance,
                      _restarts.stuck_reason(message))
            self._kill_stuck(message.instance)

    def _marked(self, message) -> bool:
        """A stuck or unhealthy report: mark the instance STUCK (True) if it applies."""
        if isinstance(message, control.Health) and message.ok:
            return False
        with self._cond:
            return self.restarts is not None and self.restarts.on_stuck(
                message.instance, _restarts.stuck_reason(message))

    def _accept(self, message: control.Report) -> str | None:
        """Apply a report (under the condition's lock); or say why it does not fit."""
        name = message.instance
        state = self._states.get(name)
        if state is None:
            return "no instance of this session has that name"
        if isinstance(message, control.Ready):
            if state not in (InstanceState.STARTING, InstanceState.RESTARTING):
                return f"the instance is {state.value}"
            if message.pid != self.processes[name].pid:
                if state is InstanceState.RESTARTING:  # before its launcher noted the new pid
                    self._early_ready[name] = message
                    return ""
                return f"pid {message.pid} is not its process's ({self.processes[name].pid})"
            self._states[name] = InstanceState.READY
            self._event("ready", name, pid=message.pid)
        elif isinstance(message, control.Failed):
            # FAILED already if its exit was seen before its report was read.
            if state is InstanceState.RESTARTING:  # its restart could not start: it exits next
                self._failures[name] = message
                return None
            if state is not InstanceState.STARTING and not (
                    state is InstanceState.FAILED and name not in self._failures):
                return f"the instance is {state.value}, not starting"
            self._states[name] = InstanceState.FAILED
            self._failures[name] = message
            self._event("failed", name, error=message.error)
        elif isinstance(message, control.Progress):
            # Unasked, and it may come late (after the instance stopped): never an error.
            if state is InstanceState.READY:
                previous = self._progress.get(name, (None,))[0]
                if previous is None or (previous.handled, previous.skipped) != (
                        message.handled, message.skipped):
                    self._moved[name] = time.monotonic()  # the first: it is alive and answers
                self._progress[name] = (message, self._asked.get(name, 0))
        elif isinstance(message, control.Remote):
            if name not in self._members:
                return "only the bridge speaks for other hosts"
            return None
        elif isinstance(message, (control.Stuck, control.Health)):
            # Unasked, and may come late (it is being killed already): never an error.
            if isinstance(message, control.Health) and self.restarts is not None:
                self.restarts.on_health(name)
            return None if state is InstanceState.READY else ""
        else:
            answers = self._awaited.get((type(message), message.request))
            if answers is None and message.request in self._abandoned:
                self._asked[name] = self._asked.get(name, 1) - 1
                return None  # late: the shutdown stopped waiting for it
            if answers is None or name not in answers:
                return f"nobody waits for it (request {message.request})"
            if answers[name] is not None:
                return f"request {message.request} was answered already"
            answers[name] = message
            self._asked[name] = self._asked.get(name, 1) - 1
            self._moved[name] = time.monotonic()
        return None

    def _queued(self, name: str) -> int | None:
        """About how many messages wait in an instance's inbox, from its last
        report, less the commands of ours among them (None: no report yet)."""
        if name not in self._progress:
            return None
        report, asked = self._progress[name]
        return max(0, report.queued - asked)

    # ---- waiting for instances ----

    def _log_dir(self):
        from . import _logs
        return _logs.session_log_dir(self.session.name)

    def _log_path(self, name: str) -> str:
        return str(self._log_dir() / f"{name}.log")

    def _await_ready(self, timeout: float, *, watch=None, names=None) -> None:
        """Wait until every instance (or those of `names`) is ready; raise if one
        failed or died first. watch: the process awaited (before the exit watcher
        runs)."""
        def starting() -> list[str]:
            return [n for n, s in self._states.items() if s is InstanceState.STARTING
                    and (names is None or n in names)]

        def done() -> bool:  # runs under the condition's lock
            if watch is not None and watch.exitcode is not None and starting():
                self._states[starting()[0]] = InstanceState.FAILED
            for n in starting():  # a member starts before the thread that watches exits
                if n in self._members and self.processes[n].exitcode is not None:
                    self._states[n] = InstanceState.FAILED
            return not starting() or InstanceState.FAILED in self._states.values()

        self.node.wait_until(done, timeout, describe=lambda: (
            f"waited {timeout:g} s for {', '.join(map(repr, starting()))} to report that it "
            f"started"))
        with self._cond:
            failed = [n for n, s in self._states.items() if s is InstanceState.FAILED]
        if failed and not any(n in self._failures for n in failed):
            # Seen exiting: a report it sent before it exited is queued; read it.
            try:
                self.node.wait_until(lambda: any(n in self._failures for n in failed), 0.1,
                                     describe=str)
            except errors.Timeout:
                pass
        with self._cond:
            reported = [n for n in failed if n in self._failures]
        if reported:  # a report says more than an exit code
            name = reported[0]
            self._take_failure_file(name)
            self._fail_start(name, self._failures[name].error, self._failures[name].type)
        if failed:
            name = failed[0]
            process = self.processes[name]
            process.join(5.0)  # its sentinel fired: it is exiting, reap it for the code
            failure = self._take_failure_file(name)
            if failure is not None:
                self._fail_start(name, failure.error, failure.type)
            raise errors.EtherError(
                f"{self._what(name)} died during start-up (exit code {process.exitcode}) without "
                f"saying why; its log: {self._log_path(name)}")

    def _what(self, name: str) -> str:
        return "the bridge" if name in self._members else f"instance {name!r}"

    def _fail_start(self, name: str, error: str, kind: str) -> None:
        text = f"{self._what(name)} failed to start: {error} (traceback in {self._log_path(name)})"
        if name in self._members and kind == "ConfigError":  # e.g. the bridge's certificates
            raise errors.ConfigError(text)
        raise errors.EtherError(text)

    def _take_failure_file(self, name: str) -> _child.Failure | None:
        """The cause an instance that could not start left next to its log (see
        _child.py), read and removed; None if it left none."""
        import msgspec
        path = _child.failure_path(self._log_path(name))
        try:
            with open(path, "rb") as f:
                data = f.read()
            os.unlink(path)
            return msgspec.msgpack.decode(data, type=_child.Failure)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return None

    def _collect(self, command: control.Command, deadline: float, *, delivering: bool = False,
                 started: float | None = None, only: tuple[str, ...] | None = None,
                 ) -> tuple[dict[str, control.Ack], list[str], str | None]:
        """Send `command` to every ready instance (but those silent in a shutdown
        phase) and wait for their acks until `deadline`. Returns (acks by name, the
        instances that did not answer, why it stopped waiting - None if all did).

        delivering (a shutdown's delivery): also stop once none of those it waits for
        has handled a message for STALL_S, or a second signal came; and say every
        PROGRESS_LOG_S how far they got (`started`: when the shutdown began).
        only: ask these instances alone (a restarted instance's init)."""
        key = (command.answer, command.request)
        with self._cond:
            answers: dict[str, control.Ack | None] = {
                n: None for n, s in self._states.items()
                if s is InstanceState.READY and n not in self._silent and n not in self._members
                and (only is None or n in only)}
            self._awaited[key] = answers
        try:
            for name in list(answers):
                try:
                    control.send(self.node, name, command)
                except errors.EtherError as exc:  # gone between the check and the send
                    log.warning("instance %r: %s", name, exc)
                    with self._cond:
                        answers.pop(name, None)
                    continue
                with self._cond:
                    self._asked[name] = self._asked.get(name, 0) + 1

            def waiting() -> list[str]:
                return [n for n, a in answers.items()
                        if a is None and self._states[n] is InstanceState.READY]

            def interrupted() -> bool:
                return self._aborted or (delivering and self._forced_at is not None)

            next_log = time.monotonic() + PROGRESS_LOG_S
            logged: dict[str, int] = {}
            why = None
            while True:
                with self._cond:
                    left = waiting()
                if not left:
                    break
                now = time.monotonic()
                end = deadline
                if self._forced_at is not None:
                    end = min(end, self._forced_at + FORCED_SAVE_S)
                if interrupted():
                    why = "interrupted"
                elif now >= end:
                    why = "limit"
                elif delivering and all(now - self._moved.get(n, now) >= STALL_S for n in left):
                    why = "stalled"
                if why:
                    break
                if self._hinted == 1:
                    self._hinted += 1
                    log.warning("Shutdown: still waiting for the instances to handle what was "
                                "published; interrupt again to stop waiting (save_all still runs)")
                if delivering and now >= next_log:
                    next_log = now + PROGRESS_LOG_S
                    self._log_progress(left, now - (started or now), logged)
                try:
                    self.node.wait_until(lambda: not waiting() or interrupted(),
                                         min(0.5, max(0.01, end - now)), describe=str)
                except errors.Timeout:
                    pass
        finally:
            with self._cond:  # an ack that comes later is answered by no one
                del self._awaited[key]
                if any(a is None for a in answers.values()):
                    self._abandoned.add(command.request)
        with self._cond:
            return {n: a for n, a in answers.items() if a is not None}, waiting(), why

    def _log_progress(self, waiting: list[str], elapsed: float, logged: dict[str, int]) -> None:
        parts = []
        with self._cond:
            reports = {n: (self._progress.get(n, (None,))[0], self._queued(n)) for n in waiting}
        for name, (report, queued) in reports.items():
            if report is None:
                parts.append(f"{name!r} (no word from it yet)")
                continue
            done = report.handled + report.skipped
            since = f", {done - logged[name]} handled in the last {PROGRESS_LOG_S:g} s" \
                if name in logged else ""
            logged[name] = done
            parts.append(f"{name!r} {queued} queued{since}")
        log.info("Shutdown: still delivering what was published (%.0f s so far, at most %g s): %s",
                 elapsed, self._limit, "; ".join(parts))

    def request_all(self, make: Callable[[int], control.Command],
                    timeout: float = PHASE_TIMEOUT_S, *,
                    only: tuple[str, ...] | None = None) -> dict[str, control.Ack]:
        """Send make(request id) to every ready instance (or those of `only`) and
        return their acks by name once all came; raise Timeout naming those that did not."""
        command = make(next(self._requests))
        acks, left, _ = self._collect(command, time.monotonic() + timeout, only=only)
        if left:
            what = (f"run their {command.phase} handlers" if isinstance(command, control.Phase)
                    else f"answer {command.tag!r}")
            raise errors.Timeout(f"waited {timeout:g} s for {', '.join(map(repr, left))} to {what}")
        return acks

    def run_phase(self, phase: str, timeout: float = PHASE_TIMEOUT_S, *,
                  only: tuple[str, ...] | None = None) -> dict[str, control.PhaseAck]:
        """Run every instance's (or those of `only`) handlers of a lifecycle phase;
        their acks by name."""
        return self.request_all(lambda request: control.Phase(request, phase), timeout, only=only)

    def drain(self, deadline: float, started: float) -> tuple[list[str], str | None]:
        """Wait until no message is in flight anywhere in the session: ([], None); or
        (the instances still busy, why it stopped waiting first)."""
        now = time.monotonic()
        with self._cond:
            for name, state in self._states.items():
                if state is InstanceState.READY:
                    self._moved[name] = max(self._moved.get(name, now), now)
        last = None
        while True:
            self.node.report_drops()   # the main's own publishes' drops (see _node/_drops.py)
            acks, left, why = self._collect(control.Drain(next(self._requests)), deadline,
                                            delivering=True, started=started)
            if why is not None:
                return left, why
            total = self.node.published + sum(a.published for a in acks.values())
            if total == last:
                return [], None
            last = total

    # ---- stop ----

    def hint(self) -> None:
        """A first signal while a shutdown runs: it goes on; say how to stop the
        waiting. (Only sets a flag: a signal handler calls it.)"""
        self._hinted += 1

    def force(self) -> None:
        """A second signal: stop waiting for queued messages; save_all still runs,
        within FORCED_SAVE_S. (Only sets a flag: a signal handler calls it.)"""
        if self._forced_at is None:
            self._forced_at = time.monotonic()

    def abort(self) -> None:
        """A third: wait for nothing; stop and kill the instances now."""
        self._aborted = True
        self.force()

    def shutdown(self, timeout: float | None = None) -> None:
        sid = self.session.name if self.session else "?"
        log.info("Shutting down Ether session: %s...", sid)
        try:
            self.stop(graceful=True, timeout=timeout)
        finally:
            log.info("Ether system shutdown complete")
            from . import _logs
            _logs.close_process_logging()

    def stop(self, *, graceful: bool, timeout: float | None = None) -> None:
        """Shut down (graceful: deliver, save, clean up first); whatever happens in
        there, every instance is stopped or killed and the session removed."""
        self._closing.set()  # no restart from now on
        try:
            self.await_provenance(PROVENANCE_TIMEOUT_S if graceful else 2.0)
            if graceful and self.node is not None:
                try:
                    self._wind_down(self.config.shutdown_timeout_s if timeout is None else timeout)
                except errors.EtherError as exc:
                    log.error("shutdown: %s", exc)
        finally:
            self._stop_processes(graceful)

    def _wind_down(self, limit: float) -> None:
        started = time.monotonic()
        self._limit = limit
        deadline = started + limit
        self.node.stopping = True
        self._set_stage(Stage.STOPPING)
        busy, why = self.drain(deadline, started)
        if why is not None:
            self._set_stage(Stage.SKIPPING)
            self._say_why(why, busy, time.monotonic() - started, limit)
        for phase in ("save_all", "cleanup", "shutdown"):
            if self._aborted or (phase != "save_all" and self._forced_at is not None):
                break
            now = time.monotonic()
            # What is left of the limit, for a slow saver; once the wait was cut
            # short (the limit, or a handler that does not return), the minimum.
            bound = PHASE_TIMEOUT_S if why is not None else max(PHASE_TIMEOUT_S, deadline - now)
            command = control.Phase(next(self._requests), phase, stopping=True)
            acks, silent, _ = self._collect(command, now + bound)
            for name, ack in acks.items():
                for failure in ack.errors:
                    log.error("instance %r: %s handler failed: %s", name, phase, failure)
                if ack.skipped:
                    log.warning("instance %r: %s not handled (the shutdown stopped waiting for them)",
                                name, _plural(ack.skipped, "queued message") +
                                (" was" if ack.skipped == 1 else " were"))
            for name in silent:
                self._silent.add(name)
                with self._cond:
                    left = self._queued(name)
                queued = f"; about {_plural(left, 'queued message')} " \
                    f"{'was' if left == 1 else 'were'} not handled" \
                    if phase == "save_all" and left else ""
                log.error("instance %r did not finish its %s handlers in %.0f s (a handler is "
                          "still running?); it will be stopped%s", name, phase,
                          time.monotonic() - now, queued)
            if self._forced_at is not None or self._aborted:
                break
            now = time.monotonic()
            still, late = self.drain(now + max(PHASE_TIMEOUT_S, deadline - now), started)
            if late is not None and late != "interrupted":
                log.warning("Shutdown: stopped waiting for what the %s handlers published "
                            "(%s)", phase, ", ".join(map(repr, still)))

    def _say_why(self, why: str, busy: list[str], elapsed: float, limit: float) -> None:
        names = ", ".join(map(repr, busy))
        they = ("it skips what is still queued and runs its" if len(busy) == 1 else
                "they skip what is still queued and run their")
        if why == "interrupted":
            log.warning("Shutdown: interrupted again: not waiting for queued messages; running the "
                        "save_all handlers (at most %g s), then stopping", FORCED_SAVE_S)
        elif why == "limit":
            log.warning("Shutdown: stopped waiting for %s after %.0f s, the limit "
                        "(ether.shutdown(timeout=...), or shutdown_timeout_s in the config); %s "
                        "save_all handlers", names, elapsed, they)
        else:
            log.warning("Shutdown: %s handled no message for %g s; not waiting any longer: %s "
                        "save_all handlers", names, STALL_S, they)

    def _stop_processes(self, graceful: bool) -> None:
        """The instances in config order, then those of other hosts (each host's
        session shut down in order), then the members (the bridge, so that what
        the instances sent last still leaves the host); then the session."""
        self._stop_group([n for n in self.processes if n not in self._members], graceful)
        if self.remote is not None and self.node is not None:
            try:
                self.remote.stop(graceful and not self._aborted,
                                 self.config.shutdown_timeout_s if graceful else 1.0)
            except Exception:  # noqa: BLE001 - the local stop goes on
                log.exception("stopping the instances of other hosts")
        self._stop_group([n for n in self.processes if n in self._members], graceful)
        self._stop.set()
        if self._wake_w >= 0:  # the exit watcher, or its join below waits out its poll
            try:
                os.write(self._wake_w, b"s")
            except OSError:
                pass
        if self._dispatcher is not None and self.node is not None:
            self.node.send_control(MAIN_INBOX, WAKE, {})  # the dispatch thread sees _stop now
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(2.0)
        for process in self.processes.values():
            if isinstance(process, _launch.Interpreter) and process.exitcode is not None:
                process.close()  # its pidfd
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        if self.session is not None:
            # The arenas of instances whose exit the watcher did not see in time:
            # kept the same way, rather than freed by the session's close.
            from .._core import _arena_writer
            try:
                with self._unlinked_lock:
                    if self._unlinked is not None:
                        _arena_writer.remove_dead_arenas(self.session, self._unlinked)
            except Exception:  # noqa: BLE001 - the session's close removes them anyway
                log.exception("removing the arenas of stopped instances")
        # The rings' and the stopped instances' arenas' pages are freed by a thread
        # after shutdown returns (their names are gone by then).
        with segment.unmap_later():
            if self.logtopic is not None:
                self.logtopic.close()
                self.logtopic = None
            if self.node is not None:
                self.node.close()
                self.node = None
            if self.session is not None:
                self.session.close()
                self.session = None
            with self._unlinked_lock:
                unlinked, self._unlinked = self._unlinked, None
            # Every process is gone, so these are the arenas' last references.
            _free(unlinked or [])
        from .._spec import _registry
        _registry.undo(self._registry_undo)  # the classes are plain again in this process
        self._registry_undo = []

    def _stop_group(self, names: list[str], graceful: bool) -> None:
        for name in names:
            process = self.processes[name]
            with self._cond:
                if self._states[name] in (InstanceState.STARTING, InstanceState.READY,
                                          InstanceState.RESTARTING, InstanceState.STUCK):
                    self._states[name] = InstanceState.STOPPING
            if process.exitcode is None and self.node is not None and name not in self._silent:
                try:
                    control.send(self.node, name, control.Stop(), timeout=1.0)
                except errors.EtherError:
                    pass
        # A failed start does not wait for instances still starting up; a forced stop
        # waits a moment; one stuck in a handler is not waited for.
        wait = STOP_TIMEOUT_S if graceful and self._forced_at is None else (1.0 if graceful else 0.5)
        deadline = time.monotonic() + wait
        for name in names:
            process = self.processes[name]
            what = "the bridge" if name in self._members else f"instance {name!r}"
            while process.exitcode is None and not self._aborted and name not in self._silent:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                process.join(min(left, 0.2))
            if process.exitcode is None:
                if name in self._silent:
                    log.warning("%s is still inside a handler; killing it", what)
                elif graceful:
                    log.warning("%s did not stop in time; killing it", what)
                process.kill()
                process.join(1.0)
            if process.exitcode is not None:
                self._exited(name)


def _free(segments: list) -> None:
    """Close the open segments of unlinked arenas (the last close frees one; inside
    segment.unmap_later, the unmapping is left to its thread)."""
    for seg in segments:
        try:
            seg.close()
        except Exception:  # noqa: BLE001 - the others are freed all the same
            log.exception("freeing an arena's memory")


def _readable(fds: list, timeout: float) -> list:
    """The descriptors among fds that are readable or closed (a process's sentinel
    turns so when it ends), waiting up to timeout seconds."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    return [fd for fd, _ in poller.poll(timeout * 1000)]
