/*
 * pkg/spaces HTTP handlers for /api/v1/spaces and their assignments. Validate, check the
 * caller's actions on the space, write through the store with the event in the same commit,
 * reply in Qlik's shapes. A space the caller cannot read answers 404, as a missing one.
 */
#include <string.h>

#include "spaces_int.h"

static const char *const SPACE_TYPES[] = {"shared", "managed", "data", NULL};

static bool valid_type(const char *t) {
    for (size_t i = 0; SPACE_TYPES[i] != NULL; i++) {
        if (t != NULL && strcmp(SPACE_TYPES[i], t) == 0) {
            return true;
        }
    }
    return false;
}

/* The space at path parameter spaceId, readable by the caller; *acl its cached standing. */
static tsr_err_t space_load(tsr_sp__ctx_t *c, json_t **doc, const tsr_sp__acl_entry_t **acl,
                            unsigned *actions, tsr_error_t *err) {
    const char *id = NULL;
    *doc = NULL;
    tsr_err_t rc = tsr_sp__path_id(c->req, "spaceId", &id, err);
    if (rc != TSR_OK) {
        return rc;
    }
    rc = tsr_sp__acl_space(c, id, acl, err);
    if (rc != TSR_OK) {
        return rc;
    }
    *actions = tsr_sp__acl_actions(c, *acl, TSR_SPACES_RES_SPACE);
    if (!(*acl)->found || (*actions & TSR_SPACES_READ) == 0) {
        return tsr_error_set(err, TSR_ENOTFOUND, "space %s not found", id);
    }
    return tsr_store_doc_get(c->s->store, c->tenant, TSR_SP__C_SPACES, id, doc, err);
}

/* ---- spaces --------------------------------------------------------------------------------- */

typedef struct {
    json_t *roles_by_space; /* spaceId -> roles of the caller's and its groups' assignments */
    const char *name;       /* substring filter, or NULL */
    const char *types;      /* csv filter when more than one type, or NULL */
    bool want_publish;      /* action=publish */
} space_filter_t;

static bool space_keep(tsr_sp__ctx_t *c, json_t *doc, void *ud) {
    space_filter_t *f = ud;
    if (f->name != NULL &&
        !tsr_sp__contains_ci(json_string_value(json_object_get(doc, "name")), f->name)) {
        return false;
    }
    if (f->types != NULL &&
        !tsr_sp__csv_has(f->types, json_string_value(json_object_get(doc, "type")))) {
        return false;
    }
    tsr_sp__acl_entry_t e;
    tsr_sp__acl_fill(
        c, doc, json_object_get(f->roles_by_space, json_string_value(json_object_get(doc, "id"))),
        &e);
    unsigned a = tsr_sp__acl_actions(c, &e, TSR_SPACES_RES_SPACE);
    if ((a & TSR_SPACES_READ) == 0 || (f->want_publish && (a & TSR_SPACES_PUBLISH) == 0)) {
        return false;
    }
    return true;
}

/* Every assignment of (type, assignee) merged into map: spaceId -> roles (several assignments
 * to one space, the caller's and its groups', unite). */
static tsr_err_t roles_into(tsr_sp__ctx_t *c, const char *type, const char *assignee, json_t *map,
                            tsr_error_t *err) {
    json_t *who = json_string(assignee), *jt = json_string(type);
    tsr_store_filter_t f[2] = {{"assigneeId", TSR_STORE_EQ, who}, {"type", TSR_STORE_EQ, jt}};
    tsr_store_query_t q = {.filters = f, .n_filters = 2, .limit = TSR_STORE_LIST_MAX};
    tsr_err_t rc = TSR_OK;
    char *cursor = NULL;
    do {
        tsr_store_page_t page = {0};
        q.cursor = cursor;
        rc = tsr_store_doc_list(c->s->store, c->tenant, TSR_SP__C_ASSIGN, &q, &page, err);
        free(cursor);
        cursor = NULL;
        if (rc != TSR_OK) {
            break;
        }
        size_t i;
        json_t *d;
        json_array_foreach(page.items, i, d) {
            const char *sid = json_string_value(json_object_get(d, "spaceId"));
            json_t *roles = json_object_get(d, "roles");
            if (sid == NULL || !json_is_array(roles)) {
                continue;
            }
            json_t *u = json_array();
            json_array_extend(u, json_object_get(map, sid));
            json_array_extend(u, roles);
            json_object_set_new(map, sid, u);
        }
        cursor = page.next_cursor;
        page.next_cursor = NULL;
        tsr_store_page_cleanup(&page);
    } while (cursor != NULL);
    json_decref(who);
    json_decref(jt);
    return rc;
}

