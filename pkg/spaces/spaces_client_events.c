/*
 * pkg/spaces client: keeping a service's cache of spaces' access decisions current by events
 * (the engine's answers, reload's decisions). Which events touch which entries, and the
 * per-process consumer thread; each service keeps its own cache and how to drop from it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "spaces_client.h"

/* ---- which entries an event touches ------------------------------------------------------- */

static bool has_prefix(const char *s, const char *p) {
    return strncmp(s, p, strlen(p)) == 0;
}

bool tsr_spaces_access_scope(const tsr_event_t *ev, const char **app_id) {
    tsr_event_type_t t;
    tsr_error_t err;
    *app_id = NULL;
    if (ev == NULL || ev->type == NULL || ev->tenantid == NULL || ev->tenantid[0] == '\0' ||
        tsr_event_type_parse(ev->type, &t, &err) != TSR_OK) {
        return false;
    }
    if (strcmp(t.domain, "app") == 0) {
        /* created/updated (moved, owner changed)/deleted/published: that app only. */
        if (ev->subject != NULL && ev->subject[0] != '\0') {
            *app_id = ev->subject;
        }
        return true;
    }
    /* spaces' answer does not carry the space, and a tenant's entries are cheap to ask again:
     * a space, membership or identity event drops the whole tenant's. */
    return strcmp(t.domain, "space") == 0 || has_prefix(t.domain, "space.") ||
           strcmp(t.domain, "group") == 0 || strcmp(t.domain, "role") == 0 ||
           strcmp(t.domain, "tenant") == 0 ||
           (strcmp(t.domain, "user") == 0 &&
            (strcmp(t.action, "updated") == 0 || strcmp(t.action, "deleted") == 0));
}

/* ---- the consumer ------------------------------------------------------------------------- */

struct tsr_spaces_access_events {
    tsr_spaces_access_drop_fn drop;
    void (*event)(void *ud, const tsr_event_t *ev);
    void *ud;
    const char *noun;
    tsr_events_consumer_t *c;
    pthread_t thread;
    bool running;
    atomic_bool stop;
};

static const char *const TOPICS[] = {"tessera.spaces", "tessera.apps", "tessera.identity"};

static tsr_err_t pass_through(void *ctx, const char *group, const char *event_id,
                              tsr_events_effect_cb effect, void *effect_opaque, bool *applied,
                              tsr_error_t *err) {
    (void)ctx;
    (void)group;
    (void)event_id;
    tsr_err_t rc = effect(effect_opaque, NULL, err);
    *applied = rc == TSR_OK;
    return rc;
}

static tsr_err_t on_event(void *opaque, const tsr_event_t *ev, void *txn, tsr_error_t *err) {
    tsr_spaces_access_events_t *k = opaque;
    (void)txn;
    (void)err;
    const char *app = NULL;
    if (tsr_spaces_access_scope(ev, &app)) {
        /* Logged even when nothing was kept: the line shows the event reached this process. */
        size_t n = k->drop(k->ud, ev->tenantid, app);
        tsr_log_ctx_t ctx = {.tenant_id = ev->tenantid};
        tsr_log_info(&ctx, "access cache: %s %s dropped %zu %s", ev->type,
                     ev->subject != NULL ? ev->subject : "", n, k->noun);
        if (k->event != NULL) {
            k->event(k->ud, ev);
        }
    }
    return TSR_OK;
}

static void *consumer_main(void *arg) {
    tsr_spaces_access_events_t *k = arg;
    bool assigned = false;
    while (!atomic_load(&k->stop)) {
        tsr_error_t err;
        tsr_error_clear(&err);
        tsr_err_t rc = tsr_events_consumer_poll(k->c, 200, NULL, &err);
        if (rc != TSR_OK && rc != TSR_ECANCELED) {
            tsr_log_warn(NULL, "access events consumer: %s", err.msg);
        }
        if (!assigned && tsr_events_consumer_is_assigned(k->c, NULL)) {
            /* Answers kept before the group gave us the partitions may have missed an event:
             * forget them all once; from here on every event is seen. */
            assigned = true;
            size_t n = k->drop(k->ud, NULL, NULL);
            if (n > 0) {
                tsr_log_info(NULL, "access cache: events consumer assigned (%zu %s dropped)", n,
                             k->noun);
            } else {
                tsr_log_info(NULL, "access cache: events consumer assigned");
            }
        }
    }
    return NULL;
}

tsr_err_t tsr_spaces_access_events_start(const tsr_spaces_access_events_opts_t *opts,
                                         tsr_spaces_access_events_t **out, tsr_error_t *err) {
    char group[256], who[160], rnd[25];
    if (opts == NULL || opts->bootstrap == NULL || opts->bootstrap[0] == '\0' ||
        opts->drop == NULL || opts->group_prefix == NULL || out == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "access events: cache and bootstrap required");
    }
    *out = NULL;
    const char *member = opts->member;
    if (member == NULL || member[0] == '\0') {
        char host[64] = "host";
        (void)gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = '\0';
        snprintf(who, sizeof who, "%s-%ld", host, (long)getpid());
        member = who;
    }
    tsr_id_new(rnd);
    /* A group of this process alone; the random part keeps a restarted process (same pid in a
     * container) from resuming a dead one's offsets. */
    snprintf(group, sizeof group, "%.64s-%.160s-%s", opts->group_prefix, member, rnd);
    static const char *const extra[] = {"auto.offset.reset", "latest", NULL};
    tsr_spaces_access_events_t *k = tsr_xcalloc(1, sizeof *k);
    k->drop = opts->drop;
    k->event = opts->event;
    k->ud = opts->ud;
    k->noun = opts->noun != NULL ? opts->noun : "entries";
    tsr_events_consumer_opts_t o = {.bootstrap = opts->bootstrap,
                                    .group = group,
                                    .topics = TOPICS,
                                    .n_topics = sizeof TOPICS / sizeof TOPICS[0],
                                    .client_id = opts->client_id,
                                    .handler = on_event,
                                    .handler_opaque = k,
                                    .dedupe = {.ctx = NULL, .apply_once = pass_through},
                                    .commit_every = 100,
                                    .extra_conf = extra};
    tsr_err_t rc = tsr_events_consumer_create(&o, &k->c, err);
    if (rc != TSR_OK) {
        free(k);
        return rc;
    }
    if (pthread_create(&k->thread, NULL, consumer_main, k) != 0) {
        tsr_events_consumer_destroy(k->c);
        free(k);
        return tsr_error_set(err, TSR_EINTERNAL, "access events: cannot start the thread");
    }
    k->running = true;
    tsr_log_info(NULL, "access cache: invalidated by events of group %s", group);
    *out = k;
    return TSR_OK;
}

bool tsr_spaces_access_events_ready(tsr_spaces_access_events_t *k) {
    return k != NULL && tsr_events_consumer_is_assigned(k->c, NULL);
}

void tsr_spaces_access_events_stop(tsr_spaces_access_events_t *k) {
    if (k == NULL) {
        return;
    }
    atomic_store(&k->stop, true);
    tsr_events_consumer_stop(k->c);
    if (k->running) {
        pthread_join(k->thread, NULL);
    }
    tsr_events_consumer_destroy(k->c);
    free(k);
}
