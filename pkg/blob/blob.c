/*
 * pkg/blob front end: key and tenant checks, the size cap, list limits, and dispatch to the
 * file or GridFS backend. Invariant: a backend only ever sees a valid key whose first
 * segment is the caller's tenant, and a writer never hands a backend more than max_bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "blob_int.h"
#include "config.h"

#define LIST_LIMIT_MAX 10000

struct tsr_blob_store {
    const tsr_blob__ops_t *ops;
    tsr_blob__backend_t *be;
};

struct tsr_blob_writer {
    tsr_blob_store_t *s;
    tsr_blob__wimpl_t *impl;
    uint64_t written; /* bytes */
    uint64_t max;     /* bytes */
    tsr_err_t failed; /* first failure; TSR_OK while healthy */
};

struct tsr_blob_reader {
    tsr_blob_store_t *s;
    tsr_blob__rimpl_t *impl;
    uint64_t size; /* bytes */
};

/* ---- keys -------------------------------------------------------------------------------- */

static bool key_char_ok(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

/* Check one segment [p, p+n). */
static tsr_err_t segment_check(const char *p, size_t n, const char *what, tsr_error_t *err) {
    if (n == 0)
        return tsr_error_set(err, TSR_EINVAL, "blob key: empty %s", what);
    if (n > TSR_BLOB_SEGMENT_MAX)
        return tsr_error_set(err, TSR_EINVAL, "blob key: %s longer than %d bytes", what,
                             TSR_BLOB_SEGMENT_MAX);
    if (p[0] == '.')
        return tsr_error_set(err, TSR_EINVAL, "blob key: %s starts with '.'", what);
    for (size_t i = 0; i < n; i++) {
        if (!key_char_ok(p[i]))
            return tsr_error_set(err, TSR_EINVAL,
                                 "blob key: %s has a character outside "
                                 "[A-Za-z0-9_.-]",
                                 what);
    }
    return TSR_OK;
}

static const char *const SEGMENT_NAMES[4] = {"tenant", "kind", "id", "version"};

tsr_err_t tsr_blob_key_validate(const char *key, tsr_error_t *err) {
    if (key == NULL)
        return tsr_error_set(err, TSR_EINVAL, "blob key: missing");
    size_t len = strnlen(key, TSR_BLOB_KEY_MAX + 1);
    if (len > TSR_BLOB_KEY_MAX)
        return tsr_error_set(err, TSR_EINVAL, "blob key: longer than %d bytes", TSR_BLOB_KEY_MAX);
    const char *p = key;
    for (int seg = 0; seg < 4; seg++) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        tsr_err_t rc = segment_check(p, n, SEGMENT_NAMES[seg], err);
        if (rc != TSR_OK)
            return rc;
        if (seg < 3) {
            if (slash == NULL)
                return tsr_error_set(err, TSR_EINVAL,
                                     "blob key: want <tenant>/<kind>/<id>/<version>");
            p = slash + 1;
        } else if (slash != NULL) {
            return tsr_error_set(err, TSR_EINVAL,
                                 "blob key: more than four segments (or a trailing '/')");
        }
    }
    return TSR_OK;
}

tsr_err_t tsr_blob_key_format(char *out, size_t out_size, const char *tenant, const char *kind,
                              const char *id, const char *version, tsr_error_t *err) {
    const char *segs[4] = {tenant, kind, id, version};
    size_t need = 0;
    for (int i = 0; i < 4; i++) {
        if (segs[i] == NULL)
            return tsr_error_set(err, TSR_EINVAL, "blob key: missing %s", SEGMENT_NAMES[i]);
        size_t n = strnlen(segs[i], TSR_BLOB_SEGMENT_MAX + 1);
        tsr_err_t rc = segment_check(segs[i], n, SEGMENT_NAMES[i], err);
        if (rc != TSR_OK)
            return rc;
        need += n + 1; /* segment plus '/' or the final NUL */
    }
    if (out == NULL || need > out_size)
        return tsr_error_set(err, TSR_ETOOBIG, "blob key: buffer of %zu bytes too small", out_size);
    size_t off = 0;
    for (int i = 0; i < 4; i++) {
        size_t n = strlen(segs[i]);
        memcpy(out + off, segs[i], n);
        off += n;
        out[off++] = i < 3 ? '/' : '\0';
    }
    return TSR_OK;
}