/* The caller's assignments and its groups', spaceId -> roles. One query per group (an indexed
 * equality each; at most TSR_SP__MAX_GROUPS). */
static tsr_err_t my_roles(tsr_sp__ctx_t *c, json_t **out, tsr_error_t *err) {
    json_t *map = json_object();
    tsr_err_t rc = roles_into(c, "user", c->user, map, err);
    for (size_t g = 0; rc == TSR_OK && g < c->n_groups; g++) {
        rc = roles_into(c, "group", c->groups[g], map, err);
    }
    if (rc != TSR_OK) {
        json_decref(map);
        return rc;
    }
    *out = map;
    return TSR_OK;
}

tsr_err_t tsr_sp__h_spaces_list(tsr_req_t *req, void *ud, tsr_error_t *err) {
    static const char *const SORTS[] = {"name", "createdAt", "updatedAt", "type", NULL};
    tsr_sp__ctx_t c;
    space_filter_t f = {0};
    tsr_store_filter_t filters[2];
    tsr_store_query_t q = {.filters = filters};
    json_t *docs = NULL, *all = NULL, *type1 = NULL, *owner = NULL;
    char *next = NULL, *rest = NULL;
    size_t limit = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) != TSR_OK ||
        (rc = tsr_sp__parse_limit(req, &limit, err)) != TSR_OK ||
        (rc = tsr_sp__parse_sort(req, SORTS, "name", false, &q, err)) != TSR_OK) {
        goto out;
    }
    if (strcmp(q.sort, "name") == 0) {
        q.sort = "nameKey";
    }
    f.name = tsr_req_query(req, "name");
    const char *types = tsr_req_query(req, "type");
    if (types != NULL) {
        tsr_str_t s = tsr_str(types), tok;
        size_t n = 0;
        while (tsr_str_next_tok(&s, ',', &tok)) {
            char *t = tsr_str_dup(tsr_str_trim(tok));
            bool ok = valid_type(t);
            free(t);
            if (!ok) {
                rc = tsr_error_set(err, TSR_EINVAL, "type must be shared, managed or data");
                goto out;
            }
            n++;
        }
        if (n == 1) {
            type1 = json_string(types);
            filters[q.n_filters++] = (tsr_store_filter_t){"type", TSR_STORE_EQ, type1};
        } else {
            f.types = types;
        }
    }
    const char *owner_id = tsr_req_query(req, "ownerId");
    if (owner_id != NULL) {
        owner = json_string(owner_id);
        filters[q.n_filters++] = (tsr_store_filter_t){"ownerId", TSR_STORE_EQ, owner};
    }
    const char *action = tsr_req_query(req, "action");
    f.want_publish = action != NULL && strcmp(action, "publish") == 0;
    q.cursor = tsr_req_query(req, "next");
    if ((rc = my_roles(&c, &f.roles_by_space, err)) != TSR_OK ||
        (rc = tsr_sp__list(&c, TSR_SP__C_SPACES, &q, limit, space_keep, &f, &docs, &next, err)) !=
            TSR_OK) {
        goto out;
    }
    /* meta.count: every space matching the filters that the caller can see. */
    size_t count = 0;
    tsr_store_query_t qc = q;
    qc.cursor = NULL;
    if ((rc = tsr_sp__list(&c, TSR_SP__C_SPACES, &qc, TSR_SP__SCAN_MAX, space_keep, &f, &all, &rest,
                           err)) != TSR_OK) {
        goto out;
    }
    count = json_array_size(all);
    json_t *data = json_array();
    size_t i;
    json_t *d;
    json_array_foreach(docs, i, d) {
        tsr_sp__acl_entry_t e;
        tsr_sp__acl_fill(
            &c, d, json_object_get(f.roles_by_space, json_string_value(json_object_get(d, "id"))),
            &e);
        json_array_append_new(
            data, tsr_sp__space_view(&c, d, tsr_sp__acl_actions(&c, &e, TSR_SPACES_RES_SPACE), &e));
    }
    tsr_req_reply_json(req, 200,
                       json_pack("{so so s{sI s{s[ss]ss}}}", "data", data, "links",
                                 tsr_sp__links(req, "next", next), "meta", "count",
                                 (json_int_t)count, "personalSpace", "actions", "create", "read",
                                 "resourceType", "space"));
