/*
 * ether_ring.c - the inbox ring. The layout and the protocol are documented in
 * ether_ring.h; this file keeps to them and asserts every documented offset.
 */
#include "ether_ring.h"
#include "ether_atomic.h"
#include "ether_ring_layout.h"

#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- process-local handle ---- */

struct ether_ring {
    ether_ring_header_t *header;
    ether_ring_slot_t *slots;
    char *data;
    uint64_t capacity;
    uint64_t mask;
    uint64_t commit_key;
    uint32_t max_length;
    uint32_t max_producers;
    /* producer role */
    int32_t slot;           /* -1 when not attached */
    uint64_t token;
    /* loan in progress (producer) */
    bool loaned;
    uint64_t loan_start;    /* claim start (padding included) */
    uint64_t loan_record;   /* record position */
    uint32_t loan_length;
    uint64_t deadline;      /* of the last write that waited for space, else 0 */
    bool resumed;           /* the next write continues the last one's wait (not counted again) */
    /* consumer role: adaptive spin budget */
    uint64_t spin_ns;
    uint64_t spin_min_ns;
    uint64_t spin_max_ns;
};

/* Spin this long with pause alone before yielding the core between polls. */
#define ETHER_RING_PURE_SPIN_NS 2000u

static inline uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

static inline uint64_t record_length(uint32_t length)
{
    return align_up((uint64_t)ETHER_RING_HEADER_LENGTH + length, ETHER_RING_ALIGNMENT);
}

static inline ether_ring_record_header_t *record_at(const ether_ring_t *ring, uint64_t position)
{
    return (ether_ring_record_header_t *)(ring->data + (position & ring->mask));
}

static inline bool is_committed(const ether_ring_t *ring, uint64_t position)
{
    /* SYNC POINT: acquire; pairs with the producer's release store of commit. */
    return ETHER_LOAD_ACQUIRE(&record_at(ring, position)->commit) == (ring->commit_key ^ position);
}

static uint64_t data_offset_for(uint32_t max_producers)
{
    return align_up(ETHER_RING_SLOTS_OFFSET + (uint64_t)ETHER_RING_SLOT_LENGTH * max_producers, 4096);
}

uint64_t ether_ring_segment_size(uint64_t capacity, uint32_t max_producers)
{
    if (capacity < ETHER_RING_MIN_CAPACITY || capacity > ETHER_RING_MAX_CAPACITY ||
        (capacity & (capacity - 1)) != 0 || max_producers == 0 ||
        max_producers > ETHER_RING_MAX_PRODUCERS)
        return 0;
    return data_offset_for(max_producers) + capacity;
}

int ether_ring_init(void *mem, uint64_t mem_length, uint64_t capacity, uint32_t max_length,
                    uint32_t max_producers, uint64_t owner_token, uint64_t commit_key)
{
    uint64_t size = ether_ring_segment_size(capacity, max_producers);
    if (mem == NULL || size == 0 || mem_length < size || max_length == 0 ||
        record_length(max_length) > capacity / 2)
        return ETHER_RING_INVALID;
    memset(mem, 0, (size_t)data_offset_for(max_producers));
    ether_ring_header_t *h = mem;
    ether_ring_slot_t *slots = (ether_ring_slot_t *)((char *)mem + ETHER_RING_SLOTS_OFFSET);
    for (uint32_t i = 0; i < max_producers; i++)
        ETHER_STORE_RELAXED(&slots[i].intent_start, ETHER_RING_NO_INTENT);
    /* Never-written (zero) space must not read as committed: that needs
     * key ^ position != 0 for every first-lap position, so set a bit above them. */
    commit_key |= 1ull << 62;
    h->descriptor.layout_version = ETHER_RING_LAYOUT_VERSION;
    h->descriptor.data_offset = (uint32_t)data_offset_for(max_producers);
    h->descriptor.capacity = capacity;
    h->descriptor.segment_size = size;
    h->descriptor.max_length = max_length;
    h->descriptor.max_producers = max_producers;
    h->descriptor.commit_key = commit_key;
    h->descriptor.owner_token = owner_token;
    /* SYNC POINT: release; the magic is the last descriptor field to appear, and
     * ether_ring_open's acquire load of it pairs with this store. */
    ETHER_STORE_RELEASE(&h->descriptor.magic, ETHER_RING_MAGIC);
    return ETHER_RING_OK;
}

int ether_ring_open(void *mem, uint64_t mem_length, ether_ring_t **out)
{
    if (mem == NULL || out == NULL || mem_length < ETHER_RING_SLOTS_OFFSET)
        return ETHER_RING_INVALID;
    ether_ring_header_t *h = mem;
    /* SYNC POINT: acquire; pairs with the release store of magic in ether_ring_init. */
    uint64_t magic = ETHER_LOAD_ACQUIRE(&h->descriptor.magic);
    const ether_ring_descriptor_t *d = &h->descriptor;
    if (magic != ETHER_RING_MAGIC || d->layout_version != ETHER_RING_LAYOUT_VERSION)
        return ETHER_RING_BAD_LAYOUT;
    uint64_t size = ether_ring_segment_size(d->capacity, d->max_producers);
    if (size == 0 || d->segment_size != size || size > mem_length ||
        d->data_offset != data_offset_for(d->max_producers) || d->max_length == 0 ||
        record_length(d->max_length) > d->capacity / 2)
        return ETHER_RING_BAD_LAYOUT;
    ether_ring_t *ring = calloc(1, sizeof(*ring));
    if (ring == NULL)
        return ETHER_RING_NO_MEMORY;
    ring->header = h;
    ring->slots = (ether_ring_slot_t *)((char *)mem + ETHER_RING_SLOTS_OFFSET);
    ring->data = (char *)mem + d->data_offset;
    ring->capacity = d->capacity;
    ring->mask = d->capacity - 1;
    ring->commit_key = d->commit_key;
    ring->max_length = d->max_length;
    ring->max_producers = d->max_producers;
    ring->slot = -1;
    ring->spin_min_ns = 1000;
    ring->spin_max_ns = 50000;
    ring->spin_ns = 20000;
    *out = ring;
    return ETHER_RING_OK;
}

void ether_ring_free(ether_ring_t *ring) { free(ring); }

uint32_t ether_ring_max_producers(const ether_ring_t *ring) { return ring->max_producers; }

uint32_t ether_ring_slot_pid(const ether_ring_t *ring, uint32_t slot)
{
    /* SYNC POINT: relaxed; pairs with nothing (a label for messages). */
    return slot < ring->max_producers ? ETHER_LOAD_RELAXED(&ring->slots[slot].pid) : 0;
}

uint64_t ether_ring_owner_token(const ether_ring_t *ring) { return ring->header->descriptor.owner_token; }

int ether_ring_slot(const ether_ring_t *ring) { return ring->slot; }

uint64_t ether_ring_slot_token(const ether_ring_t *ring, uint32_t slot)
{
    if (slot >= ring->max_producers)
        return 0;
    /* SYNC POINT: acquire; pairs with the CAS in attach and the release in reap/detach. */
    return ETHER_LOAD_ACQUIRE(&ring->slots[slot].token);
}

/* ---- producer side ---- */

int ether_ring_attach(ether_ring_t *ring, uint64_t token)
{
    if (token == 0 || ring->slot >= 0)
        return ETHER_RING_INVALID;
    for (uint32_t i = 0; i < ring->max_producers; i++) {
        uint64_t expected = 0;
        /* SYNC POINT: acq_rel CAS; pairs with the release store of 0 in detach/reap,
         * so the previous owner's counters were folded in before we reset them. */
        if (ETHER_CAS(&ring->slots[i].token, &expected, token)) {
            ether_ring_slot_t *s = &ring->slots[i];
            ETHER_STORE_RELAXED(&s->intent_start, ETHER_RING_NO_INTENT);
            /* SYNC POINT: relaxed; only ever read for messages. */
            ETHER_STORE_RELAXED(&s->pid, (uint32_t)getpid());
            ETHER_STORE_RELAXED(&s->next_seq, 0);
            ETHER_STORE_RELAXED(&s->sent, 0);
            ETHER_STORE_RELAXED(&s->sent_bytes, 0);
            ETHER_STORE_RELAXED(&s->dropped, 0);
            ETHER_STORE_RELAXED(&s->blocked, 0);
            ring->slot = (int32_t)i;
            ring->token = token;
            return ETHER_RING_OK;
        }
    }
    return ETHER_RING_NO_SLOT;
}

