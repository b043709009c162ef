/*
 * Imports the C API as a Clang module through include/module.modulemap, the way Swift's
 * ClangImporter does for `import moqt` (the pragma is C's spelling of Objective-C's `@import`):
 * if the module map or the header stops being a valid module (a missing header, a non-modular
 * include, a macro that breaks the module), this fails to compile. Then it calls through the
 * module to show the symbols link.
 */
#pragma clang module import moqt

#include <stdio.h>

int main(void) {
    moqt_relay *relay = NULL;
    moqt_status status = moqt_relay_start("127.0.0.1:0", SIZE_MAX, NULL, &relay);
    if (status != MOQT_STATUS_OK) {
        fprintf(stderr, "module: relay: %s\n", moqt_last_error());
        return 1;
    }
    unsigned port = moqt_relay_port(relay);
    moqt_relay_stop(relay, NULL, 0);
    moqt_shutdown();
    printf("module: ok (moqt %s imported as a module, relay on port %u)\n", moqt_version(), port);
    return port > 0 ? 0 : 1;
}
