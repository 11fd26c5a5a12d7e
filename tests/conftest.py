"""Each test gets its own session namespace, and fails if anything of that
namespace is left in /dev/shm when it ends."""
from __future__ import annotations

import os
import secrets

import pytest

import ether


def shm_objects(sid: str) -> list[str]:
    prefix = f"ether_{sid}"
    return sorted(n for n in os.listdir("/dev/shm")
                  if n == prefix or n.startswith(prefix + "_"))


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
