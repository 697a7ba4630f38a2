/*
 * cmd/identity: wiring only. Opens the metadata store (TSR_STORE_URI, default
 * $TSR_STATE_DIR/store.db) with identity's collections, loads the key-encryption key
 * (TSR_KEK_FILE, default $TSR_STATE_DIR/local/kek as the local stack writes it), starts the
 * outbox relay to Kafka when a broker is configured (one relay per store at a time, under a
 * store lease), and runs pkg/identity behind the HTTP runtime: health, readiness (the store
 * answers), metrics and its routes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "events.h"
#include "httpd.h"
#include "identity.h"
#include "log.h"
#include "store_events.h"

typedef struct {
    tsr_store_t *store; /* borrowed from identity (which owns it) for the relay */
    tsr_identity_t *identity;
    tsr_store_events_relayer_t *relayer;
} app_t;

static void teardown(void *ud) {
    app_t *a = ud;
    if (a == NULL) {
        return;
    }
    tsr_store_events_relayer_stop(a->relayer);
    tsr_identity_destroy(a->identity);
    free(a);
}

static tsr_err_t setup(tsr_httpd_opts_t *opts, void **ud, tsr_error_t *err) {
    int64_t max_days = 0, max_keys = 0, jwt_ttl = 0, jwt_rotate = 0;
    tsr_identity_opts_t io = {0};
    tsr_err_t rc;
    if ((rc = tsr_config_get_int("TSR_API_KEY_MAX_EXPIRY_DAYS", 1, 3650, &max_days, err)) !=
            TSR_OK ||
        (rc = tsr_config_get_int("TSR_API_KEY_MAX_PER_USER", 1, 1000, &max_keys, err)) != TSR_OK ||
        (rc = tsr_config_get_int("TSR_JWT_TTL_S", 10, 3600, &jwt_ttl, err)) != TSR_OK ||
        (rc = tsr_config_get_int("TSR_JWT_KEY_ROTATE_S", 60, 90LL * 86400, &jwt_rotate, err)) !=
            TSR_OK ||
        (rc = tsr_identity_store_open(NULL, &io.store, err)) != TSR_OK) {
        return rc;
    }
    if ((rc = tsr_identity_kek_load(tsr_config_get("TSR_KEK_FILE"), tsr_config_get("TSR_STATE_DIR"),
                                    &io.kek, err)) != TSR_OK) {
        tsr_store_destroy(io.store);
        return rc;
    }
    io.api_key_max_expiry_days = (uint32_t)max_days;
    io.max_keys_per_user = (uint32_t)max_keys;
    io.jwt_ttl_s = (uint32_t)jwt_ttl;
    io.jwt_rotate_s = (uint32_t)jwt_rotate;
    app_t *a = tsr_xcalloc(1, sizeof *a);
    a->store = io.store;
    if ((rc = tsr_identity_create(&io, &a->identity, err)) != TSR_OK) {
        teardown(a);
        return rc;
    }
    /* No generic per-address limit here: the ingress asks /internal/v1/authn for every request
     * from one address, and nginx turns any auth_request answer but 2xx/401/403 into a 500.
     * The services limit per principal; login is guarded by per-account lockout. */
    opts->rate_per_min = 0;
    opts->on_ready = tsr_identity_ready;
    opts->ready_ud = a->identity;
    if ((rc = tsr_store_events_relayer_start(a->store, "identity", &a->relayer, err)) != TSR_OK) {
        teardown(a);
        return rc;
    }
    *ud = a;
    return TSR_OK;
}

static tsr_err_t routes(tsr_httpd_t *h, void *ud, tsr_error_t *err) {
    return tsr_identity_routes(h, ((app_t *)ud)->identity, err);
}

int main(int argc, char **argv) {
    static const tsr_service_def_t def = {
        .name = "identity",
        .port_offset = 1,
        .setup = setup,
        .routes = routes,
        .teardown = teardown,
    };
    return tsr_service_main(&def, argc, argv);
}
