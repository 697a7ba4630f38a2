/*
 * pkg/spaces shared plumbing: the caller (principal hook and per-request context), filtered
 * keyset listing over store pages with absolute paging links, query and body validation,
 * CloudEvents for the outbox, and the public JSON views of stored documents.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "spaces_int.h"

/* ---- the caller ----------------------------------------------------------------------------- */

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

tsr_err_t tsr_spaces_principal(tsr_req_t *req, void *ud, const char **principal, tsr_error_t *err) {
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

tsr_err_t tsr_sp__ctx_init(tsr_sp__ctx_t *c, tsr_spaces_t *s, tsr_req_t *req, tsr_error_t *err) {
    c->s = s;
    c->req = req;
    c->n_acl = 0;
    c->tenant = tsr_req_tenant(req);
    c->user = tsr_req_user(req);
    if (c->tenant == NULL || c->user == NULL || c->tenant[0] == '\0' || c->user[0] == '\0') {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "authentication required");
    }
    c->admin = tsr_sp__csv_has(tsr_req_header(req, "x-tsr-roles"), "TenantAdmin");
    /* X-Tsr-Groups comes from identity through the ingress (client values overwritten): ids
     * of the caller's groups in this tenant. Anything not shaped like an id is skipped; ids
     * past the cap are ignored, as identity never sends more. */
    c->groups = NULL;
    c->n_groups = 0;
    const char *gh = tsr_req_header(req, "x-tsr-groups");
    if (gh != NULL && gh[0] != '\0') {
        tsr_arena_t *a = tsr_req_arena(req);
        tsr_str_t rest = tsr_str(gh), tok;
        c->groups = tsr_arena_alloc(a, TSR_SP__MAX_GROUPS * sizeof *c->groups);
        while (c->n_groups < TSR_SP__MAX_GROUPS && tsr_str_next_tok(&rest, ',', &tok)) {
            tok = tsr_str_trim(tok);
            if (tok.n == 24) {
                char *g = tsr_arena_strndup(a, tok.p, tok.n);
                if (tsr_sp__is_id(g)) {
                    c->groups[c->n_groups++] = g;
                }
            }
        }
    }
    return TSR_OK;
}

bool tsr_sp__in_groups(const tsr_sp__ctx_t *c, const char *g) {
    for (size_t i = 0; g != NULL && i < c->n_groups; i++) {
        if (strcmp(c->groups[i], g) == 0) {
            return true;
        }
    }
    return false;
}

/* ---- small helpers -------------------------------------------------------------------------- */

bool tsr_sp__is_id(const char *s) {
    return s != NULL && strlen(s) == 24 && strspn(s, "0123456789abcdef") == 24;
}

tsr_err_t tsr_sp__path_id(tsr_req_t *req, const char *name, const char **out, tsr_error_t *err) {
    const char *v = tsr_req_param(req, name);
    *out = v;
    if (!tsr_sp__is_id(v)) {
        return tsr_error_set(err, TSR_ENOTFOUND, "not found");
    }
    return TSR_OK;
}

const char *tsr_sp__now(tsr_req_t *req) {
    char buf[25];
    tsr_time_format_rfc3339(tsr_wall_ms(), buf);
    return tsr_arena_strdup(tsr_req_arena(req), buf);
}

char *tsr_sp__lower(tsr_req_t *req, const char *s) {
    char *o = tsr_arena_strdup(tsr_req_arena(req), s != NULL ? s : "");
    for (char *p = o; *p != '\0'; p++) {
        *p = (char)tolower((unsigned char)*p);
    }
    return o;
}

bool tsr_sp__contains_ci(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    if (hay == NULL) {
        return n == 0;
    }
    for (const char *p = hay; *p != '\0'; p++) {
        if (strncasecmp(p, needle, n) == 0) {
            return true;
        }
    }
    return n == 0;
}

bool tsr_sp__csv_has(const char *csv, const char *v) {
    tsr_str_t s = tsr_str(csv), tok;
    while (tsr_str_next_tok(&s, ',', &tok)) {
        if (tsr_str_eq_cstr(tsr_str_trim(tok), v)) {
            return true;
        }
    }
    return false;
}

