/*
 * pkg/spaces internals shared by the module's files: the service struct, the caller, access
 * computation with a per-request cache, filtered listing over store pages, audit events and
 * the JSON views. Nothing here is visible outside pkg/spaces.
 */
#ifndef TSR_SPACES_INT_H
#define TSR_SPACES_INT_H

#include <jansson.h>

#include "crypto.h"
#include "events.h"
#include "spaces.h"

/* Collections. */
#define TSR_SP__C_SPACES "spaces"
#define TSR_SP__C_ASSIGN "space_assignments"
#define TSR_SP__C_ITEMS "items"
#define TSR_SP__C_DEKS "tenant_deks" /* wrapped tenant DEKs, shared with other services */

/* Topics (pkg/events/topics.def). */
#define TSR_SP__T_SPACES "tessera.spaces"
#define TSR_SP__T_APPS "tessera.apps"
#define TSR_SP__SOURCE "/tessera/spaces"

#define TSR_SP__NAME_MAX 256        /* bytes of a space, app or file name */
#define TSR_SP__DESC_MAX 4096       /* bytes of a description */
#define TSR_SP__DEFAULT_LIMIT 10    /* page size when the query has no limit */
#define TSR_SP__MAX_LIMIT 100       /* largest page, as Qlik's */
#define TSR_SP__SCAN_MAX 5000       /* documents one list request examines at most */
#define TSR_SP__ACL_CACHE 32        /* spaces whose access one request remembers */
#define TSR_SP__MAX_ROLES 8         /* roles in one assignment */
#define TSR_SP__MAX_GROUPS 100      /* group ids read from X-Tsr-Groups (identity's cap too) */
#define TSR_SP__PERSONAL "personal" /* scope of items in their owner's personal space */

typedef struct tsr_sp__keycache tsr_sp__keycache_t;

struct tsr_spaces {
    tsr_store_t *store;
    tsr_blob_store_t *blobs;
    const tsr_kek_set_t *kek; /* NULL: data files are stored unsealed */
    tsr_sp__keycache_t *keys;
    uint64_t datafile_max;        /* bytes */
    size_t json_max;              /* bytes */
    char *engine_url;             /* app content on copy/publish (apps_content.c); NULL: none */
    tsr_spaces_token_fn token_fn; /* service tokens for the engine copy call; NULL: none */
    void *token_ud;
    char *upload_dir; /* data-file upload bodies and download plaintext (temporary files) */
};

/* One remembered access decision about a space. */
typedef struct {
    char space_id[TSR_STORE_ID_MAX + 1];
    bool found;
    char type[16];     /* "shared" | "managed" | "data" */
    bool owner;        /* the caller owns the space */
    unsigned role_set; /* bit i: tsr_spaces_roles()[i] assigned to the caller or its groups */
} tsr_sp__acl_entry_t;

/* The caller of one request. Strings live in the request's arena. */
typedef struct {
    tsr_spaces_t *s;
    tsr_req_t *req;
    const char *tenant;
    const char *user;
    bool admin; /* TenantAdmin: every action on everything in the tenant */
    /* The caller's group ids from X-Tsr-Groups (shaped like ids, at most TSR_SP__MAX_GROUPS;
     * the arena's): assignments to them count as the caller's own. */
    const char **groups;
    size_t n_groups;
    tsr_sp__acl_entry_t acl[TSR_SP__ACL_CACHE];
    size_t n_acl;
} tsr_sp__ctx_t;

/* Resolve the caller (set by tsr_spaces_principal) into c. TSR_EUNAUTHENTICATED without one. */
tsr_err_t tsr_sp__ctx_init(tsr_sp__ctx_t *c, tsr_spaces_t *s, tsr_req_t *req, tsr_error_t *err);

/* Whether group id g is one of the caller's groups. */
bool tsr_sp__in_groups(const tsr_sp__ctx_t *c, const char *g);
/* The caller's standing in space_id (cached per request): its own assignment united with
 * those of its groups. *e is NULL-free; e->found false when the space does not exist in the
 * tenant. */
tsr_err_t tsr_sp__acl_space(tsr_sp__ctx_t *c, const char *space_id, const tsr_sp__acl_entry_t **e,
                            tsr_error_t *err);
/* An entry from a space document and the caller's roles in it (JSON array, may be NULL). */
void tsr_sp__acl_fill(const tsr_sp__ctx_t *c, const json_t *space, const json_t *roles,
                      tsr_sp__acl_entry_t *e);
/* Actions on a space (its document) for the caller. */
unsigned tsr_sp__space_actions(tsr_sp__ctx_t *c, const json_t *space, tsr_error_t *err);
/* Actions on an item (app or data file document) for the caller; 0 when unknown space. */
tsr_err_t tsr_sp__item_actions(tsr_sp__ctx_t *c, const json_t *item, unsigned *actions,
                               tsr_error_t *err);
