/*
 * pkg/reload access: asks spaces whether the caller may reload an app, over spaces' internal
 * endpoint GET /internal/v1/access?resource=app:<id> with the ingress's principal headers
 * forwarded (libcurl, 5 s timeout, response capped at 64 KiB). 404 → not found; an empty
 * "actions" set or one without "reload" → forbidden; anything else → unavailable (fail closed).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "reload_int.h"

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

tsr_err_t tsr_reload_access_spaces(void *base_url, const tsr_reload_caller_t *who,
                                   const char *app_id, tsr_error_t *err) {
    tsr_err_t rc = TSR_OK;
    tsr_buf_t body;
    long status = 0;
    struct curl_slist *hdrs = NULL;
    pthread_once(&curl_once, curl_init);
    CURL *c = curl_easy_init();
    if (c == NULL) {
        return tsr_error_set(err, TSR_EUNAVAILABLE, "access: curl init failed");
    }
    tsr_buf_init(&body, RESP_MAX);
    char *esc = curl_easy_escape(c, app_id, 0);
    char url[1024];
    snprintf(url, sizeof url, "%s/internal/v1/access?resource=app:%s", (const char *)base_url,
             esc != NULL ? esc : "");
    curl_free(esc);
    hdrs = add_header(hdrs, "X-Tsr-Tenant-Id", who->tenant);
    hdrs = add_header(hdrs, "X-Tsr-User-Id", who->user);
    hdrs = add_header(hdrs, "X-Tsr-Roles", who->roles);
    hdrs = add_header(hdrs, "X-Tsr-Token", who->token);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
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
        rc = tsr_error_set(err, TSR_ENOTFOUND, "app %s not found", app_id);
        goto out;
    }
    if (status != 200) {
        rc = tsr_error_set(err, TSR_EUNAVAILABLE, "access: spaces answered %ld", status);
        goto out;
    }
    json_t *doc = json_loadb(body.data != NULL ? body.data : "", body.len, 0, NULL);
    json_t *acts = json_object_get(doc, "actions");
    bool any = json_array_size(acts) > 0, reload = false;
    size_t i;
    json_t *a;
    json_array_foreach(acts, i, a) {
        reload = reload || (json_is_string(a) && strcmp(json_string_value(a), "reload") == 0);
    }
    json_decref(doc);
    if (!reload) {
        /* Seeing nothing of the app is the same as its absence. */
        rc = any ? tsr_error_set(err, TSR_EFORBIDDEN, "no reload permission on app %s", app_id)
                 : tsr_error_set(err, TSR_ENOTFOUND, "app %s not found", app_id);
    }
out:
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    tsr_buf_cleanup(&body);
    return rc;
}
