/*
 * The GenericObject handle type: properties in, layouts out. A layout is a deep copy of the
 * properties where qHyperCubeDef, qListObjectDef, qSelectionObjectDef, qFieldListDef and the
 * other *Def structures (at any depth) become their computed counterparts over the
 * session's selection state (qix.md §7). Selections through objects (hypercube and list
 * object values, searches, selection mode) report every object of the session in "change".
 * Session objects keep their properties here; persistent ones in the app's document.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engined_int.h"

#define MAX_PAGE_CELLS 100000 /* cells one data page may ask for (Qlik's limit is 10000) */
#define MAX_DIMS 16
#define MAX_PAGES 64 /* data pages one layout or Get*Data call answers; more are ignored */

/* ---- small helpers ----------------------------------------------------------------------------
 */

void tsr_engined__num_text(double v, char *buf, size_t n) {
    if (isnan(v)) {
        snprintf(buf, n, "-");
    } else if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(buf, n, "%.0f", v);
    } else {
        snprintf(buf, n, "%.14g", v);
    }
}

void tsr_engined__set_num(json_t *o, const char *key, double v, bool is_num) {
    if (!is_num || isnan(v)) {
        json_object_set_new(o, key, json_string("NaN"));
    } else if (isinf(v)) {
        json_object_set_new(o, key, json_string(v > 0 ? "Infinity" : "-Infinity"));
    } else {
        json_object_set_new(o, key, json_real(v));
    }
}

static int64_t jint(json_t *o, const char *key, int64_t def) {
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v)) {
        return (int64_t)json_integer_value(v);
    }
    if (json_is_real(v)) {
        return (int64_t)json_real_value(v);
    }
    if (json_is_boolean(v)) {
        return json_is_true(v) ? 1 : 0;
    }
    return def;
}

/* One token of a JSON pointer (RFC 6901) into buf; returns the rest or NULL at the end. */
static const char *ptr_token(const char *p, char *buf, size_t n) {
    size_t k = 0;
    if (*p != '/') {
        return NULL;
    }
    p++;
    while (*p != '\0' && *p != '/') {
        char c = *p++;
        if (c == '~' && (*p == '0' || *p == '1')) {
            c = *p++ == '0' ? '~' : '/';
        }
        if (k + 1 < n) {
            buf[k++] = c;
        }
    }
    buf[k] = '\0';
    return p;
}

static json_t *ptr_child(json_t *v, const char *tok) {
    if (json_is_object(v)) {
        return json_object_get(v, tok);
    }
    if (json_is_array(v)) {
        char *end;
        unsigned long i = strtoul(tok, &end, 10);
        return (*tok != '\0' && *end == '\0') ? json_array_get(v, i) : NULL;
    }
    return NULL;
}

/* The value at pointer path in root (borrowed), or NULL. "" and "/" are the root. */
json_t *tsr_engined__ptr_get(json_t *root, const char *path) {
    char tok[256];
    json_t *v = root;
    if (path == NULL || path[0] == '\0' || strcmp(path, "/") == 0) {
        return root;
    }
    const char *p = path;
    while (v != NULL && p != NULL && *p != '\0') {
        p = ptr_token(p, tok, sizeof tok);
        if (p == NULL) {
            return NULL;
        }
        v = ptr_child(v, tok);
    }
    return v;
}

/* ---- objects and their properties ---------------------------------------------------------------
 */

tsr_engined__obj_t *tsr_engined__doc_find_obj(tsr_engined__doc_t *d, const char *id) {
    tsr_engined__obj_t *o = NULL;
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->nobjs; i++) {
        if (strcmp(d->objs[i]->id, id) == 0) {
            o = d->objs[i];
            break;
        }
    }
    pthread_mutex_unlock(&d->mu);
    return o;
}

json_t *tsr_engined__obj_props(tsr_engined__obj_t *o) {
    json_t *p = NULL;
    if (o->persistent) {
        tsr_engined__app_t *a = o->doc->app;
        pthread_mutex_lock(&a->mu);
        p = json_deep_copy(json_object_get(json_object_get(a->doc, "objects"), o->id));
        pthread_mutex_unlock(&a->mu);
    } else {
        p = json_deep_copy(o->props);
    }
    if (!json_is_object(p)) {
        /* Destroyed by another session meanwhile: an empty object keeps the handle usable. */
        json_decref(p);
        p = json_object();
        json_t *info = json_object();
        json_object_set_new(info, "qId", json_string(o->id));
        json_object_set_new(info, "qType", json_string(""));
        json_object_set_new(p, "qInfo", info);
    }
    return p;
}

static void obj_release(void *obj) {
    tsr_engined__obj_t *o = obj;
    tsr_engined__doc_t *d = o->doc;
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->nobjs; i++) {
        if (d->objs[i] == o) {
            memmove(&d->objs[i], &d->objs[i + 1], (d->nobjs - i - 1) * sizeof *d->objs);
            d->nobjs--;
            break;
        }
    }
    pthread_mutex_unlock(&d->mu);
    if (d->modal == o) {
        d->modal = NULL;
    }
    json_decref(o->props);
    free(o->search);
    free(o->parent);
    free(o->id);
    free(o);
}

json_t *tsr_engined__obj_open(tsr_qix_call_t *call, tsr_engined__doc_t *d, const char *id,
                              bool persistent, json_t *props) {
    tsr_engined__obj_t *o = tsr_xcalloc(1, sizeof *o);
    o->doc = d;
    o->id = tsr_xstrdup(id);
    o->persistent = persistent;
    o->props = persistent ? NULL : props;
    json_t *p = tsr_engined__obj_props(o);
    o->lists_objects = json_object_get(p, "qAppObjectListDef") != NULL;
    const char *type = json_string_value(json_object_get(json_object_get(p, "qInfo"), "qType"));
    json_t *iface = NULL;
    o->handle = tsr_qix_call_open_handle(call, &tsr_engined__object_type, o, type ? type : "",
                                         o->id, &iface);
    json_decref(p);
    pthread_mutex_lock(&d->mu);
    if (d->nobjs == d->capobjs) {
        d->capobjs = d->capobjs ? d->capobjs * 2 : 16;
        d->objs = tsr_xrealloc(d->objs, d->capobjs * sizeof *d->objs);
    }
    d->objs[d->nobjs++] = o;
    pthread_mutex_unlock(&d->mu);
    return iface;
}

/* ---- dimension info
 * ------------------------------------------------------------------------------ */

static const char *state_code(tsr_engine_vstate_t s, bool show_alternatives) {
    if (s == TSR_ENGINE_A && !show_alternatives) {
        return "X";
    }
    return tsr_engine_vstate_name(s);
}

/* Copy the non-q (custom) keys of from into to: nebula finds dimensions by cId. */
static void copy_custom(json_t *to, json_t *from) {
    const char *k;
    json_t *v;
    json_object_foreach(from, k, v) {
        if (k[0] != 'q') {
            json_object_set_new(to, k, json_deep_copy(v));
        }
    }
}

typedef struct {
    tsr_engine_sort_by_t by;
    bool descending;
    bool by_state;
    bool sorted; /* any criterion set */
} sortspec_t;

static sortspec_t dim_sort(json_t *qdef) {
    sortspec_t s = {TSR_ENGINE_SORT_DEFAULT, false, false, false};
    json_t *c = json_array_get(json_object_get(qdef, "qSortCriterias"), 0);
    if (!json_is_object(c)) {
        s.sorted = true;
        return s;
    }
    int64_t st = jint(c, "qSortByState", 0), num = jint(c, "qSortByNumeric", 0),
            ascii = jint(c, "qSortByAscii", 0), load = jint(c, "qSortByLoadOrder", 0);
    s.by_state = st != 0;
    if (num != 0) {
        s.by = TSR_ENGINE_SORT_DEFAULT;
        s.descending = num < 0;
        s.sorted = true;
    } else if (ascii != 0) {
        s.by = TSR_ENGINE_SORT_TEXT;
        s.descending = ascii < 0;
        s.sorted = true;
    } else if (load != 0) {
        s.by = TSR_ENGINE_SORT_LOAD;
        s.descending = load < 0;
        s.sorted = true;
    }
    return s;
}

