/*
 * Delivery order and pull mode from C, against an embedded relay:
 *   - a publisher caches 20 groups (two frames each, group 19 still in progress), a subscriber
 *     subscribes, then 20 more groups are written and the track ends. For each start (the
 *     default 0, MOQT_START_LATEST, MOQT_START_OLDEST, group 5), each delivery
 *     (MOQT_DELIVERY_ORDERED, MOQT_DELIVERY_ARRIVAL) and each mode (push, pull):
 *       ordered: exactly the groups from the start to 39, ascending, frames in order, no gap;
 *       arrival: the same groups and frames (each group's frames in order), no gap;
 *     the live edge is group 19, the one in progress: nothing older arrives;
 *   - a warm relay cache: a first subscriber on another session takes the backlog from the
 *     oldest group (the relay now holds groups 0..19), then the subscription under test joins
 *     at the live edge (MOQT_START_LATEST) and must still get group 19 on and nothing older, in
 *     each delivery and mode; the first subscriber gets 0..39;
 *   - moqt_pull_set_flushing: a waiting moqt_pull_next_frame returns MOQT_STATUS_ERR_INTERRUPTED
 *     at once, and so does every call while flushing, frames queued or not; clearing it lets
 *     frames through again and drops a stale moqt_pull_interrupt;
 *   - the readiness fd is close-on-exec, and readable for a gap report alone and at the end;
 *   - moqt_pull_free while another thread waits: the waiter returns MOQT_STATUS_ERR_CLOSED;
 *     and RACES times a free that lands anywhere around another thread's moqt_pull_next_frame
 *     (before it reaches the handle, while it does, while it waits): it returns
 *     MOQT_STATUS_ERR_CLOSED and reads no freed memory (under AddressSanitizer freed memory is
 *     filled with garbage, so such a read crashes; Valgrind reports it).
 * With arguments URL FINGERPRINT VERSION it runs the backlog and warm-cache cases against that
 * relay (moq-relay in the interop tests) on moq-lite-0VERSION instead of an embedded one, and
 * says how many warm-cache subscriptions saw groups 0..18 reported as a gap (the caller knows
 * which relay does that; see backlog_cases).
 * Ends with moqt_shutdown so the sanitizers and Valgrind see the engine's whole life.
 * Exit 0 when every check holds; prints what failed otherwise.
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moqt.h"

#define TEST_NAME "delivery_order"
#include "check.h"
#include "recorder.h"

#define GROUPS 40
#define CACHED 20
#define FRAMES 2
#define MAX_ITEMS (GROUPS * FRAMES + 16)
#define RACES 200

#if defined(__SANITIZE_ADDRESS__)
/* Freed memory is filled with 0xbe, so a read of a freed handle (the race in free_racing_a_wait)
 * finds garbage pointers and crashes, instead of stale ones that happen to work. */
#ifdef __cplusplus
extern "C" {
#endif
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "max_free_fill_size=4096:free_fill_byte=190"; }
#ifdef __cplusplus
}
#endif
#endif

/* What a subscription delivered, in order. */
struct record {
    pthread_mutex_t lock;
    int frames;
    uint64_t group[MAX_ITEMS];
    uint64_t index[MAX_ITEMS];
    int bad_payload;
    int gaps;
    uint64_t gap_first, gap_last, gap_code;
    int closed;
    moqt_status status;
    int frees;
};

static void record_init(struct record *r) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
}

static void record_frame(struct record *r, const moqt_frame *frame) {
    size_t len = 0;
    const uint8_t *data = moqt_frame_data(frame, &len);
    pthread_mutex_lock(&r->lock);
    uint64_t group = moqt_frame_group(frame), index = moqt_frame_index(frame);
    if (len != 2 || data[0] != (uint8_t)group || data[1] != (uint8_t)index) r->bad_payload++;
    if (r->frames < MAX_ITEMS) {
        r->group[r->frames] = group;
        r->index[r->frames] = index;
    }
    r->frames++;
    pthread_mutex_unlock(&r->lock);
}

static void record_gap(struct record *r, uint64_t first, uint64_t last, uint64_t code) {
    pthread_mutex_lock(&r->lock);
    r->gaps++;
    r->gap_first = first;
    r->gap_last = last;
    r->gap_code = code;
    pthread_mutex_unlock(&r->lock);
}

