/*
 * pkg/auth verifier: platform JWTs checked against identity's JWKS. The key set is fetched on
 * first use, refetched when older than max_age_ms (identity drops keys after their overlap
 * window) and when a token names a kid it does not hold (identity rotated), but at most once per
 * refetch_ms for unknown kids so that forged kids cannot make us hammer identity.
 * Invariants: readers take a reference to the current key set under mu and verify without the
 * lock; a fetch builds a new set and swaps the pointer; one fetch at a time (fetch_mu). A token
 * that verified is remembered by its SHA-256 until it expires, at most max_age_ms (the ingress
 * forwards the same token for every request of its cache period; service tokens are reused for
 * minutes), so a key identity removed stops counting within one JWKS refresh either way.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth_int.h"
#include "crypto.h"
#include "log.h"

#define JWKS_MAX (256u * 1024u)
#define SEEN_MAX 10000 /* verified tokens remembered */

struct tsr_auth_verifier {
    char *url, *iss, *aud;
    uint32_t leeway_s, refetch_ms, max_age_ms, timeout_ms;
    pthread_mutex_t fetch_mu; /* one fetch at a time; taken before mu, never inside it */
    pthread_mutex_t mu;       /* guards the fields below */
    tsr_jwt_keyset_t *ks;     /* NULL until the first successful fetch */
    json_t *kids;             /* kid → true, the kids of ks */
    uint64_t fetched_ms;      /* mono ms of the last successful fetch */
    uint64_t tried_ms;        /* mono ms of the last attempt; 0: none yet */
    json_t *seen; /* sha256 hex of a verified token → its principal and "x" (mono ms) */
    atomic_uint fetches;
};

tsr_err_t tsr_auth_verifier_create(const tsr_auth_verifier_opts_t *o, tsr_auth_verifier_t **out,
                                   tsr_error_t *err) {
    *out = NULL;
    if (o == NULL || o->jwks_url == NULL || strlen(o->jwks_url) > 1024 ||
        (strncmp(o->jwks_url, "http://", 7) != 0 && strncmp(o->jwks_url, "https://", 8) != 0)) {
        return tsr_error_set(err, TSR_EINVAL, "the JWKS URL must be an http(s) URL");
    }
    tsr_auth_verifier_t *v = tsr_xcalloc(1, sizeof *v);
    v->url = tsr_xstrdup(o->jwks_url);
    v->iss = tsr_xstrdup(o->issuer != NULL ? o->issuer : TSR_AUTH_ISSUER);
    v->aud = tsr_xstrdup(o->audience != NULL ? o->audience : TSR_AUTH_AUDIENCE);
    v->leeway_s = o->leeway_s != 0 ? o->leeway_s : 30;
    v->refetch_ms = o->refetch_ms != 0 ? o->refetch_ms : 5000;
    v->max_age_ms = o->max_age_ms != 0 ? o->max_age_ms : 60000;
    v->timeout_ms = o->timeout_ms != 0 ? o->timeout_ms : 3000;
    v->kids = json_object();
    v->seen = json_object();
    pthread_mutex_init(&v->mu, NULL);
    pthread_mutex_init(&v->fetch_mu, NULL);
    atomic_init(&v->fetches, 0);
    *out = v;
    return TSR_OK;
}

void tsr_auth_verifier_destroy(tsr_auth_verifier_t *v) {
    if (v == NULL) {
        return;
    }
    tsr_crypto_jwt_keyset_destroy(v->ks);
    json_decref(v->kids);
    json_decref(v->seen);
    pthread_mutex_destroy(&v->mu);
    pthread_mutex_destroy(&v->fetch_mu);
    free(v->url);
    free(v->iss);
    free(v->aud);
    free(v);
}

unsigned tsr_auth_verifier_fetches(tsr_auth_verifier_t *v) {
    return atomic_load(&v->fetches);
}

void tsr_auth_principal_cleanup(tsr_auth_principal_t *p) {
    if (p != NULL) {
        free(p->groups);
        p->groups = NULL;
    }
}

/* ---- the key set ------------------------------------------------------------------------------
 */

