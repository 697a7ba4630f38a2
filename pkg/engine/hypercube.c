/*
 * pkg/engine: hypercubes (dimensions x measures) over the possible rows of a state.
 * Measures are expressions over aggregations; all aggregations of a cube run over one
 * table (the one holding their fields). Each dimension reaches that table's rows through a
 * composed symbol map (fact key symbol -> dimension symbol), built once per cube: no hashing
 * while scanning. Cells are dense (product of dimension cardinalities, capped); two threads
 * scan halves of the rows with private accumulators that are then merged.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine_int.h"

#define CUBE_MAX_CELLS (1u << 22)
#define CUBE_MAX_AGGS 64
#define CUBE_MAX_DISTINCT_BITS (UINT64_C(1) << 31) /* cells x symbols for Count(DISTINCT) */
#define CUBE_PARALLEL_MIN_ROWS 200000

static inline bool bit_get(const uint64_t *b, size_t i) {
    return (b[i >> 6] >> (i & 63)) & 1;
}
static inline size_t words_for(size_t n) {
    return (n + 63) / 64 + 1;
}

typedef enum {
    AGG_GENERIC,  /* evaluate the argument per row */
    AGG_COUNT,    /* Count(field): non-null cells */
    AGG_DISTINCT, /* Count(DISTINCT field) */
    AGG_NUM,      /* f(field) over the field's numbers (double) */
    AGG_PROD,     /* f(a * b) over two fields' numbers (double) */
    AGG_NUM_I,    /* Sum/Avg(field), every number fixed-point: exact int64 */
    AGG_PROD_I    /* Sum/Avg(a * b), both fixed-point: exact int64 */
} agg_kind_t;

#define I64_NONE INT64_MIN

typedef struct {
    tsr_engine__func_t func;
    bool distinct;
    const tsr_engine__expr_t *arg; /* borrowed from the measure tree */
    const tsr_engine__set_t *set;  /* borrowed; NULL: the state's selection */
    tsr_engine_state_t *set_state; /* owned: the rows of set */
    agg_kind_t kind;
    int32_t a_col, b_col;
    const double *a_num, *b_num;  /* per packed value (0 = null): number or NaN */
    const int64_t *a_int, *b_int; /* per packed value: scaled integer or I64_NONE */
    double scale;                 /* AGG_*_I: value = integer / scale */
    size_t distinct_syms;         /* symbols of the Count(DISTINCT) field */
} agg_t;

typedef struct {
    double *sum, *comp; /* Neumaier sum and its compensation, per cell */
    int64_t *isum;      /* exact sums (AGG_*_I) */
    double *min, *max;
    uint64_t *count;    /* non-null contributions per cell */
    uint64_t *distinct; /* cells x distinct_syms bits */
} acc_t;

struct tsr_engine_hypercube {
    size_t n_dims, n_measures;
    size_t total;     /* rows before paging */
    size_t n_rows;    /* rows in the page */
    uint32_t *dsyms;  /* n_rows x n_dims dimension symbols */
    double *mvals;    /* n_rows x n_measures; NaN = null */
    double *totals;   /* n_measures grand totals; NaN = null */
    uint32_t *dfield; /* field per dimension */
    const tsr_engine_model_t *m;
};

/* Dimensions reaching the agg table through the same column form a group; a group's cell
 * component is either the key symbol itself (key mode) or the mixed-radix combination of
 * its dimensions' symbols, whichever space is smaller. */
typedef struct {
    int32_t col;   /* agg-table column */
    size_t card;   /* component values */
    size_t stride; /* cells per component step */
    bool key_mode; /* component = key symbol */
    uint32_t *map; /* packed key value -> component * stride, UINT32_MAX: no cell; owned */
} group_t;

typedef struct {
    const tsr_engine_model_t *m;
    const tsr_engine__table_t *tb;
    const uint64_t *rows; /* possible rows, NULL: all */
    group_t *groups;
    size_t n_groups;
    agg_t *aggs;
    size_t n_aggs;
    size_t n_cells;
    const tsr_engine__set_t *pass; /* aggregations of this pass: those with this set */
    /* Fused kernel inputs: cell maps as uint16 (FUSED_NONE: no cell), numbers as int32
     * (FUSED_NULL: null), small enough to stay in cache. Owned by the compute call. */
    uint16_t *fmap[2];
    int32_t *fa, *fb;
} scan_t;

#define FUSED_NONE UINT16_MAX
#define FUSED_NULL INT32_MIN

typedef struct {
    scan_t *sc;
    size_t r0, r1;
    acc_t *acc;       /* n_aggs */
    uint32_t *rowcnt; /* rows per cell (suppression) */
    /* Fused kernel (one Sum of a fixed-point product, few cells): LANES copies of each
     * cell's sum and count, so that consecutive rows of one cell do not wait on each
     * other's store; folded into acc/rowcnt at the end. */
    int64_t *lane_sum;
    uint32_t *lane_cnt;
    size_t fused_agg;
} part_t;

#define LANES 4
#define FUSED_MAX_CELLS 8192

static void acc_init(acc_t *a, const agg_t *g, size_t n_cells) {
    memset(a, 0, sizeof *a);
    /* One extra cell at n_cells holds the grand total. */
    size_t n = n_cells + 1;
    if (g->kind == AGG_NUM_I || g->kind == AGG_PROD_I) {
        a->isum = tsr_xcalloc(n, sizeof *a->isum);
    } else if (g->kind != AGG_DISTINCT && g->kind != AGG_COUNT) {
        a->sum = tsr_xcalloc(n, sizeof *a->sum);
        a->comp = tsr_xcalloc(n, sizeof *a->comp);
    }
    a->count = tsr_xcalloc(n, sizeof *a->count);
    if (g->func == TSR_ENGINE__F_MIN || g->func == TSR_ENGINE__F_MAX ||
        g->func == TSR_ENGINE__F_ONLY) {
        a->min = tsr_xmalloc(n * sizeof *a->min);
        a->max = tsr_xmalloc(n * sizeof *a->max);
        for (size_t c = 0; c < n; c++) {
            a->min[c] = INFINITY;
            a->max[c] = -INFINITY;
        }
    }
    if (g->kind == AGG_DISTINCT)
        a->distinct = tsr_xcalloc(words_for(n * g->distinct_syms), sizeof *a->distinct);
}

static void acc_cleanup(acc_t *a) {
    free(a->sum);
    free(a->comp);
    free(a->isum);
    free(a->count);
    free(a->min);
    free(a->max);
    free(a->distinct);
}

static inline void neumaier(double *sum, double *comp, double x) {
    double t = *sum + x;
    if (fabs(*sum) >= fabs(x))
        *comp += (*sum - t) + x;
    else
        *comp += (x - t) + *sum;
    *sum = t;
}

/* Row callback for the generic (slow) aggregation argument path. */
typedef struct {
    const tsr_engine_model_t *m;
    const tsr_engine__table_t *tb;
    size_t row;
} rowctx_t;

static tsr_engine__val_t row_field(void *ctx, const tsr_engine__expr_t *e) {
    rowctx_t *rc = ctx;
    uint32_t v =
        e->slot == UINT32_MAX ? 0 : tsr_engine__packed_get(&rc->tb->cols[e->slot].data, rc->row);
    if (v == 0)
        return (tsr_engine__val_t){.kind = TSR_ENGINE__V_NULL};
    const tsr_engine__field_t *f = &rc->m->fields[rc->tb->cols[e->slot].field];
    const tsr_engine__sym_t *y = &f->syms[v - 1];
    return (tsr_engine__val_t){.kind = isnan(y->num) ? TSR_ENGINE__V_TEXT : TSR_ENGINE__V_DUAL,
                               .num = y->num,
                               .text = f->pool + tsr_engine__sym_off(y),
                               .len = tsr_engine__sym_len(y)};
}

