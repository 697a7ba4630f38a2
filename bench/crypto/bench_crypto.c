/*
 * bench_crypto: pkg/crypto throughput on one core.
 *   stream   seal/open MB/s of the streaming form (64 KiB segments, output discarded)
 *   oneshot  seal/open MB/s of tsr_crypto_seal/open on 1 MiB blobs
 *   openssl  `openssl speed [-decrypt] -evp aes-256-gcm -bytes 65536`, side by side:
 *            the ceiling our framing (AAD, per-segment nonce and tag, copies) is measured against
 *   jwt      ES256 sign/s and verify/s (with all claim checks), RS256 verify/s
 *   argon2   ms per password hash at the default cost (64 MiB, t=3, p=1)
 * MB = 10^6 bytes everywhere, time is CPU time (both as openssl speed); each figure is the
 * best of 3 runs of --mb (default 256) MB. Usage: bench_crypto [--mb N] [--no-openssl]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"

/* CPU seconds of this process, not wall time: openssl speed divides by CPU time too (unless
 * -elapsed), so both sides stay comparable when other work shares the machine. Everything
 * measured here runs on this one thread. */
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const tsr_error_t *err) {
    fprintf(stderr, "bench_crypto: %s: %s\n", what, err != NULL ? err->msg : "");
    exit(1);
}

static tsr_err_t discard_cb(void *ctx, const void *p, size_t n) {
    (void)p;
    *(size_t *)ctx += n;
    return TSR_OK;
}

typedef struct {
    uint8_t *p;
    size_t len, cap;
} sink_t;

static tsr_err_t keep_cb(void *ctx, const void *p, size_t n) {
    sink_t *s = ctx;
    if (s->len + n > s->cap) {
        return TSR_ETOOBIG;
    }
    memcpy(s->p + s->len, p, n);
    s->len += n;
    return TSR_OK;
}

/* openssl speed's AES-256-GCM figure for 64 KiB blocks in MB/s (decrypt: -decrypt), or -1. */
static double openssl_speed(bool decrypt) {
    FILE *f = popen(decrypt ? "openssl speed -decrypt -seconds 2 -bytes 65536 -evp aes-256-gcm "
                              "2>/dev/null"
                            : "openssl speed -seconds 2 -bytes 65536 -evp aes-256-gcm 2>/dev/null",
                    "r");
    char line[512];
    double mbs = -1;
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        double k = 0;
        /* "AES-256-GCM   4321098.76k": thousands of bytes per second. */
        if (strncmp(line, "AES-256-GCM", 11) == 0 || strncmp(line, "aes-256-gcm", 11) == 0) {
            char *last = strrchr(line, ' ');
            if (last != NULL && sscanf(last, " %lfk", &k) == 1) {
                mbs = k / 1000.0;
            }
        }
    }
    pclose(f);
    return mbs;
}

typedef struct {
    tsr_keyring_t *kr;
    tsr_seal_ad_t ad;
    const uint8_t *buf; /* chunk bytes of plaintext */
    size_t chunk;
    size_t total; /* bytes per measurement */
    sink_t ct;    /* a sealed stream of `sample` bytes, opened repeatedly */
    size_t sample;
    tsr_buf_t blob; /* one sealed chunk */
} bench_t;

/* Each returns MB/s of one run; main keeps the best of three, since a shared machine only
 * ever makes a run slower. */
static double run_stream_seal(bench_t *b) {
    tsr_error_t err;
    size_t out = 0;
    tsr_sealer_t *s = NULL;
    double t0 = now_s();
    if (tsr_crypto_sealer_create(b->kr, &b->ad, 0, discard_cb, &out, &s, &err) != TSR_OK) {
        die("sealer", &err);
    }
    for (size_t done = 0; done < b->total; done += b->chunk) {
        size_t k = b->total - done < b->chunk ? b->total - done : b->chunk;
        if (tsr_crypto_sealer_push(s, b->buf, k, &err) != TSR_OK) {
            die("seal", &err);
        }
    }
    if (tsr_crypto_sealer_finish(s, &err) != TSR_OK) {
        die("seal", &err);
    }
    double dt = now_s() - t0;
    tsr_crypto_sealer_destroy(s);
    return (double)b->total / dt / 1e6;
}

static double run_stream_open(bench_t *b) {
    tsr_error_t err;
    size_t out = 0;
    size_t rounds = b->total / b->sample > 0 ? b->total / b->sample : 1;
    double t0 = now_s();
    for (size_t r = 0; r < rounds; r++) {
        tsr_opener_t *o = NULL;
        if (tsr_crypto_opener_create(b->kr, &b->ad, discard_cb, &out, &o, &err) != TSR_OK ||
            tsr_crypto_opener_push(o, b->ct.p, b->ct.len, &err) != TSR_OK ||
            tsr_crypto_opener_finish(o, &err) != TSR_OK) {
            die("open", &err);
        }
        tsr_crypto_opener_destroy(o);
    }
    return (double)out / (now_s() - t0) / 1e6;
}