/* Fetch and parse the JWKS into a fresh set; swap it in. Caller holds fetch_mu. */
static tsr_err_t fetch(tsr_auth_verifier_t *v, tsr_error_t *err) {
    tsr_buf_t b;
    long status = 0;
    size_t added = 0;
    tsr_buf_init(&b, JWKS_MAX);
    atomic_fetch_add(&v->fetches, 1);
    const char *const hdrs[] = {"Accept: application/json", NULL};
    tsr_err_t rc = tsr_auth__http("GET", v->url, hdrs, NULL, v->timeout_ms, &status, &b, err);
    if (rc == TSR_OK && status != 200) {
        rc = tsr_error_set(err, TSR_EUNAVAILABLE, "JWKS %s answered %ld", v->url, status);
    }
    tsr_jwt_keyset_t *ks = tsr_crypto_jwt_keyset_create();
    json_t *doc = NULL, *kids = json_object();
    if (rc == TSR_OK) {
        rc = tsr_crypto_jwt_keyset_jwks_parse(ks, b.data != NULL ? b.data : "", b.len, &added, err);
    }
    if (rc == TSR_OK) {
        /* The kids the set holds: the same document, the keys crypto kept (ES256 only). */
        doc = json_loadb(b.data, b.len, 0, NULL);
        size_t i;
        json_t *k;
        json_array_foreach(json_object_get(doc, "keys"), i, k) {
            const char *kid = json_string_value(json_object_get(k, "kid"));
            const char *kty = json_string_value(json_object_get(k, "kty"));
            if (kid != NULL && kty != NULL && strcmp(kty, "EC") == 0) {
                json_object_set_new(kids, kid, json_true());
            }
        }
    }
    pthread_mutex_lock(&v->mu);
    v->tried_ms = tsr_mono_ms();
    if (rc == TSR_OK) {
        tsr_jwt_keyset_t *old = v->ks;
        json_t *old_kids = v->kids;
        v->ks = ks;
        v->kids = kids;
        v->fetched_ms = v->tried_ms;
        ks = NULL;
        kids = old_kids;
        tsr_crypto_jwt_keyset_destroy(old);
    }
    pthread_mutex_unlock(&v->mu);
    if (rc != TSR_OK) {
        tsr_log_warn(NULL, "auth: JWKS fetch failed: %s", err != NULL ? err->msg : "");
    }
    json_decref(doc);
    json_decref(kids);
    tsr_crypto_jwt_keyset_destroy(ks);
    tsr_buf_cleanup(&b);
    return rc;
}

typedef enum { FRESH, STALE, UNKNOWN_KID } need_t;

/* Under mu: what the current set lacks for kid. */
static need_t need_of(tsr_auth_verifier_t *v, const char *kid, uint64_t now) {
    if (v->ks == NULL || json_object_get(v->kids, kid) == NULL) {
        return UNKNOWN_KID;
    }
    return now - v->fetched_ms > v->max_age_ms ? STALE : FRESH;
}

/* A reference to a key set that should hold kid, fetching first when needed and allowed.
 * *ks may be NULL (never fetched successfully). */
static void keys_for(tsr_auth_verifier_t *v, const char *kid, tsr_jwt_keyset_t **ks) {
    pthread_mutex_lock(&v->mu);
    need_t need = need_of(v, kid, tsr_mono_ms());
    pthread_mutex_unlock(&v->mu);
    if (need != FRESH) {
        pthread_mutex_lock(&v->fetch_mu);
        /* Another thread may have fetched while we waited; and unknown kids only once per
         * refetch_ms (a stale set is refreshed whatever the kid). */
        pthread_mutex_lock(&v->mu);
        uint64_t now = tsr_mono_ms();
        need = need_of(v, kid, now);
        bool allowed = need == STALE || v->tried_ms == 0 || now - v->tried_ms >= v->refetch_ms;
        pthread_mutex_unlock(&v->mu);
        if (need != FRESH && allowed) {
            tsr_error_t ferr = {0};
            (void)fetch(v, &ferr);
        }
        pthread_mutex_unlock(&v->fetch_mu);
    }
    pthread_mutex_lock(&v->mu);
    *ks = v->ks != NULL ? tsr_crypto_jwt_keyset_ref(v->ks) : NULL;
    pthread_mutex_unlock(&v->mu);
}

/* ---- claims ------------------------------------------------------------------------------------
 */

