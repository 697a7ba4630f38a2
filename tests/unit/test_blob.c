/*
 * Unit tests for pkg/blob: key validation, streamed put/get, the size cap, abort, replace,
 * delete, list by prefix with paging, tenant isolation, atomicity (an uncommitted or killed
 * writer leaves nothing visible; two processes replacing one key leave one whole version) and
 * the sweep of dead uploads. Every behaviour runs against the file backend, and
 * also against GridFS when TSR_MONGODB_URI is set (tests/integration/test_mongo.sh runs it
 * against smartmongo, the MongoDB-wire test server). Each test uses a fresh random tenant,
 * so runs against a shared server do not see each other.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blob.h"

#define MB (1024u * 1024u)

/* ---- fixtures ---------------------------------------------------------------------------- */

static int g_nbackends = 1; /* 1: file only; 2: file and GridFS */
static char g_gridfs_uri[1024];

/* The MongoDB URI with database "tessera_test" when it names none, so that a run against a
 * real server never writes into the platform's default database. */
static void gridfs_uri_init(const char *uri) {
    const char *hosts = strstr(uri, "://");
    const char *slash = hosts ? strchr(hosts + 3, '/') : NULL;
    if (slash == NULL) {
        const char *q = hosts ? strchr(hosts + 3, '?') : NULL;
        if (q == NULL)
            snprintf(g_gridfs_uri, sizeof g_gridfs_uri, "%s/tessera_test", uri);
        else
            snprintf(g_gridfs_uri, sizeof g_gridfs_uri, "%.*s/tessera_test%s", (int)(q - uri), uri,
                     q);
    } else if (slash[1] == '\0' || slash[1] == '?') {
        snprintf(g_gridfs_uri, sizeof g_gridfs_uri, "%.*s/tessera_test%s", (int)(slash - uri), uri,
                 slash + 1);
    } else {
        snprintf(g_gridfs_uri, sizeof g_gridfs_uri, "%s", uri);
    }
}