static inline void add_num(acc_t *a, size_t cell, double x) {
    a->count[cell]++;
    neumaier(&a->sum[cell], &a->comp[cell], x);
    if (a->min != NULL) {
        if (x < a->min[cell])
            a->min[cell] = x;
        if (x > a->max[cell])
            a->max[cell] = x;
    }
}

/* Aggregate one block of rows (absolute indexes idx[0..n)) whose cells are known. */
static void agg_block(const scan_t *sc, const agg_t *g, acc_t *a, const uint32_t *idx,
                      const uint32_t *cells, size_t n, size_t base, tsr_engine__eval_t **ev,
                      rowctx_t *rc) {
    const tsr_engine__table_t *tb = sc->tb;
    const tsr_engine__packed_t *pa = g->a_col >= 0 ? &tb->cols[g->a_col].data : NULL;
    const tsr_engine__packed_t *pb = g->b_col >= 0 ? &tb->cols[g->b_col].data : NULL;
    switch (g->kind) {
    case AGG_PROD_I: {
        int64_t *isum = a->isum;
        uint64_t *cnt = a->count;
        const int64_t *ai = g->a_int, *bi = g->b_int;
        if (g->func == TSR_ENGINE__F_SUM && n > 0 && idx[n - 1] - idx[0] == n - 1) {
            /* Consecutive rows: no index indirection; Sum needs no counts (a cell with rows
             * but no numbers sums to 0 either way). */
            base += idx[0];
            const uint64_t *wa = pa->words, *wb = pb->words;
            const unsigned ba = pa->bits, bb = pb->bits;
            const uint64_t ma = (UINT64_C(1) << ba) - 1, mb = (UINT64_C(1) << bb) - 1;
            for (size_t k = 0; k < n; k++) {
                int64_t x = ai[tsr_engine__unpack(wa, ba, ma, base + k)];
                int64_t y = bi[tsr_engine__unpack(wb, bb, mb, base + k)];
                if (x != I64_NONE && y != I64_NONE)
                    isum[cells[k]] += x * y;
            }
            return;
        }
        for (size_t k = 0; k < n; k++) {
            size_t r = base + idx[k];
            int64_t x = ai[tsr_engine__packed_get(pa, r)];
            int64_t y = bi[tsr_engine__packed_get(pb, r)];
            if (x == I64_NONE || y == I64_NONE)
                continue;
            isum[cells[k]] += x * y;
            cnt[cells[k]]++;
        }
        return;
    }
    case AGG_NUM_I:
        for (size_t k = 0; k < n; k++) {
            int64_t x = g->a_int[tsr_engine__packed_get(pa, base + idx[k])];
            if (x == I64_NONE)
                continue;
            a->isum[cells[k]] += x;
            a->count[cells[k]]++;
        }
        return;
    case AGG_COUNT:
        for (size_t k = 0; k < n; k++)
            a->count[cells[k]] += tsr_engine__packed_get(pa, base + idx[k]) != 0;
        return;
    case AGG_DISTINCT:
        for (size_t k = 0; k < n; k++) {
            uint32_t v = tsr_engine__packed_get(pa, base + idx[k]);
            if (v != 0) {
                size_t bit = (size_t)cells[k] * g->distinct_syms + (v - 1);
                a->distinct[bit >> 6] |= UINT64_C(1) << (bit & 63);
            }
        }
        return;
    case AGG_NUM:
        for (size_t k = 0; k < n; k++) {
            double x = g->a_num[tsr_engine__packed_get(pa, base + idx[k])];
            if (!isnan(x))
                add_num(a, cells[k], x);
        }
        return;
    case AGG_PROD:
        for (size_t k = 0; k < n; k++) {
            size_t r = base + idx[k];
            double x =
                g->a_num[tsr_engine__packed_get(pa, r)] * g->b_num[tsr_engine__packed_get(pb, r)];
            if (!isnan(x))
                add_num(a, cells[k], x);
        }
        return;
    case AGG_GENERIC:
        if (*ev == NULL) {
            *ev = tsr_xcalloc(1, sizeof **ev);
            (*ev)->field_cb = row_field;
            (*ev)->field_ctx = rc;
        }
        for (size_t k = 0; k < n; k++) {
            rc->row = base + idx[k];
            (*ev)->scratch_len = 0;
            tsr_engine__val_t v = tsr_engine__expr_eval(*ev, g->arg);
            if (g->func == TSR_ENGINE__F_COUNT) {
                a->count[cells[k]] += v.kind != TSR_ENGINE__V_NULL;
                continue;
            }
            double x = v.kind == TSR_ENGINE__V_NUM || v.kind == TSR_ENGINE__V_DUAL ? v.num : NAN;
            if (!isnan(x))
                add_num(a, cells[k], x);
        }
        return;
    }
}

#define SCAN_BATCH 256 /* rows per batch (sparse selections gather across words) */

/* The fused kernel: cells, row counts and one Sum(a * b) in a single pass. */
static void scan_batch_fused(part_t *p, const uint32_t *idx, size_t k, size_t base) {
    scan_t *sc = p->sc;
    const tsr_engine__table_t *tb = sc->tb;
    const agg_t *g = &sc->aggs[p->fused_agg];
    const tsr_engine__packed_t *pa = &tb->cols[g->a_col].data, *pb = &tb->cols[g->b_col].data;
    const tsr_engine__packed_t *p0 = &tb->cols[sc->groups[0].col].data;
    const tsr_engine__packed_t *p1 = sc->n_groups > 1 ? &tb->cols[sc->groups[1].col].data : p0;
    const uint16_t *m0 = sc->fmap[0], *m1 = sc->fmap[1];
    const uint64_t *w0 = p0->words, *w1 = p1->words, *wa = pa->words, *wb = pb->words;
    const unsigned b0 = p0->bits, b1 = p1->bits, ba = pa->bits, bb = pb->bits;
    const uint64_t k0 = (UINT64_C(1) << b0) - 1, k1 = (UINT64_C(1) << b1) - 1;
    const uint64_t ka = (UINT64_C(1) << ba) - 1, kb = (UINT64_C(1) << bb) - 1;
    const int32_t *ai = sc->fa, *bi = sc->fb;
    int64_t *ls = p->lane_sum;
    uint32_t *lc = p->lane_cnt;
#define FUSED_ROW(r, i)                                                                            \
    do {                                                                                           \
        uint32_t c = m0[tsr_engine__unpack(w0, b0, k0, (r))];                                      \
        if (m1 != NULL) {                                                                          \
            uint32_t c1 = m1[tsr_engine__unpack(w1, b1, k1, (r))];                                 \
            c = c == FUSED_NONE || c1 == FUSED_NONE ? FUSED_NONE : c + c1;                         \
        }                                                                                          \
        if (c == FUSED_NONE)                                                                       \
            continue;                                                                              \
        size_t slot = (size_t)c * LANES + ((i) & (LANES - 1));                                     \
        lc[slot]++;                                                                                \
        int32_t x = ai[tsr_engine__unpack(wa, ba, ka, (r))];                                       \
        int32_t y = bi[tsr_engine__unpack(wb, bb, kb, (r))];                                       \
        if (x != FUSED_NULL && y != FUSED_NULL)                                                    \
            ls[slot] += (int64_t)x * y;                                                            \
    } while (0)
    if (k > 0 && idx[k - 1] - idx[0] == k - 1) {
        /* Consecutive rows (no selection): no index indirection. */
        const size_t r0 = base + idx[0];
        if (m1 == NULL) {
            for (size_t i = 0; i < k; i++) {
                const size_t r = r0 + i;
                uint32_t c = m0[tsr_engine__unpack(w0, b0, k0, r)];
                if (c == FUSED_NONE)
                    continue;
                size_t slot = (size_t)c * LANES + (i & (LANES - 1));
                lc[slot]++;
                int32_t x = ai[tsr_engine__unpack(wa, ba, ka, r)];
                int32_t y = bi[tsr_engine__unpack(wb, bb, kb, r)];
                if (x != FUSED_NULL && y != FUSED_NULL)
                    ls[slot] += (int64_t)x * y;
            }
            return;
        }
        for (size_t i = 0; i < k; i++)
            FUSED_ROW(r0 + i, i);
        return;
    }
    for (size_t i = 0; i < k; i++)
        FUSED_ROW(base + idx[i], i);
#undef FUSED_ROW
}