tsr_err_t tsr_sp__parse_limit(tsr_req_t *req, size_t *limit, tsr_error_t *err) {
    const char *l = tsr_req_query(req, "limit");
    int64_t v = TSR_SP__DEFAULT_LIMIT;
    if (l != NULL && tsr_str_to_i64(tsr_str(l), 1, TSR_SP__MAX_LIMIT, &v) != TSR_OK) {
        return tsr_error_set(err, TSR_EINVAL, "limit must be an integer in 1..%d",
                             TSR_SP__MAX_LIMIT);
    }
    *limit = (size_t)v;
    return TSR_OK;
}

tsr_err_t tsr_sp__parse_sort(tsr_req_t *req, const char *const *allowed, const char *def,
                             bool def_desc, tsr_store_query_t *q, tsr_error_t *err) {
    const char *s = tsr_req_query(req, "sort");
    q->sort = def;
    q->descending = def_desc;
    if (s == NULL || s[0] == '\0') {
        return TSR_OK;
    }
    bool desc = false;
    if (s[0] == '+' || s[0] == ' ') { /* a raw '+' arrives as ' ' after URL decoding */
        s++;
    } else if (s[0] == '-') {
        desc = true;
        s++;
    }
    for (size_t i = 0; allowed[i] != NULL; i++) {
        if (strcmp(allowed[i], s) == 0) {
            q->sort = allowed[i];
            q->descending = desc;
            return TSR_OK;
        }
    }
    return tsr_error_set(err, TSR_EINVAL, "sort on '%s' is not supported", s);
}

const char *tsr_sp__urlenc(tsr_req_t *req, const char *s) {
    static const char HEX[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *o = tsr_arena_alloc(tsr_req_arena(req), n * 3 + 1), *p = o;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            *p++ = (char)ch;
        } else {
            *p++ = '%';
            *p++ = HEX[ch >> 4];
            *p++ = HEX[ch & 15];
        }
    }
    *p = '\0';
    return o;
}

/* The query parameters a paging link carries over from the request. */
static const char *const LINK_PARAMS[] = {
    "limit",           "sort",       "name",         "type",   "ownerId",    "resourceType",
    "spaceId",         "spaceType",  "query",        "action", "assigneeId", "notOwnerId",
    "createdByUserId", "resourceId", "connectionId", "appId",  NULL};

json_t *tsr_sp__links(tsr_req_t *req, const char *cursor_name, const char *next) {
    tsr_buf_t q;
    tsr_buf_init(&q, 64 * 1024);
    for (size_t i = 0; LINK_PARAMS[i] != NULL; i++) {
        const char *v = tsr_req_query(req, LINK_PARAMS[i]);
        if (v != NULL) {
            tsr_buf_appendf(&q, "%c%s=%s", q.len == 0 ? '?' : '&', LINK_PARAMS[i],
                            tsr_sp__urlenc(req, v));
        }
    }
    const char *base = tsr_req_base_url(req), *path = tsr_req_path(req);
    const char *qs = q.data != NULL ? tsr_arena_strdup(tsr_req_arena(req), q.data) : "";
    const char *self_cursor = tsr_req_query(req, cursor_name);
    tsr_arena_t *a = tsr_req_arena(req);
    json_t *links = json_object();
    json_object_set_new(
        links, "self",
        json_pack("{ss}", "href",
                  self_cursor != NULL
                      ? tsr_arena_printf(a, "%s%s%s%c%s=%s", base, path, qs, qs[0] ? '&' : '?',
                                         cursor_name, tsr_sp__urlenc(req, self_cursor))
                      : tsr_arena_printf(a, "%s%s%s", base, path, qs)));
    if (next != NULL) {
        json_object_set_new(
            links, "next",
            json_pack("{ss}", "href",
                      tsr_arena_printf(a, "%s%s%s%c%s=%s", base, path, qs, qs[0] ? '&' : '?',
                                       cursor_name, tsr_sp__urlenc(req, next))));
    }
    tsr_buf_cleanup(&q);
    return links;
}

