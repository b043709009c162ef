/*
 * Lifecycle edge cases of the C API against an embedded relay, then moqt_shutdown, so
 * AddressSanitizer, UndefinedBehaviorSanitizer and Valgrind see the whole life of the engine:
 *   - NULL and invalid arguments give MOQT_STATUS_ERR_INVALID_ARG;
 *   - user_data_free runs exactly once on every path, a failed subscribe included;
 *   - a subscription freed from inside its own on_frame gets no further frame;
 *   - a subscription freed during a burst of frames;
 *   - a frame kept (moqt_frame_ref) past the free of its client stays readable;
 *   - two threads: one subscribing and unsubscribing in a loop while the other publishes;
 *   - zero-copy writes: each malloc'd buffer is freed exactly once, when moqt is done with it;
 *   - announcements: a broadcast seen appearing and going away;
 *   - non-blocking release: moqt_subscription_release from inside on_frame and from another
 *     thread while frames flow, and after the track ended (on_closed(MOQT_STATUS_END) first);
 *   - closing twice where the header allows it: every free and release of NULL, a frame
 *     referenced twice and unreferenced twice, moqt_track_abort twice, moqt_pull_interrupt twice
 *     (one wake-up), moqt_pull_next_frame again after the end, a subscription and a state watch
 *     freed after their client (the subscription ends with on_closed(MOQT_STATUS_ERR_CLOSED)).
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

#define TEST_NAME "lifecycle"
#include "check.h"

/* Per-subscription state, shared with the callbacks under a mutex. */
struct watch {
    pthread_mutex_t lock;
    int frames;
    int frees;
    int frames_after_free;
    int freed_in_callback;
    moqt_subscription *self;
    int free_on_frame;
    int release_on_frame;
    int closed;
    moqt_status closed_status;
    const moqt_frame *kept;
};

static void watch_init(struct watch *w) {
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->lock, NULL);
}

static void on_frame(void *user_data, const moqt_frame *frame) {
    struct watch *w = (struct watch *)user_data;
    pthread_mutex_lock(&w->lock);
    if (w->freed_in_callback) w->frames_after_free++;
    w->frames++;
    if (w->kept == NULL) w->kept = moqt_frame_ref(frame);
    /* At the Nth frame, or the first one after it once the handle is known: a live track's
     * frames can reach this callback before moqt_client_subscribe returned the handle. */
    moqt_subscription *self = w->self;
    int due = self != NULL && !w->freed_in_callback;
    int free_now = due && w->free_on_frame && w->frames >= w->free_on_frame;
    int release_now = due && w->release_on_frame && w->frames >= w->release_on_frame;
    if (free_now || release_now) w->freed_in_callback = 1;
    pthread_mutex_unlock(&w->lock);
    if (free_now) moqt_subscription_free(self);       /* allowed from its own callback */
    if (release_now) moqt_subscription_release(self); /* so is the non-blocking release */
}

static void on_gap(void *user_data, uint64_t first, uint64_t last, uint64_t code) {
    (void)user_data;
    (void)first;
    (void)last;
    (void)code;
}

static void on_closed(void *user_data, moqt_status status) {
    struct watch *w = (struct watch *)user_data;
    pthread_mutex_lock(&w->lock);
    w->closed++;
    w->closed_status = status;
    pthread_mutex_unlock(&w->lock);
}

static void user_data_free(void *user_data) {
    struct watch *w = (struct watch *)user_data;
    pthread_mutex_lock(&w->lock);
    w->frees++;
    pthread_mutex_unlock(&w->lock);
}

static int read_int(struct watch *w, int *field) { return locked_int(&w->lock, field); }

static moqt_status read_status(struct watch *w) {
    pthread_mutex_lock(&w->lock);
    moqt_status value = w->closed_status;
    pthread_mutex_unlock(&w->lock);
    return value;
}

/* Waits up to 20 s (Valgrind on a loaded machine is slow) for *field to reach at least `want`. */
static int wait_for(struct watch *w, int *field, int want) { return wait_locked(&w->lock, field, want, 20); }

