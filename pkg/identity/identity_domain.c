/*
 * pkg/identity domain: tenants and their hostnames, users, roles, API keys, the credential
 * check behind the authn decision, and the local-stack bootstrap. Storage only through the
 * tsr_id__docs_t table over pkg/store (docs_store.c). Invariant: the tenant is always an argument
 * taken from the verified Host, so a lookup in another tenant can only miss (TSR_ENOTFOUND).
 */
#include <ctype.h>
#include <pthread.h>
#include <string.h>

#include "identity_int.h"
#include "log.h"

#define KEY_PREFIX "tsrk_"
#define KEY_PREFIX_LEN 5u
#define KEY_SECRET_BYTES 32u
#define DAY_MS (24LL * 3600 * 1000)
#define TOTP_KIND "totp-secret" /* sealing kind of TOTP secrets (pending and enrolled) */

static const tsr_id__role_t ROLES[] = {
    {"000000000000000000000001", "TenantAdmin", "admin",
     "Manages the tenant: users, groups, roles, API keys, identity providers.",
     TSR_ID__ROLE_TENANT_ADMIN},
    {"000000000000000000000002", "AuditAdmin", "admin", "Reads the tenant's audit trail.",
     TSR_ID__ROLE_AUDIT_ADMIN},
    {"000000000000000000000003", "Developer", "user", "May create and manage own API keys.",
     TSR_ID__ROLE_DEVELOPER},
    {"000000000000000000000004", "User", "user", "Every signed-in user (implied).",
     TSR_ID__ROLE_USER},
    {NULL, NULL, NULL, NULL, 0},
};

const tsr_id__role_t *tsr_identity__roles(void) {
    return ROLES;
}

const tsr_id__role_t *tsr_identity__role_find(const char *id_or_name) {
    for (const tsr_id__role_t *r = ROLES; r->id != NULL; r++) {
        if (strcmp(r->id, id_or_name) == 0 || strcmp(r->name, id_or_name) == 0) {
            return r;
        }
    }
    return NULL;
}

void tsr_identity__audit(tsr_identity_t *id, const char *tenant, const char *user, const char *type,
                         json_t *data) {
    if (id->on_audit != NULL) {
        id->on_audit(id->audit_ud, tenant, user, type, data);
    }
}

static tsr_err_t email_normalize(const char *email, char out[TSR_ID__MAX_EMAIL + 1],
                                 tsr_error_t *err);
static bool token_split(const char *tok, const char *prefix, char tid[25], const char **secret);

static void now_rfc3339(char out[25]) {
    tsr_time_format_rfc3339(tsr_wall_ms(), out);
}

static bool is_hex24(const char *s) {
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        if (!isxdigit((unsigned char)s[n]) || isupper((unsigned char)s[n]) || n >= 24) {
            return false;
        }
    }
    return n == 24;
}

/* ---- hostnames and tenants ------------------------------------------------------------------ */

tsr_err_t tsr_identity__host_normalize(const char *host, char out[TSR_ID__MAX_HOST + 1],
                                       tsr_error_t *err) {
    size_t n = 0;
    if (host == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "no host");
    }
    for (const char *p = host; *p != '\0' && *p != ':'; p++) {
        unsigned char c = (unsigned char)*p;
        if (n >= TSR_ID__MAX_HOST || !(isalnum(c) || c == '-' || c == '.')) {
            return tsr_error_set(err, TSR_EINVAL, "invalid hostname");
        }
        out[n++] = (char)tolower(c);
    }
    out[n] = '\0';
    if (n == 0 || out[0] == '.' || out[0] == '-' || out[n - 1] == '.' || strstr(out, "..")) {
        return tsr_error_set(err, TSR_EINVAL, "invalid hostname");
    }
    return TSR_OK;
}

tsr_err_t tsr_identity_tenant_by_host(tsr_identity_t *id, const char *host, char out_id[25],
                                      tsr_error_t *err) {
    char h[TSR_ID__MAX_HOST + 1];
    json_t *doc = NULL;
    tsr_err_t rc = tsr_identity__host_normalize(host, h, err);
    if (rc != TSR_OK) {
        return tsr_error_set(err, TSR_ENOTFOUND, "no tenant for this host");
    }
    rc = id->docs.find(id->docs.ud, TSR_ID__C_HOSTS, "hostname", h, &doc, err);
    if (rc != TSR_OK) {
        goto out;
    }
    const char *t = json_string_value(json_object_get(doc, "tenantId"));
    if (t == NULL || !is_hex24(t)) {
        rc = tsr_error_set(err, TSR_ECORRUPT, "hostname record without tenant");
        goto out;
    }
    memcpy(out_id, t, 25);
out:
    json_decref(doc);
    return rc;
}

tsr_err_t tsr_identity_tenant_create(tsr_identity_t *id, const char *name,
                                     const char *const *hostnames, char out_id[25],
                                     tsr_error_t *err) {
    char hosts[TSR_ID__MAX_HOSTS][TSR_ID__MAX_HOST + 1];
    size_t nh = 0, claimed = 0;
    char ts[25];
    json_t *doc = NULL;
    tsr_err_t rc = TSR_OK;
    if (name == NULL || name[0] == '\0' || strlen(name) > TSR_ID__MAX_NAME) {
        return tsr_error_set(err, TSR_EINVAL, "name must be 1..%d bytes", TSR_ID__MAX_NAME);
    }
    for (; hostnames != NULL && hostnames[nh] != NULL; nh++) {
        if (nh >= TSR_ID__MAX_HOSTS) {
            return tsr_error_set(err, TSR_EINVAL, "at most %d hostnames", TSR_ID__MAX_HOSTS);
        }
        if (strchr(hostnames[nh], ':') != NULL ||
            tsr_identity__host_normalize(hostnames[nh], hosts[nh], err) != TSR_OK) {
            return tsr_error_set(err, TSR_EINVAL, "hostname %zu is not a valid hostname", nh);
        }
        for (size_t j = 0; j < nh; j++) {
            if (strcmp(hosts[j], hosts[nh]) == 0) {
                return tsr_error_set(err, TSR_EINVAL, "hostname %s is listed twice", hosts[nh]);
            }
        }
    }
    if (nh == 0) {
        return tsr_error_set(err, TSR_EINVAL, "a tenant needs at least one hostname");
    }
    tsr_id_new(out_id);
    /* Claim each hostname first: the store's global unique constraint on hostnames makes two
     * tenants racing for the same name impossible; on a conflict the claims made so far are
     * released. */
    for (; claimed < nh; claimed++) {
        json_t *h = json_pack("{ss ss ss}", "id", hosts[claimed], "hostname", hosts[claimed],
                              "tenantId", out_id);
        rc = id->docs.create(id->docs.ud, TSR_ID__C_HOSTS, out_id, hosts[claimed], h, NULL, err);
        json_decref(h);
        if (rc != TSR_OK) {
            if (rc == TSR_ECONFLICT) {
                tsr_error_set(err, TSR_ECONFLICT, "hostname %s belongs to another tenant",
                              hosts[claimed]);
            }
            goto out;
        }
    }
    now_rfc3339(ts);
    json_t *jh = json_array();
    for (size_t i = 0; i < nh; i++) {
        json_array_append_new(jh, json_string(hosts[i]));
    }
    doc = json_pack("{ss ss so ss ss ss ss ss}", "id", out_id, "name", name, "hostnames", jh,
                    "status", "active", "datacenter", "local", "created", ts, "lastUpdated", ts,
                    "statusLastUpdatedAt", ts);
    /* The tenant's data key before the tenant: a tenant never exists without one. */
    if ((rc = tsr_identity__dek_create(id, out_id, err)) != TSR_OK) {
        goto out;
    }
    rc = id->docs.create(id->docs.ud, TSR_ID__C_TENANTS, out_id, out_id, doc,
                         &(tsr_id__audit_t){"com.qlik.v1.tenant.created", NULL, doc}, err);
    if (rc != TSR_OK) {
        (void)tsr_identity__dek_shred(id, out_id, NULL);
    }
out:
    if (rc != TSR_OK) {
        for (size_t i = 0; i < claimed; i++) {
            id->docs.del(id->docs.ud, TSR_ID__C_HOSTS, out_id, hosts[i], NULL, NULL);
        }
    }
    json_decref(doc);
    return rc;
}

/* Delete every document of (coll, tenant); claim documents carry their key as "id". */
static tsr_err_t purge(tsr_identity_t *id, const char *coll, const char *tenant, tsr_error_t *err) {
    for (;;) {
        json_t *rows = NULL, *r;
        size_t i;
        tsr_err_t rc = id->docs.list(id->docs.ud, coll, tenant, NULL, NULL, NULL, 500, &rows, err);
        if (rc != TSR_OK) {
            return rc;
        }
        size_t n = json_array_size(rows);
        json_array_foreach(rows, i, r) {
            const char *k = json_string_value(json_object_get(r, "id"));
            rc = k != NULL ? id->docs.del(id->docs.ud, coll, tenant, k, NULL, err) : TSR_ECORRUPT;
            if (rc != TSR_OK && rc != TSR_ENOTFOUND) {
                json_decref(rows);
                return rc == TSR_ECORRUPT ? tsr_error_set(err, rc, "a %s document has no id", coll)
                                          : rc;
            }
        }
        json_decref(rows);
        if (n == 0) {
            return TSR_OK;
        }
    }
}

tsr_err_t tsr_identity_tenant_del(tsr_identity_t *id, const char *tenant_id, tsr_error_t *err) {
    static const char *const colls[] = {TSR_ID__C_SESSIONS,
                                        TSR_ID__C_KEYS,
                                        TSR_ID__C_SECRETS,
                                        TSR_ID__C_EMAILS,
                                        TSR_ID__C_USERS,
                                        TSR_ID__C_GROUPS,
                                        TSR_ID__C_GROUP_NAMES,
                                        TSR_ID__C_OIDC_STATES,
                                        TSR_ID__C_OIDC_LINKS,
                                        TSR_ID__C_IDPS,
                                        NULL};
    json_t *t = NULL, *h;
    size_t i;
    if (tenant_id == NULL || !is_hex24(tenant_id)) {
        return tsr_error_set(err, TSR_ENOTFOUND, "no such tenant");
    }
    tsr_err_t rc = id->docs.get(id->docs.ud, TSR_ID__C_TENANTS, tenant_id, tenant_id, &t, err);
    if (rc != TSR_OK) {
        return rc == TSR_ENOTFOUND ? tsr_error_set(err, rc, "no such tenant") : rc;
    }
    /* Hostnames first: from then on no request resolves to the tenant, so nothing can
     * authenticate while the rest goes. Every step is idempotent; a failed delete is retried
     * by running it again. */
    json_array_foreach(json_object_get(t, "hostnames"), i, h) {
        id->docs.del(id->docs.ud, TSR_ID__C_HOSTS, tenant_id, json_string_value(h), NULL, NULL);
    }
    for (i = 0; colls[i] != NULL && rc == TSR_OK; i++) {
        rc = purge(id, colls[i], tenant_id, err);
    }
    /* Crypto-shredding: without its DEK records nothing sealed for the tenant opens again. */
    if (rc == TSR_OK) {
        rc = tsr_identity__dek_shred(id, tenant_id, err);
    }
    if (rc == TSR_OK) {
        rc = id->docs.del(id->docs.ud, TSR_ID__C_TENANTS, tenant_id, tenant_id,
                          &(tsr_id__audit_t){"com.qlik.v1.tenant.deleted", NULL, t}, err);
    }
    json_decref(t);
    return rc;
}

