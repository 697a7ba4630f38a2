/* Unit tests for pkg/httpd: the request pipeline in-process (routing, params, bodies, JSON,
 * error mapping, request ids, rate limiting, metrics) and over a real socket (413 before the
 * body, graceful stop finishing an in-flight request). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "httpd.h"
#include "log.h"

static tsr_err_t h_echo(tsr_req_t *req, void *ud, tsr_error_t *err) {
    (void)ud;
    json_t *body = NULL;
    tsr_err_t rc = tsr_req_json(req, &body, err);
    if (rc != TSR_OK) {
        return rc;
    }
    tsr_req_reply_json(req, 201, json_pack("{s:o}", "got", body));
    return TSR_OK;
}

static tsr_err_t h_item(tsr_req_t *req, void *ud, tsr_error_t *err) {
    (void)ud;
    (void)err;
    const char *limit = tsr_req_query(req, "limit");
    tsr_req_reply_json(req, 200,
                       json_pack("{s:s,s:s,s:s}", "id", tsr_req_param(req, "id"), "limit",
                                 limit ? limit : "", "route", tsr_req_route(req)));
    return TSR_OK;
}

static tsr_err_t h_literal(tsr_req_t *req, void *ud, tsr_error_t *err) {
    (void)ud;
    (void)err;
    tsr_req_reply_json(req, 200, json_pack("{s:b}", "literal", 1));
    return TSR_OK;
}

static tsr_err_t h_fail(tsr_req_t *req, void *ud, tsr_error_t *err) {
    (void)req;
    (void)ud;
    return tsr_error_set(err, TSR_ECONFLICT, "version 3 does not match 4");
}

static tsr_err_t h_internal(tsr_req_t *req, void *ud, tsr_error_t *err) {
    (void)req;
    (void)ud;
    return tsr_error_set(err, TSR_EINTERNAL, "secret database path /x/y");
}

static tsr_err_t h_noreply(tsr_req_t *req, void *ud, tsr_error_t *err) {
    (void)req;
    (void)ud;
    (void)err;
    return TSR_OK;
}

static tsr_err_t h_slow(tsr_req_t *req, void *ud, tsr_error_t *err) {
    (void)ud;
    (void)err;
    struct timespec ts = {0, 400 * 1000 * 1000};
    nanosleep(&ts, NULL);
    tsr_req_reply_json(req, 200, json_pack("{s:s}", "slow", "done"));
    return TSR_OK;
}

static tsr_httpd_t *make_server(size_t max_body, uint32_t per_min, uint32_t burst) {
    tsr_httpd_opts_t o;
    memset(&o, 0, sizeof o);
    o.service = "test";
    o.bind = "127.0.0.1";
    o.threads = 2;
    o.max_body = max_body;
    o.rate_per_min = per_min;
    o.rate_burst = burst;
    tsr_httpd_t *h = NULL;
    tsr_error_t err;
    ck_assert_int_eq(tsr_httpd_create(&o, &h, &err), TSR_OK);
    ck_assert_int_eq(tsr_httpd_route(h, "POST", "/api/v1/echo", h_echo, NULL, &err), TSR_OK);
    ck_assert_int_eq(tsr_httpd_route(h, "GET", "/api/v1/items/{id}", h_item, NULL, &err), TSR_OK);
    ck_assert_int_eq(tsr_httpd_route(h, "DELETE", "/api/v1/items/{id}", h_item, NULL, &err),
                     TSR_OK);
    ck_assert_int_eq(tsr_httpd_route(h, "GET", "/api/v1/items/special", h_literal, NULL, &err),
                     TSR_OK);
    ck_assert_int_eq(tsr_httpd_route(h, "GET", "/api/v1/fail", h_fail, NULL, &err), TSR_OK);
    ck_assert_int_eq(tsr_httpd_route(h, "GET", "/api/v1/internal", h_internal, NULL, &err), TSR_OK);
    ck_assert_int_eq(tsr_httpd_route(h, "GET", "/api/v1/noreply", h_noreply, NULL, &err), TSR_OK);
    ck_assert_int_eq(tsr_httpd_route(h, "GET", "/slow", h_slow, NULL, &err), TSR_OK);
    return h;
}

static json_t *body_json(const tsr_httpd_response_t *r) {
    json_error_t je;
    json_t *j = json_loadb(r->body, r->body_len, 0, &je);
    ck_assert_msg(j != NULL, "response is not JSON: %s", r->body);
    return j;
}

/* The error body shape every failure must have. */
static void assert_error_body(const tsr_httpd_response_t *r, unsigned status) {
    ck_assert_uint_eq(r->status, status);
    json_t *j = body_json(r);
    json_t *e = json_array_get(json_object_get(j, "errors"), 0);
    ck_assert_ptr_nonnull(e);
    char want_code[16], want_status[8];
    snprintf(want_code, sizeof want_code, "HTTP-%u", status);
    snprintf(want_status, sizeof want_status, "%u", status);
    ck_assert_str_eq(json_string_value(json_object_get(e, "code")), want_code);
    ck_assert_str_eq(json_string_value(json_object_get(e, "status")), want_status);
    ck_assert_ptr_nonnull(json_string_value(json_object_get(e, "title")));
    ck_assert_ptr_nonnull(json_string_value(json_object_get(e, "detail")));
    const char *trace = json_string_value(json_object_get(j, "traceId"));
    ck_assert_ptr_nonnull(trace);
    ck_assert_str_eq(trace, json_string_value(json_object_get(r->headers, "x-request-id")));
    ck_assert_str_eq(json_string_value(json_object_get(r->headers, "content-type")),
                     "application/json");
    json_decref(j);
}

