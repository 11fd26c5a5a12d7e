"""The wire format (src/ether/_node/_codec.py), pinned: a recorder's files and a
bridged host depend on it. Field order and types, the version check, message
ids, lineage, origins, arrays, and malformed input."""
import msgspec
import numpy as np
import pytest

from ether import MalformedMessage
from ether._node import _codec as codec

RUN = bytes(range(16))
OTHER_RUN = bytes(range(16, 32))
ORIGIN = codec.Origin(RUN, "hostA")


def _fields(data: bytes) -> list:
    return msgspec.msgpack.decode(data, ext_hook=lambda code, raw: ("ext", code, bytes(raw)))


def test_the_envelope_field_order_and_types_are_pinned():
    encoder = codec.Encoder(ORIGIN)
    data = encoder.envelope(codec.MESSAGE, "sensors/t", "probe", 7, {"v": 1.5},
                            cause=("ctl", 3), trace=("main", 1))
    fields = _fields(data)
    assert len(fields) == 10
    version, kind, topic, sender, seq, time_ns, cause, trace, origin, payload = fields
    assert (version, kind, topic, sender, seq) == (1, 0, "sensors/t", "probe", 7)
    assert isinstance(time_ns, int) and time_ns > 1_700_000_000 * 10**9
    assert cause == ["ctl", 3] and trace == ["main", 1]
    assert origin == [RUN, "hostA"]
    assert payload == {"v": 1.5}
    assert codec.WIRE_VERSION == 1
    assert (codec.MESSAGE, codec.CONTROL, codec.REQUEST, codec.REPLY) == (0, 1, 2, 3)
    assert (codec.ARRAY_EXT, codec.ARENA_EXT) == (1, 2)


def test_holds_come_after_the_payload_and_are_optional():
    encoder = codec.Encoder(ORIGIN)
    data = encoder.envelope(codec.MESSAGE, "t", "s", 1, {}, holds=[(5, 2, 9)])
    assert _fields(data)[10] == [[5, 2, 9]]
    envelope = codec.decode(data)
    assert envelope.holds == ((5, 2, 9),)
    assert codec.decode(encoder.envelope(codec.MESSAGE, "t", "s", 1, {})).holds == ()


def test_decoding_keeps_origin_and_payload_unparsed_and_gives_ids():
    encoder = codec.Encoder(ORIGIN)
    envelope = codec.decode(encoder.envelope(codec.MESSAGE, "t", "probe", 4, {"a": [1, 2]},
                                             cause=("x", 2, OTHER_RUN)))
    assert isinstance(envelope.payload, msgspec.Raw)
    assert msgspec.msgpack.decode(envelope.payload) == {"a": [1, 2]}
    assert envelope.cause == codec.MessageId("x", 2, OTHER_RUN)
    assert envelope.trace is None and envelope.root == codec.MessageId("probe", 4)
    assert envelope.id == codec.MessageId("probe", 4)
    assert envelope.origin == codec.Origin(RUN, "hostA")


def test_a_local_message_names_no_origin_on_the_wire():
    data = codec.Encoder().envelope(codec.MESSAGE, "t", "s", 1, {})
    assert _fields(data)[8] is None
    local = codec.decode(data)
    assert local.origin is None
    assert codec.lineage(local, ORIGIN) == (("s", 1), ("s", 1))   # of the receiver's run


def test_a_reader_refuses_another_wire_version():
    data = msgspec.msgpack.encode((2, 0, "t", "s", 1, 0, None, None, [RUN, "h"], {}))
    with pytest.raises(MalformedMessage, match="wire version 2 from 's'; this Ether reads version 1"):
        codec.decode(data)


@pytest.mark.parametrize("data", [
    b"", b"\x00", b"\xc1", msgspec.msgpack.encode([1, 0, "t"]),
    msgspec.msgpack.encode([1, "zero", "t", "s", 1, 0, None, None, [RUN, "h"], {}]),
    msgspec.msgpack.encode([1, 0, "t", "s", 1, 0, "not an id", None, [RUN, "h"], {}]),
    b"\x91" * 5000,                                        # nested 5,000 deep
])
def test_malformed_envelopes_are_malformed_messages(data):
    with pytest.raises(MalformedMessage):
        codec.decode(data)


def test_a_deeply_nested_payload_is_a_malformed_message_not_a_recursion_error():
    encoder = codec.Encoder(ORIGIN)
    nested = msgspec.Raw(b"\x81\xa1a" + b"\x91" * 3000 + b"\xc0")
    data = encoder.envelope(codec.MESSAGE, "t", "s", 1, nested)
    with pytest.raises(MalformedMessage):  # at the envelope already: msgspec walks the Raw
        codec.Decoders(None).payload_dict(codec.decode(data))


def test_lineage_within_a_run_names_sender_and_seq_and_keeps_the_root():
    encoder = codec.Encoder(ORIGIN)
    root = codec.decode(encoder.envelope(codec.MESSAGE, "start", "main", 1, {}))
    assert codec.lineage(root, ORIGIN) == (("main", 1), ("main", 1))
    child = codec.decode(encoder.envelope(codec.MESSAGE, "raw", "src", 5, {},
                                          cause=("main", 1), trace=("main", 1)))
    assert codec.lineage(child, ORIGIN) == (("src", 5), ("main", 1))


