/*
 * pkg/store: Tessera's metadata store. Collections of JSON documents (jansson) addressed by
 * (tenantId, id), with declared indexes and unique constraints, optimistic concurrency on a
 * per-document version, keyset paging behind an HMAC'd cursor, an atomic "write + outbox",
 * a lease primitive with fencing tokens and per-collection schema migrations. Backends: SQLite
 * ("sqlite:PATH", embedded default) and MongoDB ("mongodb://...", when built in). Layer:
 * adapter (core, log, config below it). Invariant: every document call is scoped to the tenant
 * given by the caller; only functions with "platform" in their name cross tenants.
 */
#ifndef TSR_STORE_H
#define TSR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- limits ------------------------------------------------------------------------------ */

#define TSR_STORE_NAME_MAX 48               /* collection name: [a-z][a-z0-9_]*, bytes */
#define TSR_STORE_FIELD_MAX 64              /* field path: [A-Za-z][A-Za-z0-9_]*(.seg)*, bytes */
#define TSR_STORE_TENANT_MAX 64             /* tenant id: printable ASCII, no leading '_' */
#define TSR_STORE_ID_MAX 128                /* document id: printable ASCII, bytes */
#define TSR_STORE_DOC_MAX (4 * 1024 * 1024) /* serialised document, bytes (over: ETOOBIG) */
#define TSR_STORE_LIST_DEFAULT 100          /* page size when the query says 0 */
#define TSR_STORE_LIST_MAX 1000             /* largest page */
#define TSR_STORE_CURSOR_MAX 4096           /* longest cursor accepted, bytes */
#define TSR_STORE_LEASE_NAME_MAX 128        /* lease name and owner, bytes */

/* ---- opening ----------------------------------------------------------------------------- */

typedef struct tsr_store tsr_store_t;

/* A migration callback: runs at tsr_store_create, before the store is handed out, with the
 * store itself (use the platform list and the normal per-tenant calls, tenant taken from each
 * document's "tenantId"). Must be idempotent: a crash mid-migration runs it again at the next
 * start. Return TSR_OK to record the step as done; anything else fails tsr_store_create. */
typedef tsr_err_t (*tsr_store_migrate_cb)(tsr_store_t *s, const char *collection, void *opaque,
                                          tsr_error_t *err);

/* One schema step of a collection: from to_version-1 to to_version. expand adds (new fields,
 * backfills) and must leave documents readable by the previous release; contract removes what
 * only the previous release needed. Either callback may be NULL. */
typedef struct {
    unsigned to_version; /* >= 2 */
    tsr_store_migrate_cb expand;
    tsr_store_migrate_cb contract;
    void *opaque; /* passed to both callbacks */
} tsr_store_migration_t;

/* A unique constraint over one or more indexed-or-not field paths. Documents missing any of
 * the fields do not take part. Scoped per tenant unless global. */
typedef struct {
    const char *const *fields; /* borrowed, n_fields paths */
    size_t n_fields;           /* 1..4 */
    bool global;               /* unique across all tenants (e.g. tenant hostnames) */
} tsr_store_unique_t;

/* A collection declaration. Everything is borrowed for the duration of tsr_store_create only.
 * Schema: the store records per collection the version expanded through and the version
 * contracted through; at create it runs, in order and each exactly once per store, every
 * expand step with to_version <= version and every contract step with to_version <=
 * contracted. A new collection starts at its declared versions without running anything. */
typedef struct {
    const char *name;           /* [a-z][a-z0-9_]*, at most TSR_STORE_NAME_MAX */
    const char *const *indexes; /* field paths that list may filter and sort on */
    size_t n_indexes;           /* <= 16 */
    const tsr_store_unique_t *uniques;
    size_t n_uniques;    /* <= 8 */
    unsigned version;    /* schema version expanded through; 0 means 1 */
    unsigned contracted; /* contract steps run through this version (<= version); 0: none */
    const tsr_store_migration_t *migrations;
    size_t n_migrations;
} tsr_store_collection_t;

typedef struct {
    const tsr_store_collection_t *collections; /* borrowed during create */
    size_t n_collections;
    /* HMAC-SHA256 key for list cursors (copied). NULL: a random 32-byte key kept in the store
     * itself, created on first use, so every process sharing the store accepts each other's
     * cursors. */
    const unsigned char *cursor_key;
    size_t cursor_key_len;
    /* SQLite: how long a write waits for another writer before TSR_EUNAVAILABLE; 0: knob
     * TSR_STORE_BUSY_TIMEOUT_MS. Ignored by MongoDB. */
    int busy_timeout_ms;
} tsr_store_opts_t;

