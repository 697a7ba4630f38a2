/*
 * Variables of a document (the GenericVariable handle type) and dollar expansion. Three
 * kinds, looked up by name in this order: session variables (the Doc's own, gone with the
 * session), app variables (CreateVariableEx; kept in the app document beside its objects)
 * and script variables (SET/LET of the last reload, carried by the data model and its app
 * file; id "script:<name>", qIsScriptCreated). Changing a script variable stores an app
 * variable under the same id, which then wins over the script's value. Also the aux handle
 * registry shared with bookmark.c. Handlers run on the session's thread.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engined_int.h"

#define VAR_MAX_NAME 256          /* bytes of a variable name */
#define VAR_MAX_DEF (64u << 10)   /* bytes of a variable definition */
#define VAR_MAX_SESSION 1000      /* session variables per session */
#define VAR_MAX_APP 5000          /* app variables per app */
#define EXPAND_MAX_OUT (1u << 20) /* bytes of one dollar-expanded text */
#define EXPAND_MAX_DEPTH 4        /* nested $() levels */
#define EXPAND_MAX_STEPS 1000     /* $() replacements in one top-level expansion */
#define SCRIPT_ID_PREFIX "script:"

/* ---- aux handles ------------------------------------------------------------------------------
 */

void tsr_engined__aux_release(void *obj) {
    tsr_engined__aux_t *x = obj;
    tsr_engined__doc_t *d = x->doc;
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->naux; i++) {
        if (d->aux[i] == x) {
            memmove(&d->aux[i], &d->aux[i + 1], (d->naux - i - 1) * sizeof *d->aux);
            d->naux--;
            break;
        }
    }
    pthread_mutex_unlock(&d->mu);
    free(x->id);
    free(x);
}

static tsr_engined__aux_t *aux_find(tsr_engined__doc_t *d, int kind, const char *id) {
    tsr_engined__aux_t *x = NULL;
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->naux && x == NULL; i++) {
        if (d->aux[i]->kind == kind && strcmp(d->aux[i]->id, id) == 0) {
            x = d->aux[i];
        }
    }
    pthread_mutex_unlock(&d->mu);
    return x;
}

static json_t *iface_of(const char *qtype, int handle, const char *generic_type, const char *id) {
    json_t *i = json_object();
    json_object_set_new(i, "qType", json_string(qtype));
    json_object_set_new(i, "qHandle", json_integer(handle));
    json_object_set_new(i, "qGenericType", json_string(generic_type));
    json_object_set_new(i, "qGenericId", json_string(id));
    return i;
}

json_t *tsr_engined__aux_open(tsr_qix_call_t *call, tsr_engined__doc_t *d, int kind, const char *id,
                              const char *generic_type) {
    const tsr_qix_type_t *type = kind == TSR_ENGINED__AUX_VARIABLE    ? &tsr_engined__variable_type
                                 : kind == TSR_ENGINED__AUX_MEASURE   ? &tsr_engined__measure_type
                                 : kind == TSR_ENGINED__AUX_DIMENSION ? &tsr_engined__dimension_type
                                                                      : &tsr_engined__bookmark_type;
    tsr_engined__aux_t *x = aux_find(d, kind, id);
    if (x != NULL) {
        /* Already open in this session: the same handle (enigma reuses its proxy). */
        return iface_of(type->qtype, x->handle, generic_type, id);
    }
    x = tsr_xcalloc(1, sizeof *x);
    x->doc = d;
    x->kind = kind;
    x->id = tsr_xstrdup(id);
    json_t *iface = NULL;
    x->handle = tsr_qix_call_open_handle(call, type, x, generic_type, id, &iface);
    pthread_mutex_lock(&d->mu);
    if (d->naux == d->capaux) {
        d->capaux = d->capaux ? d->capaux * 2 : 8;
        d->aux = tsr_xrealloc(d->aux, d->capaux * sizeof *d->aux);
    }
    d->aux[d->naux++] = x;
    pthread_mutex_unlock(&d->mu);
    return iface;
}

void tsr_engined__aux_close(tsr_qix_call_t *call, tsr_engined__doc_t *d, int kind, const char *id) {
    tsr_engined__aux_t *x = aux_find(d, kind, id);
    if (x != NULL) {
        tsr_qix_call_close_handle(call, x->handle);
    }
}

/* ---- lookup -----------------------------------------------------------------------------------
 */

typedef enum { SRC_NONE, SRC_SESSION, SRC_APP, SRC_SCRIPT } src_t;

