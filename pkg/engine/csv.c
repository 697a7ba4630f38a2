/*
 * pkg/engine: the delimited-text loader (Qlik "txt, utf8, embedded labels, msq"). One pass
 * over the bytes: cells are interned into the fields' symbol tables and appended to
 * bit-packed columns. A quote opens a cell only at its start; "" inside quotes is a quote.
 * Consecutive equal cells (order-level fields repeated on each line) skip the hash probe.
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
    uint32_t last_v; /* its packed value (symbol + 1) */
} colcache_t;

/* Below this size one thread loads the file (thread start-up outweighs the gain). */
#define PARALLEL_MIN_BYTES (1u << 20)

typedef struct {
    tsr_engine_model_t *m;
    const char *table;
    reader_t r;
    const uint32_t *fields;
    tsr_engine__packed_t *cols;
    uint32_t n_cols;
    unsigned tid, n_threads; /* this worker owns columns k with k % n_threads == tid */
    size_t n_rows;
    tsr_err_t rc;
    tsr_error_t err;
} worker_t;

static tsr_err_t worker_loop(worker_t *w, tsr_engine__packed_t *cols, colcache_t *cache);

static void *worker_run(void *arg) {
    worker_t *w = arg;
    /* Columns and caches are private copies while the loop runs: neighbours in the shared
     * arrays belong to the other worker and would bounce cache lines. */
    tsr_engine__packed_t *cols = tsr_xcalloc(w->n_cols, sizeof *cols);
    colcache_t *cache = tsr_xcalloc(w->n_cols, sizeof *cache);
    memcpy(cols, w->cols, w->n_cols * sizeof *cols);
    w->rc = worker_loop(w, cols, cache);
    for (uint32_t k = w->tid; k < w->n_cols; k += w->n_threads)
        w->cols[k] = cols[k];
    free(cols);
    free(cache);
    return NULL;
}

static tsr_err_t worker_loop(worker_t *w, tsr_engine__packed_t *cols, colcache_t *cache) {
    reader_t *r = &w->r;
    while (r->cur < r->end) {
        /* A blank line (also the one after the final newline) carries no row. */
        if (*r->cur == '\n' || (*r->cur == '\r' && r->cur + 1 < r->end && r->cur[1] == '\n')) {
            r->cur += *r->cur == '\n' ? 1 : 2;
            r->line++;
            r->line_start = r->cur;
            continue;
        }
        size_t row_line = r->line;
        bool eol = false;
        for (uint32_t k = 0; k < w->n_cols; k++) {
            cell_t c;
            size_t col = (size_t)(r->cur - r->line_start) + 1;
            if (eol) {
                return tsr_error_set(&w->err, TSR_EINVAL,
                                     "%s: line %zu column %zu: %u fields where %u expected",
                                     w->table, row_line, col, k, w->n_cols);
            }
            if (!read_cell(r, &c, &eol)) {
                return tsr_error_set(&w->err, TSR_EINVAL, "%s: line %zu column %zu: malformed cell",
                                     w->table, r->line, col);
            }
            if (k % w->n_threads != w->tid || w->fields[k] == UINT32_MAX)
                continue;
            colcache_t *cc = &cache[k];
            uint32_t v;
            if (!c.quoted && cc->last_p != NULL && cc->last_n == c.n &&
                memcmp(cc->last_p, c.p, c.n) == 0) {
                v = cc->last_v;
            } else {
                tsr_engine__field_t *f = &w->m->fields[w->fields[k]];
                v = tsr_engine__field_intern_fast(f, c.p, (uint32_t)c.n) + 1;
                cc->last_p = c.quoted ? NULL : c.p;
                cc->last_n = c.n;
                cc->last_v = v;
            }
            tsr_engine__packed_push(&cols[k], v);
        }
        if (!eol) {
            return tsr_error_set(&w->err, TSR_EINVAL,
                                 "%s: line %zu column %zu: more than %u fields", w->table, row_line,
                                 (size_t)(r->cur - r->line_start) + 1, w->n_cols);
        }
        w->n_rows++;
    }
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
    cols = tsr_xcalloc(n_cols, sizeof *cols);
    for (uint32_t k = 0; k < n_cols; k++) {
        uint32_t have = fields[k] == UINT32_MAX ? 0 : m->fields[fields[k]].n_syms;
        tsr_engine__packed_init(&cols[k], tsr_engine__bits_for(have + 1));
    }

    {
        /* Two workers each parse every row but intern only their own columns: fields of one
         * table are distinct, so the workers share no mutable state. */
        worker_t w[2];
        for (int i = 0; i < 2; i++) {
            w[i] = (worker_t){.m = m,
                              .table = table,
                              .r = r,
                              .fields = fields,
                              .cols = cols,
                              .n_cols = n_cols,
                              .tid = (unsigned)i,
                              .n_threads = n_cols > 1 ? 2u : 1u};
            w[i].r.scratch = NULL;
            w[i].r.scratch_cap = 0;
        }
        pthread_t th;
        bool threaded = n_cols > 1 && len >= PARALLEL_MIN_BYTES &&
                        pthread_create(&th, NULL, worker_run, &w[1]) == 0;
        if (!threaded)
            w[0].n_threads = 1;
        worker_run(&w[0]);
        if (threaded)
            pthread_join(th, NULL);
        free(w[0].r.scratch);
        free(w[1].r.scratch);
        for (int i = 0; i < (threaded ? 2 : 1) && rc == TSR_OK; i++) {
            if (w[i].rc != TSR_OK)
                rc = tsr_error_set(err, w[i].rc, "%s", w[i].err.msg);
        }
        if (rc != TSR_OK)
            goto out;
        n_rows = w[0].n_rows;
    }

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
