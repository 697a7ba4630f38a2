/*
 * pkg/identity platform tokens on pkg/crypto: short-lived ES256 JWTs (typ "tsr+jwt") that
 * identity mints for the ingress to forward, the rotating P-256 signing keys behind them (PEM
 * sealed under the platform keyring and kept in the store; the newest signs, older ones stay in
 * the JWKS for the token lifetime), the JWKS, and verification (pkg/crypto's RFC 8725 checks
 * plus identity's: kid from our own store, still published, sub and tid present).
 * Invariant: the cached key set holds exactly the keys that were published at its last build.
 */
#include <string.h>

#include "identity_int.h"

#define JWT_ISS "tessera-identity"
#define JWT_AUD "tessera"
#define JWT_TYP "tsr+jwt"
#define SKEW_MS 30000LL
#define SEAL_KIND "jwt-signing-key"

/* ---- the platform keyring -------------------------------------------------------------------- */

/* Caller holds key_mu. The platform's DEK is made on first use; a replica racing to make it
 * loses with TSR_ECONFLICT and loads the winner's. */
static tsr_err_t platform_ring(tsr_identity_t *id, tsr_error_t *err) {
    if (id->platform_kr != NULL) {
        return TSR_OK;
    }
    tsr_err_t rc = tsr_identity__keyring_load(id, TSR_ID__PLATFORM, &id->platform_kr, err);
    if (rc == TSR_ENOTFOUND) {
        rc = tsr_identity__dek_create(id, TSR_ID__PLATFORM, err);
        if (rc == TSR_OK || rc == TSR_ECONFLICT) {
            rc = tsr_identity__keyring_load(id, TSR_ID__PLATFORM, &id->platform_kr, err);
        }
    }
    return rc;
}

static tsr_seal_ad_t seal_ad(const char *kid) {
    return (tsr_seal_ad_t){
        .tenant_id = TSR_ID__PLATFORM, .kind = SEAL_KIND, .object_id = kid, .object_version = 1};
}

/* The private key of a stored signing-key document. Caller holds key_mu. */
static tsr_err_t key_open(tsr_identity_t *id, json_t *doc, tsr_jwt_key_t **out, tsr_error_t *err) {
    const char *kid = json_string_value(json_object_get(doc, "kid"));
    const char *sealed = json_string_value(json_object_get(doc, "pem"));
    tsr_buf_t blob, pem;
    *out = NULL;
    if (kid == NULL || sealed == NULL) {
        return tsr_error_set(err, TSR_ECORRUPT, "a signing key document is incomplete");
    }
    tsr_err_t rc = platform_ring(id, err);
    if (rc != TSR_OK) {
        return rc;
    }
    tsr_seal_ad_t ad = seal_ad(kid);
    tsr_buf_init(&blob, 64 * 1024);
    tsr_buf_init(&pem, 64 * 1024);
    if ((rc = tsr_crypto_b64url_decode(sealed, strlen(sealed), &blob, err)) == TSR_OK &&
        (rc = tsr_crypto_open(id->platform_kr, &ad, blob.data, blob.len, &pem, err)) == TSR_OK) {
        rc = tsr_crypto_jwt_key_parse(pem.data, pem.len, kid, out, err);
    }
    if (pem.data != NULL) {
        tsr_crypto_cleanse(pem.data, pem.len);
    }
    tsr_buf_cleanup(&pem);
    tsr_buf_cleanup(&blob);
    return rc;
}

/* Whether a key created at created_ms may still have live tokens (JWKS and verify). */
static bool key_published(const tsr_identity_t *id, int64_t created_ms, int64_t now) {
    return created_ms + id->jwt_rotate_ms + id->jwt_ttl_ms + SKEW_MS > now;
}

static int64_t created_of(json_t *doc) {
    return json_integer_value(json_object_get(doc, "createdMs"));
}

/* A key set of every published stored key, signing_kid (may be NULL) as the signing key.
 * Caller holds key_mu. *out returned-owned. */
static tsr_err_t keyset_build(tsr_identity_t *id, json_t *docs, const char *signing_kid,
                              tsr_jwt_keyset_t **out, tsr_error_t *err) {
    int64_t now = tsr_wall_ms();
    json_t *d;
    size_t i;
    tsr_err_t rc = TSR_OK;
    tsr_jwt_keyset_t *ks = tsr_crypto_jwt_keyset_create();
    json_array_foreach(docs, i, d) {
        const char *kid = json_string_value(json_object_get(d, "kid"));
        bool signing = signing_kid != NULL && kid != NULL && strcmp(kid, signing_kid) == 0;
        tsr_jwt_key_t *k = NULL;
        if (!signing && !key_published(id, created_of(d), now)) {
            continue;
        }
        if ((rc = key_open(id, d, &k, err)) != TSR_OK ||
            (rc = tsr_crypto_jwt_keyset_add(ks, k, signing, err)) != TSR_OK) {
            break;
        }
    }
    if (rc != TSR_OK) {
        tsr_crypto_jwt_keyset_destroy(ks);
        return rc;
    }
    *out = ks;
    return TSR_OK;
}

