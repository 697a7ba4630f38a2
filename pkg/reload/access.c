/*
 * pkg/reload access: asks spaces whether the caller may reload an app (tsr_spaces_client:
 * GET /internal/v1/access?resource=app:<id> with the ingress's principal headers forwarded).
 * Not found → not found; an empty "actions" set (the app is invisible) → not found; actions
 * without "reload" → forbidden; anything else → unavailable (fail closed).
 */
#include <stdio.h>
#include <string.h>

#include "reload_int.h"
#include "spaces_client.h"

tsr_err_t tsr_reload_access_spaces(void *base_url, const tsr_reload_caller_t *who,
                                   const char *app_id, tsr_error_t *err) {
    char resource[300];
    if (app_id == NULL || strlen(app_id) > 256) {
        return tsr_error_set(err, TSR_ENOTFOUND, "app not found");
    }
    snprintf(resource, sizeof resource, "app:%s", app_id);
    tsr_spaces_client_principal_t p = {who->tenant, who->user, who->roles, who->token};
    json_t *acts = NULL;
    tsr_err_t rc = tsr_spaces_client_actions(base_url, resource, &p, &acts, err);
    if (rc != TSR_OK) {
        if (rc == TSR_EINVAL) { /* spaces could not take the question: fail closed */
            char why[256];
            snprintf(why, sizeof why, "%s", err != NULL ? err->msg : "");
            return tsr_error_set(err, TSR_EUNAVAILABLE, "%s", why);
        }
        return rc == TSR_ENOTFOUND ? tsr_error_set(err, TSR_ENOTFOUND, "app %s not found", app_id)
                                   : rc;
    }
    bool any = json_array_size(acts) > 0, reload = false;
    size_t i;
    json_t *a;
    json_array_foreach(acts, i, a) {
        reload = reload || (json_is_string(a) && strcmp(json_string_value(a), "reload") == 0);
    }
    json_decref(acts);
    if (!reload) {
        /* Seeing nothing of the app is the same as its absence. */
        return any ? tsr_error_set(err, TSR_EFORBIDDEN, "no reload permission on app %s", app_id)
                   : tsr_error_set(err, TSR_ENOTFOUND, "app %s not found", app_id);
    }
    return TSR_OK;
}
