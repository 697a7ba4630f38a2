/*
 * pkg/store MongoDB backend (libmongoc): the slots of store_int.h over one client pool per
 * process and URI, writes with w:majority, indexes created at declare. No multi-document
 * transactions: every write is one single-document operation whose filter carries the
 * expected version (compare-and-set), and a change's outbox events live inside the document
 * they belong to, so both commit in the same write (layout below, before the key helpers).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mongoc/mongoc.h>
#include <openssl/evp.h>

#include "store_int.h"

#define DEFAULT_DB "tessera"
#define WTIMEOUT_MS 10000     /* w:majority wait before a write is reported failed */
#define OUTBOX_SCAN_FACTOR 10 /* outbox_fetch reads at most limit * this documents per coll */
#define DUP_KEY 11000         /* MongoDB's duplicate key error code */
#define SEQ_ID "outbox-seq"   /* counter document (tenant _platform) in _tsr_meta */
#define MAX_COLLS 64          /* collections a store may declare (internal ones included) */

/* ---- the process's client pools ---------------------------------------------------------- */

/* One pool per (process, URI): several store handles on one URI share it. A forked child
 * never reuses its parent's pool (libmongoc pools do not survive fork). */
typedef struct pool_ent {
    struct pool_ent *next;
    char *uri;
    pid_t pid;
    int refs;
    mongoc_client_pool_t *pool;
    mongoc_uri_t *muri;
} pool_ent_t;

static pthread_mutex_t g_pools_mu = PTHREAD_MUTEX_INITIALIZER;
static pool_ent_t *g_pools;
static pthread_once_t g_init_once = PTHREAD_ONCE_INIT;

/* libmongoc logs to stdout/stderr at every level by default; keep warnings and worse. */
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

typedef struct {
    pool_ent_t *pe;
    char *db;               /* database name */
    char *colls[MAX_COLLS]; /* declared collection names (outbox scans them) */
    size_t n_colls;
    pthread_mutex_t mu; /* guards colls */
} mstore_t;

/* ---- errors ------------------------------------------------------------------------------ */

static bool is_dup(const bson_error_t *e) {
    return e->code == DUP_KEY || e->code == 11001 || e->code == 12582;
}

static tsr_err_t mongo_code(const bson_error_t *e) {
    if (is_dup(e))
        return TSR_ECONFLICT;
    if (e->domain == MONGOC_ERROR_SERVER_SELECTION || e->domain == MONGOC_ERROR_STREAM ||
        e->domain == MONGOC_ERROR_WRITE_CONCERN)
        return TSR_EUNAVAILABLE;
    /* Server errors that mean "try again": not primary, shutting down, exceeded time limit. */
    if (e->domain == MONGOC_ERROR_SERVER &&
        (e->code == 10107 || e->code == 13435 || e->code == 11600 || e->code == 11602 ||
         e->code == 91 || e->code == 189 || e->code == 50 || e->code == 64))
        return TSR_EUNAVAILABLE;
    /* The document with its queued outbox entries outgrew 16 MiB: the relay must drain it
     * first. */
    if (e->code == 10334 || e->code == 17419 || e->code == 17420)
        return TSR_EUNAVAILABLE;
    if (e->domain == MONGOC_ERROR_BSON)
        return TSR_ETOOBIG;
    return TSR_EIO;
}

static tsr_err_t mongo_fail(tsr_error_t *err, const char *what, const bson_error_t *e) {
    tsr_err_t code = mongo_code(e);
    if (code == TSR_ECONFLICT)
        return tsr_error_set(err, code, "store: duplicate key (%s)", what);
    return tsr_error_set(err, code, "store: mongodb %s: %s", what, e->message);
}

/* ---- keys and documents ------------------------------------------------------------------ */

/* A stored document, per collection:
 *   {_id: ObjectId(SHA-256(tenant NUL id)[0..12]), t: tenant, i: id, v: version,
 *    d: {the document, keys escaped}, ob: [{id, topic, key, payload, s}], obs: min s,
 *    del: true}
 * _id is derived from (tenant, id) so that the _id index, unique on every MongoDB-wire
 * server, enforces the key. "ob" holds the events not yet relayed, "obs" the smallest of their
 * sequence numbers (from a counter document; gaps are fine), both removed once all are sent.
 * "del" marks a tombstone: a deleted document whose events are not relayed yet, invisible to
 * every read, revived by a create, removed by the outbox mark once it carries nothing. */

static void doc_oid(const char *tenant, const char *id, bson_oid_t *oid) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t tl = strlen(tenant), il = strlen(id);
    char *buf = tsr_xmalloc(tl + il + 1);
    memcpy(buf, tenant, tl);
    buf[tl] = '\0';
    memcpy(buf + tl + 1, id, il);
    if (EVP_Digest(buf, tl + il + 1, md, &mdlen, EVP_sha256(), NULL) != 1)
        abort(); /* no safe fallback for a failing SHA-256 */
    free(buf);
    bson_oid_init_from_data(oid, md);
}

/* BSON keys may not contain '.', start with '$' or be empty: escape '%', '.', '$' as %XX and
 * the empty key as "%e". Field paths the store filters on ([A-Za-z][A-Za-z0-9_]*) never
 * change. */
static char *key_escape(const char *k) {
    if (k[0] == '\0')
        return tsr_xstrdup("%e");
    if (strpbrk(k, "%.$") == NULL)
        return NULL;
    tsr_buf_t b;
    tsr_buf_init(&b, 0);
    for (const char *p = k; *p; p++) {
        if (*p == '%' || *p == '.' || *p == '$')
            tsr_buf_appendf(&b, "%%%02X", (unsigned char)*p);
        else
            tsr_buf_append(&b, p, 1);
    }
    return tsr_buf_take(&b, NULL);
}

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static char *key_unescape(const char *k, size_t n) {
    if (n == 2 && k[0] == '%' && k[1] == 'e')
        return tsr_xstrdup("");
    char *out = tsr_xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (k[i] == '%' && i + 2 < n && hexval(k[i + 1]) >= 0 && hexval(k[i + 2]) >= 0) {
            out[o++] = (char)(hexval(k[i + 1]) * 16 + hexval(k[i + 2]));
            i += 2;
        } else {
            out[o++] = k[i];
        }
    }
    out[o] = '\0';
    return out;
}

