/*
 * The Field handle type (Doc.GetField): selections on one field of the session's state by
 * search string, by values or by element numbers, clear, locks and the cardinality. Every
 * method but GetCardinal answers qReturn true/false; a change reports every object of the
 * session in "change".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engined_int.h"

static void field_release(void *obj) {
    tsr_engined__field_t *f = obj;
    free(f->name);
    free(f->state);
    free(f);
}

/* The field's index in the doc's current model (it may have been reloaded): false when the
 * field is gone. */
static bool field_sync(tsr_engined__field_t *fl) {
    tsr_engined__doc_sync(fl->doc);
    return tsr_engined__doc_field(fl->doc, fl->name, &fl->field, NULL) == TSR_OK &&
           fl->doc->sel != NULL;
}

static tsr_err_t answer(tsr_qix_call_t *call, tsr_engined__field_t *fl, bool ok) {
    if (ok) {
        tsr_engined__doc_selection_changed(call, fl->doc);
    }
    tsr_qix_call_result(call, json_pack("{s:b}", "qReturn", ok));
    return TSR_OK;
}

static tsr_err_t search_select(tsr_qix_call_t *call, void *obj, bool toggle) {
    tsr_engined__field_t *fl = obj;
    const char *match = NULL;
    tsr_err_t rc = tsr_qix_param_string(call, 0, "", &match);
    if (rc != TSR_OK) {
        return rc;
    }
    bool ok =
        field_sync(fl) && match[0] != '\0' &&
        tsr_engine_selection_select_search(fl->doc->sel, fl->field, match, toggle, NULL) == TSR_OK;
    return answer(call, fl, ok);
}

static tsr_err_t f_select(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    return search_select(call, obj, false);
}

static tsr_err_t f_toggle_select(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    return search_select(call, obj, true);
}

/* SelectValues [{qText, qIsNumeric, qNumber}]: by text; a numeric value without text by the
 * number's text. */
static tsr_err_t f_select_values(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__field_t *fl = obj;
    json_t *vals = NULL;
    bool toggle = false;
    tsr_err_t rc = tsr_qix_param_json(call, 0, true, &vals);
    if (rc != TSR_OK || (rc = tsr_qix_param_bool(call, 1, false, &toggle)) != TSR_OK) {
        return rc;
    }
    if (!field_sync(fl)) {
        return answer(call, fl, false);
    }
    size_t n = json_array_size(vals), k = 0, i;
    char **texts = tsr_xcalloc(n + 1, sizeof *texts);
    json_t *v;
    json_array_foreach(vals, i, v) {
        const char *t = json_string_value(json_object_get(v, "qText"));
        json_t *num = json_object_get(v, "qNumber");
        if (t != NULL && t[0] != '\0') {
            texts[k++] = tsr_xstrdup(t);
        } else if (json_is_number(num)) {
            char buf[64];
            tsr_engined__num_text(json_number_value(num), buf, sizeof buf);
            texts[k++] = tsr_xstrdup(buf);
        }
    }
    bool ok = tsr_engine_selection_select_text(fl->doc->sel, fl->field, (const char *const *)texts,
                                               k, toggle, NULL) == TSR_OK;
    for (i = 0; i < k; i++) {
        free(texts[i]);
    }
    free(texts);
    return answer(call, fl, ok);
}

static tsr_err_t f_low_level_select(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__field_t *fl = obj;
    json_t *vals = NULL;
    bool toggle = false;
    tsr_err_t rc = tsr_qix_param_json(call, 0, true, &vals);
    if (rc != TSR_OK || (rc = tsr_qix_param_bool(call, 1, false, &toggle)) != TSR_OK) {
        return rc;
    }
    if (!field_sync(fl)) {
        return answer(call, fl, false);
    }
    size_t nsyms = tsr_engine_model_field_symbol_count(fl->doc->model->m, fl->field);
    size_t n = json_array_size(vals), k = 0, i;
    size_t *syms = tsr_xcalloc(n + 1, sizeof *syms);
    json_t *v;
    json_array_foreach(vals, i, v) {
        if (json_is_integer(v) && json_integer_value(v) >= 0 &&
            (size_t)json_integer_value(v) < nsyms) {
            syms[k++] = (size_t)json_integer_value(v);
        }
    }
    bool ok = tsr_engine_selection_select(fl->doc->sel, fl->field, syms, k, toggle, NULL) == TSR_OK;
    free(syms);
    return answer(call, fl, ok);
}

