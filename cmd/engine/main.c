/*
 * cmd/engine: wiring only. Starts the engine service's HTTP server with health, readiness and
 * metrics; its domain routes come from pkg/engine as that module lands.
 */
#include "httpd.h"

int main(int argc, char **argv) {
    static const tsr_service_def_t def = {
        .name = "engine",
        .port_offset = 3,
    };
    return tsr_service_main(&def, argc, argv);
}
