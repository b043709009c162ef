/*
 * Connecting without blocking, as a media pipeline element does it (READY -> PAUSED must not
 * stall, and the relay may not be up yet):
 *   - moqt_client_connect_async returns a client at once even when the server never answers;
 *     the client is connecting, and moqt_client_free cancels the attempt promptly (QUIC alone
 *     would wait out its 30 s handshake timeout); a state watch sees CONNECTING, then CLOSED;
 *   - element-style: on a port where no relay runs yet, a subscriber client with a pull and a
 *     push subscription, and a publisher client with a broadcast, a track and a first frame, are
 *     all set up before any session exists, and both clients' first attempts go unanswered; then
 *     an embedded relay starts on that port, both clients connect by themselves, and the frame
 *     written before the relay existed, and those after it, reach both subscriptions.
 * Ends with moqt_shutdown so the sanitizers and Valgrind see the engine's whole life.
 * Exit 0 when every check holds; prints what failed otherwise.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "moqt.h"

#define TEST_NAME "connect"
#include "check.h"

/* Generous bounds: the programs also run under Valgrind on a loaded machine. */
#define WAIT_MS 30000

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A UDP socket bound to 127.0.0.1 on a free port; *port is set. -1 on failure. */
static int bind_loopback(unsigned *port) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    socklen_t len = sizeof addr;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(addr.sin_port);
    return fd;
}

static moqt_client_options client_options(void) {
    moqt_client_options options;
    memset(&options, 0, sizeof options);
    options.struct_size = sizeof options;
    /* The relay's certificate is generated when it starts, after the client: nothing to pin yet. */
    options.tls_disable_verify = true;
    options.reconnect_initial_ms = 100;
    options.reconnect_max_ms = 1000;
    options.give_up_after_ms = UINT64_MAX;
    options.connect_attempt_timeout_ms = SLOW_ATTEMPT_MS;
    return options;
}

static moqt_client_state state_of(moqt_client *client) {
    moqt_client_state state = MOQT_CLIENT_STATE_CLOSED;
    if (moqt_client_get_state(client, &state, NULL, 0) != MOQT_STATUS_OK) return MOQT_CLIENT_STATE_CLOSED;
    return state;
}

/* Waits up to WAIT_MS for the client to be connected. */
static bool wait_connected(moqt_client *client) {
    long long deadline = now_ms() + WAIT_MS;
    while (state_of(client) != MOQT_CLIENT_STATE_CONNECTED && now_ms() < deadline) sleep_ms(10);
    return state_of(client) == MOQT_CLIENT_STATE_CONNECTED;
}

/* What a state watch saw. */
struct states {
    pthread_mutex_t lock;
    moqt_client_state seen[64];
    int count;
    int closed;
    int frees;
};

static void on_state(void *user_data, moqt_client_state state, const char *detail) {
    struct states *s = (struct states *)user_data;
    (void)detail;
    pthread_mutex_lock(&s->lock);
    if (s->count < 64) s->seen[s->count++] = state;
    pthread_mutex_unlock(&s->lock);
}

static void on_state_closed(void *user_data, moqt_status status) {
    struct states *s = (struct states *)user_data;
    (void)status;
    pthread_mutex_lock(&s->lock);
    s->closed++;
    pthread_mutex_unlock(&s->lock);
}

static void states_free(void *user_data) {
    struct states *s = (struct states *)user_data;
    pthread_mutex_lock(&s->lock);
    s->frees++;
    pthread_mutex_unlock(&s->lock);
}

static moqt_state_watch *watch_states(moqt_client *client, struct states *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    moqt_state_callbacks callbacks;
    memset(&callbacks, 0, sizeof callbacks);
    callbacks.struct_size = sizeof callbacks;
    callbacks.user_data = s;
    callbacks.user_data_free = states_free;
    callbacks.on_state = on_state;
    callbacks.on_closed = on_state_closed;
    moqt_state_watch *watch = NULL;
    CHECK(moqt_client_watch_state(client, &callbacks, &watch) == MOQT_STATUS_OK, "watch the state");
    return watch;
}

