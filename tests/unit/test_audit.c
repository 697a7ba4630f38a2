/*
 * Unit tests for pkg/audit over a temporary SQLite store, HTTP in-process through
 * tsr_httpd_inject: idempotent ingest, the hash chain and verify against records altered,
 * deleted and reordered directly in the database (and a tail cut with a rewound head, caught
 * by a signed checkpoint), list filters/sort/paging with absolute next/prev links, role
 * checks, cross-tenant 404, archive, retention, maintenance under a lease, routes vs OpenAPI.
 */
#include <check.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "openapi_check.h"
#include "audit.h"
#include "audit_int.h"
#include "log.h"

#define T_A "tenant-a"
#define T_B "tenant-b"
#define HOST "audit.test"
#define BASE "http://" HOST
#define DAY_MS 86400000LL

typedef struct {
    char dir[64];
    char db[128];
    tsr_store_t *store;
    tsr_audit_t *audit;
    tsr_httpd_t *h;
    int64_t t0; /* event times start here (ms), one second apart */
} fx_t;

static void fx_init_every(fx_t *fx, uint32_t every) {
    tsr_error_t err;
    char uri[160], key[128];
    memset(fx, 0, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/tsr-audit-unit.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(fx->dir));
    snprintf(fx->db, sizeof fx->db, "%s/store.db", fx->dir);
    snprintf(uri, sizeof uri, "sqlite:%s", fx->db);
    snprintf(key, sizeof key, "%s/key.pem", fx->dir);
    tsr_store_opts_t so = {0};
    so.collections = tsr_audit_collections(&so.n_collections);
    ck_assert_int_eq(tsr_store_create(uri, &so, &fx->store, &err), TSR_OK);
    tsr_audit_opts_t ao = {
        .store = fx->store, .key_file = key, .checkpoint_every = every, .retention_days = 90};
    ck_assert_int_eq(tsr_audit_create(&ao, &fx->audit, &err), TSR_OK);
    tsr_httpd_opts_t o = {.service = "audit",
                          .bind = "127.0.0.1",
                          .threads = 1,
                          .max_body = 65536,
                          .on_principal = tsr_audit_principal};
    ck_assert_int_eq(tsr_httpd_create(&o, &fx->h, &err), TSR_OK);
    ck_assert_int_eq(tsr_audit_routes(fx->h, fx->audit, &err), TSR_OK);
    fx->t0 = tsr_wall_ms() - 3600 * 1000;
}

static void fx_init(fx_t *fx) {
    fx_init_every(fx, 5);
}

