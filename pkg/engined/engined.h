/*
 * pkg/engined: the engine service's glue between the QIX protocol (pkg/qix) and the
 * associative engine (pkg/engine). It keeps apps (script, properties, persistent objects and
 * the loaded data model, shared by every session of the app), serves the Doc, GenericObject
 * and Field handle types, and decides tenancy: an app belongs to one tenant, and another
 * tenant's app id answers exactly like a missing one. Layer: service above qix and engine.
 */
#ifndef TSR_ENGINED_H
#define TSR_ENGINED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core.h"
#include "events.h"
#include "httpd.h"
#include "qix.h"

typedef struct tsr_engined tsr_engined_t;

/* The version of an app's data model file: the fencing token of the reload run that wrote it
 * (an interactive DoReload keeps the token it found), a sequence number every write bumps, and
 * the write time (RFC 3339). {0, 0}: no model file yet. */
typedef struct {
    uint64_t token;
    uint64_t seq;
    char time[32];
} tsr_engined_version_t;

/* Where app content lives: one JSON document per app (id, tenantId, title, script,
 * properties, persistent objects, reload facts). A small table of function pointers so the
 * file implementation can move to pkg/blob (sealed with the tenant's key) without touching
 * the rest. Thread safe. */
typedef struct {
    void *ud;
    /* The app's document (returned-owned) when app_id exists for tenant_id; TSR_ENOTFOUND
     * when it does not exist or belongs to another tenant (indistinguishable on purpose). */
    tsr_err_t (*get)(void *ud, const char *tenant_id, const char *app_id, json_t **doc,
                     tsr_error_t *err);
    /* Create app_id for tenant_id with doc (borrowed): TSR_ECONFLICT when the id exists in
     * any tenant (ids are global: the ingress routes by them). */
    tsr_err_t (*create)(void *ud, const char *tenant_id, const char *app_id, const json_t *doc,
                        tsr_error_t *err);
    /* Replace the document of an existing app (borrowed), atomically. */
    tsr_err_t (*put)(void *ud, const char *tenant_id, const char *app_id, const json_t *doc,
                     tsr_error_t *err);
    /* The app's data model file (pkg/engine's app file format), written after a reload as a
     * new versioned file, then made current by switching the app's version pointer. fence
     * NULL (interactive DoReload): the pointer keeps its token. fence set (a reload run's
     * fencing token): the switch is refused with TSR_ECONFLICT unless *fence is greater than
     * the stored token, so a stale run never replaces a newer run's model. *ver (may be NULL):
     * the version written. get answers TSR_ENOTFOUND when there is none; *buf returned-owned
     * (free()); *ver (may be NULL): the version read. */
    tsr_err_t (*put_model)(void *ud, const char *tenant_id, const char *app_id, const uint8_t *buf,
                           size_t n, const uint64_t *fence, tsr_engined_version_t *ver,
                           tsr_error_t *err);
    tsr_err_t (*get_model)(void *ud, const char *tenant_id, const char *app_id, uint8_t **buf,
                           size_t *n, tsr_engined_version_t *ver, tsr_error_t *err);
    /* The current model version ({0, 0} when there is no model file). Cheap: serving replicas
     * poll it to swap in a model another process wrote. */
    tsr_err_t (*version)(void *ud, const char *tenant_id, const char *app_id,
                         tsr_engined_version_t *ver, tsr_error_t *err);
    /* The tenant's app ids (returned-owned JSON array of strings). */
    tsr_err_t (*list)(void *ud, const char *tenant_id, json_t **ids, tsr_error_t *err);
    void (*close)(void *ud);
} tsr_engined_appstore_t;

/* The file implementation: <root>/<appId>/app.json (written to a temporary file, fsynced,
 * then renamed), model files model-<token>-<seq>.tsra and the version pointer model.ptr
 * (switched by rename under an flock of model.lock; the previous model file is removed
 * after the switch; a pre-pointer model.tsra is still read). The app's directory is created with
 * mkdir, which is what makes an id belong to one tenant. root is created (0700) when missing. */
tsr_err_t tsr_engined_appstore_files_open(const char *root, tsr_engined_appstore_t *out,
                                          tsr_error_t *err);

