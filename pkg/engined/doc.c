/*
 * The Doc handle type: one per session that opened an app. App layout and properties, the
 * load script and reloads, the data model's tables and fields, the session's selection state
 * (ClearAll, Back/Forward, locks) and the objects it opens. Handlers run on the session's
 * thread; the app they share is touched under its mu.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h" /* the expression parser (CheckExpression) */
#include "engined_int.h"
#include "log.h"

json_t *tsr_engined__obj1(const char *key, json_t *value) {
    json_t *o = json_object();
    json_object_set_new(o, key, value);
    return o;
}

/* ---- selection state ------------------------------------------------------------------------ */

/* Re-apply old's selections (by value text, per field name) to sel over model m. */
void tsr_engined__carry_selections(const tsr_engine_model_t *old_m,
                                   const tsr_engine_selection_t *old, const tsr_engine_model_t *m,
                                   tsr_engine_selection_t *sel) {
    for (size_t f = 0; f < tsr_engine_model_field_count(old_m); f++) {
        size_t nf;
        if (tsr_engine_model_field_find(m, tsr_engine_model_field_name(old_m, f), &nf) != TSR_OK) {
            continue;
        }
        size_t n = tsr_engine_model_field_symbol_count(old_m, f), k = 0;
        char **texts = NULL;
        for (size_t y = 0; y < n; y++) {
            tsr_engine_dual_t v;
            if (tsr_engine_selection_is_selected(old, f, y) &&
                tsr_engine_model_field_symbol(old_m, f, y, &v) == TSR_OK) {
                texts = tsr_xrealloc(texts, (k + 1) * sizeof *texts);
                texts[k++] = tsr_xstrndup(v.text, v.text_len);
            }
        }
        if (k > 0) {
            tsr_engine_selection_select_text(sel, nf, (const char *const *)texts, k, false, NULL);
        }
        for (size_t i = 0; i < k; i++) {
            free(texts[i]);
        }
        free(texts);
    }
}

void tsr_engined__doc_sync(tsr_engined__doc_t *d) {
    tsr_engined__app_t *a = d->app;
    pthread_mutex_lock(&a->mu);
    if (a->model != d->model) {
        tsr_engined__model_t *old = d->model;
        tsr_engine_selection_t *old_sel = d->sel;
        d->model = a->model;
        d->sel = NULL;
        if (d->model != NULL) {
            d->model->refs++;
            d->sel = tsr_engine_selection_create(d->model->m);
            if (old != NULL && old_sel != NULL) {
                tsr_engined__carry_selections(old->m, old_sel, d->model->m, d->sel);
            }
        }
        tsr_engined__state_rebase(d, old != NULL ? old->m : NULL,
                                  d->model != NULL ? d->model->m : NULL);
        /* State and selection point into their model: free them before it. */
        tsr_engine_state_destroy(d->state);
        d->state = NULL;
        tsr_engine_selection_destroy(old_sel);
        tsr_engined__model_unref(a, old);
        d->back_count = d->forward_count = 0;
    }
    pthread_mutex_unlock(&a->mu);
}

tsr_engine_state_t *tsr_engined__doc_state(tsr_engined__doc_t *d, tsr_error_t *err) {
    if (d->model == NULL) {
        return NULL;
    }
    if (d->state == NULL &&
        tsr_engine_state_compute(d->model->m, d->sel, &d->state, err) != TSR_OK) {
        d->state = NULL;
    }
    return d->state;
}

void tsr_engined__doc_change_all(tsr_qix_call_t *call, tsr_engined__doc_t *d) {
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->nobjs; i++) {
        tsr_qix_call_add_change(call, d->objs[i]->handle);
    }
    /* A variable defined by an expression ("=Sum(x)") follows the selection. */
    for (size_t i = 0; i < d->naux; i++) {
        if (d->aux[i]->kind == TSR_ENGINED__AUX_VARIABLE) {
            tsr_qix_call_add_change(call, d->aux[i]->handle);
        }
    }
    pthread_mutex_unlock(&d->mu);
}

void tsr_engined__doc_change_lists(tsr_qix_call_t *call, tsr_engined__doc_t *d) {
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->nobjs; i++) {
        if (d->objs[i]->lists_objects) {
            tsr_qix_call_add_change(call, d->objs[i]->handle);
        }
    }
    pthread_mutex_unlock(&d->mu);
}

void tsr_engined__doc_selection_changed(tsr_qix_call_t *call, tsr_engined__doc_t *d) {
    tsr_engine_state_destroy(d->state);
    d->state = NULL;
    d->back_count++;
    d->forward_count = 0;
    if (d->modal != NULL) {
        d->modal->made_selections = true;
    }
    tsr_engined__doc_change_all(call, d);
}

tsr_err_t tsr_engined__doc_field(tsr_engined__doc_t *d, const char *name, size_t *f,
                                 tsr_error_t *err) {
    if (d->model == NULL || name == NULL) {
        return tsr_error_set(err, TSR_ENOTFOUND, "no field %s", name ? name : "");
    }
    if (name[0] == '[') {
        /* [Field With Spaces] as written in expressions. */
        size_t n = strlen(name);
        char buf[TSR_ENGINE_MAX_NAME + 1];
        if (n >= 2 && name[n - 1] == ']' && n - 2 <= TSR_ENGINE_MAX_NAME) {
            memcpy(buf, name + 1, n - 2);
            buf[n - 2] = '\0';
            if (tsr_engine_model_field_find(d->model->m, buf, f) == TSR_OK) {
                return TSR_OK;
            }
        }
    }
    if (tsr_engine_model_field_find(d->model->m, name, f) != TSR_OK) {
        return tsr_error_set(err, TSR_ENOTFOUND, "no field %s", name);
    }
    return TSR_OK;
}

tsr_err_t tsr_engined__doc_may(tsr_qix_call_t *call, tsr_engined__doc_t *d, unsigned action) {
    if ((d->actions & action) == action) {
        return TSR_OK;
    }
    return tsr_qix_call_error(call, TSR_QIX_ERR_ACCESS_DENIED, tsr_qix_call_method(call),
                              "Access denied");
}

static tsr_engined__doc_t *doc_of(tsr_qix_call_t *call, void *obj) {
    tsr_engined__doc_t *d = obj;
    int h = tsr_qix_call_handle(call);
    if (d->handle != h) {
        /* Other threads read it (under mu) to push changes. */
        pthread_mutex_lock(&d->mu);
        d->handle = h;
        pthread_mutex_unlock(&d->mu);
    }
    tsr_engined__doc_sync(d);
    return d;
}

static void doc_release(void *obj) {
    tsr_engined__doc_t *d = obj;
    tsr_engined__app_t *a = d->app;
    /* Unregistered before it is freed: pushes from other threads look the doc up under a->mu. */
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < a->ndocs; i++) {
        if (a->docs[i] == d) {
            a->docs[i] = a->docs[--a->ndocs];
            break;
        }
    }
    tsr_engine_state_destroy(d->state);
    tsr_engine_selection_destroy(d->sel);
    tsr_engined__state_free(d);
    tsr_engined__model_unref(a, d->model);
    a->last_used_ms = tsr_mono_ms();
    pthread_mutex_unlock(&a->mu);
    tsr_engined__evict(a->e, NULL);
    free(d->objs);
    free(d->aux);
    json_decref(d->svars);
    free(d->tenant_id);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

/* ---- app layout, properties, script -----------------------------------------------------------
 */

