/*
 * What the objects kept in the app document (bookmarks, master measures, app variables, app
 * objects) share: the qId parameter, the id of a new object, the insert-and-save under the
 * app's lock, list entries with qData from JSON pointers, qMeta with the privileges, and the
 * getters of their handle types; and the whole of master measures and dimensions but for
 * their validation and chart resolution (measure.c, dimension.c). Handlers run on the
 * session's thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engined_int.h"

tsr_err_t tsr_engined__lib_id_param(tsr_qix_call_t *call, const char **id) {
    tsr_err_t rc = tsr_qix_param_string(call, 0, NULL, id);
    if (rc == TSR_OK && (*id == NULL || (*id)[0] == '\0')) {
        rc = tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMS, "qId", "Invalid Params");
    }
    return rc;
}

tsr_err_t tsr_engined__lib_not_found(tsr_qix_call_t *call, const char *id) {
    return tsr_qix_call_error(call, TSR_QIX_ERR_NOT_FOUND, id, "Object not found");
}

tsr_err_t tsr_engined__lib_new_id(tsr_qix_call_t *call, json_t *info, const char *prefix, char *id,
                                  size_t size) {
    const char *want = json_string_value(json_object_get(info, "qId"));
    if (want != NULL && want[0] != '\0') {
        if (strlen(want) >= size) {
            return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMETERS, "qId",
                                      "Invalid parameters");
        }
        snprintf(id, size, "%s", want);
    } else {
        char rnd[25];
        tsr_id_new(rnd);
        snprintf(id, size, "%s%s", prefix, rnd);
    }
    return TSR_OK;
}

json_t *tsr_engined__lib_all(tsr_engined__app_t *a, const char *key) {
    json_t *all = json_object_get(a->doc, key);
    if (!json_is_object(all)) {
        all = json_object();
        json_object_set_new(a->doc, key, all);
    }
    return all;
}

tsr_err_t tsr_engined__lib_insert(tsr_qix_call_t *call, tsr_engined__app_t *a, const char *key,
                                  const char *id, json_t *o, size_t max, const char *too_many,
                                  tsr_error_t *err) {
    tsr_err_t rc;
    pthread_mutex_lock(&a->mu);
    json_t *all = tsr_engined__lib_all(a, key);
    if (json_object_get(all, id) != NULL) {
        rc = tsr_qix_call_error(call, TSR_QIX_ERR_ALREADY_EXISTS, id, "Already exists");
        json_decref(o);
    } else if (json_object_size(all) >= max) {
        rc = tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMETERS, "qProp", too_many);
        json_decref(o);
    } else {
        json_object_set_new(all, id, o);
        rc = tsr_engined__app_save(a, err);
        if (rc != TSR_OK) {
            json_object_del(all, id);
        }
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

json_t *tsr_engined__lib_qdata(json_t *o, json_t *data) {
    json_t *qd = json_object();
    const char *dk;
    json_t *ptr;
    json_object_foreach(data, dk, ptr) {
        json_t *v = json_is_string(ptr) ? tsr_engined__ptr_get(o, json_string_value(ptr)) : NULL;
        json_object_set_new(qd, dk, v ? json_deep_copy(v) : json_null());
    }
    return qd;
}

json_t *tsr_engined__lib_entry(json_t *o, json_t *meta, json_t *data) {
    if (meta == NULL) {
        json_t *def = json_object_get(o, "qMetaDef");
        meta = json_is_object(def) ? json_deep_copy(def) : json_object();
    }
    json_t *en = json_object();
    json_object_set(en, "qInfo", json_object_get(o, "qInfo"));
    json_object_set_new(en, "qMeta", meta);
    json_object_set_new(en, "qData", tsr_engined__lib_qdata(o, data));
    return en;
}

json_t *tsr_engined__lib_meta(json_t *o, bool may_edit) {
    json_t *meta = json_object_get(o, "qMetaDef");
    json_t *r = json_is_object(meta) ? json_deep_copy(meta) : json_object();
    json_object_set(r, "createdDate", json_object_get(o, "creationDate"));
    json_object_set(r, "modifiedDate", json_object_get(o, "modifiedDate"));
    json_t *priv = json_array();
    json_array_append_new(priv, json_string("read"));
    if (may_edit) {
        json_array_append_new(priv, json_string("update"));
        json_array_append_new(priv, json_string("delete"));
    }
    json_object_set_new(r, "privileges", priv);
    return r;
}

json_t *tsr_engined__lib_self(tsr_qix_call_t *call, void *obj, const tsr_engined__lib_kind_t *k,
                              tsr_engined__doc_t **d) {
    tsr_engined__aux_t *x = obj;
    *d = x->doc;
    tsr_engined__doc_sync(*d);
    json_t *o = k->copy(*d, x->id);
    if (o == NULL) {
        tsr_engined__lib_not_found(call, x->id);
    }
    return o;
}

tsr_err_t tsr_engined__lib_get(tsr_qix_call_t *call, void *obj, const tsr_engined__lib_kind_t *k,
                               const char *key) {
    tsr_engined__doc_t *d;
    json_t *o = tsr_engined__lib_self(call, obj, k, &d);
    if (o == NULL) {
        return TSR_EINVAL;
    }
    json_t *v;
    if (strcmp(key, "qLayout") == 0) {
        v = k->layout(d, o);
    } else if (strcmp(key, "qProp") == 0) {
        v = k->props != NULL ? k->props(o) : json_incref(o);
    } else {
        v = json_incref(json_object_get(o, key));
    }
    tsr_qix_call_result(call, tsr_engined__obj1(key, v));
    json_decref(o);
    return TSR_OK;
}

/* The kind of an aux handle's object. */
static const tsr_engined__lib_kind_t *kind_of(void *obj) {
    const tsr_engined__aux_t *x = obj;
    return x->kind == TSR_ENGINED__AUX_VARIABLE    ? &tsr_engined__variable_kind
           : x->kind == TSR_ENGINED__AUX_MEASURE   ? &tsr_engined__measure_kind
           : x->kind == TSR_ENGINED__AUX_DIMENSION ? &tsr_engined__dimension_kind
                                                   : &tsr_engined__bookmark_kind;
}

