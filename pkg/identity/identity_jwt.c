/*
 * pkg/identity platform tokens: short-lived ES256 JWTs (typ "tsr+jwt") that identity mints for
 * the ingress to forward, the rotating P-256 signing keys behind them (kept in the document
 * store, newest signs, older ones stay in the JWKS for the token lifetime), the JWKS, and a
 * strict verifier (RFC 8725: alg pinned, explicit typ, kid from our own store only, iss, aud,
 * exp/nbf with skew, integer times, duplicate keys refused). A stop-gap on OpenSSL until
 * pkg/crypto's JWT functions exist; private keys must then be sealed with the KEK.
 */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "identity_int.h"

#define JWT_ISS "tessera-identity"
#define JWT_AUD "tessera"
#define JWT_TYP "tsr+jwt"
#define JWT_MAX 8192
#define SKEW_MS 30000LL

/* ---- base64url ------------------------------------------------------------------------------ */

static void b64url_enc(const unsigned char *p, size_t n, tsr_buf_t *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | p[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            tsr_buf_append(out, &tab[(acc >> bits) & 63u], 1);
        }
    }
    if (bits > 0) {
        tsr_buf_append(out, &tab[(acc << (6 - bits)) & 63u], 1);
    }
}

static int b64_val(char c) {
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

/* Strict decode (no padding, no other characters, no non-zero trailing bits) into out
 * (caller's, out_size >= n*3/4+1). */
static bool b64url_dec(const char *s, size_t n, unsigned char *out, size_t out_size,
                       size_t *out_len) {
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;
    if (n % 4 == 1) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        int v = b64_val(s[i]);
        if (v < 0) {
            return false;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= out_size) {
                return false;
            }
            out[o++] = (unsigned char)((acc >> bits) & 0xffu);
        }
    }
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
        return false;
    }
    *out_len = o;
    return true;
}

/* ---- keys ----------------------------------------------------------------------------------- */

static EVP_PKEY *pem_load(const char *pem) {
    BIO *b = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = b != NULL ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return k;
}

static tsr_err_t key_generate(tsr_identity_t *id, tsr_error_t *err) {
    EVP_PKEY *k = EVP_EC_gen("P-256");
    BIO *b = BIO_new(BIO_s_mem());
    char *pem = NULL;
    tsr_err_t rc = TSR_OK;
    if (k == NULL || b == NULL || PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) != 1) {
        rc = tsr_error_set(err, TSR_EINTERNAL, "cannot generate a signing key");
        goto out;
    }
    long n = BIO_get_mem_data(b, &pem);
    char kid[25];
    tsr_id_new(kid);
    int64_t now = tsr_wall_ms();
    json_t *doc =
        json_pack("{ss sI ss%}", "kid", kid, "createdMs", (json_int_t)now, "pem", pem, (size_t)n);
    /* Hook: seal "pem" with the KEK (pkg/crypto) before it is stored. */
    rc = id->docs.create(id->docs.ud, TSR_ID__C_SIGNING_KEYS, TSR_ID__PLATFORM, kid, doc, err);
    json_decref(doc);
    if (rc == TSR_OK) {
        EVP_PKEY_free(id->sign_key);
        id->sign_key = k;
        k = NULL;
        memcpy(id->sign_kid, kid, 25);
        id->sign_created_ms = now;
    }
out:
    EVP_PKEY_free(k);
    BIO_free(b);
    return rc;
}

