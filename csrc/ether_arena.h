/*
 * ether_arena.h - the array arena: shared-memory blocks in which large arrays
 * travel by handle (one arena per publishing process; see docs/design/arena.md).
 *
 * Segment layout (little-endian, every field naturally aligned):
 *
 *       0 u64 magic        "ETHERARN"
 *       8 u32 version      ETHER_ARENA_VERSION
 *      12 u32 max_blocks
 *      16 u64 size         segment bytes
 *      24 u64 data_offset  start of the data area (page aligned)
 *      32 u64 owner        member token of the publishing process
 *      40 u32 freed        eventcount: bumped by a holder whose release freed a
 *                          block (the owner's futex word while it waits for room)
 *      44 u32 waiting      non-zero while the owner sleeps on `freed`
 *      48 u64 summary      bit w: released[w] may have bits set (atomic)
 *      56 .. 63 reserved
 *      64 u64 holders[64]  member token of each holder bit (0: unused); owner writes
 *     576 u64 released[64] bit b: block b was freed by a holder and the owner has
 *                          not taken it back yet (set by that holder, atomic)
 *    1088 block[max_blocks], 32 B each (max_blocks <= 4096):
 *           0 u64 bitmap      processes that may hold views (atomic): set by the
 *                             owner before a handle is sent, cleared bit by bit by
 *                             each holder when its last view dies, or by the owner
 *                             for a dead holder or a receiver a message missed.
 *                             Zero: the block is free.
 *           8 u64 offset      in the data area      (owner writes; holders check
 *          16 u64 length                            that a view lies inside it)
 *          24 u64 generation  bumped by the owner at each allocation of the block
 *
 * Writers and readers
 *   Only the owner allocates. Its allocator state (which blocks are live, where)
 *   is private to it (ether_arena_t), so a reader can never corrupt it; readers
 *   only clear their own bit. A reader trusts nothing it reads from the segment:
 *   every handle's block, offset and length are bounds-checked against the
 *   header and the block's own extent (ether_arena_check) before a view is made.
 *
 * Freeing is announced, never searched for
 *   Exactly one atomic RMW takes a bitmap to zero. If a holder's release does,
 *   the holder sets the block's bit in `released` (then the summary bit); if the
 *   owner's own clearing does (a dead holder, a receiver a message missed), the
 *   owner takes the block back at once. The owner drains `released` before each
 *   allocation, so it never scans the block table: an allocation costs the same
 *   with 3 or 3,000 blocks in flight.
 *
 * Allocation
 *   The most recently freed blocks are tried first, where they were (a stream
 *   of arrays keeps touching the same few blocks: warm in the cache and the TLB,
 *   and found in O(log live)); otherwise address-ordered first fit over the gaps
 *   between live blocks, so a long-held block costs only its own space.
 *
 * Memory order (SYNC POINTs in ether_arena.c)
 *   owner:  write offset/length/generation, then store-release the bitmap, then
 *           send the handle through a ring (the ring's release/acquire pairs).
 *   holder: load-acquire the generation and bitmap to check a handle; clear its
 *           bit with fetch_and (acq_rel) after its last access to the data; if
 *           that freed the block, announce it (release).
 *   owner:  exchange (acquire) the announcements before reusing a block, so the
 *           holders' reads of the data happen before the owner's next writes.
 */
#ifndef ETHER_ARENA_H
#define ETHER_ARENA_H

#include <stdint.h>

#define ETHER_ARENA_MAGIC        0x4e52415245485445ULL /* "ETHERARN" little-endian */
#define ETHER_ARENA_VERSION      3u
#define ETHER_ARENA_HOLDERS      64u
#define ETHER_ARENA_HOLDERS_AT   64u
#define ETHER_ARENA_SUMMARY_AT   48u
#define ETHER_ARENA_RELEASED_AT  576u
#define ETHER_ARENA_BLOCKS_AT    1088u
#define ETHER_ARENA_MAX_BLOCKS   4096u
#define ETHER_ARENA_BLOCK_BYTES  32u
#define ETHER_ARENA_FREED_AT     40u
#define ETHER_ARENA_WAITING_AT   44u

/* Results of ether_arena_alloc and ether_arena_check. */
enum {
    ETHER_ARENA_OK = 0,
    ETHER_ARENA_NO_ROOM = -1,      /* no gap holds the request now */
    ETHER_ARENA_NO_ENTRY = -2,     /* every block entry is live */
    ETHER_ARENA_TOO_LARGE = -3,    /* larger than the whole data area */
    ETHER_ARENA_OUT_OF_BOUNDS = -4,
    ETHER_ARENA_STALE = -5,        /* the block was reused, or this holder's bit is clear */
    ETHER_ARENA_BAD_SEGMENT = -6,
};

