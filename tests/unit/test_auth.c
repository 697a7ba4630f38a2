/*
 * tests/unit/test_auth: pkg/auth against a real JWKS server (pkg/httpd on a loopback port that
 * the test controls): good tokens, wrong keys, unknown kids (refetch, rate-limited), expiry,
 * alg none/HS256, issuer and audience, tampering, an unreachable JWKS, the httpd hook that
 * replaces the principal headers, the service wiring knobs and the service-token cache.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "crypto.h"

/* ---- a JWKS server ----------------------------------------------------------------------------
 */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static char *g_jwks;        /* what GET /jwks answers */
static unsigned g_tok_hits; /* POST /internal/v1/service-tokens requests */

static tsr_err_t h_jwks(tsr_req_t *req, void *ud, tsr_error_t *err) {
    (void)ud;
    (void)err;
    pthread_mutex_lock(&g_mu);
    tsr_req_reply_bytes(req, 200, "application/json", g_jwks, strlen(g_jwks));
    pthread_mutex_unlock(&g_mu);
    return TSR_OK;
}

static tsr_err_t h_service_token(tsr_req_t *req, void *ud, tsr_error_t *err) {
    (void)ud;
    const char *a = tsr_req_header(req, "authorization");
    if (a == NULL || strcmp(a, "Bearer tsrp_secret") != 0) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "not a platform administrator token");
    }
    json_t *body = NULL;
    tsr_err_t rc = tsr_req_json(req, &body, err);
    if (rc != TSR_OK) {
        return rc;
    }
    pthread_mutex_lock(&g_mu);
    unsigned n = ++g_tok_hits;
    pthread_mutex_unlock(&g_mu);
    char tok[256];
    snprintf(tok, sizeof tok, "tok-%u-%s-%s-%zu", n,
             json_string_value(json_object_get(body, "userId")),
             json_string_value(json_array_get(json_object_get(body, "roles"), 0)),
             json_array_size(json_object_get(body, "groups")));
    json_decref(body);
    tsr_req_reply_json(req, 200, json_pack("{ss si}", "token", tok, "expiresIn", 300));
    return TSR_OK;
}

static tsr_httpd_t *g_srv;
static char g_url[128];

static void serve_jwks(const tsr_jwt_keyset_t *ks) {
    char *doc = NULL;
    ck_assert_int_eq(tsr_crypto_jwt_keyset_jwks_format(ks, &doc, NULL), TSR_OK);
    pthread_mutex_lock(&g_mu);
    free(g_jwks);
    g_jwks = doc;
    pthread_mutex_unlock(&g_mu);
}

static void server_start(void) {
    tsr_httpd_opts_t o = {.service = "jwks", .bind = "127.0.0.1", .threads = 2, .max_body = 65536};
    tsr_error_t err = {0};
    g_jwks = tsr_xstrdup("{\"keys\":[]}");
    if (tsr_httpd_create(&o, &g_srv, &err) != TSR_OK ||
        tsr_httpd_route(g_srv, "GET", "/jwks", h_jwks, NULL, &err) != TSR_OK ||
        tsr_httpd_route(g_srv, "POST", "/internal/v1/service-tokens", h_service_token, NULL,
                        &err) != TSR_OK ||
        tsr_httpd_start(g_srv, &err) != TSR_OK) {
        fprintf(stderr, "test JWKS server: %s\n", err.msg);
        exit(EXIT_FAILURE);
    }
    snprintf(g_url, sizeof g_url, "http://127.0.0.1:%u/jwks", (unsigned)tsr_httpd_port(g_srv));
}

static void server_stop(void) {
    tsr_httpd_destroy(g_srv);
    g_srv = NULL;
    free(g_jwks);
    g_jwks = NULL;
}

/* ---- tokens -----------------------------------------------------------------------------------
 */