tsr_err_t tsr_engined__lib_get_info(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    return tsr_engined__lib_get(call, obj, kind_of(obj), "qInfo");
}

tsr_err_t tsr_engined__lib_get_layout(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    return tsr_engined__lib_get(call, obj, kind_of(obj), "qLayout");
}

tsr_err_t tsr_engined__lib_get_properties(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    return tsr_engined__lib_get(call, obj, kind_of(obj), "qProp");
}

/* ---- master measures and dimensions ------------------------------------------------------------
 */

#define MASTER_MAX_ID 128 /* bytes of a master item's id */

json_t *tsr_engined__master_get_locked(const tsr_engined__master_t *m, tsr_engined__app_t *a,
                                       const char *id) {
    json_t *o = json_object_get(json_object_get(a->doc, m->key), id);
    return json_is_object(o) ? o : NULL;
}

json_t *tsr_engined__master_copy(const tsr_engined__master_t *m, tsr_engined__doc_t *d,
                                 const char *id) {
    pthread_mutex_lock(&d->app->mu);
    json_t *o = json_deep_copy(tsr_engined__master_get_locked(m, d->app, id));
    pthread_mutex_unlock(&d->app->mu);
    return o;
}

json_t *tsr_engined__master_props(json_t *o) {
    json_t *p = json_deep_copy(o);
    json_object_del(p, "creationDate");
    json_object_del(p, "modifiedDate");
    return p;
}

static bool may_edit(tsr_engined__doc_t *d) {
    return (d->actions & TSR_ENGINED_EDIT) != 0;
}

json_t *tsr_engined__master_layout(tsr_engined__doc_t *d, json_t *o) {
    json_t *l = tsr_engined__master_props(o);
    json_object_del(l, "qMetaDef");
    json_object_set_new(l, "qMeta", tsr_engined__lib_meta(o, may_edit(d)));
    return l;
}

