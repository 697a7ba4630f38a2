/*
 * cmd/reload: wiring only. Starts the reload service's HTTP server with health, readiness and
 * metrics; its domain routes come from pkg/reload as that module lands.
 */
#include "httpd.h"

int main(int argc, char **argv) {
    static const tsr_service_def_t def = {
        .name = "reload",
        .port_offset = 5,
    };
    return tsr_service_main(&def, argc, argv);
}
