/*
 * The QIX JSON-RPC message layer: one text message in, one response out. Parses the request,
 * validates its envelope, resolves the handle in the session's registry, finds the method in
 * the handle type's dispatch table and runs it, then formats result or error with the call's
 * change/close arrays. No sockets here: the WebSocket loop (ws.c), tests and the fuzzer feed
 * it. Invariants: every response carries the request's id verbatim and an object result;
 * handle 0 is never handed out; handles are never reused within a session.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "qix_int.h"

void tsr_qix__ints_add(tsr_qix__ints_t *a, int v) {
    for (size_t i = 0; i < a->n; i++) {
        if (a->v[i] == v) {
            return;
        }
    }
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 8;
        a->v = tsr_xrealloc(a->v, a->cap * sizeof *a->v);
    }
    a->v[a->n++] = v;
}

void tsr_qix__ints_cleanup(tsr_qix__ints_t *a) {
    free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}

static json_t *ints_json(const tsr_qix__ints_t *a) {
    json_t *arr = json_array();
    for (size_t i = 0; i < a->n; i++) {
        json_array_append_new(arr, json_integer(a->v[i]));
    }
    return arr;
}

/* ---- errors ---------------------------------------------------------------------------------- */

int tsr_qix_error_code_of(tsr_err_t code, const char **message) {
    int qcode;
    const char *msg;
    switch (code) {
    case TSR_EINVAL:
        qcode = TSR_QIX_ERR_INVALID_PARAMS;
        msg = "Invalid Params";
        break;
    case TSR_ENOTFOUND:
        qcode = TSR_QIX_ERR_NOT_FOUND;
        msg = "Object not found";
        break;
    case TSR_ECONFLICT:
        qcode = TSR_QIX_ERR_ALREADY_EXISTS;
        msg = "Already exists";
        break;
    case TSR_EUNAUTHENTICATED:
    case TSR_EFORBIDDEN:
        qcode = TSR_QIX_ERR_ACCESS_DENIED;
        msg = "Access denied";
        break;
    case TSR_ETOOBIG:
        qcode = TSR_QIX_ERR_INVALID_PARAMETERS;
        msg = "Invalid parameters";
        break;
    case TSR_EUNSUPPORTED:
        qcode = TSR_QIX_ERR_NOT_IMPLEMENTED;
        msg = "Not implemented";
        break;
    case TSR_ECANCELED:
    case TSR_ETIMEOUT:
        qcode = TSR_QIX_ERR_ABORTED;
        msg = "Request aborted";
        break;
    default:
        qcode = TSR_QIX_ERR_INTERNAL;
        msg = "Internal error";
        break;
    }
    if (message != NULL) {
        *message = msg;
    }
    return qcode;
}

/* ---- calls ----------------------------------------------------------------------------------- */

tsr_err_t tsr_qix_call_error(tsr_qix_call_t *call, int code, const char *parameter,
                             const char *message) {
    free(call->err_param);
    free(call->err_msg);
    call->failed = true;
    call->err_code = code;
    call->err_param = tsr_xstrdup(parameter ? parameter : "");
    call->err_msg = tsr_xstrdup(message ? message : "");
    return TSR_EINVAL;
}

void tsr_qix_call_result(tsr_qix_call_t *call, json_t *result) {
    json_decref(call->result);
    if (result != NULL && !json_is_object(result)) {
        json_t *o = json_object();
        json_object_set_new(o, "qReturn", result);
        result = o;
    }
    call->result = result;
}

void tsr_qix_call_add_change(tsr_qix_call_t *call, int handle) {
    tsr_qix__ints_add(&call->change, handle);
}

void tsr_qix_call_add_close(tsr_qix_call_t *call, int handle) {
    tsr_qix__ints_add(&call->close, handle);
}

tsr_qix_session_t *tsr_qix_call_session(tsr_qix_call_t *call) {
    return call->s;
}

int tsr_qix_call_handle(const tsr_qix_call_t *call) {
    return call->handle;
}

const char *tsr_qix_call_method(const tsr_qix_call_t *call) {
    return call->method;
}

