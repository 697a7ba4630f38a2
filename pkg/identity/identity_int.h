/*
 * pkg/identity internals shared by its own files: the service state, the principal, the
 * fixed roles, the storage table over pkg/store, secret helpers over pkg/crypto and the domain
 * functions the HTTP handlers call. Nothing here is part of the public API.
 */
#ifndef TSR_IDENTITY_INT_H
#define TSR_IDENTITY_INT_H

#include <pthread.h>
#include <stdlib.h>

#include "identity.h"

/* Collections (declared in docs_store.c). Platform-scoped documents use the tenant
 * "platform" (tenant ids are 24 hex characters, so it cannot collide). */
#define TSR_ID__PLATFORM "platform"
#define TSR_ID__C_TENANTS "identity_tenants" /* (tenantId, tenantId) → Tenant */
#define TSR_ID__C_HOSTS                                                                            \
    "identity_hostnames"                 /* (tenantId, hostname) → {hostname}, global unique     \
                                          */
#define TSR_ID__C_USERS "identity_users" /* (tenantId, userId) → User */
#define TSR_ID__C_EMAILS "identity_user_emails"  /* (tenantId, lowercased email) → {userId} */
#define TSR_ID__C_SECRETS "identity_credentials" /* (tenantId, userId) → {passwordHash} */
#define TSR_ID__C_KEYS "identity_api_keys"       /* (tenantId, keyId) → ApiKey + hash */
/* (platform, kid) → {kid, createdMs, pem: sealed under the platform keyring, base64url} */
#define TSR_ID__C_SIGNING_KEYS "identity_signing_keys"
#define TSR_ID__C_GROUPS "identity_groups"           /* (tenantId, groupId) → Group */
#define TSR_ID__C_GROUP_NAMES "identity_group_names" /* (tenantId, lowercased name) → {groupId} */
#define TSR_ID__C_PLATFORM_TOKENS "identity_platform_tokens" /* (platform, id) → {id, hash} */
#define TSR_ID__C_SESSIONS "identity_sessions" /* (tenantId, sessionId) → {userId, hash, csrf} */
/* (tenantId or platform, "v<version>") → {version, record: wrapped DEK, base64url} */
#define TSR_ID__C_DEKS "identity_deks"
/* (tenantId, idpId) → IdP config; options.clientSecretSealed under the tenant DEK */
#define TSR_ID__C_IDPS "identity_providers"
/* (tenantId, SHA-256 of the state) → {idpId, nonce, verifier, redirectUri, returnto, expiresMs} */
#define TSR_ID__C_OIDC_STATES "identity_oidc_states"
/* (tenantId, "<idpId>|<sub>") → {userId}: the user a provider's subject signs in as */
#define TSR_ID__C_OIDC_LINKS "identity_oidc_links"

/* An audit event to commit with a write (outbox) and hand to the on_audit hook after it.
 * type is identity's name ("com.qlik.v1.user.created"); data is borrowed. */
typedef struct {
    const char *type;
    const char *actor; /* acting user id, may be NULL */
    json_t *data;
} tsr_id__audit_t;

/* identity's view of pkg/store: documents addressed by (collection, tenantId, key), kept whole
 * (docs_store.c). Documents passed in are borrowed, returned ones returned-owned. Thread safe.
 * Writes take an optional audit event committed in the same transaction. */
