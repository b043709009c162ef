/*
 * What a publisher's word means to its subscribers, through an embedded relay:
 *   - keyframes: a track created with keyframe_groups refuses a first frame without
 *     MOQT_FRAME_NEW_GROUP; a frame past the group's bound (max_group_frames, and
 *     max_group_bytes on a second track) is refused with MOQT_STATUS_ERR_NO_MEMORY and the next
 *     frame must start a new group; subscribers see index
 *     0 (moqt_frame_is_keyframe) only on frames the publisher marked;
 *   - timestamps: a subscriber on moq-lite-06 gets each frame's timestamp in the track's
 *     timescale (moqt_frame_has_timestamp true); one on moq-lite-04, whose wire has none, gets 0
 *     with moqt_frame_has_timestamp false;
 *   - a clean end: the publisher finishes its track and frees its client at once (no sleep): a
 *     push subscriber's on_closed gets MOQT_STATUS_END, a pull subscriber's moqt_pull_next_frame
 *     returns every frame and then MOQT_STATUS_END, on both versions; an aborted track ends with
 *     MOQT_STATUS_ERR_ABORTED and its code in moqt_last_error_code (push and pull): both reach
 *     the relay before the session closes because moqt_client_free drains first.
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

#define TEST_NAME "publish"
#include "check.h"

#define MAX_SEEN 1024

/* One frame as a subscriber saw it. */
struct seen_frame {
    char kind;           /* 'K' (marked as a new group) or 'D' */
    uint64_t written_ts; /* the timestamp the publisher wrote, from the payload */
    uint64_t group;
    uint64_t index;
    bool keyframe;
    bool has_timestamp;
    uint64_t timestamp;
    uint64_t timescale;
};

/* What one push subscription saw. */
struct recorder {
    pthread_mutex_t lock;
    struct seen_frame frames[MAX_SEEN];
    int count;
    int closed;
    moqt_status status;
    bool has_code;
    uint64_t code;
    char detail[160];
    int frees;
};

/* Payloads are "K <ts>" or "D <ts>": the kind and the timestamp written. */
static void record(struct seen_frame *out, const moqt_frame *frame) {
    size_t len = 0;
    const uint8_t *data = moqt_frame_data(frame, &len);
    char text[32];
    size_t n = len < sizeof text - 1 ? len : sizeof text - 1;
    memcpy(text, data, n);
    text[n] = '\0';
    out->kind = text[0];
    out->written_ts = n > 2 ? strtoull(text + 2, NULL, 10) : 0;
    out->group = moqt_frame_group(frame);
    out->index = moqt_frame_index(frame);
    out->keyframe = moqt_frame_is_keyframe(frame);
    out->has_timestamp = moqt_frame_has_timestamp(frame);
    out->timestamp = moqt_frame_timestamp(frame, &out->timescale);
}

static void on_frame(void *user_data, const moqt_frame *frame) {
    struct recorder *r = (struct recorder *)user_data;
    pthread_mutex_lock(&r->lock);
    if (r->count < MAX_SEEN) record(&r->frames[r->count++], frame);
    pthread_mutex_unlock(&r->lock);
}

static void on_closed(void *user_data, moqt_status status) {
    struct recorder *r = (struct recorder *)user_data;
    /* The detail and the code are set for this callback, on this thread. */
    uint64_t code = 0;
    bool has_code = moqt_last_error_code(&code);
    pthread_mutex_lock(&r->lock);
    r->closed++;
    r->status = status;
    r->has_code = has_code;
    r->code = code;
    snprintf(r->detail, sizeof r->detail, "%s", moqt_last_error());
    pthread_mutex_unlock(&r->lock);
}

static void on_free(void *user_data) {
    struct recorder *r = (struct recorder *)user_data;
    pthread_mutex_lock(&r->lock);
    r->frees++;
    pthread_mutex_unlock(&r->lock);
}

static int read_count(struct recorder *r, int *field) { return locked_int(&r->lock, field); }

/* Waits up to 20 s (Valgrind is slow) for `*field` to reach `want`. */
static int wait_for(struct recorder *r, int *field, int want) { return wait_locked(&r->lock, field, want, 20); }

