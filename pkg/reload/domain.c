/*
 * pkg/reload domain: the reloads collection (queue, read, list, cancel), firing tasks under
 * their idempotency key, the scheduler leader (store lease) and result handling (auto-suspend,
 * chained triggers). Every write that announces something writes its event to the store
 * outbox in the same transaction. One active reload per app is a unique constraint on
 * "activeAppId" (present only while a reload is QUEUED, RELOADING or CANCELING).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "events.h"
#include "log.h"
#include "reload_int.h"

/* ---- collections ----------------------------------------------------------------------------- */

static const char *const RELOAD_IDX[] = {"appId", "status", "active", "createdMs", "taskId"};
static const char *const ACTIVE_APP[] = {"activeAppId"};
static const tsr_store_unique_t RELOAD_UNIQ[] = {{ACTIVE_APP, 1, false}};
static const char *const TASK_IDX[] = {"appId", "nextFireMs", "chainTaskId", "createdMs"};

static const tsr_store_collection_t COLLECTIONS[] = {
    {.name = TSR_RL__C_RELOADS,
     .indexes = RELOAD_IDX,
     .n_indexes = 5,
     .uniques = RELOAD_UNIQ,
     .n_uniques = 1},
    {.name = TSR_RL__C_TASKS, .indexes = TASK_IDX, .n_indexes = 4},
    {.name = TSR_RL__C_FIRES},
};

const tsr_store_collection_t *tsr_reload_collections(size_t *n) {
    *n = sizeof COLLECTIONS / sizeof COLLECTIONS[0];
    return COLLECTIONS;
}

/* ---- views ----------------------------------------------------------------------------------- */

/* Members kept in the store that the API does not show. */
static const char *const RELOAD_HIDDEN[] = {"active",      "activeAppId", "createdMs",
                                            "runToken",    "runOwner",    "version",
                                            "heartbeatMs", "log",         "requeuedMs"};
static const char *const TASK_HIDDEN[] = {"nextFireMs",          "chainTaskId",
                                          "createdMs",           "version",
                                          "consecutiveFailures", "lastResultReloadId"};

json_t *tsr_rl__reload_view(const json_t *doc, const char *base_url, bool with_log) {
    json_t *v = json_deep_copy(doc);
    for (size_t i = 0; i < sizeof RELOAD_HIDDEN / sizeof RELOAD_HIDDEN[0]; i++) {
        json_object_del(v, RELOAD_HIDDEN[i]);
    }
    if (with_log) {
        json_t *log = json_object_get(doc, "log");
        json_object_set_new(v, "log", log != NULL ? json_incref(log) : json_string(""));
    }
    const char *id = json_string_value(json_object_get(doc, "id"));
    json_object_set_new(v, "links",
                        json_pack("{s{s:s++}}", "self", "href", base_url != NULL ? base_url : "",
                                  "/api/v1/reloads/", id != NULL ? id : ""));
    return v;
}

json_t *tsr_rl__task_view(const json_t *doc, const char *base_url) {
    json_t *v = json_deep_copy(doc);
    for (size_t i = 0; i < sizeof TASK_HIDDEN / sizeof TASK_HIDDEN[0]; i++) {
        json_object_del(v, TASK_HIDDEN[i]);
    }
    json_object_set_new(v, "type", json_string("scheduled_reload"));
    const char *id = json_string_value(json_object_get(doc, "id"));
    json_object_set_new(v, "links",
                        json_pack("{s{s:s++}}", "self", "href", base_url != NULL ? base_url : "",
                                  "/api/v1/reload-tasks/", id != NULL ? id : ""));
    return v;
}

/* ---- service --------------------------------------------------------------------------------- */

static int64_t wall_now(void) {
    return tsr_wall_ms();
}

tsr_err_t tsr_reload_create(const tsr_reload_opts_t *opts, tsr_reload_t **out, tsr_error_t *err) {
    if (opts == NULL || opts->store == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "reload: a store is required");
    }
    tsr_reload_t *r = tsr_xcalloc(1, sizeof *r);
    r->store = opts->store;
    r->access = opts->access;
    r->access_ud = opts->access_ud;
    r->access_ud_free = opts->access_ud_free;
    r->tenant_max_active = opts->tenant_max_active > 0 ? opts->tenant_max_active : 10;
    r->max_failures = opts->max_failures > 0 ? opts->max_failures : 5;
    r->misfire = opts->misfire;
    r->misfire_grace_ms = opts->misfire_grace_ms > 0 ? opts->misfire_grace_ms : 60000;
    r->lease_ttl_ms = opts->lease_ttl_ms > 0 ? opts->lease_ttl_ms : 10000;
    r->stuck_grace_ms = opts->stuck_grace_ms > 0 ? opts->stuck_grace_ms : 60000;
    r->now_ms = opts->now_ms != NULL ? opts->now_ms : wall_now;
    if (opts->owner != NULL && opts->owner[0] != '\0') {
        snprintf(r->owner, sizeof r->owner, "%s", opts->owner);
    } else {
        char id[25];
        tsr_id_new(id);
        snprintf(r->owner, sizeof r->owner, "reload-%ld-%s", (long)getpid(), id);
    }
    r->access_ttl_ms = opts->access_ttl_ms != 0 ? opts->access_ttl_ms : 10000;
    if (r->access != NULL && r->access_ttl_ms > 0) {
        r->access_cache = tsr_xcalloc(TSR_RL__ACCESS_SLOTS, sizeof *r->access_cache);
    }
    pthread_mutex_init(&r->access_mu, NULL);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    *out = r;
    return TSR_OK;
}

