/*
 * TEST-ONLY SQLite implementation of events.h's outbox and dedupe interfaces (see the header).
 * Every write is one transaction; apply_once records the event id and the effect in the same
 * transaction, so "applied" and "marked processed" can never disagree after a crash.
 */
#include "sqlite_events_store.h"

#include <stdlib.h>
#include <string.h>

static const char *const k_schema =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "PRAGMA busy_timeout=10000;"
    "CREATE TABLE IF NOT EXISTS entities(id TEXT PRIMARY KEY);"
    "CREATE TABLE IF NOT EXISTS outbox(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT UNIQUE NOT NULL, topic TEXT NOT NULL, key TEXT NOT NULL, payload BLOB NOT NULL,"
    " sent_at INTEGER);"
    "CREATE TABLE IF NOT EXISTS processed(grp TEXT NOT NULL, event_id TEXT NOT NULL,"
    " PRIMARY KEY(grp, event_id));"
    "CREATE TABLE IF NOT EXISTS effects(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " event_id TEXT NOT NULL, subject TEXT, data_seq INTEGER);"
    "CREATE TABLE IF NOT EXISTS duplicates(event_id TEXT NOT NULL);";

static tsr_err_t db_err(sqlite3 *db, tsr_error_t *err, const char *what) {
    int code = sqlite3_errcode(db);
    tsr_err_t rc = (code == SQLITE_BUSY || code == SQLITE_LOCKED) ? TSR_EUNAVAILABLE : TSR_EIO;
    return tsr_error_set(err, rc, "sqlite %s: %s", what, sqlite3_errmsg(db));
}

static tsr_err_t exec(sqlite3 *db, const char *sql, tsr_error_t *err) {
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        return db_err(db, err, sql);
    }
    return TSR_OK;
}

tsr_err_t tsr_test_sqlite_store_open(tsr_test_sqlite_store_t *s, const char *path,
                                     tsr_error_t *err) {
    s->db = NULL;
    if (sqlite3_open(path, &s->db) != SQLITE_OK) {
        tsr_err_t rc = db_err(s->db, err, "open");
        sqlite3_close(s->db);
        s->db = NULL;
        return rc;
    }
    tsr_err_t rc = exec(s->db, k_schema, err);
    if (rc != TSR_OK) {
        sqlite3_close(s->db);
        s->db = NULL;
    }
    return rc;
}

void tsr_test_sqlite_store_close(tsr_test_sqlite_store_t *s) {
    sqlite3_close(s->db);
    s->db = NULL;
}

tsr_err_t tsr_test_sqlite_store_write_entity(tsr_test_sqlite_store_t *s, const char *entity_id,
                                             const char *topic, const char *key,
                                             const char *event_id, const char *payload,
                                             bool *created, tsr_error_t *err) {
    sqlite3_stmt *st = NULL;
    tsr_err_t rc = exec(s->db, "BEGIN IMMEDIATE", err);
    *created = false;
    if (rc != TSR_OK) {
        return rc;
    }
    if (sqlite3_prepare_v2(s->db, "INSERT OR IGNORE INTO entities(id) VALUES(?)", -1, &st, NULL) !=
        SQLITE_OK) {
        rc = db_err(s->db, err, "prepare");
        goto out;
    }
    sqlite3_bind_text(st, 1, entity_id, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = db_err(s->db, err, "insert entity");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_changes(s->db) == 1) {
        if (sqlite3_prepare_v2(s->db, "INSERT INTO outbox(id, topic, key, payload) VALUES(?,?,?,?)",
                               -1, &st, NULL) != SQLITE_OK) {
            rc = db_err(s->db, err, "prepare");
            goto out;
        }
        sqlite3_bind_text(st, 1, event_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, topic, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 4, payload, (int)strlen(payload), SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_DONE) {
            rc = db_err(s->db, err, "insert outbox");
            goto out;
        }
        *created = true;
    }
out:
    sqlite3_finalize(st);
    if (rc == TSR_OK) {
        rc = exec(s->db, "COMMIT", err);
    }
    if (rc != TSR_OK) {
        (void)exec(s->db, "ROLLBACK", NULL);
        *created = false;
    }
    return rc;
}

/* ---- outbox ------------------------------------------------------------------------------ */

static tsr_err_t ob_fetch(void *ctx, size_t limit, tsr_events_outbox_row_t *rows, size_t *n,
                          tsr_error_t *err) {
    tsr_test_sqlite_store_t *s = ctx;
    sqlite3_stmt *st = NULL;
    *n = 0;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id, topic, key, payload FROM outbox WHERE sent_at IS NULL "
                           "ORDER BY seq LIMIT ?",
                           -1, &st, NULL) != SQLITE_OK) {
        return db_err(s->db, err, "prepare fetch");
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)limit);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW && *n < limit) {
        tsr_events_outbox_row_t *row = &rows[*n];
        row->id = tsr_xstrdup((const char *)sqlite3_column_text(st, 0));
        row->topic = tsr_xstrdup((const char *)sqlite3_column_text(st, 1));
        row->key = tsr_xstrdup((const char *)sqlite3_column_text(st, 2));
        int len = sqlite3_column_bytes(st, 3);
        char *p = tsr_xmalloc((size_t)len + 1);
        memcpy(p, sqlite3_column_blob(st, 3), (size_t)len);
        p[len] = '\0';
        row->payload = p;
        row->payload_len = (size_t)len;
        (*n)++;
    }
    tsr_err_t rc = (r == SQLITE_DONE || r == SQLITE_ROW) ? TSR_OK : db_err(s->db, err, "fetch");
    sqlite3_finalize(st);
    return rc;
}

