/*
 * pkg/blob GridFS backend (libmongoc's mongoc_gridfs_bucket_t, bucket "blobs"): the GridFS
 * filename is the key. Atomicity comes from GridFS itself: chunks are written as the caller
 * streams, but the files document that makes a blob findable is inserted only when the
 * upload stream closes, so a killed writer leaves only orphan chunks that no get or list
 * sees. Replacing a key uploads a new file and then deletes the older files of that name;
 * readers and deleters always pick the newest (uploadDate, _id), so concurrent writers of
 * one key agree on the survivor. One client pool per store; each writer or reader holds one
 * pooled client for its lifetime. Writes use w:majority unless the URI says otherwise.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <mongoc/mongoc.h>

#include "blob_int.h"

#define BUCKET_NAME "blobs"
#define DEFAULT_DB "tessera"
#define STREAM_TIMEOUT_MS 60000 /* per chunk round trip */
#define WTIMEOUT_MS 10000       /* w:majority wait before the write is reported failed */

typedef struct {
    mongoc_client_pool_t *pool;
    mongoc_uri_t *uri;
    char *db; /* database name */
} gbe_t;

/* A pooled client with the database and bucket on it. */
typedef struct {
    gbe_t *g;
    mongoc_client_t *client;
    mongoc_database_t *db;
    mongoc_gridfs_bucket_t *bucket;
} gconn_t;

typedef struct {
    gconn_t c;
    mongoc_stream_t *stream;
    char *key;
} gwriter_t;

typedef struct {
    gconn_t c;
    mongoc_stream_t *stream;
} greader_t;

static pthread_once_t g_init_once = PTHREAD_ONCE_INIT;

/* libmongoc logs every level (its DEBUG monitor lines included) by default; keep warnings
 * and worse. pkg/store installs the same filter. */
static void mongoc_log_quiet(mongoc_log_level_t level, const char *domain, const char *message,
                             void *user) {
    (void)user;
    if (level <= MONGOC_LOG_LEVEL_WARNING)
        mongoc_log_default_handler(level, domain, message, NULL);
}

static void mongo_init_once(void) {
    mongoc_init();
    mongoc_log_set_handler(mongoc_log_quiet, NULL);
}

/* Network and server-selection failures are worth retrying later; the rest is unexpected. */
static tsr_err_t mongo_code(const bson_error_t *e) {
    if (e->domain == MONGOC_ERROR_SERVER_SELECTION || e->domain == MONGOC_ERROR_STREAM ||
        e->domain == MONGOC_ERROR_CLIENT)
        return TSR_EUNAVAILABLE;
    if (e->domain == MONGOC_ERROR_WRITE_CONCERN)
        return TSR_EUNAVAILABLE;
    /* A chunk vanished mid-read: a replace deleted the version being read. Reading again
     * gets the new one. */
    if (e->domain == MONGOC_ERROR_GRIDFS && e->code == MONGOC_ERROR_GRIDFS_CHUNK_MISSING)
        return TSR_EUNAVAILABLE;
    return TSR_EIO;
}

static tsr_err_t mongo_fail(tsr_error_t *err, const char *what, const bson_error_t *e) {
    return tsr_error_set(err, mongo_code(e), "blob: gridfs %s: %s", what, e->message);
}

static tsr_err_t conn_open(gbe_t *g, gconn_t *c, tsr_error_t *err) {
    bson_error_t e;
    memset(c, 0, sizeof *c);
    c->g = g;
    c->client = mongoc_client_pool_pop(g->pool);
    c->db = mongoc_client_get_database(c->client, g->db);
    bson_t opts = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&opts, "bucketName", BUCKET_NAME);
    c->bucket = mongoc_gridfs_bucket_new(c->db, &opts, NULL, &e);
    bson_destroy(&opts);
    if (c->bucket == NULL) {
        tsr_err_t rc = mongo_fail(err, "bucket", &e);
        mongoc_database_destroy(c->db);
        mongoc_client_pool_push(g->pool, c->client);
        memset(c, 0, sizeof *c);
        return rc;
    }
    return TSR_OK;
}