/* Make sure a key younger than the rotation period is loaded; caller holds key_mu. */
static tsr_err_t key_current(tsr_identity_t *id, tsr_error_t *err) {
    int64_t now = tsr_wall_ms();
    json_t *keys = NULL, *k, *best = NULL;
    size_t i;
    if (id->sign_key != NULL && id->sign_created_ms + id->jwt_rotate_ms > now) {
        return TSR_OK;
    }
    /* Another replica may have rotated already: use the newest stored key if it is fresh. */
    tsr_err_t rc = id->docs.list(id->docs.ud, TSR_ID__C_SIGNING_KEYS, TSR_ID__PLATFORM, NULL, NULL,
                                 NULL, 1000, &keys, err);
    if (rc != TSR_OK) {
        return rc;
    }
    json_array_foreach(keys, i, k) {
        if (best == NULL || json_integer_value(json_object_get(k, "createdMs")) >
                                json_integer_value(json_object_get(best, "createdMs"))) {
            best = k;
        }
    }
    int64_t created = best != NULL ? json_integer_value(json_object_get(best, "createdMs")) : 0;
    if (best != NULL && created + id->jwt_rotate_ms > now) {
        EVP_PKEY *pk = pem_load(json_string_value(json_object_get(best, "pem")));
        const char *kid = json_string_value(json_object_get(best, "kid"));
        if (pk != NULL && kid != NULL && strlen(kid) == 24) {
            EVP_PKEY_free(id->sign_key);
            id->sign_key = pk;
            memcpy(id->sign_kid, kid, 25);
            id->sign_created_ms = created;
            json_decref(keys);
            return TSR_OK;
        }
        EVP_PKEY_free(pk);
    }
    json_decref(keys);
    return key_generate(id, err);
}

/* Whether a key created at created_ms may still have live tokens (JWKS and verify). */
static bool key_published(const tsr_identity_t *id, int64_t created_ms, int64_t now) {
    return created_ms + id->jwt_rotate_ms + id->jwt_ttl_ms + SKEW_MS > now;
}

tsr_err_t tsr_identity__jwks(tsr_identity_t *id, json_t **out, tsr_error_t *err) {
    json_t *keys = NULL, *k;
    size_t i;
    int64_t now = tsr_wall_ms();
    *out = NULL;
    pthread_mutex_lock(&id->key_mu);
    tsr_err_t rc = key_current(id, err);
    pthread_mutex_unlock(&id->key_mu);
    if (rc == TSR_OK) {
        rc = id->docs.list(id->docs.ud, TSR_ID__C_SIGNING_KEYS, TSR_ID__PLATFORM, NULL, NULL, NULL,
                           1000, &keys, err);
    }
    if (rc != TSR_OK) {
        return rc;
    }
    json_t *arr = json_array();
    json_array_foreach(keys, i, k) {
        if (!key_published(id, json_integer_value(json_object_get(k, "createdMs")), now)) {
            continue;
        }
        EVP_PKEY *pk = pem_load(json_string_value(json_object_get(k, "pem")));
        BIGNUM *x = NULL, *y = NULL;
        unsigned char xb[32], yb[32];
        if (pk != NULL && EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_X, &x) == 1 &&
            EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_Y, &y) == 1 &&
            BN_bn2binpad(x, xb, 32) == 32 && BN_bn2binpad(y, yb, 32) == 32) {
            tsr_buf_t bx, by;
            tsr_buf_init(&bx, 64);
            tsr_buf_init(&by, 64);
            b64url_enc(xb, 32, &bx);
            b64url_enc(yb, 32, &by);
            json_array_append_new(arr, json_pack("{ss ss ss ss ss ss ss}", "kty", "EC", "crv",
                                                 "P-256", "alg", "ES256", "use", "sig", "kid",
                                                 json_string_value(json_object_get(k, "kid")), "x",
                                                 bx.data, "y", by.data));
            tsr_buf_cleanup(&bx);
            tsr_buf_cleanup(&by);
        }
        BN_free(x);
        BN_free(y);
        EVP_PKEY_free(pk);
    }
    json_decref(keys);
    *out = json_pack("{so}", "keys", arr);
    return TSR_OK;
}

/* ---- mint ----------------------------------------------------------------------------------- */

static tsr_err_t sign_es256(EVP_PKEY *k, const char *data, size_t n, tsr_buf_t *out,
                            tsr_error_t *err) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char der[128], raw[64];
    size_t der_len = sizeof der;
    ECDSA_SIG *sig = NULL;
    tsr_err_t rc = TSR_OK;
    const unsigned char *p = der;
    if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k) != 1 ||
        EVP_DigestSign(ctx, der, &der_len, (const unsigned char *)data, n) != 1 ||
        (sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len)) == NULL ||
        BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, 32) != 32 ||
        BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + 32, 32) != 32) {
        rc = tsr_error_set(err, TSR_EINTERNAL, "ES256 signing failed");
    } else {
        b64url_enc(raw, sizeof raw, out);
    }
    ECDSA_SIG_free(sig);
    EVP_MD_CTX_free(ctx);
    return rc;
}

