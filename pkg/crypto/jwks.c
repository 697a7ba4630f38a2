/*
 * pkg/crypto JWT key sets: keys by kid with one current signing key (rotation keeps older
 * keys verifying), JWKS export of our public keys and JWKS import of an IdP's (EC P-256 for
 * ES256, RSA >= 2048 bits for RS256). Imported keys are public only and bound to one alg.
 */
#include <stdatomic.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "crypto_int.h"

#define KEYSET_MAX 64
#define JWKS_MAX (256u * 1024u)

struct tsr_jwt_keyset {
    atomic_uint refs;
    tsr_jwt_key_t *keys[KEYSET_MAX];
    size_t n;
    int signing; /* index, -1: none */
};

tsr_jwt_keyset_t *tsr_crypto_jwt_keyset_create(void) {
    tsr_jwt_keyset_t *ks = tsr_xcalloc(1, sizeof(*ks));
    atomic_init(&ks->refs, 1);
    ks->signing = -1;
    return ks;
}

tsr_jwt_keyset_t *tsr_crypto_jwt_keyset_ref(tsr_jwt_keyset_t *ks) {
    atomic_fetch_add_explicit(&ks->refs, 1, memory_order_relaxed);
    return ks;
}

void tsr_crypto_jwt_keyset_destroy(tsr_jwt_keyset_t *ks) {
    /* acq_rel: the last owner sees every other owner's reads finished before it frees. */
    if (ks == NULL || atomic_fetch_sub_explicit(&ks->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    for (size_t i = 0; i < ks->n; i++) {
        tsr_crypto_jwt_key_destroy(ks->keys[i]);
    }
    free(ks);
}

size_t tsr_crypto_jwt_keyset_count(const tsr_jwt_keyset_t *ks) {
    return ks->n;
}

const tsr_jwt_key_t *tsr_crypto__keyset_find(const tsr_jwt_keyset_t *ks, const char *kid) {
    if (kid == NULL) {
        return ks->n == 1 ? ks->keys[0] : NULL;
    }
    for (size_t i = 0; i < ks->n; i++) {
        if (strcmp(ks->keys[i]->kid, kid) == 0) {
            return ks->keys[i];
        }
    }
    return NULL;
}

const tsr_jwt_key_t *tsr_crypto__keyset_signing(const tsr_jwt_keyset_t *ks) {
    return ks->signing >= 0 ? ks->keys[ks->signing] : NULL;
}

tsr_err_t tsr_crypto_jwt_keyset_add(tsr_jwt_keyset_t *ks, tsr_jwt_key_t *key, bool signing,
                                    tsr_error_t *err) {
    bool dup = false;
    for (size_t i = 0; i < ks->n; i++) {
        dup = dup || strcmp(ks->keys[i]->kid, key->kid) == 0;
    }
    if (dup) {
        tsr_crypto_jwt_key_destroy(key);
        return tsr_error_set(err, TSR_ECONFLICT, "jwt keyset: duplicate kid");
    }
    if (ks->n == KEYSET_MAX) {
        tsr_crypto_jwt_key_destroy(key);
        return tsr_error_set(err, TSR_ETOOBIG, "jwt keyset: more than %d keys", KEYSET_MAX);
    }
    if (signing && !key->has_private) {
        tsr_crypto_jwt_key_destroy(key);
        return tsr_error_set(err, TSR_EINVAL, "jwt keyset: a signing key needs its private key");
    }
    ks->keys[ks->n] = key;
    if (signing) {
        ks->signing = (int)ks->n;
    }
    ks->n++;
    return TSR_OK;
}

tsr_err_t tsr_crypto_jwt_keyset_remove(tsr_jwt_keyset_t *ks, const char *kid, tsr_error_t *err) {
    for (size_t i = 0; i < ks->n; i++) {
        if (strcmp(ks->keys[i]->kid, kid) == 0) {
            tsr_crypto_jwt_key_destroy(ks->keys[i]);
            memmove(&ks->keys[i], &ks->keys[i + 1], (ks->n - i - 1) * sizeof(ks->keys[0]));
            ks->n--;
            if (ks->signing == (int)i) {
                ks->signing = -1;
            } else if (ks->signing > (int)i) {
                ks->signing--;
            }
            return TSR_OK;
        }
    }
    return tsr_error_set(err, TSR_ENOTFOUND, "jwt keyset: no such kid");
}

/* ---- export -------------------------------------------------------------------------------- */

static json_t *b64_bn(const BIGNUM *bn, int pad) {
    uint8_t buf[1024];
    tsr_buf_t b;
    int n = pad > 0 ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    if (n <= 0 || (size_t)n > sizeof(buf)) {
        return NULL;
    }
    tsr_buf_init(&b, 0);
    json_t *j = NULL;
    if (tsr_crypto_b64url_encode(buf, (size_t)n, &b) == TSR_OK) {
        j = json_string(b.data);
    }
    tsr_buf_cleanup(&b);
    return j;
}

static json_t *jwk_of(const tsr_jwt_key_t *k) {
    BIGNUM *a = NULL, *b = NULL;
    json_t *ja = NULL, *jb = NULL, *j = NULL;
    if (k->alg == TSR_JWT_ALG_ES256) {
        if (EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_EC_PUB_X, &a) == 1 &&
            EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &b) == 1) {
            ja = b64_bn(a, 32);
            jb = b64_bn(b, 32);
        }
        if (ja != NULL && jb != NULL) {
            j = json_pack("{s:s, s:s, s:O, s:O, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x",
                          ja, "y", jb, "kid", k->kid, "use", "sig", "alg", "ES256");
        }
    } else {
        if (EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_RSA_N, &a) == 1 &&
            EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_RSA_E, &b) == 1 &&
            BN_num_bytes(a) <= 1024 && BN_num_bytes(b) <= 1024) {
            ja = b64_bn(a, 0);
            jb = b64_bn(b, 0);
        }
        if (ja != NULL && jb != NULL) {
            j = json_pack("{s:s, s:O, s:O, s:s, s:s, s:s}", "kty", "RSA", "n", ja, "e", jb, "kid",
                          k->kid, "use", "sig", "alg", "RS256");
        }
    }
    json_decref(ja);
    json_decref(jb);
    BN_free(a);
    BN_free(b);
    return j;
}

