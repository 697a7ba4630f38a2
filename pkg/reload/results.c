/*
 * pkg/reload results consumer (service side): tessera.reloads.results and tessera.apps in
 * group "reload"; reload.finished → tsr_reload_on_finished, app.deleted →
 * tsr_reload_on_app_deleted. Access invalidation is per replica (access_events.c).
 */
#include <stdlib.h>
#include <string.h>

#include "reload_int.h"

/* The access cache is each replica's own (access_events.c): not this shared group's job. */
static const char *const RESULT_TOPICS[] = {TSR_RL__T_RESULTS, "tessera.apps"};

static const char *reload_id_of(const tsr_event_t *ev) {
    return json_string_value(json_object_get(ev->data, "reloadId"));
}

static tsr_err_t on_result(void *opaque, const tsr_event_t *ev, void *txn, tsr_error_t *err) {
    tsr_reload_consumer_t *k = opaque;
    (void)txn;
    if (strcmp(ev->type, "com.tessera.v1.app.deleted") == 0 && ev->subject != NULL) {
        return tsr_reload_on_app_deleted((tsr_reload_t *)k->ud, ev->tenantid, ev->subject, err);
    }
    if (strcmp(ev->type, "com.tessera.v1.reload.finished") != 0 || reload_id_of(ev) == NULL) {
        return TSR_OK;
    }
    tsr_err_t rc =
        tsr_reload_on_finished((tsr_reload_t *)k->ud, ev->tenantid, reload_id_of(ev), err);
    return rc == TSR_ENOTFOUND ? TSR_OK : rc;
}

tsr_err_t tsr_reload_results_start(tsr_reload_t *r, const char *bootstrap,
                                   tsr_reload_consumer_t **out, tsr_error_t *err) {
    tsr_reload_consumer_t *k = tsr_xcalloc(1, sizeof *k);
    k->ud = r;
    tsr_err_t rc =
        tsr_rl__consumer_start(k, bootstrap, "reload", RESULT_TOPICS, 2, on_result, NULL, err);
    if (rc != TSR_OK) {
        tsr_reload_consumer_stop(k);
        return rc;
    }
    *out = k;
    return TSR_OK;
}
