/*
 * bench/engine: Q1–Q7 of SALES_MODEL.md §2 through the public engine API (selection,
 * state, hypercube, list object), answers as canonical text (see salesq.h).
 */
#include "salesq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const tsr_salesq_names[TSR_SALESQ_COUNT] = {"Q1", "Q2",  "Q3", "Q4",
                                                        "Q5", "Q5b", "Q6", "Q7"};

const char tsr_salesq_script[] = "Customers: LOAD * FROM [lib://DataFiles/Customers.csv]\n"
                                 "  (txt, utf8, embedded labels, delimiter is ',');\n"
                                 "Products: LOAD * FROM [lib://DataFiles/Products.csv]\n"
                                 "  (txt, utf8, embedded labels, delimiter is ',');\n"
                                 "Calendar: LOAD * FROM [lib://DataFiles/Calendar.csv]\n"
                                 "  (txt, utf8, embedded labels, delimiter is ',');\n"
                                 "Sales: LOAD * FROM [lib://DataFiles/Sales.csv]\n"
                                 "  (txt, utf8, embedded labels, delimiter is ',');\n";

static tsr_err_t sel(tsr_engine_selection_t *s, const tsr_engine_model_t *m, const char *field,
                     const char *const *texts, size_t n, tsr_error_t *err) {
    size_t f;
    if (tsr_engine_model_field_find(m, field, &f) != TSR_OK)
        return tsr_error_set(err, TSR_ENOTFOUND, "no field %s", field);
    return tsr_engine_selection_select_text(s, f, texts, n, false, err);
}

static void put_dual(tsr_buf_t *b, const tsr_engine_dual_t *d) {
    tsr_buf_append(b, d->text, d->text_len);
}

static tsr_err_t cube(const tsr_engine_model_t *m, tsr_engine_state_t *st,
                      const tsr_engine_hypercube_def_t *def, bool int_measure, tsr_buf_t *b,
                      tsr_error_t *err) {
    tsr_engine_hypercube_t *c = NULL;
    tsr_err_t rc = tsr_engine_hypercube_compute(m, st, def, &c, err);
    if (rc != TSR_OK)
        return rc;
    size_t cols = def->n_dims + def->n_measures;
    for (size_t r = 0; r < tsr_engine_hypercube_rows(c); r++) {
        if (r > 0)
            tsr_buf_append(b, "\n", 1);
        for (size_t k = 0; k < cols; k++) {
            tsr_engine_dual_t d;
            tsr_engine_hypercube_cell(c, r, k, &d);
            if (k > 0)
                tsr_buf_append(b, ",", 1);
            if (k < def->n_dims)
                put_dual(b, &d);
            else if (int_measure)
                tsr_buf_appendf(b, "%.0f", d.num);
            else
                tsr_buf_appendf(b, "%.2f", d.num);
        }
    }
    tsr_engine_hypercube_destroy(c);
    return TSR_OK;
}

static tsr_err_t list(const tsr_engine_model_t *m, tsr_engine_state_t *st, const char *field,
                      tsr_buf_t *b, tsr_error_t *err) {
    tsr_engine_listobject_def_t def = {.field = field, .by = TSR_ENGINE_SORT_TEXT};
    tsr_engine_listobject_t *l = NULL;
    tsr_err_t rc = tsr_engine_listobject_compute(m, st, &def, &l, err);
    if (rc != TSR_OK)
        return rc;
    for (size_t r = 0; r < tsr_engine_listobject_rows(l); r++) {
        tsr_engine_listobject_row_t row;
        tsr_engine_dual_t d;
        tsr_engine_listobject_row(l, r, &row, &d);
        if (r > 0)
            tsr_buf_append(b, "\n", 1);
        put_dual(b, &d);
        tsr_buf_appendf(b, ",%s", tsr_engine_vstate_name(row.state));
    }
    tsr_engine_listobject_destroy(l);
    return TSR_OK;
}

