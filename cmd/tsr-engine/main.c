/*
 * cmd/tsr-engine: developer CLI for pkg/engine. Wiring only: argument parsing, file I/O and
 * JSON in/out around the engine's public API.
 *   tsr-engine reload SCRIPT DATA_DIR APP      run a load script, write the app file
 *   tsr-engine info APP                        tables, fields, rows as JSON
 *   tsr-engine query APP REQUEST.json|-        selections + objects in, layouts out (JSON)
 * Request: {"selections":[{"field":F,"values":[..]} | {"field":F,"search":S}],
 *           "objects":[{"type":"hypercube","dimensions":[..],"measures":[..],
 *                       "sort":[{"column":N,"by":"default|load|text","descending":B}],
 *                       "top":N,"height":N},
 *                      {"type":"listobject","field":F,"top":N,"height":N}]}
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#define MAX_SCRIPT (64u << 20) /* bytes */

static char *read_all(const char *path, size_t *n) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL)
        return NULL;
    tsr_buf_t b;
    tsr_buf_init(&b, MAX_SCRIPT);
    char chunk[65536];
    size_t got;
    bool ok = true;
    while (ok && (got = fread(chunk, 1, sizeof chunk, f)) > 0)
        ok = tsr_buf_append(&b, chunk, got) == TSR_OK;
    if (f != stdin)
        fclose(f);
    if (!ok) {
        tsr_buf_cleanup(&b);
        return NULL;
    }
    tsr_buf_append(&b, "", 0);
    return tsr_buf_take(&b, n);
}

static int cmd_reload(const char *script_path, const char *data_dir, const char *app) {
    size_t n;
    char *script = read_all(script_path, &n);
    if (script == NULL) {
        fprintf(stderr, "tsr-engine: cannot read %s\n", script_path);
        return 1;
    }
    tsr_engine_model_t *m = NULL;
    char *log = NULL;
    tsr_error_t err = {0};
    tsr_engine_reload_opts_t opts = {.data_dir = data_dir};
    tsr_err_t rc = tsr_engine_reload(script, n, &opts, &m, &log, &err);
    fputs(log ? log : "", stderr);
    if (rc == TSR_OK) {
        tsr_engine_app_meta_t meta = {.script = script,
                                      .script_len = n,
                                      .reload_log = log,
                                      .reload_log_len = log ? strlen(log) : 0};
        rc = tsr_engine_app_save(m, &meta, app, NULL, &err);
    }
    if (rc != TSR_OK)
        fprintf(stderr, "tsr-engine: %s\n", err.msg);
    tsr_engine_model_destroy(m);
    free(log);
    free(script);
    return rc == TSR_OK ? 0 : 1;
}

static tsr_engine_model_t *open_app(const char *app) {
    tsr_engine_model_t *m = NULL;
    tsr_error_t err = {0};
    if (tsr_engine_app_open(app, NULL, &m, NULL, &err) != TSR_OK) {
        fprintf(stderr, "tsr-engine: %s\n", err.msg);
        return NULL;
    }
    return m;
}

static const char *str_or_empty(const json_t *j) {
    const char *s = json_string_value(j);
    return s != NULL ? s : "";
}

static json_t *dual_json(const tsr_engine_dual_t *d) {
    json_t *o = json_object();
    json_object_set_new(o, "qText", json_stringn(d->text, d->text_len));
    if (d->is_num)
        json_object_set_new(o, "qNum", json_real(d->num));
    else
        json_object_set_new(o, "qNum", json_string("NaN"));
    return o;
}

static int cmd_info(const char *app) {
    tsr_engine_model_t *m = open_app(app);
    if (m == NULL)
        return 1;
    json_t *out = json_object(), *tables = json_array(), *fields = json_array();
    for (size_t t = 0; t < tsr_engine_model_table_count(m); t++) {
        json_t *tf = json_array();
        for (size_t c = 0; c < tsr_engine_model_table_field_count(m, t); c++)
            json_array_append_new(tf, json_string(tsr_engine_model_field_name(
                                          m, tsr_engine_model_table_field(m, t, c))));
        json_array_append_new(
            tables, json_pack("{s:s,s:I,s:o}", "name", tsr_engine_model_table_name(m, t), "rows",
                              (json_int_t)tsr_engine_model_table_rows(m, t), "fields", tf));
    }
    for (size_t f = 0; f < tsr_engine_model_field_count(m); f++)
        json_array_append_new(
            fields, json_pack("{s:s,s:I}", "name", tsr_engine_model_field_name(m, f), "cardinal",
                              (json_int_t)tsr_engine_model_field_symbol_count(m, f)));
    json_object_set_new(out, "tables", tables);
    json_object_set_new(out, "fields", fields);
    json_dumpf(out, stdout, JSON_INDENT(2));
    putchar('\n');
    json_decref(out);
    tsr_engine_model_destroy(m);
    return 0;
}