static int read_int(struct record *r, int *field) { return locked_int(&r->lock, field); }

/* Waits up to 30 s (Valgrind is slow) for *field to reach `want`. */
static int wait_for(struct record *r, int *field, int want) { return wait_locked(&r->lock, field, want, 30); }

static void on_frame(void *user_data, const moqt_frame *frame) { record_frame((struct record *)user_data, frame); }

static void on_gap(void *user_data, uint64_t first, uint64_t last, uint64_t code) {
    record_gap((struct record *)user_data, first, last, code);
}

static void on_closed(void *user_data, moqt_status status) {
    struct record *r = (struct record *)user_data;
    pthread_mutex_lock(&r->lock);
    r->closed++;
    r->status = status;
    pthread_mutex_unlock(&r->lock);
}

static void on_free(void *user_data) {
    struct record *r = (struct record *)user_data;
    pthread_mutex_lock(&r->lock);
    r->frees++;
    pthread_mutex_unlock(&r->lock);
}

/* A client of the relay at `url`, on moq-lite `version` (0: the newest both sides speak). */
static moqt_client *connect_to(const char *url, const char *fingerprint, uint32_t version) {
    moqt_client_options options;
    memset(&options, 0, sizeof options);
    options.struct_size = sizeof options;
    options.tls_fingerprint = fingerprint;
    options.version = version;
    options.connect_attempt_timeout_ms = SLOW_ATTEMPT_MS;
    moqt_client *client = NULL;
    if (moqt_client_connect(url, SIZE_MAX, &options, &client) != MOQT_STATUS_OK) {
        fprintf(stderr, "delivery_order: connect: %s\n", moqt_last_error());
        exit(1);
    }
    return client;
}

/* Writes groups first..=last, two frames each: payload {group, index}, timestamps 40 ms apart. */
static void write_groups(const moqt_track *track, uint64_t first, uint64_t last) {
    for (uint64_t group = first; group <= last; group++) {
        for (uint64_t index = 0; index < FRAMES; index++) {
            uint8_t payload[2] = {(uint8_t)group, (uint8_t)index};
            uint32_t flags = index == 0 ? MOQT_FRAME_NEW_GROUP : 0;
            if (moqt_track_write_frame(track, payload, sizeof payload, group * 40000 + index * 1000, flags) !=
                MOQT_STATUS_OK) {
                fprintf(stderr, "delivery_order: write: %s\n", moqt_last_error());
                exit(1);
            }
        }
    }
}

static moqt_subscribe_options options_for(int64_t start, uint32_t delivery) {
    moqt_subscribe_options options;
    memset(&options, 0, sizeof options);
    options.struct_size = sizeof options;
    options.start_group = start;
    options.delivery = delivery;
    /* Generous: a loaded machine must not turn a slow group into a skipped one here. */
    options.max_latency_ms = 10000;
    return options;
}

/* Drains a pull subscription into `r` until its end (MOQT_STATUS_END for a finished track) or
 * `want` frames. */
static void drain_pull(const moqt_pull *pull, struct record *r, int want) {
    while (want < 0 || read_int(r, &r->frames) < want) {
        const moqt_frame *frame = NULL;
        moqt_status status = moqt_pull_next_frame(pull, 30000, &frame);
        uint64_t first, last, code;
        while (moqt_pull_next_gap(pull, &first, &last, &code) == MOQT_STATUS_OK) record_gap(r, first, last, code);
        if (status == MOQT_STATUS_OK) {
            record_frame(r, frame);
            moqt_frame_unref(frame);
        } else {
            if (status != MOQT_STATUS_END) fprintf(stderr, "delivery_order: pull: %s\n", moqt_last_error());
            pthread_mutex_lock(&r->lock);
            r->closed++;
            r->status = status;
            pthread_mutex_unlock(&r->lock);
            return;
        }
    }
}

/* A subscription of `client` to track `name`, recorded into `r` (initialised): push (callbacks)
 * or pull (`*pull` set; the caller drains it). */
