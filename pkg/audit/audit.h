/*
 * pkg/audit: the audit trail. Layer: service (core, log, config, httpd, store, events below).
 * Every auditable CloudEvent is stored once per tenant (idempotent by event id), append-only,
 * in a per-tenant hash chain: record n carries seq n, prevHash = hash of record n-1 and
 * hash = SHA-256 over its canonical JSON (keys sorted, compact, ASCII; every stored member but
 * "hash" and the store's "version"), so changing, deleting or reordering a record breaks the
 * chain. Every N events (and on a timer) the head is written as a checkpoint signed with the
 * platform's ES256 key (a JWS whose payload names the previous checkpoint's signature).
 * Invariant: no function here updates or deletes an event record.
 */
#ifndef TSR_AUDIT_H
#define TSR_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core.h"
#include "events.h"
#include "httpd.h"
#include "store.h"

#define TSR_AUDIT_C_EVENTS "audit_events"           /* one document per stored event */
#define TSR_AUDIT_C_CHAINS "audit_chains"           /* per tenant: the chain head, id "head" */
#define TSR_AUDIT_C_CHECKPOINTS "audit_checkpoints" /* signed heads */
#define TSR_AUDIT_GROUP "audit"                     /* consumer group and dedupe scope */

typedef struct tsr_audit tsr_audit_t;

/* The collections pkg/audit needs declared at tsr_store_create (static storage). */
const tsr_store_collection_t *tsr_audit_collections(size_t *n);

typedef struct {
    tsr_store_t *store; /* borrowed; must outlive the tsr_audit_t */
    /* ES256 private keys (PEM), comma-separated: the first signs checkpoints (created 0600
     * when missing), the others are older keys that only verify (rotation); NULL: unsigned */
    const char *key_file;
    uint32_t checkpoint_every;      /* events between checkpoints; 0: 1000 */
    uint32_t checkpoint_interval_s; /* a tenant with newer events gets one after this; 0: 300 */
    uint32_t retention_days;        /* online window of the list API; 0: 90 */
    size_t archive_max_bytes;       /* largest archive answer; 0: 64 MiB */
} tsr_audit_opts_t;

/* Fill opts from the TSR_AUDIT_* knobs (store left NULL; key_file points into static storage
 * valid until the next call). */
tsr_err_t tsr_audit_opts_from_config(tsr_audit_opts_t *opts, tsr_error_t *err);

/* Create the service. TSR_EINVAL without a store, TSR_EIO when the key file cannot be read or
 * created. *out returned-owned: tsr_audit_destroy. Thread safe after creation. */
tsr_err_t tsr_audit_create(const tsr_audit_opts_t *opts, tsr_audit_t **out, tsr_error_t *err);
/* Stops the consumer and maintenance threads if running, frees. NULL: no-op. */
void tsr_audit_destroy(tsr_audit_t *a);

/* ---- ingest -------------------------------------------------------------------------------- */

/* Store ev (borrowed) once: through tsr_store_apply_once(group "audit", ev->id), appended to
 * ev->tenantid's chain. *stored (may be NULL): false when the event id was already applied.
 * TSR_EINVAL for an event without id/tenant/type; the store's code otherwise. Thread safe. */
tsr_err_t tsr_audit_ingest(tsr_audit_t *a, const tsr_event_t *ev, bool *stored, tsr_error_t *err);

/* The pkg/events handler: appends ev inside txn (a tsr_store_t transaction view). opaque is
 * the tsr_audit_t. An event whose id is already in the tenant's trail is a no-op. */
tsr_err_t tsr_audit_handle_event(void *opaque, const tsr_event_t *ev, void *txn, tsr_error_t *err);

/* The processed-event set over a's store (pkg/store's tsr_store_events_dedupe), for consumers. */
tsr_events_dedupe_t tsr_audit_dedupe(tsr_audit_t *a);

/* ---- integrity ----------------------------------------------------------------------------- */

