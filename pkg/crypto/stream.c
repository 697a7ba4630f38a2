/*
 * pkg/crypto streaming AEAD for large files: fixed-size segments, each AES-256-GCM under a
 * per-stream key HKDF-SHA256(DEK, salt) with nonce = per-stream random prefix(7) || segment
 * index(4, BE) || last flag(1), and the stream header plus the object's associated data as
 * AAD. The per-stream key (128-bit random salt) keeps nonce reuse across streams out of
 * reach: a 56-bit prefix alone would collide after ~2^28 streams per DEK. Reordering changes
 * the index, cutting after a segment leaves no last-marked segment: both fail authentication.
 * Memory: one segment in, one out. Invariant: the opener emits a segment's plaintext only
 * after its tag verified, and a failure is sticky.
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "crypto_int.h"

/* magic(4) fmt(1) key_version(4) segment_size(4) salt(16) nonce_prefix(7) */
#define STREAM_MAGIC "TSRS"
#define STREAM_FMT 1
#define STREAM_HDR 36
#define SALT_OFF 13
#define SALT_LEN 16
#define PREFIX_OFF 29
#define PREFIX_LEN 7

struct tsr_sealer {
    uint8_t key[32];
    tsr_buf_t aad;
    uint8_t prefix[PREFIX_LEN];
    uint32_t seg;   /* plaintext bytes per segment */
    uint32_t index; /* next segment */
    uint8_t *pt;    /* seg bytes */
    size_t fill;
    uint8_t *ct; /* seg + 16 bytes */
    tsr_crypto_out_cb on_out;
    void *ctx;
    tsr_err_t failed;
    bool finished;
};

struct tsr_opener {
    const tsr_keyring_t *kr;
    tsr_buf_t adenc; /* encoded associated data, appended to the header for the AAD */
    tsr_buf_t aad;
    uint8_t hdr[STREAM_HDR];
    size_t hdr_fill;
    uint8_t key[32]; /* this stream's key */
    uint32_t seg;
    uint32_t index;
    uint8_t *in; /* seg + 16 bytes */
    size_t fill;
    uint8_t *pt; /* seg bytes */
    tsr_crypto_out_cb on_out;
    void *ctx;
    tsr_err_t failed;
    tsr_error_t failed_err;
    bool finished;
};

/* The stream's own key: HKDF-SHA256(ikm = DEK, salt = header salt, info = label). */
static tsr_err_t stream_key(const uint8_t dek[32], const uint8_t salt[SALT_LEN], uint8_t out[32],
                            tsr_error_t *err) {
    static const char info[] = "tessera stream v1";
    tsr_err_t rc = TSR_EINTERNAL;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *c = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)dek, 32),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, SALT_LEN),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, sizeof(info) - 1),
        OSSL_PARAM_construct_end(),
    };
    if (c != NULL && EVP_KDF_derive(c, out, 32, params) == 1) {
        rc = TSR_OK;
    }
    EVP_KDF_CTX_free(c);
    EVP_KDF_free(kdf);
    if (rc != TSR_OK) {
        tsr_error_set(err, rc, "stream: key derivation failed");
    }
    return rc;
}

static void seg_nonce(const uint8_t prefix[PREFIX_LEN], uint32_t index, bool last,
                      uint8_t nonce[12]) {
    memcpy(nonce, prefix, PREFIX_LEN);
    tsr_crypto__put_u32(nonce + PREFIX_LEN, index);
    nonce[11] = last ? 1 : 0;
}

/* ---- sealer -------------------------------------------------------------------------------- */

