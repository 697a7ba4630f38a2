/*
 * pkg/httpd: router, request pipeline, error mapping and the libmicrohttpd adapter.
 * The pipeline (run_pipeline) works on a tsr_req_t that owns copies of everything it needs,
 * so the network path (on_access) and the in-process path (tsr_httpd_inject) are the same
 * code. Invariants: every request ends with exactly one response, one metrics observation
 * and one access log line; nothing allocated from a request's arena outlives it.
 */
#define _GNU_SOURCE /* strcasecmp, inet_pton helpers */
#include "httpd.h"
#include "httpd_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#define MAX_ROUTES 256
#define MAX_SEGMENTS 32
#define MAX_PARAMS 16
#define MAX_UPGRADED 4096

typedef struct {
    char *method;
    char *pattern;
    char *segs[MAX_SEGMENTS];
    size_t nsegs;
    char *storage; /* the split copy of pattern that segs point into */
    tsr_httpd_handler_fn fn;
    void *ud;
    bool builtin;        /* health/metrics: no rate limit, no principal */
    char *upload_dir;    /* set: the body goes to a temporary file here (upload route) */
    uint64_t upload_max; /* bytes; the upload route's body cap */
} route_t;

typedef struct {
    const char *k;
    const char *v;
} kv_t;

struct tsr_httpd {
    tsr_httpd_opts_t opts;
    char *service;
    char *bind;
    route_t routes[MAX_ROUTES];
    size_t nroutes;
    struct MHD_Daemon *daemon;
    uint16_t port;
    atomic_uint in_flight;
    atomic_bool draining;
    tsr_httpd__metrics_t *metrics;
    tsr_httpd__limiter_t *limiter;
    pthread_mutex_t up_mu;
    int up_fds[MAX_UPGRADED];
    size_t nup;
};

struct tsr_req {
    tsr_httpd_t *h;
    tsr_arena_t *arena;
    const char *method;
    const char *path;
    const char *client_addr;
    kv_t *headers;
    size_t nheaders, cap_headers;
    kv_t *query;
    size_t nquery, cap_query;
    kv_t params[MAX_PARAMS];
    size_t nparams;
    tsr_buf_t body;
    bool body_too_big;
    size_t body_limit;   /* bytes: the cap that body_too_big refers to */
    int upload_fd;       /* upload routes: the body's temporary file (-1: none) */
    char *upload_path;   /* malloc'd; removed when the request completes */
    uint64_t upload_len; /* bytes written to upload_fd */
    uint64_t upload_max; /* bytes */
    const char *request_id;
    const char *principal;
    const char *tenant;
    const char *user;
    const route_t *route;
    uint64_t start_ns;
    /* response */
    bool replied;
    unsigned status;
    char *resp_body; /* malloc'd */
    size_t resp_len;
    kv_t *resp_headers;
    size_t nresp_headers, cap_resp_headers;
    tsr_httpd_upgrade_fn upgrade_fn; /* set: the response is a 101 handing over the socket */
    void *upgrade_ud;
    int resp_fd;           /* >= 0: the response body is this file (tsr_req_reply_fd) */
    uint64_t resp_fd_size; /* bytes */
};

/* ---- the error mapping ------------------------------------------------------------------- */

unsigned tsr_httpd_status_of(tsr_err_t code) {
    switch (code) {
    case TSR_OK:
        return 200;
    case TSR_EINVAL:
        return 400;
    case TSR_EUNAUTHENTICATED:
        return 401;
    case TSR_EFORBIDDEN:
        return 403;
    case TSR_ENOTFOUND:
        return 404;
    case TSR_EMETHOD:
        return 405;
    case TSR_ECONFLICT:
        return 409;
    case TSR_ECANCELED:
        return 409;
    case TSR_EPRECONDITION:
        return 412;
    case TSR_ETOOBIG:
        return 413;
    case TSR_EUNSUPPORTEDMEDIA:
        return 415;
    case TSR_ERATELIMITED:
        return 429;
    case TSR_EUNSUPPORTED:
        return 501;
    case TSR_EUNAVAILABLE:
        return 503;
    case TSR_ETIMEOUT:
        return 504;
    case TSR_EINTERNAL:
    case TSR_EIO:
    case TSR_ECORRUPT:
        return 500;
    }
    return 500;
}

static const char *status_title(unsigned status) {
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "API rate limit reached.";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Internal Server Error";
    }
}

json_t *tsr_httpd_error_body(tsr_err_t code, const char *detail, const char *trace_id) {
    unsigned status = tsr_httpd_status_of(code);
    char scode[16], sstatus[8];
    snprintf(scode, sizeof scode, "HTTP-%u", status);
    snprintf(sstatus, sizeof sstatus, "%u", status);
    json_t *e = json_object();
    json_object_set_new(e, "code", json_string(scode));
    json_object_set_new(e, "title", json_string(status_title(status)));
    /* Internal errors never leak their detail to the caller; it goes to the log instead. */
    const char *d = (status >= 500 && status != 503 && status != 501) ? "internal error"
                    : (detail != NULL && detail[0] != '\0')           ? detail
                                                                      : tsr_strerror(code);
    json_t *dj = json_string(d);
    json_object_set_new(e, "detail", dj ? dj : json_string("(detail not valid UTF-8)"));
    json_object_set_new(e, "status", json_string(sstatus));
    json_t *body = json_object();
    json_t *arr = json_array();
    json_array_append_new(arr, e);
    json_object_set_new(body, "errors", arr);
    json_object_set_new(body, "traceId", json_string(trace_id ? trace_id : ""));
    return body;
}

/* ---- requests ------------------------------------------------------------------------------ */

