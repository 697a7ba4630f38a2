/*
 * pkg/engine: the load script (Qlik subset). Statements run one at a time: $(var) is
 * expanded in the statement's text, then it is parsed and executed against the model
 * being built. LOAD FROM a file without expressions or WHERE goes straight into the model
 * (the fast path); every other LOAD reads its source rows and evaluates items per row.
 * Errors carry the script line and column. A reload log is written for every run.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine_int.h"

#define SCRIPT_MAX_VARS 4096
#define SCRIPT_MAX_ITEMS TSR_ENGINE_MAX_FIELDS_PER_TABLE
#define SCRIPT_MAX_EXPANSION (16u << 20) /* bytes of one statement after $() expansion */

typedef struct {
    char *name, *value;
} var_t;

typedef struct {
    tsr_engine_model_t *m;
    const tsr_engine_reload_opts_t *opts;
    var_t *vars;
    size_t n_vars;
    tsr_buf_t log;
    tsr_error_t *err;
    size_t n_inline;
    size_t n_tmp;
    /* MAPPING tables: keys interned in a field (index = entry), values as duals. */
    struct map_s {
        char *name;
        tsr_engine__field_t keys;
        char **val;
        uint32_t *val_len;
        double *val_num;
    } * maps;
    size_t n_maps;
    /* QUALIFY state: all fields (qualify_all) or the listed ones, minus UNQUALIFY's. */
    bool qualify_all;
    char **qual, **unqual;
    size_t n_qual, n_unqual;
} script_t;

/* A statement being parsed: its (expanded) text and script position. */
typedef struct {
    const char *p, *end, *start;
    size_t line, col; /* of start */
    script_t *s;
    tsr_err_t rc;
} stmt_t;

/* ---- variables ---- */

static const char *var_get(const script_t *s, const char *name, size_t n) {
    for (size_t i = 0; i < s->n_vars; i++) {
        if (strlen(s->vars[i].name) == n && strncmp(s->vars[i].name, name, n) == 0)
            return s->vars[i].value;
    }
    return NULL;
}

static tsr_err_t var_set(script_t *s, const char *name, const char *value) {
    for (size_t i = 0; i < s->n_vars; i++) {
        if (strcmp(s->vars[i].name, name) == 0) {
            free(s->vars[i].value);
            s->vars[i].value = tsr_xstrdup(value);
            return TSR_OK;
        }
    }
    if (s->n_vars >= SCRIPT_MAX_VARS)
        return tsr_error_set(s->err, TSR_ETOOBIG, "more than %d variables", SCRIPT_MAX_VARS);
    s->vars = tsr_xrealloc(s->vars, (s->n_vars + 1) * sizeof *s->vars);
    s->vars[s->n_vars].name = tsr_xstrdup(name);
    s->vars[s->n_vars].value = tsr_xstrdup(value);
    s->n_vars++;
    return TSR_OK;
}

/* ---- lexing helpers ---- */

