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
