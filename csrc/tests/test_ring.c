/*
 * test_ring.c - C-level tests of the inbox ring (ether_ring.h), in one process.
 *
 * The "segment" is an aligned_alloc'd, zeroed buffer followed by a guard area
 * that must stay untouched: every test checks that no write left the segment.
 * Roles: one consumer handle per ring, one handle per producer (distinct tokens).
 *
 * Usage:  test_ring [substring ...]     run the tests whose name contains one of them
 * Env:    ETHER_TEST_RECORDS=M          records per producer in the stress tests
 *                                       (default 200000; the sanitizer targets lower it)
 *
 * Prints one line per test and a final "N passed, M failed"; exits 1 on any failure.
 * No test sleeps: threads meet on latches (atomic counter + spin) and on observable
 * ring state (statistics, and the waiting thread's state in /proc).
 */
#define _GNU_SOURCE
#include "../ether_ring.h"

#include "harness.h"

#include <pthread.h>

/* ------------------------------------------------ harness (ring part; the rest: harness.h) */

/* ether_ring_read reports cumulative offsets; most tests think in lengths. */
static int read_lengths(ether_ring_t *ring, char *out, uint64_t out_capacity, uint32_t *lengths,
                        uint32_t max_count, uint32_t *count, uint64_t *bytes)
{
    uint64_t offsets[257];
    if (max_count > 256)
        max_count = 256;
    int rc = ether_ring_read(ring, out, out_capacity, offsets, max_count, count, bytes);
    for (uint32_t k = 0; k < *count; k++)
        lengths[k] = (uint32_t)(offsets[k + 1] - offsets[k]);
    return rc;
}

