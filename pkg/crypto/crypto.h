/*
 * pkg/crypto: Tessera's cryptography adapter over OpenSSL 3 (plus libargon2). Envelope
 * encryption (KEK set -> per-tenant versioned DEKs -> sealed blobs and streams), ES256 (and
 * RS256) JWTs with key sets and JWKS, argon2id passwords and TOTP. Layer: adapter (depends on core
 * only; the caller persists wrapped DEK records, keys and hashes itself). No OpenSSL type appears
 * here: every key lives behind an opaque handle and is cleansed when destroyed.
 */
#ifndef TSR_CRYPTO_H
#define TSR_CRYPTO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TSR_CRYPTO_KEY_LEN 32        /* bytes of a KEK or a DEK */
#define TSR_CRYPTO_KEK_ID_LEN 8      /* bytes of a KEK's id (SHA-256 prefix of the key) */
#define TSR_CRYPTO_DEK_RECORD_LEN 77 /* bytes of a wrapped DEK record, see README.md */
#define TSR_CRYPTO_SEAL_OVERHEAD 37  /* bytes tsr_crypto_seal adds to the plaintext */
#define TSR_CRYPTO_STREAM_SEGMENT_DEFAULT 65536u  /* plaintext bytes per stream segment */
#define TSR_CRYPTO_STREAM_SEGMENT_MAX (16u << 20) /* largest segment size accepted */
#define TSR_CRYPTO_JWT_MAX_DEFAULT 8192           /* largest compact JWT verified (bytes) */

/* ---- primitives ---------------------------------------------------------------------------- */

/* n bytes from OpenSSL's CSPRNG (RAND_bytes). TSR_EINTERNAL if it refuses. Thread safe. */
tsr_err_t tsr_crypto_random(void *buf, size_t n, tsr_error_t *err);

/* Constant-time equality of two n-byte buffers (CRYPTO_memcmp). Thread safe. */
bool tsr_crypto_ct_eq(const void *a, const void *b, size_t n);

/* SHA-256 of n bytes (API key and token hashes for lookup). Thread safe. */
void tsr_crypto_sha256(const void *p, size_t n, uint8_t out[32]);

/* Zero n bytes in a way the compiler cannot elide (OPENSSL_cleanse). */
void tsr_crypto_cleanse(void *p, size_t n);

/* base64url without padding (RFC 7515 §2). encode appends to out (NUL-terminated). decode
 * is strict: no padding, no whitespace, no characters outside the alphabet, zero trailing
 * bits; TSR_EINVAL otherwise. Appends the decoded bytes to out. */
tsr_err_t tsr_crypto_b64url_encode(const void *p, size_t n, tsr_buf_t *out);
tsr_err_t tsr_crypto_b64url_decode(const char *s, size_t n, tsr_buf_t *out, tsr_error_t *err);

/* base32 (RFC 4648 §6), the encoding of TOTP secrets in otpauth:// URIs. encode appends
 * upper-case characters without padding. decode takes either case and optional trailing
 * '=' padding, nothing else (no spaces); TSR_EINVAL otherwise. Appends to out. */
tsr_err_t tsr_crypto_base32_encode(const void *p, size_t n, tsr_buf_t *out);
tsr_err_t tsr_crypto_base32_decode(const char *s, size_t n, tsr_buf_t *out, tsr_error_t *err);

/* ---- key-encryption keys --------------------------------------------------------------------- */

/* A set of at most 16 KEKs: one primary (wraps new DEKs), the others still unwrap.
 * Build it at start-up, then share it read-only: lookups are thread safe, additions are
 * not. Each KEK is known by an 8-byte id derived from the key (SHA-256("tsr-kek-id"||key)). */
typedef struct tsr_kek_set tsr_kek_set_t;

tsr_kek_set_t *tsr_crypto_kek_set_create(void);
void tsr_crypto_kek_set_destroy(tsr_kek_set_t *ks); /* cleanses the keys; NULL: no-op */

/* Add a 32-byte KEK (copied). primary: it becomes the wrapping key. Adding a key already in
 * the set only updates its primary flag. */
