/*
 * Unit tests for pkg/events: CloudEvents envelope format/parse and its rejections, versioned
 * types, the topic catalogue against the README, bootstrap lookup, faultpoints, and the
 * producer, consumer and outbox relay against librdkafka's in-process mock cluster (with its
 * error injection). Store interfaces are in-memory here; tests/integration uses pkg/store.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "events.h"

/* ---- helpers: envelopes ------------------------------------------------------------------ */

static tsr_err_t parse_str(const char *s, tsr_error_t *err) {
    tsr_event_t ev;
    tsr_err_t rc = tsr_event_parse(s, strlen(s), &ev, err);
    tsr_event_cleanup(&ev);
    return rc;
}

#define GOOD_PREFIX "{\"specversion\":\"1.0\",\"source\":\"/t\",\"tenantid\":\"t1\""

START_TEST(test_event_format_then_parse_roundtrip_preserves_attributes) {
    tsr_event_t ev, back;
    tsr_error_t err;
    json_t *data = json_pack("{s:s,s:i}", "name", "Sales", "n", 3);
    ck_assert_int_eq(tsr_event_init(&ev, "/tessera/spaces", "com.tessera.v1.app.created", "tn1",
                                    "app42", data, &err),
                     TSR_OK);
    ev.userid = strdup("u7");
    ev.traceid = strdup("tr9");
    char *s = NULL;
    size_t n = 0;
    ck_assert_int_eq(tsr_event_format(&ev, &s, &n, &err), TSR_OK);
    ck_assert_uint_eq(strlen(s), n);
    ck_assert_ptr_nonnull(strstr(s, "\"specversion\":\"1.0\""));
    ck_assert_int_eq(tsr_event_parse(s, n, &back, &err), TSR_OK);
    ck_assert_str_eq(back.id, ev.id);
    ck_assert_uint_eq(strlen(back.id), 24);
    ck_assert_str_eq(back.source, "/tessera/spaces");
    ck_assert_str_eq(back.type, "com.tessera.v1.app.created");
    ck_assert_str_eq(back.time, ev.time);
    ck_assert_str_eq(back.subject, "app42");
    ck_assert_str_eq(back.datacontenttype, "application/json");
    ck_assert_str_eq(back.tenantid, "tn1");
    ck_assert_str_eq(back.userid, "u7");
    ck_assert_str_eq(back.traceid, "tr9");
    ck_assert(json_equal(back.data, ev.data));
    free(s);
    tsr_event_cleanup(&back);
    tsr_event_cleanup(&ev);
    tsr_event_cleanup(NULL);
}
END_TEST

START_TEST(test_event_parse_missing_specversion_is_einval) {
    tsr_error_t err;
    ck_assert_int_eq(
        parse_str("{\"id\":\"1\",\"source\":\"/t\",\"type\":\"com.tessera.v1.app.created\","
                  "\"tenantid\":\"t\"}",
                  &err),
        TSR_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "specversion"));
}
END_TEST

START_TEST(test_event_parse_missing_id_is_einval) {
    tsr_error_t err;
    ck_assert_int_eq(parse_str(GOOD_PREFIX ",\"type\":\"com.tessera.v1.app.created\"}", &err),
                     TSR_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "id"));
    ck_assert_int_eq(
        parse_str(GOOD_PREFIX ",\"id\":\"\",\"type\":\"com.tessera.v1.app.created\"}", &err),
        TSR_EINVAL);
}
END_TEST

START_TEST(test_event_parse_missing_type_is_einval) {
    tsr_error_t err;
    ck_assert_int_eq(parse_str(GOOD_PREFIX ",\"id\":\"1\"}", &err), TSR_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "type"));
    ck_assert_int_eq(parse_str(GOOD_PREFIX ",\"id\":\"1\",\"type\":\"app.created\"}", &err),
                     TSR_EINVAL);
}
END_TEST

START_TEST(test_event_parse_missing_tenantid_is_einval) {
    tsr_error_t err;
    ck_assert_int_eq(parse_str("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/t\","
                               "\"type\":\"com.tessera.v1.app.created\"}",
                               &err),
                     TSR_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "tenantid"));
}
END_TEST

START_TEST(test_event_parse_wrong_specversion_is_einval) {
    tsr_error_t err;
    ck_assert_int_eq(parse_str("{\"specversion\":\"0.3\",\"id\":\"1\",\"source\":\"/t\","
                               "\"tenantid\":\"t\",\"type\":\"com.tessera.v1.app.created\"}",
                               &err),
                     TSR_EINVAL);
    ck_assert_int_eq(parse_str("{\"specversion\":1.0,\"id\":\"1\",\"source\":\"/t\","
                               "\"tenantid\":\"t\",\"type\":\"com.tessera.v1.app.created\"}",
                               &err),
                     TSR_EINVAL);
}
END_TEST

START_TEST(test_event_parse_wrong_member_types_is_einval) {
    tsr_error_t err;
    ck_assert_int_eq(
        parse_str(GOOD_PREFIX ",\"id\":5,\"type\":\"com.tessera.v1.app.created\"}", &err),
        TSR_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "id: must be a string"));
    ck_assert_int_eq(parse_str(GOOD_PREFIX ",\"id\":\"1\",\"type\":[\"x\"]}", &err), TSR_EINVAL);
    ck_assert_int_eq(parse_str(GOOD_PREFIX ",\"id\":\"1\",\"type\":\"com.tessera.v1.app.created\","
                                           "\"userid\":{}}",
                               &err),
                     TSR_EINVAL);
    ck_assert_int_eq(parse_str(GOOD_PREFIX ",\"id\":\"1\",\"type\":\"com.tessera.v1.app.created\","
                                           "\"time\":\"yesterday\"}",
                               &err),
                     TSR_EINVAL);
    ck_assert_int_eq(parse_str(GOOD_PREFIX ",\"id\":\"1\",\"type\":\"com.tessera.v1.app.created\","
                                           "\"datacontenttype\":\"text/plain\",\"data\":\"x\"}",
                               &err),
                     TSR_EINVAL);
}
END_TEST