static uint32_t get_be32(const char *at)
{
    const unsigned char *u = (const unsigned char *)at;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

/* Parse what ether_ring_read_framed wrote: exactly one MessagePack array32 of
 * `count` bin32 items filling `bytes`. Points items[k] at payload k, sets
 * lengths[k]; false if the framing is anything else. */
static bool parse_framed(const char *out, uint64_t bytes, uint32_t count, const char **items,
                         uint32_t *lengths)
{
    if (bytes < 5 || (unsigned char)out[0] != 0xdd || get_be32(out + 1) != count)
        return false;
    uint64_t at = 5;
    for (uint32_t k = 0; k < count; k++) {
        if (bytes - at < 5 || (unsigned char)out[at] != 0xc6)
            return false;
        lengths[k] = get_be32(out + at + 1);
        items[k] = out + at + 5;
        at += 5;
        if (lengths[k] > bytes - at)
            return false;
        at += lengths[k];
    }
    return at == bytes;
}

/* A call that returns an ether_ring_result_t. */
#define CHECK_RC(call, want) CHECK_EQ_NAMED(call, want)
#define CHECK_EQ_NAMED(call, want) \
    do { int rc_ = (call); \
         if (rc_ != (int)(want)) { \
             fail_at(__FILE__, __LINE__, "%s returned %s, expected %s", #call, \
                     result_name(rc_), result_name((int)(want))); \
             return; } } while (0)
#define EXPECT_RC(call, want) \
    do { int rc_ = (call); \
         if (rc_ != (int)(want)) \
             fail_at(__FILE__, __LINE__, "%s returned %s, expected %s", #call, \
                     result_name(rc_), result_name((int)(want))); } while (0)

static const char *result_name(int rc)
{
    static const char *names[] = {"OK", "EMPTY", "PENDING", "FULL", "TIMEOUT", "INTERRUPTED",
                                  "TOO_LARGE", "CLOSED", "NO_SLOT", "BAD_LAYOUT", "CORRUPT",
                                  "INVALID", "NO_MEMORY", "SKIPPED"};
    if (rc >= 0 && rc < (int)(sizeof(names) / sizeof(names[0])))
        return names[rc];
    return "?";
}

#define WRITE_TIMEOUT (10 * SEC)

static uint32_t g_records = 200000; /* per producer, stress tests */

/* ------------------------------------------------------------------ helpers */

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32_of(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint32_t c = 0xFFFFFFFFu;
    while (n--)
        c = crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

/* Deterministic payload bytes for record `seq` of producer `id`, for simple tests. */
static void fill_pattern(char *p, uint32_t length, uint32_t id, uint64_t seq)
{
    for (uint32_t i = 0; i < length; i++)
        p[i] = (char)(mix64(((uint64_t)id << 48) ^ (seq << 16) ^ i) & 0xFF);
}

static bool matches_pattern(const char *p, uint32_t length, uint32_t id, uint64_t seq)
{
    for (uint32_t i = 0; i < length; i++)
        if (p[i] != (char)(mix64(((uint64_t)id << 48) ^ (seq << 16) ^ i) & 0xFF))
            return false;
    return true;
}

static uint64_t record_bytes(uint32_t length) { return (32u + length + 15u) & ~15ull; }

/* ------------------------------------------------------------------ segments */

#define GUARD_BYTES 4096u
#define GUARD_BYTE 0xA5
#define COMMIT_KEY 0x9E3779B97F4A7C15ull
#define OWNER_TOKEN 0x0E1E0E1Eull

typedef struct {
    char *mem;
    uint64_t size;          /* segment size; the guard follows */
    ether_ring_t *consumer;
} seg_t;

static bool seg_init(seg_t *s, uint64_t capacity, uint32_t max_length, uint32_t max_producers)
{
    memset(s, 0, sizeof(*s));
    s->size = ether_ring_segment_size(capacity, max_producers);
    if (!EXPECT(s->size != 0))
        return false;
    s->mem = aligned_alloc(64, (size_t)(s->size + GUARD_BYTES));
    if (!EXPECT(s->mem != NULL))
        return false;
    memset(s->mem, 0, (size_t)s->size);
    memset(s->mem + s->size, GUARD_BYTE, GUARD_BYTES);
    int rc = ether_ring_init(s->mem, s->size, capacity, max_length, max_producers, OWNER_TOKEN,
                             COMMIT_KEY);
    if (!EXPECT_EQ(rc, ETHER_RING_OK))
        return false;
    rc = ether_ring_open(s->mem, s->size, &s->consumer);
    return EXPECT_EQ(rc, ETHER_RING_OK);
}

/* Check that nothing was written past the segment, then free everything. */
static void seg_done(seg_t *s)
{
    if (s->mem) {
        for (uint32_t i = 0; i < GUARD_BYTES; i++) {
            if ((unsigned char)s->mem[s->size + i] != GUARD_BYTE) {
                fail_at(__FILE__, __LINE__,
                        "write past the end of the segment: guard byte %u (segment offset %" PRIu64
                        ") was changed", i, s->size + i);
                break;
            }
        }
    }
    ether_ring_free(s->consumer);
    free(s->mem);
    memset(s, 0, sizeof(*s));
}

/* A new handle on the segment, attached as a producer with `token`. */
static ether_ring_t *producer(seg_t *s, uint64_t token)
{
    ether_ring_t *p = NULL;
    if (!EXPECT_EQ(ether_ring_open(s->mem, s->size, &p), ETHER_RING_OK))
        return NULL;
    if (!EXPECT_EQ(ether_ring_attach(p, token), ETHER_RING_OK)) {
        ether_ring_free(p);
        return NULL;
    }
    return p;
}

static void release_producer(ether_ring_t *p)
{
    if (p) {
        EXPECT_RC(ether_ring_detach(p), ETHER_RING_OK);
        ether_ring_free(p);
    }
}

static ether_ring_stats_t stats_of(ether_ring_t *r)
{
    ether_ring_stats_t st;
    ether_ring_statistics(r, &st);
    return st;
}

/* Write one pattern record (NO_WAIT) and return the result. */
static int put(ether_ring_t *p, uint32_t id, uint64_t seq, uint32_t length)
{
    char buf[70000];
    fill_pattern(buf, length, id, seq);
    return ether_ring_write(p, buf, length, ETHER_RING_NO_WAIT);
}

/* Read exactly one record and check it is pattern (id, seq) of `length` bytes. */
static bool take(seg_t *s, uint32_t id, uint64_t seq, uint32_t length)
{
    static char out[70000];
    uint32_t lengths[1], count = 0;
    uint64_t bytes = 0;
    int rc = read_lengths(s->consumer, out, sizeof(out), lengths, 1, &count, &bytes);
    if (!EXPECT_EQ(rc, ETHER_RING_OK) || !EXPECT_EQ(count, 1))
        return false;
    return EXPECT_EQ(lengths[0], length) && EXPECT_EQ(bytes, length) &&
           EXPECT(matches_pattern(out, length, id, seq));
}

static int read_result(seg_t *s)
{
    char out[64];
    uint32_t lengths[1], count = 99;
    uint64_t bytes = 99;
    int rc = read_lengths(s->consumer, out, sizeof(out), lengths, 1, &count, &bytes);
    if (rc != ETHER_RING_OK) {
        EXPECT_EQ(count, 0);
        EXPECT_EQ(bytes, 0);
    }
    return rc;
}

/* ------------------------------------------------------------------ tests */

static void test_init_and_open_validate_parameters(void)
{
    CHECK_EQ(ether_ring_segment_size(4096, 4), 4096 + 4096);
    CHECK_EQ(ether_ring_segment_size(4096, 64), 12288 + 4096); /* 1024 + 128*64 -> 12288 */
    CHECK_EQ(ether_ring_segment_size(4095, 4), 0);             /* not a power of two */
    CHECK_EQ(ether_ring_segment_size(2048, 4), 0);             /* below the minimum */
    CHECK_EQ(ether_ring_segment_size(4096, 0), 0);
    CHECK_EQ(ether_ring_segment_size(4096, ETHER_RING_MAX_PRODUCERS + 1), 0);

    uint64_t size = ether_ring_segment_size(4096, 4);
    char *mem = aligned_alloc(64, size);
    CHECK(mem != NULL);
    memset(mem, 0, size);
    ether_ring_t *r = NULL;
    EXPECT_RC(ether_ring_open(mem, size, &r), ETHER_RING_BAD_LAYOUT); /* never initialised */
    /* The largest record must fit in half the capacity: 32 + 2016 = 2048. */
    EXPECT_RC(ether_ring_init(mem, size, 4096, 2017, 4, 1, COMMIT_KEY), ETHER_RING_INVALID);
    EXPECT_RC(ether_ring_init(mem, size, 4096, 0, 4, 1, COMMIT_KEY), ETHER_RING_INVALID);
    EXPECT_RC(ether_ring_init(mem, size - 1, 4096, 100, 4, 1, COMMIT_KEY), ETHER_RING_INVALID);
    EXPECT_RC(ether_ring_init(mem, size, 4096, 2016, 4, 1, COMMIT_KEY), ETHER_RING_OK);
    EXPECT_RC(ether_ring_open(mem, size - 1, &r), ETHER_RING_BAD_LAYOUT); /* mapping too short */
    EXPECT_RC(ether_ring_open(mem, size, &r), ETHER_RING_OK);
    if (r) {
        EXPECT_EQ(ether_ring_max_producers(r), 4);
        EXPECT_EQ(ether_ring_slot(r), -1);
        ether_ring_stats_t st = stats_of(r);
        EXPECT_EQ(st.capacity, 4096);
        EXPECT_EQ(st.max_length, 2016);
        EXPECT_EQ(st.used, 0);
        ether_ring_free(r);
    }
    free(mem);
}

static void test_attach_takes_distinct_slots_until_none_left(void)
{
    seg_t s;
    if (!seg_init(&s, 4096, 256, 2))
        goto done;
    ether_ring_t *a = producer(&s, 11), *b = producer(&s, 22), *c = NULL;
    EXPECT(a && b);
    if (a && b) {
        EXPECT(ether_ring_slot(a) != ether_ring_slot(b));
        EXPECT_EQ(ether_ring_slot_token(s.consumer, (uint32_t)ether_ring_slot(a)), 11);
        EXPECT_EQ(ether_ring_slot_token(s.consumer, (uint32_t)ether_ring_slot(b)), 22);
        EXPECT_RC(ether_ring_attach(a, 33), ETHER_RING_INVALID); /* already attached */
        EXPECT_RC(ether_ring_open(s.mem, s.size, &c), ETHER_RING_OK);
        EXPECT_RC(ether_ring_attach(c, 0), ETHER_RING_INVALID);  /* token 0 means free */
        EXPECT_RC(ether_ring_attach(c, 33), ETHER_RING_NO_SLOT);
        EXPECT_RC(ether_ring_write(c, "x", 1, ETHER_RING_NO_WAIT), ETHER_RING_INVALID);
        /* Detaching folds the counters into the totals and frees the slot. */
        EXPECT_RC(put(a, 1, 0, 10), ETHER_RING_OK);
        int slot_a = ether_ring_slot(a);
        release_producer(a);
        a = NULL;
        EXPECT_EQ(ether_ring_slot_token(s.consumer, (uint32_t)slot_a), 0);
        ether_ring_stats_t st = stats_of(s.consumer);
        EXPECT_EQ(st.producers, 1);
        EXPECT_EQ(st.sent, 1);
        EXPECT_EQ(st.sent_bytes, 10);
        EXPECT_RC(ether_ring_attach(c, 33), ETHER_RING_OK);
        EXPECT_EQ(ether_ring_slot(c), slot_a);
        EXPECT(take(&s, 1, 0, 10));
    }
    release_producer(a);
    release_producer(b);
    if (c && ether_ring_slot(c) >= 0)
        EXPECT_RC(ether_ring_detach(c), ETHER_RING_OK);
    ether_ring_free(c);
done:
    seg_done(&s);
}

static void test_reads_records_in_exact_order(void)
{
    seg_t s;
    if (!seg_init(&s, 65536, 1024, 4))
        goto done;
    ether_ring_t *p = producer(&s, 7);
    if (!p)
        goto done;
    enum { N = 120 };
    uint32_t want_len[N];
    uint64_t total = 0;
    for (uint32_t i = 0; i < N; i++) {
        want_len[i] = (i * 37u) % 300u;  /* includes zero-length records */
        total += want_len[i];
        EXPECT_RC(put(p, 7, i, want_len[i]), ETHER_RING_OK);
    }
    /* Read in uneven batches; payloads come out end to end, in order. */
    char out[8192];
    uint32_t lengths[7], next = 0;
    while (next < N && !failed()) {
        uint32_t count = 0;
        uint64_t bytes = 0;
        uint32_t max = 1 + next % 7;
        int rc = read_lengths(s.consumer, out, sizeof(out), lengths, max, &count, &bytes);
        if (!EXPECT_EQ(rc, ETHER_RING_OK) || !EXPECT(count >= 1 && count <= max))
            break;
        uint64_t at = 0;
        for (uint32_t k = 0; k < count; k++, next++) {
            EXPECT_EQ(lengths[k], want_len[next]);
            EXPECT(matches_pattern(out + at, lengths[k], 7, next));
            at += lengths[k];
        }
        EXPECT_EQ(bytes, at);
    }
    EXPECT_EQ(next, N);
    EXPECT_RC(read_result(&s), ETHER_RING_EMPTY);
    ether_ring_stats_t st = stats_of(s.consumer);
    EXPECT_EQ(st.sent, N);
    EXPECT_EQ(st.sent_bytes, total);
    EXPECT_EQ(st.received, N);
    EXPECT_EQ(st.received_bytes, total);
    EXPECT_EQ(st.used, 0);
    EXPECT_EQ(st.head, st.tail);
    release_producer(p);
done:
    seg_done(&s);
}

static void test_read_stops_at_a_record_that_does_not_fit_the_output(void)
{
    seg_t s;
    if (!seg_init(&s, 4096, 512, 2))
        goto done;
    ether_ring_t *p = producer(&s, 1);
    if (!p)
        goto done;
    EXPECT_RC(put(p, 1, 0, 40), ETHER_RING_OK);
    EXPECT_RC(put(p, 1, 1, 40), ETHER_RING_OK);
    char out[60];
    uint32_t lengths[4], count = 0;
    uint64_t bytes = 0;
    /* The second record does not fit in what is left: only the first is taken. */
    EXPECT_RC(read_lengths(s.consumer, out, sizeof(out), lengths, 4, &count, &bytes),
              ETHER_RING_OK);
    EXPECT_EQ(count, 1);
    EXPECT(matches_pattern(out, 40, 1, 0));
    /* An output that cannot hold even one record is refused; nothing is consumed. */
    EXPECT_RC(read_lengths(s.consumer, out, 39, lengths, 4, &count, &bytes), ETHER_RING_INVALID);
    EXPECT_EQ(count, 0);
    EXPECT(take(&s, 1, 1, 40));
    release_producer(p);
done:
    seg_done(&s);
}

/* ether_ring_read_framed hands Python one MessagePack array of bin32 items, never
 * a format that runs code: the count and every length come from the checked
 * record headers, so a payload made of framing bytes stays payload. */
static void test_framed_read_is_a_msgpack_array_of_bin32(void)
{
    seg_t s;
    if (!seg_init(&s, 1 << 18, 70000, 2))
        goto done;
    ether_ring_t *p = producer(&s, 3);
    if (!p)
        goto done;
    static const uint32_t sizes[] = {0, 1, 255, 256, 65535, 65536, 70000, 0, 7};
    enum { N = sizeof sizes / sizeof sizes[0] };
    static char framing[70000];
    memset(framing, 0xc6, sizeof framing);  /* bin32 markers... */
    framing[1] = (char)0xdd;                /* ...and an array32 one */
    uint64_t payload = 0;
    for (uint32_t i = 0; i < N; i++) {
        if (i == N - 1)
            EXPECT_RC(ether_ring_write(p, framing, sizes[i], ETHER_RING_NO_WAIT), ETHER_RING_OK);
        else
            EXPECT_RC(put(p, 3, i, sizes[i]), ETHER_RING_OK);
        payload += sizes[i];
    }
    static char out[5 + N * 5 + 300000];
    const char *items[N];
    uint32_t lengths[N], count = 0;
    uint64_t bytes = 0;
    CHECK_RC(ether_ring_read_framed(s.consumer, out, sizeof out, 64, &count, &bytes), ETHER_RING_OK);
    CHECK_EQ(count, N);
    EXPECT_EQ(bytes, 5 + 5 * N + payload);
    CHECK(parse_framed(out, bytes, count, items, lengths));
    for (uint32_t i = 0; i < N; i++) {
        EXPECT_EQ(lengths[i], sizes[i]);
        if (i == N - 1)
            EXPECT(memcmp(items[i], framing, sizes[i]) == 0);
        else
            EXPECT(matches_pattern(items[i], lengths[i], 3, i));
    }
    /* The exact bytes of the first items: dd 00000009, c6 00000000, c6 00000001 <1 byte>. */
    EXPECT(memcmp(out, "\xdd\x00\x00\x00\x09\xc6\x00\x00\x00\x00\xc6\x00\x00\x00\x01", 15) == 0);
    EXPECT(memcmp(out + 16, "\xc6\x00\x00\x00\xff", 5) == 0);
    /* Nothing left: an empty array, count 0. */
    count = 99;
    EXPECT_RC(ether_ring_read_framed(s.consumer, out, sizeof out, 64, &count, &bytes), ETHER_RING_EMPTY);
    EXPECT_EQ(count, 0);
    EXPECT_EQ(bytes, 5);
    EXPECT(memcmp(out, "\xdd\x00\x00\x00\x00", 5) == 0);
    ether_ring_stats_t st = stats_of(s.consumer);
    EXPECT_EQ(st.received, N);
    EXPECT_EQ(st.received_bytes, payload); /* framing is not counted */
    release_producer(p);
done:
    seg_done(&s);
}

/* The framing counts against the output: a record is taken only if its 5-byte
 * header and its payload fit after the 5-byte array header. */
static void test_framed_read_stops_at_a_record_whose_framing_does_not_fit(void)
{
    seg_t s;
    if (!seg_init(&s, 4096, 512, 2))
        goto done;
    ether_ring_t *p = producer(&s, 1);
    if (!p)
        goto done;
    EXPECT_RC(put(p, 1, 0, 40), ETHER_RING_OK);
    EXPECT_RC(put(p, 1, 1, 40), ETHER_RING_OK);
    char out[5 + 45 + 44];
    const char *items[2];
    uint32_t lengths[2], count = 0;
    uint64_t bytes = 0;
    /* One byte short of the second record: only the first is taken. */
    EXPECT_RC(ether_ring_read_framed(s.consumer, out, sizeof out, 4, &count, &bytes), ETHER_RING_OK);
    EXPECT_EQ(count, 1);
    EXPECT_EQ(bytes, 50);
    EXPECT(parse_framed(out, bytes, count, items, lengths) && lengths[0] == 40 &&
           matches_pattern(items[0], 40, 1, 0));
    /* Outputs that cannot hold the array header, or one record: refused, nothing consumed. */
    EXPECT_RC(ether_ring_read_framed(s.consumer, out, 49, 4, &count, &bytes), ETHER_RING_INVALID);
    EXPECT_EQ(count, 0);
    EXPECT_RC(ether_ring_read_framed(s.consumer, out, 4, 4, &count, &bytes), ETHER_RING_INVALID);
    EXPECT_RC(ether_ring_read_framed(s.consumer, out, sizeof out, 0, &count, &bytes), ETHER_RING_INVALID);
    EXPECT_RC(ether_ring_read_framed(s.consumer, NULL, sizeof out, 4, &count, &bytes), ETHER_RING_INVALID);
    EXPECT_RC(ether_ring_read_framed(s.consumer, out, 50, 4, &count, &bytes), ETHER_RING_OK);
    EXPECT(count == 1 && parse_framed(out, bytes, count, items, lengths) &&
           matches_pattern(items[0], 40, 1, 1));
    EXPECT_RC(read_result(&s), ETHER_RING_EMPTY);
    release_producer(p);
done:
    seg_done(&s);
}

static void test_rejects_write_when_full(void)
{
    seg_t s;
    if (!seg_init(&s, 4096, 1000, 2))
        goto done;
    ether_ring_t *p = producer(&s, 1);
    if (!p)
        goto done;
    /* 100-byte payloads take 144 bytes: 28 fit in 4096 (64 bytes left over). */
    uint32_t fitted = 0;
    while (put(p, 1, fitted, 100) == ETHER_RING_OK && fitted < 1000)
        fitted++;
    EXPECT_EQ(fitted, 4096 / record_bytes(100));
    EXPECT_RC(put(p, 1, fitted, 100), ETHER_RING_FULL);
    EXPECT_RC(put(p, 1, fitted, 40), ETHER_RING_FULL); /* 80 B: 64 B padding + 80 > 64 free */
    EXPECT_RC(put(p, 1, fitted, 0), ETHER_RING_OK);    /* 32 B still fit before the wrap */
    ether_ring_stats_t own;
    ether_ring_producer_statistics(p, &own);
    EXPECT_EQ(own.sent, fitted + 1);
    EXPECT_EQ(own.dropped, 3); /* the loop's failed attempt and the two above */
    EXPECT_EQ(own.used, fitted * record_bytes(100) + record_bytes(0));
    /* A record longer than max_length is refused outright, full or not. */
    char big[1001] = {0};
    EXPECT_RC(ether_ring_write(p, big, 1001, ETHER_RING_NO_WAIT), ETHER_RING_TOO_LARGE);
    /* Reading one frees 144 bytes: exactly 32 of padding and one more 144-byte record. */
    EXPECT(take(&s, 1, 0, 100));
    EXPECT_RC(put(p, 1, fitted + 1, 100), ETHER_RING_OK);
    EXPECT_EQ(stats_of(s.consumer).used, 4096);
    EXPECT_RC(put(p, 1, fitted + 2, 0), ETHER_RING_FULL);
    for (uint32_t i = 1; i < fitted && !failed(); i++)
        EXPECT(take(&s, 1, i, 100));
    EXPECT(take(&s, 1, fitted, 0));
    EXPECT(take(&s, 1, fitted + 1, 100));
    EXPECT_RC(read_result(&s), ETHER_RING_EMPTY);
    release_producer(p);
done:
    seg_done(&s);
}

static void test_pads_at_wrap(void)
{
    seg_t s;
    if (!seg_init(&s, 4096, 1000, 2))
        goto done;
    ether_ring_t *p = producer(&s, 1);
    if (!p)
        goto done;
    /* 27 records of 144 bytes end at 3888: 208 bytes before the wrap. */
    for (uint32_t i = 0; i < 27; i++)
        EXPECT_RC(put(p, 1, i, 100), ETHER_RING_OK);
    for (uint32_t i = 0; i < 27; i++)
        EXPECT(take(&s, 1, i, 100));
    ether_ring_stats_t st = stats_of(s.consumer);
    CHECK_EQ(st.head, 3888);
    /* A 232-byte record does not fit in 208: padding fills them, the record starts the lap. */
    EXPECT_RC(put(p, 1, 27, 200), ETHER_RING_OK);
    st = stats_of(s.consumer);
    EXPECT_EQ(st.tail, 4096 + record_bytes(200));
    EXPECT(take(&s, 1, 27, 200));  /* the padding is never delivered */
    EXPECT_RC(read_result(&s), ETHER_RING_EMPTY);
    st = stats_of(s.consumer);
    EXPECT_EQ(st.head, 4096 + record_bytes(200));
    EXPECT_EQ(st.received, 28);
    /* A record that fits exactly up to the wrap needs no padding: 26 x 144 bytes
     * from index 240 end at 3984, and a 112-byte record (80 of payload) ends at 8192. */
    CHECK_EQ(st.head & 4095, 240);
    for (uint32_t i = 0; i < 26; i++)
        EXPECT_RC(put(p, 1, 28 + i, 100), ETHER_RING_OK);
    EXPECT_RC(put(p, 1, 54, 80), ETHER_RING_OK);
    st = stats_of(s.consumer);
    EXPECT_EQ(st.tail, 8192);
    EXPECT_RC(put(p, 1, 55, 0), ETHER_RING_OK); /* starts the next lap at index 0 */
    EXPECT_EQ(stats_of(s.consumer).tail, 8192 + 32);
    for (uint32_t i = 0; i < 26; i++)
        EXPECT(take(&s, 1, 28 + i, 100));
    EXPECT(take(&s, 1, 54, 80));
    EXPECT(take(&s, 1, 55, 0));
    EXPECT_EQ(stats_of(s.consumer).head, 8192 + 32);
    release_producer(p);
done:
    seg_done(&s);
}

/* The smallest gap a wrap can leave is 16 bytes (records are 16-aligned, headers
 * 32 bytes): the padding record there must not write past the data area. */
static void test_pads_a_16_byte_gap_at_wrap_within_the_segment(void)
{
    seg_t s;
    if (!seg_init(&s, 4096, 1000, 2))
        goto done;
    ether_ring_t *p = producer(&s, 1);
    if (!p)
        goto done;
    /* 85 records of 48 bytes end at 4080: 16 bytes before the wrap. */
    for (uint32_t i = 0; i < 85; i++)
        EXPECT_RC(put(p, 1, i, 16), ETHER_RING_OK);
    for (uint32_t i = 0; i < 85; i++)
        EXPECT(take(&s, 1, i, 16));
    ether_ring_stats_t st = stats_of(s.consumer);
    CHECK_EQ(st.tail, 4080);
    EXPECT_RC(put(p, 1, 85, 16), ETHER_RING_OK);
    st = stats_of(s.consumer);
    EXPECT_EQ(st.tail, 4096 + 48);
    EXPECT(take(&s, 1, 85, 16));
    EXPECT_RC(read_result(&s), ETHER_RING_EMPTY);
    release_producer(p);
done:
    seg_done(&s); /* fails if the padding header spilled into the guard */
}

static void test_largest_record_fits(void)
{
    seg_t s;
    if (!seg_init(&s, 4096, 2016, 2)) /* record_length(2016) == 2048 == capacity / 2 */
        goto done;
    ether_ring_t *p = producer(&s, 1);
    if (!p)
        goto done;
    /* Two largest records fill the ring exactly; a third does not fit. */
    EXPECT_RC(put(p, 1, 0, 2016), ETHER_RING_OK);
    EXPECT_RC(put(p, 1, 1, 2016), ETHER_RING_OK);
    EXPECT_RC(put(p, 1, 2, 0), ETHER_RING_FULL);
    EXPECT(take(&s, 1, 0, 2016));
    EXPECT(take(&s, 1, 1, 2016));
    EXPECT_RC(put(p, 1, 2, 2017), ETHER_RING_TOO_LARGE);
    /* Behind records of every small size, so the largest one lands at every offset
     * (and often needs a padding record first). */
    uint64_t seq = 2;
    for (uint32_t small = 0; small < 200 && !failed(); small += 3) {
        EXPECT_RC(put(p, 1, seq, small), ETHER_RING_OK);
        EXPECT_RC(put(p, 1, seq + 1, 2016), ETHER_RING_OK);
        EXPECT(take(&s, 1, seq, small));
        EXPECT(take(&s, 1, seq + 1, 2016));
        seq += 2;
    }
    /* And through a loan. */
    uint64_t offset = 0;
    EXPECT_RC(ether_ring_try_claim(p, 2016, ETHER_RING_NO_WAIT, &offset), ETHER_RING_OK);
    fill_pattern(s.mem + offset, 2016, 1, seq);
    EXPECT_RC(ether_ring_commit(p), ETHER_RING_OK);
    EXPECT(take(&s, 1, seq, 2016));
    EXPECT_RC(read_result(&s), ETHER_RING_EMPTY);
    release_producer(p);
done:
    seg_done(&s);
}

static void test_batch_write_partial_when_full(void)
{
    seg_t s;
    if (!seg_init(&s, 4096, 1000, 2))
        goto done;
    ether_ring_t *p = producer(&s, 1);
    if (!p)
        goto done;
    enum { N = 40 };
    static char data[N * 100];
    uint32_t lengths[N];
    for (uint32_t i = 0; i < N; i++) {
        lengths[i] = 100;
        fill_pattern(data + i * 100, 100, 1, i);
    }
    uint32_t written = 99;
    /* 28 records of 144 bytes fit; the rest are refused, in order. */
    EXPECT_RC(ether_ring_write_batch(p, data, lengths, N, ETHER_RING_NO_WAIT, &written),
              ETHER_RING_FULL);
    EXPECT_EQ(written, 28);
    ether_ring_stats_t own;
    ether_ring_producer_statistics(p, &own);
    EXPECT_EQ(own.sent, 28);
    EXPECT_EQ(own.dropped, N - 28);
    for (uint32_t i = 0; i < written && !failed(); i++)
        EXPECT(take(&s, 1, i, 100));
    /* The rest go in now, across the wrap (padding, then a second run). */
    uint32_t rest = 0;
    EXPECT_RC(ether_ring_write_batch(p, data + 28 * 100, lengths + 28, N - 28, ETHER_RING_NO_WAIT,
                                     &rest), ETHER_RING_OK);
    EXPECT_EQ(rest, N - 28);
    for (uint32_t i = 28; i < N && !failed(); i++)
        EXPECT(take(&s, 1, i, 100));
    EXPECT_RC(read_result(&s), ETHER_RING_EMPTY);
    /* A batch holding a record above max_length is refused whole. */
    uint32_t bad[2] = {10, 1001};
    written = 99;
    EXPECT_RC(ether_ring_write_batch(p, data, bad, 2, ETHER_RING_NO_WAIT, &written),
              ETHER_RING_TOO_LARGE);
    EXPECT_EQ(written, 0);
    EXPECT_RC(read_result(&s), ETHER_RING_EMPTY);
    release_producer(p);
done:
    seg_done(&s);
}

static void test_loan_claim_commit(void)
{
    seg_t s;
    if (!seg_init(&s, 4096, 1000, 2))
        goto done;
    ether_ring_t *p = producer(&s, 1);
    if (!p)
        goto done;
    uint64_t offset = 0;
    EXPECT_RC(ether_ring_commit(p), ETHER_RING_INVALID); /* nothing loaned */
    EXPECT_RC(ether_ring_try_claim(p, 1001, ETHER_RING_NO_WAIT, &offset), ETHER_RING_TOO_LARGE);
    for (uint64_t seq = 0; seq < 60 && !failed(); seq++) { /* several laps, with padding */
        uint32_t len = (uint32_t)(seq * 53 % 400);
        CHECK_RC(ether_ring_try_claim(p, len, ETHER_RING_NO_WAIT, &offset), ETHER_RING_OK);
        /* The payload lies in the data area, past the slots, inside the segment. */
        EXPECT(offset >= 4096 + 32 && offset + len <= s.size);
        /* While loaned, the handle may not write, claim again or detach. */
        EXPECT_RC(ether_ring_try_claim(p, 1, ETHER_RING_NO_WAIT, &offset), ETHER_RING_INVALID);
        EXPECT_RC(ether_ring_write(p, "x", 1, ETHER_RING_NO_WAIT), ETHER_RING_INVALID);
        EXPECT_RC(ether_ring_detach(p), ETHER_RING_INVALID);
        fill_pattern(s.mem + offset, len, 1, seq);
        EXPECT_RC(read_result(&s), ETHER_RING_PENDING); /* claimed, not committed */
        CHECK_RC(ether_ring_commit(p), ETHER_RING_OK);
        EXPECT_RC(ether_ring_commit(p), ETHER_RING_INVALID); /* only once */
        EXPECT(take(&s, 1, seq, len));
    }
    ether_ring_stats_t own;
    ether_ring_producer_statistics(p, &own);
    EXPECT_EQ(own.sent, 60);
    EXPECT_RC(read_result(&s), ETHER_RING_EMPTY);
    release_producer(p);
done:
    seg_done(&s);
}

static void test_loan_abort_is_skipped_by_the_consumer(void)
{
    seg_t s;
    if (!seg_init(&s, 4096, 1000, 2))
        goto done;
    ether_ring_t *p = producer(&s, 1);
    if (!p)
        goto done;
    EXPECT_RC(ether_ring_abort(p), ETHER_RING_INVALID); /* nothing loaned */
    uint64_t seq = 0;
    for (uint32_t round = 0; round < 40 && !failed(); round++) { /* several laps */
        uint32_t len = round * 97 % 600;
        uint64_t offset = 0;
        CHECK_RC(ether_ring_try_claim(p, len, ETHER_RING_NO_WAIT, &offset), ETHER_RING_OK);
        memset(s.mem + offset, 0x5C, len);
        EXPECT_RC(read_result(&s), ETHER_RING_PENDING);
        CHECK_RC(ether_ring_abort(p), ETHER_RING_OK);
        EXPECT_RC(ether_ring_commit(p), ETHER_RING_INVALID); /* the loan is gone */
        EXPECT_RC(put(p, 1, seq, 30), ETHER_RING_OK);         /* the handle writes again */
        EXPECT(take(&s, 1, seq, 30));                         /* the aborted claim never shows */
        seq++;
        EXPECT_RC(read_result(&s), ETHER_RING_EMPTY);
    }
    ether_ring_stats_t st = stats_of(s.consumer);
    EXPECT_EQ(st.received, seq);
    EXPECT_EQ(st.sent, seq);
    EXPECT_EQ(st.skipped_claims, 0);
    EXPECT_EQ(st.head, st.tail);
    release_producer(p);
done:
    seg_done(&s);
}

static void test_never_reads_a_partially_written_record(void)
{
    seg_t s;
    if (!seg_init(&s, 4096, 1000, 4))
        goto done;
    ether_ring_t *a = producer(&s, 1), *b = producer(&s, 2);
    if (!a || !b)
        goto out;
    /* a: record 0 committed; b: a claim half written; a: record 1 committed after it. */
    EXPECT_RC(put(a, 1, 0, 50), ETHER_RING_OK);
    uint64_t offset = 0;
    CHECK_RC(ether_ring_try_claim(b, 300, ETHER_RING_NO_WAIT, &offset), ETHER_RING_OK);
    fill_pattern(s.mem + offset, 150, 2, 0);
    EXPECT_RC(put(a, 1, 1, 60), ETHER_RING_OK);
    /* The consumer gets record 0 and stops at the uncommitted claim, even though a
     * committed record lies behind it. */
    char out[4096];
    uint32_t lengths[8], count = 0;
    uint64_t bytes = 0;
    EXPECT_RC(read_lengths(s.consumer, out, sizeof(out), lengths, 8, &count, &bytes),
              ETHER_RING_OK);
    EXPECT_EQ(count, 1);
    EXPECT(matches_pattern(out, 50, 1, 0));
    EXPECT_RC(read_result(&s), ETHER_RING_PENDING);
    EXPECT_RC(ether_ring_wait(s.consumer, ETHER_RING_NO_WAIT), ETHER_RING_TIMEOUT);
    /* Finishing the payload is not enough; the commit publishes it. */
    char full[300];
    fill_pattern(full, 300, 2, 0);
    memcpy(s.mem + offset + 150, full + 150, 150);
    EXPECT_RC(read_result(&s), ETHER_RING_PENDING);
    EXPECT_RC(ether_ring_commit(b), ETHER_RING_OK);
    EXPECT_RC(ether_ring_wait(s.consumer, ETHER_RING_NO_WAIT), ETHER_RING_OK);
    EXPECT_RC(read_lengths(s.consumer, out, sizeof(out), lengths, 8, &count, &bytes),
              ETHER_RING_OK);
    EXPECT_EQ(count, 2);
    EXPECT_EQ(lengths[0], 300);
    EXPECT_EQ(lengths[1], 60);
    EXPECT(matches_pattern(out, 300, 2, 0));
    EXPECT(matches_pattern(out + 300, 60, 1, 1));
    EXPECT_RC(read_result(&s), ETHER_RING_EMPTY);
out:
    release_producer(a);
    release_producer(b);
done:
    seg_done(&s);
}

static void test_skip_dead_claim(void)
{
    seg_t s;
    if (!seg_init(&s, 4096, 1000, 4))
        goto done;
    ether_ring_t *dead = producer(&s, 0xDEAD), *live = producer(&s, 0x11FE);
    if (!dead || !live)
        goto out;
    uint32_t dead_slot = (uint32_t)ether_ring_slot(dead);
    EXPECT_RC(put(live, 2, 0, 70), ETHER_RING_OK);
    /* The dead producer claims and never commits. */
    uint64_t offset = 0;
    CHECK_RC(ether_ring_try_claim(dead, 200, ETHER_RING_NO_WAIT, &offset), ETHER_RING_OK);
    memset(s.mem + offset, 0x77, 100); /* half written when it died */
    for (uint64_t i = 1; i <= 3; i++)
        EXPECT_RC(put(live, 2, i, (uint32_t)(40 * i)), ETHER_RING_OK);
    EXPECT(take(&s, 2, 0, 70));
    EXPECT_RC(read_result(&s), ETHER_RING_PENDING);
    /* Not reapable while its claim is at or after head. */
    EXPECT_RC(ether_ring_reap(s.consumer, dead_slot, 0xDEAD, OWNER_TOKEN), ETHER_RING_PENDING);
    EXPECT_RC(ether_ring_reap(s.consumer, dead_slot, 0xBEEF, OWNER_TOKEN), ETHER_RING_INVALID); /* wrong token */
    uint32_t slots[4];
    uint64_t tokens[4];
    uint32_t count = 99;
    EXPECT_RC(ether_ring_stalled_slots(s.consumer, slots, tokens, 4, &count), ETHER_RING_PENDING);
    CHECK_EQ(count, 1);
    EXPECT_EQ(slots[0], dead_slot);
    EXPECT_EQ(tokens[0], 0xDEAD);
    uint64_t skipped = 0;
    EXPECT_RC(ether_ring_skip_dead(s.consumer, slots, count, &skipped), ETHER_RING_OK);
    EXPECT_EQ(skipped, record_bytes(200));
    /* Nothing is stalled any more; the live producer's records arrive intact. */
    EXPECT_RC(ether_ring_skip_dead(s.consumer, slots, count, &skipped), ETHER_RING_INVALID);
    for (uint64_t i = 1; i <= 3; i++)
        EXPECT(take(&s, 2, i, (uint32_t)(40 * i)));
    EXPECT_RC(read_result(&s), ETHER_RING_EMPTY);
    EXPECT_RC(ether_ring_stalled_slots(s.consumer, slots, tokens, 4, &count), ETHER_RING_EMPTY);
    EXPECT_EQ(count, 0);
    ether_ring_stats_t st = stats_of(s.consumer);
    EXPECT_EQ(st.skipped_claims, 1);
    EXPECT_EQ(st.skipped_bytes, record_bytes(200));
    EXPECT_EQ(st.received, 4);
    /* Now the slot can be reaped, and a newcomer gets it. */
    EXPECT_RC(ether_ring_reap(s.consumer, dead_slot, 0xDEAD, OWNER_TOKEN), ETHER_RING_OK);
    EXPECT_EQ(ether_ring_slot_token(s.consumer, dead_slot), 0);
    EXPECT_RC(ether_ring_reap(s.consumer, dead_slot, 0xDEAD, OWNER_TOKEN), ETHER_RING_INVALID);
    ether_ring_free(dead); /* the process is gone; its handle never detaches */
    dead = producer(&s, 0x0E11);
    if (dead) {
        EXPECT_EQ((uint32_t)ether_ring_slot(dead), dead_slot);
        EXPECT_RC(put(dead, 3, 0, 33), ETHER_RING_OK);
        EXPECT(take(&s, 3, 0, 33));
    }
    /* The ring keeps working across the skipped bytes for more laps. */
    for (uint64_t i = 4; i < 200 && !failed(); i++) {
        EXPECT_RC(put(live, 2, i, (uint32_t)(i % 500)), ETHER_RING_OK);
        EXPECT(take(&s, 2, i, (uint32_t)(i % 500)));
    }
out:
    release_producer(dead);
    release_producer(live);
done:
    seg_done(&s);
}

/* Documented slot layout: slot i at 1024 + 128 i; intent_start at +8, intent_end at +16. */
static _Atomic uint64_t *slot_word(seg_t *s, uint32_t slot, uint32_t offset)
{
    return (_Atomic uint64_t *)(s->mem + ETHER_RING_SLOTS_OFFSET +
                                (uint64_t)ETHER_RING_SLOT_LENGTH * slot + offset);
}

/*
 * A producer that died between publishing its intent and a CAS on tail that
 * lost leaves an intent over space someone else claimed. Skipping "the dead
 * slots" must not move head into (or past) the claim of a producer that is alive.
 */
static void test_skip_dead_never_moves_head_into_a_live_claim(void)
{
    seg_t s;
    if (!seg_init(&s, 4096, 1000, 4))
        goto done;
    ether_ring_t *dead = producer(&s, 0xDEAD), *slow = producer(&s, 0x510E);
    if (!dead || !slow)
        goto out;
    uint32_t dead_slot = (uint32_t)ether_ring_slot(dead);
    uint64_t t = stats_of(s.consumer).tail;
    /* The dead producer set intent [t, t + 32) for a 0-byte record, then lost the
     * CAS on tail to `slow` and was killed before retrying. */
    atomic_store(slot_word(&s, dead_slot, 8), ETHER_RING_NO_INTENT);
    atomic_store(slot_word(&s, dead_slot, 16), t + record_bytes(0));
    atomic_store(slot_word(&s, dead_slot, 8), t);
    /* `slow` won [t, t + 144) and is still writing. */
    uint64_t offset = 0;
    CHECK_RC(ether_ring_try_claim(slow, 100, ETHER_RING_NO_WAIT, &offset), ETHER_RING_OK);
    EXPECT_RC(read_result(&s), ETHER_RING_PENDING);
    uint32_t slots[4], count = 0;
    uint64_t tokens[4];
    EXPECT_RC(ether_ring_stalled_slots(s.consumer, slots, tokens, 4, &count), ETHER_RING_PENDING);
    EXPECT_EQ(count, 2); /* both intents cover head */
    /* The caller checked liveness: only the dead slot is passed. */
    uint64_t skipped = 0;
    int rc = ether_ring_skip_dead(s.consumer, &dead_slot, 1, &skipped);
    if (rc == ETHER_RING_OK)
        fail_at(__FILE__, __LINE__,
                "skip_dead moved head by %" PRIu64 " bytes, into the claim [%" PRIu64 ", %" PRIu64
                ") of a live producer", skipped, t, t + record_bytes(100));
    EXPECT_EQ(stats_of(s.consumer).head, t);
    /* The live producer finishes; its record must be delivered. */
    fill_pattern(s.mem + offset, 100, 9, 0);
    EXPECT_RC(ether_ring_commit(slow), ETHER_RING_OK);
    char out[256];
    uint32_t lengths[2];
    uint64_t bytes = 0;
    EXPECT_RC(read_lengths(s.consumer, out, sizeof(out), lengths, 2, &count, &bytes),
              ETHER_RING_OK);
    if (count == 1) {
        EXPECT_EQ(lengths[0], 100);
        EXPECT(matches_pattern(out, 100, 9, 0));
    } else {
        EXPECT_EQ(count, 1);
    }
    /* Then the dead slot's stale intent is behind head and it can be reaped. */
    EXPECT_RC(ether_ring_reap(s.consumer, dead_slot, 0xDEAD, OWNER_TOKEN), ETHER_RING_OK);
out:
    ether_ring_free(dead);
    release_producer(slow);
done:
    seg_done(&s);
}

static void test_closed_ring_refuses_writes(void)
{
    seg_t s;
    if (!seg_init(&s, 4096, 1000, 2))
        goto done;
    ether_ring_t *p = producer(&s, 1);
    if (!p)
        goto done;
    EXPECT_RC(put(p, 1, 0, 10), ETHER_RING_OK);
    ether_ring_close(s.consumer);
    EXPECT_EQ(stats_of(s.consumer).closed, 1);
    EXPECT_RC(put(p, 1, 1, 10), ETHER_RING_CLOSED);
    EXPECT_RC(ether_ring_write(p, "abc", 3, WRITE_TIMEOUT), ETHER_RING_CLOSED);
    uint32_t lengths[2] = {1, 1}, written = 99;
    EXPECT_RC(ether_ring_write_batch(p, "ab", lengths, 2, WRITE_TIMEOUT, &written),
              ETHER_RING_CLOSED);
    EXPECT_EQ(written, 0);
    uint64_t offset = 0;
    EXPECT_RC(ether_ring_try_claim(p, 10, WRITE_TIMEOUT, &offset), ETHER_RING_CLOSED);
    /* What was sent before the close can still be read. */
    EXPECT(take(&s, 1, 0, 10));
    EXPECT_RC(read_result(&s), ETHER_RING_EMPTY);
    EXPECT_EQ(stats_of(s.consumer).sent, 1);
    release_producer(p);
done:
    seg_done(&s);
}

static void test_wait_times_out(void)
{
    seg_t s;
    if (!seg_init(&s, 4096, 1000, 2))
        goto done;
    ether_ring_t *p = producer(&s, 1);
    if (!p)
        goto done;
    EXPECT_RC(ether_ring_wait(s.consumer, ETHER_RING_NO_WAIT), ETHER_RING_TIMEOUT);
    uint64_t t0 = now_ns();
    EXPECT_RC(ether_ring_wait(s.consumer, 50 * MS), ETHER_RING_TIMEOUT);
    uint64_t took = now_ns() - t0;
    EXPECT(took >= 50 * MS);
    EXPECT(took < 5 * SEC);
    EXPECT_EQ(stats_of(s.consumer).consumer_waiting, 0);
    /* A claimed but uncommitted head times out too. */
    uint64_t offset;
    EXPECT_RC(ether_ring_try_claim(p, 8, ETHER_RING_NO_WAIT, &offset), ETHER_RING_OK);
    t0 = now_ns();
    EXPECT_RC(ether_ring_wait(s.consumer, 20 * MS), ETHER_RING_TIMEOUT);
    EXPECT(now_ns() - t0 >= 20 * MS);
    fill_pattern(s.mem + offset, 8, 1, 0);
    EXPECT_RC(ether_ring_commit(p), ETHER_RING_OK);
    /* A committed head returns at once. */
    t0 = now_ns();
    EXPECT_RC(ether_ring_wait(s.consumer, 10 * SEC), ETHER_RING_OK);
    EXPECT(now_ns() - t0 < 1 * SEC);
    EXPECT(take(&s, 1, 0, 8));
    /* A write that must wait for space times out as well, and counts as blocked. */
    while (put(p, 1, 1, 500) == ETHER_RING_OK)
        ;
    char buf[500] = {0};
    t0 = now_ns();
    EXPECT_RC(ether_ring_write(p, buf, 500, 30 * MS), ETHER_RING_TIMEOUT);
    EXPECT(now_ns() - t0 >= 30 * MS);
    t0 = now_ns();
    EXPECT_RC(ether_ring_try_claim(p, 500, 30 * MS, &offset), ETHER_RING_TIMEOUT);
    EXPECT(now_ns() - t0 >= 30 * MS);
    ether_ring_stats_t own;
    ether_ring_producer_statistics(p, &own);
    EXPECT_EQ(own.blocked, 2);
    /* A call that continues the last one's wait (continue_wait) is not counted again. */
    ether_ring_continue_wait(p);
    EXPECT_RC(ether_ring_write(p, buf, 500, 10 * MS), ETHER_RING_TIMEOUT);
    ether_ring_continue_wait(p);
    EXPECT_RC(ether_ring_try_claim(p, 500, 10 * MS, &offset), ETHER_RING_TIMEOUT);
    ether_ring_producer_statistics(p, &own);
    EXPECT_EQ(own.blocked, 2);
    EXPECT_RC(ether_ring_write(p, buf, 500, 10 * MS), ETHER_RING_TIMEOUT); /* a new send */
    ether_ring_producer_statistics(p, &own);
    EXPECT_EQ(own.blocked, 3);
    release_producer(p);
done:
    seg_done(&s);
}

/* ---- tests with a second thread ---- */

typedef struct {
    seg_t *seg;
    ether_ring_t *ring;
    latch_t *latch;
    atomic_int tid;
    atomic_int finished;
    int result;
    uint32_t written;
    uint64_t took_ns;
    /* batch writer */
    const char *data;
    const uint32_t *lengths;
    uint32_t count;
} helper_t;

static void *blocked_writer(void *arg)
{
    helper_t *h = arg;
    atomic_store(&h->tid, my_tid());
    latch_arrive_and_wait(h->latch);
    char buf[500];
    fill_pattern(buf, 500, 5, 99);
    uint64_t t0 = now_ns();
    h->result = ether_ring_write(h->ring, buf, 500, WRITE_TIMEOUT);
    h->took_ns = now_ns() - t0;
    atomic_store(&h->finished, 1);
    return NULL;
}

typedef struct { seg_t *seg; helper_t *helper; uint64_t blocked; } blocked_cond_t;

/* The writer counted itself blocked and is asleep in the kernel (futex). */
static bool writer_is_asleep(void *arg)
{
    blocked_cond_t *c = arg;
    if (stats_of(c->seg->consumer).blocked < c->blocked)
        return false;
    return thread_state((pid_t)atomic_load(&c->helper->tid)) == 'S';
}

static void test_blocked_writer_wakes_when_space_frees(void)
{
    seg_t s;
    if (!seg_init(&s, 4096, 1000, 4))
        goto done;
    ether_ring_t *filler = producer(&s, 1), *w = producer(&s, 2);
    if (!filler || !w)
        goto out;
    uint32_t n = 0;
    while (put(filler, 1, n, 500) == ETHER_RING_OK)
        n++;
    CHECK_EQ(n, 4096 / record_bytes(500)); /* 7 records of 544 bytes; 288 left */
    latch_t latch;
    latch_init(&latch, 2);
    helper_t h = {.seg = &s, .ring = w, .latch = &latch};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, blocked_writer, &h) == 0);
    latch_arrive_and_wait(&latch);
    blocked_cond_t cond = {&s, &h, 1};
    EXPECT(spin_until(writer_is_asleep, &cond));
    EXPECT_EQ(atomic_load(&h.finished), 0);
    /* Consuming one record frees 544 bytes: the writer wakes and completes. */
    EXPECT(take(&s, 1, 0, 500));
    pthread_join(thread, NULL);
    EXPECT_EQ(h.result, ETHER_RING_OK);
    EXPECT(h.took_ns < WRITE_TIMEOUT / 2);
    for (uint32_t i = 1; i < n; i++)
        EXPECT(take(&s, 1, i, 500));
    EXPECT(take(&s, 5, 99, 500));
    ether_ring_stats_t own;
    ether_ring_producer_statistics(w, &own);
    EXPECT_EQ(own.blocked, 1);
    EXPECT_EQ(own.sent, 1);
out:
    release_producer(filler);
    release_producer(w);
done:
    seg_done(&s);
}

