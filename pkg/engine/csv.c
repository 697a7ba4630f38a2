/*
 * pkg/engine: the delimited-text loader (Qlik "txt, utf8, embedded labels, msq"). One pass
 * over the bytes: cells are interned into the fields' symbol tables and appended to
 * bit-packed columns. A quote opens a cell only at its start; "" inside quotes is a quote.
 * Canonical numbers and dates are read while the cell's end is looked for and find their
 * symbol in the field's direct tables (no hashing); consecutive equal cells (order-level
 * fields repeated on each line) skip even that. A large input is split at a newline near
 * its middle and the two halves are parsed in parallel (see parse_rows).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine_int.h"

typedef struct {
    const char *p;
    size_t n;
    bool quoted; /* cell text is in the scratch buffer after unescaping */
} cell_t;

typedef struct {
    const char *buf, *end, *cur;
    char delim, quote;
    size_t line; /* 1-based */
    const char *line_start;
    char *scratch; /* unescaped quoted cell, owned */
    size_t scratch_cap;
} reader_t;

/* Read one cell starting at r->cur. *eol is set when the cell ended its line (or the
 * input). Returns false on a malformed quoted cell. */
static bool read_cell(reader_t *r, cell_t *c, bool *eol) {
    const char *p = r->cur, *end = r->end;
    c->quoted = false;
    if (p < end && *p == r->quote) {
        size_t n = 0;
        p++;
        for (;;) {
            if (p >= end)
                return false;
            if (*p == r->quote) {
                if (p + 1 < end && p[1] == r->quote) {
                    p++;
                } else {
                    p++;
                    break;
                }
            }
            if (n == r->scratch_cap) {
                if (n >= TSR_ENGINE_MAX_CELL)
                    return false;
                r->scratch_cap = r->scratch_cap ? r->scratch_cap * 2 : 256;
                r->scratch = tsr_xrealloc(r->scratch, r->scratch_cap);
            }
            if (*p == '\n') {
                r->line++;
                r->line_start = p + 1;
            }
            r->scratch[n++] = *p++;
        }
        c->p = r->scratch;
        c->n = n;
        c->quoted = true;
        /* Anything after the closing quote up to the delimiter is dropped, as msq does. */
        while (p < end && *p != r->delim && *p != '\n')
            p++;
    } else {
        const char *s = p;
        char d = r->delim;
        while (p < end && *p != d && *p != '\n')
            p++;
        c->p = s;
        c->n = (size_t)(p - s);
        if (c->n > 0 && (p >= end || *p == '\n') && s[c->n - 1] == '\r')
            c->n--;
        if (c->n > TSR_ENGINE_MAX_CELL)
            return false;
    }
    if (p >= end) {
        *eol = true;
        r->cur = end;
    } else if (*p == '\n') {
        *eol = true;
        r->cur = p + 1;
        r->line++;
        r->line_start = r->cur;
    } else {
        *eol = false;
        r->cur = p + 1;
    }
    return true;
}

typedef struct {
    const char *last_p; /* previous cell's bytes (in the input, unquoted cells only) */
    size_t last_n;
    uint32_t last_v;   /* its packed value (symbol + 1) */
    uint32_t last_tab; /* its direct-table key when it had one (else UINT32_MAX) */
    uint32_t last_key;
} colcache_t;

/* Below this size one thread loads the file (thread start-up outweighs the gain). */
size_t tsr_engine__csv_parallel_min = 1u << 20;

enum { E_NONE, E_FEW, E_MALFORMED, E_MANY };

/* One run of rows. Chunk 0 interns straight into the model's fields; a later chunk interns
 * into its own symbol tables (first occurrence order within the chunk), merged into the
 * model's fields in chunk order afterwards, so symbols keep file order. */
