/*
 * The server side and the session requests of the C API, against an embedded relay:
 *   - on_session admits or refuses each session by its path and query, and sees its version;
 *     a refused client fails to connect; on_session_user_data_free runs exactly once, when the
 *     relay stops, and also when moqt_relay_start fails;
 *   - FETCH of a past group delivers its frames in order with their group and index, then
 *     on_closed(OK); a group the publisher does not have ends with MOQT_STATUS_ERR_NOT_FOUND;
 *   - moqt_client_get_stats gives the version and QUIC path statistics; moqt_client_probe makes
 *     the peer report its bitrate and RTT (PROBE);
 *   - moqt_track_abort ends a subscriber's subscription with an error, not as a finished track.
 * Ends with moqt_shutdown so the sanitizers and Valgrind see the engine's whole life.
 * Exit 0 when every check holds; prints what failed otherwise.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moqt.h"

#define TEST_NAME "server"
#include "check.h"

/* What on_session saw. */
struct admission {
    pthread_mutex_t lock;
    int admitted;
    int refused;
    unsigned last_version;
    char last_path[128];
    int frees;
};

static bool on_session(void *user_data, const char *path, size_t path_len, uint32_t version) {
    struct admission *a = (struct admission *)user_data;
    bool admit = path_len >= 3 && memcmp(path, "/ok", 3) == 0;
    pthread_mutex_lock(&a->lock);
    if (admit) a->admitted++;
    else a->refused++;
    a->last_version = version;
    size_t n = path_len < sizeof a->last_path - 1 ? path_len : sizeof a->last_path - 1;
    memcpy(a->last_path, path, n);
    a->last_path[n] = '\0';
    pthread_mutex_unlock(&a->lock);
    return admit;
}

static void admission_free(void *user_data) {
    struct admission *a = (struct admission *)user_data;
    pthread_mutex_lock(&a->lock);
    a->frees++;
    pthread_mutex_unlock(&a->lock);
}

static int admission_frees(struct admission *a) {
    pthread_mutex_lock(&a->lock);
    int frees = a->frees;
    pthread_mutex_unlock(&a->lock);
    return frees;
}

/* Waits up to 5 s for the admission's frees to reach `want`. */
static int wait_frees(struct admission *a, int want) {
    for (int i = 0; i < 500 && admission_frees(a) < want; i++) sleep_ms(10);
    return admission_frees(a);
}

static moqt_relay_options relay_options(struct admission *a) {
    moqt_relay_options options;
    memset(&options, 0, sizeof options);
    options.struct_size = sizeof options;
    options.on_session = on_session;
    options.on_session_user_data = a;
    options.on_session_user_data_free = admission_free;
    return options;
}

static moqt_status connect_to(const char *url, const char *fingerprint, moqt_client **client) {
    moqt_client_options options;
    memset(&options, 0, sizeof options);
    options.struct_size = sizeof options;
    options.tls_fingerprint = fingerprint;
    options.connect_attempt_timeout_ms = SLOW_ATTEMPT_MS;
    /* A refused session gives up at once (UNAUTHORIZED); this bounds one that is not answered. */
    options.give_up_after_ms = 2 * SLOW_ATTEMPT_MS;
    return moqt_client_connect(url, SIZE_MAX, &options, client);
}

/* What a FETCH delivered. */
struct fetched {
    pthread_mutex_t lock;
    int frames;
    int keyframes;
    uint64_t last_raw;
    uint64_t last_timescale;
    uint64_t last_us;
    int in_order;
    uint64_t group;
    char text[64];
    int closed;
    moqt_status status;
    int frees;
};

static void fetch_frame(void *user_data, const moqt_frame *frame) {
    struct fetched *f = (struct fetched *)user_data;
    size_t len = 0;
    const uint8_t *data = moqt_frame_data(frame, &len);
    pthread_mutex_lock(&f->lock);
    if (moqt_frame_index(frame) == (uint64_t)f->frames) f->in_order++;
    if (moqt_frame_is_keyframe(frame)) f->keyframes++;
    f->last_raw = moqt_frame_timestamp(frame, &f->last_timescale);
    f->last_us = moqt_frame_timestamp_us(frame);
    f->group = moqt_frame_group(frame);
    size_t used = strlen(f->text);
    if (used + len < sizeof f->text) {
        memcpy(f->text + used, data, len);
        f->text[used + len] = '\0';
    }
    f->frames++;
    pthread_mutex_unlock(&f->lock);
}

static void fetch_closed(void *user_data, moqt_status status) {
    struct fetched *f = (struct fetched *)user_data;
    pthread_mutex_lock(&f->lock);
    f->closed++;
    f->status = status;
    pthread_mutex_unlock(&f->lock);
}

