/*
 * Unit tests for pkg/reload: the schedule core (RRULE in IANA zones across both DST changes,
 * misfire decisions, triggers, auto-suspend), the HTTP API in-process (tsr_httpd_inject) over
 * a SQLite store in a temporary directory, the scheduler leader and its idempotency keys,
 * chained triggers, and the worker state machine (fencing tokens, stale results refused,
 * SIGKILL of a worker process mid-reload).
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "openapi_check.h"
#include "reload.h"
#include "reload_int.h"

/* ---- helpers --------------------------------------------------------------------------------- */

static int64_t ms_of(const char *rfc3339) {
    int64_t ms = 0;
    ck_assert_msg(tsr_time_parse_rfc3339(rfc3339, &ms) == TSR_OK, "bad time %s", rfc3339);
    return ms;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static tsr_reload_sched_t *sched(const char *tz, const char *start, const char *end,
                                 const char *rrule) {
    tsr_reload_sched_t *s = NULL;
    tsr_error_t err;
    const char *lines[1] = {rrule};
    tsr_reload_sched_spec_t spec = {.time_zone = tz,
                                    .start = start,
                                    .end = end,
                                    .recurrence = lines,
                                    .n_recurrence = rrule != NULL ? 1 : 0,
                                    .start_default_ms = ms_of("2026-01-01T00:00:00Z")};
    ck_assert_msg(tsr_reload_sched_create(&spec, &s, &err) == TSR_OK, "sched: %s", err.msg);
    return s;
}

/* ---- schedule core: table-driven ------------------------------------------------------------- */

typedef struct {
    const char *name, *tz, *start, *end, *rrule, *after;
    const char *fires[5]; /* expected UTC instants, NULL-terminated; "" = no further fire */
} sched_case_t;

static const sched_case_t CASES[] = {
    /* Europe/Berlin springs forward 2026-03-29 02:00 CET → 03:00 CEST: 02:30 does not exist
     * and fires at 03:30 CEST (01:30Z, the offset before the gap), once. */
    {"berlin_spring_forward_0230",
     "Europe/Berlin",
     "2026-03-27T02:30:00",
     NULL,
     "RRULE:FREQ=DAILY",
     "2026-03-27T00:00:00Z",
     {"2026-03-27T01:30:00Z", "2026-03-28T01:30:00Z", "2026-03-29T01:30:00Z",
      "2026-03-30T00:30:00Z", NULL}},
    /* Europe/Berlin falls back 2026-10-25 03:00 CEST → 02:00 CET: 02:30 happens twice and
     * fires once, at the first (CEST) occurrence. */
    {"berlin_fall_back_0230",
     "Europe/Berlin",
     "2026-10-24T02:30:00",
     NULL,
     "RRULE:FREQ=DAILY",
     "2026-10-24T00:00:00Z",
     {"2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z", NULL}},
    /* America/New_York springs forward 2026-03-08 02:00 EST → 03:00 EDT. */
    {"newyork_spring_forward_0230",
     "America/New_York",
     "2026-03-07T02:30:00",
     NULL,
     "RRULE:FREQ=DAILY;BYHOUR=2;BYMINUTE=30;BYSECOND=0",
     "2026-03-07T00:00:00Z",
     {"2026-03-07T07:30:00Z", "2026-03-08T07:30:00Z", "2026-03-09T06:30:00Z", NULL}},
    /* America/New_York falls back 2026-11-01 02:00 EDT → 01:00 EST: 01:30 twice, fired once. */
    {"newyork_fall_back_0130",
     "America/New_York",
     "2026-10-31T01:30:00",
     NULL,
     "RRULE:FREQ=DAILY",
     "2026-10-31T00:00:00Z",
     {"2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z", NULL}},
    /* An hourly rule across Berlin's fall-back: local 02:00 exists once in floating time, so
     * the repeated hour (01:00Z) gets no fire of its own. */
    {"berlin_hourly_fall_back",
     "Europe/Berlin",
     "2026-10-25T01:00:00",
     NULL,
     "RRULE:FREQ=HOURLY",
     "2026-10-24T22:00:00Z",
     {"2026-10-24T23:00:00Z", "2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z", NULL}},
    /* Qlik's doc example shape: BYHOUR/BYMINUTE in a zone (Toronto is EST in January). */
    {"toronto_byhour",
     "America/Toronto",
     "2026-01-05T00:00:00",
     NULL,
     "RRULE:FREQ=DAILY;INTERVAL=1;BYHOUR=11;BYMINUTE=18;BYSECOND=0",
     "2026-01-05T00:00:00Z",
     {"2026-01-05T16:18:00Z", "2026-01-06T16:18:00Z", NULL}},
    /* No zone: RFC 3339 with an offset, UTC arithmetic. */
    {"utc_offset_start",
     NULL,
     "2026-05-01T10:00:00+02:00",
     NULL,
     "RRULE:FREQ=DAILY",
     "2026-05-01T00:00:00Z",
     {"2026-05-01T08:00:00Z", "2026-05-02T08:00:00Z", NULL}},
    /* Weekly on weekdays. 2026-06-05 is a Friday. */
    {"weekly_byday",
     "UTC",
     "2026-06-01T09:00:00",
     NULL,
     "RRULE:FREQ=WEEKLY;BYDAY=MO,FR",
     "2026-06-02T00:00:00Z",
     {"2026-06-05T09:00:00Z", "2026-06-08T09:00:00Z", "2026-06-12T09:00:00Z", NULL}},
    /* Every other day, asked far from the start: the lattice stays aligned to DTSTART. */
    {"interval2_far_start",
     "UTC",
     "2026-01-01T10:00:00",
     NULL,
     "RRULE:FREQ=DAILY;INTERVAL=2",
     "2026-06-01T00:00:00Z",
     {"2026-06-02T10:00:00Z", "2026-06-04T10:00:00Z", NULL}},
    /* COUNT ends the series. */
    {"count3",
     "UTC",
     "2026-01-01T10:00:00",
     NULL,
     "RRULE:FREQ=DAILY;COUNT=3",
     "2026-01-01T00:00:00Z",
     {"2026-01-01T10:00:00Z", "2026-01-02T10:00:00Z", "2026-01-03T10:00:00Z", "", NULL}},
    /* endDateTime ends it too (inclusive). */
    {"end_date",
     "Europe/Berlin",
     "2026-01-01T10:00:00",
     "2026-01-02T10:00:00",
     "RRULE:FREQ=DAILY",
     "2026-01-01T00:00:00Z",
     {"2026-01-01T09:00:00Z", "2026-01-02T09:00:00Z", "", NULL}},
    /* Months without a 31st are skipped (RFC 5545: invalid dates are ignored). */
    {"monthly_31st",
     "UTC",
     "2026-01-31T08:00:00",
     NULL,
     "RRULE:FREQ=MONTHLY",
     "2026-01-01T00:00:00Z",
     {"2026-01-31T08:00:00Z", "2026-03-31T08:00:00Z", "2026-05-31T08:00:00Z", NULL}},
    /* A rule that never matches ends in "no fire", not a hang. */
    {"impossible_date",
     "UTC",
     "2026-01-01T08:00:00",
     NULL,
     "RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
     "2026-01-01T00:00:00Z",
     {"", NULL}},
    /* Minutely from a start long ago is answered without walking every minute since. */
    {"minutely_far_start",
     "Europe/Berlin",
     "2026-01-01T00:00:30",
     NULL,
     "RRULE:FREQ=MINUTELY;INTERVAL=15",
     "2029-07-01T10:01:00Z",
     {"2029-07-01T10:15:30Z", "2029-07-01T10:30:30Z", NULL}},
    /* A start and no recurrence: one fire. */
    {"once",
     "Europe/Berlin",
     "2026-07-01T12:00:00",
     NULL,
     NULL,
     "2026-01-01T00:00:00Z",
     {"2026-07-01T10:00:00Z", "", NULL}},
};

START_TEST(test_sched_next_table_expected_fires) {
    const sched_case_t *c = &CASES[_i];
    tsr_reload_sched_t *s = sched(c->tz, c->start, c->end, c->rrule);
    int64_t at = ms_of(c->after);
    for (int i = 0; c->fires[i] != NULL; i++) {
        int64_t n = tsr_reload_sched_next(s, at);
        if (c->fires[i][0] == '\0') {
            ck_assert_msg(n == TSR_RELOAD_NEVER, "%s: fire %d should be none", c->name, i);
            break;
        }
        char got[25];
        tsr_time_format_rfc3339(n, got);
        ck_assert_msg(n == ms_of(c->fires[i]), "%s: fire %d: got %s want %s", c->name, i, got,
                      c->fires[i]);
        at = n;
    }
    tsr_reload_sched_destroy(s);
}
END_TEST

START_TEST(test_tz_local_to_utc_gap_and_overlap_rfc5545) {
    int64_t u = 0;
    tsr_error_t err;
    /* 2026-03-29T02:30 Berlin (gap) → 01:30Z; 2026-10-25T02:30 (twice) → 00:30Z. */
    ck_assert_int_eq(
        tsr_reload_tz_local_to_utc("Europe/Berlin", ms_of("2026-03-29T02:30:00Z") / 1000, &u, &err),
        TSR_OK);
    ck_assert_int_eq(u, ms_of("2026-03-29T01:30:00Z") / 1000);
    ck_assert_int_eq(
        tsr_reload_tz_local_to_utc("Europe/Berlin", ms_of("2026-10-25T02:30:00Z") / 1000, &u, &err),
        TSR_OK);
    ck_assert_int_eq(u, ms_of("2026-10-25T00:30:00Z") / 1000);
    ck_assert_int_eq(tsr_reload_tz_local_to_utc("Mars/Olympus", 0, &u, &err), TSR_EINVAL);
}
END_TEST

START_TEST(test_sched_create_invalid_einval) {
    static const struct {
        const char *tz, *start, *rrule;
    } bad[] = {
        {"Mars/Olympus", "2026-01-01T00:00:00", "RRULE:FREQ=DAILY"},
        {"../../etc/passwd", "2026-01-01T00:00:00", "RRULE:FREQ=DAILY"},
        {"Europe/Berlin", "2026-01-01 00:00", "RRULE:FREQ=DAILY"},
        {"Europe/Berlin", "2026-02-31T00:00:00", "RRULE:FREQ=DAILY"},
        {NULL, "2026-01-01T00:00:00", "RRULE:FREQ=DAILY"}, /* no zone: offset required */
        {"Europe/Berlin", "2026-01-01T00:00:00", "DTSTART:20260101T000000"},
        {"Europe/Berlin", "2026-01-01T00:00:00", "RRULE:FREQ=SOMETIMES"},
        {"Europe/Berlin", "2026-01-01T00:00:00", "RRULE:FREQ=SECONDLY"},
        {"Europe/Berlin", "2026-01-01T00:00:00", "FREQ=DAILY"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tsr_reload_sched_t *s = NULL;
        tsr_error_t err;
        const char *lines[1] = {bad[i].rrule};
        tsr_reload_sched_spec_t spec = {
            .time_zone = bad[i].tz, .start = bad[i].start, .recurrence = lines, .n_recurrence = 1};
        ck_assert_msg(tsr_reload_sched_create(&spec, &s, &err) == TSR_EINVAL, "case %zu", i);
        ck_assert_ptr_null(s);
    }
}
END_TEST

START_TEST(test_sched_no_start_no_recurrence_never) {
    tsr_reload_sched_t *s = sched("Europe/Berlin", NULL, NULL, NULL);
    ck_assert_int_eq(tsr_reload_sched_next(s, 0), TSR_RELOAD_NEVER);
    tsr_reload_sched_destroy(s);
}
END_TEST

START_TEST(test_decide_misfire_policies) {
    tsr_reload_sched_t *s = sched("UTC", "2026-01-01T10:00:00", NULL, "RRULE:FREQ=DAILY");
    tsr_reload_decision_t d;
    int64_t due = ms_of("2026-01-01T10:00:00Z");
    /* On time: fire, no misses, next is tomorrow. */
    tsr_reload_decide(s, due, due + 500, TSR_RELOAD_MISFIRE_SKIP, 60000, &d);
    ck_assert(d.fire);
    ck_assert_int_eq(d.scheduled_ms, due);
    ck_assert_uint_eq(d.missed, 0);
    ck_assert_int_eq(d.next_ms, ms_of("2026-01-02T10:00:00Z"));
    /* Three days of downtime, RUN_ONCE: one fire keyed on the first missed slot. */
    int64_t now = ms_of("2026-01-04T12:00:00Z");
    tsr_reload_decide(s, due, now, TSR_RELOAD_MISFIRE_RUN_ONCE, 60000, &d);
    ck_assert(d.fire);
    ck_assert_int_eq(d.scheduled_ms, due);
    ck_assert_uint_eq(d.missed, 3);
    ck_assert_int_eq(d.next_ms, ms_of("2026-01-05T10:00:00Z"));
    /* Same downtime, SKIP: no fire, same next. */
    tsr_reload_decide(s, due, now, TSR_RELOAD_MISFIRE_SKIP, 60000, &d);
    ck_assert(!d.fire);
    ck_assert_int_eq(d.next_ms, ms_of("2026-01-05T10:00:00Z"));
    tsr_reload_sched_destroy(s);
}
END_TEST

START_TEST(test_trigger_matches_table) {
    static const struct {
        tsr_reload_trigger_on_t on;
        const char *status;
        bool want;
    } t[] = {
        {TSR_RELOAD_ON_SUCCEEDED, "SUCCEEDED", true},
        {TSR_RELOAD_ON_SUCCEEDED, "FAILED", false},
        {TSR_RELOAD_ON_FAILED, "FAILED", true},
        {TSR_RELOAD_ON_FAILED, "EXCEEDED_LIMIT", true},
        {TSR_RELOAD_ON_FAILED, "SUCCEEDED", false},
        {TSR_RELOAD_ON_ANY, "SUCCEEDED", true},
        {TSR_RELOAD_ON_ANY, "FAILED", true},
        {TSR_RELOAD_ON_ANY, "CANCELED", false},
        {TSR_RELOAD_ON_ANY, "RELOADING", false},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        ck_assert_msg(tsr_reload_trigger_matches(t[i].on, t[i].status) == t[i].want, "case %zu", i);
    }
}
END_TEST

START_TEST(test_failures_after_suspends_at_max) {
    bool s = false;
    unsigned n = 0;
    for (int i = 0; i < 4; i++) {
        n = tsr_reload_failures_after(n, false, 5, &s);
        ck_assert(!s);
    }
    n = tsr_reload_failures_after(n, false, 5, &s);
    ck_assert_uint_eq(n, 5);
    ck_assert(s);
    n = tsr_reload_failures_after(n, true, 5, &s);
    ck_assert_uint_eq(n, 0);
    ck_assert(!s);
}
END_TEST

/* ---- service fixture ------------------------------------------------------------------------- */

static int64_t g_now;
static int64_t fake_now(void) {
    return g_now;
}

/* Apps named "app*" exist and are reloadable, "ro*" are visible but read-only. */
static int g_access_calls;

static tsr_err_t fake_access(void *ud, const tsr_reload_caller_t *who, const char *app,
                             tsr_error_t *err) {
    (void)ud;
    (void)who;
    g_access_calls++;
    if (strncmp(app, "app", 3) == 0) {
        return TSR_OK;
    }
    if (strncmp(app, "ro", 2) == 0) {
        return tsr_error_set(err, TSR_EFORBIDDEN, "read only");
    }
    return tsr_error_set(err, TSR_ENOTFOUND, "no app");
}

typedef struct {
    char dir[64];
    char uri[128];
    tsr_store_t *store;
    tsr_reload_t *r;
    tsr_httpd_t *h;
} fx_t;

static void fx_open_store(fx_t *fx, tsr_store_t **out) {
    size_t n = 0;
    tsr_error_t err;
    tsr_store_opts_t so = {.collections = tsr_reload_collections(&n)};
    so.n_collections = n;
    ck_assert_msg(tsr_store_create(fx->uri, &so, out, &err) == TSR_OK, "store: %s", err.msg);
}

/* Leader leases last 5 s unless a test wants one to lapse: a loaded machine must not hand
 * leadership over between two ticks of a test. */
static tsr_reload_t *fx_service_ttl(fx_t *fx, const char *owner, unsigned max_active,
                                    unsigned max_failures, int64_t ttl_ms) {
    tsr_reload_t *r = NULL;
    tsr_error_t err;
    tsr_reload_opts_t o = {.store = fx->store,
                           .access = fake_access,
                           .tenant_max_active = max_active,
                           .max_failures = max_failures,
                           .owner = owner,
                           .lease_ttl_ms = ttl_ms,
                           .now_ms = fake_now};
    ck_assert_int_eq(tsr_reload_create(&o, &r, &err), TSR_OK);
    return r;
}

static tsr_reload_t *fx_service(fx_t *fx, const char *owner, unsigned max_active,
                                unsigned max_failures) {
    return fx_service_ttl(fx, owner, max_active, max_failures, 5000);
}

static void fx_init2(fx_t *fx, unsigned max_active, unsigned max_failures) {
    tsr_error_t err;
    memset(fx, 0, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/tsr-reload-test.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(fx->dir));
    snprintf(fx->uri, sizeof fx->uri, "sqlite:%s/store.db", fx->dir);
    fx_open_store(fx, &fx->store);
    g_now = ms_of("2026-03-01T00:00:00Z");
    fx->r = fx_service(fx, "replica-a", max_active, max_failures);
    tsr_httpd_opts_t o = {.service = "reload",
                          .bind = "127.0.0.1",
                          .threads = 1,
                          .max_body = 65536,
                          .on_principal = tsr_reload_principal};
    ck_assert_int_eq(tsr_httpd_create(&o, &fx->h, &err), TSR_OK);
    ck_assert_int_eq(tsr_reload_routes(fx->h, fx->r, &err), TSR_OK);
}

static void fx_init(fx_t *fx) {
    fx_init2(fx, 0, 0);
}

static void fx_cleanup(fx_t *fx) {
    char cmd[128];
    tsr_httpd_destroy(fx->h);
    tsr_reload_destroy(fx->r);
    tsr_store_destroy(fx->store);
    snprintf(cmd, sizeof cmd, "rm -rf %s", fx->dir);
    ck_assert_int_eq(system(cmd), 0);
}

static json_t *call(fx_t *fx, const char *tenant, const char *method, const char *path,
                    const char *body, unsigned want) {
    tsr_httpd_response_t resp;
    const char *hdr[] = {
        "Host", "reload.test",  "X-Tsr-Tenant-Id",  tenant, "X-Tsr-User-Id", "u1", "X-Tsr-Roles",
        "User", "Content-Type", "application/json", NULL};
    tsr_httpd_inject(fx->h, method, path, hdr, body, body != NULL ? strlen(body) : 0, &resp);
    ck_assert_msg(resp.status == want, "%s %s: status %u want %u: %s", method, path, resp.status,
                  want, resp.body);
    json_t *j = resp.body_len > 0 ? json_loads(resp.body, 0, NULL) : NULL;
    tsr_httpd_response_cleanup(&resp);
    return j;
}

static char *reload_id_of(json_t *j) {
    return tsr_xstrdup(json_string_value(json_object_get(j, "id")));
}

/* Outbox rows of one event type (optionally about one reload). */
static size_t outbox_count(fx_t *fx, const char *type, const char *reload_id) {
    tsr_store_event_t *rows = NULL;
    size_t n = 0, hits = 0;
    tsr_error_t err;
    ck_assert_int_eq(tsr_store_platform_outbox_fetch(fx->store, 1000, &rows, &n, &err), TSR_OK);
    for (size_t i = 0; i < n; i++) {
        json_t *ev = json_loadb(rows[i].payload, rows[i].payload_len, 0, NULL);
        const char *t = json_string_value(json_object_get(ev, "type"));
        const char *rid =
            json_string_value(json_object_get(json_object_get(ev, "data"), "reloadId"));
        if (t != NULL && strcmp(t, type) == 0 &&
            (reload_id == NULL || (rid != NULL && strcmp(rid, reload_id) == 0))) {
            hits++;
        }
        json_decref(ev);
    }
    tsr_store_outbox_rows_free(rows, n);
    return hits;
}

static json_t *get_doc(fx_t *fx, const char *collection, const char *id) {
    json_t *d = NULL;
    tsr_error_t err;
    ck_assert_msg(tsr_store_doc_get(fx->store, "ta", collection, id, &d, &err) == TSR_OK,
                  "get %s/%s: %s", collection, id, err.msg);
    return d;
}

static const char *str_of(json_t *j, const char *k) {
    return json_string_value(json_object_get(j, k));
}

/* ---- HTTP: reloads --------------------------------------------------------------------------- */

START_TEST(test_post_reload_queued_201_and_get) {
    fx_t fx;
    fx_init(&fx);
    json_t *j =
        call(&fx, "ta", "POST", "/api/v1/reloads", "{\"appId\":\"app1\",\"partial\":true}", 201);
    ck_assert_str_eq(str_of(j, "status"), "QUEUED");
    ck_assert_str_eq(str_of(j, "appId"), "app1");
    ck_assert_str_eq(str_of(j, "type"), "external");
    ck_assert(json_is_true(json_object_get(j, "partial")));
    ck_assert_ptr_null(json_object_get(j, "activeAppId"));
    char *id = reload_id_of(j);
    const char *self = json_string_value(
        json_object_get(json_object_get(json_object_get(j, "links"), "self"), "href"));
    ck_assert_ptr_nonnull(strstr(self, "http://reload.test/api/v1/reloads/"));
    json_decref(j);
    char path[128];
    snprintf(path, sizeof path, "/api/v1/reloads/%s", id);
    j = call(&fx, "ta", "GET", path, NULL, 200);
    ck_assert_str_eq(str_of(j, "id"), id);
    json_decref(j);
    /* The queue: one reload.requested event keyed by the app id. */
    ck_assert_uint_eq(outbox_count(&fx, "com.tessera.v1.reload.requested", id), 1);
    free(id);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_post_reload_validation_and_access) {
    fx_t fx;
    fx_init(&fx);
    json_decref(call(&fx, "ta", "POST", "/api/v1/reloads", "{}", 400));
    json_decref(
        call(&fx, "ta", "POST", "/api/v1/reloads", "{\"appId\":\"app1\",\"bogus\":1}", 400));
    json_decref(call(&fx, "ta", "POST", "/api/v1/reloads", "{\"appId\":7}", 400));
    json_decref(call(&fx, "ta", "POST", "/api/v1/reloads", "{\"appId\":\"nope\"}", 404));
    json_decref(call(&fx, "ta", "POST", "/api/v1/reloads", "{\"appId\":\"ro1\"}", 403));
    fx_cleanup(&fx);
}
END_TEST

static void queue_cancel(fx_t *fx, const char *app) {
    char body[64], path[160];
    snprintf(body, sizeof body, "{\"appId\":\"%s\"}", app);
    json_t *j = call(fx, "ta", "POST", "/api/v1/reloads", body, 201);
    snprintf(path, sizeof path, "/api/v1/reloads/%s/actions/cancel", str_of(j, "id"));
    json_decref(j);
    json_decref(call(fx, "ta", "POST", path, NULL, 204));
}

START_TEST(test_access_cached_until_invalidated) {
    fx_t fx;
    fx_init(&fx);
    g_access_calls = 0;
    queue_cancel(&fx, "app1");
    queue_cancel(&fx, "app1");
    ck_assert_int_eq(g_access_calls, 1);
    json_decref(call(&fx, "ta", "POST", "/api/v1/reloads", "{\"appId\":\"ro1\"}", 403));
    json_decref(call(&fx, "ta", "POST", "/api/v1/reloads", "{\"appId\":\"ro1\"}", 403));
    ck_assert_int_eq(g_access_calls, 2);
    tsr_reload_access_invalidate(fx.r); /* a space or app event */
    queue_cancel(&fx, "app1");
    ck_assert_int_eq(g_access_calls, 3);
    /* Another tenant's caller is another cache entry. */
    json_decref(call(&fx, "tb", "POST", "/api/v1/reloads", "{\"appId\":\"app1\"}", 201));
    ck_assert_int_eq(g_access_calls, 4);
    fx_cleanup(&fx);
}
END_TEST

static void queue_cancel_in(fx_t *fx, const char *tenant, const char *app) {
    char body[64], path[160];
    snprintf(body, sizeof body, "{\"appId\":\"%s\"}", app);
    json_t *j = call(fx, tenant, "POST", "/api/v1/reloads", body, 201);
    snprintf(path, sizeof path, "/api/v1/reloads/%s/actions/cancel", str_of(j, "id"));
    json_decref(j);
    json_decref(call(fx, tenant, "POST", path, NULL, 204));
}

/* One event of spaces applied to the access cache: how many decisions it dropped. */
static size_t apply_event(fx_t *fx, const char *type, const char *tenant, const char *subject) {
    tsr_event_t ev;
    tsr_error_t err;
    ck_assert_int_eq(tsr_event_init(&ev, "/tessera/spaces", type, tenant, subject, NULL, &err),
                     TSR_OK);
    size_t n = tsr_reload_access_on_event(fx->r, &ev);
    tsr_event_cleanup(&ev);
    return n;
}

START_TEST(test_access_events_drop_app_or_tenant_never_another_tenant) {
    fx_t fx;
    fx_init(&fx);
    g_access_calls = 0;
    queue_cancel_in(&fx, "ta", "app1");
    json_decref(call(&fx, "ta", "POST", "/api/v1/reloads", "{\"appId\":\"ro1\"}", 403));
    queue_cancel_in(&fx, "tb", "app1"); /* the same app id in another tenant */
    ck_assert_int_eq(g_access_calls, 3);
    /* Events that change no access drop nothing. */
    ck_assert_uint_eq(apply_event(&fx, "com.tessera.v1.datafile.created", "ta", "f1"), 0);
    ck_assert_uint_eq(apply_event(&fx, "com.tessera.v1.reload.finished", "ta", "app1"), 0);
    ck_assert_uint_eq(apply_event(&fx, "com.tessera.v1.app.deleted", "tc", "app1"), 0);
    /* Tenant b's app event drops b's decision on app1 only: a's stays. */
    ck_assert_uint_eq(apply_event(&fx, "com.tessera.v1.app.deleted", "tb", "app1"), 1);
    queue_cancel_in(&fx, "ta", "app1");
    ck_assert_int_eq(g_access_calls, 3);
    queue_cancel_in(&fx, "tb", "app1");
    ck_assert_int_eq(g_access_calls, 4);
    /* An app event drops that app's decisions, not the tenant's other apps. */
    ck_assert_uint_eq(apply_event(&fx, "com.tessera.v1.app.updated", "ta", "ro1"), 1);
    queue_cancel_in(&fx, "ta", "app1");
    ck_assert_int_eq(g_access_calls, 4);
    json_decref(call(&fx, "ta", "POST", "/api/v1/reloads", "{\"appId\":\"ro1\"}", 403));
    ck_assert_int_eq(g_access_calls, 5);
    /* A membership change in b's space drops all of b's decisions and none of a's. */
    ck_assert_uint_eq(apply_event(&fx, "com.tessera.v1.space.member.removed", "tb", "sp1"), 1);
    queue_cancel_in(&fx, "ta", "app1");
    ck_assert_int_eq(g_access_calls, 5);
    /* ... and in a's: both of a's decisions go. */
    ck_assert_uint_eq(apply_event(&fx, "com.tessera.v1.space.member.removed", "ta", "sp1"), 2);
    queue_cancel_in(&fx, "ta", "app1");
    ck_assert_int_eq(g_access_calls, 6);
    /* Identity: a group change drops the tenant's decisions; a login-ish event nothing. */
    ck_assert_uint_eq(apply_event(&fx, "com.tessera.v1.group.updated", "ta", "g1"), 1);
    ck_assert_uint_eq(apply_event(&fx, "com.tessera.v1.user.created", "ta", "u9"), 0);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_post_reload_same_app_twice_409) {
    fx_t fx;
    fx_init(&fx);
    json_decref(call(&fx, "ta", "POST", "/api/v1/reloads", "{\"appId\":\"app1\"}", 201));
    json_t *e = call(&fx, "ta", "POST", "/api/v1/reloads", "{\"appId\":\"app1\"}", 409);
    const char *detail = json_string_value(
        json_object_get(json_array_get(json_object_get(e, "errors"), 0), "detail"));
    ck_assert_ptr_nonnull(strstr(detail, "one reload per app"));
    json_decref(e);
    /* Another tenant's app of the same id is independent. */
    json_decref(call(&fx, "tb", "POST", "/api/v1/reloads", "{\"appId\":\"app1\"}", 201));
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_post_reload_tenant_limit_429) {
    fx_t fx;
    fx_init2(&fx, 2, 0);
    json_decref(call(&fx, "ta", "POST", "/api/v1/reloads", "{\"appId\":\"app1\"}", 201));
    json_decref(call(&fx, "ta", "POST", "/api/v1/reloads", "{\"appId\":\"app2\"}", 201));
    json_decref(call(&fx, "ta", "POST", "/api/v1/reloads", "{\"appId\":\"app3\"}", 429));
    json_decref(call(&fx, "tb", "POST", "/api/v1/reloads", "{\"appId\":\"app3\"}", 201));
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_cancel_queued_204_then_409) {
    fx_t fx;
    char path[160];
    fx_init(&fx);
    json_t *j = call(&fx, "ta", "POST", "/api/v1/reloads", "{\"appId\":\"app1\"}", 201);
    char *id = reload_id_of(j);
    json_decref(j);
    snprintf(path, sizeof path, "/api/v1/reloads/%s/actions/cancel", id);
    json_decref(call(&fx, "tb", "POST", path, NULL, 404));
    json_decref(call(&fx, "ta", "POST", path, NULL, 204));
    json_decref(call(&fx, "ta", "POST", path, NULL, 409));
    snprintf(path, sizeof path, "/api/v1/reloads/%s", id);
    j = call(&fx, "ta", "GET", path, NULL, 200);
    ck_assert_str_eq(str_of(j, "status"), "CANCELED");
    json_decref(j);
    ck_assert_uint_eq(outbox_count(&fx, "com.tessera.v1.reload.finished", id), 1);
    /* The app is free again. */
    json_decref(call(&fx, "ta", "POST", "/api/v1/reloads", "{\"appId\":\"app1\"}", 201));
    free(id);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_list_reloads_cursor_paging_absolute_links) {
    fx_t fx;
    char path[160];
    fx_init(&fx);
    for (int i = 0; i < 3; i++) {
        g_now += 1000;
        json_t *j = call(&fx, "ta", "POST", "/api/v1/reloads", "{\"appId\":\"app1\"}", 201);
        char *id = reload_id_of(j);
        json_decref(j);
        snprintf(path, sizeof path, "/api/v1/reloads/%s/actions/cancel", id);
        json_decref(call(&fx, "ta", "POST", path, NULL, 204));
        free(id);
    }
    json_decref(call(&fx, "ta", "GET", "/api/v1/reloads", NULL, 400)); /* appId required */
    json_decref(call(&fx, "ta", "GET", "/api/v1/reloads?appId=app1&limit=0", NULL, 400));
    json_t *p1 = call(&fx, "ta", "GET", "/api/v1/reloads?appId=app1&limit=2", NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(p1, "data")), 2);
    const char *next = json_string_value(
        json_object_get(json_object_get(json_object_get(p1, "links"), "next"), "href"));
    ck_assert_ptr_nonnull(next);
    ck_assert_msg(strncmp(next, "http://reload.test/api/v1/reloads?", 34) == 0, "%s", next);
    json_t *p2 = call(&fx, "ta", "GET", next + strlen("http://reload.test"), NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(p2, "data")), 1);
    ck_assert_ptr_null(json_object_get(json_object_get(p2, "links"), "next"));
    json_decref(p1);
    json_decref(p2);
    json_t *f = call(&fx, "ta", "GET",
                     "/api/v1/reloads?appId=app1&filter=status%20eq%20%22CANCELED%22", NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(f, "data")), 3);
    json_decref(f);
    f = call(&fx, "ta", "GET", "/api/v1/reloads?appId=app1&status=SUCCEEDED", NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(f, "data")), 0);
    json_decref(f);
    json_decref(call(&fx, "ta", "GET", "/api/v1/reloads?appId=app1&status=BOGUS", NULL, 400));
    /* Another tenant sees nothing. */
    f = call(&fx, "tb", "GET", "/api/v1/reloads?appId=app1", NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(f, "data")), 0);
    json_decref(f);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_other_tenant_404_on_every_endpoint) {
    fx_t fx;
    char path[200];
    fx_init(&fx);
    json_t *j = call(&fx, "ta", "POST", "/api/v1/reloads", "{\"appId\":\"app1\"}", 201);
    char *rid = reload_id_of(j);
    json_decref(j);
    j = call(&fx, "ta", "POST", "/api/v1/reload-tasks",
             "{\"appId\":\"app1\",\"timeZone\":\"Europe/Berlin\",\"startDateTime\":"
             "\"2026-03-02T02:30:00\",\"recurrence\":[\"RRULE:FREQ=DAILY\"]}",
             201);
    char *tid = reload_id_of(j);
    json_decref(j);
    snprintf(path, sizeof path, "/api/v1/reloads/%s", rid);
    json_decref(call(&fx, "tb", "GET", path, NULL, 404));
    snprintf(path, sizeof path, "/api/v1/reloads/%s/actions/cancel", rid);
    json_decref(call(&fx, "tb", "POST", path, NULL, 404));
    snprintf(path, sizeof path, "/api/v1/apps/app1/reloads/logs/%s", rid);
    json_decref(call(&fx, "tb", "GET", path, NULL, 404));
    snprintf(path, sizeof path, "/api/v1/reload-tasks/%s", tid);
    json_decref(call(&fx, "tb", "GET", path, NULL, 404));
    json_decref(call(&fx, "tb", "PUT", path, "{\"appId\":\"app1\"}", 404));
    json_decref(call(&fx, "tb", "DELETE", path, NULL, 404));
    j = call(&fx, "tb", "GET", "/api/v1/reload-tasks", NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "data")), 0);
    json_decref(j);
    j = call(&fx, "tb", "GET", "/api/v1/apps/app1/reloads/logs", NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "data")), 0);
    json_decref(j);
    /* Still there for its owner. */
    json_decref(call(&fx, "ta", "GET", path, NULL, 200));
    free(rid);
    free(tid);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_unauthenticated_401) {
    fx_t fx;
    tsr_httpd_response_t resp;
    fx_init(&fx);
    tsr_httpd_inject(fx.h, "GET", "/api/v1/reloads?appId=x", NULL, NULL, 0, &resp);
    ck_assert_uint_eq(resp.status, 401);
    tsr_httpd_response_cleanup(&resp);
    fx_cleanup(&fx);
}
END_TEST

