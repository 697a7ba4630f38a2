/*
 * pkg/spaces HTTP handlers for the item catalog (/api/v1/items), app records (/api/v1/apps:
 * create, get, rename, delete, copy, move, publish) and access decisions for other services
 * (/internal/v1/access). An app's content belongs to the engine; spaces keeps the record, one
 * item document per app (item id == app id), and announces every change on tessera.apps.
 */
#include <string.h>

#include "log.h"
#include "spaces_int.h"

/* ---- shared --------------------------------------------------------------------------------- */

static const char *type_of(const json_t *doc) {
    const char *t = json_string_value(json_object_get(doc, "resourceType"));
    return t != NULL ? t : "app";
}

tsr_err_t tsr_sp__item_delete(tsr_sp__ctx_t *c, const json_t *doc, tsr_error_t *err) {
    tsr_sp__event_t ev = {0};
    const char *id = json_string_value(json_object_get(doc, "id"));
    bool file = strcmp(type_of(doc), "datafile") == 0;
    json_t *space = json_object_get(doc, "spaceId");
    tsr_err_t rc = tsr_sp__event_make(
        c, TSR_SP__T_APPS, file ? "datafile" : "app", "deleted", id,
        json_pack("{ss sO sO sO}", "id", id, "name", json_object_get(doc, "name"), "spaceId",
                  space != NULL ? space : json_null(), "ownerId", json_object_get(doc, "ownerId")),
        &ev, err);
    if (rc == TSR_OK) {
        rc = tsr_store_doc_del(c->s->store, c->tenant, TSR_SP__C_ITEMS, id, 0, &ev.row, 1, err);
    }
    tsr_sp__event_cleanup(&ev);
    if (rc == TSR_OK && file) {
        /* The record is gone, so nothing reads the blob any more; a failure here leaves only
         * unreachable bytes behind. */
        char key[TSR_BLOB_KEY_MAX + 1];
        const char *ver =
            tsr_arena_printf(tsr_req_arena(c->req), "%lld",
                             (long long)json_integer_value(json_object_get(doc, "blobVersion")));
        tsr_error_t e2;
        if (tsr_blob_key_format(key, sizeof key, c->tenant, "datafile", id, ver, &e2) != TSR_OK ||
            tsr_blob_del(c->s->blobs, c->tenant, key, &e2) != TSR_OK) {
            tsr_log_ctx_t lc = {tsr_req_id(c->req), c->tenant, c->user};
            tsr_log_warn(&lc, "data file %s: blob not deleted: %s", id, e2.msg);
        }
    }
    return rc;
}

/* Optional JSON body: an empty body reads as {}. */
static tsr_err_t body_opt(tsr_sp__ctx_t *c, json_t **out, tsr_error_t *err) {
    size_t len = 0;
    (void)tsr_req_body(c->req, &len);
    if (len == 0) {
        *out = json_object();
        return TSR_OK;
    }
    return tsr_sp__body(c, out, err);
}

/* ---- items ---------------------------------------------------------------------------------- */

typedef struct {
    const char *types;       /* csv of resource types when more than one */
    const char *name;        /* substring of the name */
    const char *query;       /* substring of name or description */
    const char *not_owner;   /* ownerId to leave out */
    const char *space_types; /* csv: shared, managed, data, personal */
    bool personal;           /* spaceId=personal: the caller's own personal items */
} item_filter_t;

static bool item_keep(tsr_sp__ctx_t *c, json_t *doc, void *ud) {
    item_filter_t *f = ud;
    const char *name = json_string_value(json_object_get(doc, "name"));
    if (f->types != NULL && !tsr_sp__csv_has(f->types, type_of(doc))) {
        return false;
    }
    if (f->name != NULL && !tsr_sp__contains_ci(name, f->name)) {
        return false;
    }
    if (f->query != NULL && !tsr_sp__contains_ci(name, f->query) &&
        !tsr_sp__contains_ci(json_string_value(json_object_get(doc, "description")), f->query)) {
        return false;
    }
    const char *owner = json_string_value(json_object_get(doc, "ownerId"));
    if (f->not_owner != NULL && owner != NULL && strcmp(owner, f->not_owner) == 0) {
        return false;
    }
    if (f->personal && (owner == NULL || strcmp(owner, c->user) != 0)) {
        return false;
    }
    const char *space = json_string_value(json_object_get(doc, "spaceId"));
    if (f->space_types != NULL) {
        const char *st = TSR_SP__PERSONAL;
        const tsr_sp__acl_entry_t *e = NULL;
        tsr_error_t e2;
        if (space != NULL) {
            if (tsr_sp__acl_space(c, space, &e, &e2) != TSR_OK || !e->found) {
                return false;
            }
            st = e->type;
        }
        if (!tsr_sp__csv_has(f->space_types, st)) {
            return false;
        }
    }
    unsigned a = 0;
    tsr_error_t e3;
    if (tsr_sp__item_actions(c, doc, &a, &e3) != TSR_OK || (a & TSR_SPACES_READ) == 0) {
        return false;
    }
    json_object_set_new(doc, "_actions", json_integer(a));
    return true;
}