static const char *k_json_ct[] = {"Content-Type", "application/json", NULL};

START_TEST(test_route_params_and_query_are_decoded) {
    tsr_httpd_t *h = make_server(1024, 0, 1);
    tsr_httpd_response_t r;
    tsr_httpd_inject(h, "GET", "/api/v1/items/a%20b?limit=5&x=%3D", NULL, NULL, 0, &r);
    ck_assert_uint_eq(r.status, 200);
    json_t *j = body_json(&r);
    ck_assert_str_eq(json_string_value(json_object_get(j, "id")), "a b");
    ck_assert_str_eq(json_string_value(json_object_get(j, "limit")), "5");
    ck_assert_str_eq(json_string_value(json_object_get(j, "route")), "/api/v1/items/{id}");
    json_decref(j);
    tsr_httpd_response_cleanup(&r);
    tsr_httpd_destroy(h);
}
END_TEST

START_TEST(test_route_literal_beats_parameter) {
    tsr_httpd_t *h = make_server(1024, 0, 1);
    tsr_httpd_response_t r;
    tsr_httpd_inject(h, "GET", "/api/v1/items/special", NULL, NULL, 0, &r);
    ck_assert_uint_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "literal"));
    tsr_httpd_response_cleanup(&r);
    tsr_httpd_destroy(h);
}
END_TEST

START_TEST(test_route_unknown_path_is_404_error_body) {
    tsr_httpd_t *h = make_server(1024, 0, 1);
    tsr_httpd_response_t r;
    tsr_httpd_inject(h, "GET", "/api/v1/nothing/here", NULL, NULL, 0, &r);
    assert_error_body(&r, 404);
    tsr_httpd_response_cleanup(&r);
    tsr_httpd_destroy(h);
}
END_TEST

START_TEST(test_route_wrong_method_is_405_with_allow) {
    tsr_httpd_t *h = make_server(1024, 0, 1);
    tsr_httpd_response_t r;
    tsr_httpd_inject(h, "PUT", "/api/v1/items/7", NULL, NULL, 0, &r);
    assert_error_body(&r, 405);
    const char *allow = json_string_value(json_object_get(r.headers, "allow"));
    ck_assert_ptr_nonnull(allow);
    ck_assert_ptr_nonnull(strstr(allow, "GET"));
    ck_assert_ptr_nonnull(strstr(allow, "DELETE"));
    tsr_httpd_response_cleanup(&r);
    tsr_httpd_destroy(h);
}
END_TEST