/* Cells, row counts and aggregations of a batch of rows base + idx[0..k). */
static void scan_batch(part_t *p, uint32_t *idx, uint32_t *cells, size_t k, size_t base,
                       tsr_engine__eval_t **ev, rowctx_t *rc) {
    scan_t *sc = p->sc;
    const tsr_engine__table_t *tb = sc->tb;
    /* Rows whose dimensions have no value drop out. */
    size_t m = 0;
    if (sc->n_groups == 1) {
        const group_t *g = &sc->groups[0];
        const tsr_engine__packed_t *pk = &tb->cols[g->col].data;
        const uint64_t *words = pk->words;
        const unsigned bits = pk->bits;
        const uint64_t mask = (UINT64_C(1) << bits) - 1;
        const uint32_t *map = g->map;
        for (size_t i = 0; i < k; i++) {
            uint32_t c = map[tsr_engine__unpack(words, bits, mask, base + idx[i])];
            idx[m] = idx[i];
            cells[m] = c;
            m += c != UINT32_MAX;
        }
    } else {
        for (size_t i = 0; i < k; i++) {
            uint32_t c = 0;
            bool ok = true;
            for (size_t d = 0; d < sc->n_groups && ok; d++) {
                const group_t *g = &sc->groups[d];
                uint32_t o = g->map[tsr_engine__packed_get(&tb->cols[g->col].data, base + idx[i])];
                ok = o != UINT32_MAX;
                c += o;
            }
            idx[m] = idx[i];
            cells[m] = c;
            m += ok;
        }
    }
    /* Dimension values come from the selection: set passes add no rows. */
    if (sc->pass == NULL) {
        for (size_t i = 0; i < m; i++)
            p->rowcnt[cells[i]]++;
    }
    for (size_t a = 0; a < sc->n_aggs; a++) {
        if (sc->aggs[a].set == sc->pass)
            agg_block(sc, &sc->aggs[a], &p->acc[a], idx, cells, m, base, ev, rc);
    }
}

static void *scan_part(void *arg) {
    part_t *p = arg;
    scan_t *sc = p->sc;
    const tsr_engine__table_t *tb = sc->tb;
    size_t n = tb->n_rows;
    tsr_engine__eval_t *ev = NULL;
    rowctx_t rc = {.m = sc->m, .tb = tb};
    uint32_t idx[SCAN_BATCH], cells[SCAN_BATCH];
    size_t k = 0, base = 0;
    for (size_t w = p->r0 / 64; w * 64 < p->r1; w++) {
        uint64_t cand = sc->rows != NULL ? sc->rows[w] : ~UINT64_C(0);
        if (w * 64 + 64 > n)
            cand &= (UINT64_C(1) << (n - w * 64)) - 1;
        if (cand == 0)
            continue;
        if (k > SCAN_BATCH - 64) {
            if (p->lane_sum != NULL)
                scan_batch_fused(p, idx, k, base);
            else
                scan_batch(p, idx, cells, k, base, &ev, &rc);
            k = 0;
        }
        if (k == 0)
            base = w * 64;
        uint32_t off = (uint32_t)(w * 64 - base);
        if (cand == ~UINT64_C(0)) {
            for (uint32_t i = 0; i < 64; i++)
                idx[k++] = off + i;
        } else {
            while (cand != 0) {
                idx[k++] = off + (uint32_t)__builtin_ctzll(cand);
                cand &= cand - 1;
            }
        }
    }
    if (k > 0 && p->lane_sum != NULL)
        scan_batch_fused(p, idx, k, base);
    else if (k > 0)
        scan_batch(p, idx, cells, k, base, &ev, &rc);
    if (p->lane_sum != NULL) {
        acc_t *a = &p->acc[p->fused_agg];
        for (size_t c = 0; c < sc->n_cells; c++) {
            for (size_t l = 0; l < LANES; l++) {
                p->rowcnt[c] += p->lane_cnt[c * LANES + l];
                a->isum[c] += p->lane_sum[c * LANES + l];
            }
        }
    }
    free(ev);
    return NULL;
}

/* Collect aggregation calls of a measure tree into aggs (slot = index). */
static tsr_err_t collect_aggs(tsr_engine__expr_t *e, agg_t *aggs, size_t *n, bool inside,
                              tsr_error_t *err) {
    if (e->kind == TSR_ENGINE__E_CALL && e->func >= TSR_ENGINE__F_SUM) {
        if (inside)
            return tsr_error_set(err, TSR_EUNSUPPORTED, "nested aggregation");
        if (*n >= CUBE_MAX_AGGS)
            return tsr_error_set(err, TSR_ETOOBIG, "too many aggregations");
        e->slot = (uint32_t)*n;
        aggs[*n] = (agg_t){.func = e->func,
                           .set = e->set,
                           .distinct = e->distinct,
                           .arg = e->args[0],
                           .a_col = -1,
                           .b_col = -1,
                           .scale = 1};
        (*n)++;
        return collect_aggs(e->args[0], aggs, n, true, err);
    }
    if (e->kind == TSR_ENGINE__E_FIELD && !inside)
        return tsr_error_set(err, TSR_EUNSUPPORTED, "field %s outside an aggregation", e->name);
    for (size_t i = 0; i < e->n_args; i++) {
        if (collect_aggs(e->args[i], aggs, n, inside, err) != TSR_OK)
            return err ? err->code : TSR_EINVAL;
    }
    return TSR_OK;
}

static int32_t col_in(const tsr_engine__table_t *tb, uint32_t f) {
    for (uint32_t c = 0; c < tb->n_cols; c++) {
        if (tb->cols[c].field == f)
            return (int32_t)c;
    }
    return -1;
}

static bool has_field(const tsr_engine__expr_t *e) {
    if (e->kind == TSR_ENGINE__E_FIELD)
        return true;
    for (size_t i = 0; i < e->n_args; i++) {
        if (has_field(e->args[i]))
            return true;
    }
    return false;
}

