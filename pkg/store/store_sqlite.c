/*
 * pkg/store SQLite backend: one database file, WAL, a busy timeout, every write one BEGIN
 * IMMEDIATE transaction (a SAVEPOINT inside a caller's transaction) so that several processes
 * can write the same file. One table per collection (tenant, id, version, doc JSON text) with
 * expression indexes on json_extract for declared fields; the outbox is one table written in
 * the same transaction as the document. Invariant: a failed write leaves nothing behind.
 */
#include "store_int.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "config.h"

typedef struct {
    uint64_t hash;
    char *sql;
    sqlite3_stmt *st;
} cached_t;

typedef struct {
    sqlite3 *db;
    pthread_mutex_t mu; /* serialises use of db; held for a whole caller transaction */
    bool txn_failed;    /* SQLite rolled the caller's transaction back on its own */
    cached_t *cache;    /* one prepared statement per distinct SQL text, kept until close: the
                           texts come from code paths, not from input, so their number is bounded */
    size_t n_cache;
    size_t cap_cache;
} sq_t;

/* The backend whose caller transaction this thread holds (then mu is held by this thread). */
static _Thread_local sq_t *tl_txn;

/* ---- errors ------------------------------------------------------------------------------ */

static tsr_err_t map_code(int code) {
    switch (code & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return TSR_OK;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_FULL:
    case SQLITE_NOMEM:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PROTOCOL:
        return TSR_EUNAVAILABLE;
    case SQLITE_CONSTRAINT:
        return TSR_ECONFLICT;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return TSR_ECORRUPT;
    default:
        return TSR_EIO;
    }
}

static tsr_err_t db_err(sq_t *b, int code, const char *what, tsr_error_t *err) {
    tsr_err_t rc = map_code(code);
    return tsr_error_set(err, rc == TSR_OK ? TSR_EINTERNAL : rc, "sqlite %s: %s", what,
                         sqlite3_errmsg(b->db));
}

/* ---- statements -------------------------------------------------------------------------- */

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    }
    return h;
}

static void cache_clear(sq_t *b) {
    for (size_t i = 0; i < b->n_cache; i++) {
        sqlite3_finalize(b->cache[i].st);
        free(b->cache[i].sql);
    }
    free(b->cache);
    b->cache = NULL;
    b->n_cache = b->cap_cache = 0;
}