static const char *param_name(const tsr_qix_call_t *call, size_t idx) {
    for (size_t i = 0; i <= idx && i < TSR_QIX_MAX_PARAMS; i++) {
        if (call->m->params[i] == NULL) {
            return NULL;
        }
    }
    return idx < TSR_QIX_MAX_PARAMS ? call->m->params[idx] : NULL;
}

json_t *tsr_qix_param(tsr_qix_call_t *call, size_t idx) {
    json_t *v = NULL;
    if (json_is_array(call->params)) {
        v = json_array_get(call->params, idx);
    } else if (json_is_object(call->params)) {
        const char *name = param_name(call, idx);
        v = name ? json_object_get(call->params, name) : NULL;
    }
    return json_is_null(v) ? NULL : v;
}

static tsr_err_t bad_param(tsr_qix_call_t *call, size_t idx) {
    const char *name = param_name(call, idx);
    return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMS, name ? name : "params",
                              "Invalid Params");
}

tsr_err_t tsr_qix_param_string(tsr_qix_call_t *call, size_t idx, const char *def,
                               const char **out) {
    json_t *v = tsr_qix_param(call, idx);
    if (v == NULL) {
        *out = def;
        return TSR_OK;
    }
    if (!json_is_string(v)) {
        return bad_param(call, idx);
    }
    *out = json_string_value(v);
    return TSR_OK;
}

tsr_err_t tsr_qix_param_bool(tsr_qix_call_t *call, size_t idx, bool def, bool *out) {
    json_t *v = tsr_qix_param(call, idx);
    if (v == NULL) {
        *out = def;
        return TSR_OK;
    }
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return TSR_OK;
    }
    /* Older clients send 0/1 for booleans. */
    if (json_is_integer(v)) {
        *out = json_integer_value(v) != 0;
        return TSR_OK;
    }
    return bad_param(call, idx);
}

tsr_err_t tsr_qix_param_int(tsr_qix_call_t *call, size_t idx, int64_t def, int64_t *out) {
    json_t *v = tsr_qix_param(call, idx);
    if (v == NULL) {
        *out = def;
        return TSR_OK;
    }
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return TSR_OK;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        /* Only integral values inside the exactly representable range. */
        if (d >= -9007199254740992.0 && d <= 9007199254740992.0 && d == (double)(int64_t)d) {
            *out = (int64_t)d;
            return TSR_OK;
        }
    }
    return bad_param(call, idx);
}

tsr_err_t tsr_qix_param_json(tsr_qix_call_t *call, size_t idx, bool want_array, json_t **out) {
    json_t *v = tsr_qix_param(call, idx);
    *out = NULL;
    if (v == NULL) {
        return TSR_OK;
    }
    if (want_array ? !json_is_array(v) : !json_is_object(v)) {
        return bad_param(call, idx);
    }
    *out = v;
    return TSR_OK;
}

/* ---- handle registry ------------------------------------------------------------------------- */

tsr_qix__entry_t *tsr_qix__session_find(tsr_qix_session_t *s, int handle) {
    size_t lo = 0, hi = s->nentries;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->entries[mid].handle == handle) {
            return &s->entries[mid];
        }
        if (s->entries[mid].handle < handle) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

int tsr_qix_call_open_handle(tsr_qix_call_t *call, const tsr_qix_type_t *type, void *obj,
                             const char *generic_type, const char *generic_id, json_t **iface) {
    tsr_qix_session_t *s = call->s;
    if (s->nentries == s->capentries) {
        s->capentries = s->capentries ? s->capentries * 2 : 16;
        s->entries = tsr_xrealloc(s->entries, s->capentries * sizeof *s->entries);
    }
    int handle = s->next_handle++;
    s->entries[s->nentries++] = (tsr_qix__entry_t){handle, type, obj};
    if (iface != NULL) {
        json_t *o = json_object();
        json_object_set_new(o, "qType", json_string(type->qtype));
        json_object_set_new(o, "qHandle", json_integer(handle));
        if (generic_type != NULL) {
            json_object_set_new(o, "qGenericType", json_string(generic_type));
        }
        if (generic_id != NULL) {
            json_object_set_new(o, "qGenericId", json_string(generic_id));
        }
        *iface = o;
    }
    return handle;
}