static void kv_push(tsr_arena_t *a, kv_t **arr, size_t *n, size_t *cap, const char *k,
                    const char *v) {
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        kv_t *na = tsr_arena_alloc(a, ncap * sizeof(kv_t));
        if (*n) {
            memcpy(na, *arr, *n * sizeof(kv_t));
        }
        *arr = na;
        *cap = ncap;
    }
    (*arr)[*n].k = k;
    (*arr)[*n].v = v;
    (*n)++;
}

static tsr_req_t *req_new(tsr_httpd_t *h, const char *method, const char *path) {
    tsr_req_t *r = tsr_xcalloc(1, sizeof *r);
    r->h = h;
    r->arena = tsr_arena_create(8192);
    r->method = tsr_arena_strdup(r->arena, method);
    r->path = tsr_arena_strdup(r->arena, path);
    r->client_addr = "";
    tsr_buf_init(&r->body, h->opts.max_body);
    r->body_limit = h->opts.max_body;
    r->upload_fd = -1;
    r->resp_fd = -1;
    r->start_ns = tsr_mono_ns();
    return r;
}

static void req_free(tsr_req_t *r) {
    if (r == NULL) {
        return;
    }
    tsr_buf_cleanup(&r->body);
    if (r->upload_fd >= 0) {
        close(r->upload_fd);
    }
    if (r->upload_path != NULL) {
        (void)unlink(r->upload_path);
        free(r->upload_path);
    }
    if (r->resp_fd >= 0) {
        close(r->resp_fd);
    }
    free(r->resp_body);
    tsr_arena_destroy(r->arena);
    free(r);
}

static void req_add_header_in(tsr_req_t *r, const char *k, const char *v) {
    kv_push(r->arena, &r->headers, &r->nheaders, &r->cap_headers, tsr_arena_strdup(r->arena, k),
            tsr_arena_strdup(r->arena, v ? v : ""));
}

static void req_add_query(tsr_req_t *r, const char *k, const char *v) {
    kv_push(r->arena, &r->query, &r->nquery, &r->cap_query, tsr_arena_strdup(r->arena, k),
            tsr_arena_strdup(r->arena, v ? v : ""));
}

const char *tsr_req_method(const tsr_req_t *req) {
    return req->method;
}
const char *tsr_req_path(const tsr_req_t *req) {
    return req->path;
}
const char *tsr_req_route(const tsr_req_t *req) {
    return req->route ? req->route->pattern : "unmatched";
}
const char *tsr_req_id(const tsr_req_t *req) {
    return req->request_id;
}
const char *tsr_req_principal(const tsr_req_t *req) {
    return req->principal;
}
const char *tsr_req_client_addr(const tsr_req_t *req) {
    return req->client_addr;
}
tsr_arena_t *tsr_req_arena(tsr_req_t *req) {
    return req->arena;
}
const char *tsr_req_tenant(const tsr_req_t *req) {
    return req->tenant;
}
const char *tsr_req_user(const tsr_req_t *req) {
    return req->user;
}

const char *tsr_req_param(const tsr_req_t *req, const char *name) {
    for (size_t i = 0; i < req->nparams; i++) {
        if (strcmp(req->params[i].k, name) == 0) {
            return req->params[i].v;
        }
    }
    return NULL;
}

const char *tsr_req_query(const tsr_req_t *req, const char *name) {
    for (size_t i = 0; i < req->nquery; i++) {
        if (strcmp(req->query[i].k, name) == 0) {
            return req->query[i].v;
        }
    }
    return NULL;
}

const char *tsr_req_header(const tsr_req_t *req, const char *name) {
    for (size_t i = 0; i < req->nheaders; i++) {
        if (strcasecmp(req->headers[i].k, name) == 0) {
            return req->headers[i].v;
        }
    }
    return NULL;
}

void tsr_req_set_header(tsr_req_t *req, const char *name, const char *value) {
    size_t j = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        if (strcasecmp(req->headers[i].k, name) != 0) {
            req->headers[j++] = req->headers[i];
        }
    }
    req->nheaders = j;
    if (value != NULL) {
        req_add_header_in(req, name, value);
    }
}

const char *tsr_req_body(const tsr_req_t *req, size_t *len) {
    if (len != NULL) {
        *len = req->body.len;
    }
    return req->body.data ? req->body.data : "";
}

const char *tsr_req_body_file(const tsr_req_t *req, uint64_t *len) {
    if (len != NULL) {
        *len = req->upload_len;
    }
    return req->upload_path;
}

static bool is_json_content_type(const char *ct) {
    if (ct == NULL) {
        return false;
    }
    tsr_str_t s = tsr_str(ct);
    tsr_str_t media;
    tsr_str_next_tok(&s, ';', &media);
    media = tsr_str_trim(media);
    if (tsr_str_case_eq_cstr(media, "application/json") ||
        tsr_str_case_eq_cstr(media, "application/json-patch+json")) {
        return true;
    }
    return media.n > 5 && tsr_str_case_eq_cstr(tsr_str_n(media.p + media.n - 5, 5), "+json");
}

tsr_err_t tsr_req_json(tsr_req_t *req, json_t **out, tsr_error_t *err) {
    *out = NULL;
    if (!is_json_content_type(tsr_req_header(req, "content-type"))) {
        return tsr_error_set(err, TSR_EUNSUPPORTEDMEDIA,
                             "the request body must be sent as Content-Type: application/json");
    }
    if (req->body.len == 0) {
        return tsr_error_set(err, TSR_EINVAL,
                             "the request body is empty; a JSON value is required");
    }
    json_error_t jerr;
    json_t *j = json_loadb(req->body.data, req->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "malformed JSON at line %d, column %d: %s", jerr.line,
                             jerr.column, jerr.text);
    }
    *out = j;
    return TSR_OK;
}