static json_t *locale_info(void) {
    static const char *const days[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
    static const char *const ldays[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                        "Friday", "Saturday", "Sunday"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    static const char *const lmonths[] = {"January",   "February", "March",    "April",
                                          "May",       "June",     "July",     "August",
                                          "September", "October",  "November", "December"};
    json_t *cal = json_object(), *a;
    a = json_array();
    for (size_t i = 0; i < 7; i++) {
        json_array_append_new(a, json_string(days[i]));
    }
    json_object_set_new(cal, "qDayNames", a);
    a = json_array();
    for (size_t i = 0; i < 7; i++) {
        json_array_append_new(a, json_string(ldays[i]));
    }
    json_object_set_new(cal, "qLongDayNames", a);
    a = json_array();
    for (size_t i = 0; i < 12; i++) {
        json_array_append_new(a, json_string(months[i]));
    }
    json_object_set_new(cal, "qMonthNames", a);
    a = json_array();
    for (size_t i = 0; i < 12; i++) {
        json_array_append_new(a, json_string(lmonths[i]));
    }
    json_object_set_new(cal, "qLongMonthNames", a);
    json_t *l = json_object();
    json_object_set_new(l, "qDecimalSep", json_string("."));
    json_object_set_new(l, "qThousandSep", json_string(","));
    json_object_set_new(l, "qListSep", json_string(","));
    json_object_set_new(l, "qMoneyDecimalSep", json_string("."));
    json_object_set_new(l, "qMoneyThousandSep", json_string(","));
    json_object_set_new(l, "qCurrentYear", json_integer(2026));
    json_object_set_new(l, "qMoneyFmt", json_string("$#,##0.00;-$#,##0.00"));
    json_object_set_new(l, "qTimeFmt", json_string("hh:mm:ss"));
    json_object_set_new(l, "qDateFmt", json_string("YYYY-MM-DD"));
    json_object_set_new(l, "qTimestampFmt", json_string("YYYY-MM-DD hh:mm:ss[.fff]"));
    json_object_set_new(l, "qCalendarStrings", cal);
    json_object_set_new(l, "qFirstWeekDay", json_integer(0));
    json_object_set_new(l, "qBrokenWeeks", json_false());
    json_object_set_new(l, "qReferenceDay", json_integer(4));
    json_object_set_new(l, "qFirstMonthOfYear", json_integer(1));
    json_object_set_new(l, "qCollation", json_string("en-US"));
    json_object_set_new(l, "qNumericalAbbreviation",
                        json_string("3:k;6:M;9:G;12:T;15:P;18:E;21:Z;24:Y;-3:m;-6:μ;-9:n;-12:p"));
    return l;
}

static tsr_err_t d_get_app_layout(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d = doc_of(call, obj);
    tsr_engined__app_t *a = d->app;
    json_t *l = json_object();
    pthread_mutex_lock(&a->mu);
    const char *script = json_string_value(json_object_get(a->doc, "script"));
    json_object_set(l, "qTitle", json_object_get(a->doc, "title"));
    json_object_set_new(l, "qFileName", json_string(a->id));
    json_object_set(l, "qLastReloadTime", json_object_get(a->doc, "lastReloadTime"));
    json_object_set_new(l, "qModified", json_false());
    json_object_set_new(l, "qHasScript", json_boolean(script != NULL && script[0] != '\0'));
    json_t *meta = json_object_get(json_object_get(a->doc, "properties"), "qMetaDef");
    json_object_set_new(l, "qMeta", json_is_object(meta) ? json_deep_copy(meta) : json_object());
    json_object_set_new(l, "qLocaleInfo", locale_info());
    json_object_set_new(l, "qHasData", json_boolean(a->model != NULL));
    json_object_set_new(l, "qReadOnly", json_false());
    json_object_set_new(l, "qIsOpenedWithoutData", json_false());
    json_object_set_new(l, "qIsSessionApp", json_false());
    json_object_set_new(l, "qThumbnail", tsr_engined__obj1("qUrl", json_string("")));
    /* Custom app properties are echoed, as for generic objects. */
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(a->doc, "properties"), k, v) {
        if (k[0] != 'q') {
            json_object_set_new(l, k, json_deep_copy(v));
        }
    }
    pthread_mutex_unlock(&a->mu);
    json_object_set_new(l, "qStateNames", tsr_engined__state_names(d));
    tsr_qix_call_result(call, tsr_engined__obj1("qLayout", l));
    return TSR_OK;
}

static tsr_err_t d_get_app_properties(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d = doc_of(call, obj);
    pthread_mutex_lock(&d->app->mu);
    json_t *p = json_deep_copy(json_object_get(d->app->doc, "properties"));
    if (!json_is_object(p)) {
        json_decref(p);
        p = json_object();
    }
    json_object_set(p, "qTitle", json_object_get(d->app->doc, "title"));
    pthread_mutex_unlock(&d->app->mu);
    tsr_qix_call_result(call, tsr_engined__obj1("qProp", p));
    return TSR_OK;
}

static tsr_err_t d_set_app_properties(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__doc_t *d = doc_of(call, obj);
    json_t *p = NULL;
    tsr_err_t rc = tsr_engined__doc_may(call, d, TSR_ENGINED_EDIT);
    if (rc == TSR_OK) {
        rc = tsr_qix_param_json(call, 0, false, &p);
    }
    if (rc != TSR_OK) {
        return rc;
    }
    if (p == NULL) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMS, "qProp", "Invalid Params");
    }
    pthread_mutex_lock(&d->app->mu);
    json_t *title = json_object_get(p, "qTitle");
    if (json_is_string(title)) {
        json_object_set(d->app->doc, "title", title);
    }
    json_t *copy = json_deep_copy(p);
    json_object_del(copy, "qTitle");
    json_object_set_new(d->app->doc, "properties", copy);
    rc = tsr_engined__app_save(d->app, err);
    pthread_mutex_unlock(&d->app->mu);
    if (rc == TSR_OK) {
        tsr_qix_call_add_change(call, d->handle);
        tsr_engined__app_push(d->app, d, NULL, false);
    }
    return rc;
}

static tsr_err_t d_get_script(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d = doc_of(call, obj);
    pthread_mutex_lock(&d->app->mu);
    json_t *s = json_object_get(d->app->doc, "script");
    tsr_qix_call_result(call, tsr_engined__obj1("qScript", s ? json_incref(s) : json_string("")));
    pthread_mutex_unlock(&d->app->mu);
    return TSR_OK;
}

#define TSR_ENGINED__MAX_SCRIPT (16u << 20) /* bytes */

static tsr_err_t d_set_script(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__doc_t *d = doc_of(call, obj);
    const char *script = NULL;
    tsr_err_t rc = tsr_engined__doc_may(call, d, TSR_ENGINED_EDIT);
    if (rc == TSR_OK) {
        rc = tsr_qix_param_string(call, 0, "", &script);
    }
    if (rc != TSR_OK) {
        return rc;
    }
    if (strlen(script) > TSR_ENGINED__MAX_SCRIPT) {
        return tsr_error_set(err, TSR_ETOOBIG, "qScript");
    }
    pthread_mutex_lock(&d->app->mu);
    json_object_set_new(d->app->doc, "script", json_string(script));
    rc = tsr_engined__app_save(d->app, err);
    pthread_mutex_unlock(&d->app->mu);
    return rc;
}

static tsr_err_t d_get_empty_script(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)obj;
    (void)err;
    tsr_qix_call_result(
        call, tsr_engined__obj1(
                  "qReturn",
                  json_string("SET ThousandSep=',';\nSET DecimalSep='.';\n"
                              "SET DateFormat='YYYY-MM-DD';\n"
                              "SET TimestampFormat='YYYY-MM-DD hh:mm:ss[.fff]';\n"
                              "SET MonthNames='Jan;Feb;Mar;Apr;May;Jun;Jul;Aug;Sep;Oct;Nov;Dec';\n"
                              "SET DayNames='Mon;Tue;Wed;Thu;Fri;Sat;Sun';\n")));
    return TSR_OK;
}

/* Reload: on success every open handle of every session of the app changed. A script error
 * keeps the previous model and answers false (the log says why). */
