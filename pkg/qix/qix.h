/*
 * pkg/qix: the QIX JSON-RPC protocol of the engine service, as enigma.js and nebula.js speak
 * it, over WebSocket (RFC 6455, wslay) on pkg/httpd's upgrade support. Sessions, the handle
 * registry (Global = -1, then 1, 2, ...; never 0), a dispatch table per handle type, parameter
 * extraction by position or name, change/close arrays, and the Global methods. Documents come
 * from a backend (a table of function pointers) so the associative engine plugs in without
 * this module depending on it. Layer: adapter above core/log/config/httpd.
 */
#ifndef TSR_QIX_H
#define TSR_QIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core.h"
#include "httpd.h"

/* The version reported by EngineVersion/ProductVersion: the schema enigma.js ships with. */
#define TSR_QIX_ENGINE_VERSION "12.2027.0"

/* Error codes sent in error.code (Qlik's LocalizedErrorCode and JSON-RPC's). */
enum {
    TSR_QIX_ERR_PARSE = -32700,            /* "Parse error": malformed JSON */
    TSR_QIX_ERR_INVALID_REQUEST = -32600,  /* "Invalid Request": not a request object */
    TSR_QIX_ERR_METHOD_NOT_FOUND = -32601, /* "Method not found"; parameter = method */
    TSR_QIX_ERR_INVALID_PARAMS = -32602,   /* "Invalid Params"; also "Invalid handle" */
    TSR_QIX_ERR_RPC_INTERNAL = -32603,
    TSR_QIX_ERR_INTERNAL = -128,
    TSR_QIX_ERR_UNKNOWN = -1,
    TSR_QIX_ERR_NOT_FOUND = 2, /* "Object not found": nebula compares the message */
    TSR_QIX_ERR_ALREADY_EXISTS = 3,
    TSR_QIX_ERR_ACCESS_DENIED = 5,
    TSR_QIX_ERR_INVALID_PARAMETERS = 8,
    TSR_QIX_ERR_EMPTY_PARAMETERS = 9,
    TSR_QIX_ERR_ABORTED = 15,
    TSR_QIX_ERR_NOT_IMPLEMENTED = 20,
    TSR_QIX_ERR_APP_ALREADY_OPEN = 1002,
    TSR_QIX_ERR_APP_NOT_FOUND = 1003
};

/* WebSocket close codes this module sends. */
enum {
    TSR_QIX_CLOSE_NORMAL = 1000,
    TSR_QIX_CLOSE_UNSUPPORTED = 1003, /* a binary frame */
    TSR_QIX_CLOSE_TOO_BIG = 1009,     /* a message over max_message */
    TSR_QIX_CLOSE_INTERNAL = 1011,
    TSR_QIX_CLOSE_TRY_AGAIN = 1013,   /* the access decision could not be made (spaces busy) */
    TSR_QIX_CLOSE_TERMINATING = 4003, /* the engine is draining: clients resume elsewhere */
    TSR_QIX_CLOSE_NO_PERMISSION = 4203,
    TSR_QIX_CLOSE_APP_NOT_FOUND = 4204
};

typedef struct tsr_qix_server tsr_qix_server_t;
typedef struct tsr_qix_session tsr_qix_session_t;
/* One request being dispatched; valid only during the handler call. */
typedef struct tsr_qix_call tsr_qix_call_t;

/* ---- dispatch table --------------------------------------------------------------------- */

/* A method handler. obj is the object behind the handle (the type's own pointer). Either set a
 * result (tsr_qix_call_result; none set means "result":{}) and return TSR_OK, or fail: with a
 * protocol error set by tsr_qix_call_error (or by a tsr_qix_param_* helper), or by returning a
 * tsr_err_t that the single mapping tsr_qix_error_code_of turns into a QIX code. Runs on the
 * session's thread; calls on one session never run concurrently. */
typedef tsr_err_t (*tsr_qix_method_fn)(tsr_qix_call_t *call, void *obj, tsr_error_t *err);

#define TSR_QIX_MAX_PARAMS 8

typedef struct {
    const char *name;                           /* "GetLayout" */
    tsr_qix_method_fn fn;                       /* handler */
    const char *params[TSR_QIX_MAX_PARAMS + 1]; /* names in schema order, NULL-terminated */
} tsr_qix_method_t;

/* A handle type: its qType, its methods and how its object is released when the handle
 * closes (NULL: nothing to release). Static storage; borrowed by the registry. */
typedef struct {
    const char *qtype; /* "Doc", "GenericObject", "Field", ... */
    const tsr_qix_method_t *methods;
    size_t nmethods;
    void (*release)(void *obj);
} tsr_qix_type_t;

/* ---- calls: parameters, results, handles -------------------------------------------------- */

/* Parameter idx (schema order) given by position or by its name; NULL when missing or null.
 * Borrowed, valid during the call. */