tsr_err_t tsr_sp__list(tsr_sp__ctx_t *c, const char *coll, tsr_store_query_t *q, size_t limit,
                       tsr_sp__keep_fn keep, void *ud, json_t **docs, char **next,
                       tsr_error_t *err) {
    json_t *out = json_array();
    char *cursor = q->cursor != NULL ? tsr_xstrdup(q->cursor) : NULL;
    size_t scanned = 0;
    bool first = true;
    tsr_err_t rc = TSR_OK;
    *docs = NULL;
    *next = NULL;
    while (json_array_size(out) < limit && (first || cursor != NULL) &&
           scanned < TSR_SP__SCAN_MAX) {
        tsr_store_page_t page = {0};
        size_t want = limit - json_array_size(out);
        /* Never read past what is still missing: every document read is then either returned
         * or skipped, so the store's cursor is exactly the position after the last one. */
        q->limit = want;
        q->cursor = cursor;
        first = false;
        rc = tsr_store_doc_list(c->s->store, c->tenant, coll, q, &page, err);
        if (rc != TSR_OK) {
            break;
        }
        size_t i;
        json_t *d;
        json_array_foreach(page.items, i, d) {
            scanned++;
            if (keep == NULL || keep(c, d, ud)) {
                json_array_append(out, d);
            }
        }
        free(cursor);
        cursor = page.next_cursor;
        page.next_cursor = NULL;
        tsr_store_page_cleanup(&page);
    }
    q->cursor = NULL;
    if (rc != TSR_OK) {
        free(cursor);
        json_decref(out);
        return rc;
    }
    *docs = out;
    *next = cursor;
    return TSR_OK;
}

tsr_err_t tsr_sp__body(tsr_sp__ctx_t *c, json_t **out, tsr_error_t *err) {
    size_t len = 0;
    *out = NULL;
    (void)tsr_req_body(c->req, &len);
    if (len > c->s->json_max) {
        return tsr_error_set(err, TSR_ETOOBIG, "the JSON body is larger than %zu bytes",
                             c->s->json_max);
    }
    json_t *j = NULL;
    tsr_err_t rc = tsr_req_json(c->req, &j, err);
    if (rc != TSR_OK) {
        return rc;
    }
    *out = j;
    return TSR_OK;
}

tsr_err_t tsr_sp__str(const json_t *obj, const char *key, bool required, size_t max,
                      const char **out, tsr_error_t *err) {
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        return required ? tsr_error_set(err, TSR_EINVAL, "%s is required", key) : TSR_OK;
    }
    if (!json_is_string(v)) {
        return tsr_error_set(err, TSR_EINVAL, "%s must be a string", key);
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n > max || strlen(s) != n) {
        return tsr_error_set(err, TSR_EINVAL, "%s must be at most %zu bytes of text", key, max);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') {
            return tsr_error_set(err, TSR_EINVAL, "%s contains control characters", key);
        }
    }
    if (required && n == 0) {
        return tsr_error_set(err, TSR_EINVAL, "%s must not be empty", key);
    }
    *out = s;
    return TSR_OK;
}

/* ---- events ----------------------------------------------------------------------------------
 */

tsr_err_t tsr_sp__event_make(tsr_sp__ctx_t *c, const char *topic, const char *domain,
                             const char *action, const char *subject, json_t *data,
                             tsr_sp__event_t *ev, tsr_error_t *err) {
    char type[TSR_EVENT_NAME_MAX * 3];
    tsr_event_t e;
    size_t len = 0;
    memset(ev, 0, sizeof *ev);
    tsr_err_t rc = tsr_event_type_format(1, domain, action, type, sizeof type, err);
    if (rc != TSR_OK) {
        json_decref(data);
        return rc;
    }
    rc = tsr_event_init(&e, TSR_SP__SOURCE, type, c->tenant, subject, data, err);
    if (rc != TSR_OK) {
        return rc;
    }
    e.userid = tsr_xstrdup(c->user);
    e.traceid = tsr_xstrdup(tsr_req_id(c->req));
    rc = tsr_event_format(&e, &ev->payload, &len, err);
    if (rc == TSR_OK) {
        snprintf(ev->id, sizeof ev->id, "%s", e.id);
        ev->key = tsr_xstrdup(subject);
        ev->row.id = ev->id;
        ev->row.topic = topic;
        ev->row.key = ev->key;
        ev->row.payload = ev->payload;
        ev->row.payload_len = len;
    }
    tsr_event_cleanup(&e);
    return rc;
}

void tsr_sp__event_cleanup(tsr_sp__event_t *ev) {
    if (ev != NULL) {
        free(ev->payload);
        free(ev->key);
        memset(ev, 0, sizeof *ev);
    }
}

/* ---- views ---------------------------------------------------------------------------------- */

static void copy_str(json_t *to, const char *to_key, const json_t *from, const char *from_key) {
    json_t *v = json_object_get(from, from_key);
    if (json_is_string(v)) {
        json_object_set_new(to, to_key, json_string(json_string_value(v)));
    }
}

