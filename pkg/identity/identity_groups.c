/*
 * pkg/identity groups: named sets of users carrying roles (Qlik's "custom" groups). A user's
 * assignedGroups holds references; the roles of active groups add to the user's own at every
 * authentication. Names are unique per tenant (case-insensitive) through a claim document.
 */
#include <ctype.h>
#include <string.h>

#include "identity_int.h"

static void name_key(const char *name, char out[TSR_ID__MAX_NAME + 1]) {
    size_t i = 0;
    for (; name[i] != '\0' && i < TSR_ID__MAX_NAME; i++) {
        out[i] = (char)tolower((unsigned char)name[i]);
    }
    out[i] = '\0';
}

tsr_err_t tsr_identity__group_create(tsr_identity_t *id, const char *tenant, const char *actor,
                                     json_t *body, json_t **out, tsr_error_t *err) {
    const char *name, *desc, *status, *key;
    char gid[25], ts[25], nk[TSR_ID__MAX_NAME + 1];
    json_t *roles = NULL, *v;
    tsr_err_t rc;
    *out = NULL;
    if (!json_is_object(body)) {
        return tsr_error_set(err, TSR_EINVAL, "the body must be a JSON object");
    }
    json_object_foreach(body, key, v) {
        if (strcmp(key, "name") != 0 && strcmp(key, "description") != 0 &&
            strcmp(key, "status") != 0 && strcmp(key, "assignedRoles") != 0 &&
            strcmp(key, "providerType") != 0) {
            return tsr_error_set(err, TSR_EINVAL, "unknown field %.64s", key);
        }
    }
    const char *pt = json_string_value(json_object_get(body, "providerType"));
    if ((json_object_get(body, "providerType") != NULL &&
         (pt == NULL || strcmp(pt, "custom") != 0))) {
        return tsr_error_set(err, TSR_EINVAL, "providerType must be \"custom\"");
    }
    if ((rc = tsr_identity__check_str(json_object_get(body, "name"), "name", TSR_ID__MAX_NAME, true,
                                      &name, err)) != TSR_OK ||
        (rc = tsr_identity__check_str(json_object_get(body, "description"), "description",
                                      TSR_ID__MAX_DESC, false, &desc, err)) != TSR_OK ||
        (rc = tsr_identity__check_str(json_object_get(body, "status"), "status", 16, false, &status,
                                      err)) != TSR_OK) {
        return rc;
    }
    if (status != NULL && strcmp(status, "active") != 0 && strcmp(status, "disabled") != 0) {
        return tsr_error_set(err, TSR_EINVAL, "status must be active|disabled");
    }
    v = json_object_get(body, "assignedRoles");
    if (v != NULL) {
        if ((rc = tsr_identity__roles_parse(v, &roles, err)) != TSR_OK) {
            return rc;
        }
    } else {
        roles = json_array();
    }
    tsr_id_new(gid);
    name_key(name, nk);
    json_t *claim = json_pack("{ss ss}", "id", nk, "groupId", gid);
    rc = id->docs.create(id->docs.ud, TSR_ID__C_GROUP_NAMES, tenant, nk, claim, NULL, err);
    json_decref(claim);
    if (rc != TSR_OK) {
        json_decref(roles);
        return rc == TSR_ECONFLICT ? tsr_error_set(err, rc, "a group with this name exists") : rc;
    }
    tsr_time_format_rfc3339(tsr_wall_ms(), ts);
    json_t *g =
        json_pack("{ss ss ss ss ss ss so ss ss ss ss}", "id", gid, "tenantId", tenant, "name", name,
                  "description", desc != NULL ? desc : "", "providerType", "custom", "status",
                  status != NULL ? status : "active", "assignedRoles", roles, "createdAt", ts,
                  "lastUpdatedAt", ts, "createdBy", actor, "updatedBy", actor);
    rc = id->docs.create(id->docs.ud, TSR_ID__C_GROUPS, tenant, gid, g,
                         &(tsr_id__audit_t){"com.qlik.v1.group.created", actor, g}, err);
    if (rc != TSR_OK) {
        id->docs.del(id->docs.ud, TSR_ID__C_GROUP_NAMES, tenant, nk, NULL, NULL);
        json_decref(g);
        return rc;
    }
    *out = g;
    return TSR_OK;
}

