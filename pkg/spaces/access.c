/*
 * pkg/spaces access decisions: the role → action table (README.md), which roles each space
 * type accepts, and the caller's actions on spaces and items. Owner and TenantAdmin hold every
 * action; items in a personal space belong to their owner alone; a published app is locked
 * against editing. A caller's roles in a space are its own assignment's united with those of
 * its groups (X-Tsr-Groups). Decisions are cached per request (one space read, one assignment
 * read, and for a caller with groups one read of the space's group assignments).
 */
#include <stdlib.h>
#include <string.h>

#include "spaces_int.h"

#define R TSR_SPACES_READ
#define E TSR_SPACES_EDIT
#define L TSR_SPACES_RELOAD
#define X TSR_SPACES_EXPORT
#define P TSR_SPACES_PUBLISH
#define D TSR_SPACES_DELETE
#define M TSR_SPACES_MANAGE

/* The table. Keep in step with README.md (tests/unit/test_spaces.c walks both). Columns: the
 * space itself (E: create content; P: publish into it; M: members and settings), its apps, its
 * data files. */
static const struct {
    const char *name;
    unsigned space, app, datafile;
} ROLES[] = {
    {"basicconsumer", R, R, 0},
    {"codeveloper", R, R | E | L | X, R},
    {"consumer", R, R | X, 0},
    {"contributor", R, R | X, 0},
    {"dataconsumer", R, 0, R},
    {"facilitator", R | M, R | X | D | M, R | D | M},
    {"producer", R | E, R | E | L | X | P | D, R | E | D},
    {"publisher", R | P, R | X | P, R},
};

#define N_ROLES (sizeof ROLES / sizeof ROLES[0])

static const char *const ROLE_NAMES[] = {"basicconsumer", "codeveloper",  "consumer",
                                         "contributor",   "dataconsumer", "facilitator",
                                         "producer",      "publisher",    NULL};

/* Qlik's assignable roles per space type, restricted to the roles Tessera knows. */
static const struct {
    const char *type;
    const char *const roles[8];
} ASSIGNABLE[] = {
    {"shared", {"codeveloper", "consumer", "dataconsumer", "facilitator", "producer", NULL}},
    {"managed",
     {"basicconsumer", "consumer", "contributor", "dataconsumer", "facilitator", "publisher",
      NULL}},
    {"data", {"consumer", "dataconsumer", "facilitator", "producer", "publisher", NULL}},
};

static const char *const ACTION_NAMES[TSR_SPACES_N_ACTIONS] = {
    "read", "edit", "reload", "export", "publish", "delete", "manage"};

const char *tsr_spaces_action_name(unsigned action) {
    for (unsigned i = 0; i < TSR_SPACES_N_ACTIONS; i++) {
        if (action == (1u << i)) {
            return ACTION_NAMES[i];
        }
    }
    return NULL;
}

const char *const *tsr_spaces_roles(void) {
    return ROLE_NAMES;
}

static int role_index(const char *role) {
    for (size_t i = 0; i < N_ROLES; i++) {
        if (role != NULL && strcmp(ROLES[i].name, role) == 0) {
            return (int)i;
        }
    }
    return -1;
}

unsigned tsr_spaces_role_actions(const char *role, tsr_spaces_res_t res) {
    int i = role_index(role);
    if (i < 0) {
        return 0;
    }
    switch (res) {
    case TSR_SPACES_RES_SPACE:
        return ROLES[i].space;
    case TSR_SPACES_RES_APP:
        return ROLES[i].app;
    case TSR_SPACES_RES_DATAFILE:
        return ROLES[i].datafile;
    }
    return 0;
}

bool tsr_spaces_role_assignable(const char *space_type, const char *role) {
    for (size_t t = 0; t < sizeof ASSIGNABLE / sizeof ASSIGNABLE[0]; t++) {
        if (space_type != NULL && strcmp(ASSIGNABLE[t].type, space_type) == 0) {
            for (size_t r = 0; ASSIGNABLE[t].roles[r] != NULL; r++) {
                if (role != NULL && strcmp(ASSIGNABLE[t].roles[r], role) == 0) {
                    return true;
                }
            }
        }
    }
    return false;
}

json_t *tsr_sp__actions_json(unsigned actions) {
    json_t *a = json_array();
    for (unsigned i = 0; i < TSR_SPACES_N_ACTIONS; i++) {
        if ((actions & (1u << i)) != 0) {
            json_array_append_new(a, json_string(ACTION_NAMES[i]));
        }
    }
    return a;
}

/* ---- the caller's standing ------------------------------------------------------------------ */

static void role_bits(const json_t *roles, unsigned *set) {
    size_t i;
    json_t *r;
    json_array_foreach(roles, i, r) {
        int k = role_index(json_string_value(r));
        if (k >= 0) {
            *set |= 1u << k;
        }
    }
}

/* The roles the caller's groups hold in space_id, ORed into *set. One query over the space's
 * group assignments (paged), matched against the caller's groups in memory: a space has few
 * group assignments, a caller up to TSR_SP__MAX_GROUPS groups. */
