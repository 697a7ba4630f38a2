/*
 * cmd/identity: wiring only. Starts the identity service (pkg/identity) behind the HTTP
 * runtime: health, readiness, metrics and identity's routes.
 */
#include "httpd.h"
#include "identity.h"

int main(int argc, char **argv) {
    static const tsr_service_def_t def = {
        .name = "identity",
        .port_offset = 1,
        .routes = tsr_identity_routes,
    };
    return tsr_service_main(&def, argc, argv);
}