static void ob_release(void *ctx, tsr_events_outbox_row_t *rows, size_t n) {
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        free((char *)rows[i].id);
        free((char *)rows[i].topic);
        free((char *)rows[i].key);
        free((char *)rows[i].payload);
    }
}

static tsr_err_t ob_mark(void *ctx, const char *const *ids, size_t n, tsr_error_t *err) {
    tsr_test_sqlite_store_t *s = ctx;
    sqlite3_stmt *st = NULL;
    tsr_err_t rc = exec(s->db, "BEGIN IMMEDIATE", err);
    if (rc != TSR_OK) {
        return rc;
    }
    if (sqlite3_prepare_v2(s->db, "UPDATE outbox SET sent_at = ? WHERE id = ?", -1, &st, NULL) !=
        SQLITE_OK) {
        rc = db_err(s->db, err, "prepare mark");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, (sqlite3_int64)tsr_wall_ms());
        sqlite3_bind_text(st, 2, ids[i], -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_DONE) {
            rc = db_err(s->db, err, "mark");
            goto out;
        }
    }
out:
    sqlite3_finalize(st);
    if (rc == TSR_OK) {
        rc = exec(s->db, "COMMIT", err);
    }
    if (rc != TSR_OK) {
        (void)exec(s->db, "ROLLBACK", NULL);
    }
    return rc;
}

tsr_events_outbox_t tsr_test_sqlite_store_outbox(tsr_test_sqlite_store_t *s) {
    tsr_events_outbox_t o = {s, ob_fetch, ob_mark, ob_release};
    return o;
}

/* ---- dedupe ------------------------------------------------------------------------------ */

static tsr_err_t dd_apply_once(void *ctx, const char *group, const char *event_id,
                               tsr_events_effect_cb effect, void *opaque, bool *applied,
                               tsr_error_t *err) {
    tsr_test_sqlite_store_t *s = ctx;
    sqlite3_stmt *st = NULL;
    *applied = false;
    tsr_err_t rc = exec(s->db, "BEGIN IMMEDIATE", err);
    if (rc != TSR_OK) {
        return rc;
    }
    if (sqlite3_prepare_v2(s->db, "INSERT OR IGNORE INTO processed(grp, event_id) VALUES(?,?)", -1,
                           &st, NULL) != SQLITE_OK) {
        rc = db_err(s->db, err, "prepare processed");
        goto out;
    }
    sqlite3_bind_text(st, 1, group, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, event_id, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = db_err(s->db, err, "insert processed");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_changes(s->db) == 0) {
        /* already applied: note the redelivery for the tests, apply nothing */
        if (sqlite3_prepare_v2(s->db, "INSERT INTO duplicates(event_id) VALUES(?)", -1, &st,
                               NULL) != SQLITE_OK) {
            rc = db_err(s->db, err, "prepare duplicates");
            goto out;
        }
        sqlite3_bind_text(st, 1, event_id, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) != SQLITE_DONE) {
            rc = db_err(s->db, err, "insert duplicate");
        }
        goto out;
    }
    rc = effect(opaque, s->db, err);
    if (rc == TSR_OK) {
        *applied = true;
    }
out:
    sqlite3_finalize(st);
    if (rc == TSR_OK) {
        rc = exec(s->db, "COMMIT", err);
        if (rc != TSR_OK) {
            *applied = false;
        }
    }
    if (rc != TSR_OK) {
        (void)exec(s->db, "ROLLBACK", NULL);
    }
    return rc;
}

tsr_events_dedupe_t tsr_test_sqlite_store_dedupe(tsr_test_sqlite_store_t *s) {
    tsr_events_dedupe_t d = {s, dd_apply_once};
    return d;
}

tsr_err_t tsr_test_sqlite_store_record_effect(void *txn, const char *event_id, const char *subject,
                                              long long seq, tsr_error_t *err) {
    sqlite3 *db = txn;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "INSERT INTO effects(event_id, subject, data_seq) VALUES(?,?,?)", -1,
                           &st, NULL) != SQLITE_OK) {
        return db_err(db, err, "prepare effect");
    }
    sqlite3_bind_text(st, 1, event_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, subject, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, seq);
    tsr_err_t rc = sqlite3_step(st) == SQLITE_DONE ? TSR_OK : db_err(db, err, "insert effect");
    sqlite3_finalize(st);
    return rc;
}

static long long scalar(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st = NULL;
    long long v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

tsr_err_t tsr_test_sqlite_store_counts(tsr_test_sqlite_store_t *s, tsr_test_sqlite_counts_t *out,
                                       tsr_error_t *err) {
    (void)err;
    out->effects = scalar(s->db, "SELECT count(*) FROM effects");
    out->distinct_effects = scalar(s->db, "SELECT count(DISTINCT event_id) FROM effects");
    out->duplicates = scalar(s->db, "SELECT count(*) FROM duplicates");
    out->outbox_total = scalar(s->db, "SELECT count(*) FROM outbox");
    out->outbox_unsent = scalar(s->db, "SELECT count(*) FROM outbox WHERE sent_at IS NULL");
    /* a later application with a smaller or equal sequence for the same subject breaks order */
    out->order_ok = scalar(s->db, "SELECT count(*) FROM effects a JOIN effects b"
                                  " ON a.subject = b.subject AND a.seq < b.seq"
                                  " AND a.data_seq >= b.data_seq") == 0;
    return TSR_OK;
}