static void conn_close(gconn_t *c) {
    if (c->client == NULL)
        return;
    mongoc_gridfs_bucket_destroy(c->bucket);
    mongoc_database_destroy(c->db);
    mongoc_client_pool_push(c->g->pool, c->client);
    memset(c, 0, sizeof *c);
}

static void gbe_destroy(tsr_blob__backend_t *b) {
    gbe_t *g = b;
    mongoc_client_pool_destroy(g->pool);
    mongoc_uri_destroy(g->uri);
    free(g->db);
    free(g);
}

/* ---- put --------------------------------------------------------------------------------- */

static tsr_err_t gbe_put_open(tsr_blob__backend_t *b, const char *key, tsr_blob__wimpl_t **out,
                              tsr_error_t *err) {
    gwriter_t *w = tsr_xcalloc(1, sizeof *w);
    tsr_err_t rc = conn_open(b, &w->c, err);
    if (rc != TSR_OK) {
        free(w);
        return rc;
    }
    bson_error_t e;
    /* The files document carries the tenant (the key's first segment), as every stored
     * document does, for operators and tenant deletion. */
    const char *slash = strchr(key, '/');
    bson_t opts = BSON_INITIALIZER, meta;
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "metadata", &meta);
    bson_append_utf8(&meta, "tenantId", -1, key, (int)(slash - key));
    bson_append_document_end(&opts, &meta);
    w->stream = mongoc_gridfs_bucket_open_upload_stream(w->c.bucket, key, &opts, NULL, &e);
    bson_destroy(&opts);
    if (w->stream == NULL) {
        rc = mongo_fail(err, "open upload", &e);
        conn_close(&w->c);
        free(w);
        return rc;
    }
    w->key = tsr_xstrdup(key);
    *out = w;
    return TSR_OK;
}

static tsr_err_t gbe_put_write(tsr_blob__wimpl_t *wi, const void *p, size_t n, tsr_error_t *err) {
    gwriter_t *w = wi;
    /* mongoc_stream_write takes a non-const buffer but only reads it. */
    ssize_t k = mongoc_stream_write(w->stream, (void *)(uintptr_t)p, n, STREAM_TIMEOUT_MS);
    if (k < 0 || (size_t)k != n) {
        bson_error_t e;
        if (!mongoc_gridfs_bucket_stream_error(w->stream, &e))
            return tsr_error_set(err, TSR_EUNAVAILABLE, "blob: gridfs write: short write");
        return mongo_fail(err, "write", &e);
    }
    return TSR_OK;
}

static void gwriter_free(gwriter_t *w) {
    if (w->stream != NULL)
        mongoc_stream_destroy(w->stream);
    conn_close(&w->c);
    free(w->key);
    free(w);
}

static void gbe_put_abort(tsr_blob__wimpl_t *wi) {
    gwriter_t *w = wi;
    /* Deletes the chunks written so far; if that fails they stay as unreachable orphans. */
    (void)mongoc_gridfs_bucket_abort_upload(w->stream);
    gwriter_free(w);
}

/* Delete every file named key except the newest (uploadDate, _id): the survivor of a
 * replace. Every process applies the same order, so racing writers agree. */
