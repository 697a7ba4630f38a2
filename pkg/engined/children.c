/*
 * Child objects (qix.md §6 GenericObject: CreateChild … SetFullPropertyTree): what nebula's
 * filter pane (sn-filter-pane keeps one listbox child per field and reads them from its
 * qChildList) and Qlik's sheets (a 'sheet' object whose charts are its children) need.
 *
 * A child is an ordinary object of the app (its own id, properties, handle, GetObject works on
 * it) plus a parent link. Children of a persistent object are persistent: the link lives in the
 * app document's "parents" map {childId: parentId}, saved with it. Children of a session object
 * are session objects: the link is the child's obj->parent. A parent's layout lists its children
 * in qChildList when its properties have a qChildListDef; destroying a parent destroys its
 * children (DestroyObject, DestroySessionObject, DestroyChild, SetFullPropertyTree).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engined_int.h"

#define MAX_CHILDREN 1000 /* children of one object */
#define MAX_TREE_DEPTH 8  /* levels of a SetFullPropertyTree / GetFullPropertyTree */
#define MAX_TREE_NODES 2000

/* ---- the parent links ------------------------------------------------------------------------ */

/* Ids of the children of parent_id, in creation order (returned-owned array of strings). */
static json_t *child_ids(tsr_engined__doc_t *d, const char *parent_id, bool persistent) {
    json_t *ids = json_array();
    if (persistent) {
        pthread_mutex_lock(&d->app->mu);
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(d->app->doc, "parents"), k, v) {
            if (json_is_string(v) && strcmp(json_string_value(v), parent_id) == 0) {
                json_array_append_new(ids, json_string(k));
            }
        }
        pthread_mutex_unlock(&d->app->mu);
    } else {
        pthread_mutex_lock(&d->mu);
        for (size_t i = 0; i < d->nobjs; i++) {
            tsr_engined__obj_t *o = d->objs[i];
            if (!o->persistent && o->parent != NULL && strcmp(o->parent, parent_id) == 0) {
                json_array_append_new(ids, json_string(o->id));
            }
        }
        pthread_mutex_unlock(&d->mu);
    }
    return ids;
}

static bool is_child_of(tsr_engined__doc_t *d, const char *id, const char *parent_id,
                        bool persistent) {
    bool yes = false;
    if (persistent) {
        pthread_mutex_lock(&d->app->mu);
        json_t *p = json_object_get(json_object_get(d->app->doc, "parents"), id);
        yes = json_is_string(p) && strcmp(json_string_value(p), parent_id) == 0;
        pthread_mutex_unlock(&d->app->mu);
    } else {
        tsr_engined__obj_t *o = tsr_engined__doc_find_obj(d, id);
        yes = o != NULL && !o->persistent && o->parent != NULL && strcmp(o->parent, parent_id) == 0;
    }
    return yes;
}

/* Properties of object id (returned-owned), NULL when it does not exist. */
static json_t *props_of(tsr_engined__doc_t *d, const char *id, bool persistent) {
    if (!persistent) {
        tsr_engined__obj_t *o = tsr_engined__doc_find_obj(d, id);
        return o != NULL && !o->persistent ? tsr_engined__obj_props(o) : NULL;
    }
    pthread_mutex_lock(&d->app->mu);
    json_t *p = json_deep_copy(json_object_get(json_object_get(d->app->doc, "objects"), id));
    pthread_mutex_unlock(&d->app->mu);
    return p;
}

/* The ObjectInterface of object id: its open handle in this session, else a new one. */
static json_t *iface_of(tsr_qix_call_t *call, tsr_engined__doc_t *d, const char *id,
                        bool persistent) {
    tsr_engined__obj_t *o = tsr_engined__doc_find_obj(d, id);
    if (o == NULL) {
        return tsr_engined__obj_open(call, d, id, persistent, NULL);
    }
    json_t *props = tsr_engined__obj_props(o);
    json_t *iface = json_object();
    json_object_set_new(iface, "qType", json_string("GenericObject"));
    json_object_set_new(iface, "qHandle", json_integer(o->handle));
    json_object_set(iface, "qGenericType",
                    json_object_get(json_object_get(props, "qInfo"), "qType"));
    json_object_set_new(iface, "qGenericId", json_string(o->id));
    json_decref(props);
    return iface;
}