/* ---- platform administrators ---------------------------------------------------------------- */

tsr_err_t tsr_identity_platform_token_create(tsr_identity_t *id, const char *description,
                                             char **token, tsr_error_t *err) {
    char tid[25], secret[64], hash[65], ts[25];
    *token = NULL;
    if (description == NULL || strlen(description) > TSR_ID__MAX_DESC) {
        return tsr_error_set(err, TSR_EINVAL, "description must be 0..%d bytes", TSR_ID__MAX_DESC);
    }
    tsr_id_new(tid);
    tsr_identity__random_b64url(32, secret, sizeof secret);
    tsr_identity__sha256_hex(secret, strlen(secret), hash);
    now_rfc3339(ts);
    json_t *doc = json_pack("{ss ss ss ss}", "id", tid, "hash", hash, "description", description,
                            "created", ts);
    tsr_err_t rc = id->docs.create(id->docs.ud, TSR_ID__C_PLATFORM_TOKENS, TSR_ID__PLATFORM, tid,
                                   doc, NULL, err);
    json_decref(doc);
    if (rc == TSR_OK) {
        tsr_buf_t b;
        tsr_buf_init(&b, 256);
        tsr_buf_appendf(&b, "tsrp_%s_%s", tid, secret);
        *token = tsr_buf_take(&b, NULL);
    }
    return rc;
}

bool tsr_identity__is_platform_admin(tsr_identity_t *id, const char *authz) {
    char tid[25], hash[65];
    const char *secret = NULL;
    json_t *doc = NULL;
    bool ok = false;
    tsr_str_t a = tsr_str_trim(tsr_str(authz));
    if (authz == NULL || a.n < 8 || a.n > 7 + TSR_ID__MAX_TOKEN ||
        !tsr_str_case_eq_cstr(tsr_str_n(a.p, 7), "bearer ")) {
        return false;
    }
    char tok[TSR_ID__MAX_TOKEN + 1];
    tsr_str_t t = tsr_str_trim(tsr_str_n(a.p + 7, a.n - 7));
    memcpy(tok, t.p, t.n);
    tok[t.n] = '\0';
    if (!token_split(tok, "tsrp_", tid, &secret) ||
        id->docs.get(id->docs.ud, TSR_ID__C_PLATFORM_TOKENS, TSR_ID__PLATFORM, tid, &doc, NULL) !=
            TSR_OK) {
        return false;
    }
    tsr_identity__sha256_hex(secret, strlen(secret), hash);
    const char *want = json_string_value(json_object_get(doc, "hash"));
    ok = want != NULL && tsr_identity__ct_eq(want, hash);
    json_decref(doc);
    return ok;
}

/* ---- views ------------------------------------------------------------------------------------
 */

static void add_self(json_t *v, const char *base, const char *path, const char *id) {
    if (base != NULL) {
        char *href = NULL;
        tsr_buf_t b;
        tsr_buf_init(&b, 4096);
        if (tsr_buf_appendf(&b, "%s%s/%s", base, path, id) == TSR_OK) {
            href = tsr_buf_take(&b, NULL);
            json_object_set_new(v, "links", json_pack("{s{ss}}", "self", "href", href));
            free(href);
        }
        tsr_buf_cleanup(&b);
    }
}

json_t *tsr_identity__user_view(const json_t *user, const char *base) {
    json_t *v = json_deep_copy(user);
    add_self(v, base, "/api/v1/users", json_string_value(json_object_get(user, "id")));
    return v;
}

json_t *tsr_identity__tenant_view(const json_t *tenant, const char *base) {
    json_t *v = json_deep_copy(tenant);
    add_self(v, base, "/api/v1/tenants", json_string_value(json_object_get(tenant, "id")));
    return v;
}

json_t *tsr_identity__key_view(const json_t *key, const char *base) {
    json_t *v = json_deep_copy(key);
    json_object_del(v, "hash");
    int64_t exp_ms = 0;
    const char *exp = json_string_value(json_object_get(key, "expiry"));
    const char *st = json_string_value(json_object_get(key, "status"));
    if (st != NULL && strcmp(st, "active") == 0 && exp != NULL &&
        tsr_time_parse_rfc3339(exp, &exp_ms) == TSR_OK && exp_ms <= tsr_wall_ms()) {
        json_object_set_new(v, "status", json_string("expired"));
    }
    add_self(v, base, "/api/v1/api-keys", json_string_value(json_object_get(key, "id")));
    return v;
}

/* ---- authentication ---------------------------------------------------------------------------
 */

static unsigned roles_direct(const json_t *user) {
    unsigned bits = TSR_ID__ROLE_USER;
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(user, "assignedRoles"), i, r) {
        const char *rid = json_string_value(json_object_get(r, "id"));
        const tsr_id__role_t *role = rid != NULL ? tsr_identity__role_find(rid) : NULL;
        if (role != NULL) {
            bits |= role->bit;
        }
    }
    return bits;
}

/* Whether p already lists gid. */
static bool principal_has_group(const tsr_id__principal_t *p, const char *gid) {
    for (size_t i = 0; i < p->n_groups; i++) {
        if (strcmp(p->groups[i], gid) == 0) {
            return true;
        }
    }
    return false;
}

/* Direct roles plus those of the user's active groups into p->roles, and those groups' ids into
 * p->groups (missing groups are skipped: a deleted group grants nothing; so is a disabled one).
 * At most TSR_ID__MAX_PRINCIPAL_GROUPS references are read: the rest grant nothing. */
static void standing_of(tsr_identity_t *id, const char *tenant, const json_t *user,
                        tsr_id__principal_t *p) {
    unsigned bits = roles_direct(user);
    int idp_admin = -1; /* the tenant's idpGroupsGrantAdmin, read when first needed */
    size_t i;
    json_t *g;
    const json_t *refs = json_object_get(user, "assignedGroups");
    p->n_groups = 0;
    if (json_array_size(refs) > TSR_ID__MAX_PRINCIPAL_GROUPS) {
        tsr_log_warn(NULL,
                     "identity: user %s is in %zu groups; only the first %d count (roles and "
                     "space access)",
                     json_string_value(json_object_get(user, "id")), json_array_size(refs),
                     TSR_ID__MAX_PRINCIPAL_GROUPS);
    }
    json_array_foreach(refs, i, g) {
        json_t *grp = NULL;
        const char *gid = json_string_value(json_object_get(g, "id"));
        if (i >= TSR_ID__MAX_PRINCIPAL_GROUPS) {
            break;
        }
        if (gid == NULL || !is_hex24(gid) || principal_has_group(p, gid) ||
            id->docs.get(id->docs.ud, TSR_ID__C_GROUPS, tenant, gid, &grp, NULL) != TSR_OK) {
            continue;
        }
        const char *st = json_string_value(json_object_get(grp, "status"));
        const char *pt = json_string_value(json_object_get(grp, "providerType"));
        if (st != NULL && strcmp(st, "active") == 0) {
            unsigned gb = roles_direct(grp);
            /* A group the identity provider maps makes admins only when the tenant says so. */
            if ((gb & TSR_ID__ROLE_TENANT_ADMIN) != 0 && pt != NULL && strcmp(pt, "idp") == 0) {
                if (idp_admin < 0) {
                    json_t *t = NULL;
                    idp_admin = id->docs.get(id->docs.ud, TSR_ID__C_TENANTS, tenant, tenant, &t,
                                             NULL) == TSR_OK &&
                                json_is_true(json_object_get(t, "idpGroupsGrantAdmin"));
                    json_decref(t);
                }
                if (!idp_admin) {
                    gb &= ~(unsigned)TSR_ID__ROLE_TENANT_ADMIN;
                }
            }
            bits |= gb;
            memcpy(p->groups[p->n_groups++], gid, 25);
        }
        json_decref(grp);
    }
    p->roles = bits;
}

/* Split "<prefix><24 hex id>_<secret>" (prefix is 5 bytes) into its parts; false when the
 * shape is wrong. */
static bool token_split(const char *tok, const char *prefix, char tid[25], const char **secret) {
    size_t n = strlen(tok);
    if (n < KEY_PREFIX_LEN + 24 + 2 || n > TSR_ID__MAX_TOKEN ||
        strncmp(tok, prefix, KEY_PREFIX_LEN) != 0 || tok[KEY_PREFIX_LEN + 24] != '_') {
        return false;
    }
    memcpy(tid, tok + KEY_PREFIX_LEN, 24);
    tid[24] = '\0';
    *secret = tok + KEY_PREFIX_LEN + 25;
    return is_hex24(tid);
}

static bool is_retryable(tsr_err_t rc) {
    return rc == TSR_EUNAVAILABLE || rc == TSR_ETIMEOUT || rc == TSR_ECORRUPT;
}

/* The active user uid of tenant into *p (roles included); TSR_EUNAUTHENTICATED when the user
 * is gone or not active. */
static tsr_err_t principal_of(tsr_identity_t *id, const char *tenant, const char *uid,
                              tsr_id__principal_t *p, tsr_error_t *err) {
    json_t *user = NULL;
    tsr_err_t rc = id->docs.get(id->docs.ud, TSR_ID__C_USERS, tenant, uid, &user, err);
    if (rc == TSR_OK) {
        const char *ust = json_string_value(json_object_get(user, "status"));
        if (ust == NULL || strcmp(ust, "active") != 0) {
            rc = TSR_EUNAUTHENTICATED;
        } else {
            memcpy(p->tenant_id, tenant, 25);
            memcpy(p->user_id, uid, 25);
            standing_of(id, tenant, user, p);
        }
    }
    json_decref(user);
    return rc == TSR_ENOTFOUND ? TSR_EUNAUTHENTICATED : rc;
}

static tsr_err_t auth_api_key(tsr_identity_t *id, const char *tenant, const char *tok,
                              tsr_id__principal_t *p, tsr_error_t *err) {
    char key_id[25], hash[65];
    const char *secret = NULL;
    json_t *key = NULL, *user = NULL;
    int64_t exp_ms = 0;
    tsr_err_t rc = TSR_EUNAUTHENTICATED;
    if (!token_split(tok, KEY_PREFIX, key_id, &secret)) {
        goto out;
    }
    rc = id->docs.get(id->docs.ud, TSR_ID__C_KEYS, tenant, key_id, &key, err);
    if (rc != TSR_OK) {
        goto out;
    }
    rc = TSR_EUNAUTHENTICATED;
    /* Hash before any other check so that a miss and a mismatch cost the same. */
    tsr_identity__sha256_hex(secret, strlen(secret), hash);
    const char *want = json_string_value(json_object_get(key, "hash"));
    const char *st = json_string_value(json_object_get(key, "status"));
    const char *exp = json_string_value(json_object_get(key, "expiry"));
    const char *sub = json_string_value(json_object_get(key, "sub"));
    if (want == NULL || !tsr_identity__ct_eq(want, hash) || st == NULL ||
        strcmp(st, "active") != 0 || exp == NULL ||
        tsr_time_parse_rfc3339(exp, &exp_ms) != TSR_OK || exp_ms <= tsr_wall_ms() || sub == NULL ||
        !is_hex24(sub)) {
        goto out;
    }
    rc = principal_of(id, tenant, sub, p, err);
    if (rc != TSR_OK) {
        goto out;
    }
    memcpy(p->key_id, key_id, 25);
    p->auth_type = "apikey";
out:
    json_decref(key);
    json_decref(user);
    if (is_retryable(rc)) {
        /* The store cannot answer: fail closed, but as retryable, not as a bad credential. */
        return rc;
    }
    if (rc != TSR_OK) {
        /* Audit hook: com.qlik.v1.api-key.validation.failed once events exist. */
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "the credential is not recognised");
    }
    return rc;
}

