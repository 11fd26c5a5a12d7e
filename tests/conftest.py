"""Each test gets its own session namespace, and fails if anything of that
namespace is left in /dev/shm when it ends."""
from __future__ import annotations

import os
import secrets
import threading
import time

import pytest

import ether


def shm_objects(sid: str) -> list[str]:
    prefix = f"ether_{sid}"
    return sorted(n for n in os.listdir("/dev/shm")
                  if n == prefix or n.startswith(prefix + "_"))


def wait_for(condition, timeout: float) -> float | None:
    """Seconds until condition() held, or None after timeout. It polls every 10 ms:
    only for work of a background thread that signals nothing (a sweeper, an exit
    watcher); everything else is awaited by handshake."""
    start = time.monotonic()
    tick = threading.Event()
    while not condition():
        if time.monotonic() - start > timeout:
            return None
        tick.wait(0.01)
    return time.monotonic() - start


@pytest.fixture
def sid() -> str:
    """A fresh session id; the test fails if any object of it outlives the test."""
    name = "t" + secrets.token_hex(5)
    yield name
    left = shm_objects(name)
    if left:
        ether.remove_stale_sessions()
        pytest.fail(f"shared memory left in /dev/shm after the test: {left}")


@pytest.fixture
def session(sid):
    s = ether.Session.create(sid)
    yield s
    s.close()


@pytest.fixture
def live():
    """A session of observe_apps.CONFIG (ticker -> scaler -> sink), for the observing
    commands and the monitor; its name. Shut down, and checked clean, after."""
    import observe_apps
    from ether import ether as facade
    facade.tap(config=observe_apps.CONFIG)
    sid = facade.session_name()
    try:
        yield sid
    finally:
        facade.shutdown()
        assert shm_objects(sid) == []


@pytest.fixture
def recorded(tmp_path):
    """tap(instances, **record) with a recorder into tmp_path/rec (its folder is
    returned); shut down, and every session checked clean, after."""
    from ether import ether as facade
    sessions = []

    def tap(instances, **record):
        record.setdefault("all", True)
        facade.tap(config={"instances": instances,
                           "record": {"output": str(tmp_path / "rec"), **record}})
        sessions.append(facade.session)
        return tmp_path / "rec"

    yield tap
    facade.shutdown()
    for sid in sessions:
        assert shm_objects(sid) == [], f"session {sid} left shared memory behind"
