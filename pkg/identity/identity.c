/*
 * pkg/identity HTTP handlers. The authn decision is the single place the ingress asks "who
 * is this?"; it answers 200 with the principal in headers when a credential verifies, and
 * 401 otherwise. No credential store exists yet, so it always answers 401 (fail closed).
 */
#include "identity.h"

static tsr_err_t h_authn(tsr_req_t *req, void *ud, tsr_error_t *err) {
    (void)ud;
    const char *authz = tsr_req_header(req, "authorization");
    if (authz == NULL && tsr_req_header(req, "cookie") == NULL) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "authentication required");
    }
    return tsr_error_set(err, TSR_EUNAUTHENTICATED, "the credential is not recognised");
}

tsr_err_t tsr_identity_routes(tsr_httpd_t *h, void *ud, tsr_error_t *err) {
    return tsr_httpd_route(h, "GET", "/internal/v1/authn", h_authn, ud, err);
}