static bool name_is(json_t *props, const char *name) {
    const char *n = json_string_value(json_object_get(props, "qName"));
    return n != NULL && strcmp(n, name) == 0;
}

static json_t *script_props(const char *name, const char *value) {
    json_t *p = json_object(), *info = json_object();
    char id[VAR_MAX_NAME + sizeof SCRIPT_ID_PREFIX + 1];
    snprintf(id, sizeof id, "%s%s", SCRIPT_ID_PREFIX, name);
    json_object_set_new(info, "qId", json_string(id));
    json_object_set_new(info, "qType", json_string("variable"));
    json_object_set_new(p, "qInfo", info);
    json_object_set_new(p, "qMeta", json_object());
    json_object_set_new(p, "qName", json_string(name));
    json_object_set_new(p, "qComment", json_string(""));
    json_object_set_new(p, "qDefinition", json_string(value));
    json_object_set_new(p, "qIsScriptCreated", json_true());
    return p;
}

/* The variable with id (name NULL) or name (id NULL): a copy of its properties
 * (returned-owned) and where it lives, or NULL. */
static json_t *var_find(tsr_engined__doc_t *d, const char *id, const char *name, src_t *src) {
    const char *k;
    json_t *p;
    *src = SRC_NONE;
    json_object_foreach(d->svars, k, p) {
        if (id != NULL ? strcmp(k, id) == 0 : name_is(p, name)) {
            *src = SRC_SESSION;
            return json_deep_copy(p);
        }
    }
    json_t *out = NULL;
    pthread_mutex_lock(&d->app->mu);
    json_object_foreach(json_object_get(d->app->doc, "variables"), k, p) {
        if (id != NULL ? strcmp(k, id) == 0 : name_is(p, name)) {
            out = json_deep_copy(p);
            break;
        }
    }
    pthread_mutex_unlock(&d->app->mu);
    if (out != NULL) {
        *src = SRC_APP;
        return out;
    }
    const tsr_engine_model_t *m = d->model != NULL ? d->model->m : NULL;
    if (id != NULL) {
        size_t pl = strlen(SCRIPT_ID_PREFIX);
        if (strncmp(id, SCRIPT_ID_PREFIX, pl) != 0) {
            return NULL;
        }
        name = id + pl;
    }
    for (size_t i = 0; i < tsr_engine_model_var_count(m); i++) {
        const char *n, *v;
        if (tsr_engine_model_var(m, i, &n, &v) == TSR_OK && strcmp(n, name) == 0) {
            *src = SRC_SCRIPT;
            return script_props(n, v);
        }
    }
    return NULL;
}

/* The variable's value: an expression definition ("=...") evaluated over the doc's state,
 * anything else its text (a number when it reads as one). */
static void var_value(tsr_engined__doc_t *d, json_t *props, char *text, size_t n, double *num,
                      bool *is_num) {
    const char *def = json_string_value(json_object_get(props, "qDefinition"));
    def = def != NULL ? def : "";
    const char *t = def;
    while (*t == ' ' || *t == '\t' || *t == '\n' || *t == '\r') {
        t++;
    }
    *num = NAN;
    *is_num = false;
    if (*t == '=') {
        tsr_engined__evaluate(d, tsr_engined__doc_state(d, NULL), t, num, is_num, text, n, NULL);
        return;
    }
    snprintf(text, n, "%s", def);
    char *end;
    double v = strtod(def, &end);
    if (def[0] != '\0' && *end == '\0' && !isnan(v)) {
        *num = v;
        *is_num = true;
    }
}

/* ---- dollar expansion -------------------------------------------------------------------------
 */

static _Thread_local int expand_depth;
/* Replacements left in the current top-level expansion: "$(v)$(v)..." nested in itself must
 * not grow exponentially. */
static _Thread_local unsigned expand_steps;