/* Actions from a cached entry for resource kind res (owner/admin: all). */
unsigned tsr_sp__acl_actions(const tsr_sp__ctx_t *c, const tsr_sp__acl_entry_t *e,
                             tsr_spaces_res_t res);
/* The caller's roles in the space as a JSON array of names (returned-owned). */
json_t *tsr_sp__acl_roles_json(const tsr_sp__acl_entry_t *e);

/* May the caller create content (apps, data files) in space_id (NULL: the personal space)?
 * TSR_ENOTFOUND for a space the caller cannot see, TSR_EFORBIDDEN when it can but not create. */
tsr_err_t tsr_sp__can_create_in(tsr_sp__ctx_t *c, const char *space_id, tsr_error_t *err);

/* A store read of an item the caller must be able to read: TSR_ENOTFOUND if it cannot (as for
 * a missing one). *doc returned-owned, *actions the caller's actions on it. want: the type
 * ("app", "datafile") or NULL for any. */
tsr_err_t tsr_sp__item_get(tsr_sp__ctx_t *c, const char *id, const char *want, json_t **doc,
                           unsigned *actions, tsr_error_t *err);
/* TSR_OK when actions holds need, else TSR_EFORBIDDEN naming what is missing. */
tsr_err_t tsr_sp__require(unsigned actions, unsigned need, const char *what, tsr_error_t *err);

/* ---- listing ------------------------------------------------------------------------------ */

/* Decide whether a listed document is shown (and may annotate it). */
typedef bool (*tsr_sp__keep_fn)(tsr_sp__ctx_t *c, json_t *doc, void *ud);

/* Up to limit documents matching q (filters, sort, cursor) for which keep says yes, reading
 * store pages of exactly what is still missing so that the store cursor after the last page
 * read is the position after the last document returned. *docs returned-owned array, *next
 * returned-owned cursor (free()) or NULL at the end. Examines at most TSR_SP__SCAN_MAX
 * documents per call (the page may then be short but still has a next cursor). */
tsr_err_t tsr_sp__list(tsr_sp__ctx_t *c, const char *coll, tsr_store_query_t *q, size_t limit,
                       tsr_sp__keep_fn keep, void *ud, json_t **docs, char **next,
                       tsr_error_t *err);

/* Query parameter helpers. */
tsr_err_t tsr_sp__parse_limit(tsr_req_t *req, size_t *limit, tsr_error_t *err);
/* "+field"/"-field"/"field" among allowed (NULL terminated) into q->sort / q->descending;
 * def when absent. */
tsr_err_t tsr_sp__parse_sort(tsr_req_t *req, const char *const *allowed, const char *def,
                             bool def_desc, tsr_store_query_t *q, tsr_error_t *err);
/* {self, next?} with absolute hrefs: base + path + the request's query with cursor_name
 * replaced by next (or removed for self). Returned-owned. */
json_t *tsr_sp__links(tsr_req_t *req, const char *cursor_name, const char *next);
/* Reply 200 {data, links} for one listed page: each stored doc through view with the action
 * bits tsr_sp__list left in its "_actions", links from tsr_sp__links(cursor_name, next). */
void tsr_sp__reply_page(tsr_sp__ctx_t *c, tsr_req_t *req, const json_t *docs,
                        json_t *(*view)(tsr_sp__ctx_t *, const json_t *, unsigned),
                        const char *cursor_name, const char *next);
/* Percent-encode s into the request arena. */
const char *tsr_sp__urlenc(tsr_req_t *req, const char *s);

/* ---- bodies and values -------------------------------------------------------------------- */

/* Parse the JSON body (object required), capped at the service's JSON limit. */
tsr_err_t tsr_sp__body(tsr_sp__ctx_t *c, json_t **out, tsr_error_t *err);
/* Validate an optional string member: NULL/absent allowed unless required; max bytes; no
 * control characters. *out borrowed from obj (NULL when absent). */
tsr_err_t tsr_sp__str(const json_t *obj, const char *key, bool required, size_t max,
                      const char **out, tsr_error_t *err);
/* A path id shaped like ours (24 lowercase hex); anything else answers 404 before the store. */
tsr_err_t tsr_sp__path_id(tsr_req_t *req, const char *name, const char **out, tsr_error_t *err);
bool tsr_sp__is_id(const char *s);
/* Current time as RFC 3339 into the arena. */
const char *tsr_sp__now(tsr_req_t *req);
/* Lowercase copy (ASCII) in the arena. */
char *tsr_sp__lower(tsr_req_t *req, const char *s);
/* ASCII case-insensitive substring test. */
bool tsr_sp__contains_ci(const char *hay, const char *needle);
/* Whether csv (comma-separated) contains v exactly. */
bool tsr_sp__csv_has(const char *csv, const char *v);