static tsr_err_t keys_list(tsr_identity_t *id, json_t **out, tsr_error_t *err) {
    return id->docs.list(id->docs.ud, TSR_ID__C_SIGNING_KEYS, TSR_ID__PLATFORM, NULL, NULL, NULL,
                         1000, out, err);
}

/* Make a key, seal its PEM and store it. Caller holds key_mu. */
static tsr_err_t key_generate(tsr_identity_t *id, json_t **doc, tsr_error_t *err) {
    char kid[25], *pem = NULL;
    tsr_jwt_key_t *k = NULL;
    tsr_buf_t blob, enc;
    *doc = NULL;
    tsr_id_new(kid);
    tsr_seal_ad_t ad = seal_ad(kid);
    tsr_buf_init(&blob, 64 * 1024);
    tsr_buf_init(&enc, 128 * 1024);
    tsr_err_t rc = platform_ring(id, err);
    if (rc == TSR_OK &&
        (rc = tsr_crypto_jwt_key_generate(kid, TSR_JWT_ALG_ES256, &k, err)) == TSR_OK &&
        (rc = tsr_crypto_jwt_key_format(k, &pem, err)) == TSR_OK &&
        (rc = tsr_crypto_seal(id->platform_kr, &ad, pem, strlen(pem), &blob, err)) == TSR_OK &&
        (rc = tsr_crypto_b64url_encode(blob.data, blob.len, &enc)) == TSR_OK) {
        *doc = json_pack("{ss sI ss}", "kid", kid, "createdMs", (json_int_t)tsr_wall_ms(), "pem",
                         enc.data);
        rc = id->docs.create(id->docs.ud, TSR_ID__C_SIGNING_KEYS, TSR_ID__PLATFORM, kid, *doc, NULL,
                             err);
        if (rc != TSR_OK) {
            json_decref(*doc);
            *doc = NULL;
        }
    }
    if (pem != NULL) {
        tsr_crypto_cleanse(pem, strlen(pem));
        free(pem);
    }
    tsr_crypto_jwt_key_destroy(k);
    tsr_buf_cleanup(&blob);
    tsr_buf_cleanup(&enc);
    return rc;
}

/* Rebuild the cached key set with signing as the signing key. Caller holds key_mu. */
static tsr_err_t keyset_reload(tsr_identity_t *id, json_t *docs, json_t *signing,
                               tsr_error_t *err) {
    tsr_jwt_keyset_t *ks = NULL;
    const char *kid = json_string_value(json_object_get(signing, "kid"));
    if (kid == NULL || strlen(kid) != 24) {
        return tsr_error_set(err, TSR_ECORRUPT, "a signing key document has no kid");
    }
    tsr_err_t rc = keyset_build(id, docs, kid, &ks, err);
    if (rc == TSR_OK) {
        tsr_crypto_jwt_keyset_destroy(id->keyset);
        id->keyset = ks;
        memcpy(id->sign_kid, kid, 25);
        id->sign_created_ms = created_of(signing);
    }
    return rc;
}

/* Make sure a key younger than the rotation period signs. Caller holds key_mu. */
static tsr_err_t key_current(tsr_identity_t *id, tsr_error_t *err) {
    int64_t now = tsr_wall_ms();
    json_t *keys = NULL, *k, *best = NULL, *fresh = NULL;
    size_t i;
    if (id->keyset != NULL && id->sign_created_ms + id->jwt_rotate_ms > now) {
        return TSR_OK;
    }
    /* Another replica may have rotated already: use the newest stored key if it is fresh. */
    tsr_err_t rc = keys_list(id, &keys, err);
    if (rc != TSR_OK) {
        return rc;
    }
    json_array_foreach(keys, i, k) {
        if (best == NULL || created_of(k) > created_of(best)) {
            best = k;
        }
    }
    if (best == NULL || created_of(best) + id->jwt_rotate_ms <= now) {
        rc = key_generate(id, &fresh, err);
        if (rc == TSR_OK) {
            json_array_append(keys, fresh);
            best = fresh;
        }
    }
    if (rc == TSR_OK) {
        rc = keyset_reload(id, keys, best, err);
    }
    json_decref(fresh);
    json_decref(keys);
    return rc;
}