/* Fold a slot's counters into the retired totals and free it. */
static void release_slot(ether_ring_t *ring, ether_ring_slot_t *s)
{
    ether_ring_header_t *h = ring->header;
    ETHER_FETCH_ADD(&h->retired_sent, ETHER_LOAD_RELAXED(&s->sent));
    ETHER_FETCH_ADD(&h->retired_sent_bytes, ETHER_LOAD_RELAXED(&s->sent_bytes));
    ETHER_FETCH_ADD(&h->retired_dropped, ETHER_LOAD_RELAXED(&s->dropped));
    ETHER_FETCH_ADD(&h->retired_blocked, ETHER_LOAD_RELAXED(&s->blocked));
    ETHER_STORE_RELAXED(&s->sent, 0);
    ETHER_STORE_RELAXED(&s->sent_bytes, 0);
    ETHER_STORE_RELAXED(&s->dropped, 0);
    ETHER_STORE_RELAXED(&s->blocked, 0);
    ETHER_STORE_RELAXED(&s->intent_start, ETHER_RING_NO_INTENT);
    /* SYNC POINT: release; pairs with the CAS in attach. */
    ETHER_STORE_RELEASE(&s->token, 0);
}

int ether_ring_detach(ether_ring_t *ring)
{
    if (ring->slot < 0 || ring->loaned)
        return ETHER_RING_INVALID;
    release_slot(ring, &ring->slots[ring->slot]);
    ring->slot = -1;
    ring->token = 0;
    return ETHER_RING_OK;
}

/* The waker's half of both wait/wake pairs: after publishing its change (a
 * commit, or a new head), wake `count` sleepers on `futex` if `waiting` says any. */
static inline void wake_if_waiting(_Atomic uint32_t *waiting, _Atomic uint32_t *futex, int count)
{
    /* SYNC POINT: seq_cst fence; pairs with the sleeper's seq_cst announcement
     * (consumer_waiting store / space_waiters fetch_add) followed by its re-check
     * (Dekker): either we see the sleeper, or it sees our change. */
    ETHER_FENCE_SEQ_CST();
    if (ETHER_LOAD_RELAXED(waiting)) {
        ETHER_FETCH_ADD(futex, 1);
        ether_futex_wake(futex, count);
    }
}

/* Wake the consumer if it sleeps. Called after the last commit of a send. */
static inline void wake_consumer(ether_ring_t *ring)
{
    wake_if_waiting(&ring->header->consumer_waiting, &ring->header->data_futex, 1);
}

/* As wake_consumer, for a caller that has just made the seq_cst fence itself
 * (finish_claim's, which also serves the skip handshake). */
static inline void wake_consumer_fenced(ether_ring_t *ring)
{
    ether_ring_header_t *h = ring->header;
    /* SYNC POINT: relaxed, after the caller's seq_cst fence; pairs with the
     * consumer's seq_cst store of consumer_waiting and its fence (Dekker). */
    if (ETHER_LOAD_RELAXED(&h->consumer_waiting)) {
        ETHER_FETCH_ADD(&h->data_futex, 1);
        ether_futex_wake(&h->data_futex, 1);
    }
}

/* Free bytes as seen from `tail`, refreshing head_cache when the cached view is short. */
static inline uint64_t free_space(ether_ring_t *ring, uint64_t tail, uint64_t want)
{
    ether_ring_header_t *h = ring->header;
    /* SYNC POINT: acquire; pairs with the release store below, which carries the
     * consumer's `released` (acquired by whoever refreshed the cache) to this producer. */
    uint64_t released = ETHER_LOAD_ACQUIRE(&h->head_cache);
    if (ring->capacity - (tail - released) < want || tail - released > ring->capacity) {
        /* SYNC POINT: acquire; pairs with the consumer's release store of released,
         * so the consumer's reads of the space we are about to reuse are finished
         * (and a stalled producer's last writes into a hole, see publish()). */
        released = ETHER_LOAD_ACQUIRE(&h->released);
        ETHER_STORE_RELEASE(&h->head_cache, released);
    }
    if (tail - released > ring->capacity)
        return 0; /* tail raced ahead of our view (or a cover claimed past it) */
    return ring->capacity - (tail - released);
}

/* A claim of `need` bytes from `tail` does not fit: if it would run into the next
 * instance of a hole (cover_at), ask the consumer to cover that instance. Only the
 * slow path calls this; a stale cover_at makes at worst a request the consumer
 * drops (it covers only the instance it publishes) or one made again later. */
__attribute__((noinline, cold))
static void request_cover(ether_ring_t *ring, uint64_t tail, uint64_t need)
{
    ether_ring_header_t *h = ring->header;
    /* SYNC POINT: acquire; pairs with the consumer's release store of cover_at. */
    uint64_t at = ETHER_LOAD_ACQUIRE(&h->cover_at);
    if (at == 0 || tail > at || tail + need <= at)
        return;
    /* SYNC POINT: relaxed; the wake's fence below orders it before our load of
     * consumer_waiting, and the consumer reads it after its own fence (Dekker). */
    ETHER_STORE_RELAXED(&h->cover_wanted, at);
    wake_consumer(ring);
}

/*
 * Wait until `want` bytes could be free, the ring closes, or the deadline passes.
 * Spins briefly, then sleeps on space_futex as a registered space waiter.
 */
static int wait_for_space(ether_ring_t *ring, uint64_t want, uint64_t deadline)
{
    ether_ring_header_t *h = ring->header;
    uint64_t spin_until = ether_now_ns() + 5000;
    for (uint32_t i = 0;; i++) {
        uint64_t tail = ETHER_LOAD_ACQUIRE(&h->tail);
        if (free_space(ring, tail, want) >= want)
            return ETHER_RING_OK;
        if (ETHER_LOAD_RELAXED(&h->closed))
            return ETHER_RING_CLOSED;
        if ((i & 63) == 63 && ether_now_ns() >= spin_until)
            break;
        ether_cpu_relax();
    }
    for (;;) {
        uint64_t now = ether_now_ns();
        if (now >= deadline)
            return ETHER_RING_TIMEOUT;
        /* SYNC POINT: acq_rel RMW (a full barrier); pairs with the consumer's fence
         * between its head store and its load of space_waiters (Dekker). */
        ETHER_FETCH_ADD(&h->space_waiters, 1);
        uint32_t seq = ETHER_LOAD_ACQUIRE(&h->space_futex);
        ETHER_FENCE_SEQ_CST();
        uint64_t tail = ETHER_LOAD_ACQUIRE(&h->tail);
        int result = ETHER_RING_OK;
        if (free_space(ring, tail, want) < want && !ETHER_LOAD_ACQUIRE(&h->closed)) {
            /* After every change the consumer made, ask again for a cover if a
             * hole's instance is what keeps us out. */
            request_cover(ring, tail, want);
            ether_wait_result_t r = ether_futex_wait(&h->space_futex, seq, deadline - now);
            if (r == ETHER_WAIT_INTERRUPTED)
                result = ETHER_RING_INTERRUPTED;
        }
        ETHER_FETCH_SUB(&h->space_waiters, 1);
        if (result != ETHER_RING_OK)
            return result;
        if (ETHER_LOAD_ACQUIRE(&h->closed))
            return ETHER_RING_CLOSED;
        tail = ETHER_LOAD_ACQUIRE(&h->tail);
        if (free_space(ring, tail, want) >= want)
            return ETHER_RING_OK;
    }
}

static inline void set_intent(ether_ring_slot_t *s, uint64_t start, uint64_t end)
{
    /* Invalidate first, so a reader never pairs the old start with the new end. */
    ETHER_STORE_RELAXED(&s->intent_start, ETHER_RING_NO_INTENT);
    ETHER_STORE_RELAXED(&s->intent_end, end);
    /* SYNC POINT: release, then the acq_rel CAS on tail publishes the intent to
     * any consumer that later acquires a tail value at or beyond this claim. */
    ETHER_STORE_RELEASE(&s->intent_start, start);
}

/*
 * Claim space for the records lengths[0..count). Claims as many whole records as
 * fit in one contiguous run (a padding record first if the first one does not fit
 * before the wrap). On OK: *start is the claim start, *records_at the position of
 * the first record, *taken the number of records, and the claim is in the intent.
 */
