/*
 * pkg/crypto primitives: OpenSSL randomness, constant-time compare, cleansing, strict
 * base64url, one-shot AES-256-GCM and the associated-data encoding every sealed format uses.
 * Invariant: a failed GCM open never leaves plaintext in the caller's buffer.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "crypto_int.h"

tsr_err_t tsr_crypto_random(void *buf, size_t n, tsr_error_t *err) {
    if (n == 0) {
        return TSR_OK;
    }
    if (n > INT32_MAX || RAND_bytes(buf, (int)n) != 1) {
        return tsr_error_set(err, TSR_EINTERNAL, "RAND_bytes failed");
    }
    return TSR_OK;
}

bool tsr_crypto_ct_eq(const void *a, const void *b, size_t n) {
    return CRYPTO_memcmp(a, b, n) == 0;
}

void tsr_crypto_sha256(const void *p, size_t n, uint8_t out[32]) {
    unsigned int len = 0;
    /* Fails only when memory is exhausted: the pod restarts. */
    if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 || len != 32) {
        abort();
    }
}

void tsr_crypto_cleanse(void *p, size_t n) {
    if (p != NULL && n > 0) {
        OPENSSL_cleanse(p, n);
    }
}

void tsr_crypto__put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

uint32_t tsr_crypto__get_u32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

void tsr_crypto__put_u64(uint8_t *p, uint64_t v) {
    tsr_crypto__put_u32(p, (uint32_t)(v >> 32));
    tsr_crypto__put_u32(p + 4, (uint32_t)v);
}

/* ---- base64url ----------------------------------------------------------------------------- */

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

tsr_err_t tsr_crypto_b64url_encode(const void *p, size_t n, tsr_buf_t *out) {
    const uint8_t *s = p;
    char q[4];
    size_t i = 0;
    tsr_err_t rc = TSR_OK;
    for (; i + 3 <= n && rc == TSR_OK; i += 3) {
        uint32_t v = ((uint32_t)s[i] << 16) | ((uint32_t)s[i + 1] << 8) | s[i + 2];
        q[0] = B64URL[(v >> 18) & 63];
        q[1] = B64URL[(v >> 12) & 63];
        q[2] = B64URL[(v >> 6) & 63];
        q[3] = B64URL[v & 63];
        rc = tsr_buf_append(out, q, 4);
    }
    if (rc == TSR_OK && n - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        q[0] = B64URL[(v >> 18) & 63];
        q[1] = B64URL[(v >> 12) & 63];
        rc = tsr_buf_append(out, q, 2);
    } else if (rc == TSR_OK && n - i == 2) {
        uint32_t v = ((uint32_t)s[i] << 16) | ((uint32_t)s[i + 1] << 8);
        q[0] = B64URL[(v >> 18) & 63];
        q[1] = B64URL[(v >> 12) & 63];
        q[2] = B64URL[(v >> 6) & 63];
        rc = tsr_buf_append(out, q, 3);
    }
    if (rc == TSR_OK && out->data == NULL) {
        rc = tsr_buf_append(out, "", 0);
    }
    return rc;
}

static int b64url_val(unsigned char c) {
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '-') {
        return 62;
    }
    if (c == '_') {
        return 63;
    }
    return -1;
}

tsr_err_t tsr_crypto_b64url_decode(const char *s, size_t n, tsr_buf_t *out, tsr_error_t *err) {
    uint8_t q[3];
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t k = 0;
    if (n % 4 == 1) {
        return tsr_error_set(err, TSR_EINVAL, "base64url: impossible length %zu", n);
    }
    /* Exactly the decoded size, so a cap equal to the expected length (a 32-byte coordinate)
     * admits it. */
    tsr_err_t rc = tsr_buf_reserve(out, n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0));
    if (rc != TSR_OK) {
        return tsr_error_set(err, rc, "base64url: output too big");
    }
    for (size_t i = 0; i < n; i++) {
        int v = b64url_val((unsigned char)s[i]);
        if (v < 0) {
            return tsr_error_set(err, TSR_EINVAL, "base64url: bad character at %zu", i);
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            q[k++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
            if (k == 3) {
                rc = tsr_buf_append(out, q, 3);
                k = 0;
                if (rc != TSR_OK) {
                    return tsr_error_set(err, rc, "base64url: output too big");
                }
            }
        }
    }
    /* Non-zero leftover bits would make several encodings decode alike (malleable). */
    if (acc != 0) {
        return tsr_error_set(err, TSR_EINVAL, "base64url: non-canonical trailing bits");
    }
    rc = tsr_buf_append(out, q, k);
    if (rc != TSR_OK) {
        return tsr_error_set(err, rc, "base64url: output too big");
    }
    return TSR_OK;
}

/* ---- base32 ------------------------------------------------------------------------------- */

static const char B32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

tsr_err_t tsr_crypto_base32_encode(const void *p, size_t n, tsr_buf_t *out) {
    const uint8_t *s = p;
    uint32_t acc = 0;
    unsigned bits = 0;
    tsr_err_t rc = tsr_buf_append(out, "", 0);
    for (size_t i = 0; i < n && rc == TSR_OK; i++) {
        acc = (acc << 8) | s[i];
        bits += 8;
        while (bits >= 5 && rc == TSR_OK) {
            bits -= 5;
            rc = tsr_buf_append(out, &B32[(acc >> bits) & 31], 1);
        }
        acc &= (1u << bits) - 1;
    }
    if (rc == TSR_OK && bits > 0) {
        rc = tsr_buf_append(out, &B32[(acc << (5 - bits)) & 31], 1);
    }
    return rc;
}