static moqt_subscription *subscribe_into(moqt_client *client, const char *name, const moqt_subscribe_options *options,
                                         bool pull_mode, struct record *r, moqt_pull **pull) {
    if (pull_mode) {
        CHECK(moqt_client_subscribe_pull_with(client, "live", SIZE_MAX, name, SIZE_MAX, options, pull) ==
                  MOQT_STATUS_OK,
              "subscribe_pull_with");
        return NULL;
    }
    moqt_subscribe_callbacks callbacks;
    memset(&callbacks, 0, sizeof callbacks);
    callbacks.struct_size = sizeof callbacks;
    callbacks.user_data = r;
    callbacks.user_data_free = on_free;
    callbacks.on_frame = on_frame;
    callbacks.on_gap = on_gap;
    callbacks.on_closed = on_closed;
    moqt_subscription *sub = NULL;
    CHECK(moqt_client_subscribe_with(client, "live", SIZE_MAX, name, SIZE_MAX, options, &callbacks, &sub) ==
              MOQT_STATUS_OK,
          "subscribe_with");
    return sub;
}

/* How many warm-cache subscriptions saw groups 0..18 reported as a gap (see backlog_cases). */
static int warm_edge_gaps = 0;

/* Checks what `r` got once the track ended: groups first_group..39, two frames each (in exact
 * sequence when ordered, all of them once when in arrival order), no gap, a clean end. With
 * `below_edge_gap`, one gap report for exactly the groups below first_group is counted in
 * warm_edge_gaps instead of failing. */
static void check_record(struct record *r, const char *who, uint64_t first_group, uint32_t delivery,
                         bool below_edge_gap) {
    char what[200];
    int expected = (int)(GROUPS - first_group) * FRAMES;
    pthread_mutex_lock(&r->lock);
    int frames = r->frames;
    bool exact = frames == expected, complete = frames == expected, in_group_order = true;
    bool seen[GROUPS][FRAMES];
    memset(seen, 0, sizeof seen);
    uint64_t last_index[GROUPS];
    for (int g = 0; g < GROUPS; g++) last_index[g] = UINT64_MAX;
    for (int i = 0; i < frames && i < MAX_ITEMS; i++) {
        uint64_t g = r->group[i], f = r->index[i];
        if (i < expected && (g != first_group + (uint64_t)i / FRAMES || f != (uint64_t)i % FRAMES)) exact = false;
        if (g < first_group || g >= GROUPS || f >= FRAMES || seen[g][f]) {
            complete = false;
            continue;
        }
        seen[g][f] = true;
        if (last_index[g] != UINT64_MAX && f <= last_index[g]) in_group_order = false;
        last_index[g] = f;
    }
    int gaps = r->gaps, bad = r->bad_payload, closed = r->closed;
    moqt_status status = r->status;
    uint64_t got_first = frames > 0 ? r->group[0] : UINT64_MAX;
    uint64_t gap_first = r->gap_first, gap_last = r->gap_last, gap_code = r->gap_code;
    pthread_mutex_unlock(&r->lock);

    snprintf(what, sizeof what, "%s: %d frames (want %d), first group %llu (want %llu)", who, frames, expected,
             (unsigned long long)got_first, (unsigned long long)first_group);
    if (delivery == MOQT_DELIVERY_ORDERED) CHECK(exact, what);
    else CHECK(complete, what);
    snprintf(what, sizeof what, "%s: frames in order within each group", who);
    CHECK(in_group_order, what);
    if (below_edge_gap && first_group > 0 && gaps == 1 && gap_first == 0 && gap_last == first_group - 1) {
        printf("delivery_order: %s: groups 0..%llu reported as a gap (code %llu)\n", who,
               (unsigned long long)gap_last, (unsigned long long)gap_code);
        warm_edge_gaps++;
        gaps = 0;
    }
    snprintf(what, sizeof what, "%s: no gap reported (%d, the last %llu..%llu code %llu)", who, gaps,
             (unsigned long long)gap_first, (unsigned long long)gap_last, (unsigned long long)gap_code);
    CHECK(gaps == 0, what);
    snprintf(what, sizeof what, "%s: each frame's own bytes", who);
    CHECK(bad == 0, what);
    snprintf(what, sizeof what, "%s: one end, clean (%d)", who, (int)status);
    CHECK(closed == 1 && status == MOQT_STATUS_END, what);
}

