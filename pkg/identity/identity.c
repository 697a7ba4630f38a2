/*
 * pkg/identity HTTP handlers: parse and validate, resolve the caller, call the domain, reply.
 * Every /api/v1 handler authenticates the original credential itself (identity trusts no
 * forwarded principal headers), takes the tenant from the Host header and answers another
 * tenant's object exactly as a missing one. The authn decision answers 200 with the principal
 * in X-Tsr-* response headers, or 401.
 */
#include <string.h>

#include "identity_int.h"

#define DEFAULT_LIMIT 20
#define MAX_LIMIT 100

/* ---- service lifecycle ---------------------------------------------------------------------- */

tsr_err_t tsr_identity_create(const tsr_identity_opts_t *opts, tsr_identity_t **out,
                              tsr_error_t *err) {
    *out = NULL;
    if (opts == NULL || opts->store == NULL || opts->kek == NULL) {
        if (opts != NULL) {
            tsr_store_destroy(opts->store);
            tsr_crypto_kek_set_destroy(opts->kek);
        }
        return tsr_error_set(err, TSR_EINVAL, "identity needs a store and a KEK set");
    }
    tsr_identity_t *id = tsr_xcalloc(1, sizeof *id);
    tsr_identity__docs_store(id, opts->store, &id->docs);
    id->kek = opts->kek;
    id->key_max_days = opts->api_key_max_expiry_days != 0 ? opts->api_key_max_expiry_days : 365;
    id->max_keys_per_user = opts->max_keys_per_user != 0 ? opts->max_keys_per_user : 100;
    id->on_audit = opts->on_audit;
    id->audit_ud = opts->audit_ud;
    id->jwt_ttl_ms = (int64_t)(opts->jwt_ttl_s != 0 ? opts->jwt_ttl_s : 300) * 1000;
    id->jwt_rotate_ms = (int64_t)(opts->jwt_rotate_s != 0 ? opts->jwt_rotate_s : 86400) * 1000;
    pthread_mutex_init(&id->key_mu, NULL);
    *out = id;
    return TSR_OK;
}

void tsr_identity_destroy(tsr_identity_t *id) {
    if (id != NULL) {
        if (id->docs.close != NULL) {
            id->docs.close(id->docs.ud);
        }
        tsr_identity__keys_cleanup(id);
        tsr_identity__oidc_cleanup(id);
        tsr_crypto_kek_set_destroy(id->kek);
        pthread_mutex_destroy(&id->key_mu);
        free(id);
    }
}

tsr_err_t tsr_identity_ready(void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    json_t *doc = NULL;
    tsr_err_t rc =
        id->docs.get(id->docs.ud, TSR_ID__C_TENANTS, TSR_ID__PLATFORM, "ready", &doc, err);
    json_decref(doc);
    return rc == TSR_ENOTFOUND ? TSR_OK : rc;
}

/* ---- helpers ------------------------------------------------------------------------------- */

static void cred_of(tsr_req_t *req, const char *method, tsr_id__cred_t *c) {
    c->host = tsr_req_header(req, "host");
    c->authz = tsr_req_header(req, "authorization");
    c->cookie = tsr_req_header(req, "cookie");
    c->method = method;
    c->csrf = tsr_req_header(req, "qlik-csrf-token");
}

static tsr_err_t authenticate(tsr_identity_t *id, tsr_req_t *req, tsr_id__principal_t *p,
                              tsr_error_t *err) {
    tsr_id__cred_t c;
    cred_of(req, tsr_req_method(req), &c);
    tsr_err_t rc = tsr_identity__authenticate(id, &c, p, err);
    if (rc == TSR_OK) {
        tsr_req_set_identity(req, p->tenant_id, p->user_id);
    }
    return rc;
}

static bool has_role(const tsr_id__principal_t *p, unsigned bit) {
    return (p->roles & bit) != 0;
}

static tsr_err_t require_admin(const tsr_id__principal_t *p, tsr_error_t *err) {
    return has_role(p, TSR_ID__ROLE_TENANT_ADMIN)
               ? TSR_OK
               : tsr_error_set(err, TSR_EFORBIDDEN, "this needs the TenantAdmin role");
}

/* A path id that cannot exist answers like a missing object, before touching the store. */
static tsr_err_t path_id(tsr_req_t *req, const char *name, const char **out, tsr_error_t *err) {
    const char *v = tsr_req_param(req, name);
    size_t n = v != NULL ? strlen(v) : 0;
    *out = v;
    if (n != 24 || strspn(v, "0123456789abcdef") != 24) {
        return tsr_error_set(err, TSR_ENOTFOUND, "not found");
    }
    return TSR_OK;
}

/* The common start of a TenantAdmin handler on one object: who is calling, the object's id
 * from the path parameter param, and the admin check. */
static tsr_err_t admin_on(tsr_identity_t *id, tsr_req_t *req, const char *param,
                          tsr_id__principal_t *p, const char **obj_id, tsr_error_t *err) {
    tsr_err_t rc = authenticate(id, req, p, err);
    if (rc == TSR_OK) {
        rc = path_id(req, param, obj_id, err);
    }
    if (rc == TSR_OK) {
        rc = require_admin(p, err);
    }
    return rc;
}

static tsr_err_t parse_limit(tsr_req_t *req, size_t *limit, tsr_error_t *err) {
    const char *l = tsr_req_query(req, "limit");
    int64_t v = DEFAULT_LIMIT;
    if (l != NULL && tsr_str_to_i64(tsr_str(l), 1, MAX_LIMIT, &v) != TSR_OK) {
        return tsr_error_set(err, TSR_EINVAL, "limit must be an integer in 1..%d", MAX_LIMIT);
    }
    *limit = (size_t)v;
    return TSR_OK;
}

static tsr_err_t parse_cursor(tsr_req_t *req, const char *name, const char **out,
                              tsr_error_t *err) {
    const char *c = tsr_req_query(req, name);
    *out = NULL;
    if (c != NULL && (strlen(c) != 24 || strspn(c, "0123456789abcdef") != 24)) {
        return tsr_error_set(err, TSR_EINVAL, "%s is not a valid cursor", name);
    }
    *out = c;
    return TSR_OK;
}

/* {data, links{self, next?}} for a page fetched with limit+1 rows. Takes rows. */
static json_t *page(tsr_req_t *req, const char *path, const char *cursor_name, json_t *rows,
                    size_t limit, json_t *(*view)(const json_t *, const char *)) {
    const char *base = tsr_req_base_url(req);
    tsr_arena_t *a = tsr_req_arena(req);
    json_t *data = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        if (i < limit) {
            json_array_append_new(data, view(row, base));
        }
    }
    json_t *links = json_object();
    json_object_set_new(
        links, "self",
        json_pack("{ss}", "href", tsr_arena_printf(a, "%s%s?limit=%zu", base, path, limit)));
    if (json_array_size(rows) > limit) {
        const char *last =
            json_string_value(json_object_get(json_array_get(rows, limit - 1), "id"));
        json_object_set_new(links, "next",
                            json_pack("{ss}", "href",
                                      tsr_arena_printf(a, "%s%s?limit=%zu&%s=%s", base, path, limit,
                                                       cursor_name, last)));
    }
    json_decref(rows);
    return json_pack("{so so}", "data", data, "links", links);
}

/* ---- authn (nginx auth_request) ------------------------------------------------------------ */