static void pos_at(const stmt_t *st, const char *at, size_t *line, size_t *col) {
    size_t l = st->line, c = st->col;
    for (const char *q = st->start; q < at && q < st->end; q++) {
        if (*q == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static tsr_err_t fail(stmt_t *st, const char *at, const char *fmt, const char *arg) {
    if (st->rc != TSR_OK)
        return st->rc;
    size_t line, col;
    pos_at(st, at, &line, &col);
    char what[160];
    snprintf(what, sizeof what, fmt, arg != NULL ? arg : "");
    st->rc = tsr_error_set(st->s->err, TSR_EINVAL, "line %zu column %zu: %s", line, col, what);
    return st->rc;
}

static void skip_ws(stmt_t *st) {
    for (;;) {
        while (st->p < st->end &&
               (*st->p == ' ' || *st->p == '\t' || *st->p == '\n' || *st->p == '\r'))
            st->p++;
        if (st->p + 1 < st->end && st->p[0] == '/' && st->p[1] == '/') {
            while (st->p < st->end && *st->p != '\n')
                st->p++;
            continue;
        }
        if (st->p + 1 < st->end && st->p[0] == '/' && st->p[1] == '*') {
            const char *q = st->p + 2;
            while (q + 1 < st->end && !(q[0] == '*' && q[1] == '/'))
                q++;
            st->p = q + 1 < st->end ? q + 2 : st->end;
            continue;
        }
        return;
    }
}

static bool ident_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '#' || c == '$' || c == '@' || (unsigned char)c >= 0x80;
}

static bool kw(stmt_t *st, const char *word) {
    skip_ws(st);
    size_t n = strlen(word);
    if ((size_t)(st->end - st->p) < n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char a = st->p[i];
        if (a >= 'a' && a <= 'z')
            a = (char)(a - 32);
        if (a != word[i])
            return false;
    }
    if (st->p + n < st->end && ident_char(st->p[n]))
        return false;
    st->p += n;
    return true;
}

static bool punct(stmt_t *st, char c) {
    skip_ws(st);
    if (st->p < st->end && *st->p == c) {
        st->p++;
        return true;
    }
    return false;
}

/* A name: identifier, [bracketed] or "quoted". Returns heap text or NULL. */
static char *name(stmt_t *st) {
    skip_ws(st);
    const char *s = st->p;
    if (s < st->end && (*s == '[' || *s == '"')) {
        char close = *s == '[' ? ']' : '"';
        const char *q = s + 1;
        while (q < st->end && *q != close)
            q++;
        if (q >= st->end || q == s + 1 || (size_t)(q - s - 1) > TSR_ENGINE_MAX_NAME)
            return NULL;
        st->p = q + 1;
        return tsr_xstrndup(s + 1, (size_t)(q - s - 1));
    }
    const char *q = s;
    while (q < st->end && ident_char(*q))
        q++;
    if (q == s || (size_t)(q - s) > TSR_ENGINE_MAX_NAME)
        return NULL;
    st->p = q;
    return tsr_xstrndup(s, (size_t)(q - s));
}

/* ---- statement splitting and expansion ---- */

/* End of the statement starting at p: the ';' outside quotes and brackets, or end. */
static const char *stmt_end(const char *p, const char *end) {
    while (p < end) {
        char c = *p;
        if (c == '\'' || c == '"' || c == '[') {
            char close = c == '[' ? ']' : c;
            p++;
            while (p < end && *p != close)
                p++;
            if (p < end)
                p++;
        } else if (c == '/' && p + 1 < end && p[1] == '/') {
            while (p < end && *p != '\n')
                p++;
        } else if (c == '/' && p + 1 < end && p[1] == '*') {
            p += 2;
            while (p + 1 < end && !(p[0] == '*' && p[1] == '/'))
                p++;
            p = p + 1 < end ? p + 2 : end;
        } else if (c == ';') {
            return p;
        } else {
            p++;
        }
    }
    return end;
}

/* Replace every $(name) by the variable's value (unknown: empty). Expansion is not
 * recursive, which bounds its cost. */
static tsr_err_t expand(script_t *s, const char *p, size_t n, tsr_buf_t *out) {
    tsr_buf_reset(out);
    const char *end = p + n;
    while (p < end) {
        const char *d = p;
        while (d + 1 < end && !(d[0] == '$' && d[1] == '('))
            d++;
        if (d + 1 >= end) {
            if (tsr_buf_append(out, p, (size_t)(end - p)) != TSR_OK)
                return tsr_error_set(s->err, TSR_ETOOBIG, "statement too long after expansion");
            break;
        }
        if (tsr_buf_append(out, p, (size_t)(d - p)) != TSR_OK)
            return tsr_error_set(s->err, TSR_ETOOBIG, "statement too long after expansion");
        const char *q = d + 2;
        while (q < end && *q != ')')
            q++;
        const char *v = var_get(s, d + 2, (size_t)(q - d - 2));
        if (v != NULL && tsr_buf_append_str(out, v) != TSR_OK)
            return tsr_error_set(s->err, TSR_ETOOBIG, "statement too long after expansion");
        p = q < end ? q + 1 : end;
    }
    if (out->data == NULL)
        tsr_buf_append(out, "", 0);
    return TSR_OK;
}

/* ---- LOAD ---- */

typedef struct {
    tsr_engine__expr_t *expr; /* owned */
    char *alias;              /* owned: output field name */
    const char *src;          /* plain field reference: the source field name (in expr) */
} item_t;

typedef struct {
    char *label, *concat_into; /* owned, may be NULL */
    bool concatenate, no_concatenate, star, distinct;
    item_t *items;
    size_t n_items;
    enum { SRC_FILE, SRC_INLINE, SRC_RESIDENT } src;
    char *path;     /* file: resolved path; inline: the data; resident: table name */
    char *src_name; /* file: the name as the script wrote it (lib://...), for the log */
    tsr_engine_csv_opts_t csv;
    tsr_engine__expr_t *where; /* owned or NULL */
} load_t;

static void load_cleanup(load_t *l) {
    for (size_t i = 0; i < l->n_items; i++) {
        tsr_engine__expr_free(l->items[i].expr);
        free(l->items[i].alias);
    }
    free(l->items);
    free(l->label);
    free(l->concat_into);
    free(l->path);
    free(l->src_name);
    tsr_engine__expr_free(l->where);
}

/* Parse one expression at st->p, advancing past it. */
static tsr_engine__expr_t *parse_expr(stmt_t *st) {
    skip_ws(st);
    size_t line, col;
    pos_at(st, st->p, &line, &col);
    tsr_engine__expr_t *e = NULL;
    const char *end;
    tsr_err_t rc =
        tsr_engine__expr_parse(st->p, (size_t)(st->end - st->p), line, col, &end, &e, st->s->err);
    if (rc != TSR_OK) {
        st->rc = rc;
        return NULL;
    }
    st->p = end;
    return e;
}

/* Resolve lib://<connection>/rest to data_dir/rest, refusing paths that leave it. */
static char *resolve_path(stmt_t *st, const char *at, const char *raw) {
    const char *rest = raw;
    if (strncmp(raw, "lib://", 6) == 0) {
        const char *slash = strchr(raw + 6, '/');
        if (slash == NULL) {
            fail(st, at, "bad library path %s", raw);
            return NULL;
        }
        rest = slash + 1;
    }
    if (rest[0] == '/' || strstr(rest, "..") != NULL || st->s->opts == NULL ||
        st->s->opts->data_dir == NULL) {
        fail(st, at, "path %s is outside the data folder", raw);
        return NULL;
    }
    size_t n = strlen(st->s->opts->data_dir) + strlen(rest) + 2;
    char *path = tsr_xmalloc(n);
    snprintf(path, n, "%s/%s", st->s->opts->data_dir, rest);
    return path;
}

/* Format spec: (txt, utf8, embedded labels | no labels, delimiter is 'x', msq). */
static tsr_err_t parse_format(stmt_t *st, tsr_engine_csv_opts_t *o) {
    if (!punct(st, '('))
        return TSR_OK;
    do {
        const char *at = st->p;
        if (kw(st, "TXT") || kw(st, "UTF8") || kw(st, "MSQ") || kw(st, "ANSI"))
            continue;
        if (kw(st, "EMBEDDED")) {
            if (!kw(st, "LABELS"))
                return fail(st, st->p, "LABELS expected", NULL);
            o->no_labels = false;
            continue;
        }
        if (kw(st, "NO")) {
            if (!kw(st, "LABELS") && !kw(st, "QUOTES"))
                return fail(st, st->p, "LABELS expected", NULL);
            o->no_labels = true;
            continue;
        }
        if (kw(st, "DELIMITER")) {
            if (!kw(st, "IS"))
                return fail(st, st->p, "IS expected", NULL);
            skip_ws(st);
            if (st->end - st->p >= 3 && st->p[0] == '\'' && st->p[2] == '\'') {
                o->delimiter = st->p[1];
                st->p += 3;
            } else if (st->end - st->p >= 4 && st->p[0] == '\'' && st->p[1] == '\\' &&
                       st->p[2] == 't' && st->p[3] == '\'') {
                o->delimiter = '\t';
                st->p += 4;
            } else {
                return fail(st, st->p, "delimiter expected as 'x'", NULL);
            }
            continue;
        }
        return fail(st, at, "unknown format option", NULL);
    } while (punct(st, ','));
    if (!punct(st, ')'))
        return fail(st, st->p, "')' expected", NULL);
    return TSR_OK;
}

/* INLINE data: trim every cell (Qlik trims inline values) into a CSV buffer. */
static char *inline_data(const char *p, size_t n) {
    tsr_buf_t b;
    tsr_buf_init(&b, 0);
    const char *end = p + n;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        const char *c = p;
        bool any = false, first = true;
        tsr_buf_t line;
        tsr_buf_init(&line, 0);
        while (c <= eol) {
            const char *sep = c;
            while (sep < eol && *sep != ',')
                sep++;
            tsr_str_t cell = tsr_str_trim(tsr_str_n(c, (size_t)(sep - c)));
            if (!first)
                tsr_buf_append(&line, ",", 1);
            tsr_buf_append(&line, cell.p, cell.n);
            any = any || cell.n > 0;
            first = false;
            c = sep + 1;
        }
        if (any) {
            tsr_buf_append(&b, line.data, line.len);
            tsr_buf_append(&b, "\n", 1);
        }
        tsr_buf_cleanup(&line);
        p = eol + 1;
    }
    size_t len;
    return tsr_buf_take(&b, &len);
}

static tsr_err_t parse_load(stmt_t *st, load_t *l) {
    if (kw(st, "DISTINCT"))
        l->distinct = true;
    if (punct(st, '*')) {
        l->star = true;
    } else {
        do {
            if (l->n_items >= SCRIPT_MAX_ITEMS)
                return fail(st, st->p, "too many fields", NULL);
            const char *at = st->p;
            tsr_engine__expr_t *e = parse_expr(st);
            if (e == NULL)
                return st->rc;
            l->items = tsr_xrealloc(l->items, (l->n_items + 1) * sizeof *l->items);
            item_t *it = &l->items[l->n_items++];
            memset(it, 0, sizeof *it);
            it->expr = e;
            if (e->kind == TSR_ENGINE__E_FIELD)
                it->src = e->name;
            if (kw(st, "AS")) {
                it->alias = name(st);
                if (it->alias == NULL)
                    return fail(st, st->p, "field name expected after AS", NULL);
            } else if (it->src != NULL) {
                it->alias = tsr_xstrdup(it->src);
            } else {
                /* Qlik names an unaliased expression by its text. */
                skip_ws(st);
                tsr_str_t txt = tsr_str_trim(tsr_str_n(at, (size_t)(st->p - at)));
                it->alias = tsr_str_dup(txt);
            }
        } while (punct(st, ','));
    }
    const char *at = st->p;
    if (kw(st, "FROM")) {
        char *raw = name(st);
        if (raw == NULL)
            return fail(st, st->p, "file name expected", NULL);
        l->src = SRC_FILE;
        l->path = resolve_path(st, at, raw);
        l->src_name = raw; /* the log names the file as the script did, not the server path */
        if (l->path == NULL)
            return st->rc;
        if (parse_format(st, &l->csv) != TSR_OK)
            return st->rc;
    } else if (kw(st, "INLINE")) {
        skip_ws(st);
        if (st->p >= st->end || (*st->p != '[' && *st->p != '"'))
            return fail(st, st->p, "'[' expected after INLINE", NULL);
        char close = *st->p == '[' ? ']' : '"';
        const char *q = st->p + 1;
        while (q < st->end && *q != close)
            q++;
        if (q >= st->end)
            return fail(st, st->p, "unterminated INLINE data", NULL);
        l->src = SRC_INLINE;
        l->path = inline_data(st->p + 1, (size_t)(q - st->p - 1));
        st->p = q + 1;
        if (parse_format(st, &l->csv) != TSR_OK)
            return st->rc;
    } else if (kw(st, "RESIDENT")) {
        l->src = SRC_RESIDENT;
        l->path = name(st);
        if (l->path == NULL)
            return fail(st, st->p, "table name expected", NULL);
    } else {
        return fail(st, at, "FROM, INLINE or RESIDENT expected", NULL);
    }
    if (kw(st, "WHERE")) {
        l->where = parse_expr(st);
        if (l->where == NULL)
            return st->rc;
    }
    skip_ws(st);
    if (st->p != st->end)
        return fail(st, st->p, "unexpected text", NULL);
    return TSR_OK;
}

/* Row source for the general path: a table of some model. */
typedef struct {
    const tsr_engine_model_t *m;
    size_t t;
    size_t row;
    int32_t *col_of_item; /* per item field ref: source column or -1 */
} rowsrc_t;

static tsr_engine__val_t field_value(void *ctx, const tsr_engine__expr_t *e) {
    rowsrc_t *rs = ctx;
    const tsr_engine__table_t *tb = &rs->m->tables[rs->t];
    uint32_t c = e->slot;
    if (c == UINT32_MAX)
        return (tsr_engine__val_t){.kind = TSR_ENGINE__V_NULL};
    uint32_t v = tsr_engine__packed_get(&tb->cols[c].data, rs->row);
    if (v == 0)
        return (tsr_engine__val_t){.kind = TSR_ENGINE__V_NULL};
    const tsr_engine__field_t *f = &rs->m->fields[tb->cols[c].field];
    const tsr_engine__sym_t *y = &f->syms[v - 1];
    tsr_engine__val_t r = {.kind = isnan(y->num) ? TSR_ENGINE__V_TEXT : TSR_ENGINE__V_DUAL,
                           .num = y->num,
                           .text = f->pool + tsr_engine__sym_off(y),
                           .len = tsr_engine__sym_len(y)};
    return r;
}

/* Resolve field references of e to source columns (slot); unknown fields are errors. */
static tsr_err_t bind_fields(stmt_t *st, const tsr_engine_model_t *m, size_t t,
                             tsr_engine__expr_t *e) {
    if (e->kind == TSR_ENGINE__E_FIELD) {
        const tsr_engine__table_t *tb = &m->tables[t];
        e->slot = UINT32_MAX;
        for (uint32_t c = 0; c < tb->n_cols; c++) {
            if (strcmp(m->fields[tb->cols[c].field].name, e->name) == 0)
                e->slot = c;
        }
        if (e->slot == UINT32_MAX)
            return tsr_error_set(st->s->err, TSR_EINVAL, "line %zu: field %s not found", st->line,
                                 e->name);
    }
    for (size_t i = 0; i < e->n_args; i++) {
        if (bind_fields(st, m, t, e->args[i]) != TSR_OK)
            return TSR_EINVAL;
    }
    return TSR_OK;
}

static size_t unique_table_name(tsr_engine_model_t *m, const char *base, char *out, size_t cap) {
    size_t dummy;
    snprintf(out, cap, "%s", base);
    for (int i = 1; tsr_engine_model_table_find(m, out, &dummy) == TSR_OK; i++)
        snprintf(out, cap, "%s-%d", base, i);
    return strlen(out);
}

/* Table whose field set equals `names` (auto-concatenation), or SIZE_MAX. */
static size_t same_fields_table(const tsr_engine_model_t *m, char *const *names, size_t n) {
    for (size_t t = 0; t < m->n_tables; t++) {
        const tsr_engine__table_t *tb = &m->tables[t];
        if (tb->n_cols != n)
            continue;
        size_t hit = 0;
        for (size_t i = 0; i < n; i++) {
            for (uint32_t c = 0; c < tb->n_cols; c++)
                hit += strcmp(m->fields[tb->cols[c].field].name, names[i]) == 0;
        }
        if (hit == n)
            return t;
    }
    return SIZE_MAX;
}

/* A path naming our own table file format (".tsrt"). */
static bool is_table_file(const char *path) {
    size_t n = strlen(path);
    return n > 5 && strcmp(path + n - 5, ".tsrt") == 0;
}

/* ---- QUALIFY, mappings, DISTINCT, JOIN ---- */

static bool in_list(char *const *list, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i], name) == 0)
            return true;
    }
    return false;
}