/* The value of cookie name in a Cookie header, copied into out; false if absent/too long. */
static bool cookie_value(const char *header, const char *name, char *out, size_t out_size) {
    tsr_str_t s = tsr_str(header), part;
    size_t nl = strlen(name);
    while (tsr_str_next_tok(&s, ';', &part)) {
        part = tsr_str_trim(part);
        if (part.n > nl && strncmp(part.p, name, nl) == 0 && part.p[nl] == '=') {
            size_t vn = part.n - nl - 1;
            if (vn == 0 || vn >= out_size) {
                return false;
            }
            memcpy(out, part.p + nl + 1, vn);
            out[vn] = '\0';
            return true;
        }
    }
    return false;
}

static bool is_safe_method(const char *m) {
    return m != NULL &&
           (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "OPTIONS") == 0);
}

/* The session named by a cookie value, verified (hash, expiry). *sess returned-owned. */
static tsr_err_t session_get(tsr_identity_t *id, const char *tenant, const char *cookie,
                             json_t **sess, tsr_error_t *err) {
    char sid[25], hash[65];
    const char *secret = NULL;
    int64_t exp_ms = 0;
    *sess = NULL;
    if (cookie == NULL || !token_split(cookie, "tsrs_", sid, &secret)) {
        return TSR_EUNAUTHENTICATED;
    }
    tsr_err_t rc = id->docs.get(id->docs.ud, TSR_ID__C_SESSIONS, tenant, sid, sess, err);
    if (rc != TSR_OK) {
        return rc == TSR_ENOTFOUND ? TSR_EUNAUTHENTICATED : rc;
    }
    tsr_identity__sha256_hex(secret, strlen(secret), hash);
    const char *want = json_string_value(json_object_get(*sess, "hash"));
    const char *exp = json_string_value(json_object_get(*sess, "expiresAt"));
    if (want == NULL || !tsr_identity__ct_eq(want, hash) || exp == NULL ||
        tsr_time_parse_rfc3339(exp, &exp_ms) != TSR_OK || exp_ms <= tsr_wall_ms()) {
        json_decref(*sess);
        *sess = NULL;
        return TSR_EUNAUTHENTICATED;
    }
    return TSR_OK;
}

static tsr_err_t auth_session(tsr_identity_t *id, const char *tenant, const tsr_id__cred_t *c,
                              const char *cookie, tsr_id__principal_t *p, tsr_error_t *err) {
    json_t *sess = NULL;
    tsr_err_t rc = session_get(id, tenant, cookie, &sess, err);
    if (rc == TSR_OK) {
        rc = principal_of(id, tenant, json_string_value(json_object_get(sess, "userId")), p, err);
    }
    if (rc == TSR_OK) {
        memcpy(p->key_id, json_string_value(json_object_get(sess, "id")), 25);
        p->auth_type = "session";
        const char *want = json_string_value(json_object_get(sess, "csrf"));
        if (!is_safe_method(c->method) &&
            (c->csrf == NULL || want == NULL || strlen(c->csrf) > 128 ||
             !tsr_identity__ct_eq(want, c->csrf))) {
            rc = tsr_error_set(err, TSR_EFORBIDDEN,
                               "CSRF-TOKEN-2: missing or invalid qlik-csrf-token header");
        }
    }
    json_decref(sess);
    if (rc == TSR_EUNAUTHENTICATED) {
        tsr_error_set(err, TSR_EUNAUTHENTICATED, "the session is not valid; sign in again");
    }
    return rc;
}

/* A platform JWT (service-to-service calls): valid, for this Host's tenant, user active. */
static tsr_err_t auth_jwt(tsr_identity_t *id, const char *tenant, const char *tok,
                          tsr_id__principal_t *p, tsr_error_t *err) {
    json_t *c = NULL;
    tsr_err_t rc = tsr_identity__jwt_verify(id, tok, &c, err);
    if (rc == TSR_OK) {
        const char *tid = json_string_value(json_object_get(c, "tid"));
        rc = strcmp(tid, tenant) == 0
                 ? principal_of(id, tenant, json_string_value(json_object_get(c, "sub")), p, err)
                 : TSR_EUNAUTHENTICATED;
    }
    json_decref(c);
    if (rc == TSR_OK) {
        p->auth_type = "jwt";
        return TSR_OK;
    }
    if (is_retryable(rc)) {
        return rc;
    }
    return tsr_error_set(err, TSR_EUNAUTHENTICATED, "the credential is not recognised");
}

tsr_err_t tsr_identity__authenticate(tsr_identity_t *id, const tsr_id__cred_t *c,
                                     tsr_id__principal_t *p, tsr_error_t *err) {
    char tenant[25], cookie[TSR_ID__MAX_TOKEN + 1];
    memset(p, 0, sizeof *p);
    bool has_cookie =
        c->cookie != NULL && cookie_value(c->cookie, TSR_ID__COOKIE, cookie, sizeof cookie);
    if (c->authz == NULL && !has_cookie) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "authentication required");
    }
    /* An unknown host has no credentials to check against: the same 401 as a bad key. */
    tsr_err_t rc = tsr_identity_tenant_by_host(id, c->host, tenant, err);
    if (is_retryable(rc)) {
        return rc;
    }
    if (rc != TSR_OK) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "the credential is not recognised");
    }
    /* A presented Authorization header decides alone: no silent fallback to the cookie. */
    if (c->authz == NULL) {
        return auth_session(id, tenant, c, cookie, p, err);
    }
    tsr_str_t a = tsr_str_trim(tsr_str(c->authz));
    /* Platform JWTs grow with the groups claim; API keys stay within TSR_ID__MAX_TOKEN
     * (token_split checks). */
    if (a.n > 7 + TSR_CRYPTO_JWT_MAX_DEFAULT || a.n < 8 ||
        !tsr_str_case_eq_cstr(tsr_str_n(a.p, 7), "bearer ")) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "the credential is not recognised");
    }
    char tok[TSR_CRYPTO_JWT_MAX_DEFAULT + 1];
    tsr_str_t t = tsr_str_trim(tsr_str_n(a.p + 7, a.n - 7));
    memcpy(tok, t.p, t.n);
    tok[t.n] = '\0';
    if (strncmp(tok, "eyJ", 3) == 0) {
        return auth_jwt(id, tenant, tok, p, err);
    }
    return auth_api_key(id, tenant, tok, p, err);
}

static bool tenant_mfa_required(tsr_identity_t *id, const char *tenant) {
    json_t *t = NULL;
    bool req = false;
    if (id->docs.get(id->docs.ud, TSR_ID__C_TENANTS, tenant, tenant, &t, NULL) == TSR_OK) {
        req = json_is_true(json_object_get(t, "mfaRequiredForAdmins"));
    }
    json_decref(t);
    return req;
}

tsr_err_t tsr_identity__totp_enroll(tsr_identity_t *id, const char *tenant, const char *uid,
                                    char **secret_b32, tsr_error_t *err) {
    unsigned char raw[20];
    char b32[40];
    json_t *cred = NULL;
    *secret_b32 = NULL;
    tsr_err_t rc = id->docs.get(id->docs.ud, TSR_ID__C_SECRETS, tenant, uid, &cred, err);
    if (rc != TSR_OK && rc != TSR_ENOTFOUND) {
        return rc;
    }
    bool exists = rc == TSR_OK;
    if (!exists) {
        cred = json_pack("{ss}", "id", uid);
    }
    if (json_object_get(cred, "totpSecret") != NULL) {
        json_decref(cred);
        return tsr_error_set(err, TSR_ECONFLICT, "TOTP is already enrolled");
    }
    char *sealed = NULL;
    if ((rc = tsr_crypto_random(raw, sizeof raw, err)) != TSR_OK) {
        json_decref(cred);
        return rc;
    }
    tsr_identity__base32(raw, sizeof raw, b32, sizeof b32);
    tsr_crypto_cleanse(raw, sizeof raw);
    /* Stored only sealed under the tenant's DEK, bound to this user. */
    if ((rc = tsr_identity__seal_str(id, tenant, TOTP_KIND, uid, b32, &sealed, err)) != TSR_OK) {
        json_decref(cred);
        return rc;
    }
    json_object_set_new(cred, "totpPending", json_string(sealed));
    free(sealed);
    rc = exists ? id->docs.replace(id->docs.ud, TSR_ID__C_SECRETS, tenant, uid, cred, NULL, err)
                : id->docs.create(id->docs.ud, TSR_ID__C_SECRETS, tenant, uid, cred, NULL, err);
    json_decref(cred);
    if (rc == TSR_OK) {
        *secret_b32 = tsr_xstrdup(b32);
    }
    tsr_crypto_cleanse(b32, sizeof b32);
    return rc;
}

tsr_err_t tsr_identity__totp_confirm(tsr_identity_t *id, const char *tenant, const char *uid,
                                     const char *code, tsr_error_t *err) {
    json_t *cred = NULL;
    char *plain = NULL;
    tsr_err_t rc = id->docs.get(id->docs.ud, TSR_ID__C_SECRETS, tenant, uid, &cred, err);
    const char *pending =
        rc == TSR_OK ? json_string_value(json_object_get(cred, "totpPending")) : NULL;
    if (rc == TSR_OK || rc == TSR_ENOTFOUND) {
        rc = TSR_OK;
        if (pending == NULL) {
            rc = tsr_error_set(err, TSR_EINVAL, "no TOTP enrollment is pending");
        }
    }
    if (rc != TSR_OK ||
        (rc = tsr_identity__open_str(id, tenant, TOTP_KIND, uid, pending, &plain, err)) != TSR_OK) {
        goto out;
    }
    int64_t step = tsr_identity__totp_check(plain, code, tsr_wall_ms(), 0);
    if (step < 0) {
        rc = tsr_error_set(err, TSR_EINVAL, "the code does not match");
        goto out;
    }
    json_object_set_new(cred, "totpSecret", json_string(pending));
    json_object_set_new(cred, "totpLastStep", json_integer(step));
    json_object_del(cred, "totpPending");
    json_t *ev = json_pack("{ss}", "userId", uid);
    rc = id->docs.replace(id->docs.ud, TSR_ID__C_SECRETS, tenant, uid, cred,
                          &(tsr_id__audit_t){"com.qlik.v1.user.mfa.enrolled", uid, ev}, err);
    json_decref(ev);
out:
    if (plain != NULL) {
        tsr_crypto_cleanse(plain, strlen(plain));
        free(plain);
    }
    json_decref(cred);
    return rc;
}

