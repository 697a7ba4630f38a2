/*
 * pkg/auth service tokens: a service that calls another on its own account (the engine
 * reloader fetching data files, the engine asking spaces for an access decision during a long
 * QIX session) asks identity for a platform JWT naming (tenant, user, roles), authenticated by
 * the platform token from TSR_AUTH_SERVICE_TOKEN_FILE, and keeps it until a minute before it
 * expires. The callee verifies it like any other platform token.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth_int.h"
#include "config.h"

#define CACHE_MAX 10000          /* (tenant, user, roles) entries kept */
#define REFRESH_BEFORE_MS 60000  /* a token this close to expiry is replaced */
#define TOKEN_FILE_MAX 1024      /* bytes of the platform token file */
#define ANSWER_MAX (64u * 1024u) /* bytes of identity's answer */

struct tsr_auth_tokens {
    char *url;
    char *authz; /* "Authorization: Bearer tsrp_..." */
    pthread_mutex_t mu;
    json_t *cache; /* key → {"t": token, "x": mono ms after which it is replaced} */
};

tsr_err_t tsr_auth_tokens_create(const char *url, const char *platform_token,
                                 tsr_auth_tokens_t **out, tsr_error_t *err) {
    *out = NULL;
    if (url == NULL || strlen(url) > 1024 ||
        (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)) {
        return tsr_error_set(err, TSR_EINVAL, "the service-token URL must be an http(s) URL");
    }
    size_t n = platform_token != NULL ? strlen(platform_token) : 0;
    if (n == 0 || n > TOKEN_FILE_MAX || strpbrk(platform_token, "\r\n ") != NULL) {
        return tsr_error_set(err, TSR_EINVAL, "the platform token is empty or malformed");
    }
    tsr_auth_tokens_t *t = tsr_xcalloc(1, sizeof *t);
    t->url = tsr_xstrdup(url);
    tsr_buf_t b;
    tsr_buf_init(&b, 0);
    (void)tsr_buf_appendf(&b, "Authorization: Bearer %s", platform_token);
    t->authz = tsr_buf_take(&b, NULL);
    pthread_mutex_init(&t->mu, NULL);
    t->cache = json_object();
    *out = t;
    return TSR_OK;
}

void tsr_auth_tokens_destroy(tsr_auth_tokens_t *t) {
    if (t == NULL) {
        return;
    }
    json_decref(t->cache);
    pthread_mutex_destroy(&t->mu);
    free(t->url);
    if (t->authz != NULL) {
        memset(t->authz, 0, strlen(t->authz));
    }
    free(t->authz);
    free(t);
}

/* The first line of path (at most TOKEN_FILE_MAX bytes) into out. */
static tsr_err_t read_token_file(const char *path, char *out, size_t n, tsr_error_t *err) {
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        return tsr_error_set(err, TSR_EIO, "TSR_AUTH_SERVICE_TOKEN_FILE %s: %s", path,
                             strerror(errno));
    }
    size_t got = fread(out, 1, n - 1, f);
    fclose(f);
    out[got] = '\0';
    out[strcspn(out, "\r\n")] = '\0';
    if (out[0] == '\0') {
        return tsr_error_set(err, TSR_EINVAL, "TSR_AUTH_SERVICE_TOKEN_FILE %s is empty", path);
    }
    return TSR_OK;
}

tsr_err_t tsr_auth_tokens_create_from_config(tsr_auth_tokens_t **out, tsr_error_t *err) {
    char tok[TOKEN_FILE_MAX + 1], url[1200];
    *out = NULL;
    const char *file = tsr_config_get("TSR_AUTH_SERVICE_TOKEN_FILE");
    const char *jwks = tsr_config_get("TSR_AUTH_JWKS_URL");
    if (file[0] == '\0' && jwks[0] == '\0') {
        return TSR_OK;
    }
    if (file[0] == '\0' || jwks[0] == '\0') {
        return tsr_error_set(err, TSR_EINVAL,
                             "TSR_AUTH_SERVICE_TOKEN_FILE and TSR_AUTH_JWKS_URL go together: "
                             "service calls need a token that the callee verifies");
    }
    /* identity's origin: scheme://host[:port] of the JWKS URL. */
    const char *host = strstr(jwks, "://");
    size_t origin = host != NULL ? (size_t)(host + 3 - jwks) + strcspn(host + 3, "/?#") : 0;
    if (origin == 0 || origin > 1024) {
        return tsr_error_set(err, TSR_EINVAL, "TSR_AUTH_JWKS_URL: an http(s) URL is required");
    }
    snprintf(url, sizeof url, "%.*s/internal/v1/service-tokens", (int)origin, jwks);
    tsr_err_t rc = read_token_file(file, tok, sizeof tok, err);
    if (rc == TSR_OK) {
        rc = tsr_auth_tokens_create(url, tok, out, err);
    }
    memset(tok, 0, sizeof tok);
    return rc;
}

