/*
 * pkg/blob: Tessera's blob store for app files and data files. Keys are versioned paths
 * `<tenant>/<kind>/<id>/<version>`; every call names the caller's tenant and a key of another
 * tenant behaves exactly like a missing one. Writes are streamed, size-capped and atomic: a
 * blob becomes visible only when its writer commits, so a reader never sees a half-written
 * blob, even after the writer was killed. Backends: files under a root directory
 * (`file:PATH`, temp file + fsync + rename) and MongoDB GridFS (`mongodb://...`, visible only
 * once the upload's files document exists). Sealing is the caller's job. Layer: adapter
 * (core, config below it); no libmongoc type appears here.
 */
#ifndef TSR_BLOB_H
#define TSR_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TSR_BLOB_KEY_MAX 512     /* longest key in bytes, without the NUL */
#define TSR_BLOB_SEGMENT_MAX 128 /* longest key segment in bytes */

typedef struct tsr_blob_store tsr_blob_store_t;
typedef struct tsr_blob_writer tsr_blob_writer_t;
typedef struct tsr_blob_reader tsr_blob_reader_t;

/* ---- keys -------------------------------------------------------------------------------- */

/* Check that key is `<tenant>/<kind>/<id>/<version>`: exactly four non-empty segments of
 * [A-Za-z0-9_.-], each at most TSR_BLOB_SEGMENT_MAX bytes and not starting with '.' (so no
 * "..", no hidden names), no leading '/', at most TSR_BLOB_KEY_MAX bytes. TSR_EINVAL
 * otherwise. Thread safe. */
tsr_err_t tsr_blob_key_validate(const char *key, tsr_error_t *err);

/* Compose a key from its four segments into out (out_size bytes) and validate it. TSR_EINVAL
 * for a bad segment, TSR_ETOOBIG when out is too small. */
tsr_err_t tsr_blob_key_format(char *out, size_t out_size, const char *tenant, const char *kind,
                              const char *id, const char *version, tsr_error_t *err);

/* ---- the store --------------------------------------------------------------------------- */

/* Open a blob store. uri is "file:PATH" (the directory is created, mode 0700) or a MongoDB
 * connection string "mongodb://..." (database from the URI's path, default "tessera"; GridFS
 * bucket "blobs"; writes with w:majority). NULL or "" means the TSR_BLOB_URI knob, whose
 * empty default is "file:$TSR_STATE_DIR/blobs". *out is returned-owned (free with
 * tsr_blob_store_destroy). TSR_EINVAL for an unknown scheme or bad URI, TSR_EIO when the
 * directory cannot be created, TSR_EUNAVAILABLE when the MongoDB server does not answer.
 * Thread safety: a store may be shared by threads; writers and readers may not. */
tsr_err_t tsr_blob_store_open(const char *uri, tsr_blob_store_t **out, tsr_error_t *err);

/* Close the store. Every writer and reader must be finished first. NULL: no-op. */
void tsr_blob_store_destroy(tsr_blob_store_t *s);

/* "file" or "gridfs". Static storage. */
const char *tsr_blob_store_backend(const tsr_blob_store_t *s);

/* ---- put: a streamed, size-capped, atomic write ------------------------------------------ */

/* Start writing the blob `key` for `tenant`; nothing is visible until commit. max_bytes
 * (> 0) caps the blob's size. An existing blob under the key is replaced atomically on
 * commit. *out is returned-owned: finish it with exactly one of commit or abort.
 * TSR_EINVAL for a bad key or max_bytes 0, TSR_EFORBIDDEN when the key is not in tenant,
 * TSR_EIO / TSR_EUNAVAILABLE when the backend fails. */
tsr_err_t tsr_blob_put_open(tsr_blob_store_t *s, const char *tenant, const char *key,
                            uint64_t max_bytes, tsr_blob_writer_t **out, tsr_error_t *err);

/* Append n bytes. TSR_ETOOBIG when the blob would exceed max_bytes (nothing of this call is
 * written); after any failure the writer only accepts abort (commit fails with the same
 * code). */
tsr_err_t tsr_blob_writer_write(tsr_blob_writer_t *w, const void *p, size_t n, tsr_error_t *err);

/* Make the blob durable and visible, then free w (also on failure, after discarding the
 * partial blob). Returns the first failure of the writer, if any. */
