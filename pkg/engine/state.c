/*
 * pkg/engine: selections and state propagation. A selection is, per field, a bitset of
 * selected symbols. Propagation is a semi-join full reduction over the table graph (a
 * forest: finalize refuses loops): leaves up, then root down, passing key-symbol bitsets
 * only from restricted tables. Value states follow Qlik: S, O, A, X, XS. Field sets are
 * computed on demand and cached in the state object (so a state is not thread safe).
 */
#include <pthread.h>
#include <stdlib.h>

#include "engine_int.h"

#define MAX_HISTORY 64

static inline bool bit_get(const uint64_t *b, size_t i) {
    return (b[i >> 6] >> (i & 63)) & 1;
}
static inline void bit_set(uint64_t *b, size_t i) {
    b[i >> 6] |= UINT64_C(1) << (i & 63);
}
static inline size_t words_for(size_t n) {
    return (n + 63) / 64 + 1;
}

/* ---- selection ---- */

struct tsr_engine_selection {
    const tsr_engine_model_t *m;
    uint64_t **sel; /* per field: NULL = no selection; else bitset over symbols (owned) */
    bool *locked;
    /* History for back/forward: snapshots of `sel` (owned). */
    uint64_t **hist[MAX_HISTORY];
    size_t n_hist, pos_hist;
};

static uint64_t **sel_copy(const tsr_engine_model_t *m, uint64_t *const *src) {
    uint64_t **dst = tsr_xcalloc(m->n_fields + 1, sizeof *dst);
    for (size_t f = 0; f < m->n_fields; f++) {
        if (src[f] != NULL) {
            size_t n = words_for(m->fields[f].n_syms);
            dst[f] = tsr_xmalloc(n * sizeof(uint64_t));
            memcpy(dst[f], src[f], n * sizeof(uint64_t));
        }
    }
    return dst;
}

static void sel_free(const tsr_engine_model_t *m, uint64_t **s) {
    if (s == NULL)
        return;
    for (size_t f = 0; f < m->n_fields; f++)
        free(s[f]);
    free(s);
}

tsr_engine_selection_t *tsr_engine_selection_create(const tsr_engine_model_t *m) {
    tsr_engine_selection_t *s = tsr_xcalloc(1, sizeof *s);
    s->m = m;
    s->sel = tsr_xcalloc(m->n_fields + 1, sizeof *s->sel);
    s->locked = tsr_xcalloc(m->n_fields + 1, sizeof *s->locked);
    s->hist[0] = sel_copy(m, s->sel);
    s->n_hist = 1;
    return s;
}

void tsr_engine_selection_destroy(tsr_engine_selection_t *s) {
    if (s == NULL)
        return;
    sel_free(s->m, s->sel);
    for (size_t i = 0; i < s->n_hist; i++)
        sel_free(s->m, s->hist[i]);
    free(s->locked);
    free(s);
}

/* Record the current selection as a new history step (dropping any forward steps). */
static void hist_push(tsr_engine_selection_t *s) {
    for (size_t i = s->pos_hist + 1; i < s->n_hist; i++)
        sel_free(s->m, s->hist[i]);
    s->n_hist = s->pos_hist + 1;
    if (s->n_hist == MAX_HISTORY) {
        sel_free(s->m, s->hist[0]);
        memmove(&s->hist[0], &s->hist[1], (MAX_HISTORY - 1) * sizeof s->hist[0]);
        s->n_hist--;
    }
    s->hist[s->n_hist++] = sel_copy(s->m, s->sel);
    s->pos_hist = s->n_hist - 1;
}

tsr_err_t tsr_engine_selection_select(tsr_engine_selection_t *s, size_t f, const size_t *syms,
                                      size_t n, bool toggle, tsr_error_t *err) {
    const tsr_engine_model_t *m = s->m;
    if (f >= m->n_fields)
        return tsr_error_set(err, TSR_ENOTFOUND, "no field %zu", f);
    if (s->locked[f])
        return tsr_error_set(err, TSR_EPRECONDITION, "field %s is locked", m->fields[f].name);
    size_t ns = m->fields[f].n_syms, nw = words_for(ns);
    for (size_t i = 0; i < n; i++) {
        if (syms[i] >= ns)
            return tsr_error_set(err, TSR_EINVAL, "symbol %zu out of range", syms[i]);
    }
    uint64_t *b = tsr_xcalloc(nw, sizeof *b);
    if (toggle && s->sel[f] != NULL)
        memcpy(b, s->sel[f], nw * sizeof *b);
    for (size_t i = 0; i < n; i++) {
        if (toggle)
            b[syms[i] >> 6] ^= UINT64_C(1) << (syms[i] & 63);
        else
            bit_set(b, syms[i]);
    }
    bool any = false;
    for (size_t w = 0; w < nw && !any; w++)
        any = b[w] != 0;
    free(s->sel[f]);
    s->sel[f] = any ? b : NULL;
    if (!any)
        free(b);
    hist_push(s);
    return TSR_OK;
}