static tsr_jwt_keyset_t *keyset_with(const char *kid, tsr_jwt_alg_t alg) {
    tsr_jwt_key_t *k = NULL;
    tsr_jwt_keyset_t *ks = tsr_crypto_jwt_keyset_create();
    ck_assert_int_eq(tsr_crypto_jwt_key_generate(kid, alg, &k, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_jwt_keyset_add(ks, k, true, NULL), TSR_OK);
    return ks;
}

#define TENANT "0123456789abcdef01234567"
#define USER "aaaaaaaaaaaaaaaaaaaaaaaa"

/* identity's claims, now-relative. */
static json_t *claims_now(int64_t exp_in_s) {
    json_int_t now = (json_int_t)(tsr_wall_ms() / 1000);
    return json_pack("{ss ss ss ss s[ss] ss sI sI sI ss}", "iss", TSR_AUTH_ISSUER, "aud",
                     TSR_AUTH_AUDIENCE, "sub", USER, "tid", TENANT, "roles", "TenantAdmin", "User",
                     "amr", "apikey", "iat", now, "nbf", now, "exp", now + exp_in_s, "jti", "j1");
}

static char *sign(const tsr_jwt_keyset_t *ks, json_t *claims) {
    char *tok = NULL;
    ck_assert_int_eq(tsr_crypto_jwt_sign(ks, TSR_AUTH_TYP, claims, &tok, NULL), TSR_OK);
    json_decref(claims);
    return tok;
}

static tsr_auth_verifier_t *verifier_every(const char *url, uint32_t refetch_ms) {
    tsr_auth_verifier_t *v = NULL;
    tsr_auth_verifier_opts_t o = {.jwks_url = url, .refetch_ms = refetch_ms, .timeout_ms = 2000};
    ck_assert_int_eq(tsr_auth_verifier_create(&o, &v, NULL), TSR_OK);
    return v;
}

static tsr_auth_verifier_t *verifier(const char *url) {
    return verifier_every(url, 60000);
}

static tsr_err_t verify(tsr_auth_verifier_t *v, const char *tok, tsr_error_t *err) {
    tsr_auth_principal_t p;
    tsr_err_t rc = tsr_auth_verify(v, tok, &p, err);
    tsr_auth_principal_cleanup(&p);
    return rc;
}

/* base64url of a JSON text (for hand-made tokens). */
static char *b64(const char *s) {
    tsr_buf_t b;
    tsr_buf_init(&b, 0);
    ck_assert_int_eq(tsr_crypto_b64url_encode(s, strlen(s), &b), TSR_OK);
    return tsr_buf_take(&b, NULL);
}

/* ---- the verifier ------------------------------------------------------------------------------
 */

START_TEST(test_verify_good_token_yields_principal) {
    tsr_jwt_keyset_t *ks = keyset_with("k1", TSR_JWT_ALG_ES256);
    serve_jwks(ks);
    tsr_auth_verifier_t *v = verifier(g_url);
    json_t *c = claims_now(300);
    json_object_set_new(c, "groups", json_pack("[ss]", "g1", "g2"));
    char *tok = sign(ks, c);
    tsr_auth_principal_t p;
    tsr_error_t err;
    ck_assert_int_eq(tsr_auth_verify(v, tok, &p, &err), TSR_OK);
    ck_assert_str_eq(p.tenant_id, TENANT);
    ck_assert_str_eq(p.user_id, USER);
    ck_assert_str_eq(p.roles, "TenantAdmin,User");
    ck_assert_str_eq(p.auth_type, "apikey");
    ck_assert(p.has_groups);
    ck_assert_str_eq(p.groups, "g1,g2");
    tsr_auth_principal_cleanup(&p);
    /* A second verification uses the cached set. */
    ck_assert_int_eq(verify(v, tok, &err), TSR_OK);
    ck_assert_uint_eq(tsr_auth_verifier_fetches(v), 1);
    free(tok);
    tsr_auth_verifier_destroy(v);
    tsr_crypto_jwt_keyset_destroy(ks);
}
END_TEST

START_TEST(test_verify_wrong_key_same_kid_is_refused) {
    tsr_jwt_keyset_t *published = keyset_with("k1", TSR_JWT_ALG_ES256);
    tsr_jwt_keyset_t *forger = keyset_with("k1", TSR_JWT_ALG_ES256);
    serve_jwks(published);
    tsr_auth_verifier_t *v = verifier(g_url);
    char *tok = sign(forger, claims_now(300));
    tsr_error_t err;
    ck_assert_int_eq(verify(v, tok, &err), TSR_EUNAUTHENTICATED);
    free(tok);
    tsr_auth_verifier_destroy(v);
    tsr_crypto_jwt_keyset_destroy(published);
    tsr_crypto_jwt_keyset_destroy(forger);
}
END_TEST

START_TEST(test_verify_unknown_kid_refetches_once_rate_limited) {
    tsr_jwt_keyset_t *old = keyset_with("old", TSR_JWT_ALG_ES256);
    serve_jwks(old);
    tsr_auth_verifier_t *v = verifier_every(g_url, 500);
    tsr_error_t err;
    char *t_old = sign(old, claims_now(300));
    ck_assert_int_eq(verify(v, t_old, &err), TSR_OK);
    ck_assert_uint_eq(tsr_auth_verifier_fetches(v), 1);
    nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = 600000000L},
              NULL); /* past the rate limit */
    /* identity rotates: the new kid is unknown to the cache, one refetch finds it. */
    tsr_jwt_key_t *k = NULL;
    ck_assert_int_eq(tsr_crypto_jwt_key_generate("new", TSR_JWT_ALG_ES256, &k, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_jwt_keyset_add(old, k, true, NULL), TSR_OK);
    serve_jwks(old);
    char *t_new = sign(old, claims_now(300));
    ck_assert_int_eq(verify(v, t_new, &err), TSR_OK);
    ck_assert_uint_eq(tsr_auth_verifier_fetches(v), 2);
    /* A kid nobody publishes right after: refused without another fetch (rate limit). */
    tsr_jwt_keyset_t *other = keyset_with("nobody", TSR_JWT_ALG_ES256);
    char *t_other = sign(other, claims_now(300));
    ck_assert_int_eq(verify(v, t_other, &err), TSR_EUNAUTHENTICATED);
    ck_assert_int_eq(verify(v, t_other, &err), TSR_EUNAUTHENTICATED);
    ck_assert_uint_eq(tsr_auth_verifier_fetches(v), 2);
    free(t_old);
    free(t_new);
    free(t_other);
    tsr_auth_verifier_destroy(v);
    tsr_crypto_jwt_keyset_destroy(old);
    tsr_crypto_jwt_keyset_destroy(other);
}
END_TEST

