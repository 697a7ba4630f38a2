/*
 * pkg/identity key material on pkg/crypto: the KEK set (TSR_KEK_FILE or the local stack's
 * state/local/kek), each tenant's data keys (DEK records wrapped by the KEK, stored in
 * identity_deks as (tenant, "v<version>")) created with the tenant and shredded with it, and
 * the platform's own keyring (tenant "platform") that seals the JWT signing keys' PEM.
 * Layer: service. Invariant: a plaintext DEK exists only inside a tsr_keyring_t.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "identity_int.h"

tsr_err_t tsr_identity_kek_load(const char *spec, const char *state_dir, tsr_kek_set_t **out,
                                tsr_error_t *err) {
    char path[4096];
    tsr_err_t rc = TSR_OK;
    tsr_kek_set_t *ks = tsr_crypto_kek_set_create();
    *out = NULL;
    if (spec != NULL && spec[0] != '\0') {
        rc = tsr_crypto_kek_set_load(ks, spec, err);
    } else {
        /* The local stack's key (deploy/local/stack writes the same file before any service
         * starts); created here too so that tsr-admin and a bare identity agree on it. */
        snprintf(path, sizeof path, "%s/local", state_dir);
        if ((mkdir(state_dir, 0700) != 0 && errno != EEXIST) ||
            (mkdir(path, 0700) != 0 && errno != EEXIST)) {
            rc = tsr_error_set(err, TSR_EIO, "cannot create %s", path);
        } else {
            snprintf(path, sizeof path, "%s/local/kek", state_dir);
            if ((rc = tsr_crypto_kek_file_ensure(path, NULL, err)) == TSR_OK) {
                rc = tsr_crypto_kek_set_add_file(ks, path, true, err);
            }
        }
    }
    if (rc != TSR_OK) {
        tsr_crypto_kek_set_destroy(ks);
        return rc;
    }
    *out = ks;
    return TSR_OK;
}

static void dek_key(uint32_t version, char out[16]) {
    snprintf(out, 16, "v%u", (unsigned)version);
}

tsr_err_t tsr_identity__dek_create(tsr_identity_t *id, const char *tenant, tsr_error_t *err) {
    uint8_t rec[TSR_CRYPTO_DEK_RECORD_LEN];
    char key[16];
    tsr_buf_t b;
    tsr_err_t rc = tsr_crypto_dek_create(id->kek, tenant, 1, rec, err);
    if (rc != TSR_OK) {
        return rc;
    }
    tsr_buf_init(&b, 256);
    tsr_crypto_b64url_encode(rec, sizeof rec, &b);
    dek_key(1, key);
    json_t *doc = json_pack("{ss si ss}", "id", key, "version", 1, "record", b.data);
    rc = id->docs.create(id->docs.ud, TSR_ID__C_DEKS, tenant, key, doc, NULL, err);
    json_decref(doc);
    tsr_buf_cleanup(&b);
    return rc;
}

tsr_err_t tsr_identity__keyring_load(tsr_identity_t *id, const char *tenant, tsr_keyring_t **kr,
                                     tsr_error_t *err) {
    json_t *rows = NULL, *r;
    size_t i;
    *kr = NULL;
    tsr_err_t rc =
        id->docs.list(id->docs.ud, TSR_ID__C_DEKS, tenant, NULL, NULL, NULL, 1000, &rows, err);
    if (rc != TSR_OK) {
        return rc;
    }
    if (json_array_size(rows) == 0) {
        json_decref(rows);
        return tsr_error_set(err, TSR_ENOTFOUND, "the tenant has no data key");
    }
    tsr_keyring_t *ring = tsr_crypto_keyring_create(tenant);
    json_array_foreach(rows, i, r) {
        const char *rec = json_string_value(json_object_get(r, "record"));
        tsr_buf_t b;
        tsr_buf_init(&b, 256);
        rc = rec != NULL ? tsr_crypto_b64url_decode(rec, strlen(rec), &b, err)
                         : tsr_error_set(err, TSR_ECORRUPT, "a DEK document has no record");
        if (rc == TSR_OK) {
            rc = tsr_crypto_keyring_load(ring, id->kek, (const uint8_t *)b.data, b.len, err);
        }
        tsr_buf_cleanup(&b);
        if (rc != TSR_OK) {
            break;
        }
    }
    json_decref(rows);
    if (rc != TSR_OK) {
        tsr_crypto_keyring_destroy(ring);
        return rc;
    }
    *kr = ring;
    return TSR_OK;
}