/* Ask identity for a token; *jwt and *ttl_s (its lifetime) on success. */
/* A comma-separated list as a JSON array of at most max strings. */
static json_t *csv_array(const char *csv, size_t max) {
    json_t *a = json_array();
    tsr_str_t s = tsr_str(csv), tok;
    while (tsr_str_next_tok(&s, ',', &tok)) {
        tsr_str_t r = tsr_str_trim(tok);
        if (r.n > 0 && json_array_size(a) < max) {
            json_array_append_new(a, json_stringn(r.p, r.n));
        }
    }
    return a;
}

static tsr_err_t request(tsr_auth_tokens_t *t, const char *tenant, const char *user,
                         const char *roles, const char *groups, char **jwt, int64_t *ttl_s,
                         tsr_error_t *err) {
    json_t *body = json_pack("{ss ss so so}", "tenantId", tenant, "userId", user, "roles",
                             csv_array(roles, TSR_AUTH_ROLES_MAX), "groups",
                             csv_array(groups, TSR_AUTH_GROUPS_MAX));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    const char *const hdrs[] = {t->authz, "Content-Type: application/json",
                                "Accept: application/json", NULL};
    tsr_buf_t b;
    long status = 0;
    tsr_buf_init(&b, ANSWER_MAX);
    tsr_err_t rc = tsr_auth__http("POST", t->url, hdrs, text, 5000, &status, &b, err);
    free(text);
    if (rc == TSR_OK && status != 200) {
        tsr_err_t code = status == 401   ? TSR_EUNAUTHENTICATED
                         : status == 400 ? TSR_EINVAL
                         : status == 404 ? TSR_ENOTFOUND
                                         : TSR_EUNAVAILABLE;
        rc = tsr_error_set(err, code, "identity refused a service token (%ld)", status);
    }
    if (rc == TSR_OK) {
        json_t *doc = json_loadb(b.data != NULL ? b.data : "", b.len, 0, NULL);
        const char *jt = json_string_value(json_object_get(doc, "token"));
        json_t *exp = json_object_get(doc, "expiresIn");
        if (jt == NULL || !json_is_integer(exp) || json_integer_value(exp) <= 0) {
            rc = tsr_error_set(err, TSR_EUNAVAILABLE,
                               "identity's service token answer is "
                               "malformed");
        } else {
            *jwt = tsr_xstrdup(jt);
            *ttl_s = (int64_t)json_integer_value(exp);
        }
        json_decref(doc);
    }
    tsr_buf_cleanup(&b);
    return rc;
}

tsr_err_t tsr_auth_tokens_get(tsr_auth_tokens_t *t, const char *tenant, const char *user,
                              const char *roles, const char *groups, char **jwt, tsr_error_t *err) {
    *jwt = NULL;
    roles = roles != NULL ? roles : "";
    groups = groups != NULL ? groups : "";
    if (!tsr_auth__id_ok(tenant) || !tsr_auth__id_ok(user) || strlen(roles) > 1024 ||
        strlen(groups) > TSR_AUTH_GROUPS_MAX * (TSR_AUTH_ID_MAX + 1)) {
        return tsr_error_set(err, TSR_EINVAL, "a service token needs a tenant and a user id");
    }
    tsr_buf_t key;
    tsr_buf_init(&key, 0);
    (void)tsr_buf_appendf(&key, "%s\n%s\n%s\n%s", tenant, user, roles, groups);
    uint64_t now = tsr_mono_ms();
    pthread_mutex_lock(&t->mu);
    json_t *e = json_object_get(t->cache, key.data);
    if (e != NULL && (uint64_t)json_integer_value(json_object_get(e, "x")) > now) {
        *jwt = tsr_xstrdup(json_string_value(json_object_get(e, "t")));
    }
    pthread_mutex_unlock(&t->mu);
    tsr_err_t rc = TSR_OK;
    if (*jwt == NULL) {
        int64_t ttl_s = 0;
        rc = request(t, tenant, user, roles, groups, jwt, &ttl_s, err);
        if (rc == TSR_OK) {
            int64_t keep_ms = ttl_s * 1000 - REFRESH_BEFORE_MS;
            keep_ms = keep_ms > 0 ? keep_ms : ttl_s * 500; /* short TTLs: half the lifetime */
            pthread_mutex_lock(&t->mu);
            if (json_object_size(t->cache) >= CACHE_MAX) {
                json_object_clear(t->cache);
            }
            json_object_set_new(
                t->cache, key.data,
                json_pack("{ss sI}", "t", *jwt, "x", (json_int_t)(now + (uint64_t)keep_ms)));
            pthread_mutex_unlock(&t->mu);
        }
    }
    tsr_buf_cleanup(&key);
    return rc;
}

tsr_err_t tsr_auth_tokens_cb(void *ud, const char *tenant, const char *user, const char *roles,
                             const char *groups, char **jwt, tsr_error_t *err) {
    return tsr_auth_tokens_get(ud, tenant, user, roles, groups, jwt, err);
}
