/*
 * pkg/identity secret helpers in the shapes its domain code uses (hex hashes, NUL-terminated
 * tokens, base32 TOTP secrets), all on pkg/crypto: SHA-256 of API-key and session secrets,
 * constant-time compare, random tokens, argon2id password hashes, TOTP (RFC 6238, SHA-1,
 * 30 s, 6 digits). Layer: service; no cryptography is implemented here.
 */
#include <string.h>

#include "crypto.h"
#include "identity_int.h"

/* OWASP's argon2id minimum: m=19 MiB, t=2, p=1 (stored hashes carry their own costs). */
static const tsr_argon2_params_t PW_PARAMS = {
    .t_cost = 2, .m_cost_kib = 19u * 1024u, .parallelism = 1};
#define PW_MAX_LEN 1024u
#define TOTP_SECRET_MAX 64u

void tsr_identity__sha256_hex(const void *p, size_t n, char out[65]) {
    uint8_t md[32];
    tsr_crypto_sha256(p, n, md);
    tsr_hex_encode(md, sizeof md, out);
}

bool tsr_identity__ct_eq(const char *a, const char *b) {
    size_t n = strlen(a);
    return n == strlen(b) && tsr_crypto_ct_eq(a, b, n);
}

void tsr_identity__random_b64url(size_t n, char *out, size_t out_size) {
    uint8_t buf[64];
    tsr_buf_t b;
    /* No safe fallback without randomness: tokens decide authentication. */
    if (n > sizeof buf || out_size < (n * 4 + 2) / 3 + 1 ||
        tsr_crypto_random(buf, n, NULL) != TSR_OK) {
        abort();
    }
    tsr_buf_init(&b, out_size);
    tsr_crypto_b64url_encode(buf, n, &b);
    memcpy(out, b.data, b.len + 1);
    tsr_crypto_cleanse(buf, sizeof buf);
    tsr_crypto_cleanse(b.data, b.len);
    tsr_buf_cleanup(&b);
}

tsr_err_t tsr_identity__password_hash(const char *password, char **out, tsr_error_t *err) {
    size_t len = strlen(password);
    *out = NULL;
    if (len == 0 || len > PW_MAX_LEN) {
        return tsr_error_set(err, TSR_EINVAL, "password must be 1..%u bytes", PW_MAX_LEN);
    }
    return tsr_crypto_password_hash(password, len, &PW_PARAMS, out, err);
}

bool tsr_identity__password_verify(const char *phc, const char *password) {
    size_t len = strlen(password);
    if (len == 0 || len > PW_MAX_LEN || strncmp(phc, "$argon2id$", 10) != 0) {
        return false;
    }
    return tsr_crypto_password_verify(phc, password, len, NULL) == TSR_OK;
}

/* ---- TOTP ------------------------------------------------------------------------------------ */

void tsr_identity__base32(const unsigned char *p, size_t n, char *out, size_t out_size) {
    tsr_buf_t b;
    tsr_buf_init(&b, out_size);
    tsr_crypto_base32_encode(p, n, &b);
    snprintf(out, out_size, "%s", b.len > 0 ? b.data : "");
    tsr_buf_cleanup(&b);
}

/* The raw secret of a base32 one (upper case, no padding, as identity writes them). */
static bool secret_decode(const char *b32, uint8_t out[TOTP_SECRET_MAX], size_t *len) {
    tsr_buf_t b;
    bool ok = false;
    size_t n = strlen(b32);
    tsr_buf_init(&b, TOTP_SECRET_MAX);
    if (n > 0 && strspn(b32, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") == n &&
        tsr_crypto_base32_decode(b32, n, &b, NULL) == TSR_OK && b.len > 0 &&
        b.len <= TOTP_SECRET_MAX) {
        memcpy(out, b.data, b.len);
        *len = b.len;
        ok = true;
    }
    if (b.data != NULL) {
        tsr_crypto_cleanse(b.data, b.len);
    }
    tsr_buf_cleanup(&b);
    return ok;
}

int64_t tsr_identity__totp_code(const char *secret_b32, int64_t step) {
    uint8_t key[TOTP_SECRET_MAX];
    size_t klen = 0;
    uint32_t code = 0;
    if (!secret_decode(secret_b32, key, &klen)) {
        return -1;
    }
    tsr_err_t rc = tsr_crypto_totp_code(key, klen, NULL, step * 30, &code, NULL);
    tsr_crypto_cleanse(key, sizeof key);
    return rc == TSR_OK ? (int64_t)code : -1;
}

int64_t tsr_identity__totp_check(const char *secret_b32, const char *code, int64_t now_ms,
                                 int64_t last_step) {
    uint8_t key[TOTP_SECRET_MAX];
    size_t klen = 0;
    int64_t step = last_step;
    if (code == NULL || strlen(code) != 6 || strspn(code, "0123456789") != 6 ||
        !secret_decode(secret_b32, key, &klen)) {
        return -1;
    }
    /* One step either side for clock drift; a step at or before the last accepted one is a
     * replay (pkg/crypto checks both, in constant time). */
    tsr_err_t rc = tsr_crypto_totp_verify(key, klen, NULL, code, now_ms / 1000, &step, NULL);
    tsr_crypto_cleanse(key, sizeof key);
    return rc == TSR_OK ? step : -1;
}
