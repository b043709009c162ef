/*
 * A hang media broadcast from C, through an embedded relay:
 *   - publishing: an H.264 rendition added from raw parameter sets (the SPS and PPS of
 *     tests/fixtures/hang-catalog-cmaf-h264-aac.json, whose avcC the library must rebuild byte
 *     for byte) and an Opus rendition from a config with an OpusHead; samples written with their
 *     presentation times, a keyframe opening each group, some without a copy;
 *   - consuming: the catalog by pull (next_catalog) and by callbacks, its renditions read through
 *     moqt_rendition and as raw JSON; both renditions subscribed as pull subscriptions whose
 *     frames are the samples: bytes, PTS and keyframe flag checked in order, on moq-lite-06 and
 *     on moq-lite-04 (whose wire has no frame timestamps: the PTS comes from the container);
 *   - changes: update_video (parameter sets now in band: avc3, no description, a new bitrate)
 *     and remove (the audio rendition leaves the catalog and its subscribers see its end), then
 *     moqt_media_finish: the catalog ends with MOQT_STATUS_END, by pull and by callback;
 *   - misuse: NULLs, bad UTF-8, a delta frame first, bad parameter sets and configs (an error
 *     status and a reason, no crash), user_data_free exactly once, also when consuming fails.
 * Ends with moqt_shutdown so the sanitizers and Valgrind see the engine's whole life.
 * Exit 0 when every check holds; prints what failed otherwise.
 */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moqt.h"

#define TEST_NAME "media"
#include "check.h"
#include "recorder.h"

/* The fixture's SPS and PPS, as an Annex-B access unit would carry them. */
static const uint8_t PARAMETER_SETS[] = {
    0x00, 0x00, 0x00, 0x01, 0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00,
    0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2d, 0x96, 0x00, 0x00, 0x00, 0x01,
    0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0};

/* The fixture's avcC: what the library must build from those parameter sets. */
static const uint8_t AVCC[] = {0x01, 0x64, 0x00, 0x1e, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1e, 0xac,
                               0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00,
                               0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2d, 0x96, 0x01, 0x00, 0x06, 0x68, 0xeb,
                               0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00};

/* An OpusHead: version 1, 2 channels, pre-skip 312, 48 kHz input, no gain, mapping family 0. */
static const uint8_t OPUS_HEAD[] = {'O', 'p', 'u', 's', 'H', 'e', 'a', 'd', 1, 2, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, 0};

#define VIDEO_FRAMES 6
#define AUDIO_FRAMES 5
#define MAX_SEEN 64

/* One sample as written, and as seen. */
struct sample {
    char data[32];
    size_t len;
    uint64_t pts;
    bool keyframe;
    uint64_t group;
    uint64_t index;
    bool has_timestamp;
};

static void video_sample(int i, struct sample *s) {
    memset(s, 0, sizeof *s);
    /* An IDR or a non-IDR slice NAL header, then text: the library does not look inside. */
    s->keyframe = i % 3 == 0;
    s->len = (size_t)snprintf(s->data, sizeof s->data, "%c%c%c%c%cvideo %d", 0, 0, 0, 1,
                              s->keyframe ? 0x65 : 0x41, i);
    s->pts = (uint64_t)i * 33333;
}

static void audio_sample(int i, struct sample *s) {
    memset(s, 0, sizeof *s);
    s->keyframe = true;
    s->len = (size_t)snprintf(s->data, sizeof s->data, "opus packet %d", i);
    s->pts = (uint64_t)i * 20000;
}

/* Takes frames (20 s per wait, Valgrind is slow) until the pull ends; returns how it ended. */
static moqt_status drain(moqt_pull *pull, struct sample *seen, int *count) {
    const moqt_frame *frame = NULL;
    moqt_status status;
    while ((status = moqt_pull_next_frame(pull, 20000, &frame)) == MOQT_STATUS_OK) {
        if (*count < MAX_SEEN) {
            struct sample *s = &seen[(*count)++];
            size_t len = 0;
            const uint8_t *data = moqt_frame_data(frame, &len);
            s->len = len;
            memcpy(s->data, data, len < sizeof s->data ? len : sizeof s->data);
            s->pts = moqt_frame_timestamp_us(frame);
            s->keyframe = moqt_frame_is_keyframe(frame);
            s->group = moqt_frame_group(frame);
            s->index = moqt_frame_index(frame);
            s->has_timestamp = moqt_frame_has_timestamp(frame);
        }
        moqt_frame_unref(frame);
    }
    return status;
}

