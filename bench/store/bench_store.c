/*
 * bench_store: pkg/store operations per second on SQLite, side by side with the raw sqlite3 API
 * doing the same work (same file layout and pragmas, prepared statements, jansson for the
 * JSON), so the ratio is the cost of the store layer itself (validation, owned members,
 * version checks, cursors).
 *   create  N documents (~300 bytes, 2 indexed fields), one transaction each
 *   get     N random gets by id
 *   list    N/10 pages of 20: equality filter on an index, sorted by another, each page with its
 *           next cursor (raw: the same keyset query)
 * With TSR_MONGODB_URI set, the same store operations run against that MongoDB too.
 * Usage: bench_store [--count N] [--dir DIR] [--sync full|normal] [--rounds R]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store.h"

static double now_s(void) {
    return (double)tsr_mono_ns() / 1e9;
}

static void die(const char *what, const char *msg) {
    fprintf(stderr, "bench_store: %s: %s\n", what, msg);
    exit(1);
}

static json_t *make_doc(int i) {
    char name[32];
    snprintf(name, sizeof(name), "App %06d", i);
    return json_pack("{s:s,s:i,s:s,s:s,s:s,s:b}", "name", name, "n", i, "group",
                     i % 10 == 0 ? "g0" : "gx", "description",
                     "Quarterly sales by region with drill-down into product lines and reps",
                     "ownerId", "user-0000000000000000000001", "published", i % 2);
}

/* ---- pkg/store --------------------------------------------------------------------------- */

typedef struct {
    double create, get, list;
} rates_t;

static rates_t run_store(const char *uri, const char *tenant, int n) {
    static const char *const idx[] = {"group", "n"};
    tsr_store_collection_t c = {.name = "apps", .indexes = idx, .n_indexes = 2};
    tsr_store_opts_t o = {.collections = &c, .n_collections = 1};
    tsr_store_t *s = NULL;
    tsr_error_t err;
    rates_t r;
    char id[32];
    if (tsr_store_create(uri, &o, &s, &err) != TSR_OK) {
        die("open", err.msg);
    }
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        json_t *d = make_doc(i);
        snprintf(id, sizeof(id), "app%08d", i);
        if (tsr_store_doc_create(s, tenant, "apps", id, d, NULL, 0, NULL, &err) != TSR_OK) {
            die("create", err.msg);
        }
        json_decref(d);
    }
    r.create = n / (now_s() - t0);
    unsigned seed = 42;
    t0 = now_s();
    for (int i = 0; i < n; i++) {
        json_t *d = NULL;
        snprintf(id, sizeof(id), "app%08d", rand_r(&seed) % n);
        if (tsr_store_doc_get(s, tenant, "apps", id, &d, &err) != TSR_OK) {
            die("get", err.msg);
        }
        json_decref(d);
    }
    r.get = n / (now_s() - t0);
    json_t *g0 = json_string("g0");
    tsr_store_filter_t f = {"group", TSR_STORE_EQ, g0};
    int pages = n / 10 > 0 ? n / 10 : 1, done = 0;
    char *cursor = NULL;
    t0 = now_s();
    while (done < pages) {
        tsr_store_query_t q = {
            .filters = &f, .n_filters = 1, .sort = "n", .limit = 20, .cursor = cursor};
        tsr_store_page_t page;
        if (tsr_store_doc_list(s, tenant, "apps", &q, &page, &err) != TSR_OK) {
            die("list", err.msg);
        }
        free(cursor);
        cursor = page.next_cursor; /* walk forward, wrap to the first page at the end */
        page.next_cursor = NULL;
        tsr_store_page_cleanup(&page);
        done++;
    }
    r.list = pages / (now_s() - t0);
    free(cursor);
    json_decref(g0);
    tsr_store_destroy(s);
    return r;
}

/* ---- raw sqlite3 ------------------------------------------------------------------------- */

static void xexec(sqlite3 *db, const char *sql) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        die(sql, msg ? msg : "?");
    }
}

static sqlite3_stmt *xprep(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        die(sql, sqlite3_errmsg(db));
    }
    return st;
}

static void step_done(sqlite3 *db, sqlite3_stmt *st) {
    if (sqlite3_step(st) != SQLITE_DONE) {
        die("step", sqlite3_errmsg(db));
    }
    sqlite3_reset(st);
}