static void fetch_free(void *user_data) {
    struct fetched *f = (struct fetched *)user_data;
    pthread_mutex_lock(&f->lock);
    f->frees++;
    pthread_mutex_unlock(&f->lock);
}

/* Fetches `group` of live/video and waits up to 5 s for the end. */
static void fetch_group(moqt_client *client, uint64_t group, struct fetched *f) {
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->lock, NULL);
    moqt_subscribe_callbacks callbacks;
    memset(&callbacks, 0, sizeof callbacks);
    callbacks.struct_size = sizeof callbacks;
    callbacks.user_data = f;
    callbacks.user_data_free = fetch_free;
    callbacks.on_frame = fetch_frame;
    callbacks.on_closed = fetch_closed;
    moqt_subscription *fetch = NULL;
    moqt_status status = moqt_client_fetch(client, "live", SIZE_MAX, "video", SIZE_MAX, group, NULL, &callbacks, &fetch);
    CHECK(status == MOQT_STATUS_OK, "fetch starts");
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&f->lock);
        int frees = f->frees;
        pthread_mutex_unlock(&f->lock);
        if (frees > 0) break;
        sleep_ms(10);
    }
    CHECK(moqt_subscription_update(fetch, NULL) == MOQT_STATUS_ERR_INVALID_ARG, "a fetch has no live options");
    moqt_subscription_free(fetch);
}