/* The parent's handles (this session's and other sessions') are told its children changed. */
static void parent_changed(tsr_qix_call_t *call, tsr_engined__doc_t *d, const char *parent_id,
                           bool persistent) {
    tsr_engined__obj_t *p = tsr_engined__doc_find_obj(d, parent_id);
    if (p != NULL) {
        tsr_qix_call_add_change(call, p->handle);
    }
    if (persistent) {
        tsr_engined__app_push(d->app, d, parent_id, false);
    }
}

/* ---- create, set, destroy -------------------------------------------------------------------- */

/* A new child of parent_id with properties props (taken): its qInfo.qId when free, else a fresh
 * one. *id_out: the child's id (returned-owned). */
static tsr_err_t child_create(tsr_qix_call_t *call, tsr_engined__doc_t *d, const char *parent_id,
                              bool persistent, json_t *props, char **id_out, tsr_error_t *err) {
    json_t *ids = child_ids(d, parent_id, persistent);
    size_t n = json_array_size(ids);
    json_decref(ids);
    if (n >= MAX_CHILDREN) {
        json_decref(props);
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMETERS, "qProp",
                                  "Too many children");
    }
    json_t *info = json_object_get(props, "qInfo");
    if (!json_is_object(info)) {
        info = json_object();
        json_object_set_new(props, "qInfo", info);
    }
    if (!json_is_string(json_object_get(info, "qType"))) {
        json_object_set_new(info, "qType", json_string(""));
    }
    const char *want = json_string_value(json_object_get(info, "qId"));
    char id[64];
    snprintf(id, sizeof id, "%s", want != NULL && want[0] != '\0' && strlen(want) < 48 ? want : "");
    tsr_engined__app_t *a = d->app;
    tsr_err_t rc = TSR_OK;
    pthread_mutex_lock(&a->mu);
    json_t *objs = json_object_get(a->doc, "objects");
    while (id[0] == '\0' || json_object_get(objs, id) != NULL ||
           tsr_engined__doc_find_obj(d, id) != NULL) {
        char rnd[25];
        tsr_id_new(rnd);
        snprintf(id, sizeof id, "%.12s", rnd);
    }
    json_object_set_new(info, "qId", json_string(id));
    if (persistent) {
        json_t *parents = json_object_get(a->doc, "parents");
        if (!json_is_object(parents)) {
            parents = json_object();
            json_object_set_new(a->doc, "parents", parents);
        }
        json_object_set_new(objs, id, props);
        json_object_set_new(parents, id, json_string(parent_id));
        rc = tsr_engined__app_save(a, err);
        props = NULL;
    }
    pthread_mutex_unlock(&a->mu);
    if (rc != TSR_OK) {
        return rc;
    }
    if (!persistent) {
        json_decref(tsr_engined__obj_open(call, d, id, false, props));
        tsr_engined__obj_t *o = tsr_engined__doc_find_obj(d, id);
        if (o != NULL) {
            o->parent = tsr_xstrdup(parent_id);
        }
    }
    parent_changed(call, d, parent_id, persistent);
    *id_out = tsr_xstrdup(id);
    return TSR_OK;
}

