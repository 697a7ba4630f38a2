/*
 * pkg/engine: run-length inverted indexes. A fact table's key columns that are constant per
 * order (customer, date) come in runs of consecutive rows; for each packed value the index
 * keeps its runs as varints (gap since the end of the value's previous run, run length),
 * about one byte per row for a 10M-row Sales table. Propagation uses an index instead of a
 * full scan when the selected values cover few rows (state.c).
 */
#include <pthread.h>
#include <stdlib.h>

#include "engine_int.h"

size_t tsr_engine__index_min_rows = 262144;

static inline size_t varint_len(uint64_t x) {
    size_t n = 1;
    while (x >= 0x80) {
        x >>= 7;
        n++;
    }
    return n;
}

static inline uint8_t *varint_put(uint8_t *p, uint64_t x) {
    while (x >= 0x80) {
        *p++ = (uint8_t)(x | 0x80);
        x >>= 7;
    }
    *p++ = (uint8_t)x;
    return p;
}

static void runidx_free(tsr_engine__runidx_t *ix) {
    if (ix == NULL)
        return;
    free(ix->off);
    free(ix->cnt);
    free(ix->bytes);
    free(ix);
}

/* Index of one packed column; NULL when its rows do not come in runs (average run < 2). */
static tsr_engine__runidx_t *runidx_build(const tsr_engine__packed_t *pk, uint32_t n_vals) {
    size_t n = pk->n;
    if (n == 0 || n > UINT32_MAX)
        return NULL;
    const uint64_t *words = pk->words;
    const unsigned bits = pk->bits;
    const uint64_t mask = (UINT64_C(1) << bits) - 1;
    uint32_t *last = tsr_xcalloc((size_t)n_vals + 1, sizeof *last);
    uint64_t *off = tsr_xcalloc((size_t)n_vals + 2, sizeof *off);
    uint32_t *cnt = tsr_xcalloc((size_t)n_vals + 1, sizeof *cnt);
    /* Pass 1: sizes per value; give up as soon as runs are too short. */
    size_t runs = 0;
    for (size_t i = 0; i < n;) {
        uint32_t v = tsr_engine__unpack(words, bits, mask, i);
        size_t j = i + 1;
        while (j < n && tsr_engine__unpack(words, bits, mask, j) == v)
            j++;
        if (v < n_vals) {
            off[v + 1] += varint_len(i - last[v]) + varint_len(j - i);
            last[v] = (uint32_t)j;
            cnt[v] += (uint32_t)(j - i);
        }
        runs++;
        if ((runs & 4095) == 0 && runs > j / 2 + 1024) {
            free(last);
            free(off);
            free(cnt);
            return NULL;
        }
        i = j;
    }
    if (runs > n / 2 + 1024) {
        free(last);
        free(off);
        free(cnt);
        return NULL;
    }
    off[0] = 0;
    for (uint32_t v = 0; v < n_vals; v++)
        off[v + 1] += off[v];
    size_t total = off[n_vals];
    uint8_t *bytes = tsr_xmalloc(total + 16);
    /* Pass 2: fill, with last[] restarted and a cursor per value. */
    memset(last, 0, ((size_t)n_vals + 1) * sizeof *last);
    uint64_t *cur = tsr_xmalloc(((size_t)n_vals + 1) * sizeof *cur);
    memcpy(cur, off, (size_t)n_vals * sizeof *cur);
    for (size_t i = 0; i < n;) {
        uint32_t v = tsr_engine__unpack(words, bits, mask, i);
        size_t j = i + 1;
        while (j < n && tsr_engine__unpack(words, bits, mask, j) == v)
            j++;
        if (v < n_vals) {
            uint8_t *p = bytes + cur[v];
            p = varint_put(p, i - last[v]);
            p = varint_put(p, j - i);
            cur[v] = (uint64_t)(p - bytes);
            last[v] = (uint32_t)j;
        }
        i = j;
    }
    free(cur);
    free(last);
    tsr_engine__runidx_t *ix = tsr_xcalloc(1, sizeof *ix);
    ix->words = pk->words;
    ix->n = n;
    ix->n_vals = n_vals;
    ix->off = off;
    ix->cnt = cnt;
    ix->bytes = bytes;
    ix->n_bytes = total;
    return ix;
}

static void index_free(tsr_engine_model_t *m) {
    if (m->idx == NULL)
        return;
    for (size_t t = 0; t < m->n_idx; t++) {
        if (m->idx[t] == NULL)
            continue;
        for (uint32_t c = 0; c < m->idx_cols[t]; c++)
            runidx_free(m->idx[t][c]);
        free(m->idx[t]);
    }
    free(m->idx);
    free(m->idx_cols);
    m->idx = NULL;
    m->idx_cols = NULL;
    m->n_idx = 0;
}

