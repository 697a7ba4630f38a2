/* libFuzzer target for the HTTP request pipeline (pkg/httpd): the input is split on '\n'
 * into method, path?query, header lines "Name: value", then the rest is the body. Oracle:
 * every request gets a status; every error (>= 400) has the JSON error body. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpd.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tsr_err_t h_json(tsr_req_t *req, void *ud, tsr_error_t *err) {
    (void)ud;
    json_t *j = NULL;
    tsr_err_t rc = tsr_req_json(req, &j, err);
    if (rc != TSR_OK) {
        return rc;
    }
    tsr_req_reply_json(req, 200, j);
    return TSR_OK;
}

static tsr_httpd_t *server(void) {
    static tsr_httpd_t *h;
    if (h == NULL) {
        FILE *devnull = fopen("/dev/null", "w");
        tsr_log_init("fuzz", TSR_LOG_ERROR, devnull);
        tsr_httpd_opts_t o = {.service = "fuzz",
                              .bind = "127.0.0.1",
                              .threads = 1,
                              .max_body = 4096,
                              .rate_per_min = 600,
                              .rate_burst = 50};
        tsr_error_t err;
        if (tsr_httpd_create(&o, &h, &err) != TSR_OK ||
            tsr_httpd_route(h, "POST", "/api/v1/things/{id}", h_json, NULL, &err) != TSR_OK ||
            tsr_httpd_route(h, "PATCH", "/api/v1/things/{id}/x", h_json, NULL, &err) != TSR_OK) {
            abort();
        }
    }
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *lines[34];
    size_t n = 0;
    char *p = buf;
    while (n < 34) {
        char *nl = memchr(p, '\n', (size_t)(buf + size - p));
        if (nl == NULL) {
            break;
        }
        *nl = '\0';
        lines[n++] = p;
        p = nl + 1;
    }
    const char *method = n > 0 ? lines[0] : "GET";
    const char *path = n > 1 ? lines[1] : "/";
    const char *headers[66];
    size_t nh = 0;
    for (size_t i = 2; i < n && nh < 64; i++) {
        char *colon = strchr(lines[i], ':');
        if (colon == NULL) {
            continue;
        }
        *colon = '\0';
        headers[nh++] = lines[i];
        headers[nh++] = colon + 1 + (colon[1] == ' ');
    }
    headers[nh] = NULL;
    tsr_httpd_response_t r;
    tsr_httpd_inject(server(), method, path, headers, p, (size_t)(buf + size - p), &r);
    if (r.status < 200 || r.status > 599) {
        abort();
    }
    if (r.status >= 400) {
        json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
        if (j == NULL || json_array_size(json_object_get(j, "errors")) != 1) {
            abort();
        }
        json_decref(j);
    }
    tsr_httpd_response_cleanup(&r);
    free(buf);
    return 0;
}
