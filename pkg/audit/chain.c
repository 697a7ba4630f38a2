/*
 * pkg/audit domain: the service object, records built from CloudEvents, the per-tenant hash
 * chain (append with an optimistic-concurrency head, roll-forward of a head left behind by a
 * crash on a store without atomic transactions), checkpoints and verification. Layer: service
 * over pkg/store. Invariant: records are only ever created, never replaced or deleted.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit_int.h"
#include "config.h"
#include "store_events.h"

#define APPEND_TRIES 16    /* head races before giving up (TSR_EUNAVAILABLE) */
#define VERIFY_PAGE 500    /* records per store page while verifying */
#define LEASE_TTL_MS 60000 /* maintenance lease */

/* ---- collections --------------------------------------------------------------------------- */

/* Each index costs every append a B-tree write: only what list and verify query. The record
 * id is derived from (tenant, eventId), so the primary key already makes eventId unique. */
static const char *const EVENT_INDEXES[] = {"tkey", "seq", "kUser", "kType", "kSource"};
static const char *const U_SEQ[] = {"seq"};
static const tsr_store_unique_t EVENT_UNIQUES[] = {{U_SEQ, 1, false}};
static const char *const CP_INDEXES[] = {"seq"};
static const tsr_store_unique_t CP_UNIQUES[] = {{U_SEQ, 1, false}};

static const tsr_store_collection_t COLLECTIONS[] = {
    {.name = TSR_AUDIT_C_EVENTS,
     .indexes = EVENT_INDEXES,
     .n_indexes = sizeof EVENT_INDEXES / sizeof EVENT_INDEXES[0],
     .uniques = EVENT_UNIQUES,
     .n_uniques = 1},
    {.name = TSR_AUDIT_C_CHAINS},
    {.name = TSR_AUDIT_C_CHECKPOINTS,
     .indexes = CP_INDEXES,
     .n_indexes = 1,
     .uniques = CP_UNIQUES,
     .n_uniques = 1},
};

const tsr_store_collection_t *tsr_audit_collections(size_t *n) {
    *n = sizeof COLLECTIONS / sizeof COLLECTIONS[0];
    return COLLECTIONS;
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

tsr_err_t tsr_audit_opts_from_config(tsr_audit_opts_t *opts, tsr_error_t *err) {
    static char key_path[4096];
    int64_t every = 0, interval = 0, days = 0, max_bytes = 0;
    tsr_err_t rc;
    memset(opts, 0, sizeof *opts);
    if ((rc = tsr_config_get_int("TSR_AUDIT_CHECKPOINT_EVERY", 1, 10000000, &every, err)) !=
            TSR_OK ||
        (rc = tsr_config_get_int("TSR_AUDIT_CHECKPOINT_INTERVAL_S", 1, 86400, &interval, err)) !=
            TSR_OK ||
        (rc = tsr_config_get_int("TSR_AUDIT_RETENTION_DAYS", 1, 36500, &days, err)) != TSR_OK ||
        (rc = tsr_config_get_int("TSR_AUDIT_ARCHIVE_MAX_BYTES", 1 << 20, 1LL << 30, &max_bytes,
                                 err)) != TSR_OK) {
        return rc;
    }
    const char *key = tsr_config_get("TSR_AUDIT_KEY_FILE");
    if (key[0] == '\0') {
        const char *state = tsr_config_get("TSR_STATE_DIR");
        snprintf(key_path, sizeof key_path, "%s/audit", state);
        if ((mkdir(state, 0700) != 0 && errno != EEXIST) ||
            (mkdir(key_path, 0700) != 0 && errno != EEXIST)) {
            return tsr_error_set(err, TSR_EIO, "cannot create %s", key_path);
        }
        snprintf(key_path, sizeof key_path, "%s/audit/checkpoint-key.pem", state);
    } else {
        snprintf(key_path, sizeof key_path, "%s", key);
    }
    opts->key_file = key_path;
    opts->checkpoint_every = (uint32_t)every;
    opts->checkpoint_interval_s = (uint32_t)interval;
    opts->retention_days = (uint32_t)days;
    opts->archive_max_bytes = (size_t)max_bytes;
    return TSR_OK;
}

tsr_err_t tsr_audit_create(const tsr_audit_opts_t *opts, tsr_audit_t **out, tsr_error_t *err) {
    *out = NULL;
    if (opts == NULL || opts->store == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "audit needs a store");
    }
    tsr_audit_t *a = tsr_xcalloc(1, sizeof *a);
    a->store = opts->store;
    a->checkpoint_every = opts->checkpoint_every != 0 ? opts->checkpoint_every : 1000;
    a->checkpoint_interval_s = opts->checkpoint_interval_s != 0 ? opts->checkpoint_interval_s : 300;
    a->retention_days = opts->retention_days != 0 ? opts->retention_days : 90;
    a->archive_max_bytes = opts->archive_max_bytes != 0 ? opts->archive_max_bytes : 64u << 20;
    a->scan_max = 5000;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    if (opts->key_file != NULL) {
        tsr_err_t rc = tsr_audit__key_load_or_create(a, opts->key_file, err);
        if (rc != TSR_OK) {
            tsr_audit_destroy(a);
            return rc;
        }
    }
    *out = a;
    return TSR_OK;
}