/* Who is asking: the ingress's principal headers (borrowed strings; roles may be NULL). */
typedef struct {
    const char *tenant_id;
    const char *user_id;
    const char *roles; /* "TenantAdmin,User" */
    const char *token; /* a platform JWT naming this principal for spaces, or NULL */
} tsr_engined_principal_t;

/* Actions on an app (bit set), as spaces names them. */
enum {
    TSR_ENGINED_READ = 1u << 0,
    TSR_ENGINED_EDIT = 1u << 1,
    TSR_ENGINED_RELOAD = 1u << 2,
    TSR_ENGINED_EXPORT = 1u << 3,
    TSR_ENGINED_ALL = 0xFu
};

/* Access decisions for apps (spaces keeps app records and roles). Thread safe. */
typedef struct {
    void *ud;
    /* The caller's actions on app_id: TSR_ENOTFOUND when the app does not exist in the
     * caller's tenant (or is invisible to the caller), TSR_OK with *actions (0: the app exists
     * but the caller may do nothing: close 4203), TSR_EUNAVAILABLE when the decision cannot be
     * made. */
    tsr_err_t (*decide)(void *ud, const tsr_engined_principal_t *who, const char *app_id,
                        unsigned *actions, tsr_error_t *err);
    void (*close)(void *ud);
    /* Forget kept answers of tenant_id: of app_id only, or all of the tenant when app_id is
     * NULL (every tenant's when tenant_id is NULL); returns how many were dropped. NULL: the
     * hook keeps nothing. Thread safe. */
    size_t (*invalidate)(void *ud, const char *tenant_id, const char *app_id);
} tsr_engined_access_t;

/* Decisions from spaces: GET <base_url>/internal/v1/access?resource=app:<id> with the
 * principal headers (libcurl, TSR_ENGINE_ACCESS_TIMEOUT_MS), cached (below). base_url is
 * copied. TSR_EINVAL for a bad URL or knob. */
tsr_err_t tsr_engined_access_spaces_open(const char *base_url, tsr_engined_access_t *out,
                                         tsr_error_t *err);

/* Wrap inner (taken: closed with the result) with a cache of its grants: a TSR_OK answer with
 * some action is kept for ttl_ms per (tenant, user, roles, app); concurrent identical
 * questions wait for the one call in flight and share its answer (whatever it is). Refusals
 * (TSR_ENOTFOUND, no actions) and failures (TSR_EUNAVAILABLE...) are never kept. ttl_ms 0:
 * nothing kept, concurrent calls still shared. max_entries 0: 10000 (beyond: expired answers
 * are dropped, then nothing new is kept). Thread safe. tsr_engined_access_spaces_open returns
 * spaces' decisions wrapped in it, with TSR_ENGINE_ACCESS_CACHE_MS and each call to spaces
 * bounded by TSR_ENGINE_ACCESS_TIMEOUT_MS. */
tsr_err_t tsr_engined_access_cached(tsr_engined_access_t inner, uint64_t ttl_ms, size_t max_entries,
                                    tsr_engined_access_t *out, tsr_error_t *err);

typedef struct {
    tsr_engined_appstore_t store; /* taken: closed by tsr_engined_destroy */
    /* Taken. decide NULL: the app store alone decides (an app belongs to the tenant that
     * created it; every action allowed). Set: apps exist when spaces says so, and the engine
     * creates their content on first open. */
    tsr_engined_access_t access;
    /* Folder holding each tenant's data files: lib://DataFiles/<name> resolves to
     * <data_root>/<tenantId>/<name>. Copied. */
    const char *data_root;
    /* Without an access hook only: opening an unknown app id creates it for the caller's
     * tenant. Off: unknown ids close 4204. */
    bool create_on_open;
    /* Bytes of computed hypercubes and list objects kept for reuse across sessions with the
     * same selection state (pkg/engine's result cache); 0: no cache. */
    size_t cache_bytes;
    /* Bytes of data models kept in memory (estimated); beyond it the models of apps without
     * open sessions are unloaded, least recently used first (they load again from their model
     * file on the next open). 0: no limit. */
    size_t memory_bytes;
    /* Serving replicas: every watch_ms, each loaded app's model version is compared with the
     * store's; a newer one (a reloader's or another replica's reload) is swapped in and its
     * sessions get "change" for every handle. 0: no watcher (next open only). */
    int watch_ms;
    /* Spaces base URL for data files (GET /internal/v1/data-files/content) in
     * tsr_engined_reload_app; NULL: the engine's data folder only. Copied. */
    const char *spaces_url;
    /* App import and export (tsr_engined_routes): a folder for uploads in progress and
     * temporary downloads, shared by the replicas; NULL: no import/export routes. Copied. */
    const char *transfer_root;
    uint64_t import_max_bytes; /* largest app file POST /api/v1/apps/import accepts (413) */
    uint64_t export_ttl_ms;    /* how long an export's temporary download stays (ms) */
} tsr_engined_opts_t;