json_t *tsr_sp__space_view(tsr_sp__ctx_t *c, const json_t *doc, unsigned actions,
                           const tsr_sp__acl_entry_t *acl) {
    const char *id = json_string_value(json_object_get(doc, "id"));
    const char *type = json_string_value(json_object_get(doc, "type"));
    const char *base = tsr_req_base_url(c->req);
    tsr_arena_t *a = tsr_req_arena(c->req);
    json_t *v = json_object();
    copy_str(v, "id", doc, "id");
    copy_str(v, "name", doc, "name");
    json_object_set_new(v, "description",
                        json_string(json_string_value(json_object_get(doc, "description")) != NULL
                                        ? json_string_value(json_object_get(doc, "description"))
                                        : ""));
    copy_str(v, "type", doc, "type");
    copy_str(v, "ownerId", doc, "ownerId");
    copy_str(v, "tenantId", doc, "tenantId");
    copy_str(v, "createdAt", doc, "createdAt");
    copy_str(v, "createdBy", doc, "createdBy");
    copy_str(v, "updatedAt", doc, "updatedAt");
    json_object_set_new(
        v, "links",
        json_pack("{s{ss} s{ss}}", "self", "href",
                  tsr_arena_printf(a, "%s/api/v1/spaces/%s", base, id), "assignments", "href",
                  tsr_arena_printf(a, "%s/api/v1/spaces/%s/assignments", base, id)));
    /* Qlik's space actions from ours. */
    json_t *qa = json_array();
    if ((actions & TSR_SPACES_READ) != 0) {
        json_array_append_new(qa, json_string("read"));
    }
    if ((actions & (TSR_SPACES_EDIT | TSR_SPACES_PUBLISH)) != 0) {
        json_array_append_new(qa, json_string("create"));
    }
    if ((actions & TSR_SPACES_MANAGE) != 0) {
        json_array_append_new(qa, json_string("update"));
    }
    if ((actions & TSR_SPACES_DELETE) != 0) {
        json_array_append_new(qa, json_string("delete"));
        json_array_append_new(qa, json_string("change_owner"));
    }
    if ((actions & TSR_SPACES_PUBLISH) != 0) {
        json_array_append_new(qa, json_string("publish"));
    }
    json_t *assignable = json_array();
    for (const char *const *r = tsr_spaces_roles(); *r != NULL; r++) {
        if (tsr_spaces_role_assignable(type, *r)) {
            json_array_append_new(assignable, json_string(*r));
        }
    }
    json_t *roles = acl != NULL && (acl->owner || c->admin) ? json_deep_copy(assignable)
                    : acl != NULL                           ? tsr_sp__acl_roles_json(acl)
                                                            : json_array();
    json_object_set_new(
        v, "meta",
        json_pack("{so so so}", "actions", qa, "assignableRoles", assignable, "roles", roles));
    return v;
}

json_t *tsr_sp__assignment_view(tsr_sp__ctx_t *c, const json_t *doc) {
    const char *id = json_string_value(json_object_get(doc, "id"));
    const char *space = json_string_value(json_object_get(doc, "spaceId"));
    const char *base = tsr_req_base_url(c->req);
    tsr_arena_t *a = tsr_req_arena(c->req);
    json_t *v = json_object();
    copy_str(v, "id", doc, "id");
    copy_str(v, "type", doc, "type");
    copy_str(v, "assigneeId", doc, "assigneeId");
    json_t *roles = json_object_get(doc, "roles");
    json_object_set_new(v, "roles", roles != NULL ? json_deep_copy(roles) : json_array());
    copy_str(v, "spaceId", doc, "spaceId");
    copy_str(v, "tenantId", doc, "tenantId");
    copy_str(v, "createdAt", doc, "createdAt");
    copy_str(v, "createdBy", doc, "createdBy");
    copy_str(v, "updatedAt", doc, "updatedAt");
    copy_str(v, "updatedBy", doc, "updatedBy");
    json_object_set_new(
        v, "links",
        json_pack("{s{ss} s{ss}}", "self", "href",
                  tsr_arena_printf(a, "%s/api/v1/spaces/%s/assignments/%s", base, space, id),
                  "space", "href", tsr_arena_printf(a, "%s/api/v1/spaces/%s", base, space)));
    return v;
}