tsr_err_t tsr_engine_selection_select_text(tsr_engine_selection_t *s, size_t f,
                                           const char *const *texts, size_t n, bool toggle,
                                           tsr_error_t *err) {
    if (f >= s->m->n_fields)
        return tsr_error_set(err, TSR_ENOTFOUND, "no field %zu", f);
    size_t *syms = tsr_xcalloc(n + 1, sizeof *syms);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t y =
            tsr_engine__field_lookup(&s->m->fields[f], texts[i], (uint32_t)strlen(texts[i]));
        if (y != UINT32_MAX)
            syms[k++] = y;
    }
    tsr_err_t rc = tsr_engine_selection_select(s, f, syms, k, toggle, err);
    free(syms);
    return rc;
}

tsr_err_t tsr_engine_selection_select_search(tsr_engine_selection_t *s, size_t f,
                                             const char *pattern, bool toggle, tsr_error_t *err) {
    size_t *syms = NULL, n = 0;
    tsr_err_t rc = tsr_engine_field_search(s->m, f, pattern, &syms, &n, err);
    if (rc == TSR_OK && n == 0)
        rc = tsr_error_set(err, TSR_ENOTFOUND, "no value matches the search");
    if (rc == TSR_OK)
        rc = tsr_engine_selection_select(s, f, syms, n, toggle, err);
    free(syms);
    return rc;
}

tsr_err_t tsr_engine_selection_clear_field(tsr_engine_selection_t *s, size_t f, tsr_error_t *err) {
    if (f >= s->m->n_fields)
        return tsr_error_set(err, TSR_ENOTFOUND, "no field %zu", f);
    if (s->locked[f])
        return tsr_error_set(err, TSR_EPRECONDITION, "field %s is locked", s->m->fields[f].name);
    free(s->sel[f]);
    s->sel[f] = NULL;
    hist_push(s);
    return TSR_OK;
}

void tsr_engine_selection_clear_all(tsr_engine_selection_t *s) {
    for (size_t f = 0; f < s->m->n_fields; f++) {
        if (!s->locked[f]) {
            free(s->sel[f]);
            s->sel[f] = NULL;
        }
    }
    hist_push(s);
}

tsr_err_t tsr_engine_selection_lock(tsr_engine_selection_t *s, size_t f, bool locked,
                                    tsr_error_t *err) {
    if (f >= s->m->n_fields)
        return tsr_error_set(err, TSR_ENOTFOUND, "no field %zu", f);
    s->locked[f] = locked;
    return TSR_OK;
}

static tsr_err_t hist_move(tsr_engine_selection_t *s, size_t to) {
    /* Locked fields keep their selection across back/forward, as in Qlik. */
    uint64_t **snap = sel_copy(s->m, s->hist[to]);
    for (size_t f = 0; f < s->m->n_fields; f++) {
        if (s->locked[f]) {
            free(snap[f]);
            snap[f] = NULL;
            if (s->sel[f] != NULL) {
                size_t n = words_for(s->m->fields[f].n_syms);
                snap[f] = tsr_xmalloc(n * sizeof(uint64_t));
                memcpy(snap[f], s->sel[f], n * sizeof(uint64_t));
            }
        }
    }
    sel_free(s->m, s->sel);
    s->sel = snap;
    s->pos_hist = to;
    return TSR_OK;
}

tsr_err_t tsr_engine_selection_back(tsr_engine_selection_t *s) {
    if (s->pos_hist == 0)
        return TSR_ENOTFOUND;
    return hist_move(s, s->pos_hist - 1);
}

tsr_err_t tsr_engine_selection_forward(tsr_engine_selection_t *s) {
    if (s->pos_hist + 1 >= s->n_hist)
        return TSR_ENOTFOUND;
    return hist_move(s, s->pos_hist + 1);
}

bool tsr_engine_selection_is_selected(const tsr_engine_selection_t *s, size_t f, size_t sym) {
    return f < s->m->n_fields && s->sel[f] != NULL && sym < s->m->fields[f].n_syms &&
           bit_get(s->sel[f], sym);
}

/* ---- propagation ---- */

typedef struct {
    size_t parent;         /* table, SIZE_MAX for a root */
    uint32_t parent_field; /* the key field linking to the parent */
} tnode_t;

typedef struct {
    const tsr_engine_model_t *m;
    tnode_t *node;
    size_t *order; /* pre-order (roots first); post-order is its reverse */
    size_t n_order;
} forest_t;

static int32_t col_of(const tsr_engine__table_t *tb, uint32_t f) {
    for (uint32_t c = 0; c < tb->n_cols; c++) {
        if (tb->cols[c].field == f)
            return (int32_t)c;
    }
    return -1;
}

