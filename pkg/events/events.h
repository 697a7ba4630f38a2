/*
 * pkg/events: Tessera's events on Kafka (librdkafka). CloudEvents 1.0 JSON envelopes with a
 * versioned type, an idempotent producer (acks=all), an outbox relay that marks rows sent only
 * after the broker acknowledged them, and a consumer that commits offsets only after the
 * handler's effect is durable, applies each event id once, retries with backoff and parks
 * poison messages on a dead-letter topic. Layer: adapter (core, log, config below it). The
 * store is reached only through the two interface tables below, which pkg/store implements.
 */
#ifndef TSR_EVENTS_H
#define TSR_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- envelope ---------------------------------------------------------------------------- */

#define TSR_EVENT_MAX_BYTES (1024 * 1024) /* largest envelope accepted or produced (bytes) */
#define TSR_EVENT_ATTR_MAX 512            /* longest string attribute (bytes) */
#define TSR_EVENT_SPECVERSION "1.0"
#define TSR_EVENT_TYPE_PREFIX "com.tessera."

/* One CloudEvents 1.0 event. Every string is heap-owned by the struct (free with
 * tsr_event_cleanup) and may be NULL when optional. Required: id, source, type, tenantid. */
typedef struct {
    char *id;              /* unique per source; consumers dedupe on it */
    char *source;          /* URI-reference of the producer, e.g. "/tessera/spaces" */
    char *type;            /* "com.tessera.v<N>.<domain>.<action>" */
    char *time;            /* RFC 3339 UTC */
    char *subject;         /* the entity the event is about (app id, space id, ...) */
    char *datacontenttype; /* "application/json" when data is set */
    char *tenantid;        /* extension: owning tenant */
    char *userid;          /* extension: acting user, optional */
    char *traceid;         /* extension: request/trace id, optional */
    json_t *data;          /* owned reference, may be NULL */
} tsr_event_t;

/* Fill ev (caller's storage) with a new event: random id, current time, the given attributes
 * (copied) and data (reference taken, even on failure; may be NULL). subject may be NULL.
 * TSR_EINVAL when type is not a valid versioned Tessera type or a required value is empty;
 * ev is then cleaned up. */
tsr_err_t tsr_event_init(tsr_event_t *ev, const char *source, const char *type,
                         const char *tenant_id, const char *subject, json_t *data,
                         tsr_error_t *err);

/* Free everything ev owns and zero it. NULL: no-op. */
void tsr_event_cleanup(tsr_event_t *ev);

/* Check required attributes, lengths (TSR_EVENT_ATTR_MAX), the type's shape and the time's
 * format. TSR_EINVAL with the offending attribute named in err. */
tsr_err_t tsr_event_validate(const tsr_event_t *ev, tsr_error_t *err);

/* Serialise ev (validated first) as a CloudEvents JSON object. *out is returned-owned (free
 * with free()), NUL terminated, *out_len bytes without the NUL. TSR_ETOOBIG past
 * TSR_EVENT_MAX_BYTES. Thread safe. */
tsr_err_t tsr_event_format(const tsr_event_t *ev, char **out, size_t *out_len, tsr_error_t *err);

/* Parse a CloudEvents JSON envelope of len bytes (network input: capped, every attribute
 * type-checked) into ev (caller's storage, cleaned up on failure). TSR_ETOOBIG over
 * TSR_EVENT_MAX_BYTES, TSR_EINVAL for anything malformed: not JSON, not an object, missing
 * or non-string specversion/id/source/type/tenantid, specversion other than "1.0", a bad
 * type or time, data of a non-JSON content type. Thread safe. */
tsr_err_t tsr_event_parse(const char *buf, size_t len, tsr_event_t *ev, tsr_error_t *err);

/* ---- versioned types --------------------------------------------------------------------- */

#define TSR_EVENT_NAME_MAX 64

/* "com.tessera.v1.app.created" -> {version 1, domain "app", action "created"}. The domain may
 * have several dot-separated segments ("space.member" in com.tessera.v1.space.member.added);
 * the action is the last segment. Segments: [a-z][a-z0-9_]*. */
typedef struct {
    unsigned version;                /* >= 1, no leading zeros */
    char domain[TSR_EVENT_NAME_MAX]; /* e.g. "app" */
    char action[TSR_EVENT_NAME_MAX]; /* e.g. "created" */
} tsr_event_type_t;

tsr_err_t tsr_event_type_parse(const char *type, tsr_event_type_t *out, tsr_error_t *err);

/* Build "com.tessera.v<version>.<domain>.<action>" into out (cap bytes). TSR_EINVAL for bad
 * parts, TSR_ETOOBIG when it does not fit. */
