/*
 * pkg/reload HTTP handlers: /api/v1/reloads, /api/v1/reload-tasks and the reload logs under
 * /api/v1/apps/{appId}/reloads/logs. Handlers parse and validate, call the domain and reply;
 * every failure is a tsr_err_t for httpd's single error mapping. The tenant is always the
 * principal's (X-Tsr-Tenant-Id set by the ingress), so another tenant's reload or task is a
 * 404 exactly like a missing one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reload_int.h"

/* ---- the caller ------------------------------------------------------------------------------ */

static bool printable_id(const char *s, size_t max) {
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > max || s[0] == '_') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] <= ' ' || s[i] > '~' || s[i] == ':' || s[i] == '/') {
            return false;
        }
    }
    return true;
}

tsr_err_t tsr_reload_principal(tsr_req_t *req, void *ud, const char **principal, tsr_error_t *err) {
    (void)ud;
    const char *tenant = tsr_req_header(req, "x-tsr-tenant-id");
    const char *user = tsr_req_header(req, "x-tsr-user-id");
    if (!printable_id(tenant, TSR_STORE_TENANT_MAX) || !printable_id(user, TSR_STORE_ID_MAX)) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "authentication required");
    }
    tsr_req_set_identity(req, tenant, user);
    *principal = tsr_arena_printf(tsr_req_arena(req), "user:%s:%s", tenant, user);
    return TSR_OK;
}

static tsr_err_t caller_of(tsr_req_t *req, tsr_reload_caller_t *who, tsr_error_t *err) {
    who->tenant = tsr_req_tenant(req);
    who->user = tsr_req_user(req);
    who->roles = tsr_req_header(req, "x-tsr-roles");
    who->token = tsr_req_header(req, "x-tsr-token");
    if (who->tenant == NULL || who->user == NULL || who->tenant[0] == '\0' ||
        who->user[0] == '\0') {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "authentication required");
    }
    return TSR_OK;
}

static bool has_role(const char *csv, const char *role) {
    size_t n = strlen(role);
    for (const char *p = csv; p != NULL && *p != '\0';) {
        while (*p == ' ' || *p == ',') {
            p++;
        }
        size_t k = strcspn(p, ",");
        size_t e = k;
        while (e > 0 && p[e - 1] == ' ') {
            e--;
        }
        if (e == n && strncmp(p, role, n) == 0) {
            return true;
        }
        p += k;
    }
    return false;
}

/* ---- helpers --------------------------------------------------------------------------------- */

static char *urlenc(tsr_arena_t *a, const char *s) {
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *o = tsr_arena_alloc(a, 3 * n + 1), *p = o;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            *p++ = (char)c;
        } else {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        }
    }
    *p = '\0';
    return o;
}

static tsr_err_t parse_limit(tsr_req_t *req, size_t *out, tsr_error_t *err) {
    const char *l = tsr_req_query(req, "limit");
    int64_t v = 10;
    if (l != NULL && tsr_str_to_i64(tsr_str(l), 1, 100, &v) != TSR_OK) {
        return tsr_error_set(err, TSR_EINVAL, "limit: an integer from 1 to 100");
    }
    *out = (size_t)v;
    return TSR_OK;
}

/* A query string "k=v&..." of the non-NULL pairs (values URL-encoded), arena. */
static const char *query_of(tsr_arena_t *a, const char *const *kv, size_t n) {
    tsr_buf_t b;
    tsr_buf_init(&b, 0);
    for (size_t i = 0; i + 1 < n; i += 2) {
        if (kv[i + 1] == NULL) {
            continue;
        }
        tsr_buf_appendf(&b, "%s%s=%s", b.len == 0 ? "?" : "&", kv[i], urlenc(a, kv[i + 1]));
    }
    char *s = tsr_arena_strdup(a, b.data != NULL ? b.data : "");
    tsr_buf_cleanup(&b);
    return s;
}

