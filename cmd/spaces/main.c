/*
 * cmd/spaces: wiring only. Starts the spaces service's HTTP server with health, readiness and
 * metrics; its domain routes come from pkg/spaces as that module lands.
 */
#include "httpd.h"

int main(int argc, char **argv) {
    static const tsr_service_def_t def = {
        .name = "spaces",
        .port_offset = 2,
    };
    return tsr_service_main(&def, argc, argv);
}
