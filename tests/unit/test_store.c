/*
 * Unit tests for pkg/store: the backend contract suite (store_contract.c) against a temporary
 * SQLite file, against MongoDB when TSR_MONGODB_URI is set and against the smartmongo test
 * server when TSR_STORE_TEST_SMARTMONGO_URI is set; then what is SQLite's own: a locked or
 * full database answers TSR_EUNAVAILABLE and leaves no partial write, WAL, URI options, one
 * handle shared by threads, a writer killed mid-transaction, and the pkg/events adapters over
 * the store (with the real outbox relay against librdkafka's mock cluster).
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store.h"
#include "store_contract.h"
#ifdef TSR_HAVE_STORE_EVENTS
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "store_events.h"
#endif

/* ---- backends ---------------------------------------------------------------------------- */

static char *sqlite_new_uri(void *ctx) {
    (void)ctx;
    const char *tmp = getenv("TMPDIR");
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/tsr-store-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    size_t n = strlen(dir) + 32;
    char *uri = malloc(n);
    snprintf(uri, n, "sqlite:%s/store.db", dir);
    return uri;
}

static void sqlite_drop(void *ctx, const char *uri) {
    (void)ctx;
    char path[600];
    const char *p = uri + strlen("sqlite:");
    size_t n = strcspn(p, "?");
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "%.*s%s", (int)n, p, sfx[i]);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%.*s", (int)n, p);
    char *slash = strrchr(path, '/');
    if (slash != NULL) {
        *slash = '\0';
        rmdir(path);
    }
}

/* MongoDB: the same server, a new database per test ("tsr_test_<pid>_<n>"), replacing the
 * path of the configured URI and keeping its options. */
static char *mongo_new_uri(void *ctx) {
    static unsigned counter;
    const char *base = ctx;
    const char *hosts = strstr(base, "://");
    ck_assert_ptr_nonnull(hosts);
    hosts += 3;
    size_t hl = strcspn(hosts, "/?");
    const char *opts = strchr(hosts + hl, '?');
    size_t n = strlen(base) + 64;
    char *uri = malloc(n);
    snprintf(uri, n, "%.*s/tsr_test_%d_%u%s", (int)(hosts - base + (long)hl), base, (int)getpid(),
             counter++, opts ? opts : "");
    return uri;
}

static const tsr_store_contract_t k_sqlite = {"sqlite", sqlite_new_uri, sqlite_drop, NULL, NULL};

/* The smartmongo test server (npm @push.rocks/smartmongo, not MongoDB) enforces no unique
 * indexes: those cases are skipped there by name, and only there. */
static const char *const k_smartmongo_skip[] = {"unique", NULL};

/* ---- helpers ----------------------------------------------------------------------------- */

static const char *const k_idx[] = {"name"};
static const tsr_store_collection_t k_docs = {.name = "docs", .indexes = k_idx, .n_indexes = 1};

static tsr_store_t *open_uri(const char *uri) {
    tsr_store_t *s = NULL;
    tsr_error_t err;
    tsr_store_opts_t o = {.collections = &k_docs, .n_collections = 1};
    tsr_err_t rc = tsr_store_create(uri, &o, &s, &err);
    ck_assert_msg(rc == TSR_OK, "open %s: %s", uri, err.msg);
    return s;
}

static char *with_opts(const char *uri, const char *opts) {
    size_t n = strlen(uri) + strlen(opts) + 2;
    char *u = malloc(n);
    snprintf(u, n, "%s?%s", uri, opts);
    return u;
}

static sqlite3 *raw_open(const char *uri) {
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(uri + strlen("sqlite:"), &db), SQLITE_OK);
    return db;
}

