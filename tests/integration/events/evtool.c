/*
 * evtool: the separate processes of the pkg/events integration tests (test_events.sh).
 *   app      write N entities, each with its event in the outbox (one SQLite transaction),
 *            then run the outbox relay until the outbox is empty
 *   produce  publish N events straight through the idempotent producer
 *   consume  consume a topic in a group, applying each event once through the SQLite dedupe,
 *            until N distinct events are applied
 *   check    assert on a database: effects == distinct == N, order per key, outbox empty
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
#include "sqlite_events_store.h"

typedef struct {
    const char *cmd;
    const char *db;
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
    fputs("usage: evtool app|produce|consume|check [--db F] [--bootstrap B] [--topic T]\n"
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
        if (strcmp(k, "--db") == 0) {
            a->db = v;
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

/* Event i of a run: subject/key "<prefix>-k<i % keys>", data {"seq": i}. */
static char *make_event(const args_t *a, int64_t i, char key[64], char id[25]) {
    tsr_event_t ev;
    tsr_error_t err;
    snprintf(key, 64, "%s-k%lld", a->prefix, (long long)(i % a->keys));
    if (tsr_event_init(&ev, "/tessera/it", "com.tessera.v1.app.updated", "tenant-it", key,
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

static int cmd_app(const args_t *a) {
    tsr_test_sqlite_store_t s;
    tsr_error_t err;
    if (a->db == NULL || a->bootstrap == NULL || a->topic == NULL) {
        return usage();
    }
    if (tsr_test_sqlite_store_open(&s, a->db, &err) != TSR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int64_t created = 0;
    for (int64_t i = 0; i < a->count; i++) {
        char key[64], id[25], entity[96];
        char *payload = make_event(a, i, key, id);
        snprintf(entity, sizeof entity, "%s-e%lld", a->prefix, (long long)i);
        bool was_new = false;
        if (tsr_test_sqlite_store_write_entity(&s, entity, a->topic, key, id, payload, &was_new,
                                               &err) != TSR_OK) {
            fprintf(stderr, "write: %s\n", err.msg);
            free(payload);
            return 1;
        }
        free(payload);
        if (was_new) {
            created++;
            /* committed in the store, not yet published */
            tsr_events_faultpoint("outbox.after_write");
        }
    }
    tsr_events_producer_t *p = NULL;
    tsr_events_producer_opts_t po = {.bootstrap = a->bootstrap, .client_id = "evtool-app"};
    if (tsr_events_producer_create(&po, &p, &err) != TSR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    tsr_events_outbox_t ob = tsr_test_sqlite_store_outbox(&s);
    tsr_events_relay_opts_t ro = {.batch = 16};
    tsr_events_relay_t *r = NULL;
    if (tsr_events_relay_create(p, &ob, &ro, &r, &err) != TSR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    uint64_t deadline = tsr_mono_ms() + (uint64_t)a->timeout_s * 1000;
    size_t total = 0;
    int rc = 3;
    while (tsr_mono_ms() < deadline) {
        size_t published = 0;
        tsr_err_t e = tsr_events_relay_run_once(r, &published, &err);
        total += published;
        tsr_test_sqlite_counts_t c;
        tsr_test_sqlite_store_counts(&s, &c, &err);
        if (e == TSR_OK && c.outbox_unsent == 0) {
            rc = 0;
            break;
        }
        if (e != TSR_OK) {
            fprintf(stderr, "relay: %s\n", err.msg);
            struct timespec ts = {0, 200 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    printf("{\"cmd\":\"app\",\"created\":%lld,\"published\":%zu,\"rc\":%d}\n", (long long)created,
           total, rc);
    tsr_events_relay_destroy(r);
    tsr_events_producer_destroy(p);
    tsr_test_sqlite_store_close(&s);
    return rc;
}

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

static tsr_err_t it_handler(void *opaque, const tsr_event_t *ev, void *txn, tsr_error_t *err) {
    (void)opaque;
    json_t *seq = json_object_get(ev->data, "seq");
    return tsr_test_sqlite_store_record_effect(
        txn, ev->id, ev->subject, json_is_integer(seq) ? json_integer_value(seq) : -1, err);
}

static int cmd_consume(const args_t *a) {
    tsr_test_sqlite_store_t s;
    tsr_error_t err;
    if (a->db == NULL || a->bootstrap == NULL || a->topic == NULL || a->group == NULL) {
        return usage();
    }
    if (tsr_test_sqlite_store_open(&s, a->db, &err) != TSR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const char *topics[] = {a->topic};
    tsr_events_consumer_opts_t o = {0};
    o.bootstrap = a->bootstrap;
    o.group = a->group;
    o.topics = topics;
    o.n_topics = 1;
    o.client_id = "evtool-consume";
    o.handler = it_handler;
    o.dedupe = tsr_test_sqlite_store_dedupe(&s);
    o.session_timeout_ms = 6000;
    tsr_events_consumer_t *c = NULL;
    if (tsr_events_consumer_create(&o, &c, &err) != TSR_OK) {
        fprintf(stderr, "%s\n", err.msg);
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
    tsr_test_sqlite_counts_t cnt = {0};
    while (tsr_mono_ms() < deadline) {
        tsr_err_t e = tsr_events_consumer_poll(c, 200, NULL, &err);
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
        tsr_test_sqlite_store_counts(&s, &cnt, &err);
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
    tsr_test_sqlite_store_close(&s);
    return rc;
}

static int cmd_check(const args_t *a) {
    tsr_test_sqlite_store_t s;
    tsr_error_t err;
    if (a->db == NULL) {
        return usage();
    }
    if (tsr_test_sqlite_store_open(&s, a->db, &err) != TSR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    tsr_test_sqlite_counts_t c;
    tsr_test_sqlite_store_counts(&s, &c, &err);
    tsr_test_sqlite_store_close(&s);
    printf("{\"effects\":%lld,\"distinct\":%lld,\"duplicates\":%lld,\"outboxTotal\":%lld,"
           "\"outboxUnsent\":%lld,\"orderOk\":%s}\n",
           c.effects, c.distinct_effects, c.duplicates, c.outbox_total, c.outbox_unsent,
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
