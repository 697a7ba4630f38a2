/*
 * pkg/httpd: the HTTP layer every Tessera service stands on, on libmicrohttpd. A router with
 * path parameters and methods (405 + Allow), capped request bodies (413), JSON in and out
 * (jansson), one error mapping and error body, request ids, an access log line per request,
 * a per-request arena, health and Prometheus metrics, per-principal rate limiting (429 +
 * Retry-After), and graceful stop. The request pipeline does not depend on sockets:
 * tsr_httpd_inject() runs it in-process for handler tests. Layer: adapter above core/log.
 */
#ifndef TSR_HTTPD_H
#define TSR_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core.h"

typedef struct tsr_httpd tsr_httpd_t;
typedef struct tsr_req tsr_req_t;

/* A route handler. Runs on a server thread; may be called concurrently for different
 * requests. Either reply (tsr_req_reply_*) and return TSR_OK, or return an error code with
 * detail in err: the single error mapping (tsr_httpd_status_of) turns it into the status
 * and the error body. Handlers never choose an error status themselves. */
typedef tsr_err_t (*tsr_httpd_handler_fn)(tsr_req_t *req, void *ud, tsr_error_t *err);

/* Readiness probe: TSR_OK when the service's dependencies answer. err->msg is shown in the
 * /health/ready body. Called on a server thread. */
typedef tsr_err_t (*tsr_httpd_ready_fn)(void *ud, tsr_error_t *err);

/* Principal resolution, run before rate limiting and the handler: set *principal to a
 * stable key for the caller (e.g. "user:<tenant>:<id>") allocated in the request's arena,
 * and optionally tenant/user for logs via tsr_req_set_identity. Returning an error fails the
 * request (e.g. TSR_EUNAUTHENTICATED). NULL hook: the key is the client address. */
typedef tsr_err_t (*tsr_httpd_principal_fn)(tsr_req_t *req, void *ud, const char **principal,
                                            tsr_error_t *err);

/* Request authentication, run before on_principal on every route but the built-in ones (health,
 * ready, metrics): it may rewrite request headers (tsr_req_set_header), e.g. replace the
 * principal headers with what a verified token says (pkg/auth's tsr_auth_httpd_authn), so that
 * on_principal and the handlers read only verified values. Returning an error fails the
 * request with that error (TSR_EUNAUTHENTICATED: 401). NULL: headers are taken as they came. */
typedef tsr_err_t (*tsr_httpd_authn_fn)(tsr_req_t *req, void *ud, tsr_error_t *err);

typedef struct {
    const char *service;   /* for logs and metrics labels; copied */
    const char *bind;      /* listen address, e.g. "127.0.0.1"; copied */
    uint16_t port;         /* 0: pick a free port (see tsr_httpd_port) */
    unsigned threads;      /* worker threads, >= 1 */
    size_t max_body;       /* bytes; larger request bodies answer 413 */
    uint32_t rate_per_min; /* sustained requests per minute per principal; 0 disables */
    uint32_t rate_burst;   /* bucket size */
    tsr_httpd_ready_fn on_ready;
    void *ready_ud;
    tsr_httpd_authn_fn on_authn;
    void *authn_ud;
    tsr_httpd_principal_fn on_principal;
    void *principal_ud;
    /* Called once when stop begins, before waiting for in-flight work: a service with
     * long-lived upgraded connections tells its clients to reconnect here. May be NULL. */
    void (*on_drain)(void *ud);
    void *drain_ud;
} tsr_httpd_opts_t;

/* Fill opts from the TSR_* knobs (TSR_BIND, TSR_HTTP_THREADS, TSR_HTTP_MAX_BODY,
 * TSR_RATE_LIMIT_*); port and hooks are left zero. */
tsr_err_t tsr_httpd_opts_from_config(tsr_httpd_opts_t *opts, const char *service, tsr_error_t *err);

/* Create a server (not yet listening). *out is returned-owned: tsr_httpd_destroy. */
tsr_err_t tsr_httpd_create(const tsr_httpd_opts_t *opts, tsr_httpd_t **out, tsr_error_t *err);
/* Stops if running, frees everything. NULL: no-op. */
void tsr_httpd_destroy(tsr_httpd_t *h);