/* "app,datafile" or Qlik's "app[qvd]" forms: the base names, checked. *single: the one type
 * when there is exactly one. */
static tsr_err_t parse_types(tsr_req_t *req, const char *csv, const char **types,
                             const char **single, tsr_error_t *err) {
    tsr_buf_t b;
    tsr_str_t s = tsr_str(csv), tok;
    size_t n = 0;
    tsr_buf_init(&b, 4096);
    *types = NULL;
    *single = NULL;
    while (tsr_str_next_tok(&s, ',', &tok)) {
        tok = tsr_str_trim(tok);
        for (size_t i = 0; i < tok.n; i++) {
            if (tok.p[i] == '[') {
                tok.n = i;
                break;
            }
        }
        if (tok.n == 0) {
            continue;
        }
        if (tsr_buf_appendf(&b, "%s%.*s", n > 0 ? "," : "", (int)tok.n, tok.p) != TSR_OK) {
            tsr_buf_cleanup(&b);
            return tsr_error_set(err, TSR_EINVAL, "resourceType is too long");
        }
        n++;
    }
    if (n == 0) {
        tsr_buf_cleanup(&b);
        return tsr_error_set(err, TSR_EINVAL, "resourceType is empty");
    }
    char *v = tsr_arena_strdup(tsr_req_arena(req), b.data);
    tsr_buf_cleanup(&b);
    if (n == 1) {
        *single = v;
    } else {
        *types = v;
    }
    return TSR_OK;
}

tsr_err_t tsr_sp__h_items_list(tsr_req_t *req, void *ud, tsr_error_t *err) {
    static const char *const SORTS[] = {"createdAt", "updatedAt", "name", NULL};
    tsr_sp__ctx_t c;
    item_filter_t f = {0};
    tsr_store_filter_t filters[6];
    json_t *vals[6] = {NULL};
    size_t nv = 0;
    tsr_store_query_t q = {.filters = filters};
    json_t *docs = NULL;
    char *next = NULL;
    size_t limit = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) != TSR_OK ||
        (rc = tsr_sp__parse_limit(req, &limit, err)) != TSR_OK ||
        (rc = tsr_sp__parse_sort(req, SORTS, "createdAt", false, &q, err)) != TSR_OK) {
        goto out;
    }
    if (strcmp(q.sort, "name") == 0) {
        q.sort = "nameKey";
    }
#define ADD_FILTER(field, value)                                                                   \
    do {                                                                                           \
        vals[nv] = json_string(value);                                                             \
        filters[q.n_filters++] = (tsr_store_filter_t){(field), TSR_STORE_EQ, vals[nv++]};          \
    } while (0)
    const char *rt = tsr_req_query(req, "resourceType"), *single = NULL;
    if (rt != NULL) {
        if ((rc = parse_types(req, rt, &f.types, &single, err)) != TSR_OK) {
            goto out;
        }
        if (single != NULL) {
            ADD_FILTER("resourceType", single);
        }
    }
    const char *space = tsr_req_query(req, "spaceId");
    if (space != NULL) {
        if (strcmp(space, TSR_SP__PERSONAL) == 0) {
            f.personal = true;
            ADD_FILTER("scope", TSR_SP__PERSONAL);
        } else {
            /* A space the caller cannot read content of answers an empty page at once instead
             * of scanning it. */
            const tsr_sp__acl_entry_t *e = NULL;
            if ((rc = tsr_sp__acl_space(&c, space, &e, err)) != TSR_OK) {
                goto out;
            }
            if (((tsr_sp__acl_actions(&c, e, TSR_SPACES_RES_APP) |
                  tsr_sp__acl_actions(&c, e, TSR_SPACES_RES_DATAFILE)) &
                 TSR_SPACES_READ) == 0) {
                tsr_req_reply_json(
                    req, 200,
                    json_pack("{s[] so}", "data", "links", tsr_sp__links(req, "next", NULL)));
                goto out;
            }
            ADD_FILTER("spaceId", space);
        }
    }
    if (tsr_req_query(req, "ownerId") != NULL) {
        ADD_FILTER("ownerId", tsr_req_query(req, "ownerId"));
    }
    if (tsr_req_query(req, "createdByUserId") != NULL) {
        ADD_FILTER("createdBy", tsr_req_query(req, "createdByUserId"));
    }
    if (tsr_req_query(req, "resourceId") != NULL) {
        ADD_FILTER("id", tsr_req_query(req, "resourceId"));
    }