static rates_t run_raw(const char *path, int n, const char *sync) {
    sqlite3 *db = NULL;
    rates_t r;
    char id[32], sql[128];
    if (sqlite3_open(path, &db) != SQLITE_OK) {
        die("open", sqlite3_errmsg(db));
    }
    sqlite3_busy_timeout(db, 5000);
    xexec(db, "PRAGMA journal_mode=WAL");
    snprintf(sql, sizeof(sql), "PRAGMA synchronous=%s", sync);
    xexec(db, sql);
    xexec(db, "CREATE TABLE apps(tenant TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT "
              "NULL, doc TEXT NOT NULL, PRIMARY KEY(tenant, id));"
              "CREATE INDEX i_group ON apps(tenant, json_extract(doc,'$.group'), id);"
              "CREATE INDEX i_n ON apps(tenant, json_extract(doc,'$.n'), id);");
    sqlite3_stmt *begin = xprep(db, "BEGIN IMMEDIATE"), *commit = xprep(db, "COMMIT");
    sqlite3_stmt *ins = xprep(db, "INSERT INTO apps(tenant, id, version, doc) VALUES(?,?,1,?)");
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        json_t *d = make_doc(i);
        snprintf(id, sizeof(id), "app%08d", i);
        json_object_set_new(d, "id", json_string(id));
        json_object_set_new(d, "tenantId", json_string("tenant1"));
        json_object_set_new(d, "version", json_integer(1));
        char *text = json_dumps(d, JSON_COMPACT);
        step_done(db, begin);
        sqlite3_bind_text(ins, 1, "tenant1", -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 3, text, -1, SQLITE_STATIC);
        step_done(db, ins);
        step_done(db, commit);
        free(text);
        json_decref(d);
    }
    r.create = n / (now_s() - t0);
    sqlite3_stmt *get = xprep(db, "SELECT doc FROM apps WHERE tenant=? AND id=?");
    unsigned seed = 42;
    t0 = now_s();
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "app%08d", rand_r(&seed) % n);
        sqlite3_bind_text(get, 1, "tenant1", -1, SQLITE_STATIC);
        sqlite3_bind_text(get, 2, id, -1, SQLITE_STATIC);
        if (sqlite3_step(get) != SQLITE_ROW) {
            die("get", "missing");
        }
        json_t *d = json_loadb((const char *)sqlite3_column_text(get, 0),
                               (size_t)sqlite3_column_bytes(get, 0), 0, NULL);
        sqlite3_reset(get);
        json_decref(d);
    }
    r.get = n / (now_s() - t0);
    sqlite3_stmt *first = xprep(db, "SELECT doc FROM apps WHERE tenant=? AND "
                                    "json_extract(doc,'$.group')=? ORDER BY "
                                    "json_extract(doc,'$.n'), tenant, id LIMIT 21");
    sqlite3_stmt *next = xprep(db, "SELECT doc FROM apps WHERE tenant=? AND "
                                   "json_extract(doc,'$.group')=? AND json_extract(doc,'$.n')>=? "
                                   "AND (json_extract(doc,'$.n')>? OR (tenant>? OR (tenant=? AND "
                                   "id>?))) ORDER BY json_extract(doc,'$.n'), tenant, id LIMIT 21");
    int pages = n / 10 > 0 ? n / 10 : 1;
    long long last_n = -1;
    char last_id[32] = "";
    t0 = now_s();
    for (int p = 0; p < pages; p++) {
        sqlite3_stmt *st = last_n < 0 ? first : next;
        sqlite3_bind_text(st, 1, "tenant1", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, "g0", -1, SQLITE_STATIC);
        if (last_n >= 0) {
            sqlite3_bind_int64(st, 3, last_n);
            sqlite3_bind_int64(st, 4, last_n);
            sqlite3_bind_text(st, 5, "tenant1", -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 6, "tenant1", -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 7, last_id, -1, SQLITE_STATIC);
        }
        json_t *arr = json_array();
        while (sqlite3_step(st) == SQLITE_ROW) {
            json_array_append_new(arr, json_loadb((const char *)sqlite3_column_text(st, 0),
                                                  (size_t)sqlite3_column_bytes(st, 0), 0, NULL));
        }
        sqlite3_reset(st);
        if (json_array_size(arr) == 21) {
            json_t *last = json_array_get(arr, 19);
            last_n = (long long)json_integer_value(json_object_get(last, "n"));
            snprintf(last_id, sizeof(last_id), "%s",
                     json_string_value(json_object_get(last, "id")));
        } else {
            last_n = -1;
        }
        json_decref(arr);
    }
    r.list = pages / (now_s() - t0);
    sqlite3_finalize(begin);
    sqlite3_finalize(commit);
    sqlite3_finalize(ins);
    sqlite3_finalize(get);
    sqlite3_finalize(first);
    sqlite3_finalize(next);
    sqlite3_close(db);
    return r;
}