typedef struct {
    void *ud;
    /* Insert. TSR_ECONFLICT if (coll, tenant, key) exists or a unique constraint says no. */
    tsr_err_t (*create)(void *ud, const char *coll, const char *tenant, const char *key,
                        json_t *doc, const tsr_id__audit_t *ev, tsr_error_t *err);
    /* Read. TSR_ENOTFOUND if absent. */
    tsr_err_t (*get)(void *ud, const char *coll, const char *tenant, const char *key, json_t **out,
                     tsr_error_t *err);
    /* Overwrite an existing document. TSR_ENOTFOUND if absent. */
    tsr_err_t (*replace)(void *ud, const char *coll, const char *tenant, const char *key,
                         json_t *doc, const tsr_id__audit_t *ev, tsr_error_t *err);
    /* Delete. TSR_ENOTFOUND if absent. */
    tsr_err_t (*del)(void *ud, const char *coll, const char *tenant, const char *key,
                     const tsr_id__audit_t *ev, tsr_error_t *err);
    /* Up to limit documents of (coll, tenant) in ascending key order, keys > after (NULL: from
     * the start); when field ("userId", "sub") is non-NULL only those whose field equals
     * value. *out is a returned-owned JSON array. */
    tsr_err_t (*list)(void *ud, const char *coll, const char *tenant, const char *field,
                      const char *value, const char *after, size_t limit, json_t **out,
                      tsr_error_t *err);
    /* PLATFORM: the document of any tenant whose indexed field ("hostname") equals value.
     * TSR_ENOTFOUND if none. */
    tsr_err_t (*find)(void *ud, const char *coll, const char *field, const char *value,
                      json_t **out, tsr_error_t *err);
    /* Release everything (the store too). */
    void (*close)(void *ud);
} tsr_id__docs_t;

/* Fill docs with the table over store (taken: closed by docs->close). */
void tsr_identity__docs_store(tsr_identity_t *id, tsr_store_t *store, tsr_id__docs_t *docs);

/* Input caps (bytes or counts) for everything that comes from outside. */
#define TSR_ID__MAX_NAME 256
#define TSR_ID__MAX_EMAIL 254
#define TSR_ID__MAX_SUBJECT 256
#define TSR_ID__MAX_DESC 1024
#define TSR_ID__MAX_HOST 253
#define TSR_ID__MAX_HOSTS 16
#define TSR_ID__MAX_TOKEN 512
#define TSR_ID__MAX_PATCH_OPS 32
#define TSR_ID__MAX_ROLES 16

/* Fixed tenant roles; User is implied for every principal. */
enum {
    TSR_ID__ROLE_TENANT_ADMIN = 1u << 0,
    TSR_ID__ROLE_AUDIT_ADMIN = 1u << 1,
    TSR_ID__ROLE_DEVELOPER = 1u << 2, /* may create and manage its own API keys */
    TSR_ID__ROLE_USER = 1u << 3,
};

typedef struct {
    const char *id; /* stable, the same in every tenant */
    const char *name;
    const char *level; /* "admin" | "user" */
    const char *description;
    unsigned bit;
} tsr_id__role_t;

/* The role table, {NULL} terminated. Static storage. */
const tsr_id__role_t *tsr_identity__roles(void);
/* Role by id or name (exact), NULL if unknown. */
const tsr_id__role_t *tsr_identity__role_find(const char *id_or_name);

/* Groups one principal carries at most (X-Tsr-Groups, the platform JWT's "groups" claim). A
 * user's assignedGroups past the cap (the API allows 16 by hand plus TSR_ID__OIDC_MAX_GROUPS
 * from the identity provider, so only a store written by other means gets there) are left out
 * with a warning: they grant neither roles nor space access. */
#define TSR_ID__MAX_PRINCIPAL_GROUPS 100

/* Who is calling. Strings are valid for the request (arena) or the caller's storage. */
typedef struct {
    char tenant_id[25];
    char user_id[25];
    unsigned roles;        /* TSR_ID__ROLE_* bits, User always set */
    const char *auth_type; /* "apikey" | "session" | "jwt" */
    char key_id[25];       /* the API key or session used */
    /* The user's active groups of this tenant (hand-made and identity-provider-mapped),
     * distinct, in assignedGroups order; a missing or disabled group is not listed. */
    char groups[TSR_ID__MAX_PRINCIPAL_GROUPS][25];
    size_t n_groups;
} tsr_id__principal_t;

