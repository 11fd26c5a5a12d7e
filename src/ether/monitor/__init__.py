"""Watching a session from outside it: what `ether ps/top/topics/echo/hz/logs`
print and what `ether monitor` serves.

An extension package: it builds only on `ether`, `ether.lowlevel`,
`ether.config` and `ether.utils`. What it reads:
- the session directory, through `ether.lowlevel.inspect()` (members, inboxes
  and their fill, subscriptions, publishers): shared memory, read-only;
- each node's counters on the stats topic (`ether.lowlevel.STATS_TOPIC`),
  which nodes publish only while someone subscribes (`StatsWatch`);
- the processes, through psutil (CPU, memory, uptime);
- the session's log folder (`_logs.py`).

Its names load their modules on first use (PEP 562: `ether ps` never loads
the log reader); importing it loads none of the web stack: `monitor()` (the server, the
`monitor` extra: starlette, uvicorn, prometheus-client) is imported by the
`ether monitor` command alone.
"""
from importlib import import_module as _import_module

# name -> (module, attribute): loaded by __getattr__ on first use, then cached here.
_WHERE = {
    "LogFilter": ("_logs", "Filter"),
    "LogFollower": ("_logs", "Follower"),
    "LogRecord": ("_logs", "LogRecord"),
    "log_dir": ("_logs", "log_dir"),
    "read_logs": ("_logs", "read"),
    "COLUMNS": ("_members", "COLUMNS"),
    "Processes": ("_members", "Processes"),
    "member_rows": ("_members", "member_rows"),
    "restarts_of": ("_members", "restarts_of"),
    "state_of": ("_members", "state_of"),
    "PublishedRates": ("_published", "PublishedRates"),
    "TopicRate": ("_rates", "TopicRate"),
    "SessionChoiceError": ("_sessions", "SessionChoiceError"),
    "bridge_members": ("_sessions", "bridge_members"),
    "choose": ("_sessions", "choose"),
    "live_names": ("_sessions", "live_names"),
    "needs_bridge": ("_sessions", "needs_bridge"),
    "StatsWatch": ("_stats", "StatsWatch"),
    "handler_errors": ("_stats", "handler_errors"),
    "service_rows": ("_topics", "service_rows"),
    "topic_rows": ("_topics", "topic_rows"),
    "user_topic": ("_topics", "user_topic"),
    "FieldMissing": ("_values", "FieldMissing"),
    "pick": ("_values", "pick"),
    "plain": ("_values", "plain"),
    "BindRefused": ("_bind", "BindRefused"),
    "check_bind": ("_bind", "check_bind"),
    "is_loopback": ("_bind", "is_loopback"),
}

__all__ = [*_WHERE, "serve"]


def serve(session: str, **kwargs):
    """Start `ether monitor`'s web server for `session` (see _app.serve); needs
    the monitor extra."""
    from ._app import serve as _serve
    return _serve(session, **kwargs)



def __getattr__(name: str):
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'ether.monitor' has no attribute {name!r}")
    value = getattr(_import_module(f".{where[0]}", __name__), where[1])
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
