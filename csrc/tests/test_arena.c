/*
 * test_arena.c - C-level tests of the array arena (ether_arena.h), in one process.
 *
 * The "segment" is an anonymous shared mapping (zeroed, page aligned) followed by
 * a guard area that must stay untouched: every test checks that no write left the
 * segment. Roles: the owner is an ether_arena_t; a holder is a hand-made
 * ether_arena_view_t (ether_arena_check/release) or an ether_arena_reader_t found
 * by its token, which the owner writes into the holder table (ether_arena_set_holder).
 *
 * Usage:  test_arena [substring ...]    run the tests whose name contains one of them
 * Env:    ETHER_TEST_ALLOCS=N           allocations of the stress test
 *                                       (default 100000; the sanitizer targets lower it)
 *
 * Prints one line per test and a final "N passed, M failed"; exits 1 on any failure.
 * No test sleeps: threads meet on latches (atomic counter + spin) and on observable
 * state (the arena's `waiting` word, the waiting thread's state in /proc); timeouts
 * only bound a wait that should end sooner.
 */
#define _GNU_SOURCE
#include "../ether_arena.h"

#include "harness.h"

#include <pthread.h>
#include <sys/mman.h>

/* ----------------------------------------------- harness (arena part; the rest: harness.h) */

static const char *result_name(int rc)
{
    static const char *names[] = {"OK", "NO_ROOM", "NO_ENTRY", "TOO_LARGE", "OUT_OF_BOUNDS",
                                  "STALE", "BAD_SEGMENT", "NO_MEMORY"};
    if (rc <= 0 && -rc < (int)(sizeof(names) / sizeof(names[0])))
        return names[-rc];
    return "?";
}

/* A call that returns an ether_arena_result_t. */
#define EXPECT_RC(call, want) \
    do { int rc_ = (call); \
         if (rc_ != (int)(want)) \
             fail_at(__FILE__, __LINE__, "%s returned %s (%d), expected %s", #call, \
                     result_name(rc_), rc_, result_name((int)(want))); } while (0)

static uint32_t g_allocs = 100000; /* allocations of the stress test */

/* ------------------------------------------------------------------ segments */

#define GUARD_BYTES 4096u
#define GUARD_BYTE 0xA5
#define OWNER_TOKEN 0x0E1E0E1Eull
#define PAGE 4096u

/* The member token of holder bit `bit` in these tests. */
static uint64_t token_of(uint32_t bit) { return 0x70CE000000ull + bit; }

typedef struct {
    uint8_t *mem;           /* segment start (page aligned); the guard follows */
    uint64_t size;          /* segment bytes */
    uint64_t mapped;        /* size + guard, rounded to pages */
    ether_arena_t *arena;   /* the owner */
} seg_t;