/* A prepared statement for sql from the cache (caller holds mu). Reset it with done(). */
static tsr_err_t prep(sq_t *b, const char *sql, sqlite3_stmt **st, tsr_error_t *err) {
    uint64_t h = fnv1a(sql);
    for (size_t i = 0; i < b->n_cache; i++) {
        if (b->cache[i].hash == h && strcmp(b->cache[i].sql, sql) == 0) {
            *st = b->cache[i].st;
            return TSR_OK;
        }
    }
    if (b->n_cache == b->cap_cache) {
        b->cap_cache = b->cap_cache ? 2 * b->cap_cache : 32;
        b->cache = tsr_xrealloc(b->cache, b->cap_cache * sizeof(*b->cache));
    }
    int rc = sqlite3_prepare_v3(b->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (rc != SQLITE_OK) {
        *st = NULL;
        return db_err(b, rc, "prepare", err);
    }
    b->cache[b->n_cache++] = (cached_t){h, tsr_xstrdup(sql), *st};
    return TSR_OK;
}

static void done(sqlite3_stmt *st) {
    if (st != NULL) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
}

static tsr_err_t exec(sq_t *b, const char *sql, tsr_error_t *err) {
    int rc = sqlite3_exec(b->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? TSR_OK : db_err(b, rc, sql, err);
}

/* One statement without results through the cache: the per-write BEGIN/COMMIT/SAVEPOINT. */
static tsr_err_t exec1(sq_t *b, const char *sql, tsr_error_t *err) {
    sqlite3_stmt *st = NULL;
    tsr_err_t rc = prep(b, sql, &st, err);
    if (rc == TSR_OK) {
        int s = sqlite3_step(st);
        if (s != SQLITE_DONE && s != SQLITE_ROW) {
            rc = db_err(b, s, sql, err);
        }
        sqlite3_reset(st);
    }
    return rc;
}

/* ---- locking and write transactions ------------------------------------------------------ */

static bool in_txn(sq_t *b) {
    return tl_txn == b;
}

static void lock(sq_t *b) {
    if (!in_txn(b)) {
        pthread_mutex_lock(&b->mu);
    }
}

static void unlock(sq_t *b) {
    if (!in_txn(b)) {
        pthread_mutex_unlock(&b->mu);
    }
}

/* Start one all-or-nothing write: its own transaction, or a savepoint in the caller's. */
static tsr_err_t wbegin(sq_t *b, tsr_error_t *err) {
    lock(b);
    if (in_txn(b) && b->txn_failed) {
        return tsr_error_set(err, TSR_EUNAVAILABLE, "sqlite: transaction already failed");
    }
    tsr_err_t rc = exec1(b, in_txn(b) ? "SAVEPOINT w" : "BEGIN IMMEDIATE", err);
    if (rc != TSR_OK) {
        unlock(b);
    }
    return rc;
}

/* Finish what wbegin started: commit when rc is TSR_OK, else undo everything it wrote. */
static tsr_err_t wend(sq_t *b, tsr_err_t rc, tsr_error_t *err) {
    if (in_txn(b)) {
        if (rc == TSR_OK) {
            rc = exec1(b, "RELEASE w", err);
        }
        if (rc != TSR_OK) {
            if (sqlite3_get_autocommit(b->db)) {
                b->txn_failed = true; /* SQLite already rolled the whole transaction back */
            } else {
                (void)exec1(b, "ROLLBACK TO w", NULL);
                (void)exec1(b, "RELEASE w", NULL);
            }
        }
    } else {
        if (rc == TSR_OK) {
            rc = exec1(b, "COMMIT", err);
        }
        if (rc != TSR_OK && !sqlite3_get_autocommit(b->db)) {
            (void)exec1(b, "ROLLBACK", NULL);
        }
    }
    unlock(b);
    return rc;
}

/* ---- SQL text ---------------------------------------------------------------------------- */

/* Names were validated by store.c ([a-z_][a-z0-9_]* collections, dotted field paths), so they
 * can be quoted into SQL text; values are always bound. */
static void sql_field(tsr_buf_t *q, const char *field) {
    if (strcmp(field, "id") == 0) {
        (void)tsr_buf_append_str(q, "id");
    } else {
        (void)tsr_buf_appendf(q, "json_extract(doc,'$.%s')", field);
    }
}

static void bind_json(sqlite3_stmt *st, int i, const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_STRING:
        sqlite3_bind_text(st, i, json_string_value(v), (int)json_string_length(v),
                          SQLITE_TRANSIENT);
        break;
    case JSON_INTEGER:
        sqlite3_bind_int64(st, i, (sqlite3_int64)json_integer_value(v));
        break;
    case JSON_REAL:
        sqlite3_bind_double(st, i, json_real_value(v));
        break;
    case JSON_TRUE:
        sqlite3_bind_int(st, i, 1);
        break;
    case JSON_FALSE:
        sqlite3_bind_int(st, i, 0);
        break;
    case JSON_NULL:
        sqlite3_bind_null(st, i);
        break;
    default: {
        /* json_extract yields the JSON text of objects and arrays */
        char *t = json_dumps(v, JSON_COMPACT);
        sqlite3_bind_text(st, i, t ? t : "", -1, SQLITE_TRANSIENT);
        free(t);
        break;
    }
    }
}

/* ---- open / close ------------------------------------------------------------------------ */

static tsr_err_t parse_uri(const char *uri, char **path, int *busy_ms, long long *max_pages,
                           const char **sync, tsr_error_t *err) {
    const char *p = uri + strlen("sqlite:");
    const char *qm = strchr(p, '?');
    size_t n = qm ? (size_t)(qm - p) : strlen(p);
    if (n == 0) {
        return tsr_error_set(err, TSR_EINVAL, "store: sqlite uri has no path");
    }
    *path = tsr_xstrndup(p, n);
    tsr_str_t rest = tsr_str(qm ? qm + 1 : NULL), kv;
    while (tsr_str_next_tok(&rest, '&', &kv)) {
        tsr_str_t key;
        if (kv.n == 0 || !tsr_str_next_tok(&kv, '=', &key)) {
            continue;
        }
        int64_t v = 0;
        if (tsr_str_eq_cstr(key, "busy_timeout_ms") &&
            tsr_str_to_i64(kv, 0, 3600000, &v) == TSR_OK) {
            *busy_ms = (int)v;
        } else if (tsr_str_eq_cstr(key, "max_page_count") &&
                   tsr_str_to_i64(kv, 1, INT32_MAX, &v) == TSR_OK) {
            *max_pages = v;
        } else if (tsr_str_eq_cstr(key, "synchronous") &&
                   (tsr_str_eq_cstr(kv, "full") || tsr_str_eq_cstr(kv, "normal"))) {
            *sync = tsr_str_eq_cstr(kv, "full") ? "FULL" : "NORMAL";
        } else {
            free(*path);
            *path = NULL;
            return tsr_error_set(err, TSR_EINVAL, "store: bad sqlite uri option");
        }
    }
    return TSR_OK;
}

static void sq_close(void *vb) {
    sq_t *b = vb;
    if (b == NULL) {
        return;
    }
    cache_clear(b);
    sqlite3_close(b->db);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

static const char k_outbox[] =
    "CREATE TABLE IF NOT EXISTS outbox(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT NOT NULL UNIQUE, topic TEXT NOT NULL, key TEXT NOT NULL, payload BLOB NOT NULL,"
    " created_ms INTEGER NOT NULL)";

static tsr_err_t sq_open(const char *uri, const tsr_store_opts_t *opts, void **out,
                         tsr_error_t *err) {
    char *path = NULL;
    int busy_ms = opts->busy_timeout_ms;
    long long max_pages = 0;
    const char *sync = "FULL";
    sq_t *b = NULL;
    *out = NULL;
    if (busy_ms <= 0) {
        int64_t v = 5000;
        tsr_err_t krc = tsr_config_get_int("TSR_STORE_BUSY_TIMEOUT_MS", 0, 3600000, &v, err);
        if (krc != TSR_OK) {
            return krc;
        }
        busy_ms = (int)v;
    }
    tsr_err_t rc = parse_uri(uri, &path, &busy_ms, &max_pages, &sync, err);
    if (rc != TSR_OK) {
        return rc;
    }
    b = tsr_xcalloc(1, sizeof(*b));
    pthread_mutex_init(&b->mu, NULL);
    int src = sqlite3_open_v2(
        path, &b->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) {
        rc = tsr_error_set(err, TSR_EUNAVAILABLE, "sqlite open %s: %s", path,
                           b->db ? sqlite3_errmsg(b->db) : "out of memory");
        goto out;
    }
    sqlite3_extended_result_codes(b->db, 1);
    sqlite3_busy_timeout(b->db, busy_ms);
    rc = exec(b, "PRAGMA journal_mode=WAL", err);
    if (rc == TSR_OK) {
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA synchronous=%s", sync);
        rc = exec(b, sql, err);
    }
    if (rc == TSR_OK && max_pages > 0) {
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA max_page_count=%lld", max_pages);
        rc = exec(b, sql, err);
    }
    if (rc == TSR_OK) {
        rc = exec(b, k_outbox, err);
    }
out:
    free(path);
    if (rc != TSR_OK) {
        sq_close(b);
        return rc;
    }
    *out = b;
    return TSR_OK;
}

static tsr_err_t sq_ping(void *vb, tsr_error_t *err) {
    sq_t *b = vb;
    sqlite3_stmt *st = NULL;
    lock(b);
    tsr_err_t rc = prep(b, "SELECT count(*) FROM sqlite_master", &st, err);
    if (rc == TSR_OK) {
        int s = sqlite3_step(st);
        rc = s == SQLITE_ROW ? TSR_OK : db_err(b, s, "ping", err);
    }
    done(st);
    unlock(b);
    return rc;
}

static tsr_err_t sq_declare(void *vb, const tsr_store_collection_t *c, tsr_error_t *err) {
    sq_t *b = vb;
    tsr_buf_t q;
    tsr_buf_init(&q, 0);
    (void)tsr_buf_appendf(&q,
                          "CREATE TABLE IF NOT EXISTS \"d_%s\"(tenant TEXT NOT NULL, id TEXT NOT "
                          "NULL, version INTEGER NOT NULL, doc TEXT NOT NULL, "
                          "PRIMARY KEY(tenant, id));",
                          c->name);
    for (size_t i = 0; i < c->n_indexes; i++) {
        (void)tsr_buf_appendf(&q, "CREATE INDEX IF NOT EXISTS \"i_%s_%s\" ON \"d_%s\"(tenant, ",
                              c->name, c->indexes[i], c->name);
        sql_field(&q, c->indexes[i]);
        (void)tsr_buf_append_str(&q, ", id);");
    }
    for (size_t i = 0; i < c->n_uniques; i++) {
        const tsr_store_unique_t *u = &c->uniques[i];
        (void)tsr_buf_appendf(&q, "CREATE UNIQUE INDEX IF NOT EXISTS \"u_%s", c->name);
        for (size_t j = 0; j < u->n_fields; j++) {
            (void)tsr_buf_appendf(&q, "_%s", u->fields[j]);
        }
        (void)tsr_buf_appendf(&q, "%s\" ON \"d_%s\"(%s", u->global ? "_g" : "", c->name,
                              u->global ? "" : "tenant, ");
        for (size_t j = 0; j < u->n_fields; j++) {
            if (j > 0) {
                (void)tsr_buf_append_str(&q, ", ");
            }
            /* id as a plain column would make (tenant, id) unique twice: use the JSON copy */
            (void)tsr_buf_appendf(&q, "json_extract(doc,'$.%s')", u->fields[j]);
        }
        (void)tsr_buf_append_str(&q, ");");
    }
    tsr_err_t rc = wbegin(b, err);
    if (rc == TSR_OK) {
        rc = exec(b, q.data, err);
        rc = wend(b, rc, err);
    }
    tsr_buf_cleanup(&q);
    return rc;
}

/* ---- documents --------------------------------------------------------------------------- */

static tsr_err_t put_events(sq_t *b, const tsr_store_event_t *ev, size_t n, tsr_error_t *err) {
    sqlite3_stmt *st = NULL;
    tsr_err_t rc = TSR_OK;
    if (n == 0) {
        return TSR_OK;
    }
    rc = prep(b, "INSERT INTO outbox(id, topic, key, payload, created_ms) VALUES(?,?,?,?,?)", &st,
              err);
    for (size_t i = 0; rc == TSR_OK && i < n; i++) {
        sqlite3_bind_text(st, 1, ev[i].id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, ev[i].topic, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, ev[i].key, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 4, ev[i].payload, (int)ev[i].payload_len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)tsr_wall_ms());
        int s = sqlite3_step(st);
        if (s != SQLITE_DONE) {
            rc = db_err(b, s, "insert outbox", err);
        }
        done(st);
    }
    return rc;
}

static char *dump(const json_t *doc) {
    char *t = json_dumps(doc, JSON_COMPACT);
    if (t == NULL) {
        fprintf(stderr, "store: out of memory serialising a document\n");
        abort();
    }
    return t;
}

static tsr_err_t sq_insert(void *vb, const char *coll, const char *tenant, const char *id,
                           const json_t *doc, const tsr_store_event_t *events, size_t n_events,
                           tsr_error_t *err) {
    sq_t *b = vb;
    sqlite3_stmt *st = NULL;
    char sql[160];
    char *text = dump(doc);
    snprintf(sql, sizeof(sql), "INSERT INTO \"d_%s\"(tenant, id, version, doc) VALUES(?,?,?,?)",
             coll);
    tsr_err_t rc = wbegin(b, err);
    if (rc != TSR_OK) {
        free(text);
        return rc;
    }
    rc = prep(b, sql, &st, err);
    if (rc == TSR_OK) {
        sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3,
                           (sqlite3_int64)json_integer_value(json_object_get(doc, "version")));
        sqlite3_bind_text(st, 4, text, -1, SQLITE_STATIC);
        int s = sqlite3_step(st);
        if (s != SQLITE_DONE) {
            rc = db_err(b, s, "insert", err);
        }
        done(st);
    }
    if (rc == TSR_OK) {
        rc = put_events(b, events, n_events, err);
    }
    rc = wend(b, rc, err);
    free(text);
    return rc;
}

