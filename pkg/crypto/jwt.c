/*
 * pkg/crypto JWTs: ES256 keys (generate, PEM load/save) and compact JWS sign/verify. Verify
 * follows RFC 8725: size cap before decoding, alg allow-list bound to the key's own alg,
 * keys only from the caller's set (jku/x5u/jwk ignored), no crit, signature before claims,
 * integer-only time claims with a small skew. ES256 signatures are raw r||s (64 bytes) on
 * the wire and DER inside OpenSSL.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "crypto_int.h"

#define KID_MAX 128

bool tsr_crypto__kid_is_valid(const char *kid) {
    size_t n = kid != NULL ? strlen(kid) : 0;
    if (n == 0 || n > KID_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = kid[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

static bool is_p256(EVP_PKEY *pkey) {
    char group[64];
    size_t glen = 0;
    return EVP_PKEY_is_a(pkey, "EC") &&
           EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                          &glen) == 1 &&
           strcmp(group, "prime256v1") == 0;
}

/* The one JWS alg a key may be used with, or 0 for a key we refuse (other curves, RSA keys
 * under 2048 bits). */
static tsr_jwt_alg_t alg_of(EVP_PKEY *pkey) {
    if (is_p256(pkey)) {
        return TSR_JWT_ALG_ES256;
    }
    if (EVP_PKEY_is_a(pkey, "RSA") && EVP_PKEY_get_bits(pkey) >= 2048) {
        return TSR_JWT_ALG_RS256;
    }
    return 0;
}

static const char *alg_name(tsr_jwt_alg_t alg) {
    return alg == TSR_JWT_ALG_RS256 ? "RS256" : "ES256";
}

static tsr_jwt_key_t *key_new(EVP_PKEY *pkey, const char *kid, tsr_jwt_alg_t alg,
                              bool has_private) {
    tsr_jwt_key_t *k = tsr_xcalloc(1, sizeof(*k));
    k->pkey = pkey;
    k->kid = tsr_xstrdup(kid);
    k->alg = alg;
    k->has_private = has_private;
    return k;
}

tsr_err_t tsr_crypto_jwt_key_generate(const char *kid, tsr_jwt_alg_t alg, tsr_jwt_key_t **out,
                                      tsr_error_t *err) {
    *out = NULL;
    if (!tsr_crypto__kid_is_valid(kid)) {
        return tsr_error_set(err, TSR_EINVAL, "jwt key: kid must be 1..128 of [A-Za-z0-9._-]");
    }
    EVP_PKEY *pkey = NULL;
    if (alg == TSR_JWT_ALG_ES256) {
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    } else if (alg == TSR_JWT_ALG_RS256) {
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    } else {
        return tsr_error_set(err, TSR_EINVAL, "jwt key: alg must be ES256 or RS256");
    }
    if (pkey == NULL) {
        return tsr_error_set(err, TSR_EINTERNAL, "jwt key: %s key generation failed",
                             alg_name(alg));
    }
    *out = key_new(pkey, kid, alg, true);
    return TSR_OK;
}

#define PEM_MAX (16u * 1024u) /* an RSA-4096 PKCS#8 PEM is about 3.3 KiB */

tsr_err_t tsr_crypto_jwt_key_parse(const char *pem, size_t n, const char *kid, tsr_jwt_key_t **out,
                                   tsr_error_t *err) {
    *out = NULL;
    if (!tsr_crypto__kid_is_valid(kid)) {
        return tsr_error_set(err, TSR_EINVAL, "jwt key: kid must be 1..128 of [A-Za-z0-9._-]");
    }
    if (n > PEM_MAX) {
        return tsr_error_set(err, TSR_ETOOBIG, "jwt key: PEM over %u bytes", PEM_MAX);
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)n);
    if (bio == NULL) {
        return tsr_error_set(err, TSR_EINTERNAL, "jwt key: out of memory");
    }
    /* No passphrase callback: an encrypted PEM must fail, not prompt on a terminal. */
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
    BIO_free(bio);
    tsr_jwt_alg_t alg = pkey != NULL ? alg_of(pkey) : 0;
    if (alg == 0) {
        EVP_PKEY_free(pkey);
        return tsr_error_set(err, TSR_EINVAL,
                             "jwt key: not a PEM P-256 or RSA (>= 2048 bits) private key");
    }
    *out = key_new(pkey, kid, alg, true);
    return TSR_OK;
}