static bool qualifying(const script_t *s) {
    return s->qualify_all || s->n_qual > 0;
}

static bool is_qualified(const script_t *s, const char *field) {
    if (in_list(s->unqual, s->n_unqual, field))
        return false;
    return s->qualify_all || in_list(s->qual, s->n_qual, field);
}

/* ApplyMap: look key up in mapping `name`. */
static tsr_engine__val_t map_value(void *ctx, const char *name, size_t name_len,
                                   tsr_engine__val_t key, bool *found) {
    script_t *s = ctx;
    *found = false;
    for (size_t i = 0; i < s->n_maps; i++) {
        struct map_s *mp = &s->maps[i];
        if (strlen(mp->name) != name_len || memcmp(mp->name, name, name_len) != 0)
            continue;
        char buf[32];
        const char *p = key.text;
        size_t n = key.len;
        if (key.kind == TSR_ENGINE__V_NUM) {
            int k = snprintf(buf, sizeof buf, "%.15g", key.num);
            p = buf;
            n = k < 0 ? 0 : (size_t)k;
        } else if (key.kind == TSR_ENGINE__V_NULL) {
            break;
        }
        uint32_t y = tsr_engine__field_lookup(&mp->keys, p, (uint32_t)n);
        if (y == UINT32_MAX)
            break;
        *found = true;
        return (tsr_engine__val_t){.kind = isnan(mp->val_num[y]) ? TSR_ENGINE__V_TEXT
                                                                 : TSR_ENGINE__V_DUAL,
                                   .num = mp->val_num[y],
                                   .text = mp->val[y],
                                   .len = mp->val_len[y]};
    }
    return (tsr_engine__val_t){.kind = TSR_ENGINE__V_NULL};
}

/* Turn table t (two columns: key, value) into mapping `name`, then drop t. */
static tsr_err_t make_mapping(stmt_t *st, size_t t, const char *name, const char *at) {
    script_t *s = st->s;
    tsr_engine_model_t *m = s->m;
    const tsr_engine__table_t *tb = &m->tables[t];
    if (tb->n_cols < 2) {
        tsr_engine__model_drop_table(m, t);
        return fail(st, at, "a mapping table needs two fields", NULL);
    }
    s->maps = tsr_xrealloc(s->maps, (s->n_maps + 1) * sizeof *s->maps);
    struct map_s *mp = &s->maps[s->n_maps++];
    memset(mp, 0, sizeof *mp);
    mp->name = tsr_xstrdup(name);
    tsr_engine__field_init(&mp->keys, name, strlen(name));
    size_t n = tb->n_rows;
    mp->val = tsr_xcalloc(n + 1, sizeof *mp->val);
    mp->val_len = tsr_xcalloc(n + 1, sizeof *mp->val_len);
    mp->val_num = tsr_xcalloc(n + 1, sizeof *mp->val_num);
    const tsr_engine__field_t *kf = &m->fields[tb->cols[0].field];
    const tsr_engine__field_t *vf = &m->fields[tb->cols[1].field];
    for (size_t r = 0; r < n; r++) {
        uint32_t k = tsr_engine__packed_get(&tb->cols[0].data, r);
        uint32_t v = tsr_engine__packed_get(&tb->cols[1].data, r);
        if (k == 0)
            continue;
        const tsr_engine__sym_t *ky = &kf->syms[k - 1];
        uint32_t before = mp->keys.n_syms;
        uint32_t idx = tsr_engine__field_intern_dual(&mp->keys, kf->pool + tsr_engine__sym_off(ky),
                                                     tsr_engine__sym_len(ky), ky->num);
        if (idx < before)
            continue; /* first mapping of a key wins, as in Qlik */
        if (v == 0) {
            mp->val[idx] = tsr_xstrdup("");
            mp->val_num[idx] = NAN;
            continue;
        }
        const tsr_engine__sym_t *vy = &vf->syms[v - 1];
        mp->val[idx] = tsr_xstrndup(vf->pool + tsr_engine__sym_off(vy), tsr_engine__sym_len(vy));
        mp->val_len[idx] = tsr_engine__sym_len(vy);
        mp->val_num[idx] = vy->num;
    }
    tsr_engine__model_drop_table(m, t);
    return TSR_OK;
}

static void maps_free(script_t *s) {
    for (size_t i = 0; i < s->n_maps; i++) {
        struct map_s *mp = &s->maps[i];
        for (uint32_t k = 0; k < mp->keys.n_syms; k++)
            free(mp->val[k]);
        free(mp->val);
        free(mp->val_len);
        free(mp->val_num);
        free(mp->name);
        tsr_engine__field_cleanup(&mp->keys);
    }
    free(s->maps);
}

/* Hash of row r over columns cols[0..n). */
static uint64_t row_hash(const tsr_engine__table_t *tb, const uint32_t *cols, size_t n, size_t r) {
    uint64_t h = 0x9E3779B97F4A7C15u;
    for (size_t i = 0; i < n; i++) {
        h ^= tsr_engine__packed_get(&tb->cols[cols[i]].data, r);
        h *= 0xFF51AFD7ED558CCDu;
        h ^= h >> 32;
    }
    return h;
}

static bool rows_equal(const tsr_engine__table_t *a, const uint32_t *ca, size_t ra,
                       const tsr_engine__table_t *b, const uint32_t *cb, size_t rb, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (tsr_engine__packed_get(&a->cols[ca[i]].data, ra) !=
            tsr_engine__packed_get(&b->cols[cb[i]].data, rb))
            return false;
    }
    return true;
}

/* Rows of b grouped by key: heads[h & mask] -> first row + 1, next[r] -> next row + 1. */
typedef struct {
    size_t *head, *next, mask;
} rowindex_t;