static tsr_err_t group_roles(tsr_sp__ctx_t *c, const char *space_id, unsigned *set,
                             tsr_error_t *err) {
    json_t *sid = json_string(space_id), *type = json_string("group");
    tsr_store_filter_t f[2] = {{"spaceId", TSR_STORE_EQ, sid}, {"type", TSR_STORE_EQ, type}};
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
            if (tsr_sp__in_groups(c, json_string_value(json_object_get(d, "assigneeId")))) {
                role_bits(json_object_get(d, "roles"), set);
            }
        }
        cursor = page.next_cursor;
        page.next_cursor = NULL;
        tsr_store_page_cleanup(&page);
    } while (cursor != NULL);
    json_decref(sid);
    json_decref(type);
    return rc;
}

tsr_err_t tsr_sp__acl_space(tsr_sp__ctx_t *c, const char *space_id, const tsr_sp__acl_entry_t **out,
                            tsr_error_t *err) {
    static const tsr_sp__acl_entry_t MISSING = {.found = false};
    json_t *space = NULL, *key = NULL;
    tsr_store_page_t page = {0};
    tsr_err_t rc = TSR_OK;
    *out = &MISSING;
    if (space_id == NULL || !tsr_sp__is_id(space_id)) {
        return TSR_OK;
    }
    for (size_t i = 0; i < c->n_acl; i++) {
        if (strcmp(c->acl[i].space_id, space_id) == 0) {
            *out = &c->acl[i];
            return TSR_OK;
        }
    }
    tsr_sp__acl_entry_t e = {.found = false};
    snprintf(e.space_id, sizeof e.space_id, "%s", space_id);
    rc = tsr_store_doc_get(c->s->store, c->tenant, TSR_SP__C_SPACES, space_id, &space, err);
    if (rc == TSR_ENOTFOUND) {
        rc = TSR_OK;
        goto remember;
    }
    if (rc != TSR_OK) {
        goto out;
    }
    e.found = true;
    snprintf(e.type, sizeof e.type, "%s", json_string_value(json_object_get(space, "type")));
    const char *owner = json_string_value(json_object_get(space, "ownerId"));
    e.owner = owner != NULL && strcmp(owner, c->user) == 0;
    /* The caller's own assignment, by its unique key, united with its groups' (X-Tsr-Groups:
     * ids of this tenant's groups, so another tenant's group id matches nothing here). */
    key = json_string(tsr_arena_printf(tsr_req_arena(c->req), "%s:user:%s", space_id, c->user));
    tsr_store_filter_t f = {.field = "key", .op = TSR_STORE_EQ, .value = key};
    tsr_store_query_t q = {.filters = &f, .n_filters = 1, .limit = 1};
    rc = tsr_store_doc_list(c->s->store, c->tenant, TSR_SP__C_ASSIGN, &q, &page, err);
    if (rc != TSR_OK) {
        goto out;
    }
    role_bits(json_object_get(json_array_get(page.items, 0), "roles"), &e.role_set);
    if (c->n_groups > 0 && (rc = group_roles(c, space_id, &e.role_set, err)) != TSR_OK) {
        goto out;
    }
remember:
    if (c->n_acl < TSR_SP__ACL_CACHE) {
        c->acl[c->n_acl] = e;
        *out = &c->acl[c->n_acl++];
    } else {
        /* A full cache keeps the answer in the last slot: callers use it before asking again. */
        c->acl[TSR_SP__ACL_CACHE - 1] = e;
        *out = &c->acl[TSR_SP__ACL_CACHE - 1];
    }
out:
    tsr_store_page_cleanup(&page);
    json_decref(key);
    json_decref(space);
    return rc;
}

unsigned tsr_sp__acl_actions(const tsr_sp__ctx_t *c, const tsr_sp__acl_entry_t *e,
                             tsr_spaces_res_t res) {
    if (!e->found) {
        return 0;
    }
    if (c->admin || e->owner) {
        return TSR_SPACES_ALL;
    }
    unsigned a = 0;
    for (size_t i = 0; i < N_ROLES; i++) {
        if ((e->role_set & (1u << i)) != 0) {
            a |= tsr_spaces_role_actions(ROLES[i].name, res);
        }
    }
    return a;
}

json_t *tsr_sp__acl_roles_json(const tsr_sp__acl_entry_t *e) {
    json_t *a = json_array();
    for (size_t i = 0; i < N_ROLES; i++) {
        if ((e->role_set & (1u << i)) != 0) {
            json_array_append_new(a, json_string(ROLES[i].name));
        }
    }
    return a;
}

unsigned tsr_sp__space_actions(tsr_sp__ctx_t *c, const json_t *space, tsr_error_t *err) {
    const tsr_sp__acl_entry_t *e = NULL;
    if (tsr_sp__acl_space(c, json_string_value(json_object_get(space, "id")), &e, err) != TSR_OK) {
        return 0;
    }
    return tsr_sp__acl_actions(c, e, TSR_SPACES_RES_SPACE);
}

