/*
 * Unit tests for pkg/identity, in-process through tsr_httpd_inject over an in-memory SQLite
 * store: the authn decision, tenants, users, roles, API keys, CSRF, bootstrap, and tenant
 * isolation on every endpoint (another tenant's object answers exactly like a missing one).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "openapi_check.h"
#include "crypto.h"
#include "events.h"
#include "identity.h"
#include "identity_int.h"
#include "log.h"

#define HOST_A "a.test:8080"
#define HOST_B "b.test"
#define MISSING_ID "0123456789abcdef01234567"

typedef struct {
    tsr_identity_t *id;
    tsr_httpd_t *h;
    tsr_identity_boot_t a, b; /* tenant admins of A and B */
    int audits;
    tsr_store_t *store; /* borrowed: identity owns it */
    char dir[64];       /* the store's temporary directory */
} fx_t;

static void on_audit(void *ud, const char *tenant, const char *user, const char *type,
                     json_t *data) {
    (void)tenant;
    (void)user;
    (void)type;
    (void)data;
    ((fx_t *)ud)->audits++;
}

/* A fresh service over a temporary SQLite store and a random KEK. */
static void fx_init_docs(fx_t *fx) {
    tsr_error_t err;
    char uri[128];
    uint8_t kek[TSR_CRYPTO_KEY_LEN];
    memset(fx, 0, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/tsr-identity-unit.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(fx->dir));
    snprintf(uri, sizeof uri, "sqlite:%s/store.db?synchronous=normal", fx->dir);
    tsr_identity_opts_t io = {.max_keys_per_user = 3, .api_key_max_expiry_days = 30};
    io.on_audit = on_audit;
    io.audit_ud = fx;
    ck_assert_int_eq(tsr_identity_store_open(uri, &io.store, &err), TSR_OK);
    fx->store = io.store;
    io.kek = tsr_crypto_kek_set_create();
    ck_assert_int_eq(tsr_crypto_random(kek, sizeof kek, &err), TSR_OK);
    ck_assert_int_eq(tsr_crypto_kek_set_add(io.kek, kek, true, &err), TSR_OK);
    ck_assert_int_eq(tsr_identity_create(&io, &fx->id, &err), TSR_OK);
    tsr_httpd_opts_t o = {
        .service = "identity", .bind = "127.0.0.1", .threads = 1, .max_body = 65536};
    ck_assert_int_eq(tsr_httpd_create(&o, &fx->h, &err), TSR_OK);
    ck_assert_int_eq(tsr_identity_routes(fx->h, fx->id, &err), TSR_OK);
}

static void fx_init(fx_t *fx) {
    tsr_error_t err;
    fx_init_docs(fx);
    ck_assert_int_eq(tsr_identity_bootstrap(fx->id, "http://" HOST_A "/x", &fx->a, &err), TSR_OK);
    ck_assert(fx->a.created);
    const char *hb[] = {HOST_B, NULL};
    char tb[25];
    ck_assert_int_eq(tsr_identity_tenant_create(fx->id, "b", hb, tb, &err), TSR_OK);
    ck_assert_int_eq(tsr_identity_tenant_admin_create(fx->id, tb, "root@b.test", &fx->b, &err),
                     TSR_OK);
}

static void fx_cleanup(fx_t *fx) {
    static const char *const files[] = {"store.db", "store.db-wal", "store.db-shm"};
    char path[128];
    tsr_httpd_destroy(fx->h);
    tsr_identity_destroy(fx->id);
    tsr_identity_boot_cleanup(&fx->a);
    tsr_identity_boot_cleanup(&fx->b);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", fx->dir, files[i]);
        unlink(path);
    }
    rmdir(fx->dir);
}

/* One request with Host and (when key != NULL) a bearer key; body is JSON when non-NULL. */
static void call(fx_t *fx, const char *method, const char *path, const char *host, const char *key,
                 const char *body, tsr_httpd_response_t *r) {
    char authz[1024 * 16];
    const char *hdr[9] = {NULL};
    size_t n = 0;
    if (host != NULL) {
        hdr[n++] = "Host";
        hdr[n++] = host;
    }
    if (key != NULL) {
        snprintf(authz, sizeof authz, "Bearer %s", key);
        hdr[n++] = "Authorization";
        hdr[n++] = authz;
    }
    if (body != NULL) {
        hdr[n++] = "Content-Type";
        hdr[n++] = "application/json";
    }
    tsr_httpd_inject(fx->h, method, path, hdr, body, body != NULL ? strlen(body) : 0, r);
}

static json_t *body_json(const tsr_httpd_response_t *r) {
    json_error_t je;
    json_t *j = json_loads(r->body, 0, &je);
    ck_assert_msg(j != NULL, "not JSON: %s", r->body);
    return j;
}

static const char *hdr(const tsr_httpd_response_t *r, const char *name) {
    return json_string_value(json_object_get(r->headers, name));
}

/* The error body without its traceId, for comparing two 404s. */
static char *error_sans_trace(const tsr_httpd_response_t *r) {
    json_t *j = body_json(r);
    json_object_del(j, "traceId");
    char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(j);
    return s;
}

/* call() that must answer want; returns the body as JSON (or NULL for an empty body). */
static json_t *expect(fx_t *fx, const char *method, const char *path, const char *host,
                      const char *key, const char *body, unsigned want) {
    tsr_httpd_response_t r;
    call(fx, method, path, host, key, body, &r);
    ck_assert_msg(r.status == want, "%s %s: status %u, want %u: %s", method, path, r.status, want,
                  r.body);
    json_t *j = r.body_len > 0 ? body_json(&r) : NULL;
    tsr_httpd_response_cleanup(&r);
    return j;
}

/* The cross-tenant 404 equals a missing-id 404 (body without traceId, same status). */
static void assert_same_404(fx_t *fx, const char *method, const char *path_other,
                            const char *path_missing, const char *body) {
    tsr_httpd_response_t r1, r2;
    call(fx, method, path_other, HOST_A, fx->a.api_key, body, &r1);
    call(fx, method, path_missing, HOST_A, fx->a.api_key, body, &r2);
    ck_assert_msg(r1.status == 404, "%s %s: %u %s", method, path_other, r1.status, r1.body);
    ck_assert_uint_eq(r2.status, 404);
    char *e1 = error_sans_trace(&r1), *e2 = error_sans_trace(&r2);
    ck_assert_str_eq(e1, e2);
    free(e1);
    free(e2);
    tsr_httpd_response_cleanup(&r1);
    tsr_httpd_response_cleanup(&r2);
}

static char *new_user(fx_t *fx, const char *email) {
    char body[512];
    snprintf(body, sizeof body, "{\"email\":\"%s\",\"name\":\"N\"}", email);
    json_t *u = expect(fx, "POST", "/api/v1/users", HOST_A, fx->a.api_key, body, 201);
    char *id = tsr_xstrdup(json_string_value(json_object_get(u, "id")));
    json_decref(u);
    return id;
}

/* An active user in A with the given role names and an API key; returns the token. */
static char *user_with_key(fx_t *fx, const char *email, const char *roles_json, char uid[25]) {
    char path[128], body[512];
    char *id = new_user(fx, email);
    snprintf(path, sizeof path, "/api/v1/users/%s", id);
    snprintf(body, sizeof body,
             "[{\"op\":\"replace\",\"path\":\"/status\",\"value\":\"active\"},"
             "{\"op\":\"replace\",\"path\":\"/assignedRoles\",\"value\":%s}]",
             roles_json);
    json_decref(expect(fx, "PATCH", path, HOST_A, fx->a.api_key, body, 204));
    json_t *key = NULL;
    char *token = NULL;
    tsr_error_t err;
    ck_assert_int_eq(
        tsr_identity__key_create(fx->id, fx->a.tenant_id, id, id, "t", 0, &key, &token, &err),
        TSR_OK);
    json_decref(key);
    memcpy(uid, id, 25);
    free(id);
    return token;
}

/* ---- authn ------------------------------------------------------------------------------- */

START_TEST(test_authn_without_credentials_is_401) {
    fx_t fx;
    fx_init(&fx);
    tsr_httpd_response_t r;
    call(&fx, "GET", "/internal/v1/authn", HOST_A, NULL, NULL, &r);
    ck_assert_uint_eq(r.status, 401);
    ck_assert_ptr_nonnull(strstr(r.body, "\"HTTP-401\""));
    ck_assert_ptr_nonnull(strstr(r.body, "authentication required"));
    ck_assert_ptr_null(hdr(&r, "x-tsr-tenant-id"));
    tsr_httpd_response_cleanup(&r);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_authn_unknown_bearer_is_401) {
    fx_t fx;
    fx_init(&fx);
    tsr_httpd_response_t r;
    call(&fx, "GET", "/internal/v1/authn", HOST_A, "made-up", NULL, &r);
    ck_assert_uint_eq(r.status, 401);
    ck_assert_ptr_nonnull(strstr(r.body, "not recognised"));
    tsr_httpd_response_cleanup(&r);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_authn_valid_key_is_200_with_principal_headers) {
    fx_t fx;
    fx_init(&fx);
    tsr_httpd_response_t r;
    call(&fx, "GET", "/internal/v1/authn", HOST_A, fx.a.api_key, NULL, &r);
    ck_assert_uint_eq(r.status, 200);
    ck_assert_str_eq(hdr(&r, "x-tsr-tenant-id"), fx.a.tenant_id);
    ck_assert_str_eq(hdr(&r, "x-tsr-user-id"), fx.a.user_id);
    ck_assert_str_eq(hdr(&r, "x-tsr-roles"), "TenantAdmin,User");
    ck_assert_str_eq(hdr(&r, "x-tsr-auth-type"), "apikey");
    tsr_httpd_response_cleanup(&r);
    /* The port and the case of the Host do not matter. */
    call(&fx, "GET", "/internal/v1/authn", "A.TEST", fx.a.api_key, NULL, &r);
    ck_assert_uint_eq(r.status, 200);
    tsr_httpd_response_cleanup(&r);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_authn_key_of_other_tenant_is_401) {
    fx_t fx;
    fx_init(&fx);
    json_decref(expect(&fx, "GET", "/internal/v1/authn", HOST_B, fx.a.api_key, NULL, 401));
    json_decref(expect(&fx, "GET", "/internal/v1/authn", HOST_A, fx.b.api_key, NULL, 401));
    json_decref(expect(&fx, "GET", "/internal/v1/authn", HOST_B, fx.b.api_key, NULL, 200));
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_authn_tampered_or_malformed_key_is_401) {
    fx_t fx;
    fx_init(&fx);
    char *k = tsr_xstrdup(fx.a.api_key);
    size_t n = strlen(k);
    k[n - 1] = k[n - 1] == 'A' ? 'B' : 'A';
    json_decref(expect(&fx, "GET", "/internal/v1/authn", HOST_A, k, NULL, 401));
    k[n - 1] = '\0';
    json_decref(expect(&fx, "GET", "/internal/v1/authn", HOST_A, k, NULL, 401));
    free(k);
    char huge[9000];
    memset(huge, 'x', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    memcpy(huge, fx.a.api_key, strlen(fx.a.api_key));
    json_decref(expect(&fx, "GET", "/internal/v1/authn", HOST_A, huge, NULL, 401));
    json_decref(expect(&fx, "GET", "/internal/v1/authn", "nobody.test", fx.a.api_key, NULL, 401));
    json_decref(expect(&fx, "GET", "/internal/v1/authn", "bad host!", fx.a.api_key, NULL, 401));
    json_decref(expect(&fx, "GET", "/internal/v1/authn", NULL, fx.a.api_key, NULL, 401));
    /* Not a bearer scheme. */
    tsr_httpd_response_t r;
    const char *h[] = {"Host", HOST_A, "Authorization", "Basic YTpi", NULL};
    tsr_httpd_inject(fx.h, "GET", "/internal/v1/authn", h, NULL, 0, &r);
    ck_assert_uint_eq(r.status, 401);
    tsr_httpd_response_cleanup(&r);
    fx_cleanup(&fx);
}
END_TEST

static tsr_err_t failing_get(void *ud, const char *coll, const char *tenant, const char *id,
                             json_t **out, tsr_error_t *err) {
    (void)ud, (void)coll, (void)tenant, (void)id;
    *out = NULL;
    return tsr_error_set(err, TSR_EUNAVAILABLE, "store down");
}

static tsr_err_t failing_find(void *ud, const char *coll, const char *field, const char *value,
                              json_t **out, tsr_error_t *err) {
    (void)ud, (void)coll, (void)field, (void)value;
    *out = NULL;
    return tsr_error_set(err, TSR_EUNAVAILABLE, "store down");
}

START_TEST(test_authn_store_down_is_503_never_200) {
    fx_t fx;
    fx_init(&fx);
    tsr_error_t err;
    fx_t down;
    fx_init_docs(&down);
    down.id->docs.get = failing_get;
    down.id->docs.find = failing_find;
    json_decref(expect(&down, "GET", "/internal/v1/authn", HOST_A, fx.a.api_key, NULL, 503));
    ck_assert_int_ne(tsr_identity_ready(down.id, &err), TSR_OK);
    ck_assert_int_eq(tsr_identity_ready(fx.id, &err), TSR_OK);
    fx_cleanup(&down);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_authn_disabled_user_key_is_401) {
    fx_t fx;
    fx_init(&fx);
    char uid[25], path[128];
    char *tok = user_with_key(&fx, "u@a.test", "[]", uid);
    json_decref(expect(&fx, "GET", "/internal/v1/authn", HOST_A, tok, NULL, 200));
    snprintf(path, sizeof path, "/api/v1/users/%s", uid);
    json_decref(expect(&fx, "PATCH", path, HOST_A, fx.a.api_key,
                       "[{\"op\":\"replace\",\"path\":\"/status\",\"value\":\"disabled\"}]", 204));
    json_decref(expect(&fx, "GET", "/internal/v1/authn", HOST_A, tok, NULL, 401));
    free(tok);
    fx_cleanup(&fx);
}
END_TEST

/* ---- tenants, roles, csrf ------------------------------------------------------------------ */

START_TEST(test_tenants_me_returns_callers_tenant) {
    fx_t fx;
    fx_init(&fx);
    json_t *t = expect(&fx, "GET", "/api/v1/tenants/me", HOST_A, fx.a.api_key, NULL, 200);
    ck_assert_str_eq(json_string_value(json_object_get(t, "id")), fx.a.tenant_id);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(t, "hostnames"), 0)),
                     "a.test");
    const char *self = json_string_value(
        json_object_get(json_object_get(json_object_get(t, "links"), "self"), "href"));
    ck_assert_ptr_nonnull(self);
    ck_assert_ptr_nonnull(strstr(self, "http://a.test:8080/api/v1/tenants/"));
    json_decref(t);
    json_decref(expect(&fx, "GET", "/api/v1/tenants/me", HOST_A, NULL, NULL, 401));
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_tenants_get_other_tenant_is_404_like_missing) {
    fx_t fx;
    fx_init(&fx);
    char p1[128];
    snprintf(p1, sizeof p1, "/api/v1/tenants/%s", fx.b.tenant_id);
    assert_same_404(&fx, "GET", p1, "/api/v1/tenants/" MISSING_ID, NULL);
    assert_same_404(&fx, "GET", "/api/v1/tenants/not-an-id", "/api/v1/tenants/" MISSING_ID, NULL);
    snprintf(p1, sizeof p1, "/api/v1/tenants/%s", fx.a.tenant_id);
    json_decref(expect(&fx, "GET", p1, HOST_A, fx.a.api_key, NULL, 200));
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_tenant_create_hostname_taken_is_conflict_and_claims_nothing) {
    fx_t fx;
    fx_init(&fx);
    tsr_error_t err;
    char tid[25];
    const char *h1[] = {"new.test", "a.test", NULL};
    ck_assert_int_eq(tsr_identity_tenant_create(fx.id, "n", h1, tid, &err), TSR_ECONFLICT);
    const char *h2[] = {"new.test", NULL};
    ck_assert_int_eq(tsr_identity_tenant_create(fx.id, "n", h2, tid, &err), TSR_OK);
    const char *bad[][3] = {{"x.test:80", NULL, NULL},
                            {"a b", NULL, NULL},
                            {"dup.test", "DUP.test", NULL},
                            {NULL, NULL, NULL}};
    for (size_t i = 0; i < 4; i++) {
        ck_assert_int_eq(tsr_identity_tenant_create(fx.id, "n", bad[i], tid, &err), TSR_EINVAL);
    }
    ck_assert_int_eq(tsr_identity_tenant_create(fx.id, "", h2, tid, &err), TSR_EINVAL);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_tenant_del_removes_everything_and_spares_others) {
    fx_t fx;
    fx_init(&fx);
    tsr_error_t err;
    json_decref(expect(&fx, "POST", "/api/v1/users", HOST_B, fx.b.api_key,
                       "{\"email\":\"x@b.test\"}", 201));
    json_decref(
        expect(&fx, "POST", "/api/v1/groups", HOST_B, fx.b.api_key, "{\"name\":\"g\"}", 201));
    ck_assert_int_eq(tsr_identity_tenant_del(fx.id, fx.b.tenant_id, &err), TSR_OK);
    json_decref(expect(&fx, "GET", "/internal/v1/authn", HOST_B, fx.b.api_key, NULL, 401));
    const char *colls[] = {TSR_ID__C_USERS,  TSR_ID__C_EMAILS, TSR_ID__C_SECRETS,
                           TSR_ID__C_KEYS,   TSR_ID__C_GROUPS, TSR_ID__C_GROUP_NAMES,
                           TSR_ID__C_TENANTS};
    for (size_t i = 0; i < 7; i++) {
        json_t *rows = NULL;
        ck_assert_int_eq(fx.id->docs.list(fx.id->docs.ud, colls[i], fx.b.tenant_id, NULL, NULL,
                                          NULL, 10, &rows, &err),
                         TSR_OK);
        ck_assert_msg(json_array_size(rows) == 0, "%s left behind", colls[i]);
        json_decref(rows);
    }
    ck_assert_int_eq(tsr_identity_tenant_del(fx.id, fx.b.tenant_id, &err), TSR_ENOTFOUND);
    /* A is untouched, and B's hostname is free for a new tenant. */
    json_decref(expect(&fx, "GET", "/api/v1/users/me", HOST_A, fx.a.api_key, NULL, 200));
    const char *hb[] = {HOST_B, NULL};
    char tid[25];
    ck_assert_int_eq(tsr_identity_tenant_create(fx.id, "b2", hb, tid, &err), TSR_OK);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_internal_tenants_need_platform_token) {
    fx_t fx;
    fx_init(&fx);
    tsr_error_t err;
    char *pt = NULL;
    ck_assert_int_eq(tsr_identity_platform_token_create(fx.id, "ops", &pt, &err), TSR_OK);
    const char *body = "{\"name\":\"c\",\"hostnames\":[\"c.test\"],\"adminEmail\":\"root@c.test\"}";
    /* Tenant admins' keys and sessions are no platform credentials. */
    json_decref(expect(&fx, "POST", "/internal/v1/tenants", HOST_A, fx.a.api_key, body, 401));
    json_decref(expect(&fx, "POST", "/internal/v1/tenants", HOST_A, NULL, body, 401));
    json_t *t = expect(&fx, "POST", "/internal/v1/tenants", NULL, pt, body, 201);
    const char *cid = json_string_value(json_object_get(t, "id"));
    const char *ckey = json_string_value(json_object_get(json_object_get(t, "admin"), "apiKey"));
    ck_assert_ptr_nonnull(ckey);
    json_decref(expect(&fx, "GET", "/api/v1/users/me", "c.test", ckey, NULL, 200));
    json_decref(expect(&fx, "POST", "/internal/v1/tenants", NULL, pt, body, 409));
    const char *bad[] = {"{\"name\":\"d\"}", "{\"name\":\"d\",\"hostnames\":[1]}",
                         "{\"name\":\"d\",\"hostnames\":[\"d.test\"],\"x\":1}",
                         "{\"name\":\"d\",\"hostnames\":[\"d.test\"],\"adminEmail\":\"bad\"}"};
    for (size_t i = 0; i < 4; i++) {
        json_decref(expect(&fx, "POST", "/internal/v1/tenants", NULL, pt, bad[i], 400));
    }
    /* The failed admin left no tenant behind: d.test is still free. */
    json_decref(expect(&fx, "POST", "/internal/v1/tenants", NULL, pt,
                       "{\"name\":\"d\",\"hostnames\":[\"d.test\"]}", 201));
    char p[128];
    snprintf(p, sizeof p, "/internal/v1/tenants/%s", cid);
    json_decref(expect(&fx, "DELETE", p, NULL, fx.a.api_key, NULL, 401));
    json_decref(expect(&fx, "DELETE", p, NULL, pt, NULL, 204));
    json_decref(expect(&fx, "DELETE", p, NULL, pt, NULL, 404));
    json_decref(expect(&fx, "GET", "/api/v1/users/me", "c.test", ckey, NULL, 401));
    json_decref(t);
    free(pt);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_bootstrap_second_run_changes_nothing) {
    fx_t fx;
    fx_init(&fx);
    tsr_identity_boot_t again;
    tsr_error_t err;
    ck_assert_int_eq(tsr_identity_bootstrap(fx.id, "http://a.test:8080", &again, &err), TSR_OK);
    ck_assert(!again.created);
    ck_assert_str_eq(again.tenant_id, fx.a.tenant_id);
    ck_assert_ptr_null(again.api_key);
    tsr_identity_boot_cleanup(&again);
    ck_assert_int_eq(tsr_identity_bootstrap(fx.id, "not a url", &again, &err), TSR_EINVAL);
    /* The bootstrap admin's password is stored as an argon2id hash that verifies. */
    json_t *cred = NULL;
    ck_assert_int_eq(fx.id->docs.get(fx.id->docs.ud, TSR_ID__C_SECRETS, fx.a.tenant_id,
                                     fx.a.user_id, &cred, &err),
                     TSR_OK);
    const char *phc = json_string_value(json_object_get(cred, "passwordHash"));
    ck_assert(tsr_identity__password_verify(phc, fx.a.password));
    ck_assert(!tsr_identity__password_verify(phc, "wrong"));
    json_decref(cred);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_roles_list_has_fixed_roles) {
    fx_t fx;
    fx_init(&fx);
    json_t *j =
        expect(&fx, "GET", "/api/v1/roles?totalResults=true", HOST_A, fx.a.api_key, NULL, 200);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "totalResults")), 4);
    char *s = json_dumps(j, 0);
    ck_assert_ptr_nonnull(strstr(s, "\"TenantAdmin\""));
    ck_assert_ptr_nonnull(strstr(s, "\"AuditAdmin\""));
    ck_assert_ptr_nonnull(strstr(s, "\"Developer\""));
    ck_assert_ptr_nonnull(strstr(s, fx.a.tenant_id));
    free(s);
    json_decref(j);
    json_decref(expect(&fx, "GET", "/api/v1/roles/000000000000000000000001", HOST_A, fx.a.api_key,
                       NULL, 200));
    assert_same_404(&fx, "GET", "/api/v1/roles/x", "/api/v1/roles/" MISSING_ID, NULL);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_csrf_token_with_api_key_is_400) {
    fx_t fx;
    fx_init(&fx);
    json_decref(expect(&fx, "GET", "/api/v1/csrf-token", HOST_A, fx.a.api_key, NULL, 400));
    json_decref(expect(&fx, "GET", "/api/v1/csrf-token", HOST_A, NULL, NULL, 401));
    fx_cleanup(&fx);
}
END_TEST