/* Whether key's first segment is exactly tenant. */
static bool key_in_tenant(const char *key, const char *tenant) {
    size_t n = strlen(tenant);
    return n > 0 && strncmp(key, tenant, n) == 0 && key[n] == '/';
}

static tsr_err_t tenant_check(const char *tenant, tsr_error_t *err) {
    if (tenant == NULL)
        return tsr_error_set(err, TSR_EINVAL, "blob: missing tenant");
    return segment_check(tenant, strnlen(tenant, TSR_BLOB_SEGMENT_MAX + 1), "tenant", err);
}

/* ---- the store --------------------------------------------------------------------------- */

tsr_err_t tsr_blob_store_open(const char *uri, tsr_blob_store_t **out, tsr_error_t *err) {
    tsr_err_t rc = TSR_OK;
    char *owned = NULL;
    *out = NULL;
    if (uri == NULL || uri[0] == '\0')
        uri = tsr_config_get("TSR_BLOB_URI");
    if (uri[0] == '\0') {
        tsr_buf_t b;
        tsr_buf_init(&b, 0);
        tsr_buf_appendf(&b, "file:%s/blobs", tsr_config_get("TSR_STATE_DIR"));
        owned = tsr_buf_take(&b, NULL);
        uri = owned;
    }
    tsr_blob_store_t *s = tsr_xcalloc(1, sizeof *s);
    if (strncmp(uri, "file:", 5) == 0) {
        const char *root = uri + 5;
        /* Accept file:///abs/path as well as file:PATH. */
        if (strncmp(root, "//", 2) == 0)
            root += 2;
        rc = tsr_blob__file_open(root, &s->ops, &s->be, err);
    } else if (strncmp(uri, "mongodb://", 10) == 0 || strncmp(uri, "mongodb+srv://", 14) == 0) {
        rc = tsr_blob__gridfs_open(uri, &s->ops, &s->be, err);
    } else {
        rc = tsr_error_set(err, TSR_EINVAL, "blob: URI must start with file: or mongodb://");
    }
    if (rc != TSR_OK) {
        free(s);
        goto out;
    }
    *out = s;
out:
    free(owned);
    return rc;
}

void tsr_blob_store_destroy(tsr_blob_store_t *s) {
    if (s == NULL)
        return;
    s->ops->destroy(s->be);
    free(s);
}

const char *tsr_blob_store_backend(const tsr_blob_store_t *s) {
    return s->ops->name;
}

/* ---- put --------------------------------------------------------------------------------- */

tsr_err_t tsr_blob_put_open(tsr_blob_store_t *s, const char *tenant, const char *key,
                            uint64_t max_bytes, tsr_blob_writer_t **out, tsr_error_t *err) {
    *out = NULL;
    tsr_err_t rc = tenant_check(tenant, err);
    if (rc != TSR_OK)
        return rc;
    rc = tsr_blob_key_validate(key, err);
    if (rc != TSR_OK)
        return rc;
    if (!key_in_tenant(key, tenant))
        return tsr_error_set(err, TSR_EFORBIDDEN, "blob: key is not in the caller's tenant");
    if (max_bytes == 0)
        return tsr_error_set(err, TSR_EINVAL, "blob: max_bytes must be > 0");
    tsr_blob__wimpl_t *impl = NULL;
    rc = s->ops->put_open(s->be, key, &impl, err);
    if (rc != TSR_OK)
        return rc;
    tsr_blob_writer_t *w = tsr_xcalloc(1, sizeof *w);
    w->s = s;
    w->impl = impl;
    w->max = max_bytes;
    *out = w;
    return TSR_OK;
}

tsr_err_t tsr_blob_writer_write(tsr_blob_writer_t *w, const void *p, size_t n, tsr_error_t *err) {
    if (w->failed != TSR_OK)
        return tsr_error_set(err, w->failed, "blob: writer already failed (%s)",
                             tsr_strerror(w->failed));
    if (n == 0)
        return TSR_OK;
    if ((uint64_t)n > w->max - w->written) {
        w->failed = TSR_ETOOBIG;
        return tsr_error_set(err, TSR_ETOOBIG, "blob: larger than the cap of %llu bytes",
                             (unsigned long long)w->max);
    }
    tsr_err_t rc = w->s->ops->put_write(w->impl, p, n, err);
    if (rc != TSR_OK) {
        w->failed = rc;
        return rc;
    }
    w->written += n;
    return TSR_OK;
}

