/*
 * pkg/engine: the data model — tables of bit-packed columns over model-wide fields — and
 * its read-only inspection API. Finalize checks the table graph (synthetic keys, loops)
 * and builds per-field sort ranks; after it the model is immutable and may be shared.
 */
#include <stdio.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "engine_int.h"

tsr_engine_model_t *tsr_engine_model_create(void) {
    return tsr_xcalloc(1, sizeof(tsr_engine_model_t));
}

void tsr_engine_model_destroy(tsr_engine_model_t *m) {
    if (m == NULL)
        return;
    tsr_engine__index_drop(m);
    for (size_t t = 0; t < m->n_tables; t++) {
        tsr_engine__table_t *tb = &m->tables[t];
        for (uint32_t c = 0; c < tb->n_cols; c++)
            tsr_engine__packed_cleanup(&tb->cols[c].data);
        free(tb->cols);
        free(tb->name);
    }
    free(m->tables);
    for (size_t f = 0; f < m->n_fields; f++)
        tsr_engine__field_cleanup(&m->fields[f]);
    free(m->fields);
    for (size_t i = 0; i < m->n_vars; i++) {
        free(m->var_names[i]);
        free(m->var_values[i]);
    }
    free(m->var_names);
    free(m->var_values);
    free(m);
}

size_t tsr_engine_model_var_count(const tsr_engine_model_t *m) {
    return m != NULL ? m->n_vars : 0;
}

tsr_err_t tsr_engine_model_var(const tsr_engine_model_t *m, size_t i, const char **name,
                               const char **value) {
    if (m == NULL || i >= m->n_vars)
        return TSR_ENOTFOUND;
    *name = m->var_names[i];
    *value = m->var_values[i];
    return TSR_OK;
}

void tsr_engine__model_add_var(tsr_engine_model_t *m, const char *name, size_t name_len,
                               const char *value, size_t value_len) {
    m->var_names = tsr_xrealloc(m->var_names, (m->n_vars + 1) * sizeof *m->var_names);
    m->var_values = tsr_xrealloc(m->var_values, (m->n_vars + 1) * sizeof *m->var_values);
    m->var_names[m->n_vars] = tsr_xstrndup(name, name_len);
    m->var_values[m->n_vars] = tsr_xstrndup(value, value_len);
    m->n_vars++;
}

uint32_t tsr_engine__model_field(tsr_engine_model_t *m, const char *name, size_t len) {
    for (size_t f = 0; f < m->n_fields; f++) {
        if (strlen(m->fields[f].name) == len && memcmp(m->fields[f].name, name, len) == 0)
            return (uint32_t)f;
    }
    if (m->n_fields == m->cap_fields) {
        m->cap_fields = m->cap_fields ? m->cap_fields * 2 : 16;
        m->fields = tsr_xrealloc(m->fields, m->cap_fields * sizeof *m->fields);
    }
    tsr_engine__field_init(&m->fields[m->n_fields], name, len);
    return (uint32_t)m->n_fields++;
}

size_t tsr_engine__model_add_table(tsr_engine_model_t *m, const char *name) {
    if (m->n_tables == m->cap_tables) {
        m->cap_tables = m->cap_tables ? m->cap_tables * 2 : 8;
        m->tables = tsr_xrealloc(m->tables, m->cap_tables * sizeof *m->tables);
    }
    tsr_engine__table_t *tb = &m->tables[m->n_tables];
    memset(tb, 0, sizeof *tb);
    tb->name = tsr_xstrdup(name);
    return m->n_tables++;
}

