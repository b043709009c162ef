/*
 * moqt_set_thread_hooks: every engine thread runs on_start first and on_stop last, with its name;
 * hooks are refused once the engine runs; moqt_shutdown ends every thread that started, each
 * running on_stop. Exit 0 when that holds.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "moqt.h"

/* Plain counters under a mutex: this file also compiles as C++. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int io_started, cb_started, other_started, stopped;

static void on_start(void *user_data, const char *name) {
    pthread_mutex_lock(&lock);
    if (user_data != (void *)&io_started) {
        other_started++;
    } else if (strcmp(name, "moqt-io") == 0) {
        io_started++;
    } else if (strcmp(name, "moqt-cb") == 0) {
        cb_started++;
    } else {
        other_started++;
    }
    pthread_mutex_unlock(&lock);
}

static void on_stop(void *user_data, const char *name) {
    (void)user_data;
    (void)name;
    pthread_mutex_lock(&lock);
    stopped++;
    pthread_mutex_unlock(&lock);
}

int main(void) {
    if (moqt_set_thread_hooks(on_start, on_stop, &io_started) != MOQT_STATUS_OK) {
        fprintf(stderr, "thread_hooks: refused before the engine started: %s\n", moqt_last_error());
        return 1;
    }
    /* Starting an embedded relay starts the engine. */
    moqt_relay *relay = NULL;
    if (moqt_relay_start("127.0.0.1:0", SIZE_MAX, NULL, &relay) != MOQT_STATUS_OK) {
        fprintf(stderr, "thread_hooks: relay: %s\n", moqt_last_error());
        return 1;
    }
    if (moqt_set_thread_hooks(on_start, on_stop, NULL) != MOQT_STATUS_ERR_UNSUPPORTED) {
        fprintf(stderr, "thread_hooks: hooks accepted while the engine runs\n");
        return 1;
    }
    moqt_relay_stop(relay, NULL, 0);
    /* The network threads start on their own schedule: give them up to 2 s. */
    for (int i = 0; i < 200; i++) {
        pthread_mutex_lock(&lock);
        int seen = io_started;
        pthread_mutex_unlock(&lock);
        if (seen > 0) break;
        struct timespec tick = {0, 10 * 1000 * 1000};
        nanosleep(&tick, NULL);
    }
    pthread_mutex_lock(&lock);
    int io = io_started, cb = cb_started, other = other_started;
    pthread_mutex_unlock(&lock);
    printf("thread_hooks: %d moqt-io, %d moqt-cb, %d other\n", io, cb, other);
    /* The engine ends: every thread that ran on_start runs on_stop (so Valgrind sees no thread
     * and no memory of ours left). */
    moqt_shutdown();
    /* Counted again: more network threads may have started after the first count. */
    pthread_mutex_lock(&lock);
    int ended = stopped, started = io_started + cb_started + other_started;
    pthread_mutex_unlock(&lock);
    printf("thread_hooks: %d of %d threads stopped\n", ended, started);
    return io >= 1 && cb == 1 && other == 0 && ended == started ? 0 : 1;
}
