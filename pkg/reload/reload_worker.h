/*
 * pkg/reload worker side (library tsr_reload_worker): the reload run state machine and the
 * reloader role's Kafka consumer. This is what the engine's --role reloader links: it needs
 * pkg/store and pkg/events only, not the reload service (HTTP, schedules, spaces). Reload
 * statuses are shared with the service (reload.h includes this header).
 */
#ifndef TSR_RELOAD_WORKER_H
#define TSR_RELOAD_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- statuses -------------------------------------------------------------------------------- */

/* QUEUED, RELOADING, CANCELING (active); SUCCEEDED, FAILED, CANCELED, EXCEEDED_LIMIT. */
bool tsr_reload_status_is_valid(const char *status);
bool tsr_reload_status_is_terminal(const char *status);

/* ---- the worker state machine ---------------------------------------------------------------- */

typedef struct tsr_reload_run tsr_reload_run_t;

/* What a job sees of its run. Thread safe. */
/* True once the job must stop: cancel requested, run lease lost, or max run time passed. */
bool tsr_reload_run_should_stop(const tsr_reload_run_t *run);
/* The fencing token of this run: pass it to every write the job makes (e.g. the app version
 * pointer switch) so that a write of an older run can be refused. */
uint64_t tsr_reload_run_token(const tsr_reload_run_t *run);
/* The reload's id (borrowed, valid during the job). */
const char *tsr_reload_run_id(const tsr_reload_run_t *run);
/* Append a line (a newline is added) to the reload's log. The log is live: while the job
 * runs it is stored on the reload at most every opts->log_flush_ms (readers of GET
 * /api/v1/reloads/{id} and .../reloads/logs/{id} see it grow), and in full at finish. It is
 * append-only and capped at opts->log_max_bytes: past the cap one marker line
 * (TSR_RELOAD_LOG_TRUNCATED ...) ends it and further text is dropped. */
void tsr_reload_run_log(tsr_reload_run_t *run, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Append len bytes of text as is (no newline added; the caller passes whole lines). */
void tsr_reload_run_log_text(tsr_reload_run_t *run, const char *text, size_t len);

/* The marker line that ends a log cut at its cap. */
#define TSR_RELOAD_LOG_TRUNCATED "\xe2\x80\xa6 truncated: the reload log reached its limit"

/* The job: reload app_id of tenant (partial or not). Return TSR_OK for success; anything else
 * is FAILED with err->msg as errorMessage. Called on the worker's thread. */
typedef tsr_err_t (*tsr_reload_job_fn)(void *ud, tsr_reload_run_t *run, const char *tenant,
                                       const char *app_id, bool partial, tsr_error_t *err);

typedef struct {
    tsr_store_t *store;    /* borrowed; the reload service's store */
    const char *owner;     /* worker name for the run lease (copied); NULL: random */
    int64_t lease_ttl_ms;  /* run lease; 0: 10000 */
    int64_t heartbeat_ms;  /* lease renewal period; 0: lease_ttl_ms / 3 */
    int64_t max_run_ms;    /* run time before EXCEEDED_LIMIT; 0: 3600000 */
    int64_t lease_wait_ms; /* how long run waits for another holder's lease to expire;
                              0: lease_ttl_ms * 2 */
    int64_t log_flush_ms;  /* live log: stored at most this often while the job runs;
                              0: 500 */
    size_t log_max_bytes;  /* log cap before the truncation marker; 0: 256 KiB */
} tsr_reload_worker_opts_t;

typedef enum {
    TSR_RELOAD_RUN_FINISHED = 0, /* this call ran the job and recorded the terminal status */
    TSR_RELOAD_RUN_ALREADY_DONE, /* the reload was terminal already (duplicate delivery) */
    TSR_RELOAD_RUN_REFUSED       /* the lease was lost or a newer run exists: result refused */
} tsr_reload_run_outcome_t;

/* Run reload reload_id of tenant once: take the app's run lease "reload-run/<tenant>/<appId>"
 * (its fencing token becomes the reload's runToken; it grows across all runs of the app's
 * reloads, so it also fences the app's version pointer), mark RELOADING (event reload.started),
 * heartbeat on a second thread, call job, then finish exactly once: one compare-and-set on
 * the reload document that requires runToken to still be ours, setting the terminal status
 * and writing reload.finished to the outbox in the same write. A job that outlived its lease
 * (SIGSTOP, GC pause, partition) finds a newer token and its result is refused
 * (TSR_RELOAD_RUN_REFUSED). A QUEUED reload canceled before start is finished CANCELED
 * without calling job. Returns TSR_ECONFLICT when another worker holds the lease past
 * lease_wait_ms (the message will be redelivered), store errors as is. */
tsr_err_t tsr_reload_worker_run(const tsr_reload_worker_opts_t *opts, const char *tenant,
                                const char *reload_id, tsr_reload_job_fn job, void *job_ud,
                                tsr_reload_run_outcome_t *outcome, tsr_error_t *err);

/* ---- Kafka wiring ---------------------------------------------------------------------------- */

typedef struct tsr_reload_consumer tsr_reload_consumer_t;

/* The reloader role: consume tessera.reloads.requests in consumer group "reloaders" on a
 * background thread and run each com.tessera.v1.reload.requested through
 * tsr_reload_worker_run with job. Messages of one app are one partition's, so one app's
 * reloads run in order; a worker killed mid-reload leaves its message uncommitted, the
 * partition moves to another member and that one retries with the next fencing token.
 * max.poll.interval.ms is set above opts->max_run_ms. opts and bootstrap are copied (the store
 * is borrowed). *out: tsr_reload_consumer_stop. */
tsr_err_t tsr_reload_worker_start(const tsr_reload_worker_opts_t *opts, const char *bootstrap,
                                  tsr_reload_job_fn job, void *job_ud, tsr_reload_consumer_t **out,
                                  tsr_error_t *err);

/* Stop the thread (finishing the current message), leave the group, free. NULL: no-op. */
void tsr_reload_consumer_stop(tsr_reload_consumer_t *c);

#ifdef __cplusplus
}
#endif
#endif
