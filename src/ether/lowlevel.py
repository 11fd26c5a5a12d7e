"""The extension API: what power users, and Ether's own bridge, recorder, CLI
and monitor, build on. Everything here is public and stable in the way the
facade is; nothing outside `ether`, `ether.lowlevel` and `ether.config` is.

Transport (one host, shared memory):
    Session, Inbox, Sender, Claim, InboxStatistics, SenderStatistics,
    remove_stale_sessions, list_sessions, inspect (SessionInfo, SessionSnapshot,
    MemberInfo, InboxInfo, Subscription, Publisher)
Instances (what the main process's supervisor says of each):
    InstanceState (InstanceState.of(member.state) for an instance's MemberInfo)
A process's presence in a session:
    Client (the message verbs; Client.attach joins a running session),
    default_client (the process's own: an instance's, or the main's after tap),
    Node (publish, forward, subscribe by topic or pattern, requests),
    Envelope, MessageId, Origin, Delivery, WIRE_VERSION
Watching a session:
    STATS_TOPIC (each node's counters, while someone subscribes), STATS_BUCKETS_S
    (its handler-time histogram's bounds), log_root (where session logs live),
    shm_needs (the shared memory a session takes)
Files:
    session_log_dir (a session's log folder: its logs and provenance.json)
The wire, for what carries envelopes elsewhere (a bridge, a recorder):
    decode_envelope, Encoder, Decoders, Request, request_of, MESSAGE, REQUEST, REPLY
A process the supervisor starts by module name (the bridge):
    Member, MemberSpec; prestart_module (its interpreter started ahead of the
    tap); launch_trace (ETHER_LAUNCH_TRACE's stages)
Topics:
    default_topic, service_topic, sync_topic, is_pattern, matches, check_topic,
    RESERVED_PREFIXES

Each name loads its module on first use (PEP 562), so a command that needs
only inspect() does not pay for the codec, the node or the runtime; the
transport itself is Linux only.
"""
from importlib import import_module as _import_module

