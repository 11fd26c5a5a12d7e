/* Declarations that cffi sees. Shared-memory structs stay opaque; constants come
 * from the compiler (`...`). Kept in step with ether_ring.h, ether_arena.h and
 * ether_process.h
 * (tests/unit/test_cdef.py checks every prototype and constant against them). */
#define ETHER_RING_LAYOUT_VERSION ...
#define ETHER_RING_ALIGNMENT ...
#define ETHER_RING_HEADER_LENGTH ...
#define ETHER_RING_SLOTS_OFFSET ...
#define ETHER_RING_SLOT_LENGTH ...
#define ETHER_RING_HOLES_OFFSET ...
#define ETHER_RING_HOLE_LENGTH ...
#define ETHER_RING_MAX_HOLES ...
#define ETHER_RING_MIN_CAPACITY ...
#define ETHER_RING_MAX_PRODUCERS ...
#define ETHER_RING_REAPING ...
#define ETHER_RING_NO_WAIT ...
#define ETHER_RING_FRAMED_HEAD ...
#define ETHER_RING_FRAMED_ITEM ...

typedef enum {
    ETHER_RING_OK, ETHER_RING_EMPTY, ETHER_RING_PENDING, ETHER_RING_FULL,
    ETHER_RING_TIMEOUT, ETHER_RING_INTERRUPTED, ETHER_RING_TOO_LARGE, ETHER_RING_CLOSED,
    ETHER_RING_NO_SLOT, ETHER_RING_BAD_LAYOUT, ETHER_RING_CORRUPT, ETHER_RING_INVALID,
    ETHER_RING_NO_MEMORY, ETHER_RING_SKIPPED, ...
} ether_ring_result_t;

typedef struct ether_ring ether_ring_t;

typedef struct {
    uint64_t capacity;
    uint64_t used;
    uint64_t head;
    uint64_t tail;
    uint32_t max_length;
    uint32_t producers;
    uint64_t sent;
    uint64_t sent_bytes;
    uint64_t dropped;
    uint64_t blocked;
    uint64_t received;
    uint64_t received_bytes;
    uint64_t skipped_claims;
    uint64_t skipped_bytes;
    uint32_t closed;
    uint32_t consumer_waiting;
    uint64_t released;
    uint32_t holes;
    uint32_t reserved;
} ether_ring_stats_t;

uint64_t ether_ring_segment_size(uint64_t capacity, uint32_t max_producers);
int ether_ring_init(void *mem, uint64_t mem_length, uint64_t capacity, uint32_t max_length,
                    uint32_t max_producers, uint64_t owner_token, uint64_t commit_key);
int ether_ring_open(void *mem, uint64_t mem_length, ether_ring_t **out);
void ether_ring_free(ether_ring_t *ring);
int ether_ring_attach(ether_ring_t *ring, uint64_t token);
int ether_ring_detach(ether_ring_t *ring);
int ether_ring_slot(const ether_ring_t *ring);
int ether_ring_write(ether_ring_t *ring, const char *data, uint32_t length, uint64_t timeout_ns);
int ether_ring_write_batch(ether_ring_t *ring, const char *data, const uint32_t *lengths,
                           uint32_t count, uint64_t timeout_ns, uint32_t *written);
int ether_ring_try_claim(ether_ring_t *ring, uint32_t length, uint64_t timeout_ns,
                         uint64_t *payload_offset);
int ether_ring_commit(ether_ring_t *ring);
int ether_ring_abort(ether_ring_t *ring);
uint64_t ether_ring_wait_deadline(const ether_ring_t *ring);
void ether_ring_continue_wait(ether_ring_t *ring);
int ether_ring_read(ether_ring_t *ring, char *out, uint64_t out_capacity, uint64_t *offsets,
                    uint32_t max_count, uint32_t *count, uint64_t *bytes);
int ether_ring_read_framed(ether_ring_t *ring, char *out, uint64_t out_capacity,
                           uint32_t max_count, uint32_t *count, uint64_t *bytes);
int ether_ring_wait(ether_ring_t *ring, uint64_t timeout_ns);
int ether_ring_stalled_slots(ether_ring_t *ring, uint32_t *slots, uint64_t *tokens,
                             uint32_t max_count, uint32_t *count);
int ether_ring_skip_dead(ether_ring_t *ring, const uint32_t *slots, uint32_t count,
                         uint64_t *skipped_bytes);
int ether_ring_skip_stalled(ether_ring_t *ring, uint32_t slot, const uint32_t *dead,
                            uint32_t dead_count, uint64_t *skipped_bytes);
int ether_ring_reap(ether_ring_t *ring, uint32_t slot, uint64_t token, uint64_t reaper);
uint64_t ether_ring_slot_token(const ether_ring_t *ring, uint32_t slot);
uint32_t ether_ring_slot_pid(const ether_ring_t *ring, uint32_t slot);
uint32_t ether_ring_max_producers(const ether_ring_t *ring);
uint64_t ether_ring_owner_token(const ether_ring_t *ring);
void ether_ring_close(ether_ring_t *ring);
void ether_ring_statistics(const ether_ring_t *ring, ether_ring_stats_t *out);
void ether_ring_producer_statistics(const ether_ring_t *ring, ether_ring_stats_t *out);

/* The shared-memory structs, for the layout test only (ffi.offsetof against the
 * documented offsets). Python code never reads shared memory through them. */
