/*
 * pkg/events outbox relay: publishes rows the store committed in its outbox and marks them
 * sent only after the broker acknowledged them (acks=all). Invariant: a row is marked sent
 * only if it and every earlier fetched row with the same key were acknowledged; so a crash or
 * a failure at any point yields a republish (a duplicate consumers dedupe), never a loss.
 */
#include "events_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

struct tsr_events_relay {
    tsr_events_producer_t *p;   /* borrowed */
    tsr_events_outbox_t outbox; /* copied table, ctx borrowed */
    size_t batch;
    int idle_ms;
    int backoff_max_ms;
    pthread_t thread;
    bool running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool kicked;   /* guarded by mu */
    bool stopping; /* guarded by mu */
    atomic_bool healthy;
};

tsr_err_t tsr_events_relay_create(tsr_events_producer_t *p, const tsr_events_outbox_t *outbox,
                                  const tsr_events_relay_opts_t *opts, tsr_events_relay_t **out,
                                  tsr_error_t *err) {
    *out = NULL;
    if (p == NULL || outbox == NULL || outbox->fetch_unsent == NULL || outbox->mark_sent == NULL ||
        outbox->release == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "relay: producer and a complete outbox required");
    }
    tsr_events_relay_t *r = tsr_xcalloc(1, sizeof *r);
    r->p = p;
    r->outbox = *outbox;
    r->batch = opts != NULL && opts->batch > 0 ? opts->batch : 256;
    if (r->batch > 10000) {
        r->batch = 10000;
    }
    r->idle_ms = opts != NULL && opts->idle_ms > 0 ? opts->idle_ms : 200;
    r->backoff_max_ms = opts != NULL && opts->backoff_max_ms > 0 ? opts->backoff_max_ms : 5000;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    atomic_init(&r->healthy, true);
    *out = r;
    return TSR_OK;
}

static bool key_failed(const char **failed, size_t n, const char *key) {
    for (size_t i = 0; i < n; i++) {
        if (strcmp(failed[i], key) == 0) {
            return true;
        }
    }
    return false;
}

tsr_err_t tsr_events_relay_run_once(tsr_events_relay_t *r, size_t *published, tsr_error_t *err) {
    size_t n = 0;
    *published = 0;
    tsr_events_outbox_row_t *rows = tsr_xcalloc(r->batch, sizeof *rows);
    tsr_err_t rc = r->outbox.fetch_unsent(r->outbox.ctx, r->batch, rows, &n, err);
    if (rc != TSR_OK || n == 0) {
        free(rows);
        atomic_store(&r->healthy, rc == TSR_OK);
        return rc;
    }
    tsr_events_msg_t *msgs = tsr_xcalloc(n, sizeof *msgs);
    const char **ok_ids = tsr_xcalloc(n, sizeof *ok_ids);
    const char **failed_keys = tsr_xcalloc(n, sizeof *failed_keys);
    size_t n_ok = 0;
    size_t n_failed = 0;
    for (size_t i = 0; i < n; i++) {
        msgs[i].topic = rows[i].topic;
        msgs[i].key = rows[i].key;
        msgs[i].payload = rows[i].payload;
        msgs[i].payload_len = rows[i].payload_len;
    }
    tsr_error_t serr;
    tsr_err_t send_rc = tsr_events_producer_send(r->p, msgs, n, &serr);
    for (size_t i = 0; i < n; i++) {
        const char *key = rows[i].key != NULL ? rows[i].key : "";
        if (msgs[i].result == TSR_OK && !key_failed(failed_keys, n_failed, key)) {
            ok_ids[n_ok++] = rows[i].id;
        } else if (!key_failed(failed_keys, n_failed, key)) {
            failed_keys[n_failed++] = key;
        }
    }
    /* Acknowledged by the broker but not yet marked: a crash here republishes them. */
    tsr_events_faultpoint("relay.after_publish");
    if (n_ok > 0) {
        rc = r->outbox.mark_sent(r->outbox.ctx, ok_ids, n_ok, err);
        if (rc == TSR_OK) {
            *published = n_ok;
        }
    }
    if (rc == TSR_OK && send_rc != TSR_OK) {
        rc = tsr_error_set(err, TSR_EUNAVAILABLE, "relay: %zu of %zu rows held back: %s", n - n_ok,
                           n, serr.msg);
    }
    r->outbox.release(r->outbox.ctx, rows, n);
    free(failed_keys);
    free(ok_ids);
    free(msgs);
    free(rows);
    atomic_store(&r->healthy, rc == TSR_OK);
    return rc;
}

/* Wait up to ms or until kicked/stopped; returns false when stopping. */
static bool relay_wait(tsr_events_relay_t *r, int ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->mu);
    while (!r->kicked && !r->stopping) {
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) != 0) {
            break;
        }
    }
    r->kicked = false;
    bool go_on = !r->stopping;
    pthread_mutex_unlock(&r->mu);
    return go_on;
}

static void *relay_main(void *arg) {
    tsr_events_relay_t *r = arg;
    int backoff = 0;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        bool stop = r->stopping;
        pthread_mutex_unlock(&r->mu);
        if (stop) {
            break;
        }
        size_t published = 0;
        tsr_error_t err;
        tsr_err_t rc = tsr_events_relay_run_once(r, &published, &err);
        int wait_ms;
        if (rc != TSR_OK) {
            backoff = backoff == 0 ? 100 : backoff * 2;
            if (backoff > r->backoff_max_ms) {
                backoff = r->backoff_max_ms;
            }
            tsr_log_warn(NULL, "outbox relay: %s (retry in %d ms)", err.msg, backoff);
            wait_ms = backoff;
        } else {
            backoff = 0;
            if (published > 0) {
                continue;
            }
            wait_ms = r->idle_ms;
        }
        if (!relay_wait(r, wait_ms)) {
            break;
        }
    }
    return NULL;
}

tsr_err_t tsr_events_relay_start(tsr_events_relay_t *r, tsr_error_t *err) {
    if (r->running) {
        return TSR_OK;
    }
    r->stopping = false;
    if (pthread_create(&r->thread, NULL, relay_main, r) != 0) {
        return tsr_error_set(err, TSR_EINTERNAL, "relay: cannot start thread");
    }
    r->running = true;
    return TSR_OK;
}

void tsr_events_relay_kick(tsr_events_relay_t *r) {
    pthread_mutex_lock(&r->mu);
    r->kicked = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

bool tsr_events_relay_is_healthy(tsr_events_relay_t *r) {
    return atomic_load(&r->healthy);
}

void tsr_events_relay_stop(tsr_events_relay_t *r) {
    if (!r->running) {
        return;
    }
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    r->running = false;
}

void tsr_events_relay_destroy(tsr_events_relay_t *r) {
    if (r == NULL) {
        return;
    }
    tsr_events_relay_stop(r);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