typedef struct {
    const char *table;
    reader_t r;
    const char *stop; /* stop at the first row start at or after this */
    const uint32_t *fields;
    tsr_engine__field_t **dst; /* per column: symbol table interned into; NULL: not loaded */
    tsr_engine__packed_t *cols;
    colcache_t *cache;
    uint32_t n_cols;
    size_t n_rows;
    /* first error; lines are this chunk's (chunk 1 counts from 1 at its start) */
    int ekind;
    size_t eline, ecol;
    uint32_t ek;
} chunk_t;

static inline void col_push(tsr_engine__packed_t *p, uint32_t v) {
    size_t bit = p->n * p->bits;
    if ((uint64_t)v >> p->bits != 0 || bit + p->bits > p->n_words * 64) {
        tsr_engine__packed_push(p, v);
        return;
    }
    size_t w = bit >> 6;
    unsigned sh = (unsigned)(bit & 63);
    p->words[w] |= (uint64_t)v << sh;
    if (sh + p->bits > 64)
        p->words[w + 1] |= (uint64_t)v >> (64 - sh);
    p->n++;
}

static bool chunk_fail(chunk_t *c, int kind, size_t line, size_t col, uint32_t k) {
    c->ekind = kind;
    c->eline = line;
    c->ecol = col;
    c->ek = k;
    return false;
}

/* Parse rows until the first row start at or after c->stop (or the end). */
static bool chunk_rows(chunk_t *c, reader_t *r, size_t *rows);

/* The reader and the row count live on the parsing thread's stack while it runs: the two
 * chunks' structs are neighbours in memory and would share cache lines. */
static bool chunk_parse(chunk_t *c) {
    reader_t r = c->r;
    size_t rows = 0;
    bool ok = chunk_rows(c, &r, &rows);
    c->r = r;
    c->n_rows += rows;
    return ok;
}