struct tsr_identity {
    tsr_id__docs_t docs;
    tsr_kek_set_t *kek; /* wraps every DEK record */
    uint32_t key_max_days;
    uint32_t max_keys_per_user;
    tsr_identity_audit_fn on_audit;
    void *audit_ud;
    int64_t jwt_ttl_ms;         /* lifetime of a platform token */
    int64_t jwt_rotate_ms;      /* a signing key signs for this long, then a new one is made */
    pthread_mutex_t key_mu;     /* guards the fields below */
    tsr_keyring_t *platform_kr; /* seals the signing keys' PEM; NULL until first needed */
    tsr_jwt_keyset_t *keyset;   /* every published key; the current one signs */
    char sign_kid[25];
    int64_t sign_created_ms;
    struct tsr_id__oidc_cache *oidc_cache; /* discovery and JWKS documents; under key_mu */
};

/* ---- secrets (identity_secrets.c: thin shapes over pkg/crypto) ---------------------------- */

/* SHA-256 of p[0..n) as 64 lowercase hex characters plus NUL. */
void tsr_identity__sha256_hex(const void *p, size_t n, char out[65]);
/* Constant-time equality of two NUL-terminated strings of the same length. */
bool tsr_identity__ct_eq(const char *a, const char *b);
/* n random bytes as base64url without padding into out (caller's, >= 4*n/3+2 bytes). */
void tsr_identity__random_b64url(size_t n, char *out, size_t out_size);
/* argon2id hash of password in PHC string form; returned-owned (free). */
tsr_err_t tsr_identity__password_hash(const char *password, char **out, tsr_error_t *err);
/* Whether password matches the PHC string (constant time inside argon2). */
bool tsr_identity__password_verify(const char *phc, const char *password);

/* Base32 (RFC 4648, no padding) of p[0..n) into out. */
void tsr_identity__base32(const unsigned char *p, size_t n, char *out, size_t out_size);
/* The TOTP code of step (30 s since the epoch) for a base32 secret; -1 on a bad secret. */
int64_t tsr_identity__totp_code(const char *secret_b32, int64_t step);
/* The step a 6-digit code matches (now ±1 step, only steps > last_step), or -1. */
int64_t tsr_identity__totp_check(const char *secret_b32, const char *code, int64_t now_ms,
                                 int64_t last_step);

/* ---- domain (identity_domain.c) ---------------------------------------------------------- */

/* Lowercase hostname without port, validated; TSR_EINVAL otherwise. */
tsr_err_t tsr_identity__host_normalize(const char *host, char out[TSR_ID__MAX_HOST + 1],
                                       tsr_error_t *err);

/* What a request presents. Every field may be NULL. method is the original request's
 * (X-Original-Method for the ingress); csrf the qlik-csrf-token header. */
typedef struct {
    const char *host;
    const char *authz;
    const char *cookie;
    const char *method;
    const char *csrf;
} tsr_id__cred_t;

/* Resolve the caller: a bearer API key, else a session cookie (which needs a matching CSRF
 * token unless the method is GET/HEAD/OPTIONS). TSR_EUNAUTHENTICATED for anything that does
 * not verify, TSR_EFORBIDDEN ("CSRF-TOKEN-2") for a valid session without its CSRF token,
 * TSR_EUNAVAILABLE when the store cannot answer. */
tsr_err_t tsr_identity__authenticate(tsr_identity_t *id, const tsr_id__cred_t *c,
                                     tsr_id__principal_t *p, tsr_error_t *err);

/* Whether authz ("Bearer tsrp_...") is a platform administrator's token. */
bool tsr_identity__is_platform_admin(tsr_identity_t *id, const char *authz);

/* Local-account login: on success *cookie (the session cookie value) and *csrf are
 * returned-owned (free). Wrong email, wrong password, no password yet, a disabled user and a
 * locked account all answer the same TSR_EUNAUTHENTICATED. Failed attempts lock the account
 * with exponential backoff. */