static void rm_rf(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *de;
        while (d != NULL && (de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            char child[4096];
            snprintf(child, sizeof child, "%s/%s", path, de->d_name);
            rm_rf(child);
        }
        if (d != NULL)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

typedef struct {
    tsr_blob_store_t *s;
    char dir[64];     /* file backend root (empty for GridFS) */
    char tenant[32];  /* random per test */
    char tenant2[32]; /* a second tenant */
} fx_t;

static void random_name(char *out, size_t n, const char *prefix) {
    char hex[17];
    unsigned char rnd[8];
    tsr_random_fill(rnd, sizeof rnd);
    tsr_hex_encode(rnd, sizeof rnd, hex);
    snprintf(out, n, "%s%s", prefix, hex);
}

static char *uri_for(int backend, char *dir) {
    static char uri[1100];
    if (backend == 0) {
        snprintf(dir, 64, "/tmp/tsr-blob-test.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(dir));
        snprintf(uri, sizeof uri, "file:%s/root", dir);
    } else {
        dir[0] = '\0';
        snprintf(uri, sizeof uri, "%s", g_gridfs_uri);
    }
    return uri;
}

static void fx_open(fx_t *f, int backend) {
    tsr_error_t err;
    memset(f, 0, sizeof *f);
    const char *uri = uri_for(backend, f->dir);
    tsr_err_t rc = tsr_blob_store_open(uri, &f->s, &err);
    ck_assert_msg(rc == TSR_OK, "open %s: %s", uri, err.msg);
    ck_assert_str_eq(tsr_blob_store_backend(f->s), backend == 0 ? "file" : "gridfs");
    random_name(f->tenant, sizeof f->tenant, "t");
    random_name(f->tenant2, sizeof f->tenant2, "u");
}

static void fx_close(fx_t *f) {
    tsr_blob_store_destroy(f->s);
    if (f->dir[0] != '\0')
        rm_rf(f->dir);
}

static void key_of(char *out, const char *tenant, const char *kind, const char *id,
                   const char *version) {
    tsr_error_t err;
    ck_assert_int_eq(
        tsr_blob_key_format(out, TSR_BLOB_KEY_MAX + 1, tenant, kind, id, version, &err), TSR_OK);
}

static void put_str(fx_t *f, const char *tenant, const char *key, const char *data) {
    tsr_error_t err;
    tsr_err_t rc = tsr_blob_put(f->s, tenant, key, data, strlen(data), MB, &err);
    ck_assert_msg(rc == TSR_OK, "put %s: %s", key, err.msg);
}

static void expect_content(fx_t *f, const char *tenant, const char *key, const char *want) {
    tsr_error_t err;
    char *got = NULL;
    size_t n = 0;
    tsr_err_t rc = tsr_blob_get_all(f->s, tenant, key, MB, &got, &n, &err);
    ck_assert_msg(rc == TSR_OK, "get %s: %s", key, err.msg);
    ck_assert_uint_eq(n, strlen(want));
    ck_assert_str_eq(got, want);
    free(got);
}

static void expect_missing(fx_t *f, const char *tenant, const char *key) {
    tsr_error_t err;
    tsr_blob_reader_t *r = NULL;
    ck_assert_int_eq(tsr_blob_get(f->s, tenant, key, &r, &err), TSR_ENOTFOUND);
    ck_assert_ptr_null(r);
}

static size_t list_count(fx_t *f, const char *tenant, const char *prefix) {
    tsr_error_t err;
    tsr_blob_list_t l;
    tsr_err_t rc = tsr_blob_list(f->s, tenant, prefix, NULL, 10000, &l, &err);
    ck_assert_msg(rc == TSR_OK, "list: %s", err.msg);
    size_t n = l.count;
    tsr_blob_list_cleanup(&l);
    return n;
}

/* A deterministic byte pattern, so a torn or reordered stream shows. */
static unsigned char pattern(size_t i) {
    return (unsigned char)((i * 2654435761u) >> 13);
}

/* ---- keys -------------------------------------------------------------------------------- */

START_TEST(test_blob_key_validate_good_keys_ok) {
    tsr_error_t err;
    ck_assert_int_eq(tsr_blob_key_validate("acme/app/0123abcd/1", &err), TSR_OK);
    ck_assert_int_eq(tsr_blob_key_validate("t_1/data-file/x.csv/v2.1", &err), TSR_OK);
    ck_assert_int_eq(tsr_blob_key_validate("A/B/C/D", &err), TSR_OK);
}
END_TEST

START_TEST(test_blob_key_validate_bad_keys_einval) {
    static const char *const bad[] = {
        "",
        "acme",
        "acme/app/x",
        "acme/app/x/1/extra",
        "/acme/app/x/1",
        "acme/app/x/1/",
        "acme//x/1",
        "acme/app/../1",
        "acme/app/x/..",
        "../app/x/1",
        "acme/./x/1",
        "acme/app/.hidden/1",
        "acme/app/x y/1",
        "acme/app/x\\y/1",
        "acme/app/x/1\n",
        "acme/app/\xc3\xa9/1",
        "acme/app/x%2f/1",
        "acme/app/x:y/1",
        "acme/app/*/1",
    };
    tsr_error_t err;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(tsr_blob_key_validate(bad[i], &err) == TSR_EINVAL, "accepted '%s'", bad[i]);
    ck_assert_int_eq(tsr_blob_key_validate(NULL, &err), TSR_EINVAL);
    char longseg[200];
    memset(longseg, 'a', sizeof longseg);
    longseg[sizeof longseg - 1] = '\0';
    char key[400];
    snprintf(key, sizeof key, "t/app/%s/1", longseg);
    ck_assert_int_eq(tsr_blob_key_validate(key, &err), TSR_EINVAL);
}
END_TEST

START_TEST(test_blob_key_format_composes_and_checks_segments) {
    tsr_error_t err;
    char key[64];
    ck_assert_int_eq(tsr_blob_key_format(key, sizeof key, "acme", "app", "a1", "3", &err), TSR_OK);
    ck_assert_str_eq(key, "acme/app/a1/3");
    ck_assert_int_eq(tsr_blob_key_format(key, sizeof key, "acme", "app", "..", "3", &err),
                     TSR_EINVAL);
    ck_assert_int_eq(tsr_blob_key_format(key, sizeof key, "acme", "a/b", "x", "3", &err),
                     TSR_EINVAL);
    ck_assert_int_eq(tsr_blob_key_format(key, 8, "acme", "app", "a1", "3", &err), TSR_ETOOBIG);
}
END_TEST

START_TEST(test_blob_store_open_bad_uri_einval) {
    tsr_error_t err;
    tsr_blob_store_t *s = NULL;
    ck_assert_int_eq(tsr_blob_store_open("s3://bucket", &s, &err), TSR_EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(tsr_blob_store_open("file:", &s, &err), TSR_EINVAL);
    ck_assert_int_eq(tsr_blob_store_open("mongodb://", &s, &err), TSR_EINVAL);
}
END_TEST

START_TEST(test_blob_store_open_unreachable_mongodb_eunavailable) {
    tsr_error_t err;
    tsr_blob_store_t *s = NULL;
    ck_assert_int_eq(
        tsr_blob_store_open("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300", &s, &err),
        TSR_EUNAVAILABLE);
    ck_assert_ptr_null(s);
}
END_TEST

START_TEST(test_blob_store_open_default_uri_uses_state_dir) {
    char dir[64] = "/tmp/tsr-blob-state.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    setenv("TSR_STATE_DIR", dir, 1);
    unsetenv("TSR_BLOB_URI");
    tsr_error_t err;
    tsr_blob_store_t *s = NULL;
    ck_assert_int_eq(tsr_blob_store_open(NULL, &s, &err), TSR_OK);
    ck_assert_str_eq(tsr_blob_store_backend(s), "file");
    ck_assert_int_eq(tsr_blob_put(s, "acme", "acme/app/a1/1", "hi", 2, 16, &err), TSR_OK);
    char path[160];
    snprintf(path, sizeof path, "%s/blobs/acme/app/a1/1", dir);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq((int)st.st_size, 2);
    tsr_blob_store_destroy(s);
    rm_rf(dir);
}
END_TEST

/* ---- put / get --------------------------------------------------------------------------- */

START_TEST(test_blob_put_streamed_get_roundtrips_bytes) {
    fx_t f;
    fx_open(&f, _i);
    tsr_error_t err;
    char key[TSR_BLOB_KEY_MAX + 1];
    key_of(key, f.tenant, "app", "a1", "1");
    /* Larger than GridFS's default chunk (255 KiB), written in odd-sized pieces. */
    const size_t total = 700 * 1024 + 13;
    unsigned char *data = malloc(total);
    for (size_t i = 0; i < total; i++)
        data[i] = pattern(i);
    tsr_blob_writer_t *w = NULL;
    ck_assert_int_eq(tsr_blob_put_open(f.s, f.tenant, key, 4 * MB, &w, &err), TSR_OK);
    for (size_t off = 0; off < total;) {
        size_t n = total - off < 7777 ? total - off : 7777;
        ck_assert_int_eq(tsr_blob_writer_write(w, data + off, n, &err), TSR_OK);
        off += n;
    }
    ck_assert_uint_eq(tsr_blob_writer_size(w), total);
    ck_assert_int_eq(tsr_blob_writer_commit(w, &err), TSR_OK);

    tsr_blob_reader_t *r = NULL;
    ck_assert_int_eq(tsr_blob_get(f.s, f.tenant, key, &r, &err), TSR_OK);
    ck_assert_uint_eq(tsr_blob_reader_size(r), total);
    unsigned char buf[5000];
    size_t off = 0, got = 0;
    do {
        ck_assert_int_eq(tsr_blob_reader_read(r, buf, sizeof buf, &got, &err), TSR_OK);
        for (size_t i = 0; i < got; i++)
            ck_assert_msg(buf[i] == data[off + i], "byte %zu differs", off + i);
        off += got;
    } while (got > 0);
    ck_assert_uint_eq(off, total);
    tsr_blob_reader_destroy(r);
    free(data);
    fx_close(&f);
}
END_TEST

START_TEST(test_blob_put_empty_blob_roundtrips) {
    fx_t f;
    fx_open(&f, _i);
    char key[TSR_BLOB_KEY_MAX + 1];
    key_of(key, f.tenant, "data", "empty", "1");
    put_str(&f, f.tenant, key, "");
    expect_content(&f, f.tenant, key, "");
    fx_close(&f);
}
END_TEST

START_TEST(test_blob_put_over_cap_etoobig_and_nothing_visible) {
    fx_t f;
    fx_open(&f, _i);
    tsr_error_t err;
    char key[TSR_BLOB_KEY_MAX + 1];
    key_of(key, f.tenant, "app", "capped", "1");
    tsr_blob_writer_t *w = NULL;
    ck_assert_int_eq(tsr_blob_put_open(f.s, f.tenant, key, 10, &w, &err), TSR_OK);
    ck_assert_int_eq(tsr_blob_writer_write(w, "0123456", 7, &err), TSR_OK);
    ck_assert_int_eq(tsr_blob_writer_write(w, "7890", 4, &err), TSR_ETOOBIG);
    /* The writer stays failed: no later write or commit can sneak the blob in. */
    ck_assert_int_eq(tsr_blob_writer_write(w, "7", 1, &err), TSR_ETOOBIG);
    ck_assert_int_eq(tsr_blob_writer_commit(w, &err), TSR_ETOOBIG);
    expect_missing(&f, f.tenant, key);
    ck_assert_uint_eq(list_count(&f, f.tenant, NULL), 0);
    /* Exactly at the cap is fine. */
    ck_assert_int_eq(tsr_blob_put(f.s, f.tenant, key, "0123456789", 10, 10, &err), TSR_OK);
    ck_assert_int_eq(tsr_blob_put(f.s, f.tenant, key, "0123456789X", 11, 10, &err), TSR_ETOOBIG);
    expect_content(&f, f.tenant, key, "0123456789");
    ck_assert_int_eq(tsr_blob_put_open(f.s, f.tenant, key, 0, &w, &err), TSR_EINVAL);
    /* get_all refuses a blob over its own cap. */
    char *out = NULL;
    size_t n = 0;
    ck_assert_int_eq(tsr_blob_get_all(f.s, f.tenant, key, 5, &out, &n, &err), TSR_ETOOBIG);
    ck_assert_ptr_null(out);
    fx_close(&f);
}
END_TEST

START_TEST(test_blob_put_uncommitted_writer_invisible_until_commit) {
    fx_t f;
    fx_open(&f, _i);
    tsr_error_t err;
    char key[TSR_BLOB_KEY_MAX + 1];
    key_of(key, f.tenant, "app", "a1", "2");
    tsr_blob_writer_t *w = NULL;
    ck_assert_int_eq(tsr_blob_put_open(f.s, f.tenant, key, MB, &w, &err), TSR_OK);
    char big[300 * 1024];
    memset(big, 'x', sizeof big); /* more than one GridFS chunk is already on the server */
    ck_assert_int_eq(tsr_blob_writer_write(w, big, sizeof big, &err), TSR_OK);
    expect_missing(&f, f.tenant, key);
    ck_assert_uint_eq(list_count(&f, f.tenant, NULL), 0);
    ck_assert_int_eq(tsr_blob_writer_commit(w, &err), TSR_OK);
    tsr_blob_reader_t *r = NULL;
    ck_assert_int_eq(tsr_blob_get(f.s, f.tenant, key, &r, &err), TSR_OK);
    ck_assert_uint_eq(tsr_blob_reader_size(r), sizeof big);
    tsr_blob_reader_destroy(r);
    fx_close(&f);
}
END_TEST

START_TEST(test_blob_put_abort_keeps_previous_version) {
    fx_t f;
    fx_open(&f, _i);
    tsr_error_t err;
    char key[TSR_BLOB_KEY_MAX + 1];
    key_of(key, f.tenant, "app", "a1", "1");
    put_str(&f, f.tenant, key, "old");
    tsr_blob_writer_t *w = NULL;
    ck_assert_int_eq(tsr_blob_put_open(f.s, f.tenant, key, MB, &w, &err), TSR_OK);
    ck_assert_int_eq(tsr_blob_writer_write(w, "new-but-aborted", 15, &err), TSR_OK);
    tsr_blob_writer_abort(w);
    expect_content(&f, f.tenant, key, "old");
    ck_assert_uint_eq(list_count(&f, f.tenant, NULL), 1);
    tsr_blob_writer_abort(NULL);
    fx_close(&f);
}
END_TEST

START_TEST(test_blob_put_twice_replaces_content) {
    fx_t f;
    fx_open(&f, _i);
    char key[TSR_BLOB_KEY_MAX + 1];
    key_of(key, f.tenant, "app", "a1", "1");
    put_str(&f, f.tenant, key, "first");
    put_str(&f, f.tenant, key, "second version");
    expect_content(&f, f.tenant, key, "second version");
    tsr_error_t err;
    tsr_blob_list_t l;
    ck_assert_int_eq(tsr_blob_list(f.s, f.tenant, NULL, NULL, 100, &l, &err), TSR_OK);
    ck_assert_uint_eq(l.count, 1);
    ck_assert_uint_eq(l.items[0].size, strlen("second version"));
    tsr_blob_list_cleanup(&l);
    fx_close(&f);
}
END_TEST

START_TEST(test_blob_reader_open_before_replace_keeps_old_bytes) {
    if (_i != 0)
        return; /* GridFS deletes the replaced file: a reader of it may fail (documented) */
    fx_t f;
    fx_open(&f, _i);
    tsr_error_t err;
    char key[TSR_BLOB_KEY_MAX + 1];
    key_of(key, f.tenant, "app", "a1", "1");
    put_str(&f, f.tenant, key, "AAAA");
    tsr_blob_reader_t *r = NULL;
    ck_assert_int_eq(tsr_blob_get(f.s, f.tenant, key, &r, &err), TSR_OK);
    put_str(&f, f.tenant, key, "BBBBBBBB");
    char buf[16];
    size_t n = 0;
    ck_assert_int_eq(tsr_blob_reader_read(r, buf, sizeof buf, &n, &err), TSR_OK);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(memcmp(buf, "AAAA", 4), 0);
    tsr_blob_reader_destroy(r);
    fx_close(&f);
}
END_TEST

/* ---- delete ------------------------------------------------------------------------------ */

START_TEST(test_blob_del_removes_then_enotfound) {
    fx_t f;
    fx_open(&f, _i);
    tsr_error_t err;
    char k1[TSR_BLOB_KEY_MAX + 1], k2[TSR_BLOB_KEY_MAX + 1];
    key_of(k1, f.tenant, "app", "a1", "1");
    key_of(k2, f.tenant, "app", "a1", "2");
    put_str(&f, f.tenant, k1, "one");
    put_str(&f, f.tenant, k2, "two");
    ck_assert_int_eq(tsr_blob_del(f.s, f.tenant, k1, &err), TSR_OK);
    expect_missing(&f, f.tenant, k1);
    expect_content(&f, f.tenant, k2, "two");
    ck_assert_int_eq(tsr_blob_del(f.s, f.tenant, k1, &err), TSR_ENOTFOUND);
    ck_assert_int_eq(tsr_blob_del(f.s, f.tenant, k2, &err), TSR_OK);
    ck_assert_uint_eq(list_count(&f, f.tenant, NULL), 0);
    /* The key can be written again after its directories were cleaned up. */
    put_str(&f, f.tenant, k1, "again");
    expect_content(&f, f.tenant, k1, "again");
    ck_assert_int_eq(tsr_blob_del(f.s, f.tenant, "../x/y/z", &err), TSR_EINVAL);
    fx_close(&f);
}
END_TEST

/* ---- tenants ----------------------------------------------------------------------------- */

START_TEST(test_blob_other_tenant_key_behaves_as_missing) {
    fx_t f;
    fx_open(&f, _i);
    tsr_error_t err;
    char theirs[TSR_BLOB_KEY_MAX + 1];
    key_of(theirs, f.tenant2, "app", "secret", "1");
    put_str(&f, f.tenant2, theirs, "tenant two's data");
    /* f.tenant may not read, delete, list or overwrite it. */
    expect_missing(&f, f.tenant, theirs);
    ck_assert_int_eq(tsr_blob_del(f.s, f.tenant, theirs, &err), TSR_ENOTFOUND);
    ck_assert_uint_eq(list_count(&f, f.tenant, f.tenant2), 0);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s/app/", f.tenant2);
    ck_assert_uint_eq(list_count(&f, f.tenant, prefix), 0);
    ck_assert_int_eq(tsr_blob_put(f.s, f.tenant, theirs, "x", 1, MB, &err), TSR_EFORBIDDEN);
    expect_content(&f, f.tenant2, theirs, "tenant two's data");
    ck_assert_uint_eq(list_count(&f, f.tenant2, NULL), 1);
    fx_close(&f);
}
END_TEST

START_TEST(test_blob_list_tenant_prefix_is_not_a_string_prefix) {
    fx_t f;
    fx_open(&f, _i);
    /* Tenant "<t>" and tenant "<t>0": listing the first never shows the second. */
    char longer[40], k1[TSR_BLOB_KEY_MAX + 1], k2[TSR_BLOB_KEY_MAX + 1];
    snprintf(longer, sizeof longer, "%s0", f.tenant);
    key_of(k1, f.tenant, "app", "a", "1");
    key_of(k2, longer, "app", "a", "1");
    put_str(&f, f.tenant, k1, "short");
    put_str(&f, longer, k2, "long");
    ck_assert_uint_eq(list_count(&f, f.tenant, NULL), 1);
    ck_assert_uint_eq(list_count(&f, f.tenant, ""), 1);
    ck_assert_uint_eq(list_count(&f, f.tenant, f.tenant), 1);
    ck_assert_uint_eq(list_count(&f, longer, NULL), 1);
    expect_missing(&f, f.tenant, k2);
    tsr_error_t err;
    tsr_blob_list_t l;
    ck_assert_int_eq(tsr_blob_list(f.s, f.tenant, "bad prefix!", NULL, 10, &l, &err), TSR_EINVAL);
    ck_assert_int_eq(tsr_blob_list(f.s, f.tenant, NULL, NULL, 0, &l, &err), TSR_EINVAL);
    fx_close(&f);
}
END_TEST

/* ---- list -------------------------------------------------------------------------------- */

START_TEST(test_blob_list_prefix_sorted_and_paged) {
    fx_t f;
    fx_open(&f, _i);
    tsr_error_t err;
    /* "a-b" sorts before "a/" bytewise ('-' < '/'), which a naive directory walk gets wrong. */
    static const char *const kinds_ids[][2] = {
        {"app", "a"}, {"app", "a-b"}, {"app", "b"}, {"data", "a"}, {"app", "a.c"},
    };
    char key[TSR_BLOB_KEY_MAX + 1];
    for (size_t i = 0; i < 5; i++) {
        for (int v = 1; v <= 2; v++) {
            char ver[4];
            snprintf(ver, sizeof ver, "%d", v);
            key_of(key, f.tenant, kinds_ids[i][0], kinds_ids[i][1], ver);
            put_str(&f, f.tenant, key, ver);
        }
    }
    tsr_blob_list_t l;
    ck_assert_int_eq(tsr_blob_list(f.s, f.tenant, NULL, NULL, 100, &l, &err), TSR_OK);
    ck_assert_uint_eq(l.count, 10);
    ck_assert(!l.truncated);
    for (size_t i = 1; i < l.count; i++)
        ck_assert_msg(strcmp(l.items[i - 1].key, l.items[i].key) < 0, "%s !< %s",
                      l.items[i - 1].key, l.items[i].key);
    ck_assert_uint_eq(l.items[0].size, 1);
    ck_assert(l.items[0].mtime_ms > 0);
    tsr_blob_list_cleanup(&l);

    char prefix[80];
    snprintf(prefix, sizeof prefix, "%s/app/a", f.tenant);
    ck_assert_uint_eq(list_count(&f, f.tenant, prefix), 6); /* a, a-b, a.c */
    snprintf(prefix, sizeof prefix, "%s/app/a/", f.tenant);
    ck_assert_uint_eq(list_count(&f, f.tenant, prefix), 2);
    snprintf(prefix, sizeof prefix, "%s/data/", f.tenant);
    ck_assert_uint_eq(list_count(&f, f.tenant, prefix), 2);
    snprintf(prefix, sizeof prefix, "%s/nothing/", f.tenant);
    ck_assert_uint_eq(list_count(&f, f.tenant, prefix), 0);

    /* Paging: 3 at a time with start_after visits all 10 once, in order. */
    char after[TSR_BLOB_KEY_MAX + 1] = "";
    size_t seen = 0, pages = 0;
    for (;;) {
        ck_assert_int_eq(tsr_blob_list(f.s, f.tenant, NULL, after[0] ? after : NULL, 3, &l, &err),
                         TSR_OK);
        pages++;
        for (size_t i = 0; i < l.count; i++) {
            ck_assert(after[0] == '\0' || strcmp(l.items[i].key, after) > 0);
            snprintf(after, sizeof after, "%s", l.items[i].key);
            seen++;
        }
        bool more = l.truncated;
        tsr_blob_list_cleanup(&l);
        if (!more)
            break;
    }
    ck_assert_uint_eq(seen, 10);
    ck_assert_uint_eq(pages, 4);
    fx_close(&f);
}
END_TEST

/* ---- killed writer ----------------------------------------------------------------------- */

START_TEST(test_blob_killed_writer_leaves_no_visible_blob) {
    /* Fork before this process opens any libmongoc pool: a child forked from a process with
     * running monitor threads may inherit a held lock. */
    fx_t f;
    memset(&f, 0, sizeof f);
    char uri[1100];
    snprintf(uri, sizeof uri, "%s", uri_for(_i, f.dir));
    random_name(f.tenant, sizeof f.tenant, "t");
    char fresh[TSR_BLOB_KEY_MAX + 1], replaced[TSR_BLOB_KEY_MAX + 1];
    key_of(fresh, f.tenant, "app", "fresh", "1");
    key_of(replaced, f.tenant, "app", "replaced", "1");

    int ready[2];
    ck_assert_int_eq(pipe(ready), 0);
    pid_t pid = fork();
    ck_assert_int_ne(pid, -1);
    if (pid == 0) {
        /* The child commits one blob, starts two writers (a new key and a replacement of the
         * committed one), streams several chunks into each, then waits to be killed. */
        close(ready[0]);
        tsr_blob_store_t *s = NULL;
        tsr_error_t e;
        const char *committed = "committed before the crash";
        if (tsr_blob_store_open(uri, &s, &e) != TSR_OK ||
            tsr_blob_put(s, f.tenant, replaced, committed, strlen(committed), MB, &e) != TSR_OK)
            _exit(3);
        tsr_blob_writer_t *w1 = NULL, *w2 = NULL;
        if (tsr_blob_put_open(s, f.tenant, fresh, 16 * MB, &w1, &e) != TSR_OK ||
            tsr_blob_put_open(s, f.tenant, replaced, 16 * MB, &w2, &e) != TSR_OK)
            _exit(4);
        static char chunk[256 * 1024];
        memset(chunk, 'k', sizeof chunk);
        for (int i = 0; i < 3; i++) {
            if (tsr_blob_writer_write(w1, chunk, sizeof chunk, &e) != TSR_OK ||
                tsr_blob_writer_write(w2, chunk, sizeof chunk, &e) != TSR_OK)
                _exit(5);
        }
        if (write(ready[1], "r", 1) != 1)
            _exit(6);
        for (;;)
            pause();
    }
    close(ready[1]);
    char c = 0;
    ssize_t got = read(ready[0], &c, 1);
    close(ready[0]);
    if (got != 1) {
        int status = 0;
        waitpid(pid, &status, 0);
        ck_abort_msg("writer child failed before writing (exit %d)",
                     WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    /* A fresh store, as another process after a restart: nothing half-written is visible. */
    tsr_error_t err;
    ck_assert_int_eq(tsr_blob_store_open(uri, &f.s, &err), TSR_OK);
    expect_missing(&f, f.tenant, fresh);
    expect_content(&f, f.tenant, replaced, "committed before the crash");
    ck_assert_uint_eq(list_count(&f, f.tenant, NULL), 1);
    /* The sweep removes the two dead uploads (temp files / orphan chunks) and nothing else. */
    size_t removed = 0;
    ck_assert_int_eq(tsr_blob_sweep(f.s, 3600 * 1000, &removed, &err), TSR_OK);
    ck_assert_uint_eq(removed, 0); /* younger than an hour: could be live uploads */
    ck_assert_int_eq(tsr_blob_sweep(f.s, 0, &removed, &err), TSR_OK);
    if (_i == 0)
        ck_assert_uint_eq(removed, 2);
    else
        ck_assert_uint_ge(removed, 2); /* a shared server may hold older orphans too */
    ck_assert_int_eq(tsr_blob_sweep(f.s, 0, &removed, &err), TSR_OK);
    ck_assert_uint_eq(removed, 0);
    expect_content(&f, f.tenant, replaced, "committed before the crash");
    if (_i == 0) {
        char dir[200];
        snprintf(dir, sizeof dir, "%s/root/%s/app/fresh", f.dir, f.tenant);
        DIR *d = opendir(dir);
        struct dirent *de;
        while (d != NULL && (de = readdir(d)) != NULL)
            ck_assert_msg(de->d_name[0] == '.' && strstr(de->d_name, ".tmp.") == NULL,
                          "left behind: %s", de->d_name);
        if (d != NULL)
            closedir(d);
    }
    /* The key is still writable afterwards. */
    put_str(&f, f.tenant, fresh, "after");
    expect_content(&f, f.tenant, fresh, "after");
    fx_close(&f);
}
END_TEST

/* ---- concurrent replacers ---------------------------------------------------------------- */

START_TEST(test_blob_concurrent_replacers_leave_one_whole_version) {
    /* Two processes replace one key over and over with their own content; readers in between
     * and at the end always see one writer's whole blob, and exactly one version survives. */
    fx_t f;
    memset(&f, 0, sizeof f);
    char uri[1100];
    snprintf(uri, sizeof uri, "%s", uri_for(_i, f.dir));
    random_name(f.tenant, sizeof f.tenant, "t");
    char key[TSR_BLOB_KEY_MAX + 1];
    key_of(key, f.tenant, "app", "contended", "1");
    enum { ROUNDS = 15, SIZE = 300 * 1024 };
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        ck_assert_int_ne(kids[k], -1);
        if (kids[k] == 0) {
            tsr_blob_store_t *s = NULL;
            tsr_error_t e;
            if (tsr_blob_store_open(uri, &s, &e) != TSR_OK)
                _exit(3);
            static char buf[SIZE];
            memset(buf, 'A' + k, sizeof buf);
            for (int r = 0; r < ROUNDS; r++) {
                if (tsr_blob_put(s, f.tenant, key, buf, sizeof buf, SIZE, &e) != TSR_OK)
                    _exit(4);
                char *got = NULL;
                size_t n = 0;
                /* GridFS: the version being read may be deleted by the other writer's
                 * replace mid-read (TSR_EUNAVAILABLE, read again); never a missing key. */
                tsr_err_t rc = tsr_blob_get_all(s, f.tenant, key, SIZE, &got, &n, &e);
                if (rc == TSR_OK) {
                    for (size_t i = 1; i < n; i++)
                        if (got[i] != got[0])
                            _exit(5);
                    if (n != SIZE)
                        _exit(6);
                } else if (rc != TSR_EUNAVAILABLE || _i == 0) {
                    _exit(7);
                }
                free(got);
            }
            tsr_blob_store_destroy(s);
            _exit(0);
        }
    }
    for (int k = 0; k < 2; k++) {
        int st = 0;
        ck_assert_int_eq(waitpid(kids[k], &st, 0), kids[k]);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer %d status %d", k, st);
    }
    tsr_error_t err;
    ck_assert_int_eq(tsr_blob_store_open(uri, &f.s, &err), TSR_OK);
    char *got = NULL;
    size_t n = 0;
    ck_assert_int_eq(tsr_blob_get_all(f.s, f.tenant, key, SIZE, &got, &n, &err), TSR_OK);
    ck_assert_uint_eq(n, SIZE);
    ck_assert(got[0] == 'A' || got[0] == 'B');
    for (size_t i = 1; i < n; i++)
        ck_assert_msg(got[i] == got[0], "mixed blob at byte %zu", i);
    free(got);
    ck_assert_uint_eq(list_count(&f, f.tenant, NULL), 1);
    fx_close(&f);
}
END_TEST

/* ---- main -------------------------------------------------------------------------------- */

static Suite *blob_suite(void) {
    Suite *s = suite_create("blob");
    TCase *keys = tcase_create("keys");
    tcase_add_test(keys, test_blob_key_validate_good_keys_ok);
    tcase_add_test(keys, test_blob_key_validate_bad_keys_einval);
    tcase_add_test(keys, test_blob_key_format_composes_and_checks_segments);
    tcase_add_test(keys, test_blob_store_open_bad_uri_einval);
    tcase_add_test(keys, test_blob_store_open_unreachable_mongodb_eunavailable);
    tcase_add_test(keys, test_blob_store_open_default_uri_uses_state_dir);
    suite_add_tcase(s, keys);

    /* Loop index: 0 = file backend, 1 = GridFS (only with TSR_MONGODB_URI). */
    TCase *be = tcase_create("backends");
    tcase_set_timeout(be, 120);
    tcase_add_loop_test(be, test_blob_put_streamed_get_roundtrips_bytes, 0, g_nbackends);
    tcase_add_loop_test(be, test_blob_put_empty_blob_roundtrips, 0, g_nbackends);
    tcase_add_loop_test(be, test_blob_put_over_cap_etoobig_and_nothing_visible, 0, g_nbackends);
    tcase_add_loop_test(be, test_blob_put_uncommitted_writer_invisible_until_commit, 0,
                        g_nbackends);
    tcase_add_loop_test(be, test_blob_put_abort_keeps_previous_version, 0, g_nbackends);
    tcase_add_loop_test(be, test_blob_put_twice_replaces_content, 0, g_nbackends);
    tcase_add_loop_test(be, test_blob_reader_open_before_replace_keeps_old_bytes, 0, g_nbackends);
    tcase_add_loop_test(be, test_blob_del_removes_then_enotfound, 0, g_nbackends);
    tcase_add_loop_test(be, test_blob_other_tenant_key_behaves_as_missing, 0, g_nbackends);
    tcase_add_loop_test(be, test_blob_list_tenant_prefix_is_not_a_string_prefix, 0, g_nbackends);
    tcase_add_loop_test(be, test_blob_list_prefix_sorted_and_paged, 0, g_nbackends);
    tcase_add_loop_test(be, test_blob_killed_writer_leaves_no_visible_blob, 0, g_nbackends);
    tcase_add_loop_test(be, test_blob_concurrent_replacers_leave_one_whole_version, 0, g_nbackends);
    suite_add_tcase(s, be);
    return s;
}

int main(void) {
    const char *uri = getenv("TSR_MONGODB_URI");
    if (uri != NULL && uri[0] != '\0') {
        gridfs_uri_init(uri);
        g_nbackends = 2;
        fprintf(stderr, "test_blob: GridFS backend at %s\n", g_gridfs_uri);
    } else {
        fprintf(stderr, "test_blob: TSR_MONGODB_URI not set, GridFS cases skipped\n");
    }
    SRunner *sr = srunner_create(blob_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