/* Qlik's app privileges from our actions. */
static json_t *app_privileges(unsigned a) {
    json_t *p = json_array();
    static const struct {
        unsigned need;
        const char *name;
    } MAP[] = {
        {TSR_SPACES_READ, "read"},
        {TSR_SPACES_EDIT, "update"},
        {TSR_SPACES_DELETE, "delete"},
        {TSR_SPACES_RELOAD, "reload"},
        {TSR_SPACES_EDIT, "import"},
        {TSR_SPACES_PUBLISH, "publish"},
        {TSR_SPACES_READ | TSR_SPACES_EXPORT, "duplicate"},
        {TSR_SPACES_EXPORT, "export"},
        {TSR_SPACES_EXPORT, "exportdata"},
        {TSR_SPACES_MANAGE | TSR_SPACES_DELETE, "change_owner"},
        {TSR_SPACES_DELETE, "change_space"},
    };
    for (size_t i = 0; i < sizeof MAP / sizeof MAP[0]; i++) {
        if ((a & MAP[i].need) == MAP[i].need) {
            json_array_append_new(p, json_string(MAP[i].name));
        }
    }
    return p;
}

static json_t *app_attributes(const json_t *doc) {
    json_t *attrs = json_object_get(doc, "resourceAttributes");
    json_t *v = json_is_object(attrs) ? json_deep_copy(attrs) : json_object();
    const char *space = json_string_value(json_object_get(doc, "spaceId"));
    copy_str(v, "id", doc, "id");
    copy_str(v, "name", doc, "name");
    json_object_set_new(v, "description",
                        json_string(json_string_value(json_object_get(doc, "description")) != NULL
                                        ? json_string_value(json_object_get(doc, "description"))
                                        : ""));
    copy_str(v, "createdDate", doc, "createdAt");
    copy_str(v, "modifiedDate", doc, "updatedAt");
    copy_str(v, "ownerId", doc, "ownerId");
    copy_str(v, "owner", doc, "ownerId");
    copy_str(v, "originAppId", doc, "originAppId");
    copy_str(v, "publishTime", doc, "publishTime");
    json_object_set_new(v, "published",
                        json_boolean(json_is_true(json_object_get(doc, "published"))));
    json_object_set_new(v, "spaceId", json_string(space != NULL ? space : ""));
    json_object_set_new(v, "_resourcetype", json_string("app"));
    if (json_object_get(v, "thumbnail") == NULL) {
        json_object_set_new(v, "thumbnail", json_string(""));
    }
    if (json_object_get(v, "custom") == NULL) {
        json_object_set_new(v, "custom", json_object());
    }
    json_object_set_new(v, "hasSectionAccess", json_false());
    json_object_set_new(v, "encrypted", json_true());
    return v;
}

json_t *tsr_sp__app_view(tsr_sp__ctx_t *c, const json_t *doc, unsigned actions) {
    (void)c;
    json_t *create = json_array();
    if ((actions & TSR_SPACES_READ) != 0) {
        static const char *const KINDS[] = {"sheet", "bookmark", "story"};
        for (size_t i = 0; i < 3; i++) {
            json_array_append_new(create, json_pack("{ss sb}", "resource", KINDS[i], "canCreate",
                                                    (actions & TSR_SPACES_EDIT) != 0 || i > 0));
        }
    }
    return json_pack("{so so so}", "attributes", app_attributes(doc), "privileges",
                     app_privileges(actions), "create", create);
}

json_t *tsr_sp__datafile_view(tsr_sp__ctx_t *c, const json_t *doc, unsigned actions) {
    const char *space = json_string_value(json_object_get(doc, "spaceId"));
    const char *name = json_string_value(json_object_get(doc, "name"));
    json_t *v = json_object();
    copy_str(v, "id", doc, "id");
    copy_str(v, "name", doc, "name");
    const char *slash = name != NULL ? strrchr(name, '/') : NULL;
    json_object_set_new(v, "baseName", json_string(slash != NULL ? slash + 1 : name));
    json_object_set_new(v, "folder", json_false());
    json_object_set_new(v, "folderPath",
                        json_stringn(name, slash != NULL ? (size_t)(slash - name) : 0));
    json_object_set_new(v, "size", json_integer(json_integer_value(json_object_get(doc, "size"))));
    copy_str(v, "ownerId", doc, "ownerId");
    if (space != NULL) {
        json_object_set_new(v, "spaceId", json_string(space));
        json_object_set_new(v, "connectionId", json_string(space));
    }
    copy_str(v, "appId", doc, "appId");
    copy_str(v, "createdDate", doc, "createdAt");
    copy_str(v, "modifiedDate", doc, "updatedAt");
    copy_str(v, "contentUpdatedDate", doc, "updatedAt");
    json_object_set_new(v, "actions", tsr_sp__actions_json(actions));
    json_object_set_new(
        v, "qri",
        json_string(tsr_arena_printf(
            tsr_req_arena(c->req), "qdf:qix-datafiles:%s:%s:%s", c->tenant,
            space != NULL ? tsr_arena_printf(tsr_req_arena(c->req), "sid@%s", space) : "personal",
            name != NULL ? name : "")));
    json_object_set_new(v, "links",
                        json_pack("{s{ss}}", "self", "href",
                                  tsr_arena_printf(tsr_req_arena(c->req), "%s/api/v1/data-files/%s",
                                                   tsr_req_base_url(c->req),
                                                   json_string_value(json_object_get(doc, "id")))));
    return v;
}