static void forest_build(const tsr_engine_model_t *m, forest_t *fo) {
    fo->m = m;
    fo->node = tsr_xcalloc(m->n_tables + 1, sizeof *fo->node);
    fo->order = tsr_xcalloc(m->n_tables + 1, sizeof *fo->order);
    bool *seen = tsr_xcalloc(m->n_tables + 1, sizeof *seen);
    size_t *stack = tsr_xcalloc(m->n_tables + 1, sizeof *stack);
    for (;;) {
        /* Root each component at its largest table (the fact table in a star). */
        size_t root = SIZE_MAX;
        for (size_t t = 0; t < m->n_tables; t++) {
            if (!seen[t] && (root == SIZE_MAX || m->tables[t].n_rows > m->tables[root].n_rows))
                root = t;
        }
        if (root == SIZE_MAX)
            break;
        size_t sp = 0;
        stack[sp++] = root;
        seen[root] = true;
        fo->node[root].parent = SIZE_MAX;
        while (sp > 0) {
            size_t t = stack[--sp];
            fo->order[fo->n_order++] = t;
            const tsr_engine__table_t *tb = &m->tables[t];
            for (uint32_t c = 0; c < tb->n_cols; c++) {
                uint32_t f = tb->cols[c].field;
                for (size_t u = 0; u < m->n_tables; u++) {
                    if (seen[u] || col_of(&m->tables[u], f) < 0)
                        continue;
                    seen[u] = true;
                    fo->node[u].parent = t;
                    fo->node[u].parent_field = f;
                    stack[sp++] = u;
                }
            }
        }
    }
    free(seen);
    free(stack);
}

static void forest_cleanup(forest_t *fo) {
    free(fo->node);
    free(fo->order);
}

typedef struct {
    int32_t col;
    const uint64_t *set; /* bitset over symbols */
} constraint_t;

/* Below this many rows a table is scanned by one thread (start-up outweighs the gain). */
#define PAR_MIN_ROWS 262144

/* Run fn(arg, w0, w1) over the words [0, n_words) of a row bitset: two threads on two halves
 * for large tables, else inline. */
typedef void (*range_fn)(void *arg, size_t w0, size_t w1);
typedef struct {
    range_fn fn;
    void *arg;
    size_t w0, w1;
} range_job_t;

static void *range_run(void *p) {
    range_job_t *j = p;
    j->fn(j->arg, j->w0, j->w1);
    return NULL;
}

static void par_words(size_t n_rows, range_fn fn, void *a0, void *a1) {
    size_t nw = (n_rows + 63) / 64;
    if (n_rows < PAR_MIN_ROWS || a1 == NULL) {
        fn(a0, 0, nw);
        return;
    }
    size_t mid = nw / 2;
    range_job_t j = {fn, a1, mid, nw};
    pthread_t th;
    if (pthread_create(&th, NULL, range_run, &j) != 0) {
        fn(a0, 0, nw);
        return;
    }
    fn(a0, 0, mid);
    pthread_join(th, NULL);
}

typedef struct {
    const tsr_engine__table_t *tb;
    const uint64_t *in; /* NULL: all rows */
    uint64_t *out;
    const constraint_t *cs;
    uint64_t **pset; /* per constraint: bitset over packed values (bit 0 = null, never set) */
    size_t n_cs;
} filter_t;

static inline uint64_t word_mask(size_t n, size_t w) {
    return w * 64 + 64 > n ? (UINT64_C(1) << (n - w * 64)) - 1 : ~UINT64_C(0);
}

static void filter_range(void *arg, size_t w0, size_t w1) {
    const filter_t *f = arg;
    size_t n = f->tb->n_rows;
    for (size_t w = w0; w < w1; w++) {
        uint64_t keep = (f->in != NULL ? f->in[w] : ~UINT64_C(0)) & word_mask(n, w);
        for (size_t k = 0; k < f->n_cs && keep != 0; k++) {
            const tsr_engine__packed_t *pk = &f->tb->cols[f->cs[k].col].data;
            const uint64_t *words = pk->words, *ps = f->pset[k];
            const unsigned bits = pk->bits;
            const uint64_t mask = (UINT64_C(1) << bits) - 1;
            uint64_t hit = 0;
            if (keep == ~UINT64_C(0)) {
                for (unsigned b = 0; b < 64; b++) {
                    uint32_t v = tsr_engine__unpack(words, bits, mask, w * 64 + b);
                    hit |= ((ps[v >> 6] >> (v & 63)) & 1) << b;
                }
            } else {
                uint64_t cand = keep;
                while (cand != 0) {
                    unsigned b = (unsigned)__builtin_ctzll(cand);
                    cand &= cand - 1;
                    uint32_t v = tsr_engine__unpack(words, bits, mask, w * 64 + b);
                    hit |= ((ps[v >> 6] >> (v & 63)) & 1) << b;
                }
            }
            keep &= hit;
        }
        f->out[w] = keep;
    }
}

/* An index serves a constraint matching fewer than 1/INDEX_MAX_FRACTION of the rows. */
#define INDEX_MAX_FRACTION 6