static void release_entry(tsr_qix__entry_t *e) {
    if (e->type->release != NULL) {
        e->type->release(e->obj);
    }
}

void tsr_qix_call_close_handle(tsr_qix_call_t *call, int handle) {
    tsr_qix_session_t *s = call->s;
    tsr_qix__entry_t *e = tsr_qix__session_find(s, handle);
    if (e == NULL) {
        return;
    }
    tsr_qix__entry_t copy = *e;
    size_t i = (size_t)(e - s->entries);
    memmove(&s->entries[i], &s->entries[i + 1], (s->nentries - i - 1) * sizeof *s->entries);
    s->nentries--;
    if (handle == s->doc_handle) {
        s->doc_handle = 0;
        free(s->doc_id);
        s->doc_id = NULL;
    }
    release_entry(&copy);
    tsr_qix_call_add_close(call, handle);
}

void *tsr_qix_session_object(tsr_qix_session_t *s, int handle, const tsr_qix_type_t **type) {
    tsr_qix__entry_t *e = tsr_qix__session_find(s, handle);
    if (type != NULL) {
        *type = e ? e->type : NULL;
    }
    return e ? e->obj : NULL;
}

/* ---- sessions -------------------------------------------------------------------------------- */

tsr_err_t tsr_qix_session_create(const tsr_qix_opts_t *opts, const char *user_id,
                                 const char *app_id, tsr_qix_send_fn send, void *send_ud,
                                 tsr_qix_session_t **out, tsr_error_t *err) {
    if (send == NULL || user_id == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "qix session: send and user_id are required");
    }
    tsr_qix_session_t *s = tsr_xcalloc(1, sizeof *s);
    if (opts != NULL) {
        s->backend = opts->backend;
    }
    s->user_id = tsr_xstrdup(user_id);
    if (app_id != NULL && app_id[0] != '\0' && strcmp(app_id, "engineData") != 0) {
        s->app_id = tsr_xstrdup(app_id);
    }
    s->send = send;
    s->send_ud = send_ud;
    s->next_handle = 1;
    pthread_mutex_init(&s->mu, NULL);
    *out = s;
    return TSR_OK;
}

