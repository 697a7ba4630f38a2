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
#define DM_MAX_ID 128       /* bytes of a dimension id */
#define DM_MAX_FIELDS 64    /* qFieldDefs of one dimension (a drill-down's levels) */
#define DM_MAX_DEF 65536    /* bytes of one field definition or label */

/* The stored dimension (borrowed; caller holds app->mu), or NULL. */
static json_t *dm_get_locked(tsr_engined__app_t *a, const char *id) {
    json_t *m = json_object_get(json_object_get(a->doc, "dimensions"), id);
    return json_is_object(m) ? m : NULL;
}

static json_t *dm_copy(tsr_engined__doc_t *d, const char *id) {
    pthread_mutex_lock(&d->app->mu);
    json_t *m = json_deep_copy(dm_get_locked(d->app, id));
    pthread_mutex_unlock(&d->app->mu);
    return m;
}

/* The stored properties without engine bookkeeping (what GetProperties answers). */
static json_t *dm_props(json_t *m) {
    json_t *p = json_deep_copy(m);
    json_object_del(p, "creationDate");
    json_object_del(p, "modifiedDate");
    return p;
}

static bool may_edit(tsr_engined__doc_t *d) {
    return (d->actions & TSR_ENGINED_EDIT) != 0;
}

static json_t *dm_layout(tsr_engined__doc_t *d, json_t *m) {
    json_t *l = dm_props(m);
    json_object_del(l, "qMetaDef");
    json_object_set_new(l, "qMeta", tsr_engined__lib_meta(m, may_edit(d)));
    return l;
}

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

/* NULL when p is valid dimension properties; else the offending parameter's name. */
static const char *invalid(json_t *p) {
    if (!json_is_object(p)) {
        return "qProp";
    }
    json_t *info = json_object_get(p, "qInfo");
    json_t *meta = json_object_get(p, "qMetaDef");
    json_t *m = json_object_get(p, "qDim");
    if ((info != NULL && !json_is_object(info)) || (meta != NULL && !json_is_object(meta))) {
        return "qProp";
    }
    if (!json_is_object(m)) {
        return "qDim";
    }
    json_t *labels = json_object_get(m, "qFieldLabels");
    json_t *grouping = json_object_get(m, "qGrouping");
    if (!strings_ok(json_object_get(m, "qFieldDefs"), DM_MAX_FIELDS, true) ||
        (labels != NULL && !strings_ok(labels, DM_MAX_FIELDS, false)) ||
        (grouping != NULL && !json_is_string(grouping))) {
        return "qDim";
    }
    return NULL;
}

/* Every object of the app that may use the dimension changes: this session's and the
 * others'. */
static void changed(tsr_qix_call_t *call, tsr_engined__doc_t *d) {
    tsr_engined__doc_change_all(call, d);
    tsr_engined__app_push(d->app, d, NULL, false);
}