tsr_err_t tsr_crypto_sealer_create(const tsr_keyring_t *kr, const tsr_seal_ad_t *ad,
                                   uint32_t segment_size, tsr_crypto_out_cb on_out, void *ctx,
                                   tsr_sealer_t **out, tsr_error_t *err) {
    uint8_t hdr[STREAM_HDR];
    *out = NULL;
    if (segment_size == 0) {
        segment_size = TSR_CRYPTO_STREAM_SEGMENT_DEFAULT;
    }
    if (segment_size > TSR_CRYPTO_STREAM_SEGMENT_MAX) {
        return tsr_error_set(err, TSR_EINVAL, "sealer: segment size over %u",
                             TSR_CRYPTO_STREAM_SEGMENT_MAX);
    }
    if (ad == NULL || ad->tenant_id == NULL ||
        strcmp(ad->tenant_id, tsr_crypto_keyring_tenant(kr)) != 0) {
        return tsr_error_set(err, TSR_EINVAL, "sealer: associated tenant is not the keyring's");
    }
    uint32_t ver = tsr_crypto_keyring_current(kr);
    const uint8_t *key = tsr_crypto__keyring_key(kr, ver);
    if (key == NULL) {
        return tsr_error_set(err, TSR_ENOTFOUND, "sealer: tenant has no data key");
    }
    tsr_sealer_t *s = tsr_xcalloc(1, sizeof(*s));
    s->seg = segment_size;
    s->on_out = on_out;
    s->ctx = ctx;
    tsr_buf_init(&s->aad, 0);
    s->pt = tsr_xmalloc(segment_size);
    s->ct = tsr_xmalloc((size_t)segment_size + 16);
    memcpy(hdr, STREAM_MAGIC, 4);
    hdr[4] = STREAM_FMT;
    tsr_crypto__put_u32(hdr + 5, ver);
    tsr_crypto__put_u32(hdr + 9, segment_size);
    tsr_err_t rc = tsr_crypto_random(hdr + SALT_OFF, SALT_LEN + PREFIX_LEN, err);
    memcpy(s->prefix, hdr + PREFIX_OFF, PREFIX_LEN);
    if (rc == TSR_OK) {
        rc = stream_key(key, hdr + SALT_OFF, s->key, err);
    }
    if (rc == TSR_OK) {
        rc = tsr_buf_append(&s->aad, hdr, STREAM_HDR);
    }
    if (rc == TSR_OK) {
        rc = tsr_crypto__ad_encode(ad, &s->aad, err);
    }
    if (rc == TSR_OK) {
        rc = on_out(ctx, hdr, STREAM_HDR);
        if (rc != TSR_OK) {
            tsr_error_set(err, rc, "sealer: output callback failed");
        }
    }
    if (rc != TSR_OK) {
        tsr_crypto_sealer_destroy(s);
        return rc;
    }
    *out = s;
    return TSR_OK;
}

/* Encrypt and emit one segment of n plaintext bytes from src (the buffer or the caller's
 * input directly). */
static tsr_err_t sealer_emit(tsr_sealer_t *s, const uint8_t *src, size_t n, bool last,
                             tsr_error_t *err) {
    uint8_t nonce[12];
    if (s->index == UINT32_MAX && !last) {
        return tsr_error_set(err, TSR_ETOOBIG, "sealer: too many segments");
    }
    seg_nonce(s->prefix, s->index, last, nonce);
    tsr_err_t rc =
        tsr_crypto__gcm_seal(s->key, nonce, s->aad.data, s->aad.len, src, n, s->ct, s->ct + n, err);
    if (rc == TSR_OK) {
        rc = s->on_out(s->ctx, s->ct, n + 16);
        if (rc != TSR_OK) {
            tsr_error_set(err, rc, "sealer: output callback failed");
        }
    }
    s->index++;
    s->fill = 0;
    return rc;
}

tsr_err_t tsr_crypto_sealer_push(tsr_sealer_t *s, const void *p, size_t n, tsr_error_t *err) {
    const uint8_t *in = p;
    if (s->failed != TSR_OK || s->finished) {
        return tsr_error_set(err, s->failed != TSR_OK ? s->failed : TSR_EINVAL,
                             "sealer: stream already failed or finished");
    }
    while (n > 0) {
        /* A full segment is emitted only once more data shows it is not the last one. */
        if (s->fill == s->seg) {
            tsr_err_t rc = sealer_emit(s, s->pt, s->fill, false, err);
            if (rc != TSR_OK) {
                s->failed = rc;
                return rc;
            }
        }
        /* Whole segments straight from the input, sparing a copy. */
        while (s->fill == 0 && n > s->seg) {
            tsr_err_t rc = sealer_emit(s, in, s->seg, false, err);
            if (rc != TSR_OK) {
                s->failed = rc;
                return rc;
            }
            in += s->seg;
            n -= s->seg;
        }
        size_t k = s->seg - s->fill < n ? s->seg - s->fill : n;
        memcpy(s->pt + s->fill, in, k);
        s->fill += k;
        in += k;
        n -= k;
    }
    return TSR_OK;
}

