/*
 * A C subscriber in pull mode: no callbacks. It waits on the subscription's file descriptor with
 * poll() (as a main loop or GStreamer's GstPoll would), then takes every queued frame without
 * blocking. Prints each frame with its latency and exits when the track ends: successfully when
 * the publisher finished it (MOQT_STATUS_END, a clean end) after at least COUNT frames.
 *
 * usage: subscriber_poll URL FINGERPRINT [COUNT]
 */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moqt.h"

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s URL FINGERPRINT [COUNT]\n", argv[0]);
        return 2;
    }
    long wanted = argc > 3 ? strtol(argv[3], NULL, 10) : 60;

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
        fprintf(stderr, "subscriber_poll: connect: %s (%s)\n", moqt_status_str(status), moqt_last_error());
        return 1;
    }
    moqt_pull *pull = NULL;
    status = moqt_client_subscribe_pull(client, "demo", SIZE_MAX, "video", SIZE_MAX, &pull);
    if (status != MOQT_STATUS_OK) {
        fprintf(stderr, "subscriber_poll: subscribe: %s (%s)\n", moqt_status_str(status), moqt_last_error());
        return 1;
    }
    printf("subscriber_poll: waiting for %ld frames of demo/video on fd %d\n", wanted, moqt_pull_fd(pull));
    fflush(stdout);

    long received = 0;
    int idle_rounds = 0;
    status = MOQT_STATUS_ERR_AGAIN;
    /* The fd is readable while frames are queued, and once the track has ended. */
    while (status == MOQT_STATUS_OK || status == MOQT_STATUS_ERR_AGAIN) {
        struct pollfd fds = {moqt_pull_fd(pull), POLLIN, 0};
        if (poll(&fds, 1, 100) <= 0) {
            if (++idle_rounds >= 600) break;
            continue;
        }
        const moqt_frame *frame = NULL;
        while ((status = moqt_pull_next_frame(pull, 0, &frame)) == MOQT_STATUS_OK) {
            size_t len = 0;
            const uint8_t *data = moqt_frame_data(frame, &len);
            printf("subscriber_poll: group %llu frame %llu: %.*s  latency %.2f ms\n",
                   (unsigned long long)moqt_frame_group(frame), (unsigned long long)moqt_frame_index(frame), (int)len,
                   (const char *)data, (double)(now_us() - moqt_frame_timestamp_us(frame)) / 1000.0);
            moqt_frame_unref(frame);
            received++;
        }
        /* The fd stays readable while gap reports wait too: take them. */
        uint64_t first, last, code;
        while (moqt_pull_next_gap(pull, &first, &last, &code) == MOQT_STATUS_OK)
            printf("subscriber_poll: groups %llu..%llu will not arrive (code %llu)\n", (unsigned long long)first,
                   (unsigned long long)last, (unsigned long long)code);
    }
    if (status == MOQT_STATUS_END) {
        printf("subscriber_poll: track ended cleanly (%s)\n", moqt_status_str(status));
    } else {
        printf("subscriber_poll: track closed: %s (%s)\n", moqt_status_str(status), moqt_last_error());
    }
    printf("subscriber_poll: received %ld frames\n", received);
    moqt_pull_free(pull);
    moqt_client_free(client);
    return received >= wanted && status == MOQT_STATUS_END ? 0 : 1;
}
