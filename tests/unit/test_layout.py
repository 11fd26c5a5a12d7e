"""The documented shared-memory layouts (csrc/ether_ring.h, csrc/ether_arena_layout.h)
are what the compiler lays out."""
import pathlib
import re

from ether._core import _arena_c, _ring

CSRC = pathlib.Path(__file__).resolve().parents[2] / "csrc"
HEADER = CSRC / "ether_ring.h"
ARENA_HEADER = CSRC / "ether_arena_layout.h"

# (struct, field, documented offset, documented type) - as written in ether_ring.h
DOCUMENTED = [
    ("ether_ring_descriptor_t", "magic", 0, "u64"),
    ("ether_ring_descriptor_t", "layout_version", 8, "u32"),
    ("ether_ring_descriptor_t", "data_offset", 12, "u32"),
    ("ether_ring_descriptor_t", "capacity", 16, "u64"),
    ("ether_ring_descriptor_t", "segment_size", 24, "u64"),
    ("ether_ring_descriptor_t", "max_length", 32, "u32"),
    ("ether_ring_descriptor_t", "max_producers", 36, "u32"),
    ("ether_ring_descriptor_t", "commit_key", 40, "u64"),
    ("ether_ring_descriptor_t", "owner_token", 48, "u64"),
    ("ether_ring_header_t", "head", 64, "u64"),
    ("ether_ring_header_t", "consumer_waiting", 72, "u32"),
    ("ether_ring_header_t", "closed", 76, "u32"),
    ("ether_ring_header_t", "received", 80, "u64"),
    ("ether_ring_header_t", "received_bytes", 88, "u64"),
    ("ether_ring_header_t", "skipped_claims", 96, "u64"),
    ("ether_ring_header_t", "skipped_bytes", 104, "u64"),
    ("ether_ring_header_t", "released", 112, "u64"),
    ("ether_ring_header_t", "hole_count", 120, "u32"),
    ("ether_ring_header_t", "tail", 128, "u64"),
    ("ether_ring_header_t", "head_cache", 192, "u64"),
    ("ether_ring_header_t", "cover_at", 200, "u64"),
    ("ether_ring_header_t", "cover_wanted", 208, "u64"),
    ("ether_ring_header_t", "data_futex", 256, "u32"),
    ("ether_ring_header_t", "space_futex", 260, "u32"),
    ("ether_ring_header_t", "space_waiters", 264, "u32"),
    ("ether_ring_header_t", "retired_sent", 320, "u64"),
    ("ether_ring_header_t", "retired_sent_bytes", 328, "u64"),
    ("ether_ring_header_t", "retired_dropped", 336, "u64"),
    ("ether_ring_header_t", "retired_blocked", 344, "u64"),
    ("ether_ring_slot_t", "token", 0, "u64"),
    ("ether_ring_slot_t", "intent_start", 8, "u64"),
    ("ether_ring_slot_t", "intent_end", 16, "u64"),
    ("ether_ring_slot_t", "next_seq", 24, "u64"),
    ("ether_ring_slot_t", "sent", 32, "u64"),
    ("ether_ring_slot_t", "sent_bytes", 40, "u64"),
    ("ether_ring_slot_t", "dropped", 48, "u64"),
    ("ether_ring_slot_t", "blocked", 56, "u64"),
    ("ether_ring_slot_t", "skip", 64, "u64"),
    ("ether_ring_slot_t", "pid", 72, "u32"),
    ("ether_ring_hole_t", "start", 0, "u64"),
    ("ether_ring_hole_t", "end", 8, "u64"),
    ("ether_ring_hole_t", "next", 16, "u64"),
    ("ether_ring_hole_t", "intent", 24, "u64"),
    ("ether_ring_hole_t", "token", 32, "u64"),
    ("ether_ring_hole_t", "cover_start", 40, "u64"),
    ("ether_ring_hole_t", "cover_end", 48, "u64"),
    ("ether_ring_hole_t", "slot", 56, "u32"),
    ("ether_ring_hole_t", "state", 60, "u32"),
    ("ether_ring_record_header_t", "commit", 0, "u64"),
    ("ether_ring_record_header_t", "length", 8, "u32"),
    ("ether_ring_record_header_t", "type", 12, "u16"),
    ("ether_ring_record_header_t", "producer", 14, "u16"),
    ("ether_ring_record_header_t", "seq", 16, "u64"),
]