static tsr_err_t load_doc(sq_t *b, sqlite3_stmt *st, int col, json_t **out, tsr_error_t *err) {
    json_error_t je;
    (void)b;
    *out = json_loadb((const char *)sqlite3_column_text(st, col),
                      (size_t)sqlite3_column_bytes(st, col), 0, &je);
    if (*out == NULL) {
        return tsr_error_set(err, TSR_ECORRUPT, "sqlite: stored document unreadable: %s", je.text);
    }
    return TSR_OK;
}

static tsr_err_t sq_get(void *vb, const char *coll, const char *tenant, const char *id,
                        json_t **out, tsr_error_t *err) {
    sq_t *b = vb;
    sqlite3_stmt *st = NULL;
    char sql[128];
    *out = NULL;
    snprintf(sql, sizeof(sql), "SELECT doc FROM \"d_%s\" WHERE tenant=? AND id=?", coll);
    lock(b);
    tsr_err_t rc = prep(b, sql, &st, err);
    if (rc == TSR_OK) {
        sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
        int s = sqlite3_step(st);
        if (s == SQLITE_ROW) {
            rc = load_doc(b, st, 0, out, err);
        } else if (s == SQLITE_DONE) {
            rc = tsr_error_set(err, TSR_ENOTFOUND, "store: document not found");
        } else {
            rc = db_err(b, s, "get", err);
        }
        done(st);
    }
    unlock(b);
    return rc;
}