static void append_json(bson_t *b, const char *key, const json_t *v);

static void append_object(bson_t *b, const json_t *obj) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        char *esc = key_escape(k);
        append_json(b, esc ? esc : k, v);
        free(esc);
    }
}

static void append_json(bson_t *b, const char *key, const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        bson_t child;
        bson_append_document_begin(b, key, -1, &child);
        append_object(&child, v);
        bson_append_document_end(b, &child);
        break;
    }
    case JSON_ARRAY: {
        bson_t child;
        bson_append_array_begin(b, key, -1, &child);
        for (size_t i = 0; i < json_array_size(v); i++) {
            char idx[24];
            const char *ks;
            bson_uint32_to_string((uint32_t)i, &ks, idx, sizeof idx);
            append_json(&child, ks, json_array_get(v, i));
        }
        bson_append_array_end(b, &child);
        break;
    }
    case JSON_STRING:
        bson_append_utf8(b, key, -1, json_string_value(v), (int)json_string_length(v));
        break;
    case JSON_INTEGER:
        bson_append_int64(b, key, -1, (int64_t)json_integer_value(v));
        break;
    case JSON_REAL:
        bson_append_double(b, key, -1, json_real_value(v));
        break;
    case JSON_TRUE:
        bson_append_bool(b, key, -1, true);
        break;
    case JSON_FALSE:
        bson_append_bool(b, key, -1, false);
        break;
    case JSON_NULL:
    default:
        bson_append_null(b, key, -1);
        break;
    }
}

static json_t *iter_to_json(bson_iter_t *it);

static json_t *doc_to_json(bson_iter_t *child, bool array) {
    json_t *out = array ? json_array() : json_object();
    while (bson_iter_next(child)) {
        json_t *v = iter_to_json(child);
        if (v == NULL)
            continue;
        if (array) {
            json_array_append_new(out, v);
        } else {
            uint32_t kl = bson_iter_key_len(child);
            char *k = key_unescape(bson_iter_key(child), kl);
            json_object_set_new(out, k, v);
            free(k);
        }
    }
    return out;
}

/* BSON types the backend never writes (dates, ObjectIds, ...) come back as null. */
static json_t *iter_to_json(bson_iter_t *it) {
    bson_iter_t child;
    switch (bson_iter_type(it)) {
    case BSON_TYPE_DOCUMENT:
        if (!bson_iter_recurse(it, &child))
            return json_null();
        return doc_to_json(&child, false);
    case BSON_TYPE_ARRAY:
        if (!bson_iter_recurse(it, &child))
            return json_null();
        return doc_to_json(&child, true);
    case BSON_TYPE_UTF8: {
        uint32_t n = 0;
        const char *s = bson_iter_utf8(it, &n);
        return json_stringn(s, n);
    }
    case BSON_TYPE_INT32:
        return json_integer(bson_iter_int32(it));
    case BSON_TYPE_INT64:
        return json_integer(bson_iter_int64(it));
    case BSON_TYPE_DOUBLE: {
        /* Integers are written as int64. A wire server that keeps numbers as doubles (the
         * smartmongo test server does beyond int32) hands large ones back as integral
         * doubles: read those as integers. Integral reals under 2^31 stay reals. */
        double x = bson_iter_double(it);
        if (x == (double)(int64_t)x && (x > 2147483647.0 || x < -2147483648.0) &&
            x <= 9007199254740992.0 && x >= -9007199254740992.0)
            return json_integer((json_int_t)x);
        return json_real(x);
    }
    case BSON_TYPE_BOOL:
        return json_boolean(bson_iter_bool(it));
    default:
        return json_null();
    }
}

/* The user document of a stored one ("d"), or NULL. */
static json_t *stored_doc(const bson_t *doc) {
    bson_iter_t it, child;
    if (!bson_iter_init_find(&it, doc, "d") || !BSON_ITER_HOLDS_DOCUMENT(&it) ||
        !bson_iter_recurse(&it, &child))
        return NULL;
    return doc_to_json(&child, false);
}

/* ---- connections ------------------------------------------------------------------------- */

typedef struct {
    mstore_t *m;
    mongoc_client_t *client;
    mongoc_collection_t *coll;
} mconn_t;

static void conn_open(mstore_t *m, const char *coll, mconn_t *c) {
    c->m = m;
    c->client = mongoc_client_pool_pop(m->pe->pool);
    c->coll = coll ? mongoc_client_get_collection(c->client, m->db, coll) : NULL;
}

static void conn_close(mconn_t *c) {
    if (c->coll != NULL)
        mongoc_collection_destroy(c->coll);
    if (c->client != NULL)
        mongoc_client_pool_push(c->m->pe->pool, c->client);
    memset(c, 0, sizeof *c);
}

static tsr_err_t pool_get(const char *uri_str, pool_ent_t **out, tsr_error_t *err) {
    tsr_err_t rc = TSR_OK;
    pid_t pid = getpid();
    pthread_mutex_lock(&g_pools_mu);
    for (pool_ent_t *p = g_pools; p != NULL; p = p->next) {
        if (p->pid == pid && strcmp(p->uri, uri_str) == 0) {
            p->refs++;
            *out = p;
            goto out;
        }
    }
    bson_error_t e;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(uri_str, &e);
    if (uri == NULL) {
        rc = tsr_error_set(err, TSR_EINVAL, "store: bad MongoDB URI: %s", e.message);
        goto out;
    }
    const mongoc_write_concern_t *cur = mongoc_uri_get_write_concern(uri);
    if (mongoc_write_concern_get_w(cur) == MONGOC_WRITE_CONCERN_W_DEFAULT &&
        mongoc_write_concern_get_wtag(cur) == NULL) {
        mongoc_write_concern_t *wc = mongoc_write_concern_new();
        mongoc_write_concern_set_w(wc, MONGOC_WRITE_CONCERN_W_MAJORITY);
        mongoc_write_concern_set_wtimeout_int64(wc, WTIMEOUT_MS);
        mongoc_uri_set_write_concern(uri, wc);
        mongoc_write_concern_destroy(wc);
    }
    /* Reads of what a majority acknowledged, so a read after a failover never goes back. */
    if (mongoc_read_concern_get_level(mongoc_uri_get_read_concern(uri)) == NULL) {
        mongoc_read_concern_t *rcn = mongoc_read_concern_new();
        mongoc_read_concern_set_level(rcn, MONGOC_READ_CONCERN_LEVEL_MAJORITY);
        mongoc_uri_set_read_concern(uri, rcn);
        mongoc_read_concern_destroy(rcn);
    }
    mongoc_client_pool_t *pool = mongoc_client_pool_new_with_error(uri, &e);
    if (pool == NULL) {
        mongoc_uri_destroy(uri);
        rc = tsr_error_set(err, TSR_EINVAL, "store: MongoDB client pool: %s", e.message);
        goto out;
    }
    mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_pool_set_appname(pool, "tessera-store");
    pool_ent_t *p = tsr_xcalloc(1, sizeof *p);
    p->uri = tsr_xstrdup(uri_str);
    p->pid = pid;
    p->refs = 1;
    p->pool = pool;
    p->muri = uri;
    p->next = g_pools;
    g_pools = p;
    *out = p;
out:
    pthread_mutex_unlock(&g_pools_mu);
    return rc;
}

