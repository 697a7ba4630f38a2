/*
 * What the objects kept in the app document (bookmarks, master measures, app variables, app
 * objects) share: the qId parameter, the id of a new object, the insert-and-save under the
 * app's lock, list entries with qData from JSON pointers, qMeta with the privileges, and the
 * getters of their handle types. Handlers run on the session's thread.
 */
#include <stdio.h>
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