out:
    json_decref(f.roles_by_space);
    json_decref(docs);
    json_decref(all);
    json_decref(type1);
    json_decref(owner);
    free(next);
    free(rest);
    return rc;
}

tsr_err_t tsr_sp__h_space_types(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    tsr_err_t rc = tsr_sp__ctx_init(&c, ud, req, err);
    if (rc == TSR_OK) {
        tsr_req_reply_json(req, 200, json_pack("{s[sss]}", "data", "shared", "managed", "data"));
    }
    return rc;
}

tsr_err_t tsr_sp__h_space_create(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    json_t *body = NULL, *doc = NULL, *stored = NULL;
    tsr_sp__event_t ev = {0};
    const char *name = NULL, *type = NULL, *desc = NULL;
    char id[25];
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) != TSR_OK ||
        (rc = tsr_sp__body(&c, &body, err)) != TSR_OK ||
        (rc = tsr_sp__str(body, "name", true, TSR_SP__NAME_MAX, &name, err)) != TSR_OK ||
        (rc = tsr_sp__str(body, "type", false, 16, &type, err)) != TSR_OK ||
        (rc = tsr_sp__str(body, "description", false, TSR_SP__DESC_MAX, &desc, err)) != TSR_OK) {
        goto out;
    }
    if (type == NULL) {
        type = "shared";
    }
    if (!valid_type(type)) {
        rc = tsr_error_set(err, TSR_EINVAL, "type must be shared, managed or data");
        goto out;
    }
    /* Managed and data spaces are governed content: only a TenantAdmin creates them. */
    if (strcmp(type, "shared") != 0 && !c.admin) {
        rc = tsr_error_set(err, TSR_EFORBIDDEN, "creating a %s space needs the TenantAdmin role",
                           type);
        goto out;
    }
    const char *now = tsr_sp__now(req);
    tsr_id_new(id);
    doc =
        json_pack("{ss ss ss ss ss ss ss ss ss}", "name", name, "nameKey", tsr_sp__lower(req, name),
                  "type", type, "description", desc != NULL ? desc : "", "ownerId", c.user,
                  "createdAt", now, "createdBy", c.user, "updatedAt", now, "updatedBy", c.user);
    if ((rc = tsr_sp__event_make(
             &c, TSR_SP__T_SPACES, "space", "created", id,
             json_pack("{ss ss ss ss}", "id", id, "name", name, "type", type, "ownerId", c.user),
             &ev, err)) != TSR_OK) {
        goto out;
    }
    rc = tsr_store_doc_create(c.s->store, c.tenant, TSR_SP__C_SPACES, id, doc, &ev.row, 1, &stored,
                              err);
    if (rc == TSR_ECONFLICT) {
        rc = tsr_error_set(err, TSR_ECONFLICT, "a space named '%s' already exists", name);
    }
    if (rc != TSR_OK) {
        goto out;
    }
    tsr_sp__acl_entry_t e;
    tsr_sp__acl_fill(&c, stored, NULL, &e);
    tsr_req_reply_json(req, 201, tsr_sp__space_view(&c, stored, TSR_SPACES_ALL, &e));
out:
    tsr_sp__event_cleanup(&ev);
    json_decref(body);
    json_decref(doc);
    json_decref(stored);
    return rc;
}

tsr_err_t tsr_sp__h_space_get(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    json_t *doc = NULL;
    const tsr_sp__acl_entry_t *acl = NULL;
    unsigned a = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) == TSR_OK &&
        (rc = space_load(&c, &doc, &acl, &a, err)) == TSR_OK) {
        tsr_req_reply_json(req, 200, tsr_sp__space_view(&c, doc, a, acl));
    }
    json_decref(doc);
    return rc;
}