static int claim(ether_ring_t *ring, const uint32_t *lengths, uint32_t count,
                 uint64_t *start, uint64_t *records_at, uint32_t *taken)
{
    ether_ring_header_t *h = ring->header;
    ether_ring_slot_t *s = &ring->slots[ring->slot];
    uint64_t first = record_length(lengths[0]);
    /* SYNC POINT: acquire; pairs with other producers' CAS on tail. */
    uint64_t tail = ETHER_LOAD_ACQUIRE(&h->tail);
    for (;;) {
        if (ETHER_LOAD_RELAXED(&h->closed)) {
            ETHER_STORE_RELEASE(&s->intent_start, ETHER_RING_NO_INTENT);
            return ETHER_RING_CLOSED;
        }
        uint64_t index = tail & ring->mask;
        uint64_t to_end = ring->capacity - index;
        uint64_t pad = first > to_end ? to_end : 0;
        uint64_t room = free_space(ring, tail, pad + first);
        if (room < pad + first) {
            /* Our tail may be stale (head already past it): look again before refusing. */
            uint64_t current = ETHER_LOAD_ACQUIRE(&h->tail);
            if (current != tail) {
                tail = current;
                continue;
            }
            /* A failed CAS may have left our intent on someone else's claim. */
            ETHER_STORE_RELEASE(&s->intent_start, ETHER_RING_NO_INTENT);
            return ETHER_RING_FULL; /* the caller may ask for a cover (ask_for_cover) */
        }
        /* Records after the first must fit in the same run. */
        uint64_t run = pad ? ring->capacity : to_end;
        uint64_t limit = (room - pad) < run ? (room - pad) : run;
        uint64_t total = first;
        uint32_t n = 1;
        while (n < count) {
            uint64_t next = record_length(lengths[n]);
            if (total + next > limit)
                break;
            total += next;
            n++;
        }
        uint64_t end = tail + pad + total;
        set_intent(s, tail, end);
        /* SYNC POINT: acq_rel CAS; on success pairs with the consumer's acquire
         * load of tail and with other producers' claims. */
        if (ETHER_CAS(&h->tail, &tail, end)) {
            *start = tail;
            *records_at = tail + pad;
            *taken = n;
            return ETHER_RING_OK;
        }
        /* tail now holds the current value; try again from there. */
    }
}

static inline void commit_at(ether_ring_t *ring, uint64_t position)
{
    /* SYNC POINT: release; pairs with the consumer's acquire load in is_committed. */
    ETHER_STORE_RELEASE(&record_at(ring, position)->commit, ring->commit_key ^ position);
}

static inline void write_padding(ether_ring_t *ring, uint64_t start, uint64_t records_at)
{
    if (records_at == start)
        return;
    /* The gap can be as small as ETHER_RING_ALIGNMENT (16 B): touch only the
     * commit, length, type and producer fields, which fit in it. */
    _Static_assert(offsetof(ether_ring_record_header_t, producer) + sizeof(uint16_t) <= ETHER_RING_ALIGNMENT,
                   "a padding header fits in the smallest gap");
    ether_ring_record_header_t *r = record_at(ring, start);
    r->length = 0;
    r->type = ETHER_RING_PADDING;
    r->producer = (uint16_t)ring->slot;
    commit_at(ring, start);
}

/* Fill a record's header (all but the commit word); DATA records take a seq. */
static inline ether_ring_record_header_t *fill_header(ether_ring_t *ring, ether_ring_slot_t *s,
                                                      uint64_t position, uint32_t length, uint16_t type)
{
    ether_ring_record_header_t *r = record_at(ring, position);
    r->length = length;
    r->type = type;
    r->producer = (uint16_t)ring->slot;
    r->seq = 0;
    r->reserved = 0;
    if (type == ETHER_RING_DATA) {
        uint64_t seq = ETHER_LOAD_RELAXED(&s->next_seq);
        r->seq = seq;
        ETHER_STORE_RELAXED(&s->next_seq, seq + 1);
    }
    return r;
}

static inline void write_record(ether_ring_t *ring, ether_ring_slot_t *s, uint64_t position,
                                const char *payload, uint32_t length)
{
    ether_ring_record_header_t *r = fill_header(ring, s, position, length, ETHER_RING_DATA);
    if (length)
        memcpy((char *)r + ETHER_RING_HEADER_LENGTH, payload, length);
    commit_at(ring, position);
}

/* The producer's half of the skip handshake ("Stalled producers" in ether_ring.h),
 * once it has found a proposal or a verdict in its slot's skip word after finishing
 * the claim [start, end). True if the consumer skipped the claim from *q on. Each
 * pass of the loop either decides or finds the consumer's decision, so it ends. */
/* Kept out of line: inlined, it costs the write path registers (measured: +10 ns a
 * write on this machine) for a branch that is almost never taken. */
__attribute__((noinline, cold))
static bool settle_skip(ether_ring_slot_t *s, uint64_t start, uint64_t end, uint64_t w,
                        uint64_t *q)
{
    for (int pass = 0; pass < 4; pass++) {
        uint64_t state = w & ETHER_RING_SKIP_STATE_MASK, at = w & ~(uint64_t)ETHER_RING_SKIP_STATE_MASK;
        if (state == ETHER_RING_SKIP_PROPOSED) {
            /* SYNC POINT: acq_rel CAS; races skip_stalled's CAS from the same
             * proposal to DONE: exactly one wins. On failure w gets its verdict. */
            if (ETHER_CAS(&s->skip, &w, at | ETHER_RING_SKIP_DELIVERED))
                return false;
            continue;
        }
        if (state == ETHER_RING_SKIP_DONE) {
            uint64_t seen = w;
            /* SYNC POINT: acq_rel CAS; acknowledges the verdict (the consumer no longer
             * touches a DONE word; a failure means it has since proposed anew). */
            ETHER_CAS(&s->skip, &seen, 0);
            if (at >= start && at < end) {
                *q = at;
                return true;
            }
            return false; /* about an intent of ours that owned nothing (a lost CAS on tail) */
        }
        return false; /* DELIVERED, or 0: the consumer's to clear */
    }
    return false;
}

/* After the last commit of the claim [start, end): let go of its intent, then look
 * for the consumer's skip proposal. True if the consumer skipped the claim from *q
 * on (records before q were delivered). The seq_cst fence also orders the commits
 * before the caller's check for a sleeping consumer (wake_consumer_fenced). */
static inline bool finish_claim(ether_ring_slot_t *s, uint64_t start, uint64_t end, uint64_t *q)
{
    /* SYNC POINT: release; the claim is committed, so its intent can go. Pairs with
     * the consumer's acquire loads of intent_start (skip_stalled, holes_refresh): the
     * commits and every write into the claim happen before. */
    ETHER_STORE_RELEASE(&s->intent_start, ETHER_RING_NO_INTENT);
    /* SYNC POINT: seq_cst fence; pairs with skip_stalled's fence between its store of
     * a proposal and its load of intent_start (store buffering: at least one of us
     * sees the other's store), and with the sleeping consumer's fence (wake-up). */
    ETHER_FENCE_SEQ_CST();
    /* SYNC POINT: relaxed; ordered after our intent store by the fence above. */
    uint64_t w = ETHER_LOAD_RELAXED(&s->skip);
    if (__builtin_expect(w == 0, 1))
        return false;
    return settle_skip(s, start, end, w, q);
}

/* The consumer skipped a claim of n records starting at `start` from q on: how many
 * were delivered, and take the others' bytes off *bytes. Out of line, so that the
 * write loop keeps its registers. */
__attribute__((noinline, cold))
static uint32_t delivered_before(const ether_ring_t *ring, const uint32_t *lengths, uint32_t n,
                                 uint64_t start, uint64_t q, uint64_t *bytes)
{
    /* As claim() laid it out: a padding record first if the first did not fit. */
    uint64_t to_end = ring->capacity - (start & ring->mask);
    uint64_t first = record_length(lengths[0]) > to_end ? start + to_end : start;
    uint32_t kept = 0;
    for (uint32_t k = 0; k < n; k++) {
        if (first < q)
            kept++;
        else
            *bytes -= lengths[k];
        first += record_length(lengths[k]);
    }
    return kept;
}

static inline uint64_t deadline_after(uint64_t timeout_ns)
{
    uint64_t now = ether_now_ns();
    return timeout_ns > UINT64_MAX - now ? UINT64_MAX : now + timeout_ns;
}

/* Room for a `length`-byte record (and a padding record before it, in the worst
 * case) from the current tail. */
static inline uint64_t room_needed(ether_ring_t *ring, uint32_t length)
{
    uint64_t need = record_length(length);
    uint64_t tail = ETHER_LOAD_RELAXED(&ring->header->tail);
    uint64_t to_end = ring->capacity - (tail & ring->mask);
    return need > to_end ? need + to_end : need;
}

/* A claim for a `length`-byte record found the ring full: if a hole's instance is
 * in the way, ask the consumer to cover it. Out of line: claim() stays a leaf. */
