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
    (_frame({"x": 1})[:-2], "truncated"),
    (_frame({"x": 1}, topic="other"), "on the key of"),
    (_frame({"x": 1}, sender="a@b"), "not a local name"),
    (_frame({"x": 1}, kind=2), "kind 2"),
    (_frame([1]), "not a map"),
])
def test_a_bad_frame_is_malformed(data, why):
    with pytest.raises(MalformedMessage, match=why):
        _wire.Checker(1 << 16).check(data, "t", ATT)


def _att(count: int) -> _wire.Attachment:
    return msgspec.structs.replace(ATT, count=count)


def test_a_sample_is_checked_whole_and_each_frame_qualified():
    envs = [Envelope(1, 0, "t", "gen", i, 7, MessageId("p", i) if i else None, None, None,
                     msgspec.Raw(msgspec.msgpack.encode({"i": i}))) for i in range(40)]
    sample = _wire.encode_frames(envs)
    assert sample == _wire.pack([msgspec.msgpack.encode(e) for e in envs])
    out = _wire.Checker(1 << 16).check_sample(sample, "t", _att(40))
    assert [(m[1], m[2]) for m in out] == [("gen@hostA", i) for i in range(40)]
    assert out[0][4] is None and out[1][4] == MessageId("p@hostA", 1)
    assert out[5][6] == Origin(b"r" * 16, "hostA")    # named by the attachment
    assert [msgspec.msgpack.decode(m[7]) for m in out] == [{"i": i} for i in range(40)]


def test_frames_without_origin_get_the_attachments_origin_host():
    env = Envelope(1, 0, "t", "gen", 0, 7, None, None, None, msgspec.Raw(b"\x80"))
    att = _wire.read_attachment(_wire.attachment(1, 0, "hostA", b"r" * 16, 5, origin_host="box1"))
    (m,) = _wire.Checker(1 << 16).check_sample(_wire.encode_frames([env]), "t", att)
    assert m[6] == Origin(b"r" * 16, "box1")


@pytest.mark.parametrize("frames, count, why", [
    ([_frame({"x": 1})] * 2, 3, "2 frames where the attachment says 3"),
    ([_frame({"x": 1}), _frame({"x": 1}, sender="a@b")], 2, "not a local name"),
    ([_frame({"x": 1}), _frame({"x": 1}, topic="u")], 2, "on the key of"),
    ([_frame({"x": 1}), _frame([1])], 2, "not a map"),
    ([_frame({"x": 1}), _frame({"x": 1}, kind=3)], 2, "kind 3"),
    ([_frame({"x": 1}), msgspec.msgpack.encode((2, 0, "t", "gen", 1, 0, None, None, None,
                                                msgspec.Raw(b"\x80")))], 2, "wire version 2"),
])
def test_a_sample_with_one_bad_frame_is_malformed_and_says_why(frames, count, why):
    with pytest.raises(MalformedMessage, match=why):
        _wire.Checker(1 << 16).check_sample(_wire.pack(frames), "t", _att(count))


@pytest.mark.parametrize("data", [b"\x01", b"\x92\x01", b"\xdd\x40\x00\x00\x00abc",
                                  _wire.pack([_frame({"x": 1})])[:-1]])
def test_a_sample_that_is_not_an_array_of_frames_is_malformed(data):
    with pytest.raises(MalformedMessage):
        _wire.Checker(1 << 16).check_sample(data, "t", _att(1))


def test_attachments_are_typed():
    good = _wire.attachment(1, 0, "hostA", b"r" * 16, 5)
    assert _wire.read_attachment(good).host == "hostA"
    for bad in (None, b"\xc1", msgspec.msgpack.encode((2, 1, 0, "h", b"r" * 16, 5)),
                msgspec.msgpack.encode((1, 0, 0, "h", b"r" * 16, 5))):
        with pytest.raises(MalformedMessage):
            _wire.read_attachment(bad)
