"""Ether: turn the methods of ordinary classes into pub/sub endpoints and services.

The package is built in layers; each imports only those below it
(docs/design/layers.md):

    _errors, _settings, _platform, config   errors, ETHER_* settings, the config models
    _core/      the shared-memory transport: ring and arena bindings, segments,
                names, directory, session, inbox, sender, arena writer and reader
    _node/      one process's presence in a session: codec, delivery, topics,
                router, node (publish, dispatch, request/reply)
    _spec/      user classes turned into what to run: decorators, introspection,
                registry, importer, binding an object to a node (no processes)
    _client.py  the message verbs over one node; attach to a running session
    _runtime/   processes: control protocol, launch, the child's life, lifecycle,
                supervisor, logs, stdio
    _facade.py  the `ether` object
    lowlevel    the extension API (Session, Inbox, Sender, Node, Envelope, ...)
    cli/        the `ether` command

`from ether import ether` is the facade; the decorators annotate methods; the
errors all derive from EtherError. Importing the package starts nothing, creates
nothing and loads no part of the transport (the facade and the decorators load
on first use): the decorators and plain classes work on any platform.
"""
from ._errors import ArenaFull as ArenaFull
from ._errors import ClaimSkipped as ClaimSkipped
from ._errors import ConfigError as ConfigError
from ._errors import EtherError as EtherError
from ._errors import InboxClosed as InboxClosed
from ._errors import InboxExists as InboxExists
from ._errors import InboxFull as InboxFull
from ._errors import InboxNotFound as InboxNotFound
from ._errors import MalformedMessage as MalformedMessage
from ._errors import MessageTooLarge as MessageTooLarge
from ._errors import RemoteError as RemoteError
from ._errors import RingCorrupt as RingCorrupt
from ._errors import SegmentError as SegmentError
from ._errors import ServiceGone as ServiceGone
from ._errors import ServiceNotFound as ServiceNotFound
from ._errors import SessionClosed as SessionClosed
from ._errors import SessionExists as SessionExists
from ._errors import SessionNotFound as SessionNotFound
from ._errors import ShmSpaceError as ShmSpaceError
from ._errors import SyncFailed as SyncFailed
from ._errors import Timeout as Timeout
from ._errors import TooManyProducers as TooManyProducers
from ._errors import ValidationFailed as ValidationFailed
from ._errors import WouldBlock as WouldBlock


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("ether")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


# The decorators, loaded on first use: `ether ps` needs none of them (nor dataclasses).
_DECORATORS = frozenset({
    "ether_cleanup", "ether_get", "ether_health", "ether_init", "ether_pub", "ether_save",
    "ether_save_all", "ether_shutdown", "ether_start", "ether_sub", "ether_sync",
})

# The transport's names live in ether.lowlevel; these aliases (outside __all__)
# keep older code working, loaded only when first used.
_LOWLEVEL_ALIASES = frozenset({
    "Session", "Inbox", "Sender", "Claim", "Loan", "InboxStatistics", "SenderStatistics",
    "remove_stale_sessions", "Client",
})


def __getattr__(name: str):
    if name == "ether":  # the facade pulls in the codec and msgspec: not for `ether --help`
        from ._facade import ether
        globals()["ether"] = ether
        return ether
    if name in _DECORATORS:
        from ._spec import _decorators
        value = globals()[name] = getattr(_decorators, name)
        return value
    if name in ("lowlevel", "config", "utils", "recording"):  # public submodules, loaded when first used
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    if name in _LOWLEVEL_ALIASES:
        from . import lowlevel
        value = getattr(lowlevel, "Claim" if name == "Loan" else name)
        globals()[name] = value
        return value
    if name == "__version__":
        value = globals()["__version__"] = _version()
        return value
    raise AttributeError(f"module 'ether' has no attribute {name!r}")


__all__ = [
    "ether",
    "ether_cleanup", "ether_get", "ether_health", "ether_init", "ether_pub", "ether_save", "ether_save_all",
    "ether_shutdown", "ether_start", "ether_sub", "ether_sync",
    "ArenaFull", "ClaimSkipped", "ConfigError", "EtherError", "InboxClosed", "InboxExists",
    "InboxFull", "InboxNotFound", "MalformedMessage", "MessageTooLarge", "RemoteError",
    "RingCorrupt", "SegmentError", "ServiceGone", "ServiceNotFound", "SessionClosed",
    "SessionExists", "SessionNotFound", "ShmSpaceError", "SyncFailed", "Timeout",
    "TooManyProducers", "ValidationFailed", "WouldBlock",
]
