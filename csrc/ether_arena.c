/*
 * ether_arena.c - the owner's allocator and the holders' check/release of the
 * array arena. Protocol and memory order: ether_arena.h; layout: ether_arena_layout.h.
 */
#include "ether_arena.h"
#include "ether_arena_layout.h"
#include "ether_atomic.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* How long the owner watches for a freed block before it sleeps (see ether_arena_wait). */
#define ARENA_SPIN_NS        50000u
#define ARENA_YIELD_AFTER_NS 2000u

struct ether_arena {
    ether_arena_header_t *header;
    uint64_t data_offset;
    uint64_t data_size;
    uint32_t max_blocks;
    uint32_t live;        /* entries of `order` */
    uint32_t free;        /* entries of `spare` */
    uint32_t *order;      /* live blocks, by offset */
    uint32_t *spare;      /* free block numbers (a stack: the last freed on top) */
    uint64_t *start;      /* private copies: a holder cannot move a block; a free */
    uint64_t *end;        /* block keeps its last extent (reused first if it fits) */
    uint64_t *generation;
};

/* How many of the most recently freed blocks an allocation tries before first fit. */
#define ARENA_RECENT 8u

/* The header of a holder's view (its base is the segment's start). */
static inline ether_arena_header_t *header_of(const ether_arena_view_t *v)
{
    return (ether_arena_header_t *)v->base;
}

static uint64_t align_up(uint64_t value, uint64_t alignment)
{
    return (value + alignment - 1) & ~(alignment - 1);
}

/* The end of a block table of max_blocks entries, and where the data area after it starts. */
static uint64_t table_end(uint64_t max_blocks)
{
    return ETHER_ARENA_BLOCKS_AT + (uint64_t)ETHER_ARENA_BLOCK_BYTES * max_blocks;
}

static uint64_t data_offset_for(uint64_t max_blocks) { return align_up(table_end(max_blocks), 4096); }

ether_arena_t *ether_arena_create(void *base, uint64_t size, uint32_t max_blocks, uint64_t owner)
{
    uint64_t data_offset = data_offset_for(max_blocks);
    if (base == NULL || max_blocks == 0 || max_blocks > ETHER_ARENA_MAX_BLOCKS || size < data_offset + 4096)
        return NULL;
    ether_arena_t *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->order = calloc(max_blocks, sizeof *a->order);
    a->spare = calloc(max_blocks, sizeof *a->spare);
    a->start = calloc(max_blocks, sizeof *a->start);
    a->end = calloc(max_blocks, sizeof *a->end);
    a->generation = calloc(max_blocks, sizeof *a->generation);
    if (!a->order || !a->spare || !a->start || !a->end || !a->generation) {
        ether_arena_destroy(a);
        return NULL;
    }
    a->header = base;
    a->data_offset = data_offset;
    a->data_size = size - data_offset;
    a->max_blocks = max_blocks;
    for (uint32_t i = 0; i < max_blocks; i++)
        a->spare[i] = max_blocks - 1 - i;   /* block 0 on top */
    a->free = max_blocks;
    ether_arena_header_t *h = base;
    h->version = ETHER_ARENA_VERSION;
    h->max_blocks = max_blocks;
    h->size = size;
    h->data_offset = data_offset;
    h->owner = owner;
    /* SYNC POINT: release, the magic last; pairs with the acquire load of the
     * magic in validate(), which then reads the fields above. */
    ETHER_STORE_RELEASE(&h->magic, ETHER_ARENA_MAGIC);
    return a;
}

void ether_arena_destroy(ether_arena_t *a)
{
    if (a == NULL)
        return;
    free(a->order);
    free(a->spare);
    free(a->start);
    free(a->end);
    free(a->generation);
    free(a);
}

