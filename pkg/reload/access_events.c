/*
 * pkg/reload access invalidation: spaces' and identity's events drop the cached access
 * decisions they may change, per replica. Each reload process consumes tessera.spaces,
 * tessera.apps and tessera.identity in a consumer group of its own (unique id, from the topics'
 * end), so every replica sees every event; the shared group "reload" (results.c) only does
 * the once-per-event work. An app event drops that app's decisions in its tenant, a space,
 * membership or identity event the tenant's; nothing crosses tenants. Which event touches what
 * and the consumer thread are spaces_client's (shared with the engine); the cache is ours.
 */
#include <stdlib.h>

#include "reload_int.h"
#include "spaces_client.h"

size_t tsr_reload_access_on_event(tsr_reload_t *r, const tsr_event_t *ev) {
    const char *app = NULL;
    if (r == NULL || !tsr_spaces_access_scope(ev, &app)) {
        return 0;
    }
    return tsr_reload_access_invalidate_tenant(r, ev->tenantid, app);
}

struct tsr_reload_access_events {
    tsr_spaces_access_events_t *s;
};

/* Drop r's cached decisions (tenant_id NULL: all of them, uncounted). */
static size_t drop(void *ud, const char *tenant_id, const char *app_id) {
    tsr_reload_t *r = ud;
    if (tenant_id == NULL) {
        tsr_reload_access_invalidate(r);
        return 0;
    }
    return tsr_reload_access_invalidate_tenant(r, tenant_id, app_id);
}

tsr_err_t tsr_reload_access_events_start(tsr_reload_t *r, const char *bootstrap,
                                         tsr_reload_access_events_t **out, tsr_error_t *err) {
    if (r == NULL || bootstrap == NULL || bootstrap[0] == '\0' || out == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "access events: reload and bootstrap required");
    }
    *out = NULL;
    tsr_spaces_access_events_opts_t o = {.bootstrap = bootstrap,
                                         .group_prefix = "reload-access",
                                         .client_id = "tessera-reload-access",
                                         .noun = "decision(s)",
                                         .drop = drop,
                                         .ud = r};
    tsr_spaces_access_events_t *s = NULL;
    tsr_err_t rc = tsr_spaces_access_events_start(&o, &s, err);
    if (rc != TSR_OK) {
        return rc;
    }
    tsr_reload_access_events_t *k = tsr_xcalloc(1, sizeof *k);
    k->s = s;
    *out = k;
    return TSR_OK;
}

void tsr_reload_access_events_stop(tsr_reload_access_events_t *k) {
    if (k == NULL) {
        return;
    }
    tsr_spaces_access_events_stop(k->s);
    free(k);
}