static bool chunk_rows(chunk_t *c, reader_t *r, size_t *rows) {
    const uint32_t n_cols = c->n_cols;
    const char *end = r->end;
    const char delim = r->delim, quote = r->quote;
    while (r->cur < end && r->cur < c->stop) {
        /* A blank line (also the one after the final newline) carries no row. */
        if (*r->cur == '\n' || (*r->cur == '\r' && r->cur + 1 < r->end && r->cur[1] == '\n')) {
            r->cur += *r->cur == '\n' ? 1 : 2;
            r->line++;
            r->line_start = r->cur;
            continue;
        }
        size_t row_line = r->line;
        bool eol = false;
        for (uint32_t k = 0; k < n_cols; k++) {
            cell_t cl;
            const char *at = r->cur;
            if (eol) {
                return chunk_fail(c, E_FEW, row_line, (size_t)(at - r->line_start) + 1, k);
            }
            /* keyed: the cell is a canonical number or date with direct-table key tab/key. */
            bool keyed = false;
            uint32_t tab = 0, key = 0;
            if (at < end && *at != quote) {
                /* Unquoted cell (the common case), inline: digits are read as a number while
                 * looking for the cell's end (tsr_engine__canonical_key's rules). */
                const char *p = at;
                uint64_t mant = 0;
                unsigned d;
                while (p < end && (d = (unsigned)(unsigned char)*p - '0') <= 9) {
                    mant = mant * 10 + d;
                    p++;
                }
                const char *ip = p;
                if (p < end && *p == '.' && p > at) {
                    const char *q = p + 1;
                    while (q < end && (d = (unsigned)(unsigned char)*q - '0') <= 9) {
                        mant = mant * 10 + d;
                        q++;
                    }
                    if (q > p + 1)
                        p = q;
                }
                if (p < end && *p != delim && *p != '\n') {
                    while (p < end && *p != delim && *p != '\n')
                        p++;
                    ip = NULL; /* not a plain number */
                }
                cl.p = at;
                cl.n = (size_t)(p - at);
                cl.quoted = false;
                bool last = p >= end || *p == '\n';
                if (ip != NULL) {
                    uint32_t fd = (uint32_t)(p - ip) - (p > ip); /* digits after the dot */
                    keyed = cl.n >= 1 && cl.n <= 9 && !(at[0] == '0' && ip - at > 1) && fd <= 3 &&
                            mant < TSR_ENGINE__DIRECT_MAX;
                    tab = fd;
                    key = (uint32_t)mant;
                } else {
                    if (last && cl.n > 0 && at[cl.n - 1] == '\r')
                        cl.n--;
                    if (cl.n == 10) { /* dates, inline */
                        key = tsr_engine__date_key(cl.p, 10);
                        keyed = key != UINT32_MAX;
                        tab = 4;
                    } else if (cl.n <= TSR_ENGINE_MAX_CELL) {
                        keyed = tsr_engine__text_key(cl.p, (uint32_t)cl.n, &tab, &key);
                    }
                }
                if (cl.n > TSR_ENGINE_MAX_CELL)
                    return chunk_fail(c, E_MALFORMED, r->line, (size_t)(at - r->line_start) + 1, k);
                eol = last;
                if (p >= end) {
                    r->cur = end;
                } else {
                    r->cur = p + 1;
                    if (last) {
                        r->line++;
                        r->line_start = r->cur;
                    }
                }
            } else {
                const char *ls = r->line_start;
                if (!read_cell(r, &cl, &eol))
                    return chunk_fail(c, E_MALFORMED, r->line, (size_t)(at - ls) + 1, k);
                keyed = tsr_engine__text_key(cl.p, (uint32_t)cl.n, &tab, &key);
            }
            tsr_engine__field_t *f = c->dst[k];
            if (f == NULL)
                continue;
            uint32_t v;
            colcache_t *cc = &c->cache[k];
            if (keyed && f->keyed) {
                /* Canonical number or date: the previous cell's key, else the direct table. */
                if (key == cc->last_key && tab == cc->last_tab) {
                    col_push(&c->cols[k], cc->last_v);
                    continue;
                }
                if ((v = tsr_engine__direct_get(f, tab, key)) != 0) {
                    cc->last_key = key;
                    cc->last_tab = tab;
                    cc->last_v = v;
                    cc->last_p = NULL;
                    col_push(&c->cols[k], v);
                    continue;
                }
            }
            if (!cl.quoted && cc->last_n == cl.n && cc->last_p != NULL &&
                memcmp(cc->last_p, cl.p, cl.n) == 0) {
                v = cc->last_v;
            } else {
                v = tsr_engine__field_intern_fast(f, cl.p, (uint32_t)cl.n) + 1;
                cc->last_p = cl.quoted ? NULL : cl.p;
                cc->last_n = cl.n;
                cc->last_v = v;
                cc->last_tab = UINT32_MAX; /* a text key is set once its symbol is known */
            }
            col_push(&c->cols[k], v);
        }
        if (!eol)
            return chunk_fail(c, E_MANY, row_line, (size_t)(r->cur - r->line_start) + 1, 0);
        (*rows)++;
    }
    return true;
}

static void *chunk_run(void *arg) {
    chunk_parse(arg);
    return NULL;
}

static tsr_err_t chunk_error(const chunk_t *c, size_t line_base, tsr_error_t *err) {
    size_t line = c->eline + line_base;
    switch (c->ekind) {
    case E_FEW:
        return tsr_error_set(err, TSR_EINVAL,
                             "%s: line %zu column %zu: %u fields where %u expected", c->table, line,
                             c->ecol, c->ek, c->n_cols);
    case E_MALFORMED:
        return tsr_error_set(err, TSR_EINVAL, "%s: line %zu column %zu: malformed cell", c->table,
                             line, c->ecol);
    default:
        return tsr_error_set(err, TSR_EINVAL, "%s: line %zu column %zu: more than %u fields",
                             c->table, line, c->ecol, c->n_cols);
    }
}

/* Merge of chunk 1's column k into chunk 0's: its symbols interned into the model's field
 * in chunk order, its values remapped and appended at the final width. */