START_TEST(test_event_parse_not_an_object_is_einval) {
    tsr_error_t err;
    ck_assert_int_eq(parse_str("[1,2]", &err), TSR_EINVAL);
    ck_assert_int_eq(parse_str("{\"specversion\":", &err), TSR_EINVAL);
    ck_assert_int_eq(parse_str("", &err), TSR_EINVAL);
    /* duplicate keys could smuggle a second id past a validating proxy */
    ck_assert_int_eq(parse_str(GOOD_PREFIX ",\"id\":\"1\",\"id\":\"2\","
                                           "\"type\":\"com.tessera.v1.app.created\"}",
                               &err),
                     TSR_EINVAL);
}
END_TEST

START_TEST(test_event_parse_oversized_is_etoobig) {
    tsr_error_t err;
    size_t n = TSR_EVENT_MAX_BYTES + 1;
    char *big = malloc(n);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    tsr_event_t ev;
    ck_assert_int_eq(tsr_event_parse(big, n, &ev, &err), TSR_ETOOBIG);
    free(big);
    /* one attribute over its cap */
    char attr[TSR_EVENT_ATTR_MAX + 200];
    int w = snprintf(attr, sizeof attr,
                     GOOD_PREFIX ",\"type\":\"com.tessera.v1.app.created\",\"id\":\"%0*d\"}",
                     TSR_EVENT_ATTR_MAX + 1, 7);
    ck_assert_int_gt(w, 0);
    ck_assert_int_eq(parse_str(attr, &err), TSR_EINVAL);
}
END_TEST

START_TEST(test_event_format_oversized_data_is_etoobig) {
    tsr_event_t ev;
    tsr_error_t err;
    char *s = malloc(TSR_EVENT_MAX_BYTES + 1);
    memset(s, 'a', TSR_EVENT_MAX_BYTES);
    s[TSR_EVENT_MAX_BYTES] = '\0';
    ck_assert_int_eq(tsr_event_init(&ev, "/t", "com.tessera.v1.app.created", "t", NULL,
                                    json_pack("{s:s}", "blob", s), &err),
                     TSR_OK);
    char *out = (char *)1;
    size_t n = 1;
    ck_assert_int_eq(tsr_event_format(&ev, &out, &n, &err), TSR_ETOOBIG);
    ck_assert_ptr_null(out);
    tsr_event_cleanup(&ev);
    free(s);
}
END_TEST

START_TEST(test_event_init_bad_type_is_einval_and_takes_data) {
    tsr_event_t ev;
    tsr_error_t err;
    json_t *d = json_object();
    json_incref(d);
    ck_assert_int_eq(tsr_event_init(&ev, "/t", "app.created", "t", NULL, d, &err), TSR_EINVAL);
    ck_assert_int_eq(d->refcount, 1);
    json_decref(d);
    ck_assert_ptr_null(ev.id);
}
END_TEST

/* ---- versioned types --------------------------------------------------------------------- */

START_TEST(test_event_type_parse_v1_app_created_splits_parts) {
    tsr_event_type_t t;
    tsr_error_t err;
    ck_assert_int_eq(tsr_event_type_parse("com.tessera.v1.app.created", &t, &err), TSR_OK);
    ck_assert_uint_eq(t.version, 1);
    ck_assert_str_eq(t.domain, "app");
    ck_assert_str_eq(t.action, "created");
    ck_assert_int_eq(tsr_event_type_parse("com.tessera.v12.reload.finished", &t, &err), TSR_OK);
    ck_assert_uint_eq(t.version, 12);
    ck_assert_str_eq(t.domain, "reload");
}
END_TEST

START_TEST(test_event_type_parse_multi_segment_domain_keeps_domain) {
    tsr_event_type_t t;
    tsr_error_t err;
    ck_assert_int_eq(tsr_event_type_parse("com.tessera.v2.space.member.added", &t, &err), TSR_OK);
    ck_assert_uint_eq(t.version, 2);
    ck_assert_str_eq(t.domain, "space.member");
    ck_assert_str_eq(t.action, "added");
}
END_TEST

START_TEST(test_event_type_parse_malformed_is_einval) {
    static const char *bad[] = {
        "",
        "com.tessera.app.created",
        "com.tessera.v0.app.created",
        "com.tessera.v01.app.created",
        "com.tessera.vx.app.created",
        "com.tessera.v1.app",
        "com.tessera.v1.app.",
        "com.tessera.v1..created",
        "com.tessera.v1.App.created",
        "com.tessera.v1.app.created!",
        "org.other.v1.app.created",
        "com.tessera.v1",
        "com.tessera.v99999.app.created",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tsr_event_type_t t;
        tsr_error_t err;
        ck_assert_msg(tsr_event_type_parse(bad[i], &t, &err) == TSR_EINVAL, "accepted %s", bad[i]);
    }
}
END_TEST

START_TEST(test_event_type_format_valid_parts_roundtrips) {
    char buf[128];
    tsr_error_t err;
    tsr_event_type_t t;
    ck_assert_int_eq(tsr_event_type_format(3, "space.member", "removed", buf, sizeof buf, &err),
                     TSR_OK);
    ck_assert_str_eq(buf, "com.tessera.v3.space.member.removed");
    ck_assert_int_eq(tsr_event_type_parse(buf, &t, &err), TSR_OK);
    ck_assert_int_eq(tsr_event_type_format(0, "app", "created", buf, sizeof buf, &err), TSR_EINVAL);
    ck_assert_int_eq(tsr_event_type_format(1, "app", "a.b", buf, sizeof buf, &err), TSR_EINVAL);
    ck_assert_int_eq(tsr_event_type_format(1, "app", "created", buf, 10, &err), TSR_ETOOBIG);
}
END_TEST

/* ---- catalogue, bootstrap, faultpoints --------------------------------------------------- */

START_TEST(test_events_topics_catalogue_has_dlq_and_partitions) {
    int n = 0;
    for (const tsr_events_topic_t *t = tsr_events_topics(); t->name != NULL; t++, n++) {
        ck_assert_int_gt(t->partitions, 0);
        ck_assert_ptr_eq(tsr_events_topic_get(t->name), t);
    }
    ck_assert_int_ge(n, 7);
    ck_assert_ptr_nonnull(tsr_events_topic_get(TSR_EVENTS_TOPIC_DLQ));
    ck_assert_int_eq(tsr_events_topic_get("tessera.apps")->partitions, 8);
    ck_assert_ptr_null(tsr_events_topic_get("nope"));
}
END_TEST