static void test_close_wakes_blocked_writer(void)
{
    seg_t s;
    if (!seg_init(&s, 4096, 1000, 4))
        goto done;
    ether_ring_t *filler = producer(&s, 1), *w = producer(&s, 2);
    if (!filler || !w)
        goto out;
    while (put(filler, 1, 0, 500) == ETHER_RING_OK)
        ;
    latch_t latch;
    latch_init(&latch, 2);
    helper_t h = {.seg = &s, .ring = w, .latch = &latch};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, blocked_writer, &h) == 0);
    latch_arrive_and_wait(&latch);
    blocked_cond_t cond = {&s, &h, 1};
    EXPECT(spin_until(writer_is_asleep, &cond));
    ether_ring_close(s.consumer);
    pthread_join(thread, NULL);
    EXPECT_RC(h.result, ETHER_RING_CLOSED);
    EXPECT(h.took_ns < WRITE_TIMEOUT / 2);
out:
    release_producer(filler);
    release_producer(w);
done:
    seg_done(&s);
}

typedef struct {
    seg_t *seg;
    latch_t *latch;
    atomic_int tid;
    int result;
    uint64_t took_ns;
    uint32_t received;      /* batch-wake test: records to drain */
    _Atomic uint32_t expect_count;
    uint64_t expect_bytes;
    uint64_t got_bytes;
} waiter_t;