START_TEST(test_route_duplicate_and_malformed_patterns_are_refused) {
    tsr_httpd_t *h = make_server(1024, 0, 1);
    tsr_error_t err;
    ck_assert_int_eq(tsr_httpd_route(h, "POST", "/api/v1/echo", h_echo, NULL, &err), TSR_ECONFLICT);
    ck_assert_int_eq(tsr_httpd_route(h, "GET", "relative", h_echo, NULL, &err), TSR_EINVAL);
    ck_assert_int_eq(tsr_httpd_route(h, "GET", "/x/{bad", h_echo, NULL, &err), TSR_EINVAL);
    tsr_httpd_destroy(h);
}
END_TEST

START_TEST(test_json_body_roundtrip) {
    tsr_httpd_t *h = make_server(1024, 0, 1);
    tsr_httpd_response_t r;
    const char *b = "{\"name\":\"Q\",\"n\":3}";
    tsr_httpd_inject(h, "POST", "/api/v1/echo", k_json_ct, b, strlen(b), &r);
    ck_assert_uint_eq(r.status, 201);
    json_t *j = body_json(&r);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "got"), "n")), 3);
    json_decref(j);
    tsr_httpd_response_cleanup(&r);
    tsr_httpd_destroy(h);
}
END_TEST

START_TEST(test_json_body_malformed_is_400_with_position) {
    tsr_httpd_t *h = make_server(1024, 0, 1);
    tsr_httpd_response_t r;
    const char *b = "{\"name\": \n tru }";
    tsr_httpd_inject(h, "POST", "/api/v1/echo", k_json_ct, b, strlen(b), &r);
    assert_error_body(&r, 400);
    ck_assert_ptr_nonnull(strstr(r.body, "line 2"));
    tsr_httpd_response_cleanup(&r);
    const char *dup = "{\"a\":1,\"a\":2}";
    tsr_httpd_inject(h, "POST", "/api/v1/echo", k_json_ct, dup, strlen(dup), &r);
    assert_error_body(&r, 400);
    tsr_httpd_response_cleanup(&r);
    tsr_httpd_inject(h, "POST", "/api/v1/echo", k_json_ct, NULL, 0, &r);
    assert_error_body(&r, 400);
    tsr_httpd_response_cleanup(&r);
    tsr_httpd_destroy(h);
}
END_TEST

START_TEST(test_json_body_wrong_content_type_is_415) {
    tsr_httpd_t *h = make_server(1024, 0, 1);
    tsr_httpd_response_t r;
    const char *hdr[] = {"Content-Type", "text/plain", NULL};
    tsr_httpd_inject(h, "POST", "/api/v1/echo", hdr, "{}", 2, &r);
    assert_error_body(&r, 415);
    tsr_httpd_response_cleanup(&r);
    const char *hdr2[] = {"Content-Type", "application/vnd.api+json; charset=utf-8", NULL};
    tsr_httpd_inject(h, "POST", "/api/v1/echo", hdr2, "{}", 2, &r);
    ck_assert_uint_eq(r.status, 201);
    tsr_httpd_response_cleanup(&r);
    tsr_httpd_destroy(h);
}
END_TEST

START_TEST(test_body_over_cap_is_413) {
    tsr_httpd_t *h = make_server(1024, 0, 1);
    char *big = malloc(4096);
    memset(big, ' ', 4096);
    big[0] = '{';
    big[4095] = '}';
    tsr_httpd_response_t r;
    tsr_httpd_inject(h, "POST", "/api/v1/echo", k_json_ct, big, 4096, &r);
    assert_error_body(&r, 413);
    tsr_httpd_response_cleanup(&r);
    free(big);
    tsr_httpd_destroy(h);
}
END_TEST