static bool do_reload(tsr_qix_call_t *call, tsr_engined__doc_t *d) {
    char *log = NULL;
    tsr_error_t rerr = {0};
    tsr_err_t rc = tsr_engined__app_reload(d->app, &log, &rerr);
    tsr_log_ctx_t ctx = {.tenant_id = d->tenant_id, .user_id = tsr_qix_session_user(d->s)};
    if (rc != TSR_OK) {
        tsr_log_info(&ctx, "engined: app %s reload failed: %s", d->app->id, rerr.msg);
    } else {
        tsr_log_info(&ctx, "engined: app %s reloaded", d->app->id);
        tsr_engined__doc_sync(d);
        tsr_engined__evict(d->app->e, d->app);
        tsr_qix_call_add_change(call, d->handle);
        tsr_engined__doc_change_all(call, d);
        tsr_engined__app_push(d->app, d, NULL, false);
    }
    free(log);
    return rc == TSR_OK;
}

static tsr_err_t d_do_reload(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d = doc_of(call, obj);
    if (tsr_engined__doc_may(call, d, TSR_ENGINED_RELOAD) != TSR_OK) {
        return TSR_EINVAL;
    }
    bool ok = do_reload(call, d);
    tsr_qix_call_result(call, tsr_engined__obj1("qReturn", json_boolean(ok)));
    return TSR_OK;
}

static tsr_err_t d_do_reload_ex(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d = doc_of(call, obj);
    if (tsr_engined__doc_may(call, d, TSR_ENGINED_RELOAD) != TSR_OK) {
        return TSR_EINVAL;
    }
    bool ok = do_reload(call, d);
    json_t *r = json_object();
    json_object_set_new(r, "qSuccess", json_boolean(ok));
    json_object_set_new(r, "qScriptLogFile", json_string(""));
    json_object_set_new(r, "qEndedWithMemoryConstraint", json_false());
    tsr_qix_call_result(call, tsr_engined__obj1("qResult", r));
    return TSR_OK;
}

static tsr_err_t d_do_save(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__doc_t *d = doc_of(call, obj);
    pthread_mutex_lock(&d->app->mu);
    tsr_err_t rc = tsr_engined__app_save(d->app, err);
    pthread_mutex_unlock(&d->app->mu);
    return rc;
}

/* ---- data model ------------------------------------------------------------------------------ */

/* Tables holding field f (JSON array of names). */
static json_t *field_tables(const tsr_engine_model_t *m, size_t f) {
    json_t *a = json_array();
    for (size_t t = 0; t < tsr_engine_model_table_count(m); t++) {
        for (size_t c = 0; c < tsr_engine_model_table_field_count(m, t); c++) {
            if (tsr_engine_model_table_field(m, t, c) == f) {
                json_array_append_new(a, json_string(tsr_engine_model_table_name(m, t)));
            }
        }
    }
    return a;
}

static tsr_err_t d_get_tables_and_keys(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d = doc_of(call, obj);
    json_t *qtr = json_array(), *qk = json_array();
    tsr_engined__doc_sync(d);
    if (d->model != NULL) {
        const tsr_engine_model_t *m = d->model->m;
        for (size_t t = 0; t < tsr_engine_model_table_count(m); t++) {
            json_t *tr = json_object(), *fields = json_array();
            size_t rows = tsr_engine_model_table_rows(m, t);
            json_object_set_new(tr, "qName", json_string(tsr_engine_model_table_name(m, t)));
            json_object_set_new(tr, "qLoose", json_false());
            json_object_set_new(tr, "qNoOfRows", json_integer((json_int_t)rows));
            for (size_t c = 0; c < tsr_engine_model_table_field_count(m, t); c++) {
                size_t f = tsr_engine_model_table_field(m, t, c);
                json_t *tables = field_tables(m, f);
                bool key = json_array_size(tables) > 1;
                json_decref(tables);
                json_t *fd = json_object();
                json_object_set_new(fd, "qName", json_string(tsr_engine_model_field_name(m, f)));
                json_object_set_new(fd, "qOriginalFields", json_array());
                json_object_set_new(fd, "qPresent", json_true());
                json_object_set_new(fd, "qHasNull", json_false());
                json_object_set_new(fd, "qHasWild", json_false());
                json_object_set_new(fd, "qHasDuplicates", json_false());
                json_object_set_new(fd, "qIsSynthetic", json_false());
                json_object_set_new(fd, "qInformationDensity", json_real(1.0));
                json_object_set_new(fd, "qnNonNulls", json_integer((json_int_t)rows));
                json_object_set_new(fd, "qnRows", json_integer((json_int_t)rows));
                json_object_set_new(fd, "qSubsetRatio", json_real(1.0));
                json_object_set_new(
                    fd, "qnTotalDistinctValues",
                    json_integer((json_int_t)tsr_engine_model_field_symbol_count(m, f)));
                json_object_set_new(
                    fd, "qnPresentDistinctValues",
                    json_integer((json_int_t)tsr_engine_model_field_symbol_count(m, f)));
                json_object_set_new(fd, "qKeyType", json_string(key ? "ANY_KEY" : "NOT_KEY"));
                json_object_set_new(fd, "qComment", json_string(""));
                json_object_set_new(fd, "qTags", json_array());
                json_array_append_new(fields, fd);
            }
            json_object_set_new(tr, "qFields", fields);
            json_t *pos = json_object();
            json_object_set_new(pos, "qx", json_integer((json_int_t)(t * 200)));
            json_object_set_new(pos, "qy", json_integer(0));
            json_object_set_new(tr, "qPos", pos);
            json_object_set_new(tr, "qComment", json_string(""));
            json_object_set_new(tr, "qIsDirectDiscovery", json_false());
            json_object_set_new(tr, "qIsSynthetic", json_false());
            json_object_set_new(tr, "qTableTags", json_array());
            json_array_append_new(qtr, tr);
        }
        for (size_t f = 0; f < tsr_engine_model_field_count(m); f++) {
            json_t *tables = field_tables(m, f);
            if (json_array_size(tables) > 1) {
                json_t *k = json_object();
                json_t *kf = json_array();
                json_array_append_new(kf, json_string(tsr_engine_model_field_name(m, f)));
                json_object_set_new(k, "qKeyFields", kf);
                json_object_set_new(k, "qTables", tables);
                json_array_append_new(qk, k);
            } else {
                json_decref(tables);
            }
        }
    }
    json_t *r = json_object();
    json_object_set_new(r, "qtr", qtr);
    json_object_set_new(r, "qk", qk);
    tsr_qix_call_result(call, r);
    return TSR_OK;
}

static tsr_err_t d_get_field_description(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__doc_t *d = doc_of(call, obj);
    const char *name = NULL;
    size_t f;
    tsr_err_t rc = tsr_qix_param_string(call, 0, NULL, &name);
    if (rc != TSR_OK || (rc = tsr_engined__doc_field(d, name, &f, err)) != TSR_OK) {
        return rc;
    }
    const tsr_engine_model_t *m = d->model->m;
    json_t *fd = json_object();
    size_t card = tsr_engine_model_field_symbol_count(m, f);
    json_object_set_new(fd, "qInternalNumber", json_integer((json_int_t)f));
    json_object_set_new(fd, "qName", json_string(tsr_engine_model_field_name(m, f)));
    json_object_set_new(fd, "qSrcTables", field_tables(m, f));
    json_object_set_new(fd, "qIsSystem", json_false());
    json_object_set_new(fd, "qIsHidden", json_false());
    json_object_set_new(fd, "qIsSemantic", json_false());
    json_object_set_new(fd, "qDistinctOnly", json_false());
    json_object_set_new(fd, "qCardinal", json_integer((json_int_t)card));
    json_object_set_new(fd, "qTotalCount", json_integer((json_int_t)card));
    json_object_set_new(fd, "qIsLocked", json_false());
    json_object_set_new(fd, "qAlwaysOneSelected", json_false());
    json_object_set_new(fd, "qAndMode", json_false());
    json_object_set_new(fd, "qIsNumeric", json_false());
    json_object_set_new(fd, "qComment", json_string(""));
    json_object_set_new(fd, "qTags", json_array());
    json_object_set_new(fd, "qIsDefinitionOnly", json_false());
    json_object_set_new(fd, "qByteSize", json_integer(0));
    tsr_qix_call_result(call, tsr_engined__obj1("qReturn", fd));
    return TSR_OK;
}

