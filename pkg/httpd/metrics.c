/*
 * Request metrics for /metrics: a counter per (route, method, status) and a latency
 * histogram per route, in Prometheus text format 0.0.4. Series are few (routes are fixed
 * at start; statuses are a handful), so a linear scan under one mutex is cheaper than a hash.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "httpd_int.h"

#define NBUCKETS 14
static const double k_bounds[NBUCKETS - 1] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                              0.1,    0.25,  0.5,    1.0,   2.5,  10.0};

typedef struct {
    char *route;
    char *method;
    unsigned status;
    uint64_t count;
} counter_t;

typedef struct {
    char *route;
    uint64_t buckets[NBUCKETS]; /* non-cumulative; the last is +Inf */
    uint64_t count;
    double sum_s;
} histo_t;

struct tsr_httpd__metrics {
    pthread_mutex_t mu;
    counter_t *counters;
    size_t ncounters, capc;
    histo_t *histos;
    size_t nhistos, caph;
};

tsr_httpd__metrics_t *tsr_httpd__metrics_create(void) {
    tsr_httpd__metrics_t *m = tsr_xcalloc(1, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    return m;
}

void tsr_httpd__metrics_destroy(tsr_httpd__metrics_t *m) {
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < m->ncounters; i++) {
        free(m->counters[i].route);
        free(m->counters[i].method);
    }
    for (size_t i = 0; i < m->nhistos; i++) {
        free(m->histos[i].route);
    }
    free(m->counters);
    free(m->histos);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void tsr_httpd__metrics_observe(tsr_httpd__metrics_t *m, const char *route, const char *method,
                                unsigned status, uint64_t duration_ns) {
    double s = (double)duration_ns / 1e9;
    pthread_mutex_lock(&m->mu);
    counter_t *c = NULL;
    for (size_t i = 0; i < m->ncounters; i++) {
        counter_t *x = &m->counters[i];
        if (x->status == status && strcmp(x->route, route) == 0 && strcmp(x->method, method) == 0) {
            c = x;
            break;
        }
    }
    if (c == NULL && m->ncounters < 4096) {
        if (m->ncounters == m->capc) {
            m->capc = m->capc ? m->capc * 2 : 32;
            m->counters = tsr_xrealloc(m->counters, m->capc * sizeof(counter_t));
        }
        c = &m->counters[m->ncounters++];
        c->route = tsr_xstrdup(route);
        /* Unknown methods from the wire are folded so they cannot grow the series set. */
        static const char *known[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
        const char *mm = "OTHER";
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
            if (strcmp(method, known[k]) == 0) {
                mm = known[k];
            }
        }
        c->method = tsr_xstrdup(mm);
        c->status = status;
        c->count = 0;
    }
    if (c != NULL) {
        c->count++;
    }
    histo_t *hg = NULL;
    for (size_t i = 0; i < m->nhistos; i++) {
        if (strcmp(m->histos[i].route, route) == 0) {
            hg = &m->histos[i];
            break;
        }
    }
    if (hg == NULL && m->nhistos < 1024) {
        if (m->nhistos == m->caph) {
            m->caph = m->caph ? m->caph * 2 : 32;
            m->histos = tsr_xrealloc(m->histos, m->caph * sizeof(histo_t));
        }
        hg = &m->histos[m->nhistos++];
        memset(hg, 0, sizeof *hg);
        hg->route = tsr_xstrdup(route);
    }
    if (hg != NULL) {
        size_t b = 0;
        while (b < NBUCKETS - 1 && s > k_bounds[b]) {
            b++;
        }
        hg->buckets[b]++;
        hg->count++;
        hg->sum_s += s;
    }
    pthread_mutex_unlock(&m->mu);
}

void tsr_httpd__metrics_format(tsr_httpd__metrics_t *m, const char *service, unsigned in_flight,
                               tsr_buf_t *out) {
    pthread_mutex_lock(&m->mu);
    tsr_buf_appendf(out,
                    "# HELP tsr_http_requests_total HTTP requests by route, method and status.\n"
                    "# TYPE tsr_http_requests_total counter\n");
    for (size_t i = 0; i < m->ncounters; i++) {
        counter_t *c = &m->counters[i];
        tsr_buf_appendf(out,
                        "tsr_http_requests_total{service=\"%s\",route=\"%s\",method=\"%s\","
                        "status=\"%u\"} %llu\n",
                        service, c->route, c->method, c->status, (unsigned long long)c->count);
    }
    tsr_buf_appendf(out, "# HELP tsr_http_request_duration_seconds Request latency by route.\n"
                         "# TYPE tsr_http_request_duration_seconds histogram\n");
    for (size_t i = 0; i < m->nhistos; i++) {
        histo_t *hg = &m->histos[i];
        uint64_t cum = 0;
        for (size_t b = 0; b < NBUCKETS; b++) {
            cum += hg->buckets[b];
            if (b < NBUCKETS - 1) {
                tsr_buf_appendf(out,
                                "tsr_http_request_duration_seconds_bucket{service=\"%s\","
                                "route=\"%s\",le=\"%g\"} %llu\n",
                                service, hg->route, k_bounds[b], (unsigned long long)cum);
            } else {
                tsr_buf_appendf(out,
                                "tsr_http_request_duration_seconds_bucket{service=\"%s\","
                                "route=\"%s\",le=\"+Inf\"} %llu\n",
                                service, hg->route, (unsigned long long)cum);
            }
        }
        tsr_buf_appendf(out,
                        "tsr_http_request_duration_seconds_sum{service=\"%s\",route=\"%s\"} %.6f\n"
                        "tsr_http_request_duration_seconds_count{service=\"%s\",route=\"%s\"} "
                        "%llu\n",
                        service, hg->route, hg->sum_s, service, hg->route,
                        (unsigned long long)hg->count);
    }
    pthread_mutex_unlock(&m->mu);
    tsr_buf_appendf(out,
                    "# HELP tsr_http_in_flight Requests being served.\n"
                    "# TYPE tsr_http_in_flight gauge\n"
                    "tsr_http_in_flight{service=\"%s\"} %u\n",
                    service, in_flight);
}