static void *sleeping_consumer(void *arg)
{
    waiter_t *w = arg;
    atomic_store(&w->tid, my_tid());
    latch_arrive_and_wait(w->latch);
    uint64_t t0 = now_ns();
    w->result = ether_ring_wait(w->seg->consumer, WRITE_TIMEOUT);
    w->took_ns = now_ns() - t0;
    return NULL;
}

static bool consumer_is_asleep(void *arg)
{
    waiter_t *w = arg;
    return stats_of(w->seg->consumer).consumer_waiting == 1 &&
           thread_state((pid_t)atomic_load(&w->tid)) == 'S';
}

static void test_wait_wakes_when_a_record_arrives(void)
{
    seg_t s;
    if (!seg_init(&s, 4096, 1000, 2))
        goto done;
    ether_ring_t *p = producer(&s, 1);
    if (!p)
        goto done;
    latch_t latch;
    latch_init(&latch, 2);
    waiter_t w = {.seg = &s, .latch = &latch};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, sleeping_consumer, &w) == 0);
    latch_arrive_and_wait(&latch);
    EXPECT(spin_until(consumer_is_asleep, &w));
    EXPECT_RC(put(p, 1, 0, 20), ETHER_RING_OK);
    pthread_join(thread, NULL);
    EXPECT_RC(w.result, ETHER_RING_OK);
    EXPECT(w.took_ns < WRITE_TIMEOUT / 2);
    EXPECT_EQ(stats_of(s.consumer).consumer_waiting, 0);
    EXPECT(take(&s, 1, 0, 20));
    release_producer(p);