tsr_err_t tsr_crypto_sealer_finish(tsr_sealer_t *s, tsr_error_t *err) {
    if (s->failed != TSR_OK || s->finished) {
        return tsr_error_set(err, s->failed != TSR_OK ? s->failed : TSR_EINVAL,
                             "sealer: stream already failed or finished");
    }
    s->finished = true;
    s->failed = sealer_emit(s, s->pt, s->fill, true, err);
    return s->failed;
}

void tsr_crypto_sealer_destroy(tsr_sealer_t *s) {
    if (s == NULL) {
        return;
    }
    tsr_crypto_cleanse(s->key, sizeof(s->key));
    tsr_crypto_cleanse(s->pt, s->seg);
    free(s->pt);
    free(s->ct);
    tsr_buf_cleanup(&s->aad);
    free(s);
}

/* ---- opener -------------------------------------------------------------------------------- */

tsr_err_t tsr_crypto_opener_create(const tsr_keyring_t *kr, const tsr_seal_ad_t *ad,
                                   tsr_crypto_out_cb on_out, void *ctx, tsr_opener_t **out,
                                   tsr_error_t *err) {
    *out = NULL;
    if (ad == NULL || ad->tenant_id == NULL ||
        strcmp(ad->tenant_id, tsr_crypto_keyring_tenant(kr)) != 0) {
        return tsr_error_set(err, TSR_EINVAL, "opener: associated tenant is not the keyring's");
    }
    tsr_opener_t *o = tsr_xcalloc(1, sizeof(*o));
    o->kr = kr;
    o->on_out = on_out;
    o->ctx = ctx;
    tsr_buf_init(&o->adenc, 0);
    tsr_buf_init(&o->aad, 0);
    tsr_err_t rc = tsr_crypto__ad_encode(ad, &o->adenc, err);
    if (rc != TSR_OK) {
        tsr_crypto_opener_destroy(o);
        return rc;
    }
    *out = o;
    return TSR_OK;
}

static tsr_err_t opener_fail(tsr_opener_t *o, tsr_error_t *err) {
    if (err != NULL) {
        *err = o->failed_err;
    }
    return o->failed;
}

static tsr_err_t opener_header(tsr_opener_t *o) {
    tsr_error_t *e = &o->failed_err;
    if (memcmp(o->hdr, STREAM_MAGIC, 4) != 0) {
        return tsr_error_set(e, TSR_ECORRUPT, "opener: not a sealed stream (bad magic)");
    }
    if (o->hdr[4] != STREAM_FMT) {
        return tsr_error_set(e, TSR_EUNSUPPORTED, "opener: format version %u unknown", o->hdr[4]);
    }
    uint32_t ver = tsr_crypto__get_u32(o->hdr + 5);
    o->seg = tsr_crypto__get_u32(o->hdr + 9);
    if (o->seg == 0 || o->seg > TSR_CRYPTO_STREAM_SEGMENT_MAX) {
        return tsr_error_set(e, TSR_ECORRUPT, "opener: segment size %u out of range", o->seg);
    }
    const uint8_t *dek = tsr_crypto__keyring_key(o->kr, ver);
    if (dek == NULL) {
        return tsr_error_set(e, TSR_ENOTFOUND,
                             "opener: data key version %u not available (destroyed or not loaded)",
                             ver);
    }
    tsr_err_t rc = stream_key(dek, o->hdr + SALT_OFF, o->key, e);
    if (rc != TSR_OK) {
        return rc;
    }
    rc = tsr_buf_append(&o->aad, o->hdr, STREAM_HDR);
    if (rc == TSR_OK) {
        rc = tsr_buf_append(&o->aad, o->adenc.data, o->adenc.len);
    }
    if (rc != TSR_OK) {
        return tsr_error_set(e, rc, "opener: associated data");
    }
    o->in = tsr_xmalloc((size_t)o->seg + 16);
    o->pt = tsr_xmalloc(o->seg);
    return TSR_OK;
}

/* Authenticate and emit one segment of len bytes (ciphertext || tag) from src (the buffer or
 * the caller's input directly). */
