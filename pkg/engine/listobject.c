/*
 * pkg/engine: list objects (one field's values with state and frequency, sorted and paged)
 * and value search (Qlik list box search: wildcards, numeric conditions, word prefixes).
 * Reads a finalized model and a state; the state caches the field sets it computes.
 */
#include <math.h>
#include <stdlib.h>

#include "engine_int.h"

#define SEARCH_MAX_PATTERN 4096 /* bytes */

struct tsr_engine_listobject {
    const tsr_engine_model_t *m;
    uint32_t field;
    size_t total, n_rows;
    tsr_engine_listobject_row_t *rows; /* the page */
    size_t counts[5];
};

typedef struct {
    const tsr_engine__field_t *f;
    const tsr_engine_listobject_def_t *def;
    const tsr_engine_listobject_row_t *all;
} lsort_t;

static _Thread_local const lsort_t *lsort_ctx;

static int state_group(tsr_engine_vstate_t v) {
    switch (v) {
    case TSR_ENGINE_S:
    case TSR_ENGINE_XS:
        return 0;
    case TSR_ENGINE_O:
    case TSR_ENGINE_A:
        return 1;
    default:
        return 2;
    }
}

static int sym_text_cmp(const tsr_engine__field_t *f, size_t a, size_t b) {
    const tsr_engine__sym_t *x = &f->syms[a], *y = &f->syms[b];
    size_t l = tsr_engine__sym_len(x) < tsr_engine__sym_len(y) ? tsr_engine__sym_len(x)
                                                               : tsr_engine__sym_len(y);
    int c = memcmp(f->pool + tsr_engine__sym_off(x), f->pool + tsr_engine__sym_off(y), l);
    if (c != 0)
        return c < 0 ? -1 : 1;
    return tsr_engine__sym_len(x) < tsr_engine__sym_len(y)
               ? -1
               : tsr_engine__sym_len(x) > tsr_engine__sym_len(y);
}

static int lrow_cmp(const void *pa, const void *pb) {
    const lsort_t *c = lsort_ctx;
    const tsr_engine_listobject_row_t *a = pa, *b = pb;
    if (c->def->sort_by_state) {
        int ga = state_group(a->state), gb = state_group(b->state);
        if (ga != gb)
            return ga < gb ? -1 : 1;
    }
    int r;
    if (c->def->by == TSR_ENGINE_SORT_LOAD)
        r = a->sym < b->sym ? -1 : a->sym > b->sym;
    else if (c->def->by == TSR_ENGINE_SORT_TEXT)
        r = sym_text_cmp(c->f, a->sym, b->sym);
    else {
        uint32_t ra = tsr_engine__rank(c->f, (uint32_t)a->sym),
                 rb = tsr_engine__rank(c->f, (uint32_t)b->sym);
        r = ra < rb ? -1 : ra > rb;
    }
    return c->def->descending ? -r : r;
}