#undef ADD_FILTER
    f.name = tsr_req_query(req, "name");
    f.query = tsr_req_query(req, "query");
    f.not_owner = tsr_req_query(req, "notOwnerId");
    f.space_types = tsr_req_query(req, "spaceType");
    q.cursor = tsr_req_query(req, "next");
    if ((rc = tsr_sp__list(&c, TSR_SP__C_ITEMS, &q, limit, item_keep, &f, &docs, &next, err)) !=
        TSR_OK) {
        goto out;
    }
    tsr_sp__reply_page(&c, req, docs, tsr_sp__item_view, "next", next);
out:
    for (size_t k = 0; k < nv; k++) {
        json_decref(vals[k]);
    }
    json_decref(docs);
    free(next);
    return rc;
}

tsr_err_t tsr_sp__h_item_get(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    json_t *doc = NULL;
    const char *id = NULL;
    unsigned a = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) == TSR_OK &&
        (rc = tsr_sp__path_id(req, "itemId", &id, err)) == TSR_OK &&
        (rc = tsr_sp__item_get(&c, id, NULL, &doc, &a, err)) == TSR_OK) {
        tsr_req_reply_json(req, 200, tsr_sp__item_view(&c, doc, a));
    }
    json_decref(doc);
    return rc;
}

tsr_err_t tsr_sp__h_item_del(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    json_t *doc = NULL;
    const char *id = NULL;
    unsigned a = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) == TSR_OK &&
        (rc = tsr_sp__path_id(req, "itemId", &id, err)) == TSR_OK &&
        (rc = tsr_sp__item_get(&c, id, NULL, &doc, &a, err)) == TSR_OK &&
        (rc = tsr_sp__require(a, TSR_SPACES_DELETE, "item", err)) == TSR_OK &&
        (rc = tsr_sp__item_delete(&c, doc, err)) == TSR_OK) {
        tsr_req_reply_bytes(req, 204, NULL, "", 0);
    }
    json_decref(doc);
    return rc;
}

/* ---- apps ----------------------------------------------------------------------------------- */

static const char *const USAGES[] = {"ANALYTICS",         "DATA_PREPARATION",  "DATAFLOW_PREP",
                                     "SINGLE_TABLE_PREP", "DIRECT_QUERY_MODE", NULL};

/* The attributes object of an apps body: {attributes:{...}}; absent: {}. Borrowed. */
static tsr_err_t attributes_of(json_t *body, json_t **out, tsr_error_t *err) {
    json_t *a = json_object_get(body, "attributes");
    if (a == NULL || json_is_null(a)) {
        a = body; /* tolerate a flat body */
    }
    if (!json_is_object(a)) {
        return tsr_error_set(err, TSR_EINVAL, "attributes must be an object");
    }
    *out = a;
    return TSR_OK;
}

/* A target space id from a body member: NULL/"" means the personal space. */
static tsr_err_t space_arg(const json_t *obj, const char *key, const char **out, tsr_error_t *err) {
    const char *v = NULL;
    tsr_err_t rc = tsr_sp__str(obj, key, false, TSR_STORE_ID_MAX, &v, err);
    if (rc != TSR_OK) {
        return rc;
    }
    if (v != NULL && v[0] == '\0') {
        v = NULL;
    }
    if (v != NULL && !tsr_sp__is_id(v)) {
        return tsr_error_set(err, TSR_ENOTFOUND, "space %s not found", v);
    }
    *out = v;
    return TSR_OK;
}

/* A new app record. attrs: resourceAttributes to keep. */
static json_t *app_doc(tsr_sp__ctx_t *c, const char *name, const char *desc, const char *space,
                       json_t *attrs) {
    const char *now = tsr_sp__now(c->req);
    json_t *d =
        json_pack("{ss ss ss ss ss ss ss ss ss ss sb so}", "resourceType", "app", "name", name,
                  "nameKey", tsr_sp__lower(c->req, name), "description", desc != NULL ? desc : "",
                  "scope", space != NULL ? space : TSR_SP__PERSONAL, "ownerId", c->user,
                  "createdAt", now, "createdBy", c->user, "updatedAt", now, "updatedBy", c->user,
                  "published", 0, "resourceAttributes", attrs);
    if (space != NULL) {
        json_object_set_new(d, "spaceId", json_string(space));
    }
    return d;
}