typedef struct {
    tsr_engine_model_t *m;
    chunk_t *c0, *c1;
    uint32_t *cols; /* columns of this job */
    uint32_t n;
} merge_job_t;

static inline void put_bits(uint64_t *words, size_t bit, unsigned bits, uint32_t v) {
    size_t w = bit >> 6;
    unsigned sh = (unsigned)(bit & 63);
    words[w] |= (uint64_t)v << sh;
    if (sh + bits > 64)
        words[w + 1] |= (uint64_t)v >> (64 - sh);
}

static void merge_column(tsr_engine_model_t *m, chunk_t *c0, chunk_t *c1, uint32_t k) {
    tsr_engine__field_t *loc = c1->dst[k], *g = &m->fields[c0->fields[k]];
    uint32_t *map = tsr_xmalloc(((size_t)loc->n_syms + 1) * sizeof *map);
    uint32_t maxv = 0;
    map[0] = 0; /* null stays null */
    for (uint32_t s = 0; s < loc->n_syms; s++) {
        const tsr_engine__sym_t *y = &loc->syms[s];
        uint32_t v = tsr_engine__field_intern_dual(g, loc->pool + tsr_engine__sym_off(y),
                                                   tsr_engine__sym_len(y), y->num) +
                     1;
        map[s + 1] = v;
        maxv = v > maxv ? v : maxv;
    }
    tsr_engine__packed_t *p0 = &c0->cols[k], *p1 = &c1->cols[k];
    unsigned bits = tsr_engine__bits_for(maxv);
    if (bits < p0->bits)
        bits = p0->bits;
    size_t n = p0->n + p1->n;
    size_t need = (n * bits + 63) / 64;
    tsr_engine__packed_t q;
    tsr_engine__packed_init(&q, bits);
    q.words = tsr_xcalloc(need + 1, sizeof *q.words);
    size_t bit = 0;
    if (bits == p0->bits) {
        bit = p0->n * bits;
        if (bit > 0)
            memcpy(q.words, p0->words, (bit + 63) / 64 * sizeof *q.words);
    } else {
        uint64_t mask = (UINT64_C(1) << p0->bits) - 1;
        for (size_t i = 0; i < p0->n; i++, bit += bits)
            put_bits(q.words, bit, bits, tsr_engine__unpack(p0->words, p0->bits, mask, i));
    }
    q.n_words = need;
    q.n = n;
    uint64_t mask1 = (UINT64_C(1) << p1->bits) - 1;
    for (size_t i = 0; i < p1->n; i++, bit += bits)
        put_bits(q.words, bit, bits, map[tsr_engine__unpack(p1->words, p1->bits, mask1, i)]);
    free(map);
    tsr_engine__packed_cleanup(p0);
    tsr_engine__packed_cleanup(p1);
    *p0 = q;
}

static void *merge_run(void *arg) {
    merge_job_t *j = arg;
    for (uint32_t i = 0; i < j->n; i++)
        merge_column(j->m, j->c0, j->c1, j->cols[i]);
    return NULL;
}

static void chunk_cleanup(chunk_t *c, bool local) {
    if (c->cols != NULL) {
        for (uint32_t k = 0; k < c->n_cols; k++)
            tsr_engine__packed_cleanup(&c->cols[k]);
    }
    if (local && c->dst != NULL) {
        for (uint32_t k = 0; k < c->n_cols; k++) {
            if (c->dst[k] != NULL) {
                tsr_engine__field_cleanup(c->dst[k]);
                free(c->dst[k]);
            }
        }
    }
    free(c->cols);
    free(c->dst);
    free(c->cache);
    free(c->r.scratch);
    memset(c, 0, sizeof *c);
}

/* Zeroed array on cache lines of its own (the other thread writes its neighbours). */
static void *line_calloc(size_t n, size_t size) {
    size_t bytes = ((n ? n : 1) * size + 127) / 128 * 128;
    void *p = aligned_alloc(128, bytes);
    if (p == NULL) {
        fprintf(stderr, "engine: out of memory\n");
        abort();
    }
    memset(p, 0, bytes);
    return p;
}

