/*
 * Access decisions from spaces: GET /internal/v1/access?resource=app:<id> with the ingress's
 * principal headers, through tsr_spaces_client. 404 is "no such app in your tenant" (close 4204),
 * an empty action list is "no permission" (4203). Anything else is TSR_EUNAVAILABLE: the engine
 * refuses rather than guesses. In front of it a small cache: a positive decision is kept per
 * (tenant, user, roles, app) for TSR_ENGINE_ACCESS_CACHE_MS, and concurrent identical questions
 * share one call, so a crowd opening one app asks spaces once. Refusals and failures are never
 * kept: a granted access shows at once. A revoked one shows as soon as spaces' event about it
 * arrives (access_events.c drops the entries of the app, or of the whole tenant for a space
 * event, through the hook's invalidate); the TTL is only the backstop when events are late or
 * Kafka is absent.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "engined_int.h"
#include "log.h"
#include "spaces_client.h"

static unsigned action_bit(const char *a) {
    if (strcmp(a, "read") == 0) {
        return TSR_ENGINED_READ;
    }
    if (strcmp(a, "edit") == 0) {
        return TSR_ENGINED_EDIT;
    }
    if (strcmp(a, "reload") == 0) {
        return TSR_ENGINED_RELOAD;
    }
    if (strcmp(a, "export") == 0) {
        return TSR_ENGINED_EXPORT;
    }
    return 0;
}

typedef struct {
    char *base_url;
    long timeout_ms; /* the whole exchange with spaces */
} spaces_t;

static tsr_err_t spaces_decide(void *ud, const tsr_engined_principal_t *who, const char *app_id,
                               unsigned *actions, tsr_error_t *err) {
    char resource[300];
    *actions = 0;
    if (app_id == NULL || strlen(app_id) > 256) {
        return tsr_error_set(err, TSR_ENOTFOUND, "app not found");
    }
    snprintf(resource, sizeof resource, "app:%s", app_id);
    tsr_spaces_client_principal_t p = {who->tenant_id, who->user_id, who->roles, who->token};
    json_t *acts = NULL;
    const spaces_t *sp = ud;
    tsr_err_t rc =
        tsr_spaces_client_actions_timeout(sp->base_url, resource, &p, sp->timeout_ms, &acts, err);
    if (rc != TSR_OK) {
        /* 400: an id spaces would never issue, which is a missing app as well. */
        return rc == TSR_ENOTFOUND || rc == TSR_EINVAL
                   ? tsr_error_set(err, TSR_ENOTFOUND, "app not found")
                   : rc;
    }
    size_t i;
    json_t *a;
    json_array_foreach(acts, i, a) {
        if (json_is_string(a)) {
            *actions |= action_bit(json_string_value(a));
        }
    }
    json_decref(acts);
    return TSR_OK;
}

static void spaces_close(void *ud) {
    spaces_t *sp = ud;
    if (sp != NULL) {
        free(sp->base_url);
        free(sp);
    }
}

/* ---- the decision cache ---------------------------------------------------------------------- */

#define KEY_SEP '\x1f'

typedef struct entry {
    char *key;           /* tenant, user, roles, app joined by KEY_SEP */
    char *tenant;        /* for invalidation */
    char *app;           /* for invalidation */
    uint64_t expires_ms; /* monotonic; meaningful once !pending */
    bool pending;        /* the first asker is calling the inner hook */
    bool stale;          /* invalidated while pending: the answer is handed out, not kept */
    tsr_err_t rc;        /* the answer, for the askers that waited on it */
    unsigned actions;
    char msg[TSR_ERROR_MSG_MAX];
    unsigned refs; /* the cache's list (1 while listed) plus waiting askers */
    struct entry *next;
} entry_t;

typedef struct {
    tsr_engined_access_t inner;
    uint64_t ttl_ms;
    size_t max_entries;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* an entry stopped being pending */
    entry_t *head;
    size_t n;
} cache_t;