/* Store a new app with its event and answer 200 with the NxApp. */
static tsr_err_t app_store(tsr_sp__ctx_t *c, const char *id, json_t *doc, const char *action,
                           json_t *data, tsr_error_t *err) {
    tsr_sp__event_t ev = {0};
    json_t *stored = NULL;
    unsigned a = 0;
    tsr_err_t rc = tsr_sp__event_make(c, TSR_SP__T_APPS, "app", action, id, data, &ev, err);
    if (rc == TSR_OK) {
        rc = tsr_store_doc_create(c->s->store, c->tenant, TSR_SP__C_ITEMS, id, doc, &ev.row, 1,
                                  &stored, err);
    }
    if (rc == TSR_OK) {
        rc = tsr_sp__item_actions(c, stored, &a, err);
    }
    if (rc == TSR_OK) {
        tsr_req_reply_json(c->req, 200, tsr_sp__app_view(c, stored, a));
    }
    tsr_sp__event_cleanup(&ev);
    json_decref(stored);
    return rc;
}

tsr_err_t tsr_sp__h_app_create(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    json_t *body = NULL, *attrs = NULL, *doc = NULL;
    const char *name = NULL, *desc = NULL, *space = NULL, *locale = NULL, *usage = NULL;
    char id[25];
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) != TSR_OK ||
        (rc = tsr_sp__body(&c, &body, err)) != TSR_OK ||
        (rc = attributes_of(body, &attrs, err)) != TSR_OK ||
        (rc = tsr_sp__str(attrs, "name", true, TSR_SP__NAME_MAX, &name, err)) != TSR_OK ||
        (rc = tsr_sp__str(attrs, "description", false, TSR_SP__DESC_MAX, &desc, err)) != TSR_OK ||
        (rc = tsr_sp__str(attrs, "locale", false, 64, &locale, err)) != TSR_OK ||
        (rc = tsr_sp__str(attrs, "usage", false, 32, &usage, err)) != TSR_OK ||
        (rc = space_arg(attrs, "spaceId", &space, err)) != TSR_OK ||
        (rc = tsr_sp__can_create_in(&c, space, err)) != TSR_OK) {
        goto out;
    }
    if (usage == NULL) {
        usage = "ANALYTICS";
    }
    bool ok = false;
    for (size_t i = 0; USAGES[i] != NULL; i++) {
        ok = ok || strcmp(USAGES[i], usage) == 0;
    }
    if (!ok) {
        rc = tsr_error_set(err, TSR_EINVAL, "usage '%s' is not known", usage);
        goto out;
    }
    tsr_id_new(id);
    doc = app_doc(&c, name, desc, space,
                  json_pack("{ss ss ss}", "usage", usage, "locale", locale != NULL ? locale : "",
                            "lastReloadTime", ""));
    rc = app_store(
        &c, id, doc, "created",
        json_pack("{ss ss ss? ss}", "id", id, "name", name, "spaceId", space, "ownerId", c.user),
        err);
out:
    json_decref(body);
    json_decref(doc);
    return rc;
}

tsr_err_t tsr_sp__h_app_privileges(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    tsr_err_t rc = tsr_sp__ctx_init(&c, ud, req, err);
    if (rc == TSR_OK) {
        tsr_req_reply_json(
            req, 200,
            json_pack("[sss]", "can_create_app", "can_import_app", "can_create_session_app"));
    }
    return rc;
}

/* The app at path parameter appId, readable by the caller. */
static tsr_err_t app_load(tsr_sp__ctx_t *c, json_t **doc, unsigned *a, tsr_error_t *err) {
    const char *id = NULL;
    tsr_err_t rc = tsr_sp__path_id(c->req, "appId", &id, err);
    if (rc != TSR_OK) {
        *doc = NULL;
        return rc;
    }
    return tsr_sp__item_get(c, id, "app", doc, a, err);
}

tsr_err_t tsr_sp__h_app_get(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    json_t *doc = NULL;
    unsigned a = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) == TSR_OK &&
        (rc = app_load(&c, &doc, &a, err)) == TSR_OK) {
        tsr_req_reply_json(req, 200, tsr_sp__app_view(&c, doc, a));
    }
    json_decref(doc);
    return rc;
}

/* Patch an app record with its event (app.updated unless action says otherwise) and answer
 * with the NxApp. patch is borrowed. */
