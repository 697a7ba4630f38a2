/*
 * cmd/identity: wiring only. Opens identity's document store (TSR_IDENTITY_DB, by default
 * $TSR_STATE_DIR/identity/identity.db), creates the service from pkg/identity and runs it
 * behind the HTTP runtime: health, readiness (the store answers), metrics and its routes.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include "config.h"
#include "httpd.h"
#include "identity.h"

static tsr_err_t setup(tsr_httpd_opts_t *opts, void **ud, tsr_error_t *err) {
    char path[4096];
    int64_t max_days = 0, max_keys = 0, jwt_ttl = 0, jwt_rotate = 0;
    tsr_identity_opts_t io = {0};
    tsr_identity_t *id = NULL;
    const char *db = tsr_config_get("TSR_IDENTITY_DB");
    tsr_err_t rc;
    if (db[0] == '\0') {
        const char *state = tsr_config_get("TSR_STATE_DIR");
        snprintf(path, sizeof path, "%s/identity", state);
        if ((mkdir(state, 0700) != 0 && errno != EEXIST) ||
            (mkdir(path, 0700) != 0 && errno != EEXIST)) {
            return tsr_error_set(err, TSR_EIO, "cannot create %s", path);
        }
        snprintf(path, sizeof path, "%s/identity/identity.db", state);
        db = path;
    }
    if ((rc = tsr_config_get_int("TSR_API_KEY_MAX_EXPIRY_DAYS", 1, 3650, &max_days, err)) !=
            TSR_OK ||
        (rc = tsr_config_get_int("TSR_API_KEY_MAX_PER_USER", 1, 1000, &max_keys, err)) != TSR_OK ||
        (rc = tsr_config_get_int("TSR_JWT_TTL_S", 10, 3600, &jwt_ttl, err)) != TSR_OK ||
        (rc = tsr_config_get_int("TSR_JWT_KEY_ROTATE_S", 60, 90LL * 86400, &jwt_rotate, err)) !=
            TSR_OK ||
        (rc = tsr_identity_docs_sqlite_open(db, &io.docs, err)) != TSR_OK) {
        return rc;
    }
    io.api_key_max_expiry_days = (uint32_t)max_days;
    io.max_keys_per_user = (uint32_t)max_keys;
    io.jwt_ttl_s = (uint32_t)jwt_ttl;
    io.jwt_rotate_s = (uint32_t)jwt_rotate;
    /* Audit events: io.on_audit is wired to pkg/events once it lands. */
    if ((rc = tsr_identity_create(&io, &id, err)) != TSR_OK) {
        io.docs.close(io.docs.ud);
        return rc;
    }
    /* No generic per-address limit here: the ingress asks /internal/v1/authn for every request
     * from one address, and nginx turns any auth_request answer but 2xx/401/403 into a 500.
     * The services limit per principal; login is guarded by per-account lockout. */
    opts->rate_per_min = 0;
    opts->on_ready = tsr_identity_ready;
    opts->ready_ud = id;
    *ud = id;
    return TSR_OK;
}

static void teardown(void *ud) {
    tsr_identity_destroy(ud);
}

int main(int argc, char **argv) {
    static const tsr_service_def_t def = {
        .name = "identity",
        .port_offset = 1,
        .setup = setup,
        .routes = tsr_identity_routes,
        .teardown = teardown,
    };
    return tsr_service_main(&def, argc, argv);
}
