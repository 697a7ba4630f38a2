/*
 * audit_bench: pkg/audit figures, and the audit event producer of tests/integration.
 *   produce  N audit CloudEvents of one tenant to a topic through the idempotent producer; ids
 *            are <prefix>-<i>, so running it twice publishes duplicates on purpose
 *   ingest   N events of one tenant straight into a SQLite store (apply_once + chain append
 *            per event, as the consumer does): events/s
 *   list     Q list requests in-process (tsr_httpd_inject) against that store: p50/p99 ms
 * Output: one JSON line. Exit 0 ok, 1 failure, 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "log.h"

typedef struct {
    const char *cmd, *bootstrap, *tenant, *prefix, *topic, *db;
    int64_t count, start, queries;
} args_t;

static int usage(void) {
    fputs("usage: audit_bench produce --bootstrap B --tenant T [--count N] [--prefix P] "
          "[--start I] [--topic T]\n"
          "       audit_bench ingest --db FILE --tenant T [--count N]\n"
          "       audit_bench list --db FILE --tenant T [--queries Q]\n",
          stderr);
    return 2;
}

static int parse(int argc, char **argv, args_t *a) {
    memset(a, 0, sizeof *a);
    a->count = 1000;
    a->queries = 1000;
    a->prefix = "bench";
    a->topic = "tessera.audit";
    if (argc < 2) {
        return -1;
    }
    a->cmd = argv[1];
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        int64_t *num = NULL;
        if (strcmp(k, "--bootstrap") == 0) {
            a->bootstrap = v;
        } else if (strcmp(k, "--tenant") == 0) {
            a->tenant = v;
        } else if (strcmp(k, "--prefix") == 0) {
            a->prefix = v;
        } else if (strcmp(k, "--topic") == 0) {
            a->topic = v;
        } else if (strcmp(k, "--db") == 0) {
            a->db = v;
        } else if (strcmp(k, "--count") == 0) {
            num = &a->count;
        } else if (strcmp(k, "--start") == 0) {
            num = &a->start;
        } else if (strcmp(k, "--queries") == 0) {
            num = &a->queries;
        } else {
            return -1;
        }
        if (num != NULL && tsr_str_to_i64(tsr_str(v), 0, 100000000, num) != TSR_OK) {
            return -1;
        }
    }
    return (argc % 2 == 0) ? 0 : -1;
}

static const char *TYPES[] = {"com.tessera.v1.auth.login.succeeded",
                              "com.tessera.v1.auth.login.failed", "com.tessera.v1.access.denied",
                              "com.tessera.v1.auth.session.ended"};

static void make_event(const args_t *a, int64_t i, int64_t time_ms, tsr_event_t *ev) {
    tsr_error_t err;
    char id[160], when[25], user[32];
    if (tsr_event_init(ev, "/tessera/identity", TYPES[i % 4], a->tenant, NULL,
                       json_pack("{sI}", "i", (json_int_t)i), &err) != TSR_OK) {
        fprintf(stderr, "event: %s\n", err.msg);
        exit(1);
    }
    snprintf(id, sizeof id, "%.100s-%lld", a->prefix, (long long)i);
    free(ev->id);
    ev->id = tsr_xstrdup(id);
    tsr_time_format_rfc3339(time_ms, when);
    free(ev->time);
    ev->time = tsr_xstrdup(when);
    snprintf(user, sizeof user, "u%lld", (long long)(i % 5));
    ev->userid = tsr_xstrdup(user);
}

static int cmd_produce(const args_t *a) {
    tsr_error_t err;
    tsr_events_producer_t *p = NULL;
    tsr_events_producer_opts_t po = {.bootstrap = a->bootstrap, .client_id = "audit-bench"};
    if (a->bootstrap == NULL || a->tenant == NULL) {
        return usage();
    }
    if (tsr_events_producer_create(&po, &p, &err) != TSR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    size_t batch = 500, acked = 0;
    tsr_events_msg_t *msgs = tsr_xcalloc(batch, sizeof *msgs);
    char **payloads = tsr_xcalloc(batch, sizeof *payloads);
    int64_t now = tsr_wall_ms();
    tsr_err_t rc = TSR_OK;
    for (int64_t i = a->start; i < a->start + a->count && rc == TSR_OK;) {
        size_t n = 0;
        for (; n < batch && i < a->start + a->count; n++, i++) {
            tsr_event_t ev;
            size_t len = 0;
            make_event(a, i, now + i, &ev);
            if (tsr_event_format(&ev, &payloads[n], &len, &err) != TSR_OK) {
                fprintf(stderr, "format: %s\n", err.msg);
                exit(1);
            }
            tsr_event_cleanup(&ev);
            msgs[n] = (tsr_events_msg_t){
                .topic = a->topic, .key = a->tenant, .payload = payloads[n], .payload_len = len};
        }
        rc = tsr_events_producer_send(p, msgs, n, &err);
        for (size_t k = 0; k < n; k++) {
            acked += msgs[k].result == TSR_OK;
            free(payloads[k]);
        }
    }
    printf("{\"cmd\":\"produce\",\"sent\":%lld,\"acknowledged\":%zu}\n", (long long)a->count,
           acked);
    if (rc != TSR_OK) {
        fprintf(stderr, "produce: %s\n", err.msg);
    }
    free(payloads);
    free(msgs);
    tsr_events_producer_destroy(p);
    return rc == TSR_OK ? 0 : 1;
}

static tsr_err_t open_audit(const args_t *a, tsr_store_t **s, tsr_audit_t **au, tsr_error_t *err) {
    char uri[4200], key[4200];
    tsr_store_opts_t so = {0};
    so.collections = tsr_audit_collections(&so.n_collections);
    snprintf(uri, sizeof uri, "sqlite:%s?synchronous=normal", a->db);
    snprintf(key, sizeof key, "%s.key.pem", a->db);
    tsr_err_t rc = tsr_store_create(uri, &so, s, err);
    if (rc == TSR_OK) {
        tsr_audit_opts_t ao = {.store = *s, .key_file = key};
        rc = tsr_audit_create(&ao, au, err);
    }
    return rc;
}

static int cmd_ingest(const args_t *a) {
    tsr_error_t err;
    tsr_store_t *s = NULL;
    tsr_audit_t *au = NULL;
    if (a->db == NULL || a->tenant == NULL) {
        return usage();
    }
    if (open_audit(a, &s, &au, &err) != TSR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    /* one event per second of simulated time, ending now */
    int64_t t0 = tsr_wall_ms() - a->count * 1000;
    uint64_t start = tsr_mono_ns();
    for (int64_t i = a->start; i < a->start + a->count; i++) {
        tsr_event_t ev;
        make_event(a, i, t0 + (i - a->start) * 1000, &ev);
        tsr_err_t rc = tsr_audit_ingest(au, &ev, NULL, &err);
        tsr_event_cleanup(&ev);
        if (rc != TSR_OK) {
            fprintf(stderr, "ingest %lld: %s\n", (long long)i, err.msg);
            return 1;
        }
    }
    double secs = (double)(tsr_mono_ns() - start) / 1e9;
    printf("{\"cmd\":\"ingest\",\"events\":%lld,\"seconds\":%.2f,\"eventsPerSec\":%.0f}\n",
           (long long)a->count, secs, (double)a->count / secs);
    tsr_audit_destroy(au);
    tsr_store_destroy(s);
    return 0;
}