void tsr_qix_session_destroy(tsr_qix_session_t *s) {
    if (s == NULL) {
        return;
    }
    /* Newest first: objects may point into the document they came from. */
    while (s->nentries > 0) {
        tsr_qix__entry_t e = s->entries[--s->nentries];
        release_entry(&e);
    }
    free(s->entries);
    free(s->doc_id);
    free(s->user_id);
    free(s->app_id);
    tsr_qix__ints_cleanup(&s->pending);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

const char *tsr_qix_session_user(const tsr_qix_session_t *s) {
    return s->user_id;
}

const char *tsr_qix_session_app(const tsr_qix_session_t *s) {
    return s->app_id;
}

static void send_json(tsr_qix_session_t *s, json_t *msg) {
    char *text = json_dumps(msg, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(msg);
    if (text == NULL) {
        /* Only allocation failure gets here: small, so treat like tsr_xmalloc. */
        tsr_log_error(NULL, "qix: cannot format a message");
        abort();
    }
    s->send(s->send_ud, text, strlen(text));
    free(text);
}

void tsr_qix_session_start(tsr_qix_session_t *s) {
    json_t *m = json_object();
    json_object_set_new(m, "jsonrpc", json_string("2.0"));
    json_object_set_new(m, "method", json_string("OnConnected"));
    json_t *p = json_object();
    json_object_set_new(p, "qSessionState", json_string("SESSION_CREATED"));
    json_object_set_new(m, "params", p);
    send_json(s, m);
}

void tsr_qix_session_push_change(tsr_qix_session_t *s, const int *handles, size_t n) {
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < n; i++) {
        tsr_qix__ints_add(&s->pending, handles[i]);
    }
    void (*wake)(void *) = s->wake;
    void *wake_ud = s->wake_ud;
    pthread_mutex_unlock(&s->mu);
    if (wake != NULL) {
        wake(wake_ud);
    }
}

void tsr_qix_session_request_close(tsr_qix_session_t *s, uint16_t code, const char *reason) {
    if (s == NULL || code == 0) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    bool first = s->close_code == 0;
    if (first) {
        s->close_code = code;
        snprintf(s->close_reason, sizeof s->close_reason, "%s", reason != NULL ? reason : "");
    }
    void (*wake)(void *) = s->wake;
    void *wake_ud = s->wake_ud;
    pthread_mutex_unlock(&s->mu);
    if (first && wake != NULL) {
        wake(wake_ud);
    }
}

uint16_t tsr_qix_session_close_requested(tsr_qix_session_t *s, char *reason, size_t cap) {
    pthread_mutex_lock(&s->mu);
    uint16_t code = s->close_code;
    if (reason != NULL && cap > 0) {
        snprintf(reason, cap, "%s", s->close_reason);
    }
    pthread_mutex_unlock(&s->mu);
    return code;
}

void tsr_qix_session_flush(tsr_qix_session_t *s) {
    pthread_mutex_lock(&s->mu);
    tsr_qix__ints_t pending = s->pending;
    s->pending = (tsr_qix__ints_t){0};
    pthread_mutex_unlock(&s->mu);
    /* Handles closed since they were queued mean nothing to the client any more. */
    tsr_qix__ints_t open = {0};
    for (size_t i = 0; i < pending.n; i++) {
        if (pending.v[i] == TSR_QIX__GLOBAL_HANDLE ||
            tsr_qix__session_find(s, pending.v[i]) != NULL) {
            tsr_qix__ints_add(&open, pending.v[i]);
        }
    }
    tsr_qix__ints_cleanup(&pending);
    if (open.n > 0) {
        json_t *m = json_object();
        json_object_set_new(m, "jsonrpc", json_string("2.0"));
        json_object_set_new(m, "change", ints_json(&open));
        send_json(s, m);
    }
    tsr_qix__ints_cleanup(&open);
}

/* ---- one message ------------------------------------------------------------------------------
 */

static void send_error(tsr_qix_session_t *s, json_t *id, int code, const char *parameter,
                       const char *message, const tsr_qix__ints_t *change,
                       const tsr_qix__ints_t *close) {
    json_t *m = json_object();
    json_object_set_new(m, "jsonrpc", json_string("2.0"));
    json_object_set(m, "id", id ? id : json_null());
    json_t *e = json_object();
    json_object_set_new(e, "code", json_integer(code));
    json_object_set_new(e, "parameter", json_string(parameter ? parameter : ""));
    json_object_set_new(e, "message", json_string(message ? message : ""));
    json_object_set_new(m, "error", e);
    if (change != NULL && change->n > 0) {
        json_object_set_new(m, "change", ints_json(change));
    }
    if (close != NULL && close->n > 0) {
        json_object_set_new(m, "close", ints_json(close));
    }
    send_json(s, m);
}

static const tsr_qix_method_t *find_method(const tsr_qix_type_t *t, const char *name) {
    for (size_t i = 0; i < t->nmethods; i++) {
        if (strcmp(t->methods[i].name, name) == 0) {
            return &t->methods[i];
        }
    }
    return NULL;
}

static void run_call(tsr_qix_session_t *s, json_t *id, bool respond, int handle, const char *method,
                     json_t *params) {
    const tsr_qix_type_t *type;
    void *obj;
    if (handle == TSR_QIX__GLOBAL_HANDLE) {
        type = &tsr_qix__global_type;
        obj = s;
    } else {
        tsr_qix__entry_t *e = tsr_qix__session_find(s, handle);
        if (e == NULL) {
            if (respond) {
                send_error(s, id, TSR_QIX_ERR_INVALID_PARAMS, "Invalid handle", "Invalid Params",
                           NULL, NULL);
            }
            return;
        }
        type = e->type;
        obj = e->obj;
    }
    const tsr_qix_method_t *m = find_method(type, method);
    if (m == NULL) {
        if (respond) {
            send_error(s, id, TSR_QIX_ERR_METHOD_NOT_FOUND, method, "Method not found", NULL, NULL);
        }
        return;
    }
    tsr_qix_call_t call = {.s = s, .handle = handle, .method = method, .m = m, .params = params};
    tsr_error_t err = {0};
    tsr_err_t rc = m->fn(&call, obj, &err);
    if (rc != TSR_OK && !call.failed) {
        const char *msg;
        int code = tsr_qix_error_code_of(rc, &msg);
        if (code == TSR_QIX_ERR_INTERNAL) {
            /* Details of internal failures go to the log, never to the client. */
            tsr_log_ctx_t ctx = {.user_id = s->user_id};
            tsr_log_error(&ctx, "qix: %s on handle %d failed: %s", method, handle, err.msg);
            tsr_qix_call_error(&call, code, method, msg);
        } else {
            tsr_qix_call_error(&call, code, err.msg[0] ? err.msg : method, msg);
        }
    }
    if (respond) {
        if (call.failed) {
            send_error(s, id, call.err_code, call.err_param, call.err_msg, &call.change,
                       &call.close);
        } else {
            json_t *r = json_object();
            json_object_set_new(r, "jsonrpc", json_string("2.0"));
            json_object_set(r, "id", id);
            json_object_set_new(r, "result", call.result ? call.result : json_object());
            call.result = NULL;
            if (call.change.n > 0) {
                json_object_set_new(r, "change", ints_json(&call.change));
            }
            if (call.close.n > 0) {
                json_object_set_new(r, "close", ints_json(&call.close));
            }
            send_json(s, r);
        }
    }
    json_decref(call.result);
    free(call.err_param);
    free(call.err_msg);
    tsr_qix__ints_cleanup(&call.change);
    tsr_qix__ints_cleanup(&call.close);
}

void tsr_qix_session_handle_message(tsr_qix_session_t *s, const char *msg, size_t len) {
    json_error_t jerr;
    json_t *req = json_loadb(msg, len, 0, &jerr);
    if (req == NULL) {
        send_error(s, NULL, TSR_QIX_ERR_PARSE, jerr.text, "Parse error", NULL, NULL);
        return;
    }
    if (!json_is_object(req)) {
        send_error(s, NULL, TSR_QIX_ERR_INVALID_REQUEST, "request", "Invalid Request", NULL, NULL);
        goto out;
    }
    json_t *id = json_object_get(req, "id");
    if (id != NULL && !json_is_integer(id) && !json_is_string(id) && !json_is_null(id) &&
        !json_is_real(id)) {
        send_error(s, NULL, TSR_QIX_ERR_INVALID_REQUEST, "id", "Invalid Request", NULL, NULL);
        goto out;
    }
    /* A request without id is a JSON-RPC notification: it runs, but nothing is answered. */
    bool respond = id != NULL;
    json_t *ver = json_object_get(req, "jsonrpc");
    if (ver != NULL && !(json_is_string(ver) && strcmp(json_string_value(ver), "2.0") == 0)) {
        if (respond) {
            send_error(s, id, TSR_QIX_ERR_INVALID_REQUEST, "jsonrpc", "Invalid Request", NULL,
                       NULL);
        }
        goto out;
    }
    json_t *method = json_object_get(req, "method");
    if (!json_is_string(method)) {
        if (respond) {
            send_error(s, id, TSR_QIX_ERR_INVALID_REQUEST, "method", "Invalid Request", NULL, NULL);
        }
        goto out;
    }
    json_t *jh = json_object_get(req, "handle");
    if (!json_is_integer(jh) || json_integer_value(jh) < -1 ||
        json_integer_value(jh) > (json_int_t)INT32_MAX) {
        if (respond) {
            send_error(s, id, TSR_QIX_ERR_INVALID_REQUEST, "handle", "Invalid Request", NULL, NULL);
        }
        goto out;
    }
    json_t *params = json_object_get(req, "params");
    if (json_is_null(params)) {
        params = NULL;
    }
    if (params != NULL && !json_is_array(params) && !json_is_object(params)) {
        if (respond) {
            send_error(s, id, TSR_QIX_ERR_INVALID_PARAMS, "params", "Invalid Params", NULL, NULL);
        }
        goto out;
    }
    /* The request's "delta" flag is ignored: responses never use the delta form (qix.md §4). */
    run_call(s, id, respond, (int)json_integer_value(jh), json_string_value(method), params);
out:
    json_decref(req);
}