/* Apply name/description/ownerId changes (already validated; NULL: unchanged). */
static tsr_err_t space_update(tsr_sp__ctx_t *c, json_t *doc, const tsr_sp__acl_entry_t *acl,
                              unsigned actions, const char *name, const char *desc,
                              const char *owner, tsr_error_t *err) {
    json_t *patch = json_object(), *stored = NULL, *updates = json_object();
    tsr_sp__event_t ev = {0};
    const char *id = json_string_value(json_object_get(doc, "id"));
    tsr_err_t rc = TSR_OK;
    if ((name != NULL || desc != NULL) && (actions & TSR_SPACES_MANAGE) == 0) {
        rc = tsr_error_set(err, TSR_EFORBIDDEN, "changing this space needs the manage action");
        goto out;
    }
    if (owner != NULL && (actions & TSR_SPACES_DELETE) == 0) {
        rc = tsr_error_set(err, TSR_EFORBIDDEN, "only the owner or a TenantAdmin changes owner");
        goto out;
    }
    if (name != NULL) {
        json_object_set_new(patch, "name", json_string(name));
        json_object_set_new(patch, "nameKey", json_string(tsr_sp__lower(c->req, name)));
        json_object_set_new(updates, "name", json_string(name));
    }
    if (desc != NULL) {
        json_object_set_new(patch, "description", json_string(desc));
        json_object_set_new(updates, "description", json_string(desc));
    }
    if (owner != NULL) {
        json_object_set_new(patch, "ownerId", json_string(owner));
        json_object_set_new(updates, "ownerId", json_string(owner));
    }
    json_object_set_new(patch, "updatedAt", json_string(tsr_sp__now(c->req)));
    json_object_set_new(patch, "updatedBy", json_string(c->user));
    if ((rc = tsr_sp__event_make(c, TSR_SP__T_SPACES, "space", "updated", id,
                                 json_pack("{ss sO}", "id", id, "updates", updates), &ev, err)) !=
        TSR_OK) {
        goto out;
    }
    rc = tsr_store_doc_patch(c->s->store, c->tenant, TSR_SP__C_SPACES, id,
                             json_integer_value(json_object_get(doc, "version")), patch, &ev.row, 1,
                             &stored, err);
    if (rc == TSR_ECONFLICT) {
        rc = tsr_error_set(err, TSR_ECONFLICT,
                           "the space was changed concurrently or the name is taken");
    }
    if (rc == TSR_OK) {
        tsr_sp__acl_entry_t e = *acl;
        const char *o = json_string_value(json_object_get(stored, "ownerId"));
        e.owner = o != NULL && strcmp(o, c->user) == 0;
        tsr_req_reply_json(
            c->req, 200,
            tsr_sp__space_view(c, stored, tsr_sp__acl_actions(c, &e, TSR_SPACES_RES_SPACE), &e));
    }
out:
    tsr_sp__event_cleanup(&ev);
    json_decref(patch);
    json_decref(updates);
    json_decref(stored);
    return rc;
}

tsr_err_t tsr_sp__h_space_put(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    json_t *doc = NULL, *body = NULL;
    const tsr_sp__acl_entry_t *acl = NULL;
    const char *name = NULL, *desc = NULL, *owner = NULL;
    unsigned a = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) != TSR_OK ||
        (rc = space_load(&c, &doc, &acl, &a, err)) != TSR_OK ||
        (rc = tsr_sp__body(&c, &body, err)) != TSR_OK ||
        (rc = tsr_sp__str(body, "name", true, TSR_SP__NAME_MAX, &name, err)) != TSR_OK ||
        (rc = tsr_sp__str(body, "description", false, TSR_SP__DESC_MAX, &desc, err)) != TSR_OK ||
        (rc = tsr_sp__str(body, "ownerId", false, TSR_STORE_ID_MAX, &owner, err)) != TSR_OK) {
        goto out;
    }
    const char *cur_owner = json_string_value(json_object_get(doc, "ownerId"));
    if (owner != NULL && cur_owner != NULL && strcmp(owner, cur_owner) == 0) {
        owner = NULL;
    }
    rc = space_update(&c, doc, acl, a, name, desc != NULL ? desc : "", owner, err);
out:
    json_decref(doc);
    json_decref(body);
    return rc;
}

