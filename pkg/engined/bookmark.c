/*
 * Bookmarks (Doc CreateBookmark/ApplyBookmark/GetBookmark/GetBookmarks/DestroyBookmark and the
 * GenericBookmark handle type). A bookmark keeps the selection state by field name and value
 * text (never symbol indexes), so it applies to the model of any later reload; values that no
 * longer exist are skipped. Bookmarks live in the app document ("bookmarks": {qId: props}),
 * saved with it at once, so they survive reloads and restarts. A bookmark belongs to the user
 * who created it (qMeta.owner): others neither see nor change it (private bookmarks, as in
 * Qlik Cloud before publishing). Every alternate state is kept and applied too. Handlers run on
 * the session's thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engined_int.h"

#define BM_MAX_PER_APP 5000  /* bookmarks of one app */
#define BM_MAX_VALUES 100000 /* selected values stored in one bookmark */
#define BM_MAX_ID 128        /* bytes of a bookmark id */

static const char *user_of(tsr_engined__doc_t *d) {
    const char *u = tsr_qix_session_user(d->s);
    return u != NULL ? u : "";
}

/* The bookmark's stored properties (borrowed; caller holds app->mu) when d's user may see it. */
static json_t *bm_get_locked(tsr_engined__doc_t *d, const char *id) {
    json_t *b = json_object_get(json_object_get(d->app->doc, "bookmarks"), id);
    const char *owner = json_string_value(json_object_get(b, "owner"));
    if (b == NULL || owner == NULL || strcmp(owner, user_of(d)) != 0) {
        return NULL;
    }
    return b;
}

/* A copy (returned-owned) of a bookmark d's user may see, or NULL. */
static json_t *bm_copy(tsr_engined__doc_t *d, const char *id) {
    pthread_mutex_lock(&d->app->mu);
    json_t *b = json_deep_copy(bm_get_locked(d, id));
    pthread_mutex_unlock(&d->app->mu);
    return b;
}

/* The stored properties without engine bookkeeping (what GetProperties answers). */
static json_t *bm_props(json_t *b) {
    json_t *p = json_deep_copy(b);
    json_object_del(p, "owner");
    return p;
}

/* The owner may do anything with a private bookmark. */
static json_t *bm_meta(json_t *b) {
    json_t *m = tsr_engined__lib_meta(b, true);
    json_object_set_new(m, "published", json_false());
    json_object_set_new(m, "approved", json_false());
    return m;
}

static json_t *bm_layout(tsr_engined__doc_t *d, json_t *b) {
    (void)d;
    json_t *l = bm_props(b);
    json_object_del(l, "qMetaDef");
    json_object_set_new(l, "qMeta", bm_meta(b));
    return l;
}

/* The qFieldItems of the selection in d->sel; *total counts the values (capped). */
static tsr_err_t capture_items(tsr_qix_call_t *call, tsr_engined__doc_t *d, size_t *total,
                               json_t **out) {
    json_t *items = json_array();
    const tsr_engine_model_t *m = d->model != NULL ? d->model->m : NULL;
    for (size_t f = 0; m != NULL && f < tsr_engine_model_field_count(m); f++) {
        size_t n = tsr_engine_selection_selected(d->sel, f, NULL, 0);
        if (n == 0) {
            continue;
        }
        *total += n;
        if (*total > BM_MAX_VALUES) {
            json_decref(items);
            return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMETERS, "qProp",
                                      "Too many selected values for a bookmark");
        }
        size_t *syms = tsr_xcalloc(n, sizeof *syms);
        n = tsr_engine_selection_selected(d->sel, f, syms, n);
        json_t *vals = json_array();
        for (size_t i = 0; i < n; i++) {
            tsr_engine_dual_t v;
            if (tsr_engine_model_field_symbol(m, f, syms[i], &v) != TSR_OK) {
                continue;
            }
            json_t *fv = json_object();
            json_object_set_new(fv, "qText", json_stringn(v.text, v.text_len));
            json_object_set_new(fv, "qIsNumeric", json_boolean(v.is_num));
            tsr_engined__set_num(fv, "qNumber", v.num, v.is_num);
            json_array_append_new(vals, fv);
        }
        free(syms);
        json_t *it = json_object(), *def = json_object(), *si = json_object();
        json_object_set_new(def, "qName", json_string(tsr_engine_model_field_name(m, f)));
        json_object_set_new(def, "qType", json_string("PRESENT"));
        json_object_set_new(it, "qDef", def);
        json_object_set_new(si, "qRangeLo", json_string("NaN"));
        json_object_set_new(si, "qRangeHi", json_string("NaN"));
        json_object_set_new(si, "qSelectFieldSearch", json_false());
        json_object_set_new(it, "qSelectInfo", si);
        json_object_set_new(it, "qValues", vals);
        json_object_set_new(it, "qExcludedValues", json_array());
        json_object_set_new(it, "qLocked", json_boolean(tsr_engine_selection_is_locked(d->sel, f)));
        json_array_append_new(items, it);
    }
    *out = items;
    return TSR_OK;
}