/* ---- users ------------------------------------------------------------------------------- */

START_TEST(test_users_me_returns_caller) {
    fx_t fx;
    fx_init(&fx);
    json_t *u = expect(&fx, "GET", "/api/v1/users/me", HOST_A, fx.a.api_key, NULL, 200);
    ck_assert_str_eq(json_string_value(json_object_get(u, "id")), fx.a.user_id);
    ck_assert_str_eq(json_string_value(json_object_get(u, "email")), "admin@tessera.local");
    ck_assert_str_eq(json_string_value(json_object_get(u, "tenantId")), fx.a.tenant_id);
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(u, "assignedRoles"), 0), "name")),
                     "TenantAdmin");
    ck_assert_ptr_null(json_object_get(u, "passwordHash"));
    json_decref(u);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_users_create_valid_is_201_invited) {
    fx_t fx;
    fx_init(&fx);
    int before = fx.audits;
    json_t *u = expect(&fx, "POST", "/api/v1/users", HOST_A, fx.a.api_key,
                       "{\"email\":\"Ann@Example.com\",\"name\":\"Ann\","
                       "\"assignedRoles\":[{\"name\":\"Developer\"}]}",
                       201);
    ck_assert_str_eq(json_string_value(json_object_get(u, "status")), "invited");
    ck_assert_str_eq(json_string_value(json_object_get(u, "email")), "ann@example.com");
    ck_assert_str_eq(json_string_value(json_object_get(u, "tenantId")), fx.a.tenant_id);
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(u, "assignedRoles"), 0), "id")),
                     "000000000000000000000003");
    ck_assert_int_eq(fx.audits, before + 1);
    json_decref(u);
    /* The same email in another case conflicts; in another tenant it does not. */
    json_decref(expect(&fx, "POST", "/api/v1/users", HOST_A, fx.a.api_key,
                       "{\"email\":\"ann@example.COM\"}", 409));
    json_decref(expect(&fx, "POST", "/api/v1/users", HOST_B, fx.b.api_key,
                       "{\"email\":\"ann@example.com\"}", 201));
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_users_create_bad_input_is_400_and_creates_nothing) {
    fx_t fx;
    fx_init(&fx);
    char tb[128];
    snprintf(tb, sizeof tb, "{\"email\":\"x@y.test\",\"tenantId\":\"%s\"}", fx.b.tenant_id);
    const char *bad[] = {
        "{}",
        "[]",
        "{\"email\":\"not-an-email\"}",
        "{\"email\":\"x@y.test\",\"admin\":true}",
        "{\"email\":\"x@y.test\",\"status\":\"active\"}",
        "{\"email\":\"x@y.test\",\"assignedRoles\":[{\"name\":\"Root\"}]}",
        "{\"email\":\"x@y.test\",\"assignedRoles\":\"TenantAdmin\"}",
        "{\"email\":\"x@y.test\",\"name\":\"\"}",
        "{\"email\":42}",
        tb,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_decref(expect(&fx, "POST", "/api/v1/users", HOST_A, fx.a.api_key, bad[i], 400));
    }
    json_t *l = expect(&fx, "GET", "/api/v1/users", HOST_A, fx.a.api_key, NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(l, "data")), 1);
    json_decref(l);
    /* The address was never claimed, so it is still free. */
    json_decref(expect(&fx, "POST", "/api/v1/users", HOST_A, fx.a.api_key,
                       "{\"email\":\"x@y.test\"}", 201));
    /* Not JSON at all. */
    tsr_httpd_response_t r;
    call(&fx, "POST", "/api/v1/users", HOST_A, fx.a.api_key, "{", &r);
    ck_assert_uint_eq(r.status, 400);
    tsr_httpd_response_cleanup(&r);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_users_list_pages_and_never_shows_other_tenant) {
    fx_t fx;
    fx_init(&fx);
    char *ids[3];
    ids[0] = new_user(&fx, "u0@a.test");
    ids[1] = new_user(&fx, "u1@a.test");
    ids[2] = new_user(&fx, "u2@a.test");
    json_t *p1 = expect(&fx, "GET", "/api/v1/users?limit=3", HOST_A, fx.a.api_key, NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(p1, "data")), 3);
    const char *next = json_string_value(
        json_object_get(json_object_get(json_object_get(p1, "links"), "next"), "href"));
    ck_assert_ptr_nonnull(next);
    const char *want = "http://a.test:8080/api/v1/users?limit=3&next=";
    ck_assert_msg(strncmp(next, want, strlen(want)) == 0, "next: %s", next);
    json_t *p2 =
        expect(&fx, "GET", next + strlen("http://a.test:8080"), HOST_A, fx.a.api_key, NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(p2, "data")), 1);
    ck_assert_ptr_null(json_object_get(json_object_get(p2, "links"), "next"));
    json_decref(p1);
    json_decref(p2);
    json_t *lb = expect(&fx, "GET", "/api/v1/users?limit=100", HOST_B, fx.b.api_key, NULL, 200);
    char *s = json_dumps(lb, 0);
    for (size_t i = 0; i < 3; i++) {
        ck_assert_ptr_null(strstr(s, ids[i]));
        free(ids[i]);
    }
    ck_assert_ptr_null(strstr(s, fx.a.user_id));
    free(s);
    json_decref(lb);
    json_decref(expect(&fx, "GET", "/api/v1/users?limit=0", HOST_A, fx.a.api_key, NULL, 400));
    json_decref(expect(&fx, "GET", "/api/v1/users?limit=101", HOST_A, fx.a.api_key, NULL, 400));
    json_decref(expect(&fx, "GET", "/api/v1/users?next=zz", HOST_A, fx.a.api_key, NULL, 400));
    /* ?tenantId= is ignored: the tenant is the Host's. */
    json_t *l = expect(&fx, "GET", "/api/v1/users?tenantId=x", HOST_B, fx.b.api_key, NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(l, "data")), 1);
    json_decref(l);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_users_other_tenant_is_404_like_missing_on_every_verb) {
    fx_t fx;
    fx_init(&fx);
    char p[128];
    snprintf(p, sizeof p, "/api/v1/users/%s", fx.b.user_id);
    const char *patch = "[{\"op\":\"replace\",\"path\":\"/name\",\"value\":\"x\"}]";
    assert_same_404(&fx, "GET", p, "/api/v1/users/" MISSING_ID, NULL);
    assert_same_404(&fx, "PATCH", p, "/api/v1/users/" MISSING_ID, patch);
    assert_same_404(&fx, "DELETE", p, "/api/v1/users/" MISSING_ID, NULL);
    assert_same_404(&fx, "GET", "/api/v1/users/not-an-id", "/api/v1/users/" MISSING_ID, NULL);
    /* B's admin still exists and is unchanged. */
    json_t *u = expect(&fx, "GET", "/api/v1/users/me", HOST_B, fx.b.api_key, NULL, 200);
    ck_assert_str_eq(json_string_value(json_object_get(u, "name")), "Administrator");
    json_decref(u);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_users_patch_applies_all_or_nothing) {
    fx_t fx;
    fx_init(&fx);
    char p[128];
    char *uid = new_user(&fx, "p@a.test");
    snprintf(p, sizeof p, "/api/v1/users/%s", uid);
    json_decref(expect(&fx, "PATCH", p, HOST_A, fx.a.api_key,
                       "[{\"op\":\"replace\",\"path\":\"/name\",\"value\":\"Pat\"},"
                       "{\"op\":\"add\",\"path\":\"/assignedRoles\","
                       "\"value\":[{\"name\":\"AuditAdmin\"}]}]",
                       204));
    const char *bad[] = {
        "[{\"op\":\"replace\",\"path\":\"/name\",\"value\":\"Q\"},"
        "{\"op\":\"replace\",\"path\":\"/tenantId\",\"value\":\"x\"}]",
        "[{\"op\":\"replace\",\"path\":\"/name\",\"value\":\"Q\"},"
        "{\"op\":\"remove\",\"path\":\"/name\"}]",
        "[{\"op\":\"replace\",\"path\":\"/status\",\"value\":\"deleted\"}]",
        "[{\"op\":\"replace\",\"path\":\"/email\",\"value\":\"e@a.test\"}]",
        "[{\"op\":\"replace\",\"path\":\"/name\",\"value\":\"Q\",\"x\":1,\"y\":2}]",
        "[]",
        "{}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_decref(expect(&fx, "PATCH", p, HOST_A, fx.a.api_key, bad[i], 400));
    }
    json_t *u = expect(&fx, "GET", p, HOST_A, fx.a.api_key, NULL, 200);
    ck_assert_str_eq(json_string_value(json_object_get(u, "name")), "Pat");
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(u, "assignedRoles"), 0), "name")),
                     "AuditAdmin");
    ck_assert_str_eq(json_string_value(json_object_get(u, "tenantId")), fx.a.tenant_id);
    json_decref(u);
    free(uid);
    /* An admin cannot lock themselves out. */
    snprintf(p, sizeof p, "/api/v1/users/%s", fx.a.user_id);
    json_decref(expect(&fx, "PATCH", p, HOST_A, fx.a.api_key,
                       "[{\"op\":\"replace\",\"path\":\"/assignedRoles\",\"value\":[]}]", 403));
    json_decref(expect(&fx, "DELETE", p, HOST_A, fx.a.api_key, NULL, 403));
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_users_delete_removes_user_and_keys) {
    fx_t fx;
    fx_init(&fx);
    char uid[25], p[128];
    char *tok = user_with_key(&fx, "d@a.test", "[{\"name\":\"Developer\"}]", uid);
    json_decref(expect(&fx, "GET", "/internal/v1/authn", HOST_A, tok, NULL, 200));
    snprintf(p, sizeof p, "/api/v1/users/%s", uid);
    json_decref(expect(&fx, "DELETE", p, HOST_A, fx.a.api_key, NULL, 204));
    json_decref(expect(&fx, "GET", p, HOST_A, fx.a.api_key, NULL, 404));
    json_decref(expect(&fx, "DELETE", p, HOST_A, fx.a.api_key, NULL, 404));
    json_decref(expect(&fx, "GET", "/internal/v1/authn", HOST_A, tok, NULL, 401));
    /* Its email is free again. */
    json_decref(expect(&fx, "POST", "/api/v1/users", HOST_A, fx.a.api_key,
                       "{\"email\":\"d@a.test\"}", 201));
    free(tok);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_users_write_without_admin_is_403) {
    fx_t fx;
    fx_init(&fx);
    char uid[25], p[128];
    char *tok = user_with_key(&fx, "plain@a.test", "[]", uid);
    json_decref(expect(&fx, "POST", "/api/v1/users", HOST_A, tok, "{\"email\":\"z@a.test\"}", 403));
    snprintf(p, sizeof p, "/api/v1/users/%s", fx.a.user_id);
    json_decref(expect(&fx, "PATCH", p, HOST_A, tok,
                       "[{\"op\":\"replace\",\"path\":\"/name\",\"value\":\"x\"}]", 403));
    json_decref(expect(&fx, "DELETE", p, HOST_A, tok, NULL, 403));
    snprintf(p, sizeof p, "/api/v1/users/%s", uid);
    json_decref(expect(&fx, "PATCH", p, HOST_A, tok,
                       "[{\"op\":\"replace\",\"path\":\"/assignedRoles\","
                       "\"value\":[{\"name\":\"TenantAdmin\"}]}]",
                       403));
    json_decref(expect(&fx, "GET", p, HOST_A, tok, NULL, 200));
    free(tok);
    fx_cleanup(&fx);
}
END_TEST

/* ---- groups -------------------------------------------------------------------------------- */

START_TEST(test_groups_roles_apply_to_members_until_disabled) {
    fx_t fx;
    fx_init(&fx);
    char uid[25], up[128], gp[128], body[256];
    char *tok = user_with_key(&fx, "member@a.test", "[]", uid);
    json_t *g =
        expect(&fx, "POST", "/api/v1/groups", HOST_A, fx.a.api_key,
               "{\"name\":\"Auditors\",\"assignedRoles\":[{\"name\":\"AuditAdmin\"}]}", 201);
    char gid[25];
    snprintf(gid, sizeof gid, "%s", json_string_value(json_object_get(g, "id")));
    ck_assert_str_eq(json_string_value(json_object_get(g, "status")), "active");
    json_decref(g);
    json_decref(expect(&fx, "POST", "/api/v1/groups", HOST_A, fx.a.api_key,
                       "{\"name\":\"AUDITORS\"}", 409));
    json_decref(expect(&fx, "POST", "/api/v1/groups", HOST_A, fx.a.api_key,
                       "{\"name\":\"x\",\"providerType\":\"idp\"}", 400));
    json_decref(expect(&fx, "POST", "/api/v1/groups", HOST_A, tok, "{\"name\":\"y\"}", 403));
    snprintf(up, sizeof up, "/api/v1/users/%s", uid);
    snprintf(body, sizeof body,
             "[{\"op\":\"replace\",\"path\":\"/assignedGroups\",\"value\":[{\"id\":\"%s\"}]}]",
             gid);
    json_decref(expect(&fx, "PATCH", up, HOST_A, fx.a.api_key, body, 204));
    tsr_httpd_response_t r;
    call(&fx, "GET", "/internal/v1/authn", HOST_A, tok, NULL, &r);
    ck_assert_uint_eq(r.status, 200);
    ck_assert_str_eq(hdr(&r, "x-tsr-roles"), "AuditAdmin,User");
    tsr_httpd_response_cleanup(&r);
    snprintf(gp, sizeof gp, "/api/v1/groups/%s", gid);
    json_decref(expect(&fx, "PATCH", gp, HOST_A, fx.a.api_key,
                       "[{\"op\":\"replace\",\"path\":\"/status\",\"value\":\"disabled\"}]", 204));
    call(&fx, "GET", "/internal/v1/authn", HOST_A, tok, NULL, &r);
    ck_assert_str_eq(hdr(&r, "x-tsr-roles"), "User");
    tsr_httpd_response_cleanup(&r);
    json_decref(expect(&fx, "PATCH", gp, HOST_A, fx.a.api_key,
                       "[{\"op\":\"replace\",\"path\":\"/name\",\"value\":\"n\"}]", 400));
    /* Deleting the group grants nothing and frees the name. */
    json_decref(expect(&fx, "DELETE", gp, HOST_A, fx.a.api_key, NULL, 204));
    json_decref(expect(&fx, "GET", gp, HOST_A, fx.a.api_key, NULL, 404));
    json_decref(expect(&fx, "POST", "/api/v1/groups", HOST_A, fx.a.api_key,
                       "{\"name\":\"Auditors\"}", 201));
    free(tok);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_groups_other_tenant_is_404_like_missing) {
    fx_t fx;
    fx_init(&fx);
    json_t *g =
        expect(&fx, "POST", "/api/v1/groups", HOST_B, fx.b.api_key, "{\"name\":\"B\"}", 201);
    char gp[128], body[256], up[128];
    const char *gid = json_string_value(json_object_get(g, "id"));
    snprintf(gp, sizeof gp, "/api/v1/groups/%s", gid);
    const char *patch = "[{\"op\":\"replace\",\"path\":\"/description\",\"value\":\"x\"}]";
    assert_same_404(&fx, "GET", gp, "/api/v1/groups/" MISSING_ID, NULL);
    assert_same_404(&fx, "PATCH", gp, "/api/v1/groups/" MISSING_ID, patch);
    assert_same_404(&fx, "DELETE", gp, "/api/v1/groups/" MISSING_ID, NULL);
    json_t *l = expect(&fx, "GET", "/api/v1/groups", HOST_A, fx.a.api_key, NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(l, "data")), 0);
    json_decref(l);
    /* B's group cannot be given to A's user. */
    snprintf(up, sizeof up, "/api/v1/users/%s", fx.a.user_id);
    snprintf(body, sizeof body,
             "[{\"op\":\"replace\",\"path\":\"/assignedGroups\",\"value\":[{\"id\":\"%s\"}]}]",
             gid);
    json_decref(expect(&fx, "PATCH", up, HOST_A, fx.a.api_key, body, 400));
    json_decref(expect(&fx, "GET", gp, HOST_B, fx.b.api_key, NULL, 200));
    json_decref(g);
    fx_cleanup(&fx);
}
END_TEST

/* The groups claim of the token authn mints for bearer tok, as "a,b"; *len the token's bytes. */
static void token_groups(fx_t *fx, const tsr_httpd_response_t *r, char *out, size_t n,
                         size_t *len) {
    json_t *c = NULL;
    tsr_error_t err;
    const char *t = hdr(r, "x-tsr-token");
    ck_assert_ptr_nonnull(t);
    *len = strlen(t);
    ck_assert_int_eq(tsr_identity__jwt_verify(fx->id, t, &c, &err), TSR_OK);
    json_t *g = json_object_get(c, "groups");
    ck_assert_msg(json_is_array(g), "the groups claim is always an array");
    size_t i;
    json_t *v;
    out[0] = '\0';
    json_array_foreach(g, i, v) {
        size_t l = strlen(out);
        snprintf(out + l, n - l, "%s%s", l > 0 ? "," : "", json_string_value(v));
    }
    json_decref(c);
}

static char *group_new(fx_t *fx, const char *body) {
    json_t *g = expect(fx, "POST", "/api/v1/groups", HOST_A, fx->a.api_key, body, 201);
    char *id = tsr_xstrdup(json_string_value(json_object_get(g, "id")));
    json_decref(g);
    return id;
}