static void fx_cleanup(fx_t *fx) {
    char cmd[160];
    tsr_httpd_destroy(fx->h);
    tsr_audit_destroy(fx->audit);
    tsr_store_destroy(fx->store);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* An event of tenant at t0 + i seconds. id NULL: "ev-<tenant>-<i>". */
static void mk_event(fx_t *fx, tsr_event_t *ev, const char *tenant, int i, const char *type,
                     const char *source, const char *user) {
    tsr_error_t err;
    char id[64], when[25];
    ck_assert_int_eq(
        tsr_event_init(ev, source, type, tenant, "app-1", json_pack("{si}", "i", i), &err), TSR_OK);
    snprintf(id, sizeof id, "ev-%s-%d", tenant, i);
    free(ev->id);
    ev->id = tsr_xstrdup(id);
    tsr_time_format_rfc3339(fx->t0 + (int64_t)i * 1000, when);
    free(ev->time);
    ev->time = tsr_xstrdup(when);
    if (user != NULL) {
        ev->userid = tsr_xstrdup(user);
    }
}

static void ingest(fx_t *fx, const char *tenant, int i, const char *type, const char *source,
                   const char *user, bool want_stored) {
    tsr_event_t ev;
    tsr_error_t err;
    bool stored = false;
    mk_event(fx, &ev, tenant, i, type, source, user);
    ck_assert_int_eq(tsr_audit_ingest(fx->audit, &ev, &stored, &err), TSR_OK);
    ck_assert_int_eq(stored, want_stored);
    tsr_event_cleanup(&ev);
}

/* n events 0..n-1: types alternate app.created/app.deleted, sources spaces/engine, users u0..u2 */
static void ingest_many(fx_t *fx, const char *tenant, int n) {
    for (int i = 0; i < n; i++) {
        ingest(fx, tenant, i,
               i % 2 == 0 ? "com.tessera.v1.app.created" : "com.tessera.v1.app.deleted",
               i % 3 == 0 ? "/tessera/engine" : "/tessera/spaces", i % 3 == 1 ? "u1" : "u0", true);
    }
}

static void sql(fx_t *fx, const char *stmt) {
    sqlite3 *db = NULL;
    char *msg = NULL;
    ck_assert_int_eq(sqlite3_open(fx->db, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    int rc = sqlite3_exec(db, stmt, NULL, NULL, &msg);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", stmt, msg != NULL ? msg : "");
    ck_assert_int_gt(sqlite3_changes(db), 0);
    sqlite3_close(db);
}

static json_t *verify(fx_t *fx, const char *tenant) {
    json_t *r = NULL;
    tsr_error_t err;
    ck_assert_int_eq(tsr_audit_verify(fx->audit, tenant, 0, 0, 0, &r, &err), TSR_OK);
    return r;
}

static void expect_break(fx_t *fx, int64_t seq, const char *reason) {
    json_t *r = verify(fx, T_A);
    char *s = json_dumps(r, JSON_COMPACT);
    ck_assert_msg(json_is_false(json_object_get(r, "ok")), "verify passed: %s", s);
    json_t *b = json_object_get(r, "firstBreak");
    ck_assert_msg(json_integer_value(json_object_get(b, "seq")) == seq, "%s", s);
    ck_assert_msg(strcmp(json_string_value(json_object_get(b, "reason")), reason) == 0, "%s", s);
    free(s);
    json_decref(r);
}

/* ---- HTTP helpers --------------------------------------------------------------------------- */

static void get_as(fx_t *fx, const char *path, const char *tenant, const char *roles,
                   tsr_httpd_response_t *r) {
    const char *hdr[11] = {"Host", HOST};
    size_t n = 2;
    if (tenant != NULL) {
        hdr[n++] = "X-Tsr-Tenant-Id";
        hdr[n++] = tenant;
        hdr[n++] = "X-Tsr-User-Id";
        hdr[n++] = "admin-1";
    }
    if (roles != NULL) {
        hdr[n++] = "X-Tsr-Roles";
        hdr[n++] = roles;
    }
    tsr_httpd_inject(fx->h, "GET", path, hdr, NULL, 0, r);
}

static json_t *get_json(fx_t *fx, const char *path, const char *tenant, unsigned want) {
    tsr_httpd_response_t r;
    get_as(fx, path, tenant, "User,TenantAdmin", &r);
    ck_assert_msg(r.status == want, "%s: %u %s", path, r.status, r.body);
    json_t *j = json_loads(r.body, 0, NULL);
    ck_assert_msg(j != NULL, "not JSON: %s", r.body);
    tsr_httpd_response_cleanup(&r);
    return j;
}

/* The path and query of an absolute link of ours. */
static const char *rel(const json_t *page, const char *link) {
    const char *href = json_string_value(
        json_object_get(json_object_get(json_object_get(page, "links"), link), "href"));
    if (href == NULL) {
        return NULL;
    }
    ck_assert_msg(strncmp(href, BASE "/api/v1/audits", strlen(BASE "/api/v1/audits")) == 0,
                  "link not absolute: %s", href);
    return href + strlen(BASE);
}

static int data_i(const json_t *page, size_t k) {
    json_t *e = json_array_get(json_object_get(page, "data"), k);
    return (int)json_integer_value(json_object_get(json_object_get(e, "data"), "i"));
}

/* ---- chain and ingest ----------------------------------------------------------------------- */

START_TEST(test_ingest_same_event_twice_stores_once) {
    fx_t fx;
    fx_init(&fx);
    ingest(&fx, T_A, 1, "com.tessera.v1.app.created", "/tessera/spaces", "u1", true);
    ingest(&fx, T_A, 1, "com.tessera.v1.app.created", "/tessera/spaces", "u1", false);
    /* the consumer's path (another dedupe group would apply it again): still one record */
    tsr_event_t ev;
    tsr_error_t err;
    mk_event(&fx, &ev, T_A, 1, "com.tessera.v1.app.created", "/tessera/spaces", "u1");
    ck_assert_int_eq(tsr_audit_handle_event(fx.audit, &ev, fx.store, &err), TSR_OK);
    tsr_event_cleanup(&ev);
    json_t *r = verify(&fx, T_A);
    ck_assert(json_is_true(json_object_get(r, "ok")));
    ck_assert_int_eq(json_integer_value(json_object_get(r, "checked")), 1);
    json_decref(r);
    json_t *p = get_json(&fx, "/api/v1/audits", T_A, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(p, "data")), 1);
    json_decref(p);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_ingest_event_without_tenant_is_einval) {
    fx_t fx;
    fx_init(&fx);
    tsr_event_t ev;
    tsr_error_t err;
    mk_event(&fx, &ev, T_A, 1, "com.tessera.v1.app.created", "/tessera/spaces", NULL);
    free(ev.tenantid);
    ev.tenantid = tsr_xstrdup("_platform");
    ck_assert_int_eq(tsr_audit_ingest(fx.audit, &ev, NULL, &err), TSR_EINVAL);
    tsr_event_cleanup(&ev);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_chain_intact_verifies_with_checkpoints) {
    fx_t fx;
    fx_init(&fx);
    ingest_many(&fx, T_A, 12);
    json_t *r = verify(&fx, T_A);
    char *s = json_dumps(r, JSON_COMPACT);
    ck_assert_msg(json_is_true(json_object_get(r, "ok")), "%s", s);
    ck_assert_int_eq(json_integer_value(json_object_get(r, "checked")), 12);
    ck_assert_int_eq(json_integer_value(json_object_get(r, "checkpoints")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(r, "head"), "seq")), 12);
    ck_assert_uint_eq(json_array_size(json_object_get(r, "checkpointKeys")), 1);
    json_t *jwk = json_array_get(json_object_get(r, "checkpointKeys"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(jwk, "crv")), "P-256");
    ck_assert_uint_eq(strlen(json_string_value(json_object_get(jwk, "x"))), 43);
    ck_assert_uint_eq(strlen(json_string_value(json_object_get(jwk, "kid"))), 16);
    free(s);
    json_decref(r);
    /* a partial range links to the record before it */
    tsr_error_t err;
    ck_assert_int_eq(tsr_audit_verify(fx.audit, T_A, 4, 9, 0, &r, &err), TSR_OK);
    ck_assert(json_is_true(json_object_get(r, "ok")));
    ck_assert_int_eq(json_integer_value(json_object_get(r, "checked")), 6);
    json_decref(r);
    /* a bounded run says where to continue */
    ck_assert_int_eq(tsr_audit_verify(fx.audit, T_A, 0, 0, 5, &r, &err), TSR_OK);
    ck_assert(json_is_true(json_object_get(r, "truncated")));
    ck_assert_int_eq(json_integer_value(json_object_get(r, "nextFrom")), 6);
    json_decref(r);
    /* another tenant's chain is separate */
    ingest_many(&fx, T_B, 3);
    r = verify(&fx, T_B);
    ck_assert(json_is_true(json_object_get(r, "ok")));
    ck_assert_int_eq(json_integer_value(json_object_get(r, "checked")), 3);
    json_decref(r);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_verify_altered_record_reports_hash_mismatch) {
    fx_t fx;
    fx_init(&fx);
    ingest_many(&fx, T_A, 8);
    sql(&fx, "UPDATE d_audit_events SET doc=json_set(doc,'$.userId','mallory') "
             "WHERE tenant='" T_A "' AND json_extract(doc,'$.seq')=4");
    expect_break(&fx, 4, "hash-mismatch");
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_verify_altered_record_with_recomputed_hash_reports_next_link) {
    fx_t fx;
    fx_init(&fx);
    ingest_many(&fx, T_A, 8);
    /* a forger who also fixes the record's own hash breaks the next record's prevHash */
    json_t *doc = NULL;
    tsr_error_t err;
    tsr_store_page_t pg = {0};
    json_t *v = json_integer(4);
    tsr_store_filter_t f = {"seq", TSR_STORE_EQ, v};
    tsr_store_query_t q = {.filters = &f, .n_filters = 1, .sort = "seq"};
    ck_assert_int_eq(tsr_store_doc_list(fx.store, T_A, TSR_AUDIT_C_EVENTS, &q, &pg, &err), TSR_OK);
    doc = json_deep_copy(json_array_get(pg.items, 0));
    tsr_store_page_cleanup(&pg);
    json_decref(v);
    json_object_set_new(doc, "userId", json_string("mallory"));
    char h[65], stmt[512];
    tsr_audit__record_hash(doc, h);
    snprintf(stmt, sizeof stmt,
             "UPDATE d_audit_events SET doc=json_set(doc,'$.userId','mallory','$.hash','%s') "
             "WHERE tenant='" T_A "' AND json_extract(doc,'$.seq')=4",
             h);
    json_decref(doc);
    sql(&fx, stmt);
    expect_break(&fx, 5, "prev-hash-mismatch");
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_verify_deleted_record_reports_missing) {
    fx_t fx;
    fx_init(&fx);
    ingest_many(&fx, T_A, 8);
    sql(&fx, "DELETE FROM d_audit_events WHERE tenant='" T_A "' AND json_extract(doc,'$.seq')=6");
    expect_break(&fx, 6, "missing");
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_verify_deleted_last_record_reports_missing) {
    fx_t fx;
    fx_init(&fx);
    ingest_many(&fx, T_A, 8);
    sql(&fx, "DELETE FROM d_audit_events WHERE tenant='" T_A "' AND json_extract(doc,'$.seq')=8");
    expect_break(&fx, 8, "missing");
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_verify_reordered_records_report_break) {
    fx_t fx;
    fx_init(&fx);
    ingest_many(&fx, T_A, 8);
    /* swap the positions of records 3 and 4 */
    sql(&fx, "UPDATE d_audit_events SET doc=json_set(doc,'$.seq',-3) WHERE tenant='" T_A
             "' AND json_extract(doc,'$.seq')=3");
    sql(&fx, "UPDATE d_audit_events SET doc=json_set(doc,'$.seq',3) WHERE tenant='" T_A
             "' AND json_extract(doc,'$.seq')=4");
    sql(&fx, "UPDATE d_audit_events SET doc=json_set(doc,'$.seq',4) WHERE tenant='" T_A
             "' AND json_extract(doc,'$.seq')=-3");
    expect_break(&fx, 3, "prev-hash-mismatch");
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_verify_tail_cut_with_rewound_head_caught_by_checkpoint) {
    fx_t fx;
    fx_init(&fx);
    ingest_many(&fx, T_A, 12);
    /* cut records 6..12 and rewind the head to 5: the chain itself is consistent again */
    sql(&fx, "DELETE FROM d_audit_events WHERE tenant='" T_A "' AND json_extract(doc,'$.seq')>5");
    sql(&fx, "UPDATE d_audit_chains SET doc=json_set(doc,'$.seq',5,'$.hash',(SELECT "
             "json_extract(doc,'$.hash') FROM d_audit_events WHERE tenant='" T_A
             "' AND json_extract(doc,'$.seq')=5)) WHERE tenant='" T_A "'");
    expect_break(&fx, 10, "checkpoint-beyond-head");
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_verify_forged_checkpoint_reports_signature) {
    fx_t fx;
    fx_init(&fx);
    ingest_many(&fx, T_A, 7);
    sql(&fx, "UPDATE d_audit_checkpoints SET doc=json_set(doc,'$.jws',"
             "substr(json_extract(doc,'$.jws'),1,length(json_extract(doc,'$.jws'))-4)||'AAAA') "
             "WHERE tenant='" T_A "' AND json_extract(doc,'$.seq')=5");
    expect_break(&fx, 5, "checkpoint-signature");
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_head_left_behind_by_a_crash_is_rolled_forward) {
    fx_t fx;
    fx_init_every(&fx, 1000);
    ingest_many(&fx, T_A, 3);
    /* what a crash between the record write and the head write leaves on a store without
     * atomic transactions: record 3 stored, the head still at 2 */
    sql(&fx, "UPDATE d_audit_chains SET doc=json_set(doc,'$.seq',2,'$.hash',(SELECT "
             "json_extract(doc,'$.hash') FROM d_audit_events WHERE tenant='" T_A
             "' AND json_extract(doc,'$.seq')=2)) WHERE tenant='" T_A "'");
    json_t *r = verify(&fx, T_A);
    ck_assert(json_is_true(json_object_get(r, "ok")));
    ck_assert_int_eq(json_integer_value(json_object_get(r, "checked")), 3);
    json_decref(r);
    /* the next append catches the head up instead of forking the chain */
    ingest(&fx, T_A, 3, "com.tessera.v1.app.created", "/tessera/spaces", NULL, true);
    r = verify(&fx, T_A);
    ck_assert(json_is_true(json_object_get(r, "ok")));
    ck_assert_int_eq(json_integer_value(json_object_get(r, "checked")), 4);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(r, "head"), "seq")), 4);
    json_decref(r);
    fx_cleanup(&fx);
}
END_TEST