/* Open (creating if needed) the store at uri and prepare the declared collections (tables or
 * collections, indexes, migrations). uri:
 *   "sqlite:PATH[?busy_timeout_ms=N&max_page_count=N&synchronous=full|normal]"
 *       one database file (directories are not created), WAL, BEGIN IMMEDIATE writes; safe
 *       with several processes on one machine. max_page_count is a test hook (SQLITE_FULL).
 *   "mongodb://..." / "mongodb+srv://..." when the MongoDB backend is built in.
 * opts may be NULL (no collections). Returns TSR_EINVAL for a bad uri or declaration,
 * TSR_EUNSUPPORTED for a scheme not built in, TSR_EUNAVAILABLE when the database cannot be
 * reached or is locked, TSR_ECONFLICT when stored documents violate a newly declared unique
 * constraint, a migration's code when one failed. *out: free with
 * tsr_store_destroy. Thread safe after creation (SQLite: calls are serialised per handle; open
 * one handle per process). */
tsr_err_t tsr_store_create(const char *uri, const tsr_store_opts_t *opts, tsr_store_t **out,
                           tsr_error_t *err);

/* As tsr_store_create with the uri from knob TSR_STORE_URI, or when it is empty
 * "sqlite:$TSR_STATE_DIR/store.db" (creating $TSR_STATE_DIR if missing). */
tsr_err_t tsr_store_create_default(const tsr_store_opts_t *opts, tsr_store_t **out,
                                   tsr_error_t *err);

/* Close and free. Must not be called inside a transaction. NULL: no-op. */
void tsr_store_destroy(tsr_store_t *s);

/* "sqlite" or "mongodb". Static storage. */
const char *tsr_store_backend_name(const tsr_store_t *s);

/* TSR_OK when the database answers (for /health/ready), else TSR_EUNAVAILABLE. */
tsr_err_t tsr_store_ping(tsr_store_t *s, tsr_error_t *err);

/* ---- events for the outbox --------------------------------------------------------------- */

/* One event to commit with a document change, or one outbox row handed out by
 * tsr_store_platform_outbox_fetch. As input every pointer is borrowed; as output every string
 * is owned by the row (free with tsr_store_outbox_rows_free). */
typedef struct {
    const char *id;      /* event id, unique; also the outbox row id (<= TSR_STORE_ID_MAX) */
    const char *topic;   /* destination topic */
    const char *key;     /* message key: the entity id */
    const char *payload; /* formatted CloudEvents JSON envelope */
    size_t payload_len;  /* bytes */
} tsr_store_event_t;

/* ---- documents --------------------------------------------------------------------------- */

/* Documents are JSON objects. The store owns three members and overwrites whatever the caller
 * put there: "id" (string), "tenantId" (string, always the tenant argument, never the body's)
 * and "version" (integer, 1 on create, +1 on every replace/patch). Top-level member names
 * starting with '_' are reserved for backends (TSR_EINVAL). Every call below takes the tenant
 * of the caller's principal; a document of another tenant is answered exactly as a missing one
 * (TSR_ENOTFOUND), and creating an id another tenant uses is allowed.
 *
 * events/n_events (may be NULL/0): outbox rows committed atomically with the change and only
 * if it commits (SQLite: one transaction; MongoDB: in the same single-document write). */

/* Create doc (borrowed; not modified) in collection with id (NULL: a new random 24-hex id).
 * TSR_ECONFLICT when (tenant, id) exists or a unique constraint is violated; TSR_EINVAL for a
 * bad argument or a non-object doc; TSR_ETOOBIG over TSR_STORE_DOC_MAX; TSR_EUNAVAILABLE when
 * the database is busy, full or unreachable (nothing written). *out (may be NULL): the stored
 * document, returned-owned (json_decref). */
tsr_err_t tsr_store_doc_create(tsr_store_t *s, const char *tenant, const char *collection,
                               const char *id, const json_t *doc, const tsr_store_event_t *events,
                               size_t n_events, json_t **out, tsr_error_t *err);

/* Fetch one document. *out returned-owned (json_decref). TSR_ENOTFOUND when absent or another
 * tenant's. */
