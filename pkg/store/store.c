/*
 * pkg/store front end: argument validation, the owned members (id, tenantId, version), merge
 * patches, HMAC'd keyset cursors, transactions views, leases, apply_once and schema
 * migrations, all over the backend table of store_int.h. Invariant: no tenant-scoped call
 * reaches a backend without its tenant; every cursor is checked before any of it is used.
 */
#include "store_int.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "config.h"

#define CURSOR_KEY_BYTES 32
#define MAX_INDEXES 16
#define MAX_UNIQUES 8
#define MAX_FILTERS 8
#define CAS_RETRIES 1000 /* optimistic retries of internal read-modify-writes */

/* A declared collection as the front end keeps it (deep copy of the declaration). */
typedef struct {
    tsr_store_collection_t decl; /* decl.name/indexes point into the copies below */
    char *name;
    char **indexes;
} coll_t;

struct tsr_store {
    tsr_store_t *root; /* self for the handle from create; the parent for a txn view */
    bool is_txn;       /* a view made by tsr_store_txn_begin */
    /* root only: */
    const tsr_store__backend_t *be;
    void *b;
    coll_t *colls;
    size_t n_colls;
    unsigned char cursor_key[CURSOR_KEY_BYTES]; /* HMAC-SHA256 key */
    size_t cursor_key_len;                      /* bytes */
};

/* ---- validation -------------------------------------------------------------------------- */

static bool name_valid(const char *s, size_t max) {
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max || !(s[0] >= 'a' && s[0] <= 'z')) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
            return false;
        }
    }
    return true;
}

bool tsr_store__field_valid(const char *name) {
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > TSR_STORE_FIELD_MAX) {
        return false;
    }
    bool seg_start = true;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (seg_start) {
            if (!alpha) {
                return false;
            }
            seg_start = false;
        } else if (c == '.') {
            seg_start = true;
        } else if (!alpha && !(c >= '0' && c <= '9') && c != '_') {
            return false;
        }
    }
    return !seg_start;
}

bool tsr_store__field_indexed(const tsr_store_collection_t *c, const char *field) {
    if (field != NULL && strcmp(field, "id") == 0) {
        return true;
    }
    for (size_t i = 0; field != NULL && i < c->n_indexes; i++) {
        if (strcmp(c->indexes[i], field) == 0) {
            return true;
        }
    }
    return false;
}

json_t *tsr_store__field_value(const json_t *doc, const char *path) {
    const json_t *cur = doc;
    const char *p = path;
    while (cur != NULL && json_is_object(cur)) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        cur = json_object_getn(cur, p, n);
        if (dot == NULL) {
            return (json_t *)cur;
        }
        p = dot + 1;
    }
    return NULL;
}

/* Printable ASCII without spaces, 1..max bytes. */
static bool token_valid(const char *s, size_t max) {
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f) {
            return false;
        }
    }
    return true;
}

static tsr_err_t check_tenant(const char *tenant, tsr_error_t *err) {
    if (!token_valid(tenant, TSR_STORE_TENANT_MAX) || tenant[0] == '_') {
        return tsr_error_set(err, TSR_EINVAL, "store: invalid tenant id");
    }
    return TSR_OK;
}

static tsr_err_t check_id(const char *id, tsr_error_t *err) {
    if (!token_valid(id, TSR_STORE_ID_MAX)) {
        return tsr_error_set(err, TSR_EINVAL, "store: invalid document id");
    }
    return TSR_OK;
}

static const coll_t *find_coll(const tsr_store_t *r, const char *name) {
    for (size_t i = 0; name != NULL && i < r->n_colls; i++) {
        if (strcmp(r->colls[i].name, name) == 0) {
            return &r->colls[i];
        }
    }
    return NULL;
}

/* A user-visible collection (internal '_' ones are reached only from this file). */
static tsr_err_t lookup_coll(const tsr_store_t *r, const char *name, const coll_t **out,
                             tsr_error_t *err) {
    *out = (name != NULL && name[0] != '_') ? find_coll(r, name) : NULL;
    if (*out == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "store: undeclared collection '%s'",
                             name ? name : "(null)");
    }
    return TSR_OK;
}

static tsr_err_t check_events(const tsr_store_event_t *ev, size_t n, tsr_error_t *err) {
    if (n > 0 && ev == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "store: events missing");
    }
    for (size_t i = 0; i < n; i++) {
        if (!token_valid(ev[i].id, TSR_STORE_ID_MAX) || ev[i].topic == NULL ||
            ev[i].topic[0] == '\0' || ev[i].key == NULL || ev[i].payload == NULL ||
            ev[i].payload_len > TSR_STORE_DOC_MAX) {
            return tsr_error_set(err, TSR_EINVAL, "store: invalid outbox event %zu", i);
        }
    }
    return TSR_OK;
}

/* A copy of doc without the owned members, with them then set; TSR_EINVAL for reserved
 * members, TSR_ETOOBIG when the result is over TSR_STORE_DOC_MAX. */
static tsr_err_t make_doc(const json_t *doc, const char *tenant, const char *id, int64_t version,
                          json_t **out, tsr_error_t *err) {
    *out = NULL;
    if (!json_is_object(doc)) {
        return tsr_error_set(err, TSR_EINVAL, "store: document must be a JSON object");
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)doc, k, v) {
        if (k[0] == '_') {
            return tsr_error_set(err, TSR_EINVAL, "store: member '%s' is reserved", k);
        }
    }
    json_t *d = json_copy((json_t *)doc);
    if (d == NULL) {
        return tsr_error_set(err, TSR_EINTERNAL, "store: out of memory");
    }
    json_object_set_new(d, "id", json_string(id));
    json_object_set_new(d, "tenantId", json_string(tenant));
    json_object_set_new(d, "version", json_integer(version));
    size_t n = json_dumpb(d, NULL, 0, JSON_COMPACT);
    if (n == 0 || n > TSR_STORE_DOC_MAX) {
        json_decref(d);
        return tsr_error_set(err, n == 0 ? TSR_EINVAL : TSR_ETOOBIG,
                             "store: document is %zu bytes (max %d)", n, TSR_STORE_DOC_MAX);
    }
    *out = d;
    return TSR_OK;
}