START_TEST(test_handler_error_maps_to_status_once) {
    tsr_httpd_t *h = make_server(1024, 0, 1);
    tsr_httpd_response_t r;
    tsr_httpd_inject(h, "GET", "/api/v1/fail", NULL, NULL, 0, &r);
    assert_error_body(&r, 409);
    ck_assert_ptr_nonnull(strstr(r.body, "version 3 does not match 4"));
    tsr_httpd_response_cleanup(&r);
    /* Internal details never reach the caller. */
    tsr_httpd_inject(h, "GET", "/api/v1/internal", NULL, NULL, 0, &r);
    assert_error_body(&r, 500);
    ck_assert_ptr_null(strstr(r.body, "secret"));
    tsr_httpd_response_cleanup(&r);
    tsr_httpd_inject(h, "GET", "/api/v1/noreply", NULL, NULL, 0, &r);
    assert_error_body(&r, 500);
    tsr_httpd_response_cleanup(&r);
    tsr_httpd_destroy(h);
}
END_TEST

START_TEST(test_status_of_covers_every_code) {
    ck_assert_uint_eq(tsr_httpd_status_of(TSR_EINVAL), 400);
    ck_assert_uint_eq(tsr_httpd_status_of(TSR_EUNAUTHENTICATED), 401);
    ck_assert_uint_eq(tsr_httpd_status_of(TSR_EFORBIDDEN), 403);
    ck_assert_uint_eq(tsr_httpd_status_of(TSR_ENOTFOUND), 404);
    ck_assert_uint_eq(tsr_httpd_status_of(TSR_EMETHOD), 405);
    ck_assert_uint_eq(tsr_httpd_status_of(TSR_ECONFLICT), 409);
    ck_assert_uint_eq(tsr_httpd_status_of(TSR_ETOOBIG), 413);
    ck_assert_uint_eq(tsr_httpd_status_of(TSR_EUNSUPPORTEDMEDIA), 415);
    ck_assert_uint_eq(tsr_httpd_status_of(TSR_ERATELIMITED), 429);
    ck_assert_uint_eq(tsr_httpd_status_of(TSR_EUNAVAILABLE), 503);
    ck_assert_uint_eq(tsr_httpd_status_of(TSR_ETIMEOUT), 504);
    ck_assert_uint_eq(tsr_httpd_status_of(TSR_EINTERNAL), 500);
}
END_TEST

START_TEST(test_request_id_is_echoed_or_generated) {
    tsr_httpd_t *h = make_server(1024, 0, 1);
    tsr_httpd_response_t r;
    const char *hdr[] = {"X-Request-Id", "abc-123", NULL};
    tsr_httpd_inject(h, "GET", "/api/v1/items/1", hdr, NULL, 0, &r);
    ck_assert_str_eq(json_string_value(json_object_get(r.headers, "x-request-id")), "abc-123");
    tsr_httpd_response_cleanup(&r);
    /* A hostile id (log injection) is replaced by a generated one. */
    const char *bad[] = {"X-Request-Id", "a\"b\nc", NULL};
    tsr_httpd_inject(h, "GET", "/api/v1/items/1", bad, NULL, 0, &r);
    const char *got = json_string_value(json_object_get(r.headers, "x-request-id"));
    ck_assert_uint_eq(strlen(got), 32);
    tsr_httpd_response_cleanup(&r);
    tsr_httpd_destroy(h);
}
END_TEST

