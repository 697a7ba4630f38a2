/*
 * pkg/events producer: an idempotent librdkafka producer (enable.idempotence=true, acks=all)
 * with synchronous batch sends for the outbox relay and asynchronous sends for throughput.
 * Invariant: every message handed to librdkafka carries a heap "delivery" record that exactly
 * one delivery report frees; a synchronous send never returns before its reports arrived,
 * which librdkafka guarantees within message.timeout.ms.
 */
#include "events_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct tsr_events_producer {
    rd_kafka_t *rk;
    int delivery_timeout_ms; /* message.timeout.ms */
    pthread_mutex_t mu;      /* guards every batch's pending count */
};

typedef struct {
    size_t pending; /* reports still expected; guarded by the producer's mu */
} batch_t;

typedef struct {
    tsr_events_producer_t *p;
    batch_t *batch;            /* synchronous: the batch to count down, and msg to fill */
    tsr_events_msg_t *msg;     /* synchronous */
    tsr_events_delivery_cb cb; /* asynchronous */
    void *opaque;
} delivery_t;

tsr_err_t tsr_events__conf_set(rd_kafka_conf_t *conf, const char *key, const char *value,
                               tsr_error_t *err) {
    char errstr[512];
    if (rd_kafka_conf_set(conf, key, value, errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
        return tsr_error_set(err, TSR_EINVAL, "kafka config %s: %s", key, errstr);
    }
    return TSR_OK;
}

tsr_err_t tsr_events__conf_extra(rd_kafka_conf_t *conf, const char *const *kv, tsr_error_t *err) {
    for (size_t i = 0; kv != NULL && kv[i] != NULL; i += 2) {
        if (kv[i + 1] == NULL) {
            return tsr_error_set(err, TSR_EINVAL, "kafka config %s: no value", kv[i]);
        }
        tsr_err_t rc = tsr_events__conf_set(conf, kv[i], kv[i + 1], err);
        if (rc != TSR_OK) {
            return rc;
        }
    }
    return TSR_OK;
}

tsr_err_t tsr_events__map_err(rd_kafka_resp_err_t e) {
    switch (e) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return TSR_OK;
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
        return TSR_ETIMEOUT;
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
        return TSR_ECANCELED;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        return TSR_ETOOBIG;
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
        return TSR_ENOTFOUND;
    default:
        return TSR_EUNAVAILABLE;
    }
}

void tsr_events__log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    /* syslog levels: 0..2 are bugs or fatal states; 3..4 are connection errors that the
     * error callback already reports and librdkafka retries; the rest is chatter */
    if (level <= 2) {
        tsr_log_error(NULL, "kafka %s: %s", fac, buf);
    }
}

