/*
 * bench_events: pkg/events throughput and latency through cmd/devkafka on loopback.
 *   produce  N envelopes (~350 bytes) with the idempotent producer (acks=all), async, flushed
 *   consume  the same N through a consumer group (parse + dedupe call + offset store,
 *            commit every 1000), from first to last message
 *   latency  end to end (send call -> handler) for M events sent open loop at a fixed rate,
 *            p50/p99/max
 * The dedupe here applies everything in memory: this measures pkg/events and the broker, not
 * a store. Usage: bench_events (--bootstrap B | --devkafka PATH) [--count N] [--rate R]
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "events.h"
#include "log.h"

typedef struct {
    atomic_llong seen;
    int64_t first_ns;
    int64_t last_ns;
    int64_t *lat_ns; /* per sequence, for the latency phase */
    int64_t lat_n;
} sink_t;

static tsr_err_t all_apply(void *ctx, const char *group, const char *event_id,
                           tsr_events_effect_cb effect, void *opaque, bool *applied,
                           tsr_error_t *err) {
    (void)ctx;
    (void)group;
    (void)event_id;
    tsr_err_t rc = effect(opaque, NULL, err);
    *applied = rc == TSR_OK;
    return rc;
}

static tsr_err_t sink_handler(void *opaque, const tsr_event_t *ev, void *txn, tsr_error_t *err) {
    sink_t *s = opaque;
    (void)txn;
    (void)err;
    int64_t now = (int64_t)tsr_mono_ns();
    if (s->first_ns == 0) {
        s->first_ns = now;
    }
    s->last_ns = now;
    json_t *sent = json_object_get(ev->data, "sentNs");
    json_t *seq = json_object_get(ev->data, "seq");
    if (s->lat_ns != NULL && json_is_integer(sent) && json_is_integer(seq)) {
        int64_t i = (int64_t)json_integer_value(seq);
        if (i >= 0 && i < s->lat_n && s->lat_ns[i] == 0) {
            s->lat_ns[i] = now - (int64_t)json_integer_value(sent);
        }
    }
    atomic_fetch_add(&s->seen, 1);
    return TSR_OK;
}

static char *envelope(int64_t seq, int64_t sent_ns, char key[32]) {
    tsr_event_t ev;
    tsr_error_t err;
    snprintf(key, 32, "app-%lld", (long long)(seq % 64));
    if (tsr_event_init(&ev, "/tessera/bench", "com.tessera.v1.app.updated", "tenant-bench", key,
                       json_pack("{s:I,s:I,s:s}", "seq", (json_int_t)seq, "sentNs",
                                 (json_int_t)sent_ns, "name", "Quarterly sales by region"),
                       &err) != TSR_OK) {
        fprintf(stderr, "event: %s\n", err.msg);
        exit(1);
    }
    char *s;
    size_t n;
    if (tsr_event_format(&ev, &s, &n, &err) != TSR_OK) {
        exit(1);
    }
    tsr_event_cleanup(&ev);
    return s;
}

static tsr_events_consumer_t *consumer(const char *bootstrap, const char *group, const char *topic,
                                       sink_t *s, const char *const *extra_conf) {
    static const char *topics[1];
    topics[0] = topic;
    tsr_events_consumer_opts_t o = {0};
    o.bootstrap = bootstrap;
    o.group = group;
    o.topics = topics;
    o.n_topics = 1;
    o.client_id = "bench";
    o.handler = sink_handler;
    o.handler_opaque = s;
    o.dedupe.apply_once = all_apply;
    o.commit_every = 1000;
    o.extra_conf = extra_conf;
    tsr_events_consumer_t *c = NULL;
    tsr_error_t err;
    if (tsr_events_consumer_create(&o, &c, &err) != TSR_OK) {
        fprintf(stderr, "consumer: %s\n", err.msg);
        exit(1);
    }
    return c;
}

static void wait_assigned(tsr_events_consumer_t *c) {
    tsr_error_t err;
    for (int i = 0; i < 300 && !tsr_events_consumer_is_assigned(c, NULL); i++) {
        tsr_events_consumer_poll(c, 100, NULL, &err);
    }
}