static void pool_put(pool_ent_t *pe) {
    pthread_mutex_lock(&g_pools_mu);
    if (--pe->refs == 0) {
        for (pool_ent_t **pp = &g_pools; *pp != NULL; pp = &(*pp)->next) {
            if (*pp == pe) {
                *pp = pe->next;
                break;
            }
        }
        mongoc_client_pool_destroy(pe->pool);
        mongoc_uri_destroy(pe->muri);
        free(pe->uri);
        free(pe);
    }
    pthread_mutex_unlock(&g_pools_mu);
}

/* ---- open, close, ping, declare ---------------------------------------------------------- */

static tsr_err_t m_ping(void *b, tsr_error_t *err) {
    mstore_t *m = b;
    mconn_t c;
    bson_error_t e;
    conn_open(m, NULL, &c);
    bson_t *cmd = BCON_NEW("ping", BCON_INT32(1));
    bool ok = mongoc_client_command_simple(c.client, "admin", cmd, NULL, NULL, &e);
    bson_destroy(cmd);
    conn_close(&c);
    if (!ok)
        return tsr_error_set(err, TSR_EUNAVAILABLE, "store: MongoDB does not answer: %s",
                             e.message);
    return TSR_OK;
}

static void m_close(void *b) {
    mstore_t *m = b;
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n_colls; i++)
        free(m->colls[i]);
    pthread_mutex_destroy(&m->mu);
    if (m->pe != NULL)
        pool_put(m->pe);
    free(m->db);
    free(m);
}

