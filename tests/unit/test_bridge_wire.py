"""The bridge's key layout and wire checks, without zenoh."""
from __future__ import annotations

import msgspec
import numpy as np
import pytest

from ether import MalformedMessage
from ether.bridge import _keys, _wire
from ether.lowlevel import Envelope, MessageId, Origin


@pytest.mark.parametrize("name", ["data", "a b", "sensors/*", "x@y", "ü", "service:A.b", "..", "%"])
def test_a_name_is_one_key_chunk_and_comes_back(name):
    chunk = _keys.encode(name)
    assert all(c.isalnum() or c in "._-%" for c in chunk)
    assert _keys.decode(chunk) == name


@pytest.mark.parametrize("chunk", ["a%zz", "a*", "a/b", "", "%C3"])
def test_a_chunk_encode_never_makes_is_refused(chunk):
    with pytest.raises(ValueError):
        _keys.decode(chunk)


def test_liveliness_keys_parse_back():
    keys = _keys.Keys("lab1", "rig-a")
    assert keys.parse_live(keys.sub_live("sensors/*", "drop")) == ("rig-a", "sub", ("sensors/*", "drop"))
    assert keys.parse_live(keys.request_live("svc", "service:Svc.get")) == \
        ("rig-a", "r", ("svc", "service:Svc.get"))
    assert keys.parse_live(keys.bridge_live("abc")) == ("rig-a", "bridge", ("abc",))
    assert keys.parse_live("ether/lab1/live/rig-a/sub/x") is None      # wrong arity
    assert keys.parse_live("ether/other/live/rig-a/bridge/abc") is None
    assert keys.call_of(keys.call("rig-a", "inst.1", "sync:go")) == ("inst.1", "sync:go")


def _frame(payload: dict, **over) -> bytes:
    env = Envelope(1, 0, "t", "gen", 3, 7, MessageId("p", 2), None, None, msgspec.Raw(b""))
    env = msgspec.structs.replace(env, **over) if over else env
    return _wire.frame(env, msgspec.msgpack.encode(payload), Origin(b"r" * 16, "hostA"))


ATT = _wire.Attachment(1, 1, 0, "hostA", b"r" * 16, 5)


def test_a_frame_is_checked_and_its_names_qualified_by_host():
    frame = _wire.Checker(1 << 16).check(_frame({"x": 1}), "t", ATT)
    assert frame.envelope.sender == "gen@hostA" and frame.envelope.cause.sender == "p@hostA"
    assert frame.envelope.origin == Origin(b"r" * 16, "hostA")
    assert msgspec.msgpack.decode(frame.payload) == {"x": 1}


def test_large_arrays_are_decoded_so_they_enter_the_arena():
    array = np.arange(1 << 15, dtype=np.float32)  # 128 KiB
    payload = msgspec.msgpack.encode({"a": msgspec.msgpack.Ext(1, msgspec.msgpack.encode(
        (array.dtype.str, list(array.shape), array.tobytes())))})
    env = Envelope(1, 0, "t", "gen", 3, 7, None, None, None, msgspec.Raw(b""))
    data = _wire.frame(env, payload, Origin(b"r" * 16, "hostA"))
    frame = _wire.Checker(1 << 16).check(data, "t", ATT)
    assert isinstance(frame.payload, dict) and not frame.payload["a"].flags.writeable
    assert np.array_equal(frame.payload["a"], array)


@pytest.mark.parametrize("data, why", [
    (_frame({"x": 1})[:-2], "not an Ether envelope"),
    (_frame({"x": 1}, topic="other"), "on the key of"),
    (_frame({"x": 1}, sender="a@b"), "not a local name"),
    (_frame({"x": 1}, kind=2), "kind 2"),
    (_frame([1]), "not a map"),
])
def test_a_bad_frame_is_malformed(data, why):
    with pytest.raises(MalformedMessage, match=why):
        _wire.Checker(1 << 16).check(data, "t", ATT)


def test_frames_unpack_only_when_they_fill_the_sample_exactly():
    sample = _wire.pack([b"ab", b"cde"])
    assert [bytes(f) for f in _wire.unpack(sample, 2)] == [b"ab", b"cde"]
    for bad, count in ((sample[:-1], 2), (sample, 3), (b"\xff\xff\xff\x7fab", 1), (b"\x01", 1)):
        with pytest.raises(MalformedMessage):
            _wire.unpack(bad, count)


def test_attachments_are_typed():
    good = _wire.attachment(1, 0, "hostA", b"r" * 16, 5)
    assert _wire.read_attachment(good).host == "hostA"
    for bad in (None, b"\xc1", msgspec.msgpack.encode((2, 1, 0, "h", b"r" * 16, 5)),
                msgspec.msgpack.encode((1, 0, 0, "h", b"r" * 16, 5))):
        with pytest.raises(MalformedMessage):
            _wire.read_attachment(bad)
