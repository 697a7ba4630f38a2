/*
 * pkg/identity: who is calling, in which tenant, with which rights. Layer: service.
 * Today it holds the authentication decision the ingress asks for on every request
 * (nginx auth_request → GET /internal/v1/authn). It fails closed: until accounts, sessions
 * and API keys exist, no credential verifies, so every API call answers 401.
 */
#ifndef TSR_IDENTITY_H
#define TSR_IDENTITY_H

#include "httpd.h"

/* Register identity's routes on h. ud is unused for now (NULL). */
tsr_err_t tsr_identity_routes(tsr_httpd_t *h, void *ud, tsr_error_t *err);

#endif
