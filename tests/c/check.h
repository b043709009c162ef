/*
 * What the C test programs share: CHECK, which counts a failed condition and says which (the
 * program's name first, from TEST_NAME), and sleep_ms.
 */
#ifndef MOQT_TEST_CHECK_H
#define MOQT_TEST_CHECK_H

#include <stdio.h>
#include <time.h>

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

#endif