START_TEST(test_events_topics_readme_lists_catalogue_exactly) {
    char path[1024];
    snprintf(path, sizeof path, "%s/pkg/events/README.md", TSR_SOURCE_DIR);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    static char readme[256 * 1024];
    size_t n = fread(readme, 1, sizeof readme - 1, f);
    readme[n] = '\0';
    fclose(f);
    char *table = NULL;
    size_t tlen = 0;
    FILE *m = open_memstream(&table, &tlen);
    tsr_events_topics_print_markdown(m);
    fclose(m);
    for (char *line = table; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        *nl = '\0';
        ck_assert_msg(strstr(readme, line) != NULL, "README.md lacks catalogue row: %s", line);
        line = nl + 1;
    }
    free(table);
}
END_TEST

START_TEST(test_events_bootstrap_resolve_empty_knob_reads_state_file) {
    char dir[] = "/tmp/tsr_events_bsXXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/kafka", dir);
    ck_assert_int_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/kafka/bootstrap", dir);
    setenv("TSR_STATE_DIR", dir, 1);
    setenv("TSR_KAFKA_BOOTSTRAP", "", 1);
    char *bs = NULL;
    tsr_error_t err;
    ck_assert_int_eq(tsr_events_bootstrap_resolve(&bs, &err), TSR_ENOTFOUND);
    FILE *f = fopen(path, "w");
    fputs("127.0.0.1:1234,127.0.0.1:5678\n", f);
    fclose(f);
    ck_assert_int_eq(tsr_events_bootstrap_resolve(&bs, &err), TSR_OK);
    ck_assert_str_eq(bs, "127.0.0.1:1234,127.0.0.1:5678");
    free(bs);
    setenv("TSR_KAFKA_BOOTSTRAP", "kafka-0:9092", 1);
    ck_assert_int_eq(tsr_events_bootstrap_resolve(&bs, &err), TSR_OK);
    ck_assert_str_eq(bs, "kafka-0:9092");
    free(bs);
    unlink(path);
    snprintf(path, sizeof path, "%s/kafka", dir);
    rmdir(path);
    rmdir(dir);
}
END_TEST

START_TEST(test_events_faultpoint_nth_hit_kills_process) {
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        setenv("TSR_FAULTPOINT", "x.y:3", 1);
        tsr_events_faultpoint("x.y");
        tsr_events_faultpoint("x.yz");
        tsr_events_faultpoint("other");
        tsr_events_faultpoint("x.y");
        _exit(7); /* not reached if the third hit kills */
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 7);
    pid = fork();
    if (pid == 0) {
        setenv("TSR_FAULTPOINT", "x.y:3", 1);
        for (int i = 0; i < 3; i++) {
            tsr_events_faultpoint("x.y");
        }
        _exit(7);
    }
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}
END_TEST

/* ---- helpers: in-process mock cluster and in-memory store interfaces --------------------- */

typedef struct {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    const char *bootstrap;
} mock_t;

/* librdkafka 2.0.2's mock cluster thread drains its wake-up pipe after serving its ops, so an
 * op issued right after the previous one returned often loses its wake-up and waits for the
 * thread's 1 s poll timeout. A short pause between back-to-back mock ops avoids that stall
 * (speed only: a missed wake-up still completes, a second later). */
static void mock_settle(void) {
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

static void mock_start(mock_t *m, int brokers) {
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, NULL);
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    ck_assert_ptr_nonnull(m->rk);
    m->mc = rd_kafka_mock_cluster_new(m->rk, brokers);
    ck_assert_ptr_nonnull(m->mc);
    m->bootstrap = rd_kafka_mock_cluster_bootstraps(m->mc);
    ck_assert_int_eq(rd_kafka_mock_topic_create(m->mc, "t.unit", 4, brokers), 0);
    mock_settle();
    ck_assert_int_eq(rd_kafka_mock_topic_create(m->mc, TSR_EVENTS_TOPIC_DLQ, 1, brokers), 0);
    mock_settle();
}

/* Messages in topic's log (sum over its partitions of high - low watermark), read by a client
 * of its own: how many copies the producers really wrote. */