/* NxBookmark of the doc's selections: qStateData [{qStateName, qFieldItems}], the default
 * state first, then each alternate state. */
static tsr_err_t capture(tsr_qix_call_t *call, tsr_engined__doc_t *d, json_t **out) {
    json_t *names = tsr_engined__state_names(d);
    json_array_insert_new(names, 0, json_string("$"));
    json_t *states = json_array();
    size_t total = 0, i;
    json_t *nm;
    tsr_err_t rc = TSR_OK;
    json_array_foreach(names, i, nm) {
        const char *sn = json_string_value(nm);
        int sw = tsr_engined__state_swap(d, sn);
        if (sw < 0) {
            continue;
        }
        json_t *items = NULL;
        rc = capture_items(call, d, &total, &items);
        if (sw > 0) {
            tsr_engined__state_swap(d, sn);
        }
        if (rc != TSR_OK) {
            break;
        }
        json_t *state = json_object();
        json_object_set_new(state, "qStateName", json_string(sn));
        json_object_set_new(state, "qFieldItems", items);
        json_array_append_new(states, state);
    }
    json_decref(names);
    if (rc != TSR_OK) {
        json_decref(states);
        return rc;
    }
    json_t *bm = json_object();
    json_object_set_new(bm, "qStateData", states);
    json_object_set_new(bm, "qVariableItems", json_array());
    json_object_set_new(bm, "qPatches", json_array());
    *out = bm;
    return TSR_OK;
}

/* Make the doc's selection the bookmark's: every unlocked field cleared, then each stored field
 * selected by value text. Fields or values missing from today's model are skipped. */
static void apply(tsr_qix_call_t *call, tsr_engined__doc_t *d, json_t *b) {
    if (d->sel == NULL) {
        return;
    }
    json_t *states = json_object_get(json_object_get(b, "qBookmark"), "qStateData");
    size_t i, j, k;
    json_t *st, *it, *v;
    json_array_foreach(states, i, st) {
        const char *sn = json_string_value(json_object_get(st, "qStateName"));
        /* A state the app no longer has is skipped. */
        int sw = tsr_engined__state_swap(d, sn);
        if (sw < 0 || d->sel == NULL) {
            if (sw > 0) {
                tsr_engined__state_swap(d, sn);
            }
            continue;
        }
        tsr_engine_selection_clear_all(d->sel);
        tsr_engine_state_destroy(d->state);
        d->state = NULL;
        json_array_foreach(json_object_get(st, "qFieldItems"), j, it) {
            const char *fname =
                json_string_value(json_object_get(json_object_get(it, "qDef"), "qName"));
            size_t f;
            if (fname == NULL || tsr_engined__doc_field(d, fname, &f, NULL) != TSR_OK) {
                continue;
            }
            json_t *vals = json_object_get(it, "qValues");
            size_t n = json_array_size(vals), c = 0;
            const char **texts = tsr_xcalloc(n + 1, sizeof *texts);
            json_array_foreach(vals, k, v) {
                const char *t = json_string_value(json_object_get(v, "qText"));
                if (t != NULL) {
                    texts[c++] = t;
                }
            }
            if (c > 0) {
                tsr_engine_selection_select_text(d->sel, f, texts, c, false, NULL);
            }
            free(texts);
        }
        if (sw > 0) {
            tsr_engine_state_destroy(d->state);
            d->state = NULL;
            tsr_engined__state_swap(d, sn);
        }
    }
    tsr_engined__doc_selection_changed(call, d);
}