/* A stand-in for spaces' /internal/v1/access: the app id picks the answer; the principal
 * headers must arrive. */
static tsr_err_t fake_spaces(tsr_req_t *req, void *ud, tsr_error_t *err) {
    (void)ud;
    const char *res = tsr_req_query(req, "resource");
    const char *tenant = tsr_req_header(req, "x-tsr-tenant-id");
    if (tenant == NULL || strcmp(tenant, "ta") != 0 || res == NULL ||
        strncmp(res, "app:", 4) != 0) {
        return tsr_error_set(err, TSR_EINVAL, "bad access request");
    }
    const char *app = res + 4;
    if (strcmp(app, "rw") == 0) {
        tsr_req_reply_json(req, 200, json_pack("{s[ss]}", "actions", "read", "reload"));
    } else if (strcmp(app, "ro") == 0) {
        tsr_req_reply_json(req, 200, json_pack("{s[s]}", "actions", "read"));
    } else if (strcmp(app, "none") == 0) {
        tsr_req_reply_json(req, 200, json_pack("{s[]}", "actions"));
    } else if (strcmp(app, "boom") == 0) {
        return tsr_error_set(err, TSR_EINTERNAL, "boom");
    } else {
        return tsr_error_set(err, TSR_ENOTFOUND, "no app");
    }
    return TSR_OK;
}