/* Keep the rows of tb (all rows when *rows is NULL) that satisfy every constraint; *rows
 * becomes an owned bitset. */
static void filter_rows(const tsr_engine_model_t *m, const tsr_engine__table_t *tb, uint64_t **rows,
                        const constraint_t *cs_in, size_t n_cs, constraint_t **pend,
                        size_t *n_pend) {
    size_t n = tb->n_rows, nw = words_for(n);
    constraint_t *local = NULL;
    const constraint_t *cs = cs_in;
    /* A constraint on an indexed column that holds few rows: start from its rows (read from
     * the run index) instead of scanning the table, then check the others on those rows. */
    {
        size_t t = (size_t)(tb - m->tables), best = SIZE_MAX;
        uint64_t best_rows = n / INDEX_MAX_FRACTION;
        for (size_t k = 0; k < n_cs; k++) {
            const tsr_engine__runidx_t *ix = tsr_engine__index_get(m, t, (uint32_t)cs[k].col);
            if (ix == NULL)
                continue;
            uint64_t est =
                tsr_engine__index_count(ix, cs[k].set, m->fields[tb->cols[cs[k].col].field].n_syms);
            if (est < best_rows) {
                best_rows = est;
                best = k;
            }
        }
        if (best != SIZE_MAX) {
            uint64_t *seed = tsr_xcalloc(nw, sizeof *seed);
            tsr_engine__index_fill(tsr_engine__index_get(m, t, (uint32_t)cs[best].col),
                                   cs[best].set, m->fields[tb->cols[cs[best].col].field].n_syms,
                                   seed);
            if (*rows != NULL) {
                for (size_t w = 0; w < nw; w++)
                    seed[w] &= (*rows)[w];
            }
            free(*rows);
            *rows = seed;
            size_t k2 = 0;
            local = tsr_xcalloc(n_cs, sizeof *local);
            for (size_t k = 0; k < n_cs; k++) {
                if (k != best)
                    local[k2++] = cs[k];
            }
            if (k2 == 0) {
                free(local);
                return;
            }
            if (pend != NULL) {
                /* Leave the others for later (prop_rows or a probe): copies of their sets. */
                for (size_t k = 0; k < k2; k++) {
                    size_t nsw = words_for(m->fields[tb->cols[local[k].col].field].n_syms);
                    uint64_t *copy = tsr_xmalloc(nsw * sizeof *copy);
                    memcpy(copy, local[k].set, nsw * sizeof *copy);
                    local[k].set = copy;
                }
                *pend = local;
                *n_pend = k2;
                return;
            }
            cs = local;
            n_cs = k2;
        }
    }
    uint64_t *out = tsr_xcalloc(nw, sizeof *out);
    uint64_t **pset = tsr_xcalloc(n_cs + 1, sizeof *pset);
    for (size_t k = 0; k < n_cs; k++) {
        /* Shift the symbol set by one so packed values index it directly. */
        size_t ns = m->fields[tb->cols[cs[k].col].field].n_syms;
        pset[k] = tsr_xcalloc(words_for(ns + 1), sizeof(uint64_t));
        for (size_t w = 0; w * 64 < ns; w++) {
            uint64_t x = cs[k].set[w];
            while (x != 0) {
                size_t s = w * 64 + (unsigned)__builtin_ctzll(x) + 1;
                x &= x - 1;
                pset[k][s >> 6] |= UINT64_C(1) << (s & 63);
            }
        }
    }
    filter_t f = {.tb = tb, .in = *rows, .out = out, .cs = cs, .pset = pset, .n_cs = n_cs};
    par_words(n, filter_range, &f, &f);
    for (size_t k = 0; k < n_cs; k++)
        free(pset[k]);
    free(pset);
    free(*rows);
    *rows = out;
    free(local);
}

typedef struct {
    const tsr_engine__table_t *tb;
    const tsr_engine__packed_t *pk;
    const uint64_t *rows;
    uint64_t *set; /* over packed values */
} collect_t;

static void collect_range(void *arg, size_t w0, size_t w1) {
    collect_t *c = arg;
    size_t n = c->tb->n_rows;
    uint64_t *set = c->set;
    const uint64_t *words = c->pk->words;
    const unsigned bits = c->pk->bits;
    const uint64_t mask = (UINT64_C(1) << bits) - 1;
    for (size_t w = w0; w < w1; w++) {
        uint64_t cand = (c->rows != NULL ? c->rows[w] : ~UINT64_C(0)) & word_mask(n, w);
        if (cand == ~UINT64_C(0)) {
            for (unsigned b = 0; b < 64; b++) {
                uint32_t v = tsr_engine__unpack(words, bits, mask, w * 64 + b);
                set[v >> 6] |= UINT64_C(1) << (v & 63);
            }
            continue;
        }
        while (cand != 0) {
            unsigned b = (unsigned)__builtin_ctzll(cand);
            cand &= cand - 1;
            uint32_t v = tsr_engine__unpack(words, bits, mask, w * 64 + b);
            set[v >> 6] |= UINT64_C(1) << (v & 63);
        }
    }
}

