/*
 * pkg/crypto KEK set: the platform's key-encryption keys, one primary that wraps and older
 * ones that still unwrap (rotation). Keys come from files (a local file or a mounted
 * Kubernetes Secret); the local stack creates one with mode 0600 on first start.
 * Invariant: key bytes are cleansed on every exit path that held them.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "crypto_int.h"

#define KEK_MAX 16
#define KEK_FILE_MAX 128 /* bytes read from a key file */

typedef struct {
    uint8_t key[TSR_CRYPTO_KEY_LEN];
    uint8_t id[TSR_CRYPTO_KEK_ID_LEN];
} kek_t;

struct tsr_kek_set {
    kek_t keys[KEK_MAX];
    size_t n;
    int primary; /* index into keys, -1: none */
};

tsr_kek_set_t *tsr_crypto_kek_set_create(void) {
    tsr_kek_set_t *ks = tsr_xcalloc(1, sizeof(*ks));
    ks->primary = -1;
    return ks;
}

void tsr_crypto_kek_set_destroy(tsr_kek_set_t *ks) {
    if (ks == NULL) {
        return;
    }
    tsr_crypto_cleanse(ks, sizeof(*ks));
    free(ks);
}

static void kek_id(const uint8_t key[32], uint8_t id[TSR_CRYPTO_KEK_ID_LEN]) {
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c == NULL || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(c, "tsr-kek-id", 10) != 1 || EVP_DigestUpdate(c, key, 32) != 1 ||
        EVP_DigestFinal_ex(c, md, &mdlen) != 1) {
        /* SHA-256 cannot fail short of memory exhaustion: the pod restarts. */
        abort();
    }
    EVP_MD_CTX_free(c);
    memcpy(id, md, TSR_CRYPTO_KEK_ID_LEN);
}