START_TEST(test_verify_expired_and_not_yet_valid_are_refused) {
    tsr_jwt_keyset_t *ks = keyset_with("k1", TSR_JWT_ALG_ES256);
    serve_jwks(ks);
    tsr_auth_verifier_t *v = verifier(g_url);
    tsr_error_t err;
    char *expired = sign(ks, claims_now(-120)); /* beyond the 30 s leeway */
    ck_assert_int_eq(verify(v, expired, &err), TSR_EUNAUTHENTICATED);
    char *leeway = sign(ks, claims_now(-5)); /* inside it */
    ck_assert_int_eq(verify(v, leeway, &err), TSR_OK);
    json_t *c = claims_now(600);
    json_object_set_new(c, "nbf", json_integer((json_int_t)(tsr_wall_ms() / 1000 + 300)));
    char *early = sign(ks, c);
    ck_assert_int_eq(verify(v, early, &err), TSR_EUNAUTHENTICATED);
    c = claims_now(300);
    json_object_del(c, "exp");
    char *no_exp = sign(ks, c);
    ck_assert_int_eq(verify(v, no_exp, &err), TSR_EUNAUTHENTICATED);
    free(expired);
    free(leeway);
    free(early);
    free(no_exp);
    tsr_auth_verifier_destroy(v);
    tsr_crypto_jwt_keyset_destroy(ks);
}
END_TEST