/* "status eq \"FAILED\"" → FAILED (arena); NULL when filter is absent. */
static tsr_err_t scim_status(tsr_req_t *req, const char **out, tsr_error_t *err) {
    const char *f = tsr_req_query(req, "filter");
    *out = NULL;
    if (f == NULL || f[0] == '\0') {
        return TSR_OK;
    }
    char v[32];
    if (sscanf(f, " status eq \"%31[A-Z_]\" ", v) != 1 || !tsr_reload_status_is_valid(v)) {
        return tsr_error_set(err, TSR_EINVAL, "filter: only 'status eq \"<STATUS>\"' is supported");
    }
    *out = tsr_arena_strdup(tsr_req_arena(req), v);
    return TSR_OK;
}

/* ---- reloads --------------------------------------------------------------------------------- */

static tsr_err_t h_reload_create(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_reload_t *r = ud;
    tsr_reload_caller_t who;
    json_t *body = NULL, *doc = NULL;
    const char *k;
    json_t *v;
    tsr_err_t rc;
    if ((rc = caller_of(req, &who, err)) != TSR_OK ||
        (rc = tsr_req_json(req, &body, err)) != TSR_OK) {
        return rc;
    }
    if (!json_is_object(body)) {
        rc = tsr_error_set(err, TSR_EINVAL, "the body must be a JSON object");
        goto out;
    }
    json_object_foreach(body, k, v) {
        bool ok =
            (strcmp(k, "appId") == 0 && json_is_string(v)) ||
            (strcmp(k, "partial") == 0 && json_is_boolean(v)) ||
            (strcmp(k, "variables") == 0 && json_is_object(v) && json_object_size(v) <= 20) ||
            (strcmp(k, "weight") == 0 && json_is_integer(v)) ||
            ((strcmp(k, "resourceType") == 0 || strcmp(k, "resourceId") == 0) && json_is_string(v));
        if (!ok) {
            rc = tsr_error_set(err, TSR_EINVAL, "%s: unknown field or wrong type", k);
            goto out;
        }
    }
    rc = tsr_reload_request(r, &who, json_string_value(json_object_get(body, "appId")),
                            json_is_true(json_object_get(body, "partial")), "external", &doc, err);
    if (rc == TSR_OK) {
        tsr_req_reply_json(req, 201, tsr_rl__reload_view(doc, tsr_req_base_url(req), false));
    }
out:
    json_decref(doc);
    json_decref(body);
    return rc;
}

static tsr_err_t h_reload_get(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_reload_caller_t who;
    json_t *doc = NULL;
    tsr_err_t rc = caller_of(req, &who, err);
    if (rc == TSR_OK &&
        (rc = tsr_rl__reload_get(ud, who.tenant, tsr_req_param(req, "id"), &doc, err)) == TSR_OK) {
        const char *log = tsr_req_query(req, "log");
        tsr_req_reply_json(req, 200,
                           tsr_rl__reload_view(doc, tsr_req_base_url(req),
                                               log == NULL || strcmp(log, "false") != 0));
        json_decref(doc);
    }
    return rc;
}

