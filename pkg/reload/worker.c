/*
 * pkg/reload worker state machine: one reload run = run lease (fencing token) → RELOADING
 * (compare-and-set, runToken = token, event reload.started) → job with a heartbeat thread
 * (renews the lease, notices cancel requests, lost leases and the run-time limit) → finish
 * exactly once: one compare-and-set that requires the stored runToken to still be ours and
 * writes the terminal status with reload.finished in the same store write. A worker that lost
 * its lease can never overwrite the result of the run that replaced it.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "reload_worker_int.h"

struct tsr_reload_run {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;     /* the job returned: heartbeat ends */
    bool canceled; /* CANCELING seen */
    bool lost;     /* lease renew failed or a newer runToken seen */
    bool exceeded; /* max run time passed */
    uint64_t token;
    tsr_buf_t log;
    uint64_t deadline_mono_ms;
    tsr_store_t *store;
    const char *tenant, *id;
    tsr_store_lease_t lease;
    int64_t ttl_ms, heartbeat_ms;
    /* The live log (guarded by mu): appended by the job, stored by the heartbeat thread at
     * most every flush_ms while dirty, in full by finish. */
    size_t log_max;
    bool log_truncated;
    bool log_dirty;
    int64_t flush_ms;
    uint64_t last_flush_mono_ms;
};

bool tsr_reload_run_should_stop(const tsr_reload_run_t *run) {
    tsr_reload_run_t *r = (tsr_reload_run_t *)run;
    pthread_mutex_lock(&r->mu);
    bool stop = r->canceled || r->lost || r->exceeded || tsr_mono_ms() >= r->deadline_mono_ms;
    pthread_mutex_unlock(&r->mu);
    return stop;
}

uint64_t tsr_reload_run_token(const tsr_reload_run_t *run) {
    return run->token;
}

const char *tsr_reload_run_id(const tsr_reload_run_t *run) {
    return run->id;
}

/* Append n bytes under mu: whole text while it fits; else the part that fits (cut at a UTF-8
 * character boundary) and the marker line, once. */
static void log_add_locked(tsr_reload_run_t *r, const char *p, size_t n) {
    if (r->log_truncated || n == 0) {
        return;
    }
    size_t room = r->log.len < r->log_max ? r->log_max - r->log.len : 0;
    if (n <= room) {
        (void)tsr_buf_append(&r->log, p, n);
    } else {
        size_t k = room;
        while (k > 0 && ((unsigned char)p[k] & 0xC0) == 0x80) {
            k--;
        }
        (void)tsr_buf_append(&r->log, p, k);
        if (r->log.len > 0 && r->log.data[r->log.len - 1] != '\n') {
            (void)tsr_buf_append_str(&r->log, "\n");
        }
        (void)tsr_buf_appendf(&r->log, "%s (%zu bytes)\n", TSR_RELOAD_LOG_TRUNCATED, r->log_max);
        r->log_truncated = true;
    }
    if (!r->log_dirty) {
        r->log_dirty = true;
        pthread_cond_signal(&r->cv); /* the heartbeat thread stores it (rate-bounded) */
    }
}

void tsr_reload_run_log_text(tsr_reload_run_t *run, const char *text, size_t len) {
    if (run == NULL || text == NULL) {
        return;
    }
    pthread_mutex_lock(&run->mu);
    log_add_locked(run, text, len);
    pthread_mutex_unlock(&run->mu);
}

void tsr_reload_run_log(tsr_reload_run_t *run, const char *fmt, ...) {
    char small[512], *big = NULL, *p = small;
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    size_t len = n > 0 ? (size_t)n : 0;
    if (len >= sizeof small) {
        /* A line longer than the whole log may be is cut at the cap anyway. */
        len = len < run->log_max + 1 ? len : run->log_max + 1;
        big = tsr_xmalloc(len + 2);
        (void)vsnprintf(big, len + 1, fmt, ap2);
        p = big;
    }
    va_end(ap2);
    va_end(ap);
    pthread_mutex_lock(&run->mu);
    log_add_locked(run, p, len);
    log_add_locked(run, "\n", 1);
    pthread_mutex_unlock(&run->mu);
    free(big);
}