/* Does every field referenced under e exist in table t? Binds slots when bind. */
static bool fields_in(const tsr_engine_model_t *m, size_t t, tsr_engine__expr_t *e, bool bind) {
    if (e->kind == TSR_ENGINE__E_FIELD) {
        size_t f;
        if (tsr_engine_model_field_find(m, e->name, &f) != TSR_OK)
            return false;
        int32_t c = col_in(&m->tables[t], (uint32_t)f);
        if (c < 0)
            return false;
        if (bind)
            e->slot = (uint32_t)c;
    }
    for (size_t i = 0; i < e->n_args; i++) {
        if (!fields_in(m, t, e->args[i], bind))
            return false;
    }
    return true;
}

/* Map from symbols (+1 coded, index 0 = null) of key field `kf` to symbols of field d,
 * following the table graph away from table `from`. Returns owned array of
 * n_syms(kf)+1 entries (UINT32_MAX: no value), or NULL when d is not a function of kf. */
static uint32_t *compose_map(const tsr_engine_model_t *m, size_t from, uint32_t kf, uint32_t d,
                             int depth, tsr_error_t *err) {
    if (depth > 16)
        return NULL;
    size_t nk = m->fields[kf].n_syms + 1;
    for (size_t t = 0; t < m->n_tables; t++) {
        if (t == from)
            continue;
        const tsr_engine__table_t *tb = &m->tables[t];
        int32_t ck = col_in(tb, kf);
        if (ck < 0)
            continue;
        /* Within table t: key symbol -> next symbol (d itself, or a further key). */
        int32_t cd = col_in(tb, d);
        uint32_t *next = NULL;
        if (cd < 0) {
            /* Look for a key of t leading on towards d. */
            for (uint32_t c = 0; c < tb->n_cols && next == NULL; c++) {
                uint32_t f2 = tb->cols[c].field;
                if (f2 == kf)
                    continue;
                bool shared = false;
                for (size_t u = 0; u < m->n_tables && !shared; u++)
                    shared = u != t && col_in(&m->tables[u], f2) >= 0;
                if (!shared)
                    continue;
                next = compose_map(m, t, f2, d, depth + 1, err);
                if (next != NULL)
                    cd = (int32_t)c;
            }
            if (next == NULL)
                continue;
        }
        uint32_t *map = tsr_xmalloc(nk * sizeof *map);
        for (size_t i = 0; i < nk; i++)
            map[i] = UINT32_MAX;
        bool functional = true;
        for (size_t r = 0; r < tb->n_rows && functional; r++) {
            uint32_t k = tsr_engine__packed_get(&tb->cols[ck].data, r);
            uint32_t v = tsr_engine__packed_get(&tb->cols[cd].data, r);
            uint32_t out = next != NULL ? next[v] : (v == 0 ? UINT32_MAX : v - 1);
            if (k == 0 || out == UINT32_MAX)
                continue;
            if (map[k] != UINT32_MAX && map[k] != out)
                functional = false;
            map[k] = out;
        }
        free(next);
        if (!functional) {
            free(map);
            tsr_error_set(err, TSR_EUNSUPPORTED, "%s is not a function of %s", m->fields[d].name,
                          m->fields[kf].name);
            return NULL;
        }
        return map;
    }
    return NULL;
}

typedef struct {
    const tsr_engine_hypercube_def_t *def;
    const tsr_engine_model_t *m;
    const uint32_t *dfield;
    const uint32_t *dsym; /* per row x dim */
    const double *mval;   /* per row x measure */
    size_t n_dims, n_measures;
} sortctx_t;

static _Thread_local const sortctx_t *sort_ctx;

static int cmp_text(const tsr_engine_model_t *m, uint32_t f, uint32_t a, uint32_t b) {
    const tsr_engine__field_t *fd = &m->fields[f];
    const tsr_engine__sym_t *x = &fd->syms[a], *y = &fd->syms[b];
    size_t l = tsr_engine__sym_len(x) < tsr_engine__sym_len(y) ? tsr_engine__sym_len(x)
                                                               : tsr_engine__sym_len(y);
    int c = memcmp(fd->pool + tsr_engine__sym_off(x), fd->pool + tsr_engine__sym_off(y), l);
    if (c != 0)
        return c < 0 ? -1 : 1;
    return tsr_engine__sym_len(x) < tsr_engine__sym_len(y)
               ? -1
               : tsr_engine__sym_len(x) > tsr_engine__sym_len(y);
}

static int row_cmp(const void *pa, const void *pb) {
    const sortctx_t *sc = sort_ctx;
    size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
    const tsr_engine_hypercube_def_t *def = sc->def;
    size_t n_keys = def->n_sort ? def->n_sort : sc->n_dims;
    for (size_t k = 0; k < n_keys; k++) {
        tsr_engine_sort_t s =
            def->n_sort ? def->sort[k] : (tsr_engine_sort_t){k, TSR_ENGINE_SORT_DEFAULT, false};
        int c = 0;
        if (s.column < sc->n_dims) {
            uint32_t f = sc->dfield[s.column];
            uint32_t x = sc->dsym[a * sc->n_dims + s.column],
                     y = sc->dsym[b * sc->n_dims + s.column];
            if (s.by == TSR_ENGINE_SORT_LOAD) {
                c = x < y ? -1 : x > y;
            } else if (s.by == TSR_ENGINE_SORT_TEXT) {
                c = cmp_text(sc->m, f, x, y);
            } else {
                uint32_t rx = tsr_engine__rank(&sc->m->fields[f], x),
                         ry = tsr_engine__rank(&sc->m->fields[f], y);
                c = rx < ry ? -1 : rx > ry;
            }
        } else if (s.column < sc->n_dims + sc->n_measures) {
            size_t j = s.column - sc->n_dims;
            double x = sc->mval[a * sc->n_measures + j], y = sc->mval[b * sc->n_measures + j];
            if (isnan(x) != isnan(y))
                return isnan(x) ? 1 : -1; /* nulls last either way */
            c = x < y ? -1 : x > y;
        }
        if (s.descending)
            c = -c;
        if (c != 0)
            return c;
    }
    return a < b ? -1 : a > b;
}

typedef struct {
    const agg_t *aggs;
    const acc_t *acc;
    size_t cell;
    size_t total_cell; /* n_cells: the grand total (TOTAL qualifier) */
} aggval_ctx_t;

static tsr_engine__val_t agg_value(void *ctx, const tsr_engine__expr_t *e) {
    aggval_ctx_t cc = *(const aggval_ctx_t *)ctx;
    const aggval_ctx_t *c = &cc;
    if (e->total)
        cc.cell = cc.total_cell;
    const agg_t *g = &c->aggs[e->slot];
    const acc_t *a = &c->acc[e->slot];
    double v = NAN;
    uint64_t cnt = a->count[c->cell];
    if (g->kind == AGG_DISTINCT) {
        uint64_t n = 0;
        size_t b0 = c->cell * g->distinct_syms, b1 = b0 + g->distinct_syms;
        for (size_t b = b0; b < b1;) {
            if ((b & 63) == 0 && b + 64 <= b1) {
                n += (uint64_t)__builtin_popcountll(a->distinct[b >> 6]);
                b += 64;
            } else {
                n += bit_get(a->distinct, b);
                b++;
            }
        }
        v = (double)n;
    } else if (g->func == TSR_ENGINE__F_COUNT) {
        v = (double)cnt;
    } else if (g->func == TSR_ENGINE__F_SUM && a->isum != NULL) {
        v = (double)a->isum[c->cell] / g->scale; /* exact; counts are not kept for Sum */
    } else if (cnt > 0) {
        double s = a->isum != NULL ? (double)a->isum[c->cell] / g->scale
                                   : a->sum[c->cell] + a->comp[c->cell];
        switch (g->func) {
        case TSR_ENGINE__F_SUM:
            v = s;
            break;
        case TSR_ENGINE__F_AVG:
            v = s / (double)cnt;
            break;
        case TSR_ENGINE__F_MIN:
            v = a->min[c->cell];
            break;
        case TSR_ENGINE__F_ONLY:
            v = a->min[c->cell] == a->max[c->cell] ? a->min[c->cell] : NAN;
            break;
        default:
            v = a->max[c->cell];
            break;
        }
    } else if (g->func == TSR_ENGINE__F_SUM) {
        v = 0; /* Sum over no numbers is 0 in Qlik */
    }
    if (isnan(v))
        return (tsr_engine__val_t){.kind = TSR_ENGINE__V_NULL};
    return (tsr_engine__val_t){.kind = TSR_ENGINE__V_NUM, .num = v};
}