done:
    seg_done(&s);
}

/* Consumer that sleeps in ether_ring_wait (long timeout) and drains what it is woken for. */
static void *draining_consumer(void *arg)
{
    waiter_t *w = arg;
    atomic_store(&w->tid, my_tid());
    latch_arrive_and_wait(w->latch);
    static char out[65536];
    uint32_t lengths[64];
    w->result = ETHER_RING_OK;
    while (w->received < atomic_load(&w->expect_count)) {
        uint32_t count = 0;
        uint64_t bytes = 0;
        int rc = read_lengths(w->seg->consumer, out, sizeof(out), lengths, 64, &count, &bytes);
        if (rc == ETHER_RING_OK) {
            for (uint32_t k = 0, at = 0; k < count; at += lengths[k], k++)
                if (!matches_pattern(out + at, lengths[k], 4, w->received + k))
                    w->result = ETHER_RING_CORRUPT;
            w->received += count;
            w->got_bytes += bytes;
            continue;
        }
        if (rc != ETHER_RING_EMPTY && rc != ETHER_RING_PENDING) {
            w->result = rc;
            break;
        }
        rc = ether_ring_wait(w->seg->consumer, 3 * SEC);
        if (rc != ETHER_RING_OK) {
            w->result = rc; /* slept 3 s without being woken */
            break;
        }
    }
    return NULL;
}

/*
 * A batch larger than the free space is written in several claims. When the writer
 * has committed some records and must wait for the consumer to free space, the
 * consumer must have been woken for the committed ones, or both sleep.
 */
static void test_blocked_batch_writer_wakes_sleeping_consumer(void)
{
    seg_t s;
    if (!seg_init(&s, 4096, 1000, 2))
        goto done;
    ether_ring_t *p = producer(&s, 1);
    if (!p)
        goto done;
    enum { N = 60 }; /* 60 x 144 bytes = 2.1 rings */
    static char data[N * 100];
    uint32_t lengths[N];
    for (uint32_t i = 0; i < N; i++) {
        lengths[i] = 100;
        fill_pattern(data + i * 100, 100, 4, i);
    }
    latch_t latch;
    latch_init(&latch, 2);
    waiter_t w = {.seg = &s, .latch = &latch, .expect_count = N};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, draining_consumer, &w) == 0);
    latch_arrive_and_wait(&latch);
    EXPECT(spin_until(consumer_is_asleep, &w));
    uint32_t written = 0;
    uint64_t t0 = now_ns();
    int rc = ether_ring_write_batch(p, data, lengths, N, 2 * SEC, &written);
    uint64_t took = now_ns() - t0;
    EXPECT_RC(rc, ETHER_RING_OK);
    EXPECT_EQ(written, N);
    if (rc != ETHER_RING_OK) {
        /* Let the consumer finish (or time out) on what was written. */
        atomic_store(&w.expect_count, written);
        fail_at(__FILE__, __LINE__, "the batch writer waited %.1f s for space while the consumer "
                "slept on %u committed records", (double)took / SEC, written);
    }
    pthread_join(thread, NULL);
    EXPECT_RC(w.result, ETHER_RING_OK);
    EXPECT_EQ(w.received, written);
    release_producer(p);
done:
    seg_done(&s);
}

/* ---- concurrent stress ---- */

#define STRESS_PRODUCERS 4

typedef struct stress stress_t;

typedef struct {
    stress_t *st;
    uint32_t id;
    bool batch;
    ether_ring_t *ring;
} stress_producer_t;

struct stress {
    seg_t seg;
    latch_t latch;
    uint32_t records;
    uint32_t max_length;
    bool small;
    atomic_int abort;
    stress_producer_t producers[STRESS_PRODUCERS];
    uint64_t expected_seq[STRESS_PRODUCERS];
    uint64_t received;
    uint64_t received_bytes;
    uint64_t sent_bytes[STRESS_PRODUCERS];
};

/* Length of record seq of producer id: mostly small, a few large. */
static uint32_t stress_length(const stress_t *st, uint32_t id, uint64_t seq)
{
    uint64_t m = mix64(((uint64_t)id << 40) ^ seq ^ 0xABCDEF);
    uint32_t len;
    if (st->small)
        len = (m & 63) == 0 ? 16 + (uint32_t)((m >> 8) % (st->max_length - 15))
                            : 16 + (uint32_t)((m >> 8) % 160);
    else
        len = (m & 255) == 0 ? 16 + (uint32_t)((m >> 8) % (st->max_length - 15))
                             : 16 + (uint32_t)((m >> 8) % 1024);
    return len;
}

/* Payload: [0,4) crc32 of [4,len), [4,8) producer id, [8,16) seq, then filler. */
static void stress_fill(char *p, uint32_t len, uint32_t id, uint64_t seq)
{
    memcpy(p + 4, &id, 4);
    memcpy(p + 8, &seq, 8);
    uint64_t x = mix64(seq * 4 + id);
    for (uint32_t i = 16; i < len; i++) {
        p[i] = (char)(x >> ((i & 7) * 8));
        if ((i & 7) == 7)
            x = x * 6364136223846793005ull + 1442695040888963407ull;
    }
    uint32_t crc = crc32_of(p + 4, len - 4);
    memcpy(p, &crc, 4);
}