tsr_err_t tsr_identity__tenant_patch(tsr_identity_t *id, const char *tenant, const char *actor,
                                     json_t *ops, tsr_error_t *err) {
    json_t *t = NULL, *op;
    size_t i;
    char ts[25];
    if (!json_is_array(ops) || json_array_size(ops) == 0 ||
        json_array_size(ops) > TSR_ID__MAX_PATCH_OPS) {
        return tsr_error_set(err, TSR_EINVAL, "the body must be a JSON Patch array of 1..%d ops",
                             TSR_ID__MAX_PATCH_OPS);
    }
    tsr_err_t rc = id->docs.get(id->docs.ud, TSR_ID__C_TENANTS, tenant, tenant, &t, err);
    if (rc != TSR_OK) {
        return rc;
    }
    json_t *work = json_deep_copy(t);
    json_array_foreach(ops, i, op) {
        const char *o = json_string_value(json_object_get(op, "op"));
        const char *path = json_string_value(json_object_get(op, "path"));
        json_t *v = json_object_get(op, "value");
        if (!json_is_object(op) || json_object_size(op) != 3 || o == NULL ||
            strcmp(o, "replace") != 0 || path == NULL) {
            rc = tsr_error_set(err, TSR_EINVAL, "patch[%zu]: expected {op: replace, path, value}",
                               i);
        } else if (strcmp(path, "/name") == 0 && json_is_string(v) && json_string_length(v) > 0 &&
                   json_string_length(v) <= TSR_ID__MAX_NAME &&
                   strlen(json_string_value(v)) == json_string_length(v)) {
            json_object_set(work, "name", v);
        } else if (strcmp(path, "/mfaRequiredForAdmins") == 0 && json_is_boolean(v)) {
            json_object_set(work, "mfaRequiredForAdmins", v);
        } else if (strcmp(path, "/idpGroupsGrantAdmin") == 0 && json_is_boolean(v)) {
            json_object_set(work, "idpGroupsGrantAdmin", v);
        } else {
            rc = tsr_error_set(err, TSR_EINVAL,
                               "patch[%zu]: only /name (string), /mfaRequiredForAdmins and "
                               "/idpGroupsGrantAdmin (booleans) are writable",
                               i);
        }
        if (rc != TSR_OK) {
            goto out;
        }
    }
    now_rfc3339(ts);
    json_object_set_new(work, "lastUpdated", json_string(ts));
    rc = id->docs.replace(id->docs.ud, TSR_ID__C_TENANTS, tenant, tenant, work,
                          &(tsr_id__audit_t){"com.qlik.v1.tenant.updated", actor, work}, err);
out:
    json_decref(t);
    json_decref(work);
    return rc;
}

/* ---- local accounts: login, sessions --------------------------------------------------------- */

/* A fixed argon2id hash to verify against when the email is unknown, so that an unknown
 * email costs the same time as a wrong password. Made once (pthread_once), never freed. */
static char *dummy_hash;
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void dummy_init(void) {
    if (tsr_identity__password_hash("tessera-dummy-password", &dummy_hash, NULL) != TSR_OK) {
        dummy_hash = NULL;
    }
}

static const char *dummy_phc(void) {
    pthread_once(&dummy_once, dummy_init);
    return dummy_hash != NULL ? dummy_hash : "";
}

/* Drop uid's expired sessions, and the oldest ones beyond TSR_ID__MAX_SESSIONS - 1, so that
 * logins cannot grow the store without bound. Best effort. */
static void sessions_prune(tsr_identity_t *id, const char *tenant, const char *uid) {
    json_t *rows = NULL, *r;
    size_t i, live = 0;
    int64_t now = tsr_wall_ms();
    if (id->docs.list(id->docs.ud, TSR_ID__C_SESSIONS, tenant, "userId", uid, NULL, 10000, &rows,
                      NULL) != TSR_OK) {
        return;
    }
    size_t n = json_array_size(rows);
    json_array_foreach(rows, i, r) {
        int64_t exp = 0;
        const char *e = json_string_value(json_object_get(r, "expiresAt"));
        bool expired = e == NULL || tsr_time_parse_rfc3339(e, &exp) != TSR_OK || exp <= now;
        /* Ids are random, so "oldest" is approximated by dropping any beyond the cap. */
        if (expired || n - i + live > TSR_ID__MAX_SESSIONS - 1) {
            id->docs.del(id->docs.ud, TSR_ID__C_SESSIONS, tenant,
                         json_string_value(json_object_get(r, "id")), NULL, NULL);
        } else {
            live++;
        }
    }
    json_decref(rows);
}

static tsr_err_t session_create(tsr_identity_t *id, const char *tenant, const char *uid,
                                const tsr_id__audit_t *ev, char **cookie, char **csrf,
                                tsr_error_t *err) {
    char sid[25], secret[64], hash[65], tok[64], now_s[25], exp_s[25];
    sessions_prune(id, tenant, uid);
    tsr_id_new(sid);
    tsr_identity__random_b64url(32, secret, sizeof secret);
    tsr_identity__random_b64url(32, tok, sizeof tok);
    tsr_identity__sha256_hex(secret, strlen(secret), hash);
    int64_t now = tsr_wall_ms();
    tsr_time_format_rfc3339(now, now_s);
    tsr_time_format_rfc3339(now + TSR_ID__SESSION_TTL_MS, exp_s);
    json_t *doc = json_pack("{ss ss ss ss ss ss}", "id", sid, "userId", uid, "hash", hash, "csrf",
                            tok, "createdAt", now_s, "expiresAt", exp_s);
    tsr_err_t rc = id->docs.create(id->docs.ud, TSR_ID__C_SESSIONS, tenant, sid, doc, ev, err);
    json_decref(doc);
    if (rc == TSR_OK) {
        tsr_buf_t b;
        tsr_buf_init(&b, 256);
        tsr_buf_appendf(&b, "tsrs_%s_%s", sid, secret);
        *cookie = tsr_buf_take(&b, NULL);
        *csrf = tsr_xstrdup(tok);
    }
    return rc;
}

tsr_err_t tsr_identity__login(tsr_identity_t *id, const char *tenant, const char *email,
                              const char *password, const char *totp, char **cookie, char **csrf,
                              tsr_error_t *err) {
    char email_norm[TSR_ID__MAX_EMAIL + 1];
    json_t *claim = NULL, *cred = NULL;
    const char *uid = NULL;
    tsr_id__principal_t p;
    tsr_err_t rc;
    *cookie = NULL;
    *csrf = NULL;
    if (email == NULL || password == NULL || email_normalize(email, email_norm, NULL) != TSR_OK) {
        return tsr_error_set(err, TSR_EINVAL, "email and password are required");
    }
    rc = id->docs.get(id->docs.ud, TSR_ID__C_EMAILS, tenant, email_norm, &claim, err);
    if (rc == TSR_OK) {
        uid = json_string_value(json_object_get(claim, "userId"));
        rc = uid != NULL ? id->docs.get(id->docs.ud, TSR_ID__C_SECRETS, tenant, uid, &cred, err)
                         : TSR_ENOTFOUND;
    }
    if (rc != TSR_OK) {
        if (rc == TSR_ENOTFOUND) {
            (void)tsr_identity__password_verify(dummy_phc(), password);
            rc = TSR_EUNAUTHENTICATED;
        }
        goto out;
    }
    int64_t now = tsr_wall_ms();
    json_int_t failed = json_integer_value(json_object_get(cred, "failedLogins"));
    json_int_t locked_until = json_integer_value(json_object_get(cred, "lockedUntilMs"));
    const char *phc = json_string_value(json_object_get(cred, "passwordHash"));
    /* Verify even while locked so that a locked account is not distinguishable by time. */
    bool ok = phc != NULL && tsr_identity__password_verify(phc, password);
    if (locked_until > now) {
        rc = TSR_EUNAUTHENTICATED;
        goto out;
    }
    if (!ok) {
        failed++;
        if (failed >= TSR_ID__LOCK_AFTER) {
            int shift = (int)(failed - TSR_ID__LOCK_AFTER);
            int64_t lock = shift >= 7 ? TSR_ID__LOCK_MAX_MS : TSR_ID__LOCK_BASE_MS << shift;
            json_object_set_new(
                cred, "lockedUntilMs",
                json_integer(now + (lock > TSR_ID__LOCK_MAX_MS ? TSR_ID__LOCK_MAX_MS : lock)));
        }
        json_object_set_new(cred, "failedLogins", json_integer(failed));
        json_t *fev = json_pack("{ss ss}", "userId", uid, "reason", "password");
        rc = id->docs.replace(id->docs.ud, TSR_ID__C_SECRETS, tenant, uid, cred,
                              &(tsr_id__audit_t){"com.qlik.v1.user.login.failed", uid, fev}, err);
        json_decref(fev);
        if (rc == TSR_OK) {
            rc = TSR_EUNAUTHENTICATED;
        }
        goto out;
    }
    if ((rc = principal_of(id, tenant, uid, &p, err)) != TSR_OK) {
        goto out;
    }
    const char *totp_sealed = json_string_value(json_object_get(cred, "totpSecret"));
    if (totp_sealed != NULL) {
        char *totp_secret = NULL;
        if ((rc = tsr_identity__open_str(id, tenant, TOTP_KIND, uid, totp_sealed, &totp_secret,
                                         err)) != TSR_OK) {
            goto out;
        }
        int64_t step = tsr_identity__totp_check(
            totp_secret, totp, now, json_integer_value(json_object_get(cred, "totpLastStep")));
        tsr_crypto_cleanse(totp_secret, strlen(totp_secret));
        free(totp_secret);
        if (step < 0) {
            /* A wrong second factor counts like a wrong password. */
            json_object_set_new(cred, "failedLogins", json_integer(failed + 1));
            json_t *fev = json_pack("{ss ss}", "userId", uid, "reason", "totp");
            id->docs.replace(id->docs.ud, TSR_ID__C_SECRETS, tenant, uid, cred,
                             &(tsr_id__audit_t){"com.qlik.v1.user.login.failed", uid, fev}, NULL);
            json_decref(fev);
            rc = tsr_error_set(err, TSR_EUNAUTHENTICATED,
                               totp == NULL ? "a TOTP code (totp) is required"
                                            : "invalid email, password or TOTP code");
            goto out_keep;
        }
        json_object_set_new(cred, "totpLastStep", json_integer(step));
        failed = 1; /* force the write below so the used step is remembered */
    } else if ((p.roles & TSR_ID__ROLE_TENANT_ADMIN) != 0 && tenant_mfa_required(id, tenant)) {
        rc = tsr_error_set(err, TSR_EFORBIDDEN,
                           "this tenant requires TOTP for TenantAdmin: enroll with POST "
                           "/api/v1/identity/mfa/totp (using an API key) first");
        goto out_keep;
    }
    if (failed != 0 || locked_until != 0) {
        json_object_set_new(cred, "failedLogins", json_integer(0));
        json_object_set_new(cred, "lockedUntilMs", json_integer(0));
        if ((rc = id->docs.replace(id->docs.ud, TSR_ID__C_SECRETS, tenant, uid, cred, NULL, err)) !=
            TSR_OK) {
            goto out;
        }
    }
    json_t *ev = json_pack("{ss}", "userId", uid);
    rc = session_create(id, tenant, uid,
                        &(tsr_id__audit_t){"com.qlik.v1.user.session.created", uid, ev}, cookie,
                        csrf, err);
    json_decref(ev);
out:
    if (rc == TSR_EUNAUTHENTICATED) {
        /* A failure of a known account was recorded (com.qlik.v1.user.login.failed) with its
         * failed-attempt count; an unknown email changes nothing and records nothing. */
        tsr_error_set(err, TSR_EUNAUTHENTICATED, "invalid email or password");
    }
out_keep:
    json_decref(claim);
    json_decref(cred);
    return rc;
}

