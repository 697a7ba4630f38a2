/*
 * evtool: the separate processes of the pkg/events integration tests (test_events.sh), each
 * keeping its state in a pkg/store store (--store URI, e.g. "sqlite:/tmp/x/app.db"):
 *   app      write N changes to K entity documents, each committed with its event in the
 *            store's outbox (tsr_store_doc_create/replace), then relay the outbox through
 *            tsr_store_events_outbox until it is empty; a restart resumes after the last write
 *   produce  publish N events straight through the idempotent producer (no store)
 *   consume  consume a topic in a group, applying each event through tsr_store_events_dedupe
 *            (effect and processed id in one store transaction), until N distinct events are
 *            applied
 *   check    assert on a store: effects == distinct == N, order per key, outbox empty
 * Faultpoints (TSR_FAULTPOINT): outbox.after_write, relay.after_publish,
 * consumer.after_effect. Exit codes: 0 ok, 1 failure, 2 usage, 3 timeout.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "events.h"
#include "log.h"
#include "store.h"
#include "store_events.h"

#define IT_TENANT "tenant-it"
#define IT_ENTITIES "entities"       /* app side: one document per key, "seq" = last change */
#define IT_EFFECTS "effects"         /* consumer side: one document per application */
#define IT_PROJECTIONS "projections" /* consumer side: per subject, last seq and order breaks */
#define IT_DUPLICATES "duplicates"   /* consumer side: one document per skipped redelivery */

typedef struct {
    const char *cmd;
    const char *store;
    const char *bootstrap;
    const char *topic;
    const char *group;
    const char *prefix;
    const char *ready;
    int64_t count;
    int64_t keys;
    int64_t timeout_s;
} args_t;

static tsr_events_consumer_t *volatile g_consumer;

static void on_term(int sig) {
    (void)sig;
    if (g_consumer != NULL) {
        tsr_events_consumer_stop(g_consumer);
    }
}

static int usage(void) {
    fputs("usage: evtool app|produce|consume|check [--store URI] [--bootstrap B] [--topic T]\n"
          "       [--group G] [--prefix P] [--count N] [--keys K] [--timeout S] [--ready F]\n",
          stderr);
    return 2;
}

static int parse_args(int argc, char **argv, args_t *a) {
    memset(a, 0, sizeof *a);
    a->count = 10;
    a->keys = 4;
    a->timeout_s = 60;
    a->prefix = "it";
    if (argc < 2) {
        return -1;
    }
    a->cmd = argv[1];
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i];
        const char *v = argv[i + 1];
        if (strcmp(k, "--store") == 0) {
            a->store = v;
        } else if (strcmp(k, "--bootstrap") == 0) {
            a->bootstrap = v;
        } else if (strcmp(k, "--topic") == 0) {
            a->topic = v;
        } else if (strcmp(k, "--group") == 0) {
            a->group = v;
        } else if (strcmp(k, "--prefix") == 0) {
            a->prefix = v;
        } else if (strcmp(k, "--ready") == 0) {
            a->ready = v;
        } else if (strcmp(k, "--count") == 0) {
            if (tsr_str_to_i64(tsr_str(v), 0, 1000000, &a->count) != TSR_OK) {
                return -1;
            }
        } else if (strcmp(k, "--keys") == 0) {
            if (tsr_str_to_i64(tsr_str(v), 1, 1000, &a->keys) != TSR_OK) {
                return -1;
            }
        } else if (strcmp(k, "--timeout") == 0) {
            if (tsr_str_to_i64(tsr_str(v), 1, 3600, &a->timeout_s) != TSR_OK) {
                return -1;
            }
        } else {
            return -1;
        }
    }
    return 0;
}

static tsr_store_t *open_store(const args_t *a) {
    static const tsr_store_collection_t colls[] = {
        {.name = IT_ENTITIES},
        {.name = IT_EFFECTS},
        {.name = IT_PROJECTIONS},
        {.name = IT_DUPLICATES},
    };
    tsr_store_opts_t o = {.collections = colls, .n_collections = sizeof colls / sizeof colls[0]};
    tsr_store_t *s = NULL;
    tsr_error_t err;
    if (tsr_store_create(a->store, &o, &s, &err) != TSR_OK) {
        fprintf(stderr, "store %s: %s\n", a->store, err.msg);
        return NULL;
    }
    return s;
}