static tsr_err_t h_authn(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_id__principal_t p;
    tsr_id__cred_t c;
    /* The ingress asks with GET; the method that matters for CSRF is the original one. A
     * missing X-Original-Method counts as unsafe (fail closed). */
    const char *m = tsr_req_header(req, "x-original-method");
    cred_of(req, m != NULL ? m : "POST", &c);
    tsr_err_t rc = tsr_identity__authenticate(id, &c, &p, err);
    if (rc != TSR_OK) {
        return rc;
    }
    tsr_req_set_identity(req, p.tenant_id, p.user_id);
    tsr_buf_t roles;
    tsr_buf_init(&roles, 1024);
    for (const tsr_id__role_t *r = tsr_identity__roles(); r->id != NULL; r++) {
        if (has_role(&p, r->bit)) {
            tsr_buf_appendf(&roles, "%s%s", roles.len > 0 ? "," : "", r->name);
        }
    }
    tsr_req_add_header(req, "X-Tsr-Tenant-Id", p.tenant_id);
    tsr_req_add_header(req, "X-Tsr-User-Id", p.user_id);
    tsr_req_add_header(req, "X-Tsr-Roles", roles.data != NULL ? roles.data : "User");
    tsr_req_add_header(req, "X-Tsr-Auth-Type", p.auth_type);
    tsr_buf_cleanup(&roles);
    /* The caller's group ids (comma-separated; absent without groups): spaces grants what is
     * assigned to them. At most TSR_ID__MAX_PRINCIPAL_GROUPS, so at most 2.5 KiB. */
    if (p.n_groups > 0) {
        tsr_buf_t groups;
        tsr_buf_init(&groups, TSR_ID__MAX_PRINCIPAL_GROUPS * 25);
        for (size_t i = 0; i < p.n_groups; i++) {
            tsr_buf_appendf(&groups, "%s%s", i > 0 ? "," : "", p.groups[i]);
        }
        tsr_req_add_header(req, "X-Tsr-Groups", groups.data);
        tsr_buf_cleanup(&groups);
    }
    char *jwt = NULL;
    rc = tsr_identity__jwt_mint(id, &p, &jwt, err);
    if (rc == TSR_OK) {
        tsr_req_add_header(req, "X-Tsr-Token", jwt);
        tsr_req_reply_bytes(req, 200, "text/plain", "", 0);
    }
    free(jwt);
    return rc;
}

/* The platform's public signing keys; no authentication (services fetch it to verify). */
static tsr_err_t h_jwks(tsr_req_t *req, void *ud, tsr_error_t *err) {
    json_t *jwks = NULL;
    tsr_err_t rc = tsr_identity__jwks(ud, &jwks, err);
    if (rc == TSR_OK) {
        tsr_req_add_header(req, "Cache-Control", "max-age=60");
        tsr_req_reply_json(req, 200, jwks);
    }
    return rc;
}

/* ---- platform administration (/internal, never routed from outside) ------------------------ */

static tsr_err_t require_platform_admin(tsr_identity_t *id, tsr_req_t *req, tsr_error_t *err) {
    const char *authz = tsr_req_header(req, "authorization");
    if (authz == NULL) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "authentication required");
    }
    if (!tsr_identity__is_platform_admin(id, authz)) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "not a platform administrator token");
    }
    tsr_req_set_identity(req, TSR_ID__PLATFORM, "platform-admin");
    return TSR_OK;
}

static tsr_err_t h_platform_tenant_create(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    json_t *body = NULL, *v, *out = NULL;
    const char *k, *name = NULL, *admin = NULL, *hosts[TSR_ID__MAX_HOSTS + 1] = {NULL};
    char tid[25];
    tsr_identity_boot_t b = {0};
    tsr_err_t rc = require_platform_admin(id, req, err);
    if (rc == TSR_OK) {
        rc = tsr_req_json(req, &body, err);
    }
    if (rc == TSR_OK && !json_is_object(body)) {
        rc = tsr_error_set(err, TSR_EINVAL, "the body must be a JSON object");
    }
    if (rc != TSR_OK) {
        goto out;
    }
    json_object_foreach(body, k, v) {
        if (strcmp(k, "name") == 0 && json_is_string(v)) {
            name = json_string_value(v);
        } else if (strcmp(k, "adminEmail") == 0 && json_is_string(v)) {
            admin = json_string_value(v);
        } else if (strcmp(k, "hostnames") == 0 && json_is_array(v) &&
                   json_array_size(v) <= TSR_ID__MAX_HOSTS) {
            size_t i;
            json_t *h;
            json_array_foreach(v, i, h) {
                if ((hosts[i] = json_string_value(h)) == NULL) {
                    rc = tsr_error_set(err, TSR_EINVAL, "hostnames[%zu] must be a string", i);
                    goto out;
                }
            }
        } else {
            rc = tsr_error_set(err, TSR_EINVAL,
                               "%.64s: expected name, hostnames (<= %d strings), adminEmail", k,
                               TSR_ID__MAX_HOSTS);
            goto out;
        }
    }
    rc = tsr_identity_tenant_create(id, name, hosts, tid, err);
    if (rc == TSR_OK && admin != NULL) {
        rc = tsr_identity_tenant_admin_create(id, tid, admin, &b, err);
        if (rc != TSR_OK) {
            tsr_identity_tenant_del(id, tid, NULL);
        }
    }
    if (rc == TSR_OK) {
        json_t *t = NULL;
        rc = id->docs.get(id->docs.ud, TSR_ID__C_TENANTS, tid, tid, &t, err);
        if (rc == TSR_OK) {
            out = tsr_identity__tenant_view(t, NULL);
            if (b.created) {
                json_object_set_new(out, "admin",
                                    json_pack("{ss ss ss ss}", "userId", b.user_id, "user", b.user,
                                              "password", b.password, "apiKey", b.api_key));
            }
            tsr_req_add_header(req, "Cache-Control", "no-store");
            tsr_req_reply_json(req, 201, out);
        }
        json_decref(t);
    }
out:
    tsr_identity_boot_cleanup(&b);
    json_decref(body);
    return rc;
}

static tsr_err_t h_platform_tenant_del(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_err_t rc = require_platform_admin(id, req, err);
    if (rc == TSR_OK) {
        rc = tsr_identity_tenant_del(id, tsr_req_param(req, "tenantId"), err);
    }
    if (rc == TSR_OK) {
        tsr_req_reply_bytes(req, 204, "application/json", "", 0);
    }
    return rc;
}

/* A service token: a platform JWT naming whoever the body says, for a service that calls
 * another on its own account (pkg/auth/README.md). Only a platform administrator token may ask:
 * its holder is trusted with every tenant anyway. Users are ids or "tessera-<service>". */
static bool service_user_ok(const char *u) {
    size_t n = u != NULL ? strlen(u) : 0;
    if (n == 24 && strspn(u, "0123456789abcdef") == 24) {
        return true;
    }
    return n > 8 && n <= 24 && strncmp(u, "tessera-", 8) == 0 &&
           strspn(u + 8, "abcdefghijklmnopqrstuvwxyz0123456789-") == n - 8;
}

