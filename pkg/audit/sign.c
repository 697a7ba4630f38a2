/*
 * pkg/audit checkpoint signatures: the platform's ES256 key (P-256, PEM file, created 0600 on
 * first use; two replicas racing to create it agree through link()), JWS compact signing and
 * verification with raw r||s signatures (RFC 7518 §3.4) so any JOSE library can check a
 * checkpoint. Layer: service internals over OpenSSL 3 EVP.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "audit_int.h"

#define JWS_MAX (64 * 1024) /* longest checkpoint JWS accepted, bytes */

char *tsr_audit__canonical(const json_t *v) {
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII | JSON_ENCODE_ANY);
    if (s == NULL) {
        fprintf(stderr, "audit: cannot serialise a record\n");
        abort();
    }
    return s;
}

/* ---- base64url ----------------------------------------------------------------------------- */

static const char B64U[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void tsr_audit__b64u_encode(tsr_buf_t *out, const unsigned char *p, size_t n) {
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        char c[4] = {B64U[v >> 18], B64U[(v >> 12) & 63], B64U[(v >> 6) & 63], B64U[v & 63]};
        tsr_buf_append(out, c, 4);
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        char c[2] = {B64U[v >> 18], B64U[(v >> 12) & 63]};
        tsr_buf_append(out, c, 2);
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        char c[3] = {B64U[v >> 18], B64U[(v >> 12) & 63], B64U[(v >> 6) & 63]};
        tsr_buf_append(out, c, 3);
    }
}

static int b64u_val(char c) {
    const char *p = c != '\0' ? strchr(B64U, c) : NULL;
    return p != NULL ? (int)(p - B64U) : -1;
}

/* Decode n chars into out (cap bytes); false on a bad character or length. */
bool tsr_audit__b64u_decode(const char *s, size_t n, unsigned char *out, size_t cap, size_t *len) {
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    if (n % 4 == 1) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        int v = b64u_val(s[i]);
        if (v < 0) {
            return false;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap) {
                return false;
            }
            out[o++] = (unsigned char)((acc >> bits) & 0xff);
        }
    }
    *len = o;
    return true;
}

/* ---- the key ------------------------------------------------------------------------------- */

/* kid (16 hex of SHA-256 of the public key DER) and the public key as a JWK, so that anyone
 * can check a checkpoint with a JOSE library. *jwk returned-owned. */
static tsr_err_t key_describe(EVP_PKEY *key, char kid[17], json_t **jwk, tsr_error_t *err) {
    unsigned char *der = NULL, md[32], pub[65];
    unsigned int mdlen = 0;
    size_t publen = 0;
    char hex[65];
    int n = i2d_PUBKEY(key, &der);
    if (n <= 0 || EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL) != 1) {
        OPENSSL_free(der);
        return tsr_error_set(err, TSR_EINTERNAL, "audit: cannot encode the public key");
    }
    OPENSSL_free(der);
    tsr_hex_encode(md, 32, hex);
    memcpy(kid, hex, 16);
    kid[16] = '\0';
    if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub, &publen) !=
            1 ||
        publen != 65 || pub[0] != 0x04) {
        return tsr_error_set(err, TSR_EINTERNAL, "audit: cannot read the public key");
    }
    tsr_buf_t x, y;
    tsr_buf_init(&x, 0);
    tsr_buf_init(&y, 0);
    tsr_audit__b64u_encode(&x, pub + 1, 32);
    tsr_audit__b64u_encode(&y, pub + 33, 32);
    *jwk = json_pack("{ss ss ss ss ss ss}", "kty", "EC", "crv", "P-256", "alg", "ES256", "kid", kid,
                     "x", x.data, "y", y.data);
    tsr_buf_cleanup(&x);
    tsr_buf_cleanup(&y);
    return TSR_OK;
}

static bool is_p256(EVP_PKEY *k) {
    return EVP_PKEY_get_base_id(k) == EVP_PKEY_EC && EVP_PKEY_get_bits(k) == 256;
}

static EVP_PKEY *read_key(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return NULL;
    }
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    return k;
}