static int64_t doc_version(const json_t *doc) {
    json_t *v = json_object_get(doc, "version");
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

/* ---- backend registry -------------------------------------------------------------------- */

static const tsr_store__backend_t *backend_for(const char *uri) {
    if (strncmp(uri, "sqlite:", 7) == 0) {
        return &tsr_store__sqlite_backend;
    }
#ifdef TSR_STORE_HAVE_MONGO
    if (strncmp(uri, "mongodb://", 10) == 0 || strncmp(uri, "mongodb+srv://", 14) == 0) {
        return &tsr_store__mongo_backend;
    }
#endif
    return NULL;
}

/* ---- internal documents ------------------------------------------------------------------ */

static tsr_err_t int_get(tsr_store_t *r, const char *coll, const char *id, json_t **out,
                         tsr_error_t *err) {
    return r->be->get(r->b, coll, TSR_STORE__PLATFORM, id, out, err);
}

static tsr_err_t int_insert(tsr_store_t *r, const char *coll, const char *id, json_t *body,
                            tsr_error_t *err) {
    json_object_set_new(body, "id", json_string(id));
    json_object_set_new(body, "tenantId", json_string(TSR_STORE__PLATFORM));
    json_object_set_new(body, "version", json_integer(1));
    return r->be->insert(r->b, coll, TSR_STORE__PLATFORM, id, body, NULL, 0, err);
}

/* body is the full stored document (as get returned it), changed by the caller. */
static tsr_err_t int_update(tsr_store_t *r, const char *coll, const char *id, json_t *body,
                            tsr_error_t *err) {
    int64_t v = doc_version(body);
    json_object_set_new(body, "version", json_integer(v + 1));
    return r->be->update(r->b, coll, TSR_STORE__PLATFORM, id, v, body, NULL, 0, err);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- cursor key -------------------------------------------------------------------------- */

static tsr_err_t hex_decode(const char *hex, unsigned char *out, size_t cap, size_t *n) {
    size_t len = strlen(hex);
    if (len % 2 != 0 || len / 2 > cap) {
        return TSR_EINVAL;
    }
    for (size_t i = 0; i < len / 2; i++) {
        unsigned v = 0;
        for (int j = 0; j < 2; j++) {
            char c = hex[2 * i + (size_t)j];
            unsigned d;
            if (c >= '0' && c <= '9') {
                d = (unsigned)(c - '0');
            } else if (c >= 'a' && c <= 'f') {
                d = (unsigned)(c - 'a' + 10);
            } else {
                return TSR_EINVAL;
            }
            v = v * 16 + d;
        }
        out[i] = (unsigned char)v;
    }
    *n = len / 2;
    return TSR_OK;
}

static tsr_err_t load_cursor_key(tsr_store_t *r, tsr_error_t *err) {
    json_t *doc = NULL;
    tsr_err_t rc = TSR_OK;
    for (int attempt = 0; attempt < 3; attempt++) {
        rc = int_get(r, TSR_STORE__META, "cursor-key", &doc, err);
        if (rc == TSR_OK) {
            const char *hex = json_string_value(json_object_get(doc, "key"));
            size_t n = 0;
            if (hex == NULL ||
                hex_decode(hex, r->cursor_key, sizeof(r->cursor_key), &n) != TSR_OK ||
                n != CURSOR_KEY_BYTES) {
                rc = tsr_error_set(err, TSR_ECORRUPT, "store: stored cursor key is malformed");
            }
            r->cursor_key_len = n;
            json_decref(doc);
            return rc;
        }
        if (rc != TSR_ENOTFOUND) {
            return rc;
        }
        unsigned char key[CURSOR_KEY_BYTES];
        char hex[2 * CURSOR_KEY_BYTES + 1];
        tsr_random_fill(key, sizeof(key));
        tsr_hex_encode(key, sizeof(key), hex);
        json_t *body = json_pack("{s:s}", "key", hex);
        rc = int_insert(r, TSR_STORE__META, "cursor-key", body, err);
        json_decref(body);
        if (rc != TSR_OK && rc != TSR_ECONFLICT) {
            return rc;
        }
        /* created by us or by a racing process: read back whichever won */
    }
    return tsr_error_set(err, TSR_EINTERNAL, "store: cannot settle the cursor key");
}

/* ---- create / destroy -------------------------------------------------------------------- */

static tsr_err_t check_decl(const tsr_store_collection_t *c, tsr_error_t *err) {
    if (!name_valid(c->name, TSR_STORE_NAME_MAX)) {
        return tsr_error_set(err, TSR_EINVAL, "store: invalid collection name '%s'",
                             c->name ? c->name : "(null)");
    }
    if (c->n_indexes > MAX_INDEXES || c->n_uniques > MAX_UNIQUES ||
        (c->n_indexes > 0 && c->indexes == NULL) || (c->n_uniques > 0 && c->uniques == NULL) ||
        (c->n_migrations > 0 && c->migrations == NULL)) {
        return tsr_error_set(err, TSR_EINVAL, "store: collection %s: bad counts", c->name);
    }
    for (size_t i = 0; i < c->n_indexes; i++) {
        if (!tsr_store__field_valid(c->indexes[i]) || strcmp(c->indexes[i], "id") == 0 ||
            strcmp(c->indexes[i], "tenantId") == 0 || strcmp(c->indexes[i], "version") == 0) {
            return tsr_error_set(err, TSR_EINVAL, "store: collection %s: bad index field", c->name);
        }
    }
    for (size_t i = 0; i < c->n_uniques; i++) {
        const tsr_store_unique_t *u = &c->uniques[i];
        if (u->n_fields == 0 || u->n_fields > 4 || u->fields == NULL) {
            return tsr_error_set(err, TSR_EINVAL, "store: collection %s: bad unique", c->name);
        }
        for (size_t j = 0; j < u->n_fields; j++) {
            if (!tsr_store__field_valid(u->fields[j]) || strcmp(u->fields[j], "tenantId") == 0 ||
                strcmp(u->fields[j], "version") == 0) {
                return tsr_error_set(err, TSR_EINVAL, "store: collection %s: bad unique field",
                                     c->name);
            }
        }
    }
    unsigned version = c->version ? c->version : 1;
    if (c->contracted > version) {
        return tsr_error_set(err, TSR_EINVAL, "store: collection %s: contracted > version",
                             c->name);
    }
    for (size_t i = 0; i < c->n_migrations; i++) {
        if (c->migrations[i].to_version < 2) {
            return tsr_error_set(err, TSR_EINVAL, "store: collection %s: migration to_version < 2",
                                 c->name);
        }
    }
    return TSR_OK;
}

static void coll_copy(coll_t *dst, const tsr_store_collection_t *src) {
    dst->name = tsr_xstrdup(src->name);
    dst->indexes = tsr_xcalloc(src->n_indexes + 1, sizeof(char *));
    for (size_t i = 0; i < src->n_indexes; i++) {
        dst->indexes[i] = tsr_xstrdup(src->indexes[i]);
    }
    memset(&dst->decl, 0, sizeof(dst->decl));
    dst->decl.name = dst->name;
    dst->decl.indexes = (const char *const *)dst->indexes;
    dst->decl.n_indexes = src->n_indexes;
    dst->decl.version = src->version ? src->version : 1;
    dst->decl.contracted = src->contracted;
}

static void coll_free(coll_t *c) {
    for (size_t i = 0; i < c->decl.n_indexes; i++) {
        free(c->indexes[i]);
    }
    free(c->indexes);
    free(c->name);
}

static tsr_err_t run_migrations(tsr_store_t *r, const tsr_store_collection_t *c, tsr_error_t *err);

tsr_err_t tsr_store_create(const char *uri, const tsr_store_opts_t *opts, tsr_store_t **out,
                           tsr_error_t *err) {
    static const tsr_store_opts_t no_opts;
    static const char *const internal[] = {TSR_STORE__META, TSR_STORE__LEASES,
                                           TSR_STORE__PROCESSED};
    tsr_store_t *r = NULL;
    tsr_err_t rc = TSR_OK;
    *out = NULL;
    if (opts == NULL) {
        opts = &no_opts;
    }
    if (uri == NULL || uri[0] == '\0') {
        return tsr_error_set(err, TSR_EINVAL, "store: empty uri");
    }
    const tsr_store__backend_t *be = backend_for(uri);
    if (be == NULL) {
        bool mongo = strncmp(uri, "mongodb", 7) == 0;
        return tsr_error_set(err, mongo ? TSR_EUNSUPPORTED : TSR_EINVAL,
                             mongo ? "store: MongoDB backend not built in"
                                   : "store: unknown uri scheme");
    }
    if (opts->n_collections > 0 && opts->collections == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "store: collections missing");
    }
    for (size_t i = 0; i < opts->n_collections; i++) {
        rc = check_decl(&opts->collections[i], err);
        if (rc != TSR_OK) {
            return rc;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(opts->collections[i].name, opts->collections[j].name) == 0) {
                return tsr_error_set(err, TSR_EINVAL, "store: collection %s declared twice",
                                     opts->collections[i].name);
            }
        }
    }
    if (opts->cursor_key != NULL && (opts->cursor_key_len == 0 || opts->cursor_key_len > 64)) {
        return tsr_error_set(err, TSR_EINVAL, "store: cursor key must be 1..64 bytes");
    }

    r = tsr_xcalloc(1, sizeof(*r));
    r->root = r;
    r->be = be;
    size_t n_int = sizeof(internal) / sizeof(internal[0]);
    r->colls = tsr_xcalloc(opts->n_collections + n_int, sizeof(coll_t));
    rc = be->open(uri, opts, &r->b, err);
    if (rc != TSR_OK) {
        r->b = NULL;
        goto out;
    }
    for (size_t i = 0; i < n_int; i++) {
        tsr_store_collection_t decl = {.name = internal[i], .version = 1};
        coll_copy(&r->colls[r->n_colls++], &decl);
        rc = be->declare(r->b, &decl, err);
        if (rc != TSR_OK) {
            goto out;
        }
    }
    for (size_t i = 0; i < opts->n_collections; i++) {
        coll_copy(&r->colls[r->n_colls++], &opts->collections[i]);
        rc = be->declare(r->b, &opts->collections[i], err);
        if (rc != TSR_OK) {
            goto out;
        }
    }
    if (opts->cursor_key != NULL) {
        memcpy(r->cursor_key, opts->cursor_key, opts->cursor_key_len);
        r->cursor_key_len = opts->cursor_key_len;
    } else {
        rc = load_cursor_key(r, err);
        if (rc != TSR_OK) {
            goto out;
        }
    }
    for (size_t i = 0; i < opts->n_collections; i++) {
        rc = run_migrations(r, &opts->collections[i], err);
        if (rc != TSR_OK) {
            goto out;
        }
    }
out:
    if (rc != TSR_OK) {
        tsr_store_destroy(r);
        return rc;
    }
    *out = r;
    return TSR_OK;
}

