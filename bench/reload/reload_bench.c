/*
 * reload_bench: the reload queue end to end — pkg/reload's request path, the store outbox,
 * the relay, Kafka (cmd/devkafka), the reloader consumer group and the worker state machine —
 * with a stand-in job (sleeps --job-ms) in place of the engine's load script.
 *   bench   reload_bench bench --devkafka PATH [--count N] [--workers W] [--job-ms J]
 *           queues N reloads (one app each), W workers in one consumer group; prints
 *           queue-to-start latency p50/p99/max and reloads per minute; exits 1 unless every
 *           reload ended SUCCEEDED exactly once.
 *   worker  reload_bench worker [--owner NAME] [--job-ms J]
 *           a stand-in reloader on the local stack's store and broker ($TSR_STATE_DIR), used
 *           by tests/integration/test_reload.sh until the engine's --role reloader exists;
 *           prints "start <appId> <token>" when a job begins. Runs until SIGTERM.
 *   tap     reload_bench tap --reload ID [--wait-ms W]
 *           reads tessera.reloads.results from the beginning (a fresh consumer group) for W ms
 *           and prints {"finished":N,"started":M} counting distinct event ids about reload ID:
 *           the integration test's check of "one reload.finished per reload".
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "events.h"
#include "log.h"
#include "reload.h"
#include "store_events.h"

static volatile sig_atomic_t g_stop;
static long g_job_ms = 0;
static bool g_verbose; /* worker mode: say when a job starts */

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static tsr_err_t job(void *ud, tsr_reload_run_t *run, const char *tenant, const char *app,
                     bool partial, tsr_error_t *err) {
    (void)ud;
    (void)tenant;
    (void)partial;
    (void)err;
    if (g_verbose) {
        printf("start %s %llu\n", app, (unsigned long long)tsr_reload_run_token(run));
        fflush(stdout);
    }
    for (long t = 0; t < g_job_ms && !tsr_reload_run_should_stop(run); t += 10) {
        sleep_ms(10);
    }
    tsr_reload_run_log(run, "stand-in job: %s reloaded", app);
    return TSR_OK;
}

static tsr_err_t open_store(const char *uri, tsr_store_t **out, tsr_error_t *err) {
    size_t n = 0;
    tsr_store_opts_t so = {.collections = tsr_reload_collections(&n)};
    so.n_collections = n;
    return uri != NULL ? tsr_store_create(uri, &so, out, err)
                       : tsr_store_create_default(&so, out, err);
}

static int run_worker(const char *owner) {
    tsr_error_t err;
    tsr_store_t *store = NULL;
    tsr_reload_consumer_t *c = NULL;
    char *bootstrap = NULL;
    int64_t ttl = 0, max_run = 0;
    if (tsr_config_get_int("TSR_RELOAD_LEASE_TTL_MS", 100, 3600000, &ttl, &err) != TSR_OK ||
        tsr_config_get_int("TSR_RELOAD_MAX_RUN_MS", 1000, 86400000, &max_run, &err) != TSR_OK ||
        open_store(NULL, &store, &err) != TSR_OK ||
        tsr_events_bootstrap_resolve(&bootstrap, &err) != TSR_OK) {
        fprintf(stderr, "reload_bench worker: %s\n", err.msg);
        tsr_store_destroy(store);
        return 1;
    }
    tsr_reload_worker_opts_t wo = {
        .store = store, .owner = owner, .lease_ttl_ms = ttl, .max_run_ms = max_run};
    if (tsr_reload_worker_start(&wo, bootstrap, job, NULL, &c, &err) != TSR_OK) {
        fprintf(stderr, "reload_bench worker: %s\n", err.msg);
        free(bootstrap);
        tsr_store_destroy(store);
        return 1;
    }
    free(bootstrap);
    printf("ready\n");
    fflush(stdout);
    while (!g_stop) {
        sleep_ms(100);
    }
    tsr_reload_consumer_stop(c);
    tsr_store_destroy(store);
    return 0;
}

typedef struct {
    const char *reload_id;
    json_t *finished; /* event id -> true */
    json_t *started;
} tap_t;