/* NxDimensionInfo of field f; st may be NULL (no data). */
static json_t *dim_info(tsr_engined__doc_t *d, tsr_engine_state_t *st, size_t f, json_t *qdef,
                        sortspec_t sort) {
    const tsr_engine_model_t *m = d->model->m;
    const char *name = tsr_engine_model_field_name(m, f);
    json_t *label = json_array_get(json_object_get(qdef, "qFieldLabels"), 0);
    const char *title =
        (json_is_string(label) && json_string_length(label) > 0) ? json_string_value(label) : name;
    size_t card = tsr_engine_model_field_symbol_count(m, f);
    size_t counts[5] = {0};
    if (st != NULL) {
        tsr_engine_listobject_def_t ld = {.field = name, .top = 0, .height = 1};
        tsr_engine_listobject_t *lo = NULL;
        if (tsr_engine_listobject_compute_cached(d->app->e->cache, m, st, &ld, &lo, NULL) ==
            TSR_OK) {
            tsr_engine_listobject_state_counts(lo, counts);
        }
        tsr_engine_listobject_destroy(lo);
    }
    bool numeric = card > 0;
    size_t glyphs = 0;
    /* Tags and glyph width from a sample of values: the full field can be millions. */
    for (size_t y = 0; y < card && y < 1000; y++) {
        tsr_engine_dual_t v;
        if (tsr_engine_model_field_symbol(m, f, y, &v) == TSR_OK) {
            numeric = numeric && v.is_num;
            glyphs = v.text_len > glyphs ? v.text_len : glyphs;
        }
    }
    json_t *di = json_object();
    json_object_set_new(di, "qFallbackTitle", json_string(title));
    json_object_set_new(di, "qApprMaxGlyphCount", json_integer((json_int_t)glyphs));
    json_object_set_new(di, "qCardinal", json_integer((json_int_t)card));
    json_object_set_new(di, "qLocked",
                        json_boolean(d->sel != NULL && tsr_engine_selection_is_locked(d->sel, f)));
    json_object_set_new(di, "qSortIndicator",
                        json_string(!sort.sorted      ? "N"
                                    : sort.descending ? "D"
                                                      : "A"));
    json_t *a = json_array();
    json_array_append_new(a, json_string(title));
    json_object_set_new(di, "qGroupFallbackTitles", a);
    json_object_set_new(di, "qGroupPos", json_integer(0));
    json_t *sc = json_object();
    json_object_set_new(sc, "qLocked", json_integer(0));
    json_object_set_new(sc, "qSelected", json_integer((json_int_t)counts[TSR_ENGINE_S]));
    json_object_set_new(sc, "qOption", json_integer((json_int_t)counts[TSR_ENGINE_O]));
    json_object_set_new(sc, "qDeselected", json_integer(0));
    json_object_set_new(sc, "qAlternative", json_integer((json_int_t)counts[TSR_ENGINE_A]));
    json_object_set_new(sc, "qExcluded", json_integer((json_int_t)counts[TSR_ENGINE_X]));
    json_object_set_new(sc, "qSelectedExcluded", json_integer((json_int_t)counts[TSR_ENGINE_XS]));
    json_object_set_new(sc, "qLockedExcluded", json_integer(0));
    json_object_set_new(di, "qStateCounts", sc);
    a = json_array();
    if (numeric) {
        json_array_append_new(a, json_string("$numeric"));
    } else {
        json_array_append_new(a, json_string("$ascii"));
        json_array_append_new(a, json_string("$text"));
    }
    json_object_set_new(di, "qTags", a);
    json_object_set_new(di, "qDimensionType", json_string(numeric ? "N" : "D"));
    json_object_set_new(di, "qGrouping", json_string("N"));
    json_t *nf = json_object();
    json_object_set_new(nf, "qType", json_string("U"));
    json_object_set_new(nf, "qnDec", json_integer(0));
    json_object_set_new(nf, "qUseThou", json_integer(0));
    json_object_set_new(di, "qNumFormat", nf);
    json_object_set_new(di, "qIsAutoFormat", json_true());
    a = json_array();
    json_array_append_new(a, json_string(name));
    json_object_set_new(di, "qGroupFieldDefs", a);
    json_object_set_new(di, "qMin", json_string("NaN"));
    json_object_set_new(di, "qMax", json_string("NaN"));
    json_object_set_new(di, "qAttrExprInfo", json_array());
    json_object_set_new(di, "qAttrDimInfo", json_array());
    json_t *cards = json_object();
    json_object_set_new(cards, "qCardinal", json_integer((json_int_t)card));
    json_object_set_new(
        cards, "qHypercubeCardinal",
        json_integer((json_int_t)(st ? counts[TSR_ENGINE_S] + counts[TSR_ENGINE_O] : 0)));
    json_object_set_new(cards, "qAllValuesCardinal", json_integer(-1));
    json_object_set_new(di, "qCardinalities", cards);
    json_object_set_new(di, "qIsCalculated", json_false());
    copy_custom(di, qdef);
    return di;
}

static json_t *validation_error(int code, const char *msg) {
    json_t *e = json_object();
    json_object_set_new(e, "qErrorCode", json_integer(code));
    json_object_set_new(e, "qContext", json_string(""));
    json_object_set_new(e, "qExtendedMessage", json_string(msg));
    return e;
}

/* ---- hypercubes
 * ----------------------------------------------------------------------------------- */

/* A computed straight-table hypercube, rows after qSuppressZero. */
typedef struct {
    tsr_engine_hypercube_t *c;
    size_t nd, nm;
    size_t fields[MAX_DIMS];
    size_t *rows; /* kept row indexes into c */
    size_t nrows;
    double *scalar; /* no dimensions: the one row of measure values (NaN: null), else NULL */
    char err[TSR_ERROR_MSG_MAX]; /* non-empty: the cube failed */
} cube_t;

static void cube_cleanup(cube_t *k) {
    tsr_engine_hypercube_destroy(k->c);
    free(k->rows);
    free(k->scalar);
}

/* The value at kept row r, column col (a measure column when the cube has no dimensions). */
static void cube_value(const cube_t *k, size_t r, size_t col, tsr_engine_dual_t *v) {
    if (k->scalar != NULL) {
        memset(v, 0, sizeof *v);
        v->num = k->scalar[col];
        v->is_num = !isnan(v->num);
        return;
    }
    tsr_engine_hypercube_cell(k->c, k->rows[r], col, v);
}

static const char *strip_eq(const char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') {
        s++;
    }
    return *s == '=' ? s + 1 : s;
}

/* Compute the cube of def over st (NULL: no data → empty). */
static void cube_compute(tsr_engined__doc_t *d, tsr_engine_state_t *st, json_t *def, cube_t *k) {
    memset(k, 0, sizeof *k);
    json_t *dims = json_object_get(def, "qDimensions");
    json_t *meas = json_object_get(def, "qMeasures");
    k->nd = json_array_size(dims);
    k->nm = json_array_size(meas);
    if (k->nd > MAX_DIMS || k->nm > 256) {
        snprintf(k->err, sizeof k->err, "too many dimensions or measures");
        return;
    }
    const char *dnames[MAX_DIMS];
    const char **mexprs = tsr_xcalloc(k->nm + 1, sizeof *mexprs);
    char **expanded = tsr_xcalloc(k->nd + k->nm + 1, sizeof *expanded); /* $() results */
    tsr_engine_sort_t *sort = tsr_xcalloc(k->nd + k->nm + 1, sizeof *sort);
    size_t nsort = 0;
    for (size_t i = 0; i < k->nd; i++) {
        /* A master dimension (qLibraryId) gives its field. */
        json_t *qdef = tsr_engined__dimension_qdef(d, json_array_get(dims, i));
        const char *fd = json_string_value(json_array_get(json_object_get(qdef, "qFieldDefs"), 0));
        if (fd != NULL && (expanded[i] = tsr_engined__expand(d, fd)) == NULL) {
            expanded[i] = tsr_xstrdup(fd);
        }
        json_decref(qdef);
        fd = expanded[i];
        if (fd == NULL || fd[0] == '=' ||
            tsr_engined__doc_field(d, fd, &k->fields[i], NULL) != TSR_OK) {
            snprintf(k->err, sizeof k->err, "dimension %zu: field not found or calculated", i);
            goto out;
        }
        dnames[i] = tsr_engine_model_field_name(d->model->m, k->fields[i]);
    }
    for (size_t j = 0; j < k->nm; j++) {
        /* A master measure (qLibraryId) gives its expression; kept in expanded[]. */
        json_t *qdef = tsr_engined__measure_qdef(d, json_array_get(meas, j));
        const char *e = json_string_value(json_object_get(qdef, "qDef"));
        if (e != NULL && (expanded[k->nd + j] = tsr_engined__expand(d, e)) == NULL) {
            expanded[k->nd + j] = tsr_xstrdup(e);
        }
        json_decref(qdef);
        e = expanded[k->nd + j];
        mexprs[j] = strip_eq(e ? e : "");
    }
    json_t *order = json_object_get(def, "qInterColumnSortOrder");
    size_t ncol = k->nd + k->nm;
    for (size_t i = 0; i < ncol; i++) {
        size_t col = i;
        if (json_array_size(order) > 0) {
            if (i >= json_array_size(order)) {
                break;
            }
            json_t *v = json_array_get(order, i);
            int64_t c = json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
            if (c < 0 || (size_t)c >= ncol) {
                continue;
            }
            col = (size_t)c;
        }
        tsr_engine_sort_t s = {.column = col, .by = TSR_ENGINE_SORT_DEFAULT};
        if (col < k->nd) {
            sortspec_t ds = dim_sort(json_object_get(json_array_get(dims, col), "qDef"));
            if (!ds.sorted) {
                continue;
            }
            s.by = ds.by;
            s.descending = ds.descending;
        } else {
            json_t *sb = json_object_get(json_array_get(meas, col - k->nd), "qSortBy");
            int64_t num = jint(sb, "qSortByNumeric", 0);
            if (num == 0) {
                continue;
            }
            s.descending = num < 0;
        }
        sort[nsort++] = s;
    }
    if (st != NULL && k->nd == 0 && k->nm > 0) {
        /* No dimensions (a KPI): one row, each measure over all possible records. */
        k->scalar = tsr_xcalloc(k->nm, sizeof *k->scalar);
        for (size_t j = 0; j < k->nm; j++) {
            char text[64];
            bool is_num = false;
            if (tsr_engined__evaluate(d, st, mexprs[j], &k->scalar[j], &is_num, text, sizeof text,
                                      NULL) != TSR_OK ||
                !is_num) {
                k->scalar[j] = NAN;
            }
        }
        k->rows = tsr_xcalloc(1, sizeof *k->rows);
        k->nrows = 1;
    }
    if (st == NULL || k->nd == 0) {
        goto out;
    }
    tsr_engine_hypercube_def_t hd = {.dims = dnames,
                                     .n_dims = k->nd,
                                     .measures = mexprs,
                                     .n_measures = k->nm,
                                     .sort = sort,
                                     .n_sort = nsort,
                                     .top = 0,
                                     .height = 0};
    tsr_error_t err = {0};
    if (tsr_engine_hypercube_compute_cached(d->app->e->cache, d->model->m, st, &hd, &k->c, &err) !=
        TSR_OK) {
        k->c = NULL;
        snprintf(k->err, sizeof k->err, "%s", err.msg[0] ? err.msg : "calculation failed");
        goto out;
    }
    size_t n = tsr_engine_hypercube_rows(k->c);
    bool suppress_zero = json_is_true(json_object_get(def, "qSuppressZero"));
    k->rows = tsr_xcalloc(n + 1, sizeof *k->rows);
    for (size_t r = 0; r < n; r++) {
        if (suppress_zero && k->nm > 0) {
            bool all_zero = true;
            for (size_t j = 0; j < k->nm && all_zero; j++) {
                tsr_engine_dual_t v;
                tsr_engine_hypercube_cell(k->c, r, k->nd + j, &v);
                all_zero = !v.is_num || v.num == 0;
            }
            if (all_zero) {
                continue;
            }
        }
        k->rows[k->nrows++] = r;
    }
out:
    for (size_t i = 0; i < k->nd + k->nm; i++) {
        free(expanded[i]);
    }
    free(expanded);
    free(mexprs);
    free(sort);
}