tsr_err_t tsr_store_create_default(const tsr_store_opts_t *opts, tsr_store_t **out,
                                   tsr_error_t *err) {
    const char *uri = tsr_config_get("TSR_STORE_URI");
    if (uri != NULL && uri[0] != '\0') {
        return tsr_store_create(uri, opts, out, err);
    }
    const char *dir = tsr_config_get("TSR_STATE_DIR");
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        return tsr_error_set(err, TSR_EIO, "store: cannot create %s: %s", dir, strerror(errno));
    }
    tsr_buf_t b;
    tsr_buf_init(&b, PATH_MAX + 16);
    tsr_err_t rc = tsr_buf_appendf(&b, "sqlite:%s/store.db", dir);
    if (rc == TSR_OK) {
        rc = tsr_store_create(b.data, opts, out, err);
    } else {
        tsr_error_set(err, rc, "store: state directory path too long");
    }
    tsr_buf_cleanup(&b);
    return rc;
}

void tsr_store_destroy(tsr_store_t *s) {
    if (s == NULL || s->is_txn) {
        return;
    }
    if (s->b != NULL) {
        s->be->close(s->b);
    }
    for (size_t i = 0; i < s->n_colls; i++) {
        coll_free(&s->colls[i]);
    }
    free(s->colls);
    OPENSSL_cleanse(s->cursor_key, sizeof(s->cursor_key));
    free(s);
}

const char *tsr_store_backend_name(const tsr_store_t *s) {
    return s->root->be->scheme;
}

tsr_err_t tsr_store_ping(tsr_store_t *s, tsr_error_t *err) {
    return s->root->be->ping(s->root->b, err);
}

/* ---- documents --------------------------------------------------------------------------- */

tsr_err_t tsr_store_doc_create(tsr_store_t *s, const char *tenant, const char *collection,
                               const char *id, const json_t *doc, const tsr_store_event_t *events,
                               size_t n_events, json_t **out, tsr_error_t *err) {
    tsr_store_t *r = s->root;
    const coll_t *c;
    json_t *d = NULL;
    char idbuf[25];
    if (out != NULL) {
        *out = NULL;
    }
    tsr_err_t rc = check_tenant(tenant, err);
    if (rc == TSR_OK) {
        rc = lookup_coll(r, collection, &c, err);
    }
    if (rc == TSR_OK && id == NULL) {
        tsr_id_new(idbuf);
        id = idbuf;
    }
    if (rc == TSR_OK) {
        rc = check_id(id, err);
    }
    if (rc == TSR_OK) {
        rc = check_events(events, n_events, err);
    }
    if (rc == TSR_OK) {
        rc = make_doc(doc, tenant, id, 1, &d, err);
    }
    if (rc == TSR_OK) {
        rc = r->be->insert(r->b, collection, tenant, id, d, events, n_events, err);
    }
    if (rc == TSR_OK && out != NULL) {
        *out = d;
        d = NULL;
    }
    json_decref(d);
    return rc;
}