tsr_err_t tsr_crypto_jwt_key_format(const tsr_jwt_key_t *k, char **pem, tsr_error_t *err) {
    char *data = NULL;
    *pem = NULL;
    if (!k->has_private) {
        return tsr_error_set(err, TSR_EINVAL, "jwt key: no private key");
    }
    BIO *mem = BIO_new(BIO_s_mem());
    if (mem == NULL || PEM_write_bio_PrivateKey(mem, k->pkey, NULL, NULL, 0, NULL, NULL) != 1) {
        BIO_free(mem);
        return tsr_error_set(err, TSR_EINTERNAL, "jwt key: PEM encoding failed");
    }
    long len = BIO_get_mem_data(mem, &data);
    if (len > 0) {
        *pem = tsr_xstrndup(data, (size_t)len);
        tsr_crypto_cleanse(data, (size_t)len);
    }
    BIO_free(mem);
    if (*pem == NULL) {
        return tsr_error_set(err, TSR_EINTERNAL, "jwt key: PEM encoding failed");
    }
    return TSR_OK;
}

tsr_err_t tsr_crypto_jwt_key_load(const char *path, const char *kid, tsr_jwt_key_t **out,
                                  tsr_error_t *err) {
    char buf[PEM_MAX + 1];
    size_t n = 0;
    tsr_err_t rc;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return tsr_error_set(err, TSR_EIO, "jwt key %s: %s", path, strerror(errno));
    }
    while (n < sizeof(buf)) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        n += (size_t)r;
    }
    close(fd);
    rc = tsr_crypto_jwt_key_parse(buf, n, kid, out, err);
    tsr_crypto_cleanse(buf, n);
    return rc;
}

tsr_err_t tsr_crypto_jwt_key_save(const tsr_jwt_key_t *k, const char *path, tsr_error_t *err) {
    char tmp[4096];
    char *pem = NULL;
    int w = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (w < 0 || (size_t)w >= sizeof(tmp)) {
        return tsr_error_set(err, TSR_EINVAL, "jwt key: path too long");
    }
    tsr_err_t rc = tsr_crypto_jwt_key_format(k, &pem, err);
    if (rc != TSR_OK) {
        return rc;
    }
    size_t len = strlen(pem);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = tsr_error_set(err, TSR_EIO, "jwt key %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (write(fd, pem, len) != (ssize_t)len || fsync(fd) != 0) {
        rc = tsr_error_set(err, TSR_EIO, "jwt key %s: write: %s", tmp, strerror(errno));
    }
    close(fd);
    if (rc == TSR_OK && rename(tmp, path) != 0) {
        rc = tsr_error_set(err, TSR_EIO, "jwt key %s: rename: %s", path, strerror(errno));
    }
    if (rc != TSR_OK) {
        unlink(tmp);
    }
out:
    tsr_crypto_cleanse(pem, len);
    free(pem);
    return rc;
}

const char *tsr_crypto_jwt_key_kid(const tsr_jwt_key_t *k) {
    return k->kid;
}

tsr_jwt_alg_t tsr_crypto_jwt_key_alg(const tsr_jwt_key_t *k) {
    return k->alg;
}

void tsr_crypto_jwt_key_destroy(tsr_jwt_key_t *k) {
    if (k == NULL) {
        return;
    }
    EVP_PKEY_free(k->pkey);
    free(k->kid);
    free(k);
}

/* ---- sign ---------------------------------------------------------------------------------- */

/* Sign data with k under its alg: ES256 as raw r||s (64 bytes, RFC 7518 §3.4), RS256 as
 * PKCS#1 v1.5 (key size bytes). Appends the base64url signature to out. */
static tsr_err_t jws_sig(const tsr_jwt_key_t *k, const char *data, size_t n, tsr_buf_t *out,
                         tsr_error_t *err) {
    tsr_err_t rc = TSR_EINTERNAL;
    uint8_t der[1024];
    uint8_t raw[64];
    size_t derlen = sizeof(der);
    ECDSA_SIG *s = NULL;
    const BIGNUM *r = NULL, *sv = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k->pkey) != 1 ||
        EVP_DigestSign(md, der, &derlen, (const unsigned char *)data, n) != 1) {
        goto out;
    }
    if (k->alg == TSR_JWT_ALG_RS256) {
        rc = tsr_crypto_b64url_encode(der, derlen, out);
        goto out;
    }
    const unsigned char *p = der;
    s = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
    if (s == NULL) {
        goto out;
    }
    ECDSA_SIG_get0(s, &r, &sv);
    if (BN_bn2binpad(r, raw, 32) != 32 || BN_bn2binpad(sv, raw + 32, 32) != 32) {
        goto out;
    }
    rc = tsr_crypto_b64url_encode(raw, sizeof(raw), out);