static void rowindex_build(rowindex_t *ix, const tsr_engine__table_t *b, const uint32_t *cols,
                           size_t n) {
    size_t cap = 16;
    while (cap < b->n_rows * 2)
        cap *= 2;
    ix->mask = cap - 1;
    ix->head = tsr_xcalloc(cap, sizeof *ix->head);
    ix->next = tsr_xcalloc(b->n_rows + 1, sizeof *ix->next);
    for (size_t r = b->n_rows; r-- > 0;) {
        size_t h = (size_t)row_hash(b, cols, n, r) & ix->mask;
        ix->next[r] = ix->head[h];
        ix->head[h] = r + 1;
    }
}

static void rowindex_free(rowindex_t *ix) {
    free(ix->head);
    free(ix->next);
}

/* Replace table t's columns by new ones built from (a row or none, b row or none) pairs. */
typedef struct {
    tsr_engine__packed_t *cols; /* one per output field */
    size_t n_rows;
} rowsink_t;

static void sink_row(rowsink_t *k, const tsr_engine__table_t *a, size_t ra,
                     const tsr_engine__table_t *b, size_t rb, const int32_t *from_a,
                     const int32_t *from_b, size_t n_out) {
    for (size_t i = 0; i < n_out; i++) {
        uint32_t v = 0;
        if (ra != SIZE_MAX && from_a[i] >= 0)
            v = tsr_engine__packed_get(&a->cols[from_a[i]].data, ra);
        if (v == 0 && rb != SIZE_MAX && from_b[i] >= 0)
            v = tsr_engine__packed_get(&b->cols[from_b[i]].data, rb);
        tsr_engine__packed_push(&k->cols[i], v);
    }
    k->n_rows++;
}

/* Keep only the first of equal rows of table t. */
static void dedupe_table(tsr_engine_model_t *m, size_t t) {
    tsr_engine__table_t *tb = &m->tables[t];
    size_t nc = tb->n_cols;
    uint32_t *cols = tsr_xcalloc(nc + 1, sizeof *cols);
    for (size_t c = 0; c < nc; c++)
        cols[c] = (uint32_t)c;
    size_t cap = 16;
    while (cap < tb->n_rows * 2)
        cap *= 2;
    size_t *slot = tsr_xcalloc(cap, sizeof *slot); /* row + 1 */
    rowsink_t k = {.cols = tsr_xcalloc(nc + 1, sizeof *k.cols)};
    int32_t *from = tsr_xcalloc(nc + 1, sizeof *from);
    for (size_t c = 0; c < nc; c++) {
        tsr_engine__packed_init(&k.cols[c], tb->cols[c].data.bits);
        from[c] = (int32_t)c;
    }
    for (size_t r = 0; r < tb->n_rows; r++) {
        size_t h = (size_t)row_hash(tb, cols, nc, r) & (cap - 1);
        bool dup = false;
        while (slot[h] != 0) {
            if (rows_equal(tb, cols, slot[h] - 1, tb, cols, r, nc)) {
                dup = true;
                break;
            }
            h = (h + 1) & (cap - 1);
        }
        if (dup)
            continue;
        slot[h] = r + 1;
        sink_row(&k, tb, r, NULL, SIZE_MAX, from, from, nc);
    }
    for (size_t c = 0; c < nc; c++) {
        tsr_engine__packed_cleanup(&tb->cols[c].data);
        tb->cols[c].data = k.cols[c];
    }
    tb->n_rows = k.n_rows;
    free(k.cols);
    free(from);
    free(slot);
    free(cols);
}

enum { JOIN_LEFT = 1, JOIN_RIGHT, JOIN_INNER, JOIN_OUTER };

/* Join table bt into table at (kind JOIN_*) over their common fields; bt is dropped and at
 * holds the result. No common field: the Cartesian product (capped). */
static tsr_err_t join_tables(stmt_t *st, size_t at, size_t bt, int kind, const char *where) {
    tsr_engine_model_t *m = st->s->m;
    tsr_engine__table_t *a = &m->tables[at], *b = &m->tables[bt];
    size_t nk = 0, n_out = 0;
    uint32_t *ka = tsr_xcalloc(a->n_cols + 1, sizeof *ka);
    uint32_t *kb = tsr_xcalloc(a->n_cols + 1, sizeof *kb);
    uint32_t *fields = tsr_xcalloc(a->n_cols + b->n_cols + 1, sizeof *fields);
    int32_t *from_a = tsr_xcalloc(a->n_cols + b->n_cols + 1, sizeof *from_a);
    int32_t *from_b = tsr_xcalloc(a->n_cols + b->n_cols + 1, sizeof *from_b);
    for (uint32_t c = 0; c < a->n_cols; c++) {
        fields[n_out] = a->cols[c].field;
        from_a[n_out] = (int32_t)c;
        from_b[n_out] = -1;
        for (uint32_t d = 0; d < b->n_cols; d++) {
            if (b->cols[d].field == a->cols[c].field) {
                ka[nk] = c;
                kb[nk++] = d;
                from_b[n_out] = (int32_t)d;
            }
        }
        n_out++;
    }
    for (uint32_t d = 0; d < b->n_cols; d++) {
        bool key = false;
        for (size_t i = 0; i < nk && !key; i++)
            key = kb[i] == d;
        if (key)
            continue;
        fields[n_out] = b->cols[d].field;
        from_a[n_out] = -1;
        from_b[n_out++] = (int32_t)d;
    }
    tsr_err_t rc = TSR_OK;
    if (nk == 0 && (uint64_t)a->n_rows * b->n_rows > (UINT64_C(1) << 26)) {
        rc = fail(st, where, "join without common fields is too large", NULL);
        goto out;
    }
    rowsink_t k = {.cols = tsr_xcalloc(n_out + 1, sizeof *k.cols)};
    for (size_t i = 0; i < n_out; i++)
        tsr_engine__packed_init(&k.cols[i], 1);
    rowindex_t ix;
    rowindex_build(&ix, b, kb, nk);
    bool *b_used = tsr_xcalloc(b->n_rows + 1, sizeof *b_used);
    for (size_t r = 0; r < a->n_rows; r++) {
        bool matched = false;
        size_t h = (size_t)row_hash(a, ka, nk, r) & ix.mask;
        for (size_t q = ix.head[h]; q != 0; q = ix.next[q - 1]) {
            if (!rows_equal(a, ka, r, b, kb, q - 1, nk))
                continue;
            bool null_key = false;
            for (size_t i = 0; i < nk && !null_key; i++)
                null_key = tsr_engine__packed_get(&a->cols[ka[i]].data, r) == 0;
            if (null_key)
                continue;
            matched = true;
            b_used[q - 1] = true;
            sink_row(&k, a, r, b, q - 1, from_a, from_b, n_out);
        }
        if (!matched && (kind == JOIN_LEFT || kind == JOIN_OUTER))
            sink_row(&k, a, r, NULL, SIZE_MAX, from_a, from_b, n_out);
    }
    if (kind == JOIN_RIGHT || kind == JOIN_OUTER) {
        for (size_t r = 0; r < b->n_rows; r++) {
            if (!b_used[r])
                sink_row(&k, NULL, SIZE_MAX, b, r, from_a, from_b, n_out);
        }
    }
    free(b_used);
    rowindex_free(&ix);
    /* Install the result in table at. */
    for (uint32_t c = 0; c < a->n_cols; c++)
        tsr_engine__packed_cleanup(&a->cols[c].data);
    a->cols = tsr_xrealloc(a->cols, (n_out + 1) * sizeof *a->cols);
    for (size_t i = 0; i < n_out; i++) {
        a->cols[i].field = fields[i];
        a->cols[i].data = k.cols[i];
    }
    a->n_cols = (uint32_t)n_out;
    a->n_rows = k.n_rows;
    free(k.cols);
    tsr_engine__model_drop_table(m, bt);
out:
    free(ka);
    free(kb);
    free(fields);
    free(from_a);
    free(from_b);
    return rc;
}

