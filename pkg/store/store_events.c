/*
 * tsr_events_outbox_t and tsr_events_dedupe_t over pkg/store (see store_events.h). Thin
 * translations: the rows and the transaction semantics are the store's.
 */
#include "store_events.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static tsr_err_t ob_fetch(void *ctx, size_t limit, tsr_events_outbox_row_t *rows, size_t *n,
                          tsr_error_t *err) {
    tsr_store_event_t *got = NULL;
    size_t k = 0;
    *n = 0;
    tsr_err_t rc = tsr_store_platform_outbox_fetch(ctx, limit, &got, &k, err);
    if (rc != TSR_OK) {
        return rc;
    }
    /* the strings move into the caller's rows; release frees them one by one */
    for (size_t i = 0; i < k; i++) {
        rows[i] = (tsr_events_outbox_row_t){got[i].id, got[i].topic, got[i].key, got[i].payload,
                                            got[i].payload_len};
    }
    free(got);
    *n = k;
    return TSR_OK;
}

static tsr_err_t ob_mark(void *ctx, const char *const *ids, size_t n, tsr_error_t *err) {
    return tsr_store_platform_outbox_mark_sent(ctx, ids, n, err);
}

static void ob_release(void *ctx, tsr_events_outbox_row_t *rows, size_t n) {
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        free((char *)rows[i].id);
        free((char *)rows[i].topic);
        free((char *)rows[i].key);
        free((char *)rows[i].payload);
        rows[i] = (tsr_events_outbox_row_t){0};
    }
}

tsr_events_outbox_t tsr_store_events_outbox(tsr_store_t *s) {
    tsr_events_outbox_t o = {s, ob_fetch, ob_mark, ob_release};
    return o;
}

typedef struct {
    tsr_events_effect_cb effect;
    void *opaque;
} effect_t;

static tsr_err_t run_effect(void *opaque, tsr_store_t *txn, tsr_error_t *err) {
    effect_t *e = opaque;
    return e->effect(e->opaque, txn, err);
}

static tsr_err_t dd_apply_once(void *ctx, const char *group, const char *event_id,
                               tsr_events_effect_cb effect, void *effect_opaque, bool *applied,
                               tsr_error_t *err) {
    effect_t e = {effect, effect_opaque};
    return tsr_store_apply_once(ctx, group, event_id, run_effect, &e, applied, err);
}

tsr_events_dedupe_t tsr_store_events_dedupe(tsr_store_t *s) {
    tsr_events_dedupe_t d = {s, dd_apply_once};
    return d;
}

/* ---- the leased outbox relay ------------------------------------------------------------- */

struct tsr_store_events_relayer {
    tsr_store_t *store;
    tsr_events_outbox_t outbox;
    tsr_events_producer_t *producer;
    tsr_events_relay_t *relay;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;
    char owner[TSR_STORE_LEASE_NAME_MAX + 1];
};

/* Holds the relay lease: starts the relay while held, stops it when lost, retries otherwise. */
static void *relayer_main(void *arg) {
    tsr_store_events_relayer_t *r = arg;
    tsr_store_lease_t lease = {0};
    bool held = false;
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        pthread_mutex_unlock(&r->mu);
        tsr_error_t err = {0};
        tsr_err_t rc =
            held ? tsr_store_lease_renew(r->store, &lease, TSR_STORE_EVENTS_RELAY_TTL_MS, &err)
                 : tsr_store_lease_acquire(r->store, TSR_STORE_EVENTS_RELAY_LEASE, r->owner,
                                           TSR_STORE_EVENTS_RELAY_TTL_MS, &lease, &err);
        if (rc == TSR_OK && !held) {
            held = true;
            if (tsr_events_relay_start(r->relay, &err) != TSR_OK) {
                tsr_log_error(NULL, "outbox relay: %s", err.msg);
            } else {
                tsr_log_info(NULL, "outbox relay started (lease token %llu)",
                             (unsigned long long)lease.token);
            }
        } else if (rc != TSR_OK && held) {
            held = false;
            tsr_events_relay_stop(r->relay);
            tsr_log_warn(NULL, "outbox relay lease lost: %s", err.msg);
        }
        pthread_mutex_lock(&r->mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += TSR_STORE_EVENTS_RELAY_TTL_MS / 3000;
        if (!r->stopping) {
            pthread_cond_timedwait(&r->cv, &r->mu, &ts);
        }
    }
    pthread_mutex_unlock(&r->mu);
    if (held) {
        tsr_error_t err = {0};
        tsr_events_relay_stop(r->relay);
        (void)tsr_store_lease_release(r->store, &lease, &err);
    }
    return NULL;
}

tsr_err_t tsr_store_events_relayer_start(tsr_store_t *store, const char *service,
                                         tsr_store_events_relayer_t **out, tsr_error_t *err) {
    *out = NULL;
    if (store == NULL || service == NULL || service[0] == '\0' || strlen(service) > 32) {
        return tsr_error_set(err, TSR_EINVAL, "relayer: store and a service name are required");
    }
    char *bootstrap = NULL;
    tsr_error_t berr = {0};
    if (tsr_events_bootstrap_resolve(&bootstrap, &berr) != TSR_OK) {
        tsr_log_warn(NULL, "no Kafka broker configured: events stay in the outbox (%s)", berr.msg);
        return TSR_OK;
    }
    tsr_store_events_relayer_t *r = tsr_xcalloc(1, sizeof *r);
    r->store = store;
    r->outbox = tsr_store_events_outbox(store);
    char client[48];
    snprintf(client, sizeof client, "tessera-%s", service);
    tsr_events_producer_opts_t po = {.bootstrap = bootstrap, .client_id = client};
    tsr_err_t rc = tsr_events_producer_create(&po, &r->producer, err);
    free(bootstrap);
    if (rc == TSR_OK) {
        rc = tsr_events_relay_create(r->producer, &r->outbox, NULL, &r->relay, err);
    }
    if (rc != TSR_OK) {
        tsr_events_producer_destroy(r->producer);
        free(r);
        return rc;
    }
    char host[64] = "host";
    (void)gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(r->owner, sizeof r->owner, "%s@%.64s:%ld", service, host, (long)getpid());
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    if (pthread_create(&r->thread, NULL, relayer_main, r) != 0) {
        tsr_events_relay_destroy(r->relay);
        tsr_events_producer_destroy(r->producer);
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cv);
        free(r);
        return tsr_error_set(err, TSR_EINTERNAL, "relayer: cannot start its thread");
    }
    *out = r;
    return TSR_OK;
}

void tsr_store_events_relayer_stop(tsr_store_events_relayer_t *r) {
    if (r == NULL) {
        return;
    }
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    tsr_events_relay_destroy(r->relay);
    tsr_events_producer_destroy(r->producer);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}
