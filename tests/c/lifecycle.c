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
 *   - announcements: a broadcast seen appearing and going away.
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

static int failures = 0;
#define CHECK(cond, what)                                       \
    do {                                                        \
        if (!(cond)) {                                          \
            fprintf(stderr, "lifecycle: FAILED: %s\n", what);  \
            failures++;                                         \
        }                                                       \
    } while (0)

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Per-subscription state, shared with the callbacks under a mutex. */
struct watch {
    pthread_mutex_t lock;
    int frames;
    int frees;
    int frames_after_free;
    int freed_in_callback;
    moqt_subscription *self;
    int free_on_frame;
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
    int free_now = w->free_on_frame && w->frames == w->free_on_frame;
    moqt_subscription *self = w->self;
    if (free_now) w->freed_in_callback = 1;
    pthread_mutex_unlock(&w->lock);
    if (free_now) moqt_subscription_free(self); /* allowed from its own callback */
}

static void on_gap(void *user_data, uint64_t first, uint64_t last, uint64_t code) {
    (void)user_data;
    (void)first;
    (void)last;
    (void)code;
}

static void on_closed(void *user_data, moqt_status status) {
    (void)user_data;
    (void)status;
}

static void user_data_free(void *user_data) {
    struct watch *w = (struct watch *)user_data;
    pthread_mutex_lock(&w->lock);
    w->frees++;
    pthread_mutex_unlock(&w->lock);
}

static int read_int(struct watch *w, int *field) {
    pthread_mutex_lock(&w->lock);
    int value = *field;
    pthread_mutex_unlock(&w->lock);
    return value;
}

/* Waits up to 5 s for *field to reach at least `want`. */
static int wait_for(struct watch *w, int *field, int want) {
    for (int i = 0; i < 500 && read_int(w, field) < want; i++) sleep_ms(10);
    return read_int(w, field);
}

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

static moqt_client *connect_to(const char *url, const char *fingerprint) {
    moqt_client_options options;
    memset(&options, 0, sizeof options);
    options.struct_size = sizeof options;
    options.tls_fingerprint = fingerprint;
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
    sleep_ms(300);
    for (int i = 0; i < 10; i++) {
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
    sleep_ms(300);
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

    /* The broadcast goes away: the watcher sees it. */
    moqt_track_free(track);
    moqt_broadcast_free(broadcast);
    CHECK(seen_count(&seen, &seen.gone, 1) == 1, "the broadcast's end announced");
    moqt_announced_free(announced);
    CHECK(seen_count(&seen, &seen.frees, 1) == 1, "the watcher's user_data_free once");

    /* The kept frames outlive their subscriptions and the client. */
    moqt_client_free(subscriber);
    const moqt_frame *kept = inside.kept;
    size_t len = 0;
    CHECK(kept != NULL && moqt_frame_data(kept, &len) != NULL && len == 32, "a kept frame stays readable");
    moqt_frame_unref(kept);
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
    pthread_mutex_destroy(&failed.lock);
    pthread_mutex_destroy(&inside.lock);
    pthread_mutex_destroy(&burst.lock);
    printf("lifecycle: %s (%d stress subscriptions)\n", failures == 0 ? "ok" : "FAILED", stress.subscribed);
    return failures == 0 ? 0 : 1;
}