START_TEST(test_authn_carries_active_groups_in_header_and_token) {
    fx_t fx;
    fx_init(&fx);
    char uid[25], up[128], body[1024], want[256], got[4096];
    size_t len = 0;
    char *tok = user_with_key(&fx, "grouped@a.test", "[]", uid);
    tsr_httpd_response_t r;
    /* No groups: no header, an empty claim. */
    call(&fx, "GET", "/internal/v1/authn", HOST_A, tok, NULL, &r);
    ck_assert_uint_eq(r.status, 200);
    ck_assert_ptr_null(hdr(&r, "x-tsr-groups"));
    token_groups(&fx, &r, got, sizeof got, &len);
    ck_assert_str_eq(got, "");
    tsr_httpd_response_cleanup(&r);
    char *g1 = group_new(&fx, "{\"name\":\"one\"}");
    char *g2 = group_new(&fx, "{\"name\":\"two\"}");
    char *g3 = group_new(&fx, "{\"name\":\"off\",\"status\":\"disabled\"}");
    snprintf(up, sizeof up, "/api/v1/users/%s", uid);
    snprintf(body, sizeof body,
             "[{\"op\":\"replace\",\"path\":\"/assignedGroups\",\"value\":[{\"id\":\"%s\"},"
             "{\"id\":\"%s\"},{\"id\":\"%s\"},{\"id\":\"%s\"}]}]",
             g2, g3, g1, g2);
    json_decref(expect(&fx, "PATCH", up, HOST_A, fx.a.api_key, body, 204));
    /* Active groups only, distinct, in the user's order; the same in the token. */
    snprintf(want, sizeof want, "%s,%s", g2, g1);
    call(&fx, "GET", "/internal/v1/authn", HOST_A, tok, NULL, &r);
    ck_assert_uint_eq(r.status, 200);
    ck_assert_str_eq(hdr(&r, "x-tsr-groups"), want);
    token_groups(&fx, &r, got, sizeof got, &len);
    ck_assert_str_eq(got, want);
    tsr_httpd_response_cleanup(&r);
    /* A deleted group drops out at the next authentication. */
    snprintf(body, sizeof body, "/api/v1/groups/%s", g1);
    json_decref(expect(&fx, "DELETE", body, HOST_A, fx.a.api_key, NULL, 204));
    call(&fx, "GET", "/internal/v1/authn", HOST_A, tok, NULL, &r);
    ck_assert_str_eq(hdr(&r, "x-tsr-groups"), g2);
    tsr_httpd_response_cleanup(&r);
    free(g1);
    free(g2);
    free(g3);
    free(tok);
    fx_cleanup(&fx);
}
END_TEST

/* More groups than a principal carries (possible only through the store: the API allows 16 by
 * hand): the first TSR_ID__MAX_PRINCIPAL_GROUPS count, the rest grant nothing, not even roles;
 * the token stays usable as a bearer. */
START_TEST(test_authn_groups_capped) {
    fx_t fx;
    fx_init(&fx);
    char uid[25], name[64], got[8192];
    tsr_error_t err;
    size_t len = 0;
    char *tok = user_with_key(&fx, "many@a.test", "[]", uid);
    const int n = TSR_ID__MAX_PRINCIPAL_GROUPS + 1;
    json_t *refs = json_array();
    char first[25] = "", last[25] = "";
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name,
                 i == n - 1 ? "{\"name\":\"g%d\",\"assignedRoles\":[{\"name\":\"AuditAdmin\"}]}"
                            : "{\"name\":\"g%d\"}",
                 i);
        char *g = group_new(&fx, name);
        json_array_append_new(
            refs, json_pack("{ss ss ss}", "id", g, "name", "x", "providerType", "custom"));
        if (i == 0) {
            memcpy(first, g, 25);
        }
        memcpy(last, g, 25);
        free(g);
    }
    json_t *user = NULL;
    ck_assert_int_eq(
        fx.id->docs.get(fx.id->docs.ud, TSR_ID__C_USERS, fx.a.tenant_id, uid, &user, &err), TSR_OK);
    json_object_set_new(user, "assignedGroups", refs);
    ck_assert_int_eq(
        fx.id->docs.replace(fx.id->docs.ud, TSR_ID__C_USERS, fx.a.tenant_id, uid, user, NULL, &err),
        TSR_OK);
    json_decref(user);
    tsr_httpd_response_t r;
    call(&fx, "GET", "/internal/v1/authn", HOST_A, tok, NULL, &r);
    ck_assert_uint_eq(r.status, 200);
    const char *h = hdr(&r, "x-tsr-groups");
    ck_assert_uint_eq(strlen(h), (size_t)TSR_ID__MAX_PRINCIPAL_GROUPS * 25 - 1);
    ck_assert_int_eq(strncmp(h, first, 24), 0);
    ck_assert_ptr_null(strstr(h, last));
    ck_assert_str_eq(hdr(&r, "x-tsr-roles"), "User");
    token_groups(&fx, &r, got, sizeof got, &len);
    ck_assert_str_eq(got, h);
    fprintf(stderr, "platform JWT with %d groups: %zu bytes (X-Tsr-Groups %zu bytes)\n",
            TSR_ID__MAX_PRINCIPAL_GROUPS, len, strlen(h));
    ck_assert_uint_lt(len, TSR_CRYPTO_JWT_MAX_DEFAULT);
    /* Cost: one group read per membership at every authentication (figures for the report). */
    uint64_t t0 = tsr_mono_ns();
    for (int i = 0; i < 50; i++) {
        tsr_httpd_response_t r2;
        call(&fx, "GET", "/internal/v1/authn", HOST_A, tok, NULL, &r2);
        ck_assert_uint_eq(r2.status, 200);
        tsr_httpd_response_cleanup(&r2);
    }
    uint64_t t1 = tsr_mono_ns();
    for (int i = 0; i < 50; i++) {
        tsr_httpd_response_t r2;
        call(&fx, "GET", "/internal/v1/authn", HOST_A, fx.a.api_key, NULL, &r2);
        tsr_httpd_response_cleanup(&r2);
    }
    uint64_t t2 = tsr_mono_ns();
    fprintf(stderr, "authn: %.2f ms with %d groups, %.2f ms without\n", (double)(t1 - t0) / 50e6,
            TSR_ID__MAX_PRINCIPAL_GROUPS, (double)(t2 - t1) / 50e6);
    /* That token, far over an API key's size, still authenticates as a bearer. */
    char *jwt = tsr_xstrdup(hdr(&r, "x-tsr-token"));
    tsr_httpd_response_cleanup(&r);
    call(&fx, "GET", "/internal/v1/authn", HOST_A, jwt, NULL, &r);
    ck_assert_uint_eq(r.status, 200);
    ck_assert_str_eq(hdr(&r, "x-tsr-auth-type"), "jwt");
    ck_assert_str_eq(hdr(&r, "x-tsr-user-id"), uid);
    tsr_httpd_response_cleanup(&r);
    free(jwt);
    free(tok);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_api_keys_patch_description_and_config) {
    fx_t fx;
    fx_init(&fx);
    json_t *l = expect(&fx, "GET", "/api/v1/api-keys", HOST_A, fx.a.api_key, NULL, 200);
    char p[128];
    snprintf(
        p, sizeof p, "/api/v1/api-keys/%s",
        json_string_value(json_object_get(json_array_get(json_object_get(l, "data"), 0), "id")));
    json_decref(l);
    json_decref(expect(&fx, "PATCH", p, HOST_A, fx.a.api_key,
                       "[{\"op\":\"replace\",\"path\":\"/description\",\"value\":\"renamed\"}]",
                       204));
    const char *bad[] = {"[{\"op\":\"replace\",\"path\":\"/status\",\"value\":\"active\"}]",
                         "[{\"op\":\"replace\",\"path\":\"/description\",\"value\":\"\"}]",
                         "[{\"op\":\"replace\",\"path\":\"/description\",\"value\":\"x\"},"
                         "{\"op\":\"replace\",\"path\":\"/sub\",\"value\":\"x\"}]",
                         "{}"};
    for (size_t i = 0; i < 4; i++) {
        json_decref(expect(&fx, "PATCH", p, HOST_A, fx.a.api_key, bad[i], 400));
    }
    json_t *k = expect(&fx, "GET", p, HOST_A, fx.a.api_key, NULL, 200);
    ck_assert_str_eq(json_string_value(json_object_get(k, "description")), "renamed");
    ck_assert_str_eq(json_string_value(json_object_get(k, "status")), "active");
    json_decref(k);
    assert_same_404(&fx, "PATCH", "/api/v1/api-keys/" MISSING_ID, "/api/v1/api-keys/" MISSING_ID,
                    "[{\"op\":\"replace\",\"path\":\"/description\",\"value\":\"x\"}]");
    snprintf(p, sizeof p, "/api/v1/api-keys/configs/%s", fx.a.tenant_id);
    json_t *c = expect(&fx, "GET", p, HOST_A, fx.a.api_key, NULL, 200);
    ck_assert_str_eq(json_string_value(json_object_get(c, "max_api_key_expiry")), "P30D");
    ck_assert_int_eq(json_integer_value(json_object_get(c, "max_keys_per_user")), 3);
    json_decref(c);
    char pb[128];
    snprintf(pb, sizeof pb, "/api/v1/api-keys/configs/%s", fx.b.tenant_id);
    assert_same_404(&fx, "GET", pb, "/api/v1/api-keys/configs/" MISSING_ID, NULL);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_service_user_gets_keys_only_from_admin) {
    fx_t fx;
    fx_init(&fx);
    json_t *u = expect(&fx, "POST", "/api/v1/users", HOST_A, fx.a.api_key,
                       "{\"serviceUser\":true,\"name\":\"ci-bot\","
                       "\"assignedRoles\":[{\"name\":\"Developer\"}]}",
                       201);
    char svc[25], body[256];
    snprintf(svc, sizeof svc, "%s", json_string_value(json_object_get(u, "id")));
    ck_assert_str_eq(json_string_value(json_object_get(u, "status")), "active");
    ck_assert_ptr_null(json_object_get(u, "inviteLink"));
    ck_assert_ptr_null(json_object_get(u, "email"));
    ck_assert(json_is_true(json_object_get(u, "serviceUser")));
    json_decref(u);
    json_decref(expect(&fx, "POST", "/api/v1/users", HOST_A, fx.a.api_key,
                       "{\"serviceUser\":true,\"name\":\"x\",\"email\":\"x@a.test\"}", 400));
    json_decref(expect(&fx, "POST", "/api/v1/users", HOST_A, fx.a.api_key,
                       "{\"serviceUser\":\"yes\",\"name\":\"x\"}", 400));
    snprintf(body, sizeof body, "{\"description\":\"ci\",\"sub\":\"%s\"}", svc);
    json_t *k = expect(&fx, "POST", "/api/v1/api-keys", HOST_A, fx.a.api_key, body, 201);
    ck_assert_str_eq(json_string_value(json_object_get(k, "sub")), svc);
    ck_assert_str_eq(json_string_value(json_object_get(k, "createdByUser")), fx.a.user_id);
    json_t *me = expect(&fx, "GET", "/api/v1/users/me", HOST_A,
                        json_string_value(json_object_get(k, "token")), NULL, 200);
    ck_assert_str_eq(json_string_value(json_object_get(me, "id")), svc);
    json_decref(me);
    json_decref(k);
    /* A developer cannot mint keys for it, nor an admin for a human. */
    char uid[25];
    char *tok = user_with_key(&fx, "dev@a.test", "[{\"name\":\"Developer\"}]", uid);
    json_decref(expect(&fx, "POST", "/api/v1/api-keys", HOST_A, tok, body, 400));
    snprintf(body, sizeof body, "{\"description\":\"ci\",\"sub\":\"%s\"}", uid);
    json_decref(expect(&fx, "POST", "/api/v1/api-keys", HOST_A, fx.a.api_key, body, 400));
    free(tok);
    fx_cleanup(&fx);
}
END_TEST

/* ---- API keys ----------------------------------------------------------------------------- */

START_TEST(test_api_keys_create_shows_token_once_and_it_authenticates) {
    fx_t fx;
    fx_init(&fx);
    json_t *k = expect(&fx, "POST", "/api/v1/api-keys", HOST_A, fx.a.api_key,
                       "{\"description\":\"ci\",\"expiry\":\"P7D\"}", 201);
    const char *tok = json_string_value(json_object_get(k, "token"));
    const char *kid = json_string_value(json_object_get(k, "id"));
    ck_assert_ptr_nonnull(tok);
    ck_assert_ptr_null(json_object_get(k, "hash"));
    ck_assert_str_eq(json_string_value(json_object_get(k, "status")), "active");
    ck_assert_str_eq(json_string_value(json_object_get(k, "sub")), fx.a.user_id);
    json_decref(expect(&fx, "GET", "/api/v1/users/me", HOST_A, tok, NULL, 200));
    char p[128];
    snprintf(p, sizeof p, "/api/v1/api-keys/%s", kid);
    json_t *g = expect(&fx, "GET", p, HOST_A, fx.a.api_key, NULL, 200);
    ck_assert_ptr_null(json_object_get(g, "token"));
    ck_assert_ptr_null(json_object_get(g, "hash"));
    json_decref(g);
    json_t *l = expect(&fx, "GET", "/api/v1/api-keys", HOST_A, fx.a.api_key, NULL, 200);
    char *s = json_dumps(l, 0);
    ck_assert_ptr_nonnull(strstr(s, kid));
    ck_assert_ptr_null(strstr(s, "\"token\""));
    ck_assert_ptr_null(strstr(s, "\"hash\""));
    free(s);
    json_decref(l);
    /* The owner deletes: gone, and the token stops working at once. */
    json_decref(expect(&fx, "DELETE", p, HOST_A, fx.a.api_key, NULL, 204));
    json_decref(expect(&fx, "GET", p, HOST_A, fx.a.api_key, NULL, 404));
    json_decref(expect(&fx, "GET", "/api/v1/users/me", HOST_A, tok, NULL, 401));
    json_decref(k);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_api_keys_create_bad_input_is_400) {
    fx_t fx;
    fx_init(&fx);
    char other[128];
    snprintf(other, sizeof other, "{\"description\":\"x\",\"sub\":\"%s\"}", fx.b.user_id);
    const char *bad[] = {
        "{}",
        "{\"description\":\"\"}",
        "{\"description\":\"x\",\"expiry\":\"30 days\"}",
        "{\"description\":\"x\",\"expiry\":\"P31D\"}",
        "{\"description\":\"x\",\"expiry\":\"P0D\"}",
        "{\"description\":\"x\",\"expiry\":\"P99999999D\"}",
        "{\"description\":\"x\",\"expiry\":7}",
        "{\"description\":\"x\",\"hash\":\"abc\"}",
        "{\"description\":\"x\",\"subType\":\"externalClient\"}",
        other,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_decref(expect(&fx, "POST", "/api/v1/api-keys", HOST_A, fx.a.api_key, bad[i], 400));
    }
    json_t *l = expect(&fx, "GET", "/api/v1/api-keys", HOST_A, fx.a.api_key, NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(l, "data")), 1); /* the bootstrap key */
    json_decref(l);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_api_keys_over_per_user_cap_is_409) {
    fx_t fx;
    fx_init(&fx);
    /* The cap is 3 in the fixture; the bootstrap key is the first. */
    json_decref(expect(&fx, "POST", "/api/v1/api-keys", HOST_A, fx.a.api_key,
                       "{\"description\":\"2\"}", 201));
    json_decref(expect(&fx, "POST", "/api/v1/api-keys", HOST_A, fx.a.api_key,
                       "{\"description\":\"3\"}", 201));
    json_decref(expect(&fx, "POST", "/api/v1/api-keys", HOST_A, fx.a.api_key,
                       "{\"description\":\"4\"}", 409));
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_api_keys_admin_revokes_others_and_user_sees_only_own) {
    fx_t fx;
    fx_init(&fx);
    char uid[25], p[128];
    char *tok = user_with_key(&fx, "dev@a.test", "[{\"name\":\"Developer\"}]", uid);
    json_t *k =
        expect(&fx, "POST", "/api/v1/api-keys", HOST_A, tok, "{\"description\":\"d\"}", 201);
    const char *kid = json_string_value(json_object_get(k, "id"));
    const char *tok2 = json_string_value(json_object_get(k, "token"));
    /* The developer lists only its own keys, even when asking for the admin's. */
    char q[128];
    snprintf(q, sizeof q, "/api/v1/api-keys?sub=%s", fx.a.user_id);
    json_t *l = expect(&fx, "GET", q, HOST_A, tok, NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(l, "data")), 2);
    char *s = json_dumps(l, 0);
    ck_assert_ptr_null(strstr(s, fx.a.user_id));
    free(s);
    json_decref(l);
    /* ... and the admin's keys are invisible to it (404, not 403). */
    l = expect(&fx, "GET", q, HOST_A, fx.a.api_key, NULL, 200);
    const char *admin_kid =
        json_string_value(json_object_get(json_array_get(json_object_get(l, "data"), 0), "id"));
    snprintf(p, sizeof p, "/api/v1/api-keys/%s", admin_kid);
    json_decref(expect(&fx, "GET", p, HOST_A, tok, NULL, 404));
    json_decref(expect(&fx, "DELETE", p, HOST_A, tok, NULL, 404));
    json_decref(l);
    /* The admin revokes the developer's key: it stays listed as revoked and stops working. */
    snprintf(p, sizeof p, "/api/v1/api-keys/%s", kid);
    json_decref(expect(&fx, "DELETE", p, HOST_A, fx.a.api_key, NULL, 204));
    json_t *g = expect(&fx, "GET", p, HOST_A, fx.a.api_key, NULL, 200);
    ck_assert_str_eq(json_string_value(json_object_get(g, "status")), "revoked");
    json_decref(g);
    json_decref(expect(&fx, "GET", "/internal/v1/authn", HOST_A, tok2, NULL, 401));
    json_decref(expect(&fx, "GET", "/internal/v1/authn", HOST_A, tok, NULL, 200));
    json_decref(k);
    free(tok);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_api_keys_without_developer_role_is_403) {
    fx_t fx;
    fx_init(&fx);
    char uid[25];
    char *tok = user_with_key(&fx, "plain@a.test", "[{\"name\":\"AuditAdmin\"}]", uid);
    json_decref(
        expect(&fx, "POST", "/api/v1/api-keys", HOST_A, tok, "{\"description\":\"d\"}", 403));
    json_decref(expect(&fx, "GET", "/api/v1/api-keys", HOST_A, tok, NULL, 200));
    free(tok);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_api_keys_other_tenant_is_404_like_missing) {
    fx_t fx;
    fx_init(&fx);
    json_t *l = expect(&fx, "GET", "/api/v1/api-keys", HOST_B, fx.b.api_key, NULL, 200);
    const char *bkid =
        json_string_value(json_object_get(json_array_get(json_object_get(l, "data"), 0), "id"));
    char p[128];
    snprintf(p, sizeof p, "/api/v1/api-keys/%s", bkid);
    assert_same_404(&fx, "GET", p, "/api/v1/api-keys/" MISSING_ID, NULL);
    assert_same_404(&fx, "DELETE", p, "/api/v1/api-keys/" MISSING_ID, NULL);
    json_decref(expect(&fx, "GET", p, HOST_B, fx.b.api_key, NULL, 200));
    json_decref(expect(&fx, "GET", "/internal/v1/authn", HOST_B, fx.b.api_key, NULL, 200));
    json_t *la = expect(&fx, "GET", "/api/v1/api-keys?limit=100", HOST_A, fx.a.api_key, NULL, 200);
    char *s = json_dumps(la, 0);
    ck_assert_ptr_null(strstr(s, bkid));
    free(s);
    json_decref(la);
    json_decref(l);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_api_keys_expired_key_is_401_and_listed_expired) {
    fx_t fx;
    fx_init(&fx);
    tsr_error_t err;
    json_t *key = NULL;
    char *tok = NULL;
    ck_assert_int_eq(tsr_identity__key_create(fx.id, fx.a.tenant_id, fx.a.user_id, fx.a.user_id,
                                              "old", 1, &key, &tok, &err),
                     TSR_OK);
    const char *kid = json_string_value(json_object_get(key, "id"));
    /* Expiry is 1 ms after creation: move it into the past explicitly to avoid timing. */
    json_object_set_new(key, "expiry", json_string("2000-01-01T00:00:00.000Z"));
    ck_assert_int_eq(
        fx.id->docs.replace(fx.id->docs.ud, TSR_ID__C_KEYS, fx.a.tenant_id, kid, key, NULL, &err),
        TSR_OK);
    json_decref(expect(&fx, "GET", "/internal/v1/authn", HOST_A, tok, NULL, 401));
    char p[128];
    snprintf(p, sizeof p, "/api/v1/api-keys/%s", kid);
    json_t *g = expect(&fx, "GET", p, HOST_A, fx.a.api_key, NULL, 200);
    ck_assert_str_eq(json_string_value(json_object_get(g, "status")), "expired");
    json_decref(g);
    json_decref(key);
    free(tok);
    fx_cleanup(&fx);
}
END_TEST

/* ---- sessions: login, cookie, CSRF, logout, lockout ----------------------------------------- */