tsr_err_t tsr_crypto_kek_set_add(tsr_kek_set_t *ks, const uint8_t key[TSR_CRYPTO_KEY_LEN],
                                 bool primary, tsr_error_t *err);

/* Add the KEK held in a file: exactly 32 raw bytes, or 64 hex characters, or 44 base64
 * characters (a Kubernetes Secret's value), each optionally followed by one newline (at
 * most 128 bytes are read). TSR_EIO if unreadable, TSR_EINVAL if malformed, of the wrong
 * size or not a regular file, TSR_EFORBIDDEN if group or others have any access to it
 * (mode must be 0600 or stricter). */
tsr_err_t tsr_crypto_kek_set_add_file(tsr_kek_set_t *ks, const char *path, bool primary,
                                      tsr_error_t *err);

/* Load TSR_KEK_FILE-style spec: comma-separated paths, the first is primary, the others
 * unwrap only (rotation: put the new file first, keep the old ones until tsr_crypto_dek_rewrap
 * has moved every record). */
tsr_err_t tsr_crypto_kek_set_load(tsr_kek_set_t *ks, const char *spec, tsr_error_t *err);

/* Create path with 32 random bytes, mode 0600, if it does not exist (the local stack's
 * first start). *created (may be NULL) tells whether a new key was written. */
tsr_err_t tsr_crypto_kek_file_ensure(const char *path, bool *created, tsr_error_t *err);

/* Id of the primary KEK; TSR_ENOTFOUND if the set has none. */
tsr_err_t tsr_crypto_kek_set_primary_id(const tsr_kek_set_t *ks, uint8_t id[TSR_CRYPTO_KEK_ID_LEN],
                                        tsr_error_t *err);

/* ---- tenant data keys -------------------------------------------------------------------- */

/* A wrapped DEK record (TSR_CRYPTO_DEK_RECORD_LEN bytes, layout in README.md) is what the
 * caller stores (pkg/store), keyed by (tenant id, version). The plaintext DEK never leaves
 * this module except into a tsr_keyring_t. */

/* Make a new random DEK for (tenant_id, version) and wrap it under the primary KEK into
 * record. The DEK itself is not returned: unwrap the record into a keyring to use it. */
tsr_err_t tsr_crypto_dek_create(const tsr_kek_set_t *ks, const char *tenant_id, uint32_t version,
                                uint8_t record[TSR_CRYPTO_DEK_RECORD_LEN], tsr_error_t *err);

/* Re-wrap a record under the primary KEK (KEK rotation); the tenant id is checked.
 * TSR_ENOTFOUND if its KEK is not in the set, TSR_ECORRUPT if it fails to authenticate. */
tsr_err_t tsr_crypto_dek_rewrap(const tsr_kek_set_t *ks, const char *tenant_id,
                                const uint8_t *record, size_t record_len,
                                uint8_t out[TSR_CRYPTO_DEK_RECORD_LEN], tsr_error_t *err);

/* Version and KEK id written in a record's clear header, without unwrapping. */
tsr_err_t tsr_crypto_dek_record_parse(const uint8_t *record, size_t record_len, uint32_t *version,
                                      uint8_t kek_id[TSR_CRYPTO_KEK_ID_LEN], tsr_error_t *err);

/* A tenant's unwrapped DEKs by version, with a current version for new writes. Not thread
 * safe while being modified (load, rotate, drop, shred); sealing and opening only read it.
 * Reference-counted for a service's per-tenant cache: create returns one reference, ref
 * adds one (atomically; returns kr), destroy drops one and the last cleanses every DEK. */
typedef struct tsr_keyring tsr_keyring_t;

tsr_keyring_t *tsr_crypto_keyring_create(const char *tenant_id);
tsr_keyring_t *tsr_crypto_keyring_ref(tsr_keyring_t *kr);
void tsr_crypto_keyring_destroy(tsr_keyring_t *kr); /* NULL: no-op */
const char *tsr_crypto_keyring_tenant(const tsr_keyring_t *kr);