int main(int argc, char **argv) {
    int n = 20000;
    const char *dir = "/tmp";
    const char *sync = "normal";
    int rounds = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--count") == 0) {
            n = (int)strtol(argv[i + 1], NULL, 10);
        } else if (strcmp(argv[i], "--dir") == 0) {
            dir = argv[i + 1];
        } else if (strcmp(argv[i], "--sync") == 0) {
            sync = argv[i + 1];
        } else if (strcmp(argv[i], "--rounds") == 0) {
            rounds = (int)strtol(argv[i + 1], NULL, 10);
        }
    }
    if (n < 10 || rounds < 1 || (strcmp(sync, "full") != 0 && strcmp(sync, "normal") != 0)) {
        fprintf(
            stderr,
            "usage: bench_store [--count N>=10] [--dir DIR] [--sync full|normal] [--rounds R]\n");
        return 2;
    }
    /* best of rounds, store and raw alternating, so that a noisy neighbour or a checkpoint
     * at the wrong moment does not decide the ratio */
    rates_t st = {0, 0, 0}, raw = {0, 0, 0};
    for (int round = 0; round < rounds; round++) {
        char path_store[512], path_raw[512], uri[600], p[600];
        snprintf(path_store, sizeof(path_store), "%s/bench-store-%d-%d.db", dir, (int)getpid(),
                 round);
        snprintf(path_raw, sizeof(path_raw), "%s/bench-raw-%d-%d.db", dir, (int)getpid(), round);
        snprintf(uri, sizeof(uri), "sqlite:%s?synchronous=%s", path_store, sync);
        rates_t a = run_store(uri, "tenant1", n);
        rates_t b = run_raw(path_raw, n, strcmp(sync, "full") == 0 ? "FULL" : "NORMAL");
        st.create = a.create > st.create ? a.create : st.create;
        st.get = a.get > st.get ? a.get : st.get;
        st.list = a.list > st.list ? a.list : st.list;
        raw.create = b.create > raw.create ? b.create : raw.create;
        raw.get = b.get > raw.get ? b.get : raw.get;
        raw.list = b.list > raw.list ? b.list : raw.list;
        const char *const sfx[] = {"", "-wal", "-shm"};
        for (int i = 0; i < 3; i++) {
            snprintf(p, sizeof(p), "%s%s", path_store, sfx[i]);
            unlink(p);
            snprintf(p, sizeof(p), "%s%s", path_raw, sfx[i]);
            unlink(p);
        }
    }
    printf("bench_store: SQLite, WAL, synchronous=%s, %d documents, pages of 20, best of %d\n",
           sync, n, rounds);
    printf("%-8s %14s %14s %8s\n", "op", "store ops/s", "raw ops/s", "ratio");
    printf("%-8s %14.0f %14.0f %8.2f\n", "create", st.create, raw.create, st.create / raw.create);
    printf("%-8s %14.0f %14.0f %8.2f\n", "get", st.get, raw.get, st.get / raw.get);
    printf("%-8s %14.0f %14.0f %8.2f\n", "list", st.list, raw.list, st.list / raw.list);
    /* MongoDB when one is configured (never the smartmongo test server: its figures would say
     * nothing about MongoDB); no raw peer there */
    const char *mongo = getenv("TSR_MONGODB_URI");
    if (mongo != NULL && mongo[0] != '\0') {
        char tenant[32];
        snprintf(tenant, sizeof(tenant), "bench-%d", (int)getpid());
        rates_t m = run_store(mongo, tenant, n);
        printf("bench_store: MongoDB (TSR_MONGODB_URI), %d documents, tenant %s\n", n, tenant);
        printf("%-8s %14.0f\n%-8s %14.0f\n%-8s %14.0f\n", "create", m.create, "get", m.get, "list",
               m.list);
    }
    return 0;
}