START_TEST(test_access_spaces_maps_answers) {
    tsr_httpd_t *h = NULL;
    tsr_error_t err;
    char url[64];
    tsr_httpd_opts_t o = {
        .service = "fake-spaces", .bind = "127.0.0.1", .threads = 1, .max_body = 4096};
    ck_assert_int_eq(tsr_httpd_create(&o, &h, &err), TSR_OK);
    ck_assert_int_eq(tsr_httpd_route(h, "GET", "/internal/v1/access", fake_spaces, NULL, &err),
                     TSR_OK);
    ck_assert_int_eq(tsr_httpd_start(h, &err), TSR_OK);
    snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)tsr_httpd_port(h));
    tsr_reload_caller_t who = {.tenant = "ta", .user = "u1", .roles = "User", .token = "jwt"};
    ck_assert_int_eq(tsr_reload_access_spaces(url, &who, "rw", &err), TSR_OK);
    ck_assert_int_eq(tsr_reload_access_spaces(url, &who, "ro", &err), TSR_EFORBIDDEN);
    ck_assert_int_eq(tsr_reload_access_spaces(url, &who, "none", &err), TSR_ENOTFOUND);
    ck_assert_int_eq(tsr_reload_access_spaces(url, &who, "missing", &err), TSR_ENOTFOUND);
    ck_assert_int_eq(tsr_reload_access_spaces(url, &who, "boom", &err), TSR_EUNAVAILABLE);
    tsr_reload_caller_t other = {.tenant = "tb", .user = "u1"};
    ck_assert_int_eq(tsr_reload_access_spaces(url, &other, "rw", &err), TSR_EUNAVAILABLE);
    tsr_httpd_stop(h, 1000);
    tsr_httpd_destroy(h);
    /* Spaces down: fail closed. */
    ck_assert_int_eq(tsr_reload_access_spaces(url, &who, "rw", &err), TSR_EUNAVAILABLE);
}
END_TEST