/* Event i of a run: subject/key "<prefix>-k<i % keys>", data {"seq": i}. */
static char *make_event(const args_t *a, int64_t i, char key[64], char id[25]) {
    tsr_event_t ev;
    tsr_error_t err;
    snprintf(key, 64, "%s-k%lld", a->prefix, (long long)(i % a->keys));
    if (tsr_event_init(&ev, "/tessera/it", "com.tessera.v1.app.updated", IT_TENANT, key,
                       json_pack("{s:I}", "seq", (json_int_t)i), &err) != TSR_OK) {
        fprintf(stderr, "event: %s\n", err.msg);
        exit(1);
    }
    snprintf(id, 25, "%s", ev.id);
    char *s;
    size_t n;
    if (tsr_event_format(&ev, &s, &n, &err) != TSR_OK) {
        fprintf(stderr, "format: %s\n", err.msg);
        exit(1);
    }
    tsr_event_cleanup(&ev);
    return s;
}

/* Every document of collection (all pages). *out: returned-owned JSON array. */
static tsr_err_t list_all(tsr_store_t *s, const char *collection, json_t **out, tsr_error_t *err) {
    json_t *all = json_array();
    char *cursor = NULL;
    tsr_err_t rc;
    do {
        tsr_store_query_t q = {.limit = TSR_STORE_LIST_MAX, .cursor = cursor};
        tsr_store_page_t page = {0};
        rc = tsr_store_doc_list(s, IT_TENANT, collection, &q, &page, err);
        free(cursor);
        cursor = NULL;
        if (rc == TSR_OK) {
            json_array_extend(all, page.items);
            cursor = page.next_cursor;
            page.next_cursor = NULL;
        }
        tsr_store_page_cleanup(&page);
    } while (rc == TSR_OK && cursor != NULL);
    free(cursor);
    if (rc != TSR_OK) {
        json_decref(all);
        all = NULL;
    }
    *out = all;
    return rc;
}

