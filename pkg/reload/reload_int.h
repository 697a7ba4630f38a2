/*
 * pkg/reload internals shared by the module's files: the service struct, collection and
 * topic names, outbox event construction and the public JSON views. Not installed.
 */
#ifndef TSR_RELOAD_INT_H
#define TSR_RELOAD_INT_H

#include <pthread.h>

#include "reload.h"
#include "reload_worker_int.h"

#define TSR_RL__ACCESS_SLOTS 256 /* cached access decisions */
#define TSR_RL__ACCESS_KEY_MAX 384

typedef struct {
    char key[TSR_RL__ACCESS_KEY_MAX]; /* tenant \n user \n roles \n app; "" when free */
    tsr_err_t rc;                     /* TSR_OK, TSR_EFORBIDDEN or TSR_ENOTFOUND */
    char msg[TSR_ERROR_MSG_MAX];
    uint64_t expires_mono_ms;
} tsr_rl__access_slot_t;

struct tsr_reload {
    tsr_store_t *store;
    tsr_reload_access_fn access;
    void *access_ud;
    bool access_ud_free;
    unsigned tenant_max_active;
    unsigned max_failures;
    tsr_reload_misfire_t misfire;
    int64_t misfire_grace_ms;
    int64_t lease_ttl_ms;
    int64_t stuck_grace_ms;
    int64_t (*now_ms)(void);
    char owner[TSR_STORE_LEASE_NAME_MAX + 1];

    int64_t access_ttl_ms;
    pthread_mutex_t access_mu;           /* guards access_cache and access_gen */
    tsr_rl__access_slot_t *access_cache; /* TSR_RL__ACCESS_SLOTS, NULL: no cache */
    uint64_t access_gen; /* bumped by every invalidation: an answer asked across one is not kept */

    pthread_mutex_t mu; /* guards the fields below */
    tsr_store_lease_t leader;
    bool is_leader;
    pthread_t thread;
    bool running;
    bool stopping;
    int interval_ms;
    pthread_cond_t cv;
};

/* Ask the access function (through the cache): TSR_OK when who may reload app. */
tsr_err_t tsr_rl__access(tsr_reload_t *r, const tsr_reload_caller_t *who, const char *app,
                         tsr_error_t *err);

/* Public view of a stored reload (returned-owned). base_url may be NULL (relative links). */
json_t *tsr_rl__reload_view(const json_t *doc, const char *base_url, bool with_log);
/* Public view of a stored task (returned-owned). */
json_t *tsr_rl__task_view(const json_t *doc, const char *base_url);

/* Tasks: validated create/replace and the rest of the CRUD (tasks.c). body borrowed. */
tsr_err_t tsr_rl__task_put(tsr_reload_t *r, const tsr_reload_caller_t *who, const char *id,
                           const json_t *body, json_t **out, tsr_error_t *err);
tsr_err_t tsr_rl__task_get(tsr_reload_t *r, const char *tenant, const char *id, json_t **out,
                           tsr_error_t *err);
tsr_err_t tsr_rl__task_del(tsr_reload_t *r, const tsr_reload_caller_t *who, const char *id,
                           tsr_error_t *err);
/* The schedule of a stored task (returned-owned). */
tsr_err_t tsr_rl__task_sched(const json_t *task, int64_t default_start_ms, tsr_reload_sched_t **out,
                             tsr_error_t *err);

/* Reloads (domain.c). */
tsr_err_t tsr_rl__reload_get(tsr_reload_t *r, const char *tenant, const char *id, json_t **out,
                             tsr_error_t *err);
tsr_err_t tsr_rl__reload_list(tsr_reload_t *r, const char *tenant, const char *app_id,
                              const char *status, size_t limit, const char *cursor,
                              tsr_store_page_t *page, tsr_error_t *err);
/* Cancel: *status_out is the status after the call (CANCELED or CANCELING). TSR_ECONFLICT
 * when the reload had already ended. */
tsr_err_t tsr_rl__reload_cancel(tsr_reload_t *r, const tsr_reload_caller_t *who, const char *id,
                                const char **status_out, tsr_error_t *err);

/* Fire task once under key (the idempotency key: "<taskId>@<ms>" or "<taskId>@r<reloadId>").
 * Creates the fire record, the reload (unless the app is busy) and its event, and when
 * task_patch is given patches the task (compare-and-set on its version) — all in one store
 * transaction. *fired: a reload was queued by this call. */
tsr_err_t tsr_rl__fire(tsr_reload_t *r, const json_t *task, const char *key, int64_t scheduled_ms,
                       unsigned missed, const json_t *task_patch, bool *fired, tsr_error_t *err);

#endif