tsr_err_t tsr_engine_listobject_compute(const tsr_engine_model_t *m, tsr_engine_state_t *st,
                                        const tsr_engine_listobject_def_t *def,
                                        tsr_engine_listobject_t **out, tsr_error_t *err) {
    size_t f;
    *out = NULL;
    if (def->field == NULL || tsr_engine_model_field_find(m, def->field, &f) != TSR_OK)
        return tsr_error_set(err, TSR_ENOTFOUND, "no field %s", def->field ? def->field : "");
    const tsr_engine__field_t *fd = &m->fields[f];
    size_t n = fd->n_syms;
    tsr_engine_listobject_row_t *all = tsr_xcalloc(n + 1, sizeof *all);
    tsr_engine_listobject_t *l = tsr_xcalloc(1, sizeof *l);
    l->m = m;
    l->field = (uint32_t)f;
    l->total = n;
    for (size_t s = 0; s < n; s++) {
        all[s].sym = s;
        all[s].state = tsr_engine_state_value(st, f, s);
        l->counts[all[s].state]++;
    }
    if (def->frequency) {
        /* Frequencies come from the largest table holding the field. */
        size_t best = SIZE_MAX;
        int32_t col = -1;
        for (size_t t = 0; t < m->n_tables; t++) {
            for (uint32_t c = 0; c < m->tables[t].n_cols; c++) {
                if (m->tables[t].cols[c].field == f &&
                    (best == SIZE_MAX || m->tables[t].n_rows > m->tables[best].n_rows)) {
                    best = t;
                    col = (int32_t)c;
                }
            }
        }
        if (best != SIZE_MAX) {
            const tsr_engine__table_t *tb = &m->tables[best];
            const uint64_t *rows = tsr_engine__state_rows(st, best);
            const tsr_engine__packed_t *pk = &tb->cols[col].data;
            uint64_t *cnt = tsr_xcalloc(n + 1, sizeof *cnt);
            for (size_t w = 0; w * 64 < tb->n_rows; w++) {
                uint64_t cand = rows != NULL ? rows[w] : ~UINT64_C(0);
                if (w * 64 + 64 > tb->n_rows)
                    cand &= (UINT64_C(1) << (tb->n_rows - w * 64)) - 1;
                while (cand != 0) {
                    size_t r = w * 64 + (unsigned)__builtin_ctzll(cand);
                    cand &= cand - 1;
                    cnt[tsr_engine__packed_get(pk, r)]++;
                }
            }
            for (size_t s = 0; s < n; s++)
                all[s].frequency = cnt[s + 1];
            free(cnt);
        }
    }
    bool identity = !def->sort_by_state && def->by == TSR_ENGINE_SORT_LOAD && !def->descending;
    if (!identity) {
        lsort_t c = {.f = fd, .def = def, .all = all};
        lsort_ctx = &c;
        qsort(all, n, sizeof *all, lrow_cmp);
        lsort_ctx = NULL;
    }
    size_t top = def->top < n ? def->top : n;
    size_t height = def->height == 0 || def->height > n - top ? n - top : def->height;
    l->rows = tsr_xcalloc(height + 1, sizeof *l->rows);
    memcpy(l->rows, all + top, height * sizeof *all);
    l->n_rows = height;
    free(all);
    *out = l;
    return TSR_OK;
}

void tsr_engine_listobject_destroy(tsr_engine_listobject_t *l) {
    if (l == NULL)
        return;
    free(l->rows);
    free(l);
}

size_t tsr_engine_listobject_rows(const tsr_engine_listobject_t *l) {
    return l->n_rows;
}
size_t tsr_engine_listobject_total_rows(const tsr_engine_listobject_t *l) {
    return l->total;
}

tsr_err_t tsr_engine_listobject_row(const tsr_engine_listobject_t *l, size_t i,
                                    tsr_engine_listobject_row_t *row, tsr_engine_dual_t *value) {
    if (i >= l->n_rows)
        return TSR_ENOTFOUND;
    if (row != NULL)
        *row = l->rows[i];
    if (value != NULL)
        return tsr_engine_model_field_symbol(l->m, l->field, l->rows[i].sym, value);
    return TSR_OK;
}

void tsr_engine_listobject_state_counts(const tsr_engine_listobject_t *l, size_t counts[5]) {
    memcpy(counts, l->counts, sizeof l->counts);
}

tsr_engine_listobject_t *tsr_engine__listobject_clone(const tsr_engine_listobject_t *l,
                                                      size_t *bytes) {
    tsr_engine_listobject_t *d = tsr_xmalloc(sizeof *d);
    *d = *l;
    d->rows = tsr_xmalloc((l->n_rows + 1) * sizeof *d->rows);
    memcpy(d->rows, l->rows, (l->n_rows + 1) * sizeof *d->rows);
    if (bytes != NULL)
        *bytes = sizeof *d + (l->n_rows + 1) * sizeof *d->rows;
    return d;
}

/* ---- search ---- */