static int64_t int_member(const json_t *doc, const char *name) {
    json_t *v = json_object_get(doc, name);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

/* ---- app: store writes with their events, then the outbox relay ------------------------- */

/* Commit change i (entity "<prefix>-k<i % keys>" gets seq i) with its event, unless a previous
 * run already did: changes are written in order, so the entity's seq tells. */
static tsr_err_t write_change(tsr_store_t *s, const args_t *a, int64_t i, const char *topic,
                              bool *written, tsr_error_t *err) {
    char key[64], id[25];
    json_t *have = NULL;
    *written = false;
    snprintf(key, sizeof key, "%s-k%lld", a->prefix, (long long)(i % a->keys));
    tsr_err_t rc = tsr_store_doc_get(s, IT_TENANT, IT_ENTITIES, key, &have, err);
    if (rc != TSR_OK && rc != TSR_ENOTFOUND) {
        return rc;
    }
    if (have != NULL && int_member(have, "seq") >= i) {
        json_decref(have);
        return TSR_OK;
    }
    char *payload = make_event(a, i, key, id);
    tsr_store_event_t ev = {id, topic, key, payload, strlen(payload)};
    json_t *doc = json_pack("{s:I,s:s}", "seq", (json_int_t)i, "lastEventId", id);
    if (have == NULL) {
        rc = tsr_store_doc_create(s, IT_TENANT, IT_ENTITIES, key, doc, &ev, 1, NULL, err);
    } else {
        rc = tsr_store_doc_replace(s, IT_TENANT, IT_ENTITIES, key, int_member(have, "version"), doc,
                                   &ev, 1, NULL, err);
    }
    *written = rc == TSR_OK;
    json_decref(doc);
    json_decref(have);
    free(payload);
    return rc;
}

static int cmd_app(const args_t *a) {
    tsr_error_t err;
    if (a->store == NULL || a->bootstrap == NULL || a->topic == NULL) {
        return usage();
    }
    tsr_store_t *s = open_store(a);
    if (s == NULL) {
        return 1;
    }
    int64_t written = 0;
    for (int64_t i = 0; i < a->count; i++) {
        bool w = false;
        if (write_change(s, a, i, a->topic, &w, &err) != TSR_OK) {
            fprintf(stderr, "write %lld: %s\n", (long long)i, err.msg);
            tsr_store_destroy(s);
            return 1;
        }
        if (w) {
            written++;
            /* committed in the store, not yet published */
            tsr_events_faultpoint("outbox.after_write");
        }
    }
    tsr_events_producer_t *p = NULL;
    tsr_events_producer_opts_t po = {.bootstrap = a->bootstrap, .client_id = "evtool-app"};
    if (tsr_events_producer_create(&po, &p, &err) != TSR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        tsr_store_destroy(s);
        return 1;
    }
    tsr_events_outbox_t ob = tsr_store_events_outbox(s);
    tsr_events_relay_opts_t ro = {.batch = 16};
    tsr_events_relay_t *r = NULL;
    if (tsr_events_relay_create(p, &ob, &ro, &r, &err) != TSR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        tsr_events_producer_destroy(p);
        tsr_store_destroy(s);
        return 1;
    }
    uint64_t deadline = tsr_mono_ms() + (uint64_t)a->timeout_s * 1000;
    size_t total = 0;
    int rc = 3;
    while (tsr_mono_ms() < deadline) {
        size_t published = 0;
        tsr_err_t e = tsr_events_relay_run_once(r, &published, &err);
        total += published;
        if (e == TSR_OK && published == 0) {
            rc = 0; /* a clean round that fetched nothing: the outbox is empty */
            break;
        }
        if (e != TSR_OK) {
            fprintf(stderr, "relay: %s\n", err.msg);
            struct timespec ts = {0, 200 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    printf("{\"cmd\":\"app\",\"written\":%lld,\"published\":%zu,\"rc\":%d}\n", (long long)written,
           total, rc);
    tsr_events_relay_destroy(r);
    tsr_events_producer_destroy(p);
    tsr_store_destroy(s);
    return rc;
}

/* ---- produce ----------------------------------------------------------------------------- */

static int cmd_produce(const args_t *a) {
    tsr_error_t err;
    if (a->bootstrap == NULL || a->topic == NULL) {
        return usage();
    }
    tsr_events_producer_t *p = NULL;
    tsr_events_producer_opts_t po = {.bootstrap = a->bootstrap, .client_id = "evtool-produce"};
    if (tsr_events_producer_create(&po, &p, &err) != TSR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    size_t n = (size_t)a->count;
    tsr_events_msg_t *msgs = tsr_xcalloc(n, sizeof *msgs);
    char(*keys)[64] = tsr_xcalloc(n, 64);
    char **payloads = tsr_xcalloc(n, sizeof *payloads);
    for (size_t i = 0; i < n; i++) {
        char id[25];
        payloads[i] = make_event(a, (int64_t)i, keys[i], id);
        msgs[i].topic = a->topic;
        msgs[i].key = keys[i];
        msgs[i].payload = payloads[i];
        msgs[i].payload_len = strlen(payloads[i]);
    }
    tsr_err_t e = tsr_events_producer_send(p, msgs, n, &err);
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        ok += msgs[i].result == TSR_OK;
        free(payloads[i]);
    }
    printf("{\"cmd\":\"produce\",\"sent\":%zu,\"acknowledged\":%zu}\n", n, ok);
    if (e != TSR_OK) {
        fprintf(stderr, "produce: %s\n", err.msg);
    }
    free(payloads);
    free(keys);
    free(msgs);
    tsr_events_producer_destroy(p);
    return e == TSR_OK ? 0 : 1;
}

/* ---- consume: effects through the store's processed-event-id set ------------------------- */

/* The effect of one event, written through txn (the store transaction apply_once opened, so
 * it commits together with the processed mark): one effects document per application, and the
 * subject's projection, whose outOfOrder counts applications that did not raise its seq. */
static tsr_err_t it_handler(void *opaque, const tsr_event_t *ev, void *txn, tsr_error_t *err) {
    tsr_store_t *tx = txn;
    (void)opaque;
    if (ev->subject == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "event %s has no subject", ev->id);
    }
    int64_t seq = int_member(ev->data, "seq");
    json_t *effect = json_pack("{s:s,s:s,s:I}", "eventId", ev->id, "subject", ev->subject, "seq",
                               (json_int_t)seq);
    tsr_err_t rc =
        tsr_store_doc_create(tx, ev->tenantid, IT_EFFECTS, NULL, effect, NULL, 0, NULL, err);
    json_decref(effect);
    if (rc != TSR_OK) {
        return rc;
    }
    json_t *proj = NULL;
    rc = tsr_store_doc_get(tx, ev->tenantid, IT_PROJECTIONS, ev->subject, &proj, err);
    if (rc == TSR_ENOTFOUND) {
        json_t *doc = json_pack("{s:I,s:i}", "lastSeq", (json_int_t)seq, "outOfOrder", 0);
        rc = tsr_store_doc_create(tx, ev->tenantid, IT_PROJECTIONS, ev->subject, doc, NULL, 0, NULL,
                                  err);
        json_decref(doc);
    } else if (rc == TSR_OK) {
        int64_t broken = int_member(proj, "outOfOrder") + (seq <= int_member(proj, "lastSeq"));
        json_t *doc =
            json_pack("{s:I,s:I}", "lastSeq", (json_int_t)seq, "outOfOrder", (json_int_t)broken);
        rc = tsr_store_doc_replace(tx, ev->tenantid, IT_PROJECTIONS, ev->subject,
                                   int_member(proj, "version"), doc, NULL, 0, NULL, err);
        json_decref(doc);
    }
    json_decref(proj);
    return rc;
}

/* The store's dedupe adapter, wrapped only to record each skipped redelivery durably so that
 * `check` can prove one happened (the consumer's own counter dies with a killed process). */
static tsr_events_dedupe_t g_store_dedupe;

static tsr_err_t counting_apply_once(void *ctx, const char *group, const char *event_id,
                                     tsr_events_effect_cb effect, void *effect_opaque,
                                     bool *applied, tsr_error_t *err) {
    tsr_err_t rc = g_store_dedupe.apply_once(g_store_dedupe.ctx, group, event_id, effect,
                                             effect_opaque, applied, err);
    if (rc == TSR_OK && !*applied) {
        json_t *doc = json_pack("{s:s,s:s}", "eventId", event_id, "group", group);
        tsr_error_t derr;
        if (tsr_store_doc_create(ctx, IT_TENANT, IT_DUPLICATES, NULL, doc, NULL, 0, NULL, &derr) !=
            TSR_OK) {
            fprintf(stderr, "record duplicate: %s\n", derr.msg);
        }
        json_decref(doc);
    }
    return rc;
}

typedef struct {
    long long effects;          /* effect documents: one per application */
    long long distinct_effects; /* distinct event ids among them */
    long long duplicates;       /* redeliveries the dedupe set skipped */
    long long writes;           /* app side: committed entity writes (sum of versions) */
    long long outbox_unsent;    /* app side: outbox rows not yet marked sent */
    bool order_ok;              /* per subject, seq strictly increasing in apply order */
} counts_t;

static int cmp_str(const void *x, const void *y) {
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static long long count_distinct(const json_t *effects) {
    size_t n = json_array_size(effects);
    long long distinct = 0;
    const char **ids = tsr_xcalloc(n + 1, sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_object_get(json_array_get(effects, i), "eventId"));
        ids[i] = id != NULL ? id : "";
    }
    qsort(ids, n, sizeof *ids, cmp_str);
    for (size_t i = 0; i < n; i++) {
        distinct += i == 0 || strcmp(ids[i], ids[i - 1]) != 0;
    }
    free(ids);
    return distinct;
}

static tsr_err_t counts_get(tsr_store_t *s, counts_t *c, tsr_error_t *err) {
    json_t *effects = NULL, *projs = NULL, *dups = NULL, *ents = NULL;
    tsr_store_event_t *rows = NULL;
    size_t n_rows = 0, i;
    json_t *d;
    memset(c, 0, sizeof *c);
    tsr_err_t rc;
    if ((rc = list_all(s, IT_EFFECTS, &effects, err)) != TSR_OK ||
        (rc = list_all(s, IT_PROJECTIONS, &projs, err)) != TSR_OK ||
        (rc = list_all(s, IT_DUPLICATES, &dups, err)) != TSR_OK ||
        (rc = list_all(s, IT_ENTITIES, &ents, err)) != TSR_OK ||
        (rc = tsr_store_platform_outbox_fetch(s, TSR_STORE_LIST_MAX, &rows, &n_rows, err)) !=
            TSR_OK) {
        goto out;
    }
    c->effects = (long long)json_array_size(effects);
    c->distinct_effects = count_distinct(effects);
    c->duplicates = (long long)json_array_size(dups);
    c->order_ok = true;
    json_array_foreach(projs, i, d) {
        c->order_ok = c->order_ok && int_member(d, "outOfOrder") == 0;
    }
    json_array_foreach(ents, i, d) {
        c->writes += int_member(d, "version");
    }
    c->outbox_unsent = (long long)n_rows;
out:
    tsr_store_outbox_rows_free(rows, n_rows);
    json_decref(effects);
    json_decref(projs);
    json_decref(dups);
    json_decref(ents);
    return rc;
}

static int cmd_consume(const args_t *a) {
    tsr_error_t err;
    if (a->store == NULL || a->bootstrap == NULL || a->topic == NULL || a->group == NULL) {
        return usage();
    }
    tsr_store_t *s = open_store(a);
    if (s == NULL) {
        return 1;
    }
    g_store_dedupe = tsr_store_events_dedupe(s);
    const char *topics[] = {a->topic};
    tsr_events_consumer_opts_t o = {0};
    o.bootstrap = a->bootstrap;
    o.group = a->group;
    o.topics = topics;
    o.n_topics = 1;
    o.client_id = "evtool-consume";
    o.handler = it_handler;
    o.dedupe = (tsr_events_dedupe_t){s, counting_apply_once};
    o.session_timeout_ms = 6000;
    tsr_events_consumer_t *c = NULL;
    if (tsr_events_consumer_create(&o, &c, &err) != TSR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        tsr_store_destroy(s);
        return 1;
    }
    g_consumer = c;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    uint64_t deadline = tsr_mono_ms() + (uint64_t)a->timeout_s * 1000;
    bool ready_written = false;
    int rc = 3;
    counts_t cnt = {0};
    while (tsr_mono_ms() < deadline) {
        bool processed = false;
        tsr_err_t e = tsr_events_consumer_poll(c, 200, &processed, &err);
        if (e != TSR_OK && e != TSR_ECANCELED) {
            fprintf(stderr, "consume: %s\n", err.msg);
        }
        if (!ready_written && a->ready != NULL && tsr_events_consumer_is_assigned(c, NULL)) {
            FILE *f = fopen(a->ready, "w");
            if (f != NULL) {
                fclose(f);
            }
            ready_written = true;
        }
        if (processed || cnt.distinct_effects == 0) {
            tsr_error_t cerr;
            if (counts_get(s, &cnt, &cerr) != TSR_OK) {
                fprintf(stderr, "counts: %s\n", cerr.msg);
            }
        }
        if (cnt.distinct_effects >= a->count) {
            rc = 0;
            break;
        }
        if (e == TSR_ECANCELED) {
            rc = 1;
            break;
        }
    }
    tsr_events_consumer_stats_t st;
    tsr_events_consumer_stats(c, &st);
    printf("{\"cmd\":\"consume\",\"applied\":%llu,\"duplicates\":%llu,\"distinct\":%lld,"
           "\"rc\":%d}\n",
           (unsigned long long)st.applied, (unsigned long long)st.duplicates, cnt.distinct_effects,
           rc);
    fflush(stdout);
    g_consumer = NULL;
    tsr_events_consumer_destroy(c);
    tsr_store_destroy(s);
    return rc;
}

static int cmd_check(const args_t *a) {
    tsr_error_t err;
    if (a->store == NULL) {
        return usage();
    }
    tsr_store_t *s = open_store(a);
    if (s == NULL) {
        return 1;
    }
    counts_t c;
    tsr_err_t rc = counts_get(s, &c, &err);
    tsr_store_destroy(s);
    if (rc != TSR_OK) {
        fprintf(stderr, "check: %s\n", err.msg);
        return 1;
    }
    printf("{\"effects\":%lld,\"distinct\":%lld,\"duplicates\":%lld,\"writes\":%lld,"
           "\"outboxUnsent\":%lld,\"orderOk\":%s}\n",
           c.effects, c.distinct_effects, c.duplicates, c.writes, c.outbox_unsent,
           c.order_ok ? "true" : "false");
    return 0;
}

int main(int argc, char **argv) {
    args_t a;
    tsr_log_init("evtool", TSR_LOG_WARN, stderr);
    if (parse_args(argc, argv, &a) != 0) {
        return usage();
    }
    if (strcmp(a.cmd, "app") == 0) {
        return cmd_app(&a);
    }
    if (strcmp(a.cmd, "produce") == 0) {
        return cmd_produce(&a);
    }
    if (strcmp(a.cmd, "consume") == 0) {
        return cmd_consume(&a);
    }
    if (strcmp(a.cmd, "check") == 0) {
        return cmd_check(&a);
    }
    return usage();
}