void tsr_req_set_identity(tsr_req_t *req, const char *tenant_id, const char *user_id) {
    req->tenant = tenant_id ? tsr_arena_strdup(req->arena, tenant_id) : NULL;
    req->user = user_id ? tsr_arena_strdup(req->arena, user_id) : NULL;
}

const char *tsr_req_base_url(tsr_req_t *req) {
    const char *proto = tsr_req_header(req, "x-forwarded-proto");
    const char *host = tsr_req_header(req, "x-forwarded-host");
    if (host == NULL) {
        host = tsr_req_header(req, "host");
    }
    if (host == NULL) {
        host = "localhost";
    }
    /* Only the first of a comma-separated list of forwarded values is the client's. */
    tsr_str_t hs = tsr_str(host), first;
    tsr_str_next_tok(&hs, ',', &first);
    first = tsr_str_trim(first);
    tsr_str_t ps = tsr_str(proto ? proto : "http"), pfirst;
    tsr_str_next_tok(&ps, ',', &pfirst);
    pfirst = tsr_str_trim(pfirst);
    return tsr_arena_printf(req->arena, "%.*s://%.*s", (int)pfirst.n, pfirst.p, (int)first.n,
                            first.p);
}

/* ---- responses ------------------------------------------------------------------------------ */

void tsr_req_add_header(tsr_req_t *req, const char *name, const char *value) {
    kv_push(req->arena, &req->resp_headers, &req->nresp_headers, &req->cap_resp_headers,
            tsr_arena_strdup(req->arena, name), tsr_arena_strdup(req->arena, value));
}

void tsr_req_reply_bytes(tsr_req_t *req, unsigned status, const char *content_type,
                         const void *body, size_t len) {
    free(req->resp_body);
    req->resp_body = tsr_xmalloc(len + 1);
    if (len > 0) {
        memcpy(req->resp_body, body, len);
    }
    req->resp_body[len] = '\0';
    req->resp_len = len;
    req->status = status;
    req->replied = true;
    if (content_type != NULL) {
        tsr_req_add_header(req, "Content-Type", content_type);
    }
}

void tsr_req_reply_json(tsr_req_t *req, unsigned status, json_t *body) {
    char *s = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY) : NULL;
    json_decref(body);
    free(req->resp_body);
    req->resp_body = s ? s : tsr_xstrdup("null");
    req->resp_len = strlen(req->resp_body);
    req->status = status;
    req->replied = true;
    tsr_req_add_header(req, "Content-Type", "application/json");
}

void tsr_req_reply_fd(tsr_req_t *req, unsigned status, const char *content_type, int fd,
                      uint64_t size) {
    free(req->resp_body);
    req->resp_body = tsr_xstrdup("");
    req->resp_len = 0;
    if (req->resp_fd >= 0) {
        close(req->resp_fd);
    }
    req->resp_fd = fd;
    req->resp_fd_size = size;
    req->status = status;
    req->replied = true;
    if (content_type != NULL) {
        tsr_req_add_header(req, "Content-Type", content_type);
    }
}

void tsr_req_reply_upgrade(tsr_req_t *req, tsr_httpd_upgrade_fn fn, void *ud) {
    free(req->resp_body);
    req->resp_body = tsr_xstrdup("");
    req->resp_len = 0;
    req->status = 101;
    req->replied = true;
    req->upgrade_fn = fn;
    req->upgrade_ud = ud;
}

static void reply_error(tsr_req_t *req, tsr_err_t code, const char *detail) {
    if (req->upgrade_fn != NULL) {
        /* An error after an upgrade was prepared: the handler still gets its ud back. */
        req->upgrade_fn(-1, NULL, 0, req->upgrade_ud);
        req->upgrade_fn = NULL;
    }
    /* An error replaces whatever the handler may have started to send. */
    req->nresp_headers = 0;
    if (req->resp_fd >= 0) {
        close(req->resp_fd);
        req->resp_fd = -1;
    }
    tsr_req_reply_json(req, tsr_httpd_status_of(code),
                       tsr_httpd_error_body(code, detail, req->request_id));
}

/* ---- router ------------------------------------------------------------------------------ */

static size_t split_path(char *p, char **segs, size_t max) {
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(p, "/", &save); tok != NULL; tok = strtok_r(NULL, "/", &save)) {
        if (n == max) {
            return max + 1;
        }
        segs[n++] = tok;
    }
    return n;
}

tsr_err_t tsr_httpd_route(tsr_httpd_t *h, const char *method, const char *pattern,
                          tsr_httpd_handler_fn fn, void *ud, tsr_error_t *err) {
    if (h->nroutes == MAX_ROUTES) {
        return tsr_error_set(err, TSR_EINVAL, "too many routes");
    }
    if (pattern == NULL || pattern[0] != '/' || method == NULL || fn == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "route pattern must start with '/'");
    }
    for (size_t i = 0; i < h->nroutes; i++) {
        if (strcmp(h->routes[i].pattern, pattern) == 0 &&
            strcmp(h->routes[i].method, method) == 0) {
            return tsr_error_set(err, TSR_ECONFLICT, "duplicate route %s %s", method, pattern);
        }
    }
    route_t *r = &h->routes[h->nroutes];
    memset(r, 0, sizeof *r);
    char *copy = tsr_xstrdup(pattern);
    size_t n = split_path(copy, r->segs, MAX_SEGMENTS);
    if (n > MAX_SEGMENTS) {
        free(copy);
        return tsr_error_set(err, TSR_EINVAL, "route pattern has too many segments");
    }
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(r->segs[i]);
        if (r->segs[i][0] == '{' && (len < 3 || r->segs[i][len - 1] != '}')) {
            free(copy);
            return tsr_error_set(err, TSR_EINVAL, "malformed parameter in %s", pattern);
        }
    }
    r->nsegs = n;
    r->pattern = tsr_xstrdup(pattern);
    r->method = tsr_xstrdup(method);
    r->storage = copy;
    r->fn = fn;
    r->ud = ud;
    h->nroutes++;
    return TSR_OK;
}