tsr_err_t tsr_identity__password_change(tsr_identity_t *id, const char *tenant, const char *uid,
                                        const char *keep_session, const char *current,
                                        const char *next, tsr_error_t *err) {
    json_t *cred = NULL, *sessions = NULL, *sess;
    char *phc = NULL;
    size_t i, nl = next != NULL ? strlen(next) : 0;
    if (nl < TSR_ID__MIN_PASSWORD || nl > 1024) {
        return tsr_error_set(err, TSR_EINVAL, "the new password must be %d..1024 bytes",
                             TSR_ID__MIN_PASSWORD);
    }
    tsr_err_t rc = id->docs.get(id->docs.ud, TSR_ID__C_SECRETS, tenant, uid, &cred, err);
    const char *have =
        rc == TSR_OK ? json_string_value(json_object_get(cred, "passwordHash")) : NULL;
    if (rc == TSR_OK || rc == TSR_ENOTFOUND) {
        /* Service users and users without a password have nothing to change. */
        rc = have != NULL && current != NULL && tsr_identity__password_verify(have, current)
                 ? TSR_OK
                 : tsr_error_set(err, TSR_EFORBIDDEN, "the current password is wrong");
    }
    if (rc == TSR_OK) {
        rc = tsr_identity__password_hash(next, &phc, err);
    }
    if (rc == TSR_OK) {
        json_t *ev = json_pack("{ss}", "userId", uid);
        json_object_set_new(cred, "passwordHash", json_string(phc));
        rc =
            id->docs.replace(id->docs.ud, TSR_ID__C_SECRETS, tenant, uid, cred,
                             &(tsr_id__audit_t){"com.qlik.v1.user.password.changed", uid, ev}, err);
        json_decref(ev);
    }
    /* Every other browser session of the user ends: a stolen cookie dies with the password. */
    if (rc == TSR_OK && id->docs.list(id->docs.ud, TSR_ID__C_SESSIONS, tenant, "userId", uid, NULL,
                                      10000, &sessions, NULL) == TSR_OK) {
        json_array_foreach(sessions, i, sess) {
            const char *sid = json_string_value(json_object_get(sess, "id"));
            if (sid != NULL && (keep_session == NULL || strcmp(sid, keep_session) != 0)) {
                id->docs.del(id->docs.ud, TSR_ID__C_SESSIONS, tenant, sid, NULL, NULL);
            }
        }
    }
    free(phc);
    json_decref(cred);
    json_decref(sessions);
    return rc;
}

void tsr_identity__logout(tsr_identity_t *id, const char *tenant, const char *cookie_header) {
    char cookie[TSR_ID__MAX_TOKEN + 1];
    json_t *sess = NULL;
    if (cookie_header != NULL &&
        cookie_value(cookie_header, TSR_ID__COOKIE, cookie, sizeof cookie) &&
        session_get(id, tenant, cookie, &sess, NULL) == TSR_OK) {
        id->docs.del(id->docs.ud, TSR_ID__C_SESSIONS, tenant,
                     json_string_value(json_object_get(sess, "id")), NULL, NULL);
    }
    json_decref(sess);
}

tsr_err_t tsr_identity__session_csrf(tsr_identity_t *id, const char *tenant,
                                     const char *cookie_header, char **csrf, tsr_error_t *err) {
    char cookie[TSR_ID__MAX_TOKEN + 1];
    json_t *sess = NULL;
    *csrf = NULL;
    tsr_err_t rc = TSR_EUNAUTHENTICATED;
    if (cookie_header != NULL &&
        cookie_value(cookie_header, TSR_ID__COOKIE, cookie, sizeof cookie)) {
        rc = session_get(id, tenant, cookie, &sess, err);
    }
    if (rc == TSR_OK) {
        *csrf = tsr_xstrdup(json_string_value(json_object_get(sess, "csrf")));
    } else if (rc == TSR_EUNAUTHENTICATED) {
        tsr_error_set(err, rc, "the session is not valid; sign in again");
    }
    json_decref(sess);
    return rc;
}

/* ---- users ---------------------------------------------------------------------------------- */

tsr_err_t tsr_identity__check_str(json_t *v, const char *field, size_t max, bool required,
                                  const char **out, tsr_error_t *err) {
    *out = NULL;
    if (v == NULL) {
        return required ? tsr_error_set(err, TSR_EINVAL, "%s is required", field) : TSR_OK;
    }
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max) {
        return tsr_error_set(err, TSR_EINVAL, "%s must be a string of 1..%zu bytes", field, max);
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        return tsr_error_set(err, TSR_EINVAL, "%s must not contain NUL", field);
    }
    *out = json_string_value(v);
    return TSR_OK;
}

static tsr_err_t email_normalize(const char *email, char out[TSR_ID__MAX_EMAIL + 1],
                                 tsr_error_t *err) {
    size_t n = strlen(email);
    const char *at = strchr(email, '@');
    if (n > TSR_ID__MAX_EMAIL || at == NULL || at == email || strchr(at + 1, '@') != NULL ||
        strchr(at + 1, '.') == NULL || at[1] == '\0' || email[n - 1] == '.') {
        return tsr_error_set(err, TSR_EINVAL, "email is not a valid address");
    }
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = (unsigned char)email[i];
        if (c != '\0' && (c <= ' ' || c >= 0x7f)) {
            return tsr_error_set(err, TSR_EINVAL, "email is not a valid address");
        }
        out[i] = (char)tolower(c);
    }
    return TSR_OK;
}

/* Validate [{id}|{name}] into a fresh assignedRoles array (returned-owned). */
tsr_err_t tsr_identity__roles_parse(json_t *in, json_t **out, tsr_error_t *err) {
    size_t i;
    json_t *r;
    *out = NULL;
    if (!json_is_array(in) || json_array_size(in) > TSR_ID__MAX_ROLES) {
        return tsr_error_set(err, TSR_EINVAL, "assignedRoles must be an array of at most %d",
                             TSR_ID__MAX_ROLES);
    }
    json_t *res = json_array();
    unsigned seen = 0;
    json_array_foreach(in, i, r) {
        const char *key = json_string_value(json_object_get(r, "id"));
        if (key == NULL) {
            key = json_string_value(json_object_get(r, "name"));
        }
        const tsr_id__role_t *role = key != NULL ? tsr_identity__role_find(key) : NULL;
        if (!json_is_object(r) || role == NULL) {
            json_decref(res);
            return tsr_error_set(err, TSR_EINVAL, "assignedRoles[%zu] is not a known role", i);
        }
        if ((seen & role->bit) == 0 && role->bit != TSR_ID__ROLE_USER) {
            seen |= role->bit;
            json_array_append_new(res,
                                  json_pack("{ss ss ss ss}", "id", role->id, "name", role->name,
                                            "type", "default", "level", role->level));
        }
    }
    *out = res;
    return TSR_OK;
}

static tsr_err_t user_insert(tsr_identity_t *id, const char *tenant, json_t *user,
                             const char *email_norm, tsr_error_t *err) {
    const char *uid = json_string_value(json_object_get(user, "id"));
    json_t *claim = json_pack("{ss ss}", "id", email_norm, "userId", uid);
    tsr_err_t rc =
        id->docs.create(id->docs.ud, TSR_ID__C_EMAILS, tenant, email_norm, claim, NULL, err);
    json_decref(claim);
    if (rc == TSR_ECONFLICT) {
        return tsr_error_set(err, TSR_ECONFLICT, "a user with this email already exists");
    }
    if (rc != TSR_OK) {
        return rc;
    }
    rc = id->docs.create(id->docs.ud, TSR_ID__C_USERS, tenant, uid, user, NULL, err);
    if (rc != TSR_OK) {
        id->docs.del(id->docs.ud, TSR_ID__C_EMAILS, tenant, email_norm, NULL, NULL);
    }
    return rc;
}

static json_t *user_new(const char *tenant, const char *uid, const char *subject, const char *name,
                        const char *email, const char *status, json_t *roles, const char *actor) {
    char ts[25];
    now_rfc3339(ts);
    return json_pack("{ss ss ss ss ss ss so ss ss ss* so so}", "id", uid, "tenantId", tenant,
                     "subject", subject, "name", name, "email", email, "status", status,
                     "assignedRoles", roles, "createdAt", ts, "lastUpdatedAt", ts, "createdBy",
                     actor, "assignedGroups", json_array(), "assignedScopes", json_array());
}

/* A non-human user for programs: active at once, no email, no password, no invitation; it
 * authenticates only with API keys a TenantAdmin creates for it. */
static tsr_err_t service_user_create(tsr_identity_t *id, const char *tenant, const char *actor,
                                     json_t *body, json_t **out, tsr_error_t *err) {
    const char *name, *subject;
    char uid[25], sub[300];
    json_t *roles = NULL, *v;
    tsr_err_t rc;
    if (json_object_get(body, "email") != NULL || json_object_get(body, "status") != NULL) {
        return tsr_error_set(err, TSR_EINVAL, "a service user has no email and no status to set");
    }
    if ((rc = tsr_identity__check_str(json_object_get(body, "name"), "name", TSR_ID__MAX_NAME, true,
                                      &name, err)) != TSR_OK ||
        (rc = tsr_identity__check_str(json_object_get(body, "subject"), "subject",
                                      TSR_ID__MAX_SUBJECT, false, &subject, err)) != TSR_OK) {
        return rc;
    }
    v = json_object_get(body, "assignedRoles");
    if (v != NULL) {
        if ((rc = tsr_identity__roles_parse(v, &roles, err)) != TSR_OK) {
            return rc;
        }
    } else {
        roles = json_array();
    }
    const char *tid = json_string_value(json_object_get(body, "tenantId"));
    if (json_object_get(body, "tenantId") != NULL && (tid == NULL || strcmp(tid, tenant) != 0)) {
        json_decref(roles);
        return tsr_error_set(err, TSR_EINVAL, "tenantId must be the caller's tenant");
    }
    tsr_id_new(uid);
    snprintf(sub, sizeof sub, "service|%s", subject != NULL ? subject : uid);
    char ts[25];
    now_rfc3339(ts);
    json_t *user =
        json_pack("{ss ss ss ss ss sb so ss ss ss so so}", "id", uid, "tenantId", tenant, "subject",
                  sub, "name", name, "status", "active", "serviceUser", 1, "assignedRoles", roles,
                  "createdAt", ts, "lastUpdatedAt", ts, "createdBy", actor, "assignedGroups",
                  json_array(), "assignedScopes", json_array());
    rc = id->docs.create(id->docs.ud, TSR_ID__C_USERS, tenant, uid, user,
                         &(tsr_id__audit_t){"com.qlik.v1.user.created", actor, user}, err);
    if (rc == TSR_OK) {
        *out = user;
        return TSR_OK;
    }
    json_decref(user);
    return rc;
}