/* The index in `order` of the first live block starting at or after `offset`. */
static uint32_t lower_bound(const ether_arena_t *a, uint64_t offset)
{
    uint32_t lo = 0, hi = a->live;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (a->start[a->order[mid]] < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* A live block is free again: out of `order`, onto the spare stack. */
static void forget(ether_arena_t *a, uint32_t block)
{
    uint32_t at = lower_bound(a, a->start[block]);
    if (at >= a->live || a->order[at] != block)
        return;  /* not live (cannot happen: each block is freed once per use) */
    memmove(a->order + at, a->order + at + 1, (size_t)(a->live - at - 1) * sizeof *a->order);
    a->live--;
    a->spare[a->free++] = block;
}

/* Take in the blocks that holders announced as freed; returns how many. */
static uint32_t drain(ether_arena_t *a)
{
    /* SYNC POINT: acq_rel exchange; pairs with the holders' fetch_or of the
     * summary in announce(), after their last read of the block. */
    uint64_t summary = ETHER_EXCHANGE(&a->header->summary, 0);
    uint32_t freed = 0;
    while (summary) {
        uint32_t word = (uint32_t)__builtin_ctzll(summary);
        summary &= summary - 1;
        /* SYNC POINT: acq_rel exchange; pairs with announce()'s fetch_or of the word. */
        uint64_t bits = ETHER_EXCHANGE(&a->header->released[word], 0);
        while (bits) {
            uint32_t block = word * 64 + (uint32_t)__builtin_ctzll(bits);
            bits &= bits - 1;
            if (block < a->max_blocks) {
                forget(a, block);
                freed++;
            }
        }
    }
    return freed;
}

/* Tell the owner that `block` is free (its bitmap just became zero). */
static void announce(ether_arena_header_t *h, uint32_t block)
{
    /* SYNC POINT: acq_rel fetch_or, the word before the summary; pairs with the
     * owner's exchanges in drain(), so an owner that sees the summary bit finds
     * the block's bit (and our reads of the block are done). */
    ETHER_FETCH_OR(&h->released[block / 64], 1ULL << (block % 64));
    ETHER_FETCH_OR(&h->summary, 1ULL << (block / 64));
}

/* Is [from, to) clear of live blocks? Sets *at to where a block there goes in `order`. */
static int region_free(const ether_arena_t *a, uint64_t from, uint64_t to, uint32_t *at)
{
    uint32_t i = lower_bound(a, from);
    *at = i;
    if (i < a->live && a->start[a->order[i]] < to)
        return 0;
    return i == 0 || a->end[a->order[i - 1]] <= from;
}

int ether_arena_alloc(ether_arena_t *a, uint64_t length, uint64_t alignment,
                      uint64_t holders, ether_arena_grant_t *out)
{
    if (length == 0)
        length = 1;
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || holders == 0)
        return ETHER_ARENA_OUT_OF_BOUNDS;
    if (length > a->data_size)
        return ETHER_ARENA_TOO_LARGE;
    drain(a);
    uint32_t at = UINT32_MAX, pick = UINT32_MAX;
    uint64_t place = 0;
    /* The most recently freed blocks first, where they were: warm in the cache,
     * and found in O(log live) however full the arena is. */
    for (uint32_t k = 0; k < ARENA_RECENT && k < a->free; k++) {
        uint32_t block = a->spare[a->free - 1 - k], where;
        uint64_t s = align_up(a->start[block], alignment);
        if (a->end[block] > a->start[block] && s >= a->start[block] && s + length <= a->end[block] &&
            region_free(a, s, s + length, &where)) {
            pick = a->free - 1 - k;
            place = s;
            at = where;
            break;
        }
    }
    if (pick == UINT32_MAX) {  /* address-ordered first fit over the gaps */
        uint64_t previous = 0;
        for (uint32_t r = 0; r < a->live && at == UINT32_MAX; r++) {
            uint32_t block = a->order[r];
            uint64_t s = align_up(previous, alignment);
            if (s >= previous && s + length <= a->start[block]) {
                at = r;
                place = s;
            }
            previous = a->end[block];
        }
        if (at == UINT32_MAX) {
            uint64_t s = align_up(previous, alignment);
            if (s < previous || s + length > a->data_size)
                return ETHER_ARENA_NO_ROOM;
            at = a->live;
            place = s;
        }
        if (a->free == 0)
            return ETHER_ARENA_NO_ENTRY;
        pick = a->free - 1;
    }
    uint32_t block = a->spare[pick];
    a->spare[pick] = a->spare[--a->free];  /* the stack's top moves into its place */
    memmove(a->order + at + 1, a->order + at, (size_t)(a->live - at) * sizeof *a->order);
    a->order[at] = block;
    a->live++;
    a->start[block] = place;
    a->end[block] = place + length;
    uint64_t generation = ++a->generation[block];
    ether_arena_block_t *entry = &a->header->blocks[block];
    /* SYNC POINT: relaxed, all three; the release of the bitmap below publishes them. */
    ETHER_STORE_RELAXED(&entry->offset, place);
    ETHER_STORE_RELAXED(&entry->length, length);
    ETHER_STORE_RELAXED(&entry->generation, generation);
    /* SYNC POINT: release; pairs with the holder's acquire load of the bitmap in
     * ether_arena_check: the entry and the caller's earlier writes are visible
     * to a holder that sees its bit (and the ring orders the handle). */
    ETHER_STORE_RELEASE(&entry->bitmap, holders);
    out->block = block;
    out->offset = place;
    out->generation = generation;
    return ETHER_ARENA_OK;
}

uint64_t ether_arena_hold(ether_arena_t *a, uint32_t block, uint64_t bits)
{
    if (block >= a->max_blocks)
        return UINT64_MAX;
    /* SYNC POINT: acq_rel fetch_or; pairs with the holders' fetch_and in
     * ether_arena_release. The bits are set before the handle is sent. */
    return ETHER_FETCH_OR(&a->header->blocks[block].bitmap, bits);
}

uint64_t ether_arena_drop_holders(ether_arena_t *a, uint32_t block, uint64_t bits)
{
    if (block >= a->max_blocks)
        return 0;
    /* SYNC POINT: acq_rel fetch_and; pairs with the holders' fetch_and in
     * ether_arena_release. Exactly one RMW takes a bitmap to zero: if it is
     * this one, the block is ours to take back. */
    uint64_t before = ETHER_FETCH_AND(&a->header->blocks[block].bitmap, ~bits);
    if (before != 0 && (before & ~bits) == 0)
        forget(a, block);
    return before;
}

void ether_arena_clear_bits(ether_arena_t *a, uint64_t mask)
{
    for (uint32_t r = a->live; r-- > 0;) {  /* backwards: forget() moves only later entries */
        uint32_t block = a->order[r];
        /* SYNC POINT: acq_rel fetch_and; as in ether_arena_drop_holders. */
        uint64_t before = ETHER_FETCH_AND(&a->header->blocks[block].bitmap, ~mask);
        if (before != 0 && (before & ~mask) == 0)
            forget(a, block);
    }
}

uint32_t ether_arena_live(ether_arena_t *a, uint64_t *bytes)
{
    drain(a);
    uint64_t total = 0;
    for (uint32_t r = 0; r < a->live; r++)
        total += a->end[a->order[r]] - a->start[a->order[r]];
    if (bytes != NULL)
        *bytes = total;
    return a->live;
}

uint64_t ether_arena_bits_in_use(ether_arena_t *a)
{
    uint64_t bits = 0;
    for (uint32_t r = 0; r < a->live; r++)
        /* SYNC POINT: acquire; pairs with the holders' fetch_and in ether_arena_release. */
        bits |= ETHER_LOAD_ACQUIRE(&a->header->blocks[a->order[r]].bitmap);
    return bits;
}

void ether_arena_set_holder(ether_arena_t *a, uint32_t bit, uint64_t token)
{
    /* SYNC POINT: release, before any bitmap carries the bit; pairs with the
     * acquire loads of the holder table in ether_arena_reader_open and unhold. */
    if (bit < ETHER_ARENA_HOLDERS)
        ETHER_STORE_RELEASE(&a->header->holders[bit], token);
}

int ether_arena_wait(ether_arena_t *a, uint64_t timeout_ns)
{
    _Atomic uint32_t *freed = &a->header->freed;
    _Atomic uint32_t *waiting = &a->header->waiting;
    /* SYNC POINT: Dekker pair with ether_arena_release (seq_cst on both sides):
     * announce the sleeper, then read the eventcount, then re-check the blocks.
     * A release either is seen by the re-check, or changes `freed` after we read
     * it (the futex then returns at once), or sees `waiting` and wakes us. */
    ETHER_FETCH_ADD_SEQ_CST(waiting, 1);
    uint32_t seen = ETHER_LOAD_SEQ_CST(freed);
    int result = ETHER_WAIT_WOKEN;
    if (drain(a) == 0) {
        /* A holder usually lets go within microseconds (it is busy with the
         * previous block): watch the eventcount for a while, yielding the core
         * after the first microseconds, before sleeping in the kernel. */
        uint64_t begin = ether_now_ns(), spin = timeout_ns < ARENA_SPIN_NS ? timeout_ns : ARENA_SPIN_NS;
        for (uint32_t i = 1;; i++) {
            /* SYNC POINT: seq_cst; pairs with the releasing holder's fetch_add of freed. */
            if (ETHER_LOAD_SEQ_CST(freed) != seen)
                break;
            if ((i & 15) == 0) {
                uint64_t elapsed = ether_now_ns() - begin;
                if (elapsed >= timeout_ns) {
                    result = ETHER_WAIT_TIMED_OUT;
                    break;
                }
                if (elapsed >= spin) {
                    result = (int)ether_futex_wait(freed, seen, timeout_ns - elapsed);
                    break;
                }
                if (elapsed >= ARENA_YIELD_AFTER_NS)
                    ether_yield();
            }
            ether_cpu_relax();
        }
    }
    /* SYNC POINT: seq_cst; the sleeper leaves (holders then skip the wake). */
    ETHER_FETCH_SUB_SEQ_CST(waiting, 1);
    return result;
}

uint64_t ether_arena_data_size(const ether_arena_t *a) { return a->data_size; }
uint64_t ether_arena_data_offset(const ether_arena_t *a) { return a->data_offset; }

int ether_arena_check(const ether_arena_view_t *v, uint32_t block, uint64_t generation,
                      uint64_t offset, uint64_t length)
{
    if (block >= v->max_blocks || v->bit >= ETHER_ARENA_HOLDERS ||
        v->data_offset > v->size || offset > v->size - v->data_offset ||
        length > v->size - v->data_offset - offset)
        return ETHER_ARENA_OUT_OF_BOUNDS;
    ether_arena_block_t *entry = &header_of(v)->blocks[block];
    /* SYNC POINT: acquire; pairs with the owner's release of the bitmap, after
     * which the entry's offset, length and generation are those of this use. */
    uint64_t bits = ETHER_LOAD_ACQUIRE(&entry->bitmap);
    uint64_t gen = ETHER_LOAD_ACQUIRE(&entry->generation);
    if (gen != generation || !(bits & (1ULL << v->bit)))
        return ETHER_ARENA_STALE;
    /* The view must lie inside its own block, not merely inside the arena.
     * SYNC POINT: relaxed, both; ordered after the acquire of the bitmap above. */
    uint64_t start = ETHER_LOAD_RELAXED(&entry->offset);
    uint64_t extent = ETHER_LOAD_RELAXED(&entry->length);
    if (length != 0 && (offset < start || offset - start > extent || length > extent - (offset - start)))
        return ETHER_ARENA_OUT_OF_BOUNDS;
    return ETHER_ARENA_OK;
}

int ether_arena_release(const ether_arena_view_t *v, uint32_t block)
{
    if (block >= v->max_blocks || v->bit >= ETHER_ARENA_HOLDERS)
        return ETHER_ARENA_OUT_OF_BOUNDS;
    uint64_t mine = 1ULL << v->bit;
    /* SYNC POINT: acq_rel fetch_and; pairs with the owner's fetch_and/fetch_or and
     * its acquire loads of the bitmap: our reads of the block happen before the
     * owner sees the bit clear. */
    ether_arena_header_t *h = header_of(v);
    uint64_t before = ETHER_FETCH_AND(&h->blocks[block].bitmap, ~mine);
    if (before != mine)
        return 0;
    announce(h, block);
    _Atomic uint32_t *freed = &h->freed;
    _Atomic uint32_t *waiting = &h->waiting;
    /* SYNC POINT: a full barrier (Dekker pair with the owner's waiting++ then
     * re-check): either it sees the freed block, or we see it waiting. */
    ETHER_FETCH_ADD_SEQ_CST(freed, 1);
    if (ETHER_LOAD_SEQ_CST(waiting))
        ether_futex_wake(freed, 0x7fffffff);
    return 1;
}

struct ether_arena_reader {
    ether_arena_view_t view;
    uint64_t token;       /* this process's member token (the holder of view.bit) */
    pthread_mutex_t lock;
    uint32_t *counts;     /* live holds per block in this process */
    uint64_t *generation; /* the generation those holds are of */
    uint32_t *stale;      /* holds of an older generation, whose bit was swept */
};

/* Validate the header of the arena mapped at base and fill the geometry of *out
 * (all but the bit). Each field is read once, then checked: another process
 * may be writing the segment. */
static int validate(const void *base, uint64_t mapped, ether_arena_view_t *out)
{
    if (base == NULL || mapped < ETHER_ARENA_BLOCKS_AT)
        return ETHER_ARENA_BAD_SEGMENT;
    const ether_arena_header_t *h = base;
    /* SYNC POINT: acquire; pairs with the owner's release of the magic in create. */
    if (ETHER_LOAD_ACQUIRE(&h->magic) != ETHER_ARENA_MAGIC)
        return ETHER_ARENA_BAD_SEGMENT;
    uint32_t version = *(const volatile uint32_t *)&h->version;
    uint32_t max_blocks = *(const volatile uint32_t *)&h->max_blocks;
    uint64_t size = *(const volatile uint64_t *)&h->size;
    uint64_t data_offset = *(const volatile uint64_t *)&h->data_offset;
    if (version != ETHER_ARENA_VERSION || max_blocks == 0 || max_blocks > ETHER_ARENA_MAX_BLOCKS ||
        size != mapped || data_offset < table_end(max_blocks) || data_offset > size)
        return ETHER_ARENA_BAD_SEGMENT;
    out->base = (uint8_t *)base;
    out->size = size;
    out->data_offset = data_offset;
    out->max_blocks = max_blocks;
    return ETHER_ARENA_OK;
}

int ether_arena_view_init(ether_arena_view_t *view, void *base, uint64_t mapped, uint32_t bit)
{
    if (view == NULL)
        return ETHER_ARENA_OUT_OF_BOUNDS;
    memset(view, 0, sizeof *view);
    if (bit >= ETHER_ARENA_HOLDERS)
        return ETHER_ARENA_OUT_OF_BOUNDS;
    int rc = validate(base, mapped, view);
    view->bit = bit;
    return rc;
}

uint64_t ether_arena_owner(const void *base, uint64_t mapped)
{
    ether_arena_view_t v;
    if (validate(base, mapped, &v) != ETHER_ARENA_OK)
        return 0;
    return *(const volatile uint64_t *)&((const ether_arena_header_t *)base)->owner;
}

ether_arena_reader_t *ether_arena_reader_open(void *base, uint64_t mapped, uint64_t token, int *error)
{
    ether_arena_view_t view;
    *error = validate(base, mapped, &view);
    if (*error != ETHER_ARENA_OK)
        return NULL;
    ether_arena_header_t *h = base;
    uint32_t max_blocks = view.max_blocks;
    uint32_t bit = ETHER_ARENA_HOLDERS;
    for (uint32_t i = 0; i < ETHER_ARENA_HOLDERS && token != 0; i++)
        /* SYNC POINT: acquire; pairs with the owner's release in ether_arena_set_holder. */
        if (ETHER_LOAD_ACQUIRE(&h->holders[i]) == token) {
            bit = i;
            break;
        }
    if (bit == ETHER_ARENA_HOLDERS) {
        *error = ETHER_ARENA_STALE;
        return NULL;
    }
    ether_arena_reader_t *r = calloc(1, sizeof *r);
    uint32_t *counts = calloc(max_blocks, sizeof *counts);
    uint64_t *generation = calloc(max_blocks, sizeof *generation);
    uint32_t *stale = calloc(max_blocks, sizeof *stale);
    if (r == NULL || counts == NULL || generation == NULL || stale == NULL ||
        pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r);
        free(counts);
        free(generation);
        free(stale);
        *error = ETHER_ARENA_NO_MEMORY;
        return NULL;
    }
    r->token = token;
    r->generation = generation;
    r->stale = stale;
    r->view = view;
    r->view.bit = bit;
    r->counts = counts;
    *error = ETHER_ARENA_OK;
    return r;
}