static tsr_err_t m_open(const char *uri, const tsr_store_opts_t *opts, void **b, tsr_error_t *err) {
    (void)opts;
    pthread_once(&g_init_once, mongo_init_once);
    mstore_t *m = tsr_xcalloc(1, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    tsr_err_t rc = pool_get(uri, &m->pe, err);
    if (rc != TSR_OK) {
        m_close(m);
        return rc;
    }
    const char *db = mongoc_uri_get_database(m->pe->muri);
    m->db = tsr_xstrdup(db != NULL && db[0] != '\0' ? db : DEFAULT_DB);
    rc = m_ping(m, err);
    if (rc != TSR_OK) {
        m_close(m);
        return rc;
    }
    *b = m;
    return TSR_OK;
}

/* One createIndexes entry over "t" (when with_tenant) and then the stored paths of fields:
 * "d.<field>" for document fields, or the backend's own top-level name when raw. A unique
 * index leaves out documents missing any of the fields (and tombstones, which have no "d"). */
static void index_spec(bson_t *arr, int n, const char *name, const char *const *fields,
                       size_t n_fields, bool raw, bool with_tenant, bool unique, bool sparse) {
    char idx[24];
    const char *ks;
    bson_uint32_to_string((uint32_t)n, &ks, idx, sizeof idx);
    bson_t spec, key, pfe;
    tsr_buf_t path;
    tsr_buf_init(&path, 0);
    bson_append_document_begin(arr, ks, -1, &spec);
    bson_append_document_begin(&spec, "key", -1, &key);
    if (with_tenant)
        BSON_APPEND_INT32(&key, "t", 1);
    for (size_t i = 0; i < n_fields; i++) {
        tsr_buf_reset(&path);
        tsr_buf_appendf(&path, raw ? "%s" : "d.%s", fields[i]);
        BSON_APPEND_INT32(&key, path.data, 1);
    }
    bson_append_document_end(&spec, &key);
    BSON_APPEND_UTF8(&spec, "name", name);
    if (unique) {
        BSON_APPEND_BOOL(&spec, "unique", true);
        bson_append_document_begin(&spec, "partialFilterExpression", -1, &pfe);
        for (size_t i = 0; i < n_fields; i++) {
            tsr_buf_reset(&path);
            tsr_buf_appendf(&path, raw ? "%s" : "d.%s", fields[i]);
            bson_t ex;
            bson_append_document_begin(&pfe, path.data, -1, &ex);
            BSON_APPEND_BOOL(&ex, "$exists", true);
            bson_append_document_end(&pfe, &ex);
        }
        bson_append_document_end(&spec, &pfe);
    }
    if (sparse)
        BSON_APPEND_BOOL(&spec, "sparse", true);
    bson_append_document_end(arr, &spec);
    tsr_buf_cleanup(&path);
}

static tsr_err_t m_declare(void *b, const tsr_store_collection_t *c, tsr_error_t *err) {
    mstore_t *m = b;
    pthread_mutex_lock(&m->mu);
    bool known = false;
    for (size_t i = 0; i < m->n_colls; i++)
        known = known || strcmp(m->colls[i], c->name) == 0;
    if (!known) {
        if (m->n_colls == MAX_COLLS) {
            pthread_mutex_unlock(&m->mu);
            return tsr_error_set(err, TSR_EINVAL, "store: more than %d collections", MAX_COLLS);
        }
        m->colls[m->n_colls++] = tsr_xstrdup(c->name);
    }
    pthread_mutex_unlock(&m->mu);

    /* Index names carry their fields, so a changed declaration adds an index instead of
     * colliding with the old one. */
    bson_t cmd = BSON_INITIALIZER, arr;
    BSON_APPEND_UTF8(&cmd, "createIndexes", c->name);
    bson_append_array_begin(&cmd, "indexes", -1, &arr);
    int n = 0;
    static const char *const tenant_id[] = {"i"};
    static const char *const outbox[] = {"obs"};
    index_spec(&arr, n++, "tsr_t_i", tenant_id, 1, true, true, false, false);
    index_spec(&arr, n++, "tsr_obs", outbox, 1, true, false, false, true);
    tsr_buf_t name;
    tsr_buf_init(&name, 0);
    for (size_t i = 0; i < c->n_indexes; i++) {
        tsr_buf_reset(&name);
        tsr_buf_appendf(&name, "tsr_x_%s", c->indexes[i]);
        index_spec(&arr, n++, name.data, &c->indexes[i], 1, false, true, false, false);
    }
    for (size_t i = 0; i < c->n_uniques; i++) {
        const tsr_store_unique_t *u = &c->uniques[i];
        tsr_buf_reset(&name);
        tsr_buf_appendf(&name, "tsr_u%s", u->global ? "g" : "t");
        for (size_t j = 0; j < u->n_fields; j++)
            tsr_buf_appendf(&name, "_%s", u->fields[j]);
        index_spec(&arr, n++, name.data, u->fields, u->n_fields, false, !u->global, true, false);
    }
    bson_append_array_end(&cmd, &arr);
    tsr_buf_cleanup(&name);

    mconn_t conn;
    conn_open(m, NULL, &conn);
    mongoc_database_t *db = mongoc_client_get_database(conn.client, m->db);
    bson_error_t e;
    bson_t reply;
    bool ok = mongoc_database_write_command_with_opts(db, &cmd, NULL, &reply, &e);
    bson_destroy(&reply);
    mongoc_database_destroy(db);
    conn_close(&conn);
    bson_destroy(&cmd);
    if (!ok)
        return mongo_fail(err, "createIndexes", &e);
    return TSR_OK;
}

/* ---- outbox helpers ---------------------------------------------------------------------- */

/* Reserve n consecutive sequence numbers; *first is the first. */
static tsr_err_t seq_reserve(mstore_t *m, size_t n, int64_t *first, tsr_error_t *err) {
    bson_oid_t oid;
    doc_oid(TSR_STORE__PLATFORM, SEQ_ID, &oid);
    mconn_t c;
    conn_open(m, TSR_STORE__META, &c);
    tsr_err_t rc = TSR_OK;
    bson_error_t e;
    for (int attempt = 0; attempt < 2; attempt++) {
        bson_t *q = BCON_NEW("_id", BCON_OID(&oid));
        bson_t *u = BCON_NEW("$inc", "{", "n", BCON_INT64((int64_t)n), "}");
        bson_t reply;
        bool ok = mongoc_collection_find_and_modify(c.coll, q, NULL, u, NULL, false, false, true,
                                                    &reply, &e);
        bson_iter_t it;
        bool got = false;
        if (ok && bson_iter_init_find(&it, &reply, "value") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
            bson_iter_t v;
            if (bson_iter_recurse(&it, &v) && bson_iter_find(&v, "n") &&
                BSON_ITER_HOLDS_NUMBER(&v)) {
                *first = bson_iter_as_int64(&v) - (int64_t)n + 1;
                got = true;
            }
        }
        bson_destroy(&reply);
        bson_destroy(q);
        bson_destroy(u);
        if (!ok) {
            rc = mongo_fail(err, "outbox sequence", &e);
            break;
        }
        if (got)
            break;
        /* First use: create the counter (a concurrent creator wins the same race harmlessly). */
        bson_t *doc = BCON_NEW("_id", BCON_OID(&oid), "t", BCON_UTF8(TSR_STORE__PLATFORM), "i",
                               BCON_UTF8(SEQ_ID), "n", BCON_INT64(0));
        if (!mongoc_collection_insert_one(c.coll, doc, NULL, NULL, &e) && !is_dup(&e))
            rc = mongo_fail(err, "outbox sequence", &e);
        bson_destroy(doc);
        if (rc != TSR_OK)
            break;
        if (attempt == 1)
            rc = tsr_error_set(err, TSR_EIO, "store: outbox sequence missing");
    }
    conn_close(&c);
    return rc;
}

/* The outbox entries for events, as a BSON array in *arr (caller's storage, initialised
 * here), numbered from a freshly reserved sequence; *first is the first number. */
static tsr_err_t build_events(mstore_t *m, const tsr_store_event_t *events, size_t n, bson_t *arr,
                              int64_t *first, tsr_error_t *err) {
    bson_init(arr);
    *first = 0;
    if (n == 0)
        return TSR_OK;
    tsr_err_t rc = seq_reserve(m, n, first, err);
    if (rc != TSR_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        char idx[24];
        const char *ks;
        bson_uint32_to_string((uint32_t)i, &ks, idx, sizeof idx);
        bson_t ev;
        bson_append_document_begin(arr, ks, -1, &ev);
        BSON_APPEND_UTF8(&ev, "id", events[i].id);
        BSON_APPEND_UTF8(&ev, "topic", events[i].topic);
        BSON_APPEND_UTF8(&ev, "key", events[i].key ? events[i].key : "");
        bson_append_utf8(&ev, "payload", -1, events[i].payload, (int)events[i].payload_len);
        BSON_APPEND_INT64(&ev, "s", *first + (int64_t)i);
        bson_append_document_end(arr, &ev);
    }
    return TSR_OK;
}

/* Append {$push: {ob: {$each: arr}}, $min: {obs: first}} to an update when there are events. */
static void update_push_events(bson_t *update, const bson_t *arr, int64_t first) {
    if (bson_count_keys(arr) == 0)
        return;
    bson_t push, ob, mn;
    bson_append_document_begin(update, "$push", -1, &push);
    bson_append_document_begin(&push, "ob", -1, &ob);
    bson_append_array(&ob, "$each", -1, arr);
    bson_append_document_end(&push, &ob);
    bson_append_document_end(update, &push);
    bson_append_document_begin(update, "$min", -1, &mn);
    BSON_APPEND_INT64(&mn, "obs", first);
    bson_append_document_end(update, &mn);
}

/* {_id, t, i} plus "del: {$exists: false}" when live is set. */
static bson_t *key_filter(const char *tenant, const char *id, bool live) {
    bson_oid_t oid;
    doc_oid(tenant, id, &oid);
    bson_t *f = BCON_NEW("_id", BCON_OID(&oid), "t", BCON_UTF8(tenant), "i", BCON_UTF8(id));
    if (live) {
        bson_t ex;
        bson_append_document_begin(f, "del", -1, &ex);
        BSON_APPEND_BOOL(&ex, "$exists", false);
        bson_append_document_end(f, &ex);
    }
    return f;
}

/* After a write matched nothing: ECONFLICT when the live document exists (its version
 * differs), else ENOTFOUND. */
static tsr_err_t missing_or_conflict(mconn_t *c, const char *tenant, const char *id,
                                     tsr_error_t *err) {
    bson_t *f = key_filter(tenant, id, true);
    bson_error_t e;
    int64_t n = mongoc_collection_count_documents(c->coll, f, NULL, NULL, NULL, &e);
    bson_destroy(f);
    if (n < 0)
        return mongo_fail(err, "count", &e);
    if (n > 0)
        return tsr_error_set(err, TSR_ECONFLICT, "store: version mismatch");
    return tsr_error_set(err, TSR_ENOTFOUND, "store: no such document");
}

static int64_t reply_count(const bson_t *reply, const char *field) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, reply, field) && BSON_ITER_HOLDS_NUMBER(&it))
        return bson_iter_as_int64(&it);
    return 0;
}