/* ---- HTTP: tasks ----------------------------------------------------------------------------- */

START_TEST(test_task_crud_and_validation) {
    fx_t fx;
    char path[160];
    fx_init(&fx);
    json_t *j = call(&fx, "ta", "POST", "/api/v1/reload-tasks",
                     "{\"appId\":\"app1\",\"timeZone\":\"Europe/Berlin\",\"startDateTime\":"
                     "\"2026-03-28T02:30:00\",\"recurrence\":[\"RRULE:FREQ=DAILY\"]}",
                     201);
    ck_assert_str_eq(str_of(j, "state"), "Enabled");
    ck_assert_str_eq(str_of(j, "nextExecutionTime"), "2026-03-28T01:30:00.000Z");
    ck_assert_str_eq(str_of(j, "misfirePolicy"), "RUN_ONCE");
    ck_assert_ptr_null(json_object_get(j, "nextFireMs"));
    char *tid = reload_id_of(j);
    snprintf(path, sizeof path, "/api/v1/reload-tasks/%s", tid);
    /* A GET body can be PUT back (read-only members ignored). */
    json_object_set_new(j, "state", json_string("Disabled"));
    char *body = json_dumps(j, 0);
    json_decref(j);
    j = call(&fx, "ta", "PUT", path, body, 200);
    free(body);
    ck_assert_str_eq(str_of(j, "state"), "Disabled");
    ck_assert_str_eq(str_of(j, "disabledCode"), "MANUALLY");
    ck_assert_ptr_null(json_object_get(j, "nextExecutionTime"));
    json_decref(j);
    j = call(&fx, "ta", "GET", "/api/v1/reload-tasks?appId=app1", NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "data")), 1);
    json_decref(j);
    static const char *const bad[] = {
        "{\"timeZone\":\"UTC\"}",
        "{\"appId\":\"app1\",\"recurrence\":[\"RRULE:FREQ=NEVER\"]}",
        "{\"appId\":\"app1\",\"recurrence\":[\"DTSTART:20260101T000000Z\"]}",
        "{\"appId\":\"app1\",\"timeZone\":\"Nowhere/City\",\"recurrence\":[\"RRULE:FREQ=DAILY\"]}",
        "{\"appId\":\"app1\",\"frobnicate\":true}",
        "{\"appId\":\"app1\",\"misfirePolicy\":\"SOMETIMES\"}",
        "{\"appId\":\"app1\",\"trigger\":{\"taskId\":\"missing\",\"on\":\"SUCCEEDED\"}}",
        "{\"appId\":\"nope\",\"recurrence\":[\"RRULE:FREQ=DAILY\"]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_decref(call(&fx, "ta", "POST", "/api/v1/reload-tasks", bad[i], 400));
    }
    json_decref(call(&fx, "ta", "DELETE", path, NULL, 204));
    json_decref(call(&fx, "ta", "GET", path, NULL, 404));
    ck_assert_uint_eq(outbox_count(&fx, "com.tessera.v1.reload.task.created", NULL), 1);
    ck_assert_uint_eq(outbox_count(&fx, "com.tessera.v1.reload.task.deleted", NULL), 1);
    free(tid);
    fx_cleanup(&fx);
}
END_TEST

/* ---- scheduler ------------------------------------------------------------------------------- */

static char *make_task(fx_t *fx, const char *app, const char *extra) {
    char body[512];
    snprintf(body, sizeof body,
             "{\"appId\":\"%s\",\"timeZone\":\"Europe/Berlin\",\"startDateTime\":"
             "\"2026-03-01T02:30:00\",\"recurrence\":[\"RRULE:FREQ=DAILY\"]%s}",
             app, extra != NULL ? extra : "");
    json_t *j = call(fx, "ta", "POST", "/api/v1/reload-tasks", body, 201);
    char *id = reload_id_of(j);
    json_decref(j);
    return id;
}

static char *queue(fx_t *fx, const char *app);

static size_t count_reloads(fx_t *fx, const char *task_id) {
    tsr_store_page_t page = {0};
    tsr_error_t err;
    json_t *v = json_string(task_id);
    tsr_store_filter_t f = {"taskId", TSR_STORE_EQ, v};
    tsr_store_query_t q = {.filters = &f, .n_filters = 1, .limit = 1000};
    ck_assert_int_eq(tsr_store_doc_list(fx->store, "ta", TSR_RL__C_RELOADS, &q, &page, &err),
                     TSR_OK);
    size_t n = json_array_size(page.items);
    tsr_store_page_cleanup(&page);
    json_decref(v);
    return n;
}

static tsr_err_t job_ok(void *ud, tsr_reload_run_t *run, const char *tenant, const char *app,
                        bool partial, tsr_error_t *err) {
    (void)ud;
    (void)tenant;
    (void)partial;
    (void)err;
    ck_assert_ptr_nonnull(tsr_reload_run_id(run));
    tsr_reload_run_log(run, "loaded %s", app);
    return TSR_OK;
}

static tsr_err_t job_fail(void *ud, tsr_reload_run_t *run, const char *tenant, const char *app,
                          bool partial, tsr_error_t *err) {
    (void)ud;
    (void)run;
    (void)tenant;
    (void)app;
    (void)partial;
    return tsr_error_set(err, TSR_EINVAL, "script error on line 3");
}