static void sleep_ms(int64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Store the live log on the reload (no event): only while the reload is still this run's
 * and not ended. Called on the heartbeat thread without mu. A lost race (a cancel request
 * changed the version) leaves the log dirty for the next round. */
static void log_flush(tsr_reload_run_t *r) {
    pthread_mutex_lock(&r->mu);
    json_t *text = json_stringn(r->log.data != NULL ? r->log.data : "", r->log.len);
    r->log_dirty = false;
    r->last_flush_mono_ms = tsr_mono_ms();
    pthread_mutex_unlock(&r->mu);
    json_t *doc = NULL;
    if (text == NULL) {
        return; /* not UTF-8: stored by finish, or not at all */
    }
    tsr_err_t rc = tsr_store_doc_get(r->store, r->tenant, TSR_RL__C_RELOADS, r->id, &doc, NULL);
    if (rc == TSR_OK) {
        if (!tsr_reload_status_is_terminal(json_string_value(json_object_get(doc, "status"))) &&
            (uint64_t)json_integer_value(json_object_get(doc, "runToken")) == r->token) {
            json_t *patch = json_pack("{sO}", "log", text);
            rc = tsr_store_doc_patch(r->store, r->tenant, TSR_RL__C_RELOADS, r->id,
                                     json_integer_value(json_object_get(doc, "version")), patch,
                                     NULL, 0, NULL, NULL);
            json_decref(patch);
        }
        json_decref(doc);
    }
    json_decref(text);
    if (rc != TSR_OK) {
        pthread_mutex_lock(&r->mu);
        r->log_dirty = true;
        pthread_mutex_unlock(&r->mu);
    }
}

static void *heartbeat_main(void *arg) {
    tsr_reload_run_t *r = arg;
    uint64_t next_beat = tsr_mono_ms() + (uint64_t)r->heartbeat_ms;
    pthread_mutex_lock(&r->mu);
    while (!r->done) {
        uint64_t now = tsr_mono_ms(), wake = next_beat;
        uint64_t flush_at = r->last_flush_mono_ms + (uint64_t)r->flush_ms;
        if (r->log_dirty && flush_at < wake) {
            wake = flush_at;
        }
        if (now < wake) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t ns = (int64_t)ts.tv_nsec + (int64_t)(wake - now) * 1000000;
            ts.tv_sec += (time_t)(ns / 1000000000);
            ts.tv_nsec = (long)(ns % 1000000000);
            pthread_cond_timedwait(&r->cv, &r->mu, &ts);
            continue; /* woken: done, new log text, or time: look again */
        }
        if (r->log_dirty && now >= flush_at) {
            pthread_mutex_unlock(&r->mu);
            log_flush(r);
            pthread_mutex_lock(&r->mu);
        }
        if (now < next_beat) {
            continue;
        }
        next_beat = now + (uint64_t)r->heartbeat_ms;
        tsr_store_lease_t lease = r->lease;
        pthread_mutex_unlock(&r->mu);
        tsr_error_t err;
        json_t *doc = NULL;
        tsr_err_t rc = tsr_store_lease_renew(r->store, &lease, r->ttl_ms, &err);
        /* pkg/store's renew may clear the name it fills from itself (aliasing): keep ours. */
        snprintf(lease.name, sizeof lease.name, "%s", r->lease.name);
        bool lost = rc == TSR_ECONFLICT, canceled = false;
        if (tsr_store_doc_get(r->store, r->tenant, TSR_RL__C_RELOADS, r->id, &doc, NULL) ==
            TSR_OK) {
            const char *st = json_string_value(json_object_get(doc, "status"));
            canceled = st != NULL && strcmp(st, "CANCELING") == 0;
            lost =
                lost || (uint64_t)json_integer_value(json_object_get(doc, "runToken")) != r->token;
            json_decref(doc);
        }
        pthread_mutex_lock(&r->mu);
        if (rc == TSR_OK) {
            r->lease = lease;
        }
        r->lost = r->lost || lost;
        r->canceled = r->canceled || canceled;
        r->exceeded = r->exceeded || tsr_mono_ms() >= r->deadline_mono_ms;
        if (r->lost) {
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* Status name → whether the stored reload is finished. */
static bool doc_terminal(const json_t *doc) {
    return tsr_reload_status_is_terminal(json_string_value(json_object_get(doc, "status")));
}

/* The terminal write: CAS on version, runToken must be ours. */
static tsr_err_t finish(tsr_reload_run_t *run, const char *status, const char *error_msg,
                        int64_t started_ms, tsr_reload_run_outcome_t *outcome, tsr_error_t *err) {
    for (int attempt = 0; attempt < 16; attempt++) {
        json_t *doc = NULL;
        tsr_rl__ev_t ev;
        tsr_err_t rc =
            tsr_store_doc_get(run->store, run->tenant, TSR_RL__C_RELOADS, run->id, &doc, err);
        if (rc != TSR_OK) {
            return rc;
        }
        if (doc_terminal(doc) ||
            (uint64_t)json_integer_value(json_object_get(doc, "runToken")) != run->token) {
            json_decref(doc);
            *outcome = TSR_RELOAD_RUN_REFUSED;
            tsr_log_warn(NULL, "reload %s: result of run token %llu refused (stale)", run->id,
                         (unsigned long long)run->token);
            return TSR_OK;
        }
        const char *app = json_string_value(json_object_get(doc, "appId"));
        int64_t now = tsr_wall_ms();
        char t[25];
        tsr_rl__time(now, t);
        pthread_mutex_lock(&run->mu);
        json_t *patch =
            json_pack("{ss ss s:s# sb sn sI}", "status", status, "endTime", t, "log",
                      run->log.data != NULL ? run->log.data : "", (int)run->log.len, "active", 0,
                      "activeAppId", "engineTimeMs", (json_int_t)(now - started_ms));
        pthread_mutex_unlock(&run->mu);
        if (error_msg != NULL) {
            json_object_set_new(patch, "errorMessage", json_string(error_msg));
            json_object_set_new(patch, "errorCode",
                                json_string(strcmp(status, "EXCEEDED_LIMIT") == 0
                                                ? "RELOADS-EXCEEDED-LIMIT"
                                                : "RELOADS-FAILED"));
        }
        json_t *task = json_object_get(doc, "taskId");
        rc =
            tsr_rl__ev_make(&ev, TSR_RL__T_RESULTS, "reload.finished", run->tenant,
                            json_string_value(json_object_get(doc, "userId")), app,
                            json_pack("{ss ss ss sO sI}", "reloadId", run->id, "appId", app,
                                      "status", status, "taskId", task != NULL ? task : json_null(),
                                      "runToken", (json_int_t)run->token),
                            err);
        if (rc == TSR_OK) {
            tsr_store_event_t row = tsr_rl__ev_row(&ev);
            rc = tsr_store_doc_patch(run->store, run->tenant, TSR_RL__C_RELOADS, run->id,
                                     json_integer_value(json_object_get(doc, "version")), patch,
                                     &row, 1, NULL, err);
        }
        tsr_rl__ev_cleanup(&ev);
        json_decref(patch);
        json_decref(doc);
        if (rc == TSR_ECONFLICT) {
            continue; /* a cancel request or our own heartbeat changed it: look again */
        }
        if (rc == TSR_OK) {
            *outcome = TSR_RELOAD_RUN_FINISHED;
        }
        return rc;
    }
    return tsr_error_set(err, TSR_EUNAVAILABLE, "reload %s keeps changing", run->id);
}

/* QUEUED/RELOADING/CANCELING → RELOADING with our token. *cancel_first: a cancel was asked
 * before this run started. */
static tsr_err_t start(tsr_reload_run_t *run, const char *owner, bool *already_done,
                       bool *cancel_first, tsr_error_t *err) {
    for (int attempt = 0; attempt < 16; attempt++) {
        json_t *doc = NULL;
        tsr_rl__ev_t ev;
        tsr_err_t rc =
            tsr_store_doc_get(run->store, run->tenant, TSR_RL__C_RELOADS, run->id, &doc, err);
        if (rc != TSR_OK) {
            return rc;
        }
        if (doc_terminal(doc)) {
            json_decref(doc);
            *already_done = true;
            return TSR_OK;
        }
        if ((uint64_t)json_integer_value(json_object_get(doc, "runToken")) >= run->token) {
            json_decref(doc);
            return tsr_error_set(err, TSR_ECONFLICT, "reload %s has a newer run", run->id);
        }
        const char *st = json_string_value(json_object_get(doc, "status"));
        *cancel_first = st != NULL && strcmp(st, "CANCELING") == 0;
        const char *app = json_string_value(json_object_get(doc, "appId"));
        char t[25];
        tsr_rl__time(tsr_wall_ms(), t);
        json_t *patch =
            json_pack("{sI ss si}", "runToken", (json_int_t)run->token, "runOwner", owner,
                      "attempts", (int)json_integer_value(json_object_get(doc, "attempts")) + 1);
        if (!*cancel_first) {
            json_object_set_new(patch, "status", json_string("RELOADING"));
            json_object_set_new(patch, "startTime", json_string(t));
        }
        rc = tsr_rl__ev_make(&ev, TSR_RL__T_RESULTS, "reload.started", run->tenant,
                             json_string_value(json_object_get(doc, "userId")), app,
                             json_pack("{ss ss sI}", "reloadId", run->id, "appId", app, "runToken",
                                       (json_int_t)run->token),
                             err);
        if (rc == TSR_OK) {
            tsr_store_event_t row = tsr_rl__ev_row(&ev);
            rc = tsr_store_doc_patch(run->store, run->tenant, TSR_RL__C_RELOADS, run->id,
                                     json_integer_value(json_object_get(doc, "version")), patch,
                                     &row, *cancel_first ? 0 : 1, NULL, err);
        }
        tsr_rl__ev_cleanup(&ev);
        json_decref(patch);
        json_decref(doc);
        if (rc != TSR_ECONFLICT) {
            return rc;
        }
    }
    return tsr_error_set(err, TSR_EUNAVAILABLE, "reload %s keeps changing", run->id);
}

tsr_err_t tsr_reload_worker_run(const tsr_reload_worker_opts_t *opts, const char *tenant,
                                const char *reload_id, tsr_reload_job_fn job, void *job_ud,
                                tsr_reload_run_outcome_t *outcome, tsr_error_t *err) {
    char owner[TSR_STORE_LEASE_NAME_MAX + 1], name[TSR_STORE_LEASE_NAME_MAX + 1];
    tsr_reload_run_t run;
    tsr_err_t rc;
    bool held = false, hb = false, already = false, cancel_first = false;
    pthread_t thread;
    json_t *doc = NULL;
    *outcome = TSR_RELOAD_RUN_ALREADY_DONE;
    if (opts == NULL || opts->store == NULL || tenant == NULL || reload_id == NULL || job == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "worker: store, tenant, reload id and job needed");
    }
    /* A fresh owner per run: a restarted worker must not "renew" its dead run's lease. */
    char rid[25];
    tsr_id_new(rid);
    snprintf(owner, sizeof owner, "%.80s/%ld/%s",
             opts->owner != NULL && opts->owner[0] != '\0' ? opts->owner : "worker", (long)getpid(),
             rid);
    memset(&run, 0, sizeof run);
    pthread_mutex_init(&run.mu, NULL);
    pthread_cond_init(&run.cv, NULL);
    run.log_max = opts->log_max_bytes > 0 ? opts->log_max_bytes : TSR_RL__LOG_MAX;
    tsr_buf_init(&run.log, run.log_max + 256); /* + the marker line */
    run.flush_ms = opts->log_flush_ms > 0 ? opts->log_flush_ms : 500;
    run.store = opts->store;
    run.tenant = tenant;
    run.id = reload_id;
    run.ttl_ms = opts->lease_ttl_ms > 0 ? opts->lease_ttl_ms : 10000;
    run.heartbeat_ms = opts->heartbeat_ms > 0 ? opts->heartbeat_ms : run.ttl_ms / 3;
    int64_t max_run = opts->max_run_ms > 0 ? opts->max_run_ms : 3600000;
    int64_t wait = opts->lease_wait_ms > 0 ? opts->lease_wait_ms : run.ttl_ms * 2;
    uint64_t wait_until = tsr_mono_ms() + (uint64_t)wait;

    /* Take the run lease; a holder that died lets it expire and we get the next token. */
    for (;;) {
        if ((rc = tsr_store_doc_get(run.store, tenant, TSR_RL__C_RELOADS, reload_id, &doc, err)) !=
            TSR_OK) {
            goto out;
        }
        bool terminal = doc_terminal(doc);
        /* One lease per app, not per reload: with one active reload per app, its fencing
         * token grows across every run of every reload of the app, so the engine can fence
         * the app's version pointer with it. */
        const char *app = json_string_value(json_object_get(doc, "appId"));
        bool long_name = app == NULL || (size_t)snprintf(name, sizeof name, "reload-run/%s/%s",
                                                         tenant, app) >= sizeof name;
        json_decref(doc);
        doc = NULL;
        if (terminal) {
            goto out; /* duplicate delivery of a finished reload */
        }
        if (long_name) {
            rc = tsr_error_set(err, TSR_EINVAL, "worker: tenant or app id too long");
            goto out;
        }
        /* No err here: pkg/store formats its ECONFLICT message from a freed document. */
        rc = tsr_store_lease_acquire(run.store, name, owner, run.ttl_ms, &run.lease, NULL);
        if (rc != TSR_OK) {
            tsr_error_set(err, rc, "reload %s: run lease: %s", reload_id, tsr_strerror(rc));
        }
        if (rc == TSR_OK) {
            held = true;
            break;
        }
        if (rc != TSR_ECONFLICT || tsr_mono_ms() >= wait_until) {
            goto out;
        }
        sleep_ms(run.ttl_ms / 5 > 0 ? (run.ttl_ms / 5 < 200 ? run.ttl_ms / 5 : 200) : 1);
    }
    run.token = run.lease.token;
    if ((rc = start(&run, owner, &already, &cancel_first, err)) != TSR_OK || already) {
        goto out;
    }
    int64_t started = tsr_wall_ms();
    if (cancel_first) {
        rc = finish(&run, "CANCELED", NULL, started, outcome, err);
        goto out;
    }
    tsr_log_info(NULL, "reload %s: running (token %llu)", reload_id, (unsigned long long)run.token);
    run.deadline_mono_ms = tsr_mono_ms() + (uint64_t)max_run;
    if (pthread_create(&thread, NULL, heartbeat_main, &run) == 0) {
        hb = true;
    }
    const char *app = NULL;
    bool partial = false;
    if (tsr_store_doc_get(run.store, tenant, TSR_RL__C_RELOADS, reload_id, &doc, err) == TSR_OK) {
        app = json_string_value(json_object_get(doc, "appId"));
        partial = json_is_true(json_object_get(doc, "partial"));
    }
    tsr_error_t jerr;
    tsr_error_clear(&jerr);
    tsr_err_t jrc = app != NULL ? job(job_ud, &run, tenant, app, partial, &jerr)
                                : tsr_error_set(&jerr, TSR_EINTERNAL, "reload vanished");
    pthread_mutex_lock(&run.mu);
    run.done = true;
    pthread_cond_signal(&run.cv);
    pthread_mutex_unlock(&run.mu);
    if (hb) {
        pthread_join(thread, NULL);
        hb = false;
    }
    pthread_mutex_lock(&run.mu);
    bool canceled = run.canceled, exceeded = run.exceeded || tsr_mono_ms() >= run.deadline_mono_ms;
    pthread_mutex_unlock(&run.mu);
    if (canceled) {
        rc = finish(&run, "CANCELED", NULL, started, outcome, err);
    } else if (exceeded) {
        rc = finish(&run, "EXCEEDED_LIMIT", "the reload ran longer than its limit", started,
                    outcome, err);
    } else if (jrc == TSR_OK) {
        rc = finish(&run, "SUCCEEDED", NULL, started, outcome, err);
    } else {
        rc = finish(&run, "FAILED", jerr.msg[0] != '\0' ? jerr.msg : tsr_strerror(jrc), started,
                    outcome, err);
    }
out:
    json_decref(doc);
    if (held) {
        (void)tsr_store_lease_release(run.store, &run.lease, NULL);
    }
    tsr_buf_cleanup(&run.log);
    pthread_mutex_destroy(&run.mu);
    pthread_cond_destroy(&run.cv);
    return rc;
}