/* Replace the properties of object id (props taken; its id kept). */
static tsr_err_t props_set(tsr_qix_call_t *call, tsr_engined__doc_t *d, const char *id,
                           bool persistent, json_t *props, tsr_error_t *err) {
    json_t *info = json_object_get(props, "qInfo");
    if (!json_is_object(info)) {
        info = json_object();
        json_object_set_new(props, "qInfo", info);
    }
    json_object_set_new(info, "qId", json_string(id));
    if (!json_is_string(json_object_get(info, "qType"))) {
        json_object_set_new(info, "qType", json_string(""));
    }
    tsr_engined__obj_t *o = tsr_engined__doc_find_obj(d, id);
    if (o != NULL) {
        return tsr_engined__obj_set_props(call, o, props, err);
    }
    if (!persistent) {
        json_decref(props);
        return TSR_OK;
    }
    pthread_mutex_lock(&d->app->mu);
    json_object_set_new(json_object_get(d->app->doc, "objects"), id, props);
    tsr_err_t rc = tsr_engined__app_save(d->app, err);
    pthread_mutex_unlock(&d->app->mu);
    tsr_engined__app_push(d->app, d, id, true);
    return rc;
}

/* Destroy object id and, first, its children (depth-first). */
static tsr_err_t destroy_tree(tsr_qix_call_t *call, tsr_engined__doc_t *d, const char *id,
                              bool persistent, int depth, tsr_error_t *err) {
    tsr_err_t rc = TSR_OK;
    if (depth < MAX_TREE_DEPTH) {
        json_t *ids = child_ids(d, id, persistent);
        size_t i;
        json_t *c;
        json_array_foreach(ids, i, c) {
            if (rc == TSR_OK) {
                rc = destroy_tree(call, d, json_string_value(c), persistent, depth + 1, err);
            }
        }
        json_decref(ids);
    }
    tsr_engined__obj_t *o = tsr_engined__doc_find_obj(d, id);
    if (o != NULL && o->persistent == persistent) {
        tsr_qix_call_close_handle(call, o->handle);
    }
    if (persistent && rc == TSR_OK) {
        pthread_mutex_lock(&d->app->mu);
        json_object_del(json_object_get(d->app->doc, "objects"), id);
        json_object_del(json_object_get(d->app->doc, "parents"), id);
        rc = tsr_engined__app_save(d->app, err);
        pthread_mutex_unlock(&d->app->mu);
        tsr_engined__app_push(d->app, d, id, true);
    }
    return rc;
}

tsr_err_t tsr_engined__children_destroy(tsr_qix_call_t *call, tsr_engined__doc_t *d, const char *id,
                                        bool persistent, tsr_error_t *err) {
    json_t *ids = child_ids(d, id, persistent);
    tsr_err_t rc = TSR_OK;
    size_t i;
    json_t *c;
    json_array_foreach(ids, i, c) {
        if (rc == TSR_OK) {
            rc = destroy_tree(call, d, json_string_value(c), persistent, 1, err);
        }
    }
    json_decref(ids);
    return rc;
}

/* ---- the parent's layout ----------------------------------------------------------------------
 */

/* A JSON pointer ("/a/b/0") into v; NULL when it leads nowhere. */
static json_t *pointer(json_t *v, const char *path) {
    if (path == NULL || path[0] != '/') {
        return path != NULL && path[0] == '\0' ? v : NULL;
    }
    const char *p = path + 1;
    while (v != NULL) {
        char tok[256];
        size_t n = 0;
        while (*p != '\0' && *p != '/' && n + 1 < sizeof tok) {
            if (p[0] == '~' && (p[1] == '0' || p[1] == '1')) {
                tok[n++] = p[1] == '0' ? '~' : '/';
                p += 2;
            } else {
                tok[n++] = *p++;
            }
        }
        tok[n] = '\0';
        if (json_is_array(v)) {
            char *end;
            long k = strtol(tok, &end, 10);
            v = *end == '\0' && n > 0 && k >= 0 ? json_array_get(v, (size_t)k) : NULL;
        } else {
            v = json_object_get(v, tok);
        }
        if (*p != '/') {
            break;
        }
        p++;
    }
    return v;
}

