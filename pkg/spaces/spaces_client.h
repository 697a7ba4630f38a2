/*
 * pkg/spaces client: what other services (engine, reload) ask spaces over its internal HTTP
 * endpoint, GET /internal/v1/access?resource=<kind>:<id>, with the caller's principal headers
 * forwarded, and which of spaces' events make those answers stale. A small library of its
 * own (tsr_spaces_client: libcurl + jansson, tsr_events for the consumer) so a service asks
 * spaces without linking spaces itself.
 */
#ifndef TSR_SPACES_CLIENT_H
#define TSR_SPACES_CLIENT_H

#include <jansson.h>

#include "core.h"
#include "events.h"

/* The caller as the ingress described it (each may be NULL: the header is not sent). */
typedef struct {
    const char *tenant_id;
    const char *user_id;
    const char *roles; /* comma list, e.g. "TenantAdmin,User" */
    const char *token; /* the platform JWT */
} tsr_spaces_client_principal_t;

/* The actions who may take on resource ("app:<id>", "space:<id>", ...) at the spaces service
 * at base_url (no trailing slash needed): *actions is a returned-owned JSON array of strings
 * (possibly empty: no permission). TSR_ENOTFOUND when spaces answers 404 (another tenant's
 * object looks exactly like a missing one); TSR_EINVAL when it answers 400 (a malformed id or
 * principal: the caller decides whether that is a missing object or an internal fault);
 * TSR_EUNAVAILABLE for anything else (unreachable, 5 s timeout, other status, an answer over
 * 64 KiB or not JSON): callers refuse rather than guess. Thread safe. */
tsr_err_t tsr_spaces_client_actions(const char *base_url, const char *resource,
                                    const tsr_spaces_client_principal_t *who, json_t **actions,
                                    tsr_error_t *err);
/* The same with the whole exchange bounded by timeout_ms (connect: at most 2 s of it);
 * tsr_spaces_client_actions is this with 5000. A timeout is TSR_EUNAVAILABLE. */
tsr_err_t tsr_spaces_client_actions_timeout(const char *base_url, const char *resource,
                                            const tsr_spaces_client_principal_t *who,
                                            long timeout_ms, json_t **actions, tsr_error_t *err);

/* One call to spaces on the caller's behalf (the engine creates the record of an imported app
 * with POST /api/v1/apps, reports an export to /internal/v1/apps/{id}/exported): method and
 * path (with query, already escaped) at base_url, body (borrowed, may be NULL) sent as JSON,
 * the principal's headers forwarded. *status is the HTTP status and *resp (may be NULL) the
 * parsed JSON answer, returned-owned (NULL when there is none or it is not JSON). TSR_OK
 * whenever spaces answered, whatever the status; TSR_EUNAVAILABLE when it could not be reached
 * (5 s timeout) or its answer passed 1 MiB. Thread safe. */
tsr_err_t tsr_spaces_client_call(const char *base_url, const char *method, const char *path,
                                 const tsr_spaces_client_principal_t *who, const json_t *body,
                                 long *status, json_t **resp, tsr_error_t *err);
/* tsr_spaces_client_call that also sends X-Tsr-Auth-Type: auth_type (NULL: not sent), which
 * only a service trusting headers (development) believes: one that verifies tokens takes the
 * auth type from the token's claims instead. Spaces' call to the engine's copy route. */
tsr_err_t tsr_spaces_client_call_typed(const char *base_url, const char *method, const char *path,
                                       const tsr_spaces_client_principal_t *who,
                                       const char *auth_type, const json_t *body, long *status,
                                       json_t **resp, tsr_error_t *err);

/* ---- caches of access decisions kept current by events (spaces_client_events.c) ---- */

/* What ev may make stale in a cache of spaces' access decisions. True when it touches the
 * cache: *app_id is then the one app of ev's tenant to forget (ev's subject, borrowed) or NULL
 * for the whole tenant. An app event (com.tessera.v1.app.*) touches its app (the tenant when
 * it has no subject); space and membership events (space.*, space.member.*) and identity
 * changes (group.*, role.*, tenant.*, user.{updated,deleted}) the tenant; anything else
 * (data files, app versions, logins, ...) nothing. Never another tenant: false without one. */
bool tsr_spaces_access_scope(const tsr_event_t *ev, const char **app_id);

/* Forget cached decisions of app_id in tenant_id (app_id NULL: the tenant's; tenant_id NULL:
 * all of them). Returns how many were dropped (0 when it does not count). */
typedef size_t (*tsr_spaces_access_drop_fn)(void *ud, const char *tenant_id, const char *app_id);

typedef struct {
    const char *bootstrap;    /* Kafka bootstrap servers */
    const char *group_prefix; /* the group id: "<prefix>-<member>-<random>" */
    const char *member;       /* names the replica in the group id; NULL: "<host>-<pid>" */
    const char *client_id;    /* Kafka client id */
    const char *noun;         /* what the log calls one cached entry: "answer(s)" */
    tsr_spaces_access_drop_fn drop;
    void *ud; /* drop's first argument (and event's) */
    /* Optional: also called (after drop) with every event that touches the cache, for what
     * depends on the event's type (the engine closes a deleted app's sessions). NULL: none. */
    void (*event)(void *ud, const tsr_event_t *ev);
} tsr_spaces_access_events_opts_t;

typedef struct tsr_spaces_access_events tsr_spaces_access_events_t;

/* A thread that consumes tessera.spaces, tessera.apps and tessera.identity in a consumer group
 * of this process alone (from the topics' end: every replica sees every event) and drops what
 * each event touches (tsr_spaces_access_scope); once the group assigned the partitions it drops
 * everything once (an answer kept before may have missed an event). Dropping is idempotent,
 * so nothing is recorded for dedupe. opts' strings are copied into the group id or must
 * outlive the consumer (literals). *out: tsr_spaces_access_events_stop. */
tsr_err_t tsr_spaces_access_events_start(const tsr_spaces_access_events_opts_t *opts,
                                         tsr_spaces_access_events_t **out, tsr_error_t *err);
/* True once the group assigned the partitions (events are seen from then on). */
bool tsr_spaces_access_events_ready(tsr_spaces_access_events_t *k);
/* Stop the thread, leave the group, free. NULL: no-op. */
void tsr_spaces_access_events_stop(tsr_spaces_access_events_t *k);

#endif