static tsr_err_t d_get_field(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__doc_t *d = doc_of(call, obj);
    const char *name = NULL;
    size_t f;
    const char *state = NULL;
    tsr_err_t rc = tsr_qix_param_string(call, 0, NULL, &name);
    if (rc == TSR_OK) {
        rc = tsr_qix_param_string(call, 1, NULL, &state);
    }
    if (rc != TSR_OK || (rc = tsr_engined__doc_field(d, name, &f, err)) != TSR_OK) {
        return rc;
    }
    int sw = tsr_engined__state_swap(d, state);
    if (sw < 0) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMETERS, "qStateName",
                                  "No such state");
    }
    if (sw > 0) {
        tsr_engined__state_swap(d, state);
    }
    tsr_engined__field_t *fl = tsr_xcalloc(1, sizeof *fl);
    fl->doc = d;
    fl->field = f;
    fl->name = tsr_xstrdup(tsr_engine_model_field_name(d->model->m, f));
    fl->state = sw > 0 ? tsr_xstrdup(state) : NULL;
    json_t *iface = NULL;
    tsr_qix_call_open_handle(call,
                             sw > 0 ? &tsr_engined__field_state_type : &tsr_engined__field_type, fl,
                             NULL, NULL, &iface);
    tsr_qix_call_result(call, tsr_engined__obj1("qReturn", iface));
    return TSR_OK;
}

static tsr_err_t d_get_locale_info(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    doc_of(call, obj);
    tsr_qix_call_result(call, tsr_engined__obj1("qReturn", locale_info()));
    return TSR_OK;
}

/* ---- expressions -------------------------------------------------------------------------- */

static tsr_err_t d_evaluate(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__doc_t *d = doc_of(call, obj);
    const char *expr = NULL;
    tsr_err_t rc = tsr_qix_param_string(call, 0, "", &expr);
    if (rc != TSR_OK) {
        return rc;
    }
    char text[TSR_ERROR_MSG_MAX + 16];
    double v;
    bool is_num;
    tsr_error_t eerr = {0};
    if (tsr_engined__evaluate(d, tsr_engined__doc_state(d, err), expr, &v, &is_num, text,
                              sizeof text, &eerr) != TSR_OK) {
        /* Qlik answers a bad expression with an error text, not an RPC error. */
        snprintf(text, sizeof text, "Error: %s", eerr.msg);
    }
    tsr_qix_call_result(call, tsr_engined__obj1("qReturn", json_string(text)));
    return TSR_OK;
}

static tsr_err_t d_evaluate_ex(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__doc_t *d = doc_of(call, obj);
    const char *expr = NULL;
    tsr_err_t rc = tsr_qix_param_string(call, 0, "", &expr);
    if (rc != TSR_OK) {
        return rc;
    }
    char text[256];
    double v;
    bool is_num;
    tsr_engined__evaluate(d, tsr_engined__doc_state(d, err), expr, &v, &is_num, text, sizeof text,
                          NULL);
    json_t *val = json_object();
    json_object_set_new(val, "qText", json_string(text));
    json_object_set_new(val, "qIsNumeric", json_boolean(is_num));
    tsr_engined__set_num(val, "qNumber", v, is_num);
    tsr_qix_call_result(call, tsr_engined__obj1("qValue", val));
    return TSR_OK;
}

/* ---- selections -------------------------------------------------------------------------------
 */

static tsr_err_t d_clear_all(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d = doc_of(call, obj);
    bool locked_also = false;
    const char *state = NULL;
    tsr_err_t rc = tsr_qix_param_bool(call, 0, false, &locked_also);
    if (rc == TSR_OK) {
        rc = tsr_qix_param_string(call, 1, NULL, &state);
    }
    if (rc != TSR_OK) {
        return rc;
    }
    tsr_engined__doc_sync(d);
    int sw = tsr_engined__state_swap(d, state);
    if (sw < 0) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMETERS, "qStateName",
                                  "No such state");
    }
    if (d->sel != NULL) {
        if (locked_also) {
            for (size_t f = 0; f < tsr_engine_model_field_count(d->model->m); f++) {
                tsr_engine_selection_lock(d->sel, f, false, NULL);
            }
        }
        tsr_engine_selection_clear_all(d->sel);
        tsr_engined__doc_selection_changed(call, d);
    }
    if (sw > 0) {
        tsr_engined__state_swap(d, state);
    }
    return TSR_OK;
}

static tsr_err_t d_back(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d = doc_of(call, obj);
    tsr_engined__doc_sync(d);
    if (d->sel != NULL && tsr_engine_selection_back(d->sel) == TSR_OK) {
        tsr_engine_state_destroy(d->state);
        d->state = NULL;
        d->back_count = d->back_count ? d->back_count - 1 : 0;
        d->forward_count++;
        tsr_engined__doc_change_all(call, d);
    }
    return TSR_OK;
}

static tsr_err_t d_forward(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d = doc_of(call, obj);
    tsr_engined__doc_sync(d);
    if (d->sel != NULL && tsr_engine_selection_forward(d->sel) == TSR_OK) {
        tsr_engine_state_destroy(d->state);
        d->state = NULL;
        d->back_count++;
        d->forward_count = d->forward_count ? d->forward_count - 1 : 0;
        tsr_engined__doc_change_all(call, d);
    }
    return TSR_OK;
}

static tsr_err_t d_back_count(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d = doc_of(call, obj);
    tsr_qix_call_result(call,
                        tsr_engined__obj1("qReturn", json_integer((json_int_t)d->back_count)));
    return TSR_OK;
}

static tsr_err_t d_forward_count(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d = doc_of(call, obj);
    tsr_qix_call_result(call,
                        tsr_engined__obj1("qReturn", json_integer((json_int_t)d->forward_count)));
    return TSR_OK;
}

static tsr_err_t lock_all(tsr_qix_call_t *call, void *obj, bool locked) {
    tsr_engined__doc_t *d = doc_of(call, obj);
    const char *state = NULL;
    tsr_err_t rc = tsr_qix_param_string(call, 0, NULL, &state);
    if (rc != TSR_OK) {
        return rc;
    }
    tsr_engined__doc_sync(d);
    int sw = tsr_engined__state_swap(d, state);
    if (sw < 0) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMETERS, "qStateName",
                                  "No such state");
    }
    if (d->sel != NULL) {
        for (size_t f = 0; f < tsr_engine_model_field_count(d->model->m); f++) {
            tsr_engine_selection_lock(d->sel, f, locked, NULL);
        }
        tsr_engine_state_destroy(d->state);
        d->state = NULL;
        tsr_engined__doc_change_all(call, d);
    }
    if (sw > 0) {
        tsr_engined__state_swap(d, state);
    }
    return TSR_OK;
}

static tsr_err_t d_lock_all(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    return lock_all(call, obj, true);
}

static tsr_err_t d_unlock_all(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    return lock_all(call, obj, false);
}

