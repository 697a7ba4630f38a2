/*
 * cmd/audit: wiring only. Opens the metadata store with pkg/audit's collections, creates the
 * audit service (checkpoint key from TSR_AUDIT_KEY_FILE), starts its consumer of the audit
 * topics and its maintenance thread, and serves /api/v1/audits behind the HTTP runtime:
 * health, readiness (store + consumer assignment), metrics. SIGTERM: the server drains, then
 * the consumer commits and leaves its group. Callers are verified by pkg/auth
 * (TSR_AUTH_JWKS_URL, or TSR_AUTH_TRUST_HEADERS in development).
 */
#include <stdlib.h>

#include "audit.h"
#include "auth.h"
#include "config.h"
#include "httpd.h"

typedef struct {
    tsr_store_t *store;
    tsr_audit_t *audit;
    tsr_auth_verifier_t *verifier;
} svc_t;

static void teardown(void *ud) {
    svc_t *s = ud;
    if (s != NULL) {
        tsr_audit_destroy(s->audit);
        tsr_store_destroy(s->store);
        tsr_auth_verifier_destroy(s->verifier);
        free(s);
    }
}

static tsr_err_t setup(tsr_httpd_opts_t *opts, void **ud, tsr_error_t *err) {
    svc_t *s = tsr_xcalloc(1, sizeof *s);
    tsr_audit_opts_t ao;
    tsr_store_opts_t so = {0};
    so.collections = tsr_audit_collections(&so.n_collections);
    tsr_err_t rc = tsr_auth_httpd_setup(opts, &s->verifier, err);
    if (rc == TSR_OK) {
        rc = tsr_audit_opts_from_config(&ao, err);
    }
    if (rc == TSR_OK) {
        rc = tsr_store_create_default(&so, &s->store, err);
    }
    if (rc == TSR_OK) {
        ao.store = s->store;
        rc = tsr_audit_create(&ao, &s->audit, err);
    }
    if (rc == TSR_OK) {
        tsr_audit_run_opts_t ro = {.owner = getenv("TSR_REPLICA")};
        rc = tsr_audit_start(s->audit, &ro, err);
    }
    if (rc != TSR_OK) {
        teardown(s);
        return rc;
    }
    opts->on_ready = tsr_audit_ready;
    opts->ready_ud = s->audit;
    opts->on_principal = tsr_audit_principal;
    *ud = s;
    return TSR_OK;
}

static tsr_err_t routes(tsr_httpd_t *h, void *ud, tsr_error_t *err) {
    return tsr_audit_routes(h, ((svc_t *)ud)->audit, err);
}

int main(int argc, char **argv) {
    static const tsr_service_def_t def = {
        .name = "audit",
        .port_offset = 6,
        .setup = setup,
        .routes = routes,
        .teardown = teardown,
    };
    return tsr_service_main(&def, argc, argv);
}
