/*
 * bench_spaces: the spaces service's list and get paths with 10,000 items in a tenant.
 *   seed URI BLOBS TENANT USER N   create N apps (half in a shared space, half personal) in the
 *                                  store at URI through the service's own handlers (in-process),
 *                                  print "<spaceId> <appId>" for the HTTP benchmark (run.sh)
 *   inproc N THREADS SECONDS       seed a temporary store, then hammer GET /api/v1/items
 *                                  (first page of 100, and pages followed by cursor) and
 *                                  GET /api/v1/apps/{id} from THREADS threads through
 *                                  tsr_httpd_inject (the whole request pipeline, no sockets);
 *                                  print requests/s, p50 and p99
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "spaces.h"

typedef struct {
    tsr_store_t *store;
    tsr_blob_store_t *blobs;
    tsr_spaces_t *sp;
    tsr_httpd_t *h;
    const char *tenant, *user;
} svc_t;

static void die(const char *what, const tsr_error_t *err) {
    fprintf(stderr, "bench_spaces: %s: %s\n", what, err != NULL ? err->msg : "");
    exit(1);
}

static void svc_open(svc_t *s, const char *uri, const char *blobs, const char *tenant,
                     const char *user) {
    tsr_error_t err;
    size_t n = 0;
    memset(s, 0, sizeof *s);
    s->tenant = tenant;
    s->user = user;
    tsr_store_opts_t so = {.collections = tsr_spaces_collections(&n)};
    so.n_collections = n;
    if (tsr_store_create(uri, &so, &s->store, &err) != TSR_OK) {
        die("store", &err);
    }
    if (tsr_blob_store_open(blobs, &s->blobs, &err) != TSR_OK) {
        die("blobs", &err);
    }
    tsr_spaces_opts_t o = {.store = s->store, .blobs = s->blobs};
    if (tsr_spaces_create(&o, &s->sp, &err) != TSR_OK) {
        die("spaces", &err);
    }
    tsr_httpd_opts_t ho = {.service = "spaces",
                           .bind = "127.0.0.1",
                           .threads = 1,
                           .max_body = 1 << 20,
                           .on_principal = tsr_spaces_principal};
    if (tsr_httpd_create(&ho, &s->h, &err) != TSR_OK || tsr_spaces_routes(s->h, s->sp, &err)) {
        die("httpd", &err);
    }
}

static void svc_close(svc_t *s) {
    tsr_httpd_destroy(s->h);
    tsr_spaces_destroy(s->sp);
    tsr_blob_store_destroy(s->blobs);
    tsr_store_destroy(s->store);
}

static unsigned req(svc_t *s, const char *method, const char *path, const char *body,
                    tsr_httpd_response_t *r) {
    const char *h[] = {
        "Host",  "bench.local", "X-Tsr-Tenant-Id",  s->tenant,      "X-Tsr-User-Id",
        s->user, "X-Tsr-Roles", "TenantAdmin,User", "Content-Type", "application/json",
        NULL};
    tsr_httpd_inject(s->h, method, path, h, body, body != NULL ? strlen(body) : 0, r);
    return r->status;
}

/* The string at key (or attributes.key) of a JSON body; heap. */
static char *field(const char *body, const char *k1, const char *k2) {
    json_error_t je;
    json_t *j = json_loads(body, 0, &je);
    json_t *v = json_object_get(j, k1);
    if (k2 != NULL) {
        v = json_object_get(v, k2);
    }
    char *out = json_is_string(v) ? strdup(json_string_value(v)) : NULL;
    json_decref(j);
    return out;
}

static void seed(svc_t *s, long n, char **space_out, char **app_out) {
    tsr_httpd_response_t r;
    char body[256];
    snprintf(body, sizeof body, "{\"name\":\"bench %ld\",\"type\":\"shared\"}", (long)getpid());
    if (req(s, "POST", "/api/v1/spaces", body, &r) != 201) {
        fprintf(stderr, "bench_spaces: create space: %u %s\n", r.status, r.body);
        exit(1);
    }
    char *space = field(r.body, "id", NULL);
    tsr_httpd_response_cleanup(&r);
    char *app = NULL;
    for (long i = 0; i < n; i++) {
        if (i % 2 == 0) {
            snprintf(body, sizeof body,
                     "{\"attributes\":{\"name\":\"App %06ld\",\"spaceId\":\"%s\"}}", i, space);
        } else {
            snprintf(body, sizeof body, "{\"attributes\":{\"name\":\"App %06ld\"}}", i);
        }
        if (req(s, "POST", "/api/v1/apps", body, &r) != 200) {
            fprintf(stderr, "bench_spaces: create app: %u %s\n", r.status, r.body);
            exit(1);
        }
        if (i == n / 2) {
            app = field(r.body, "attributes", "id");
        }
        tsr_httpd_response_cleanup(&r);
    }
    *space_out = space;
    *app_out = app;
}

/* ---- in-process load ------------------------------------------------------------------------ */

typedef struct {
    svc_t *s;
    const char *path; /* NULL: follow the cursor through the list */
    uint64_t deadline_ns;
    uint64_t *lat;
    size_t n, cap;
    int errors;
} worker_t;

