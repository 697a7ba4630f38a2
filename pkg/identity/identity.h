/*
 * pkg/identity: who is calling, in which tenant, with which rights. Layer: service.
 * Tenants (resolved from the Host header through tenant.hostnames), users, the fixed tenant
 * roles, API keys (shown once, stored as SHA-256 hashes), and the authentication decision the
 * ingress asks for on every request (nginx auth_request → GET /internal/v1/authn).
 * Invariants: every stored document is addressed by (tenantId, id) and the tenant always
 * comes from the Host header, never from a path, query or body; another tenant's object
 * answers exactly like a missing one (404); anything that does not verify answers 401.
 */
#ifndef TSR_IDENTITY_H
#define TSR_IDENTITY_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "crypto.h"
#include "httpd.h"
#include "store.h"

/* ---- storage ------------------------------------------------------------------------------- */

/* identity's collections for tsr_store_create (static storage; *n receives the count). */
const tsr_store_collection_t *tsr_identity_collections(size_t *n);

/* Open the store at uri with identity's collections declared (uri NULL or "": knob
 * TSR_STORE_URI, else sqlite:$TSR_STATE_DIR/store.db). *out: tsr_store_destroy, or hand it to
 * tsr_identity_create. Errors of tsr_store_create. */
tsr_err_t tsr_identity_store_open(const char *uri, tsr_store_t **out, tsr_error_t *err);

/* Load the KEK set: spec (TSR_KEK_FILE syntax) when non-empty, else the local stack's
 * state_dir/local/kek, created (mode 0600) when missing. *out: tsr_crypto_kek_set_destroy. */
tsr_err_t tsr_identity_kek_load(const char *spec, const char *state_dir, tsr_kek_set_t **out,
                                tsr_error_t *err);

/* ---- the service ----------------------------------------------------------------------------- */

typedef struct tsr_identity tsr_identity_t;

/* Audit hook: called after a state change commits (type e.g. "com.qlik.v1.user.created").
 * data is borrowed for the call. The same change also wrote a CloudEvents envelope
 * ("com.tessera.v1.<domain>.<action>", secrets removed from data) to the store's outbox in
 * its own commit, for the events relay to publish. Must be thread safe. */
typedef void (*tsr_identity_audit_fn)(void *ud, const char *tenant_id, const char *user_id,
                                      const char *type, json_t *data);

typedef struct {
    tsr_store_t *store;               /* taken (also on failure): destroyed with the service */
    tsr_kek_set_t *kek;               /* taken (also on failure): wraps the DEKs */
    uint32_t api_key_max_expiry_days; /* 0: 365 */
    uint32_t max_keys_per_user;       /* 0: 100 */
    uint32_t jwt_ttl_s;               /* platform token lifetime; 0: 300 */
    uint32_t jwt_rotate_s;            /* signing key rotation period; 0: 86400 */
    tsr_identity_audit_fn on_audit;   /* may be NULL */
    void *audit_ud;
} tsr_identity_opts_t;

/* Create the service over opts->store and opts->kek (both required). *out is returned-owned:
 * tsr_identity_destroy. Thread safe after creation. */
tsr_err_t tsr_identity_create(const tsr_identity_opts_t *opts, tsr_identity_t **out,
                              tsr_error_t *err);
/* Close the store, cleanse the keys and free. NULL: no-op. */
void tsr_identity_destroy(tsr_identity_t *id);

/* Register identity's routes on h; ud is the tsr_identity_t (borrowed, must outlive h). */
tsr_err_t tsr_identity_routes(tsr_httpd_t *h, void *ud, tsr_error_t *err);

/* Readiness: the storage answers. ud is the tsr_identity_t. */
tsr_err_t tsr_identity_ready(void *ud, tsr_error_t *err);

/* ---- platform administration (tsr-admin, /internal/v1/tenants) ------------------------------- */

/* Create a tenant named name with hostnames (NULL-terminated, 1..16 entries, lowercase DNS
 * names or IPv4 literals, no port), and its data key (DEK version 1, wrapped by the KEK).
 * out_id receives the new id. TSR_EINVAL on bad input, TSR_ECONFLICT when a hostname belongs
 * to another tenant (nothing is created then). */
tsr_err_t tsr_identity_tenant_create(tsr_identity_t *id, const char *name,
                                     const char *const *hostnames, char out_id[25],
                                     tsr_error_t *err);

/* Delete a tenant and everything identity holds for it (hostnames first, so nothing
 * authenticates meanwhile; then sessions, keys, credentials, users, groups; then its DEKs,
 * which crypto-shreds everything sealed under them; the tenant last).
 * Idempotent: rerun after a failure. TSR_ENOTFOUND for an unknown tenant. */
tsr_err_t tsr_identity_tenant_del(tsr_identity_t *id, const char *tenant_id, tsr_error_t *err);

/* The tenant owning hostname (a port suffix is ignored); TSR_ENOTFOUND if none. */
tsr_err_t tsr_identity_tenant_by_host(tsr_identity_t *id, const char *host, char out_id[25],
                                      tsr_error_t *err);

/* Mint a platform administrator token (for /internal/v1/tenants): "tsrp_<id>_<secret>",
 * stored as a hash, shown once. *token returned-owned (free). */
tsr_err_t tsr_identity_platform_token_create(tsr_identity_t *id, const char *description,
                                             char **token, tsr_error_t *err);

/* What tsr_identity_bootstrap made; strings are returned-owned (tsr_identity_boot_cleanup). */
typedef struct {
    bool created; /* false: the tenant already existed and nothing was done */
    char tenant_id[25];
    char user_id[25];
    char *user;     /* the admin's email */
    char *password; /* random, shown once */
    char *api_key;  /* shown once */
} tsr_identity_boot_t;

/* Create an active TenantAdmin user with email in tenant_id, a random password (argon2id
 * hash stored) and an API key. out->created is true on success. TSR_ENOTFOUND for an unknown
 * tenant, TSR_ECONFLICT when the email is taken, TSR_EINVAL for a malformed email. */
tsr_err_t tsr_identity_tenant_admin_create(tsr_identity_t *id, const char *tenant_id,
                                           const char *email, tsr_identity_boot_t *out,
                                           tsr_error_t *err);

/* First start of the local stack: when no tenant owns url's host, create a tenant with the
 * hostnames {url host, "localhost", "127.0.0.1"}, a TenantAdmin user admin@<host-or-local>
 * with a random password, and an API key for it. Idempotent: created=false when the host
 * already has a tenant. */
tsr_err_t tsr_identity_bootstrap(tsr_identity_t *id, const char *url, tsr_identity_boot_t *out,
                                 tsr_error_t *err);
void tsr_identity_boot_cleanup(tsr_identity_boot_t *b);

#endif