static tsr_err_t opener_segment(tsr_opener_t *o, const uint8_t *src, size_t len, bool last) {
    uint8_t nonce[12];
    tsr_error_t *e = &o->failed_err;
    if (len < 16) {
        return tsr_error_set(e, TSR_ECORRUPT, "opener: truncated stream (segment %u incomplete)",
                             o->index);
    }
    if (o->index == UINT32_MAX && !last) {
        return tsr_error_set(e, TSR_ECORRUPT, "opener: too many segments");
    }
    size_t n = len - 16;
    seg_nonce(o->hdr + PREFIX_OFF, o->index, last, nonce);
    tsr_err_t rc =
        tsr_crypto__gcm_open(o->key, nonce, o->aad.data, o->aad.len, src, n, src + n, o->pt, e);
    if (rc == TSR_ECORRUPT) {
        return tsr_error_set(e, rc,
                             last ? "opener: segment %u fails authentication (truncated, "
                                    "reordered, tampered or wrong key/AD)"
                                  : "opener: segment %u fails authentication (reordered, "
                                    "tampered or wrong key/AD)",
                             o->index);
    }
    if (rc == TSR_OK && n > 0) {
        rc = o->on_out(o->ctx, o->pt, n);
        if (rc != TSR_OK) {
            tsr_error_set(e, rc, "opener: output callback failed");
        }
    }
    /* o->pt is overwritten by the next segment and cleansed on destroy; the plaintext has
     * just been handed to on_out anyway. */
    o->index++;
    o->fill = 0;
    return rc;
}

tsr_err_t tsr_crypto_opener_push(tsr_opener_t *o, const void *p, size_t n, tsr_error_t *err) {
    const uint8_t *in = p;
    if (o->failed != TSR_OK) {
        return opener_fail(o, err);
    }
    if (o->finished) {
        return tsr_error_set(err, TSR_EINVAL, "opener: already finished");
    }
    while (n > 0) {
        if (o->hdr_fill < STREAM_HDR) {
            size_t k = STREAM_HDR - o->hdr_fill < n ? STREAM_HDR - o->hdr_fill : n;
            memcpy(o->hdr + o->hdr_fill, in, k);
            o->hdr_fill += k;
            in += k;
            n -= k;
            if (o->hdr_fill == STREAM_HDR) {
                o->failed = opener_header(o);
                if (o->failed != TSR_OK) {
                    return opener_fail(o, err);
                }
            }
            continue;
        }
        size_t full = (size_t)o->seg + 16;
        /* A full segment is decrypted as non-last only once bytes after it arrive. */
        if (o->fill == full) {
            o->failed = opener_segment(o, o->in, o->fill, false);
            if (o->failed != TSR_OK) {
                return opener_fail(o, err);
            }
        }
        /* Whole segments straight from the input, sparing a copy. */
        while (o->fill == 0 && n > full) {
            o->failed = opener_segment(o, in, full, false);
            if (o->failed != TSR_OK) {
                return opener_fail(o, err);
            }
            in += full;
            n -= full;
        }
        size_t k = full - o->fill < n ? full - o->fill : n;
        memcpy(o->in + o->fill, in, k);
        o->fill += k;
        in += k;
        n -= k;
    }
    return TSR_OK;
}

tsr_err_t tsr_crypto_opener_finish(tsr_opener_t *o, tsr_error_t *err) {
    if (o->failed != TSR_OK) {
        return opener_fail(o, err);
    }
    if (o->finished) {
        return tsr_error_set(err, TSR_EINVAL, "opener: already finished");
    }
    o->finished = true;
    if (o->hdr_fill < STREAM_HDR) {
        o->failed = tsr_error_set(&o->failed_err, TSR_ECORRUPT,
                                  "opener: truncated stream (incomplete header)");
    } else {
        o->failed = opener_segment(o, o->in, o->fill, true);
    }
    return o->failed != TSR_OK ? opener_fail(o, err) : TSR_OK;
}

void tsr_crypto_opener_destroy(tsr_opener_t *o) {
    if (o == NULL) {
        return;
    }
    if (o->pt != NULL) {
        tsr_crypto_cleanse(o->pt, o->seg);
    }
    tsr_crypto_cleanse(o->key, sizeof(o->key));
    free(o->pt);
    free(o->in);
    tsr_buf_cleanup(&o->adenc);
    tsr_buf_cleanup(&o->aad);
    free(o);
}