out:
    ECDSA_SIG_free(s);
    EVP_MD_CTX_free(md);
    if (rc != TSR_OK) {
        tsr_error_set(err, rc, "jwt: %s signing failed", alg_name(k->alg));
    }
    return rc;
}

/* header "." payload "." signature, each part base64url of the given bytes. */
static tsr_err_t jws_compact(const tsr_jwt_key_t *k, const char *header, const char *payload,
                             char **token, tsr_error_t *err) {
    tsr_buf_t b;
    tsr_buf_init(&b, 0);
    tsr_err_t rc = tsr_crypto_b64url_encode(header, strlen(header), &b);
    if (rc == TSR_OK) {
        rc = tsr_buf_append(&b, ".", 1);
    }
    if (rc == TSR_OK) {
        rc = tsr_crypto_b64url_encode(payload, strlen(payload), &b);
    }
    size_t signed_len = b.len;
    if (rc == TSR_OK) {
        rc = tsr_buf_append(&b, ".", 1);
    }
    if (rc == TSR_OK) {
        rc = jws_sig(k, b.data, signed_len, &b, err);
    }
    if (rc == TSR_OK) {
        *token = tsr_buf_take(&b, NULL);
    }
    tsr_buf_cleanup(&b);
    return rc;
}

tsr_err_t tsr_crypto_jwt_sign(const tsr_jwt_keyset_t *ks, const char *typ, const json_t *claims,
                              char **token, tsr_error_t *err) {
    tsr_err_t rc;
    *token = NULL;
    const tsr_jwt_key_t *k = tsr_crypto__keyset_signing(ks);
    if (k == NULL) {
        return tsr_error_set(err, TSR_ENOTFOUND, "jwt: no signing key");
    }
    if (!json_is_object(claims)) {
        return tsr_error_set(err, TSR_EINVAL, "jwt: claims must be a JSON object");
    }
    json_t *h = json_pack("{s:s, s:s, s:s}", "alg", alg_name(k->alg), "typ",
                          typ != NULL ? typ : "JWT", "kid", k->kid);
    char *hdr = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    char *body = json_dumps(claims, JSON_COMPACT);
    if (hdr == NULL || body == NULL) {
        rc = tsr_error_set(err, TSR_EINTERNAL, "jwt: cannot serialize");
    } else {
        rc = jws_compact(k, hdr, body, token, err);
    }
    free(hdr);
    free(body);
    return rc;
}

tsr_err_t tsr_crypto__jws_sign_raw(const tsr_jwt_key_t *k, const char *header, const char *payload,
                                   char **token, tsr_error_t *err) {
    *token = NULL;
    if (!k->has_private) {
        return tsr_error_set(err, TSR_EINVAL, "jws: needs a private key");
    }
    return jws_compact(k, header, payload, token, err);
}

/* ---- verify -------------------------------------------------------------------------------- */

static bool sig_verify(const tsr_jwt_key_t *k, const char *data, size_t n, const uint8_t *sig,
                       size_t siglen) {
    bool ok = false;
    uint8_t der[128];
    uint8_t *dp = der;
    const uint8_t *vsig = sig;
    size_t vlen = siglen;
    ECDSA_SIG *s = NULL;
    BIGNUM *r = NULL, *sv = NULL;
    EVP_MD_CTX *md = NULL;
    if (k->alg == TSR_JWT_ALG_ES256) {
        if (siglen != 64) {
            return false;
        }
        s = ECDSA_SIG_new();
        r = BN_bin2bn(sig, 32, NULL);
        sv = BN_bin2bn(sig + 32, 32, NULL);
        if (s == NULL || r == NULL || sv == NULL || ECDSA_SIG_set0(s, r, sv) != 1) {
            BN_free(r);
            BN_free(sv);
            goto out;
        }
        int dl = i2d_ECDSA_SIG(s, NULL);
        if (dl <= 0 || (size_t)dl > sizeof(der) || i2d_ECDSA_SIG(s, &dp) != dl) {
            goto out;
        }
        vsig = der;
        vlen = (size_t)dl;
    } else if (siglen != (size_t)EVP_PKEY_get_size(k->pkey)) {
        return false;
    }
    md = EVP_MD_CTX_new();
    ok = md != NULL && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
         EVP_DigestVerify(md, vsig, vlen, (const unsigned char *)data, n) == 1;
out:
    EVP_MD_CTX_free(md);
    ECDSA_SIG_free(s);
    return ok;
}

