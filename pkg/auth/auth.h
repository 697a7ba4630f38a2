/*
 * pkg/auth: how a service knows who is calling. A verifier checks the platform JWT that
 * identity mints (ES256 only, typ "tsr+jwt", iss/aud, exp/nbf/iat with a small leeway) against
 * identity's JWKS, fetched over HTTP and cached (refetched on an unknown kid, rate-limited), and
 * yields the principal. An httpd hook puts the verified principal into the X-Tsr-* request
 * headers the handlers read, replacing whatever the client sent. A token source gets
 * short-lived service tokens from identity for calls a service makes on its own (reloads).
 * Layer: adapter (core, log, config, httpd, crypto, libcurl). See pkg/auth/README.md.
 */
#ifndef TSR_AUTH_H
#define TSR_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "httpd.h"

#define TSR_AUTH_ISSUER "tessera-identity" /* what identity mints */
#define TSR_AUTH_AUDIENCE "tessera"
#define TSR_AUTH_TYP "tsr+jwt"
#define TSR_AUTH_ID_MAX 64      /* tenant, user and group ids: bytes */
#define TSR_AUTH_ROLES_MAX 16   /* roles in one token */
#define TSR_AUTH_GROUPS_MAX 512 /* groups in one token */

/* ---- the verifier -------------------------------------------------------------------------- */

typedef struct tsr_auth_verifier tsr_auth_verifier_t;

typedef struct {
    const char *jwks_url; /* identity's JWKS (http or https); required; copied */
    const char *issuer;   /* NULL: TSR_AUTH_ISSUER; copied */
    const char *audience; /* NULL: TSR_AUTH_AUDIENCE; copied */
    uint32_t leeway_s;    /* tolerance on exp/nbf/iat; 0: 30 */
    uint32_t refetch_ms;  /* least time between two fetches caused by unknown kids; 0: 5000 */
    uint32_t max_age_ms;  /* the cached JWKS is refetched when older; 0: 60000 */
    uint32_t timeout_ms;  /* one fetch; 0: 3000 */
} tsr_auth_verifier_opts_t;

/* The caller a valid token names. Strings are NUL-terminated and validated: ids are 1..64
 * bytes of [A-Za-z0-9._:@-], roles and groups comma-separated lists of such. */
typedef struct {
    char tenant_id[TSR_AUTH_ID_MAX + 1];
    char user_id[TSR_AUTH_ID_MAX + 1];
    char roles[TSR_AUTH_ROLES_MAX * (TSR_AUTH_ID_MAX + 1)];
    char *groups;       /* returned-owned ("" when the token has none): principal_cleanup */
    bool has_groups;    /* the token carried a "groups" claim */
    char auth_type[33]; /* the "amr" claim: apikey, session, jwt, service; default "jwt" */
    int64_t expires_s;  /* exp, s since the epoch */
} tsr_auth_principal_t;

/* Create a verifier (nothing is fetched yet: the first verify fetches the JWKS, so a service
 * starts while identity is still coming up). *out returned-owned: tsr_auth_verifier_destroy.
 * TSR_EINVAL without an http(s) jwks_url. */
tsr_err_t tsr_auth_verifier_create(const tsr_auth_verifier_opts_t *opts, tsr_auth_verifier_t **out,
                                   tsr_error_t *err);
void tsr_auth_verifier_destroy(tsr_auth_verifier_t *v); /* NULL: no-op */

/* Verify a compact platform JWT (borrowed) and fill *p (cleanup it whatever the result). An
 * invalid token, or one that cannot be checked because the JWKS cannot be fetched, is
 * TSR_EUNAUTHENTICATED with the reason in err (fail closed). Thread safe; concurrent
 * verifications share one fetch. */
tsr_err_t tsr_auth_verify(tsr_auth_verifier_t *v, const char *token, tsr_auth_principal_t *p,
                          tsr_error_t *err);
void tsr_auth_principal_cleanup(tsr_auth_principal_t *p);

/* JWKS fetches done so far (tests and metrics). Thread safe. */
unsigned tsr_auth_verifier_fetches(tsr_auth_verifier_t *v);

/* ---- the httpd hook ------------------------------------------------------------------------- */

/* tsr_httpd_opts_t.on_authn with ud = a tsr_auth_verifier_t: removes the client's X-Tsr-Tenant-Id,
 * X-Tsr-User-Id, X-Tsr-Roles, X-Tsr-Groups and X-Tsr-Auth-Type, verifies X-Tsr-Token and sets
 * those headers from its claims (X-Tsr-Groups only when the token has a groups claim).
 * A missing or invalid token: TSR_EUNAUTHENTICATED (401 in the platform's error body). */
tsr_err_t tsr_auth_httpd_authn(tsr_req_t *req, void *ud, tsr_error_t *err);

/* What cmd/<service>/main.c calls in its setup: with TSR_AUTH_JWKS_URL set, a verifier hooked
 * into opts (*out returned-owned: destroy it after the server stopped); without it, only when
 * TSR_AUTH_TRUST_HEADERS is true (development) a loud warning, *out = NULL and no hook;
 * otherwise TSR_EINVAL: the service refuses to start. */
tsr_err_t tsr_auth_httpd_setup(tsr_httpd_opts_t *opts, tsr_auth_verifier_t **out, tsr_error_t *err);

/* ---- service tokens ------------------------------------------------------------------------- */

/* Tokens a service asks identity for when it calls another service on its own account (no user
 * request in hand, or one that may have outlived the user's token): POST
 * <identity>/internal/v1/service-tokens with the platform token from
 * TSR_AUTH_SERVICE_TOKEN_FILE. Cached per (tenant, user, roles) until a minute before expiry. */
typedef struct tsr_auth_tokens tsr_auth_tokens_t;

/* url: identity's service-token endpoint; platform_token: "tsrp_..." (copied). *out
 * returned-owned: tsr_auth_tokens_destroy. */
tsr_err_t tsr_auth_tokens_create(const char *url, const char *platform_token,
                                 tsr_auth_tokens_t **out, tsr_error_t *err);
/* From the knobs: TSR_AUTH_SERVICE_TOKEN_FILE (the platform token, mode 0600) and the endpoint
 * on the origin of TSR_AUTH_JWKS_URL. Neither set: *out = NULL and TSR_OK (services trusting
 * headers send none); only one of them: TSR_EINVAL. */
tsr_err_t tsr_auth_tokens_create_from_config(tsr_auth_tokens_t **out, tsr_error_t *err);
void tsr_auth_tokens_destroy(tsr_auth_tokens_t *t); /* NULL: no-op */

/* A token naming user of tenant with roles and groups (comma-separated; roles are names, e.g.
 * "TenantAdmin", NULL or "": User; groups ids, NULL or "": none). *jwt returned-owned (free).
 * TSR_EUNAVAILABLE when identity does not answer, TSR_EUNAUTHENTICATED when it refuses the
 * platform token. Thread safe. */
tsr_err_t tsr_auth_tokens_get(tsr_auth_tokens_t *t, const char *tenant, const char *user,
                              const char *roles, const char *groups, char **jwt, tsr_error_t *err);

/* tsr_auth_tokens_get with ud = a tsr_auth_tokens_t, in the shape callbacks take. */
tsr_err_t tsr_auth_tokens_cb(void *ud, const char *tenant, const char *user, const char *roles,
                             const char *groups, char **jwt, tsr_error_t *err);

#endif