tsr_err_t tsr_blob_writer_commit(tsr_blob_writer_t *w, tsr_error_t *err) {
    tsr_err_t rc;
    if (w->failed != TSR_OK) {
        rc = tsr_error_set(err, w->failed, "blob: writer failed earlier (%s)",
                           tsr_strerror(w->failed));
        w->s->ops->put_abort(w->impl);
    } else {
        rc = w->s->ops->put_commit(w->impl, err);
    }
    free(w);
    return rc;
}

void tsr_blob_writer_abort(tsr_blob_writer_t *w) {
    if (w == NULL)
        return;
    w->s->ops->put_abort(w->impl);
    free(w);
}

uint64_t tsr_blob_writer_size(const tsr_blob_writer_t *w) {
    return w->written;
}

tsr_err_t tsr_blob_put(tsr_blob_store_t *s, const char *tenant, const char *key, const void *p,
                       size_t n, uint64_t max_bytes, tsr_error_t *err) {
    tsr_blob_writer_t *w = NULL;
    tsr_err_t rc = tsr_blob_put_open(s, tenant, key, max_bytes, &w, err);
    if (rc != TSR_OK)
        return rc;
    rc = tsr_blob_writer_write(w, p, n, err);
    if (rc != TSR_OK) {
        tsr_blob_writer_abort(w);
        return rc;
    }
    return tsr_blob_writer_commit(w, err);
}

/* ---- get --------------------------------------------------------------------------------- */

tsr_err_t tsr_blob_get(tsr_blob_store_t *s, const char *tenant, const char *key,
                       tsr_blob_reader_t **out, tsr_error_t *err) {
    *out = NULL;
    tsr_err_t rc = tenant_check(tenant, err);
    if (rc != TSR_OK)
        return rc;
    rc = tsr_blob_key_validate(key, err);
    if (rc != TSR_OK)
        return rc;
    if (!key_in_tenant(key, tenant))
        return tsr_error_set(err, TSR_ENOTFOUND, "blob: no such blob");
    tsr_blob__rimpl_t *impl = NULL;
    uint64_t size = 0;
    rc = s->ops->get(s->be, key, &impl, &size, err);
    if (rc != TSR_OK)
        return rc;
    tsr_blob_reader_t *r = tsr_xcalloc(1, sizeof *r);
    r->s = s;
    r->impl = impl;
    r->size = size;
    *out = r;
    return TSR_OK;
}

tsr_err_t tsr_blob_reader_read(tsr_blob_reader_t *r, void *buf, size_t cap, size_t *nread,
                               tsr_error_t *err) {
    *nread = 0;
    if (cap == 0)
        return TSR_OK;
    return r->s->ops->read(r->impl, buf, cap, nread, err);
}

uint64_t tsr_blob_reader_size(const tsr_blob_reader_t *r) {
    return r->size;
}

void tsr_blob_reader_destroy(tsr_blob_reader_t *r) {
    if (r == NULL)
        return;
    r->s->ops->reader_destroy(r->impl);
    free(r);
}

tsr_err_t tsr_blob_get_all(tsr_blob_store_t *s, const char *tenant, const char *key,
                           size_t max_bytes, char **out, size_t *n, tsr_error_t *err) {
    tsr_blob_reader_t *r = NULL;
    tsr_buf_t b;
    *out = NULL;
    *n = 0;
    tsr_buf_init(&b, max_bytes == 0 ? 1 : max_bytes);
    tsr_err_t rc = tsr_blob_get(s, tenant, key, &r, err);
    if (rc != TSR_OK)
        goto out;
    if (r->size > (uint64_t)max_bytes) {
        rc = tsr_error_set(err, TSR_ETOOBIG, "blob: %llu bytes, more than %zu",
                           (unsigned long long)r->size, max_bytes);
        goto out;
    }
    for (;;) {
        char chunk[65536];
        size_t got = 0;
        rc = tsr_blob_reader_read(r, chunk, sizeof chunk, &got, err);
        if (rc != TSR_OK)
            goto out;
        if (got == 0)
            break;
        rc = tsr_buf_append(&b, chunk, got);
        if (rc != TSR_OK) {
            tsr_error_set(err, rc, "blob: larger than %zu bytes", max_bytes);
            goto out;
        }
    }
    /* tsr_buf_take returns "" for an empty blob: always NUL-terminated. */
    *out = tsr_buf_take(&b, n);
out:
    tsr_blob_reader_destroy(r);
    tsr_buf_cleanup(&b);
    return rc;
}