static tsr_err_t h_reload_list(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_reload_caller_t who;
    tsr_store_page_t page = {0};
    size_t limit = 0;
    const char *status = tsr_req_query(req, "status"), *fstatus = NULL;
    const char *app = tsr_req_query(req, "appId");
    const char *cursor = tsr_req_query(req, "next");
    tsr_arena_t *a = tsr_req_arena(req);
    tsr_err_t rc;
    if ((rc = caller_of(req, &who, err)) != TSR_OK ||
        (rc = parse_limit(req, &limit, err)) != TSR_OK ||
        (rc = scim_status(req, &fstatus, err)) != TSR_OK) {
        return rc;
    }
    if (status == NULL) {
        status = fstatus;
    }
    if (status != NULL && !tsr_reload_status_is_valid(status)) {
        return tsr_error_set(err, TSR_EINVAL,
                             "status: one of QUEUED, RELOADING, CANCELING, "
                             "SUCCEEDED, FAILED, CANCELED, EXCEEDED_LIMIT");
    }
    if (app == NULL && !has_role(who.roles, "TenantAdmin")) {
        return tsr_error_set(err, TSR_EINVAL, "appId: required (only a TenantAdmin lists all)");
    }
    if (tsr_req_query(req, "prev") != NULL) {
        return tsr_error_set(err, TSR_EINVAL, "prev: not supported; follow links.next");
    }
    if ((rc = tsr_rl__reload_list(ud, who.tenant, app, status, limit, cursor, &page, err)) !=
        TSR_OK) {
        return rc;
    }
    const char *base = tsr_req_base_url(req);
    char lim[24];
    snprintf(lim, sizeof lim, "%zu", limit);
    json_t *data = json_array();
    size_t i;
    json_t *d;
    json_array_foreach(page.items, i, d) {
        json_array_append_new(data, tsr_rl__reload_view(d, base, false));
    }
    const char *self_q[] = {"appId", app, "status", status, "limit", lim, "next", cursor};
    json_t *links =
        json_pack("{s{s:s++}}", "self", "href", base, "/api/v1/reloads", query_of(a, self_q, 8));
    if (page.next_cursor != NULL) {
        const char *next_q[] = {"appId", app, "status", status,
                                "limit", lim, "next",   page.next_cursor};
        json_object_set_new(
            links, "next",
            json_pack("{s:s++}", "href", base, "/api/v1/reloads", query_of(a, next_q, 8)));
    }
    tsr_store_page_cleanup(&page);
    tsr_req_reply_json(req, 200, json_pack("{so so}", "data", data, "links", links));
    return TSR_OK;
}

static tsr_err_t h_reload_cancel(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_reload_caller_t who;
    const char *status = NULL;
    tsr_err_t rc = caller_of(req, &who, err);
    if (rc == TSR_OK &&
        (rc = tsr_rl__reload_cancel(ud, &who, tsr_req_param(req, "id"), &status, err)) == TSR_OK) {
        if (strcmp(status, "CANCELED") == 0) {
            tsr_req_reply_bytes(req, 204, "application/json", "", 0);
        } else {
            tsr_req_reply_json(req, 202, json_pack("{ss}", "status", status));
        }
    }
    return rc;
}

/* ---- logs ------------------------------------------------------------------------------------ */

static tsr_err_t h_log_get(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_reload_caller_t who;
    json_t *doc = NULL;
    tsr_err_t rc = caller_of(req, &who, err);
    if (rc != TSR_OK || (rc = tsr_rl__reload_get(ud, who.tenant, tsr_req_param(req, "reloadId"),
                                                 &doc, err)) != TSR_OK) {
        return rc;
    }
    const char *app = json_string_value(json_object_get(doc, "appId"));
    if (app == NULL || strcmp(app, tsr_req_param(req, "appId")) != 0) {
        json_decref(doc);
        return tsr_error_set(err, TSR_ENOTFOUND, "reload not found");
    }
    /* The log grows while the reload runs (append-only): ?offset=N answers the bytes from N
     * on, and X-Tsr-Log-Size the whole size, the offset of the next read. */
    const char *log = json_string_value(json_object_get(doc, "log"));
    size_t n = log != NULL ? json_string_length(json_object_get(doc, "log")) : 0;
    int64_t off = 0;
    const char *o = tsr_req_query(req, "offset");
    if (o != NULL && tsr_str_to_i64(tsr_str(o), 0, INT64_C(1) << 40, &off) != TSR_OK) {
        json_decref(doc);
        return tsr_error_set(err, TSR_EINVAL, "offset: a byte offset from 0");
    }
    size_t from = (uint64_t)off < n ? (size_t)off : n;
    char size[24];
    snprintf(size, sizeof size, "%zu", n);
    tsr_req_add_header(req, "X-Tsr-Log-Size", size);
    tsr_req_add_header(req, "X-Tsr-Reload-Status",
                       json_string_value(json_object_get(doc, "status")) != NULL
                           ? json_string_value(json_object_get(doc, "status"))
                           : "");
    tsr_req_reply_bytes(req, 200, "text/plain; charset=utf-8", log != NULL ? log + from : "",
                        n - from);
    json_decref(doc);
    return TSR_OK;
}

