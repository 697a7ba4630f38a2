/*
 * Alternate states: named selection states beside the default one ($). App states
 * (AddAlternateState, kept in the app document's stateNames, reported in qStateNames) and
 * session states (AddSessionAlternateState, gone with the session). Each session keeps one
 * selection per state; a call that works on a state swaps that selection (and its state and
 * history counts) into the doc for its duration, so the selection, layout and field code
 * serve every state unchanged. Hypercubes, list objects and selection objects follow their
 * qStateName; GetField(name, state), ClearAll/LockAll/UnlockAll(state) and the qPath methods
 * of GenericObject act on the named state. Session thread only, except the app's list (mu).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engined_int.h"

#define STATE_MAX_NAME 64 /* bytes of a state name */
#define STATE_MAX 100     /* alternate states of an app, and of a session */

static bool is_default(const char *name) {
    return name == NULL || name[0] == '\0' || strcmp(name, "$") == 0;
}

static bool in_array(json_t *a, const char *name) {
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), name) == 0) {
            return true;
        }
    }
    return false;
}

static bool app_has(tsr_engined__doc_t *d, const char *name) {
    pthread_mutex_lock(&d->app->mu);
    bool has = in_array(json_object_get(d->app->doc, "stateNames"), name);
    pthread_mutex_unlock(&d->app->mu);
    return has;
}

static tsr_engined__alt_t *alt_find(tsr_engined__doc_t *d, const char *name) {
    for (size_t i = 0; i < d->nalts; i++) {
        if (strcmp(d->alts[i].name, name) == 0) {
            return &d->alts[i];
        }
    }
    return NULL;
}

static void alt_cleanup(tsr_engined__alt_t *x) {
    tsr_engine_state_destroy(x->state);
    tsr_engine_selection_destroy(x->sel);
    free(x->name);
}

static void alt_drop(tsr_engined__doc_t *d, const char *name) {
    for (size_t i = 0; i < d->nalts; i++) {
        if (strcmp(d->alts[i].name, name) == 0) {
            alt_cleanup(&d->alts[i]);
            d->alts[i] = d->alts[--d->nalts];
            return;
        }
    }
}

int tsr_engined__state_swap(tsr_engined__doc_t *d, const char *name) {
    if (is_default(name)) {
        return 0;
    }
    tsr_engined__alt_t *x = alt_find(d, name);
    if (x == NULL) {
        if (!in_array(d->session_states, name) && !app_has(d, name)) {
            return -1;
        }
        d->alts = tsr_xrealloc(d->alts, (d->nalts + 1) * sizeof *d->alts);
        x = &d->alts[d->nalts++];
        memset(x, 0, sizeof *x);
        x->name = tsr_xstrdup(name);
        x->sel = d->model != NULL ? tsr_engine_selection_create(d->model->m) : NULL;
    }
    tsr_engine_selection_t *sel = d->sel;
    tsr_engine_state_t *st = d->state;
    size_t back = d->back_count, fwd = d->forward_count;
    d->sel = x->sel;
    d->state = x->state;
    d->back_count = x->back_count;
    d->forward_count = x->forward_count;
    x->sel = sel;
    x->state = st;
    x->back_count = back;
    x->forward_count = fwd;
    return 1;
}

json_t *tsr_engined__state_names(tsr_engined__doc_t *d) {
    pthread_mutex_lock(&d->app->mu);
    json_t *a = json_deep_copy(json_object_get(d->app->doc, "stateNames"));
    pthread_mutex_unlock(&d->app->mu);
    if (!json_is_array(a)) {
        json_decref(a);
        a = json_array();
    }
    size_t i;
    json_t *v;
    json_array_foreach(d->session_states, i, v) {
        if (!in_array(a, json_string_value(v))) {
            json_array_append(a, v);
        }
    }
    return a;
}

void tsr_engined__state_rebase(tsr_engined__doc_t *d, const tsr_engine_model_t *old_m,
                               const tsr_engine_model_t *m) {
    for (size_t i = 0; i < d->nalts; i++) {
        tsr_engined__alt_t *x = &d->alts[i];
        tsr_engine_selection_t *sel = m != NULL ? tsr_engine_selection_create(m) : NULL;
        if (sel != NULL && old_m != NULL && x->sel != NULL) {
            tsr_engined__carry_selections(old_m, x->sel, m, sel);
        }
        tsr_engine_state_destroy(x->state);
        x->state = NULL;
        tsr_engine_selection_destroy(x->sel);
        x->sel = sel;
        x->back_count = x->forward_count = 0;
    }
}