static tsr_err_t app_patch(tsr_sp__ctx_t *c, const json_t *doc, json_t *patch, const char *action,
                           tsr_error_t *err) {
    tsr_sp__event_t ev = {0};
    json_t *stored = NULL;
    const char *id = json_string_value(json_object_get(doc, "id"));
    unsigned a = 0;
    json_object_set_new(patch, "updatedAt", json_string(tsr_sp__now(c->req)));
    json_object_set_new(patch, "updatedBy", json_string(c->user));
    tsr_err_t rc = tsr_sp__event_make(c, TSR_SP__T_APPS, "app", action, id,
                                      json_pack("{ss sO}", "id", id, "updates", patch), &ev, err);
    if (rc == TSR_OK) {
        rc = tsr_store_doc_patch(c->s->store, c->tenant, TSR_SP__C_ITEMS, id,
                                 json_integer_value(json_object_get(doc, "version")), patch,
                                 &ev.row, 1, &stored, err);
    }
    if (rc == TSR_OK) {
        rc = tsr_sp__item_actions(c, stored, &a, err);
    }
    if (rc == TSR_OK) {
        tsr_req_reply_json(c->req, 200, tsr_sp__app_view(c, stored, a));
    }
    tsr_sp__event_cleanup(&ev);
    json_decref(stored);
    return rc;
}

tsr_err_t tsr_sp__h_app_put(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    json_t *doc = NULL, *body = NULL, *attrs = NULL, *patch = json_object();
    const char *name = NULL, *desc = NULL;
    unsigned a = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) != TSR_OK ||
        (rc = app_load(&c, &doc, &a, err)) != TSR_OK ||
        (rc = tsr_sp__require(a, TSR_SPACES_EDIT, "app", err)) != TSR_OK ||
        (rc = tsr_sp__body(&c, &body, err)) != TSR_OK ||
        (rc = attributes_of(body, &attrs, err)) != TSR_OK ||
        (rc = tsr_sp__str(attrs, "name", false, TSR_SP__NAME_MAX, &name, err)) != TSR_OK ||
        (rc = tsr_sp__str(attrs, "description", false, TSR_SP__DESC_MAX, &desc, err)) != TSR_OK) {
        goto out;
    }
    if (name != NULL) {
        if (name[0] == '\0') {
            rc = tsr_error_set(err, TSR_EINVAL, "name must not be empty");
            goto out;
        }
        json_object_set_new(patch, "name", json_string(name));
        json_object_set_new(patch, "nameKey", json_string(tsr_sp__lower(req, name)));
    }
    if (desc != NULL) {
        json_object_set_new(patch, "description", json_string(desc));
    }
    rc = app_patch(&c, doc, patch, "updated", err);
out:
    json_decref(doc);
    json_decref(body);
    json_decref(patch);
    return rc;
}

tsr_err_t tsr_sp__h_app_del(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    json_t *doc = NULL;
    unsigned a = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) == TSR_OK &&
        (rc = app_load(&c, &doc, &a, err)) == TSR_OK &&
        (rc = tsr_sp__require(a, TSR_SPACES_DELETE, "app", err)) == TSR_OK &&
        (rc = tsr_sp__item_delete(&c, doc, err)) == TSR_OK) {
        /* Qlik answers 200 without a body. */
        tsr_req_reply_bytes(req, 200, NULL, "", 0);
    }
    json_decref(doc);
    return rc;
}

tsr_err_t tsr_sp__h_app_copy(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    json_t *doc = NULL, *body = NULL, *attrs = NULL, *ndoc = NULL;
    const char *name = NULL, *desc = NULL, *space = NULL;
    char id[25];
    unsigned a = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) != TSR_OK ||
        (rc = app_load(&c, &doc, &a, err)) != TSR_OK ||
        (rc = tsr_sp__require(a, TSR_SPACES_READ | TSR_SPACES_EXPORT, "app", err)) != TSR_OK ||
        (rc = body_opt(&c, &body, err)) != TSR_OK ||
        (rc = attributes_of(body, &attrs, err)) != TSR_OK ||
        (rc = tsr_sp__str(attrs, "name", false, TSR_SP__NAME_MAX, &name, err)) != TSR_OK ||
        (rc = tsr_sp__str(attrs, "description", false, TSR_SP__DESC_MAX, &desc, err)) != TSR_OK ||
        (rc = space_arg(attrs, "spaceId", &space, err)) != TSR_OK ||
        (rc = tsr_sp__can_create_in(&c, space, err)) != TSR_OK) {
        goto out;
    }
    const char *src = json_string_value(json_object_get(doc, "id"));
    if (name == NULL || name[0] == '\0') {
        name = json_string_value(json_object_get(doc, "name"));
    }
    if (desc == NULL) {
        desc = json_string_value(json_object_get(doc, "description"));
    }
    json_t *ra = json_object_get(doc, "resourceAttributes");
    tsr_id_new(id);
    ndoc = app_doc(&c, name, desc, space, ra != NULL ? json_deep_copy(ra) : json_object());
    json_object_set_new(ndoc, "sourceAppId", json_string(src));
    /* The engine copies the content first (apps_content.c): no record without its content. */
    if ((rc = tsr_sp__app_content_copy(&c, src, id, name, false, err)) != TSR_OK) {
        goto out;
    }
    rc = app_store(&c, id, ndoc, "created",
                   json_pack("{ss ss ss? ss ss}", "id", id, "name", name, "spaceId", space,
                             "ownerId", c.user, "sourceAppId", src),
                   err);
    tsr_sp__app_content_orphaned(&c, id, rc, err);
