/*
 * pkg/reload: reloads and reload tasks. Layer: service (store, events, httpd below it).
 * Three parts; this header has the first two and includes the third:
 *   - the schedule core (pure): RFC 5545 RRULE lines in an IANA time zone, next-fire
 *     computation across DST changes, the misfire decision and the auto-suspend rule;
 *   - the service: /api/v1/reloads and /api/v1/reload-tasks over pkg/store, the queue as
 *     outbox events on tessera.reloads.requests (keyed by app id), the scheduler leader
 *     (store lease) firing each (task, scheduled time) at most once, chained triggers;
 *   - the worker state machine, reload_worker.h (library tsr_reload_worker), which the
 *     engine's reloader role links without the service.
 * Invariants: every document is read and written with the caller's tenant, so another
 * tenant's reload or task answers exactly like a missing one (404); a fire is recorded under
 * its idempotency key in the same store transaction as the reload it queues and the event
 * that announces it; one reload.finished event per reload.
 */
#ifndef TSR_RELOAD_H
#define TSR_RELOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core.h"
#include "events.h"
#include "httpd.h"
#include "reload_worker.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- schedule core (pure; thread safe: libical is serialised inside) ------------------------- */

#define TSR_RELOAD_NEVER INT64_C(-1) /* "no further fire" */
#define TSR_RELOAD_MAX_RECURRENCE 8  /* RRULE lines per task */
#define TSR_RELOAD_RECUR_MAX_LEN 512 /* bytes per line */
#define TSR_RELOAD_TZ_MAX 64         /* IANA name, bytes */

typedef struct tsr_reload_sched tsr_reload_sched_t;

/* What a reload task says about when it runs (Qlik's TaskBase). All strings borrowed. */
typedef struct {
    const char *time_zone; /* IANA name ("Europe/Berlin"); NULL or "": UTC */
    /* With time_zone: local "YYYY-MM-DDTHH:MM:SS" (no offset). Without: RFC 3339 with an
     * offset. NULL or "": start_default_ms. */
    const char *start;
    const char *end;               /* same form as start; NULL or "": no end */
    const char *const *recurrence; /* "RRULE:..." lines (DTSTART/DTEND refused) */
    size_t n_recurrence;           /* 0..TSR_RELOAD_MAX_RECURRENCE */
    int64_t start_default_ms;      /* wall ms used when start is empty */
} tsr_reload_sched_spec_t;

/* Parse and validate a schedule. n_recurrence 0 means "fire once at start" when a start is
 * given, and "no schedule" (every next is NEVER) when neither is. TSR_EINVAL with the bad
 * field named (timeZone, startDateTime, endDateTime, recurrence[i]). *out: returned-owned,
 * tsr_reload_sched_destroy. */
tsr_err_t tsr_reload_sched_create(const tsr_reload_sched_spec_t *spec, tsr_reload_sched_t **out,
                                  tsr_error_t *err);
void tsr_reload_sched_destroy(tsr_reload_sched_t *s); /* NULL: no-op */

/* The first fire strictly after after_ms (wall ms, UTC), or TSR_RELOAD_NEVER. Local times are
 * turned into instants as RFC 5545 §3.3.5 says: a local time skipped by a spring-forward gap
 * is taken with the offset before the gap (02:30 in a 02:00→03:00 gap fires at 03:30 local,
 * once); a local time that occurs twice at fall-back fires once, at its first occurrence. */
int64_t tsr_reload_sched_next(const tsr_reload_sched_t *s, int64_t after_ms);

/* Local wall time → instant in zone tz (rules above). local_s: seconds of the local calendar
 * time counted as if it were UTC. TSR_EINVAL for an unknown zone. For tests and tools. */
tsr_err_t tsr_reload_tz_local_to_utc(const char *tz, int64_t local_s, int64_t *utc_s,
                                     tsr_error_t *err);

/* After downtime. */
typedef enum {
    TSR_RELOAD_MISFIRE_RUN_ONCE = 0, /* fire once for everything missed, then continue */
    TSR_RELOAD_MISFIRE_SKIP = 1      /* drop fires more than grace late, then continue */
} tsr_reload_misfire_t;

/* What the scheduler does with a task whose stored next fire time is due. */
typedef struct {
    bool fire;            /* queue a reload for scheduled_ms */
    int64_t scheduled_ms; /* the idempotency key's time: always the stored next fire */
    unsigned missed;      /* further slots <= now that are folded into this decision */
    int64_t next_ms;      /* the new stored next fire (> now), or TSR_RELOAD_NEVER */
} tsr_reload_decision_t;

/* Pure: decide for a task whose stored next fire is due_ms (<= now_ms). The key time is
 * due_ms whatever now is, so two leaders deciding from the same stored state agree.
 * RUN_ONCE fires once (key due_ms) however late; SKIP fires only when now_ms - due_ms <=
 * grace_ms. Either way next_ms is the first slot after now_ms. */