static tsr_reload_worker_opts_t wopts(fx_t *fx) {
    tsr_reload_worker_opts_t o = {.store = fx->store, .owner = "w", .lease_ttl_ms = 400};
    return o;
}

/* Run the latest QUEUED reload of task_id through a worker with job; returns its id. */
static char *run_task_reload(fx_t *fx, const char *task_id, tsr_reload_job_fn job) {
    tsr_store_page_t page = {0};
    tsr_error_t err;
    json_t *v = json_string(task_id);
    tsr_store_filter_t f[2] = {{"taskId", TSR_STORE_EQ, v},
                               {"status", TSR_STORE_EQ, json_string("QUEUED")}};
    tsr_store_query_t q = {.filters = f, .n_filters = 2, .limit = 10};
    ck_assert_int_eq(tsr_store_doc_list(fx->store, "ta", TSR_RL__C_RELOADS, &q, &page, &err),
                     TSR_OK);
    ck_assert_uint_eq(json_array_size(page.items), 1);
    char *id = tsr_xstrdup(str_of(json_array_get(page.items, 0), "id"));
    tsr_store_page_cleanup(&page);
    json_decref(v);
    json_decref((json_t *)f[1].value);
    tsr_reload_worker_opts_t o = wopts(fx);
    tsr_reload_run_outcome_t out;
    ck_assert_int_eq(tsr_reload_worker_run(&o, "ta", id, job, NULL, &out, &err), TSR_OK);
    ck_assert_int_eq(out, TSR_RELOAD_RUN_FINISHED);
    return id;
}

