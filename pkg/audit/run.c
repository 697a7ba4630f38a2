/*
 * pkg/audit background work: the consumer thread (every topic the catalogue lists "audit" as a
 * consumer of, group "audit", each event applied once through the store's processed set and
 * its offset committed only after the store write) and the maintenance thread (time-based
 * checkpoints under a store lease). Readiness combines the store and the consumer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit_int.h"
#include "log.h"

#define MAX_TOPICS 16

static void set_state(tsr_audit_t *a, const char *msg) {
    pthread_mutex_lock(&a->mu);
    snprintf(a->consumer_state, sizeof a->consumer_state, "%s", msg);
    pthread_mutex_unlock(&a->mu);
}

/* Sleep up to ms, waking early on stop. */
static void nap(tsr_audit_t *a, int ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&a->mu);
    if (!atomic_load(&a->stopping)) {
        pthread_cond_timedwait(&a->cv, &a->mu, &ts);
    }
    pthread_mutex_unlock(&a->mu);
}

static size_t audit_topics(const char **out) {
    size_t n = 0;
    for (const tsr_events_topic_t *t = tsr_events_topics(); t->name != NULL && n < MAX_TOPICS;
         t++) {
        if (t->consumers != NULL && strstr(t->consumers, "audit") != NULL) {
            out[n++] = t->name;
        }
    }
    return n;
}

static void *consumer_main(void *arg) {
    tsr_audit_t *a = arg;
    const char *topics[MAX_TOPICS];
    size_t nt = audit_topics(topics);
    tsr_error_t err = {0};
    while (!atomic_load(&a->stopping)) {
        char *bootstrap = NULL;
        if (a->bootstrap != NULL) {
            bootstrap = tsr_xstrdup(a->bootstrap);
        } else if (tsr_events_bootstrap_resolve(&bootstrap, &err) != TSR_OK) {
            set_state(a, "no Kafka bootstrap configured yet");
            nap(a, 1000);
            continue;
        }
        tsr_events_consumer_opts_t co = {
            .bootstrap = bootstrap,
            .group = TSR_AUDIT_GROUP,
            .topics = topics,
            .n_topics = nt,
            .client_id = a->client_id,
            .handler = tsr_audit_handle_event,
            .handler_opaque = a,
            .dedupe = tsr_audit_dedupe(a),
            .commit_every = 1,
            .extra_conf = a->run.extra_conf,
        };
        tsr_events_consumer_t *c = NULL;
        tsr_err_t rc = tsr_events_consumer_create(&co, &c, &err);
        free(bootstrap);
        if (rc != TSR_OK) {
            tsr_log_warn(NULL, "audit consumer: %s", err.msg);
            set_state(a, "consumer could not be created");
            nap(a, 1000);
            continue;
        }
        pthread_mutex_lock(&a->mu);
        a->consumer = c;
        bool stop_now = atomic_load(&a->stopping);
        pthread_mutex_unlock(&a->mu);
        if (stop_now) {
            tsr_events_consumer_stop(c);
        }
        set_state(a, "waiting for the consumer group assignment");
        while (!atomic_load(&a->stopping)) {
            bool processed = false;
            rc = tsr_events_consumer_poll(c, 200, &processed, &err);
            atomic_store(&a->consumer_assigned, tsr_events_consumer_is_assigned(c, NULL));
            if (rc == TSR_ECANCELED) {
                break;
            }
            if (rc != TSR_OK) {
                tsr_log_warn(NULL, "audit consumer: %s", err.msg);
            }
        }
        pthread_mutex_lock(&a->mu);
        a->consumer = NULL;
        pthread_mutex_unlock(&a->mu);
        atomic_store(&a->consumer_assigned, false);
        /* commits what was processed and leaves the group */
        tsr_events_consumer_destroy(c);
    }
    return NULL;
}

static void *maint_main(void *arg) {
    tsr_audit_t *a = arg;
    int every = a->run.maintain_every_ms > 0 ? a->run.maintain_every_ms : 10000;
    while (!atomic_load(&a->stopping)) {
        tsr_error_t err = {0};
        bool ran = false;
        if (tsr_audit_maintain(a, a->owner, false, &ran, &err) != TSR_OK) {
            tsr_log_warn(NULL, "audit maintenance: %s", err.msg);
        }
        nap(a, every);
    }
    return NULL;
}

tsr_err_t tsr_audit_start(tsr_audit_t *a, const tsr_audit_run_opts_t *opts, tsr_error_t *err) {
    char owner[64];
    if (a->started) {
        return tsr_error_set(err, TSR_EINVAL, "audit: already started");
    }
    if (opts != NULL) {
        a->run = *opts;
    }
    a->bootstrap = a->run.bootstrap != NULL ? tsr_xstrdup(a->run.bootstrap) : NULL;
    a->client_id = tsr_xstrdup(a->run.client_id != NULL ? a->run.client_id : "tessera-audit");
    snprintf(owner, sizeof owner, "audit-%ld", (long)getpid());
    a->owner = tsr_xstrdup(a->run.owner != NULL ? a->run.owner : owner);
    set_state(a, "consumer starting");
    atomic_store(&a->stopping, false);
    if (pthread_create(&a->consumer_thr, NULL, consumer_main, a) != 0) {
        return tsr_error_set(err, TSR_EINTERNAL, "audit: cannot start the consumer thread");
    }
    if (pthread_create(&a->maint_thr, NULL, maint_main, a) != 0) {
        atomic_store(&a->stopping, true);
        pthread_join(a->consumer_thr, NULL);
        return tsr_error_set(err, TSR_EINTERNAL, "audit: cannot start the maintenance thread");
    }
    a->started = true;
    return TSR_OK;
}

void tsr_audit_stop(tsr_audit_t *a) {
    if (a == NULL || !a->started) {
        return;
    }
    pthread_mutex_lock(&a->mu);
    atomic_store(&a->stopping, true);
    if (a->consumer != NULL) {
        tsr_events_consumer_stop(a->consumer);
    }
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->consumer_thr, NULL);
    pthread_join(a->maint_thr, NULL);
    a->started = false;
}

tsr_err_t tsr_audit_ready(void *ud, tsr_error_t *err) {
    tsr_audit_t *a = ud;
    tsr_err_t rc = tsr_store_ping(a->store, err);
    if (rc != TSR_OK || !a->started) {
        return rc;
    }
    if (!atomic_load(&a->consumer_assigned)) {
        pthread_mutex_lock(&a->mu);
        rc = tsr_error_set(err, TSR_EUNAVAILABLE, "consumer: %s", a->consumer_state);
        pthread_mutex_unlock(&a->mu);
    }
    return rc;
}