START_TEST(test_rate_limit_per_principal_is_429_with_retry_after) {
    tsr_httpd_t *h = make_server(1024, 60, 3);
    tsr_httpd_response_t r;
    const char *a[] = {"X-Real-IP", "10.0.0.1", NULL};
    const char *b[] = {"X-Real-IP", "10.0.0.2", NULL};
    for (int i = 0; i < 3; i++) {
        tsr_httpd_inject(h, "GET", "/api/v1/items/1", a, NULL, 0, &r);
        ck_assert_uint_eq(r.status, 200);
        tsr_httpd_response_cleanup(&r);
    }
    tsr_httpd_inject(h, "GET", "/api/v1/items/1", a, NULL, 0, &r);
    assert_error_body(&r, 429);
    const char *ra = json_string_value(json_object_get(r.headers, "retry-after"));
    ck_assert_ptr_nonnull(ra);
    ck_assert_int_ge(strtol(ra, NULL, 10), 1);
    tsr_httpd_response_cleanup(&r);
    /* Another principal is unaffected, and probes are never limited. */
    tsr_httpd_inject(h, "GET", "/api/v1/items/1", b, NULL, 0, &r);
    ck_assert_uint_eq(r.status, 200);
    tsr_httpd_response_cleanup(&r);
    tsr_httpd_inject(h, "GET", "/health/live", a, NULL, 0, &r);
    ck_assert_uint_eq(r.status, 200);
    tsr_httpd_response_cleanup(&r);
    tsr_httpd_destroy(h);
}
END_TEST

START_TEST(test_metrics_count_routes_and_statuses) {
    tsr_httpd_t *h = make_server(1024, 0, 1);
    tsr_httpd_response_t r;
    for (int i = 0; i < 3; i++) {
        tsr_httpd_inject(h, "GET", "/api/v1/items/9", NULL, NULL, 0, &r);
        tsr_httpd_response_cleanup(&r);
    }
    tsr_httpd_inject(h, "GET", "/api/v1/fail", NULL, NULL, 0, &r);
    tsr_httpd_response_cleanup(&r);
    tsr_httpd_inject(h, "GET", "/metrics", NULL, NULL, 0, &r);
    ck_assert_uint_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "tsr_http_requests_total{service=\"test\",route=\"/api/"
                                         "v1/items/{id}\",method=\"GET\",status=\"200\"} 3"));
    ck_assert_ptr_nonnull(
        strstr(r.body, "route=\"/api/v1/fail\",method=\"GET\",status=\"409\"} 1"));
    ck_assert_ptr_nonnull(strstr(r.body,
                                 "tsr_http_request_duration_seconds_bucket{service=\"test\","
                                 "route=\"/api/v1/items/{id}\",le=\"+Inf\"} 3"));
    tsr_httpd_response_cleanup(&r);
    tsr_httpd_destroy(h);
}
END_TEST

/* ---- over a socket ------------------------------------------------------------------------ */

static int connect_local(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

/* Send raw bytes, read the whole response (server closes or Connection: close). */
static char *raw_request(uint16_t port, const char *req) {
    int fd = connect_local(port);
    ck_assert_int_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    tsr_buf_t b;
    tsr_buf_init(&b, 0);
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0) {
        tsr_buf_append(&b, buf, (size_t)n);
    }
    close(fd);
    return tsr_buf_take(&b, NULL);
}