tsr_err_t tsr_sp__h_space_patch(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    json_t *doc = NULL, *body = NULL;
    const tsr_sp__acl_entry_t *acl = NULL;
    const char *name = NULL, *desc = NULL, *owner = NULL;
    unsigned a = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) != TSR_OK ||
        (rc = space_load(&c, &doc, &acl, &a, err)) != TSR_OK) {
        goto out;
    }
    size_t len = 0;
    (void)tsr_req_body(req, &len);
    if (len > c.s->json_max) {
        rc = tsr_error_set(err, TSR_ETOOBIG, "the JSON body is too large");
        goto out;
    }
    if ((rc = tsr_req_json(req, &body, err)) != TSR_OK) {
        goto out;
    }
    if (!json_is_array(body) || json_array_size(body) == 0 || json_array_size(body) > 16) {
        rc = tsr_error_set(err, TSR_EINVAL, "the body must be a JSON Patch array of 1..16 ops");
        goto out;
    }
    size_t i;
    json_t *op;
    json_array_foreach(body, i, op) {
        const char *o = NULL, *path = NULL, *value = NULL;
        if ((rc = tsr_sp__str(op, "op", true, 16, &o, err)) != TSR_OK ||
            (rc = tsr_sp__str(op, "path", true, 32, &path, err)) != TSR_OK) {
            goto out;
        }
        if (strcmp(o, "replace") != 0 && strcmp(o, "add") != 0) {
            rc = tsr_error_set(err, TSR_EINVAL, "op '%s' is not supported (replace)", o);
            goto out;
        }
        if (strcmp(path, "/name") == 0) {
            rc = tsr_sp__str(op, "value", true, TSR_SP__NAME_MAX, &value, err);
            name = value;
        } else if (strcmp(path, "/description") == 0) {
            rc = tsr_sp__str(op, "value", false, TSR_SP__DESC_MAX, &value, err);
            desc = value != NULL ? value : "";
        } else if (strcmp(path, "/ownerId") == 0) {
            rc = tsr_sp__str(op, "value", true, TSR_STORE_ID_MAX, &value, err);
            owner = value;
        } else {
            rc = tsr_error_set(err, TSR_EINVAL, "path '%s' cannot be patched", path);
        }
        if (rc != TSR_OK) {
            goto out;
        }
    }
    rc = space_update(&c, doc, acl, a, name, desc, owner, err);
out:
    json_decref(doc);
    json_decref(body);
    return rc;
}

/* Remove every assignment of a space (one event each). */
static tsr_err_t assignments_purge(tsr_sp__ctx_t *c, const char *space_id, tsr_error_t *err) {
    json_t *sid = json_string(space_id);
    tsr_store_filter_t f = {"spaceId", TSR_STORE_EQ, sid};
    tsr_store_query_t q = {.filters = &f, .n_filters = 1, .limit = 100};
    tsr_err_t rc = TSR_OK;
    for (;;) {
        tsr_store_page_t page = {0};
        rc = tsr_store_doc_list(c->s->store, c->tenant, TSR_SP__C_ASSIGN, &q, &page, err);
        if (rc != TSR_OK || json_array_size(page.items) == 0) {
            tsr_store_page_cleanup(&page);
            break;
        }
        size_t i;
        json_t *d;
        json_array_foreach(page.items, i, d) {
            tsr_sp__event_t ev = {0};
            const char *aid = json_string_value(json_object_get(d, "id"));
            rc = tsr_sp__event_make(c, TSR_SP__T_SPACES, "space.member", "removed", space_id,
                                    json_pack("{ss ss sO sO}", "id", aid, "spaceId", space_id,
                                              "assigneeId", json_object_get(d, "assigneeId"),
                                              "roles", json_object_get(d, "roles")),
                                    &ev, err);
            if (rc == TSR_OK) {
                rc = tsr_store_doc_del(c->s->store, c->tenant, TSR_SP__C_ASSIGN, aid, 0, &ev.row, 1,
                                       err);
                if (rc == TSR_ENOTFOUND) {
                    rc = TSR_OK;
                }
            }
            tsr_sp__event_cleanup(&ev);
            if (rc != TSR_OK) {
                break;
            }
        }
        tsr_store_page_cleanup(&page);
        if (rc != TSR_OK) {
            break;
        }
    }
    json_decref(sid);
    return rc;
}