/* Fixed-point form of a field's numbers: the smallest k in 0..4 with every number an
 * integer multiple of 10^-k; *max_abs is the largest |scaled| value. False when none. */
static bool fixed_point(const tsr_engine__field_t *f, int *k_out, uint64_t *max_abs) {
    static const double p10[] = {1, 10, 100, 1000, 10000};
    for (int k = 0; k <= 4; k++) {
        bool ok = true;
        uint64_t mx = 0;
        for (uint32_t s = 0; s < f->n_syms && ok; s++) {
            double x = f->syms[s].num;
            if (isnan(x))
                continue;
            double y = x * p10[k];
            if (fabs(y) > 4e15) {
                ok = false;
                break;
            }
            double r = nearbyint(y);
            ok = r / p10[k] == x;
            uint64_t a = (uint64_t)fabs(r);
            if (a > mx)
                mx = a;
        }
        if (ok) {
            *k_out = k;
            *max_abs = mx;
            return true;
        }
    }
    return false;
}

typedef struct {
    double *num[TSR_ENGINE_MAX_FIELDS_PER_TABLE];
    int64_t *ints[TSR_ENGINE_MAX_FIELDS_PER_TABLE];
    int scale_k[TSR_ENGINE_MAX_FIELDS_PER_TABLE];
    uint64_t max_abs[TSR_ENGINE_MAX_FIELDS_PER_TABLE];
    bool tried[TSR_ENGINE_MAX_FIELDS_PER_TABLE];
} numcache_t;

/* Per packed value (0 = null) numbers of column c. */
static const double *num_of(numcache_t *nc, const tsr_engine_model_t *m,
                            const tsr_engine__table_t *tb, uint32_t c) {
    if (nc->num[c] == NULL) {
        const tsr_engine__field_t *f = &m->fields[tb->cols[c].field];
        nc->num[c] = tsr_xmalloc(((size_t)f->n_syms + 1) * sizeof(double));
        nc->num[c][0] = NAN;
        for (uint32_t s = 0; s < f->n_syms; s++)
            nc->num[c][s + 1] = f->syms[s].num;
    }
    return nc->num[c];
}

/* Per packed value scaled integers of column c, or NULL when it is not fixed-point. */
static const int64_t *int_of(numcache_t *nc, const tsr_engine_model_t *m,
                             const tsr_engine__table_t *tb, uint32_t c) {
    if (!nc->tried[c]) {
        nc->tried[c] = true;
        const tsr_engine__field_t *f = &m->fields[tb->cols[c].field];
        int k;
        uint64_t mx;
        if (fixed_point(f, &k, &mx)) {
            static const double p10[] = {1, 10, 100, 1000, 10000};
            nc->ints[c] = tsr_xmalloc(((size_t)f->n_syms + 1) * sizeof(int64_t));
            nc->ints[c][0] = I64_NONE;
            for (uint32_t s = 0; s < f->n_syms; s++) {
                double x = f->syms[s].num;
                nc->ints[c][s + 1] = isnan(x) ? I64_NONE : (int64_t)nearbyint(x * p10[k]);
            }
            nc->scale_k[c] = k;
            nc->max_abs[c] = mx;
        }
    }
    return nc->ints[c];
}

/* Pick the fastest exact shape for aggregation g over table tb (fields bound to columns). */
static void agg_shape(agg_t *g, numcache_t *nc, const tsr_engine_model_t *m,
                      const tsr_engine__table_t *tb) {
    static const double p10[] = {1, 10, 100, 1000, 10000, 1e5, 1e6, 1e7, 1e8};
    const tsr_engine__expr_t *e = g->arg;
    g->kind = AGG_GENERIC;
    if (g->distinct) {
        g->kind = AGG_DISTINCT;
        g->a_col = (int32_t)e->slot;
        g->distinct_syms = m->fields[tb->cols[e->slot].field].n_syms;
        return;
    }
    const tsr_engine__expr_t *a = NULL, *b = NULL;
    if (e->kind == TSR_ENGINE__E_FIELD) {
        a = e;
    } else if (e->kind == TSR_ENGINE__E_MUL && e->args[0]->kind == TSR_ENGINE__E_FIELD &&
               e->args[1]->kind == TSR_ENGINE__E_FIELD) {
        a = e->args[0];
        b = e->args[1];
    }
    if (a == NULL)
        return;
    g->a_col = (int32_t)a->slot;
    if (g->func == TSR_ENGINE__F_COUNT) {
        if (b == NULL)
            g->kind = AGG_COUNT;
        else
            g->b_col = (int32_t)b->slot, g->a_col = -1; /* generic: a product's nulls */
        return;
    }
    g->a_num = num_of(nc, m, tb, a->slot);
    g->kind = AGG_NUM;
    if (b != NULL) {
        g->b_col = (int32_t)b->slot;
        g->b_num = num_of(nc, m, tb, b->slot);
        g->kind = AGG_PROD;
    }
    if (g->func != TSR_ENGINE__F_SUM && g->func != TSR_ENGINE__F_AVG)
        return;
    /* Exact integer sums when the values are fixed-point and no sum can overflow. */
    const int64_t *ia = int_of(nc, m, tb, a->slot);
    const int64_t *ib = b != NULL ? int_of(nc, m, tb, b->slot) : NULL;
    if (ia == NULL || (b != NULL && ib == NULL))
        return;
    double bound = (double)nc->max_abs[a->slot] * (double)(tb->n_rows + 1);
    int k = nc->scale_k[a->slot];
    if (b != NULL) {
        bound *= (double)nc->max_abs[b->slot];
        k += nc->scale_k[b->slot];
    }
    if (bound >= 9.0e18)
        return;
    g->a_int = ia;
    g->b_int = ib;
    g->scale = p10[k];
    g->kind = b != NULL ? AGG_PROD_I : AGG_NUM_I;
}

