/*
 * Unit tests of pkg/qix: the JSON-RPC message layer in-process (a collecting send function
 * instead of a socket), and the WebSocket transport over a real loopback socket with a
 * minimal RFC 6455 client written here. The document backend is a tiny in-memory TEST
 * FIXTURE (fixture_*), not product code: a Doc with GetAppLayout/GetAppProperties/
 * CreateSessionObject/GetObject/DestroySessionObject/ClearAll and GenericObjects whose
 * GetLayout echoes their properties.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "qix.h"

/* ---- test fixture: an in-memory document backend -------------------------------------------- */

typedef struct fixture_doc fixture_doc_t;

typedef struct {
    fixture_doc_t *doc;
    char *id;
    int handle;
    json_t *props;
} fixture_obj_t;

struct fixture_doc {
    char *name;
    fixture_obj_t *objs[64];
    size_t nobjs;
    unsigned next_id;
};

static void fixture_obj_release(void *p) {
    fixture_obj_t *o = p;
    fixture_doc_t *d = o->doc;
    for (size_t i = 0; i < d->nobjs; i++) {
        if (d->objs[i] == o) {
            d->objs[i] = d->objs[--d->nobjs];
            break;
        }
    }
    json_decref(o->props);
    free(o->id);
    free(o);
}

static tsr_err_t fixture_get_layout(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    fixture_obj_t *o = obj;
    json_t *layout = json_deep_copy(o->props);
    json_object_set_new(layout, "qSelectionInfo", json_object());
    json_object_set_new(layout, "qMeta", json_object());
    tsr_qix_call_result(call, json_pack("{s:o}", "qLayout", layout));
    return TSR_OK;
}

static tsr_err_t fixture_get_properties(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    fixture_obj_t *o = obj;
    tsr_qix_call_result(call, json_pack("{s:O}", "qProp", o->props));
    return TSR_OK;
}

static tsr_err_t fixture_set_properties(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    fixture_obj_t *o = obj;
    json_t *prop;
    tsr_err_t rc = tsr_qix_param_json(call, 0, false, &prop);
    if (rc != TSR_OK) {
        return rc;
    }
    if (prop == NULL) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMS, "qProp", "Invalid Params");
    }
    json_t *info = json_object_get(o->props, "qInfo");
    json_incref(info);
    json_decref(o->props);
    o->props = json_deep_copy(prop);
    json_object_set_new(o->props, "qInfo", info);
    tsr_qix_call_add_change(call, tsr_qix_call_handle(call));
    return TSR_OK;
}

static const tsr_qix_method_t fixture_obj_methods[] = {
    {"GetLayout", fixture_get_layout, {NULL}},
    {"GetProperties", fixture_get_properties, {NULL}},
    {"SetProperties", fixture_set_properties, {"qProp", NULL}},
};
static const tsr_qix_type_t fixture_obj_type = {"GenericObject", fixture_obj_methods, 3,
                                                fixture_obj_release};

static tsr_err_t fixture_app_layout(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    fixture_doc_t *d = obj;
    tsr_qix_call_result(call, json_pack("{s:{s:s,s:s,s:[],s:{}}}", "qLayout", "qTitle", d->name,
                                        "qFileName", d->name, "qStateNames", "qLocaleInfo"));
    return TSR_OK;
}

static tsr_err_t fixture_app_properties(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    (void)obj;
    tsr_qix_call_result(call, json_pack("{s:{s:s}}", "qProp", "sheetTitleBgColor", "#fff"));
    return TSR_OK;
}

static tsr_err_t fixture_create_session_object(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    fixture_doc_t *d = obj;
    json_t *prop;
    tsr_err_t rc = tsr_qix_param_json(call, 0, false, &prop);
    if (rc != TSR_OK) {
        return rc;
    }
    if (prop == NULL || d->nobjs == 64) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMS, "qProp", "Invalid Params");
    }
    fixture_obj_t *o = calloc(1, sizeof *o);
    o->doc = d;
    o->props = json_deep_copy(prop);
    json_t *info = json_object_get(o->props, "qInfo");
    if (!json_is_object(info)) {
        info = json_object();
        json_object_set_new(o->props, "qInfo", info);
    }
    const char *id = json_string_value(json_object_get(info, "qId"));
    char buf[32];
    if (id == NULL || id[0] == '\0') {
        snprintf(buf, sizeof buf, "obj-%u", ++d->next_id);
        json_object_set_new(info, "qId", json_string(buf));
        id = buf;
    }
    o->id = strdup(id);
    const char *type = json_string_value(json_object_get(info, "qType"));
    d->objs[d->nobjs++] = o;
    json_t *iface = NULL;
    o->handle = tsr_qix_call_open_handle(call, &fixture_obj_type, o, type, o->id, &iface);
    tsr_qix_call_result(call, json_pack("{s:o}", "qReturn", iface));
    return TSR_OK;
}

static fixture_obj_t *fixture_find(fixture_doc_t *d, const char *id) {
    for (size_t i = 0; i < d->nobjs; i++) {
        if (strcmp(d->objs[i]->id, id) == 0) {
            return d->objs[i];
        }
    }
    return NULL;
}

static tsr_err_t fixture_get_object(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    fixture_doc_t *d = obj;
    const char *id;
    tsr_err_t rc = tsr_qix_param_string(call, 0, "", &id);
    if (rc != TSR_OK) {
        return rc;
    }
    fixture_obj_t *o = fixture_find(d, id);
    if (o == NULL) {
        /* Through the error mapping: TSR_ENOTFOUND is code 2 "Object not found". */
        return tsr_error_set(err, TSR_ENOTFOUND, "%s", id);
    }
    const char *type =
        json_string_value(json_object_get(json_object_get(o->props, "qInfo"), "qType"));
    tsr_qix_call_result(call,
                        json_pack("{s:{s:s,s:i,s:s?,s:s}}", "qReturn", "qType", "GenericObject",
                                  "qHandle", o->handle, "qGenericType", type, "qGenericId", o->id));
    return TSR_OK;
}

static tsr_err_t fixture_destroy_session_object(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    fixture_doc_t *d = obj;
    const char *id;
    tsr_err_t rc = tsr_qix_param_string(call, 0, "", &id);
    if (rc != TSR_OK) {
        return rc;
    }
    fixture_obj_t *o = fixture_find(d, id);
    if (o != NULL) {
        tsr_qix_call_close_handle(call, o->handle);
    }
    tsr_qix_call_result(call, json_pack("{s:b}", "qSuccess", o != NULL));
    return TSR_OK;
}

static tsr_err_t fixture_clear_all(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    fixture_doc_t *d = obj;
    bool locked;
    const char *state;
    tsr_err_t rc = tsr_qix_param_bool(call, 0, false, &locked);
    if (rc == TSR_OK) {
        rc = tsr_qix_param_string(call, 1, "$", &state);
    }
    if (rc != TSR_OK) {
        return rc;
    }
    for (size_t i = 0; i < d->nobjs; i++) {
        tsr_qix_call_add_change(call, d->objs[i]->handle);
    }
    /* Echo what was understood so the test can check defaults and names. */
    tsr_qix_call_result(call, json_pack("{s:b,s:s}", "locked", locked, "state", state));
    return TSR_OK;
}