/* Check tenant's chain from seq from (>= 1; 0: 1) to seq to (0: the head), at most max_events
 * records (0: unlimited), and the checkpoints in that range (signature, hash at its seq, link
 * to the previous one, none beyond the head). *report returned-owned:
 *   {"ok":bool,"tenantId","from","to","checked":n,"head":{"seq","hash"},"checkpoints":n,
 *    "truncated":bool,"nextFrom"?:n,"firstBreak"?:{"seq","id"?,"reason","detail"}}
 * reasons: missing, prev-hash-mismatch, hash-mismatch, seq-mismatch, tenant-mismatch,
 * head-mismatch, checkpoint-signature, checkpoint-hash-mismatch, checkpoint-chain,
 * checkpoint-beyond-head. TSR_OK whenever the check ran (a break is not an error). */
tsr_err_t tsr_audit_verify(tsr_audit_t *a, const char *tenant, int64_t from, int64_t to,
                           size_t max_events, json_t **report, tsr_error_t *err);

/* Write a signed checkpoint at tenant's head now if the head is past the last checkpoint.
 * *written (may be NULL) says whether one was written. */
tsr_err_t tsr_audit_checkpoint(tsr_audit_t *a, const char *tenant, bool *written, tsr_error_t *err);

/* One maintenance round under the store lease "audit.maintenance" held by owner: a checkpoint
 * for every tenant whose head is past its last checkpoint and whose last checkpoint is older
 * than checkpoint_interval_s (force: regardless of age). Safe on every replica: a replica that
 * does not get the lease does nothing (*ran false). */
tsr_err_t tsr_audit_maintain(tsr_audit_t *a, const char *owner, bool force, bool *ran,
                             tsr_error_t *err);

/* The tenants that have a trail (platform call, for tsr-admin). *out returned-owned JSON
 * array of strings. */
tsr_err_t tsr_audit_tenants(tsr_audit_t *a, json_t **out, tsr_error_t *err);

/* ---- HTTP ------------------------------------------------------------------------------------ */

/* Routes under /api/v1/audits; ud is the tsr_audit_t (must outlive h). The principal comes
 * from the ingress headers X-Tsr-Tenant-Id, X-Tsr-User-Id, X-Tsr-Roles; only TenantAdmin and
 * AuditAdmin may read (403), another tenant's event answers 404. No route writes. */
tsr_err_t tsr_audit_routes(tsr_httpd_t *h, void *ud, tsr_error_t *err);

/* Principal hook for tsr_httpd_opts_t.on_principal ("user:<tenant>:<user>"; 401 without the
 * ingress headers). ud unused. */
tsr_err_t tsr_audit_principal(tsr_req_t *req, void *ud, const char **principal, tsr_error_t *err);

/* Readiness: the store answers and, when the consumer was started, it holds its group
 * assignment. ud is the tsr_audit_t. */
tsr_err_t tsr_audit_ready(void *ud, tsr_error_t *err);

/* ---- background work ------------------------------------------------------------------------- */

typedef struct {
    const char *bootstrap; /* NULL: tsr_events_bootstrap_resolve, retried until it answers */
    const char *client_id; /* NULL: "tessera-audit" */
    const char *owner;     /* lease owner (replica name); NULL: "audit-<pid>" */
    int maintain_every_ms; /* maintenance round period; 0: 10000 */
    const char *const *extra_conf; /* passed to the consumer */
} tsr_audit_run_opts_t;

/* Start the consumer of every topic the catalogue lists audit as a consumer of (group
 * "audit", dedupe through the store, offsets committed after the store write) and the
 * maintenance thread. opts may be NULL. */
tsr_err_t tsr_audit_start(tsr_audit_t *a, const tsr_audit_run_opts_t *opts, tsr_error_t *err);
/* Stop both threads (the consumer commits and leaves its group). Idempotent. */
void tsr_audit_stop(tsr_audit_t *a);

#endif