tsr_err_t tsr_crypto_kek_set_add(tsr_kek_set_t *ks, const uint8_t key[TSR_CRYPTO_KEY_LEN],
                                 bool primary, tsr_error_t *err) {
    uint8_t id[TSR_CRYPTO_KEK_ID_LEN];
    kek_id(key, id);
    for (size_t i = 0; i < ks->n; i++) {
        if (tsr_crypto_ct_eq(ks->keys[i].id, id, sizeof(id))) {
            if (primary) {
                ks->primary = (int)i;
            }
            return TSR_OK;
        }
    }
    if (ks->n == KEK_MAX) {
        return tsr_error_set(err, TSR_ETOOBIG, "KEK set full (%d keys)", KEK_MAX);
    }
    memcpy(ks->keys[ks->n].key, key, TSR_CRYPTO_KEY_LEN);
    memcpy(ks->keys[ks->n].id, id, sizeof(id));
    if (primary || ks->primary < 0) {
        ks->primary = (int)ks->n;
    }
    ks->n++;
    return TSR_OK;
}

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Raw 32 bytes, 64 hex or 44-char standard base64 (a Secret's data), optional newline. */
static tsr_err_t kek_decode(const uint8_t *p, size_t n, uint8_t key[32], tsr_error_t *err) {
    if (n == 32 || (n == 33 && p[32] == '\n')) {
        memcpy(key, p, 32);
        return TSR_OK;
    }
    if (n > 0 && p[n - 1] == '\n') {
        n--;
    }
    if (n == 64) {
        for (size_t i = 0; i < 32; i++) {
            int hi = hexval(p[2 * i]);
            int lo = hexval(p[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                return tsr_error_set(err, TSR_EINVAL, "KEK file: bad hex");
            }
            key[i] = (uint8_t)(hi << 4 | lo);
        }
        return TSR_OK;
    }
    if (n == 44) {
        uint8_t tmp[48];
        /* 32 bytes encode to 43 characters and exactly one '=': anything else is not a KEK. */
        if (p[43] != '=' || p[42] == '=' || EVP_DecodeBlock(tmp, p, 44) != 33) {
            tsr_crypto_cleanse(tmp, sizeof(tmp));
            return tsr_error_set(err, TSR_EINVAL, "KEK file: bad base64");
        }
        memcpy(key, tmp, 32);
        tsr_crypto_cleanse(tmp, sizeof(tmp));
        return TSR_OK;
    }
    return tsr_error_set(err, TSR_EINVAL,
                         "KEK file: need 32 raw bytes, 64 hex or 44 base64, got %zu", n);
}

tsr_err_t tsr_crypto_kek_set_add_file(tsr_kek_set_t *ks, const char *path, bool primary,
                                      tsr_error_t *err) {
    uint8_t buf[KEK_FILE_MAX + 1];
    uint8_t key[32];
    size_t n = 0;
    tsr_err_t rc;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return tsr_error_set(err, TSR_EIO, "KEK file %s: %s", path, strerror(errno));
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = tsr_error_set(err, TSR_EINVAL, "KEK file %s: not a regular file", path);
        goto out;
    }
    /* A key others can read is a key others may have: refuse it, as ssh does (Kubernetes:
     * mount the Secret with defaultMode 0400). */
    if ((st.st_mode & 077) != 0) {
        rc = tsr_error_set(err, TSR_EFORBIDDEN,
                           "KEK file %s: mode %04o, must not be accessible to group or others "
                           "(chmod 600)",
                           path, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    while (n < sizeof(buf)) {
        ssize_t r = read(fd, buf + n, sizeof(buf) - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            rc = tsr_error_set(err, TSR_EIO, "KEK file %s: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0) {
            break;
        }
        n += (size_t)r;
    }
    if (n > KEK_FILE_MAX) {
        rc = tsr_error_set(err, TSR_EINVAL, "KEK file %s: too long", path);
        goto out;
    }
    rc = kek_decode(buf, n, key, err);
    if (rc == TSR_OK) {
        rc = tsr_crypto_kek_set_add(ks, key, primary, err);
    }
out:
    close(fd);
    tsr_crypto_cleanse(buf, sizeof(buf));
    tsr_crypto_cleanse(key, sizeof(key));
    return rc;
}

tsr_err_t tsr_crypto_kek_set_load(tsr_kek_set_t *ks, const char *spec, tsr_error_t *err) {
    tsr_str_t s = tsr_str(spec);
    tsr_str_t tok;
    bool first = true;
    while (tsr_str_next_tok(&s, ',', &tok)) {
        tok = tsr_str_trim(tok);
        if (tok.n == 0) {
            continue;
        }
        char *path = tsr_str_dup(tok);
        tsr_err_t rc = tsr_crypto_kek_set_add_file(ks, path, first, err);
        free(path);
        if (rc != TSR_OK) {
            return rc;
        }
        first = false;
    }
    if (first) {
        return tsr_error_set(err, TSR_EINVAL, "no KEK file configured (TSR_KEK_FILE)");
    }
    return TSR_OK;
}

tsr_err_t tsr_crypto_kek_file_ensure(const char *path, bool *created, tsr_error_t *err) {
    uint8_t key[32];
    tsr_err_t rc = TSR_OK;
    if (created != NULL) {
        *created = false;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST) {
        return TSR_OK;
    }
    if (fd < 0) {
        return tsr_error_set(err, TSR_EIO, "KEK file %s: %s", path, strerror(errno));
    }
    rc = tsr_crypto_random(key, sizeof(key), err);
    if (rc == TSR_OK && (write(fd, key, sizeof(key)) != (ssize_t)sizeof(key) || fsync(fd) != 0)) {
        rc = tsr_error_set(err, TSR_EIO, "KEK file %s: %s", path, strerror(errno));
    }
    close(fd);
    tsr_crypto_cleanse(key, sizeof(key));
    if (rc != TSR_OK) {
        /* A half-written key must not be picked up as a valid KEK on the next start. */
        unlink(path);
    } else if (created != NULL) {
        *created = true;
    }
    return rc;
}

tsr_err_t tsr_crypto_kek_set_primary_id(const tsr_kek_set_t *ks, uint8_t id[TSR_CRYPTO_KEK_ID_LEN],
                                        tsr_error_t *err) {
    if (ks == NULL || ks->primary < 0) {
        return tsr_error_set(err, TSR_ENOTFOUND, "no primary KEK");
    }
    memcpy(id, ks->keys[ks->primary].id, TSR_CRYPTO_KEK_ID_LEN);
    return TSR_OK;
}

const uint8_t *tsr_crypto__kek_find(const tsr_kek_set_t *ks, const uint8_t *id) {
    for (size_t i = 0; i < ks->n; i++) {
        if (memcmp(ks->keys[i].id, id, TSR_CRYPTO_KEK_ID_LEN) == 0) {
            return ks->keys[i].key;
        }
    }
    return NULL;
}

const uint8_t *tsr_crypto__kek_primary(const tsr_kek_set_t *ks, uint8_t id[8]) {
    if (ks->primary < 0) {
        return NULL;
    }
    memcpy(id, ks->keys[ks->primary].id, 8);
    return ks->keys[ks->primary].key;
}