/* The kid of a compact JWS's header ([A-Za-z0-9._-], 1..128), else false. */
static bool header_kid(const char *jwt, char kid[129]) {
    const char *dot = strchr(jwt, '.');
    bool ok = false;
    if (dot == NULL) {
        return false;
    }
    tsr_buf_t b;
    tsr_buf_init(&b, TSR_CRYPTO_JWT_MAX_DEFAULT);
    if (tsr_crypto_b64url_decode(jwt, (size_t)(dot - jwt), &b, NULL) == TSR_OK && b.len > 0) {
        json_t *h = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, NULL);
        const char *k = json_string_value(json_object_get(h, "kid"));
        size_t n = k != NULL ? strlen(k) : 0;
        if (n > 0 && n <= 128 &&
            strspn(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n) {
            memcpy(kid, k, n + 1);
            ok = true;
        }
        json_decref(h);
    }
    tsr_buf_cleanup(&b);
    return ok;
}

/* An array of ids joined with commas into out (max entries). */
static tsr_err_t join_ids(json_t *arr, size_t max, const char *what, tsr_buf_t *out,
                          tsr_error_t *err) {
    if (!json_is_array(arr) || json_array_size(arr) > max) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "the token's %s claim is malformed", what);
    }
    size_t i;
    json_t *x;
    json_array_foreach(arr, i, x) {
        const char *s = json_string_value(x);
        if (!tsr_auth__id_ok(s)) {
            return tsr_error_set(err, TSR_EUNAUTHENTICATED, "the token's %s claim is malformed",
                                 what);
        }
        if (tsr_buf_appendf(out, "%s%s", out->len > 0 ? "," : "", s) != TSR_OK) {
            return tsr_error_set(err, TSR_EUNAUTHENTICATED, "the token's %s claim is too large",
                                 what);
        }
    }
    return TSR_OK;
}

static tsr_err_t principal_of(json_t *c, tsr_auth_principal_t *p, tsr_error_t *err) {
    const char *tid = json_string_value(json_object_get(c, "tid"));
    const char *sub = json_string_value(json_object_get(c, "sub"));
    json_t *amr = json_object_get(c, "amr");
    json_t *roles = json_object_get(c, "roles"), *groups = json_object_get(c, "groups");
    tsr_buf_t b;
    tsr_err_t rc = TSR_OK;
    if (!tsr_auth__id_ok(tid) || !tsr_auth__id_ok(sub) ||
        !json_is_integer(json_object_get(c, "nbf")) ||
        !json_is_integer(json_object_get(c, "iat"))) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "the token lacks tid, sub, nbf or iat");
    }
    memcpy(p->tenant_id, tid, strlen(tid) + 1);
    memcpy(p->user_id, sub, strlen(sub) + 1);
    p->expires_s = (int64_t)json_integer_value(json_object_get(c, "exp"));
    /* amr: identity's string, or RFC 8176's array of strings (its first). */
    const char *at =
        json_is_array(amr) ? json_string_value(json_array_get(amr, 0)) : json_string_value(amr);
    at = at != NULL ? at : "jwt";
    if (!tsr_auth__id_ok(at) || strlen(at) >= sizeof p->auth_type) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "the token's amr claim is malformed");
    }
    memcpy(p->auth_type, at, strlen(at) + 1);
    tsr_buf_init(&b, sizeof p->roles - 1);
    if (roles != NULL) {
        rc = join_ids(roles, TSR_AUTH_ROLES_MAX, "roles", &b, err);
    }
    if (rc == TSR_OK) {
        const char *r = b.len > 0 ? b.data : "User";
        memcpy(p->roles, r, strlen(r) + 1);
    }
    tsr_buf_cleanup(&b);
    if (rc == TSR_OK && groups != NULL) {
        tsr_buf_init(&b, TSR_AUTH_GROUPS_MAX * (TSR_AUTH_ID_MAX + 1));
        rc = join_ids(groups, TSR_AUTH_GROUPS_MAX, "groups", &b, err);
        if (rc == TSR_OK) {
            free(p->groups);
            p->groups = b.len > 0 ? tsr_buf_take(&b, NULL) : tsr_xstrdup("");
            p->has_groups = true;
        }
        tsr_buf_cleanup(&b);
    }
    return rc;
}

/* ---- verified tokens --------------------------------------------------------------------------
 */