/* Pretends to reload: answers, then invalidates every handle with an unsolicited change
 * notification (the way a real reload or another connection's selections would). */
static tsr_err_t fixture_do_reload(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    fixture_doc_t *d = obj;
    int hs[65];
    size_t n = 0;
    hs[n++] = tsr_qix_call_handle(call);
    for (size_t i = 0; i < d->nobjs; i++) {
        hs[n++] = d->objs[i]->handle;
    }
    tsr_qix_session_push_change(tsr_qix_call_session(call), hs, n);
    tsr_qix_call_result(call, json_pack("{s:b}", "qReturn", 1));
    return TSR_OK;
}

/* The session of the last document opened, until that document is released: what a backend
 * keeps to reach its sessions from other threads (under its own lock). */
static pthread_mutex_t opened_mu = PTHREAD_MUTEX_INITIALIZER;
static tsr_qix_session_t *opened_session;
static void *opened_doc;

static void fixture_doc_release(void *p) {
    fixture_doc_t *d = p;
    pthread_mutex_lock(&opened_mu);
    if (opened_doc == d) {
        opened_session = NULL;
        opened_doc = NULL;
    }
    pthread_mutex_unlock(&opened_mu);
    free(d->name);
    free(d);
}

static const tsr_qix_method_t fixture_doc_methods[] = {
    {"ClearAll", fixture_clear_all, {"qLockedAlso", "qStateName", NULL}},
    {"CreateSessionObject", fixture_create_session_object, {"qProp", NULL}},
    {"DestroySessionObject", fixture_destroy_session_object, {"qId", NULL}},
    {"DoReload", fixture_do_reload, {"qMode", "qPartial", "qDebug", NULL}},
    {"GetAppLayout", fixture_app_layout, {NULL}},
    {"GetAppProperties", fixture_app_properties, {NULL}},
    {"GetObject", fixture_get_object, {"qId", NULL}},
};
static const tsr_qix_type_t fixture_doc_type = {"Doc", fixture_doc_methods, 7, fixture_doc_release};

static tsr_err_t fixture_open_doc(void *ud, tsr_qix_session_t *s, const char *app_id,
                                  const char *user_id, bool no_data, const tsr_qix_type_t **type,
                                  void **doc, tsr_error_t *err) {
    (void)ud;
    (void)user_id;
    (void)no_data;
    if (strcmp(app_id, "missing") == 0) {
        return tsr_error_set(err, TSR_ENOTFOUND, "no app %s", app_id);
    }
    fixture_doc_t *d = calloc(1, sizeof *d);
    d->name = strdup(app_id);
    *type = &fixture_doc_type;
    *doc = d;
    pthread_mutex_lock(&opened_mu);
    opened_session = s;
    opened_doc = d;
    pthread_mutex_unlock(&opened_mu);
    return TSR_OK;
}

static tsr_err_t fixture_list_docs(void *ud, const char *user_id, json_t **entries,
                                   tsr_error_t *err) {
    (void)ud;
    (void)user_id;
    (void)err;
    *entries = json_pack("[{s:s,s:s}]", "qDocName", "demo", "qDocId", "demo");
    return TSR_OK;
}

static tsr_err_t fixture_check_app(void *ud, const char *user_id, const char *app_id,
                                   tsr_error_t *err) {
    (void)ud;
    (void)user_id;
    if (strcmp(app_id, "missing") == 0) {
        return tsr_error_set(err, TSR_ENOTFOUND, "no such app");
    }
    if (strcmp(app_id, "secret") == 0) {
        return tsr_error_set(err, TSR_EFORBIDDEN, "not yours");
    }
    if (strcmp(app_id, "busy") == 0) {
        return tsr_error_set(err, TSR_EUNAVAILABLE, "access: spaces answered 429");
    }
    return TSR_OK;
}

static tsr_qix_opts_t fixture_opts(void) {
    tsr_qix_opts_t o;
    memset(&o, 0, sizeof o);
    o.backend.open_doc = fixture_open_doc;
    o.backend.list_docs = fixture_list_docs;
    o.backend.check_app = fixture_check_app;
    return o;
}

/* ---- in-process harness: a session whose frames are collected ---------------------------------
 */

typedef struct {
    json_t *frames; /* array of parsed frames */
} sink_t;

static void sink_send(void *ud, const char *text, size_t len) {
    sink_t *k = ud;
    json_error_t e;
    json_t *v = json_loadb(text, len, 0, &e);
    ck_assert_msg(v != NULL, "session sent invalid JSON: %.*s", (int)len, text);
    json_array_append_new(k->frames, v);
}

typedef struct {
    sink_t sink;
    tsr_qix_session_t *s;
} harness_t;

static void harness_init(harness_t *t, const char *app) {
    t->sink.frames = json_array();
    tsr_qix_opts_t o = fixture_opts();
    tsr_error_t err;
    ck_assert_int_eq(tsr_qix_session_create(&o, "alice", app, sink_send, &t->sink, &t->s, &err),
                     TSR_OK);
}

static void harness_cleanup(harness_t *t) {
    tsr_qix_session_destroy(t->s);
    json_decref(t->sink.frames);
}

/* Send one message and return the single frame it produced (borrowed from the sink). */
static json_t *call(harness_t *t, const char *msg) {
    size_t before = json_array_size(t->sink.frames);
    tsr_qix_session_handle_message(t->s, msg, strlen(msg));
    ck_assert_uint_eq(json_array_size(t->sink.frames), before + 1);
    return json_array_get(t->sink.frames, before);
}

static int err_code(json_t *resp) {
    json_t *e = json_object_get(resp, "error");
    ck_assert_msg(json_is_object(e), "expected an error response");
    return (int)json_integer_value(json_object_get(e, "code"));
}

static const char *err_field(json_t *resp, const char *field) {
    return json_string_value(json_object_get(json_object_get(resp, "error"), field));
}

static json_t *result(json_t *resp) {
    json_t *r = json_object_get(resp, "result");
    ck_assert_msg(json_is_object(r), "expected an object result");
    return r;
}

static int open_demo(harness_t *t) {
    json_t *r =
        call(t, "{\"delta\":true,\"handle\":-1,\"method\":\"OpenDoc\",\"params\":[\"demo\"],"
                "\"id\":1,\"jsonrpc\":\"2.0\"}");
    json_t *q = json_object_get(result(r), "qReturn");
    ck_assert_str_eq(json_string_value(json_object_get(q, "qType")), "Doc");
    return (int)json_integer_value(json_object_get(q, "qHandle"));
}

/* ---- message layer tests ------------------------------------------------------------------------
 */