tsr_err_t tsr_identity__jwt_sign(tsr_identity_t *id, json_t *hdr, json_t *claims, char **jwt,
                                 tsr_error_t *err) {
    tsr_buf_t b;
    *jwt = NULL;
    tsr_buf_init(&b, JWT_MAX);
    pthread_mutex_lock(&id->key_mu);
    tsr_err_t rc = key_current(id, err);
    if (rc == TSR_OK) {
        if (json_object_get(hdr, "kid") == NULL) {
            json_object_set_new(hdr, "kid", json_string(id->sign_kid));
        }
        char *hs = json_dumps(hdr, JSON_COMPACT), *cs = json_dumps(claims, JSON_COMPACT);
        b64url_enc((const unsigned char *)hs, strlen(hs), &b);
        tsr_buf_append(&b, ".", 1);
        b64url_enc((const unsigned char *)cs, strlen(cs), &b);
        size_t signed_len = b.len;
        tsr_buf_append(&b, ".", 1);
        rc = sign_es256(id->sign_key, b.data, signed_len, &b, err);
        free(hs);
        free(cs);
    }
    pthread_mutex_unlock(&id->key_mu);
    if (rc == TSR_OK) {
        *jwt = tsr_buf_take(&b, NULL);
    }
    tsr_buf_cleanup(&b);
    return rc;
}

tsr_err_t tsr_identity__jwt_mint(tsr_identity_t *id, const tsr_id__principal_t *p, char **jwt,
                                 tsr_error_t *err) {
    char jti[25];
    int64_t now_s = tsr_wall_ms() / 1000;
    json_t *roles = json_array();
    for (const tsr_id__role_t *r = tsr_identity__roles(); r->id != NULL; r++) {
        if ((p->roles & r->bit) != 0) {
            json_array_append_new(roles, json_string(r->name));
        }
    }
    tsr_id_new(jti);
    json_t *hdr = json_pack("{ss ss}", "alg", "ES256", "typ", JWT_TYP);
    json_t *claims = json_pack("{ss ss ss ss so ss sI sI sI ss}", "iss", JWT_ISS, "aud", JWT_AUD,
                               "sub", p->user_id, "tid", p->tenant_id, "roles", roles, "amr",
                               p->auth_type, "iat", (json_int_t)now_s, "nbf", (json_int_t)now_s,
                               "exp", (json_int_t)(now_s + id->jwt_ttl_ms / 1000), "jti", jti);
    tsr_err_t rc = tsr_identity__jwt_sign(id, hdr, claims, jwt, err);
    json_decref(hdr);
    json_decref(claims);
    return rc;
}

/* ---- verify --------------------------------------------------------------------------------- */

static json_t *segment_json(const char *s, size_t n) {
    unsigned char buf[JWT_MAX];
    size_t len = 0;
    json_error_t je;
    if (!b64url_dec(s, n, buf, sizeof buf - 1, &len)) {
        return NULL;
    }
    return json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &je);
}

static bool verify_es256(EVP_PKEY *k, const char *data, size_t n, const char *sig64,
                         size_t sig64_len) {
    unsigned char raw[66], der[128], *dp = der;
    size_t raw_len = 0;
    bool ok = false;
    ECDSA_SIG *sig = NULL;
    EVP_MD_CTX *ctx = NULL;
    if (!b64url_dec(sig64, sig64_len, raw, sizeof raw, &raw_len) || raw_len != 64) {
        return false;
    }
    BIGNUM *r = BN_bin2bn(raw, 32, NULL), *s = BN_bin2bn(raw + 32, 32, NULL);
    sig = ECDSA_SIG_new();
    if (r == NULL || s == NULL || sig == NULL || ECDSA_SIG_set0(sig, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        goto out;
    }
    int der_len = i2d_ECDSA_SIG(sig, NULL);
    if (der_len <= 0 || (size_t)der_len > sizeof der || i2d_ECDSA_SIG(sig, &dp) != der_len) {
        goto out;
    }
    ctx = EVP_MD_CTX_new();
    ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k) == 1 &&
         EVP_DigestVerify(ctx, der, (size_t)der_len, (const unsigned char *)data, n) == 1;
out:
    ECDSA_SIG_free(sig);
    EVP_MD_CTX_free(ctx);
    return ok;
}

