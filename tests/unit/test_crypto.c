/*
 * Unit tests for pkg/crypto: known answers (NIST AES-GCM, RFC 6238 TOTP, RFC 7515 A.3 ES256),
 * the KEK file rules, DEK wrap/rotate/re-wrap/shred, sealing and streaming with their
 * negative cases (every byte flipped, truncation, reordering, wrong AD/tenant/version), the
 * JWT negative matrix and JWKS import/export, argon2id passwords.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "crypto.h"
#include "crypto_int.h"

/* ---- helpers ------------------------------------------------------------------------------- */

static size_t unhex(const char *s, uint8_t *out) {
    size_t n = strlen(s) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        ck_assert_int_eq(sscanf(s + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

static char tmpdir[256];

static void tmp_setup(void) {
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tsr-crypto-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void tmp_teardown(void) {
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static void write_file(const char *path, const void *p, size_t n, mode_t mode) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(chmod(path, mode), 0);
}

static const uint8_t KEK_A[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                  17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t KEK_B[32] = {0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba,
                                  0xbb, 0xbc, 0xbd, 0xbe, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5,
                                  0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf};

static tsr_kek_set_t *kek_set_of(const uint8_t *primary, const uint8_t *old) {
    tsr_kek_set_t *ks = tsr_crypto_kek_set_create();
    if (old != NULL) {
        ck_assert_int_eq(tsr_crypto_kek_set_add(ks, old, false, NULL), TSR_OK);
    }
    if (primary != NULL) {
        ck_assert_int_eq(tsr_crypto_kek_set_add(ks, primary, true, NULL), TSR_OK);
    }
    return ks;
}

/* A keyring for tenant holding one fresh DEK (version 1); its record goes to rec. */
static tsr_keyring_t *ring_of(const tsr_kek_set_t *ks, const char *tenant,
                              uint8_t rec[TSR_CRYPTO_DEK_RECORD_LEN]) {
    uint8_t tmp[TSR_CRYPTO_DEK_RECORD_LEN];
    tsr_keyring_t *kr = tsr_crypto_keyring_create(tenant);
    ck_assert_int_eq(tsr_crypto_dek_create(ks, tenant, 1, rec != NULL ? rec : tmp, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_keyring_load(kr, ks, rec != NULL ? rec : tmp, sizeof(tmp), NULL),
                     TSR_OK);
    return kr;
}

static const tsr_seal_ad_t AD_APP = {"t-acme", "app", "app-1", 7};

/* ---- primitives ---------------------------------------------------------------------------- */

/* NIST CAVP gcmEncryptExtIV256.rsp (Keylen=256, IVlen=96, Taglen=128; PTlen=0 and 128,
 * Count 0) and the GCM specification's AES-256 test cases 13-16 (McGrew & Viega). */
START_TEST(test_gcm_nist_vectors_match_and_bad_tag_is_corrupt) {
    static const struct {
        const char *key, *iv, *aad, *pt, *ct, *tag;
    } V[] = {
        {"b52c505a37d78eda5dd34f20c22540ea1b58963cf8e5bf8ffa85f9f2492505b4",
         "516c33929df5a3284ff463d7", "", "", "", "bdc1ac884d332457a1d2664f168c76f0"},
        {"31bdadd96698c204aa9ce1448ea94ae1fb4a9a0b3c9d773b51bb1822666b8f22",
         "0d18e06c7c725ac9e362e1ce", "", "2db5168e932556f8089a0622981d017d",
         "fa4362189661d163fcd6a56d8bf0405a", "d636ac1bbedd5cc3ee727dc2ab4a9489"},
        {"0000000000000000000000000000000000000000000000000000000000000000",
         "000000000000000000000000", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
        {"0000000000000000000000000000000000000000000000000000000000000000",
         "000000000000000000000000", "", "00000000000000000000000000000000",
         "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
        {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
         "cafebabefacedbaddecaf888", "",
         "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e"
         "2449a6b525b16aedf5aa0de657ba637b391aafd255",
         "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b"
         "1056828838c5f61e6393ba7a0abcc9f662898015ad",
         "b094dac5d93471bdec1a502270e3cc6c"},
        {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
         "cafebabefacedbaddecaf888", "feedfacedeadbeeffeedfacedeadbeefabaddad2",
         "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e"
         "2449a6b525b16aedf5aa0de657ba637b39",
         "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b"
         "1056828838c5f61e6393ba7a0abcc9f662",
         "76fc6ece0f4e1768cddf8853bb2d551b"},
    };
    for (size_t i = 0; i < sizeof(V) / sizeof(V[0]); i++) {
        uint8_t key[32], iv[12], aad[64], pt[64], ct[64], tag[16], out[64], outtag[16];
        unhex(V[i].key, key);
        unhex(V[i].iv, iv);
        size_t aadn = unhex(V[i].aad, aad);
        size_t n = unhex(V[i].pt, pt);
        ck_assert_uint_eq(unhex(V[i].ct, ct), n);
        unhex(V[i].tag, tag);
        ck_assert_int_eq(tsr_crypto__gcm_seal(key, iv, aad, aadn, pt, n, out, outtag, NULL),
                         TSR_OK);
        ck_assert_mem_eq(out, ct, n);
        ck_assert_mem_eq(outtag, tag, 16);
        ck_assert_int_eq(tsr_crypto__gcm_open(key, iv, aad, aadn, ct, n, tag, out, NULL), TSR_OK);
        ck_assert_mem_eq(out, pt, n);
        tag[15] ^= 1;
        memset(out, 0xee, sizeof(out));
        ck_assert_int_eq(tsr_crypto__gcm_open(key, iv, aad, aadn, ct, n, tag, out, NULL),
                         TSR_ECORRUPT);
        for (size_t j = 0; j < n; j++) {
            ck_assert_uint_eq(out[j], 0); /* cleansed: no unauthenticated plaintext left */
        }
    }
}
END_TEST

/* RFC 4648 §10 test vectors. */
START_TEST(test_base32_rfc4648_vectors) {
    static const char *V[][2] = {{"", ""},
                                 {"f", "MY"},
                                 {"fo", "MZXQ"},
                                 {"foo", "MZXW6"},
                                 {"foob", "MZXW6YQ"},
                                 {"fooba", "MZXW6YTB"},
                                 {"foobar", "MZXW6YTBOI"}};
    tsr_buf_t b;
    tsr_buf_init(&b, 0);
    for (size_t i = 0; i < sizeof(V) / sizeof(V[0]); i++) {
        tsr_buf_reset(&b);
        ck_assert_int_eq(tsr_crypto_base32_encode(V[i][0], strlen(V[i][0]), &b), TSR_OK);
        ck_assert_str_eq(b.data, V[i][1]);
        tsr_buf_reset(&b);
        ck_assert_int_eq(tsr_crypto_base32_decode(V[i][1], strlen(V[i][1]), &b, NULL), TSR_OK);
        ck_assert_uint_eq(b.len, strlen(V[i][0]));
        ck_assert_mem_eq(b.data, V[i][0], b.len);
    }
    tsr_buf_reset(&b);
    ck_assert_int_eq(tsr_crypto_base32_decode("mzxw6ytboi======", 16, &b, NULL), TSR_OK);
    ck_assert_str_eq(b.data, "foobar");
    ck_assert_int_eq(tsr_crypto_base32_decode("MZXW 6YTB", 9, &b, NULL), TSR_EINVAL);
    ck_assert_int_eq(tsr_crypto_base32_decode("MZXW1", 5, &b, NULL), TSR_EINVAL);
    tsr_buf_t small;
    tsr_buf_init(&small, 2);
    ck_assert_int_eq(tsr_crypto_base32_decode("MZXW6YTBOI", 10, &small, NULL), TSR_ETOOBIG);
    tsr_buf_cleanup(&small);
    tsr_buf_cleanup(&b);
}
END_TEST

START_TEST(test_b64url_decode_is_strict) {
    tsr_buf_t b;
    tsr_buf_init(&b, 0);
    ck_assert_int_eq(tsr_crypto_b64url_encode("hello?>", 7, &b), TSR_OK);
    ck_assert_str_eq(b.data, "aGVsbG8_Pg");
    tsr_buf_reset(&b);
    ck_assert_int_eq(tsr_crypto_b64url_decode("aGVsbG8_Pg", 10, &b, NULL), TSR_OK);
    ck_assert_mem_eq(b.data, "hello?>", 7);
    const char *bad[] = {"aGVsbG8_Pg==", "aGVs bG8", "aGVsbG8+Pg", "aGVsbG8_Ph", "a", "aGVsb\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tsr_buf_reset(&b);
        ck_assert_int_eq(tsr_crypto_b64url_decode(bad[i], strlen(bad[i]), &b, NULL), TSR_EINVAL);
    }
    /* The output cap is applied before decoding. */
    tsr_buf_t small;
    tsr_buf_init(&small, 4);
    ck_assert_int_eq(tsr_crypto_b64url_decode("aGVsbG8_Pg", 10, &small, NULL), TSR_ETOOBIG);
    tsr_buf_cleanup(&small);
    tsr_buf_cleanup(&b);
}
END_TEST

/* ---- KEK ----------------------------------------------------------------------------------- */

START_TEST(test_kek_file_formats_load_to_the_same_key) {
    char path[300];
    uint8_t id_ref[8], id[8];
    tsr_kek_set_t *ref = kek_set_of(KEK_A, NULL);
    ck_assert_int_eq(tsr_crypto_kek_set_primary_id(ref, id_ref, NULL), TSR_OK);
    char hex[66], raw_nl[33];
    for (int i = 0; i < 32; i++) {
        snprintf(hex + 2 * i, 3, "%02X", KEK_A[i]);
    }
    hex[64] = '\n';
    memcpy(raw_nl, KEK_A, 32);
    raw_nl[32] = '\n';
    const char *b64 = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\n";
    const struct {
        const void *p;
        size_t n;
    } forms[] = {{KEK_A, 32}, {raw_nl, 33}, {hex, 64}, {hex, 65}, {b64, 44}, {b64, 45}};
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        snprintf(path, sizeof(path), "%s/kek%zu", tmpdir, i);
        write_file(path, forms[i].p, forms[i].n, 0600);
        tsr_kek_set_t *ks = tsr_crypto_kek_set_create();
        tsr_error_t err = {0};
        ck_assert_msg(tsr_crypto_kek_set_add_file(ks, path, true, &err) == TSR_OK, "form %zu: %s",
                      i, err.msg);
        ck_assert_int_eq(tsr_crypto_kek_set_primary_id(ks, id, NULL), TSR_OK);
        ck_assert_mem_eq(id, id_ref, 8);
        tsr_crypto_kek_set_destroy(ks);
    }
    tsr_crypto_kek_set_destroy(ref);
}
END_TEST

START_TEST(test_kek_file_readable_by_others_is_refused) {
    char path[300];
    tsr_error_t err = {0};
    snprintf(path, sizeof(path), "%s/kek", tmpdir);
    const mode_t bad[] = {0644, 0640, 0604, 0660, 0666};
    tsr_kek_set_t *ks = tsr_crypto_kek_set_create();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_file(path, KEK_A, 32, bad[i]);
        ck_assert_int_eq(tsr_crypto_kek_set_add_file(ks, path, true, &err), TSR_EFORBIDDEN);
        ck_assert_ptr_nonnull(strstr(err.msg, "chmod 600"));
    }
    write_file(path, KEK_A, 32, 0400);
    ck_assert_int_eq(tsr_crypto_kek_set_add_file(ks, path, true, &err), TSR_OK);
    /* Missing file and a directory. */
    snprintf(path, sizeof(path), "%s/none", tmpdir);
    ck_assert_int_eq(tsr_crypto_kek_set_add_file(ks, path, true, &err), TSR_EIO);
    ck_assert_int_eq(tsr_crypto_kek_set_add_file(ks, tmpdir, true, &err), TSR_EINVAL);
    tsr_crypto_kek_set_destroy(ks);
}
END_TEST

START_TEST(test_kek_file_wrong_size_is_einval) {
    char path[300];
    uint8_t big[300];
    tsr_error_t err = {0};
    memset(big, 'z', sizeof(big));
    const size_t sizes[] = {0, 16, 31, 34, 63, 66, 100, 128, 129, 300};
    snprintf(path, sizeof(path), "%s/kek", tmpdir);
    tsr_kek_set_t *ks = tsr_crypto_kek_set_create();
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        write_file(path, big, sizes[i], 0600);
        ck_assert_msg(tsr_crypto_kek_set_add_file(ks, path, true, &err) == TSR_EINVAL, "size %zu",
                      sizes[i]);
    }
    /* Right length, wrong alphabet: 64 non-hex characters, 44 with two '=' (31 bytes). */
    write_file(path, big, 64, 0600);
    ck_assert_int_eq(tsr_crypto_kek_set_add_file(ks, path, true, &err), TSR_EINVAL);
    write_file(path, "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHy==", 44, 0600);
    ck_assert_int_eq(tsr_crypto_kek_set_add_file(ks, path, true, &err), TSR_EINVAL);
    /* 33 raw bytes not ending in a newline. */
    write_file(path, big, 33, 0600);
    ck_assert_int_eq(tsr_crypto_kek_set_add_file(ks, path, true, &err), TSR_EINVAL);
    ck_assert_int_eq(tsr_crypto_kek_set_primary_id(ks, (uint8_t[8]){0}, NULL), TSR_ENOTFOUND);
    tsr_crypto_kek_set_destroy(ks);
}
END_TEST

START_TEST(test_kek_file_ensure_creates_0600_once) {
    char path[300];
    bool created = false;
    struct stat st;
    snprintf(path, sizeof(path), "%s/local-kek", tmpdir);
    ck_assert_int_eq(tsr_crypto_kek_file_ensure(path, &created, NULL), TSR_OK);
    ck_assert(created);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(st.st_size, 32);
    uint8_t id1[8], id2[8];
    tsr_kek_set_t *ks = tsr_crypto_kek_set_create();
    ck_assert_int_eq(tsr_crypto_kek_set_load(ks, path, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_kek_set_primary_id(ks, id1, NULL), TSR_OK);
    tsr_crypto_kek_set_destroy(ks);
    /* Second start: the key is kept, not replaced. */
    ck_assert_int_eq(tsr_crypto_kek_file_ensure(path, &created, NULL), TSR_OK);
    ck_assert(!created);
    ks = tsr_crypto_kek_set_create();
    ck_assert_int_eq(tsr_crypto_kek_set_load(ks, path, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_kek_set_primary_id(ks, id2, NULL), TSR_OK);
    ck_assert_mem_eq(id1, id2, 8);
    tsr_crypto_kek_set_destroy(ks);
}
END_TEST

/* TSR_KEK_FILE="new,old": the first wraps new records, the second still unwraps old ones, and
 * re-wrapping moves every record to the new KEK so the old file can be retired. */
START_TEST(test_kek_rotation_new_wraps_old_unwraps_rewrap_retires_old) {
    char pa[300], pb[300], spec[700];
    uint8_t rec_old[TSR_CRYPTO_DEK_RECORD_LEN], rec_new[TSR_CRYPTO_DEK_RECORD_LEN];
    uint8_t rec_re[TSR_CRYPTO_DEK_RECORD_LEN], kid[8], idb[8];
    tsr_buf_t blob, pt;
    tsr_error_t err = {0};
    snprintf(pa, sizeof(pa), "%s/kek-a", tmpdir);
    snprintf(pb, sizeof(pb), "%s/kek-b", tmpdir);
    write_file(pa, KEK_A, 32, 0600);
    write_file(pb, KEK_B, 32, 0600);
    tsr_buf_init(&blob, 0);
    tsr_buf_init(&pt, 0);

    tsr_kek_set_t *old = tsr_crypto_kek_set_create();
    ck_assert_int_eq(tsr_crypto_kek_set_load(old, pa, NULL), TSR_OK);
    tsr_keyring_t *kr = ring_of(old, "t-acme", rec_old);
    ck_assert_int_eq(tsr_crypto_seal(kr, &AD_APP, "payload", 7, &blob, NULL), TSR_OK);
    tsr_crypto_keyring_destroy(kr);

    snprintf(spec, sizeof(spec), " %s , %s ", pb, pa);
    tsr_kek_set_t *both = tsr_crypto_kek_set_create();
    ck_assert_int_eq(tsr_crypto_kek_set_load(both, spec, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_kek_set_primary_id(both, idb, NULL), TSR_OK);
    /* New records are wrapped by the new (first) KEK. */
    ck_assert_int_eq(tsr_crypto_dek_create(both, "t-acme", 2, rec_new, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_dek_record_parse(rec_new, sizeof(rec_new), NULL, kid, NULL),
                     TSR_OK);
    ck_assert_mem_eq(kid, idb, 8);
    /* The old record still unwraps and its blob opens. */
    kr = tsr_crypto_keyring_create("t-acme");
    ck_assert_int_eq(tsr_crypto_keyring_load(kr, both, rec_old, sizeof(rec_old), NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_open(kr, &AD_APP, blob.data, blob.len, &pt, NULL), TSR_OK);
    tsr_crypto_keyring_destroy(kr);
    /* Re-wrap: same DEK (the blob still opens), now under the new KEK only. */
    ck_assert_int_eq(tsr_crypto_dek_rewrap(both, "t-acme", rec_old, sizeof(rec_old), rec_re, NULL),
                     TSR_OK);
    uint32_t ver = 0;
    ck_assert_int_eq(tsr_crypto_dek_record_parse(rec_re, sizeof(rec_re), &ver, kid, NULL), TSR_OK);
    ck_assert_uint_eq(ver, 1);
    ck_assert_mem_eq(kid, idb, 8);
    /* Re-wrap checks the tenant. */
    ck_assert_int_eq(tsr_crypto_dek_rewrap(both, "t-other", rec_old, sizeof(rec_old), rec_re, &err),
                     TSR_ECORRUPT);
    /* Re-wrapping is repeatable (a crashed migration simply runs again). */
    ck_assert_int_eq(tsr_crypto_dek_rewrap(both, "t-acme", rec_old, sizeof(rec_old), rec_re, NULL),
                     TSR_OK);
    tsr_kek_set_t *only_new = tsr_crypto_kek_set_create();
    ck_assert_int_eq(tsr_crypto_kek_set_load(only_new, pb, NULL), TSR_OK);
    kr = tsr_crypto_keyring_create("t-acme");
    ck_assert_int_eq(tsr_crypto_keyring_load(kr, only_new, rec_old, sizeof(rec_old), &err),
                     TSR_ENOTFOUND);
    ck_assert_int_eq(tsr_crypto_keyring_load(kr, only_new, rec_re, sizeof(rec_re), NULL), TSR_OK);
    tsr_buf_reset(&pt);
    ck_assert_int_eq(tsr_crypto_open(kr, &AD_APP, blob.data, blob.len, &pt, NULL), TSR_OK);
    ck_assert_mem_eq(pt.data, "payload", 7);
    tsr_crypto_keyring_destroy(kr);
    /* The old KEK alone cannot unwrap re-wrapped records. */
    kr = tsr_crypto_keyring_create("t-acme");
    ck_assert_int_eq(tsr_crypto_keyring_load(kr, old, rec_re, sizeof(rec_re), NULL), TSR_ENOTFOUND);
    tsr_crypto_keyring_destroy(kr);
    ck_assert_int_eq(tsr_crypto_kek_set_load(old, " , ", NULL), TSR_EINVAL);

    tsr_crypto_kek_set_destroy(old);
    tsr_crypto_kek_set_destroy(both);
    tsr_crypto_kek_set_destroy(only_new);
    tsr_buf_cleanup(&blob);
    tsr_buf_cleanup(&pt);
}
END_TEST

/* ---- DEKs ---------------------------------------------------------------------------------- */

START_TEST(test_dek_record_tampered_relabelled_or_other_tenant_fails) {
    uint8_t rec[TSR_CRYPTO_DEK_RECORD_LEN], bad[TSR_CRYPTO_DEK_RECORD_LEN];
    tsr_kek_set_t *ks = kek_set_of(KEK_A, NULL);
    ck_assert_int_eq(tsr_crypto_dek_create(ks, "t-acme", 3, rec, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_dek_create(ks, "t-acme", 0, bad, NULL), TSR_EINVAL);
    ck_assert_int_eq(tsr_crypto_dek_create(ks, "", 1, bad, NULL), TSR_EINVAL);
    tsr_kek_set_t *empty = tsr_crypto_kek_set_create();
    ck_assert_int_eq(tsr_crypto_dek_create(empty, "t-acme", 1, bad, NULL), TSR_ENOTFOUND);
    tsr_crypto_kek_set_destroy(empty);
    for (size_t i = 0; i < sizeof(rec); i++) {
        memcpy(bad, rec, sizeof(rec));
        bad[i] ^= 0x01;
        tsr_keyring_t *kr = tsr_crypto_keyring_create("t-acme");
        tsr_err_t rc = tsr_crypto_keyring_load(kr, ks, bad, sizeof(bad), NULL);
        /* byte 4 is the format, 5..12 the KEK id; every other byte is authenticated. */
        tsr_err_t want = i == 4               ? TSR_EUNSUPPORTED
                         : (i >= 5 && i < 13) ? TSR_ENOTFOUND
                                              : TSR_ECORRUPT;
        ck_assert_msg(rc == want, "byte %zu: %d", i, rc);
        ck_assert_uint_eq(tsr_crypto_keyring_current(kr), 0);
        tsr_crypto_keyring_destroy(kr);
    }
    tsr_keyring_t *other = tsr_crypto_keyring_create("t-other");
    ck_assert_int_eq(tsr_crypto_keyring_load(other, ks, rec, sizeof(rec), NULL), TSR_ECORRUPT);
    ck_assert_int_eq(tsr_crypto_keyring_load(other, ks, rec, sizeof(rec) - 1, NULL), TSR_ECORRUPT);
    tsr_crypto_keyring_destroy(other);
    tsr_keyring_t *kr = tsr_crypto_keyring_create("t-acme");
    ck_assert_int_eq(tsr_crypto_keyring_load(kr, ks, rec, sizeof(rec), NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_keyring_load(kr, ks, rec, sizeof(rec), NULL), TSR_OK);
    ck_assert_uint_eq(tsr_crypto_keyring_current(kr), 3);
    /* Another DEK claiming the same version is a conflict, not a silent replacement. */
    ck_assert_int_eq(tsr_crypto_dek_create(ks, "t-acme", 3, bad, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_keyring_load(kr, ks, bad, sizeof(bad), NULL), TSR_ECONFLICT);
    tsr_crypto_keyring_destroy(kr);
    tsr_crypto_kek_set_destroy(ks);
}
END_TEST

START_TEST(test_keyring_rotate_new_version_for_writes_old_still_opens) {
    uint8_t rec1[TSR_CRYPTO_DEK_RECORD_LEN], rec2[TSR_CRYPTO_DEK_RECORD_LEN];
    tsr_buf_t b1, b2, pt;
    uint32_t v = 0;
    tsr_error_t err = {0};
    tsr_buf_init(&b1, 0);
    tsr_buf_init(&b2, 0);
    tsr_buf_init(&pt, 0);
    tsr_kek_set_t *ks = kek_set_of(KEK_A, NULL);
    tsr_keyring_t *kr = tsr_crypto_keyring_create("t-acme");
    ck_assert_int_eq(tsr_crypto_seal(kr, &AD_APP, "x", 1, &b1, &err), TSR_ENOTFOUND);
    ck_assert_int_eq(tsr_crypto_keyring_rotate(kr, ks, rec1, &v, NULL), TSR_OK);
    ck_assert_uint_eq(v, 1);
    ck_assert_int_eq(tsr_crypto_seal(kr, &AD_APP, "one", 3, &b1, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_keyring_rotate(kr, ks, rec2, &v, NULL), TSR_OK);
    ck_assert_uint_eq(v, 2);
    ck_assert_uint_eq(tsr_crypto_keyring_current(kr), 2);
    ck_assert_int_eq(tsr_crypto_seal(kr, &AD_APP, "two", 3, &b2, NULL), TSR_OK);
    ck_assert_uint_eq(tsr_crypto__get_u32((const uint8_t *)b1.data + 5), 1);
    ck_assert_uint_eq(tsr_crypto__get_u32((const uint8_t *)b2.data + 5), 2);
    ck_assert_int_eq(tsr_crypto_open(kr, &AD_APP, b1.data, b1.len, &pt, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_open(kr, &AD_APP, b2.data, b2.len, &pt, NULL), TSR_OK);
    ck_assert_str_eq(pt.data, "onetwo");
    /* A fresh process loads both records in any order; the highest version is current. */
    tsr_keyring_t *kr2 = tsr_crypto_keyring_create("t-acme");
    ck_assert_int_eq(tsr_crypto_keyring_load(kr2, ks, rec2, sizeof(rec2), NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_keyring_load(kr2, ks, rec1, sizeof(rec1), NULL), TSR_OK);
    ck_assert_uint_eq(tsr_crypto_keyring_current(kr2), 2);
    tsr_buf_reset(&pt);
    ck_assert_int_eq(tsr_crypto_open(kr2, &AD_APP, b1.data, b1.len, &pt, NULL), TSR_OK);
    /* Re-seal under the current version, then retire version 1. */
    tsr_buf_t re;
    tsr_buf_init(&re, 0);
    ck_assert_int_eq(tsr_crypto_seal(kr2, &AD_APP, pt.data, pt.len, &re, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_keyring_drop(kr2, 2, &err), TSR_EINVAL);
    ck_assert_int_eq(tsr_crypto_keyring_drop(kr2, 1, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_keyring_drop(kr2, 1, NULL), TSR_ENOTFOUND);
    ck_assert(!tsr_crypto_keyring_has(kr2, 1));
    tsr_buf_reset(&pt);
    ck_assert_int_eq(tsr_crypto_open(kr2, &AD_APP, b1.data, b1.len, &pt, &err), TSR_ENOTFOUND);
    ck_assert_int_eq(tsr_crypto_open(kr2, &AD_APP, re.data, re.len, &pt, NULL), TSR_OK);
    ck_assert_str_eq(pt.data, "one");
    tsr_crypto_keyring_destroy(kr2);
    tsr_crypto_keyring_destroy(kr);
    tsr_crypto_kek_set_destroy(ks);
    tsr_buf_cleanup(&b1);
    tsr_buf_cleanup(&b2);
    tsr_buf_cleanup(&pt);
    tsr_buf_cleanup(&re);
}
END_TEST

static tsr_err_t collect_cb(void *ctx, const void *p, size_t n) {
    return tsr_buf_append(ctx, p, n);
}

/* Deleting a tenant: shred its keyring and delete its records. Nothing sealed opens again,
 * and a new DEK with the same version number does not bring it back. */
START_TEST(test_keyring_shred_makes_sealed_data_unreadable) {
    uint8_t rec[TSR_CRYPTO_DEK_RECORD_LEN];
    tsr_buf_t blob, stream, pt;
    tsr_error_t err = {0};
    tsr_sealer_t *s = NULL;
    tsr_opener_t *o = NULL;
    tsr_buf_init(&blob, 0);
    tsr_buf_init(&stream, 0);
    tsr_buf_init(&pt, 0);
    tsr_kek_set_t *ks = kek_set_of(KEK_A, NULL);
    tsr_keyring_t *kr = ring_of(ks, "t-acme", rec);
    ck_assert_int_eq(tsr_crypto_seal(kr, &AD_APP, "secret", 6, &blob, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_sealer_create(kr, &AD_APP, 0, collect_cb, &stream, &s, NULL),
                     TSR_OK);
    ck_assert_int_eq(tsr_crypto_sealer_push(s, "streamed", 8, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_sealer_finish(s, NULL), TSR_OK);
    tsr_crypto_sealer_destroy(s);

    tsr_crypto_keyring_shred(kr);
    ck_assert_uint_eq(tsr_crypto_keyring_current(kr), 0);
    ck_assert_int_eq(tsr_crypto_open(kr, &AD_APP, blob.data, blob.len, &pt, &err), TSR_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err.msg, "destroyed"));
    ck_assert_uint_eq(pt.len, 0);
    ck_assert_int_eq(tsr_crypto_opener_create(kr, &AD_APP, collect_cb, &pt, &o, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_opener_push(o, stream.data, stream.len, NULL), TSR_ENOTFOUND);
    ck_assert_int_eq(tsr_crypto_opener_finish(o, NULL), TSR_ENOTFOUND);
    tsr_crypto_opener_destroy(o);
    ck_assert_int_eq(tsr_crypto_seal(kr, &AD_APP, "x", 1, &pt, NULL), TSR_ENOTFOUND);

    /* The tenant id is reused later: its new version-1 DEK is another key. */
    uint8_t rec2[TSR_CRYPTO_DEK_RECORD_LEN];
    ck_assert_int_eq(tsr_crypto_keyring_rotate(kr, ks, rec2, NULL, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_open(kr, &AD_APP, blob.data, blob.len, &pt, NULL), TSR_ECORRUPT);
    ck_assert_uint_eq(pt.len, 0);
    tsr_crypto_keyring_destroy(kr);
    tsr_crypto_keyring_destroy(NULL);
    tsr_crypto_kek_set_destroy(ks);
    tsr_buf_cleanup(&blob);
    tsr_buf_cleanup(&stream);
    tsr_buf_cleanup(&pt);
}
END_TEST

/* ---- sealing ------------------------------------------------------------------------------- */

START_TEST(test_seal_every_flipped_byte_fails_and_leaves_out_unchanged) {
    static const char msg[] = "quarterly sales by region, tenant acme";
    tsr_buf_t blob, out;
    uint8_t rec2[TSR_CRYPTO_DEK_RECORD_LEN];
    tsr_buf_init(&blob, 0);
    tsr_buf_init(&out, 0);
    tsr_kek_set_t *ks = kek_set_of(KEK_A, NULL);
    tsr_keyring_t *kr = ring_of(ks, "t-acme", NULL);
    ck_assert_int_eq(tsr_crypto_seal(kr, &AD_APP, msg, sizeof(msg), &blob, NULL), TSR_OK);
    /* Version 2 exists, so a version byte flipped to 2 reaches the tag check. */
    ck_assert_int_eq(tsr_crypto_keyring_rotate(kr, ks, rec2, NULL, NULL), TSR_OK);
    ck_assert_uint_eq(blob.len, sizeof(msg) + TSR_CRYPTO_SEAL_OVERHEAD);
    ck_assert_int_eq(tsr_crypto_open(kr, &AD_APP, blob.data, blob.len, &out, NULL), TSR_OK);
    ck_assert_mem_eq(out.data, msg, sizeof(msg));
    ck_assert_int_eq(tsr_buf_append(&out, "prefix", 6), TSR_OK);
    size_t keep = out.len;
    uint8_t *bad = malloc(blob.len);
    for (size_t i = 0; i < blob.len; i++) {
        for (int bit = 0; bit < 8; bit += 7) {
            memcpy(bad, blob.data, blob.len);
            bad[i] ^= (uint8_t)(1u << bit);
            tsr_error_t err = {0};
            tsr_err_t rc = tsr_crypto_open(kr, &AD_APP, bad, blob.len, &out, &err);
            /* Header bytes: 4 format (unknown format), 5..8 key version (no such key, or the
             * other key, which fails the tag); everything else fails authentication. */
            bool ok = rc == TSR_ECORRUPT || (i == 4 && rc == TSR_EUNSUPPORTED) ||
                      (i >= 5 && i < 9 && rc == TSR_ENOTFOUND);
            ck_assert_msg(ok, "byte %zu bit %d: rc %d (%s)", i, bit, rc, err.msg);
            ck_assert_uint_eq(out.len, keep);
            ck_assert_mem_eq(out.data + keep - 6, "prefix", 6);
        }
    }
    memcpy(bad, blob.data, blob.len);
    bad[8] ^= 3; /* version 1 -> 2: a key that exists, so the tag decides */
    ck_assert_int_eq(tsr_crypto_open(kr, &AD_APP, bad, blob.len, &out, NULL), TSR_ECORRUPT);
    /* Truncated at every length. */
    for (size_t n = 0; n < blob.len; n++) {
        ck_assert_int_eq(tsr_crypto_open(kr, &AD_APP, blob.data, n, &out, NULL), TSR_ECORRUPT);
    }
    ck_assert_uint_eq(out.len, keep);
    free(bad);
    tsr_crypto_keyring_destroy(kr);
    tsr_crypto_kek_set_destroy(ks);
    tsr_buf_cleanup(&blob);
    tsr_buf_cleanup(&out);
}
END_TEST

START_TEST(test_seal_other_tenant_kind_object_or_version_fails) {
    tsr_buf_t blob, out;
    tsr_error_t err = {0};
    tsr_buf_init(&blob, 0);
    tsr_buf_init(&out, 0);
    tsr_kek_set_t *ks = kek_set_of(KEK_A, NULL);
    tsr_keyring_t *acme = ring_of(ks, "t-acme", NULL);
    tsr_keyring_t *other = ring_of(ks, "t-other", NULL);
    ck_assert_int_eq(tsr_crypto_seal(acme, &AD_APP, "data", 4, &blob, NULL), TSR_OK);
    const tsr_seal_ad_t wrong[] = {
        {"t-acme", "datafile", "app-1", 7},
        {"t-acme", "app", "app-2", 7},
        {"t-acme", "app", "app-1", 8},
        {"t-acme", "ap", "papp-1", 7}, /* same bytes concatenated: length prefixes differ */
    };
    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
        ck_assert_int_eq(tsr_crypto_open(acme, &wrong[i], blob.data, blob.len, &out, &err),
                         TSR_ECORRUPT);
    }
    /* The blob copied to another tenant: its keyring has a version 1 too, the tag fails. */
    const tsr_seal_ad_t ad_other = {"t-other", "app", "app-1", 7};
    ck_assert_int_eq(tsr_crypto_open(other, &ad_other, blob.data, blob.len, &out, &err),
                     TSR_ECORRUPT);
    /* An AD naming another tenant than the keyring is refused before any crypto. */
    ck_assert_int_eq(tsr_crypto_open(other, &AD_APP, blob.data, blob.len, &out, &err), TSR_EINVAL);
    ck_assert_int_eq(tsr_crypto_seal(other, &AD_APP, "x", 1, &out, &err), TSR_EINVAL);
    ck_assert_int_eq(tsr_crypto_open(acme, NULL, blob.data, blob.len, &out, &err), TSR_EINVAL);
    ck_assert_uint_eq(out.len, 0);
    /* Output cap: checked before decrypting. */
    tsr_buf_t small;
    tsr_buf_init(&small, 3);
    ck_assert_int_eq(tsr_crypto_open(acme, &AD_APP, blob.data, blob.len, &small, &err),
                     TSR_ETOOBIG);
    ck_assert_int_eq(tsr_crypto_seal(acme, &AD_APP, "data", 4, &small, &err), TSR_ETOOBIG);
    tsr_buf_cleanup(&small);
    /* Empty plaintext round-trips. */
    tsr_buf_reset(&blob);
    ck_assert_int_eq(tsr_crypto_seal(acme, &AD_APP, "", 0, &blob, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_open(acme, &AD_APP, blob.data, blob.len, &out, NULL), TSR_OK);
    ck_assert_uint_eq(out.len, 0);
    /* Two seals of the same plaintext differ (random nonce). */
    tsr_buf_t b2;
    tsr_buf_init(&b2, 0);
    ck_assert_int_eq(tsr_crypto_seal(acme, &AD_APP, "", 0, &b2, NULL), TSR_OK);
    ck_assert(memcmp(blob.data, b2.data, blob.len) != 0);
    tsr_buf_cleanup(&b2);
    tsr_crypto_keyring_destroy(acme);
    tsr_crypto_keyring_destroy(other);
    tsr_crypto_kek_set_destroy(ks);
    tsr_buf_cleanup(&blob);
    tsr_buf_cleanup(&out);
}
END_TEST

/* ---- streams ------------------------------------------------------------------------------- */

#define SEG 64u

static void stream_seal(const tsr_keyring_t *kr, const uint8_t *p, size_t n, size_t chunk,
                        tsr_buf_t *out) {
    tsr_sealer_t *s = NULL;
    ck_assert_int_eq(tsr_crypto_sealer_create(kr, &AD_APP, SEG, collect_cb, out, &s, NULL), TSR_OK);
    for (size_t off = 0; off < n; off += chunk) {
        size_t k = n - off < chunk ? n - off : chunk;
        ck_assert_int_eq(tsr_crypto_sealer_push(s, p + off, k, NULL), TSR_OK);
    }
    ck_assert_int_eq(tsr_crypto_sealer_finish(s, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_sealer_finish(s, NULL), TSR_EINVAL);
    ck_assert_int_eq(tsr_crypto_sealer_push(s, "x", 1, NULL), TSR_EINVAL);
    tsr_crypto_sealer_destroy(s);
}

/* Open a whole stream fed in chunks; returns the first failure. */
static tsr_err_t stream_open(const tsr_keyring_t *kr, const tsr_seal_ad_t *ad, const void *p,
                             size_t n, size_t chunk, tsr_buf_t *out, tsr_error_t *err) {
    tsr_opener_t *o = NULL;
    tsr_err_t rc = tsr_crypto_opener_create(kr, ad, collect_cb, out, &o, err);
    for (size_t off = 0; rc == TSR_OK && off < n; off += chunk) {
        size_t k = n - off < chunk ? n - off : chunk;
        rc = tsr_crypto_opener_push(o, (const uint8_t *)p + off, k, err);
    }
    if (rc == TSR_OK) {
        rc = tsr_crypto_opener_finish(o, err);
    } else if (o != NULL) {
        /* A failure is sticky. */
        ck_assert_int_eq(tsr_crypto_opener_finish(o, NULL), rc);
    }
    tsr_crypto_opener_destroy(o);
    return rc;
}

START_TEST(test_stream_roundtrips_at_every_boundary_and_chunking) {
    uint8_t data[SEG * 4 + 3];
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (uint8_t)(i * 31 + 7);
    }
    const size_t sizes[] = {0, 1, SEG - 1, SEG, SEG + 1, 2 * SEG, 3 * SEG + 5, sizeof(data)};
    const size_t chunks[] = {1, 7, SEG, 1000};
    tsr_kek_set_t *ks = kek_set_of(KEK_A, NULL);
    tsr_keyring_t *kr = ring_of(ks, "t-acme", NULL);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
            tsr_buf_t ct, pt;
            tsr_error_t err = {0};
            tsr_buf_init(&ct, 0);
            tsr_buf_init(&pt, 0);
            stream_seal(kr, data, sizes[i], chunks[c], &ct);
            size_t segs = sizes[i] / SEG + 1 - (sizes[i] > 0 && sizes[i] % SEG == 0);
            ck_assert_uint_eq(ct.len, 36 + sizes[i] + 16 * segs);
            ck_assert_msg(
                stream_open(kr, &AD_APP, ct.data, ct.len, chunks[(c + 1) % 4], &pt, &err) == TSR_OK,
                "size %zu chunk %zu: %s", sizes[i], chunks[c], err.msg);
            ck_assert_uint_eq(pt.len, sizes[i]);
            if (sizes[i] > 0) {
                ck_assert_mem_eq(pt.data, data, sizes[i]);
            }
            tsr_buf_cleanup(&ct);
            tsr_buf_cleanup(&pt);
        }
    }
    tsr_crypto_keyring_destroy(kr);
    tsr_crypto_kek_set_destroy(ks);
}
END_TEST

START_TEST(test_stream_truncated_reordered_tampered_or_misbound_fails) {
    uint8_t data[SEG * 3 + 10];
    const size_t full = SEG + 16, hdr = 36; /* header: see README.md */
    tsr_buf_t ct, pt;
    tsr_error_t err = {0};
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (uint8_t)i;
    }
    tsr_buf_init(&ct, 0);
    tsr_buf_init(&pt, 0);
    tsr_kek_set_t *ks = kek_set_of(KEK_A, NULL);
    tsr_keyring_t *kr = ring_of(ks, "t-acme", NULL);
    stream_seal(kr, data, sizeof(data), 100, &ct);
    ck_assert_uint_eq(ct.len, hdr + 3 * full + 10 + 16);
    uint8_t *bad = malloc(ct.len);

    /* Truncation at every length, including exactly at segment boundaries. */
    for (size_t n = 0; n < ct.len; n++) {
        tsr_buf_reset(&pt);
        tsr_err_t rc = stream_open(kr, &AD_APP, ct.data, n, 13, &pt, &err);
        ck_assert_msg(rc == TSR_ECORRUPT, "cut at %zu: %d", n, rc);
        /* Whatever was emitted is an authentic prefix, never garbage. */
        ck_assert(pt.len <= n && (pt.len == 0 || memcmp(pt.data, data, pt.len) == 0));
    }
    tsr_buf_reset(&pt);
    ck_assert_int_eq(stream_open(kr, &AD_APP, ct.data, hdr + 2 * full, full, &pt, &err),
                     TSR_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(err.msg, "truncated"));

    /* Reordered: segments 0 and 1 swapped. */
    memcpy(bad, ct.data, ct.len);
    memcpy(bad + hdr, ct.data + hdr + full, full);
    memcpy(bad + hdr + full, ct.data + hdr, full);
    tsr_buf_reset(&pt);
    ck_assert_int_eq(stream_open(kr, &AD_APP, bad, ct.len, 50, &pt, &err), TSR_ECORRUPT);
    ck_assert_uint_eq(pt.len, 0);
    /* A segment dropped from the middle. */
    memcpy(bad, ct.data, hdr + full);
    memcpy(bad + hdr + full, ct.data + hdr + 2 * full, ct.len - hdr - 2 * full);
    tsr_buf_reset(&pt);
    ck_assert_int_eq(stream_open(kr, &AD_APP, bad, ct.len - full, 50, &pt, &err), TSR_ECORRUPT);
    /* A segment duplicated. */
    memcpy(bad, ct.data, hdr + full);
    memcpy(bad + hdr + full, ct.data + hdr, full);
    tsr_buf_reset(&pt);
    ck_assert_int_eq(stream_open(kr, &AD_APP, bad, hdr + 2 * full, 50, &pt, &err), TSR_ECORRUPT);
    /* Extra bytes after the last segment. */
    tsr_buf_t longer;
    tsr_buf_init(&longer, 0);
    ck_assert_int_eq(tsr_buf_append(&longer, ct.data, ct.len), TSR_OK);
    ck_assert_int_eq(tsr_buf_append(&longer, "\0", 1), TSR_OK);
    tsr_buf_reset(&pt);
    ck_assert_int_eq(stream_open(kr, &AD_APP, longer.data, longer.len, 50, &pt, &err),
                     TSR_ECORRUPT);
    tsr_buf_cleanup(&longer);

    /* Every byte flipped. */
    for (size_t i = 0; i < ct.len; i++) {
        memcpy(bad, ct.data, ct.len);
        bad[i] ^= 0x80;
        tsr_buf_reset(&pt);
        tsr_err_t rc = stream_open(kr, &AD_APP, bad, ct.len, ct.len, &pt, &err);
        bool ok = rc == TSR_ECORRUPT || (i == 4 && rc == TSR_EUNSUPPORTED) ||
                  (i >= 5 && i < 9 && rc == TSR_ENOTFOUND);
        ck_assert_msg(ok, "byte %zu: %d (%s)", i, rc, err.msg);
        /* Segments before the flipped one are authentic. */
        ck_assert(pt.len == 0 || memcmp(pt.data, data, pt.len) == 0);
        ck_assert(i < hdr || pt.len <= (i - hdr) / full * SEG);
    }
    /* Wrong AD, other tenant. */
    const tsr_seal_ad_t other_obj = {"t-acme", "app", "app-2", 7};
    tsr_buf_reset(&pt);
    ck_assert_int_eq(stream_open(kr, &other_obj, ct.data, ct.len, 50, &pt, &err), TSR_ECORRUPT);
    ck_assert_uint_eq(pt.len, 0);
    tsr_keyring_t *other = ring_of(ks, "t-other", NULL);
    const tsr_seal_ad_t ad_other = {"t-other", "app", "app-1", 7};
    ck_assert_int_eq(stream_open(other, &ad_other, ct.data, ct.len, 50, &pt, &err), TSR_ECORRUPT);
    ck_assert_int_eq(stream_open(other, &AD_APP, ct.data, ct.len, 50, &pt, &err), TSR_EINVAL);
    tsr_crypto_keyring_destroy(other);
    /* A header announcing segments over the cap is refused before allocating them. */
    memcpy(bad, ct.data, ct.len);
    tsr_crypto__put_u32(bad + 9, TSR_CRYPTO_STREAM_SEGMENT_MAX + 1);
    ck_assert_int_eq(stream_open(kr, &AD_APP, bad, ct.len, 50, &pt, &err), TSR_ECORRUPT);
    tsr_sealer_t *s = NULL;
    ck_assert_int_eq(tsr_crypto_sealer_create(kr, &AD_APP, TSR_CRYPTO_STREAM_SEGMENT_MAX + 1,
                                              collect_cb, &pt, &s, &err),
                     TSR_EINVAL);
    ck_assert_ptr_null(s);

    free(bad);
    tsr_crypto_keyring_destroy(kr);
    tsr_crypto_kek_set_destroy(ks);
    tsr_buf_cleanup(&ct);
    tsr_buf_cleanup(&pt);
}
END_TEST

static tsr_err_t failing_cb(void *ctx, const void *p, size_t n) {
    (void)p;
    (void)n;
    int *calls = ctx;
    return ++*calls >= 2 ? TSR_EIO : TSR_OK;
}

/* 8 MiB through 64 KiB segments with output consumed as it comes: what a data file upload
 * does, in constant memory. */
START_TEST(test_stream_large_file_default_segments_and_callback_failure) {
    const size_t total = 8u << 20;
    uint8_t *chunk = malloc(100000);
    for (size_t i = 0; i < 100000; i++) {
        chunk[i] = (uint8_t)(i ^ (i >> 8));
    }
    tsr_buf_t ct, pt;
    tsr_buf_init(&ct, 0);
    tsr_buf_init(&pt, 0);
    tsr_kek_set_t *ks = kek_set_of(KEK_A, NULL);
    tsr_keyring_t *kr = ring_of(ks, "t-acme", NULL);
    tsr_sealer_t *s = NULL;
    ck_assert_int_eq(tsr_crypto_sealer_create(kr, &AD_APP, 0, collect_cb, &ct, &s, NULL), TSR_OK);
    for (size_t off = 0; off < total; off += 100000) {
        size_t k = total - off < 100000 ? total - off : 100000;
        ck_assert_int_eq(tsr_crypto_sealer_push(s, chunk, k, NULL), TSR_OK);
    }
    ck_assert_int_eq(tsr_crypto_sealer_finish(s, NULL), TSR_OK);
    tsr_crypto_sealer_destroy(s);
    ck_assert_uint_eq(ct.len, 36 + total + 16 * (total / TSR_CRYPTO_STREAM_SEGMENT_DEFAULT));
    ck_assert_int_eq(stream_open(kr, &AD_APP, ct.data, ct.len, 70000, &pt, NULL), TSR_OK);
    ck_assert_uint_eq(pt.len, total);
    ck_assert_mem_eq(pt.data + 300000, chunk, 100000);
    /* A failing sink stops the stream for good. */
    int calls = 0;
    tsr_opener_t *o = NULL;
    ck_assert_int_eq(tsr_crypto_opener_create(kr, &AD_APP, failing_cb, &calls, &o, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_opener_push(o, ct.data, ct.len, NULL), TSR_EIO);
    ck_assert_int_eq(tsr_crypto_opener_push(o, ct.data, 1, NULL), TSR_EIO);
    tsr_crypto_opener_destroy(o);
    calls = 0;
    ck_assert_int_eq(tsr_crypto_sealer_create(kr, &AD_APP, SEG, failing_cb, &calls, &s, NULL),
                     TSR_OK);
    ck_assert_int_eq(tsr_crypto_sealer_push(s, chunk, 1000, NULL), TSR_EIO);
    ck_assert_int_eq(tsr_crypto_sealer_finish(s, NULL), TSR_EIO);
    tsr_crypto_sealer_destroy(s);
    free(chunk);
    tsr_crypto_keyring_destroy(kr);
    tsr_crypto_kek_set_destroy(ks);
    tsr_buf_cleanup(&ct);
    tsr_buf_cleanup(&pt);
}
END_TEST

/* ---- JWT ----------------------------------------------------------------------------------- */

#define NOW 1800000000

static tsr_jwt_keyset_t *signing_set(const char *kid, tsr_jwt_alg_t alg) {
    tsr_jwt_key_t *k = NULL;
    tsr_jwt_keyset_t *ks = tsr_crypto_jwt_keyset_create();
    ck_assert_int_eq(tsr_crypto_jwt_key_generate(kid, alg, &k, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_jwt_keyset_add(ks, k, true, NULL), TSR_OK);
    return ks;
}

static const tsr_jwt_verify_opts_t VOPTS = {
    .issuer = "tessera-identity",
    .audience = "tessera",
    .typ = "tsr+jwt",
    .now_s = NOW,
    .skew_s = 30,
    .require_exp = true,
};

static json_t *good_claims(void) {
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "iss", "tessera-identity", "aud", "tessera",
                     "sub", "u-1", "iat", (json_int_t)NOW - 10, "nbf", (json_int_t)NOW - 10, "exp",
                     (json_int_t)NOW + 300);
}

START_TEST(test_jwt_es256_sign_verify_with_kid_and_claims) {
    tsr_jwt_keyset_t *ks = signing_set("k-2026-11", TSR_JWT_ALG_ES256);
    json_t *c = good_claims(), *out = NULL;
    char *tok = NULL;
    tsr_error_t err = {0};
    ck_assert_int_eq(tsr_crypto_jwt_sign(ks, "tsr+jwt", c, &tok, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_jwt_verify(ks, tok, strlen(tok), &VOPTS, &out, &err), TSR_OK);
    ck_assert_str_eq(json_string_value(json_object_get(out, "sub")), "u-1");
    json_decref(out);
    /* Header: alg, typ and kid as documented. */
    tsr_buf_t h;
    tsr_buf_init(&h, 0);
    ck_assert_int_eq(tsr_crypto_b64url_decode(tok, (size_t)(strchr(tok, '.') - tok), &h, NULL),
                     TSR_OK);
    ck_assert_str_eq(h.data, "{\"alg\":\"ES256\",\"typ\":\"tsr+jwt\",\"kid\":\"k-2026-11\"}");
    tsr_buf_cleanup(&h);
    /* Within the skew: expired 20 s ago with 30 s skew still passes, 40 s ago does not. */
    tsr_jwt_verify_opts_t o = VOPTS;
    o.now_s = NOW + 300 + 20;
    ck_assert_int_eq(tsr_crypto_jwt_verify(ks, tok, strlen(tok), &o, &out, NULL), TSR_OK);
    json_decref(out);
    o.now_s = NOW + 300 + 40;
    ck_assert_int_eq(tsr_crypto_jwt_verify(ks, tok, strlen(tok), &o, &out, &err),
                     TSR_EUNAUTHENTICATED);
    ck_assert_ptr_null(out);
    /* aud as an array containing ours. */
    free(tok);
    json_object_set_new(c, "aud", json_pack("[s,s]", "other", "tessera"));
    ck_assert_int_eq(tsr_crypto_jwt_sign(ks, "tsr+jwt", c, &tok, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_jwt_verify(ks, tok, strlen(tok), &VOPTS, &out, NULL), TSR_OK);
    json_decref(out);
    free(tok);
    /* Without a signing key. */
    tsr_jwt_keyset_t *none = tsr_crypto_jwt_keyset_create();
    ck_assert_int_eq(tsr_crypto_jwt_sign(none, NULL, c, &tok, NULL), TSR_ENOTFOUND);
    ck_assert_ptr_null(tok);
    tsr_crypto_jwt_keyset_destroy(none);
    json_decref(c);
    tsr_crypto_jwt_keyset_destroy(ks);
}
END_TEST

/* RFC 7515 Appendix A.3: the ES256 example JWS verifies under its published key. */
START_TEST(test_jwt_rfc7515_a3_es256_verifies) {
    static const char jwks[] = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"rfc7515\","
                               "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
                               "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";
    static const char tok[] =
        "eyJhbGciOiJFUzI1NiJ9"
        ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0"
        "cnVlfQ"
        ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
    tsr_jwt_keyset_t *ks = tsr_crypto_jwt_keyset_create();
    size_t added = 0;
    json_t *c = NULL;
    tsr_error_t err = {0};
    ck_assert_int_eq(tsr_crypto_jwt_keyset_jwks_parse(ks, jwks, strlen(jwks), &added, NULL),
                     TSR_OK);
    ck_assert_uint_eq(added, 1);
    tsr_jwt_verify_opts_t o = {.issuer = "joe", .now_s = 1300819000, .allow_no_kid = true};
    ck_assert_msg(tsr_crypto_jwt_verify(ks, tok, strlen(tok), &o, &c, &err) == TSR_OK, "%s",
                  err.msg);
    ck_assert(json_is_true(json_object_get(c, "http://example.com/is_root")));
    json_decref(c);
    /* The same token after its exp, and without kid when that is not allowed. */
    o.now_s = 1300819380 + 61;
    ck_assert_int_eq(tsr_crypto_jwt_verify(ks, tok, strlen(tok), &o, &c, NULL),
                     TSR_EUNAUTHENTICATED);
    o.now_s = 1300819000;
    o.allow_no_kid = false;
    ck_assert_int_eq(tsr_crypto_jwt_verify(ks, tok, strlen(tok), &o, &c, &err),
                     TSR_EUNAUTHENTICATED);
    ck_assert_ptr_nonnull(strstr(err.msg, "kid"));
    tsr_crypto_jwt_keyset_destroy(ks);
}
END_TEST

/* HMAC-SHA256 over "h.p" keyed with the verifier's public key text: the classic RS/ES -> HS
 * confusion forgery. */
static char *forge_hs256(const char *header, const char *payload, const char *keytext) {
    tsr_buf_t b;
    uint8_t mac[32];
    unsigned int maclen = 0;
    tsr_buf_init(&b, 0);
    ck_assert_int_eq(tsr_crypto_b64url_encode(header, strlen(header), &b), TSR_OK);
    ck_assert_int_eq(tsr_buf_append(&b, ".", 1), TSR_OK);
    ck_assert_int_eq(tsr_crypto_b64url_encode(payload, strlen(payload), &b), TSR_OK);
    ck_assert_ptr_nonnull(HMAC(EVP_sha256(), keytext, (int)strlen(keytext),
                               (const unsigned char *)b.data, b.len, mac, &maclen));
    ck_assert_int_eq(tsr_buf_append(&b, ".", 1), TSR_OK);
    ck_assert_int_eq(tsr_crypto_b64url_encode(mac, maclen, &b), TSR_OK);
    return tsr_buf_take(&b, NULL);
}

static char *raw_token(const tsr_jwt_keyset_t *ks, const char *kid, const char *header,
                       const char *payload) {
    char *tok = NULL;
    const tsr_jwt_key_t *k = tsr_crypto__keyset_find(ks, kid);
    ck_assert_ptr_nonnull(k);
    ck_assert_int_eq(tsr_crypto__jws_sign_raw(k, header, payload, &tok, NULL), TSR_OK);
    return tok;
}

static char *b64(const char *s) {
    tsr_buf_t b;
    tsr_buf_init(&b, 0);
    ck_assert_int_eq(tsr_crypto_b64url_encode(s, strlen(s), &b), TSR_OK);
    return tsr_buf_take(&b, NULL);
}

static char *replace_part(const char *tok, int part, const char *with) {
    tsr_buf_t b;
    const char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
    tsr_buf_init(&b, 0);
    if (part == 0) {
        tsr_buf_appendf(&b, "%s%s", with, d1);
    } else if (part == 1) {
        tsr_buf_appendf(&b, "%.*s.%s%s", (int)(d1 - tok), tok, with, d2);
    } else {
        tsr_buf_appendf(&b, "%.*s.%s", (int)(d2 - tok), tok, with);
    }
    return tsr_buf_take(&b, NULL);
}

START_TEST(test_jwt_negative_matrix_is_rejected) {
    tsr_jwt_keyset_t *ks = signing_set("k1", TSR_JWT_ALG_ES256);
    char *jwks = NULL;
    ck_assert_int_eq(tsr_crypto_jwt_keyset_jwks_format(ks, &jwks, NULL), TSR_OK);
    const char *H = "{\"alg\":\"ES256\",\"typ\":\"tsr+jwt\",\"kid\":\"k1\"}";
    char P[512];
    snprintf(P, sizeof(P),
             "{\"iss\":\"tessera-identity\",\"aud\":\"tessera\",\"sub\":\"u\",\"iat\":%d,"
             "\"exp\":%d}",
             NOW, NOW + 300);
    char *good = raw_token(ks, "k1", H, P);
    json_t *c = NULL;
    ck_assert_int_eq(tsr_crypto_jwt_verify(ks, good, strlen(good), &VOPTS, &c, NULL), TSR_OK);
    json_decref(c);

#define CASES 40
    struct {
        const char *name;
        char *tok;
        tsr_err_t want;
    } m[CASES];
    size_t n = 0;
    char buf[1024];
#define ADD(nm, t) (m[n].name = (nm), m[n].tok = (t), m[n].want = TSR_EUNAUTHENTICATED, n++)
#define CLAIMS(...) (snprintf(buf, sizeof(buf), __VA_ARGS__), buf)
    char *none = b64("{\"alg\":\"none\",\"typ\":\"tsr+jwt\",\"kid\":\"k1\"}");
    ADD("alg none, original signature", replace_part(good, 0, none));
    {
        char *t = replace_part(good, 0, none);
        ADD("alg none, empty signature", replace_part(t, 2, ""));
        free(t);
    }
    free(none);
    ADD("alg HS256 keyed with the public JWKS",
        forge_hs256("{\"alg\":\"HS256\",\"typ\":\"tsr+jwt\",\"kid\":\"k1\"}", P, jwks));
    ADD("alg HS256 keyed with the kid", forge_hs256("{\"alg\":\"HS256\",\"kid\":\"k1\"}", P, "k1"));
    ADD("alg RS256 on an EC key",
        raw_token(ks, "k1", "{\"alg\":\"RS256\",\"typ\":\"tsr+jwt\",\"kid\":\"k1\"}", P));
    ADD("alg ES512",
        raw_token(ks, "k1", "{\"alg\":\"ES512\",\"typ\":\"tsr+jwt\",\"kid\":\"k1\"}", P));
    ADD("alg missing", raw_token(ks, "k1", "{\"typ\":\"tsr+jwt\",\"kid\":\"k1\"}", P));
    ADD("alg lower case",
        raw_token(ks, "k1", "{\"alg\":\"es256\",\"typ\":\"tsr+jwt\",\"kid\":\"k1\"}", P));
    ADD("unknown kid",
        raw_token(ks, "k1", "{\"alg\":\"ES256\",\"typ\":\"tsr+jwt\",\"kid\":\"k9\"}", P));
    ADD("kid missing", raw_token(ks, "k1", "{\"alg\":\"ES256\",\"typ\":\"tsr+jwt\"}", P));
    ADD("kid not a string",
        raw_token(ks, "k1", "{\"alg\":\"ES256\",\"typ\":\"tsr+jwt\",\"kid\":1}", P));
    ADD("wrong typ", raw_token(ks, "k1", "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"k1\"}", P));
    ADD("crit header", raw_token(ks, "k1",
                                 "{\"alg\":\"ES256\",\"typ\":\"tsr+jwt\",\"kid\":\"k1\","
                                 "\"crit\":[\"exp\"]}",
                                 P));
    ADD("duplicate alg in header",
        raw_token(ks, "k1",
                  "{\"alg\":\"none\",\"alg\":\"ES256\",\"typ\":\"tsr+jwt\",\"kid\":\"k1\"}", P));
    ADD("header is an array", raw_token(ks, "k1", "[\"ES256\"]", P));
    ADD("expired", raw_token(ks, "k1", H,
                             CLAIMS("{\"iss\":\"tessera-identity\",\"aud\":\"tessera\","
                                    "\"exp\":%d}",
                                    NOW - 31)));
    ADD("not yet valid (nbf)",
        raw_token(ks, "k1", H,
                  CLAIMS("{\"iss\":\"tessera-identity\",\"aud\":\"tessera\",\"nbf\":%d,"
                         "\"exp\":%d}",
                         NOW + 60, NOW + 300)));
    ADD("issued in the future (iat)",
        raw_token(ks, "k1", H,
                  CLAIMS("{\"iss\":\"tessera-identity\",\"aud\":\"tessera\",\"iat\":%d,"
                         "\"exp\":%d}",
                         NOW + 60, NOW + 300)));
    ADD("exp missing",
        raw_token(ks, "k1", H, "{\"iss\":\"tessera-identity\",\"aud\":\"tessera\"}"));
    ADD("exp as a string",
        raw_token(ks, "k1", H,
                  CLAIMS("{\"iss\":\"tessera-identity\",\"aud\":\"tessera\",\"exp\":\"%d\"}",
                         NOW + 300)));
    ADD("exp as a float",
        raw_token(
            ks, "k1", H,
            CLAIMS("{\"iss\":\"tessera-identity\",\"aud\":\"tessera\",\"exp\":%d.5}", NOW + 300)));
    ADD("wrong iss",
        raw_token(ks, "k1", H,
                  CLAIMS("{\"iss\":\"evil\",\"aud\":\"tessera\",\"exp\":%d}", NOW + 300)));
    ADD("wrong aud", raw_token(ks, "k1", H,
                               CLAIMS("{\"iss\":\"tessera-identity\",\"aud\":\"other\","
                                      "\"exp\":%d}",
                                      NOW + 300)));
    ADD("aud array without ours",
        raw_token(
            ks, "k1", H,
            CLAIMS("{\"iss\":\"tessera-identity\",\"aud\":[\"a\",\"b\"],\"exp\":%d}", NOW + 300)));
    {
        char *p2 = b64(CLAIMS("{\"iss\":\"tessera-identity\",\"aud\":\"tessera\",\"sub\":"
                              "\"admin\",\"exp\":%d}",
                              NOW + 300));
        ADD("payload swapped (signature over another payload)", replace_part(good, 1, p2));
        free(p2);
    }
    {
        char *t = tsr_xstrdup(good);
        char *last = strrchr(t, '.') + 5;
        *last = *last == 'A' ? 'B' : 'A';
        ADD("signature byte changed", t);
    }
    ADD("malformed base64 (padding)", replace_part(good, 2, "AAAA=="));
    ADD("malformed base64 (bad character)", replace_part(good, 1, "eyJ!"));
    ADD("signature of the wrong length", replace_part(good, 2, "AAAAAAAAAAAAAAAAAAAAAA"));
    ADD("two parts", tsr_xstrdup("eyJhbGciOiJFUzI1NiJ9.e30"));
    {
        tsr_buf_t b;
        tsr_buf_init(&b, 0);
        tsr_buf_appendf(&b, "%s.e30", good);
        ADD("four parts", tsr_buf_take(&b, NULL));
    }
    {
        char *big = malloc(TSR_CRYPTO_JWT_MAX_DEFAULT + 2);
        memset(big, 'A', TSR_CRYPTO_JWT_MAX_DEFAULT + 1);
        big[TSR_CRYPTO_JWT_MAX_DEFAULT + 1] = '\0';
        big[10] = '.';
        big[20] = '.';
        ADD("oversized token", big);
        m[n - 1].want = TSR_ETOOBIG;
    }
    ck_assert_uint_le(n, CASES);
    ck_assert_uint_ge(n, 15);
    for (size_t i = 0; i < n; i++) {
        tsr_error_t err = {0};
        c = (json_t *)1;
        tsr_err_t rc = tsr_crypto_jwt_verify(ks, m[i].tok, strlen(m[i].tok), &VOPTS, &c, &err);
        ck_assert_msg(rc == m[i].want, "%s: rc %d (%s)", m[i].name, rc, err.msg);
        ck_assert_msg(c == NULL, "%s: claims returned", m[i].name);
        ck_assert_msg(err.msg[0] != '\0', "%s: no reason", m[i].name);
        free(m[i].tok);
    }
#undef ADD
#undef CLAIMS
    /* A NULL or empty token. */
    ck_assert_int_eq(tsr_crypto_jwt_verify(ks, "", 0, &VOPTS, &c, NULL), TSR_EUNAUTHENTICATED);
    ck_assert_int_eq(tsr_crypto_jwt_verify(ks, NULL, 0, &VOPTS, &c, NULL), TSR_EUNAUTHENTICATED);
    /* RS256 allowed by the options still cannot use an EC key. */
    tsr_jwt_verify_opts_t o = VOPTS;
    o.algs = TSR_JWT_ALG_RS256;
    ck_assert_int_eq(tsr_crypto_jwt_verify(ks, good, strlen(good), &o, &c, NULL),
                     TSR_EUNAUTHENTICATED);
    free(good);
    free(jwks);
    tsr_crypto_jwt_keyset_destroy(ks);
}
END_TEST

START_TEST(test_jwt_key_rotation_old_kid_verifies_until_removed) {
    tsr_jwt_keyset_t *ks = signing_set("k-old", TSR_JWT_ALG_ES256);
    json_t *c = good_claims(), *out = NULL;
    char *t_old = NULL, *t_new = NULL;
    ck_assert_int_eq(tsr_crypto_jwt_sign(ks, "tsr+jwt", c, &t_old, NULL), TSR_OK);
    tsr_jwt_key_t *k = NULL;
    ck_assert_int_eq(tsr_crypto_jwt_key_generate("k-new", TSR_JWT_ALG_ES256, &k, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_jwt_keyset_add(ks, k, true, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_jwt_sign(ks, "tsr+jwt", c, &t_new, NULL), TSR_OK);
    ck_assert_ptr_nonnull(strstr(t_new, "."));
    ck_assert_uint_eq(tsr_crypto_jwt_keyset_count(ks), 2);
    ck_assert_int_eq(tsr_crypto_jwt_verify(ks, t_old, strlen(t_old), &VOPTS, &out, NULL), TSR_OK);
    json_decref(out);
    ck_assert_int_eq(tsr_crypto_jwt_verify(ks, t_new, strlen(t_new), &VOPTS, &out, NULL), TSR_OK);
    json_decref(out);
    /* The JWKS publishes both, and a verifier built from it accepts both. */
    char *jwks = NULL;
    size_t added = 0;
    ck_assert_int_eq(tsr_crypto_jwt_keyset_jwks_format(ks, &jwks, NULL), TSR_OK);
    ck_assert_ptr_null(strstr(jwks, "\"d\""));
    tsr_jwt_keyset_t *pub = tsr_crypto_jwt_keyset_create();
    ck_assert_int_eq(tsr_crypto_jwt_keyset_jwks_parse(pub, jwks, strlen(jwks), &added, NULL),
                     TSR_OK);
    ck_assert_uint_eq(added, 2);
    ck_assert_int_eq(tsr_crypto_jwt_verify(pub, t_old, strlen(t_old), &VOPTS, &out, NULL), TSR_OK);
    json_decref(out);
    ck_assert_int_eq(tsr_crypto_jwt_verify(pub, t_new, strlen(t_new), &VOPTS, &out, NULL), TSR_OK);
    json_decref(out);
    /* A public-only set cannot sign. */
    char *t = NULL;
    ck_assert_int_eq(tsr_crypto_jwt_sign(pub, NULL, c, &t, NULL), TSR_ENOTFOUND);
    /* Importing the same JWKS again: duplicate kids. */
    ck_assert_int_eq(tsr_crypto_jwt_keyset_jwks_parse(pub, jwks, strlen(jwks), &added, NULL),
                     TSR_ECONFLICT);
    /* End of the overlap: the old kid goes, its tokens stop verifying. */
    ck_assert_int_eq(tsr_crypto_jwt_keyset_remove(ks, "k-old", NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_jwt_keyset_remove(ks, "k-old", NULL), TSR_ENOTFOUND);
    ck_assert_int_eq(tsr_crypto_jwt_verify(ks, t_old, strlen(t_old), &VOPTS, &out, NULL),
                     TSR_EUNAUTHENTICATED);
    ck_assert_int_eq(tsr_crypto_jwt_verify(ks, t_new, strlen(t_new), &VOPTS, &out, NULL), TSR_OK);
    json_decref(out);
    free(t_new);
    ck_assert_int_eq(tsr_crypto_jwt_sign(ks, "tsr+jwt", c, &t_new, NULL), TSR_OK);
    free(t_new);
    /* Duplicate kid on add. */
    ck_assert_int_eq(tsr_crypto_jwt_key_generate("k-new", TSR_JWT_ALG_ES256, &k, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_jwt_keyset_add(ks, k, false, NULL), TSR_ECONFLICT);
    ck_assert_int_eq(tsr_crypto_jwt_key_generate("bad kid!", TSR_JWT_ALG_ES256, &k, NULL),
                     TSR_EINVAL);
    free(jwks);
    free(t_old);
    json_decref(c);
    tsr_crypto_jwt_keyset_destroy(pub);
    tsr_crypto_jwt_keyset_destroy(ks);
}
END_TEST

START_TEST(test_jwt_rs256_sign_verify_and_jwks_roundtrip) {
    tsr_jwt_keyset_t *ks = signing_set("rsa-1", TSR_JWT_ALG_RS256);
    json_t *c = good_claims(), *out = NULL;
    char *tok = NULL, *jwks = NULL;
    size_t added = 0;
    tsr_error_t err = {0};
    ck_assert_int_eq(tsr_crypto_jwt_sign(ks, "tsr+jwt", c, &tok, NULL), TSR_OK);
    /* RS256 must be allowed explicitly: the default allow-list is ES256 only. */
    ck_assert_int_eq(tsr_crypto_jwt_verify(ks, tok, strlen(tok), &VOPTS, &out, &err),
                     TSR_EUNAUTHENTICATED);
    tsr_jwt_verify_opts_t o = VOPTS;
    o.algs = TSR_JWT_ALG_ES256 | TSR_JWT_ALG_RS256;
    ck_assert_int_eq(tsr_crypto_jwt_verify(ks, tok, strlen(tok), &o, &out, &err), TSR_OK);
    json_decref(out);
    ck_assert_int_eq(tsr_crypto_jwt_keyset_jwks_format(ks, &jwks, NULL), TSR_OK);
    ck_assert_ptr_nonnull(strstr(jwks, "\"kty\":\"RSA\""));
    ck_assert_ptr_nonnull(strstr(jwks, "\"alg\":\"RS256\""));
    tsr_jwt_keyset_t *pub = tsr_crypto_jwt_keyset_create();
    ck_assert_int_eq(tsr_crypto_jwt_keyset_jwks_parse(pub, jwks, strlen(jwks), &added, NULL),
                     TSR_OK);
    ck_assert_uint_eq(added, 1);
    ck_assert_int_eq(tsr_crypto_jwt_verify(pub, tok, strlen(tok), &o, &out, &err), TSR_OK);
    json_decref(out);
    /* The same modulus with e = 1 (every "signature" would verify) is not imported. */
    char *e1 = tsr_xstrdup(jwks);
    char *e = strstr(e1, "\"e\":\"AQAB\"");
    ck_assert_ptr_nonnull(e);
    memcpy(e, "\"e\":\"AQ\"  ", 10);
    tsr_jwt_keyset_t *weak = tsr_crypto_jwt_keyset_create();
    ck_assert_int_eq(tsr_crypto_jwt_keyset_jwks_parse(weak, e1, strlen(e1), &added, NULL), TSR_OK);
    ck_assert_uint_eq(added, 0);
    tsr_crypto_jwt_keyset_destroy(weak);
    free(e1);
    /* The RSA key under an ES256 header, and HS256 keyed with its JWKS: both refused. */
    char P[256];
    snprintf(P, sizeof(P), "{\"iss\":\"tessera-identity\",\"aud\":\"tessera\",\"exp\":%d}",
             NOW + 60);
    char *hs = forge_hs256("{\"alg\":\"HS256\",\"typ\":\"tsr+jwt\",\"kid\":\"rsa-1\"}", P, jwks);
    ck_assert_int_eq(tsr_crypto_jwt_verify(pub, hs, strlen(hs), &o, &out, NULL),
                     TSR_EUNAUTHENTICATED);
    char *es =
        raw_token(ks, "rsa-1", "{\"alg\":\"ES256\",\"typ\":\"tsr+jwt\",\"kid\":\"rsa-1\"}", P);
    ck_assert_int_eq(tsr_crypto_jwt_verify(pub, es, strlen(es), &o, &out, &err),
                     TSR_EUNAUTHENTICATED);
    ck_assert_ptr_nonnull(strstr(err.msg, "alg"));
    free(hs);
    free(es);
    free(tok);
    free(jwks);
    json_decref(c);
    tsr_crypto_jwt_keyset_destroy(pub);
    tsr_crypto_jwt_keyset_destroy(ks);
}
END_TEST

START_TEST(test_jwks_parse_skips_unusable_keys_and_caps_input) {
    static const char *skipped[] = {
        /* another curve */
        "{\"kty\":\"EC\",\"crv\":\"P-384\",\"kid\":\"a\",\"x\":\"AA\",\"y\":\"AA\"}",
        /* a point not on P-256 (RFC 7515's x with y+1) */
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"b\","
        "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
        "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a4\"}",
        /* no kid, bad kid */
        "{\"kty\":\"EC\",\"crv\":\"P-256\","
        "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
        "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}",
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a b\","
        "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
        "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}",
        /* use enc, alg mismatch */
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"c\",\"use\":\"enc\","
        "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
        "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}",
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"d\",\"alg\":\"RS256\","
        "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
        "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}",
        /* symmetric key, RSA under 2048 bits, garbage */
        "{\"kty\":\"oct\",\"kid\":\"e\",\"k\":\"c2VjcmV0\"}",
        "{\"kty\":\"RSA\",\"kid\":\"f\",\"n\":\"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhW"
        "x4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBX"
        "ArwlL\",\"e\":\"AQAB\"}",
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"g\",\"x\":\"!!\",\"y\":7}",
        "17",
    };
    tsr_jwt_keyset_t *ks = tsr_crypto_jwt_keyset_create();
    size_t added = 99;
    tsr_buf_t doc;
    tsr_buf_init(&doc, 0);
    tsr_buf_append_str(&doc, "{\"keys\":[");
    for (size_t i = 0; i < sizeof(skipped) / sizeof(skipped[0]); i++) {
        tsr_buf_appendf(&doc, "%s%s", i ? "," : "", skipped[i]);
    }
    tsr_buf_append_str(&doc, "]}");
    ck_assert_int_eq(tsr_crypto_jwt_keyset_jwks_parse(ks, doc.data, doc.len, &added, NULL), TSR_OK);
    ck_assert_uint_eq(added, 0);
    ck_assert_uint_eq(tsr_crypto_jwt_keyset_count(ks), 0);
    const char *bad[] = {
        "", "[]", "{}", "{\"keys\":{}}", "{\"keys\":[", "{\"keys\":[],\"keys\":[]}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(tsr_crypto_jwt_keyset_jwks_parse(ks, bad[i], strlen(bad[i]), NULL, NULL),
                         TSR_EINVAL);
    }
    char *big = calloc(1, 256 * 1024 + 2);
    memset(big, ' ', 256 * 1024 + 1);
    ck_assert_int_eq(tsr_crypto_jwt_keyset_jwks_parse(ks, big, 256 * 1024 + 1, NULL, NULL),
                     TSR_ETOOBIG);
    free(big);
    tsr_buf_cleanup(&doc);
    tsr_crypto_jwt_keyset_destroy(ks);
}
END_TEST

START_TEST(test_jwt_key_pem_roundtrip_and_save_0600) {
    char path[300];
    struct stat st;
    char *pem = NULL, *pem2 = NULL;
    tsr_jwt_key_t *k = NULL, *k2 = NULL;
    tsr_error_t err = {0};
    snprintf(path, sizeof(path), "%s/signing.pem", tmpdir);
    ck_assert_int_eq(tsr_crypto_jwt_key_generate("k1", TSR_JWT_ALG_ES256, &k, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_jwt_key_save(k, path, NULL), TSR_OK);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(tsr_crypto_jwt_key_load(path, "k1", &k2, &err), TSR_OK);
    ck_assert_int_eq(tsr_crypto_jwt_key_alg(k2), TSR_JWT_ALG_ES256);
    ck_assert_int_eq(tsr_crypto_jwt_key_format(k, &pem, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_jwt_key_format(k2, &pem2, NULL), TSR_OK);
    ck_assert_str_eq(pem, pem2);
    ck_assert_ptr_nonnull(strstr(pem, "BEGIN PRIVATE KEY"));
    /* A token signed by the reloaded key verifies under the original's public key. */
    tsr_jwt_keyset_t *signer = tsr_crypto_jwt_keyset_create();
    tsr_jwt_keyset_t *verifier = tsr_crypto_jwt_keyset_create();
    ck_assert_int_eq(tsr_crypto_jwt_keyset_add(signer, k2, true, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_jwt_keyset_add(verifier, k, false, NULL), TSR_OK);
    json_t *c = good_claims(), *out = NULL;
    char *tok = NULL;
    ck_assert_int_eq(tsr_crypto_jwt_sign(signer, "tsr+jwt", c, &tok, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_jwt_verify(verifier, tok, strlen(tok), &VOPTS, &out, NULL), TSR_OK);
    json_decref(out);
    /* Garbage, truncated PEM, oversized PEM, bad kid. */
    ck_assert_int_eq(tsr_crypto_jwt_key_parse("nope", 4, "k", &k2, &err), TSR_EINVAL);
    ck_assert_int_eq(tsr_crypto_jwt_key_parse(pem, strlen(pem) / 2, "k", &k2, &err), TSR_EINVAL);
    ck_assert_int_eq(tsr_crypto_jwt_key_parse(pem, 16 * 1024 + 1, "k", &k2, &err), TSR_ETOOBIG);
    ck_assert_int_eq(tsr_crypto_jwt_key_parse(pem, strlen(pem), "", &k2, &err), TSR_EINVAL);
    ck_assert_ptr_null(k2);
    snprintf(path, sizeof(path), "%s/missing.pem", tmpdir);
    ck_assert_int_eq(tsr_crypto_jwt_key_load(path, "k1", &k2, &err), TSR_EIO);
    free(tok);
    json_decref(c);
    free(pem);
    free(pem2);
    tsr_crypto_jwt_keyset_destroy(signer);
    tsr_crypto_jwt_keyset_destroy(verifier);
}
END_TEST

/* The shape a service uses: readers take a reference to the current key set under a lock and
 * verify outside it; a rotation builds a new set from the old one's JWKS plus a new signing
 * key and swaps the pointer; the old set is freed by whichever side drops it last. Readers
 * also open blobs through a shared keyring. Run under ASan this catches use-after-free. */
typedef struct {
    pthread_mutex_t mu;
    tsr_jwt_keyset_t *cur;
    tsr_keyring_t *kr;
    const char *tok;
    const tsr_buf_t *blob;
    int ok;
} shared_t;

static void *reader(void *arg) {
    shared_t *sh = arg;
    int ok = 0;
    tsr_buf_t pt;
    tsr_buf_init(&pt, 0);
    for (int i = 0; i < 150; i++) {
        pthread_mutex_lock(&sh->mu);
        tsr_jwt_keyset_t *ks = tsr_crypto_jwt_keyset_ref(sh->cur);
        pthread_mutex_unlock(&sh->mu);
        json_t *c = NULL;
        tsr_buf_reset(&pt);
        if (tsr_crypto_jwt_verify(ks, sh->tok, strlen(sh->tok), &VOPTS, &c, NULL) == TSR_OK &&
            tsr_crypto_open(sh->kr, &AD_APP, sh->blob->data, sh->blob->len, &pt, NULL) == TSR_OK &&
            pt.len == 4) {
            ok++;
        }
        json_decref(c);
        tsr_crypto_jwt_keyset_destroy(ks);
    }
    tsr_buf_cleanup(&pt);
    pthread_mutex_lock(&sh->mu);
    sh->ok += ok;
    pthread_mutex_unlock(&sh->mu);
    return NULL;
}

START_TEST(test_shared_keyset_swap_and_keyring_from_threads) {
    shared_t sh = {.ok = 0};
    pthread_t th[4];
    char *tok = NULL;
    tsr_buf_t blob;
    tsr_buf_init(&blob, 0);
    pthread_mutex_init(&sh.mu, NULL);
    sh.cur = signing_set("k0", TSR_JWT_ALG_ES256);
    json_t *c = good_claims();
    ck_assert_int_eq(tsr_crypto_jwt_sign(sh.cur, "tsr+jwt", c, &tok, NULL), TSR_OK);
    tsr_kek_set_t *ks = kek_set_of(KEK_A, NULL);
    tsr_keyring_t *kr = ring_of(ks, "t-acme", NULL);
    ck_assert_int_eq(tsr_crypto_seal(kr, &AD_APP, "data", 4, &blob, NULL), TSR_OK);
    sh.kr = tsr_crypto_keyring_ref(kr);
    tsr_crypto_keyring_destroy(kr); /* the cache's reference is the one left */
    sh.tok = tok;
    sh.blob = &blob;
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(pthread_create(&th[i], NULL, reader, &sh), 0);
    }
    for (int r = 1; r <= 8; r++) {
        char *jwks = NULL, kid[16];
        tsr_jwt_key_t *k = NULL;
        pthread_mutex_lock(&sh.mu);
        tsr_jwt_keyset_t *old = tsr_crypto_jwt_keyset_ref(sh.cur);
        pthread_mutex_unlock(&sh.mu);
        tsr_jwt_keyset_t *next = tsr_crypto_jwt_keyset_create();
        ck_assert_int_eq(tsr_crypto_jwt_keyset_jwks_format(old, &jwks, NULL), TSR_OK);
        ck_assert_int_eq(tsr_crypto_jwt_keyset_jwks_parse(next, jwks, strlen(jwks), NULL, NULL),
                         TSR_OK);
        snprintf(kid, sizeof(kid), "k%d", r);
        ck_assert_int_eq(tsr_crypto_jwt_key_generate(kid, TSR_JWT_ALG_ES256, &k, NULL), TSR_OK);
        ck_assert_int_eq(tsr_crypto_jwt_keyset_add(next, k, true, NULL), TSR_OK);
        pthread_mutex_lock(&sh.mu);
        sh.cur = next;
        pthread_mutex_unlock(&sh.mu);
        tsr_crypto_jwt_keyset_destroy(old); /* ours */
        tsr_crypto_jwt_keyset_destroy(old); /* the pointer's */
        free(jwks);
    }
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    }
    ck_assert_int_eq(sh.ok, 4 * 150);
    ck_assert_uint_eq(tsr_crypto_jwt_keyset_count(sh.cur), 9);
    tsr_crypto_jwt_keyset_destroy(sh.cur);
    tsr_crypto_keyring_destroy(sh.kr);
    tsr_crypto_kek_set_destroy(ks);
    pthread_mutex_destroy(&sh.mu);
    json_decref(c);
    free(tok);
    tsr_buf_cleanup(&blob);
}
END_TEST

/* ---- passwords and TOTP -------------------------------------------------------------------- */

START_TEST(test_password_argon2id_hash_verify_and_caps) {
    const tsr_argon2_params_t cheap = {.t_cost = 1, .m_cost_kib = 1024, .parallelism = 1};
    char *h1 = NULL, *h2 = NULL;
    tsr_error_t err = {0};
    ck_assert_int_eq(tsr_crypto_password_hash("correct horse", 13, &cheap, &h1, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_password_hash("correct horse", 13, &cheap, &h2, NULL), TSR_OK);
    ck_assert(strncmp(h1, "$argon2id$v=19$m=1024,t=1,p=1$", 30) == 0);
    ck_assert_str_ne(h1, h2); /* per-user salt */
    ck_assert_int_eq(tsr_crypto_password_verify(h1, "correct horse", 13, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_password_verify(h2, "correct horse", 13, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_password_verify(h1, "correct horsE", 13, &err),
                     TSR_EUNAUTHENTICATED);
    ck_assert_int_eq(tsr_crypto_password_verify(h1, "correct hors", 12, &err),
                     TSR_EUNAUTHENTICATED);
    ck_assert_int_eq(tsr_crypto_password_verify(h1, "", 0, &err), TSR_EUNAUTHENTICATED);
    /* Malformed or foreign hashes. */
    ck_assert_int_eq(
        tsr_crypto_password_verify("$argon2i$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA", "x", 1, &err),
        TSR_EINVAL);
    ck_assert_int_eq(tsr_crypto_password_verify("plain", "plain", 5, &err), TSR_EINVAL);
    ck_assert_int_eq(tsr_crypto_password_verify(NULL, "x", 1, &err), TSR_EINVAL);
    /* A stored hash whose costs were raised by whoever could write the record: refused
     * before libargon2 would allocate 64 GiB. */
    char tampered[256];
    snprintf(tampered, sizeof(tampered), "$argon2id$v=19$m=67108864,t=1,p=1%s",
             strchr(h1 + 29, '$'));
    ck_assert_int_eq(tsr_crypto_password_verify(tampered, "correct horse", 13, &err), TSR_EINVAL);
    snprintf(tampered, sizeof(tampered), "$argon2id$v=19$m=1024,t=1000,p=1%s",
             strchr(h1 + 29, '$'));
    ck_assert_int_eq(tsr_crypto_password_verify(tampered, "correct horse", 13, &err), TSR_EINVAL);
    /* Caps on input. */
    char pw[1100];
    memset(pw, 'p', sizeof(pw));
    char *h3 = NULL;
    ck_assert_int_eq(tsr_crypto_password_hash(pw, 1025, &cheap, &h3, &err), TSR_ETOOBIG);
    ck_assert_int_eq(tsr_crypto_password_verify(h1, pw, 1025, &err), TSR_EUNAUTHENTICATED);
    const tsr_argon2_params_t huge = {.t_cost = 1, .m_cost_kib = 8u << 20, .parallelism = 1};
    ck_assert_int_eq(tsr_crypto_password_hash("x", 1, &huge, &h3, &err), TSR_EINVAL);
    ck_assert_ptr_null(h3);
    free(h1);
    free(h2);
}
END_TEST

/* RFC 6238 Appendix B: 8-digit codes for SHA1/SHA256/SHA512 at the six reference times. */
START_TEST(test_totp_rfc6238_vectors) {
    static const char *seed20 = "12345678901234567890";
    static const char *seed32 = "12345678901234567890123456789012";
    static const char *seed64 = "1234567890123456789012345678901234567890123456789012345678901234";
    static const struct {
        int64_t t;
        uint32_t sha1, sha256, sha512;
    } V[] = {
        {59, 94287082, 46119246, 90693936},         {1111111109, 7081804, 68084774, 25091201},
        {1111111111, 14050471, 67062674, 99943326}, {1234567890, 89005924, 91819424, 93441116},
        {2000000000, 69279037, 90698825, 38618901}, {20000000000LL, 65353130, 77737706, 47863826},
    };
    for (size_t i = 0; i < sizeof(V) / sizeof(V[0]); i++) {
        uint32_t code = 0;
        tsr_totp_params_t p = {.hash = TSR_TOTP_SHA1, .digits = 8};
        ck_assert_int_eq(tsr_crypto_totp_code((const uint8_t *)seed20, 20, &p, V[i].t, &code, NULL),
                         TSR_OK);
        ck_assert_uint_eq(code, V[i].sha1);
        p.hash = TSR_TOTP_SHA256;
        ck_assert_int_eq(tsr_crypto_totp_code((const uint8_t *)seed32, 32, &p, V[i].t, &code, NULL),
                         TSR_OK);
        ck_assert_uint_eq(code, V[i].sha256);
        p.hash = TSR_TOTP_SHA512;
        ck_assert_int_eq(tsr_crypto_totp_code((const uint8_t *)seed64, 64, &p, V[i].t, &code, NULL),
                         TSR_OK);
        ck_assert_uint_eq(code, V[i].sha512);
    }
    /* Default: 6 digits, SHA1 (the last 6 digits of the 8-digit code). */
    uint32_t code = 0;
    ck_assert_int_eq(tsr_crypto_totp_code((const uint8_t *)seed20, 20, NULL, 59, &code, NULL),
                     TSR_OK);
    ck_assert_uint_eq(code, 287082);
    tsr_totp_params_t p = {.digits = 9};
    ck_assert_int_eq(tsr_crypto_totp_code((const uint8_t *)seed20, 20, &p, 59, &code, NULL),
                     TSR_EINVAL);
    ck_assert_int_eq(tsr_crypto_totp_code((const uint8_t *)seed20, 0, NULL, 59, &code, NULL),
                     TSR_EINVAL);
    ck_assert_int_eq(tsr_crypto_totp_code((const uint8_t *)seed20, 257, NULL, 59, &code, NULL),
                     TSR_EINVAL);
}
END_TEST

START_TEST(test_totp_verify_window_and_replay) {
    const uint8_t *secret = (const uint8_t *)"12345678901234567890";
    const int64_t t = 1111111111; /* step 37037037, 1 s into it */
    char code[16];
    uint32_t c = 0;
    int64_t last = 0;
    tsr_error_t err = {0};
    /* The code of the previous step is still accepted, once. */
    ck_assert_int_eq(tsr_crypto_totp_code(secret, 20, NULL, t - 30, &c, NULL), TSR_OK);
    snprintf(code, sizeof(code), "%06u", c);
    ck_assert_int_eq(tsr_crypto_totp_verify(secret, 20, NULL, code, t, &last, NULL), TSR_OK);
    ck_assert_int_eq(last, t / 30 - 1);
    ck_assert_int_eq(tsr_crypto_totp_verify(secret, 20, NULL, code, t, &last, &err),
                     TSR_EUNAUTHENTICATED);
    ck_assert_ptr_nonnull(strstr(err.msg, "replay"));
    /* The current step's code is newer: accepted, then replay-blocked too. */
    ck_assert_int_eq(tsr_crypto_totp_code(secret, 20, NULL, t, &c, NULL), TSR_OK);
    snprintf(code, sizeof(code), "%06u", c);
    ck_assert_int_eq(tsr_crypto_totp_verify(secret, 20, NULL, code, t, &last, NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_totp_verify(secret, 20, NULL, code, t + 5, &last, NULL),
                     TSR_EUNAUTHENTICATED);
    /* Two steps away is outside the window. */
    ck_assert_int_eq(tsr_crypto_totp_code(secret, 20, NULL, t + 60, &c, NULL), TSR_OK);
    snprintf(code, sizeof(code), "%06u", c);
    int64_t fresh = 0;
    ck_assert_int_eq(tsr_crypto_totp_verify(secret, 20, NULL, code, t, &fresh, NULL),
                     TSR_EUNAUTHENTICATED);
    ck_assert_int_eq(tsr_crypto_totp_verify(secret, 20, NULL, code, t + 30, &fresh, NULL), TSR_OK);
    /* Not digits, wrong length. */
    ck_assert_int_eq(tsr_crypto_totp_verify(secret, 20, NULL, "12a456", t, NULL, NULL), TSR_EINVAL);
    ck_assert_int_eq(tsr_crypto_totp_verify(secret, 20, NULL, "12345", t, NULL, NULL), TSR_EINVAL);
    ck_assert_int_eq(tsr_crypto_totp_verify(secret, 20, NULL, "1234567", t, NULL, NULL),
                     TSR_EINVAL);
    ck_assert_int_eq(tsr_crypto_totp_verify(secret, 20, NULL, NULL, t, NULL, NULL), TSR_EINVAL);
}
END_TEST

START_TEST(test_random_ct_eq_and_sha256) {
    uint8_t a[32] = {0}, b[32] = {0};
    ck_assert_int_eq(tsr_crypto_random(a, sizeof(a), NULL), TSR_OK);
    ck_assert_int_eq(tsr_crypto_random(b, sizeof(b), NULL), TSR_OK);
    ck_assert(!tsr_crypto_ct_eq(a, b, sizeof(a)));
    memcpy(b, a, sizeof(a));
    ck_assert(tsr_crypto_ct_eq(a, b, sizeof(a)));
    tsr_crypto_cleanse(a, sizeof(a));
    ck_assert_uint_eq(a[0] | a[31], 0);
    /* FIPS 180-2 example: SHA-256("abc"). */
    uint8_t want[32];
    unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", want);
    tsr_crypto_sha256("abc", 3, a);
    ck_assert_mem_eq(a, want, 32);
}
END_TEST

int main(void) {
    Suite *s = suite_create("crypto");
    TCase *prim = tcase_create("primitives");
    tcase_add_test(prim, test_gcm_nist_vectors_match_and_bad_tag_is_corrupt);
    tcase_add_test(prim, test_b64url_decode_is_strict);
    tcase_add_test(prim, test_base32_rfc4648_vectors);
    tcase_add_test(prim, test_random_ct_eq_and_sha256);
    suite_add_tcase(s, prim);
    TCase *keys = tcase_create("keys");
    tcase_add_checked_fixture(keys, tmp_setup, tmp_teardown);
    tcase_add_test(keys, test_kek_file_formats_load_to_the_same_key);
    tcase_add_test(keys, test_kek_file_readable_by_others_is_refused);
    tcase_add_test(keys, test_kek_file_wrong_size_is_einval);
    tcase_add_test(keys, test_kek_file_ensure_creates_0600_once);
    tcase_add_test(keys, test_kek_rotation_new_wraps_old_unwraps_rewrap_retires_old);
    tcase_add_test(keys, test_dek_record_tampered_relabelled_or_other_tenant_fails);
    tcase_add_test(keys, test_keyring_rotate_new_version_for_writes_old_still_opens);
    tcase_add_test(keys, test_keyring_shred_makes_sealed_data_unreadable);
    suite_add_tcase(s, keys);
    TCase *seal = tcase_create("sealing");
    tcase_add_test(seal, test_seal_every_flipped_byte_fails_and_leaves_out_unchanged);
    tcase_add_test(seal, test_seal_other_tenant_kind_object_or_version_fails);
    tcase_add_test(seal, test_stream_roundtrips_at_every_boundary_and_chunking);
    tcase_add_test(seal, test_stream_truncated_reordered_tampered_or_misbound_fails);
    tcase_add_test(seal, test_stream_large_file_default_segments_and_callback_failure);
    suite_add_tcase(s, seal);
    TCase *jwt = tcase_create("jwt");
    tcase_add_checked_fixture(jwt, tmp_setup, tmp_teardown);
    tcase_add_test(jwt, test_jwt_es256_sign_verify_with_kid_and_claims);
    tcase_add_test(jwt, test_jwt_rfc7515_a3_es256_verifies);
    tcase_add_test(jwt, test_jwt_negative_matrix_is_rejected);
    tcase_add_test(jwt, test_jwt_key_rotation_old_kid_verifies_until_removed);
    tcase_add_test(jwt, test_jwt_rs256_sign_verify_and_jwks_roundtrip);
    tcase_add_test(jwt, test_jwks_parse_skips_unusable_keys_and_caps_input);
    tcase_add_test(jwt, test_jwt_key_pem_roundtrip_and_save_0600);
    tcase_add_test(jwt, test_shared_keyset_swap_and_keyring_from_threads);
    suite_add_tcase(s, jwt);
    TCase *pw = tcase_create("passwords");
    tcase_add_test(pw, test_password_argon2id_hash_verify_and_caps);
    tcase_add_test(pw, test_totp_rfc6238_vectors);
    tcase_add_test(pw, test_totp_verify_window_and_replay);
    suite_add_tcase(s, pw);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