/* Every sample seen is the one written, in order, in the group a keyframe opened. */
static void check_samples(const char *who, const struct sample *seen, int count, int expected,
                          void (*written)(int, struct sample *)) {
    int wrong = 0;
    uint64_t first_group = count > 0 ? seen[0].group : 0;
    uint64_t group = first_group, index = 0;
    for (int i = 0; i < count && i < expected; i++) {
        struct sample want;
        written(i, &want);
        if (i > 0 && want.keyframe) {
            group++;
            index = 0;
        } else if (i > 0) {
            index++;
        }
        bool same = seen[i].len == want.len && memcmp(seen[i].data, want.data, want.len) == 0 &&
                    seen[i].pts == want.pts && seen[i].keyframe == want.keyframe && seen[i].has_timestamp &&
                    seen[i].group == group && seen[i].index == index;
        if (!same) {
            fprintf(stderr, "media: %s: sample %d: len %zu pts %llu key %d group %llu index %llu ts %d\n", who, i,
                    seen[i].len, (unsigned long long)seen[i].pts, seen[i].keyframe,
                    (unsigned long long)seen[i].group, (unsigned long long)seen[i].index, seen[i].has_timestamp);
            wrong++;
        }
    }
    if (count != expected) fprintf(stderr, "media: %s: %d samples, %d expected\n", who, count, expected);
    CHECK(count == expected && wrong == 0, "every sample arrives in order with its bytes, PTS and keyframe flag");
}

/* What the callback consumer saw. */
struct watcher {
    pthread_mutex_t lock;
    int catalogs;
    size_t last_count;
    int closed;
    moqt_status status;
    int frees;
};

static void on_catalog(void *user_data, const moqt_catalog *catalog) {
    struct watcher *w = (struct watcher *)user_data;
    pthread_mutex_lock(&w->lock);
    w->catalogs++;
    w->last_count = moqt_catalog_rendition_count(catalog);
    pthread_mutex_unlock(&w->lock);
}

static void on_closed(void *user_data, moqt_status status) {
    struct watcher *w = (struct watcher *)user_data;
    pthread_mutex_lock(&w->lock);
    w->closed++;
    w->status = status;
    pthread_mutex_unlock(&w->lock);
}

static void on_free(void *user_data) {
    struct watcher *w = (struct watcher *)user_data;
    pthread_mutex_lock(&w->lock);
    w->frees++;
    pthread_mutex_unlock(&w->lock);
}

static int read_int(struct watcher *w, int *field) { return locked_int(&w->lock, field); }

/* Waits up to 20 s for `*field` to reach `want`. */
static int wait_for(struct watcher *w, int *field, int want) { return wait_locked(&w->lock, field, want, 20); }

static moqt_media_callbacks watcher_callbacks(struct watcher *w) {
    moqt_media_callbacks callbacks;
    memset(&callbacks, 0, sizeof callbacks);
    callbacks.struct_size = sizeof callbacks;
    callbacks.user_data = w;
    callbacks.user_data_free = on_free;
    callbacks.on_catalog = on_catalog;
    callbacks.on_closed = on_closed;
    return callbacks;
}

/* Zero-copy buffers handed back. */
static pthread_mutex_t freed_lock = PTHREAD_MUTEX_INITIALIZER;
static int buffers_freed = 0;
static void free_buffer(void *user_data, const uint8_t *data) {
    (void)data;
    free(user_data);
    pthread_mutex_lock(&freed_lock);
    buffers_freed++;
    pthread_mutex_unlock(&freed_lock);
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
        fprintf(stderr, "media: connect (lite-0%u): %s\n", version, moqt_last_error());
    }
    return client;
}

static moqt_video_config video_config(bool in_band, uint64_t bitrate) {
    moqt_video_config config;
    memset(&config, 0, sizeof config);
    config.struct_size = sizeof config;
    config.codec_id = MOQT_CODEC_H264;
    config.parameter_sets = PARAMETER_SETS;
    config.parameter_sets_len = sizeof PARAMETER_SETS;
    config.in_band = in_band;
    config.framerate = 30.0;
    config.bitrate = bitrate;
    return config;
}

/* Takes catalogs until one satisfies `done` (or 20 s pass); returns it, referenced, or NULL. */
static const moqt_catalog *catalog_where(moqt_media_consumer *consumer, bool (*done)(const moqt_catalog *)) {
    const moqt_catalog *catalog = NULL;
    while (moqt_media_next_catalog(consumer, 20000, &catalog) == MOQT_STATUS_OK) {
        if (done(catalog)) return catalog;
        moqt_catalog_unref(catalog);
    }
    fprintf(stderr, "media: no such catalog: %s\n", moqt_last_error());
    return NULL;
}

static moqt_rendition rendition(const moqt_catalog *catalog, size_t index) {
    moqt_rendition r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    CHECK(moqt_catalog_rendition(catalog, index, &r) == MOQT_STATUS_OK, "rendition");
    return r;
}

static bool has_both(const moqt_catalog *catalog) { return moqt_catalog_rendition_count(catalog) == 2; }