def test_compiler_offsets_match_the_documented_layout():
    actual = _ring.layout_offsets()
    for struct, field, offset, _ in DOCUMENTED:
        assert actual[f"{struct}.{field}"] == offset, f"{struct}.{field}"


def test_struct_sizes_match_the_documented_layout():
    actual = _ring.layout_offsets()
    assert actual["ether_ring_descriptor_t.sizeof"] == 64
    assert actual["ether_ring_slot_t.sizeof"] == _ring.SLOT_LENGTH == 128  # two lines
    assert actual["ether_ring_record_header_t.sizeof"] == _ring.RECORD_HEADER_LENGTH == 32
    assert actual["ether_ring_header_t.sizeof"] <= _ring.SLOTS_OFFSET
    assert actual["ether_ring_hole_t.sizeof"] == _ring.HOLE_LENGTH == 64
    assert actual["ether_ring_header_t.holes"] == _ring.HOLES_OFFSET == 384
    assert _ring.HOLES_OFFSET + _ring.MAX_HOLES * _ring.HOLE_LENGTH <= _ring.SLOTS_OFFSET


def test_header_documents_every_field_at_its_offset():
    text = HEADER.read_text()
    for struct, field, offset, kind in DOCUMENTED:
        doc_name = field.replace("retired_", "") if struct == "ether_ring_header_t" else field
        pattern = rf"\b{offset} {kind} {doc_name}\b"
        assert re.search(pattern, text), f"ether_ring.h does not document '{offset} {kind} {doc_name}'"


# (struct, field, documented offset, documented type) - as written in ether_arena_layout.h
ARENA_DOCUMENTED = [
    ("ether_arena_header_t", "magic", 0, "u64"),
    ("ether_arena_header_t", "version", 8, "u32"),
    ("ether_arena_header_t", "max_blocks", 12, "u32"),
    ("ether_arena_header_t", "size", 16, "u64"),
    ("ether_arena_header_t", "data_offset", 24, "u64"),
    ("ether_arena_header_t", "owner", 32, "u64"),
    ("ether_arena_header_t", "freed", 40, "u32"),
    ("ether_arena_header_t", "waiting", 44, "u32"),
    ("ether_arena_header_t", "summary", 48, "u64"),
    ("ether_arena_header_t", "reserved", 56, "u64"),
    ("ether_arena_header_t", "holders", 64, "u64"),
    ("ether_arena_header_t", "released", 576, "u64"),
    ("ether_arena_block_t", "bitmap", 0, "u64"),
    ("ether_arena_block_t", "offset", 8, "u64"),
    ("ether_arena_block_t", "length", 16, "u64"),
    ("ether_arena_block_t", "generation", 24, "u64"),
]


def test_arena_compiler_offsets_match_the_documented_layout():
    actual = _arena_c.layout_offsets()
    for struct, field, offset, _ in ARENA_DOCUMENTED:
        assert actual[f"{struct}.{field}"] == offset, f"{struct}.{field}"


def test_arena_struct_sizes_match_the_documented_layout():
    actual = _arena_c.layout_offsets()
    # The block table follows the header (holders[64] and released[64] end at 1088).
    assert actual["ether_arena_header_t.blocks"] == actual["ether_arena_header_t.sizeof"] == 1088
    assert _arena_c.BLOCKS_OFFSET == 1088
    assert actual["ether_arena_block_t.sizeof"] == 32
    assert actual["ether_arena_header_t.released"] - actual["ether_arena_header_t.holders"] == 8 * _arena_c.HOLDERS
    assert 1088 - actual["ether_arena_header_t.released"] == _arena_c.MAX_BLOCKS // 8  # one bit per block


def test_arena_header_documents_every_field_at_its_offset():
    text = ARENA_HEADER.read_text()
    for struct, field, offset, kind in ARENA_DOCUMENTED:
        pattern = rf"\b{offset} {kind} {field}\b"
        assert re.search(pattern, text), f"ether_arena_layout.h does not document '{offset} {kind} {field}'"