tsr_err_t tsr_store_doc_get(tsr_store_t *s, const char *tenant, const char *collection,
                            const char *id, json_t **out, tsr_error_t *err);

/* Replace the whole document when its stored version equals if_version (>= 1); if_version 0
 * replaces whatever version is stored (last writer wins: use only for data nobody else edits).
 * TSR_ENOTFOUND when absent, TSR_ECONFLICT on a version mismatch or a unique violation. *out
 * (may be NULL): the stored document with its new version, returned-owned. */
tsr_err_t tsr_store_doc_replace(tsr_store_t *s, const char *tenant, const char *collection,
                                const char *id, int64_t if_version, const json_t *doc,
                                const tsr_store_event_t *events, size_t n_events, json_t **out,
                                tsr_error_t *err);

/* Apply an RFC 7386 JSON merge patch (borrowed object; null members remove) to the stored
 * document, under the same version rule as replace (if_version 0: retried internally on
 * concurrent changes, so no update is lost). Owned members in the patch are ignored. */
tsr_err_t tsr_store_doc_patch(tsr_store_t *s, const char *tenant, const char *collection,
                              const char *id, int64_t if_version, const json_t *patch,
                              const tsr_store_event_t *events, size_t n_events, json_t **out,
                              tsr_error_t *err);

/* Delete when the stored version equals if_version (0: any). TSR_ENOTFOUND when absent,
 * TSR_ECONFLICT on a version mismatch. */
tsr_err_t tsr_store_doc_del(tsr_store_t *s, const char *tenant, const char *collection,
                            const char *id, int64_t if_version, const tsr_store_event_t *events,
                            size_t n_events, tsr_error_t *err);

/* ---- listing ----------------------------------------------------------------------------- */

typedef enum {
    TSR_STORE_EQ = 0,
    TSR_STORE_LT,
    TSR_STORE_LE,
    TSR_STORE_GT,
    TSR_STORE_GE,
} tsr_store_op_t;

/* field: "id" or a declared index; value: borrowed JSON string, number or boolean. */
typedef struct {
    const char *field;
    tsr_store_op_t op;
    const json_t *value;
} tsr_store_filter_t;

/* All filters must hold (AND). Results are ordered by (sort value, tenantId, id), all ascending
 * or all descending; a missing sort field orders before any value when ascending. */
typedef struct {
    const tsr_store_filter_t *filters; /* borrowed, may be NULL */
    size_t n_filters;                  /* <= 8 */
    const char *sort;                  /* "id" or a declared index; NULL: "id" */
    bool descending;
    size_t limit;       /* page size; 0: TSR_STORE_LIST_DEFAULT; capped at TSR_STORE_LIST_MAX */
    const char *cursor; /* NULL for the first page, else a previous page's next_cursor */
} tsr_store_query_t;

typedef struct {
    json_t *items;     /* JSON array of documents, owned */
    char *next_cursor; /* owned; NULL on the last page */
} tsr_store_page_t;

/* One page of the tenant's documents matching q. The cursor is opaque and tamper-evident
 * (HMAC-SHA256 over the position, the tenant, the collection and the query's filters and
 * sort): a cursor that was forged, garbled, truncated or made for another tenant, collection
 * or query answers TSR_EINVAL (a 400). TSR_EINVAL too for filtering or sorting on a field
 * that is not declared. page: caller's storage, filled on TSR_OK, free with
 * tsr_store_page_cleanup. */
tsr_err_t tsr_store_doc_list(tsr_store_t *s, const char *tenant, const char *collection,
                             const tsr_store_query_t *q, tsr_store_page_t *page, tsr_error_t *err);

/* PLATFORM ADMIN ONLY: as tsr_store_doc_list over every tenant (each item carries its
 * "tenantId"). For migrations, tenant deletion and platform-admin endpoints; never reachable
 * from a tenant's request. */
tsr_err_t tsr_store_platform_doc_list(tsr_store_t *s, const char *collection,
                                      const tsr_store_query_t *q, tsr_store_page_t *page,
                                      tsr_error_t *err);

/* Free what page holds and zero it. NULL: no-op. */
void tsr_store_page_cleanup(tsr_store_page_t *page);

/* ---- transactions ------------------------------------------------------------------------ */

