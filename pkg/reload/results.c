/*
 * pkg/reload results consumer (service side): tessera.reloads.results, tessera.apps and
 * tessera.spaces in group "reload"; reload.finished → tsr_reload_on_finished, app.deleted →
 * tsr_reload_on_app_deleted, any space or app event → the access cache is dropped.
 */
#include <stdlib.h>
#include <string.h>

#include "reload_int.h"

static const char *const RESULT_TOPICS[] = {TSR_RL__T_RESULTS, "tessera.apps", "tessera.spaces"};

static const char *reload_id_of(const tsr_event_t *ev) {
    return json_string_value(json_object_get(ev->data, "reloadId"));
}

static tsr_err_t on_result(void *opaque, const tsr_event_t *ev, void *txn, tsr_error_t *err) {
    tsr_reload_consumer_t *k = opaque;
    (void)txn;
    if (strncmp(ev->type, "com.tessera.v1.space.", 21) == 0 ||
        strncmp(ev->type, "com.tessera.v1.app.", 19) == 0) {
        /* Membership, role or app changes may change who may reload what. */
        tsr_reload_access_invalidate((tsr_reload_t *)k->ud);
    }
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
        tsr_rl__consumer_start(k, bootstrap, "reload", RESULT_TOPICS, 3, on_result, NULL, err);
    if (rc != TSR_OK) {
        tsr_reload_consumer_stop(k);
        return rc;
    }
    *out = k;
    return TSR_OK;
}