static bool updated(const moqt_catalog *catalog) {
    if (moqt_catalog_rendition_count(catalog) < 1) return false;
    moqt_rendition r = rendition(catalog, 0);
    return r.bitrate == 2000000;
}

static bool audio_gone(const moqt_catalog *catalog) { return moqt_catalog_rendition_count(catalog) == 1; }

static bool text_is(const char *text, size_t len, const char *want) {
    return text != NULL && len == strlen(want) && memcmp(text, want, len) == 0 && text[len] == '\0';
}

/* Argument checks that need no network. */
static void misuse(moqt_client *client, moqt_media *media) {
    moqt_media *none = NULL;
    CHECK(moqt_client_publish_media(NULL, "x", SIZE_MAX, &none) == MOQT_STATUS_ERR_INVALID_ARG, "publish(NULL)");
    CHECK(moqt_client_publish_media(client, "x", SIZE_MAX, NULL) == MOQT_STATUS_ERR_INVALID_ARG, "publish(out NULL)");
    CHECK(moqt_client_publish_media(client, NULL, 3, &none) == MOQT_STATUS_ERR_INVALID_ARG, "publish(path NULL)");
    CHECK(none == NULL, "no handle on failure");

    moqt_media_track *track = NULL;
    moqt_video_config config = video_config(false, 0);
    CHECK(moqt_media_add_video(NULL, "v", SIZE_MAX, &config, &track) == MOQT_STATUS_ERR_INVALID_ARG, "add(NULL)");
    CHECK(moqt_media_add_video(media, "v", SIZE_MAX, NULL, &track) == MOQT_STATUS_ERR_INVALID_ARG,
          "add(config NULL)");
    CHECK(moqt_media_add_video(media, "\xff\xfe", 2, &config, &track) == MOQT_STATUS_ERR_INVALID_ARG,
          "a name that is not UTF-8");
    CHECK(moqt_media_add_video(media, "catalog.json", SIZE_MAX, &config, &track) == MOQT_STATUS_ERR_INVALID_ARG,
          "the catalog's own name");

    /* Bad parameter sets: an error and a reason, never a crash. */
    static const uint8_t garbage[] = {0x00, 0x00, 0x00, 0x01, 0x67, 0xff, 0xff, 0x00, 0x00, 0x01, 0x68};
    moqt_video_config bad = config;
    bad.parameter_sets = garbage;
    bad.parameter_sets_len = sizeof garbage;
    CHECK(moqt_media_add_video(media, "v", SIZE_MAX, &bad, &track) == MOQT_STATUS_ERR_INVALID_ARG,
          "a broken SPS is refused");
    CHECK(strstr(moqt_last_error(), "parameter_sets") != NULL, "the reason names the parameter sets");
    static const uint8_t no_sps[] = {0x00, 0x00, 0x01, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0};
    bad.parameter_sets = no_sps;
    bad.parameter_sets_len = sizeof no_sps;
    CHECK(moqt_media_add_video(media, "v", SIZE_MAX, &bad, &track) == MOQT_STATUS_ERR_INVALID_ARG,
          "parameter sets without an SPS are refused");
    bad.parameter_sets = NULL;
    bad.parameter_sets_len = 5;
    CHECK(moqt_media_add_video(media, "v", SIZE_MAX, &bad, &track) == MOQT_STATUS_ERR_INVALID_ARG,
          "NULL parameter sets with a length");
    bad = config;
    bad.codec_id = MOQT_CODEC_VP9;
    CHECK(moqt_media_add_video(media, "v", SIZE_MAX, &bad, &track) == MOQT_STATUS_ERR_INVALID_ARG,
          "parameter sets of a codec that has none");
    bad = config;
    bad.codec_id = 99;
    CHECK(moqt_media_add_video(media, "v", SIZE_MAX, &bad, &track) == MOQT_STATUS_ERR_INVALID_ARG,
          "an unknown codec id");
    bad = config;
    bad.description = AVCC;
    bad.description_len = sizeof AVCC;
    CHECK(moqt_media_add_video(media, "v", SIZE_MAX, &bad, &track) == MOQT_STATUS_ERR_INVALID_ARG,
          "description and parameter sets together");
    moqt_video_config nothing;
    memset(&nothing, 0, sizeof nothing);
    nothing.struct_size = sizeof nothing;
    CHECK(moqt_media_add_video(media, "v", SIZE_MAX, &nothing, &track) == MOQT_STATUS_ERR_INVALID_ARG,
          "no codec and nothing to derive it from");
    bad = nothing;
    bad.codec = "avc3.64001e";
    bad.codec_id = MOQT_CODEC_H264;
    bad.in_band = true;
    bad.container = MOQT_CONTAINER_CMAF;
    CHECK(moqt_media_add_video(media, "v", SIZE_MAX, &bad, &track) == MOQT_STATUS_ERR_INVALID_ARG,
          "CMAF packed by moqt without the parameter sets its init segment needs");
    CHECK(strstr(moqt_last_error(), "parameter_sets") != NULL, "the reason names the parameter sets");
    bad = config;
    bad.container = MOQT_CONTAINER_CMAF;
    bad.init = garbage;
    bad.init_len = sizeof garbage;
    CHECK(moqt_media_add_video(media, "v", SIZE_MAX, &bad, &track) == MOQT_STATUS_ERR_INVALID_ARG,
          "CMAF with an init segment that is not one");
    bad = config;
    bad.framerate = -1.0;
    CHECK(moqt_media_add_video(media, "v", SIZE_MAX, &bad, &track) == MOQT_STATUS_ERR_INVALID_ARG,
          "a negative frame rate");
    bad = config;
    bad.codec = "\xff";
    CHECK(moqt_media_add_video(media, "v", SIZE_MAX, &bad, &track) == MOQT_STATUS_ERR_INVALID_ARG,
          "a codec string that is not UTF-8");

    moqt_audio_config audio;
    memset(&audio, 0, sizeof audio);
    audio.struct_size = sizeof audio;
    audio.codec = "flac";
    CHECK(moqt_media_add_audio(media, "a", SIZE_MAX, &audio, &track) == MOQT_STATUS_ERR_INVALID_ARG,
          "audio without a rate or channels");
    audio.codec = NULL;
    audio.codec_id = MOQT_CODEC_OPUS;
    audio.description = (const uint8_t *)"OpusHea";
    audio.description_len = 7;
    CHECK(moqt_media_add_audio(media, "a", SIZE_MAX, &audio, &track) == MOQT_STATUS_ERR_INVALID_ARG,
          "a truncated OpusHead");
    audio.description = NULL;
    audio.description_len = 0;
    audio.codec_id = MOQT_CODEC_H264;
    CHECK(moqt_media_add_audio(media, "a", SIZE_MAX, &audio, &track) == MOQT_STATUS_ERR_INVALID_ARG,
          "a video codec for audio");
    CHECK(track == NULL, "no track for refused configs");

    CHECK(moqt_media_update_video(media, "nobody", SIZE_MAX, &config) == MOQT_STATUS_ERR_NOT_FOUND,
          "update of a rendition that does not exist");
    CHECK(moqt_media_track_write(NULL, (const uint8_t *)"x", 1, 0, MOQT_MEDIA_KEYFRAME) ==
              MOQT_STATUS_ERR_INVALID_ARG,
          "write(NULL)");
    CHECK(moqt_media_track_remove(NULL) == MOQT_STATUS_ERR_INVALID_ARG, "remove(NULL)");
    CHECK(moqt_media_track_wait_subscribed(NULL, 0) == MOQT_STATUS_ERR_INVALID_ARG, "wait(NULL)");
    CHECK(moqt_media_finish(NULL) == MOQT_STATUS_ERR_INVALID_ARG, "finish(NULL)");
    moqt_media_track_free(NULL);
    moqt_media_free(NULL);

    /* The consumer's side. */
    size_t len = 7;
    CHECK(moqt_catalog_json(NULL, &len) == NULL && len == 0, "json(NULL)");
    CHECK(moqt_catalog_rendition_count(NULL) == 0, "count(NULL)");
    moqt_rendition r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    CHECK(moqt_catalog_rendition(NULL, 0, &r) == MOQT_STATUS_ERR_INVALID_ARG, "rendition(NULL)");
    CHECK(moqt_catalog_ref(NULL) == NULL, "ref(NULL)");
    moqt_catalog_unref(NULL);
    moqt_media_consumer *consumer = NULL;
    CHECK(moqt_client_consume_media(NULL, "x", SIZE_MAX, &consumer) == MOQT_STATUS_ERR_INVALID_ARG, "consume(NULL)");
    CHECK(moqt_client_consume_media(client, "x", SIZE_MAX, NULL) == MOQT_STATUS_ERR_INVALID_ARG,
          "consume(out NULL)");
    const moqt_catalog *catalog = NULL;
    CHECK(moqt_media_next_catalog(NULL, 0, &catalog) == MOQT_STATUS_ERR_INVALID_ARG, "next_catalog(NULL)");
    CHECK(moqt_media_consumer_fd(NULL) == -1, "fd(NULL)");
    moqt_media_consumer_interrupt(NULL);
    moqt_media_consumer_free(NULL);
    moqt_pull *pull = NULL;
    CHECK(moqt_media_subscribe(client, "x", SIZE_MAX, NULL, "v", SIZE_MAX, NULL, &pull) ==
              MOQT_STATUS_ERR_INVALID_ARG,
          "subscribe without a catalog");

    /* user_data_free exactly once, also when consuming fails. */
    static struct watcher failed;
    memset(&failed, 0, sizeof failed);
    pthread_mutex_init(&failed.lock, NULL);
    moqt_media_callbacks callbacks = watcher_callbacks(&failed);
    CHECK(moqt_client_consume_media_with(client, "x", SIZE_MAX, &callbacks, NULL) == MOQT_STATUS_ERR_INVALID_ARG,
          "consume_with(out NULL)");
    CHECK(moqt_client_consume_media_with(client, "x", SIZE_MAX, NULL, &consumer) == MOQT_STATUS_ERR_INVALID_ARG,
          "consume_with(callbacks NULL)");
    CHECK(wait_for(&failed, &failed.frees, 1) == 1, "user_data_free once when consuming fails");
    sleep_ms(50);
    CHECK(read_int(&failed, &failed.frees) == 1 && read_int(&failed, &failed.catalogs) == 0 &&
              read_int(&failed, &failed.closed) == 0,
          "only user_data_free, and only once");
}