tsr_err_t tsr_httpd_route_upload(tsr_httpd_t *h, const char *method, const char *pattern,
                                 tsr_httpd_handler_fn fn, void *ud, const char *dir,
                                 uint64_t max_bytes, tsr_error_t *err) {
    if (dir == NULL || dir[0] == '\0' || max_bytes == 0) {
        return tsr_error_set(err, TSR_EINVAL, "an upload route needs a directory and a cap");
    }
    tsr_err_t rc = tsr_httpd_route(h, method, pattern, fn, ud, err);
    if (rc == TSR_OK) {
        h->routes[h->nroutes - 1].upload_dir = tsr_xstrdup(dir);
        h->routes[h->nroutes - 1].upload_max = max_bytes;
    }
    return rc;
}

static bool route_matches(const route_t *r, char **segs, size_t n, tsr_req_t *req) {
    if (r->nsegs != n) {
        return false;
    }
    size_t np = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = r->segs[i];
        if (s[0] == '{') {
            if (req != NULL && np < MAX_PARAMS) {
                req->params[np].k = tsr_arena_strndup(req->arena, s + 1, strlen(s) - 2);
                req->params[np].v = segs[i];
                np++;
            }
        } else if (strcmp(s, segs[i]) != 0) {
            return false;
        }
    }
    if (req != NULL) {
        req->nparams = np;
    }
    return true;
}

/* Find the route for req; on a path match with no method match, write the Allow list. */
static const route_t *route_find(tsr_httpd_t *h, tsr_req_t *req, tsr_buf_t *allow) {
    char *p = tsr_arena_strdup(req->arena, req->path);
    char *segs[MAX_SEGMENTS];
    size_t n = split_path(p, segs, MAX_SEGMENTS);
    if (n > MAX_SEGMENTS) {
        return NULL;
    }
    /* Literal segments win over parameters: try exact-literal routes first. */
    const route_t *best = NULL;
    int best_literals = -1;
    for (size_t i = 0; i < h->nroutes; i++) {
        const route_t *r = &h->routes[i];
        if (!route_matches(r, segs, n, NULL)) {
            continue;
        }
        if (strcmp(r->method, req->method) != 0 &&
            !(strcmp(req->method, "HEAD") == 0 && strcmp(r->method, "GET") == 0)) {
            if (strstr(allow->data ? allow->data : "", r->method) == NULL) {
                (void)tsr_buf_appendf(allow, "%s%s", allow->len ? ", " : "", r->method);
            }
            continue;
        }
        int literals = 0;
        for (size_t k = 0; k < r->nsegs; k++) {
            literals += r->segs[k][0] != '{';
        }
        if (literals > best_literals) {
            best = r;
            best_literals = literals;
        }
    }
    if (best != NULL) {
        route_matches(best, segs, n, req);
    }
    return best;
}

/* ---- pipeline ------------------------------------------------------------------------------ */

static bool valid_request_id(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 64) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.')) {
            return false;
        }
    }
    return true;
}

static void run_pipeline(tsr_httpd_t *h, tsr_req_t *req) {
    const char *rid = tsr_req_header(req, "x-request-id");
    if (rid != NULL && valid_request_id(rid)) {
        req->request_id = rid;
    } else {
        char id[33];
        unsigned char b[16];
        tsr_random_fill(b, sizeof b);
        tsr_hex_encode(b, sizeof b, id);
        req->request_id = tsr_arena_strdup(req->arena, id);
    }

    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_buf_t allow;
    tsr_buf_init(&allow, 1024);
    const route_t *route = route_find(h, req, &allow);
    req->route = route;
    /* An oversized body is refused whatever the route: it was never read in full. */
    if (req->body_too_big) {
        tsr_error_set(&err, TSR_ETOOBIG, "the request body exceeds the limit of %zu bytes",
                      req->body_limit);
        reply_error(req, TSR_ETOOBIG, err.msg);
        goto out;
    }
    if (route == NULL) {
        if (allow.len > 0) {
            tsr_error_set(&err, TSR_EMETHOD, "method %s is not allowed on %s; allowed: %s",
                          req->method, req->path, allow.data);
            reply_error(req, TSR_EMETHOD, err.msg);
            tsr_req_add_header(req, "Allow", allow.data);
        } else {
            tsr_error_set(&err, TSR_ENOTFOUND, "no route for %s", req->path);
            reply_error(req, TSR_ENOTFOUND, err.msg);
        }
        goto out;
    }
    if (!route->builtin) {
        const char *principal = NULL;
        if (h->opts.on_authn != NULL) {
            tsr_err_t rc = h->opts.on_authn(req, h->opts.authn_ud, &err);
            if (rc != TSR_OK) {
                reply_error(req, rc, err.code == rc ? err.msg : NULL);
                goto out;
            }
        }
        if (h->opts.on_principal != NULL) {
            tsr_err_t rc = h->opts.on_principal(req, h->opts.principal_ud, &principal, &err);
            if (rc != TSR_OK) {
                reply_error(req, rc, err.msg);
                goto out;
            }
        }
        if (principal == NULL) {
            const char *fwd = tsr_req_header(req, "x-real-ip");
            principal = tsr_arena_printf(req->arena, "addr:%s", fwd ? fwd : req->client_addr);
        }
        req->principal = principal;
        unsigned retry_after = 0;
        if (!tsr_httpd__limiter_take(h->limiter, principal, &retry_after)) {
            tsr_error_set(&err, TSR_ERATELIMITED,
                          "You need to wait %u seconds until limit is lifted.", retry_after);
            reply_error(req, TSR_ERATELIMITED, err.msg);
            char ra[16];
            snprintf(ra, sizeof ra, "%u", retry_after);
            tsr_req_add_header(req, "Retry-After", ra);
            goto out;
        }
    }
    tsr_err_t rc = route->fn(req, route->ud, &err);
    if (rc != TSR_OK) {
        if (tsr_httpd_status_of(rc) >= 500) {
            tsr_log_ctx_t ctx = {req->request_id, req->tenant, req->user};
            tsr_log_error(&ctx, "%s %s failed: %s: %s", req->method, req->path, tsr_strerror(rc),
                          err.msg);
        }
        reply_error(req, rc, err.code == rc ? err.msg : NULL);
    } else if (!req->replied) {
        reply_error(req, TSR_EINTERNAL, "handler did not reply");
    }
out:
    tsr_buf_cleanup(&allow);
    tsr_req_add_header(req, "X-Request-Id", req->request_id);
}

