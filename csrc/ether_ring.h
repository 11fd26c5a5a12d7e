/*
 * ether_ring.h - the inbox: a multi-producer, single-consumer ring of
 * variable-length records in one shared-memory segment.
 *
 * Words used with one meaning each:
 *   position  a monotonic 64-bit byte count since the ring was created; never wraps.
 *   index     position & (capacity - 1): a byte offset into the data area.
 *   head      the position of the next record the consumer will read.
 *   released  the position before which producers may reuse space: head, or less
 *             while the space of a skipped claim is protected (a hole, below).
 *   tail      the position where the next claim starts (one past the last claimed byte).
 *   capacity  the size of the data area in bytes, a power of two.
 *   length    the payload size of one record, header excluded.
 *   claim     a range [start, end) of positions reserved by one producer with one CAS.
 *   hole      the unread rest [q, end) of a claim the consumer skipped while its
 *             producer lived; its instances are [q + k*capacity, end + k*capacity).
 *   cover     a claim the consumer makes over one instance of a hole, so that no
 *             producer writes there; nothing is written in it, the consumer jumps it.
 *
 * Segment layout (every offset is from the start of the segment):
 *
 *   +--------------------------------+ 0
 *   | descriptor line                |  written once by ether_ring_init, read-only after
 *   +--------------------------------+ 64
 *   | consumer line                  |  head, consumer_waiting, closed, receive counters, released
 *   +--------------------------------+ 128
 *   | tail line                      |  tail (CAS by producers)
 *   +--------------------------------+ 192
 *   | producers' view line           |  head_cache (producers, relaxed), cover_at, cover_wanted
 *   +--------------------------------+ 256
 *   | wake line                      |  data_futex, space_futex, space_waiters
 *   +--------------------------------+ 320
 *   | retired counters line          |  totals of producers that have detached
 *   +--------------------------------+ 384
 *   | hole table                     |  ETHER_RING_MAX_HOLES x 64 B, the consumer's
 *   +--------------------------------+ 896 .. 1023 reserved (zero)
 *   | producer slots                 |  max_producers x 128 B: the owner's line, the consumer's line
 *   +--------------------------------+ data offset = align_up(1024 + 128 * max_producers, 4096)
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
 *    64 u64 head             the consumer's read position; release store (read by
 *                            statistics and by ether_ring_reap)
 *    72 u32 consumer_waiting seq_cst store, then the consumer re-checks for data;
 *                            producers load it after a seq_cst fence (Dekker pair)
 *    76 u32 closed           release store by ether_ring_close (the consumer, or a sender
 *                            that found the consumer dead)
 *    80 u64 received         relaxed counters, read by statistics
 *    88 u64 received_bytes
 *    96 u64 skipped_claims   claims skipped by the consumer: of dead producers, and of
 *                            live ones that stalled past the caller's unblock timeout
 *   104 u64 skipped_bytes
 *   112 u64 released         release store after the records before it were read (and
 *                            no hole instance lies within a lap of it); producers load
 *                            it with acquire before reusing space
 *   120 u32 hole_count       entries of the hole table in use (relaxed, consumer only)
 *
 * Tail line:   128 u64 tail           CAS (acq_rel) by producers, and by the consumer's covers
 * View line:   192 u64 head_cache     relaxed cache of released; a stale value is only conservative
 *              200 u64 cover_at       release store by the consumer: the nearest hole
 *                                     instance still to cover, 0 if none
 *              208 u64 cover_wanted   a producer that cannot fit before cover_at stores it
 *                                     here and wakes the consumer; the consumer exchanges it
 * Wake line:   256 u32 data_futex     bumped by a producer that wakes the consumer
 *              260 u32 space_futex    bumped by the consumer that frees space for waiters
 *              264 u32 space_waiters  producers sleeping for space (fetch_add / fetch_sub)
 * Retired:     320 u64 sent, 328 u64 sent_bytes, 336 u64 dropped, 344 u64 blocked
 *                                     folded in atomically when a slot is released
 *
 * Hole table entry j at 384 + 64 * j (consumer only, relaxed; see "Stalled producers"):
 *     0 u64 start          first protected position: where the consumer's read stopped
 *     8 u64 end            the claim's end
 *    16 u64 next           start + k * capacity: the next instance to cover
 *    24 u64 intent         the owner's intent_start at the skip; once it differs, the
 *                          owner has let go of the space
 *    32 u64 token          the owner's slot token at the skip; once it differs, the
 *                          owner died and was reaped
 *    40 u64 cover_start    the pending cover [cover_start, cover_end), claimed and not
 *    48 u64 cover_end      yet passed by head; 0 if none
 *    56 u32 slot           the owner's producer slot
 *    60 u32 state          ETHER_RING_HOLE_FREE, _PROTECTING, _DRAINING (let go of,
 *                          its pending cover not yet passed)
 *
 * Producer slot i at 1024 + 128 * i (one producer owns it while token != 0):
 *     0 u64 token         0 = free; CAS 0 -> member token to attach
 *     8 u64 intent_start  start of the claim being made, or ETHER_RING_NO_INTENT
 *    16 u64 intent_end    end of that claim
 *    24 u64 next_seq      owner only
 *    32 u64 sent          owner only, relaxed (read by statistics)
 *    40 u64 sent_bytes
 *    48 u64 dropped
 *    56 u64 blocked       sends that had to wait for space
 *    64 u64 skip          the consumer's line: 0, or q | ETHER_RING_SKIP_PROPOSED /
 *                         _DONE / _DELIVERED (q: the 16-aligned position its read
 *                         stopped at); CAS by both sides, see "Stalled producers"
 *    72 u32 pid           the owner's process id, stored at attach (relaxed): what a
 *                         consumer names when it skips a stalled claim
 *    76 .. 127            reserved
 *
 *   The intent is published *before* the CAS on tail and cleared only after every
 *   record of the claim is committed. So a claim whose owner died or stalled is
 *   always covered by that owner's intent, and the consumer can skip it without
 *   knowing more. A producer sets intent_start to NO_INTENT before rewriting
 *   intent_end, and a reader loads start, end, then start again, so it never pairs a
 *   start with another claim's end.
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
 *   fence; skip == 0 ?                          head = t+n, released = t+n (release)
 *   waiting? -> futex wake                                  ----> producers
 *
 * Stalled producers (the unblock protocol, after Aeron's unblock timeout):
 *
 *   A live producer stopped between its CAS on tail and its last commit (SIGSTOP, a
 *   debugger, a loan never committed) would hold head forever. After the caller's
 *   timeout, ether_ring_skip_stalled skips the rest [q, end) of its claim, q = head.
 *   Two questions decide the design.
 *
 *   1. Who wins if the producer commits at the instant the consumer skips? The
 *      slot's `skip` word decides, with one CAS from each side (consensus between
 *      two parties needs a read-modify-write; the producer's costs nothing unless a
 *      proposal is there):
 *
 *        consumer                                  producer (finishing a claim)
 *        skip = q | PROPOSED      (relaxed)        intent = NONE          (release)
 *        fence (seq_cst)                           fence (seq_cst)  [the wake's fence]
 *        load intent_start        (acquire)        load skip              (relaxed)
 *        != the claim: CAS skip -> 0, not skipped  == 0: delivered (the fast path)
 *        == the claim: CAS PROPOSED -> DONE        PROPOSED: CAS -> DELIVERED
 *
 *      The fences make a store-buffering pair: either the consumer sees the intent
 *      cleared (every record is committed; it retracts and reads them), or the
 *      producer sees the proposal, or both. When the producer sees PROPOSED, both
 *      CAS from PROPOSED: exactly one wins. DONE means the records from q on were
 *      skipped (the producer, seeing DONE with q inside its claim, reports them not
 *      delivered: ETHER_RING_SKIPPED, with the records before q as written) and
 *      clears the word; DELIVERED means the consumer will read them. A producer
 *      that sees 0 has cleared its intent before the consumer's fence, so the
 *      consumer's load sees that and does not skip. Nothing can be both delivered
 *      and reported skipped, or neither: the records from q on are read by the
 *      consumer iff the verdict is not DONE.
 *
 *   2. Where do the stalled producer's late writes go? It can resume at any
 *      instruction: in a memcpy into its records, or writing a loan's buffer from
 *      Python. So the bytes of [q, end) must not be reused while it may still write
 *      them: the claim becomes a hole. The consumer jumps head to end and reads on,
 *      but keeps `released` at or below every hole's next instance less a lap, so
 *      no producer can claim into [q + k*capacity, end + k*capacity). When a
 *      producer cannot fit before the nearest instance (cover_at), it asks for a
 *      cover (cover_wanted, then a wake); the consumer claims [tail, instance end)
 *      with a CAS on tail, writes nothing there (so the stalled producer's bytes stay
 *      its own), records the cover in the hole entry, and jumps it when head gets
 *      there: the commit word at its start is stale or the stalled producer's, keyed
 *      by another position, so it never reads as committed. Then `next` moves a lap.
 *      The ring keeps flowing, less at most one record's gap per lap per hole.
 *      The hole ends when the owner lets go: its intent_start changes (it finished
 *      the claim, whatever the verdict, or it was a producer whose CAS had lost and
 *      which retried elsewhere) or its slot token changes (it died and was reaped).
 *      Its writes into the hole happen before that release store of intent_start,
 *      which the consumer loads with acquire before it raises `released` (release),
 *      which producers load with acquire before they write the space: a
 *      happens-before chain, so the space is reused only after the last late write.
 *      A late commit word, keyed by its old position, never matches a later lap's.
 *
 *   The caller passes the slots it found dead that also cover head; a slot it did
 *   not list that covers head makes the skip PENDING. With a live stalled owner and
 *   a dead producer's stale intent both covering head, the skip goes to the live
 *   slot's end: if the dead slot was the real owner and the live intent stale (a
 *   producer stopped between a lost CAS and its retry), records after the dead
 *   claim up to that end are skipped too (counted). That needs two faults at once.
 */