/* Select the values whose state is in mask (SelectAll/Possible/Alternative/Excluded). */
static tsr_err_t select_states(tsr_qix_call_t *call, tsr_engined__field_t *fl, unsigned mask) {
    tsr_engine_state_t *st = field_sync(fl) ? tsr_engined__doc_state(fl->doc, NULL) : NULL;
    if (st == NULL) {
        return answer(call, fl, false);
    }
    size_t n = tsr_engine_model_field_symbol_count(fl->doc->model->m, fl->field), k = 0;
    size_t *syms = tsr_xcalloc(n + 1, sizeof *syms);
    for (size_t y = 0; y < n; y++) {
        if (mask & (1u << tsr_engine_state_value(st, fl->field, y))) {
            syms[k++] = y;
        }
    }
    bool ok = tsr_engine_selection_select(fl->doc->sel, fl->field, syms, k, false, NULL) == TSR_OK;
    free(syms);
    return answer(call, fl, ok);
}

static tsr_err_t f_select_all(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    return select_states(call, obj, 1u << TSR_ENGINE_S | 1u << TSR_ENGINE_O);
}

static tsr_err_t f_select_alternative(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    return select_states(call, obj, 1u << TSR_ENGINE_A);
}

static tsr_err_t f_select_excluded(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    return select_states(call, obj, 1u << TSR_ENGINE_A | 1u << TSR_ENGINE_X | 1u << TSR_ENGINE_XS);
}

static tsr_err_t f_clear(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__field_t *fl = obj;
    bool ok =
        field_sync(fl) && tsr_engine_selection_clear_field(fl->doc->sel, fl->field, NULL) == TSR_OK;
    return answer(call, fl, ok);
}

static tsr_err_t lock(tsr_qix_call_t *call, tsr_engined__field_t *fl, bool locked) {
    bool ok = field_sync(fl) &&
              tsr_engine_selection_lock(fl->doc->sel, fl->field, locked, NULL) == TSR_OK;
    if (ok) {
        tsr_engined__doc_change_all(call, fl->doc);
    }
    tsr_qix_call_result(call, json_pack("{s:b}", "qReturn", ok));
    return TSR_OK;
}

static tsr_err_t f_lock(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    return lock(call, obj, true);
}

static tsr_err_t f_unlock(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    return lock(call, obj, false);
}

static tsr_err_t f_get_cardinal(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__field_t *fl = obj;
    size_t n =
        field_sync(fl) ? tsr_engine_model_field_symbol_count(fl->doc->model->m, fl->field) : 0;
    tsr_qix_call_result(call, json_pack("{s:I}", "qReturn", (json_int_t)n));
    return TSR_OK;
}

static tsr_err_t f_get_and_mode(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)obj;
    (void)err;
    tsr_qix_call_result(call, json_pack("{s:b}", "qReturn", 0));
    return TSR_OK;
}

static tsr_err_t f_get_nx_properties(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)obj;
    (void)err;
    tsr_qix_call_result(call, json_pack("{s:{s:b}}", "qProperties", "qOneAndOnlyOne", 0));
    return TSR_OK;
}