/* Union-find over tables, to detect loops in the table graph. */
static size_t uf_find(size_t *parent, size_t x) {
    while (parent[x] != x) {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    return x;
}

static bool table_has_field(const tsr_engine__table_t *tb, uint32_t f) {
    for (uint32_t c = 0; c < tb->n_cols; c++) {
        if (tb->cols[c].field == f)
            return true;
    }
    return false;
}

tsr_err_t tsr_engine_model_finalize(tsr_engine_model_t *m, tsr_error_t *err) {
    tsr_err_t rc = TSR_OK;
    size_t *parent = tsr_xmalloc((m->n_tables + 1) * sizeof *parent);
    for (size_t t = 0; t < m->n_tables; t++)
        parent[t] = t;
    /* Synthetic keys: two tables sharing more than one field. */
    for (size_t a = 0; a < m->n_tables; a++) {
        for (size_t b = a + 1; b < m->n_tables; b++) {
            uint32_t shared = 0;
            const tsr_engine__table_t *ta = &m->tables[a], *tb = &m->tables[b];
            for (uint32_t c = 0; c < ta->n_cols; c++)
                shared += table_has_field(tb, ta->cols[c].field);
            if (shared > 1) {
                rc = tsr_error_set(err, TSR_EUNSUPPORTED,
                                   "synthetic key: tables %s and %s share %u fields", ta->name,
                                   tb->name, shared);
                goto out;
            }
        }
    }
    /* Circular references: each field shared by k tables adds k-1 edges (a hyperedge as a
     * star); an edge whose ends are already connected closes a loop. */
    for (size_t f = 0; f < m->n_fields; f++) {
        size_t first = SIZE_MAX;
        for (size_t t = 0; t < m->n_tables; t++) {
            if (!table_has_field(&m->tables[t], (uint32_t)f))
                continue;
            if (first == SIZE_MAX) {
                first = t;
                continue;
            }
            size_t ra = uf_find(parent, first), rb = uf_find(parent, t);
            if (ra == rb) {
                rc = tsr_error_set(err, TSR_EUNSUPPORTED,
                                   "circular reference: field %s closes a loop through tables "
                                   "%s and %s",
                                   m->fields[f].name, m->tables[first].name, m->tables[t].name);
                goto out;
            }
            parent[rb] = ra;
        }
    }
    for (size_t f = 0; f < m->n_fields; f++) {
        tsr_engine__field_seal(&m->fields[f]);
        tsr_engine__field_build_rank(&m->fields[f]);
        tsr_engine__field_drop_slots(&m->fields[f]);
    }
    /* Growth by doubling leaves up to half of every array unused: give it back. */
    for (size_t t = 0; t < m->n_tables; t++) {
        for (uint32_t c = 0; c < m->tables[t].n_cols; c++) {
            tsr_engine__packed_t *pk = &m->tables[t].cols[c].data;
            tsr_engine__packed_shrink(pk);
            if (pk->words == NULL) /* no rows ever: readers may still touch the spare word */
                pk->words = tsr_xcalloc(1, sizeof *pk->words);
        }
    }
    tsr_engine__index_lazy(m, tsr_engine__index_min_rows);
    m->finalized = true;
    static atomic_ulong next_version = 1;
    m->version = (uint64_t)atomic_fetch_add(&next_version, 1);
out:
    free(parent);
    return rc;
}

size_t tsr_engine_model_table_count(const tsr_engine_model_t *m) {
    return m->n_tables;
}

const char *tsr_engine_model_table_name(const tsr_engine_model_t *m, size_t t) {
    return t < m->n_tables ? m->tables[t].name : NULL;
}

size_t tsr_engine_model_table_rows(const tsr_engine_model_t *m, size_t t) {
    return t < m->n_tables ? m->tables[t].n_rows : 0;
}

size_t tsr_engine_model_table_field_count(const tsr_engine_model_t *m, size_t t) {
    return t < m->n_tables ? m->tables[t].n_cols : 0;
}

size_t tsr_engine_model_table_field(const tsr_engine_model_t *m, size_t t, size_t c) {
    if (t >= m->n_tables || c >= m->tables[t].n_cols)
        return SIZE_MAX;
    return m->tables[t].cols[c].field;
}

unsigned tsr_engine_model_table_field_bits(const tsr_engine_model_t *m, size_t t, size_t c) {
    if (t >= m->n_tables || c >= m->tables[t].n_cols)
        return 0;
    return m->tables[t].cols[c].data.bits;
}

tsr_err_t tsr_engine_model_table_find(const tsr_engine_model_t *m, const char *name, size_t *t) {
    for (size_t i = 0; i < m->n_tables; i++) {
        if (strcmp(m->tables[i].name, name) == 0) {
            *t = i;
            return TSR_OK;
        }
    }
    return TSR_ENOTFOUND;
}

size_t tsr_engine_model_field_count(const tsr_engine_model_t *m) {
    return m->n_fields;
}

const char *tsr_engine_model_field_name(const tsr_engine_model_t *m, size_t f) {
    return f < m->n_fields ? m->fields[f].name : NULL;
}

tsr_err_t tsr_engine_model_field_find(const tsr_engine_model_t *m, const char *name, size_t *f) {
    for (size_t i = 0; i < m->n_fields; i++) {
        if (strcmp(m->fields[i].name, name) == 0) {
            *f = i;
            return TSR_OK;
        }
    }
    return TSR_ENOTFOUND;
}

size_t tsr_engine_model_field_symbol_count(const tsr_engine_model_t *m, size_t f) {
    return f < m->n_fields ? m->fields[f].n_syms : 0;
}

tsr_err_t tsr_engine_model_field_symbol(const tsr_engine_model_t *m, size_t f, size_t s,
                                        tsr_engine_dual_t *out) {
    if (f >= m->n_fields || s >= m->fields[f].n_syms)
        return TSR_ENOTFOUND;
    const tsr_engine__field_t *fd = &m->fields[f];
    const tsr_engine__sym_t *y = &fd->syms[s];
    out->is_num = y->num == y->num; /* not NaN */
    out->num = y->num;
    out->text = fd->pool + tsr_engine__sym_off(y);
    out->text_len = tsr_engine__sym_len(y);
    return TSR_OK;
}

tsr_err_t tsr_engine_model_field_symbol_find(const tsr_engine_model_t *m, size_t f,
                                             const char *text, size_t len, size_t *s) {
    if (f >= m->n_fields || len > UINT32_MAX)
        return TSR_ENOTFOUND;
    uint32_t y = tsr_engine__field_lookup(&m->fields[f], text, (uint32_t)len);
    if (y == UINT32_MAX)
        return TSR_ENOTFOUND;
    *s = y;
    return TSR_OK;
}

tsr_err_t tsr_engine_model_cell(const tsr_engine_model_t *m, size_t t, size_t c, size_t r,
                                size_t *sym, bool *is_null) {
    if (t >= m->n_tables || c >= m->tables[t].n_cols || r >= m->tables[t].n_rows)
        return TSR_ENOTFOUND;
    uint32_t v = tsr_engine__packed_get(&m->tables[t].cols[c].data, r);
    *is_null = v == 0;
    *sym = v == 0 ? 0 : v - 1;
    return TSR_OK;
}

size_t tsr_engine_model_field_sort_rank(const tsr_engine_model_t *m, size_t f, size_t s) {
    if (f >= m->n_fields || s >= m->fields[f].n_syms || m->fields[f].rank == NULL)
        return SIZE_MAX;
    return tsr_engine__rank(&m->fields[f], (uint32_t)s);
}

uint32_t tsr_engine__table_column(tsr_engine_model_t *m, size_t t, uint32_t f) {
    tsr_engine__table_t *tb = &m->tables[t];
    for (uint32_t c = 0; c < tb->n_cols; c++) {
        if (tb->cols[c].field == f)
            return c;
    }
    tb->cols = tsr_xrealloc(tb->cols, (tb->n_cols + 1) * sizeof *tb->cols);
    tsr_engine__column_t *col = &tb->cols[tb->n_cols];
    col->field = f;
    tsr_engine__packed_init(&col->data, 1);
    size_t words = (tb->n_rows + 63) / 64;
    col->data.words = tsr_xcalloc(words + 1, sizeof(uint64_t));
    col->data.n_words = words;
    col->data.n = tb->n_rows; /* all zero: null */
    return tb->n_cols++;
}

void tsr_engine__table_drop_column(tsr_engine_model_t *m, size_t t, uint32_t c) {
    tsr_engine__table_t *tb = &m->tables[t];
    tsr_engine__packed_cleanup(&tb->cols[c].data);
    memmove(&tb->cols[c], &tb->cols[c + 1], (tb->n_cols - c - 1) * sizeof *tb->cols);
    tb->n_cols--;
}

void tsr_engine__model_drop_table(tsr_engine_model_t *m, size_t t) {
    tsr_engine__table_t *tb = &m->tables[t];
    for (uint32_t c = 0; c < tb->n_cols; c++)
        tsr_engine__packed_cleanup(&tb->cols[c].data);
    free(tb->cols);
    free(tb->name);
    memmove(&m->tables[t], &m->tables[t + 1], (m->n_tables - t - 1) * sizeof *m->tables);
    m->n_tables--;
}

void tsr_engine__model_gc_fields(tsr_engine_model_t *m) {
    /* A table whose fields were all dropped is gone, as in Qlik. */
    for (size_t t = m->n_tables; t-- > 0;) {
        if (m->tables[t].n_cols == 0)
            tsr_engine__model_drop_table(m, t);
    }
    uint32_t *newidx = tsr_xmalloc((m->n_fields + 1) * sizeof *newidx);
    size_t kept = 0;
    for (size_t f = 0; f < m->n_fields; f++) {
        bool used = false;
        for (size_t t = 0; t < m->n_tables && !used; t++)
            used = table_has_field(&m->tables[t], (uint32_t)f);
        if (!used) {
            tsr_engine__field_cleanup(&m->fields[f]);
            newidx[f] = UINT32_MAX;
            continue;
        }
        newidx[f] = (uint32_t)kept;
        if (kept != f)
            m->fields[kept] = m->fields[f];
        kept++;
    }
    m->n_fields = kept;
    for (size_t t = 0; t < m->n_tables; t++) {
        for (uint32_t c = 0; c < m->tables[t].n_cols; c++)
            m->tables[t].cols[c].field = newidx[m->tables[t].cols[c].field];
    }
    free(newidx);
}

tsr_engine_model_t *tsr_engine_model_retain(tsr_engine_model_t *m) {
    atomic_fetch_add(&m->refs, 1);
    return m;
}

void tsr_engine_model_release(tsr_engine_model_t *m) {
    if (m != NULL && atomic_fetch_sub(&m->refs, 1) == 0)
        tsr_engine_model_destroy(m);
}

void tsr_engine__trim_heap(void) {
#ifdef __GLIBC__
    /* A reload frees hundreds of MB of load-time buffers (file maps, growth slack, the
     * loader threads' arenas); hand them back so the loaded model's RSS is its size. */
    malloc_trim(0);
#endif
}