void tsr_audit_destroy(tsr_audit_t *a) {
    if (a == NULL) {
        return;
    }
    tsr_audit_stop(a);
    EVP_PKEY_free(a->key);
    json_decref(a->jwk);
    json_decref(a->jwks);
    for (size_t i = 0; i < a->n_old; i++) {
        EVP_PKEY_free(a->old_keys[i]);
    }
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a->bootstrap);
    free(a->client_id);
    free(a->owner);
    free(a);
}

/* ---- records ------------------------------------------------------------------------------- */

void tsr_audit__record_hash(const json_t *rec, char out[65]) {
    json_t *c = json_copy((json_t *)rec);
    json_object_del(c, "hash");
    json_object_del(c, "version");
    char *s = tsr_audit__canonical(c);
    unsigned char md[32];
    unsigned int n = 0;
    if (EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL) != 1) {
        fprintf(stderr, "audit: SHA-256 unavailable\n");
        abort();
    }
    free(s);
    json_decref(c);
    tsr_hex_encode(md, 32, out);
}

void tsr_audit__record_id(const char *tenant, const char *event_id, char out[25]) {
    unsigned char md[32];
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, "audit", 6) != 1 ||
        EVP_DigestUpdate(ctx, tenant, strlen(tenant) + 1) != 1 ||
        EVP_DigestUpdate(ctx, event_id, strlen(event_id)) != 1 ||
        EVP_DigestFinal_ex(ctx, md, &n) != 1) {
        fprintf(stderr, "audit: SHA-256 unavailable\n");
        abort();
    }
    EVP_MD_CTX_free(ctx);
    char hex[65];
    tsr_hex_encode(md, 32, hex);
    memcpy(out, hex, 24);
    out[24] = '\0';
}

void tsr_audit__tkey(int64_t time_ms, const char *id, char out[TSR_AUDIT__TKEY_MAX]) {
    snprintf(out, TSR_AUDIT__TKEY_MAX, "%015lld.%.40s", (long long)(time_ms < 0 ? 0 : time_ms), id);
}

char *tsr_audit__kprefix(tsr_arena_t *ar, const char *value) {
    return tsr_arena_printf(ar, "%04zx%s", strlen(value) & 0xffff, value);
}

/* rec[kfield] = kprefix(rec[field]) + tkey, when rec has field. */
static void set_kfield(json_t *rec, const char *field, const char *kfield, const char *tkey) {
    const char *v = json_string_value(json_object_get(rec, field));
    if (v != NULL) {
        json_object_set_new(rec, kfield, json_sprintf("%04zx%s%s", strlen(v) & 0xffff, v, tkey));
    }
}

void tsr_audit__tkey_floor(int64_t time_ms, char out[TSR_AUDIT__TKEY_MAX]) {
    snprintf(out, TSR_AUDIT__TKEY_MAX, "%015lld", (long long)(time_ms < 0 ? 0 : time_ms));
}

static bool tenant_ok(const char *t) {
    size_t n = t != NULL ? strlen(t) : 0;
    if (n == 0 || n > TSR_STORE_TENANT_MAX || t[0] == '_') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (t[i] <= 0x20 || t[i] >= 0x7f) {
            return false;
        }
    }
    return true;
}