static tsr_err_t h_platform_service_token(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    json_t *body = NULL, *t = NULL, *v;
    char *jwt = NULL;
    tsr_id__principal_t p;
    memset(&p, 0, sizeof p);
    tsr_err_t rc = require_platform_admin(id, req, err);
    if (rc == TSR_OK) {
        rc = tsr_req_json(req, &body, err);
    }
    if (rc != TSR_OK) {
        goto out;
    }
    const char *tenant = json_string_value(json_object_get(body, "tenantId"));
    const char *user = json_string_value(json_object_get(body, "userId"));
    json_t *roles = json_object_get(body, "roles"), *groups = json_object_get(body, "groups");
    size_t i;
    if (tenant == NULL || strlen(tenant) != 24 || strspn(tenant, "0123456789abcdef") != 24 ||
        !service_user_ok(user)) {
        rc = tsr_error_set(err, TSR_EINVAL,
                           "tenantId (an id) and userId (an id or tessera-<service>) are required");
        goto out;
    }
    if ((roles != NULL && (!json_is_array(roles) || json_array_size(roles) > 16)) ||
        (groups != NULL &&
         (!json_is_array(groups) || json_array_size(groups) > TSR_ID__MAX_PRINCIPAL_GROUPS))) {
        rc = tsr_error_set(err, TSR_EINVAL, "roles and groups must be short arrays");
        goto out;
    }
    p.roles = TSR_ID__ROLE_USER;
    json_array_foreach(roles, i, v) {
        const tsr_id__role_t *r =
            json_is_string(v) ? tsr_identity__role_find(json_string_value(v)) : NULL;
        if (r == NULL) {
            rc = tsr_error_set(err, TSR_EINVAL, "roles[%zu] is not a role", i);
            goto out;
        }
        p.roles |= r->bit;
    }
    json_array_foreach(groups, i, v) {
        const char *g = json_string_value(v);
        if (g == NULL || strlen(g) != 24 || strspn(g, "0123456789abcdef") != 24) {
            rc = tsr_error_set(err, TSR_EINVAL, "groups[%zu] is not a group id", i);
            goto out;
        }
        memcpy(p.groups[p.n_groups++], g, 25);
    }
    if ((rc = id->docs.get(id->docs.ud, TSR_ID__C_TENANTS, tenant, tenant, &t, err)) != TSR_OK) {
        goto out;
    }
    memcpy(p.tenant_id, tenant, 25);
    memcpy(p.user_id, user, strlen(user) + 1);
    p.auth_type = "service";
    if ((rc = tsr_identity__jwt_mint(id, &p, &jwt, err)) == TSR_OK) {
        tsr_req_reply_json(
            req, 200,
            json_pack("{ss sI}", "token", jwt, "expiresIn", (json_int_t)(id->jwt_ttl_ms / 1000)));
    }
out:
    free(jwt);
    json_decref(t);
    json_decref(body);
    return rc;
}

/* ---- tenants, roles, csrf ------------------------------------------------------------------ */

static tsr_err_t tenant_reply(tsr_identity_t *id, tsr_req_t *req, const char *tenant,
                              tsr_error_t *err) {
    json_t *t = NULL;
    tsr_err_t rc = id->docs.get(id->docs.ud, TSR_ID__C_TENANTS, tenant, tenant, &t, err);
    if (rc == TSR_OK) {
        tsr_req_reply_json(req, 200, tsr_identity__tenant_view(t, tsr_req_base_url(req)));
    }
    json_decref(t);
    return rc;
}

static tsr_err_t h_tenant_me(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_id__principal_t p;
    tsr_err_t rc = authenticate(ud, req, &p, err);
    return rc != TSR_OK ? rc : tenant_reply(ud, req, p.tenant_id, err);
}

static tsr_err_t h_tenant_get(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_id__principal_t p;
    const char *tid;
    tsr_err_t rc = authenticate(ud, req, &p, err);
    if (rc == TSR_OK) {
        rc = path_id(req, "tenantId", &tid, err);
    }
    if (rc == TSR_OK && strcmp(tid, p.tenant_id) != 0) {
        rc = tsr_error_set(err, TSR_ENOTFOUND, "not found");
    }
    return rc != TSR_OK ? rc : tenant_reply(ud, req, p.tenant_id, err);
}

static json_t *role_view(const tsr_id__role_t *r, const char *tenant, const char *base) {
    json_t *v =
        json_pack("{ss ss ss ss ss ss s[] s[] sb sb}", "id", r->id, "tenantId", tenant, "name",
                  r->name, "description", r->description, "type", "default", "level", r->level,
                  "permissions", "assignedScopes", "canEdit", 0, "canDelete", 0);
    char href[512];
    snprintf(href, sizeof href, "%s/api/v1/roles/%s", base, r->id);
    json_object_set_new(v, "links", json_pack("{s{ss}}", "self", "href", href));
    return v;
}

static tsr_err_t h_roles_list(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_id__principal_t p;
    tsr_err_t rc = authenticate(ud, req, &p, err);
    if (rc != TSR_OK) {
        return rc;
    }
    const char *base = tsr_req_base_url(req);
    json_t *data = json_array();
    size_t n = 0;
    for (const tsr_id__role_t *r = tsr_identity__roles(); r->id != NULL; r++, n++) {
        json_array_append_new(data, role_view(r, p.tenant_id, base));
    }
    json_t *body = json_pack("{so s{s{ss}}}", "data", data, "links", "self", "href",
                             tsr_arena_printf(tsr_req_arena(req), "%s/api/v1/roles", base));
    const char *tr = tsr_req_query(req, "totalResults");
    if (tr != NULL && strcmp(tr, "true") == 0) {
        json_object_set_new(body, "totalResults", json_integer((json_int_t)n));
    }
    tsr_req_reply_json(req, 200, body);
    return TSR_OK;
}

static tsr_err_t h_role_get(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_id__principal_t p;
    const char *rid;
    tsr_err_t rc = authenticate(ud, req, &p, err);
    if (rc == TSR_OK) {
        rc = path_id(req, "id", &rid, err);
    }
    if (rc != TSR_OK) {
        return rc;
    }
    const tsr_id__role_t *r = tsr_identity__role_find(rid);
    if (r == NULL) {
        return tsr_error_set(err, TSR_ENOTFOUND, "not found");
    }
    tsr_req_reply_json(req, 200, role_view(r, p.tenant_id, tsr_req_base_url(req)));
    return TSR_OK;
}

static tsr_err_t h_csrf(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_id__principal_t p;
    char *tok = NULL;
    tsr_err_t rc = authenticate(id, req, &p, err);
    if (rc != TSR_OK) {
        return rc;
    }
    if (strcmp(p.auth_type, "session") != 0) {
        /* Only cookie sessions carry a CSRF token (qlik-rest.md §1.3, §3.14). */
        return tsr_error_set(err, TSR_EINVAL, "CSRF tokens are not supported for the %s mechanism",
                             p.auth_type);
    }
    rc = tsr_identity__session_csrf(id, p.tenant_id, tsr_req_header(req, "cookie"), &tok, err);
    if (rc == TSR_OK) {
        tsr_req_add_header(req, "qlik-csrf-token", tok);
        tsr_req_reply_bytes(req, 204, "application/json", "", 0);
    }
    free(tok);
    return rc;
}

/* ---- local accounts: login and logout ------------------------------------------------------ */

static void set_cookie(tsr_req_t *req, const char *value, long max_age_s) {
    const char *proto = tsr_req_header(req, "x-forwarded-proto");
    bool https = proto != NULL && strcmp(proto, "https") == 0;
    tsr_req_add_header(req, "Set-Cookie",
                       tsr_arena_printf(tsr_req_arena(req),
                                        "%s=%s; Path=/; Max-Age=%ld; HttpOnly; SameSite=Lax%s",
                                        TSR_ID__COOKIE, value, max_age_s, https ? "; Secure" : ""));
    tsr_req_add_header(req, "Cache-Control", "no-store");
}

static tsr_err_t h_login(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    json_t *body = NULL, *v;
    const char *k, *email = NULL, *password = NULL, *totp = NULL;
    char tenant[25], *cookie = NULL, *csrf = NULL;
    tsr_err_t rc = tsr_req_json(req, &body, err);
    if (rc == TSR_OK && !json_is_object(body)) {
        rc = tsr_error_set(err, TSR_EINVAL, "the body must be a JSON object");
    }
    if (rc != TSR_OK) {
        goto out;
    }
    json_object_foreach(body, k, v) {
        const char **slot = strcmp(k, "email") == 0      ? &email
                            : strcmp(k, "password") == 0 ? &password
                            : strcmp(k, "totp") == 0     ? &totp
                                                         : NULL;
        if (slot == NULL || !json_is_string(v) || json_string_length(v) > 1024 ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            rc = tsr_error_set(err, TSR_EINVAL, "%.64s: expected email, password, totp strings", k);
            goto out;
        }
        *slot = json_string_value(v);
    }
    if (email == NULL || password == NULL) {
        rc = tsr_error_set(err, TSR_EINVAL, "email and password are required");
        goto out;
    }
    rc = tsr_identity_tenant_by_host(id, tsr_req_header(req, "host"), tenant, err);
    if (rc == TSR_ENOTFOUND || rc == TSR_EINVAL) {
        rc = tsr_error_set(err, TSR_EUNAUTHENTICATED, "invalid email or password");
    }
    if (rc == TSR_OK) {
        rc = tsr_identity__login(id, tenant, email, password, totp, &cookie, &csrf, err);
    }
    if (rc == TSR_OK) {
        set_cookie(req, cookie, (long)(TSR_ID__SESSION_TTL_MS / 1000));
        tsr_req_add_header(req, "qlik-csrf-token", csrf);
        tsr_req_reply_bytes(req, 204, "application/json", "", 0);
    }
out:
    if (cookie != NULL) {
        memset(cookie, 0, strlen(cookie));
    }
    free(cookie);
    free(csrf);
    json_decref(body);
    return rc;
}