/* Register a route before start. method: "GET", "POST", ...; pattern: absolute path whose
 * segments are literals or "{name}" (one segment), e.g. "/api/v1/spaces/{id}". Strings are
 * copied. TSR_EINVAL on a malformed pattern, TSR_ECONFLICT on a duplicate. */
tsr_err_t tsr_httpd_route(tsr_httpd_t *h, const char *method, const char *pattern,
                          tsr_httpd_handler_fn fn, void *ud, tsr_error_t *err);

/* Like tsr_httpd_route, but the request body is not kept in memory: it is written as it
 * arrives to a temporary file (mkstemp, mode 0600) in dir, which must exist, capped at
 * max_bytes instead of max_body (413 beyond, also at once from Content-Length). The handler
 * reads it with tsr_req_body_file; the file is removed when the request completes (a handler
 * may rename it away first). dir is copied. */
tsr_err_t tsr_httpd_route_upload(tsr_httpd_t *h, const char *method, const char *pattern,
                                 tsr_httpd_handler_fn fn, void *ud, const char *dir,
                                 uint64_t max_bytes, tsr_error_t *err);

/* Start listening (health, ready and metrics routes are built in). */
tsr_err_t tsr_httpd_start(tsr_httpd_t *h, tsr_error_t *err);
/* The bound port (after start). */
uint16_t tsr_httpd_port(const tsr_httpd_t *h);
/* Graceful stop: stop accepting, mark not ready, wait up to grace_ms for in-flight requests,
 * then close. Returns the number of requests still in flight when it gave up (0: clean). */
unsigned tsr_httpd_stop(tsr_httpd_t *h, unsigned grace_ms);
/* Whether stop has begun (ready answers 503 from then on). */
bool tsr_httpd_is_draining(const tsr_httpd_t *h);

/* ---- requests (valid only during the handler call) ---------------------------------------- */

const char *tsr_req_method(const tsr_req_t *req);
const char *tsr_req_path(const tsr_req_t *req);
/* The route pattern that matched, or "unmatched". */
const char *tsr_req_route(const tsr_req_t *req);
/* Path parameter by name ("{id}" → "id"), URL-decoded; NULL if absent. */
const char *tsr_req_param(const tsr_req_t *req, const char *name);
/* Query parameter, URL-decoded; NULL if absent. */
const char *tsr_req_query(const tsr_req_t *req, const char *name);
/* Request header, case-insensitive; NULL if absent. */
const char *tsr_req_header(const tsr_req_t *req, const char *name);
/* Replace every request header called name (case-insensitive) by one with value (copied into
 * the arena); value NULL removes them. For the on_authn hook. */
void tsr_req_set_header(tsr_req_t *req, const char *name, const char *value);
const char *tsr_req_id(const tsr_req_t *req);
const char *tsr_req_principal(const tsr_req_t *req);
const char *tsr_req_client_addr(const tsr_req_t *req);
/* The raw body (NUL-terminated for convenience); len may be NULL. Borrowed. */
const char *tsr_req_body(const tsr_req_t *req, size_t *len);
/* Upload routes: the path of the body's temporary file and its size in bytes (*len may be
 * NULL); NULL when the route is not an upload route or the file could not be written.
 * Borrowed: valid during the handler call. */
const char *tsr_req_body_file(const tsr_req_t *req, uint64_t *len);
/* Parse the body as JSON. Requires a JSON Content-Type (TSR_EUNSUPPORTEDMEDIA otherwise) and
 * a well-formed document (TSR_EINVAL with line/column). *out is returned-owned (json_decref). */
tsr_err_t tsr_req_json(tsr_req_t *req, json_t **out, tsr_error_t *err);
/* The request's arena: freed when the request completes. */
tsr_arena_t *tsr_req_arena(tsr_req_t *req);
/* Tenant and user for the access log and later use; copied into the arena. */
void tsr_req_set_identity(tsr_req_t *req, const char *tenant_id, const char *user_id);
const char *tsr_req_tenant(const tsr_req_t *req);
const char *tsr_req_user(const tsr_req_t *req);
/* The public base URL ("http://host:port") from X-Forwarded-Proto/-Host or Host; arena. */
const char *tsr_req_base_url(tsr_req_t *req);

