/*
 * pkg/config: the platform's TSR_* environment variables. Every knob is declared once in
 * knobs.def with its default and documentation; reading an undeclared knob is a programming
 * error (abort), so the README table can be checked to be complete. Layer: above core.
 */
#ifndef TSR_CONFIG_H
#define TSR_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core.h"

typedef struct {
    const char *name;
    const char *def;
    const char *doc;
} tsr_config_knob_t;

/* The declared knobs, NULL-name terminated. Static storage. */
const tsr_config_knob_t *tsr_config_knobs(void);

/* The value of a declared knob: the environment's if set and non-empty, else the default.
 * The pointer is borrowed (environment or static storage). Aborts on an undeclared name. */
const char *tsr_config_get(const char *name);

/* Integer knob in [min,max]; TSR_EINVAL with a message naming the knob otherwise. */
tsr_err_t tsr_config_get_int(const char *name, int64_t min, int64_t max, int64_t *out,
                             tsr_error_t *err);

/* Boolean knob: 1/true/yes/on or 0/false/no/off. */
tsr_err_t tsr_config_get_bool(const char *name, bool *out, tsr_error_t *err);

/* Print the knobs as a Markdown table (name, default, description). */
void tsr_config_print_markdown(FILE *out);

#endif
