/*
 * ether_arena.h - the array arena: shared-memory blocks in which large arrays
 * travel by handle (one arena per publishing process; see docs/design/arena.md).
 *
 * The segment's layout - a header, the holder table, the released bitset, the
 * block table, then the data area - is drawn, field by field, in
 * ether_arena_layout.h, next to the structs that define it.
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
#define ETHER_ARENA_HOLDERS      64u    /* holder bits of a block: processes */
#define ETHER_ARENA_MAX_BLOCKS   4096u
#define ETHER_ARENA_BLOCK_BYTES  32u    /* one block entry */
/* Offsets in the segment (asserted in ether_arena_layout.h). */
#define ETHER_ARENA_FREED_AT     40u
#define ETHER_ARENA_WAITING_AT   44u
#define ETHER_ARENA_SUMMARY_AT   48u
#define ETHER_ARENA_HOLDERS_AT   64u
#define ETHER_ARENA_RELEASED_AT  576u
#define ETHER_ARENA_BLOCKS_AT    1088u

/* Results of the arena's calls (negative, so that ether_arena_release can also
 * answer 0 or 1). */
typedef enum {
    ETHER_ARENA_OK = 0,
    ETHER_ARENA_NO_ROOM = -1,        /* no gap holds the request now */
    ETHER_ARENA_NO_ENTRY = -2,       /* every block entry is live */
    ETHER_ARENA_TOO_LARGE = -3,      /* larger than the whole data area */
    ETHER_ARENA_OUT_OF_BOUNDS = -4,  /* an argument or a handle is out of range */
    ETHER_ARENA_STALE = -5,          /* the block was reused, or this holder's bit is clear */
    ETHER_ARENA_BAD_SEGMENT = -6,    /* magic, version or sizes do not match the mapping */
    ETHER_ARENA_NO_MEMORY = -7,      /* a process-local allocation failed */
} ether_arena_result_t;

/* A process's reading side of one arena: the mapping and the bit of this
 * process in it (filled by ether_arena_view_init). */
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
 * bitmap is `holders` (non-zero): OK, NO_ROOM, NO_ENTRY, TOO_LARGE, or
 * OUT_OF_BOUNDS for a bad alignment or no holders. */
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

/* Owner: sleep until a holder frees a block (or timeout_ns). Returns an
 * ether_wait_result_t (ether_atomic.h): WOKEN when something may have been freed
 * (try again), TIMED_OUT, or INTERRUPTED if a signal arrived. */
int ether_arena_wait(ether_arena_t *arena, uint64_t timeout_ns);
/* Owner: write the holder table's entry of `bit` (0: unused). */
void ether_arena_set_holder(ether_arena_t *arena, uint32_t bit, uint64_t token);

/* Holder: validate the header of the arena mapped at base (magic, version,
 * max_blocks, size == mapped, data_offset between the block table and the end)
 * and fill *view for holder `bit`: OK, BAD_SEGMENT, or OUT_OF_BOUNDS for a bit
 * >= ETHER_ARENA_HOLDERS. */
int ether_arena_view_init(ether_arena_view_t *view, void *base, uint64_t mapped, uint32_t bit);
/* The owner's member token of a valid arena; 0 if the header does not validate. */
uint64_t ether_arena_owner(const void *base, uint64_t mapped);

/* Holder: OK if the handle (block, generation, offset, length) is in bounds and
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

/* Validate the header (as ether_arena_view_init) and find `token` in the holder
 * table; NULL with *error set on failure: BAD_SEGMENT, STALE if the token holds
 * no bit, NO_MEMORY. */
ether_arena_reader_t *ether_arena_reader_open(void *base, uint64_t mapped, uint64_t token, int *error);
void ether_arena_reader_close(ether_arena_reader_t *reader);
uint64_t ether_arena_reader_data_offset(const ether_arena_reader_t *reader);
/* check, then count one more live view of block; the result of the check. */
int ether_arena_acquire(ether_arena_reader_t *reader, uint32_t block, uint64_t generation,
                        uint64_t offset, uint64_t length);
/* One hold of (block, generation) fewer; the last one releases the block. */
void ether_arena_unhold(ether_arena_reader_t *reader, uint32_t block, uint64_t generation);

#endif /* ETHER_ARENA_H */