static json_t *cube_cell(tsr_engined__doc_t *d, tsr_engine_state_t *st, cube_t *k, size_t r,
                         size_t c) {
    tsr_engine_dual_t v = {0};
    json_t *cell = json_object();
    cube_value(k, r, c, &v);
    if (c < k->nd) {
        size_t sym = 0;
        bool found = tsr_engine_model_field_symbol_find(d->model->m, k->fields[c], v.text,
                                                        v.text_len, &sym) == TSR_OK;
        json_object_set_new(cell, "qText", json_stringn(v.text, v.text_len));
        tsr_engined__set_num(cell, "qNum", v.num, v.is_num);
        json_object_set_new(cell, "qElemNumber", json_integer(found ? (json_int_t)sym : -2));
        json_object_set_new(
            cell, "qState",
            json_string(found ? state_code(tsr_engine_state_value(st, k->fields[c], sym), true)
                              : "O"));
    } else {
        char buf[64];
        tsr_engined__num_text(v.is_num ? v.num : NAN, buf, sizeof buf);
        json_object_set_new(cell, "qText", json_string(buf));
        tsr_engined__set_num(cell, "qNum", v.num, v.is_num);
        json_object_set_new(cell, "qElemNumber", json_integer(0));
        json_object_set_new(cell, "qState", json_string("L"));
        if (!v.is_num) {
            json_object_set_new(cell, "qIsNull", json_true());
        }
    }
    return cell;
}

/* One NxDataPage for page {qLeft,qTop,qWidth,qHeight}, clipped to the cube. */
static json_t *cube_page(tsr_engined__doc_t *d, tsr_engine_state_t *st, cube_t *k, json_t *pg) {
    size_t ncol = k->nd + k->nm;
    int64_t l = jint(pg, "qLeft", 0), t = jint(pg, "qTop", 0), w = jint(pg, "qWidth", 0),
            h = jint(pg, "qHeight", 0);
    size_t left = l < 0 ? 0 : (size_t)l, top = t < 0 ? 0 : (size_t)t;
    left = left > ncol ? ncol : left;
    top = top > k->nrows ? k->nrows : top;
    size_t width = w < 0 ? 0 : (size_t)w, height = h < 0 ? 0 : (size_t)h;
    width = width > ncol - left ? ncol - left : width;
    height = height > k->nrows - top ? k->nrows - top : height;
    if (width > 0 && height > MAX_PAGE_CELLS / width) {
        height = MAX_PAGE_CELLS / width;
    }
    json_t *matrix = json_array();
    for (size_t r = top; r < top + height && (k->c != NULL || k->scalar != NULL); r++) {
        json_t *row = json_array();
        for (size_t c = left; c < left + width; c++) {
            json_array_append_new(row, cube_cell(d, st, k, r, c));
        }
        json_array_append_new(matrix, row);
    }
    json_t *area = json_object();
    json_object_set_new(area, "qLeft", json_integer((json_int_t)left));
    json_object_set_new(area, "qTop", json_integer((json_int_t)top));
    json_object_set_new(area, "qWidth", json_integer((json_int_t)width));
    json_object_set_new(area, "qHeight", json_integer((json_int_t)height));
    json_t *p = json_object();
    json_object_set_new(p, "qMatrix", matrix);
    json_object_set_new(p, "qTails", json_array());
    json_object_set_new(p, "qArea", area);
    json_object_set_new(p, "qIsReduced", json_false());
    return p;
}

static json_t *cube_pages(tsr_engined__doc_t *d, tsr_engine_state_t *st, cube_t *k, json_t *pages) {
    json_t *out = json_array();
    size_t i;
    json_t *pg;
    json_array_foreach(pages, i, pg) {
        if (i >= MAX_PAGES) {
            break;
        }
        json_array_append_new(out, cube_page(d, st, k, pg));
    }
    return out;
}

static json_t *hypercube_layout(tsr_engined__doc_t *d, tsr_engine_state_t *st, json_t *def) {
    cube_t k;
    cube_compute(d, st, def, &k);
    json_t *hc = json_object();
    json_t *dims = json_object_get(def, "qDimensions");
    json_t *meas = json_object_get(def, "qMeasures");
    json_object_set_new(hc, "qStateName", json_string("$"));
    json_t *size = json_object();
    json_object_set_new(size, "qcx", json_integer((json_int_t)(k.nd + k.nm)));
    json_object_set_new(size, "qcy", json_integer((json_int_t)k.nrows));
    json_object_set_new(hc, "qSize", size);
    json_t *dinfo = json_array(), *minfo = json_array(), *totals = json_array();
    for (size_t i = 0; i < k.nd && k.err[0] == '\0'; i++) {
        json_t *dim = json_array_get(dims, i);
        json_t *qdef = tsr_engined__dimension_qdef(d, dim);
        json_t *di = dim_info(d, st, k.fields[i], qdef, dim_sort(qdef));
        json_t *lib = json_object_get(dim, "qLibraryId");
        if (json_is_string(lib) && json_string_length(lib) > 0) {
            json_object_set(di, "qLibraryId", lib);
        }
        json_array_append_new(dinfo, di);
        json_decref(qdef);
    }
    for (size_t j = 0; j < k.nm; j++) {
        json_t *m = json_array_get(meas, j);
        json_t *qdef = tsr_engined__measure_qdef(d, m); /* a master measure's label too */
        const char *expr = json_string_value(json_object_get(qdef, "qDef"));
        const char *label = json_string_value(json_object_get(qdef, "qLabel"));
        double mn = NAN, mx = NAN, total = NAN;
        size_t glyphs = 1;
        char buf[64];
        for (size_t r = 0; r < k.nrows && (k.c != NULL || k.scalar != NULL); r++) {
            tsr_engine_dual_t v;
            cube_value(&k, r, k.nd + j, &v);
            if (v.is_num) {
                mn = isnan(mn) || v.num < mn ? v.num : mn;
                mx = isnan(mx) || v.num > mx ? v.num : mx;
            }
        }
        if (k.c != NULL) {
            tsr_engine_hypercube_total(k.c, j, &total);
        } else if (k.scalar != NULL) {
            total = k.scalar[j];
        }
        tsr_engined__num_text(mx, buf, sizeof buf);
        glyphs = strlen(buf);
        tsr_engined__num_text(mn, buf, sizeof buf);
        glyphs = strlen(buf) > glyphs ? strlen(buf) : glyphs;
        int64_t sb = jint(json_object_get(m, "qSortBy"), "qSortByNumeric", 0);
        json_t *mi = json_object();
        json_object_set_new(mi, "qFallbackTitle",
                            json_string(label && label[0] ? label : (expr ? expr : "")));
        json_object_set_new(mi, "qApprMaxGlyphCount", json_integer((json_int_t)glyphs));
        json_object_set_new(mi, "qCardinal", json_integer(0));
        json_object_set_new(mi, "qSortIndicator", json_string(sb == 0 ? "N" : sb < 0 ? "D" : "A"));
        json_t *nf = json_object();
        json_object_set_new(nf, "qType", json_string("U"));
        json_object_set_new(nf, "qnDec", json_integer(0));
        json_object_set_new(nf, "qUseThou", json_integer(0));
        json_object_set_new(mi, "qNumFormat", nf);
        tsr_engined__set_num(mi, "qMin", mn, !isnan(mn));
        tsr_engined__set_num(mi, "qMax", mx, !isnan(mx));
        json_object_set_new(mi, "qIsAutoFormat", json_true());
        json_object_set_new(mi, "qAttrExprInfo", json_array());
        json_object_set_new(mi, "qAttrDimInfo", json_array());
        json_object_set_new(mi, "qTrendLines", json_array());
        if (k.err[0] != '\0') {
            json_object_set_new(mi, "qError",
                                validation_error(TSR_QIX_ERR_INVALID_PARAMETERS, k.err));
        }
        copy_custom(mi, qdef);
        json_object_set(mi, "qLibraryId", json_object_get(m, "qLibraryId"));
        json_decref(qdef);
        json_array_append_new(minfo, mi);
        json_t *tc = json_object();
        tsr_engined__num_text(total, buf, sizeof buf);
        json_object_set_new(tc, "qText", json_string(buf));
        tsr_engined__set_num(tc, "qNum", total, !isnan(total));
        json_object_set_new(tc, "qElemNumber", json_integer(-1));
        json_object_set_new(tc, "qState", json_string("X"));
        json_object_set_new(tc, "qIsTotalCell", json_true());
        json_array_append_new(totals, tc);
    }
    json_object_set_new(hc, "qDimensionInfo", dinfo);
    json_object_set_new(hc, "qMeasureInfo", minfo);
    json_t *eff = json_array();
    json_t *order = json_object_get(def, "qInterColumnSortOrder");
    if (json_array_size(order) > 0) {
        json_array_extend(eff, order);
    } else {
        for (size_t i = 0; i < k.nd + k.nm; i++) {
            json_array_append_new(eff, json_integer((json_int_t)i));
        }
    }
    json_object_set_new(hc, "qEffectiveInterColumnSortOrder", eff);
    json_object_set_new(hc, "qGrandTotalRow", totals);
    json_object_set_new(hc, "qDataPages",
                        cube_pages(d, st, &k, json_object_get(def, "qInitialDataFetch")));
    json_object_set_new(hc, "qPivotDataPages", json_array());
    json_object_set_new(hc, "qStackedDataPages", json_array());
    json_object_set_new(hc, "qMode", json_string("S"));
    json_object_set_new(hc, "qNoOfLeftDims", json_integer(-1));
    json_object_set_new(hc, "qTreeNodesOnDim", json_array());
    json_object_set_new(hc, "qColumnOrder", json_array());
    if (k.err[0] != '\0') {
        json_object_set_new(hc, "qError", validation_error(TSR_QIX_ERR_INVALID_PARAMETERS, k.err));
    }
    cube_cleanup(&k);
    return hc;
}

/* ---- list objects
 * --------------------------------------------------------------------------------- */