/* Begin a transaction and hand out *tx, a view of s: every call made on tx belongs to the
 * transaction and becomes visible together at tsr_store_txn_commit, or not at all after
 * tsr_store_txn_rollback (either ends and frees tx). Use tx only from the thread that began
 * it. SQLite: BEGIN IMMEDIATE, so the writer lock is held until the end; other threads using s
 * wait (calls on s from the thread holding tx join the transaction). MongoDB (no multi-document
 * transactions): writes through tx apply at once and rollback cannot undo them;
 * tsr_store_txn_is_atomic says which. */
tsr_err_t tsr_store_txn_begin(tsr_store_t *s, tsr_store_t **tx, tsr_error_t *err);
tsr_err_t tsr_store_txn_commit(tsr_store_t *tx, tsr_error_t *err);
void tsr_store_txn_rollback(tsr_store_t *tx);
bool tsr_store_txn_is_atomic(const tsr_store_t *s);

/* ---- outbox (read by the events relay) --------------------------------------------------- */

/* PLATFORM: up to limit unsent outbox rows of every tenant, oldest first (commit order).
 * *rows: returned-owned array, free with tsr_store_outbox_rows_free; *n may be 0. */
tsr_err_t tsr_store_platform_outbox_fetch(tsr_store_t *s, size_t limit, tsr_store_event_t **rows,
                                          size_t *n, tsr_error_t *err);
/* PLATFORM: mark rows sent by id (unknown ids are ignored). */
tsr_err_t tsr_store_platform_outbox_mark_sent(tsr_store_t *s, const char *const *ids, size_t n,
                                              tsr_error_t *err);
void tsr_store_outbox_rows_free(tsr_store_event_t *rows, size_t n);

/* ---- processed-event ids (consumers) ------------------------------------------------------ */

/* The effect of one event, written through txn (a tsr_store_t view, see transactions). */
typedef tsr_err_t (*tsr_store_effect_cb)(void *opaque, tsr_store_t *txn, tsr_error_t *err);

/* Apply effect once per (group, event_id). If already recorded: *applied = false, TSR_OK,
 * effect not called. Otherwise run effect and, only if it returns TSR_OK, record the id;
 * *applied = true. Atomic backends do both in one transaction (effect failure rolls back
 * both); others record the id only after the effect returned. An effect returning
 * TSR_EUNSUPPORTED commits nothing and is returned as is (the caller skips the event). */
tsr_err_t tsr_store_apply_once(tsr_store_t *s, const char *group, const char *event_id,
                               tsr_store_effect_cb effect, void *opaque, bool *applied,
                               tsr_error_t *err);

/* ---- leases ------------------------------------------------------------------------------ */

/* A named lease (leader election, run leases). token is the fencing token: it increases by at
 * least 1 every time the lease changes hands (acquire after release or expiry) and stays the
 * same across renewals by the holder, so a resource can refuse writes carrying an older token.
 * Expiry uses the wall clock of the caller's machine: keep clocks in sync (NTP) and ttl well
 * above the skew. Caller's storage. */
typedef struct {
    char name[TSR_STORE_LEASE_NAME_MAX + 1];
    char owner[TSR_STORE_LEASE_NAME_MAX + 1];
    uint64_t token;     /* fencing token, >= 1 */
    int64_t expires_ms; /* wall clock, ms since the epoch */
    int64_t version;    /* internal: the lease document's version */
} tsr_store_lease_t;

/* Take lease name for owner for ttl_ms (>= 1) if it is free, expired or already owner's (then
 * it is renewed, keeping the token). TSR_ECONFLICT when someone else holds it unexpired
 * (*out then describes the holder). */
tsr_err_t tsr_store_lease_acquire(tsr_store_t *s, const char *name, const char *owner,
                                  int64_t ttl_ms, tsr_store_lease_t *out, tsr_error_t *err);

/* Extend a held lease to now + ttl_ms. TSR_ECONFLICT when it was lost (expired and taken, or
 * released): stop acting as holder. lease is updated on success. */
tsr_err_t tsr_store_lease_renew(tsr_store_t *s, tsr_store_lease_t *lease, int64_t ttl_ms,
                                tsr_error_t *err);

/* Give the lease up (no-op TSR_OK when it was already lost). The token is kept for the next
 * holder to increment. */
tsr_err_t tsr_store_lease_release(tsr_store_t *s, const tsr_store_lease_t *lease, tsr_error_t *err);

/* Current state of lease name (owner "" when free). TSR_ENOTFOUND when never acquired. */
tsr_err_t tsr_store_lease_get(tsr_store_t *s, const char *name, tsr_store_lease_t *out,
                              tsr_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
