/*
 * libFuzzer target for pkg/crypto's token parsers: compact JWS verification (tsr_crypto_jwt_verify)
 * and JWKS import (tsr_crypto_jwt_keyset_jwks_parse). The first input byte picks a mode:
 *   0  the rest is a token, verified against a fixed ES256 + RS256 key set
 *   1  the rest is "header\npayload": both are signed as-is with the ES256 key, so header and
 *      claim checks past the signature are reached with arbitrary JSON
 *   2  the rest is "jwks\ntoken": the JWKS is imported into an empty set, the token verified
 * Invariants: no token verifies against the fixed set unless we signed it (mode 0: its keys
 * are made at start-up, so a pass is a forgery), a verified token always yields a claims
 * object, and a JWKS we format from imported keys imports again key for key.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "crypto_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tsr_jwt_keyset_t *keys;

static void init(void) {
    tsr_jwt_key_t *k = NULL;
    keys = tsr_crypto_jwt_keyset_create();
    if (tsr_crypto_jwt_key_generate("rsa", TSR_JWT_ALG_RS256, &k, NULL) != TSR_OK ||
        tsr_crypto_jwt_keyset_add(keys, k, false, NULL) != TSR_OK ||
        tsr_crypto_jwt_key_generate("k1", TSR_JWT_ALG_ES256, &k, NULL) != TSR_OK ||
        tsr_crypto_jwt_keyset_add(keys, k, true, NULL) != TSR_OK) {
        abort();
    }
}

static void verify(const tsr_jwt_keyset_t *ks, const char *tok, size_t n, bool may_pass,
                   uint8_t flags) {
    tsr_jwt_verify_opts_t o = {
        .issuer = (flags & 1) ? "tessera-identity" : NULL,
        .audience = (flags & 2) ? "tessera" : NULL,
        .typ = (flags & 4) ? "tsr+jwt" : NULL,
        .now_s = 1800000000,
        .require_exp = (flags & 8) != 0,
        .allow_no_kid = (flags & 16) != 0,
        .algs = (flags & 32) ? (unsigned)(TSR_JWT_ALG_ES256 | TSR_JWT_ALG_RS256) : 0,
    };
    json_t *claims = NULL;
    tsr_error_t err;
    tsr_err_t rc = tsr_crypto_jwt_verify(ks, tok, n, &o, &claims, &err);
    if (rc == TSR_OK && (!may_pass || !json_is_object(claims))) {
        fprintf(stderr, "fuzz_jwt: a token verified that must not: %.*s\n", (int)n, tok);
        abort();
    }
    if (rc != TSR_OK && claims != NULL) {
        abort();
    }
    json_decref(claims);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (keys == NULL) {
        init();
    }
    if (size < 2) {
        return 0;
    }
    uint8_t mode = data[0] % 3, flags = data[1];
    const char *p = (const char *)data + 2;
    size_t n = size - 2;
    const char *nl = memchr(p, '\n', n);
    if (mode == 0) {
        verify(keys, p, n, false, flags);
    } else if (mode == 1 && nl != NULL) {
        /* Signing takes NUL-terminated texts. */
        char *hdr = tsr_xstrndup(p, (size_t)(nl - p));
        char *payload = tsr_xstrndup(nl + 1, n - (size_t)(nl - p) - 1);
        char *tok = NULL;
        const tsr_jwt_key_t *k = tsr_crypto__keyset_find(keys, "k1");
        if (tsr_crypto__jws_sign_raw(k, hdr, payload, &tok, NULL) == TSR_OK) {
            verify(keys, tok, strlen(tok), true, flags);
            free(tok);
        }
        free(hdr);
        free(payload);
    } else if (mode == 2 && nl != NULL) {
        tsr_jwt_keyset_t *ks = tsr_crypto_jwt_keyset_create();
        size_t added = 0;
        (void)tsr_crypto_jwt_keyset_jwks_parse(ks, p, (size_t)(nl - p), &added, NULL);
        if (added > tsr_crypto_jwt_keyset_count(ks)) {
            abort();
        }
        /* The input may carry a published example key and its token (RFC 7515 A.3): a pass
         * is legitimate here, only its shape is checked. */
        verify(ks, nl + 1, n - (size_t)(nl - p) - 1, true, flags);
        char *doc = NULL;
        if (tsr_crypto_jwt_keyset_jwks_format(ks, &doc, NULL) == TSR_OK) {
            /* What we publish from imported keys imports again, key for key. */
            tsr_jwt_keyset_t *again = tsr_crypto_jwt_keyset_create();
            if (tsr_crypto_jwt_keyset_jwks_parse(again, doc, strlen(doc), &added, NULL) != TSR_OK ||
                added != tsr_crypto_jwt_keyset_count(ks)) {
                abort();
            }
            tsr_crypto_jwt_keyset_destroy(again);
            free(doc);
        }
        tsr_crypto_jwt_keyset_destroy(ks);
    }
    return 0;
}
