/*
 * A C publisher: connects to a relay, publishes broadcast "demo" with track "video", and writes
 * COUNT frames at about 30 per second, a new group every 30 frames. Each frame carries the wall
 * clock in microseconds as its timestamp, so the subscriber can print the latency. Then it
 * finishes the track and leaves at once: moqt_client_flush waits until the end has reached the
 * relay (moqt_client_free would drain it too), so subscribers see a clean end (MOQT_STATUS_END).
 *
 * usage: publisher URL FINGERPRINT [COUNT]
 */
#define _POSIX_C_SOURCE 200809L
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

static int fail(const char *what, moqt_status status) {
    fprintf(stderr, "publisher: %s: %s (%s)\n", what, moqt_status_str(status), moqt_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s URL FINGERPRINT [COUNT]\n", argv[0]);
        return 2;
    }
    long count = argc > 3 ? strtol(argv[3], NULL, 10) : 90;

    moqt_client_options options;
    memset(&options, 0, sizeof options);
    options.struct_size = sizeof options;
    options.tls_fingerprint = argv[2];
    /* Wait up to 30 s for the session (default 10 s): generous, as a first handshake under a
     * debugger or Valgrind is slow. */
    options.connect_attempt_timeout_ms = 30000;

    moqt_client *client = NULL;
    moqt_status status = moqt_client_connect(argv[1], SIZE_MAX, &options, &client);
    if (status != MOQT_STATUS_OK) return fail("connect", status);

    moqt_broadcast *broadcast = NULL;
    status = moqt_client_publish(client, "demo", SIZE_MAX, &broadcast);
    if (status != MOQT_STATUS_OK) return fail("publish", status);

    moqt_track *track = NULL;
    status = moqt_broadcast_create_track(broadcast, "video", SIZE_MAX, 2, 5000, &track);
    if (status != MOQT_STATUS_OK) return fail("create track", status);
    printf("publisher: publishing demo/video, %ld frames\n", count);
    fflush(stdout);

    /* Start once someone watches: the first group then reaches that subscriber whole. */
    status = moqt_track_wait_subscribed(track, 30000);
    if (status != MOQT_STATUS_OK) return fail("wait for a subscriber", status);

    for (long i = 0; i < count; i++) {
        char payload[64];
        int len = snprintf(payload, sizeof payload, "frame %ld", i);
        uint32_t flags = (i % 30 == 0) ? MOQT_FRAME_NEW_GROUP : 0;
        status = moqt_track_write_frame(track, (const uint8_t *)payload, (size_t)len, now_us(), flags);
        if (status != MOQT_STATUS_OK) return fail("write frame", status);
        struct timespec pause = {0, 33 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    printf("publisher: wrote %ld frames\n", count);
    /* The end of the track, and everything before it, reaches the relay before the client goes. */
    status = moqt_track_finish(track);
    if (status != MOQT_STATUS_OK) return fail("finish", status);
    status = moqt_client_flush(client, 5000);
    printf("publisher: finished; flush: %s\n", status == MOQT_STATUS_OK ? "ok" : moqt_last_error());

    moqt_track_free(track);
    moqt_broadcast_free(broadcast);
    moqt_client_free(client);
    return 0;
}
