/*
 * pkg/events internals shared by its own files only: librdkafka configuration helpers, the
 * error mapping, and the producer's single-message path with headers (the consumer's
 * dead-letter writes). Not part of the public API.
 */
#ifndef TSR_EVENTS_INT_H
#define TSR_EVENTS_INT_H

#include <librdkafka/rdkafka.h>

#include "events.h"

/* Set key=value on conf; TSR_EINVAL with librdkafka's message on failure. */
tsr_err_t tsr_events__conf_set(rd_kafka_conf_t *conf, const char *key, const char *value,
                               tsr_error_t *err);
/* Apply NULL-terminated key, value pairs (may be NULL). */
tsr_err_t tsr_events__conf_extra(rd_kafka_conf_t *conf, const char *const *kv, tsr_error_t *err);
/* librdkafka error -> platform error code. */
tsr_err_t tsr_events__map_err(rd_kafka_resp_err_t e);
/* Route librdkafka's log lines into pkg/log. */
void tsr_events__log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

/* Send one message with headers (taken, may be NULL) and wait for its delivery report; the
 * outcome lands in msg. */
tsr_err_t tsr_events__producer_send_headers(tsr_events_producer_t *p, tsr_events_msg_t *msg,
                                            rd_kafka_headers_t *hdrs, tsr_error_t *err);

#endif
