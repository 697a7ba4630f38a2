/*
 * pkg/audit internals shared by its files: the service struct, the chain primitives
 * (canonical hash, record building, time keys) and the checkpoint signer. Layer: service.
 */
#ifndef TSR_AUDIT_INT_H
#define TSR_AUDIT_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include <openssl/evp.h>

#include "audit.h"

#define TSR_AUDIT__HEAD_ID "head"
#define TSR_AUDIT__GENESIS "0000000000000000000000000000000000000000000000000000000000000000"
#define TSR_AUDIT__FACETS_MAX 256 /* distinct types/sources kept per tenant */
#define TSR_AUDIT__TKEY_MAX 64    /* "%015lld." + id, bytes with NUL */
#define TSR_AUDIT__LEASE "audit.maintenance"
#define TSR_AUDIT__OLD_KEYS_MAX 8 /* verify-only checkpoint keys after rotations */

struct tsr_audit {
    tsr_store_t *store;                          /* borrowed */
    EVP_PKEY *key;                               /* checkpoint signing key, NULL: unsigned */
    char kid[17];                                /* key id: 16 hex of SHA-256(public key DER) */
    json_t *jwk;                                 /* the public key as a JWK; NULL without a key */
    EVP_PKEY *old_keys[TSR_AUDIT__OLD_KEYS_MAX]; /* verify-only keys (rotation) */
    char old_kids[TSR_AUDIT__OLD_KEYS_MAX][17];
    size_t n_old;
    json_t *jwks; /* every key's public JWK, the signing key first; NULL without keys */
    uint32_t checkpoint_every;      /* events */
    uint32_t checkpoint_interval_s; /* seconds */
    uint32_t retention_days;        /* days */
    size_t archive_max_bytes;       /* bytes */
    size_t scan_max;                /* records one list request examines when filtering in memory */
    /* background work (tsr_audit_start) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started;
    atomic_bool stopping;
    pthread_t consumer_thr;
    pthread_t maint_thr;
    tsr_audit_run_opts_t run;
    char *bootstrap;                 /* owned */
    char *client_id;                 /* owned */
    char *owner;                     /* owned */
    tsr_events_consumer_t *consumer; /* owned by the consumer thread; read under mu */
    atomic_bool consumer_assigned;
    char consumer_state[128]; /* under mu: why not ready */
};

/* SHA-256 of the record's canonical form (every member but "hash" and "version") as 64 hex. */
void tsr_audit__record_hash(const json_t *rec, char out[65]);
/* The audit record id for (tenant, event id): 24 hex of SHA-256("audit\0" tenant "\0" id). */
void tsr_audit__record_id(const char *tenant, const char *event_id, char out[25]);
/* The list key of a record: zero-padded eventTime ms, '.', id. */
void tsr_audit__tkey(int64_t time_ms, const char *id, char out[TSR_AUDIT__TKEY_MAX]);
/* Lower bound key for time ms (sorts before every record at ms). */
void tsr_audit__tkey_floor(int64_t time_ms, char out[TSR_AUDIT__TKEY_MAX]);
/* The prefix of a composite list key (kUser, kType, kSource = prefix + tkey): the value's length
 * as 4 hex digits, then the value, so that no value's keys fall inside another's range.
 * Allocated in ar. */
char *tsr_audit__kprefix(tsr_arena_t *ar, const char *value);

/* The audit record of ev (without seq, prevHash, hash), returned-owned. TSR_EINVAL on an
 * event without id, tenant or type. */
tsr_err_t tsr_audit__record_from_event(const tsr_event_t *ev, json_t **out, tsr_error_t *err);
/* Append rec (borrowed; a copy gets id, seq, prevHash, tkey, hash) to tenant's chain through
 * st (a transaction view or the store). A record already stored is a no-op. */
tsr_err_t tsr_audit__append(tsr_audit_t *a, tsr_store_t *st, const char *tenant, const json_t *rec,
                            tsr_error_t *err);

/* Signing (sign.c). */
/* spec: comma-separated PEM paths; the first signs (created 0600 when missing), the others
 * (older keys after a rotation) only verify and must exist. */
tsr_err_t tsr_audit__key_load_or_create(tsr_audit_t *a, const char *spec, tsr_error_t *err);
/* JWS compact (ES256) of payload; *out returned-owned (free). Without a key: "unsigned." +
 * base64url(payload). */
tsr_err_t tsr_audit__sign(tsr_audit_t *a, const json_t *payload, char **out, tsr_error_t *err);
/* Verify jws with a's key; *payload returned-owned on TSR_OK. TSR_ECORRUPT when it does not
 * verify. */
tsr_err_t tsr_audit__verify_sig(tsr_audit_t *a, const char *jws, json_t **payload,
                                tsr_error_t *err);
/* base64url without padding: encode appends to out; decode n chars into out (cap bytes),
 * false on a bad character or length. */
void tsr_audit__b64u_encode(tsr_buf_t *out, const unsigned char *p, size_t n);
bool tsr_audit__b64u_decode(const char *s, size_t n, unsigned char *out, size_t cap, size_t *len);
/* Canonical JSON text (sorted keys, compact, ASCII), returned-owned (free). */
char *tsr_audit__canonical(const json_t *v);

/* The i-th HTTP route (method, pattern; static storage); false past the end. */
bool tsr_audit__route_at(size_t i, const char **method, const char **pattern);

/* Write a checkpoint for (seq, hash) following head (borrowed, updated in place with
 * checkpointSeq/checkpointSig/checkpointTime). */
tsr_err_t tsr_audit__checkpoint_write(tsr_audit_t *a, tsr_store_t *st, const char *tenant,
                                      json_t *head, tsr_error_t *err);

#endif