/* ---- documents --------------------------------------------------------------------------- */

static tsr_err_t m_insert(void *b, const char *coll, const char *tenant, const char *id,
                          const json_t *doc, const tsr_store_event_t *events, size_t n_events,
                          tsr_error_t *err) {
    mstore_t *m = b;
    bson_t evs, d;
    int64_t first = 0;
    tsr_err_t rc = build_events(m, events, n_events, &evs, &first, err);
    if (rc != TSR_OK) {
        bson_destroy(&evs);
        return rc;
    }
    bson_oid_t oid;
    doc_oid(tenant, id, &oid);
    bson_t ins = BSON_INITIALIZER;
    BSON_APPEND_OID(&ins, "_id", &oid);
    BSON_APPEND_UTF8(&ins, "t", tenant);
    BSON_APPEND_UTF8(&ins, "i", id);
    BSON_APPEND_INT64(&ins, "v", 1);
    bson_append_document_begin(&ins, "d", -1, &d);
    append_object(&d, doc);
    bson_append_document_end(&ins, &d);
    if (n_events > 0) {
        bson_append_array(&ins, "ob", -1, &evs);
        BSON_APPEND_INT64(&ins, "obs", first);
    }

    mconn_t c;
    conn_open(m, coll, &c);
    bson_error_t e;
    if (!mongoc_collection_insert_one(c.coll, &ins, NULL, NULL, &e)) {
        if (!is_dup(&e)) {
            rc = mongo_fail(err, "insert", &e);
        } else {
            /* The key is taken: by a live document (conflict) or by a tombstone, which is
             * revived in one compare-and-set on "del" (its pending events stay queued). */
            bson_t update = BSON_INITIALIZER, set, unset;
            bson_append_document_begin(&update, "$set", -1, &set);
            BSON_APPEND_INT64(&set, "v", 1);
            bson_append_document_begin(&set, "d", -1, &d);
            append_object(&d, doc);
            bson_append_document_end(&set, &d);
            bson_append_document_end(&update, &set);
            bson_append_document_begin(&update, "$unset", -1, &unset);
            BSON_APPEND_UTF8(&unset, "del", "");
            bson_append_document_end(&update, &unset);
            update_push_events(&update, &evs, first);
            bson_t *f = key_filter(tenant, id, false);
            BSON_APPEND_BOOL(f, "del", true);
            bson_t reply;
            bool ok = mongoc_collection_update_one(c.coll, f, &update, NULL, &reply, &e);
            int64_t matched = ok ? reply_count(&reply, "matchedCount") : 0;
            bson_destroy(&reply);
            bson_destroy(f);
            bson_destroy(&update);
            if (!ok)
                rc = mongo_fail(err, "insert", &e);
            else if (matched == 0)
                rc = tsr_error_set(err, TSR_ECONFLICT, "store: document exists");
        }
    }
    conn_close(&c);
    bson_destroy(&ins);
    bson_destroy(&evs);
    return rc;
}

static tsr_err_t m_get(void *b, const char *coll, const char *tenant, const char *id, json_t **out,
                       tsr_error_t *err) {
    mstore_t *m = b;
    *out = NULL;
    mconn_t c;
    conn_open(m, coll, &c);
    bson_t *f = key_filter(tenant, id, true);
    bson_t *opts = BCON_NEW("projection", "{", "d", BCON_INT32(1), "}", "limit", BCON_INT64(1));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c.coll, f, opts, NULL);
    const bson_t *doc;
    bson_error_t e;
    tsr_err_t rc = TSR_OK;
    if (mongoc_cursor_next(cur, &doc))
        *out = stored_doc(doc);
    if (mongoc_cursor_error(cur, &e)) {
        rc = mongo_fail(err, "find", &e);
        json_decref(*out);
        *out = NULL;
    } else if (*out == NULL) {
        rc = tsr_error_set(err, TSR_ENOTFOUND, "store: no such document");
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(f);
    conn_close(&c);
    return rc;
}

static tsr_err_t m_update(void *b, const char *coll, const char *tenant, const char *id,
                          int64_t if_version, const json_t *doc, const tsr_store_event_t *events,
                          size_t n_events, tsr_error_t *err) {
    mstore_t *m = b;
    bson_t update = BSON_INITIALIZER, set, d;
    bson_append_document_begin(&update, "$set", -1, &set);
    BSON_APPEND_INT64(&set, "v", if_version + 1);
    bson_append_document_begin(&set, "d", -1, &d);
    append_object(&d, doc);
    bson_append_document_end(&set, &d);
    bson_append_document_end(&update, &set);
    bson_t evs;
    int64_t first = 0;
    tsr_err_t rc = build_events(m, events, n_events, &evs, &first, err);
    update_push_events(&update, &evs, first);
    bson_destroy(&evs);
    if (rc != TSR_OK) {
        bson_destroy(&update);
        return rc;
    }
    mconn_t c;
    conn_open(m, coll, &c);
    bson_t *f = key_filter(tenant, id, true);
    BSON_APPEND_INT64(f, "v", if_version);
    bson_t reply;
    bson_error_t e;
    bool ok = mongoc_collection_update_one(c.coll, f, &update, NULL, &reply, &e);
    int64_t matched = ok ? reply_count(&reply, "matchedCount") : 0;
    bson_destroy(&reply);
    if (!ok)
        rc = mongo_fail(err, "update", &e);
    else if (matched == 0)
        rc = missing_or_conflict(&c, tenant, id, err);
    bson_destroy(f);
    bson_destroy(&update);
    conn_close(&c);
    return rc;
}

