/*
 * C API delivery cost, measured from C through the real library: how much CPU the delivering
 * thread spends per frame. A publisher and a subscriber (two clients in this process) meet at a
 * relay; every frame is published (and the track finished) before the subscriber's clock starts.
 *
 *   callback: CPU time of the library's dispatcher thread (CLOCK_THREAD_CPUTIME_ID read inside
 *             on_frame) between the first and the last frame: dequeue, frame handle, the call,
 *             the unref. The network threads are not in it.
 *   pull:     CPU time of the C thread calling moqt_pull_next_frame, moqt_frame_data and
 *             moqt_frame_unref for every frame (waiting included when its queue runs dry).
 *
 * usage: delivery URL FINGERPRINT callback|pull [FRAMES]
 * prints: delivery MODE: N frames, X ns per frame on the delivering thread
 */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moqt.h"

static uint64_t thread_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* How many times the calling thread has gone to sleep (voluntary context switches): the wake-ups
 * the delivery cost. */
static long thread_sleeps(void) {
    FILE *status = fopen("/proc/thread-self/status", "r");
    long sleeps = -1;
    char line[256];
    while (status && fgets(line, sizeof line, status))
        if (sscanf(line, "voluntary_ctxt_switches: %ld", &sleeps) == 1) break;
    if (status) fclose(status);
    return sleeps;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

struct counter {
    atomic_long frames;
    long wanted;
    uint64_t first_cpu;
    uint64_t last_cpu;
    long first_sleeps;
    long last_sleeps;
    atomic_int done;
};

static void on_frame(void *user_data, const moqt_frame *frame) {
    struct counter *c = user_data;
    size_t len = 0;
    const uint8_t *data = moqt_frame_data(frame, &len);
    (void)data;
    long n = atomic_fetch_add(&c->frames, 1) + 1;
    if (n == 1) {
        c->first_sleeps = thread_sleeps();
        c->first_cpu = thread_cpu_ns();
    }
    if (n == c->wanted) {
        c->last_cpu = thread_cpu_ns();
        c->last_sleeps = thread_sleeps();
        atomic_store(&c->done, 1);
    }
}

static void on_gap(void *user_data, uint64_t first, uint64_t last, uint64_t code) {
    (void)user_data;
    fprintf(stderr, "delivery: gap %llu..%llu code %llu\n", (unsigned long long)first, (unsigned long long)last,
            (unsigned long long)code);
}

static void on_closed(void *user_data, moqt_status status) {
    (void)user_data;
    (void)status;
}

static moqt_client *connect_or_die(const char *url, const char *fingerprint) {
    moqt_client_options options;
    memset(&options, 0, sizeof options);
    options.struct_size = sizeof options;
    options.tls_fingerprint = fingerprint;
    moqt_client *client = NULL;
    moqt_status status = moqt_client_connect(url, SIZE_MAX, &options, &client);
    if (status != MOQT_STATUS_OK) {
        fprintf(stderr, "delivery: connect: %s (%s)\n", moqt_status_str(status), moqt_last_error());
        exit(1);
    }
    return client;
}

/* Writes `count` 64-byte frames in groups of 100, in bursts of 500 with a pause between, so the
 * subscriber's queue never runs dry but its bounds are not overrun. */
static void publish_frames(const moqt_track *track, long count) {
    uint8_t payload[64];
    memset(payload, 7, sizeof payload);
    for (long i = 0; i < count; i++) {
        uint32_t flags = i % 100 == 0 ? MOQT_FRAME_NEW_GROUP : 0;
        if (moqt_track_write_frame(track, payload, sizeof payload, (uint64_t)i, flags) != MOQT_STATUS_OK) {
            fprintf(stderr, "delivery: write: %s\n", moqt_last_error());
            exit(1);
        }
        if (i % 500 == 499) sleep_ms(2);
    }
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s URL FINGERPRINT callback|pull [FRAMES]\n", argv[0]);
        return 2;
    }
    int pull_mode = strcmp(argv[3], "pull") == 0;
    /* At most 1000 groups of 100: the publisher's cache holds them all until they are read. */
    long frames = argc > 4 ? strtol(argv[4], NULL, 10) : 100000;

    moqt_client *publisher = connect_or_die(argv[1], argv[2]);
    moqt_client *subscriber = connect_or_die(argv[1], argv[2]);
    moqt_broadcast *broadcast = NULL;
    moqt_track *track = NULL;
    if (moqt_client_publish(publisher, "bench", SIZE_MAX, &broadcast) != MOQT_STATUS_OK ||
        moqt_broadcast_create_track(broadcast, "t", SIZE_MAX, 1, 60000, &track) != MOQT_STATUS_OK) {
        fprintf(stderr, "delivery: publish: %s\n", moqt_last_error());
        return 1;
    }

    /* Every frame is published, and the track finished (a reader waits on an open group), before
     * the clock starts: what is measured is delivery, not the publisher's pace. */
    uint64_t cpu_ns = 0;
    long delivered = 0, sleeps = 0;
    moqt_pull *pull = NULL;
    moqt_subscription *subscription = NULL;
    struct counter counter;
    memset(&counter, 0, sizeof counter);
    counter.wanted = frames;
    if (pull_mode) {
        if (moqt_client_subscribe_pull(subscriber, "bench", SIZE_MAX, "t", SIZE_MAX, &pull) != MOQT_STATUS_OK) {
            fprintf(stderr, "delivery: subscribe: %s\n", moqt_last_error());
            return 1;
        }
    } else {
        moqt_subscribe_callbacks callbacks;
        memset(&callbacks, 0, sizeof callbacks);
        callbacks.struct_size = sizeof callbacks;
        callbacks.user_data = &counter;
        callbacks.on_frame = on_frame;
        callbacks.on_gap = on_gap;
        callbacks.on_closed = on_closed;
        if (moqt_client_subscribe(subscriber, "bench", SIZE_MAX, "t", SIZE_MAX, &callbacks, &subscription) !=
            MOQT_STATUS_OK) {
            fprintf(stderr, "delivery: subscribe: %s\n", moqt_last_error());
            return 1;
        }
    }
    /* Every frame counts: write the first only once the subscription has reached the publisher. */
    if (moqt_track_wait_subscribed(track, 30000) != MOQT_STATUS_OK) {
        fprintf(stderr, "delivery: no subscriber: %s\n", moqt_last_error());
        return 1;
    }
    publish_frames(track, frames);
    moqt_track_free(track);
    if (pull_mode) {
        const moqt_frame *frame = NULL;
        long first_sleeps = thread_sleeps();
        uint64_t start = thread_cpu_ns();
        while (delivered < frames && moqt_pull_next_frame(pull, 5000, &frame) == MOQT_STATUS_OK) {
            size_t len = 0;
            (void)moqt_frame_data(frame, &len);
            moqt_frame_unref(frame);
            delivered++;
        }
        cpu_ns = thread_cpu_ns() - start;
        sleeps = thread_sleeps() - first_sleeps;
        moqt_pull_free(pull);
    } else {
        for (int i = 0; i < 1200 && !atomic_load(&counter.done); i++) sleep_ms(50);
        moqt_subscription_free(subscription);
        delivered = atomic_load(&counter.frames);
        if (atomic_load(&counter.done)) {
            cpu_ns = counter.last_cpu - counter.first_cpu;
            sleeps = counter.last_sleeps - counter.first_sleeps;
            delivered -= 1; /* intervals between the first and the last frame */
        }
    }
    if (delivered < (pull_mode ? frames : frames - 1)) {
        fprintf(stderr, "delivery: only %ld of %ld frames arrived\n", delivered, frames);
        return 1;
    }
    printf("delivery %s: %ld frames, %.0f ns per frame on the delivering thread, which slept %ld times\n",
           pull_mode ? "pull" : "callback", delivered, (double)cpu_ns / (double)(delivered > 0 ? delivered : 1), sleeps);
    moqt_broadcast_free(broadcast);
    moqt_client_free(subscriber);
    moqt_client_free(publisher);
    return delivered > 0 ? 0 : 1;
}