static double run_oneshot_seal(bench_t *b) {
    tsr_error_t err;
    size_t n = b->total / b->chunk > 0 ? b->total / b->chunk : 1;
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        tsr_buf_reset(&b->blob);
        if (tsr_crypto_seal(b->kr, &b->ad, b->buf, b->chunk, &b->blob, &err) != TSR_OK) {
            die("seal", &err);
        }
    }
    return (double)(n * b->chunk) / (now_s() - t0) / 1e6;
}

static double run_oneshot_open(bench_t *b) {
    tsr_error_t err;
    tsr_buf_t pt;
    tsr_buf_init(&pt, 0);
    size_t n = b->total / b->chunk > 0 ? b->total / b->chunk : 1;
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        tsr_buf_reset(&pt);
        if (tsr_crypto_open(b->kr, &b->ad, b->blob.data, b->blob.len, &pt, &err) != TSR_OK) {
            die("open", &err);
        }
    }
    double mbs = (double)(n * b->chunk) / (now_s() - t0) / 1e6;
    tsr_buf_cleanup(&pt);
    return mbs;
}

static double best_of_3(double (*run)(bench_t *), bench_t *b) {
    double best = 0;
    for (int i = 0; i < 3; i++) {
        double v = run(b);
        best = v > best ? v : best;
    }
    return best;
}