json_t *tsr_sp__item_view(tsr_sp__ctx_t *c, const json_t *doc, unsigned actions) {
    const char *id = json_string_value(json_object_get(doc, "id"));
    const char *type = json_string_value(json_object_get(doc, "resourceType"));
    const char *base = tsr_req_base_url(c->req);
    tsr_arena_t *a = tsr_req_arena(c->req);
    bool app = type != NULL && strcmp(type, "app") == 0;
    json_t *v = json_object();
    copy_str(v, "id", doc, "id");
    copy_str(v, "name", doc, "name");
    json_object_set_new(v, "description",
                        json_string(json_string_value(json_object_get(doc, "description")) != NULL
                                        ? json_string_value(json_object_get(doc, "description"))
                                        : ""));
    copy_str(v, "resourceType", doc, "resourceType");
    copy_str(v, "resourceId", doc, "id");
    json_object_set_new(v, "resourceAttributes",
                        app ? app_attributes(doc) : tsr_sp__datafile_view(c, doc, actions));
    json_object_set_new(v, "resourceCustomAttributes", json_object());
    copy_str(v, "resourceCreatedAt", doc, "createdAt");
    copy_str(v, "resourceUpdatedAt", doc, "updatedAt");
    if (!app) {
        json_object_set_new(
            v, "resourceSize",
            json_pack("{sI}", "appFile", json_integer_value(json_object_get(doc, "size"))));
    }
    copy_str(v, "spaceId", doc, "spaceId");
    copy_str(v, "ownerId", doc, "ownerId");
    copy_str(v, "creatorId", doc, "createdBy");
    copy_str(v, "updaterId", doc, "updatedBy");
    copy_str(v, "tenantId", doc, "tenantId");
    copy_str(v, "createdAt", doc, "createdAt");
    copy_str(v, "updatedAt", doc, "updatedAt");
    json_t *acts = tsr_sp__actions_json(actions);
    json_object_set_new(v, "actions", json_deep_copy(acts));
    json_object_set_new(v, "collectionIds", json_array());
    json_object_set_new(v, "isFavorited", json_false());
    json_object_set_new(
        v, "meta",
        json_pack("{so s[] s[] sb}", "actions", acts, "collections", "tags", "isFavorited", 0));
    json_t *links =
        json_pack("{s{ss}}", "self", "href", tsr_arena_printf(a, "%s/api/v1/items/%s", base, id));
    json_object_set_new(
        links, "open",
        json_pack("{ss}", "href",
                  app ? tsr_arena_printf(a, "%s/sense/app/%s", base, id)
                      : tsr_arena_printf(a, "%s/api/v1/data-files/%s/content", base, id)));
    json_object_set_new(v, "links", links);
    return v;
}

void tsr_sp__reply_page(tsr_sp__ctx_t *c, tsr_req_t *req, const json_t *docs,
                        json_t *(*view)(tsr_sp__ctx_t *, const json_t *, unsigned),
                        const char *cursor_name, const char *next) {
    json_t *data = json_array();
    size_t i;
    json_t *d;
    json_array_foreach(docs, i, d) {
        unsigned a = (unsigned)json_integer_value(json_object_get(d, "_actions"));
        json_array_append_new(data, view(c, d, a));
    }
    tsr_req_reply_json(
        req, 200,
        json_pack("{so so}", "data", data, "links", tsr_sp__links(req, cursor_name, next)));
}