/* The replacement of one $(...) body (inner, len bytes) appended to out. */
static void expand_one(tsr_engined__doc_t *d, const char *inner, size_t len, tsr_buf_t *out) {
    char text[4096];
    if (expand_steps == 0) {
        return;
    }
    expand_steps--;
    if (len > 0 && inner[0] == '=') {
        char *ex = tsr_xstrndup(inner, len);
        double v;
        bool is_num;
        tsr_engined__evaluate(d, tsr_engined__doc_state(d, NULL), ex, &v, &is_num, text,
                              sizeof text, NULL);
        free(ex);
        tsr_buf_append_str(out, text);
        return;
    }
    while (len > 0 && (inner[0] == ' ')) {
        inner++;
        len--;
    }
    while (len > 0 && inner[len - 1] == ' ') {
        len--;
    }
    if (len == 0 || len > VAR_MAX_NAME) {
        return;
    }
    char name[VAR_MAX_NAME + 1];
    memcpy(name, inner, len);
    name[len] = '\0';
    src_t src;
    json_t *p = var_find(d, NULL, name, &src);
    if (p == NULL) {
        return;
    }
    const char *def = json_string_value(json_object_get(p, "qDefinition"));
    const char *t = def != NULL ? def : "";
    while (*t == ' ' || *t == '\t') {
        t++;
    }
    if (*t == '=') {
        /* $(v) of an expression variable inserts the expression's value, as in Qlik. */
        double v;
        bool is_num;
        var_value(d, p, text, sizeof text, &v, &is_num);
        tsr_buf_append_str(out, text);
    } else {
        char *inner_x = tsr_engined__expand(d, def != NULL ? def : "");
        tsr_buf_append_str(out, inner_x != NULL ? inner_x : (def != NULL ? def : ""));
        free(inner_x);
    }
    json_decref(p);
}

char *tsr_engined__expand(tsr_engined__doc_t *d, const char *text) {
    if (text == NULL || strstr(text, "$(") == NULL || expand_depth >= EXPAND_MAX_DEPTH) {
        return NULL;
    }
    if (expand_depth == 0) {
        expand_steps = EXPAND_MAX_STEPS;
    }
    expand_depth++;
    tsr_buf_t out;
    tsr_buf_init(&out, EXPAND_MAX_OUT);
    const char *p = text;
    while (*p != '\0') {
        const char *s = strstr(p, "$(");
        if (s == NULL) {
            tsr_buf_append_str(&out, p);
            break;
        }
        tsr_buf_append(&out, p, (size_t)(s - p));
        /* The matching parenthesis: $(=Sum(x)) nests. */
        const char *q = s + 2;
        int depth = 1;
        while (*q != '\0' && depth > 0) {
            if (*q == '(') {
                depth++;
            } else if (*q == ')') {
                depth--;
            }
            if (depth > 0) {
                q++;
            }
        }
        expand_one(d, s + 2, (size_t)(q - s - 2), &out);
        p = *q == ')' ? q + 1 : q;
    }
    expand_depth--;
    tsr_buf_append(&out, "", 0);
    size_t n;
    return tsr_buf_take(&out, &n);
}

/* ---- properties and layouts -------------------------------------------------------------------
 */

static json_t *var_layout(tsr_engined__doc_t *d, json_t *props) {
    json_t *l = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(props, k, v) {
        if (strcmp(k, "qMetaDef") != 0) {
            json_object_set(l, k, v);
        }
    }
    json_t *meta = json_object_get(props, "qMetaDef");
    json_object_set_new(l, "qMeta", json_is_object(meta) ? json_deep_copy(meta) : json_object());
    char text[4096];
    double num;
    bool is_num;
    var_value(d, props, text, sizeof text, &num, &is_num);
    json_object_set_new(l, "qText", json_string(text));
    tsr_engined__set_num(l, "qNum", num, is_num);
    if (!json_is_boolean(json_object_get(l, "qIsScriptCreated"))) {
        json_object_set_new(l, "qIsScriptCreated", json_false());
    }
    return l;
}

/* Validate and complete new variable properties (taken; NULL on error with the call's error
 * set): qName required, qInfo.qId assigned, qInfo.qType "variable". */
static json_t *props_check(tsr_qix_call_t *call, tsr_engined__doc_t *d, json_t *p) {
    const char *name = json_string_value(json_object_get(p, "qName"));
    json_t *def = json_object_get(p, "qDefinition");
    if (name == NULL || name[0] == '\0' || strlen(name) > VAR_MAX_NAME ||
        strpbrk(name, "()$") != NULL) {
        json_decref(p);
        tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMETERS, "qName", "Invalid parameters");
        return NULL;
    }
    if (def != NULL && (!json_is_string(def) || strlen(json_string_value(def)) > VAR_MAX_DEF)) {
        json_decref(p);
        tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMETERS, "qDefinition",
                           "Invalid parameters");
        return NULL;
    }
    if (def == NULL) {
        json_object_set_new(p, "qDefinition", json_string(""));
    }
    json_t *info = json_object_get(p, "qInfo");
    if (!json_is_object(info)) {
        info = json_object();
        json_object_set_new(p, "qInfo", info);
    }
    const char *id = json_string_value(json_object_get(info, "qId"));
    if (id == NULL || id[0] == '\0' || strlen(id) > VAR_MAX_NAME ||
        strncmp(id, SCRIPT_ID_PREFIX, strlen(SCRIPT_ID_PREFIX)) == 0) {
        char rnd[25], buf[48];
        tsr_id_new(rnd);
        snprintf(buf, sizeof buf, "%.12sv%u", rnd, ++d->next_obj);
        json_object_set_new(info, "qId", json_string(buf));
    }
    json_object_set_new(info, "qType", json_string("variable"));
    if (!json_is_object(json_object_get(p, "qMeta"))) {
        json_object_set_new(p, "qMeta", json_object());
    }
    return p;
}