static tsr_err_t exec_load(stmt_t *st, load_t *l, const char *stmt_at) {
    script_t *s = st->s;
    tsr_engine_model_t *m = s->m;
    tsr_err_t rc = TSR_OK;
    tsr_engine_model_t *tmp = NULL;
    const tsr_engine_model_t *srcm = m;
    size_t src_t = 0;
    char tname[TSR_ENGINE_MAX_NAME + 16];
    char **names = NULL;
    uint32_t **remap = NULL;
    uint64_t t0 = tsr_mono_ns();

    /* Default table name: the label, else the file's base name, else Inline/Resident. */
    const char *base = l->label;
    char filebase[TSR_ENGINE_MAX_NAME + 1];
    if (base == NULL && l->src == SRC_FILE) {
        const char *slash = strrchr(l->path, '/');
        const char *b = slash ? slash + 1 : l->path;
        const char *dot = strrchr(b, '.');
        size_t n = dot && dot > b ? (size_t)(dot - b) : strlen(b);
        if (n > TSR_ENGINE_MAX_NAME)
            n = TSR_ENGINE_MAX_NAME;
        memcpy(filebase, b, n);
        filebase[n] = '\0';
        base = filebase;
    }
    if (base == NULL && l->src == SRC_INLINE) {
        snprintf(filebase, sizeof filebase, "Inline%zu", ++s->n_inline);
        base = filebase;
    }
    if (base == NULL)
        base = l->src == SRC_RESIDENT ? l->path : "Table";

    bool plain = l->where == NULL && !l->concatenate && !l->distinct && !qualifying(s) &&
                 !(l->src == SRC_FILE && is_table_file(l->path));
    for (size_t i = 0; i < l->n_items && plain; i++)
        plain = l->items[i].src != NULL;

    /* Fast path: file straight into the model when it makes a new table. */
    if (plain && l->src != SRC_RESIDENT && !l->star) {
        char **nm = tsr_xcalloc(l->n_items + 1, sizeof *nm);
        for (size_t i = 0; i < l->n_items; i++)
            nm[i] = l->items[i].alias;
        bool merges = !l->no_concatenate && same_fields_table(m, nm, l->n_items) != SIZE_MAX;
        free(nm);
        plain = !merges;
    }
    if (plain && l->src != SRC_RESIDENT && l->star) {
        /* The header tells the field set: load directly unless a table with the same
         * fields takes the rows by auto-concatenation. */
        if (m->n_tables > 0 && !l->no_concatenate) {
            char **hn = NULL;
            size_t n_hn = 0;
            if (tsr_engine__csv_header(l->src == SRC_FILE ? l->path : NULL, l->path,
                                       strlen(l->path), &l->csv, &hn, &n_hn, NULL) == TSR_OK) {
                plain = same_fields_table(m, hn, n_hn) == SIZE_MAX;
                for (size_t i = 0; i < n_hn; i++)
                    free(hn[i]);
                free(hn);
            } else {
                plain = false; /* the general path reports the error */
            }
        }
    }
    if (plain && l->src != SRC_RESIDENT) {
        unique_table_name(m, base, tname, sizeof tname);
        tsr_engine__proj_t *proj = NULL;
        if (!l->star) {
            proj = tsr_xcalloc(l->n_items, sizeof *proj);
            for (size_t i = 0; i < l->n_items; i++) {
                proj[i].src = l->items[i].src;
                proj[i].dst = l->items[i].alias;
            }
        }
        if (l->src == SRC_FILE) {
            rc = tsr_engine__load_csv_file(m, tname, l->path, &l->csv, proj, proj ? l->n_items : 0,
                                           s->err);
        } else {
            rc = tsr_engine__load_csv(m, tname, l->path, strlen(l->path), &l->csv, proj,
                                      proj ? l->n_items : 0, s->err);
        }
        free(proj);
        if (rc != TSR_OK) {
            size_t line, col;
            pos_at(st, stmt_at, &line, &col);
            char msg[TSR_ERROR_MSG_MAX];
            snprintf(msg, sizeof msg, "%s", s->err ? s->err->msg : "");
            rc = tsr_error_set(s->err, rc, "line %zu column %zu: %s", line, col, msg);
            goto out;
        }
        size_t t;
        tsr_engine_model_table_find(m, tname, &t);
        tsr_buf_appendf(&s->log, "%s << %s: %zu rows, %u fields, %.1f ms\n", tname,
                        l->src == SRC_FILE ? l->src_name : "INLINE", m->tables[t].n_rows,
                        m->tables[t].n_cols, (double)(tsr_mono_ns() - t0) / 1e6);
        goto out;
    }

    /* General path: rows from a source table, items evaluated per row. */
    if (l->src == SRC_RESIDENT) {
        if (tsr_engine_model_table_find(m, l->path, &src_t) != TSR_OK) {
            rc = fail(st, stmt_at, "table %s not found", l->path);
            goto out;
        }
    } else {
        if (l->src == SRC_FILE && is_table_file(l->path)) {
            /* Our own table file (STORE ... INTO x.tsrt): an app file with one table. */
            rc = tsr_engine_app_open(l->path, NULL, &tmp, NULL, s->err);
            if (rc == TSR_OK && tmp->n_tables != 1)
                rc = fail(st, stmt_at, "%s is not a table file", l->path);
            if (rc != TSR_OK)
                goto out;
        } else {
            tmp = tsr_engine_model_create();
            rc = l->src == SRC_FILE
                     ? tsr_engine_model_load_csv(tmp, "src", l->path, &l->csv, s->err)
                     : tsr_engine__load_csv(tmp, "src", l->path, strlen(l->path), &l->csv, NULL, 0,
                                            s->err);
            if (rc != TSR_OK)
                goto out;
        }
        srcm = tmp;
    }
    const tsr_engine__table_t *stb = &srcm->tables[src_t];
    size_t n_out = l->star ? stb->n_cols : l->n_items;
    if (l->star) {
        l->items = tsr_xcalloc(n_out ? n_out : 1, sizeof *l->items);
        for (uint32_t c = 0; c < stb->n_cols; c++) {
            item_t *it = &l->items[l->n_items++];
            const char *fname = srcm->fields[stb->cols[c].field].name;
            it->expr = tsr_xcalloc(1, sizeof *it->expr);
            it->expr->kind = TSR_ENGINE__E_FIELD;
            it->expr->name = tsr_xstrdup(fname);
            it->expr->name_len = strlen(fname);
            it->src = it->expr->name;
            it->alias = tsr_xstrdup(fname);
        }
    }
    for (size_t i = 0; i < l->n_items; i++) {
        if (bind_fields(st, srcm, src_t, l->items[i].expr) != TSR_OK) {
            rc = TSR_EINVAL;
            goto out;
        }
    }
    if (l->where != NULL && bind_fields(st, srcm, src_t, l->where) != TSR_OK) {
        rc = TSR_EINVAL;
        goto out;
    }
    names = tsr_xcalloc(n_out + 1, sizeof *names);
    for (size_t i = 0; i < n_out; i++) {
        if (is_qualified(s, l->items[i].alias)) {
            /* QUALIFY: the field becomes <table>.<field> (the alias owns the new name). */
            size_t n = strlen(base) + strlen(l->items[i].alias) + 2;
            char *q = tsr_xmalloc(n);
            snprintf(q, n, "%s.%s", base, l->items[i].alias);
            free(l->items[i].alias);
            l->items[i].alias = q;
        }
        names[i] = l->items[i].alias;
    }
    /* Destination: CONCATENATE target, auto-concatenation, or a new table. */
    size_t dst = SIZE_MAX;
    if (l->concatenate) {
        if (l->concat_into != NULL) {
            if (tsr_engine_model_table_find(m, l->concat_into, &dst) != TSR_OK) {
                rc = fail(st, stmt_at, "table %s not found", l->concat_into);
                goto out;
            }
        } else if (m->n_tables > 0) {
            dst = m->n_tables - 1;
        } else {
            rc = fail(st, stmt_at, "CONCATENATE without a previous table", NULL);
            goto out;
        }
    } else if (!l->no_concatenate) {
        dst = same_fields_table(m, names, n_out);
    }
    if (dst == SIZE_MAX) {
        unique_table_name(m, base, tname, sizeof tname);
        dst = tsr_engine__model_add_table(m, tname);
    }
    uint32_t *dcol = tsr_xcalloc(n_out + 1, sizeof *dcol);
    for (size_t i = 0; i < n_out; i++) {
        uint32_t f = tsr_engine__model_field(m, names[i], strlen(names[i]));
        for (size_t j = 0; j < i; j++) {
            if (m->tables[dst].cols[dcol[j]].field == f) {
                free(dcol);
                rc = fail(st, stmt_at, "field %s appears twice", names[i]);
                goto out;
            }
        }
        dcol[i] = tsr_engine__table_column(m, dst, f);
    }
    /* Plain references map source symbols to destination symbols once per symbol. */
    remap = tsr_xcalloc(n_out + 1, sizeof *remap);
    size_t *remap_n = tsr_xcalloc(n_out + 1, sizeof *remap_n);
    tsr_engine__table_t *dtb = &m->tables[dst];
    stb = &srcm->tables[src_t]; /* m->tables may have moved when srcm == m */
    for (size_t i = 0; i < n_out; i++) {
        const tsr_engine__expr_t *e = l->items[i].expr;
        if (e->kind == TSR_ENGINE__E_FIELD) {
            /* Rows read below existed before this statement, so their symbols do too. */
            remap_n[i] = srcm->fields[stb->cols[e->slot].field].n_syms;
            remap[i] = tsr_xcalloc(remap_n[i] + 1, sizeof *remap[i]);
        }
    }
    size_t n_src_rows = stb->n_rows, added = 0;
    rowsrc_t rs = {.m = srcm, .t = src_t};
    tsr_engine__eval_t *ev = tsr_xcalloc(1, sizeof *ev);
    ev->field_cb = field_value;
    ev->field_ctx = &rs;
    ev->map_cb = map_value;
    ev->map_ctx = s;
    for (size_t r = 0; r < n_src_rows; r++) {
        rs.row = r;
        stb = &srcm->tables[src_t];
        dtb = &m->tables[dst];
        ev->scratch_len = 0;
        if (l->where != NULL) {
            tsr_engine__val_t w = tsr_engine__expr_eval(ev, l->where);
            double d = w.kind == TSR_ENGINE__V_NULL ? 0 : w.num;
            if (w.kind == TSR_ENGINE__V_TEXT || d == 0 || isnan(d))
                continue;
        }
        for (uint32_t c = 0; c < dtb->n_cols; c++) {
            bool listed = false;
            for (size_t i = 0; i < n_out && !listed; i++)
                listed = dcol[i] == c;
            if (!listed)
                tsr_engine__packed_push(&dtb->cols[c].data, 0);
        }
        for (size_t i = 0; i < n_out; i++) {
            const tsr_engine__expr_t *e = l->items[i].expr;
            tsr_engine__field_t *df = &m->fields[dtb->cols[dcol[i]].field];
            uint32_t v;
            if (e->kind == TSR_ENGINE__E_FIELD) {
                uint32_t sv = tsr_engine__packed_get(&stb->cols[e->slot].data, r);
                if (sv == 0) {
                    v = 0;
                } else {
                    const tsr_engine__field_t *sf = &srcm->fields[stb->cols[e->slot].field];
                    if (sv - 1 >= remap_n[i]) {
                        v = 0;
                    } else if (remap[i][sv - 1] != 0) {
                        v = remap[i][sv - 1];
                    } else {
                        const tsr_engine__sym_t *y = &sf->syms[sv - 1];
                        v = tsr_engine__field_intern_dual(df, sf->pool + tsr_engine__sym_off(y),
                                                          tsr_engine__sym_len(y), y->num) +
                            1;
                        remap[i][sv - 1] = v;
                    }
                }
            } else {
                tsr_engine__val_t x = tsr_engine__expr_eval(ev, e);
                if (x.kind == TSR_ENGINE__V_NULL) {
                    v = 0;
                } else if (x.kind == TSR_ENGINE__V_NUM) {
                    char buf[32];
                    int n = snprintf(buf, sizeof buf, "%.15g", x.num);
                    v = tsr_engine__field_intern_dual(df, buf, (uint32_t)(n < 0 ? 0 : n), x.num) +
                        1;
                } else {
                    v = tsr_engine__field_intern_dual(df, x.text, (uint32_t)x.len,
                                                      x.kind == TSR_ENGINE__V_DUAL ? x.num
                                                                                   : (double)NAN) +
                        1;
                }
            }
            tsr_engine__packed_push(&dtb->cols[dcol[i]].data, v);
        }
        dtb->n_rows++;
        added++;
    }
    free(ev);
    free(dcol);
    free(remap_n);
    if (l->distinct)
        dedupe_table(m, dst);
    tsr_buf_appendf(
        &s->log, "%s << %s: %zu rows (table now %zu rows, %u fields), %.1f ms\n",
        m->tables[dst].name,
        l->src == SRC_RESIDENT ? l->path : (l->src == SRC_FILE ? l->src_name : "INLINE"), added,
        m->tables[dst].n_rows, m->tables[dst].n_cols, (double)(tsr_mono_ns() - t0) / 1e6);
out:
    if (remap != NULL) {
        for (size_t i = 0; i < l->n_items; i++)
            free(remap[i]);
        free(remap);
    }
    free(names);
    tsr_engine_model_destroy(tmp);
    return rc;
}

