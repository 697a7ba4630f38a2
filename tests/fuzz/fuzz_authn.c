/*
 * libFuzzer target for identity's authentication decision (GET /internal/v1/authn, what the
 * ingress asks on every request) over an identity on a temporary store with one bootstrapped
 * tenant. The input is split at newlines into header values in a fixed order: Host, Authorization,
 * Cookie, qlik-csrf-token, X-Original-Method, X-Original-URI. Invariants: never crash; the answer
 * is 200, 401 or 403; a 200 needs the tenant's real API key somewhere in the input (the fuzzer
 * cannot forge a signature or a key) or a session cookie (there are none).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"
#include "identity.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tsr_httpd_t *g_h;
static tsr_identity_t *g_id;
static tsr_identity_boot_t g_boot;

static bool contains(const uint8_t *hay, size_t n, const char *needle) {
    size_t m = strlen(needle);
    for (size_t i = 0; m <= n && i <= n - m; i++) {
        if (memcmp(hay + i, needle, m) == 0) {
            return true;
        }
    }
    return false;
}

static void setup(void) {
    tsr_error_t err;
    char dir[] = "/tmp/tsr-fuzz-authn.XXXXXX", uri[128];
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
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *names[] = {
        "Host",          "Authorization", "Cookie", "qlik-csrf-token", "X-Original-Method",
        "X-Original-URI"};
    if (g_h == NULL) {
        setup();
    }
    if (size > 8192) {
        return 0;
    }
    char *text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    const char *hdr[2 * 6 + 1];
    size_t n = 0;
    char *p = text;
    for (size_t i = 0; i < 6 && p != NULL; i++) {
        char *nl = strchr(p, '\n');
        if (nl != NULL) {
            *nl = '\0';
        }
        if (*p != '\0') {
            hdr[n++] = names[i];
            hdr[n++] = p;
        }
        p = nl != NULL ? nl + 1 : NULL;
    }
    hdr[n] = NULL;
    tsr_httpd_response_t r;
    memset(&r, 0, sizeof r);
    tsr_httpd_inject(g_h, "GET", "/internal/v1/authn", hdr, NULL, 0, &r);
    if (r.status != 200 && r.status != 401 && r.status != 403) {
        abort();
    }
    if (r.status == 200 && !contains(data, size, g_boot.api_key)) {
        abort();
    }
    tsr_httpd_response_cleanup(&r);
    free(text);
    return 0;
}