typedef struct {
    fx_t *fx;
    int base;
} worker_t;

static void *ingest_worker(void *arg) {
    worker_t *w = arg;
    for (int i = 0; i < 25; i++) {
        tsr_event_t ev;
        tsr_error_t err;
        mk_event(w->fx, &ev, T_A, w->base + i, "com.tessera.v1.app.created", "/tessera/spaces",
                 NULL);
        tsr_err_t rc = tsr_audit_ingest(w->fx->audit, &ev, NULL, &err);
        tsr_event_cleanup(&ev);
        if (rc != TSR_OK) {
            return (void *)1;
        }
    }
    return NULL;
}

START_TEST(test_concurrent_ingest_keeps_one_chain) {
    fx_t fx;
    fx_init(&fx);
    pthread_t t[3];
    worker_t w[3];
    for (int i = 0; i < 3; i++) {
        w[i] = (worker_t){&fx, i * 100};
        ck_assert_int_eq(pthread_create(&t[i], NULL, ingest_worker, &w[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        void *res = NULL;
        pthread_join(t[i], &res);
        ck_assert_ptr_null(res);
    }
    json_t *r = verify(&fx, T_A);
    ck_assert(json_is_true(json_object_get(r, "ok")));
    ck_assert_int_eq(json_integer_value(json_object_get(r, "checked")), 75);
    json_decref(r);
    fx_cleanup(&fx);
}
END_TEST

/* ---- HTTP ---------------------------------------------------------------------------------- */

START_TEST(test_list_default_newest_first_pages_with_absolute_links) {
    fx_t fx;
    fx_init(&fx);
    ingest_many(&fx, T_A, 25);
    json_t *p1 = get_json(&fx, "/api/v1/audits", T_A, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(p1, "data")), 10);
    ck_assert_int_eq(data_i(p1, 0), 24);
    ck_assert_int_eq(data_i(p1, 9), 15);
    ck_assert_ptr_null(rel(p1, "prev"));
    ck_assert_ptr_nonnull(rel(p1, "self"));
    json_t *e = json_array_get(json_object_get(p1, "data"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(e, "tenantId")), T_A);
    ck_assert_ptr_nonnull(json_string_value(json_object_get(e, "eventId")));
    ck_assert_ptr_nonnull(json_string_value(json_object_get(e, "eventTime")));
    ck_assert_ptr_nonnull(json_object_get(json_object_get(e, "integrity"), "hash"));
    char self[128];
    snprintf(self, sizeof self, BASE "/api/v1/audits/%s",
             json_string_value(json_object_get(e, "id")));
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_object_get(e, "links"), "self"), "href")),
                     self);
    /* follow next to the end: every event once, newest first */
    int seen = 0, expect = 24;
    json_t *p = json_incref(p1);
    json_t *p2 = NULL;
    while (p != NULL) {
        json_t *d = json_object_get(p, "data");
        for (size_t k = 0; k < json_array_size(d); k++) {
            ck_assert_int_eq(data_i(p, k), expect--);
            seen++;
        }
        const char *next = rel(p, "next");
        json_t *n = next != NULL ? get_json(&fx, next, T_A, 200) : NULL;
        if (p2 == NULL && n != NULL) {
            p2 = json_incref(n);
        }
        json_decref(p);
        p = n;
    }
    ck_assert_int_eq(seen, 25);
    /* prev from page 2 is page 1 */
    const char *prev = rel(p2, "prev");
    ck_assert_ptr_nonnull(prev);
    json_t *back = get_json(&fx, prev, T_A, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(back, "data")), 10);
    for (size_t k = 0; k < 10; k++) {
        ck_assert_int_eq(data_i(back, k), data_i(p1, k));
    }
    ck_assert_ptr_null(rel(back, "prev"));
    ck_assert_ptr_nonnull(rel(back, "next"));
    json_decref(back);
    json_decref(p2);
    json_decref(p1);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_list_filters_and_ascending_sort) {
    fx_t fx;
    fx_init(&fx);
    ingest_many(&fx, T_A, 12);
    json_t *p = get_json(
        &fx, "/api/v1/audits?sort=%2BeventTime&limit=100&eventType=com.tessera.v1.app.deleted", T_A,
        200);
    json_t *d = json_object_get(p, "data");
    ck_assert_uint_eq(json_array_size(d), 6);
    for (size_t k = 0; k < 6; k++) {
        ck_assert_int_eq(data_i(p, k), (int)(2 * k + 1));
    }
    json_decref(p);
    p = get_json(&fx, "/api/v1/audits?source=%2Ftessera%2Fengine&limit=100", T_A, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(p, "data")), 4); /* 0,3,6,9 */
    ck_assert_int_eq(data_i(p, 0), 9);
    json_decref(p);
    p = get_json(&fx, "/api/v1/audits?userId=u1&limit=100", T_A, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(p, "data")), 4); /* 1,4,7,10 */
    json_decref(p);
    /* eventTime interval: events 3..6 inclusive */
    char path[256], a[25], b[25];
    tsr_time_format_rfc3339(fx.t0 + 3000, a);
    tsr_time_format_rfc3339(fx.t0 + 6000, b);
    snprintf(path, sizeof path, "/api/v1/audits?sort=%%2BeventTime&eventTime=%s%%2F%s", a, b);
    p = get_json(&fx, path, T_A, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(p, "data")), 4);
    ck_assert_int_eq(data_i(p, 0), 3);
    ck_assert_int_eq(data_i(p, 3), 6);
    json_decref(p);
    /* Qlik's documented form: two-digit fractions */
    json_decref(
        get_json(&fx, "/api/v1/audits?eventTime=2021-07-14T18:41:15.00Z%2F2021-07-14T18:41:15.99Z",
                 T_A, 200));
    /* open-ended interval, ascending pages of 5 keep the filter and the order */
    snprintf(path, sizeof path, "/api/v1/audits?sort=%%2BeventTime&limit=5&eventTime=%s%%2F", a);
    p = get_json(&fx, path, T_A, 200);
    ck_assert_int_eq(data_i(p, 0), 3);
    json_t *n = get_json(&fx, rel(p, "next"), T_A, 200);
    ck_assert_int_eq(data_i(n, 0), 8);
    ck_assert_uint_eq(json_array_size(json_object_get(n, "data")), 4);
    ck_assert_ptr_null(rel(n, "next"));
    json_decref(n);
    json_decref(p);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_list_two_filters_short_pages_cover_every_match_once) {
    fx_t fx;
    fx_init(&fx);
    ingest_many(&fx, T_A, 40);
    fx.audit->scan_max = 5; /* force capped scans: short pages that still link onward */
    /* userId=u0 (i % 3 != 1) and app.created (even i), newest first */
    int want[40], nwant = 0, got[40], ngot = 0;
    for (int i = 39; i >= 0; i--) {
        if (i % 3 != 1 && i % 2 == 0) {
            want[nwant++] = i;
        }
    }
    json_t *p = get_json(
        &fx, "/api/v1/audits?limit=3&userId=u0&eventType=com.tessera.v1.app.created", T_A, 200);
    int pages = 0;
    bool saw_prev = false;
    while (p != NULL && pages < 100) {
        json_t *d = json_object_get(p, "data");
        ck_assert_uint_le(json_array_size(d), 3);
        for (size_t k = 0; k < json_array_size(d); k++) {
            ck_assert_int_lt(ngot, 40);
            got[ngot++] = data_i(p, k);
        }
        saw_prev = saw_prev || rel(p, "prev") != NULL;
        const char *next = rel(p, "next");
        json_t *n = next != NULL ? get_json(&fx, next, T_A, 200) : NULL;
        json_decref(p);
        p = n;
        pages++;
    }
    ck_assert_int_eq(ngot, nwant);
    for (int k = 0; k < nwant; k++) {
        ck_assert_int_eq(got[k], want[k]);
    }
    ck_assert(saw_prev);
    /* with room to scan, the same filter answers full pages */
    fx.audit->scan_max = 5000;
    p = get_json(&fx, "/api/v1/audits?limit=3&userId=u0&eventType=com.tessera.v1.app.created", T_A,
                 200);
    ck_assert_uint_eq(json_array_size(json_object_get(p, "data")), 3);
    ck_assert_int_eq(data_i(p, 0), want[0]);
    json_t *n2 = get_json(&fx, rel(p, "next"), T_A, 200);
    ck_assert_int_eq(data_i(n2, 0), want[3]);
    json_t *back = get_json(&fx, rel(n2, "prev"), T_A, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(back, "data")), 3);
    ck_assert_int_eq(data_i(back, 0), want[0]);
    ck_assert_int_eq(data_i(back, 2), want[2]);
    json_decref(back);
    json_decref(n2);
    json_decref(p);
    /* a value that is a prefix of another does not match it */
    ingest(&fx, T_A, 100, "com.tessera.v1.app.created", "/tessera/spaces", "u", true);
    ingest(&fx, T_A, 101, "com.tessera.v1.app.created", "/tessera/spaces", "u00", true);
    p = get_json(&fx, "/api/v1/audits?limit=100&userId=u", T_A, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(p, "data")), 1);
    ck_assert_int_eq(data_i(p, 0), 100);
    json_decref(p);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_list_bad_parameters_are_400) {
    fx_t fx;
    fx_init(&fx);
    ingest_many(&fx, T_A, 3);
    const char *bad[] = {
        "/api/v1/audits?limit=0",
        "/api/v1/audits?limit=101",
        "/api/v1/audits?limit=x",
        "/api/v1/audits?sort=name",
        "/api/v1/audits?eventTime=yesterday",
        "/api/v1/audits?eventTime=2026-01-02T00:00:00Z%2F2026-01-01T00:00:00Z",
        "/api/v1/audits?next=abc&prev=abc",
        "/api/v1/audits?next=bm90LWEtY3Vyc29y",
        "/api/v1/audits/verify?from=x",
        "/api/v1/audits/archive?date=2026-13-45",
        "/api/v1/audits/archive",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *e = get_json(&fx, bad[i], T_A, 400);
        ck_assert_str_eq(json_string_value(json_object_get(
                             json_array_get(json_object_get(e, "errors"), 0), "code")),
                         "HTTP-400");
        json_decref(e);
    }
    /* a cursor made for -eventTime is refused with +eventTime */
    json_t *p = get_json(&fx, "/api/v1/audits?limit=1", T_A, 200);
    const char *next = strstr(rel(p, "next"), "next=");
    char path[512];
    snprintf(path, sizeof path, "/api/v1/audits?limit=1&sort=%%2BeventTime&%s", next);
    json_decref(get_json(&fx, path, T_A, 400));
    json_decref(p);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_roles_only_admins_read) {
    fx_t fx;
    fx_init(&fx);
    ingest_many(&fx, T_A, 2);
    const char *paths[] = {"/api/v1/audits",         "/api/v1/audits/types",
                           "/api/v1/audits/sources", "/api/v1/audits/settings",
                           "/api/v1/audits/verify",  "/api/v1/audits/0123456789abcdef01234567"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        tsr_httpd_response_t r;
        get_as(&fx, paths[i], T_A, "User", &r);
        ck_assert_msg(r.status == 403, "%s: %u", paths[i], r.status);
        tsr_httpd_response_cleanup(&r);
        get_as(&fx, paths[i], T_A, NULL, &r);
        ck_assert_uint_eq(r.status, 403);
        tsr_httpd_response_cleanup(&r);
        get_as(&fx, paths[i], NULL, NULL, &r);
        ck_assert_uint_eq(r.status, 401);
        tsr_httpd_response_cleanup(&r);
        get_as(&fx, paths[i], T_A, "User, AuditAdmin", &r);
        ck_assert_msg(r.status == 200 || r.status == 404, "%s: %u", paths[i], r.status);
        tsr_httpd_response_cleanup(&r);
        /* a role name inside another is not that role */
        get_as(&fx, paths[i], T_A, "NotTenantAdmin", &r);
        ck_assert_uint_eq(r.status, 403);
        tsr_httpd_response_cleanup(&r);
    }
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_other_tenants_event_is_404_like_missing) {
    fx_t fx;
    fx_init(&fx);
    ingest_many(&fx, T_A, 3);
    json_t *p = get_json(&fx, "/api/v1/audits", T_A, 200);
    const char *id =
        json_string_value(json_object_get(json_array_get(json_object_get(p, "data"), 0), "id"));
    char path[128];
    snprintf(path, sizeof path, "/api/v1/audits/%s", id);
    json_t *mine = get_json(&fx, path, T_A, 200);
    ck_assert_str_eq(json_string_value(json_object_get(mine, "id")), id);
    json_decref(mine);
    json_t *e1 = get_json(&fx, path, T_B, 404);
    json_t *e2 = get_json(&fx, "/api/v1/audits/0123456789abcdef01234567", T_B, 404);
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(e1, "errors"), 0), "detail")),
                     json_string_value(json_object_get(
                         json_array_get(json_object_get(e2, "errors"), 0), "detail")));
    json_decref(e1);
    json_decref(e2);
    /* the id filter: own ids listed, unknown and malformed ones skipped, B sees none */
    char idq[256];
    snprintf(
        idq, sizeof idq, "/api/v1/audits?id=%s,0123456789abcdef01234567,bogus,%s", id,
        json_string_value(json_object_get(json_array_get(json_object_get(p, "data"), 1), "id")));
    json_t *byid = get_json(&fx, idq, T_A, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(byid, "data")), 2);
    ck_assert_int_eq(data_i(byid, 0), 2); /* newest first */
    json_decref(byid);
    byid = get_json(&fx, idq, T_B, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(byid, "data")), 0);
    json_decref(byid);
    json_t *other = get_json(&fx, "/api/v1/audits", T_B, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(other, "data")), 0);
    json_decref(other);
    other = get_json(&fx, "/api/v1/audits/types", T_B, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(other, "data")), 0);
    json_decref(other);
    json_decref(p);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_types_sources_settings) {
    fx_t fx;
    fx_init(&fx);
    ingest_many(&fx, T_A, 6);
    json_t *t = get_json(&fx, "/api/v1/audits/types", T_A, 200);
    json_t *d = json_object_get(t, "data");
    ck_assert_uint_eq(json_array_size(d), 2);
    ck_assert_str_eq(json_string_value(json_array_get(d, 0)), "com.tessera.v1.app.created");
    ck_assert_str_eq(json_string_value(json_array_get(d, 1)), "com.tessera.v1.app.deleted");
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_object_get(t, "links"), "self"), "href")),
                     BASE "/api/v1/audits/types");
    json_decref(t);
    json_t *s = get_json(&fx, "/api/v1/audits/sources", T_A, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(s, "data")), 2);
    json_decref(s);
    json_t *st = get_json(&fx, "/api/v1/audits/settings", T_A, 200);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(st, "data"), "EventTTL")),
                     90 * 86400);
    ck_assert(json_is_true(json_object_get(json_object_get(st, "data"), "ArchiveEnabled")));
    json_decref(st);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_archive_streams_day_as_ndjson_and_keeps_old_events) {
    fx_t fx;
    fx_init(&fx);
    /* 200 days old: outside the 90-day list window, still in the archive */
    fx.t0 = (tsr_wall_ms() / DAY_MS - 200) * DAY_MS + 3600 * 1000;
    ingest_many(&fx, T_A, 3);
    fx.t0 = tsr_wall_ms() - 3600 * 1000;
    ingest(&fx, T_A, 50, "com.tessera.v1.app.created", "/tessera/spaces", NULL, true);
    json_t *p = get_json(&fx, "/api/v1/audits?limit=100", T_A, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(p, "data")), 1);
    json_decref(p);
    char day[25], path[128];
    tsr_time_format_rfc3339((tsr_wall_ms() / DAY_MS - 200) * DAY_MS, day);
    day[10] = '\0';
    snprintf(path, sizeof path, "/api/v1/audits/archive?date=%s", day);
    tsr_httpd_response_t r;
    get_as(&fx, path, T_A, "AuditAdmin", &r);
    ck_assert_uint_eq(r.status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(r.headers, "content-type")),
                     "application/x-ndjson");
    int lines = 0;
    for (char *line = r.body; *line != '\0';) {
        char *nl = strchr(line, '\n');
        ck_assert_ptr_nonnull(nl);
        json_t *j = json_loadb(line, (size_t)(nl - line), 0, NULL);
        ck_assert_ptr_nonnull(j);
        ck_assert_int_eq((int)json_integer_value(json_object_get(json_object_get(j, "data"), "i")),
                         lines);
        ck_assert_ptr_null(json_object_get(j, "links"));
        json_decref(j);
        lines++;
        line = nl + 1;
    }
    ck_assert_int_eq(lines, 3);
    tsr_httpd_response_cleanup(&r);
    /* Accept: application/json gives {"data":[...]} instead of NDJSON */
    const char *hj[] = {"Host", HOST,          "X-Tsr-Tenant-Id", T_A,      "X-Tsr-User-Id",
                        "u",    "X-Tsr-Roles", "TenantAdmin",     "Accept", "application/json",
                        NULL};
    tsr_httpd_inject(fx.h, "GET", path, hj, NULL, 0, &r);
    ck_assert_uint_eq(r.status, 200);
    json_t *arch = json_loads(r.body, 0, NULL);
    ck_assert_uint_eq(json_array_size(json_object_get(arch, "data")), 3);
    json_decref(arch);
    tsr_httpd_response_cleanup(&r);
    /* the old event's id is gone from the online API too */
    json_decref(get_json(&fx, "/api/v1/audits/archive?date=2001-01-01", T_A, 404));
    /* another tenant's archive of that day is empty */
    json_decref(get_json(&fx, path, T_B, 404));
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_archive_over_cap_is_413) {
    fx_t fx;
    fx_init(&fx);
    tsr_error_t err;
    ingest_many(&fx, T_A, 30);
    /* a second service on the same store with a tiny archive cap */
    tsr_audit_opts_t ao = {.store = fx.store, .archive_max_bytes = 2048};
    tsr_audit_t *small = NULL;
    tsr_httpd_t *h = NULL;
    ck_assert_int_eq(tsr_audit_create(&ao, &small, &err), TSR_OK);
    tsr_httpd_opts_t o = {.service = "audit", .bind = "127.0.0.1", .threads = 1, .max_body = 1024};
    ck_assert_int_eq(tsr_httpd_create(&o, &h, &err), TSR_OK);
    ck_assert_int_eq(tsr_audit_routes(h, small, &err), TSR_OK);
    char day[25], path[128];
    tsr_time_format_rfc3339(fx.t0, day);
    day[10] = '\0';
    snprintf(path, sizeof path, "/api/v1/audits/archive?date=%s", day);
    const char *hdr[] = {"X-Tsr-Tenant-Id", T_A, "X-Tsr-User-Id", "u", "X-Tsr-Roles",
                         "TenantAdmin",     NULL};
    tsr_httpd_response_t r;
    tsr_httpd_inject(h, "GET", path, hdr, NULL, 0, &r);
    ck_assert_msg(r.status == 413, "%u %s", r.status, r.body);
    tsr_httpd_response_cleanup(&r);
    tsr_httpd_destroy(h);
    tsr_audit_destroy(small);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_verify_endpoint_reports_break) {
    fx_t fx;
    fx_init(&fx);
    ingest_many(&fx, T_A, 6);
    json_t *r = get_json(&fx, "/api/v1/audits/verify", T_A, 200);
    ck_assert(json_is_true(json_object_get(r, "ok")));
    json_decref(r);
    sql(&fx, "UPDATE d_audit_events SET doc=json_set(doc,'$.eventType','x') WHERE tenant='" T_A
             "' AND json_extract(doc,'$.seq')=2");
    r = get_json(&fx, "/api/v1/audits/verify?from=1&to=6", T_A, 200);
    ck_assert(json_is_false(json_object_get(r, "ok")));
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(r, "firstBreak"), "seq")),
                     2);
    json_decref(r);
    /* tenant B's trail is untouched by A's damage */
    ingest_many(&fx, T_B, 2);
    r = get_json(&fx, "/api/v1/audits/verify", T_B, 200);
    ck_assert(json_is_true(json_object_get(r, "ok")));
    json_decref(r);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_no_route_changes_or_deletes_an_event) {
    fx_t fx;
    fx_init(&fx);
    const char *methods[] = {"POST", "PUT", "PATCH", "DELETE"};
    const char *paths[] = {"/api/v1/audits", "/api/v1/audits/0123456789abcdef01234567",
                           "/api/v1/audits/settings"};
    const char *hdr[] = {
        "X-Tsr-Tenant-Id",  T_A, "X-Tsr-User-Id", "u", "X-Tsr-Roles", "TenantAdmin", "Content-Type",
        "application/json", NULL};
    for (size_t m = 0; m < 4; m++) {
        for (size_t p = 0; p < 3; p++) {
            tsr_httpd_response_t r;
            tsr_httpd_inject(fx.h, methods[m], paths[p], hdr, "{}", 2, &r);
            ck_assert_msg(r.status == 405, "%s %s: %u", methods[m], paths[p], r.status);
            tsr_httpd_response_cleanup(&r);
        }
    }
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_maintain_checkpoints_under_lease) {
    fx_t fx;
    fx_init_every(&fx, 1000);
    tsr_error_t err;
    bool ran = false, written = false;
    ingest_many(&fx, T_A, 3);
    ck_assert_int_eq(tsr_audit_maintain(fx.audit, "replica-1", true, &ran, &err), TSR_OK);
    ck_assert(ran);
    json_t *r = verify(&fx, T_A);
    ck_assert(json_is_true(json_object_get(r, "ok")));
    ck_assert_int_eq(json_integer_value(json_object_get(r, "checkpoints")), 1);
    json_decref(r);
    /* another replica does not run while the lease is held */
    ck_assert_int_eq(tsr_audit_maintain(fx.audit, "replica-2", true, &ran, &err), TSR_OK);
    ck_assert(!ran);
    /* nothing new since the checkpoint: none written */
    ck_assert_int_eq(tsr_audit_checkpoint(fx.audit, T_A, &written, &err), TSR_OK);
    ck_assert(!written);
    ingest(&fx, T_A, 10, "com.tessera.v1.app.created", "/tessera/spaces", NULL, true);
    ck_assert_int_eq(tsr_audit_checkpoint(fx.audit, T_A, &written, &err), TSR_OK);
    ck_assert(written);
    r = verify(&fx, T_A);
    ck_assert(json_is_true(json_object_get(r, "ok")));
    ck_assert_int_eq(json_integer_value(json_object_get(r, "checkpoints")), 2);
    json_decref(r);
    json_t *tenants = NULL;
    ck_assert_int_eq(tsr_audit_tenants(fx.audit, &tenants, &err), TSR_OK);
    ck_assert_uint_eq(json_array_size(tenants), 1);
    ck_assert_str_eq(json_string_value(json_array_get(tenants, 0)), T_A);
    json_decref(tenants);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_key_file_reused_and_foreign_key_fails_verify) {
    fx_t fx;
    fx_init(&fx);
    tsr_error_t err;
    ingest_many(&fx, T_A, 5);
    /* a second service on the same key file verifies the checkpoints */
    char key[128];
    snprintf(key, sizeof key, "%s/key.pem", fx.dir);
    tsr_audit_opts_t ao = {.store = fx.store, .key_file = key};
    tsr_audit_t *a2 = NULL;
    json_t *r = NULL;
    ck_assert_int_eq(tsr_audit_create(&ao, &a2, &err), TSR_OK);
    ck_assert_int_eq(tsr_audit_verify(a2, T_A, 0, 0, 0, &r, &err), TSR_OK);
    ck_assert(json_is_true(json_object_get(r, "ok")));
    json_decref(r);
    tsr_audit_destroy(a2);
    /* with another key the checkpoint does not verify */
    snprintf(key, sizeof key, "%s/other.pem", fx.dir);
    ck_assert_int_eq(tsr_audit_create(&ao, &a2, &err), TSR_OK);
    ck_assert_int_eq(tsr_audit_verify(a2, T_A, 0, 0, 0, &r, &err), TSR_OK);
    ck_assert(json_is_false(json_object_get(r, "ok")));
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r, "firstBreak"), "reason")),
                     "checkpoint-signature");
    json_decref(r);
    tsr_audit_destroy(a2);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_key_rotation_old_key_still_verifies) {
    fx_t fx;
    fx_init(&fx);
    tsr_error_t err;
    json_t *r = NULL;
    ingest_many(&fx, T_A, 5); /* checkpoint 5 under key.pem */
    /* rotate: new.pem signs, key.pem only verifies */
    char spec[300], only_new[160];
    snprintf(spec, sizeof spec, "%s/new.pem,%s/key.pem", fx.dir, fx.dir);
    snprintf(only_new, sizeof only_new, "%s/new.pem", fx.dir);
    tsr_audit_opts_t ao = {.store = fx.store, .key_file = spec, .checkpoint_every = 5};
    tsr_audit_t *rot = NULL;
    ck_assert_int_eq(tsr_audit_create(&ao, &rot, &err), TSR_OK);
    for (int i = 5; i < 10; i++) {
        tsr_event_t ev;
        mk_event(&fx, &ev, T_A, i, "com.tessera.v1.app.created", "/tessera/spaces", NULL);
        ck_assert_int_eq(tsr_audit_ingest(rot, &ev, NULL, &err), TSR_OK);
        tsr_event_cleanup(&ev);
    }
    ck_assert_int_eq(tsr_audit_verify(rot, T_A, 0, 0, 0, &r, &err), TSR_OK);
    ck_assert_msg(json_is_true(json_object_get(r, "ok")), "%s",
                  json_string_value(json_object_get(json_object_get(r, "firstBreak"), "detail")));
    ck_assert_int_eq(json_integer_value(json_object_get(r, "checkpoints")), 2);
    ck_assert_uint_eq(json_array_size(json_object_get(r, "checkpointKeys")), 2);
    json_decref(r);
    tsr_audit_destroy(rot);
    /* without the old key the first checkpoint cannot be checked */
    ao.key_file = only_new;
    ck_assert_int_eq(tsr_audit_create(&ao, &rot, &err), TSR_OK);
    ck_assert_int_eq(tsr_audit_verify(rot, T_A, 0, 0, 0, &r, &err), TSR_OK);
    ck_assert(json_is_false(json_object_get(r, "ok")));
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(r, "firstBreak"), "seq")),
                     5);
    json_decref(r);
    tsr_audit_destroy(rot);
    /* a verify-only key must exist */
    snprintf(spec, sizeof spec, "%s/new.pem,%s/missing.pem", fx.dir, fx.dir);
    ao.key_file = spec;
    ck_assert_int_eq(tsr_audit_create(&ao, &rot, &err), TSR_EIO);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_routes_and_openapi_cover_each_other) {
    tsr_test_routes_match_openapi(TSR_SOURCE_DIR "/api/openapi/audit.yaml", tsr_audit__route_at);
}
END_TEST