/* ---- other statements ---- */

static tsr_err_t exec_drop(stmt_t *st) {
    tsr_engine_model_t *m = st->s->m;
    if (kw(st, "TABLE") || kw(st, "TABLES")) {
        do {
            const char *at = st->p;
            char *n = name(st);
            size_t t;
            if (n == NULL)
                return fail(st, st->p, "table name expected", NULL);
            if (tsr_engine_model_table_find(m, n, &t) != TSR_OK) {
                fail(st, at, "table %s not found", n);
                free(n);
                return st->rc;
            }
            tsr_engine__model_drop_table(m, t);
            tsr_buf_appendf(&st->s->log, "DROP TABLE %s\n", n);
            free(n);
        } while (punct(st, ','));
    } else if (kw(st, "FIELD") || kw(st, "FIELDS")) {
        char *list[64];
        size_t n_list = 0;
        tsr_err_t rc = TSR_OK;
        do {
            char *n = name(st);
            if (n == NULL || n_list == 64) {
                free(n);
                rc = fail(st, st->p, "field name expected", NULL);
                goto fields_out;
            }
            list[n_list++] = n;
        } while (punct(st, ','));
        size_t only = SIZE_MAX;
        if (kw(st, "FROM")) {
            const char *at = st->p;
            char *tn = name(st);
            if (tn == NULL || tsr_engine_model_table_find(m, tn, &only) != TSR_OK) {
                rc = fail(st, at, "table %s not found", tn ? tn : "");
                free(tn);
                goto fields_out;
            }
            free(tn);
        }
        for (size_t i = 0; i < n_list; i++) {
            size_t f;
            bool dropped = false;
            if (tsr_engine_model_field_find(m, list[i], &f) == TSR_OK) {
                for (size_t t = 0; t < m->n_tables; t++) {
                    if (only != SIZE_MAX && t != only)
                        continue;
                    for (uint32_t c = 0; c < m->tables[t].n_cols; c++) {
                        if (m->tables[t].cols[c].field == f) {
                            tsr_engine__table_drop_column(m, t, c);
                            dropped = true;
                            break;
                        }
                    }
                }
            }
            if (!dropped) {
                rc = fail(st, st->start, "field %s not found", list[i]);
                goto fields_out;
            }
            tsr_buf_appendf(&st->s->log, "DROP FIELD %s\n", list[i]);
        }
    fields_out:
        for (size_t i = 0; i < n_list; i++)
            free(list[i]);
        return rc;
    } else {
        return fail(st, st->p, "TABLE or FIELD expected after DROP", NULL);
    }
    return TSR_OK;
}

static tsr_err_t exec_let(stmt_t *st, bool let) {
    const char *at = st->p;
    char *n = name(st);
    tsr_err_t rc = TSR_OK;
    if (n == NULL)
        return fail(st, at, "variable name expected", NULL);
    if (!punct(st, '=')) {
        free(n);
        return fail(st, st->p, "'=' expected", NULL);
    }
    if (!let) {
        tsr_str_t v = tsr_str_trim(tsr_str_n(st->p, (size_t)(st->end - st->p)));
        char *val = tsr_str_dup(v);
        rc = var_set(st->s, n, val);
        free(val);
        free(n);
        return rc;
    }
    tsr_engine__expr_t *e = parse_expr(st);
    if (e == NULL) {
        free(n);
        return st->rc;
    }
    skip_ws(st);
    if (st->p != st->end) {
        tsr_engine__expr_free(e);
        free(n);
        return fail(st, st->p, "unexpected text", NULL);
    }
    tsr_engine__eval_t *ev = tsr_xcalloc(1, sizeof *ev);
    tsr_engine__val_t v = tsr_engine__expr_eval(ev, e);
    char buf[4200];
    if (v.kind == TSR_ENGINE__V_NUM)
        snprintf(buf, sizeof buf, "%.15g", v.num);
    else if (v.kind == TSR_ENGINE__V_NULL)
        buf[0] = '\0';
    else
        snprintf(buf, sizeof buf, "%.*s", (int)v.len, v.text);
    rc = var_set(st->s, n, buf);
    free(ev);
    tsr_engine__expr_free(e);
    free(n);
    return rc;
}

