/*
 * pkg/auth's httpd hook and service wiring: the principal headers a handler reads are the
 * verified token's claims, never what the client sent. A service without TSR_AUTH_JWKS_URL
 * refuses to start unless TSR_AUTH_TRUST_HEADERS says it runs behind a trusted ingress in
 * development.
 */
#include <string.h>

#include "auth_int.h"
#include "config.h"
#include "log.h"

static const char *const PRINCIPAL_HEADERS[] = {"X-Tsr-Tenant-Id", "X-Tsr-User-Id", "X-Tsr-Roles",
                                                "X-Tsr-Groups", "X-Tsr-Auth-Type"};

tsr_err_t tsr_auth_httpd_authn(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_auth_principal_t p;
    for (size_t i = 0; i < sizeof PRINCIPAL_HEADERS / sizeof PRINCIPAL_HEADERS[0]; i++) {
        tsr_req_set_header(req, PRINCIPAL_HEADERS[i], NULL);
    }
    const char *tok = tsr_req_header(req, "X-Tsr-Token");
    if (tok == NULL || tok[0] == '\0') {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "authentication required");
    }
    tsr_err_t rc = tsr_auth_verify(ud, tok, &p, err);
    if (rc == TSR_OK) {
        tsr_req_set_header(req, "X-Tsr-Tenant-Id", p.tenant_id);
        tsr_req_set_header(req, "X-Tsr-User-Id", p.user_id);
        tsr_req_set_header(req, "X-Tsr-Roles", p.roles);
        tsr_req_set_header(req, "X-Tsr-Auth-Type", p.auth_type);
        if (p.has_groups && p.groups[0] != '\0') {
            tsr_req_set_header(req, "X-Tsr-Groups", p.groups);
        }
    }
    tsr_auth_principal_cleanup(&p);
    return rc;
}

tsr_err_t tsr_auth_httpd_setup(tsr_httpd_opts_t *opts, tsr_auth_verifier_t **out,
                               tsr_error_t *err) {
    bool trust = false;
    *out = NULL;
    const char *url = tsr_config_get("TSR_AUTH_JWKS_URL");
    tsr_err_t rc = tsr_config_get_bool("TSR_AUTH_TRUST_HEADERS", &trust, err);
    if (rc != TSR_OK) {
        return rc;
    }
    if (url[0] == '\0') {
        if (!trust) {
            return tsr_error_set(err, TSR_EINVAL,
                                 "TSR_AUTH_JWKS_URL is not set: the service cannot verify "
                                 "callers (set TSR_AUTH_TRUST_HEADERS=1 only for development "
                                 "behind a trusted ingress)");
        }
        tsr_log_warn(NULL, "SECURITY WARNING: TSR_AUTH_TRUST_HEADERS is set and "
                           "TSR_AUTH_JWKS_URL is not: this service believes any X-Tsr-* header "
                           "sent to it; never run it like this where others can reach its port");
        return TSR_OK;
    }
    tsr_auth_verifier_opts_t vo = {.jwks_url = url};
    tsr_error_t inner = {0};
    if ((rc = tsr_auth_verifier_create(&vo, out, &inner)) != TSR_OK) {
        return tsr_error_set(err, rc, "TSR_AUTH_JWKS_URL: %s", inner.msg);
    }
    opts->on_authn = tsr_auth_httpd_authn;
    opts->authn_ud = *out;
    tsr_log_info(NULL, "auth: callers are verified against %s", url);
    return TSR_OK;
}
