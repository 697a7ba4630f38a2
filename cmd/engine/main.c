/*
 * cmd/engine: wiring only. Two roles of one binary:
 *   serving (default)   opens the engine's app store (pkg/engined, files under
 *                       $TSR_STATE_DIR/engine), creates the QIX protocol server (pkg/qix) over it,
 *                       and serves the /app/<appId> WebSocket behind the HTTP runtime: health,
 *                       readiness, metrics. SIGTERM drains: every QIX session ends its call and
 *                       is closed with 4003 so clients resume elsewhere. Model versions written
 *                       by reloaders are swapped in by pkg/engined's version watcher.
 *   --role reloader     a member of the "reloaders" consumer group (pkg/reload's worker): each
 *                       reload takes the app's run lease, runs the app's script through
 *                       tsr_engined_reload_app (data files from spaces) and writes the model as
 *                       a version fenced by the run's token; the worker finishes the reload
 *                       exactly once. HTTP: health, readiness, metrics only. SIGTERM finishes
 *                       the current reload, then leaves the group.
 * Both roles: callers are verified by pkg/auth (TSR_AUTH_JWKS_URL, or TSR_AUTH_TRUST_HEADERS in
 * development), and calls to spaces carry service tokens from identity
 * (TSR_AUTH_SERVICE_TOKEN_FILE).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "engined.h"
#include "events.h"
#include "httpd.h"
#include "log.h"
#include "qix.h"
#include "reload.h"
#include "reload_worker.h"

typedef struct {
    tsr_engined_t *engined;
    tsr_qix_server_t *qix;
    tsr_auth_verifier_t *verifier; /* NULL: headers trusted (development) */
    tsr_auth_tokens_t *tokens;     /* service tokens for calls to spaces; NULL: none */
    /* spaces' events dropping cached access answers (both roles); NULL: no broker */
    tsr_engined_access_events_t *access_events;
    /* serving role: removes deleted apps' folders after TSR_ENGINE_DELETE_GRACE_S */
    tsr_engined_sweeper_t *sweeper;
    /* reloader role */
    tsr_store_t *store;
    tsr_reload_consumer_t *consumer;
    char owner[128];
} engine_t;

/* The auth knobs both roles share: the verifier hooked into opts, the service-token source
 * handed to the engine. */
static tsr_err_t auth_setup(engine_t *e, tsr_httpd_opts_t *opts, tsr_error_t *err) {
    tsr_err_t rc = tsr_auth_httpd_setup(opts, &e->verifier, err);
    if (rc == TSR_OK) {
        rc = tsr_auth_tokens_create_from_config(&e->tokens, err);
    }
    return rc;
}

/* Both roles: a consumer of spaces' events of this process alone drops the access answers they
 * change. Without a broker the answers only expire (TSR_ENGINE_ACCESS_CACHE_MS). */
static tsr_err_t access_events_setup(engine_t *e, tsr_error_t *err) {
    char *bootstrap = NULL;
    tsr_error_t berr;
    tsr_error_clear(&berr);
    if (tsr_events_bootstrap_resolve(&bootstrap, &berr) != TSR_OK) {
        tsr_log_warn(NULL, "no Kafka broker configured: cached access answers only expire (%s)",
                     berr.msg);
        return TSR_OK;
    }
    tsr_err_t rc =
        tsr_engined_access_events_start(e->engined, bootstrap, NULL, &e->access_events, err);
    free(bootstrap);
    return rc;
}

#define STALE_TEMP_MS (INT64_C(3600) * 1000) /* import uploads left by a crash */

/* Serving role: import uploads older than an hour (a crash's) go at start-up; deleted apps'
 * folders go TSR_ENGINE_DELETE_GRACE_S after their tombstone (any replica sweeps). */
static tsr_err_t sweep_setup(engine_t *e, tsr_error_t *err) {
    int64_t grace = 0;
    tsr_err_t rc =
        tsr_config_get_int("TSR_ENGINE_DELETE_GRACE_S", 0, INT64_C(86400) * 365, &grace, err);
    if (rc != TSR_OK) {
        return rc;
    }
    size_t n = tsr_engined_transfer_sweep(e->engined, STALE_TEMP_MS);
    if (n > 0) {
        tsr_log_info(NULL, "engine: %zu stale import upload(s) removed", n);
    }
    return tsr_engined_sweeper_start(e->engined, grace * 1000, &e->sweeper, err);
}

static void auth_teardown(engine_t *e) {
    tsr_auth_tokens_destroy(e->tokens);
    tsr_auth_verifier_destroy(e->verifier);
}

