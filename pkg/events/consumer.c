/*
 * pkg/events consumer: a consumer-group member that applies each message through the store's
 * processed-event-id set, retries failures with exponential backoff in place (so a key's order
 * holds), dead-letters after max_attempts, and stores then commits a message's offset only
 * after its effect (or its dead-letter copy) is durable. Auto-commit is off; a crash between
 * effect and commit redelivers the message, and the dedupe set makes the redelivery a no-op.
 */
#include "events_int.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

struct tsr_events_consumer {
    rd_kafka_t *rk;
    tsr_events_producer_t *dlq; /* dead-letter producer, owned */
    char *group;
    char *dlq_topic;
    tsr_events_handler_cb handler;
    void *handler_opaque;
    tsr_events_dedupe_t dedupe;
    int max_attempts;
    int backoff_initial_ms;
    int backoff_max_ms;
    int commit_every;
    int uncommitted; /* offsets stored since the last commit; consumer thread only */
    atomic_bool stop;
    atomic_bool assigned;
    atomic_int partitions;
    _Atomic uint64_t n_applied, n_duplicates, n_skipped, n_retries, n_dead;
};

typedef struct {
    tsr_events_consumer_t *c;
    const tsr_event_t *ev;
} effect_ctx_t;

static void commit_stored(tsr_events_consumer_t *c) {
    if (c->uncommitted == 0) {
        return;
    }
    rd_kafka_resp_err_t e = rd_kafka_commit(c->rk, NULL, 0);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR || e == RD_KAFKA_RESP_ERR__NO_OFFSET) {
        c->uncommitted = 0;
    } else {
        /* offsets stay stored and go with the next commit; a redelivery is deduped */
        tsr_log_warn(NULL, "kafka commit failed (will retry): %s", rd_kafka_err2str(e));
    }
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    tsr_events_consumer_t *c = opaque;
    bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (cooperative) {
            rd_kafka_error_t *x = rd_kafka_incremental_assign(rk, parts);
            if (x != NULL) {
                rd_kafka_error_destroy(x);
            }
            atomic_fetch_add(&c->partitions, parts->cnt);
        } else {
            rd_kafka_assign(rk, parts);
            atomic_store(&c->partitions, parts->cnt);
        }
        atomic_store(&c->assigned, true);
        tsr_log_info(NULL, "kafka group %s: assigned %d partitions", c->group, parts->cnt);
    } else {
        /* Commit what is done before the partitions move, so the next owner starts after it. */
        commit_stored(c);
        if (cooperative) {
            rd_kafka_error_t *x = rd_kafka_incremental_unassign(rk, parts);
            if (x != NULL) {
                rd_kafka_error_destroy(x);
            }
            atomic_fetch_sub(&c->partitions, parts->cnt);
        } else {
            rd_kafka_assign(rk, NULL);
            atomic_store(&c->partitions, 0);
        }
        c->uncommitted = 0;
        tsr_log_info(NULL, "kafka group %s: revoked %d partitions (%s)", c->group, parts->cnt,
                     rd_kafka_err2name(e));
    }
}

