/*
 * The Global handle (-1): the methods enigma.js, nebula.js and @qlik/api call before and
 * around a document. OpenDoc and GetDocList go through the session's backend; everything else
 * is answered here. Each handler's obj is the session itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qix_int.h"

static json_t *obj1(const char *key, json_t *value) {
    json_t *o = json_object();
    json_object_set_new(o, key, value);
    return o;
}

static tsr_err_t g_engine_version(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)obj;
    (void)err;
    tsr_qix_call_result(
        call, obj1("qVersion", obj1("qComponentVersion", json_string(TSR_QIX_ENGINE_VERSION))));
    return TSR_OK;
}

static tsr_err_t g_product_version(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)obj;
    (void)err;
    tsr_qix_call_result(call, obj1("qReturn", json_string(TSR_QIX_ENGINE_VERSION)));
    return TSR_OK;
}

static tsr_err_t g_qt_product(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)obj;
    (void)err;
    tsr_qix_call_result(call, obj1("qReturn", json_string("Tessera")));
    return TSR_OK;
}

static tsr_err_t g_os_name(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)obj;
    (void)err;
    tsr_qix_call_result(call, obj1("qReturn", json_string("Linux")));
    return TSR_OK;
}

static tsr_err_t g_false(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)obj;
    (void)err;
    tsr_qix_call_result(call, obj1("qReturn", json_false()));
    return TSR_OK;
}

static tsr_err_t g_authenticated_user(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_qix_session_t *s = obj;
    char buf[512];
    snprintf(buf, sizeof buf, "UserDirectory=TESSERA; UserId=%s", s->user_id);
    tsr_qix_call_result(call, obj1("qReturn", json_string(buf)));
    return TSR_OK;
}

static tsr_err_t g_configuration(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)obj;
    (void)err;
    json_t *cfg = json_object();
    json_object_set_new(cfg, "qFeatures", json_object());
    tsr_qix_call_result(call, obj1("qConfig", cfg));
    return TSR_OK;
}

/* Calls on a session run one at a time, so there is never anything in flight to cancel. */
static tsr_err_t g_noop(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)call;
    (void)obj;
    (void)err;
    return TSR_OK;
}

static tsr_err_t g_progress(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)obj;
    (void)err;
    json_t *p = json_object();
    json_object_set_new(p, "qStarted", json_true());
    json_object_set_new(p, "qFinished", json_true());
    json_object_set_new(p, "qCompleted", json_integer(0));
    json_object_set_new(p, "qTotal", json_integer(0));
    json_object_set_new(p, "qKB", json_integer(0));
    json_object_set_new(p, "qMillisecs", json_integer(0));
    json_object_set_new(p, "qUserInteractionWanted", json_false());
    json_object_set_new(p, "qPersistentProgressMessages", json_array());
    json_object_set_new(p, "qErrorData", json_array());
    tsr_qix_call_result(call, obj1("qProgressData", p));
    return TSR_OK;
}

static tsr_err_t g_unique_id(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)obj;
    (void)err;
    char id[25];
    tsr_id_new(id);
    tsr_qix_call_result(call, obj1("qUniqueID", json_string(id)));
    return TSR_OK;
}

tsr_err_t tsr_qix_not_implemented(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)obj;
    (void)err;
    return tsr_qix_call_error(call, TSR_QIX_ERR_NOT_IMPLEMENTED, tsr_qix_call_method(call),
                              "Not implemented");
}

static json_t *doc_iface(const tsr_qix_session_t *s) {
    json_t *o = json_object();
    json_object_set_new(o, "qType", json_string("Doc"));
    json_object_set_new(o, "qHandle", json_integer(s->doc_handle));
    json_object_set_new(o, "qGenericId", json_string(s->doc_id));
    return o;
}

static tsr_err_t g_active_doc(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_qix_session_t *s = obj;
    if (s->doc_handle == 0) {
        /* enigma's resume() reacts to any error here by re-sending its OpenDoc. */
        return tsr_qix_call_error(call, TSR_QIX_ERR_APP_NOT_FOUND, "", "No active document");
    }
    tsr_qix_call_result(call, obj1("qReturn", doc_iface(s)));
    return TSR_OK;
}

static tsr_err_t g_open_doc(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_qix_session_t *s = obj;
    const char *name = NULL;
    bool no_data = false;
    tsr_err_t rc = tsr_qix_param_string(call, 0, NULL, &name);
    if (rc == TSR_OK) {
        rc = tsr_qix_param_bool(call, 4, false, &no_data);
    }
    if (rc != TSR_OK) {
        return rc;
    }
    if (name == NULL || name[0] == '\0') {
        return tsr_qix_call_error(call, TSR_QIX_ERR_INVALID_PARAMS, "qDocName", "Invalid Params");
    }
    /* A connection to /app/<id> is bound to that app: the ingress routed it (and checked
     * access) by the id in the URL, so another app must not be opened through it. */
    if (s->app_id != NULL && strcmp(s->app_id, name) != 0) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_ACCESS_DENIED, name, "Access denied");
    }
    if (s->doc_handle != 0) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_APP_ALREADY_OPEN, name, "App already open");
    }
    if (s->backend.open_doc == NULL) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_APP_NOT_FOUND, name, "App not found");
    }
    const tsr_qix_type_t *type = NULL;
    void *doc = NULL;
    rc = s->backend.open_doc(s->backend.ud, s, name, s->user_id, no_data, &type, &doc, err);
    if (rc == TSR_ENOTFOUND) {
        return tsr_qix_call_error(call, TSR_QIX_ERR_APP_NOT_FOUND, name, "App not found");
    }
    if (rc != TSR_OK) {
        return rc;
    }
    json_t *iface = NULL;
    int h = tsr_qix_call_open_handle(call, type, doc, NULL, name, &iface);
    s->doc_handle = h;
    s->doc_id = tsr_xstrdup(name);
    tsr_qix_call_result(call, obj1("qReturn", iface));
    tsr_qix_call_add_change(call, h);
    return TSR_OK;
}