static tsr_err_t prop_param(tsr_qix_call_t *call, size_t idx, json_t **out) {
    json_t *p = NULL;
    tsr_err_t rc = tsr_qix_param_json(call, idx, false, &p);
    if (rc != TSR_OK) {
        return rc;
    }
    if (p == NULL) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMS, "qProp", "Invalid Params");
    }
    *out = json_deep_copy(p);
    return TSR_OK;
}

static tsr_err_t string_param(tsr_qix_call_t *call, size_t idx, const char *name,
                              const char **out) {
    tsr_err_t rc = tsr_qix_param_string(call, idx, NULL, out);
    if (rc == TSR_OK && (*out == NULL || (*out)[0] == '\0')) {
        rc = tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMS, name, "Invalid Params");
    }
    return rc;
}

/* Every other session of the app: their variables and objects may show the changed value. */
static void push_app(tsr_engined__doc_t *d) {
    tsr_engined__app_t *a = d->app;
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < a->ndocs; i++) {
        tsr_engined__doc_t *o = a->docs[i];
        if (o == d) {
            continue;
        }
        pthread_mutex_lock(&o->mu);
        size_t n = o->nobjs + o->naux, k = 0;
        int *hs = tsr_xcalloc(n + 1, sizeof *hs);
        for (size_t j = 0; j < o->nobjs; j++) {
            hs[k++] = o->objs[j]->handle;
        }
        for (size_t j = 0; j < o->naux; j++) {
            if (o->aux[j]->kind == TSR_ENGINED__AUX_VARIABLE) {
                hs[k++] = o->aux[j]->handle;
            }
        }
        pthread_mutex_unlock(&o->mu);
        if (k > 0) {
            tsr_qix_session_push_change(o->s, hs, k);
        }
        free(hs);
    }
    pthread_mutex_unlock(&a->mu);
}

/* Store props (taken) as the variable's new properties where it lives (a script variable
 * becomes an app variable). App variables need edit. */
static tsr_err_t var_store(tsr_qix_call_t *call, tsr_engined__doc_t *d, src_t src, const char *id,
                           json_t *props, tsr_error_t *err) {
    tsr_err_t rc = TSR_OK;
    if (src == SRC_SESSION) {
        json_object_set_new(d->svars, id, props);
    } else {
        if ((rc = tsr_engined__doc_may(call, d, TSR_ENGINED_EDIT)) != TSR_OK) {
            json_decref(props);
            return rc;
        }
        tsr_engined__app_t *a = d->app;
        pthread_mutex_lock(&a->mu);
        json_t *vars = tsr_engined__lib_all(a, "variables");
        json_object_set_new(vars, id, props);
        rc = tsr_engined__app_save(a, err);
        pthread_mutex_unlock(&a->mu);
        if (rc == TSR_OK) {
            push_app(d);
        }
    }
    /* $(v) may appear in any expression of the session. */
    tsr_engined__doc_change_all(call, d);
    return rc;
}

/* ---- Doc methods ------------------------------------------------------------------------------
 */

static tsr_engined__doc_t *doc_of(void *obj) {
    tsr_engined__doc_t *d = obj;
    tsr_engined__doc_sync(d);
    return d;
}

static tsr_err_t name_taken(tsr_qix_call_t *call, tsr_engined__doc_t *d, const char *name,
                            bool session) {
    src_t src;
    json_t *p = var_find(d, NULL, name, &src);
    json_decref(p);
    /* A session variable may shadow an app variable; two of one kind may not share a name. */
    if (p != NULL && (session ? src == SRC_SESSION : src != SRC_SESSION)) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_ALREADY_EXISTS, name, "Already exists");
    }
    return TSR_OK;
}