tsr_err_t tsr_store_doc_get(tsr_store_t *s, const char *tenant, const char *collection,
                            const char *id, json_t **out, tsr_error_t *err) {
    tsr_store_t *r = s->root;
    const coll_t *c;
    *out = NULL;
    tsr_err_t rc = check_tenant(tenant, err);
    if (rc == TSR_OK) {
        rc = lookup_coll(r, collection, &c, err);
    }
    if (rc == TSR_OK) {
        rc = check_id(id, err);
    }
    if (rc == TSR_OK) {
        rc = r->be->get(r->b, collection, tenant, id, out, err);
    }
    return rc;
}

/* RFC 7386 merge of patch into target (both objects); null removes. */
static void merge_patch(json_t *target, const json_t *patch) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)patch, k, v) {
        if (json_is_null(v)) {
            json_object_del(target, k);
        } else if (json_is_object(v)) {
            json_t *t = json_object_get(target, k);
            if (!json_is_object(t)) {
                t = json_object();
                json_object_set_new(target, k, t);
            }
            merge_patch(t, v);
        } else {
            json_object_set_new(target, k, json_deep_copy(v));
        }
    }
}

/* Shared by replace and patch: patch == true merges body into the stored document. */
static tsr_err_t doc_write(tsr_store_t *s, const char *tenant, const char *collection,
                           const char *id, int64_t if_version, const json_t *body, bool patch,
                           const tsr_store_event_t *events, size_t n_events, json_t **out,
                           tsr_error_t *err) {
    tsr_store_t *r = s->root;
    const coll_t *c;
    json_t *cur = NULL, *d = NULL;
    if (out != NULL) {
        *out = NULL;
    }
    tsr_err_t rc = check_tenant(tenant, err);
    if (rc == TSR_OK) {
        rc = lookup_coll(r, collection, &c, err);
    }
    if (rc == TSR_OK) {
        rc = check_id(id, err);
    }
    if (rc == TSR_OK) {
        rc = check_events(events, n_events, err);
    }
    if (rc == TSR_OK && (if_version < 0 || !json_is_object(body))) {
        rc = tsr_error_set(err, TSR_EINVAL, "store: bad version or non-object document");
    }
    for (int attempt = 0; rc == TSR_OK; attempt++) {
        int64_t expect = if_version;
        const json_t *src = body;
        if (patch || if_version == 0) {
            rc = r->be->get(r->b, collection, tenant, id, &cur, err);
            if (rc != TSR_OK) {
                break;
            }
            if (expect == 0) {
                expect = doc_version(cur);
            } else if (doc_version(cur) != expect) {
                rc = tsr_error_set(err, TSR_ECONFLICT, "store: version mismatch");
                break;
            }
            if (patch) {
                json_t *p = json_deep_copy(body);
                json_object_del(p, "id");
                json_object_del(p, "tenantId");
                json_object_del(p, "version");
                merge_patch(cur, p);
                json_decref(p);
                json_object_del(cur, "id");
                json_object_del(cur, "tenantId");
                json_object_del(cur, "version");
                src = cur;
            }
        }
        rc = make_doc(src, tenant, id, expect + 1, &d, err);
        json_decref(cur);
        cur = NULL;
        if (rc != TSR_OK) {
            break;
        }
        rc = r->be->update(r->b, collection, tenant, id, expect, d, events, n_events, err);
        /* only a version we read ourselves may be retried: a caller's if_version is final */
        if (rc == TSR_ECONFLICT && if_version == 0 && attempt < CAS_RETRIES) {
            json_decref(d);
            d = NULL;
            json_t *now = NULL;
            /* a unique violation stays a conflict on an unchanged document: stop there */
            tsr_err_t g = r->be->get(r->b, collection, tenant, id, &now, NULL);
            int64_t nv = g == TSR_OK ? doc_version(now) : -1;
            json_decref(now);
            if (g == TSR_OK && nv != expect) {
                rc = TSR_OK;
                continue;
            }
            if (g == TSR_ENOTFOUND) {
                rc = tsr_error_set(err, TSR_ENOTFOUND, "store: document not found");
            }
        }
        break;
    }
    if (rc == TSR_OK && out != NULL) {
        *out = d;
        d = NULL;
    }
    json_decref(cur);
    json_decref(d);
    return rc;
}

tsr_err_t tsr_store_doc_replace(tsr_store_t *s, const char *tenant, const char *collection,
                                const char *id, int64_t if_version, const json_t *doc,
                                const tsr_store_event_t *events, size_t n_events, json_t **out,
                                tsr_error_t *err) {
    return doc_write(s, tenant, collection, id, if_version, doc, false, events, n_events, out, err);
}

tsr_err_t tsr_store_doc_patch(tsr_store_t *s, const char *tenant, const char *collection,
                              const char *id, int64_t if_version, const json_t *patch,
                              const tsr_store_event_t *events, size_t n_events, json_t **out,
                              tsr_error_t *err) {
    return doc_write(s, tenant, collection, id, if_version, patch, true, events, n_events, out,
                     err);
}

tsr_err_t tsr_store_doc_del(tsr_store_t *s, const char *tenant, const char *collection,
                            const char *id, int64_t if_version, const tsr_store_event_t *events,
                            size_t n_events, tsr_error_t *err) {
    tsr_store_t *r = s->root;
    const coll_t *c;
    tsr_err_t rc = check_tenant(tenant, err);
    if (rc == TSR_OK) {
        rc = lookup_coll(r, collection, &c, err);
    }
    if (rc == TSR_OK) {
        rc = check_id(id, err);
    }
    if (rc == TSR_OK) {
        rc = check_events(events, n_events, err);
    }
    if (rc == TSR_OK && if_version < 0) {
        rc = tsr_error_set(err, TSR_EINVAL, "store: bad version");
    }
    if (rc == TSR_OK) {
        rc = r->be->del(r->b, collection, tenant, id, if_version, events, n_events, err);
    }
    return rc;
}

/* ---- cursors ----------------------------------------------------------------------------- */

static const char b64u[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void b64u_encode(tsr_buf_t *out, const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n) {
            v |= (unsigned)p[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= p[i + 2];
        }
        char q[4] = {b64u[(v >> 18) & 63], b64u[(v >> 12) & 63], b64u[(v >> 6) & 63], b64u[v & 63]};
        size_t k = n - i >= 3 ? 4 : (n - i == 2 ? 3 : 2);
        (void)tsr_buf_append(out, q, k);
    }
}

static int b64u_val(char c) {
    const char *p = c ? strchr(b64u, c) : NULL;
    return p ? (int)(p - b64u) : -1;
}

