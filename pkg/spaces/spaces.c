/*
 * pkg/spaces service lifecycle: the store collections it declares (indexes for every list
 * filter and sort, unique space names and data file names), creation, readiness and the route
 * table (one place; tests/unit/test_spaces.c checks it against api/openapi/spaces.yaml).
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "spaces_int.h"

/* Bytes an upload's body may have besides the file: multipart framing and the Json part. */
#define UPLOAD_FRAMING (128u * 1024)

/* ---- collections ---------------------------------------------------------------------------- */

static const char *const SPACE_IDX[] = {"nameKey", "type", "ownerId", "createdAt", "updatedAt"};
static const char *const SPACE_UNIQ_NAME[] = {"nameKey"};
static const tsr_store_unique_t SPACE_UNIQ[] = {{SPACE_UNIQ_NAME, 1, false}};

static const char *const ASSIGN_IDX[] = {"spaceId", "assigneeId", "type", "key", "createdAt"};
static const char *const ASSIGN_UNIQ_KEY[] = {"key"};
static const tsr_store_unique_t ASSIGN_UNIQ[] = {{ASSIGN_UNIQ_KEY, 1, false}};

static const char *const ITEM_IDX[] = {"resourceType", "spaceId", "scope",     "ownerId",
                                       "createdBy",    "nameKey", "createdAt", "updatedAt",
                                       "size",         "fileKey"};
static const char *const ITEM_UNIQ_FILE[] = {"fileKey"};
static const tsr_store_unique_t ITEM_UNIQ[] = {{ITEM_UNIQ_FILE, 1, false}};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const tsr_store_collection_t COLLECTIONS[] = {
    {.name = TSR_SP__C_DEKS, .version = 1},
    {.name = TSR_SP__C_SPACES,
     .indexes = SPACE_IDX,
     .n_indexes = N(SPACE_IDX),
     .uniques = SPACE_UNIQ,
     .n_uniques = N(SPACE_UNIQ),
     .version = 1},
    {.name = TSR_SP__C_ASSIGN,
     .indexes = ASSIGN_IDX,
     .n_indexes = N(ASSIGN_IDX),
     .uniques = ASSIGN_UNIQ,
     .n_uniques = N(ASSIGN_UNIQ),
     .version = 1},
    {.name = TSR_SP__C_ITEMS,
     .indexes = ITEM_IDX,
     .n_indexes = N(ITEM_IDX),
     .uniques = ITEM_UNIQ,
     .n_uniques = N(ITEM_UNIQ),
     .version = 1},
};

const tsr_store_collection_t *tsr_spaces_collections(size_t *n) {
    *n = N(COLLECTIONS);
    return COLLECTIONS;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

tsr_err_t tsr_spaces_create(const tsr_spaces_opts_t *opts, tsr_spaces_t **out, tsr_error_t *err) {
    *out = NULL;
    if (opts == NULL || opts->store == NULL || opts->blobs == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "spaces needs a store and a blob store");
    }
    tsr_spaces_t *s = tsr_xcalloc(1, sizeof *s);
    s->store = opts->store;
    s->blobs = opts->blobs;
    s->kek = opts->kek;
    s->keys = tsr_sp__keycache_create();
    s->datafile_max = opts->datafile_max_bytes != 0 ? opts->datafile_max_bytes : 64u << 20;
    s->json_max = opts->json_max_body != 0 ? opts->json_max_body : 1u << 20;
    s->engine_url = opts->engine_url != NULL ? tsr_xstrdup(opts->engine_url) : NULL;
    s->token_fn = opts->token_fn;
    s->token_ud = opts->token_ud;
    s->upload_dir = tsr_xstrdup(
        opts->upload_dir != NULL && opts->upload_dir[0] != '\0' ? opts->upload_dir : "/tmp");
    if (mkdir(s->upload_dir, 0700) != 0 && errno != EEXIST) {
        tsr_err_t rc = tsr_error_set(err, TSR_EIO, "cannot create the upload directory %s: %s",
                                     s->upload_dir, strerror(errno));
        tsr_spaces_destroy(s);
        return rc;
    }
    *out = s;
    return TSR_OK;
}

void tsr_spaces_destroy(tsr_spaces_t *s) {
    if (s != NULL) {
        tsr_sp__keycache_destroy(s->keys);
        free(s->engine_url);
        free(s->upload_dir);
    }
    free(s);
}

tsr_err_t tsr_spaces_ready(void *ud, tsr_error_t *err) {
    tsr_spaces_t *s = ud;
    return tsr_store_ping(s->store, err);
}

/* ---- routes --------------------------------------------------------------------------------- */