tsr_err_t tsr_identity__user_create(tsr_identity_t *id, const char *tenant, const char *actor,
                                    json_t *body, json_t **out, char **invite, tsr_error_t *err) {
    static const char *const allowed[] = {"subject",       "name",     "email",       "status",
                                          "assignedRoles", "tenantId", "serviceUser", NULL};
    const char *subject, *name, *email, *status, *tid, *key;
    char email_norm[TSR_ID__MAX_EMAIL + 1], uid[25];
    json_t *v, *roles = NULL, *user = NULL;
    tsr_err_t rc;
    *out = NULL;
    *invite = NULL;
    if (!json_is_object(body)) {
        return tsr_error_set(err, TSR_EINVAL, "the body must be a JSON object");
    }
    json_object_foreach(body, key, v) {
        size_t i = 0;
        while (allowed[i] != NULL && strcmp(allowed[i], key) != 0) {
            i++;
        }
        if (allowed[i] == NULL) {
            return tsr_error_set(err, TSR_EINVAL, "unknown field %.64s", key);
        }
    }
    json_t *svc = json_object_get(body, "serviceUser");
    if (svc != NULL && !json_is_boolean(svc)) {
        return tsr_error_set(err, TSR_EINVAL, "serviceUser must be a boolean");
    }
    if (json_is_true(svc)) {
        return service_user_create(id, tenant, actor, body, out, err);
    }
    if ((rc = tsr_identity__check_str(json_object_get(body, "email"), "email", TSR_ID__MAX_EMAIL,
                                      true, &email, err)) != TSR_OK ||
        (rc = tsr_identity__check_str(json_object_get(body, "name"), "name", TSR_ID__MAX_NAME,
                                      false, &name, err)) != TSR_OK ||
        (rc = tsr_identity__check_str(json_object_get(body, "subject"), "subject",
                                      TSR_ID__MAX_SUBJECT, false, &subject, err)) != TSR_OK ||
        (rc = tsr_identity__check_str(json_object_get(body, "status"), "status", 16, false, &status,
                                      err)) != TSR_OK ||
        (rc = tsr_identity__check_str(json_object_get(body, "tenantId"), "tenantId", 24, false,
                                      &tid, err)) != TSR_OK) {
        return rc;
    }
    if (tid != NULL && strcmp(tid, tenant) != 0) {
        return tsr_error_set(err, TSR_EINVAL, "tenantId must be the caller's tenant");
    }
    if (status != NULL && strcmp(status, "invited") != 0) {
        return tsr_error_set(err, TSR_EINVAL, "status must be \"invited\"");
    }
    if ((rc = email_normalize(email, email_norm, err)) != TSR_OK) {
        return rc;
    }
    v = json_object_get(body, "assignedRoles");
    if (v != NULL) {
        rc = tsr_identity__roles_parse(v, &roles, err);
    } else {
        roles = json_array();
    }
    if (rc != TSR_OK) {
        return rc;
    }
    tsr_id_new(uid);
    char local_sub[40];
    snprintf(local_sub, sizeof local_sub, "local|%s", uid);
    user = user_new(tenant, uid, subject != NULL ? subject : local_sub, name != NULL ? name : email,
                    email_norm, "invited", roles, actor);
    /* The one-time invitation: only its hash is stored, next to the password it will set. */
    char secret[64], hash[65], exp_s[25];
    int64_t exp_ms = tsr_wall_ms() + TSR_ID__INVITE_TTL_MS;
    tsr_identity__random_b64url(32, secret, sizeof secret);
    tsr_identity__sha256_hex(secret, strlen(secret), hash);
    tsr_time_format_rfc3339(exp_ms, exp_s);
    json_object_set_new(user, "inviteExpiry", json_string(exp_s));
    rc = user_insert(id, tenant, user, email_norm, err);
    if (rc == TSR_OK) {
        json_t *cred = json_pack("{ss ss sI}", "id", uid, "inviteHash", hash, "inviteExpiresMs",
                                 (json_int_t)exp_ms);
        /* The invitation is the last write: the event commits with it. */
        rc = id->docs.create(id->docs.ud, TSR_ID__C_SECRETS, tenant, uid, cred,
                             &(tsr_id__audit_t){"com.qlik.v1.user.created", actor, user}, err);
        json_decref(cred);
        if (rc != TSR_OK) {
            id->docs.del(id->docs.ud, TSR_ID__C_USERS, tenant, uid, NULL, NULL);
            id->docs.del(id->docs.ud, TSR_ID__C_EMAILS, tenant, email_norm, NULL, NULL);
        }
    }
    if (rc == TSR_OK) {
        /* Hook: the mailer sends the link to the address; until then the admin gets it. */
        tsr_buf_t b;
        tsr_buf_init(&b, 256);
        tsr_buf_appendf(&b, "tsri_%s_%s", uid, secret);
        *invite = tsr_buf_take(&b, NULL);
        *out = user;
        user = NULL;
    }
    json_decref(user);
    return rc;
}

tsr_err_t tsr_identity__invite_accept(tsr_identity_t *id, const char *tenant, const char *token,
                                      const char *password, tsr_error_t *err) {
    char uid[25], hash[65], *phc = NULL;
    const char *secret = NULL;
    json_t *cred = NULL, *user = NULL;
    tsr_err_t rc;
    size_t pl = password != NULL ? strlen(password) : 0;
    if (pl < TSR_ID__MIN_PASSWORD || pl > 1024) {
        return tsr_error_set(err, TSR_EINVAL, "the password must be %d..1024 bytes",
                             TSR_ID__MIN_PASSWORD);
    }
    if (token == NULL || !token_split(token, "tsri_", uid, &secret)) {
        return tsr_error_set(err, TSR_ENOTFOUND, "the invitation is not valid or has expired");
    }
    rc = id->docs.get(id->docs.ud, TSR_ID__C_SECRETS, tenant, uid, &cred, err);
    if (rc == TSR_OK) {
        rc = id->docs.get(id->docs.ud, TSR_ID__C_USERS, tenant, uid, &user, err);
    }
    if (rc != TSR_OK) {
        goto out;
    }
    tsr_identity__sha256_hex(secret, strlen(secret), hash);
    const char *want = json_string_value(json_object_get(cred, "inviteHash"));
    const char *st = json_string_value(json_object_get(user, "status"));
    if (want == NULL || !tsr_identity__ct_eq(want, hash) || st == NULL ||
        strcmp(st, "invited") != 0 ||
        json_integer_value(json_object_get(cred, "inviteExpiresMs")) <= tsr_wall_ms()) {
        rc = TSR_ENOTFOUND;
        goto out;
    }
    if ((rc = tsr_identity__password_hash(password, &phc, err)) != TSR_OK) {
        goto out;
    }
    /* The password replaces the invitation in one write: the link cannot be used twice. */
    json_t *nc = json_pack("{ss ss}", "id", uid, "passwordHash", phc);
    rc = id->docs.replace(id->docs.ud, TSR_ID__C_SECRETS, tenant, uid, nc, NULL, err);
    json_decref(nc);
    if (rc != TSR_OK) {
        goto out;
    }
    char ts[25];
    now_rfc3339(ts);
    json_object_set_new(user, "status", json_string("active"));
    json_object_set_new(user, "lastUpdatedAt", json_string(ts));
    json_object_del(user, "inviteExpiry");
    rc = id->docs.replace(id->docs.ud, TSR_ID__C_USERS, tenant, uid, user,
                          &(tsr_id__audit_t){"com.qlik.v1.user.updated", uid, user}, err);
out:
    if (rc == TSR_ENOTFOUND) {
        tsr_error_set(err, TSR_ENOTFOUND, "the invitation is not valid or has expired");
    }
    free(phc);
    json_decref(cred);
    json_decref(user);
    return rc;
}

/* Apply one validated JSON Patch op to user (in place). */
static tsr_err_t patch_one(tsr_identity_t *id, const char *tenant, json_t *user, json_t *op,
                           size_t i, tsr_error_t *err) {
    const char *o = json_string_value(json_object_get(op, "op"));
    const char *path = json_string_value(json_object_get(op, "path"));
    json_t *value = json_object_get(op, "value");
    const char *s = NULL;
    tsr_err_t rc;
    if (!json_is_object(op) || json_object_size(op) > 3 || o == NULL || path == NULL ||
        (strcmp(o, "replace") != 0 && strcmp(o, "add") != 0)) {
        return tsr_error_set(err, TSR_EINVAL, "patch[%zu]: expected {op: replace|add, path, value}",
                             i);
    }
    if (strcmp(path, "/name") == 0) {
        if ((rc = tsr_identity__check_str(value, "value", TSR_ID__MAX_NAME, true, &s, err)) !=
            TSR_OK) {
            return rc;
        }
        json_object_set_new(user, "name", json_string(s));
    } else if (strcmp(path, "/status") == 0) {
        if ((rc = tsr_identity__check_str(value, "value", 16, true, &s, err)) != TSR_OK) {
            return rc;
        }
        if (strcmp(s, "active") != 0 && strcmp(s, "disabled") != 0) {
            return tsr_error_set(err, TSR_EINVAL, "patch[%zu]: status must be active|disabled", i);
        }
        json_object_set_new(user, "status", json_string(s));
    } else if (strcmp(path, "/assignedRoles") == 0) {
        json_t *roles = NULL;
        if ((rc = tsr_identity__roles_parse(value, &roles, err)) != TSR_OK) {
            return rc;
        }
        json_object_set_new(user, "assignedRoles", roles);
    } else if (strcmp(path, "/assignedGroups") == 0) {
        json_t *groups = NULL;
        if ((rc = tsr_identity__groups_resolve(id, tenant, value, &groups, err)) != TSR_OK) {
            return rc;
        }
        json_object_set_new(user, "assignedGroups", groups);
    } else if (strcmp(path, "/preferredLocale") == 0 || strcmp(path, "/preferredZoneinfo") == 0) {
        if ((rc = tsr_identity__check_str(value, "value", 64, true, &s, err)) != TSR_OK) {
            return rc;
        }
        json_object_set_new(user, path + 1, json_string(s));
    } else {
        return tsr_error_set(err, TSR_EINVAL, "patch[%zu]: path %.64s is not writable", i, path);
    }
    return TSR_OK;
}

