/*
 * cmd/audit: wiring only. Starts the audit service's HTTP server with health, readiness and
 * metrics; its domain routes come from pkg/audit as that module lands.
 */
#include "httpd.h"

int main(int argc, char **argv) {
    static const tsr_service_def_t def = {
        .name = "audit",
        .port_offset = 6,
    };
    return tsr_service_main(&def, argc, argv);
}
