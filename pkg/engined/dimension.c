/*
 * Master dimensions (Doc CreateDimension/GetDimension/DestroyDimension, the GenericDimension
 * handle type and qDimensionListDef), built like master measures (measure.c). A master
 * dimension is an app object: its properties {qInfo, qDim: {qGrouping, qFieldDefs,
 * qFieldLabels, title, ...}, qMetaDef} live in the app document ("dimensions": {qId: props}),
 * saved at once, shared by every user of the app; changing them needs the edit permission. A
 * hypercube or list object dimension with a qLibraryId takes its fields and labels from the
 * master dimension (tsr_engined__dimension_qdef). Handlers run on the session's thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engined_int.h"

#define DM_MAX_PER_APP 5000 /* master dimensions of one app */
#define DM_MAX_FIELDS 64    /* qFieldDefs of one dimension (a drill-down's levels) */
#define DM_MAX_DEF 65536    /* bytes of one field definition or label */

/* true when a is an array of at most max strings of at most DM_MAX_DEF bytes (non-empty
 * strings and at least one when nonempty). */
static bool strings_ok(json_t *a, size_t max, bool nonempty) {
    if (!json_is_array(a) || json_array_size(a) > max || (nonempty && json_array_size(a) == 0)) {
        return false;
    }
    size_t i;
    json_t *s;
    json_array_foreach(a, i, s) {
        if (!json_is_string(s) || json_string_length(s) > DM_MAX_DEF ||
            (nonempty && json_string_length(s) == 0)) {
            return false;
        }
    }
    return true;
}

/* true when qDim m is valid: 1..DM_MAX_FIELDS non-empty qFieldDefs, qFieldLabels and a
 * string qGrouping when given. */
static bool def_ok(json_t *m) {
    json_t *labels = json_object_get(m, "qFieldLabels");
    json_t *grouping = json_object_get(m, "qGrouping");
    return strings_ok(json_object_get(m, "qFieldDefs"), DM_MAX_FIELDS, true) &&
           (labels == NULL || strings_ok(labels, DM_MAX_FIELDS, false)) &&
           (grouping == NULL || json_is_string(grouping));
}

const tsr_engined__master_t tsr_engined__dimension_master = {
    .key = "dimensions",
    .qtype = "dimension",
    .prefix = "dm-",
    .def_key = "qDim",
    .too_many = "Too many dimensions in the app",
    .max_per_app = DM_MAX_PER_APP,
    .aux = TSR_ENGINED__AUX_DIMENSION,
    .def_ok = def_ok,
};

json_t *tsr_engined__dimension_qdef(tsr_engined__doc_t *d, json_t *dim) {
    json_t *qdef = json_object_get(dim, "qDef");
    const char *lib = json_string_value(json_object_get(dim, "qLibraryId"));
    if (lib == NULL || lib[0] == '\0') {
        return json_incref(qdef);
    }
    pthread_mutex_lock(&d->app->mu);
    json_t *ms = json_object_get(
        tsr_engined__master_get_locked(&tsr_engined__dimension_master, d->app, lib), "qDim");
    json_t *r = NULL;
    if (json_is_object(ms)) {
        /* The chart's own qDef properties (cId, sorting) with the library's fields. */
        r = json_is_object(qdef) ? json_deep_copy(qdef) : json_object();
        json_object_set_new(r, "qFieldDefs", json_deep_copy(json_object_get(ms, "qFieldDefs")));
        json_t *labels = json_object_get(ms, "qFieldLabels");
        json_object_set_new(r, "qFieldLabels",
                            json_is_array(labels) ? json_deep_copy(labels) : json_array());
        json_t *title = json_object_get(ms, "title");
        if (json_is_string(title) && json_string_length(title) > 0 &&
            json_string_length(json_array_get(json_object_get(r, "qFieldLabels"), 0)) == 0) {
            /* The master item's title names the column when it has no field label. */
            json_array_clear(json_object_get(r, "qFieldLabels"));
            json_array_append(json_object_get(r, "qFieldLabels"), title);
        }
    }
    pthread_mutex_unlock(&d->app->mu);
    if (r == NULL) {
        /* A missing master dimension: no field (Qlik shows an invalid dimension). */
        r = json_object();
        json_object_set_new(r, "qFieldDefs", json_array());
    }
    return r;
}

/* ---- Doc methods ------------------------------------------------------------------------------
 */

tsr_err_t tsr_engined__d_create_dimension(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    return tsr_engined__master_create(&tsr_engined__dimension_master, call, obj, err);
}

tsr_err_t tsr_engined__d_get_dimension(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    return tsr_engined__master_get(&tsr_engined__dimension_master, call, obj);
}

tsr_err_t tsr_engined__d_destroy_dimension(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    return tsr_engined__master_destroy(&tsr_engined__dimension_master, call, obj, err);
}

json_t *tsr_engined__dimension_list(tsr_engined__doc_t *d, json_t *def) {
    return tsr_engined__master_list(&tsr_engined__dimension_master, d, def);
}

/* ---- GenericDimension methods -----------------------------------------------------------------
 */

static json_t *dm_copy(tsr_engined__doc_t *d, const char *id) {
    return tsr_engined__master_copy(&tsr_engined__dimension_master, d, id);
}

const tsr_engined__lib_kind_t tsr_engined__dimension_kind = {
    .copy = dm_copy, .props = tsr_engined__master_props, .layout = tsr_engined__master_layout};

#define NI tsr_qix_not_implemented
static const tsr_qix_method_t dimension_methods[] = {
    {"ApplyPatches", NI, {"qPatches", NULL}},
    {"Approve", NI, {NULL}},
    {"GetDimension", tsr_engined__master_get_def, {NULL}},
    {"GetInfo", tsr_engined__lib_get_info, {NULL}},
    {"GetLayout", tsr_engined__lib_get_layout, {NULL}},
    {"GetLinkedObjects", tsr_engined__master_get_linked_objects, {NULL}},
    {"GetProperties", tsr_engined__lib_get_properties, {NULL}},
    {"Publish", NI, {NULL}},
    {"SetProperties", tsr_engined__master_set_properties, {"qProp", NULL}},
    {"UnApprove", NI, {NULL}},
    {"UnPublish", NI, {NULL}},
};
#undef NI

const tsr_qix_type_t tsr_engined__dimension_type = {
    .qtype = "GenericDimension",
    .methods = dimension_methods,
    .nmethods = sizeof dimension_methods / sizeof dimension_methods[0],
    .release = tsr_engined__aux_release,
};