static tsr_err_t signing_key_load(tsr_audit_t *a, const char *path, tsr_error_t *err) {
    char tmp[4200];
    a->key = read_key(path);
    if (a->key == NULL && access(path, F_OK) == 0) {
        return tsr_error_set(err, TSR_EIO, "audit: %s is not a readable PEM private key", path);
    }
    if (a->key == NULL) {
        EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        if (k == NULL) {
            return tsr_error_set(err, TSR_EINTERNAL, "audit: cannot generate a P-256 key");
        }
        snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
        bool ok = f != NULL && PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1;
        if (f != NULL) {
            ok = fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
            fclose(f);
        } else if (fd >= 0) {
            close(fd);
        }
        EVP_PKEY_free(k);
        /* link() fails with EEXIST when another process created the key first: use theirs */
        if (!ok || (link(tmp, path) != 0 && errno != EEXIST)) {
            unlink(tmp);
            return tsr_error_set(err, TSR_EIO, "audit: cannot write the key file %s", path);
        }
        unlink(tmp);
        a->key = read_key(path);
        if (a->key == NULL) {
            return tsr_error_set(err, TSR_EIO, "audit: cannot read back %s", path);
        }
    }
    if (!is_p256(a->key)) {
        EVP_PKEY_free(a->key);
        a->key = NULL;
        return tsr_error_set(err, TSR_EINVAL, "audit: %s is not a P-256 key", path);
    }
    return key_describe(a->key, a->kid, &a->jwk, err);
}

tsr_err_t tsr_audit__key_load_or_create(tsr_audit_t *a, const char *spec, tsr_error_t *err) {
    tsr_str_t s = tsr_str(spec), tok;
    tsr_err_t rc = TSR_OK;
    a->jwks = json_array();
    for (size_t i = 0; rc == TSR_OK && tsr_str_next_tok(&s, ',', &tok); i++) {
        char *path = tsr_str_dup(tsr_str_trim(tok));
        if (i == 0) {
            rc = signing_key_load(a, path, err);
            if (rc == TSR_OK) {
                json_array_append(a->jwks, a->jwk);
            }
        } else if (a->n_old >= TSR_AUDIT__OLD_KEYS_MAX) {
            rc = tsr_error_set(err, TSR_EINVAL, "audit: at most %d verify-only keys",
                               TSR_AUDIT__OLD_KEYS_MAX);
        } else {
            /* verify-only keys (rotation): must exist, never created */
            EVP_PKEY *k = read_key(path);
            json_t *jwk = NULL;
            if (k == NULL || !is_p256(k)) {
                EVP_PKEY_free(k);
                rc = tsr_error_set(err, TSR_EIO, "audit: %s is not a readable P-256 PEM key", path);
            } else {
                a->old_keys[a->n_old] = k;
                rc = key_describe(k, a->old_kids[a->n_old], &jwk, err);
                a->n_old++;
                if (rc == TSR_OK) {
                    json_array_append_new(a->jwks, jwk);
                }
            }
        }
        free(path);
    }
    return rc;
}

/* ---- JWS ------------------------------------------------------------------------------------ */

tsr_err_t tsr_audit__sign(tsr_audit_t *a, const json_t *payload, char **out, tsr_error_t *err) {
    tsr_buf_t b;
    tsr_err_t rc = TSR_OK;
    EVP_MD_CTX *ctx = NULL;
    unsigned char *der = NULL;
    ECDSA_SIG *sig = NULL;
    char *pl = tsr_audit__canonical(payload);
    *out = NULL;
    tsr_buf_init(&b, 0);
    if (a->key == NULL) {
        tsr_buf_append_str(&b, "unsigned.");
        tsr_audit__b64u_encode(&b, (const unsigned char *)pl, strlen(pl));
        goto out;
    }
    json_t *hdr =
        json_pack("{ss ss ss}", "alg", "ES256", "kid", a->kid, "typ", "tessera-audit-checkpoint");
    char *h = tsr_audit__canonical(hdr);
    json_decref(hdr);
    tsr_audit__b64u_encode(&b, (const unsigned char *)h, strlen(h));
    free(h);
    tsr_buf_append_str(&b, ".");
    tsr_audit__b64u_encode(&b, (const unsigned char *)pl, strlen(pl));
    size_t dlen = 0;
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, a->key) != 1 ||
        EVP_DigestSign(ctx, NULL, &dlen, (const unsigned char *)b.data, b.len) != 1) {
        rc = tsr_error_set(err, TSR_EINTERNAL, "audit: signing failed");
        goto out;
    }
    der = tsr_xmalloc(dlen);
    if (EVP_DigestSign(ctx, der, &dlen, (const unsigned char *)b.data, b.len) != 1) {
        rc = tsr_error_set(err, TSR_EINTERNAL, "audit: signing failed");
        goto out;
    }
    const unsigned char *p = der;
    sig = d2i_ECDSA_SIG(NULL, &p, (long)dlen);
    unsigned char raw[64];
    if (sig == NULL || BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, 32) != 32 ||
        BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + 32, 32) != 32) {
        rc = tsr_error_set(err, TSR_EINTERNAL, "audit: bad signature encoding");
        goto out;
    }
    tsr_buf_append_str(&b, ".");
    tsr_audit__b64u_encode(&b, raw, sizeof raw);