START_TEST(test_jws_round_trip_and_tamper) {
    fx_t fx;
    fx_init(&fx);
    tsr_error_t err;
    char *jws = NULL;
    json_t *pl = json_pack("{ss si}", "tenantId", T_A, "seq", 7), *back = NULL;
    ck_assert_int_eq(tsr_audit__sign(fx.audit, pl, &jws, &err), TSR_OK);
    ck_assert_int_eq(tsr_audit__verify_sig(fx.audit, jws, &back, &err), TSR_OK);
    ck_assert(json_equal(pl, back));
    json_decref(back);
    /* flip one payload character */
    char *dot = strchr(jws, '.');
    dot[3] = dot[3] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(tsr_audit__verify_sig(fx.audit, jws, &back, &err), TSR_ECORRUPT);
    ck_assert_int_eq(tsr_audit__verify_sig(fx.audit, "x.y", &back, &err), TSR_ECORRUPT);
    ck_assert_int_eq(tsr_audit__verify_sig(fx.audit, "", &back, &err), TSR_ECORRUPT);
    free(jws);
    json_decref(pl);
    fx_cleanup(&fx);
}
END_TEST

/* ---- consumer ------------------------------------------------------------------------------- */

static void nap_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int64_t head_seq(fx_t *fx, const char *tenant) {
    json_t *r = verify(fx, tenant);
    int64_t n = (int64_t)json_integer_value(json_object_get(json_object_get(r, "head"), "seq"));
    json_decref(r);
    return n;
}