__attribute__((noinline, cold))
static void ask_for_cover(ether_ring_t *ring, uint32_t length)
{
    /* SYNC POINT: acquire; pairs with producers' and covers' CAS on tail. */
    request_cover(ring, ETHER_LOAD_ACQUIRE(&ring->header->tail), room_needed(ring, length));
}

/* A claim for a `length`-byte record found the ring full. Start the wait's clock
 * on the first call (*deadline == 0), counting the send as blocked unless it
 * continues an earlier call's wait (`resumed`), then wait for room for the record
 * and for a padding record before it, in the worst case. */
static int block_for_room(ether_ring_t *ring, ether_ring_slot_t *s, uint32_t length,
                          uint64_t timeout_ns, uint64_t *deadline, bool resumed)
{
    if (*deadline == 0) {
        *deadline = deadline_after(timeout_ns);
        ring->deadline = *deadline;
        if (!resumed)
            ETHER_STORE_RELAXED(&s->blocked, ETHER_LOAD_RELAXED(&s->blocked) + 1);
    }
    return wait_for_space(ring, room_needed(ring, length), *deadline);
}

int ether_ring_write_batch(ether_ring_t *ring, const char *data, const uint32_t *lengths,
                           uint32_t count, uint64_t timeout_ns, uint32_t *written)
{
    *written = 0;
    bool resumed = ring->resumed;
    ring->resumed = false;
    if (ring->slot < 0 || ring->loaned || (count && (data == NULL || lengths == NULL)))
        return ETHER_RING_INVALID;
    for (uint32_t i = 0; i < count; i++)
        if (lengths[i] > ring->max_length)
            return ETHER_RING_TOO_LARGE;
    ether_ring_slot_t *s = &ring->slots[ring->slot];
    uint64_t deadline = 0;
    uint32_t done = 0;
    uint32_t woken = 0;
    uint64_t bytes = 0;
    int result = ETHER_RING_OK;
    ring->deadline = 0;
    while (done < count) {
        uint64_t start, at;
        uint32_t n;
        result = claim(ring, lengths + done, count - done, &start, &at, &n);
        if (result == ETHER_RING_FULL)
            ask_for_cover(ring, lengths[done]);
        if (result == ETHER_RING_FULL && timeout_ns != ETHER_RING_NO_WAIT) {
            if (woken < done) {
                /* The consumer may be asleep with our first records committed:
                 * wake it before we sleep for the space it has to free. */
                wake_consumer(ring);
                woken = done;
            }
            result = block_for_room(ring, s, lengths[done], timeout_ns, &deadline, resumed);
            if (result == ETHER_RING_OK)
                continue;
        }
        if (result != ETHER_RING_OK)
            break;
        write_padding(ring, start, at);
        for (uint32_t k = 0; k < n; k++) {
            uint32_t len = lengths[done + k];
            write_record(ring, s, at, data, len);
            data += len;
            bytes += len;
            at += record_length(len);
        }
        uint64_t q;
        if (__builtin_expect(finish_claim(s, start, at, &q), 0)) {
            done += delivered_before(ring, lengths + done, n, start, q, &bytes);
            result = ETHER_RING_SKIPPED;
            break;
        }
        done += n;
    }
    if (done) {
        ETHER_STORE_RELAXED(&s->sent, ETHER_LOAD_RELAXED(&s->sent) + done);
        ETHER_STORE_RELAXED(&s->sent_bytes, ETHER_LOAD_RELAXED(&s->sent_bytes) + bytes);
        if (woken < done)
            wake_consumer_fenced(ring); /* finish_claim fenced after the last commit */
    }
    if (done < count && result == ETHER_RING_FULL)
        ETHER_STORE_RELAXED(&s->dropped, ETHER_LOAD_RELAXED(&s->dropped) + (count - done));
    *written = done;
    return result;
}

int ether_ring_write(ether_ring_t *ring, const char *data, uint32_t length, uint64_t timeout_ns)
{
    uint32_t written;
    if (length && data == NULL)
        return ETHER_RING_INVALID;
    return ether_ring_write_batch(ring, data ? data : "", &length, 1, timeout_ns, &written);
}

int ether_ring_try_claim(ether_ring_t *ring, uint32_t length, uint64_t timeout_ns,
                         uint64_t *payload_offset)
{
    bool resumed = ring->resumed;
    ring->resumed = false;
    if (ring->slot < 0 || ring->loaned)
        return ETHER_RING_INVALID;
    if (length > ring->max_length)
        return ETHER_RING_TOO_LARGE;
    ether_ring_slot_t *s = &ring->slots[ring->slot];
    uint64_t deadline = 0;
    ring->deadline = 0;
    for (;;) {
        uint64_t start, at;
        uint32_t n;
        int result = claim(ring, &length, 1, &start, &at, &n);
        if (result == ETHER_RING_OK) {
            write_padding(ring, start, at);
            ring->loaned = true;
            ring->loan_start = start;
            ring->loan_record = at;
            ring->loan_length = length;
            *payload_offset = (uint64_t)(ring->data - (char *)ring->header) +
                              (at & ring->mask) + ETHER_RING_HEADER_LENGTH;
            return ETHER_RING_OK;
        }
        if (result == ETHER_RING_FULL)
            ask_for_cover(ring, length);
        if (result != ETHER_RING_FULL || timeout_ns == ETHER_RING_NO_WAIT) {
            if (result == ETHER_RING_FULL)
                ETHER_STORE_RELAXED(&s->dropped, ETHER_LOAD_RELAXED(&s->dropped) + 1);
            return result;
        }
        result = block_for_room(ring, s, length, timeout_ns, &deadline, resumed);
        if (result != ETHER_RING_OK)
            return result;
    }
}

/* Commit the loan as `type`: DATA delivers it, SKIP makes the consumer pass it by. */
static int finish_loan(ether_ring_t *ring, uint16_t type)
{
    if (!ring->loaned)
        return ETHER_RING_INVALID;
    ether_ring_slot_t *s = &ring->slots[ring->slot];
    fill_header(ring, s, ring->loan_record, ring->loan_length, type);
    commit_at(ring, ring->loan_record);
    ring->loaned = false;
    uint64_t q;
    if (finish_claim(s, ring->loan_start, ring->loan_record + record_length(ring->loan_length), &q))
        return type == ETHER_RING_DATA ? ETHER_RING_SKIPPED : ETHER_RING_OK; /* never delivered */
    if (type == ETHER_RING_DATA) {
        ETHER_STORE_RELAXED(&s->sent, ETHER_LOAD_RELAXED(&s->sent) + 1);
        ETHER_STORE_RELAXED(&s->sent_bytes, ETHER_LOAD_RELAXED(&s->sent_bytes) + ring->loan_length);
    }
    wake_consumer_fenced(ring); /* finish_claim fenced after the commit */
    return ETHER_RING_OK;
}

int ether_ring_commit(ether_ring_t *ring) { return finish_loan(ring, ETHER_RING_DATA); }

int ether_ring_abort(ether_ring_t *ring) { return finish_loan(ring, ETHER_RING_SKIP); }

/* ---- consumer side ---- */

static inline void wake_space_waiters(ether_ring_t *ring)
{
    wake_if_waiting(&ring->header->space_waiters, &ring->header->space_futex, 0x7fffffff);
}

/* ---- holes: the space of claims skipped while their producers lived ("Stalled
 * producers" in ether_ring.h). The table is the consumer's: every field is written
 * only here, relaxed; only the owner's slot words are read with acquire. ---- */

__attribute__((noinline, cold))
static void free_hole(ether_ring_t *ring, ether_ring_hole_t *e)
{
    ether_ring_header_t *h = ring->header;
    ETHER_STORE_RELAXED(&e->cover_start, 0);
    ETHER_STORE_RELAXED(&e->cover_end, 0);
    ETHER_STORE_RELAXED(&e->state, ETHER_RING_HOLE_FREE);
    ETHER_STORE_RELAXED(&h->hole_count, ETHER_LOAD_RELAXED(&h->hole_count) - 1);
}

