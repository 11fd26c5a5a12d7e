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

/* Free bytes as seen from `tail`, refreshing head_cache when the cached view is short. */
static inline uint64_t free_space(ether_ring_t *ring, uint64_t tail, uint64_t want)
{
    ether_ring_header_t *h = ring->header;
    /* SYNC POINT: acquire; pairs with the release store below, which carries the
     * consumer's head (acquired by whoever refreshed the cache) to this producer. */
    uint64_t head = ETHER_LOAD_ACQUIRE(&h->head_cache);
    if (ring->capacity - (tail - head) < want || tail - head > ring->capacity) {
        /* SYNC POINT: acquire; pairs with the consumer's release store of head, so
         * the consumer's reads of the space we are about to reuse are finished. */
        head = ETHER_LOAD_ACQUIRE(&h->head);
        ETHER_STORE_RELEASE(&h->head_cache, head);
    }
    if (tail - head > ring->capacity)
        return 0; /* tail raced ahead of our view of head; the CAS will fail anyway */
    return ring->capacity - (tail - head);
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
            return ETHER_RING_FULL;
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

static inline uint64_t deadline_after(uint64_t timeout_ns)
{
    uint64_t now = ether_now_ns();
    return timeout_ns > UINT64_MAX - now ? UINT64_MAX : now + timeout_ns;
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
    uint64_t need = record_length(length);
    uint64_t tail = ETHER_LOAD_RELAXED(&ring->header->tail);
    uint64_t to_end = ring->capacity - (tail & ring->mask);
    if (need > to_end)
        need += to_end;
    return wait_for_space(ring, need, *deadline);
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
        /* SYNC POINT: release; the claim is fully committed, so its intent can go. */
        ETHER_STORE_RELEASE(&s->intent_start, ETHER_RING_NO_INTENT);
        done += n;
    }
    if (done) {
        ETHER_STORE_RELAXED(&s->sent, ETHER_LOAD_RELAXED(&s->sent) + done);
        ETHER_STORE_RELAXED(&s->sent_bytes, ETHER_LOAD_RELAXED(&s->sent_bytes) + bytes);
        if (woken < done)
            wake_consumer(ring);
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
    /* SYNC POINT: release; the claim is committed, so its intent can go. */
    ETHER_STORE_RELEASE(&s->intent_start, ETHER_RING_NO_INTENT);
    if (type == ETHER_RING_DATA) {
        ETHER_STORE_RELAXED(&s->sent, ETHER_LOAD_RELAXED(&s->sent) + 1);
        ETHER_STORE_RELAXED(&s->sent_bytes, ETHER_LOAD_RELAXED(&s->sent_bytes) + ring->loan_length);
    }
    ring->loaned = false;
    wake_consumer(ring);
    return ETHER_RING_OK;
}

int ether_ring_commit(ether_ring_t *ring) { return finish_loan(ring, ETHER_RING_DATA); }

int ether_ring_abort(ether_ring_t *ring) { return finish_loan(ring, ETHER_RING_SKIP); }

/* ---- consumer side ---- */

static inline void wake_space_waiters(ether_ring_t *ring)
{
    wake_if_waiting(&ring->header->space_waiters, &ring->header->space_futex, 0x7fffffff);
}

static inline void publish_head(ether_ring_t *ring, uint64_t head)
{
    /* SYNC POINT: release; pairs with producers' acquire load of head in free_space:
     * every read of the space before `head` is done before it can be reused. */
    ETHER_STORE_RELEASE(&ring->header->head, head);
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
            break;
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
        publish_head(ring, head);
    }
    *count = n;
    *bytes = used;
    if (n || result != ETHER_RING_OK)
        return result;
    /* SYNC POINT: acquire; pairs with producers' CAS on tail. */
    return ETHER_LOAD_ACQUIRE(&h->tail) == head ? ETHER_RING_EMPTY : ETHER_RING_PENDING;
}

int ether_ring_read(ether_ring_t *ring, char *out, uint64_t out_capacity, uint64_t *offsets,
                    uint32_t max_count, uint32_t *count, uint64_t *bytes)
{
    return drain(ring, LAYOUT_PACKED, out, out_capacity, offsets, max_count, count, bytes);
}

int ether_ring_read_framed(ether_ring_t *ring, char *out, uint64_t out_capacity,
                           uint32_t max_count, uint32_t *count, uint64_t *bytes)
{
    return drain(ring, LAYOUT_FRAMED, out, out_capacity, NULL, max_count, count, bytes);
}

int ether_ring_wait(ether_ring_t *ring, uint64_t timeout_ns)
{
    ether_ring_header_t *h = ring->header;
    uint64_t head = ETHER_LOAD_RELAXED(&h->head);
    if (is_committed(ring, head))
        return ETHER_RING_OK;
    if (timeout_ns == ETHER_RING_NO_WAIT)
        return ETHER_RING_TIMEOUT;
    uint64_t begin = ether_now_ns();
    uint64_t deadline = timeout_ns > UINT64_MAX - begin ? UINT64_MAX : begin + timeout_ns;
    uint64_t spin_until = begin + (ring->spin_ns < timeout_ns ? ring->spin_ns : timeout_ns);
    uint64_t yield_after = begin + ETHER_RING_PURE_SPIN_NS;
    for (uint32_t i = 1;; i++) {
        if (is_committed(ring, head)) {
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
        if (is_committed(ring, head)) {
            ETHER_STORE_RELAXED(&h->consumer_waiting, 0);
            result = ETHER_RING_OK;
            break;
        }
        ether_wait_result_t r = ether_futex_wait(&h->data_futex, seq, deadline - now);
        ETHER_STORE_RELAXED(&h->consumer_waiting, 0);
        if (is_committed(ring, head)) {
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

static inline bool intent_covers(ether_ring_slot_t *s, uint64_t position, uint64_t *end)
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
        uint64_t end;
        if (token != 0 && intent_covers(&ring->slots[i], head, &end)) {
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
        uint64_t end;
        if (slots[k] < ring->max_producers && intent_covers(&ring->slots[slots[k]], head, &end) &&
            end < best)
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
        uint64_t end;
        if (!listed && ETHER_LOAD_ACQUIRE(&ring->slots[i].token) != 0 &&
            intent_covers(&ring->slots[i], head, &end))
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
    publish_head(ring, best);
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
    out->used = out->tail >= out->head ? out->tail - out->head : 0;
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