static moqt_subscription *subscribe_push(moqt_client *client, const char *track, struct recorder *r) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    moqt_subscribe_callbacks callbacks;
    memset(&callbacks, 0, sizeof callbacks);
    callbacks.struct_size = sizeof callbacks;
    callbacks.user_data = r;
    callbacks.user_data_free = on_free;
    callbacks.on_frame = on_frame;
    callbacks.on_closed = on_closed;
    moqt_subscription *subscription = NULL;
    CHECK(moqt_client_subscribe(client, "cam", SIZE_MAX, track, SIZE_MAX, &callbacks, &subscription) ==
              MOQT_STATUS_OK,
          "subscribe (push)");
    return subscription;
}

/* What a pull subscription gave until it ended, and how it ended. */
struct pulled {
    struct seen_frame frames[MAX_SEEN];
    int count;
    moqt_status end;
    bool has_code;
    uint64_t code;
};

/* Takes frames (20 s per wait) until the subscription ends. */
static void drain_pull(moqt_pull *pull, struct pulled *out) {
    const moqt_frame *frame = NULL;
    moqt_status status;
    while ((status = moqt_pull_next_frame(pull, 20000, &frame)) == MOQT_STATUS_OK) {
        if (out->count < MAX_SEEN) record(&out->frames[out->count++], frame);
        moqt_frame_unref(frame);
    }
    out->end = status;
    out->has_code = moqt_last_error_code(&out->code);
}

/* Takes the frames queued now without waiting. */
static int take_queued(moqt_pull *pull, struct pulled *out) {
    const moqt_frame *frame = NULL;
    int taken = 0;
    while (moqt_pull_next_frame(pull, 0, &frame) == MOQT_STATUS_OK) {
        if (out->count < MAX_SEEN) record(&out->frames[out->count++], frame);
        moqt_frame_unref(frame);
        taken++;
    }
    return taken;
}

static moqt_status put(moqt_track *track, char kind, uint64_t ts, uint32_t flags) {
    char text[32];
    int len = snprintf(text, sizeof text, "%c %llu", kind, (unsigned long long)ts);
    return moqt_track_write_frame(track, (const uint8_t *)text, (size_t)len, ts, flags);
}

/* Writes keyframe groups until the push recorder and the pull queue have each seen a frame: the
 * subscriptions have reached the publisher through the relay. Returns the next timestamp. */
static uint64_t sync_subscribers(moqt_track *track, struct recorder *push, moqt_pull *pull, struct pulled *pulled,
                                 uint64_t ts) {
    for (int i = 0; i < 400; i++) {
        CHECK(put(track, 'K', ts, MOQT_FRAME_NEW_GROUP) == MOQT_STATUS_OK, "sync keyframe");
        ts += 3000;
        sleep_ms(50);
        take_queued(pull, pulled);
        if (read_count(push, &push->count) > 0 && pulled->count > 0) break;
    }
    CHECK(read_count(push, &push->count) > 0, "the push subscriber gets frames");
    CHECK(pulled->count > 0, "the pull subscriber gets frames");
    return ts;
}

static moqt_client *connect_version(const char *url, const char *fingerprint, uint32_t version) {
    moqt_client_options options;
    memset(&options, 0, sizeof options);
    options.struct_size = sizeof options;
    options.tls_fingerprint = fingerprint;
    options.version = version;
    options.connect_attempt_timeout_ms = SLOW_ATTEMPT_MS;
    moqt_client *client = NULL;
    if (moqt_client_connect(url, SIZE_MAX, &options, &client) != MOQT_STATUS_OK) {
        fprintf(stderr, "publish: connect (lite-0%u): %s\n", version, moqt_last_error());
    }
    return client;
}

/* Every frame marked 'K' is the first of its group and the only one; 'D' frames never are. */
static void check_keyframes(const struct seen_frame *frames, int count, const char *who) {
    int wrong = 0;
    for (int i = 0; i < count; i++) {
        bool marked = frames[i].kind == 'K';
        if (marked != frames[i].keyframe || marked != (frames[i].index == 0)) wrong++;
    }
    if (wrong > 0) fprintf(stderr, "publish: %s: %d frames with a wrong keyframe mark\n", who, wrong);
    CHECK(wrong == 0, "index 0 (is_keyframe) only on frames the publisher marked");
}