START_TEST(test_scheduler_two_replicas_one_leader_one_fire) {
    fx_t fx;
    bool lead_a = false, lead_b = false;
    unsigned fa = 0, fb = 0;
    tsr_error_t err;
    fx_init(&fx);
    char *tid = make_task(&fx, "app1", NULL);
    tsr_reload_t *b = fx_service(&fx, "replica-b", 0, 0);
    g_now = ms_of("2026-03-01T01:30:00Z") + 200; /* 02:30 Berlin (CET) + 200 ms */
    ck_assert_int_eq(tsr_reload_scheduler_tick(fx.r, &lead_a, &fa, &err), TSR_OK);
    ck_assert_int_eq(tsr_reload_scheduler_tick(b, &lead_b, &fb, &err), TSR_OK);
    ck_assert(lead_a);
    ck_assert(!lead_b);
    ck_assert_uint_eq(fa, 1);
    ck_assert_uint_eq(fb, 0);
    ck_assert_int_eq(tsr_reload_scheduler_tick(fx.r, &lead_a, &fa, &err), TSR_OK);
    ck_assert_uint_eq(fa, 0);
    ck_assert_uint_eq(count_reloads(&fx, tid), 1);
    /* The fire is recorded under its idempotency key. */
    char key[128];
    snprintf(key, sizeof key, "%s@%lld", tid, (long long)ms_of("2026-03-01T01:30:00Z"));
    json_t *fire = get_doc(&fx, TSR_RL__C_FIRES, key);
    ck_assert_str_eq(str_of(fire, "outcome"), "QUEUED");
    json_decref(fire);
    json_t *task = get_doc(&fx, TSR_RL__C_TASKS, tid);
    ck_assert_str_eq(str_of(task, "nextExecutionTime"), "2026-03-02T01:30:00.000Z");
    ck_assert_str_eq(str_of(task, "lastExecutionTime"), "2026-03-01T01:30:00.000Z");
    json_decref(task);
    /* Leader change: A stops (releases the lease), B takes over and does not fire again. */
    tsr_reload_scheduler_stop(fx.r);
    tsr_store_lease_t l;
    ck_assert_int_eq(tsr_store_lease_get(fx.store, "reload.scheduler", &l, &err), TSR_OK);
    ck_assert_msg(l.owner[0] == '\0', "lease still held by %s", l.owner);
    ck_assert_int_eq(tsr_reload_scheduler_tick(b, &lead_b, &fb, &err), TSR_OK);
    ck_assert(lead_b);
    ck_assert_uint_eq(fb, 0);
    /* The next day B fires the next slot (after the first reload ended). */
    free(run_task_reload(&fx, tid, job_ok));
    g_now = ms_of("2026-03-02T01:30:05Z");
    ck_assert_int_eq(tsr_reload_scheduler_tick(b, &lead_b, &fb, &err), TSR_OK);
    ck_assert_uint_eq(fb, 1);
    ck_assert_uint_eq(count_reloads(&fx, tid), 2);
    tsr_reload_destroy(b);
    free(tid);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_scheduler_leader_lease_expiry_takeover_no_double) {
    fx_t fx;
    bool lead = false;
    unsigned n = 0;
    tsr_error_t err;
    fx_init(&fx);
    char *tid = make_task(&fx, "app1", NULL);
    tsr_reload_t *a = fx_service_ttl(&fx, "replica-short", 0, 0, 300);
    tsr_reload_t *b = fx_service(&fx, "replica-b", 0, 0);
    g_now = ms_of("2026-03-01T01:30:01Z");
    ck_assert_int_eq(tsr_reload_scheduler_tick(a, &lead, &n, &err), TSR_OK);
    ck_assert(lead);
    ck_assert_uint_eq(n, 1);
    /* A "dies" (stops renewing); its 300 ms lease expires and B takes over. */
    sleep_ms(450);
    ck_assert_int_eq(tsr_reload_scheduler_tick(b, &lead, &n, &err), TSR_OK);
    ck_assert(lead);
    ck_assert_uint_eq(n, 0);
    /* A comes back believing it leads: its renew fails, it fires nothing. */
    ck_assert_int_eq(tsr_reload_scheduler_tick(a, &lead, &n, &err), TSR_OK);
    ck_assert(!lead);
    ck_assert_uint_eq(count_reloads(&fx, tid), 1);
    tsr_reload_destroy(a);
    tsr_reload_destroy(b);
    free(tid);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_fire_same_key_twice_never_doubled) {
    fx_t fx;
    bool fired = false;
    tsr_error_t err;
    fx_init(&fx);
    char *tid = make_task(&fx, "app1", NULL);
    json_t *task = get_doc(&fx, TSR_RL__C_TASKS, tid);
    char key[128];
    snprintf(key, sizeof key, "%s@%lld", tid, (long long)123000);
    /* Two leaders acting on the same stale snapshot: the key admits one. */
    ck_assert_int_eq(tsr_rl__fire(fx.r, task, key, 123000, 0, NULL, &fired, &err), TSR_OK);
    ck_assert(fired);
    ck_assert_int_eq(tsr_rl__fire(fx.r, task, key, 123000, 0, NULL, &fired, &err), TSR_ECONFLICT);
    ck_assert(!fired);
    ck_assert_uint_eq(count_reloads(&fx, tid), 1);
    ck_assert_uint_eq(outbox_count(&fx, "com.tessera.v1.reload.requested", NULL), 1);
    json_decref(task);
    free(tid);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_scheduler_misfire_run_once_vs_skip) {
    fx_t fx;
    bool lead = false;
    unsigned n = 0;
    tsr_error_t err;
    fx_init(&fx);
    char *t1 = make_task(&fx, "app1", ",\"misfirePolicy\":\"RUN_ONCE\"");
    char *t2 = make_task(&fx, "app2", ",\"misfirePolicy\":\"SKIP\"");
    /* Three days of downtime. */
    g_now = ms_of("2026-03-04T12:00:00Z");
    ck_assert_int_eq(tsr_reload_scheduler_tick(fx.r, &lead, &n, &err), TSR_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(count_reloads(&fx, t1), 1);
    ck_assert_uint_eq(count_reloads(&fx, t2), 0);
    char key[128];
    snprintf(key, sizeof key, "%s@%lld", t2, (long long)ms_of("2026-03-01T01:30:00Z"));
    json_t *fire = get_doc(&fx, TSR_RL__C_FIRES, key);
    ck_assert_str_eq(str_of(fire, "outcome"), "SKIPPED_MISFIRE");
    json_decref(fire);
    snprintf(key, sizeof key, "%s@%lld", t1, (long long)ms_of("2026-03-01T01:30:00Z"));
    fire = get_doc(&fx, TSR_RL__C_FIRES, key);
    ck_assert_int_eq(json_integer_value(json_object_get(fire, "missed")), 3);
    json_decref(fire);
    for (int i = 0; i < 2; i++) {
        json_t *task = get_doc(&fx, TSR_RL__C_TASKS, i == 0 ? t1 : t2);
        ck_assert_str_eq(str_of(task, "nextExecutionTime"), "2026-03-05T01:30:00.000Z");
        json_decref(task);
    }
    ck_assert_int_eq(tsr_reload_scheduler_tick(fx.r, &lead, &n, &err), TSR_OK);
    ck_assert_uint_eq(n, 0);
    free(t1);
    free(t2);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_auto_suspend_after_consecutive_failures) {
    fx_t fx;
    bool lead = false;
    unsigned n = 0;
    tsr_error_t err;
    fx_init2(&fx, 0, 2);
    char *tid = make_task(&fx, "app1", NULL);
    for (int day = 1; day <= 2; day++) {
        char when[32];
        snprintf(when, sizeof when, "2026-03-0%dT01:30:01Z", day);
        g_now = ms_of(when);
        ck_assert_msg(tsr_reload_scheduler_tick(fx.r, &lead, &n, &err) == TSR_OK, "tick: %s",
                      err.msg);
        ck_assert_uint_eq(n, 1);
        char *rid = run_task_reload(&fx, tid, job_fail);
        ck_assert_int_eq(tsr_reload_on_finished(fx.r, "ta", rid, &err), TSR_OK);
        /* Applying the same result twice counts it once. */
        ck_assert_int_eq(tsr_reload_on_finished(fx.r, "ta", rid, &err), TSR_OK);
        json_t *task = get_doc(&fx, TSR_RL__C_TASKS, tid);
        ck_assert_int_eq(json_integer_value(json_object_get(task, "consecutiveFailures")), day);
        ck_assert_str_eq(str_of(task, "state"), day == 1 ? "Enabled" : "Disabled");
        json_decref(task);
        free(rid);
    }
    json_t *task = get_doc(&fx, TSR_RL__C_TASKS, tid);
    ck_assert_str_eq(str_of(task, "disabledCode"), "CONSECUTIVE-FAILURES");
    ck_assert_ptr_null(json_object_get(task, "nextFireMs"));
    json_decref(task);
    ck_assert_uint_eq(outbox_count(&fx, "com.tessera.v1.reload.task.suspended", NULL), 1);
    g_now = ms_of("2026-03-03T01:30:01Z");
    ck_assert_msg(tsr_reload_scheduler_tick(fx.r, &lead, &n, &err) == TSR_OK, "tick: %s", err.msg);
    ck_assert_uint_eq(n, 0);
    free(tid);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_chained_trigger_fires_once_on_match) {
    fx_t fx;
    bool lead = false;
    unsigned n = 0;
    tsr_error_t err;
    char body[256];
    fx_init(&fx);
    char *ta = make_task(&fx, "app1", NULL);
    snprintf(body, sizeof body,
             "{\"appId\":\"app2\",\"trigger\":{\"taskId\":\"%s\",\"on\":\"SUCCEEDED\"}}", ta);
    json_t *j = call(&fx, "ta", "POST", "/api/v1/reload-tasks", body, 201);
    char *tb = reload_id_of(j);
    ck_assert_ptr_null(json_object_get(j, "nextExecutionTime"));
    json_decref(j);
    snprintf(body, sizeof body,
             "{\"appId\":\"app3\",\"trigger\":{\"taskId\":\"%s\",\"on\":\"FAILED\"}}", ta);
    j = call(&fx, "ta", "POST", "/api/v1/reload-tasks", body, 201);
    char *tc = reload_id_of(j);
    json_decref(j);
    g_now = ms_of("2026-03-01T01:30:01Z");
    ck_assert_int_eq(tsr_reload_scheduler_tick(fx.r, &lead, &n, &err), TSR_OK);
    ck_assert_uint_eq(n, 1);
    char *rid = run_task_reload(&fx, ta, job_ok);
    ck_assert_int_eq(tsr_reload_on_finished(fx.r, "ta", rid, &err), TSR_OK);
    ck_assert_int_eq(tsr_reload_on_finished(fx.r, "ta", rid, &err), TSR_OK);
    ck_assert_uint_eq(count_reloads(&fx, tb), 1);
    ck_assert_uint_eq(count_reloads(&fx, tc), 0);
    free(rid);
    free(ta);
    free(tb);
    free(tc);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_app_deleted_drops_its_tasks_only) {
    fx_t fx;
    tsr_error_t err;
    char path[160];
    fx_init(&fx);
    char *t1 = make_task(&fx, "app1", NULL);
    char *t2 = make_task(&fx, "app1", NULL);
    char *t3 = make_task(&fx, "app2", NULL);
    ck_assert_int_eq(tsr_reload_on_app_deleted(fx.r, "ta", "app1", &err), TSR_OK);
    ck_assert_int_eq(tsr_reload_on_app_deleted(fx.r, "ta", "app1", &err), TSR_OK);
    ck_assert_int_eq(tsr_reload_on_app_deleted(fx.r, "tb", "app2", &err), TSR_OK);
    snprintf(path, sizeof path, "/api/v1/reload-tasks/%s", t1);
    json_decref(call(&fx, "ta", "GET", path, NULL, 404));
    snprintf(path, sizeof path, "/api/v1/reload-tasks/%s", t2);
    json_decref(call(&fx, "ta", "GET", path, NULL, 404));
    snprintf(path, sizeof path, "/api/v1/reload-tasks/%s", t3);
    json_decref(call(&fx, "ta", "GET", path, NULL, 200));
    ck_assert_uint_eq(outbox_count(&fx, "com.tessera.v1.reload.task.deleted", NULL), 2);
    free(t1);
    free(t2);
    free(t3);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_scheduler_requeues_reload_whose_worker_vanished) {
    fx_t fx;
    bool lead = false;
    unsigned n = 0;
    tsr_error_t err;
    tsr_store_lease_t lease;
    fx_init(&fx);
    tsr_reload_t *r = NULL;
    tsr_reload_opts_t o = {
        .store = fx.store, .owner = "sweeper", .stuck_grace_ms = 1000, .now_ms = fake_now};
    ck_assert_int_eq(tsr_reload_create(&o, &r, &err), TSR_OK);
    char *id = queue(&fx, "app1");
    /* A worker took the run and vanished without its message coming back. */
    char name[160];
    snprintf(name, sizeof name, "reload-run/ta/%s", "app1");
    ck_assert_int_eq(tsr_store_lease_acquire(fx.store, name, "ghost", 1, &lease, &err), TSR_OK);
    json_t *p = json_pack("{ss sI}", "status", "RELOADING", "runToken", (json_int_t)lease.token);
    ck_assert_int_eq(
        tsr_store_doc_patch(fx.store, "ta", TSR_RL__C_RELOADS, id, 0, p, NULL, 0, NULL, &err),
        TSR_OK);
    json_decref(p);
    ck_assert_int_eq(tsr_reload_scheduler_tick(r, &lead, &n, &err), TSR_OK);
    ck_assert(lead);
    ck_assert_uint_eq(outbox_count(&fx, "com.tessera.v1.reload.requested", id), 1); /* lease */
    sleep_ms(1100);
    ck_assert_int_eq(tsr_reload_scheduler_tick(r, &lead, &n, &err), TSR_OK);
    ck_assert_uint_eq(outbox_count(&fx, "com.tessera.v1.reload.requested", id), 2);
    ck_assert_int_eq(tsr_reload_scheduler_tick(r, &lead, &n, &err), TSR_OK);
    ck_assert_uint_eq(outbox_count(&fx, "com.tessera.v1.reload.requested", id), 2); /* once */
    /* The redelivered request is run by a worker with the next token. */
    tsr_reload_worker_opts_t wo = wopts(&fx);
    tsr_reload_run_outcome_t out;
    ck_assert_int_eq(tsr_reload_worker_run(&wo, "ta", id, job_ok, NULL, &out, &err), TSR_OK);
    ck_assert_int_eq(out, TSR_RELOAD_RUN_FINISHED);
    json_t *d = get_doc(&fx, TSR_RL__C_RELOADS, id);
    ck_assert_str_eq(str_of(d, "status"), "SUCCEEDED");
    json_decref(d);
    tsr_reload_destroy(r);
    free(id);
    fx_cleanup(&fx);
}
END_TEST

/* ---- worker ---------------------------------------------------------------------------------- */

static char *queue(fx_t *fx, const char *app) {
    char body[128];
    snprintf(body, sizeof body, "{\"appId\":\"%s\"}", app);
    json_t *j = call(fx, "ta", "POST", "/api/v1/reloads", body, 201);
    char *id = reload_id_of(j);
    json_decref(j);
    return id;
}

START_TEST(test_worker_success_log_and_app_freed) {
    fx_t fx;
    tsr_error_t err;
    tsr_reload_run_outcome_t out;
    char path[160];
    fx_init(&fx);
    char *id = queue(&fx, "app1");
    tsr_reload_worker_opts_t o = wopts(&fx);
    ck_assert_int_eq(tsr_reload_worker_run(&o, "ta", id, job_ok, NULL, &out, &err), TSR_OK);
    ck_assert_int_eq(out, TSR_RELOAD_RUN_FINISHED);
    json_t *d = get_doc(&fx, TSR_RL__C_RELOADS, id);
    ck_assert_str_eq(str_of(d, "status"), "SUCCEEDED");
    ck_assert_int_eq(json_integer_value(json_object_get(d, "attempts")), 1);
    ck_assert_ptr_nonnull(json_object_get(d, "startTime"));
    ck_assert_ptr_nonnull(json_object_get(d, "endTime"));
    json_decref(d);
    snprintf(path, sizeof path, "/api/v1/apps/app1/reloads/logs/%s", id);
    tsr_httpd_response_t resp;
    const char *hdr[] = {"X-Tsr-Tenant-Id", "ta", "X-Tsr-User-Id", "u1", NULL};
    tsr_httpd_inject(fx.h, "GET", path, hdr, NULL, 0, &resp);
    ck_assert_uint_eq(resp.status, 200);
    ck_assert_str_eq(resp.body, "loaded app1\n");
    tsr_httpd_response_cleanup(&resp);
    json_decref(call(&fx, "ta", "GET", "/api/v1/apps/app2/reloads/logs/nope", NULL, 404));
    snprintf(path, sizeof path, "/api/v1/apps/app2/reloads/logs/%s", id);
    json_decref(call(&fx, "ta", "GET", path, NULL, 404)); /* wrong app */
    json_t *l = call(&fx, "ta", "GET", "/api/v1/apps/app1/reloads/logs", NULL, 200);
    ck_assert_uint_eq(json_array_size(json_object_get(l, "data")), 1);
    ck_assert(
        json_is_true(json_object_get(json_array_get(json_object_get(l, "data"), 0), "success")));
    json_decref(l);
    ck_assert_uint_eq(outbox_count(&fx, "com.tessera.v1.reload.started", id), 1);
    ck_assert_uint_eq(outbox_count(&fx, "com.tessera.v1.reload.finished", id), 1);
    /* A duplicate delivery does nothing. */
    ck_assert_int_eq(tsr_reload_worker_run(&o, "ta", id, job_fail, NULL, &out, &err), TSR_OK);
    ck_assert_int_eq(out, TSR_RELOAD_RUN_ALREADY_DONE);
    ck_assert_uint_eq(outbox_count(&fx, "com.tessera.v1.reload.finished", id), 1);
    /* The app is free again, and its next run gets a higher fencing token (one lease per app,
     * so tokens order every run of the app's reloads). */
    json_t *d1 = get_doc(&fx, TSR_RL__C_RELOADS, id);
    char *id2 = queue(&fx, "app1");
    ck_assert_int_eq(tsr_reload_worker_run(&o, "ta", id2, job_ok, NULL, &out, &err), TSR_OK);
    json_t *d2 = get_doc(&fx, TSR_RL__C_RELOADS, id2);
    ck_assert_int_gt(json_integer_value(json_object_get(d2, "runToken")),
                     json_integer_value(json_object_get(d1, "runToken")));
    json_decref(d1);
    json_decref(d2);
    free(id2);
    free(id);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_worker_job_failure_failed_with_message) {
    fx_t fx;
    tsr_error_t err;
    tsr_reload_run_outcome_t out;
    fx_init(&fx);
    char *id = queue(&fx, "app1");
    tsr_reload_worker_opts_t o = wopts(&fx);
    ck_assert_int_eq(tsr_reload_worker_run(&o, "ta", id, job_fail, NULL, &out, &err), TSR_OK);
    json_t *d = get_doc(&fx, TSR_RL__C_RELOADS, id);
    ck_assert_str_eq(str_of(d, "status"), "FAILED");
    ck_assert_str_eq(str_of(d, "errorMessage"), "script error on line 3");
    json_decref(d);
    free(id);
    fx_cleanup(&fx);
}
END_TEST

static tsr_err_t job_until_stop(void *ud, tsr_reload_run_t *run, const char *tenant,
                                const char *app, bool partial, tsr_error_t *err) {
    (void)tenant;
    (void)app;
    (void)partial;
    (void)err;
    if (ud != NULL) {
        atomic_store((atomic_int *)ud, 1);
    }
    while (!tsr_reload_run_should_stop(run)) {
        sleep_ms(10);
    }
    return TSR_OK;
}

typedef struct {
    fx_t *fx;
    const char *id;
    tsr_reload_worker_opts_t o;
    tsr_reload_job_fn job;
    void *job_ud;
    tsr_reload_run_outcome_t out;
    tsr_err_t rc;
} bg_t;

static void *bg_main(void *arg) {
    bg_t *b = arg;
    tsr_error_t err;
    b->rc = tsr_reload_worker_run(&b->o, "ta", b->id, b->job, b->job_ud, &b->out, &err);
    return NULL;
}

START_TEST(test_worker_cancel_while_running_canceled) {
    fx_t fx;
    pthread_t t;
    atomic_int started = 0;
    char path[160];
    fx_init(&fx);
    char *id = queue(&fx, "app1");
    bg_t b = {
        .fx = &fx, .id = id, .o = wopts(&fx), .job = job_until_stop, .job_ud = (void *)&started};
    b.o.heartbeat_ms = 50;
    ck_assert_int_eq(pthread_create(&t, NULL, bg_main, &b), 0);
    while (!atomic_load(&started)) {
        sleep_ms(5);
    }
    snprintf(path, sizeof path, "/api/v1/reloads/%s/actions/cancel", id);
    json_t *j = call(&fx, "ta", "POST", path, NULL, 202);
    ck_assert_str_eq(str_of(j, "status"), "CANCELING");
    json_decref(j);
    pthread_join(t, NULL);
    ck_assert_int_eq(b.rc, TSR_OK);
    ck_assert_int_eq(b.out, TSR_RELOAD_RUN_FINISHED);
    json_t *d = get_doc(&fx, TSR_RL__C_RELOADS, id);
    ck_assert_str_eq(str_of(d, "status"), "CANCELED");
    json_decref(d);
    free(id);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_worker_max_run_time_exceeded_limit) {
    fx_t fx;
    tsr_error_t err;
    tsr_reload_run_outcome_t out;
    fx_init(&fx);
    char *id = queue(&fx, "app1");
    tsr_reload_worker_opts_t o = wopts(&fx);
    o.max_run_ms = 150;
    o.heartbeat_ms = 50;
    ck_assert_int_eq(tsr_reload_worker_run(&o, "ta", id, job_until_stop, NULL, &out, &err), TSR_OK);
    json_t *d = get_doc(&fx, TSR_RL__C_RELOADS, id);
    ck_assert_str_eq(str_of(d, "status"), "EXCEEDED_LIMIT");
    json_decref(d);
    free(id);
    fx_cleanup(&fx);
}
END_TEST

/* A job that blocks until released, without watching should_stop (a paused process). */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_release, g_in_job;

static tsr_err_t job_blocked(void *ud, tsr_reload_run_t *run, const char *tenant, const char *app,
                             bool partial, tsr_error_t *err) {
    (void)ud;
    (void)run;
    (void)tenant;
    (void)app;
    (void)partial;
    (void)err;
    pthread_mutex_lock(&g_mu);
    g_in_job = 1;
    pthread_cond_broadcast(&g_cv);
    while (!g_release) {
        pthread_cond_wait(&g_cv, &g_mu);
    }
    pthread_mutex_unlock(&g_mu);
    return TSR_OK;
}

START_TEST(test_worker_stale_token_late_result_refused) {
    fx_t fx;
    pthread_t t;
    tsr_error_t err;
    tsr_reload_run_outcome_t out;
    fx_init(&fx);
    char *id = queue(&fx, "app1");
    g_release = 0;
    g_in_job = 0;
    /* A never heartbeats (period far above the TTL): its lease lapses while the job runs. */
    bg_t a = {.fx = &fx, .id = id, .o = wopts(&fx), .job = job_blocked};
    a.o.lease_ttl_ms = 300;
    a.o.heartbeat_ms = 60000;
    ck_assert_int_eq(pthread_create(&t, NULL, bg_main, &a), 0);
    pthread_mutex_lock(&g_mu);
    while (!g_in_job) {
        pthread_cond_wait(&g_cv, &g_mu);
    }
    pthread_mutex_unlock(&g_mu);
    json_t *d = get_doc(&fx, TSR_RL__C_RELOADS, id);
    uint64_t token_a = (uint64_t)json_integer_value(json_object_get(d, "runToken"));
    json_decref(d);
    /* B waits out A's lease, takes the next token and finishes. */
    tsr_reload_worker_opts_t o = wopts(&fx);
    o.lease_wait_ms = 3000;
    ck_assert_int_eq(tsr_reload_worker_run(&o, "ta", id, job_ok, NULL, &out, &err), TSR_OK);
    ck_assert_int_eq(out, TSR_RELOAD_RUN_FINISHED);
    d = get_doc(&fx, TSR_RL__C_RELOADS, id);
    ck_assert_uint_gt((uint64_t)json_integer_value(json_object_get(d, "runToken")), token_a);
    ck_assert_str_eq(str_of(d, "status"), "SUCCEEDED");
    json_decref(d);
    /* A wakes up late: its result is refused. */
    pthread_mutex_lock(&g_mu);
    g_release = 1;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    pthread_join(t, NULL);
    ck_assert_int_eq(a.rc, TSR_OK);
    ck_assert_int_eq(a.out, TSR_RELOAD_RUN_REFUSED);
    d = get_doc(&fx, TSR_RL__C_RELOADS, id);
    ck_assert_str_eq(str_of(d, "status"), "SUCCEEDED");
    ck_assert_str_eq(str_of(d, "log"), "loaded app1\n");
    json_decref(d);
    ck_assert_uint_eq(outbox_count(&fx, "com.tessera.v1.reload.finished", id), 1);
    free(id);
    fx_cleanup(&fx);
}
END_TEST

static tsr_err_t job_forever(void *ud, tsr_reload_run_t *run, const char *tenant, const char *app,
                             bool partial, tsr_error_t *err) {
    (void)run;
    (void)tenant;
    (void)app;
    (void)partial;
    (void)err;
    FILE *f = fopen((const char *)ud, "w");
    if (f != NULL) {
        fclose(f);
    }
    for (;;) {
        sleep_ms(1000);
    }
    return TSR_OK;
}

START_TEST(test_worker_sigkill_mid_reload_retried_once_succeeded) {
    fx_t fx;
    tsr_error_t err;
    tsr_reload_run_outcome_t out;
    char marker[128];
    fx_init(&fx);
    char *id = queue(&fx, "app1");
    snprintf(marker, sizeof marker, "%s/in-job", fx.dir);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* The child is a worker process of its own: its own store handle. */
        tsr_store_t *st = NULL;
        fx_open_store(&fx, &st);
        tsr_reload_worker_opts_t o = {
            .store = st, .owner = "child", .lease_ttl_ms = 500, .heartbeat_ms = 100};
        (void)tsr_reload_worker_run(&o, "ta", id, job_forever, marker, &out, &err);
        _exit(3);
    }
    struct stat sb;
    for (int i = 0; i < 1000 && stat(marker, &sb) != 0; i++) {
        sleep_ms(10);
    }
    ck_assert_int_eq(stat(marker, &sb), 0);
    sleep_ms(250); /* a couple of heartbeats */
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status));
    json_t *d = get_doc(&fx, TSR_RL__C_RELOADS, id);
    ck_assert_str_eq(str_of(d, "status"), "RELOADING");
    uint64_t dead_token = (uint64_t)json_integer_value(json_object_get(d, "runToken"));
    json_decref(d);
    /* The redelivered request reaches another worker: it waits out the dead lease. */
    tsr_reload_worker_opts_t o = wopts(&fx);
    o.lease_wait_ms = 5000;
    ck_assert_int_eq(tsr_reload_worker_run(&o, "ta", id, job_ok, NULL, &out, &err), TSR_OK);
    ck_assert_int_eq(out, TSR_RELOAD_RUN_FINISHED);
    d = get_doc(&fx, TSR_RL__C_RELOADS, id);
    ck_assert_str_eq(str_of(d, "status"), "SUCCEEDED");
    ck_assert_int_eq(json_integer_value(json_object_get(d, "attempts")), 2);
    ck_assert_uint_gt((uint64_t)json_integer_value(json_object_get(d, "runToken")), dead_token);
    json_decref(d);
    ck_assert_uint_eq(outbox_count(&fx, "com.tessera.v1.reload.finished", id), 1);
    free(id);
    fx_cleanup(&fx);
}
END_TEST

