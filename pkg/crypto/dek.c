/*
 * pkg/crypto tenant DEKs: wrapped records (what the caller persists) and the in-memory
 * keyring of a tenant's unwrapped DEKs by version. A record is AES-256-GCM under a KEK with
 * the record header and the tenant id as associated data, so a record moved to another
 * tenant or relabelled with another version fails to unwrap. Plaintext DEKs live only in a
 * keyring and are cleansed on shred/destroy.
 */
#include <stdatomic.h>
#include <string.h>

#include "crypto_int.h"

/* magic(4) fmt(1) kek_id(8) version(4) | nonce(12) ct(32) tag(16) */
#define REC_MAGIC "TDEK"
#define REC_FMT 1
#define REC_HDR 17
#define KEYRING_MAX 4096 /* versions per tenant */

static tsr_err_t rec_aad(const uint8_t *hdr, const char *tenant_id, tsr_buf_t *aad,
                         tsr_error_t *err) {
    size_t n = tenant_id != NULL ? strlen(tenant_id) : 0;
    uint8_t len[2] = {(uint8_t)(n >> 8), (uint8_t)n};
    if (n == 0 || n > 65535) {
        return tsr_error_set(err, TSR_EINVAL, "DEK: tenant id must be 1..65535 bytes");
    }
    tsr_err_t rc = tsr_buf_append(aad, hdr, REC_HDR);
    if (rc == TSR_OK) {
        rc = tsr_buf_append(aad, len, 2);
    }
    if (rc == TSR_OK) {
        rc = tsr_buf_append(aad, tenant_id, n);
    }
    return rc;
}

static tsr_err_t rec_wrap(const tsr_kek_set_t *ks, const char *tenant_id, uint32_t version,
                          const uint8_t dek[32], uint8_t rec[TSR_CRYPTO_DEK_RECORD_LEN],
                          tsr_error_t *err) {
    tsr_buf_t aad;
    uint8_t id[TSR_CRYPTO_KEK_ID_LEN];
    const uint8_t *kek = tsr_crypto__kek_primary(ks, id);
    if (kek == NULL) {
        return tsr_error_set(err, TSR_ENOTFOUND, "DEK: no primary KEK configured");
    }
    if (version == 0) {
        return tsr_error_set(err, TSR_EINVAL, "DEK: version 0 is reserved");
    }
    memcpy(rec, REC_MAGIC, 4);
    rec[4] = REC_FMT;
    memcpy(rec + 5, id, 8);
    tsr_crypto__put_u32(rec + 13, version);
    tsr_buf_init(&aad, 0);
    tsr_err_t rc = rec_aad(rec, tenant_id, &aad, err);
    if (rc == TSR_OK) {
        rc = tsr_crypto_random(rec + REC_HDR, 12, err);
    }
    if (rc == TSR_OK) {
        rc = tsr_crypto__gcm_seal(kek, rec + REC_HDR, aad.data, aad.len, dek, 32,
                                  rec + REC_HDR + 12, rec + REC_HDR + 44, err);
    }
    tsr_buf_cleanup(&aad);
    return rc;
}

tsr_err_t tsr_crypto_dek_record_parse(const uint8_t *record, size_t record_len, uint32_t *version,
                                      uint8_t kek_id[TSR_CRYPTO_KEK_ID_LEN], tsr_error_t *err) {
    if (record_len != TSR_CRYPTO_DEK_RECORD_LEN || memcmp(record, REC_MAGIC, 4) != 0) {
        return tsr_error_set(err, TSR_ECORRUPT, "DEK record: bad length or magic");
    }
    if (record[4] != REC_FMT) {
        return tsr_error_set(err, TSR_EUNSUPPORTED, "DEK record: format %u unknown", record[4]);
    }
    if (version != NULL) {
        *version = tsr_crypto__get_u32(record + 13);
    }
    if (kek_id != NULL) {
        memcpy(kek_id, record + 5, TSR_CRYPTO_KEK_ID_LEN);
    }
    return TSR_OK;
}