/* The last group written ("K 90000", "D 93000") arrived whole, and so did nothing after it. */
static void check_timestamps(const struct seen_frame *frames, int count, bool real, const char *who) {
    int wrong = 0;
    for (int i = 0; i < count; i++) {
        if (real && !(frames[i].has_timestamp && frames[i].timestamp == frames[i].written_ts &&
                      frames[i].timescale == 90000))
            wrong++;
        if (!real && !(!frames[i].has_timestamp && frames[i].timestamp == 0)) wrong++;
    }
    if (wrong > 0) fprintf(stderr, "publish: %s: %d frames with a wrong timestamp\n", who, wrong);
    CHECK(count > 0 && wrong == 0, real ? "lite-06 frames carry their timestamps"
                                        : "lite-04 frames say they have no timestamp and read 0");
}

static bool saw(const struct seen_frame *frames, int count, char kind, uint64_t ts) {
    for (int i = 0; i < count; i++)
        if (frames[i].kind == kind && frames[i].written_ts == ts) return true;
    return false;
}

int main(void) {
    moqt_relay *relay = NULL;
    if (moqt_relay_start("127.0.0.1:0", SIZE_MAX, NULL, &relay) != MOQT_STATUS_OK) {
        fprintf(stderr, "publish: relay: %s\n", moqt_last_error());
        return 1;
    }
    char fingerprint[65];
    CHECK(moqt_relay_fingerprint(relay, fingerprint, sizeof fingerprint) == MOQT_STATUS_OK, "fingerprint");
    char url[128];
    /* At the relay's root: moq-lite-04 has no SETUP to carry a session path. */
    snprintf(url, sizeof url, "moql://localhost:%u", moqt_relay_port(relay));

    moqt_client *publisher = connect_version(url, fingerprint, 6);
    moqt_client *sub6 = connect_version(url, fingerprint, 6);
    moqt_client *sub4 = connect_version(url, fingerprint, 4);
    if (publisher == NULL || sub6 == NULL || sub4 == NULL) return 1;

    moqt_broadcast *broadcast = NULL;
    CHECK(moqt_client_publish(publisher, "cam", SIZE_MAX, &broadcast) == MOQT_STATUS_OK, "publish");
    moqt_track_options options;
    memset(&options, 0, sizeof options);
    options.struct_size = sizeof options;
    options.max_age_ms = 60000;
    options.timescale = 90000;
    options.keyframe_groups = true;
    options.max_group_frames = 3;
    moqt_track *video = NULL;
    CHECK(moqt_broadcast_create_track_with(broadcast, "video", SIZE_MAX, &options, &video) == MOQT_STATUS_OK,
          "keyframe-aligned track");
    moqt_track_options too_big = options;
    too_big.max_group_frames = 100000;
    moqt_track *refused = NULL;
    CHECK(moqt_broadcast_create_track_with(broadcast, "big", SIZE_MAX, &too_big, &refused) ==
              MOQT_STATUS_ERR_INVALID_ARG,
          "a group bound above moq-lite's is refused");
    CHECK(refused == NULL, "no track for refused options");
    too_big = options;
    too_big.max_group_bytes = 32 * 1024 * 1024 + 1;
    CHECK(moqt_broadcast_create_track_with(broadcast, "big", SIZE_MAX, &too_big, &refused) ==
              MOQT_STATUS_ERR_INVALID_ARG,
          "a group byte bound above moq-lite's is refused");
    CHECK(refused == NULL, "no track for a refused byte bound");

    /* Keyframes are the publisher's word: a delta frame cannot open the track. */
    CHECK(put(video, 'D', 0, 0) == MOQT_STATUS_ERR_INVALID_ARG, "a first frame without NEW_GROUP is refused");
    CHECK(strstr(moqt_last_error(), "MOQT_FRAME_NEW_GROUP") != NULL, "the detail says which flag is missing");

    struct recorder push6;
    moqt_subscription *sub6_push = subscribe_push(sub6, "video", &push6);
    moqt_pull *pull4 = NULL;
    CHECK(moqt_client_subscribe_pull(sub4, "cam", SIZE_MAX, "video", SIZE_MAX, &pull4) == MOQT_STATUS_OK,
          "subscribe (pull, lite-04)");
    static struct pulled pulled4;
    uint64_t ts = sync_subscribers(video, &push6, pull4, &pulled4, 3000);

    /* A second track, to be aborted right before the publisher leaves. */
    moqt_track *live = NULL;
    CHECK(moqt_broadcast_create_track_with(broadcast, "live", SIZE_MAX, &options, &live) == MOQT_STATUS_OK,
          "second track");
    struct recorder abort6;
    moqt_subscription *abort_push = subscribe_push(sub6, "live", &abort6);
    moqt_pull *abort_pull = NULL;
    CHECK(moqt_client_subscribe_pull(sub4, "cam", SIZE_MAX, "live", SIZE_MAX, &abort_pull) == MOQT_STATUS_OK,
          "subscribe to the second track (pull, lite-04)");
    static struct pulled aborted4;
    sync_subscribers(live, &abort6, abort_pull, &aborted4, 1000);

    /* One group at its bound of three frames, then one more: refused, and the group is gone. */
    CHECK(put(video, 'K', ts, MOQT_FRAME_NEW_GROUP) == MOQT_STATUS_OK, "keyframe");
    CHECK(put(video, 'D', ts + 3000, 0) == MOQT_STATUS_OK, "delta 1");
    CHECK(put(video, 'D', ts + 6000, 0) == MOQT_STATUS_OK, "delta 2");
    CHECK(put(video, 'D', ts + 9000, 0) == MOQT_STATUS_ERR_NO_MEMORY, "a frame past the group's bound");
    CHECK(put(video, 'D', ts + 12000, 0) == MOQT_STATUS_ERR_INVALID_ARG, "after an overflow, a delta is refused");
    CHECK(strstr(moqt_last_error(), "new group") != NULL, "the detail says a new group must start");
    /* The byte bound, on a track of its own: "K 1" and "D 2" (3 bytes each) fit in 8 bytes, a
     * third frame would make 9: refused like the frame bound's, and the next must be a keyframe. */
    moqt_track_options sized_options = options;
    sized_options.max_group_frames = 0;
    sized_options.max_group_bytes = 8;
    moqt_track *sized = NULL;
    CHECK(moqt_broadcast_create_track_with(broadcast, "sized", SIZE_MAX, &sized_options, &sized) == MOQT_STATUS_OK,
          "a track with a group byte bound");
    CHECK(put(sized, 'K', 1, MOQT_FRAME_NEW_GROUP) == MOQT_STATUS_OK, "bytes: keyframe");
    CHECK(put(sized, 'D', 2, 0) == MOQT_STATUS_OK, "bytes: a delta within the bound");
    CHECK(put(sized, 'D', 3, 0) == MOQT_STATUS_ERR_NO_MEMORY, "bytes: a frame past the group's byte bound");
    CHECK(strstr(moqt_last_error(), "more than 8 payload bytes") != NULL, "the detail names the byte bound");
    CHECK(put(sized, 'D', 4, 0) == MOQT_STATUS_ERR_INVALID_ARG, "bytes: after an overflow, a delta is refused");
    CHECK(put(sized, 'K', 5, MOQT_FRAME_NEW_GROUP) == MOQT_STATUS_OK, "bytes: a keyframe opens the next group");
    CHECK(put(sized, 'K', 123456789, MOQT_FRAME_NEW_GROUP) == MOQT_STATUS_ERR_NO_MEMORY,
          "bytes: a keyframe alone past the bound is refused too");
    CHECK(put(sized, 'K', 6, MOQT_FRAME_NEW_GROUP) == MOQT_STATUS_OK, "bytes: then a keyframe that fits");
    moqt_track_free(sized);

    /* The last group: a keyframe and a delta, at fixed timestamps far above the others. */
    CHECK(put(video, 'K', 9000000, MOQT_FRAME_NEW_GROUP) == MOQT_STATUS_OK, "a keyframe opens the next group");
    CHECK(put(video, 'D', 9003000, 0) == MOQT_STATUS_OK, "its delta");

    /* A clean end, and the publisher leaves at once: no sleep, free drains. */
    moqt_status checked = moqt_client_flush(publisher, 0);
    CHECK(checked == MOQT_STATUS_OK || checked == MOQT_STATUS_ERR_TIMEOUT, "flush(0) only checks");
    CHECK(moqt_track_finish(video) == MOQT_STATUS_OK, "finish");
    CHECK(moqt_track_finish(video) == MOQT_STATUS_ERR_CLOSED, "finish twice");
    CHECK(put(video, 'K', 9006000, MOQT_FRAME_NEW_GROUP) == MOQT_STATUS_ERR_CLOSED, "write after finish");
    CHECK(moqt_track_finish(NULL) == MOQT_STATUS_ERR_INVALID_ARG, "finish(NULL)");
    CHECK(moqt_client_flush(NULL, 0) == MOQT_STATUS_ERR_INVALID_ARG, "flush(NULL)");

    CHECK(moqt_track_abort(live, 0x47) == MOQT_STATUS_OK, "abort with an application code");
    /* The publisher goes at once: moqt_client_free drains what the ended tracks owe the relay
     * (examples-c/publisher.c calls moqt_client_flush first instead). */
    moqt_track_free(video);
    moqt_track_free(live);
    moqt_broadcast_free(broadcast);
    moqt_client_free(publisher);

    /* Push, lite-06: every frame, then END. */
    CHECK(wait_for(&push6, &push6.closed, 1) == 1, "on_closed once the track ended");
    pthread_mutex_lock(&push6.lock);
    CHECK(push6.status == MOQT_STATUS_END, "on_closed(MOQT_STATUS_END) for a finished track");
    if (push6.status != MOQT_STATUS_END)
        fprintf(stderr, "publish: push ended with %s (%s)\n", moqt_status_str(push6.status), push6.detail);
    CHECK(!push6.has_code, "a clean end carries no code");
    check_keyframes(push6.frames, push6.count, "push lite-06");
    check_timestamps(push6.frames, push6.count, true, "push lite-06");
    CHECK(saw(push6.frames, push6.count, 'K', 9000000) && saw(push6.frames, push6.count, 'D', 9003000),
          "push: the last group, written just before finish and free, arrived");
    CHECK(!saw(push6.frames, push6.count, 'D', ts + 12000), "push: the refused frame never arrives");
    pthread_mutex_unlock(&push6.lock);

    /* Pull, lite-04: every frame, then END (again on every later call). */
    drain_pull(pull4, &pulled4);
    CHECK(pulled4.end == MOQT_STATUS_END, "pull: MOQT_STATUS_END after the last frame");
    if (pulled4.end != MOQT_STATUS_END)
        fprintf(stderr, "publish: pull ended with %s (%s)\n", moqt_status_str(pulled4.end), moqt_last_error());
    const moqt_frame *frame = NULL;
    CHECK(moqt_pull_next_frame(pull4, 0, &frame) == MOQT_STATUS_END, "pull: END again");
    check_keyframes(pulled4.frames, pulled4.count, "pull lite-04");
    check_timestamps(pulled4.frames, pulled4.count, false, "pull lite-04");
    CHECK(saw(pulled4.frames, pulled4.count, 'K', 9000000) && saw(pulled4.frames, pulled4.count, 'D', 9003000),
          "pull: the last group, written just before finish and free, arrived");

    /* The aborted track: ERR_ABORTED with its code, push and pull. */
    CHECK(wait_for(&abort6, &abort6.closed, 1) == 1, "on_closed once the track was aborted");
    pthread_mutex_lock(&abort6.lock);
    CHECK(abort6.status == MOQT_STATUS_ERR_ABORTED, "on_closed(MOQT_STATUS_ERR_ABORTED)");
    CHECK(abort6.has_code && abort6.code == 0x47, "moqt_last_error_code in on_closed gives the abort code");
    CHECK(strstr(abort6.detail, "0x47") != NULL, "moqt_last_error names the code");
    pthread_mutex_unlock(&abort6.lock);
    drain_pull(abort_pull, &aborted4);
    CHECK(aborted4.end == MOQT_STATUS_ERR_ABORTED, "pull: MOQT_STATUS_ERR_ABORTED");
    CHECK(aborted4.has_code && aborted4.code == 0x47, "pull: the abort code");

    CHECK(strcmp(moqt_status_str(MOQT_STATUS_END), "end of stream") == 0, "END has a description");
    CHECK(MOQT_STATUS_END > 0, "END is not an error");

    moqt_subscription_free(sub6_push);
    moqt_subscription_free(abort_push);
    moqt_pull_free(pull4);
    moqt_pull_free(abort_pull);
    moqt_client_free(sub6);
    moqt_client_free(sub4);
    moqt_relay_stop(relay, NULL, 500);
    CHECK(wait_for(&push6, &push6.frees, 1) == 1 && wait_for(&abort6, &abort6.frees, 1) == 1,
          "user_data_free once each");
    moqt_shutdown();

    if (failures > 0) return 1;
    printf("publish: ok (push %d frames, pull %d frames, clean end and abort code 0x47)\n", push6.count,
           pulled4.count);
    return 0;
}