json_t *tsr_qix_param(tsr_qix_call_t *call, size_t idx);
/* Typed parameters: missing or null → def. A value of another type sets the protocol error
 * -32602 "Invalid Params" (parameter = the name) on the call and returns TSR_EINVAL. *out of
 * a string is borrowed for the call. Integers accept integral JSON reals too. */
tsr_err_t tsr_qix_param_string(tsr_qix_call_t *call, size_t idx, const char *def, const char **out);
tsr_err_t tsr_qix_param_bool(tsr_qix_call_t *call, size_t idx, bool def, bool *out);
tsr_err_t tsr_qix_param_int(tsr_qix_call_t *call, size_t idx, int64_t def, int64_t *out);
/* An object (or array when want_array) parameter; missing or null → *out = NULL. Borrowed. */
tsr_err_t tsr_qix_param_json(tsr_qix_call_t *call, size_t idx, bool want_array, json_t **out);

/* Set the result object (taken). Non-objects are refused by wrapping: the protocol requires
 * an object, so a non-object becomes {"qReturn": value}. */
void tsr_qix_call_result(tsr_qix_call_t *call, json_t *result);
/* Set a protocol error; parameter may be NULL (sent as ""). Returns TSR_EINVAL so a handler can
 * `return tsr_qix_call_error(...)`. */
tsr_err_t tsr_qix_call_error(tsr_qix_call_t *call, int code, const char *parameter,
                             const char *message);
/* Report a handle in this response's "change" / "close" array (deduplicated). */
void tsr_qix_call_add_change(tsr_qix_call_t *call, int handle);
void tsr_qix_call_add_close(tsr_qix_call_t *call, int handle);
/* The call's session, handle and method name. */
tsr_qix_session_t *tsr_qix_call_session(tsr_qix_call_t *call);
int tsr_qix_call_handle(const tsr_qix_call_t *call);
const char *tsr_qix_call_method(const tsr_qix_call_t *call);

/* Register obj under a new handle of the given type (obj is taken: type->release frees it when
 * the handle closes or the session ends) and return the ObjectInterface
 * {qType, qHandle, qGenericType?, qGenericId?} as a new reference (returned-owned) in *iface.
 * generic_type/generic_id may be NULL. */
int tsr_qix_call_open_handle(tsr_qix_call_t *call, const tsr_qix_type_t *type, void *obj,
                             const char *generic_type, const char *generic_id, json_t **iface);
/* Close a handle opened on this session: releases its object and reports it in "close".
 * Global and unknown handles are ignored. */
void tsr_qix_call_close_handle(tsr_qix_call_t *call, int handle);

/* A method handler for schema methods not offered yet: error 20 "Not implemented" (parameter =
 * the method), which clients handle better than -32601. Use it in dispatch tables. */
tsr_err_t tsr_qix_not_implemented(tsr_qix_call_t *call, void *obj, tsr_error_t *err);

/* The single mapping from tsr_err_t to a QIX error code and message (static strings). */
int tsr_qix_error_code_of(tsr_err_t code, const char **message);

/* ---- backend: where documents come from ---------------------------------------------------- */

typedef struct {
    void *ud;
    /* May user_id connect to app_id (the id in the URL)? TSR_OK, TSR_EFORBIDDEN (close 4203) or
     * TSR_ENOTFOUND (close 4204). NULL: allowed. Called on an httpd thread; thread safe. */
    tsr_err_t (*check_app)(void *ud, const char *user_id, const char *app_id, tsr_error_t *err);
    /* Open app_id for user_id (OpenDoc). On success *type is the doc's handle type and *doc its
     * object (taken by the session: type->release frees it). TSR_ENOTFOUND → 1003 "App not
     * found", TSR_EFORBIDDEN → 5. Called on the session thread. */
    tsr_err_t (*open_doc)(void *ud, tsr_qix_session_t *s, const char *app_id, const char *user_id,
                          bool no_data, const tsr_qix_type_t **type, void **doc, tsr_error_t *err);
    /* The DocListEntry array of GetDocList for user_id (returned-owned). NULL: empty list. */
    tsr_err_t (*list_docs)(void *ud, const char *user_id, json_t **entries, tsr_error_t *err);
} tsr_qix_backend_t;

/* Who is calling: set *user_id (returned-owned, free()) from the upgrade request, e.g. the
 * platform JWT nginx forwarded. An error refuses the upgrade with httpd's mapping (401 for
 * TSR_EUNAUTHENTICATED). Runs on an httpd thread; thread safe. */
typedef tsr_err_t (*tsr_qix_auth_fn)(void *ud, tsr_req_t *req, char **user_id, tsr_error_t *err);

typedef struct {
    tsr_qix_backend_t backend; /* copied */
    tsr_qix_auth_fn authenticate;
    void *auth_ud;             /* NULL hook: every caller is user "anonymous" */
    size_t max_message;        /* bytes per received message; 0: 4 MiB */
    unsigned ping_ms;          /* ms of silence before a ping (3x: close 1001); 0: 30000 */
    unsigned close_timeout_ms; /* wait for the peer's close reply; 0: 2000 */
} tsr_qix_opts_t;