static char lower(char c) {
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

/* Case-insensitive wildcard match of the whole text; iterative with one backtrack point. */
static bool wild_match(const char *p, size_t pn, const char *t, size_t tn) {
    size_t pi = 0, ti = 0, star = SIZE_MAX, mark = 0;
    while (ti < tn) {
        if (pi < pn && (p[pi] == '?' || lower(p[pi]) == lower(t[ti]))) {
            pi++;
            ti++;
        } else if (pi < pn && p[pi] == '*') {
            star = pi++;
            mark = ti;
        } else if (star != SIZE_MAX) {
            pi = star + 1;
            ti = ++mark;
        } else {
            return false;
        }
    }
    while (pi < pn && p[pi] == '*')
        pi++;
    return pi == pn;
}

static bool word_prefix(const char *p, size_t pn, const char *t, size_t tn) {
    for (size_t i = 0; i + pn <= tn; i++) {
        if (i > 0 && t[i - 1] != ' ' && t[i - 1] != '-' && t[i - 1] != '_')
            continue;
        size_t k = 0;
        while (k < pn && lower(p[k]) == lower(t[i + k]))
            k++;
        if (k == pn)
            return true;
    }
    return false;
}

/* Parse a numeric condition: one or two of <, <=, >, >=, = followed by a number. */
static bool parse_numcond(const char *p, size_t n, double lo[2], int ops[2], size_t *n_ops) {
    size_t i = 0;
    *n_ops = 0;
    while (i < n && *n_ops < 2) {
        int op;
        if (i + 1 < n && p[i] == '<' && p[i + 1] == '=') {
            op = 1;
            i += 2;
        } else if (i + 1 < n && p[i] == '>' && p[i + 1] == '=') {
            op = 3;
            i += 2;
        } else if (p[i] == '<') {
            op = 0;
            i++;
        } else if (p[i] == '>') {
            op = 2;
            i++;
        } else if (p[i] == '=') {
            op = 4;
            i++;
        } else {
            return false;
        }
        size_t j = i;
        while (j < n && p[j] != '<' && p[j] != '>' && p[j] != '=')
            j++;
        tsr_str_t num = tsr_str_trim(tsr_str_n(p + i, j - i));
        double v;
        if (num.n == 0 || !tsr_engine__parse_num(num.p, num.n, &v))
            return false;
        lo[*n_ops] = v;
        ops[*n_ops] = op;
        (*n_ops)++;
        i = j;
    }
    return i == n && *n_ops > 0;
}

static bool num_ok(double x, const double v[2], const int ops[2], size_t n_ops) {
    if (isnan(x))
        return false;
    for (size_t k = 0; k < n_ops; k++) {
        bool ok;
        switch (ops[k]) {
        case 0:
            ok = x < v[k];
            break;
        case 1:
            ok = x <= v[k];
            break;
        case 2:
            ok = x > v[k];
            break;
        case 3:
            ok = x >= v[k];
            break;
        default:
            ok = x == v[k];
            break;
        }
        if (!ok)
            return false;
    }
    return true;
}

tsr_err_t tsr_engine_field_search(const tsr_engine_model_t *m, size_t f, const char *pattern,
                                  size_t **syms, size_t *n, tsr_error_t *err) {
    *syms = NULL;
    *n = 0;
    if (f >= m->n_fields)
        return tsr_error_set(err, TSR_ENOTFOUND, "no field %zu", f);
    size_t pn = strlen(pattern);
    if (pn > SEARCH_MAX_PATTERN)
        return tsr_error_set(err, TSR_ETOOBIG, "search string too long");
    tsr_str_t pat = tsr_str_trim(tsr_str_n(pattern, pn));
    const tsr_engine__field_t *fd = &m->fields[f];
    double v[2];
    int ops[2];
    size_t n_ops = 0;
    bool numeric = pat.n > 0 && (pat.p[0] == '<' || pat.p[0] == '>' || pat.p[0] == '=') &&
                   parse_numcond(pat.p, pat.n, v, ops, &n_ops);
    bool wild = memchr(pat.p, '*', pat.n) != NULL || memchr(pat.p, '?', pat.n) != NULL;
    size_t *out = tsr_xcalloc(fd->n_syms + 1, sizeof *out), k = 0;
    for (uint32_t s = 0; s < fd->n_syms; s++) {
        const tsr_engine__sym_t *y = &fd->syms[s];
        const char *t = fd->pool + tsr_engine__sym_off(y);
        bool hit;
        if (numeric)
            hit = num_ok(y->num, v, ops, n_ops);
        else if (wild)
            hit = wild_match(pat.p, pat.n, t, tsr_engine__sym_len(y));
        else
            hit = pat.n == 0 ? false : word_prefix(pat.p, pat.n, t, tsr_engine__sym_len(y));
        if (hit)
            out[k++] = s;
    }
    *syms = out;
    *n = k;
    return TSR_OK;
}
