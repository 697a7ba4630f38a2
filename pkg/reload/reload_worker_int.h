/*
 * pkg/reload internals shared by the worker library's files (and the service's, through
 * reload_int.h): collection and topic names, outbox event construction, the consumer thread.
 */
#ifndef TSR_RELOAD_WORKER_INT_H
#define TSR_RELOAD_WORKER_INT_H

#include <pthread.h>

#include "events.h"
#include "reload_worker.h"

#define TSR_RL__C_RELOADS "reloads"
#define TSR_RL__C_TASKS "reload_tasks"
#define TSR_RL__C_FIRES "reload_fires"
#define TSR_RL__T_REQUESTS "tessera.reloads.requests"
#define TSR_RL__T_RESULTS "tessera.reloads.results"
#define TSR_RL__SOURCE "/tessera/reload"
#define TSR_RL__LEADER_LEASE "reload.scheduler"
#define TSR_RL__LOG_MAX (256 * 1024) /* bytes of reload log kept */

/* One outbox event under construction: owns its payload. */
typedef struct {
    char id[TSR_STORE_ID_MAX + 1];
    char *payload;
    size_t len;
    char *key;
    const char *topic;
} tsr_rl__ev_t;

/* Build com.tessera.v1.<type> for the outbox, keyed by key (the app id). data is taken. */
tsr_err_t tsr_rl__ev_make(tsr_rl__ev_t *e, const char *topic, const char *type, const char *tenant,
                          const char *user, const char *key, json_t *data, tsr_error_t *err);
void tsr_rl__ev_cleanup(tsr_rl__ev_t *e);
/* The store's view of e (borrowed from e). */
tsr_store_event_t tsr_rl__ev_row(const tsr_rl__ev_t *e);

/* RFC 3339 of wall ms into out (25 bytes). */
void tsr_rl__time(int64_t ms, char out[25]);

/* A consumer thread over pkg/events (consume.c); ud is handed to handler's role. */
struct tsr_reload_consumer {
    tsr_events_consumer_t *c;
    pthread_t thread;
    bool running;
    void *ud;                       /* results role: the tsr_reload_t */
    tsr_reload_worker_opts_t wopts; /* worker role */
    char owner[TSR_STORE_LEASE_NAME_MAX + 1];
    tsr_reload_job_fn job;
    void *job_ud;
};

/* Subscribe k to topics (borrowed during the call) in group and run handler (with k as its
 * opaque) on a thread. The dedupe records nothing: every effect here is idempotent by
 * construction. max_poll: max.poll.interval.ms or NULL. */
tsr_err_t tsr_rl__consumer_start(tsr_reload_consumer_t *k, const char *bootstrap, const char *group,
                                 const char *const *topics, size_t n_topics,
                                 tsr_events_handler_cb handler, const char *max_poll,
                                 tsr_error_t *err);

#endif
