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
    Member, MemberSpec
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
    "RESERVED_PREFIXES": ("._node._topics", "RESERVED_PREFIXES"),
    "check_topic": ("._node._topics", "check_topic"),
    "default_topic": ("._node._topics", "default_topic"),
    "is_pattern": ("._node._topics", "is_pattern"),
    "matches": ("._node._topics", "matches"),
    "service_topic": ("._node._topics", "service_topic"),
    "sync_topic": ("._node._topics", "sync_topic"),
    "InstanceState": ("._runtime._control", "InstanceState"),
}

__all__ = [
    "Session", "Inbox", "Sender", "Claim", "InboxStatistics", "SenderStatistics",
    "remove_stale_sessions", "list_sessions", "inspect",
    "SessionInfo", "SessionSnapshot", "MemberInfo", "InboxInfo", "Subscription", "Publisher",
    "Client", "default_client", "session_log_dir", "Node", "Envelope", "MessageId", "Origin",
    "Delivery", "WIRE_VERSION",
    "default_topic", "service_topic", "sync_topic", "is_pattern", "matches", "check_topic",
    "RESERVED_PREFIXES", "InstanceState", "STATS_TOPIC", "STATS_BUCKETS_S", "log_root", "shm_needs",
    "decode_envelope", "Encoder", "Decoders", "Request", "request_of", "MESSAGE", "REQUEST", "REPLY",
    "Member", "MemberSpec", "CALL_PREFIX", "DROPS_TOPIC",
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