START_TEST(test_verify_alg_none_hs256_and_rs256_are_refused) {
    tsr_jwt_keyset_t *ks = keyset_with("k1", TSR_JWT_ALG_ES256);
    serve_jwks(ks);
    tsr_auth_verifier_t *v = verifier(g_url);
    tsr_error_t err;
    json_t *c = claims_now(300);
    char *payload_json = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    char *payload = b64(payload_json);
    const char *headers[] = {"{\"alg\":\"none\",\"typ\":\"tsr+jwt\",\"kid\":\"k1\"}",
                             "{\"alg\":\"HS256\",\"typ\":\"tsr+jwt\",\"kid\":\"k1\"}"};
    for (size_t i = 0; i < 2; i++) {
        char *h = b64(headers[i]);
        char tok[4096];
        snprintf(tok, sizeof tok, "%s.%s.%s", h, payload, i == 0 ? "" : "c2lnbmF0dXJl");
        ck_assert_int_eq(verify(v, tok, &err), TSR_EUNAUTHENTICATED);
        free(h);
    }
    /* RS256 with a key the JWKS publishes: still only ES256 is accepted. */
    tsr_jwt_keyset_t *rs = keyset_with("r1", TSR_JWT_ALG_RS256);
    serve_jwks(rs);
    tsr_auth_verifier_t *v2 = verifier(g_url);
    char *rtok = sign(rs, claims_now(300));
    ck_assert_int_eq(verify(v2, rtok, &err), TSR_EUNAUTHENTICATED);
    ck_assert_uint_eq(tsr_auth_verifier_fetches(v2), 1);
    tsr_auth_verifier_destroy(v2);
    free(rtok);
    free(payload);
    free(payload_json);
    tsr_auth_verifier_destroy(v);
    tsr_crypto_jwt_keyset_destroy(ks);
    tsr_crypto_jwt_keyset_destroy(rs);
}
END_TEST

START_TEST(test_verify_wrong_issuer_audience_or_typ_is_refused) {
    tsr_jwt_keyset_t *ks = keyset_with("k1", TSR_JWT_ALG_ES256);
    serve_jwks(ks);
    tsr_auth_verifier_t *v = verifier(g_url);
    tsr_error_t err;
    json_t *c = claims_now(300);
    json_object_set_new(c, "iss", json_string("https://evil.example"));
    char *t1 = sign(ks, c);
    ck_assert_int_eq(verify(v, t1, &err), TSR_EUNAUTHENTICATED);
    c = claims_now(300);
    json_object_set_new(c, "aud", json_string("someone-else"));
    char *t2 = sign(ks, c);
    ck_assert_int_eq(verify(v, t2, &err), TSR_EUNAUTHENTICATED);
    char *t3 = NULL; /* an OIDC-style ID token typ */
    c = claims_now(300);
    ck_assert_int_eq(tsr_crypto_jwt_sign(ks, "JWT", c, &t3, NULL), TSR_OK);
    json_decref(c);
    ck_assert_int_eq(verify(v, t3, &err), TSR_EUNAUTHENTICATED);
    free(t1);
    free(t2);
    free(t3);
    tsr_auth_verifier_destroy(v);
    tsr_crypto_jwt_keyset_destroy(ks);
}
END_TEST

START_TEST(test_verify_tampered_payload_is_refused) {
    tsr_jwt_keyset_t *ks = keyset_with("k1", TSR_JWT_ALG_ES256);
    serve_jwks(ks);
    tsr_auth_verifier_t *v = verifier(g_url);
    tsr_error_t err;
    char *tok = sign(ks, claims_now(300));
    /* Same header and signature, a payload that names another tenant. */
    json_t *c = claims_now(300);
    json_object_set_new(c, "tid", json_string("ffffffffffffffffffffffff"));
    char *pj = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    char *p64 = b64(pj);
    char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
    char forged[4096];
    snprintf(forged, sizeof forged, "%.*s.%s%s", (int)(d1 - tok), tok, p64, d2);
    ck_assert_int_eq(verify(v, forged, &err), TSR_EUNAUTHENTICATED);
    /* A malformed token and an empty one. */
    ck_assert_int_eq(verify(v, "not-a-token", &err), TSR_EUNAUTHENTICATED);
    ck_assert_int_eq(verify(v, "", &err), TSR_EUNAUTHENTICATED);
    /* A malformed groups claim is refused, not passed on. */
    c = claims_now(300);
    json_object_set_new(c, "groups", json_pack("[s]", "a,b"));
    char *bad_groups = sign(ks, c);
    ck_assert_int_eq(verify(v, bad_groups, &err), TSR_EUNAUTHENTICATED);
    free(bad_groups);
    free(pj);
    free(p64);
    free(tok);
    tsr_auth_verifier_destroy(v);
    tsr_crypto_jwt_keyset_destroy(ks);
}
END_TEST

