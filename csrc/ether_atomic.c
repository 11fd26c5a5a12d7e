/*
 * ether_atomic.c - the monotonic clock and futex wait/wake (Linux).
 */
#define _GNU_SOURCE
#include "ether_atomic.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <time.h>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#else
#error "ether: wait/wake is implemented for Linux only so far (macOS is on the roadmap)"
#endif

void ether_yield(void) { sched_yield(); }

uint64_t ether_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

ether_wait_result_t ether_futex_wait(_Atomic uint32_t *word, uint32_t expected, uint64_t timeout_ns)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(timeout_ns / 1000000000ull);
    ts.tv_nsec = (long)(timeout_ns % 1000000000ull);
    /* Shared futex: the word is in a segment mapped by several processes. */
    long rc = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, expected, &ts, NULL, 0);
    if (rc == 0)
        return ETHER_WAIT_WOKEN;
    switch (errno) {
    case EAGAIN:
        return ETHER_WAIT_WOKEN; /* the word changed before we slept */
    case ETIMEDOUT:
        return ETHER_WAIT_TIMED_OUT;
    case EINTR:
        return ETHER_WAIT_INTERRUPTED;
    default:
        return ETHER_WAIT_WOKEN; /* spurious: callers re-check their condition */
    }
}

void ether_futex_wake(_Atomic uint32_t *word, int count)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, count > 0 ? count : INT_MAX, NULL, NULL, 0);
}

/* Word operations on shared memory outside the ring (the array arena's holder
 * bitmaps and block words). Every one is a full acquire/release operation. */
uint64_t ether_shm_load_u64(const void *addr)
{
    /* SYNC POINT: acquire; pairs with ether_shm_store_u64 / fetch_* releases. */
    return atomic_load_explicit((const _Atomic uint64_t *)addr, memory_order_acquire);
}

void ether_shm_store_u64(void *addr, uint64_t value)
{
    /* SYNC POINT: release; pairs with ether_shm_load_u64. */
    atomic_store_explicit((_Atomic uint64_t *)addr, value, memory_order_release);
}

uint64_t ether_shm_fetch_and_u64(void *addr, uint64_t mask)
{
    /* SYNC POINT: acq_rel; a holder's release of its bit pairs with the owner's
     * acquire load before it reuses the block. */
    return atomic_fetch_and_explicit((_Atomic uint64_t *)addr, mask, memory_order_acq_rel);
}

uint64_t ether_shm_fetch_or_u64(void *addr, uint64_t bits)
{
    /* SYNC POINT: acq_rel; pairs as above. */
    return atomic_fetch_or_explicit((_Atomic uint64_t *)addr, bits, memory_order_acq_rel);
}

uint32_t ether_shm_load_u32(const void *addr)
{
    /* SYNC POINT: acquire; pairs with ether_shm_add_u32. */
    return atomic_load_explicit((const _Atomic uint32_t *)addr, memory_order_acquire);
}

uint32_t ether_shm_add_u32(void *addr, int32_t delta)
{
    /* SYNC POINT: acq_rel (a full barrier): the Dekker pairs of a futex
     * eventcount announce a sleeper, then re-check its condition. */
    return atomic_fetch_add_explicit((_Atomic uint32_t *)addr, (uint32_t)delta, memory_order_acq_rel);
}

int ether_shm_wait_u32(void *addr, uint32_t expected, uint64_t timeout_ns)
{
    return (int)ether_futex_wait((_Atomic uint32_t *)addr, expected, timeout_ns);
}

void ether_shm_wake_u32(void *addr)
{
    ether_futex_wake((_Atomic uint32_t *)addr, 0x7fffffff);
}