/* NULL when p is valid properties of m's items; else the offending parameter's name. */
static const char *master_invalid(const tsr_engined__master_t *m, json_t *p) {
    if (!json_is_object(p)) {
        return "qProp";
    }
    json_t *info = json_object_get(p, "qInfo");
    json_t *meta = json_object_get(p, "qMetaDef");
    json_t *def = json_object_get(p, m->def_key);
    if ((info != NULL && !json_is_object(info)) || (meta != NULL && !json_is_object(meta))) {
        return "qProp";
    }
    if (!json_is_object(def) || !m->def_ok(def)) {
        return m->def_key;
    }
    return NULL;
}

void tsr_engined__master_changed(tsr_qix_call_t *call, tsr_engined__doc_t *d) {
    tsr_engined__doc_change_all(call, d);
    tsr_engined__app_push(d->app, d, NULL, false);
}

void tsr_engined__master_open(const tsr_engined__master_t *m, tsr_qix_call_t *call,
                              tsr_engined__doc_t *d, const char *id) {
    tsr_qix_call_result(
        call, tsr_engined__obj1("qReturn", tsr_engined__aux_open(call, d, m->aux, id, m->qtype)));
}

tsr_err_t tsr_engined__master_create(const tsr_engined__master_t *m, tsr_qix_call_t *call,
                                     tsr_engined__doc_t *d, tsr_error_t *err) {
    tsr_engined__doc_sync(d);
    json_t *p = NULL;
    tsr_err_t rc = tsr_qix_param_json(call, 0, false, &p);
    if (rc != TSR_OK) {
        return rc;
    }
    if (p == NULL) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMS, "qProp", "Invalid Params");
    }
    const char *bad = master_invalid(m, p);
    if (bad != NULL) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMETERS, bad, "Invalid parameters");
    }
    if ((rc = tsr_engined__doc_may(call, d, TSR_ENGINED_EDIT)) != TSR_OK) {
        return rc;
    }
    json_t *info = json_object_get(p, "qInfo");
    char id[MASTER_MAX_ID + 1];
    if ((rc = tsr_engined__lib_new_id(call, info, m->prefix, id, sizeof id)) != TSR_OK) {
        return rc;
    }
    json_t *o = json_deep_copy(p);
    char now[25];
    tsr_time_format_rfc3339(tsr_wall_ms(), now);
    json_t *ninfo = json_object();
    json_object_set_new(ninfo, "qId", json_string(id));
    json_object_set_new(ninfo, "qType", json_string(m->qtype));
    json_object_set_new(o, "qInfo", ninfo);
    json_object_set_new(o, "creationDate", json_string(now));
    json_object_set_new(o, "modifiedDate", json_string(now));
    json_t *rinfo = json_deep_copy(ninfo);
    rc = tsr_engined__lib_insert(call, d->app, m->key, id, o, m->max_per_app, m->too_many, err);
    if (rc != TSR_OK) {
        json_decref(rinfo);
        return rc;
    }
    json_t *r = json_object();
    json_object_set_new(r, "qInfo", rinfo);
    json_object_set_new(r, "qReturn", tsr_engined__aux_open(call, d, m->aux, id, m->qtype));
    tsr_qix_call_result(call, r);
    tsr_engined__master_changed(call, d);
    return TSR_OK;
}

tsr_err_t tsr_engined__master_get(const tsr_engined__master_t *m, tsr_qix_call_t *call,
                                  tsr_engined__doc_t *d) {
    tsr_engined__doc_sync(d);
    const char *id = NULL;
    tsr_err_t rc = tsr_engined__lib_id_param(call, &id);
    if (rc != TSR_OK) {
        return rc;
    }
    json_t *o = tsr_engined__master_copy(m, d, id);
    if (o == NULL) {
        return tsr_engined__lib_not_found(call, id);
    }
    json_decref(o);
    tsr_engined__master_open(m, call, d, id);
    return TSR_OK;
}