static moqt_subscribe_callbacks callbacks_for(struct watch *w) {
    moqt_subscribe_callbacks callbacks;
    memset(&callbacks, 0, sizeof callbacks);
    callbacks.struct_size = sizeof callbacks;
    callbacks.user_data = w;
    callbacks.user_data_free = user_data_free;
    callbacks.on_frame = on_frame;
    callbacks.on_gap = on_gap;
    callbacks.on_closed = on_closed;
    return callbacks;
}

/* Subscribes `w` to track `name` of broadcast `at`; the handle is also stored in w->self. */
static moqt_subscription *subscribe_watch(moqt_client *client, const char *at, const char *name, struct watch *w) {
    moqt_subscribe_callbacks callbacks = callbacks_for(w);
    moqt_subscription *sub = NULL;
    if (moqt_client_subscribe(client, at, SIZE_MAX, name, SIZE_MAX, &callbacks, &sub) != MOQT_STATUS_OK) {
        fprintf(stderr, "lifecycle: subscribe %s: %s\n", name, moqt_last_error());
        exit(1);
    }
    pthread_mutex_lock(&w->lock);
    w->self = sub;
    pthread_mutex_unlock(&w->lock);
    return sub;
}

/* A pull-mode waiter on another thread: what moqt_pull_next_frame(-1) returned. */
struct waiter {
    const moqt_pull *pull;
    moqt_status status;
};

static void *wait_forever(void *arg) {
    struct waiter *w = (struct waiter *)arg;
    const moqt_frame *frame = NULL;
    w->status = moqt_pull_next_frame(w->pull, -1, &frame);
    if (w->status == MOQT_STATUS_OK) moqt_frame_unref(frame);
    return NULL;
}

static moqt_client *connect_to(const char *url, const char *fingerprint) {
    moqt_client_options options;
    memset(&options, 0, sizeof options);
    options.struct_size = sizeof options;
    options.tls_fingerprint = fingerprint;
    options.connect_attempt_timeout_ms = SLOW_ATTEMPT_MS;
    moqt_client *client = NULL;
    if (moqt_client_connect(url, SIZE_MAX, &options, &client) != MOQT_STATUS_OK) {
        fprintf(stderr, "lifecycle: connect: %s\n", moqt_last_error());
        exit(1);
    }
    return client;
}

static void write_frames(const moqt_track *track, int count) {
    static const uint8_t payload[32] = {1, 2, 3};
    for (int i = 0; i < count; i++) {
        uint32_t flags = i % 10 == 0 ? MOQT_FRAME_NEW_GROUP : 0;
        if (moqt_track_write_frame(track, payload, sizeof payload, 0, flags) != MOQT_STATUS_OK) {
            fprintf(stderr, "lifecycle: write: %s\n", moqt_last_error());
            exit(1);
        }
    }
}

/* Zero-copy buffers handed to moqt and given back. */
static pthread_mutex_t zero_copy_lock = PTHREAD_MUTEX_INITIALIZER;
static int zero_copy_freed = 0;

static void free_buffer(void *user_data, const uint8_t *data) {
    (void)user_data;
    free((void *)data);
    pthread_mutex_lock(&zero_copy_lock);
    zero_copy_freed++;
    pthread_mutex_unlock(&zero_copy_lock);
}

static int write_zero_copy(const moqt_track *track, int count) {
    int written = 0;
    for (int i = 0; i < count; i++) {
        uint8_t *buffer = (uint8_t *)malloc(1000);
        if (buffer == NULL) exit(1);
        memset(buffer, i, 1000);
        uint32_t flags = i % 10 == 0 ? MOQT_FRAME_NEW_GROUP : 0;
        if (moqt_track_write_frame_zero_copy(track, buffer, 1000, 0, flags, free_buffer, NULL) == MOQT_STATUS_OK) {
            written++;
        }
    }
    return written;
}

/* What an announcement watcher saw. */
struct seen {
    pthread_mutex_t lock;
    int appeared;
    int gone;
    int frees;
};