void tsr_engined__state_free(tsr_engined__doc_t *d) {
    for (size_t i = 0; i < d->nalts; i++) {
        alt_cleanup(&d->alts[i]);
    }
    free(d->alts);
    d->alts = NULL;
    d->nalts = 0;
    json_decref(d->session_states);
    d->session_states = NULL;
}

/* ---- Doc methods ------------------------------------------------------------------------------
 */

static tsr_err_t name_param(tsr_qix_call_t *call, size_t idx, const char **out) {
    tsr_err_t rc = tsr_qix_param_string(call, idx, NULL, out);
    if (rc != TSR_OK) {
        return rc;
    }
    const char *n = *out;
    if (n == NULL || is_default(n) || strlen(n) > STATE_MAX_NAME) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMETERS, "qStateName",
                                  "Invalid state name");
    }
    return TSR_OK;
}

/* The Doc and the state name (parameter 0) of a change to the app's states, which needs the
 * edit permission. */
static tsr_err_t app_state_param(tsr_qix_call_t *call, void *obj, tsr_engined__doc_t **d,
                                 const char **name) {
    *d = obj;
    tsr_engined__doc_sync(*d);
    tsr_err_t rc = name_param(call, 0, name);
    if (rc == TSR_OK) {
        rc = tsr_engined__doc_may(call, *d, TSR_ENGINED_EDIT);
    }
    return rc;
}

tsr_err_t tsr_engined__d_add_alternate_state(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__doc_t *d;
    const char *name = NULL;
    tsr_err_t rc = app_state_param(call, obj, &d, &name);
    if (rc != TSR_OK) {
        return rc;
    }
    tsr_engined__app_t *a = d->app;
    pthread_mutex_lock(&a->mu);
    json_t *names = json_object_get(a->doc, "stateNames");
    if (!json_is_array(names)) {
        names = json_array();
        json_object_set_new(a->doc, "stateNames", names);
    }
    if (in_array(names, name)) {
        rc = tsr_qix_call_error(call, TSR_QIX_ERR_ALREADY_EXISTS, name, "Already exists");
    } else if (json_array_size(names) >= STATE_MAX) {
        rc = tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMETERS, "qStateName",
                                "Too many alternate states");
    } else {
        json_array_append_new(names, json_string(name));
        rc = tsr_engined__app_save(a, err);
    }
    pthread_mutex_unlock(&a->mu);
    if (rc == TSR_OK) {
        /* The app layout's qStateNames changed for every session. */
        tsr_qix_call_add_change(call, tsr_qix_call_handle(call));
        tsr_engined__app_push(a, d, NULL, false);
    }
    return rc;
}

tsr_err_t tsr_engined__d_remove_alternate_state(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__doc_t *d;
    const char *name = NULL;
    tsr_err_t rc = app_state_param(call, obj, &d, &name);
    if (rc != TSR_OK) {
        return rc;
    }
    tsr_engined__app_t *a = d->app;
    bool found = false;
    pthread_mutex_lock(&a->mu);
    json_t *names = json_object_get(a->doc, "stateNames");
    for (size_t i = 0; i < json_array_size(names); i++) {
        if (strcmp(json_string_value(json_array_get(names, i)), name) == 0) {
            json_array_remove(names, i);
            found = true;
            rc = tsr_engined__app_save(a, err);
            break;
        }
    }
    pthread_mutex_unlock(&a->mu);
    if (!found) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_NOT_FOUND, name, "Object not found");
    }
    if (!in_array(d->session_states, name)) {
        alt_drop(d, name);
    }
    tsr_engined__doc_change_all(call, d);
    tsr_qix_call_add_change(call, tsr_qix_call_handle(call));
    tsr_engined__app_push(a, d, NULL, false);
    return rc;
}

