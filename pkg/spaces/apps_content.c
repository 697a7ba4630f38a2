/*
 * pkg/spaces: the content side of app copy and publish. Spaces holds the app record, the engine
 * the content (script, objects, variables, bookmarks, the data model). A copy or publish asks
 * the engine, synchronously, to give the source's content to the new app id (POST
 * /internal/v1/apps/{appId}/copy), and stores the record only after that succeeded, so a new
 * app never exists without its content and opens over QIX with the source's data at once.
 * The engine does not decide access on that route (spaces did: read on the source, create in
 * the target) and so takes only service tokens: spaces calls it with one from its token source
 * naming (tenant, caller's user id, no roles); without a source (unit tests, development with
 * TSR_AUTH_TRUST_HEADERS) the caller's headers go with X-Tsr-Auth-Type: service, which an
 * engine verifying tokens replaces by the caller's own auth type and refuses.
 * Invariant: a copy the engine could not make answers an error and stores no record.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "spaces_client.h"
#include "spaces_int.h"

tsr_err_t tsr_sp__app_content_copy(tsr_sp__ctx_t *c, const char *src, const char *dst,
                                   const char *name, bool publish, tsr_error_t *err) {
    if (c->s->engine_url == NULL) {
        return TSR_OK;
    }
    tsr_spaces_client_principal_t who = {.tenant_id = c->tenant,
                                         .user_id = c->user,
                                         .roles = tsr_req_header(c->req, "X-Tsr-Roles"),
                                         .token = tsr_req_header(c->req, "X-Tsr-Token")};
    char *token = NULL;
    tsr_error_t cerr = {0};
    if (c->s->token_fn != NULL) {
        tsr_err_t trc =
            c->s->token_fn(c->s->token_ud, c->tenant, c->user, NULL, NULL, &token, &cerr);
        if (trc != TSR_OK) {
            tsr_log_ctx_t ctx = {tsr_req_id(c->req), c->tenant, c->user};
            tsr_log_error(&ctx, "spaces: no service token to copy the content of app %s: %s", src,
                          cerr.msg);
            return tsr_error_set(err, TSR_EUNAVAILABLE,
                                 "the app's content could not be copied; nothing was created, "
                                 "retry later");
        }
        who.roles = NULL;
        who.token = token;
    }
    char path[256];
    snprintf(path, sizeof path, "/internal/v1/apps/%s/copy", src);
    json_t *body = json_pack("{ss ss? sb}", "targetId", dst, "name", name, "publish", publish);
    json_t *resp = NULL;
    long status = 0;
    tsr_err_t rc = tsr_spaces_client_call_typed(c->s->engine_url, "POST", path, &who, "service",
                                                body, &status, &resp, &cerr);
    json_decref(body);
    free(token);
    if (rc == TSR_OK && status != 201 && status != 404) {
        const char *d = json_string_value(
            json_object_get(json_array_get(json_object_get(resp, "errors"), 0), "detail"));
        snprintf(cerr.msg, sizeof cerr.msg, "engine answered %ld: %s", status,
                 d != NULL ? d : "no detail");
        rc = TSR_EUNAVAILABLE;
    }
    json_decref(resp);
    if (rc != TSR_OK) {
        tsr_log_ctx_t ctx = {tsr_req_id(c->req), c->tenant, c->user};
        tsr_log_error(&ctx, "spaces: copying the content of app %s to %s failed: %s", src, dst,
                      cerr.msg);
        return tsr_error_set(err, TSR_EUNAVAILABLE,
                             "the app's content could not be copied; nothing was created, retry "
                             "later");
    }
    /* 404: the engine holds no content for src (an app never opened): neither does the copy. */
    return TSR_OK;
}

void tsr_sp__app_content_orphaned(tsr_sp__ctx_t *c, const char *dst, tsr_err_t rc,
                                  const tsr_error_t *err) {
    if (rc == TSR_OK || c->s->engine_url == NULL) {
        return;
    }
    tsr_log_ctx_t ctx = {tsr_req_id(c->req), c->tenant, c->user};
    tsr_log_error(&ctx,
                  "spaces: the record of copied app %s was not stored (%s); the engine's content "
                  "for it is left without a record",
                  dst, err != NULL ? err->msg : "");
}