/* A process's reading side of one arena (Python fills it after validating the
 * header): the mapping and the bit of this process in it. */
typedef struct {
    uint8_t *base;
    uint64_t size;
    uint64_t data_offset;
    uint32_t max_blocks;
    uint32_t bit;
} ether_arena_view_t;

/* One allocation. */
typedef struct {
    uint32_t block;
    uint64_t offset;      /* in the data area */
    uint64_t generation;
} ether_arena_grant_t;

typedef struct ether_arena ether_arena_t;

/* Owner: attach the allocator to a freshly created, zeroed segment and write its
 * header. NULL if the size cannot hold the header, the table and one page. */
ether_arena_t *ether_arena_create(void *base, uint64_t size, uint32_t max_blocks, uint64_t owner);
void ether_arena_destroy(ether_arena_t *arena);

/* Owner: a block of `length` bytes aligned to `alignment` (a power of two) whose
 * bitmap is `holders` (non-zero). */
int ether_arena_alloc(ether_arena_t *arena, uint64_t length, uint64_t alignment,
                      uint64_t holders, ether_arena_grant_t *out);
/* Owner: add holder bits to a live block (a loan being published); returns the
 * bitmap before (UINT64_MAX for a block out of range). */
uint64_t ether_arena_hold(ether_arena_t *arena, uint32_t block, uint64_t bits);
/* Owner: clear `bits` of one block (receivers a message did not reach); returns
 * the bitmap before. */
uint64_t ether_arena_drop_holders(ether_arena_t *arena, uint32_t block, uint64_t bits);
/* Owner: clear `mask`'s bits in every live block (holders that died). */
void ether_arena_clear_bits(ether_arena_t *arena, uint64_t mask);
/* Owner: live blocks and their bytes, after reclaiming the free ones. */
uint32_t ether_arena_live(ether_arena_t *arena, uint64_t *bytes);
/* Owner: the mask of holder bits set in any live block. */
uint64_t ether_arena_bits_in_use(ether_arena_t *arena);
uint64_t ether_arena_data_size(const ether_arena_t *arena);
uint64_t ether_arena_data_offset(const ether_arena_t *arena);

/* Owner: sleep until a holder frees a block (or timeout_ns): 0 when something
 * may have been freed (try again), 1 on timeout, 2 if a signal arrived. */
int ether_arena_wait(ether_arena_t *arena, uint64_t timeout_ns);
/* Owner: write the holder table's entry of `bit` (0: unused). */
void ether_arena_set_holder(ether_arena_t *arena, uint32_t bit, uint64_t token);

/* Holder: 0 if the handle (block, generation, offset, length) is in bounds and
 * the block is held by view->bit; else OUT_OF_BOUNDS or STALE. */
int ether_arena_check(const ether_arena_view_t *view, uint32_t block, uint64_t generation,
                      uint64_t offset, uint64_t length);
/* Holder: clear view->bit of block; 1 if that freed the block (the owner is then
 * woken if it waits for room), 0 if others still hold it, negative on a bad block. */
int ether_arena_release(const ether_arena_view_t *view, uint32_t block);

/* A process's reader of one arena: the view plus a private count of live views
 * per block (under a mutex: threads of one process may make and drop views of
 * the same block at once). The bit is cleared when a block's count returns to 0. */
typedef struct ether_arena_reader ether_arena_reader_t;

/* Validate the header of a mapped arena (magic, version, sizes against
 * `mapped`) and find `token` in the holder table; NULL with *error set
 * (BAD_SEGMENT, or STALE if the token holds no bit) on failure. */
ether_arena_reader_t *ether_arena_reader_open(void *base, uint64_t mapped, uint64_t token, int *error);
void ether_arena_reader_close(ether_arena_reader_t *reader);
uint64_t ether_arena_reader_data_offset(const ether_arena_reader_t *reader);
/* check, then count one more live view of block. */
int ether_arena_acquire(ether_arena_reader_t *reader, uint32_t block, uint64_t generation,
                        uint64_t offset, uint64_t length);
/* One hold of (block, generation) fewer; the last one releases the block. */
void ether_arena_unhold(ether_arena_reader_t *reader, uint32_t block, uint64_t generation);

#endif /* ETHER_ARENA_H */