tsr_err_t tsr_audit__record_from_event(const tsr_event_t *ev, json_t **out, tsr_error_t *err) {
    int64_t ms = 0;
    char when[25], now[25], ver[32] = "1.0.0";
    tsr_event_type_t ty;
    *out = NULL;
    if (ev == NULL || ev->id == NULL || ev->id[0] == '\0' || ev->type == NULL ||
        ev->source == NULL || !tenant_ok(ev->tenantid)) {
        return tsr_error_set(err, TSR_EINVAL,
                             "audit: event without id, type, source or a "
                             "valid tenant");
    }
    if (ev->time == NULL || tsr_time_parse_rfc3339(ev->time, &ms) != TSR_OK) {
        ms = tsr_wall_ms();
    }
    tsr_time_format_rfc3339(ms, when);
    tsr_time_format_rfc3339(tsr_wall_ms(), now);
    if (tsr_event_type_parse(ev->type, &ty, NULL) == TSR_OK) {
        snprintf(ver, sizeof ver, "%u.0.0", ty.version);
    }
    json_t *ext = json_object();
    if (ev->userid != NULL) {
        json_object_set_new(ext, "actor",
                            json_pack("{ss ss}", "sub", ev->userid, "subType", "user"));
    }
    if (ev->subject != NULL) {
        json_object_set_new(ext, "topLevelResourceId", json_string(ev->subject));
    }
    if (ev->traceid != NULL) {
        json_object_set_new(ext, "traceId", json_string(ev->traceid));
    }
    json_t *rec =
        json_pack("{ss ss ss ss ss ss so ss}", "eventId", ev->id, "eventType", ev->type,
                  "eventTypeVersion", ver, "eventTime", when, "source", ev->source, "contentType",
                  ev->datacontenttype != NULL ? ev->datacontenttype : "application/json",
                  "extensions", ext, "receivedAt", now);
    if (rec == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "audit: event attributes are not valid UTF-8");
    }
    if (ev->userid != NULL) {
        json_object_set_new(rec, "userId", json_string(ev->userid));
    }
    json_object_set_new(rec, "data", ev->data != NULL ? json_incref(ev->data) : json_object());
    *out = rec;
    return TSR_OK;
}

/* ---- the chain head ------------------------------------------------------------------------ */

static tsr_err_t head_get(tsr_store_t *st, const char *tenant, json_t **head, tsr_error_t *err) {
    tsr_err_t rc = tsr_store_doc_get(st, tenant, TSR_AUDIT_C_CHAINS, TSR_AUDIT__HEAD_ID, head, err);
    if (rc == TSR_ENOTFOUND) {
        tsr_error_clear(err);
        *head = json_pack("{sI ss sI so so sI ss sI}", "seq", (json_int_t)0, "hash",
                          TSR_AUDIT__GENESIS, "version", (json_int_t)0, "types", json_array(),
                          "sources", json_array(), "checkpointSeq", (json_int_t)0, "checkpointSig",
                          "", "checkpointTime", (json_int_t)0);
        rc = TSR_OK;
    }
    return rc;
}

static int64_t jint(const json_t *o, const char *k) {
    return (int64_t)json_integer_value(json_object_get(o, k));
}

static const char *jstr(const json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s != NULL ? s : "";
}

static tsr_err_t head_put(tsr_store_t *st, const char *tenant, const json_t *head,
                          tsr_error_t *err) {
    int64_t v = jint(head, "version");
    if (v == 0) {
        return tsr_store_doc_create(st, tenant, TSR_AUDIT_C_CHAINS, TSR_AUDIT__HEAD_ID, head, NULL,
                                    0, NULL, err);
    }
    return tsr_store_doc_replace(st, tenant, TSR_AUDIT_C_CHAINS, TSR_AUDIT__HEAD_ID, v, head, NULL,
                                 0, NULL, err);
}

static void facet_add(json_t *head, const char *key, const char *value) {
    json_t *arr = json_object_get(head, key);
    if (!json_is_array(arr)) {
        arr = json_array();
        json_object_set_new(head, key, arr);
    }
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        if (strcmp(json_string_value(v) != NULL ? json_string_value(v) : "", value) == 0) {
            return;
        }
    }
    if (json_array_size(arr) < TSR_AUDIT__FACETS_MAX) {
        json_array_append_new(arr, json_string(value));
    }
}

static void head_advance(json_t *head, const json_t *rec) {
    json_object_set_new(head, "seq", json_integer(jint(rec, "seq")));
    json_object_set_new(head, "hash", json_string(jstr(rec, "hash")));
    facet_add(head, "types", jstr(rec, "eventType"));
    facet_add(head, "sources", jstr(rec, "source"));
}

/* A head behind the stored records (a crash between the record write and the head write on a
 * store without atomic transactions, or a concurrent appender): adopt the contiguous records
 * after it. */
static tsr_err_t roll_forward(tsr_store_t *st, const char *tenant, json_t *head, tsr_error_t *err) {
    json_t *after = json_integer(jint(head, "seq"));
    tsr_store_filter_t f = {"seq", TSR_STORE_GT, after};
    tsr_store_query_t q = {.filters = &f, .n_filters = 1, .sort = "seq", .limit = 100};
    tsr_store_page_t pg = {0};
    tsr_err_t rc = tsr_store_doc_list(st, tenant, TSR_AUDIT_C_EVENTS, &q, &pg, err);
    json_decref(after);
    if (rc != TSR_OK) {
        return rc;
    }
    bool moved = false;
    size_t i;
    json_t *d;
    json_array_foreach(pg.items, i, d) {
        if (jint(d, "seq") != jint(head, "seq") + 1) {
            break;
        }
        head_advance(head, d);
        moved = true;
    }
    tsr_store_page_cleanup(&pg);
    return moved ? head_put(st, tenant, head, err) : TSR_OK;
}