typedef struct {
    uint64_t start; uint64_t end; uint64_t next; uint64_t intent; uint64_t token;
    uint64_t cover_start; uint64_t cover_end; uint32_t slot; uint32_t state; ...;
} ether_ring_hole_t;
typedef struct {
    uint64_t magic; uint32_t layout_version; uint32_t data_offset; uint64_t capacity;
    uint64_t segment_size; uint32_t max_length; uint32_t max_producers;
    uint64_t commit_key; uint64_t owner_token; ...;
} ether_ring_descriptor_t;
typedef struct {
    ether_ring_descriptor_t descriptor; uint64_t head; uint32_t consumer_waiting; uint32_t closed;
    uint64_t received; uint64_t received_bytes; uint64_t skipped_claims; uint64_t skipped_bytes;
    uint64_t released; uint32_t hole_count;
    uint64_t tail; uint64_t head_cache; uint64_t cover_at; uint64_t cover_wanted;
    uint32_t data_futex; uint32_t space_futex;
    uint32_t space_waiters; uint64_t retired_sent; uint64_t retired_sent_bytes;
    uint64_t retired_dropped; uint64_t retired_blocked; ether_ring_hole_t holes[...]; ...;
} ether_ring_header_t;
typedef struct {
    uint64_t token; uint64_t intent_start; uint64_t intent_end; uint64_t next_seq;
    uint64_t sent; uint64_t sent_bytes; uint64_t dropped; uint64_t blocked; uint64_t skip;
    uint32_t pid; ...;
} ether_ring_slot_t;
typedef struct {
    uint64_t commit; uint32_t length; uint16_t type; uint16_t producer; uint64_t seq; ...;
} ether_ring_record_header_t;

/* Wait results (ether_atomic.h), as ether_arena_wait answers them. */
typedef enum { ETHER_WAIT_WOKEN, ETHER_WAIT_TIMED_OUT, ETHER_WAIT_INTERRUPTED, ... } ether_wait_result_t;

/* The array arena (ether_arena.h). */
#define ETHER_ARENA_VERSION ...
#define ETHER_ARENA_HOLDERS ...
#define ETHER_ARENA_MAX_BLOCKS ...
#define ETHER_ARENA_BLOCKS_AT ...

typedef enum {
    ETHER_ARENA_OK, ETHER_ARENA_NO_ROOM, ETHER_ARENA_NO_ENTRY, ETHER_ARENA_TOO_LARGE,
    ETHER_ARENA_OUT_OF_BOUNDS, ETHER_ARENA_STALE, ETHER_ARENA_BAD_SEGMENT, ETHER_ARENA_NO_MEMORY, ...
} ether_arena_result_t;

/* Filled by ether_arena_view_init; Python never reads or writes its fields. */
typedef struct { ...; } ether_arena_view_t;
typedef struct { uint32_t block; uint64_t offset; uint64_t generation; } ether_arena_grant_t;
typedef struct ether_arena ether_arena_t;
ether_arena_t *ether_arena_create(void *base, uint64_t size, uint32_t max_blocks, uint64_t owner);
void ether_arena_destroy(ether_arena_t *arena);
int ether_arena_alloc(ether_arena_t *arena, uint64_t length, uint64_t alignment,
                      uint64_t holders, ether_arena_grant_t *out);
uint64_t ether_arena_hold(ether_arena_t *arena, uint32_t block, uint64_t bits);
uint64_t ether_arena_drop_holders(ether_arena_t *arena, uint32_t block, uint64_t bits);
void ether_arena_clear_bits(ether_arena_t *arena, uint64_t mask);
uint32_t ether_arena_live(ether_arena_t *arena, uint64_t *bytes);
uint64_t ether_arena_bits_in_use(ether_arena_t *arena);
uint64_t ether_arena_data_size(const ether_arena_t *arena);
uint64_t ether_arena_data_offset(const ether_arena_t *arena);
int ether_arena_wait(ether_arena_t *arena, uint64_t timeout_ns);
void ether_arena_set_holder(ether_arena_t *arena, uint32_t bit, uint64_t token);
int ether_arena_view_init(ether_arena_view_t *view, void *base, uint64_t mapped, uint32_t bit);
uint64_t ether_arena_owner(const void *base, uint64_t mapped);
int ether_arena_check(const ether_arena_view_t *view, uint32_t block, uint64_t generation,
                      uint64_t offset, uint64_t length);
int ether_arena_release(const ether_arena_view_t *view, uint32_t block);
typedef struct ether_arena_reader ether_arena_reader_t;
ether_arena_reader_t *ether_arena_reader_open(void *base, uint64_t mapped, uint64_t token, int *error);
void ether_arena_reader_close(ether_arena_reader_t *reader);
uint64_t ether_arena_reader_data_offset(const ether_arena_reader_t *reader);
int ether_arena_acquire(ether_arena_reader_t *reader, uint32_t block, uint64_t generation,
                        uint64_t offset, uint64_t length);
void ether_arena_unhold(ether_arena_reader_t *reader, uint32_t block, uint64_t generation);

/* The arena's shared-memory structs (ether_arena_layout.h), for the layout test only. */
typedef struct {
    uint64_t bitmap; uint64_t offset; uint64_t length; uint64_t generation; ...;
} ether_arena_block_t;
typedef struct {
    uint64_t magic; uint32_t version; uint32_t max_blocks; uint64_t size; uint64_t data_offset;
    uint64_t owner; uint32_t freed; uint32_t waiting; uint64_t summary; uint64_t reserved;
    uint64_t holders[64]; uint64_t released[64]; ether_arena_block_t blocks[]; ...;
} ether_arena_header_t;

/* ether_process.h */
int ether_parent_death_signal(int signum);