static tsr_err_t tap_apply(void *ctx, const char *group, const char *event_id,
                           tsr_events_effect_cb effect, void *opaque, bool *applied,
                           tsr_error_t *err) {
    (void)ctx;
    (void)group;
    (void)event_id;
    tsr_err_t rc = effect(opaque, NULL, err);
    *applied = rc == TSR_OK;
    return rc;
}

static tsr_err_t tap_handler(void *opaque, const tsr_event_t *ev, void *txn, tsr_error_t *err) {
    tap_t *t = opaque;
    (void)txn;
    (void)err;
    const char *rid = json_string_value(json_object_get(ev->data, "reloadId"));
    if (rid == NULL || strcmp(rid, t->reload_id) != 0) {
        return TSR_OK;
    }
    if (strcmp(ev->type, "com.tessera.v1.reload.finished") == 0) {
        json_object_set_new(t->finished, ev->id, json_true());
    } else if (strcmp(ev->type, "com.tessera.v1.reload.started") == 0) {
        json_object_set_new(t->started, ev->id, json_true());
    }
    return TSR_OK;
}

static int run_tap(const char *reload_id, long wait_ms) {
    tsr_error_t err;
    char *bootstrap = NULL, group[64], id[25];
    tsr_events_consumer_t *c = NULL;
    tap_t t = {.reload_id = reload_id, .finished = json_object(), .started = json_object()};
    const char *topics[] = {"tessera.reloads.results"};
    int rc = 1;
    tsr_id_new(id);
    snprintf(group, sizeof group, "reload-tap-%s", id);
    tsr_events_consumer_opts_t o = {.group = group,
                                    .topics = topics,
                                    .n_topics = 1,
                                    .client_id = "reload-tap",
                                    .handler = tap_handler,
                                    .handler_opaque = &t,
                                    .dedupe = {.ctx = NULL, .apply_once = tap_apply}};
    if (tsr_events_bootstrap_resolve(&bootstrap, &err) != TSR_OK) {
        goto out;
    }
    o.bootstrap = bootstrap;
    if (tsr_events_consumer_create(&o, &c, &err) != TSR_OK) {
        goto out;
    }
    uint64_t until = tsr_mono_ms() + (uint64_t)wait_ms;
    while (tsr_mono_ms() < until && !g_stop) {
        (void)tsr_events_consumer_poll(c, 200, NULL, &err);
    }
    printf("{\"finished\":%zu,\"started\":%zu}\n", json_object_size(t.finished),
           json_object_size(t.started));
    rc = 0;
out:
    if (rc != 0) {
        fprintf(stderr, "reload_bench tap: %s\n", err.msg);
    }
    tsr_events_consumer_destroy(c);
    free(bootstrap);
    json_decref(t.finished);
    json_decref(t.started);
    return rc;
}

static pid_t start_devkafka(const char *path, const char *dir, char *bootstrap, size_t cap) {
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(path, path, "--state-dir", dir, (char *)NULL);
        _exit(127);
    }
    char file[512];
    snprintf(file, sizeof file, "%s/kafka/bootstrap", dir);
    for (int i = 0; i < 400; i++) {
        FILE *f = fopen(file, "r");
        if (f != NULL) {
            bool ok = fgets(bootstrap, (int)cap, f) != NULL;
            fclose(f);
            if (ok) {
                bootstrap[strcspn(bootstrap, "\n")] = '\0';
                return pid;
            }
        }
        sleep_ms(50);
    }
    kill(pid, SIGTERM);
    return -1;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Queue n reloads (apps "<name>-<i>"), pace_ms apart, and wait for all to end. Prints the
 * queue-to-start latency (creation → RELOADING) percentiles. *span_ms: first request to last
 * end. */