START_TEST(test_session_start_first_frame_is_onconnected) {
    harness_t t;
    harness_init(&t, "demo");
    tsr_qix_session_start(t.s);
    json_t *f = json_array_get(t.sink.frames, 0);
    ck_assert_str_eq(json_string_value(json_object_get(f, "method")), "OnConnected");
    ck_assert_str_eq(
        json_string_value(json_object_get(json_object_get(f, "params"), "qSessionState")),
        "SESSION_CREATED");
    ck_assert_ptr_null(json_object_get(f, "id"));
    harness_cleanup(&t);
}
END_TEST

START_TEST(test_handle_message_unknown_method_returns_32601_with_method) {
    harness_t t;
    harness_init(&t, NULL);
    json_t *r = call(&t, "{\"jsonrpc\":\"2.0\",\"id\":7,\"handle\":-1,\"method\":\"NoSuch\"}");
    ck_assert_int_eq(err_code(r), -32601);
    ck_assert_str_eq(err_field(r, "parameter"), "NoSuch");
    ck_assert_str_eq(err_field(r, "message"), "Method not found");
    ck_assert_int_eq(json_integer_value(json_object_get(r, "id")), 7);
    ck_assert_ptr_null(json_object_get(r, "result"));
    harness_cleanup(&t);
}
END_TEST

START_TEST(test_handle_message_unknown_handle_returns_invalid_handle) {
    harness_t t;
    harness_init(&t, NULL);
    json_t *r = call(&t, "{\"jsonrpc\":\"2.0\",\"id\":2,\"handle\":5,\"method\":\"GetLayout\"}");
    ck_assert_int_eq(err_code(r), -32602);
    ck_assert_str_eq(err_field(r, "parameter"), "Invalid handle");
    r = call(&t, "{\"jsonrpc\":\"2.0\",\"id\":3,\"handle\":0,\"method\":\"GetLayout\"}");
    ck_assert_int_eq(err_code(r), -32602);
    r = call(&t, "{\"jsonrpc\":\"2.0\",\"id\":4,\"handle\":-7,\"method\":\"GetLayout\"}");
    ck_assert_int_eq(err_code(r), -32600);
    harness_cleanup(&t);
}
END_TEST

START_TEST(test_handle_message_malformed_json_returns_parse_error_null_id) {
    harness_t t;
    harness_init(&t, NULL);
    json_t *r = call(&t, "{\"jsonrpc\":\"2.0\",\"id\":1,");
    ck_assert_int_eq(err_code(r), -32700);
    ck_assert(json_is_null(json_object_get(r, "id")));
    r = call(&t, "[1,2]");
    ck_assert_int_eq(err_code(r), -32600);
    r = call(&t, "{\"id\":{},\"handle\":-1,\"method\":\"EngineVersion\"}");
    ck_assert_int_eq(err_code(r), -32600);
    r = call(&t, "{\"id\":9,\"handle\":-1}");
    ck_assert_int_eq(err_code(r), -32600);
    ck_assert_int_eq(json_integer_value(json_object_get(r, "id")), 9);
    r = call(&t, "{\"id\":9,\"handle\":-1,\"method\":\"EngineVersion\",\"params\":5}");
    ck_assert_int_eq(err_code(r), -32602);
    harness_cleanup(&t);
}
END_TEST

START_TEST(test_handle_message_id_is_echoed_exactly) {
    harness_t t;
    harness_init(&t, NULL);
    json_t *r = call(&t, "{\"id\":\"abc-1\",\"handle\":-1,\"method\":\"EngineVersion\"}");
    ck_assert_str_eq(json_string_value(json_object_get(r, "id")), "abc-1");
    ck_assert_str_eq(json_string_value(json_object_get(r, "jsonrpc")), "2.0");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(result(r), "qVersion"),
                                                       "qComponentVersion")),
                     TSR_QIX_ENGINE_VERSION);
    harness_cleanup(&t);
}
END_TEST

START_TEST(test_handle_message_without_id_gets_no_response) {
    harness_t t;
    harness_init(&t, NULL);
    const char *m = "{\"handle\":-1,\"method\":\"EngineVersion\"}";
    tsr_qix_session_handle_message(t.s, m, strlen(m));
    ck_assert_uint_eq(json_array_size(t.sink.frames), 0);
    harness_cleanup(&t);
}
END_TEST

START_TEST(test_global_methods_return_object_results) {
    harness_t t;
    harness_init(&t, NULL);
    static const char *const methods[] = {"IsDesktopMode",    "ProductVersion", "QTProduct",
                                          "GetConfiguration", "CancelRequest",  "OSName",
                                          "IsPersonalMode",   "GetProgress"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        char m[160];
        snprintf(m, sizeof m, "{\"id\":%zu,\"handle\":-1,\"method\":\"%s\",\"params\":[]}", i,
                 methods[i]);
        result(call(&t, m));
    }
    json_t *r = call(&t, "{\"id\":1,\"handle\":-1,\"method\":\"IsDesktopMode\"}");
    ck_assert(json_is_false(json_object_get(result(r), "qReturn")));
    r = call(&t, "{\"id\":1,\"handle\":-1,\"method\":\"GetAuthenticatedUser\"}");
    ck_assert_str_eq(json_string_value(json_object_get(result(r), "qReturn")),
                     "UserDirectory=TESSERA; UserId=alice");
    r = call(&t, "{\"id\":1,\"handle\":-1,\"method\":\"GetDocList\"}");
    json_t *list = json_object_get(result(r), "qDocList");
    ck_assert_uint_eq(json_array_size(list), 1);
    r = call(&t, "{\"id\":1,\"handle\":-1,\"method\":\"GetActiveDoc\"}");
    ck_assert_int_eq(err_code(r), 1003);
    r = call(&t, "{\"id\":1,\"handle\":-1,\"method\":\"CreateApp\",\"params\":[\"x\"]}");
    ck_assert_int_eq(err_code(r), 20);
    ck_assert_str_eq(err_field(r, "parameter"), "CreateApp");
    r = call(&t, "{\"id\":1,\"handle\":-1,\"method\":\"GetUniqueID\"}");
    ck_assert_uint_eq(strlen(json_string_value(json_object_get(result(r), "qUniqueID"))), 24);
    harness_cleanup(&t);
}
END_TEST