static tsr_err_t setup(tsr_httpd_opts_t *opts, void **ud, tsr_error_t *err) {
    engine_t *e = calloc(1, sizeof *e);
    tsr_qix_opts_t qo = {0};
    tsr_err_t rc;
    if (e == NULL) {
        return tsr_error_set(err, TSR_EINTERNAL, "out of memory");
    }
    if ((rc = auth_setup(e, opts, err)) != TSR_OK ||
        (rc = tsr_engined_create_from_config(&e->engined, err)) != TSR_OK ||
        (rc = tsr_qix_opts_from_config(&qo, err)) != TSR_OK) {
        goto fail;
    }
    if (e->tokens != NULL) {
        tsr_engined_set_token_source(e->engined, tsr_auth_tokens_cb, e->tokens);
    }
    if ((rc = access_events_setup(e, err)) != TSR_OK || (rc = sweep_setup(e, err)) != TSR_OK) {
        goto fail;
    }
    qo.backend = tsr_engined_backend(e->engined);
    qo.authenticate = tsr_engined_authenticate;
    qo.auth_ud = e->engined;
    if ((rc = tsr_qix_server_create(&qo, &e->qix, err)) != TSR_OK) {
        goto fail;
    }
    opts->on_drain = tsr_qix_server_drain;
    opts->drain_ud = e->qix;
    *ud = e;
    return TSR_OK;
fail:
    tsr_engined_sweeper_stop(e->sweeper);
    tsr_engined_access_events_stop(e->access_events);
    tsr_engined_destroy(e->engined);
    auth_teardown(e);
    free(e);
    return rc;
}

static tsr_err_t routes(tsr_httpd_t *h, void *ud, tsr_error_t *err) {
    engine_t *e = ud;
    tsr_err_t rc = tsr_qix_routes(h, e->qix, err);
    return rc == TSR_OK ? tsr_engined_routes(h, e->engined, err) : rc;
}

static void teardown(void *ud) {
    engine_t *e = ud;
    tsr_qix_server_destroy(e->qix);
    tsr_engined_sweeper_stop(e->sweeper);
    tsr_engined_access_events_stop(e->access_events);
    tsr_engined_destroy(e->engined);
    auth_teardown(e);
    free(e);
}

/* ---- the reloader role ----------------------------------------------------------------------- */

static bool run_should_stop(void *ud) {
    return tsr_reload_run_should_stop(ud);
}

static void run_log(void *ud, const char *text, size_t len) {
    tsr_reload_run_log_text(ud, text, len); /* live: stored on the reload as it runs */
}

static int64_t g_pause_ms; /* TSR_ENGINE_RELOAD_TEST_PAUSE_MS */

static void run_before_switch(void *ud) {
    tsr_reload_run_t *run = ud;
    /* Test hooks: TSR_FAULTPOINT=engine.reload.before_switch kills the reloader after the new
     * model file is written and before the version pointer moves; the pause lets a test stop
     * the process there (SIGSTOP) until another reloader took the run over, so that the late
     * switch carries a stale fencing token. */
    tsr_events_faultpoint("engine.reload.before_switch");
    if (g_pause_ms > 0) {
        tsr_log_warn(NULL,
                     "reloader: reload %s pausing %lld ms before the version switch (test hook)",
                     tsr_reload_run_id(run), (long long)g_pause_ms);
        struct timespec ts = {.tv_sec = g_pause_ms / 1000,
                              .tv_nsec = (g_pause_ms % 1000) * 1000000};
        while (nanosleep(&ts, &ts) != 0) {
        }
    }
}

static tsr_err_t reload_job(void *ud, tsr_reload_run_t *run, const char *tenant, const char *app_id,
                            bool partial, tsr_error_t *err) {
    engine_t *e = ud;
    tsr_engined_reload_opts_t o = {.token = tsr_reload_run_token(run),
                                   .should_stop = run_should_stop,
                                   .ud = run,
                                   .before_switch = run_before_switch,
                                   .on_log = run_log};
    tsr_log_ctx_t ctx = {.tenant_id = tenant};
    tsr_log_info(&ctx, "reloader: reload %s of app %s started (token %llu)", tsr_reload_run_id(run),
                 app_id, (unsigned long long)o.token);
    if (partial) {
        tsr_reload_run_log(run, "partial reload requested: the whole script runs\n");
    }
    char *log = NULL;
    tsr_err_t rc = tsr_engined_reload_app(e->engined, tenant, app_id, &o, &log, err);
    free(log); /* already in the run's log, line by line through run_log */
    tsr_log_info(&ctx, "reloader: reload %s of app %s: %s", tsr_reload_run_id(run), app_id,
                 rc == TSR_OK ? "model saved" : (err != NULL ? err->msg : tsr_strerror(rc)));
    return rc;
}