tsr_err_t tsr_identity__dek_shred(tsr_identity_t *id, const char *tenant, tsr_error_t *err) {
    for (;;) {
        json_t *rows = NULL, *r;
        size_t i;
        tsr_err_t rc =
            id->docs.list(id->docs.ud, TSR_ID__C_DEKS, tenant, NULL, NULL, NULL, 100, &rows, err);
        if (rc != TSR_OK) {
            return rc;
        }
        size_t n = json_array_size(rows);
        json_array_foreach(rows, i, r) {
            const char *k = json_string_value(json_object_get(r, "id"));
            rc = k != NULL ? id->docs.del(id->docs.ud, TSR_ID__C_DEKS, tenant, k, NULL, err)
                           : tsr_error_set(err, TSR_ECORRUPT, "a DEK document has no id");
            if (rc != TSR_OK && rc != TSR_ENOTFOUND) {
                json_decref(rows);
                return rc;
            }
        }
        json_decref(rows);
        if (n == 0) {
            return TSR_OK;
        }
    }
}

tsr_err_t tsr_identity__seal_str(tsr_identity_t *id, const char *tenant, const char *kind,
                                 const char *object_id, const char *pt, char **out,
                                 tsr_error_t *err) {
    tsr_keyring_t *kr = NULL;
    tsr_buf_t blob, enc;
    tsr_seal_ad_t ad = {
        .tenant_id = tenant, .kind = kind, .object_id = object_id, .object_version = 1};
    *out = NULL;
    tsr_err_t rc = tsr_identity__keyring_load(id, tenant, &kr, err);
    if (rc != TSR_OK) {
        return rc;
    }
    tsr_buf_init(&blob, 64 * 1024);
    tsr_buf_init(&enc, 128 * 1024);
    if ((rc = tsr_crypto_seal(kr, &ad, pt, strlen(pt), &blob, err)) == TSR_OK &&
        (rc = tsr_crypto_b64url_encode(blob.data, blob.len, &enc)) == TSR_OK) {
        *out = tsr_buf_take(&enc, NULL);
    }
    tsr_buf_cleanup(&enc);
    tsr_buf_cleanup(&blob);
    tsr_crypto_keyring_destroy(kr);
    return rc;
}

tsr_err_t tsr_identity__open_str(tsr_identity_t *id, const char *tenant, const char *kind,
                                 const char *object_id, const char *sealed, char **out,
                                 tsr_error_t *err) {
    tsr_keyring_t *kr = NULL;
    tsr_buf_t blob, pt;
    tsr_seal_ad_t ad = {
        .tenant_id = tenant, .kind = kind, .object_id = object_id, .object_version = 1};
    *out = NULL;
    tsr_err_t rc = tsr_identity__keyring_load(id, tenant, &kr, err);
    if (rc != TSR_OK) {
        return rc;
    }
    tsr_buf_init(&blob, 64 * 1024);
    tsr_buf_init(&pt, 64 * 1024);
    if ((rc = tsr_crypto_b64url_decode(sealed, strlen(sealed), &blob, err)) == TSR_OK &&
        (rc = tsr_crypto_open(kr, &ad, blob.data, blob.len, &pt, err)) == TSR_OK) {
        /* A NUL inside would cut the secret short: refuse it. */
        if (pt.len == 0 || memchr(pt.data, '\0', pt.len) != NULL) {
            rc = tsr_error_set(err, TSR_ECORRUPT, "a sealed secret is malformed");
        } else {
            *out = tsr_buf_take(&pt, NULL);
        }
    }
    if (pt.data != NULL) {
        tsr_crypto_cleanse(pt.data, pt.len);
    }
    tsr_buf_cleanup(&pt);
    tsr_buf_cleanup(&blob);
    tsr_crypto_keyring_destroy(kr);
    return rc;
}