START_TEST(test_socket_oversized_content_length_is_413_without_body) {
    tsr_httpd_t *h = make_server(1024, 0, 1);
    tsr_error_t err;
    ck_assert_int_eq(tsr_httpd_start(h, &err), TSR_OK);
    ck_assert_uint_gt(tsr_httpd_port(h), 0);
    char *resp = raw_request(tsr_httpd_port(h), "POST /api/v1/echo HTTP/1.1\r\nHost: x\r\n"
                                                "Content-Type: application/json\r\n"
                                                "Content-Length: 999999999\r\n"
                                                "Connection: close\r\n\r\n{");
    ck_assert_msg(strncmp(resp, "HTTP/1.1 413", 12) == 0, "got %s", resp);
    ck_assert_ptr_nonnull(strstr(resp, "\"HTTP-413\""));
    free(resp);
    /* The server still serves afterwards. */
    resp = raw_request(tsr_httpd_port(h),
                       "GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    ck_assert_msg(strncmp(resp, "HTTP/1.1 200", 12) == 0, "got %s", resp);
    free(resp);
    ck_assert_uint_eq(tsr_httpd_stop(h, 1000), 0);
    tsr_httpd_destroy(h);
}
END_TEST

START_TEST(test_socket_chunked_body_over_cap_is_413) {
    tsr_httpd_t *h = make_server(64, 0, 1);
    tsr_error_t err;
    ck_assert_int_eq(tsr_httpd_start(h, &err), TSR_OK);
    char req[1024];
    char chunk[201];
    memset(chunk, 'a', 200);
    chunk[200] = '\0';
    snprintf(req, sizeof req,
             "POST /api/v1/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nc8\r\n%s\r\n0\r\n\r\n",
             chunk);
    char *resp = raw_request(tsr_httpd_port(h), req);
    ck_assert_msg(strncmp(resp, "HTTP/1.1 413", 12) == 0, "got %s", resp);
    free(resp);
    tsr_httpd_stop(h, 1000);
    tsr_httpd_destroy(h);
}
END_TEST

typedef struct {
    uint16_t port;
    char *resp;
} slow_arg_t;

static void *slow_client(void *p) {
    slow_arg_t *a = p;
    a->resp = raw_request(a->port, "GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    return NULL;
}

START_TEST(test_stop_finishes_in_flight_request) {
    tsr_httpd_t *h = make_server(1024, 0, 1);
    tsr_error_t err;
    ck_assert_int_eq(tsr_httpd_start(h, &err), TSR_OK);
    slow_arg_t a = {tsr_httpd_port(h), NULL};
    pthread_t t;
    pthread_create(&t, NULL, slow_client, &a);
    struct timespec ts = {0, 150 * 1000 * 1000};
    nanosleep(&ts, NULL); /* the request is now inside the slow handler */
    ck_assert_uint_eq(tsr_httpd_stop(h, 5000), 0);
    pthread_join(t, NULL);
    ck_assert_msg(strncmp(a.resp, "HTTP/1.1 200", 12) == 0, "got %s", a.resp);
    ck_assert_ptr_nonnull(strstr(a.resp, "done"));
    free(a.resp);
    tsr_httpd_destroy(h);
}
END_TEST

/* ---- upgrade ------------------------------------------------------------------------------- */

/* Upload routes: the body goes to a file (never the capped memory buffer); the handler
 * answers with that file through tsr_req_reply_fd (streamed by libmicrohttpd). */
static tsr_err_t h_upload_echo(tsr_req_t *req, void *ud, tsr_error_t *err) {
    (void)ud;
    uint64_t len = 0;
    const char *path = tsr_req_body_file(req, &len);
    if (path == NULL) {
        return tsr_error_set(err, TSR_EIO, "no body file");
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return tsr_error_set(err, TSR_EIO, "open");
    }
    tsr_req_reply_fd(req, 200, "application/octet-stream", fd, len);
    return TSR_OK;
}

static int dir_entries(const char *d) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", d);
    FILE *p = popen(cmd, "r");
    int n = -1;
    ck_assert_int_eq(fscanf(p, "%d", &n), 1);
    pclose(p);
    return n;
}

START_TEST(test_upload_route_streams_body_to_file_and_fd_reply_back) {
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/tsr-httpd-up.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    tsr_httpd_t *h = make_server(1024, 0, 1);
    tsr_error_t err;
    ck_assert_int_eq(
        tsr_httpd_route_upload(h, "POST", "/up", h_upload_echo, NULL, dir, 300000, &err), TSR_OK);
    ck_assert_int_eq(tsr_httpd_route_upload(h, "POST", "/up2", h_upload_echo, NULL, NULL, 1, &err),
                     TSR_EINVAL);
    ck_assert_int_eq(tsr_httpd_start(h, &err), TSR_OK);
    /* 200 KB, far over max_body (1 KiB), under the route's cap: echoed byte for byte. */
    size_t n = 200000;
    char *req = malloc(n + 256);
    int hl = snprintf(req, 256,
                      "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      n);
    for (size_t i = 0; i < n; i++) {
        req[(size_t)hl + i] = (char)('a' + (char)(i * 7 % 26));
    }
    req[(size_t)hl + n] = '\0';
    char *resp = raw_request(tsr_httpd_port(h), req);
    ck_assert_msg(strncmp(resp, "HTTP/1.1 200", 12) == 0, "got %.200s", resp);
    const char *b = strstr(resp, "\r\n\r\n");
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(strlen(b + 4), n);
    ck_assert_int_eq(memcmp(b + 4, req + hl, n), 0);
    free(resp);
    /* Over the route's cap: 413 at once from Content-Length, or while a chunked body arrives. */
    resp = raw_request(tsr_httpd_port(h), "POST /up HTTP/1.1\r\nHost: x\r\n"
                                          "Content-Length: 300001\r\nConnection: close\r\n\r\nx");
    ck_assert_msg(strncmp(resp, "HTTP/1.1 413", 12) == 0, "got %.200s", resp);
    free(resp);
    tsr_buf_t c;
    tsr_buf_init(&c, 0);
    tsr_buf_appendf(&c, "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                        "Connection: close\r\n\r\n");
    for (int i = 0; i < 5; i++) {
        tsr_buf_appendf(&c, "%x\r\n", 100000);
        for (int k = 0; k < 100000; k++) {
            tsr_buf_append(&c, "z", 1);
        }
        tsr_buf_appendf(&c, "\r\n");
    }
    tsr_buf_appendf(&c, "0\r\n\r\n");
    resp = raw_request(tsr_httpd_port(h), c.data);
    ck_assert_msg(strncmp(resp, "HTTP/1.1 413", 12) == 0, "got %.200s", resp);
    free(resp);
    tsr_buf_cleanup(&c);
    ck_assert_uint_eq(tsr_httpd_stop(h, 1000), 0);
    ck_assert_int_eq(dir_entries(dir), 0); /* no body file outlives its request */
    /* In-process requests take the same path. */
    tsr_httpd_response_t r;
    tsr_httpd_inject(h, "POST", "/up", NULL, req + hl, 5000, &r);
    ck_assert_uint_eq(r.status, 200);
    ck_assert_uint_eq(r.body_len, 5000);
    ck_assert_int_eq(memcmp(r.body, req + hl, 5000), 0);
    tsr_httpd_response_cleanup(&r);
    ck_assert_int_eq(dir_entries(dir), 0);
    tsr_httpd_destroy(h);
    free(req);
    rmdir(dir);
}
END_TEST

static atomic_int g_echo_done;

static void echo_upgraded(int fd, const char *extra, size_t extra_len, void *ud) {
    (void)ud;
    if (fd < 0) {
        return;
    }
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    if (extra_len > 0) {
        send(fd, extra, extra_len, MSG_NOSIGNAL);
    }
    char buf[256];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0) {
        send(fd, buf, (size_t)n, MSG_NOSIGNAL);
    }
    atomic_store(&g_echo_done, 1);
}

static tsr_err_t h_upgrade(tsr_req_t *req, void *ud, tsr_error_t *err) {
    (void)ud;
    const char *up = tsr_req_header(req, "upgrade");
    if (up == NULL || strcmp(up, "echo") != 0) {
        return tsr_error_set(err, TSR_EINVAL, "Upgrade: echo expected");
    }
    tsr_req_add_header(req, "Upgrade", "echo");
    tsr_req_add_header(req, "Connection", "Upgrade");
    tsr_req_reply_upgrade(req, echo_upgraded, NULL);
    return TSR_OK;
}

static ssize_t recv_until(int fd, char *buf, size_t cap, const char *needle) {
    size_t len = 0;
    while (len < cap - 1) {
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, needle) != NULL) {
            break;
        }
    }
    buf[len] = '\0';
    return (ssize_t)len;
}