static void error_cb(rd_kafka_t *rk, int e, const char *reason, void *opaque) {
    (void)rk;
    (void)opaque;
    /* Transport errors are retried by librdkafka; a fatal one is surfaced by the next send. */
    tsr_log_warn(NULL, "kafka producer: %s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)e), reason);
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    delivery_t *d = m->_private;
    tsr_err_t rc = tsr_events__map_err(m->err);
    if (d->msg != NULL) {
        d->msg->result = rc;
        d->msg->partition = m->partition;
        d->msg->offset = m->offset;
        snprintf(d->msg->error, sizeof d->msg->error, "%s", m->err ? rd_kafka_err2str(m->err) : "");
        pthread_mutex_lock(&d->p->mu);
        d->batch->pending--;
        pthread_mutex_unlock(&d->p->mu);
    } else if (d->cb != NULL) {
        d->cb(d->opaque, rc, m->err ? rd_kafka_err2str(m->err) : "");
    }
    free(d);
}

tsr_err_t tsr_events_producer_create(const tsr_events_producer_opts_t *opts,
                                     tsr_events_producer_t **out, tsr_error_t *err) {
    tsr_err_t rc;
    char num[32];
    char errstr[512];
    *out = NULL;
    if (opts == NULL || opts->bootstrap == NULL || opts->bootstrap[0] == '\0') {
        return tsr_error_set(err, TSR_EINVAL, "producer: bootstrap servers required");
    }
    tsr_events_producer_t *p = tsr_xcalloc(1, sizeof *p);
    p->delivery_timeout_ms = opts->delivery_timeout_ms > 0 ? opts->delivery_timeout_ms : 30000;
    pthread_mutex_init(&p->mu, NULL);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    snprintf(num, sizeof num, "%d", p->delivery_timeout_ms);
    if ((rc = tsr_events__conf_set(conf, "bootstrap.servers", opts->bootstrap, err)) != TSR_OK ||
        (rc = tsr_events__conf_set(conf, "client.id", opts->client_id ? opts->client_id : "tessera",
                                   err)) != TSR_OK ||
        (rc = tsr_events__conf_set(conf, "enable.idempotence", "true", err)) != TSR_OK ||
        (rc = tsr_events__conf_set(conf, "acks", "all", err)) != TSR_OK ||
        (rc = tsr_events__conf_set(conf, "message.timeout.ms", num, err)) != TSR_OK ||
        (rc = tsr_events__conf_set(conf, "partitioner", "murmur2_random", err)) != TSR_OK ||
        (rc = tsr_events__conf_set(conf, "linger.ms", "5", err)) != TSR_OK ||
        (rc = tsr_events__conf_extra(conf, opts->extra_conf, err)) != TSR_OK) {
        rd_kafka_conf_destroy(conf);
        goto fail;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_log_cb(conf, tsr_events__log_cb);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (p->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        rc = tsr_error_set(err, TSR_EINVAL, "producer: %s", errstr);
        goto fail;
    }
    *out = p;
    return TSR_OK;
fail:
    pthread_mutex_destroy(&p->mu);
    free(p);
    return rc;
}

static tsr_err_t fatal_check(tsr_events_producer_t *p, tsr_error_t *err) {
    char reason[256];
    rd_kafka_resp_err_t e = rd_kafka_fatal_error(p->rk, reason, sizeof reason);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return tsr_error_set(err, TSR_EUNAVAILABLE, "producer fatal error %s: %s",
                             rd_kafka_err2name(e), reason);
    }
    return TSR_OK;
}

/* Hand one message to librdkafka, waiting for queue room. d and hdrs are taken on success;
 * on failure the caller still owns d and hdrs. */
static rd_kafka_resp_err_t enqueue(tsr_events_producer_t *p, const char *topic, const char *key,
                                   const char *payload, size_t len, rd_kafka_headers_t *hdrs,
                                   delivery_t *d) {
    uint64_t deadline = tsr_mono_ms() + (uint64_t)p->delivery_timeout_ms;
    for (;;) {
        rd_kafka_resp_err_t e;
        if (hdrs != NULL) {
            e = rd_kafka_producev(
                p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
                RD_KAFKA_V_VALUE((void *)payload, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
        } else {
            e = rd_kafka_producev(
                p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
                RD_KAFKA_V_VALUE((void *)payload, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
        }
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || tsr_mono_ms() > deadline) {
            return e;
        }
        rd_kafka_poll(p->rk, 50);
    }
}

static tsr_err_t send_sync(tsr_events_producer_t *p, tsr_events_msg_t *msgs, size_t n,
                           rd_kafka_headers_t *hdrs, tsr_error_t *err) {
    batch_t batch = {0};
    tsr_err_t rc = fatal_check(p, err);
    if (rc != TSR_OK) {
        if (hdrs != NULL) {
            rd_kafka_headers_destroy(hdrs);
        }
        for (size_t i = 0; i < n; i++) {
            msgs[i].result = TSR_EUNAVAILABLE;
        }
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        tsr_events_msg_t *m = &msgs[i];
        m->result = TSR_EUNAVAILABLE;
        m->error[0] = '\0';
        m->partition = -1;
        m->offset = -1;
        delivery_t *d = tsr_xcalloc(1, sizeof *d);
        d->p = p;
        d->batch = &batch;
        d->msg = m;
        pthread_mutex_lock(&p->mu);
        batch.pending++;
        pthread_mutex_unlock(&p->mu);
        rd_kafka_resp_err_t e = enqueue(p, m->topic, m->key, m->payload, m->payload_len, hdrs, d);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            pthread_mutex_lock(&p->mu);
            batch.pending--;
            pthread_mutex_unlock(&p->mu);
            free(d);
            m->result = tsr_events__map_err(e);
            snprintf(m->error, sizeof m->error, "%s", rd_kafka_err2str(e));
            if (hdrs != NULL) {
                rd_kafka_headers_destroy(hdrs);
            }
        }
        hdrs = NULL; /* only ever used with n == 1 */
    }
    for (;;) {
        pthread_mutex_lock(&p->mu);
        size_t left = batch.pending;
        pthread_mutex_unlock(&p->mu);
        if (left == 0) {
            break;
        }
        rd_kafka_poll(p->rk, 20);
    }
    size_t failed = 0;
    const char *first = NULL;
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].result != TSR_OK) {
            if (first == NULL) {
                first = msgs[i].error;
            }
            failed++;
        }
    }
    if (failed > 0) {
        rc = fatal_check(p, err);
        if (rc == TSR_OK) {
            rc = tsr_error_set(err, TSR_EUNAVAILABLE, "%zu of %zu messages not delivered: %s",
                               failed, n, first);
        }
    }
    return rc;
}

