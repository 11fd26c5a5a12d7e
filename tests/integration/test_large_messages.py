"""Messages above an inbox record's limit (ETHER_MAX_MESSAGE_BYTES, 1 MiB by
default) travel through the sender's arena: replies as well as publishes."""
import time

import numpy as np
import pytest

import ether as ether_pkg
from ether import ether

from conftest import shm_objects


@pytest.fixture
def big(monkeypatch):
    monkeypatch.setenv("ETHER_ARENA_BYTES", str(160 << 20))
    ether.tap(config={"instances": {"big": {"class_path": "lineage_apps.Big"}}})
    sid = ether.session_name()
    yield
    ether.shutdown()
    assert shm_objects(sid) == []


def test_a_three_megabyte_list_reply_arrives_intact(big):
    n = 400_000   # about 3 MB of MessagePack
    assert ether.get("Big", "numbers", {"n": n}, timeout=20) == list(range(n))
    reply = ether.save("Big", "numbers", {"n": n}, timeout=20)
    assert reply["status"] == "success" and len(reply["result"]) == n


def test_a_64_mib_array_reply_arrives_intact_and_read_only(big):
    result = ether.get("Big", "frame", {"mib": 64}, timeout=30)
    data = result["data"]
    assert data.dtype == np.float32 and data.nbytes == 64 << 20 and not data.flags.writeable
    assert float(data.sum(dtype=np.float64)) == result["sum"]
    assert data[12345] == 12345.0


def test_a_reply_too_large_to_send_reaches_the_caller_at_once_naming_the_setting(big):
    start = time.monotonic()
    with pytest.raises(ether_pkg.RemoteError, match=r"the result cannot be sent: .*ETHER_ARENA_BYTES"):
        ether.get("Big", "blob", {"mib": 200}, timeout=30)
    assert time.monotonic() - start < 20   # not the caller's whole timeout
    reply = ether.save("Big", "blob", {"mib": 200}, timeout=30)
    assert reply["status"] == "error" and reply["type"] == "ArenaFull"
    assert ether.get("Big", "numbers", {"n": 3}) == [0, 1, 2]   # it keeps serving