#ifndef ETHER_RING_H
#define ETHER_RING_H

#include <stddef.h>
#include <stdint.h>

#define ETHER_RING_MAGIC            0x474E5252454854ULL /* "THERRNG" */
#define ETHER_RING_LAYOUT_VERSION   2u
#define ETHER_RING_ALIGNMENT        16u
#define ETHER_RING_HEADER_LENGTH    32u
#define ETHER_RING_SLOTS_OFFSET     1024u
#define ETHER_RING_SLOT_LENGTH      128u
#define ETHER_RING_MIN_CAPACITY     4096u
#define ETHER_RING_MAX_CAPACITY     (1ull << 34)
#define ETHER_RING_MAX_PRODUCERS    1024u
#define ETHER_RING_NO_INTENT        UINT64_MAX
#define ETHER_RING_DATA             1u
#define ETHER_RING_PADDING          2u
#define ETHER_RING_SKIP             3u  /* an aborted loan: skipped by the consumer, never delivered */
/* The hole table (see "Stalled producers"). */
#define ETHER_RING_HOLES_OFFSET     384u
#define ETHER_RING_HOLE_LENGTH      64u
#define ETHER_RING_MAX_HOLES        8u
#define ETHER_RING_HOLE_FREE        0u
#define ETHER_RING_HOLE_PROTECTING  1u  /* its owner may still write into it */
#define ETHER_RING_HOLE_DRAINING    2u  /* let go of; a cover of it is not yet passed */
/* A slot's skip word: 0, or the position q the consumer's read stopped at (16-aligned)
 * with one of these in the low bits. */