static tsr_err_t decode_json(const char *p, size_t n, const char *what, json_t **out,
                             tsr_error_t *err) {
    tsr_buf_t b;
    json_error_t je;
    tsr_buf_init(&b, TSR_CRYPTO_JWT_MAX_DEFAULT * 8);
    tsr_err_t rc = tsr_crypto_b64url_decode(p, n, &b, NULL);
    if (rc != TSR_OK) {
        tsr_buf_cleanup(&b);
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "jwt: %s is not base64url", what);
    }
    /* Duplicate keys would let two parsers see two different tokens (RFC 8725). */
    *out = json_loadb(b.data != NULL ? b.data : "", b.len, JSON_REJECT_DUPLICATES, &je);
    tsr_buf_cleanup(&b);
    if (*out == NULL || !json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return tsr_error_set(err, TSR_EUNAUTHENTICATED,
                             "jwt: %s is not a JSON object (or has "
                             "duplicate keys)",
                             what);
    }
    return TSR_OK;
}

/* A NumericDate claim: absent (false), or an integer; anything else is an error. */
static tsr_err_t time_claim(const json_t *claims, const char *name, bool *present, int64_t *v,
                            tsr_error_t *err) {
    json_t *j = json_object_get(claims, name);
    *present = j != NULL;
    if (j == NULL) {
        return TSR_OK;
    }
    if (!json_is_integer(j)) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "jwt: %s must be an integer", name);
    }
    *v = (int64_t)json_integer_value(j);
    return TSR_OK;
}

static tsr_err_t check_claims(const json_t *c, const tsr_jwt_verify_opts_t *o, int64_t now,
                              int64_t skew, tsr_error_t *err) {
    bool has = false;
    int64_t t = 0;
    tsr_err_t rc = time_claim(c, "exp", &has, &t, err);
    if (rc != TSR_OK) {
        return rc;
    }
    if (!has && o->require_exp) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "jwt: exp missing");
    }
    if (has && now - skew >= t) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "jwt: expired");
    }
    rc = time_claim(c, "nbf", &has, &t, err);
    if (rc != TSR_OK) {
        return rc;
    }
    if (has && now + skew < t) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "jwt: not yet valid (nbf)");
    }
    rc = time_claim(c, "iat", &has, &t, err);
    if (rc != TSR_OK) {
        return rc;
    }
    if (has && now + skew < t) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "jwt: issued in the future (iat)");
    }
    if (o->issuer != NULL) {
        json_t *iss = json_object_get(c, "iss");
        if (!json_is_string(iss) || strcmp(json_string_value(iss), o->issuer) != 0) {
            return tsr_error_set(err, TSR_EUNAUTHENTICATED, "jwt: wrong issuer");
        }
    }
    if (o->audience != NULL) {
        json_t *aud = json_object_get(c, "aud");
        bool ok = json_is_string(aud) && strcmp(json_string_value(aud), o->audience) == 0;
        if (json_is_array(aud)) {
            size_t i;
            json_t *a;
            json_array_foreach(aud, i, a) {
                if (json_is_string(a) && strcmp(json_string_value(a), o->audience) == 0) {
                    ok = true;
                }
            }
        }
        if (!ok) {
            return tsr_error_set(err, TSR_EUNAUTHENTICATED, "jwt: wrong audience");
        }
    }
    return TSR_OK;
}