tsr_err_t tsr_identity__user_patch(tsr_identity_t *id, const char *tenant, const char *actor,
                                   const char *user_id, json_t *ops, tsr_error_t *err) {
    json_t *user = NULL, *work = NULL, *op;
    size_t i;
    char ts[25];
    tsr_err_t rc;
    if (!json_is_array(ops) || json_array_size(ops) == 0 ||
        json_array_size(ops) > TSR_ID__MAX_PATCH_OPS) {
        return tsr_error_set(err, TSR_EINVAL, "the body must be a JSON Patch array of 1..%d ops",
                             TSR_ID__MAX_PATCH_OPS);
    }
    rc = id->docs.get(id->docs.ud, TSR_ID__C_USERS, tenant, user_id, &user, err);
    if (rc != TSR_OK) {
        goto out;
    }
    /* All ops apply to a copy first: a bad op anywhere leaves the user unchanged. */
    work = json_deep_copy(user);
    json_array_foreach(ops, i, op) {
        if ((rc = patch_one(id, tenant, work, op, i, err)) != TSR_OK) {
            goto out;
        }
    }
    if (strcmp(user_id, actor) == 0 &&
        ((roles_direct(work) & TSR_ID__ROLE_TENANT_ADMIN) !=
             (roles_direct(user) & TSR_ID__ROLE_TENANT_ADMIN) ||
         strcmp(json_string_value(json_object_get(work, "status")), "disabled") == 0)) {
        rc = tsr_error_set(err, TSR_EFORBIDDEN,
                           "an admin cannot remove their own admin role or disable themselves");
        goto out;
    }
    now_rfc3339(ts);
    json_object_set_new(work, "lastUpdatedAt", json_string(ts));
    rc = id->docs.replace(id->docs.ud, TSR_ID__C_USERS, tenant, user_id, work,
                          &(tsr_id__audit_t){"com.qlik.v1.user.updated", actor, work}, err);
out:
    json_decref(user);
    json_decref(work);
    return rc;
}

tsr_err_t tsr_identity__user_del(tsr_identity_t *id, const char *tenant, const char *actor,
                                 const char *user_id, tsr_error_t *err) {
    json_t *user = NULL, *keys = NULL, *k;
    size_t i;
    tsr_err_t rc = id->docs.get(id->docs.ud, TSR_ID__C_USERS, tenant, user_id, &user, err);
    if (rc != TSR_OK) {
        goto out;
    }
    if (strcmp(user_id, actor) == 0) {
        rc = tsr_error_set(err, TSR_EFORBIDDEN, "a user cannot delete themselves");
        goto out;
    }
    rc = id->docs.del(id->docs.ud, TSR_ID__C_USERS, tenant, user_id,
                      &(tsr_id__audit_t){"com.qlik.v1.user.deleted", actor, user}, err);
    if (rc != TSR_OK) {
        goto out;
    }
    /* The user is gone, so its keys no longer authenticate (the user lookup fails); removing
     * the rest is cleanup and may be retried. */
    const char *email = json_string_value(json_object_get(user, "email"));
    if (email != NULL) {
        id->docs.del(id->docs.ud, TSR_ID__C_EMAILS, tenant, email, NULL, NULL);
    }
    id->docs.del(id->docs.ud, TSR_ID__C_SECRETS, tenant, user_id, NULL, NULL);
    if (id->docs.list(id->docs.ud, TSR_ID__C_KEYS, tenant, "sub", user_id, NULL, 10000, &keys,
                      NULL) == TSR_OK) {
        json_array_foreach(keys, i, k) {
            id->docs.del(id->docs.ud, TSR_ID__C_KEYS, tenant,
                         json_string_value(json_object_get(k, "id")), NULL, NULL);
        }
    }
out:
    json_decref(user);
    json_decref(keys);
    return rc;
}

/* ---- API keys ------------------------------------------------------------------------------- */

tsr_err_t tsr_identity__duration_parse(const char *s, int64_t *ms, tsr_error_t *err) {
    int64_t total = 0;
    bool in_time = false, any = false;
    if (s == NULL || s[0] != 'P' || strlen(s) > 32) {
        return tsr_error_set(err, TSR_EINVAL, "expiry must be an ISO 8601 duration like P30D");
    }
    for (const char *p = s + 1; *p != '\0';) {
        if (*p == 'T' && !in_time) {
            in_time = true;
            p++;
            continue;
        }
        int64_t n = 0;
        const char *start = p;
        while (isdigit((unsigned char)*p) && n < 1000000) {
            n = n * 10 + (*p - '0');
            p++;
        }
        if (p == start || n >= 1000000) {
            return tsr_error_set(err, TSR_EINVAL, "expiry must be an ISO 8601 duration like P30D");
        }
        int64_t unit = 0;
        if (!in_time && *p == 'W') {
            unit = 7 * DAY_MS;
        } else if (!in_time && *p == 'D') {
            unit = DAY_MS;
        } else if (in_time && *p == 'H') {
            unit = 3600 * 1000;
        } else if (in_time && *p == 'M') {
            unit = 60 * 1000;
        } else if (in_time && *p == 'S') {
            unit = 1000;
        } else {
            return tsr_error_set(err, TSR_EINVAL, "expiry must be an ISO 8601 duration like P30D");
        }
        total += n * unit;
        any = true;
        p++;
    }
    if (!any || total <= 0) {
        return tsr_error_set(err, TSR_EINVAL, "expiry must be a positive duration");
    }
    *ms = total;
    return TSR_OK;
}

tsr_err_t tsr_identity__key_create(tsr_identity_t *id, const char *tenant, const char *owner,
                                   const char *creator, const char *description, int64_t expiry_ms,
                                   json_t **out, char **token, tsr_error_t *err) {
    char kid[25], secret[64], hash[65], ts[25], exp[25];
    json_t *mine = NULL, *doc = NULL;
    tsr_err_t rc;
    int64_t max_ms = (int64_t)id->key_max_days * DAY_MS;
    *out = NULL;
    *token = NULL;
    if (expiry_ms <= 0 || expiry_ms > max_ms) {
        expiry_ms = expiry_ms <= 0 ? max_ms : expiry_ms;
        if (expiry_ms > max_ms) {
            return tsr_error_set(err, TSR_EINVAL, "expiry exceeds the tenant maximum of P%uD",
                                 id->key_max_days);
        }
    }
    rc = id->docs.list(id->docs.ud, TSR_ID__C_KEYS, tenant, "sub", owner, NULL,
                       (size_t)id->max_keys_per_user + 1, &mine, err);
    if (rc != TSR_OK) {
        goto out;
    }
    if (json_array_size(mine) >= id->max_keys_per_user) {
        rc = tsr_error_set(err, TSR_ECONFLICT, "at most %u API keys per user",
                           id->max_keys_per_user);
        goto out;
    }
    tsr_id_new(kid);
    tsr_identity__random_b64url(KEY_SECRET_BYTES, secret, sizeof secret);
    tsr_identity__sha256_hex(secret, strlen(secret), hash);
    int64_t now = tsr_wall_ms();
    tsr_time_format_rfc3339(now, ts);
    tsr_time_format_rfc3339(now + expiry_ms, exp);
    doc = json_pack("{ss ss ss ss ss ss ss ss ss ss ss}", "id", kid, "tenantId", tenant,
                    "description", description != NULL ? description : "", "sub", owner, "subType",
                    "user", "createdByUser", creator, "created", ts, "lastUpdated", ts, "expiry",
                    exp, "status", "active", "hash", hash);
    rc = id->docs.create(id->docs.ud, TSR_ID__C_KEYS, tenant, kid, doc,
                         &(tsr_id__audit_t){"com.qlik.v1.api-key.created", owner, doc}, err);
    if (rc != TSR_OK) {
        goto out;
    }
    tsr_buf_t b;
    tsr_buf_init(&b, 256);
    if (tsr_buf_appendf(&b, "%s%s_%s", KEY_PREFIX, kid, secret) != TSR_OK) {
        tsr_buf_cleanup(&b);
        rc = tsr_error_set(err, TSR_EINTERNAL, "token too long");
        goto out;
    }
    *token = tsr_buf_take(&b, NULL);
    *out = doc;
    doc = NULL;
out:
    json_decref(mine);
    json_decref(doc);
    return rc;
}

/* ---- bootstrap ------------------------------------------------------------------------------ */

void tsr_identity_boot_cleanup(tsr_identity_boot_t *b) {
    if (b != NULL) {
        free(b->user);
        free(b->password);
        free(b->api_key);
        memset(b, 0, sizeof *b);
    }
}

tsr_err_t tsr_identity_tenant_admin_create(tsr_identity_t *id, const char *tenant_id,
                                           const char *email, tsr_identity_boot_t *out,
                                           tsr_error_t *err) {
    char pw[64], email_norm[TSR_ID__MAX_EMAIL + 1], *phc = NULL;
    json_t *tenant = NULL, *user = NULL, *key = NULL, *cred = NULL;
    tsr_err_t rc;
    memset(out, 0, sizeof *out);
    if (tenant_id == NULL || !is_hex24(tenant_id) || email == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "a tenant id and an email are required");
    }
    if ((rc = email_normalize(email, email_norm, err)) != TSR_OK) {
        return rc;
    }
    rc = id->docs.get(id->docs.ud, TSR_ID__C_TENANTS, tenant_id, tenant_id, &tenant, err);
    if (rc != TSR_OK) {
        goto out;
    }
    memcpy(out->tenant_id, tenant_id, 25);
    tsr_id_new(out->user_id);
    char sub[40];
    snprintf(sub, sizeof sub, "local|%s", out->user_id);
    json_t *roles = json_pack("[{ss ss ss ss}]", "id", ROLES[0].id, "name", ROLES[0].name, "type",
                              "default", "level", ROLES[0].level);
    user = user_new(tenant_id, out->user_id, sub, "Administrator", email_norm, "active", roles,
                    out->user_id);
    rc = user_insert(id, tenant_id, user, email_norm, err);
    if (rc != TSR_OK) {
        goto out;
    }
    tsr_identity__random_b64url(18, pw, sizeof pw);
    if ((rc = tsr_identity__password_hash(pw, &phc, err)) != TSR_OK) {
        goto out;
    }
    cred = json_pack("{ss ss}", "id", out->user_id, "passwordHash", phc);
    rc = id->docs.create(id->docs.ud, TSR_ID__C_SECRETS, tenant_id, out->user_id, cred,
                         &(tsr_id__audit_t){"com.qlik.v1.user.created", out->user_id, user}, err);
    if (rc != TSR_OK) {
        goto out;
    }
    rc = tsr_identity__key_create(id, tenant_id, out->user_id, out->user_id, "tenant administrator",
                                  0, &key, &out->api_key, err);
    if (rc != TSR_OK) {
        goto out;
    }
    out->created = true;
    out->user = tsr_xstrdup(email_norm);
    out->password = tsr_xstrdup(pw);
out:
    if (rc != TSR_OK) {
        tsr_identity_boot_cleanup(out);
    }
    free(phc);
    json_decref(tenant);
    json_decref(user);
    json_decref(key);
    json_decref(cred);
    return rc;
}