/* Strict unpadded base64url; false on any stray character or impossible length. */
static bool b64u_decode(const char *s, size_t n, unsigned char *out, size_t cap, size_t *len) {
    size_t o = 0;
    if (n % 4 == 1) {
        return false;
    }
    for (size_t i = 0; i < n; i += 4) {
        unsigned v = 0;
        size_t k = n - i >= 4 ? 4 : n - i;
        for (size_t j = 0; j < 4; j++) {
            int d = j < k ? b64u_val(s[i + j]) : 0;
            if (d < 0) {
                return false;
            }
            v = (v << 6) | (unsigned)d;
        }
        size_t bytes = k - 1;
        /* the bits after the last byte must be zero, or two texts would decode alike */
        if (o + bytes > cap || (bytes == 1 && (v & 0xffff) != 0) ||
            (bytes == 2 && (v & 0xff) != 0)) {
            return false;
        }
        out[o++] = (unsigned char)(v >> 16);
        if (bytes > 1) {
            out[o++] = (unsigned char)(v >> 8);
        }
        if (bytes > 2) {
            out[o++] = (unsigned char)v;
        }
    }
    *len = o;
    return true;
}

/* What binds a cursor to its query: collection, tenant scope, filters, sort, direction. */
static json_t *query_fingerprint(const char *coll, const char *tenant, const tsr_store_query_t *q,
                                 const char *sort) {
    json_t *f = json_array();
    for (size_t i = 0; i < q->n_filters; i++) {
        json_array_append_new(f, json_pack("[s,i,O]", q->filters[i].field, (int)q->filters[i].op,
                                           (json_t *)q->filters[i].value));
    }
    return json_pack("{s:s,s:s?,s:o,s:s,s:b}", "c", coll, "t", tenant, "f", f, "s", sort, "d",
                     q->descending ? 1 : 0);
}

static void cursor_mac(const tsr_store_t *r, const void *p, size_t n, unsigned char mac[32]) {
    unsigned int len = 32;
    if (HMAC(EVP_sha256(), r->cursor_key, (int)r->cursor_key_len, p, n, mac, &len) == NULL) {
        /* HMAC-SHA256 cannot fail with valid inputs; an all-zero tag simply never verifies */
        memset(mac, 0, 32);
    }
}

