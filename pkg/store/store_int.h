/*
 * pkg/store internals shared by the store's own files: the backend table (one per database
 * kind) and the validated query a backend executes. store.c does all argument validation,
 * owned members, cursors, patches, leases, migrations and apply_once on top of these slots, so
 * a backend only moves documents. Backends: store_sqlite.c, store_mongo.c (optional).
 */
#ifndef TSR_STORE_INT_H
#define TSR_STORE_INT_H

#include "store.h"

/* Internal collections (names start with '_', which tsr_store_collection_t names cannot) and
 * the tenant their documents belong to. Backends create them like any declared collection. */
#define TSR_STORE__META "_tsr_meta"           /* cursor key, schema versions */
#define TSR_STORE__LEASES "_tsr_leases"       /* one document per lease */
#define TSR_STORE__PROCESSED "_tsr_processed" /* (group, event id) applied */
#define TSR_STORE__PLATFORM "_platform"       /* tenant of internal documents */

/* A list request after validation. The order is (sort value, tenantId, id), every key in the
 * same direction; a document without the sort field has a null sort value, which orders before
 * every other value when ascending. Only documents strictly after the position (in that order)
 * are returned when has_after. */
typedef struct {
    const char *tenant;                /* NULL: every tenant (platform list) */
    const tsr_store_filter_t *filters; /* fields: "id" or declared indexes; scalar values */
    size_t n_filters;
    const char *sort; /* "id" or a declared index */
    bool descending;
    size_t limit; /* at most this many documents (store.c asks one more than the page) */
    bool has_after;
    const json_t *after_value; /* sort value of the last document seen (json null: missing) */
    const char *after_tenant;
    const char *after_id;
} tsr_store__list_t;

/* Every slot receives the backend's own handle b (from open). Documents passed in are complete
 * (owned members "id", "tenantId", "version" set, no reserved '_' members) and already
 * validated; documents handed out must carry the same members and none of the backend's own.
 * Errors: TSR_ENOTFOUND, TSR_ECONFLICT as documented per slot; TSR_EUNAVAILABLE for busy,
 * locked, full or unreachable databases (and the write must then have left nothing behind);
 * TSR_EIO/TSR_EINTERNAL otherwise. Thread safety: slots may be called from several threads;
 * the backend serialises what it must. */
typedef struct {
    const char *scheme; /* "sqlite", "mongodb" */
    /* True when txn_begin/commit/rollback give one all-or-nothing multi-document transaction.
     * When false, txn_* may be NULL and writes apply at once. */
    bool atomic_txn;

    /* uri: the full uri given to tsr_store_create. opts: never NULL. *b: the handle. */
    tsr_err_t (*open)(const char *uri, const tsr_store_opts_t *opts, void **b, tsr_error_t *err);
    void (*close)(void *b);
    tsr_err_t (*ping)(void *b, tsr_error_t *err);

    /* Create storage and indexes for one collection (idempotent; also called for the internal
     * collections, which have no indexes). Called from tsr_store_create only. */
    tsr_err_t (*declare)(void *b, const tsr_store_collection_t *c, tsr_error_t *err);

    /* Insert doc (version 1). TSR_ECONFLICT when (tenant, id) exists in the collection or a
     * unique constraint is violated. The events are written with the document or not at all. */
    tsr_err_t (*insert)(void *b, const char *coll, const char *tenant, const char *id,
                        const json_t *doc, const tsr_store_event_t *events, size_t n_events,
                        tsr_error_t *err);

    /* *out returned-owned. TSR_ENOTFOUND when absent. */
    tsr_err_t (*get)(void *b, const char *coll, const char *tenant, const char *id, json_t **out,
                     tsr_error_t *err);

    /* Compare-and-set: replace the stored document with doc (whose "version" is if_version+1)
     * only if its stored version is if_version (>= 1). TSR_ENOTFOUND when absent,
     * TSR_ECONFLICT on a version mismatch or a unique violation. Events as for insert. */
    tsr_err_t (*update)(void *b, const char *coll, const char *tenant, const char *id,
                        int64_t if_version, const json_t *doc, const tsr_store_event_t *events,
                        size_t n_events, tsr_error_t *err);

    /* Delete if the stored version is if_version (0: any). TSR_ENOTFOUND, TSR_ECONFLICT. */
    tsr_err_t (*del)(void *b, const char *coll, const char *tenant, const char *id,
                     int64_t if_version, const tsr_store_event_t *events, size_t n_events,
                     tsr_error_t *err);

    /* Documents matching q in q's order, at most q->limit. *out: returned-owned JSON array. */
    tsr_err_t (*list)(void *b, const char *coll, const tsr_store__list_t *q, json_t **out,
                      tsr_error_t *err);

    /* Unsent outbox rows of every tenant in commit order; *rows returned-owned (strings
     * tsr_xstrdup'ed, array tsr_xcalloc'ed: freed by tsr_store_outbox_rows_free). */
    tsr_err_t (*outbox_fetch)(void *b, size_t limit, tsr_store_event_t **rows, size_t *n,
                              tsr_error_t *err);
    tsr_err_t (*outbox_mark)(void *b, const char *const *ids, size_t n, tsr_error_t *err);

    /* Transactions (atomic_txn backends). Nested calls from the thread that began see and join
     * the transaction; each slot call inside must be all-or-nothing on its own (savepoint). */
    tsr_err_t (*txn_begin)(void *b, tsr_error_t *err);
    tsr_err_t (*txn_commit)(void *b, tsr_error_t *err);
    void (*txn_rollback)(void *b);
} tsr_store__backend_t;

extern const tsr_store__backend_t tsr_store__sqlite_backend;
/* Defined in store_mongo.c; CMake compiles that file and defines TSR_STORE_HAVE_MONGO when it
 * exists, so mongodb URIs answer TSR_EUNSUPPORTED in builds without it. */
extern const tsr_store__backend_t tsr_store__mongo_backend;

/* Shared helpers (store.c). */

/* Whether name is a valid field path ("a" or "a.b", segments [A-Za-z][A-Za-z0-9_]*). */
bool tsr_store__field_valid(const char *name);
/* Whether field is "id" or one of c's indexes. */
bool tsr_store__field_indexed(const tsr_store_collection_t *c, const char *field);
/* The value at a dotted path inside doc (borrowed), or NULL. */
json_t *tsr_store__field_value(const json_t *doc, const char *path);

#endif