static int64_t log_size(const mock_t *m, const char *topic, int partitions) {
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    ck_assert_int_eq(
        rd_kafka_conf_set(conf, "bootstrap.servers", m->bootstrap, errstr, sizeof errstr),
        RD_KAFKA_CONF_OK);
    rd_kafka_conf_set_log_cb(conf, NULL);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    ck_assert_ptr_nonnull(rk);
    int64_t total = 0;
    for (int32_t p = 0; p < partitions; p++) {
        int64_t lo = -1, hi = -1;
        ck_assert_int_eq(rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        total += hi - lo;
    }
    rd_kafka_destroy(rk);
    return total;
}

/* Often takes about 1 s: the mock cluster joins an internal broker thread that only notices
 * its termination at its next 1 s wake-up (librdkafka 2.0.2). */
static void mock_stop(mock_t *m) {
    rd_kafka_mock_cluster_destroy(m->mc);
    rd_kafka_destroy(m->rk);
}

#define MAX_IDS 512

typedef struct {
    pthread_mutex_t mu;
    char *ids[MAX_IDS];
    size_t n;
} mem_dedupe_t;

static bool mem_has(mem_dedupe_t *d, const char *id) {
    for (size_t i = 0; i < d->n; i++) {
        if (strcmp(d->ids[i], id) == 0) {
            return true;
        }
    }
    return false;
}

static tsr_err_t mem_apply_once(void *ctx, const char *group, const char *event_id,
                                tsr_events_effect_cb effect, void *opaque, bool *applied,
                                tsr_error_t *err) {
    mem_dedupe_t *d = ctx;
    (void)group;
    *applied = false;
    pthread_mutex_lock(&d->mu);
    bool seen = mem_has(d, event_id);
    pthread_mutex_unlock(&d->mu);
    if (seen) {
        return TSR_OK;
    }
    tsr_err_t rc = effect(opaque, NULL, err);
    if (rc != TSR_OK) {
        return rc;
    }
    pthread_mutex_lock(&d->mu);
    ck_assert_uint_lt(d->n, MAX_IDS);
    d->ids[d->n++] = strdup(event_id);
    pthread_mutex_unlock(&d->mu);
    *applied = true;
    return TSR_OK;
}

static void mem_dedupe_cleanup(mem_dedupe_t *d) {
    for (size_t i = 0; i < d->n; i++) {
        free(d->ids[i]);
    }
    pthread_mutex_destroy(&d->mu);
}

/* What the handler saw: effects in order, with a per-key sequence check. */
typedef struct {
    int fail_first; /* fail this many calls, then succeed */
    bool always_fail;
    int calls;
    int effects;
    int last_seq[16]; /* per key index: last applied sequence */
    bool order_broken;
    char last_id[64];
} handler_t;

static tsr_err_t test_handler(void *opaque, const tsr_event_t *ev, void *txn, tsr_error_t *err) {
    handler_t *h = opaque;
    (void)txn;
    h->calls++;
    if (h->always_fail || h->calls <= h->fail_first) {
        return tsr_error_set(err, TSR_EUNAVAILABLE, "handler failure #%d", h->calls);
    }
    tsr_event_type_t t;
    if (tsr_event_type_parse(ev->type, &t, err) != TSR_OK || t.version > 1) {
        return tsr_error_set(err, TSR_EUNSUPPORTED, "version %u not understood", t.version);
    }
    json_t *k = json_object_get(ev->data, "k");
    json_t *s = json_object_get(ev->data, "seq");
    if (json_is_integer(k) && json_is_integer(s)) {
        int ki = (int)json_integer_value(k);
        int si = (int)json_integer_value(s);
        if (si <= h->last_seq[ki]) {
            h->order_broken = true;
        }
        h->last_seq[ki] = si;
    }
    snprintf(h->last_id, sizeof h->last_id, "%s", ev->id);
    h->effects++;
    return TSR_OK;
}

static char *make_payload(const char *type, int k, int seq, char id_out[25]) {
    tsr_event_t ev;
    tsr_error_t err;
    char subject[16];
    snprintf(subject, sizeof subject, "app%d", k);
    ck_assert_int_eq(tsr_event_init(&ev, "/unit", type, "tn1", subject,
                                    json_pack("{s:i,s:i}", "k", k, "seq", seq), &err),
                     TSR_OK);
    if (id_out != NULL) {
        snprintf(id_out, 25, "%s", ev.id);
    }
    char *s;
    size_t n;
    ck_assert_int_eq(tsr_event_format(&ev, &s, &n, &err), TSR_OK);
    tsr_event_cleanup(&ev);
    return s;
}

static tsr_events_producer_t *producer_for(const mock_t *m, int delivery_timeout_ms) {
    tsr_events_producer_opts_t o = {
        .bootstrap = m->bootstrap, .client_id = "unit", .delivery_timeout_ms = delivery_timeout_ms};
    tsr_events_producer_t *p = NULL;
    tsr_error_t err;
    ck_assert_int_eq(tsr_events_producer_create(&o, &p, &err), TSR_OK);
    return p;
}

static const char *const g_unit_topics[] = {"t.unit"};

/* A consumer of t.unit in group, assigned before it is returned. session_ms also sets how long
 * the mock broker waits for members after one leaves (session_ms - 1000): a member joining
 * the group after a leave waits that long. */
static tsr_events_consumer_t *consumer_with_session(const mock_t *m, const char *group,
                                                    handler_t *h, mem_dedupe_t *d, int max_attempts,
                                                    int session_ms) {
    tsr_events_consumer_opts_t o = {0};
    o.bootstrap = m->bootstrap;
    o.group = group;
    o.topics = g_unit_topics;
    o.n_topics = 1;
    o.handler = test_handler;
    o.handler_opaque = h;
    o.dedupe.ctx = d;
    o.dedupe.apply_once = mem_apply_once;
    o.max_attempts = max_attempts;
    o.backoff_initial_ms = 20;
    o.backoff_max_ms = 100;
    o.session_timeout_ms = session_ms;
    tsr_events_consumer_t *c = NULL;
    tsr_error_t err;
    ck_assert_int_eq(tsr_events_consumer_create(&o, &c, &err), TSR_OK);
    /* wait for the assignment before producing (group joins take seconds) */
    for (int i = 0; i < 300 && !tsr_events_consumer_is_assigned(c, NULL); i++) {
        tsr_events_consumer_poll(c, 100, NULL, &err);
    }
    ck_assert(tsr_events_consumer_is_assigned(c, NULL));
    return c;
}

static tsr_events_consumer_t *consumer_for(const mock_t *m, const char *group, handler_t *h,
                                           mem_dedupe_t *d, int max_attempts) {
    return consumer_with_session(m, group, h, d, max_attempts, 6000);
}

/* Poll until cond(h, stats) holds; 30 s cap so a broken build fails instead of hanging. */
typedef bool (*done_fn)(const handler_t *h, const tsr_events_consumer_stats_t *st, int want);

static void consume_until(tsr_events_consumer_t *c, const handler_t *h, done_fn done, int want) {
    tsr_events_consumer_stats_t st;
    tsr_error_t err;
    for (int i = 0; i < 300; i++) {
        tsr_events_consumer_stats(c, &st);
        if (done(h, &st, want)) {
            return;
        }
        tsr_events_consumer_poll(c, 100, NULL, &err);
    }
    tsr_events_consumer_stats(c, &st);
    ck_assert_msg(done(h, &st, want), "condition not reached: effects=%d applied=%llu dup=%llu",
                  h->effects, (unsigned long long)st.applied, (unsigned long long)st.duplicates);
}

static bool applied_at_least(const handler_t *h, const tsr_events_consumer_stats_t *st, int want) {
    (void)h;
    return st->applied >= (uint64_t)want;
}

static bool handled_at_least(const handler_t *h, const tsr_events_consumer_stats_t *st, int want) {
    (void)h;
    return st->applied + st->duplicates + st->skipped + st->dead_lettered >= (uint64_t)want;
}

/* ---- producer and consumer against the mock cluster -------------------------------------- */

START_TEST(test_producer_send_mock_cluster_acknowledged_and_consumed_once) {
    mock_t m;
    mock_start(&m, 1);
    handler_t h = {0};
    mem_dedupe_t d = {.mu = PTHREAD_MUTEX_INITIALIZER};
    tsr_events_consumer_t *c = consumer_for(&m, "g.basic", &h, &d, 3);
    tsr_events_producer_t *p = producer_for(&m, 0);
    enum { N = 40 };
    tsr_events_msg_t msgs[N];
    char *payloads[N];
    char keys[N][8];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "app%d", i % 4);
        payloads[i] = make_payload("com.tessera.v1.app.updated", i % 4, i + 1, NULL);
        msgs[i].topic = "t.unit";
        msgs[i].key = keys[i];
        msgs[i].payload = payloads[i];
        msgs[i].payload_len = strlen(payloads[i]);
    }
    tsr_error_t err;
    ck_assert_int_eq(tsr_events_producer_send(p, msgs, N, &err), TSR_OK);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(msgs[i].result, TSR_OK);
        ck_assert_int_ge(msgs[i].offset, 0);
        /* same key, same partition */
        ck_assert_int_eq(msgs[i].partition, msgs[i % 4].partition);
        free(payloads[i]);
    }
    consume_until(c, &h, applied_at_least, N);
    /* the log holds each message once and all of it was handled: no late copy can follow */
    ck_assert_int_eq(log_size(&m, "t.unit", 4), N);
    tsr_events_consumer_stats_t st;
    tsr_events_consumer_stats(c, &st);
    ck_assert_uint_eq(st.applied, N);
    ck_assert_uint_eq(st.duplicates, 0);
    ck_assert_int_eq(h.effects, N);
    ck_assert(!h.order_broken);
    tsr_events_consumer_destroy(c);
    tsr_events_producer_destroy(p);
    mem_dedupe_cleanup(&d);
    mock_stop(&m);
}
END_TEST