/* "<b64u(json)>.<b64u(hmac)>"; json = {"q": fingerprint, "v": value, "t": tenant, "i": id}. */
static char *cursor_make(const tsr_store_t *r, json_t *fp, const json_t *last, const char *sort) {
    json_t *v = tsr_store__field_value(last, sort);
    json_t *pos = json_pack("{s:O,s:O,s:O,s:O}", "q", fp, "v", v ? v : json_null(), "t",
                            json_object_get(last, "tenantId"), "i", json_object_get(last, "id"));
    char *text = pos ? json_dumps(pos, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(pos);
    if (text == NULL) {
        return NULL;
    }
    unsigned char mac[32];
    cursor_mac(r, text, strlen(text), mac);
    tsr_buf_t b;
    tsr_buf_init(&b, 0);
    b64u_encode(&b, (const unsigned char *)text, strlen(text));
    (void)tsr_buf_append(&b, ".", 1);
    b64u_encode(&b, mac, sizeof(mac));
    free(text);
    return tsr_buf_take(&b, NULL);
}

/* Verify and decode a cursor; *pos returned-owned. Every failure is TSR_EINVAL. */
static tsr_err_t cursor_open(const tsr_store_t *r, const char *cursor, const json_t *fp,
                             json_t **pos, tsr_error_t *err) {
    unsigned char body[TSR_STORE_CURSOR_MAX];
    unsigned char mac[64], want[32];
    size_t blen = 0, mlen = 0;
    *pos = NULL;
    size_t n = strnlen(cursor, TSR_STORE_CURSOR_MAX + 1);
    const char *dot = memchr(cursor, '.', n);
    if (n > TSR_STORE_CURSOR_MAX || dot == NULL ||
        !b64u_decode(cursor, (size_t)(dot - cursor), body, sizeof(body), &blen) ||
        !b64u_decode(dot + 1, n - (size_t)(dot - cursor) - 1, mac, sizeof(mac), &mlen) ||
        mlen != sizeof(want)) {
        return tsr_error_set(err, TSR_EINVAL, "store: malformed cursor");
    }
    cursor_mac(r, body, blen, want);
    if (CRYPTO_memcmp(mac, want, sizeof(want)) != 0) {
        return tsr_error_set(err, TSR_EINVAL, "store: cursor failed verification");
    }
    json_t *p = json_loadb((const char *)body, blen, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(p) || !json_equal(json_object_get(p, "q"), (json_t *)fp) ||
        !json_is_string(json_object_get(p, "t")) || !json_is_string(json_object_get(p, "i")) ||
        json_object_get(p, "v") == NULL) {
        json_decref(p);
        return tsr_error_set(err, TSR_EINVAL, "store: cursor does not belong to this query");
    }
    *pos = p;
    return TSR_OK;
}

/* ---- listing ----------------------------------------------------------------------------- */

static tsr_err_t do_list(tsr_store_t *s, const char *tenant, const char *collection,
                         const tsr_store_query_t *q, tsr_store_page_t *page, tsr_error_t *err) {
    tsr_store_t *r = s->root;
    const coll_t *c;
    json_t *fp = NULL, *pos = NULL, *items = NULL;
    memset(page, 0, sizeof(*page));
    tsr_err_t rc = lookup_coll(r, collection, &c, err);
    static const tsr_store_query_t empty;
    if (q == NULL) {
        q = &empty;
    }
    const char *sort = q->sort ? q->sort : "id";
    if (rc == TSR_OK && (q->n_filters > MAX_FILTERS || (q->n_filters > 0 && !q->filters))) {
        rc = tsr_error_set(err, TSR_EINVAL, "store: at most %d filters", MAX_FILTERS);
    }
    for (size_t i = 0; rc == TSR_OK && i < q->n_filters; i++) {
        const tsr_store_filter_t *f = &q->filters[i];
        if (!tsr_store__field_indexed(&c->decl, f->field)) {
            rc = tsr_error_set(err, TSR_EINVAL, "store: field '%s' is not indexed",
                               f->field ? f->field : "(null)");
        } else if ((int)f->op < (int)TSR_STORE_EQ || (int)f->op > (int)TSR_STORE_GE ||
                   !(json_is_string(f->value) || json_is_number(f->value) ||
                     json_is_boolean(f->value))) {
            rc = tsr_error_set(err, TSR_EINVAL, "store: bad filter on '%s'", f->field);
        }
    }
    if (rc == TSR_OK && !tsr_store__field_indexed(&c->decl, sort)) {
        rc = tsr_error_set(err, TSR_EINVAL, "store: cannot sort on '%s'", sort);
    }
    if (rc != TSR_OK) {
        return rc;
    }
    size_t limit = q->limit == 0 ? TSR_STORE_LIST_DEFAULT : q->limit;
    if (limit > TSR_STORE_LIST_MAX) {
        limit = TSR_STORE_LIST_MAX;
    }
    fp = query_fingerprint(collection, tenant, q, sort);
    tsr_store__list_t lq = {.tenant = tenant,
                            .filters = q->filters,
                            .n_filters = q->n_filters,
                            .sort = sort,
                            .descending = q->descending,
                            .limit = limit + 1};
    if (q->cursor != NULL) {
        rc = cursor_open(r, q->cursor, fp, &pos, err);
        if (rc != TSR_OK) {
            goto out;
        }
        lq.has_after = true;
        lq.after_value = json_object_get(pos, "v");
        lq.after_tenant = json_string_value(json_object_get(pos, "t"));
        lq.after_id = json_string_value(json_object_get(pos, "i"));
    }
    rc = r->be->list(r->b, collection, &lq, &items, err);
    if (rc != TSR_OK) {
        goto out;
    }
    if (json_array_size(items) > limit) {
        json_array_remove(items, limit);
        page->next_cursor = cursor_make(r, fp, json_array_get(items, limit - 1), sort);
        if (page->next_cursor == NULL) {
            rc = tsr_error_set(err, TSR_EINTERNAL, "store: cannot make cursor");
            goto out;
        }
    }
    page->items = items;
    items = NULL;
out:
    json_decref(items);
    json_decref(fp);
    json_decref(pos);
    return rc;
}

tsr_err_t tsr_store_doc_list(tsr_store_t *s, const char *tenant, const char *collection,
                             const tsr_store_query_t *q, tsr_store_page_t *page, tsr_error_t *err) {
    tsr_err_t rc = check_tenant(tenant, err);
    if (rc != TSR_OK) {
        memset(page, 0, sizeof(*page));
        return rc;
    }
    return do_list(s, tenant, collection, q, page, err);
}

tsr_err_t tsr_store_platform_doc_list(tsr_store_t *s, const char *collection,
                                      const tsr_store_query_t *q, tsr_store_page_t *page,
                                      tsr_error_t *err) {
    return do_list(s, NULL, collection, q, page, err);
}

void tsr_store_page_cleanup(tsr_store_page_t *page) {
    if (page == NULL) {
        return;
    }
    json_decref(page->items);
    free(page->next_cursor);
    memset(page, 0, sizeof(*page));
}

/* ---- transactions ------------------------------------------------------------------------ */

tsr_err_t tsr_store_txn_begin(tsr_store_t *s, tsr_store_t **tx, tsr_error_t *err) {
    tsr_store_t *r = s->root;
    *tx = NULL;
    if (s->is_txn) {
        return tsr_error_set(err, TSR_EINVAL, "store: transactions do not nest");
    }
    if (r->be->atomic_txn) {
        tsr_err_t rc = r->be->txn_begin(r->b, err);
        if (rc != TSR_OK) {
            return rc;
        }
    }
    tsr_store_t *t = tsr_xcalloc(1, sizeof(*t));
    t->root = r;
    t->is_txn = true;
    *tx = t;
    return TSR_OK;
}

tsr_err_t tsr_store_txn_commit(tsr_store_t *tx, tsr_error_t *err) {
    tsr_err_t rc = TSR_OK;
    if (tx == NULL || !tx->is_txn) {
        return tsr_error_set(err, TSR_EINVAL, "store: not a transaction");
    }
    if (tx->root->be->atomic_txn) {
        rc = tx->root->be->txn_commit(tx->root->b, err);
    }
    free(tx);
    return rc;
}

void tsr_store_txn_rollback(tsr_store_t *tx) {
    if (tx == NULL || !tx->is_txn) {
        return;
    }
    if (tx->root->be->atomic_txn) {
        tx->root->be->txn_rollback(tx->root->b);
    }
    free(tx);
}

bool tsr_store_txn_is_atomic(const tsr_store_t *s) {
    return s->root->be->atomic_txn;
}

/* ---- outbox ------------------------------------------------------------------------------ */

tsr_err_t tsr_store_platform_outbox_fetch(tsr_store_t *s, size_t limit, tsr_store_event_t **rows,
                                          size_t *n, tsr_error_t *err) {
    *rows = NULL;
    *n = 0;
    if (limit == 0) {
        return TSR_OK;
    }
    if (limit > TSR_STORE_LIST_MAX) {
        limit = TSR_STORE_LIST_MAX;
    }
    return s->root->be->outbox_fetch(s->root->b, limit, rows, n, err);
}

tsr_err_t tsr_store_platform_outbox_mark_sent(tsr_store_t *s, const char *const *ids, size_t n,
                                              tsr_error_t *err) {
    if (n == 0) {
        return TSR_OK;
    }
    if (ids == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "store: ids missing");
    }
    return s->root->be->outbox_mark(s->root->b, ids, n, err);
}

void tsr_store_outbox_rows_free(tsr_store_event_t *rows, size_t n) {
    for (size_t i = 0; rows != NULL && i < n; i++) {
        free((char *)rows[i].id);
        free((char *)rows[i].topic);
        free((char *)rows[i].key);
        free((char *)rows[i].payload);
    }
    free(rows);
}

/* ---- apply_once -------------------------------------------------------------------------- */

static void processed_id(const char *group, const char *event_id, char out[65]) {
    unsigned char md[32];
    unsigned int len = 32;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, group, strlen(group) + 1) != 1 ||
        EVP_DigestUpdate(ctx, event_id, strlen(event_id)) != 1 ||
        EVP_DigestFinal_ex(ctx, md, &len) != 1) {
        /* no digest means no dedupe key: abort like any small allocation failure */
        fprintf(stderr, "store: SHA-256 unavailable\n");
        abort();
    }
    EVP_MD_CTX_free(ctx);
    tsr_hex_encode(md, sizeof(md), out);
}