#define NI tsr_qix_not_implemented
/* Generated from enigma.js's schema 12.2027.0: every Field method. */
static const tsr_qix_method_t field_methods[] = {
    {"Clear", f_clear, {NULL}},
    {"ClearAllButThis", NI, {"qSoftLock", NULL}},
    {"GetAndMode", f_get_and_mode, {NULL}},
    {"GetCardinal", f_get_cardinal, {NULL}},
    {"GetNxProperties", f_get_nx_properties, {NULL}},
    {"Lock", f_lock, {NULL}},
    {"LowLevelSelect", f_low_level_select, {"qValues", "qToggleMode", "qSoftLock", NULL}},
    {"Select", f_select, {"qMatch", "qSoftLock", "qExcludedValuesMode", NULL}},
    {"SelectAll", f_select_all, {"qSoftLock", NULL}},
    {"SelectAlternative", f_select_alternative, {"qSoftLock", NULL}},
    {"SelectExcluded", f_select_excluded, {"qSoftLock", NULL}},
    {"SelectPossible", f_select_all, {"qSoftLock", NULL}},
    {"SelectValues", f_select_values, {"qFieldValues", "qToggleMode", "qSoftLock", NULL}},
    {"SetAndMode", NI, {"qAndMode", NULL}},
    {"SetNxProperties", NI, {"qProperties", NULL}},
    {"ToggleSelect", f_toggle_select, {"qMatch", "qSoftLock", "qExcludedValuesMode", NULL}},
    {"Unlock", f_unlock, {NULL}},
};
#undef NI

const tsr_qix_type_t tsr_engined__field_type = {
    .qtype = "Field",
    .methods = field_methods,
    .nmethods = sizeof field_methods / sizeof field_methods[0],
    .release = field_release,
};

/* A Field method of an alternate state's field: the state's selection swapped in around the
 * real handler (synced first, so the handler's own sync changes nothing). */
static tsr_err_t f_in_state(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__field_t *fl = obj;
    const char *m = tsr_qix_call_method(call);
    for (size_t i = 0; i < sizeof field_methods / sizeof field_methods[0]; i++) {
        if (strcmp(field_methods[i].name, m) != 0) {
            continue;
        }
        tsr_engined__doc_sync(fl->doc);
        int sw = tsr_engined__state_swap(fl->doc, fl->state);
        if (sw < 0) {
            /* The state was removed since GetField. */
            return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMETERS, "qStateName",
                                      "No such state");
        }
        tsr_err_t rc = field_methods[i].fn(call, obj, err);
        if (sw > 0) {
            tsr_engined__state_swap(fl->doc, fl->state);
        }
        return rc;
    }
    return tsr_qix_not_implemented(call, obj, err);
}

#define S(name, ...)                                                                               \
    {                                                                                              \
        name, f_in_state, {                                                                        \
            __VA_ARGS__                                                                            \
        }                                                                                          \
    }
static const tsr_qix_method_t field_state_methods[] = {
    S("Clear", NULL),
    S("ClearAllButThis", "qSoftLock", NULL),
    S("GetAndMode", NULL),
    S("GetCardinal", NULL),
    S("GetNxProperties", NULL),
    S("Lock", NULL),
    S("LowLevelSelect", "qValues", "qToggleMode", "qSoftLock", NULL),
    S("Select", "qMatch", "qSoftLock", "qExcludedValuesMode", NULL),
    S("SelectAll", "qSoftLock", NULL),
    S("SelectAlternative", "qSoftLock", NULL),
    S("SelectExcluded", "qSoftLock", NULL),
    S("SelectPossible", "qSoftLock", NULL),
    S("SelectValues", "qFieldValues", "qToggleMode", "qSoftLock", NULL),
    S("SetAndMode", "qAndMode", NULL),
    S("SetNxProperties", "qProperties", NULL),
    S("ToggleSelect", "qMatch", "qSoftLock", "qExcludedValuesMode", NULL),
    S("Unlock", NULL),
};
#undef S

const tsr_qix_type_t tsr_engined__field_state_type = {
    .qtype = "Field",
    .methods = field_state_methods,
    .nmethods = sizeof field_state_methods / sizeof field_state_methods[0],
    .release = field_release,
};
