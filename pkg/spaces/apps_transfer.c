/*
 * pkg/spaces: the record side of app export. The engine builds the app file and serves the
 * temporary download; spaces owns the app record and its audit events, so the engine tells it
 * here (POST /internal/v1/apps/{appId}/exported, the caller's forwarded principal) before it
 * answers the client. Invariant: an export is answered only after its "app.exported" event is
 * committed to the outbox with the record's lastExportedAt.
 */
#include <string.h>

#include "spaces_int.h"

#define TEMP_ID_MAX 64 /* characters of the engine's temporary content id */

tsr_err_t tsr_sp__h_app_exported(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    tsr_sp__event_t ev = {0};
    json_t *doc = NULL, *body = NULL, *patch = NULL;
    const char *id = NULL, *temp = NULL;
    unsigned a = 0;
    json_int_t bytes = 0;
    size_t len = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) != TSR_OK ||
        (rc = tsr_sp__path_id(req, "appId", &id, err)) != TSR_OK ||
        (rc = tsr_sp__item_get(&c, id, "app", &doc, &a, err)) != TSR_OK ||
        (rc = tsr_sp__require(a, TSR_SPACES_READ | TSR_SPACES_EXPORT, "app", err)) != TSR_OK) {
        goto out;
    }
    (void)tsr_req_body(req, &len);
    if (len > 0) {
        if ((rc = tsr_sp__body(&c, &body, err)) != TSR_OK ||
            (rc = tsr_sp__str(body, "tempContentId", false, TEMP_ID_MAX, &temp, err)) != TSR_OK) {
            goto out;
        }
        json_t *b = json_object_get(body, "bytes");
        if (b != NULL && (!json_is_integer(b) || json_integer_value(b) < 0)) {
            rc = tsr_error_set(err, TSR_EINVAL, "bytes must be a non-negative integer");
            goto out;
        }
        bytes = json_integer_value(b);
    }
    json_t *space = json_object_get(doc, "spaceId");
    rc = tsr_sp__event_make(
        &c, TSR_SP__T_APPS, "app", "exported", id,
        json_pack("{ss sO sO sO ss? sI}", "id", id, "name", json_object_get(doc, "name"), "spaceId",
                  space != NULL ? space : json_null(), "ownerId", json_object_get(doc, "ownerId"),
                  "tempContentId", temp, "bytes", bytes),
        &ev, err);
    if (rc != TSR_OK) {
        goto out;
    }
    /* The event commits with a change of the record (the outbox rides on document writes). */
    patch = json_pack("{ss ss}", "lastExportedAt", tsr_sp__now(req), "lastExportedBy", c.user);
    rc = tsr_store_doc_patch(c.s->store, c.tenant, TSR_SP__C_ITEMS, id, 0, patch, &ev.row, 1, NULL,
                             err);
    if (rc == TSR_OK) {
        tsr_req_reply_bytes(req, 204, NULL, "", 0);
    }
out:
    tsr_sp__event_cleanup(&ev);
    json_decref(patch);
    json_decref(body);
    json_decref(doc);
    return rc;
}