/* ---- delete and list --------------------------------------------------------------------- */

tsr_err_t tsr_blob_del(tsr_blob_store_t *s, const char *tenant, const char *key, tsr_error_t *err) {
    tsr_err_t rc = tenant_check(tenant, err);
    if (rc != TSR_OK)
        return rc;
    rc = tsr_blob_key_validate(key, err);
    if (rc != TSR_OK)
        return rc;
    if (!key_in_tenant(key, tenant))
        return tsr_error_set(err, TSR_ENOTFOUND, "blob: no such blob");
    return s->ops->del(s->be, key, err);
}

void tsr_blob__list_push(tsr_blob_list_t *l, const char *key, uint64_t size, int64_t mtime_ms) {
    /* Grow in powers of two; count starts at 0 with items NULL. */
    if ((l->count & (l->count - 1)) == 0) {
        size_t cap = l->count == 0 ? 8 : l->count * 2;
        if (cap > l->count)
            l->items = tsr_xrealloc(l->items, cap * sizeof *l->items);
    }
    l->items[l->count].key = tsr_xstrdup(key);
    l->items[l->count].size = size;
    l->items[l->count].mtime_ms = mtime_ms;
    l->count++;
}

void tsr_blob_list_cleanup(tsr_blob_list_t *l) {
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i].key);
    free(l->items);
    memset(l, 0, sizeof *l);
}

tsr_err_t tsr_blob_list(tsr_blob_store_t *s, const char *tenant, const char *prefix,
                        const char *start_after, size_t limit, tsr_blob_list_t *out,
                        tsr_error_t *err) {
    memset(out, 0, sizeof *out);
    tsr_err_t rc = tenant_check(tenant, err);
    if (rc != TSR_OK)
        return rc;
    if (limit == 0 || limit > LIST_LIMIT_MAX)
        return tsr_error_set(err, TSR_EINVAL, "blob list: limit must be 1..%d", LIST_LIMIT_MAX);
    if (prefix == NULL)
        prefix = "";
    size_t plen = strnlen(prefix, TSR_BLOB_KEY_MAX + 1);
    if (plen > TSR_BLOB_KEY_MAX)
        return tsr_error_set(err, TSR_EINVAL, "blob list: prefix too long");
    for (size_t i = 0; i < plen; i++) {
        if (!key_char_ok(prefix[i]) && prefix[i] != '/')
            return tsr_error_set(err, TSR_EINVAL,
                                 "blob list: prefix has a character outside "
                                 "[A-Za-z0-9_.-/]");
    }
    if (start_after != NULL && strnlen(start_after, TSR_BLOB_KEY_MAX + 1) > TSR_BLOB_KEY_MAX)
        return tsr_error_set(err, TSR_EINVAL, "blob list: start_after too long");

    /* The effective prefix always starts with "<tenant>/". A shorter prefix that the tenant's
     * keys extend (e.g. "" or "acme" for tenant "acme") means all of the tenant's keys; a
     * prefix that leaves the tenant matches nothing, as if there were no such keys. */
    size_t tlen = strlen(tenant);
    tsr_buf_t eff;
    tsr_buf_init(&eff, 0);
    if (plen <= tlen) {
        if (strncmp(tenant, prefix, plen) != 0)
            goto empty;
        tsr_buf_appendf(&eff, "%s/", tenant);
    } else {
        if (strncmp(prefix, tenant, tlen) != 0 || prefix[tlen] != '/')
            goto empty;
        tsr_buf_append_str(&eff, prefix);
    }
    rc = s->ops->list(s->be, eff.data, start_after, limit, out, err);
    if (rc != TSR_OK) {
        tsr_blob_list_cleanup(out);
    } else if (out->count > limit) {
        for (size_t i = limit; i < out->count; i++)
            free(out->items[i].key);
        out->count = limit;
        out->truncated = true;
    }
empty:
    tsr_buf_cleanup(&eff);
    return rc;
}

tsr_err_t tsr_blob_sweep(tsr_blob_store_t *s, int64_t older_than_ms, size_t *removed,
                         tsr_error_t *err) {
    size_t n = 0;
    if (older_than_ms < 0)
        return tsr_error_set(err, TSR_EINVAL, "blob sweep: negative age");
    tsr_err_t rc = s->ops->sweep(s->be, older_than_ms, &n, err);
    if (removed != NULL)
        *removed = n;
    return rc;
}