tsr_err_t tsr_crypto_base32_decode(const char *s, size_t n, tsr_buf_t *out, tsr_error_t *err) {
    uint32_t acc = 0;
    unsigned bits = 0;
    while (n > 0 && s[n - 1] == '=') {
        n--;
    }
    tsr_err_t rc = tsr_buf_reserve(out, n * 5 / 8);
    if (rc != TSR_OK) {
        return tsr_error_set(err, rc, "base32: output too big");
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int v = c >= 'A' && c <= 'Z'   ? c - 'A'
                : c >= 'a' && c <= 'z' ? c - 'a'
                : c >= '2' && c <= '7' ? c - '2' + 26
                                       : -1;
        if (v < 0) {
            return tsr_error_set(err, TSR_EINVAL, "base32: bad character at %zu", i);
        }
        acc = (acc << 5) | (uint32_t)v;
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            uint8_t byte = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
            rc = tsr_buf_append(out, &byte, 1);
            if (rc != TSR_OK) {
                return tsr_error_set(err, rc, "base32: output too big");
            }
        }
    }
    return TSR_OK;
}

/* ---- AES-256-GCM -------------------------------------------------------------------------- */

/* EVP takes int lengths: feed large inputs in chunks. */
#define GCM_CHUNK ((size_t)1 << 30)

tsr_err_t tsr_crypto__gcm_seal(const uint8_t key[32], const uint8_t nonce[12], const void *aad,
                               size_t aad_len, const void *pt, size_t n, uint8_t *ct,
                               uint8_t tag[16], tsr_error_t *err) {
    tsr_err_t rc = TSR_EINTERNAL;
    int len = 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (c == NULL || EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce) != 1) {
        goto out;
    }
    if (aad_len > INT32_MAX ||
        (aad_len > 0 && EVP_EncryptUpdate(c, NULL, &len, aad, (int)aad_len) != 1)) {
        goto out;
    }
    for (size_t off = 0; off < n;) {
        size_t k = n - off < GCM_CHUNK ? n - off : GCM_CHUNK;
        if (EVP_EncryptUpdate(c, ct + off, &len, (const uint8_t *)pt + off, (int)k) != 1) {
            goto out;
        }
        off += k;
    }
    if (EVP_EncryptFinal_ex(c, ct + n, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag) != 1) {
        goto out;
    }
    rc = TSR_OK;
out:
    EVP_CIPHER_CTX_free(c);
    if (rc != TSR_OK) {
        tsr_error_set(err, rc, "AES-256-GCM encryption failed");
    }
    return rc;
}

tsr_err_t tsr_crypto__gcm_open(const uint8_t key[32], const uint8_t nonce[12], const void *aad,
                               size_t aad_len, const uint8_t *ct, size_t n, const uint8_t tag[16],
                               uint8_t *pt, tsr_error_t *err) {
    tsr_err_t rc = TSR_EINTERNAL;
    int len = 0;
    uint8_t tagcopy[16];
    memcpy(tagcopy, tag, 16);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (c == NULL || EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce) != 1) {
        goto out;
    }
    if (aad_len > INT32_MAX ||
        (aad_len > 0 && EVP_DecryptUpdate(c, NULL, &len, aad, (int)aad_len) != 1)) {
        goto out;
    }
    for (size_t off = 0; off < n;) {
        size_t k = n - off < GCM_CHUNK ? n - off : GCM_CHUNK;
        if (EVP_DecryptUpdate(c, pt + off, &len, ct + off, (int)k) != 1) {
            goto out;
        }
        off += k;
    }
    if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tagcopy) != 1) {
        goto out;
    }
    if (EVP_DecryptFinal_ex(c, pt + n, &len) != 1) {
        rc = TSR_ECORRUPT;
        goto out;
    }
    rc = TSR_OK;
out:
    EVP_CIPHER_CTX_free(c);
    if (rc != TSR_OK) {
        tsr_crypto_cleanse(pt, n);
        if (rc == TSR_ECORRUPT) {
            tsr_error_set(err, rc, "authentication failed (tampered, truncated or wrong key/AD)");
        } else {
            tsr_error_set(err, rc, "AES-256-GCM decryption failed");
        }
    }
    return rc;
}

static tsr_err_t ad_put_str(tsr_buf_t *out, const char *s, const char *what, tsr_error_t *err) {
    size_t n = s != NULL ? strlen(s) : 0;
    uint8_t len[2];
    if (n > 65535) {
        return tsr_error_set(err, TSR_EINVAL, "associated data: %s longer than 65535", what);
    }
    len[0] = (uint8_t)(n >> 8);
    len[1] = (uint8_t)n;
    tsr_err_t rc = tsr_buf_append(out, len, 2);
    if (rc == TSR_OK) {
        rc = tsr_buf_append(out, s != NULL ? s : "", n);
    }
    return rc;
}

tsr_err_t tsr_crypto__ad_encode(const tsr_seal_ad_t *ad, tsr_buf_t *out, tsr_error_t *err) {
    uint8_t v[8];
    if (ad == NULL || ad->tenant_id == NULL || ad->tenant_id[0] == '\0') {
        return tsr_error_set(err, TSR_EINVAL, "associated data: tenant id required");
    }
    tsr_err_t rc = ad_put_str(out, ad->tenant_id, "tenant id", err);
    if (rc == TSR_OK) {
        rc = ad_put_str(out, ad->kind, "kind", err);
    }
    if (rc == TSR_OK) {
        rc = ad_put_str(out, ad->object_id, "object id", err);
    }
    if (rc == TSR_OK) {
        tsr_crypto__put_u64(v, ad->object_version);
        rc = tsr_buf_append(out, v, 8);
    }
    return rc;
}