tsr_err_t tsr_event_type_format(unsigned version, const char *domain, const char *action, char *out,
                                size_t cap, tsr_error_t *err);

/* ---- topic catalogue (topics.def) -------------------------------------------------------- */

#define TSR_EVENTS_TOPIC_DLQ "tessera.dlq"

typedef struct {
    const char *name;      /* e.g. "tessera.apps" */
    int partitions;        /* partition count the cluster must have */
    const char *key;       /* what the message key is */
    const char *types;     /* event types carried (Markdown) */
    const char *producers; /* services that publish */
    const char *consumers; /* services that consume */
} tsr_events_topic_t;

/* The catalogue, terminated by an entry with name NULL. Static storage. */
const tsr_events_topic_t *tsr_events_topics(void);
/* The entry for name, or NULL. */
const tsr_events_topic_t *tsr_events_topic_get(const char *name);
/* The catalogue as the Markdown table of pkg/events/README.md. */
void tsr_events_topics_print_markdown(FILE *out);

/* ---- store interfaces (implemented by pkg/store) ----------------------------------------- */

/* One outbox row as the store hands it out. Strings are owned by the store until release. */
typedef struct {
    const char *id;      /* outbox row id (the event id is fine) */
    const char *topic;   /* destination topic */
    const char *key;     /* message key: the entity id (app id, tenant id, ...) */
    const char *payload; /* the formatted envelope */
    size_t payload_len;  /* bytes */
} tsr_events_outbox_row_t;

/* The outbox: rows written in the same store transaction as the state change they describe.
 * fetch_unsent fills up to limit rows, oldest first (commit order), that are not yet marked
 * sent; mark_sent marks the given row ids sent (ids not found are ignored); release frees what
 * fetch_unsent handed out. The relay calls these from one thread at a time. */
typedef struct {
    void *ctx;
    tsr_err_t (*fetch_unsent)(void *ctx, size_t limit, tsr_events_outbox_row_t *rows, size_t *n,
                              tsr_error_t *err);
    tsr_err_t (*mark_sent)(void *ctx, const char *const *ids, size_t n, tsr_error_t *err);
    void (*release)(void *ctx, tsr_events_outbox_row_t *rows, size_t n);
} tsr_events_outbox_t;

/* The effect of one event: txn is the store's open transaction (store-defined type) in which
 * the effect must be written so that it commits or rolls back with the processed mark. Return
 * TSR_OK to commit; TSR_EUNSUPPORTED to skip the event without recording it (a type version
 * this consumer does not understand); anything else rolls back and is retried. */
typedef tsr_err_t (*tsr_events_effect_cb)(void *opaque, void *txn, tsr_error_t *err);

/* The processed-event-id set. apply_once, in one store transaction: if (group, event_id) is
 * already recorded set *applied = false and return TSR_OK without calling effect; otherwise
 * call effect, and only if it returned TSR_OK record (group, event_id) and commit, setting
 * *applied = true. When effect fails, roll back and return its code. A store that cannot make
 * both atomic must at least record the id only after the effect is durable. */
typedef struct {
    void *ctx;
    tsr_err_t (*apply_once)(void *ctx, const char *group, const char *event_id,
                            tsr_events_effect_cb effect, void *effect_opaque, bool *applied,
                            tsr_error_t *err);
} tsr_events_dedupe_t;

/* ---- producer ---------------------------------------------------------------------------- */

typedef struct tsr_events_producer tsr_events_producer_t;

typedef struct {
    const char *bootstrap;         /* "host:port,..." (required) */
    const char *client_id;         /* NULL: "tessera" */
    int delivery_timeout_ms;       /* how long a message may retry before it fails; 0: 30000 */
    const char *const *extra_conf; /* NULL or NULL-terminated key, value, key, value, ... */
} tsr_events_producer_opts_t;

/* One message to send and, after tsr_events_producer_send, its outcome. */
typedef struct {
    const char *topic;   /* borrowed */
    const char *key;     /* borrowed, NUL terminated; the entity id: same key, same order */
    const char *payload; /* borrowed */
    size_t payload_len;  /* bytes */
    tsr_err_t result;    /* out: TSR_OK once the broker acknowledged it (acks=all) */
    char error[128];     /* out: broker/client error text when result != TSR_OK */
    int32_t partition;   /* out */
    int64_t offset;      /* out */
} tsr_events_msg_t;

/* Create an idempotent producer (enable.idempotence=true, acks=all, key-hashed partitioning
 * murmur2_random like the Java client). TSR_EINVAL for bad options. *out: free with
 * tsr_events_producer_destroy. Thread safe after creation. */