/* ---- Doc methods ------------------------------------------------------------------------------
 */

tsr_err_t tsr_engined__d_create_bookmark(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
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
    json_t *info = json_object_get(p, "qInfo");
    json_t *meta = json_object_get(p, "qMetaDef");
    if ((info != NULL && !json_is_object(info)) || (meta != NULL && !json_is_object(meta))) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMETERS, "qProp",
                                  "Invalid parameters");
    }
    char id[BM_MAX_ID + 1];
    if ((rc = tsr_engined__lib_new_id(call, info, "bm-", id, sizeof id)) != TSR_OK) {
        return rc;
    }
    json_t *bm = NULL;
    if ((rc = capture(call, d, &bm)) != TSR_OK) {
        return rc;
    }
    json_t *b = json_deep_copy(p);
    char now[25];
    tsr_time_format_rfc3339(tsr_wall_ms(), now);
    json_object_set_new(bm, "qUtcModifyTime",
                        json_real((double)tsr_wall_ms() / 86400000.0 + 25569.0));
    json_object_set_new(b, "qBookmark", bm);
    json_t *ninfo = json_object();
    json_object_set_new(ninfo, "qId", json_string(id));
    const char *type = json_string_value(json_object_get(info, "qType"));
    json_object_set_new(ninfo, "qType", json_string(type != NULL && type[0] ? type : "bookmark"));
    json_object_set_new(b, "qInfo", ninfo);
    json_object_set_new(b, "owner", json_string(user_of(d)));
    json_object_set_new(b, "creationDate", json_string(now));
    json_object_set_new(b, "modifiedDate", json_string(now));
    json_t *rinfo = json_deep_copy(ninfo);
    rc = tsr_engined__lib_insert(call, d->app, "bookmarks", id, b, BM_MAX_PER_APP,
                                 "Too many bookmarks in the app", err);
    if (rc != TSR_OK) {
        json_decref(rinfo);
        return rc;
    }
    json_t *r = json_object();
    json_object_set_new(r, "qInfo", rinfo);
    json_object_set_new(r, "qReturn",
                        tsr_engined__aux_open(call, d, TSR_ENGINED__AUX_BOOKMARK, id,
                                              type != NULL && type[0] ? type : "bookmark"));
    tsr_qix_call_result(call, r);
    /* Bookmark lists (qBookmarkListDef) of the session show the new one. */
    tsr_engined__doc_change_all(call, d);
    return TSR_OK;
}

tsr_err_t tsr_engined__d_apply_bookmark(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d = obj;
    tsr_engined__doc_sync(d);
    const char *id = NULL;
    tsr_err_t rc = tsr_engined__lib_id_param(call, &id);
    if (rc != TSR_OK) {
        return rc;
    }
    json_t *b = bm_copy(d, id);
    if (b == NULL) {
        return tsr_engined__lib_not_found(call, id);
    }
    apply(call, d, b);
    json_decref(b);
    tsr_qix_call_result(call, tsr_engined__obj1("qSuccess", json_true()));
    return TSR_OK;
}