static void on_announce(void *user_data, const char *path, size_t path_len, bool active) {
    struct seen *seen = (struct seen *)user_data;
    if (path_len != 4 || strcmp(path, "live") != 0) return;
    pthread_mutex_lock(&seen->lock);
    if (active) seen->appeared++;
    else seen->gone++;
    pthread_mutex_unlock(&seen->lock);
}

static void seen_free(void *user_data) {
    struct seen *seen = (struct seen *)user_data;
    pthread_mutex_lock(&seen->lock);
    seen->frees++;
    pthread_mutex_unlock(&seen->lock);
}

static int seen_count(struct seen *seen, int *field, int want) {
    int value = 0;
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&seen->lock);
        value = *field;
        pthread_mutex_unlock(&seen->lock);
        if (value >= want) break;
        sleep_ms(10);
    }
    return value;
}

struct stress {
    moqt_client *client;
    int rounds;
    int subscribed;
    struct watch watches[50];
};

static void *subscribe_loop(void *arg) {
    struct stress *s = (struct stress *)arg;
    for (int i = 0; i < s->rounds; i++) {
        watch_init(&s->watches[i]);
        moqt_subscribe_callbacks callbacks = callbacks_for(&s->watches[i]);
        moqt_subscription *sub = NULL;
        if (moqt_client_subscribe(s->client, "live", SIZE_MAX, "t", SIZE_MAX, &callbacks, &sub) == MOQT_STATUS_OK) {
            s->subscribed++;
            sleep_ms(i % 3 * 5);
            moqt_subscription_free(sub);
        }
    }
    return NULL;
}

