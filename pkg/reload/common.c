/*
 * pkg/reload worker library common code: outbox event construction (CloudEvents through
 * pkg/events' envelope) and reload statuses. Shared by the worker state machine and the
 * reload service.
 */
#include <stdlib.h>
#include <string.h>

#include "reload_worker_int.h"

/* ---- events ---------------------------------------------------------------------------------- */

tsr_err_t tsr_rl__ev_make(tsr_rl__ev_t *e, const char *topic, const char *type, const char *tenant,
                          const char *user, const char *key, json_t *data, tsr_error_t *err) {
    tsr_event_t ev;
    char full[128];
    memset(e, 0, sizeof *e);
    snprintf(full, sizeof full, "com.tessera.v1.%s", type);
    tsr_err_t rc = tsr_event_init(&ev, TSR_RL__SOURCE, full, tenant, key, data, err);
    if (rc != TSR_OK) {
        return rc;
    }
    if (user != NULL && user[0] != '\0') {
        ev.userid = tsr_xstrdup(user);
    }
    snprintf(e->id, sizeof e->id, "%s", ev.id);
    rc = tsr_event_format(&ev, &e->payload, &e->len, err);
    tsr_event_cleanup(&ev);
    e->key = tsr_xstrdup(key);
    e->topic = topic;
    return rc;
}

void tsr_rl__ev_cleanup(tsr_rl__ev_t *e) {
    free(e->payload);
    free(e->key);
    memset(e, 0, sizeof *e);
}

tsr_store_event_t tsr_rl__ev_row(const tsr_rl__ev_t *e) {
    tsr_store_event_t row = {.id = e->id,
                             .topic = e->topic,
                             .key = e->key,
                             .payload = e->payload,
                             .payload_len = e->len};
    return row;
}

void tsr_rl__time(int64_t ms, char out[25]) {
    tsr_time_format_rfc3339(ms, out);
}

static const char *const STATUSES[] = {"QUEUED", "RELOADING", "CANCELING",     "SUCCEEDED",
                                       "FAILED", "CANCELED",  "EXCEEDED_LIMIT"};

bool tsr_reload_status_is_valid(const char *status) {
    for (size_t i = 0; status != NULL && i < sizeof STATUSES / sizeof STATUSES[0]; i++) {
        if (strcmp(status, STATUSES[i]) == 0) {
            return true;
        }
    }
    return false;
}

bool tsr_reload_status_is_terminal(const char *status) {
    return tsr_reload_status_is_valid(status) && strcmp(status, "QUEUED") != 0 &&
           strcmp(status, "RELOADING") != 0 && strcmp(status, "CANCELING") != 0;
}