tsr_err_t tsr_crypto_jwt_keyset_jwks_format(const tsr_jwt_keyset_t *ks, char **json,
                                            tsr_error_t *err) {
    json_t *keys = json_array();
    *json = NULL;
    for (size_t i = 0; i < ks->n; i++) {
        json_t *j = jwk_of(ks->keys[i]);
        if (j == NULL) {
            json_decref(keys);
            return tsr_error_set(err, TSR_EINTERNAL, "jwks: cannot export key %s",
                                 ks->keys[i]->kid);
        }
        json_array_append_new(keys, j);
    }
    json_t *doc = json_pack("{s:o}", "keys", keys);
    *json = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(doc);
    if (*json == NULL) {
        return tsr_error_set(err, TSR_EINTERNAL, "jwks: cannot serialize");
    }
    return TSR_OK;
}

/* ---- import -------------------------------------------------------------------------------- */

static BIGNUM *bn_of(const json_t *j, size_t maxlen) {
    const char *s = json_string_value(j);
    tsr_buf_t b;
    BIGNUM *bn = NULL;
    if (s == NULL) {
        return NULL;
    }
    tsr_buf_init(&b, maxlen);
    if (tsr_crypto_b64url_decode(s, json_string_length(j), &b, NULL) == TSR_OK && b.len > 0 &&
        b.len <= INT32_MAX) {
        bn = BN_bin2bn((const unsigned char *)b.data, (int)b.len, NULL);
    }
    tsr_buf_cleanup(&b);
    return bn;
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld) {
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    if (pkey != NULL) {
        /* Refuse a point not on the curve (invalid-curve attacks) or a degenerate RSA key. */
        EVP_PKEY_CTX *chk = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        if (chk == NULL || EVP_PKEY_public_check(chk) != 1) {
            EVP_PKEY_free(pkey);
            pkey = NULL;
        }
        EVP_PKEY_CTX_free(chk);
    }
    return pkey;
}

