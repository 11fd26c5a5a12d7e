"""Topic names: the defaults, the reserved system names, and patterns.

A user topic is any non-empty str without surrounding spaces that does not start
with a reserved prefix. A subscription may instead name a pattern: a glob with
`*` (any run of characters, '/' included), `?` or `[...]`, e.g. "sensors/*", or
"*" for every user topic. A pattern never matches a reserved topic unless it
starts with that topic's prefix itself (asked for by name: "ether/*").
"""
from __future__ import annotations

import fnmatch
import functools

from .. import _errors as errors

__all__ = ["SERVICE_PREFIX", "SYNC_PREFIX", "SYSTEM_PREFIX", "RESERVED_PREFIXES", "default_topic",
           "service_topic", "sync_topic", "is_pattern", "matches", "check_topic", "with_topic", "BRIDGE_LINKS",
           "PROVENANCE_TOPIC"]

SERVICE_PREFIX = "service:"   # requests to ClassName.method or instance.method
SYNC_PREFIX = "sync:"         # ether.sync(topic)
SYSTEM_PREFIX = "ether/"      # Ether's own topics (logs, states)
RESERVED_PREFIXES = (SERVICE_PREFIX, SYNC_PREFIX, SYSTEM_PREFIX)
_GLOB = frozenset("*?[")
PROVENANCE_TOPIC = f"{SYSTEM_PREFIX}provenance"  # what produced the session (a recorder files it)
# What a bridge serves for statistics(): per other host, the frames that arrived
# from it and those lost on the way (gaps in its frame numbers).
BRIDGE_LINKS = f"{SERVICE_PREFIX}bridge.links"


def default_topic(cls_name: str, method: str) -> str:
    """The topic of a decorator given none: "ClassName.method_name"."""
    return f"{cls_name}.{method}"


def service_topic(target: str, method: str) -> str:
    """Where requests for target.method go (target: a class or an instance name)."""
    return f"{SERVICE_PREFIX}{target}.{method}"


def sync_topic(topic: str) -> str:
    return f"{SYNC_PREFIX}{topic}"


def is_pattern(topic: str) -> bool:
    return not _GLOB.isdisjoint(topic)


@functools.lru_cache(maxsize=4096)
def matches(pattern: str, topic: str) -> bool:
    """True if the subscription `pattern` (a pattern or an exact topic) takes `topic`."""
    if not is_pattern(pattern):
        return pattern == topic
    if topic.startswith(RESERVED_PREFIXES) and not any(
            topic.startswith(p) and pattern.startswith(p) for p in RESERVED_PREFIXES):
        return False
    return fnmatch.fnmatchcase(topic, pattern)


def check_topic(topic, where: str, *, pattern: bool = False, reserved: bool = False) -> str:
    """A user topic (or, with pattern=True, a pattern); a clear error otherwise."""
    if not isinstance(topic, str) or not topic or topic != topic.strip():
        raise errors.ConfigError(
            f"{where}: topic must be a non-empty str without surrounding spaces, not {topic!r}")
    if not pattern and is_pattern(topic):
        raise errors.ConfigError(
            f"{where}: topic {topic!r} contains a pattern character (* ? [); patterns are for "
            f"subscribing, a published topic is a plain name")
    if not reserved and topic.startswith(RESERVED_PREFIXES) and not (pattern and topic.startswith(SYSTEM_PREFIX)):
        raise errors.ConfigError(
            f"{where}: topic {topic!r} starts with a reserved prefix "
            f"({', '.join(map(repr, RESERVED_PREFIXES))}); choose another name")
    return topic


def with_topic(exc: errors.InboxFull, topic: str) -> errors.InboxFull:
    """The InboxFull of a publish (a block subscriber's inbox stayed full), saying
    which topic was being published."""
    return errors.InboxFull(exc.errno, f"publishing to topic {topic!r}: {exc.strerror or exc}")
