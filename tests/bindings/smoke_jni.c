/*
 * The JNI side of Smoke.java: a relay embedded in the JVM process, a publisher and a pull-mode
 * subscriber on loopback QUIC, one frame through them. Returns the received payload, or NULL
 * (with the reason on stderr) on failure.
 */
#include <jni.h>
#include <stdio.h>
#include <string.h>

#include "moqt.h"

JNIEXPORT jstring JNICALL Java_Smoke_version(JNIEnv *env, jclass cls) {
    (void)cls;
    return (*env)->NewStringUTF(env, moqt_version());
}

static moqt_client *connect_to(const char *url, const char *fingerprint) {
    moqt_client_options options;
    memset(&options, 0, sizeof options);
    options.struct_size = sizeof options;
    options.tls_fingerprint = fingerprint;
    moqt_client *client = NULL;
    if (moqt_client_connect(url, SIZE_MAX, &options, &client) != MOQT_STATUS_OK) {
        fprintf(stderr, "jni: connect: %s\n", moqt_last_error());
        return NULL;
    }
    return client;
}

JNIEXPORT jbyteArray JNICALL Java_Smoke_roundTrip(JNIEnv *env, jclass cls, jbyteArray payload) {
    (void)cls;
    jbyteArray result = NULL;
    moqt_relay *relay = NULL;
    if (moqt_relay_start("127.0.0.1:0", SIZE_MAX, NULL, &relay) != MOQT_STATUS_OK) {
        fprintf(stderr, "jni: relay: %s\n", moqt_last_error());
        return NULL;
    }
    char fingerprint[65];
    char url[96];
    if (moqt_relay_fingerprint(relay, fingerprint, sizeof fingerprint) != MOQT_STATUS_OK) goto stop;
    snprintf(url, sizeof url, "moql://localhost:%u/jvm", (unsigned)moqt_relay_port(relay));
    moqt_client *publisher = connect_to(url, fingerprint);
    moqt_client *subscriber = connect_to(url, fingerprint);
    moqt_broadcast *broadcast = NULL;
    moqt_track *track = NULL;
    moqt_pull *pull = NULL;
    if (publisher == NULL || subscriber == NULL) goto clients;
    if (moqt_client_publish(publisher, "jvm", SIZE_MAX, &broadcast) != MOQT_STATUS_OK) goto clients;
    if (moqt_broadcast_create_track(broadcast, "t", SIZE_MAX, 1, 10000, &track) != MOQT_STATUS_OK) goto clients;
    if (moqt_client_subscribe_pull(subscriber, "jvm", SIZE_MAX, "t", SIZE_MAX, &pull) != MOQT_STATUS_OK) goto clients;
    jsize len = (*env)->GetArrayLength(env, payload);
    jbyte *bytes = (*env)->GetByteArrayElements(env, payload, NULL);
    /* Write until the subscription is up and a frame arrives (each write starts a group). */
    for (int attempt = 0; attempt < 50 && result == NULL; attempt++) {
        if (moqt_track_write_frame(track, (const uint8_t *)bytes, (size_t)len, 0, MOQT_FRAME_NEW_GROUP) !=
            MOQT_STATUS_OK) {
            fprintf(stderr, "jni: write: %s\n", moqt_last_error());
            break;
        }
        const moqt_frame *frame = NULL;
        if (moqt_pull_next_frame(pull, 100, &frame) == MOQT_STATUS_OK) {
            size_t got = 0;
            const uint8_t *data = moqt_frame_data(frame, &got);
            result = (*env)->NewByteArray(env, (jsize)got);
            (*env)->SetByteArrayRegion(env, result, 0, (jsize)got, (const jbyte *)data);
            moqt_frame_unref(frame);
        }
    }
    (*env)->ReleaseByteArrayElements(env, payload, bytes, JNI_ABORT);
    if (result == NULL) fprintf(stderr, "jni: no frame arrived\n");
clients:
    moqt_pull_free(pull);
    moqt_track_free(track);
    moqt_broadcast_free(broadcast);
    moqt_client_free(subscriber);
    moqt_client_free(publisher);
stop:
    moqt_relay_stop(relay, NULL, 0);
    return result;
}
