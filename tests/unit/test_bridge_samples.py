"""A bridge's sample end to end without zenoh: Outbound gathers what its node
drains into one sample (the envelopes encoded in one call), and the receiving
Checker takes it back with every name qualified and the sender's origin."""
from __future__ import annotations

import time
import types

import msgspec
import pytest

from ether.bridge import _keys, _wire
from ether.bridge._outbound import Outbound
from ether.lowlevel import Node


class _Publisher:
    def __init__(self, samples):
        self.samples = samples

    def put(self, payload, attachment=None):
        self.samples.append((bytes(payload), bytes(attachment)))


_ZENOH = types.SimpleNamespace(
    Priority=types.SimpleNamespace(DATA=0), Locality=types.SimpleNamespace(REMOTE=0),
    CongestionControl=types.SimpleNamespace(BLOCK=0, DROP=1))


@pytest.mark.timeout(20)
def test_a_batch_leaves_as_one_sample_once_and_comes_back_checked(session):
    samples: list = []
    z = types.SimpleNamespace(declare_publisher=lambda *a, **kw: _Publisher(samples))
    main, bridge = Node(session, "main"), Node(session, "bridge")
    try:
        out = Outbound(bridge, z, _ZENOH, _keys.Keys("lab1", "hostA"), ["*"])
        # A topic and a pattern that both match: each message still leaves once.
        out.update({"t": "block", "*": "block"}, {"t": frozenset({"hostB"})})
        for i in range(20):
            main.publish("t", {"i": i})
        deadline = time.monotonic() + 10.0
        with bridge._consumer:
            while bridge.backlog():
                assert time.monotonic() < deadline, "the bridge's inbox did not drain in 10 s"
                bridge.pump(0.1)
        assert len(samples) == 1 and out.sent_frames == 20
        payload, attachment = samples[0]
        att = _wire.read_attachment(attachment)
        got = _wire.Checker(bridge.inline_limit).check_sample(payload, "t", att)
        assert [m[1] for m in got] == ["main@hostA"] * 20
        seqs = [m[2] for m in got]
        assert seqs == sorted(set(seqs))                  # in order, none twice
        assert all(m[6] == main.origin for m in got)      # the sending session's origin
        assert [msgspec.msgpack.decode(m[7]) for m in got] == [{"i": i} for i in range(20)]
    finally:
        main.close()
        bridge.close()