START_TEST(test_open_doc_params_array_object_and_nulls_are_accepted) {
    harness_t t;
    harness_init(&t, NULL);
    json_t *r = call(&t, "{\"id\":1,\"handle\":-1,\"method\":\"OpenDoc\","
                         "\"params\":{\"qDocName\":\"demo\",\"qNoData\":null}}");
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(result(r), "qReturn"), "qHandle")), 1);
    harness_cleanup(&t);
    harness_init(&t, NULL);
    r = call(&t, "{\"id\":1,\"handle\":-1,\"method\":\"OpenDoc\","
                 "\"params\":[\"demo\",\"\",\"\",\"\",false]}");
    ck_assert_str_eq(
        json_string_value(json_object_get(json_object_get(result(r), "qReturn"), "qGenericId")),
        "demo");
    /* A second OpenDoc on the same session is refused like Qlik does. */
    r = call(&t, "{\"id\":2,\"handle\":-1,\"method\":\"OpenDoc\",\"params\":[\"demo\"]}");
    ck_assert_int_eq(err_code(r), 1002);
    /* Defaults: [] and {} and [null, null] mean qLockedAlso=false, qStateName="$". */
    const char *variants[] = {
        "{\"id\":3,\"handle\":1,\"method\":\"ClearAll\",\"params\":[]}",
        "{\"id\":3,\"handle\":1,\"method\":\"ClearAll\"}",
        "{\"id\":3,\"handle\":1,\"method\":\"ClearAll\",\"params\":[null,null]}",
        "{\"id\":3,\"handle\":1,\"method\":\"ClearAll\",\"params\":{}}",
    };
    for (size_t i = 0; i < 4; i++) {
        r = result(call(&t, variants[i]));
        ck_assert(json_is_false(json_object_get(r, "locked")));
        ck_assert_str_eq(json_string_value(json_object_get(r, "state")), "$");
    }
    r = result(call(&t, "{\"id\":4,\"handle\":1,\"method\":\"ClearAll\","
                        "\"params\":{\"qStateName\":\"B\",\"qLockedAlso\":true}}"));
    ck_assert(json_is_true(json_object_get(r, "locked")));
    ck_assert_str_eq(json_string_value(json_object_get(r, "state")), "B");
    harness_cleanup(&t);
}
END_TEST

START_TEST(test_param_wrong_type_returns_invalid_params_naming_it) {
    harness_t t;
    harness_init(&t, NULL);
    json_t *r = call(&t, "{\"id\":1,\"handle\":-1,\"method\":\"OpenDoc\",\"params\":[42]}");
    ck_assert_int_eq(err_code(r), -32602);
    ck_assert_str_eq(err_field(r, "parameter"), "qDocName");
    r = call(&t, "{\"id\":1,\"handle\":-1,\"method\":\"OpenDoc\",\"params\":[]}");
    ck_assert_int_eq(err_code(r), -32602);
    r = call(&t, "{\"id\":1,\"handle\":-1,\"method\":\"OpenDoc\","
                 "\"params\":[\"demo\",null,null,null,\"yes\"]}");
    ck_assert_int_eq(err_code(r), -32602);
    ck_assert_str_eq(err_field(r, "parameter"), "qNoData");
    r = call(&t, "{\"id\":1,\"handle\":-1,\"method\":\"OpenDoc\",\"params\":[\"missing\"]}");
    ck_assert_int_eq(err_code(r), 1003);
    harness_cleanup(&t);
}
END_TEST

START_TEST(test_open_doc_other_app_than_url_is_access_denied) {
    harness_t t;
    harness_init(&t, "demo");
    json_t *r = call(&t, "{\"id\":1,\"handle\":-1,\"method\":\"OpenDoc\",\"params\":[\"other\"]}");
    ck_assert_int_eq(err_code(r), 5);
    ck_assert_int_eq(open_demo(&t), 1);
    harness_cleanup(&t);
}
END_TEST

START_TEST(test_open_handle_allocates_increasing_handles_with_change_arrays) {
    harness_t t;
    harness_init(&t, "demo");
    json_t *r = call(&t, "{\"id\":1,\"handle\":-1,\"method\":\"OpenDoc\",\"params\":[\"demo\"]}");
    ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(r, "change"), 0)), 1);
    r = call(&t, "{\"id\":2,\"handle\":-1,\"method\":\"GetActiveDoc\"}");
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(result(r), "qReturn"), "qHandle")), 1);
    int prev = 1;
    for (int i = 0; i < 3; i++) {
        r = call(&t, "{\"id\":3,\"handle\":1,\"method\":\"CreateSessionObject\","
                     "\"params\":[{\"qInfo\":{\"qType\":\"barchart\"},\"title\":\"t\"}]}");
        json_t *q = json_object_get(result(r), "qReturn");
        int h = (int)json_integer_value(json_object_get(q, "qHandle"));
        ck_assert_int_gt(h, prev);
        ck_assert_str_eq(json_string_value(json_object_get(q, "qType")), "GenericObject");
        ck_assert_str_eq(json_string_value(json_object_get(q, "qGenericType")), "barchart");
        ck_assert_ptr_nonnull(json_string_value(json_object_get(q, "qGenericId")));
        prev = h;
    }
    r = call(&t, "{\"id\":4,\"handle\":2,\"method\":\"GetLayout\",\"params\":[]}");
    json_t *layout = json_object_get(result(r), "qLayout");
    ck_assert_str_eq(json_string_value(json_object_get(layout, "title")), "t");
    r = call(&t, "{\"id\":5,\"handle\":2,\"method\":\"SetProperties\","
                 "\"params\":[{\"title\":\"u\"}]}");
    ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(r, "change"), 0)), 2);
    r = call(&t, "{\"id\":6,\"handle\":1,\"method\":\"ClearAll\",\"params\":[]}");
    ck_assert_uint_eq(json_array_size(json_object_get(r, "change")), 3);
    harness_cleanup(&t);
}
END_TEST

START_TEST(test_get_object_unknown_returns_code_2_object_not_found) {
    harness_t t;
    harness_init(&t, "demo");
    open_demo(&t);
    json_t *r =
        call(&t, "{\"id\":2,\"handle\":1,\"method\":\"GetObject\",\"params\":[\"FieldList\"]}");
    ck_assert_int_eq(err_code(r), 2);
    ck_assert_str_eq(err_field(r, "message"), "Object not found");
    ck_assert_str_eq(err_field(r, "parameter"), "FieldList");
    harness_cleanup(&t);
}
END_TEST

START_TEST(test_close_handle_reports_close_and_handle_becomes_invalid) {
    harness_t t;
    harness_init(&t, "demo");
    open_demo(&t);
    json_t *r = call(&t, "{\"id\":2,\"handle\":1,\"method\":\"CreateSessionObject\","
                         "\"params\":[{\"qInfo\":{\"qId\":\"x1\",\"qType\":\"t\"}}]}");
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(result(r), "qReturn"), "qHandle")), 2);
    r = call(&t, "{\"id\":3,\"handle\":1,\"method\":\"DestroySessionObject\","
                 "\"params\":{\"qId\":\"x1\"}}");
    ck_assert(json_is_true(json_object_get(result(r), "qSuccess")));
    ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(r, "close"), 0)), 2);
    r = call(&t, "{\"id\":4,\"handle\":2,\"method\":\"GetLayout\"}");
    ck_assert_int_eq(err_code(r), -32602);
    /* Handles are not reused. */
    r = call(&t, "{\"id\":5,\"handle\":1,\"method\":\"CreateSessionObject\","
                 "\"params\":[{\"qInfo\":{\"qType\":\"t\"}}]}");
    ck_assert_int_eq(
        json_integer_value(json_object_get(json_object_get(result(r), "qReturn"), "qHandle")), 3);
    harness_cleanup(&t);
}
END_TEST

