/*
 * pkg/auth's HTTP client: one libcurl easy handle per call (JWKS fetches and service-token
 * requests are rare: once a minute, once per token lifetime), bounded in time and size.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "auth_int.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void) {
    (void)curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    size_t len = size * n;
    return tsr_buf_append(ud, p, len) == TSR_OK ? len : 0;
}

tsr_err_t tsr_auth__http(const char *method, const char *url, const char *const *headers,
                         const char *body, uint32_t timeout_ms, long *status, tsr_buf_t *out,
                         tsr_error_t *err) {
    *status = 0;
    pthread_once(&curl_once, curl_init);
    CURL *c = curl_easy_init();
    if (c == NULL) {
        return tsr_error_set(err, TSR_EUNAVAILABLE, "curl init failed");
    }
    struct curl_slist *hdrs = NULL;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
        struct curl_slist *n = curl_slist_append(hdrs, headers[i]);
        hdrs = n != NULL ? n : hdrs;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body != NULL ? body : "");
    }
    CURLcode cc = curl_easy_perform(c);
    tsr_err_t rc = TSR_OK;
    if (cc == CURLE_WRITE_ERROR) {
        rc = tsr_error_set(err, TSR_ETOOBIG, "%s: the answer is too large", url);
    } else if (cc != CURLE_OK) {
        rc = tsr_error_set(err, TSR_EUNAVAILABLE, "%s: %s", url, curl_easy_strerror(cc));
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return rc;
}

bool tsr_auth__id_ok(const char *s) {
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > TSR_AUTH_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == ':' || ch == '@' || ch == '-')) {
            return false;
        }
    }
    return true;
}