static void token_hash(const char *token, size_t len, char hex[65]) {
    uint8_t d[32];
    tsr_crypto_sha256(token, len, d);
    tsr_hex_encode(d, sizeof d, hex);
    hex[64] = '\0';
}

static void copy_str(char *dst, size_t n, const char *src) {
    snprintf(dst, n, "%s", src != NULL ? src : "");
}

/* The principal of a token that verified before and is still good; false otherwise. */
static bool seen_get(tsr_auth_verifier_t *v, const char *hash, tsr_auth_principal_t *p) {
    bool hit = false;
    pthread_mutex_lock(&v->mu);
    json_t *e = json_object_get(v->seen, hash);
    if (e != NULL && (uint64_t)json_integer_value(json_object_get(e, "x")) > tsr_mono_ms() &&
        (int64_t)json_integer_value(json_object_get(e, "e")) + v->leeway_s > tsr_wall_ms() / 1000) {
        copy_str(p->tenant_id, sizeof p->tenant_id, json_string_value(json_object_get(e, "t")));
        copy_str(p->user_id, sizeof p->user_id, json_string_value(json_object_get(e, "u")));
        copy_str(p->roles, sizeof p->roles, json_string_value(json_object_get(e, "r")));
        copy_str(p->auth_type, sizeof p->auth_type, json_string_value(json_object_get(e, "a")));
        p->groups = tsr_xstrdup(json_string_value(json_object_get(e, "g")));
        p->has_groups = json_is_true(json_object_get(e, "h"));
        p->expires_s = (int64_t)json_integer_value(json_object_get(e, "e"));
        hit = true;
    }
    pthread_mutex_unlock(&v->mu);
    return hit;
}

static void seen_put(tsr_auth_verifier_t *v, const char *hash, const tsr_auth_principal_t *p) {
    int64_t left_ms = (p->expires_s + v->leeway_s) * 1000 - tsr_wall_ms();
    uint64_t keep_ms = left_ms < (int64_t)v->max_age_ms ? (uint64_t)left_ms : v->max_age_ms;
    if (left_ms <= 0) {
        return;
    }
    json_t *e = json_pack("{ss ss ss ss ss sb sI sI}", "t", p->tenant_id, "u", p->user_id, "r",
                          p->roles, "a", p->auth_type, "g", p->groups, "h", p->has_groups, "e",
                          (json_int_t)p->expires_s, "x", (json_int_t)(tsr_mono_ms() + keep_ms));
    pthread_mutex_lock(&v->mu);
    if (json_object_size(v->seen) >= SEEN_MAX) {
        json_object_clear(v->seen);
    }
    json_object_set_new(v->seen, hash, e);
    pthread_mutex_unlock(&v->mu);
}

tsr_err_t tsr_auth_verify(tsr_auth_verifier_t *v, const char *token, tsr_auth_principal_t *p,
                          tsr_error_t *err) {
    char kid[129], hash[65];
    json_t *claims = NULL;
    tsr_jwt_keyset_t *ks = NULL;
    tsr_error_t inner = {0};
    tsr_err_t rc;
    memset(p, 0, sizeof *p);
    if (token == NULL || token[0] == '\0') {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "authentication required");
    }
    size_t len = strlen(token);
    if (len > TSR_CRYPTO_JWT_MAX_DEFAULT || !header_kid(token, kid)) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "the platform token is not valid");
    }
    token_hash(token, len, hash);
    if (seen_get(v, hash, p)) {
        return TSR_OK;
    }
    keys_for(v, kid, &ks);
    if (ks == NULL) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED,
                             "the platform token cannot be checked: the signing keys are not "
                             "available");
    }
    tsr_jwt_verify_opts_t vo = {.issuer = v->iss,
                                .audience = v->aud,
                                .typ = TSR_AUTH_TYP,
                                .skew_s = v->leeway_s,
                                .algs = TSR_JWT_ALG_ES256,
                                .require_exp = true};
    rc = tsr_crypto_jwt_verify(ks, token, len, &vo, &claims, &inner);
    tsr_crypto_jwt_keyset_destroy(ks);
    if (rc != TSR_OK) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "the platform token is not valid: %s",
                             inner.msg);
    }
    p->groups = tsr_xstrdup("");
    rc = principal_of(claims, p, err);
    json_decref(claims);
    if (rc == TSR_OK) {
        seen_put(v, hash, p);
    }
    return rc;
}