json_t *tsr_engined__dimension_qdef(tsr_engined__doc_t *d, json_t *dim) {
    json_t *qdef = json_object_get(dim, "qDef");
    const char *lib = json_string_value(json_object_get(dim, "qLibraryId"));
    if (lib == NULL || lib[0] == '\0') {
        return json_incref(qdef);
    }
    pthread_mutex_lock(&d->app->mu);
    json_t *ms = json_object_get(dm_get_locked(d->app, lib), "qDim");
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
    tsr_engined__doc_t *d = obj;
    tsr_engined__doc_sync(d);
    json_t *p = NULL;
    tsr_err_t rc = tsr_qix_param_json(call, 0, false, &p);
    if (rc != TSR_OK) {
        return rc;
    }
    if (p == NULL) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMS, "qProp", "Invalid Params");
    }
    const char *bad = invalid(p);
    if (bad != NULL) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMETERS, bad, "Invalid parameters");
    }
    if ((rc = tsr_engined__doc_may(call, d, TSR_ENGINED_EDIT)) != TSR_OK) {
        return rc;
    }
    json_t *info = json_object_get(p, "qInfo");
    char id[DM_MAX_ID + 1];
    if ((rc = tsr_engined__lib_new_id(call, info, "dm-", id, sizeof id)) != TSR_OK) {
        return rc;
    }
    json_t *m = json_deep_copy(p);
    char now[25];
    tsr_time_format_rfc3339(tsr_wall_ms(), now);
    json_t *ninfo = json_object();
    json_object_set_new(ninfo, "qId", json_string(id));
    json_object_set_new(ninfo, "qType", json_string("dimension"));
    json_object_set_new(m, "qInfo", ninfo);
    json_object_set_new(m, "creationDate", json_string(now));
    json_object_set_new(m, "modifiedDate", json_string(now));
    json_t *rinfo = json_deep_copy(ninfo);
    rc = tsr_engined__lib_insert(call, d->app, "dimensions", id, m, DM_MAX_PER_APP,
                                 "Too many dimensions in the app", err);
    if (rc != TSR_OK) {
        json_decref(rinfo);
        return rc;
    }
    json_t *r = json_object();
    json_object_set_new(r, "qInfo", rinfo);
    json_object_set_new(
        r, "qReturn", tsr_engined__aux_open(call, d, TSR_ENGINED__AUX_DIMENSION, id, "dimension"));
    tsr_qix_call_result(call, r);
    changed(call, d);
    return TSR_OK;
}

tsr_err_t tsr_engined__d_get_dimension(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d = obj;
    tsr_engined__doc_sync(d);
    const char *id = NULL;
    tsr_err_t rc = tsr_engined__lib_id_param(call, &id);
    if (rc != TSR_OK) {
        return rc;
    }
    json_t *m = dm_copy(d, id);
    if (m == NULL) {
        return tsr_engined__lib_not_found(call, id);
    }
    json_decref(m);
    tsr_qix_call_result(call, tsr_engined__obj1("qReturn", tsr_engined__aux_open(
                                                               call, d, TSR_ENGINED__AUX_DIMENSION,
                                                               id, "dimension")));
    return TSR_OK;
}

tsr_err_t tsr_engined__d_destroy_dimension(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__doc_t *d = obj;
    tsr_engined__doc_sync(d);
    const char *id = NULL;
    tsr_err_t rc = tsr_engined__lib_id_param(call, &id);
    if (rc != TSR_OK) {
        return rc;
    }
    if ((rc = tsr_engined__doc_may(call, d, TSR_ENGINED_EDIT)) != TSR_OK) {
        return rc;
    }
    char *idc = tsr_xstrdup(id);
    bool found = false;
    tsr_engined__app_t *a = d->app;
    pthread_mutex_lock(&a->mu);
    json_t *m = dm_get_locked(a, idc);
    if (m != NULL) {
        json_t *keep = json_incref(m);
        json_object_del(json_object_get(a->doc, "dimensions"), idc);
        found = true;
        rc = tsr_engined__app_save(a, err);
        if (rc != TSR_OK) {
            json_object_set(json_object_get(a->doc, "dimensions"), idc, keep);
            found = false;
        }
        json_decref(keep);
    }
    pthread_mutex_unlock(&a->mu);
    if (found) {
        tsr_engined__aux_close(call, d, TSR_ENGINED__AUX_DIMENSION, idc);
        changed(call, d);
    }
    free(idc);
    if (rc == TSR_OK) {
        tsr_qix_call_result(call, tsr_engined__obj1("qSuccess", json_boolean(found)));
    }
    return rc;
}

json_t *tsr_engined__dimension_list(tsr_engined__doc_t *d, json_t *def) {
    json_t *items = json_array();
    json_t *data = json_object_get(def, "qData");
    bool edit = may_edit(d);
    const char *k;
    json_t *m;
    pthread_mutex_lock(&d->app->mu);
    json_object_foreach(json_object_get(d->app->doc, "dimensions"), k, m) {
        json_array_append_new(items,
                              tsr_engined__lib_entry(m, tsr_engined__lib_meta(m, edit), data));
    }
    pthread_mutex_unlock(&d->app->mu);
    return tsr_engined__obj1("qItems", items);
}

