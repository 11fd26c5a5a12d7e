/*
 * harness.h - the test harness shared by test_ring.c and test_arena.c.
 *
 * Failure recording (EXPECT / EXPECT_EQ go on, CHECK / CHECK_EQ also return from the
 * test), the ThreadSanitizer report hook that fails the running test, time, a mixing
 * hash, spinning and a countdown latch, thread state from /proc, unaligned u32/u64
 * access, and the runner: the name filter from argv, one "ok"/"FAIL" line per test;
 * the caller prints its own stress line and then the summary (finish_tests).
 *
 * Each test program includes this once (everything is static, or static inline so an
 * unused helper does not warn). Define _GNU_SOURCE before any include. What differs
 * between the programs (result_name, EXPECT_RC, ...) stays in the test file.
 */
#ifndef ETHER_TESTS_HARNESS_H
#define ETHER_TESTS_HARNESS_H

#include <inttypes.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ failures */

static atomic_int g_failed;          /* the current test failed */
static atomic_int g_messages;        /* failure lines printed for the current test */

static inline void fail_at(const char *file, int line, const char *fmt, ...)
{
    atomic_store(&g_failed, 1);
    if (atomic_fetch_add(&g_messages, 1) >= 8)
        return; /* keep the output readable when a stress test goes wrong */
    va_list ap;
    va_start(ap, fmt);
    fprintf(stdout, "    %s:%d: ", file, line);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    va_end(ap);
}

static inline bool failed(void) { return atomic_load(&g_failed) != 0; }

#if !defined(__SANITIZE_THREAD__) && defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define __SANITIZE_THREAD__ 1 /* clang spells it this way */
#endif
#endif
#if defined(__SANITIZE_THREAD__)
/* ThreadSanitizer calls this for every report: the running test fails with it, so
 * a data race shows in the summary line and not only in TSan's exit code. */
void __tsan_on_report(const void *report);
void __tsan_on_report(const void *report)
{
    (void)report;
    atomic_store(&g_failed, 1);
}
#endif

static inline bool expect_eq_at(const char *file, int line, const char *a, const char *b,
                                uint64_t va, uint64_t vb)
{
    if (va == vb)
        return true;
    fail_at(file, line, "expected %s == %s, got %" PRIu64 " != %" PRIu64, a, b, va, vb);
    return false;
}

/* EXPECT records a failure and goes on; CHECK also returns from the test. */
#define EXPECT(cond) \
    ((cond) ? true : (fail_at(__FILE__, __LINE__, "expected %s", #cond), false))
#define EXPECT_EQ(a, b) \
    expect_eq_at(__FILE__, __LINE__, #a, #b, (uint64_t)(a), (uint64_t)(b))
#define CHECK(cond) do { if (!EXPECT(cond)) return; } while (0)
#define CHECK_EQ(a, b) do { if (!EXPECT_EQ(a, b)) return; } while (0)

/* ------------------------------------------------------------------ helpers */

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#define MS 1000000ull
#define SEC 1000000000ull

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Spin (yielding the CPU; this is a 2-core budget) until cond(arg). Gives up after 20 s. */
static inline bool spin_until(bool (*cond)(void *), void *arg)
{
    uint64_t give_up = now_ns() + 20 * SEC;
    for (uint32_t i = 0; !cond(arg); i++) {
        if ((i & 63) == 63) {
            if (now_ns() > give_up)
                return false;
            sched_yield();
        } else {
            cpu_relax();
        }
    }
    return true;
}

/* Countdown latch: every party arrives, then all go together. */
typedef struct { atomic_int remaining; } latch_t;

static inline void latch_init(latch_t *l, int parties) { atomic_init(&l->remaining, parties); }

static inline bool latch_open(void *arg) { return atomic_load(&((latch_t *)arg)->remaining) <= 0; }

static inline void latch_arrive_and_wait(latch_t *l)
{
    atomic_fetch_sub(&l->remaining, 1);
    spin_until(latch_open, l);
}

/* The state letter of one of our threads ('S' = sleeping, e.g. in futex_wait). */
static inline char thread_state(pid_t tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return '?';
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *close_paren = strrchr(buf, ')');
    return close_paren && close_paren[1] == ' ' ? close_paren[2] : '?';
}

static inline pid_t my_tid(void) { return (pid_t)syscall(SYS_gettid); }

/* Unaligned little-endian (host order) access to segment fields. */
static inline uint64_t get_u64(const uint8_t *at) { uint64_t v; memcpy(&v, at, sizeof v); return v; }
static inline uint32_t get_u32(const uint8_t *at) { uint32_t v; memcpy(&v, at, sizeof v); return v; }
static inline void put_u64(uint8_t *at, uint64_t v) { memcpy(at, &v, sizeof v); }
static inline void put_u32(uint8_t *at, uint32_t v) { memcpy(at, &v, sizeof v); }

/* A positive integer from the environment variable `name` into *value; unset, empty or
 * not positive leaves *value alone. */
static inline void env_u32(const char *name, uint32_t *value)
{
    const char *env = getenv(name);
    if (env && *env) {
        long v = strtol(env, NULL, 10);
        if (v > 0)
            *value = (uint32_t)v;
    }
}

/* ------------------------------------------------------------------ runner */

typedef struct { const char *name; void (*fn)(void); } test_t;
#define TEST(f) {#f, f}
#define TEST_COUNT(tests) (sizeof(tests) / sizeof((tests)[0]))

typedef struct {
    int passed, failures;
    uint64_t start_ns;      /* when the run began */
} run_t;

/* No arguments: every test; otherwise the tests whose name contains one of them. */
static inline bool selected(const char *name, int argc, char **argv)
{
    if (argc < 2)
        return true;
    for (int i = 1; i < argc; i++)
        if (strstr(name, argv[i]))
            return true;
    return false;
}

/* Run the selected tests, one "ok"/"FAIL" line each. stdout is line buffered and a
 * hung test cannot hang the run forever (alarm). */
static inline run_t run_tests(const test_t *tests, size_t count, int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    alarm(600);
    run_t run = {0, 0, now_ns()};
    for (size_t i = 0; i < count; i++) {
        if (!selected(tests[i].name, argc, argv))
            continue;
        atomic_store(&g_failed, 0);
        atomic_store(&g_messages, 0);
        uint64_t t0 = now_ns();
        tests[i].fn();
        double ms = (double)(now_ns() - t0) / MS;
        if (failed()) {
            run.failures++;
            printf("FAIL %s (%.0f ms)\n", tests[i].name, ms);
        } else {
            run.passed++;
            printf("ok   %s (%.0f ms)\n", tests[i].name, ms);
        }
    }
    return run;
}

/* Seconds since the run began, for the caller's stress line. */
static inline double run_seconds(const run_t *run) { return (double)(now_ns() - run->start_ns) / SEC; }

/* The summary line "N passed, M failed"; the exit status (1 on any failure). */
static inline int finish_tests(const run_t *run)
{
    printf("%d passed, %d failed\n", run->passed, run->failures);
    return run->failures ? 1 : 0;
}

#endif /* ETHER_TESTS_HARNESS_H */