static tsr_err_t d_abort_modal(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d = doc_of(call, obj);
    bool accept = false;
    tsr_err_t rc = tsr_qix_param_bool(call, 0, false, &accept);
    if (rc != TSR_OK) {
        return rc;
    }
    tsr_engined__obj_t *o = d->modal;
    if (o != NULL) {
        if (!accept && d->sel != NULL) {
            while (d->back_count > d->modal_back && tsr_engine_selection_back(d->sel) == TSR_OK) {
                d->back_count--;
            }
            tsr_engine_state_destroy(d->state);
            d->state = NULL;
            tsr_engined__doc_change_all(call, d);
        }
        o->in_selections = o->made_selections = false;
        d->modal = NULL;
        tsr_qix_call_add_change(call, o->handle);
    }
    return TSR_OK;
}

/* ---- objects ----------------------------------------------------------------------------------
 */

/* props' qInfo.qId, assigning a fresh id when it is missing or empty. */
static const char *ensure_id(tsr_engined__doc_t *d, json_t *props) {
    json_t *info = json_object_get(props, "qInfo");
    if (!json_is_object(info)) {
        info = json_object();
        json_object_set_new(props, "qInfo", info);
    }
    const char *id = json_string_value(json_object_get(info, "qId"));
    if (id == NULL || id[0] == '\0') {
        char buf[40];
        char rnd[25];
        tsr_id_new(rnd);
        snprintf(buf, sizeof buf, "%.8s%u", rnd, ++d->next_obj);
        json_object_set_new(info, "qId", json_string(buf));
        id = json_string_value(json_object_get(info, "qId"));
    }
    if (!json_is_string(json_object_get(info, "qType"))) {
        json_object_set_new(info, "qType", json_string(""));
    }
    return id;
}

#define TSR_ENGINED__MAX_PROPS (4u << 20) /* bytes of one object's properties */

static tsr_err_t props_param(tsr_qix_call_t *call, json_t **out) {
    json_t *p = NULL;
    tsr_err_t rc = tsr_qix_param_json(call, 0, false, &p);
    if (rc != TSR_OK) {
        return rc;
    }
    if (p == NULL) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMS, "qProp", "Invalid Params");
    }
    *out = json_deep_copy(p);
    return TSR_OK;
}

static tsr_err_t d_create_session_object(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d = doc_of(call, obj);
    json_t *props = NULL;
    tsr_err_t rc = props_param(call, &props);
    if (rc != TSR_OK) {
        return rc;
    }
    const char *id = ensure_id(d, props);
    if (tsr_engined__doc_find_obj(d, id) != NULL) {
        json_decref(props);
        return tsr_qix_call_error(call, TSR_QIX_ERR_ALREADY_EXISTS, id, "Already exists");
    }
    char *idc = tsr_xstrdup(id);
    json_t *iface = tsr_engined__obj_open(call, d, idc, false, props);
    free(idc);
    tsr_qix_call_result(call, tsr_engined__obj1("qReturn", iface));
    return TSR_OK;
}

static tsr_err_t d_create_object(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__doc_t *d = doc_of(call, obj);
    json_t *props = NULL;
    tsr_err_t rc = tsr_engined__doc_may(call, d, TSR_ENGINED_EDIT);
    if (rc == TSR_OK) {
        rc = props_param(call, &props);
    }
    if (rc != TSR_OK) {
        return rc;
    }
    char *id = tsr_xstrdup(ensure_id(d, props));
    tsr_engined__app_t *a = d->app;
    pthread_mutex_lock(&a->mu);
    json_t *objs = json_object_get(a->doc, "objects");
    if (json_object_get(objs, id) != NULL || tsr_engined__doc_find_obj(d, id) != NULL) {
        pthread_mutex_unlock(&a->mu);
        json_decref(props);
        rc = tsr_qix_call_error(call, TSR_QIX_ERR_ALREADY_EXISTS, id, "Already exists");
        free(id);
        return rc;
    }
    json_t *info = json_deep_copy(json_object_get(props, "qInfo"));
    json_object_set_new(objs, id, props);
    rc = tsr_engined__app_save(a, err);
    pthread_mutex_unlock(&a->mu);
    if (rc == TSR_OK) {
        json_t *iface = tsr_engined__obj_open(call, d, id, true, NULL);
        tsr_engined__app_push(a, d, "", true);
        tsr_engined__doc_change_lists(call, d);
        json_t *r = json_object();
        json_object_set_new(r, "qInfo", info);
        json_object_set_new(r, "qReturn", iface);
        tsr_qix_call_result(call, r);
    } else {
        json_decref(info);
    }
    free(id);
    return rc;
}

static tsr_err_t d_get_object(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__doc_t *d = doc_of(call, obj);
    const char *id = NULL;
    tsr_err_t rc = tsr_qix_param_string(call, 0, NULL, &id);
    if (rc != TSR_OK) {
        return rc;
    }
    if (id == NULL) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMS, "qId", "Invalid Params");
    }
    tsr_engined__obj_t *o = tsr_engined__doc_find_obj(d, id);
    json_t *iface = NULL;
    pthread_mutex_lock(&d->app->mu);
    bool exists = json_object_get(json_object_get(d->app->doc, "objects"), id) != NULL;
    pthread_mutex_unlock(&d->app->mu);
    if (o != NULL && (!o->persistent || exists)) {
        /* Already open in this session: the same handle (enigma reuses its proxy). */
        json_t *props = tsr_engined__obj_props(o);
        json_t *info = json_object_get(props, "qInfo");
        iface = json_object();
        json_object_set_new(iface, "qType", json_string("GenericObject"));
        json_object_set_new(iface, "qHandle", json_integer(o->handle));
        json_object_set(iface, "qGenericType", json_object_get(info, "qType"));
        json_object_set_new(iface, "qGenericId", json_string(o->id));
        json_decref(props);
    } else {
        if (!exists) {
            /* nebula compares code 2 and this exact message before creating the object. */
            tsr_error_set(err, TSR_ENOTFOUND, "%s", id);
            return tsr_qix_call_error(call, TSR_QIX_ERR_NOT_FOUND, id, "Object not found");
        }
        iface = tsr_engined__obj_open(call, d, id, true, NULL);
    }
    tsr_qix_call_result(call, tsr_engined__obj1("qReturn", iface));
    return TSR_OK;
}

static tsr_err_t destroy_object(tsr_qix_call_t *call, void *obj, bool persistent,
                                tsr_error_t *err) {
    tsr_engined__doc_t *d = doc_of(call, obj);
    const char *id = NULL;
    tsr_err_t rc = tsr_qix_param_string(call, 0, NULL, &id);
    if (rc != TSR_OK) {
        return rc;
    }
    if (id == NULL) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMS, "qId", "Invalid Params");
    }
    if (persistent && (rc = tsr_engined__doc_may(call, d, TSR_ENGINED_EDIT)) != TSR_OK) {
        return rc;
    }
    bool found = false;
    char *idc = tsr_xstrdup(id);
    /* A parent takes its children with it (children.c). */
    rc = tsr_engined__children_destroy(call, d, idc, persistent, err);
    if (rc != TSR_OK) {
        free(idc);
        return rc;
    }
    tsr_engined__obj_t *o = tsr_engined__doc_find_obj(d, idc);
    if (o != NULL && o->persistent == persistent) {
        tsr_qix_call_close_handle(call, o->handle);
        found = true;
    }
    if (persistent) {
        pthread_mutex_lock(&d->app->mu);
        json_t *objs = json_object_get(d->app->doc, "objects");
        if (json_object_get(objs, idc) != NULL) {
            json_object_del(objs, idc);
            json_object_del(json_object_get(d->app->doc, "parents"), idc); /* a child's link */
            found = true;
            rc = tsr_engined__app_save(d->app, err);
        }
        pthread_mutex_unlock(&d->app->mu);
        if (found) {
            tsr_engined__app_push(d->app, d, idc, true);
            tsr_engined__doc_change_lists(call, d);
        }
    }
    free(idc);
    if (rc == TSR_OK) {
        tsr_qix_call_result(call, tsr_engined__obj1("qSuccess", json_boolean(found)));
    }
    return rc;
}