/* Waits for the end of a push subscription, or drains a pull one to its end; then frees it. */
static void finish_subscription(moqt_pull *pull, struct record *r) {
    if (pull) drain_pull(pull, r, -1);
    else wait_for(r, &r->closed, 1);
}

static void free_subscription(moqt_subscription *sub, moqt_pull *pull, struct record *r) {
    if (pull) moqt_pull_free(pull);
    else {
        moqt_subscription_free(sub);
        CHECK(wait_for(r, &r->frees, 1) == 1, "user_data_free once");
    }
}

/* One case: the backlog, a subscription, 20 live groups, the end; then the checks. With a
 * `warmer` client, a subscription of its from the oldest group takes the whole backlog first, so
 * the relay holds it when the subscription under test arrives. */
static void backlog_case(moqt_client *subscriber, moqt_client *warmer, const moqt_broadcast *broadcast, int n,
                         int64_t start, uint64_t first_group, uint32_t delivery, bool pull_mode,
                         bool below_edge_gap) {
    char name[32], who[120];
    snprintf(name, sizeof name, "case%d", n);
    snprintf(who, sizeof who, "%s%s %s start %lld", warmer ? "warm cache: " : "", pull_mode ? "pull" : "push",
             delivery == MOQT_DELIVERY_ORDERED ? "ordered" : "arrival", (long long)start);
    moqt_track *track = NULL;
    CHECK(moqt_broadcast_create_track(broadcast, name, SIZE_MAX, 1, 60000, &track) == MOQT_STATUS_OK, "track");
    write_groups(track, 0, CACHED - 1); /* group 19 stays in progress */

    struct record warm;
    record_init(&warm);
    moqt_pull *warm_pull = NULL;
    if (warmer) {
        moqt_subscribe_options oldest = options_for(MOQT_START_OLDEST, MOQT_DELIVERY_ORDERED);
        subscribe_into(warmer, name, &oldest, true, &warm, &warm_pull);
        drain_pull(warm_pull, &warm, CACHED * FRAMES); /* the relay has passed on the whole backlog */
    }

    struct record r;
    record_init(&r);
    moqt_subscribe_options options = options_for(start, delivery);
    moqt_pull *pull = NULL;
    moqt_subscription *sub = subscribe_into(subscriber, name, &options, pull_mode, &r, &pull);
    /* The start group's frames are there before the live groups are written. */
    if (pull_mode) drain_pull(pull, &r, FRAMES);
    else wait_for(&r, &r.frames, FRAMES);
    write_groups(track, CACHED, GROUPS - 1);
    moqt_track_free(track); /* ends the track: its last group is complete */
    finish_subscription(pull, &r);
    check_record(&r, who, first_group, delivery, below_edge_gap);
    free_subscription(sub, pull, &r);
    if (warmer) {
        finish_subscription(warm_pull, &warm);
        char warm_who[160];
        snprintf(warm_who, sizeof warm_who, "%s: the first subscriber", who);
        check_record(&warm, warm_who, 0, MOQT_DELIVERY_ORDERED, false);
        free_subscription(NULL, warm_pull, &warm);
    }
}

/* Every backlog case (each start, delivery and mode), then the warm-cache ones (the live edge,
 * each delivery and mode) through the relay the clients are connected to; returns how many.
 * With `warm_edge_gap_counted`, a warm-cache subscription may see groups 0..18 reported as one
 * gap (counted in warm_edge_gaps, printed, for the caller to compare with what that relay does:
 * moq-relay 0.17.10 on moq-lite-06 answers the live-edge SUBSCRIBE with group 0 when its cache
 * holds 0..19, then delivers only 19 on); frames must still be exactly 19..39. */
static int backlog_cases(moqt_client *subscriber, moqt_client *warmer, const moqt_broadcast *broadcast,
                         bool warm_edge_gap_counted) {
    /* start_group and the first group expected: the live edge is group 19, the one in progress. */
    const int64_t starts[4] = {0, MOQT_START_LATEST, MOQT_START_OLDEST, 5};
    const uint64_t firsts[4] = {CACHED - 1, CACHED - 1, 0, 5};
    const uint32_t deliveries[2] = {MOQT_DELIVERY_ORDERED, MOQT_DELIVERY_ARRIVAL};
    int n = 0;
    for (int s = 0; s < 4; s++)
        for (int d = 0; d < 2; d++)
            for (int pull_mode = 0; pull_mode < 2; pull_mode++)
                backlog_case(subscriber, NULL, broadcast, n++, starts[s], firsts[s], deliveries[d], pull_mode, false);
    for (int d = 0; d < 2; d++)
        for (int pull_mode = 0; pull_mode < 2; pull_mode++)
            backlog_case(subscriber, warmer, broadcast, n++, MOQT_START_LATEST, CACHED - 1, deliveries[d], pull_mode,
                         warm_edge_gap_counted);
    return n;
}