START_TEST(test_consumer_stores_events_of_audit_topics_once_and_reports_ready) {
    fx_t fx;
    fx_init(&fx);
    char errstr[256];
    tsr_error_t err;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, NULL);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    ck_assert_ptr_nonnull(rk);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, 1);
    ck_assert_ptr_nonnull(mc);
    const char *bootstrap = rd_kafka_mock_cluster_bootstraps(mc);
    for (const tsr_events_topic_t *t = tsr_events_topics(); t->name != NULL; t++) {
        ck_assert_int_eq(rd_kafka_mock_topic_create(mc, t->name, t->partitions, 1), 0);
    }
    /* not started: ready is the store alone */
    ck_assert_int_eq(tsr_audit_ready(fx.audit, &err), TSR_OK);
    tsr_audit_run_opts_t ro = {.bootstrap = bootstrap, .owner = "unit", .maintain_every_ms = 100};
    ck_assert_int_eq(tsr_audit_start(fx.audit, &ro, &err), TSR_OK);
    for (int i = 0; i < 300 && tsr_audit_ready(fx.audit, &err) != TSR_OK; i++) {
        nap_ms(100);
    }
    ck_assert_msg(tsr_audit_ready(fx.audit, &err) == TSR_OK, "not ready: %s", err.msg);
    tsr_events_producer_opts_t po = {.bootstrap = bootstrap};
    tsr_events_producer_t *p = NULL;
    ck_assert_int_eq(tsr_events_producer_create(&po, &p, &err), TSR_OK);
    /* 10 security events, 10 space events, and the first space event once more */
    for (int i = 0; i < 21; i++) {
        tsr_event_t ev;
        int k = i == 20 ? 10 : i;
        mk_event(&fx, &ev, T_A, k,
                 k < 10 ? "com.tessera.v1.auth.login.failed" : "com.tessera.v1.space.created",
                 k < 10 ? "/tessera/identity" : "/tessera/spaces", NULL);
        ck_assert_int_eq(tsr_events_producer_emit(p, k < 10 ? "tessera.audit" : "tessera.spaces",
                                                  T_A, &ev, &err),
                         TSR_OK);
        tsr_event_cleanup(&ev);
    }
    tsr_events_producer_destroy(p);
    for (int i = 0; i < 300 && head_seq(&fx, T_A) < 20; i++) {
        nap_ms(100);
    }
    ck_assert_int_eq(head_seq(&fx, T_A), 20);
    nap_ms(500); /* the duplicate, had it been stored, would show by now */
    json_t *r = verify(&fx, T_A);
    ck_assert(json_is_true(json_object_get(r, "ok")));
    ck_assert_int_eq(json_integer_value(json_object_get(r, "checked")), 20);
    json_decref(r);
    json_t *src = get_json(&fx, "/api/v1/audits/sources", T_A, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(src, "data")), 2);
    json_decref(src);
    tsr_audit_stop(fx.audit);
    tsr_audit_stop(fx.audit); /* idempotent */
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    fx_cleanup(&fx);
}
END_TEST