static tsr_err_t m_del(void *b, const char *coll, const char *tenant, const char *id,
                       int64_t if_version, const tsr_store_event_t *events, size_t n_events,
                       tsr_error_t *err) {
    mstore_t *m = b;
    tsr_err_t rc = TSR_OK;
    mconn_t c;
    conn_open(m, coll, &c);
    bson_t *f = key_filter(tenant, id, true);
    if (if_version > 0)
        BSON_APPEND_INT64(f, "v", if_version);
    bson_t reply;
    bson_error_t e;
    int64_t n = 0;
    if (n_events == 0) {
        /* Nothing to relay, now or from earlier writes: remove the document outright. */
        bson_t *fd = bson_copy(f);
        bson_t ex;
        bson_append_document_begin(fd, "obs", -1, &ex);
        BSON_APPEND_BOOL(&ex, "$exists", false);
        bson_append_document_end(fd, &ex);
        bool ok = mongoc_collection_delete_one(c.coll, fd, NULL, &reply, &e);
        n = ok ? reply_count(&reply, "deletedCount") : 0;
        bson_destroy(&reply);
        bson_destroy(fd);
        if (!ok) {
            rc = mongo_fail(err, "delete", &e);
            goto out;
        }
    }
    if (n == 0) {
        /* Events to keep (new or not yet relayed): leave a tombstone that carries them. */
        bson_t update = BSON_INITIALIZER, set, unset;
        bson_append_document_begin(&update, "$set", -1, &set);
        BSON_APPEND_BOOL(&set, "del", true);
        bson_append_document_end(&update, &set);
        bson_append_document_begin(&update, "$unset", -1, &unset);
        BSON_APPEND_UTF8(&unset, "d", "");
        bson_append_document_end(&update, &unset);
        bson_t evs;
        int64_t first = 0;
        rc = build_events(m, events, n_events, &evs, &first, err);
        update_push_events(&update, &evs, first);
        bson_destroy(&evs);
        if (rc == TSR_OK) {
            bool ok = mongoc_collection_update_one(c.coll, f, &update, NULL, &reply, &e);
            n = ok ? reply_count(&reply, "matchedCount") : 0;
            bson_destroy(&reply);
            if (!ok)
                rc = mongo_fail(err, "delete", &e);
            else if (n == 0)
                rc = missing_or_conflict(&c, tenant, id, err);
        }
        bson_destroy(&update);
    }
out:
    bson_destroy(f);
    conn_close(&c);
    return rc;
}

/* ---- list -------------------------------------------------------------------------------- */

/* The stored path of a field: "id" is "i", everything else lives under "d". */
static void field_path(const char *field, tsr_buf_t *out) {
    tsr_buf_reset(out);
    if (strcmp(field, "id") == 0)
        tsr_buf_append_str(out, "i");
    else
        tsr_buf_appendf(out, "d.%s", field);
}

static const char *op_name(tsr_store_op_t op) {
    switch (op) {
    case TSR_STORE_LT:
        return "$lt";
    case TSR_STORE_LE:
        return "$lte";
    case TSR_STORE_GT:
        return "$gt";
    case TSR_STORE_GE:
        return "$gte";
    case TSR_STORE_EQ:
    default:
        return "$eq";
    }
}

/* Append {path: {op: v}} as the next element of the $and / $or array arr. */
static void clause_cmp(bson_t *arr, int *n, const char *path, const char *op, const json_t *v) {
    char idx[24];
    const char *ks;
    bson_uint32_to_string((uint32_t)(*n)++, &ks, idx, sizeof idx);
    bson_t c, o;
    bson_append_document_begin(arr, ks, -1, &c);
    bson_append_document_begin(&c, path, -1, &o);
    if (v == NULL)
        bson_append_null(&o, op, -1);
    else
        append_json(&o, op, v);
    bson_append_document_end(&c, &o);
    bson_append_document_end(arr, &c);
}

/* Keyset condition "strictly after (value, tenant, id)" in q's order, as one $or element
 * list. A null/missing sort value orders before every value when ascending. */
static void after_clause(bson_t *and_arr, int *n_and, const char *sp, const tsr_store__list_t *q) {
    const char *gt = q->descending ? "$lt" : "$gt";
    bool null_v = q->after_value == NULL || json_is_null(q->after_value);
    bool by_id = strcmp(sp, "i") == 0;
    char idx[24];
    const char *ks;
    bson_uint32_to_string((uint32_t)(*n_and)++, &ks, idx, sizeof idx);
    bson_t wrap, ors;
    bson_append_document_begin(and_arr, ks, -1, &wrap);
    bson_append_array_begin(&wrap, "$or", -1, &ors);
    int n = 0;
    bson_t c, and2;
    if (by_id) {
        /* Order (id, tenant). */
        json_t *after_id = json_string(q->after_id);
        clause_cmp(&ors, &n, "i", gt, after_id);
        json_decref(after_id);
        bson_uint32_to_string((uint32_t)n++, &ks, idx, sizeof idx);
        bson_append_document_begin(&ors, ks, -1, &c);
        BSON_APPEND_UTF8(&c, "i", q->after_id);
        bson_t o;
        bson_append_document_begin(&c, "t", -1, &o);
        BSON_APPEND_UTF8(&o, gt, q->after_tenant);
        bson_append_document_end(&c, &o);
        bson_append_document_end(&ors, &c);
    } else {
        /* 1. a sort value strictly after */
        if (!null_v) {
            clause_cmp(&ors, &n, sp, gt, q->after_value);
            if (q->descending) {
                bson_uint32_to_string((uint32_t)n++, &ks, idx, sizeof idx);
                bson_append_document_begin(&ors, ks, -1, &c);
                bson_append_null(&c, sp, -1);
                bson_append_document_end(&ors, &c);
            }
        } else if (!q->descending) {
            clause_cmp(&ors, &n, sp, "$ne", NULL);
        }
        /* 2. the same sort value, a later tenant; 3. same value and tenant, a later id */
        for (int k = 0; k < 2; k++) {
            bson_uint32_to_string((uint32_t)n++, &ks, idx, sizeof idx);
            bson_append_document_begin(&ors, ks, -1, &c);
            bson_append_array_begin(&c, "$and", -1, &and2);
            int m = 0;
            if (null_v)
                clause_cmp(&and2, &m, sp, "$eq", NULL);
            else
                clause_cmp(&and2, &m, sp, "$eq", q->after_value);
            json_t *t = json_string(q->after_tenant), *i = json_string(q->after_id);
            if (k == 0) {
                clause_cmp(&and2, &m, "t", gt, t);
            } else {
                clause_cmp(&and2, &m, "t", "$eq", t);
                clause_cmp(&and2, &m, "i", gt, i);
            }
            json_decref(t);
            json_decref(i);
            bson_append_array_end(&c, &and2);
            bson_append_document_end(&ors, &c);
        }
    }
    bson_append_array_end(&wrap, &ors);
    bson_append_document_end(and_arr, &wrap);
}