json_t *tsr_engined__child_list(tsr_engined__obj_t *o, json_t *def) {
    tsr_engined__doc_t *d = o->doc;
    json_t *items = json_array();
    json_t *ids = child_ids(d, o->id, o->persistent);
    json_t *data = json_object_get(def, "qData");
    size_t i;
    json_t *c;
    json_array_foreach(ids, i, c) {
        json_t *p = props_of(d, json_string_value(c), o->persistent);
        if (p == NULL) {
            continue;
        }
        json_t *it = json_object(), *qd = json_object();
        json_object_set(it, "qInfo", json_object_get(p, "qInfo"));
        json_t *meta = json_object_get(p, "qMetaDef");
        json_object_set_new(it, "qMeta",
                            json_is_object(meta) ? json_deep_copy(meta) : json_object());
        const char *k;
        json_t *ptr;
        json_object_foreach(data, k, ptr) {
            json_t *v = json_is_string(ptr) ? pointer(p, json_string_value(ptr)) : NULL;
            json_object_set_new(qd, k, v != NULL ? json_deep_copy(v) : json_null());
        }
        json_object_set_new(it, "qData", qd);
        json_array_append_new(items, it);
        json_decref(p);
    }
    json_decref(ids);
    return tsr_engined__obj1("qItems", items);
}

/* ---- methods ----------------------------------------------------------------------------------
 */

static tsr_err_t may_edit(tsr_qix_call_t *call, tsr_engined__obj_t *o) {
    return o->persistent ? tsr_engined__doc_may(call, o->doc, TSR_ENGINED_EDIT) : TSR_OK;
}

/* The optional qPropForThis parameter at idx: new properties for the parent itself. */
static tsr_err_t prop_for_this(tsr_qix_call_t *call, tsr_engined__obj_t *o, size_t idx,
                               tsr_error_t *err) {
    json_t *p = NULL;
    tsr_err_t rc = tsr_qix_param_json(call, idx, false, &p);
    if (rc != TSR_OK || !json_is_object(p)) {
        return rc;
    }
    return props_set(call, o->doc, o->id, o->persistent, json_deep_copy(p), err);
}

tsr_err_t tsr_engined__o_create_child(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__obj_t *o = obj;
    json_t *p = NULL;
    tsr_err_t rc = may_edit(call, o);
    if (rc == TSR_OK) {
        rc = tsr_qix_param_json(call, 0, false, &p);
    }
    if (rc != TSR_OK) {
        return rc;
    }
    if (!json_is_object(p)) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMS, "qProp", "Invalid Params");
    }
    char *id = NULL;
    rc = child_create(call, o->doc, o->id, o->persistent, json_deep_copy(p), &id, err);
    if (rc == TSR_OK) {
        rc = prop_for_this(call, o, 1, err);
    }
    if (rc == TSR_OK) {
        json_t *iface = iface_of(call, o->doc, id, o->persistent);
        json_t *props = props_of(o->doc, id, o->persistent);
        json_t *r = json_object();
        json_object_set(r, "qInfo", json_object_get(props, "qInfo"));
        json_object_set_new(r, "qReturn", iface);
        json_decref(props);
        tsr_qix_call_result(call, r);
    }
    free(id);
    return rc;
}

tsr_err_t tsr_engined__o_destroy_child(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__obj_t *o = obj;
    const char *id = NULL;
    tsr_err_t rc = may_edit(call, o);
    if (rc == TSR_OK) {
        rc = tsr_qix_param_string(call, 0, NULL, &id);
    }
    if (rc != TSR_OK) {
        return rc;
    }
    if (id == NULL) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMS, "qId", "Invalid Params");
    }
    char *idc = tsr_xstrdup(id);
    bool found = is_child_of(o->doc, idc, o->id, o->persistent);
    if (found) {
        rc = destroy_tree(call, o->doc, idc, o->persistent, 1, err);
        parent_changed(call, o->doc, o->id, o->persistent);
    }
    free(idc);
    if (rc == TSR_OK) {
        rc = prop_for_this(call, o, 1, err);
    }
    if (rc == TSR_OK) {
        tsr_qix_call_result(call, tsr_engined__obj1("qSuccess", json_boolean(found)));
    }
    return rc;
}