/* A reference to the cached key set after making sure it is current. */
static tsr_err_t keyset_get(tsr_identity_t *id, tsr_jwt_keyset_t **ks, tsr_error_t *err) {
    pthread_mutex_lock(&id->key_mu);
    tsr_err_t rc = key_current(id, err);
    *ks = rc == TSR_OK ? tsr_crypto_jwt_keyset_ref(id->keyset) : NULL;
    pthread_mutex_unlock(&id->key_mu);
    return rc;
}

tsr_err_t tsr_identity__jwks(tsr_identity_t *id, json_t **out, tsr_error_t *err) {
    json_t *keys = NULL;
    tsr_jwt_keyset_t *ks = NULL;
    char *text = NULL;
    json_error_t je;
    *out = NULL;
    pthread_mutex_lock(&id->key_mu);
    tsr_err_t rc = key_current(id, err);
    /* From the store, not the cache: a key another replica made, or one past its overlap
     * window, shows (or goes) at once. */
    if (rc == TSR_OK && (rc = keys_list(id, &keys, err)) == TSR_OK) {
        rc = keyset_build(id, keys, NULL, &ks, err);
    }
    pthread_mutex_unlock(&id->key_mu);
    if (rc == TSR_OK && (rc = tsr_crypto_jwt_keyset_jwks_format(ks, &text, err)) == TSR_OK &&
        (*out = json_loads(text, 0, &je)) == NULL) {
        rc = tsr_error_set(err, TSR_EINTERNAL, "unreadable JWKS");
    }
    free(text);
    tsr_crypto_jwt_keyset_destroy(ks);
    json_decref(keys);
    return rc;
}

tsr_err_t tsr_identity__signing_pem(tsr_identity_t *id, char **pem, char kid[25],
                                    tsr_error_t *err) {
    json_t *doc = NULL;
    tsr_jwt_key_t *k = NULL;
    *pem = NULL;
    pthread_mutex_lock(&id->key_mu);
    tsr_err_t rc = key_current(id, err);
    if (rc == TSR_OK) {
        memcpy(kid, id->sign_kid, 25);
        rc = id->docs.get(id->docs.ud, TSR_ID__C_SIGNING_KEYS, TSR_ID__PLATFORM, kid, &doc, err);
    }
    if (rc == TSR_OK && (rc = key_open(id, doc, &k, err)) == TSR_OK) {
        rc = tsr_crypto_jwt_key_format(k, pem, err);
    }
    pthread_mutex_unlock(&id->key_mu);
    tsr_crypto_jwt_key_destroy(k);
    json_decref(doc);
    return rc;
}

/* ---- mint ----------------------------------------------------------------------------------- */

tsr_err_t tsr_identity__jwt_mint(tsr_identity_t *id, const tsr_id__principal_t *p, char **jwt,
                                 tsr_error_t *err) {
    char jti[25];
    int64_t now_s = tsr_wall_ms() / 1000;
    tsr_jwt_keyset_t *ks = NULL;
    json_t *roles = json_array();
    *jwt = NULL;
    for (const tsr_id__role_t *r = tsr_identity__roles(); r->id != NULL; r++) {
        if ((p->roles & r->bit) != 0) {
            json_array_append_new(roles, json_string(r->name));
        }
    }
    /* Always present (possibly empty), capped at TSR_ID__MAX_PRINCIPAL_GROUPS ids: with the
     * cap the token stays near 4 KiB, well inside TSR_CRYPTO_JWT_MAX_DEFAULT. */
    json_t *groups = json_array();
    for (size_t i = 0; i < p->n_groups && i < TSR_ID__MAX_PRINCIPAL_GROUPS; i++) {
        json_array_append_new(groups, json_string(p->groups[i]));
    }
    tsr_id_new(jti);
    json_t *claims =
        json_pack("{ss ss ss ss so so ss sI sI sI ss}", "iss", JWT_ISS, "aud", JWT_AUD, "sub",
                  p->user_id, "tid", p->tenant_id, "roles", roles, "groups", groups, "amr",
                  p->auth_type, "iat", (json_int_t)now_s, "nbf", (json_int_t)now_s, "exp",
                  (json_int_t)(now_s + id->jwt_ttl_ms / 1000), "jti", jti);
    tsr_err_t rc = keyset_get(id, &ks, err);
    if (rc == TSR_OK) {
        rc = tsr_crypto_jwt_sign(ks, JWT_TYP, claims, jwt, err);
    }
    tsr_crypto_jwt_keyset_destroy(ks);
    json_decref(claims);
    return rc;
}

/* ---- verify --------------------------------------------------------------------------------- */

/* The kid of a compact JWS's header, when it is one of ours in shape (24 hex). Everything
 * else about the header is pkg/crypto's to judge. */
