/*
 * cmd/reload: wiring only. Opens the metadata store (TSR_STORE_URI, default
 * $TSR_STATE_DIR/store.db) with the reload collections, creates pkg/reload (access decisions
 * from spaces), starts the scheduler round thread (only the leader-lease holder fires), the
 * outbox relay under the shared relay lease and the consumer of reload results when a broker
 * is configured, and runs the HTTP routes behind the service runtime. Callers are verified by
 * pkg/auth (TSR_AUTH_JWKS_URL, or TSR_AUTH_TRUST_HEADERS in development); access questions to
 * spaces forward the caller's own platform token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "events.h"
#include "httpd.h"
#include "log.h"
#include "reload.h"
#include "store_events.h"

typedef struct {
    tsr_store_t *store;
    tsr_reload_t *reload;
    tsr_reload_consumer_t *results;
    tsr_reload_access_events_t *access_events; /* this replica's access invalidation */
    tsr_store_events_relayer_t *relayer;
    tsr_auth_verifier_t *verifier;
    char owner[128];
} app_t;

static tsr_err_t events_setup(app_t *a, tsr_error_t *err) {
    tsr_err_t rc = tsr_store_events_relayer_start(a->store, "reload", &a->relayer, err);
    if (rc != TSR_OK) {
        return rc;
    }
    char *bootstrap = NULL;
    tsr_error_t berr = {0};
    if (tsr_events_bootstrap_resolve(&bootstrap, &berr) != TSR_OK) {
        return TSR_OK; /* no broker: the relayer said so; results arrive when one exists */
    }
    if (tsr_reload_results_start(a->reload, bootstrap, &a->results, &berr) != TSR_OK) {
        tsr_log_error(NULL, "reload results consumer not started: %s", berr.msg);
    }
    tsr_error_clear(&berr);
    if (tsr_reload_access_events_start(a->reload, bootstrap, &a->access_events, &berr) != TSR_OK) {
        tsr_log_error(NULL, "access events consumer not started (answers only expire): %s",
                      berr.msg);
    }
    free(bootstrap);
    return TSR_OK;
}

static void teardown(void *ud) {
    app_t *a = ud;
    if (a == NULL) {
        return;
    }
    tsr_store_events_relayer_stop(a->relayer);
    tsr_reload_consumer_stop(a->results);
    tsr_reload_access_events_stop(a->access_events);
    if (a->reload != NULL) {
        tsr_reload_scheduler_stop(a->reload);
    }
    tsr_reload_destroy(a->reload);
    tsr_store_destroy(a->store);
    tsr_auth_verifier_destroy(a->verifier);
    free(a);
}

static tsr_err_t setup(tsr_httpd_opts_t *opts, void **ud, tsr_error_t *err) {
    int64_t max_active = 0, max_failures = 0, ttl = 0, interval = 0, port = 0, access_ttl = 0;
    size_t n = 0;
    tsr_err_t rc;
    app_t *a = tsr_xcalloc(1, sizeof *a);
    char host[64] = "host";
    (void)gethostname(host, sizeof host - 1);
    snprintf(a->owner, sizeof a->owner, "reload@%s:%ld", host, (long)getpid());
    tsr_store_opts_t so = {.collections = tsr_reload_collections(&n)};
    so.n_collections = n;
    const char *misfire = tsr_config_get("TSR_RELOAD_MISFIRE");
    if ((rc = tsr_auth_httpd_setup(opts, &a->verifier, err)) != TSR_OK ||
        (rc = tsr_config_get_int("TSR_RELOAD_TENANT_MAX_ACTIVE", 1, 100000, &max_active, err)) !=
            TSR_OK ||
        (rc = tsr_config_get_int("TSR_RELOAD_MAX_FAILURES", 1, 1000, &max_failures, err)) !=
            TSR_OK ||
        (rc = tsr_config_get_int("TSR_RELOAD_LEASE_TTL_MS", 100, 3600000, &ttl, err)) != TSR_OK ||
        (rc = tsr_config_get_int("TSR_RELOAD_SCHEDULER_INTERVAL_MS", 10, 3600000, &interval,
                                 err)) != TSR_OK ||
        (rc = tsr_config_get_int("TSR_RELOAD_ACCESS_CACHE_MS", 0, 3600000, &access_ttl, err)) !=
            TSR_OK ||
        (rc = tsr_config_get_int("TSR_PORT", 1, 65535, &port, err)) != TSR_OK) {
        teardown(a);
        return rc;
    }
    if (strcasecmp(misfire, "run_once") != 0 && strcasecmp(misfire, "skip") != 0) {
        teardown(a);
        return tsr_error_set(err, TSR_EINVAL, "TSR_RELOAD_MISFIRE: run_once or skip");
    }
    if ((rc = tsr_store_create_default(&so, &a->store, err)) != TSR_OK) {
        teardown(a);
        return rc;
    }
    tsr_reload_opts_t ro = {.store = a->store,
                            .tenant_max_active = (unsigned)max_active,
                            .max_failures = (unsigned)max_failures,
                            .misfire = strcasecmp(misfire, "skip") == 0
                                           ? TSR_RELOAD_MISFIRE_SKIP
                                           : TSR_RELOAD_MISFIRE_RUN_ONCE,
                            .owner = a->owner,
                            .lease_ttl_ms = ttl,
                            .access_ttl_ms = access_ttl > 0 ? access_ttl : -1};
    const char *spaces = tsr_config_get("TSR_RELOAD_SPACES_URL");
    if (strcmp(spaces, "off") != 0) {
        char url[256];
        if (spaces[0] == '\0') {
            snprintf(url, sizeof url, "http://127.0.0.1:%d", (int)port + 2);
            spaces = url;
        }
        ro.access = tsr_reload_access_spaces;
        ro.access_ud = tsr_xstrdup(spaces);
        ro.access_ud_free = true;
    }
    if ((rc = tsr_reload_create(&ro, &a->reload, err)) != TSR_OK) {
        free(ro.access_ud);
        teardown(a);
        return rc;
    }
    if ((rc = tsr_reload_scheduler_start(a->reload, (int)interval, err)) != TSR_OK) {
        teardown(a);
        return rc;
    }
    if ((rc = events_setup(a, err)) != TSR_OK) {
        teardown(a);
        return rc;
    }
    opts->on_ready = tsr_reload_ready;
    opts->ready_ud = a->reload;
    opts->on_principal = tsr_reload_principal;
    *ud = a;
    return TSR_OK;
}

static tsr_err_t routes(tsr_httpd_t *h, void *ud, tsr_error_t *err) {
    return tsr_reload_routes(h, ((app_t *)ud)->reload, err);
}

int main(int argc, char **argv) {
    static const tsr_service_def_t def = {
        .name = "reload",
        .port_offset = 5,
        .setup = setup,
        .routes = routes,
        .teardown = teardown,
    };
    return tsr_service_main(&def, argc, argv);
}