int main(int argc, char **argv) {
    size_t mb = 256;
    bool with_openssl = true;
    tsr_error_t err;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mb") == 0 && i + 1 < argc) {
            mb = (size_t)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--no-openssl") == 0) {
            with_openssl = false;
        } else {
            fprintf(stderr, "usage: bench_crypto [--mb N] [--no-openssl]\n");
            return 2;
        }
    }
    bench_t b = {.ad = {"t-bench", "datafile", "df-1", 1}, .chunk = 1 << 20, .total = mb * 1000000};
    uint8_t *buf = malloc(b.chunk);
    for (size_t i = 0; i < b.chunk; i++) {
        buf[i] = (uint8_t)(i * 131);
    }
    b.buf = buf;
    uint8_t rec[TSR_CRYPTO_DEK_RECORD_LEN];
    uint8_t kek[TSR_CRYPTO_KEY_LEN];
    tsr_crypto_random(kek, sizeof(kek), NULL);
    tsr_kek_set_t *ks = tsr_crypto_kek_set_create();
    b.kr = tsr_crypto_keyring_create("t-bench");
    if (tsr_crypto_kek_set_add(ks, kek, true, &err) != TSR_OK ||
        tsr_crypto_keyring_rotate(b.kr, ks, rec, NULL, &err) != TSR_OK) {
        die("keys", &err);
    }
    /* The opener reads a 2 MB sealed stream over and over: cache-resident like openssl
     * speed's buffer, so both sides measure the cipher and our framing rather than DRAM. */
    b.sample = 2u * 1000000;
    b.ct.cap = b.sample + b.sample / 1000 + 4096;
    b.ct.p = malloc(b.ct.cap);
    tsr_sealer_t *s = NULL;
    if (tsr_crypto_sealer_create(b.kr, &b.ad, 0, keep_cb, &b.ct, &s, &err) != TSR_OK) {
        die("seal sample", &err);
    }
    for (size_t done = 0; done < b.sample; done += b.chunk) {
        size_t k = b.sample - done < b.chunk ? b.sample - done : b.chunk;
        if (tsr_crypto_sealer_push(s, buf, k, &err) != TSR_OK) {
            die("seal sample", &err);
        }
    }
    if (tsr_crypto_sealer_finish(s, &err) != TSR_OK) {
        die("seal sample", &err);
    }
    tsr_crypto_sealer_destroy(s);
    tsr_buf_init(&b.blob, 0);

    double stream_seal = best_of_3(run_stream_seal, &b);
    double stream_open = best_of_3(run_stream_open, &b);
    double one_seal = best_of_3(run_oneshot_seal, &b);
    double one_open = best_of_3(run_oneshot_open, &b);
    double ossl_seal = with_openssl ? openssl_speed(false) : -1;
    double ossl_open = with_openssl ? openssl_speed(true) : -1;
    printf("AES-256-GCM, one core, MB per CPU second (10^6 bytes), best of 3\n");
    printf("  %-40s %10s %10s\n", "", "seal", "open");
    printf("  %-40s %10.0f %10.0f\n", "pkg/crypto stream (64 KiB segments)", stream_seal,
           stream_open);
    printf("  %-40s %10.0f %10.0f\n", "pkg/crypto one-shot (1 MiB blobs)", one_seal, one_open);
    if (ossl_seal > 0 && ossl_open > 0) {
        printf("  %-40s %10.0f %10.0f\n", "openssl speed -evp aes-256-gcm (64 KiB)", ossl_seal,
               ossl_open);
        printf("  %-40s %9.0f%% %9.0f%%\n", "stream / openssl", 100.0 * stream_seal / ossl_seal,
               100.0 * stream_open / ossl_open);
    } else if (with_openssl) {
        printf("  openssl speed: not available\n");
    }

    /* JWT: ES256 sign and verify (all checks on), RS256 verify. */
    tsr_jwt_keyset_t *jks = tsr_crypto_jwt_keyset_create();
    tsr_jwt_keyset_t *rks = tsr_crypto_jwt_keyset_create();
    tsr_jwt_key_t *k = NULL;
    if (tsr_crypto_jwt_key_generate("es", TSR_JWT_ALG_ES256, &k, &err) != TSR_OK ||
        tsr_crypto_jwt_keyset_add(jks, k, true, &err) != TSR_OK ||
        tsr_crypto_jwt_key_generate("rs", TSR_JWT_ALG_RS256, &k, &err) != TSR_OK ||
        tsr_crypto_jwt_keyset_add(rks, k, true, &err) != TSR_OK) {
        die("jwt keys", &err);
    }
    int64_t now = tsr_wall_ms() / 1000;
    json_t *claims =
        json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:[s,s]}", "iss", "tessera-identity", "aud", "tessera",
                  "sub", "u-0123456789abcdef", "tid", "t-0123456789abcdef", "iat", (json_int_t)now,
                  "exp", (json_int_t)now + 300, "roles", "TenantAdmin", "User");
    tsr_jwt_verify_opts_t vo = {.issuer = "tessera-identity",
                                .audience = "tessera",
                                .typ = "tsr+jwt",
                                .require_exp = true,
                                .algs = TSR_JWT_ALG_ES256 | TSR_JWT_ALG_RS256};
    char *tok = NULL, *rtok = NULL;
    size_t signs = 0, verifies = 0, rverifies = 0;
    double t0 = now_s();
    while (now_s() - t0 < 1.0) {
        free(tok);
        if (tsr_crypto_jwt_sign(jks, "tsr+jwt", claims, &tok, &err) != TSR_OK) {
            die("sign", &err);
        }
        signs++;
    }
    double sign_rate = (double)signs / (now_s() - t0);
    t0 = now_s();
    while (now_s() - t0 < 1.0) {
        json_t *c = NULL;
        if (tsr_crypto_jwt_verify(jks, tok, strlen(tok), &vo, &c, &err) != TSR_OK) {
            die("verify", &err);
        }
        json_decref(c);
        verifies++;
    }
    double verify_rate = (double)verifies / (now_s() - t0);
    if (tsr_crypto_jwt_sign(rks, "tsr+jwt", claims, &rtok, &err) != TSR_OK) {
        die("sign rs256", &err);
    }
    t0 = now_s();
    while (now_s() - t0 < 1.0) {
        json_t *c = NULL;
        if (tsr_crypto_jwt_verify(rks, rtok, strlen(rtok), &vo, &c, &err) != TSR_OK) {
            die("verify rs256", &err);
        }
        json_decref(c);
        rverifies++;
    }
    double rverify_rate = (double)rverifies / (now_s() - t0);
    printf("JWT (%zu-byte ES256 token), one core, per CPU second\n", strlen(tok));
    printf("  ES256 sign/s %10.0f\n  ES256 verify/s %8.0f\n  RS256 verify/s %8.0f\n", sign_rate,
           verify_rate, rverify_rate);

    char *phc = NULL;
    t0 = now_s();
    if (tsr_crypto_password_hash("correct horse battery", 21, NULL, &phc, &err) != TSR_OK) {
        die("argon2", &err);
    }
    double hash_ms = (now_s() - t0) * 1000;
    t0 = now_s();
    if (tsr_crypto_password_verify(phc, "correct horse battery", 21, &err) != TSR_OK) {
        die("argon2 verify", &err);
    }
    printf("argon2id default cost (64 MiB, t=3, p=1), CPU ms: hash %.0f, verify %.0f\n", hash_ms,
           (now_s() - t0) * 1000);

    free(phc);
    free(tok);
    free(rtok);
    json_decref(claims);
    tsr_crypto_jwt_keyset_destroy(jks);
    tsr_crypto_jwt_keyset_destroy(rks);
    tsr_buf_cleanup(&b.blob);
    free(b.ct.p);
    free(buf);
    tsr_crypto_keyring_destroy(b.kr);
    tsr_crypto_kek_set_destroy(ks);
    tsr_crypto_cleanse(kek, sizeof(kek));
    return 0;
}
