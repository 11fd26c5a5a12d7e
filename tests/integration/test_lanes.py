"""A publisher waiting for room in a full inbox holds up neither the instance's
replies nor its control messages (they go through the node's direct lane)."""
import socket
import time

from ether import ether

from conftest import shm_objects, wait_for


def test_replies_and_shutdown_do_not_wait_behind_a_blocked_publish(tmp_path):
    gate_path = str(tmp_path / "gate")
    gate = socket.socket(socket.AF_UNIX)
    gate.bind(gate_path)
    gate.listen(1)
    gate.settimeout(30)
    ether.tap(config={"instances": {
        "sink": {"class_path": "reliability_apps.SlowSink", "kwargs": {"gate": gate_path}},
        "jammer": {"class_path": "reliability_apps.Jammer"}}})
    sid = ether.session_name()
    conn = None
    try:
        ether.pub({}, topic="start-jam")
        conn, _ = gate.accept()              # the sink holds its first message
        state = {}

        def stuck():
            state.update(ether.get("Jammer", "ping", timeout=2))
            return state["stuck_s"] > 0.5

        assert wait_for(stuck, 30) is not None, state   # every ping answered meanwhile
        start = time.monotonic()
        reply = ether.get("Jammer", "ping", timeout=2)
        assert reply["stuck_s"] > 0.5 and time.monotonic() - start < 1.0
    finally:
        if conn is not None:
            conn.sendall(b"x")               # let the sink drain
            conn.close()
        gate.close()
        ether.shutdown()
    assert shm_objects(sid) == []