/* A pull-mode waiter on another thread: what moqt_pull_next_frame(-1) returned. */
struct waiter {
    const moqt_pull *pull;
    moqt_status status;
};

/* Waits for frames until a call returns something else (a late frame is taken and waited past). */
static void *wait_forever(void *arg) {
    struct waiter *w = (struct waiter *)arg;
    const moqt_frame *frame = NULL;
    while ((w->status = moqt_pull_next_frame(w->pull, -1, &frame)) == MOQT_STATUS_OK) moqt_frame_unref(frame);
    return NULL;
}

static bool readable(const moqt_pull *pull, int timeout_ms) {
    struct pollfd fds = {moqt_pull_fd(pull), POLLIN, 0};
    return poll(&fds, 1, timeout_ms) == 1;
}

/* Flushing, the readiness fd and a free while another thread waits. */
static void pull_controls(moqt_client *subscriber, const moqt_broadcast *broadcast) {
    moqt_track *track = NULL;
    CHECK(moqt_broadcast_create_track(broadcast, "flushing", SIZE_MAX, 1, 60000, &track) == MOQT_STATUS_OK,
          "flushing track");
    moqt_pull *pull = NULL;
    CHECK(moqt_client_subscribe_pull(subscriber, "live", SIZE_MAX, "flushing", SIZE_MAX, &pull) == MOQT_STATUS_OK,
          "subscribe_pull");
    int flags = fcntl(moqt_pull_fd(pull), F_GETFD);
    CHECK(flags != -1 && (flags & FD_CLOEXEC), "the readiness fd is close-on-exec");
    CHECK(moqt_pull_set_flushing(NULL, true) == MOQT_STATUS_ERR_INVALID_ARG, "set_flushing(NULL)");

    /* A waiter wakes at once when flushing starts. */
    struct waiter waiter = {pull, MOQT_STATUS_OK};
    pthread_t thread;
    pthread_create(&thread, NULL, wait_forever, &waiter);
    sleep_ms(100);
    CHECK(moqt_pull_set_flushing(pull, true) == MOQT_STATUS_OK, "set_flushing(true)");
    pthread_join(thread, NULL);
    CHECK(waiter.status == MOQT_STATUS_ERR_INTERRUPTED, "flushing wakes a waiter with INTERRUPTED");

    /* While flushing, every wait returns at once, frames queued or not. */
    write_groups(track, 0, 0);
    struct record r;
    record_init(&r);
    const moqt_frame *frame = NULL;
    CHECK(readable(pull, 30000), "a frame makes the fd readable");
    CHECK(moqt_pull_next_frame(pull, 5000, &frame) == MOQT_STATUS_ERR_INTERRUPTED, "flushing: INTERRUPTED at once");
    CHECK(moqt_pull_next_frame(pull, -1, &frame) == MOQT_STATUS_ERR_INTERRUPTED, "flushing: even waiting forever");
    /* Clearing it lets the queued frames through and drops a stale interrupt. */
    moqt_pull_interrupt(pull);
    CHECK(moqt_pull_set_flushing(pull, false) == MOQT_STATUS_OK, "set_flushing(false)");
    drain_pull(pull, &r, FRAMES);
    CHECK(read_int(&r, &r.frames) == FRAMES, "frames after the flushing ends");
    CHECK(!readable(pull, 0), "nothing queued: the fd is quiet");
    CHECK(moqt_pull_next_frame(pull, 50, &frame) == MOQT_STATUS_ERR_TIMEOUT, "no stale interrupt after unflushing");

    /* The end alone makes the fd readable. */
    moqt_track_free(track);
    CHECK(readable(pull, 30000), "the end makes the fd readable");
    CHECK(moqt_pull_next_frame(pull, 0, &frame) == MOQT_STATUS_END, "the end");
    moqt_pull_free(pull);

    /* A gap report alone makes the fd readable: groups 0..7 are too old for the max age (100 ms)
     * once 9 is written (8 reaches until 9 starts), so a subscription from group 2 is told 2..7
     * will not come. */
    moqt_track *old = NULL;
    CHECK(moqt_broadcast_create_track(broadcast, "expiring", SIZE_MAX, 1, 100, &old) == MOQT_STATUS_OK,
          "expiring track");
    for (uint64_t group = 0; group < 10; group++) {
        uint8_t payload[2] = {(uint8_t)group, 0};
        CHECK(moqt_track_write_frame(old, payload, sizeof payload, group * 1000000, MOQT_FRAME_NEW_GROUP) ==
                  MOQT_STATUS_OK,
              "write a second apart");
    }
    moqt_subscribe_options from_two = options_for(2, MOQT_DELIVERY_ORDERED);
    CHECK(moqt_client_subscribe_pull_with(subscriber, "live", SIZE_MAX, "expiring", SIZE_MAX, &from_two, &pull) ==
              MOQT_STATUS_OK,
          "subscribe from group 2");
    bool gap_alone_readable = false, gap_seen = false;
    uint64_t first = 0, last = 0, code = 0;
    for (int i = 0; i < 3000 && !gap_seen; i++) {
        if (!readable(pull, 10)) continue;
        bool frame_taken = false;
        while (moqt_pull_next_frame(pull, 0, &frame) == MOQT_STATUS_OK) {
            moqt_frame_unref(frame);
            frame_taken = true;
        }
        bool still = readable(pull, 0);
        if (moqt_pull_next_gap(pull, &first, &last, &code) == MOQT_STATUS_OK) {
            gap_seen = true;
            gap_alone_readable = still;
        } else if (!frame_taken) {
            CHECK(false, "a readable fd with nothing to take");
            break;
        }
    }
    char seen[96];
    snprintf(seen, sizeof seen, "groups 2..7 reported as a gap (seen %d: %llu..%llu)", (int)gap_seen,
             (unsigned long long)first, (unsigned long long)last);
    CHECK(gap_seen && first == 2 && last == 7, seen);
    CHECK(gap_alone_readable, "a gap report alone makes the fd readable");

    /* A free while another thread waits: the waiter returns CLOSED. */
    while (moqt_pull_next_frame(pull, 0, &frame) == MOQT_STATUS_OK) moqt_frame_unref(frame);
    waiter.pull = pull;
    waiter.status = MOQT_STATUS_OK;
    pthread_create(&thread, NULL, wait_forever, &waiter);
    sleep_ms(100);
    moqt_pull_free(pull);
    pthread_join(thread, NULL);
    CHECK(waiter.status == MOQT_STATUS_ERR_CLOSED, "a waiter returns CLOSED when the handle is freed");
    moqt_track_free(old);
}