void tsr_reload_destroy(tsr_reload_t *r) {
    if (r == NULL) {
        return;
    }
    tsr_reload_scheduler_stop(r);
    if (r->access_ud_free) {
        free(r->access_ud);
    }
    free(r->access_cache);
    pthread_mutex_destroy(&r->access_mu);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

/* ---- access decisions (cached) ----------------------------------------------------------------
 */

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    }
    return h;
}

tsr_err_t tsr_rl__access(tsr_reload_t *r, const tsr_reload_caller_t *who, const char *app,
                         tsr_error_t *err) {
    char key[TSR_RL__ACCESS_KEY_MAX];
    if (r->access == NULL) {
        return TSR_OK;
    }
    int n = snprintf(key, sizeof key, "%s\n%s\n%s\n%s", who->tenant, who->user,
                     who->roles != NULL ? who->roles : "", app);
    bool cacheable = r->access_cache != NULL && n > 0 && (size_t)n < sizeof key;
    tsr_rl__access_slot_t *slot =
        cacheable ? &r->access_cache[fnv1a(key) % TSR_RL__ACCESS_SLOTS] : NULL;
    uint64_t gen = 0;
    if (slot != NULL) {
        pthread_mutex_lock(&r->access_mu);
        gen = r->access_gen;
        if (strcmp(slot->key, key) == 0 && slot->expires_mono_ms > tsr_mono_ms()) {
            tsr_err_t rc = slot->rc;
            if (rc != TSR_OK) {
                tsr_error_set(err, rc, "%s", slot->msg);
            }
            pthread_mutex_unlock(&r->access_mu);
            return rc;
        }
        pthread_mutex_unlock(&r->access_mu);
    }
    tsr_error_t e;
    tsr_error_clear(&e);
    tsr_err_t rc = r->access(r->access_ud, who, app, &e);
    if (slot != NULL && (rc == TSR_OK || rc == TSR_EFORBIDDEN || rc == TSR_ENOTFOUND)) {
        pthread_mutex_lock(&r->access_mu);
        /* An event arrived while spaces was asked: the answer may predate it, do not keep it. */
        if (r->access_gen == gen) {
            snprintf(slot->key, sizeof slot->key, "%s", key);
            slot->rc = rc;
            snprintf(slot->msg, sizeof slot->msg, "%s", e.msg);
            slot->expires_mono_ms = tsr_mono_ms() + (uint64_t)r->access_ttl_ms;
        }
        pthread_mutex_unlock(&r->access_mu);
    }
    if (rc != TSR_OK) {
        tsr_error_set(err, rc, "%s", e.msg);
    }
    return rc;
}

void tsr_reload_access_invalidate(tsr_reload_t *r) {
    if (r->access_cache == NULL) {
        return;
    }
    pthread_mutex_lock(&r->access_mu);
    memset(r->access_cache, 0, TSR_RL__ACCESS_SLOTS * sizeof *r->access_cache);
    r->access_gen++;
    pthread_mutex_unlock(&r->access_mu);
}

size_t tsr_reload_access_invalidate_tenant(tsr_reload_t *r, const char *tenant, const char *app) {
    size_t dropped = 0, tn, an = app != NULL ? strlen(app) : 0;
    if (r->access_cache == NULL || tenant == NULL || (tn = strlen(tenant)) == 0) {
        return 0;
    }
    pthread_mutex_lock(&r->access_mu);
    for (size_t i = 0; i < TSR_RL__ACCESS_SLOTS; i++) {
        tsr_rl__access_slot_t *slot = &r->access_cache[i];
        size_t kn = strlen(slot->key);
        /* key: tenant \n user \n roles \n app (ids have no newline) */
        if (kn == 0 || kn <= tn || strncmp(slot->key, tenant, tn) != 0 || slot->key[tn] != '\n') {
            continue;
        }
        if (app != NULL &&
            (kn <= an || slot->key[kn - an - 1] != '\n' || strcmp(slot->key + kn - an, app) != 0)) {
            continue;
        }
        memset(slot, 0, sizeof *slot);
        dropped++;
    }
    r->access_gen++;
    pthread_mutex_unlock(&r->access_mu);
    return dropped;
}

tsr_err_t tsr_reload_ready(void *ud, tsr_error_t *err) {
    tsr_reload_t *r = ud;
    return tsr_store_ping(r->store, err);
}

/* ---- reloads --------------------------------------------------------------------------------- */

/* The reload document and its reload.requested event, created through st (a store or a
 * transaction view). TSR_ECONFLICT: the app has an active reload. */