START_TEST(test_producer_send_injected_broker_errors_retries_without_loss_or_duplicates) {
    mock_t m;
    mock_start(&m, 1);
    handler_t h = {0};
    mem_dedupe_t d = {.mu = PTHREAD_MUTEX_INITIALIZER};
    tsr_events_consumer_t *c = consumer_for(&m, "g.errors", &h, &d, 3);
    tsr_events_producer_t *p = producer_for(&m, 0);
    /* retriable produce errors, including one where the write may have landed */
    rd_kafka_mock_push_request_errors(
        m.mc, 0 /* Produce */, 6, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR__TRANSPORT);
    enum { N = 60 };
    tsr_error_t err;
    for (int i = 0; i < N; i++) {
        char *pl = make_payload("com.tessera.v1.app.updated", i % 3, i + 1, NULL);
        tsr_event_t ev;
        ck_assert_int_eq(tsr_event_parse(pl, strlen(pl), &ev, &err), TSR_OK);
        ck_assert_int_eq(tsr_events_producer_emit(p, "t.unit", NULL, &ev, &err), TSR_OK);
        tsr_event_cleanup(&ev);
        free(pl);
    }
    consume_until(c, &h, applied_at_least, N);
    /* the idempotent producer wrote each message once, also where a failed request may have
     * been appended: the log holds exactly N, all handled, nothing for the dedupe to catch */
    ck_assert_int_eq(log_size(&m, "t.unit", 4), N);
    tsr_events_consumer_stats_t st;
    tsr_events_consumer_stats(c, &st);
    ck_assert_uint_eq(st.applied, N);
    ck_assert_uint_eq(st.duplicates, 0);
    ck_assert(!h.order_broken);
    tsr_events_consumer_destroy(c);
    tsr_events_producer_destroy(p);
    mem_dedupe_cleanup(&d);
    mock_stop(&m);
}
END_TEST

static void produce_one(tsr_events_producer_t *p, const char *payload) {
    tsr_events_msg_t msg = {0};
    tsr_error_t err;
    msg.topic = "t.unit";
    msg.key = "k";
    msg.payload = payload;
    msg.payload_len = strlen(payload);
    ck_assert_int_eq(tsr_events_producer_send(p, &msg, 1, &err), TSR_OK);
}

START_TEST(test_consumer_poll_handler_fails_twice_retries_then_applies) {
    mock_t m;
    mock_start(&m, 1);
    handler_t h = {.fail_first = 2};
    mem_dedupe_t d = {.mu = PTHREAD_MUTEX_INITIALIZER};
    tsr_events_consumer_t *c = consumer_for(&m, "g.retry", &h, &d, 5);
    tsr_events_producer_t *p = producer_for(&m, 0);
    char *pl = make_payload("com.tessera.v1.app.created", 0, 1, NULL);
    produce_one(p, pl);
    free(pl);
    consume_until(c, &h, handled_at_least, 1);
    tsr_events_consumer_stats_t st;
    tsr_events_consumer_stats(c, &st);
    ck_assert_uint_eq(st.applied, 1);
    ck_assert_uint_eq(st.retries, 2);
    ck_assert_uint_eq(st.dead_lettered, 0);
    ck_assert_int_eq(h.calls, 3);
    tsr_events_consumer_destroy(c);
    tsr_events_producer_destroy(p);
    mem_dedupe_cleanup(&d);
    mock_stop(&m);
}
END_TEST

/* Read the single message of the dead-letter topic and return a header's value. */
static rd_kafka_message_t *read_dlq(const mock_t *m, rd_kafka_t **rk_out) {
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", m->bootstrap, errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "group.id", "dlq-reader", errstr, sizeof errstr);
    rd_kafka_conf_set_log_cb(conf, NULL);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    ck_assert_ptr_nonnull(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, TSR_EVENTS_TOPIC_DLQ, 0)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_message_t *got = NULL;
    for (int i = 0; i < 100 && got == NULL; i++) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(rk, 100);
        if (msg != NULL && msg->err == 0) {
            got = msg;
        } else if (msg != NULL) {
            rd_kafka_message_destroy(msg);
        }
    }
    ck_assert_ptr_nonnull(got);
    *rk_out = rk;
    return got;
}