/* End the protection of every hole whose owner has let go of it. */
__attribute__((noinline, cold))
static void holes_refresh(ether_ring_t *ring)
{
    for (uint32_t j = 0; j < ETHER_RING_MAX_HOLES; j++) {
        ether_ring_hole_t *e = &ring->header->holes[j];
        if (ETHER_LOAD_RELAXED(&e->state) != ETHER_RING_HOLE_PROTECTING)
            continue;
        ether_ring_slot_t *s = &ring->slots[ETHER_LOAD_RELAXED(&e->slot)];
        /* SYNC POINT: acquire (both); pairs with the owner's release store of
         * intent_start (finish_claim, set_intent, claim's refusal) or the reaper's
         * release of the slot's token: the owner's last write into the hole happens
         * before, and our release store of `released` (publish) after. */
        if (ETHER_LOAD_ACQUIRE(&s->token) == ETHER_LOAD_RELAXED(&e->token) &&
            ETHER_LOAD_ACQUIRE(&s->intent_start) == ETHER_LOAD_RELAXED(&e->intent))
            continue;
        if (ETHER_LOAD_RELAXED(&e->cover_end))
            ETHER_STORE_RELAXED(&e->state, ETHER_RING_HOLE_DRAINING); /* its cover is still ahead */
        else
            free_hole(ring, e);
    }
}

/* How far producers may reuse space: head, but a lap short of every protected hole's
 * next instance. Publishes that nearest instance as cover_at (0 if none). */
__attribute__((noinline, cold))
static uint64_t holes_released(ether_ring_t *ring, uint64_t head)
{
    ether_ring_header_t *h = ring->header;
    holes_refresh(ring);
    uint64_t released = head, at = 0;
    for (uint32_t j = 0; j < ETHER_RING_MAX_HOLES; j++) {
        ether_ring_hole_t *e = &h->holes[j];
        if (ETHER_LOAD_RELAXED(&e->state) != ETHER_RING_HOLE_PROTECTING)
            continue;
        uint64_t next = ETHER_LOAD_RELAXED(&e->next);
        if (next - ring->capacity < released)
            released = next - ring->capacity;
        if (at == 0 || next < at)
            at = next;
    }
    if (ETHER_LOAD_RELAXED(&h->cover_at) != at)
        /* SYNC POINT: release; pairs with request_cover's acquire load. Stored before
         * the `released` it goes with, so a producer held back by that value sees it. */
        ETHER_STORE_RELEASE(&h->cover_at, at);
    return released;
}

/* If one of our covers starts at head, jump over it (nothing was written there). */
__attribute__((noinline, cold))
static bool pass_cover(ether_ring_t *ring, uint64_t *head)
{
    uint64_t to = 0;
    for (uint32_t j = 0; j < ETHER_RING_MAX_HOLES; j++) {
        ether_ring_hole_t *e = &ring->header->holes[j];
        if (ETHER_LOAD_RELAXED(&e->state) != ETHER_RING_HOLE_FREE &&
            ETHER_LOAD_RELAXED(&e->cover_start) == *head && ETHER_LOAD_RELAXED(&e->cover_end) > *head &&
            ETHER_LOAD_RELAXED(&e->cover_end) > to)
            to = ETHER_LOAD_RELAXED(&e->cover_end);
    }
    if (to == 0)
        return false;
    for (uint32_t j = 0; j < ETHER_RING_MAX_HOLES; j++) {
        ether_ring_hole_t *e = &ring->header->holes[j];
        uint32_t state = ETHER_LOAD_RELAXED(&e->state);
        if (state == ETHER_RING_HOLE_FREE || ETHER_LOAD_RELAXED(&e->cover_start) != *head)
            continue;
        if (state == ETHER_RING_HOLE_DRAINING) {
            free_hole(ring, e);
        } else {
            ETHER_STORE_RELAXED(&e->cover_start, 0);
            ETHER_STORE_RELAXED(&e->cover_end, 0);
        }
    }
    *head = to;
    return true;
}

__attribute__((noinline, cold))
static bool cover_starts_at(ether_ring_t *ring, uint64_t head)
{
    for (uint32_t j = 0; j < ETHER_RING_MAX_HOLES; j++) {
        ether_ring_hole_t *e = &ring->header->holes[j];
        if (ETHER_LOAD_RELAXED(&e->state) != ETHER_RING_HOLE_FREE &&
            ETHER_LOAD_RELAXED(&e->cover_start) == head && ETHER_LOAD_RELAXED(&e->cover_end) > head)
            return true;
    }
    return false;
}

/* A producer could not fit before the nearest hole instance and asked for a cover:
 * claim [tail, the instance's end) with a CAS on tail, writing nothing in it. Other
 * holes' instances that overlap it are covered by the same claim. Any request but
 * one for the instance we publish is stale (already covered, or the hole ended):
 * dropped; a producer still held back asks again after our next change. */
__attribute__((noinline, cold))
static void make_cover(ether_ring_t *ring)
{
    ether_ring_header_t *h = ring->header;
    /* SYNC POINT: relaxed; a cheap look first (the line is written only by requests). */
    if (ETHER_LOAD_RELAXED(&h->cover_wanted) == 0)
        return;
    /* SYNC POINT: acq_rel exchange; takes the request request_cover stored. */
    uint64_t wanted = ETHER_EXCHANGE(&h->cover_wanted, 0);
    /* The nearest instance of any protected hole: the one cover_at publishes. */
    ether_ring_hole_t *nearest = NULL;
    for (uint32_t j = 0; j < ETHER_RING_MAX_HOLES; j++) {
        ether_ring_hole_t *e = &h->holes[j];
        if (ETHER_LOAD_RELAXED(&e->state) == ETHER_RING_HOLE_PROTECTING &&
            (nearest == NULL || ETHER_LOAD_RELAXED(&e->next) < ETHER_LOAD_RELAXED(&nearest->next)))
            nearest = e;
    }
    /* Its hole's last cover must be passed first (until then released <= head keeps
     * producers a lap short of this instance anyway). */
    if (nearest == NULL || ETHER_LOAD_RELAXED(&nearest->next) != wanted ||
        ETHER_LOAD_RELAXED(&nearest->cover_end) != 0)
        return;
    uint64_t to = wanted + (ETHER_LOAD_RELAXED(&nearest->end) - ETHER_LOAD_RELAXED(&nearest->start));
    uint32_t covered = 0; /* bit j: hole j's next instance lies in the cover */
    for (bool grew = true; grew;) {
        grew = false;
        for (uint32_t j = 0; j < ETHER_RING_MAX_HOLES; j++) {
            ether_ring_hole_t *e = &h->holes[j];
            if ((covered >> j) & 1 || ETHER_LOAD_RELAXED(&e->state) != ETHER_RING_HOLE_PROTECTING ||
                ETHER_LOAD_RELAXED(&e->next) >= to)
                continue;
            if (ETHER_LOAD_RELAXED(&e->cover_end) != 0)
                return; /* overlaps a hole whose last cover is still ahead: not yet */
            uint64_t end = ETHER_LOAD_RELAXED(&e->next) + (ETHER_LOAD_RELAXED(&e->end) - ETHER_LOAD_RELAXED(&e->start));
            covered |= 1u << j;
            if (end > to) {
                to = end;
                grew = true;
            }
        }
    }
    /* SYNC POINT: acquire; pairs with producers' CAS on tail. */
    uint64_t tail = ETHER_LOAD_ACQUIRE(&h->tail);
    /* Producers never claim past `wanted` (released stays a lap below it), so the
     * loop ends as soon as they stop racing us; it is bounded all the same. */
    bool claimed = false;
    for (uint32_t attempt = 0; attempt < 1024 && tail <= wanted && !claimed; attempt++)
        /* SYNC POINT: acq_rel CAS; pairs with producers' CAS on tail and their
         * acquire loads of it: the next claim starts past the cover. */
        claimed = ETHER_CAS(&h->tail, &tail, to);
    if (!claimed)
        return;
    for (uint32_t j = 0; j < ETHER_RING_MAX_HOLES; j++) {
        if (!((covered >> j) & 1))
            continue;
        ether_ring_hole_t *e = &h->holes[j];
        ETHER_STORE_RELAXED(&e->cover_start, tail);
        ETHER_STORE_RELAXED(&e->cover_end, to);
        ETHER_STORE_RELAXED(&e->next, ETHER_LOAD_RELAXED(&e->next) + ring->capacity);
    }
}

/* Nothing committed at head and holes about: the end of our cover if one starts
 * here; else a producer may be waiting for one (make it: it may start right here).
 * 0 if head stays. Takes head by value, so that drain's loop keeps it in a register. */
__attribute__((noinline))
static uint64_t holes_at_head(ether_ring_t *ring, uint64_t head)
{
    if (pass_cover(ring, &head))
        return head;
    make_cover(ring);
    return pass_cover(ring, &head) ? head : 0;
}

/* The consumer's read position moved (or a hole may have ended): store head, then
 * `released`, and wake producers waiting for space. */