static void entry_unref(entry_t *x) {
    if (x != NULL && --x->refs == 0) {
        free(x->key);
        free(x->tenant);
        free(x->app);
        free(x);
    }
}

/* Take x out of the list (caller holds mu). */
static void unlink_entry(cache_t *c, entry_t *x) {
    for (entry_t **pp = &c->head; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == x) {
            *pp = x->next;
            c->n--;
            entry_unref(x);
            return;
        }
    }
}

/* Drop expired answers (caller holds mu). */
static void purge(cache_t *c, uint64_t now) {
    entry_t **pp = &c->head;
    while (*pp != NULL) {
        entry_t *x = *pp;
        if (!x->pending && x->expires_ms <= now) {
            *pp = x->next;
            c->n--;
            entry_unref(x);
        } else {
            pp = &x->next;
        }
    }
}

static char *key_of(const tsr_engined_principal_t *who, const char *app_id) {
    tsr_buf_t b;
    tsr_buf_init(&b, 0);
    const char *parts[4] = {who->tenant_id, who->user_id, who->roles, app_id};
    for (size_t i = 0; i < 4; i++) {
        if (i > 0) {
            tsr_buf_append(&b, (char[]){KEY_SEP}, 1);
        }
        tsr_buf_append_str(&b, parts[i] != NULL ? parts[i] : "");
    }
    tsr_buf_append(&b, "", 0);
    size_t n;
    return tsr_buf_take(&b, &n);
}

static tsr_err_t cache_decide(void *ud, const tsr_engined_principal_t *who, const char *app_id,
                              unsigned *actions, tsr_error_t *err) {
    cache_t *c = ud;
    *actions = 0;
    char *key = key_of(who, app_id);
    pthread_mutex_lock(&c->mu);
    uint64_t now = tsr_mono_ms();
    entry_t *x = c->head;
    /* A stale question in flight is not joined: its answer may predate the change. */
    while (x != NULL && (x->stale || strcmp(x->key, key) != 0)) {
        x = x->next;
    }
    if (x != NULL && !x->pending && x->expires_ms <= now) {
        unlink_entry(c, x);
        x = NULL;
    }
    if (x != NULL) {
        /* Answered and fresh, or being asked: wait for that call instead of making another. */
        x->refs++;
        while (x->pending) {
            pthread_cond_wait(&c->cv, &c->mu);
        }
        tsr_err_t rc = x->rc;
        *actions = x->actions;
        if (rc != TSR_OK) {
            tsr_error_set(err, rc, "%s", x->msg);
        }
        entry_unref(x);
        pthread_mutex_unlock(&c->mu);
        free(key);
        return rc;
    }
    if (c->n >= c->max_entries) {
        purge(c, now);
    }
    x = tsr_xcalloc(1, sizeof *x);
    x->key = key;
    x->tenant = tsr_xstrdup(who->tenant_id != NULL ? who->tenant_id : "");
    x->app = tsr_xstrdup(app_id != NULL ? app_id : "");
    x->pending = true;
    x->refs = 2; /* the list and this asker */
    x->next = c->head;
    c->head = x;
    c->n++;
    pthread_mutex_unlock(&c->mu);

    tsr_error_t ierr = {0};
    unsigned acts = 0;
    tsr_err_t rc = c->inner.decide(c->inner.ud, who, app_id, &acts, &ierr);

    pthread_mutex_lock(&c->mu);
    x->rc = rc;
    x->actions = acts;
    snprintf(x->msg, sizeof x->msg, "%s", ierr.msg);
    x->pending = false;
    x->expires_ms = tsr_mono_ms() + c->ttl_ms;
    /* Only a grant is kept: a refusal must not outlive a grant made right after it, and a
     * failure (spaces busy: 429, 5xx, timeout) must be asked again next time. Askers already
     * waiting get this answer either way. Over the size cap nothing more is kept, and neither is
     * an answer an event invalidated while it was being asked (it may predate the change). */
    if (rc != TSR_OK || acts == 0 || c->ttl_ms == 0 || c->n > c->max_entries || x->stale) {
        unlink_entry(c, x);
    }
    pthread_cond_broadcast(&c->cv);
    entry_unref(x);
    pthread_mutex_unlock(&c->mu);
    *actions = acts;
    if (rc != TSR_OK && err != NULL) {
        *err = ierr;
    }
    return rc;
}