static void *stress_producer(void *arg)
{
    stress_producer_t *sp = arg;
    stress_t *st = sp->st;
    size_t cap = (size_t)st->max_length * 16 + 64;
    char *buf = malloc(cap);
    uint32_t lengths[16];
    latch_arrive_and_wait(&st->latch);
    uint64_t seq = 0;
    while (seq < st->records && buf && !atomic_load(&st->abort)) {
        if (!sp->batch) {
            uint32_t len = stress_length(st, sp->id, seq);
            stress_fill(buf, len, sp->id, seq);
            int rc = ether_ring_write(sp->ring, buf, len, WRITE_TIMEOUT);
            if (rc != ETHER_RING_OK) {
                fail_at(__FILE__, __LINE__, "producer %u: write of seq %" PRIu64 " returned %s",
                        sp->id, seq, result_name(rc));
                atomic_store(&st->abort, 1);
                break;
            }
            st->sent_bytes[sp->id] += len;
            seq++;
            continue;
        }
        uint32_t k = 1 + (uint32_t)(mix64(seq) % 16);
        if (seq + k > st->records)
            k = (uint32_t)(st->records - seq);
        size_t at = 0;
        for (uint32_t j = 0; j < k; j++) {
            lengths[j] = stress_length(st, sp->id, seq + j);
            stress_fill(buf + at, lengths[j], sp->id, seq + j);
            at += lengths[j];
        }
        uint32_t written = 0;
        int rc = ether_ring_write_batch(sp->ring, buf, lengths, k, WRITE_TIMEOUT, &written);
        if (rc != ETHER_RING_OK || written != k) {
            fail_at(__FILE__, __LINE__,
                    "producer %u: batch at seq %" PRIu64 " wrote %u of %u and returned %s", sp->id,
                    seq, written, k, result_name(rc));
            atomic_store(&st->abort, 1);
            break;
        }
        st->sent_bytes[sp->id] += at;
        seq += k;
    }
    free(buf);
    return NULL;
}

static void stress_check_record(stress_t *st, const char *p, uint32_t len)
{
    uint32_t id, crc;
    uint64_t seq;
    if (len < 16) {
        fail_at(__FILE__, __LINE__, "record of %u bytes is shorter than its 16-byte header", len);
        atomic_store(&st->abort, 1);
        return;
    }
    memcpy(&crc, p, 4);
    memcpy(&id, p + 4, 4);
    memcpy(&seq, p + 8, 8);
    if (crc != crc32_of(p + 4, len - 4)) {
        fail_at(__FILE__, __LINE__, "record %" PRIu64 " (claims producer %u, seq %" PRIu64
                ", %u bytes): bad crc", st->received, id, seq, len);
        atomic_store(&st->abort, 1);
        return;
    }
    if (id >= STRESS_PRODUCERS || seq != st->expected_seq[id]) {
        fail_at(__FILE__, __LINE__, "producer %u: got seq %" PRIu64 ", expected %" PRIu64
                " (lost, duplicated or reordered)", id, seq,
                id < STRESS_PRODUCERS ? st->expected_seq[id] : 0);
        atomic_store(&st->abort, 1);
        return;
    }
    if (len != stress_length(st, id, seq)) {
        fail_at(__FILE__, __LINE__, "producer %u seq %" PRIu64 ": length %u, expected %u", id, seq,
                len, stress_length(st, id, seq));
        atomic_store(&st->abort, 1);
        return;
    }
    st->expected_seq[id]++;
    st->received++;
    st->received_bytes += len;
}

static void *stress_consumer(void *arg)
{
    stress_t *st = arg;
    size_t out_capacity = 256 * 1024;
    char *out = malloc(out_capacity);
    uint32_t lengths[256];
    const char *items[256];
    uint64_t total = (uint64_t)st->records * STRESS_PRODUCERS;
    latch_arrive_and_wait(&st->latch);
    uint64_t last_progress = now_ns();
    /* Reads alternate between the packed and the framed layout (the one Python uses). */
    for (uint64_t reads = 0; out && st->received < total && !atomic_load(&st->abort); reads++) {
        uint32_t count = 0;
        uint64_t bytes = 0;
        bool framed = reads & 1;
        int rc = framed
            ? ether_ring_read_framed(st->seg.consumer, out, out_capacity, 256, &count, &bytes)
            : read_lengths(st->seg.consumer, out, out_capacity, lengths, 256, &count, &bytes);
        if (rc == ETHER_RING_OK) {
            if (framed && !parse_framed(out, bytes, count, items, lengths)) {
                fail_at(__FILE__, __LINE__, "a framed read of %u records is not a MessagePack array "
                        "of bin32 filling its %" PRIu64 " bytes", count, bytes);
                atomic_store(&st->abort, 1);
                break;
            }
            uint64_t at = 0;
            for (uint32_t k = 0; k < count && !atomic_load(&st->abort); k++) {
                stress_check_record(st, framed ? items[k] : out + at, lengths[k]);
                at += lengths[k];
            }
            if (!framed && at != bytes)
                fail_at(__FILE__, __LINE__, "read reported %" PRIu64 " bytes for %" PRIu64, bytes, at);
            last_progress = now_ns();
            continue;
        }
        if (rc != ETHER_RING_EMPTY && rc != ETHER_RING_PENDING) {
            fail_at(__FILE__, __LINE__, "read returned %s after %" PRIu64 " records", result_name(rc),
                    st->received);
            atomic_store(&st->abort, 1);
            break;
        }
        rc = ether_ring_wait(st->seg.consumer, 100 * MS);
        if (rc != ETHER_RING_OK && rc != ETHER_RING_TIMEOUT) {
            fail_at(__FILE__, __LINE__, "wait returned %s", result_name(rc));
            atomic_store(&st->abort, 1);
        } else if (rc == ETHER_RING_TIMEOUT && now_ns() - last_progress > WRITE_TIMEOUT + 2 * SEC) {
            fail_at(__FILE__, __LINE__, "no record for 12 s after %" PRIu64 " of %" PRIu64,
                    st->received, total);
            atomic_store(&st->abort, 1);
        }
    }
    free(out);
    return NULL;
}

static void run_stress(uint64_t capacity, uint32_t max_length, bool with_batch)
{
    stress_t *st = calloc(1, sizeof(*st));
    CHECK(st != NULL);
    st->records = g_records;
    st->max_length = max_length;
    st->small = capacity <= 16384;
    if (!seg_init(&st->seg, capacity, max_length, STRESS_PRODUCERS + 2))
        goto done;
    latch_init(&st->latch, STRESS_PRODUCERS + 1);
    pthread_t threads[STRESS_PRODUCERS], consumer;
    int started = 0;
    for (uint32_t i = 0; i < STRESS_PRODUCERS; i++) {
        stress_producer_t *sp = &st->producers[i];
        sp->st = st;
        sp->id = i;
        sp->batch = with_batch && i == 0;
        sp->ring = producer(&st->seg, 1000 + i);
        if (!sp->ring)
            goto out;
    }
    if (!EXPECT(pthread_create(&consumer, NULL, stress_consumer, st) == 0))
        goto out;
    for (; started < STRESS_PRODUCERS; started++)
        if (!EXPECT(pthread_create(&threads[started], NULL, stress_producer,
                                   &st->producers[started]) == 0))
            break;
    if (started < STRESS_PRODUCERS) {
        atomic_store(&st->abort, 1);
        atomic_store(&st->latch.remaining, 0);
    }
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    pthread_join(consumer, NULL);
    if (!failed()) {
        uint64_t total = (uint64_t)st->records * STRESS_PRODUCERS, bytes = 0;
        for (uint32_t i = 0; i < STRESS_PRODUCERS; i++) {
            EXPECT_EQ(st->expected_seq[i], st->records);
            bytes += st->sent_bytes[i];
        }
        ether_ring_stats_t rs = stats_of(st->seg.consumer);
        EXPECT_EQ(st->received, total);
        EXPECT_EQ(rs.sent, total);
        EXPECT_EQ(rs.received, total);
        EXPECT_EQ(rs.sent_bytes, bytes);
        EXPECT_EQ(rs.received_bytes, bytes);
        EXPECT_EQ(rs.dropped, 0);
        EXPECT_EQ(rs.skipped_claims, 0);
        EXPECT_EQ(rs.head, rs.tail);
        EXPECT(rs.tail > capacity); /* it wrapped */
        EXPECT_RC(read_result(&st->seg), ETHER_RING_EMPTY);
    }
out:
    for (uint32_t i = 0; i < STRESS_PRODUCERS; i++)
        release_producer(st->producers[i].ring);
done:
    seg_done(&st->seg);
    free(st);
}

static void test_concurrent_producers_small_ring(void) { run_stress(4096, 2016, false); }
static void test_concurrent_producers_large_ring(void) { run_stress(1 << 20, 65536, false); }
static void test_concurrent_producers_small_ring_with_batch_writer(void) { run_stress(4096, 2016, true); }
static void test_concurrent_producers_large_ring_with_batch_writer(void) { run_stress(1 << 20, 65536, true); }

/* ---- stalled producers (ether_ring.h, "Stalled producers") ---- */

/* rc must be OK; says which record otherwise. */
#define EXPECT_RC_OK(rc, seq) rc_ok_at(__FILE__, __LINE__, (rc), (uint64_t)(seq))
static bool rc_ok_at(const char *file, int line, int rc, uint64_t seq)
{
    if (rc == ETHER_RING_OK)
        return true;
    fail_at(file, line, "record %" PRIu64 ": %s, expected OK", seq, result_name(rc));
    return false;
}


static uint32_t stall_length(uint64_t seq) { return 40 + (uint32_t)(seq * 37 % 300); }

/* Read every record that is ready; each must be producer 2's next pattern record
 * (seq *next, length stall_length). Returns how many were read. */
static uint32_t read_ready_in_order(seg_t *s, uint64_t *next)
{
    static char out[65536];
    uint32_t lengths[256], total = 0;
    for (int rounds = 0; rounds < 1000 && !failed(); rounds++) {
        uint32_t count = 0;
        uint64_t bytes = 0;
        int rc = read_lengths(s->consumer, out, sizeof(out), lengths, 256, &count, &bytes);
        if (rc != ETHER_RING_OK) {
            EXPECT(rc == ETHER_RING_EMPTY || rc == ETHER_RING_PENDING);
            break;
        }
        uint64_t at = 0;
        for (uint32_t k = 0; k < count; k++) {
            if (!EXPECT_EQ(lengths[k], stall_length(*next)) ||
                !EXPECT(matches_pattern(out + at, lengths[k], 2, *next)))
                return total;
            at += lengths[k];
            (*next)++;
        }
        total += count;
    }
    return total;
}

/* The spec of the unblock protocol, step by step in one thread: a loan held past
 * the caller's timeout is skipped; the records behind it are delivered; producers
 * go on for many laps while its space stays protected (the consumer covers it each
 * lap), however often the stalled producer writes into it; its late commit is
 * refused with SKIPPED; then its space is free again and it sends normally. */