static tsr_err_t drop_older(gconn_t *c, const char *key, tsr_error_t *err) {
    tsr_err_t rc = TSR_OK;
    bson_t filter = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, "filename", key);
    bson_t *opts = BCON_NEW("sort", "{", "uploadDate", BCON_INT32(-1), "_id", BCON_INT32(-1), "}",
                            "projection", "{", "_id", BCON_INT32(1), "}");
    mongoc_cursor_t *cur = mongoc_gridfs_bucket_find(c->bucket, &filter, opts);
    const bson_t *doc;
    bool first = true;
    bson_error_t e;
    /* Collect ids first: deleting while the cursor is open would also work, but a small list
     * keeps the cursor short-lived. */
    bson_value_t *ids = NULL;
    size_t n = 0;
    while (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        if (first) {
            first = false;
            continue;
        }
        if (bson_iter_init_find(&it, doc, "_id")) {
            ids = tsr_xrealloc(ids, (n + 1) * sizeof *ids);
            bson_value_copy(bson_iter_value(&it), &ids[n++]);
        }
    }
    if (mongoc_cursor_error(cur, &e))
        rc = mongo_fail(err, "find", &e);
    mongoc_cursor_destroy(cur);
    for (size_t i = 0; i < n; i++) {
        /* Another writer may have deleted it first: not an error. */
        if (rc == TSR_OK && !mongoc_gridfs_bucket_delete_by_id(c->bucket, &ids[i], &e) &&
            !(e.domain == MONGOC_ERROR_GRIDFS &&
              e.code == MONGOC_ERROR_GRIDFS_BUCKET_FILE_NOT_FOUND))
            rc = mongo_fail(err, "delete older", &e);
        bson_value_destroy(&ids[i]);
    }
    free(ids);
    bson_destroy(opts);
    bson_destroy(&filter);
    return rc;
}

static tsr_err_t gbe_put_commit(tsr_blob__wimpl_t *wi, tsr_error_t *err) {
    gwriter_t *w = wi;
    tsr_err_t rc = TSR_OK;
    /* Close flushes the last chunk and inserts the files document: the moment of visibility. */
    if (mongoc_stream_close(w->stream) != 0) {
        bson_error_t e;
        if (mongoc_gridfs_bucket_stream_error(w->stream, &e))
            rc = mongo_fail(err, "commit", &e);
        else
            rc = tsr_error_set(err, TSR_EUNAVAILABLE, "blob: gridfs commit failed");
        gbe_put_abort(w);
        return rc;
    }
    rc = drop_older(&w->c, w->key, err);
    gwriter_free(w);
    return rc;
}

/* ---- get --------------------------------------------------------------------------------- */

/* Find the newest files document of key; *found false when there is none. */
static tsr_err_t find_newest(gconn_t *c, const char *key, bson_value_t *id, uint64_t *size,
                             bool *found, tsr_error_t *err) {
    tsr_err_t rc = TSR_OK;
    *found = false;
    bson_t filter = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, "filename", key);
    bson_t *opts = BCON_NEW("sort", "{", "uploadDate", BCON_INT32(-1), "_id", BCON_INT32(-1), "}",
                            "limit", BCON_INT64(1));
    mongoc_cursor_t *cur = mongoc_gridfs_bucket_find(c->bucket, &filter, opts);
    const bson_t *doc;
    bson_error_t e;
    if (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, doc, "_id")) {
            bson_value_copy(bson_iter_value(&it), id);
            *found = true;
            *size = 0;
            if (bson_iter_init_find(&it, doc, "length") && BSON_ITER_HOLDS_NUMBER(&it)) {
                int64_t len = bson_iter_as_int64(&it);
                *size = len > 0 ? (uint64_t)len : 0;
            }
        }
    }
    if (mongoc_cursor_error(cur, &e)) {
        rc = mongo_fail(err, "find", &e);
        if (*found)
            bson_value_destroy(id);
        *found = false;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(&filter);
    return rc;
}