tsr_err_t tsr_store_apply_once(tsr_store_t *s, const char *group, const char *event_id,
                               tsr_store_effect_cb effect, void *opaque, bool *applied,
                               tsr_error_t *err) {
    tsr_store_t *r = s->root;
    tsr_store_t *tx = NULL;
    char key[65];
    *applied = false;
    if (!token_valid(group, TSR_STORE_ID_MAX) || !token_valid(event_id, TSR_STORE_ID_MAX) ||
        effect == NULL || s->is_txn) {
        return tsr_error_set(err, TSR_EINVAL, "store: bad apply_once arguments");
    }
    processed_id(group, event_id, key);
    json_t *mark = json_pack("{s:s,s:s,s:I}", "group", group, "eventId", event_id, "appliedAt",
                             (json_int_t)tsr_wall_ms());
    tsr_err_t rc;
    if (r->be->atomic_txn) {
        rc = tsr_store_txn_begin(r, &tx, err);
        if (rc != TSR_OK) {
            goto out;
        }
        /* the mark first: a concurrent apply of the same id then waits or conflicts here */
        rc = int_insert(r, TSR_STORE__PROCESSED, key, mark, err);
        if (rc == TSR_ECONFLICT) {
            tsr_error_clear(err);
            rc = TSR_OK;
            goto out; /* already applied: roll back the empty transaction */
        }
        if (rc == TSR_OK) {
            rc = effect(opaque, tx, err);
        }
        if (rc == TSR_OK) {
            rc = tsr_store_txn_commit(tx, err);
            tx = NULL;
            *applied = rc == TSR_OK;
        }
    } else {
        json_t *have = NULL;
        rc = int_get(r, TSR_STORE__PROCESSED, key, &have, err);
        json_decref(have);
        if (rc == TSR_OK) {
            goto out;
        }
        if (rc != TSR_ENOTFOUND) {
            goto out;
        }
        tsr_error_clear(err);
        rc = tsr_store_txn_begin(r, &tx, err);
        if (rc == TSR_OK) {
            rc = effect(opaque, tx, err);
        }
        tsr_store_txn_rollback(tx);
        tx = NULL;
        if (rc == TSR_OK) {
            rc = int_insert(r, TSR_STORE__PROCESSED, key, mark, err);
            if (rc == TSR_ECONFLICT) {
                rc = TSR_OK; /* a concurrent apply recorded it too: the effect is idempotent */
                tsr_error_clear(err);
            }
            *applied = rc == TSR_OK;
        }
    }
out:
    tsr_store_txn_rollback(tx);
    json_decref(mark);
    return rc;
}

/* ---- leases ------------------------------------------------------------------------------ */

static void lease_fill(tsr_store_lease_t *out, const char *name, const json_t *doc) {
    char copy[TSR_STORE_LEASE_NAME_MAX + 1];
    snprintf(copy, sizeof(copy), "%s", name); /* name may be out->name itself */
    memset(out, 0, sizeof(*out));
    memcpy(out->name, copy, sizeof(copy));
    const char *owner = json_string_value(json_object_get(doc, "owner"));
    snprintf(out->owner, sizeof(out->owner), "%s", owner ? owner : "");
    out->token = (uint64_t)json_integer_value(json_object_get(doc, "token"));
    out->expires_ms = (int64_t)json_integer_value(json_object_get(doc, "expiresMs"));
    out->version = doc_version(doc);
}

static tsr_err_t lease_args(const char *name, const char *owner, int64_t ttl_ms, tsr_error_t *err) {
    if (!token_valid(name, TSR_STORE_LEASE_NAME_MAX) ||
        (owner != NULL && !token_valid(owner, TSR_STORE_LEASE_NAME_MAX)) || ttl_ms < 1 ||
        ttl_ms > INT64_C(1) << 40) {
        return tsr_error_set(err, TSR_EINVAL, "store: bad lease arguments");
    }
    return TSR_OK;
}

tsr_err_t tsr_store_lease_acquire(tsr_store_t *s, const char *name, const char *owner,
                                  int64_t ttl_ms, tsr_store_lease_t *out, tsr_error_t *err) {
    tsr_store_t *r = s->root;
    memset(out, 0, sizeof(*out));
    tsr_err_t rc = lease_args(name, owner, ttl_ms, err);
    if (rc == TSR_OK && owner == NULL) {
        rc = tsr_error_set(err, TSR_EINVAL, "store: lease owner missing");
    }
    for (int attempt = 0; rc == TSR_OK && attempt < CAS_RETRIES; attempt++) {
        json_t *doc = NULL;
        int64_t now = tsr_wall_ms();
        rc = int_get(r, TSR_STORE__LEASES, name, &doc, err);
        if (rc == TSR_ENOTFOUND) {
            tsr_error_clear(err);
            doc = json_pack("{s:s,s:I,s:I}", "owner", owner, "token", (json_int_t)1, "expiresMs",
                            (json_int_t)(now + ttl_ms));
            rc = int_insert(r, TSR_STORE__LEASES, name, doc, err);
        } else if (rc == TSR_OK) {
            const char *holder = json_string_value(json_object_get(doc, "owner"));
            int64_t exp = (int64_t)json_integer_value(json_object_get(doc, "expiresMs"));
            json_int_t token = json_integer_value(json_object_get(doc, "token"));
            bool mine = holder != NULL && strcmp(holder, owner) == 0 && exp > now;
            bool free_now = holder == NULL || holder[0] == '\0' || exp <= now;
            if (!mine && !free_now) {
                lease_fill(out, name, doc);
                json_decref(doc);
                return tsr_error_set(err, TSR_ECONFLICT, "store: lease %s held by %s", name,
                                     out->owner);
            }
            json_object_set_new(doc, "owner", json_string(owner));
            json_object_set_new(doc, "token", json_integer(mine ? token : token + 1));
            json_object_set_new(doc, "expiresMs", json_integer(now + ttl_ms));
            rc = int_update(r, TSR_STORE__LEASES, name, doc, err);
        }
        if (rc == TSR_OK) {
            lease_fill(out, name, doc);
        }
        json_decref(doc);
        if (rc == TSR_ECONFLICT) {
            tsr_error_clear(err);
            rc = TSR_OK; /* lost a race on the lease document: look again */
            continue;
        }
        return rc;
    }
    return rc == TSR_OK ? tsr_error_set(err, TSR_EUNAVAILABLE, "store: lease %s contended", name)
                        : rc;
}

tsr_err_t tsr_store_lease_renew(tsr_store_t *s, tsr_store_lease_t *lease, int64_t ttl_ms,
                                tsr_error_t *err) {
    tsr_store_t *r = s->root;
    tsr_err_t rc = lease_args(lease->name, lease->owner, ttl_ms, err);
    for (int attempt = 0; rc == TSR_OK && attempt < CAS_RETRIES; attempt++) {
        json_t *doc = NULL;
        rc = int_get(r, TSR_STORE__LEASES, lease->name, &doc, err);
        if (rc == TSR_ENOTFOUND) {
            return tsr_error_set(err, TSR_ECONFLICT, "store: lease %s lost", lease->name);
        }
        if (rc != TSR_OK) {
            return rc;
        }
        const char *holder = json_string_value(json_object_get(doc, "owner"));
        uint64_t token = (uint64_t)json_integer_value(json_object_get(doc, "token"));
        if (holder == NULL || strcmp(holder, lease->owner) != 0 || token != lease->token) {
            json_decref(doc);
            return tsr_error_set(err, TSR_ECONFLICT, "store: lease %s lost", lease->name);
        }
        /* the same token means nobody took it over, even if it expired meanwhile */
        json_object_set_new(doc, "expiresMs", json_integer(tsr_wall_ms() + ttl_ms));
        rc = int_update(r, TSR_STORE__LEASES, lease->name, doc, err);
        if (rc == TSR_OK) {
            lease_fill(lease, lease->name, doc);
        }
        json_decref(doc);
        if (rc == TSR_ECONFLICT) {
            tsr_error_clear(err);
            rc = TSR_OK;
            continue;
        }
        return rc;
    }
    return rc == TSR_OK ? tsr_error_set(err, TSR_EUNAVAILABLE, "store: lease contended") : rc;
}

