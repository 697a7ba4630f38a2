/*
 * pkg/config implementation: a static table generated from knobs.def; lookups are linear
 * (a dozen entries, read at start only).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

static const tsr_config_knob_t g_knobs[] = {
#define TSR_KNOB(name, def, doc) {#name, def, doc},
#include "knobs.def"
#undef TSR_KNOB
    {NULL, NULL, NULL},
};

const tsr_config_knob_t *tsr_config_knobs(void) {
    return g_knobs;
}

const char *tsr_config_get(const char *name) {
    for (const tsr_config_knob_t *k = g_knobs; k->name != NULL; k++) {
        if (strcmp(k->name, name) == 0) {
            const char *v = getenv(name);
            return (v != NULL && v[0] != '\0') ? v : k->def;
        }
    }
    fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"undeclared config knob %s\"}\n", name);
    abort();
}

tsr_err_t tsr_config_get_int(const char *name, int64_t min, int64_t max, int64_t *out,
                             tsr_error_t *err) {
    const char *v = tsr_config_get(name);
    if (tsr_str_to_i64(tsr_str_trim(tsr_str(v)), min, max, out) != TSR_OK) {
        return tsr_error_set(err, TSR_EINVAL, "%s=\"%s\": expected an integer in [%lld, %lld]",
                             name, v, (long long)min, (long long)max);
    }
    return TSR_OK;
}

tsr_err_t tsr_config_get_bool(const char *name, bool *out, tsr_error_t *err) {
    tsr_str_t v = tsr_str_trim(tsr_str(tsr_config_get(name)));
    static const char *yes[] = {"1", "true", "yes", "on"};
    static const char *no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (tsr_str_case_eq_cstr(v, yes[i])) {
            *out = true;
            return TSR_OK;
        }
        if (tsr_str_case_eq_cstr(v, no[i])) {
            *out = false;
            return TSR_OK;
        }
    }
    return tsr_error_set(err, TSR_EINVAL, "%s: expected true or false", name);
}

void tsr_config_print_markdown(FILE *out) {
    fprintf(out, "| variable | default | meaning |\n|---|---|---|\n");
    for (const tsr_config_knob_t *k = g_knobs; k->name != NULL; k++) {
        fprintf(out, "| `%s` | `%s` | %s |\n", k->name, k->def, k->doc);
    }
}