static tsr_err_t gbe_get(tsr_blob__backend_t *b, const char *key, tsr_blob__rimpl_t **out,
                         uint64_t *size, tsr_error_t *err) {
    greader_t *r = tsr_xcalloc(1, sizeof *r);
    tsr_err_t rc = conn_open(b, &r->c, err);
    if (rc != TSR_OK)
        goto fail;
    /* A replace may delete the newest file between find and open: look again, a few times. */
    for (int attempt = 0; attempt < 5; attempt++) {
        bson_value_t id;
        bool found = false;
        rc = find_newest(&r->c, key, &id, size, &found, err);
        if (rc != TSR_OK)
            goto fail;
        if (!found) {
            rc = tsr_error_set(err, TSR_ENOTFOUND, "blob: no such blob");
            goto fail;
        }
        bson_error_t e;
        r->stream = mongoc_gridfs_bucket_open_download_stream(r->c.bucket, &id, &e);
        bson_value_destroy(&id);
        if (r->stream != NULL) {
            *out = r;
            return TSR_OK;
        }
        if (!(e.domain == MONGOC_ERROR_GRIDFS &&
              e.code == MONGOC_ERROR_GRIDFS_BUCKET_FILE_NOT_FOUND)) {
            rc = mongo_fail(err, "open download", &e);
            goto fail;
        }
    }
    rc = tsr_error_set(err, TSR_EUNAVAILABLE, "blob: replaced too often while opening");
fail:
    conn_close(&r->c);
    free(r);
    return rc;
}

static tsr_err_t gbe_read(tsr_blob__rimpl_t *ri, void *buf, size_t cap, size_t *nread,
                          tsr_error_t *err) {
    greader_t *r = ri;
    ssize_t k = mongoc_stream_read(r->stream, buf, cap, 0, STREAM_TIMEOUT_MS);
    if (k < 0) {
        bson_error_t e;
        if (!mongoc_gridfs_bucket_stream_error(r->stream, &e))
            return tsr_error_set(err, TSR_EUNAVAILABLE, "blob: gridfs read failed");
        return mongo_fail(err, "read", &e);
    }
    *nread = (size_t)k;
    return TSR_OK;
}

static void gbe_reader_destroy(tsr_blob__rimpl_t *ri) {
    greader_t *r = ri;
    mongoc_stream_destroy(r->stream);
    conn_close(&r->c);
    free(r);
}

/* ---- delete and list --------------------------------------------------------------------- */

static tsr_err_t gbe_del(tsr_blob__backend_t *b, const char *key, tsr_error_t *err) {
    gconn_t c;
    tsr_err_t rc = conn_open(b, &c, err);
    if (rc != TSR_OK)
        return rc;
    /* Delete every file of the name, newest first, until none is left. */
    size_t deleted = 0;
    for (int round = 0; round < 1000; round++) {
        bson_value_t id;
        uint64_t size;
        bool found;
        rc = find_newest(&c, key, &id, &size, &found, err);
        if (rc != TSR_OK || !found)
            break;
        bson_error_t e;
        bool ok = mongoc_gridfs_bucket_delete_by_id(c.bucket, &id, &e);
        bson_value_destroy(&id);
        if (ok) {
            deleted++;
        } else if (!(e.domain == MONGOC_ERROR_GRIDFS &&
                     e.code == MONGOC_ERROR_GRIDFS_BUCKET_FILE_NOT_FOUND)) {
            rc = mongo_fail(err, "delete", &e);
            break;
        }
    }
    if (rc == TSR_OK && deleted == 0)
        rc = tsr_error_set(err, TSR_ENOTFOUND, "blob: no such blob");
    conn_close(&c);
    return rc;
}