tsr_err_t tsr_identity__login(tsr_identity_t *id, const char *tenant, const char *email,
                              const char *password, const char *totp, char **cookie, char **csrf,
                              tsr_error_t *err);
/* Start TOTP enrollment for uid: a new secret (base32, returned-owned) pending until
 * confirmed. TSR_ECONFLICT when already enrolled. */
tsr_err_t tsr_identity__totp_enroll(tsr_identity_t *id, const char *tenant, const char *uid,
                                    char **secret_b32, tsr_error_t *err);
/* Confirm the pending enrollment with a current code; from then on login needs a code. */
tsr_err_t tsr_identity__totp_confirm(tsr_identity_t *id, const char *tenant, const char *uid,
                                     const char *code, tsr_error_t *err);
/* JSON Patch on the tenant: replace /name, /mfaRequiredForAdmins. All or nothing. */
tsr_err_t tsr_identity__tenant_patch(tsr_identity_t *id, const char *tenant, const char *actor,
                                     json_t *ops, tsr_error_t *err);
/* Change uid's password after checking the current one (TSR_EFORBIDDEN when wrong); every
 * session of the user except keep_session (may be NULL) ends. */
tsr_err_t tsr_identity__password_change(tsr_identity_t *id, const char *tenant, const char *uid,
                                        const char *keep_session, const char *current,
                                        const char *next, tsr_error_t *err);
/* End the session named in a Cookie header (no-op when it does not verify). */
void tsr_identity__logout(tsr_identity_t *id, const char *tenant, const char *cookie_header);
/* The CSRF token of the session named in a Cookie header; *csrf returned-owned (free).
 * TSR_EUNAUTHENTICATED without a valid session. */
tsr_err_t tsr_identity__session_csrf(tsr_identity_t *id, const char *tenant,
                                     const char *cookie_header, char **csrf, tsr_error_t *err);

#define TSR_ID__COOKIE "tsr_session"
#define TSR_ID__SESSION_TTL_MS (12LL * 3600 * 1000)
#define TSR_ID__MAX_SESSIONS 20      /* browser sessions one user may hold */
#define TSR_ID__LOCK_AFTER 5         /* failed logins before the first lockout */
#define TSR_ID__LOCK_BASE_MS 30000LL /* first lockout; doubles per further failure */
#define TSR_ID__LOCK_MAX_MS 3600000LL

/* The public view of a stored document (secrets and internal fields removed), with
 * links.self built from base. Returned-owned. */
json_t *tsr_identity__user_view(const json_t *user, const char *base);
json_t *tsr_identity__key_view(const json_t *key, const char *base);
json_t *tsr_identity__tenant_view(const json_t *tenant, const char *base);

/* A string field of 1..max bytes without NUL; *out borrowed from v. */
tsr_err_t tsr_identity__check_str(json_t *v, const char *field, size_t max, bool required,
                                  const char **out, tsr_error_t *err);
/* Validate [{id}|{name}] into a fresh assignedRoles array (returned-owned). */
tsr_err_t tsr_identity__roles_parse(json_t *in, json_t **out, tsr_error_t *err);

/* Groups (identity_groups.c). *out returned-owned. */
tsr_err_t tsr_identity__group_create(tsr_identity_t *id, const char *tenant, const char *actor,
                                     json_t *body, json_t **out, tsr_error_t *err);
tsr_err_t tsr_identity__group_patch(tsr_identity_t *id, const char *tenant, const char *actor,
                                    const char *group_id, json_t *ops, tsr_error_t *err);
tsr_err_t tsr_identity__group_del(tsr_identity_t *id, const char *tenant, const char *actor,
                                  const char *group_id, tsr_error_t *err);
/* Validate [{id}] against the tenant's groups into [{id,name,providerType}] (returned-owned);
 * another tenant's group is as unknown as a missing one. */