tsr_err_t tsr_blob_writer_commit(tsr_blob_writer_t *w, tsr_error_t *err);

/* Discard everything written and free w. NULL: no-op. */
void tsr_blob_writer_abort(tsr_blob_writer_t *w);

/* Bytes written so far. */
uint64_t tsr_blob_writer_size(const tsr_blob_writer_t *w);

/* Convenience: put a whole buffer (open, one write, commit). */
tsr_err_t tsr_blob_put(tsr_blob_store_t *s, const char *tenant, const char *key, const void *p,
                       size_t n, uint64_t max_bytes, tsr_error_t *err);

/* ---- get: a streamed read ---------------------------------------------------------------- */

/* Open the committed blob `key` of `tenant` for reading. A reader keeps seeing the version it
 * opened even if the key is replaced meanwhile (file backend; GridFS: until the replace
 * deletes it, then reads fail with TSR_EUNAVAILABLE and a new get sees the new version). *out is
 * returned-owned (free with tsr_blob_reader_destroy). TSR_ENOTFOUND when missing or in another
 * tenant, TSR_EINVAL for a bad key. */
tsr_err_t tsr_blob_get(tsr_blob_store_t *s, const char *tenant, const char *key,
                       tsr_blob_reader_t **out, tsr_error_t *err);

/* Read up to cap bytes into buf; *nread is 0 only at the end of the blob. */
tsr_err_t tsr_blob_reader_read(tsr_blob_reader_t *r, void *buf, size_t cap, size_t *nread,
                               tsr_error_t *err);

/* Size of the blob in bytes. */
uint64_t tsr_blob_reader_size(const tsr_blob_reader_t *r);

void tsr_blob_reader_destroy(tsr_blob_reader_t *r); /* NULL: no-op */

/* Convenience: read a whole blob of at most max_bytes into *out (returned-owned, free with
 * free(); NUL-terminated after *n bytes). TSR_ETOOBIG when the blob is larger. */
tsr_err_t tsr_blob_get_all(tsr_blob_store_t *s, const char *tenant, const char *key,
                           size_t max_bytes, char **out, size_t *n, tsr_error_t *err);

/* ---- delete and list --------------------------------------------------------------------- */

/* Delete the blob. TSR_ENOTFOUND when missing or in another tenant. */
tsr_err_t tsr_blob_del(tsr_blob_store_t *s, const char *tenant, const char *key, tsr_error_t *err);

typedef struct {
    char *key;        /* owned by the list */
    uint64_t size;    /* bytes */
    int64_t mtime_ms; /* when it was committed, ms since the Unix epoch */
} tsr_blob_entry_t;

typedef struct {
    tsr_blob_entry_t *items; /* owned; sorted by key (bytewise) */
    size_t count;
    bool truncated; /* more keys follow: list again with start_after = last key */
} tsr_blob_list_t;

/* List tenant's committed blobs whose key starts with prefix (NULL or "": all of tenant's),
 * sorted by key, only keys > start_after (NULL: from the first), at most limit (1..10000)
 * entries. A prefix in another tenant yields an empty list. *out is caller's storage, filled
 * on success (free with tsr_blob_list_cleanup). TSR_EINVAL for a prefix with characters no
 * key can contain or a bad limit. */
tsr_err_t tsr_blob_list(tsr_blob_store_t *s, const char *tenant, const char *prefix,
                        const char *start_after, size_t limit, tsr_blob_list_t *out,
                        tsr_error_t *err);

void tsr_blob_list_cleanup(tsr_blob_list_t *l); /* NULL: no-op */

/* ---- maintenance ------------------------------------------------------------------------- */

/* PLATFORM (all tenants): remove what writers that died mid-upload left behind and no reader
 * can see: hidden temp files (file backend) or chunks without a files document (GridFS), whose
 * upload started (GridFS) or was last written (files) more than older_than_ms ago. Pass more
 * than the longest upload may take (e.g. one hour): a younger leftover may be a live upload
 * of another process. *removed (may be NULL): temp files or orphan uploads removed. Safe to
 * run from several processes at once. */
tsr_err_t tsr_blob_sweep(tsr_blob_store_t *s, int64_t older_than_ms, size_t *removed,
                         tsr_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
