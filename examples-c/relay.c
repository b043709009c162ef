/*
 * An embedded moq-lite relay in a C program: it listens (raw QUIC and WebTransport on one UDP
 * port), prints its port and certificate fingerprint for clients to pin, and relays until
 * SIGINT or SIGTERM (or SECONDS seconds); then it sends every session GOAWAY and stops.
 *
 * usage: relay ADDRESS [SECONDS]      e.g.  relay 127.0.0.1:4443   or   relay 127.0.0.1:0
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moqt.h"

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int signal_number) {
    (void)signal_number;
    stop_requested = 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s ADDRESS [SECONDS]\n", argv[0]);
        return 2;
    }
    long seconds = argc > 2 ? strtol(argv[2], NULL, 10) : 0;

    moqt_relay_options options;
    memset(&options, 0, sizeof options);
    options.struct_size = sizeof options;
    options.tls_generate_hosts = "localhost";
    options.auth_public = "**"; /* anyone may publish and subscribe: a development relay */

    moqt_relay *relay = NULL;
    moqt_status status = moqt_relay_start(argv[1], SIZE_MAX, &options, &relay);
    if (status != MOQT_STATUS_OK) {
        fprintf(stderr, "relay: start: %s (%s)\n", moqt_status_str(status), moqt_last_error());
        return 1;
    }
    char fingerprint[65];
    if (moqt_relay_fingerprint(relay, fingerprint, sizeof fingerprint) != MOQT_STATUS_OK) {
        fprintf(stderr, "relay: fingerprint: %s\n", moqt_last_error());
        moqt_relay_stop(relay, NULL, 0);
        return 1;
    }
    /* Handlers first: whoever reads the line below may signal at once. */
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    printf("relay: listening on port %u, fingerprint %s\n", (unsigned)moqt_relay_port(relay), fingerprint);
    fflush(stdout);

    struct timespec tick = {0, 100 * 1000 * 1000};
    for (long ticks = 0; !stop_requested && (seconds <= 0 || ticks < seconds * 10); ticks++) {
        nanosleep(&tick, NULL);
    }

    printf("relay: stopping (GOAWAY to every session, 2 s to leave)\n");
    fflush(stdout);
    moqt_relay_stop(relay, NULL, 2000);
    printf("relay: stopped\n");
    return 0;
}