tsr_err_t tsr_salesq_run(const tsr_engine_model_t *m, int q, char **answer, tsr_error_t *err) {
    static const char *const sales[] = {"Sum(Quantity*UnitPrice)"};
    static const char *const customers[] = {"Count(DISTINCT CustomerID)"};
    tsr_engine_selection_t *s = tsr_engine_selection_create(m);
    tsr_engine_state_t *st = NULL;
    tsr_buf_t b;
    tsr_buf_init(&b, 0);
    tsr_err_t rc = TSR_OK;
    switch (q) {
    case 1:
        rc = sel(s, m, "Country", (const char *const[]){"Country 03", "Country 17"}, 2, err);
        break;
    case 3:
        rc = sel(s, m, "Region", (const char *const[]){"Region 2"}, 1, err);
        if (rc == TSR_OK)
            rc = sel(s, m, "Year", (const char *const[]){"2023"}, 1, err);
        break;
    case 4:
        rc = sel(s, m, "Category", (const char *const[]){"Category 07"}, 1, err);
        break;
    case 5:
        rc = sel(s, m, "CustomerID", (const char *const[]){"50000"}, 1, err);
        break;
    case 6:
        rc = sel(s, m, "Year", (const char *const[]){"2022"}, 1, err);
        if (rc == TSR_OK)
            rc = sel(s, m, "YearMonth", (const char *const[]){"2022-03", "2022-04"}, 2, err);
        if (rc == TSR_OK)
            rc = sel(s, m, "Country", (const char *const[]){"Country 03", "Country 17"}, 2, err);
        break;
    default:
        break;
    }
    if (rc == TSR_OK)
        rc = tsr_engine_state_compute(m, s, &st, err);
    if (rc != TSR_OK)
        goto out;
    switch (q) {
    case 0:
        rc = cube(m, st,
                  &(tsr_engine_hypercube_def_t){.dims = (const char *const[]){"Region"},
                                                .n_dims = 1,
                                                .measures = sales,
                                                .n_measures = 1},
                  false, &b, err);
        break;
    case 1:
        rc = cube(m, st,
                  &(tsr_engine_hypercube_def_t){.dims = (const char *const[]){"Category"},
                                                .n_dims = 1,
                                                .measures = sales,
                                                .n_measures = 1},
                  false, &b, err);
        break;
    case 2:
        rc = cube(m, st,
                  &(tsr_engine_hypercube_def_t){.dims = (const char *const[]){"Year"},
                                                .n_dims = 1,
                                                .measures = customers,
                                                .n_measures = 1},
                  true, &b, err);
        break;
    case 3: {
        static const tsr_engine_sort_t order[] = {{2, TSR_ENGINE_SORT_DEFAULT, true},
                                                  {0, TSR_ENGINE_SORT_DEFAULT, false}};
        rc = cube(
            m, st,
            &(tsr_engine_hypercube_def_t){.dims = (const char *const[]){"ProductID", "ProductName"},
                                          .n_dims = 2,
                                          .measures = sales,
                                          .n_measures = 1,
                                          .sort = order,
                                          .n_sort = 2,
                                          .height = 10},
            false, &b, err);
        break;
    }
    case 4:
        rc = list(m, st, "Country", &b, err);
        break;
    case 5:
        rc = list(m, st, "Category", &b, err);
        break;
    case 6:
        rc = list(m, st, "YearMonth", &b, err);
        break;
    default:
        rc = cube(
            m, st,
            &(tsr_engine_hypercube_def_t){.dims = (const char *const[]){"YearMonth", "Category"},
                                          .n_dims = 2,
                                          .measures = sales,
                                          .n_measures = 1},
            false, &b, err);
        break;
    }
out:
    tsr_engine_state_destroy(st);
    tsr_engine_selection_destroy(s);
    if (rc == TSR_OK && answer != NULL) {
        size_t n;
        tsr_buf_append(&b, "", 0);
        *answer = tsr_buf_take(&b, &n);
    } else {
        tsr_buf_cleanup(&b);
    }
    return rc;
}
