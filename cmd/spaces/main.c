/*
 * cmd/spaces: wiring only. Opens the metadata store (TSR_STORE_URI, default
 * $TSR_STATE_DIR/store.db) with the spaces collections and the blob store (TSR_BLOB_URI),
 * loads the key-encryption key (TSR_KEK_FILE) that wraps tenant DEKs, starts the outbox relay
 * to Kafka when a broker is configured (one relay per store at a time, under a store lease),
 * and runs pkg/spaces behind the HTTP runtime.
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
#include "log.h"
#include "spaces.h"
#include "store_events.h"

#define RELAY_LEASE "events.outbox.relay"
#define RELAY_LEASE_TTL_MS 15000

typedef struct {
    tsr_store_t *store;
    tsr_blob_store_t *blobs;
    tsr_kek_set_t *kek;
    tsr_spaces_t *spaces;
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
    tsr_events_producer_opts_t po = {.bootstrap = bootstrap, .client_id = "tessera-spaces"};
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
    snprintf(a->owner, sizeof a->owner, "spaces@%s:%ld", host, (long)getpid());
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
    tsr_spaces_destroy(a->spaces);
    tsr_blob_store_destroy(a->blobs);
    tsr_store_destroy(a->store);
    tsr_crypto_kek_set_destroy(a->kek);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    free(a);
}

static tsr_err_t setup(tsr_httpd_opts_t *opts, void **ud, tsr_error_t *err) {
    int64_t max_file = 0;
    size_t n = 0;
    tsr_err_t rc;
    app_t *a = tsr_xcalloc(1, sizeof *a);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    tsr_store_opts_t so = {.collections = tsr_spaces_collections(&n)};
    so.n_collections = n;
    if ((rc = tsr_config_get_int("TSR_SPACES_DATAFILE_MAX_BYTES", 1, (int64_t)1 << 40, &max_file,
                                 err)) != TSR_OK ||
        (rc = tsr_store_create_default(&so, &a->store, err)) != TSR_OK ||
        (rc = tsr_blob_store_open(NULL, &a->blobs, err)) != TSR_OK) {
        teardown(a);
        return rc;
    }
    /* Data files are sealed under tenant DEKs wrapped by the KEK; without one (a bare
     * development run) they are stored as they came, and the log says so. */
    const char *kek = tsr_config_get("TSR_KEK_FILE");
    if (kek[0] != '\0') {
        a->kek = tsr_crypto_kek_set_create();
        if ((rc = tsr_crypto_kek_set_load(a->kek, kek, err)) != TSR_OK) {
            teardown(a);
            return rc;
        }
    } else {
        tsr_log_warn(NULL, "TSR_KEK_FILE is not set: data files are stored unsealed");
    }
    tsr_spaces_opts_t sp = {.store = a->store,
                            .kek = a->kek,
                            .blobs = a->blobs,
                            .datafile_max_bytes = (uint64_t)max_file,
                            .json_max_body = opts->max_body};
    if ((rc = tsr_spaces_create(&sp, &a->spaces, err)) != TSR_OK) {
        teardown(a);
        return rc;
    }
    /* httpd buffers whole bodies: let uploads through (plus multipart framing); the JSON
     * routes keep TSR_HTTP_MAX_BODY themselves. */
    if ((uint64_t)opts->max_body < (uint64_t)max_file + 65536) {
        opts->max_body = (size_t)max_file + 65536;
    }
    opts->on_ready = tsr_spaces_ready;
    opts->ready_ud = a->spaces;
    opts->on_principal = tsr_spaces_principal;
    relay_setup(a);
    *ud = a;
    return TSR_OK;
}

static tsr_err_t routes(tsr_httpd_t *h, void *ud, tsr_error_t *err) {
    return tsr_spaces_routes(h, ((app_t *)ud)->spaces, err);
}

int main(int argc, char **argv) {
    static const tsr_service_def_t def = {
        .name = "spaces",
        .port_offset = 2,
        .setup = setup,
        .routes = routes,
        .teardown = teardown,
    };
    return tsr_service_main(&def, argc, argv);
}