/* Log in as A's admin: *cookie ("tsr_session=...") and *csrf are returned-owned. */
static void login(fx_t *fx, char **cookie, char **csrf) {
    char body[256];
    tsr_httpd_response_t r;
    snprintf(body, sizeof body, "{\"email\":\"%s\",\"password\":\"%s\"}", fx->a.user,
             fx->a.password);
    call(fx, "POST", "/api/v1/identity/login", HOST_A, NULL, body, &r);
    ck_assert_msg(r.status == 204, "login: %u %s", r.status, r.body);
    const char *sc = hdr(&r, "set-cookie");
    ck_assert_ptr_nonnull(sc);
    ck_assert_ptr_nonnull(strstr(sc, "HttpOnly"));
    ck_assert_ptr_nonnull(strstr(sc, "SameSite=Lax"));
    ck_assert(strncmp(sc, "tsr_session=tsrs_", 17) == 0);
    *cookie = tsr_xstrndup(sc, strcspn(sc, ";"));
    ck_assert_ptr_nonnull(hdr(&r, "qlik-csrf-token"));
    *csrf = tsr_xstrdup(hdr(&r, "qlik-csrf-token"));
    tsr_httpd_response_cleanup(&r);
}

/* A request with Host, Cookie and optionally qlik-csrf-token / X-Original-Method. */
static unsigned call_cookie(fx_t *fx, const char *method, const char *path, const char *host,
                            const char *cookie, const char *csrf, const char *orig,
                            const char *body, tsr_httpd_response_t *r) {
    const char *h[13] = {"Host", host, "Cookie", cookie, NULL};
    size_t n = 4;
    if (csrf != NULL) {
        h[n++] = "qlik-csrf-token";
        h[n++] = csrf;
    }
    if (orig != NULL) {
        h[n++] = "X-Original-Method";
        h[n++] = orig;
    }
    if (body != NULL) {
        h[n++] = "Content-Type";
        h[n++] = "application/json";
    }
    tsr_httpd_inject(fx->h, method, path, h, body, body != NULL ? strlen(body) : 0, r);
    return r->status;
}

START_TEST(test_login_valid_password_gives_session_with_csrf) {
    fx_t fx;
    fx_init(&fx);
    char *cookie, *csrf;
    tsr_httpd_response_t r;
    login(&fx, &cookie, &csrf);
    ck_assert_uint_eq(
        call_cookie(&fx, "GET", "/api/v1/users/me", HOST_A, cookie, NULL, NULL, NULL, &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, fx.a.user_id));
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(
        call_cookie(&fx, "GET", "/api/v1/csrf-token", HOST_A, cookie, NULL, NULL, NULL, &r), 204);
    ck_assert_str_eq(hdr(&r, "qlik-csrf-token"), csrf);
    tsr_httpd_response_cleanup(&r);
    /* The ingress decision: GET passes, a write needs the token. */
    ck_assert_uint_eq(
        call_cookie(&fx, "GET", "/internal/v1/authn", HOST_A, cookie, NULL, "GET", NULL, &r), 200);
    ck_assert_str_eq(hdr(&r, "x-tsr-auth-type"), "session");
    ck_assert_str_eq(hdr(&r, "x-tsr-user-id"), fx.a.user_id);
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(
        call_cookie(&fx, "GET", "/internal/v1/authn", HOST_A, cookie, NULL, "POST", NULL, &r), 403);
    ck_assert_ptr_nonnull(strstr(r.body, "CSRF-TOKEN-2"));
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(
        call_cookie(&fx, "GET", "/internal/v1/authn", HOST_A, cookie, "wrong", "DELETE", NULL, &r),
        403);
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(
        call_cookie(&fx, "GET", "/internal/v1/authn", HOST_A, cookie, NULL, NULL, NULL, &r), 403);
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(
        call_cookie(&fx, "GET", "/internal/v1/authn", HOST_A, cookie, csrf, "POST", NULL, &r), 200);
    tsr_httpd_response_cleanup(&r);
    /* Identity's own writes check it too. */
    ck_assert_uint_eq(call_cookie(&fx, "POST", "/api/v1/api-keys", HOST_A, cookie, NULL, NULL,
                                  "{\"description\":\"s\"}", &r),
                      403);
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(call_cookie(&fx, "POST", "/api/v1/api-keys", HOST_A, cookie, csrf, NULL,
                                  "{\"description\":\"s\"}", &r),
                      201);
    tsr_httpd_response_cleanup(&r);
    /* The cookie means nothing on another tenant's host. */
    ck_assert_uint_eq(
        call_cookie(&fx, "GET", "/api/v1/users/me", HOST_B, cookie, NULL, NULL, NULL, &r), 401);
    tsr_httpd_response_cleanup(&r);
    /* Logout needs the CSRF token, then the cookie is dead. */
    ck_assert_uint_eq(
        call_cookie(&fx, "POST", "/api/v1/identity/logout", HOST_A, cookie, NULL, NULL, NULL, &r),
        403);
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(
        call_cookie(&fx, "POST", "/api/v1/identity/logout", HOST_A, cookie, csrf, NULL, NULL, &r),
        204);
    ck_assert_ptr_nonnull(strstr(hdr(&r, "set-cookie"), "Max-Age=0"));
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(
        call_cookie(&fx, "GET", "/api/v1/users/me", HOST_A, cookie, NULL, NULL, NULL, &r), 401);
    tsr_httpd_response_cleanup(&r);
    free(cookie);
    free(csrf);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_password_change_needs_current_and_ends_other_sessions) {
    fx_t fx;
    fx_init(&fx);
    char *c1, *x1, *c2, *x2, body[512];
    tsr_httpd_response_t r;
    login(&fx, &c1, &x1);
    login(&fx, &c2, &x2);
    snprintf(body, sizeof body,
             "{\"currentPassword\":\"wrong\",\"newPassword\":\"a much longer secret\"}");
    ck_assert_uint_eq(
        call_cookie(&fx, "POST", "/api/v1/identity/password", HOST_A, c1, x1, NULL, body, &r), 403);
    tsr_httpd_response_cleanup(&r);
    snprintf(body, sizeof body, "{\"currentPassword\":\"%s\",\"newPassword\":\"short\"}",
             fx.a.password);
    ck_assert_uint_eq(
        call_cookie(&fx, "POST", "/api/v1/identity/password", HOST_A, c1, x1, NULL, body, &r), 400);
    tsr_httpd_response_cleanup(&r);
    snprintf(body, sizeof body,
             "{\"currentPassword\":\"%s\",\"newPassword\":\"a much longer secret\"}",
             fx.a.password);
    /* Without the CSRF token a session cannot do it. */
    ck_assert_uint_eq(
        call_cookie(&fx, "POST", "/api/v1/identity/password", HOST_A, c1, NULL, NULL, body, &r),
        403);
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(
        call_cookie(&fx, "POST", "/api/v1/identity/password", HOST_A, c1, x1, NULL, body, &r), 204);
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(call_cookie(&fx, "GET", "/api/v1/users/me", HOST_A, c1, NULL, NULL, NULL, &r),
                      200);
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(call_cookie(&fx, "GET", "/api/v1/users/me", HOST_A, c2, NULL, NULL, NULL, &r),
                      401);
    tsr_httpd_response_cleanup(&r);
    char lb[512];
    snprintf(lb, sizeof lb, "{\"email\":\"%s\",\"password\":\"%s\"}", fx.a.user, fx.a.password);
    json_decref(expect(&fx, "POST", "/api/v1/identity/login", HOST_A, NULL, lb, 401));
    snprintf(lb, sizeof lb, "{\"email\":\"%s\",\"password\":\"a much longer secret\"}", fx.a.user);
    json_decref(expect(&fx, "POST", "/api/v1/identity/login", HOST_A, NULL, lb, 204));
    free(c1);
    free(x1);
    free(c2);
    free(x2);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_login_sessions_are_pruned_and_capped) {
    fx_t fx;
    fx_init(&fx);
    tsr_error_t err;
    char *c, *x;
    json_t *rows = NULL;
    login(&fx, &c, &x);
    free(c);
    free(x);
    ck_assert_int_eq(fx.id->docs.list(fx.id->docs.ud, TSR_ID__C_SESSIONS, fx.a.tenant_id, NULL,
                                      NULL, NULL, 100, &rows, &err),
                     TSR_OK);
    json_t *old = json_deep_copy(json_array_get(rows, 0));
    json_decref(rows);
    const char *old_id = json_string_value(json_object_get(old, "id"));
    json_object_set_new(old, "expiresAt", json_string("2000-01-01T00:00:00.000Z"));
    ck_assert_int_eq(fx.id->docs.replace(fx.id->docs.ud, TSR_ID__C_SESSIONS, fx.a.tenant_id, old_id,
                                         old, NULL, &err),
                     TSR_OK);
    for (int i = 0; i < TSR_ID__MAX_SESSIONS + 3; i++) {
        login(&fx, &c, &x);
        free(c);
        free(x);
    }
    json_t *gone = NULL;
    ck_assert_int_eq(
        fx.id->docs.get(fx.id->docs.ud, TSR_ID__C_SESSIONS, fx.a.tenant_id, old_id, &gone, &err),
        TSR_ENOTFOUND);
    ck_assert_int_eq(fx.id->docs.list(fx.id->docs.ud, TSR_ID__C_SESSIONS, fx.a.tenant_id, NULL,
                                      NULL, NULL, 100, &rows, &err),
                     TSR_OK);
    ck_assert_uint_le(json_array_size(rows), TSR_ID__MAX_SESSIONS);
    ck_assert_uint_ge(json_array_size(rows), TSR_ID__MAX_SESSIONS - 3);
    json_decref(rows);
    json_decref(old);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_login_forged_cookie_is_401) {
    fx_t fx;
    fx_init(&fx);
    char *cookie, *csrf;
    tsr_httpd_response_t r;
    login(&fx, &cookie, &csrf);
    size_t n = strlen(cookie);
    cookie[n - 1] = cookie[n - 1] == 'A' ? 'B' : 'A';
    ck_assert_uint_eq(
        call_cookie(&fx, "GET", "/api/v1/users/me", HOST_A, cookie, NULL, NULL, NULL, &r), 401);
    tsr_httpd_response_cleanup(&r);
    const char *forged[] = {"tsr_session=", "tsr_session=tsrs_", "other=1",
                            "tsr_session=tsrk_0123456789abcdef01234567_x"};
    for (size_t i = 0; i < 4; i++) {
        ck_assert_uint_eq(
            call_cookie(&fx, "GET", "/api/v1/users/me", HOST_A, forged[i], NULL, NULL, NULL, &r),
            401);
        tsr_httpd_response_cleanup(&r);
    }
    free(cookie);
    free(csrf);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_login_wrong_password_locks_out_with_backoff) {
    fx_t fx;
    fx_init(&fx);
    char good[256], bad[256];
    snprintf(good, sizeof good, "{\"email\":\"%s\",\"password\":\"%s\"}", fx.a.user, fx.a.password);
    snprintf(bad, sizeof bad, "{\"email\":\"%s\",\"password\":\"nope\"}", fx.a.user);
    json_t *e1 = expect(&fx, "POST", "/api/v1/identity/login", HOST_A, NULL, bad, 401);
    json_t *e2 = expect(&fx, "POST", "/api/v1/identity/login", HOST_A, NULL,
                        "{\"email\":\"nobody@a.test\",\"password\":\"nope\"}", 401);
    /* Unknown email and wrong password read the same. */
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(e1, "errors"), 0), "detail")),
                     json_string_value(json_object_get(
                         json_array_get(json_object_get(e2, "errors"), 0), "detail")));
    json_decref(e1);
    json_decref(e2);
    for (int i = 1; i < TSR_ID__LOCK_AFTER; i++) {
        json_decref(expect(&fx, "POST", "/api/v1/identity/login", HOST_A, NULL, bad, 401));
    }
    /* Locked now: even the right password is refused. */
    json_decref(expect(&fx, "POST", "/api/v1/identity/login", HOST_A, NULL, good, 401));
    tsr_error_t err;
    json_t *cred = NULL;
    ck_assert_int_eq(fx.id->docs.get(fx.id->docs.ud, TSR_ID__C_SECRETS, fx.a.tenant_id,
                                     fx.a.user_id, &cred, &err),
                     TSR_OK);
    json_int_t until = json_integer_value(json_object_get(cred, "lockedUntilMs"));
    ck_assert_int_gt(until, tsr_wall_ms() + TSR_ID__LOCK_BASE_MS - 5000);
    ck_assert_int_le(until, tsr_wall_ms() + TSR_ID__LOCK_BASE_MS);
    /* Once the lock has passed, the right password works and resets the counter. */
    json_object_set_new(cred, "lockedUntilMs", json_integer(tsr_wall_ms() - 1));
    ck_assert_int_eq(fx.id->docs.replace(fx.id->docs.ud, TSR_ID__C_SECRETS, fx.a.tenant_id,
                                         fx.a.user_id, cred, NULL, &err),
                     TSR_OK);
    json_decref(cred);
    json_decref(expect(&fx, "POST", "/api/v1/identity/login", HOST_A, NULL, good, 204));
    ck_assert_int_eq(fx.id->docs.get(fx.id->docs.ud, TSR_ID__C_SECRETS, fx.a.tenant_id,
                                     fx.a.user_id, &cred, &err),
                     TSR_OK);
    ck_assert_int_eq(json_integer_value(json_object_get(cred, "failedLogins")), 0);
    json_decref(cred);
    /* The right password on another tenant's host is just wrong. */
    json_decref(expect(&fx, "POST", "/api/v1/identity/login", HOST_B, NULL, good, 401));
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_login_bad_body_is_400) {
    fx_t fx;
    fx_init(&fx);
    const char *bad[] = {"[]", "{}", "{\"email\":\"a@b.c\"}",
                         "{\"email\":\"a@b.c\",\"password\":1}",
                         "{\"email\":\"a@b.c\",\"password\":\"x\",\"admin\":\"1\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_decref(expect(&fx, "POST", "/api/v1/identity/login", HOST_A, NULL, bad[i], 400));
    }
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_invite_accept_sets_password_once) {
    fx_t fx;
    fx_init(&fx);
    json_t *u = expect(&fx, "POST", "/api/v1/users", HOST_A, fx.a.api_key,
                       "{\"email\":\"inv@a.test\"}", 201);
    const char *link = json_string_value(json_object_get(u, "inviteLink"));
    ck_assert_ptr_nonnull(link);
    ck_assert(strncmp(link, "http://a.test:8080/login/invite#token=tsri_", 43) == 0);
    ck_assert_ptr_nonnull(json_object_get(u, "inviteExpiry"));
    char tok[256], body[512], bad[512];
    snprintf(tok, sizeof tok, "%s", strstr(link, "token=") + 6);
    char uid[25];
    snprintf(uid, sizeof uid, "%s", json_string_value(json_object_get(u, "id")));
    json_decref(u);
    /* The invitation does not appear in reads. */
    char p[128];
    snprintf(p, sizeof p, "/api/v1/users/%s", uid);
    u = expect(&fx, "GET", p, HOST_A, fx.a.api_key, NULL, 200);
    ck_assert_ptr_null(json_object_get(u, "inviteLink"));
    json_decref(u);
    /* Invited users cannot sign in yet. */
    json_decref(expect(&fx, "POST", "/api/v1/identity/login", HOST_A, NULL,
                       "{\"email\":\"inv@a.test\",\"password\":\"correct horse battery\"}", 401));
    snprintf(bad, sizeof bad, "{\"token\":\"%s\",\"password\":\"short\"}", tok);
    json_decref(expect(&fx, "POST", "/api/v1/identity/invites/accept", HOST_A, NULL, bad, 400));
    snprintf(body, sizeof body, "{\"token\":\"%s\",\"password\":\"correct horse battery\"}", tok);
    /* Another tenant's host, and a tampered token, are a 404. */
    json_decref(expect(&fx, "POST", "/api/v1/identity/invites/accept", HOST_B, NULL, body, 404));
    char *t2 = tsr_xstrdup(body);
    char *last = strstr(t2, "\",\"password") - 1;
    *last = *last == 'A' ? 'B' : 'A';
    json_decref(expect(&fx, "POST", "/api/v1/identity/invites/accept", HOST_A, NULL, t2, 404));
    free(t2);
    json_decref(expect(&fx, "POST", "/api/v1/identity/invites/accept", HOST_A, NULL, body, 204));
    json_decref(expect(&fx, "POST", "/api/v1/identity/invites/accept", HOST_A, NULL, body, 404));
    json_decref(expect(&fx, "POST", "/api/v1/identity/login", HOST_A, NULL,
                       "{\"email\":\"inv@a.test\",\"password\":\"correct horse battery\"}", 204));
    u = expect(&fx, "GET", p, HOST_A, fx.a.api_key, NULL, 200);
    ck_assert_str_eq(json_string_value(json_object_get(u, "status")), "active");
    ck_assert_ptr_null(json_object_get(u, "inviteExpiry"));
    json_decref(u);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_totp_enrolled_login_needs_fresh_code) {
    fx_t fx;
    fx_init(&fx);
    json_t *e = expect(&fx, "POST", "/api/v1/identity/mfa/totp", HOST_A, fx.a.api_key, NULL, 201);
    char secret[64];
    snprintf(secret, sizeof secret, "%s", json_string_value(json_object_get(e, "secret")));
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(e, "otpauthUri")), secret));
    json_decref(e);
    char body[256], login_body[512];
    json_decref(expect(&fx, "POST", "/api/v1/identity/mfa/totp/confirm", HOST_A, fx.a.api_key,
                       "{\"code\":\"000000x\"}", 400));
    int64_t step = tsr_wall_ms() / 1000 / 30;
    snprintf(body, sizeof body, "{\"code\":\"%06lld\"}",
             (long long)tsr_identity__totp_code(secret, step));
    json_decref(
        expect(&fx, "POST", "/api/v1/identity/mfa/totp/confirm", HOST_A, fx.a.api_key, body, 204));
    json_decref(expect(&fx, "POST", "/api/v1/identity/mfa/totp", HOST_A, fx.a.api_key, NULL, 409));
    /* The secret is stored sealed under the tenant's DEK, never in the clear. */
    json_t *cred = NULL;
    tsr_error_t err;
    ck_assert_int_eq(fx.id->docs.get(fx.id->docs.ud, TSR_ID__C_SECRETS, fx.a.tenant_id,
                                     fx.a.user_id, &cred, &err),
                     TSR_OK);
    char *cred_text = json_dumps(cred, 0);
    ck_assert_ptr_nonnull(json_object_get(cred, "totpSecret"));
    ck_assert_ptr_null(strstr(cred_text, secret));
    free(cred_text);
    json_decref(cred);
    /* Password alone is no longer enough. */
    snprintf(login_body, sizeof login_body, "{\"email\":\"%s\",\"password\":\"%s\"}", fx.a.user,
             fx.a.password);
    json_decref(expect(&fx, "POST", "/api/v1/identity/login", HOST_A, NULL, login_body, 401));
    /* The code used for the confirmation is spent (replay). */
    snprintf(login_body, sizeof login_body,
             "{\"email\":\"%s\",\"password\":\"%s\",\"totp\":\"%06lld\"}", fx.a.user, fx.a.password,
             (long long)tsr_identity__totp_code(secret, step));
    json_decref(expect(&fx, "POST", "/api/v1/identity/login", HOST_A, NULL, login_body, 401));
    snprintf(login_body, sizeof login_body,
             "{\"email\":\"%s\",\"password\":\"%s\",\"totp\":\"%06lld\"}", fx.a.user, fx.a.password,
             (long long)tsr_identity__totp_code(secret, step + 1));
    json_decref(expect(&fx, "POST", "/api/v1/identity/login", HOST_A, NULL, login_body, 204));
    json_decref(expect(&fx, "POST", "/api/v1/identity/login", HOST_A, NULL, login_body, 401));
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_totp_code_matches_rfc6238_vector) {
    /* RFC 6238 appendix B, SHA-1, T = 59 s: 94287082 → 6 digits 287082. */
    char b32[64];
    tsr_identity__base32((const unsigned char *)"12345678901234567890", 20, b32, sizeof b32);
    ck_assert_str_eq(b32, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    ck_assert_int_eq(tsr_identity__totp_code(b32, 59 / 30), 287082);
    ck_assert_int_eq(tsr_identity__totp_code(b32, 1111111109 / 30), 81804);
    ck_assert_int_eq(tsr_identity__totp_code("not base32!", 1), -1);
}
END_TEST

START_TEST(test_tenant_mfa_required_blocks_admin_password_login) {
    fx_t fx;
    fx_init(&fx);
    char p[128], login_body[512];
    snprintf(p, sizeof p, "/api/v1/tenants/%s", fx.a.tenant_id);
    const char *bad[] = {"[]", "[{\"op\":\"replace\",\"path\":\"/id\",\"value\":\"x\"}]",
                         "[{\"op\":\"replace\",\"path\":\"/mfaRequiredForAdmins\",\"value\":1}]",
                         "[{\"op\":\"remove\",\"path\":\"/name\",\"value\":\"x\"}]"};
    for (size_t i = 0; i < 4; i++) {
        json_decref(expect(&fx, "PATCH", p, HOST_A, fx.a.api_key, bad[i], 400));
    }
    const char *on = "[{\"op\":\"replace\",\"path\":\"/mfaRequiredForAdmins\",\"value\":true},"
                     "{\"op\":\"replace\",\"path\":\"/name\",\"value\":\"Acme\"}]";
    char pb[128];
    snprintf(pb, sizeof pb, "/api/v1/tenants/%s", fx.b.tenant_id);
    assert_same_404(&fx, "PATCH", pb, "/api/v1/tenants/" MISSING_ID, on);
    json_decref(expect(&fx, "PATCH", p, HOST_A, fx.a.api_key, on, 204));
    json_t *t = expect(&fx, "GET", "/api/v1/tenants/me", HOST_A, fx.a.api_key, NULL, 200);
    ck_assert_str_eq(json_string_value(json_object_get(t, "name")), "Acme");
    ck_assert(json_is_true(json_object_get(t, "mfaRequiredForAdmins")));
    json_decref(t);
    snprintf(login_body, sizeof login_body, "{\"email\":\"%s\",\"password\":\"%s\"}", fx.a.user,
             fx.a.password);
    json_t *e = expect(&fx, "POST", "/api/v1/identity/login", HOST_A, NULL, login_body, 403);
    char *es = json_dumps(e, 0);
    ck_assert_ptr_nonnull(strstr(es, "TOTP"));
    free(es);
    json_decref(e);
    /* B is untouched. */
    t = expect(&fx, "GET", "/api/v1/tenants/me", HOST_B, fx.b.api_key, NULL, 200);
    ck_assert_ptr_null(json_object_get(t, "mfaRequiredForAdmins"));
    json_decref(t);
    /* Only a TenantAdmin may change it. */
    char uid[25];
    char *tok = user_with_key(&fx, "dev@a.test", "[{\"name\":\"Developer\"}]", uid);
    json_decref(expect(&fx, "PATCH", p, HOST_A, tok, on, 403));
    free(tok);
    fx_cleanup(&fx);
}
END_TEST

/* ---- platform tokens ---------------------------------------------------------------------- */

/* The X-Tsr-Token authn mints for A's admin; returned-owned. */
static char *platform_token(fx_t *fx) {
    tsr_httpd_response_t r;
    call(fx, "GET", "/internal/v1/authn", HOST_A, fx->a.api_key, NULL, &r);
    ck_assert_uint_eq(r.status, 200);
    ck_assert_ptr_nonnull(hdr(&r, "x-tsr-token"));
    char *t = tsr_xstrdup(hdr(&r, "x-tsr-token"));
    tsr_httpd_response_cleanup(&r);
    return t;
}

START_TEST(test_authn_token_verifies_and_carries_principal) {
    fx_t fx;
    fx_init(&fx);
    char *t = platform_token(&fx);
    json_t *c = NULL;
    tsr_error_t err;
    ck_assert_int_eq(tsr_identity__jwt_verify(fx.id, t, &c, &err), TSR_OK);
    ck_assert_str_eq(json_string_value(json_object_get(c, "sub")), fx.a.user_id);
    ck_assert_str_eq(json_string_value(json_object_get(c, "tid")), fx.a.tenant_id);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(c, "roles"), 0)),
                     "TenantAdmin");
    json_int_t exp = json_integer_value(json_object_get(c, "exp"));
    ck_assert_int_le(exp - tsr_wall_ms() / 1000, 300);
    ck_assert_int_gt(exp - tsr_wall_ms() / 1000, 200);
    json_decref(c);
    /* The JWKS (no authentication) lists the signing key. */
    json_t *jwks = expect(&fx, "GET", "/api/v1/identity/keys", NULL, NULL, NULL, 200);
    json_t *k0 = json_array_get(json_object_get(jwks, "keys"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(k0, "kty")), "EC");
    ck_assert_str_eq(json_string_value(json_object_get(k0, "crv")), "P-256");
    ck_assert_str_eq(json_string_value(json_object_get(k0, "kid")), fx.id->sign_kid);
    ck_assert_uint_eq(strlen(json_string_value(json_object_get(k0, "x"))), 43);
    ck_assert_uint_eq(strlen(json_string_value(json_object_get(k0, "y"))), 43);
    ck_assert_ptr_null(json_object_get(k0, "d"));
    char *js = json_dumps(jwks, 0);
    ck_assert_ptr_null(strstr(js, "PRIVATE"));
    free(js);
    json_decref(jwks);
    /* As a bearer (service-to-service): good on A's host, refused on B's (J16). */
    json_t *u = expect(&fx, "GET", "/api/v1/users/me", HOST_A, t, NULL, 200);
    json_decref(u);
    json_decref(expect(&fx, "GET", "/internal/v1/authn", HOST_B, t, NULL, 401));
    free(t);
    fx_cleanup(&fx);
}
END_TEST

