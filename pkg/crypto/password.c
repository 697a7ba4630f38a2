/*
 * pkg/crypto passwords: argon2id (libargon2) with a per-user 16-byte salt from OpenSSL and
 * tunable cost, stored as the PHC string. libargon2's verify recomputes and compares in
 * constant time.
 */
#include <argon2.h>
#include <string.h>

#include "crypto_int.h"

#define PW_MAX 1024
#define SALT_LEN 16
#define HASH_LEN 32
#define ENCODED_MAX 512 /* a PHC string with 16-byte salt and 32-byte hash is ~100 bytes */
#define T_MAX 64
#define M_MAX_KIB (4u << 20)
#define P_MAX 16

/* Read "name=<decimal>" at *s into *v (at most max), advancing past it. */
static bool phc_param(const char **s, char name, uint32_t max, uint32_t *v) {
    const char *p = *s;
    uint64_t acc = 0;
    if (p[0] != name || p[1] != '=' || p[2] < '0' || p[2] > '9') {
        return false;
    }
    for (p += 2; *p >= '0' && *p <= '9'; p++) {
        acc = acc * 10 + (uint64_t)(*p - '0');
        if (acc > max) {
            return false;
        }
    }
    *v = (uint32_t)acc;
    *s = p;
    return true;
}

/* The stored string is input too: check its costs before libargon2 allocates m KiB. */
static bool phc_costs_ok(const char *enc) {
    const char *p = strstr(enc, "$m=");
    uint32_t m = 0, t = 0, par = 0;
    if (p == NULL) {
        return false;
    }
    p++;
    return phc_param(&p, 'm', M_MAX_KIB, &m) && *p++ == ',' && phc_param(&p, 't', T_MAX, &t) &&
           *p++ == ',' && phc_param(&p, 'p', P_MAX, &par) && *p == '$';
}

tsr_err_t tsr_crypto_password_hash(const char *pw, size_t pw_len, const tsr_argon2_params_t *params,
                                   char **encoded, tsr_error_t *err) {
    uint8_t salt[SALT_LEN];
    uint32_t t = params && params->t_cost ? params->t_cost : 3;
    uint32_t m = params && params->m_cost_kib ? params->m_cost_kib : 65536;
    uint32_t p = params && params->parallelism ? params->parallelism : 1;
    *encoded = NULL;
    if (pw_len > PW_MAX) {
        return tsr_error_set(err, TSR_ETOOBIG, "password longer than %d bytes", PW_MAX);
    }
    if (m > M_MAX_KIB || t > T_MAX || p > P_MAX) {
        return tsr_error_set(err, TSR_EINVAL, "argon2id: cost parameters out of range");
    }
    tsr_err_t rc = tsr_crypto_random(salt, sizeof(salt), err);
    if (rc != TSR_OK) {
        return rc;
    }
    size_t enclen = argon2_encodedlen(t, m, p, SALT_LEN, HASH_LEN, Argon2_id);
    char *enc = tsr_xmalloc(enclen);
    int r = argon2id_hash_encoded(t, m, p, pw, pw_len, salt, SALT_LEN, HASH_LEN, enc, enclen);
    if (r != ARGON2_OK) {
        free(enc);
        /* Bad parameters (m < 8*p, t < 1) are the caller's; anything else is ours. */
        return tsr_error_set(err,
                             r == ARGON2_MEMORY_ALLOCATION_ERROR ? TSR_EUNAVAILABLE : TSR_EINVAL,
                             "argon2id: %s", argon2_error_message(r));
    }
    *encoded = enc;
    return TSR_OK;
}

tsr_err_t tsr_crypto_password_verify(const char *encoded, const char *pw, size_t pw_len,
                                     tsr_error_t *err) {
    if (pw_len > PW_MAX) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "wrong password");
    }
    if (encoded == NULL || strncmp(encoded, "$argon2id$", 10) != 0 ||
        strnlen(encoded, ENCODED_MAX + 1) > ENCODED_MAX) {
        return tsr_error_set(err, TSR_EINVAL, "password hash is not argon2id");
    }
    if (!phc_costs_ok(encoded)) {
        return tsr_error_set(err, TSR_EINVAL, "password hash: costs malformed or over the caps");
    }
    int r = argon2id_verify(encoded, pw, pw_len);
    if (r == ARGON2_OK) {
        return TSR_OK;
    }
    if (r == ARGON2_VERIFY_MISMATCH) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "wrong password");
    }
    return tsr_error_set(err, TSR_EINVAL, "argon2id: %s", argon2_error_message(r));
}