START_TEST(test_push_change_flush_sends_idless_change_for_open_handles) {
    harness_t t;
    harness_init(&t, "demo");
    open_demo(&t);
    size_t before = json_array_size(t.sink.frames);
    int hs[] = {1, 1, 99};
    tsr_qix_session_push_change(t.s, hs, 3);
    tsr_qix_session_flush(t.s);
    ck_assert_uint_eq(json_array_size(t.sink.frames), before + 1);
    json_t *f = json_array_get(t.sink.frames, before);
    ck_assert_ptr_null(json_object_get(f, "id"));
    json_t *ch = json_object_get(f, "change");
    ck_assert_uint_eq(json_array_size(ch), 1);
    ck_assert_int_eq(json_integer_value(json_array_get(ch, 0)), 1);
    /* Nothing queued: nothing sent. */
    tsr_qix_session_flush(t.s);
    ck_assert_uint_eq(json_array_size(t.sink.frames), before + 1);
    harness_cleanup(&t);
}
END_TEST

START_TEST(test_request_close_is_recorded_first_wins_and_reason_is_capped) {
    harness_t t;
    harness_init(&t, "demo");
    char reason[200];
    ck_assert_uint_eq(tsr_qix_session_close_requested(t.s, reason, sizeof reason), 0);
    ck_assert_str_eq(reason, "");
    char longr[300];
    memset(longr, 'r', sizeof longr - 1);
    longr[sizeof longr - 1] = '\0';
    tsr_qix_session_request_close(t.s, 4204, longr);
    tsr_qix_session_request_close(t.s, 4000, "later"); /* ignored: the first wins */
    tsr_qix_session_request_close(t.s, 0, "none");     /* not a close */
    ck_assert_uint_eq(tsr_qix_session_close_requested(t.s, reason, sizeof reason), 4204);
    /* Capped to what fits a close frame (125 bytes with the code). */
    ck_assert_uint_eq(strlen(reason), 123);
    ck_assert_uint_eq(tsr_qix_session_close_requested(t.s, NULL, 0), 4204);
    /* A socket-less session sends nothing for it. */
    ck_assert_uint_eq(json_array_size(t.sink.frames), 0);
    harness_cleanup(&t);
}
END_TEST

START_TEST(test_error_code_of_maps_every_code) {
    const char *msg = NULL;
    ck_assert_int_eq(tsr_qix_error_code_of(TSR_ENOTFOUND, &msg), 2);
    ck_assert_str_eq(msg, "Object not found");
    ck_assert_int_eq(tsr_qix_error_code_of(TSR_EFORBIDDEN, &msg), 5);
    ck_assert_int_eq(tsr_qix_error_code_of(TSR_EUNSUPPORTED, &msg), 20);
    ck_assert_int_eq(tsr_qix_error_code_of(TSR_EINTERNAL, &msg), -128);
    ck_assert_int_eq(tsr_qix_error_code_of(TSR_EINVAL, NULL), -32602);
}
END_TEST

/* ---- a minimal WebSocket client (RFC 6455, masked frames) -------------------------------------
 */

static int ws_connect(uint16_t port, const char *path, const char *extra_headers, char *head,
                      size_t headcap) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     "%sSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                     path, extra_headers ? extra_headers : "");
    ck_assert_int_eq(send(fd, req, (size_t)n, 0), n);
    /* Read the response head byte by byte so no frame bytes are swallowed. */
    size_t len = 0;
    while (len + 1 < headcap) {
        ssize_t r = recv(fd, head + len, 1, 0);
        if (r <= 0) {
            break;
        }
        len++;
        if (len >= 4 && memcmp(head + len - 4, "\r\n\r\n", 4) == 0) {
            break;
        }
    }
    head[len] = '\0';
    return fd;
}

static void ws_send(int fd, int opcode, const void *p, size_t n) {
    unsigned char *f = malloc(n + 14);
    size_t i = 0;
    f[i++] = (unsigned char)(0x80 | opcode);
    if (n < 126) {
        f[i++] = (unsigned char)(0x80 | n);
    } else if (n < 65536) {
        f[i++] = 0x80 | 126;
        f[i++] = (unsigned char)(n >> 8);
        f[i++] = (unsigned char)n;
    } else {
        f[i++] = 0x80 | 127;
        for (int k = 7; k >= 0; k--) {
            f[i++] = (unsigned char)((uint64_t)n >> (8 * k));
        }
    }
    const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
    memcpy(f + i, mask, 4);
    i += 4;
    for (size_t k = 0; k < n; k++) {
        f[i + k] = ((const unsigned char *)p)[k] ^ mask[k % 4];
    }
    size_t total = i + n, off = 0;
    while (off < total) {
        ssize_t w = send(fd, f + off, total - off, MSG_NOSIGNAL);
        if (w <= 0) {
            break; /* the server may already have closed on an oversized frame */
        }
        off += (size_t)w;
    }
    free(f);
}

static bool read_full(int fd, void *p, size_t n) {
    size_t off = 0;
    while (off < n) {
        ssize_t r = recv(fd, (char *)p + off, n - off, 0);
        if (r <= 0) {
            return false;
        }
        off += (size_t)r;
    }
    return true;
}

/* One frame from the server: opcode (-1 on EOF/timeout); *payload malloc'd, NUL-terminated. */
static int ws_recv(int fd, char **payload, size_t *len) {
    unsigned char h[2];
    if (!read_full(fd, h, 2)) {
        return -1;
    }
    ck_assert_msg((h[1] & 0x80) == 0, "server frames must not be masked");
    uint64_t n = h[1] & 0x7f;
    if (n == 126) {
        unsigned char e[2];
        ck_assert(read_full(fd, e, 2));
        n = ((uint64_t)e[0] << 8) | e[1];
    } else if (n == 127) {
        unsigned char e[8];
        ck_assert(read_full(fd, e, 8));
        n = 0;
        for (int k = 0; k < 8; k++) {
            n = (n << 8) | e[k];
        }
    }
    char *p = malloc((size_t)n + 1);
    ck_assert(read_full(fd, p, (size_t)n));
    p[n] = '\0';
    *payload = p;
    *len = (size_t)n;
    return h[0] & 0x0f;
}

/* The next text frame as JSON (pings are answered, not returned). */
static json_t *ws_recv_json(int fd) {
    for (;;) {
        char *p;
        size_t n;
        int op = ws_recv(fd, &p, &n);
        ck_assert_int_ge(op, 0);
        if (op == 0x9) {
            ws_send(fd, 0xA, p, n);
            free(p);
            continue;
        }
        ck_assert_msg(op == 0x1, "expected a text frame, got opcode %d", op);
        json_error_t e;
        json_t *v = json_loadb(p, n, 0, &e);
        free(p);
        ck_assert_ptr_nonnull(v);
        return v;
    }
}