tsr_err_t tsr_events_producer_send(tsr_events_producer_t *p, tsr_events_msg_t *msgs, size_t n,
                                   tsr_error_t *err) {
    return send_sync(p, msgs, n, NULL, err);
}

tsr_err_t tsr_events__producer_send_headers(tsr_events_producer_t *p, tsr_events_msg_t *msg,
                                            rd_kafka_headers_t *hdrs, tsr_error_t *err) {
    return send_sync(p, msg, 1, hdrs, err);
}

tsr_err_t tsr_events_producer_send_async(tsr_events_producer_t *p, const char *topic,
                                         const char *key, const char *payload, size_t len,
                                         tsr_events_delivery_cb cb, void *opaque,
                                         tsr_error_t *err) {
    tsr_err_t rc = fatal_check(p, err);
    if (rc != TSR_OK) {
        return rc;
    }
    delivery_t *d = tsr_xcalloc(1, sizeof *d);
    d->p = p;
    d->cb = cb;
    d->opaque = opaque;
    rd_kafka_resp_err_t e = enqueue(p, topic, key, payload, len, NULL, d);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        free(d);
        return tsr_error_set(
            err, tsr_events__map_err(e) == TSR_ETIMEOUT ? TSR_EUNAVAILABLE : tsr_events__map_err(e),
            "produce to %s: %s", topic, rd_kafka_err2str(e));
    }
    return TSR_OK;
}

int tsr_events_producer_poll(tsr_events_producer_t *p, int timeout_ms) {
    return rd_kafka_poll(p->rk, timeout_ms);
}

tsr_err_t tsr_events_producer_flush(tsr_events_producer_t *p, int timeout_ms, tsr_error_t *err) {
    rd_kafka_resp_err_t e = rd_kafka_flush(p->rk, timeout_ms);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return tsr_error_set(err, TSR_ETIMEOUT, "flush: %d messages still in flight",
                             rd_kafka_outq_len(p->rk));
    }
    return TSR_OK;
}

void tsr_events_producer_destroy(tsr_events_producer_t *p) {
    if (p == NULL) {
        return;
    }
    if (rd_kafka_flush(p->rk, p->delivery_timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        tsr_log_warn(NULL, "kafka producer: %d messages undelivered at stop",
                     rd_kafka_outq_len(p->rk));
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        /* purged messages' reports free their records */
        (void)rd_kafka_flush(p->rk, 5000);
    }
    rd_kafka_destroy(p->rk);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

tsr_err_t tsr_events_producer_emit(tsr_events_producer_t *p, const char *topic, const char *key,
                                   const tsr_event_t *ev, tsr_error_t *err) {
    char *payload = NULL;
    size_t len = 0;
    tsr_err_t rc = tsr_event_format(ev, &payload, &len, err);
    if (rc != TSR_OK) {
        return rc;
    }
    tsr_events_msg_t m = {0};
    m.topic = topic;
    m.key = key != NULL ? key : (ev->subject != NULL ? ev->subject : ev->tenantid);
    m.payload = payload;
    m.payload_len = len;
    rc = tsr_events_producer_send(p, &m, 1, err);
    free(payload);
    return rc;
}