/* After an UPDATE/DELETE that matched nothing: absent, or present with another version. */
static tsr_err_t why_unchanged(sq_t *b, const char *coll, const char *tenant, const char *id,
                               tsr_error_t *err) {
    sqlite3_stmt *st = NULL;
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT version FROM \"d_%s\" WHERE tenant=? AND id=?", coll);
    tsr_err_t rc = prep(b, sql, &st, err);
    if (rc == TSR_OK) {
        sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
        int s = sqlite3_step(st);
        if (s == SQLITE_ROW) {
            rc = tsr_error_set(err, TSR_ECONFLICT, "store: version mismatch");
        } else if (s == SQLITE_DONE) {
            rc = tsr_error_set(err, TSR_ENOTFOUND, "store: document not found");
        } else {
            rc = db_err(b, s, "check", err);
        }
        done(st);
    }
    return rc;
}

static tsr_err_t sq_update(void *vb, const char *coll, const char *tenant, const char *id,
                           int64_t if_version, const json_t *doc, const tsr_store_event_t *events,
                           size_t n_events, tsr_error_t *err) {
    sq_t *b = vb;
    sqlite3_stmt *st = NULL;
    char sql[160];
    char *text = dump(doc);
    snprintf(sql, sizeof(sql),
             "UPDATE \"d_%s\" SET version=?, doc=? WHERE tenant=? AND id=? AND version=?", coll);
    tsr_err_t rc = wbegin(b, err);
    if (rc != TSR_OK) {
        free(text);
        return rc;
    }
    rc = prep(b, sql, &st, err);
    if (rc == TSR_OK) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)if_version + 1);
        sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, tenant, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)if_version);
        int s = sqlite3_step(st);
        if (s != SQLITE_DONE) {
            rc = db_err(b, s, "update", err);
        } else if (sqlite3_changes(b->db) == 0) {
            rc = why_unchanged(b, coll, tenant, id, err);
        }
        done(st);
    }
    if (rc == TSR_OK) {
        rc = put_events(b, events, n_events, err);
    }
    rc = wend(b, rc, err);
    free(text);
    return rc;
}