static void chunk_init(chunk_t *c, tsr_engine_model_t *m, const char *table, const reader_t *r,
                       const uint32_t *fields, uint32_t n_cols, bool local) {
    memset(c, 0, sizeof *c);
    c->table = table;
    c->r = *r;
    c->r.scratch = NULL;
    c->r.scratch_cap = 0;
    c->stop = r->end;
    c->fields = fields;
    c->n_cols = n_cols;
    c->dst = line_calloc(n_cols, sizeof *c->dst);
    c->cols = line_calloc(n_cols, sizeof *c->cols);
    c->cache = line_calloc(n_cols, sizeof *c->cache);
    for (uint32_t k = 0; k < n_cols; k++)
        c->cache[k].last_tab = UINT32_MAX;
    for (uint32_t k = 0; k < n_cols; k++) {
        if (fields[k] == UINT32_MAX) {
            tsr_engine__packed_init(&c->cols[k], 1);
            continue;
        }
        tsr_engine__field_t *g = &m->fields[fields[k]];
        if (local) {
            c->dst[k] = tsr_xcalloc(1, sizeof *c->dst[k]);
            tsr_engine__field_init(c->dst[k], g->name, strlen(g->name));
            tsr_engine__packed_init(&c->cols[k], 1);
        } else {
            c->dst[k] = g;
            tsr_engine__packed_init(&c->cols[k], tsr_engine__bits_for((uint64_t)g->n_syms + 1));
        }
    }
}

/* Parse the rows after the header: with a large input, two chunks split at a newline near
 * the middle, parsed in parallel. The second chunk's start is a guess (a newline inside a
 * quoted cell is not a row end): it is used only when the first chunk, parsed from the
 * true start, ends exactly there; otherwise the first chunk goes on to the end. */