int main(void) {
    /* A failed start releases the admission's user data too. */
    struct admission failed;
    memset(&failed, 0, sizeof failed);
    pthread_mutex_init(&failed.lock, NULL);
    moqt_relay_options bad = relay_options(&failed);
    moqt_relay *relay = NULL;
    CHECK(moqt_relay_start("not an address", SIZE_MAX, &bad, &relay) == MOQT_STATUS_ERR_INVALID_ARG, "bad address");
    CHECK(wait_frees(&failed, 1) == 1, "user_data_free once after a failed start");

    struct admission admission;
    memset(&admission, 0, sizeof admission);
    pthread_mutex_init(&admission.lock, NULL);
    moqt_relay_options options = relay_options(&admission);
    if (moqt_relay_start("127.0.0.1:0", SIZE_MAX, &options, &relay) != MOQT_STATUS_OK) {
        fprintf(stderr, "server: relay: %s\n", moqt_last_error());
        return 1;
    }
    char fingerprint[65];
    CHECK(moqt_relay_fingerprint(relay, fingerprint, sizeof fingerprint) == MOQT_STATUS_OK, "fingerprint");
    unsigned port = moqt_relay_port(relay);
    char url[128];

    /* Refused by path: the connect fails, and on_session saw the path with its query. */
    snprintf(url, sizeof url, "moql://localhost:%u/no?jwt=abc", port);
    moqt_client *refused = NULL;
    CHECK(connect_to(url, fingerprint, &refused) == MOQT_STATUS_ERR_CONNECT, "a refused session fails to connect");
    CHECK(refused == NULL, "no client for a refused session");
    pthread_mutex_lock(&admission.lock);
    CHECK(admission.refused == 1, "on_session refused one");
    CHECK(strcmp(admission.last_path, "/no?jwt=abc") == 0, "on_session sees path and query");
    CHECK(admission.last_version == 6, "on_session sees moq-lite-06");
    pthread_mutex_unlock(&admission.lock);

    /* Admitted: a publisher and a subscriber. */
    snprintf(url, sizeof url, "moql://localhost:%u/ok", port);
    moqt_client *publisher = NULL;
    moqt_client *subscriber = NULL;
    CHECK(connect_to(url, fingerprint, &publisher) == MOQT_STATUS_OK, "publisher admitted");
    CHECK(connect_to(url, fingerprint, &subscriber) == MOQT_STATUS_OK, "subscriber admitted");
    if (publisher == NULL || subscriber == NULL) {
        fprintf(stderr, "server: %s\n", moqt_last_error());
        return 1;
    }
    pthread_mutex_lock(&admission.lock);
    CHECK(admission.admitted == 2, "on_session admitted two");
    pthread_mutex_unlock(&admission.lock);

    /* Three groups of three frames: "a0 a1 a2", "b0 b1 b2", "c0 c1 c2". */
    moqt_broadcast *broadcast = NULL;
    moqt_track *track = NULL;
    CHECK(moqt_client_publish(publisher, "live", SIZE_MAX, &broadcast) == MOQT_STATUS_OK, "publish");
    /* A 90 kHz clock, as MPEG-TS video has: timestamps travel in it, with TRACK_INFO saying so. */
    moqt_track_options track_options;
    memset(&track_options, 0, sizeof track_options);
    track_options.struct_size = sizeof track_options;
    track_options.max_age_ms = 60000;
    track_options.timescale = 90000;
    CHECK(moqt_broadcast_create_track_with(broadcast, "video", SIZE_MAX, &track_options, &track) == MOQT_STATUS_OK,
          "track");
    for (int g = 0; g < 3; g++) {
        for (int i = 0; i < 3; i++) {
            char text[3] = {(char)('a' + g), (char)('0' + i), '\0'};
            uint32_t flags = i == 0 ? MOQT_FRAME_NEW_GROUP : 0;
            CHECK(moqt_track_write_frame(track, (const uint8_t *)text, 2, 1000u * (uint64_t)(g * 3 + i), flags) ==
                      MOQT_STATUS_OK,
                  "write");
        }
    }

    /* FETCH group 1 (the groups are numbered from 0): the relay asks the publisher once the
     * broadcast is announced, so retry briefly while it is not yet known. */
    struct fetched got;
    for (int attempt = 0; attempt < 50; attempt++) {
        fetch_group(subscriber, 1, &got);
        if (got.status == MOQT_STATUS_OK) break;
        sleep_ms(100);
    }
    CHECK(got.closed == 1 && got.status == MOQT_STATUS_OK, "fetch ends with OK");
    CHECK(got.frames == 3 && got.in_order == 3, "fetch delivers three frames in order");
    CHECK(got.group == 1, "fetched frames carry their group");
    CHECK(got.keyframes == 1, "the first frame of the group is its keyframe");
    CHECK(got.last_timescale == 90000, "the fetched frames carry the track's timescale");
    CHECK(got.last_raw == 5000, "the raw timestamp as written (group 1, frame 2)");
    CHECK(got.last_us == 55555, "converted to microseconds: 5000 / 90000 s");
    CHECK(strcmp(got.text, "b0b1b2") == 0, "fetched payloads");
    CHECK(got.frees == 1, "fetch user_data_free once");

    /* Frame bounds: from frame 1 of group 0 to frame 1 of group 2, in pull mode. */
    moqt_subscribe_options bounds;
    memset(&bounds, 0, sizeof bounds);
    bounds.struct_size = sizeof bounds;
    bounds.start_group = MOQT_START_OLDEST; /* group 0: the oldest kept */
    bounds.frame_start = 1;
    bounds.has_end_group = true;
    bounds.end_group = 2;
    bounds.has_frame_end = true;
    bounds.frame_end = 1;
    moqt_pull *pull = NULL;
    CHECK(moqt_client_subscribe_pull_with(subscriber, "live", SIZE_MAX, "video", SIZE_MAX, &bounds, &pull) ==
              MOQT_STATUS_OK,
          "subscribe with frame bounds");
    int seen[3][3];
    memset(seen, 0, sizeof seen);
    const moqt_frame *frame = NULL;
    moqt_status next;
    while ((next = moqt_pull_next_frame(pull, 5000, &frame)) == MOQT_STATUS_OK) {
        uint64_t g = moqt_frame_group(frame), i = moqt_frame_index(frame);
        if (g < 3 && i < 3) seen[g][i]++;
        moqt_frame_unref(frame);
    }
    CHECK(next == MOQT_STATUS_END, "the bounded subscription ends cleanly");
    /* Groups arrive newest first; each wanted frame once, the others never. */
    static const int wanted[3][3] = {{0, 1, 1}, {1, 1, 1}, {1, 1, 0}};
    CHECK(memcmp(seen, wanted, sizeof seen) == 0, "frame bounds trim the start and the end group");
    moqt_pull_free(pull);
    bounds.has_end_group = false;
    CHECK(moqt_client_subscribe_pull_with(subscriber, "live", SIZE_MAX, "video", SIZE_MAX, &bounds, &pull) ==
              MOQT_STATUS_ERR_INVALID_ARG,
          "frame_end without an end group");

    struct fetched missing;
    fetch_group(subscriber, 99, &missing);
    CHECK(missing.closed == 1 && missing.status == MOQT_STATUS_ERR_NOT_FOUND, "a missing group is NOT_FOUND");
    CHECK(missing.frames == 0 && missing.frees == 1, "nothing from a missing group");

    /* Statistics and PROBE. */
    moqt_client_stats stats;
    memset(&stats, 0, sizeof stats);
    stats.struct_size = sizeof stats;
    CHECK(moqt_client_get_stats(subscriber, &stats) == MOQT_STATUS_OK, "stats");
    CHECK(stats.version == 6, "stats: version 6");
    CHECK(stats.rtt_us > 0, "stats: an RTT");
    CHECK(stats.bytes_sent > 0 && stats.bytes_received > 0, "stats: bytes both ways");
    CHECK(moqt_client_get_stats(subscriber, NULL) == MOQT_STATUS_ERR_INVALID_ARG, "stats(NULL)");
    CHECK(moqt_client_probe(NULL, 1000000) == MOQT_STATUS_ERR_INVALID_ARG, "probe(NULL)");
    CHECK(moqt_client_probe(subscriber, 1000000) == MOQT_STATUS_OK, "probe");
    for (int i = 0; i < 500 && !stats.has_probe; i++) {
        sleep_ms(10);
        CHECK(moqt_client_get_stats(subscriber, &stats) == MOQT_STATUS_OK, "stats while probing");
    }
    CHECK(stats.has_probe, "a PROBE report arrives");
    CHECK(stats.peer_bitrate > 0, "the report has a bitrate");
    CHECK(stats.peer_rtt_ms > 0, "the report has an RTT (lite-04 and later)");
    CHECK(stats.peer_target_bitrate == 0, "nobody asked the subscriber to probe");

    /* Abort: a live subscriber's subscription ends with an error status. */
    moqt_track *audio = NULL;
    CHECK(moqt_broadcast_create_track(broadcast, "audio", SIZE_MAX, 1, 60000, &audio) == MOQT_STATUS_OK, "audio");
    struct fetched live;
    memset(&live, 0, sizeof live);
    pthread_mutex_init(&live.lock, NULL);
    moqt_subscribe_callbacks callbacks;
    memset(&callbacks, 0, sizeof callbacks);
    callbacks.struct_size = sizeof callbacks;
    callbacks.user_data = &live;
    callbacks.user_data_free = fetch_free;
    callbacks.on_frame = fetch_frame;
    callbacks.on_closed = fetch_closed;
    moqt_subscription *subscription = NULL;
    CHECK(moqt_client_subscribe(subscriber, "live", SIZE_MAX, "audio", SIZE_MAX, &callbacks, &subscription) ==
              MOQT_STATUS_OK,
          "subscribe audio");
    int live_frames = 0;
    for (int i = 0; i < 100 && live_frames == 0; i++) {
        CHECK(moqt_track_write_frame(audio, (const uint8_t *)"x", 1, 0, MOQT_FRAME_NEW_GROUP) == MOQT_STATUS_OK,
              "write audio");
        sleep_ms(50);
        pthread_mutex_lock(&live.lock);
        live_frames = live.frames;
        pthread_mutex_unlock(&live.lock);
    }
    CHECK(live_frames > 0, "the subscriber gets audio");
    CHECK(moqt_track_abort(audio, 0x1) == MOQT_STATUS_OK, "abort");
    CHECK(moqt_track_abort(audio, 0x1) == MOQT_STATUS_ERR_CLOSED, "abort twice");
    CHECK(moqt_track_write_frame(audio, (const uint8_t *)"x", 1, 0, 0) == MOQT_STATUS_ERR_CLOSED, "write after abort");
    CHECK(moqt_track_abort(NULL, 0) == MOQT_STATUS_ERR_INVALID_ARG, "abort(NULL)");
    int closed = 0;
    moqt_status live_status = MOQT_STATUS_OK;
    for (int i = 0; i < 500 && closed == 0; i++) {
        sleep_ms(10);
        pthread_mutex_lock(&live.lock);
        closed = live.closed;
        live_status = live.status;
        pthread_mutex_unlock(&live.lock);
    }
    CHECK(closed == 1, "the subscription ends after an abort");
    CHECK(live_status == MOQT_STATUS_ERR_ABORTED, "an aborted track ends as aborted, not finished");
    moqt_subscription_free(subscription);
    moqt_track_free(audio);

    moqt_track_free(track);
    moqt_broadcast_free(broadcast);
    moqt_client_free(subscriber);
    moqt_client_free(publisher);
    CHECK(admission_frees(&admission) == 0, "no user_data_free while the relay runs");
    moqt_relay_stop(relay, NULL, 500);
    CHECK(wait_frees(&admission, 1) == 1, "user_data_free once after stop");
    moqt_shutdown();
    CHECK(admission_frees(&admission) == 1 && admission_frees(&failed) == 1, "still once each");

    if (failures > 0) return 1;
    printf("server: ok (fetched %d frames, probe %llu bit/s, rtt %llu us)\n", got.frames,
           (unsigned long long)stats.peer_bitrate, (unsigned long long)stats.rtt_us);
    return 0;
}