static bool lo_frequency(json_t *def) {
    json_t *fm = json_object_get(def, "qFrequencyMode");
    if (json_is_string(fm)) {
        const char *s = json_string_value(fm);
        return !(strcmp(s, "N") == 0 || strcmp(s, "NX_FREQUENCY_NONE") == 0);
    }
    return json_is_integer(fm) && json_integer_value(fm) != 0;
}

/* One page of a list object; counts (may be NULL) get the state counts, *total the size. */
static json_t *lo_page(tsr_engined__doc_t *d, tsr_engine_state_t *st, json_t *def, size_t f,
                       json_t *pg, size_t counts[5], size_t *total) {
    json_t *qdef = json_object_get(def, "qDef");
    sortspec_t s = dim_sort(qdef);
    bool show_alt = json_is_true(json_object_get(def, "qShowAlternatives"));
    int64_t t = jint(pg, "qTop", 0), h = jint(pg, "qHeight", 0), w = jint(pg, "qWidth", 1);
    tsr_engine_listobject_def_t ld = {.field = tsr_engine_model_field_name(d->model->m, f),
                                      .sort_by_state = s.by_state,
                                      .by = s.by,
                                      .descending = s.descending,
                                      .frequency = lo_frequency(def),
                                      .top = t < 0 ? 0 : (size_t)t,
                                      .height = h <= 0 || w <= 0 ? 1 : (size_t)h};
    if (ld.height > MAX_PAGE_CELLS) {
        ld.height = MAX_PAGE_CELLS;
    }
    bool empty = h <= 0 || w <= 0 || jint(pg, "qLeft", 0) > 0;
    tsr_engine_listobject_t *lo = NULL;
    json_t *matrix = json_array();
    size_t rows = 0;
    *total = 0;
    if (tsr_engine_listobject_compute_cached(d->app->e->cache, d->model->m, st, &ld, &lo, NULL) ==
        TSR_OK) {
        *total = tsr_engine_listobject_total_rows(lo);
        if (counts != NULL) {
            tsr_engine_listobject_state_counts(lo, counts);
        }
        for (size_t i = 0; !empty && i < tsr_engine_listobject_rows(lo); i++) {
            tsr_engine_listobject_row_t row;
            tsr_engine_dual_t v;
            if (tsr_engine_listobject_row(lo, i, &row, &v) != TSR_OK) {
                continue;
            }
            json_t *cell = json_object();
            json_object_set_new(cell, "qText", json_stringn(v.text, v.text_len));
            tsr_engined__set_num(cell, "qNum", v.num, v.is_num);
            json_object_set_new(cell, "qElemNumber", json_integer((json_int_t)row.sym));
            json_object_set_new(cell, "qState", json_string(state_code(row.state, show_alt)));
            if (ld.frequency) {
                char buf[32];
                snprintf(buf, sizeof buf, "%llu", (unsigned long long)row.frequency);
                json_object_set_new(cell, "qFrequency", json_string(buf));
            }
            json_t *r = json_array();
            json_array_append_new(r, cell);
            json_array_append_new(matrix, r);
            rows++;
        }
    }
    tsr_engine_listobject_destroy(lo);
    json_t *area = json_object();
    json_object_set_new(area, "qLeft", json_integer(0));
    json_object_set_new(area, "qTop",
                        json_integer((json_int_t)(ld.top < *total ? ld.top : *total)));
    json_object_set_new(area, "qWidth", json_integer(rows > 0 ? 1 : 0));
    json_object_set_new(area, "qHeight", json_integer((json_int_t)rows));
    json_t *p = json_object();
    json_object_set_new(p, "qMatrix", matrix);
    json_object_set_new(p, "qTails", json_array());
    json_object_set_new(p, "qArea", area);
    return p;
}

static tsr_err_t lo_field(tsr_engined__doc_t *d, json_t *def, size_t *f) {
    json_t *qdef = tsr_engined__dimension_qdef(d, def); /* a master dimension's field too */
    const char *fd = json_string_value(json_array_get(json_object_get(qdef, "qFieldDefs"), 0));
    tsr_err_t rc = tsr_engined__doc_field(d, fd, f, NULL);
    json_decref(qdef);
    return rc;
}

static json_t *listobject_layout(tsr_engined__doc_t *d, tsr_engine_state_t *st, json_t *def) {
    json_t *lo = json_object();
    size_t f = 0, total = 0;
    json_t *pages = json_array();
    json_t *dinfo = NULL;
    json_object_set_new(lo, "qStateName", json_string("$"));
    if (st != NULL && lo_field(d, def, &f) == TSR_OK) {
        size_t i;
        json_t *pg;
        json_t *init = json_object_get(def, "qInitialDataFetch");
        json_array_foreach(init, i, pg) {
            if (i >= MAX_PAGES) {
                break;
            }
            json_array_append_new(pages, lo_page(d, st, def, f, pg, NULL, &total));
        }
        if (json_array_size(init) == 0) {
            json_t *none = json_object();
            json_decref(lo_page(d, st, def, f, none, NULL, &total));
            json_decref(none);
        }
        json_t *qdef = json_object_get(def, "qDef");
        dinfo = dim_info(d, st, f, qdef, dim_sort(qdef));
    } else {
        dinfo = json_object();
        json_object_set_new(lo, "qError",
                            validation_error(TSR_QIX_ERR_NOT_FOUND, "field not found"));
    }
    json_t *size = json_object();
    json_object_set_new(size, "qcx", json_integer(1));
    json_object_set_new(size, "qcy", json_integer((json_int_t)total));
    json_object_set_new(lo, "qSize", size);
    json_object_set_new(lo, "qDimensionInfo", dinfo);
    json_object_set_new(lo, "qExpressions", json_array());
    json_object_set_new(lo, "qDataPages", pages);
    return lo;
}

/* ---- selection object, field list
 * ---------------------------------------------------------------- */

static json_t *selection_layout(tsr_engined__doc_t *d, tsr_engine_state_t *st) {
    json_t *so = json_object();
    json_object_set_new(so, "qBackCount", json_integer((json_int_t)d->back_count));
    json_object_set_new(so, "qForwardCount", json_integer((json_int_t)d->forward_count));
    json_object_set_new(so, "qStateName", json_string("$"));
    json_t *sels = json_array();
    const size_t threshold = 6;
    for (size_t f = 0; st != NULL && f < tsr_engine_model_field_count(d->model->m); f++) {
        const tsr_engine_model_t *m = d->model->m;
        size_t n = tsr_engine_model_field_symbol_count(m, f), k = 0;
        json_t *info = json_array();
        tsr_buf_t text;
        tsr_buf_init(&text, 64 * 1024);
        for (size_t y = 0; y < n; y++) {
            if (!tsr_engine_selection_is_selected(d->sel, f, y)) {
                continue;
            }
            k++;
            tsr_engine_dual_t v;
            if (k <= threshold && tsr_engine_model_field_symbol(m, f, y, &v) == TSR_OK) {
                json_t *e = json_object();
                json_object_set_new(e, "qName", json_stringn(v.text, v.text_len));
                json_object_set_new(e, "qFieldSelectionMode", json_string("SELECTED"));
                json_array_append_new(info, e);
                if (k > 1) {
                    tsr_buf_append_str(&text, ", ");
                }
                tsr_buf_append(&text, v.text, v.text_len);
            }
        }
        if (k == 0) {
            json_decref(info);
            tsr_buf_cleanup(&text);
            continue;
        }
        json_t *it = json_object();
        const char *name = tsr_engine_model_field_name(m, f);
        json_object_set_new(it, "qField", json_string(name));
        json_object_set_new(it, "qReadableName", json_string(name));
        json_object_set_new(it, "qTotal", json_integer((json_int_t)n));
        json_object_set_new(it, "qSelectedCount", json_integer((json_int_t)k));
        if (k > threshold) {
            char buf[64];
            snprintf(buf, sizeof buf, "%zu of %zu", k, n);
            json_object_set_new(it, "qSelected", json_string(buf));
        } else {
            json_object_set_new(it, "qSelected",
                                json_stringn(text.data ? text.data : "", text.len));
        }
        json_object_set_new(it, "qSelectedFieldSelectionInfo", info);
        json_object_set_new(it, "qNotSelectedFieldSelectionInfo", json_array());
        json_object_set_new(it, "qRangeInfo", json_array());
        json_object_set_new(it, "qSortIndex", json_integer(0));
        json_object_set_new(it, "qLocked", json_boolean(tsr_engine_selection_is_locked(d->sel, f)));
        json_object_set_new(it, "qIsNum", json_false());
        json_object_set_new(it, "qOneAndOnlyOne", json_false());
        json_object_set_new(it, "qTextSearch", json_string(""));
        json_object_set_new(it, "qSelectionThreshold", json_integer((json_int_t)threshold));
        json_object_set_new(it, "qIsHidden", json_false());
        json_array_append_new(sels, it);
        tsr_buf_cleanup(&text);
    }
    json_object_set_new(so, "qSelections", sels);
    return so;
}

static json_t *field_list_layout(tsr_engined__doc_t *d, json_t *def) {
    json_t *items = json_array();
    bool src = json_is_true(json_object_get(def, "qShowSrcTables"));
    for (size_t f = 0; d->model != NULL && f < tsr_engine_model_field_count(d->model->m); f++) {
        const tsr_engine_model_t *m = d->model->m;
        json_t *it = json_object();
        json_object_set_new(it, "qName", json_string(tsr_engine_model_field_name(m, f)));
        json_object_set_new(it, "qCardinal",
                            json_integer((json_int_t)tsr_engine_model_field_symbol_count(m, f)));
        json_object_set_new(it, "qTags", json_array());
        if (src) {
            json_t *tables = json_array();
            for (size_t t = 0; t < tsr_engine_model_table_count(m); t++) {
                for (size_t c = 0; c < tsr_engine_model_table_field_count(m, t); c++) {
                    if (tsr_engine_model_table_field(m, t, c) == f) {
                        json_array_append_new(tables,
                                              json_string(tsr_engine_model_table_name(m, t)));
                    }
                }
            }
            json_object_set_new(it, "qSrcTables", tables);
        }
        json_object_set_new(it, "qIsSystem", json_false());
        json_object_set_new(it, "qIsHidden", json_false());
        json_object_set_new(it, "qIsSemantic", json_false());
        json_object_set_new(it, "qAndMode", json_false());
        json_object_set_new(it, "qIsDefinitionOnly", json_false());
        json_array_append_new(items, it);
    }
    return tsr_engined__obj1("qItems", items);
}