/* Build the fused kernel's compact inputs; false when a number does not fit in int32. */
static bool fused_inputs(scan_t *sc, const tsr_engine_model_t *m) {
    const agg_t *g = &sc->aggs[0];
    const tsr_engine__table_t *tb = sc->tb;
    int32_t *out[2] = {NULL, NULL};
    const int64_t *in[2] = {g->a_int, g->b_int};
    int32_t col[2] = {g->a_col, g->b_col};
    for (int i = 0; i < 2; i++) {
        size_t n = (size_t)m->fields[tb->cols[col[i]].field].n_syms + 1;
        out[i] = tsr_xmalloc(n * sizeof *out[i]);
        for (size_t v = 0; v < n; v++) {
            int64_t x = in[i][v];
            if (x != I64_NONE && (x <= INT32_MIN || x > INT32_MAX)) {
                free(out[0]);
                free(out[1]);
                return false;
            }
            out[i][v] = x == I64_NONE ? FUSED_NULL : (int32_t)x;
        }
    }
    sc->fa = out[0];
    sc->fb = out[1];
    for (size_t d = 0; d < sc->n_groups; d++) {
        const group_t *gr = &sc->groups[d];
        size_t n = (size_t)m->fields[tb->cols[gr->col].field].n_syms + 1;
        sc->fmap[d] = tsr_xmalloc(n * sizeof *sc->fmap[d]);
        for (size_t v = 0; v < n; v++)
            sc->fmap[d][v] = gr->map[v] == UINT32_MAX ? FUSED_NONE : (uint16_t)gr->map[v];
    }
    return true;
}