/* Bitset of the symbols of column c over the given rows (NULL: all rows). Owned. */
static uint64_t *column_syms(const tsr_engine_model_t *m, const tsr_engine__table_t *tb, uint32_t c,
                             const uint64_t *rows) {
    const tsr_engine__field_t *f = &m->fields[tb->cols[c].field];
    size_t nw = words_for(f->n_syms + 1);
    collect_t a = {
        .tb = tb, .pk = &tb->cols[c].data, .rows = rows, .set = tsr_xcalloc(nw, sizeof(uint64_t))};
    collect_t b = a;
    bool two = tb->n_rows >= PAR_MIN_ROWS;
    if (two)
        b.set = tsr_xcalloc(nw, sizeof(uint64_t));
    par_words(tb->n_rows, collect_range, &a, two ? &b : NULL);
    if (two) {
        for (size_t w = 0; w < nw; w++)
            a.set[w] |= b.set[w];
        free(b.set);
    }
    /* Packed values are symbol + 1: shift down by one bit. */
    uint64_t *set = tsr_xcalloc(words_for(f->n_syms), sizeof *set);
    for (size_t w = 0; w + 1 < nw; w++)
        set[w] = (a.set[w] >> 1) | (a.set[w + 1] << 63);
    free(a.set);
    return set;
}

/* Possible rows per table under a selection with one field's selection ignored (skip,
 * SIZE_MAX: none). The up pass (leaves to roots) runs at once, so roots are final; a
 * non-root table is narrowed by its parent's final rows only when first asked for
 * (prop_rows): a hypercube over the fact table never pays for the dimension tables. */
typedef struct {
    const forest_t *fo;
    uint64_t **rows; /* per table, owned; NULL: every row */
    bool *restricted;
    bool *done;          /* rows[t] is final once its pending constraints are applied */
    constraint_t **pend; /* per table: constraints not yet applied to rows[t] (sets owned);
                            only roots, after an index gave their rows */
    size_t *n_pend;
} prop_t;

static void propagate(prop_t *pr, const forest_t *fo, uint64_t *const *sel, size_t skip) {
    const tsr_engine_model_t *m = fo->m;
    pr->fo = fo;
    pr->rows = tsr_xcalloc(m->n_tables + 1, sizeof *pr->rows);
    pr->restricted = tsr_xcalloc(m->n_tables + 1, sizeof *pr->restricted);
    pr->done = tsr_xcalloc(m->n_tables + 1, sizeof *pr->done);
    pr->pend = tsr_xcalloc(m->n_tables + 1, sizeof *pr->pend);
    pr->n_pend = tsr_xcalloc(m->n_tables + 1, sizeof *pr->n_pend);
    uint64_t **rows = pr->rows;
    bool *restricted = pr->restricted;
    constraint_t *cs = tsr_xcalloc(TSR_ENGINE_MAX_FIELDS_PER_TABLE * 2, sizeof *cs);
    uint64_t **owned = tsr_xcalloc(TSR_ENGINE_MAX_FIELDS_PER_TABLE + 1, sizeof *owned);

    /* Up: children before parents (reverse pre-order). */
    for (size_t i = fo->n_order; i-- > 0;) {
        size_t t = fo->order[i];
        const tsr_engine__table_t *tb = &m->tables[t];
        size_t n_cs = 0, n_owned = 0;
        for (uint32_t c = 0; c < tb->n_cols; c++) {
            uint32_t f = tb->cols[c].field;
            if (f != skip && sel[f] != NULL)
                cs[n_cs++] = (constraint_t){(int32_t)c, sel[f]};
        }
        /* Restricted children pass the key symbols of their rows up. */
        for (size_t u = 0; u < m->n_tables; u++) {
            if (fo->node[u].parent != t || !restricted[u])
                continue;
            uint32_t f = fo->node[u].parent_field;
            int32_t cu = col_of(&m->tables[u], f);
            owned[n_owned] = column_syms(m, &m->tables[u], (uint32_t)cu, rows[u]);
            cs[n_cs++] = (constraint_t){col_of(tb, f), owned[n_owned++]};
        }
        if (n_cs > 0) {
            bool root = fo->node[t].parent == SIZE_MAX;
            filter_rows(m, tb, &rows[t], cs, n_cs, root ? &pr->pend[t] : NULL,
                        root ? &pr->n_pend[t] : NULL);
            restricted[t] = true;
        }
        for (size_t k = 0; k < n_owned; k++)
            free(owned[k]);
        if (fo->node[t].parent == SIZE_MAX)
            pr->done[t] = true;
    }
    free(cs);
    free(owned);
}