/* Read frames until a close frame; return its code (or -1 if the connection just ended). */
static int ws_expect_close(int fd) {
    for (;;) {
        char *p;
        size_t n;
        int op = ws_recv(fd, &p, &n);
        if (op < 0) {
            return -1;
        }
        if (op == 0x8) {
            int code = n >= 2 ? (((unsigned char)p[0] << 8) | (unsigned char)p[1]) : 1005;
            ws_send(fd, 0x8, p, n >= 2 ? 2 : 0);
            free(p);
            return code;
        }
        free(p);
    }
}

static json_t *ws_call(int fd, const char *msg) {
    ws_send(fd, 0x1, msg, strlen(msg));
    return ws_recv_json(fd);
}

typedef struct {
    tsr_httpd_t *h;
    tsr_qix_server_t *q;
} server_t;

static tsr_err_t test_auth(void *ud, tsr_req_t *req, char **user, tsr_error_t *err) {
    (void)ud;
    const char *a = tsr_req_header(req, "Authorization");
    if (a == NULL || strncmp(a, "Bearer ", 7) != 0) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "no token");
    }
    *user = strdup(a + 7);
    return TSR_OK;
}

static unsigned server_ping_ms; /* 0: the default; set by tests of the idle logic */

static void server_start(server_t *s, size_t max_message, bool auth) {
    tsr_qix_opts_t qo = fixture_opts();
    qo.max_message = max_message;
    qo.ping_ms = server_ping_ms;
    qo.close_timeout_ms = 1000;
    if (auth) {
        qo.authenticate = test_auth;
    }
    tsr_error_t err;
    ck_assert_int_eq(tsr_qix_server_create(&qo, &s->q, &err), TSR_OK);
    tsr_httpd_opts_t o;
    memset(&o, 0, sizeof o);
    o.service = "engine-test";
    o.bind = "127.0.0.1";
    o.threads = 2;
    o.max_body = 1 << 16;
    o.on_drain = tsr_qix_server_drain;
    o.drain_ud = s->q;
    ck_assert_int_eq(tsr_httpd_create(&o, &s->h, &err), TSR_OK);
    ck_assert_int_eq(tsr_qix_routes(s->h, s->q, &err), TSR_OK);
    ck_assert_int_eq(tsr_httpd_start(s->h, &err), TSR_OK);
}

static void server_stop(server_t *s) {
    tsr_httpd_stop(s->h, 2000);
    ck_assert_uint_eq(tsr_qix_server_session_count(s->q), 0);
    tsr_httpd_destroy(s->h);
    tsr_qix_server_destroy(s->q);
}

START_TEST(test_ws_session_roundtrip_with_fixture_doc) {
    server_t s;
    server_start(&s, 0, true);
    char head[2048];
    int fd = ws_connect(tsr_httpd_port(s.h), "/app/demo/identity/x",
                        "Authorization: Bearer bob\r\n", head, sizeof head);
    ck_assert_msg(strstr(head, " 101 ") != NULL, "head: %s", head);
    /* One Connection header (libmicrohttpd adds it; a second "Upgrade" token was a bug). */
    ck_assert_msg(strstr(head, "Connection: Upgrade\r\n") != NULL, "head: %s", head);
    /* RFC 6455's sample key and accept. */
    ck_assert_msg(strstr(head, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != NULL, "head: %s", head);
    json_t *f = ws_recv_json(fd);
    ck_assert_str_eq(json_string_value(json_object_get(f, "method")), "OnConnected");
    json_decref(f);
    f = ws_call(fd, "{\"delta\":true,\"handle\":-1,\"method\":\"EngineVersion\",\"params\":[],"
                    "\"id\":1,\"jsonrpc\":\"2.0\"}");
    ck_assert_int_eq(json_integer_value(json_object_get(f, "id")), 1);
    ck_assert_ptr_nonnull(json_object_get(json_object_get(f, "result"), "qVersion"));
    json_decref(f);
    f = ws_call(fd, "{\"handle\":-1,\"method\":\"GetAuthenticatedUser\",\"id\":2}");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(f, "result"), "qReturn")),
                     "UserDirectory=TESSERA; UserId=bob");
    json_decref(f);
    f = ws_call(fd, "{\"handle\":-1,\"method\":\"OpenDoc\",\"params\":[\"demo\"],\"id\":3}");
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_object_get(json_object_get(f, "result"), "qReturn"), "qHandle")),
                     1);
    json_decref(f);
    /* Pipelined: two requests in flight, answered in order. */
    const char *a = "{\"handle\":1,\"method\":\"GetAppLayout\",\"params\":[],\"id\":4}";
    const char *b = "{\"handle\":1,\"method\":\"CreateSessionObject\",\"params\":[{\"qInfo\":"
                    "{\"qType\":\"kpi\"},\"x\":1}],\"id\":5}";
    ws_send(fd, 0x1, a, strlen(a));
    ws_send(fd, 0x1, b, strlen(b));
    f = ws_recv_json(fd);
    ck_assert_int_eq(json_integer_value(json_object_get(f, "id")), 4);
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_object_get(f, "result"), "qLayout"), "qTitle")),
                     "demo");
    json_decref(f);
    f = ws_recv_json(fd);
    ck_assert_int_eq(json_integer_value(json_object_get(f, "id")), 5);
    json_decref(f);
    f = ws_call(fd, "{\"handle\":2,\"method\":\"GetLayout\",\"params\":[],\"id\":6}");
    ck_assert_int_eq(json_integer_value(json_object_get(
                         json_object_get(json_object_get(f, "result"), "qLayout"), "x")),
                     1);
    json_decref(f);
    /* An unsolicited change notification follows the reload's response. */
    f = ws_call(fd, "{\"handle\":1,\"method\":\"DoReload\",\"params\":[],\"id\":7}");
    ck_assert_int_eq(json_integer_value(json_object_get(f, "id")), 7);
    json_decref(f);
    f = ws_recv_json(fd);
    ck_assert_ptr_null(json_object_get(f, "id"));
    ck_assert_uint_eq(json_array_size(json_object_get(f, "change")), 2);
    json_decref(f);
    ws_send(fd, 0x8, "\x03\xe8", 2);
    ck_assert_int_eq(ws_expect_close(fd), 1000);
    close(fd);
    server_stop(&s);
}
END_TEST

START_TEST(test_ws_oversized_message_closes_1009) {
    server_t s;
    server_start(&s, 1024, false);
    char head[2048];
    int fd = ws_connect(tsr_httpd_port(s.h), "/app/engineData", NULL, head, sizeof head);
    ck_assert_msg(strstr(head, " 101 ") != NULL, "head: %s", head);
    json_decref(ws_recv_json(fd));
    char *big = malloc(4096);
    memset(big, ' ', 4096);
    ws_send(fd, 0x1, big, 4096);
    free(big);
    ck_assert_int_eq(ws_expect_close(fd), 1009);
    close(fd);
    server_stop(&s);
}
END_TEST

START_TEST(test_ws_binary_frame_closes_1003) {
    server_t s;
    server_start(&s, 0, false);
    char head[2048];
    int fd = ws_connect(tsr_httpd_port(s.h), "/app/engineData", NULL, head, sizeof head);
    json_decref(ws_recv_json(fd));
    ws_send(fd, 0x2, "\x01\x02", 2);
    ck_assert_int_eq(ws_expect_close(fd), 1003);
    close(fd);
    server_stop(&s);
}
END_TEST