/* RENAME TABLE a TO b / RENAME FIELD a TO b (comma lists allowed). */
static tsr_err_t exec_rename(stmt_t *st) {
    tsr_engine_model_t *m = st->s->m;
    bool table = kw(st, "TABLE") || kw(st, "TABLES");
    if (!table && !(kw(st, "FIELD") || kw(st, "FIELDS")))
        return fail(st, st->p, "TABLE or FIELD expected after RENAME", NULL);
    do {
        const char *at = st->p;
        char *from = name(st), *to = NULL;
        if (from == NULL)
            return fail(st, st->p, "name expected", NULL);
        if (!kw(st, "TO") || (to = name(st)) == NULL) {
            free(from);
            return fail(st, st->p, "TO <name> expected", NULL);
        }
        size_t i, j;
        tsr_err_t rc = TSR_OK;
        if (table) {
            if (tsr_engine_model_table_find(m, from, &i) != TSR_OK)
                rc = fail(st, at, "table %s not found", from);
            else if (tsr_engine_model_table_find(m, to, &j) == TSR_OK)
                rc = fail(st, at, "table %s exists", to);
            else {
                free(m->tables[i].name);
                m->tables[i].name = tsr_xstrdup(to);
            }
        } else {
            if (tsr_engine_model_field_find(m, from, &i) != TSR_OK)
                rc = fail(st, at, "field %s not found", from);
            else if (tsr_engine_model_field_find(m, to, &j) == TSR_OK)
                rc = fail(st, at, "field %s exists", to);
            else {
                free(m->fields[i].name);
                m->fields[i].name = tsr_xstrdup(to);
            }
        }
        if (rc == TSR_OK)
            tsr_buf_appendf(&st->s->log, "RENAME %s %s TO %s\n", table ? "TABLE" : "FIELD", from,
                            to);
        free(from);
        free(to);
        if (rc != TSR_OK)
            return rc;
    } while (punct(st, ','));
    return TSR_OK;
}

/* QUALIFY * | f, ... / UNQUALIFY * | f, ... */
static tsr_err_t exec_qualify(stmt_t *st, bool qualify) {
    script_t *s = st->s;
    if (punct(st, '*')) {
        for (size_t i = 0; i < s->n_qual; i++)
            free(s->qual[i]);
        for (size_t i = 0; i < s->n_unqual; i++)
            free(s->unqual[i]);
        s->n_qual = s->n_unqual = 0;
        s->qualify_all = qualify;
        return TSR_OK;
    }
    do {
        char *n = name(st);
        if (n == NULL)
            return fail(st, st->p, "field name or * expected", NULL);
        char ***list = qualify ? &s->qual : &s->unqual;
        size_t *cnt = qualify ? &s->n_qual : &s->n_unqual;
        if (*cnt >= SCRIPT_MAX_VARS) {
            free(n);
            return fail(st, st->p, "too many names", NULL);
        }
        *list = tsr_xrealloc(*list, (*cnt + 1) * sizeof **list);
        (*list)[(*cnt)++] = n;
    } while (punct(st, ','));
    return TSR_OK;
}

/* Write a CSV cell, quoting when needed. */
static void csv_cell(FILE *f, const char *p, size_t n, char delim) {
    bool q = false;
    for (size_t i = 0; i < n && !q; i++)
        q = p[i] == delim || p[i] == '"' || p[i] == '\n' || p[i] == '\r';
    if (!q) {
        fwrite(p, 1, n, f);
        return;
    }
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '"')
            fputc('"', f);
        fputc(p[i], f);
    }
    fputc('"', f);
}

/* STORE into our own table file: a one-table app file (symbols as they are, no text). */
static tsr_err_t store_table_file(stmt_t *st, size_t t, const char *path, const char *raw) {
    const tsr_engine_model_t *m = st->s->m;
    const tsr_engine__table_t *tb = &m->tables[t];
    tsr_engine_model_t *c = tsr_engine_model_create();
    size_t ct = tsr_engine__model_add_table(c, tb->name);
    tsr_engine__table_t *ctb = &c->tables[ct];
    ctb->cols = tsr_xcalloc(tb->n_cols + 1, sizeof *ctb->cols);
    ctb->n_rows = tb->n_rows;
    for (uint32_t k = 0; k < tb->n_cols; k++) {
        const tsr_engine__field_t *sf = &m->fields[tb->cols[k].field];
        uint32_t f2 = tsr_engine__model_field(c, sf->name, strlen(sf->name));
        /* Same symbols in the same order, so the packed column copies as it is. */
        for (uint32_t y = 0; y < sf->n_syms; y++)
            tsr_engine__field_intern_dual(&c->fields[f2],
                                          sf->pool + tsr_engine__sym_off(&sf->syms[y]),
                                          tsr_engine__sym_len(&sf->syms[y]), sf->syms[y].num);
        const tsr_engine__packed_t *pk = &tb->cols[k].data;
        tsr_engine__packed_t *dst = &ctb->cols[k].data;
        *dst = *pk;
        dst->words = tsr_xcalloc(pk->n_words + 1, sizeof *dst->words);
        if (pk->words != NULL) /* a column that never got a row has no words */
            memcpy(dst->words, pk->words, (pk->n_words + 1) * sizeof *dst->words);
        ctb->cols[k].field = f2;
        ctb->n_cols = k + 1;
    }
    tsr_err_t rc = tsr_engine_model_finalize(c, st->s->err);
    if (rc == TSR_OK)
        rc = tsr_engine_app_save(c, NULL, path, NULL, st->s->err);
    if (rc == TSR_OK)
        tsr_buf_appendf(&st->s->log, "STORE %s INTO %s: %zu rows\n", tb->name, raw, tb->n_rows);
    tsr_engine_model_destroy(c);
    return rc;
}

/* STORE T INTO [lib://conn/file] [(txt[, delimiter is 'x'])]: the table as delimited text. */
static tsr_err_t exec_store(stmt_t *st) {
    tsr_engine_model_t *m = st->s->m;
    const char *at = st->p;
    char *tn = name(st), *raw = NULL, *path = NULL;
    tsr_err_t rc = TSR_OK;
    size_t t;
    tsr_engine_csv_opts_t o = {0};
    if (tn == NULL) {
        rc = fail(st, st->p, "table name expected", NULL);
        goto out;
    }
    if (tsr_engine_model_table_find(m, tn, &t) != TSR_OK) {
        rc = fail(st, at, "table %s not found", tn);
        goto out;
    }
    if (!kw(st, "INTO") || (raw = name(st)) == NULL) {
        rc = fail(st, st->p, "INTO <file> expected", NULL);
        goto out;
    }
    path = resolve_path(st, at, raw);
    if (path == NULL) {
        rc = st->rc;
        goto out;
    }
    if (parse_format(st, &o) != TSR_OK) {
        rc = st->rc;
        goto out;
    }
    if (is_table_file(path)) {
        rc = store_table_file(st, t, path, raw);
        goto out;
    }
    char delim = o.delimiter ? o.delimiter : ',';
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        rc = tsr_error_set(st->s->err, TSR_EIO, "line %zu: cannot write %s", st->line, raw);
        goto out;
    }
    const tsr_engine__table_t *tb = &m->tables[t];
    for (uint32_t c = 0; c < tb->n_cols; c++) {
        const char *fn = m->fields[tb->cols[c].field].name;
        if (c > 0)
            fputc(delim, f);
        csv_cell(f, fn, strlen(fn), delim);
    }
    fputc('\n', f);
    for (size_t r = 0; r < tb->n_rows; r++) {
        for (uint32_t c = 0; c < tb->n_cols; c++) {
            if (c > 0)
                fputc(delim, f);
            uint32_t v = tsr_engine__packed_get(&tb->cols[c].data, r);
            if (v == 0)
                continue;
            const tsr_engine__field_t *fd = &m->fields[tb->cols[c].field];
            csv_cell(f, fd->pool + tsr_engine__sym_off(&fd->syms[v - 1]),
                     tsr_engine__sym_len(&fd->syms[v - 1]), delim);
        }
        fputc('\n', f);
    }
    if (fclose(f) != 0)
        rc = tsr_error_set(st->s->err, TSR_EIO, "line %zu: cannot write %s", st->line, raw);
    else
        tsr_buf_appendf(&st->s->log, "STORE %s INTO %s: %zu rows\n", tn, raw, tb->n_rows);
out:
    free(tn);
    free(raw);
    free(path);
    return rc;
}