static const char *sig_part(const char *jws) {
    const char *p = strrchr(jws, '.');
    return p != NULL ? p + 1 : jws;
}

tsr_err_t tsr_audit__checkpoint_write(tsr_audit_t *a, tsr_store_t *st, const char *tenant,
                                      json_t *head, tsr_error_t *err) {
    char when[25], id[32];
    int64_t now = tsr_wall_ms();
    int64_t seq = jint(head, "seq");
    char *jws = NULL;
    tsr_time_format_rfc3339(now, when);
    json_t *payload =
        json_pack("{ss sI ss ss ss}", "tenantId", tenant, "seq", (json_int_t)seq, "hash",
                  jstr(head, "hash"), "time", when, "prevSig", jstr(head, "checkpointSig"));
    tsr_err_t rc = tsr_audit__sign(a, payload, &jws, err);
    if (rc == TSR_OK) {
        json_t *doc = json_pack("{sI ss ss ss ss}", "seq", (json_int_t)seq, "hash",
                                jstr(head, "hash"), "time", when, "jws", jws, "kid", a->kid);
        snprintf(id, sizeof id, "cp-%012lld", (long long)seq);
        rc = tsr_store_doc_create(st, tenant, TSR_AUDIT_C_CHECKPOINTS, id, doc, NULL, 0, NULL, err);
        json_decref(doc);
        if (rc == TSR_ECONFLICT) { /* written before (a retried round): keep the first */
            tsr_error_clear(err);
            rc = TSR_OK;
        } else if (rc == TSR_OK) {
            json_object_set_new(head, "checkpointSig", json_string(sig_part(jws)));
        }
        if (rc == TSR_OK) {
            json_object_set_new(head, "checkpointSeq", json_integer(seq));
            json_object_set_new(head, "checkpointTime", json_integer(now));
        }
    }
    free(jws);
    json_decref(payload);
    return rc;
}

tsr_err_t tsr_audit__append(tsr_audit_t *a, tsr_store_t *st, const char *tenant, const json_t *rec,
                            tsr_error_t *err) {
    char id[25], hash[65], tkey[TSR_AUDIT__TKEY_MAX];
    int64_t ms = 0;
    tsr_err_t rc = TSR_OK;
    tsr_audit__record_id(tenant, jstr(rec, "eventId"), id);
    tsr_time_parse_rfc3339(jstr(rec, "eventTime"), &ms);
    tsr_audit__tkey(ms, id, tkey);
    for (int attempt = 0; attempt < APPEND_TRIES; attempt++) {
        json_t *head = NULL, *have = NULL;
        if ((rc = head_get(st, tenant, &head, err)) != TSR_OK) {
            return rc;
        }
        rc = tsr_store_doc_get(st, tenant, TSR_AUDIT_C_EVENTS, id, &have, err);
        json_decref(have);
        if (rc != TSR_ENOTFOUND) { /* stored before (TSR_OK) or the store failed */
            json_decref(head);
            return rc;
        }
        tsr_error_clear(err);
        json_t *r = json_deep_copy(rec);
        json_object_set_new(r, "id", json_string(id));
        json_object_set_new(r, "tenantId", json_string(tenant));
        json_object_set_new(r, "seq", json_integer(jint(head, "seq") + 1));
        json_object_set_new(r, "prevHash", json_string(jstr(head, "hash")));
        json_object_set_new(r, "tkey", json_string(tkey));
        set_kfield(r, "userId", "kUser", tkey);
        set_kfield(r, "eventType", "kType", tkey);
        set_kfield(r, "source", "kSource", tkey);
        tsr_audit__record_hash(r, hash);
        json_object_set_new(r, "hash", json_string(hash));
        rc = tsr_store_doc_create(st, tenant, TSR_AUDIT_C_EVENTS, id, r, NULL, 0, NULL, err);
        if (rc == TSR_ECONFLICT) {
            /* the id was stored meanwhile (next round returns) or seq is taken: catch up */
            tsr_error_clear(err);
            rc = roll_forward(st, tenant, head, err);
            json_decref(r);
            json_decref(head);
            if (rc != TSR_OK && rc != TSR_ECONFLICT) {
                return rc;
            }
            tsr_error_clear(err);
            continue;
        }
        if (rc == TSR_OK) {
            head_advance(head, r);
            if (jint(head, "seq") % a->checkpoint_every == 0) {
                rc = tsr_audit__checkpoint_write(a, st, tenant, head, err);
            }
        }
        if (rc == TSR_OK) {
            rc = head_put(st, tenant, head, err);
            if (rc == TSR_ECONFLICT) {
                /* only without atomic transactions: the record is durable, the head catches
                 * up at the next append (roll_forward) */
                tsr_error_clear(err);
                rc = TSR_OK;
            }
        }
        json_decref(r);
        json_decref(head);
        return rc;
    }
    return tsr_error_set(err, TSR_EUNAVAILABLE, "audit: chain head contended; retry");
}