/* Unwrap a record (its AAD must name this keyring's tenant) and hold its DEK; the highest
 * version loaded becomes current. TSR_ECORRUPT on a bad tag, TSR_ENOTFOUND if its KEK is
 * unknown, TSR_ECONFLICT if that version is already held with another key. */
tsr_err_t tsr_crypto_keyring_load(tsr_keyring_t *kr, const tsr_kek_set_t *ks, const uint8_t *record,
                                  size_t record_len, tsr_error_t *err);

/* DEK rotation: make version current+1 (1 on an empty ring), wrap it into record for the
 * caller to persist, hold it and make it current. Older versions keep opening. */
tsr_err_t tsr_crypto_keyring_rotate(tsr_keyring_t *kr, const tsr_kek_set_t *ks,
                                    uint8_t record[TSR_CRYPTO_DEK_RECORD_LEN], uint32_t *version,
                                    tsr_error_t *err);

/* Current version; 0 when the ring holds no key. */
uint32_t tsr_crypto_keyring_current(const tsr_keyring_t *kr);
bool tsr_crypto_keyring_has(const tsr_keyring_t *kr, uint32_t version);

/* Crypto-shredding: cleanse and forget every DEK of the ring (the caller deletes the wrapped
 * records in the same step). Everything sealed under them no longer opens. */
void tsr_crypto_keyring_shred(tsr_keyring_t *kr);

/* Retire one version once everything sealed under it has been re-sealed (cleansed and
 * forgotten; the caller deletes its record). TSR_ENOTFOUND if not held, TSR_EINVAL for the
 * current version (new writes need it: rotate first). */
tsr_err_t tsr_crypto_keyring_drop(tsr_keyring_t *kr, uint32_t version, tsr_error_t *err);

/* ---- sealing ----------------------------------------------------------------------------- */

/* What a sealed blob is bound to: copied under another tenant, kind, id or version it no
 * longer opens. All strings borrowed, each at most 65535 bytes. */
typedef struct {
    const char *tenant_id; /* must equal the keyring's tenant */
    const char *kind;      /* object kind, e.g. "app", "datafile" */
    const char *object_id;
    uint64_t object_version;
} tsr_seal_ad_t;

/* One-shot AES-256-GCM under the keyring's current DEK, random 96-bit nonce (keep to
 * < 2^32 seals per DEK version: rotate). Appends TSR_CRYPTO_SEAL_OVERHEAD + n bytes to out.
 * TSR_ENOTFOUND if the ring is empty, TSR_EINVAL if ad names another tenant, TSR_ETOOBIG
 * past out's cap. Thread safe on a shared keyring. */
tsr_err_t tsr_crypto_seal(const tsr_keyring_t *kr, const tsr_seal_ad_t *ad, const void *pt,
                          size_t n, tsr_buf_t *out, tsr_error_t *err);

/* Open a blob from tsr_crypto_seal. Appends the plaintext to out only once the tag has
 * verified; on any failure out's content is unchanged. TSR_ECORRUPT (bad tag, wrong AD,
 * truncated, bad magic), TSR_ENOTFOUND (key version not in the ring: destroyed or never
 * loaded), TSR_EUNSUPPORTED (unknown format version), TSR_EINVAL (ad names another tenant),
 * TSR_ETOOBIG (past out's cap, checked before decrypting). Thread safe on a shared keyring. */
tsr_err_t tsr_crypto_open(const tsr_keyring_t *kr, const tsr_seal_ad_t *ad, const void *blob,
                          size_t n, tsr_buf_t *out, tsr_error_t *err);

/* ---- streaming seal/open (large files in constant memory) ------------------------------- */

/* Receives output bytes (ciphertext from a sealer, verified plaintext from an opener). A
 * non-OK return aborts the stream with that code. */
typedef tsr_err_t (*tsr_crypto_out_cb)(void *ctx, const void *p, size_t n);

typedef struct tsr_sealer tsr_sealer_t;
typedef struct tsr_opener tsr_opener_t;