/* Apply t's pending constraints to its rows. */
static void prop_settle_pending(prop_t *pr, size_t t) {
    if (pr->n_pend[t] == 0)
        return;
    const tsr_engine_model_t *m = pr->fo->m;
    filter_rows(m, &m->tables[t], &pr->rows[t], pr->pend[t], pr->n_pend[t], NULL, NULL);
    for (size_t k = 0; k < pr->n_pend[t]; k++)
        free((uint64_t *)pr->pend[t][k].set);
    free(pr->pend[t]);
    pr->pend[t] = NULL;
    pr->n_pend[t] = 0;
}

/* Symbols of the key column indexed by ix in table p, on p's rows that also satisfy p's
 * pending constraints, restricted to the candidate symbols cand: read from the run index,
 * stopping at the first qualifying row of each candidate. */
static uint64_t *probe_syms(const prop_t *pr, size_t p, const tsr_engine__runidx_t *ix,
                            const uint64_t *cand, size_t n_syms) {
    const tsr_engine_model_t *m = pr->fo->m;
    const tsr_engine__table_t *tb = &m->tables[p];
    const uint64_t *rows = pr->rows[p];
    const constraint_t *pc = pr->pend[p];
    size_t npc = pr->n_pend[p];
    uint64_t *set = tsr_xcalloc(words_for(n_syms), sizeof *set);
    for (size_t w = 0; w * 64 < n_syms; w++) {
        uint64_t x = cand[w];
        while (x != 0) {
            size_t sym = w * 64 + (unsigned)__builtin_ctzll(x);
            x &= x - 1;
            size_t v = sym + 1;
            if (v >= ix->n_vals)
                continue;
            const uint8_t *q = ix->bytes + ix->off[v], *e = ix->bytes + ix->off[v + 1];
            uint64_t r = 0;
            bool found = false;
            while (q < e && !found) {
                uint64_t gap, len;
                q = tsr_engine__varint_get(q, &gap);
                q = tsr_engine__varint_get(q, &len);
                r += gap;
                for (size_t i = (size_t)r, end = (size_t)(r + len); i < end && !found;) {
                    unsigned sh = (unsigned)(i & 63);
                    size_t lim = end - i < 64 - sh ? end - i : 64 - sh;
                    uint64_t bits = rows != NULL ? rows[i >> 6] >> sh : ~UINT64_C(0);
                    if (lim < 64)
                        bits &= (UINT64_C(1) << lim) - 1;
                    while (bits != 0 && !found) {
                        size_t row = i + (unsigned)__builtin_ctzll(bits);
                        bits &= bits - 1;
                        bool ok = true;
                        for (size_t k = 0; k < npc && ok; k++) {
                            uint32_t pv = tsr_engine__packed_get(&tb->cols[pc[k].col].data, row);
                            ok = pv != 0 && bit_get(pc[k].set, pv - 1);
                        }
                        found = ok;
                    }
                    i += lim;
                }
                r += len;
            }
            if (found)
                bit_set(set, sym);
        }
    }
    return set;
}

/* Rows of t after the down pass from its root (computed on demand); pending constraints of
 * t itself may remain (prop_rows applies them). */
static void prop_down(prop_t *pr, size_t t) {
    if (pr->done[t])
        return;
    const tsr_engine_model_t *m = pr->fo->m;
    size_t p = pr->fo->node[t].parent;
    prop_down(pr, p);
    if (pr->restricted[p]) {
        uint32_t f = pr->fo->node[t].parent_field;
        uint32_t cp = (uint32_t)col_of(&m->tables[p], f);
        int32_t ct = col_of(&m->tables[t], f);
        uint64_t *set = NULL;
        const tsr_engine__runidx_t *ix = tsr_engine__index_get(m, p, cp);
        size_t n_syms = m->fields[f].n_syms;
        if (pr->n_pend[p] > 0 && ix != NULL && m->tables[t].n_rows <= m->tables[p].n_rows / 16) {
            /* Only the keys t still has can matter: probe those in p's index instead of
             * applying p's pending constraints to all of its rows. */
            uint64_t *cand = column_syms(m, &m->tables[t], (uint32_t)ct, pr->rows[t]);
            if (tsr_engine__index_count(ix, cand, n_syms) <= m->tables[p].n_rows / 2)
                set = probe_syms(pr, p, ix, cand, n_syms);
            free(cand);
        }
        if (set == NULL) {
            prop_settle_pending(pr, p);
            set = column_syms(m, &m->tables[p], cp, pr->rows[p]);
        }
        constraint_t c = {ct, set};
        filter_rows(m, &m->tables[t], &pr->rows[t], &c, 1, NULL, NULL);
        pr->restricted[t] = true;
        free(set);
    }
    pr->done[t] = true;
}

/* Final possible rows of table t. */
static const uint64_t *prop_rows(prop_t *pr, size_t t) {
    prop_down(pr, t);
    prop_settle_pending(pr, t);
    return pr->rows[t];
}