static const struct {
    const char *method, *pattern;
    tsr_httpd_handler_fn fn;
} ROUTES[] = {
    {"GET", "/api/v1/spaces", tsr_sp__h_spaces_list},
    {"POST", "/api/v1/spaces", tsr_sp__h_space_create},
    {"GET", "/api/v1/spaces/types", tsr_sp__h_space_types},
    {"GET", "/api/v1/spaces/{spaceId}", tsr_sp__h_space_get},
    {"PUT", "/api/v1/spaces/{spaceId}", tsr_sp__h_space_put},
    {"PATCH", "/api/v1/spaces/{spaceId}", tsr_sp__h_space_patch},
    {"DELETE", "/api/v1/spaces/{spaceId}", tsr_sp__h_space_del},
    {"GET", "/api/v1/spaces/{spaceId}/assignments", tsr_sp__h_assign_list},
    {"POST", "/api/v1/spaces/{spaceId}/assignments", tsr_sp__h_assign_create},
    {"GET", "/api/v1/spaces/{spaceId}/assignments/{assignmentId}", tsr_sp__h_assign_get},
    {"PUT", "/api/v1/spaces/{spaceId}/assignments/{assignmentId}", tsr_sp__h_assign_put},
    {"DELETE", "/api/v1/spaces/{spaceId}/assignments/{assignmentId}", tsr_sp__h_assign_del},
    {"GET", "/api/v1/items", tsr_sp__h_items_list},
    {"GET", "/api/v1/items/{itemId}", tsr_sp__h_item_get},
    {"DELETE", "/api/v1/items/{itemId}", tsr_sp__h_item_del},
    {"POST", "/api/v1/apps", tsr_sp__h_app_create},
    {"GET", "/api/v1/apps/privileges", tsr_sp__h_app_privileges},
    {"GET", "/api/v1/apps/{appId}", tsr_sp__h_app_get},
    {"PUT", "/api/v1/apps/{appId}", tsr_sp__h_app_put},
    {"DELETE", "/api/v1/apps/{appId}", tsr_sp__h_app_del},
    {"POST", "/api/v1/apps/{appId}/copy", tsr_sp__h_app_copy},
    {"PUT", "/api/v1/apps/{appId}/space", tsr_sp__h_app_move},
    {"DELETE", "/api/v1/apps/{appId}/space", tsr_sp__h_app_unmove},
    {"POST", "/api/v1/apps/{appId}/publish", tsr_sp__h_app_publish},
    {"PUT", "/api/v1/apps/{appId}/publish", tsr_sp__h_app_republish},
    {"GET", "/api/v1/data-files", tsr_sp__h_df_list},
    {"POST", "/api/v1/data-files", tsr_sp__h_df_upload},
    {"GET", "/api/v1/data-files/quotas", tsr_sp__h_df_quotas},
    {"GET", "/api/v1/data-files/connections", tsr_sp__h_df_connections},
    {"GET", "/api/v1/data-files/{id}", tsr_sp__h_df_get},
    {"PUT", "/api/v1/data-files/{id}", tsr_sp__h_df_reupload},
    {"DELETE", "/api/v1/data-files/{id}", tsr_sp__h_df_del},
    {"GET", "/api/v1/data-files/{id}/content", tsr_sp__h_df_content},
    {"GET", "/internal/v1/access", tsr_sp__h_access},
    {"GET", "/internal/v1/data-files/content", tsr_sp__h_df_by_name},
    {"POST", "/internal/v1/apps/{appId}/exported", tsr_sp__h_app_exported},
};

bool tsr_spaces_route_at(size_t i, const char **method, const char **pattern) {
    if (i >= N(ROUTES)) {
        return false;
    }
    *method = ROUTES[i].method;
    *pattern = ROUTES[i].pattern;
    return true;
}

/* Data-file uploads are upload routes: the body streams to a temporary file. */
static bool is_upload(tsr_httpd_handler_fn fn) {
    return fn == tsr_sp__h_df_upload || fn == tsr_sp__h_df_reupload;
}

tsr_err_t tsr_spaces_routes(tsr_httpd_t *h, void *ud, tsr_error_t *err) {
    if (ud == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "spaces routes need the spaces service");
    }
    tsr_spaces_t *s = ud;
    for (size_t i = 0; i < N(ROUTES); i++) {
        tsr_err_t rc =
            is_upload(ROUTES[i].fn)
                ? tsr_httpd_route_upload(h, ROUTES[i].method, ROUTES[i].pattern, ROUTES[i].fn, ud,
                                         s->upload_dir, s->datafile_max + UPLOAD_FRAMING, err)
                : tsr_httpd_route(h, ROUTES[i].method, ROUTES[i].pattern, ROUTES[i].fn, ud, err);
        if (rc != TSR_OK) {
            return rc;
        }
    }
    return TSR_OK;
}