#define ETHER_RING_SKIP_PROPOSED    1u
#define ETHER_RING_SKIP_DONE        2u
#define ETHER_RING_SKIP_DELIVERED   3u
#define ETHER_RING_SKIP_STATE_MASK  15u
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
    ETHER_RING_SKIPPED = 13,     /* this producer stalled past the consumer's unblock timeout:
                                    the consumer skipped its claim (from the record it was
                                    waiting for on), which was never delivered */
} ether_ring_result_t;

/* Process-local handle: pointers into one mapping plus this process's role state. */
typedef struct ether_ring ether_ring_t;

typedef struct {
    uint64_t capacity;
    uint64_t used;            /* tail - released (at most capacity): bytes producers cannot
                                 use yet; tail - head unless a hole is protected */
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
    uint64_t skipped_claims;  /* claims skipped: of dead producers, and of stalled live ones */
    uint64_t skipped_bytes;
    uint32_t closed;
    uint32_t consumer_waiting;
    uint64_t released;        /* see "Stalled producers" */
    uint32_t holes;           /* skipped claims whose space is still protected */
    uint32_t reserved;
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
 * in order; the rest were refused (FULL), timed out, hit a closed ring, or were
 * skipped (SKIPPED: this producer stalled past the consumer's unblock timeout; the
 * rest of the batch is not tried). */
int ether_ring_write_batch(ether_ring_t *ring, const char *data, const uint32_t *lengths,
                           uint32_t count, uint64_t timeout_ns, uint32_t *written);

/* Loan: reserve one record of `length` bytes and return the payload's offset in
 * the segment; the caller writes it, then commits. The commit returns SKIPPED if the
 * loan was held past the consumer's unblock timeout and skipped: never delivered
 * (its bytes were never reused, so the late writes did no harm). */
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

/* Skip the uncommitted claim at head of the live producer `slot`, which has held it
 * past the caller's unblock timeout ("Stalled producers" above). `dead` lists the
 * other slots covering head, which the caller found dead. OK: head moved to the
 * claim's end and its space stays protected until the producer lets go of it (its
 * commit then returns SKIPPED). INVALID: nothing to skip any more (it committed, or
 * the slot no longer covers head). PENDING: an unlisted slot covers head, or the
 * hole table is full: try again later. */
int ether_ring_skip_stalled(ether_ring_t *ring, uint32_t slot, const uint32_t *dead,
                            uint32_t dead_count, uint64_t *skipped_bytes);

/* Free a dead producer's slot if it has no claim at or after head. `token` is the
 * slot's current token: a dead producer's, or REAPING|r of a reaper r the caller
 * found dead. `reaper` is the caller's own member token. */
int ether_ring_reap(ether_ring_t *ring, uint32_t slot, uint64_t token, uint64_t reaper);

/* Read one slot's token (0 = free), and the process id its owner attached from. */
uint64_t ether_ring_slot_token(const ether_ring_t *ring, uint32_t slot);
uint32_t ether_ring_slot_pid(const ether_ring_t *ring, uint32_t slot);
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