/* ---- ingest -------------------------------------------------------------------------------- */

typedef struct {
    tsr_audit_t *a;
    const char *tenant;
    const json_t *rec;
} append_ctx_t;

static tsr_err_t append_effect(void *opaque, tsr_store_t *txn, tsr_error_t *err) {
    append_ctx_t *c = opaque;
    return tsr_audit__append(c->a, txn, c->tenant, c->rec, err);
}

tsr_err_t tsr_audit_ingest(tsr_audit_t *a, const tsr_event_t *ev, bool *stored, tsr_error_t *err) {
    json_t *rec = NULL;
    bool applied = false;
    tsr_err_t rc = tsr_audit__record_from_event(ev, &rec, err);
    if (rc == TSR_OK) {
        append_ctx_t c = {a, ev->tenantid, rec};
        rc = tsr_store_apply_once(a->store, TSR_AUDIT_GROUP, ev->id, append_effect, &c, &applied,
                                  err);
    }
    json_decref(rec);
    if (stored != NULL) {
        *stored = rc == TSR_OK && applied;
    }
    return rc;
}

tsr_err_t tsr_audit_handle_event(void *opaque, const tsr_event_t *ev, void *txn, tsr_error_t *err) {
    tsr_audit_t *a = opaque;
    json_t *rec = NULL;
    tsr_err_t rc = tsr_audit__record_from_event(ev, &rec, err);
    if (rc == TSR_OK) {
        rc = tsr_audit__append(a, txn != NULL ? txn : a->store, ev->tenantid, rec, err);
    }
    json_decref(rec);
    return rc;
}

tsr_events_dedupe_t tsr_audit_dedupe(tsr_audit_t *a) {
    return tsr_store_events_dedupe(a->store);
}

/* ---- checkpoints and maintenance ----------------------------------------------------------- */

tsr_err_t tsr_audit_checkpoint(tsr_audit_t *a, const char *tenant, bool *written,
                               tsr_error_t *err) {
    tsr_store_t *tx = NULL;
    json_t *head = NULL;
    bool w = false;
    tsr_err_t rc = tsr_store_txn_begin(a->store, &tx, err);
    if (rc == TSR_OK) {
        rc = head_get(tx, tenant, &head, err);
    }
    if (rc == TSR_OK && jint(head, "seq") > jint(head, "checkpointSeq")) {
        rc = tsr_audit__checkpoint_write(a, tx, tenant, head, err);
        if (rc == TSR_OK) {
            rc = head_put(tx, tenant, head, err);
        }
        w = rc == TSR_OK;
    }
    if (rc == TSR_OK) {
        rc = tsr_store_txn_commit(tx, err);
        tx = NULL;
    }
    tsr_store_txn_rollback(tx);
    json_decref(head);
    if (written != NULL) {
        *written = rc == TSR_OK && w;
    }
    return rc;
}

static tsr_err_t heads_each(tsr_audit_t *a,
                            tsr_err_t (*fn)(tsr_audit_t *, const json_t *, void *, tsr_error_t *),
                            void *ud, tsr_error_t *err) {
    char *cursor = NULL;
    tsr_err_t rc = TSR_OK;
    do {
        tsr_store_query_t q = {.limit = 200, .cursor = cursor};
        tsr_store_page_t pg = {0};
        rc = tsr_store_platform_doc_list(a->store, TSR_AUDIT_C_CHAINS, &q, &pg, err);
        free(cursor);
        cursor = NULL;
        if (rc != TSR_OK) {
            break;
        }
        size_t i;
        json_t *d;
        json_array_foreach(pg.items, i, d) {
            if (strcmp(jstr(d, "id"), TSR_AUDIT__HEAD_ID) == 0 &&
                (rc = fn(a, d, ud, err)) != TSR_OK) {
                break;
            }
        }
        if (rc == TSR_OK && pg.next_cursor != NULL) {
            cursor = tsr_xstrdup(pg.next_cursor);
        }
        tsr_store_page_cleanup(&pg);
    } while (rc == TSR_OK && cursor != NULL);
    free(cursor);
    return rc;
}