tsr_err_t tsr_identity_bootstrap(tsr_identity_t *id, const char *url, tsr_identity_boot_t *out,
                                 tsr_error_t *err) {
    char host[TSR_ID__MAX_HOST + 1], hostport[TSR_ID__MAX_HOST + 8], tid[25];
    const char *hosts[4] = {NULL, NULL, NULL, NULL};
    tsr_err_t rc;
    memset(out, 0, sizeof *out);
    const char *p = url != NULL ? strstr(url, "://") : NULL;
    size_t n = p != NULL ? strcspn(p + 3, "/?#") : 0;
    if (p == NULL || n == 0 || n >= sizeof hostport) {
        return tsr_error_set(err, TSR_EINVAL, "url must look like http://host:port");
    }
    memcpy(hostport, p + 3, n);
    hostport[n] = '\0';
    if ((rc = tsr_identity__host_normalize(hostport, host, err)) != TSR_OK) {
        return rc;
    }
    rc = tsr_identity_tenant_by_host(id, host, out->tenant_id, err);
    if (rc != TSR_ENOTFOUND) {
        return rc; /* TSR_OK: already bootstrapped, nothing to do */
    }
    size_t nh = 0;
    hosts[nh++] = host;
    if (strcmp(host, "localhost") != 0) {
        hosts[nh++] = "localhost";
    }
    if (strcmp(host, "127.0.0.1") != 0) {
        hosts[nh++] = "127.0.0.1";
    }
    rc = tsr_identity_tenant_create(id, "default", hosts, tid, err);
    if (rc == TSR_OK) {
        rc = tsr_identity_tenant_admin_create(id, tid, "admin@tessera.local", out, err);
        if (rc != TSR_OK) {
            /* Leave no half-made tenant behind: a rerun would take it as done. */
            tsr_identity_tenant_del(id, tid, NULL);
        }
    }
    return rc;
}

/* ---- OIDC users (identity_oidc.c) ------------------------------------------------------------ */

tsr_err_t tsr_identity__session_create(tsr_identity_t *id, const char *tenant, const char *uid,
                                       const tsr_id__audit_t *ev, char **cookie, char **csrf,
                                       tsr_error_t *err) {
    *cookie = NULL;
    *csrf = NULL;
    return session_create(id, tenant, uid, ev, cookie, csrf, err);
}

tsr_err_t tsr_identity__oidc_user(tsr_identity_t *id, const char *tenant, const char *idp_id,
                                  const char *sub, const char *email, const char *name, bool create,
                                  char uid[25], tsr_error_t *err) {
    char link[320], email_norm[TSR_ID__MAX_EMAIL + 1];
    json_t *l = NULL;
    tsr_id__principal_t p;
    snprintf(link, sizeof link, "%s|%s", idp_id, sub);
    tsr_err_t rc = id->docs.get(id->docs.ud, TSR_ID__C_OIDC_LINKS, tenant, link, &l, err);
    if (rc == TSR_OK) {
        const char *u = json_string_value(json_object_get(l, "userId"));
        rc = u != NULL && is_hex24(u) ? TSR_OK : TSR_ECORRUPT;
        if (rc == TSR_OK) {
            memcpy(uid, u, 25);
        }
        json_decref(l);
        if (rc == TSR_OK && (rc = principal_of(id, tenant, uid, &p, err)) == TSR_EUNAUTHENTICATED) {
            tsr_error_set(err, rc, "oidc: this user is disabled or deleted in the tenant");
        }
        return rc == TSR_ECORRUPT ? tsr_error_set(err, rc, "oidc: a subject link is corrupt") : rc;
    }
    if (rc != TSR_ENOTFOUND) {
        return rc;
    }
    if (!create) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED,
                             "oidc: no user for this identity, and this provider does not create "
                             "users on login");
    }
    if (email == NULL || email_normalize(email, email_norm, NULL) != TSR_OK) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED,
                             "oidc: the provider sent no valid email claim for the new user");
    }
    tsr_id_new(uid);
    char subject[300];
    snprintf(subject, sizeof subject, "oidc|%s", sub);
    if (strlen(subject) > TSR_ID__MAX_SUBJECT) {
        subject[TSR_ID__MAX_SUBJECT] = '\0';
    }
    char nm[TSR_ID__MAX_NAME + 1];
    snprintf(nm, sizeof nm, "%s", name != NULL && name[0] != '\0' ? name : email_norm);
    json_t *user = user_new(tenant, uid, subject, nm, email_norm, "active", json_array(), uid);
    json_object_set_new(user, "idpId", json_string(idp_id));
    rc = user_insert(id, tenant, user, email_norm, err);
    if (rc == TSR_ECONFLICT) {
        /* Never take over an existing account by email: an admin links it explicitly. */
        tsr_error_set(err, TSR_ECONFLICT,
                      "oidc: a user with this email already exists in the tenant; it is not "
                      "linked to this identity provider");
    }
    if (rc == TSR_OK) {
        /* The link is the last write: the creation event commits with it. */
        l = json_pack("{ss ss ss}", "id", link, "userId", uid, "idpId", idp_id);
        rc = id->docs.create(id->docs.ud, TSR_ID__C_OIDC_LINKS, tenant, link, l,
                             &(tsr_id__audit_t){"com.qlik.v1.user.created", uid, user}, err);
        json_decref(l);
        if (rc != TSR_OK) {
            id->docs.del(id->docs.ud, TSR_ID__C_USERS, tenant, uid, NULL, NULL);
            id->docs.del(id->docs.ud, TSR_ID__C_EMAILS, tenant, email_norm, NULL, NULL);
            if (rc == TSR_ECONFLICT) {
                rc = tsr_error_set(err, TSR_EUNAVAILABLE,
                                   "oidc: a concurrent first sign-in of this identity; retry");
            }
        }
    }
    json_decref(user);
    return rc;
}

/* The idp-owned group named name (created when missing); *gid receives its id, *skip is set
 * when a hand-made group already owns the name (mapping never joins those). */
static tsr_err_t idp_group(tsr_identity_t *id, const char *tenant, const char *idp_id,
                           const char *name, char gid[25], bool *skip, tsr_error_t *err) {
    char nk[TSR_ID__MAX_NAME + 1], ts[25], actor[40];
    size_t i = 0;
    json_t *claim = NULL, *g = NULL;
    *skip = false;
    for (; name[i] != '\0' && i < TSR_ID__MAX_NAME; i++) {
        nk[i] = (char)tolower((unsigned char)name[i]);
    }
    nk[i] = '\0';
    for (int attempt = 0; attempt < 2; attempt++) {
        tsr_err_t rc = id->docs.get(id->docs.ud, TSR_ID__C_GROUP_NAMES, tenant, nk, &claim, err);
        if (rc == TSR_OK) {
            const char *g_id = json_string_value(json_object_get(claim, "groupId"));
            rc = g_id != NULL ? id->docs.get(id->docs.ud, TSR_ID__C_GROUPS, tenant, g_id, &g, err)
                              : TSR_ECORRUPT;
            json_decref(claim);
            if (rc == TSR_OK) {
                const char *pt = json_string_value(json_object_get(g, "providerType"));
                *skip = pt == NULL || strcmp(pt, "idp") != 0;
                memcpy(gid, json_string_value(json_object_get(g, "id")), 25);
            }
            json_decref(g);
            return rc == TSR_ECORRUPT ? tsr_error_set(err, rc, "a group name claim is corrupt")
                                      : rc;
        }
        if (rc != TSR_ENOTFOUND) {
            return rc;
        }
        tsr_id_new(gid);
        claim = json_pack("{ss ss}", "id", nk, "groupId", gid);
        rc = id->docs.create(id->docs.ud, TSR_ID__C_GROUP_NAMES, tenant, nk, claim, NULL, err);
        json_decref(claim);
        if (rc == TSR_ECONFLICT) {
            continue; /* created concurrently: read it */
        }
        if (rc != TSR_OK) {
            return rc;
        }
        now_rfc3339(ts);
        snprintf(actor, sizeof actor, "idp:%s", idp_id);
        g = json_pack("{ss ss ss ss ss ss s[] ss ss ss ss}", "id", gid, "tenantId", tenant, "name",
                      name, "description", "", "providerType", "idp", "status", "active",
                      "assignedRoles", "createdAt", ts, "lastUpdatedAt", ts, "createdBy", actor,
                      "updatedBy", actor);
        rc = id->docs.create(id->docs.ud, TSR_ID__C_GROUPS, tenant, gid, g,
                             &(tsr_id__audit_t){"com.qlik.v1.group.created", NULL, g}, err);
        json_decref(g);
        if (rc != TSR_OK) {
            id->docs.del(id->docs.ud, TSR_ID__C_GROUP_NAMES, tenant, nk, NULL, NULL);
        }
        return rc;
    }
    return tsr_error_set(err, TSR_EUNAVAILABLE, "oidc: group %.64s is being created; retry", name);
}

tsr_err_t tsr_identity__oidc_groups_sync(tsr_identity_t *id, const char *tenant, const char *uid,
                                         const char *idp_id, json_t *claim, tsr_error_t *err) {
    json_t *user = NULL, *next, *g;
    size_t i;
    if (!json_is_array(claim)) {
        /* Missing is not empty: the provider said nothing, so nothing is removed. */
        tsr_log_warn(NULL,
                     "oidc: provider %s sent no groups array for user %s; its groups are "
                     "left as they are",
                     idp_id, uid);
        return TSR_OK;
    }
    tsr_err_t rc = id->docs.get(id->docs.ud, TSR_ID__C_USERS, tenant, uid, &user, err);
    if (rc != TSR_OK) {
        return rc;
    }
    next = json_array();
    /* Grants made by hand stay; the provider owns the idp groups. */
    json_array_foreach(json_object_get(user, "assignedGroups"), i, g) {
        const char *pt = json_string_value(json_object_get(g, "providerType"));
        if (pt == NULL || strcmp(pt, "idp") != 0) {
            json_array_append(next, g);
        }
    }
    json_array_foreach(claim, i, g) {
        const char *name = json_string_value(g);
        char gid[25];
        bool skip = false, dup = false;
        if (i >= TSR_ID__OIDC_MAX_GROUPS || name == NULL || name[0] == '\0' ||
            strlen(name) > TSR_ID__MAX_NAME) {
            continue;
        }
        if ((rc = idp_group(id, tenant, idp_id, name, gid, &skip, err)) != TSR_OK) {
            break;
        }
        size_t j;
        json_t *e;
        json_array_foreach(next, j, e) {
            dup = dup || strcmp(json_string_value(json_object_get(e, "id")), gid) == 0;
        }
        if (!skip && !dup) {
            json_array_append_new(
                next, json_pack("{ss ss ss}", "id", gid, "name", name, "providerType", "idp"));
        }
    }
    if (rc == TSR_OK && !json_equal(next, json_object_get(user, "assignedGroups"))) {
        char ts[25];
        now_rfc3339(ts);
        json_object_set(user, "assignedGroups", next);
        json_object_set_new(user, "lastUpdatedAt", json_string(ts));
        rc = id->docs.replace(id->docs.ud, TSR_ID__C_USERS, tenant, uid, user,
                              &(tsr_id__audit_t){"com.qlik.v1.user.updated", uid, user}, err);
    }
    json_decref(next);
    json_decref(user);
    return rc;
}
