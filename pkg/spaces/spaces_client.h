/*
 * pkg/spaces client: what other services (engine, reload) ask spaces over its internal HTTP
 * endpoint, GET /internal/v1/access?resource=<kind>:<id>, with the caller's principal headers
 * forwarded. A small library of its own (tsr_spaces_client: libcurl + jansson) so a service
 * asks spaces without linking spaces itself.
 */
#ifndef TSR_SPACES_CLIENT_H
#define TSR_SPACES_CLIENT_H

#include <jansson.h>

#include "core.h"

/* The caller as the ingress described it (each may be NULL: the header is not sent). */
typedef struct {
    const char *tenant_id;
    const char *user_id;
    const char *roles; /* comma list, e.g. "TenantAdmin,User" */
    const char *token; /* the platform JWT */
} tsr_spaces_client_principal_t;

/* The actions who may take on resource ("app:<id>", "space:<id>", ...) at the spaces service
 * at base_url (no trailing slash needed): *actions is a returned-owned JSON array of strings
 * (possibly empty: no permission). TSR_ENOTFOUND when spaces answers 404 (another tenant's
 * object looks exactly like a missing one); TSR_EINVAL when it answers 400 (a malformed id or
 * principal: the caller decides whether that is a missing object or an internal fault);
 * TSR_EUNAVAILABLE for anything else (unreachable, 5 s timeout, other status, an answer over
 * 64 KiB or not JSON): callers refuse rather than guess. Thread safe. */
tsr_err_t tsr_spaces_client_actions(const char *base_url, const char *resource,
                                    const tsr_spaces_client_principal_t *who, json_t **actions,
                                    tsr_error_t *err);
/* The same with the whole exchange bounded by timeout_ms (connect: at most 2 s of it);
 * tsr_spaces_client_actions is this with 5000. A timeout is TSR_EUNAVAILABLE. */
tsr_err_t tsr_spaces_client_actions_timeout(const char *base_url, const char *resource,
                                            const tsr_spaces_client_principal_t *who,
                                            long timeout_ms, json_t **actions, tsr_error_t *err);

/* One call to spaces on the caller's behalf (the engine creates the record of an imported app
 * with POST /api/v1/apps, reports an export to /internal/v1/apps/{id}/exported): method and
 * path (with query, already escaped) at base_url, body (borrowed, may be NULL) sent as JSON,
 * the principal's headers forwarded. *status is the HTTP status and *resp (may be NULL) the
 * parsed JSON answer, returned-owned (NULL when there is none or it is not JSON). TSR_OK
 * whenever spaces answered, whatever the status; TSR_EUNAVAILABLE when it could not be reached
 * (5 s timeout) or its answer passed 1 MiB. Thread safe. */
tsr_err_t tsr_spaces_client_call(const char *base_url, const char *method, const char *path,
                                 const tsr_spaces_client_principal_t *who, const json_t *body,
                                 long *status, json_t **resp, tsr_error_t *err);

#endif