tsr_err_t tsr_engined__d_create_session_variable(tsr_qix_call_t *call, void *obj,
                                                 tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d = doc_of(obj);
    json_t *p = NULL;
    tsr_err_t rc = prop_param(call, 0, &p);
    if (rc != TSR_OK || (p = props_check(call, d, p)) == NULL) {
        return rc != TSR_OK ? rc : TSR_EINVAL;
    }
    const char *name = json_string_value(json_object_get(p, "qName"));
    if ((rc = name_taken(call, d, name, true)) != TSR_OK) {
        json_decref(p);
        return rc;
    }
    if (json_object_size(d->svars) >= VAR_MAX_SESSION) {
        json_decref(p);
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMETERS, "qProp",
                                  "Too many session variables");
    }
    if (d->svars == NULL) {
        d->svars = json_object();
    }
    char *id = tsr_xstrdup(json_string_value(json_object_get(json_object_get(p, "qInfo"), "qId")));
    if (json_object_get(d->svars, id) != NULL) {
        json_decref(p);
        rc = tsr_qix_call_error(call, TSR_QIX_ERR_ALREADY_EXISTS, id, "Already exists");
        free(id);
        return rc;
    }
    json_object_set_new(d->svars, id, p);
    tsr_qix_call_result(
        call, tsr_engined__obj1("qReturn", tsr_engined__aux_open(call, d, TSR_ENGINED__AUX_VARIABLE,
                                                                 id, "variable")));
    tsr_engined__doc_change_all(call, d);
    free(id);
    return TSR_OK;
}

static tsr_err_t create_app_variable(tsr_qix_call_t *call, tsr_engined__doc_t *d, json_t *p,
                                     json_t **iface, json_t **info, tsr_error_t *err) {
    tsr_err_t rc = tsr_engined__doc_may(call, d, TSR_ENGINED_EDIT);
    if (rc != TSR_OK) {
        json_decref(p);
        return rc;
    }
    if ((p = props_check(call, d, p)) == NULL) {
        return TSR_EINVAL;
    }
    const char *name = json_string_value(json_object_get(p, "qName"));
    if ((rc = name_taken(call, d, name, false)) != TSR_OK) {
        json_decref(p);
        return rc;
    }
    char *id = tsr_xstrdup(json_string_value(json_object_get(json_object_get(p, "qInfo"), "qId")));
    *info = json_deep_copy(json_object_get(p, "qInfo"));
    tsr_engined__app_t *a = d->app;
    pthread_mutex_lock(&a->mu);
    json_t *vars = tsr_engined__lib_all(a, "variables");
    if (json_object_get(vars, id) != NULL || json_object_size(vars) >= VAR_MAX_APP) {
        pthread_mutex_unlock(&a->mu);
        json_decref(p);
        rc = tsr_qix_call_error(call, TSR_QIX_ERR_ALREADY_EXISTS, id, "Already exists");
    } else {
        json_object_set_new(vars, id, p);
        rc = tsr_engined__app_save(a, err);
        pthread_mutex_unlock(&a->mu);
    }
    if (rc == TSR_OK) {
        *iface = tsr_engined__aux_open(call, d, TSR_ENGINED__AUX_VARIABLE, id, "variable");
        push_app(d);
        tsr_engined__doc_change_all(call, d);
    } else {
        json_decref(*info);
        *info = NULL;
    }
    free(id);
    return rc;
}

tsr_err_t tsr_engined__d_create_variable_ex(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__doc_t *d = doc_of(obj);
    json_t *p = NULL, *iface = NULL, *info = NULL;
    tsr_err_t rc = prop_param(call, 0, &p);
    if (rc == TSR_OK) {
        rc = create_app_variable(call, d, p, &iface, &info, err);
    }
    if (rc == TSR_OK) {
        json_t *r = json_object();
        json_object_set_new(r, "qInfo", info);
        json_object_set_new(r, "qReturn", iface);
        tsr_qix_call_result(call, r);
    }
    return rc;
}