/* Messages must be destroyed before their handle: rd_kafka_destroy waits for them. */
static void dlq_done(rd_kafka_message_t *msg, rd_kafka_t *rk) {
    rd_kafka_message_destroy(msg);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

static void header_eq(rd_kafka_message_t *msg, const char *name, const char *want) {
    rd_kafka_headers_t *hdrs = NULL;
    ck_assert_int_eq(rd_kafka_message_headers(msg, &hdrs), 0);
    const void *v;
    size_t n;
    ck_assert_int_eq(rd_kafka_header_get_last(hdrs, name, &v, &n), 0);
    ck_assert_msg(n == strlen(want) && memcmp(v, want, n) == 0, "header %s: %.*s != %s", name,
                  (int)n, (const char *)v, want);
}

START_TEST(test_consumer_poll_handler_always_fails_dead_letters_with_error) {
    mock_t m;
    mock_start(&m, 1);
    handler_t h = {.always_fail = true};
    mem_dedupe_t d = {.mu = PTHREAD_MUTEX_INITIALIZER};
    tsr_events_consumer_t *c = consumer_for(&m, "g.dlq", &h, &d, 3);
    tsr_events_producer_t *p = producer_for(&m, 0);
    char *pl = make_payload("com.tessera.v1.app.created", 0, 1, NULL);
    produce_one(p, pl);
    consume_until(c, &h, handled_at_least, 1);
    tsr_events_consumer_stats_t st;
    tsr_events_consumer_stats(c, &st);
    ck_assert_uint_eq(st.dead_lettered, 1);
    ck_assert_uint_eq(st.applied, 0);
    ck_assert_uint_eq(st.retries, 2);
    ck_assert_int_eq(h.calls, 3);
    rd_kafka_t *drk = NULL;
    rd_kafka_message_t *dm = read_dlq(&m, &drk);
    ck_assert_uint_eq(dm->len, strlen(pl));
    ck_assert(memcmp(dm->payload, pl, dm->len) == 0);
    ck_assert(dm->key_len == 1 && memcmp(dm->key, "k", 1) == 0);
    header_eq(dm, "tsr-error", "handler failure #3");
    header_eq(dm, "tsr-error-code", tsr_strerror(TSR_EUNAVAILABLE));
    header_eq(dm, "tsr-attempts", "3");
    header_eq(dm, "tsr-original-topic", "t.unit");
    header_eq(dm, "tsr-group", "g.dlq");
    dlq_done(dm, drk);
    free(pl);
    tsr_events_consumer_destroy(c);
    tsr_events_producer_destroy(p);
    mem_dedupe_cleanup(&d);
    mock_stop(&m);
}
END_TEST

START_TEST(test_consumer_poll_malformed_envelope_dead_letters_without_retry) {
    mock_t m;
    mock_start(&m, 1);
    handler_t h = {0};
    mem_dedupe_t d = {.mu = PTHREAD_MUTEX_INITIALIZER};
    tsr_events_consumer_t *c = consumer_for(&m, "g.poison", &h, &d, 5);
    tsr_events_producer_t *p = producer_for(&m, 0);
    produce_one(p, "{\"specversion\":\"1.0\",\"id\":42}");
    consume_until(c, &h, handled_at_least, 1);
    tsr_events_consumer_stats_t st;
    tsr_events_consumer_stats(c, &st);
    ck_assert_uint_eq(st.dead_lettered, 1);
    ck_assert_uint_eq(st.retries, 0);
    ck_assert_int_eq(h.calls, 0);
    rd_kafka_t *drk = NULL;
    rd_kafka_message_t *dm = read_dlq(&m, &drk);
    header_eq(dm, "tsr-error", "id: must be a string");
    header_eq(dm, "tsr-attempts", "0");
    dlq_done(dm, drk);
    tsr_events_consumer_destroy(c);
    tsr_events_producer_destroy(p);
    mem_dedupe_cleanup(&d);
    mock_stop(&m);
}
END_TEST

START_TEST(test_consumer_poll_duplicate_event_id_applied_once) {
    mock_t m;
    mock_start(&m, 1);
    handler_t h = {0};
    mem_dedupe_t d = {.mu = PTHREAD_MUTEX_INITIALIZER};
    tsr_events_consumer_t *c = consumer_for(&m, "g.dup", &h, &d, 3);
    tsr_events_producer_t *p = producer_for(&m, 0);
    char *pl = make_payload("com.tessera.v1.app.created", 0, 1, NULL);
    produce_one(p, pl);
    produce_one(p, pl); /* a relay republish after a crash looks exactly like this */
    free(pl);
    consume_until(c, &h, handled_at_least, 2);
    tsr_events_consumer_stats_t st;
    tsr_events_consumer_stats(c, &st);
    ck_assert_uint_eq(st.applied, 1);
    ck_assert_uint_eq(st.duplicates, 1);
    ck_assert_int_eq(h.effects, 1);
    tsr_events_consumer_destroy(c);
    tsr_events_producer_destroy(p);
    mem_dedupe_cleanup(&d);
    mock_stop(&m);
}
END_TEST

START_TEST(test_consumer_poll_unknown_version_skipped_not_recorded) {
    mock_t m;
    mock_start(&m, 1);
    handler_t h = {0};
    mem_dedupe_t d = {.mu = PTHREAD_MUTEX_INITIALIZER};
    tsr_events_consumer_t *c = consumer_for(&m, "g.ver", &h, &d, 3);
    tsr_events_producer_t *p = producer_for(&m, 0);
    char *v2 = make_payload("com.tessera.v2.app.created", 0, 1, NULL);
    char *v1 = make_payload("com.tessera.v1.app.created", 0, 2, NULL);
    produce_one(p, v2);
    produce_one(p, v1);
    free(v2);
    free(v1);
    consume_until(c, &h, handled_at_least, 2);
    tsr_events_consumer_stats_t st;
    tsr_events_consumer_stats(c, &st);
    ck_assert_uint_eq(st.skipped, 1);
    ck_assert_uint_eq(st.applied, 1);
    ck_assert_uint_eq(st.dead_lettered, 0);
    ck_assert_uint_eq(d.n, 1); /* the skipped id is not marked processed */
    tsr_events_consumer_destroy(c);
    tsr_events_producer_destroy(p);
    mem_dedupe_cleanup(&d);
    mock_stop(&m);
}
END_TEST

START_TEST(test_consumer_destroy_commits_so_next_member_resumes_after) {
    mock_t m;
    mock_start(&m, 1);
    handler_t h1 = {0}, h2 = {0};
    mem_dedupe_t d1 = {.mu = PTHREAD_MUTEX_INITIALIZER}, d2 = {.mu = PTHREAD_MUTEX_INITIALIZER};
    /* a 3 s session lets the next member in 2 s after this one leaves (6 s: 5 s) */
    tsr_events_consumer_t *c = consumer_with_session(&m, "g.resume", &h1, &d1, 3, 3000);
    tsr_events_producer_t *p = producer_for(&m, 0);
    for (int i = 0; i < 5; i++) {
        char *pl = make_payload("com.tessera.v1.app.created", 0, i + 1, NULL);
        produce_one(p, pl);
        free(pl);
    }
    consume_until(c, &h1, applied_at_least, 5);
    tsr_events_consumer_destroy(c);
    for (int i = 5; i < 8; i++) {
        char *pl = make_payload("com.tessera.v1.app.created", 0, i + 1, NULL);
        produce_one(p, pl);
        free(pl);
    }
    /* a fresh dedupe set: anything redelivered would be applied again and counted */
    c = consumer_for(&m, "g.resume", &h2, &d2, 3);
    consume_until(c, &h2, applied_at_least, 3);
    /* one key, one partition: a redelivered message would come before seq 8 and be one of the
     * three applied, so the third being seq 8 (the log's end) proves the resume point */
    ck_assert_int_eq(h2.effects, 3);
    ck_assert_int_eq(h2.last_seq[0], 8);
    tsr_events_consumer_destroy(c);
    tsr_events_producer_destroy(p);
    mem_dedupe_cleanup(&d1);
    mem_dedupe_cleanup(&d2);
    mock_stop(&m);
}
END_TEST

/* ---- outbox relay ------------------------------------------------------------------------ */

typedef struct {
    int n;
    char ids[32][25];
    char keys[32][8];
    char *payloads[32];
    const char *topics[32]; /* NULL: "t.unit" */
    bool sent[32];
    int mark_calls;
} mem_outbox_t;

static tsr_err_t mem_fetch(void *ctx, size_t limit, tsr_events_outbox_row_t *rows, size_t *n,
                           tsr_error_t *err) {
    mem_outbox_t *o = ctx;
    (void)err;
    *n = 0;
    for (int i = 0; i < o->n && *n < limit; i++) {
        if (!o->sent[i]) {
            rows[*n].id = o->ids[i];
            rows[*n].topic = o->topics[i] != NULL ? o->topics[i] : "t.unit";
            rows[*n].key = o->keys[i];
            rows[*n].payload = o->payloads[i];
            rows[*n].payload_len = strlen(o->payloads[i]);
            (*n)++;
        }
    }
    return TSR_OK;
}

static tsr_err_t mem_mark(void *ctx, const char *const *ids, size_t n, tsr_error_t *err) {
    mem_outbox_t *o = ctx;
    (void)err;
    o->mark_calls++;
    for (size_t j = 0; j < n; j++) {
        for (int i = 0; i < o->n; i++) {
            if (strcmp(o->ids[i], ids[j]) == 0) {
                o->sent[i] = true;
            }
        }
    }
    return TSR_OK;
}

static void mem_release(void *ctx, tsr_events_outbox_row_t *rows, size_t n) {
    (void)ctx;
    (void)rows;
    (void)n;
}

static void mem_outbox_fill(mem_outbox_t *o, int n) {
    memset(o, 0, sizeof *o);
    o->n = n;
    for (int i = 0; i < n; i++) {
        snprintf(o->keys[i], sizeof o->keys[i], "app%d", i % 2);
        o->payloads[i] = make_payload("com.tessera.v1.app.updated", i % 2, i + 1, o->ids[i]);
    }
}

static int mem_outbox_unsent(const mem_outbox_t *o) {
    int u = 0;
    for (int i = 0; i < o->n; i++) {
        u += !o->sent[i];
    }
    return u;
}

START_TEST(test_relay_run_once_publishes_then_marks_sent) {
    mock_t m;
    mock_start(&m, 1);
    handler_t h = {0};
    mem_dedupe_t d = {.mu = PTHREAD_MUTEX_INITIALIZER};
    tsr_events_consumer_t *c = consumer_for(&m, "g.relay", &h, &d, 3);
    tsr_events_producer_t *p = producer_for(&m, 0);
    mem_outbox_t ob;
    mem_outbox_fill(&ob, 10);
    tsr_events_outbox_t iface = {&ob, mem_fetch, mem_mark, mem_release};
    tsr_events_relay_t *r = NULL;
    tsr_events_relay_opts_t opts = {.batch = 4};
    tsr_error_t err;
    ck_assert_int_eq(tsr_events_relay_create(p, &iface, &opts, &r, &err), TSR_OK);
    size_t published = 0, total = 0;
    do {
        ck_assert_int_eq(tsr_events_relay_run_once(r, &published, &err), TSR_OK);
        total += published;
    } while (published > 0);
    ck_assert_uint_eq(total, 10);
    ck_assert_int_eq(mem_outbox_unsent(&ob), 0);
    ck_assert(tsr_events_relay_is_healthy(r));
    consume_until(c, &h, applied_at_least, 10);
    ck_assert(!h.order_broken);
    tsr_events_relay_destroy(r);
    for (int i = 0; i < ob.n; i++) {
        free(ob.payloads[i]);
    }
    tsr_events_consumer_destroy(c);
    tsr_events_producer_destroy(p);
    mem_dedupe_cleanup(&d);
    mock_stop(&m);
}
END_TEST

START_TEST(test_relay_run_once_broker_down_keeps_rows_unsent_until_up) {
    mock_t m;
    mock_start(&m, 1);
    tsr_events_producer_t *p = producer_for(&m, 1500);
    mem_outbox_t ob;
    mem_outbox_fill(&ob, 6);
    tsr_events_outbox_t iface = {&ob, mem_fetch, mem_mark, mem_release};
    tsr_events_relay_t *r = NULL;
    tsr_error_t err;
    ck_assert_int_eq(tsr_events_relay_create(p, &iface, NULL, &r, &err), TSR_OK);
    rd_kafka_mock_broker_set_down(m.mc, 1);
    size_t published = 99;
    ck_assert_int_eq(tsr_events_relay_run_once(r, &published, &err), TSR_EUNAVAILABLE);
    ck_assert_uint_eq(published, 0);
    ck_assert_int_eq(mem_outbox_unsent(&ob), 6);
    ck_assert_int_eq(ob.mark_calls, 0);
    ck_assert(!tsr_events_relay_is_healthy(r));
    rd_kafka_mock_broker_set_up(m.mc, 1);
    /* the relay's thread retries with backoff until the broker is back */
    ck_assert_int_eq(tsr_events_relay_start(r, &err), TSR_OK);
    for (int i = 0; i < 300 && mem_outbox_unsent(&ob) > 0; i++) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
        tsr_events_relay_kick(r);
    }
    tsr_events_relay_stop(r);
    ck_assert_int_eq(mem_outbox_unsent(&ob), 0);
    ck_assert(tsr_events_relay_is_healthy(r));
    tsr_events_relay_destroy(r);
    for (int i = 0; i < ob.n; i++) {
        free(ob.payloads[i]);
    }
    tsr_events_producer_destroy(p);
    mock_stop(&m);
}
END_TEST

