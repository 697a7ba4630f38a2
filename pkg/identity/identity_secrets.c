/*
 * pkg/identity secret helpers: SHA-256 of API-key secrets, constant-time compare, random
 * tokens and argon2id password hashes. A stop-gap on OpenSSL and libargon2 directly until
 * pkg/crypto (which owns these primitives) is usable; callers only see identity_int.h.
 */
#include <string.h>

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "identity_int.h"

/* OWASP's argon2id minimum: m=19 MiB, t=2, p=1. */
#define PW_T_COST 2u
#define PW_M_COST_KIB (19u * 1024u)
#define PW_PARALLEL 1u
#define PW_SALT_LEN 16u
#define PW_HASH_LEN 32u
#define PW_MAX_LEN 1024u

void tsr_identity__sha256_hex(const void *p, size_t n, char out[65]) {
    unsigned char md[32];
    unsigned int len = 0;
    if (EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) != 1 || len != sizeof md) {
        /* No safe fallback for a failed digest: hashes decide authentication. */
        abort();
    }
    tsr_hex_encode(md, sizeof md, out);
}

bool tsr_identity__ct_eq(const char *a, const char *b) {
    size_t n = strlen(a);
    if (n != strlen(b)) {
        return false;
    }
    return CRYPTO_memcmp(a, b, n) == 0;
}

void tsr_identity__random_b64url(size_t n, char *out, size_t out_size) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char buf[64];
    if (n > sizeof buf || out_size < (n * 4 + 2) / 3 + 1 || RAND_bytes(buf, (int)n) != 1) {
        abort();
    }
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | buf[i];
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
    OPENSSL_cleanse(buf, sizeof buf);
}

tsr_err_t tsr_identity__password_hash(const char *password, char **out, tsr_error_t *err) {
    unsigned char salt[PW_SALT_LEN];
    size_t len = strlen(password);
    *out = NULL;
    if (len == 0 || len > PW_MAX_LEN) {
        return tsr_error_set(err, TSR_EINVAL, "password must be 1..%u bytes", PW_MAX_LEN);
    }
    if (RAND_bytes(salt, sizeof salt) != 1) {
        return tsr_error_set(err, TSR_EINTERNAL, "no randomness for a salt");
    }
    size_t enc_len = argon2_encodedlen(PW_T_COST, PW_M_COST_KIB, PW_PARALLEL, PW_SALT_LEN,
                                       PW_HASH_LEN, Argon2_id);
    char *enc = tsr_xmalloc(enc_len);
    int rc = argon2id_hash_encoded(PW_T_COST, PW_M_COST_KIB, PW_PARALLEL, password, len, salt,
                                   sizeof salt, PW_HASH_LEN, enc, enc_len);
    if (rc != ARGON2_OK) {
        free(enc);
        return tsr_error_set(err, TSR_EINTERNAL, "argon2id: %s", argon2_error_message(rc));
    }
    *out = enc;
    return TSR_OK;
}

bool tsr_identity__password_verify(const char *phc, const char *password) {
    size_t len = strlen(password);
    if (len == 0 || len > PW_MAX_LEN || strncmp(phc, "$argon2id$", 10) != 0) {
        return false;
    }
    return argon2id_verify(phc, password, len) == ARGON2_OK;
}

/* ---- TOTP (RFC 6238: HMAC-SHA1, 30 s steps, 6 digits) --------------------------------------- */

void tsr_identity__base32(const unsigned char *p, size_t n, char *out, size_t out_size) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n && o + 1 < out_size; i++) {
        acc = (acc << 8) | p[i];
        bits += 8;
        while (bits >= 5 && o + 1 < out_size) {
            bits -= 5;
            out[o++] = tab[(acc >> bits) & 31u];
        }
    }
    if (bits > 0 && o + 1 < out_size) {
        out[o++] = tab[(acc << (5 - bits)) & 31u];
    }
    out[o] = '\0';
}

static bool base32_dec(const char *s, unsigned char *out, size_t out_size, size_t *out_len) {
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;
    for (; *s != '\0'; s++) {
        int v = (*s >= 'A' && *s <= 'Z') ? *s - 'A' : (*s >= '2' && *s <= '7') ? *s - '2' + 26 : -1;
        if (v < 0) {
            return false;
        }
        acc = (acc << 5) | (uint32_t)v;
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            if (o >= out_size) {
                return false;
            }
            out[o++] = (unsigned char)((acc >> bits) & 0xffu);
        }
    }
    *out_len = o;
    return true;
}

int64_t tsr_identity__totp_code(const char *secret_b32, int64_t step) {
    unsigned char key[64], msg[8], md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    size_t klen = 0;
    if (!base32_dec(secret_b32, key, sizeof key, &klen) || klen == 0) {
        return -1;
    }
    for (int i = 7; i >= 0; i--) {
        msg[i] = (unsigned char)(step & 0xff);
        step >>= 8;
    }
    if (HMAC(EVP_sha1(), key, (int)klen, msg, sizeof msg, md, &md_len) == NULL || md_len < 20) {
        return -1;
    }
    unsigned off = md[md_len - 1] & 0x0fu;
    uint32_t bin = ((uint32_t)(md[off] & 0x7fu) << 24) | ((uint32_t)md[off + 1] << 16) |
                   ((uint32_t)md[off + 2] << 8) | md[off + 3];
    OPENSSL_cleanse(key, sizeof key);
    return (int64_t)(bin % 1000000u);
}

int64_t tsr_identity__totp_check(const char *secret_b32, const char *code, int64_t now_ms,
                                 int64_t last_step) {
    int64_t want = 0;
    if (code == NULL || strlen(code) != 6 || strspn(code, "0123456789") != 6 ||
        tsr_str_to_i64(tsr_str(code), 0, 999999, &want) != TSR_OK) {
        return -1;
    }
    int64_t step = now_ms / 1000 / 30;
    /* One step either side for clock drift; a step at or before the last accepted one is a
     * replay. */
    for (int64_t s = step - 1; s <= step + 1; s++) {
        if (s > last_step && tsr_identity__totp_code(secret_b32, s) == want) {
            return s;
        }
    }
    return -1;
}