static bool is_key(const tsr_engine_model_t *m, size_t t, uint32_t f) {
    for (size_t u = 0; u < m->n_tables; u++) {
        if (u == t)
            continue;
        for (uint32_t c = 0; c < m->tables[u].n_cols; c++) {
            if (m->tables[u].cols[c].field == f)
                return true;
        }
    }
    return false;
}

typedef struct {
    const tsr_engine__packed_t *pk;
    uint32_t n_vals;
    tsr_engine__runidx_t **out;
} build_job_t;

static void *build_run(void *arg) {
    build_job_t *j = arg;
    *j->out = runidx_build(j->pk, j->n_vals);
    return NULL;
}

void tsr_engine__index_drop(tsr_engine_model_t *m) {
    index_free(m);
    atomic_store_explicit(&m->idx_state, 2, memory_order_release);
}

void tsr_engine__index_lazy(tsr_engine_model_t *m, size_t min_rows) {
    index_free(m);
    m->idx_min_rows = min_rows;
    atomic_store_explicit(&m->idx_state, 0, memory_order_release);
}

static void index_build(tsr_engine_model_t *m, size_t min_rows) {
    index_free(m);
    if (m->n_tables == 0)
        return;
    m->idx = tsr_xcalloc(m->n_tables, sizeof *m->idx);
    m->idx_cols = tsr_xcalloc(m->n_tables, sizeof *m->idx_cols);
    m->n_idx = m->n_tables;
    build_job_t *jobs = NULL;
    size_t n_jobs = 0;
    for (size_t t = 0; t < m->n_tables; t++) {
        const tsr_engine__table_t *tb = &m->tables[t];
        if (tb->n_rows < min_rows || tb->n_cols == 0)
            continue;
        m->idx[t] = tsr_xcalloc(tb->n_cols, sizeof *m->idx[t]);
        m->idx_cols[t] = tb->n_cols;
        for (uint32_t c = 0; c < tb->n_cols; c++) {
            uint32_t f = tb->cols[c].field;
            if (!is_key(m, t, f) || tb->cols[c].data.n != tb->n_rows)
                continue;
            jobs = tsr_xrealloc(jobs, (n_jobs + 1) * sizeof *jobs);
            jobs[n_jobs++] =
                (build_job_t){&tb->cols[c].data, m->fields[f].n_syms + 1, &m->idx[t][c]};
        }
    }
    /* Two threads: columns split between them. */
    size_t i = 0;
    while (i < n_jobs) {
        pthread_t th;
        bool two = i + 1 < n_jobs && pthread_create(&th, NULL, build_run, &jobs[i + 1]) == 0;
        build_run(&jobs[i]);
        if (two) {
            pthread_join(th, NULL);
            i += 2;
        } else {
            i += 1;
        }
    }
    free(jobs);
}

void tsr_engine__index_build(tsr_engine_model_t *m, size_t min_rows) {
    index_build(m, min_rows);
    atomic_store_explicit(&m->idx_state, 1, memory_order_release);
}

/* Builds on first use are serialized (rare: once per model). */
static pthread_mutex_t build_mu = PTHREAD_MUTEX_INITIALIZER;

const tsr_engine__runidx_t *tsr_engine__index_get(const tsr_engine_model_t *cm, size_t t,
                                                  uint32_t c) {
    int state = atomic_load_explicit(&cm->idx_state, memory_order_acquire);
    if (state == 0) {
        /* The model is read-only for its users; its indexes are a cache built once. */
        tsr_engine_model_t *w = (tsr_engine_model_t *)cm;
        pthread_mutex_lock(&build_mu);
        state = atomic_load_explicit(&w->idx_state, memory_order_acquire);
        if (state == 0) {
            index_build(w, w->idx_min_rows);
            atomic_store_explicit(&w->idx_state, 1, memory_order_release);
            state = 1;
        }
        pthread_mutex_unlock(&build_mu);
    }
    if (state != 1)
        return NULL;
    const tsr_engine_model_t *m = cm;
    if (m->idx == NULL || t >= m->n_idx || t >= m->n_tables || m->idx[t] == NULL ||
        c >= m->idx_cols[t] || c >= m->tables[t].n_cols)
        return NULL;
    const tsr_engine__runidx_t *ix = m->idx[t][c];
    const tsr_engine__packed_t *pk = &m->tables[t].cols[c].data;
    if (ix == NULL || ix->words != pk->words || ix->n != pk->n)
        return NULL;
    return ix;
}