static char *b64n(const unsigned char *s, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    char *out = tsr_xmalloc(n * 2 + 4);
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | s[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = tab[(acc >> bits) & 63u];
        }
    }
    if (bits > 0) {
        out[o++] = tab[(acc << (6 - bits)) & 63u];
    }
    out[o] = '\0';
    return out;
}

static char *b64(const char *s) {
    return b64n((const unsigned char *)s, strlen(s));
}

/* Sign claims (JSON text) under header (JSON text; the current kid added unless present) with
 * the platform's real signing key, whatever the header claims: each refusal below is then for
 * the header's or the claims' defect, never for a bad signature. */
static char *signed_with(fx_t *fx, const char *header, const char *claims) {
    json_error_t je;
    json_t *h = json_loads(header, 0, &je), *c = json_loads(claims, 0, &je);
    ck_assert_ptr_nonnull(h);
    ck_assert_ptr_nonnull(c);
    char *pem = NULL, kid[25];
    tsr_error_t err;
    ck_assert_int_eq(tsr_identity__signing_pem(fx->id, &pem, kid, &err), TSR_OK);
    if (json_object_get(h, "kid") == NULL) {
        json_object_set_new(h, "kid", json_string(kid));
    }
    char *hs = json_dumps(h, JSON_COMPACT), *cs = json_dumps(c, JSON_COMPACT);
    char *hb = b64(hs), *cb = b64(cs);
    size_t n = strlen(hb) + strlen(cb) + 2;
    char *input = tsr_xmalloc(n);
    snprintf(input, n, "%s.%s", hb, cb);
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    ck_assert_ptr_nonnull(k);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char der[128], raw[64];
    size_t der_len = sizeof der;
    ck_assert_int_eq(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k), 1);
    ck_assert_int_eq(
        EVP_DigestSign(ctx, der, &der_len, (const unsigned char *)input, strlen(input)), 1);
    const unsigned char *dp = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &dp, (long)der_len);
    ck_assert_ptr_nonnull(sig);
    ck_assert_int_eq(BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, 32), 32);
    ck_assert_int_eq(BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + 32, 32), 32);
    char *sb = b64n(raw, sizeof raw);
    n = strlen(input) + strlen(sb) + 2;
    char *t = tsr_xmalloc(n);
    snprintf(t, n, "%s.%s", input, sb);
    ECDSA_SIG_free(sig);
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(k);
    BIO_free(bio);
    tsr_crypto_cleanse(pem, strlen(pem));
    free(pem);
    free(hs);
    free(cs);
    free(hb);
    free(cb);
    free(input);
    free(sb);
    json_decref(h);
    json_decref(c);
    return t;
}

static void assert_token_refused(fx_t *fx, const char *t, const char *what) {
    json_t *c = NULL;
    tsr_error_t err;
    ck_assert_msg(tsr_identity__jwt_verify(fx->id, t, &c, &err) == TSR_EUNAUTHENTICATED,
                  "%s was accepted", what);
    ck_assert_ptr_null(c);
    json_decref(expect(fx, "GET", "/internal/v1/authn", HOST_A, t, NULL, 401));
}

START_TEST(test_jwt_verify_negative_matrix_is_401) {
    fx_t fx;
    fx_init(&fx);
    char claims[512], *t;
    long now = (long)(tsr_wall_ms() / 1000);
    const char *H = "{\"alg\":\"ES256\",\"typ\":\"tsr+jwt\"}";
#define CLAIMS(extra_fmt, ...)                                                                     \
    snprintf(claims, sizeof claims,                                                                \
             "{\"iss\":\"tessera-identity\",\"aud\":\"tessera\",\"sub\":\"%s\",\"tid\":\"%"        \
             "s\"" extra_fmt "}",                                                                  \
             fx.a.user_id, fx.a.tenant_id, __VA_ARGS__)
    /* A well-formed token passes, so each refusal below is for its one defect. */
    CLAIMS(",\"iat\":%ld,\"nbf\":%ld,\"exp\":%ld", now, now, now + 60);
    t = signed_with(&fx, H, claims);
    json_decref(expect(&fx, "GET", "/internal/v1/authn", HOST_A, t, NULL, 200));
    /* J11 signature bit flip, J12 truncation / bad base64url, J17 huge. */
    char *flip = tsr_xstrdup(t);
    size_t n = strlen(flip);
    flip[n - 2] = flip[n - 2] == 'A' ? 'B' : 'A';
    assert_token_refused(&fx, flip, "bit flip");
    flip[n - 10] = '\0';
    assert_token_refused(&fx, flip, "truncated");
    free(flip);
    char *dot = tsr_xstrdup(t);
    *strrchr(dot, '.') = '\0';
    assert_token_refused(&fx, dot, "two segments");
    free(dot);
    char *bad = tsr_xstrdup(t);
    bad[5] = '*';
    assert_token_refused(&fx, bad, "non-base64url");
    free(bad);
    free(t);
    /* J1 alg none, J2 HS256: the signature part is ours but the alg is refused. */
    const char *algs[] = {"{\"alg\":\"none\",\"typ\":\"tsr+jwt\"}",
                          "{\"alg\":\"HS256\",\"typ\":\"tsr+jwt\"}",
                          "{\"alg\":\"ES256\",\"typ\":\"JWT\"}",
                          "{\"alg\":\"ES256\"}",
                          "{\"alg\":\"ES256\",\"typ\":\"tsr+jwt\",\"crit\":[\"x\"]}",
                          "{\"alg\":\"ES256\",\"typ\":\"tsr+jwt\",\"kid\":\"../../../dev/null\"}",
                          "{\"alg\":\"ES256\",\"typ\":\"tsr+jwt\",\"kid\":\"" MISSING_ID "\"}"};
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
        t = signed_with(&fx, algs[i], claims);
        assert_token_refused(&fx, t, algs[i]);
        free(t);
    }
    /* alg none with an empty signature. */
    char *hn = b64("{\"alg\":\"none\",\"typ\":\"tsr+jwt\"}"), *cn = b64(claims);
    char none[1024];
    snprintf(none, sizeof none, "%s.%s.", hn, cn);
    assert_token_refused(&fx, none, "alg none unsigned");
    free(hn);
    free(cn);
    /* J6/J7 time, J8 iss, J9 aud, J18 exp as string/float, J19 no sub, J13 duplicate keys. */
    const char *bodies[7];
    char b[8][512];
    snprintf(b[0], 512,
             "{\"iss\":\"tessera-identity\",\"aud\":\"tessera\",\"sub\":\"%s\",\"tid\":\"%s\","
             "\"iat\":%ld,\"nbf\":%ld,\"exp\":%ld}",
             fx.a.user_id, fx.a.tenant_id, now - 600, now - 600, now - 31);
    snprintf(b[1], 512,
             "{\"iss\":\"tessera-identity\",\"aud\":\"tessera\",\"sub\":\"%s\",\"tid\":\"%s\","
             "\"iat\":%ld,\"nbf\":%ld,\"exp\":%ld}",
             fx.a.user_id, fx.a.tenant_id, now, now + 60, now + 120);
    snprintf(b[2], 512,
             "{\"iss\":\"evil\",\"aud\":\"tessera\",\"sub\":\"%s\",\"tid\":\"%s\",\"iat\":%ld,"
             "\"nbf\":%ld,\"exp\":%ld}",
             fx.a.user_id, fx.a.tenant_id, now, now, now + 60);
    snprintf(b[3], 512,
             "{\"iss\":\"tessera-identity\",\"aud\":\"other\",\"sub\":\"%s\",\"tid\":\"%s\","
             "\"iat\":%ld,\"nbf\":%ld,\"exp\":%ld}",
             fx.a.user_id, fx.a.tenant_id, now, now, now + 60);
    snprintf(b[4], 512,
             "{\"iss\":\"tessera-identity\",\"aud\":\"tessera\",\"sub\":\"%s\",\"tid\":\"%s\","
             "\"iat\":%ld,\"nbf\":%ld,\"exp\":\"%ld\"}",
             fx.a.user_id, fx.a.tenant_id, now, now, now + 60);
    snprintf(b[5], 512,
             "{\"iss\":\"tessera-identity\",\"aud\":\"tessera\",\"sub\":\"%s\",\"tid\":\"%s\","
             "\"iat\":%ld,\"nbf\":%ld,\"exp\":%ld.5}",
             fx.a.user_id, fx.a.tenant_id, now, now, now + 60);
    snprintf(b[6], 512,
             "{\"iss\":\"tessera-identity\",\"aud\":\"tessera\",\"tid\":\"%s\",\"iat\":%ld,\"nbf\":"
             "%ld,\"exp\":%ld}",
             fx.a.tenant_id, now, now, now + 60);
    snprintf(b[7], 512,
             "{\"iss\":\"tessera-identity\",\"aud\":\"tessera\",\"sub\":\"%s\",\"tid\":\"%s\","
             "\"iat\":%ld,\"nbf\":%ld,\"exp\":%ld}",
             fx.b.user_id, fx.b.tenant_id, now, now, now + 60);
    for (size_t i = 0; i < 7; i++) {
        bodies[i] = b[i];
        t = signed_with(&fx, H, bodies[i]);
        assert_token_refused(&fx, t, bodies[i]);
        free(t);
    }
    /* J16: a valid token for tenant B is refused on A's host. */
    t = signed_with(&fx, H, b[7]);
    json_decref(expect(&fx, "GET", "/internal/v1/authn", HOST_A, t, NULL, 401));
    json_decref(expect(&fx, "GET", "/internal/v1/authn", HOST_B, t, NULL, 200));
    free(t);
    /* J13: a duplicate key cannot be produced through jansson's encoder; splice one in. */
    char dup[600];
    snprintf(dup, sizeof dup, "{\"sub\":\"%s\",%s", fx.b.user_id, claims + 1);
    char *hd = b64(H), *cd = b64(dup);
    char *ref = signed_with(&fx, H, claims); /* for the signature shape only */
    char forged[2048];
    snprintf(forged, sizeof forged, "%s.%s.%s", hd, cd, strrchr(ref, '.') + 1);
    assert_token_refused(&fx, forged, "duplicate sub");
    free(hd);
    free(cd);
    free(ref);
#undef CLAIMS
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_jwt_key_rotation_keeps_old_key_for_overlap_then_drops_it) {
    fx_t fx;
    fx_init(&fx);
    tsr_error_t err;
    char *old_tok = platform_token(&fx);
    char old_kid[25];
    memcpy(old_kid, fx.id->sign_kid, 25);
    /* Age the key past the rotation period (1 day by default). */
    json_t *k = NULL;
    ck_assert_int_eq(fx.id->docs.get(fx.id->docs.ud, TSR_ID__C_SIGNING_KEYS, TSR_ID__PLATFORM,
                                     old_kid, &k, &err),
                     TSR_OK);
    int64_t aged = tsr_wall_ms() - 86400LL * 1000 - 1000;
    json_object_set_new(k, "createdMs", json_integer(aged));
    ck_assert_int_eq(fx.id->docs.replace(fx.id->docs.ud, TSR_ID__C_SIGNING_KEYS, TSR_ID__PLATFORM,
                                         old_kid, k, NULL, &err),
                     TSR_OK);
    fx.id->sign_created_ms = aged;
    char *new_tok = platform_token(&fx);
    ck_assert_str_ne(fx.id->sign_kid, old_kid);
    json_t *jwks = expect(&fx, "GET", "/api/v1/identity/keys", NULL, NULL, NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(jwks, "keys")), 2);
    json_decref(jwks);
    json_t *c = NULL;
    ck_assert_int_eq(tsr_identity__jwt_verify(fx.id, old_tok, &c, &err), TSR_OK);
    json_decref(c);
    /* Past rotation + token lifetime + skew, the old key is gone and its tokens with it (J15). */
    json_object_set_new(k, "createdMs", json_integer(aged - 400 * 1000));
    ck_assert_int_eq(fx.id->docs.replace(fx.id->docs.ud, TSR_ID__C_SIGNING_KEYS, TSR_ID__PLATFORM,
                                         old_kid, k, NULL, &err),
                     TSR_OK);
    jwks = expect(&fx, "GET", "/api/v1/identity/keys", NULL, NULL, NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(jwks, "keys")), 1);
    json_decref(jwks);
    ck_assert_int_eq(tsr_identity__jwt_verify(fx.id, old_tok, &c, &err), TSR_EUNAUTHENTICATED);
    ck_assert_int_eq(tsr_identity__jwt_verify(fx.id, new_tok, &c, &err), TSR_OK);
    json_decref(c);
    json_decref(k);
    free(old_tok);
    free(new_tok);
    fx_cleanup(&fx);
}
END_TEST

/* ---- keys, tokens and events on the shared modules ----------------------------------------- */

START_TEST(test_tenant_dek_created_on_create_and_shredded_on_delete) {
    fx_t fx;
    fx_init(&fx);
    tsr_error_t err;
    const char *hc[] = {"c.test", NULL};
    char tc[25];
    ck_assert_int_eq(tsr_identity_tenant_create(fx.id, "c", hc, tc, &err), TSR_OK);
    /* A DEK (version 1) exists for the new tenant and seals and opens its blobs. */
    tsr_keyring_t *kr = NULL;
    ck_assert_int_eq(tsr_identity__keyring_load(fx.id, tc, &kr, &err), TSR_OK);
    ck_assert_uint_eq(tsr_crypto_keyring_current(kr), 1);
    tsr_seal_ad_t ad = {
        .tenant_id = tc, .kind = "idp-secret", .object_id = "x", .object_version = 1};
    tsr_buf_t sealed, plain;
    tsr_buf_init(&sealed, 4096);
    tsr_buf_init(&plain, 4096);
    ck_assert_int_eq(tsr_crypto_seal(kr, &ad, "client-secret", 13, &sealed, &err), TSR_OK);
    tsr_crypto_keyring_destroy(kr);
    ck_assert_int_eq(tsr_identity__keyring_load(fx.id, tc, &kr, &err), TSR_OK);
    ck_assert_int_eq(tsr_crypto_open(kr, &ad, sealed.data, sealed.len, &plain, &err), TSR_OK);
    ck_assert_uint_eq(plain.len, 13);
    ck_assert_int_eq(memcmp(plain.data, "client-secret", 13), 0);
    tsr_crypto_keyring_destroy(kr);
    /* Another tenant's DEK does not open it (and tenant A has its own key too). */
    ck_assert_int_eq(tsr_identity__keyring_load(fx.id, fx.a.tenant_id, &kr, &err), TSR_OK);
    tsr_crypto_keyring_destroy(kr);
    /* Deleting the tenant deletes its DEK records: nothing loads, the blob never opens again. */
    ck_assert_int_eq(tsr_identity_tenant_del(fx.id, tc, &err), TSR_OK);
    kr = NULL;
    ck_assert_int_eq(tsr_identity__keyring_load(fx.id, tc, &kr, &err), TSR_ENOTFOUND);
    ck_assert_ptr_null(kr);
    json_t *rows = NULL;
    ck_assert_int_eq(
        fx.id->docs.list(fx.id->docs.ud, TSR_ID__C_DEKS, tc, NULL, NULL, NULL, 100, &rows, &err),
        TSR_OK);
    ck_assert_uint_eq(json_array_size(rows), 0);
    json_decref(rows);
    kr = tsr_crypto_keyring_create(tc);
    tsr_buf_reset(&plain);
    ck_assert_int_ne(tsr_crypto_open(kr, &ad, sealed.data, sealed.len, &plain, &err), TSR_OK);
    ck_assert_uint_eq(plain.len, 0);
    tsr_crypto_keyring_destroy(kr);
    /* A tenant created again with the same hostname gets a new, different key. */
    ck_assert_int_eq(tsr_identity_tenant_create(fx.id, "c2", hc, tc, &err), TSR_OK);
    ck_assert_int_eq(tsr_identity__keyring_load(fx.id, tc, &kr, &err), TSR_OK);
    tsr_seal_ad_t ad2 = ad;
    ad2.tenant_id = tc;
    ck_assert_int_ne(tsr_crypto_open(kr, &ad2, sealed.data, sealed.len, &plain, &err), TSR_OK);
    tsr_crypto_keyring_destroy(kr);
    tsr_buf_cleanup(&sealed);
    tsr_buf_cleanup(&plain);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_minted_jwt_verifies_with_crypto_against_published_jwks) {
    fx_t fx;
    fx_init(&fx);
    tsr_error_t err;
    char *t = platform_token(&fx);
    json_t *jwks = expect(&fx, "GET", "/api/v1/identity/keys", NULL, NULL, NULL, 200);
    char *text = json_dumps(jwks, JSON_COMPACT);
    tsr_jwt_keyset_t *ks = tsr_crypto_jwt_keyset_create();
    size_t added = 0;
    ck_assert_int_eq(tsr_crypto_jwt_keyset_jwks_parse(ks, text, strlen(text), &added, &err),
                     TSR_OK);
    ck_assert_uint_eq(added, 1);
    tsr_jwt_verify_opts_t vo = {
        .issuer = "tessera-identity", .audience = "tessera", .typ = "tsr+jwt", .require_exp = true};
    json_t *c = NULL;
    ck_assert_int_eq(tsr_crypto_jwt_verify(ks, t, strlen(t), &vo, &c, &err), TSR_OK);
    ck_assert_str_eq(json_string_value(json_object_get(c, "sub")), fx.a.user_id);
    ck_assert_str_eq(json_string_value(json_object_get(c, "tid")), fx.a.tenant_id);
    json_decref(c);
    c = NULL;
    /* A verifier with other expectations refuses it. */
    vo.audience = "someone-else";
    ck_assert_int_eq(tsr_crypto_jwt_verify(ks, t, strlen(t), &vo, &c, &err), TSR_EUNAUTHENTICATED);
    ck_assert_ptr_null(c);
    /* The signing key's PEM is stored sealed, never as plain PEM. */
    json_t *k = NULL;
    ck_assert_int_eq(fx.id->docs.get(fx.id->docs.ud, TSR_ID__C_SIGNING_KEYS, TSR_ID__PLATFORM,
                                     fx.id->sign_kid, &k, &err),
                     TSR_OK);
    char *ks_text = json_dumps(k, 0);
    ck_assert_ptr_null(strstr(ks_text, "PRIVATE"));
    free(ks_text);
    json_decref(k);
    tsr_crypto_jwt_keyset_destroy(ks);
    free(text);
    json_decref(jwks);
    free(t);
    fx_cleanup(&fx);
}
END_TEST

