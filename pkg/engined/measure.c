/*
 * Master measures (Doc CreateMeasure/GetMeasure/GetMeasureWithLabel/DestroyMeasure, the
 * GenericMeasure handle type and qMeasureListDef). A master measure is an app object: its
 * properties {qInfo, qMeasure: {qLabel, qDef, ...}, qMetaDef} live in the app document
 * ("measures": {qId: props}), saved at once, shared by every user of the app; changing them
 * needs the edit permission. A hypercube measure with a qLibraryId takes its expression and
 * label from the master measure (tsr_engined__measure_qdef). Handlers run on the session's
 * thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engined_int.h"

#define MS_MAX_PER_APP 5000 /* master measures of one app */
#define MS_MAX_EXPR 65536   /* bytes of a measure's expression */

/* true when qMeasure m is valid: a qDef expression, a string qLabel when given. */
static bool def_ok(json_t *m) {
    json_t *def = json_object_get(m, "qDef");
    json_t *label = json_object_get(m, "qLabel");
    return json_is_string(def) && json_string_length(def) <= MS_MAX_EXPR &&
           (label == NULL || json_is_string(label));
}

const tsr_engined__master_t tsr_engined__measure_master = {
    .key = "measures",
    .qtype = "measure",
    .prefix = "ms-",
    .def_key = "qMeasure",
    .too_many = "Too many measures in the app",
    .max_per_app = MS_MAX_PER_APP,
    .aux = TSR_ENGINED__AUX_MEASURE,
    .def_ok = def_ok,
};

json_t *tsr_engined__measure_qdef(tsr_engined__doc_t *d, json_t *m) {
    json_t *qdef = json_object_get(m, "qDef");
    const char *lib = json_string_value(json_object_get(m, "qLibraryId"));
    if (lib == NULL || lib[0] == '\0') {
        return json_incref(qdef);
    }
    pthread_mutex_lock(&d->app->mu);
    json_t *ms = json_object_get(
        tsr_engined__master_get_locked(&tsr_engined__measure_master, d->app, lib), "qMeasure");
    json_t *r = NULL;
    if (json_is_object(ms)) {
        /* The chart's own qDef properties (cId, custom keys) with the library's expression. */
        r = json_is_object(qdef) ? json_deep_copy(qdef) : json_object();
        json_object_set(r, "qDef", json_object_get(ms, "qDef"));
        json_object_set(r, "qLabel", json_object_get(ms, "qLabel"));
    }
    pthread_mutex_unlock(&d->app->mu);
    if (r == NULL) {
        /* A missing master measure: nothing to compute (Qlik shows an invalid measure). */
        r = json_object();
        json_object_set_new(r, "qDef", json_string(""));
    }
    return r;
}

/* ---- Doc methods ------------------------------------------------------------------------------
 */

tsr_err_t tsr_engined__d_create_measure(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    return tsr_engined__master_create(&tsr_engined__measure_master, call, obj, err);
}

tsr_err_t tsr_engined__d_get_measure(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    return tsr_engined__master_get(&tsr_engined__measure_master, call, obj);
}

tsr_err_t tsr_engined__d_get_measure_with_label(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d = obj;
    tsr_engined__doc_sync(d);
    const char *label = NULL;
    tsr_err_t rc = tsr_qix_param_string(call, 0, NULL, &label);
    if (rc != TSR_OK) {
        return rc;
    }
    if (label == NULL || label[0] == '\0') {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMS, "qLabel", "Invalid Params");
    }
    char *found = NULL;
    const char *k;
    json_t *m;
    pthread_mutex_lock(&d->app->mu);
    json_object_foreach(json_object_get(d->app->doc, "measures"), k, m) {
        const char *l =
            json_string_value(json_object_get(json_object_get(m, "qMeasure"), "qLabel"));
        if (found == NULL && l != NULL && strcmp(l, label) == 0) {
            found = tsr_xstrdup(k);
        }
    }
    pthread_mutex_unlock(&d->app->mu);
    if (found == NULL) {
        return tsr_engined__lib_not_found(call, label);
    }
    tsr_engined__master_open(&tsr_engined__measure_master, call, d, found);
    free(found);
    return TSR_OK;
}

tsr_err_t tsr_engined__d_destroy_measure(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    return tsr_engined__master_destroy(&tsr_engined__measure_master, call, obj, err);
}

json_t *tsr_engined__measure_list(tsr_engined__doc_t *d, json_t *def) {
    return tsr_engined__master_list(&tsr_engined__measure_master, d, def);
}

/* ---- GenericMeasure methods -------------------------------------------------------------------
 */

static json_t *ms_copy(tsr_engined__doc_t *d, const char *id) {
    return tsr_engined__master_copy(&tsr_engined__measure_master, d, id);
}

const tsr_engined__lib_kind_t tsr_engined__measure_kind = {
    .copy = ms_copy, .props = tsr_engined__master_props, .layout = tsr_engined__master_layout};

#define NI tsr_qix_not_implemented
static const tsr_qix_method_t measure_methods[] = {
    {"ApplyPatches", NI, {"qPatches", NULL}},
    {"Approve", NI, {NULL}},
    {"GetInfo", tsr_engined__lib_get_info, {NULL}},
    {"GetLayout", tsr_engined__lib_get_layout, {NULL}},
    {"GetLinkedObjects", tsr_engined__master_get_linked_objects, {NULL}},
    {"GetMeasure", tsr_engined__master_get_def, {NULL}},
    {"GetProperties", tsr_engined__lib_get_properties, {NULL}},
    {"Publish", NI, {NULL}},
    {"SetProperties", tsr_engined__master_set_properties, {"qProp", NULL}},
    {"UnApprove", NI, {NULL}},
    {"UnPublish", NI, {NULL}},
};
#undef NI

const tsr_qix_type_t tsr_engined__measure_type = {
    .qtype = "GenericMeasure",
    .methods = measure_methods,
    .nmethods = sizeof measure_methods / sizeof measure_methods[0],
    .release = tsr_engined__aux_release,
};