out:
    json_decref(doc);
    json_decref(body);
    json_decref(ndoc);
    return rc;
}

/* Move app (doc) to space (NULL: its owner's personal space). */
static tsr_err_t app_move(tsr_sp__ctx_t *c, json_t *doc, unsigned a, const char *space,
                          tsr_error_t *err) {
    json_t *patch = NULL;
    tsr_err_t rc = tsr_sp__require(a, TSR_SPACES_DELETE, "app", err);
    if (rc == TSR_OK) {
        rc = tsr_sp__can_create_in(c, space, err);
    }
    if (rc != TSR_OK) {
        return rc;
    }
    patch = json_pack("{so ss}", "spaceId", space != NULL ? json_string(space) : json_null(),
                      "scope", space != NULL ? space : TSR_SP__PERSONAL);
    rc = app_patch(c, doc, patch, "updated", err);
    json_decref(patch);
    return rc;
}

tsr_err_t tsr_sp__h_app_move(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    json_t *doc = NULL, *body = NULL;
    const char *space = NULL;
    unsigned a = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) != TSR_OK ||
        (rc = app_load(&c, &doc, &a, err)) != TSR_OK ||
        (rc = tsr_sp__body(&c, &body, err)) != TSR_OK ||
        (rc = space_arg(body, "spaceId", &space, err)) != TSR_OK) {
        goto out;
    }
    if (space == NULL) {
        rc = tsr_error_set(err, TSR_EINVAL, "spaceId is required (DELETE moves to personal)");
        goto out;
    }
    rc = app_move(&c, doc, a, space, err);
out:
    json_decref(doc);
    json_decref(body);
    return rc;
}

tsr_err_t tsr_sp__h_app_unmove(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    json_t *doc = NULL;
    unsigned a = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) == TSR_OK &&
        (rc = app_load(&c, &doc, &a, err)) == TSR_OK) {
        const char *owner = json_string_value(json_object_get(doc, "ownerId"));
        /* The personal space is the owner's: only the owner (or a TenantAdmin) moves there. */
        if (!c.admin && (owner == NULL || strcmp(owner, c.user) != 0)) {
            rc = tsr_error_set(err, TSR_EFORBIDDEN, "only the app's owner moves it to personal");
        } else {
            rc = app_move(&c, doc, a, NULL, err);
        }
    }
    json_decref(doc);
    return rc;
}