static void *work(void *arg) {
    worker_t *w = arg;
    char path[4096] = "/api/v1/items?limit=100";
    while (tsr_mono_ns() < w->deadline_ns) {
        tsr_httpd_response_t r;
        uint64_t t0 = tsr_mono_ns();
        unsigned st = req(w->s, "GET", w->path != NULL ? w->path : path, NULL, &r);
        uint64_t dt = tsr_mono_ns() - t0;
        if (st != 200) {
            w->errors++;
        }
        if (w->path == NULL) {
            /* Walk the catalogue page by page, starting over at the end. */
            char *next = NULL;
            json_error_t je;
            json_t *j = json_loads(r.body, 0, &je);
            const char *href = json_string_value(
                json_object_get(json_object_get(json_object_get(j, "links"), "next"), "href"));
            if (href != NULL && strstr(href, "/api/v1/") != NULL) {
                next = strstr(href, "/api/v1/");
            }
            snprintf(path, sizeof path, "%s", next != NULL ? next : "/api/v1/items?limit=100");
            json_decref(j);
        }
        tsr_httpd_response_cleanup(&r);
        if (w->n == w->cap) {
            w->cap = w->cap != 0 ? w->cap * 2 : 4096;
            w->lat = tsr_xrealloc(w->lat, w->cap * sizeof *w->lat);
        }
        w->lat[w->n++] = dt;
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void run(svc_t *s, const char *label, const char *path, int threads, double seconds) {
    worker_t *ws = tsr_xcalloc((size_t)threads, sizeof *ws);
    pthread_t *ts = tsr_xcalloc((size_t)threads, sizeof *ts);
    uint64_t t0 = tsr_mono_ns(), deadline = t0 + (uint64_t)(seconds * 1e9);
    for (int i = 0; i < threads; i++) {
        ws[i] = (worker_t){.s = s, .path = path, .deadline_ns = deadline};
        pthread_create(&ts[i], NULL, work, &ws[i]);
    }
    size_t total = 0;
    int errors = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(ts[i], NULL);
        total += ws[i].n;
        errors += ws[i].errors;
    }
    double elapsed = (double)(tsr_mono_ns() - t0) / 1e9;
    uint64_t *all = tsr_xcalloc(total + 1, sizeof *all);
    size_t k = 0;
    for (int i = 0; i < threads; i++) {
        memcpy(all + k, ws[i].lat, ws[i].n * sizeof *all);
        k += ws[i].n;
        free(ws[i].lat);
    }
    qsort(all, total, sizeof *all, cmp_u64);
    printf("%-34s %10.0f %10.3f %10.3f %8d\n", label, (double)total / elapsed,
           total > 0 ? (double)all[total / 2] / 1e6 : 0.0,
           total > 0 ? (double)all[(total * 99) / 100] / 1e6 : 0.0, errors);
    free(all);
    free(ws);
    free(ts);
}

int main(int argc, char **argv) {
    FILE *devnull = fopen("/dev/null", "w");
    tsr_log_init("bench_spaces", TSR_LOG_ERROR, devnull);
    if (argc == 7 && strcmp(argv[1], "seed") == 0) {
        svc_t s;
        char *space = NULL, *app = NULL;
        svc_open(&s, argv[2], argv[3], argv[4], argv[5]);
        seed(&s, atol(argv[6]), &space, &app);
        printf("%s %s\n", space, app);
        free(space);
        free(app);
        svc_close(&s);
        fclose(devnull);
        return 0;
    }
    if (argc == 5 && strcmp(argv[1], "inproc") == 0) {
        char dir[] = "/tmp/tsr-bench-spaces-XXXXXX", uri[128], blobs[128], path[128];
        long n = atol(argv[2]);
        int threads = (int)atol(argv[3]);
        double secs = atof(argv[4]);
        if (mkdtemp(dir) == NULL || n <= 0 || threads <= 0 || secs <= 0) {
            fprintf(stderr, "usage: bench_spaces inproc N THREADS SECONDS\n");
            return 2;
        }
        snprintf(uri, sizeof uri, "sqlite:%s/store.db?synchronous=normal", dir);
        snprintf(blobs, sizeof blobs, "file:%s/blobs", dir);
        svc_t s;
        char *space = NULL, *app = NULL;
        svc_open(&s, uri, blobs, "bench-tenant", "bench-admin");
        uint64_t t0 = tsr_mono_ns();
        seed(&s, n, &space, &app);
        printf("bench/spaces in-process: %ld items seeded in %.1f s, %d threads, %.0f s per "
               "case, %ld cores\n",
               n, (double)(tsr_mono_ns() - t0) / 1e9, threads, secs, sysconf(_SC_NPROCESSORS_ONLN));
        printf("%-34s %10s %10s %10s %8s\n", "request", "req/s", "p50 ms", "p99 ms", "errors");
        run(&s, "GET /api/v1/items?limit=100", "/api/v1/items?limit=100", threads, secs);
        run(&s, "GET /api/v1/items (walk all pages)", NULL, threads, secs);
        snprintf(path, sizeof path, "/api/v1/items?resourceType=app&spaceId=%s&limit=100", space);
        run(&s, "GET /api/v1/items?spaceId=..", path, threads, secs);
        snprintf(path, sizeof path, "/api/v1/apps/%s", app);
        run(&s, "GET /api/v1/apps/{id}", path, threads, secs);
        snprintf(path, sizeof path, "/api/v1/items/%s", app);
        run(&s, "GET /api/v1/items/{id}", path, threads, secs);
        svc_close(&s);
        free(space);
        free(app);
        char cmd[160];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "bench_spaces: could not remove %s\n", dir);
        }
        fclose(devnull);
        return 0;
    }
    fprintf(stderr,
            "usage: bench_spaces seed URI BLOBS TENANT USER N | inproc N THREADS SECONDS\n");
    fclose(devnull);
    return 2;
}