def test_lineage_across_runs_names_the_other_run():
    remote = codec.Encoder(codec.Origin(OTHER_RUN, "hostB"))
    root = codec.decode(remote.envelope(codec.MESSAGE, "start", "main", 1, {}))
    assert codec.lineage(root, ORIGIN) == (("main", 1, OTHER_RUN), ("main", 1, OTHER_RUN))
    child = codec.decode(remote.envelope(codec.MESSAGE, "raw", "src", 5, {},
                                         cause=("main", 1), trace=("main", 1)))
    assert codec.lineage(child, ORIGIN) == (("src", 5, OTHER_RUN), ("main", 1, OTHER_RUN))


def test_inline_arrays_round_trip_read_only_and_refuse_object_dtypes():
    encoder = codec.Encoder(ORIGIN)
    array = np.arange(12, dtype=np.int16).reshape(3, 4)[:, ::2]   # not contiguous
    envelope = codec.decode(encoder.envelope(codec.MESSAGE, "t", "s", 1, {"a": array}))
    got = codec.Decoders(None).payload_dict(envelope)["a"]
    assert got.dtype == np.int16 and got.shape == (3, 2) and not got.flags.writeable
    assert np.array_equal(got, array)
    with pytest.raises(TypeError, match="dtype object"):
        encoder.envelope(codec.MESSAGE, "t", "s", 1, {"a": np.array([object()])})


def test_an_arena_handle_without_a_reader_is_malformed():
    from ether._core import _arena_handle
    handle = _arena_handle.encode(1, 2, 3, 0, np.zeros(4, np.float32))
    envelope = codec.decode(codec.Encoder(ORIGIN).envelope(codec.MESSAGE, "t", "s", 1, {"a": handle}))
    with pytest.raises(MalformedMessage, match="no arena reader"):
        codec.Decoders(None).payload_dict(envelope)


@pytest.mark.parametrize("handle", [
    msgspec.msgpack.encode([1, 2]),                                  # too short
    msgspec.msgpack.encode([1, 2, 3, -1, 16, "<f4", [4]]),           # passes to the reader
    msgspec.msgpack.encode(["x", 2, 3, 0, 16, "<f4", [4]]),          # wrong type
])
def test_forged_handles_reach_the_reader_only_when_well_formed(handle):
    calls = []

    def view(*args):
        calls.append(args)
        raise MalformedMessage("array handle out of bounds")

    ext = msgspec.msgpack.Ext(codec.ARENA_EXT, handle)
    envelope = codec.decode(codec.Encoder(ORIGIN).envelope(codec.MESSAGE, "t", "s", 1, {"a": ext}))
    with pytest.raises(MalformedMessage):
        codec.Decoders(view).payload_dict(envelope)
    assert len(calls) <= 1


def test_inline_arrays_replaces_handles_by_the_arrays_they_name():
    from ether._core import _arena_handle
    stored = np.arange(8, dtype=np.float32)
    handle = _arena_handle.encode(1, 2, 3, 0, stored)
    envelope = codec.decode(codec.Encoder(ORIGIN).envelope(
        codec.MESSAGE, "t", "s", 1, {"a": handle, "n": [1, {"b": handle}]}))
    payload = codec.inline_arrays(envelope, lambda *h: stored)
    decoded = msgspec.msgpack.decode(payload, ext_hook=codec.make_ext_hook(None))
    assert np.array_equal(decoded["a"], stored) and np.array_equal(decoded["n"][1]["b"], stored)
    assert decoded["n"][0] == 1


def test_requests_carry_id_reply_to_and_params():
    encoder = codec.Encoder(ORIGIN)
    envelope = codec.decode(encoder.envelope(codec.REQUEST, "service:X.m", "main", 1,
                                             (42, "main", {"p": 1})))
    request = codec.request_of(envelope)
    assert (request.id, request.reply_to) == (42, "main")
    assert msgspec.msgpack.decode(request.params) == {"p": 1}


def test_replay_of_is_an_optional_trailing_field_that_older_envelopes_lack():
    import msgspec
    from ether._node import _codec as codec
    fields = codec.envelope_fields(codec.MESSAGE, "t", "a", 3, 10, None, None,
                                   codec.Origin(b"r" * 16, "h"), msgspec.Raw(b"\x80"))
    plain = codec.decode(msgspec.msgpack.encode((*fields, [])))
    assert plain.replay_of is None and codec.decode(msgspec.msgpack.encode(fields)).replay_of is None
    marked = codec.decode(msgspec.msgpack.encode((*fields, [], ("b", 7, b"r" * 16))))
    assert marked.replay_of == codec.MessageId("b", 7, b"r" * 16)
    assert (marked.sender, marked.seq, bytes(marked.payload)) == ("a", 3, b"\x80")