START_TEST(test_relay_run_once_failed_row_holds_back_later_rows_of_its_key) {
    mock_t m;
    mock_start(&m, 1);
    ck_assert_int_eq(rd_kafka_mock_topic_create(m.mc, "t.denied", 1, 1), 0);
    mock_settle();
    rd_kafka_mock_topic_set_error(m.mc, "t.denied", RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    tsr_events_producer_t *p = producer_for(&m, 3000);
    mem_outbox_t ob;
    mem_outbox_fill(&ob, 4);   /* keys: app0, app1, app0, app1 */
    ob.topics[1] = "t.denied"; /* app1's first row fails ... */
    tsr_events_outbox_t iface = {&ob, mem_fetch, mem_mark, mem_release};
    tsr_events_relay_t *r = NULL;
    tsr_error_t err;
    ck_assert_int_eq(tsr_events_relay_create(p, &iface, NULL, &r, &err), TSR_OK);
    size_t published = 0;
    ck_assert_int_eq(tsr_events_relay_run_once(r, &published, &err), TSR_EUNAVAILABLE);
    ck_assert_uint_eq(published, 2);
    ck_assert(ob.sent[0] && ob.sent[2]);
    ck_assert(!ob.sent[1]);
    /* ... so app1's second row, although acknowledged, stays unsent and is republished after
     * the first: the key's order survives the retry */
    ck_assert(!ob.sent[3]);
    tsr_events_relay_destroy(r);
    for (int i = 0; i < ob.n; i++) {
        free(ob.payloads[i]);
    }
    tsr_events_producer_destroy(p);
    mock_stop(&m);
}
END_TEST

static void count_cb(void *opaque, tsr_err_t result, const char *error) {
    (void)error;
    if (result == TSR_OK) {
        (*(int *)opaque)++;
    }
}

START_TEST(test_producer_destroy_pending_async_sends_flushed) {
    mock_t m;
    mock_start(&m, 1);
    tsr_events_producer_t *p = producer_for(&m, 0);
    int delivered = 0;
    tsr_error_t err;
    char *pl = make_payload("com.tessera.v1.app.created", 0, 1, NULL);
    for (int i = 0; i < 200; i++) {
        ck_assert_int_eq(tsr_events_producer_send_async(p, "t.unit", "k", pl, strlen(pl), count_cb,
                                                        &delivered, &err),
                         TSR_OK);
    }
    free(pl);
    /* no poll: destroy must flush and serve every delivery report */
    tsr_events_producer_destroy(p);
    ck_assert_int_eq(delivered, 200);
    mock_stop(&m);
}
END_TEST

static Suite *events_suite(void) {
    Suite *s = suite_create("events");
    TCase *env = tcase_create("envelope");
    tcase_add_test(env, test_event_format_then_parse_roundtrip_preserves_attributes);
    tcase_add_test(env, test_event_parse_missing_specversion_is_einval);
    tcase_add_test(env, test_event_parse_missing_id_is_einval);
    tcase_add_test(env, test_event_parse_missing_type_is_einval);
    tcase_add_test(env, test_event_parse_missing_tenantid_is_einval);
    tcase_add_test(env, test_event_parse_wrong_specversion_is_einval);
    tcase_add_test(env, test_event_parse_wrong_member_types_is_einval);
    tcase_add_test(env, test_event_parse_not_an_object_is_einval);
    tcase_add_test(env, test_event_parse_oversized_is_etoobig);
    tcase_add_test(env, test_event_format_oversized_data_is_etoobig);
    tcase_add_test(env, test_event_init_bad_type_is_einval_and_takes_data);
    suite_add_tcase(s, env);
    TCase *ty = tcase_create("types");
    tcase_add_test(ty, test_event_type_parse_v1_app_created_splits_parts);
    tcase_add_test(ty, test_event_type_parse_multi_segment_domain_keeps_domain);
    tcase_add_test(ty, test_event_type_parse_malformed_is_einval);
    tcase_add_test(ty, test_event_type_format_valid_parts_roundtrips);
    suite_add_tcase(s, ty);
    TCase *w = tcase_create("wiring");
    tcase_add_test(w, test_events_topics_catalogue_has_dlq_and_partitions);
    tcase_add_test(w, test_events_topics_readme_lists_catalogue_exactly);
    tcase_add_test(w, test_events_bootstrap_resolve_empty_knob_reads_state_file);
    tcase_add_test(w, test_events_faultpoint_nth_hit_kills_process);
    suite_add_tcase(s, w);
    TCase *k = tcase_create("kafka");
    tcase_set_timeout(k, 120);
    tcase_add_test(k, test_producer_send_mock_cluster_acknowledged_and_consumed_once);
    tcase_add_test(k, test_producer_send_injected_broker_errors_retries_without_loss_or_duplicates);
    tcase_add_test(k, test_consumer_poll_handler_fails_twice_retries_then_applies);
    tcase_add_test(k, test_consumer_poll_handler_always_fails_dead_letters_with_error);
    tcase_add_test(k, test_consumer_poll_malformed_envelope_dead_letters_without_retry);
    tcase_add_test(k, test_consumer_poll_duplicate_event_id_applied_once);
    tcase_add_test(k, test_consumer_poll_unknown_version_skipped_not_recorded);
    tcase_add_test(k, test_consumer_destroy_commits_so_next_member_resumes_after);
    tcase_add_test(k, test_relay_run_once_publishes_then_marks_sent);
    tcase_add_test(k, test_relay_run_once_broker_down_keeps_rows_unsent_until_up);
    tcase_add_test(k, test_relay_run_once_failed_row_holds_back_later_rows_of_its_key);
    tcase_add_test(k, test_producer_destroy_pending_async_sends_flushed);
    suite_add_tcase(s, k);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(events_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
