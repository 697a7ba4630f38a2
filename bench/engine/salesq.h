/*
 * bench/engine: the query set of SALES_MODEL.md §2 (Q1–Q7, Q5b) against a loaded Sales
 * model, each answer as canonical text (one line per row, `,`-separated, 2-decimal sums,
 * no trailing newline) so that Tessera, DuckDB and the reference answers compare as strings.
 */
#ifndef TSR_SALESQ_H
#define TSR_SALESQ_H

#include "engine.h"

#define TSR_SALESQ_COUNT 8
/* "Q1", "Q2", "Q3", "Q4", "Q5", "Q5b", "Q6", "Q7". */
extern const char *const tsr_salesq_names[TSR_SALESQ_COUNT];

/* The load script of the model (files Customers/Products/Calendar/Sales.csv). */
extern const char tsr_salesq_script[];

/* Run query q (0..7) on m from a fresh selection. *answer (when answer != NULL) is
 * returned-owned (free()). Returns TSR_OK or the engine's error (detail in err). */
tsr_err_t tsr_salesq_run(const tsr_engine_model_t *m, int q, char **answer, tsr_error_t *err);

#endif