static tsr_err_t h_invite_accept(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    json_t *body = NULL, *v;
    const char *k, *token = NULL, *password = NULL;
    char tenant[25];
    tsr_err_t rc = tsr_req_json(req, &body, err);
    if (rc == TSR_OK && !json_is_object(body)) {
        rc = tsr_error_set(err, TSR_EINVAL, "the body must be a JSON object");
    }
    if (rc != TSR_OK) {
        goto out;
    }
    json_object_foreach(body, k, v) {
        const char **slot = strcmp(k, "token") == 0      ? &token
                            : strcmp(k, "password") == 0 ? &password
                                                         : NULL;
        if (slot == NULL || !json_is_string(v) || json_string_length(v) > 1024 ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            rc = tsr_error_set(err, TSR_EINVAL, "%.64s: expected token and password strings", k);
            goto out;
        }
        *slot = json_string_value(v);
    }
    if (token == NULL || password == NULL) {
        rc = tsr_error_set(err, TSR_EINVAL, "token and password are required");
        goto out;
    }
    rc = tsr_identity_tenant_by_host(id, tsr_req_header(req, "host"), tenant, err);
    if (rc == TSR_EINVAL || rc == TSR_ENOTFOUND) {
        rc = tsr_error_set(err, TSR_ENOTFOUND, "the invitation is not valid or has expired");
    }
    if (rc == TSR_OK) {
        rc = tsr_identity__invite_accept(id, tenant, token, password, err);
    }
    if (rc == TSR_OK) {
        tsr_req_reply_bytes(req, 204, "application/json", "", 0);
    }
out:
    json_decref(body);
    return rc;
}

static tsr_err_t h_totp_enroll(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_id__principal_t p;
    char *secret = NULL;
    tsr_err_t rc = authenticate(id, req, &p, err);
    if (rc == TSR_OK) {
        rc = tsr_identity__totp_enroll(id, p.tenant_id, p.user_id, &secret, err);
    }
    if (rc == TSR_OK) {
        const char *uri = tsr_arena_printf(tsr_req_arena(req),
                                           "otpauth://totp/Tessera:%s?secret=%s&issuer=Tessera"
                                           "&algorithm=SHA1&digits=6&period=30",
                                           p.user_id, secret);
        tsr_req_add_header(req, "Cache-Control", "no-store");
        tsr_req_reply_json(req, 201, json_pack("{ss ss}", "secret", secret, "otpauthUri", uri));
    }
    free(secret);
    return rc;
}

static tsr_err_t h_totp_confirm(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_id__principal_t p;
    json_t *body = NULL;
    tsr_err_t rc = authenticate(id, req, &p, err);
    if (rc == TSR_OK) {
        rc = tsr_req_json(req, &body, err);
    }
    const char *code = json_string_value(json_object_get(body, "code"));
    if (rc == TSR_OK && (!json_is_object(body) || json_object_size(body) != 1 || code == NULL)) {
        rc = tsr_error_set(err, TSR_EINVAL, "the body must be {\"code\": \"123456\"}");
    }
    if (rc == TSR_OK) {
        rc = tsr_identity__totp_confirm(id, p.tenant_id, p.user_id, code, err);
    }
    if (rc == TSR_OK) {
        tsr_req_reply_bytes(req, 204, "application/json", "", 0);
    }
    json_decref(body);
    return rc;
}

static tsr_err_t h_tenant_patch(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_id__principal_t p;
    const char *tid = NULL;
    json_t *body = NULL;
    tsr_err_t rc = authenticate(id, req, &p, err);
    if (rc == TSR_OK) {
        rc = path_id(req, "tenantId", &tid, err);
    }
    if (rc == TSR_OK && strcmp(tid, p.tenant_id) != 0) {
        rc = tsr_error_set(err, TSR_ENOTFOUND, "not found");
    }
    if (rc == TSR_OK) {
        rc = require_admin(&p, err);
    }
    if (rc == TSR_OK) {
        rc = tsr_req_json(req, &body, err);
    }
    if (rc == TSR_OK) {
        rc = tsr_identity__tenant_patch(id, p.tenant_id, p.user_id, body, err);
    }
    if (rc == TSR_OK) {
        tsr_req_reply_bytes(req, 204, "application/json", "", 0);
    }
    json_decref(body);
    return rc;
}

static tsr_err_t h_password(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_id__principal_t p;
    json_t *body = NULL;
    tsr_err_t rc = authenticate(id, req, &p, err);
    if (rc == TSR_OK) {
        rc = tsr_req_json(req, &body, err);
    }
    const char *cur = json_string_value(json_object_get(body, "currentPassword"));
    const char *next = json_string_value(json_object_get(body, "newPassword"));
    if (rc == TSR_OK && (!json_is_object(body) || json_object_size(body) != 2 || cur == NULL ||
                         next == NULL || strlen(cur) > 1024 || strlen(next) > 1024)) {
        rc = tsr_error_set(err, TSR_EINVAL,
                           "the body must be {currentPassword, newPassword} (strings)");
    }
    if (rc == TSR_OK) {
        rc = tsr_identity__password_change(id, p.tenant_id, p.user_id,
                                           strcmp(p.auth_type, "session") == 0 ? p.key_id : NULL,
                                           cur, next, err);
    }
    if (rc == TSR_OK) {
        tsr_req_reply_bytes(req, 204, "application/json", "", 0);
    }
    json_decref(body);
    return rc;
}

static tsr_err_t h_logout(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_id__principal_t p;
    tsr_err_t rc = authenticate(id, req, &p, err);
    if (rc != TSR_OK) {
        return rc;
    }
    if (strcmp(p.auth_type, "session") == 0) {
        tsr_identity__logout(id, p.tenant_id, tsr_req_header(req, "cookie"));
    }
    set_cookie(req, "", 0);
    tsr_req_reply_bytes(req, 204, "application/json", "", 0);
    return TSR_OK;
}

/* ---- users ---------------------------------------------------------------------------------- */

static tsr_err_t user_reply(tsr_identity_t *id, tsr_req_t *req, const char *tenant, const char *uid,
                            unsigned status, tsr_error_t *err) {
    json_t *u = NULL;
    tsr_err_t rc = id->docs.get(id->docs.ud, TSR_ID__C_USERS, tenant, uid, &u, err);
    if (rc == TSR_OK) {
        tsr_req_reply_json(req, status, tsr_identity__user_view(u, tsr_req_base_url(req)));
    } else if (rc == TSR_ENOTFOUND) {
        tsr_error_set(err, TSR_ENOTFOUND, "not found");
    }
    json_decref(u);
    return rc;
}

static tsr_err_t h_users_me(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_id__principal_t p;
    tsr_err_t rc = authenticate(ud, req, &p, err);
    return rc != TSR_OK ? rc : user_reply(ud, req, p.tenant_id, p.user_id, 200, err);
}