/* ---- events ------------------------------------------------------------------------------- */

/* An outbox row under construction; holds the formatted envelope. */
typedef struct {
    tsr_store_event_t row;
    char id[64];
    char *payload; /* owned */
    char *key;     /* owned */
} tsr_sp__event_t;

/* Build a CloudEvent "com.tessera.v1.<domain>.<action>" for topic about subject with data
 * (taken) into ev (caller's storage). Free with tsr_sp__event_cleanup. */
tsr_err_t tsr_sp__event_make(tsr_sp__ctx_t *c, const char *topic, const char *domain,
                             const char *action, const char *subject, json_t *data,
                             tsr_sp__event_t *ev, tsr_error_t *err);
void tsr_sp__event_cleanup(tsr_sp__event_t *ev);

/* ---- views -------------------------------------------------------------------------------- */

/* Public JSON of a stored space / assignment / item / app / data file. Returned-owned. */
json_t *tsr_sp__space_view(tsr_sp__ctx_t *c, const json_t *doc, unsigned actions,
                           const tsr_sp__acl_entry_t *acl);
json_t *tsr_sp__assignment_view(tsr_sp__ctx_t *c, const json_t *doc);
json_t *tsr_sp__item_view(tsr_sp__ctx_t *c, const json_t *doc, unsigned actions);
json_t *tsr_sp__app_view(tsr_sp__ctx_t *c, const json_t *doc, unsigned actions);
json_t *tsr_sp__datafile_view(tsr_sp__ctx_t *c, const json_t *doc, unsigned actions);
/* Action bits as a JSON array of names. */
json_t *tsr_sp__actions_json(unsigned actions);

/* ---- tenant keys ------------------------------------------------------------------------- */

tsr_sp__keycache_t *tsr_sp__keycache_create(void);
void tsr_sp__keycache_destroy(tsr_sp__keycache_t *k);
/* The tenant's keyring (created with DEK version 1 on first use). reload: read the stored
 * records again (a version was missing). *out is borrowed: valid until the service is
 * destroyed, read-only. Thread safe. */
tsr_err_t tsr_sp__keyring(tsr_spaces_t *s, const char *tenant, bool reload, tsr_keyring_t **out,
                          tsr_error_t *err);

/* ---- handlers (one file per area) ---------------------------------------------------------- */

tsr_err_t tsr_sp__h_spaces_list(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_space_create(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_space_types(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_space_get(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_space_put(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_space_patch(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_space_del(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_assign_list(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_assign_create(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_assign_get(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_assign_put(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_assign_del(tsr_req_t *req, void *ud, tsr_error_t *err);

tsr_err_t tsr_sp__h_items_list(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_item_get(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_item_del(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_app_create(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_app_privileges(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_app_get(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_app_put(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_app_del(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_app_copy(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_app_move(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_app_unmove(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_app_publish(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_app_republish(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_access(tsr_req_t *req, void *ud, tsr_error_t *err);

tsr_err_t tsr_sp__h_df_list(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_df_upload(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_df_quotas(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_df_connections(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_df_get(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_df_reupload(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_df_content(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_df_del(tsr_req_t *req, void *ud, tsr_error_t *err);
tsr_err_t tsr_sp__h_df_by_name(tsr_req_t *req, void *ud, tsr_error_t *err);
/* apps_transfer.c: the engine reports an export (audit event + lastExportedAt). */
tsr_err_t tsr_sp__h_app_exported(tsr_req_t *req, void *ud, tsr_error_t *err);

/* apps_content.c: the engine copies the content of app src to the new app dst (copy, publish:
 * only public bookmarks) before its record is stored, on the caller's behalf. TSR_OK also when
 * the engine has no content for src (never opened: the copy starts empty, as src is). Without
 * an engine URL: TSR_OK, nothing copied. */
tsr_err_t tsr_sp__app_content_copy(tsr_sp__ctx_t *c, const char *src, const char *dst,
                                   const char *name, bool publish, tsr_error_t *err);
/* After tsr_sp__app_content_copy: when storing dst's record failed (rc), log the content the
 * engine holds for dst that nothing refers to. */
void tsr_sp__app_content_orphaned(tsr_sp__ctx_t *c, const char *dst, tsr_err_t rc,
                                  const tsr_error_t *err);

/* The plaintext of a data file (doc) into out (its max caps the size). */
tsr_err_t tsr_sp__file_read(tsr_sp__ctx_t *c, const json_t *doc, tsr_buf_t *out, tsr_error_t *err);

/* Delete an item document with its event (and, for data files, its blob). Used by the app,
 * item and data-file handlers and by a forced space delete. */
tsr_err_t tsr_sp__item_delete(tsr_sp__ctx_t *c, const json_t *doc, tsr_error_t *err);

#endif
