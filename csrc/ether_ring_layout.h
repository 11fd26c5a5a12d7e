/*
 * ether_ring_layout.h - the shared-memory structs of the ring, as documented in
 * ether_ring.h, with a compile-time assertion on every documented offset.
 * Included by ether_ring.c and, for the layout test only, by the cffi module.
 */
#ifndef ETHER_RING_LAYOUT_H
#define ETHER_RING_LAYOUT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "ether_ring.h"

typedef struct {
    _Atomic uint64_t magic;   /* the publication word: release-stored last by init */
    uint32_t layout_version;
    uint32_t data_offset;
    uint64_t capacity;
    uint64_t segment_size;
    uint32_t max_length;
    uint32_t max_producers;
    uint64_t commit_key;
    uint64_t owner_token;
    uint64_t reserved;
} ether_ring_descriptor_t;

/* One entry of the hole table: the space of a claim the consumer skipped while its
 * producer lived, protected from reuse until that producer lets go of it. Written
 * and read only by the consumer (relaxed), except that an inspector may read it. */
typedef struct {
    _Atomic uint64_t start;        /* first protected position (the skipped part of the claim) */
    _Atomic uint64_t end;          /* one past the last */
    _Atomic uint64_t next;         /* start + k * capacity: the next instance still to cover */
    _Atomic uint64_t intent;       /* the owner's intent_start when skipped: a change ends it */
    _Atomic uint64_t token;        /* the owner's slot token then: a change ends it too */
    _Atomic uint64_t cover_start;  /* the consumer's pending cover claim [cover_start, */
    _Atomic uint64_t cover_end;    /*   cover_end), not yet passed by head; 0 = none */
    _Atomic uint32_t slot;         /* the owner's producer slot */
    _Atomic uint32_t state;        /* ETHER_RING_HOLE_FREE / _PROTECTING / _DRAINING */
} ether_ring_hole_t;

typedef struct {
    alignas(64) ether_ring_descriptor_t descriptor;
    alignas(64) _Atomic uint64_t head;
    _Atomic uint32_t consumer_waiting;
    _Atomic uint32_t closed;
    _Atomic uint64_t received;
    _Atomic uint64_t received_bytes;
    _Atomic uint64_t skipped_claims;
    _Atomic uint64_t skipped_bytes;
    _Atomic uint64_t released;
    _Atomic uint32_t hole_count;
    uint32_t consumer_reserved;
    alignas(64) _Atomic uint64_t tail;
    alignas(64) _Atomic uint64_t head_cache;
    _Atomic uint64_t cover_at;
    _Atomic uint64_t cover_wanted;
    alignas(64) _Atomic uint32_t data_futex;
    _Atomic uint32_t space_futex;
    _Atomic uint32_t space_waiters;
    alignas(64) _Atomic uint64_t retired_sent;
    _Atomic uint64_t retired_sent_bytes;
    _Atomic uint64_t retired_dropped;
    _Atomic uint64_t retired_blocked;
    alignas(64) ether_ring_hole_t holes[ETHER_RING_MAX_HOLES];
} ether_ring_header_t;

typedef struct {
    _Atomic uint64_t token;
    _Atomic uint64_t intent_start;
    _Atomic uint64_t intent_end;
    _Atomic uint64_t next_seq;
    _Atomic uint64_t sent;
    _Atomic uint64_t sent_bytes;
    _Atomic uint64_t dropped;
    _Atomic uint64_t blocked;
    alignas(64) _Atomic uint64_t skip;   /* the consumer's line: its skip proposal and verdict */
    _Atomic uint32_t pid;                /* the owner's process id, for messages */
    uint32_t pid_reserved;
    uint64_t skip_reserved[6];
} ether_ring_slot_t;

typedef struct {
    _Atomic uint64_t commit;
    uint32_t length;
    uint16_t type;
    uint16_t producer;
    uint64_t seq;
    uint64_t reserved;
} ether_ring_record_header_t;