tsr_err_t tsr_crypto_jwt_verify(const tsr_jwt_keyset_t *ks, const char *token, size_t len,
                                const tsr_jwt_verify_opts_t *opts, json_t **claims,
                                tsr_error_t *err) {
    static const tsr_jwt_verify_opts_t defaults = {0};
    const tsr_jwt_verify_opts_t *o = opts != NULL ? opts : &defaults;
    size_t max = o->max_len ? o->max_len : TSR_CRYPTO_JWT_MAX_DEFAULT;
    unsigned algs = o->algs ? o->algs : (unsigned)TSR_JWT_ALG_ES256;
    int64_t now = o->now_s ? o->now_s : tsr_wall_ms() / 1000;
    int64_t skew = o->skew_s ? (int64_t)o->skew_s : 60;
    json_t *hdr = NULL, *body = NULL;
    tsr_buf_t sig;
    tsr_err_t rc;
    tsr_jwt_alg_t alg;
    *claims = NULL;
    tsr_buf_init(&sig, 1024);
    if (len > max) {
        rc = tsr_error_set(err, TSR_ETOOBIG, "jwt: token of %zu bytes over the %zu cap", len, max);
        goto out;
    }
    const char *d1 = token != NULL ? memchr(token, '.', len) : NULL;
    const char *d2 = d1 != NULL ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (d2 == NULL || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)) != NULL) {
        rc = tsr_error_set(err, TSR_EUNAUTHENTICATED, "jwt: not three dot-separated parts");
        goto out;
    }
    rc = decode_json(token, (size_t)(d1 - token), "header", &hdr, err);
    if (rc != TSR_OK) {
        goto out;
    }
    const char *a = json_string_value(json_object_get(hdr, "alg"));
    if (a != NULL && strcmp(a, "ES256") == 0) {
        alg = TSR_JWT_ALG_ES256;
    } else if (a != NULL && strcmp(a, "RS256") == 0) {
        alg = TSR_JWT_ALG_RS256;
    } else {
        rc = tsr_error_set(err, TSR_EUNAUTHENTICATED, "jwt: alg %.32s not allowed",
                           a != NULL ? a : "(missing)");
        goto out;
    }
    if ((algs & (unsigned)alg) == 0) {
        rc = tsr_error_set(err, TSR_EUNAUTHENTICATED, "jwt: alg %s not allowed", a);
        goto out;
    }
    if (json_object_get(hdr, "crit") != NULL) {
        rc = tsr_error_set(err, TSR_EUNAUTHENTICATED, "jwt: crit extensions not supported");
        goto out;
    }
    if (o->typ != NULL) {
        const char *typ = json_string_value(json_object_get(hdr, "typ"));
        if (typ == NULL || !tsr_str_case_eq_cstr(tsr_str(typ), o->typ)) {
            rc = tsr_error_set(err, TSR_EUNAUTHENTICATED, "jwt: wrong typ");
            goto out;
        }
    }
    json_t *jkid = json_object_get(hdr, "kid");
    if (jkid != NULL && !json_is_string(jkid)) {
        rc = tsr_error_set(err, TSR_EUNAUTHENTICATED, "jwt: kid must be a string");
        goto out;
    }
    if (jkid == NULL && !o->allow_no_kid) {
        rc = tsr_error_set(err, TSR_EUNAUTHENTICATED, "jwt: kid missing");
        goto out;
    }
    const tsr_jwt_key_t *k = tsr_crypto__keyset_find(ks, json_string_value(jkid));
    if (k == NULL) {
        rc = tsr_error_set(err, TSR_EUNAUTHENTICATED, "jwt: unknown kid");
        goto out;
    }
    /* Key/alg binding: an RSA or EC public key is never used under another alg. */
    if (k->alg != alg) {
        rc = tsr_error_set(err, TSR_EUNAUTHENTICATED, "jwt: alg does not match the key");
        goto out;
    }
    if (tsr_crypto_b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - token), &sig, NULL) != TSR_OK) {
        rc = tsr_error_set(err, TSR_EUNAUTHENTICATED, "jwt: signature is not base64url");
        goto out;
    }
    if (!sig_verify(k, token, (size_t)(d2 - token), (const uint8_t *)sig.data, sig.len)) {
        rc = tsr_error_set(err, TSR_EUNAUTHENTICATED, "jwt: bad signature");
        goto out;
    }
    rc = decode_json(d1 + 1, (size_t)(d2 - d1 - 1), "payload", &body, err);
    if (rc == TSR_OK) {
        rc = check_claims(body, o, now, skew, err);
    }
    if (rc == TSR_OK) {
        *claims = body;
        body = NULL;
    }
out:
    json_decref(hdr);
    json_decref(body);
    tsr_buf_cleanup(&sig);
    return rc;
}