uint64_t tsr_engine__index_count(const tsr_engine__runidx_t *ix, const uint64_t *syms,
                                 size_t n_syms) {
    uint64_t total = 0;
    for (size_t w = 0; w * 64 < n_syms; w++) {
        uint64_t x = syms[w];
        while (x != 0) {
            size_t v = w * 64 + (unsigned)__builtin_ctzll(x) + 1;
            x &= x - 1;
            if (v < ix->n_vals)
                total += ix->cnt[v];
        }
    }
    return total;
}

static inline void set_range(uint64_t *out, size_t r, size_t len) {
    size_t end = r + len;
    size_t w0 = r >> 6, w1 = (end - 1) >> 6;
    uint64_t lo = ~UINT64_C(0) << (r & 63);
    uint64_t hi = ~UINT64_C(0) >> (63 - ((end - 1) & 63));
    if (w0 == w1) {
        out[w0] |= lo & hi;
        return;
    }
    out[w0] |= lo;
    for (size_t w = w0 + 1; w < w1; w++)
        out[w] = ~UINT64_C(0);
    out[w1] |= hi;
}

/* Rows of the symbols in words [w0, w1) of syms. */
static void fill_words(const tsr_engine__runidx_t *ix, const uint64_t *syms, size_t w0, size_t w1,
                       uint64_t *out) {
    for (size_t w = w0; w < w1; w++) {
        uint64_t x = syms[w];
        while (x != 0) {
            size_t v = w * 64 + (unsigned)__builtin_ctzll(x) + 1;
            x &= x - 1;
            if (v >= ix->n_vals)
                continue;
            const uint8_t *p = ix->bytes + ix->off[v], *e = ix->bytes + ix->off[v + 1];
            uint64_t r = 0;
            while (p < e) {
                uint64_t gap, len;
                p = tsr_engine__varint_get(p, &gap);
                p = tsr_engine__varint_get(p, &len);
                r += gap;
                set_range(out, (size_t)r, (size_t)len);
                r += len;
            }
        }
    }
}

typedef struct {
    const tsr_engine__runidx_t *ix;
    const uint64_t *syms;
    size_t w0, w1;
    uint64_t *out;
} fill_job_t;

static void *fill_run(void *arg) {
    fill_job_t *j = arg;
    fill_words(j->ix, j->syms, j->w0, j->w1, j->out);
    return NULL;
}

/* Below this many rows one thread fills (a second bitmap and the merge cost more). */
#define FILL_PAR_MIN_ROWS 65536

void tsr_engine__index_fill(const tsr_engine__runidx_t *ix, const uint64_t *syms, size_t n_syms,
                            uint64_t *out) {
    size_t nsw = (n_syms + 63) / 64;
    uint64_t total = tsr_engine__index_count(ix, syms, n_syms);
    if (total < FILL_PAR_MIN_ROWS || nsw < 2) {
        fill_words(ix, syms, 0, nsw, out);
        return;
    }
    /* Two threads on two halves of the symbols (by rows), the second into its own bitmap. */
    size_t mid = 0;
    uint64_t acc = 0;
    for (; mid < nsw && acc * 2 < total; mid++) {
        uint64_t x = syms[mid];
        while (x != 0) {
            size_t v = mid * 64 + (unsigned)__builtin_ctzll(x) + 1;
            x &= x - 1;
            if (v < ix->n_vals)
                acc += ix->cnt[v];
        }
    }
    size_t nw = ix->n / 64 + 1;
    fill_job_t j = {ix, syms, mid, nsw, tsr_xcalloc(nw, sizeof(uint64_t))};
    pthread_t th;
    if (pthread_create(&th, NULL, fill_run, &j) != 0) {
        fill_words(ix, syms, 0, nsw, out);
        free(j.out);
        return;
    }
    fill_words(ix, syms, 0, mid, out);
    pthread_join(th, NULL);
    for (size_t w = 0; w < nw; w++)
        out[w] |= j.out[w];
    free(j.out);
}

size_t tsr_engine__index_bytes(const tsr_engine_model_t *m) {
    size_t total = 0;
    for (size_t t = 0; t < m->n_idx && t < m->n_tables; t++) {
        if (m->idx[t] == NULL)
            continue;
        for (uint32_t c = 0; c < m->idx_cols[t]; c++) {
            const tsr_engine__runidx_t *ix = m->idx[t][c];
            if (ix != NULL)
                total += ix->n_bytes + ((size_t)ix->n_vals + 1) * 12;
        }
    }
    return total;
}