static void consumer_error_cb(rd_kafka_t *rk, int e, const char *reason, void *opaque) {
    (void)rk;
    (void)opaque;
    tsr_log_warn(NULL, "kafka consumer: %s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)e), reason);
}

tsr_err_t tsr_events_consumer_create(const tsr_events_consumer_opts_t *opts,
                                     tsr_events_consumer_t **out, tsr_error_t *err) {
    tsr_err_t rc;
    char errstr[512];
    char num[32];
    rd_kafka_topic_partition_list_t *subs = NULL;
    *out = NULL;
    if (opts == NULL || opts->bootstrap == NULL || opts->group == NULL || opts->topics == NULL ||
        opts->n_topics == 0 || opts->handler == NULL || opts->dedupe.apply_once == NULL) {
        return tsr_error_set(err, TSR_EINVAL,
                             "consumer: bootstrap, group, topics, handler and dedupe required");
    }
    tsr_events_consumer_t *c = tsr_xcalloc(1, sizeof *c);
    c->group = tsr_xstrdup(opts->group);
    c->dlq_topic = tsr_xstrdup(opts->dlq_topic ? opts->dlq_topic : TSR_EVENTS_TOPIC_DLQ);
    c->handler = opts->handler;
    c->handler_opaque = opts->handler_opaque;
    c->dedupe = opts->dedupe;
    c->max_attempts = opts->max_attempts > 0 ? opts->max_attempts : 5;
    c->backoff_initial_ms = opts->backoff_initial_ms > 0 ? opts->backoff_initial_ms : 100;
    c->backoff_max_ms = opts->backoff_max_ms > 0 ? opts->backoff_max_ms : 5000;
    c->commit_every = opts->commit_every > 0 ? opts->commit_every : 1;
    atomic_init(&c->stop, false);
    atomic_init(&c->assigned, false);
    atomic_init(&c->partitions, 0);

    tsr_events_producer_opts_t popts = {
        .bootstrap = opts->bootstrap, .client_id = opts->client_id, .extra_conf = opts->extra_conf};
    rc = tsr_events_producer_create(&popts, &c->dlq, err);
    if (rc != TSR_OK) {
        goto fail;
    }

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    snprintf(num, sizeof num, "%d",
             opts->session_timeout_ms > 0 ? opts->session_timeout_ms : 10000);
    if ((rc = tsr_events__conf_set(conf, "bootstrap.servers", opts->bootstrap, err)) != TSR_OK ||
        (rc = tsr_events__conf_set(conf, "group.id", opts->group, err)) != TSR_OK ||
        (rc = tsr_events__conf_set(conf, "client.id", opts->client_id ? opts->client_id : "tessera",
                                   err)) != TSR_OK ||
        (rc = tsr_events__conf_set(conf, "enable.auto.commit", "false", err)) != TSR_OK ||
        (rc = tsr_events__conf_set(conf, "enable.auto.offset.store", "false", err)) != TSR_OK ||
        (rc = tsr_events__conf_set(conf, "auto.offset.reset", "earliest", err)) != TSR_OK ||
        (rc = tsr_events__conf_set(conf, "session.timeout.ms", num, err)) != TSR_OK ||
        (rc = tsr_events__conf_set(conf, "heartbeat.interval.ms", "1000", err)) != TSR_OK ||
        /* a real broker answers a fetch as soon as data arrives; devkafka's mock broker
         * holds it for the full wait, which would be the end-to-end latency floor */
        (rc = tsr_events__conf_set(conf, "fetch.wait.max.ms", "100", err)) != TSR_OK ||
        (rc = tsr_events__conf_set(conf, "isolation.level", "read_committed", err)) != TSR_OK ||
        (rc = tsr_events__conf_extra(conf, opts->extra_conf, err)) != TSR_OK) {
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_error_cb(conf, consumer_error_cb);
    rd_kafka_conf_set_log_cb(conf, tsr_events__log_cb);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (c->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        rc = tsr_error_set(err, TSR_EINVAL, "consumer: %s", errstr);
        goto fail;
    }
    rd_kafka_poll_set_consumer(c->rk);
    subs = rd_kafka_topic_partition_list_new((int)opts->n_topics);
    for (size_t i = 0; i < opts->n_topics; i++) {
        rd_kafka_topic_partition_list_add(subs, opts->topics[i], RD_KAFKA_PARTITION_UA);
    }
    rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rc = tsr_error_set(err, TSR_EINVAL, "consumer: subscribe: %s", rd_kafka_err2str(e));
        goto fail;
    }
    *out = c;
    return TSR_OK;
fail:
    if (c->rk != NULL) {
        rd_kafka_destroy(c->rk);
    }
    tsr_events_producer_destroy(c->dlq);
    free(c->group);
    free(c->dlq_topic);
    free(c);
    return rc;
}

static tsr_err_t effect_cb(void *opaque, void *txn, tsr_error_t *err) {
    effect_ctx_t *x = opaque;
    return x->c->handler(x->c->handler_opaque, x->ev, txn, err);
}

/* Sleep ms in short slices; false when stop was requested meanwhile. */
static bool sleep_unless_stopped(tsr_events_consumer_t *c, int ms) {
    uint64_t until = tsr_mono_ms() + (uint64_t)ms;
    while (!atomic_load(&c->stop)) {
        uint64_t now = tsr_mono_ms();
        if (now >= until) {
            return true;
        }
        uint64_t left = until - now;
        struct timespec ts = {0, (long)(left < 50 ? left : 50) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return false;
}

static int backoff_ms(const tsr_events_consumer_t *c, int attempt) {
    int64_t d = c->backoff_initial_ms;
    for (int i = 1; i < attempt && d < c->backoff_max_ms; i++) {
        d *= 2;
    }
    if (d > c->backoff_max_ms) {
        d = c->backoff_max_ms;
    }
    /* equal jitter: members that failed together do not retry in lockstep */
    uint32_t r;
    tsr_random_fill(&r, sizeof r);
    return (int)(d / 2 + (int64_t)(r % (uint32_t)(d / 2 + 1)));
}

static void add_header(rd_kafka_headers_t *h, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add_header(rd_kafka_headers_t *h, const char *name, const char *fmt, ...) {
    char v[TSR_ERROR_MSG_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof v, fmt, ap);
    va_end(ap);
    rd_kafka_header_add(h, name, -1, v, -1);
}

/* Copy m to the dead-letter topic with the error attached; retried until it is acknowledged,
 * because committing past a message that is neither applied nor parked would lose it. */
static tsr_err_t dead_letter(tsr_events_consumer_t *c, const rd_kafka_message_t *m, tsr_err_t code,
                             const char *why, int attempts, tsr_error_t *err) {
    char *key = m->key != NULL ? tsr_xstrndup(m->key, m->key_len) : NULL;
    tsr_err_t rc = TSR_OK;
    for (int round = 1;; round++) {
        rd_kafka_headers_t *h = rd_kafka_headers_new(8);
        add_header(h, "tsr-error", "%s", why);
        add_header(h, "tsr-error-code", "%s", tsr_strerror(code));
        add_header(h, "tsr-attempts", "%d", attempts);
        add_header(h, "tsr-original-topic", "%s", rd_kafka_topic_name(m->rkt));
        add_header(h, "tsr-original-partition", "%d", (int)m->partition);
        add_header(h, "tsr-original-offset", "%lld", (long long)m->offset);
        add_header(h, "tsr-group", "%s", c->group);
        tsr_events_msg_t dm = {0};
        dm.topic = c->dlq_topic;
        dm.key = key;
        dm.payload = m->payload != NULL ? m->payload : "";
        dm.payload_len = m->len;
        tsr_error_t derr;
        rc = tsr_events__producer_send_headers(c->dlq, &dm, h, &derr);
        if (rc == TSR_OK) {
            atomic_fetch_add(&c->n_dead, 1);
            tsr_log_warn(NULL, "event dead-lettered to %s after %d attempts: %s", c->dlq_topic,
                         attempts, why);
            break;
        }
        tsr_log_error(NULL, "dead-letter write failed (round %d): %s", round, derr.msg);
        if (!sleep_unless_stopped(c, backoff_ms(c, round))) {
            rc =
                tsr_error_set(err, TSR_EUNAVAILABLE, "dead-letter topic unreachable: %s", derr.msg);
            break;
        }
    }
    free(key);
    return rc;
}

static tsr_err_t process(tsr_events_consumer_t *c, const rd_kafka_message_t *m, tsr_error_t *err) {
    tsr_event_t ev;
    tsr_error_t perr;
    tsr_err_t rc = tsr_event_parse(m->payload ? m->payload : "", m->len, &ev, &perr);
    if (rc != TSR_OK) {
        /* malformed: retrying cannot help */
        rc = dead_letter(c, m, rc, perr.msg, 0, err);
        if (rc != TSR_OK) {
            return rc;
        }
    } else {
        for (int attempt = 1;; attempt++) {
            effect_ctx_t x = {c, &ev};
            bool applied = false;
            tsr_error_t herr;
            tsr_error_clear(&herr);
            rc = c->dedupe.apply_once(c->dedupe.ctx, c->group, ev.id, effect_cb, &x, &applied,
                                      &herr);
            if (rc == TSR_OK) {
                atomic_fetch_add(applied ? &c->n_applied : &c->n_duplicates, 1);
                break;
            }
            if (rc == TSR_EUNSUPPORTED) {
                atomic_fetch_add(&c->n_skipped, 1);
                tsr_log_info(NULL, "event %s of type %s skipped: %s", ev.id, ev.type, herr.msg);
                rc = TSR_OK;
                break;
            }
            if (attempt >= c->max_attempts) {
                rc = dead_letter(c, m, rc, herr.msg, attempt, err);
                break;
            }
            atomic_fetch_add(&c->n_retries, 1);
            tsr_log_warn(NULL, "event %s attempt %d failed (%s), retrying", ev.id, attempt,
                         herr.msg);
            if (!sleep_unless_stopped(c, backoff_ms(c, attempt))) {
                rc = tsr_error_set(err, TSR_ECANCELED, "stopped while retrying event %s", ev.id);
                break;
            }
        }
        tsr_event_cleanup(&ev);
        if (rc != TSR_OK) {
            return rc;
        }
    }
    /* The effect (or the parked copy) is durable; a crash from here on redelivers. */
    tsr_events_faultpoint("consumer.after_effect");
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)->offset =
        m->offset + 1;
    rd_kafka_resp_err_t e = rd_kafka_offsets_store(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        /* partition no longer ours: its next owner will redeliver, and dedupe skips it */
        tsr_log_warn(NULL, "offset store: %s", rd_kafka_err2str(e));
        return TSR_OK;
    }
    if (++c->uncommitted >= c->commit_every) {
        commit_stored(c);
    }
    return TSR_OK;
}

tsr_err_t tsr_events_consumer_poll(tsr_events_consumer_t *c, int timeout_ms, bool *processed,
                                   tsr_error_t *err) {
    if (processed != NULL) {
        *processed = false;
    }
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, timeout_ms);
    if (m == NULL) {
        commit_stored(c);
        return TSR_OK;
    }
    tsr_err_t rc = TSR_OK;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            tsr_log_warn(NULL, "kafka consume: %s", rd_kafka_message_errstr(m));
        }
    } else {
        rc = process(c, m, err);
        if (processed != NULL) {
            *processed = rc == TSR_OK;
        }
    }
    rd_kafka_message_destroy(m);
    return rc;
}