/* Create the service state. *out is returned-owned: tsr_engined_destroy after every session
 * ended (after the httpd server stopped). */
tsr_err_t tsr_engined_create(const tsr_engined_opts_t *opts, tsr_engined_t **out, tsr_error_t *err);
void tsr_engined_destroy(tsr_engined_t *e); /* NULL: no-op */

/* The QIX backend (check_app, open_doc, list_docs) over e; e must outlive every session. */
tsr_qix_backend_t tsr_engined_backend(tsr_engined_t *e);

/* The session user id the backend expects: "<tenantId>/<userId>" (returned-owned, free()).
 * TSR_EUNAUTHENTICATED when either is empty or the tenant id is not [A-Za-z0-9._-]{1,128}. */
tsr_err_t tsr_engined_principal_format(const char *tenant_id, const char *user_id, char **out,
                                       tsr_error_t *err);

/* tsr_qix_auth_fn: the principal from the X-Tsr-Tenant-Id and X-Tsr-User-Id headers, which
 * pkg/auth's httpd hook rewrote from the verified platform token before the upgrade route ran
 * (only a development run with TSR_AUTH_TRUST_HEADERS takes them as the ingress sent them). Missing
 * headers: TSR_EUNAUTHENTICATED (401 before the upgrade). ud: the tsr_engined_t (it remembers the
 * caller's X-Tsr-Roles for access decisions) or NULL. */
tsr_err_t tsr_engined_authenticate(void *ud, tsr_req_t *req, char **user_id, tsr_error_t *err);

/* Apps whose model is in memory and the estimated bytes they hold (metrics, tests). Thread
 * safe. */
void tsr_engined_memory(tsr_engined_t *e, size_t *apps_loaded, size_t *bytes);

/* Register the engine's REST routes: GET /api/v1/apps/{appId}/data/metadata (Qlik's data
 * model metadata: tables, fields, rows, estimated bytes), with the same principal headers and
 * access decisions as the WebSocket (404 for a missing or foreign app, 403 without read).
 * With a transfer_root also Qlik's app import and export: POST /api/v1/apps/import (the app
 * file as the body, streamed to a file, validated whole before anything is created; the
 * record is created in spaces), POST /api/v1/apps/{appId}/export (export needed; 201 +
 * Location) and GET /api/v1/temp-contents/{id} (the caller's own download, streamed). Always
 * POST /internal/v1/apps/{appId}/copy (spaces' copy and publish: tsr_engined_app_copy). */
tsr_err_t tsr_engined_routes(tsr_httpd_t *h, tsr_engined_t *e, tsr_error_t *err);
/* The i-th REST route tsr_engined_routes may register (false past the end): the contract
 * test compares them with api/openapi/engine.yaml. */
bool tsr_engined_route_at(size_t i, const char **method, const char **pattern);

/* Create an app for a tenant (title may be NULL). TSR_ECONFLICT when the id is taken. */
tsr_err_t tsr_engined_app_create(tsr_engined_t *e, const char *tenant_id, const char *app_id,
                                 const char *title, tsr_error_t *err);

/* Give the content of src_id (document: script, properties, objects, variables, state names;
 * the current model version) to the new app dst_id, both in tenant_id (spaces' copy and
 * publish; spaces decided the access). Bookmarks: public ones (published or approved), and on a
 * copy (publish false) also user_id's own; other users' private bookmarks stay behind. title
 * (may be NULL: the source's) names the copy. The model file is hard-linked (model files are
 * immutable), else copied, and becomes dst's first version. *has_data (may be NULL): a model
 * was copied (a source never reloaded has none, and neither has its copy). TSR_ENOTFOUND: no
 * src_id in tenant_id (another tenant's is the same); TSR_ECONFLICT: dst_id exists; TSR_EINVAL:
 * a bad dst_id. On any error nothing of dst_id is left. Thread safe. */