/* Map a zeroed shared segment of `size` bytes plus the guard (no arena yet). */
static bool seg_map(seg_t *s, uint64_t size)
{
    memset(s, 0, sizeof(*s));
    s->size = size;
    s->mapped = (size + GUARD_BYTES + PAGE - 1) & ~(uint64_t)(PAGE - 1);
    void *m = mmap(NULL, (size_t)s->mapped, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (!EXPECT(m != MAP_FAILED)) {
        s->mem = NULL;
        return false;
    }
    s->mem = m;
    memset(s->mem + size, GUARD_BYTE, (size_t)(s->mapped - size));
    return true;
}

/* A segment of data_pages pages of data after the table of max_blocks entries, with
 * the owner's arena created on it and the tokens of holder bits 0..15 written. */
static bool seg_init(seg_t *s, uint32_t max_blocks, uint64_t data_pages)
{
    uint64_t table_end = ETHER_ARENA_BLOCKS_AT + (uint64_t)ETHER_ARENA_BLOCK_BYTES * max_blocks;
    uint64_t data_offset = (table_end + PAGE - 1) & ~(uint64_t)(PAGE - 1);
    if (!seg_map(s, data_offset + data_pages * PAGE))
        return false;
    s->arena = ether_arena_create(s->mem, s->size, max_blocks, OWNER_TOKEN);
    if (!EXPECT(s->arena != NULL))
        return false;
    for (uint32_t bit = 0; bit < 16; bit++)
        ether_arena_set_holder(s->arena, bit, token_of(bit));
    return EXPECT_EQ(ether_arena_data_offset(s->arena), data_offset) &&
           EXPECT_EQ(ether_arena_data_size(s->arena), data_pages * PAGE);
}

/* Check that nothing was written past the segment, then unmap everything. */
static void seg_done(seg_t *s)
{
    if (s->mem) {
        for (uint64_t i = s->size; i < s->mapped; i++) {
            if (s->mem[i] != GUARD_BYTE) {
                fail_at(__FILE__, __LINE__, "write past the end of the segment at offset %" PRIu64, i);
                break;
            }
        }
        munmap(s->mem, (size_t)s->mapped);
    }
    ether_arena_destroy(s->arena);
    memset(s, 0, sizeof(*s));
}

/* A holder's view, made from the header as Python makes it. */
static ether_arena_view_t view_of(const seg_t *s, uint32_t bit)
{
    ether_arena_view_t v;
    EXPECT_RC(ether_arena_view_init(&v, s->mem, s->size, bit), ETHER_ARENA_OK);
    return v;
}

static _Atomic uint64_t *bitmap_word(const seg_t *s, uint32_t block)
{
    return (_Atomic uint64_t *)(s->mem + ETHER_ARENA_BLOCKS_AT + (uint64_t)ETHER_ARENA_BLOCK_BYTES * block);
}

static uint64_t bitmap(const seg_t *s, uint32_t block) { return atomic_load(bitmap_word(s, block)); }

static uint64_t block_field(const seg_t *s, uint32_t block, uint32_t at)
{
    return get_u64(s->mem + ETHER_ARENA_BLOCKS_AT + (uint64_t)ETHER_ARENA_BLOCK_BYTES * block + at);
}

static uint32_t freed_count(const seg_t *s)
{
    return atomic_load((_Atomic uint32_t *)(s->mem + ETHER_ARENA_FREED_AT));
}

static uint32_t waiting_count(const seg_t *s)
{
    return atomic_load((_Atomic uint32_t *)(s->mem + ETHER_ARENA_WAITING_AT));
}

static uint32_t live_blocks(const seg_t *s, uint64_t *bytes) { return ether_arena_live(s->arena, bytes); }

static int alloc(seg_t *s, uint64_t length, uint64_t alignment, uint64_t holders, ether_arena_grant_t *g)
{
    memset(g, 0xEE, sizeof(*g));
    return ether_arena_alloc(s->arena, length, alignment, holders, g);
}

/* Free a block held by the single bit `bit`, as its holder would. */
static int release_bit(const seg_t *s, uint32_t bit, uint32_t block)
{
    ether_arena_view_t v = view_of(s, bit);
    return ether_arena_release(&v, block);
}

/* ------------------------------------------------------------------ tests */

/* 1. create writes the header: the magic "ETHERARN" (bytes, little-endian word),
 *    version, max_blocks, size, owner, and a page-aligned data_offset after the
 *    block table; the holder and block tables are left zero. */
static void test_create_writes_the_header(void)
{
    seg_t s;
    if (!seg_map(&s, 3 * PAGE))
        goto done;
    s.arena = ether_arena_create(s.mem, s.size, 40, OWNER_TOKEN);
    if (!EXPECT(s.arena != NULL))
        goto done;
    EXPECT(memcmp(s.mem, "ETHERARN", 8) == 0);
    EXPECT_EQ(get_u64(s.mem + 0), ETHER_ARENA_MAGIC);
    EXPECT_EQ(get_u32(s.mem + 8), ETHER_ARENA_VERSION);
    EXPECT_EQ(get_u32(s.mem + 12), 40);
    EXPECT_EQ(get_u64(s.mem + 16), s.size);
    uint64_t data_offset = get_u64(s.mem + 24);
    EXPECT_EQ(data_offset % PAGE, 0);
    EXPECT(data_offset >= ETHER_ARENA_BLOCKS_AT + 40 * ETHER_ARENA_BLOCK_BYTES);
    EXPECT_EQ(data_offset, PAGE); /* 576 + 40 * 32 = 1856 -> one page */
    EXPECT_EQ(get_u64(s.mem + 32), OWNER_TOKEN);
    EXPECT_EQ(ether_arena_owner(s.mem, s.size), OWNER_TOKEN);
    EXPECT_EQ(get_u32(s.mem + ETHER_ARENA_FREED_AT), 0);
    EXPECT_EQ(get_u32(s.mem + ETHER_ARENA_WAITING_AT), 0);
    EXPECT_EQ(ether_arena_data_offset(s.arena), data_offset);
    EXPECT_EQ(ether_arena_data_size(s.arena), s.size - data_offset);
    for (uint64_t i = 48; i < data_offset; i++)
        if (!EXPECT_EQ(s.mem[i], 0))
            break;
    EXPECT_EQ(live_blocks(&s, NULL), 0);
    ether_arena_destroy(s.arena);

    /* A table of 200 entries (576 + 6400 bytes) pushes the data to the second page. */
    memset(s.mem, 0, (size_t)s.size);
    s.arena = ether_arena_create(s.mem, s.size, 200, OWNER_TOKEN);
    if (EXPECT(s.arena != NULL)) {
        EXPECT_EQ(get_u64(s.mem + 24), 2 * PAGE);
        EXPECT_EQ(ether_arena_data_size(s.arena), PAGE);
    }
done:
    seg_done(&s);
}

/* 1. create refuses a NULL base, max_blocks 0, and a size that cannot hold the
 *    header, the table and one page of data (and accepts exactly that much). */
static void test_create_refuses_bad_parameters(void)
{
    seg_t s;
    if (!seg_map(&s, 4 * PAGE))
        goto done;
    EXPECT(ether_arena_create(NULL, s.size, 8, OWNER_TOKEN) == NULL);
    EXPECT(ether_arena_create(s.mem, s.size, 0, OWNER_TOKEN) == NULL);
    EXPECT(ether_arena_create(s.mem, 0, 8, OWNER_TOKEN) == NULL);
    EXPECT(ether_arena_create(s.mem, 2 * PAGE - 1, 8, OWNER_TOKEN) == NULL);  /* 1 page of table */
    EXPECT(ether_arena_create(s.mem, 3 * PAGE - 1, 200, OWNER_TOKEN) == NULL); /* 2 pages of table */
    EXPECT(ether_arena_create(s.mem, 4 * PAGE, 1000, OWNER_TOKEN) == NULL);   /* 576 + 32000 B */
    EXPECT(ether_arena_create(s.mem, s.size, UINT32_MAX, OWNER_TOKEN) == NULL);
    EXPECT_EQ(get_u64(s.mem), 0); /* nothing was written by a refusal */
    s.arena = ether_arena_create(s.mem, 2 * PAGE, 8, OWNER_TOKEN);
    if (EXPECT(s.arena != NULL)) {
        EXPECT_EQ(ether_arena_data_size(s.arena), PAGE);
        EXPECT_EQ(get_u64(s.mem + 16), 2 * PAGE);
    }
done:
    seg_done(&s);
}

/* 2. First fit: allocations are placed in address order, each aligned as asked
 *    (64 B for small ones, 4096 for the >= 64 KiB ones, as the Python side asks);
 *    the owner writes offset, length and generation into the block entry. */
static void test_first_fit_in_address_order_and_aligned(void)
{
    seg_t s;
    if (!seg_init(&s, 16, 64))
        goto done;
    ether_arena_grant_t a, b, c, d;
    EXPECT_RC(alloc(&s, 100, 64, 1, &a), ETHER_ARENA_OK);
    EXPECT_RC(alloc(&s, 1000, 64, 1, &b), ETHER_ARENA_OK);
    EXPECT_RC(alloc(&s, 64 << 10, 4096, 1, &c), ETHER_ARENA_OK);
    EXPECT_RC(alloc(&s, 10, 64, 1, &d), ETHER_ARENA_OK);
    EXPECT_EQ(a.offset, 0);
    EXPECT_EQ(b.offset, 128);              /* 100 rounded up to 64 */
    EXPECT_EQ(c.offset, 4096);             /* 1128 rounded up to a page */
    EXPECT_EQ(d.offset, 1152);             /* the lowest gap that holds it: b..c */
    /* A page-aligned request that does not fit in 1152..4096 goes after c. */
    ether_arena_grant_t e;
    EXPECT_RC(alloc(&s, 4096, 4096, 1, &e), ETHER_ARENA_OK);
    EXPECT_EQ(e.offset, 4096 + (64 << 10));
    uint64_t data_offset = ether_arena_data_offset(s.arena);
    EXPECT_EQ((uintptr_t)(s.mem + data_offset + c.offset) % 4096, 0);
    EXPECT_EQ(a.block, 0);
    EXPECT_EQ(b.block, 1);
    EXPECT_EQ(c.block, 2);
    EXPECT_EQ(a.generation, 1);
    EXPECT_EQ(c.generation, 1);
    EXPECT_EQ(block_field(&s, c.block, 8), c.offset);
    EXPECT_EQ(block_field(&s, c.block, 16), 64 << 10);
    EXPECT_EQ(block_field(&s, c.block, 24), 1);
    EXPECT_EQ(bitmap(&s, c.block), 1);
    uint64_t bytes = 0;
    EXPECT_EQ(live_blocks(&s, &bytes), 5);
    EXPECT_EQ(bytes, 100 + 1000 + (64 << 10) + 10 + 4096);
done:
    seg_done(&s);
}

/* 2. Freeing a block (its holder clears its bit) opens its gap again: the next
 *    allocation that fits there takes the lowest gap, although a later block
 *    still lives, and the reused block entry carries the next generation. */
static void test_freed_gap_is_reused_first_with_a_new_generation(void)
{
    seg_t s;
    if (!seg_init(&s, 16, 16))
        goto done;
    const uint64_t bit0 = 1;
    ether_arena_grant_t a, b, c, d, e, f;
    EXPECT_RC(alloc(&s, 100, 64, bit0, &a), ETHER_ARENA_OK);
    EXPECT_RC(alloc(&s, 1000, 64, bit0, &b), ETHER_ARENA_OK);
    EXPECT_RC(alloc(&s, 2000, 64, bit0, &c), ETHER_ARENA_OK);
    EXPECT_EQ(b.offset, 128);
    EXPECT_EQ(c.offset, 1152);
    /* The middle block freed by its (only) holder; c lives on after it. */
    EXPECT_EQ(release_bit(&s, 0, b.block), 1);
    EXPECT_EQ(bitmap(&s, b.block), 0);
    EXPECT_RC(alloc(&s, 500, 64, bit0, &d), ETHER_ARENA_OK);
    EXPECT_EQ(d.offset, b.offset);          /* not 3200, after c */
    EXPECT_EQ(d.block, b.block);            /* the freed entry is reused ... */
    EXPECT_EQ(d.generation, b.generation + 1); /* ... with the next generation */
    EXPECT_EQ(block_field(&s, d.block, 24), d.generation);
    EXPECT_EQ(block_field(&s, d.block, 16), 500);
    /* What is left of the gap (640..1152) holds 512 bytes: 600 go after c, 400 fit. */
    EXPECT_RC(alloc(&s, 600, 64, bit0, &e), ETHER_ARENA_OK);
    EXPECT_EQ(e.offset, 3200);
    EXPECT_RC(alloc(&s, 400, 64, bit0, &f), ETHER_ARENA_OK);
    EXPECT_EQ(f.offset, 640);
    /* Two neighbours freed make one gap: a and d (0..628) hold 600 bytes at 0. */
    EXPECT_EQ(release_bit(&s, 0, a.block), 1);
    EXPECT_EQ(release_bit(&s, 0, d.block), 1);
    ether_arena_grant_t g;
    EXPECT_RC(alloc(&s, 600, 64, bit0, &g), ETHER_ARENA_OK);
    EXPECT_EQ(g.offset, 0);
    uint64_t bytes = 0;
    EXPECT_EQ(live_blocks(&s, &bytes), 4); /* c, e, f, g */
    EXPECT_EQ(bytes, 2000 + 600 + 400 + 600);
done:
    seg_done(&s);
}

/* 3. alloc's refusals: TOO_LARGE beyond the data area, NO_ROOM when no gap holds
 *    the request (alignment included), NO_ENTRY when every block entry is live,
 *    OUT_OF_BOUNDS for a bad alignment or no holders; a refusal changes nothing;
 *    a length of 0 allocates 1 byte. */
static void test_alloc_refusals(void)
{
    seg_t s;
    if (!seg_init(&s, 4, 2))   /* 8192 bytes of data, 4 entries */
        goto done;
    ether_arena_grant_t g, h, k;
    EXPECT_RC(alloc(&s, 8193, 64, 1, &g), ETHER_ARENA_TOO_LARGE);
    EXPECT_RC(alloc(&s, UINT64_MAX, 64, 1, &g), ETHER_ARENA_TOO_LARGE);
    EXPECT_RC(alloc(&s, 64, 0, 1, &g), ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_RC(alloc(&s, 64, 3, 1, &g), ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_RC(alloc(&s, 64, 48, 1, &g), ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_RC(alloc(&s, 64, (1ull << 63) + 1, 1, &g), ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_RC(alloc(&s, 64, 64, 0, &g), ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_EQ(live_blocks(&s, NULL), 0);
    for (uint32_t b = 0; b < 4; b++)
        EXPECT_EQ(bitmap(&s, b), 0);

    /* The whole data area in one block; then not one byte more. */
    EXPECT_RC(alloc(&s, 8192, 4096, 1, &g), ETHER_ARENA_OK);
    EXPECT_EQ(g.offset, 0);
    EXPECT_RC(alloc(&s, 1, 1, 1, &h), ETHER_ARENA_NO_ROOM);
    EXPECT_EQ(release_bit(&s, 0, g.block), 1);

    /* 4096 + 4000 bytes leave 96 at the end: 97 do not fit, 96 do. */
    EXPECT_RC(alloc(&s, 4096, 4096, 1, &g), ETHER_ARENA_OK);
    EXPECT_RC(alloc(&s, 4000, 1, 1, &h), ETHER_ARENA_OK);
    EXPECT_EQ(h.offset, 4096);
    EXPECT_RC(alloc(&s, 97, 1, 1, &k), ETHER_ARENA_NO_ROOM);
    EXPECT_RC(alloc(&s, 96, 64, 1, &k), ETHER_ARENA_NO_ROOM); /* 8096 is not 64-aligned */
    EXPECT_RC(alloc(&s, 96, 32, 1, &k), ETHER_ARENA_OK);
    EXPECT_EQ(k.offset, 8096);
    EXPECT_RC(alloc(&s, 1, 1, 1, &k), ETHER_ARENA_NO_ROOM);
    /* The room at the start is free once g goes, but only 4096 bytes of it. */
    EXPECT_EQ(release_bit(&s, 0, g.block), 1);
    EXPECT_RC(alloc(&s, 4097, 1, 1, &k), ETHER_ARENA_NO_ROOM);
    EXPECT_RC(alloc(&s, 4096, 4096, 1, &k), ETHER_ARENA_OK);
    EXPECT_EQ(k.offset, 0);
    uint64_t bytes = 0;
    EXPECT_EQ(live_blocks(&s, &bytes), 3);
    EXPECT_EQ(bytes, 8192);
    seg_done(&s);

    /* Four entries: the fifth block has room but no entry until one is freed. */
    if (!seg_init(&s, 4, 16))
        goto done;
    ether_arena_grant_t blocks[4];
    for (uint32_t i = 0; i < 4; i++) {
        EXPECT_RC(alloc(&s, 64, 64, 2, &blocks[i]), ETHER_ARENA_OK);
        EXPECT_EQ(blocks[i].offset, 64 * i);
    }
    EXPECT_RC(alloc(&s, 64, 64, 2, &g), ETHER_ARENA_NO_ENTRY);
    EXPECT_EQ(live_blocks(&s, NULL), 4);
    EXPECT_EQ(release_bit(&s, 1, blocks[3].block), 1);
    EXPECT_RC(alloc(&s, 64, 64, 2, &g), ETHER_ARENA_OK);
    EXPECT_EQ(g.block, blocks[3].block);
    EXPECT_EQ(g.generation, 2);
    EXPECT_EQ(release_bit(&s, 1, blocks[0].block), 1);
    EXPECT_EQ(release_bit(&s, 1, blocks[1].block), 1);

    /* Length 0: one byte, placed where the last freed block was (64), and the
     * next byte is free for the next block. */
    EXPECT_RC(alloc(&s, 0, 1, 2, &g), ETHER_ARENA_OK);
    EXPECT_EQ(g.offset, 64);
    EXPECT_EQ(block_field(&s, g.block, 16), 1);
    EXPECT_RC(alloc(&s, 1, 1, 2, &h), ETHER_ARENA_OK);
    EXPECT_EQ(h.offset, 0);  /* block 0's place, freed before */
    EXPECT_EQ(live_blocks(&s, &bytes), 4);
    EXPECT_EQ(bytes, 1 + 1 + 64 + 64);
done:
    seg_done(&s);
}

/* 4. ether_arena_check: a handle out of the segment (block, offset, length,
 *    including values whose sum wraps around) or out of its own block is
 *    OUT_OF_BOUNDS; a wrong generation or a holder whose bit is clear is STALE;
 *    otherwise OK (a view of any part of the block).
 *    ether_arena_release: 1 when it frees the block (and bumps `freed`), 0 when
 *    others still hold it or the bit was already clear. */
static void test_check_bounds_and_staleness(void)
{
    seg_t s;
    if (!seg_init(&s, 8, 4))   /* 16384 bytes of data */
        goto done;
    const uint64_t D = 4 * PAGE;
    ether_arena_grant_t f, g;
    EXPECT_RC(alloc(&s, 64, 64, 1ull << 2, &f), ETHER_ARENA_OK);  /* g does not start at 0 */
    EXPECT_RC(alloc(&s, 100, 64, (1ull << 2) | (1ull << 5), &g), ETHER_ARENA_OK);
    EXPECT_EQ(g.offset, 64);
    ether_arena_view_t v2 = view_of(&s, 2), v3 = view_of(&s, 3), v5 = view_of(&s, 5);
    EXPECT_RC(ether_arena_check(&v2, g.block, g.generation, g.offset, 100), ETHER_ARENA_OK);
    EXPECT_RC(ether_arena_check(&v5, g.block, g.generation, g.offset, 100), ETHER_ARENA_OK);
    EXPECT_RC(ether_arena_check(&v2, g.block, g.generation, g.offset + 10, 90), ETHER_ARENA_OK);
    EXPECT_RC(ether_arena_check(&v2, g.block, g.generation, g.offset + 99, 1), ETHER_ARENA_OK);
    EXPECT_RC(ether_arena_check(&v2, g.block, g.generation, g.offset, 1), ETHER_ARENA_OK);

    /* Out of the segment. */
    EXPECT_RC(ether_arena_check(&v2, 8, 1, 0, 1), ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_RC(ether_arena_check(&v2, UINT32_MAX, 1, 0, 1), ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_RC(ether_arena_check(&v2, g.block, g.generation, D + 1, 0), ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_RC(ether_arena_check(&v2, g.block, g.generation, D, 1), ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_RC(ether_arena_check(&v2, g.block, g.generation, 0, D + 1), ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_RC(ether_arena_check(&v2, g.block, g.generation, UINT64_MAX, 1), ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_RC(ether_arena_check(&v2, g.block, g.generation, UINT64_MAX, 0), ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_RC(ether_arena_check(&v2, g.block, g.generation, 0, UINT64_MAX), ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_RC(ether_arena_check(&v2, g.block, g.generation, g.offset + 1, UINT64_MAX),
              ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_RC(ether_arena_check(&v2, g.block, g.generation, UINT64_MAX, 2), ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_RC(ether_arena_check(&v2, g.block, g.generation, 1ull << 63, 1ull << 63),
              ETHER_ARENA_OUT_OF_BOUNDS);
    /* In the segment but out of the block [64, 164): before, across either end, after. */
    EXPECT_RC(ether_arena_check(&v2, g.block, g.generation, 0, D), ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_RC(ether_arena_check(&v2, g.block, g.generation, g.offset - 1, 100), ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_RC(ether_arena_check(&v2, g.block, g.generation, g.offset - 1, 1), ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_RC(ether_arena_check(&v2, g.block, g.generation, g.offset, 101), ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_RC(ether_arena_check(&v2, g.block, g.generation, g.offset + 1, 100), ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_RC(ether_arena_check(&v2, g.block, g.generation, g.offset + 100, 1), ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_RC(ether_arena_check(&v2, g.block, g.generation, g.offset + 200, 8), ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_RC(ether_arena_check(&v2, f.block, f.generation, g.offset, 100), ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_RC(ether_arena_check(&v2, g.block, g.generation, g.offset + 1, UINT64_MAX - 8),
              ETHER_ARENA_OUT_OF_BOUNDS);
    /* A view that is itself inconsistent is refused, not trusted. */
    ether_arena_view_t bad = v2;
    bad.bit = 64;
    EXPECT_RC(ether_arena_check(&bad, g.block, g.generation, g.offset, 100), ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_RC(ether_arena_release(&bad, g.block), ETHER_ARENA_OUT_OF_BOUNDS);
    bad = v2;
    bad.data_offset = s.size + 1;
    EXPECT_RC(ether_arena_check(&bad, g.block, g.generation, 0, 0), ETHER_ARENA_OUT_OF_BOUNDS);

    EXPECT_RC(ether_arena_check(&v2, g.block, g.generation + 1, g.offset, 100), ETHER_ARENA_STALE);
    EXPECT_RC(ether_arena_check(&v2, g.block, g.generation - 1, g.offset, 100), ETHER_ARENA_STALE);
    EXPECT_RC(ether_arena_check(&v3, g.block, g.generation, g.offset, 100), ETHER_ARENA_STALE);
    EXPECT_RC(ether_arena_check(&v2, g.block + 1, 0, 0, 1), ETHER_ARENA_STALE); /* never allocated */

    /* Release: bit 2 leaves (5 still holds), twice is harmless, then 5 frees it. */
    uint32_t freed = freed_count(&s);
    EXPECT_RC(ether_arena_release(&v2, 8), ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_EQ(ether_arena_release(&v2, g.block), 0);
    EXPECT_EQ(bitmap(&s, g.block), 1ull << 5);
    EXPECT_RC(ether_arena_check(&v2, g.block, g.generation, g.offset, 100), ETHER_ARENA_STALE);
    EXPECT_RC(ether_arena_check(&v5, g.block, g.generation, g.offset, 100), ETHER_ARENA_OK);
    EXPECT_EQ(ether_arena_release(&v2, g.block), 0);
    EXPECT_EQ(bitmap(&s, g.block), 1ull << 5);
    EXPECT_EQ(freed_count(&s), freed);
    EXPECT_EQ(ether_arena_release(&v5, g.block), 1);
    EXPECT_EQ(bitmap(&s, g.block), 0);
    EXPECT_EQ(freed_count(&s), freed + 1);
    EXPECT_RC(ether_arena_check(&v5, g.block, g.generation, g.offset, 100), ETHER_ARENA_STALE);
    /* Reused for bit 5 again: the old handle stays stale although the bit is set. */
    ether_arena_grant_t n;
    EXPECT_RC(alloc(&s, 100, 64, 1ull << 5, &n), ETHER_ARENA_OK);
    EXPECT_EQ(n.block, g.block);
    EXPECT_EQ(n.generation, g.generation + 1);
    EXPECT_RC(ether_arena_check(&v5, g.block, g.generation, g.offset, 100), ETHER_ARENA_STALE);
    EXPECT_RC(ether_arena_check(&v5, n.block, n.generation, n.offset, 100), ETHER_ARENA_OK);
done:
    seg_done(&s);
}

/* 5. ether_arena_reader_open validates the header (magic, version, max_blocks,
 *    size against the mapping, data_offset between the table and the end) and
 *    finds its token's bit in the holder table (written by set_holder at
 *    64 + 8 * bit): BAD_SEGMENT or STALE otherwise. ether_arena_view_init and
 *    ether_arena_owner validate the same header: BAD_SEGMENT, or owner 0. */
static void test_reader_open_validates_the_header(void)
{
    seg_t s;
    if (!seg_init(&s, 8, 4))
        goto done;
    EXPECT_EQ(get_u64(s.mem + ETHER_ARENA_HOLDERS_AT + 8 * 5), token_of(5));
    EXPECT_EQ(get_u64(s.mem + ETHER_ARENA_HOLDERS_AT + 8 * 16), 0);
    ether_arena_set_holder(s.arena, 64, 0x4B4B);  /* no bit 64: block 0 (at 576) untouched */
    EXPECT_EQ(get_u64(s.mem + ETHER_ARENA_BLOCKS_AT), 0);
    int err = 99;
    ether_arena_reader_t *r = ether_arena_reader_open(s.mem, s.size, token_of(5), &err);
    EXPECT(r != NULL);
    EXPECT_RC(err, ETHER_ARENA_OK);
    if (r) {
        EXPECT_EQ(ether_arena_reader_data_offset(r), PAGE);
        /* It holds bit 5: a block held by 5 is acquired, one held by 4 is not. */
        ether_arena_grant_t g4, g5;
        EXPECT_RC(alloc(&s, 10, 64, 1ull << 4, &g4), ETHER_ARENA_OK);
        EXPECT_RC(alloc(&s, 10, 64, 1ull << 5, &g5), ETHER_ARENA_OK);
        EXPECT_RC(ether_arena_acquire(r, g5.block, g5.generation, g5.offset, 10), ETHER_ARENA_OK);
        EXPECT_RC(ether_arena_acquire(r, g4.block, g4.generation, g4.offset, 10), ETHER_ARENA_STALE);
        ether_arena_unhold(r, g5.block, g5.generation);
        EXPECT_EQ(bitmap(&s, g5.block), 0);
        EXPECT_EQ(bitmap(&s, g4.block), 1ull << 4);
        ether_arena_reader_close(r);
    }
    /* The last holder slot is found too. */
    ether_arena_set_holder(s.arena, 63, token_of(63));
    r = ether_arena_reader_open(s.mem, s.size, token_of(63), &err);
    EXPECT(r != NULL);
    if (r) {
        ether_arena_grant_t g;
        EXPECT_RC(alloc(&s, 10, 64, 1ull << 63, &g), ETHER_ARENA_OK);
        EXPECT_RC(ether_arena_acquire(r, g.block, g.generation, g.offset, 10), ETHER_ARENA_OK);
        ether_arena_unhold(r, g.block, g.generation);
        EXPECT_EQ(bitmap(&s, g.block), 0);
        ether_arena_reader_close(r);
    }

    /* Unknown tokens (0 marks an unused slot): STALE. */
    err = 99;
    EXPECT(ether_arena_reader_open(s.mem, s.size, 0xDEADull, &err) == NULL);
    EXPECT_RC(err, ETHER_ARENA_STALE);
    err = 99;
    EXPECT(ether_arena_reader_open(s.mem, s.size, 0, &err) == NULL);
    EXPECT_RC(err, ETHER_ARENA_STALE);
    err = 99;
    EXPECT(ether_arena_reader_open(s.mem, s.size, OWNER_TOKEN, &err) == NULL);
    EXPECT_RC(err, ETHER_ARENA_STALE);

    /* The view and the owner of the valid header. */
    ether_arena_view_t v;
    EXPECT_RC(ether_arena_view_init(&v, s.mem, s.size, 7), ETHER_ARENA_OK);
    EXPECT(v.base == s.mem);
    EXPECT_EQ(v.size, s.size);
    EXPECT_EQ(v.data_offset, PAGE);
    EXPECT_EQ(v.max_blocks, 8);
    EXPECT_EQ(v.bit, 7);
    EXPECT_EQ(ether_arena_owner(s.mem, s.size), OWNER_TOKEN);
    EXPECT_RC(ether_arena_view_init(&v, s.mem, s.size, 63), ETHER_ARENA_OK);
    EXPECT_RC(ether_arena_view_init(&v, s.mem, s.size, 64), ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_RC(ether_arena_view_init(NULL, s.mem, s.size, 1), ETHER_ARENA_OUT_OF_BOUNDS);

    /* A mapping that does not match the header. */
    struct { void *base; uint64_t mapped; } mappings[] = {
        {NULL, s.size}, {s.mem, s.size - 1}, {s.mem, s.size + PAGE}, {s.mem, 100}, {s.mem, 0},
    };
    for (size_t i = 0; i < sizeof mappings / sizeof mappings[0]; i++) {
        err = 99;
        EXPECT(ether_arena_reader_open(mappings[i].base, mappings[i].mapped, token_of(5), &err) == NULL);
        EXPECT_RC(err, ETHER_ARENA_BAD_SEGMENT);
        EXPECT_RC(ether_arena_view_init(&v, mappings[i].base, mappings[i].mapped, 5), ETHER_ARENA_BAD_SEGMENT);
        EXPECT_EQ(ether_arena_owner(mappings[i].base, mappings[i].mapped), 0);
    }

    /* Corrupted headers, one field at a time (restored after each). */
    uint8_t saved[ETHER_ARENA_HOLDERS_AT];
    memcpy(saved, s.mem, sizeof saved);
    struct { const char *what; uint32_t at; uint64_t value; int width; } cases[] = {
        {"magic", 0, ETHER_ARENA_MAGIC ^ 0xFF, 8},
        {"magic zero", 0, 0, 8},
        {"version 1", 8, 1, 4},
        {"version 4", 8, 4, 4},
        {"max_blocks 0", 12, 0, 4},
        {"table past data_offset", 12, 200, 4},   /* 576 + 6400 > 4096 */
        {"table past everything", 12, UINT32_MAX, 4},
        {"size", 16, 0, 8},
        {"data_offset inside the table", 24, 512, 8},
        {"data_offset past the end", 24, 6 * PAGE, 8},
        {"data_offset huge", 24, UINT64_MAX, 8},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].width == 8)
            put_u64(s.mem + cases[i].at, cases[i].value);
        else
            put_u32(s.mem + cases[i].at, (uint32_t)cases[i].value);
        err = 99;
        r = ether_arena_reader_open(s.mem, s.size, token_of(5), &err);
        if (r != NULL || err != ETHER_ARENA_BAD_SEGMENT)
            fail_at(__FILE__, __LINE__, "corrupted %s: reader_open gave %p, error %s", cases[i].what,
                    (void *)r, result_name(err));
        ether_arena_reader_close(r);
        int rc = ether_arena_view_init(&v, s.mem, s.size, 5);
        if (rc != ETHER_ARENA_BAD_SEGMENT)
            fail_at(__FILE__, __LINE__, "corrupted %s: view_init gave %s", cases[i].what, result_name(rc));
        if (ether_arena_owner(s.mem, s.size) != 0)
            fail_at(__FILE__, __LINE__, "corrupted %s: owner is not 0", cases[i].what);
        memcpy(s.mem, saved, sizeof saved);
    }
    r = ether_arena_reader_open(s.mem, s.size, token_of(5), &err);
    EXPECT(r != NULL); /* the restored header is fine again */
    ether_arena_reader_close(r);
    EXPECT_EQ(ether_arena_owner(s.mem, s.size), OWNER_TOKEN);
done:
    seg_done(&s);
}

/* 5. A reader counts its views of a block: acquire twice + unhold once keeps its
 *    bit; the second unhold clears it, and bumps `freed` only when that freed the
 *    block (it was the last holder). Unholds beyond the count, or of a handle that
 *    was never acquired, change nothing (they must not free a reused block). */
static void test_reader_counts_views_and_releases_on_the_last(void)
{
    seg_t s;
    if (!seg_init(&s, 8, 4))
        goto done;
    int err;
    ether_arena_reader_t *r5 = ether_arena_reader_open(s.mem, s.size, token_of(5), &err);
    ether_arena_reader_t *r6 = ether_arena_reader_open(s.mem, s.size, token_of(6), &err);
    if (!EXPECT(r5 && r6))
        goto out;
    const uint64_t b5 = 1ull << 5, b6 = 1ull << 6;
    ether_arena_grant_t g;
    EXPECT_RC(alloc(&s, 256, 64, b5 | b6, &g), ETHER_ARENA_OK);
    uint32_t freed = freed_count(&s);

    EXPECT_RC(ether_arena_acquire(r5, g.block, g.generation, g.offset, 256), ETHER_ARENA_OK);
    EXPECT_RC(ether_arena_acquire(r5, g.block, g.generation, g.offset, 256), ETHER_ARENA_OK);
    ether_arena_unhold(r5, g.block, g.generation);
    EXPECT_EQ(bitmap(&s, g.block), b5 | b6);  /* one view of 5 is still alive */
    ether_arena_unhold(r5, g.block, g.generation);
    EXPECT_EQ(bitmap(&s, g.block), b6);       /* 5 let go; 6 still holds it */
    EXPECT_EQ(freed_count(&s), freed);        /* not freed: no wake-up */
    ether_arena_unhold(r5, g.block, g.generation);          /* one too many: nothing */
    EXPECT_EQ(bitmap(&s, g.block), b6);

    EXPECT_RC(ether_arena_acquire(r6, g.block, g.generation, g.offset, 256), ETHER_ARENA_OK);
    ether_arena_unhold(r6, g.block, g.generation);
    EXPECT_EQ(bitmap(&s, g.block), 0);
    EXPECT_EQ(freed_count(&s), freed + 1);    /* the last holder freed it */
    EXPECT_EQ(live_blocks(&s, NULL), 0);

    /* The entry reused for 6: a stray unhold of the old handle leaves it alone, and
     * so does a failed acquire (stale generation, out of bounds) and its unhold. */
    ether_arena_grant_t n;
    EXPECT_RC(alloc(&s, 256, 64, b6, &n), ETHER_ARENA_OK);
    EXPECT_EQ(n.block, g.block);
    ether_arena_unhold(r6, g.block, g.generation);
    EXPECT_EQ(bitmap(&s, n.block), b6);
    EXPECT_RC(ether_arena_acquire(r6, n.block, g.generation, n.offset, 256), ETHER_ARENA_STALE);
    ether_arena_unhold(r6, n.block, g.generation);
    EXPECT_EQ(bitmap(&s, n.block), b6);
    EXPECT_RC(ether_arena_acquire(r6, n.block, n.generation, UINT64_MAX, 256), ETHER_ARENA_OUT_OF_BOUNDS);
    EXPECT_RC(ether_arena_acquire(r6, 8, 1, 0, 1), ETHER_ARENA_OUT_OF_BOUNDS);
    ether_arena_unhold(r6, n.block, n.generation);
    ether_arena_unhold(r6, 8, 1);
    ether_arena_unhold(r6, UINT32_MAX, 1);
    EXPECT_EQ(bitmap(&s, n.block), b6);
    EXPECT_EQ(freed_count(&s), freed + 1);
    /* 5 is not a holder of the new block. */
    EXPECT_RC(ether_arena_acquire(r5, n.block, n.generation, n.offset, 256), ETHER_ARENA_STALE);
    EXPECT_RC(ether_arena_acquire(r6, n.block, n.generation, n.offset, 256), ETHER_ARENA_OK);
    ether_arena_unhold(r6, n.block, n.generation);
    EXPECT_EQ(bitmap(&s, n.block), 0);
    EXPECT_EQ(freed_count(&s), freed + 2);
out:
    ether_arena_reader_close(r5);
    ether_arena_reader_close(r6);
done:
    seg_done(&s);
}

/* 5. An unhold releases only what is still its own: not a block whose entry was
 *    reused since the views were made (the owner swept this holder, e.g. its
 *    session closed while views lived on), nor a bit now given to another token. */
static void test_late_unhold_releases_only_its_own(void)
{
    seg_t s;
    if (!seg_init(&s, 8, 4))
        goto done;
    int err;
    ether_arena_reader_t *r5 = ether_arena_reader_open(s.mem, s.size, token_of(5), &err);
    if (!EXPECT(r5 != NULL))
        goto done;
    const uint64_t b5 = 1ull << 5;
    ether_arena_grant_t g, n;
    /* Swept, and the entry reused for bit 5 again: the stale hold does not free it. */
    EXPECT_RC(alloc(&s, 128, 64, b5, &g), ETHER_ARENA_OK);
    EXPECT_RC(ether_arena_acquire(r5, g.block, g.generation, g.offset, 128), ETHER_ARENA_OK);
    ether_arena_clear_bits(s.arena, b5);
    EXPECT_RC(alloc(&s, 128, 64, b5, &n), ETHER_ARENA_OK);
    EXPECT_EQ(n.block, g.block);
    EXPECT_EQ(n.generation, g.generation + 1);
    uint32_t freed = freed_count(&s);
    ether_arena_unhold(r5, g.block, g.generation);
    EXPECT_EQ(bitmap(&s, n.block), b5);
    EXPECT_EQ(freed_count(&s), freed);
    /* Its own hold of the new use does. */
    EXPECT_RC(ether_arena_acquire(r5, n.block, n.generation, n.offset, 128), ETHER_ARENA_OK);
    ether_arena_unhold(r5, n.block, n.generation);
    EXPECT_EQ(bitmap(&s, n.block), 0);
    EXPECT_EQ(freed_count(&s), freed + 1);

    /* Swept while holding the old use, then acquiring the new one: the old hold's
     * unhold neither releases nor keeps the new one; the new hold's releases. */
    EXPECT_RC(alloc(&s, 128, 64, b5, &g), ETHER_ARENA_OK);
    EXPECT_RC(ether_arena_acquire(r5, g.block, g.generation, g.offset, 128), ETHER_ARENA_OK);
    ether_arena_clear_bits(s.arena, b5);
    EXPECT_RC(alloc(&s, 128, 64, b5, &n), ETHER_ARENA_OK);
    EXPECT_EQ(n.block, g.block);
    EXPECT_RC(ether_arena_acquire(r5, n.block, n.generation, n.offset, 128), ETHER_ARENA_OK);
    ether_arena_unhold(r5, g.block, g.generation);
    EXPECT_EQ(bitmap(&s, n.block), b5);
    ether_arena_unhold(r5, n.block, n.generation);
    EXPECT_EQ(bitmap(&s, n.block), 0);
    EXPECT_EQ(live_blocks(&s, NULL), 0);

    /* Bit 5 handed to another member while r5 still holds a view: r5's unhold
     * leaves the bit alone; the new member's own hold releases it. */
    EXPECT_RC(alloc(&s, 128, 64, b5, &g), ETHER_ARENA_OK);
    EXPECT_RC(ether_arena_acquire(r5, g.block, g.generation, g.offset, 128), ETHER_ARENA_OK);
    ether_arena_set_holder(s.arena, 5, 0xA11CEull);
    ether_arena_unhold(r5, g.block, g.generation);
    EXPECT_EQ(bitmap(&s, g.block), b5);
    ether_arena_reader_t *other = ether_arena_reader_open(s.mem, s.size, 0xA11CEull, &err);
    if (EXPECT(other != NULL)) {
        EXPECT_RC(ether_arena_acquire(other, g.block, g.generation, g.offset, 128), ETHER_ARENA_OK);
        ether_arena_unhold(other, g.block, g.generation);
        EXPECT_EQ(bitmap(&s, g.block), 0);
    }
    ether_arena_reader_close(other);
    ether_arena_reader_close(r5);
    EXPECT_EQ(live_blocks(&s, NULL), 0);
done:
    seg_done(&s);
}

/* 6. clear_bits clears a dead holder's bit in every live block, which frees the
 *    blocks it alone held; bits_in_use and live (count and bytes) follow; hold
 *    adds bits to a live block and returns the bitmap before. */
static void test_clear_bits_reclaims_a_dead_holder(void)
{
    seg_t s;
    if (!seg_init(&s, 16, 16))
        goto done;
    const uint64_t b1 = 1ull << 1, b2 = 1ull << 2, b3 = 1ull << 3, b4 = 1ull << 4;
    ether_arena_grant_t g1, g2, g3, g4;
    EXPECT_RC(alloc(&s, 1000, 64, b1 | b2, &g1), ETHER_ARENA_OK);
    EXPECT_RC(alloc(&s, 2000, 64, b2, &g2), ETHER_ARENA_OK);
    EXPECT_RC(alloc(&s, 3000, 64, b3, &g3), ETHER_ARENA_OK);
    EXPECT_RC(alloc(&s, 4000, 64, b2 | b3, &g4), ETHER_ARENA_OK);
    uint64_t bytes = 0;
    EXPECT_EQ(ether_arena_bits_in_use(s.arena), b1 | b2 | b3);
    EXPECT_EQ(live_blocks(&s, &bytes), 4);
    EXPECT_EQ(bytes, 10000);

    ether_arena_clear_bits(s.arena, b2);      /* holder 2 died */
    EXPECT_EQ(bitmap(&s, g1.block), b1);
    EXPECT_EQ(bitmap(&s, g2.block), 0);
    EXPECT_EQ(bitmap(&s, g3.block), b3);
    EXPECT_EQ(bitmap(&s, g4.block), b3);
    EXPECT_EQ(ether_arena_bits_in_use(s.arena), b1 | b3);
    EXPECT_EQ(live_blocks(&s, &bytes), 3);
    EXPECT_EQ(bytes, 8000);
    ether_arena_view_t v2 = view_of(&s, 2);
    EXPECT_RC(ether_arena_check(&v2, g1.block, g1.generation, g1.offset, 1000), ETHER_ARENA_STALE);
    /* Its space is the first gap again. */
    ether_arena_grant_t g5;
    EXPECT_RC(alloc(&s, 2000, 64, b4, &g5), ETHER_ARENA_OK);
    EXPECT_EQ(g5.offset, g2.offset);

    /* hold: a loan published to one more holder. */
    EXPECT_EQ(ether_arena_hold(s.arena, g5.block, b1), b4);
    EXPECT_EQ(bitmap(&s, g5.block), b1 | b4);
    EXPECT_EQ(ether_arena_hold(s.arena, 16, b1), UINT64_MAX);
    EXPECT_EQ(ether_arena_hold(s.arena, UINT32_MAX, b1), UINT64_MAX);

    ether_arena_clear_bits(s.arena, b1 | b3); /* two more died */
    EXPECT_EQ(ether_arena_bits_in_use(s.arena), b4);
    EXPECT_EQ(live_blocks(&s, &bytes), 1);
    EXPECT_EQ(bytes, 2000);
    ether_arena_clear_bits(s.arena, b4);
    EXPECT_EQ(ether_arena_bits_in_use(s.arena), 0);
    EXPECT_EQ(live_blocks(&s, &bytes), 0);
    EXPECT_EQ(bytes, 0);
    ether_arena_grant_t all;
    EXPECT_RC(alloc(&s, 16 * PAGE, 4096, b1, &all), ETHER_ARENA_OK); /* all space is back */
done:
    seg_done(&s);
}

/* 7. ether_arena_wait times out (1) after about its timeout when nobody frees
 *    anything, and returns 0 at once if a block was freed before it was called. */
static void test_wait_times_out_or_returns_at_once(void)
{
    seg_t s;
    if (!seg_init(&s, 4, 1))
        goto done;
    ether_arena_grant_t g, h;
    EXPECT_RC(alloc(&s, PAGE, 64, 1, &g), ETHER_ARENA_OK);
    EXPECT_RC(alloc(&s, 1, 1, 1, &h), ETHER_ARENA_NO_ROOM);
    uint64_t t0 = now_ns();
    EXPECT_EQ(ether_arena_wait(s.arena, 0), 1);
    EXPECT(now_ns() - t0 < 1 * SEC);
    t0 = now_ns();
    EXPECT_EQ(ether_arena_wait(s.arena, 50 * MS), 1);
    uint64_t took = now_ns() - t0;
    EXPECT(took >= 50 * MS);
    EXPECT(took < 5 * SEC);
    EXPECT_EQ(waiting_count(&s), 0);
    /* Freed before the call: found by the re-check, no sleep. */
    EXPECT_EQ(release_bit(&s, 0, g.block), 1);
    t0 = now_ns();
    EXPECT_EQ(ether_arena_wait(s.arena, 10 * SEC), 0);
    EXPECT(now_ns() - t0 < 1 * SEC);
    EXPECT_EQ(waiting_count(&s), 0);
    EXPECT_RC(alloc(&s, 1, 1, 1, &h), ETHER_ARENA_OK);
done:
    seg_done(&s);
}

typedef struct {
    seg_t *seg;
    latch_t *latch;
    pid_t owner_tid;
    bool until_asleep;      /* release only once the owner sleeps in the kernel */
    uint32_t bit, block;
    bool saw_waiter;
    int released;
} releaser_t;

/* The owner announced itself in `waiting` (and, if asked, is asleep in futex_wait). */
static bool owner_waits(void *arg)
{
    releaser_t *r = arg;
    if (waiting_count(r->seg) == 0)
        return false;
    return !r->until_asleep || thread_state(r->owner_tid) == 'S';
}

static void *releaser(void *arg)
{
    releaser_t *r = arg;
    latch_arrive_and_wait(r->latch);
    r->saw_waiter = spin_until(owner_waits, r);
    r->released = release_bit(r->seg, r->bit, r->block);
    return NULL;
}

/* 7. ether_arena_wait returns 0 promptly when another thread frees a block while
 *    the owner waits, whether the owner is still watching the eventcount or asleep
 *    in the kernel. The releaser starts after the owner announced its wait. */
static void wait_wakes_when_a_holder_releases(bool until_asleep)
{
    seg_t s;
    if (!seg_init(&s, 4, 1))
        goto done;
    ether_arena_grant_t g, h;
    EXPECT_RC(alloc(&s, PAGE, 64, 1ull << 9, &g), ETHER_ARENA_OK);
    EXPECT_RC(alloc(&s, 64, 64, 1, &h), ETHER_ARENA_NO_ROOM);
    uint32_t freed = freed_count(&s);
    latch_t latch;
    latch_init(&latch, 2);
    releaser_t r = {.seg = &s, .latch = &latch, .owner_tid = my_tid(), .until_asleep = until_asleep,
                    .bit = 9, .block = g.block};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, releaser, &r) == 0);
    latch_arrive_and_wait(&latch);
    uint64_t t0 = now_ns();
    int rc = ether_arena_wait(s.arena, 10 * SEC);
    uint64_t took = now_ns() - t0;
    pthread_join(thread, NULL);
    EXPECT(r.saw_waiter);
    EXPECT_EQ(r.released, 1);
    EXPECT_EQ(rc, 0);
    EXPECT(took < 5 * SEC);
    EXPECT_EQ(freed_count(&s), freed + 1);
    EXPECT_EQ(waiting_count(&s), 0);
    EXPECT_RC(alloc(&s, 64, 64, 1, &h), ETHER_ARENA_OK);
    EXPECT_EQ(h.offset, 0);
done:
    seg_done(&s);
}

static void test_wait_wakes_when_a_holder_releases(void) { wait_wakes_when_a_holder_releases(false); }
static void test_wait_wakes_from_sleep_when_a_holder_releases(void) { wait_wakes_when_a_holder_releases(true); }

/* ---- concurrent stress ---- */

/*
 * 8. One owner (the test thread) allocates blocks of varied sizes for random
 * subsets of STRESS_READERS reader threads (each one a reader_t of its own bit,
 * as if in its own process), writes a pattern (seq, generation, block, length,
 * then pseudo-random bytes) into each and sends the handle to each holder
 * through a mutex-protected queue. A reader acquires the handle, verifies the
 * pattern, keeps up to STRESS_HELD views alive (verifying again just before each
 * unhold, so an owner that reused a held block would be caught) and lets them all
 * go when its queue runs dry. Every fifth message gets a second view (of a part
 * of the block) that is dropped at once. When the arena is full the owner waits
 * in ether_arena_wait. The owner also checks that no grant overlaps a block whose
 * bitmap is still non-zero. At the end every message was verified by every
 * holder and every block is reclaimed.
 */
#define STRESS_READERS 3
#define STRESS_HELD 6
#define STRESS_BLOCKS 24
#define STRESS_PAGES 64          /* 256 KiB of data: fills up often */
#define QUEUE_CAPACITY 64        /* > STRESS_BLOCKS: a push never finds it full */

static const uint32_t stress_bits[STRESS_READERS] = {3, 17, 63};

typedef struct {
    uint32_t block;
    uint64_t generation, offset, length, seq;
} stress_msg_t;

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    stress_msg_t items[QUEUE_CAPACITY];
    uint32_t head, tail;
    bool closed;
} queue_t;

typedef struct stress_arena stress_arena_t;

typedef struct {
    stress_arena_t *st;
    uint32_t index, bit;
    queue_t queue;
    uint64_t sent;             /* written by the owner; read after join */
    uint64_t verified;         /* written by the reader; read after join */
    uint64_t nested;
} stress_reader_t;

struct stress_arena {
    seg_t seg;
    latch_t latch;
    atomic_int abort;
    stress_reader_t readers[STRESS_READERS];
};

static uint64_t g_stress_waits, g_stress_full;  /* reported in the summary line */

static void queue_init(queue_t *q)
{
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    q->head = q->tail = 0;
    q->closed = false;
}

static void queue_destroy(queue_t *q)
{
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->lock);
}

static bool queue_push(queue_t *q, const stress_msg_t *m)
{
    bool ok;
    pthread_mutex_lock(&q->lock);
    ok = q->tail - q->head < QUEUE_CAPACITY;
    if (ok) {
        q->items[q->tail % QUEUE_CAPACITY] = *m;
        q->tail++;
        pthread_cond_signal(&q->cond);
    }
    pthread_mutex_unlock(&q->lock);
    return ok;
}

static void queue_close(queue_t *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = true;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

/* 1: a message; 0: empty (only if !wait); -1: closed and drained; -2: 20 s without one. */
static int queue_pop(queue_t *q, stress_msg_t *m, bool wait)
{
    int rc;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        if (q->tail != q->head) {
            *m = q->items[q->head % QUEUE_CAPACITY];
            q->head++;
            rc = 1;
            break;
        }
        if (q->closed) {
            rc = -1;
            break;
        }
        if (!wait) {
            rc = 0;
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 20;
        if (pthread_cond_timedwait(&q->cond, &q->lock, &ts) != 0 && q->tail == q->head && !q->closed) {
            rc = -2;
            break;
        }
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

/* Length and alignment of allocation seq: mostly small, one in 16 of 64..96 KiB. */
static uint64_t stress_length(uint64_t seq, uint64_t *alignment)
{
    uint64_t m = mix64(seq ^ 0x5EED5EEDull);
    if ((m & 15) == 0) {
        *alignment = 4096;
        return (64 << 10) + (m >> 8) % (32 << 10);
    }
    *alignment = 64;
    return 24 + (m >> 8) % 3000;
}

static uint64_t stress_holders(uint64_t seq)
{
    uint64_t pick = 1 + (mix64(seq * 7 + 1) >> 20) % ((1u << STRESS_READERS) - 1);
    uint64_t holders = 0;
    for (uint32_t i = 0; i < STRESS_READERS; i++)
        if (pick & (1u << i))
            holders |= 1ull << stress_bits[i];
    return holders;
}

/* [0,8) seq, [8,16) generation, [16,20) block, [20,24) length, then bytes of an LCG. */
static void stress_fill(uint8_t *p, const stress_msg_t *m)
{
    put_u64(p, m->seq);
    put_u64(p + 8, m->generation);
    put_u32(p + 16, m->block);
    put_u32(p + 20, (uint32_t)m->length);
    uint64_t x = mix64(m->seq);
    uint64_t i = 24;
    for (; i + 8 <= m->length; i += 8) {
        put_u64(p + i, x);
        x = x * 6364136223846793005ull + 1442695040888963407ull;
    }
    for (; i < m->length; i++)
        p[i] = (uint8_t)(x >> ((i & 7) * 8));
}

static bool stress_intact(const uint8_t *p, const stress_msg_t *m)
{
    if (get_u64(p) != m->seq || get_u64(p + 8) != m->generation || get_u32(p + 16) != m->block ||
        get_u32(p + 20) != (uint32_t)m->length)
        return false;
    uint64_t x = mix64(m->seq);
    uint64_t i = 24;
    for (; i + 8 <= m->length; i += 8) {
        if (get_u64(p + i) != x)
            return false;
        x = x * 6364136223846793005ull + 1442695040888963407ull;
    }
    for (; i < m->length; i++)
        if (p[i] != (uint8_t)(x >> ((i & 7) * 8)))
            return false;
    return true;
}

static void stress_verify(stress_reader_t *sr, const uint8_t *data, const stress_msg_t *m, const char *when)
{
    if (!stress_intact(data + m->offset, m)) {
        fail_at(__FILE__, __LINE__, "reader %u: block %u gen %" PRIu64 " (seq %" PRIu64
                ", %" PRIu64 " bytes at %" PRIu64 ") corrupted %s", sr->index, m->block,
                m->generation, m->seq, m->length, m->offset, when);
        atomic_store(&sr->st->abort, 1);
    }
}

static void *stress_reader(void *arg)
{
    stress_reader_t *sr = arg;
    stress_arena_t *st = sr->st;
    int err;
    ether_arena_reader_t *r = ether_arena_reader_open(st->seg.mem, st->seg.size, token_of(sr->bit), &err);
    ether_arena_view_t view = view_of(&st->seg, sr->bit);
    const uint8_t *data = st->seg.mem + view.data_offset;
    stress_msg_t held[STRESS_HELD];
    uint32_t nheld = 0;
    latch_arrive_and_wait(&st->latch);
    if (r == NULL) {
        fail_at(__FILE__, __LINE__, "reader %u: open returned %s", sr->index, result_name(err));
        atomic_store(&st->abort, 1);
    }
    for (;;) {
        stress_msg_t m;
        int got = queue_pop(&sr->queue, &m, false);
        if (got == 0) {
            /* Nothing more for now: let every view go (the owner may be waiting). */
            for (uint32_t k = 0; k < nheld; k++) {
                stress_verify(sr, data, &held[k], "before its unhold");
                ether_arena_unhold(r, held[k].block, held[k].generation);
            }
            nheld = 0;
            got = queue_pop(&sr->queue, &m, true);
        }
        if (got == -2) {
            fail_at(__FILE__, __LINE__, "reader %u: no message for 20 s", sr->index);
            atomic_store(&st->abort, 1);
        }
        if (got < 0)
            break;
        if (r == NULL)
            continue;
        int rc = ether_arena_acquire(r, m.block, m.generation, m.offset, m.length);
        if (rc != ETHER_ARENA_OK) {
            fail_at(__FILE__, __LINE__, "reader %u: acquire of block %u gen %" PRIu64 " returned %s",
                    sr->index, m.block, m.generation, result_name(rc));
            atomic_store(&st->abort, 1);
            continue;
        }
        stress_verify(sr, data, &m, "at its acquire");
        if (m.seq % 5 == 0) {
            /* A second view, of a part of the block, dropped at once: the bit stays. */
            rc = ether_arena_acquire(r, m.block, m.generation, m.offset + 8, m.length - 16);
            ether_arena_unhold(r, m.block, m.generation);
            int still = ether_arena_check(&view, m.block, m.generation, m.offset, m.length);
            if (rc != ETHER_ARENA_OK || still != ETHER_ARENA_OK) {
                fail_at(__FILE__, __LINE__, "reader %u: nested view of block %u: %s, then %s",
                        sr->index, m.block, result_name(rc), result_name(still));
                atomic_store(&st->abort, 1);
            }
            sr->nested++;
        }
        if (nheld == STRESS_HELD) {
            stress_verify(sr, data, &held[0], "before its unhold");
            ether_arena_unhold(r, held[0].block, held[0].generation);
            memmove(held, held + 1, (STRESS_HELD - 1) * sizeof held[0]);
            nheld--;
        }
        held[nheld++] = m;
        sr->verified++;
    }
    for (uint32_t k = 0; k < nheld; k++) {
        stress_verify(sr, data, &held[k], "before its unhold");
        ether_arena_unhold(r, held[k].block, held[k].generation);
    }
    ether_arena_reader_close(r);
    return NULL;
}

/* The owner's side, in the test thread. */
static void stress_owner(stress_arena_t *st)
{
    seg_t *s = &st->seg;
    uint8_t *data = s->mem + ether_arena_data_offset(s->arena);
    uint64_t data_size = ether_arena_data_size(s->arena);
    uint64_t start[STRESS_BLOCKS] = {0}, end[STRESS_BLOCKS] = {0};
    latch_arrive_and_wait(&st->latch);
    for (uint64_t seq = 0; seq < g_allocs && !atomic_load(&st->abort); seq++) {
        uint64_t alignment, length = stress_length(seq, &alignment);
        uint64_t holders = stress_holders(seq);
        ether_arena_grant_t g;
        uint64_t since = now_ns();
        int rc;
        while ((rc = ether_arena_alloc(s->arena, length, alignment, holders, &g)) == ETHER_ARENA_NO_ROOM ||
               rc == ETHER_ARENA_NO_ENTRY) {
            g_stress_full++;
            if (atomic_load(&st->abort))
                break;
            if (ether_arena_wait(s->arena, 100 * MS) == 0)
                g_stress_waits++;
            else if (now_ns() - since > 10 * SEC) {
                fail_at(__FILE__, __LINE__, "owner: no room for 10 s at seq %" PRIu64 " (%" PRIu64
                        " bytes)", seq, length);
                atomic_store(&st->abort, 1);
            }
        }
        if (rc != ETHER_ARENA_OK) {
            if (!atomic_load(&st->abort))
                fail_at(__FILE__, __LINE__, "owner: alloc of %" PRIu64 " bytes returned %s", length,
                        result_name(rc));
            atomic_store(&st->abort, 1);
            break;
        }
        if (g.offset % alignment != 0 || g.offset + length > data_size || g.block >= STRESS_BLOCKS) {
            fail_at(__FILE__, __LINE__, "owner: grant block %u at %" PRIu64 " for %" PRIu64
                    " bytes aligned %" PRIu64, g.block, g.offset, length, alignment);
            atomic_store(&st->abort, 1);
            break;
        }
        /* No live block may overlap the new one (a non-zero bitmap is live for sure). */
        for (uint32_t b = 0; b < STRESS_BLOCKS; b++) {
            if (b != g.block && bitmap(s, b) != 0 && start[b] < g.offset + length && g.offset < end[b]) {
                fail_at(__FILE__, __LINE__, "owner: block %u [%" PRIu64 ", %" PRIu64 ") overlaps live "
                        "block %u [%" PRIu64 ", %" PRIu64 ")", g.block, g.offset, g.offset + length,
                        b, start[b], end[b]);
                atomic_store(&st->abort, 1);
            }
        }
        start[g.block] = g.offset;
        end[g.block] = g.offset + length;
        stress_msg_t m = {.block = g.block, .generation = g.generation, .offset = g.offset,
                          .length = length, .seq = seq};
        stress_fill(data + g.offset, &m);
        for (uint32_t i = 0; i < STRESS_READERS; i++) {
            stress_reader_t *sr = &st->readers[i];
            if (!(holders & (1ull << sr->bit)))
                continue;
            if (!queue_push(&sr->queue, &m)) {
                fail_at(__FILE__, __LINE__, "owner: queue of reader %u full", i);
                atomic_store(&st->abort, 1);
                continue;
            }
            sr->sent++;
        }
    }
}

static void test_stress_owner_and_readers(void)
{
    stress_arena_t *st = calloc(1, sizeof(*st));
    CHECK(st != NULL);
    g_stress_waits = g_stress_full = 0;
    if (!seg_init(&st->seg, STRESS_BLOCKS, STRESS_PAGES))
        goto done;
    for (uint32_t i = 0; i < STRESS_READERS; i++) {
        stress_reader_t *sr = &st->readers[i];
        sr->st = st;
        sr->index = i;
        sr->bit = stress_bits[i];
        queue_init(&sr->queue);
        ether_arena_set_holder(st->seg.arena, sr->bit, token_of(sr->bit));
    }
    latch_init(&st->latch, STRESS_READERS + 1);
    pthread_t threads[STRESS_READERS];
    int started = 0;
    for (; started < STRESS_READERS; started++)
        if (!EXPECT(pthread_create(&threads[started], NULL, stress_reader, &st->readers[started]) == 0))
            break;
    if (started < STRESS_READERS) {
        atomic_store(&st->abort, 1);
        atomic_store(&st->latch.remaining, 0);
    }
    stress_owner(st);
    for (uint32_t i = 0; i < STRESS_READERS; i++)
        queue_close(&st->readers[i].queue);
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    if (!failed()) {
        uint64_t total = 0;
        for (uint32_t i = 0; i < STRESS_READERS; i++) {
            EXPECT_EQ(st->readers[i].verified, st->readers[i].sent);
            EXPECT(st->readers[i].sent > 0);
            EXPECT(st->readers[i].nested > 0);
            total += st->readers[i].sent;
        }
        EXPECT(total >= g_allocs); /* every allocation had at least one holder */
        uint64_t bytes = 99;
        EXPECT_EQ(live_blocks(&st->seg, &bytes), 0);
        EXPECT_EQ(bytes, 0);
        EXPECT_EQ(ether_arena_bits_in_use(st->seg.arena), 0);
        EXPECT_EQ(waiting_count(&st->seg), 0);
        for (uint32_t b = 0; b < STRESS_BLOCKS; b++)
            EXPECT_EQ(bitmap(&st->seg, b), 0);
    }
    for (uint32_t i = 0; i < STRESS_READERS; i++)
        queue_destroy(&st->readers[i].queue);
done:
    seg_done(&st->seg);
    free(st);
}

/* ------------------------------------------------------------------ main */

static const test_t tests[] = {
    TEST(test_create_writes_the_header),
    TEST(test_create_refuses_bad_parameters),
    TEST(test_first_fit_in_address_order_and_aligned),
    TEST(test_freed_gap_is_reused_first_with_a_new_generation),
    TEST(test_alloc_refusals),
    TEST(test_check_bounds_and_staleness),
    TEST(test_reader_open_validates_the_header),
    TEST(test_reader_counts_views_and_releases_on_the_last),
    TEST(test_late_unhold_releases_only_its_own),
    TEST(test_clear_bits_reclaims_a_dead_holder),
    TEST(test_wait_times_out_or_returns_at_once),
    TEST(test_wait_wakes_when_a_holder_releases),
    TEST(test_wait_wakes_from_sleep_when_a_holder_releases),
    TEST(test_stress_owner_and_readers),
};

int main(int argc, char **argv)
{
    env_u32("ETHER_TEST_ALLOCS", &g_allocs);
    run_t run = run_tests(tests, TEST_COUNT(tests), argc, argv);
    printf("(stress: %u allocations for %d readers, %" PRIu64 " times full, %" PRIu64
           " waits woken; %.1f s in all)\n", g_allocs, STRESS_READERS, g_stress_full, g_stress_waits,
           run_seconds(&run));
    return finish_tests(&run);
}
