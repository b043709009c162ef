/*
 * What the C test programs share: CHECK, which counts a failed condition and says which (the
 * program's name first, from TEST_NAME), sleep_ms, and reading or waiting for a counter that
 * callbacks update under a mutex.
 */
#ifndef MOQT_TEST_CHECK_H
#define MOQT_TEST_CHECK_H

#include <pthread.h>
#include <stdio.h>
#include <time.h>

/* Progress reaches the log line by line even when the program is killed (a hang under test). */
__attribute__((constructor)) static void line_buffered_stdout(void) { setvbuf(stdout, NULL, _IOLBF, 0); }

/* connect_attempt_timeout_ms for the tests: under Valgrind on a loaded machine one handshake can
 * take longer than the default 10 s. */
#define SLOW_ATTEMPT_MS 60000

static int failures = 0;
#define CHECK(cond, what)                                          \
    do {                                                           \
        if (!(cond)) {                                             \
            fprintf(stderr, "%s: FAILED: %s\n", TEST_NAME, what); \
            failures++;                                            \
        }                                                          \
    } while (0)

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* `*field`, read under `lock`. */
static inline int locked_int(pthread_mutex_t *lock, const int *field) {
    pthread_mutex_lock(lock);
    int value = *field;
    pthread_mutex_unlock(lock);
    return value;
}

/* Waits up to `seconds` (generous: Valgrind and a loaded machine are slow) for `*field`, read
 * under `lock`, to reach `want`; returns its last value. */
static inline int wait_locked(pthread_mutex_t *lock, const int *field, int want, int seconds) {
    for (int i = 0; i < seconds * 100 && locked_int(lock, field) < want; i++) sleep_ms(10);
    return locked_int(lock, field);
}

#endif