/* True once the watch has seen `state` (within WAIT_MS). */
static bool saw_state(struct states *s, moqt_client_state state) {
    long long deadline = now_ms() + WAIT_MS;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        bool seen = false;
        for (int i = 0; i < s->count; i++) seen = seen || s->seen[i] == state;
        pthread_mutex_unlock(&s->lock);
        if (seen) return true;
        if (now_ms() >= deadline) return false;
        sleep_ms(10);
    }
}

/* Waits up to WAIT_MS for datagrams from two different client ports on `fd`, never answering. */
static bool wait_two_clients(int fd) {
    unsigned short sources[2] = {0, 0};
    int seen = 0;
    long long deadline = now_ms() + WAIT_MS;
    while (seen < 2) {
        long long left = deadline - now_ms();
        struct pollfd pfd = {fd, POLLIN, 0};
        if (left <= 0 || poll(&pfd, 1, (int)left) != 1) return false;
        unsigned char packet[2048];
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        if (recvfrom(fd, packet, sizeof packet, 0, (struct sockaddr *)&from, &len) < 0) return false;
        unsigned short source = ntohs(from.sin_port);
        if (seen == 0 || sources[0] != source) sources[seen++] = source;
    }
    return true;
}

/* A server that never answers: moqt_client_free cancels the attempt at once. */
static void free_while_connecting(void) {
    unsigned port = 0;
    int silent = bind_loopback(&port);
    CHECK(silent >= 0, "bind a silent UDP socket");
    if (silent < 0) return;
    char url[128];
    snprintf(url, sizeof url, "moql://localhost:%u/never", port);
    moqt_client_options options = client_options();
    moqt_client *client = NULL;
    long long started = now_ms();
    CHECK(moqt_client_connect_async(url, SIZE_MAX, &options, &client) == MOQT_STATUS_OK, "connect_async");
    /* Against a server that never answers, a connect that waited would take the whole attempt
     * (SLOW_ATTEMPT_MS); the bound leaves Valgrind on a loaded machine plenty of room. */
    CHECK(now_ms() - started < SLOW_ATTEMPT_MS / 3, "connect_async returns at once");
    if (client == NULL) {
        close(silent);
        return;
    }
    struct states states;
    moqt_state_watch *watch = watch_states(client, &states);

    /* The attempt is under way: its first packet reaches the silent server, which never answers. */
    struct pollfd pfd = {silent, POLLIN, 0};
    CHECK(poll(&pfd, 1, WAIT_MS) == 1, "the client's first packet arrives");
    CHECK(state_of(client) == MOQT_CLIENT_STATE_CONNECTING, "connecting");
    CHECK(saw_state(&states, MOQT_CLIENT_STATE_CONNECTING), "the watch reports connecting");
    moqt_client_stats stats;
    memset(&stats, 0, sizeof stats);
    stats.struct_size = sizeof stats;
    CHECK(moqt_client_get_stats(client, &stats) == MOQT_STATUS_ERR_CLOSED, "no session yet for stats");

    long long freeing = now_ms();
    moqt_client_free(client);
    long long took = now_ms() - freeing;
    /* Without cancelling, it would wait out its 5 s bound on the close. */
    CHECK(took < 4500, "moqt_client_free cancels the attempt promptly");
    CHECK(saw_state(&states, MOQT_CLIENT_STATE_CLOSED), "the watch reports closed");
    long long deadline = now_ms() + WAIT_MS;
    for (;;) {
        pthread_mutex_lock(&states.lock);
        int closed = states.closed;
        pthread_mutex_unlock(&states.lock);
        if (closed > 0 || now_ms() >= deadline) break;
        sleep_ms(10);
    }
    pthread_mutex_lock(&states.lock);
    CHECK(states.closed == 1, "the watch ends once");
    pthread_mutex_unlock(&states.lock);
    moqt_state_watch_free(watch);
    /* user_data_free runs later, on the dispatcher: `states` must outlive it. */
    CHECK(wait_locked(&states.lock, &states.frees, 1, 30) == 1, "the watch's user_data_free once");
    close(silent);
    printf("connect: free while connecting took %lld ms\n", took);
}

/* What the push subscription received. */
struct pushed {
    pthread_mutex_t lock;
    int frames;
    char first[32];
    uint64_t first_group;
    uint64_t first_index;
    int frees;
};

