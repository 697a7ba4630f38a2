/*
 * Fuzz target: the expression parser and evaluator (pkg/engine). The input is used as a
 * measure of a hypercube over a small fixed model (parse, aggregation binding, evaluation
 * per row and per cell) and as a LET expression in a load script (row-free evaluation).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tsr_engine_model_t *model;

static void init(void) {
    static const char script[] = "F: LOAD * INLINE [K, A, B, T\n1, 1.5, 2, x\n2, , 3, y\n"
                                 "3, -4, 0, z\n3, 7, 1, ];\n"
                                 "D: LOAD * INLINE [K, G\n1, g1\n2, g2\n3, g1];\n";
    tsr_error_t err = {0};
    char *log = NULL;
    if (tsr_engine_reload(script, strlen(script), NULL, &model, &log, &err) != TSR_OK)
        abort();
    free(log);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096)
        return 0;
    if (model == NULL)
        init();
    char *expr = malloc(size + 1);
    memcpy(expr, data, size);
    expr[size] = '\0';
    if (strlen(expr) == size) {
        tsr_error_t err = {0};
        tsr_engine_selection_t *sel = tsr_engine_selection_create(model);
        tsr_engine_state_t *st = NULL;
        if (tsr_engine_state_compute(model, sel, &st, &err) == TSR_OK) {
            const char *dims[] = {"G"};
            const char *meas[] = {expr};
            tsr_engine_hypercube_def_t def = {
                .dims = dims, .n_dims = 1, .measures = meas, .n_measures = 1};
            tsr_engine_hypercube_t *c = NULL;
            if (tsr_engine_hypercube_compute(model, st, &def, &c, &err) == TSR_OK) {
                for (size_t r = 0; r < tsr_engine_hypercube_rows(c); r++) {
                    tsr_engine_dual_t d;
                    tsr_engine_hypercube_cell(c, r, 1, &d);
                }
            }
            tsr_engine_hypercube_destroy(c);
        }
        tsr_engine_state_destroy(st);
        tsr_engine_selection_destroy(sel);
        /* The same text as a LET expression (no ';' to keep it one statement). */
        if (memchr(expr, ';', size) == NULL) {
            size_t n = size + 64;
            char *script = malloc(n);
            snprintf(script, n, "LET v = %s;\nT: LOAD 1 AS X INLINE [A\n1];", expr);
            tsr_engine_model_t *m = NULL;
            char *log = NULL;
            tsr_engine_reload(script, strlen(script), NULL, &m, &log, &err);
            tsr_engine_model_destroy(m);
            free(log);
            free(script);
        }
    }
    free(expr);
    return 0;
}