static tsr_err_t d_destroy_session_object(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    return destroy_object(call, obj, false, err);
}

static tsr_err_t d_destroy_object(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    return destroy_object(call, obj, true, err);
}

/* NxInfo of every persistent object (and the session's own session objects when asked). */
static json_t *all_infos(tsr_engined__doc_t *d, json_t *types, bool with_session) {
    json_t *out = json_array();
    pthread_mutex_lock(&d->app->mu);
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(d->app->doc, "objects"), k, v) {
        json_array_append(out, json_object_get(v, "qInfo"));
    }
    pthread_mutex_unlock(&d->app->mu);
    if (with_session) {
        pthread_mutex_lock(&d->mu);
        for (size_t i = 0; i < d->nobjs; i++) {
            if (!d->objs[i]->persistent) {
                json_array_append(out, json_object_get(d->objs[i]->props, "qInfo"));
            }
        }
        pthread_mutex_unlock(&d->mu);
    }
    if (json_array_size(types) > 0) {
        json_t *filtered = json_array();
        size_t i, j;
        json_t *info, *t;
        json_array_foreach(out, i, info) {
            json_array_foreach(types, j, t) {
                if (json_equal(json_object_get(info, "qType"), t)) {
                    json_array_append(filtered, info);
                    break;
                }
            }
        }
        json_decref(out);
        out = filtered;
    }
    return out;
}

static tsr_err_t d_get_all_infos(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d = doc_of(call, obj);
    tsr_qix_call_result(call, tsr_engined__obj1("qInfos", all_infos(d, NULL, false)));
    return TSR_OK;
}

static tsr_err_t d_get_objects(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d = doc_of(call, obj);
    json_t *opts = NULL;
    tsr_err_t rc = tsr_qix_param_json(call, 0, false, &opts);
    if (rc != TSR_OK) {
        return rc;
    }
    json_t *infos = all_infos(d, json_object_get(opts, "qTypes"),
                              json_is_true(json_object_get(opts, "qIncludeSessionObjects")));
    json_t *list = json_array();
    size_t i;
    json_t *info;
    json_array_foreach(infos, i, info) {
        json_t *en = json_object();
        json_object_set(en, "qInfo", info);
        json_object_set_new(en, "qMeta", json_object());
        json_object_set_new(en, "qData", json_object());
        json_array_append_new(list, en);
    }
    json_decref(infos);
    tsr_qix_call_result(call, tsr_engined__obj1("qList", list));
    return TSR_OK;
}

/* Generated from enigma.js's schema 12.2027.0: every Doc method, the unoffered ones answering
 * 20 "Not implemented". */
/* ---- CheckExpression / CheckNumberOrExpression ------------------------------------------------
 */

#define CHECK_MAX_EXPR 65536 /* bytes of an expression to check */
#define CHECK_MAX_BAD 256    /* bad field names reported */

typedef struct {
    tsr_engined__doc_t *d;
    const char *text; /* the checked expression (after "=") */
    json_t *labels;   /* qLabels: names that are not fields but fine */
    json_t *bad;      /* [{qFrom, qCount}] */
    json_t *bad_names;
    size_t from; /* where the next name is looked for in text */
} check_t;

static bool check_known(check_t *c, const char *name, size_t n) {
    char buf[TSR_ENGINE_MAX_NAME + 3];
    if (n == 0 || n > TSR_ENGINE_MAX_NAME + 2) {
        return false;
    }
    memcpy(buf, name, n);
    buf[n] = '\0';
    size_t i;
    json_t *l;
    json_array_foreach(c->labels, i, l) {
        if (json_is_string(l) && strcmp(json_string_value(l), buf) == 0) {
            return true;
        }
    }
    size_t f;
    return tsr_engined__doc_field(c->d, buf, &f, NULL) == TSR_OK;
}

/* Record an unknown field name with its place in the text (the next occurrence). */
static void check_bad(check_t *c, const char *name, size_t n) {
    if (json_array_size(c->bad) >= CHECK_MAX_BAD) {
        return;
    }
    const char *t = c->text;
    size_t tl = strlen(t), at = tl, len = n;
    for (size_t k = c->from; k + n <= tl; k++) {
        if (strncmp(t + k, name, n) == 0) {
            at = k;
            /* Written in brackets: the range covers them. */
            if (k > 0 && t[k - 1] == '[' && k + n < tl && t[k + n] == ']') {
                at = k - 1;
                len = n + 2;
            }
            c->from = k + n;
            break;
        }
    }
    json_t *r = json_object();
    json_object_set_new(r, "qFrom", json_integer((json_int_t)(at < tl ? at : 0)));
    json_object_set_new(r, "qCount", json_integer((json_int_t)(at < tl ? len : n)));
    json_array_append_new(c->bad, r);
    json_array_append_new(c->bad_names, json_stringn(name, n));
}

static void check_walk(check_t *c, const tsr_engine__expr_t *e) {
    if (e == NULL) {
        return;
    }
    if (e->kind == TSR_ENGINE__E_FIELD && !check_known(c, e->name, e->name_len)) {
        check_bad(c, e->name, e->name_len);
    }
    if (e->set != NULL) {
        for (size_t i = 0; i < e->set->n_mods; i++) {
            const char *f = e->set->mods[i].field;
            if (f != NULL && !check_known(c, f, strlen(f))) {
                check_bad(c, f, strlen(f));
            }
        }
    }
    for (size_t i = 0; i < e->n_args; i++) {
        check_walk(c, e->args[i]);
    }
}

/* {qErrorMsg, qBadFieldNames, qDangerousFieldNames} of expression expr (returned-owned). */
static json_t *check_expr(tsr_engined__doc_t *d, const char *expr, json_t *labels) {
    json_t *r = json_object();
    json_t *bad = json_array();
    char *expanded = tsr_engined__expand(d, expr);
    const char *t = expanded != NULL ? expanded : expr;
    while (*t == ' ' || *t == '\t' || *t == '\r' || *t == '\n') {
        t++;
    }
    if (*t == '=') {
        t++;
    }
    char msg[TSR_ERROR_MSG_MAX + 64] = "";
    tsr_engine__expr_t *e = NULL;
    tsr_error_t err = {0};
    size_t n = strlen(t);
    bool blank = strspn(t, " \t\r\n") == n;
    if (blank) {
        snprintf(msg, sizeof msg, "Error in expression: empty expression");
    } else if (tsr_engine__expr_parse(t, n, 1, 1, NULL, &e, &err) != TSR_OK) {
        snprintf(msg, sizeof msg, "Error in expression: %s", err.msg[0] ? err.msg : "syntax error");
    } else {
        check_t c = {.d = d, .text = t, .labels = labels, .bad = bad, .bad_names = json_array()};
        check_walk(&c, e);
        if (json_array_size(c.bad_names) > 0 && d->model != NULL) {
            tsr_buf_t b;
            tsr_buf_init(&b, 4096);
            tsr_buf_append_str(&b, "Bad field name(s): ");
            size_t i;
            json_t *s;
            json_array_foreach(c.bad_names, i, s) {
                if (i > 0) {
                    tsr_buf_append(&b, ", ", 2);
                }
                tsr_buf_append(&b, json_string_value(s), json_string_length(s));
            }
            snprintf(msg, sizeof msg, "%.*s", (int)(b.len < 300 ? b.len : 300),
                     b.data != NULL ? b.data : "");
            tsr_buf_cleanup(&b);
        } else {
            json_array_clear(bad); /* no data loaded: fields cannot be judged */
        }
        json_decref(c.bad_names);
        tsr_engine__expr_free(e);
    }
    free(expanded);
    json_object_set_new(r, "qErrorMsg", json_string(msg));
    json_object_set_new(r, "qBadFieldNames", bad);
    json_object_set_new(r, "qDangerousFieldNames", json_array());
    return r;
}

