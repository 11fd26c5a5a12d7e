/*
 * ether_ring.h - the inbox: a multi-producer, single-consumer ring of
 * variable-length records in one shared-memory segment.
 *
 * Words used with one meaning each:
 *   position  a monotonic 64-bit byte count since the ring was created; never wraps.
 *   index     position & (capacity - 1): a byte offset into the data area.
 *   head      the position of the next record the consumer will read.
 *   tail      the position where the next claim starts (one past the last claimed byte).
 *   capacity  the size of the data area in bytes, a power of two.
 *   length    the payload size of one record, header excluded.
 *   claim     a range [start, end) of positions reserved by one producer with one CAS.
 *
 * Segment layout (every offset is from the start of the segment):
 *
 *   +--------------------------------+ 0
 *   | descriptor line                |  written once by ether_ring_init, read-only after
 *   +--------------------------------+ 64
 *   | consumer line                  |  head, consumer_waiting, closed, receive counters
 *   +--------------------------------+ 128
 *   | tail line                      |  tail (CAS by producers)
 *   +--------------------------------+ 192
 *   | head cache line                |  head_cache (producers, relaxed)
 *   +--------------------------------+ 256
 *   | wake line                      |  data_futex, space_futex, space_waiters
 *   +--------------------------------+ 320
 *   | retired counters line          |  totals of producers that have detached
 *   +--------------------------------+ 384 .. 1023 reserved (zero)
 *   | producer slots                 |  max_producers x 64 B, one cache line each
 *   +--------------------------------+ data offset = align_up(1024 + 64 * max_producers, 4096)
 *   | data area                      |  capacity bytes of records
 *   +--------------------------------+ data offset + capacity = segment size
 *
 * Descriptor line (all written once, before the segment is published):
 *     0 u64 magic            ETHER_RING_MAGIC
 *     8 u32 layout_version   ETHER_RING_LAYOUT_VERSION
 *    12 u32 data_offset      where the data area starts
 *    16 u64 capacity         power of two
 *    24 u64 segment_size     data_offset + capacity
 *    32 u32 max_length       largest payload a record may carry
 *    36 u32 max_producers
 *    40 u64 commit_key       random; a record at position p is committed when its
 *                            commit word equals commit_key ^ p (see below)
 *    48 u64 owner_token      the session member that consumes this ring
 *    56 u64 reserved
 *
 * Consumer line (written only by the consumer; `closed` also by a sender that found
 * the consumer dead):
 *    64 u64 head             release store after the records before it were read;
 *                            producers load it with acquire before reusing space
 *    72 u32 consumer_waiting seq_cst store, then the consumer re-checks for data;
 *                            producers load it after a seq_cst fence (Dekker pair)
 *    76 u32 closed           release store by ether_ring_close (the consumer, or a sender
 *                            that found the consumer dead)
 *    80 u64 received         relaxed counters, read by statistics
 *    88 u64 received_bytes
 *    96 u64 skipped_claims   claims of dead producers skipped by the consumer
 *   104 u64 skipped_bytes
 *
 * Tail line:   128 u64 tail           CAS (acq_rel) by producers
 * Cache line:  192 u64 head_cache     relaxed; a stale value is only conservative
 * Wake line:   256 u32 data_futex     bumped by a producer that wakes the consumer
 *              260 u32 space_futex    bumped by the consumer that frees space for waiters
 *              264 u32 space_waiters  producers sleeping for space (fetch_add / fetch_sub)
 * Retired:     320 u64 sent, 328 u64 sent_bytes, 336 u64 dropped, 344 u64 blocked
 *                                     folded in atomically when a slot is released
 *
 * Producer slot i at 1024 + 64 * i (one producer owns it while token != 0):
 *     0 u64 token         0 = free; CAS 0 -> member token to attach
 *     8 u64 intent_start  start of the claim being made, or ETHER_RING_NO_INTENT
 *    16 u64 intent_end    end of that claim
 *    24 u64 next_seq      owner only
 *    32 u64 sent          owner only, relaxed (read by statistics)
 *    40 u64 sent_bytes
 *    48 u64 dropped
 *    56 u64 blocked       sends that had to wait for space
 *
 *   The intent is published *before* the CAS on tail and cleared only after every
 *   record of the claim is committed. So a claim whose owner died is always covered
 *   by that owner's intent, and the consumer can skip it without knowing more. A
 *   producer sets intent_start to NO_INTENT before rewriting intent_end, and a
 *   reader loads start, end, then start again, so it never pairs a start with
 *   another claim's end.
 *
 * Record at index i (32 B header, records aligned to ETHER_RING_ALIGNMENT):
 *     0 u64 commit     release store of commit_key ^ position, written last.
 *                      Stale bytes from an older lap or payload cannot match,
 *                      because the position is unique and the key is random.
 *     8 u32 length     payload bytes
 *    12 u16 type       ETHER_RING_DATA, ETHER_RING_PADDING or ETHER_RING_SKIP
 *    14 u16 producer   slot index of the writer
 *    16 u64 seq        per-slot sequence number, from 0
 *    24 u64 reserved
 *    32 ...            payload, then zero to alignment
 *
 *   A padding record fills the space from its index to the end of the data area
 *   when the next record does not fit before the wrap. Padding carries no length;
 *   its extent is implicit, and it writes only its first 16 bytes (commit, length,
 *   type, producer), since the gap may be that small. Records never straddle the wrap.
 *
 * Sequence of one send (claim, write, commit, wake, read):
 *
 *   producer                                   consumer
 *   intent = [t, t+n)          (release)
 *   CAS tail t -> t+n          (acq_rel)  ...   waits: commit at head == key^head ?
 *   write header and payload   (plain)
 *   commit = key ^ t           (release) -----> load commit (acquire) == key^t
 *   intent = NONE              (release)        copy payload out
 *   fence; waiting? -> futex wake               head = t+n (release) ----> producers
 */
