"""The life of one configured instance in its own process.

The main process (see _supervisor.py) starts this with a LaunchSpec. It joins
the session, imports and constructs the class, binds the decorated methods to
its node, reports Ready (or Failed, with the traceback), then dispatches
until told to stop, or until the main process dies.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import traceback

from .._core._session import Session
from .._spec import _introspect as methods
from .._spec._bind import bind
from .. import _client
from . import _control as control
from ._lifecycle import Lifecycle

log = logging.getLogger("Ether")


@dataclasses.dataclass(frozen=True)
class LaunchSpec:
    session: str
    name: str
    class_path: str
    args: tuple
    kwargs: dict
    sys_path: tuple[str, ...]
    cwd: str
    main_inbox: str
    registry: tuple = ()   # (class_path, method, decorator, kwargs) to apply first


def run(spec: LaunchSpec) -> None:
    """Process entry point."""
    # Ctrl-C in a terminal reaches the whole process group: the main process
    # orchestrates the shutdown, so instances leave SIGINT to it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from . import _stdio as _output
    _output.install()  # whole lines, one write each, as they are printed
    os.chdir(spec.cwd)
    sys.path[:0] = [p for p in spec.sys_path if p not in sys.path]
    from . import _logs
    _logs.configure_process_logging(spec.session, spec.name, console=True)
    session = Session.open(spec.session)
    node = None
    try:
        from .._spec._importer import import_class
        from .._node._node import Node
        node = Node(session, spec.name)
        from .._spec import _registry
        _registry.apply(spec.registry, search_path=list(spec.sys_path))
        cls = import_class(spec.class_path, search_path=list(spec.sys_path), instance=spec.name)
        spec_of_class = methods.introspect(cls)
        obj = cls(*spec.args, **spec.kwargs)
        bind(obj, spec_of_class, node, spec.name)
        node.describe(spec.class_path)
    except BaseException as exc:
        detail = "".join(traceback.format_exception(exc)).rstrip()
        try:
            if node is None:
                raise
            control.send(node, spec.main_inbox, control.Failed(
                spec.name, error=detail.splitlines()[-1] if detail else "unknown error",
                type=type(exc).__name__, traceback=detail))
        except BaseException:
            print(f"Ether instance {spec.name!r} failed to start:\n{detail}", file=sys.stderr)
        session.close()
        os._exit(1)
    _client.set_default(_client.Client(node))  # ether.pub() and the verbs, from user code here
    lifecycle = Lifecycle(obj, spec_of_class, node, spec)
    node.on_control = lifecycle.on_control
    control.send(node, spec.main_inbox, control.Ready(spec.name, os.getpid()))
    try:
        node.serve()
    finally:
        node.close()
        session.close()
        sys.stdout.flush()
        sys.stderr.flush()