static void finish_request(tsr_httpd_t *h, tsr_req_t *req) {
    uint64_t dur_ns = tsr_mono_ns() - req->start_ns;
    tsr_httpd__metrics_observe(h->metrics, tsr_req_route(req), req->method, req->status, dur_ns);
    const char *route = tsr_req_route(req);
    if (req->route != NULL && req->route->builtin) {
        return; /* probes and scrapes would drown the access log */
    }
    json_t *extra = json_object();
    json_object_set_new(extra, "method", json_string(req->method));
    json_t *pj = json_string(req->path);
    json_object_set_new(extra, "path", pj ? pj : json_string("(invalid utf-8)"));
    json_object_set_new(extra, "route", json_string(route));
    json_object_set_new(extra, "status", json_integer(req->status));
    json_object_set_new(extra, "durationMs", json_real((double)(dur_ns / 1000) / 1e3));
    json_object_set_new(extra, "bytesIn",
                        json_integer((json_int_t)(req->body.len + req->upload_len)));
    json_object_set_new(extra, "bytesOut",
                        json_integer((json_int_t)(req->resp_len + req->resp_fd_size)));
    json_object_set_new(extra, "remote", json_string(req->client_addr));
    tsr_log_ctx_t ctx = {req->request_id, req->tenant, req->user};
    tsr_log_write(TSR_LOG_INFO, &ctx, extra, "request");
    json_decref(extra);
}

/* ---- built-in routes ------------------------------------------------------------------------ */

static tsr_err_t h_live(tsr_req_t *req, void *ud, tsr_error_t *err) {
    (void)ud;
    (void)err;
    tsr_req_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
    return TSR_OK;
}

static tsr_err_t h_ready(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_httpd_t *h = ud;
    if (atomic_load(&h->draining)) {
        return tsr_error_set(err, TSR_EUNAVAILABLE, "draining: the service is shutting down");
    }
    if (h->opts.on_ready != NULL) {
        tsr_error_t rerr;
        tsr_error_clear(&rerr);
        tsr_err_t rc = h->opts.on_ready(h->opts.ready_ud, &rerr);
        if (rc != TSR_OK) {
            return tsr_error_set(err, TSR_EUNAVAILABLE, "not ready: %s",
                                 rerr.msg[0] ? rerr.msg : tsr_strerror(rc));
        }
    }
    tsr_req_reply_json(req, 200, json_pack("{s:s}", "status", "ready"));
    return TSR_OK;
}