tsr_err_t tsr_identity__group_patch(tsr_identity_t *id, const char *tenant, const char *actor,
                                    const char *group_id, json_t *ops, tsr_error_t *err) {
    json_t *g = NULL, *work = NULL, *op;
    size_t i;
    char ts[25];
    if (!json_is_array(ops) || json_array_size(ops) == 0 ||
        json_array_size(ops) > TSR_ID__MAX_PATCH_OPS) {
        return tsr_error_set(err, TSR_EINVAL, "the body must be a JSON Patch array of 1..%d ops",
                             TSR_ID__MAX_PATCH_OPS);
    }
    tsr_err_t rc = id->docs.get(id->docs.ud, TSR_ID__C_GROUPS, tenant, group_id, &g, err);
    if (rc != TSR_OK) {
        return rc == TSR_ENOTFOUND ? tsr_error_set(err, rc, "not found") : rc;
    }
    work = json_deep_copy(g);
    json_array_foreach(ops, i, op) {
        const char *o = json_string_value(json_object_get(op, "op"));
        const char *path = json_string_value(json_object_get(op, "path"));
        json_t *v = json_object_get(op, "value");
        const char *sv = NULL;
        if (!json_is_object(op) || json_object_size(op) != 3 || o == NULL || path == NULL ||
            (strcmp(o, "replace") != 0 && strcmp(o, "add") != 0)) {
            rc = tsr_error_set(err, TSR_EINVAL,
                               "patch[%zu]: expected {op: replace|add, path, value}", i);
        } else if (strcmp(path, "/description") == 0) {
            if ((rc = tsr_identity__check_str(v, "value", TSR_ID__MAX_DESC, true, &sv, err)) ==
                TSR_OK) {
                json_object_set_new(work, "description", json_string(sv));
            }
        } else if (strcmp(path, "/status") == 0) {
            rc = tsr_identity__check_str(v, "value", 16, true, &sv, err);
            if (rc == TSR_OK && strcmp(sv, "active") != 0 && strcmp(sv, "disabled") != 0) {
                rc =
                    tsr_error_set(err, TSR_EINVAL, "patch[%zu]: status must be active|disabled", i);
            }
            if (rc == TSR_OK) {
                json_object_set_new(work, "status", json_string(sv));
            }
        } else if (strcmp(path, "/assignedRoles") == 0) {
            json_t *roles = NULL;
            if ((rc = tsr_identity__roles_parse(v, &roles, err)) == TSR_OK) {
                json_object_set_new(work, "assignedRoles", roles);
            }
        } else {
            rc = tsr_error_set(err, TSR_EINVAL, "patch[%zu]: path %.64s is not writable", i, path);
        }
        if (rc != TSR_OK) {
            goto out;
        }
    }
    tsr_time_format_rfc3339(tsr_wall_ms(), ts);
    json_object_set_new(work, "lastUpdatedAt", json_string(ts));
    json_object_set_new(work, "updatedBy", json_string(actor));
    rc = id->docs.replace(id->docs.ud, TSR_ID__C_GROUPS, tenant, group_id, work,
                          &(tsr_id__audit_t){"com.qlik.v1.group.updated", actor, work}, err);
out:
    json_decref(g);
    json_decref(work);
    return rc;
}

tsr_err_t tsr_identity__group_del(tsr_identity_t *id, const char *tenant, const char *actor,
                                  const char *group_id, tsr_error_t *err) {
    json_t *g = NULL;
    char nk[TSR_ID__MAX_NAME + 1];
    tsr_err_t rc = id->docs.get(id->docs.ud, TSR_ID__C_GROUPS, tenant, group_id, &g, err);
    if (rc == TSR_OK) {
        rc = id->docs.del(id->docs.ud, TSR_ID__C_GROUPS, tenant, group_id,
                          &(tsr_id__audit_t){"com.qlik.v1.group.deleted", actor, g}, err);
    }
    if (rc == TSR_OK) {
        /* Members keep a dangling reference that grants nothing (standing_of skips it). */
        name_key(json_string_value(json_object_get(g, "name")), nk);
        id->docs.del(id->docs.ud, TSR_ID__C_GROUP_NAMES, tenant, nk, NULL, NULL);
    } else if (rc == TSR_ENOTFOUND) {
        tsr_error_set(err, rc, "not found");
    }
    json_decref(g);
    return rc;
}

tsr_err_t tsr_identity__groups_resolve(tsr_identity_t *id, const char *tenant, json_t *in,
                                       json_t **out, tsr_error_t *err) {
    size_t i;
    json_t *r;
    *out = NULL;
    if (!json_is_array(in) || json_array_size(in) > TSR_ID__MAX_ROLES) {
        return tsr_error_set(err, TSR_EINVAL, "assignedGroups must be an array of at most %d",
                             TSR_ID__MAX_ROLES);
    }
    json_t *res = json_array();
    json_array_foreach(in, i, r) {
        const char *gid = json_string_value(json_object_get(r, "id"));
        json_t *g = NULL;
        tsr_err_t rc = TSR_ENOTFOUND;
        if (json_is_object(r) && gid != NULL && strlen(gid) == 24) {
            rc = id->docs.get(id->docs.ud, TSR_ID__C_GROUPS, tenant, gid, &g, err);
        }
        if (rc != TSR_OK) {
            json_decref(res);
            return rc == TSR_ENOTFOUND
                       ? tsr_error_set(err, TSR_EINVAL, "assignedGroups[%zu] is not a group", i)
                       : rc;
        }
        /* An identity provider's group stays its own (the next sign-in sets it again). */
        const char *pt = json_string_value(json_object_get(g, "providerType"));
        json_array_append_new(res,
                              json_pack("{ss sO ss}", "id", gid, "name", json_object_get(g, "name"),
                                        "providerType",
                                        pt != NULL && strcmp(pt, "idp") == 0 ? "idp" : "custom"));
        json_decref(g);
    }
    *out = res;
    return TSR_OK;
}