tsr_err_t tsr_events_consumer_run(tsr_events_consumer_t *c, tsr_error_t *err) {
    while (!atomic_load(&c->stop)) {
        tsr_err_t rc = tsr_events_consumer_poll(c, 200, NULL, err);
        if (rc != TSR_OK && rc != TSR_ECANCELED) {
            return rc;
        }
    }
    return TSR_OK;
}

void tsr_events_consumer_stop(tsr_events_consumer_t *c) {
    atomic_store(&c->stop, true);
}

bool tsr_events_consumer_is_assigned(tsr_events_consumer_t *c, int *partitions) {
    if (partitions != NULL) {
        *partitions = atomic_load(&c->partitions);
    }
    return atomic_load(&c->assigned);
}

void tsr_events_consumer_stats(tsr_events_consumer_t *c, tsr_events_consumer_stats_t *out) {
    out->applied = atomic_load(&c->n_applied);
    out->duplicates = atomic_load(&c->n_duplicates);
    out->skipped = atomic_load(&c->n_skipped);
    out->retries = atomic_load(&c->n_retries);
    out->dead_lettered = atomic_load(&c->n_dead);
}

void tsr_events_consumer_destroy(tsr_events_consumer_t *c) {
    if (c == NULL) {
        return;
    }
    commit_stored(c);
    /* leaves the group: the revoke callback commits again and the partitions move now rather
     * than after session.timeout.ms */
    rd_kafka_resp_err_t e = rd_kafka_consumer_close(c->rk);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        tsr_log_warn(NULL, "kafka consumer close: %s", rd_kafka_err2str(e));
    }
    rd_kafka_destroy(c->rk);
    tsr_events_producer_destroy(c->dlq);
    free(c->group);
    free(c->dlq_topic);
    free(c);
}