START_TEST(test_upgrade_hands_socket_to_handler_and_stop_ends_it) {
    atomic_store(&g_echo_done, 0);
    tsr_httpd_t *h = make_server(1024, 0, 1);
    tsr_error_t err;
    ck_assert_int_eq(tsr_httpd_route(h, "GET", "/echo", h_upgrade, NULL, &err), TSR_OK);
    ck_assert_int_eq(tsr_httpd_start(h, &err), TSR_OK);
    int fd = connect_local(tsr_httpd_port(h));
    const char *req = "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                      "Upgrade: echo\r\n\r\n";
    send(fd, req, strlen(req), MSG_NOSIGNAL);
    char buf[2048];
    recv_until(fd, buf, sizeof buf, "\r\n\r\n");
    ck_assert_msg(strncmp(buf, "HTTP/1.1 101", 12) == 0, "got %s", buf);
    send(fd, "ping-1", 6, MSG_NOSIGNAL);
    recv_until(fd, buf, sizeof buf, "ping-1");
    ck_assert_str_eq(buf, "ping-1");
    /* Stop cuts the upgraded connection once the grace period is over. */
    tsr_httpd_stop(h, 200);
    ck_assert_int_eq(atomic_load(&g_echo_done), 1);
    ck_assert_int_le(recv(fd, buf, sizeof buf, 0), 0);
    close(fd);
    tsr_httpd_destroy(h);
}
END_TEST

