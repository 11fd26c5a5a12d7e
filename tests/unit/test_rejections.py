"""Counting and logging rejections without a flood (src/ether/_node/_rejections.py)."""
import logging

import pytest

from ether._node import _rejections
from ether._node._rejections import Rejections


@pytest.fixture
def lines(caplog, monkeypatch):
    monkeypatch.setattr(_rejections, "LOG_INTERVAL_S", 3600.0)   # one count line, at flush
    caplog.set_level(logging.ERROR, logger="Ether")
    return lambda: [r.getMessage() for r in caplog.records]


def test_distinct_error_texts_of_one_kind_log_one_full_line_then_a_count(lines):
    r = Rejections("target")
    for i in range(500):   # garbage: every error text differs, not only in its digits
        r.report("?", "malformed", f"not an Ether envelope ({'xyz'[i % 3] * (i % 7)})",
                 f"dropped a malformed message: variant {i}")
    r.flush()
    out = lines()
    assert out[0] == "target: dropped a malformed message: variant 0"
    assert len(out) <= 3   # the full line, the second at once, the rest at close
    assert out[-1].startswith("target: 498 more message(s) on '?': malformed, the latest: ")
    assert out[-1].endswith("(500 in all)")
    assert r.counts() == (_rejections.Rejection("?", "malformed", 500),)


def test_each_topic_and_each_kind_is_logged_in_full_once(lines):
    r = Rejections("target")
    for topic in ("a", "b"):
        for kind in ("invalid", "handler raised KeyError", "handler raised ValueError"):
            for _ in range(3):
                r.report(topic, kind, "text", f"{topic} {kind}")
    r.flush()
    full = [l for l in lines() if "more message(s)" not in l]
    assert sorted(full) == sorted(f"target: {t} {k}" for t in "ab" for k in (
        "invalid", "handler raised KeyError", "handler raised ValueError"))
    assert sum(n for _, _, n in r.counts()) == 18


def test_counts_come_at_most_once_an_interval_and_the_rest_at_close(lines, monkeypatch):
    now = [100.0]
    monkeypatch.setattr(_rejections.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(_rejections, "LOG_INTERVAL_S", 1.0)
    r = Rejections("t")
    for i in range(1000):
        now[0] += 0.01          # 10 s in all: about ten count lines
        r.report("x", "invalid", "e", "first")
    before = len(lines())
    r.flush()
    out = lines()
    assert 8 <= before <= 12
    assert out[-1].endswith("(1000 in all)") and len(out) == before + 1