tsr_err_t tsr_identity__groups_resolve(tsr_identity_t *id, const char *tenant, json_t *in,
                                       json_t **out, tsr_error_t *err);

/* Users. body is validated against the create field table; *out is the stored user (status
 * invited) and *invite the one-time invitation token (returned-owned, free; valid
 * TSR_ID__INVITE_TTL_MS). */
tsr_err_t tsr_identity__user_create(tsr_identity_t *id, const char *tenant, const char *actor,
                                    json_t *body, json_t **out, char **invite, tsr_error_t *err);
/* Redeem an invitation: set the password (>= TSR_ID__MIN_PASSWORD bytes) and activate the
 * user; the token then stops working. TSR_ENOTFOUND for an unknown, used or expired token. */
tsr_err_t tsr_identity__invite_accept(tsr_identity_t *id, const char *tenant, const char *token,
                                      const char *password, tsr_error_t *err);
#define TSR_ID__INVITE_TTL_MS (7LL * 24 * 3600 * 1000)
#define TSR_ID__MIN_PASSWORD 12
tsr_err_t tsr_identity__user_patch(tsr_identity_t *id, const char *tenant, const char *actor,
                                   const char *user_id, json_t *ops, tsr_error_t *err);
tsr_err_t tsr_identity__user_del(tsr_identity_t *id, const char *tenant, const char *actor,
                                 const char *user_id, tsr_error_t *err);

/* API keys: a key for owner (its sub) made by creator (createdByUser). *token is
 * returned-owned (free) and shown once. expiry_ms <= 0: the tenant maximum. */
tsr_err_t tsr_identity__key_create(tsr_identity_t *id, const char *tenant, const char *owner,
                                   const char *creator, const char *description, int64_t expiry_ms,
                                   json_t **out, char **token, tsr_error_t *err);
/* Parse an ISO 8601 duration of days/hours/minutes/seconds ("P30D", "PT12H") into ms. */
tsr_err_t tsr_identity__duration_parse(const char *s, int64_t *ms, tsr_error_t *err);

/* ---- platform tokens (identity_jwt.c) ------------------------------------------------------ */

/* Mint a platform JWT for p (ES256, typ "tsr+jwt", iss "tessera-identity", aud "tessera",
 * claims sub, tid, roles, amr, iat, nbf, exp, jti). Rotates the signing key when it is older
 * than jwt_rotate_ms. *jwt returned-owned (free). Thread safe. */
tsr_err_t tsr_identity__jwt_mint(tsr_identity_t *id, const tsr_id__principal_t *p, char **jwt,
                                 tsr_error_t *err);
/* The current signing key as PKCS#8 PEM (*pem returned-owned: cleanse, free) and its kid;
 * tests use it to sign malformed tokens with the real key. */
tsr_err_t tsr_identity__signing_pem(tsr_identity_t *id, char **pem, char kid[25], tsr_error_t *err);
/* The JWKS of every key that may still have live tokens. *out returned-owned. */
tsr_err_t tsr_identity__jwks(tsr_identity_t *id, json_t **out, tsr_error_t *err);
/* Verify a platform JWT strictly; *claims returned-owned on TSR_OK. TSR_EUNAUTHENTICATED for
 * anything that does not verify. */
tsr_err_t tsr_identity__jwt_verify(tsr_identity_t *id, const char *jwt, json_t **claims,
                                   tsr_error_t *err);
/* Free the cached keys (tsr_identity_destroy). */
void tsr_identity__keys_cleanup(tsr_identity_t *id);

/* ---- tenant data keys (identity_keys.c) ---------------------------------------------------- */

/* Create version 1 of tenant's DEK (wrapped by the KEK) and store its record. TSR_ECONFLICT
 * when the tenant already has one. */
