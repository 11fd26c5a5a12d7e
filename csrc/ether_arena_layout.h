/*
 * ether_arena_layout.h - the shared-memory layout of the array arena, with a
 * compile-time assertion on every offset and size. The protocol and the memory
 * order are in ether_arena.h. Included by ether_arena.c and, for the layout test
 * only, by the cffi module.
 *
 * Segment (little-endian, every field naturally aligned; offsets from its start):
 *
 *   +--------------------------------+ 0
 *   | header line                    |  identity and geometry (written once by the
 *   |                                |  owner, magic last), the wait words, summary
 *   +--------------------------------+ 64 = ETHER_ARENA_HOLDERS_AT
 *   | holder table                   |  holders[64]: the member token of each bit
 *   +--------------------------------+ 576 = ETHER_ARENA_RELEASED_AT
 *   | released bitset                |  released[64]: 4096 bits, one per block
 *   +--------------------------------+ 1088 = ETHER_ARENA_BLOCKS_AT
 *   | block table                    |  max_blocks x 32 B (max_blocks <= 4096)
 *   +--------------------------------+ data_offset = align_up(1088 + 32 * max_blocks, 4096)
 *   | data area                      |  the blocks' bytes, placed by the owner
 *   +--------------------------------+ size
 *
 * Header (ether_arena_header_t):
 *       0 u64 magic        ETHER_ARENA_MAGIC ("ETHERARN"); store-release last by
 *                          ether_arena_create, load-acquire first by every reader
 *       8 u32 version      ETHER_ARENA_VERSION        } written once by the owner
 *      12 u32 max_blocks                              } before the magic; read
 *      16 u64 size         segment bytes              } after it, validated
 *      24 u64 data_offset  start of the data area     } against the mapping
 *                          (page aligned)             }
 *      32 u64 owner        member token of the publishing process
 *      40 u32 freed        eventcount: bumped (seq_cst) by a holder whose release
 *                          freed a block; the owner's futex word while it waits
 *      44 u32 waiting      non-zero while the owner waits on `freed` (seq_cst)
 *      48 u64 summary      bit w: released[w] may have bits set (fetch_or by
 *                          holders, exchange by the owner)
 *      56 u64 reserved
 *      64 u64 holders[64]  member token of each holder bit (0: unused); the owner
 *                          store-releases it before any bitmap carries the bit
 *     576 u64 released[64] bit b of word w: block 64w+b was freed by a holder and
 *                          the owner has not taken it back yet (fetch_or by that
 *                          holder, exchange by the owner)
 *
 * Block entry (ether_arena_block_t) of block b, at 1088 + 32 * b:
 *       0 u64 bitmap       processes that may hold views: store-release by the
 *                          owner before a handle is sent, cleared bit by bit
 *                          (fetch_and) by each holder when its last view dies,
 *                          or by the owner for a dead holder or a missed
 *                          receiver. Zero: the block is free.
 *       8 u64 offset       in the data area        } relaxed stores by the owner
 *      16 u64 length                               } before the bitmap; holders
 *      24 u64 generation   bumped at each allocation } check a handle against them
 */
#ifndef ETHER_ARENA_LAYOUT_H
#define ETHER_ARENA_LAYOUT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "ether_arena.h"

/* Words of the released bitset: one bit per block. */
#define ETHER_ARENA_RELEASED_WORDS (ETHER_ARENA_MAX_BLOCKS / 64u)

typedef struct {
    _Atomic uint64_t bitmap;
    _Atomic uint64_t offset;
    _Atomic uint64_t length;
    _Atomic uint64_t generation;
} ether_arena_block_t;

typedef struct {
    _Atomic uint64_t magic;
    uint32_t version;
    uint32_t max_blocks;
    uint64_t size;
    uint64_t data_offset;
    uint64_t owner;
    _Atomic uint32_t freed;
    _Atomic uint32_t waiting;
    _Atomic uint64_t summary;
    uint64_t reserved;
    _Atomic uint64_t holders[ETHER_ARENA_HOLDERS];
    _Atomic uint64_t released[ETHER_ARENA_RELEASED_WORDS];
    ether_arena_block_t blocks[]; /* max_blocks entries */
} ether_arena_header_t;

_Static_assert(offsetof(ether_arena_header_t, magic) == 0, "magic at 0");
_Static_assert(offsetof(ether_arena_header_t, version) == 8, "version at 8");
_Static_assert(offsetof(ether_arena_header_t, max_blocks) == 12, "max_blocks at 12");
_Static_assert(offsetof(ether_arena_header_t, size) == 16, "size at 16");
_Static_assert(offsetof(ether_arena_header_t, data_offset) == 24, "data_offset at 24");
_Static_assert(offsetof(ether_arena_header_t, owner) == 32, "owner at 32");
_Static_assert(offsetof(ether_arena_header_t, freed) == 40 &&
               offsetof(ether_arena_header_t, freed) == ETHER_ARENA_FREED_AT, "freed at 40");
_Static_assert(offsetof(ether_arena_header_t, waiting) == 44 &&
               offsetof(ether_arena_header_t, waiting) == ETHER_ARENA_WAITING_AT, "waiting at 44");
_Static_assert(offsetof(ether_arena_header_t, summary) == 48 &&
               offsetof(ether_arena_header_t, summary) == ETHER_ARENA_SUMMARY_AT, "summary at 48");
_Static_assert(offsetof(ether_arena_header_t, reserved) == 56, "reserved at 56");
_Static_assert(offsetof(ether_arena_header_t, holders) == 64 &&
               offsetof(ether_arena_header_t, holders) == ETHER_ARENA_HOLDERS_AT, "holders at 64");
_Static_assert(offsetof(ether_arena_header_t, released) == 576 &&
               offsetof(ether_arena_header_t, released) == ETHER_ARENA_RELEASED_AT, "released at 576");
_Static_assert(offsetof(ether_arena_header_t, blocks) == 1088 &&
               offsetof(ether_arena_header_t, blocks) == ETHER_ARENA_BLOCKS_AT, "blocks at 1088");
_Static_assert(sizeof(ether_arena_header_t) == ETHER_ARENA_BLOCKS_AT, "the header ends where the table starts");
_Static_assert(ETHER_ARENA_HOLDERS == 64, "one holder bit per bit of a u64 bitmap");
_Static_assert(ETHER_ARENA_RELEASED_WORDS <= 64, "the summary has one bit per released word");
_Static_assert(sizeof(ether_arena_block_t) == ETHER_ARENA_BLOCK_BYTES, "a block entry is 32 B");
_Static_assert(offsetof(ether_arena_block_t, bitmap) == 0, "bitmap at 0");
_Static_assert(offsetof(ether_arena_block_t, offset) == 8, "offset at 8");
_Static_assert(offsetof(ether_arena_block_t, length) == 16, "length at 16");
_Static_assert(offsetof(ether_arena_block_t, generation) == 24, "generation at 24");
_Static_assert(sizeof(_Atomic uint64_t) == 8 && sizeof(_Atomic uint32_t) == 4, "plain-sized atomics");

#endif /* ETHER_ARENA_LAYOUT_H */