__attribute__((noinline))
static void publish(ether_ring_t *ring, uint64_t head)
{
    ether_ring_header_t *h = ring->header;
    /* SYNC POINT: release; read by statistics and ether_ring_reap (acquire). */
    ETHER_STORE_RELEASE(&h->head, head);
    uint64_t released = head;
    if (ETHER_LOAD_RELAXED(&h->hole_count))
        released = holes_released(ring, head);
    /* SYNC POINT: release; pairs with producers' acquire load of released in
     * free_space: every read of the space before it is done, and every write of a
     * stalled producer into a hole that ended (holes_refresh), before it is reused. */
    ETHER_STORE_RELEASE(&h->released, released);
    wake_space_waiters(ring);
}

/* How drain() lays payloads out in the caller's buffer. */
typedef enum { LAYOUT_PACKED, LAYOUT_FRAMED } read_layout_t;

/* MessagePack framing of LAYOUT_FRAMED (one array of bin items; see the spec's
 * "array 32" and "bin 32" formats). Always the 32-bit forms: fixed sizes. */
#define MSGPACK_ARRAY32  0xdd  /* then the count, big-endian u32 */
#define MSGPACK_BIN32    0xc6  /* then the length, big-endian u32, then the bytes */
_Static_assert(ETHER_RING_FRAMED_HEAD == 1 + 4 && ETHER_RING_FRAMED_ITEM == 1 + 4, "marker + u32");

static inline void put_be32(char *at, uint32_t v)
{
    at[0] = (char)(v >> 24);
    at[1] = (char)(v >> 16);
    at[2] = (char)(v >> 8);
    at[3] = (char)v;
}

static int drain(ether_ring_t *ring, read_layout_t layout, char *out, uint64_t out_capacity,
                 uint64_t *offsets, uint32_t max_count, uint32_t *count, uint64_t *bytes)
{
    *count = 0;
    *bytes = 0;
    if (ring == NULL || out == NULL || max_count == 0 ||
        (layout == LAYOUT_PACKED && offsets == NULL) ||
        (layout == LAYOUT_FRAMED && out_capacity < ETHER_RING_FRAMED_HEAD))
        return ETHER_RING_INVALID;
    ether_ring_header_t *h = ring->header;
    uint64_t head = ETHER_LOAD_RELAXED(&h->head); /* only this consumer writes it */
    uint64_t start = head;
    uint32_t n = 0;
    uint64_t used = 0, payload_bytes = 0;
    if (layout == LAYOUT_PACKED)
        offsets[0] = 0;
    else
        used = ETHER_RING_FRAMED_HEAD; /* the array header is written once the count is known */
    int result = ETHER_RING_OK;
    while (n < max_count) {
        if (!is_committed(ring, head))
            break; /* (or our cover over a hole's instance: see drain_holes) */
        uint64_t index = head & ring->mask;
        ether_ring_record_header_t *r = record_at(ring, head);
        /* Read each header field once into a local, then check the local. */
        uint16_t type = *(volatile uint16_t *)&r->type;
        if (type == ETHER_RING_PADDING) {
            head += ring->capacity - index;
            continue;
        }
        uint32_t length = *(volatile uint32_t *)&r->length;
        /* Bounds check every value read from shared memory before using it. */
        if ((type != ETHER_RING_DATA && type != ETHER_RING_SKIP) || length > ring->max_length ||
            index + record_length(length) > ring->capacity) {
            result = ETHER_RING_CORRUPT;
            break;
        }
        if (type == ETHER_RING_SKIP) {
            head += record_length(length);
            continue;
        }
        uint32_t framing = layout == LAYOUT_FRAMED ? ETHER_RING_FRAMED_ITEM : 0;
        if (framing + (uint64_t)length > out_capacity - used) { /* used <= out_capacity */
            if (n == 0)
                result = ETHER_RING_INVALID; /* out cannot hold even one record */
            break;
        }
        char *dst = out + used;
        if (layout == LAYOUT_FRAMED) {
            /* The length is the checked local, never a byte of the payload. */
            *dst = (char)MSGPACK_BIN32;
            put_be32(dst + 1, length);
            dst += ETHER_RING_FRAMED_ITEM;
        }
        memcpy(dst, (char *)r + ETHER_RING_HEADER_LENGTH, length);
        used += framing + length;
        payload_bytes += length;
        n++;
        if (layout == LAYOUT_PACKED)
            offsets[n] = used;
        head += record_length(length);
    }
    if (layout == LAYOUT_FRAMED) {
        out[0] = (char)MSGPACK_ARRAY32;
        put_be32(out + 1, n);
    }
    if (head != start) {
        ETHER_STORE_RELAXED(&h->received, ETHER_LOAD_RELAXED(&h->received) + n);
        ETHER_STORE_RELAXED(&h->received_bytes, ETHER_LOAD_RELAXED(&h->received_bytes) + payload_bytes);
        publish(ring, head);
    }
    *count = n;
    *bytes = used;
    if (n || result != ETHER_RING_OK)
        return result;
    /* SYNC POINT: acquire; pairs with producers' CAS on tail. */
    return ETHER_LOAD_ACQUIRE(&h->tail) == head ? ETHER_RING_EMPTY : ETHER_RING_PENDING;
}

/* After a drain, while holes exist (kept out of drain, so that its loop is the same
 * with or without them): if our cover starts where the read stopped, jump it, and
 * read again if nothing was read yet; else make the cover a producer may be waiting
 * for; and publish, since a hole may have ended. Bounded: each pass jumps a cover. */
__attribute__((noinline, cold))
static int drain_holes(ether_ring_t *ring, read_layout_t layout, int result, char *out,
                       uint64_t out_capacity, uint64_t *offsets, uint32_t max_count,
                       uint32_t *count, uint64_t *bytes)
{
    ether_ring_header_t *h = ring->header;
    for (uint32_t pass = 0; pass <= ETHER_RING_MAX_HOLES; pass++) {
        if ((result != ETHER_RING_EMPTY && result != ETHER_RING_PENDING && result != ETHER_RING_OK) ||
            *count >= max_count)
            return result;
        uint64_t head = ETHER_LOAD_RELAXED(&h->head);
        uint64_t jump = holes_at_head(ring, head);
        publish(ring, jump ? jump : head);
        if (jump == 0 || *count)
            return result;
        result = drain(ring, layout, out, out_capacity, offsets, max_count, count, bytes);
    }
    return result;
}

int ether_ring_read(ether_ring_t *ring, char *out, uint64_t out_capacity, uint64_t *offsets,
                    uint32_t max_count, uint32_t *count, uint64_t *bytes)
{
    int result = drain(ring, LAYOUT_PACKED, out, out_capacity, offsets, max_count, count, bytes);
    /* SYNC POINT: relaxed; the consumer's own word. */
    if (__builtin_expect(ETHER_LOAD_RELAXED(&ring->header->hole_count) != 0, 0))
        result = drain_holes(ring, LAYOUT_PACKED, result, out, out_capacity, offsets, max_count,
                             count, bytes);
    return result;
}

int ether_ring_read_framed(ether_ring_t *ring, char *out, uint64_t out_capacity,
                           uint32_t max_count, uint32_t *count, uint64_t *bytes)
{
    int result = drain(ring, LAYOUT_FRAMED, out, out_capacity, NULL, max_count, count, bytes);
    /* SYNC POINT: relaxed; the consumer's own word. */
    if (__builtin_expect(ETHER_LOAD_RELAXED(&ring->header->hole_count) != 0, 0))
        result = drain_holes(ring, LAYOUT_FRAMED, result, out, out_capacity, NULL, max_count,
                             count, bytes);
    return result;
}

/* What the consumer waits for: a committed record at head, or, while holes exist, a
 * producer's request for a cover or our own cover at head. */
static inline bool ready(ether_ring_t *ring, uint64_t head, bool holes)
{
    if (is_committed(ring, head))
        return true;
    /* SYNC POINT: relaxed; a request is seen here after the requester's fence and
     * our own (the consumer_waiting handshake, as for a commit). */
    return holes && (ETHER_LOAD_RELAXED(&ring->header->cover_wanted) != 0 || cover_starts_at(ring, head));
}