/* Start sealing a stream under kr's current DEK (through a per-stream key derived from it
 * and a random salt): segment_size plaintext bytes per segment (0:
 * TSR_CRYPTO_STREAM_SEGMENT_DEFAULT; at most TSR_CRYPTO_STREAM_SEGMENT_MAX, else
 * TSR_EINVAL). The header is emitted through on_out before this returns. kr and ad are only
 * read here (the sealer keeps its own key and encoded AD). Memory: about 2 segments.
 * *out returned-owned (tsr_crypto_sealer_destroy). One sealer per thread. */
tsr_err_t tsr_crypto_sealer_create(const tsr_keyring_t *kr, const tsr_seal_ad_t *ad,
                                   uint32_t segment_size, tsr_crypto_out_cb on_out, void *ctx,
                                   tsr_sealer_t **out, tsr_error_t *err);
/* Push plaintext; full segments are encrypted and emitted as they fill. A failure (callback
 * or crypto) is sticky. */
tsr_err_t tsr_crypto_sealer_push(tsr_sealer_t *s, const void *p, size_t n, tsr_error_t *err);
/* Emit the final (last-marked) segment. Must be called exactly once. */
tsr_err_t tsr_crypto_sealer_finish(tsr_sealer_t *s, tsr_error_t *err);
void tsr_crypto_sealer_destroy(tsr_sealer_t *s); /* NULL: no-op */

/* Start opening a stream. Each segment's plaintext is emitted only after its tag verified;
 * a failure stops the stream for good (every later call returns the same error). finish
 * reports TSR_ECORRUPT "truncated" if the last-marked segment never arrived. Plaintext
 * emitted before a later failure is authentic but incomplete: callers write it to a
 * temporary place and commit only when finish returned TSR_OK. Errors: those of
 * tsr_crypto_open, from push or finish. kr must outlive the opener (the header, read on the
 * first pushes, names the DEK version); ad is encoded here. A header announcing segments
 * over TSR_CRYPTO_STREAM_SEGMENT_MAX is refused before anything is allocated for them. */
tsr_err_t tsr_crypto_opener_create(const tsr_keyring_t *kr, const tsr_seal_ad_t *ad,
                                   tsr_crypto_out_cb on_out, void *ctx, tsr_opener_t **out,
                                   tsr_error_t *err);
tsr_err_t tsr_crypto_opener_push(tsr_opener_t *o, const void *p, size_t n, tsr_error_t *err);
tsr_err_t tsr_crypto_opener_finish(tsr_opener_t *o, tsr_error_t *err);
void tsr_crypto_opener_destroy(tsr_opener_t *o); /* NULL: no-op */

/* ---- JWT (JWS compact; ES256 for the platform, RS256 for peers that need it) ------------ */

typedef enum { TSR_JWT_ALG_ES256 = 1u << 0, TSR_JWT_ALG_RS256 = 1u << 1 } tsr_jwt_alg_t;

/* One signing or verifying key with its kid. */
typedef struct tsr_jwt_key tsr_jwt_key_t;

/* New key pair for alg: P-256 (ES256, what the platform signs with) or RSA-2048 (RS256, for
 * interoperating with peers that need it). kid: 1..128 bytes of [A-Za-z0-9._-] (copied).
 * *out returned-owned (tsr_crypto_jwt_key_destroy or hand it to a keyset). */
tsr_err_t tsr_crypto_jwt_key_generate(const char *kid, tsr_jwt_alg_t alg, tsr_jwt_key_t **out,
                                      tsr_error_t *err);
/* A private key from PEM text (PKCS#8 or traditional; unencrypted) of n bytes, at most
 * 16 KiB: EC P-256 becomes ES256, RSA >= 2048 bits RS256, anything else TSR_EINVAL. The PEM
 * is borrowed; the caller cleanses its copy. */
tsr_err_t tsr_crypto_jwt_key_parse(const char *pem, size_t n, const char *kid, tsr_jwt_key_t **out,
                                   tsr_error_t *err);
/* The private key as PKCS#8 PEM; *pem returned-owned (cleanse, then free()). Callers that
 * store it seal it first (tsr_crypto_seal). */