tsr_err_t tsr_identity__dek_create(tsr_identity_t *id, const char *tenant, tsr_error_t *err);
/* The tenant's keyring with every stored DEK version unwrapped (*kr returned-owned:
 * tsr_crypto_keyring_destroy). TSR_ENOTFOUND when the tenant has no DEK (shredded). */
tsr_err_t tsr_identity__keyring_load(tsr_identity_t *id, const char *tenant, tsr_keyring_t **kr,
                                     tsr_error_t *err);
/* Crypto-shredding: delete every DEK record of tenant. Idempotent. */
tsr_err_t tsr_identity__dek_shred(tsr_identity_t *id, const char *tenant, tsr_error_t *err);
/* Seal a secret string (TOTP secrets, IdP client secrets) under tenant's current DEK, bound to
 * (kind, object_id); *out is base64url, returned-owned (free). */
tsr_err_t tsr_identity__seal_str(tsr_identity_t *id, const char *tenant, const char *kind,
                                 const char *object_id, const char *pt, char **out,
                                 tsr_error_t *err);
/* Open what tsr_identity__seal_str made; *out returned-owned (cleanse, free). TSR_ECORRUPT
 * when it does not open (tampered, other tenant/kind/object), TSR_ENOTFOUND when the DEK is
 * gone. */
tsr_err_t tsr_identity__open_str(tsr_identity_t *id, const char *tenant, const char *kind,
                                 const char *object_id, const char *sealed, char **out,
                                 tsr_error_t *err);

/* ---- OIDC relying party (identity_oidc.c) ------------------------------------------------- */

#define TSR_ID__OIDC_DOC_MAX (64 * 1024)   /* discovery document, token response (bytes) */
#define TSR_ID__OIDC_JWKS_MAX (256 * 1024) /* a provider's JWKS (bytes) */
#define TSR_ID__OIDC_STATE_TTL_MS (10LL * 60 * 1000)
#define TSR_ID__OIDC_MAX_PENDING 1000 /* unexpired sign-in states per tenant */
#define TSR_ID__OIDC_COOKIE "tsr_oidc"

/* The endpoints of a discovery document; strings returned-owned (oidc_disc_cleanup). */
typedef struct {
    char *issuer;
    char *authorization_endpoint;
    char *token_endpoint;
    char *jwks_uri;
    char *userinfo_endpoint; /* NULL when the provider has none */
} tsr_id__oidc_disc_t;

/* Whether url may be used to reach a provider: https, or http to loopback only. */
bool tsr_identity__oidc_url_ok(const char *url);
/* Parse a discovery document of n bytes (> TSR_ID__OIDC_DOC_MAX: TSR_ETOOBIG); the four
 * endpoints must pass oidc_url_ok and, when discovery_url is non-NULL, issuer +
 * "/.well-known/openid-configuration" must equal it. TSR_EINVAL otherwise. */
tsr_err_t tsr_identity__oidc_discovery_parse(const char *body, size_t n, const char *discovery_url,
                                             tsr_id__oidc_disc_t *out, tsr_error_t *err);
void tsr_identity__oidc_disc_cleanup(tsr_id__oidc_disc_t *d);
/* Verify an ID token against ks: ES256/RS256 only, iss, aud = client_id (azp when several
 * audiences), exp required, iat present, nbf, skew_s (0: 60), nonce equal. now_s 0: wall
 * clock. *claims returned-owned. TSR_EUNAUTHENTICATED with the reason otherwise. */
tsr_err_t tsr_identity__oidc_id_token_verify(const tsr_jwt_keyset_t *ks, const char *tok,
                                             const char *issuer, const char *client_id,
                                             const char *nonce, uint32_t skew_s, int64_t now_s,
                                             json_t **claims, tsr_error_t *err);
/* Whether r is a path on this site ("/..." but not "//..."). */
bool tsr_identity__returnto_ok(const char *r);
/* IdP configurations (TenantAdmin). *out is the stored document (returned-owned; show it
 * through idp_view, which drops the sealed secret). */