START_TEST(test_verify_jwks_unreachable_is_401_not_crash) {
    tsr_jwt_keyset_t *ks = keyset_with("k1", TSR_JWT_ALG_ES256);
    tsr_auth_verifier_t *v = verifier("http://127.0.0.1:1/jwks");
    tsr_error_t err;
    char *tok = sign(ks, claims_now(300));
    ck_assert_int_eq(verify(v, tok, &err), TSR_EUNAUTHENTICATED);
    ck_assert_ptr_nonnull(strstr(err.msg, "signing keys"));
    /* A JWKS that is not JSON: the same. */
    tsr_auth_verifier_t *v2 = verifier(g_url);
    pthread_mutex_lock(&g_mu);
    free(g_jwks);
    g_jwks = tsr_xstrdup("<html>");
    pthread_mutex_unlock(&g_mu);
    ck_assert_int_eq(verify(v2, tok, &err), TSR_EUNAUTHENTICATED);
    free(tok);
    tsr_auth_verifier_destroy(v);
    tsr_auth_verifier_destroy(v2);
    tsr_crypto_jwt_keyset_destroy(ks);
    ck_assert_int_eq(tsr_auth_verifier_create(
                         &(tsr_auth_verifier_opts_t){.jwks_url = "file:///etc/passwd"}, &v, &err),
                     TSR_EINVAL);
}
END_TEST

START_TEST(test_verify_removed_key_refused_after_max_age) {
    tsr_jwt_keyset_t *ks = keyset_with("k1", TSR_JWT_ALG_ES256);
    tsr_jwt_keyset_t *other = keyset_with("k2", TSR_JWT_ALG_ES256);
    serve_jwks(ks);
    tsr_auth_verifier_t *v = NULL;
    tsr_auth_verifier_opts_t o = {.jwks_url = g_url, .max_age_ms = 300, .refetch_ms = 60000};
    ck_assert_int_eq(tsr_auth_verifier_create(&o, &v, NULL), TSR_OK);
    char *tok = sign(ks, claims_now(300));
    tsr_error_t err;
    ck_assert_int_eq(verify(v, tok, &err), TSR_OK);
    ck_assert_int_eq(verify(v, tok, &err), TSR_OK); /* remembered: no fetch */
    ck_assert_uint_eq(tsr_auth_verifier_fetches(v), 1);
    /* identity drops k1: once the JWKS is older than max_age the token stops counting, the
     * remembered verification included. */
    serve_jwks(other);
    nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = 400000000L}, NULL);
    ck_assert_int_eq(verify(v, tok, &err), TSR_EUNAUTHENTICATED);
    ck_assert_uint_eq(tsr_auth_verifier_fetches(v), 2);
    free(tok);
    tsr_auth_verifier_destroy(v);
    tsr_crypto_jwt_keyset_destroy(ks);
    tsr_crypto_jwt_keyset_destroy(other);
}
END_TEST

typedef struct {
    tsr_auth_verifier_t *v;
    const char *tok;
    int failures;
} worker_t;

static void *verify_many(void *arg) {
    worker_t *w = arg;
    for (int i = 0; i < 100; i++) {
        if (verify(w->v, w->tok, NULL) != TSR_OK) {
            w->failures++;
        }
        /* Spread the calls over several JWKS lifetimes (remembered verifications are fast). */
        nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = 50000L}, NULL);
    }
    return NULL;
}