tsr_err_t tsr_crypto_jwt_key_format(const tsr_jwt_key_t *k, char **pem, tsr_error_t *err);
/* Load a PEM private key file (tsr_crypto_jwt_key_parse rules). TSR_EIO if unreadable. */
tsr_err_t tsr_crypto_jwt_key_load(const char *path, const char *kid, tsr_jwt_key_t **out,
                                  tsr_error_t *err);
/* Save the private key as PKCS#8 PEM to path, mode 0600, via a temporary file + rename. */
tsr_err_t tsr_crypto_jwt_key_save(const tsr_jwt_key_t *k, const char *path, tsr_error_t *err);
const char *tsr_crypto_jwt_key_kid(const tsr_jwt_key_t *k);
tsr_jwt_alg_t tsr_crypto_jwt_key_alg(const tsr_jwt_key_t *k);
void tsr_crypto_jwt_key_destroy(tsr_jwt_key_t *k); /* NULL: no-op */

/* A set of keys by kid: at most one signing key (the current one), older keys verify only.
 * Immutable once shared: sign, verify and jwks_format are thread safe; a rotation builds a
 * new set and the caller swaps the pointer under its lock, readers having taken a reference
 * (ref, atomic) finish on the old one. create returns one reference; destroy drops one and
 * the last frees the keys. */
typedef struct tsr_jwt_keyset tsr_jwt_keyset_t;

tsr_jwt_keyset_t *tsr_crypto_jwt_keyset_create(void);
tsr_jwt_keyset_t *tsr_crypto_jwt_keyset_ref(tsr_jwt_keyset_t *ks);
void tsr_crypto_jwt_keyset_destroy(tsr_jwt_keyset_t *ks); /* NULL: no-op */
/* Take key (owned by the set even on failure). signing: it becomes the signing key (needs a
 * private key); the previous signing key stays as a verifying key. TSR_ECONFLICT on a
 * duplicate kid, TSR_ETOOBIG past 64 keys. */
tsr_err_t tsr_crypto_jwt_keyset_add(tsr_jwt_keyset_t *ks, tsr_jwt_key_t *key, bool signing,
                                    tsr_error_t *err);
/* Drop a kid (end of a rotation's overlap window). TSR_ENOTFOUND if absent. */
tsr_err_t tsr_crypto_jwt_keyset_remove(tsr_jwt_keyset_t *ks, const char *kid, tsr_error_t *err);
size_t tsr_crypto_jwt_keyset_count(const tsr_jwt_keyset_t *ks);

/* JWKS document of the public keys: {"keys":[{"kty":"EC","crv":"P-256","x","y","kid",
 * "use":"sig","alg":"ES256"} or {"kty":"RSA","n","e",...,"alg":"RS256"}, ...]}. Never any
 * private part. *json returned-owned (free with free()). */
tsr_err_t tsr_crypto_jwt_keyset_jwks_format(const tsr_jwt_keyset_t *ks, char **json,
                                            tsr_error_t *err);
/* Import the public keys of a JWKS (an IdP's, or ours): EC P-256 (ES256, point checked on
 * the curve) and RSA 2048..8192 bits (RS256). Keys without a valid kid, with use other than
 * "sig", with an alg other than their type's, or of other types are skipped; *added (may be
 * NULL) counts the imported ones. Input capped at 256 KiB (TSR_ETOOBIG); not a JSON object
 * with a "keys" array: TSR_EINVAL; a kid already in the set: TSR_ECONFLICT (keys imported
 * before it stay: parse into a fresh set and swap). */
tsr_err_t tsr_crypto_jwt_keyset_jwks_parse(tsr_jwt_keyset_t *ks, const char *json, size_t n,
                                           size_t *added, tsr_error_t *err);

/* Sign claims (borrowed) with the signing key: header {"alg":"ES256"|"RS256","typ","kid"},
 * typ NULL: "JWT" (identity uses "tsr+jwt"). The caller sets iss/aud/exp/iat in claims.
 * *token returned-owned (free with free()). TSR_ENOTFOUND without a signing key. */
tsr_err_t tsr_crypto_jwt_sign(const tsr_jwt_keyset_t *ks, const char *typ, const json_t *claims,
                              char **token, tsr_error_t *err);