static tsr_err_t sq_del(void *vb, const char *coll, const char *tenant, const char *id,
                        int64_t if_version, const tsr_store_event_t *events, size_t n_events,
                        tsr_error_t *err) {
    sq_t *b = vb;
    sqlite3_stmt *st = NULL;
    char sql[160];
    snprintf(sql, sizeof(sql),
             "DELETE FROM \"d_%s\" WHERE tenant=? AND id=? AND (?=0 OR version=?)", coll);
    tsr_err_t rc = wbegin(b, err);
    if (rc != TSR_OK) {
        return rc;
    }
    rc = prep(b, sql, &st, err);
    if (rc == TSR_OK) {
        sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)if_version);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)if_version);
        int s = sqlite3_step(st);
        if (s != SQLITE_DONE) {
            rc = db_err(b, s, "delete", err);
        } else if (sqlite3_changes(b->db) == 0) {
            rc = why_unchanged(b, coll, tenant, id, err);
        }
        done(st);
    }
    if (rc == TSR_OK) {
        rc = put_events(b, events, n_events, err);
    }
    return wend(b, rc, err);
}

/* ---- list -------------------------------------------------------------------------------- */

static const char *op_sql(tsr_store_op_t op) {
    switch (op) {
    case TSR_STORE_LT:
        return "<";
    case TSR_STORE_LE:
        return "<=";
    case TSR_STORE_GT:
        return ">";
    case TSR_STORE_GE:
        return ">=";
    default:
        return "=";
    }
}