static bool is_int_claim(const json_t *c, const char *name, json_int_t *v) {
    json_t *j = json_object_get(c, name);
    if (!json_is_integer(j)) {
        return false;
    }
    *v = json_integer_value(j);
    return true;
}

tsr_err_t tsr_identity__jwt_verify(tsr_identity_t *id, const char *jwt, json_t **claims,
                                   tsr_error_t *err) {
    json_t *hdr = NULL, *c = NULL, *key = NULL;
    EVP_PKEY *pk = NULL;
    tsr_err_t rc = TSR_EUNAUTHENTICATED;
    size_t n = strlen(jwt);
    const char *d1 = strchr(jwt, '.');
    const char *d2 = d1 != NULL ? strchr(d1 + 1, '.') : NULL;
    json_int_t exp = 0, nbf = 0, iat = 0;
    int64_t now = tsr_wall_ms();
    *claims = NULL;
    if (n > JWT_MAX || d1 == NULL || d2 == NULL || strchr(d2 + 1, '.') != NULL) {
        goto out;
    }
    hdr = segment_json(jwt, (size_t)(d1 - jwt));
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    const char *typ = json_string_value(json_object_get(hdr, "typ"));
    const char *kid = json_string_value(json_object_get(hdr, "kid"));
    /* Pinned alg, explicit typ, no critical extensions; jku/x5u/jwk are never looked at. */
    if (hdr == NULL || alg == NULL || strcmp(alg, "ES256") != 0 || typ == NULL ||
        strcmp(typ, JWT_TYP) != 0 || json_object_get(hdr, "crit") != NULL || kid == NULL ||
        strlen(kid) != 24 || strspn(kid, "0123456789abcdef") != 24) {
        goto out;
    }
    rc = id->docs.get(id->docs.ud, TSR_ID__C_SIGNING_KEYS, TSR_ID__PLATFORM, kid, &key, err);
    if (rc != TSR_OK) {
        rc = rc == TSR_ENOTFOUND ? TSR_EUNAUTHENTICATED : rc;
        goto out;
    }
    rc = TSR_EUNAUTHENTICATED;
    if (!key_published(id, json_integer_value(json_object_get(key, "createdMs")), now) ||
        (pk = pem_load(json_string_value(json_object_get(key, "pem")))) == NULL ||
        !verify_es256(pk, jwt, (size_t)(d2 - jwt), d2 + 1, strlen(d2 + 1))) {
        goto out;
    }
    c = segment_json(d1 + 1, (size_t)(d2 - d1 - 1));
    const char *iss = json_string_value(json_object_get(c, "iss"));
    const char *aud = json_string_value(json_object_get(c, "aud"));
    const char *sub = json_string_value(json_object_get(c, "sub"));
    const char *tid = json_string_value(json_object_get(c, "tid"));
    if (c == NULL || iss == NULL || strcmp(iss, JWT_ISS) != 0 || aud == NULL ||
        strcmp(aud, JWT_AUD) != 0 || sub == NULL || strlen(sub) != 24 || tid == NULL ||
        strlen(tid) != 24 || !is_int_claim(c, "exp", &exp) || !is_int_claim(c, "nbf", &nbf) ||
        !is_int_claim(c, "iat", &iat) || exp * 1000 + SKEW_MS <= now ||
        nbf * 1000 - SKEW_MS > now) {
        goto out;
    }
    *claims = c;
    c = NULL;
    rc = TSR_OK;
out:
    if (rc == TSR_EUNAUTHENTICATED) {
        tsr_error_set(err, rc, "the token is not valid");
    }
    EVP_PKEY_free(pk);
    json_decref(hdr);
    json_decref(c);
    json_decref(key);
    return rc;
}

void tsr_identity__keys_cleanup(tsr_identity_t *id) {
    EVP_PKEY_free(id->sign_key);
    id->sign_key = NULL;
}