/* ---- responses ------------------------------------------------------------------------------ */

/* Reply with JSON; body is taken (decref'd by the server). */
void tsr_req_reply_json(tsr_req_t *req, unsigned status, json_t *body);
/* Reply with bytes (copied). */
void tsr_req_reply_bytes(tsr_req_t *req, unsigned status, const char *content_type,
                         const void *body, size_t len);
/* Reply with the first size bytes of the open file fd (from offset 0), streamed by the server
 * (never read whole into memory on the network path). fd is taken: the server closes it. */
void tsr_req_reply_fd(tsr_req_t *req, unsigned status, const char *content_type, int fd,
                      uint64_t size);
/* Add a response header (copied). */
void tsr_req_add_header(tsr_req_t *req, const char *name, const char *value);

/* Runs on a thread of its own once a 101 response was sent: fd is the connection's socket
 * (as libmicrohttpd left it: possibly non-blocking; never close() it), extra holds bytes the
 * client sent after the request head (treat them as read from fd first). When fn returns,
 * httpd closes the connection. In tsr_httpd_inject there is no connection: fn runs at once
 * with fd == -1 so it can release ud. */
typedef void (*tsr_httpd_upgrade_fn)(int fd, const char *extra, size_t extra_len, void *ud);

/* Answer 101 Switching Protocols (the caller adds Upgrade/Connection and protocol headers
 * with tsr_req_add_header), then hand the connection to fn(…, ud). ud is taken by fn. */
void tsr_req_reply_upgrade(tsr_req_t *req, tsr_httpd_upgrade_fn fn, void *ud);

/* Shut down the reading side of every upgraded connection so their handlers end. Called by
 * tsr_httpd_stop once the grace period is over; exposed for services that close upgraded
 * connections themselves earlier (e.g. after sending a close frame). */
void tsr_httpd_shutdown_upgraded(tsr_httpd_t *h);

/* ---- the error mapping ---------------------------------------------------------------------- */

/* The HTTP status for an error code: the one place that decides it. */
unsigned tsr_httpd_status_of(tsr_err_t code);
/* The error body {"errors":[{"code","title","detail","status"}],"traceId"}. Returned-owned. */
json_t *tsr_httpd_error_body(tsr_err_t code, const char *detail, const char *trace_id);

/* ---- in-process requests (tests, no sockets) ------------------------------------------------- */

typedef struct {
    unsigned status;
    char *body; /* returned-owned, NUL-terminated */
    size_t body_len;
    json_t *headers; /* returned-owned object: lowercased name → value */
} tsr_httpd_response_t;

/* Run one request through the same pipeline as the network path. headers: NULL-terminated
 * name, value pairs (may be NULL). Free the response with tsr_httpd_response_cleanup. */
void tsr_httpd_inject(tsr_httpd_t *h, const char *method, const char *path_and_query,
                      const char *const *headers, const void *body, size_t body_len,
                      tsr_httpd_response_t *resp);
void tsr_httpd_response_cleanup(tsr_httpd_response_t *resp);

/* ---- service runtime ---------------------------------------------------------------------------
 */

/* What cmd/<service>/main.c hands to tsr_service_main. */
typedef struct {
    const char *name;     /* "identity", "spaces", ... */
    uint16_t port_offset; /* default port = TSR_PORT + offset when TSR_SERVICE_PORT is 0 */
    /* Open dependencies and set hooks (readiness, principal) in opts; *ud is the service's
     * own state. May be NULL. */
    tsr_err_t (*setup)(tsr_httpd_opts_t *opts, void **ud, tsr_error_t *err);
    /* Register the service's routes. May be NULL. */
    tsr_err_t (*routes)(tsr_httpd_t *h, void *ud, tsr_error_t *err);
    /* Release what setup opened (after the server stopped). May be NULL. */
    void (*teardown)(void *ud);
} tsr_service_def_t;

/* Config, logs, server, then wait for SIGTERM/SIGINT and drain within TSR_SHUTDOWN_GRACE_MS.
 * Returns the process exit code (0 after a clean drain). */
int tsr_service_main(const tsr_service_def_t *def, int argc, char **argv);

#endif