_Static_assert(sizeof(ether_ring_descriptor_t) == 64, "descriptor is one line");
_Static_assert(offsetof(ether_ring_header_t, descriptor) == 0, "descriptor at 0");
_Static_assert(offsetof(ether_ring_header_t, descriptor.magic) == 0, "magic at 0");
_Static_assert(offsetof(ether_ring_header_t, descriptor.layout_version) == 8, "layout_version at 8");
_Static_assert(offsetof(ether_ring_header_t, descriptor.data_offset) == 12, "data_offset at 12");
_Static_assert(offsetof(ether_ring_header_t, descriptor.capacity) == 16, "capacity at 16");
_Static_assert(offsetof(ether_ring_header_t, descriptor.segment_size) == 24, "segment_size at 24");
_Static_assert(offsetof(ether_ring_header_t, descriptor.max_length) == 32, "max_length at 32");
_Static_assert(offsetof(ether_ring_header_t, descriptor.max_producers) == 36, "max_producers at 36");
_Static_assert(offsetof(ether_ring_header_t, descriptor.commit_key) == 40, "commit_key at 40");
_Static_assert(offsetof(ether_ring_header_t, descriptor.owner_token) == 48, "owner_token at 48");
_Static_assert(offsetof(ether_ring_header_t, descriptor.reserved) == 56, "reserved at 56");
_Static_assert(offsetof(ether_ring_header_t, head) == 64, "head at 64");
_Static_assert(offsetof(ether_ring_header_t, consumer_waiting) == 72, "consumer_waiting at 72");
_Static_assert(offsetof(ether_ring_header_t, closed) == 76, "closed at 76");
_Static_assert(offsetof(ether_ring_header_t, received) == 80, "received at 80");
_Static_assert(offsetof(ether_ring_header_t, received_bytes) == 88, "received_bytes at 88");
_Static_assert(offsetof(ether_ring_header_t, skipped_claims) == 96, "skipped_claims at 96");
_Static_assert(offsetof(ether_ring_header_t, skipped_bytes) == 104, "skipped_bytes at 104");
_Static_assert(offsetof(ether_ring_header_t, released) == 112, "released at 112");
_Static_assert(offsetof(ether_ring_header_t, hole_count) == 120, "hole_count at 120");
_Static_assert(offsetof(ether_ring_header_t, tail) == 128, "tail at 128");
_Static_assert(offsetof(ether_ring_header_t, head_cache) == 192, "head_cache at 192");
_Static_assert(offsetof(ether_ring_header_t, cover_at) == 200, "cover_at at 200");
_Static_assert(offsetof(ether_ring_header_t, cover_wanted) == 208, "cover_wanted at 208");
_Static_assert(offsetof(ether_ring_header_t, data_futex) == 256, "data_futex at 256");
_Static_assert(offsetof(ether_ring_header_t, space_futex) == 260, "space_futex at 260");
_Static_assert(offsetof(ether_ring_header_t, space_waiters) == 264, "space_waiters at 264");
_Static_assert(offsetof(ether_ring_header_t, retired_sent) == 320, "retired_sent at 320");
_Static_assert(offsetof(ether_ring_header_t, retired_sent_bytes) == 328, "retired_sent_bytes at 328");
_Static_assert(offsetof(ether_ring_header_t, retired_dropped) == 336, "retired_dropped at 336");
_Static_assert(offsetof(ether_ring_header_t, retired_blocked) == 344, "retired_blocked at 344");
_Static_assert(offsetof(ether_ring_header_t, holes) == ETHER_RING_HOLES_OFFSET, "holes at 384");
_Static_assert(sizeof(ether_ring_hole_t) == ETHER_RING_HOLE_LENGTH, "a hole entry is one line");
_Static_assert(offsetof(ether_ring_hole_t, start) == 0, "hole start at 0");
_Static_assert(offsetof(ether_ring_hole_t, end) == 8, "hole end at 8");
_Static_assert(offsetof(ether_ring_hole_t, next) == 16, "hole next at 16");
_Static_assert(offsetof(ether_ring_hole_t, intent) == 24, "hole intent at 24");
_Static_assert(offsetof(ether_ring_hole_t, token) == 32, "hole token at 32");
_Static_assert(offsetof(ether_ring_hole_t, cover_start) == 40, "hole cover_start at 40");
_Static_assert(offsetof(ether_ring_hole_t, cover_end) == 48, "hole cover_end at 48");
_Static_assert(offsetof(ether_ring_hole_t, slot) == 56, "hole slot at 56");
_Static_assert(offsetof(ether_ring_hole_t, state) == 60, "hole state at 60");
_Static_assert(sizeof(ether_ring_header_t) <= ETHER_RING_SLOTS_OFFSET, "header fits before slots");
_Static_assert(sizeof(ether_ring_slot_t) == ETHER_RING_SLOT_LENGTH, "slot is one line");
_Static_assert(offsetof(ether_ring_slot_t, token) == 0, "slot token at 0");
_Static_assert(offsetof(ether_ring_slot_t, intent_start) == 8, "slot intent_start at 8");
_Static_assert(offsetof(ether_ring_slot_t, intent_end) == 16, "slot intent_end at 16");
_Static_assert(offsetof(ether_ring_slot_t, next_seq) == 24, "slot next_seq at 24");
_Static_assert(offsetof(ether_ring_slot_t, sent) == 32, "slot sent at 32");
_Static_assert(offsetof(ether_ring_slot_t, sent_bytes) == 40, "slot sent_bytes at 40");
_Static_assert(offsetof(ether_ring_slot_t, dropped) == 48, "slot dropped at 48");
_Static_assert(offsetof(ether_ring_slot_t, blocked) == 56, "slot blocked at 56");
_Static_assert(offsetof(ether_ring_slot_t, skip) == 64, "slot skip at 64: the second line");
_Static_assert(offsetof(ether_ring_slot_t, pid) == 72, "slot pid at 72");
_Static_assert(sizeof(ether_ring_record_header_t) == ETHER_RING_HEADER_LENGTH, "record header is 32 B");
_Static_assert(offsetof(ether_ring_record_header_t, commit) == 0, "record commit at 0");
_Static_assert(offsetof(ether_ring_record_header_t, length) == 8, "record length at 8");
_Static_assert(offsetof(ether_ring_record_header_t, type) == 12, "record type at 12");
_Static_assert(offsetof(ether_ring_record_header_t, producer) == 14, "record producer at 14");
_Static_assert(offsetof(ether_ring_record_header_t, seq) == 16, "record seq at 16");
_Static_assert(offsetof(ether_ring_record_header_t, reserved) == 24, "record reserved at 24");
_Static_assert(sizeof(_Atomic uint64_t) == 8 && sizeof(_Atomic uint32_t) == 4, "plain-sized atomics");

#endif /* ETHER_RING_LAYOUT_H */