static tsr_err_t maintain_one(tsr_audit_t *a, const json_t *head, void *ud, tsr_error_t *err) {
    bool force = *(bool *)ud;
    int64_t age = tsr_wall_ms() - jint(head, "checkpointTime");
    if (jint(head, "seq") > jint(head, "checkpointSeq") &&
        (force || age >= (int64_t)a->checkpoint_interval_s * 1000)) {
        return tsr_audit_checkpoint(a, jstr(head, "tenantId"), NULL, err);
    }
    return TSR_OK;
}

tsr_err_t tsr_audit_maintain(tsr_audit_t *a, const char *owner, bool force, bool *ran,
                             tsr_error_t *err) {
    tsr_store_lease_t lease;
    *ran = false;
    /* Look before taking: skips the common "another replica holds it" round without a write
     * (and, until pkg/store fixes it, its use-after-free in the ECONFLICT message). */
    tsr_err_t rc = tsr_store_lease_get(a->store, TSR_AUDIT__LEASE, &lease, err);
    if (rc == TSR_OK && lease.owner[0] != '\0' && strcmp(lease.owner, owner) != 0 &&
        lease.expires_ms > tsr_wall_ms()) {
        return TSR_OK;
    }
    if (rc != TSR_OK && rc != TSR_ENOTFOUND) {
        return rc;
    }
    tsr_error_clear(err);
    rc = tsr_store_lease_acquire(a->store, TSR_AUDIT__LEASE, owner, LEASE_TTL_MS, &lease, err);
    if (rc == TSR_ECONFLICT) { /* another replica runs this round */
        tsr_error_clear(err);
        return TSR_OK;
    }
    if (rc != TSR_OK) {
        return rc;
    }
    *ran = true;
    return heads_each(a, maintain_one, &force, err);
}

static tsr_err_t collect_tenant(tsr_audit_t *a, const json_t *head, void *ud, tsr_error_t *err) {
    (void)a;
    (void)err;
    json_array_append_new(ud, json_string(jstr(head, "tenantId")));
    return TSR_OK;
}