static tsr_err_t check_param(tsr_qix_call_t *call, const char **expr) {
    tsr_err_t rc = tsr_qix_param_string(call, 0, NULL, expr);
    if (rc != TSR_OK) {
        return rc;
    }
    if (*expr == NULL) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMS, "qExpr", "Invalid Params");
    }
    if (strlen(*expr) > CHECK_MAX_EXPR) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMETERS, "qExpr",
                                  "Expression too long");
    }
    return TSR_OK;
}

tsr_err_t tsr_engined__d_check_expression(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d = obj;
    tsr_engined__doc_sync(d);
    const char *expr = NULL;
    tsr_err_t rc = check_param(call, &expr);
    if (rc != TSR_OK) {
        return rc;
    }
    json_t *labels = NULL;
    if ((rc = tsr_qix_param_json(call, 1, true, &labels)) != TSR_OK) {
        return rc;
    }
    if (labels != NULL && json_array_size(labels) > 10000) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMETERS, "qLabels",
                                  "Too many labels");
    }
    tsr_qix_call_result(call, check_expr(d, expr, labels));
    return TSR_OK;
}

tsr_err_t tsr_engined__d_check_number_or_expression(tsr_qix_call_t *call, void *obj,
                                                    tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d = obj;
    tsr_engined__doc_sync(d);
    const char *expr = NULL;
    tsr_err_t rc = check_param(call, &expr);
    if (rc != TSR_OK) {
        return rc;
    }
    char *end = NULL;
    (void)strtod(expr, &end);
    if (end != expr && end != NULL && strspn(end, " \t\r\n") == strlen(end)) {
        /* A plain number. */
        json_t *r = json_object();
        json_object_set_new(r, "qErrorMsg", json_string(""));
        json_object_set_new(r, "qBadFieldNames", json_array());
        tsr_qix_call_result(call, r);
        return TSR_OK;
    }
    json_t *r = check_expr(d, expr, NULL);
    json_object_del(r, "qDangerousFieldNames");
    tsr_qix_call_result(call, r);
    return TSR_OK;
}