/* qAppObjectListDef {qType, qData}: the app's persistent objects of qType. */
static json_t *app_object_list_layout(tsr_engined__doc_t *d, json_t *def) {
    json_t *items = json_array();
    json_t *type = json_object_get(def, "qType");
    json_t *data = json_object_get(def, "qData");
    pthread_mutex_lock(&d->app->mu);
    const char *k;
    json_t *p;
    json_object_foreach(json_object_get(d->app->doc, "objects"), k, p) {
        json_t *info = json_object_get(p, "qInfo");
        if (type != NULL && !json_equal(json_object_get(info, "qType"), type)) {
            continue;
        }
        json_array_append_new(items, tsr_engined__lib_entry(p, NULL, data));
    }
    pthread_mutex_unlock(&d->app->mu);
    return tsr_engined__obj1("qItems", items);
}

static tsr_err_t evaluate(tsr_engined__doc_t *d, tsr_engine_state_t *st, const char *expr,
                          double *num, bool *is_num, char *text, size_t n, tsr_error_t *err) {
    const char *e = strip_eq(expr ? expr : "");
    size_t len = strlen(e);
    *num = NAN;
    *is_num = false;
    snprintf(text, n, "-");
    while (len > 0 && (e[len - 1] == ' ' || e[len - 1] == '\n' || e[len - 1] == '\t')) {
        len--;
    }
    if (len >= 2 && e[0] == '\'' && e[len - 1] == '\'' && memchr(e + 1, '\'', len - 2) == NULL) {
        snprintf(text, n, "%.*s", (int)(len - 2), e + 1);
        return TSR_OK;
    }
    char *end;
    double v = strtod(e, &end);
    if (len > 0 && end == e + len) {
        *num = v;
        *is_num = true;
        tsr_engined__num_text(v, text, n);
        return TSR_OK;
    }
    if (d->model == NULL || st == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "no data");
    }
    /* pkg/engine evaluates expressions inside hypercubes: the grand total of a one-measure
     * cube over the possible rows is the expression's value. The dimension only has to reach
     * the measure's table, so each table's smallest field is tried in turn. */
    char *ex = tsr_xstrndup(e, len);
    const tsr_engine_model_t *m = d->model->m;
    tsr_err_t rc = tsr_error_set(err, TSR_EINVAL, "cannot evaluate the expression");
    for (size_t t = 0; t < tsr_engine_model_table_count(m) && rc != TSR_OK; t++) {
        size_t best = SIZE_MAX, best_n = SIZE_MAX;
        for (size_t c = 0; c < tsr_engine_model_table_field_count(m, t); c++) {
            size_t f = tsr_engine_model_table_field(m, t, c);
            size_t k = tsr_engine_model_field_symbol_count(m, f);
            if (k < best_n) {
                best = f;
                best_n = k;
            }
        }
        if (best == SIZE_MAX) {
            continue;
        }
        const char *dim = tsr_engine_model_field_name(m, best);
        const char *meas = ex;
        tsr_engine_hypercube_def_t hd = {
            .dims = &dim, .n_dims = 1, .measures = &meas, .n_measures = 1, .height = 1};
        tsr_engine_hypercube_t *c = NULL;
        tsr_error_t cerr = {0};
        if (tsr_engine_hypercube_compute_cached(d->app->e->cache, m, st, &hd, &c, &cerr) ==
            TSR_OK) {
            double total = NAN;
            tsr_engine_hypercube_total(c, 0, &total);
            *num = total;
            *is_num = !isnan(total);
            tsr_engined__num_text(total, text, n);
            rc = TSR_OK;
        } else if (t == 0) {
            rc = tsr_error_set(err, TSR_EINVAL, "%s", cerr.msg);
        }
        tsr_engine_hypercube_destroy(c);
    }
    free(ex);
    return rc;
}

tsr_err_t tsr_engined__evaluate(tsr_engined__doc_t *d, tsr_engine_state_t *st, const char *expr,
                                double *num, bool *is_num, char *text, size_t n, tsr_error_t *err) {
    /* $(v) and $(=expr) are text substitutions made before the expression is parsed. */
    char *x = tsr_engined__expand(d, expr ? expr : "");
    tsr_err_t rc = evaluate(d, st, x != NULL ? x : expr, num, is_num, text, n, err);
    free(x);
    return rc;
}

/* qStringExpression / qValueExpression: the evaluated text or number ("-" / NaN when the
 * expression cannot be evaluated). */
static json_t *eval_expression(tsr_engined__doc_t *d, tsr_engine_state_t *st, json_t *spec,
                               bool number) {
    char text[256];
    double v;
    bool is_num;
    tsr_engined__evaluate(d, st, json_string_value(json_object_get(spec, "qExpr")), &v, &is_num,
                          text, sizeof text, NULL);
    if (number) {
        return is_num ? json_real(v) : json_string("NaN");
    }
    return json_string(text);
}

/* ---- layouts
 * ------------------------------------------------------------------------------------- */

static json_t *transform(tsr_engined__doc_t *d, tsr_engine_state_t *st, json_t *v, int depth);

/* The layout of a hypercube, list object or selection object definition (key k) in the state
 * its qStateName names (st: the default state's). An unknown state: the default state's
 * layout with a qError. */
static json_t *in_state_layout(tsr_engined__doc_t *d, tsr_engine_state_t *st, const char *k,
                               json_t *def) {
    const char *sn = json_string_value(json_object_get(def, "qStateName"));
    int sw = tsr_engined__state_swap(d, sn);
    tsr_engine_state_t *cur = sw > 0 ? tsr_engined__doc_state(d, NULL) : st;
    json_t *l = k[1] == 'H'   ? hypercube_layout(d, cur, def)
                : k[1] == 'L' ? listobject_layout(d, cur, def)
                              : selection_layout(d, cur);
    if (sw > 0) {
        tsr_engined__state_swap(d, sn);
        json_object_set_new(l, "qStateName", json_string(sn));
    } else if (sw < 0) {
        json_object_set_new(
            l, "qError",
            validation_error(TSR_QIX_ERR_INVALID_PARAMETERS, "no such alternate state"));
    }
    return l;
}

static json_t *transform_object(tsr_engined__doc_t *d, tsr_engine_state_t *st, json_t *v,
                                int depth) {
    json_t *se = json_object_get(v, "qStringExpression");
    if (json_is_object(se)) {
        return eval_expression(d, st, se, false);
    }
    json_t *ve = json_object_get(v, "qValueExpression");
    if (json_is_object(ve)) {
        return eval_expression(d, st, ve, true);
    }
    json_t *out = json_object();
    json_t *exclude = json_object_get(v, "qLayoutExclude");
    const char *k;
    json_t *c;
    json_object_foreach(v, k, c) {
        if (strcmp(k, "qLayoutExclude") == 0 || (exclude && json_object_get(exclude, k))) {
            continue;
        }
        if (strcmp(k, "qHyperCubeDef") == 0 || strcmp(k, "qListObjectDef") == 0 ||
            strcmp(k, "qSelectionObjectDef") == 0) {
            json_object_set_new(out,
                                k[1] == 'H'   ? "qHyperCube"
                                : k[1] == 'L' ? "qListObject"
                                              : "qSelectionObject",
                                in_state_layout(d, st, k, c));
        } else if (strcmp(k, "qFieldListDef") == 0) {
            json_object_set_new(out, "qFieldList", field_list_layout(d, c));
        } else if (strcmp(k, "qAppObjectListDef") == 0) {
            json_object_set_new(out, "qAppObjectList", app_object_list_layout(d, c));
        } else if (strcmp(k, "qMetaDef") == 0) {
            json_object_set_new(out, "qMeta", json_deep_copy(c));
        } else if (strcmp(k, "qBookmarkListDef") == 0) {
            json_object_set_new(out, "qBookmarkList", tsr_engined__bookmark_list(d, c));
        } else if (strcmp(k, "qVariableListDef") == 0) {
            json_object_set_new(out, "qVariableList", tsr_engined__variable_list(d, c));
        } else if (strcmp(k, "qMeasureListDef") == 0) {
            json_object_set_new(out, "qMeasureList", tsr_engined__measure_list(d, c));
        } else if (strcmp(k, "qDimensionListDef") == 0) {
            json_object_set_new(out, "qDimensionList", tsr_engined__dimension_list(d, c));
        } else if (strcmp(k, "qChildListDef") == 0) {
            /* No children here: an empty list. */
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(strlen(k) - 3), k);
            json_object_set_new(out, name, tsr_engined__obj1("qItems", json_array()));
        } else {
            json_object_set_new(out, k, transform(d, st, c, depth + 1));
        }
    }
    return out;
}

static json_t *transform(tsr_engined__doc_t *d, tsr_engine_state_t *st, json_t *v, int depth) {
    if (depth > 64) {
        return json_null();
    }
    if (json_is_object(v)) {
        return transform_object(d, st, v, depth);
    }
    if (json_is_array(v)) {
        json_t *out = json_array();
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c) {
            json_array_append_new(out, transform(d, st, c, depth + 1));
        }
        return out;
    }
    return json_deep_copy(v);
}

static json_t *layout_of(tsr_engined__obj_t *o) {
    tsr_engined__doc_t *d = o->doc;
    tsr_engined__doc_sync(d);
    json_t *props = tsr_engined__obj_props(o);
    tsr_engine_state_t *st = tsr_engined__doc_state(d, NULL);
    json_t *l = transform(d, st, props, 0);
    json_t *children = json_object_get(props, "qChildListDef");
    if (json_is_object(children)) {
        json_object_set_new(l, "qChildList", tsr_engined__child_list(o, children));
    }
    json_decref(props);
    if (!json_is_object(json_object_get(l, "qMeta"))) {
        json_object_set_new(l, "qMeta", json_object());
    }
    json_t *si = json_object();
    if (o->in_selections) {
        json_object_set_new(si, "qInSelections", json_true());
        json_object_set_new(si, "qMadeSelections", json_boolean(o->made_selections));
    }
    json_object_set_new(l, "qSelectionInfo", si);
    return l;
}