static tsr_err_t exec_stmt(script_t *s, stmt_t *st) {
    skip_ws(st);
    if (st->p == st->end)
        return TSR_OK;
    const char *stmt_at = st->p;
    if (kw(st, "SET"))
        return exec_let(st, false);
    if (kw(st, "LET"))
        return exec_let(st, true);
    if (kw(st, "DROP"))
        return exec_drop(st);
    if (kw(st, "RENAME"))
        return exec_rename(st);
    if (kw(st, "QUALIFY"))
        return exec_qualify(st, true);
    if (kw(st, "UNQUALIFY"))
        return exec_qualify(st, false);
    if (kw(st, "STORE"))
        return exec_store(st);
    if (kw(st, "REM"))
        return TSR_OK;
    load_t l;
    memset(&l, 0, sizeof l);
    tsr_err_t rc = TSR_OK;
    bool mapping = false;
    int join = 0;
    char *join_into = NULL;
    char tmpname[32];
    /* Optional label. */
    const char *save = st->p;
    char *label = name(st);
    if (label != NULL && punct(st, ':') && !(st->p < st->end && *st->p == '/')) {
        l.label = label;
    } else {
        free(label);
        st->p = save;
    }
    if (kw(st, "MAPPING")) {
        mapping = true;
    } else if (kw(st, "CONCATENATE")) {
        l.concatenate = true;
        if (punct(st, '(')) {
            l.concat_into = name(st);
            if (l.concat_into == NULL || !punct(st, ')')) {
                rc = fail(st, st->p, "table name expected", NULL);
                goto out;
            }
        }
    } else if (kw(st, "NOCONCATENATE")) {
        l.no_concatenate = true;
    } else {
        if (kw(st, "LEFT"))
            join = JOIN_LEFT;
        else if (kw(st, "RIGHT"))
            join = JOIN_RIGHT;
        else if (kw(st, "INNER"))
            join = JOIN_INNER;
        else if (kw(st, "OUTER"))
            join = JOIN_OUTER;
        if (kw(st, "JOIN")) {
            if (join == 0)
                join = JOIN_OUTER; /* plain JOIN is a full outer join in Qlik */
            if (punct(st, '(')) {
                join_into = name(st);
                if (join_into == NULL || !punct(st, ')')) {
                    rc = fail(st, st->p, "table name expected", NULL);
                    goto out;
                }
            }
        } else if (join != 0) {
            rc = fail(st, st->p, "JOIN expected", NULL);
            goto out;
        }
    }
    if (!kw(st, "LOAD")) {
        rc = fail(st, stmt_at, "unknown statement", NULL);
        goto out;
    }
    rc = parse_load(st, &l);
    if (rc != TSR_OK)
        goto out;
    if (!mapping && join == 0) {
        rc = exec_load(st, &l, stmt_at);
        goto out;
    }
    /* MAPPING and JOIN load into a scratch table first (never qualified, never merged). */
    size_t target = SIZE_MAX;
    if (join != 0) {
        if (join_into != NULL) {
            if (tsr_engine_model_table_find(s->m, join_into, &target) != TSR_OK) {
                rc = fail(st, stmt_at, "table %s not found", join_into);
                goto out;
            }
        } else if (s->m->n_tables > 0) {
            target = s->m->n_tables - 1;
        } else {
            rc = fail(st, stmt_at, "JOIN without a previous table", NULL);
            goto out;
        }
    }
    char *map_name = mapping ? (l.label ? tsr_xstrdup(l.label) : tsr_xstrdup("Map")) : NULL;
    snprintf(tmpname, sizeof tmpname, "$tmp%zu", ++s->n_tmp);
    free(l.label);
    l.label = tsr_xstrdup(tmpname);
    l.no_concatenate = true;
    bool qa = s->qualify_all;
    size_t nq = s->n_qual;
    s->qualify_all = false;
    s->n_qual = 0;
    rc = exec_load(st, &l, stmt_at);
    s->qualify_all = qa;
    s->n_qual = nq;
    size_t tmp_t;
    if (rc == TSR_OK && tsr_engine_model_table_find(s->m, tmpname, &tmp_t) != TSR_OK)
        rc = fail(st, stmt_at, "internal: scratch table missing", NULL);
    if (rc == TSR_OK && mapping)
        rc = make_mapping(st, tmp_t, map_name, stmt_at);
    else if (rc == TSR_OK)
        rc = join_tables(st, target, tmp_t, join, stmt_at);
    free(map_name);
out:
    free(join_into);
    load_cleanup(&l);
    return rc;
}

/* Live log: the log bytes from *sent on go to opts->on_log. */
static void log_emit(script_t *s, size_t *sent) {
    if (s->opts == NULL || s->opts->on_log == NULL || s->log.len <= *sent)
        return;
    s->opts->on_log(s->opts->log_ud, s->log.data + *sent, s->log.len - *sent);
    *sent = s->log.len;
}

/* Live log: "line L: <head of the statement>" for a statement about to run (nothing for one
 * that is only blanks and comments). */
static void log_stmt_start(script_t *s, const char *p, const char *e, size_t line) {
    if (s->opts == NULL || s->opts->on_log == NULL)
        return;
    for (;;) {
        while (p < e && isspace((unsigned char)*p)) {
            if (*p == '\n')
                line++;
            p++;
        }
        if (e - p >= 2 && p[0] == '/' && p[1] == '/') {
            while (p < e && *p != '\n')
                p++;
            continue;
        }
        break;
    }
    if (p >= e)
        return;
    char head[96];
    size_t n = (size_t)snprintf(head, sizeof head, "line %zu: ", line);
    bool space = false, cut = false;
    for (; p < e; p++) {
        if (n >= 80 && ((unsigned char)*p & 0xC0) != 0x80) {
            cut = true;
            break;
        }
        if (isspace((unsigned char)*p)) {
            space = true;
            continue;
        }
        if (space && n < sizeof head - 1)
            head[n++] = ' ';
        space = false;
        if (n < sizeof head - 1)
            head[n++] = *p;
    }
    n = n < sizeof head - 5 ? n : sizeof head - 5;
    if (cut) {
        memcpy(head + n, "\xe2\x80\xa6", 3); /* … */
        n += 3;
    }
    head[n++] = '\n';
    s->opts->on_log(s->opts->log_ud, head, n);
}

tsr_err_t tsr_engine_reload(const char *script, size_t len, const tsr_engine_reload_opts_t *opts,
                            tsr_engine_model_t **out, char **log, tsr_error_t *err) {
    script_t s = {.m = tsr_engine_model_create(), .opts = opts, .err = err};
    tsr_err_t rc = TSR_OK;
    tsr_buf_t text;
    tsr_buf_init(&s.log, 0);
    tsr_buf_init(&text, SCRIPT_MAX_EXPANSION);
    uint64_t t0 = tsr_mono_ns();
    const char *p = script, *end = script + len;
    size_t line = 1, col = 1, sent = 0;
    *out = NULL;
    while (p < end) {
        const char *e = stmt_end(p, end);
        log_stmt_start(&s, p, e, line);
        rc = expand(&s, p, (size_t)(e - p), &text);
        if (rc != TSR_OK)
            break;
        stmt_t st = {.p = text.data,
                     .end = text.data + text.len,
                     .start = text.data,
                     .line = line,
                     .col = col,
                     .s = &s};
        rc = exec_stmt(&s, &st);
        if (rc != TSR_OK) {
            tsr_buf_appendf(&s.log, "error: %s\n", err ? err->msg : tsr_strerror(rc));
            break;
        }
        log_emit(&s, &sent);
        for (const char *q = p; q < e && q < end; q++) {
            if (*q == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        p = e < end ? e + 1 : end;
        col++;
    }
    if (rc == TSR_OK) {
        tsr_engine__model_gc_fields(s.m);
        rc = tsr_engine_model_finalize(s.m, err);
        if (rc != TSR_OK)
            tsr_buf_appendf(&s.log, "error: %s\n", err ? err->msg : tsr_strerror(rc));
    }
    if (rc == TSR_OK) {
        for (size_t i = 0; i < s.n_vars; i++)
            tsr_engine__model_add_var(s.m, s.vars[i].name, strlen(s.vars[i].name), s.vars[i].value,
                                      strlen(s.vars[i].value));
        tsr_buf_appendf(&s.log, "--- %zu tables, %zu fields, %.1f ms\n", s.m->n_tables,
                        s.m->n_fields, (double)(tsr_mono_ns() - t0) / 1e6);
        *out = s.m;
        s.m = NULL;
        tsr_engine__trim_heap();
    }
    log_emit(&s, &sent);
    tsr_engine_model_destroy(s.m);
    for (size_t i = 0; i < s.n_vars; i++) {
        free(s.vars[i].name);
        free(s.vars[i].value);
    }
    free(s.vars);
    maps_free(&s);
    for (size_t i = 0; i < s.n_qual; i++)
        free(s.qual[i]);
    for (size_t i = 0; i < s.n_unqual; i++)
        free(s.unqual[i]);
    free(s.qual);
    free(s.unqual);
    tsr_buf_cleanup(&text);
    if (log != NULL) {
        size_t n;
        tsr_buf_append(&s.log, "", 0);
        *log = tsr_buf_take(&s.log, &n);
    } else {
        tsr_buf_cleanup(&s.log);
    }
    return rc;
}