/* ---- contract: routes and api/openapi/reload.yaml -------------------------------------------- */

START_TEST(test_routes_match_openapi) {
    tsr_test_routes_match_openapi(TSR_SOURCE_DIR "/api/openapi/reload.yaml", tsr_reload_route_at);
}
END_TEST

/* ---- suite ----------------------------------------------------------------------------------- */

/* ---- the live reload log -------------------------------------------------------------------- */

/* GET the log as text (want: the status); *size_out (may be NULL) the X-Tsr-Log-Size header.
 * Returned-owned body. */
static char *get_log(fx_t *fx, const char *tenant, const char *app, const char *id, long offset,
                     unsigned want, long *size_out, char *status_out, size_t status_n) {
    tsr_httpd_response_t resp;
    char path[256];
    if (offset >= 0) {
        snprintf(path, sizeof path, "/api/v1/apps/%s/reloads/logs/%s?offset=%ld", app, id, offset);
    } else {
        snprintf(path, sizeof path, "/api/v1/apps/%s/reloads/logs/%s", app, id);
    }
    const char *hdr[] = {"Host",        "reload.test",   "X-Tsr-Tenant-Id",
                         tenant,        "X-Tsr-User-Id", "u1",
                         "X-Tsr-Roles", "User",          NULL};
    tsr_httpd_inject(fx->h, "GET", path, hdr, NULL, 0, &resp);
    ck_assert_msg(resp.status == want, "GET %s: status %u want %u: %s", path, resp.status, want,
                  resp.body);
    if (size_out != NULL) {
        const char *v = json_string_value(json_object_get(resp.headers, "x-tsr-log-size"));
        *size_out = v != NULL ? strtol(v, NULL, 10) : -1;
    }
    if (status_out != NULL) {
        const char *v = json_string_value(json_object_get(resp.headers, "x-tsr-reload-status"));
        snprintf(status_out, status_n, "%s", v != NULL ? v : "");
    }
    char *body = tsr_xstrndup(resp.body != NULL ? resp.body : "", resp.body_len);
    tsr_httpd_response_cleanup(&resp);
    return body;
}

static atomic_int g_live_step; /* 1: first lines logged; 2: the test saw them, go on */

static tsr_err_t job_live(void *ud, tsr_reload_run_t *run, const char *tenant, const char *app,
                          bool partial, tsr_error_t *err) {
    (void)ud;
    (void)tenant;
    (void)partial;
    (void)err;
    tsr_reload_run_log(run, "line 1: LOAD * FROM [lib://DataFiles/%s.csv]", app);
    tsr_reload_run_log_text(run, "big << big.csv: 1000 rows, 2 fields, 1.0 ms\n", 44);
    atomic_store(&g_live_step, 1);
    for (int i = 0; i < 1000 && atomic_load(&g_live_step) != 2; i++) {
        sleep_ms(10);
    }
    tsr_reload_run_log(run, "--- 1 tables, 2 fields");
    return TSR_OK;
}