# name -> (module, attribute): loaded by __getattr__ on first use, then cached here.
_WHERE = {
    "Client": ("._client", "Client"),
    "default_client": ("._client", "default"),
    "session_log_dir": ("._runtime._logs", "session_log_dir"),
    "Inbox": ("._core._inbox", "Inbox"),
    "InboxStatistics": ("._core._inbox", "InboxStatistics"),
    "Publisher": ("._core._directory", "Publisher"),
    "Subscription": ("._core._directory", "Subscription"),
    "InboxInfo": ("._core._inspect", "InboxInfo"),
    "MemberInfo": ("._core._inspect", "MemberInfo"),
    "SessionInfo": ("._core._inspect", "SessionInfo"),
    "SessionSnapshot": ("._core._inspect", "SessionSnapshot"),
    "inspect": ("._core._inspect", "inspect"),
    "list_sessions": ("._core._inspect", "list_sessions"),
    "Claim": ("._core._sender", "Claim"),
    "Sender": ("._core._sender", "Sender"),
    "SenderStatistics": ("._core._sender", "SenderStatistics"),
    "Session": ("._core._session", "Session"),
    "remove_stale_sessions": ("._core._session", "remove_stale_sessions"),
    "MESSAGE": ("._node._codec", "MESSAGE"),
    "REPLY": ("._node._codec", "REPLY"),
    "REQUEST": ("._node._codec", "REQUEST"),
    "WIRE_VERSION": ("._node._codec", "WIRE_VERSION"),
    "Decoders": ("._node._codec", "Decoders"),
    "Encoder": ("._node._codec", "Encoder"),
    "Request": ("._node._codec", "Request"),
    "decode_envelope": ("._node._codec", "decode"),
    "request_of": ("._node._codec", "request_of"),
    "Member": ("._runtime._member", "Member"),
    "MemberSpec": ("._runtime._member", "MemberSpec"),
    "prestart_module": ("._runtime._prestart", "start"),
    "launch_trace": ("._trace", "mark"),
    "Envelope": ("._node._codec", "Envelope"),
    "MessageId": ("._node._codec", "MessageId"),
    "Origin": ("._node._codec", "Origin"),
    "Delivery": ("._node._delivery", "Delivery"),
    "Node": ("._node._node", "Node"),
    "STATS_BUCKETS_S": ("._node._stats", "BUCKETS_S"),
    "STATS_TOPIC": ("._node._stats", "STATS_TOPIC"),
    "log_root": ("._runtime._logs", "log_root"),
    "shm_needs": ("._runtime._room", "shm_needs"),
    "CALL_PREFIX": ("._node._calls", "CALL_PREFIX"),
    "DROPS_TOPIC": ("._node._drops", "DROPS_TOPIC"),
    "BRIDGE_CLASS": ("._node._lane", "BRIDGE_CLASS"),
    "BRIDGE_LINKS": ("._node._topics", "BRIDGE_LINKS"),
    "RESERVED_PREFIXES": ("._node._topics", "RESERVED_PREFIXES"),
    "check_topic": ("._node._topics", "check_topic"),
    "default_topic": ("._node._topics", "default_topic"),
    "is_pattern": ("._node._topics", "is_pattern"),
    "matches": ("._node._topics", "matches"),
    "service_topic": ("._node._topics", "service_topic"),
    "sync_topic": ("._node._topics", "sync_topic"),
    "InstanceState": ("._runtime._control", "InstanceState"),
}

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # type checkers and editors see the names; at run time __getattr__ loads them
    from ._client import Client as Client
    from ._client import default as default_client
    from ._runtime._logs import session_log_dir as session_log_dir
    from ._core._inbox import Inbox as Inbox
    from ._core._inbox import InboxStatistics as InboxStatistics
    from ._core._directory import Publisher as Publisher
    from ._core._directory import Subscription as Subscription
    from ._core._inspect import InboxInfo as InboxInfo
    from ._core._inspect import MemberInfo as MemberInfo
    from ._core._inspect import SessionInfo as SessionInfo
    from ._core._inspect import SessionSnapshot as SessionSnapshot
    from ._core._inspect import inspect as inspect
    from ._core._inspect import list_sessions as list_sessions
    from ._core._sender import Claim as Claim
    from ._core._sender import Sender as Sender
    from ._core._sender import SenderStatistics as SenderStatistics
    from ._core._session import Session as Session
    from ._core._session import remove_stale_sessions as remove_stale_sessions
    from ._node._codec import MESSAGE as MESSAGE
    from ._node._codec import REPLY as REPLY
    from ._node._codec import REQUEST as REQUEST
    from ._node._codec import WIRE_VERSION as WIRE_VERSION
    from ._node._codec import Decoders as Decoders
    from ._node._codec import Encoder as Encoder
    from ._node._codec import Request as Request
    from ._node._codec import decode as decode_envelope
    from ._node._codec import request_of as request_of
    from ._runtime._member import Member as Member
    from ._runtime._member import MemberSpec as MemberSpec
    from ._runtime._prestart import start as prestart_module
    from ._trace import mark as launch_trace
    from ._node._codec import Envelope as Envelope
    from ._node._codec import MessageId as MessageId
    from ._node._codec import Origin as Origin
    from ._node._delivery import Delivery as Delivery
    from ._node._node import Node as Node
    from ._node._stats import BUCKETS_S as STATS_BUCKETS_S
    from ._node._stats import STATS_TOPIC as STATS_TOPIC
    from ._runtime._logs import log_root as log_root
    from ._runtime._room import shm_needs as shm_needs
    from ._node._calls import CALL_PREFIX as CALL_PREFIX
    from ._node._drops import DROPS_TOPIC as DROPS_TOPIC
    from ._node._lane import BRIDGE_CLASS as BRIDGE_CLASS
    from ._node._topics import BRIDGE_LINKS as BRIDGE_LINKS
    from ._node._topics import RESERVED_PREFIXES as RESERVED_PREFIXES
    from ._node._topics import check_topic as check_topic
    from ._node._topics import default_topic as default_topic
    from ._node._topics import is_pattern as is_pattern
    from ._node._topics import matches as matches
    from ._node._topics import service_topic as service_topic
    from ._node._topics import sync_topic as sync_topic
    from ._runtime._control import InstanceState as InstanceState

__all__ = [
    "Session", "Inbox", "Sender", "Claim", "InboxStatistics", "SenderStatistics",
    "remove_stale_sessions", "list_sessions", "inspect",
    "SessionInfo", "SessionSnapshot", "MemberInfo", "InboxInfo", "Subscription", "Publisher",
    "Client", "default_client", "session_log_dir", "Node", "Envelope", "MessageId", "Origin",
    "Delivery", "WIRE_VERSION",
    "default_topic", "service_topic", "sync_topic", "is_pattern", "matches", "check_topic",
    "RESERVED_PREFIXES", "InstanceState", "STATS_TOPIC", "STATS_BUCKETS_S", "log_root", "shm_needs",
    "decode_envelope", "Encoder", "Decoders", "Request", "request_of", "MESSAGE", "REQUEST", "REPLY",
    "Member", "MemberSpec", "prestart_module", "launch_trace", "CALL_PREFIX", "DROPS_TOPIC",
    "BRIDGE_CLASS", "BRIDGE_LINKS",
]


def __getattr__(name: str):
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'ether.lowlevel' has no attribute {name!r}")
    value = getattr(_import_module(where[0], __name__.rpartition(".")[0] or "ether"), where[1])
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