static tsr_err_t reload_insert(tsr_reload_t *r, tsr_store_t *st, const char *tenant,
                               const char *user, const char *app_id, bool partial, const char *type,
                               const char *task_id, int64_t scheduled_ms, json_t **out,
                               tsr_error_t *err) {
    char id[25], now[25];
    tsr_rl__ev_t ev;
    int64_t now_ms = r->now_ms();
    tsr_id_new(id);
    tsr_rl__time(now_ms, now);
    json_t *doc = json_pack("{ss ss ss ss ss sb ss sI sb ss si}", "appId", app_id, "tenantId",
                            tenant, "userId", user != NULL ? user : "", "status", "QUEUED", "type",
                            type, "partial", partial, "creationTime", now, "createdMs",
                            (json_int_t)now_ms, "active", 1, "activeAppId", app_id, "attempts", 0);
    json_object_set_new(doc, "resourceType", json_string(task_id != NULL ? "reload-tasks" : "api"));
    if (task_id != NULL) {
        char when[25];
        tsr_rl__time(scheduled_ms, when);
        json_object_set_new(doc, "taskId", json_string(task_id));
        json_object_set_new(doc, "resourceId", json_string(task_id));
        json_object_set_new(doc, "scheduledTime", json_string(when));
    }
    tsr_err_t rc =
        tsr_rl__ev_make(&ev, TSR_RL__T_REQUESTS, "reload.requested", tenant, user, app_id,
                        json_pack("{ss ss sb ss}", "reloadId", id, "appId", app_id, "partial",
                                  partial, "type", type),
                        err);
    if (rc == TSR_OK) {
        tsr_store_event_t row = tsr_rl__ev_row(&ev);
        rc = tsr_store_doc_create(st, tenant, TSR_RL__C_RELOADS, id, doc, &row, 1, out, err);
        if (rc == TSR_ECONFLICT) {
            tsr_error_set(err, TSR_ECONFLICT,
                          "RELOADS-409: app %s already has a reload queued or running; one "
                          "reload per app at a time",
                          app_id);
        }
    }
    tsr_rl__ev_cleanup(&ev);
    json_decref(doc);
    return rc;
}

static tsr_err_t count_active(tsr_reload_t *r, const char *tenant, size_t limit, size_t *n,
                              tsr_error_t *err) {
    tsr_store_page_t page = {0};
    tsr_store_filter_t f = {"active", TSR_STORE_EQ, json_true()};
    tsr_store_query_t q = {.filters = &f, .n_filters = 1, .limit = limit};
    tsr_err_t rc = tsr_store_doc_list(r->store, tenant, TSR_RL__C_RELOADS, &q, &page, err);
    *n = rc == TSR_OK ? json_array_size(page.items) : 0;
    tsr_store_page_cleanup(&page);
    return rc;
}

tsr_err_t tsr_reload_request(tsr_reload_t *r, const tsr_reload_caller_t *who, const char *app_id,
                             bool partial, const char *type, json_t **out, tsr_error_t *err) {
    size_t n = 0;
    tsr_err_t rc;
    if (app_id == NULL || app_id[0] == '\0' || strlen(app_id) > TSR_STORE_ID_MAX) {
        return tsr_error_set(err, TSR_EINVAL, "appId: required");
    }
    if ((rc = tsr_rl__access(r, who, app_id, err)) != TSR_OK) {
        return rc;
    }
    /* Soft limit: two requests racing may both pass; the per-app constraint is exact. */
    if ((rc = count_active(r, who->tenant, r->tenant_max_active, &n, err)) != TSR_OK) {
        return rc;
    }
    if (n >= r->tenant_max_active) {
        return tsr_error_set(err, TSR_ERATELIMITED,
                             "RELOADS-429: the tenant has %zu active reloads (limit %u); retry "
                             "when one ends",
                             n, r->tenant_max_active);
    }
    return reload_insert(r, r->store, who->tenant, who->user, app_id, partial, type, NULL, 0, out,
                         err);
}

tsr_err_t tsr_rl__reload_get(tsr_reload_t *r, const char *tenant, const char *id, json_t **out,
                             tsr_error_t *err) {
    if (id == NULL || id[0] == '\0' || strlen(id) > TSR_STORE_ID_MAX) {
        return tsr_error_set(err, TSR_ENOTFOUND, "reload not found");
    }
    tsr_err_t rc = tsr_store_doc_get(r->store, tenant, TSR_RL__C_RELOADS, id, out, err);
    if (rc == TSR_ENOTFOUND) {
        tsr_error_set(err, TSR_ENOTFOUND, "reload not found");
    }
    return rc;
}

tsr_err_t tsr_rl__reload_list(tsr_reload_t *r, const char *tenant, const char *app_id,
                              const char *status, size_t limit, const char *cursor,
                              tsr_store_page_t *page, tsr_error_t *err) {
    tsr_store_filter_t f[2];
    size_t nf = 0;
    json_t *a = app_id != NULL ? json_string(app_id) : NULL;
    json_t *s = status != NULL ? json_string(status) : NULL;
    if (a != NULL) {
        f[nf++] = (tsr_store_filter_t){"appId", TSR_STORE_EQ, a};
    }
    if (s != NULL) {
        f[nf++] = (tsr_store_filter_t){"status", TSR_STORE_EQ, s};
    }
    tsr_store_query_t q = {.filters = f,
                           .n_filters = nf,
                           .sort = "createdMs",
                           .descending = true,
                           .limit = limit,
                           .cursor = cursor};
    tsr_err_t rc = tsr_store_doc_list(r->store, tenant, TSR_RL__C_RELOADS, &q, page, err);
    json_decref(a);
    json_decref(s);
    return rc;
}