static tsr_err_t m_list(void *b, const char *coll, const tsr_store__list_t *q, json_t **out,
                        tsr_error_t *err) {
    mstore_t *m = b;
    *out = NULL;
    tsr_buf_t path, sp;
    tsr_buf_init(&path, 0);
    tsr_buf_init(&sp, 0);
    field_path(q->sort ? q->sort : "id", &sp);

    bson_t filter = BSON_INITIALIZER, and_arr;
    bson_append_array_begin(&filter, "$and", -1, &and_arr);
    int n_and = 0;
    json_t *tenant = q->tenant ? json_string(q->tenant) : NULL;
    if (tenant != NULL)
        clause_cmp(&and_arr, &n_and, "t", "$eq", tenant);
    json_decref(tenant);
    {
        char idx[24];
        const char *ks;
        bson_uint32_to_string((uint32_t)n_and++, &ks, idx, sizeof idx);
        bson_t c, ex;
        bson_append_document_begin(&and_arr, ks, -1, &c);
        bson_append_document_begin(&c, "del", -1, &ex);
        BSON_APPEND_BOOL(&ex, "$exists", false);
        bson_append_document_end(&c, &ex);
        bson_append_document_end(&and_arr, &c);
    }
    for (size_t i = 0; i < q->n_filters; i++) {
        field_path(q->filters[i].field, &path);
        clause_cmp(&and_arr, &n_and, path.data, op_name(q->filters[i].op), q->filters[i].value);
    }
    if (q->has_after)
        after_clause(&and_arr, &n_and, sp.data, q);
    bson_append_array_end(&filter, &and_arr);

    int dir = q->descending ? -1 : 1;
    bson_t opts = BSON_INITIALIZER, sort, proj;
    bson_append_document_begin(&opts, "sort", -1, &sort);
    BSON_APPEND_INT32(&sort, sp.data, dir);
    BSON_APPEND_INT32(&sort, "t", dir);
    if (strcmp(sp.data, "i") != 0)
        BSON_APPEND_INT32(&sort, "i", dir);
    bson_append_document_end(&opts, &sort);
    bson_append_document_begin(&opts, "projection", -1, &proj);
    BSON_APPEND_INT32(&proj, "d", 1);
    bson_append_document_end(&opts, &proj);
    BSON_APPEND_INT64(&opts, "limit", (int64_t)q->limit);

    mconn_t c;
    conn_open(m, coll, &c);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c.coll, &filter, &opts, NULL);
    const bson_t *doc;
    bson_error_t e;
    tsr_err_t rc = TSR_OK;
    json_t *arr = json_array();
    while (json_array_size(arr) < q->limit && mongoc_cursor_next(cur, &doc)) {
        json_t *d = stored_doc(doc);
        if (d != NULL)
            json_array_append_new(arr, d);
    }
    if (mongoc_cursor_error(cur, &e)) {
        rc = mongo_fail(err, "list", &e);
        json_decref(arr);
    } else {
        *out = arr;
    }
    mongoc_cursor_destroy(cur);
    conn_close(&c);
    bson_destroy(&opts);
    bson_destroy(&filter);
    tsr_buf_cleanup(&path);
    tsr_buf_cleanup(&sp);
    return rc;
}

/* ---- outbox ------------------------------------------------------------------------------ */

typedef struct {
    int64_t s;
    tsr_store_event_t ev;
} seq_ev_t;

static int seq_cmp(const void *a, const void *b) {
    int64_t x = ((const seq_ev_t *)a)->s, y = ((const seq_ev_t *)b)->s;
    return x < y ? -1 : x > y;
}

static const char *iter_str(bson_iter_t *it, const char *key, size_t *len) {
    bson_iter_t f = *it;
    if (!bson_iter_find(&f, key) || !BSON_ITER_HOLDS_UTF8(&f))
        return NULL;
    uint32_t n = 0;
    const char *s = bson_iter_utf8(&f, &n);
    if (len != NULL)
        *len = n;
    return s;
}

/* Snapshot of the declared collection names (caller frees each and the array). */
static char **colls_snapshot(mstore_t *m, size_t *n) {
    pthread_mutex_lock(&m->mu);
    char **out = tsr_xcalloc(m->n_colls + 1, sizeof *out);
    for (size_t i = 0; i < m->n_colls; i++)
        out[i] = tsr_xstrdup(m->colls[i]);
    *n = m->n_colls;
    pthread_mutex_unlock(&m->mu);
    return out;
}

static void colls_free(char **c, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(c[i]);
    free(c);
}