tsr_err_t tsr_sp__h_space_del(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    json_t *doc = NULL, *sid = NULL;
    const tsr_sp__acl_entry_t *acl = NULL;
    tsr_sp__event_t ev = {0};
    tsr_store_page_t page = {0};
    unsigned a = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) != TSR_OK ||
        (rc = space_load(&c, &doc, &acl, &a, err)) != TSR_OK ||
        (rc = tsr_sp__require(a, TSR_SPACES_DELETE, "space", err)) != TSR_OK) {
        goto out;
    }
    const char *id = json_string_value(json_object_get(doc, "id"));
    const char *force = tsr_req_query(req, "force");
    bool forced = force != NULL && strcmp(force, "true") == 0;
    if (forced && !c.admin) {
        rc = tsr_error_set(err, TSR_EFORBIDDEN, "force needs the TenantAdmin role");
        goto out;
    }
    sid = json_string(id);
    tsr_store_filter_t f = {"spaceId", TSR_STORE_EQ, sid};
    tsr_store_query_t q = {.filters = &f, .n_filters = 1, .limit = forced ? 100 : 1};
    for (;;) {
        tsr_store_page_cleanup(&page);
        if ((rc = tsr_store_doc_list(c.s->store, c.tenant, TSR_SP__C_ITEMS, &q, &page, err)) !=
            TSR_OK) {
            goto out;
        }
        if (json_array_size(page.items) == 0) {
            break;
        }
        if (!forced) {
            rc = tsr_error_set(err, TSR_EPRECONDITION,
                               "the space holds content; delete or move it first (a TenantAdmin "
                               "may pass force=true)");
            goto out;
        }
        size_t i;
        json_t *d;
        json_array_foreach(page.items, i, d) {
            if ((rc = tsr_sp__item_delete(&c, d, err)) != TSR_OK) {
                goto out;
            }
        }
    }
    if ((rc = assignments_purge(&c, id, err)) != TSR_OK ||
        (rc = tsr_sp__event_make(&c, TSR_SP__T_SPACES, "space", "deleted", id,
                                 json_pack("{ss sO sO}", "id", id, "name",
                                           json_object_get(doc, "name"), "type",
                                           json_object_get(doc, "type")),
                                 &ev, err)) != TSR_OK ||
        (rc = tsr_store_doc_del(c.s->store, c.tenant, TSR_SP__C_SPACES, id, 0, &ev.row, 1, err)) !=
            TSR_OK) {
        goto out;
    }
    tsr_req_reply_bytes(req, 204, NULL, "", 0);
out:
    tsr_store_page_cleanup(&page);
    tsr_sp__event_cleanup(&ev);
    json_decref(doc);
    json_decref(sid);
    return rc;
}

/* ---- assignments ---------------------------------------------------------------------------- */

/* roles: a non-empty array of distinct role names assignable in a space of type. */
static tsr_err_t check_roles(const json_t *roles, const char *type, tsr_error_t *err) {
    if (!json_is_array(roles) || json_array_size(roles) == 0 ||
        json_array_size(roles) > TSR_SP__MAX_ROLES) {
        return tsr_error_set(err, TSR_EINVAL, "roles must be an array of 1..%d role names",
                             TSR_SP__MAX_ROLES);
    }
    size_t i, j;
    json_t *r, *r2;
    json_array_foreach(roles, i, r) {
        const char *name = json_string_value(r);
        if (name == NULL || !tsr_spaces_role_assignable(type, name)) {
            return tsr_error_set(err, TSR_EINVAL, "role '%s' cannot be assigned in a %s space",
                                 name != NULL ? name : "?", type);
        }
        json_array_foreach(roles, j, r2) {
            if (j < i && json_equal(r, r2)) {
                return tsr_error_set(err, TSR_EINVAL, "role '%s' is listed twice", name);
            }
        }
    }
    return TSR_OK;
}

/* The assignment at path parameter assignmentId within the loaded space. */
static tsr_err_t assignment_load(tsr_sp__ctx_t *c, const char *space_id, json_t **out,
                                 tsr_error_t *err) {
    const char *aid = NULL;
    json_t *d = NULL;
    *out = NULL;
    tsr_err_t rc = tsr_sp__path_id(c->req, "assignmentId", &aid, err);
    if (rc == TSR_OK) {
        rc = tsr_store_doc_get(c->s->store, c->tenant, TSR_SP__C_ASSIGN, aid, &d, err);
    }
    if (rc == TSR_OK) {
        const char *sid = json_string_value(json_object_get(d, "spaceId"));
        if (sid == NULL || strcmp(sid, space_id) != 0) {
            json_decref(d);
            return tsr_error_set(err, TSR_ENOTFOUND, "assignment %s not found", aid);
        }
        *out = d;
    }
    return rc;
}