static void push_frame(void *user_data, const moqt_frame *frame) {
    struct pushed *p = (struct pushed *)user_data;
    size_t len = 0;
    const uint8_t *data = moqt_frame_data(frame, &len);
    pthread_mutex_lock(&p->lock);
    if (p->frames == 0) {
        size_t n = len < sizeof p->first - 1 ? len : sizeof p->first - 1;
        memcpy(p->first, data, n);
        p->first[n] = '\0';
        p->first_group = moqt_frame_group(frame);
        p->first_index = moqt_frame_index(frame);
    }
    p->frames++;
    pthread_mutex_unlock(&p->lock);
}

static void push_free(void *user_data) {
    struct pushed *p = (struct pushed *)user_data;
    pthread_mutex_lock(&p->lock);
    p->frees++;
    pthread_mutex_unlock(&p->lock);
}

static int push_frames(struct pushed *p) {
    pthread_mutex_lock(&p->lock);
    int frames = p->frames;
    pthread_mutex_unlock(&p->lock);
    return frames;
}

/* Clients, subscriptions and a publication made before the relay exists; then the relay. */
static void before_the_relay(void) {
    /* The relay's port, held by a socket that never answers until the relay takes it over: the
     * clients' first attempts are under way, and unanswered, before the relay exists. */
    unsigned port = 0;
    int holder = bind_loopback(&port);
    CHECK(holder >= 0, "find a free port");
    if (holder < 0) return;
    char url[128];
    snprintf(url, sizeof url, "moql://localhost:%u/element", port);
    moqt_client_options options = client_options();

    /* The subscriber: a pull and a push subscription, before any session. */
    moqt_client *subscriber = NULL;
    CHECK(moqt_client_connect_async(url, SIZE_MAX, &options, &subscriber) == MOQT_STATUS_OK, "subscriber starts");
    struct states sub_states;
    moqt_state_watch *watch = watch_states(subscriber, &sub_states);
    moqt_pull *pull = NULL;
    CHECK(moqt_client_subscribe_pull(subscriber, "live", SIZE_MAX, "video", SIZE_MAX, &pull) == MOQT_STATUS_OK,
          "pull subscription before the session");
    struct pushed pushed;
    memset(&pushed, 0, sizeof pushed);
    pthread_mutex_init(&pushed.lock, NULL);
    moqt_subscribe_callbacks callbacks;
    memset(&callbacks, 0, sizeof callbacks);
    callbacks.struct_size = sizeof callbacks;
    callbacks.user_data = &pushed;
    callbacks.user_data_free = push_free;
    callbacks.on_frame = push_frame;
    moqt_subscription *push = NULL;
    CHECK(moqt_client_subscribe(subscriber, "live", SIZE_MAX, "video", SIZE_MAX, &callbacks, &push) == MOQT_STATUS_OK,
          "push subscription before the session");

    /* The publisher: a broadcast, a track and a first frame, before any session. */
    moqt_client *publisher = NULL;
    CHECK(moqt_client_connect_async(url, SIZE_MAX, &options, &publisher) == MOQT_STATUS_OK, "publisher starts");
    moqt_broadcast *broadcast = NULL;
    CHECK(moqt_client_publish(publisher, "live", SIZE_MAX, &broadcast) == MOQT_STATUS_OK, "publish before the session");
    moqt_track *track = NULL;
    CHECK(moqt_broadcast_create_track(broadcast, "video", SIZE_MAX, 1, 60000, &track) == MOQT_STATUS_OK, "track");
    const char *early = "early";
    CHECK(moqt_track_write_frame(track, (const uint8_t *)early, strlen(early), 0, MOQT_FRAME_NEW_GROUP) ==
              MOQT_STATUS_OK,
          "write before the session");

    CHECK(state_of(subscriber) != MOQT_CLIENT_STATE_CONNECTED, "no session without a relay (subscriber)");
    CHECK(state_of(publisher) != MOQT_CLIENT_STATE_CONNECTED, "no session without a relay (publisher)");
    const moqt_frame *frame = NULL;
    CHECK(moqt_pull_next_frame(pull, 0, &frame) == MOQT_STATUS_ERR_AGAIN, "nothing to pull yet");
    CHECK(wait_two_clients(holder), "both clients' first packets reach the port before the relay");
    close(holder);

    /* The relay comes up on that port. */
    moqt_relay *relay = NULL;
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%u", port);
    if (moqt_relay_start(listen, SIZE_MAX, NULL, &relay) != MOQT_STATUS_OK) {
        fprintf(stderr, "connect: relay on %s: %s\n", listen, moqt_last_error());
        failures++;
    }
    CHECK(moqt_relay_port(relay) == port, "the relay listens on the chosen port");
    CHECK(wait_connected(subscriber), "the subscriber connects once the relay is up");
    CHECK(wait_connected(publisher), "the publisher connects once the relay is up");
    CHECK(saw_state(&sub_states, MOQT_CLIENT_STATE_CONNECTED), "the watch reports connected");
    pthread_mutex_lock(&sub_states.lock);
    CHECK(sub_states.count > 0 && sub_states.seen[0] == MOQT_CLIENT_STATE_CONNECTING, "connecting came first");
    pthread_mutex_unlock(&sub_states.lock);

    /* Frames flow: the early one, then more in the same group, until both subscriptions have 5. */
    int pulled = 0, written = 1;
    char first_pulled[32] = "";
    uint64_t first_group = 99, first_index = 99;
    long long deadline = now_ms() + WAIT_MS;
    while ((pulled < 5 || push_frames(&pushed) < 5) && now_ms() < deadline) {
        moqt_status status = moqt_pull_next_frame(pull, 20, &frame);
        if (status == MOQT_STATUS_OK) {
            if (pulled == 0) {
                size_t len = 0;
                const uint8_t *data = moqt_frame_data(frame, &len);
                size_t n = len < sizeof first_pulled - 1 ? len : sizeof first_pulled - 1;
                memcpy(first_pulled, data, n);
                first_pulled[n] = '\0';
                first_group = moqt_frame_group(frame);
                first_index = moqt_frame_index(frame);
            }
            pulled++;
            moqt_frame_unref(frame);
        } else if (written < 500) {
            char text[32];
            int n = snprintf(text, sizeof text, "frame %d", written);
            CHECK(moqt_track_write_frame(track, (const uint8_t *)text, (size_t)n, (uint64_t)written * 1000, 0) ==
                      MOQT_STATUS_OK,
                  "write after the relay started");
            written++;
        }
    }
    CHECK(pulled >= 5, "the pull subscription receives frames");
    CHECK(push_frames(&pushed) >= 5, "the push subscription receives frames");
    CHECK(strcmp(first_pulled, "early") == 0 && first_group == 0 && first_index == 0,
          "the frame written before the relay existed is pulled first");
    pthread_mutex_lock(&pushed.lock);
    CHECK(strcmp(pushed.first, "early") == 0 && pushed.first_group == 0 && pushed.first_index == 0,
          "the frame written before the relay existed is pushed first");
    pthread_mutex_unlock(&pushed.lock);
    printf("connect: after the relay started: pulled %d, pushed %d, first \"%s\"\n", pulled, push_frames(&pushed),
           first_pulled);

    moqt_subscription_free(push);
    moqt_pull_free(pull);
    moqt_state_watch_free(watch);
    moqt_track_free(track);
    moqt_broadcast_free(broadcast);
    moqt_client_free(publisher);
    moqt_client_free(subscriber);
    moqt_relay_stop(relay, NULL, 0);
    long long freed_by = now_ms() + WAIT_MS;
    for (;;) {
        pthread_mutex_lock(&pushed.lock);
        int frees = pushed.frees;
        pthread_mutex_unlock(&pushed.lock);
        if (frees > 0 || now_ms() >= freed_by) break;
        sleep_ms(10);
    }
    pthread_mutex_lock(&pushed.lock);
    CHECK(pushed.frees == 1, "the push subscription's user data is freed once");
    pthread_mutex_unlock(&pushed.lock);
    /* The watch's user_data_free runs later, on the dispatcher: `sub_states` must outlive it. */
    CHECK(wait_locked(&sub_states.lock, &sub_states.frees, 1, 30) == 1, "the watch's user_data_free once");
}

int main(void) {
    free_while_connecting();
    before_the_relay();
    moqt_shutdown();
    if (failures > 0) {
        fprintf(stderr, "connect: %d check(s) failed\n", failures);
        return 1;
    }
    printf("connect: ok (a client before its relay, free while connecting)\n");
    return 0;
}