tsr_err_t tsr_engined__d_get_bookmark(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d = obj;
    tsr_engined__doc_sync(d);
    const char *id = NULL;
    tsr_err_t rc = tsr_engined__lib_id_param(call, &id);
    if (rc != TSR_OK) {
        return rc;
    }
    json_t *b = bm_copy(d, id);
    if (b == NULL) {
        return tsr_engined__lib_not_found(call, id);
    }
    const char *type = json_string_value(json_object_get(json_object_get(b, "qInfo"), "qType"));
    tsr_qix_call_result(
        call, tsr_engined__obj1("qReturn", tsr_engined__aux_open(call, d, TSR_ENGINED__AUX_BOOKMARK,
                                                                 id, type ? type : "bookmark")));
    json_decref(b);
    return TSR_OK;
}

/* NxContainerEntry {qInfo, qMeta, qData} of every bookmark d's user may see, of the types asked
 * (none: all), qData from the JSON pointers in data. */
static json_t *entries(tsr_engined__doc_t *d, json_t *types, json_t *data) {
    json_t *list = json_array();
    const char *k;
    json_t *b;
    pthread_mutex_lock(&d->app->mu);
    json_object_foreach(json_object_get(d->app->doc, "bookmarks"), k, b) {
        if (bm_get_locked(d, k) == NULL) {
            continue;
        }
        json_t *info = json_object_get(b, "qInfo");
        if (json_array_size(types) > 0) {
            bool match = false;
            size_t i;
            json_t *t;
            json_array_foreach(types, i, t) {
                match = match || json_equal(t, json_object_get(info, "qType"));
            }
            if (!match) {
                continue;
            }
        }
        json_array_append_new(list, tsr_engined__lib_entry(b, bm_meta(b), data));
    }
    pthread_mutex_unlock(&d->app->mu);
    return list;
}

json_t *tsr_engined__bookmark_list(tsr_engined__doc_t *d, json_t *def) {
    json_t *type = json_object_get(def, "qType");
    json_t *types = json_array();
    if (json_is_string(type)) {
        json_array_append(types, type);
    }
    json_t *items = entries(d, types, json_object_get(def, "qData"));
    json_decref(types);
    return tsr_engined__obj1("qItems", items);
}

tsr_err_t tsr_engined__d_get_bookmarks(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d = obj;
    tsr_engined__doc_sync(d);
    json_t *opts = NULL;
    tsr_err_t rc = tsr_qix_param_json(call, 0, false, &opts);
    if (rc != TSR_OK) {
        return rc;
    }
    json_t *types = json_object_get(opts, "qTypes");
    if (types != NULL && !json_is_array(types)) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMS, "qOptions", "Invalid Params");
    }
    tsr_qix_call_result(
        call, tsr_engined__obj1("qList", entries(d, types, json_object_get(opts, "qData"))));
    return TSR_OK;
}

tsr_err_t tsr_engined__d_destroy_bookmark(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__doc_t *d = obj;
    tsr_engined__doc_sync(d);
    const char *id = NULL;
    tsr_err_t rc = tsr_engined__lib_id_param(call, &id);
    if (rc != TSR_OK) {
        return rc;
    }
    char *idc = tsr_xstrdup(id);
    bool found = false;
    tsr_engined__app_t *a = d->app;
    pthread_mutex_lock(&a->mu);
    if (bm_get_locked(d, idc) != NULL) {
        json_object_del(json_object_get(a->doc, "bookmarks"), idc);
        found = true;
        rc = tsr_engined__app_save(a, err);
    }
    pthread_mutex_unlock(&a->mu);
    if (found) {
        tsr_engined__aux_close(call, d, TSR_ENGINED__AUX_BOOKMARK, idc);
        tsr_engined__doc_change_all(call, d);
    }
    free(idc);
    if (rc == TSR_OK) {
        tsr_qix_call_result(call, tsr_engined__obj1("qSuccess", json_boolean(found)));
    }
    return rc;
}

/* ---- GenericBookmark methods ------------------------------------------------------------------
 */