/* CreateVariable(qName): the old form, answering qReturn true/false. */
tsr_err_t tsr_engined__d_create_variable(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__doc_t *d = doc_of(obj);
    const char *name = NULL;
    tsr_err_t rc = string_param(call, 0, "qName", &name);
    if (rc != TSR_OK) {
        return rc;
    }
    json_t *p = json_object(), *iface = NULL, *info = NULL;
    json_object_set_new(p, "qName", json_string(name));
    rc = create_app_variable(call, d, p, &iface, &info, err);
    json_decref(info);
    if (iface != NULL) {
        /* This form hands out no handle: close the one opened for it. */
        tsr_qix_call_close_handle(call, (int)json_integer_value(json_object_get(iface, "qHandle")));
        json_decref(iface);
    }
    if (rc == TSR_OK) {
        tsr_qix_call_result(call, tsr_engined__obj1("qReturn", json_true()));
    }
    return rc;
}

static tsr_err_t get_variable(tsr_qix_call_t *call, void *obj, bool by_id) {
    tsr_engined__doc_t *d = doc_of(obj);
    const char *key = NULL;
    tsr_err_t rc = string_param(call, 0, by_id ? "qId" : "qName", &key);
    if (rc != TSR_OK) {
        return rc;
    }
    src_t src;
    json_t *p = var_find(d, by_id ? key : NULL, by_id ? NULL : key, &src);
    if (p == NULL) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_NOT_FOUND, key, "Object not found");
    }
    char *id = tsr_xstrdup(json_string_value(json_object_get(json_object_get(p, "qInfo"), "qId")));
    json_decref(p);
    tsr_qix_call_result(
        call, tsr_engined__obj1("qReturn", tsr_engined__aux_open(call, d, TSR_ENGINED__AUX_VARIABLE,
                                                                 id, "variable")));
    free(id);
    return TSR_OK;
}

tsr_err_t tsr_engined__d_get_variable_by_name(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    return get_variable(call, obj, false);
}

tsr_err_t tsr_engined__d_get_variable_by_id(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    return get_variable(call, obj, true);
}

static tsr_err_t destroy_variable(tsr_qix_call_t *call, void *obj, bool session, bool by_id,
                                  tsr_error_t *err) {
    tsr_engined__doc_t *d = doc_of(obj);
    const char *key = NULL;
    tsr_err_t rc = string_param(call, 0, by_id ? "qId" : "qName", &key);
    if (rc != TSR_OK) {
        return rc;
    }
    if (!session && (rc = tsr_engined__doc_may(call, d, TSR_ENGINED_EDIT)) != TSR_OK) {
        return rc;
    }
    bool found = false;
    char *id = NULL;
    if (session) {
        const char *k;
        json_t *p;
        json_object_foreach(d->svars, k, p) {
            if (by_id ? strcmp(k, key) == 0 : name_is(p, key)) {
                id = tsr_xstrdup(k);
                break;
            }
        }
        if (id != NULL) {
            json_object_del(d->svars, id);
            found = true;
        }
    } else {
        tsr_engined__app_t *a = d->app;
        pthread_mutex_lock(&a->mu);
        json_t *vars = json_object_get(a->doc, "variables");
        const char *k;
        json_t *p;
        json_object_foreach(vars, k, p) {
            if (by_id ? strcmp(k, key) == 0 : name_is(p, key)) {
                id = tsr_xstrdup(k);
                break;
            }
        }
        if (id != NULL) {
            json_object_del(vars, id);
            found = true;
            rc = tsr_engined__app_save(a, err);
        }
        pthread_mutex_unlock(&a->mu);
        if (found) {
            push_app(d);
        }
    }
    if (found) {
        /* A script variable of the same id stays (its value from the script): keep its handle. */
        src_t src;
        json_t *rest = var_find(d, id, NULL, &src);
        if (rest == NULL) {
            tsr_engined__aux_close(call, d, TSR_ENGINED__AUX_VARIABLE, id);
        }
        json_decref(rest);
        tsr_engined__doc_change_all(call, d);
    }
    free(id);
    if (rc == TSR_OK) {
        tsr_qix_call_result(call, tsr_engined__obj1("qSuccess", json_boolean(found)));
    }
    return rc;
}

tsr_err_t tsr_engined__d_destroy_session_variable_by_id(tsr_qix_call_t *call, void *obj,
                                                        tsr_error_t *err) {
    return destroy_variable(call, obj, true, true, err);
}

tsr_err_t tsr_engined__d_destroy_session_variable_by_name(tsr_qix_call_t *call, void *obj,
                                                          tsr_error_t *err) {
    return destroy_variable(call, obj, true, false, err);
}

tsr_err_t tsr_engined__d_destroy_variable_by_id(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    return destroy_variable(call, obj, false, true, err);
}