#ifndef ETHER_RING_H
#define ETHER_RING_H

#include <stddef.h>
#include <stdint.h>

#define ETHER_RING_MAGIC            0x474E5252454854ULL /* "THERRNG" */
#define ETHER_RING_LAYOUT_VERSION   1u
#define ETHER_RING_ALIGNMENT        16u
#define ETHER_RING_HEADER_LENGTH    32u
#define ETHER_RING_SLOTS_OFFSET     1024u
#define ETHER_RING_SLOT_LENGTH      64u
#define ETHER_RING_MIN_CAPACITY     4096u
#define ETHER_RING_MAX_CAPACITY     (1ull << 34)
#define ETHER_RING_MAX_PRODUCERS    1024u
#define ETHER_RING_NO_INTENT        UINT64_MAX
#define ETHER_RING_DATA             1u
#define ETHER_RING_PADDING          2u
#define ETHER_RING_SKIP             3u  /* an aborted loan: skipped by the consumer, never delivered */
/* Token bit of a slot being released by a reaper: REAPING | the reaper's token. */
#define ETHER_RING_REAPING          (1ull << 63)
/* ether_ring_read_framed's MessagePack framing: the array32 header, and the
 * bin32 header before each payload. */
#define ETHER_RING_FRAMED_HEAD      5u
#define ETHER_RING_FRAMED_ITEM      5u
/* Timeouts are nanoseconds; this one means "do not wait". */
#define ETHER_RING_NO_WAIT          0ull

typedef enum {
    ETHER_RING_OK = 0,
    ETHER_RING_EMPTY = 1,        /* nothing claimed at head */
    ETHER_RING_PENDING = 2,      /* head is claimed but not yet committed */
    ETHER_RING_FULL = 3,         /* not enough free space and no wait was asked for */
    ETHER_RING_TIMEOUT = 4,      /* the wait ran out */
    ETHER_RING_INTERRUPTED = 5,  /* a signal arrived during a wait */
    ETHER_RING_TOO_LARGE = 6,    /* length above max_length */
    ETHER_RING_CLOSED = 7,       /* the consumer closed the ring */
    ETHER_RING_NO_SLOT = 8,      /* every producer slot is taken */
    ETHER_RING_BAD_LAYOUT = 9,   /* magic, version or sizes do not match */
    ETHER_RING_CORRUPT = 10,     /* a value read from shared memory failed a bounds check */
    ETHER_RING_INVALID = 11,     /* an argument is out of range or the call is out of order */
    ETHER_RING_NO_MEMORY = 12,
} ether_ring_result_t;

/* Process-local handle: pointers into one mapping plus this process's role state. */
typedef struct ether_ring ether_ring_t;

typedef struct {
    uint64_t capacity;
    uint64_t used;            /* tail - head: bytes claimed and not yet consumed */
    uint64_t head;
    uint64_t tail;
    uint32_t max_length;
    uint32_t producers;       /* attached slots */
    uint64_t sent;            /* records committed, all producers, including detached */
    uint64_t sent_bytes;
    uint64_t dropped;         /* sends refused for lack of space */
    uint64_t blocked;         /* sends that waited for space */
    uint64_t received;
    uint64_t received_bytes;
    uint64_t skipped_claims;  /* claims of dead producers skipped */
    uint64_t skipped_bytes;
    uint32_t closed;
    uint32_t consumer_waiting;
} ether_ring_stats_t;

/* Size of a segment for these parameters, or 0 if they are invalid. */
uint64_t ether_ring_segment_size(uint64_t capacity, uint32_t max_producers);

/* Lay out a fresh ring in zeroed memory. */
int ether_ring_init(void *mem, uint64_t mem_length, uint64_t capacity, uint32_t max_length,
                    uint32_t max_producers, uint64_t owner_token, uint64_t commit_key);