START_TEST(test_worker_log_live_before_finish_incremental_other_tenant_404) {
    fx_t fx;
    pthread_t t;
    char path[160], status[32];
    long size = 0;
    fx_init(&fx);
    atomic_store(&g_live_step, 0);
    char *id = queue(&fx, "app1");
    bg_t b = {.fx = &fx, .id = id, .o = wopts(&fx), .job = job_live};
    b.o.log_flush_ms = 50;
    b.o.heartbeat_ms = 100;
    ck_assert_int_eq(pthread_create(&t, NULL, bg_main, &b), 0);
    while (atomic_load(&g_live_step) == 0) {
        sleep_ms(5);
    }
    /* The log is readable while the reload runs: poll until the flush stored it. */
    char *body = NULL;
    for (int i = 0; i < 200; i++) {
        free(body);
        body = get_log(&fx, "ta", "app1", id, -1, 200, &size, status, sizeof status);
        if (strstr(body, "1000 rows") != NULL) {
            break;
        }
        sleep_ms(10);
    }
    ck_assert_msg(strstr(body, "line 1: LOAD * FROM [lib://DataFiles/app1.csv]\n") == body,
                  "live log: %s", body);
    ck_assert_ptr_nonnull(strstr(body, "big << big.csv: 1000 rows"));
    ck_assert_str_eq(status, "RELOADING");
    ck_assert_int_eq(size, (long)strlen(body));
    free(body);
    /* GET /reloads/{id} carries the live log too. */
    snprintf(path, sizeof path, "/api/v1/reloads/%s", id);
    json_t *j = call(&fx, "ta", "GET", path, NULL, 200);
    ck_assert_str_eq(str_of(j, "status"), "RELOADING");
    ck_assert_ptr_nonnull(strstr(str_of(j, "log"), "1000 rows"));
    json_decref(j);
    /* Incremental: nothing new past the end; another tenant and another app: 404. */
    body = get_log(&fx, "ta", "app1", id, size, 200, NULL, NULL, 0);
    ck_assert_str_eq(body, "");
    free(body);
    free(get_log(&fx, "tb", "app1", id, -1, 404, NULL, NULL, 0));
    free(get_log(&fx, "tb", "app1", id, 0, 404, NULL, NULL, 0));
    free(get_log(&fx, "ta", "app2", id, 0, 404, NULL, NULL, 0));
    free(get_log(&fx, "ta", "app1", id, -1, 200, NULL, NULL, 0));
    snprintf(path, sizeof path, "/api/v1/reloads/%s", id);
    json_decref(call(&fx, "tb", "GET", path, NULL, 404));
    atomic_store(&g_live_step, 2);
    pthread_join(t, NULL);
    ck_assert_int_eq(b.rc, TSR_OK);
    ck_assert_int_eq(b.out, TSR_RELOAD_RUN_FINISHED);
    /* After the end: the rest from the offset read before, and the whole log at offset 0. */
    long total = 0;
    body = get_log(&fx, "ta", "app1", id, size, 200, &total, status, sizeof status);
    ck_assert_str_eq(body, "--- 1 tables, 2 fields\n");
    ck_assert_str_eq(status, "SUCCEEDED");
    ck_assert_int_eq(total, size + (long)strlen(body));
    free(body);
    body = get_log(&fx, "ta", "app1", id, 0, 200, NULL, NULL, 0);
    ck_assert_int_eq((long)strlen(body), total);
    ck_assert_ptr_nonnull(strstr(body, "line 1: LOAD"));
    free(body);
    /* A bad offset: 400 in the error shape, nothing else. */
    snprintf(path, sizeof path, "/api/v1/apps/app1/reloads/logs/%s?offset=-1", id);
    json_t *e = call(&fx, "ta", "GET", path, NULL, 400);
    ck_assert_ptr_nonnull(json_object_get(e, "errors"));
    json_decref(e);
    snprintf(path, sizeof path, "/api/v1/apps/app1/reloads/logs/%s?offset=abc", id);
    json_decref(call(&fx, "ta", "GET", path, NULL, 400));
    free(id);
    fx_cleanup(&fx);
}
END_TEST

static tsr_err_t job_chatty(void *ud, tsr_reload_run_t *run, const char *tenant, const char *app,
                            bool partial, tsr_error_t *err) {
    (void)ud;
    (void)tenant;
    (void)app;
    (void)partial;
    (void)err;
    for (int i = 0; i < 200; i++) {
        tsr_reload_run_log(run, "table T%03d: 12345 rows", i); /* 23 bytes a line */
    }
    /* Multi-byte text across the cap is cut at a character boundary (the log stays UTF-8). */
    tsr_reload_run_log(run, "%s", "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
    char big[4096];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    tsr_reload_run_log(run, "%s", big); /* longer than the cap on its own */
    return TSR_OK;
}

START_TEST(test_worker_log_capped_with_truncation_marker) {
    fx_t fx;
    tsr_error_t err;
    tsr_reload_run_outcome_t out;
    fx_init(&fx);
    char *id = queue(&fx, "app1");
    tsr_reload_worker_opts_t o = wopts(&fx);
    o.log_max_bytes = 1001; /* 43 whole lines and 12 bytes */
    ck_assert_int_eq(tsr_reload_worker_run(&o, "ta", id, job_chatty, NULL, &out, &err), TSR_OK);
    ck_assert_int_eq(out, TSR_RELOAD_RUN_FINISHED);
    json_t *d = get_doc(&fx, TSR_RL__C_RELOADS, id);
    ck_assert_str_eq(str_of(d, "status"), "SUCCEEDED");
    const char *log = str_of(d, "log");
    char marker[128];
    snprintf(marker, sizeof marker, "%s (1001 bytes)\n", TSR_RELOAD_LOG_TRUNCATED);
    size_t n = strlen(log);
    ck_assert_msg(n <= 1001 + 1 + strlen(marker), "log of %zu bytes", n);
    ck_assert_msg(n > 1000, "log of %zu bytes", n);
    ck_assert(strncmp(log, "table T000: 12345 rows\ntable T001", 33) == 0);
    ck_assert_str_eq(log + n - strlen(marker), marker);
    ck_assert_ptr_nonnull(strstr(log, "table T042: 12345 rows\ntable T043: \n"));
    ck_assert_ptr_null(strstr(log, "table T044"));
    ck_assert_ptr_null(strstr(log, "xxxx"));
    ck_assert_ptr_eq(strstr(log, "truncated"), strrchr(log, '\xa6') + 2); /* one marker */
    /* The log endpoint serves the same capped text. */
    char *body = get_log(&fx, "ta", "app1", id, 0, 200, NULL, NULL, 0);
    ck_assert_str_eq(body, log);
    free(body);
    json_decref(d);
    /* A UTF-8 character is never split at the cap. */
    char *id2 = queue(&fx, "app2");
    o.log_max_bytes = 200 * 23 + 5; /* the cap falls inside the third é */
    ck_assert_int_eq(tsr_reload_worker_run(&o, "ta", id2, job_chatty, NULL, &out, &err), TSR_OK);
    d = get_doc(&fx, TSR_RL__C_RELOADS, id2);
    log = str_of(d, "log");
    ck_assert_ptr_nonnull(log); /* stored: still valid UTF-8 */
    ck_assert_ptr_nonnull(strstr(log, "table T199: 12345 rows\n\xc3\xa9\xc3\xa9\n"));
    ck_assert_ptr_nonnull(strstr(log, "truncated"));
    json_decref(d);
    free(id2);
    free(id);
    fx_cleanup(&fx);
}
END_TEST

static Suite *reload_suite(void) {
    Suite *s = suite_create("reload");
    TCase *tc = tcase_create("schedule");
    tcase_add_loop_test(tc, test_sched_next_table_expected_fires, 0,
                        (int)(sizeof CASES / sizeof CASES[0]));
    tcase_add_test(tc, test_tz_local_to_utc_gap_and_overlap_rfc5545);
    tcase_add_test(tc, test_sched_create_invalid_einval);
    tcase_add_test(tc, test_sched_no_start_no_recurrence_never);
    tcase_add_test(tc, test_decide_misfire_policies);
    tcase_add_test(tc, test_trigger_matches_table);
    tcase_add_test(tc, test_failures_after_suspends_at_max);
    suite_add_tcase(s, tc);

    tc = tcase_create("http");
    tcase_add_test(tc, test_post_reload_queued_201_and_get);
    tcase_add_test(tc, test_post_reload_validation_and_access);
    tcase_add_test(tc, test_post_reload_same_app_twice_409);
    tcase_add_test(tc, test_access_cached_until_invalidated);
    tcase_add_test(tc, test_access_events_drop_app_or_tenant_never_another_tenant);
    tcase_add_test(tc, test_access_spaces_maps_answers);
    tcase_add_test(tc, test_post_reload_tenant_limit_429);
    tcase_add_test(tc, test_cancel_queued_204_then_409);
    tcase_add_test(tc, test_list_reloads_cursor_paging_absolute_links);
    tcase_add_test(tc, test_other_tenant_404_on_every_endpoint);
    tcase_add_test(tc, test_unauthenticated_401);
    tcase_add_test(tc, test_task_crud_and_validation);
    tcase_add_test(tc, test_routes_match_openapi);
    suite_add_tcase(s, tc);

    tc = tcase_create("scheduler");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_scheduler_two_replicas_one_leader_one_fire);
    tcase_add_test(tc, test_scheduler_leader_lease_expiry_takeover_no_double);
    tcase_add_test(tc, test_fire_same_key_twice_never_doubled);
    tcase_add_test(tc, test_scheduler_misfire_run_once_vs_skip);
    tcase_add_test(tc, test_auto_suspend_after_consecutive_failures);
    tcase_add_test(tc, test_chained_trigger_fires_once_on_match);
    tcase_add_test(tc, test_app_deleted_drops_its_tasks_only);
    tcase_add_test(tc, test_scheduler_requeues_reload_whose_worker_vanished);
    suite_add_tcase(s, tc);

    tc = tcase_create("worker");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_worker_success_log_and_app_freed);
    tcase_add_test(tc, test_worker_job_failure_failed_with_message);
    tcase_add_test(tc, test_worker_cancel_while_running_canceled);
    tcase_add_test(tc, test_worker_max_run_time_exceeded_limit);
    tcase_add_test(tc, test_worker_stale_token_late_result_refused);
    tcase_add_test(tc, test_worker_sigkill_mid_reload_retried_once_succeeded);
    tcase_add_test(tc, test_worker_log_live_before_finish_incremental_other_tenant_404);
    tcase_add_test(tc, test_worker_log_capped_with_truncation_marker);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(reload_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