tsr_err_t tsr_audit_tenants(tsr_audit_t *a, json_t **out, tsr_error_t *err) {
    *out = json_array();
    tsr_err_t rc = heads_each(a, collect_tenant, *out, err);
    if (rc != TSR_OK) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

/* ---- verification -------------------------------------------------------------------------- */

typedef struct {
    json_t *report;
    bool broken;
} vstate_t;

static void brk(vstate_t *v, int64_t seq, const char *id, const char *reason, const char *detail) {
    if (v->broken) {
        return;
    }
    v->broken = true;
    json_t *b = json_pack("{sI ss ss}", "seq", (json_int_t)seq, "reason", reason, "detail", detail);
    if (id != NULL) {
        json_object_set_new(b, "id", json_string(id));
    }
    json_object_set_new(v->report, "firstBreak", b);
}

/* One page of a collection by seq in [lo, hi] (hi < 0: no upper bound). */
static tsr_err_t seq_page(tsr_store_t *st, const char *tenant, const char *coll, int64_t lo,
                          int64_t hi, bool desc, size_t limit, const char *cursor,
                          tsr_store_page_t *pg, tsr_error_t *err) {
    json_t *vlo = json_integer(lo), *vhi = json_integer(hi);
    tsr_store_filter_t f[2] = {{"seq", TSR_STORE_GE, vlo}, {"seq", TSR_STORE_LE, vhi}};
    tsr_store_query_t q = {.filters = f,
                           .n_filters = hi >= 0 ? 2 : 1,
                           .sort = "seq",
                           .descending = desc,
                           .limit = limit,
                           .cursor = cursor};
    tsr_err_t rc = tsr_store_doc_list(st, tenant, coll, &q, pg, err);
    json_decref(vlo);
    json_decref(vhi);
    return rc;
}

static tsr_err_t seq_hash_at(tsr_audit_t *a, const char *tenant, int64_t seq, char out[65],
                             bool *found, tsr_error_t *err) {
    tsr_store_page_t pg = {0};
    *found = false;
    tsr_err_t rc =
        seq_page(a->store, tenant, TSR_AUDIT_C_EVENTS, seq, seq, false, 1, NULL, &pg, err);
    if (rc == TSR_OK && json_array_size(pg.items) == 1) {
        snprintf(out, 65, "%s", jstr(json_array_get(pg.items, 0), "hash"));
        *found = true;
    }
    tsr_store_page_cleanup(&pg);
    return rc;
}

/* Check one checkpoint doc against the chain hash at its seq and the previous signature. */
static void check_checkpoint(tsr_audit_t *a, vstate_t *v, const char *tenant, const json_t *cp,
                             const char *hash_at_seq, const char **prev_sig) {
    json_t *pl = NULL;
    tsr_error_t e;
    int64_t seq = jint(cp, "seq");
    const char *jws = jstr(cp, "jws");
    if (tsr_audit__verify_sig(a, jws, &pl, &e) != TSR_OK) {
        brk(v, seq, NULL, "checkpoint-signature", e.msg);
    } else if (strcmp(jstr(pl, "tenantId"), tenant) != 0 || jint(pl, "seq") != seq ||
               strcmp(jstr(pl, "hash"), jstr(cp, "hash")) != 0) {
        brk(v, seq, NULL, "checkpoint-signature", "signed payload differs from the checkpoint");
    } else if (hash_at_seq != NULL && strcmp(jstr(pl, "hash"), hash_at_seq) != 0) {
        brk(v, seq, NULL, "checkpoint-hash-mismatch",
            "the chain's hash at this seq differs from the signed one");
    } else if (*prev_sig != NULL && strcmp(jstr(pl, "prevSig"), *prev_sig) != 0) {
        brk(v, seq, NULL, "checkpoint-chain", "does not name the previous checkpoint");
    }
    *prev_sig = sig_part(jws);
    json_decref(pl);
}

tsr_err_t tsr_audit_verify(tsr_audit_t *a, const char *tenant, int64_t from, int64_t to,
                           size_t max_events, json_t **report, tsr_error_t *err) {
    json_t *head = NULL, *cps = NULL;
    char prev[65] = TSR_AUDIT__GENESIS;
    char *cursor = NULL;
    tsr_store_page_t pg = {0};
    vstate_t v = {0};
    int64_t checked = 0, last_seq = 0, head_seq, max_seq;
    tsr_err_t rc;
    *report = NULL;
    if (!tenant_ok(tenant) || from < 0 || to < 0 || (to > 0 && to < from)) {
        return tsr_error_set(err, TSR_EINVAL, "verify: bad tenant or range");
    }
    if ((rc = head_get(a->store, tenant, &head, err)) != TSR_OK) {
        return rc;
    }
    head_seq = jint(head, "seq");
    /* the highest stored seq: a head behind it is caught up by the next append */
    if ((rc = seq_page(a->store, tenant, TSR_AUDIT_C_EVENTS, 1, -1, true, 1, NULL, &pg, err)) !=
        TSR_OK) {
        goto out;
    }
    max_seq = json_array_size(pg.items) == 1 ? jint(json_array_get(pg.items, 0), "seq") : 0;
    tsr_store_page_cleanup(&pg);
    if (max_seq < head_seq) {
        max_seq = head_seq;
    }
    from = from == 0 ? 1 : from;
    to = (to == 0 || to > max_seq) ? max_seq : to;
    v.report = json_pack("{sb ss sI sI sI s{sI ss} sI sb}", "ok", 1, "tenantId", tenant, "from",
                         (json_int_t)from, "to", (json_int_t)to, "checked", (json_int_t)0, "head",
                         "seq", (json_int_t)head_seq, "hash", jstr(head, "hash"), "checkpoints",
                         (json_int_t)0, "truncated", 0);
    if (from > 1 && from <= to) {
        bool found = false;
        if ((rc = seq_hash_at(a, tenant, from - 1, prev, &found, err)) != TSR_OK) {
            goto out;
        }
        if (!found) {
            brk(&v, from - 1, NULL, "missing", "no record with this seq");
        }
    }
    /* checkpoints in range, oldest first (at most one per event, so bounded by the range) */
    cps = json_array();
    const char *prev_sig = NULL;
    json_t *before = NULL;
    if ((rc = seq_page(a->store, tenant, TSR_AUDIT_C_CHECKPOINTS, 1, from - 1, true, 1, NULL, &pg,
                       err)) != TSR_OK) {
        goto out;
    }
    if (json_array_size(pg.items) == 1) {
        before = json_incref(json_array_get(pg.items, 0));
    }
    tsr_store_page_cleanup(&pg);
    if (before != NULL) {
        prev_sig = sig_part(jstr(before, "jws"));
    }
    do {
        if ((rc = seq_page(a->store, tenant, TSR_AUDIT_C_CHECKPOINTS, from, to, false, VERIFY_PAGE,
                           cursor, &pg, err)) != TSR_OK) {
            goto out_before;
        }
        free(cursor);
        cursor = pg.next_cursor != NULL ? tsr_xstrdup(pg.next_cursor) : NULL;
        json_array_extend(cps, pg.items);
        tsr_store_page_cleanup(&pg);
    } while (cursor != NULL && json_array_size(cps) <= (max_events ? max_events : SIZE_MAX));
    free(cursor);
    cursor = NULL;
    size_t k = 0;
    int64_t expect = from;
    bool truncated = false;
    while (!v.broken && expect <= to) {
        if ((rc = seq_page(a->store, tenant, TSR_AUDIT_C_EVENTS, from, to, false, VERIFY_PAGE,
                           cursor, &pg, err)) != TSR_OK) {
            goto out_before;
        }
        size_t i;
        json_t *d;
        json_array_foreach(pg.items, i, d) {
            char h[65];
            int64_t s = jint(d, "seq");
            const char *id = jstr(d, "id");
            if (s != expect) {
                brk(&v, expect, NULL, "missing", "no record with this seq");
                break;
            }
            if (strcmp(jstr(d, "tenantId"), tenant) != 0) {
                brk(&v, s, id, "tenant-mismatch", "record names another tenant");
                break;
            }
            if (strcmp(jstr(d, "prevHash"), prev) != 0) {
                brk(&v, s, id, "prev-hash-mismatch",
                    "prevHash is not the previous record's hash (deleted or reordered)");
                break;
            }
            tsr_audit__record_hash(d, h);
            if (strcmp(h, jstr(d, "hash")) != 0) {
                brk(&v, s, id, "hash-mismatch", "the record was changed after it was stored");
                break;
            }
            while (k < json_array_size(cps) && jint(json_array_get(cps, k), "seq") <= s) {
                json_t *cp = json_array_get(cps, k++);
                check_checkpoint(a, &v, tenant, cp, jint(cp, "seq") == s ? h : NULL, &prev_sig);
                json_object_set_new(v.report, "checkpoints",
                                    json_integer(jint(v.report, "checkpoints") + 1));
            }
            if (v.broken) {
                break;
            }
            snprintf(prev, sizeof prev, "%s", h);
            last_seq = s;
            expect = s + 1;
            checked++;
            if (max_events != 0 && (size_t)checked >= max_events && expect <= to) {
                truncated = true;
                break;
            }
        }
        bool empty = json_array_size(pg.items) == 0;
        free(cursor);
        cursor = pg.next_cursor != NULL ? tsr_xstrdup(pg.next_cursor) : NULL;
        tsr_store_page_cleanup(&pg);
        if (truncated) {
            break;
        }
        if (!v.broken && (empty || cursor == NULL) && expect <= to) {
            brk(&v, expect, NULL, "missing", "no record with this seq");
        }
    }
    json_object_set_new(v.report, "checked", json_integer(checked));
    if (truncated) {
        json_object_set_new(v.report, "truncated", json_true());
        json_object_set_new(v.report, "nextFrom", json_integer(last_seq + 1));
        json_object_set_new(v.report, "to", json_integer(last_seq));
    }
    if (!v.broken && !truncated && head_seq >= from && head_seq <= to && head_seq > 0) {
        char h[65];
        bool found = false;
        if ((rc = seq_hash_at(a, tenant, head_seq, h, &found, err)) != TSR_OK) {
            goto out_before;
        }
        if (!found || strcmp(h, jstr(head, "hash")) != 0) {
            brk(&v, head_seq, NULL, "head-mismatch", "the chain head does not match the records");
        }
    }
    if (!v.broken && !truncated) {
        /* a checkpoint past the last record: records were cut off the end */
        if ((rc = seq_page(a->store, tenant, TSR_AUDIT_C_CHECKPOINTS, max_seq + 1, -1, false, 1,
                           NULL, &pg, err)) != TSR_OK) {
            goto out_before;
        }
        if (json_array_size(pg.items) > 0) {
            brk(&v, jint(json_array_get(pg.items, 0), "seq"), NULL, "checkpoint-beyond-head",
                "a signed checkpoint names records that are gone");
        }
        tsr_store_page_cleanup(&pg);
    }
    json_object_set_new(v.report, "ok", json_boolean(!v.broken));
    if (a->jwks != NULL) {
        json_object_set(v.report, "checkpointKeys", a->jwks);
    }
    *report = v.report;
    v.report = NULL;
out_before:
    json_decref(before);
out:
    free(cursor);
    tsr_store_page_cleanup(&pg);
    json_decref(cps);
    json_decref(v.report);
    json_decref(head);
    return rc;
}