static bool header_kid(const char *jwt, char kid[25]) {
    const char *dot = strchr(jwt, '.');
    tsr_buf_t b;
    json_error_t je;
    bool ok = false;
    if (dot == NULL) {
        return false;
    }
    tsr_buf_init(&b, TSR_CRYPTO_JWT_MAX_DEFAULT);
    if (tsr_crypto_b64url_decode(jwt, (size_t)(dot - jwt), &b, NULL) == TSR_OK && b.len > 0) {
        json_t *h = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, &je);
        const char *k = json_string_value(json_object_get(h, "kid"));
        if (k != NULL && strlen(k) == 24 && strspn(k, "0123456789abcdef") == 24) {
            memcpy(kid, k, 25);
            ok = true;
        }
        json_decref(h);
    }
    tsr_buf_cleanup(&b);
    return ok;
}

/* A key set of exactly the stored key doc (*ks returned-owned): opened per verification as
 * the previous code parsed the PEM per verification, and always in step with the store's view
 * of which keys are published, whichever replica made them. */
static tsr_err_t keyset_with(tsr_identity_t *id, json_t *doc, tsr_jwt_keyset_t **ks,
                             tsr_error_t *err) {
    tsr_jwt_key_t *k = NULL;
    *ks = NULL;
    tsr_jwt_keyset_t *one = tsr_crypto_jwt_keyset_create();
    pthread_mutex_lock(&id->key_mu);
    tsr_err_t rc = key_open(id, doc, &k, err);
    pthread_mutex_unlock(&id->key_mu);
    if (rc == TSR_OK && (rc = tsr_crypto_jwt_keyset_add(one, k, false, err)) == TSR_OK) {
        *ks = one;
    } else {
        tsr_crypto_jwt_keyset_destroy(one);
    }
    return rc;
}

tsr_err_t tsr_identity__jwt_verify(tsr_identity_t *id, const char *jwt, json_t **claims,
                                   tsr_error_t *err) {
    char kid[25];
    json_t *key = NULL, *c = NULL;
    tsr_jwt_keyset_t *ks = NULL;
    tsr_error_t inner = {0};
    tsr_err_t rc = TSR_EUNAUTHENTICATED;
    *claims = NULL;
    if (strlen(jwt) > TSR_CRYPTO_JWT_MAX_DEFAULT || !header_kid(jwt, kid)) {
        goto out;
    }
    rc = id->docs.get(id->docs.ud, TSR_ID__C_SIGNING_KEYS, TSR_ID__PLATFORM, kid, &key, err);
    if (rc != TSR_OK) {
        rc = rc == TSR_ENOTFOUND ? TSR_EUNAUTHENTICATED : rc;
        goto out;
    }
    rc = TSR_EUNAUTHENTICATED;
    if (!key_published(id, created_of(key), tsr_wall_ms())) {
        goto out;
    }
    if ((rc = keyset_with(id, key, &ks, err)) != TSR_OK) {
        goto out;
    }
    tsr_jwt_verify_opts_t vo = {.issuer = JWT_ISS,
                                .audience = JWT_AUD,
                                .typ = JWT_TYP,
                                .skew_s = (uint32_t)(SKEW_MS / 1000),
                                .algs = TSR_JWT_ALG_ES256,
                                .require_exp = true};
    rc = tsr_crypto_jwt_verify(ks, jwt, strlen(jwt), &vo, &c, &inner);
    if (rc != TSR_OK) {
        rc = TSR_EUNAUTHENTICATED;
        goto out;
    }
    /* identity's own claims: who (sub, tid) and when (nbf, iat as integers) must be there. */
    const char *sub = json_string_value(json_object_get(c, "sub"));
    const char *tid = json_string_value(json_object_get(c, "tid"));
    if (sub == NULL || strlen(sub) != 24 || tid == NULL || strlen(tid) != 24 ||
        !json_is_integer(json_object_get(c, "nbf")) ||
        !json_is_integer(json_object_get(c, "iat"))) {
        rc = TSR_EUNAUTHENTICATED;
        goto out;
    }
    *claims = c;
    c = NULL;
out:
    if (rc == TSR_EUNAUTHENTICATED) {
        tsr_error_set(err, rc, "the token is not valid");
    }
    tsr_crypto_jwt_keyset_destroy(ks);
    json_decref(c);
    json_decref(key);
    return rc;
}

void tsr_identity__keys_cleanup(tsr_identity_t *id) {
    tsr_crypto_jwt_keyset_destroy(id->keyset);
    id->keyset = NULL;
    tsr_crypto_keyring_destroy(id->platform_kr);
    id->platform_kr = NULL;
}
