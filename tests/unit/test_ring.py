"""Specs of the inbox ring in a single process: order, wrap, padding, full, empty,
largest record, policies and counters."""
import pytest

import ether
from ether._core import _ring, _sender

from workers import check_payload, make_payload


@pytest.fixture
def small(session):
    """A 4 KiB inbox and a sender to it."""
    inbox = session.create_inbox("small", capacity=4096, max_length=1024)
    tx = session.connect("small", timeout=0.2)
    yield inbox, tx
    tx.close()
    inbox.close()


def test_receives_records_in_exact_order(small):
    inbox, tx = small
    sent = [bytes([i]) * (i % 50) for i in range(30)]
    for m in sent:
        assert tx.send(m) is True
    assert inbox.receive_many(100, timeout=1) == sent


def test_read_batch_caps_every_read_and_a_bad_value_names_the_inbox(small):
    inbox, tx = small
    assert inbox.read_batch == 4096
    inbox.read_batch = 7
    sent = [bytes([i]) for i in range(30)]
    assert tx.send_many(sent) == 30
    got = [inbox.receive_many(100, timeout=1), inbox.drain(), [inbox.receive(timeout=1)]]
    assert [len(g) for g in got] == [7, 7, 1]
    assert inbox.statistics().received == 21        # the rest is still in the ring
    rest = inbox.drain(100) + inbox.drain(100) + inbox.drain(100)
    assert sum(got, []) + rest == sent
    for bad in (0, 4097, 2.0, True, None):
        with pytest.raises(ether.ConfigError, match="inbox 'small'.*read_batch"):
            inbox.read_batch = bad
    assert inbox.read_batch == 7


def test_empty_inbox_would_block_and_times_out(small):
    inbox, _ = small
    with pytest.raises(ether.WouldBlock):
        inbox.receive_nowait()
    assert inbox.drain() == []
    with pytest.raises(ether.Timeout, match="no message arrived in inbox 'small'"):
        inbox.receive(timeout=0.01)
    with pytest.raises(ether.Timeout):
        inbox.wait_readable(timeout=0)


def test_zero_length_record(small):
    inbox, tx = small
    tx.send(b"")
    tx.send(b"x")
    assert inbox.receive_many(timeout=1) == [b"", b"x"]


def test_wraps_with_padding_and_keeps_order_over_many_laps(small):
    inbox, tx = small
    expected = []
    for seq in range(5000):  # 4 KiB ring: hundreds of laps with padding at each wrap
        p = make_payload(1, seq)
        tx.send(p)
        expected.append(p)
        if seq % 7 == 6:
            got = inbox.drain()
            assert got == expected[: len(got)]
            del expected[: len(got)]
    assert inbox.drain() == expected
    st = inbox.statistics()
    assert st.received == st.sent == 5000
    assert st.used == 0


def test_never_straddles_the_wrap(session):
    inbox = session.create_inbox("w", capacity=4096, max_length=2000)
    tx = session.connect("w", timeout=0.2)
    big = bytes(range(256)) * 7  # 1792 bytes: two fit, the third pads at the wrap
    for _ in range(20):
        tx.send(big)
        tx.send(big)
        assert inbox.receive_many(timeout=1) == [big, big]
    assert inbox.statistics().received == 40


def test_largest_record_fits_and_one_more_byte_is_refused(small):
    inbox, tx = small
    largest = b"L" * 1024
    assert tx.send(largest)
    assert inbox.receive(timeout=1) == largest
    with pytest.raises(ether.MessageTooLarge, match="1025-byte message is larger than the inbox's max_length"):
        tx.send(b"L" * 1025)
    tx.send(b"after")
    assert inbox.receive(timeout=1) == b"after"


def test_rejects_write_when_full_under_drop_policy_and_counts_it(small):
    inbox, tx = small
    accepted = 0
    while tx.send(b"x" * 100, policy="drop"):
        accepted += 1
    assert accepted == 4096 // _ring.record_length(100)
    st = tx.statistics()
    assert st.dropped >= 1
    assert inbox.statistics().dropped == st.dropped
    got = inbox.drain()
    assert len(got) == st.sent


def test_block_policy_times_out_with_a_clear_error(small):
    inbox, tx = small
    while tx.send(b"x" * 100, policy="drop"):
        pass
    with pytest.raises(ether.InboxFull, match=r"inbox 'small' of session '\w+' stayed full for 0.05 s") as info:
        tx.send(b"y" * 100, timeout=0.05)
    assert info.value.sent == 0
    assert tx.statistics().blocked >= 1
    inbox.drain()
    assert tx.send(b"y" * 100)


def test_a_long_block_wait_is_one_blocked_send_however_many_liveness_slices_it_takes(small):
    # A block wait is cut into slices (checking the consumer's liveness between
    # them); each send, claim or batch that waited still counts once.
    inbox, tx = small
    while tx.send(b"x" * 100, policy="drop"):
        pass
    timeout = 3 * _sender.LIVENESS_CHECK_S - 0.05  # three slices
    for attempt in (lambda: tx.send(b"y" * 100, timeout=timeout),
                    lambda: tx.send_many([b"y" * 100] * 2, timeout=timeout),
                    lambda: tx.claim(100, timeout=timeout)):
        with pytest.raises(ether.InboxFull, match="stayed full for 0.7 s"):
            attempt()
    assert tx.statistics().blocked == 3
    inbox.drain()
    assert tx.send(b"y" * 100)