tsr_err_t tsr_sp__h_app_publish(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    json_t *doc = NULL, *body = NULL, *attrs = NULL, *ndoc = NULL;
    const tsr_sp__acl_entry_t *e = NULL;
    const char *space = NULL, *name = NULL, *desc = NULL;
    char id[25];
    unsigned a = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) != TSR_OK ||
        (rc = app_load(&c, &doc, &a, err)) != TSR_OK ||
        (rc = tsr_sp__require(a, TSR_SPACES_PUBLISH, "app", err)) != TSR_OK ||
        (rc = tsr_sp__body(&c, &body, err)) != TSR_OK ||
        (rc = space_arg(body, "spaceId", &space, err)) != TSR_OK) {
        goto out;
    }
    if (json_is_true(json_object_get(doc, "published"))) {
        rc = tsr_error_set(err, TSR_EINVAL, "a published app cannot be published again");
        goto out;
    }
    attrs = json_object_get(body, "attributes");
    if (attrs != NULL && !json_is_object(attrs)) {
        rc = tsr_error_set(err, TSR_EINVAL, "attributes must be an object");
        goto out;
    }
    if ((rc = tsr_sp__str(attrs, "name", false, TSR_SP__NAME_MAX, &name, err)) != TSR_OK ||
        (rc = tsr_sp__str(attrs, "description", false, TSR_SP__DESC_MAX, &desc, err)) != TSR_OK) {
        goto out;
    }
    if (space == NULL) {
        rc = tsr_error_set(err, TSR_EINVAL, "spaceId of a managed space is required");
        goto out;
    }
    if ((rc = tsr_sp__acl_space(&c, space, &e, err)) != TSR_OK) {
        goto out;
    }
    unsigned sa = tsr_sp__acl_actions(&c, e, TSR_SPACES_RES_SPACE);
    if ((sa & TSR_SPACES_READ) == 0) {
        rc = tsr_error_set(err, TSR_ENOTFOUND, "space %s not found", space);
        goto out;
    }
    if (strcmp(e->type, "managed") != 0) {
        rc = tsr_error_set(err, TSR_EINVAL, "apps are published to managed spaces only");
        goto out;
    }
    if ((rc = tsr_sp__require(sa, TSR_SPACES_PUBLISH, "space", err)) != TSR_OK) {
        goto out;
    }
    const char *src = json_string_value(json_object_get(doc, "id"));
    if (name == NULL || name[0] == '\0') {
        name = json_string_value(json_object_get(doc, "name"));
    }
    if (desc == NULL) {
        desc = json_string_value(json_object_get(doc, "description"));
    }
    json_t *ra = json_object_get(doc, "resourceAttributes");
    tsr_id_new(id);
    ndoc = app_doc(&c, name, desc, space, ra != NULL ? json_deep_copy(ra) : json_object());
    json_object_set_new(ndoc, "published", json_true());
    json_object_set_new(ndoc, "publishTime", json_string(tsr_sp__now(req)));
    json_object_set_new(ndoc, "originAppId", json_string(src));
    json_object_set_new(ndoc, "sourceAppId", json_string(src));
    if ((rc = tsr_sp__app_content_copy(&c, src, id, name, true, err)) != TSR_OK) {
        goto out;
    }
    rc = app_store(&c, id, ndoc, "published",
                   json_pack("{ss ss ss ss ss}", "id", id, "name", name, "spaceId", space,
                             "ownerId", c.user, "originAppId", src),
                   err);
    tsr_sp__app_content_orphaned(&c, id, rc, err);
out:
    json_decref(doc);
    json_decref(body);
    json_decref(ndoc);
    return rc;
}

/* Republish: refresh a published copy (targetId) from its origin; the engine copies the
 * content again on app.published with sourceAppId. */
tsr_err_t tsr_sp__h_app_republish(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    json_t *doc = NULL, *body = NULL, *target = NULL, *patch = NULL, *stored = NULL;
    tsr_sp__event_t ev = {0};
    const char *tid = NULL, *name = NULL, *desc = NULL;
    unsigned a = 0, ta = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) != TSR_OK ||
        (rc = app_load(&c, &doc, &a, err)) != TSR_OK ||
        (rc = tsr_sp__require(a, TSR_SPACES_PUBLISH, "app", err)) != TSR_OK ||
        (rc = tsr_sp__body(&c, &body, err)) != TSR_OK ||
        (rc = tsr_sp__str(body, "targetId", true, TSR_STORE_ID_MAX, &tid, err)) != TSR_OK) {
        goto out;
    }
    json_t *attrs = json_object_get(body, "attributes");
    if (attrs != NULL && !json_is_object(attrs)) {
        rc = tsr_error_set(err, TSR_EINVAL, "attributes must be an object");
        goto out;
    }
    if ((rc = tsr_sp__str(attrs, "name", false, TSR_SP__NAME_MAX, &name, err)) != TSR_OK ||
        (rc = tsr_sp__str(attrs, "description", false, TSR_SP__DESC_MAX, &desc, err)) != TSR_OK) {
        goto out;
    }
    if (!tsr_sp__is_id(tid)) {
        rc = tsr_error_set(err, TSR_ENOTFOUND, "app %s not found", tid);
        goto out;
    }
    if ((rc = tsr_sp__item_get(&c, tid, "app", &target, &ta, err)) != TSR_OK) {
        goto out;
    }
    const char *src = json_string_value(json_object_get(doc, "id"));
    const char *origin = json_string_value(json_object_get(target, "originAppId"));
    if (!json_is_true(json_object_get(target, "published"))) {
        rc = tsr_error_set(err, TSR_EINVAL, "targetId is not a published app");
        goto out;
    }
    /* Qlik checks the origin unless told not to. */
    if (!json_is_false(json_object_get(body, "checkOriginAppId")) &&
        (origin == NULL || strcmp(origin, src) != 0)) {
        rc = tsr_error_set(err, TSR_ECONFLICT, "the target was not published from this app");
        goto out;
    }
    if ((rc = tsr_sp__require(ta, TSR_SPACES_PUBLISH, "published app", err)) != TSR_OK) {
        goto out;
    }
    const char *now = tsr_sp__now(req);
    patch = json_pack("{ss ss ss ss}", "publishTime", now, "sourceAppId", src, "updatedAt", now,
                      "updatedBy", c.user);
    if (name != NULL && name[0] != '\0') {
        json_object_set_new(patch, "name", json_string(name));
        json_object_set_new(patch, "nameKey", json_string(tsr_sp__lower(req, name)));
    }
    if (desc != NULL) {
        json_object_set_new(patch, "description", json_string(desc));
    }
    if ((rc = tsr_sp__event_make(&c, TSR_SP__T_APPS, "app", "published", tid,
                                 json_pack("{ss sO ss ss}", "id", tid, "spaceId",
                                           json_object_get(target, "spaceId"), "originAppId", src,
                                           "sourceAppId", src),
                                 &ev, err)) != TSR_OK ||
        (rc = tsr_store_doc_patch(c.s->store, c.tenant, TSR_SP__C_ITEMS, tid,
                                  json_integer_value(json_object_get(target, "version")), patch,
                                  &ev.row, 1, &stored, err)) != TSR_OK) {
        goto out;
    }
    tsr_req_reply_json(req, 200, tsr_sp__app_view(&c, stored, ta));