static tsr_err_t gbe_list(tsr_blob__backend_t *b, const char *prefix, const char *start_after,
                          size_t limit, tsr_blob_list_t *out, tsr_error_t *err) {
    gconn_t c;
    tsr_err_t rc = conn_open(b, &c, err);
    if (rc != TSR_OK)
        return rc;
    /* A key range instead of a regex: keys are ASCII below 0x7f, so prefix + "\x7f" bounds
     * every key with the prefix, and the filename index serves the range. */
    tsr_buf_t hi;
    tsr_buf_init(&hi, 0);
    tsr_buf_appendf(&hi, "%s\x7f", prefix);
    bson_t filter = BSON_INITIALIZER, range;
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "filename", &range);
    if (start_after != NULL && strcmp(start_after, prefix) >= 0)
        BSON_APPEND_UTF8(&range, "$gt", start_after);
    else
        BSON_APPEND_UTF8(&range, "$gte", prefix);
    BSON_APPEND_UTF8(&range, "$lt", hi.data);
    bson_append_document_end(&filter, &range);
    bson_t *opts =
        BCON_NEW("sort", "{", "filename", BCON_INT32(1), "uploadDate", BCON_INT32(-1), "_id",
                 BCON_INT32(-1), "}", "projection", "{", "filename", BCON_INT32(1), "length",
                 BCON_INT32(1), "uploadDate", BCON_INT32(1), "}");
    mongoc_cursor_t *cur = mongoc_gridfs_bucket_find(c.bucket, &filter, opts);
    const bson_t *doc;
    bson_error_t e;
    while (out->count < limit + 1 && mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        if (!bson_iter_init_find(&it, doc, "filename") || !BSON_ITER_HOLDS_UTF8(&it))
            continue;
        const char *name = bson_iter_utf8(&it, NULL);
        /* Several files of one name exist only while a replace is finishing: newest first. */
        if (out->count > 0 && strcmp(out->items[out->count - 1].key, name) == 0)
            continue;
        uint64_t size = 0;
        int64_t ms = 0;
        if (bson_iter_init_find(&it, doc, "length") && BSON_ITER_HOLDS_NUMBER(&it)) {
            int64_t len = bson_iter_as_int64(&it);
            size = len > 0 ? (uint64_t)len : 0;
        }
        if (bson_iter_init_find(&it, doc, "uploadDate") && BSON_ITER_HOLDS_DATE_TIME(&it))
            ms = bson_iter_date_time(&it);
        tsr_blob__list_push(out, name, size, ms);
    }
    if (mongoc_cursor_error(cur, &e))
        rc = mongo_fail(err, "list", &e);
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(&filter);
    tsr_buf_cleanup(&hi);
    conn_close(&c);
    return rc;
}

/* ---- sweep ------------------------------------------------------------------------------- */

/* Orphan chunks: a files_id in <bucket>.chunks with no document in <bucket>.files. libmongoc
 * makes files_id an ObjectId when the upload opens, so its timestamp is the upload's start. */
static tsr_err_t gbe_sweep(tsr_blob__backend_t *b, int64_t older_than_ms, size_t *removed,
                           tsr_error_t *err) {
    gbe_t *g = b;
    tsr_err_t rc = TSR_OK;
    int64_t cutoff_s = (tsr_wall_ms() - older_than_ms) / 1000;
    mongoc_client_t *client = mongoc_client_pool_pop(g->pool);
    mongoc_collection_t *chunks =
        mongoc_client_get_collection(client, g->db, BUCKET_NAME ".chunks");
    mongoc_collection_t *files = mongoc_client_get_collection(client, g->db, BUCKET_NAME ".files");
    bson_t *pipeline =
        BCON_NEW("pipeline", "[", "{", "$group", "{", "_id", BCON_UTF8("$files_id"), "}", "}", "]");
    mongoc_cursor_t *cur =
        mongoc_collection_aggregate(chunks, MONGOC_QUERY_NONE, pipeline, NULL, NULL);
    const bson_t *doc;
    bson_error_t e;
    while (rc == TSR_OK && mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        if (!bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_OID(&it))
            continue;
        const bson_oid_t *oid = bson_iter_oid(&it);
        if ((int64_t)bson_oid_get_time_t(oid) > cutoff_s)
            continue; /* possibly an upload still in progress */
        bson_t *q = BCON_NEW("_id", BCON_OID(oid));
        int64_t n = mongoc_collection_count_documents(files, q, NULL, NULL, NULL, &e);
        bson_destroy(q);
        if (n < 0) {
            rc = mongo_fail(err, "sweep count", &e);
            break;
        }
        if (n > 0)
            continue;
        bson_t *sel = BCON_NEW("files_id", BCON_OID(oid));
        if (mongoc_collection_delete_many(chunks, sel, NULL, NULL, &e))
            (*removed)++;
        else
            rc = mongo_fail(err, "sweep delete", &e);
        bson_destroy(sel);
    }
    if (rc == TSR_OK && mongoc_cursor_error(cur, &e))
        rc = mongo_fail(err, "sweep", &e);
    mongoc_cursor_destroy(cur);
    bson_destroy(pipeline);
    mongoc_collection_destroy(files);
    mongoc_collection_destroy(chunks);
    mongoc_client_pool_push(g->pool, client);
    return rc;
}