static tsr_err_t h_user_get(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_id__principal_t p;
    const char *uid;
    tsr_err_t rc = authenticate(ud, req, &p, err);
    if (rc == TSR_OK) {
        rc = path_id(req, "userId", &uid, err);
    }
    return rc != TSR_OK ? rc : user_reply(ud, req, p.tenant_id, uid, 200, err);
}

static tsr_err_t h_users_list(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_id__principal_t p;
    size_t limit = 0;
    const char *next = NULL;
    json_t *rows = NULL;
    tsr_err_t rc = authenticate(id, req, &p, err);
    if (rc == TSR_OK) {
        rc = parse_limit(req, &limit, err);
    }
    if (rc == TSR_OK) {
        rc = parse_cursor(req, "next", &next, err);
    }
    if (rc == TSR_OK) {
        rc = id->docs.list(id->docs.ud, TSR_ID__C_USERS, p.tenant_id, NULL, NULL, next, limit + 1,
                           &rows, err);
    }
    if (rc == TSR_OK) {
        tsr_req_reply_json(
            req, 200, page(req, "/api/v1/users", "next", rows, limit, tsr_identity__user_view));
    }
    return rc;
}

static tsr_err_t h_user_create(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_id__principal_t p;
    json_t *body = NULL, *user = NULL;
    char *invite = NULL;
    tsr_err_t rc = authenticate(id, req, &p, err);
    if (rc == TSR_OK) {
        rc = require_admin(&p, err);
    }
    if (rc == TSR_OK) {
        rc = tsr_req_json(req, &body, err);
    }
    if (rc == TSR_OK) {
        rc = tsr_identity__user_create(id, p.tenant_id, p.user_id, body, &user, &invite, err);
    }
    if (rc == TSR_OK) {
        const char *base = tsr_req_base_url(req);
        json_t *view = tsr_identity__user_view(user, base);
        /* Shown once, like an API key's token; the fragment keeps it out of server logs. */
        if (invite != NULL) {
            json_object_set_new(view, "inviteLink",
                                json_string(tsr_arena_printf(
                                    tsr_req_arena(req), "%s/login/invite#token=%s", base, invite)));
        }
        tsr_req_reply_json(req, 201, view);
    }
    free(invite);
    json_decref(body);
    json_decref(user);
    return rc;
}

static tsr_err_t h_user_patch(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_id__principal_t p;
    const char *uid = NULL;
    json_t *body = NULL;
    tsr_err_t rc = admin_on(id, req, "userId", &p, &uid, err);
    if (rc == TSR_OK) {
        rc = tsr_req_json(req, &body, err);
    }
    if (rc == TSR_OK) {
        rc = tsr_identity__user_patch(id, p.tenant_id, p.user_id, uid, body, err);
    }
    if (rc == TSR_OK) {
        tsr_req_reply_bytes(req, 204, "application/json", "", 0);
    }
    json_decref(body);
    return rc;
}

static tsr_err_t h_user_del(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_id__principal_t p;
    const char *uid = NULL;
    tsr_err_t rc = admin_on(id, req, "userId", &p, &uid, err);
    if (rc == TSR_OK) {
        rc = tsr_identity__user_del(id, p.tenant_id, p.user_id, uid, err);
    }
    if (rc == TSR_OK) {
        tsr_req_reply_bytes(req, 204, "application/json", "", 0);
    }
    return rc;
}

/* ---- groups -------------------------------------------------------------------------------- */

static json_t *group_view(const json_t *g, const char *base) {
    json_t *v = json_deep_copy(g);
    char href[512];
    snprintf(href, sizeof href, "%s/api/v1/groups/%s", base,
             json_string_value(json_object_get(g, "id")));
    json_object_set_new(v, "links", json_pack("{s{ss}}", "self", "href", href));
    return v;
}

static tsr_err_t h_groups_list(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_id__principal_t p;
    size_t limit = 0;
    const char *next = NULL;
    json_t *rows = NULL;
    tsr_err_t rc = authenticate(id, req, &p, err);
    if (rc == TSR_OK) {
        rc = parse_limit(req, &limit, err);
    }
    if (rc == TSR_OK) {
        rc = parse_cursor(req, "next", &next, err);
    }
    if (rc == TSR_OK) {
        rc = id->docs.list(id->docs.ud, TSR_ID__C_GROUPS, p.tenant_id, NULL, NULL, next, limit + 1,
                           &rows, err);
    }
    if (rc == TSR_OK) {
        tsr_req_reply_json(req, 200, page(req, "/api/v1/groups", "next", rows, limit, group_view));
    }
    return rc;
}

static tsr_err_t h_group_create(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_id__principal_t p;
    json_t *body = NULL, *g = NULL;
    tsr_err_t rc = authenticate(id, req, &p, err);
    if (rc == TSR_OK) {
        rc = require_admin(&p, err);
    }
    if (rc == TSR_OK) {
        rc = tsr_req_json(req, &body, err);
    }
    if (rc == TSR_OK) {
        rc = tsr_identity__group_create(id, p.tenant_id, p.user_id, body, &g, err);
    }
    if (rc == TSR_OK) {
        tsr_req_reply_json(req, 201, group_view(g, tsr_req_base_url(req)));
    }
    json_decref(body);
    json_decref(g);
    return rc;
}

static tsr_err_t h_group_get(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_id__principal_t p;
    const char *gid = NULL;
    json_t *g = NULL;
    tsr_err_t rc = authenticate(id, req, &p, err);
    if (rc == TSR_OK) {
        rc = path_id(req, "groupId", &gid, err);
    }
    if (rc == TSR_OK) {
        rc = id->docs.get(id->docs.ud, TSR_ID__C_GROUPS, p.tenant_id, gid, &g, err);
        if (rc == TSR_ENOTFOUND) {
            tsr_error_set(err, rc, "not found");
        }
    }
    if (rc == TSR_OK) {
        tsr_req_reply_json(req, 200, group_view(g, tsr_req_base_url(req)));
    }
    json_decref(g);
    return rc;
}

static tsr_err_t h_group_patch(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_id__principal_t p;
    const char *gid = NULL;
    json_t *body = NULL;
    tsr_err_t rc = admin_on(id, req, "groupId", &p, &gid, err);
    if (rc == TSR_OK) {
        rc = tsr_req_json(req, &body, err);
    }
    if (rc == TSR_OK) {
        rc = tsr_identity__group_patch(id, p.tenant_id, p.user_id, gid, body, err);
    }
    if (rc == TSR_OK) {
        tsr_req_reply_bytes(req, 204, "application/json", "", 0);
    }
    json_decref(body);
    return rc;
}

static tsr_err_t h_group_del(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_id__principal_t p;
    const char *gid = NULL;
    tsr_err_t rc = admin_on(id, req, "groupId", &p, &gid, err);
    if (rc == TSR_OK) {
        rc = tsr_identity__group_del(id, p.tenant_id, p.user_id, gid, err);
    }
    if (rc == TSR_OK) {
        tsr_req_reply_bytes(req, 204, "application/json", "", 0);
    }
    return rc;
}

/* ---- API keys ------------------------------------------------------------------------------- */

/* The key at the path if the caller may see it (owner or TenantAdmin); otherwise not found,
 * so that other users' key ids are not probeable. *key is returned-owned. */
static tsr_err_t key_visible(tsr_identity_t *id, tsr_req_t *req, const tsr_id__principal_t *p,
                             json_t **key, tsr_error_t *err) {
    const char *kid = NULL;
    *key = NULL;
    tsr_err_t rc = path_id(req, "id", &kid, err);
    if (rc == TSR_OK) {
        rc = id->docs.get(id->docs.ud, TSR_ID__C_KEYS, p->tenant_id, kid, key, err);
    }
    if (rc == TSR_OK && !has_role(p, TSR_ID__ROLE_TENANT_ADMIN) &&
        strcmp(json_string_value(json_object_get(*key, "sub")), p->user_id) != 0) {
        json_decref(*key);
        *key = NULL;
        rc = TSR_ENOTFOUND;
    }
    if (rc == TSR_ENOTFOUND) {
        tsr_error_set(err, TSR_ENOTFOUND, "not found");
    }
    return rc;
}