tsr_err_t tsr_engined__o_destroy_all_children(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__obj_t *o = obj;
    tsr_err_t rc = may_edit(call, o);
    if (rc == TSR_OK) {
        rc = tsr_engined__children_destroy(call, o->doc, o->id, o->persistent, err);
        parent_changed(call, o->doc, o->id, o->persistent);
    }
    if (rc == TSR_OK) {
        rc = prop_for_this(call, o, 0, err);
    }
    if (rc == TSR_OK) {
        tsr_qix_call_result(call, json_object());
    }
    return rc;
}

tsr_err_t tsr_engined__o_get_child(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__obj_t *o = obj;
    const char *id = NULL;
    tsr_err_t rc = tsr_qix_param_string(call, 0, NULL, &id);
    if (rc != TSR_OK) {
        return rc;
    }
    if (id == NULL) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMS, "qId", "Invalid Params");
    }
    if (!is_child_of(o->doc, id, o->id, o->persistent)) {
        tsr_error_set(err, TSR_ENOTFOUND, "%s", id);
        return tsr_qix_call_error(call, TSR_QIX_ERR_NOT_FOUND, id, "Object not found");
    }
    char *idc = tsr_xstrdup(id);
    tsr_qix_call_result(call,
                        tsr_engined__obj1("qReturn", iface_of(call, o->doc, idc, o->persistent)));
    free(idc);
    return TSR_OK;
}

tsr_err_t tsr_engined__o_get_child_infos(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__obj_t *o = obj;
    json_t *infos = json_array();
    json_t *ids = child_ids(o->doc, o->id, o->persistent);
    size_t i;
    json_t *c;
    json_array_foreach(ids, i, c) {
        json_t *p = props_of(o->doc, json_string_value(c), o->persistent);
        if (p != NULL) {
            json_array_append(infos, json_object_get(p, "qInfo"));
            json_decref(p);
        }
    }
    json_decref(ids);
    tsr_qix_call_result(call, tsr_engined__obj1("qInfos", infos));
    return TSR_OK;
}

tsr_err_t tsr_engined__o_get_parent(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__obj_t *o = obj;
    char *parent = NULL;
    if (o->persistent) {
        pthread_mutex_lock(&o->doc->app->mu);
        json_t *p = json_object_get(json_object_get(o->doc->app->doc, "parents"), o->id);
        parent = json_is_string(p) ? tsr_xstrdup(json_string_value(p)) : NULL;
        pthread_mutex_unlock(&o->doc->app->mu);
    } else if (o->parent != NULL) {
        parent = tsr_xstrdup(o->parent);
    }
    json_t *pp = parent != NULL ? props_of(o->doc, parent, o->persistent) : NULL;
    if (pp == NULL) {
        free(parent);
        tsr_error_set(err, TSR_ENOTFOUND, "%s", o->id);
        return tsr_qix_call_error(call, TSR_QIX_ERR_NOT_FOUND, o->id, "Object not found");
    }
    json_decref(pp);
    tsr_qix_call_result(
        call, tsr_engined__obj1("qReturn", iface_of(call, o->doc, parent, o->persistent)));
    free(parent);
    return TSR_OK;
}

