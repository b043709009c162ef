/*
 * A C subscriber (push callbacks): connects to a relay, subscribes to "demo"/"video" and prints
 * every frame with its group, its index in the group and its latency (now minus the publisher's
 * timestamp, both wall clocks on this machine). Exits when the track ends: successfully when the
 * publisher finished it (MOQT_STATUS_END, a clean end) after at least COUNT frames.
 *
 * usage: subscriber URL FINGERPRINT [COUNT]
 */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moqt.h"

struct state {
    long wanted;
    atomic_long received;
    atomic_int closed;
    atomic_int status;
    double latency_sum_ms;
};

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Runs on the library's dispatcher thread, one callback at a time. */
static void on_frame(void *user_data, const moqt_frame *frame) {
    struct state *state = user_data;
    size_t len = 0;
    const uint8_t *data = moqt_frame_data(frame, &len);
    double latency_ms = (double)(now_us() - moqt_frame_timestamp_us(frame)) / 1000.0;
    state->latency_sum_ms += latency_ms;
    printf("subscriber: group %llu frame %llu%s: %.*s  latency %.2f ms\n",
           (unsigned long long)moqt_frame_group(frame), (unsigned long long)moqt_frame_index(frame),
           moqt_frame_index(frame) == 0 ? " (keyframe)" : "", (int)len, (const char *)data, latency_ms);
    fflush(stdout);
    atomic_fetch_add(&state->received, 1);
}

static void on_gap(void *user_data, uint64_t first, uint64_t last, uint64_t code) {
    (void)user_data;
    printf("subscriber: groups %llu..%llu lost (code %llu)\n", (unsigned long long)first, (unsigned long long)last,
           (unsigned long long)code);
}

static void on_closed(void *user_data, moqt_status status) {
    struct state *state = user_data;
    if (status == MOQT_STATUS_END) {
        printf("subscriber: track ended cleanly (%s)\n", moqt_status_str(status));
    } else {
        /* moqt_last_error (and moqt_last_error_code for an abort) say more, during this call. */
        printf("subscriber: track closed: %s (%s)\n", moqt_status_str(status), moqt_last_error());
    }
    fflush(stdout);
    atomic_store(&state->status, status);
    atomic_store(&state->closed, 1);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s URL FINGERPRINT [COUNT]\n", argv[0]);
        return 2;
    }
    struct state state;
    memset(&state, 0, sizeof state);
    state.wanted = argc > 3 ? strtol(argv[3], NULL, 10) : 60;

    moqt_client_options options;
    memset(&options, 0, sizeof options);
    options.struct_size = sizeof options;
    options.tls_fingerprint = argv[2];
    /* Wait up to 30 s for the session (default 10 s): generous, as a first handshake under a
     * debugger or Valgrind is slow. */
    options.connect_attempt_timeout_ms = 30000;

    moqt_client *client = NULL;
    moqt_status status = moqt_client_connect(argv[1], SIZE_MAX, &options, &client);
    if (status != MOQT_STATUS_OK) {
        fprintf(stderr, "subscriber: connect: %s (%s)\n", moqt_status_str(status), moqt_last_error());
        return 1;
    }

    moqt_subscribe_callbacks callbacks;
    memset(&callbacks, 0, sizeof callbacks);
    callbacks.struct_size = sizeof callbacks;
    callbacks.user_data = &state;
    callbacks.on_frame = on_frame;
    callbacks.on_gap = on_gap;
    callbacks.on_closed = on_closed;

    moqt_subscription *subscription = NULL;
    status = moqt_client_subscribe(client, "demo", SIZE_MAX, "video", SIZE_MAX, &callbacks, &subscription);
    if (status != MOQT_STATUS_OK) {
        fprintf(stderr, "subscriber: subscribe: %s (%s)\n", moqt_status_str(status), moqt_last_error());
        return 1;
    }
    printf("subscriber: waiting for %ld frames of demo/video\n", state.wanted);
    fflush(stdout);

    /* Wait up to 60 s for the end of the track. */
    for (int i = 0; i < 6000 && !atomic_load(&state.closed); i++) {
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    moqt_subscription_free(subscription); /* no callback runs after this returns */
    long received = atomic_load(&state.received);
    if (received > 0) {
        printf("subscriber: received %ld frames, mean latency %.2f ms\n", received, state.latency_sum_ms / (double)received);
    }
    moqt_client_free(client);
    return received >= state.wanted && atomic_load(&state.status) == MOQT_STATUS_END ? 0 : 1;
}