static tsr_err_t m_outbox_fetch(void *b, size_t limit, tsr_store_event_t **rows, size_t *n,
                                tsr_error_t *err) {
    mstore_t *m = b;
    *rows = NULL;
    *n = 0;
    size_t nc = 0;
    char **colls = colls_snapshot(m, &nc);
    seq_ev_t *all = NULL;
    size_t cnt = 0, cap = 0;
    tsr_err_t rc = TSR_OK;
    mconn_t c;
    conn_open(m, NULL, &c);
    for (size_t k = 0; k < nc && rc == TSR_OK; k++) {
        mongoc_collection_t *coll = mongoc_client_get_collection(c.client, m->db, colls[k]);
        bson_t *f = BCON_NEW("obs", "{", "$exists", BCON_BOOL(true), "}");
        /* Documents ordered by "obs" (at most their oldest pending event: a partial mark
         * leaves it lower). The oldest `limit` events overall sit in the first `limit`
         * documents of their collections; reading limit * OUTBOX_SCAN_FACTOR leaves room for
         * documents whose "obs" is stale. */
        bson_t *opts =
            BCON_NEW("sort", "{", "obs", BCON_INT32(1), "}", "projection", "{", "ob", BCON_INT32(1),
                     "}", "limit", BCON_INT64((int64_t)(limit * OUTBOX_SCAN_FACTOR)));
        mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, f, opts, NULL);
        const bson_t *doc;
        bson_error_t e;
        while (mongoc_cursor_next(cur, &doc)) {
            bson_iter_t it, arr;
            if (!bson_iter_init_find(&it, doc, "ob") || !BSON_ITER_HOLDS_ARRAY(&it) ||
                !bson_iter_recurse(&it, &arr))
                continue;
            while (bson_iter_next(&arr)) {
                bson_iter_t ev;
                if (!BSON_ITER_HOLDS_DOCUMENT(&arr) || !bson_iter_recurse(&arr, &ev))
                    continue;
                size_t plen = 0;
                const char *id = iter_str(&ev, "id", NULL), *topic = iter_str(&ev, "topic", NULL);
                const char *key = iter_str(&ev, "key", NULL);
                const char *payload = iter_str(&ev, "payload", &plen);
                bson_iter_t sv = ev;
                if (id == NULL || topic == NULL || payload == NULL || !bson_iter_find(&sv, "s"))
                    continue;
                if (cnt == cap) {
                    cap = cap ? cap * 2 : 16;
                    all = tsr_xrealloc(all, cap * sizeof *all);
                }
                all[cnt].s = bson_iter_as_int64(&sv);
                all[cnt].ev = (tsr_store_event_t){tsr_xstrdup(id), tsr_xstrdup(topic),
                                                  tsr_xstrdup(key ? key : ""),
                                                  tsr_xstrndup(payload, plen), plen};
                cnt++;
            }
        }
        if (mongoc_cursor_error(cur, &e))
            rc = mongo_fail(err, "outbox fetch", &e);
        mongoc_cursor_destroy(cur);
        bson_destroy(opts);
        bson_destroy(f);
        mongoc_collection_destroy(coll);
    }
    conn_close(&c);
    colls_free(colls, nc);
    if (cnt > 1)
        qsort(all, cnt, sizeof *all, seq_cmp);
    size_t keep = rc == TSR_OK ? (cnt < limit ? cnt : limit) : 0;
    tsr_store_event_t *out = tsr_xcalloc(keep + 1, sizeof *out);
    for (size_t i = 0; i < cnt; i++) {
        if (i < keep) {
            out[i] = all[i].ev;
        } else {
            free((char *)all[i].ev.id);
            free((char *)all[i].ev.topic);
            free((char *)all[i].ev.key);
            free((char *)all[i].ev.payload);
        }
    }
    free(all);
    if (rc != TSR_OK) {
        free(out);
        return rc;
    }
    *rows = out;
    *n = keep;
    return TSR_OK;
}

static tsr_err_t m_outbox_mark(void *b, const char *const *ids, size_t n, tsr_error_t *err) {
    mstore_t *m = b;
    if (n == 0)
        return TSR_OK;
    bson_t in = BSON_INITIALIZER;
    for (size_t i = 0; i < n; i++) {
        char idx[24];
        const char *ks;
        bson_uint32_to_string((uint32_t)i, &ks, idx, sizeof idx);
        BSON_APPEND_UTF8(&in, ks, ids[i]);
    }
    bson_t *sel = BCON_NEW("ob.id", "{", "$in", BCON_ARRAY(&in), "}");
    /* {$and: [...]} makes the $pull condition a query on each array element, a form both
     * MongoDB and the smartmongo test server evaluate ({id: {$in}} alone smartmongo does not). */
    bson_t *pull = BCON_NEW("$pull", "{", "ob", "{", "$and", "[", "{", "id", "{", "$in",
                            BCON_ARRAY(&in), "}", "}", "]", "}", "}");
    bson_t *empty = BCON_NEW("obs", "{", "$exists", BCON_BOOL(true), "}", "ob", "{", "$size",
                             BCON_INT32(0), "}");
    bson_t *unset = BCON_NEW("$unset", "{", "ob", BCON_UTF8(""), "obs", BCON_UTF8(""), "}");
    bson_t *dead = BCON_NEW("del", BCON_BOOL(true), "obs", "{", "$exists", BCON_BOOL(false), "}");
    size_t nc = 0;
    char **colls = colls_snapshot(m, &nc);
    tsr_err_t rc = TSR_OK;
    mconn_t c;
    conn_open(m, NULL, &c);
    for (size_t k = 0; k < nc && rc == TSR_OK; k++) {
        mongoc_collection_t *coll = mongoc_client_get_collection(c.client, m->db, colls[k]);
        bson_error_t e;
        /* 1. drop the sent events; 2. documents without pending events lose the markers;
         * 3. tombstones with nothing left to relay go. Each step is idempotent, so a crash
         * between them is repaired by the next mark. */
        if (!mongoc_collection_update_many(coll, sel, pull, NULL, NULL, &e) ||
            !mongoc_collection_update_many(coll, empty, unset, NULL, NULL, &e) ||
            !mongoc_collection_delete_many(coll, dead, NULL, NULL, &e))
            rc = mongo_fail(err, "outbox mark", &e);
        mongoc_collection_destroy(coll);
    }
    conn_close(&c);
    colls_free(colls, nc);
    bson_destroy(dead);
    bson_destroy(unset);
    bson_destroy(empty);
    bson_destroy(pull);
    bson_destroy(sel);
    bson_destroy(&in);
    return rc;
}

const tsr_store__backend_t tsr_store__mongo_backend = {
    .scheme = "mongodb",
    .atomic_txn = false,
    .open = m_open,
    .close = m_close,
    .ping = m_ping,
    .declare = m_declare,
    .insert = m_insert,
    .get = m_get,
    .update = m_update,
    .del = m_del,
    .list = m_list,
    .outbox_fetch = m_outbox_fetch,
    .outbox_mark = m_outbox_mark,
    .txn_begin = NULL,
    .txn_commit = NULL,
    .txn_rollback = NULL,
};