START_TEST(test_verify_concurrent_with_refetches_is_consistent) {
    tsr_jwt_keyset_t *ks = keyset_with("k1", TSR_JWT_ALG_ES256);
    serve_jwks(ks);
    /* A JWKS that is stale after 1 ms: threads refetch and swap sets while others verify. */
    tsr_auth_verifier_t *v = NULL;
    tsr_auth_verifier_opts_t o = {.jwks_url = g_url, .max_age_ms = 1};
    ck_assert_int_eq(tsr_auth_verifier_create(&o, &v, NULL), TSR_OK);
    char *tok = sign(ks, claims_now(300));
    pthread_t th[4];
    worker_t w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker_t){.v = v, .tok = tok};
        ck_assert_int_eq(pthread_create(&th[i], NULL, verify_many, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(w[i].failures, 0);
    }
    ck_assert_uint_gt(tsr_auth_verifier_fetches(v), 1);
    free(tok);
    tsr_auth_verifier_destroy(v);
    tsr_crypto_jwt_keyset_destroy(ks);
}
END_TEST

/* ---- the httpd hook -------------------------------------------------------------------------- */

static tsr_err_t h_whoami(tsr_req_t *req, void *ud, tsr_error_t *err) {
    (void)ud;
    (void)err;
    const char *g = tsr_req_header(req, "x-tsr-groups");
    tsr_req_reply_json(
        req, 200,
        json_pack("{ss ss ss ss ss}", "tenant", tsr_req_header(req, "x-tsr-tenant-id"), "user",
                  tsr_req_header(req, "x-tsr-user-id"), "roles", tsr_req_header(req, "x-tsr-roles"),
                  "auth", tsr_req_header(req, "x-tsr-auth-type"), "groups",
                  g != NULL ? g : "(none)"));
    return TSR_OK;
}

static tsr_httpd_t *hooked(tsr_auth_verifier_t *v) {
    tsr_httpd_t *h = NULL;
    tsr_httpd_opts_t o = {.service = "svc",
                          .threads = 1,
                          .max_body = 65536,
                          .on_authn = tsr_auth_httpd_authn,
                          .authn_ud = v};
    ck_assert_int_eq(tsr_httpd_create(&o, &h, NULL), TSR_OK);
    ck_assert_int_eq(tsr_httpd_route(h, "GET", "/api/v1/whoami", h_whoami, NULL, NULL), TSR_OK);
    return h;
}

START_TEST(test_hook_forged_headers_without_token_are_401) {
    tsr_jwt_keyset_t *ks = keyset_with("k1", TSR_JWT_ALG_ES256);
    serve_jwks(ks);
    tsr_auth_verifier_t *v = verifier(g_url);
    tsr_httpd_t *h = hooked(v);
    tsr_httpd_response_t r;
    const char *forged[] = {"X-Tsr-Tenant-Id", TENANT, "X-Tsr-User-Id", USER, "X-Tsr-Roles",
                            "TenantAdmin",     NULL};
    tsr_httpd_inject(h, "GET", "/api/v1/whoami", forged, NULL, 0, &r);
    ck_assert_uint_eq(r.status, 401);
    ck_assert_ptr_nonnull(strstr(r.body, "\"errors\""));
    tsr_httpd_response_cleanup(&r);
    const char *bad[] = {"X-Tsr-Tenant-Id", TENANT, "X-Tsr-Token", "eyJhbGciOiJub25lIn0.e30.",
                         NULL};
    tsr_httpd_inject(h, "GET", "/api/v1/whoami", bad, NULL, 0, &r);
    ck_assert_uint_eq(r.status, 401);
    tsr_httpd_response_cleanup(&r);
    /* Health stays open. */
    tsr_httpd_inject(h, "GET", "/health/live", NULL, NULL, 0, &r);
    ck_assert_uint_eq(r.status, 200);
    tsr_httpd_response_cleanup(&r);
    tsr_httpd_destroy(h);
    tsr_auth_verifier_destroy(v);
    tsr_crypto_jwt_keyset_destroy(ks);
}
END_TEST