static tsr_err_t g_doc_list(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    tsr_qix_session_t *s = obj;
    json_t *list = NULL;
    if (s->backend.list_docs != NULL) {
        tsr_err_t rc = s->backend.list_docs(s->backend.ud, s->user_id, &list, err);
        if (rc != TSR_OK) {
            return rc;
        }
    }
    if (!json_is_array(list)) {
        json_decref(list);
        list = json_array();
    }
    tsr_qix_call_result(call, obj1("qDocList", list));
    return TSR_OK;
}

/* Every Global method of the schema enigma.js ships (12.2027.0): the ones not offered yet
 * answer 20 "Not implemented", which clients handle better than -32601. */
#define NI tsr_qix_not_implemented
static const tsr_qix_method_t global_methods[] = {
    {"AbortAll", g_noop, {NULL}},
    {"AbortRequest", g_noop, {"qRequestId", NULL}},
    {"AllowCreateApp", g_false, {NULL}},
    {"CancelReload", NI, {NULL}},
    {"CancelRequest", g_noop, {"qRequestId", NULL}},
    {"ConfigureReload", NI, {NULL}},
    {"CopyApp", NI, {NULL}},
    {"CreateApp", NI, {NULL}},
    {"CreateDocEx", NI, {NULL}},
    {"CreateSessionApp", NI, {NULL}},
    {"CreateSessionAppFromApp", NI, {NULL}},
    {"DeleteApp", NI, {NULL}},
    {"EngineVersion", g_engine_version, {NULL}},
    {"ExportApp", NI, {NULL}},
    {"GetActiveDoc", g_active_doc, {NULL}},
    {"GetAppEntry", NI, {NULL}},
    {"GetAuthenticatedUser", g_authenticated_user, {NULL}},
    {"GetBNF", NI, {NULL}},
    {"GetBaseBNF", NI, {NULL}},
    {"GetBaseBNFHash", NI, {NULL}},
    {"GetBaseBNFString", NI, {NULL}},
    {"GetConfiguration", g_configuration, {NULL}},
    {"GetCustomConnectors", NI, {NULL}},
    {"GetDatabasesFromConnectionString", NI, {NULL}},
    {"GetDefaultAppFolder", NI, {NULL}},
    {"GetDocList", g_doc_list, {NULL}},
    {"GetFolderItemsForPath", NI, {NULL}},
    {"GetFunctions", NI, {NULL}},
    {"GetInteract", NI, {NULL}},
    {"GetLogicalDriveStrings", NI, {NULL}},
    {"GetMyDocumentsFolder", NI, {NULL}},
    {"GetOdbcDsns", NI, {NULL}},
    {"GetOleDbProviders", NI, {NULL}},
    {"GetProgress", g_progress, {"qRequestId", NULL}},
    {"GetStreamList", NI, {NULL}},
    {"GetSupportedCodePages", NI, {NULL}},
    {"GetUniqueID", g_unique_id, {NULL}},
    {"ImportApp", NI, {NULL}},
    {"ImportAppEx", NI, {NULL}},
    {"InteractDone", NI, {NULL}},
    {"IsDesktopMode", g_false, {NULL}},
    {"IsPersonalMode", g_false, {NULL}},
    {"IsValidConnectionString", NI, {NULL}},
    {"OSName", g_os_name, {NULL}},
    {"OSVersion", g_product_version, {NULL}},
    {"OpenDoc", g_open_doc, {"qDocName", "qUserName", "qPassword", "qSerial", "qNoData", NULL}},
    {"ProductVersion", g_product_version, {NULL}},
    {"PublishApp", NI, {NULL}},
    {"QTProduct", g_qt_product, {NULL}},
    {"QvVersion", g_product_version, {NULL}},
    {"ReloadExtensionList", NI, {NULL}},
    {"ReplaceAppFromID", NI, {NULL}},
    {"ReplaceAppFromPath", NI, {NULL}},
    {"SaveAs", NI, {NULL}},
    {"ShutdownProcess", NI, {NULL}},
};
#undef NI

const tsr_qix_type_t tsr_qix__global_type = {
    .qtype = "Global",
    .methods = global_methods,
    .nmethods = sizeof global_methods / sizeof global_methods[0],
    .release = NULL,
};