tsr_err_t tsr_engine_hypercube_compute(const tsr_engine_model_t *m, tsr_engine_state_t *st,
                                       const tsr_engine_hypercube_def_t *def,
                                       tsr_engine_hypercube_t **out, tsr_error_t *err) {
    tsr_err_t rc = TSR_OK;
    tsr_engine__expr_t **mexpr = tsr_xcalloc(def->n_measures + 1, sizeof *mexpr);
    agg_t aggs[CUBE_MAX_AGGS];
    size_t n_aggs = 0;
    uint32_t *dfield = tsr_xcalloc(def->n_dims + 1, sizeof *dfield);
    uint32_t **dmap = tsr_xcalloc(def->n_dims + 1, sizeof *dmap); /* key value -> dim sym */
    int32_t *dcol = tsr_xcalloc(def->n_dims + 1, sizeof *dcol);
    size_t *dgroup = tsr_xcalloc(def->n_dims + 1, sizeof *dgroup);
    size_t *dsub = tsr_xcalloc(def->n_dims + 1, sizeof *dsub); /* radix inside its group */
    group_t *groups = tsr_xcalloc(def->n_dims + 1, sizeof *groups);
    size_t n_groups = 0;
    numcache_t *nc = tsr_xcalloc(1, sizeof *nc);
    acc_t *acc = NULL, *acc2 = NULL;
    uint32_t *rowcnt = NULL, *rowcnt2 = NULL;
    size_t *order = NULL;
    uint32_t *dsym = NULL;
    double *mval = NULL;
    tsr_engine_hypercube_t *cube = NULL;
    tsr_engine__eval_t *ev = NULL;
    size_t n_cells = 1;
    scan_t sc;
    memset(&sc, 0, sizeof sc);
    *out = NULL;

    if (def->n_dims > 16 || def->n_measures > 64 || def->n_dims + def->n_measures == 0) {
        rc = tsr_error_set(err, TSR_EINVAL, "0..16 dimensions, at most 64 measures, not none");
        goto out;
    }
    for (size_t i = 0; i < def->n_measures; i++) {
        rc = tsr_engine__expr_parse(def->measures[i], strlen(def->measures[i]), 1, 1, NULL,
                                    &mexpr[i], err);
        if (rc != TSR_OK)
            goto out;
        rc = collect_aggs(mexpr[i], aggs, &n_aggs, false, err);
        if (rc != TSR_OK)
            goto out;
    }
    for (size_t d = 0; d < def->n_dims; d++) {
        size_t f;
        if (tsr_engine_model_field_find(m, def->dims[d], &f) != TSR_OK) {
            rc = tsr_error_set(err, TSR_ENOTFOUND, "no field %s", def->dims[d]);
            goto out;
        }
        dfield[d] = (uint32_t)f;
    }
    /* The aggregation table: the largest table holding every aggregated field; without
     * aggregated fields, the largest table holding the first dimension. */
    bool agg_fields = false;
    for (size_t k = 0; k < n_aggs; k++)
        agg_fields = agg_fields || has_field(aggs[k].arg);
    size_t at = SIZE_MAX;
    for (size_t t = 0; t < m->n_tables; t++) {
        bool all = true;
        for (size_t k = 0; k < n_aggs && all; k++)
            all = fields_in(m, t, (tsr_engine__expr_t *)aggs[k].arg, false);
        if (!agg_fields)
            all = def->n_dims == 0 || col_in(&m->tables[t], dfield[0]) >= 0;
        if (all && (at == SIZE_MAX || m->tables[t].n_rows > m->tables[at].n_rows))
            at = t;
    }
    if (at == SIZE_MAX) {
        rc = tsr_error_set(err, TSR_EUNSUPPORTED, "measures span several tables");
        goto out;
    }
    const tsr_engine__table_t *tb = &m->tables[at];
    for (size_t k = 0; k < n_aggs; k++) {
        fields_in(m, at, (tsr_engine__expr_t *)aggs[k].arg, true);
        if (aggs[k].distinct && aggs[k].arg->kind != TSR_ENGINE__E_FIELD) {
            rc = tsr_error_set(err, TSR_EUNSUPPORTED, "Count(DISTINCT) of an expression");
            goto out;
        }
        agg_shape(&aggs[k], nc, m, tb);
    }
    /* Dimension maps: agg-table column value (packed) -> dimension symbol. */
    for (size_t d = 0; d < def->n_dims; d++) {
        int32_t c = col_in(tb, dfield[d]);
        uint32_t *map = NULL;
        if (c >= 0) {
            size_t ns = m->fields[dfield[d]].n_syms;
            map = tsr_xmalloc((ns + 1) * sizeof *map);
            map[0] = UINT32_MAX;
            for (size_t s = 0; s < ns; s++)
                map[s + 1] = (uint32_t)s;
        } else {
            for (uint32_t k = 0; k < tb->n_cols && map == NULL; k++) {
                map = compose_map(m, at, tb->cols[k].field, dfield[d], 0, err);
                if (map != NULL)
                    c = (int32_t)k;
            }
            if (map == NULL) {
                if (err == NULL || err->code == TSR_OK)
                    tsr_error_set(err, TSR_EUNSUPPORTED, "dimension %s does not reach table %s",
                                  def->dims[d], tb->name);
                rc = TSR_EUNSUPPORTED;
                goto out;
            }
        }
        dmap[d] = map;
        dcol[d] = c;
        size_t g = 0;
        while (g < n_groups && groups[g].col != c)
            g++;
        if (g == n_groups)
            groups[n_groups++] = (group_t){.col = c, .card = 1};
        dgroup[d] = g;
    }
    /* Group spaces: key mode when the key has fewer values than the dimensions' product. */
    for (size_t g = n_groups; g-- > 0;) {
        group_t *gr = &groups[g];
        size_t keycard = m->fields[tb->cols[gr->col].field].n_syms, prod = 1;
        bool big = false;
        for (size_t d = def->n_dims; d-- > 0;) {
            if (dgroup[d] != g)
                continue;
            dsub[d] = prod;
            size_t card = m->fields[dfield[d]].n_syms;
            if (card == 0 || prod > CUBE_MAX_CELLS / card)
                big = true;
            else
                prod *= card;
        }
        gr->key_mode = big || keycard < prod;
        gr->card = gr->key_mode ? keycard : prod;
        if (gr->card == 0 || n_cells > CUBE_MAX_CELLS / gr->card) {
            rc = tsr_error_set(err, TSR_ETOOBIG, "hypercube over %u cells", CUBE_MAX_CELLS);
            goto out;
        }
        gr->stride = n_cells;
        n_cells *= gr->card;
    }
    for (size_t g = 0; g < n_groups; g++) {
        group_t *gr = &groups[g];
        size_t nk = m->fields[tb->cols[gr->col].field].n_syms + 1;
        gr->map = tsr_xmalloc(nk * sizeof *gr->map);
        gr->map[0] = UINT32_MAX;
        for (size_t k = 1; k < nk; k++) {
            size_t comp = 0;
            bool ok = true;
            for (size_t d = 0; d < def->n_dims && ok; d++) {
                if (dgroup[d] != g)
                    continue;
                ok = dmap[d][k] != UINT32_MAX;
                if (ok)
                    comp += (size_t)dmap[d][k] * dsub[d];
            }
            if (gr->key_mode)
                comp = k - 1;
            gr->map[k] = ok ? (uint32_t)(comp * gr->stride) : UINT32_MAX;
        }
    }
    for (size_t k = 0; k < n_aggs; k++) {
        if (aggs[k].kind == AGG_DISTINCT &&
            (uint64_t)(n_cells + 1) * aggs[k].distinct_syms > CUBE_MAX_DISTINCT_BITS) {
            rc = tsr_error_set(err, TSR_ETOOBIG, "Count(DISTINCT) too large");
            goto out;
        }
    }

    /* Scan: two threads over halves of the rows, private accumulators merged after. */
    sc = (scan_t){.m = m,
                  .tb = tb,
                  .groups = groups,
                  .n_groups = n_groups,
                  .aggs = aggs,
                  .n_aggs = n_aggs,
                  .n_cells = n_cells};
    acc = tsr_xcalloc(n_aggs + 1, sizeof *acc);
    acc2 = tsr_xcalloc(n_aggs + 1, sizeof *acc2);
    rowcnt = tsr_xcalloc(n_cells + 1, sizeof *rowcnt);
    for (size_t k = 0; k < n_aggs; k++)
        acc_init(&acc[k], &aggs[k], n_cells);
    size_t split = tb->n_rows / 2 / 64 * 64;
    bool two = tb->n_rows >= CUBE_PARALLEL_MIN_ROWS;
    if (two) {
        rowcnt2 = tsr_xcalloc(n_cells + 1, sizeof *rowcnt2);
        for (size_t k = 0; k < n_aggs; k++)
            acc_init(&acc2[k], &aggs[k], n_cells);
    }
    /* One pass over the rows of the selection for the plain aggregations, and one per
     * set expression over the rows of its own state. Cells count rows of any pass. */
    for (size_t k = 0; k <= n_aggs && rc == TSR_OK; k++) {
        const tsr_engine__set_t *pass = k == 0 ? NULL : aggs[k - 1].set;
        if (k > 0 && pass == NULL)
            continue;
        sc.pass = pass;
        sc.rows = tsr_engine__state_rows(st, at);
        if (pass != NULL) {
            rc = tsr_engine__state_for_set(st, pass, &aggs[k - 1].set_state, err);
            if (rc != TSR_OK)
                break;
            sc.rows = tsr_engine__state_rows(aggs[k - 1].set_state, at);
        }
        part_t p1 = {
            .sc = &sc, .r0 = 0, .r1 = two ? split : tb->n_rows, .acc = acc, .rowcnt = rowcnt};
        part_t p2 = {.sc = &sc, .r0 = split, .r1 = tb->n_rows, .acc = acc2, .rowcnt = rowcnt2};
        /* The common BI shape (one Sum of a fixed-point product over up to two dimension
         * groups and few cells) takes the fused kernel. */
        if (pass == NULL && n_aggs == 1 && aggs[0].kind == AGG_PROD_I &&
            aggs[0].func == TSR_ENGINE__F_SUM && aggs[0].set == NULL && n_groups <= 2 &&
            n_groups >= 1 && n_cells <= FUSED_MAX_CELLS && fused_inputs(&sc, m)) {
            for (int i = 0; i < (two ? 2 : 1); i++) {
                part_t *pp = i == 0 ? &p1 : &p2;
                pp->fused_agg = 0;
                pp->lane_sum = tsr_xcalloc(n_cells * LANES, sizeof *pp->lane_sum);
                pp->lane_cnt = tsr_xcalloc(n_cells * LANES, sizeof *pp->lane_cnt);
            }
        }
        pthread_t th;
        bool threaded = two && pthread_create(&th, NULL, scan_part, &p2) == 0;
        if (!threaded)
            p1.r1 = tb->n_rows;
        scan_part(&p1);
        if (threaded)
            pthread_join(th, NULL);
        free(p1.lane_sum);
        free(p1.lane_cnt);
        free(p2.lane_sum);
        free(p2.lane_cnt);
    }
    if (rc != TSR_OK)
        goto out;
    if (two) {
        for (size_t c = 0; c < n_cells; c++)
            rowcnt[c] += rowcnt2[c];
    }
    /* Merge the second part and fold every cell into the grand-total cell n_cells. */
    for (size_t k = 0; k < n_aggs; k++) {
        acc_t *a = &acc[k], *b = two ? &acc2[k] : NULL;
        size_t T = n_cells;
        for (size_t c = 0; c < n_cells; c++) {
            if (b != NULL) {
                if (a->isum != NULL)
                    a->isum[c] += b->isum[c];
                if (a->sum != NULL) {
                    neumaier(&a->sum[c], &a->comp[c], b->sum[c]);
                    neumaier(&a->sum[c], &a->comp[c], b->comp[c]);
                }
                a->count[c] += b->count[c];
                if (a->min != NULL) {
                    a->min[c] = fmin(a->min[c], b->min[c]);
                    a->max[c] = fmax(a->max[c], b->max[c]);
                }
            }
            if (rowcnt[c] == 0)
                continue;
            if (a->isum != NULL)
                a->isum[T] += a->isum[c];
            if (a->sum != NULL) {
                neumaier(&a->sum[T], &a->comp[T], a->sum[c]);
                neumaier(&a->sum[T], &a->comp[T], a->comp[c]);
            }
            a->count[T] += a->count[c];
            if (a->min != NULL) {
                a->min[T] = fmin(a->min[T], a->min[c]);
                a->max[T] = fmax(a->max[T], a->max[c]);
            }
        }
        if (a->distinct != NULL) {
            size_t ds = aggs[k].distinct_syms;
            if (b != NULL) {
                for (size_t w = 0; w < words_for((n_cells + 1) * ds); w++)
                    a->distinct[w] |= b->distinct[w];
            }
            for (size_t c = 0; c < n_cells; c++) {
                if (rowcnt[c] == 0)
                    continue;
                for (size_t s = 0; s < ds; s++) {
                    size_t bit = c * ds + s;
                    if (bit_get(a->distinct, bit)) {
                        size_t tb2 = T * ds + s;
                        a->distinct[tb2 >> 6] |= UINT64_C(1) << (tb2 & 63);
                    }
                }
            }
        }
    }

    /* Rows: cells with data (zero/missing suppression), then measures, sort and page. */
    size_t n_hit = 0;
    for (size_t c = 0; c < n_cells; c++)
        n_hit += rowcnt[c] != 0 || def->n_dims == 0;
    dsym = tsr_xcalloc(n_hit * def->n_dims + 1, sizeof *dsym);
    mval = tsr_xcalloc(n_hit * def->n_measures + 1, sizeof *mval);
    ev = tsr_xcalloc(1, sizeof *ev);
    aggval_ctx_t actx = {.aggs = aggs, .acc = acc, .total_cell = n_cells};
    ev->agg_cb = agg_value;
    ev->agg_ctx = &actx;
    size_t row = 0;
    for (size_t cell = 0; cell < n_cells; cell++) {
        if (rowcnt[cell] == 0 && def->n_dims > 0)
            continue;
        for (size_t d = 0; d < def->n_dims; d++) {
            const group_t *gr = &groups[dgroup[d]];
            size_t comp = cell / gr->stride % gr->card;
            dsym[row * def->n_dims + d] =
                gr->key_mode ? dmap[d][comp + 1]
                             : (uint32_t)(comp / dsub[d] % m->fields[dfield[d]].n_syms);
        }
        actx.cell = cell;
        for (size_t j = 0; j < def->n_measures; j++) {
            ev->scratch_len = 0;
            tsr_engine__val_t v = tsr_engine__expr_eval(ev, mexpr[j]);
            mval[row * def->n_measures + j] =
                v.kind == TSR_ENGINE__V_NUM || v.kind == TSR_ENGINE__V_DUAL ? v.num : NAN;
        }
        row++;
    }
    order = tsr_xmalloc((n_hit + 1) * sizeof *order);
    for (size_t i = 0; i < n_hit; i++)
        order[i] = i;
    sortctx_t sctx = {.def = def,
                      .m = m,
                      .dfield = dfield,
                      .dsym = dsym,
                      .mval = mval,
                      .n_dims = def->n_dims,
                      .n_measures = def->n_measures};
    sort_ctx = &sctx;
    qsort(order, n_hit, sizeof *order, row_cmp);
    sort_ctx = NULL;
    size_t top = def->top < n_hit ? def->top : n_hit;
    size_t height = def->height == 0 || def->height > n_hit - top ? n_hit - top : def->height;
    cube = tsr_xcalloc(1, sizeof *cube);
    cube->m = m;
    cube->n_dims = def->n_dims;
    cube->n_measures = def->n_measures;
    cube->total = n_hit;
    cube->n_rows = height;
    cube->dsyms = tsr_xcalloc(height * def->n_dims + 1, sizeof *cube->dsyms);
    cube->mvals = tsr_xcalloc(height * def->n_measures + 1, sizeof *cube->mvals);
    cube->totals = tsr_xcalloc(def->n_measures + 1, sizeof *cube->totals);
    for (size_t i = 0; i < height; i++) {
        size_t src = order[top + i];
        memcpy(&cube->dsyms[i * def->n_dims], &dsym[src * def->n_dims], def->n_dims * sizeof *dsym);
        memcpy(&cube->mvals[i * def->n_measures], &mval[src * def->n_measures],
               def->n_measures * sizeof *mval);
    }
    actx.cell = n_cells;
    for (size_t j = 0; j < def->n_measures; j++) {
        ev->scratch_len = 0;
        tsr_engine__val_t v = tsr_engine__expr_eval(ev, mexpr[j]);
        cube->totals[j] = v.kind == TSR_ENGINE__V_NUM || v.kind == TSR_ENGINE__V_DUAL ? v.num : NAN;
    }
    cube->dfield = dfield;
    dfield = NULL;
    *out = cube;
out:
    free(sc.fmap[0]);
    free(sc.fmap[1]);
    free(sc.fa);
    free(sc.fb);
    free(ev);
    free(dsym);
    free(mval);
    for (size_t i = 0; i < def->n_measures; i++)
        tsr_engine__expr_free(mexpr[i]);
    free(mexpr);
    for (size_t d = 0; d < def->n_dims; d++)
        free(dmap[d]);
    free(dmap);
    for (size_t g = 0; g < n_groups; g++)
        free(groups[g].map);
    free(groups);
    free(dcol);
    free(dgroup);
    free(dsub);
    free(dfield);
    for (size_t c = 0; c < TSR_ENGINE_MAX_FIELDS_PER_TABLE; c++) {
        free(nc->num[c]);
        free(nc->ints[c]);
    }
    free(nc);
    if (acc != NULL) {
        for (size_t k = 0; k < n_aggs; k++) {
            acc_cleanup(&acc[k]);
            acc_cleanup(&acc2[k]);
        }
    }
    for (size_t k = 0; k < n_aggs; k++)
        tsr_engine_state_destroy(aggs[k].set_state);
    free(acc);
    free(acc2);
    free(rowcnt);
    free(rowcnt2);
    free(order);
    return rc;
}