/* Every unsent outbox row (payloads parsed) and mark them sent. */
static json_t *outbox_drain(fx_t *fx) {
    json_t *out = json_array();
    tsr_error_t err;
    for (;;) {
        tsr_store_event_t *rows = NULL;
        size_t n = 0;
        ck_assert_int_eq(tsr_store_platform_outbox_fetch(fx->store, 100, &rows, &n, &err), TSR_OK);
        if (n == 0) {
            tsr_store_outbox_rows_free(rows, n);
            return out;
        }
        const char **ids = tsr_xcalloc(n, sizeof *ids);
        for (size_t i = 0; i < n; i++) {
            tsr_event_t ev;
            ck_assert_int_eq(tsr_event_parse(rows[i].payload, rows[i].payload_len, &ev, &err),
                             TSR_OK);
            json_t *row =
                json_pack("{ss ss ss ss ss}", "topic", rows[i].topic, "key", rows[i].key, "type",
                          ev.type, "tenant", ev.tenantid, "payload", rows[i].payload);
            ck_assert_ptr_nonnull(row);
            if (ev.userid != NULL) {
                json_object_set_new(row, "user", json_string(ev.userid));
            }
            if (ev.subject != NULL) {
                json_object_set_new(row, "subject", json_string(ev.subject));
            }
            json_array_append_new(out, row);
            ck_assert_str_eq(rows[i].id, ev.id);
            ck_assert_str_eq(ev.source, "/tessera/identity");
            tsr_event_cleanup(&ev);
            ids[i] = rows[i].id;
        }
        ck_assert_int_eq(tsr_store_platform_outbox_mark_sent(fx->store, ids, n, &err), TSR_OK);
        free(ids);
        tsr_store_outbox_rows_free(rows, n);
    }
}

/* The row of type in rows (NULL if none). */
static json_t *row_of(json_t *rows, const char *type) {
    json_t *r;
    size_t i;
    json_array_foreach(rows, i, r) {
        if (strcmp(json_string_value(json_object_get(r, "type")), type) == 0) {
            return r;
        }
    }
    return NULL;
}

START_TEST(test_audit_outbox_rows_for_user_and_api_key_changes) {
    fx_t fx;
    fx_init(&fx);
    json_t *boot = outbox_drain(&fx);
    /* The fixture's tenants and admins were recorded too. */
    ck_assert_ptr_nonnull(row_of(boot, "com.tessera.v1.tenant.created"));
    ck_assert_ptr_nonnull(row_of(boot, "com.tessera.v1.user.created"));
    ck_assert_ptr_nonnull(row_of(boot, "com.tessera.v1.apikey.created"));
    json_decref(boot);
    int hooks = fx.audits;
    /* User created, updated; API key created and revoked by an admin; user deleted. */
    char uid[25], path[128];
    char *tok = user_with_key(&fx, "ev@a.test", "[{\"name\":\"Developer\"}]", uid);
    json_t *k = expect(&fx, "POST", "/api/v1/api-keys", HOST_A, tok,
                       "{\"description\":\"ev\",\"expiry\":\"P7D\"}", 201);
    snprintf(path, sizeof path, "/api/v1/api-keys/%s", json_string_value(json_object_get(k, "id")));
    json_decref(expect(&fx, "DELETE", path, HOST_A, fx.a.api_key, NULL, 204));
    /* A refused change (email taken) writes no row. */
    json_decref(expect(&fx, "POST", "/api/v1/users", HOST_A, fx.a.api_key,
                       "{\"email\":\"EV@a.test\"}", 409));
    snprintf(path, sizeof path, "/api/v1/users/%s", uid);
    json_decref(expect(&fx, "DELETE", path, HOST_A, fx.a.api_key, NULL, 204));
    /* Sign-ins, failed and good, go to the audit topic. */
    char lb[512], *cookie = NULL, *csrf = NULL;
    snprintf(lb, sizeof lb, "{\"email\":\"%s\",\"password\":\"wrong-password-1\"}", fx.a.user);
    json_decref(expect(&fx, "POST", "/api/v1/identity/login", HOST_A, NULL, lb, 401));
    login(&fx, &cookie, &csrf);
    free(cookie);
    free(csrf);
    json_t *rows = outbox_drain(&fx);
    static const char *const signins[] = {"com.tessera.v1.auth.login.failed",
                                          "com.tessera.v1.auth.login.succeeded"};
    for (size_t i = 0; i < 2; i++) {
        json_t *r = row_of(rows, signins[i]);
        ck_assert_msg(r != NULL, "no outbox row of type %s", signins[i]);
        ck_assert_str_eq(json_string_value(json_object_get(r, "topic")), "tessera.audit");
        ck_assert_str_eq(json_string_value(json_object_get(r, "user")), fx.a.user_id);
    }
    static const char *const want[] = {"com.tessera.v1.user.created", "com.tessera.v1.user.updated",
                                       "com.tessera.v1.apikey.created",
                                       "com.tessera.v1.apikey.revoked",
                                       "com.tessera.v1.user.deleted"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        json_t *r = row_of(rows, want[i]);
        ck_assert_msg(r != NULL, "no outbox row of type %s", want[i]);
        ck_assert_str_eq(json_string_value(json_object_get(r, "topic")), "tessera.identity");
        ck_assert_str_eq(json_string_value(json_object_get(r, "key")), fx.a.tenant_id);
        ck_assert_str_eq(json_string_value(json_object_get(r, "tenant")), fx.a.tenant_id);
        /* Events leave the service: no hash of any secret goes with them. */
        ck_assert_ptr_null(strstr(json_string_value(json_object_get(r, "payload")), "\"hash\""));
    }
    ck_assert_str_eq(json_string_value(json_object_get(row_of(rows, want[4]), "subject")), uid);
    ck_assert_str_eq(json_string_value(json_object_get(row_of(rows, want[3]), "user")),
                     fx.a.user_id);
    /* One row per committed change, each also handed to the in-process hook. */
    ck_assert_uint_eq(json_array_size(rows), (size_t)(fx.audits - hooks));
    json_decref(rows);
    json_decref(k);
    free(tok);
    fx_cleanup(&fx);
}
END_TEST

/* ---- small pieces -------------------------------------------------------------------------- */

START_TEST(test_duration_parse_valid_and_invalid) {
    int64_t ms = 0;
    tsr_error_t err;
    ck_assert_int_eq(tsr_identity__duration_parse("P30D", &ms, &err), TSR_OK);
    ck_assert_int_eq(ms, 30LL * 86400 * 1000);
    ck_assert_int_eq(tsr_identity__duration_parse("P1W", &ms, &err), TSR_OK);
    ck_assert_int_eq(ms, 7LL * 86400 * 1000);
    ck_assert_int_eq(tsr_identity__duration_parse("PT1H30M", &ms, &err), TSR_OK);
    ck_assert_int_eq(ms, 5400LL * 1000);
    const char *bad[] = {"", "P", "30D", "PD", "P1H", "PT1D", "P-1D", "P1DT1X", NULL};
    for (size_t i = 0; i < 8; i++) {
        ck_assert_int_eq(tsr_identity__duration_parse(bad[i], &ms, &err), TSR_EINVAL);
    }
    ck_assert_int_eq(tsr_identity__duration_parse(NULL, &ms, &err), TSR_EINVAL);
}
END_TEST

START_TEST(test_routes_without_service_is_einval) {
    tsr_httpd_opts_t o = {.service = "identity", .bind = "127.0.0.1", .threads = 1, .max_body = 1};
    tsr_httpd_t *h = NULL;
    tsr_error_t err;
    ck_assert_int_eq(tsr_httpd_create(&o, &h, &err), TSR_OK);
    ck_assert_int_eq(tsr_identity_routes(h, NULL, &err), TSR_EINVAL);
    tsr_httpd_destroy(h);
}
END_TEST

START_TEST(test_routes_and_openapi_cover_each_other) {
    tsr_test_routes_match_openapi(TSR_SOURCE_DIR "/api/openapi/identity.yaml",
                                  tsr_identity__route_at);
}
END_TEST

/* ---- OIDC ---------------------------------------------------------------------------------- */

#define OIDC_ISS "https://idp.test"
#define OIDC_CID "tessera-client"

/* Sign claims (with iss/aud/sub/nonce/iat/exp defaults overridden by extra) with ks. */
static char *oidc_token(const tsr_jwt_keyset_t *ks, int64_t now, const char *extra) {
    tsr_error_t err;
    json_t *c = json_pack("{ss ss ss ss sI sI}", "iss", OIDC_ISS, "aud", OIDC_CID, "sub", "u-1",
                          "nonce", "n-1", "iat", (json_int_t)now, "exp", (json_int_t)(now + 300));
    if (extra != NULL) {
        json_t *e = json_loads(extra, 0, NULL);
        ck_assert_ptr_nonnull(e);
        const char *k;
        json_t *v;
        json_object_foreach(e, k, v) {
            if (json_is_null(v)) {
                json_object_del(c, k);
            } else {
                json_object_set(c, k, v);
            }
        }
        json_decref(e);
    }
    char *tok = NULL;
    ck_assert_int_eq(tsr_crypto_jwt_sign(ks, "JWT", c, &tok, &err), TSR_OK);
    json_decref(c);
    return tok;
}

static tsr_jwt_keyset_t *signing_set(const char *kid, tsr_jwt_alg_t alg) {
    tsr_error_t err;
    tsr_jwt_key_t *k = NULL;
    tsr_jwt_keyset_t *ks = tsr_crypto_jwt_keyset_create();
    ck_assert_int_eq(tsr_crypto_jwt_key_generate(kid, alg, &k, &err), TSR_OK);
    ck_assert_int_eq(tsr_crypto_jwt_keyset_add(ks, k, true, &err), TSR_OK);
    return ks;
}

/* The public half of ks, as a relying party imports it from the provider's JWKS. */
static tsr_jwt_keyset_t *public_set(const tsr_jwt_keyset_t *ks) {
    tsr_error_t err;
    char *jwks = NULL;
    size_t added = 0;
    ck_assert_int_eq(tsr_crypto_jwt_keyset_jwks_format(ks, &jwks, &err), TSR_OK);
    tsr_jwt_keyset_t *pub = tsr_crypto_jwt_keyset_create();
    ck_assert_int_eq(tsr_crypto_jwt_keyset_jwks_parse(pub, jwks, strlen(jwks), &added, &err),
                     TSR_OK);
    ck_assert_uint_eq(added, 1);
    free(jwks);
    return pub;
}

static tsr_err_t oidc_check(const tsr_jwt_keyset_t *pub, const char *tok, const char *nonce,
                            int64_t now) {
    tsr_error_t err;
    json_t *claims = NULL;
    tsr_err_t rc = tsr_identity__oidc_id_token_verify(pub, tok, OIDC_ISS, OIDC_CID, nonce, 30, now,
                                                      &claims, &err);
    if (rc == TSR_OK) {
        ck_assert_str_eq(json_string_value(json_object_get(claims, "sub")), "u-1");
    } else {
        ck_assert_ptr_null(claims);
    }
    json_decref(claims);
    return rc;
}

START_TEST(test_oidc_id_token_matrix) {
    int64_t now = 1800000000;
    tsr_jwt_keyset_t *rs = signing_set("rsa-1", TSR_JWT_ALG_RS256);
    tsr_jwt_keyset_t *es = signing_set("ec-1", TSR_JWT_ALG_ES256);
    tsr_jwt_keyset_t *other = signing_set("rsa-1", TSR_JWT_ALG_RS256); /* same kid, other key */
    tsr_jwt_keyset_t *unknown = signing_set("rsa-9", TSR_JWT_ALG_RS256);
    tsr_jwt_keyset_t *pub = public_set(rs), *pub_es = public_set(es);
    char *t;
    /* Good tokens: RS256 and ES256. */
    t = oidc_token(rs, now, NULL);
    ck_assert_int_eq(oidc_check(pub, t, "n-1", now), TSR_OK);
    ck_assert_int_eq(oidc_check(pub, t, "n-1", now + 320), TSR_OK); /* within the skew */
    /* Bad nonce, missing nonce, expired beyond the skew. */
    ck_assert_int_eq(oidc_check(pub, t, "n-2", now), TSR_EUNAUTHENTICATED);
    ck_assert_int_eq(oidc_check(pub, t, NULL, now), TSR_EUNAUTHENTICATED);
    ck_assert_int_eq(oidc_check(pub, t, "n-1", now + 400), TSR_EUNAUTHENTICATED);
    free(t);
    t = oidc_token(es, now, NULL);
    ck_assert_int_eq(oidc_check(pub_es, t, "n-1", now), TSR_OK);
    free(t);
    static const char *const bad[] = {
        "{\"iss\":\"https://evil.test\"}",      /* wrong iss */
        "{\"aud\":\"another-client\"}",         /* wrong aud */
        "{\"aud\":[\"another\",\"x\"]}",        /* aud without us */
        "{\"aud\":[\"tessera-client\",\"x\"]}", /* several audiences, no azp */
        "{\"azp\":\"another\"}",                /* azp not us */
        "{\"exp\":1799999000}",                 /* expired */
        "{\"exp\":null}",                       /* no exp */
        "{\"iat\":null}",                       /* no iat */
        "{\"nbf\":1800001000}",                 /* not yet valid */
        "{\"nonce\":null}",                     /* no nonce */
        "{\"nonce\":\"n-2\"}",                  /* another sign-in's nonce */
        "{\"sub\":null}",                       /* no subject */
        "{\"exp\":\"1800000300\"}",             /* exp as a string */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t = oidc_token(rs, now, bad[i]);
        ck_assert_msg(oidc_check(pub, t, "n-1", now) == TSR_EUNAUTHENTICATED, "accepted %s",
                      bad[i]);
        free(t);
    }
    /* Signed by another key under the same kid; an unknown kid; ES256 against an RSA set. */
    t = oidc_token(other, now, NULL);
    ck_assert_int_eq(oidc_check(pub, t, "n-1", now), TSR_EUNAUTHENTICATED);
    free(t);
    t = oidc_token(unknown, now, NULL);
    ck_assert_int_eq(oidc_check(pub, t, "n-1", now), TSR_EUNAUTHENTICATED);
    free(t);
    t = oidc_token(es, now, NULL);
    ck_assert_int_eq(oidc_check(pub, t, "n-1", now), TSR_EUNAUTHENTICATED);
    free(t);
    /* alg none with the good claims and an empty signature; and a token with its payload
     * swapped. */
    t = oidc_token(rs, now, NULL);
    tsr_buf_t b;
    tsr_buf_init(&b, 8192);
    const char *hdr_none = "{\"alg\":\"none\",\"kid\":\"rsa-1\"}";
    tsr_crypto_b64url_encode(hdr_none, strlen(hdr_none), &b);
    const char *dot1 = strchr(t, '.'), *dot2 = strchr(dot1 + 1, '.');
    tsr_buf_append(&b, dot1, (size_t)(dot2 - dot1 + 1));
    ck_assert_int_eq(oidc_check(pub, b.data, "n-1", now), TSR_EUNAUTHENTICATED);
    tsr_buf_cleanup(&b);
    char *t2 = oidc_token(rs, now, "{\"sub\":\"admin\"}");
    tsr_buf_init(&b, 8192);
    tsr_buf_append(&b, t, (size_t)(dot1 - t));
    const char *d21 = strchr(t2, '.'), *d22 = strchr(d21 + 1, '.');
    tsr_buf_append(&b, d21, (size_t)(d22 - d21));
    tsr_buf_append_str(&b, dot2);
    ck_assert_int_eq(oidc_check(pub, b.data, "n-1", now), TSR_EUNAUTHENTICATED);
    tsr_buf_cleanup(&b);
    free(t2);
    free(t);
    ck_assert_int_eq(oidc_check(pub, NULL, "n-1", now), TSR_EUNAUTHENTICATED);
    tsr_crypto_jwt_keyset_destroy(rs);
    tsr_crypto_jwt_keyset_destroy(es);
    tsr_crypto_jwt_keyset_destroy(other);
    tsr_crypto_jwt_keyset_destroy(unknown);
    tsr_crypto_jwt_keyset_destroy(pub);
    tsr_crypto_jwt_keyset_destroy(pub_es);
}
END_TEST

static tsr_err_t disc_parse(const char *doc, const char *url) {
    tsr_error_t err;
    tsr_id__oidc_disc_t d;
    tsr_err_t rc = tsr_identity__oidc_discovery_parse(doc, strlen(doc), url, &d, &err);
    if (rc == TSR_OK) {
        ck_assert_ptr_nonnull(d.jwks_uri);
        tsr_identity__oidc_disc_cleanup(&d);
    } else {
        ck_assert_ptr_null(d.issuer);
    }
    return rc;
}

START_TEST(test_oidc_discovery_caps) {
    const char *url = "https://idp.test/.well-known/openid-configuration";
    const char *good = "{\"issuer\":\"https://idp.test\",\"authorization_endpoint\":"
                       "\"https://idp.test/auth\",\"token_endpoint\":\"https://idp.test/token\","
                       "\"jwks_uri\":\"https://idp.test/jwks\",\"response_types_supported\":"
                       "[\"code\",\"id_token\"]}";
    ck_assert_int_eq(disc_parse(good, url), TSR_OK);
    ck_assert_int_eq(disc_parse(good, NULL), TSR_OK);
    /* The issuer must be the discovery URL's prefix. */
    ck_assert_int_eq(disc_parse(good, "https://other.test/.well-known/openid-configuration"),
                     TSR_EINVAL);
    /* Loopback http is allowed; other http is not. */
    ck_assert_int_eq(
        disc_parse("{\"issuer\":\"http://127.0.0.1:9\",\"authorization_endpoint\":"
                   "\"http://127.0.0.1:9/auth\",\"token_endpoint\":\"http://127.0.0.1:9/token\","
                   "\"jwks_uri\":\"http://127.0.0.1:9/jwks\"}",
                   "http://127.0.0.1:9/.well-known/openid-configuration"),
        TSR_OK);
    ck_assert_int_eq(disc_parse("{\"issuer\":\"https://idp.test\",\"authorization_endpoint\":"
                                "\"http://idp.test/auth\",\"token_endpoint\":\"https://idp.test/"
                                "token\",\"jwks_uri\":\"https://idp.test/jwks\"}",
                                url),
                     TSR_EINVAL);
    ck_assert_int_eq(disc_parse("{\"issuer\":\"https://idp.test\",\"authorization_endpoint\":"
                                "\"https://idp.test/auth\",\"token_endpoint\":\"https://idp.test/"
                                "token\"}",
                                url),
                     TSR_EINVAL); /* no jwks_uri */
    ck_assert_int_eq(disc_parse("{\"issuer\":\"https://idp.test\",\"authorization_endpoint\":"
                                "\"https://idp.test/auth\",\"token_endpoint\":\"https://idp.test/"
                                "token\",\"jwks_uri\":\"https://idp.test/jwks\","
                                "\"response_types_supported\":[\"id_token\"]}",
                                url),
                     TSR_EINVAL); /* no code flow */
    ck_assert_int_eq(disc_parse("[1,2]", url), TSR_EINVAL);
    ck_assert_int_eq(disc_parse("{\"issuer\":", url), TSR_EINVAL);
    /* Size cap: checked before parsing. */
    size_t n = TSR_ID__OIDC_DOC_MAX + 1;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    memcpy(big, good, strlen(good));
    big[n] = '\0';
    ck_assert_int_eq(disc_parse(big, url), TSR_ETOOBIG);
    free(big);
    ck_assert(!tsr_identity__oidc_url_ok("http://idp.test/x"));
    ck_assert(!tsr_identity__oidc_url_ok("http://127.0.0.1.evil.test/x"));
    ck_assert(!tsr_identity__oidc_url_ok("ftp://idp.test/x"));
    ck_assert(tsr_identity__oidc_url_ok("http://localhost:8080/x"));
    ck_assert(tsr_identity__returnto_ok("/hub?x=1"));
    ck_assert(!tsr_identity__returnto_ok("//evil.test/"));
    ck_assert(!tsr_identity__returnto_ok("https://evil.test/"));
    ck_assert(!tsr_identity__returnto_ok("/\\evil.test"));
}
END_TEST