tsr_err_t tsr_rl__reload_cancel(tsr_reload_t *r, const tsr_reload_caller_t *who, const char *id,
                                const char **status_out, tsr_error_t *err) {
    for (int attempt = 0; attempt < 8; attempt++) {
        json_t *doc = NULL;
        tsr_rl__ev_t ev;
        tsr_err_t rc = tsr_rl__reload_get(r, who->tenant, id, &doc, err);
        if (rc != TSR_OK) {
            return rc;
        }
        const char *st = json_string_value(json_object_get(doc, "status"));
        const char *app = json_string_value(json_object_get(doc, "appId"));
        int64_t ver = json_integer_value(json_object_get(doc, "version"));
        if (tsr_reload_status_is_terminal(st)) {
            json_decref(doc);
            return tsr_error_set(err, TSR_ECONFLICT, "RELOADS-409: the reload has already ended");
        }
        if (st != NULL && strcmp(st, "CANCELING") == 0) {
            json_decref(doc);
            *status_out = "CANCELING";
            return TSR_OK;
        }
        bool queued = st != NULL && strcmp(st, "QUEUED") == 0;
        char now[25];
        tsr_rl__time(r->now_ms(), now);
        json_t *patch;
        if (queued) {
            /* Nobody runs it yet: it ends here (the worker will find it terminal). */
            patch = json_pack("{ss ss sb sn}", "status", "CANCELED", "endTime", now, "active", 0,
                              "activeAppId");
            rc = tsr_rl__ev_make(
                &ev, TSR_RL__T_RESULTS, "reload.finished", who->tenant, who->user, app,
                json_pack("{ss ss ss sO}", "reloadId", id, "appId", app, "status", "CANCELED",
                          "taskId",
                          json_object_get(doc, "taskId") != NULL ? json_object_get(doc, "taskId")
                                                                 : json_null()),
                err);
        } else {
            patch = json_pack("{ss}", "status", "CANCELING");
            rc = tsr_rl__ev_make(&ev, TSR_RL__T_REQUESTS, "reload.cancelrequested", who->tenant,
                                 who->user, app, json_pack("{ss ss}", "reloadId", id, "appId", app),
                                 err);
        }
        if (rc == TSR_OK) {
            tsr_store_event_t row = tsr_rl__ev_row(&ev);
            rc = tsr_store_doc_patch(r->store, who->tenant, TSR_RL__C_RELOADS, id, ver, patch, &row,
                                     1, NULL, err);
        }
        tsr_rl__ev_cleanup(&ev);
        json_decref(patch);
        json_decref(doc);
        if (rc == TSR_ECONFLICT) {
            continue; /* the worker moved it meanwhile: decide again */
        }
        if (rc == TSR_OK) {
            *status_out = queued ? "CANCELED" : "CANCELING";
        }
        return rc;
    }
    return tsr_error_set(err, TSR_EUNAVAILABLE, "the reload keeps changing; retry");
}

/* ---- firing ---------------------------------------------------------------------------------- */

tsr_err_t tsr_rl__fire(tsr_reload_t *r, const json_t *task, const char *key, int64_t scheduled_ms,
                       unsigned missed, const json_t *task_patch, bool *fired, tsr_error_t *err) {
    const char *tenant = json_string_value(json_object_get(task, "tenantId"));
    const char *task_id = json_string_value(json_object_get(task, "id"));
    const char *app = json_string_value(json_object_get(task, "appId"));
    const char *user = json_string_value(json_object_get(task, "userId"));
    bool partial = json_is_true(json_object_get(task, "partial"));
    int64_t ver = json_integer_value(json_object_get(task, "version"));
    char when[25];
    *fired = false;
    tsr_rl__time(scheduled_ms, when);
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0 queues a reload; pass 1 (the app was busy) records the fire as skipped. */
        tsr_store_t *tx = NULL;
        json_t *reload = NULL;
        tsr_err_t rc = tsr_store_txn_begin(r->store, &tx, err);
        if (rc != TSR_OK) {
            return rc;
        }
        if (pass == 0) {
            rc = reload_insert(r, tx, tenant, user, app, partial, "chronos", task_id, scheduled_ms,
                               &reload, err);
        }
        if (rc == TSR_OK) {
            json_t *fire = json_pack("{ss ss sI si ss}", "taskId", task_id, "scheduledTime", when,
                                     "scheduledMs", (json_int_t)scheduled_ms, "missed", (int)missed,
                                     "outcome", pass == 0 ? "QUEUED" : "SKIPPED_APP_BUSY");
            if (reload != NULL) {
                json_object_set(fire, "reloadId", json_object_get(reload, "id"));
            }
            pthread_mutex_lock(&r->mu);
            json_object_set_new(fire, "leaderToken", json_integer((json_int_t)r->leader.token));
            pthread_mutex_unlock(&r->mu);
            rc = tsr_store_doc_create(tx, tenant, TSR_RL__C_FIRES, key, fire, NULL, 0, NULL, err);
            json_decref(fire);
        }
        if (rc == TSR_OK && task_patch != NULL) {
            rc = tsr_store_doc_patch(tx, tenant, TSR_RL__C_TASKS, task_id, ver, task_patch, NULL, 0,
                                     NULL, err);
        }
        bool busy = pass == 0 && rc == TSR_ECONFLICT && reload == NULL;
        if (rc != TSR_OK) {
            tsr_store_txn_rollback(tx);
            json_decref(reload);
            if (busy) {
                tsr_log_info(NULL, "reload task %s: app %s busy, fire %s skipped", task_id, app,
                             key);
                continue;
            }
            return rc;
        }
        rc = tsr_store_txn_commit(tx, err);
        if (rc == TSR_OK && reload != NULL) {
            *fired = true;
            tsr_log_info(NULL, "reload task %s fired (%s) as reload %s", task_id, key,
                         json_string_value(json_object_get(reload, "id")));
        }
        json_decref(reload);
        return rc;
    }
    return TSR_OK;
}