static tsr_err_t sq_list(void *vb, const char *coll, const tsr_store__list_t *lq, json_t **out,
                         tsr_error_t *err) {
    sq_t *b = vb;
    sqlite3_stmt *st = NULL;
    tsr_buf_t q, sx;
    const char *dir = lq->descending ? "DESC" : "ASC";
    const char *gt = lq->descending ? "<" : ">";
    bool after_null = lq->has_after && json_is_null(lq->after_value);
    *out = NULL;
    tsr_buf_init(&q, 0);
    tsr_buf_init(&sx, 0);
    sql_field(&sx, lq->sort);
    (void)tsr_buf_appendf(&q, "SELECT doc FROM \"d_%s\" WHERE 1", coll);
    if (lq->tenant != NULL) {
        (void)tsr_buf_append_str(&q, " AND tenant=?");
    }
    for (size_t i = 0; i < lq->n_filters; i++) {
        (void)tsr_buf_append_str(&q, " AND ");
        sql_field(&q, lq->filters[i].field);
        (void)tsr_buf_appendf(&q, "%s?", op_sql(lq->filters[i].op));
    }
    if (lq->has_after) {
        /* strictly after (v, t, i) in the (sort, tenant, id) order; NULL sorts lowest */
        const char *tie = lq->descending ? "(tenant<? OR (tenant=? AND id<?))"
                                         : "(tenant>? OR (tenant=? AND id>?))";
        if (after_null) {
            (void)tsr_buf_appendf(&q, " AND ((%s IS NULL AND %s)%s%s%s)", sx.data, tie,
                                  lq->descending ? "" : " OR ", lq->descending ? "" : sx.data,
                                  lq->descending ? "" : " IS NOT NULL");
        } else {
            /* "sx >= v AND (sx > v OR tie)" rather than "sx > v OR (sx = v AND tie)": the
             * first conjunct lets SQLite seek in the expression index instead of scanning the
             * tenant's rows from the start on every page */
            (void)tsr_buf_appendf(&q, " AND ((%s%s=? AND (%s%s? OR %s))%s%s%s)", sx.data, gt,
                                  sx.data, gt, tie, lq->descending ? " OR " : "",
                                  lq->descending ? sx.data : "", lq->descending ? " IS NULL" : "");
        }
    }
    (void)tsr_buf_appendf(&q, " ORDER BY %s %s, tenant %s, id %s LIMIT ?", sx.data, dir, dir, dir);
    lock(b);
    tsr_err_t rc = prep(b, q.data, &st, err);
    if (rc == TSR_OK) {
        int i = 1;
        if (lq->tenant != NULL) {
            sqlite3_bind_text(st, i++, lq->tenant, -1, SQLITE_STATIC);
        }
        for (size_t f = 0; f < lq->n_filters; f++) {
            bind_json(st, i++, lq->filters[f].value);
        }
        if (lq->has_after) {
            if (!after_null) {
                bind_json(st, i++, lq->after_value);
                bind_json(st, i++, lq->after_value);
            }
            sqlite3_bind_text(st, i++, lq->after_tenant, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, i++, lq->after_tenant, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, i++, lq->after_id, -1, SQLITE_STATIC);
        }
        sqlite3_bind_int64(st, i, (sqlite3_int64)lq->limit);
        json_t *arr = json_array();
        int s;
        while (rc == TSR_OK && (s = sqlite3_step(st)) == SQLITE_ROW) {
            json_t *d = NULL;
            rc = load_doc(b, st, 0, &d, err);
            if (rc == TSR_OK) {
                json_array_append_new(arr, d);
            }
        }
        if (rc == TSR_OK && s != SQLITE_DONE) {
            rc = db_err(b, s, "list", err);
        }
        done(st);
        if (rc == TSR_OK) {
            *out = arr;
        } else {
            json_decref(arr);
        }
    }
    unlock(b);
    tsr_buf_cleanup(&q);
    tsr_buf_cleanup(&sx);
    return rc;
}

/* ---- outbox ------------------------------------------------------------------------------ */