static tsr_err_t reloader_ready(void *ud, tsr_error_t *err) {
    engine_t *e = ud;
    return tsr_store_ping(e->store, err);
}

static tsr_err_t reloader_setup(tsr_httpd_opts_t *opts, void **ud, tsr_error_t *err) {
    engine_t *e = calloc(1, sizeof *e);
    int64_t ttl = 0, max_run = 0;
    size_t n = 0;
    char *bootstrap = NULL;
    tsr_err_t rc;
    if (e == NULL) {
        return tsr_error_set(err, TSR_EINTERNAL, "out of memory");
    }
    char host[64] = "host";
    (void)gethostname(host, sizeof host - 1);
    snprintf(e->owner, sizeof e->owner, "engine-reloader@%s:%ld", host, (long)getpid());
    /* The reload service's store (its collections declared the same way). */
    tsr_store_opts_t so = {.collections = tsr_reload_collections(&n)};
    so.n_collections = n;
    if ((rc = tsr_config_get_int("TSR_RELOAD_LEASE_TTL_MS", 100, 3600000, &ttl, err)) != TSR_OK ||
        (rc = tsr_config_get_int("TSR_RELOAD_MAX_RUN_MS", 1000, INT64_C(86400000) * 7, &max_run,
                                 err)) != TSR_OK ||
        (rc = tsr_config_get_int("TSR_ENGINE_RELOAD_TEST_PAUSE_MS", 0, 3600000, &g_pause_ms,
                                 err)) != TSR_OK ||
        (rc = auth_setup(e, opts, err)) != TSR_OK ||
        (rc = tsr_store_create_default(&so, &e->store, err)) != TSR_OK ||
        (rc = tsr_engined_create_from_config(&e->engined, err)) != TSR_OK) {
        goto fail;
    }
    if (e->tokens != NULL) {
        tsr_engined_set_token_source(e->engined, tsr_auth_tokens_cb, e->tokens);
    }
    if ((rc = access_events_setup(e, err)) != TSR_OK) {
        goto fail;
    }
    tsr_error_t berr;
    tsr_error_clear(&berr);
    if (tsr_events_bootstrap_resolve(&bootstrap, &berr) != TSR_OK) {
        /* Like the other services without a broker: up, but idle (reloads stay QUEUED). */
        tsr_log_warn(NULL, "no Kafka broker configured: the reloader runs no reloads (%s)",
                     berr.msg);
    } else {
        tsr_reload_worker_opts_t wo = {
            .store = e->store, .owner = e->owner, .lease_ttl_ms = ttl, .max_run_ms = max_run};
        if ((rc = tsr_reload_worker_start(&wo, bootstrap, reload_job, e, &e->consumer, err)) !=
            TSR_OK) {
            goto fail;
        }
        free(bootstrap);
        bootstrap = NULL;
        tsr_log_info(NULL, "reloader %s joined the reloaders group (lease %lld ms)", e->owner,
                     (long long)ttl);
    }
    opts->on_ready = reloader_ready;
    opts->ready_ud = e;
    *ud = e;
    return TSR_OK;
fail:
    free(bootstrap);
    tsr_engined_access_events_stop(e->access_events);
    tsr_engined_destroy(e->engined);
    tsr_store_destroy(e->store);
    auth_teardown(e);
    free(e);
    return rc;
}

static void reloader_teardown(void *ud) {
    engine_t *e = ud;
    tsr_reload_consumer_stop(e->consumer); /* finishes the current reload, leaves the group */
    tsr_engined_access_events_stop(e->access_events);
    tsr_engined_destroy(e->engined);
    tsr_store_destroy(e->store);
    auth_teardown(e);
    free(e);
}

int main(int argc, char **argv) {
    static const tsr_service_def_t def = {
        .name = "engine",
        .port_offset = 3,
        .setup = setup,
        .routes = routes,
        .teardown = teardown,
    };
    static const tsr_service_def_t reloader = {
        .name = "engine-reloader",
        .port_offset = 9,
        .setup = reloader_setup,
        .teardown = reloader_teardown,
    };
    const tsr_service_def_t *d = &def;
    for (int i = 1; i < argc; i++) {
        const char *role = NULL;
        if (strcmp(argv[i], "--role") == 0 && i + 1 < argc) {
            role = argv[i + 1];
        } else if (strncmp(argv[i], "--role=", 7) == 0) {
            role = argv[i] + 7;
        } else {
            continue;
        }
        if (strcmp(role, "reloader") == 0) {
            d = &reloader;
        } else if (strcmp(role, "serving") != 0) {
            fprintf(stderr, "%s: unknown role %s (serving or reloader)\n", argv[0], role);
            return 2;
        }
    }
    return tsr_service_main(d, argc, argv);
}