#define IDP_BODY                                                                                   \
    "{\"protocol\":\"OIDC\",\"provider\":\"generic\",\"interactive\":true,"                        \
    "\"description\":\"corp\",\"options\":{\"discoveryUrl\":\"https://idp.test/.well-known/"       \
    "openid-configuration\",\"clientId\":\"tessera\",\"clientSecret\":\"s3cr3t-value\"}}"

START_TEST(test_oidc_jit_user_link_and_conflicts) {
    fx_t fx;
    tsr_error_t err;
    char uid[25], uid2[25];
    const char *idp = "0123456789abcdef0123456a";
    fx_init(&fx);
    const char *ta = fx.a.tenant_id;
    /* Not linked and creation off: refused, nothing written. */
    ck_assert_int_eq(
        tsr_identity__oidc_user(fx.id, ta, idp, "s-1", "s1@corp.test", "S", false, uid, &err),
        TSR_EUNAUTHENTICATED);
    /* No email claim: refused. */
    ck_assert_int_eq(tsr_identity__oidc_user(fx.id, ta, idp, "s-1", NULL, "S", true, uid, &err),
                     TSR_EUNAUTHENTICATED);
    int before = fx.audits;
    ck_assert_int_eq(
        tsr_identity__oidc_user(fx.id, ta, idp, "s-1", "S1@Corp.test", "S One", true, uid, &err),
        TSR_OK);
    ck_assert_int_eq(fx.audits, before + 1); /* user.created */
    char path[64];
    snprintf(path, sizeof path, "/api/v1/users/%s", uid);
    json_t *u = expect(&fx, "GET", path, HOST_A, fx.a.api_key, NULL, 200);
    ck_assert_str_eq(json_string_value(json_object_get(u, "email")), "s1@corp.test");
    ck_assert_str_eq(json_string_value(json_object_get(u, "subject")), "oidc|s-1");
    ck_assert_str_eq(json_string_value(json_object_get(u, "status")), "active");
    json_decref(u);
    /* The same subject again is the same user; another provider's same sub is not. */
    ck_assert_int_eq(
        tsr_identity__oidc_user(fx.id, ta, idp, "s-1", "other@corp.test", NULL, true, uid2, &err),
        TSR_OK);
    ck_assert_str_eq(uid, uid2);
    /* An existing account's email is never taken over; nothing partial is left. */
    ck_assert_int_eq(tsr_identity__oidc_user(fx.id, ta, "0123456789abcdef0123456b", "s-1",
                                             "s1@corp.test", NULL, true, uid2, &err),
                     TSR_ECONFLICT);
    json_t *l = expect(&fx, "GET", "/api/v1/users?limit=100", HOST_A, fx.a.api_key, NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(l, "data")), 2); /* admin + s-1 */
    json_decref(l);
    /* Same subject in tenant B: a separate user there. */
    ck_assert_int_eq(tsr_identity__oidc_user(fx.id, fx.b.tenant_id, idp, "s-1", "s1@corp.test",
                                             NULL, true, uid2, &err),
                     TSR_OK);
    ck_assert_str_ne(uid, uid2);
    /* A disabled user cannot sign in through its provider. */
    json_decref(expect(&fx, "PATCH", path, HOST_A, fx.a.api_key,
                       "[{\"op\":\"replace\",\"path\":\"/status\",\"value\":\"disabled\"}]", 204));
    ck_assert_int_eq(
        tsr_identity__oidc_user(fx.id, ta, idp, "s-1", "s1@corp.test", NULL, true, uid2, &err),
        TSR_EUNAUTHENTICATED);
    fx_cleanup(&fx);
}
END_TEST

/* A fake OpenID Provider on loopback (tsr_httpd) for the relying party's HTTP paths:
 * discovery (optionally oversized), JWKS (the current key set), and a token endpoint that
 * checks client_secret_basic and PKCE before signing an ID token with the expected nonce. */
typedef struct {
    tsr_httpd_t *h;
    char issuer[64];
    tsr_jwt_keyset_t *ks;
    char nonce[128];
    char challenge[128];
    bool big_discovery;
    bool bad_nonce;
    json_t *groups; /* the groups claim to send; NULL: none */
    int token_calls;
} fake_op_t;

static tsr_err_t op_discovery(tsr_req_t *req, void *ud, tsr_error_t *err) {
    fake_op_t *op = ud;
    (void)err;
    json_t *d = json_pack("{ss ss+ ss+ ss+ s[s]}", "issuer", op->issuer, "authorization_endpoint",
                          op->issuer, "/auth", "token_endpoint", op->issuer, "/token", "jwks_uri",
                          op->issuer, "/jwks", "response_types_supported", "code");
    if (op->big_discovery) {
        char *pad = malloc(70000);
        memset(pad, 'x', 69999);
        pad[69999] = '\0';
        json_object_set_new(d, "padding", json_string(pad));
        free(pad);
    }
    tsr_req_reply_json(req, 200, d);
    return TSR_OK;
}

static tsr_err_t op_jwks(tsr_req_t *req, void *ud, tsr_error_t *err) {
    fake_op_t *op = ud;
    char *jwks = NULL;
    tsr_err_t rc = tsr_crypto_jwt_keyset_jwks_format(op->ks, &jwks, err);
    if (rc == TSR_OK) {
        tsr_req_reply_bytes(req, 200, "application/json", jwks, strlen(jwks));
    }
    free(jwks);
    return rc;
}

static tsr_err_t op_token(tsr_req_t *req, void *ud, tsr_error_t *err) {
    fake_op_t *op = ud;
    size_t n = 0;
    const char *body = tsr_req_body(req, &n);
    const char *authz = tsr_req_header(req, "authorization");
    op->token_calls++;
    /* client_secret_basic: base64("tessera:s3cr3t") */
    if (authz == NULL || strcmp(authz, "Basic dGVzc2VyYTpzM2NyM3Q=") != 0) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "bad client");
    }
    char form[2048];
    snprintf(form, sizeof form, "%.*s", (int)n, body != NULL ? body : "");
    const char *v = strstr(form, "code_verifier=");
    char verifier[128] = "";
    if (v != NULL) {
        snprintf(verifier, sizeof verifier, "%.*s", (int)strcspn(v + 14, "&"), v + 14);
    }
    uint8_t md[32];
    tsr_crypto_sha256(verifier, strlen(verifier), md);
    tsr_buf_t b;
    tsr_buf_init(&b, 128);
    tsr_crypto_b64url_encode(md, sizeof md, &b);
    bool pkce_ok = strcmp(b.data, op->challenge) == 0;
    tsr_buf_cleanup(&b);
    if (!pkce_ok || strstr(form, "grant_type=authorization_code") == NULL) {
        tsr_req_reply_json(req, 400, json_pack("{ss}", "error", "invalid_grant"));
        return TSR_OK;
    }
    int64_t now = tsr_wall_ms() / 1000;
    json_t *c = json_pack("{ss ss ss ss ss ss sI sI}", "iss", op->issuer, "aud", "tessera", "sub",
                          "fake-1", "email", "fake@op.test", "name", "Fake", "nonce",
                          op->bad_nonce ? "replayed-nonce" : op->nonce, "iat", (json_int_t)now,
                          "exp", (json_int_t)(now + 300));
    if (op->groups != NULL) {
        json_object_set(c, "groups", op->groups);
    }
    char *tok = NULL;
    tsr_err_t rc = tsr_crypto_jwt_sign(op->ks, "JWT", c, &tok, err);
    json_decref(c);
    if (rc == TSR_OK) {
        tsr_req_reply_json(req, 200, json_pack("{ss ss}", "id_token", tok, "token_type", "Bearer"));
    }
    free(tok);
    return rc;
}

static void fake_op_start(fake_op_t *op) {
    tsr_error_t err;
    memset(op, 0, sizeof *op);
    tsr_httpd_opts_t o = {.service = "op", .bind = "127.0.0.1", .threads = 2, .max_body = 65536};
    ck_assert_int_eq(tsr_httpd_create(&o, &op->h, &err), TSR_OK);
    ck_assert_int_eq(
        tsr_httpd_route(op->h, "GET", "/.well-known/openid-configuration", op_discovery, op, &err),
        TSR_OK);
    ck_assert_int_eq(tsr_httpd_route(op->h, "GET", "/jwks", op_jwks, op, &err), TSR_OK);
    ck_assert_int_eq(tsr_httpd_route(op->h, "POST", "/token", op_token, op, &err), TSR_OK);
    ck_assert_int_eq(tsr_httpd_start(op->h, &err), TSR_OK);
    snprintf(op->issuer, sizeof op->issuer, "http://127.0.0.1:%u", tsr_httpd_port(op->h));
    op->ks = signing_set("op-1", TSR_JWT_ALG_RS256);
}

/* The query parameter name of url into out ("" if absent). */
static void url_param(const char *url, const char *name, char *out, size_t n) {
    char pat[64];
    snprintf(pat, sizeof pat, "%s=", name);
    const char *p = strstr(url, pat);
    out[0] = '\0';
    if (p != NULL && (p[-1] == '?' || p[-1] == '&')) {
        p += strlen(pat);
        snprintf(out, n, "%.*s", (int)strcspn(p, "&"), p);
    }
}

/* One sign-in through the fake OP; returns the callback's status, *cookie the session. */
static unsigned fake_signin(fx_t *fx, fake_op_t *op, const char *iid, char *cookie, size_t n) {
    char path[256], state[128], hcookie[256];
    tsr_httpd_response_t r;
    snprintf(path, sizeof path, "/api/v1/identity/oidc/%s/login?returnto=/hub", iid);
    call(fx, "GET", path, HOST_A, NULL, NULL, &r);
    ck_assert_msg(r.status == 302, "login: %u %s", r.status, r.body);
    const char *loc = hdr(&r, "location");
    ck_assert_ptr_nonnull(strstr(loc, "/auth?response_type=code&client_id=tessera&"));
    ck_assert_ptr_nonnull(strstr(loc, "code_challenge_method=S256"));
    ck_assert_ptr_nonnull(
        strstr(loc, "redirect_uri=http%3A%2F%2Fa.test%3A8080%2Fapi%2Fv1%2Fidentity%2Foidc%2F"));
    url_param(loc, "state", state, sizeof state);
    url_param(loc, "nonce", op->nonce, sizeof op->nonce);
    url_param(loc, "code_challenge", op->challenge, sizeof op->challenge);
    ck_assert_uint_eq(strlen(state), 43);
    ck_assert_ptr_nonnull(strstr(hdr(&r, "set-cookie"), "tsr_oidc="));
    tsr_httpd_response_cleanup(&r);
    snprintf(path, sizeof path, "/api/v1/identity/oidc/%s/callback?code=c1&state=%s", iid, state);
    snprintf(hcookie, sizeof hcookie, "tsr_oidc=%s", state);
    const char *h[] = {"Host", HOST_A, "Cookie", hcookie, NULL};
    tsr_httpd_inject(fx->h, "GET", path, h, NULL, 0, &r);
    unsigned st = r.status;
    cookie[0] = '\0';
    if (st == 302) {
        ck_assert_str_eq(hdr(&r, "location"), "/hub");
        const char *sc = hdr(&r, "set-cookie");
        ck_assert_ptr_nonnull(sc);
        ck_assert_ptr_nonnull(hdr(&r, "qlik-csrf-token"));
        snprintf(cookie, n, "%.*s", (int)strcspn(sc, ";"), sc);
    }
    tsr_httpd_response_cleanup(&r);
    /* The state is single use. */
    tsr_httpd_inject(fx->h, "GET", path, h, NULL, 0, &r);
    ck_assert_uint_eq(r.status, 401);
    tsr_httpd_response_cleanup(&r);
    return st;
}

START_TEST(test_oidc_flow_with_fake_provider) {
    fx_t fx;
    fake_op_t op;
    tsr_error_t err;
    char body[1024], cookie[256];
    fx_init(&fx);
    fake_op_start(&op);
    snprintf(body, sizeof body,
             "{\"protocol\":\"OIDC\",\"options\":{\"discoveryUrl\":\"%s/.well-known/"
             "openid-configuration\",\"clientId\":\"tessera\",\"clientSecret\":\"s3cr3t\"}}",
             op.issuer);
    json_t *c = expect(&fx, "POST", "/api/v1/identity-providers", HOST_A, fx.a.api_key, body, 201);
    const char *iid = json_string_value(json_object_get(c, "id"));
    ck_assert_uint_eq(fake_signin(&fx, &op, iid, cookie, sizeof cookie), 302);
    const char *h[] = {"Host", HOST_A, "Cookie", cookie, NULL};
    tsr_httpd_response_t r;
    tsr_httpd_inject(fx.h, "GET", "/api/v1/users/me", h, NULL, 0, &r);
    ck_assert_msg(r.status == 200, "%u %s", r.status, r.body);
    ck_assert_ptr_nonnull(strstr(r.body, "fake@op.test"));
    tsr_httpd_response_cleanup(&r);
    /* The provider rotates its key: the cached JWKS lacks the new kid and is fetched again. */
    tsr_jwt_key_t *k2 = NULL;
    ck_assert_int_eq(tsr_crypto_jwt_key_generate("op-2", TSR_JWT_ALG_ES256, &k2, &err), TSR_OK);
    tsr_jwt_keyset_t *ks2 = tsr_crypto_jwt_keyset_create();
    ck_assert_int_eq(tsr_crypto_jwt_keyset_add(ks2, k2, true, &err), TSR_OK);
    tsr_jwt_keyset_t *old = op.ks;
    op.ks = ks2;
    ck_assert_uint_eq(fake_signin(&fx, &op, iid, cookie, sizeof cookie), 302);
    ck_assert_int_eq(op.token_calls, 2);
    tsr_crypto_jwt_keyset_destroy(old);
    /* An ID token carrying another sign-in's nonce (a replay): refused, no session. */
    op.bad_nonce = true;
    int audits = fx.audits;
    ck_assert_uint_eq(fake_signin(&fx, &op, iid, cookie, sizeof cookie), 401);
    ck_assert_str_eq(cookie, "");
    ck_assert_int_eq(fx.audits, audits + 1); /* login.failed only */
    op.bad_nonce = false;
    /* An oversized discovery document (another URL, so not cached): the start fails with a
     * clear 503 and stores nothing. */
    op.big_discovery = true;
    snprintf(body, sizeof body,
             "{\"protocol\":\"OIDC\",\"options\":{\"discoveryUrl\":\"http://localhost:%u/"
             ".well-known/openid-configuration\",\"clientId\":\"tessera\",\"clientSecret\":"
             "\"s3cr3t\"}}",
             tsr_httpd_port(op.h));
    json_t *c2 = expect(&fx, "POST", "/api/v1/identity-providers", HOST_A, fx.a.api_key, body, 201);
    char path[128];
    snprintf(path, sizeof path, "/api/v1/identity/oidc/%s/login",
             json_string_value(json_object_get(c2, "id")));
    tsr_httpd_response_t r2;
    call(&fx, "GET", path, HOST_A, NULL, NULL, &r2);
    ck_assert_msg(r2.status == 503 && strstr(r2.body, "more than") != NULL, "%u %s", r2.status,
                  r2.body);
    tsr_httpd_response_cleanup(&r2);
    json_decref(c2);
    json_decref(c);
    tsr_httpd_destroy(op.h);
    tsr_crypto_jwt_keyset_destroy(op.ks);
    fx_cleanup(&fx);
}
END_TEST

/* The names in the user's assignedGroups, in order, as "a,b". */
static void user_groups(fx_t *fx, const char *cookie, char *out, size_t n) {
    const char *h[] = {"Host", HOST_A, "Cookie", cookie, NULL};
    tsr_httpd_response_t r;
    tsr_httpd_inject(fx->h, "GET", "/api/v1/users/me", h, NULL, 0, &r);
    ck_assert_uint_eq(r.status, 200);
    json_t *u = body_json(&r);
    size_t i;
    json_t *g;
    out[0] = '\0';
    json_array_foreach(json_object_get(u, "assignedGroups"), i, g) {
        size_t l = strlen(out);
        snprintf(out + l, n - l, "%s%s", l > 0 ? "," : "",
                 json_string_value(json_object_get(g, "name")));
    }
    json_decref(u);
    tsr_httpd_response_cleanup(&r);
}

static const char *session_roles(fx_t *fx, const char *cookie, char *out, size_t n) {
    const char *h[] = {"Host", HOST_A, "Cookie", cookie, "X-Original-Method", "GET", NULL};
    tsr_httpd_response_t r;
    tsr_httpd_inject(fx->h, "GET", "/internal/v1/authn", h, NULL, 0, &r);
    ck_assert_uint_eq(r.status, 200);
    snprintf(out, n, "%s", hdr(&r, "x-tsr-roles"));
    tsr_httpd_response_cleanup(&r);
    return out;
}

