"""Topic names, reserved prefixes and patterns (src/ether/_node/_topics.py)."""
import pytest

from ether import ConfigError
from ether.lowlevel import check_topic, is_pattern, matches, service_topic, sync_topic


@pytest.mark.parametrize("pattern, topic, expected", [
    ("sensors/*", "sensors/t1", True),
    ("sensors/*", "sensors/a/b", True),        # * crosses '/'
    ("sensors/*", "sensorsX", False),
    ("sensors/t?", "sensors/t1", True),
    ("sensors/[ab]", "sensors/b", True),
    ("*", "anything", True),
    ("*", service_topic("Store", "get"), False),  # never a reserved topic...
    ("*", sync_topic("prepare"), False),
    ("*", "ether/log", False),
    ("ether/*", "ether/log", True),               # ...unless the pattern asks for it
    ("service:*", service_topic("Store", "get"), True),
    ("exact", "exact", True),
    ("exact", "exactly", False),
])
def test_patterns_match_user_topics_and_reserved_ones_only_when_asked(pattern, topic, expected):
    assert matches(pattern, topic) is expected


def test_only_globs_are_patterns():
    assert is_pattern("a/*") and is_pattern("a?") and is_pattern("[x]")
    assert not is_pattern("a/b.c")


@pytest.mark.parametrize("topic, why", [
    ("", "non-empty"), (" x", "surrounding spaces"), (5, "non-empty str"),
    ("service:X.m", "reserved prefix"), ("sync:t", "reserved prefix"), ("ether/log", "reserved prefix"),
    ("a/*", "pattern character"),
])
def test_a_published_topic_is_a_plain_user_name(topic, why):
    with pytest.raises(ConfigError, match=why):
        check_topic(topic, "ether.pub")


def test_a_subscription_may_be_a_pattern_and_may_read_ethers_own_topics():
    assert check_topic("a/*", "ether.subscribe", pattern=True) == "a/*"
    assert check_topic("ether/log", "ether.subscribe", pattern=True) == "ether/log"
    with pytest.raises(ConfigError, match="reserved prefix"):
        check_topic("service:*", "ether.subscribe", pattern=True)
