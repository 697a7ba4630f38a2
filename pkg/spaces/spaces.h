/*
 * pkg/spaces: where content lives and who may do what with it. Layer: service. Spaces
 * (shared, managed, data; the personal space is implicit per user), space role assignments,
 * the item catalog (apps and data files), app records (the content belongs to the engine),
 * data files (blobs under `<tenant>/datafile/<id>/<version>`, sealed under the tenant's DEK)
 * and access decisions for other services. Paths and shapes follow Qlik Cloud's REST API so that
 * `@qlik/api` works unchanged. Invariants: every document is read and written with the tenant of
 * the caller's principal (never from a path, query or body), so another tenant's object answers
 * exactly like a missing one (404); every change commits together with its CloudEvent (store
 * outbox).
 */
#ifndef TSR_SPACES_H
#define TSR_SPACES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blob.h"
#include "crypto.h"
#include "httpd.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- actions and the role table ---------------------------------------------------------- */

/* What a caller may do to a space, an app or a data file (bit set). */
typedef enum {
    TSR_SPACES_READ = 1u << 0,
    TSR_SPACES_EDIT = 1u << 1,
    TSR_SPACES_RELOAD = 1u << 2,
    TSR_SPACES_EXPORT = 1u << 3,
    TSR_SPACES_PUBLISH = 1u << 4,
    TSR_SPACES_DELETE = 1u << 5,
    TSR_SPACES_MANAGE = 1u << 6,
} tsr_spaces_action_t;

#define TSR_SPACES_ALL 0x7fu
#define TSR_SPACES_N_ACTIONS 7

/* The kind of object an access decision is about. */
typedef enum {
    TSR_SPACES_RES_SPACE = 0, /* the space itself: members, settings, creating content */
    TSR_SPACES_RES_APP = 1,   /* an app in the space */
    TSR_SPACES_RES_DATAFILE = 2
} tsr_spaces_res_t;

/* Name of one action bit ("read", ...), NULL for anything else. Static storage. */
const char *tsr_spaces_action_name(unsigned action);

/* The space roles in alphabetical order, NULL terminated. Static storage. */
const char *const *tsr_spaces_roles(void);

/* Actions one space role grants on res (pkg/spaces/README.md's table); 0 for an unknown role.
 * The space owner and TenantAdmin hold TSR_SPACES_ALL instead. Thread safe. */
unsigned tsr_spaces_role_actions(const char *role, tsr_spaces_res_t res);

/* Whether role may be assigned in a space of type space_type ("shared", "managed", "data"),
 * as Qlik's API allows. */
bool tsr_spaces_role_assignable(const char *space_type, const char *role);

/* ---- the service --------------------------------------------------------------------------- */

typedef struct tsr_spaces tsr_spaces_t;

/* A platform JWT naming (tenant, user, roles, groups) (comma lists; may be NULL) that identity
 * minted with auth type "service"; *jwt returned-owned (free). pkg/auth's tsr_auth_tokens_cb. */
typedef tsr_err_t (*tsr_spaces_token_fn)(void *ud, const char *tenant, const char *user,
                                         const char *roles, const char *groups, char **jwt,
                                         tsr_error_t *err);

typedef struct {
    tsr_store_t *store;          /* borrowed: opened with tsr_spaces_collections() */
    tsr_blob_store_t *blobs;     /* borrowed; data file contents */
    const tsr_kek_set_t *kek;    /* borrowed; seals data files under tenant DEKs (NULL: plain) */
    uint64_t datafile_max_bytes; /* largest data file; 0: 64 MiB */
    size_t json_max_body;        /* largest JSON body; 0: 1 MiB (the server cap may be larger) */
    /* The engine (base URL, copied) that holds app content: a copy or publish has it copy the
     * source's content to the new app before the record is stored (POST
     * /internal/v1/apps/{id}/copy on the caller's behalf). NULL: no content is copied. */
    const char *engine_url;
    /* Where the engine copy call gets its token: the engine's copy route takes only service
     * tokens, so spaces calls it with one naming (tenant, caller's user id, no roles) after it
     * has decided the access itself. NULL (unit tests, TSR_AUTH_TRUST_HEADERS development): the
     * caller's headers and token go with X-Tsr-Auth-Type: service, which only an engine that
     * trusts headers believes; an engine verifying tokens takes the caller's auth type from
     * the token and refuses the copy (fail closed). */
    tsr_spaces_token_fn token_fn;
    void *token_ud; /* token_fn's first argument (borrowed, outlives the service) */
    /* Directory (copied; created 0700 when missing) for the temporary files of data-file
     * uploads (the request body, streamed there by pkg/httpd) and downloads (the verified
     * plaintext, unlinked at once). NULL or "": /tmp. */
    const char *upload_dir;
} tsr_spaces_opts_t;

/* The collections the service's store must be opened with (tsr_store_create*). Static. */
const tsr_store_collection_t *tsr_spaces_collections(size_t *n);

/* Create the service. *out is returned-owned: tsr_spaces_destroy. Thread safe after
 * creation. TSR_EINVAL when store or blobs is missing, TSR_EIO when upload_dir cannot be
 * created. */
tsr_err_t tsr_spaces_create(const tsr_spaces_opts_t *opts, tsr_spaces_t **out, tsr_error_t *err);
/* Free (the store and blob store are the caller's). NULL: no-op. */
void tsr_spaces_destroy(tsr_spaces_t *s);

/* Register the service's routes on h; ud is the tsr_spaces_t (borrowed, outlives h). */
tsr_err_t tsr_spaces_routes(tsr_httpd_t *h, void *ud, tsr_error_t *err);

/* The i-th route (method, pattern); false past the end. For the OpenAPI contract check. */
bool tsr_spaces_route_at(size_t i, const char **method, const char **pattern);

/* Remove the regular files in dir (the upload_dir) older than max_age_ms: what a crash left of
 * uploads and downloads (run at start-up). NULL, "" or "/tmp" (the fallback, shared with
 * everything else): nothing. Returns how many were removed. */
size_t tsr_spaces_sweep_uploads(const char *dir, int64_t max_age_ms);

/* Readiness: the store answers. ud is the tsr_spaces_t. */
tsr_err_t tsr_spaces_ready(void *ud, tsr_error_t *err);

/* Principal hook (tsr_httpd_opts_t.on_principal): the caller from the ingress's X-Tsr-Tenant-Id
 * and X-Tsr-User-Id headers (nginx overwrites client-sent ones); TSR_EUNAUTHENTICATED when
 * either is missing or malformed. Health routes skip it. ud is unused. */
tsr_err_t tsr_spaces_principal(tsr_req_t *req, void *ud, const char **principal, tsr_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