/* Drop the answers of tenant_id (of app_id only when not NULL; every tenant's when tenant_id
 * is NULL: the events consumer, once, when it starts seeing events); questions in flight for
 * them are marked so that their answers are not kept. Other tenants' entries are never
 * touched. */
static size_t cache_invalidate(void *ud, const char *tenant_id, const char *app_id) {
    cache_t *c = ud;
    size_t dropped = 0;
    if (tenant_id != NULL && tenant_id[0] == '\0') {
        return 0;
    }
    pthread_mutex_lock(&c->mu);
    entry_t **pp = &c->head;
    while (*pp != NULL) {
        entry_t *x = *pp;
        bool hit = tenant_id == NULL || (strcmp(x->tenant, tenant_id) == 0 &&
                                         (app_id == NULL || strcmp(x->app, app_id) == 0));
        if (hit && x->pending) {
            x->stale = true;
        }
        if (hit && !x->pending) {
            *pp = x->next;
            c->n--;
            entry_unref(x);
            dropped++;
        } else {
            pp = &x->next;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return dropped;
}

static void cache_close(void *ud) {
    cache_t *c = ud;
    if (c == NULL) {
        return;
    }
    while (c->head != NULL) {
        entry_t *x = c->head;
        c->head = x->next;
        entry_unref(x);
    }
    if (c->inner.close != NULL) {
        c->inner.close(c->inner.ud);
    }
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

tsr_err_t tsr_engined_access_cached(tsr_engined_access_t inner, uint64_t ttl_ms, size_t max_entries,
                                    tsr_engined_access_t *out, tsr_error_t *err) {
    if (inner.decide == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "access cache: an inner decision hook is required");
    }
    cache_t *c = tsr_xcalloc(1, sizeof *c);
    c->inner = inner;
    c->ttl_ms = ttl_ms;
    c->max_entries = max_entries > 0 ? max_entries : 10000;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    *out = (tsr_engined_access_t){
        .ud = c, .decide = cache_decide, .close = cache_close, .invalidate = cache_invalidate};
    return TSR_OK;
}

tsr_err_t tsr_engined_access_spaces_open(const char *base_url, tsr_engined_access_t *out,
                                         tsr_error_t *err) {
    if (base_url == NULL || strncmp(base_url, "http", 4) != 0) {
        return tsr_error_set(err, TSR_EINVAL, "TSR_ENGINE_SPACES_URL: an http(s) URL is required");
    }
    int64_t ttl = 0, timeout = 0;
    tsr_err_t rc = tsr_config_get_int("TSR_ENGINE_ACCESS_CACHE_MS", 0, 3600000, &ttl, err);
    if (rc == TSR_OK) {
        rc = tsr_config_get_int("TSR_ENGINE_ACCESS_TIMEOUT_MS", 100, 60000, &timeout, err);
    }
    if (rc != TSR_OK) {
        return rc;
    }
    size_t n = strlen(base_url);
    while (n > 0 && base_url[n - 1] == '/') {
        n--;
    }
    spaces_t *sp = tsr_xcalloc(1, sizeof *sp);
    sp->base_url = tsr_xstrndup(base_url, n);
    sp->timeout_ms = (long)timeout;
    tsr_engined_access_t raw = {.ud = sp, .decide = spaces_decide, .close = spaces_close};
    return tsr_engined_access_cached(raw, (uint64_t)ttl, 0, out, err);
}