tsr_err_t tsr_store_lease_release(tsr_store_t *s, const tsr_store_lease_t *lease,
                                  tsr_error_t *err) {
    tsr_store_t *r = s->root;
    tsr_err_t rc = lease_args(lease->name, lease->owner, 1, err);
    for (int attempt = 0; rc == TSR_OK && attempt < CAS_RETRIES; attempt++) {
        json_t *doc = NULL;
        rc = int_get(r, TSR_STORE__LEASES, lease->name, &doc, err);
        if (rc == TSR_ENOTFOUND) {
            tsr_error_clear(err);
            return TSR_OK;
        }
        if (rc != TSR_OK) {
            return rc;
        }
        const char *holder = json_string_value(json_object_get(doc, "owner"));
        uint64_t token = (uint64_t)json_integer_value(json_object_get(doc, "token"));
        if (holder == NULL || strcmp(holder, lease->owner) != 0 || token != lease->token) {
            json_decref(doc);
            return TSR_OK;
        }
        json_object_set_new(doc, "owner", json_string(""));
        json_object_set_new(doc, "expiresMs", json_integer(0));
        rc = int_update(r, TSR_STORE__LEASES, lease->name, doc, err);
        json_decref(doc);
        if (rc == TSR_ECONFLICT) {
            tsr_error_clear(err);
            rc = TSR_OK;
            continue;
        }
        return rc;
    }
    return rc == TSR_OK ? tsr_error_set(err, TSR_EUNAVAILABLE, "store: lease contended") : rc;
}

tsr_err_t tsr_store_lease_get(tsr_store_t *s, const char *name, tsr_store_lease_t *out,
                              tsr_error_t *err) {
    json_t *doc = NULL;
    memset(out, 0, sizeof(*out));
    tsr_err_t rc = lease_args(name, NULL, 1, err);
    if (rc == TSR_OK) {
        rc = int_get(s->root, TSR_STORE__LEASES, name, &doc, err);
    }
    if (rc == TSR_OK) {
        lease_fill(out, name, doc);
        if (out->expires_ms <= tsr_wall_ms()) {
            out->owner[0] = '\0';
        }
    }
    json_decref(doc);
    return rc;
}

/* ---- migrations -------------------------------------------------------------------------- */

/* Run the pending steps of c under a lease, so that of several processes starting at once
 * exactly one runs each step; the others wait for it and find nothing left to do. */
static tsr_err_t run_migrations(tsr_store_t *r, const tsr_store_collection_t *c, tsr_error_t *err) {
    char meta_id[TSR_STORE_NAME_MAX + 16], lease_name[TSR_STORE_NAME_MAX + 16], owner[25];
    unsigned version = c->version ? c->version : 1;
    tsr_store_lease_t lease;
    json_t *meta = NULL;
    bool have_lease = false;
    snprintf(meta_id, sizeof(meta_id), "schema.%s", c->name);
    snprintf(lease_name, sizeof(lease_name), "migrate.%s", c->name);
    tsr_id_new(owner);

    tsr_err_t rc = int_get(r, TSR_STORE__META, meta_id, &meta, err);
    if (rc == TSR_ENOTFOUND) {
        /* a new collection starts at its declared versions: nothing to migrate */
        tsr_error_clear(err);
        meta = json_pack("{s:i,s:i}", "expanded", (int)version, "contracted", (int)c->contracted);
        rc = int_insert(r, TSR_STORE__META, meta_id, meta, err);
        json_decref(meta);
        meta = NULL;
        if (rc != TSR_ECONFLICT) {
            return rc;
        }
        tsr_error_clear(err);
        rc = int_get(r, TSR_STORE__META, meta_id, &meta, err);
    }
    if (rc != TSR_OK) {
        return rc;
    }
    if (json_integer_value(json_object_get(meta, "expanded")) >= version &&
        json_integer_value(json_object_get(meta, "contracted")) >= c->contracted) {
        json_decref(meta);
        return TSR_OK;
    }
    json_decref(meta);
    meta = NULL;

    /* wait for the lease as long as a migration may take (ttl renewed between steps) */
    for (int waited = 0;; waited += 20) {
        rc = tsr_store_lease_acquire(r, lease_name, owner, 60000, &lease, err);
        if (rc != TSR_ECONFLICT || waited > 120000) {
            break;
        }
        sleep_ms(20);
    }
    if (rc != TSR_OK) {
        return rc;
    }
    have_lease = true;
    rc = int_get(r, TSR_STORE__META, meta_id, &meta, err);
    if (rc != TSR_OK) {
        goto out;
    }
    unsigned top = version;
    for (size_t i = 0; i < c->n_migrations; i++) {
        if (c->migrations[i].to_version > top) {
            top = c->migrations[i].to_version;
        }
    }
    for (unsigned k = 2; k <= top && rc == TSR_OK; k++) {
        for (int phase = 0; phase < 2 && rc == TSR_OK; phase++) {
            const char *field = phase == 0 ? "expanded" : "contracted";
            unsigned limit = phase == 0 ? version : c->contracted;
            json_int_t done = json_integer_value(json_object_get(meta, field));
            if (k > limit || (json_int_t)k <= done) {
                continue;
            }
            for (size_t i = 0; i < c->n_migrations && rc == TSR_OK; i++) {
                const tsr_store_migration_t *m = &c->migrations[i];
                tsr_store_migrate_cb cb = phase == 0 ? m->expand : m->contract;
                if (m->to_version == k && cb != NULL) {
                    rc = cb(r, c->name, m->opaque, err);
                }
            }
            if (rc == TSR_OK) {
                json_object_set_new(meta, field, json_integer(k));
                rc = int_update(r, TSR_STORE__META, meta_id, meta, err);
            }
            if (rc == TSR_OK) {
                rc = tsr_store_lease_renew(r, &lease, 60000, err);
            }
        }
    }
out:
    json_decref(meta);
    if (have_lease) {
        (void)tsr_store_lease_release(r, &lease, NULL);
    }
    return rc;
}