tsr_err_t tsr_sp__h_assign_list(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    json_t *doc = NULL, *docs = NULL, *sid = NULL, *who = NULL, *type = NULL;
    const tsr_sp__acl_entry_t *acl = NULL;
    tsr_store_filter_t f[3];
    tsr_store_query_t q = {.filters = f, .sort = "createdAt"};
    char *next = NULL;
    size_t limit = 0;
    unsigned a = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) != TSR_OK ||
        (rc = space_load(&c, &doc, &acl, &a, err)) != TSR_OK ||
        (rc = tsr_sp__parse_limit(req, &limit, err)) != TSR_OK) {
        goto out;
    }
    sid = json_string(json_string_value(json_object_get(doc, "id")));
    f[q.n_filters++] = (tsr_store_filter_t){"spaceId", TSR_STORE_EQ, sid};
    if (tsr_req_query(req, "assigneeId") != NULL) {
        who = json_string(tsr_req_query(req, "assigneeId"));
        f[q.n_filters++] = (tsr_store_filter_t){"assigneeId", TSR_STORE_EQ, who};
    }
    if (tsr_req_query(req, "type") != NULL) {
        type = json_string(tsr_req_query(req, "type"));
        f[q.n_filters++] = (tsr_store_filter_t){"type", TSR_STORE_EQ, type};
    }
    q.cursor = tsr_req_query(req, "next");
    if ((rc = tsr_sp__list(&c, TSR_SP__C_ASSIGN, &q, limit, NULL, NULL, &docs, &next, err)) !=
        TSR_OK) {
        goto out;
    }
    json_t *data = json_array();
    size_t i;
    json_t *d;
    json_array_foreach(docs, i, d) {
        json_array_append_new(data, tsr_sp__assignment_view(&c, d));
    }
    tsr_req_reply_json(
        req, 200, json_pack("{so so}", "data", data, "links", tsr_sp__links(req, "next", next)));
out:
    json_decref(doc);
    json_decref(docs);
    json_decref(sid);
    json_decref(who);
    json_decref(type);
    free(next);
    return rc;
}

tsr_err_t tsr_sp__h_assign_create(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    json_t *doc = NULL, *body = NULL, *adoc = NULL, *stored = NULL;
    const tsr_sp__acl_entry_t *acl = NULL;
    tsr_sp__event_t ev = {0};
    const char *type = NULL, *assignee = NULL;
    char id[25];
    unsigned a = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) != TSR_OK ||
        (rc = space_load(&c, &doc, &acl, &a, err)) != TSR_OK ||
        (rc = tsr_sp__require(a, TSR_SPACES_MANAGE, "space", err)) != TSR_OK ||
        (rc = tsr_sp__body(&c, &body, err)) != TSR_OK ||
        (rc = tsr_sp__str(body, "type", false, 16, &type, err)) != TSR_OK ||
        (rc = tsr_sp__str(body, "assigneeId", true, TSR_STORE_ID_MAX, &assignee, err)) != TSR_OK) {
        goto out;
    }
    if (type == NULL) {
        type = "user";
    }
    if (strcmp(type, "user") != 0 && strcmp(type, "group") != 0) {
        rc = tsr_error_set(err, TSR_EINVAL, "type must be user or group");
        goto out;
    }
    if (strspn(assignee, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.@|-") !=
        strlen(assignee)) {
        rc = tsr_error_set(err, TSR_EINVAL, "assigneeId has characters no id contains");
        goto out;
    }
    const char *space_id = json_string_value(json_object_get(doc, "id"));
    const char *space_type = json_string_value(json_object_get(doc, "type"));
    json_t *roles = json_object_get(body, "roles");
    if ((rc = check_roles(roles, space_type, err)) != TSR_OK) {
        goto out;
    }
    const char *now = tsr_sp__now(req);
    tsr_id_new(id);
    adoc = json_pack("{ss ss ss sO ss ss ss ss ss}", "spaceId", space_id, "type", type,
                     "assigneeId", assignee, "roles", roles, "key",
                     tsr_arena_printf(tsr_req_arena(req), "%s:%s:%s", space_id, type, assignee),
                     "createdAt", now, "createdBy", c.user, "updatedAt", now, "updatedBy", c.user);
    if ((rc = tsr_sp__event_make(&c, TSR_SP__T_SPACES, "space.member", "added", space_id,
                                 json_pack("{ss ss ss ss sO}", "id", id, "spaceId", space_id,
                                           "type", type, "assigneeId", assignee, "roles", roles),
                                 &ev, err)) != TSR_OK) {
        goto out;
    }
    rc = tsr_store_doc_create(c.s->store, c.tenant, TSR_SP__C_ASSIGN, id, adoc, &ev.row, 1, &stored,
                              err);
    if (rc == TSR_ECONFLICT) {
        rc = tsr_error_set(err, TSR_ECONFLICT, "%s %s already has an assignment in this space",
                           type, assignee);
    }
    if (rc == TSR_OK) {
        tsr_req_reply_json(req, 201, tsr_sp__assignment_view(&c, stored));
    }
out:
    tsr_sp__event_cleanup(&ev);
    json_decref(doc);
    json_decref(body);
    json_decref(adoc);
    json_decref(stored);
    return rc;
}