static void test_skips_a_stalled_claim_and_refuses_its_late_commit(void)
{
    seg_t s;
    if (!seg_init(&s, 4096, 1000, 4))
        goto done;
    ether_ring_t *stalled = producer(&s, 0x57A1), *live = producer(&s, 0x11FE);
    if (!stalled || !live)
        goto out;
    uint32_t stalled_slot = (uint32_t)ether_ring_slot(stalled);
    uint64_t sent = 0, next = 0;
    CHECK_RC(put(live, 2, sent, stall_length(sent)), ETHER_RING_OK);
    sent++;
    uint64_t offset = 0;
    CHECK_RC(ether_ring_try_claim(stalled, 200, ETHER_RING_NO_WAIT, &offset), ETHER_RING_OK);
    memset(s.mem + offset, 0x77, 100); /* half written when it stopped */
    for (; sent < 4; sent++)
        EXPECT_RC(put(live, 2, sent, stall_length(sent)), ETHER_RING_OK);
    EXPECT_EQ(read_ready_in_order(&s, &next), 1);
    EXPECT_RC(read_result(&s), ETHER_RING_PENDING);
    uint32_t slots[4], count = 0;
    uint64_t tokens[4], skipped = 0;
    EXPECT_RC(ether_ring_stalled_slots(s.consumer, slots, tokens, 4, &count), ETHER_RING_PENDING);
    CHECK_EQ(count, 1);
    EXPECT_EQ(slots[0], stalled_slot);
    /* It is alive: skip_dead refuses to pass an unlisted live slot... */
    EXPECT_RC(ether_ring_skip_dead(s.consumer, NULL, 0, &skipped), ETHER_RING_INVALID);
    /* ...and skip_stalled takes it (the caller's timeout ran out). */
    EXPECT_RC(ether_ring_skip_stalled(s.consumer, stalled_slot, NULL, 0, &skipped), ETHER_RING_OK);
    EXPECT_EQ(skipped, record_bytes(200));
    EXPECT_RC(ether_ring_skip_stalled(s.consumer, stalled_slot, NULL, 0, &skipped), ETHER_RING_INVALID);
    EXPECT_EQ(read_ready_in_order(&s, &next), 3);
    ether_ring_stats_t st = stats_of(s.consumer);
    EXPECT_EQ(st.skipped_claims, 1);
    EXPECT_EQ(st.holes, 1);
    EXPECT(st.released < st.head); /* the skipped claim's space is held back */
    /* Thirty laps of the live producer, the stalled one scribbling over its loan
     * between any two records, the consumer reading whatever is ready. */
    uint64_t laps_target = stats_of(s.consumer).tail + 30 * 4096;
    uint64_t released_before = stats_of(s.consumer).released;
    for (uint32_t i = 0; stats_of(s.consumer).tail < laps_target && !failed() && i < 100000; i++) {
        int rc = put(live, 2, sent, stall_length(sent));
        if (rc == ETHER_RING_FULL) {
            /* Blocked by the consumer, or by the next instance of the hole: the
             * failed claim asked for a cover, which the next read makes. */
            read_ready_in_order(&s, &next);
            rc = put(live, 2, sent, stall_length(sent));
        }
        if (!EXPECT_RC_OK(rc, sent))
            break;
        sent++;
        if (i % 7 == 0)
            memset(s.mem + offset, (int)(0xA0 + i % 16), 200); /* late writes: only its own bytes */
        st = stats_of(s.consumer);
        EXPECT(st.released >= released_before); /* never moves back */
        released_before = st.released;
    }
    read_ready_in_order(&s, &next);
    EXPECT_EQ(next, sent);
    EXPECT_EQ(stats_of(s.consumer).holes, 1);
    /* It resumes and commits: refused, never delivered. */
    fill_pattern(s.mem + offset, 200, 1, 0);
    EXPECT_RC(ether_ring_commit(stalled), ETHER_RING_SKIPPED);
    EXPECT_RC(ether_ring_commit(stalled), ETHER_RING_INVALID); /* the loan is gone */
    ether_ring_producer_statistics(stalled, &st);
    EXPECT_EQ(st.sent, 0);
    /* It let go: at the next read the space is free again (or once the cover the
     * consumer may still have ahead is passed). */
    for (int i = 0; i < 20 && stats_of(s.consumer).holes && !failed(); i++) {
        EXPECT_RC(put(live, 2, sent, stall_length(sent)), ETHER_RING_OK);
        sent++;
        read_ready_in_order(&s, &next);
    }
    st = stats_of(s.consumer);
    EXPECT_EQ(st.holes, 0);
    EXPECT_EQ(st.released, st.head);
    /* And it sends normally again. */
    EXPECT_RC(put(stalled, 1, 1, 64), ETHER_RING_OK);
    EXPECT(take(&s, 1, 1, 64));
    EXPECT_RC(read_result(&s), ETHER_RING_EMPTY);
    st = stats_of(s.consumer);
    EXPECT_EQ(st.skipped_claims, 1);
    EXPECT_EQ(st.received, sent + 1);
out:
    release_producer(stalled);
    release_producer(live);
done:
    seg_done(&s);
}

/* A loan skipped while held and then given back (abort) is fine: nothing is
 * delivered, the space is free again, and the handle writes on. */
static void test_an_abort_after_a_skip_gives_the_space_back(void)
{
    seg_t s;
    if (!seg_init(&s, 8192, 1000, 4))
        goto done;
    ether_ring_t *p = producer(&s, 0xBA7C);
    if (!p)
        goto done;
    uint32_t slot = (uint32_t)ether_ring_slot(p);
    uint64_t offset = 0, skipped = 0;
    CHECK_RC(ether_ring_try_claim(p, 100, ETHER_RING_NO_WAIT, &offset), ETHER_RING_OK);
    fill_pattern(s.mem + offset, 100, 1, 0);
    EXPECT_RC(read_result(&s), ETHER_RING_PENDING);
    EXPECT_RC(ether_ring_skip_stalled(s.consumer, slot, NULL, 0, &skipped), ETHER_RING_OK);
    EXPECT_EQ(stats_of(s.consumer).holes, 1);
    EXPECT_RC(ether_ring_abort(p), ETHER_RING_OK);
    EXPECT_RC(read_result(&s), ETHER_RING_EMPTY);
    ether_ring_stats_t st = stats_of(s.consumer);
    EXPECT_EQ(st.holes, 0);
    EXPECT_EQ(st.released, st.head);
    static char data[300];
    uint32_t lengths[3] = {100, 100, 100}, written = 0;
    for (uint32_t i = 0; i < 3; i++)
        fill_pattern(data + 100 * i, 100, 1, 1 + i);
    EXPECT_RC(ether_ring_write_batch(p, data, lengths, 3, ETHER_RING_NO_WAIT, &written), ETHER_RING_OK);
    EXPECT_EQ(written, 3);
    for (uint32_t i = 0; i < 3; i++)
        EXPECT(take(&s, 1, 1 + i, 100));
    release_producer(p);
done:
    seg_done(&s);
}

/* ---- the skip racing the late commit ---- */

typedef struct {
    seg_t *seg;
    ether_ring_t *ring;
    uint32_t rounds;
    atomic_uint claimed;  /* round r: the producer holds its claim */
    atomic_uint go;       /* round r: both race now */
    atomic_uint done;     /* round r: the producer has its verdict */
    int verdict[1];       /* this round's commit result */
    atomic_int abort;
} race_t;

static bool race_go(void *arg)
{
    race_t *r = arg;
    return atomic_load(&r->go) == atomic_load(&r->claimed) || atomic_load(&r->abort);
}

static void *racing_producer(void *arg)
{
    race_t *r = arg;
    uint64_t offset = 0;
    for (uint32_t round = 1; round <= r->rounds && !atomic_load(&r->abort); round++) {
        uint32_t len = 16 + round % 200;
        if (ether_ring_try_claim(r->ring, len, WRITE_TIMEOUT, &offset) != ETHER_RING_OK) {
            fail_at(__FILE__, __LINE__, "round %u: claim failed", round);
            atomic_store(&r->abort, 1);
            break;
        }
        fill_pattern(r->seg->mem + offset, len, 1, round);
        atomic_store(&r->claimed, round);
        spin_until(race_go, r);
        for (uint32_t k = mix64(round) % 256; k > 0; k--) /* vary who gets there first */
            cpu_relax();
        r->verdict[0] = ether_ring_commit(r->ring);
        atomic_store(&r->done, round);
    }
    return NULL;
}

static bool race_done(void *arg)
{
    race_t *r = arg;
    return atomic_load(&r->done) == atomic_load(&r->go) || atomic_load(&r->abort);
}

/* The consumer skips a claim at the very moment its producer commits it, over and
 * over: each time exactly one of them wins. Either the commit succeeds and the
 * record is read intact, or the commit returns SKIPPED and the record is never
 * read; never both, never neither. Then the claim's space is free again. */
static void test_a_skip_and_a_late_commit_racing_agree_on_one_verdict(void)
{
    seg_t s;
    if (!seg_init(&s, 4096, 1000, 4))
        goto done;
    race_t r = {.seg = &s, .rounds = g_records / 50 < 200 ? 200 : g_records / 50};
    r.ring = producer(&s, 0x7ACE);
    if (!r.ring)
        goto done;
    uint32_t slot = (uint32_t)ether_ring_slot(r.ring);
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, racing_producer, &r) == 0);
    uint32_t delivered = 0, skipped_rounds = 0;
    static char out[4096];
    for (uint32_t round = 1; round <= r.rounds && !failed(); round++) {
        while (atomic_load(&r.claimed) != round && !atomic_load(&r.abort))
            cpu_relax();
        uint64_t skipped = 0;
        atomic_store(&r.go, round);
        for (uint32_t k = mix64(round * 31) % 256; k > 0; k--)
            cpu_relax();
        int rc = ether_ring_skip_stalled(s.consumer, slot, NULL, 0, &skipped);
        if (rc != ETHER_RING_OK && rc != ETHER_RING_INVALID) {
            fail_at(__FILE__, __LINE__, "round %u: skip_stalled returned %s", round, result_name(rc));
            break;
        }
        EXPECT(spin_until(race_done, &r));
        int verdict = r.verdict[0];
        uint32_t lengths[4], count = 0;
        uint64_t bytes = 0;
        int read = read_lengths(s.consumer, out, sizeof(out), lengths, 4, &count, &bytes);
        uint32_t len = 16 + round % 200;
        if (rc == ETHER_RING_OK) {
            skipped_rounds++;
            if (verdict != ETHER_RING_SKIPPED) {
                fail_at(__FILE__, __LINE__, "round %u: the consumer skipped the claim but the "
                        "commit returned %s", round, result_name(verdict));
                break;
            }
            if (!EXPECT_EQ(count, 0))
                break;
            EXPECT(read == ETHER_RING_EMPTY || read == ETHER_RING_PENDING); /* its next claim may be there */
        } else {
            delivered++;
            if (!EXPECT_RC_OK(verdict, round) || !EXPECT_EQ(count, 1))
                break;
            EXPECT(lengths[0] == len && matches_pattern(out, len, 1, round));
        }
    }
    atomic_store(&r.abort, 1);
    pthread_join(thread, NULL);
    EXPECT_RC(read_result(&s), ETHER_RING_EMPTY);
    ether_ring_stats_t st = stats_of(s.consumer);
    EXPECT_EQ(st.skipped_claims, skipped_rounds);
    EXPECT_EQ(st.received, delivered);
    EXPECT_EQ(st.holes, 0);
    EXPECT_EQ(st.released, st.head);
    printf("    (%u rounds: %u delivered, %u skipped)\n", r.rounds, delivered, skipped_rounds);
    release_producer(r.ring);
done:
    seg_done(&s);
}

/* ---- a stalling producer among streaming ones ---- */

#define STALL_STREAMERS 3
#define STALL_ID STALL_STREAMERS   /* the staller's producer id */

typedef struct {
    seg_t seg;
    latch_t latch;
    uint32_t records;                 /* per producer */
    ether_ring_t *rings[STALL_STREAMERS + 1];
    atomic_int abort;
    atomic_uint_fast64_t read_bytes;  /* consumed so far (the staller waits on laps) */
    atomic_uint skips;                /* skip_stalled successes */
    atomic_uint skipped_seen;         /* the staller's current claim was skipped */
    atomic_uint skipped_count;        /* the staller's sends that came back SKIPPED */
    atomic_int streamers_done;
    atomic_uchar *skipped;            /* [seq]: the staller's send came back SKIPPED */
    uint8_t *delivered;               /* [seq]: the consumer read the staller's seq */
    uint64_t expected_seq[STALL_STREAMERS];
    uint64_t received;
} stall_stress_t;

static stall_stress_t *g_stall;

static uint32_t stall_stress_length(uint32_t id, uint64_t seq)
{
    return 16 + (uint32_t)(mix64(((uint64_t)id << 40) ^ seq ^ 0x5A11) % 300);
}

typedef struct { stall_stress_t *st; uint32_t id; } stall_arg_t;