START_TEST(test_oidc_group_mapping_rules) {
    fx_t fx;
    fake_op_t op;
    char body[1024], cookie[256], groups[512], roles[128], path[128];
    fx_init(&fx);
    fake_op_start(&op);
    snprintf(body, sizeof body,
             "{\"protocol\":\"OIDC\",\"options\":{\"discoveryUrl\":\"%s/.well-known/"
             "openid-configuration\",\"clientId\":\"tessera\",\"clientSecret\":\"s3cr3t\"}}",
             op.issuer);
    json_t *c = expect(&fx, "POST", "/api/v1/identity-providers", HOST_A, fx.a.api_key, body, 201);
    const char *iid = json_string_value(json_object_get(c, "id"));
    /* First sign-in: the mapped groups are created (providerType idp) and joined. */
    op.groups = json_pack("[ss]", "Sales", "Eng");
    ck_assert_uint_eq(fake_signin(&fx, &op, iid, cookie, sizeof cookie), 302);
    user_groups(&fx, cookie, groups, sizeof groups);
    ck_assert_str_eq(groups, "Sales,Eng");
    /* A grant by hand: a custom group; and a custom group whose name the provider also sends. */
    json_t *hand =
        expect(&fx, "POST", "/api/v1/groups", HOST_A, fx.a.api_key, "{\"name\":\"Hand\"}", 201);
    json_decref(expect(&fx, "POST", "/api/v1/groups", HOST_A, fx.a.api_key,
                       "{\"name\":\"Admins\",\"assignedRoles\":[{\"name\":\"TenantAdmin\"}]}",
                       201));
    json_t *me = NULL;
    {
        const char *h[] = {"Host", HOST_A, "Cookie", cookie, NULL};
        tsr_httpd_response_t r;
        tsr_httpd_inject(fx.h, "GET", "/api/v1/users/me", h, NULL, 0, &r);
        me = body_json(&r);
        tsr_httpd_response_cleanup(&r);
    }
    snprintf(path, sizeof path, "/api/v1/users/%s", json_string_value(json_object_get(me, "id")));
    json_t *ag = json_deep_copy(json_object_get(me, "assignedGroups"));
    json_array_append_new(ag, json_pack("{sO}", "id", json_object_get(hand, "id")));
    json_t *ops =
        json_pack("[{ss ss so}]", "op", "replace", "path", "/assignedGroups", "value", ag);
    char *ops_s = json_dumps(ops, JSON_COMPACT);
    json_decref(expect(&fx, "PATCH", path, HOST_A, fx.a.api_key, ops_s, 204));
    free(ops_s);
    json_decref(ops);
    /* Next sign-in: Sales is gone at the provider, Hand stays, Admins (hand-made) is not joined. */
    json_decref(op.groups);
    op.groups = json_pack("[sss]", "Eng", "Admins", "Eng");
    ck_assert_uint_eq(fake_signin(&fx, &op, iid, cookie, sizeof cookie), 302);
    user_groups(&fx, cookie, groups, sizeof groups);
    ck_assert_str_eq(groups, "Hand,Eng");
    ck_assert_str_eq(session_roles(&fx, cookie, roles, sizeof roles), "User");
    /* No groups claim: nothing is removed. */
    json_decref(op.groups);
    op.groups = NULL;
    ck_assert_uint_eq(fake_signin(&fx, &op, iid, cookie, sizeof cookie), 302);
    user_groups(&fx, cookie, groups, sizeof groups);
    ck_assert_str_eq(groups, "Hand,Eng");
    /* An idp group given TenantAdmin makes admins only once the tenant opts in. */
    json_t *grp = expect(&fx, "GET", "/api/v1/groups?limit=100", HOST_A, fx.a.api_key, NULL, 200);
    size_t i;
    json_t *g;
    const char *eng = NULL;
    json_array_foreach(json_object_get(grp, "data"), i, g) {
        if (strcmp(json_string_value(json_object_get(g, "name")), "Eng") == 0) {
            eng = json_string_value(json_object_get(g, "id"));
            ck_assert_str_eq(json_string_value(json_object_get(g, "providerType")), "idp");
        }
    }
    ck_assert_ptr_nonnull(eng);
    /* Hand-made and provider-mapped groups both reach the principal. */
    {
        const char *h[] = {"Host", HOST_A, "Cookie", cookie, "X-Original-Method", "GET", NULL};
        tsr_httpd_response_t r;
        char want[64];
        tsr_httpd_inject(fx.h, "GET", "/internal/v1/authn", h, NULL, 0, &r);
        ck_assert_uint_eq(r.status, 200);
        snprintf(want, sizeof want, "%s,%s", json_string_value(json_object_get(hand, "id")), eng);
        ck_assert_str_eq(hdr(&r, "x-tsr-groups"), want);
        tsr_httpd_response_cleanup(&r);
    }
    snprintf(path, sizeof path, "/api/v1/groups/%s", eng);
    json_decref(expect(&fx, "PATCH", path, HOST_A, fx.a.api_key,
                       "[{\"op\":\"replace\",\"path\":\"/assignedRoles\",\"value\":[{\"name\":"
                       "\"TenantAdmin\"}]}]",
                       204));
    ck_assert_str_eq(session_roles(&fx, cookie, roles, sizeof roles), "User");
    snprintf(path, sizeof path, "/api/v1/tenants/%s", fx.a.tenant_id);
    json_decref(expect(&fx, "PATCH", path, HOST_A, fx.a.api_key,
                       "[{\"op\":\"replace\",\"path\":\"/idpGroupsGrantAdmin\",\"value\":true}]",
                       204));
    ck_assert_str_eq(session_roles(&fx, cookie, roles, sizeof roles), "TenantAdmin,User");
    json_decref(grp);
    json_decref(me);
    json_decref(hand);
    json_decref(c);
    tsr_httpd_destroy(op.h);
    tsr_crypto_jwt_keyset_destroy(op.ks);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_idp_crud_secret_sealed_and_isolated) {
    fx_t fx;
    tsr_error_t err;
    fx_init(&fx);
    json_t *c =
        expect(&fx, "POST", "/api/v1/identity-providers", HOST_A, fx.a.api_key, IDP_BODY, 201);
    const char *iid = json_string_value(json_object_get(c, "id"));
    char *dump = json_dumps(c, JSON_COMPACT);
    ck_assert_msg(strstr(dump, "s3cr3t") == NULL && strstr(dump, "Secret") == NULL, "%s", dump);
    free(dump);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(c, "options"), "scope")),
                     "openid profile email");
    ck_assert(json_is_true(json_object_get(c, "createNewUsersOnLogin")));
    /* Stored sealed under A's DEK, bound to the IdP id. */
    json_t *doc = NULL;
    char *plain = NULL;
    ck_assert_int_eq(
        fx.id->docs.get(fx.id->docs.ud, TSR_ID__C_IDPS, fx.a.tenant_id, iid, &doc, &err), TSR_OK);
    const char *sealed =
        json_string_value(json_object_get(json_object_get(doc, "options"), "clientSecretSealed"));
    ck_assert_ptr_nonnull(sealed);
    ck_assert_ptr_null(strstr(sealed, "s3cr3t"));
    ck_assert_int_eq(tsr_identity__open_str(fx.id, fx.a.tenant_id, "idp-client-secret", iid, sealed,
                                            &plain, &err),
                     TSR_OK);
    ck_assert_str_eq(plain, "s3cr3t-value");
    free(plain);
    ck_assert_int_ne(tsr_identity__open_str(fx.id, fx.b.tenant_id, "idp-client-secret", iid, sealed,
                                            &plain, &err),
                     TSR_OK);
    json_decref(doc);
    char path[128], missing[128];
    snprintf(path, sizeof path, "/api/v1/identity-providers/%s", iid);
    snprintf(missing, sizeof missing, "/api/v1/identity-providers/%s", MISSING_ID);
    json_decref(expect(&fx, "GET", path, HOST_A, fx.a.api_key, NULL, 200));
    /* Tenant B's admin sees nothing of A's provider. */
    json_decref(expect(&fx, "GET", path, HOST_B, fx.b.api_key, NULL, 404));
    json_decref(expect(&fx, "DELETE", path, HOST_B, fx.b.api_key, NULL, 404));
    json_t *lb = expect(&fx, "GET", "/api/v1/identity-providers", HOST_B, fx.b.api_key, NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(lb, "data")), 0);
    json_decref(lb);
    assert_same_404(&fx, "GET", missing, missing, NULL);
    /* A plain user may not manage providers. */
    char uid[25];
    char *ukey = user_with_key(&fx, "dev@a.test", "[{\"name\":\"Developer\"}]", uid);
    json_decref(expect(&fx, "GET", "/api/v1/identity-providers", HOST_A, ukey, NULL, 403));
    json_decref(expect(&fx, "POST", "/api/v1/identity-providers", HOST_A, ukey, IDP_BODY, 403));
    free(ukey);
    /* Validation. */
    static const char *const bad[] = {
        "{\"protocol\":\"SAML\",\"options\":{}}",
        "{\"protocol\":\"OIDC\",\"options\":{\"discoveryUrl\":\"http://idp.test/.well-known/"
        "openid-configuration\",\"clientId\":\"c\",\"clientSecret\":\"s\"}}",
        "{\"protocol\":\"OIDC\",\"options\":{\"discoveryUrl\":\"https://idp.test/x\","
        "\"clientId\":\"c\",\"clientSecret\":\"s\"}}",
        "{\"protocol\":\"OIDC\",\"options\":{\"discoveryUrl\":\"https://idp.test/.well-known/"
        "openid-configuration\",\"clientId\":\"c\"}}",
        "{\"protocol\":\"OIDC\",\"options\":{\"discoveryUrl\":\"https://idp.test/.well-known/"
        "openid-configuration\",\"clientId\":\"c\",\"clientSecret\":\"s\",\"scope\":\"profile\"}}",
        "{\"protocol\":\"OIDC\",\"options\":{\"discoveryUrl\":\"https://idp.test/.well-known/"
        "openid-configuration\",\"clientId\":\"c\",\"clientSecret\":\"s\",\"claimsMapping\":"
        "{\"sub\":[\"sub\"]}}}",
        "{\"protocol\":\"OIDC\",\"bogus\":1,\"options\":{}}",
        "{\"protocol\":\"OIDC\",\"tenantIds\":[\"0123456789abcdef01234567\"],\"options\":{"
        "\"discoveryUrl\":\"https://idp.test/.well-known/openid-configuration\",\"clientId\":"
        "\"c\",\"clientSecret\":\"s\"}}",
    };
    int before = fx.audits;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_decref(
            expect(&fx, "POST", "/api/v1/identity-providers", HOST_A, fx.a.api_key, bad[i], 400));
    }
    ck_assert_int_eq(fx.audits, before);
    /* Patch: a new scope and secret; a bad path changes nothing. */
    json_t *pt = expect(&fx, "PATCH", path, HOST_A, fx.a.api_key,
                        "[{\"op\":\"replace\",\"path\":\"/options/scope\",\"value\":\"openid "
                        "email\"},{\"op\":\"replace\",\"path\":\"/options/clientSecret\","
                        "\"value\":\"n3w\"}]",
                        200);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(pt, "options"), "scope")),
                     "openid email");
    ck_assert_ptr_null(json_object_get(json_object_get(pt, "options"), "clientSecret"));
    json_decref(pt);
    ck_assert_int_eq(
        fx.id->docs.get(fx.id->docs.ud, TSR_ID__C_IDPS, fx.a.tenant_id, iid, &doc, &err), TSR_OK);
    sealed =
        json_string_value(json_object_get(json_object_get(doc, "options"), "clientSecretSealed"));
    ck_assert_int_eq(tsr_identity__open_str(fx.id, fx.a.tenant_id, "idp-client-secret", iid, sealed,
                                            &plain, &err),
                     TSR_OK);
    ck_assert_str_eq(plain, "n3w");
    free(plain);
    json_decref(doc);
    json_decref(expect(&fx, "PATCH", path, HOST_A, fx.a.api_key,
                       "[{\"op\":\"replace\",\"path\":\"/id\",\"value\":\"x\"}]", 400));
    json_decref(expect(&fx, "PATCH", path, HOST_A, fx.a.api_key,
                       "[{\"op\":\"replace\",\"path\":\"/options/discoveryUrl\",\"value\":"
                       "\"http://idp.test/.well-known/openid-configuration\"}]",
                       400));
    json_t *l = expect(&fx, "GET", "/api/v1/identity-providers", HOST_A, fx.a.api_key, NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(l, "data")), 1);
    json_decref(l);
    /* Sign-in start: unknown provider 404; another tenant's provider 404; no tenant 404. */
    char lpath[160];
    snprintf(lpath, sizeof lpath, "/api/v1/identity/oidc/%s/login", iid);
    json_decref(expect(&fx, "GET", lpath, HOST_B, NULL, NULL, 404));
    json_decref(
        expect(&fx, "GET", "/api/v1/identity/oidc/" MISSING_ID "/login", HOST_A, NULL, NULL, 404));
    json_decref(expect(&fx, "GET", "/api/v1/identity/oidc/nope/login", HOST_A, NULL, NULL, 404));
    json_decref(expect(&fx, "GET", lpath, "nobody.test", NULL, NULL, 404));
    /* Callback: a state that does not match the browser's cookie, or is unknown, is refused. */
    char cb[256];
    snprintf(cb, sizeof cb, "/api/v1/identity/oidc/%s/callback?code=c&state=abc", iid);
    json_decref(expect(&fx, "GET", cb, HOST_A, NULL, NULL, 401));
    const char *h1[] = {"Host", HOST_A, "Cookie", "x=1; tsr_oidc=abd", NULL};
    const char *h2[] = {"Host", HOST_A, "Cookie", "x=1; tsr_oidc=abc", NULL};
    tsr_httpd_response_t r;
    tsr_httpd_inject(fx.h, "GET", cb, h1, NULL, 0, &r);
    ck_assert_uint_eq(r.status, 401);
    ck_assert_msg(strstr(r.body, "this browser") != NULL, "%s", r.body);
    tsr_httpd_response_cleanup(&r);
    tsr_httpd_inject(fx.h, "GET", cb, h2, NULL, 0, &r);
    ck_assert_uint_eq(r.status, 401);
    ck_assert_msg(strstr(r.body, "unknown, used or expired state") != NULL, "%s", r.body);
    tsr_httpd_response_cleanup(&r);
    json_decref(expect(&fx, "DELETE", path, HOST_A, fx.a.api_key, NULL, 204));
    json_decref(expect(&fx, "GET", path, HOST_A, fx.a.api_key, NULL, 404));
    json_decref(c);
    fx_cleanup(&fx);
}
END_TEST

/* GET /api/v1/identity/oidc/providers: public, the Host's tenant only, active providers only,
 * ids and names without the discovery URL, client id or secret. */
START_TEST(test_oidc_sign_in_options_public_active_and_isolated) {
    fx_t fx;
    fx_init(&fx);
    json_t *l = expect(&fx, "GET", "/api/v1/identity/oidc/providers", HOST_A, NULL, NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(l, "data")), 0);
    json_decref(l);
    json_t *c =
        expect(&fx, "POST", "/api/v1/identity-providers", HOST_A, fx.a.api_key, IDP_BODY, 201);
    const char *iid = json_string_value(json_object_get(c, "id"));
    json_t *off = expect(&fx, "POST", "/api/v1/identity-providers", HOST_A, fx.a.api_key,
                         "{\"protocol\":\"OIDC\",\"active\":false,\"description\":\"old\","
                         "\"options\":{\"discoveryUrl\":\"https://old.test/.well-known/"
                         "openid-configuration\",\"clientId\":\"o\",\"clientSecret\":\"x\"}}",
                         201);
    /* No credential needed; only the active provider; nothing but id, name and loginPath. */
    tsr_httpd_response_t r;
    call(&fx, "GET", "/api/v1/identity/oidc/providers", HOST_A, NULL, NULL, &r);
    ck_assert_uint_eq(r.status, 200);
    ck_assert_msg(strstr(r.body, "idp.test") == NULL && strstr(r.body, "tessera") == NULL &&
                      strstr(r.body, "s3cr3t") == NULL && strstr(r.body, "old") == NULL,
                  "%s", r.body);
    tsr_httpd_response_cleanup(&r);
    l = expect(&fx, "GET", "/api/v1/identity/oidc/providers", HOST_A, NULL, NULL, 200);
    json_t *data = json_object_get(l, "data");
    ck_assert_uint_eq(json_array_size(data), 1);
    json_t *o = json_array_get(data, 0);
    ck_assert_uint_eq(json_object_size(o), 3);
    ck_assert_str_eq(json_string_value(json_object_get(o, "id")), iid);
    ck_assert_str_eq(json_string_value(json_object_get(o, "name")), "corp");
    char login[96];
    snprintf(login, sizeof login, "/api/v1/identity/oidc/%s/login", iid);
    ck_assert_str_eq(json_string_value(json_object_get(o, "loginPath")), login);
    json_decref(l);
    /* Tenant B's sign-in page shows none of A's; an unknown host is a 404. */
    l = expect(&fx, "GET", "/api/v1/identity/oidc/providers", HOST_B, NULL, NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(l, "data")), 0);
    json_decref(l);
    json_decref(
        expect(&fx, "GET", "/api/v1/identity/oidc/providers", "nobody.test", NULL, NULL, 404));
    /* Deactivated: gone from the list. */
    char path[128];
    snprintf(path, sizeof path, "/api/v1/identity-providers/%s", iid);
    json_decref(expect(&fx, "PATCH", path, HOST_A, fx.a.api_key,
                       "[{\"op\":\"replace\",\"path\":\"/active\",\"value\":false}]", 200));
    l = expect(&fx, "GET", "/api/v1/identity/oidc/providers", HOST_A, NULL, NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(l, "data")), 0);
    json_decref(l);
    json_decref(off);
    json_decref(c);
    fx_cleanup(&fx);
}
END_TEST

int main(void) {
    FILE *devnull = fopen("/dev/null", "w");
    tsr_log_init("identity", TSR_LOG_INFO, devnull);
    Suite *s = suite_create("identity");
    TCase *tc = tcase_create("authn");
    tcase_add_test(tc, test_authn_without_credentials_is_401);
    tcase_add_test(tc, test_authn_unknown_bearer_is_401);
    tcase_add_test(tc, test_authn_valid_key_is_200_with_principal_headers);
    tcase_add_test(tc, test_authn_key_of_other_tenant_is_401);
    tcase_add_test(tc, test_authn_tampered_or_malformed_key_is_401);
    tcase_add_test(tc, test_authn_store_down_is_503_never_200);
    tcase_add_test(tc, test_authn_disabled_user_key_is_401);
    suite_add_tcase(s, tc);
    tc = tcase_create("tenants");
    tcase_add_test(tc, test_tenants_me_returns_callers_tenant);
    tcase_add_test(tc, test_tenants_get_other_tenant_is_404_like_missing);
    tcase_add_test(tc, test_tenant_create_hostname_taken_is_conflict_and_claims_nothing);
    tcase_add_test(tc, test_bootstrap_second_run_changes_nothing);
    tcase_add_test(tc, test_internal_tenants_need_platform_token);
    tcase_add_test(tc, test_tenant_del_removes_everything_and_spares_others);
    tcase_add_test(tc, test_roles_list_has_fixed_roles);
    tcase_add_test(tc, test_csrf_token_with_api_key_is_400);
    suite_add_tcase(s, tc);
    tc = tcase_create("users");
    tcase_add_test(tc, test_users_me_returns_caller);
    tcase_add_test(tc, test_users_create_valid_is_201_invited);
    tcase_add_test(tc, test_users_create_bad_input_is_400_and_creates_nothing);
    tcase_add_test(tc, test_users_list_pages_and_never_shows_other_tenant);
    tcase_add_test(tc, test_users_other_tenant_is_404_like_missing_on_every_verb);
    tcase_add_test(tc, test_users_patch_applies_all_or_nothing);
    tcase_add_test(tc, test_users_delete_removes_user_and_keys);
    tcase_add_test(tc, test_users_write_without_admin_is_403);
    suite_add_tcase(s, tc);
    tc = tcase_create("groups");
    tcase_add_test(tc, test_groups_roles_apply_to_members_until_disabled);
    tcase_add_test(tc, test_groups_other_tenant_is_404_like_missing);
    tcase_add_test(tc, test_authn_carries_active_groups_in_header_and_token);
    tcase_add_test(tc, test_authn_groups_capped);
    suite_add_tcase(s, tc);
    tc = tcase_create("api_keys");
    tcase_add_test(tc, test_api_keys_create_shows_token_once_and_it_authenticates);
    tcase_add_test(tc, test_api_keys_create_bad_input_is_400);
    tcase_add_test(tc, test_api_keys_over_per_user_cap_is_409);
    tcase_add_test(tc, test_api_keys_admin_revokes_others_and_user_sees_only_own);
    tcase_add_test(tc, test_api_keys_without_developer_role_is_403);
    tcase_add_test(tc, test_api_keys_other_tenant_is_404_like_missing);
    tcase_add_test(tc, test_api_keys_expired_key_is_401_and_listed_expired);
    tcase_add_test(tc, test_service_user_gets_keys_only_from_admin);
    tcase_add_test(tc, test_api_keys_patch_description_and_config);
    suite_add_tcase(s, tc);
    tc = tcase_create("sessions");
    tcase_add_test(tc, test_login_valid_password_gives_session_with_csrf);
    tcase_add_test(tc, test_login_forged_cookie_is_401);
    tcase_add_test(tc, test_login_sessions_are_pruned_and_capped);
    tcase_add_test(tc, test_password_change_needs_current_and_ends_other_sessions);
    tcase_add_test(tc, test_login_wrong_password_locks_out_with_backoff);
    tcase_add_test(tc, test_login_bad_body_is_400);
    tcase_add_test(tc, test_invite_accept_sets_password_once);
    tcase_add_test(tc, test_totp_enrolled_login_needs_fresh_code);
    tcase_add_test(tc, test_totp_code_matches_rfc6238_vector);
    tcase_add_test(tc, test_tenant_mfa_required_blocks_admin_password_login);
    suite_add_tcase(s, tc);
    tc = tcase_create("tokens");
    tcase_add_test(tc, test_authn_token_verifies_and_carries_principal);
    tcase_add_test(tc, test_jwt_verify_negative_matrix_is_401);
    tcase_add_test(tc, test_jwt_key_rotation_keeps_old_key_for_overlap_then_drops_it);
    tcase_add_test(tc, test_minted_jwt_verifies_with_crypto_against_published_jwks);
    tcase_add_test(tc, test_tenant_dek_created_on_create_and_shredded_on_delete);
    tcase_add_test(tc, test_audit_outbox_rows_for_user_and_api_key_changes);
    suite_add_tcase(s, tc);
    tc = tcase_create("parts");
    tcase_add_test(tc, test_duration_parse_valid_and_invalid);
    tcase_add_test(tc, test_routes_without_service_is_einval);
    tcase_add_test(tc, test_routes_and_openapi_cover_each_other);
    tcase_add_test(tc, test_oidc_id_token_matrix);
    tcase_add_test(tc, test_oidc_discovery_caps);
    tcase_add_test(tc, test_idp_crud_secret_sealed_and_isolated);
    tcase_add_test(tc, test_oidc_sign_in_options_public_active_and_isolated);
    tcase_add_test(tc, test_oidc_jit_user_link_and_conflicts);
    tcase_add_test(tc, test_oidc_flow_with_fake_provider);
    tcase_add_test(tc, test_oidc_group_mapping_rules);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    fclose(devnull);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