void tsr_reload_decide(const tsr_reload_sched_t *s, int64_t due_ms, int64_t now_ms,
                       tsr_reload_misfire_t policy, int64_t grace_ms, tsr_reload_decision_t *out);

/* Chained triggers: run a task when another task's reload ends. */
typedef enum {
    TSR_RELOAD_ON_SUCCEEDED = 0,
    TSR_RELOAD_ON_FAILED = 1, /* FAILED or EXCEEDED_LIMIT */
    TSR_RELOAD_ON_ANY = 2     /* any terminal status but CANCELED */
} tsr_reload_trigger_on_t;

/* Whether a reload ending in status (a terminal status name) fires a trigger of kind on. */
bool tsr_reload_trigger_matches(tsr_reload_trigger_on_t on, const char *status);

/* Auto-suspend: the new count of consecutive failures after a result, and whether the task
 * must now be suspended (count reached max_failures; 0 disables the rule). */
unsigned tsr_reload_failures_after(unsigned failures, bool succeeded, unsigned max_failures,
                                   bool *suspend);

/* ---- the service ----------------------------------------------------------------------------- */

typedef struct tsr_reload tsr_reload_t;

/* The caller of a request, from the ingress's headers. Strings borrowed. */
typedef struct {
    const char *tenant;
    const char *user;
    const char *roles; /* comma-separated platform roles */
    const char *token; /* the platform JWT (X-Tsr-Token), may be NULL */
} tsr_reload_caller_t;

/* Access decision: TSR_OK when the caller may reload app_id, TSR_ENOTFOUND when the app does
 * not exist or is not visible to the caller, TSR_EFORBIDDEN when visible but not reloadable,
 * TSR_EUNAVAILABLE when the decision cannot be made. Called on server threads. */
typedef tsr_err_t (*tsr_reload_access_fn)(void *ud, const tsr_reload_caller_t *who,
                                          const char *app_id, tsr_error_t *err);

/* An access function asking spaces (GET <base_url>/internal/v1/access?resource=app:<id>,
 * principal headers forwarded): the "actions" array must hold "reload". Pass
 * tsr_reload_access_spaces as fn and a heap copy of base_url (freed by tsr_reload_destroy
 * when access_ud_free is set) as ud. */
tsr_err_t tsr_reload_access_spaces(void *base_url, const tsr_reload_caller_t *who,
                                   const char *app_id, tsr_error_t *err);

typedef struct {
    tsr_store_t *store; /* borrowed; opened with tsr_reload_collections() */
    /* NULL: every app is reloadable (tests, no spaces). Answers (allowed, forbidden, not
     * found) are cached per caller and app for at most access_ttl_ms and dropped by the
     * space, app and identity events of their tenant (tsr_reload_access_events_start). */
    tsr_reload_access_fn access;
    void *access_ud;
    bool access_ud_free;          /* free(access_ud) at destroy */
    int64_t access_ttl_ms;        /* 0: 10000; < 0: no cache */
    unsigned tenant_max_active;   /* active reloads per tenant before 429; 0: 10 */
    unsigned max_failures;        /* consecutive failures before a task is suspended; 0: 5 */
    tsr_reload_misfire_t misfire; /* default policy of tasks that do not say */
    int64_t misfire_grace_ms;     /* how late a SKIP task may still fire; 0: 60000 */
    const char *owner;            /* this replica's name for leases (copied); NULL: random */
    int64_t lease_ttl_ms;         /* scheduler leader lease; 0: 10000 */
    /* A RELOADING reload whose run lease has been expired this long (no worker retried it)
     * is queued again by the leader; 0: 60000. */
    int64_t stuck_grace_ms;
    int64_t (*now_ms)(void); /* clock; NULL: tsr_wall_ms (tests pass a fake) */
} tsr_reload_opts_t;

/* The collections the store must be opened with. Static storage. */
const tsr_store_collection_t *tsr_reload_collections(size_t *n);

/* Create the service. *out: returned-owned, tsr_reload_destroy. Thread safe after creation. */
tsr_err_t tsr_reload_create(const tsr_reload_opts_t *opts, tsr_reload_t **out, tsr_error_t *err);
/* Stop the scheduler thread if running, free. NULL: no-op. */
void tsr_reload_destroy(tsr_reload_t *r);

/* Register the HTTP routes; ud is the tsr_reload_t (borrowed, outlives h). */
tsr_err_t tsr_reload_routes(tsr_httpd_t *h, void *ud, tsr_error_t *err);
/* The i-th route; false past the end (for the OpenAPI contract check). */
bool tsr_reload_route_at(size_t i, const char **method, const char **pattern);
/* Principal hook: X-Tsr-Tenant-Id and X-Tsr-User-Id must be present and well formed. */
tsr_err_t tsr_reload_principal(tsr_req_t *req, void *ud, const char **principal, tsr_error_t *err);
/* Readiness: the store answers. */
tsr_err_t tsr_reload_ready(void *ud, tsr_error_t *err);