static tsr_err_t h_log_list(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_reload_caller_t who;
    tsr_store_page_t page = {0};
    size_t limit = 0;
    const char *app = tsr_req_param(req, "appId");
    tsr_err_t rc;
    if ((rc = caller_of(req, &who, err)) != TSR_OK ||
        (rc = parse_limit(req, &limit, err)) != TSR_OK ||
        (rc = tsr_rl__reload_list(ud, who.tenant, app, NULL, limit, tsr_req_query(req, "next"),
                                  &page, err)) != TSR_OK) {
        return rc;
    }
    const char *base = tsr_req_base_url(req);
    tsr_arena_t *a = tsr_req_arena(req);
    json_t *data = json_array();
    size_t i;
    json_t *d;
    json_array_foreach(page.items, i, d) {
        const char *st = json_string_value(json_object_get(d, "status"));
        const char *id = json_string_value(json_object_get(d, "id"));
        if (!tsr_reload_status_is_terminal(st)) {
            continue;
        }
        json_t *e = json_pack("{ss sb sO s{s{s:s+++++}}}", "reloadId", id, "success",
                              strcmp(st, "SUCCEEDED") == 0, "endTime",
                              json_object_get(d, "endTime") != NULL ? json_object_get(d, "endTime")
                                                                    : json_null(),
                              "links", "log", "href", base, "/api/v1/apps/", urlenc(a, app),
                              "/reloads/logs/", id, "");
        json_array_append_new(data, e);
    }
    json_t *links = json_pack("{s{s:s+++}}", "self", "href", base, "/api/v1/apps/", urlenc(a, app),
                              "/reloads/logs");
    if (page.next_cursor != NULL) {
        json_object_set_new(links, "next",
                            json_pack("{s:s++++}", "href", base, "/api/v1/apps/", urlenc(a, app),
                                      "/reloads/logs?next=", urlenc(a, page.next_cursor)));
    }
    tsr_store_page_cleanup(&page);
    tsr_req_reply_json(req, 200, json_pack("{so so}", "data", data, "links", links));
    return TSR_OK;
}

/* ---- reload tasks ---------------------------------------------------------------------------- */

static tsr_err_t task_put(tsr_req_t *req, void *ud, const char *id, unsigned status,
                          tsr_error_t *err) {
    tsr_reload_caller_t who;
    json_t *body = NULL, *doc = NULL;
    tsr_err_t rc;
    if ((rc = caller_of(req, &who, err)) != TSR_OK ||
        (rc = tsr_req_json(req, &body, err)) != TSR_OK) {
        return rc;
    }
    if ((rc = tsr_rl__task_put(ud, &who, id, body, &doc, err)) == TSR_OK) {
        tsr_req_reply_json(req, status, tsr_rl__task_view(doc, tsr_req_base_url(req)));
    }
    json_decref(doc);
    json_decref(body);
    return rc;
}

static tsr_err_t h_task_create(tsr_req_t *req, void *ud, tsr_error_t *err) {
    return task_put(req, ud, NULL, 201, err);
}

static tsr_err_t h_task_replace(tsr_req_t *req, void *ud, tsr_error_t *err) {
    return task_put(req, ud, tsr_req_param(req, "id"), 200, err);
}

static tsr_err_t h_task_get(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_reload_caller_t who;
    json_t *doc = NULL;
    tsr_err_t rc = caller_of(req, &who, err);
    if (rc == TSR_OK &&
        (rc = tsr_rl__task_get(ud, who.tenant, tsr_req_param(req, "id"), &doc, err)) == TSR_OK) {
        tsr_req_reply_json(req, 200, tsr_rl__task_view(doc, tsr_req_base_url(req)));
        json_decref(doc);
    }
    return rc;
}

static tsr_err_t h_task_del(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_reload_caller_t who;
    tsr_err_t rc = caller_of(req, &who, err);
    if (rc == TSR_OK &&
        (rc = tsr_rl__task_del(ud, &who, tsr_req_param(req, "id"), err)) == TSR_OK) {
        tsr_req_reply_bytes(req, 204, "application/json", "", 0);
    }
    return rc;
}