static tsr_err_t rec_unwrap(const tsr_kek_set_t *ks, const char *tenant_id, const uint8_t *rec,
                            size_t rec_len, uint32_t *version, uint8_t dek[32], tsr_error_t *err) {
    tsr_buf_t aad;
    tsr_err_t rc = tsr_crypto_dek_record_parse(rec, rec_len, version, NULL, err);
    if (rc != TSR_OK) {
        return rc;
    }
    const uint8_t *kek = tsr_crypto__kek_find(ks, rec + 5);
    if (kek == NULL) {
        return tsr_error_set(err, TSR_ENOTFOUND, "DEK record: its KEK is not configured");
    }
    tsr_buf_init(&aad, 0);
    rc = rec_aad(rec, tenant_id, &aad, err);
    if (rc == TSR_OK) {
        rc = tsr_crypto__gcm_open(kek, rec + REC_HDR, aad.data, aad.len, rec + REC_HDR + 12, 32,
                                  rec + REC_HDR + 44, dek, err);
        if (rc == TSR_ECORRUPT) {
            tsr_error_set(err, rc, "DEK record: does not unwrap for tenant %s", tenant_id);
        }
    }
    tsr_buf_cleanup(&aad);
    return rc;
}

tsr_err_t tsr_crypto_dek_create(const tsr_kek_set_t *ks, const char *tenant_id, uint32_t version,
                                uint8_t record[TSR_CRYPTO_DEK_RECORD_LEN], tsr_error_t *err) {
    uint8_t dek[32];
    tsr_err_t rc = tsr_crypto_random(dek, sizeof(dek), err);
    if (rc == TSR_OK) {
        rc = rec_wrap(ks, tenant_id, version, dek, record, err);
    }
    tsr_crypto_cleanse(dek, sizeof(dek));
    return rc;
}

tsr_err_t tsr_crypto_dek_rewrap(const tsr_kek_set_t *ks, const char *tenant_id,
                                const uint8_t *record, size_t record_len,
                                uint8_t out[TSR_CRYPTO_DEK_RECORD_LEN], tsr_error_t *err) {
    uint8_t dek[32];
    uint32_t version = 0;
    tsr_err_t rc = rec_unwrap(ks, tenant_id, record, record_len, &version, dek, err);
    if (rc == TSR_OK) {
        rc = rec_wrap(ks, tenant_id, version, dek, out, err);
    }
    tsr_crypto_cleanse(dek, sizeof(dek));
    return rc;
}

/* ---- keyring ------------------------------------------------------------------------------ */

typedef struct {
    uint32_t version;
    uint8_t key[32];
} ring_key_t;

struct tsr_keyring {
    atomic_uint refs;
    char *tenant_id;
    ring_key_t *keys; /* in load order; lookups scan (a tenant has few versions) */
    size_t n, cap;
    uint32_t current;
};

tsr_keyring_t *tsr_crypto_keyring_create(const char *tenant_id) {
    tsr_keyring_t *kr = tsr_xcalloc(1, sizeof(*kr));
    atomic_init(&kr->refs, 1);
    kr->tenant_id = tsr_xstrdup(tenant_id != NULL ? tenant_id : "");
    return kr;
}

void tsr_crypto_keyring_shred(tsr_keyring_t *kr) {
    if (kr == NULL) {
        return;
    }
    tsr_crypto_cleanse(kr->keys, kr->cap * sizeof(*kr->keys));
    kr->n = 0;
    kr->current = 0;
}

tsr_err_t tsr_crypto_keyring_drop(tsr_keyring_t *kr, uint32_t version, tsr_error_t *err) {
    for (size_t i = 0; i < kr->n; i++) {
        if (kr->keys[i].version != version) {
            continue;
        }
        if (version == kr->current) {
            return tsr_error_set(err, TSR_EINVAL, "keyring: cannot drop the current version %u",
                                 version);
        }
        memmove(&kr->keys[i], &kr->keys[i + 1], (kr->n - i - 1) * sizeof(*kr->keys));
        kr->n--;
        /* The moved-down tail leaves a stale copy of the last key behind. */
        tsr_crypto_cleanse(&kr->keys[kr->n], sizeof(*kr->keys));
        return TSR_OK;
    }
    return tsr_error_set(err, TSR_ENOTFOUND, "keyring: version %u not held", version);
}