/* Queue a reload (the domain call behind POST /api/v1/reloads). type: "external" for the
 * API. *out: the stored reload, returned-owned. TSR_ECONFLICT when the app already has an
 * active reload (one at a time per app), TSR_ERATELIMITED past the tenant's active limit. */
tsr_err_t tsr_reload_request(tsr_reload_t *r, const tsr_reload_caller_t *who, const char *app_id,
                             bool partial, const char *type, json_t **out, tsr_error_t *err);

/* ---- scheduler ------------------------------------------------------------------------------- */

/* One scheduler round: take or renew the leader lease; when leader, fire every due task of
 * every tenant (each (task, scheduled time) at most once, recorded in reload_fires together
 * with the reload and its event), and queue again (a new reload.requested) every RELOADING
 * reload whose run lease lapsed more than stuck_grace_ms ago, so that a reload never stays
 * stuck when its worker died and nobody redelivered it. *leader (may be NULL) says whether this
 * replica led, *fired (may be NULL) how many reloads were queued. */
tsr_err_t tsr_reload_scheduler_tick(tsr_reload_t *r, bool *leader, unsigned *fired,
                                    tsr_error_t *err);
/* Run ticks every interval_ms on a background thread until tsr_reload_destroy / stop. */
tsr_err_t tsr_reload_scheduler_start(tsr_reload_t *r, int interval_ms, tsr_error_t *err);
/* Stop the thread and release the leader lease (another replica takes over at once). */
void tsr_reload_scheduler_stop(tsr_reload_t *r);

/* A reload ended (the reload.finished event, or a direct call): update its task (failure
 * count, auto-suspend with event, last execution) and fire tasks chained to it. Idempotent:
 * applying the same finished reload twice changes nothing more. TSR_ENOTFOUND for an
 * unknown reload. */
tsr_err_t tsr_reload_on_finished(tsr_reload_t *r, const char *tenant, const char *reload_id,
                                 tsr_error_t *err);

/* An app was deleted (com.tessera.v1.app.deleted on tessera.apps): delete its reload tasks,
 * each with a reload.task.deleted event. Idempotent. */
tsr_err_t tsr_reload_on_app_deleted(tsr_reload_t *r, const char *tenant, const char *app_id,
                                    tsr_error_t *err);

/* Forget every cached access decision. Thread safe. */
void tsr_reload_access_invalidate(tsr_reload_t *r);

/* Forget the cached access decisions of tenant (of app only when not NULL); other tenants'
 * stay. Returns how many were dropped. An answer being asked meanwhile is not kept. Thread
 * safe. */
size_t tsr_reload_access_invalidate_tenant(tsr_reload_t *r, const char *tenant, const char *app);

/* Apply one event of spaces or identity to the access cache: an app event
 * (com.tessera.v1.app.*) drops that app's decisions (its subject) in the event's tenant; a
 * space or membership event (space.*, space.member.*) and identity changes (group.*, role.*,
 * tenant.*, user.{updated,deleted}) drop the tenant's; anything else nothing. Returns how many
 * were dropped. */
size_t tsr_reload_access_on_event(tsr_reload_t *r, const tsr_event_t *ev);

typedef struct tsr_reload_access_events tsr_reload_access_events_t;

/* Consume tessera.spaces, tessera.apps and tessera.identity in a consumer group of this process
 * alone ("reload-access-<host>-<pid>-<random>", from the topics' end: every replica sees every
 * event) and apply each with tsr_reload_access_on_event; once the group assigned the
 * partitions the whole cache is dropped (an answer kept before may have missed an event). r is
 * borrowed. *out: tsr_reload_access_events_stop. */
tsr_err_t tsr_reload_access_events_start(tsr_reload_t *r, const char *bootstrap,
                                         tsr_reload_access_events_t **out, tsr_error_t *err);
/* Stop the thread, leave the group, free. NULL: no-op. */
void tsr_reload_access_events_stop(tsr_reload_access_events_t *k);

/* ---- Kafka wiring (service side) ------------------------------------------------------------- */

/* The reload service's side: consume tessera.reloads.results and tessera.apps in group
 * "reload" (one replica handles each event); apply each com.tessera.v1.reload.finished with
 * tsr_reload_on_finished (auto-suspend, chains) and each com.tessera.v1.app.deleted with
 * tsr_reload_on_app_deleted. The access cache is each replica's own: see
 * tsr_reload_access_events_start.
 * r is borrowed. *out: tsr_reload_consumer_stop. */
tsr_err_t tsr_reload_results_start(tsr_reload_t *r, const char *bootstrap,
                                   tsr_reload_consumer_t **out, tsr_error_t *err);

#ifdef __cplusplus
}
#endif
#endif
