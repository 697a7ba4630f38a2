/*
 * The spaces access client (see spaces_client.h) over libcurl: one easy handle per call, a
 * 5 s timeout, the answer capped at 64 KiB.
 */
#include "spaces_client.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#define RESP_MAX (64 * 1024)

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void) {
    (void)curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    tsr_buf_t *b = ud;
    size_t len = size * n;
    return tsr_buf_append(b, p, len) == TSR_OK ? len : 0;
}

static struct curl_slist *add_header(struct curl_slist *h, const char *name, const char *v) {
    char line[2048];
    if (v == NULL || v[0] == '\0' || strlen(v) > sizeof line - 64) {
        return h;
    }
    snprintf(line, sizeof line, "%s: %s", name, v);
    struct curl_slist *n = curl_slist_append(h, line);
    return n != NULL ? n : h;
}

tsr_err_t tsr_spaces_client_actions(const char *base_url, const char *resource,
                                    const tsr_spaces_client_principal_t *who, json_t **actions,
                                    tsr_error_t *err) {
    return tsr_spaces_client_actions_timeout(base_url, resource, who, 5000, actions, err);
}

tsr_err_t tsr_spaces_client_actions_timeout(const char *base_url, const char *resource,
                                            const tsr_spaces_client_principal_t *who,
                                            long timeout_ms, json_t **actions, tsr_error_t *err) {
    *actions = NULL;
    if (timeout_ms <= 0 || timeout_ms > 600000) {
        timeout_ms = 5000;
    }
    if (base_url == NULL || resource == NULL || strlen(base_url) > 512 || strlen(resource) > 256) {
        return tsr_error_set(err, TSR_EINVAL, "access: a base URL and a resource are required");
    }
    pthread_once(&curl_once, curl_init);
    CURL *c = curl_easy_init();
    if (c == NULL) {
        return tsr_error_set(err, TSR_EUNAVAILABLE, "access: curl init failed");
    }
    tsr_err_t rc = TSR_OK;
    long status = 0;
    struct curl_slist *hdrs = NULL;
    tsr_buf_t body;
    tsr_buf_init(&body, RESP_MAX);
    size_t blen = strlen(base_url);
    while (blen > 0 && base_url[blen - 1] == '/') {
        blen--;
    }
    char *esc = curl_easy_escape(c, resource, 0);
    char url[1024];
    snprintf(url, sizeof url, "%.*s/internal/v1/access?resource=%s", (int)blen, base_url,
             esc != NULL ? esc : "");
    curl_free(esc);
    hdrs = add_header(hdrs, "X-Tsr-Tenant-Id", who->tenant_id);
    hdrs = add_header(hdrs, "X-Tsr-User-Id", who->user_id);
    hdrs = add_header(hdrs, "X-Tsr-Roles", who->roles);
    hdrs = add_header(hdrs, "X-Tsr-Token", who->token);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 2000 ? timeout_ms : 2000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        rc = tsr_error_set(err, TSR_EUNAVAILABLE, "access: spaces unreachable: %s",
                           curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status == 404) {
        rc = tsr_error_set(err, TSR_ENOTFOUND, "%s not found", resource);
        goto out;
    }
    if (status == 400) {
        rc = tsr_error_set(err, TSR_EINVAL, "access: spaces refused the question about %s",
                           resource);
        goto out;
    }
    if (status != 200) {
        rc = tsr_error_set(err, TSR_EUNAVAILABLE, "access: spaces answered %ld", status);
        goto out;
    }
    json_t *doc = json_loadb(body.data != NULL ? body.data : "", body.len, 0, NULL);
    json_t *acts = json_object_get(doc, "actions");
    if (!json_is_array(acts)) {
        json_decref(doc);
        rc = tsr_error_set(err, TSR_EUNAVAILABLE, "access: spaces' answer has no actions");
        goto out;
    }
    *actions = json_incref(acts);
    json_decref(doc);
out:
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    tsr_buf_cleanup(&body);
    return rc;
}

#define CALL_RESP_MAX (1024 * 1024)

tsr_err_t tsr_spaces_client_call(const char *base_url, const char *method, const char *path,
                                 const tsr_spaces_client_principal_t *who, const json_t *body,
                                 long *status, json_t **resp, tsr_error_t *err) {
    return tsr_spaces_client_call_typed(base_url, method, path, who, NULL, body, status, resp, err);
}

tsr_err_t tsr_spaces_client_call_typed(const char *base_url, const char *method, const char *path,
                                       const tsr_spaces_client_principal_t *who,
                                       const char *auth_type, const json_t *body, long *status,
                                       json_t **resp, tsr_error_t *err) {
    *status = 0;
    if (resp != NULL) {
        *resp = NULL;
    }
    if (base_url == NULL || method == NULL || path == NULL || path[0] != '/' ||
        strlen(base_url) > 512 || strlen(path) > 1024) {
        return tsr_error_set(err, TSR_EINVAL, "spaces call: a base URL and a path are required");
    }
    pthread_once(&curl_once, curl_init);
    CURL *c = curl_easy_init();
    if (c == NULL) {
        return tsr_error_set(err, TSR_EUNAVAILABLE, "spaces call: curl init failed");
    }
    tsr_err_t rc = TSR_OK;
    struct curl_slist *hdrs = NULL;
    tsr_buf_t out;
    tsr_buf_init(&out, CALL_RESP_MAX);
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    size_t blen = strlen(base_url);
    while (blen > 0 && base_url[blen - 1] == '/') {
        blen--;
    }
    char url[1600];
    snprintf(url, sizeof url, "%.*s%s", (int)blen, base_url, path);
    hdrs = add_header(hdrs, "X-Tsr-Tenant-Id", who->tenant_id);
    hdrs = add_header(hdrs, "X-Tsr-User-Id", who->user_id);
    hdrs = add_header(hdrs, "X-Tsr-Roles", who->roles);
    hdrs = add_header(hdrs, "X-Tsr-Token", who->token);
    hdrs = add_header(hdrs, "X-Tsr-Auth-Type", auth_type);
    if (text != NULL) {
        hdrs = add_header(hdrs, "Content-Type", "application/json");
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (text != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
    } else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        rc = tsr_error_set(err, TSR_EUNAVAILABLE, "spaces call %s %s: %s", method, path,
                           curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    if (resp != NULL && out.len > 0) {
        *resp = json_loadb(out.data, out.len, 0, NULL);
    }
out:
    free(text);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    tsr_buf_cleanup(&out);
    return rc;
}