START_TEST(test_ws_unknown_or_forbidden_app_closes_4204_4203) {
    server_t s;
    server_start(&s, 0, false);
    char head[2048];
    int fd = ws_connect(tsr_httpd_port(s.h), "/app/missing", NULL, head, sizeof head);
    ck_assert_msg(strstr(head, " 101 ") != NULL, "head: %s", head);
    ck_assert_int_eq(ws_expect_close(fd), 4204);
    close(fd);
    fd = ws_connect(tsr_httpd_port(s.h), "/app/secret", NULL, head, sizeof head);
    ck_assert_int_eq(ws_expect_close(fd), 4203);
    close(fd);
    /* The decision could not be made (spaces 429, 5xx, timeout): fail at once, 1013. */
    fd = ws_connect(tsr_httpd_port(s.h), "/app/busy", NULL, head, sizeof head);
    ck_assert_msg(strstr(head, " 101 ") != NULL, "head: %s", head);
    ck_assert_int_eq(ws_expect_close(fd), 1013);
    close(fd);
    server_stop(&s);
}
END_TEST

START_TEST(test_ws_handshake_invalid_is_refused_before_upgrade) {
    server_t s;
    server_start(&s, 0, true);
    char head[2048];
    int fd = ws_connect(tsr_httpd_port(s.h), "/app/demo", NULL, head, sizeof head);
    ck_assert_msg(strstr(head, " 401 ") != NULL, "head: %s", head);
    close(fd);
    /* Not an upgrade at all: 400 from the handler through httpd's error mapping. */
    tsr_httpd_response_t resp;
    tsr_httpd_inject(s.h, "GET", "/app/demo", NULL, NULL, 0, &resp);
    ck_assert_uint_eq(resp.status, 400);
    tsr_httpd_response_cleanup(&resp);
    const char *hdrs[] = {"Upgrade",
                          "websocket",
                          "Connection",
                          "Upgrade",
                          "Sec-WebSocket-Version",
                          "8",
                          "Sec-WebSocket-Key",
                          "dGhlIHNhbXBsZSBub25jZQ==",
                          NULL};
    tsr_httpd_inject(s.h, "GET", "/app/demo", hdrs, NULL, 0, &resp);
    ck_assert_uint_eq(resp.status, 400);
    tsr_httpd_response_cleanup(&resp);
    server_stop(&s);
}
END_TEST

static void *stop_thread(void *p) {
    server_t *s = p;
    tsr_httpd_stop(s->h, 3000);
    return NULL;
}

START_TEST(test_ws_stop_during_session_sends_close_4003) {
    server_t s;
    server_start(&s, 0, false);
    char head[2048];
    int fd = ws_connect(tsr_httpd_port(s.h), "/app/demo", NULL, head, sizeof head);
    json_decref(ws_recv_json(fd));
    json_t *f =
        ws_call(fd, "{\"handle\":-1,\"method\":\"OpenDoc\",\"params\":[\"demo\"],\"id\":1}");
    json_decref(f);
    ck_assert_uint_eq(tsr_qix_server_session_count(s.q), 1);
    pthread_t t;
    uint64_t t0 = tsr_mono_ms();
    ck_assert_int_eq(pthread_create(&t, NULL, stop_thread, &s), 0);
    ck_assert_int_eq(ws_expect_close(fd), 4003);
    close(fd);
    pthread_join(t, NULL);
    /* The session ended on the close handshake, well before the grace period. */
    ck_assert_uint_lt(tsr_mono_ms() - t0, 2500);
    ck_assert_uint_eq(tsr_qix_server_session_count(s.q), 0);
    tsr_httpd_destroy(s.h);
    tsr_qix_server_destroy(s.q);
}
END_TEST

typedef struct {
    uint16_t code;
    bool asked; /* a session was open to ask */
} closer_t;

/* Another thread than the session's: what an event consumer does when an app is deleted. */
static void *closer_thread(void *p) {
    closer_t *k = p;
    pthread_mutex_lock(&opened_mu);
    if (opened_session != NULL) {
        tsr_qix_session_request_close(opened_session, k->code, "app deleted");
        tsr_qix_session_request_close(opened_session, 4000, "too late"); /* first one wins */
        k->asked = true;
    }
    pthread_mutex_unlock(&opened_mu);
    return NULL;
}

START_TEST(test_ws_close_requested_from_another_thread_sends_that_code) {
    server_t s;
    server_start(&s, 0, false);
    char head[2048];
    int fd = ws_connect(tsr_httpd_port(s.h), "/app/demo", NULL, head, sizeof head);
    json_decref(ws_recv_json(fd)); /* OnConnected */
    json_t *f =
        ws_call(fd, "{\"handle\":-1,\"method\":\"OpenDoc\",\"params\":[\"demo\"],\"id\":1}");
    ck_assert_ptr_nonnull(json_object_get(f, "result"));
    json_decref(f);
    /* The session still answers before the request. */
    f = ws_call(fd, "{\"handle\":1,\"method\":\"GetAppLayout\",\"id\":2}");
    ck_assert_ptr_nonnull(json_object_get(f, "result"));
    json_decref(f);
    closer_t k = {.code = TSR_QIX_CLOSE_APP_NOT_FOUND};
    pthread_t th;
    uint64_t t0 = tsr_mono_ms();
    ck_assert_int_eq(pthread_create(&th, NULL, closer_thread, &k), 0);
    pthread_join(th, NULL);
    ck_assert(k.asked);
    /* The close frame, with the code and reason asked for, from the session's own thread. */
    int op;
    char *p = NULL;
    size_t n = 0;
    while ((op = ws_recv(fd, &p, &n)) != 0x8) {
        ck_assert_int_ge(op, 0);
        free(p);
    }
    ck_assert_uint_ge(n, 2);
    ck_assert_int_eq(((unsigned char)p[0] << 8) | (unsigned char)p[1], 4204);
    ck_assert_int_eq((int)(n - 2), (int)strlen("app deleted"));
    ck_assert(memcmp(p + 2, "app deleted", n - 2) == 0);
    ws_send(fd, 0x8, p, 2);
    free(p);
    ck_assert_uint_lt(tsr_mono_ms() - t0, 1000);
    close(fd);
    /* The session ended and released its document (nothing left to ask). */
    for (int i = 0; i < 200 && tsr_qix_server_session_count(s.q) > 0; i++) {
        poll(NULL, 0, 10);
    }
    ck_assert_uint_eq(tsr_qix_server_session_count(s.q), 0);
    pthread_mutex_lock(&opened_mu);
    ck_assert_ptr_null(opened_session);
    pthread_mutex_unlock(&opened_mu);
    server_stop(&s);
}
END_TEST