static void *stall_streamer(void *arg)
{
    stall_arg_t *a = arg;
    stall_stress_t *st = a->st;
    char buf[400];
    latch_arrive_and_wait(&st->latch);
    for (uint64_t seq = 0; seq < st->records && !atomic_load(&st->abort); seq++) {
        uint32_t len = stall_stress_length(a->id, seq);
        stress_fill(buf, len, a->id, seq);
        int rc = ether_ring_write(st->rings[a->id], buf, len, WRITE_TIMEOUT);
        if (rc != ETHER_RING_OK) {
            fail_at(__FILE__, __LINE__, "streamer %u: write of seq %" PRIu64 " returned %s", a->id,
                    seq, result_name(rc));
            atomic_store(&st->abort, 1);
        }
    }
    atomic_fetch_add(&st->streamers_done, 1);
    return NULL;
}

static bool staller_may_go(void *arg)
{
    stall_stress_t *st = arg;
    return atomic_load(&st->skipped_seen) || atomic_load(&st->abort);
}

/* Every 16th record is a loan held until the consumer skips it; while it is held
 * skipped, the others run two more laps and it scribbles over its own space. */
static void *staller(void *arg)
{
    stall_stress_t *st = arg;
    ether_ring_t *ring = st->rings[STALL_ID];
    char buf[400];
    latch_arrive_and_wait(&st->latch);
    for (uint64_t seq = 0; seq < st->records && !atomic_load(&st->abort); seq++) {
        uint32_t len = stall_stress_length(STALL_ID, seq);
        int rc;
        if (seq % 16 == 5) {
            uint64_t offset = 0;
            rc = ether_ring_try_claim(ring, len, WRITE_TIMEOUT, &offset);
            if (rc == ETHER_RING_OK) {
                stress_fill(st->seg.mem + offset, len, STALL_ID, seq);
                atomic_store(&st->skipped_seen, 0);
                /* Stall until skipped (bounded: spin_until gives up after 20 s). */
                spin_until(staller_may_go, st);
                if (atomic_load(&st->skipped_seen)) {
                    uint64_t until = atomic_load(&st->read_bytes) + 2 * 4096;
                    uint64_t give_up = now_ns() + 5 * SEC;
                    for (uint32_t i = 0; atomic_load(&st->read_bytes) < until && now_ns() < give_up &&
                                         atomic_load(&st->streamers_done) < STALL_STREAMERS &&
                                         !atomic_load(&st->abort); i++) {
                        memset(st->seg.mem + offset, (int)(i & 0xFF), len); /* late writes */
                        sched_yield();
                    }
                }
                rc = ether_ring_commit(ring);
            }
        } else {
            stress_fill(buf, len, STALL_ID, seq);
            rc = ether_ring_write(ring, buf, len, WRITE_TIMEOUT);
        }
        if (rc == ETHER_RING_SKIPPED) {
            atomic_store(&st->skipped[seq], 1);
            atomic_fetch_add(&st->skipped_count, 1);
        } else if (rc != ETHER_RING_OK) {
            fail_at(__FILE__, __LINE__, "staller: seq %" PRIu64 " returned %s", seq, result_name(rc));
            atomic_store(&st->abort, 1);
        }
    }
    return NULL;
}

static void stall_check_record(stall_stress_t *st, const char *p, uint32_t len)
{
    uint32_t id, crc;
    uint64_t seq;
    memcpy(&crc, p, 4);
    memcpy(&id, p + 4, 4);
    memcpy(&seq, p + 8, 8);
    if (len < 16 || crc != crc32_of(p + 4, len - 4) || id > STALL_ID ||
        len != stall_stress_length(id, seq)) {
        fail_at(__FILE__, __LINE__, "record %" PRIu64 " torn (claims producer %u seq %" PRIu64 ")",
                st->received, id, seq);
        atomic_store(&st->abort, 1);
        return;
    }
    if (id == STALL_ID) {
        if (seq >= st->records || st->delivered[seq]) {
            fail_at(__FILE__, __LINE__, "staller seq %" PRIu64 " duplicated", seq);
            atomic_store(&st->abort, 1);
        } else {
            st->delivered[seq] = 1;
        }
    } else if (seq != st->expected_seq[id]++) {
        fail_at(__FILE__, __LINE__, "streamer %u: got seq %" PRIu64 ", expected %" PRIu64, id, seq,
                st->expected_seq[id] - 1);
        atomic_store(&st->abort, 1);
    }
    st->received++;
}

static void *stall_consumer(void *arg)
{
    stall_stress_t *st = arg;
    static char out[65536];
    uint32_t lengths[256];
    uint32_t staller_slot = (uint32_t)ether_ring_slot(st->rings[STALL_ID]);
    uint64_t total = (uint64_t)st->records * (STALL_STREAMERS + 1);
    uint64_t pending_since = 0, last_progress = now_ns();
    latch_arrive_and_wait(&st->latch);
    while (!atomic_load(&st->abort)) {
        uint32_t count = 0;
        uint64_t bytes = 0;
        int rc = read_lengths(st->seg.consumer, out, sizeof(out), lengths, 256, &count, &bytes);
        if (rc == ETHER_RING_OK) {
            uint64_t at = 0;
            for (uint32_t k = 0; k < count; k++) {
                stall_check_record(st, out + at, lengths[k]);
                at += lengths[k];
            }
            atomic_fetch_add(&st->read_bytes, bytes);
            pending_since = 0;
            last_progress = now_ns();
            continue;
        }
        if (rc == ETHER_RING_PENDING) {
            uint64_t now = now_ns();
            if (!pending_since)
                pending_since = now;
            else if (now - pending_since > 2 * MS) { /* our unblock timeout */
                uint32_t slots[8], n = 0;
                uint64_t tokens[8], skipped = 0;
                if (ether_ring_stalled_slots(st->seg.consumer, slots, tokens, 8, &n) == ETHER_RING_PENDING &&
                    n == 1 && slots[0] == staller_slot &&
                    ether_ring_skip_stalled(st->seg.consumer, staller_slot, NULL, 0, &skipped) == ETHER_RING_OK) {
                    atomic_fetch_add(&st->skips, 1);
                    atomic_store(&st->skipped_seen, 1);
                }
                pending_since = 0;
            }
        } else if (rc != ETHER_RING_EMPTY) {
            fail_at(__FILE__, __LINE__, "read returned %s", result_name(rc));
            atomic_store(&st->abort, 1);
            break;
        }
        /* Done once every record is read or known skipped, and no space is held. */
        if (st->received + atomic_load(&st->skipped_count) >= total &&
            stats_of(st->seg.consumer).holes == 0)
            break;
        rc = ether_ring_wait(st->seg.consumer, 1 * MS);
        if (rc == ETHER_RING_TIMEOUT && now_ns() - last_progress > WRITE_TIMEOUT + 2 * SEC) {
            fail_at(__FILE__, __LINE__, "no progress for 12 s after %" PRIu64 " records", st->received);
            atomic_store(&st->abort, 1);
        }
    }
    return NULL;
}

static void test_a_stalling_producer_never_wedges_or_tears_the_others(void)
{
    stall_stress_t *st = calloc(1, sizeof(*st));
    CHECK(st != NULL);
    g_stall = st;
    st->records = g_records / 10 < 1000 ? 1000 : g_records / 10;
    st->skipped = calloc(st->records, sizeof(atomic_uchar));
    st->delivered = calloc(st->records, 1);
    pthread_t threads[STALL_STREAMERS + 2];
    stall_arg_t args[STALL_STREAMERS];
    int started = 0;
    if (!st->skipped || !st->delivered || !seg_init(&st->seg, 4096, 1000, STALL_STREAMERS + 2))
        goto done;
    for (uint32_t i = 0; i <= STALL_ID; i++)
        if (!(st->rings[i] = producer(&st->seg, 2000 + i)))
            goto out;
    latch_init(&st->latch, STALL_STREAMERS + 2);
    if (!EXPECT(pthread_create(&threads[started++], NULL, stall_consumer, st) == 0))
        goto out;
    if (!EXPECT(pthread_create(&threads[started++], NULL, staller, st) == 0))
        goto out;
    for (uint32_t i = 0; i < STALL_STREAMERS; i++) {
        args[i] = (stall_arg_t){st, i};
        if (!EXPECT(pthread_create(&threads[started++], NULL, stall_streamer, &args[i]) == 0))
            goto out;
    }
out:
    if (started < STALL_STREAMERS + 2) {
        atomic_store(&st->abort, 1);
        atomic_store(&st->latch.remaining, 0);
    }
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    if (!failed() && started == STALL_STREAMERS + 2) {
        for (uint32_t i = 0; i < STALL_STREAMERS; i++)
            EXPECT_EQ(st->expected_seq[i], st->records);
        uint32_t both = 0, neither = 0, skipped = 0;
        for (uint32_t q = 0; q < st->records; q++) {
            bool s = atomic_load(&st->skipped[q]) != 0, d = st->delivered[q] != 0;
            both += s && d;
            neither += !s && !d;
            skipped += s;
        }
        EXPECT_EQ(both, 0);     /* reported skipped, yet delivered */
        EXPECT_EQ(neither, 0);  /* lost without a word */
        EXPECT_EQ(skipped, atomic_load(&st->skips));
        ether_ring_stats_t rs = stats_of(st->seg.consumer);
        EXPECT_EQ(rs.skipped_claims, atomic_load(&st->skips));
        EXPECT_EQ(rs.holes, 0);
        EXPECT_EQ(rs.released, rs.head);
        EXPECT_EQ(rs.received, (uint64_t)st->records * (STALL_STREAMERS + 1) - skipped);
        EXPECT(atomic_load(&st->skips) > 0);
        printf("    (%u records per producer; %u claims of the staller skipped, %" PRIu64
               " laps of the ring)\n", st->records, atomic_load(&st->skips), rs.tail / 4096);
    }
    for (uint32_t i = 0; i <= STALL_ID; i++)
        release_producer(st->rings[i]);
done:
    seg_done(&st->seg);
    free((void *)st->skipped);
    free(st->delivered);
    free(st);
    g_stall = NULL;
}

/* ------------------------------------------------------------------ main */

static const test_t tests[] = {
    TEST(test_init_and_open_validate_parameters),
    TEST(test_attach_takes_distinct_slots_until_none_left),
    TEST(test_reads_records_in_exact_order),
    TEST(test_read_stops_at_a_record_that_does_not_fit_the_output),
    TEST(test_framed_read_is_a_msgpack_array_of_bin32),
    TEST(test_framed_read_stops_at_a_record_whose_framing_does_not_fit),
    TEST(test_rejects_write_when_full),
    TEST(test_pads_at_wrap),
    TEST(test_pads_a_16_byte_gap_at_wrap_within_the_segment),
    TEST(test_largest_record_fits),
    TEST(test_batch_write_partial_when_full),
    TEST(test_loan_claim_commit),
    TEST(test_loan_abort_is_skipped_by_the_consumer),
    TEST(test_never_reads_a_partially_written_record),
    TEST(test_skip_dead_claim),
    TEST(test_skip_dead_never_moves_head_into_a_live_claim),
    TEST(test_closed_ring_refuses_writes),
    TEST(test_wait_times_out),
    TEST(test_wait_wakes_when_a_record_arrives),
    TEST(test_blocked_writer_wakes_when_space_frees),
    TEST(test_close_wakes_blocked_writer),
    TEST(test_blocked_batch_writer_wakes_sleeping_consumer),
    TEST(test_skips_a_stalled_claim_and_refuses_its_late_commit),
    TEST(test_an_abort_after_a_skip_gives_the_space_back),
    TEST(test_a_skip_and_a_late_commit_racing_agree_on_one_verdict),
    TEST(test_a_stalling_producer_never_wedges_or_tears_the_others),
    TEST(test_concurrent_producers_small_ring),
    TEST(test_concurrent_producers_large_ring),
    TEST(test_concurrent_producers_small_ring_with_batch_writer),
    TEST(test_concurrent_producers_large_ring_with_batch_writer),
};

int main(int argc, char **argv)
{
    crc_init();
    env_u32("ETHER_TEST_RECORDS", &g_records);
    run_t run = run_tests(tests, TEST_COUNT(tests), argc, argv);
    printf("(stress: %u records per producer, %d producers; %.1f s in all)\n", g_records,
           STRESS_PRODUCERS, run_seconds(&run));
    return finish_tests(&run);
}