static tsr_err_t parse_rows(tsr_engine_model_t *m, const char *table, const reader_t *r,
                            const uint32_t *fields, uint32_t n_cols,
                            tsr_engine__packed_t **cols_out, size_t *rows_out, tsr_error_t *err) {
    chunk_t c0, c1;
    chunk_init(&c0, m, table, r, fields, n_cols, false);
    memset(&c1, 0, sizeof c1);
    const char *split = NULL;
    size_t len = (size_t)(r->end - r->cur);
    if (len >= tsr_engine__csv_parallel_min && len >= 2) {
        const char *mid = r->cur + len / 2;
        const char *nl = memchr(mid, '\n', (size_t)(r->end - mid));
        if (nl != NULL && nl + 1 < r->end)
            split = nl + 1;
    }
    pthread_t th;
    bool threaded = false;
    if (split != NULL) {
        chunk_init(&c1, m, table, r, fields, n_cols, true);
        c1.r.cur = split;
        c1.r.line = 1;
        c1.r.line_start = split;
        c0.stop = split;
        /* The helper thread takes the first chunk (the model's symbol tables, kept) and
         * this thread the second (temporary tables, freed after the merge): glibc's
         * malloc_trim shrinks the main arena fully but not the top of a thread's arena. */
        threaded = pthread_create(&th, NULL, chunk_run, &c0) == 0;
        if (!threaded) {
            chunk_cleanup(&c1, true);
            c0.stop = r->end;
        }
    }
    bool ok, use1 = false;
    if (threaded) {
        chunk_parse(&c1);
        pthread_join(th, NULL);
        ok = c0.ekind == E_NONE;
        use1 = ok && c0.r.cur == split;
        if (!use1) {
            chunk_cleanup(&c1, true);
            if (ok) { /* the guess was inside a quoted cell: go on serially */
                c0.stop = r->end;
                ok = chunk_parse(&c0);
            }
        }
    } else {
        ok = chunk_parse(&c0);
    }
    tsr_err_t rc = TSR_OK;
    if (!ok) {
        rc = chunk_error(&c0, 0, err);
    } else if (use1 && c1.ekind != E_NONE) {
        rc = chunk_error(&c1, c0.r.line - 1, err);
    }
    if (rc == TSR_OK && use1) {
        /* Columns split between two threads, heaviest first. */
        uint32_t *order = tsr_xmalloc((n_cols + 1) * sizeof *order);
        uint64_t *cost = tsr_xcalloc(n_cols + 1, sizeof *cost);
        uint32_t n_order = 0;
        for (uint32_t k = 0; k < n_cols; k++) {
            if (c1.dst[k] == NULL)
                continue;
            cost[k] = (uint64_t)c1.dst[k]->n_syms * 16 + c0.cols[k].n + c1.cols[k].n;
            uint32_t i = n_order++;
            while (i > 0 && cost[order[i - 1]] < cost[k]) {
                order[i] = order[i - 1];
                i--;
            }
            order[i] = k;
        }
        merge_job_t jobs[2];
        uint64_t load[2] = {0, 0};
        for (int j = 0; j < 2; j++) {
            jobs[j] = (merge_job_t){.m = m, .c0 = &c0, .c1 = &c1};
            jobs[j].cols = tsr_xmalloc((n_cols + 1) * sizeof *jobs[j].cols);
        }
        for (uint32_t i = 0; i < n_order; i++) {
            int j = load[1] < load[0];
            jobs[j].cols[jobs[j].n++] = order[i];
            load[j] += cost[order[i]];
        }
        bool t2 = jobs[1].n > 0 && pthread_create(&th, NULL, merge_run, &jobs[1]) == 0;
        merge_run(&jobs[0]);
        if (t2)
            pthread_join(th, NULL);
        else
            merge_run(&jobs[1]);
        for (int j = 0; j < 2; j++)
            free(jobs[j].cols);
        free(order);
        free(cost);
        c0.n_rows += c1.n_rows;
    }
    if (use1)
        chunk_cleanup(&c1, true);
    if (rc != TSR_OK) {
        chunk_cleanup(&c0, false);
        return rc;
    }
    *cols_out = c0.cols;
    *rows_out = c0.n_rows;
    c0.cols = NULL;
    chunk_cleanup(&c0, false);
    return TSR_OK;
}

tsr_err_t tsr_engine_model_load_csv_mem(tsr_engine_model_t *m, const char *table, const char *buf,
                                        size_t len, const tsr_engine_csv_opts_t *opts,
                                        tsr_error_t *err) {
    return tsr_engine__load_csv(m, table, buf, len, opts, NULL, 0, err);
}