tsr_err_t tsr_sp__item_actions(tsr_sp__ctx_t *c, const json_t *item, unsigned *actions,
                               tsr_error_t *err) {
    const char *space_id = json_string_value(json_object_get(item, "spaceId"));
    const char *owner = json_string_value(json_object_get(item, "ownerId"));
    const char *type = json_string_value(json_object_get(item, "resourceType"));
    tsr_spaces_res_t res = type != NULL && strcmp(type, "datafile") == 0 ? TSR_SPACES_RES_DATAFILE
                                                                         : TSR_SPACES_RES_APP;
    unsigned a = 0;
    *actions = 0;
    if (space_id == NULL) {
        /* The personal space: its owner's alone. */
        a = c->admin || (owner != NULL && strcmp(owner, c->user) == 0) ? TSR_SPACES_ALL : 0;
    } else {
        const tsr_sp__acl_entry_t *e = NULL;
        tsr_err_t rc = tsr_sp__acl_space(c, space_id, &e, err);
        if (rc != TSR_OK) {
            return rc;
        }
        a = tsr_sp__acl_actions(c, e, res);
    }
    if (json_is_true(json_object_get(item, "published"))) {
        a &= ~(unsigned)TSR_SPACES_EDIT;
    }
    *actions = a;
    return TSR_OK;
}

tsr_err_t tsr_sp__can_create_in(tsr_sp__ctx_t *c, const char *space_id, tsr_error_t *err) {
    const tsr_sp__acl_entry_t *e = NULL;
    if (space_id == NULL) {
        return TSR_OK;
    }
    tsr_err_t rc = tsr_sp__acl_space(c, space_id, &e, err);
    if (rc != TSR_OK) {
        return rc;
    }
    unsigned a = tsr_sp__acl_actions(c, e, TSR_SPACES_RES_SPACE);
    if ((a & TSR_SPACES_READ) == 0) {
        return tsr_error_set(err, TSR_ENOTFOUND, "space %s not found", space_id);
    }
    /* Managed spaces receive content by publishing: publishers may also place it directly. */
    unsigned need = strcmp(e->type, "managed") == 0 ? TSR_SPACES_PUBLISH : TSR_SPACES_EDIT;
    if ((a & need) == 0 && (a & TSR_SPACES_EDIT) == 0) {
        return tsr_error_set(err, TSR_EFORBIDDEN, "no permission to add content to space %s",
                             space_id);
    }
    return TSR_OK;
}

tsr_err_t tsr_sp__item_get(tsr_sp__ctx_t *c, const char *id, const char *want, json_t **doc,
                           unsigned *actions, tsr_error_t *err) {
    json_t *d = NULL;
    unsigned a = 0;
    *doc = NULL;
    *actions = 0;
    tsr_err_t rc = tsr_store_doc_get(c->s->store, c->tenant, TSR_SP__C_ITEMS, id, &d, err);
    if (rc != TSR_OK) {
        return rc;
    }
    const char *type = json_string_value(json_object_get(d, "resourceType"));
    if (want != NULL && (type == NULL || strcmp(type, want) != 0)) {
        json_decref(d);
        return tsr_error_set(err, TSR_ENOTFOUND, "%s %s not found", want, id);
    }
    rc = tsr_sp__item_actions(c, d, &a, err);
    if (rc == TSR_OK && (a & TSR_SPACES_READ) == 0) {
        rc = tsr_error_set(err, TSR_ENOTFOUND, "%s %s not found", want != NULL ? want : "item", id);
    }
    if (rc != TSR_OK) {
        json_decref(d);
        return rc;
    }
    *doc = d;
    *actions = a;
    return TSR_OK;
}

tsr_err_t tsr_sp__require(unsigned actions, unsigned need, const char *what, tsr_error_t *err) {
    if ((actions & need) == need) {
        return TSR_OK;
    }
    const char *name = NULL;
    for (unsigned i = 0; i < TSR_SPACES_N_ACTIONS && name == NULL; i++) {
        if ((need & ~actions & (1u << i)) != 0) {
            name = tsr_spaces_action_name(1u << i);
        }
    }
    return tsr_error_set(err, TSR_EFORBIDDEN, "the %s action is not allowed on this %s",
                         name != NULL ? name : "requested", what);
}

void tsr_sp__acl_fill(const tsr_sp__ctx_t *c, const json_t *space, const json_t *roles,
                      tsr_sp__acl_entry_t *e) {
    memset(e, 0, sizeof *e);
    snprintf(e->space_id, sizeof e->space_id, "%s",
             json_string_value(json_object_get(space, "id")));
    e->found = true;
    snprintf(e->type, sizeof e->type, "%s", json_string_value(json_object_get(space, "type")));
    const char *owner = json_string_value(json_object_get(space, "ownerId"));
    e->owner = owner != NULL && strcmp(owner, c->user) == 0;
    role_bits(roles, &e->role_set);
}