tsr_err_t tsr_events_producer_create(const tsr_events_producer_opts_t *opts,
                                     tsr_events_producer_t **out, tsr_error_t *err);

/* Send n messages and wait for every delivery report (at most about delivery_timeout_ms).
 * Returns TSR_OK when all were acknowledged; otherwise TSR_EUNAVAILABLE (each msg's result
 * says which). TSR_EUNAVAILABLE also after a fatal idempotence error: destroy and recreate the
 * producer. Thread safe. */
tsr_err_t tsr_events_producer_send(tsr_events_producer_t *p, tsr_events_msg_t *msgs, size_t n,
                                   tsr_error_t *err);

/* Delivery outcome of one asynchronous send; called from tsr_events_producer_poll or destroy. */
typedef void (*tsr_events_delivery_cb)(void *opaque, tsr_err_t result, const char *error);

/* Queue one message (payload copied) without waiting; cb (may be NULL) reports the outcome.
 * TSR_EUNAVAILABLE when the local queue is full or the producer has failed. Thread safe. */
tsr_err_t tsr_events_producer_send_async(tsr_events_producer_t *p, const char *topic,
                                         const char *key, const char *payload, size_t len,
                                         tsr_events_delivery_cb cb, void *opaque, tsr_error_t *err);

/* Serve delivery reports for up to timeout_ms. Returns the number of reports served. */
int tsr_events_producer_poll(tsr_events_producer_t *p, int timeout_ms);

/* Wait until everything queued is acknowledged or failed, at most timeout_ms. TSR_ETIMEOUT
 * when messages are still in flight. */
tsr_err_t tsr_events_producer_flush(tsr_events_producer_t *p, int timeout_ms, tsr_error_t *err);

/* Flush (up to delivery_timeout_ms), fail what is left (their callbacks see TSR_ECANCELED)
 * and free. NULL: no-op. */
void tsr_events_producer_destroy(tsr_events_producer_t *p);

/* Format ev and send it synchronously to topic with key (NULL: ev->subject, else tenantid). */
tsr_err_t tsr_events_producer_emit(tsr_events_producer_t *p, const char *topic, const char *key,
                                   const tsr_event_t *ev, tsr_error_t *err);

/* ---- outbox relay ------------------------------------------------------------------------ */

typedef struct tsr_events_relay tsr_events_relay_t;

typedef struct {
    size_t batch;       /* rows per round; 0: 256 */
    int idle_ms;        /* wait between rounds when the outbox is empty; 0: 200 */
    int backoff_max_ms; /* longest wait after a failed round; 0: 5000 */
} tsr_events_relay_opts_t;

/* A relay over outbox publishing through p (both borrowed; they must outlive the relay). opts
 * may be NULL. One relay per outbox at a time. */
tsr_err_t tsr_events_relay_create(tsr_events_producer_t *p, const tsr_events_outbox_t *outbox,
                                  const tsr_events_relay_opts_t *opts, tsr_events_relay_t **out,
                                  tsr_error_t *err);

/* One round: fetch up to batch unsent rows, publish them, wait for the acknowledgements, then
 * mark sent the rows acknowledged (for a key whose earlier row failed, later rows are held
 * back too, so a key's order survives a retry). *published: rows marked sent. TSR_OK when
 * everything fetched went out; TSR_EUNAVAILABLE when some rows must be retried; the store's
 * code when it failed. A crash anywhere leaves rows unsent (republished later: a duplicate,
 * never a loss). Not to be called while the relay's thread runs. */
tsr_err_t tsr_events_relay_run_once(tsr_events_relay_t *r, size_t *published, tsr_error_t *err);

/* Run rounds on a background thread until stop: back to back while rows come, idle_ms apart
 * when empty, with exponential backoff after failures. */
tsr_err_t tsr_events_relay_start(tsr_events_relay_t *r, tsr_error_t *err);
/* Wake the thread now (call after a store write that added outbox rows). Thread safe. */
void tsr_events_relay_kick(tsr_events_relay_t *r);
/* True when the last round succeeded (for /health/ready). Thread safe. */
bool tsr_events_relay_is_healthy(tsr_events_relay_t *r);
/* Stop and join the thread after its current round. Idempotent. */
void tsr_events_relay_stop(tsr_events_relay_t *r);
/* Stop and free. NULL: no-op. */
void tsr_events_relay_destroy(tsr_events_relay_t *r);

/* ---- consumer ---------------------------------------------------------------------------- */