/* A waiter that says it is about to call, spins `spin` rounds, then waits for frames. */
struct racer {
    const moqt_pull *pull;
    int entering;
    int spin;
    moqt_status status;
};

static void *enter_and_wait(void *arg) {
    struct racer *r = (struct racer *)arg;
    __atomic_store_n(&r->entering, 1, __ATOMIC_RELEASE);
    for (volatile int i = 0; i < r->spin; i++) {
    }
    const moqt_frame *frame = NULL;
    while ((r->status = moqt_pull_next_frame(r->pull, -1, &frame)) == MOQT_STATUS_OK) moqt_frame_unref(frame);
    return NULL;
}

/* moqt_pull_free racing a moqt_pull_next_frame on another thread, RACES times, the two shifted
 * against each other by a different number of spins each time, so the free lands before the call
 * reaches the handle, while it takes its reference, and while it waits. Returns how many raced. */
static int free_racing_a_wait(moqt_client *subscriber, const moqt_broadcast *broadcast) {
    /* A track that exists and is never written: a waiter waits until the free ends it. */
    moqt_track *track = NULL;
    CHECK(moqt_broadcast_create_track(broadcast, "racing", SIZE_MAX, 1, 60000, &track) == MOQT_STATUS_OK,
          "racing track");
    int closed = 0;
    moqt_status other = MOQT_STATUS_ERR_CLOSED;
    for (int i = 0; i < RACES; i++) {
        moqt_pull *pull = NULL;
        if (moqt_client_subscribe_pull(subscriber, "live", SIZE_MAX, "racing", SIZE_MAX, &pull) != MOQT_STATUS_OK) {
            CHECK(false, "subscribe_pull for a race");
            break;
        }
        struct racer racer = {pull, 0, (i % 16) * 40, MOQT_STATUS_OK};
        pthread_t thread;
        pthread_create(&thread, NULL, enter_and_wait, &racer);
        while (!__atomic_load_n(&racer.entering, __ATOMIC_ACQUIRE)) sched_yield();
        for (volatile int k = 0; k < (i / 16 % 8) * 80; k++) {
        }
        moqt_pull_free(pull);
        pthread_join(thread, NULL);
        if (racer.status == MOQT_STATUS_ERR_CLOSED) closed++;
        else other = racer.status;
    }
    moqt_track_free(track);
    char what[128];
    snprintf(what, sizeof what, "every waiter racing a free returns CLOSED (%d of %d; another: %s)", closed, RACES,
             moqt_status_str(other));
    CHECK(closed == RACES, what);
    return RACES;
}

