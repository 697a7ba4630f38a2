/*
 * pkg/crypto internals shared by the module's files: AES-256-GCM one-shot helpers, the
 * associated-data encoding, big-endian helpers and the keyring lookup. Not a public API;
 * tests include it only for the NIST known-answer vectors.
 */
#ifndef TSR_CRYPTO_INT_H
#define TSR_CRYPTO_INT_H

#include "crypto.h"

#define TSR_CRYPTO__NONCE_LEN 12
#define TSR_CRYPTO__TAG_LEN 16

/* AES-256-GCM encrypt n bytes of pt into ct (same length) and tag. */
tsr_err_t tsr_crypto__gcm_seal(const uint8_t key[32], const uint8_t nonce[12], const void *aad,
                               size_t aad_len, const void *pt, size_t n, uint8_t *ct,
                               uint8_t tag[16], tsr_error_t *err);
/* AES-256-GCM decrypt; TSR_ECORRUPT if the tag does not verify (pt is then cleansed). */
tsr_err_t tsr_crypto__gcm_open(const uint8_t key[32], const uint8_t nonce[12], const void *aad,
                               size_t aad_len, const uint8_t *ct, size_t n, const uint8_t tag[16],
                               uint8_t *pt, tsr_error_t *err);

/* Append the length-prefixed encoding of ad (u16be len + bytes per string, u64be version). */
tsr_err_t tsr_crypto__ad_encode(const tsr_seal_ad_t *ad, tsr_buf_t *out, tsr_error_t *err);

/* DEK of a given version, or NULL. */
const uint8_t *tsr_crypto__keyring_key(const tsr_keyring_t *kr, uint32_t version);

/* KEK with this id, or NULL; the primary KEK and its id, or NULL. */
const uint8_t *tsr_crypto__kek_find(const tsr_kek_set_t *ks, const uint8_t *id);
const uint8_t *tsr_crypto__kek_primary(const tsr_kek_set_t *ks, uint8_t id[8]);

/* A JWT key: an OpenSSL key (EVP_PKEY, forward-declared so this header needs no OpenSSL
 * include), its kid and the one algorithm it may be used with (key/alg binding). */
struct evp_pkey_st;
struct tsr_jwt_key {
    struct evp_pkey_st *pkey; /* owned */
    char *kid;                /* owned */
    tsr_jwt_alg_t alg;
    bool has_private;
};

/* Key of the set by kid (NULL kid: the only key when the set holds exactly one), or NULL. */
const tsr_jwt_key_t *tsr_crypto__keyset_find(const tsr_jwt_keyset_t *ks, const char *kid);
const tsr_jwt_key_t *tsr_crypto__keyset_signing(const tsr_jwt_keyset_t *ks);
/* Sign header and payload (JSON texts, taken verbatim) with k's ES256 private key into a
 * compact JWS; for tests and fuzz seeds that need tokens our signer would never produce. */
tsr_err_t tsr_crypto__jws_sign_raw(const tsr_jwt_key_t *k, const char *header, const char *payload,
                                   char **token, tsr_error_t *err);
/* kid syntax: 1..128 bytes of [A-Za-z0-9._-]. */
bool tsr_crypto__kid_is_valid(const char *kid);

void tsr_crypto__put_u32(uint8_t *p, uint32_t v);
uint32_t tsr_crypto__get_u32(const uint8_t *p);
void tsr_crypto__put_u64(uint8_t *p, uint64_t v);

#endif