static void prop_free(prop_t *pr, size_t n_tables) {
    if (pr->rows != NULL) {
        for (size_t t = 0; t < n_tables; t++)
            free(pr->rows[t]);
    }
    free(pr->rows);
    if (pr->pend != NULL) {
        for (size_t t = 0; t < n_tables; t++) {
            for (size_t k = 0; k < pr->n_pend[t]; k++)
                free((uint64_t *)pr->pend[t][k].set);
            free(pr->pend[t]);
        }
    }
    free(pr->pend);
    free(pr->n_pend);
    free(pr->restricted);
    free(pr->done);
    memset(pr, 0, sizeof *pr);
}

/* ---- state ---- */

struct tsr_engine_state {
    const tsr_engine_model_t *m;
    forest_t fo;
    uint64_t **sel;      /* copy of the selection */
    prop_t prop;         /* possible rows per table (computed down on demand) */
    uint64_t **possible; /* per field, computed on demand */
    uint64_t **alt;      /* per selected field: possible ignoring its own selection */
    uint64_t fp[2];      /* fingerprint of the selection (two independent 64-bit hashes) */
};

static void fp_mix(uint64_t fp[2], uint64_t v) {
    fp[0] = (fp[0] ^ v) * 0x100000001B3u;
    fp[0] ^= fp[0] >> 29;
    fp[1] = (fp[1] + v + 0x9E3779B97F4A7C15u) * 0xBF58476D1CE4E5B9u;
    fp[1] ^= fp[1] >> 31;
}

tsr_err_t tsr_engine_state_compute(const tsr_engine_model_t *m, const tsr_engine_selection_t *s,
                                   tsr_engine_state_t **out, tsr_error_t *err) {
    if (!m->finalized)
        return tsr_error_set(err, TSR_EPRECONDITION, "model is not finalized");
    if (s->m != m)
        return tsr_error_set(err, TSR_EINVAL, "selection belongs to another model");
    tsr_engine_state_t *st = tsr_xcalloc(1, sizeof *st);
    st->m = m;
    forest_build(m, &st->fo);
    st->sel = sel_copy(m, s->sel);
    propagate(&st->prop, &st->fo, st->sel, SIZE_MAX);
    st->possible = tsr_xcalloc(m->n_fields + 1, sizeof *st->possible);
    st->alt = tsr_xcalloc(m->n_fields + 1, sizeof *st->alt);
    st->fp[0] = 0xCBF29CE484222325u;
    st->fp[1] = m->version;
    for (size_t f = 0; f < m->n_fields; f++) {
        if (st->sel[f] == NULL)
            continue;
        fp_mix(st->fp, f + 1);
        for (size_t w = 0; w < words_for(m->fields[f].n_syms); w++) {
            if (st->sel[f][w] != 0) {
                fp_mix(st->fp, w);
                fp_mix(st->fp, st->sel[f][w]);
            }
        }
    }
    *out = st;
    return TSR_OK;
}

void tsr_engine_state_destroy(tsr_engine_state_t *st) {
    if (st == NULL)
        return;
    const tsr_engine_model_t *m = st->m;
    prop_free(&st->prop, m->n_tables);
    sel_free(m, st->sel);
    sel_free(m, st->possible);
    sel_free(m, st->alt);
    forest_cleanup(&st->fo);
    free(st);
}

/* Symbols of f occurring in the possible rows of every table holding f (union). */
static uint64_t *field_possible(const tsr_engine_model_t *m, prop_t *pr, size_t f) {
    uint64_t *set = tsr_xcalloc(words_for(m->fields[f].n_syms), sizeof *set);
    size_t nw = words_for(m->fields[f].n_syms);
    for (size_t t = 0; t < m->n_tables; t++) {
        int32_t c = col_of(&m->tables[t], (uint32_t)f);
        if (c < 0)
            continue;
        uint64_t *part = column_syms(m, &m->tables[t], (uint32_t)c, prop_rows(pr, t));
        for (size_t w = 0; w < nw; w++)
            set[w] |= part[w];
        free(part);
    }
    return set;
}

tsr_engine_vstate_t tsr_engine_state_value(tsr_engine_state_t *st, size_t f, size_t sym) {
    const tsr_engine_model_t *m = st->m;
    if (f >= m->n_fields || sym >= m->fields[f].n_syms)
        return TSR_ENGINE_X;
    if (st->possible[f] == NULL)
        st->possible[f] = field_possible(m, &st->prop, f);
    bool poss = bit_get(st->possible[f], sym);
    if (st->sel[f] != NULL && bit_get(st->sel[f], sym))
        return poss ? TSR_ENGINE_S : TSR_ENGINE_XS;
    if (poss)
        return TSR_ENGINE_O;
    if (st->sel[f] == NULL)
        return TSR_ENGINE_X;
    if (st->alt[f] == NULL) {
        prop_t alt;
        propagate(&alt, &st->fo, st->sel, f);
        st->alt[f] = field_possible(m, &alt, f);
        prop_free(&alt, m->n_tables);
    }
    return bit_get(st->alt[f], sym) ? TSR_ENGINE_A : TSR_ENGINE_X;
}