int ether_ring_wait(ether_ring_t *ring, uint64_t timeout_ns)
{
    ether_ring_header_t *h = ring->header;
    uint64_t head = ETHER_LOAD_RELAXED(&h->head);
    /* SYNC POINT: relaxed; the consumer's own word. */
    bool holes = ETHER_LOAD_RELAXED(&h->hole_count) != 0;
    if (ready(ring, head, holes))
        return ETHER_RING_OK;
    if (timeout_ns == ETHER_RING_NO_WAIT)
        return ETHER_RING_TIMEOUT;
    uint64_t begin = ether_now_ns();
    uint64_t deadline = timeout_ns > UINT64_MAX - begin ? UINT64_MAX : begin + timeout_ns;
    uint64_t spin_until = begin + (ring->spin_ns < timeout_ns ? ring->spin_ns : timeout_ns);
    uint64_t yield_after = begin + ETHER_RING_PURE_SPIN_NS;
    for (uint32_t i = 1;; i++) {
        if (ready(ring, head, holes)) {
            /* Satisfied while spinning: the budget was worth it. */
            uint64_t grown = ring->spin_ns + ring->spin_ns / 4;
            ring->spin_ns = grown < ring->spin_max_ns ? grown : ring->spin_max_ns;
            return ETHER_RING_OK;
        }
        if ((i & 31) == 0) {
            uint64_t now = ether_now_ns();
            if (now >= spin_until)
                break;
            /* Past the first microseconds, yield between polls: when processes
             * outnumber cores, the producer we wait for may need this core. */
            if (now >= yield_after)
                ether_yield();
        }
        ether_cpu_relax();
    }
    int result;
    for (;;) {
        uint64_t now = ether_now_ns();
        if (now >= deadline) {
            result = ETHER_RING_TIMEOUT;
            break;
        }
        /* SYNC POINT: acquire; pairs with the producer's fetch_add of data_futex. */
        uint32_t seq = ETHER_LOAD_ACQUIRE(&h->data_futex);
        /* SYNC POINT: seq_cst store + fence; pairs with the producer's fence before
         * it loads consumer_waiting (Dekker): one of us sees the other. */
        ETHER_STORE_SEQ_CST(&h->consumer_waiting, 1);
        ETHER_FENCE_SEQ_CST();
        if (ready(ring, head, holes)) {
            ETHER_STORE_RELAXED(&h->consumer_waiting, 0);
            result = ETHER_RING_OK;
            break;
        }
        ether_wait_result_t r = ether_futex_wait(&h->data_futex, seq, deadline - now);
        ETHER_STORE_RELAXED(&h->consumer_waiting, 0);
        if (ready(ring, head, holes)) {
            result = ETHER_RING_OK;
            break;
        }
        if (r == ETHER_WAIT_INTERRUPTED) {
            result = ETHER_RING_INTERRUPTED;
            break;
        }
    }
    /* Slept: spin longer if the data came soon after, shorter if it was idle. */
    uint64_t waited = ether_now_ns() - begin;
    if (result == ETHER_RING_OK && waited < ring->spin_max_ns)
        ring->spin_ns = waited * 2 < ring->spin_max_ns ? waited * 2 : ring->spin_max_ns;
    else
        ring->spin_ns = ring->spin_ns / 2 > ring->spin_min_ns ? ring->spin_ns / 2 : ring->spin_min_ns;
    return result;
}

static inline bool intent_covers(ether_ring_slot_t *s, uint64_t position, uint64_t *start_out,
                                 uint64_t *end)
{
    /* SYNC POINT: acquire; pairs with set_intent's release store of intent_start. */
    uint64_t start = ETHER_LOAD_ACQUIRE(&s->intent_start);
    if (start == ETHER_RING_NO_INTENT || start > position)
        return false;
    /* SYNC POINT: acquire; pairs with set_intent's relaxed store of intent_end
     * (published by its release store of intent_start). */
    uint64_t e = ETHER_LOAD_ACQUIRE(&s->intent_end);
    /* A live owner may be rewriting its intent: re-read start so that start and
     * end belong to the same claim. Dead owners' intents are stable. */
    if (ETHER_LOAD_ACQUIRE(&s->intent_start) != start || e <= position)
        return false;
    *start_out = start;
    *end = e;
    return true;
}

int ether_ring_stalled_slots(ether_ring_t *ring, uint32_t *slots, uint64_t *tokens,
                             uint32_t max_count, uint32_t *count)
{
    ether_ring_header_t *h = ring->header;
    *count = 0;
    uint64_t head = ETHER_LOAD_RELAXED(&h->head);
    /* SYNC POINT: acquire on tail; makes the intents of every claim up to tail visible. */
    if (ETHER_LOAD_ACQUIRE(&h->tail) == head)
        return ETHER_RING_EMPTY;
    if (is_committed(ring, head))
        return ETHER_RING_OK;
    uint32_t n = 0;
    for (uint32_t i = 0; i < ring->max_producers && n < max_count; i++) {
        uint64_t token = ETHER_LOAD_ACQUIRE(&ring->slots[i].token);
        uint64_t start, end;
        if (token != 0 && intent_covers(&ring->slots[i], head, &start, &end)) {
            slots[n] = i;
            tokens[n] = token;
            n++;
        }
    }
    *count = n;
    return ETHER_RING_PENDING;
}

int ether_ring_skip_dead(ether_ring_t *ring, const uint32_t *slots, uint32_t count,
                         uint64_t *skipped_bytes)
{
    ether_ring_header_t *h = ring->header;
    *skipped_bytes = 0;
    uint64_t head = ETHER_LOAD_RELAXED(&h->head);
    /* SYNC POINT: acquire on tail; every claim that ends at or before `tail` has
     * its intent visible below (or has committed, and the re-check sees it). */
    uint64_t tail = ETHER_LOAD_ACQUIRE(&h->tail);
    if (tail == head || is_committed(ring, head))
        return ETHER_RING_INVALID; /* nothing is stalled any more */
    /* A dead producer whose CAS failed may have left an intent that also covers
     * head; taking the nearest end never skips past a live record, and if it
     * lands inside the real owner's claim the next recovery finishes the skip. */
    uint64_t best = UINT64_MAX;
    for (uint32_t k = 0; k < count; k++) {
        uint64_t start, end;
        if (slots[k] < ring->max_producers &&
            intent_covers(&ring->slots[slots[k]], head, &start, &end) && end < best)
            best = end;
    }
    if (best == UINT64_MAX)
        return ETHER_RING_INVALID;
    /* An intent can be a dead producer's stale one (its CAS on tail lost). If any
     * slot not listed as dead covers head, that live producer may own the claim at
     * head: skipping to a dead slot's end could land inside or past its record. */
    for (uint32_t i = 0; i < ring->max_producers; i++) {
        bool listed = false;
        for (uint32_t k = 0; k < count && !listed; k++)
            listed = slots[k] == i;
        uint64_t start, end;
        if (!listed && ETHER_LOAD_ACQUIRE(&ring->slots[i].token) != 0 &&
            intent_covers(&ring->slots[i], head, &start, &end))
            return ETHER_RING_PENDING;
    }
    /* The owner may have committed (then cleared its intent) during the scan. */
    if (is_committed(ring, head))
        return ETHER_RING_INVALID;
    if (best - head > ring->capacity || best > tail)
        return ETHER_RING_CORRUPT;
    ETHER_STORE_RELAXED(&h->skipped_claims, ETHER_LOAD_RELAXED(&h->skipped_claims) + 1);
    ETHER_STORE_RELAXED(&h->skipped_bytes, ETHER_LOAD_RELAXED(&h->skipped_bytes) + (best - head));
    *skipped_bytes = best - head;
    publish(ring, best);
    return ETHER_RING_OK;
}