START_TEST(test_hook_valid_token_replaces_principal_headers) {
    tsr_jwt_keyset_t *ks = keyset_with("k1", TSR_JWT_ALG_ES256);
    serve_jwks(ks);
    tsr_auth_verifier_t *v = verifier(g_url);
    tsr_httpd_t *h = hooked(v);
    json_t *c = claims_now(300);
    json_object_set_new(c, "roles", json_pack("[s]", "User"));
    char *plain = sign(ks, c);
    c = claims_now(300);
    json_object_set_new(c, "groups", json_pack("[s]", "grp1"));
    char *grouped = sign(ks, c);
    tsr_httpd_response_t r;
    /* The client claims TenantAdmin and groups; the token says User and no groups. */
    const char *h1[] = {"X-Tsr-Tenant-Id",
                        "ffffffffffffffffffffffff",
                        "X-Tsr-Roles",
                        "TenantAdmin",
                        "X-Tsr-Groups",
                        "admins",
                        "x-tsr-roles",
                        "TenantAdmin",
                        "X-Tsr-Token",
                        plain,
                        NULL};
    tsr_httpd_inject(h, "GET", "/api/v1/whoami", h1, NULL, 0, &r);
    ck_assert_uint_eq(r.status, 200);
    json_t *b = json_loads(r.body, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(b, "tenant")), TENANT);
    ck_assert_str_eq(json_string_value(json_object_get(b, "user")), USER);
    ck_assert_str_eq(json_string_value(json_object_get(b, "roles")), "User");
    ck_assert_str_eq(json_string_value(json_object_get(b, "auth")), "apikey");
    ck_assert_str_eq(json_string_value(json_object_get(b, "groups")), "(none)");
    json_decref(b);
    tsr_httpd_response_cleanup(&r);
    const char *h2[] = {"X-Tsr-Groups", "admins", "X-Tsr-Token", grouped, NULL};
    tsr_httpd_inject(h, "GET", "/api/v1/whoami", h2, NULL, 0, &r);
    ck_assert_uint_eq(r.status, 200);
    b = json_loads(r.body, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(b, "groups")), "grp1");
    json_decref(b);
    tsr_httpd_response_cleanup(&r);
    free(plain);
    free(grouped);
    tsr_httpd_destroy(h);
    tsr_auth_verifier_destroy(v);
    tsr_crypto_jwt_keyset_destroy(ks);
}
END_TEST

START_TEST(test_setup_refuses_without_jwks_url_unless_trusting_headers) {
    tsr_httpd_opts_t o = {0};
    tsr_auth_verifier_t *v = NULL;
    tsr_error_t err;
    unsetenv("TSR_AUTH_JWKS_URL");
    unsetenv("TSR_AUTH_TRUST_HEADERS");
    ck_assert_int_eq(tsr_auth_httpd_setup(&o, &v, &err), TSR_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "TSR_AUTH_JWKS_URL"));
    ck_assert(o.on_authn == NULL);
    setenv("TSR_AUTH_TRUST_HEADERS", "1", 1);
    ck_assert_int_eq(tsr_auth_httpd_setup(&o, &v, &err), TSR_OK);
    ck_assert_ptr_null(v);
    ck_assert(o.on_authn == NULL);
    setenv("TSR_AUTH_JWKS_URL", g_url, 1);
    ck_assert_int_eq(tsr_auth_httpd_setup(&o, &v, &err), TSR_OK);
    ck_assert_ptr_nonnull(v);
    ck_assert(o.on_authn == tsr_auth_httpd_authn);
    ck_assert_ptr_eq(o.authn_ud, v);
    tsr_auth_verifier_destroy(v);
    setenv("TSR_AUTH_JWKS_URL", "ftp://x/", 1);
    ck_assert_int_eq(tsr_auth_httpd_setup(&o, &v, &err), TSR_EINVAL);
    unsetenv("TSR_AUTH_JWKS_URL");
    unsetenv("TSR_AUTH_TRUST_HEADERS");
}
END_TEST

/* ---- service tokens -------------------------------------------------------------------------- */