static void *consume_thread(void *arg) {
    tsr_error_t err;
    tsr_events_consumer_run(arg, &err);
    return NULL;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static pid_t start_devkafka(const char *path, char *bootstrap, size_t cap, char *dir) {
    if (mkdtemp(dir) == NULL) {
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
        }
        execl(path, path, "--state-dir", dir, "--brokers", "3", (char *)NULL);
        _exit(127);
    }
    char file[512];
    snprintf(file, sizeof file, "%s/kafka/bootstrap", dir);
    for (int i = 0; i < 200; i++) {
        FILE *f = fopen(file, "r");
        if (f != NULL) {
            bool ok = fgets(bootstrap, (int)cap, f) != NULL;
            fclose(f);
            if (ok) {
                bootstrap[strcspn(bootstrap, "\n")] = '\0';
                return pid;
            }
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGTERM);
    return -1;
}

typedef struct {
    int64_t got;
    double p50, p99, max; /* ms */
} lat_t;

static lat_t latency(tsr_events_producer_t *p, const char *bootstrap, const char *group,
                     const char *topic, const char *const *extra, int64_t rate, int64_t lat_count) {
    tsr_error_t err;
    sink_t s2 = {0};
    s2.lat_n = lat_count;
    s2.lat_ns = tsr_xcalloc((size_t)lat_count, sizeof *s2.lat_ns);
    tsr_events_consumer_t *c2 = consumer(bootstrap, group, topic, &s2, extra);
    wait_assigned(c2);
    pthread_t th;
    pthread_create(&th, NULL, consume_thread, c2);
    uint64_t start = tsr_mono_ns();
    uint64_t period = 1000000000ULL / (uint64_t)rate;
    for (int64_t i = 0; i < lat_count; i++) {
        uint64_t due = start + (uint64_t)i * period;
        while (tsr_mono_ns() < due) {
            tsr_events_producer_poll(p, 0);
            struct timespec ts = {0, 100 * 1000};
            nanosleep(&ts, NULL);
        }
        char key[32];
        /* latency from the intended send time: no coordinated omission */
        char *env = envelope(i, (int64_t)due, key);
        tsr_events_producer_send_async(p, topic, key, env, strlen(env), NULL, NULL, &err);
        free(env);
    }
    tsr_events_producer_flush(p, 60000, &err);
    for (int i = 0; i < 300 && atomic_load(&s2.seen) < lat_count; i++) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    tsr_events_consumer_stop(c2);
    pthread_join(th, NULL);
    tsr_events_consumer_destroy(c2);
    /* the first second is warm-up: fetch sessions and offsets are still being set up */
    int64_t received = 0, got = 0, warm = lat_count / 6;
    for (int64_t i = 0; i < lat_count; i++) {
        received += s2.lat_ns[i] > 0;
    }
    /* the first sixth is warm-up: fetch sessions and offsets are still being set up */
    for (int64_t i = warm; i < lat_count; i++) {
        if (s2.lat_ns[i] > 0) {
            s2.lat_ns[got++] = s2.lat_ns[i];
        }
    }
    qsort(s2.lat_ns, (size_t)got, sizeof *s2.lat_ns, cmp_i64);
    lat_t r = {received, got ? (double)s2.lat_ns[got * 50 / 100] / 1e6 : -1,
               got ? (double)s2.lat_ns[got * 99 / 100] / 1e6 : -1,
               got ? (double)s2.lat_ns[got - 1] / 1e6 : -1};
    free(s2.lat_ns);
    return r;
}

int main(int argc, char **argv) {
    const char *bootstrap_arg = NULL, *devkafka = NULL;
    int64_t count = 50000, rate = 1000, lat_count = 3000;
    tsr_log_init("bench_events", TSR_LOG_ERROR, stderr);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--bootstrap") == 0) {
            bootstrap_arg = argv[i + 1];
        } else if (strcmp(argv[i], "--devkafka") == 0) {
            devkafka = argv[i + 1];
        } else if (strcmp(argv[i], "--count") == 0) {
            tsr_str_to_i64(tsr_str(argv[i + 1]), 1, 10000000, &count);
        } else if (strcmp(argv[i], "--rate") == 0) {
            tsr_str_to_i64(tsr_str(argv[i + 1]), 1, 1000000, &rate);
        }
    }
    char bootstrap[1024];
    char dir[] = "/tmp/bench_events.XXXXXX";
    pid_t dk = -1;
    if (bootstrap_arg != NULL) {
        snprintf(bootstrap, sizeof bootstrap, "%s", bootstrap_arg);
    } else if (devkafka != NULL) {
        dk = start_devkafka(devkafka, bootstrap, sizeof bootstrap, dir);
        if (dk < 0) {
            fprintf(stderr, "cannot start %s\n", devkafka);
            return 1;
        }
    } else {
        fputs("usage: bench_events (--bootstrap B | --devkafka PATH) [--count N] [--rate R]\n",
              stderr);
        return 2;
    }
    tsr_error_t err;
    tsr_events_producer_t *p = NULL;
    tsr_events_producer_opts_t po = {.bootstrap = bootstrap, .client_id = "bench"};
    if (tsr_events_producer_create(&po, &p, &err) != TSR_OK) {
        fprintf(stderr, "producer: %s\n", err.msg);
        return 1;
    }

    /* 1. produce */
    size_t bytes = 0;
    uint64_t t0 = tsr_mono_ns();
    for (int64_t i = 0; i < count; i++) {
        char key[32];
        char *env = envelope(i, 0, key);
        bytes += strlen(env);
        while (tsr_events_producer_send_async(p, "tessera.apps", key, env, strlen(env), NULL, NULL,
                                              &err) != TSR_OK) {
            tsr_events_producer_poll(p, 10);
        }
        free(env);
        tsr_events_producer_poll(p, 0);
    }
    if (tsr_events_producer_flush(p, 60000, &err) != TSR_OK) {
        fprintf(stderr, "flush: %s\n", err.msg);
        return 1;
    }
    double prod_s = (double)(tsr_mono_ns() - t0) / 1e9;

    /* 2. consume what was produced */
    sink_t s1 = {0};
    tsr_events_consumer_t *c1 = consumer(bootstrap, "bench.consume", "tessera.apps", &s1, NULL);
    while (atomic_load(&s1.seen) < count) {
        tsr_events_consumer_poll(c1, 100, NULL, &err);
    }
    double cons_s = (double)(s1.last_ns - s1.first_ns) / 1e9;
    tsr_events_consumer_destroy(c1);

    /* 3. end-to-end latency: pkg/events' fetch.wait.max.ms (100), whose full wait the mock
     * broker serves when a partition is idle, then 10 ms */
    lat_t l_def =
        latency(p, bootstrap, "bench.latency.default", "tessera.audit", NULL, rate, lat_count);
    static const char *const fast[] = {"fetch.wait.max.ms", "10", NULL};
    lat_t l_fast =
        latency(p, bootstrap, "bench.latency.fast", "tessera.identity", fast, rate, lat_count);

    printf("events bench (devkafka, 3 brokers, loopback; idempotent producer acks=all)\n");
    printf("  produce:  %lld events, %.0f events/s (%.1f MB/s, avg %zu B/event)\n",
           (long long)count, (double)count / prod_s, (double)bytes / prod_s / 1e6,
           bytes / (size_t)count);
    printf("  consume:  %lld events, %.0f events/s (parse + dedupe call + commit every 1000)\n",
           (long long)count, (double)count / cons_s);
    printf("  e2e latency at %lld events/s open loop, fetch.wait.max.ms=100 (pkg/events default): "
           "p50 %.2f "
           "ms, p99 %.2f ms, max %.2f ms (%lld/%lld received)\n",
           (long long)rate, l_def.p50, l_def.p99, l_def.max, (long long)l_def.got,
           (long long)lat_count);
    printf("  e2e latency at %lld events/s open loop, fetch.wait.max.ms=10: p50 %.2f ms, p99 "
           "%.2f ms, max %.2f ms (%lld/%lld received)\n",
           (long long)rate, l_fast.p50, l_fast.p99, l_fast.max, (long long)l_fast.got,
           (long long)lat_count);
    tsr_events_producer_destroy(p);
    if (dk > 0) {
        kill(dk, SIGTERM);
        waitpid(dk, NULL, 0);
        char path[600];
        snprintf(path, sizeof path, "%s/kafka", dir);
        rmdir(path);
        rmdir(dir);
    }
    return l_def.got == lat_count && l_fast.got == lat_count ? 0 : 1;
}