#define NI tsr_qix_not_implemented
static const tsr_qix_method_t doc_methods[] = {
    {"AbortModal", d_abort_modal, {"qAccept", NULL}},
    {"AddAlternateState", tsr_engined__d_add_alternate_state, {"qStateName", NULL}},
    {"AddFieldFromExpression", NI, {"qName", "qExpr", NULL}},
    {"AddSessionAlternateState",
     tsr_engined__d_add_session_alternate_state,
     {"qStateName", "qSourceStateName", NULL}},
    {"ApplyAndVerifyBookmark", NI, {"qId", NULL}},
    {"ApplyBookmark", tsr_engined__d_apply_bookmark, {"qId", NULL}},
    {"ApplyGroupStates", NI, {"qGroupStates", NULL}},
    {"ApplyTemporaryBookmark", NI, {"qId", NULL}},
    {"Back", d_back, {NULL}},
    {"BackCount", d_back_count, {NULL}},
    {"BulkRequest", NI, {"qReqs", NULL}},
    {"ChangeSessionAppOwner", NI, {"qNewOwnerId", NULL}},
    {"ChangeSessionAppSpace", NI, {"qSpaceId", NULL}},
    {"CheckExpression", tsr_engined__d_check_expression, {"qExpr", "qLabels", NULL}},
    {"CheckNumberOrExpression", tsr_engined__d_check_number_or_expression, {"qExpr", NULL}},
    {"CheckScriptSyntax", NI, {NULL}},
    {"ClearAll", d_clear_all, {"qLockedAlso", "qStateName", NULL}},
    {"ClearAllSoftPatches", NI, {NULL}},
    {"ClearUndoBuffer", NI, {NULL}},
    {"CloneBookmark", NI, {"qId", NULL}},
    {"CloneDimension", NI, {"qId", NULL}},
    {"CloneMeasure", NI, {"qId", NULL}},
    {"CloneObject", NI, {"qId", NULL}},
    {"CommitDraft", NI, {"qId", NULL}},
    {"CommitScript", NI, {"qCommitMessage", NULL}},
    {"CreateBookmark", tsr_engined__d_create_bookmark, {"qProp", NULL}},
    {"CreateBookmarkEx", NI, {"qProp", "qObjectIdsToPatch", NULL}},
    {"CreateConnection", NI, {"qConnection", NULL}},
    {"CreateDimension", tsr_engined__d_create_dimension, {"qProp", NULL}},
    {"CreateDraft", NI, {"qId", NULL}},
    {"CreateMeasure", tsr_engined__d_create_measure, {"qProp", NULL}},
    {"CreateObject", d_create_object, {"qProp", NULL}},
    {"CreateSessionObject", d_create_session_object, {"qProp", NULL}},
    {"CreateSessionVariable", tsr_engined__d_create_session_variable, {"qProp", NULL}},
    {"CreateTemporaryBookmark", NI, {"qOptions", "qObjectIdsToPatch", NULL}},
    {"CreateVariable", tsr_engined__d_create_variable, {"qName", NULL}},
    {"CreateVariableEx", tsr_engined__d_create_variable_ex, {"qProp", NULL}},
    {"DeleteConnection", NI, {"qConnectionId", NULL}},
    {"DestroyBookmark", tsr_engined__d_destroy_bookmark, {"qId", NULL}},
    {"DestroyDimension", tsr_engined__d_destroy_dimension, {"qId", NULL}},
    {"DestroyDraft", NI, {"qId", "qSourceId", NULL}},
    {"DestroyMeasure", tsr_engined__d_destroy_measure, {"qId", NULL}},
    {"DestroyObject", d_destroy_object, {"qId", NULL}},
    {"DestroySessionObject", d_destroy_session_object, {"qId", NULL}},
    {"DestroySessionVariable", tsr_engined__d_destroy_session_variable_by_id, {"qId", NULL}},
    {"DestroySessionVariableById", tsr_engined__d_destroy_session_variable_by_id, {"qId", NULL}},
    {"DestroySessionVariableByName",
     tsr_engined__d_destroy_session_variable_by_name,
     {"qName", NULL}},
    {"DestroyVariableById", tsr_engined__d_destroy_variable_by_id, {"qId", NULL}},
    {"DestroyVariableByName", tsr_engined__d_destroy_variable_by_name, {"qName", NULL}},
    {"DoReload", d_do_reload, {"qMode", "qPartial", "qDebug", NULL}},
    {"DoReloadEx", d_do_reload_ex, {"qParams", NULL}},
    {"DoSave", d_do_save, {"qFileName", NULL}},
    {"Evaluate", d_evaluate, {"qExpression", NULL}},
    {"EvaluateEx", d_evaluate_ex, {"qExpression", NULL}},
    {"ExpandExpression", NI, {"qExpression", NULL}},
    {"ExportReducedData", NI, {"qOptions", NULL}},
    {"FindMatchingFields", NI, {"qFieldName", "qTags", NULL}},
    {"Forward", d_forward, {NULL}},
    {"ForwardCount", d_forward_count, {NULL}},
    {"GetActiveSheetId", NI, {NULL}},
    {"GetAllInfos", d_get_all_infos, {NULL}},
    {"GetAppLayout", d_get_app_layout, {NULL}},
    {"GetAppProperties", d_get_app_properties, {NULL}},
    {"GetAssociationScores", NI, {"qTable1", "qTable2", NULL}},
    {"GetBookmark", tsr_engined__d_get_bookmark, {"qId", NULL}},
    {"GetBookmarks", tsr_engined__d_get_bookmarks, {"qOptions", NULL}},
    {"GetConnection", NI, {"qConnectionId", NULL}},
    {"GetConnections", NI, {NULL}},
    {"GetContentLibraries", NI, {NULL}},
    {"GetDatabaseInfo", NI, {"qConnectionId", NULL}},
    {"GetDatabaseOwners", NI, {"qConnectionId", "qDatabase", NULL}},
    {"GetDatabaseTableFields", NI, {"qConnectionId", "qDatabase", "qOwner", "qTable", NULL}},
    {"GetDatabaseTablePreview",
     NI,
     {"qConnectionId", "qDatabase", "qOwner", "qTable", "qConditions", NULL}},
    {"GetDatabaseTables", NI, {"qConnectionId", "qDatabase", "qOwner", NULL}},
    {"GetDatabases", NI, {"qConnectionId", NULL}},
    {"GetDimension", tsr_engined__d_get_dimension, {"qId", NULL}},
    {"GetEmptyScript", d_get_empty_script, {"qLocalizedMainSection", NULL}},
    {"GetExpressionBNF", NI, {NULL}},
    {"GetExpressionBNFHash", NI, {NULL}},
    {"GetFavoriteVariables", NI, {NULL}},
    {"GetField", d_get_field, {"qFieldName", "qStateName", NULL}},
    {"GetFieldAndColumnSamples",
     NI,
     {"qFieldsOrColumnsWithWildcards", "qMaxNumberOfValues", "qRandSeed", NULL}},
    {"GetFieldDescription", d_get_field_description, {"qFieldName", NULL}},
    {"GetFieldOnTheFlyByName", NI, {"qReadableName", NULL}},
    {"GetFieldsFromExpression", NI, {"qExpr", NULL}},
    {"GetFieldsResourceIds", NI, {"qFieldNames", NULL}},
    {"GetFileTableFields", NI, {"qConnectionId", "qRelativePath", "qDataFormat", "qTable", NULL}},
    {"GetFileTablePreview", NI, {"qConnectionId", "qRelativePath", "qDataFormat", "qTable", NULL}},
    {"GetFileTables", NI, {"qConnectionId", "qRelativePath", "qDataFormat", NULL}},
    {"GetFileTablesEx", NI, {"qConnectionId", "qRelativePath", "qDataFormat", NULL}},
    {"GetFolderItemsForConnection", NI, {"qConnectionId", "qRelativePath", NULL}},
    {"GetGroupStates", NI, {NULL}},
    {"GetIncludeFileContent", NI, {"qPath", NULL}},
    {"GetLayoutProperties", NI, {NULL}},
    {"GetLibraryContent", NI, {"qName", NULL}},
    {"GetLineage", NI, {NULL}},
    {"GetLocaleInfo", d_get_locale_info, {NULL}},
    {"GetLooselyCoupledVector", NI, {NULL}},
    {"GetMatchingFields", NI, {"qTags", "qMatchingFieldMode", NULL}},
    {"GetMeasure", tsr_engined__d_get_measure, {"qId", NULL}},
    {"GetMeasureWithLabel", tsr_engined__d_get_measure_with_label, {"qLabel", NULL}},
    {"GetMediaList", NI, {NULL}},
    {"GetObject", d_get_object, {"qId", NULL}},
    {"GetObjects", d_get_objects, {"qOptions", NULL}},
    {"GetScript", d_get_script, {NULL}},
    {"GetScriptBreakpoints", NI, {NULL}},
    {"GetScriptEx", NI, {NULL}},
    {"GetScriptMeta", NI, {NULL}},
    {"GetSetAnalysis", NI, {"qStateName", "qBookmarkId", NULL}},
    {"GetSheetObject", NI, {"qObjectId", NULL}},
    {"GetTableData", NI, {"qOffset", "qRows", "qSyntheticMode", "qTableName", NULL}},
    {"GetTableProfileData", NI, {"qTableName", NULL}},
    {"GetTablesAndKeys",
     d_get_tables_and_keys,
     {"qWindowSize", "qNullSize", "qCellHeight", "qSyntheticMode", "qIncludeSysVars",
      "qIncludeProfiling", NULL}},
    {"GetTextMacros", NI, {NULL}},
    {"GetVariable", tsr_engined__d_get_variable_by_name, {"qName", NULL}},
    {"GetVariableById", tsr_engined__d_get_variable_by_id, {"qId", NULL}},
    {"GetVariableByName", tsr_engined__d_get_variable_by_name, {"qName", NULL}},
    {"GetVariables", tsr_engined__d_get_variables, {"qListDef", NULL}},
    {"GetViewDlgSaveInfo", NI, {NULL}},
    {"GuessFileType", NI, {"qConnectionId", "qRelativePath", NULL}},
    {"LockAll", d_lock_all, {"qStateName", NULL}},
    {"MigrateDerivedFields", NI, {NULL}},
    {"MigrateVariables", NI, {NULL}},
    {"ModifyConnection", NI, {"qConnectionId", "qConnection", "qOverrideCredentials", NULL}},
    {"Publish", NI, {"qStreamId", "qName", NULL}},
    {"Redo", NI, {NULL}},
    {"RemoveAlternateState", tsr_engined__d_remove_alternate_state, {"qStateName", NULL}},
    {"RemoveSessionAlternateState",
     tsr_engined__d_remove_session_alternate_state,
     {"qStateName", NULL}},
    {"RemoveVariable", NI, {"qName", NULL}},
    {"ReplaceBookmark", NI, {"qId", "qIgnorePatches", "qObjectIdsToPatch", NULL}},
    {"RestoreTempSelectionState", NI, {"qId", NULL}},
    {"Resume", NI, {NULL}},
    {"SaveAs", NI, {"qNewAppName", NULL}},
    {"SaveObjects", d_do_save, {NULL}},
    {"Scramble", NI, {"qFieldName", NULL}},
    {"SearchAssociations", NI, {"qOptions", "qTerms", "qPage", NULL}},
    {"SearchObjects", NI, {"qOptions", "qTerms", "qPage", NULL}},
    {"SearchResults", NI, {"qOptions", "qTerms", "qPage", NULL}},
    {"SearchSuggest", NI, {"qOptions", "qTerms", NULL}},
    {"SearchValues", NI, {"qOptions", "qTerms", "qPage", NULL}},
    {"SelectAssociations", NI, {"qOptions", "qTerms", "qMatchIx", "qSoftLock", NULL}},
    {"SendGenericCommandToCustomConnector",
     NI,
     {"qProvider", "qCommand", "qMethod", "qParameters", "qAppendConnection", NULL}},
    {"SetAppObjectSortingRank", NI, {"qId", "qRank", NULL}},
    {"SetAppProperties", d_set_app_properties, {"qProp", NULL}},
    {"SetFavoriteVariables", NI, {"qNames", NULL}},
    {"SetFetchLimit", NI, {"qLimit", NULL}},
    {"SetLooselyCoupledVector", NI, {"qv", NULL}},
    {"SetProhibitBinaryLoad", NI, {"qProhibit", NULL}},
    {"SetScript", d_set_script, {"qScript", NULL}},
    {"SetScriptBreakpoints", NI, {"qBreakpoints", NULL}},
    {"SetViewDlgSaveInfo", NI, {"qInfo", NULL}},
    {"StoreTempSelectionState", NI, {"qTTLOfTempState", NULL}},
    {"TransformApp", NI, {"qDstParameters", NULL}},
    {"UnPublish", NI, {NULL}},
    {"Undo", NI, {NULL}},
    {"UnlockAll", d_unlock_all, {"qStateName", NULL}},
    {"UploadTable", NI, {"qDomain", "qDatasetId", "qTableName", "qFieldNames", NULL}},
};
#undef NI

const tsr_qix_type_t tsr_engined__doc_type = {
    .qtype = "Doc",
    .methods = doc_methods,
    .nmethods = sizeof doc_methods / sizeof doc_methods[0],
    .release = doc_release,
};