START_TEST(test_upgrade_in_process_releases_ud) {
    tsr_httpd_t *h = make_server(1024, 0, 1);
    tsr_error_t err;
    ck_assert_int_eq(tsr_httpd_route(h, "GET", "/echo", h_upgrade, NULL, &err), TSR_OK);
    tsr_httpd_response_t r;
    const char *hdr[] = {"Upgrade", "echo", NULL};
    tsr_httpd_inject(h, "GET", "/echo", hdr, NULL, 0, &r);
    ck_assert_uint_eq(r.status, 101);
    ck_assert_str_eq(json_string_value(json_object_get(r.headers, "upgrade")), "echo");
    tsr_httpd_response_cleanup(&r);
    tsr_httpd_inject(h, "GET", "/echo", NULL, NULL, 0, &r);
    ck_assert_uint_eq(r.status, 400);
    tsr_httpd_response_cleanup(&r);
    tsr_httpd_destroy(h);
}
END_TEST

int main(void) {
    FILE *devnull = fopen("/dev/null", "w");
    tsr_log_init("test", TSR_LOG_INFO, devnull);
    Suite *s = suite_create("httpd");
    TCase *tc = tcase_create("pipeline");
    tcase_add_test(tc, test_route_params_and_query_are_decoded);
    tcase_add_test(tc, test_route_literal_beats_parameter);
    tcase_add_test(tc, test_route_unknown_path_is_404_error_body);
    tcase_add_test(tc, test_route_wrong_method_is_405_with_allow);
    tcase_add_test(tc, test_route_duplicate_and_malformed_patterns_are_refused);
    tcase_add_test(tc, test_json_body_roundtrip);
    tcase_add_test(tc, test_json_body_malformed_is_400_with_position);
    tcase_add_test(tc, test_json_body_wrong_content_type_is_415);
    tcase_add_test(tc, test_body_over_cap_is_413);
    tcase_add_test(tc, test_handler_error_maps_to_status_once);
    tcase_add_test(tc, test_status_of_covers_every_code);
    tcase_add_test(tc, test_request_id_is_echoed_or_generated);
    tcase_add_test(tc, test_rate_limit_per_principal_is_429_with_retry_after);
    tcase_add_test(tc, test_metrics_count_routes_and_statuses);
    suite_add_tcase(s, tc);
    TCase *tn = tcase_create("socket");
    tcase_set_timeout(tn, 30);
    tcase_add_test(tn, test_socket_oversized_content_length_is_413_without_body);
    tcase_add_test(tn, test_socket_chunked_body_over_cap_is_413);
    tcase_add_test(tn, test_stop_finishes_in_flight_request);
    tcase_add_test(tn, test_upgrade_hands_socket_to_handler_and_stop_ends_it);
    tcase_add_test(tn, test_upgrade_in_process_releases_ud);
    tcase_add_test(tn, test_upload_route_streams_body_to_file_and_fd_reply_back);
    suite_add_tcase(s, tn);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    fclose(devnull);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