static tsr_err_t h_metrics(tsr_req_t *req, void *ud, tsr_error_t *err) {
    (void)err;
    tsr_httpd_t *h = ud;
    tsr_buf_t b;
    tsr_buf_init(&b, 0);
    tsr_httpd__metrics_format(h->metrics, h->service, atomic_load(&h->in_flight), &b);
    tsr_req_reply_bytes(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    tsr_buf_cleanup(&b);
    return TSR_OK;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

tsr_err_t tsr_httpd_opts_from_config(tsr_httpd_opts_t *opts, const char *service,
                                     tsr_error_t *err) {
    memset(opts, 0, sizeof *opts);
    opts->service = service;
    opts->bind = tsr_config_get("TSR_BIND");
    int64_t v;
    tsr_err_t rc = tsr_config_get_int("TSR_HTTP_THREADS", 1, 64, &v, err);
    if (rc != TSR_OK) {
        return rc;
    }
    opts->threads = (unsigned)v;
    rc = tsr_config_get_int("TSR_HTTP_MAX_BODY", 1024, (int64_t)1 << 32, &v, err);
    if (rc != TSR_OK) {
        return rc;
    }
    opts->max_body = (size_t)v;
    rc = tsr_config_get_int("TSR_RATE_LIMIT_PER_MIN", 0, 10000000, &v, err);
    if (rc != TSR_OK) {
        return rc;
    }
    opts->rate_per_min = (uint32_t)v;
    rc = tsr_config_get_int("TSR_RATE_LIMIT_BURST", 1, 10000000, &v, err);
    if (rc != TSR_OK) {
        return rc;
    }
    opts->rate_burst = (uint32_t)v;
    return TSR_OK;
}

tsr_err_t tsr_httpd_create(const tsr_httpd_opts_t *opts, tsr_httpd_t **out, tsr_error_t *err) {
    *out = NULL;
    if (opts->threads == 0 || opts->max_body == 0) {
        return tsr_error_set(err, TSR_EINVAL, "threads and max_body must be positive");
    }
    tsr_httpd_t *h = tsr_xcalloc(1, sizeof *h);
    h->opts = *opts;
    h->service = tsr_xstrdup(opts->service ? opts->service : "tessera");
    h->bind = tsr_xstrdup(opts->bind ? opts->bind : "127.0.0.1");
    h->opts.service = h->service;
    h->opts.bind = h->bind;
    atomic_init(&h->in_flight, 0);
    atomic_init(&h->draining, false);
    pthread_mutex_init(&h->up_mu, NULL);
    h->metrics = tsr_httpd__metrics_create();
    h->limiter = tsr_httpd__limiter_create(opts->rate_per_min, opts->rate_burst);
    tsr_error_t e2;
    if (tsr_httpd_route(h, "GET", "/health/live", h_live, h, &e2) != TSR_OK ||
        tsr_httpd_route(h, "GET", "/health/ready", h_ready, h, &e2) != TSR_OK ||
        tsr_httpd_route(h, "GET", "/metrics", h_metrics, h, &e2) != TSR_OK) {
        tsr_httpd_destroy(h);
        return tsr_error_set(err, TSR_EINTERNAL, "built-in routes: %s", e2.msg);
    }
    for (size_t i = 0; i < h->nroutes; i++) {
        h->routes[i].builtin = true;
    }
    *out = h;
    return TSR_OK;
}

void tsr_httpd_destroy(tsr_httpd_t *h) {
    if (h == NULL) {
        return;
    }
    if (h->daemon != NULL) {
        tsr_httpd_stop(h, 0);
    }
    for (size_t i = 0; i < h->nroutes; i++) {
        free(h->routes[i].storage);
        free(h->routes[i].pattern);
        free(h->routes[i].method);
        free(h->routes[i].upload_dir);
    }
    tsr_httpd__metrics_destroy(h->metrics);
    tsr_httpd__limiter_destroy(h->limiter);
    pthread_mutex_destroy(&h->up_mu);
    free(h->service);
    free(h->bind);
    free(h);
}

/* ---- libmicrohttpd adapter ------------------------------------------------------------------ */

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value) {
    (void)kind;
    req_add_header_in(cls, key, value);
    return MHD_YES;
}

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value) {
    (void)kind;
    req_add_query(cls, key, value);
    return MHD_YES;
}

typedef struct {
    tsr_httpd_t *h;
    tsr_httpd_upgrade_fn fn;
    void *ud;
    int fd;
    char *extra;
    size_t extra_len;
    struct MHD_UpgradeResponseHandle *urh;
} upgraded_t;

static void *upgraded_main(void *p) {
    upgraded_t *u = p;
    u->fn(u->fd, u->extra, u->extra_len, u->ud);
    tsr_httpd_t *h = u->h;
    pthread_mutex_lock(&h->up_mu);
    for (size_t i = 0; i < h->nup; i++) {
        if (h->up_fds[i] == u->fd) {
            h->up_fds[i] = h->up_fds[--h->nup];
            break;
        }
    }
    pthread_mutex_unlock(&h->up_mu);
    MHD_upgrade_action(u->urh, MHD_UPGRADE_ACTION_CLOSE);
    free(u->extra);
    free(u);
    return NULL;
}

/* libmicrohttpd calls this on its event-loop thread, which must not block: hand the socket
 * to a thread of its own. */
static void on_upgrade(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra,
                       size_t extra_len, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh) {
    (void)c;
    (void)con_cls;
    upgraded_t *u = cls;
    u->fd = sock;
    u->urh = urh;
    u->extra = tsr_xmalloc(extra_len + 1);
    if (extra_len > 0) {
        memcpy(u->extra, extra, extra_len);
    }
    u->extra_len = extra_len;
    tsr_httpd_t *h = u->h;
    pthread_mutex_lock(&h->up_mu);
    bool room = h->nup < MAX_UPGRADED;
    if (room) {
        h->up_fds[h->nup++] = sock;
    }
    pthread_mutex_unlock(&h->up_mu);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (!room || pthread_create(&t, &attr, upgraded_main, u) != 0) {
        if (room) {
            pthread_mutex_lock(&h->up_mu);
            h->nup--;
            pthread_mutex_unlock(&h->up_mu);
        }
        u->fn(-1, NULL, 0, u->ud);
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        free(u->extra);
        free(u);
    }
    pthread_attr_destroy(&attr);
}

void tsr_httpd_shutdown_upgraded(tsr_httpd_t *h) {
    pthread_mutex_lock(&h->up_mu);
    for (size_t i = 0; i < h->nup; i++) {
        shutdown(h->up_fds[i], SHUT_RDWR);
    }
    pthread_mutex_unlock(&h->up_mu);
}