static tsr_err_t h_keys_create(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_id__principal_t p;
    json_t *body = NULL, *key = NULL, *v;
    char *token = NULL;
    const char *desc = NULL, *sub = NULL, *k;
    int64_t exp_ms = 0;
    tsr_err_t rc = authenticate(id, req, &p, err);
    if (rc == TSR_OK && !has_role(&p, TSR_ID__ROLE_DEVELOPER | TSR_ID__ROLE_TENANT_ADMIN)) {
        rc = tsr_error_set(err, TSR_EFORBIDDEN, "this needs the Developer or TenantAdmin role");
    }
    if (rc == TSR_OK) {
        rc = tsr_req_json(req, &body, err);
    }
    if (rc == TSR_OK && !json_is_object(body)) {
        rc = tsr_error_set(err, TSR_EINVAL, "the body must be a JSON object");
    }
    if (rc != TSR_OK) {
        goto out;
    }
    json_object_foreach(body, k, v) {
        if (strcmp(k, "description") == 0) {
            if (!json_is_string(v) || json_string_length(v) == 0 ||
                json_string_length(v) > TSR_ID__MAX_DESC ||
                strlen(json_string_value(v)) != json_string_length(v)) {
                rc = tsr_error_set(err, TSR_EINVAL, "description must be 1..%d bytes",
                                   TSR_ID__MAX_DESC);
                goto out;
            }
            desc = json_string_value(v);
        } else if (strcmp(k, "expiry") == 0) {
            rc = tsr_identity__duration_parse(json_string_value(v), &exp_ms, err);
            if (rc != TSR_OK) {
                goto out;
            }
        } else if (strcmp(k, "sub") == 0) {
            sub = json_string_value(v);
            if (sub == NULL || strlen(sub) != 24 || strspn(sub, "0123456789abcdef") != 24) {
                rc = tsr_error_set(err, TSR_EINVAL, "sub must be a user id");
                goto out;
            }
        } else if (strcmp(k, "subType") == 0) {
            const char *st = json_string_value(v);
            if (st == NULL || strcmp(st, "user") != 0) {
                rc = tsr_error_set(err, TSR_EINVAL, "subType must be \"user\"");
                goto out;
            }
        } else {
            rc = tsr_error_set(err, TSR_EINVAL, "unknown field %.64s", k);
            goto out;
        }
    }
    if (desc == NULL) {
        rc = tsr_error_set(err, TSR_EINVAL, "description is required");
        goto out;
    }
    if (sub != NULL && strcmp(sub, p.user_id) != 0) {
        /* Keys for someone else: only a TenantAdmin, and only for a service user. */
        json_t *target = NULL;
        if (!has_role(&p, TSR_ID__ROLE_TENANT_ADMIN)) {
            rc = tsr_error_set(err, TSR_EINVAL, "sub: only the caller's own keys");
        } else if (id->docs.get(id->docs.ud, TSR_ID__C_USERS, p.tenant_id, sub, &target, err) !=
                       TSR_OK ||
                   !json_is_true(json_object_get(target, "serviceUser"))) {
            rc = tsr_error_set(err, TSR_EINVAL, "sub must be the caller or a service user");
        }
        json_decref(target);
        if (rc != TSR_OK) {
            goto out;
        }
    }
    rc = tsr_identity__key_create(id, p.tenant_id, sub != NULL ? sub : p.user_id, p.user_id, desc,
                                  exp_ms, &key, &token, err);
    if (rc == TSR_OK) {
        json_t *view = tsr_identity__key_view(key, tsr_req_base_url(req));
        json_object_set_new(view, "token", json_string(token));
        tsr_req_reply_json(req, 201, view);
    }
out:
    if (token != NULL) {
        memset(token, 0, strlen(token));
    }
    free(token);
    json_decref(body);
    json_decref(key);
    return rc;
}

static tsr_err_t h_keys_list(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_id__principal_t p;
    size_t limit = 0;
    const char *after = NULL, *sub = NULL;
    json_t *rows = NULL;
    tsr_err_t rc = authenticate(id, req, &p, err);
    if (rc == TSR_OK) {
        rc = parse_limit(req, &limit, err);
    }
    if (rc == TSR_OK) {
        rc = parse_cursor(req, "startingAfter", &after, err);
    }
    if (rc == TSR_OK) {
        /* Others' keys only for TenantAdmin; a non-admin asking for them sees its own. */
        sub = tsr_req_query(req, "sub");
        if (!has_role(&p, TSR_ID__ROLE_TENANT_ADMIN) || (sub != NULL && strlen(sub) > 64)) {
            sub = p.user_id;
        }
        rc = id->docs.list(id->docs.ud, TSR_ID__C_KEYS, p.tenant_id, sub != NULL ? "sub" : NULL,
                           sub, after, limit + 1, &rows, err);
    }
    if (rc == TSR_OK) {
        tsr_req_reply_json(
            req, 200,
            page(req, "/api/v1/api-keys", "startingAfter", rows, limit, tsr_identity__key_view));
    }
    return rc;
}

static tsr_err_t h_key_get(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_id__principal_t p;
    json_t *key = NULL;
    tsr_err_t rc = authenticate(ud, req, &p, err);
    if (rc == TSR_OK) {
        rc = key_visible(ud, req, &p, &key, err);
    }
    if (rc == TSR_OK) {
        tsr_req_reply_json(req, 200, tsr_identity__key_view(key, tsr_req_base_url(req)));
    }
    json_decref(key);
    return rc;
}

static tsr_err_t h_key_del(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_id__principal_t p;
    json_t *key = NULL;
    tsr_err_t rc = authenticate(id, req, &p, err);
    if (rc == TSR_OK) {
        rc = key_visible(id, req, &p, &key, err);
    }
    if (rc != TSR_OK) {
        goto out;
    }
    const char *kid = json_string_value(json_object_get(key, "id"));
    if (strcmp(json_string_value(json_object_get(key, "sub")), p.user_id) == 0) {
        /* Qlik: the owner deletes its key; an admin revokes someone else's. */
        rc = id->docs.del(id->docs.ud, TSR_ID__C_KEYS, p.tenant_id, kid,
                          &(tsr_id__audit_t){"com.qlik.v1.api-key.deleted", p.user_id, key}, err);
    } else {
        char ts[25];
        tsr_time_format_rfc3339(tsr_wall_ms(), ts);
        json_object_set_new(key, "status", json_string("revoked"));
        json_object_set_new(key, "lastUpdated", json_string(ts));
        rc = id->docs.replace(id->docs.ud, TSR_ID__C_KEYS, p.tenant_id, kid, key,
                              &(tsr_id__audit_t){"com.qlik.v1.api-key.revoked", p.user_id, key},
                              err);
    }
    if (rc == TSR_OK) {
        tsr_req_reply_bytes(req, 204, "application/json", "", 0);
    }
out:
    json_decref(key);
    return rc;
}