tsr_keyring_t *tsr_crypto_keyring_ref(tsr_keyring_t *kr) {
    atomic_fetch_add_explicit(&kr->refs, 1, memory_order_relaxed);
    return kr;
}

void tsr_crypto_keyring_destroy(tsr_keyring_t *kr) {
    /* acq_rel: the last owner sees every other owner's reads finished before it frees. */
    if (kr == NULL || atomic_fetch_sub_explicit(&kr->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    tsr_crypto_keyring_shred(kr);
    free(kr->keys);
    free(kr->tenant_id);
    free(kr);
}

const char *tsr_crypto_keyring_tenant(const tsr_keyring_t *kr) {
    return kr->tenant_id;
}

uint32_t tsr_crypto_keyring_current(const tsr_keyring_t *kr) {
    return kr->current;
}

const uint8_t *tsr_crypto__keyring_key(const tsr_keyring_t *kr, uint32_t version) {
    for (size_t i = 0; i < kr->n; i++) {
        if (kr->keys[i].version == version) {
            return kr->keys[i].key;
        }
    }
    return NULL;
}

bool tsr_crypto_keyring_has(const tsr_keyring_t *kr, uint32_t version) {
    return tsr_crypto__keyring_key(kr, version) != NULL;
}

static tsr_err_t ring_put(tsr_keyring_t *kr, uint32_t version, const uint8_t key[32],
                          tsr_error_t *err) {
    const uint8_t *have = tsr_crypto__keyring_key(kr, version);
    if (have != NULL) {
        if (tsr_crypto_ct_eq(have, key, 32)) {
            return TSR_OK;
        }
        return tsr_error_set(err, TSR_ECONFLICT, "keyring: version %u already held", version);
    }
    if (kr->n == KEYRING_MAX) {
        return tsr_error_set(err, TSR_ETOOBIG, "keyring: more than %d versions", KEYRING_MAX);
    }
    if (kr->n == kr->cap) {
        /* Grow by copying so the old array can be cleansed (realloc would leave key copies). */
        size_t cap = kr->cap ? kr->cap * 2 : 4;
        ring_key_t *k = tsr_xcalloc(cap, sizeof(*k));
        if (kr->n > 0) {
            memcpy(k, kr->keys, kr->n * sizeof(*k));
        }
        tsr_crypto_cleanse(kr->keys, kr->cap * sizeof(*kr->keys));
        free(kr->keys);
        kr->keys = k;
        kr->cap = cap;
    }
    kr->keys[kr->n].version = version;
    memcpy(kr->keys[kr->n].key, key, 32);
    kr->n++;
    if (version > kr->current) {
        kr->current = version;
    }
    return TSR_OK;
}

tsr_err_t tsr_crypto_keyring_load(tsr_keyring_t *kr, const tsr_kek_set_t *ks, const uint8_t *record,
                                  size_t record_len, tsr_error_t *err) {
    uint8_t dek[32];
    uint32_t version = 0;
    tsr_err_t rc = rec_unwrap(ks, kr->tenant_id, record, record_len, &version, dek, err);
    if (rc == TSR_OK) {
        rc = ring_put(kr, version, dek, err);
    }
    tsr_crypto_cleanse(dek, sizeof(dek));
    return rc;
}

tsr_err_t tsr_crypto_keyring_rotate(tsr_keyring_t *kr, const tsr_kek_set_t *ks,
                                    uint8_t record[TSR_CRYPTO_DEK_RECORD_LEN], uint32_t *version,
                                    tsr_error_t *err) {
    uint8_t dek[32];
    if (kr->current == UINT32_MAX) {
        return tsr_error_set(err, TSR_ETOOBIG, "keyring: version space exhausted");
    }
    uint32_t v = kr->current + 1;
    tsr_err_t rc = tsr_crypto_random(dek, sizeof(dek), err);
    if (rc == TSR_OK) {
        rc = rec_wrap(ks, kr->tenant_id, v, dek, record, err);
    }
    if (rc == TSR_OK) {
        rc = ring_put(kr, v, dek, err);
    }
    tsr_crypto_cleanse(dek, sizeof(dek));
    if (rc == TSR_OK && version != NULL) {
        *version = v;
    }
    return rc;
}