static tsr_engine_sort_by_t sort_by(const char *s) {
    if (s != NULL && strcmp(s, "load") == 0)
        return TSR_ENGINE_SORT_LOAD;
    if (s != NULL && strcmp(s, "text") == 0)
        return TSR_ENGINE_SORT_TEXT;
    return TSR_ENGINE_SORT_DEFAULT;
}

static json_t *hypercube(const tsr_engine_model_t *m, tsr_engine_state_t *st, json_t *def,
                         tsr_error_t *err) {
    json_t *jd = json_object_get(def, "dimensions"), *jm = json_object_get(def, "measures");
    json_t *js = json_object_get(def, "sort");
    size_t nd = json_array_size(jd), nm = json_array_size(jm), ns = json_array_size(js);
    if (nd == 0 || nd > 16 || nm > 64 || ns > 80) {
        tsr_error_set(err, TSR_EINVAL, "1..16 dimensions, at most 64 measures");
        return NULL;
    }
    const char *dims[16], *meas[64];
    tsr_engine_sort_t sort[80];
    for (size_t i = 0; i < nd; i++)
        dims[i] = str_or_empty(json_array_get(jd, i));
    for (size_t i = 0; i < nm; i++)
        meas[i] = str_or_empty(json_array_get(jm, i));
    for (size_t i = 0; i < ns; i++) {
        json_t *k = json_array_get(js, i);
        sort[i] = (tsr_engine_sort_t){(size_t)json_integer_value(json_object_get(k, "column")),
                                      sort_by(json_string_value(json_object_get(k, "by"))),
                                      json_is_true(json_object_get(k, "descending"))};
    }
    tsr_engine_hypercube_def_t d = {.dims = dims,
                                    .n_dims = nd,
                                    .measures = meas,
                                    .n_measures = nm,
                                    .sort = sort,
                                    .n_sort = ns,
                                    .top = (size_t)json_integer_value(json_object_get(def, "top")),
                                    .height =
                                        (size_t)json_integer_value(json_object_get(def, "height"))};
    tsr_engine_hypercube_t *c = NULL;
    if (tsr_engine_hypercube_compute(m, st, &d, &c, err) != TSR_OK)
        return NULL;
    json_t *rows = json_array(), *totals = json_array();
    for (size_t r = 0; r < tsr_engine_hypercube_rows(c); r++) {
        json_t *row = json_array();
        for (size_t k = 0; k < nd + nm; k++) {
            tsr_engine_dual_t v;
            tsr_engine_hypercube_cell(c, r, k, &v);
            json_array_append_new(row, k < nd ? dual_json(&v)
                                              : (v.is_num ? json_real(v.num) : json_null()));
        }
        json_array_append_new(rows, row);
    }
    for (size_t j = 0; j < nm; j++) {
        double t;
        tsr_engine_hypercube_total(c, j, &t);
        json_array_append_new(totals, isnan(t) ? json_null() : json_real(t));
    }
    json_t *o =
        json_pack("{s:s,s:I,s:o,s:o}", "type", "hypercube", "totalRows",
                  (json_int_t)tsr_engine_hypercube_total_rows(c), "rows", rows, "totals", totals);
    tsr_engine_hypercube_destroy(c);
    return o;
}