START_TEST(test_tokens_cached_per_principal_and_refused_without_platform_token) {
    char url[160];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/internal/v1/service-tokens",
             (unsigned)tsr_httpd_port(g_srv));
    tsr_auth_tokens_t *t = NULL;
    tsr_error_t err;
    pthread_mutex_lock(&g_mu);
    g_tok_hits = 0;
    pthread_mutex_unlock(&g_mu);
    ck_assert_int_eq(tsr_auth_tokens_create(url, "tsrp_secret", &t, &err), TSR_OK);
    char *a = NULL, *b = NULL, *c = NULL;
    ck_assert_int_eq(
        tsr_auth_tokens_get(t, TENANT, "tessera-reloader", "TenantAdmin", NULL, &a, &err), TSR_OK);
    ck_assert_str_eq(a, "tok-1-tessera-reloader-TenantAdmin-0");
    ck_assert_int_eq(
        tsr_auth_tokens_get(t, TENANT, "tessera-reloader", "TenantAdmin", NULL, &b, &err), TSR_OK);
    ck_assert_str_eq(b, a); /* cached */
    ck_assert_int_eq(tsr_auth_tokens_get(t, TENANT, USER, "User", "g1,g2", &c, &err), TSR_OK);
    ck_assert_str_eq(c, "tok-2-" USER "-User-2");
    free(c);
    ck_assert_int_eq(tsr_auth_tokens_get(t, TENANT, "bad user", "User", NULL, &c, &err),
                     TSR_EINVAL);
    ck_assert_ptr_null(c);
    free(a);
    free(b);
    free(c);
    tsr_auth_tokens_destroy(t);
    ck_assert_int_eq(tsr_auth_tokens_create(url, "tsrp_wrong", &t, &err), TSR_OK);
    ck_assert_int_eq(tsr_auth_tokens_get(t, TENANT, USER, "User", NULL, &a, &err),
                     TSR_EUNAUTHENTICATED);
    ck_assert_ptr_null(a);
    tsr_auth_tokens_destroy(t);
    /* Knobs: neither set is no token source; only one of them is an error. */
    unsetenv("TSR_AUTH_JWKS_URL");
    unsetenv("TSR_AUTH_SERVICE_TOKEN_FILE");
    ck_assert_int_eq(tsr_auth_tokens_create_from_config(&t, &err), TSR_OK);
    ck_assert_ptr_null(t);
    setenv("TSR_AUTH_JWKS_URL", g_url, 1);
    ck_assert_int_eq(tsr_auth_tokens_create_from_config(&t, &err), TSR_EINVAL);
    unsetenv("TSR_AUTH_JWKS_URL");
}
END_TEST

int main(void) {
    server_start();
    Suite *s = suite_create("auth");
    TCase *tv = tcase_create("verifier");
    tcase_add_test(tv, test_verify_good_token_yields_principal);
    tcase_add_test(tv, test_verify_wrong_key_same_kid_is_refused);
    tcase_add_test(tv, test_verify_unknown_kid_refetches_once_rate_limited);
    tcase_add_test(tv, test_verify_expired_and_not_yet_valid_are_refused);
    tcase_add_test(tv, test_verify_alg_none_hs256_and_rs256_are_refused);
    tcase_add_test(tv, test_verify_wrong_issuer_audience_or_typ_is_refused);
    tcase_add_test(tv, test_verify_tampered_payload_is_refused);
    tcase_add_test(tv, test_verify_jwks_unreachable_is_401_not_crash);
    tcase_add_test(tv, test_verify_concurrent_with_refetches_is_consistent);
    tcase_add_test(tv, test_verify_removed_key_refused_after_max_age);
    suite_add_tcase(s, tv);
    TCase *th = tcase_create("hook");
    tcase_add_test(th, test_hook_forged_headers_without_token_are_401);
    tcase_add_test(th, test_hook_valid_token_replaces_principal_headers);
    tcase_add_test(th, test_setup_refuses_without_jwks_url_unless_trusting_headers);
    suite_add_tcase(s, th);
    TCase *tt = tcase_create("tokens");
    tcase_add_test(tt, test_tokens_cached_per_principal_and_refused_without_platform_token);
    suite_add_tcase(s, tt);
    SRunner *sr = srunner_create(s);
    /* The JWKS server lives in this process: run the tests in it too. */
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    server_stop();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