/* Validate a mapped segment and make a handle for it. */
int ether_ring_open(void *mem, uint64_t mem_length, ether_ring_t **out);
void ether_ring_free(ether_ring_t *ring);

/* ---- producer side: one handle attaches to at most one slot ---- */
int ether_ring_attach(ether_ring_t *ring, uint64_t token);
int ether_ring_detach(ether_ring_t *ring);
int ether_ring_slot(const ether_ring_t *ring);

/* Append one record. timeout_ns == ETHER_RING_NO_WAIT drops (FULL) instead of waiting. */
int ether_ring_write(ether_ring_t *ring, const char *data, uint32_t length, uint64_t timeout_ns);

/* Append `count` records laid end to end in data. *written says how many went in,
 * in order; the rest were refused (FULL), timed out, or hit a closed ring. */
int ether_ring_write_batch(ether_ring_t *ring, const char *data, const uint32_t *lengths,
                           uint32_t count, uint64_t timeout_ns, uint32_t *written);

/* Loan: reserve one record of `length` bytes and return the payload's offset in
 * the segment; the caller writes it, then commits. */
int ether_ring_try_claim(ether_ring_t *ring, uint32_t length, uint64_t timeout_ns,
                         uint64_t *payload_offset);
int ether_ring_commit(ether_ring_t *ring);
/* Give a loan back: it is committed as a SKIP record that the consumer passes over. */
int ether_ring_abort(ether_ring_t *ring);
/* Deadline (ether_now_ns clock) of this handle's last write that waited, else 0:
 * lets the caller resume an interrupted wait with the time that is left. */
uint64_t ether_ring_wait_deadline(const ether_ring_t *ring);
/* The next write, batch write or claim on this handle continues the last one's wait
 * (after a signal, or a time slice the caller used to check the consumer's
 * liveness): it is not counted in `blocked` again. */
void ether_ring_continue_wait(ether_ring_t *ring);

/* ---- consumer side ---- */
/* Copy up to max_count committed payloads into out, end to end. Payload k is
 * out[offsets[k] .. offsets[k+1]) (offsets has max_count + 1 entries, offsets[0] = 0).
 * Returns OK with *count >= 1, or EMPTY / PENDING with *count == 0. */
int ether_ring_read(ether_ring_t *ring, char *out, uint64_t out_capacity, uint64_t *offsets,
                    uint32_t max_count, uint32_t *count, uint64_t *bytes);

/* As ether_ring_read, but out receives one MessagePack array of the payloads as
 * bin items: an array32 header (0xdd, the count as a big-endian u32), then per
 * record a bin32 (0xc6, the length as a big-endian u32, the bytes). *bytes is
 * the framed size (5 with no record). Every count and length in the framing is
 * written here from a bounds-checked record header, so payload bytes can never
 * be read as framing; a msgspec Decoder(list[bytes]) then builds the whole list
 * without a Python-level loop, and without unpickling what another process wrote. */
int ether_ring_read_framed(ether_ring_t *ring, char *out, uint64_t out_capacity,
                           uint32_t max_count, uint32_t *count, uint64_t *bytes);

/* Spin adaptively, then sleep until the record at head is committed. */
int ether_ring_wait(ether_ring_t *ring, uint64_t timeout_ns);

/* When head is claimed but not committed: the slots whose intent covers head. */
int ether_ring_stalled_slots(ether_ring_t *ring, uint32_t *slots, uint64_t *tokens,
                             uint32_t max_count, uint32_t *count);

/* Skip the uncommitted claim at head. Every slot listed must be dead (the caller
 * checked liveness); head moves to the nearest intent end among them. PENDING if
 * a slot not listed also covers head (it may own the claim): check again later. */
int ether_ring_skip_dead(ether_ring_t *ring, const uint32_t *slots, uint32_t count,
                         uint64_t *skipped_bytes);

/* Free a dead producer's slot if it has no claim at or after head. `token` is the
 * slot's current token: a dead producer's, or REAPING|r of a reaper r the caller
 * found dead. `reaper` is the caller's own member token. */
int ether_ring_reap(ether_ring_t *ring, uint32_t slot, uint64_t token, uint64_t reaper);

/* Read one slot's token (0 = free). */
uint64_t ether_ring_slot_token(const ether_ring_t *ring, uint32_t slot);
uint32_t ether_ring_max_producers(const ether_ring_t *ring);
/* The member token of the consumer that created the ring. */
uint64_t ether_ring_owner_token(const ether_ring_t *ring);

/* Mark the ring closed and wake every waiting producer. Called by the consumer, or by
 * a producer that found the consumer dead (so that every other producer learns it). */
void ether_ring_close(ether_ring_t *ring);

void ether_ring_statistics(const ether_ring_t *ring, ether_ring_stats_t *out);
/* This producer's own counters (sent, dropped, blocked) plus the ring's state. */
void ether_ring_producer_statistics(const ether_ring_t *ring, ether_ring_stats_t *out);

#endif /* ETHER_RING_H */