static json_t *listobject(const tsr_engine_model_t *m, tsr_engine_state_t *st, json_t *def,
                          tsr_error_t *err) {
    tsr_engine_listobject_def_t d = {
        .field = json_string_value(json_object_get(def, "field")),
        .sort_by_state = !json_is_false(json_object_get(def, "sortByState")),
        .by = sort_by(json_string_value(json_object_get(def, "by"))),
        .frequency = json_is_true(json_object_get(def, "frequency")),
        .top = (size_t)json_integer_value(json_object_get(def, "top")),
        .height = (size_t)json_integer_value(json_object_get(def, "height"))};
    tsr_engine_listobject_t *l = NULL;
    if (tsr_engine_listobject_compute(m, st, &d, &l, err) != TSR_OK)
        return NULL;
    json_t *rows = json_array();
    for (size_t i = 0; i < tsr_engine_listobject_rows(l); i++) {
        tsr_engine_listobject_row_t row;
        tsr_engine_dual_t v;
        tsr_engine_listobject_row(l, i, &row, &v);
        json_t *o = dual_json(&v);
        json_object_set_new(o, "qState", json_string(tsr_engine_vstate_name(row.state)));
        json_object_set_new(o, "qElemNumber", json_integer((json_int_t)row.sym));
        if (d.frequency)
            json_object_set_new(o, "qFrequency", json_integer((json_int_t)row.frequency));
        json_array_append_new(rows, o);
    }
    json_t *o = json_pack("{s:s,s:I,s:o}", "type", "listobject", "totalRows",
                          (json_int_t)tsr_engine_listobject_total_rows(l), "rows", rows);
    tsr_engine_listobject_destroy(l);
    return o;
}

static int cmd_query(const char *app, const char *req_path) {
    json_error_t jerr;
    json_t *req = strcmp(req_path, "-") == 0 ? json_loadf(stdin, 0, &jerr)
                                             : json_load_file(req_path, 0, &jerr);
    if (req == NULL) {
        fprintf(stderr, "tsr-engine: request: %s (line %d)\n", jerr.text, jerr.line);
        return 1;
    }
    tsr_engine_model_t *m = open_app(app);
    if (m == NULL) {
        json_decref(req);
        return 1;
    }
    int rc = 1;
    tsr_error_t err = {0};
    tsr_engine_selection_t *sel = tsr_engine_selection_create(m);
    tsr_engine_state_t *st = NULL;
    json_t *out = json_array();
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(req, "selections"), i, s) {
        size_t f;
        const char *fname = json_string_value(json_object_get(s, "field"));
        if (fname == NULL || tsr_engine_model_field_find(m, fname, &f) != TSR_OK) {
            fprintf(stderr, "tsr-engine: no field %s\n", fname ? fname : "(none)");
            goto out;
        }
        const char *search = json_string_value(json_object_get(s, "search"));
        if (search != NULL) {
            if (tsr_engine_selection_select_search(sel, f, search, false, &err) != TSR_OK)
                fprintf(stderr, "tsr-engine: %s\n", err.msg);
            continue;
        }
        json_t *vals = json_object_get(s, "values");
        size_t nv = json_array_size(vals);
        const char **texts = calloc(nv + 1, sizeof *texts);
        for (size_t k = 0; k < nv; k++)
            texts[k] = str_or_empty(json_array_get(vals, k));
        tsr_err_t r = tsr_engine_selection_select_text(sel, f, texts, nv, false, &err);
        free(texts);
        if (r != TSR_OK) {
            fprintf(stderr, "tsr-engine: %s\n", err.msg);
            goto out;
        }
    }
    if (tsr_engine_state_compute(m, sel, &st, &err) != TSR_OK) {
        fprintf(stderr, "tsr-engine: %s\n", err.msg);
        goto out;
    }
    json_t *def;
    json_array_foreach(json_object_get(req, "objects"), i, def) {
        const char *type = json_string_value(json_object_get(def, "type"));
        json_t *o = type && strcmp(type, "listobject") == 0 ? listobject(m, st, def, &err)
                                                            : hypercube(m, st, def, &err);
        if (o == NULL) {
            fprintf(stderr, "tsr-engine: object %zu: %s\n", i, err.msg);
            goto out;
        }
        json_array_append_new(out, o);
    }
    json_dumpf(out, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
    putchar('\n');
    rc = 0;
out:
    json_decref(out);
    json_decref(req);
    tsr_engine_state_destroy(st);
    tsr_engine_selection_destroy(sel);
    tsr_engine_model_destroy(m);
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "reload") == 0)
        return cmd_reload(argv[2], argv[3], argv[4]);
    if (argc == 3 && strcmp(argv[1], "info") == 0)
        return cmd_info(argv[2]);
    if (argc == 4 && strcmp(argv[1], "query") == 0)
        return cmd_query(argv[2], argv[3]);
    fprintf(stderr, "usage: tsr-engine reload SCRIPT DATA_DIR APP\n"
                    "       tsr-engine info APP\n"
                    "       tsr-engine query APP REQUEST.json|-\n");
    return 2;
}