static EVP_PKEY *import_ec(const json_t *jwk) {
    uint8_t pt[65];
    BIGNUM *x = NULL, *y = NULL;
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    if (crv == NULL || strcmp(crv, "P-256") != 0) {
        return NULL;
    }
    x = bn_of(json_object_get(jwk, "x"), 32);
    y = bn_of(json_object_get(jwk, "y"), 32);
    if (x == NULL || y == NULL) {
        goto out;
    }
    pt[0] = 0x04;
    if (BN_bn2binpad(x, pt + 1, 32) != 32 || BN_bn2binpad(y, pt + 33, 32) != 32) {
        goto out;
    }
    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt)) != 1) {
        goto out;
    }
    pkey = pkey_fromdata("EC", bld);
out:
    OSSL_PARAM_BLD_free(bld);
    BN_free(x);
    BN_free(y);
    return pkey;
}

static EVP_PKEY *import_rsa(const json_t *jwk) {
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    BIGNUM *n = bn_of(json_object_get(jwk, "n"), 1024);
    BIGNUM *e = bn_of(json_object_get(jwk, "e"), 8);
    if (n == NULL || e == NULL || BN_num_bits(n) < 2048) {
        goto out;
    }
    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1) {
        goto out;
    }
    pkey = pkey_fromdata("RSA", bld);
out:
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return pkey;
}

tsr_err_t tsr_crypto_jwt_keyset_jwks_parse(tsr_jwt_keyset_t *ks, const char *json, size_t n,
                                           size_t *added, tsr_error_t *err) {
    json_error_t je;
    size_t i, count = 0;
    json_t *jwk;
    tsr_err_t rc = TSR_OK;
    if (added != NULL) {
        *added = 0;
    }
    if (n > JWKS_MAX) {
        return tsr_error_set(err, TSR_ETOOBIG, "jwks: document over %u bytes", JWKS_MAX);
    }
    json_t *doc = json_loadb(json, n, JSON_REJECT_DUPLICATES, &je);
    json_t *keys = json_object_get(doc, "keys");
    if (!json_is_array(keys)) {
        json_decref(doc);
        return tsr_error_set(err, TSR_EINVAL, "jwks: not an object with a keys array");
    }
    json_array_foreach(keys, i, jwk) {
        const char *kty = json_string_value(json_object_get(jwk, "kty"));
        const char *kid = json_string_value(json_object_get(jwk, "kid"));
        const char *use = json_string_value(json_object_get(jwk, "use"));
        const char *alg = json_string_value(json_object_get(jwk, "alg"));
        EVP_PKEY *pkey = NULL;
        tsr_jwt_alg_t kalg;
        if (kty == NULL || !tsr_crypto__kid_is_valid(kid) ||
            (use != NULL && strcmp(use, "sig") != 0)) {
            continue;
        }
        if (strcmp(kty, "EC") == 0 && (alg == NULL || strcmp(alg, "ES256") == 0)) {
            pkey = import_ec(jwk);
            kalg = TSR_JWT_ALG_ES256;
        } else if (strcmp(kty, "RSA") == 0 && (alg == NULL || strcmp(alg, "RS256") == 0)) {
            pkey = import_rsa(jwk);
            kalg = TSR_JWT_ALG_RS256;
        } else {
            continue;
        }
        if (pkey == NULL) {
            continue;
        }
        tsr_jwt_key_t *k = tsr_xcalloc(1, sizeof(*k));
        k->pkey = pkey;
        k->kid = tsr_xstrdup(kid);
        k->alg = kalg;
        rc = tsr_crypto_jwt_keyset_add(ks, k, false, err);
        if (rc != TSR_OK) {
            break;
        }
        count++;
    }
    json_decref(doc);
    if (added != NULL) {
        *added = count;
    }
    return rc;
}