void tsr_engine_hypercube_destroy(tsr_engine_hypercube_t *c) {
    if (c == NULL)
        return;
    free(c->dsyms);
    free(c->mvals);
    free(c->totals);
    free(c->dfield);
    free(c);
}

size_t tsr_engine_hypercube_rows(const tsr_engine_hypercube_t *c) {
    return c->n_rows;
}
size_t tsr_engine_hypercube_total_rows(const tsr_engine_hypercube_t *c) {
    return c->total;
}

tsr_err_t tsr_engine_hypercube_cell(const tsr_engine_hypercube_t *c, size_t row, size_t col,
                                    tsr_engine_dual_t *out) {
    if (row >= c->n_rows || col >= c->n_dims + c->n_measures)
        return TSR_ENOTFOUND;
    if (col < c->n_dims)
        return tsr_engine_model_field_symbol(c->m, c->dfield[col], c->dsyms[row * c->n_dims + col],
                                             out);
    double v = c->mvals[row * c->n_measures + (col - c->n_dims)];
    out->num = v;
    out->is_num = !isnan(v);
    out->text = "";
    out->text_len = 0;
    return TSR_OK;
}

tsr_err_t tsr_engine_hypercube_total(const tsr_engine_hypercube_t *c, size_t measure, double *out) {
    if (measure >= c->n_measures)
        return TSR_ENOTFOUND;
    *out = c->totals[measure];
    return TSR_OK;
}

tsr_engine_hypercube_t *tsr_engine__hypercube_clone(const tsr_engine_hypercube_t *c,
                                                    size_t *bytes) {
    tsr_engine_hypercube_t *d = tsr_xmalloc(sizeof *d);
    *d = *c;
    size_t nd = c->n_rows * c->n_dims + 1, nm = c->n_rows * c->n_measures + 1;
    d->dsyms = tsr_xmalloc(nd * sizeof *d->dsyms);
    memcpy(d->dsyms, c->dsyms, nd * sizeof *d->dsyms);
    d->mvals = tsr_xmalloc(nm * sizeof *d->mvals);
    memcpy(d->mvals, c->mvals, nm * sizeof *d->mvals);
    d->totals = tsr_xmalloc((c->n_measures + 1) * sizeof *d->totals);
    memcpy(d->totals, c->totals, (c->n_measures + 1) * sizeof *d->totals);
    d->dfield = tsr_xmalloc((c->n_dims + 1) * sizeof *d->dfield);
    memcpy(d->dfield, c->dfield, (c->n_dims + 1) * sizeof *d->dfield);
    if (bytes != NULL)
        *bytes = sizeof *d + nd * sizeof *d->dsyms + nm * sizeof *d->mvals +
                 (c->n_measures + c->n_dims + 2) * 8;
    return d;
}