tsr_err_t tsr_engined__master_destroy(const tsr_engined__master_t *m, tsr_qix_call_t *call,
                                      tsr_engined__doc_t *d, tsr_error_t *err) {
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
    json_t *o = tsr_engined__master_get_locked(m, a, idc);
    if (o != NULL) {
        json_t *keep = json_incref(o);
        json_object_del(json_object_get(a->doc, m->key), idc);
        found = true;
        rc = tsr_engined__app_save(a, err);
        if (rc != TSR_OK) {
            json_object_set(json_object_get(a->doc, m->key), idc, keep);
            found = false;
        }
        json_decref(keep);
    }
    pthread_mutex_unlock(&a->mu);
    if (found) {
        tsr_engined__aux_close(call, d, m->aux, idc);
        tsr_engined__master_changed(call, d);
    }
    free(idc);
    if (rc == TSR_OK) {
        tsr_qix_call_result(call, tsr_engined__obj1("qSuccess", json_boolean(found)));
    }
    return rc;
}

json_t *tsr_engined__master_list(const tsr_engined__master_t *m, tsr_engined__doc_t *d,
                                 json_t *def) {
    json_t *items = json_array();
    json_t *data = json_object_get(def, "qData");
    bool edit = may_edit(d);
    const char *k;
    json_t *o;
    pthread_mutex_lock(&d->app->mu);
    json_object_foreach(json_object_get(d->app->doc, m->key), k, o) {
        json_array_append_new(items,
                              tsr_engined__lib_entry(o, tsr_engined__lib_meta(o, edit), data));
    }
    pthread_mutex_unlock(&d->app->mu);
    return tsr_engined__obj1("qItems", items);
}

/* The master of a GenericMeasure or GenericDimension handle. */
static const tsr_engined__master_t *master_of(void *obj) {
    const tsr_engined__aux_t *x = obj;
    return x->kind == TSR_ENGINED__AUX_MEASURE ? &tsr_engined__measure_master
                                               : &tsr_engined__dimension_master;
}

tsr_err_t tsr_engined__master_get_def(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    return tsr_engined__lib_get(call, obj, kind_of(obj), master_of(obj)->def_key);
}

tsr_err_t tsr_engined__master_get_linked_objects(tsr_qix_call_t *call, void *obj,
                                                 tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d;
    json_t *o = tsr_engined__lib_self(call, obj, kind_of(obj), &d);
    if (o == NULL) {
        return TSR_EINVAL;
    }
    json_decref(o);
    tsr_qix_call_result(call, tsr_engined__obj1("qItems", json_array()));
    return TSR_OK;
}

/* New properties; the id and dates are kept. */
tsr_err_t tsr_engined__master_set_properties(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__aux_t *x = obj;
    const tsr_engined__master_t *ms = master_of(obj);
    tsr_engined__doc_t *d;
    json_t *m = tsr_engined__lib_self(call, obj, kind_of(obj), &d);
    if (m == NULL) {
        return TSR_EINVAL;
    }
    json_t *p = NULL;
    tsr_err_t rc = tsr_qix_param_json(call, 0, false, &p);
    const char *bad = rc == TSR_OK ? master_invalid(ms, p) : NULL;
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
    json_t *old = tsr_engined__master_get_locked(ms, a, x->id);
    if (old == NULL) {
        rc = tsr_engined__lib_not_found(call, x->id);
        json_decref(n);
    } else {
        json_t *keep = json_incref(old);
        json_object_set_new(json_object_get(a->doc, ms->key), x->id, n);
        rc = tsr_engined__app_save(a, err);
        if (rc != TSR_OK) {
            json_object_set(json_object_get(a->doc, ms->key), x->id, keep);
        }
        json_decref(keep);
    }
    pthread_mutex_unlock(&a->mu);
    if (rc == TSR_OK) {
        tsr_qix_call_result(call, json_object());
        tsr_qix_call_add_change(call, x->handle);
        tsr_engined__master_changed(call, d);
    }
    return rc;
}
