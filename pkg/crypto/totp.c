/*
 * pkg/crypto TOTP (RFC 6238 over RFC 4226 HOTP): HMAC-SHA1/256/512 of the big-endian step,
 * dynamic truncation. Verification computes all three candidate steps (now-1, now, now+1),
 * compares each in constant time and refuses a step at or below the last one used (replay).
 */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "crypto_int.h"

#define TOTP_SECRET_MAX 256

static const uint32_t POW10[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000};

static tsr_err_t hotp(const uint8_t *secret, size_t secret_len, tsr_totp_hash_t hash,
                      uint32_t digits, uint64_t counter, uint32_t *code, tsr_error_t *err) {
    uint8_t msg[8];
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    const EVP_MD *md = hash == TSR_TOTP_SHA256   ? EVP_sha256()
                       : hash == TSR_TOTP_SHA512 ? EVP_sha512()
                                                 : EVP_sha1();
    tsr_crypto__put_u64(msg, counter);
    if (secret == NULL || secret_len == 0 || secret_len > TOTP_SECRET_MAX) {
        return tsr_error_set(err, TSR_EINVAL, "totp: secret must be 1..%d bytes", TOTP_SECRET_MAX);
    }
    if (HMAC(md, secret, (int)secret_len, msg, sizeof(msg), mac, &maclen) == NULL || maclen < 20) {
        return tsr_error_set(err, TSR_EINTERNAL, "totp: HMAC failed");
    }
    unsigned off = mac[maclen - 1] & 0x0f;
    uint32_t bin = ((uint32_t)(mac[off] & 0x7f) << 24) | ((uint32_t)mac[off + 1] << 16) |
                   ((uint32_t)mac[off + 2] << 8) | mac[off + 3];
    *code = bin % POW10[digits];
    tsr_crypto_cleanse(mac, sizeof(mac));
    return TSR_OK;
}

static tsr_err_t params_of(const tsr_totp_params_t *p, tsr_totp_hash_t *hash, uint32_t *digits,
                           uint32_t *period, tsr_error_t *err) {
    *hash = p != NULL ? p->hash : TSR_TOTP_SHA1;
    *digits = p != NULL && p->digits ? p->digits : 6;
    *period = p != NULL && p->period_s ? p->period_s : 30;
    if (*digits < 6 || *digits > 8 || *hash > TSR_TOTP_SHA512) {
        return tsr_error_set(err, TSR_EINVAL, "totp: digits must be 6..8, hash SHA1/256/512");
    }
    return TSR_OK;
}

tsr_err_t tsr_crypto_totp_code(const uint8_t *secret, size_t secret_len,
                               const tsr_totp_params_t *params, int64_t now_s, uint32_t *code,
                               tsr_error_t *err) {
    tsr_totp_hash_t hash;
    uint32_t digits, period;
    tsr_err_t rc = params_of(params, &hash, &digits, &period, err);
    if (rc != TSR_OK) {
        return rc;
    }
    if (now_s < 0) {
        return tsr_error_set(err, TSR_EINVAL, "totp: time before the epoch");
    }
    return hotp(secret, secret_len, hash, digits, (uint64_t)now_s / period, code, err);
}

tsr_err_t tsr_crypto_totp_verify(const uint8_t *secret, size_t secret_len,
                                 const tsr_totp_params_t *params, const char *code, int64_t now_s,
                                 int64_t *last_step, tsr_error_t *err) {
    tsr_totp_hash_t hash;
    uint32_t digits, period, given = 0;
    tsr_err_t rc = params_of(params, &hash, &digits, &period, err);
    if (rc != TSR_OK) {
        return rc;
    }
    if (now_s < period) {
        return tsr_error_set(err, TSR_EINVAL, "totp: clock before the first step");
    }
    if (code == NULL || strnlen(code, 16) != digits) {
        return tsr_error_set(err, TSR_EINVAL, "totp: code must be %u digits", digits);
    }
    for (uint32_t i = 0; i < digits; i++) {
        if (code[i] < '0' || code[i] > '9') {
            return tsr_error_set(err, TSR_EINVAL, "totp: code must be %u digits", digits);
        }
        given = given * 10 + (uint32_t)(code[i] - '0');
    }
    int64_t step = now_s / period;
    int64_t matched = -1;
    /* No early exit: timing must not tell which step (or whether any) matched. */
    for (int64_t s = step - 1; s <= step + 1; s++) {
        uint32_t want = 0;
        rc = hotp(secret, secret_len, hash, digits, (uint64_t)s, &want, err);
        if (rc != TSR_OK) {
            return rc;
        }
        if (tsr_crypto_ct_eq(&want, &given, sizeof(want)) && matched < 0) {
            matched = s;
        }
    }
    if (matched < 0) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "totp: wrong code");
    }
    if (last_step != NULL && matched <= *last_step) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "totp: code already used (replay)");
    }
    if (last_step != NULL) {
        *last_step = matched;
    }
    return TSR_OK;
}