out:
    ECDSA_SIG_free(sig);
    free(der);
    EVP_MD_CTX_free(ctx);
    free(pl);
    if (rc == TSR_OK) {
        *out = tsr_buf_take(&b, NULL);
    }
    tsr_buf_cleanup(&b);
    return rc;
}

static tsr_err_t decode_json(const char *s, size_t n, json_t **out, tsr_error_t *err) {
    unsigned char *buf = tsr_xmalloc(n + 1);
    size_t len = 0;
    tsr_err_t rc = TSR_OK;
    *out = NULL;
    if (!tsr_audit__b64u_decode(s, n, buf, n, &len) ||
        (*out = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, NULL)) == NULL ||
        !json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        rc = tsr_error_set(err, TSR_ECORRUPT, "checkpoint: malformed JWS part");
    }
    free(buf);
    return rc;
}

tsr_err_t tsr_audit__verify_sig(tsr_audit_t *a, const char *jws, json_t **payload,
                                tsr_error_t *err) {
    size_t n = jws != NULL ? strnlen(jws, JWS_MAX + 1) : 0;
    json_t *hdr = NULL;
    EVP_MD_CTX *ctx = NULL;
    ECDSA_SIG *sig = NULL;
    unsigned char *der = NULL;
    tsr_err_t rc = TSR_OK;
    *payload = NULL;
    if (n == 0 || n > JWS_MAX) {
        return tsr_error_set(err, TSR_ECORRUPT, "checkpoint: no signature");
    }
    const char *d1 = strchr(jws, '.');
    if (d1 == NULL) {
        return tsr_error_set(err, TSR_ECORRUPT, "checkpoint: malformed JWS");
    }
    if (strncmp(jws, "unsigned.", 9) == 0) {
        if (a->key != NULL) {
            return tsr_error_set(err, TSR_ECORRUPT, "checkpoint: unsigned but a key is set");
        }
        return decode_json(d1 + 1, strlen(d1 + 1), payload, err);
    }
    const char *d2 = strchr(d1 + 1, '.');
    if (d2 == NULL || a->key == NULL) {
        return tsr_error_set(err, TSR_ECORRUPT, "checkpoint: malformed JWS or no key to check");
    }
    if ((rc = decode_json(jws, (size_t)(d1 - jws), &hdr, err)) != TSR_OK) {
        goto out;
    }
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    const char *kid = json_string_value(json_object_get(hdr, "kid"));
    EVP_PKEY *vkey = NULL;
    if (kid != NULL && strcmp(kid, a->kid) == 0) {
        vkey = a->key;
    }
    for (size_t i = 0; kid != NULL && vkey == NULL && i < a->n_old; i++) {
        if (strcmp(kid, a->old_kids[i]) == 0) {
            vkey = a->old_keys[i];
        }
    }
    if (alg == NULL || strcmp(alg, "ES256") != 0 || vkey == NULL) {
        rc = tsr_error_set(err, TSR_ECORRUPT, "checkpoint: unknown algorithm or key id");
        goto out;
    }
    unsigned char raw[64];
    size_t rawlen = 0;
    if (!tsr_audit__b64u_decode(d2 + 1, strlen(d2 + 1), raw, sizeof raw, &rawlen) || rawlen != 64) {
        rc = tsr_error_set(err, TSR_ECORRUPT, "checkpoint: malformed signature");
        goto out;
    }
    sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, 32, NULL), *s = BN_bin2bn(raw + 32, 32, NULL);
    if (sig == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(sig, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        rc = tsr_error_set(err, TSR_EINTERNAL, "checkpoint: out of memory");
        goto out;
    }
    int dlen = i2d_ECDSA_SIG(sig, &der);
    ctx = EVP_MD_CTX_new();
    if (dlen <= 0 || ctx == NULL ||
        EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, vkey) != 1 ||
        EVP_DigestVerify(ctx, der, (size_t)dlen, (const unsigned char *)jws, (size_t)(d2 - jws)) !=
            1) {
        rc = tsr_error_set(err, TSR_ECORRUPT, "checkpoint: signature does not verify");
        goto out;
    }
    rc = decode_json(d1 + 1, (size_t)(d2 - d1 - 1), payload, err);
out:
    OPENSSL_free(der);
    ECDSA_SIG_free(sig);
    EVP_MD_CTX_free(ctx);
    json_decref(hdr);
    return rc;
}