/* ---- methods
 * --------------------------------------------------------------------------------------- */

static tsr_err_t o_get_layout(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_qix_call_result(call, tsr_engined__obj1("qLayout", layout_of(obj)));
    return TSR_OK;
}

static tsr_err_t o_get_properties(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_qix_call_result(call, tsr_engined__obj1("qProp", tsr_engined__obj_props(obj)));
    return TSR_OK;
}

static tsr_err_t o_get_info(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    json_t *p = tsr_engined__obj_props(obj);
    tsr_qix_call_result(call, tsr_engined__obj1("qInfo", json_incref(json_object_get(p, "qInfo"))));
    json_decref(p);
    return TSR_OK;
}

/* Store new properties (taken); the object's id never changes. */
static tsr_err_t set_props(tsr_qix_call_t *call, tsr_engined__obj_t *o, json_t *p,
                           tsr_error_t *err) {
    json_t *info = json_object_get(p, "qInfo");
    if (!json_is_object(info)) {
        info = json_object();
        json_object_set_new(p, "qInfo", info);
    }
    json_object_set_new(info, "qId", json_string(o->id));
    if (!json_is_string(json_object_get(info, "qType"))) {
        json_object_set_new(info, "qType", json_string(""));
    }
    tsr_err_t rc = TSR_OK;
    if (o->persistent && (rc = tsr_engined__doc_may(call, o->doc, TSR_ENGINED_EDIT)) != TSR_OK) {
        json_decref(p);
        return rc;
    }
    /* Read before p is handed over: once stored, another session may replace it. */
    bool lists = json_object_get(p, "qAppObjectListDef") != NULL;
    if (o->persistent) {
        tsr_engined__app_t *a = o->doc->app;
        pthread_mutex_lock(&a->mu);
        json_object_set_new(json_object_get(a->doc, "objects"), o->id, p);
        rc = tsr_engined__app_save(a, err);
        pthread_mutex_unlock(&a->mu);
        if (rc == TSR_OK) {
            tsr_engined__app_push(a, o->doc, o->id, true);
        }
    } else {
        json_decref(o->props);
        o->props = p;
    }
    pthread_mutex_lock(&o->doc->mu);
    o->lists_objects = lists;
    pthread_mutex_unlock(&o->doc->mu);
    if (rc == TSR_OK) {
        tsr_qix_call_add_change(call, o->handle);
        if (o->persistent) {
            tsr_engined__doc_change_lists(call, o->doc);
        }
    }
    return rc;
}

tsr_err_t tsr_engined__obj_set_props(tsr_qix_call_t *call, tsr_engined__obj_t *o, json_t *p,
                                     tsr_error_t *err) {
    return set_props(call, o, p, err);
}

static tsr_err_t o_set_properties(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    json_t *p = NULL;
    tsr_err_t rc = tsr_qix_param_json(call, 0, false, &p);
    if (rc != TSR_OK) {
        return rc;
    }
    if (p == NULL) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMS, "qProp", "Invalid Params");
    }
    return set_props(call, obj, json_deep_copy(p), err);
}

/* ApplyPatches: add/replace/remove at JSON pointers; qValue is JSON text. Soft patches are
 * applied like hard ones (no separate effective properties yet). */
static tsr_err_t o_apply_patches(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__obj_t *o = obj;
    json_t *patches = NULL;
    tsr_err_t rc = tsr_qix_param_json(call, 0, true, &patches);
    if (rc != TSR_OK) {
        return rc;
    }
    json_t *p = tsr_engined__obj_props(o);
    size_t i;
    json_t *pt;
    json_array_foreach(patches, i, pt) {
        const char *op = json_string_value(json_object_get(pt, "qOp"));
        const char *path = json_string_value(json_object_get(pt, "qPath"));
        const char *val = json_string_value(json_object_get(pt, "qValue"));
        if (op == NULL || path == NULL || path[0] != '/') {
            json_decref(p);
            return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMS, "qPatches",
                                      "Invalid Params");
        }
        /* The parent and the last token. */
        const char *last = strrchr(path, '/');
        char parent_path[1024], tok[256];
        snprintf(parent_path, sizeof parent_path, "%.*s", (int)(last - path), path);
        ptr_token(last, tok, sizeof tok);
        json_t *parent = tsr_engined__ptr_get(p, parent_path);
        json_t *v = NULL;
        bool remove = strcmp(op, "remove") == 0 || strcmp(op, "Remove") == 0;
        if (!remove) {
            v = json_loads(val ? val : "null", JSON_DECODE_ANY, NULL);
            if (v == NULL) {
                json_decref(p);
                return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMS, "qValue",
                                          "Invalid Params");
            }
        }
        if (json_is_object(parent)) {
            if (remove) {
                json_object_del(parent, tok);
            } else {
                json_object_set_new(parent, tok, v);
                v = NULL;
            }
        } else if (json_is_array(parent)) {
            size_t idx = strcmp(tok, "-") == 0 ? json_array_size(parent) : strtoul(tok, NULL, 10);
            if (remove) {
                json_array_remove(parent, idx);
            } else if (strcmp(op, "add") == 0 || strcmp(op, "Add") == 0) {
                json_array_insert_new(parent, idx, v);
                v = NULL;
            } else {
                json_array_set_new(parent, idx, v);
                v = NULL;
            }
        }
        json_decref(v);
    }
    return set_props(call, o, p, err);
}

static tsr_err_t o_noop(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)call;
    (void)obj;
    (void)err;
    return TSR_OK;
}

/* The hypercube or list object definition at qPath (param 0) of the object's properties
 * (returned-owned copy of the whole properties in *props). */
static json_t *def_at(tsr_qix_call_t *call, tsr_engined__obj_t *o, const char *want,
                      json_t **props) {
    const char *path = NULL;
    *props = NULL;
    /* The first thing every data or selection method does: the model is fixed from here. */
    tsr_engined__doc_sync(o->doc);
    if (tsr_qix_param_string(call, 0, NULL, &path) != TSR_OK) {
        return NULL;
    }
    *props = tsr_engined__obj_props(o);
    json_t *def = path ? tsr_engined__ptr_get(*props, path) : json_object_get(*props, want);
    if (!json_is_object(def)) {
        tsr_qix_call_error(call, TSR_QIX_ERR_NOT_FOUND, path ? path : want, "Object not found");
        return NULL;
    }
    return def;
}

static tsr_err_t o_get_hypercube_data(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__obj_t *o = obj;
    json_t *props = NULL, *pages = NULL;
    json_t *def = def_at(call, o, "qHyperCubeDef", &props);
    tsr_err_t rc = TSR_EINVAL;
    if (def != NULL && (rc = tsr_qix_param_json(call, 1, true, &pages)) == TSR_OK) {
        tsr_engine_state_t *st = tsr_engined__doc_state(o->doc, NULL);
        cube_t k;
        cube_compute(o->doc, st, def, &k);
        tsr_qix_call_result(call,
                            tsr_engined__obj1("qDataPages", cube_pages(o->doc, st, &k, pages)));
        cube_cleanup(&k);
    }
    json_decref(props);
    return rc;
}

static tsr_err_t o_get_listobject_data(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__obj_t *o = obj;
    json_t *props = NULL, *pages = NULL;
    json_t *def = def_at(call, o, "qListObjectDef", &props);
    tsr_err_t rc = TSR_EINVAL;
    if (def != NULL && (rc = tsr_qix_param_json(call, 1, true, &pages)) == TSR_OK) {
        tsr_engine_state_t *st = tsr_engined__doc_state(o->doc, NULL);
        json_t *out = json_array();
        size_t f, i, total;
        json_t *pg;
        if (st != NULL && lo_field(o->doc, def, &f) == TSR_OK) {
            json_array_foreach(pages, i, pg) {
                if (i >= MAX_PAGES) {
                    break;
                }
                json_array_append_new(out, lo_page(o->doc, st, def, f, pg, NULL, &total));
            }
        }
        tsr_qix_call_result(call, tsr_engined__obj1("qDataPages", out));
    }
    json_decref(props);
    return rc;
}

/* Element numbers from a JSON array param (capped). *out returned-owned. */
static tsr_err_t elem_param(tsr_qix_call_t *call, size_t idx, size_t nsyms, size_t **out,
                            size_t *n) {
    json_t *vals = NULL;
    tsr_err_t rc = tsr_qix_param_json(call, idx, true, &vals);
    *out = NULL;
    *n = 0;
    if (rc != TSR_OK) {
        return rc;
    }
    size_t cnt = json_array_size(vals), i;
    json_t *v;
    *out = tsr_xcalloc(cnt + 1, sizeof **out);
    json_array_foreach(vals, i, v) {
        json_int_t e = json_is_integer(v) ? json_integer_value(v) : -1;
        /* Negative (null/others/total cells) and unknown elements select nothing. */
        if (e >= 0 && (size_t)e < nsyms) {
            (*out)[(*n)++] = (size_t)e;
        }
    }
    return TSR_OK;
}

static tsr_err_t select_syms(tsr_qix_call_t *call, tsr_engined__obj_t *o, size_t f,
                             const size_t *syms, size_t n, bool toggle) {
    tsr_engined__doc_t *d = o->doc;
    bool ok =
        d->sel != NULL && tsr_engine_selection_select(d->sel, f, syms, n, toggle, NULL) == TSR_OK;
    if (ok) {
        tsr_engined__doc_selection_changed(call, d);
    }
    tsr_qix_call_result(call, tsr_engined__obj1("qSuccess", json_boolean(ok)));
    return TSR_OK;
}

