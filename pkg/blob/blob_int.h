/*
 * pkg/blob internals: the backend table that blob.c dispatches to. blob.c validates keys,
 * tenants, caps and limits before any backend call, so backends receive only valid keys of
 * the caller's tenant and count nothing themselves except bytes on the wire.
 */
#ifndef TSR_BLOB_INT_H
#define TSR_BLOB_INT_H

#include "blob.h"

/* A backend's own state, and the backend-specific state of a writer / reader: each backend
 * file defines its structs privately, so blob.c holds them as void pointers. */
typedef void tsr_blob__backend_t;
typedef void tsr_blob__wimpl_t;
typedef void tsr_blob__rimpl_t;

/* What a backend implements. Every function gets the backend's own state. */
typedef struct {
    const char *name;
    void (*destroy)(tsr_blob__backend_t *b);
    /* Start an invisible upload of key. */
    tsr_err_t (*put_open)(tsr_blob__backend_t *b, const char *key, tsr_blob__wimpl_t **out,
                          tsr_error_t *err);
    tsr_err_t (*put_write)(tsr_blob__wimpl_t *w, const void *p, size_t n, tsr_error_t *err);
    /* Make it visible atomically; frees w in every case. */
    tsr_err_t (*put_commit)(tsr_blob__wimpl_t *w, tsr_error_t *err);
    /* Discard; frees w. */
    void (*put_abort)(tsr_blob__wimpl_t *w);
    tsr_err_t (*get)(tsr_blob__backend_t *b, const char *key, tsr_blob__rimpl_t **out,
                     uint64_t *size, tsr_error_t *err);
    tsr_err_t (*read)(tsr_blob__rimpl_t *r, void *buf, size_t cap, size_t *nread, tsr_error_t *err);
    void (*reader_destroy)(tsr_blob__rimpl_t *r);
    tsr_err_t (*del)(tsr_blob__backend_t *b, const char *key, tsr_error_t *err);
    /* Append to out every committed key starting with prefix (which always begins with
     * "<tenant>/") and greater than start_after (may be NULL), in key order, at most limit + 1
     * entries (blob.c uses the extra one to set truncated). */
    tsr_err_t (*list)(tsr_blob__backend_t *b, const char *prefix, const char *start_after,
                      size_t limit, tsr_blob_list_t *out, tsr_error_t *err);
    /* Remove leftovers of writers that died, started before now - older_than_ms. */
    tsr_err_t (*sweep)(tsr_blob__backend_t *b, int64_t older_than_ms, size_t *removed,
                       tsr_error_t *err);
} tsr_blob__ops_t;

/* Backend constructors. root: a directory; uri: a MongoDB connection string. */
tsr_err_t tsr_blob__file_open(const char *root, const tsr_blob__ops_t **ops,
                              tsr_blob__backend_t **out, tsr_error_t *err);
tsr_err_t tsr_blob__gridfs_open(const char *uri, const tsr_blob__ops_t **ops,
                                tsr_blob__backend_t **out, tsr_error_t *err);

/* Append an entry (key copied) to a list, growing it. */
void tsr_blob__list_push(tsr_blob_list_t *l, const char *key, uint64_t size, int64_t mtime_ms);

#endif