/* ---- GenericDimension methods -----------------------------------------------------------------
 */

const tsr_engined__lib_kind_t tsr_engined__dimension_kind = {
    .copy = dm_copy, .props = dm_props, .layout = dm_layout};

static json_t *self(tsr_qix_call_t *call, void *obj, tsr_engined__doc_t **d) {
    return tsr_engined__lib_self(call, obj, &tsr_engined__dimension_kind, d);
}

static tsr_err_t m_get_dimension(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    return tsr_engined__lib_get(call, obj, &tsr_engined__dimension_kind, "qDim");
}

static tsr_err_t m_get_linked_objects(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d;
    json_t *m = self(call, obj, &d);
    if (m == NULL) {
        return TSR_EINVAL;
    }
    json_decref(m);
    tsr_qix_call_result(call, tsr_engined__obj1("qItems", json_array()));
    return TSR_OK;
}

/* New properties; the id and dates are kept. */
static tsr_err_t m_set_properties(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__aux_t *x = obj;
    tsr_engined__doc_t *d;
    json_t *m = self(call, obj, &d);
    if (m == NULL) {
        return TSR_EINVAL;
    }
    json_t *p = NULL;
    tsr_err_t rc = tsr_qix_param_json(call, 0, false, &p);
    const char *bad = rc == TSR_OK ? invalid(p) : NULL;
    if (rc == TSR_OK && bad != NULL) {
        rc = tsr_qix_call_error(
            call, json_is_object(p) ? TSR_QIX_ERR_INVALID_PARAMETERS : TSR_QIX_ERR_INVALID_PARAMS,
            bad, "Invalid parameters");
    }
    if (rc == TSR_OK) {
        rc = tsr_engined__doc_may(call, d, TSR_ENGINED_EDIT);
    }
    if (rc != TSR_OK) {
        json_decref(m);
        return rc;
    }
    json_t *n = json_deep_copy(p);
    json_object_set(n, "qInfo", json_object_get(m, "qInfo"));
    json_object_set(n, "creationDate", json_object_get(m, "creationDate"));
    char now[25];
    tsr_time_format_rfc3339(tsr_wall_ms(), now);
    json_object_set_new(n, "modifiedDate", json_string(now));
    json_decref(m);
    tsr_engined__app_t *a = d->app;
    pthread_mutex_lock(&a->mu);
    json_t *old = dm_get_locked(a, x->id);
    if (old == NULL) {
        rc = tsr_engined__lib_not_found(call, x->id);
        json_decref(n);
    } else {
        json_t *keep = json_incref(old);
        json_object_set_new(json_object_get(a->doc, "dimensions"), x->id, n);
        rc = tsr_engined__app_save(a, err);
        if (rc != TSR_OK) {
            json_object_set(json_object_get(a->doc, "dimensions"), x->id, keep);
        }
        json_decref(keep);
    }
    pthread_mutex_unlock(&a->mu);
    if (rc == TSR_OK) {
        tsr_qix_call_result(call, json_object());
        tsr_qix_call_add_change(call, x->handle);
        changed(call, d);
    }
    return rc;
}

#define NI tsr_qix_not_implemented
static const tsr_qix_method_t dimension_methods[] = {
    {"ApplyPatches", NI, {"qPatches", NULL}},
    {"Approve", NI, {NULL}},
    {"GetDimension", m_get_dimension, {NULL}},
    {"GetInfo", tsr_engined__lib_get_info, {NULL}},
    {"GetLayout", tsr_engined__lib_get_layout, {NULL}},
    {"GetLinkedObjects", m_get_linked_objects, {NULL}},
    {"GetProperties", tsr_engined__lib_get_properties, {NULL}},
    {"Publish", NI, {NULL}},
    {"SetProperties", m_set_properties, {"qProp", NULL}},
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