static tsr_err_t o_select_hypercube_values(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__obj_t *o = obj;
    json_t *props = NULL;
    json_t *def = def_at(call, o, "qHyperCubeDef", &props);
    int64_t dim = 0;
    bool toggle = false;
    tsr_err_t rc = TSR_EINVAL;
    size_t f, *syms = NULL, n = 0;
    if (def != NULL && (rc = tsr_qix_param_int(call, 1, 0, &dim)) == TSR_OK &&
        (rc = tsr_qix_param_bool(call, 3, false, &toggle)) == TSR_OK) {
        json_t *qdef =
            tsr_engined__dimension_qdef(o->doc, json_array_get(json_object_get(def, "qDimensions"),
                                                               dim < 0 ? SIZE_MAX : (size_t)dim));
        const char *fd = json_string_value(json_array_get(json_object_get(qdef, "qFieldDefs"), 0));
        tsr_err_t frc = tsr_engined__doc_field(o->doc, fd, &f, NULL);
        json_decref(qdef);
        if (frc != TSR_OK) {
            rc = tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMS, "qDimNo", "Invalid Params");
        } else if ((rc = elem_param(call, 2,
                                    tsr_engine_model_field_symbol_count(o->doc->model->m, f), &syms,
                                    &n)) == TSR_OK) {
            rc = select_syms(call, o, f, syms, n, toggle);
        }
    }
    free(syms);
    json_decref(props);
    return rc;
}

/* SelectHyperCubeCells: the values of the given dimension columns in the given rows. */
static tsr_err_t o_select_hypercube_cells(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__obj_t *o = obj;
    json_t *props = NULL, *rows = NULL, *cols = NULL;
    json_t *def = def_at(call, o, "qHyperCubeDef", &props);
    tsr_err_t rc = TSR_EINVAL;
    if (def == NULL || (rc = tsr_qix_param_json(call, 1, true, &rows)) != TSR_OK ||
        (rc = tsr_qix_param_json(call, 2, true, &cols)) != TSR_OK) {
        json_decref(props);
        return rc;
    }
    tsr_engine_state_t *st = tsr_engined__doc_state(o->doc, NULL);
    cube_t k;
    cube_compute(o->doc, st, def, &k);
    bool ok = k.c != NULL && o->doc->sel != NULL;
    size_t i, j;
    json_t *c, *r;
    json_array_foreach(cols, j, c) {
        json_int_t col = json_is_integer(c) ? json_integer_value(c) : -1;
        if (!ok || col < 0 || (size_t)col >= k.nd) {
            continue;
        }
        size_t n = 0, *syms = tsr_xcalloc(json_array_size(rows) + 1, sizeof *syms);
        json_array_foreach(rows, i, r) {
            json_int_t row = json_is_integer(r) ? json_integer_value(r) : -1;
            tsr_engine_dual_t v;
            size_t sym;
            if (row >= 0 && (size_t)row < k.nrows &&
                tsr_engine_hypercube_cell(k.c, k.rows[row], (size_t)col, &v) == TSR_OK &&
                tsr_engine_model_field_symbol_find(o->doc->model->m, k.fields[col], v.text,
                                                   v.text_len, &sym) == TSR_OK) {
                syms[n++] = sym;
            }
        }
        ok =
            tsr_engine_selection_select(o->doc->sel, k.fields[col], syms, n, false, NULL) == TSR_OK;
        free(syms);
    }
    cube_cleanup(&k);
    json_decref(props);
    if (ok) {
        tsr_engined__doc_selection_changed(call, o->doc);
    }
    tsr_qix_call_result(call, tsr_engined__obj1("qSuccess", json_boolean(ok)));
    return TSR_OK;
}

static tsr_err_t o_select_listobject_values(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__obj_t *o = obj;
    json_t *props = NULL;
    json_t *def = def_at(call, o, "qListObjectDef", &props);
    bool toggle = false;
    tsr_err_t rc = TSR_EINVAL;
    size_t f, *syms = NULL, n = 0;
    if (def != NULL && (rc = tsr_qix_param_bool(call, 2, false, &toggle)) == TSR_OK) {
        if (lo_field(o->doc, def, &f) != TSR_OK) {
            rc = tsr_qix_call_error(call, TSR_QIX_ERR_NOT_FOUND, "qListObjectDef",
                                    "Object not found");
        } else if ((rc = elem_param(call, 1,
                                    tsr_engine_model_field_symbol_count(o->doc->model->m, f), &syms,
                                    &n)) == TSR_OK) {
            rc = select_syms(call, o, f, syms, n, toggle);
        }
    }
    free(syms);
    json_decref(props);
    return rc;
}

/* SelectListObjectPossible/All/Alternative/Excluded: the values in the wanted states. */
static tsr_err_t select_lo_states(tsr_qix_call_t *call, tsr_engined__obj_t *o, unsigned mask) {
    json_t *props = NULL;
    json_t *def = def_at(call, o, "qListObjectDef", &props);
    size_t f;
    tsr_err_t rc = TSR_EINVAL;
    if (def != NULL) {
        tsr_engine_state_t *st = tsr_engined__doc_state(o->doc, NULL);
        if (st == NULL || lo_field(o->doc, def, &f) != TSR_OK) {
            rc = tsr_qix_call_error(call, TSR_QIX_ERR_NOT_FOUND, "qListObjectDef",
                                    "Object not found");
        } else {
            size_t n = tsr_engine_model_field_symbol_count(o->doc->model->m, f), k = 0;
            size_t *syms = tsr_xcalloc(n + 1, sizeof *syms);
            for (size_t y = 0; y < n; y++) {
                if (mask & (1u << tsr_engine_state_value(st, f, y))) {
                    syms[k++] = y;
                }
            }
            rc = select_syms(call, o, f, syms, k, false);
            free(syms);
        }
    }
    json_decref(props);
    return rc;
}

static tsr_err_t o_select_lo_possible(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    return select_lo_states(call, obj, 1u << TSR_ENGINE_S | 1u << TSR_ENGINE_O);
}

static tsr_err_t o_select_lo_all(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    return select_lo_states(call, obj,
                            1u << TSR_ENGINE_S | 1u << TSR_ENGINE_O | 1u << TSR_ENGINE_A |
                                1u << TSR_ENGINE_X | 1u << TSR_ENGINE_XS);
}

static tsr_err_t o_select_lo_alternative(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    return select_lo_states(call, obj, 1u << TSR_ENGINE_A);
}

static tsr_err_t o_select_lo_excluded(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    return select_lo_states(call, obj,
                            1u << TSR_ENGINE_A | 1u << TSR_ENGINE_X | 1u << TSR_ENGINE_XS);
}

static tsr_err_t o_search_listobject_for(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__obj_t *o = obj;
    const char *match = NULL;
    tsr_err_t rc = tsr_qix_param_string(call, 1, "", &match);
    if (rc != TSR_OK) {
        return rc;
    }
    free(o->search);
    o->search = tsr_xstrdup(match);
    tsr_qix_call_result(call, tsr_engined__obj1("qSuccess", json_true()));
    return TSR_OK;
}

static tsr_err_t o_accept_listobject_search(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__obj_t *o = obj;
    json_t *props = NULL;
    json_t *def = def_at(call, o, "qListObjectDef", &props);
    bool toggle = false;
    size_t f;
    tsr_err_t rc = TSR_EINVAL;
    if (def != NULL && (rc = tsr_qix_param_bool(call, 1, false, &toggle)) == TSR_OK) {
        if (o->search != NULL && o->search[0] != '\0' && o->doc->sel != NULL &&
            lo_field(o->doc, def, &f) == TSR_OK &&
            tsr_engine_selection_select_search(o->doc->sel, f, o->search, toggle, NULL) == TSR_OK) {
            tsr_engined__doc_selection_changed(call, o->doc);
        }
        free(o->search);
        o->search = NULL;
    }
    json_decref(props);
    return rc;
}

static tsr_err_t o_abort_listobject_search(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)call;
    (void)err;
    tsr_engined__obj_t *o = obj;
    free(o->search);
    o->search = NULL;
    return TSR_OK;
}

/* Fields an object's qPath + qColIndices name: a list object's field, or the hypercube's
 * dimensions (all when no indices are given). Returns the count written to fields. */
static size_t path_fields(tsr_qix_call_t *call, tsr_engined__obj_t *o, size_t *fields, size_t cap) {
    json_t *props = NULL;
    size_t n = 0;
    json_t *def = def_at(call, o, "qHyperCubeDef", &props);
    if (def == NULL) {
        json_decref(props);
        return 0;
    }
    json_t *cols = NULL;
    tsr_qix_param_json(call, 1, true, &cols);
    if (json_object_get(def, "qDef") != NULL) {
        if (lo_field(o->doc, def, &fields[0]) == TSR_OK) {
            n = 1;
        }
    } else {
        json_t *dims = json_object_get(def, "qDimensions");
        for (size_t i = 0; i < json_array_size(dims) && n < cap; i++) {
            if (json_array_size(cols) > 0) {
                bool listed = false;
                size_t j;
                json_t *c;
                json_array_foreach(cols, j, c) {
                    listed =
                        listed || (json_is_integer(c) && json_integer_value(c) == (json_int_t)i);
                }
                if (!listed) {
                    continue;
                }
            }
            json_t *qdef = tsr_engined__dimension_qdef(o->doc, json_array_get(dims, i));
            const char *fd =
                json_string_value(json_array_get(json_object_get(qdef, "qFieldDefs"), 0));
            if (tsr_engined__doc_field(o->doc, fd, &fields[n], NULL) == TSR_OK) {
                n++;
            }
            json_decref(qdef);
        }
    }
    json_decref(props);
    return n;
}

static tsr_err_t o_clear_selections(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__obj_t *o = obj;
    size_t fields[MAX_DIMS];
    size_t n = path_fields(call, o, fields, MAX_DIMS);
    bool changed = false;
    for (size_t i = 0; i < n && o->doc->sel != NULL; i++) {
        changed =
            tsr_engine_selection_clear_field(o->doc->sel, fields[i], NULL) == TSR_OK || changed;
    }
    if (changed) {
        tsr_engined__doc_selection_changed(call, o->doc);
    }
    return TSR_OK;
}

static tsr_err_t lock_fields(tsr_qix_call_t *call, tsr_engined__obj_t *o, bool locked) {
    size_t fields[MAX_DIMS];
    size_t n = path_fields(call, o, fields, MAX_DIMS);
    for (size_t i = 0; i < n && o->doc->sel != NULL; i++) {
        tsr_engine_selection_lock(o->doc->sel, fields[i], locked, NULL);
    }
    if (n > 0) {
        tsr_engined__doc_change_all(call, o->doc);
    }
    return TSR_OK;
}