tsr_err_t tsr_engine__load_csv(tsr_engine_model_t *m, const char *table, const char *buf,
                               size_t len, const tsr_engine_csv_opts_t *opts,
                               const tsr_engine__proj_t *proj, size_t n_proj, tsr_error_t *err) {
    tsr_err_t rc = TSR_OK;
    bool *proj_seen = NULL;
    size_t dummy;
    reader_t r = {.buf = buf, .end = buf + len, .cur = buf, .line = 1, .line_start = buf};
    r.delim = opts && opts->delimiter ? opts->delimiter : ',';
    r.quote = opts && opts->quote ? opts->quote : '"';
    bool labels = !(opts && opts->no_labels);
    uint32_t *fields = NULL;
    tsr_engine__packed_t *cols = NULL;
    uint32_t n_cols = 0;
    size_t n_rows = 0;

    if (m->finalized)
        return tsr_error_set(err, TSR_EINVAL, "model is finalized");
    if (strlen(table) == 0 || strlen(table) > TSR_ENGINE_MAX_NAME)
        return tsr_error_set(err, TSR_EINVAL, "bad table name");
    if (tsr_engine_model_table_find(m, table, &dummy) == TSR_OK)
        return tsr_error_set(err, TSR_ECONFLICT, "table %s exists", table);
    /* A UTF-8 byte order mark is not part of the first label. */
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
        r.cur += 3;
    if (r.cur >= r.end)
        return tsr_error_set(err, TSR_EINVAL, "%s: empty file", table);

    /* Header (or the first row's width when there are no labels). */
    {
        reader_t h = r;
        size_t cap = 0;
        bool eol = false;
        while (!eol) {
            cell_t c;
            size_t col = (size_t)(h.cur - h.line_start) + 1;
            if (!read_cell(&h, &c, &eol)) {
                rc = tsr_error_set(err, TSR_EINVAL, "%s: line %zu column %zu: malformed cell",
                                   table, h.line, col);
                free(h.scratch);
                goto out;
            }
            if (n_cols >= TSR_ENGINE_MAX_FIELDS_PER_TABLE) {
                rc = tsr_error_set(err, TSR_ETOOBIG, "%s: more than %d fields", table,
                                   TSR_ENGINE_MAX_FIELDS_PER_TABLE);
                free(h.scratch);
                goto out;
            }
            if (n_cols == cap) {
                cap = cap ? cap * 2 : 16;
                fields = tsr_xrealloc(fields, cap * sizeof *fields);
            }
            char name[32];
            const char *np = c.p;
            size_t nn = c.n;
            if (!labels) {
                nn = (size_t)snprintf(name, sizeof name, "@%u", n_cols + 1);
                np = name;
            }
            if (nn == 0 || nn > TSR_ENGINE_MAX_NAME) {
                rc = tsr_error_set(err, TSR_EINVAL, "%s: line %zu column %zu: bad field name",
                                   table, h.line, col);
                free(h.scratch);
                goto out;
            }
            if (proj != NULL) {
                size_t i = 0;
                while (i < n_proj &&
                       !(strlen(proj[i].src) == nn && memcmp(proj[i].src, np, nn) == 0))
                    i++;
                if (i == n_proj) {
                    fields[n_cols++] = UINT32_MAX; /* not loaded */
                    continue;
                }
                if (proj_seen == NULL)
                    proj_seen = tsr_xcalloc(n_proj, sizeof *proj_seen);
                proj_seen[i] = true;
                np = proj[i].dst;
                nn = strlen(np);
            }
            uint32_t f = tsr_engine__model_field(m, np, nn);
            for (uint32_t k = 0; k < n_cols; k++) {
                if (fields[k] == f && f != UINT32_MAX) {
                    rc = tsr_error_set(err, TSR_EINVAL,
                                       "%s: line %zu column %zu: duplicate field %.*s", table,
                                       h.line, col, (int)nn, np);
                    free(h.scratch);
                    goto out;
                }
            }
            fields[n_cols++] = f;
        }
        free(h.scratch);
        if (labels) {
            r.cur = h.cur;
            r.line = h.line;
            r.line_start = h.line_start;
        }
    }

    for (size_t i = 0; i < n_proj; i++) {
        if (proj_seen == NULL || !proj_seen[i]) {
            rc = tsr_error_set(err, TSR_EINVAL, "%s: field %s not found in the file", table,
                               proj[i].src);
            goto out;
        }
    }

    rc = parse_rows(m, table, &r, fields, n_cols, &cols, &n_rows, err);
    if (rc != TSR_OK)
        goto out;

    {
        size_t t = tsr_engine__model_add_table(m, table);
        tsr_engine__table_t *tb = &m->tables[t];
        tb->cols = tsr_xcalloc(n_cols ? n_cols : 1, sizeof *tb->cols);
        tb->n_rows = n_rows;
        for (uint32_t k = 0; k < n_cols; k++) {
            if (fields[k] == UINT32_MAX) {
                tsr_engine__packed_cleanup(&cols[k]);
                continue;
            }
            tsr_engine__column_t *col = &tb->cols[tb->n_cols++];
            col->field = fields[k];
            col->data = cols[k];
            if (col->data.words == NULL) /* zero rows: keep the spare word */
                col->data.words = tsr_xcalloc(1, sizeof(uint64_t));
        }
        free(cols);
        cols = NULL;
    }
out:
    if (cols != NULL) {
        for (uint32_t k = 0; k < n_cols; k++)
            tsr_engine__packed_cleanup(&cols[k]);
        free(cols);
    }
    free(fields);
    free(proj_seen);
    free(r.scratch);
    return rc;
}

