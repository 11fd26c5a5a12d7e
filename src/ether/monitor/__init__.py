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

Importing it loads none of the web stack: `monitor()` (the server, the
`monitor` extra: starlette, uvicorn, prometheus-client) is imported by the
`ether monitor` command alone.
"""
from ._logs import Filter as LogFilter
from ._logs import Follower as LogFollower
from ._logs import LogRecord
from ._logs import log_dir
from ._logs import read as read_logs
from ._members import COLUMNS, Processes, member_rows, restarts_of, state_of
from ._published import PublishedRates
from ._rates import TopicRate
from ._sessions import SessionChoiceError, bridge_members, choose, live_names, needs_bridge
from ._stats import StatsWatch, handler_errors
from ._topics import service_rows, topic_rows, user_topic
from ._values import FieldMissing, pick, plain

__all__ = [
    "LogFilter", "LogFollower", "LogRecord", "log_dir", "read_logs",
    "COLUMNS", "Processes", "member_rows", "restarts_of", "state_of", "PublishedRates", "TopicRate",
    "SessionChoiceError", "bridge_members", "choose", "live_names", "needs_bridge",
    "StatsWatch", "handler_errors", "service_rows", "topic_rows", "user_topic",
    "FieldMissing", "pick", "plain",
]

from ._bind import BindRefused, check_bind, is_loopback  # noqa: E402


def serve(session: str, **kwargs):
    """Start `ether monitor`'s web server for `session` (see _app.serve); needs
    the monitor extra."""
    from ._app import serve as _serve
    return _serve(session, **kwargs)


__all__ += ["BindRefused", "check_bind", "is_loopback", "serve"]