static tsr_err_t o_lock(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    return lock_fields(call, obj, true);
}

static tsr_err_t o_unlock(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    return lock_fields(call, obj, false);
}

/* Selection mode: one modal object per session; selections made in it roll back on
 * EndSelections(false) or ResetMadeSelections through the selection history. */
static tsr_err_t o_begin_selections(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__obj_t *o = obj;
    tsr_engined__doc_t *d = o->doc;
    if (d->modal != NULL && d->modal != o) {
        return tsr_qix_call_error(call, 6003, "", "Another object is in selection mode");
    }
    if (d->modal != o) {
        d->modal = o;
        d->modal_back = d->back_count;
        o->in_selections = true;
        o->made_selections = false;
    }
    tsr_qix_call_add_change(call, o->handle);
    return TSR_OK;
}

static void rollback(tsr_qix_call_t *call, tsr_engined__doc_t *d) {
    bool moved = false;
    while (d->sel != NULL && d->back_count > d->modal_back &&
           tsr_engine_selection_back(d->sel) == TSR_OK) {
        d->back_count--;
        moved = true;
    }
    if (moved) {
        d->forward_count = 0;
        tsr_engine_state_destroy(d->state);
        d->state = NULL;
        tsr_engined__doc_change_all(call, d);
    }
}

static tsr_err_t o_end_selections(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__obj_t *o = obj;
    tsr_engined__doc_t *d = o->doc;
    bool accept = false;
    tsr_err_t rc = tsr_qix_param_bool(call, 0, false, &accept);
    if (rc != TSR_OK) {
        return rc;
    }
    if (d->modal == o) {
        if (!accept) {
            rollback(call, d);
        }
        d->modal = NULL;
    }
    o->in_selections = o->made_selections = false;
    tsr_qix_call_add_change(call, o->handle);
    return TSR_OK;
}

static tsr_err_t o_reset_made_selections(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__obj_t *o = obj;
    if (o->doc->modal == o) {
        rollback(call, o->doc);
        o->made_selections = false;
        tsr_qix_call_add_change(call, o->handle);
    }
    return TSR_OK;
}

/* The handlers tsr_engined__o_in_state runs in the state of the definition at qPath. */
static const struct {
    const char *name;
    tsr_qix_method_fn fn;
} in_state_methods[] = {
    {"AcceptListObjectSearch", o_accept_listobject_search},
    {"ClearSelections", o_clear_selections},
    {"GetHyperCubeData", o_get_hypercube_data},
    {"GetHyperCubeReducedData", o_get_hypercube_data},
    {"GetListObjectData", o_get_listobject_data},
    {"Lock", o_lock},
    {"SearchListObjectFor", o_search_listobject_for},
    {"SelectHyperCubeCells", o_select_hypercube_cells},
    {"SelectHyperCubeValues", o_select_hypercube_values},
    {"SelectListObjectAll", o_select_lo_all},
    {"SelectListObjectAlternative", o_select_lo_alternative},
    {"SelectListObjectExcluded", o_select_lo_excluded},
    {"SelectListObjectPossible", o_select_lo_possible},
    {"SelectListObjectValues", o_select_listobject_values},
    {"Unlock", o_unlock},
};

tsr_qix_method_fn tsr_engined__object_method(const char *name) {
    for (size_t i = 0; i < sizeof in_state_methods / sizeof in_state_methods[0]; i++) {
        if (strcmp(in_state_methods[i].name, name) == 0) {
            return in_state_methods[i].fn;
        }
    }
    return NULL;
}

#define NI tsr_qix_not_implemented
/* Generated from enigma.js's schema 12.2027.0: every GenericObject method. */
static const tsr_qix_method_t object_methods[] = {
    {"AbortListObjectSearch", o_abort_listobject_search, {"qPath", NULL}},
    {"AcceptListObjectSearch",
     tsr_engined__o_in_state,
     {"qPath", "qToggleMode", "qSoftLock", NULL}},
    {"ApplyPatches", o_apply_patches, {"qPatches", "qSoftPatch", NULL}},
    {"Approve", NI, {NULL}},
    {"BeginSelections", o_begin_selections, {"qPaths", NULL}},
    {"ClearSelections", tsr_engined__o_in_state, {"qPath", "qColIndices", NULL}},
    {"ClearSoftPatches", o_noop, {NULL}},
    {"CollapseLeft", NI, {"qPath", "qRow", "qCol", "qAll", NULL}},
    {"CollapseTop", NI, {"qPath", "qRow", "qCol", "qAll", NULL}},
    {"CopyFrom", NI, {"qFromId", NULL}},
    {"CreateChild", tsr_engined__o_create_child, {"qProp", "qPropForThis", NULL}},
    {"DestroyAllChildren", tsr_engined__o_destroy_all_children, {"qPropForThis", NULL}},
    {"DestroyChild", tsr_engined__o_destroy_child, {"qId", "qPropForThis", NULL}},
    {"DrillUp", NI, {"qPath", "qDimNo", "qNbrSteps", NULL}},
    {"EmbedSnapshotObject", NI, {"qId", NULL}},
    {"EndSelections", o_end_selections, {"qAccept", NULL}},
    {"ExpandLeft", NI, {"qPath", "qRow", "qCol", "qAll", NULL}},
    {"ExpandTop", NI, {"qPath", "qRow", "qCol", "qAll", NULL}},
    {"ExportData", NI, {"qFileType", "qPath", "qFileName", "qExportState", "qServeOnce", NULL}},
    {"GetChild", tsr_engined__o_get_child, {"qId", NULL}},
    {"GetChildInfos", tsr_engined__o_get_child_infos, {NULL}},
    {"GetEffectiveProperties", o_get_properties, {NULL}},
    {"GetFullPropertyTree", tsr_engined__o_get_full_property_tree, {NULL}},
    {"GetHyperCubeBinnedData",
     NI,
     {"qPath", "qPages", "qViewport", "qDataRanges", "qMaxNbrCells", "qQueryLevel",
      "qBinningMethod", NULL}},
    {"GetHyperCubeContinuousData", NI, {"qPath", "qOptions", "qReverseSort", NULL}},
    {"GetHyperCubeData", tsr_engined__o_in_state, {"qPath", "qPages", NULL}},
    {"GetHyperCubePivotData", NI, {"qPath", "qPages", NULL}},
    /* Unreduced data is a valid answer (qIsReduced false). */
    {"GetHyperCubeReducedData",
     tsr_engined__o_in_state,
     {"qPath", "qPages", "qZoomFactor", "qReductionMode", NULL}},
    {"GetHyperCubeStackData", NI, {"qPath", "qPages", "qMaxNbrCells", NULL}},
    {"GetHyperCubeTreeData", NI, {"qPath", "qNodeOptions", NULL}},
    {"GetInfo", o_get_info, {NULL}},
    {"GetLayout", o_get_layout, {NULL}},
    {"GetLinkedObjects", NI, {NULL}},
    {"GetListObjectData", tsr_engined__o_in_state, {"qPath", "qPages", NULL}},
    {"GetParent", tsr_engined__o_get_parent, {NULL}},
    {"GetProperties", o_get_properties, {NULL}},
    {"GetSnapshotObject", NI, {NULL}},
    {"Lock", tsr_engined__o_in_state, {"qPath", "qColIndices", NULL}},
    {"MultiRangeSelectHyperCubeValues",
     NI,
     {"qPath", "qRanges", "qOrMode", "qDeselectOnlyOneSelected", NULL}},
    {"MultiRangeSelectTreeDataValues",
     NI,
     {"qPath", "qRanges", "qOrMode", "qDeselectOnlyOneSelected", NULL}},
    {"Publish", NI, {NULL}},
    {"RangeSelectHyperCubeValues",
     NI,
     {"qPath", "qRanges", "qColumnsToSelect", "qOrMode", "qDeselectOnlyOneSelected", NULL}},
    {"ResetMadeSelections", o_reset_made_selections, {NULL}},
    {"SearchListObjectFor", tsr_engined__o_in_state, {"qPath", "qMatch", NULL}},
    {"SelectHyperCubeCells",
     tsr_engined__o_in_state,
     {"qPath", "qRowIndices", "qColIndices", "qSoftLock", "qDeselectOnlyOneSelected", NULL}},
    {"SelectHyperCubeContinuousRange", NI, {"qPath", "qRanges", "qSoftLock", NULL}},
    {"SelectHyperCubeValues",
     tsr_engined__o_in_state,
     {"qPath", "qDimNo", "qValues", "qToggleMode", NULL}},
    {"SelectListObjectAll", tsr_engined__o_in_state, {"qPath", "qSoftLock", NULL}},
    {"SelectListObjectAlternative", tsr_engined__o_in_state, {"qPath", "qSoftLock", NULL}},
    {"SelectListObjectContinuousRange", NI, {"qPath", "qRanges", "qSoftLock", NULL}},
    {"SelectListObjectExcluded", tsr_engined__o_in_state, {"qPath", "qSoftLock", NULL}},
    {"SelectListObjectPossible", tsr_engined__o_in_state, {"qPath", "qSoftLock", NULL}},
    {"SelectListObjectValues",
     tsr_engined__o_in_state,
     {"qPath", "qValues", "qToggleMode", "qSoftLock", NULL}},
    {"SelectPivotCells",
     NI,
     {"qPath", "qSelections", "qSoftLock", "qDeselectOnlyOneSelected", NULL}},
    {"SetChildArrayOrder", NI, {"qIds", NULL}},
    {"SetFullPropertyTree", tsr_engined__o_set_full_property_tree, {"qPropEntry", NULL}},
    {"SetProperties", o_set_properties, {"qProp", NULL}},
    {"StoreData",
     NI,
     {"qFileType", "qPath", "qLibRef", "qExportState", "qParquetCompression", NULL}},
    {"UnApprove", NI, {NULL}},
    {"UnPublish", NI, {NULL}},
    {"Unlock", tsr_engined__o_in_state, {"qPath", "qColIndices", NULL}},
};
#undef NI

const tsr_qix_type_t tsr_engined__object_type = {
    .qtype = "GenericObject",
    .methods = object_methods,
    .nmethods = sizeof object_methods / sizeof object_methods[0],
    .release = obj_release,
};