tsr_err_t tsr_identity__idp_create(tsr_identity_t *id, const char *tenant, const char *actor,
                                   json_t *body, json_t **out, tsr_error_t *err);
tsr_err_t tsr_identity__idp_patch(tsr_identity_t *id, const char *tenant, const char *actor,
                                  const char *idp_id, json_t *ops, json_t **out, tsr_error_t *err);
tsr_err_t tsr_identity__idp_del(tsr_identity_t *id, const char *tenant, const char *actor,
                                const char *idp_id, tsr_error_t *err);
json_t *tsr_identity__idp_view(const json_t *doc, const char *base);
/* Start a sign-in: a state (returned-owned in *state, for the browser cookie) stored with a
 * nonce and a PKCE verifier, and the provider's authorization URL (*location, returned-owned). */
/* The tenant's active providers for its sign-in page ({"data":[{id, name (the description),
 * loginPath}]}, at most TSR_ID__OIDC_MAX_SIGN_IN_OPTIONS): public, so nothing else of a
 * provider (discovery URL, client id) is in it. *out returned-owned. */
#define TSR_ID__OIDC_MAX_SIGN_IN_OPTIONS 50
tsr_err_t tsr_identity__oidc_sign_in_options(tsr_identity_t *id, const char *tenant, json_t **out,
                                             tsr_error_t *err);
tsr_err_t tsr_identity__oidc_start(tsr_identity_t *id, const char *tenant, const char *idp_id,
                                   const char *redirect_uri, const char *returnto, char **location,
                                   char **state, tsr_error_t *err);
/* Finish it: consume the state (single use, must equal browser_state), exchange the code,
 * verify the ID token, find or create the user, open a session (*cookie, *csrf, *returnto
 * returned-owned). */
tsr_err_t tsr_identity__oidc_finish(tsr_identity_t *id, const char *tenant, const char *idp_id,
                                    const char *state, const char *code, const char *browser_state,
                                    char **cookie, char **csrf, char **returnto, tsr_error_t *err);
void tsr_identity__oidc_cleanup(tsr_identity_t *id);
/* (identity_domain.c) The user (idp_id, sub) signs in as: linked before, else created active
 * with email and name when create is true. TSR_EUNAUTHENTICATED when not linked and not
 * created or not active, TSR_ECONFLICT when the email belongs to another user. */
tsr_err_t tsr_identity__oidc_user(tsr_identity_t *id, const char *tenant, const char *idp_id,
                                  const char *sub, const char *email, const char *name, bool create,
                                  char uid[25], tsr_error_t *err);
/* Set uid's provider-owned groups (providerType "idp") to the names in claim (an array of
 * strings; groups are created when missing, at most TSR_ID__OIDC_MAX_GROUPS); groups granted
 * by hand are kept, a hand-made group with a mapped name is not joined. claim NULL or not an
 * array: nothing changes (a warning is logged). Such groups grant TenantAdmin only when the
 * tenant's idpGroupsGrantAdmin is true. */
#define TSR_ID__OIDC_MAX_GROUPS 64
tsr_err_t tsr_identity__oidc_groups_sync(tsr_identity_t *id, const char *tenant, const char *uid,
                                         const char *idp_id, json_t *claim, tsr_error_t *err);
/* A browser session for uid, as password login makes it (cookie, csrf returned-owned). */
tsr_err_t tsr_identity__session_create(tsr_identity_t *id, const char *tenant, const char *uid,
                                       const tsr_id__audit_t *ev, char **cookie, char **csrf,
                                       tsr_error_t *err);

/* The i-th registered route (for the route/OpenAPI contract test); false past the end. */
bool tsr_identity__route_at(size_t i, const char **method, const char **pattern);

/* Emit an audit event through the hook (no-op without one). */
void tsr_identity__audit(tsr_identity_t *id, const char *tenant, const char *user, const char *type,
                         json_t *data);

#endif