out:
    tsr_sp__event_cleanup(&ev);
    json_decref(doc);
    json_decref(body);
    json_decref(target);
    json_decref(patch);
    json_decref(stored);
    return rc;
}

/* ---- access decisions ------------------------------------------------------------------------ */

tsr_err_t tsr_sp__h_access(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    json_t *doc = NULL, *out = NULL;
    unsigned a = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) != TSR_OK) {
        return rc;
    }
    const char *res = tsr_req_query(req, "resource");
    const char *colon = res != NULL ? strchr(res, ':') : NULL;
    if (colon == NULL) {
        return tsr_error_set(err, TSR_EINVAL,
                             "resource must be app:<id>, datafile:<id>, item:<id> or space:<id>");
    }
    char kind[16];
    size_t kn = (size_t)(colon - res);
    const char *id = colon + 1;
    if (kn == 0 || kn >= sizeof kind) {
        return tsr_error_set(err, TSR_EINVAL, "unknown resource kind");
    }
    memcpy(kind, res, kn);
    kind[kn] = '\0';
    if (!tsr_sp__is_id(id)) {
        return tsr_error_set(err, TSR_ENOTFOUND, "%s not found", res);
    }
    if (strcmp(kind, "space") == 0) {
        const tsr_sp__acl_entry_t *e = NULL;
        if ((rc = tsr_sp__acl_space(&c, id, &e, err)) != TSR_OK) {
            return rc;
        }
        if (!e->found) {
            return tsr_error_set(err, TSR_ENOTFOUND, "%s not found", res);
        }
        a = tsr_sp__acl_actions(&c, e, TSR_SPACES_RES_SPACE);
        out = json_pack("{ss ss ss}", "resource", res, "resourceType", "space", "spaceId", id);
    } else if (strcmp(kind, "app") == 0 || strcmp(kind, "datafile") == 0 ||
               strcmp(kind, "item") == 0) {
        if ((rc = tsr_store_doc_get(c.s->store, c.tenant, TSR_SP__C_ITEMS, id, &doc, err)) !=
            TSR_OK) {
            return rc;
        }
        if (strcmp(kind, "item") != 0 && strcmp(type_of(doc), kind) != 0) {
            json_decref(doc);
            return tsr_error_set(err, TSR_ENOTFOUND, "%s not found", res);
        }
        if ((rc = tsr_sp__item_actions(&c, doc, &a, err)) != TSR_OK) {
            json_decref(doc);
            return rc;
        }
        json_t *sp = json_object_get(doc, "spaceId");
        out =
            json_pack("{ss ss sO sO sb}", "resource", res, "resourceType", type_of(doc), "spaceId",
                      sp != NULL ? sp : json_null(), "ownerId", json_object_get(doc, "ownerId"),
                      "published", json_is_true(json_object_get(doc, "published")));
        json_decref(doc);
    } else {
        return tsr_error_set(err, TSR_EINVAL, "unknown resource kind '%s'", kind);
    }
    /* An existing object the caller may not touch answers an empty set (the engine closes with
     * 4203); a missing or foreign one answers 404 (4204). Callers cache the answer until an
     * event on these topics names the space or the item. */
    json_object_set_new(out, "actions", tsr_sp__actions_json(a));
    json_object_set_new(out, "invalidatedBy", json_pack("[ss]", TSR_SP__T_SPACES, TSR_SP__T_APPS));
    tsr_req_reply_json(req, 200, out);
    return TSR_OK;
}
