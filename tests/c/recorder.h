/*
 * A flight recorder for the C test programs: the library's log (moqt's own lines down to trace,
 * its dependencies' down to debug) kept in memory, the last RECORDER_LINES lines, and printed to
 * stderr only when a check failed. A failure that shows up once in a loaded CI run then comes
 * with what the library did before it.
 * Include after moqt.h and check.h; call recorder_start() first and recorder_report() last.
 */
#ifndef MOQT_TEST_RECORDER_H
#define MOQT_TEST_RECORDER_H

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define RECORDER_LINES 2000
#define RECORDER_WIDTH 320

static struct {
    pthread_mutex_t lock;
    char lines[RECORDER_LINES][RECORDER_WIDTH];
    unsigned long long written;
    struct timespec started;
} recorder = {PTHREAD_MUTEX_INITIALIZER, {{0}}, 0, {0, 0}};

static void recorder_log(void *user_data, uint32_t level, const char *target, const char *message) {
    (void)user_data;
    if (level == MOQT_LOG_LEVEL_TRACE && strncmp(target, "moqt", 4) != 0) return;
    static const char *const names[] = {"OFF", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"};
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long ms = (long long)(now.tv_sec - recorder.started.tv_sec) * 1000 +
                   (now.tv_nsec - recorder.started.tv_nsec) / 1000000;
    pthread_mutex_lock(&recorder.lock);
    char *line = recorder.lines[recorder.written % RECORDER_LINES];
    snprintf(line, RECORDER_WIDTH, "%7lld ms %-5s %s: %s", ms, names[level <= 5 ? level : 0], target, message);
    recorder.written++;
    pthread_mutex_unlock(&recorder.lock);
}

/* Starts recording the library's log. */
static void recorder_start(void) {
    clock_gettime(CLOCK_MONOTONIC, &recorder.started);
    moqt_set_log_callback(recorder_log, NULL, MOQT_LOG_LEVEL_TRACE);
}

/* Stops recording; when a check failed, prints what was recorded, oldest first. */
static void recorder_report(void) {
    moqt_set_log_callback(NULL, NULL, MOQT_LOG_LEVEL_OFF);
    if (failures == 0) return;
    pthread_mutex_lock(&recorder.lock);
    unsigned long long first = recorder.written > RECORDER_LINES ? recorder.written - RECORDER_LINES : 0;
    fprintf(stderr, "%s: the library's last %llu log lines:\n", TEST_NAME, recorder.written - first);
    for (unsigned long long i = first; i < recorder.written; i++)
        fprintf(stderr, "  %s\n", recorder.lines[i % RECORDER_LINES]);
    pthread_mutex_unlock(&recorder.lock);
}

#endif