tsr_err_t tsr_engine_model_load_csv(tsr_engine_model_t *m, const char *table, const char *path,
                                    const tsr_engine_csv_opts_t *opts, tsr_error_t *err) {
    return tsr_engine__load_csv_file(m, table, path, opts, NULL, 0, err);
}

tsr_err_t tsr_engine__load_csv_file(tsr_engine_model_t *m, const char *table, const char *path,
                                    const tsr_engine_csv_opts_t *opts,
                                    const tsr_engine__proj_t *proj, size_t n_proj,
                                    tsr_error_t *err) {
    tsr_err_t rc;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return tsr_error_set(err, TSR_EIO, "open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = tsr_error_set(err, TSR_EIO, "stat %s: %s", path, strerror(errno));
        close(fd);
        return rc;
    }
    if (st.st_size == 0) {
        close(fd);
        return tsr_engine__load_csv(m, table, "", 0, opts, proj, n_proj, err);
    }
    size_t len = (size_t)st.st_size;
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return tsr_error_set(err, TSR_EIO, "mmap %s: %s", path, strerror(errno));
    rc = tsr_engine__load_csv(m, table, map, len, opts, proj, n_proj, err);
    munmap(map, len);
    return rc;
}

tsr_err_t tsr_engine__csv_header(const char *path, const char *buf, size_t len,
                                 const tsr_engine_csv_opts_t *opts, char ***names, size_t *n,
                                 tsr_error_t *err) {
    tsr_err_t rc = TSR_OK;
    char *head = NULL;
    *names = NULL;
    *n = 0;
    if (path != NULL) {
        /* The header is at the start of the file: read up to 1 MB of it. */
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            return tsr_error_set(err, TSR_EIO, "open %s: %s", path, strerror(errno));
        head = tsr_xmalloc(TSR_ENGINE_MAX_CELL);
        ssize_t got = read(fd, head, TSR_ENGINE_MAX_CELL);
        close(fd);
        if (got < 0) {
            free(head);
            return tsr_error_set(err, TSR_EIO, "read %s: %s", path, strerror(errno));
        }
        buf = head;
        len = (size_t)got;
    }
    reader_t r = {.buf = buf, .end = buf + len, .cur = buf, .line = 1, .line_start = buf};
    r.delim = opts && opts->delimiter ? opts->delimiter : ',';
    r.quote = opts && opts->quote ? opts->quote : '"';
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
        r.cur += 3;
    bool eol = r.cur >= r.end;
    char **out = NULL;
    size_t k = 0;
    while (!eol) {
        cell_t c;
        if (!read_cell(&r, &c, &eol) || k >= TSR_ENGINE_MAX_FIELDS_PER_TABLE) {
            rc = tsr_error_set(err, TSR_EINVAL, "malformed header");
            break;
        }
        out = tsr_xrealloc(out, (k + 1) * sizeof *out);
        if (opts != NULL && opts->no_labels) {
            char nm[32];
            snprintf(nm, sizeof nm, "@%zu", k + 1);
            out[k++] = tsr_xstrdup(nm);
        } else {
            out[k++] = tsr_xstrndup(c.p, c.n);
        }
    }
    free(r.scratch);
    free(head);
    if (rc != TSR_OK) {
        for (size_t i = 0; i < k; i++)
            free(out[i]);
        free(out);
        return rc;
    }
    *names = out;
    *n = k;
    return TSR_OK;
}
