/*
 * bench/engine: timing harness for pkg/engine on the Sales model. bench_engine DIR [RUNS]
 * reloads DIR's CSV files (written by tsr-salesgen) through the load script, answers
 * Q1–Q7 (salesq.c) RUNS times each, and prints one JSON object: reload ms, per query the
 * median ms, the first run's ms and the MD5 of the answer text, the process RSS (after the
 * reload, after Q1-Q7, at the end and peak, MB). ENGINE_BENCH_ONLY=Qn answers one query and
 * adds its CPU ms per run (profiling, A/B of two builds).
 * run.sh runs several processes and takes medians across them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "salesgen.h"
#include "salesq.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n) {
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double rss_mb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f != NULL) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return (double)rss * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [RUNS]\n", argv[0]);
        return 2;
    }
    int runs = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 5;
    if (runs < 1 || runs > 1000)
        runs = 5;
    tsr_error_t err = {0};
    tsr_engine_model_t *m = NULL;
    char *log = NULL;
    tsr_engine_reload_opts_t opts = {.data_dir = argv[1]};
    uint64_t t0 = tsr_mono_ns();
    if (tsr_engine_reload(tsr_salesq_script, strlen(tsr_salesq_script), &opts, &m, &log, &err) !=
        TSR_OK) {
        fprintf(stderr, "reload: %s\n%s", err.msg, log ? log : "");
        free(log);
        return 1;
    }
    double reload_ms = (double)(tsr_mono_ns() - t0) / 1e6;
    free(log);
    size_t st;
    tsr_engine_model_table_find(m, "Sales", &st);
    printf("{\"rows\":%zu,\"reload_ms\":%.1f,\"rss_mb\":%.1f,\"queries\":{",
           tsr_engine_model_table_rows(m, st), reload_ms, rss_mb());
    double *ms = calloc((size_t)runs, sizeof *ms);
    /* ENGINE_BENCH_ONLY=Q6 (profiling): answer that query only, then stop. */
    const char *only = getenv("ENGINE_BENCH_ONLY");
    for (int q = 0; q < TSR_SALESQ_COUNT; q++) {
        char *answer = NULL, hex[33];
        if (only != NULL && strcmp(only, tsr_salesq_names[q]) != 0)
            continue;
        /* The first run (answer text) also pays for anything built on first use (the
         * first selection that reads a run index builds them). */
        uint64_t f0 = tsr_mono_ns();
        if (tsr_salesq_run(m, q, &answer, &err) != TSR_OK) {
            fprintf(stderr, "%s: %s\n", tsr_salesq_names[q], err.msg);
            return 1;
        }
        double first_ms = (double)(tsr_mono_ns() - f0) / 1e6;
        tsr_salesgen_md5_buf(answer, strlen(answer), hex);
        free(answer);
        for (int r = 0; r < runs; r++) {
            uint64_t a = tsr_mono_ns();
            if (tsr_salesq_run(m, q, NULL, &err) != TSR_OK) {
                fprintf(stderr, "%s: %s\n", tsr_salesq_names[q], err.msg);
                return 1;
            }
            ms[r] = (double)(tsr_mono_ns() - a) / 1e6;
        }
        printf("%s\"%s\":{\"ms\":%.3f,\"first_ms\":%.3f,\"md5\":\"%s\"}",
               q && only == NULL ? "," : "", tsr_salesq_names[q], median(ms, (size_t)runs),
               first_ms, hex);
    }
    /* RSS once Q1-Q7 have run: includes the run indexes, built on first use. */
    printf("},\"rss_queried_mb\":%.1f", rss_mb());
    if (only != NULL) {
        /* Process CPU time per run (threads included): steadier than wall time on a busy
         * machine when comparing two builds. */
        struct rusage r0, r1;
        getrusage(RUSAGE_SELF, &r0);
        for (int q = 0; q < TSR_SALESQ_COUNT; q++) {
            if (strcmp(only, tsr_salesq_names[q]) != 0)
                continue;
            for (int r = 0; r < runs; r++)
                tsr_salesq_run(m, q, NULL, &err);
        }
        getrusage(RUSAGE_SELF, &r1);
        double cpu = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) * 1e3 +
                     (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) / 1e3 +
                     (double)(r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) * 1e3 +
                     (double)(r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e3;
        printf(",\"cpu_ms_per_run\":%.3f}\n", cpu / runs);
        free(ms);
        tsr_engine_model_destroy(m);
        return 0;
    }
    /* A cached repeat: the same cube on the same selection state, answered from the cache. */
    tsr_engine_cache_t *cache = tsr_engine_cache_create(64u << 20);
    tsr_engine_selection_t *sel = tsr_engine_selection_create(m);
    size_t fc;
    tsr_engine_model_field_find(m, "Country", &fc);
    tsr_engine_selection_select_text(sel, fc, (const char *const[]){"Country 03", "Country 17"}, 2,
                                     false, &err);
    tsr_engine_state_t *state = NULL;
    tsr_engine_state_compute(m, sel, &state, &err);
    static const char *const sales[] = {"Sum(Quantity*UnitPrice)"};
    tsr_engine_hypercube_def_t q2 = {
        .dims = (const char *const[]){"Category"}, .n_dims = 1, .measures = sales, .n_measures = 1};
    tsr_engine_hypercube_t *cube = NULL;
    tsr_engine_hypercube_compute_cached(cache, m, state, &q2, &cube, &err);
    tsr_engine_hypercube_destroy(cube);
    for (int r = 0; r < runs; r++) {
        uint64_t a = tsr_mono_ns();
        tsr_engine_hypercube_compute_cached(cache, m, state, &q2, &cube, &err);
        ms[r] = (double)(tsr_mono_ns() - a) / 1e6;
        tsr_engine_hypercube_destroy(cube);
    }
    printf(",\"cached_ms\":%.4f", median(ms, (size_t)runs));
    tsr_engine_state_destroy(state);
    tsr_engine_cache_destroy(cache);

    /* A session step: one selection, then 5 hypercubes and 5 list objects (no cache). */
    static const char *const lists[] = {"Country", "Category", "YearMonth", "Region", "Segment"};
    static const char *const cdims[][2] = {{"Region", NULL},
                                           {"Category", NULL},
                                           {"Year", NULL},
                                           {"YearMonth", "Category"},
                                           {"ProductID", "ProductName"}};
    for (int r = 0; r < runs; r++) {
        uint64_t a = tsr_mono_ns();
        tsr_engine_selection_select_text(
            sel, fc, (const char *const[]){r % 2 ? "Country 05" : "Country 09"}, 1, false, &err);
        tsr_engine_state_compute(m, sel, &state, &err);
        for (int k = 0; k < 5; k++) {
            tsr_engine_hypercube_def_t d = {.dims = cdims[k],
                                            .n_dims = cdims[k][1] ? 2 : 1,
                                            .measures = sales,
                                            .n_measures = 1};
            if (tsr_engine_hypercube_compute(m, state, &d, &cube, &err) != TSR_OK) {
                fprintf(stderr, "session cube: %s\n", err.msg);
                return 1;
            }
            tsr_engine_hypercube_destroy(cube);
            tsr_engine_listobject_t *l = NULL;
            tsr_engine_listobject_def_t ld = {.field = lists[k], .sort_by_state = true};
            tsr_engine_listobject_compute(m, state, &ld, &l, &err);
            tsr_engine_listobject_destroy(l);
        }
        tsr_engine_state_destroy(state);
        ms[r] = (double)(tsr_mono_ns() - a) / 1e6;
    }
    printf(",\"session_ms\":%.3f", median(ms, (size_t)runs));
    tsr_engine_selection_destroy(sel);

    /* App file: save (zstd) and open (no row parsing). */
    char app[4200];
    snprintf(app, sizeof app, "%s/bench.tsra", argv[1]);
    uint64_t a = tsr_mono_ns();
    if (tsr_engine_app_save(m, NULL, app, NULL, &err) != TSR_OK) {
        fprintf(stderr, "save: %s\n", err.msg);
        return 1;
    }
    double save_ms = (double)(tsr_mono_ns() - a) / 1e6;
    struct stat stb;
    stat(app, &stb);
    tsr_engine_model_t *m2 = NULL;
    a = tsr_mono_ns();
    if (tsr_engine_app_open(app, NULL, &m2, NULL, &err) != TSR_OK) {
        fprintf(stderr, "open: %s\n", err.msg);
        return 1;
    }
    double open_ms = (double)(tsr_mono_ns() - a) / 1e6;
    tsr_engine_model_destroy(m2);
    unlink(app);
    printf(",\"save_ms\":%.1f,\"open_ms\":%.1f,\"app_mb\":%.1f", save_ms, open_ms,
           (double)stb.st_size / 1048576.0);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf(",\"rss_end_mb\":%.1f,\"peak_rss_mb\":%.1f}\n", rss_mb(), (double)ru.ru_maxrss / 1024.0);
    free(ms);
    tsr_engine_model_destroy(m);
    return 0;
}