tsr_err_t tsr_engined__d_destroy_variable_by_name(tsr_qix_call_t *call, void *obj,
                                                  tsr_error_t *err) {
    return destroy_variable(call, obj, false, false, err);
}

/* Every variable (session ones shadow app ones of the same name, app ones script ones), as
 * NxVariableListItem. */
static json_t *list_items(tsr_engined__doc_t *d, json_t *def) {
    json_t *all = json_object(); /* name → props */
    const tsr_engine_model_t *m = d->model != NULL ? d->model->m : NULL;
    for (size_t i = 0; i < tsr_engine_model_var_count(m); i++) {
        const char *n, *v;
        if (tsr_engine_model_var(m, i, &n, &v) == TSR_OK) {
            json_object_set_new(all, n, script_props(n, v));
        }
    }
    const char *k;
    json_t *p;
    pthread_mutex_lock(&d->app->mu);
    json_object_foreach(json_object_get(d->app->doc, "variables"), k, p) {
        const char *n = json_string_value(json_object_get(p, "qName"));
        if (n != NULL) {
            json_object_set_new(all, n, json_deep_copy(p));
        }
    }
    pthread_mutex_unlock(&d->app->mu);
    json_object_foreach(d->svars, k, p) {
        const char *n = json_string_value(json_object_get(p, "qName"));
        if (n != NULL) {
            json_t *c = json_deep_copy(p);
            json_object_set_new(c, "qIsSessionVariable", json_true());
            json_object_set_new(all, n, c);
        }
    }
    json_t *items = json_array();
    json_t *data = json_object_get(def, "qData");
    json_object_foreach(all, k, p) {
        json_t *it = json_object();
        json_object_set_new(it, "qName", json_string(k));
        json_object_set(it, "qDefinition", json_object_get(p, "qDefinition"));
        json_object_set(it, "qDescription", json_object_get(p, "qComment"));
        json_object_set(it, "qInfo", json_object_get(p, "qInfo"));
        json_t *meta = json_object_get(p, "qMetaDef");
        json_object_set_new(it, "qMeta",
                            json_is_object(meta) ? json_deep_copy(meta) : json_object());
        json_object_set_new(it, "qIsScriptCreated",
                            json_boolean(json_is_true(json_object_get(p, "qIsScriptCreated"))));
        if (json_is_true(json_object_get(p, "qIsSessionVariable"))) {
            json_object_set_new(it, "qIsSessionVariable", json_true());
        }
        if (json_is_object(data)) {
            json_object_set_new(it, "qData", tsr_engined__lib_qdata(p, data));
        }
        json_array_append_new(items, it);
    }
    json_decref(all);
    return items;
}

json_t *tsr_engined__variable_list(tsr_engined__doc_t *d, json_t *def) {
    return tsr_engined__obj1("qItems", list_items(d, def));
}

tsr_err_t tsr_engined__d_get_variables(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d = doc_of(obj);
    json_t *def = NULL;
    tsr_err_t rc = tsr_qix_param_json(call, 0, false, &def);
    if (rc != TSR_OK) {
        return rc;
    }
    tsr_qix_call_result(call, tsr_engined__obj1("qList", list_items(d, def)));
    return TSR_OK;
}

/* ---- GenericVariable methods ------------------------------------------------------------------
 */

/* The handle's variable (a copy, returned-owned), or NULL with error 2 on the call. */
static json_t *self(tsr_qix_call_t *call, void *obj, tsr_engined__doc_t **d, src_t *src) {
    tsr_engined__aux_t *x = obj;
    *d = doc_of(x->doc);
    json_t *p = var_find(*d, x->id, NULL, src);
    if (p == NULL) {
        tsr_engined__lib_not_found(call, x->id);
    }
    return p;
}

static json_t *var_copy(tsr_engined__doc_t *d, const char *id) {
    src_t src;
    return var_find(d, id, NULL, &src);
}

const tsr_engined__lib_kind_t tsr_engined__variable_kind = {.copy = var_copy, .layout = var_layout};

static tsr_err_t v_get_raw_content(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_engined__doc_t *d;
    src_t src;
    json_t *p = self(call, obj, &d, &src);
    if (p == NULL) {
        return TSR_EINVAL;
    }
    json_t *def = json_object_get(p, "qDefinition");
    tsr_qix_call_result(
        call, tsr_engined__obj1("qReturn",
                                json_string(json_is_string(def) ? json_string_value(def) : "")));
    json_decref(p);
    return TSR_OK;
}