int ether_ring_skip_stalled(ether_ring_t *ring, uint32_t slot, const uint32_t *dead,
                            uint32_t dead_count, uint64_t *skipped_bytes)
{
    ether_ring_header_t *h = ring->header;
    *skipped_bytes = 0;
    uint64_t head = ETHER_LOAD_RELAXED(&h->head);
    /* SYNC POINT: acquire on tail; the intents of every claim up to it are visible. */
    uint64_t tail = ETHER_LOAD_ACQUIRE(&h->tail);
    if (slot >= ring->max_producers || tail == head || is_committed(ring, head))
        return ETHER_RING_INVALID; /* nothing is stalled any more */
    ether_ring_slot_t *s = &ring->slots[slot];
    /* SYNC POINT: acquire; pairs with the CAS in attach (and reap's). */
    uint64_t token = ETHER_LOAD_ACQUIRE(&s->token);
    uint64_t start, end;
    if (token == 0 || (token & ETHER_RING_REAPING) || !intent_covers(s, head, &start, &end))
        return ETHER_RING_INVALID;
    /* Any other slot covering head that the caller did not find dead may own it. */
    for (uint32_t i = 0; i < ring->max_producers; i++) {
        bool listed = i == slot;
        for (uint32_t k = 0; k < dead_count && !listed; k++)
            listed = dead[k] == i;
        uint64_t other_start, other_end;
        if (!listed && ETHER_LOAD_ACQUIRE(&ring->slots[i].token) != 0 &&
            intent_covers(&ring->slots[i], head, &other_start, &other_end))
            return ETHER_RING_PENDING;
    }
    if (end - head > ring->capacity || end > tail || (head & ETHER_RING_SKIP_STATE_MASK))
        return ETHER_RING_CORRUPT;
    ether_ring_hole_t *e = NULL;
    for (uint32_t j = 0; j < ETHER_RING_MAX_HOLES && e == NULL; j++)
        if (ETHER_LOAD_RELAXED(&h->holes[j].state) == ETHER_RING_HOLE_FREE)
            e = &h->holes[j];
    if (e == NULL)
        return ETHER_RING_PENDING; /* as many holes as the table takes: later */
    /* The handshake with the producer's finish_claim (ether_ring.h, "Stalled
     * producers"): propose, fence, look at its intent, then one CAS decides. */
    uint64_t proposal = head | ETHER_RING_SKIP_PROPOSED;
    /* SYNC POINT: relaxed store, ordered before our load of intent_start by the fence. */
    ETHER_STORE_RELAXED(&s->skip, proposal);
    /* SYNC POINT: seq_cst fence; pairs with finish_claim's fence between its release
     * of intent_start and its load of skip (store buffering). */
    ETHER_FENCE_SEQ_CST();
    /* SYNC POINT: acquire; pairs with finish_claim's release store of intent_start:
     * if we see it, the producer committed everything before. */
    uint64_t now = ETHER_LOAD_ACQUIRE(&s->intent_start);
    uint64_t expected = proposal;
    if (now != start) {
        /* It let go of the claim before our fence: its records are committed (or it
         * never owned them). Take the proposal back, or the DELIVERED it answered. */
        /* SYNC POINT: acq_rel CAS (both); the word is back to idle. */
        if (!ETHER_CAS(&s->skip, &expected, 0))
            ETHER_CAS(&s->skip, &expected, 0);
        return ETHER_RING_INVALID;
    }
    /* SYNC POINT: acq_rel CAS; races finish_claim's CAS from the same proposal to
     * DELIVERED. Losing means it committed everything (its CAS, a release after its
     * commits, is what our failed CAS reads): read on. */
    if (!ETHER_CAS(&s->skip, &expected, head | ETHER_RING_SKIP_DONE)) {
        /* SYNC POINT: acq_rel CAS; clears its DELIVERED. */
        ETHER_CAS(&s->skip, &expected, 0);
        return ETHER_RING_INVALID;
    }
    /* Skipped: [head, end) stays the producer's until it lets go. */
    ETHER_STORE_RELAXED(&e->start, head);
    ETHER_STORE_RELAXED(&e->end, end);
    ETHER_STORE_RELAXED(&e->next, head + ring->capacity);
    ETHER_STORE_RELAXED(&e->intent, start);
    ETHER_STORE_RELAXED(&e->token, token);
    ETHER_STORE_RELAXED(&e->cover_start, 0);
    ETHER_STORE_RELAXED(&e->cover_end, 0);
    ETHER_STORE_RELAXED(&e->slot, slot);
    ETHER_STORE_RELAXED(&e->state, ETHER_RING_HOLE_PROTECTING);
    ETHER_STORE_RELAXED(&h->hole_count, ETHER_LOAD_RELAXED(&h->hole_count) + 1);
    ETHER_STORE_RELAXED(&h->skipped_claims, ETHER_LOAD_RELAXED(&h->skipped_claims) + 1);
    ETHER_STORE_RELAXED(&h->skipped_bytes, ETHER_LOAD_RELAXED(&h->skipped_bytes) + (end - head));
    *skipped_bytes = end - head;
    publish(ring, end);
    return ETHER_RING_OK;
}

int ether_ring_reap(ether_ring_t *ring, uint32_t slot, uint64_t token, uint64_t reaper)
{
    if (slot >= ring->max_producers || token == 0 || reaper == 0 || (reaper & ETHER_RING_REAPING))
        return ETHER_RING_INVALID;
    ether_ring_slot_t *s = &ring->slots[slot];
    if (ETHER_LOAD_ACQUIRE(&s->token) != token)
        return ETHER_RING_INVALID;
    /* A claim at or beyond head must wait until the consumer skips it. */
    uint64_t head = ETHER_LOAD_ACQUIRE(&ring->header->head);
    uint64_t start = ETHER_LOAD_ACQUIRE(&s->intent_start);
    if (start != ETHER_RING_NO_INTENT && ETHER_LOAD_RELAXED(&s->intent_end) > head)
        return ETHER_RING_PENDING;
    uint64_t expected = token;
    /* SYNC POINT: acq_rel CAS; only one reaper wins, then the slot is released.
     * The slot then reads REAPING|reaper, so a second reaper can tell that this
     * one is at work, and take over only if it finds this reaper dead. */
    if (!ETHER_CAS(&s->token, &expected, reaper | ETHER_RING_REAPING))
        return ETHER_RING_INVALID;
    release_slot(ring, s);
    return ETHER_RING_OK;
}

void ether_ring_close(ether_ring_t *ring)
{
    ether_ring_header_t *h = ring->header;
    /* SYNC POINT: release; pairs with producers' loads of closed. */
    ETHER_STORE_RELEASE(&h->closed, 1);
    ETHER_FETCH_ADD(&h->space_futex, 1);
    ether_futex_wake(&h->space_futex, 0x7fffffff);
}

void ether_ring_statistics(const ether_ring_t *ring, ether_ring_stats_t *out)
{
    const ether_ring_header_t *h = ring->header;
    memset(out, 0, sizeof(*out));
    out->capacity = ring->capacity;
    out->max_length = ring->max_length;
    out->head = ETHER_LOAD_ACQUIRE(&h->head);
    out->tail = ETHER_LOAD_ACQUIRE(&h->tail);
    out->released = ETHER_LOAD_ACQUIRE(&h->released);
    out->holes = ETHER_LOAD_RELAXED(&h->hole_count);
    /* What producers cannot use yet; a cover may claim a little past a lap. */
    uint64_t used = out->tail >= out->released ? out->tail - out->released : 0;
    out->used = used < ring->capacity ? used : ring->capacity;
    out->sent = ETHER_LOAD_RELAXED(&h->retired_sent);
    out->sent_bytes = ETHER_LOAD_RELAXED(&h->retired_sent_bytes);
    out->dropped = ETHER_LOAD_RELAXED(&h->retired_dropped);
    out->blocked = ETHER_LOAD_RELAXED(&h->retired_blocked);
    for (uint32_t i = 0; i < ring->max_producers; i++) {
        ether_ring_slot_t *s = &ring->slots[i];
        if (ETHER_LOAD_ACQUIRE(&s->token) == 0)
            continue;
        out->producers++;
        out->sent += ETHER_LOAD_RELAXED(&s->sent);
        out->sent_bytes += ETHER_LOAD_RELAXED(&s->sent_bytes);
        out->dropped += ETHER_LOAD_RELAXED(&s->dropped);
        out->blocked += ETHER_LOAD_RELAXED(&s->blocked);
    }
    out->received = ETHER_LOAD_RELAXED(&h->received);
    out->received_bytes = ETHER_LOAD_RELAXED(&h->received_bytes);
    out->skipped_claims = ETHER_LOAD_RELAXED(&h->skipped_claims);
    out->skipped_bytes = ETHER_LOAD_RELAXED(&h->skipped_bytes);
    out->closed = ETHER_LOAD_RELAXED(&h->closed);
    out->consumer_waiting = ETHER_LOAD_RELAXED(&h->consumer_waiting);
}

void ether_ring_producer_statistics(const ether_ring_t *ring, ether_ring_stats_t *out)
{
    ether_ring_statistics(ring, out);
    out->sent = out->sent_bytes = out->dropped = out->blocked = 0;
    if (ring->slot < 0)
        return;
    ether_ring_slot_t *s = &ring->slots[ring->slot];
    out->sent = ETHER_LOAD_RELAXED(&s->sent);
    out->sent_bytes = ETHER_LOAD_RELAXED(&s->sent_bytes);
    out->dropped = ETHER_LOAD_RELAXED(&s->dropped);
    out->blocked = ETHER_LOAD_RELAXED(&s->blocked);
}

uint64_t ether_ring_wait_deadline(const ether_ring_t *ring) { return ring->deadline; }

void ether_ring_continue_wait(ether_ring_t *ring) { ring->resumed = true; }