tsr_err_t tsr_sp__h_assign_get(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    json_t *doc = NULL, *ad = NULL;
    const tsr_sp__acl_entry_t *acl = NULL;
    unsigned a = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) == TSR_OK &&
        (rc = space_load(&c, &doc, &acl, &a, err)) == TSR_OK &&
        (rc = assignment_load(&c, json_string_value(json_object_get(doc, "id")), &ad, err)) ==
            TSR_OK) {
        tsr_req_reply_json(req, 200, tsr_sp__assignment_view(&c, ad));
    }
    json_decref(doc);
    json_decref(ad);
    return rc;
}

tsr_err_t tsr_sp__h_assign_put(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    json_t *doc = NULL, *ad = NULL, *body = NULL, *patch = NULL, *stored = NULL;
    const tsr_sp__acl_entry_t *acl = NULL;
    tsr_sp__event_t ev = {0};
    unsigned a = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) != TSR_OK ||
        (rc = space_load(&c, &doc, &acl, &a, err)) != TSR_OK ||
        (rc = assignment_load(&c, json_string_value(json_object_get(doc, "id")), &ad, err)) !=
            TSR_OK ||
        (rc = tsr_sp__require(a, TSR_SPACES_MANAGE, "space", err)) != TSR_OK ||
        (rc = tsr_sp__body(&c, &body, err)) != TSR_OK) {
        goto out;
    }
    json_t *roles = json_object_get(body, "roles");
    const char *space_id = json_string_value(json_object_get(doc, "id"));
    const char *aid = json_string_value(json_object_get(ad, "id"));
    if ((rc = check_roles(roles, json_string_value(json_object_get(doc, "type")), err)) != TSR_OK) {
        goto out;
    }
    patch =
        json_pack("{sO ss ss}", "roles", roles, "updatedAt", tsr_sp__now(req), "updatedBy", c.user);
    /* A merge patch replaces the roles array whole (RFC 7386). */
    if ((rc = tsr_sp__event_make(&c, TSR_SP__T_SPACES, "space.member", "updated", space_id,
                                 json_pack("{ss ss sO sO}", "id", aid, "spaceId", space_id,
                                           "assigneeId", json_object_get(ad, "assigneeId"), "roles",
                                           roles),
                                 &ev, err)) != TSR_OK ||
        (rc = tsr_store_doc_patch(c.s->store, c.tenant, TSR_SP__C_ASSIGN, aid,
                                  json_integer_value(json_object_get(ad, "version")), patch,
                                  &ev.row, 1, &stored, err)) != TSR_OK) {
        goto out;
    }
    tsr_req_reply_json(req, 200, tsr_sp__assignment_view(&c, stored));
out:
    tsr_sp__event_cleanup(&ev);
    json_decref(doc);
    json_decref(ad);
    json_decref(body);
    json_decref(patch);
    json_decref(stored);
    return rc;
}

tsr_err_t tsr_sp__h_assign_del(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    json_t *doc = NULL, *ad = NULL;
    const tsr_sp__acl_entry_t *acl = NULL;
    tsr_sp__event_t ev = {0};
    unsigned a = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) != TSR_OK ||
        (rc = space_load(&c, &doc, &acl, &a, err)) != TSR_OK ||
        (rc = assignment_load(&c, json_string_value(json_object_get(doc, "id")), &ad, err)) !=
            TSR_OK ||
        (rc = tsr_sp__require(a, TSR_SPACES_MANAGE, "space", err)) != TSR_OK) {
        goto out;
    }
    const char *space_id = json_string_value(json_object_get(doc, "id"));
    const char *aid = json_string_value(json_object_get(ad, "id"));
    if ((rc = tsr_sp__event_make(&c, TSR_SP__T_SPACES, "space.member", "removed", space_id,
                                 json_pack("{ss ss sO sO}", "id", aid, "spaceId", space_id,
                                           "assigneeId", json_object_get(ad, "assigneeId"), "roles",
                                           json_object_get(ad, "roles")),
                                 &ev, err)) != TSR_OK ||
        (rc = tsr_store_doc_del(c.s->store, c.tenant, TSR_SP__C_ASSIGN, aid,
                                json_integer_value(json_object_get(ad, "version")), &ev.row, 1,
                                err)) != TSR_OK) {
        goto out;
    }
    tsr_req_reply_bytes(req, 204, NULL, "", 0);
out:
    tsr_sp__event_cleanup(&ev);
    json_decref(doc);
    json_decref(ad);
    return rc;
}