static tsr_err_t h_key_patch(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_id__principal_t p;
    json_t *key = NULL, *body = NULL, *op;
    size_t i;
    tsr_err_t rc = authenticate(id, req, &p, err);
    if (rc == TSR_OK) {
        rc = key_visible(id, req, &p, &key, err);
    }
    if (rc == TSR_OK) {
        rc = tsr_req_json(req, &body, err);
    }
    if (rc == TSR_OK && (!json_is_array(body) || json_array_size(body) == 0 ||
                         json_array_size(body) > TSR_ID__MAX_PATCH_OPS)) {
        rc = tsr_error_set(err, TSR_EINVAL, "the body must be a JSON Patch array of 1..%d ops",
                           TSR_ID__MAX_PATCH_OPS);
    }
    if (rc != TSR_OK) {
        goto out;
    }
    json_array_foreach(body, i, op) {
        const char *o = json_string_value(json_object_get(op, "op"));
        const char *path = json_string_value(json_object_get(op, "path"));
        json_t *v = json_object_get(op, "value");
        if (!json_is_object(op) || json_object_size(op) != 3 || o == NULL ||
            strcmp(o, "replace") != 0 || path == NULL || strcmp(path, "/description") != 0 ||
            !json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) > TSR_ID__MAX_DESC ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            rc = tsr_error_set(err, TSR_EINVAL,
                               "patch[%zu]: only {op: replace, path: /description, value: "
                               "1..%d bytes}",
                               i, TSR_ID__MAX_DESC);
            goto out;
        }
        json_object_set(key, "description", v);
    }
    char ts[25];
    tsr_time_format_rfc3339(tsr_wall_ms(), ts);
    json_object_set_new(key, "lastUpdated", json_string(ts));
    rc = id->docs.replace(id->docs.ud, TSR_ID__C_KEYS, p.tenant_id,
                          json_string_value(json_object_get(key, "id")), key, NULL, err);
    if (rc == TSR_OK) {
        tsr_req_reply_bytes(req, 204, "application/json", "", 0);
    }
out:
    json_decref(key);
    json_decref(body);
    return rc;
}

/* The tenant's API-key policy (Qlik's shape); read-only here, set by TSR_API_KEY_* knobs. */
static tsr_err_t h_key_config(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_id__principal_t p;
    const char *tid = NULL;
    tsr_err_t rc = authenticate(id, req, &p, err);
    if (rc == TSR_OK) {
        rc = path_id(req, "tenantId", &tid, err);
    }
    if (rc == TSR_OK && strcmp(tid, p.tenant_id) != 0) {
        rc = tsr_error_set(err, TSR_ENOTFOUND, "not found");
    }
    if (rc == TSR_OK) {
        tsr_arena_t *a = tsr_req_arena(req);
        tsr_req_reply_json(req, 200,
                           json_pack("{ss sI ss}", "max_api_key_expiry",
                                     tsr_arena_printf(a, "P%uD", id->key_max_days),
                                     "max_keys_per_user", (json_int_t)id->max_keys_per_user,
                                     "scim_externalClient_expiry",
                                     tsr_arena_printf(a, "P%uD", id->key_max_days)));
    }
    return rc;
}

/* ---- identity providers (OIDC) ------------------------------------------------------------- */

static tsr_err_t h_idps_list(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_id__principal_t p;
    size_t limit = 0;
    const char *after = NULL;
    json_t *rows = NULL;
    tsr_err_t rc = authenticate(id, req, &p, err);
    if (rc == TSR_OK) {
        rc = require_admin(&p, err);
    }
    if (rc == TSR_OK) {
        rc = parse_limit(req, &limit, err);
    }
    if (rc == TSR_OK) {
        rc = parse_cursor(req, "next", &after, err);
    }
    if (rc == TSR_OK) {
        rc = id->docs.list(id->docs.ud, TSR_ID__C_IDPS, p.tenant_id, NULL, NULL, after, limit + 1,
                           &rows, err);
    }
    if (rc == TSR_OK) {
        tsr_req_reply_json(
            req, 200,
            page(req, "/api/v1/identity-providers", "next", rows, limit, tsr_identity__idp_view));
    }
    return rc;
}

static tsr_err_t h_idp_create(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_id__principal_t p;
    json_t *body = NULL, *doc = NULL;
    tsr_err_t rc = authenticate(id, req, &p, err);
    if (rc == TSR_OK) {
        rc = require_admin(&p, err);
    }
    if (rc == TSR_OK) {
        rc = tsr_req_json(req, &body, err);
    }
    if (rc == TSR_OK) {
        rc = tsr_identity__idp_create(id, p.tenant_id, p.user_id, body, &doc, err);
    }
    if (rc == TSR_OK) {
        tsr_req_reply_json(req, 201, tsr_identity__idp_view(doc, tsr_req_base_url(req)));
    }
    json_decref(doc);
    json_decref(body);
    return rc;
}

static tsr_err_t h_idp_get(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_id__principal_t p;
    const char *iid = NULL;
    json_t *doc = NULL;
    tsr_err_t rc = admin_on(id, req, "id", &p, &iid, err);
    if (rc == TSR_OK) {
        rc = id->docs.get(id->docs.ud, TSR_ID__C_IDPS, p.tenant_id, iid, &doc, err);
        if (rc == TSR_ENOTFOUND) {
            tsr_error_set(err, rc, "not found");
        }
    }
    if (rc == TSR_OK) {
        tsr_req_reply_json(req, 200, tsr_identity__idp_view(doc, tsr_req_base_url(req)));
    }
    json_decref(doc);
    return rc;
}

static tsr_err_t h_idp_patch(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_id__principal_t p;
    const char *iid = NULL;
    json_t *body = NULL, *doc = NULL;
    tsr_err_t rc = admin_on(id, req, "id", &p, &iid, err);
    if (rc == TSR_OK) {
        rc = tsr_req_json(req, &body, err);
    }
    if (rc == TSR_OK) {
        rc = tsr_identity__idp_patch(id, p.tenant_id, p.user_id, iid, body, &doc, err);
    }
    if (rc == TSR_OK) {
        tsr_req_reply_json(req, 200, tsr_identity__idp_view(doc, tsr_req_base_url(req)));
    }
    json_decref(doc);
    json_decref(body);
    return rc;
}

static tsr_err_t h_idp_del(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    tsr_id__principal_t p;
    const char *iid = NULL;
    tsr_err_t rc = admin_on(id, req, "id", &p, &iid, err);
    if (rc == TSR_OK) {
        rc = tsr_identity__idp_del(id, p.tenant_id, p.user_id, iid, err);
    }
    if (rc == TSR_OK) {
        tsr_req_reply_bytes(req, 204, "application/json", "", 0);
    }
    return rc;
}

/* The redirect URI registered at the provider for idp: this site's callback path. */
static const char *oidc_redirect_uri(tsr_req_t *req, const char *idp_id) {
    return tsr_arena_printf(tsr_req_arena(req), "%s/api/v1/identity/oidc/%s/callback",
                            tsr_req_base_url(req), idp_id);
}

/* The value of cookie name in a Cookie header (arena copy), NULL if absent. */
static const char *cookie_value(tsr_req_t *req, const char *name) {
    const char *h = tsr_req_header(req, "cookie");
    size_t n = strlen(name);
    while (h != NULL && *h != '\0') {
        while (*h == ' ' || *h == ';') {
            h++;
        }
        const char *end = strchr(h, ';');
        size_t len = end != NULL ? (size_t)(end - h) : strlen(h);
        if (len > n && strncmp(h, name, n) == 0 && h[n] == '=') {
            return tsr_arena_printf(tsr_req_arena(req), "%.*s", (int)(len - n - 1), h + n + 1);
        }
        h = end;
    }
    return NULL;
}

