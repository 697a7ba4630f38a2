/*
 * pkg/crypto one-shot sealing: AES-256-GCM under a tenant's current DEK with a random
 * 96-bit nonce; the header (magic, format, key version) and the object's associated data
 * (tenant, kind, id, version) are authenticated. Invariant: tsr_crypto_open appends
 * plaintext to the caller's buffer only after the tag verified.
 */
#include <string.h>

#include "crypto_int.h"

/* magic(4) fmt(1) key_version(4) nonce(12) | ct | tag(16) */
#define SEAL_MAGIC "TSRB"
#define SEAL_FMT 1
#define SEAL_HDR 9

static tsr_err_t check_tenant(const tsr_keyring_t *kr, const tsr_seal_ad_t *ad, tsr_error_t *err) {
    if (ad == NULL || ad->tenant_id == NULL ||
        strcmp(ad->tenant_id, tsr_crypto_keyring_tenant(kr)) != 0) {
        return tsr_error_set(err, TSR_EINVAL, "seal: associated tenant is not the keyring's");
    }
    return TSR_OK;
}

tsr_err_t tsr_crypto_seal(const tsr_keyring_t *kr, const tsr_seal_ad_t *ad, const void *pt,
                          size_t n, tsr_buf_t *out, tsr_error_t *err) {
    tsr_buf_t aad;
    size_t total;
    uint32_t ver = tsr_crypto_keyring_current(kr);
    const uint8_t *key = tsr_crypto__keyring_key(kr, ver);
    tsr_err_t rc = check_tenant(kr, ad, err);
    if (rc != TSR_OK) {
        return rc;
    }
    if (key == NULL) {
        return tsr_error_set(err, TSR_ENOTFOUND, "seal: tenant has no data key");
    }
    if (!tsr_size_add(n, TSR_CRYPTO_SEAL_OVERHEAD, &total)) {
        return tsr_error_set(err, TSR_ETOOBIG, "seal: input too big");
    }
    tsr_buf_init(&aad, 0);
    rc = tsr_buf_reserve(out, total);
    if (rc != TSR_OK) {
        tsr_error_set(err, rc, "seal: output buffer cap");
        goto out;
    }
    uint8_t *p = (uint8_t *)out->data + out->len;
    memcpy(p, SEAL_MAGIC, 4);
    p[4] = SEAL_FMT;
    tsr_crypto__put_u32(p + 5, ver);
    rc = tsr_buf_append(&aad, p, SEAL_HDR);
    if (rc == TSR_OK) {
        rc = tsr_crypto__ad_encode(ad, &aad, err);
    }
    if (rc == TSR_OK) {
        rc = tsr_crypto_random(p + SEAL_HDR, 12, err);
    }
    if (rc == TSR_OK) {
        rc = tsr_crypto__gcm_seal(key, p + SEAL_HDR, aad.data, aad.len, pt, n, p + SEAL_HDR + 12,
                                  p + SEAL_HDR + 12 + n, err);
    }
    if (rc == TSR_OK) {
        out->len += total;
        out->data[out->len] = '\0';
    }
out:
    tsr_buf_cleanup(&aad);
    return rc;
}

tsr_err_t tsr_crypto_open(const tsr_keyring_t *kr, const tsr_seal_ad_t *ad, const void *blob,
                          size_t n, tsr_buf_t *out, tsr_error_t *err) {
    const uint8_t *b = blob;
    tsr_buf_t aad;
    uint8_t *pt = NULL;
    tsr_err_t rc = check_tenant(kr, ad, err);
    if (rc != TSR_OK) {
        return rc;
    }
    if (n < TSR_CRYPTO_SEAL_OVERHEAD || memcmp(b, SEAL_MAGIC, 4) != 0) {
        return tsr_error_set(err, TSR_ECORRUPT, "open: not a sealed blob (short or bad magic)");
    }
    if (b[4] != SEAL_FMT) {
        return tsr_error_set(err, TSR_EUNSUPPORTED, "open: format version %u unknown", b[4]);
    }
    uint32_t ver = tsr_crypto__get_u32(b + 5);
    const uint8_t *key = tsr_crypto__keyring_key(kr, ver);
    if (key == NULL) {
        return tsr_error_set(err, TSR_ENOTFOUND,
                             "open: data key version %u not available (destroyed or not loaded)",
                             ver);
    }
    size_t ctlen = n - TSR_CRYPTO_SEAL_OVERHEAD;
    tsr_buf_init(&aad, 0);
    rc = tsr_buf_append(&aad, b, SEAL_HDR);
    if (rc == TSR_OK) {
        rc = tsr_crypto__ad_encode(ad, &aad, err);
    }
    if (rc != TSR_OK) {
        goto out;
    }
    /* Decrypt into out's spare room and count it only once the tag verified: a failed open
     * cleanses those bytes, so out never holds unauthenticated plaintext. The reserve also
     * applies out's cap before anything is allocated. */
    rc = tsr_buf_reserve(out, ctlen);
    if (rc != TSR_OK) {
        tsr_error_set(err, rc, "open: output buffer cap");
        goto out;
    }
    pt = (uint8_t *)out->data + out->len;
    rc = tsr_crypto__gcm_open(key, b + SEAL_HDR, aad.data, aad.len, b + SEAL_HDR + 12, ctlen,
                              b + n - 16, pt, err);
    if (rc == TSR_OK) {
        out->len += ctlen;
    }
    out->data[out->len] = '\0';
out:
    tsr_buf_cleanup(&aad);
    return rc;
}