static json_t *tree_of(tsr_engined__doc_t *d, const char *id, bool persistent, int depth) {
    json_t *e = json_object();
    json_t *p = props_of(d, id, persistent);
    json_object_set_new(e, "qProperty", p != NULL ? p : json_object());
    json_t *kids = json_array();
    if (depth < MAX_TREE_DEPTH) {
        json_t *ids = child_ids(d, id, persistent);
        size_t i;
        json_t *c;
        json_array_foreach(ids, i, c) {
            json_array_append_new(kids, tree_of(d, json_string_value(c), persistent, depth + 1));
        }
        json_decref(ids);
    }
    json_object_set_new(e, "qChildren", kids);
    json_object_set_new(e, "qEmbeddedSnapshotRef", json_null());
    return e;
}

tsr_err_t tsr_engined__o_get_full_property_tree(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__obj_t *o = obj;
    tsr_qix_call_result(call,
                        tsr_engined__obj1("qPropEntry", tree_of(o->doc, o->id, o->persistent, 0)));
    return TSR_OK;
}

/* Count the entries of a property tree (bounded by depth and MAX_TREE_NODES). */
static size_t tree_size(json_t *entry, int depth) {
    if (depth > MAX_TREE_DEPTH) {
        return MAX_TREE_NODES + 1;
    }
    size_t n = 1, i;
    json_t *c;
    json_array_foreach(json_object_get(entry, "qChildren"), i, c) {
        n += tree_size(c, depth + 1);
        if (n > MAX_TREE_NODES) {
            break;
        }
    }
    return n;
}

/* Object id takes entry's qProperty; its children become entry's qChildren: an entry whose
 * qInfo.qId names an existing child updates it, others are created, children not named are
 * destroyed. */
static tsr_err_t set_tree(tsr_qix_call_t *call, tsr_engined__doc_t *d, const char *id,
                          bool persistent, json_t *entry, tsr_error_t *err) {
    json_t *prop = json_object_get(entry, "qProperty");
    tsr_err_t rc = TSR_OK;
    if (json_is_object(prop)) {
        rc = props_set(call, d, id, persistent, json_deep_copy(prop), err);
    }
    json_t *old = child_ids(d, id, persistent);
    json_t *keep = json_object();
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(entry, "qChildren"), i, c) {
        if (rc != TSR_OK) {
            break;
        }
        json_t *cp = json_object_get(c, "qProperty");
        if (!json_is_object(cp)) {
            continue;
        }
        const char *cid = json_string_value(json_object_get(json_object_get(cp, "qInfo"), "qId"));
        char *child = NULL;
        if (cid != NULL && is_child_of(d, cid, id, persistent)) {
            child = tsr_xstrdup(cid);
        } else {
            rc = child_create(call, d, id, persistent, json_deep_copy(cp), &child, err);
        }
        if (rc == TSR_OK) {
            json_object_set_new(keep, child, json_true());
            rc = set_tree(call, d, child, persistent, c, err);
        }
        free(child);
    }
    json_array_foreach(old, i, c) {
        if (rc == TSR_OK && json_object_get(keep, json_string_value(c)) == NULL) {
            rc = destroy_tree(call, d, json_string_value(c), persistent, 1, err);
        }
    }
    json_decref(keep);
    json_decref(old);
    parent_changed(call, d, id, persistent);
    return rc;
}

tsr_err_t tsr_engined__o_set_full_property_tree(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__obj_t *o = obj;
    json_t *entry = NULL;
    tsr_err_t rc = may_edit(call, o);
    if (rc == TSR_OK) {
        rc = tsr_qix_param_json(call, 0, false, &entry);
    }
    if (rc != TSR_OK) {
        return rc;
    }
    if (!json_is_object(entry)) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMS, "qPropEntry", "Invalid Params");
    }
    if (tree_size(entry, 0) > MAX_TREE_NODES) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMETERS, "qPropEntry",
                                  "The property tree is too large");
    }
    json_t *copy = json_deep_copy(entry);
    char *id = tsr_xstrdup(o->id);
    rc = set_tree(call, o->doc, id, o->persistent, copy, err);
    free(id);
    json_decref(copy);
    if (rc == TSR_OK) {
        tsr_qix_call_result(call, json_object());
    }
    return rc;
}