int main(void) {
    /* Invalid arguments. */
    moqt_client *client = NULL;
    moqt_client_options no_trust;
    memset(&no_trust, 0, sizeof no_trust);
    no_trust.struct_size = sizeof no_trust;
    CHECK(moqt_client_connect(NULL, SIZE_MAX, &no_trust, &client) == MOQT_STATUS_ERR_INVALID_ARG, "connect(NULL url)");
    CHECK(moqt_client_connect("moql://localhost:1/x", SIZE_MAX, &no_trust, NULL) == MOQT_STATUS_ERR_INVALID_ARG,
          "connect(NULL out)");
    CHECK(moqt_client_publish(NULL, "b", SIZE_MAX, NULL) == MOQT_STATUS_ERR_INVALID_ARG, "publish(NULL client)");
    CHECK(moqt_relay_fingerprint(NULL, NULL, 0) == MOQT_STATUS_ERR_INVALID_ARG, "fingerprint(NULL)");
    moqt_client_free(NULL);
    moqt_subscription_free(NULL);
    moqt_relay_stop(NULL, NULL, 0);

    moqt_relay *relay = NULL;
    if (moqt_relay_start("127.0.0.1:0", SIZE_MAX, NULL, &relay) != MOQT_STATUS_OK) {
        fprintf(stderr, "lifecycle: relay: %s\n", moqt_last_error());
        return 1;
    }
    char fingerprint[65];
    CHECK(moqt_relay_fingerprint(relay, fingerprint, sizeof fingerprint) == MOQT_STATUS_OK, "fingerprint");
    char url[64];
    snprintf(url, sizeof url, "moql://localhost:%u/x", (unsigned)moqt_relay_port(relay));
    moqt_client *publisher = connect_to(url, fingerprint);
    moqt_client *subscriber = connect_to(url, fingerprint);
    /* Watch announcements before anything is published. */
    struct seen seen;
    memset(&seen, 0, sizeof seen);
    pthread_mutex_init(&seen.lock, NULL);
    moqt_announce_callbacks announce;
    memset(&announce, 0, sizeof announce);
    announce.struct_size = sizeof announce;
    announce.user_data = &seen;
    announce.user_data_free = seen_free;
    announce.on_announce = on_announce;
    moqt_announced *announced = NULL;
    CHECK(moqt_client_announced(subscriber, "", SIZE_MAX, &announce, &announced) == MOQT_STATUS_OK, "announced");
    moqt_broadcast *broadcast = NULL;
    moqt_track *track = NULL;
    CHECK(moqt_client_publish(publisher, "live", SIZE_MAX, &broadcast) == MOQT_STATUS_OK, "publish");
    CHECK(seen_count(&seen, &seen.appeared, 1) == 1, "the broadcast announced");
    CHECK(moqt_broadcast_create_track(broadcast, "t", SIZE_MAX, 1, 10000, &track) == MOQT_STATUS_OK, "track");

    /* A failed subscribe (NULL track name) still frees user_data once. */
    struct watch failed;
    watch_init(&failed);
    moqt_subscribe_callbacks callbacks = callbacks_for(&failed);
    moqt_subscription *sub = NULL;
    CHECK(moqt_client_subscribe(subscriber, "live", SIZE_MAX, NULL, SIZE_MAX, &callbacks, &sub) ==
              MOQT_STATUS_ERR_INVALID_ARG,
          "subscribe(NULL track)");
    CHECK(wait_for(&failed, &failed.frees, 1) == 1, "user_data_free once after a failed subscribe");

    /* Freed from inside its own on_frame at the 3rd frame; a frame kept past everything. */
    struct watch inside;
    watch_init(&inside);
    inside.free_on_frame = 3;
    callbacks = callbacks_for(&inside);
    CHECK(moqt_client_subscribe(subscriber, "live", SIZE_MAX, "t", SIZE_MAX, &callbacks, &sub) == MOQT_STATUS_OK,
          "subscribe");
    pthread_mutex_lock(&inside.lock);
    inside.self = sub;
    pthread_mutex_unlock(&inside.lock);
    /* Write once the subscription reached the publisher, and go on until the callback freed it
     * (at its 3rd frame), up to 20 s: under Valgrind on a loaded machine setting up takes long. */
    CHECK(moqt_track_wait_subscribed(track, 20000) == MOQT_STATUS_OK, "a subscriber reached the track");
    for (int i = 0; i < 1000 && read_int(&inside, &inside.frees) == 0; i++) {
        write_frames(track, 2);
        sleep_ms(20);
    }
    CHECK(wait_for(&inside, &inside.frees, 1) == 1, "user_data_free once after a free inside on_frame");
    sleep_ms(200);
    CHECK(read_int(&inside, &inside.frames_after_free) == 0, "no frame after the free inside on_frame");

    /* Freed during a burst. */
    struct watch burst;
    watch_init(&burst);
    callbacks = callbacks_for(&burst);
    CHECK(moqt_client_subscribe(subscriber, "live", SIZE_MAX, "t", SIZE_MAX, &callbacks, &sub) == MOQT_STATUS_OK,
          "subscribe for the burst");
    /* The burst starts once this subscription gets frames (the track may still be subscribed
     * upstream for the previous one, so a wait for any subscriber proves nothing here). */
    for (int i = 0; i < 1000 && read_int(&burst, &burst.frames) == 0; i++) {
        write_frames(track, 2);
        sleep_ms(20);
    }
    write_frames(track, 500);
    int zero_copy_written = write_zero_copy(track, 200);
    CHECK(zero_copy_written == 200, "zero-copy writes");
    CHECK(moqt_track_write_frame_zero_copy(NULL, (const uint8_t *)malloc(8), 8, 0, 0, free_buffer, NULL) ==
              MOQT_STATUS_ERR_INVALID_ARG,
          "zero-copy write to a NULL track");
    wait_for(&burst, &burst.frames, 1);
    moqt_subscription_free(sub);
    CHECK(wait_for(&burst, &burst.frees, 1) == 1, "user_data_free once after a free during a burst");
    write_frames(track, 100);

    /* Released (non-blocking) from inside its own on_frame at the 2nd frame. */
    struct watch released_inside;
    watch_init(&released_inside);
    released_inside.release_on_frame = 2;
    subscribe_watch(subscriber, "live", "t", &released_inside);
    for (int i = 0; i < 1000 && read_int(&released_inside, &released_inside.frees) == 0; i++) {
        write_frames(track, 2);
        sleep_ms(20);
    }
    CHECK(wait_for(&released_inside, &released_inside.frees, 1) == 1,
          "user_data_free once after a release inside on_frame");
    sleep_ms(200);
    CHECK(read_int(&released_inside, &released_inside.frames_after_free) == 0,
          "no frame after the release inside on_frame");
    CHECK(read_int(&released_inside, &released_inside.freed_in_callback) == 1, "released from inside on_frame");
    /* Had it ended before its 2nd frame, the handle would still be ours to release. */
    if (!read_int(&released_inside, &released_inside.freed_in_callback)) moqt_subscription_release(released_inside.self);

    /* Released from this thread while frames flow: returns at once, user_data_free follows once. */
    struct watch released_outside;
    watch_init(&released_outside);
    moqt_subscription *outside = subscribe_watch(subscriber, "live", "t", &released_outside);
    for (int i = 0; i < 1000 && read_int(&released_outside, &released_outside.frames) == 0; i++) {
        write_frames(track, 2);
        sleep_ms(20);
    }
    write_frames(track, 50);
    moqt_subscription_release(outside);
    write_frames(track, 50);
    CHECK(wait_for(&released_outside, &released_outside.frees, 1) == 1,
          "user_data_free once after a release during a burst");

    /* Two threads: subscribe/unsubscribe in a loop while frames flow. */
    struct stress stress;
    memset(&stress, 0, sizeof stress);
    stress.client = subscriber;
    stress.rounds = 50;
    pthread_t thread;
    pthread_create(&thread, NULL, subscribe_loop, &stress);
    for (int i = 0; i < 50; i++) {
        write_frames(track, 20);
        sleep_ms(5);
    }
    pthread_join(thread, NULL);
    int stress_frees = 0;
    for (int i = 0; i < stress.rounds; i++) stress_frees += wait_for(&stress.watches[i], &stress.watches[i].frees, 1);
    CHECK(stress.subscribed == stress.rounds, "every stress subscribe succeeded");
    CHECK(stress_frees == stress.rounds, "user_data_free once per stress subscription");

    /* A subscription right after the churn gets frames. One used to end at once with
     * on_closed(MOQT_STATUS_OK): a stress subscription that left before its track was set up
     * had the track finished, not cancelled, and later subscribers found it ended. */
    struct watch after;
    watch_init(&after);
    moqt_subscription *after_sub = subscribe_watch(subscriber, "live", "t", &after);
    /* Frames written before the subscription is up are not for it (it starts at the latest
     * group): keep writing until one arrives, up to 20 s (Valgrind is slow). */
    for (int i = 0; i < 1000 && read_int(&after, &after.frames) == 0 && read_int(&after, &after.closed) == 0; i++) {
        write_frames(track, 2);
        sleep_ms(20);
    }
    CHECK(read_int(&after, &after.frames) >= 1, "frames after the churn");
    CHECK(read_int(&after, &after.closed) == 0, "the subscription after the churn is still live");
    moqt_subscription_free(after_sub);
    CHECK(wait_for(&after, &after.frees, 1) == 1, "user_data_free once after the churn subscription");
    moqt_frame_unref(after.kept); /* on_frame keeps each watch's first frame */

    /* Every free and release accepts NULL (a second "close" of a handle already set to NULL). */
    moqt_broadcast_free(NULL);
    moqt_track_free(NULL);
    moqt_pull_free(NULL);
    moqt_announced_free(NULL);
    moqt_state_watch_free(NULL);
    moqt_subscription_release(NULL);
    moqt_announced_release(NULL);
    moqt_state_watch_release(NULL);
    moqt_frame_unref(NULL);
    CHECK(moqt_frame_ref(NULL) == NULL, "moqt_frame_ref(NULL)");

    /* A second track that ends: on_closed(END), then a release after the end frees once. */
    moqt_track *ending = NULL;
    CHECK(moqt_broadcast_create_track(broadcast, "ending", SIZE_MAX, 1, 10000, &ending) == MOQT_STATUS_OK,
          "ending track");
    struct watch after_end;
    watch_init(&after_end);
    moqt_subscription *ended_sub = subscribe_watch(subscriber, "live", "ending", &after_end);
    CHECK(moqt_track_wait_subscribed(ending, 20000) == MOQT_STATUS_OK, "a subscriber reached the ending track");
    write_frames(ending, 3);
    CHECK(wait_for(&after_end, &after_end.frames, 3) == 3, "frames of the ending track");
    moqt_track_free(ending);
    CHECK(wait_for(&after_end, &after_end.closed, 1) == 1, "on_closed once the track ended");
    CHECK(read_status(&after_end) == MOQT_STATUS_END, "on_closed(END) for a finished track");
    moqt_subscription_release(ended_sub);
    CHECK(wait_for(&after_end, &after_end.frees, 1) == 1, "user_data_free once after a release past the end");
    sleep_ms(100);
    CHECK(read_int(&after_end, &after_end.frees) == 1 && read_int(&after_end, &after_end.closed) == 1,
          "on_closed and user_data_free exactly once each");

    /* moqt_track_abort twice: the second finds the track ended; writes after it are refused. */
    moqt_track *aborted = NULL;
    CHECK(moqt_broadcast_create_track(broadcast, "aborted", SIZE_MAX, 1, 10000, &aborted) == MOQT_STATUS_OK,
          "aborted track");
    CHECK(moqt_track_abort(aborted, 1) == MOQT_STATUS_OK, "first abort");
    CHECK(moqt_track_abort(aborted, 1) == MOQT_STATUS_ERR_CLOSED, "second abort: already ended");
    static const uint8_t late[4] = {0};
    CHECK(moqt_track_write_frame(aborted, late, sizeof late, 0, MOQT_FRAME_NEW_GROUP) == MOQT_STATUS_ERR_CLOSED,
          "a write after the abort");
    moqt_track_free(aborted);

    /* Pull mode: interrupt twice wakes the waiter once; next_frame after the end stays END. */
    moqt_track *pulled = NULL;
    CHECK(moqt_broadcast_create_track(broadcast, "pulled", SIZE_MAX, 1, 10000, &pulled) == MOQT_STATUS_OK,
          "pulled track");
    moqt_pull *pull = NULL;
    CHECK(moqt_client_subscribe_pull(subscriber, "live", SIZE_MAX, "pulled", SIZE_MAX, &pull) == MOQT_STATUS_OK,
          "subscribe_pull");
    struct waiter waiter;
    waiter.pull = pull;
    waiter.status = MOQT_STATUS_OK;
    pthread_t waiting;
    pthread_create(&waiting, NULL, wait_forever, &waiter);
    sleep_ms(100);
    moqt_pull_interrupt(pull);
    moqt_pull_interrupt(pull);
    pthread_join(waiting, NULL);
    CHECK(waiter.status == MOQT_STATUS_ERR_INTERRUPTED, "an interrupted waiter returns ERR_INTERRUPTED");
    const moqt_frame *frame = NULL;
    moqt_status next = moqt_pull_next_frame(pull, 0, &frame);
    CHECK(next == MOQT_STATUS_ERR_INTERRUPTED || next == MOQT_STATUS_ERR_AGAIN, "after two interrupts");
    CHECK(moqt_pull_next_frame(pull, 0, &frame) == MOQT_STATUS_ERR_AGAIN, "two interrupts wake at most twice");
    CHECK(moqt_track_wait_subscribed(pulled, 20000) == MOQT_STATUS_OK, "a subscriber reached the pulled track");
    write_frames(pulled, 2);
    int pulled_frames = 0;
    for (int i = 0; i < 2; i++) {
        if (moqt_pull_next_frame(pull, 5000, &frame) == MOQT_STATUS_OK) {
            pulled_frames++;
            moqt_frame_unref(frame);
        }
    }
    CHECK(pulled_frames == 2, "pulled frames");
    moqt_track_free(pulled);
    CHECK(moqt_pull_next_frame(pull, 5000, &frame) == MOQT_STATUS_END, "pull: END once the track ended");
    CHECK(moqt_pull_next_frame(pull, 0, &frame) == MOQT_STATUS_END, "pull: END again");
    moqt_pull_interrupt(pull); /* after the end: harmless */
    moqt_pull_interrupt(pull);
    moqt_pull_free(pull);

    /* A subscription (waiting for a broadcast nobody announces) and a state watch that outlive
     * their client (freed after it). */
    struct watch orphan;
    watch_init(&orphan);
    moqt_subscription *orphaned = subscribe_watch(subscriber, "never", "t", &orphan);
    struct seen state_seen;
    memset(&state_seen, 0, sizeof state_seen);
    pthread_mutex_init(&state_seen.lock, NULL);
    moqt_state_callbacks state_callbacks;
    memset(&state_callbacks, 0, sizeof state_callbacks);
    state_callbacks.struct_size = sizeof state_callbacks;
    state_callbacks.user_data = &state_seen;
    state_callbacks.user_data_free = seen_free;
    moqt_state_watch *state_watch = NULL;
    CHECK(moqt_client_watch_state(subscriber, &state_callbacks, &state_watch) == MOQT_STATUS_OK, "watch_state");

    /* The broadcast goes away: the watcher sees it. */
    moqt_track_free(track);
    moqt_broadcast_free(broadcast);
    CHECK(seen_count(&seen, &seen.gone, 1) == 1, "the broadcast's end announced");
    moqt_announced_free(announced);
    CHECK(seen_count(&seen, &seen.frees, 1) == 1, "the watcher's user_data_free once");

    /* The kept frames outlive their subscriptions and the client. */
    moqt_client_free(subscriber);
    /* moqt_client_free documents on_closed(MOQT_STATUS_ERR_CLOSED) for the client's
     * subscriptions, but today it comes only after the received broadcasts' 30 s linger
     * (reported as a src/ffi bug): not waited for here. Freeing the handle after its client is
     * what this checks. */
    moqt_subscription_free(orphaned);
    CHECK(read_int(&orphan, &orphan.closed) <= 1, "on_closed at most once");
    CHECK(wait_for(&orphan, &orphan.frees, 1) == 1, "user_data_free once for a subscription freed after its client");
    moqt_state_watch_free(state_watch);
    CHECK(seen_count(&state_seen, &state_seen.frees, 1) == 1, "user_data_free once for a watch freed after its client");
    const moqt_frame *kept = inside.kept;
    size_t len = 0;
    /* Referenced twice, unreferenced twice: readable until the last unref. */
    CHECK(moqt_frame_ref(kept) == kept, "moqt_frame_ref returns the same frame");
    moqt_frame_unref(kept);
    CHECK(kept != NULL && moqt_frame_data(kept, &len) != NULL && len == 32, "a kept frame stays readable");
    moqt_frame_unref(kept);
    const struct watch *more[] = {&released_inside, &released_outside, &after_end, &orphan};
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        if (more[i]->kept) moqt_frame_unref(more[i]->kept);
    }
    if (burst.kept) moqt_frame_unref(burst.kept);
    for (int i = 0; i < stress.rounds; i++) {
        if (stress.watches[i].kept) moqt_frame_unref(stress.watches[i].kept);
        pthread_mutex_destroy(&stress.watches[i].lock);
    }

    moqt_client_free(publisher);
    moqt_relay_stop(relay, NULL, 500);
    moqt_shutdown();
    /* Every buffer back, the one refused by the NULL-track call included. */
    pthread_mutex_lock(&zero_copy_lock);
    CHECK(zero_copy_freed == zero_copy_written + 1, "every zero-copy buffer freed exactly once");
    pthread_mutex_unlock(&zero_copy_lock);
    pthread_mutex_destroy(&seen.lock);
    pthread_mutex_destroy(&state_seen.lock);
    pthread_mutex_destroy(&released_inside.lock);
    pthread_mutex_destroy(&released_outside.lock);
    pthread_mutex_destroy(&after_end.lock);
    pthread_mutex_destroy(&orphan.lock);
    pthread_mutex_destroy(&failed.lock);
    pthread_mutex_destroy(&inside.lock);
    pthread_mutex_destroy(&burst.lock);
    printf("lifecycle: %s (%d stress subscriptions)\n", failures == 0 ? "ok" : "FAILED", stress.subscribed);
    return failures == 0 ? 0 : 1;
}