/* The stored next fire after a decision, as a merge patch (null removes). */
static json_t *next_patch(int64_t next_ms, int64_t last_ms, bool completed) {
    json_t *p = json_object();
    if (next_ms != TSR_RELOAD_NEVER) {
        char t[25];
        tsr_rl__time(next_ms, t);
        json_object_set_new(p, "nextFireMs", json_integer((json_int_t)next_ms));
        json_object_set_new(p, "nextExecutionTime", json_string(t));
    } else {
        json_object_set_new(p, "nextFireMs", json_null());
        json_object_set_new(p, "nextExecutionTime", json_null());
        if (completed) {
            json_object_set_new(p, "state", json_string("Completed"));
        }
    }
    if (last_ms != TSR_RELOAD_NEVER) {
        char t[25];
        tsr_rl__time(last_ms, t);
        json_object_set_new(p, "lastExecutionTime", json_string(t));
    }
    return p;
}

/* Fire one due task (stored nextFireMs <= now). */
static tsr_err_t fire_due(tsr_reload_t *r, const json_t *task, int64_t now, bool *fired,
                          tsr_error_t *err) {
    tsr_reload_sched_t *s = NULL;
    tsr_reload_decision_t d;
    char key[TSR_STORE_ID_MAX + 1];
    const char *task_id = json_string_value(json_object_get(task, "id"));
    int64_t due = json_integer_value(json_object_get(task, "nextFireMs"));
    const char *pol = json_string_value(json_object_get(task, "misfirePolicy"));
    tsr_reload_misfire_t policy = r->misfire;
    *fired = false;
    if (pol != NULL) {
        policy = strcmp(pol, "SKIP") == 0 ? TSR_RELOAD_MISFIRE_SKIP : TSR_RELOAD_MISFIRE_RUN_ONCE;
    }
    tsr_err_t rc = tsr_rl__task_sched(task, due, &s, err);
    if (rc != TSR_OK) {
        return rc;
    }
    tsr_reload_decide(s, due, now, policy, r->misfire_grace_ms, &d);
    tsr_reload_sched_destroy(s);
    snprintf(key, sizeof key, "%s@%lld", task_id, (long long)due);
    bool chained = json_object_get(task, "chainTaskId") != NULL;
    json_t *patch = next_patch(d.next_ms, d.fire ? due : TSR_RELOAD_NEVER, !chained);
    if (d.fire) {
        rc = tsr_rl__fire(r, task, key, due, d.missed, patch, fired, err);
    } else {
        /* Skipped by policy: record the decision under the same key so it is final. */
        tsr_store_t *tx = NULL;
        const char *tenant = json_string_value(json_object_get(task, "tenantId"));
        char when[25];
        tsr_rl__time(due, when);
        json_t *fire =
            json_pack("{ss ss sI si ss}", "taskId", task_id, "scheduledTime", when, "scheduledMs",
                      (json_int_t)due, "missed", (int)d.missed, "outcome", "SKIPPED_MISFIRE");
        if ((rc = tsr_store_txn_begin(r->store, &tx, err)) == TSR_OK) {
            rc = tsr_store_doc_create(tx, tenant, TSR_RL__C_FIRES, key, fire, NULL, 0, NULL, err);
            if (rc == TSR_OK) {
                rc = tsr_store_doc_patch(tx, tenant, TSR_RL__C_TASKS, task_id,
                                         json_integer_value(json_object_get(task, "version")),
                                         patch, NULL, 0, NULL, err);
            }
            if (rc == TSR_OK) {
                rc = tsr_store_txn_commit(tx, err);
            } else {
                tsr_store_txn_rollback(tx);
            }
        }
        json_decref(fire);
    }
    if (rc == TSR_ECONFLICT) {
        /* The key exists (another leader fired it) or the task changed: re-read and, if the
         * stored next fire is still this one, move it on; the next round decides again. */
        json_t *cur = NULL;
        const char *tenant = json_string_value(json_object_get(task, "tenantId"));
        json_t *fire = NULL;
        if (tsr_store_doc_get(r->store, tenant, TSR_RL__C_FIRES, key, &fire, NULL) == TSR_OK &&
            tsr_store_doc_get(r->store, tenant, TSR_RL__C_TASKS, task_id, &cur, NULL) == TSR_OK &&
            json_integer_value(json_object_get(cur, "nextFireMs")) == due) {
            (void)tsr_store_doc_patch(r->store, tenant, TSR_RL__C_TASKS, task_id,
                                      json_integer_value(json_object_get(cur, "version")), patch,
                                      NULL, 0, NULL, NULL);
        }
        json_decref(fire);
        json_decref(cur);
        rc = TSR_OK;
    }
    json_decref(patch);
    return rc;
}