int main(void) {
    recorder_start();
    moqt_relay *relay = NULL;
    if (moqt_relay_start("127.0.0.1:0", SIZE_MAX, NULL, &relay) != MOQT_STATUS_OK) {
        fprintf(stderr, "media: relay: %s\n", moqt_last_error());
        return 1;
    }
    char fingerprint[65];
    CHECK(moqt_relay_fingerprint(relay, fingerprint, sizeof fingerprint) == MOQT_STATUS_OK, "fingerprint");
    char url[128];
    /* At the relay's root: moq-lite-04 has no SETUP to carry a session path. */
    snprintf(url, sizeof url, "moql://localhost:%u", moqt_relay_port(relay));
    moqt_client *publisher = connect_version(url, fingerprint, 6);
    moqt_client *viewer = connect_version(url, fingerprint, 6);
    moqt_client *old = connect_version(url, fingerprint, 4);
    if (publisher == NULL || viewer == NULL || old == NULL) return 1;

    moqt_media *media = NULL;
    CHECK(moqt_client_publish_media(publisher, "show", SIZE_MAX, &media) == MOQT_STATUS_OK, "publish media");
    misuse(viewer, media);

    /* H.264 from the raw parameter sets; Opus from a config; held, so that the catalog is
     * published once with both. */
    CHECK(moqt_media_hold_catalog(NULL) == MOQT_STATUS_ERR_INVALID_ARG, "hold_catalog(NULL)");
    CHECK(moqt_media_hold_catalog(media) == MOQT_STATUS_OK, "hold the catalog");
    moqt_video_config config = video_config(false, 1000000);
    moqt_media_track *video = NULL;
    CHECK(moqt_media_add_video(media, "video", SIZE_MAX, &config, &video) == MOQT_STATUS_OK, "add video");
    if (video == NULL) fprintf(stderr, "media: add video: %s\n", moqt_last_error());
    moqt_media_track *twice = NULL;
    CHECK(moqt_media_add_video(media, "video", SIZE_MAX, &config, &twice) == MOQT_STATUS_ERR_INVALID_ARG,
          "a name already used");
    moqt_audio_config opus;
    memset(&opus, 0, sizeof opus);
    opus.struct_size = sizeof opus;
    opus.codec_id = MOQT_CODEC_OPUS;
    opus.description = OPUS_HEAD;
    opus.description_len = sizeof OPUS_HEAD;
    opus.bitrate = 64000;
    moqt_media_track *audio = NULL;
    CHECK(moqt_media_add_audio(media, "audio", SIZE_MAX, &opus, &audio) == MOQT_STATUS_OK, "add audio");
    if (audio == NULL) fprintf(stderr, "media: add audio: %s\n", moqt_last_error());
    CHECK(moqt_media_release_catalog(media) == MOQT_STATUS_OK, "release the catalog");

    /* A delta frame cannot open a track. */
    CHECK(moqt_media_track_write(video, (const uint8_t *)"delta", 5, 0, 0) == MOQT_STATUS_ERR_INVALID_ARG,
          "a delta frame first is refused");
    CHECK(strstr(moqt_last_error(), "keyframe") != NULL, "the reason says a keyframe is needed");

    /* The catalog, by pull and by callback. */
    moqt_media_consumer *consumer = NULL;
    CHECK(moqt_client_consume_media(viewer, "show", SIZE_MAX, &consumer) == MOQT_STATUS_OK, "consume media");
    static struct watcher watcher;
    memset(&watcher, 0, sizeof watcher);
    pthread_mutex_init(&watcher.lock, NULL);
    moqt_media_callbacks callbacks = watcher_callbacks(&watcher);
    moqt_media_consumer *pushed = NULL;
    CHECK(moqt_client_consume_media_with(viewer, "show", SIZE_MAX, &callbacks, &pushed) == MOQT_STATUS_OK,
          "consume media with callbacks");
    const moqt_catalog *unused = NULL;
    CHECK(moqt_media_next_catalog(pushed, 0, &unused) == MOQT_STATUS_ERR_UNSUPPORTED,
          "a consumer with callbacks has no queue");
    CHECK(moqt_media_consumer_fd(consumer) >= 0, "a readiness fd");

    const moqt_catalog *catalog = NULL;
    CHECK(moqt_media_next_catalog(consumer, 20000, &catalog) == MOQT_STATUS_OK, "a catalog");
    if (catalog == NULL) return 1;
    CHECK(has_both(catalog), "the first catalog has both renditions (added while held)");
    struct pollfd ready = {moqt_media_consumer_fd(consumer), POLLIN, 0};
    CHECK(poll(&ready, 1, 0) == 0, "the fd is not readable with nothing queued");

    moqt_rendition v = rendition(catalog, 0);
    CHECK(text_is(v.name, v.name_len, "video") && v.kind == MOQT_MEDIA_KIND_VIDEO, "video first");
    CHECK(text_is(v.codec, v.codec_len, "avc1.64001e"), "the codec string from the SPS (out of band: avc1)");
    CHECK(v.coded_width == 640 && v.coded_height == 360, "640x360 from the SPS");
    CHECK(v.description_len == sizeof AVCC && memcmp(v.description, AVCC, sizeof AVCC) == 0,
          "the avcC built from the parameter sets is the fixture's");
    CHECK(v.framerate == 30.0 && v.bitrate == 1000000, "frame rate and bitrate");
    CHECK(v.container == MOQT_CONTAINER_LEGACY && v.init == NULL && v.init_len == 0, "legacy container");
    CHECK(v.sample_rate == 0 && v.channels == 0, "no audio fields on video");
    moqt_rendition a = rendition(catalog, 1);
    CHECK(text_is(a.name, a.name_len, "audio") && a.kind == MOQT_MEDIA_KIND_AUDIO, "then audio");
    CHECK(text_is(a.codec, a.codec_len, "opus"), "opus");
    CHECK(a.sample_rate == 48000 && a.channels == 2, "opus 48000 Hz, 2 channels from the OpusHead");
    CHECK(a.description_len == sizeof OPUS_HEAD && memcmp(a.description, OPUS_HEAD, sizeof OPUS_HEAD) == 0,
          "the OpusHead as description");
    CHECK(a.bitrate == 64000 && a.coded_width == 0, "audio bitrate, no video fields");
    moqt_rendition past;
    memset(&past, 0, sizeof past);
    past.struct_size = sizeof past;
    CHECK(moqt_catalog_rendition(catalog, 2, &past) == MOQT_STATUS_ERR_INVALID_ARG, "an index past the end");
    /* An older caller's smaller struct is filled only up to its size. */
    moqt_rendition small;
    memset(&small, 0xab, sizeof small);
    small.struct_size = (uint32_t)offsetof(moqt_rendition, kind);
    CHECK(moqt_catalog_rendition(catalog, 0, &small) == MOQT_STATUS_OK && small.name_len == 5 &&
              small.kind == 0xabababab,
          "struct_size bounds what is written");
    size_t json_len = 0;
    const char *json = moqt_catalog_json(catalog, &json_len);
    CHECK(json != NULL && json_len == strlen(json), "the raw JSON, NUL-terminated");
    CHECK(json != NULL && strstr(json, "\"codec\":\"avc1.64001e\"") != NULL && strstr(json, "\"opus\"") != NULL &&
              strstr(json, "\"codedWidth\":640") != NULL && strstr(json, "\"sampleRate\":48000") != NULL,
          "the JSON is hang's");
    const moqt_catalog *kept = moqt_catalog_ref(catalog);
    CHECK(kept == catalog, "ref returns the same catalog");
    moqt_catalog_unref(kept);

    /* Subscribe to both renditions, on lite-06 and (video) on lite-04, from the oldest group. */
    moqt_subscribe_options options;
    memset(&options, 0, sizeof options);
    options.struct_size = sizeof options;
    options.start_group = MOQT_START_OLDEST;
    /* Lateness has its own tests (delivery_order.c); here a machine starved of CPU must not turn a
     * slow group end into a skipped group. */
    options.max_latency_ms = 60000;
    moqt_pull *video_pull = NULL, *audio_pull = NULL, *old_pull = NULL, *refused = NULL;
    CHECK(moqt_media_subscribe(viewer, "show", SIZE_MAX, catalog, "video", SIZE_MAX, &options, &video_pull) ==
              MOQT_STATUS_OK,
          "subscribe to the video rendition");
    CHECK(moqt_media_subscribe(viewer, "show", SIZE_MAX, catalog, "audio", SIZE_MAX, NULL, &audio_pull) ==
              MOQT_STATUS_OK,
          "subscribe to the audio rendition");
    CHECK(moqt_media_subscribe(old, "show", SIZE_MAX, catalog, "video", SIZE_MAX, &options, &old_pull) ==
              MOQT_STATUS_OK,
          "subscribe to the video rendition on lite-04");
    CHECK(moqt_media_subscribe(viewer, "show", SIZE_MAX, catalog, "nobody", SIZE_MAX, NULL, &refused) ==
              MOQT_STATUS_ERR_NOT_FOUND,
          "a rendition the catalog does not have");
    moqt_subscribe_options arrival = options;
    arrival.delivery = MOQT_DELIVERY_ARRIVAL;
    CHECK(moqt_media_subscribe(viewer, "show", SIZE_MAX, catalog, "video", SIZE_MAX, &arrival, &refused) ==
              MOQT_STATUS_ERR_UNSUPPORTED,
          "media comes in decode order only");
    CHECK(refused == NULL, "no pull for refused subscriptions");
    moqt_catalog_unref(catalog);

    CHECK(moqt_media_track_wait_subscribed(video, 20000) == MOQT_STATUS_OK, "the video track has a subscriber");
    CHECK(moqt_media_track_wait_subscribed(audio, 20000) == MOQT_STATUS_OK, "the audio track has a subscriber");

    /* The samples: the odd video ones without a copy. */
    int zero_copy = 0;
    for (int i = 0; i < VIDEO_FRAMES; i++) {
        struct sample s;
        video_sample(i, &s);
        uint32_t flags = s.keyframe ? MOQT_MEDIA_KEYFRAME : 0;
        if (i % 2 == 1) {
            uint8_t *copy = (uint8_t *)malloc(s.len);
            memcpy(copy, s.data, s.len);
            CHECK(moqt_media_track_write_zero_copy(video, copy, s.len, s.pts, flags, free_buffer, copy) ==
                      MOQT_STATUS_OK,
                  "zero-copy sample");
            zero_copy++;
        } else {
            CHECK(moqt_media_track_write(video, (const uint8_t *)s.data, s.len, s.pts, flags) == MOQT_STATUS_OK,
                  "video sample");
        }
    }
    for (int i = 0; i < AUDIO_FRAMES; i++) {
        struct sample s;
        audio_sample(i, &s);
        CHECK(moqt_media_track_write(audio, (const uint8_t *)s.data, s.len, s.pts, MOQT_MEDIA_KEYFRAME) ==
                  MOQT_STATUS_OK,
              "audio sample");
    }

    /* A caps change: parameter sets in band now, and a new bitrate. */
    moqt_video_config in_band = video_config(true, 2000000);
    CHECK(moqt_media_update_video(media, "video", SIZE_MAX, &in_band) == MOQT_STATUS_OK, "update video");
    catalog = catalog_where(consumer, updated);
    CHECK(catalog != NULL, "the consumer sees the update");
    if (catalog != NULL) {
        v = rendition(catalog, 0);
        CHECK(text_is(v.codec, v.codec_len, "avc3.64001e") && v.description == NULL && v.description_len == 0,
              "in band: avc3 and no description");
        CHECK(v.coded_width == 640 && v.coded_height == 360, "the size still from the SPS");
        moqt_catalog_unref(catalog);
    }

    /* The audio rendition leaves: out of the catalog, and its subscribers see its end. */
    CHECK(moqt_media_track_remove(audio) == MOQT_STATUS_OK, "remove audio");
    CHECK(moqt_media_track_remove(audio) == MOQT_STATUS_ERR_NOT_FOUND, "remove twice");
    CHECK(moqt_media_track_write(audio, (const uint8_t *)"x", 1, 200000, MOQT_MEDIA_KEYFRAME) ==
              MOQT_STATUS_ERR_CLOSED,
          "a removed track takes no more samples");
    catalog = catalog_where(consumer, audio_gone);
    CHECK(catalog != NULL, "the consumer sees the audio rendition go");
    if (catalog != NULL) {
        v = rendition(catalog, 0);
        CHECK(text_is(v.name, v.name_len, "video"), "video stays");
        moqt_catalog_unref(catalog);
    }
    static struct sample seen_audio[MAX_SEEN];
    int audio_count = 0;
    moqt_status audio_end = drain(audio_pull, seen_audio, &audio_count);
    CHECK(audio_end == MOQT_STATUS_END, "the removed rendition ends cleanly");
    if (audio_end != MOQT_STATUS_END)
        fprintf(stderr, "media: audio ended with %s: %s\n", moqt_status_str(audio_end), moqt_last_error());
    check_samples("audio", seen_audio, audio_count, AUDIO_FRAMES, audio_sample);

    /* The end: the video track, then the broadcast. */
    moqt_media_track_free(video);
    CHECK(moqt_media_finish(media) == MOQT_STATUS_OK, "finish");
    CHECK(moqt_media_finish(media) == MOQT_STATUS_ERR_CLOSED, "finish twice");
    CHECK(moqt_media_update_video(media, "video", SIZE_MAX, &config) == MOQT_STATUS_ERR_CLOSED,
          "no update after finish");
    CHECK(moqt_media_hold_catalog(media) == MOQT_STATUS_ERR_CLOSED, "no hold after finish");
    CHECK(moqt_media_release_catalog(media) == MOQT_STATUS_ERR_CLOSED, "no release after finish");
    moqt_media_track_free(audio);
    moqt_media_free(media);
    /* A bound of our choosing (moqt_client_free drains for MOQT_CLIENT_FREE_DRAIN_MS): under
     * Valgrind on a loaded machine the relay can take longer to take the ended tracks in. */
    moqt_status flushed = moqt_client_flush(publisher, 60000);
    CHECK(flushed == MOQT_STATUS_OK, "the ended tracks reached the relay");
    if (flushed != MOQT_STATUS_OK)
        fprintf(stderr, "media: flush: %s: %s\n", moqt_status_str(flushed), moqt_last_error());
    moqt_client_free(publisher);

    static struct sample seen_video[MAX_SEEN], seen_old[MAX_SEEN];
    int video_count = 0, old_count = 0;
    moqt_status video_end = drain(video_pull, seen_video, &video_count);
    CHECK(video_end == MOQT_STATUS_END, "the video rendition ends cleanly");
    if (video_end != MOQT_STATUS_END)
        fprintf(stderr, "media: video ended with %s: %s\n", moqt_status_str(video_end), moqt_last_error());
    check_samples("video lite-06", seen_video, video_count, VIDEO_FRAMES, video_sample);
    moqt_status old_end = drain(old_pull, seen_old, &old_count);
    CHECK(old_end == MOQT_STATUS_END, "the video rendition ends cleanly on lite-04");
    check_samples("video lite-04", seen_old, old_count, VIDEO_FRAMES, video_sample);
    uint64_t first = 0, last = 0, code = 0;
    moqt_status gap = moqt_pull_next_gap(video_pull, &first, &last, &code);
    CHECK(gap == MOQT_STATUS_ERR_AGAIN, "no gap");
    if (gap == MOQT_STATUS_OK)
        fprintf(stderr, "media: a gap %llu..%llu code %llu\n", (unsigned long long)first, (unsigned long long)last,
                (unsigned long long)code);

    /* The catalog ends: MOQT_STATUS_END by pull (again on every later call) and by callback. */
    const moqt_catalog *rest = NULL;
    moqt_status status;
    while ((status = moqt_media_next_catalog(consumer, 20000, &rest)) == MOQT_STATUS_OK) moqt_catalog_unref(rest);
    CHECK(status == MOQT_STATUS_END, "the catalog ends with the broadcast");
    if (status != MOQT_STATUS_END)
        fprintf(stderr, "media: the catalog ended with %s: %s\n", moqt_status_str(status), moqt_last_error());
    CHECK(moqt_media_next_catalog(consumer, 0, &rest) == MOQT_STATUS_END, "END again");
    CHECK(wait_for(&watcher, &watcher.closed, 1) == 1, "on_closed once");
    pthread_mutex_lock(&watcher.lock);
    CHECK(watcher.status == MOQT_STATUS_END, "on_closed(MOQT_STATUS_END)");
    CHECK(watcher.catalogs >= 1 && watcher.last_count == 1, "on_catalog saw the catalogs, the last one with video");
    pthread_mutex_unlock(&watcher.lock);

    moqt_pull_free(video_pull);
    moqt_pull_free(audio_pull);
    moqt_pull_free(old_pull);
    moqt_media_consumer_free(consumer);
    moqt_media_consumer_free(pushed);
    moqt_client_free(viewer);
    moqt_client_free(old);
    moqt_relay_stop(relay, NULL, 500);
    CHECK(wait_for(&watcher, &watcher.frees, 1) == 1, "user_data_free once");
    moqt_shutdown();
    pthread_mutex_lock(&freed_lock);
    CHECK(buffers_freed == zero_copy, "every zero-copy buffer handed back once");
    pthread_mutex_unlock(&freed_lock);

    recorder_report();
    if (failures > 0) return 1;
    printf("media: ok (video %d + %d samples, audio %d samples, catalogs by pull and %d by callback)\n", video_count,
           old_count, audio_count, watcher.catalogs);
    return 0;
}
