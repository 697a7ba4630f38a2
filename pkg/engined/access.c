/*
 * Access decisions from spaces: GET /internal/v1/access?resource=app:<id> with the ingress's
 * principal headers, over libcurl. 404 is "no such app in your tenant" (close 4204), an
 * empty action list is "no permission" (4203). Anything else is TSR_EUNAVAILABLE: the engine
 * refuses rather than guesses.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "engined_int.h"

#define RESP_MAX (64 * 1024) /* bytes of a decision */

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

static unsigned action_bit(const char *a) {
    if (strcmp(a, "read") == 0) {
        return TSR_ENGINED_READ;
    }
    if (strcmp(a, "edit") == 0) {
        return TSR_ENGINED_EDIT;
    }
    if (strcmp(a, "reload") == 0) {
        return TSR_ENGINED_RELOAD;
    }
    return 0;
}

static tsr_err_t spaces_decide(void *ud, const tsr_engined_principal_t *who, const char *app_id,
                               unsigned *actions, tsr_error_t *err) {
    const char *base = ud;
    tsr_err_t rc = TSR_OK;
    tsr_buf_t body;
    long status = 0;
    struct curl_slist *hdrs = NULL;
    *actions = 0;
    pthread_once(&curl_once, curl_init);
    CURL *c = curl_easy_init();
    if (c == NULL) {
        return tsr_error_set(err, TSR_EUNAVAILABLE, "access: curl init failed");
    }
    tsr_buf_init(&body, RESP_MAX);
    char *esc = curl_easy_escape(c, app_id, 0);
    char url[1024];
    snprintf(url, sizeof url, "%s/internal/v1/access?resource=app:%s", base,
             esc != NULL ? esc : "");
    curl_free(esc);
    hdrs = add_header(hdrs, "X-Tsr-Tenant-Id", who->tenant_id);
    hdrs = add_header(hdrs, "X-Tsr-User-Id", who->user_id);
    hdrs = add_header(hdrs, "X-Tsr-Roles", who->roles);
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
    if (status == 404 || status == 400) {
        /* 400: an id spaces would never issue, which is a missing app as well. */
        rc = tsr_error_set(err, TSR_ENOTFOUND, "app not found");
        goto out;
    }
    if (status != 200) {
        rc = tsr_error_set(err, TSR_EUNAVAILABLE, "access: spaces answered %ld", status);
        goto out;
    }
    json_t *doc = json_loadb(body.data != NULL ? body.data : "", body.len, 0, NULL);
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(doc, "actions"), i, a) {
        if (json_is_string(a)) {
            *actions |= action_bit(json_string_value(a));
        }
    }
    json_decref(doc);
out:
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    tsr_buf_cleanup(&body);
    return rc;
}

static void spaces_close(void *ud) {
    free(ud);
}

tsr_err_t tsr_engined_access_spaces_open(const char *base_url, tsr_engined_access_t *out,
                                         tsr_error_t *err) {
    if (base_url == NULL || strncmp(base_url, "http", 4) != 0) {
        return tsr_error_set(err, TSR_EINVAL, "TSR_ENGINE_SPACES_URL: an http(s) URL is required");
    }
    size_t n = strlen(base_url);
    while (n > 0 && base_url[n - 1] == '/') {
        n--;
    }
    *out = (tsr_engined_access_t){
        .ud = tsr_xstrndup(base_url, n), .decide = spaces_decide, .close = spaces_close};
    return TSR_OK;
}