/* ---- scheduler ------------------------------------------------------------------------------- */

static tsr_err_t leader_hold(tsr_reload_t *r, bool *leader, tsr_error_t *err) {
    tsr_store_lease_t lease;
    pthread_mutex_lock(&r->mu);
    bool held = r->is_leader;
    lease = r->leader;
    pthread_mutex_unlock(&r->mu);
    /* acquire gets no err: pkg/store formats its ECONFLICT message from a freed document. */
    tsr_err_t rc = held ? tsr_store_lease_renew(r->store, &lease, r->lease_ttl_ms, err)
                        : tsr_store_lease_acquire(r->store, TSR_RL__LEADER_LEASE, r->owner,
                                                  r->lease_ttl_ms, &lease, NULL);
    if (!held && rc != TSR_OK) {
        tsr_error_set(err, rc, "reload scheduler: leader lease: %s", tsr_strerror(rc));
    }
    /* pkg/store's renew may clear the name it fills from itself (aliasing): keep ours. */
    snprintf(lease.name, sizeof lease.name, "%s", TSR_RL__LEADER_LEASE);
    pthread_mutex_lock(&r->mu);
    if (rc == TSR_OK) {
        if (!held) {
            tsr_log_info(NULL, "reload scheduler: leader (token %llu)",
                         (unsigned long long)lease.token);
        }
        r->leader = lease;
        r->is_leader = true;
    } else if (rc == TSR_ECONFLICT) {
        if (held) {
            tsr_log_warn(NULL, "reload scheduler: leadership lost");
        }
        r->is_leader = false;
        rc = TSR_OK;
    } else {
        r->is_leader = false;
    }
    *leader = r->is_leader;
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* Queue again a RELOADING reload whose run lease lapsed long ago (wall clock: leases are). */
static tsr_err_t requeue_stuck(tsr_reload_t *r, const json_t *doc, tsr_error_t *err) {
    const char *tenant = json_string_value(json_object_get(doc, "tenantId"));
    const char *id = json_string_value(json_object_get(doc, "id"));
    const char *app = json_string_value(json_object_get(doc, "appId"));
    char name[TSR_STORE_LEASE_NAME_MAX + 1];
    tsr_store_lease_t lease;
    int64_t now = tsr_wall_ms();
    if (tenant == NULL || id == NULL || app == NULL ||
        json_integer_value(json_object_get(doc, "requeuedMs")) + r->stuck_grace_ms > now) {
        return TSR_OK;
    }
    snprintf(name, sizeof name, "reload-run/%s/%s", tenant, app);
    tsr_err_t rc = tsr_store_lease_get(r->store, name, &lease, NULL);
    /* lease_get blanks the owner of an expired lease: judge by its expiry alone. */
    if (rc == TSR_OK && lease.expires_ms + r->stuck_grace_ms > now) {
        return TSR_OK; /* a worker holds it, or held it recently */
    }
    tsr_rl__ev_t ev;
    rc = tsr_rl__ev_make(&ev, TSR_RL__T_REQUESTS, "reload.requested", tenant, NULL, app,
                         json_pack("{ss ss sO sb}", "reloadId", id, "appId", app, "partial",
                                   json_object_get(doc, "partial") != NULL
                                       ? json_object_get(doc, "partial")
                                       : json_false(),
                                   "requeued", 1),
                         err);
    if (rc == TSR_OK) {
        tsr_store_event_t row = tsr_rl__ev_row(&ev);
        json_t *patch = json_pack("{sI}", "requeuedMs", (json_int_t)now);
        rc = tsr_store_doc_patch(r->store, tenant, TSR_RL__C_RELOADS, id,
                                 json_integer_value(json_object_get(doc, "version")), patch, &row,
                                 1, NULL, err);
        json_decref(patch);
        if (rc == TSR_OK) {
            tsr_log_warn(NULL, "reload %s: its worker is gone; queued again", id);
        } else if (rc == TSR_ECONFLICT) {
            rc = TSR_OK; /* it moved meanwhile: look again next round */
        }
    }
    tsr_rl__ev_cleanup(&ev);
    return rc;
}

static void sweep_stuck(tsr_reload_t *r) {
    json_t *st = json_string("RELOADING");
    tsr_store_filter_t f = {"status", TSR_STORE_EQ, st};
    tsr_store_query_t q = {.filters = &f, .n_filters = 1, .limit = 100};
    tsr_store_page_t page = {0};
    tsr_error_t err;
    if (tsr_store_platform_doc_list(r->store, TSR_RL__C_RELOADS, &q, &page, &err) == TSR_OK) {
        size_t i;
        json_t *d;
        json_array_foreach(page.items, i, d) {
            if (requeue_stuck(r, d, &err) != TSR_OK) {
                tsr_log_warn(NULL, "reload sweep: %s", err.msg);
            }
        }
    }
    tsr_store_page_cleanup(&page);
    json_decref(st);
}

tsr_err_t tsr_reload_scheduler_tick(tsr_reload_t *r, bool *leader, unsigned *fired,
                                    tsr_error_t *err) {
    bool lead = false;
    unsigned n = 0;
    tsr_err_t rc = leader_hold(r, &lead, err);
    if (leader != NULL) {
        *leader = lead;
    }
    if (fired != NULL) {
        *fired = 0;
    }
    if (rc != TSR_OK || !lead) {
        return rc;
    }
    int64_t now = r->now_ms();
    json_t *lim = json_integer((json_int_t)now);
    tsr_store_filter_t f = {"nextFireMs", TSR_STORE_LE, lim};
    tsr_store_query_t q = {.filters = &f, .n_filters = 1, .sort = "nextFireMs", .limit = 100};
    tsr_store_page_t page = {0};
    rc = tsr_store_platform_doc_list(r->store, TSR_RL__C_TASKS, &q, &page, err);
    json_decref(lim);
    if (rc != TSR_OK) {
        return rc;
    }
    size_t i;
    json_t *task;
    json_array_foreach(page.items, i, task) {
        bool one = false;
        const char *state = json_string_value(json_object_get(task, "state"));
        if (state == NULL || strcmp(state, "Enabled") != 0) {
            continue;
        }
        tsr_error_t e2;
        tsr_err_t frc = fire_due(r, task, now, &one, &e2);
        if (frc != TSR_OK) {
            tsr_log_warn(NULL, "reload task %s: fire failed: %s",
                         json_string_value(json_object_get(task, "id")), e2.msg);
        }
        n += one ? 1u : 0u;
    }
    tsr_store_page_cleanup(&page);
    sweep_stuck(r);
    if (fired != NULL) {
        *fired = n;
    }
    return TSR_OK;
}

static void *scheduler_main(void *arg) {
    tsr_reload_t *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        pthread_mutex_unlock(&r->mu);
        tsr_error_t err;
        if (tsr_reload_scheduler_tick(r, NULL, NULL, &err) != TSR_OK) {
            tsr_log_warn(NULL, "reload scheduler: %s", err.msg);
        }
        pthread_mutex_lock(&r->mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = (int64_t)ts.tv_nsec + (int64_t)r->interval_ms * 1000000;
        ts.tv_sec += (time_t)(ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        if (!r->stopping) {
            pthread_cond_timedwait(&r->cv, &r->mu, &ts);
        }
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

tsr_err_t tsr_reload_scheduler_start(tsr_reload_t *r, int interval_ms, tsr_error_t *err) {
    pthread_mutex_lock(&r->mu);
    if (r->running) {
        pthread_mutex_unlock(&r->mu);
        return TSR_OK;
    }
    r->interval_ms = interval_ms > 0 ? interval_ms : 1000;
    r->stopping = false;
    if (pthread_create(&r->thread, NULL, scheduler_main, r) != 0) {
        pthread_mutex_unlock(&r->mu);
        return tsr_error_set(err, TSR_EINTERNAL, "cannot start the scheduler thread");
    }
    r->running = true;
    pthread_mutex_unlock(&r->mu);
    return TSR_OK;
}

void tsr_reload_scheduler_stop(tsr_reload_t *r) {
    pthread_mutex_lock(&r->mu);
    bool running = r->running;
    r->stopping = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (running) {
        pthread_join(r->thread, NULL);
    }
    pthread_mutex_lock(&r->mu);
    r->running = false;
    if (r->is_leader) {
        tsr_store_lease_t lease = r->leader;
        r->is_leader = false;
        pthread_mutex_unlock(&r->mu);
        (void)tsr_store_lease_release(r->store, &lease, NULL);
        return;
    }
    pthread_mutex_unlock(&r->mu);
}

/* ---- results --------------------------------------------------------------------------------- */

static tsr_err_t count_result(tsr_reload_t *r, const char *tenant, const char *task_id,
                              const char *reload_id, const char *status, const char *app,
                              tsr_error_t *err) {
    for (int attempt = 0; attempt < 8; attempt++) {
        json_t *task = NULL;
        tsr_err_t rc = tsr_store_doc_get(r->store, tenant, TSR_RL__C_TASKS, task_id, &task, err);
        if (rc == TSR_ENOTFOUND) {
            return TSR_OK; /* deleted meanwhile */
        }
        if (rc != TSR_OK) {
            return rc;
        }
        const char *last = json_string_value(json_object_get(task, "lastResultReloadId"));
        if ((last != NULL && strcmp(last, reload_id) == 0) || strcmp(status, "CANCELED") == 0) {
            json_decref(task);
            return TSR_OK; /* applied already; a cancel is no failure */
        }
        bool suspend = false;
        unsigned failures = tsr_reload_failures_after(
            (unsigned)json_integer_value(json_object_get(task, "consecutiveFailures")),
            strcmp(status, "SUCCEEDED") == 0, r->max_failures, &suspend);
        const char *state = json_string_value(json_object_get(task, "state"));
        suspend = suspend && state != NULL && strcmp(state, "Enabled") == 0;
        json_t *patch = json_pack("{si ss}", "consecutiveFailures", (int)failures,
                                  "lastResultReloadId", reload_id);
        tsr_rl__ev_t ev = {0};
        tsr_store_event_t row;
        size_t nrows = 0;
        if (suspend) {
            json_object_set_new(patch, "state", json_string("Disabled"));
            json_object_set_new(patch, "disabledCode", json_string("CONSECUTIVE-FAILURES"));
            json_object_set_new(patch, "nextFireMs", json_null());
            json_object_set_new(patch, "nextExecutionTime", json_null());
            rc = tsr_rl__ev_make(&ev, TSR_RL__T_RESULTS, "reload.task.suspended", tenant, NULL, app,
                                 json_pack("{ss ss si ss}", "taskId", task_id, "appId", app,
                                           "consecutiveFailures", (int)failures, "reason",
                                           "CONSECUTIVE-FAILURES"),
                                 err);
            row = tsr_rl__ev_row(&ev);
            nrows = 1;
        }
        if (rc == TSR_OK) {
            rc = tsr_store_doc_patch(r->store, tenant, TSR_RL__C_TASKS, task_id,
                                     json_integer_value(json_object_get(task, "version")), patch,
                                     nrows > 0 ? &row : NULL, nrows, NULL, err);
        }
        if (rc == TSR_OK && suspend) {
            tsr_log_warn(NULL, "reload task %s suspended after %u consecutive failures", task_id,
                         failures);
        }
        tsr_rl__ev_cleanup(&ev);
        json_decref(patch);
        json_decref(task);
        if (rc != TSR_ECONFLICT) {
            return rc;
        }
    }
    return tsr_error_set(err, TSR_EUNAVAILABLE, "task keeps changing");
}

tsr_err_t tsr_reload_on_finished(tsr_reload_t *r, const char *tenant, const char *reload_id,
                                 tsr_error_t *err) {
    json_t *reload = NULL;
    tsr_store_page_t page = {0};
    tsr_err_t rc = tsr_rl__reload_get(r, tenant, reload_id, &reload, err);
    if (rc != TSR_OK) {
        return rc;
    }
    const char *status = json_string_value(json_object_get(reload, "status"));
    const char *task_id = json_string_value(json_object_get(reload, "taskId"));
    const char *app = json_string_value(json_object_get(reload, "appId"));
    if (!tsr_reload_status_is_terminal(status) || task_id == NULL) {
        goto out;
    }
    if ((rc = count_result(r, tenant, task_id, reload_id, status, app, err)) != TSR_OK) {
        goto out;
    }
    json_t *tid = json_string(task_id);
    tsr_store_filter_t f = {"chainTaskId", TSR_STORE_EQ, tid};
    tsr_store_query_t q = {.filters = &f, .n_filters = 1, .limit = 100};
    rc = tsr_store_doc_list(r->store, tenant, TSR_RL__C_TASKS, &q, &page, err);
    json_decref(tid);
    if (rc != TSR_OK) {
        goto out;
    }
    size_t i;
    json_t *t;
    json_array_foreach(page.items, i, t) {
        const char *state = json_string_value(json_object_get(t, "state"));
        const char *on = json_string_value(json_object_get(json_object_get(t, "trigger"), "on"));
        tsr_reload_trigger_on_t k = TSR_RELOAD_ON_ANY;
        if (on != NULL && strcmp(on, "SUCCEEDED") == 0) {
            k = TSR_RELOAD_ON_SUCCEEDED;
        } else if (on != NULL && strcmp(on, "FAILED") == 0) {
            k = TSR_RELOAD_ON_FAILED;
        }
        if (state == NULL || strcmp(state, "Enabled") != 0 ||
            !tsr_reload_trigger_matches(k, status)) {
            continue;
        }
        char key[TSR_STORE_ID_MAX + 1];
        bool fired = false;
        snprintf(key, sizeof key, "%s@r%s", json_string_value(json_object_get(t, "id")), reload_id);
        rc = tsr_rl__fire(r, t, key, r->now_ms(), 0, NULL, &fired, err);
        if (rc == TSR_ECONFLICT) {
            rc = TSR_OK; /* fired already for this reload */
        }
        if (rc != TSR_OK) {
            goto out;
        }
    }
out:
    tsr_store_page_cleanup(&page);
    json_decref(reload);
    return rc;
}
