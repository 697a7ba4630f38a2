/*
 * Access decisions from spaces: GET /internal/v1/access?resource=app:<id> with the ingress's
 * principal headers, through tsr_spaces_client. 404 is "no such app in your tenant" (close 4204),
 * an empty action list is "no permission" (4203). Anything else is TSR_EUNAVAILABLE: the engine
 * refuses rather than guesses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engined_int.h"
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
    return 0;
}

static tsr_err_t spaces_decide(void *ud, const tsr_engined_principal_t *who, const char *app_id,
                               unsigned *actions, tsr_error_t *err) {
    char resource[300];
    *actions = 0;
    if (app_id == NULL || strlen(app_id) > 256) {
        return tsr_error_set(err, TSR_ENOTFOUND, "app not found");
    }
    snprintf(resource, sizeof resource, "app:%s", app_id);
    tsr_spaces_client_principal_t p = {who->tenant_id, who->user_id, who->roles, NULL};
    json_t *acts = NULL;
    tsr_err_t rc = tsr_spaces_client_actions(ud, resource, &p, &acts, err);
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
    free(ud);
}

tsr_err_t tsr_engined_access_spaces_open(const char *base_url, tsr_engined_access_t *out,
                                         tsr_error_t *err) {
    if (base_url == NULL || strncmp(base_url, "http", 4) != 0) {
        return tsr_error_set(err, TSR_EINVAL, "TSR_ENGINE_SPACES_URL: an http(s) URL is required");
    }
    size_t n = strlen(base_url);
    while (n > 0 && base_url[n - 1] == '/') {
        n--;
    }
    *out = (tsr_engined_access_t){
        .ud = tsr_xstrndup(base_url, n), .decide = spaces_decide, .close = spaces_close};
    return TSR_OK;
}