void ether_arena_reader_close(ether_arena_reader_t *r)
{
    if (r == NULL)
        return;
    pthread_mutex_destroy(&r->lock);
    free(r->counts);
    free(r->generation);
    free(r->stale);
    free(r);
}

uint64_t ether_arena_reader_data_offset(const ether_arena_reader_t *r) { return r->view.data_offset; }

int ether_arena_acquire(ether_arena_reader_t *r, uint32_t block, uint64_t generation,
                        uint64_t offset, uint64_t length)
{
    pthread_mutex_lock(&r->lock);
    int rc = ether_arena_check(&r->view, block, generation, offset, length);
    if (rc == ETHER_ARENA_OK) {
        if (r->counts[block] != 0 && r->generation[block] != generation) {
            /* Our holds of the older use were swept (this process was taken for
             * dead) and the block handed out again: they no longer count. */
            r->stale[block] += r->counts[block];
            r->counts[block] = 0;
        }
        if (r->counts[block] == 0)
            r->generation[block] = generation;
        r->counts[block]++;
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

void ether_arena_unhold(ether_arena_reader_t *r, uint32_t block, uint64_t generation)
{
    if (block >= r->view.max_blocks)
        return;
    pthread_mutex_lock(&r->lock);
    if (generation != r->generation[block] || r->counts[block] == 0) {
        if (r->stale[block] > 0)
            r->stale[block]--;   /* a hold of an older use: nothing of ours to release */
    } else if (--r->counts[block] == 0) {
        /* Release only what is still ours: if the owner swept this process (its
         * session closed while views lived on), the bit or the block may belong
         * to someone else by now. */
        ether_arena_header_t *h = header_of(&r->view);
        /* SYNC POINT: acquire, both; pair with the owner's release in set_holder
         * and its relaxed store of the generation (published by the bitmap). */
        uint64_t owner_of_bit = ETHER_LOAD_ACQUIRE(&h->holders[r->view.bit]);
        uint64_t gen = ETHER_LOAD_ACQUIRE(&h->blocks[block].generation);
        if (owner_of_bit == r->token && gen == r->generation[block])
            ether_arena_release(&r->view, block);
    }
    pthread_mutex_unlock(&r->lock);
}