static tsr_err_t phase(tsr_reload_t *r, tsr_store_t *store, tsr_events_relay_t *relay,
                       const char *name, int base, int n, long pace_ms, int64_t *span_ms,
                       int *done_out, int *ok_out, tsr_error_t *err) {
    tsr_reload_caller_t who = {.tenant = "bench", .user = "bench"};
    char **ids = tsr_xcalloc((size_t)n, sizeof *ids);
    int64_t *lat = tsr_xcalloc((size_t)n, sizeof *lat);
    tsr_err_t rc = TSR_OK;
    int done = 0, ok = 0;
    int64_t t0 = tsr_wall_ms(), last_end = t0;
    for (int i = 0; i < n && rc == TSR_OK; i++) {
        char app[48];
        json_t *doc = NULL;
        snprintf(app, sizeof app, "app-%d", base + i);
        rc = tsr_reload_request(r, &who, app, false, "external", &doc, err);
        if (rc == TSR_OK) {
            ids[i] = tsr_xstrdup(json_string_value(json_object_get(doc, "id")));
        }
        json_decref(doc);
        tsr_events_relay_kick(relay);
        if (pace_ms > 0) {
            sleep_ms(pace_ms);
        }
    }
    for (int waited = 0; rc == TSR_OK && waited < 1200 && done < n; waited++) {
        done = ok = 0;
        for (int i = 0; i < n; i++) {
            json_t *d = NULL;
            if (tsr_store_doc_get(store, "bench", "reloads", ids[i], &d, NULL) != TSR_OK) {
                continue;
            }
            const char *st = json_string_value(json_object_get(d, "status"));
            if (tsr_reload_status_is_terminal(st)) {
                int64_t s = 0, e = 0;
                done++;
                ok += strcmp(st, "SUCCEEDED") == 0 &&
                      json_integer_value(json_object_get(d, "attempts")) == 1;
                (void)tsr_time_parse_rfc3339(json_string_value(json_object_get(d, "startTime")),
                                             &s);
                (void)tsr_time_parse_rfc3339(json_string_value(json_object_get(d, "endTime")), &e);
                lat[i] = s - json_integer_value(json_object_get(d, "createdMs"));
                last_end = e > last_end ? e : last_end;
            }
            json_decref(d);
        }
        if (done < n) {
            sleep_ms(100);
        }
    }
    if (rc == TSR_OK) {
        qsort(lat, (size_t)n, sizeof *lat, cmp_i64);
        printf("  %s: %d reloads, queue-to-start ms p50 %lld  p99 %lld  max %lld\n", name, n,
               (long long)lat[n / 2], (long long)lat[(n * 99) / 100], (long long)lat[n - 1]);
    }
    if (span_ms != NULL) {
        *span_ms = last_end - t0;
    }
    *done_out = done;
    *ok_out = ok;
    for (int i = 0; i < n; i++) {
        free(ids[i]);
    }
    free(ids);
    free(lat);
    return rc;
}