size_t tsr_engine_state_table_rows(const tsr_engine_state_t *st, size_t t) {
    const tsr_engine_model_t *m = st->m;
    if (t >= m->n_tables)
        return 0;
    /* The state caches rows computed on demand (documented: not thread safe). */
    const uint64_t *rows = prop_rows((prop_t *)&st->prop, t);
    if (rows == NULL)
        return m->tables[t].n_rows;
    size_t n = 0;
    for (size_t w = 0; w < words_for(m->tables[t].n_rows); w++)
        n += (size_t)__builtin_popcountll(rows[w]);
    return n;
}

const char *tsr_engine_vstate_name(tsr_engine_vstate_t v) {
    switch (v) {
    case TSR_ENGINE_S:
        return "S";
    case TSR_ENGINE_O:
        return "O";
    case TSR_ENGINE_A:
        return "A";
    case TSR_ENGINE_X:
        return "X";
    case TSR_ENGINE_XS:
        return "XS";
    }
    return "?";
}

const uint64_t *tsr_engine__state_rows(const tsr_engine_state_t *st, size_t t) {
    return t < st->m->n_tables ? prop_rows((prop_t *)&st->prop, t) : NULL;
}

void tsr_engine__state_fingerprint(const tsr_engine_state_t *st, uint64_t fp[2]) {
    fp[0] = st->fp[0];
    fp[1] = st->fp[1];
}

const tsr_engine_model_t *tsr_engine__state_model(const tsr_engine_state_t *st) {
    return st->m;
}

tsr_err_t tsr_engine__state_for_set(const tsr_engine_state_t *base, const tsr_engine__set_t *set,
                                    tsr_engine_state_t **out, tsr_error_t *err) {
    const tsr_engine_model_t *m = base->m;
    tsr_err_t rc = TSR_OK;
    *out = NULL;
    uint64_t **sel = set->all ? tsr_xcalloc(m->n_fields + 1, sizeof *sel) : sel_copy(m, base->sel);
    for (size_t i = 0; i < set->n_mods && rc == TSR_OK; i++) {
        const tsr_engine__set_mod_t *mod = &set->mods[i];
        size_t f;
        if (tsr_engine_model_field_find(m, mod->field, &f) != TSR_OK) {
            rc = tsr_error_set(err, TSR_ENOTFOUND, "set modifier: no field %s", mod->field);
            break;
        }
        free(sel[f]);
        sel[f] = NULL;
        if (mod->n_values == 0)
            continue; /* F= clears the field */
        uint64_t *b = tsr_xcalloc(words_for(m->fields[f].n_syms), sizeof *b);
        for (size_t k = 0; k < mod->n_values && rc == TSR_OK; k++) {
            const char *v = mod->values[k];
            if (v[0] == '"') {
                size_t *syms = NULL, n = 0;
                rc = tsr_engine_field_search(m, f, v + 1, &syms, &n, err);
                for (size_t j = 0; j < n; j++)
                    bit_set(b, syms[j]);
                free(syms);
            } else {
                uint32_t y = tsr_engine__field_lookup(&m->fields[f], v, (uint32_t)strlen(v));
                if (y != UINT32_MAX)
                    bit_set(b, y);
            }
        }
        /* A modifier that matches nothing selects nothing: keep an empty (all-zero) set. */
        sel[f] = b;
    }
    if (rc != TSR_OK) {
        sel_free(m, sel);
        return rc;
    }
    tsr_engine_state_t *st = tsr_xcalloc(1, sizeof *st);
    st->m = m;
    forest_build(m, &st->fo);
    st->sel = sel;
    propagate(&st->prop, &st->fo, st->sel, SIZE_MAX);
    st->possible = tsr_xcalloc(m->n_fields + 1, sizeof *st->possible);
    st->alt = tsr_xcalloc(m->n_fields + 1, sizeof *st->alt);
    *out = st;
    return TSR_OK;
}

size_t tsr_engine_selection_selected(const tsr_engine_selection_t *s, size_t f, size_t *syms,
                                     size_t cap) {
    if (f >= s->m->n_fields || s->sel[f] == NULL)
        return 0;
    size_t n = 0, ns = s->m->fields[f].n_syms;
    for (size_t w = 0; w * 64 < ns; w++) {
        uint64_t x = s->sel[f][w];
        while (x != 0) {
            size_t sym = w * 64 + (unsigned)__builtin_ctzll(x);
            x &= x - 1;
            if (n < cap)
                syms[n] = sym;
            n++;
        }
    }
    return n;
}

bool tsr_engine_selection_is_locked(const tsr_engine_selection_t *s, size_t f) {
    return f < s->m->n_fields && s->locked[f];
}