tsr_err_t tsr_engined_app_copy(tsr_engined_t *e, const char *tenant_id, const char *user_id,
                               const char *src_id, const char *dst_id, const char *title,
                               bool publish, bool *has_data, tsr_error_t *err);

/* A reload run (the engine's reloader role, over pkg/reload's worker). */
typedef struct {
    uint64_t token; /* the run's fencing token: the model pointer switch needs a greater one */
    /* Polled before the switch: true (cancel, lost lease, time limit) abandons the run. */
    bool (*should_stop)(void *ud);
    void *ud;
    /* Called just before the pointer switch (test faultpoint); NULL: none. */
    void (*before_switch)(void *ud);
    /* Live log (NULL: none): whole lines as they happen (data files staged, each statement
     * as it starts, rows per table, "still running" lines for a long statement at growing
     * intervals from progress_ms (0: 1 s) to 30 s, the model saved, the error), on the
     * reloading thread or the progress thread, never both at once. The returned *log holds the
     * same text. */
    void (*on_log)(void *ud, const char *text, size_t len);
    int64_t progress_ms; /* first "still running" line of a statement; 0: 1000 (tests: less) */
} tsr_engined_reload_opts_t;

/* Reload app_id of tenant_id from the stored document (read fresh: the serving replicas edit
 * it): data files named lib://<conn>/<name> in the script are fetched from spaces (the app's
 * space, or the owner's personal space) into a private run folder; a name spaces does not
 * have falls back to the engine's data folder <data_root>/<tenant>/<name>. The script runs
 * through pkg/engine, the model file is written as a new version and the app's version
 * pointer switched only when o->token is greater than the stored token (TSR_ECONFLICT: a
 * newer run won). An app spaces knows but the engine never opened gets its content created
 * (empty script). *log (returned-owned, may be NULL on early errors): the reload log. */
tsr_err_t tsr_engined_reload_app(tsr_engined_t *e, const char *tenant_id, const char *app_id,
                                 const tsr_engined_reload_opts_t *o, char **log, tsr_error_t *err);

/* ---- access invalidation from spaces' events (access_events.c) ---- */

typedef struct tsr_engined_access_events tsr_engined_access_events_t;

/* Apply one event to an access hook's kept answers (a->invalidate; none: nothing): on
 * tessera.apps an app event (com.tessera.v1.app.*) drops the entries of that app (the event's
 * subject) in the event's tenant; a space event (com.tessera.v1.space.*, space.member.*) drops
 * every entry of the event's tenant (the answer does not say which space an app is in), and so
 * do identity events that change who belongs to what (group.*, user.{updated,deleted},
 * tenant.*, role.*). Anything else (data files, reloads) drops nothing. Never touches another
 * tenant's entries. Returns how many entries were dropped. */
size_t tsr_engined_access_on_event(const tsr_engined_access_t *a, const tsr_event_t *ev);

/* Forget e's kept access answers of tenant_id (of app_id only when not NULL). An empty
 * tenant_id drops nothing. */
size_t tsr_engined_access_invalidate(tsr_engined_t *e, const char *tenant_id, const char *app_id);

/* App app_id of tenant_id was deleted (spaces' com.tessera.v1.app.deleted): ask every session
 * that opened it in this process to close with 4204 (what clients see for an unknown app; sent
 * by each session's own thread after the call in flight) and drop the app's loaded model (the
 * sessions' references keep it until they end; new opens are refused by the access check). The
 * app's folder is tombstoned (tsr_engined_app_tombstone) and removed by the sweep later.
 * Another tenant's app of the same id is never touched. Returns how many sessions were asked
 * to close. Thread safe. */
size_t tsr_engined_app_deleted(tsr_engined_t *e, const char *tenant_id, const char *app_id);