static int cmp_u64(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

static int cmd_list(const args_t *a) {
    tsr_error_t err;
    tsr_store_t *s = NULL;
    tsr_audit_t *au = NULL;
    tsr_httpd_t *h = NULL;
    if (a->db == NULL || a->tenant == NULL || a->queries <= 0) {
        return usage();
    }
    tsr_httpd_opts_t o = {.service = "audit", .bind = "127.0.0.1", .threads = 1, .max_body = 1024};
    if (open_audit(a, &s, &au, &err) != TSR_OK || tsr_httpd_create(&o, &h, &err) != TSR_OK ||
        tsr_audit_routes(h, au, &err) != TSR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const char *hdr[] = {"Host",  "bench.test",  "X-Tsr-Tenant-Id", a->tenant, "X-Tsr-User-Id",
                         "bench", "X-Tsr-Roles", "TenantAdmin",     NULL};
    /* the mix a SIEM makes: newest page, a type filter, a time window, the next page */
    char window[128], t1[25], t2[25];
    tsr_time_format_rfc3339(tsr_wall_ms() - 86400000LL, t1);
    tsr_time_format_rfc3339(tsr_wall_ms() - 86400000LL + 3600000LL, t2);
    snprintf(window, sizeof window, "/api/v1/audits?limit=100&eventTime=%s%%2F%s", t1, t2);
    const char *paths[] = {"/api/v1/audits?limit=100",
                           "/api/v1/audits?limit=100&eventType=com.tessera.v1.access.denied",
                           window, "/api/v1/audits?limit=100&userId=u3&sort=%2BeventTime"};
    uint64_t *lat = tsr_xcalloc((size_t)a->queries, sizeof *lat);
    char *next = NULL;
    for (int64_t q = 0; q < a->queries; q++) {
        const char *path = (q % 5 == 4 && next != NULL) ? next : paths[q % 4];
        tsr_httpd_response_t r;
        uint64_t t = tsr_mono_ns();
        tsr_httpd_inject(h, "GET", path, hdr, NULL, 0, &r);
        lat[q] = tsr_mono_ns() - t;
        if (r.status != 200) {
            fprintf(stderr, "%s: %u %s\n", path, r.status, r.body);
            return 1;
        }
        json_t *j = json_loads(r.body, 0, NULL);
        const char *href = json_string_value(
            json_object_get(json_object_get(json_object_get(j, "links"), "next"), "href"));
        if (href != NULL && q % 4 == 0) {
            free(next);
            next = tsr_xstrdup(href + strlen("http://bench.test"));
        }
        json_decref(j);
        tsr_httpd_response_cleanup(&r);
    }
    qsort(lat, (size_t)a->queries, sizeof *lat, cmp_u64);
    size_t n = (size_t)a->queries;
    printf("{\"cmd\":\"list\",\"queries\":%zu,\"p50Ms\":%.2f,\"p99Ms\":%.2f,\"maxMs\":%.2f}\n", n,
           (double)lat[n / 2] / 1e6, (double)lat[n * 99 / 100] / 1e6, (double)lat[n - 1] / 1e6);
    free(next);
    free(lat);
    tsr_httpd_destroy(h);
    tsr_audit_destroy(au);
    tsr_store_destroy(s);
    return 0;
}

int main(int argc, char **argv) {
    args_t a;
    tsr_log_init("audit-bench", TSR_LOG_WARN, stderr);
    if (parse(argc, argv, &a) != 0) {
        return usage();
    }
    if (strcmp(a.cmd, "produce") == 0) {
        return cmd_produce(&a);
    }
    if (strcmp(a.cmd, "ingest") == 0) {
        return cmd_ingest(&a);
    }
    if (strcmp(a.cmd, "list") == 0) {
        return cmd_list(&a);
    }
    return usage();
}
