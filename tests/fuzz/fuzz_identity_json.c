/*
 * libFuzzer target for the JSON bodies of identity's write endpoints, sent by an authenticated
 * TenantAdmin (the bootstrap's API key) through tsr_httpd_inject over an identity on a temporary
 * store: users create and patch (JSON Patch), groups create and patch, API keys create,
 * identity providers create and patch, and login. The first input byte picks the endpoint; the
 * rest is the body. The patch targets are objects made at setup (never the admin itself, so the
 * fuzzer cannot lock itself out). In the body, "@G" stands for the target group's id and "@T" for
 * the tenant's id (what the fuzzer cannot guess). Invariants: never crash; the status is one of the
 * codes the OpenAPI document lists for that operation; no 5xx.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "httpd.h"
#include "identity.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tsr_httpd_t *g_h;
static tsr_identity_t *g_id;
static tsr_identity_boot_t g_boot;
static char g_auth[512];
static char g_user_path[64], g_group_path[64], g_idp_path[96];
static const char *g_group_id;

static const char *const HOST = "a.test:8080";

static tsr_httpd_response_t send(const char *method, const char *path, const char *body,
                                 size_t len) {
    const char *hdr[] = {"Host", HOST, "Authorization", g_auth, "Content-Type", "application/json",
                         NULL};
    tsr_httpd_response_t r;
    memset(&r, 0, sizeof r);
    tsr_httpd_inject(g_h, method, path, hdr, body, len, &r);
    return r;
}

/* POST a fixed body at setup; the new object's id goes to out (prefix + "/" + id). */
static void make(const char *prefix, const char *body, char *out, size_t cap) {
    tsr_httpd_response_t r = send("POST", prefix, body, strlen(body));
    json_t *j = r.status == 201 ? json_loads(r.body, 0, NULL) : NULL;
    const char *v = json_string_value(json_object_get(j, "id"));
    if (v == NULL) {
        fprintf(stderr, "setup POST %s: %u %s\n", prefix, r.status, r.body ? r.body : "");
        abort();
    }
    snprintf(out, cap, "%s/%s", prefix, v);
    json_decref(j);
    tsr_httpd_response_cleanup(&r);
}

static void setup(void) {
    tsr_error_t err;
    char dir[] = "/tmp/tsr-fuzz-idjson.XXXXXX", uri[128];
    uint8_t kek[TSR_CRYPTO_KEY_LEN];
    tsr_log_init("identity", TSR_LOG_ERROR, stderr);
    tsr_identity_opts_t io = {.max_keys_per_user = 3, .api_key_max_expiry_days = 30};
    if (mkdtemp(dir) == NULL) {
        abort();
    }
    snprintf(uri, sizeof uri, "sqlite:%s/store.db?synchronous=normal", dir);
    io.kek = tsr_crypto_kek_set_create();
    if (tsr_identity_store_open(uri, &io.store, &err) != TSR_OK ||
        tsr_crypto_random(kek, sizeof kek, &err) != TSR_OK ||
        tsr_crypto_kek_set_add(io.kek, kek, true, &err) != TSR_OK) {
        abort();
    }
    tsr_httpd_opts_t o = {
        .service = "identity", .bind = "127.0.0.1", .threads = 1, .max_body = 65536};
    if (tsr_identity_create(&io, &g_id, &err) != TSR_OK ||
        tsr_httpd_create(&o, &g_h, &err) != TSR_OK ||
        tsr_identity_routes(g_h, g_id, &err) != TSR_OK ||
        tsr_identity_bootstrap(g_id, "http://a.test:8080", &g_boot, &err) != TSR_OK) {
        abort();
    }
    snprintf(g_auth, sizeof g_auth, "Bearer %s", g_boot.api_key);
    make("/api/v1/users", "{\"email\":\"target@a.test\"}", g_user_path, sizeof g_user_path);
    make("/api/v1/groups", "{\"name\":\"target\"}", g_group_path, sizeof g_group_path);
    g_group_id = strrchr(g_group_path, '/') + 1;
    make("/api/v1/identity-providers",
         "{\"protocol\":\"OIDC\",\"provider\":\"generic\",\"interactive\":true,"
         "\"options\":{\"discoveryUrl\":\"https://idp.a.test/.well-known/openid-configuration\","
         "\"clientId\":\"c\",\"clientSecret\":\"s\"}}",
         g_idp_path, sizeof g_idp_path);
}

typedef struct {
    const char *method;
    const char *path; /* NULL: the patch target in *target */
    const char *target;
    unsigned codes[6]; /* documented; 0 ends */
} op_t;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (g_h == NULL) {
        setup();
    }
    const op_t ops[] = {
        {"POST", "/api/v1/users", NULL, {201, 400, 403, 409}},
        {"PATCH", NULL, g_user_path, {204, 400, 403, 404}},
        {"POST", "/api/v1/groups", NULL, {201, 400, 403, 409}},
        {"PATCH", NULL, g_group_path, {204, 400, 403, 404}},
        {"POST", "/api/v1/api-keys", NULL, {201, 400, 403, 409}},
        {"POST", "/api/v1/identity-providers", NULL, {201, 400, 403}},
        {"PATCH", NULL, g_idp_path, {200, 400, 403, 404}},
        {"POST", "/api/v1/identity/login", NULL, {204, 400, 401}},
    };
    if (size < 1 || size > 16384) {
        return 0;
    }
    const op_t *op = &ops[data[0] % (sizeof ops / sizeof ops[0])];
    tsr_httpd_response_t r = send(op->method, op->path != NULL ? op->path : op->target,
                                  (const char *)data + 1, size - 1);
    bool ok = false;
    for (size_t i = 0; i < 6 && op->codes[i] != 0; i++) {
        ok = ok || r.status == op->codes[i];
    }
    if (!ok || r.status >= 500) {
        fprintf(stderr, "%s %s -> %u %s\n", op->method, op->path != NULL ? op->path : op->target,
                r.status, r.body != NULL ? r.body : "");
        abort();
    }
    tsr_httpd_response_cleanup(&r);
    return 0;
}