static tsr_err_t h_task_list(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_reload_t *r = ud;
    tsr_reload_caller_t who;
    tsr_store_page_t page = {0};
    size_t limit = 0;
    const char *app = tsr_req_query(req, "appId");
    const char *cursor = tsr_req_query(req, "next");
    tsr_arena_t *a = tsr_req_arena(req);
    tsr_err_t rc;
    if ((rc = caller_of(req, &who, err)) != TSR_OK ||
        (rc = parse_limit(req, &limit, err)) != TSR_OK) {
        return rc;
    }
    json_t *av = app != NULL ? json_string(app) : NULL;
    tsr_store_filter_t f = {"appId", TSR_STORE_EQ, av};
    tsr_store_query_t q = {.filters = av != NULL ? &f : NULL,
                           .n_filters = av != NULL ? 1 : 0,
                           .sort = "createdMs",
                           .limit = limit,
                           .cursor = cursor};
    rc = tsr_store_doc_list(r->store, who.tenant, TSR_RL__C_TASKS, &q, &page, err);
    json_decref(av);
    if (rc != TSR_OK) {
        return rc;
    }
    const char *base = tsr_req_base_url(req);
    char lim[24];
    snprintf(lim, sizeof lim, "%zu", limit);
    json_t *data = json_array();
    size_t i;
    json_t *d;
    json_array_foreach(page.items, i, d) {
        json_array_append_new(data, tsr_rl__task_view(d, base));
    }
    const char *self_q[] = {"appId", app, "limit", lim, "next", cursor};
    json_t *links = json_pack("{s{s:s++}}", "self", "href", base, "/api/v1/reload-tasks",
                              query_of(a, self_q, 6));
    if (page.next_cursor != NULL) {
        const char *next_q[] = {"appId", app, "limit", lim, "next", page.next_cursor};
        json_object_set_new(
            links, "next",
            json_pack("{s:s++}", "href", base, "/api/v1/reload-tasks", query_of(a, next_q, 6)));
    }
    tsr_store_page_cleanup(&page);
    tsr_req_reply_json(req, 200, json_pack("{so so}", "data", data, "links", links));
    return TSR_OK;
}

/* ---- routes ---------------------------------------------------------------------------------- */

static const struct {
    const char *method, *pattern;
    tsr_httpd_handler_fn fn;
} ROUTES[] = {
    {"POST", "/api/v1/reloads", h_reload_create},
    {"GET", "/api/v1/reloads", h_reload_list},
    {"GET", "/api/v1/reloads/{id}", h_reload_get},
    {"POST", "/api/v1/reloads/{id}/actions/cancel", h_reload_cancel},
    {"GET", "/api/v1/reload-tasks", h_task_list},
    {"POST", "/api/v1/reload-tasks", h_task_create},
    {"GET", "/api/v1/reload-tasks/{id}", h_task_get},
    {"PUT", "/api/v1/reload-tasks/{id}", h_task_replace},
    {"DELETE", "/api/v1/reload-tasks/{id}", h_task_del},
    {"GET", "/api/v1/apps/{appId}/reloads/logs", h_log_list},
    {"GET", "/api/v1/apps/{appId}/reloads/logs/{reloadId}", h_log_get},
};

#define N_ROUTES (sizeof ROUTES / sizeof ROUTES[0])

bool tsr_reload_route_at(size_t i, const char **method, const char **pattern) {
    if (i >= N_ROUTES) {
        return false;
    }
    *method = ROUTES[i].method;
    *pattern = ROUTES[i].pattern;
    return true;
}

tsr_err_t tsr_reload_routes(tsr_httpd_t *h, void *ud, tsr_error_t *err) {
    if (ud == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "reload routes need the reload service");
    }
    for (size_t i = 0; i < N_ROUTES; i++) {
        tsr_err_t rc =
            tsr_httpd_route(h, ROUTES[i].method, ROUTES[i].pattern, ROUTES[i].fn, ud, err);
        if (rc != TSR_OK) {
            return rc;
        }
    }
    return TSR_OK;
}