/* Deleted apps on disk (the file store; other stores: no-ops). tsr_engined_app_tombstone: when
 * tenant_id owns the app's folder (its document's tenantId), write a tombstone there (atomic,
 * under the version switch's flock; a second call keeps the first); another tenant's or a
 * missing app: TSR_ENOTFOUND, nothing written. A tombstoned app is not found by opens, saves and
 * reloads, and no new model version is switched in. tsr_engined_apps_sweep removes the folders
 * tombstoned at least grace_ms ago (rename to a unique trash name, then delete: racing sweepers
 * are fine) and returns how many this call removed. tsr_engined_sweep_old_files removes the
 * regular files in dir older than max_age_ms (returns how many); tsr_engined_transfer_sweep
 * does it for the import uploads under the transfer root. The sweeper runs
 * tsr_engined_apps_sweep on a thread every grace/2 (1 s to 60 s) until stopped. Thread safe. */
typedef struct tsr_engined_sweeper tsr_engined_sweeper_t;
tsr_err_t tsr_engined_app_tombstone(tsr_engined_t *e, const char *tenant_id, const char *app_id,
                                    tsr_error_t *err);
bool tsr_engined_app_tombstoned(const tsr_engined_t *e, const char *app_id);
size_t tsr_engined_apps_sweep(tsr_engined_t *e, int64_t grace_ms);
size_t tsr_engined_sweep_old_files(const char *dir, int64_t max_age_ms);
size_t tsr_engined_transfer_sweep(tsr_engined_t *e, int64_t max_age_ms);
tsr_err_t tsr_engined_sweeper_start(tsr_engined_t *e, int64_t grace_ms, tsr_engined_sweeper_t **out,
                                    tsr_error_t *err);
void tsr_engined_sweeper_stop(tsr_engined_sweeper_t *s);

/* What one spaces event does to e: tsr_engined_access_on_event on e's access hook, then, for
 * com.tessera.v1.app.deleted, tsr_engined_app_deleted. Returns the answers dropped. */
size_t tsr_engined_on_event(tsr_engined_t *e, const tsr_event_t *ev);

/* Consume tessera.spaces, tessera.apps and tessera.identity on a background thread in a consumer
 * group of this process alone ("engine-access-<member>-<random>", starting at the topics' end:
 * every replica sees every event) and apply each event to e with tsr_engined_on_event. member names
 * the replica in the group id (NULL: host and pid). Once the group assigned the partitions every
 * kept answer is dropped (one made before may have missed an event). e must outlive it. TSR_EINVAL
 * for bad arguments; *out: tsr_engined_access_events_stop. */
tsr_err_t tsr_engined_access_events_start(tsr_engined_t *e, const char *bootstrap,
                                          const char *member, tsr_engined_access_events_t **out,
                                          tsr_error_t *err);
/* Whether the consumer holds its partitions (events from now on are seen). Thread safe. */
bool tsr_engined_access_events_ready(tsr_engined_access_events_t *k);
/* Stop the thread, leave the group, free. NULL: no-op. */
void tsr_engined_access_events_stop(tsr_engined_access_events_t *k);

/* Create the service from the knobs: app documents under $TSR_STATE_DIR/engine/apps, data
 * files under $TSR_STATE_DIR/engine/datafiles/<tenantId>, access decisions from spaces at
 * TSR_ENGINE_SPACES_URL (empty: http://127.0.0.1:(TSR_PORT+2); off: none),
 * TSR_ENGINE_CREATE_ON_OPEN, TSR_ENGINE_CACHE_BYTES, TSR_ENGINE_MEMORY_BYTES. */
tsr_err_t tsr_engined_create_from_config(tsr_engined_t **out, tsr_error_t *err);

/* A platform JWT naming (tenant, user, roles, groups) (comma lists; may be NULL) for the
 * engine's own calls to spaces; *jwt returned-owned (free). pkg/auth's tsr_auth_tokens_cb. */
typedef tsr_err_t (*tsr_engined_token_fn)(void *ud, const char *tenant, const char *user,
                                          const char *roles, const char *groups, char **jwt,
                                          tsr_error_t *err);

/* Where the engine gets tokens for its calls to spaces (access decisions during a QIX session,
 * the reloader's data files): set once before serving; fn NULL (the default): no token is
 * sent, only the principal headers (spaces then trusts headers: development only). */
void tsr_engined_set_token_source(tsr_engined_t *e, tsr_engined_token_fn fn, void *ud);

#endif