START_TEST(test_ws_idle_client_gets_ping_then_close_1001) {
    server_t s;
    server_ping_ms = 100;
    server_start(&s, 0, false);
    server_ping_ms = 0;
    char head[2048];
    int fd = ws_connect(tsr_httpd_port(s.h), "/app/engineData", NULL, head, sizeof head);
    char *p;
    size_t n;
    ck_assert_int_eq(ws_recv(fd, &p, &n), 0x1); /* OnConnected */
    free(p);
    uint64_t t0 = tsr_mono_ms();
    ck_assert_int_eq(ws_recv(fd, &p, &n), 0x9); /* a ping after 100 ms of silence */
    free(p);
    /* Never answering: three silent intervals close the connection. */
    ck_assert_int_eq(ws_expect_close(fd), 1001);
    ck_assert_uint_ge(tsr_mono_ms() - t0, 150);
    close(fd);
    server_stop(&s);
}
END_TEST

START_TEST(test_server_drain_new_session_is_closed_4003) {
    server_t s;
    server_start(&s, 0, false);
    tsr_qix_server_drain(s.q);
    char head[2048];
    int fd = ws_connect(tsr_httpd_port(s.h), "/app/demo", NULL, head, sizeof head);
    ck_assert_msg(strstr(head, " 101 ") != NULL, "head: %s", head);
    ck_assert_int_eq(ws_expect_close(fd), 4003);
    close(fd);
    server_stop(&s);
}
END_TEST

START_TEST(test_opts_from_config_reads_knobs_and_refuses_out_of_range) {
    tsr_qix_opts_t o;
    memset(&o, 0, sizeof o);
    tsr_error_t err;
    setenv("TSR_QIX_MAX_MESSAGE", "2048", 1);
    setenv("TSR_QIX_PING_MS", "500", 1);
    ck_assert_int_eq(tsr_qix_opts_from_config(&o, &err), TSR_OK);
    ck_assert_uint_eq(o.max_message, 2048);
    ck_assert_uint_eq(o.ping_ms, 500);
    setenv("TSR_QIX_MAX_MESSAGE", "12", 1);
    ck_assert_int_eq(tsr_qix_opts_from_config(&o, &err), TSR_EINVAL);
    unsetenv("TSR_QIX_MAX_MESSAGE");
    unsetenv("TSR_QIX_PING_MS");
    ck_assert_int_eq(tsr_qix_opts_from_config(&o, &err), TSR_OK);
    ck_assert_uint_eq(o.max_message, 4194304);
    ck_assert_uint_eq(o.ping_ms, 30000);
}
END_TEST

/* `test_qix --serve PORTFILE`: the fixture server for tests/integration/test_qix_enigma.sh
 * (real enigma.js in node). Listens on a free loopback port, writes it to PORTFILE, serves
 * until SIGTERM/SIGINT, then drains (sessions get close 4003) and exits 0. */
static int serve(const char *portfile) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    /* Blocked before any thread starts, so only sigwait below receives them. */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    tsr_log_init("qix-fixture", TSR_LOG_INFO, stderr);
    tsr_qix_opts_t qo = fixture_opts();
    qo.authenticate = test_auth;
    tsr_qix_server_t *q = NULL;
    tsr_httpd_t *h = NULL;
    tsr_error_t err;
    tsr_httpd_opts_t o;
    memset(&o, 0, sizeof o);
    o.service = "qix-fixture";
    o.bind = "127.0.0.1";
    o.threads = 2;
    o.max_body = 1 << 16;
    if (tsr_qix_server_create(&qo, &q, &err) != TSR_OK) {
        return 1;
    }
    o.on_drain = tsr_qix_server_drain;
    o.drain_ud = q;
    if (tsr_httpd_create(&o, &h, &err) != TSR_OK || tsr_qix_routes(h, q, &err) != TSR_OK ||
        tsr_httpd_start(h, &err) != TSR_OK) {
        fprintf(stderr, "qix fixture server: %s\n", err.msg);
        return 1;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", portfile);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        return 1;
    }
    fprintf(f, "%u\n", (unsigned)tsr_httpd_port(h));
    fclose(f);
    rename(tmp, portfile);
    int sig = 0;
    sigwait(&set, &sig);
    tsr_httpd_stop(h, 3000);
    tsr_httpd_destroy(h);
    tsr_qix_server_destroy(q);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--serve") == 0) {
        return serve(argv[2]);
    }
    FILE *devnull = fopen("/dev/null", "w");
    tsr_log_init("test", TSR_LOG_INFO, devnull);
    Suite *s = suite_create("qix");
    TCase *tc = tcase_create("jsonrpc");
    tcase_add_test(tc, test_session_start_first_frame_is_onconnected);
    tcase_add_test(tc, test_handle_message_unknown_method_returns_32601_with_method);
    tcase_add_test(tc, test_handle_message_unknown_handle_returns_invalid_handle);
    tcase_add_test(tc, test_handle_message_malformed_json_returns_parse_error_null_id);
    tcase_add_test(tc, test_handle_message_id_is_echoed_exactly);
    tcase_add_test(tc, test_handle_message_without_id_gets_no_response);
    tcase_add_test(tc, test_global_methods_return_object_results);
    tcase_add_test(tc, test_open_doc_params_array_object_and_nulls_are_accepted);
    tcase_add_test(tc, test_param_wrong_type_returns_invalid_params_naming_it);
    tcase_add_test(tc, test_open_doc_other_app_than_url_is_access_denied);
    tcase_add_test(tc, test_open_handle_allocates_increasing_handles_with_change_arrays);
    tcase_add_test(tc, test_get_object_unknown_returns_code_2_object_not_found);
    tcase_add_test(tc, test_close_handle_reports_close_and_handle_becomes_invalid);
    tcase_add_test(tc, test_push_change_flush_sends_idless_change_for_open_handles);
    tcase_add_test(tc, test_error_code_of_maps_every_code);
    tcase_add_test(tc, test_request_close_is_recorded_first_wins_and_reason_is_capped);
    tcase_add_test(tc, test_opts_from_config_reads_knobs_and_refuses_out_of_range);
    suite_add_tcase(s, tc);
    TCase *ws = tcase_create("websocket");
    tcase_set_timeout(ws, 30);
    tcase_add_test(ws, test_ws_session_roundtrip_with_fixture_doc);
    tcase_add_test(ws, test_ws_oversized_message_closes_1009);
    tcase_add_test(ws, test_ws_binary_frame_closes_1003);
    tcase_add_test(ws, test_ws_unknown_or_forbidden_app_closes_4204_4203);
    tcase_add_test(ws, test_ws_handshake_invalid_is_refused_before_upgrade);
    tcase_add_test(ws, test_ws_stop_during_session_sends_close_4003);
    tcase_add_test(ws, test_server_drain_new_session_is_closed_4003);
    tcase_add_test(ws, test_ws_idle_client_gets_ping_then_close_1001);
    tcase_add_test(ws, test_ws_close_requested_from_another_thread_sends_that_code);
    suite_add_tcase(s, ws);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    fclose(devnull);
    return failed == 0 ? 0 : 1;
}