tsr_err_t tsr_engined__d_add_session_alternate_state(tsr_qix_call_t *call, void *obj,
                                                     tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d = obj;
    tsr_engined__doc_sync(d);
    const char *name = NULL, *source = NULL;
    tsr_err_t rc = name_param(call, 0, &name);
    if (rc == TSR_OK) {
        rc = tsr_qix_param_string(call, 1, NULL, &source);
    }
    if (rc != TSR_OK) {
        return rc;
    }
    if (in_array(d->session_states, name) || app_has(d, name)) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_ALREADY_EXISTS, name, "Already exists");
    }
    if (json_array_size(d->session_states) >= STATE_MAX) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMETERS, "qStateName",
                                  "Too many alternate states");
    }
    /* The source state's selection is copied (by value) into the new state. */
    int sw = 0;
    if (source != NULL && !is_default(source) && (sw = tsr_engined__state_swap(d, source)) < 0) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMETERS, "qSourceStateName",
                                  "No such state");
    }
    tsr_engine_selection_t *copy = NULL;
    if (source != NULL && d->model != NULL && d->sel != NULL) {
        copy = tsr_engine_selection_create(d->model->m);
        tsr_engined__carry_selections(d->model->m, d->sel, d->model->m, copy);
    }
    if (sw > 0) {
        tsr_engined__state_swap(d, source);
    }
    if (d->session_states == NULL) {
        d->session_states = json_array();
    }
    json_array_append_new(d->session_states, json_string(name));
    alt_drop(d, name);
    d->alts = tsr_xrealloc(d->alts, (d->nalts + 1) * sizeof *d->alts);
    tsr_engined__alt_t *x = &d->alts[d->nalts++];
    memset(x, 0, sizeof *x);
    x->name = tsr_xstrdup(name);
    x->sel = copy != NULL       ? copy
             : d->model != NULL ? tsr_engine_selection_create(d->model->m)
                                : NULL;
    tsr_qix_call_add_change(call, tsr_qix_call_handle(call));
    return TSR_OK;
}

tsr_err_t tsr_engined__d_remove_session_alternate_state(tsr_qix_call_t *call, void *obj,
                                                        tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d = obj;
    tsr_engined__doc_sync(d);
    const char *name = NULL;
    tsr_err_t rc = name_param(call, 0, &name);
    if (rc != TSR_OK) {
        return rc;
    }
    bool found = false;
    for (size_t i = 0; i < json_array_size(d->session_states); i++) {
        if (strcmp(json_string_value(json_array_get(d->session_states, i)), name) == 0) {
            json_array_remove(d->session_states, i);
            found = true;
            break;
        }
    }
    if (found && !app_has(d, name)) {
        alt_drop(d, name);
    }
    tsr_qix_call_result(call, tsr_engined__obj1("qSuccess", json_boolean(found)));
    if (found) {
        tsr_engined__doc_change_all(call, d);
        tsr_qix_call_add_change(call, tsr_qix_call_handle(call));
    }
    return TSR_OK;
}

/* ---- GenericObject methods in a definition's state ---------------------------------------------
 */

tsr_err_t tsr_engined__o_in_state(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__obj_t *o = obj;
    tsr_engined__doc_t *d = o->doc;
    tsr_qix_method_fn fn = tsr_engined__object_method(tsr_qix_call_method(call));
    if (fn == NULL) {
        return tsr_qix_not_implemented(call, obj, err);
    }
    /* Synced before the swap: the handler's own sync is then a no-op. */
    tsr_engined__doc_sync(d);
    char state[STATE_MAX_NAME + 1] = "";
    json_t *path = tsr_qix_param(call, 0);
    if (json_is_string(path)) {
        json_t *props = tsr_engined__obj_props(o);
        json_t *def = tsr_engined__ptr_get(props, json_string_value(path));
        const char *sn = json_string_value(json_object_get(def, "qStateName"));
        if (sn != NULL && strlen(sn) <= STATE_MAX_NAME) {
            snprintf(state, sizeof state, "%s", sn);
        } else if (sn != NULL) {
            json_decref(props);
            return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMETERS, "qStateName",
                                      "No such state");
        }
        json_decref(props);
    }
    int sw = tsr_engined__state_swap(d, state);
    if (sw < 0) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMETERS, "qStateName",
                                  "No such state");
    }
    tsr_err_t rc = fn(call, obj, err);
    if (sw > 0) {
        tsr_engined__state_swap(d, state);
    }
    return rc;
}