int main(int argc, char **argv) {
    recorder_start();
    if (argc == 4) {
        /* A relay of someone else's: URL FINGERPRINT VERSION. */
        uint32_t version = (uint32_t)strtoul(argv[3], NULL, 10);
        moqt_client *publisher = connect_to(argv[1], argv[2], version);
        moqt_client *subscriber = connect_to(argv[1], argv[2], version);
        moqt_client *warmer = connect_to(argv[1], argv[2], version);
        moqt_broadcast *broadcast = NULL;
        CHECK(moqt_client_publish(publisher, "live", SIZE_MAX, &broadcast) == MOQT_STATUS_OK, "publish");
        int n = backlog_cases(subscriber, warmer, broadcast, true);
        moqt_broadcast_free(broadcast);
        moqt_client_free(warmer);
        moqt_client_free(subscriber);
        moqt_client_free(publisher);
        moqt_shutdown();
        recorder_report();
        if (failures) return 1;
        printf("delivery_order: ok (%d backlog cases through %s on moq-lite-0%u, %d of 4 warm-cache gaps below the "
               "live edge)\n",
               n, argv[1], version, warm_edge_gaps);
        return 0;
    }
    if (argc != 1) {
        fprintf(stderr, "usage: delivery_order [URL FINGERPRINT VERSION]\n");
        return 2;
    }
    moqt_relay *relay = NULL;
    if (moqt_relay_start("127.0.0.1:0", SIZE_MAX, NULL, &relay) != MOQT_STATUS_OK) {
        fprintf(stderr, "delivery_order: relay: %s\n", moqt_last_error());
        return 1;
    }
    char fingerprint[65];
    CHECK(moqt_relay_fingerprint(relay, fingerprint, sizeof fingerprint) == MOQT_STATUS_OK, "fingerprint");
    char url[64];
    snprintf(url, sizeof url, "moql://localhost:%u/x", (unsigned)moqt_relay_port(relay));
    moqt_client *publisher = connect_to(url, fingerprint, 0);
    moqt_client *subscriber = connect_to(url, fingerprint, 0);
    moqt_client *warmer = connect_to(url, fingerprint, 0);
    moqt_broadcast *broadcast = NULL;
    CHECK(moqt_client_publish(publisher, "live", SIZE_MAX, &broadcast) == MOQT_STATUS_OK, "publish");

    int n = backlog_cases(subscriber, warmer, broadcast, false);
    pull_controls(subscriber, broadcast);
    int races = free_racing_a_wait(subscriber, broadcast);

    moqt_broadcast_free(broadcast);
    moqt_client_free(warmer);
    moqt_client_free(subscriber);
    moqt_client_free(publisher);
    moqt_relay_stop(relay, NULL, 0);
    moqt_shutdown();
    recorder_report();
    if (failures) return 1;
    printf("delivery_order: ok (%d backlog cases, %d frees racing a wait)\n", n, races);
    return 0;
}
