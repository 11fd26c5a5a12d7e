"""Bad input never kills a process: whatever a record holds, the receiver logs
it (sparingly), skips it, and delivers what comes after it."""
import threading

import msgspec
import pytest

from ether import ether
from ether.lowlevel import Session

from conftest import shm_objects

NESTED = b"\x91" * 2000 + b"\xc0"                       # a 2 KiB record nested 2,000 deep
RUN = bytes(16)


def _envelope(topic: str, payload, *, seq: int = 1, holds=None) -> bytes:
    fields = [1, 0, topic, "forger", seq, 0, None, None, [RUN, "h"], payload]
    if holds is not None:
        fields.append(holds)
    return msgspec.msgpack.encode(fields)


def _forged_handle(*fields) -> msgspec.msgpack.Ext:
    return msgspec.msgpack.Ext(2, msgspec.msgpack.encode(list(fields)))


BAD = [
    NESTED,
    _envelope("numbers", msgspec.Raw(b"\x81\xa1x" + NESTED)),
    _envelope("numbers", {"x": _forged_handle(1, 2, 3, -1, 16, "<f4", [4])}),
    _envelope("numbers", {"x": _forged_handle(2 ** 63, 2 ** 64 - 1, 0, 0, 2 ** 40, "<f4", [1])}),
    _envelope("numbers", {"x": 1}, holds=[[1, 2]]),
    b"\xff" * 64,
]
# Forged holds on a valid payload: nothing to hold, and the message still arrives.
FORGED_HOLDS = _envelope("numbers", {"x": 21, "label": "forged holds"}, holds=[[2 ** 64 - 1, -5, 2 ** 63]])


@pytest.fixture
def doubler():
    """Tap lazily, inside the test: an instance forked during fixture setup would
    write to a stderr that capfd no longer reads."""
    sessions = []

    def tap() -> str:
        ether.tap(config={"instances": {"doubler": {"class_path": "apps.Doubler"}}})
        sessions.append(ether.session_name())
        return sessions[-1]

    yield tap
    ether.shutdown()
    assert [n for sid in sessions for n in shm_objects(sid)] == []


def test_no_record_kills_an_instance_and_what_follows_is_delivered(capfd, doubler):
    with Session.open(doubler()) as session, session.connect("doubler") as tx, \
            ether.listen("doubled", timeout=10) as replies:
        for i, bad in enumerate(BAD):
            tx.send(bad)
            tx.send(_envelope("numbers", {"x": i, "label": f"after {i}"}, seq=100 + i))
        tx.send(FORGED_HOLDS)
        got = [next(replies) for _ in range(len(BAD) + 1)]
    assert [g["label"] for g in got] == [f"after {i}" for i in range(len(BAD))] + ["forged holds"]
    ether.shutdown()
    err = capfd.readouterr().err
    assert "RecursionError" not in err.replace("maximum recursion depth", "")
    assert "doubler: dropped a malformed message: not an Ether envelope" in err


def test_the_main_process_survives_them_too_callbacks_and_requests_included(doubler):
    sid = doubler()
    seen = []
    done = threading.Event()

    def callback(message):
        seen.append(message["n"])
        if message["n"] == len(BAD) - 1:
            done.set()

    unsubscribe = ether.subscribe("probe", callback)
    try:
        with Session.open(sid) as session, session.connect("main") as tx:
            for i, bad in enumerate(BAD):
                tx.send(bad)
                tx.send(_envelope("probe", {"n": i}, seq=200 + i))
        assert done.wait(10)
        assert seen == list(range(len(BAD)))
        with ether.listen("doubled", timeout=10) as replies:   # requests and pub/sub still work
            ether.pub({"x": 5}, topic="numbers")
            assert next(replies)["x"] == 10
    finally:
        unsubscribe()


def test_a_flood_of_bad_messages_is_counted_not_logged_line_by_line(capfd, doubler):
    n = 10_000
    with Session.open(doubler()) as session, session.connect("doubler") as tx, \
            ether.listen("doubled", timeout=20) as replies:
        for i in range(n):
            tx.send(_envelope("numbers", {"x": "not a number"}, seq=i + 1))
        tx.send(_envelope("numbers", {"x": 1, "label": "last"}, seq=n + 1))
        assert next(replies)["label"] == "last"
    ether.shutdown()
    err = capfd.readouterr().err
    assert err.count("rejected: field 'x': Expected") == 1      # the first, in full
    lines = [l for l in err.splitlines() if "more message(s) on 'numbers'" in l]
    assert 1 <= len(lines) <= 30                                  # then counts, at most once a second
    assert lines[-1].endswith(f"({n} in all)")
