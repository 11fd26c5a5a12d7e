/*
 * ether_atomic.h - every ordering primitive and the wait/wake calls of the C core.
 *
 * Every atomic access of the C core (ring and arena) goes through these macros,
 * so that the memory order of each one is visible at the call site, next to its
 * SYNC POINT comment. Nothing here knows about a layout.
 *
 * Wait/wake is a futex on Linux. The futex word lives in shared memory, so the
 * calls are the non-private variants (FUTEX_WAIT / FUTEX_WAKE without
 * FUTEX_PRIVATE_FLAG): waiters and wakers are in different processes.
 */
#ifndef ETHER_ATOMIC_H
#define ETHER_ATOMIC_H

#include <stdint.h>
#include <stdatomic.h>

/* Loads and stores. */
#define ETHER_LOAD_ACQUIRE(p)      atomic_load_explicit((p), memory_order_acquire)
#define ETHER_LOAD_RELAXED(p)      atomic_load_explicit((p), memory_order_relaxed)
#define ETHER_LOAD_SEQ_CST(p)      atomic_load_explicit((p), memory_order_seq_cst)
#define ETHER_STORE_RELEASE(p, v)  atomic_store_explicit((p), (v), memory_order_release)
#define ETHER_STORE_RELAXED(p, v)  atomic_store_explicit((p), (v), memory_order_relaxed)
#define ETHER_STORE_SEQ_CST(p, v)  atomic_store_explicit((p), (v), memory_order_seq_cst)
#define ETHER_FENCE_SEQ_CST()      atomic_thread_fence(memory_order_seq_cst)

/* Read-modify-writes; each returns the value before. acq_rel unless named. */
#define ETHER_FETCH_ADD(p, v)      atomic_fetch_add_explicit((p), (v), memory_order_acq_rel)
#define ETHER_FETCH_ADD_RELAXED(p, v) atomic_fetch_add_explicit((p), (v), memory_order_relaxed)
#define ETHER_FETCH_ADD_SEQ_CST(p, v) atomic_fetch_add_explicit((p), (v), memory_order_seq_cst)
#define ETHER_FETCH_SUB(p, v)      atomic_fetch_sub_explicit((p), (v), memory_order_acq_rel)
#define ETHER_FETCH_SUB_SEQ_CST(p, v) atomic_fetch_sub_explicit((p), (v), memory_order_seq_cst)
#define ETHER_FETCH_OR(p, v)       atomic_fetch_or_explicit((p), (v), memory_order_acq_rel)
#define ETHER_FETCH_AND(p, v)      atomic_fetch_and_explicit((p), (v), memory_order_acq_rel)
#define ETHER_EXCHANGE(p, v)       atomic_exchange_explicit((p), (v), memory_order_acq_rel)
/* Strong CAS; on failure *expected_ptr receives the current value (acquire). */
#define ETHER_CAS(p, expected_ptr, desired) \
    atomic_compare_exchange_strong_explicit((p), (expected_ptr), (desired), \
                                            memory_order_acq_rel, memory_order_acquire)

static inline void ether_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* Give up the core to another runnable thread, if there is one. */
void ether_yield(void);

/* Monotonic clock in nanoseconds. */
uint64_t ether_now_ns(void);

/* Result of ether_futex_wait. */
typedef enum {
    ETHER_WAIT_WOKEN = 0,       /* woken, or the word had already changed */
    ETHER_WAIT_TIMED_OUT = 1,
    ETHER_WAIT_INTERRUPTED = 2, /* a signal arrived: the caller returns to Python */
} ether_wait_result_t;

/* Sleep while *word == expected, for at most timeout_ns. */
ether_wait_result_t ether_futex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t timeout_ns);

/* Wake up to `count` waiters sleeping on word. */
void ether_futex_wake(_Atomic uint32_t *word, int count);

#endif /* ETHER_ATOMIC_H */
