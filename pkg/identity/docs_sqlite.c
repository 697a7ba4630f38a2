/*
 * pkg/identity document storage on SQLite: one table docs(coll, tenant, id, doc) keyed by all
 * three, documents as JSON text. A stand-in for pkg/store with the same addressing, so the
 * domain code does not change when the adapter swaps. One serialized connection (SQLite's
 * FULLMUTEX) per process; WAL and a busy timeout let tsr-admin and identity share the file.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "identity_int.h"

typedef struct {
    sqlite3 *db;
} docs_t;

static tsr_err_t db_err(docs_t *d, tsr_error_t *err, const char *what) {
    return tsr_error_set(err, TSR_EUNAVAILABLE, "identity store: %s: %s", what,
                         sqlite3_errmsg(d->db));
}

static tsr_err_t prep(docs_t *d, const char *sql, sqlite3_stmt **st, tsr_error_t *err) {
    if (sqlite3_prepare_v2(d->db, sql, -1, st, NULL) != SQLITE_OK) {
        return db_err(d, err, "prepare");
    }
    return TSR_OK;
}

static void bind3(sqlite3_stmt *st, const char *coll, const char *tenant, const char *id) {
    sqlite3_bind_text(st, 1, coll, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, tenant, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, id, -1, SQLITE_TRANSIENT);
}

static tsr_err_t d_create(void *ud, const char *coll, const char *tenant, const char *id,
                          json_t *doc, tsr_error_t *err) {
    docs_t *d = ud;
    sqlite3_stmt *st = NULL;
    char *text = json_dumps(doc, JSON_COMPACT);
    tsr_err_t rc = prep(d, "INSERT INTO docs(coll,tenant,id,doc) VALUES(?,?,?,?)", &st, err);
    if (rc != TSR_OK) {
        goto out;
    }
    bind3(st, coll, tenant, id);
    sqlite3_bind_text(st, 4, text, -1, SQLITE_TRANSIENT);
    int s = sqlite3_step(st);
    if (s == SQLITE_CONSTRAINT) {
        rc = tsr_error_set(err, TSR_ECONFLICT, "%s %s already exists", coll, id);
    } else if (s != SQLITE_DONE) {
        rc = db_err(d, err, "insert");
    }
out:
    sqlite3_finalize(st);
    free(text);
    return rc;
}

static tsr_err_t parse_row(sqlite3_stmt *st, int col, json_t **out, tsr_error_t *err) {
    json_error_t je;
    const char *text = (const char *)sqlite3_column_text(st, col);
    *out = text != NULL ? json_loads(text, 0, &je) : NULL;
    if (*out == NULL) {
        return tsr_error_set(err, TSR_ECORRUPT, "identity store: unreadable document");
    }
    return TSR_OK;
}

static tsr_err_t d_get(void *ud, const char *coll, const char *tenant, const char *id, json_t **out,
                       tsr_error_t *err) {
    docs_t *d = ud;
    sqlite3_stmt *st = NULL;
    *out = NULL;
    tsr_err_t rc = prep(d, "SELECT doc FROM docs WHERE coll=? AND tenant=? AND id=?", &st, err);
    if (rc != TSR_OK) {
        goto out;
    }
    bind3(st, coll, tenant, id);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        rc = parse_row(st, 0, out, err);
    } else if (s == SQLITE_DONE) {
        rc = tsr_error_set(err, TSR_ENOTFOUND, "not found");
    } else {
        rc = db_err(d, err, "select");
    }
out:
    sqlite3_finalize(st);
    return rc;
}

static tsr_err_t d_replace(void *ud, const char *coll, const char *tenant, const char *id,
                           json_t *doc, tsr_error_t *err) {
    docs_t *d = ud;
    sqlite3_stmt *st = NULL;
    char *text = json_dumps(doc, JSON_COMPACT);
    tsr_err_t rc =
        prep(d, "UPDATE docs SET doc=?4 WHERE coll=?1 AND tenant=?2 AND id=?3", &st, err);
    if (rc != TSR_OK) {
        goto out;
    }
    bind3(st, coll, tenant, id);
    sqlite3_bind_text(st, 4, text, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = db_err(d, err, "update");
    } else if (sqlite3_changes(d->db) == 0) {
        rc = tsr_error_set(err, TSR_ENOTFOUND, "not found");
    }
out:
    sqlite3_finalize(st);
    free(text);
    return rc;
}

static tsr_err_t d_del(void *ud, const char *coll, const char *tenant, const char *id,
                       tsr_error_t *err) {
    docs_t *d = ud;
    sqlite3_stmt *st = NULL;
    tsr_err_t rc = prep(d, "DELETE FROM docs WHERE coll=? AND tenant=? AND id=?", &st, err);
    if (rc != TSR_OK) {
        goto out;
    }
    bind3(st, coll, tenant, id);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = db_err(d, err, "delete");
    } else if (sqlite3_changes(d->db) == 0) {
        rc = tsr_error_set(err, TSR_ENOTFOUND, "not found");
    }
out:
    sqlite3_finalize(st);
    return rc;
}

static tsr_err_t d_list(void *ud, const char *coll, const char *tenant, const char *field,
                        const char *value, const char *after, size_t limit, json_t **out,
                        tsr_error_t *err) {
    docs_t *d = ud;
    sqlite3_stmt *st = NULL;
    *out = json_array();
    tsr_err_t rc = prep(d,
                        "SELECT doc FROM docs WHERE coll=?1 AND tenant=?2 AND id>?3 AND "
                        "(?4 IS NULL OR json_extract(doc,'$.'||?4)=?5) ORDER BY id LIMIT ?6",
                        &st, err);
    if (rc != TSR_OK) {
        goto out;
    }
    bind3(st, coll, tenant, after != NULL ? after : "");
    if (field != NULL) {
        sqlite3_bind_text(st, 4, field, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 5, value != NULL ? value : "", -1, SQLITE_TRANSIENT);
    }
    sqlite3_bind_int64(st, 6, (sqlite3_int64)(limit > 10000 ? 10000 : limit));
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *doc = NULL;
        rc = parse_row(st, 0, &doc, err);
        if (rc != TSR_OK) {
            goto out;
        }
        json_array_append_new(*out, doc);
    }
    if (s != SQLITE_DONE) {
        rc = db_err(d, err, "list");
    }
out:
    sqlite3_finalize(st);
    if (rc != TSR_OK) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

static void d_close(void *ud) {
    docs_t *d = ud;
    if (d != NULL) {
        sqlite3_close(d->db);
        free(d);
    }
}

tsr_err_t tsr_identity_docs_sqlite_open(const char *path, tsr_identity_docs_t *docs,
                                        tsr_error_t *err) {
    docs_t *d = tsr_xcalloc(1, sizeof *d);
    tsr_err_t rc = TSR_OK;
    bool mem = strcmp(path, ":memory:") == 0;
    if (!mem) {
        /* Create the file 0600 ourselves: it holds password and key hashes. */
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            rc = tsr_error_set(err, TSR_EIO, "identity store: cannot open %s", path);
            goto out;
        }
        close(fd);
    }
    if (sqlite3_open_v2(path, &d->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        rc = tsr_error_set(err, TSR_EIO, "identity store: cannot open %s", path);
        goto out;
    }
    sqlite3_busy_timeout(d->db, 5000);
    const char *schema = "PRAGMA journal_mode=WAL;"
                         "CREATE TABLE IF NOT EXISTS docs(coll TEXT NOT NULL, tenant TEXT NOT "
                         "NULL, id TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY(coll,tenant,id))"
                         " WITHOUT ROWID;";
    if (sqlite3_exec(d->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        rc = db_err(d, err, "schema");
        goto out;
    }
    docs->ud = d;
    docs->create = d_create;
    docs->get = d_get;
    docs->replace = d_replace;
    docs->del = d_del;
    docs->list = d_list;
    docs->close = d_close;
out:
    if (rc != TSR_OK) {
        d_close(d);
    }
    return rc;
}