/* GET /api/v1/identity/oidc/{idpId}/login[?returnto=/path]: 302 to the provider. */
static tsr_err_t h_oidc_login(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    const char *iid = NULL;
    char tenant[25], *loc = NULL, *state = NULL;
    tsr_err_t rc = path_id(req, "idpId", &iid, err);
    if (rc == TSR_OK) {
        rc = tsr_identity_tenant_by_host(id, tsr_req_header(req, "host"), tenant, err);
        if (rc == TSR_EINVAL) {
            rc = tsr_error_set(err, TSR_ENOTFOUND, "no tenant for this host");
        }
    }
    if (rc == TSR_OK) {
        rc = tsr_identity__oidc_start(id, tenant, iid, oidc_redirect_uri(req, iid),
                                      tsr_req_query(req, "returnto"), &loc, &state, err);
    }
    if (rc == TSR_OK) {
        const char *proto = tsr_req_header(req, "x-forwarded-proto");
        bool https = proto != NULL && strcmp(proto, "https") == 0;
        tsr_req_add_header(
            req, "Set-Cookie",
            tsr_arena_printf(tsr_req_arena(req),
                             "%s=%s; Path=/api/v1/identity/oidc/; Max-Age=%lld; HttpOnly; "
                             "SameSite=Lax%s",
                             TSR_ID__OIDC_COOKIE, state,
                             (long long)(TSR_ID__OIDC_STATE_TTL_MS / 1000),
                             https ? "; Secure" : ""));
        tsr_req_add_header(req, "Location", loc);
        tsr_req_add_header(req, "Cache-Control", "no-store");
        tsr_req_reply_bytes(req, 302, "text/plain", "", 0);
    }
    free(loc);
    free(state);
    return rc;
}

/* GET /api/v1/identity/oidc/providers: the tenant's (by Host) active providers for the sign-in
 * page's "Sign in with ..." buttons; public, read-only, ids and names only. */
static tsr_err_t h_oidc_providers(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    char tenant[25];
    json_t *out = NULL;
    tsr_err_t rc = tsr_identity_tenant_by_host(id, tsr_req_header(req, "host"), tenant, err);
    if (rc == TSR_EINVAL) {
        rc = tsr_error_set(err, TSR_ENOTFOUND, "no tenant for this host");
    }
    if (rc == TSR_OK) {
        rc = tsr_identity__oidc_sign_in_options(id, tenant, &out, err);
    }
    if (rc == TSR_OK) {
        tsr_req_add_header(req, "Cache-Control", "no-store");
        tsr_req_reply_json(req, 200, out);
    }
    return rc;
}

/* GET /api/v1/identity/oidc/{idpId}/callback?code&state: the provider's redirect back. */
static tsr_err_t h_oidc_callback(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_identity_t *id = ud;
    const char *iid = NULL;
    char tenant[25], *cookie = NULL, *csrf = NULL, *returnto = NULL;
    tsr_err_t rc = path_id(req, "idpId", &iid, err);
    if (rc == TSR_OK) {
        rc = tsr_identity_tenant_by_host(id, tsr_req_header(req, "host"), tenant, err);
        if (rc == TSR_EINVAL) {
            rc = tsr_error_set(err, TSR_ENOTFOUND, "no tenant for this host");
        }
    }
    const char *e = tsr_req_query(req, "error");
    if (rc == TSR_OK && e != NULL) {
        rc = tsr_error_set(err, TSR_EUNAUTHENTICATED, "the identity provider refused: %.64s", e);
    }
    if (rc == TSR_OK) {
        rc = tsr_identity__oidc_finish(
            id, tenant, iid, tsr_req_query(req, "state"), tsr_req_query(req, "code"),
            cookie_value(req, TSR_ID__OIDC_COOKIE), &cookie, &csrf, &returnto, err);
    }
    /* The state cookie is spent either way. */
    tsr_req_add_header(req, "Set-Cookie",
                       tsr_arena_printf(tsr_req_arena(req),
                                        "%s=; Path=/api/v1/identity/oidc/; Max-Age=0; HttpOnly; "
                                        "SameSite=Lax",
                                        TSR_ID__OIDC_COOKIE));
    if (rc == TSR_OK) {
        set_cookie(req, cookie, (long)(TSR_ID__SESSION_TTL_MS / 1000));
        tsr_req_add_header(req, "qlik-csrf-token", csrf);
        tsr_req_add_header(req, "Location", returnto);
        tsr_req_reply_bytes(req, 302, "text/plain", "", 0);
    }
    if (cookie != NULL) {
        memset(cookie, 0, strlen(cookie));
    }
    free(cookie);
    free(csrf);
    free(returnto);
    return rc;
}

/* ---- routes --------------------------------------------------------------------------------- */

static const struct {
    const char *method, *pattern;
    tsr_httpd_handler_fn fn;
} ROUTES[] = {
    {"GET", "/internal/v1/authn", h_authn},
    {"POST", "/internal/v1/tenants", h_platform_tenant_create},
    {"DELETE", "/internal/v1/tenants/{tenantId}", h_platform_tenant_del},
    {"POST", "/internal/v1/service-tokens", h_platform_service_token},
    {"GET", "/api/v1/tenants/me", h_tenant_me},
    {"GET", "/api/v1/tenants/{tenantId}", h_tenant_get},
    {"PATCH", "/api/v1/tenants/{tenantId}", h_tenant_patch},
    {"GET", "/api/v1/users/me", h_users_me},
    {"GET", "/api/v1/users", h_users_list},
    {"POST", "/api/v1/users", h_user_create},
    {"GET", "/api/v1/users/{userId}", h_user_get},
    {"PATCH", "/api/v1/users/{userId}", h_user_patch},
    {"DELETE", "/api/v1/users/{userId}", h_user_del},
    {"GET", "/api/v1/groups", h_groups_list},
    {"POST", "/api/v1/groups", h_group_create},
    {"GET", "/api/v1/groups/{groupId}", h_group_get},
    {"PATCH", "/api/v1/groups/{groupId}", h_group_patch},
    {"DELETE", "/api/v1/groups/{groupId}", h_group_del},
    {"GET", "/api/v1/roles", h_roles_list},
    {"GET", "/api/v1/roles/{id}", h_role_get},
    {"GET", "/api/v1/api-keys", h_keys_list},
    {"POST", "/api/v1/api-keys", h_keys_create},
    {"GET", "/api/v1/api-keys/{id}", h_key_get},
    {"DELETE", "/api/v1/api-keys/{id}", h_key_del},
    {"PATCH", "/api/v1/api-keys/{id}", h_key_patch},
    {"GET", "/api/v1/api-keys/configs/{tenantId}", h_key_config},
    {"GET", "/api/v1/csrf-token", h_csrf},
    {"POST", "/api/v1/identity/login", h_login},
    {"POST", "/api/v1/identity/logout", h_logout},
    {"POST", "/api/v1/identity/password", h_password},
    {"POST", "/api/v1/identity/invites/accept", h_invite_accept},
    {"POST", "/api/v1/identity/mfa/totp", h_totp_enroll},
    {"POST", "/api/v1/identity/mfa/totp/confirm", h_totp_confirm},
    {"GET", "/api/v1/identity/keys", h_jwks},
    {"GET", "/api/v1/identity-providers", h_idps_list},
    {"POST", "/api/v1/identity-providers", h_idp_create},
    {"GET", "/api/v1/identity-providers/{id}", h_idp_get},
    {"PATCH", "/api/v1/identity-providers/{id}", h_idp_patch},
    {"DELETE", "/api/v1/identity-providers/{id}", h_idp_del},
    {"GET", "/api/v1/identity/oidc/providers", h_oidc_providers},
    {"GET", "/api/v1/identity/oidc/{idpId}/login", h_oidc_login},
    {"GET", "/api/v1/identity/oidc/{idpId}/callback", h_oidc_callback},
};

bool tsr_identity__route_at(size_t i, const char **method, const char **pattern) {
    if (i >= sizeof ROUTES / sizeof ROUTES[0]) {
        return false;
    }
    *method = ROUTES[i].method;
    *pattern = ROUTES[i].pattern;
    return true;
}

tsr_err_t tsr_identity_routes(tsr_httpd_t *h, void *ud, tsr_error_t *err) {
    if (ud == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "identity routes need the identity service");
    }
    for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0]; i++) {
        tsr_err_t rc =
            tsr_httpd_route(h, ROUTES[i].method, ROUTES[i].pattern, ROUTES[i].fn, ud, err);
        if (rc != TSR_OK) {
            return rc;
        }
    }
    return TSR_OK;
}
