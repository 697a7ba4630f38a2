/*
 * tsr_events_outbox_t and tsr_events_dedupe_t over pkg/store (see store_events.h). Thin
 * translations: the rows and the transaction semantics are the store's.
 */
#include "store_events.h"

#include <stdlib.h>

static tsr_err_t ob_fetch(void *ctx, size_t limit, tsr_events_outbox_row_t *rows, size_t *n,
                          tsr_error_t *err) {
    tsr_store_event_t *got = NULL;
    size_t k = 0;
    *n = 0;
    tsr_err_t rc = tsr_store_platform_outbox_fetch(ctx, limit, &got, &k, err);
    if (rc != TSR_OK) {
        return rc;
    }
    /* the strings move into the caller's rows; release frees them one by one */
    for (size_t i = 0; i < k; i++) {
        rows[i] = (tsr_events_outbox_row_t){got[i].id, got[i].topic, got[i].key, got[i].payload,
                                            got[i].payload_len};
    }
    free(got);
    *n = k;
    return TSR_OK;
}

static tsr_err_t ob_mark(void *ctx, const char *const *ids, size_t n, tsr_error_t *err) {
    return tsr_store_platform_outbox_mark_sent(ctx, ids, n, err);
}

static void ob_release(void *ctx, tsr_events_outbox_row_t *rows, size_t n) {
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        free((char *)rows[i].id);
        free((char *)rows[i].topic);
        free((char *)rows[i].key);
        free((char *)rows[i].payload);
        rows[i] = (tsr_events_outbox_row_t){0};
    }
}

tsr_events_outbox_t tsr_store_events_outbox(tsr_store_t *s) {
    tsr_events_outbox_t o = {s, ob_fetch, ob_mark, ob_release};
    return o;
}

typedef struct {
    tsr_events_effect_cb effect;
    void *opaque;
} effect_t;

static tsr_err_t run_effect(void *opaque, tsr_store_t *txn, tsr_error_t *err) {
    effect_t *e = opaque;
    return e->effect(e->opaque, txn, err);
}

static tsr_err_t dd_apply_once(void *ctx, const char *group, const char *event_id,
                               tsr_events_effect_cb effect, void *effect_opaque, bool *applied,
                               tsr_error_t *err) {
    effect_t e = {effect, effect_opaque};
    return tsr_store_apply_once(ctx, group, event_id, run_effect, &e, applied, err);
}

tsr_events_dedupe_t tsr_store_events_dedupe(tsr_store_t *s) {
    tsr_events_dedupe_t d = {s, dd_apply_once};
    return d;
}