/* Set opts' max_message and ping_ms from the TSR_QIX_* knobs; other members are untouched.
 * TSR_EINVAL (naming the knob) when a knob is out of range. */
tsr_err_t tsr_qix_opts_from_config(tsr_qix_opts_t *opts, tsr_error_t *err);

/* ---- server and routes ----------------------------------------------------------------------- */

/* Create the protocol server (the registry of live sessions). *out is returned-owned:
 * tsr_qix_server_destroy after the httpd server stopped. */
tsr_err_t tsr_qix_server_create(const tsr_qix_opts_t *opts, tsr_qix_server_t **out,
                                tsr_error_t *err);
void tsr_qix_server_destroy(tsr_qix_server_t *s);

/* Register GET /app/{appId}, /app/{appId}/identity/{identity}, /app/{appId}/ttl/{ttl},
 * /app/{appId}/identity/{identity}/ttl/{ttl} (appId "engineData" is the Global-only
 * connection). Call before tsr_httpd_start. */
tsr_err_t tsr_qix_routes(tsr_httpd_t *h, tsr_qix_server_t *s, tsr_error_t *err);

/* Suitable as tsr_httpd_opts_t.on_drain (ud = the tsr_qix_server_t): every open session ends
 * the call it is in, then sends close 4003 ("engine terminating": enigma's suspendOnClose and
 * @qlik/api resume on it, unlike 1000) and waits for the client's close. New sessions after
 * this are closed at once with 4003. Thread safe; does not block. */
void tsr_qix_server_drain(void *server);

/* Open sessions right now (for tests and metrics). Thread safe. */
size_t tsr_qix_server_session_count(tsr_qix_server_t *s);

/* ---- sessions -------------------------------------------------------------------------------- */

/* Writes one text frame of a session (the WebSocket, or a test's collector). */
typedef void (*tsr_qix_send_fn)(void *ud, const char *text, size_t len);

/* A session without a socket: the message layer alone (tests, fuzzing, other transports).
 * server may be NULL (then backend and limits come from opts, which may also be NULL).
 * user_id and app_id are copied (app_id NULL or "engineData": Global-only). Nothing is sent
 * until tsr_qix_session_start. *out is returned-owned: tsr_qix_session_destroy. */
tsr_err_t tsr_qix_session_create(const tsr_qix_opts_t *opts, const char *user_id,
                                 const char *app_id, tsr_qix_send_fn send, void *send_ud,
                                 tsr_qix_session_t **out, tsr_error_t *err);
/* Releases every handle (newest first), then the session. NULL: no-op. */
void tsr_qix_session_destroy(tsr_qix_session_t *s);
/* Send the OnConnected notification (SESSION_CREATED). */
void tsr_qix_session_start(tsr_qix_session_t *s);
/* Handle one received text message: exactly one response (or none for an id-less request).
 * Never fails: every problem becomes an error response. Not thread safe per session. */
void tsr_qix_session_handle_message(tsr_qix_session_t *s, const char *msg, size_t len);
/* Queue an unsolicited {"jsonrpc":"2.0","change":[...]} for handles (e.g. after a reload or
 * another connection's selections). Thread safe: it is sent by the session's thread at its
 * next wake-up (tsr_qix_session_flush does it for socket-less sessions); handles closed by
 * then are dropped. Lifetime: another thread may call this only while the session's document
 * is open, i.e. until the doc type's release returns (it runs on the session thread before
 * the session is freed), so a backend unregisters the session there, under its own lock. */
void tsr_qix_session_push_change(tsr_qix_session_t *s, const int *handles, size_t n);
/* Ask for the session to be closed with WebSocket close code (e.g. TSR_QIX_CLOSE_APP_NOT_FOUND
 * when its app was deleted) and reason (truncated to 123 bytes). Thread safe, under the same
 * lifetime rule as tsr_qix_session_push_change: the session's thread sends the close frame at
 * its next wake-up, after the call in flight (if any) answered; the client then gets that
 * code. The first request wins; later ones are ignored. A socket-less session only records
 * it (tsr_qix_session_close_requested). */
void tsr_qix_session_request_close(tsr_qix_session_t *s, uint16_t code, const char *reason);
/* The close code asked for (0: none) and, when reason is not NULL, its reason copied into
 * reason[cap] (NUL-terminated). Thread safe. */
uint16_t tsr_qix_session_close_requested(tsr_qix_session_t *s, char *reason, size_t cap);
/* Send queued pushes now. Session thread only. */
void tsr_qix_session_flush(tsr_qix_session_t *s);
/* Session facts (borrowed, valid for the session's life). */
const char *tsr_qix_session_user(const tsr_qix_session_t *s);
const char *tsr_qix_session_app(const tsr_qix_session_t *s); /* NULL: engineData */
/* The object behind a handle and its type; NULL when the handle is not open. */
void *tsr_qix_session_object(tsr_qix_session_t *s, int handle, const tsr_qix_type_t **type);

#endif
