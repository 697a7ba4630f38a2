/*
 * libFuzzer target for the QIX JSON-RPC message layer (pkg/qix rpc.c, global.c), not the
 * socket: the input is split at newlines into messages fed to one session, whose small
 * in-memory test backend opens a Doc and GenericObjects, so handle allocation, parameter
 * extraction and change/close arrays are reached. Every frame the session sends must be a
 * JSON object carrying either a result object, an error, or a method/change notification.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "qix.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void obj_release(void *p) {
    json_decref(p);
}

static tsr_err_t obj_get_layout(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    tsr_qix_call_result(call, json_pack("{s:O}", "qLayout", (json_t *)obj));
    return TSR_OK;
}

static tsr_err_t obj_set_properties(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)err;
    json_t *prop;
    tsr_err_t rc = tsr_qix_param_json(call, 0, false, &prop);
    if (rc != TSR_OK) {
        return rc;
    }
    if (prop != NULL) {
        json_object_update(obj, prop);
    }
    tsr_qix_call_add_change(call, tsr_qix_call_handle(call));
    return TSR_OK;
}

static const tsr_qix_method_t obj_methods[] = {
    {"GetLayout", obj_get_layout, {NULL}},
    {"SetProperties", obj_set_properties, {"qProp", NULL}},
};
static const tsr_qix_type_t obj_type = {"GenericObject", obj_methods, 2, obj_release};

static tsr_err_t doc_create(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)obj;
    (void)err;
    json_t *prop;
    tsr_err_t rc = tsr_qix_param_json(call, 0, false, &prop);
    if (rc != TSR_OK) {
        return rc;
    }
    json_t *iface = NULL;
    tsr_qix_call_open_handle(call, &obj_type, prop ? json_deep_copy(prop) : json_object(), "x",
                             "id", &iface);
    tsr_qix_call_result(call, json_pack("{s:o}", "qReturn", iface));
    return TSR_OK;
}

static tsr_err_t doc_destroy(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)obj;
    (void)err;
    int64_t h;
    tsr_err_t rc = tsr_qix_param_int(call, 0, 0, &h);
    if (rc != TSR_OK) {
        return rc;
    }
    /* Closing the doc itself through here is allowed: the registry must cope. */
    if (h >= -1 && h <= 1000) {
        tsr_qix_call_close_handle(call, (int)h);
    }
    return TSR_OK;
}

static tsr_err_t doc_fail(tsr_qix_call_t *call, void *obj, tsr_error_t *err) {
    (void)obj;
    int64_t code;
    tsr_err_t rc = tsr_qix_param_int(call, 0, 9, &code);
    if (rc != TSR_OK) {
        return rc;
    }
    return tsr_error_set(err, (tsr_err_t)(code & 15), "failed");
}

static const tsr_qix_method_t doc_methods[] = {
    {"CreateSessionObject", doc_create, {"qProp", NULL}},
    {"DestroyHandle", doc_destroy, {"qHandle", NULL}},
    {"Fail", doc_fail, {"qCode", NULL}},
};
static const tsr_qix_type_t doc_type = {"Doc", doc_methods, 3, NULL};

static tsr_err_t open_doc(void *ud, tsr_qix_session_t *s, const char *app_id, const char *user_id,
                          bool no_data, const tsr_qix_type_t **type, void **doc, tsr_error_t *err) {
    (void)ud;
    (void)s;
    (void)user_id;
    (void)no_data;
    if (app_id[0] == 'm') {
        return tsr_error_set(err, TSR_ENOTFOUND, "missing");
    }
    *type = &doc_type;
    *doc = NULL;
    return TSR_OK;
}

static void check_frame(void *ud, const char *text, size_t len) {
    (void)ud;
    json_error_t e;
    json_t *v = json_loadb(text, len, 0, &e);
    if (!json_is_object(v)) {
        abort();
    }
    json_t *res = json_object_get(v, "result");
    json_t *er = json_object_get(v, "error");
    bool note = json_object_get(v, "method") != NULL || json_object_get(v, "change") != NULL;
    if (res != NULL && !json_is_object(res)) {
        abort();
    }
    if (res == NULL && er == NULL && !note) {
        abort();
    }
    json_decref(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bool init;
    if (!init) {
        tsr_log_init("fuzz", TSR_LOG_ERROR, fopen("/dev/null", "w"));
        init = true;
    }
    tsr_qix_opts_t opts;
    memset(&opts, 0, sizeof opts);
    opts.backend.open_doc = open_doc;
    tsr_qix_session_t *s = NULL;
    if (tsr_qix_session_create(&opts, "fuzz", NULL, check_frame, NULL, &s, NULL) != TSR_OK) {
        abort();
    }
    tsr_qix_session_start(s);
    const char *p = (const char *)data;
    size_t left = size;
    while (left > 0) {
        const char *nl = memchr(p, '\n', left);
        size_t n = nl ? (size_t)(nl - p) : left;
        tsr_qix_session_handle_message(s, p, n);
        p += n;
        left -= n;
        if (nl != NULL) {
            p++;
            left--;
        }
    }
    int hs[] = {-1, 1, 2, 3};
    tsr_qix_session_push_change(s, hs, 4);
    tsr_qix_session_flush(s);
    tsr_qix_session_destroy(s);
    return 0;
}