static enum MHD_Result send_response(struct MHD_Connection *c, tsr_req_t *req) {
    struct MHD_Response *resp;
    if (req->upgrade_fn != NULL) {
        upgraded_t *u = tsr_xcalloc(1, sizeof *u);
        u->h = req->h;
        u->fn = req->upgrade_fn;
        u->ud = req->upgrade_ud;
        req->upgrade_fn = NULL;
        resp = MHD_create_response_for_upgrade(on_upgrade, u);
        if (resp == NULL) {
            u->fn(-1, NULL, 0, u->ud);
            free(u);
            return MHD_NO;
        }
    } else if (req->resp_fd >= 0) {
        /* Streamed from the file by libmicrohttpd, which closes the fd with the response. */
        resp = MHD_create_response_from_fd64(req->resp_fd_size, req->resp_fd);
        if (resp == NULL) {
            return MHD_NO;
        }
        req->resp_fd = -1;
    } else {
        resp =
            MHD_create_response_from_buffer(req->resp_len, req->resp_body, MHD_RESPMEM_MUST_FREE);
        if (resp == NULL) {
            return MHD_NO;
        }
        req->resp_body = NULL; /* now owned by the response */
    }
    for (size_t i = 0; i < req->nresp_headers; i++) {
        MHD_add_response_header(resp, req->resp_headers[i].k, req->resp_headers[i].v);
    }
    enum MHD_Result ret = MHD_queue_response(c, req->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Upload routes: the body goes to a temporary file (mkstemp, 0600) in the route's directory.
 * Called once the request head is known. A file that cannot be made fails the request later
 * (the handler sees no body file). */
static void upload_begin(tsr_httpd_t *h, tsr_req_t *req) {
    tsr_buf_t allow;
    tsr_buf_init(&allow, 1024);
    const route_t *r = route_find(h, req, &allow);
    tsr_buf_cleanup(&allow);
    if (r == NULL || r->upload_dir == NULL) {
        return;
    }
    req->upload_max = r->upload_max;
    req->body_limit = (size_t)(r->upload_max > SIZE_MAX ? SIZE_MAX : r->upload_max);
    size_t n = strlen(r->upload_dir) + 32;
    req->upload_path = tsr_xmalloc(n);
    snprintf(req->upload_path, n, "%s/upload.XXXXXX", r->upload_dir);
    req->upload_fd = mkstemp(req->upload_path);
    if (req->upload_fd < 0) {
        tsr_log_ctx_t ctx = {0};
        tsr_log_error(&ctx, "httpd: cannot create an upload file in %s: %s", r->upload_dir,
                      strerror(errno));
        free(req->upload_path);
        req->upload_path = NULL;
    }
}

static void upload_write(tsr_req_t *req, const void *p, size_t n) {
    if (req->upload_len + n > req->upload_max) {
        req->body_too_big = true;
    }
    while (!req->body_too_big && req->upload_fd >= 0 && n > 0) {
        ssize_t w = write(req->upload_fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            /* Disk full or similar: the handler finds no body file and answers 500. */
            close(req->upload_fd);
            req->upload_fd = -1;
            (void)unlink(req->upload_path);
            free(req->upload_path);
            req->upload_path = NULL;
            return;
        }
        p = (const char *)p + w;
        n -= (size_t)w;
        req->upload_len += (uint64_t)w;
    }
    if (req->body_too_big && req->upload_fd >= 0) {
        close(req->upload_fd);
        req->upload_fd = -1;
        (void)unlink(req->upload_path);
        free(req->upload_path);
        req->upload_path = NULL;
    }
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls) {
    (void)version;
    tsr_httpd_t *h = cls;
    tsr_req_t *req = *con_cls;
    if (req == NULL) {
        req = req_new(h, method, url);
        *con_cls = req;
        atomic_fetch_add(&h->in_flight, 1);
        MHD_get_connection_values(c, MHD_HEADER_KIND, collect_header, req);
        MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_query, req);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci != NULL && ci->client_addr != NULL && ci->client_addr->sa_family == AF_INET) {
            char ip[INET_ADDRSTRLEN];
            const struct sockaddr_in *sin =
                (const struct sockaddr_in *)(const void *)ci->client_addr;
            if (inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip) != NULL) {
                req->client_addr = tsr_arena_strdup(req->arena, ip);
            }
        }
        const char *cl = tsr_req_header(req, "content-length");
        int64_t clen = 0;
        upload_begin(h, req);
        uint64_t cap = req->upload_max > 0 ? req->upload_max : (uint64_t)h->opts.max_body;
        if (cl != NULL &&
            (tsr_str_to_i64(tsr_str(cl), 0, INT64_MAX, &clen) != TSR_OK || (uint64_t)clen > cap)) {
            /* Answer before reading a body we would refuse anyway. */
            req->body_too_big = true;
            run_pipeline(h, req);
            return send_response(c, req);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (req->upload_max > 0) {
            if (!req->body_too_big && !req->replied) {
                upload_write(req, upload_data, *upload_data_size);
            }
        } else if (!req->body_too_big && !req->replied &&
                   tsr_buf_append(&req->body, upload_data, *upload_data_size) != TSR_OK) {
            req->body_too_big = true;
            tsr_buf_cleanup(&req->body);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (req->replied) {
        return MHD_YES;
    }
    run_pipeline(h, req);
    return send_response(c, req);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)c;
    (void)toe;
    tsr_httpd_t *h = cls;
    tsr_req_t *req = *con_cls;
    if (req == NULL) {
        return;
    }
    if (!req->replied) {
        req->status = 499; /* client went away before a response */
    }
    finish_request(h, req);
    req_free(req);
    *con_cls = NULL;
    atomic_fetch_sub(&h->in_flight, 1);
}

tsr_err_t tsr_httpd_start(tsr_httpd_t *h, tsr_error_t *err) {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(h->opts.port);
    if (inet_pton(AF_INET, h->bind, &sa.sin_addr) != 1) {
        return tsr_error_set(err, TSR_EINVAL, "TSR_BIND=%s is not an IPv4 address", h->bind);
    }
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_AUTO | MHD_ALLOW_UPGRADE;
    h->daemon = MHD_start_daemon(
        flags, h->opts.port, NULL, NULL, on_access, h, MHD_OPTION_SOCK_ADDR,
        (const struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE, h->opts.threads,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)2000, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)64 * 1024, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_END);
    if (h->daemon == NULL) {
        return tsr_error_set(err, TSR_EUNAVAILABLE, "cannot listen on %s:%u", h->bind,
                             (unsigned)h->opts.port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di != NULL ? di->port : h->opts.port;
    return TSR_OK;
}

uint16_t tsr_httpd_port(const tsr_httpd_t *h) {
    return h->port;
}

bool tsr_httpd_is_draining(const tsr_httpd_t *h) {
    return atomic_load(&h->draining);
}

unsigned tsr_httpd_stop(tsr_httpd_t *h, unsigned grace_ms) {
    if (h->daemon == NULL) {
        return 0;
    }
    atomic_store(&h->draining, true);
    MHD_socket fd = MHD_quiesce_daemon(h->daemon);
    if (fd != MHD_INVALID_SOCKET) {
        close(fd);
    }
    if (h->opts.on_drain != NULL) {
        h->opts.on_drain(h->opts.drain_ud);
    }
    /* Upgraded connections count as in flight until their handler returned and
     * libmicrohttpd completed them; on_drain has asked them to end. */
    uint64_t deadline = tsr_mono_ms() + grace_ms;
    for (;;) {
        pthread_mutex_lock(&h->up_mu);
        size_t nup = h->nup;
        pthread_mutex_unlock(&h->up_mu);
        if (atomic_load(&h->in_flight) == 0 && nup == 0) {
            break;
        }
        if (tsr_mono_ms() >= deadline) {
            break;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    /* Whatever upgraded connection is left is cut now; its handler sees EOF and returns. */
    tsr_httpd_shutdown_upgraded(h);
    uint64_t hard = tsr_mono_ms() + 2000;
    pthread_mutex_lock(&h->up_mu);
    while (h->nup > 0 && tsr_mono_ms() < hard) {
        pthread_mutex_unlock(&h->up_mu);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&h->up_mu);
    }
    pthread_mutex_unlock(&h->up_mu);
    deadline = tsr_mono_ms() + 500;
    while (atomic_load(&h->in_flight) > 0 && tsr_mono_ms() < deadline) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    unsigned left = atomic_load(&h->in_flight);
    MHD_stop_daemon(h->daemon);
    h->daemon = NULL;
    return left;
}

/* ---- in-process requests --------------------------------------------------------------------- */

static int hexval(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Decode %XX and '+' in place, as libmicrohttpd does for query arguments. */
static void url_decode(char *s) {
    char *o = s;
    for (char *p = s; *p; p++) {
        if (*p == '%' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
            *o++ = (char)(hexval(p[1]) * 16 + hexval(p[2]));
            p += 2;
        } else if (*p == '+') {
            *o++ = ' ';
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
}

void tsr_httpd_inject(tsr_httpd_t *h, const char *method, const char *path_and_query,
                      const char *const *headers, const void *body, size_t body_len,
                      tsr_httpd_response_t *resp) {
    const char *q = strchr(path_and_query, '?');
    size_t plen = q ? (size_t)(q - path_and_query) : strlen(path_and_query);
    char *path = tsr_xstrndup(path_and_query, plen);
    url_decode(path);
    tsr_req_t *req = req_new(h, method, path);
    free(path);
    req->client_addr = "inject";
    if (q != NULL) {
        char *qs = tsr_arena_strdup(req->arena, q + 1);
        char *save = NULL;
        for (char *kv = strtok_r(qs, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
            char *eq = strchr(kv, '=');
            if (eq != NULL) {
                *eq = '\0';
            }
            url_decode(kv);
            if (eq != NULL) {
                url_decode(eq + 1);
            }
            req_add_query(req, kv, eq ? eq + 1 : "");
        }
    }
    for (size_t i = 0; headers != NULL && headers[i] != NULL && headers[i + 1] != NULL; i += 2) {
        req_add_header_in(req, headers[i], headers[i + 1]);
    }
    atomic_fetch_add(&h->in_flight, 1);
    upload_begin(h, req);
    if (req->upload_max > 0) {
        if (body_len > 0) {
            upload_write(req, body, body_len);
        }
    } else if (body_len > 0 && tsr_buf_append(&req->body, body, body_len) != TSR_OK) {
        req->body_too_big = true;
    }
    run_pipeline(h, req);
    if (req->resp_fd >= 0) {
        /* No socket: the file's bytes become the response body. */
        tsr_buf_t b;
        tsr_buf_init(&b, SIZE_MAX);
        char chunk[65536];
        ssize_t r;
        (void)lseek(req->resp_fd, 0, SEEK_SET);
        while ((r = read(req->resp_fd, chunk, sizeof chunk)) > 0) {
            (void)tsr_buf_append(&b, chunk, (size_t)r);
        }
        close(req->resp_fd);
        req->resp_fd = -1;
        free(req->resp_body);
        req->resp_len = b.len;
        req->resp_body = tsr_xmalloc(b.len + 1);
        if (b.len > 0) {
            memcpy(req->resp_body, b.data, b.len);
        }
        req->resp_body[b.len] = '\0';
        tsr_buf_cleanup(&b);
    }
    if (req->upgrade_fn != NULL) {
        req->upgrade_fn(-1, NULL, 0, req->upgrade_ud);
        req->upgrade_fn = NULL;
    }
    finish_request(h, req);
    resp->status = req->status;
    resp->body = req->resp_body;
    resp->body_len = req->resp_len;
    req->resp_body = NULL;
    resp->headers = json_object();
    for (size_t i = 0; i < req->nresp_headers; i++) {
        char *k = tsr_xstrdup(req->resp_headers[i].k);
        for (char *p = k; *p; p++) {
            *p = (char)((*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : *p);
        }
        json_object_set_new(resp->headers, k, json_string(req->resp_headers[i].v));
        free(k);
    }
    req_free(req);
    atomic_fetch_sub(&h->in_flight, 1);
}

void tsr_httpd_response_cleanup(tsr_httpd_response_t *resp) {
    free(resp->body);
    json_decref(resp->headers);
    memset(resp, 0, sizeof *resp);
}