/* Store new properties; the id, the type and (for script variables) the name never change. */
static tsr_err_t v_set_properties(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_engined__aux_t *x = obj;
    tsr_engined__doc_t *d;
    src_t src;
    json_t *cur = self(call, obj, &d, &src);
    if (cur == NULL) {
        return TSR_EINVAL;
    }
    json_t *p = NULL;
    tsr_err_t rc = prop_param(call, 0, &p);
    if (rc != TSR_OK) {
        json_decref(cur);
        return rc;
    }
    if (src == SRC_SCRIPT || json_is_true(json_object_get(cur, "qIsScriptCreated"))) {
        json_object_set(p, "qName", json_object_get(cur, "qName"));
        json_object_set_new(p, "qIsScriptCreated", json_true());
    }
    json_t *info = json_object();
    json_object_set_new(info, "qId", json_string(x->id));
    json_object_set_new(p, "qInfo", info);
    json_decref(cur);
    if ((p = props_check(call, d, p)) == NULL) {
        return TSR_EINVAL;
    }
    /* props_check assigns a fresh id to a script variable's: put the handle's back. */
    json_object_set_new(json_object_get(p, "qInfo"), "qId", json_string(x->id));
    const char *name = json_string_value(json_object_get(p, "qName"));
    json_t *other = var_find(d, NULL, name, &(src_t){SRC_NONE});
    bool clash = other != NULL &&
                 strcmp(json_string_value(json_object_get(json_object_get(other, "qInfo"), "qId")),
                        x->id) != 0;
    json_decref(other);
    if (clash) {
        json_decref(p);
        return tsr_qix_call_error(call, TSR_QIX_ERR_ALREADY_EXISTS, name, "Already exists");
    }
    rc = var_store(call, d, src, x->id, p, err);
    if (rc == TSR_OK) {
        tsr_qix_call_add_change(call, x->handle);
    }
    return rc;
}

static tsr_err_t set_value(tsr_qix_call_t *call, void *obj, const char *text, tsr_error_t *err) {
    tsr_engined__aux_t *x = obj;
    tsr_engined__doc_t *d;
    src_t src;
    json_t *p = self(call, obj, &d, &src);
    if (p == NULL) {
        return TSR_EINVAL;
    }
    if (strlen(text) > VAR_MAX_DEF) {
        json_decref(p);
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMETERS, "qVal",
                                  "Invalid parameters");
    }
    json_object_set_new(p, "qDefinition", json_string(text));
    tsr_err_t rc = var_store(call, d, src, x->id, p, err);
    if (rc == TSR_OK) {
        tsr_qix_call_add_change(call, x->handle);
    }
    return rc;
}

static tsr_err_t v_set_string_value(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    const char *v = NULL;
    tsr_err_t rc = tsr_qix_param_string(call, 0, "", &v);
    return rc != TSR_OK ? rc : set_value(call, obj, v, err);
}

static tsr_err_t v_set_num_value(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    json_t *v = tsr_qix_param(call, 0);
    if (!json_is_number(v)) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMS, "qVal", "Invalid Params");
    }
    char text[64];
    tsr_engined__num_text(json_number_value(v), text, sizeof text);
    return set_value(call, obj, text, err);
}

static tsr_err_t v_set_dual_value(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    const char *t = NULL;
    tsr_err_t rc = tsr_qix_param_string(call, 0, "", &t);
    return rc != TSR_OK ? rc : set_value(call, obj, t, err);
}

#define NI tsr_qix_not_implemented
static const tsr_qix_method_t variable_methods[] = {
    {"ApplyPatches", NI, {"qPatches", NULL}},
    {"GetInfo", tsr_engined__lib_get_info, {NULL}},
    {"GetLayout", tsr_engined__lib_get_layout, {NULL}},
    {"GetProperties", tsr_engined__lib_get_properties, {NULL}},
    {"GetRawContent", v_get_raw_content, {NULL}},
    {"SetDualValue", v_set_dual_value, {"qText", "qNum", NULL}},
    {"SetNumValue", v_set_num_value, {"qVal", NULL}},
    {"SetProperties", v_set_properties, {"qProp", NULL}},
    {"SetStringValue", v_set_string_value, {"qVal", NULL}},
};
#undef NI

const tsr_qix_type_t tsr_engined__variable_type = {
    .qtype = "GenericVariable",
    .methods = variable_methods,
    .nmethods = sizeof variable_methods / sizeof variable_methods[0],
    .release = tsr_engined__aux_release,
};