typedef struct tsr_events_consumer tsr_events_consumer_t;

/* Apply one event. txn: the store transaction from the dedupe's apply_once; write the effect
 * there. Return codes as for tsr_events_effect_cb. Called on the consumer's thread. */
typedef tsr_err_t (*tsr_events_handler_cb)(void *opaque, const tsr_event_t *ev, void *txn,
                                           tsr_error_t *err);

typedef struct {
    const char *bootstrap;     /* required */
    const char *group;         /* consumer group id (required); also the dedupe scope */
    const char *const *topics; /* topics to subscribe (required) */
    size_t n_topics;
    const char *client_id;         /* NULL: "tessera" */
    tsr_events_handler_cb handler; /* required */
    void *handler_opaque;
    tsr_events_dedupe_t dedupe;    /* required: apply_once != NULL */
    int max_attempts;              /* tries before dead-lettering; 0: 5 */
    int backoff_initial_ms;        /* wait after the first failure, doubling; 0: 100 */
    int backoff_max_ms;            /* 0: 5000 */
    int commit_every;              /* commit after this many messages (and when idle); 0: 1 */
    int session_timeout_ms;        /* group session timeout; 0: 10000 */
    const char *dlq_topic;         /* NULL: TSR_EVENTS_TOPIC_DLQ */
    const char *const *extra_conf; /* NULL or NULL-terminated key, value, ... pairs */
} tsr_events_consumer_opts_t;

/* Join the group (enable.auto.commit=false, enable.auto.offset.store=false,
 * auto.offset.reset=earliest, fetch.wait.max.ms=100; extra_conf overrides) and subscribe. The
 * dead-letter producer is created here too. Strings are copied. TSR_EINVAL for missing or bad
 * options. */
tsr_err_t tsr_events_consumer_create(const tsr_events_consumer_opts_t *opts,
                                     tsr_events_consumer_t **out, tsr_error_t *err);

/* Wait up to timeout_ms for one message and process it completely: parse, apply through the
 * dedupe with retries and backoff, dead-letter after max_attempts (headers tsr-error,
 * tsr-error-code, tsr-attempts, tsr-original-topic, tsr-original-partition,
 * tsr-original-offset, tsr-group), then store its offset and commit per commit_every. A
 * malformed envelope is dead-lettered at once. *processed (may be NULL) tells whether a
 * message was handled. Returns TSR_ECANCELED when stop was requested mid-message (the
 * message stays uncommitted and will be redelivered), TSR_EUNAVAILABLE when the dead-letter
 * topic could not be written before stop. Call from one thread. */
tsr_err_t tsr_events_consumer_poll(tsr_events_consumer_t *c, int timeout_ms, bool *processed,
                                   tsr_error_t *err);

/* Poll until tsr_events_consumer_stop. */
tsr_err_t tsr_events_consumer_run(tsr_events_consumer_t *c, tsr_error_t *err);

/* Ask poll/run to return soon. Thread safe and async-signal safe. */
void tsr_events_consumer_stop(tsr_events_consumer_t *c);

/* Whether the group has given this member its assignment (which may be empty), and how many
 * partitions it holds. Thread safe. */
bool tsr_events_consumer_is_assigned(tsr_events_consumer_t *c, int *partitions);

/* Counters since create. Thread safe. */
typedef struct {
    uint64_t applied;    /* effects committed */
    uint64_t duplicates; /* events skipped as already applied */
    uint64_t skipped;    /* unsupported versions */
    uint64_t retries;    /* failed attempts retried */
    uint64_t dead_lettered;
} tsr_events_consumer_stats_t;
void tsr_events_consumer_stats(tsr_events_consumer_t *c, tsr_events_consumer_stats_t *out);

/* Commit what was processed, leave the group (so the partitions move at once), free. NULL:
 * no-op. */
void tsr_events_consumer_destroy(tsr_events_consumer_t *c);

/* ---- wiring helpers ---------------------------------------------------------------------- */

/* The bootstrap list: knob TSR_KAFKA_BOOTSTRAP, or when empty the first line of
 * $TSR_STATE_DIR/kafka/bootstrap (written by cmd/devkafka). *out returned-owned (free()).
 * TSR_ENOTFOUND when neither is there. */
tsr_err_t tsr_events_bootstrap_resolve(char **out, tsr_error_t *err);

/* Test hook: when the knob TSR_FAULTPOINT is "name" or "name:N", the N-th (default first)
 * call with that name kills the process with SIGKILL, as a crash at that point would. */
void tsr_events_faultpoint(const char *name);

#ifdef __cplusplus
}
#endif
#endif