static const tsr_blob__ops_t GRIDFS_OPS = {
    .name = "gridfs",
    .destroy = gbe_destroy,
    .put_open = gbe_put_open,
    .put_write = gbe_put_write,
    .put_commit = gbe_put_commit,
    .put_abort = gbe_put_abort,
    .get = gbe_get,
    .read = gbe_read,
    .reader_destroy = gbe_reader_destroy,
    .del = gbe_del,
    .list = gbe_list,
    .sweep = gbe_sweep,
};

tsr_err_t tsr_blob__gridfs_open(const char *uri_str, const tsr_blob__ops_t **ops,
                                tsr_blob__backend_t **out, tsr_error_t *err) {
    bson_error_t e;
    tsr_err_t rc = TSR_OK;
    pthread_once(&g_init_once, mongo_init_once);
    mongoc_uri_t *uri = mongoc_uri_new_with_error(uri_str, &e);
    if (uri == NULL)
        return tsr_error_set(err, TSR_EINVAL, "blob: bad MongoDB URI: %s", e.message);
    const mongoc_write_concern_t *cur_wc = mongoc_uri_get_write_concern(uri);
    if (mongoc_write_concern_get_w(cur_wc) == MONGOC_WRITE_CONCERN_W_DEFAULT &&
        mongoc_write_concern_get_wtag(cur_wc) == NULL) {
        mongoc_write_concern_t *wc = mongoc_write_concern_new();
        mongoc_write_concern_set_w(wc, MONGOC_WRITE_CONCERN_W_MAJORITY);
        mongoc_write_concern_set_wtimeout_int64(wc, WTIMEOUT_MS);
        mongoc_uri_set_write_concern(uri, wc);
        mongoc_write_concern_destroy(wc);
    }
    mongoc_client_pool_t *pool = mongoc_client_pool_new_with_error(uri, &e);
    if (pool == NULL) {
        mongoc_uri_destroy(uri);
        return tsr_error_set(err, TSR_EINVAL, "blob: MongoDB client pool: %s", e.message);
    }
    mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_pool_set_appname(pool, "tessera-blob");
    gbe_t *g = tsr_xcalloc(1, sizeof *g);
    g->pool = pool;
    g->uri = uri;
    const char *db = mongoc_uri_get_database(uri);
    g->db = tsr_xstrdup(db != NULL && db[0] != '\0' ? db : DEFAULT_DB);
    /* Answering now beats failing on the first upload. */
    mongoc_client_t *client = mongoc_client_pool_pop(pool);
    bson_t *ping = BCON_NEW("ping", BCON_INT32(1));
    if (!mongoc_client_command_simple(client, "admin", ping, NULL, NULL, &e))
        rc = tsr_error_set(err, TSR_EUNAVAILABLE, "blob: MongoDB does not answer: %s", e.message);
    bson_destroy(ping);
    mongoc_client_pool_push(pool, client);
    if (rc != TSR_OK) {
        gbe_destroy(g);
        return rc;
    }
    *ops = &GRIDFS_OPS;
    *out = g;
    return TSR_OK;
}