static tsr_err_t sq_outbox_fetch(void *vb, size_t limit, tsr_store_event_t **rows, size_t *n,
                                 tsr_error_t *err) {
    sq_t *b = vb;
    sqlite3_stmt *st = NULL;
    *rows = NULL;
    *n = 0;
    lock(b);
    tsr_err_t rc =
        prep(b, "SELECT id, topic, key, payload FROM outbox ORDER BY seq LIMIT ?", &st, err);
    if (rc == TSR_OK) {
        tsr_store_event_t *r = tsr_xcalloc(limit, sizeof(*r));
        sqlite3_bind_int64(st, 1, (sqlite3_int64)limit);
        int s;
        while (*n < limit && (s = sqlite3_step(st)) == SQLITE_ROW) {
            tsr_store_event_t *e = &r[*n];
            e->id = tsr_xstrdup((const char *)sqlite3_column_text(st, 0));
            e->topic = tsr_xstrdup((const char *)sqlite3_column_text(st, 1));
            e->key = tsr_xstrdup((const char *)sqlite3_column_text(st, 2));
            size_t len = (size_t)sqlite3_column_bytes(st, 3);
            char *p = tsr_xmalloc(len + 1);
            if (len > 0) {
                memcpy(p, sqlite3_column_blob(st, 3), len);
            }
            p[len] = '\0';
            e->payload = p;
            e->payload_len = len;
            (*n)++;
        }
        if (*n < limit && s != SQLITE_DONE) {
            rc = db_err(b, s, "outbox fetch", err);
            tsr_store_outbox_rows_free(r, *n);
            r = NULL;
            *n = 0;
        }
        *rows = r;
        done(st);
    }
    unlock(b);
    return rc;
}

/* Sent rows are deleted: the outbox holds only what still has to go out. */
static tsr_err_t sq_outbox_mark(void *vb, const char *const *ids, size_t n, tsr_error_t *err) {
    sq_t *b = vb;
    sqlite3_stmt *st = NULL;
    tsr_err_t rc = wbegin(b, err);
    if (rc != TSR_OK) {
        return rc;
    }
    rc = prep(b, "DELETE FROM outbox WHERE id=?", &st, err);
    for (size_t i = 0; rc == TSR_OK && i < n; i++) {
        sqlite3_bind_text(st, 1, ids[i], -1, SQLITE_STATIC);
        int s = sqlite3_step(st);
        if (s != SQLITE_DONE) {
            rc = db_err(b, s, "outbox mark", err);
        }
        done(st);
    }
    return wend(b, rc, err);
}

/* ---- caller transactions ----------------------------------------------------------------- */

static tsr_err_t sq_txn_begin(void *vb, tsr_error_t *err) {
    sq_t *b = vb;
    if (in_txn(b)) {
        return tsr_error_set(err, TSR_EINVAL, "store: transactions do not nest");
    }
    pthread_mutex_lock(&b->mu);
    tsr_err_t rc = exec1(b, "BEGIN IMMEDIATE", err);
    if (rc != TSR_OK) {
        pthread_mutex_unlock(&b->mu);
        return rc;
    }
    b->txn_failed = false;
    tl_txn = b;
    return TSR_OK;
}

static void txn_end(sq_t *b) {
    tl_txn = NULL;
    b->txn_failed = false;
    pthread_mutex_unlock(&b->mu);
}

static tsr_err_t sq_txn_commit(void *vb, tsr_error_t *err) {
    sq_t *b = vb;
    tsr_err_t rc = TSR_OK;
    if (!in_txn(b)) {
        return tsr_error_set(err, TSR_EINVAL, "store: no transaction on this thread");
    }
    if (b->txn_failed) {
        rc = tsr_error_set(err, TSR_EUNAVAILABLE, "sqlite: transaction was rolled back");
    } else {
        rc = exec1(b, "COMMIT", err);
    }
    if (rc != TSR_OK && !sqlite3_get_autocommit(b->db)) {
        (void)exec1(b, "ROLLBACK", NULL);
    }
    txn_end(b);
    return rc;
}

static void sq_txn_rollback(void *vb) {
    sq_t *b = vb;
    if (!in_txn(b)) {
        return;
    }
    if (!sqlite3_get_autocommit(b->db)) {
        (void)exec1(b, "ROLLBACK", NULL);
    }
    txn_end(b);
}

const tsr_store__backend_t tsr_store__sqlite_backend = {
    .scheme = "sqlite",
    .atomic_txn = true,
    .open = sq_open,
    .close = sq_close,
    .ping = sq_ping,
    .declare = sq_declare,
    .insert = sq_insert,
    .get = sq_get,
    .update = sq_update,
    .del = sq_del,
    .list = sq_list,
    .outbox_fetch = sq_outbox_fetch,
    .outbox_mark = sq_outbox_mark,
    .txn_begin = sq_txn_begin,
    .txn_commit = sq_txn_commit,
    .txn_rollback = sq_txn_rollback,
};
