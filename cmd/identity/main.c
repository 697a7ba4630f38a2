/*
 * cmd/identity: wiring only. Opens the metadata store (TSR_STORE_URI, default
 * $TSR_STATE_DIR/store.db) with identity's collections, loads the key-encryption key
 * (TSR_KEK_FILE, default $TSR_STATE_DIR/local/kek as the local stack writes it), starts the
 * outbox relay to Kafka when a broker is configured (one relay per store at a time, under a
 * store lease), and runs pkg/identity behind the HTTP runtime: health, readiness (the store
 * answers), metrics and its routes.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "events.h"
#include "httpd.h"
#include "identity.h"
#include "log.h"
#include "store_events.h"

#define RELAY_LEASE "events.outbox.relay"
#define RELAY_LEASE_TTL_MS 15000

typedef struct {
    tsr_store_t *store; /* borrowed from identity (which owns it) for the relay */
    tsr_identity_t *identity;
    tsr_events_producer_t *producer;
    tsr_events_relay_t *relay;
    tsr_events_outbox_t outbox;
    pthread_t lease_thread;
    bool lease_running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;
    char owner[128];
} app_t;

/* Holds the relay lease: starts the relay while held, stops it when lost, retries otherwise. */
static void *lease_main(void *arg) {
    app_t *a = arg;
    tsr_store_lease_t lease = {0};
    bool held = false;
    pthread_mutex_lock(&a->mu);
    while (!a->stopping) {
        pthread_mutex_unlock(&a->mu);
        tsr_error_t err;
        tsr_err_t rc = held ? tsr_store_lease_renew(a->store, &lease, RELAY_LEASE_TTL_MS, &err)
                            : tsr_store_lease_acquire(a->store, RELAY_LEASE, a->owner,
                                                      RELAY_LEASE_TTL_MS, &lease, &err);
        if (rc == TSR_OK && !held) {
            held = true;
            if (tsr_events_relay_start(a->relay, &err) != TSR_OK) {
                tsr_log_error(NULL, "outbox relay: %s", err.msg);
            } else {
                tsr_log_info(NULL, "outbox relay started (lease token %llu)",
                             (unsigned long long)lease.token);
            }
        } else if (rc != TSR_OK && held) {
            held = false;
            tsr_events_relay_stop(a->relay);
            tsr_log_warn(NULL, "outbox relay lease lost: %s", err.msg);
        }
        pthread_mutex_lock(&a->mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += RELAY_LEASE_TTL_MS / 3000;
        if (!a->stopping) {
            pthread_cond_timedwait(&a->cv, &a->mu, &ts);
        }
    }
    pthread_mutex_unlock(&a->mu);
    if (held) {
        tsr_error_t err;
        tsr_events_relay_stop(a->relay);
        (void)tsr_store_lease_release(a->store, &lease, &err);
    }
    return NULL;
}

static void relay_setup(app_t *a) {
    char *bootstrap = NULL;
    tsr_error_t err;
    if (tsr_events_bootstrap_resolve(&bootstrap, &err) != TSR_OK) {
        tsr_log_warn(NULL, "no Kafka broker configured: events stay in the outbox (%s)", err.msg);
        return;
    }
    tsr_events_producer_opts_t po = {.bootstrap = bootstrap, .client_id = "tessera-identity"};
    a->outbox = tsr_store_events_outbox(a->store);
    if (tsr_events_producer_create(&po, &a->producer, &err) != TSR_OK ||
        tsr_events_relay_create(a->producer, &a->outbox, NULL, &a->relay, &err) != TSR_OK) {
        tsr_log_error(NULL, "outbox relay not started: %s", err.msg);
        free(bootstrap);
        return;
    }
    free(bootstrap);
    char host[64] = "host";
    (void)gethostname(host, sizeof host - 1);
    snprintf(a->owner, sizeof a->owner, "identity@%s:%ld", host, (long)getpid());
    if (pthread_create(&a->lease_thread, NULL, lease_main, a) == 0) {
        a->lease_running = true;
    }
}

static void teardown(void *ud) {
    app_t *a = ud;
    if (a == NULL) {
        return;
    }
    if (a->lease_running) {
        pthread_mutex_lock(&a->mu);
        a->stopping = true;
        pthread_cond_signal(&a->cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->lease_thread, NULL);
    }
    tsr_events_relay_destroy(a->relay);
    tsr_events_producer_destroy(a->producer);
    tsr_identity_destroy(a->identity);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
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
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
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
    relay_setup(a);
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