static long long raw_scalar(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st = NULL;
    long long v = -1;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

static tsr_store_event_t mk_event(const char *id) {
    static const char payload[] = "{\"specversion\":\"1.0\"}";
    return (tsr_store_event_t){id, "tessera.test", "k", payload, sizeof(payload) - 1};
}

static size_t outbox_len(tsr_store_t *s) {
    tsr_store_event_t *rows = NULL;
    size_t n = 0;
    tsr_error_t err;
    ck_assert_int_eq(tsr_store_platform_outbox_fetch(s, 1000, &rows, &n, &err), TSR_OK);
    tsr_store_outbox_rows_free(rows, n);
    return n;
}

/* ---- SQLite: locked and full --------------------------------------------------------------- */

START_TEST(test_sqlite_locked_db_unavailable_no_partial_write) {
    char *uri = sqlite_new_uri(NULL);
    tsr_store_t *s0 = open_uri(uri);
    tsr_store_destroy(s0);
    char *u = with_opts(uri, "busy_timeout_ms=100");
    tsr_store_t *s = open_uri(u);
    tsr_error_t err;
    json_t *d = json_pack("{s:s}", "name", "a"), *got = NULL;
    tsr_store_event_t e = mk_event("e1");
    ck_assert_int_eq(tsr_store_doc_create(s, "t1", "docs", "pre", d, NULL, 0, NULL, &err), TSR_OK);

    /* another process (here: another connection) holds the write lock */
    sqlite3 *raw = raw_open(uri);
    ck_assert_int_eq(sqlite3_exec(raw, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    uint64_t t0 = tsr_mono_ms();
    ck_assert_int_eq(tsr_store_doc_create(s, "t1", "docs", "x", d, &e, 1, NULL, &err),
                     TSR_EUNAVAILABLE);
    ck_assert_uint_ge(tsr_mono_ms() - t0, 90); /* it waited busy_timeout_ms first */
    ck_assert_int_eq(tsr_store_doc_replace(s, "t1", "docs", "pre", 1, d, &e, 1, NULL, &err),
                     TSR_EUNAVAILABLE);
    ck_assert_int_eq(tsr_store_doc_del(s, "t1", "docs", "pre", 0, &e, 1, &err), TSR_EUNAVAILABLE);
    tsr_store_lease_t l;
    ck_assert_int_eq(tsr_store_lease_acquire(s, "l", "me", 1000, &l, &err), TSR_EUNAVAILABLE);
    tsr_store_t *tx = NULL;
    ck_assert_int_eq(tsr_store_txn_begin(s, &tx, &err), TSR_EUNAVAILABLE);
    /* WAL: readers are not blocked by the writer */
    ck_assert_int_eq(tsr_store_doc_get(s, "t1", "docs", "pre", &got, &err), TSR_OK);
    json_decref(got);
    ck_assert_int_eq(sqlite3_exec(raw, "COMMIT", NULL, NULL, NULL), SQLITE_OK);

    /* nothing of the refused writes is there, and the store works again */
    ck_assert_int_eq(tsr_store_doc_get(s, "t1", "docs", "x", &got, &err), TSR_ENOTFOUND);
    ck_assert_int_eq(tsr_store_doc_get(s, "t1", "docs", "pre", &got, &err), TSR_OK);
    ck_assert_int_eq(json_integer_value(json_object_get(got, "version")), 1);
    json_decref(got);
    ck_assert_uint_eq(outbox_len(s), 0);
    ck_assert_int_eq(tsr_store_doc_create(s, "t1", "docs", "x", d, &e, 1, NULL, &err), TSR_OK);
    ck_assert_uint_eq(outbox_len(s), 1);

    sqlite3_close(raw);
    ck_assert_int_eq(tsr_store_doc_get(s, "t1", "docs", "pre", &got, &err), TSR_OK);
    json_decref(got);

    json_decref(d);
    tsr_store_destroy(s);
    sqlite_drop(NULL, uri);
    free(u);
    free(uri);
}
END_TEST

START_TEST(test_sqlite_full_db_unavailable_no_partial_write) {
    char *uri = sqlite_new_uri(NULL);
    tsr_store_t *s0 = open_uri(uri);
    tsr_store_destroy(s0);
    sqlite3 *raw = raw_open(uri);
    long long pages = raw_scalar(raw, "PRAGMA page_count");
    sqlite3_close(raw);
    char opts[64];
    snprintf(opts, sizeof(opts), "max_page_count=%lld", pages + 6);
    char *u = with_opts(uri, opts);
    tsr_store_t *s = open_uri(u);
    tsr_error_t err;

    char *blob = malloc(3001);
    memset(blob, 'x', 3000);
    blob[3000] = '\0';
    json_t *d = json_pack("{s:s}", "blob", blob);
    int ok = 0;
    tsr_err_t rc = TSR_OK;
    char id[16], eid[16];
    for (int i = 0; i < 200 && rc == TSR_OK; i++) {
        snprintf(id, sizeof(id), "d%03d", i);
        snprintf(eid, sizeof(eid), "e%03d", i);
        tsr_store_event_t e[2] = {mk_event(eid), mk_event(id)};
        rc = tsr_store_doc_create(s, "t1", "docs", id, d, e, 2, NULL, &err);
        ok += rc == TSR_OK;
    }
    ck_assert_msg(rc == TSR_EUNAVAILABLE, "rc %s: %s", tsr_strerror(rc), err.msg);
    ck_assert_int_gt(ok, 0);
    /* the refused document and its events are absent; every accepted one is whole */
    json_t *got = NULL;
    ck_assert_int_eq(tsr_store_doc_get(s, "t1", "docs", id, &got, &err), TSR_ENOTFOUND);
    ck_assert_uint_eq(outbox_len(s), (size_t)(2 * ok));
    tsr_store_query_t q = {.limit = 1000};
    tsr_store_page_t page;
    ck_assert_int_eq(tsr_store_doc_list(s, "t1", "docs", &q, &page, &err), TSR_OK);
    ck_assert_uint_eq(json_array_size(page.items), (size_t)ok);
    tsr_store_page_cleanup(&page);
    /* a transaction that runs into the full database commits nothing of its writes */
    tsr_store_t *tx = NULL;
    json_t *small = json_object();
    tsr_store_event_t e1 = mk_event("tx-e1");
    if (tsr_store_txn_begin(s, &tx, &err) == TSR_OK) {
        (void)tsr_store_doc_create(tx, "t1", "docs", "tx1", small, &e1, 1, NULL, &err);
        rc = tsr_store_doc_create(tx, "t1", "docs", "tx2", d, NULL, 0, NULL, &err);
        ck_assert_int_eq(rc, TSR_EUNAVAILABLE);
        tsr_store_txn_rollback(tx);
    }
    ck_assert_int_eq(tsr_store_doc_get(s, "t1", "docs", "tx1", &got, &err), TSR_ENOTFOUND);
    ck_assert_uint_eq(outbox_len(s), (size_t)(2 * ok));
    /* the database is not damaged: freeing space makes writes work again */
    snprintf(id, sizeof(id), "d%03d", 0);
    ck_assert_int_eq(tsr_store_doc_del(s, "t1", "docs", id, 0, NULL, 0, &err), TSR_OK);
    ck_assert_int_eq(tsr_store_doc_create(s, "t1", "docs", "after", small, NULL, 0, NULL, &err),
                     TSR_OK);
    json_decref(small);
    json_decref(d);
    free(blob);
    tsr_store_destroy(s);
    sqlite_drop(NULL, uri);
    free(u);
    free(uri);
}
END_TEST

START_TEST(test_sqlite_duplicate_event_id_fails_the_whole_write) {
    char *uri = sqlite_new_uri(NULL);
    tsr_store_t *s = open_uri(uri);
    tsr_error_t err;
    json_t *d = json_pack("{s:s}", "name", "a"), *got = NULL;
    tsr_store_event_t e = mk_event("e1");
    ck_assert_int_eq(tsr_store_doc_create(s, "t1", "docs", "a", d, &e, 1, NULL, &err), TSR_OK);
    ck_assert_int_eq(tsr_store_doc_create(s, "t1", "docs", "b", d, &e, 1, NULL, &err),
                     TSR_ECONFLICT);
    ck_assert_int_eq(tsr_store_doc_get(s, "t1", "docs", "b", &got, &err), TSR_ENOTFOUND);
    ck_assert_int_eq(tsr_store_doc_replace(s, "t1", "docs", "a", 1, d, &e, 1, NULL, &err),
                     TSR_ECONFLICT);
    ck_assert_int_eq(tsr_store_doc_get(s, "t1", "docs", "a", &got, &err), TSR_OK);
    ck_assert_int_eq(json_integer_value(json_object_get(got, "version")), 1);
    json_decref(got);
    ck_assert_uint_eq(outbox_len(s), 1);
    json_decref(d);
    tsr_store_destroy(s);
    sqlite_drop(NULL, uri);
    free(uri);
}
END_TEST

START_TEST(test_sqlite_killed_writer_leaves_no_partial_write) {
    char *uri = sqlite_new_uri(NULL);
    tsr_store_t *s = open_uri(uri);
    tsr_error_t err;
    json_t *got = NULL;
    /* a writer killed inside its transaction, after writing a document and its event */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        tsr_store_t *c = open_uri(uri);
        tsr_store_t *tx = NULL;
        json_t *d = json_pack("{s:s}", "name", "half");
        tsr_store_event_t e = mk_event("e-half");
        if (tsr_store_txn_begin(c, &tx, &err) != TSR_OK ||
            tsr_store_doc_create(tx, "t1", "docs", "half", d, &e, 1, NULL, &err) != TSR_OK) {
            _exit(2);
        }
        raise(SIGKILL);
        _exit(3);
    }
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    ck_assert_int_eq(tsr_store_doc_get(s, "t1", "docs", "half", &got, &err), TSR_ENOTFOUND);
    ck_assert_uint_eq(outbox_len(s), 0);
    /* the dead writer's lock went with it: writing works at once */
    json_t *d = json_object();
    ck_assert_int_eq(tsr_store_doc_create(s, "t1", "docs", "after", d, NULL, 0, NULL, &err),
                     TSR_OK);

    /* a writer killed at a random moment among many small writes: every document it got in
     * has exactly its event, nothing else */
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        tsr_store_t *c = open_uri(uri);
        char id[32];
        for (int i = 0;; i++) {
            snprintf(id, sizeof(id), "k%06d", i);
            tsr_store_event_t e = mk_event(id);
            (void)tsr_store_doc_create(c, "t2", "docs", id, d, &e, 1, NULL, &err);
        }
    }
    struct timespec ts = {0, 150 * 1000000L};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    tsr_store_query_t q = {.limit = 1000};
    tsr_store_page_t page;
    ck_assert_int_eq(tsr_store_doc_list(s, "t2", "docs", &q, &page, &err), TSR_OK);
    size_t docs = json_array_size(page.items);
    tsr_store_page_cleanup(&page);
    ck_assert_uint_gt(docs, 0);
    ck_assert_uint_eq(outbox_len(s), docs);
    json_decref(d);
    tsr_store_destroy(s);
    sqlite_drop(NULL, uri);
    free(uri);
}
END_TEST

/* ---- SQLite: opening --------------------------------------------------------------------- */

START_TEST(test_sqlite_open_sets_wal_and_rejects_bad_uris) {
    char *uri = sqlite_new_uri(NULL);
    tsr_store_t *s = open_uri(uri);
    ck_assert_str_eq(tsr_store_backend_name(s), "sqlite");
    tsr_error_t err;
    ck_assert_int_eq(tsr_store_ping(s, &err), TSR_OK);
    sqlite3 *raw = raw_open(uri);
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(raw, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(raw);
    tsr_store_destroy(s);

    tsr_store_t *bad = NULL;
    ck_assert_int_eq(tsr_store_create("postgres://x", NULL, &bad, &err), TSR_EINVAL);
    ck_assert_int_eq(tsr_store_create("", NULL, &bad, &err), TSR_EINVAL);
    ck_assert_int_eq(tsr_store_create("sqlite:", NULL, &bad, &err), TSR_EINVAL);
    char *u = with_opts(uri, "bogus=1");
    ck_assert_int_eq(tsr_store_create(u, NULL, &bad, &err), TSR_EINVAL);
    free(u);
    ck_assert_int_eq(tsr_store_create("sqlite:/nonexistent-dir/x/y.db", NULL, &bad, &err),
                     TSR_EUNAVAILABLE);
    ck_assert_ptr_null(bad);
    /* mongodb: EUNSUPPORTED unless the MongoDB backend is built in */
    struct stat sb;
    if (stat(TSR_SOURCE_DIR "/pkg/store/store_mongo.c", &sb) != 0) {
        ck_assert_int_eq(tsr_store_create("mongodb://127.0.0.1:1/x", NULL, &bad, &err),
                         TSR_EUNSUPPORTED);
    }
    /* declarations are checked */
    static const char *const bad_idx[] = {"a b"};
    tsr_store_collection_t c = {.name = "docs", .indexes = bad_idx, .n_indexes = 1};
    tsr_store_opts_t o = {.collections = &c, .n_collections = 1};
    ck_assert_int_eq(tsr_store_create(uri, &o, &bad, &err), TSR_EINVAL);
    c = (tsr_store_collection_t){.name = "Docs"};
    ck_assert_int_eq(tsr_store_create(uri, &o, &bad, &err), TSR_EINVAL);
    c = (tsr_store_collection_t){.name = "docs", .version = 1, .contracted = 2};
    ck_assert_int_eq(tsr_store_create(uri, &o, &bad, &err), TSR_EINVAL);
    sqlite_drop(NULL, uri);
    free(uri);
}
END_TEST

START_TEST(test_sqlite_create_default_uses_state_dir) {
    char *uri = sqlite_new_uri(NULL);
    char dir[600];
    snprintf(dir, sizeof(dir), "%.*s", (int)(strrchr(uri, '/') - uri - 7), uri + 7);
    setenv("TSR_STATE_DIR", dir, 1);
    unsetenv("TSR_STORE_URI");
    tsr_store_t *s = NULL;
    tsr_error_t err;
    ck_assert_int_eq(tsr_store_create_default(NULL, &s, &err), TSR_OK);
    struct stat sb;
    ck_assert_int_eq(stat(uri + 7, &sb), 0); /* <state dir>/store.db */
    tsr_store_destroy(s);
    setenv("TSR_STORE_URI", uri, 1);
    ck_assert_int_eq(tsr_store_create_default(NULL, &s, &err), TSR_OK);
    tsr_store_destroy(s);
    unsetenv("TSR_STORE_URI");
    unsetenv("TSR_STATE_DIR");
    sqlite_drop(NULL, uri);
    free(uri);
}
END_TEST

/* ---- one handle, several threads --------------------------------------------------------- */

typedef struct {
    tsr_store_t *s;
    int n;
    int failures;
} thr_t;

static void *thread_incr(void *arg) {
    thr_t *t = arg;
    tsr_error_t err;
    for (int i = 0; i < t->n; i++) {
        json_t *p = json_object();
        /* half through patch (internal retry), half inside an explicit transaction */
        if (i % 2 == 0) {
            json_t *d = NULL;
            if (tsr_store_doc_get(t->s, "t1", "docs", "c", &d, &err) != TSR_OK) {
                t->failures++;
            } else {
                json_object_set_new(p, "n",
                                    json_integer(json_integer_value(json_object_get(d, "n")) + 1));
                tsr_err_t rc = tsr_store_doc_patch(
                    t->s, "t1", "docs", "c", json_integer_value(json_object_get(d, "version")), p,
                    NULL, 0, NULL, &err);
                if (rc == TSR_ECONFLICT) {
                    i--; /* lost the race: try this increment again */
                } else if (rc != TSR_OK) {
                    t->failures++;
                }
            }
            json_decref(d);
        } else {
            tsr_store_t *tx = NULL;
            json_t *d = NULL;
            if (tsr_store_txn_begin(t->s, &tx, &err) != TSR_OK ||
                tsr_store_doc_get(tx, "t1", "docs", "c", &d, &err) != TSR_OK) {
                t->failures++;
            } else {
                json_object_set_new(d, "n",
                                    json_integer(json_integer_value(json_object_get(d, "n")) + 1));
                if (tsr_store_doc_replace(tx, "t1", "docs", "c",
                                          json_integer_value(json_object_get(d, "version")), d,
                                          NULL, 0, NULL, &err) != TSR_OK ||
                    tsr_store_txn_commit(tx, &err) != TSR_OK) {
                    t->failures++;
                }
                tx = NULL;
            }
            tsr_store_txn_rollback(tx);
            json_decref(d);
        }
        json_decref(p);
    }
    return NULL;
}

START_TEST(test_sqlite_threads_sharing_a_handle_lose_no_update) {
    char *uri = sqlite_new_uri(NULL);
    char *u = with_opts(uri, "synchronous=normal");
    tsr_store_t *s = open_uri(u);
    tsr_error_t err;
    json_t *d = json_pack("{s:i}", "n", 0);
    ck_assert_int_eq(tsr_store_doc_create(s, "t1", "docs", "c", d, NULL, 0, NULL, &err), TSR_OK);
    json_decref(d);
    pthread_t th[4];
    thr_t t[4];
    for (int i = 0; i < 4; i++) {
        t[i] = (thr_t){s, 100, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, thread_incr, &t[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(t[i].failures, 0);
    }
    ck_assert_int_eq(tsr_store_doc_get(s, "t1", "docs", "c", &d, &err), TSR_OK);
    ck_assert_int_eq(json_integer_value(json_object_get(d, "n")), 400);
    json_decref(d);
    tsr_store_destroy(s);
    sqlite_drop(NULL, uri);
    free(u);
    free(uri);
}
END_TEST

/* ---- pkg/events adapters ----------------------------------------------------------------- */

#ifdef TSR_HAVE_STORE_EVENTS
static tsr_err_t events_effect(void *opaque, void *txn, tsr_error_t *err) {
    int *calls = opaque;
    (*calls)++;
    json_t *d = json_pack("{s:i}", "n", *calls);
    tsr_err_t rc = tsr_store_doc_create(txn, "t1", "docs", "effect", d, NULL, 0, NULL, err);
    json_decref(d);
    return rc;
}

START_TEST(test_events_adapters_outbox_and_dedupe_over_the_store) {
    char *uri = sqlite_new_uri(NULL);
    tsr_store_t *s = open_uri(uri);
    tsr_error_t err;
    json_t *d = json_object();
    tsr_store_event_t e[3] = {mk_event("e1"), mk_event("e2"), mk_event("e3")};
    ck_assert_int_eq(tsr_store_doc_create(s, "t1", "docs", "a", d, e, 3, NULL, &err), TSR_OK);

    tsr_events_outbox_t ob = tsr_store_events_outbox(s);
    tsr_events_outbox_row_t rows[8];
    size_t n = 0;
    ck_assert_int_eq(ob.fetch_unsent(ob.ctx, 2, rows, &n, &err), TSR_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(rows[0].id, "e1");
    ck_assert_str_eq(rows[1].id, "e2");
    ck_assert_str_eq(rows[0].topic, "tessera.test");
    ck_assert_uint_eq(rows[0].payload_len, strlen(rows[0].payload));
    const char *ids[] = {rows[0].id};
    ck_assert_int_eq(ob.mark_sent(ob.ctx, ids, 1, &err), TSR_OK);
    ob.release(ob.ctx, rows, n);
    ck_assert_int_eq(ob.fetch_unsent(ob.ctx, 8, rows, &n, &err), TSR_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(rows[0].id, "e2");
    ob.release(ob.ctx, rows, n);

    tsr_events_dedupe_t dd = tsr_store_events_dedupe(s);
    int calls = 0;
    bool applied = false;
    ck_assert_int_eq(dd.apply_once(dd.ctx, "g", "ev1", events_effect, &calls, &applied, &err),
                     TSR_OK);
    ck_assert(applied);
    ck_assert_int_eq(dd.apply_once(dd.ctx, "g", "ev1", events_effect, &calls, &applied, &err),
                     TSR_OK);
    ck_assert(!applied);
    ck_assert_int_eq(calls, 1);
    /* the effect fails (the document exists): nothing recorded, the error comes back */
    ck_assert_int_eq(dd.apply_once(dd.ctx, "g", "ev2", events_effect, &calls, &applied, &err),
                     TSR_ECONFLICT);
    ck_assert(!applied);
    ck_assert_int_eq(tsr_store_doc_del(s, "t1", "docs", "effect", 0, NULL, 0, &err), TSR_OK);
    ck_assert_int_eq(dd.apply_once(dd.ctx, "g", "ev2", events_effect, &calls, &applied, &err),
                     TSR_OK);
    ck_assert(applied);
    json_decref(d);
    tsr_store_destroy(s);
    sqlite_drop(NULL, uri);
    free(uri);
}
END_TEST

/* The real pkg/events relay drains the store's outbox into a broker (librdkafka's in-process
 * mock cluster): every row committed with a document is published once, in commit order per
 * key, and removed from the outbox only after the broker acknowledged it. */
START_TEST(test_events_relay_publishes_the_store_outbox) {
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, NULL);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    ck_assert_ptr_nonnull(rk);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, 1);
    ck_assert_ptr_nonnull(mc);
    ck_assert_int_eq(rd_kafka_mock_topic_create(mc, "tessera.test", 2, 1), 0);

    char *uri = sqlite_new_uri(NULL);
    tsr_store_t *s = open_uri(uri);
    tsr_error_t err;
    json_t *d = json_object();
    char id[16], eid[16];
    for (int i = 0; i < 40; i++) {
        snprintf(id, sizeof(id), "d%02d", i);
        snprintf(eid, sizeof(eid), "ev%02d", i);
        tsr_store_event_t e = mk_event(eid);
        ck_assert_int_eq(tsr_store_doc_create(s, "t1", "docs", id, d, &e, 1, NULL, &err), TSR_OK);
    }
    tsr_events_producer_opts_t po = {.bootstrap = rd_kafka_mock_cluster_bootstraps(mc),
                                     .client_id = "unit-store",
                                     .delivery_timeout_ms = 10000};
    tsr_events_producer_t *p = NULL;
    ck_assert_int_eq(tsr_events_producer_create(&po, &p, &err), TSR_OK);
    tsr_events_outbox_t ob = tsr_store_events_outbox(s);
    tsr_events_relay_opts_t ro = {.batch = 16};
    tsr_events_relay_t *r = NULL;
    ck_assert_int_eq(tsr_events_relay_create(p, &ob, &ro, &r, &err), TSR_OK);
    size_t total = 0, published = 0;
    for (int round = 0; round < 10 && total < 40; round++) {
        tsr_err_t rc = tsr_events_relay_run_once(r, &published, &err);
        ck_assert_msg(rc == TSR_OK || rc == TSR_EUNAVAILABLE, "relay: %s", err.msg);
        total += published;
    }
    ck_assert_uint_eq(total, 40);
    ck_assert_uint_eq(outbox_len(s), 0);
    tsr_events_relay_destroy(r);
    tsr_events_producer_destroy(p);
    json_decref(d);
    tsr_store_destroy(s);
    sqlite_drop(NULL, uri);
    free(uri);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
}
END_TEST
#endif

/* ---- main -------------------------------------------------------------------------------- */

static Suite *store_suite(void) {
    Suite *s = suite_create("store");
    tsr_store_contract_add(s, &k_sqlite);

    static tsr_store_contract_t mongo = {"mongodb", mongo_new_uri, NULL, NULL, NULL};
    const char *m = getenv("TSR_MONGODB_URI");
    if (m != NULL && m[0] != '\0') {
        mongo.ctx = (void *)m;
        tsr_store_contract_add(s, &mongo);
    }
    static tsr_store_contract_t smart = {"smartmongo", mongo_new_uri, NULL, NULL,
                                         k_smartmongo_skip};
    const char *sm = getenv("TSR_STORE_TEST_SMARTMONGO_URI");
    if (sm != NULL && sm[0] != '\0') {
        smart.ctx = (void *)sm;
        tsr_store_contract_add(s, &smart);
    }

    TCase *tc = tcase_create("sqlite");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_sqlite_locked_db_unavailable_no_partial_write);
    tcase_add_test(tc, test_sqlite_full_db_unavailable_no_partial_write);
    tcase_add_test(tc, test_sqlite_duplicate_event_id_fails_the_whole_write);
    tcase_add_test(tc, test_sqlite_killed_writer_leaves_no_partial_write);
    tcase_add_test(tc, test_sqlite_open_sets_wal_and_rejects_bad_uris);
    tcase_add_test(tc, test_sqlite_create_default_uses_state_dir);
    tcase_add_test(tc, test_sqlite_threads_sharing_a_handle_lose_no_update);
    suite_add_tcase(s, tc);
#ifdef TSR_HAVE_STORE_EVENTS
    TCase *te = tcase_create("events-adapters");
    tcase_set_timeout(te, 60);
    tcase_add_test(te, test_events_adapters_outbox_and_dedupe_over_the_store);
    tcase_add_test(te, test_events_relay_publishes_the_store_outbox);
    suite_add_tcase(s, te);
#endif
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(store_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
