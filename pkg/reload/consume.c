/*
 * pkg/reload worker library: the reloader role's consumer of tessera.reloads.requests (group
 * "reloaders") and the consumer thread both roles use over pkg/events. Effects are idempotent
 * by construction (a finished reload is never run again; a result is counted once per reload
 * id; a chained fire has its own key), so the dedupe step records nothing and runs the effect.
 */
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "log.h"
#include "reload_worker_int.h"

static tsr_err_t pass_through(void *ctx, const char *group, const char *event_id,
                              tsr_events_effect_cb effect, void *effect_opaque, bool *applied,
                              tsr_error_t *err) {
    (void)ctx;
    (void)group;
    (void)event_id;
    tsr_err_t rc = effect(effect_opaque, NULL, err);
    *applied = rc == TSR_OK;
    return rc;
}

static const char *const REQUEST_TOPICS[] = {TSR_RL__T_REQUESTS};

static const char *reload_id_of(const tsr_event_t *ev) {
    return json_string_value(json_object_get(ev->data, "reloadId"));
}

static tsr_err_t on_request(void *opaque, const tsr_event_t *ev, void *txn, tsr_error_t *err) {
    tsr_reload_consumer_t *k = opaque;
    tsr_reload_run_outcome_t out;
    (void)txn;
    if (strcmp(ev->type, "com.tessera.v1.reload.requested") != 0) {
        return TSR_OK; /* cancel requests are seen by the running worker's heartbeat */
    }
    const char *id = reload_id_of(ev);
    if (id == NULL) {
        return TSR_OK; /* nothing to do with it: commit and move on */
    }
    tsr_err_t rc = tsr_reload_worker_run(&k->wopts, ev->tenantid, id, k->job, k->job_ud, &out, err);
    if (rc == TSR_ENOTFOUND) {
        return TSR_OK;
    }
    if (rc == TSR_ECONFLICT) {
        /* Another worker still holds a live run lease: retry later (backoff), never drop. */
        return tsr_error_set(err, TSR_EUNAVAILABLE, "reload %s: run lease busy", id);
    }
    return rc;
}

static void *consumer_main(void *arg) {
    tsr_reload_consumer_t *k = arg;
    tsr_error_t err;
    if (tsr_events_consumer_run(k->c, &err) != TSR_OK && err.code != TSR_ECANCELED) {
        tsr_log_warn(NULL, "reload consumer stopped: %s", err.msg);
    }
    return NULL;
}

tsr_err_t tsr_rl__consumer_start(tsr_reload_consumer_t *k, const char *bootstrap, const char *group,
                                 const char *const *topics, size_t n_topics,
                                 tsr_events_handler_cb handler, const char *max_poll,
                                 tsr_error_t *err) {
    const char *extra[] = {"max.poll.interval.ms", max_poll, NULL};
    tsr_events_consumer_opts_t o = {.bootstrap = bootstrap,
                                    .group = group,
                                    .topics = topics,
                                    .n_topics = n_topics,
                                    .client_id = "tessera-reload",
                                    .handler = handler,
                                    .handler_opaque = k,
                                    .dedupe = {.ctx = NULL, .apply_once = pass_through},
                                    .max_attempts = 1000000, /* a reload is never dead-lettered
                                                                for a busy store */
                                    .backoff_max_ms = 5000,
                                    .extra_conf = max_poll != NULL ? extra : NULL};
    tsr_err_t rc = tsr_events_consumer_create(&o, &k->c, err);
    if (rc != TSR_OK) {
        return rc;
    }
    if (pthread_create(&k->thread, NULL, consumer_main, k) != 0) {
        return tsr_error_set(err, TSR_EINTERNAL, "cannot start the consumer thread");
    }
    k->running = true;
    return TSR_OK;
}

tsr_err_t tsr_reload_worker_start(const tsr_reload_worker_opts_t *opts, const char *bootstrap,
                                  tsr_reload_job_fn job, void *job_ud, tsr_reload_consumer_t **out,
                                  tsr_error_t *err) {
    char max_poll[32];
    if (opts == NULL || opts->store == NULL || job == NULL || bootstrap == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "worker: store, job and bootstrap required");
    }
    tsr_reload_consumer_t *k = tsr_xcalloc(1, sizeof *k);
    k->wopts = *opts;
    if (opts->owner != NULL) {
        snprintf(k->owner, sizeof k->owner, "%s", opts->owner);
        k->wopts.owner = k->owner;
    }
    k->job = job;
    k->job_ud = job_ud;
    int64_t max_run = opts->max_run_ms > 0 ? opts->max_run_ms : 3600000;
    int64_t poll = max_run + 120000;
    snprintf(max_poll, sizeof max_poll, "%lld", (long long)(poll < 86400000 ? poll : 86400000));
    tsr_err_t rc = tsr_rl__consumer_start(k, bootstrap, "reloaders", REQUEST_TOPICS, 1, on_request,
                                          max_poll, err);
    if (rc != TSR_OK) {
        tsr_reload_consumer_stop(k);
        return rc;
    }
    *out = k;
    return TSR_OK;
}

void tsr_reload_consumer_stop(tsr_reload_consumer_t *k) {
    if (k == NULL) {
        return;
    }
    if (k->c != NULL) {
        tsr_events_consumer_stop(k->c);
    }
    if (k->running) {
        pthread_join(k->thread, NULL);
    }
    tsr_events_consumer_destroy(k->c);
    free(k);
}