const tsr_engined__lib_kind_t tsr_engined__bookmark_kind = {
    .copy = bm_copy, .props = bm_props, .layout = bm_layout};

static json_t *self(tsr_qix_call_t *call, void *obj, tsr_engined__doc_t **d) {
    return tsr_engined__lib_self(call, obj, &tsr_engined__bookmark_kind, d);
}

static tsr_err_t b_apply(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d;
    json_t *b = self(call, obj, &d);
    if (b == NULL) {
        return TSR_EINVAL;
    }
    apply(call, d, b);
    json_decref(b);
    tsr_qix_call_result(call, tsr_engined__obj1("qSuccess", json_true()));
    return TSR_OK;
}

/* New properties; the id, owner, dates and the stored selection (unless a qBookmark is given)
 * are kept. */
static tsr_err_t b_set_properties(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__aux_t *x = obj;
    tsr_engined__doc_t *d;
    json_t *b = self(call, obj, &d);
    if (b == NULL) {
        return TSR_EINVAL;
    }
    json_t *p = NULL;
    tsr_err_t rc = tsr_qix_param_json(call, 0, false, &p);
    if (rc == TSR_OK && !json_is_object(p)) {
        rc = tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMS, "qProp", "Invalid Params");
    }
    json_t *bm = json_object_get(p, "qBookmark");
    if (rc == TSR_OK && bm != NULL && !json_is_object(bm)) {
        rc = tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMETERS, "qBookmark",
                                "Invalid parameters");
    }
    if (rc != TSR_OK) {
        json_decref(b);
        return rc;
    }
    json_t *n = json_deep_copy(p);
    json_object_set(n, "qInfo", json_object_get(b, "qInfo"));
    if (bm == NULL) {
        json_object_set(n, "qBookmark", json_object_get(b, "qBookmark"));
    }
    json_object_set(n, "owner", json_object_get(b, "owner"));
    json_object_set(n, "creationDate", json_object_get(b, "creationDate"));
    char now[25];
    tsr_time_format_rfc3339(tsr_wall_ms(), now);
    json_object_set_new(n, "modifiedDate", json_string(now));
    json_decref(b);
    tsr_engined__app_t *a = d->app;
    pthread_mutex_lock(&a->mu);
    if (bm_get_locked(d, x->id) == NULL) {
        rc = tsr_engined__lib_not_found(call, x->id);
        json_decref(n);
    } else {
        json_object_set_new(json_object_get(a->doc, "bookmarks"), x->id, n);
        rc = tsr_engined__app_save(a, err);
    }
    pthread_mutex_unlock(&a->mu);
    if (rc == TSR_OK) {
        tsr_qix_call_add_change(call, x->handle);
        tsr_engined__doc_change_all(call, d);
    }
    return rc;
}

#define NI tsr_qix_not_implemented
static const tsr_qix_method_t bookmark_methods[] = {
    {"Apply", b_apply, {NULL}},
    {"ApplyPatches", NI, {"qPatches", NULL}},
    {"Approve", NI, {NULL}},
    {"GetFieldValues", NI, {"qField", "qGetExcludedValues", "qDataPage", NULL}},
    {"GetInfo", tsr_engined__lib_get_info, {NULL}},
    {"GetLayout", tsr_engined__lib_get_layout, {NULL}},
    {"GetProperties", tsr_engined__lib_get_properties, {NULL}},
    {"Publish", NI, {NULL}},
    {"SetProperties", b_set_properties, {"qProp", NULL}},
    {"UnApprove", NI, {NULL}},
    {"UnPublish", NI, {NULL}},
};
#undef NI

const tsr_qix_type_t tsr_engined__bookmark_type = {
    .qtype = "GenericBookmark",
    .methods = bookmark_methods,
    .nmethods = sizeof bookmark_methods / sizeof bookmark_methods[0],
    .release = tsr_engined__aux_release,
};