def test_send_many_batches_in_order_and_reports_partial_drops(small):
    inbox, tx = small
    batch = [make_payload(2, i) for i in range(100)]
    n = tx.send_many(batch, policy="drop")
    assert 0 < n < 100
    got = inbox.drain(1000)
    assert got == batch[:n]
    assert tx.statistics().dropped == 100 - n
    assert tx.send_many(batch[n:n + 5]) == 5
    assert inbox.receive_many(timeout=1) == batch[n:n + 5]


def test_send_accepts_any_buffer(small):
    inbox, tx = small
    tx.send(bytearray(b"abc"))
    tx.send(memoryview(b"xdefx")[1:4])
    tx.send_many([bytearray(b"1"), memoryview(b"22")])
    assert inbox.receive_many(timeout=1) == [b"abc", b"def", b"1", b"22"]


def test_bad_arguments_are_named(small, session):
    _, tx = small
    with pytest.raises(TypeError, match="bytes or a buffer, not str"):
        tx.send("text")
    with pytest.raises(ether.ConfigError, match="policy must be one of"):
        tx.send(b"x", policy="maybe")
    with pytest.raises(ether.ConfigError, match="capacity 1000 must be a power of two"):
        session.create_inbox("bad", capacity=1000)
    with pytest.raises(ether.ConfigError, match="max_length 4096 needs a capacity of at least"):
        session.create_inbox("bad", capacity=4096, max_length=4096)
    with pytest.raises(ether.InboxNotFound, match="no inbox named 'nope'"):
        session.connect("nope")
    with pytest.raises(ether.InboxExists):
        session.create_inbox("small")


def test_loaned_record_is_written_in_place(small):
    inbox, tx = small
    with tx.claim(5) as buf:
        buf[:] = b"hello"
    assert inbox.receive(timeout=1) == b"hello"


def test_closed_inbox_refuses_sends(session):
    inbox = session.create_inbox("c", capacity=4096, max_length=256)
    tx = session.connect("c")
    tx.send(b"before")
    assert inbox.receive(timeout=1) == b"before"
    inbox.close()
    with pytest.raises(ether.InboxClosed, match="closed by its consumer"):
        tx.send(b"after")
    tx.close()
    with pytest.raises(ether.InboxClosed):
        tx.send(b"after close")
    with pytest.raises(ether.InboxNotFound):
        session.connect("c")


def test_statistics_are_frozen_snapshots(small):
    inbox, tx = small
    tx.send(b"abc")
    st = inbox.statistics()
    assert (st.sent, st.received, st.producers, st.capacity) == (1, 0, 1, 4096)
    with pytest.raises(AttributeError):
        st.sent = 5
    inbox.receive(timeout=1)
    assert inbox.statistics().received_bytes == 3


def test_stress_payloads_detect_tearing():
    p = bytearray(make_payload(3, 77))
    assert len(p) > 16 and check_payload(bytes(p)) == (3, 77)
    p[-1] ^= 0xFF
    with pytest.raises(AssertionError, match="CRC mismatch"):
        check_payload(bytes(p))


def test_a_loan_given_back_is_never_delivered(small):
    inbox, tx = small
    with pytest.raises(RuntimeError):
        with tx.claim(8) as buf:
            buf[:4] = b"half"
            raise RuntimeError("the writer failed")
    loan = tx.claim(8)
    del loan  # dropped without commit: aborted
    tx.send(b"next")
    assert inbox.receive_many(timeout=1) == [b"next"]


def test_only_one_loan_at_a_time(small):
    _, tx = small
    loan = tx.claim(8)
    with pytest.raises(ether.EtherError, match="loan outstanding"):
        tx.claim(8)
    loan.commit()


def test_batches_keep_every_length_exact_across_framing_boundaries(session):
    # The drain frames each payload with its length as a big-endian u32: check
    # lengths on both sides of its byte boundaries, and the largest.
    inbox = session.create_inbox("edges", capacity=1 << 18, max_length=70_000)
    tx = session.connect("edges")
    sizes = [0, 1, 254, 255, 256, 257, 65, 4095, 65535, 65536, 70_000, 0]
    sent = [bytes((i * 7 + n) & 0xFF for i in range(n)) for n in sizes]
    assert tx.send_many(sent) == len(sent)
    assert inbox.receive_many(100, timeout=1) == sent
    for m in sent:
        tx.send(m)
        assert inbox.receive(timeout=1) == m


def test_payloads_that_look_like_framing_or_pickles_arrive_as_plain_bytes(small):
    # Another process writes the payloads; the consumer decodes only the framing
    # that C wrote around them (MessagePack, lengths from checked headers) and
    # never unpickles anything.
    inbox, tx = small
    hostile = [
        b"cos\nsystem\n(S'echo pwned'\ntR.",          # a protocol-0 pickle calling os.system
        b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00]\x94.",  # a protocol-4 pickle
        b"\xdd\x00\x00\x00\x02\xc6\x00\x00\x00\x01x",  # a MessagePack array header
        b"\xc6\xff\xff\xff\xff",                          # a bin32 claiming 4 GiB
        b"\xdd",
    ]
    assert tx.send_many(hostile) == len(hostile)
    assert inbox.receive_many(timeout=1) == hostile
    assert not hasattr(_ring, "pickle")


def test_every_read_of_a_closed_inbox_says_it_is_closed(session):
    inbox = session.create_inbox("gone", capacity=4096, max_length=256)
    inbox.close()
    for read in (lambda: inbox.receive_many(timeout=0.1), lambda: inbox.receive(timeout=0.1),
                 lambda: inbox.drain(), lambda: inbox.wait_readable(0.1),
                 lambda: inbox.receive_nowait()):
        with pytest.raises(ether.InboxClosed, match="is closed"):
            read()