static int run_bench(const char *devkafka, int count, int workers) {
    char dir[] = "/tmp/tsr-reload-bench.XXXXXX", uri[256], bootstrap[512];
    tsr_error_t err = {0};
    tsr_store_t *store = NULL;
    tsr_reload_t *r = NULL;
    tsr_events_producer_t *prod = NULL;
    tsr_events_relay_t *relay = NULL;
    tsr_reload_consumer_t *w[8] = {0};
    int rc = 1;
    if (mkdtemp(dir) == NULL) {
        return 1;
    }
    pid_t kpid = start_devkafka(devkafka, dir, bootstrap, sizeof bootstrap);
    if (kpid < 0) {
        fprintf(stderr, "devkafka did not start\n");
        return 1;
    }
    snprintf(uri, sizeof uri, "sqlite:%s/store.db", dir);
    tsr_events_outbox_t outbox;
    tsr_events_producer_opts_t po = {.bootstrap = bootstrap, .client_id = "reload-bench"};
    tsr_events_relay_opts_t ro = {.idle_ms = 5};
    tsr_reload_opts_t o = {.tenant_max_active = (unsigned)count + 100};
    if (open_store(uri, &store, &err) != TSR_OK) {
        goto out;
    }
    o.store = store;
    outbox = tsr_store_events_outbox(store);
    if (tsr_reload_create(&o, &r, &err) != TSR_OK ||
        tsr_events_producer_create(&po, &prod, &err) != TSR_OK ||
        tsr_events_relay_create(prod, &outbox, &ro, &relay, &err) != TSR_OK ||
        tsr_events_relay_start(relay, &err) != TSR_OK) {
        goto out;
    }
    tsr_reload_worker_opts_t wo = {.store = store, .owner = "bench", .lease_ttl_ms = 5000};
    for (int i = 0; i < workers; i++) {
        if (tsr_reload_worker_start(&wo, bootstrap, job, NULL, &w[i], &err) != TSR_OK) {
            goto out;
        }
    }
    sleep_ms(3000); /* group join */
    printf("reload_bench: %d workers (one consumer group), stand-in job %ld ms\n", workers,
           g_job_ms);
    int64_t burst_ms = 0, paced = count < 50 ? count : 50;
    int done = 0, ok = 0;
    /* Burst: everything queued at once; throughput from first request to last end. */
    if (phase(r, store, relay, "burst", 0, count, 0, &burst_ms, &done, &ok, &err) != TSR_OK) {
        goto out;
    }
    printf("  reloads/minute (burst of %d): %.0f\n", count,
           burst_ms > 0 ? (double)count * 60000.0 / (double)burst_ms : 0.0);
    /* Paced: one request every 100 ms, so the queue is empty: the pipeline's own latency. */
    int d2 = 0, ok2 = 0;
    if (phase(r, store, relay, "paced", count, (int)paced, 100, NULL, &d2, &ok2, &err) != TSR_OK) {
        goto out;
    }
    done += d2;
    ok += ok2;
    count += (int)paced;
    printf("  ended %d, SUCCEEDED on the first attempt %d\n", done, ok);
    rc = done == count && ok == count ? 0 : 1;
out:
    if (rc != 0 && err.msg[0] != '\0') {
        fprintf(stderr, "reload_bench: %s\n", err.msg);
    }
    for (int i = 0; i < workers && i < 8; i++) {
        tsr_reload_consumer_stop(w[i]);
    }
    tsr_events_relay_destroy(relay);
    tsr_events_producer_destroy(prod);
    tsr_reload_destroy(r);
    tsr_store_destroy(store);
    kill(kpid, SIGTERM);
    waitpid(kpid, NULL, 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", dir);
    }
    return rc;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "", *owner = "stand-in", *devkafka = NULL;
    const char *reload_id = NULL;
    long wait_ms = 15000;
    int count = 200, workers = 2;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--owner") == 0) {
            owner = argv[i + 1];
        } else if (strcmp(argv[i], "--job-ms") == 0) {
            g_job_ms = strtol(argv[i + 1], NULL, 10);
        } else if (strcmp(argv[i], "--devkafka") == 0) {
            devkafka = argv[i + 1];
        } else if (strcmp(argv[i], "--count") == 0) {
            count = (int)strtol(argv[i + 1], NULL, 10);
        } else if (strcmp(argv[i], "--reload") == 0) {
            reload_id = argv[i + 1];
        } else if (strcmp(argv[i], "--wait-ms") == 0) {
            wait_ms = strtol(argv[i + 1], NULL, 10);
        } else if (strcmp(argv[i], "--workers") == 0) {
            workers = (int)strtol(argv[i + 1], NULL, 10);
        }
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    tsr_log_init("reload-bench", TSR_LOG_WARN, stderr);
    if (strcmp(mode, "worker") == 0) {
        g_verbose = true;
        return run_worker(owner);
    }
    if (strcmp(mode, "tap") == 0 && reload_id != NULL) {
        return run_tap(reload_id, wait_ms);
    }
    if (strcmp(mode, "bench") == 0 && devkafka != NULL && count > 0 && workers >= 1 &&
        workers <= 8) {
        return run_bench(devkafka, count, workers);
    }
    fprintf(stderr, "usage: reload_bench bench --devkafka PATH [--count N] [--workers W<=8] "
                    "[--job-ms J]\n       reload_bench worker [--owner NAME] [--job-ms J]\n"
                    "       reload_bench tap --reload ID [--wait-ms W]\n");
    return 2;
}
