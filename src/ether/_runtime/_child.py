"""The life of one configured instance in its own process.

The main process (see _supervisor.py) starts it with a LaunchSpec (_launch.py:
forked, or a fresh interpreter that calls main()). It joins the session,
imports and constructs the class, binds the decorated methods to its node,
reports Ready, then dispatches until told to stop, or until the main process
dies (its watchdog, _watchdog.py).

If it cannot start, whatever the cause (the session, its inbox, the class, the
main's inbox), the traceback goes to its log and the cause to the main: as a
Failed report if it can reach the main's inbox, and always in a file next to
its log (`<name>.failure`), which the main reads when no report came.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import traceback

import msgspec

from .. import _client
from . import _collector
from . import _control as control

log = logging.getLogger("Ether")


# A Struct, not a dataclass: made in C at import (a dataclass builds and compiles
# its methods, about 0.7 ms each, on the tap's path; layers.md).
class LaunchSpec(msgspec.Struct, frozen=True):
    session: str
    name: str
    class_path: str
    args: tuple
    kwargs: dict
    sys_path: tuple[str, ...]
    cwd: str
    main_inbox: str
    registry: tuple = ()        # (class_path, method, decorator, kwargs) to apply first
    parent_pid: int = 0         # the main's pid: the parent this process dies with
    parent_death_signal: bool = False  # ask the kernel for SIGTERM when the parent dies
    max_producers: int = 256    # its inbox's producer slots (sized from the config)
    restarts: int = 0           # how many times it was started again (restart policies)
    stuck_after_s: float | None = None      # see _health.py
    health_interval_s: float | None = None


class Failure(msgspec.Struct, frozen=True):
    """Why an instance could not start, as its failure file holds it."""
    type: str
    error: str        # the exception as its traceback's last line shows it
    traceback: str


def failure_path(log_path) -> str:
    return f"{os.path.splitext(os.fspath(log_path))[0]}.failure"


def main() -> None:
    """A fresh interpreter's entry point: the spec comes as MessagePack on stdin.
    It ends as a forked instance does, with os._exit: no wait for threads that
    user code left running."""
    from . import _launch
    code = 1
    try:
        spec = _launch.read_spec(sys.stdin.buffer.read())
        sys.stdin.close()
        sys.stdin = open(os.devnull)  # as multiprocessing gives its children
        run(spec)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


def preload() -> None:
    """Import what an instance's start-up imports, in the process that forks the
    instances: each child would otherwise import (and, without bytecode caches,
    compile) the same modules again, one after the other on a small machine."""
    from . import _health, _lifecycle, _logs, _stdio, _watchdog  # noqa: F401
    from .._core import _process, _session  # noqa: F401
    from .._node import _node, _stats  # noqa: F401
    from .._spec import _bind, _importer, _introspect, _registry  # noqa: F401


def run(spec: LaunchSpec) -> None:
    """Process entry point."""
    # Ctrl-C in a terminal reaches the whole process group: the main process
    # orchestrates the shutdown, so instances leave SIGINT to it. (The launcher
    # blocked it until now.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _collector.in_child()   # forked while the tap paused the collector: undone
    from .._trace import mark
    mark(spec.name, "instance runs")
    from ._watchdog import Watchdog
    watchdog = Watchdog(spec.name, spec.main_inbox, spec.parent_pid)
    watchdog.install(parent_death_signal=spec.parent_death_signal)
    from . import _stdio as _output
    _output.install()  # whole lines, one write each, as they are printed
    os.chdir(spec.cwd)
    sys.path[:0] = [p for p in spec.sys_path if p not in sys.path]
    from . import _logs
    log_path = _logs.configure_process_logging(spec.session, spec.name, console=True)
    session = node = logtopic = None
    try:
        from ._logtopic import LogTopic
        from .._core._session import Session
        from .._node._node import Node
        from .._spec import _introspect as methods
        from .._spec import _registry
        from .._spec._bind import bind
        from .._spec._importer import import_class
        from ._lifecycle import Lifecycle
        session = Session.open(spec.session)
        node = Node(session, spec.name, max_producers=spec.max_producers)
        mark(spec.name, "node")
        logtopic = LogTopic(node, spec.name, session=spec.session)
        _registry.apply(spec.registry, search_path=list(spec.sys_path))
        cls = import_class(spec.class_path, search_path=list(spec.sys_path), instance=spec.name)
        spec_of_class = methods.introspect(cls)
        # ether.pub() and the verbs, from user code here: the constructor's too (an
        # extension such as the recorder subscribes there, before Ready).
        _client.set_default(_client.Client(node))
        obj = cls(*spec.args, **spec.kwargs)
        bind(obj, spec_of_class, node, spec.name)
        mark(spec.name, "bound")
        with session._directory as d:  # what inspect() shows (Node.describe, and the state)
            d.set_info(node.inbox.token, class_name=spec.class_path,
                       state=control.InstanceState.STARTING.code, restarts=spec.restarts)
        lifecycle = Lifecycle(obj, spec_of_class, node, spec)
        node.on_control = lifecycle.on_control
        from ._health import Health
        watchdog.attach(node, session, lifecycle, Health(
            spec.name, spec.main_inbox, node, obj, spec_of_class.lifecycle.get("health", ()),
            stuck_after_s=spec.stuck_after_s, health_interval_s=spec.health_interval_s))
        control.send(node, spec.main_inbox, control.Ready(spec.name, os.getpid()))
        mark(spec.name, "ready sent")
        node.start_stats()  # the stats topic, while someone watches
    except BaseException as exc:
        watchdog.stop()
        _report_failure(spec, exc, node, log_path)
        for part in (logtopic, node, session):
            try:
                if part is not None:
                    part.close()
            except BaseException:
                pass
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    try:
        node.serve(owner_check=False)  # the watchdog watches the owner
    finally:
        watchdog.stop()
        logtopic.close()
        node.close()
        watchdog.remove_if_orphaned()  # the last one out of a dead session cleans up
        session.close()
        sys.stdout.flush()
        sys.stderr.flush()


def _report_failure(spec: LaunchSpec, exc: BaseException, node, log_path) -> None:
    """The cause to the main (a report, and the failure file); the traceback to the log."""
    text = "".join(traceback.format_exception(exc)).rstrip()
    error = "".join(traceback.format_exception_only(exc)).strip().splitlines()[-1] or type(exc).__name__
    failure = Failure(type(exc).__name__, error, text)
    log.error("instance %r failed to start:\n%s", spec.name, text)
    try:
        path = failure_path(log_path)
        with open(path + ".tmp", "wb") as f:
            f.write(msgspec.msgpack.encode(failure))
        os.replace(path + ".tmp", path)  # whole or not at all
    except OSError:
        pass
    if node is not None:
        try:
            control.send(node, spec.main_inbox, control.Failed(
                spec.name, error=error, type=failure.type, traceback=text))
        except BaseException:
            pass  # the failure file says it
