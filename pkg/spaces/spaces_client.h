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

#endif