typedef struct {
    const char *issuer;   /* required iss; NULL: not checked */
    const char *audience; /* must be aud or in aud; NULL: not checked */
    const char *typ;      /* required header typ (e.g. "JWT"); NULL: not checked */
    int64_t now_s;        /* verification time, s since epoch; 0: wall clock */
    uint32_t skew_s;      /* tolerance on exp/nbf/iat in s; 0: 60 */
    size_t max_len;       /* largest token in bytes; 0: TSR_CRYPTO_JWT_MAX_DEFAULT */
    unsigned algs;        /* tsr_jwt_alg_t allow-list; 0: ES256 only */
    bool require_exp;     /* exp must be present (our own tokens: true) */
    bool allow_no_kid;    /* a token without kid may use the set's only key */
} tsr_jwt_verify_opts_t;

/* Verify a compact JWS and return its claims (*claims returned-owned, json_decref). The
 * size cap is checked before decoding; then alg in the allow-list and matching the key's
 * alg (so "none" and HS* never pass), kid known, no "crit", signature, then exp/nbf/iat
 * (integers; string or float values are refused) with skew, iss, aud. Header fields
 * jku/x5u/jwk/x5c are ignored: keys come only from the set. Every failure is
 * TSR_EUNAUTHENTICATED (TSR_ETOOBIG for the size cap) with the reason in err. Thread safe. */
tsr_err_t tsr_crypto_jwt_verify(const tsr_jwt_keyset_t *ks, const char *token, size_t len,
                                const tsr_jwt_verify_opts_t *opts, json_t **claims,
                                tsr_error_t *err);

/* ---- passwords and TOTP ---------------------------------------------------------------- */

typedef struct {
    uint32_t t_cost;      /* iterations; 0: 3; at most 64 */
    uint32_t m_cost_kib;  /* memory in KiB; 0: 65536 (64 MiB); at most 4 GiB */
    uint32_t parallelism; /* lanes; 0: 1; at most 16 */
} tsr_argon2_params_t;

/* argon2id with a 16-byte random salt; *encoded is the PHC string ("$argon2id$v=19$...",
 * returned-owned, free with free()). params may be NULL. Password at most 1024 bytes. */
tsr_err_t tsr_crypto_password_hash(const char *pw, size_t pw_len, const tsr_argon2_params_t *params,
                                   char **encoded, tsr_error_t *err);
/* TSR_OK if pw matches encoded (constant-time compare), TSR_EUNAUTHENTICATED if not,
 * TSR_EINVAL if encoded is malformed or its costs exceed the caps above (a tampered record
 * must not make one login allocate gigabytes). */
tsr_err_t tsr_crypto_password_verify(const char *encoded, const char *pw, size_t pw_len,
                                     tsr_error_t *err);

typedef enum { TSR_TOTP_SHA1 = 0, TSR_TOTP_SHA256 = 1, TSR_TOTP_SHA512 = 2 } tsr_totp_hash_t;

typedef struct {
    tsr_totp_hash_t hash; /* default SHA1 (authenticator apps) */
    uint32_t digits;      /* 6..8; 0: 6 */
    uint32_t period_s;    /* 0: 30 */
} tsr_totp_params_t;

/* The RFC 6238 code for time now_s (params may be NULL). secret: 1..256 bytes. */
tsr_err_t tsr_crypto_totp_code(const uint8_t *secret, size_t secret_len,
                               const tsr_totp_params_t *params, int64_t now_s, uint32_t *code,
                               tsr_error_t *err);
/* Check a code typed by a user against steps now-1, now, now+1 (all three computed and
 * compared in constant time). Replay protection: a step <= *last_step is refused; on success
 * *last_step is set to the matched step (the caller persists it with the secret).
 * TSR_EUNAUTHENTICATED if wrong or replayed, TSR_EINVAL if code is not digits. */
tsr_err_t tsr_crypto_totp_verify(const uint8_t *secret, size_t secret_len,
                                 const tsr_totp_params_t *params, const char *code, int64_t now_s,
                                 int64_t *last_step, tsr_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
