/*
 * pkg/engined access invalidation: spaces' events drop the access answers they may change.
 * Each engine process (serving replica or reloader) consumes tessera.spaces, tessera.apps and
 * tessera.identity in a consumer group of its own (a unique group id: every process sees every
 * event; the group starts at the topics' end, an empty cache has nothing older to forget). An
 * app event drops the entries of that app in its tenant; a space or membership event drops the
 * whole tenant's entries (spaces' answer does not carry the space, and a tenant's entries are
 * cheap to ask again); nothing ever crosses tenants. Which event touches what and the consumer
 * thread are spaces_client's (shared with reload); what is dropped is the access hook's.
 * An app.deleted event also closes the sessions of that app in this process (4204) and drops
 * its loaded model: every replica consumes every event, so each closes its own sessions; and
 * it tombstones the app's folder when the event's tenant owns it (removed after the grace by
 * the sweep, tsr_engined_apps_sweep).
 */
#include <stdlib.h>
#include <string.h>

#include "engined_int.h"
#include "log.h"
#include "spaces_client.h"

size_t tsr_engined_access_on_event(const tsr_engined_access_t *a, const tsr_event_t *ev) {
    const char *app = NULL;
    if (a == NULL || a->invalidate == NULL || !tsr_spaces_access_scope(ev, &app)) {
        return 0;
    }
    return a->invalidate(a->ud, ev->tenantid, app);
}

size_t tsr_engined_access_invalidate(tsr_engined_t *e, const char *tenant_id, const char *app_id) {
    if (e == NULL || e->access.invalidate == NULL || tenant_id == NULL || tenant_id[0] == '\0') {
        return 0;
    }
    return e->access.invalidate(e->access.ud, tenant_id, app_id);
}

size_t tsr_engined_app_deleted(tsr_engined_t *e, const char *tenant_id, const char *app_id) {
    if (e == NULL || tenant_id == NULL || tenant_id[0] == '\0' || app_id == NULL ||
        app_id[0] == '\0') {
        return 0;
    }
    size_t n = 0;
    bool found = false;
    /* Lock order e->mu, then a->mu (as eviction); a session's doc stays in a->docs until its
     * release ran under a->mu, so asking it to close here is within the session's lifetime. */
    pthread_mutex_lock(&e->mu);
    for (tsr_engined__app_t *a = e->apps; a != NULL; a = a->next) {
        if (strcmp(a->id, app_id) != 0 || strcmp(a->tenant_id, tenant_id) != 0) {
            continue;
        }
        found = true;
        pthread_mutex_lock(&a->mu);
        for (size_t i = 0; i < a->ndocs; i++) {
            tsr_qix_session_request_close(a->docs[i]->s, TSR_QIX_CLOSE_APP_NOT_FOUND,
                                          "app deleted");
            n++;
        }
        /* Out of memory now for what is not in use; sessions keep their own references until
         * they end. Not loaded: the version watcher leaves it alone. */
        tsr_engined__model_unref(a, a->model);
        a->model = NULL;
        a->loaded = false;
        a->bytes = 0;
        pthread_mutex_unlock(&a->mu);
    }
    pthread_mutex_unlock(&e->mu);
    /* The folder: tombstoned only when this tenant owns it (checked against its document). */
    tsr_error_t terr = {0};
    tsr_err_t trc = tsr_engined_app_tombstone(e, tenant_id, app_id, &terr);
    if (trc != TSR_OK && trc != TSR_ENOTFOUND && trc != TSR_EUNSUPPORTED) {
        tsr_log_ctx_t ctx = {.tenant_id = tenant_id};
        tsr_log_warn(&ctx, "engined: app %s deleted: tombstone: %s", app_id, terr.msg);
    }
    if (found) {
        tsr_log_ctx_t ctx = {.tenant_id = tenant_id};
        tsr_log_info(&ctx, "engined: app %s deleted: %zu session(s) closing, model unloaded",
                     app_id, n);
    }
    return n;
}

static bool is_app_deleted(const tsr_event_t *ev) {
    tsr_event_type_t t;
    tsr_error_t err;
    return ev != NULL && ev->type != NULL && tsr_event_type_parse(ev->type, &t, &err) == TSR_OK &&
           strcmp(t.domain, "app") == 0 && strcmp(t.action, "deleted") == 0;
}

/* The consumer's hook for what depends on the event's type (after the answers were dropped). */
static void on_event(void *ud, const tsr_event_t *ev) {
    if (is_app_deleted(ev)) {
        (void)tsr_engined_app_deleted(ud, ev->tenantid, ev->subject);
    }
}

size_t tsr_engined_on_event(tsr_engined_t *e, const tsr_event_t *ev) {
    if (e == NULL) {
        return 0;
    }
    size_t n = tsr_engined_access_on_event(&e->access, ev);
    on_event(e, ev);
    return n;
}

/* ---- the consumer ------------------------------------------------------------------------- */

struct tsr_engined_access_events {
    tsr_spaces_access_events_t *s;
};

/* Drop e's kept answers (tenant_id NULL: all of them). */
static size_t drop(void *ud, const char *tenant_id, const char *app_id) {
    tsr_engined_t *e = ud;
    return e->access.invalidate != NULL ? e->access.invalidate(e->access.ud, tenant_id, app_id) : 0;
}

tsr_err_t tsr_engined_access_events_start(tsr_engined_t *e, const char *bootstrap,
                                          const char *member, tsr_engined_access_events_t **out,
                                          tsr_error_t *err) {
    if (e == NULL || bootstrap == NULL || bootstrap[0] == '\0' || out == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "access events: engine and bootstrap required");
    }
    *out = NULL;
    tsr_spaces_access_events_opts_t o = {.bootstrap = bootstrap,
                                         .group_prefix = "engine-access",
                                         .member = member,
                                         .client_id = "tessera-engine-access",
                                         .noun = "answer(s)",
                                         .drop = drop,
                                         .event = on_event,
                                         .ud = e};
    tsr_spaces_access_events_t *s = NULL;
    tsr_err_t rc = tsr_spaces_access_events_start(&o, &s, err);
    if (rc != TSR_OK) {
        return rc;
    }
    tsr_engined_access_events_t *k = tsr_xcalloc(1, sizeof *k);
    k->s = s;
    *out = k;
    return TSR_OK;
}

bool tsr_engined_access_events_ready(tsr_engined_access_events_t *k) {
    return k != NULL && tsr_spaces_access_events_ready(k->s);
}

void tsr_engined_access_events_stop(tsr_engined_access_events_t *k) {
    if (k == NULL) {
        return;
    }
    tsr_spaces_access_events_stop(k->s);
    free(k);
}