int main(void) {
    FILE *devnull = fopen("/dev/null", "w");
    tsr_log_init("audit", TSR_LOG_INFO, devnull);
    Suite *s = suite_create("audit");
    TCase *tc = tcase_create("chain");
    tcase_add_test(tc, test_ingest_same_event_twice_stores_once);
    tcase_add_test(tc, test_ingest_event_without_tenant_is_einval);
    tcase_add_test(tc, test_chain_intact_verifies_with_checkpoints);
    tcase_add_test(tc, test_verify_altered_record_reports_hash_mismatch);
    tcase_add_test(tc, test_verify_altered_record_with_recomputed_hash_reports_next_link);
    tcase_add_test(tc, test_verify_deleted_record_reports_missing);
    tcase_add_test(tc, test_verify_deleted_last_record_reports_missing);
    tcase_add_test(tc, test_verify_reordered_records_report_break);
    tcase_add_test(tc, test_verify_tail_cut_with_rewound_head_caught_by_checkpoint);
    tcase_add_test(tc, test_verify_forged_checkpoint_reports_signature);
    tcase_add_test(tc, test_concurrent_ingest_keeps_one_chain);
    tcase_add_test(tc, test_head_left_behind_by_a_crash_is_rolled_forward);
    tcase_add_test(tc, test_maintain_checkpoints_under_lease);
    tcase_add_test(tc, test_key_file_reused_and_foreign_key_fails_verify);
    tcase_add_test(tc, test_jws_round_trip_and_tamper);
    tcase_add_test(tc, test_key_rotation_old_key_still_verifies);
    suite_add_tcase(s, tc);
    tc = tcase_create("http");
    tcase_add_test(tc, test_list_default_newest_first_pages_with_absolute_links);
    tcase_add_test(tc, test_list_filters_and_ascending_sort);
    tcase_add_test(tc, test_list_two_filters_short_pages_cover_every_match_once);
    tcase_add_test(tc, test_list_bad_parameters_are_400);
    tcase_add_test(tc, test_roles_only_admins_read);
    tcase_add_test(tc, test_other_tenants_event_is_404_like_missing);
    tcase_add_test(tc, test_types_sources_settings);
    tcase_add_test(tc, test_archive_streams_day_as_ndjson_and_keeps_old_events);
    tcase_add_test(tc, test_archive_over_cap_is_413);
    tcase_add_test(tc, test_verify_endpoint_reports_break);
    tcase_add_test(tc, test_no_route_changes_or_deletes_an_event);
    tcase_add_test(tc, test_routes_and_openapi_cover_each_other);
    suite_add_tcase(s, tc);
    tc = tcase_create("consumer");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_consumer_stores_events_of_audit_topics_once_and_reports_ready);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    fclose(devnull);
    return failed == 0 ? 0 : 1;
}
