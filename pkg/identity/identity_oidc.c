/*
 * pkg/identity OIDC relying party: per-tenant identity-provider configurations (Qlik's
 * /api/v1/identity-providers shape; the client secret sealed under the tenant's DEK and never
 * returned), discovery and JWKS documents fetched over libcurl (size-capped, cached briefly,
 * the JWKS refreshed when a token does not verify against it), the authorization-code flow
 * with PKCE (S256), state and nonce (single use, short expiry, the state also bound to the
 * browser by a cookie), ID-token verification through pkg/crypto, and just-in-time users.
 * Layer: service. Invariants: nothing is written for a sign-in until the ID token verified
 * (except consuming the state); the provider's endpoints must be https unless loopback.
 */
#include <curl/curl.h>
#include <string.h>

#include "identity_int.h"

#define SECRET_KIND "idp-client-secret"
#define CACHE_MAX 32
#define CACHE_TTL_MS (5LL * 60 * 1000)
#define JWKS_REFRESH_MIN_MS 10000LL
#define HTTP_TIMEOUT_MS 5000L
#define MAX_URL 2048
#define MAX_CLIENT_ID 256
#define MAX_CLIENT_SECRET 1024
#define MAX_SCOPE 512
#define MAX_POINTERS 8
#define MAX_POINTER 128
#define MAX_CLOCK_TOLERANCE 600

/* ---- HTTP over libcurl ---------------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void) {
    (void)curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    size_t len = size * n;
    return tsr_buf_append(ud, p, len) == TSR_OK ? len : 0;
}

bool tsr_identity__oidc_url_ok(const char *url) {
    if (url == NULL || strlen(url) > MAX_URL || strpbrk(url, " \t\r\n#") != NULL) {
        return false;
    }
    if (strncmp(url, "https://", 8) == 0) {
        return url[8] != '\0' && url[8] != '/';
    }
    /* Plain http only to this machine (tests, a provider beside the service). */
    static const char *const loop[] = {"http://127.0.0.1", "http://localhost", "http://[::1]"};
    for (size_t i = 0; i < sizeof loop / sizeof loop[0]; i++) {
        size_t n = strlen(loop[i]);
        if (strncmp(url, loop[i], n) == 0 && (url[n] == ':' || url[n] == '/' || url[n] == '\0')) {
            return true;
        }
    }
    return false;
}

/* GET (form NULL) or POST form to url; the body (<= cap bytes) into *out (returned-owned),
 * the status into *status. user/pass: HTTP Basic when non-NULL. */
static tsr_err_t http_call(const char *url, const char *form, const char *user, const char *pass,
                           const char *bearer, size_t cap, char **out, size_t *out_len,
                           long *status, tsr_error_t *err) {
    tsr_buf_t body;
    struct curl_slist *hdrs = NULL;
    tsr_err_t rc = TSR_OK;
    *out = NULL;
    *status = 0;
    pthread_once(&curl_once, curl_init);
    CURL *c = curl_easy_init();
    if (c == NULL) {
        return tsr_error_set(err, TSR_EUNAVAILABLE, "oidc: curl init failed");
    }
    tsr_buf_init(&body, cap);
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (bearer != NULL) {
        tsr_buf_t a;
        tsr_buf_init(&a, 8192);
        tsr_buf_appendf(&a, "Authorization: Bearer %s", bearer);
        hdrs = curl_slist_append(hdrs, a.data != NULL ? a.data : "");
        if (a.data != NULL) {
            tsr_crypto_cleanse(a.data, a.len);
        }
        tsr_buf_cleanup(&a);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, HTTP_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)cap);
    if (form != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
    }
    if (user != NULL) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, pass);
    }
    CURLcode cc = curl_easy_perform(c);
    if (cc == CURLE_WRITE_ERROR || cc == CURLE_FILESIZE_EXCEEDED) {
        rc =
            tsr_error_set(err, TSR_EUNAVAILABLE, "oidc: %s answered more than %zu bytes", url, cap);
    } else if (cc != CURLE_OK) {
        rc = tsr_error_set(err, TSR_EUNAVAILABLE, "oidc: %s unreachable: %s", url,
                           curl_easy_strerror(cc));
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        *out = tsr_buf_take(&body, out_len);
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    tsr_buf_cleanup(&body);
    return rc;
}

/* ---- document cache (discovery, JWKS) ---------------------------------------------------- */

typedef struct cache_entry {
    struct cache_entry *next;
    char *url;
    char *body;
    size_t len;
    int64_t fetched_ms;
    int64_t refreshed_ms; /* last fetch forced by a token that did not verify; 0: none */
} cache_entry_t;

struct tsr_id__oidc_cache {
    pthread_mutex_t mu;
    cache_entry_t *head;
    size_t n;
};

static struct tsr_id__oidc_cache *cache_of(tsr_identity_t *id) {
    pthread_mutex_lock(&id->key_mu);
    if (id->oidc_cache == NULL) {
        id->oidc_cache = tsr_xcalloc(1, sizeof *id->oidc_cache);
        pthread_mutex_init(&id->oidc_cache->mu, NULL);
    }
    struct tsr_id__oidc_cache *c = id->oidc_cache;
    pthread_mutex_unlock(&id->key_mu);
    return c;
}

void tsr_identity__oidc_cleanup(tsr_identity_t *id) {
    struct tsr_id__oidc_cache *c = id->oidc_cache;
    if (c == NULL) {
        return;
    }
    for (cache_entry_t *e = c->head, *nx; e != NULL; e = nx) {
        nx = e->next;
        free(e->url);
        free(e->body);
        free(e);
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
    id->oidc_cache = NULL;
}

/* The document at url (a JSON object of <= cap bytes, status 200), from the cache when
 * younger than CACHE_TTL_MS; refresh (a token did not verify against it) fetches again unless
 * the last forced fetch is younger than JWKS_REFRESH_MIN_MS.
 * *out returned-owned. */
static tsr_err_t doc_get(tsr_identity_t *id, const char *url, size_t cap, bool refresh,
                         json_t **out, tsr_error_t *err) {
    struct tsr_id__oidc_cache *c = cache_of(id);
    int64_t now = tsr_wall_ms();
    char *body = NULL;
    size_t len = 0;
    *out = NULL;
    pthread_mutex_lock(&c->mu);
    for (cache_entry_t *e = c->head; e != NULL; e = e->next) {
        if (strcmp(e->url, url) == 0 && now - e->fetched_ms < CACHE_TTL_MS &&
            (!refresh || now - e->refreshed_ms < JWKS_REFRESH_MIN_MS)) {
            body = tsr_xstrdup(e->body);
            len = e->len;
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (body == NULL) {
        long status = 0;
        tsr_err_t rc = http_call(url, NULL, NULL, NULL, NULL, cap, &body, &len, &status, err);
        if (rc != TSR_OK) {
            return rc;
        }
        if (status != 200) {
            free(body);
            return tsr_error_set(err, TSR_EUNAVAILABLE, "oidc: %s answered HTTP %ld", url, status);
        }
        pthread_mutex_lock(&c->mu);
        cache_entry_t **pp = &c->head;
        while (*pp != NULL && strcmp((*pp)->url, url) != 0) {
            pp = &(*pp)->next;
        }
        if (*pp == NULL && c->n >= CACHE_MAX) {
            /* Full: drop the whole cache (rare; providers per deployment are few). */
            for (cache_entry_t *e = c->head, *nx; e != NULL; e = nx) {
                nx = e->next;
                free(e->url);
                free(e->body);
                free(e);
            }
            c->head = NULL;
            c->n = 0;
            pp = &c->head;
        }
        if (*pp == NULL) {
            *pp = tsr_xcalloc(1, sizeof **pp);
            (*pp)->url = tsr_xstrdup(url);
            c->n++;
        }
        free((*pp)->body);
        (*pp)->body = tsr_xstrdup(body);
        (*pp)->len = len;
        (*pp)->fetched_ms = now;
        if (refresh) {
            (*pp)->refreshed_ms = now;
        }
        pthread_mutex_unlock(&c->mu);
    }
    json_error_t je;
    *out = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    free(body);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return tsr_error_set(err, TSR_EUNAVAILABLE, "oidc: %s is not a JSON object", url);
    }
    return TSR_OK;
}

/* ---- discovery ---------------------------------------------------------------------------- */

void tsr_identity__oidc_disc_cleanup(tsr_id__oidc_disc_t *d) {
    free(d->issuer);
    free(d->authorization_endpoint);
    free(d->token_endpoint);
    free(d->jwks_uri);
    free(d->userinfo_endpoint);
    memset(d, 0, sizeof *d);
}

static const char WELL_KNOWN[] = "/.well-known/openid-configuration";

tsr_err_t tsr_identity__oidc_discovery_parse(const char *body, size_t n, const char *discovery_url,
                                             tsr_id__oidc_disc_t *out, tsr_error_t *err) {
    memset(out, 0, sizeof *out);
    if (n > TSR_ID__OIDC_DOC_MAX) {
        return tsr_error_set(err, TSR_ETOOBIG, "oidc: the discovery document exceeds %d bytes",
                             TSR_ID__OIDC_DOC_MAX);
    }
    json_t *d = json_loadb(body, n, JSON_REJECT_DUPLICATES, NULL);
    tsr_err_t rc = TSR_OK;
    if (!json_is_object(d)) {
        rc = tsr_error_set(err, TSR_EINVAL, "oidc: the discovery document is not a JSON object");
        goto out;
    }
    static const char *const names[] = {"issuer", "authorization_endpoint", "token_endpoint",
                                        "jwks_uri"};
    char **slots[] = {&out->issuer, &out->authorization_endpoint, &out->token_endpoint,
                      &out->jwks_uri};
    for (size_t i = 0; i < 4; i++) {
        const char *v = json_string_value(json_object_get(d, names[i]));
        if (!tsr_identity__oidc_url_ok(v)) {
            rc = tsr_error_set(err, TSR_EINVAL,
                               "oidc: discovery %s is missing or not an https URL (http only "
                               "on loopback)",
                               names[i]);
            goto out;
        }
        *slots[i] = tsr_xstrdup(v);
    }
    /* OpenID Connect Discovery §4.3: the issuer is the URL the document was fetched under. */
    size_t il = strlen(out->issuer);
    while (il > 0 && out->issuer[il - 1] == '/') {
        il--;
    }
    if (discovery_url != NULL && (strncmp(discovery_url, out->issuer, il) != 0 ||
                                  strcmp(discovery_url + il, WELL_KNOWN) != 0)) {
        rc = tsr_error_set(err, TSR_EINVAL,
                           "oidc: discovery issuer %.200s does not match the discovery URL",
                           out->issuer);
        goto out;
    }
    const char *ui = json_string_value(json_object_get(d, "userinfo_endpoint"));
    if (ui != NULL) {
        if (!tsr_identity__oidc_url_ok(ui)) {
            rc = tsr_error_set(err, TSR_EINVAL,
                               "oidc: discovery userinfo_endpoint is not an https URL");
            goto out;
        }
        out->userinfo_endpoint = tsr_xstrdup(ui);
    }
    json_t *rts = json_object_get(d, "response_types_supported");
    if (rts != NULL) {
        bool code = false;
        size_t i;
        json_t *v;
        json_array_foreach(rts, i, v) {
            code = code || (json_is_string(v) && strcmp(json_string_value(v), "code") == 0);
        }
        if (!code) {
            rc = tsr_error_set(err, TSR_EINVAL, "oidc: the provider does not support code");
        }
    }
out:
    json_decref(d);
    if (rc != TSR_OK) {
        tsr_identity__oidc_disc_cleanup(out);
    }
    return rc;
}

static tsr_err_t discovery_get(tsr_identity_t *id, const char *url, tsr_id__oidc_disc_t *out,
                               tsr_error_t *err) {
    json_t *d = NULL;
    memset(out, 0, sizeof *out);
    tsr_err_t rc = doc_get(id, url, TSR_ID__OIDC_DOC_MAX, false, &d, err);
    if (rc == TSR_OK) {
        char *s = json_dumps(d, JSON_COMPACT);
        rc = tsr_identity__oidc_discovery_parse(s, strlen(s), url, out, err);
        free(s);
    }
    json_decref(d);
    return rc;
}

/* ---- ID tokens ---------------------------------------------------------------------------- */

tsr_err_t tsr_identity__oidc_id_token_verify(const tsr_jwt_keyset_t *ks, const char *tok,
                                             const char *issuer, const char *client_id,
                                             const char *nonce, uint32_t skew_s, int64_t now_s,
                                             json_t **claims, tsr_error_t *err) {
    tsr_jwt_verify_opts_t vo = {.issuer = issuer,
                                .audience = client_id,
                                .now_s = now_s,
                                .skew_s = skew_s,
                                .algs = TSR_JWT_ALG_ES256 | TSR_JWT_ALG_RS256,
                                .require_exp = true};
    *claims = NULL;
    if (tok == NULL) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "oidc: the token response has no id_token");
    }
    json_t *c = NULL;
    tsr_err_t rc = tsr_crypto_jwt_verify(ks, tok, strlen(tok), &vo, &c, err);
    if (rc != TSR_OK) {
        return rc == TSR_ETOOBIG
                   ? tsr_error_set(err, TSR_EUNAUTHENTICATED, "oidc: the ID token is too large")
                   : rc;
    }
    const char *n = json_string_value(json_object_get(c, "nonce"));
    const char *azp = json_string_value(json_object_get(c, "azp"));
    json_t *aud = json_object_get(c, "aud");
    if (!json_is_integer(json_object_get(c, "iat"))) {
        rc = tsr_error_set(err, TSR_EUNAUTHENTICATED, "oidc: the ID token has no iat");
    } else if (!json_is_string(json_object_get(c, "sub"))) {
        rc = tsr_error_set(err, TSR_EUNAUTHENTICATED, "oidc: the ID token has no sub");
    } else if (nonce == NULL || n == NULL || strlen(n) != strlen(nonce) ||
               !tsr_identity__ct_eq(n, nonce)) {
        rc = tsr_error_set(err, TSR_EUNAUTHENTICATED, "oidc: the ID token's nonce does not match");
    } else if ((azp != NULL && strcmp(azp, client_id) != 0) ||
               (json_array_size(aud) > 1 && azp == NULL)) {
        rc = tsr_error_set(err, TSR_EUNAUTHENTICATED, "oidc: the ID token's azp is not our client");
    }
    if (rc != TSR_OK) {
        json_decref(c);
        return rc;
    }
    *claims = c;
    return TSR_OK;
}

/* The value at an RFC 6901 pointer in doc (borrowed), NULL if absent. */
static json_t *pointer_get(json_t *doc, const char *ptr) {
    if (ptr[0] != '/') {
        return NULL;
    }
    json_t *cur = doc;
    const char *p = ptr + 1;
    for (;;) {
        char tok[MAX_POINTER + 1];
        size_t k = 0;
        for (; *p != '\0' && *p != '/' && k < MAX_POINTER; p++) {
            if (*p == '~' && (p[1] == '0' || p[1] == '1')) {
                tok[k++] = p[1] == '0' ? '~' : '/';
                p++;
            } else {
                tok[k++] = *p;
            }
        }
        tok[k] = '\0';
        if (json_is_object(cur)) {
            cur = json_object_get(cur, tok);
        } else if (json_is_array(cur)) {
            int64_t ix = 0;
            cur = tsr_str_to_i64(tsr_str(tok), 0, 1 << 20, &ix) == TSR_OK
                      ? json_array_get(cur, (size_t)ix)
                      : NULL;
        } else {
            return NULL;
        }
        if (cur == NULL || *p == '\0') {
            return cur;
        }
        p++;
    }
}

/* The first mapped string claim for name (mapping's pointers, else "/<name>"); borrowed. */
static const char *claim_str(json_t *claims, json_t *mapping, const char *name) {
    json_t *ptrs = json_object_get(mapping, name);
    size_t i;
    json_t *v;
    if (!json_is_array(ptrs)) {
        char def[64];
        snprintf(def, sizeof def, "/%s", name);
        return json_string_value(pointer_get(claims, def));
    }
    json_array_foreach(ptrs, i, v) {
        const char *s = json_string_value(pointer_get(claims, json_string_value(v)));
        if (s != NULL) {
            return s;
        }
    }
    return NULL;
}

/* The first mapped claim for name that exists (any JSON type); borrowed, NULL if none. */
static json_t *claim_json(json_t *claims, json_t *mapping, const char *name) {
    json_t *ptrs = json_object_get(mapping, name);
    size_t i;
    json_t *v;
    if (!json_is_array(ptrs)) {
        char def[64];
        snprintf(def, sizeof def, "/%s", name);
        return pointer_get(claims, def);
    }
    json_array_foreach(ptrs, i, v) {
        json_t *c = pointer_get(claims, json_string_value(v));
        if (c != NULL) {
            return c;
        }
    }
    return NULL;
}

/* ---- identity-provider configurations ------------------------------------------------------ */

static const char *const MAPPED_CLAIMS[] = {
    "sub",     "name",   "email",    "groups",    "email_verified",
    "picture", "locale", "zoneinfo", "client_id", NULL};

static tsr_err_t mapping_check(json_t *m, tsr_error_t *err) {
    const char *k;
    json_t *v;
    if (!json_is_object(m)) {
        return tsr_error_set(err, TSR_EINVAL, "options.claimsMapping must be an object");
    }
    json_object_foreach(m, k, v) {
        bool known = false;
        for (size_t i = 0; MAPPED_CLAIMS[i] != NULL; i++) {
            known = known || strcmp(MAPPED_CLAIMS[i], k) == 0;
        }
        if (!known || !json_is_array(v) || json_array_size(v) == 0 ||
            json_array_size(v) > MAX_POINTERS) {
            return tsr_error_set(err, TSR_EINVAL,
                                 "options.claimsMapping.%.64s: a known claim with 1..%d JSON "
                                 "pointers",
                                 k, MAX_POINTERS);
        }
        size_t i;
        json_t *p;
        json_array_foreach(v, i, p) {
            const char *s = json_string_value(p);
            if (s == NULL || s[0] != '/' || strlen(s) > MAX_POINTER) {
                return tsr_error_set(err, TSR_EINVAL,
                                     "options.claimsMapping.%.64s[%zu] must be a JSON pointer "
                                     "(\"/claim\", <= %d bytes)",
                                     k, i, MAX_POINTER);
            }
        }
    }
    return TSR_OK;
}

static tsr_err_t str_field(json_t *obj, const char *name, size_t max, bool required,
                           const char **out, tsr_error_t *err) {
    return tsr_identity__check_str(json_object_get(obj, name), name, max, required, out, err);
}

/* Validate a create body (or a patched view) into a stored document (without the secret,
 * which *secret names, borrowed from body, NULL when absent). */
static tsr_err_t idp_validate(json_t *body, bool need_secret, json_t **doc, const char **secret,
                              tsr_error_t *err) {
    static const char *const top[] = {"protocol",    "provider",
                                      "interactive", "description",
                                      "tenantIds",   "createNewUsersOnLogin",
                                      "active",      "clockToleranceSec",
                                      "options",     "id",
                                      "createdAt",   "lastUpdatedAt",
                                      "links",       NULL};
    static const char *const opt[] = {"discoveryUrl",
                                      "clientId",
                                      "clientSecret",
                                      "scope",
                                      "claimsMapping",
                                      "tokenEndpointAuthMethod",
                                      NULL};
    const char *k, *proto = NULL, *provider = NULL, *desc = NULL, *disc = NULL, *cid = NULL,
                   *scope = NULL, *method = NULL;
    json_t *v, *o;
    tsr_err_t rc;
    *doc = NULL;
    *secret = NULL;
    if (!json_is_object(body)) {
        return tsr_error_set(err, TSR_EINVAL, "the body must be a JSON object");
    }
    json_object_foreach(body, k, v) {
        bool ok = false;
        for (size_t i = 0; top[i] != NULL; i++) {
            ok = ok || strcmp(top[i], k) == 0;
        }
        if (!ok) {
            return tsr_error_set(err, TSR_EINVAL, "unknown field %.64s", k);
        }
    }
    if ((rc = str_field(body, "protocol", 16, true, &proto, err)) != TSR_OK ||
        (rc = str_field(body, "provider", 32, false, &provider, err)) != TSR_OK ||
        (rc = str_field(body, "description", TSR_ID__MAX_DESC, false, &desc, err)) != TSR_OK) {
        return rc;
    }
    if (strcmp(proto, "OIDC") != 0) {
        return tsr_error_set(err, TSR_EINVAL, "protocol must be \"OIDC\"");
    }
    static const char *const bools[] = {"interactive", "createNewUsersOnLogin", "active", NULL};
    for (size_t i = 0; bools[i] != NULL; i++) {
        v = json_object_get(body, bools[i]);
        if (v != NULL && !json_is_boolean(v)) {
            return tsr_error_set(err, TSR_EINVAL, "%s must be a boolean", bools[i]);
        }
    }
    if (json_is_false(json_object_get(body, "interactive"))) {
        return tsr_error_set(err, TSR_EINVAL,
                             "only interactive (browser sign-in) providers are supported");
    }
    v = json_object_get(body, "clockToleranceSec");
    if (v != NULL && (!json_is_integer(v) || json_integer_value(v) < 0 ||
                      json_integer_value(v) > MAX_CLOCK_TOLERANCE)) {
        return tsr_error_set(err, TSR_EINVAL, "clockToleranceSec must be an integer in 0..%d",
                             MAX_CLOCK_TOLERANCE);
    }
    o = json_object_get(body, "options");
    if (!json_is_object(o)) {
        return tsr_error_set(err, TSR_EINVAL, "options is required (an object)");
    }
    json_object_foreach(o, k, v) {
        bool ok = false;
        for (size_t i = 0; opt[i] != NULL; i++) {
            ok = ok || strcmp(opt[i], k) == 0;
        }
        if (!ok) {
            return tsr_error_set(err, TSR_EINVAL, "unknown field options.%.64s", k);
        }
    }
    if ((rc = str_field(o, "discoveryUrl", MAX_URL, true, &disc, err)) != TSR_OK ||
        (rc = str_field(o, "clientId", MAX_CLIENT_ID, true, &cid, err)) != TSR_OK ||
        (rc = str_field(o, "clientSecret", MAX_CLIENT_SECRET, need_secret, secret, err)) !=
            TSR_OK ||
        (rc = str_field(o, "scope", MAX_SCOPE, false, &scope, err)) != TSR_OK ||
        (rc = str_field(o, "tokenEndpointAuthMethod", 32, false, &method, err)) != TSR_OK) {
        return rc;
    }
    size_t dl = strlen(disc), wl = sizeof WELL_KNOWN - 1;
    if (!tsr_identity__oidc_url_ok(disc) || dl <= wl || strcmp(disc + dl - wl, WELL_KNOWN) != 0) {
        return tsr_error_set(err, TSR_EINVAL,
                             "options.discoveryUrl must be an https URL ending in %s (http only "
                             "on loopback)",
                             WELL_KNOWN);
    }
    for (const char *s = cid; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e) {
            return tsr_error_set(err, TSR_EINVAL, "options.clientId must be printable ASCII");
        }
    }
    if (scope == NULL) {
        scope = "openid profile email";
    }
    if (strncmp(scope, "openid", 6) != 0 || (scope[6] != '\0' && scope[6] != ' ') ||
        strspn(scope, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:/ ") !=
            strlen(scope)) {
        return tsr_error_set(err, TSR_EINVAL,
                             "options.scope must start with \"openid\" (space-delimited scope "
                             "tokens)");
    }
    if (method == NULL) {
        method = "client_secret_basic";
    }
    if (strcmp(method, "client_secret_basic") != 0 && strcmp(method, "client_secret_post") != 0) {
        return tsr_error_set(err, TSR_EINVAL,
                             "options.tokenEndpointAuthMethod must be client_secret_basic or "
                             "client_secret_post");
    }
    json_t *map = json_object_get(o, "claimsMapping");
    if (map != NULL && (rc = mapping_check(map, err)) != TSR_OK) {
        return rc;
    }
    v = json_object_get(body, "clockToleranceSec");
    json_t *d = json_pack("{ss ss sb sb sb sI s{ss ss ss ss sO}}", "protocol", "OIDC", "provider",
                          provider != NULL ? provider : "generic", "interactive", 1, "active",
                          !json_is_false(json_object_get(body, "active")), "createNewUsersOnLogin",
                          !json_is_false(json_object_get(body, "createNewUsersOnLogin")),
                          "clockToleranceSec", (json_int_t)(v != NULL ? json_integer_value(v) : 60),
                          "options", "discoveryUrl", disc, "clientId", cid, "scope", scope,
                          "tokenEndpointAuthMethod", method, "claimsMapping",
                          map != NULL ? map
                                      : json_pack("{s[s] s[s] s[s] s[s]}", "sub", "/sub", "email",
                                                  "/email", "name", "/name", "groups", "/groups"));
    if (map == NULL) {
        /* "sO" took a reference to the fresh default mapping: drop ours. */
        json_decref(json_object_get(json_object_get(d, "options"), "claimsMapping"));
    }
    if (desc != NULL) {
        json_object_set_new(d, "description", json_string(desc));
    }
    *doc = d;
    return TSR_OK;
}

json_t *tsr_identity__idp_view(const json_t *doc, const char *base) {
    json_t *v = json_deep_copy(doc);
    json_object_del(json_object_get(v, "options"), "clientSecretSealed");
    if (base != NULL) {
        char href[512];
        snprintf(href, sizeof href, "%s/api/v1/identity-providers/%s", base,
                 json_string_value(json_object_get(doc, "id")));
        json_object_set_new(v, "links", json_pack("{s{ss}}", "self", "href", href));
    }
    return v;
}

tsr_err_t tsr_identity__oidc_sign_in_options(tsr_identity_t *id, const char *tenant, json_t **out,
                                             tsr_error_t *err) {
    json_t *rows = NULL, *row, *data;
    size_t i;
    *out = NULL;
    tsr_err_t rc = id->docs.list(id->docs.ud, TSR_ID__C_IDPS, tenant, NULL, NULL, NULL,
                                 TSR_ID__OIDC_MAX_SIGN_IN_OPTIONS, &rows, err);
    if (rc != TSR_OK) {
        return rc;
    }
    data = json_array();
    json_array_foreach(rows, i, row) {
        const char *iid = json_string_value(json_object_get(row, "id"));
        const char *desc = json_string_value(json_object_get(row, "description"));
        if (iid == NULL || !json_is_true(json_object_get(row, "active"))) {
            continue;
        }
        char login[96];
        snprintf(login, sizeof login, "/api/v1/identity/oidc/%.24s/login", iid);
        json_array_append_new(data, json_pack("{ss ss ss}", "id", iid, "name",
                                              desc != NULL ? desc : "", "loginPath", login));
    }
    json_decref(rows);
    *out = json_pack("{so}", "data", data);
    return TSR_OK;
}

tsr_err_t tsr_identity__idp_create(tsr_identity_t *id, const char *tenant, const char *actor,
                                   json_t *body, json_t **out, tsr_error_t *err) {
    json_t *doc = NULL;
    const char *secret = NULL;
    char iid[25], ts[25], *sealed = NULL;
    *out = NULL;
    tsr_err_t rc = idp_validate(body, true, &doc, &secret, err);
    if (rc != TSR_OK) {
        return rc;
    }
    json_t *tids = json_object_get(body, "tenantIds");
    if (tids != NULL) {
        const char *t0 = json_string_value(json_array_get(tids, 0));
        if (!json_is_array(tids) || json_array_size(tids) != 1 || t0 == NULL ||
            strcmp(t0, tenant) != 0) {
            json_decref(doc);
            return tsr_error_set(err, TSR_EINVAL, "tenantIds must be [the caller's tenant]");
        }
    }
    tsr_id_new(iid);
    if ((rc = tsr_identity__seal_str(id, tenant, SECRET_KIND, iid, secret, &sealed, err)) !=
        TSR_OK) {
        json_decref(doc);
        return rc;
    }
    tsr_time_format_rfc3339(tsr_wall_ms(), ts);
    json_object_set_new(doc, "id", json_string(iid));
    json_object_set_new(doc, "tenantIds", json_pack("[s]", tenant));
    json_object_set_new(doc, "createdAt", json_string(ts));
    json_object_set_new(doc, "lastUpdatedAt", json_string(ts));
    json_object_set_new(json_object_get(doc, "options"), "clientSecretSealed", json_string(sealed));
    free(sealed);
    json_t *ev = tsr_identity__idp_view(doc, NULL);
    rc = id->docs.create(id->docs.ud, TSR_ID__C_IDPS, tenant, iid, doc,
                         &(tsr_id__audit_t){"com.qlik.v1.identity-provider.created", actor, ev},
                         err);
    json_decref(ev);
    if (rc != TSR_OK) {
        json_decref(doc);
        return rc;
    }
    *out = doc;
    return TSR_OK;
}

tsr_err_t tsr_identity__idp_patch(tsr_identity_t *id, const char *tenant, const char *actor,
                                  const char *idp_id, json_t *ops, json_t **out, tsr_error_t *err) {
    json_t *doc = NULL, *work = NULL, *next = NULL, *op;
    const char *secret = NULL;
    char *sealed = NULL;
    size_t i;
    *out = NULL;
    if (!json_is_array(ops) || json_array_size(ops) == 0 ||
        json_array_size(ops) > TSR_ID__MAX_PATCH_OPS) {
        return tsr_error_set(err, TSR_EINVAL, "the body must be a JSON Patch array of 1..%d ops",
                             TSR_ID__MAX_PATCH_OPS);
    }
    tsr_err_t rc = id->docs.get(id->docs.ud, TSR_ID__C_IDPS, tenant, idp_id, &doc, err);
    if (rc != TSR_OK) {
        return rc == TSR_ENOTFOUND ? tsr_error_set(err, TSR_ENOTFOUND, "not found") : rc;
    }
    work = tsr_identity__idp_view(doc, NULL);
    json_array_foreach(ops, i, op) {
        const char *o = json_string_value(json_object_get(op, "op"));
        const char *path = json_string_value(json_object_get(op, "path"));
        json_t *v = json_object_get(op, "value");
        static const char *const paths[] = {"/description",
                                            "/active",
                                            "/createNewUsersOnLogin",
                                            "/clockToleranceSec",
                                            "/options/discoveryUrl",
                                            "/options/clientId",
                                            "/options/clientSecret",
                                            "/options/scope",
                                            "/options/claimsMapping",
                                            "/options/tokenEndpointAuthMethod",
                                            NULL};
        bool ok = o != NULL && strcmp(o, "replace") == 0 && path != NULL && v != NULL;
        size_t p = 0;
        for (; ok && paths[p] != NULL && strcmp(paths[p], path) != 0; p++) {
        }
        if (!ok || paths[p] == NULL) {
            rc = tsr_error_set(err, TSR_EINVAL,
                               "patch[%zu]: only replace of description, active, "
                               "createNewUsersOnLogin, clockToleranceSec or options/<field>",
                               i);
            goto out;
        }
        json_t *parent =
            strncmp(path, "/options/", 9) == 0 ? json_object_get(work, "options") : work;
        json_object_set(parent, strrchr(path, '/') + 1, v);
    }
    if ((rc = idp_validate(work, false, &next, &secret, err)) != TSR_OK) {
        goto out;
    }
    const char *old =
        json_string_value(json_object_get(json_object_get(doc, "options"), "clientSecretSealed"));
    if (secret != NULL) {
        if ((rc = tsr_identity__seal_str(id, tenant, SECRET_KIND, idp_id, secret, &sealed, err)) !=
            TSR_OK) {
            goto out;
        }
        old = sealed;
    }
    char ts[25];
    tsr_time_format_rfc3339(tsr_wall_ms(), ts);
    static const char *const keep[] = {"id", "tenantIds", "createdAt", NULL};
    for (size_t k = 0; keep[k] != NULL; k++) {
        json_object_set(next, keep[k], json_object_get(doc, keep[k]));
    }
    json_object_set_new(next, "lastUpdatedAt", json_string(ts));
    json_object_set_new(json_object_get(next, "options"), "clientSecretSealed",
                        json_string(old != NULL ? old : ""));
    json_t *ev = tsr_identity__idp_view(next, NULL);
    rc = id->docs.replace(id->docs.ud, TSR_ID__C_IDPS, tenant, idp_id, next,
                          &(tsr_id__audit_t){"com.qlik.v1.identity-provider.updated", actor, ev},
                          err);
    json_decref(ev);
    if (rc == TSR_OK) {
        *out = next;
        next = NULL;
    }
out:
    free(sealed);
    json_decref(next);
    json_decref(work);
    json_decref(doc);
    return rc;
}

tsr_err_t tsr_identity__idp_del(tsr_identity_t *id, const char *tenant, const char *actor,
                                const char *idp_id, tsr_error_t *err) {
    json_t *doc = NULL;
    tsr_err_t rc = id->docs.get(id->docs.ud, TSR_ID__C_IDPS, tenant, idp_id, &doc, err);
    if (rc == TSR_OK) {
        json_t *ev = tsr_identity__idp_view(doc, NULL);
        rc = id->docs.del(id->docs.ud, TSR_ID__C_IDPS, tenant, idp_id,
                          &(tsr_id__audit_t){"com.qlik.v1.identity-provider.deleted", actor, ev},
                          err);
        json_decref(ev);
    }
    json_decref(doc);
    return rc == TSR_ENOTFOUND ? tsr_error_set(err, TSR_ENOTFOUND, "not found") : rc;
}

/* ---- the authorization-code flow ------------------------------------------------------------ */

static tsr_err_t idp_load(tsr_identity_t *id, const char *tenant, const char *idp_id, json_t **doc,
                          tsr_error_t *err) {
    tsr_err_t rc = id->docs.get(id->docs.ud, TSR_ID__C_IDPS, tenant, idp_id, doc, err);
    if (rc == TSR_ENOTFOUND) {
        return tsr_error_set(err, TSR_ENOTFOUND, "no such identity provider in this tenant");
    }
    if (rc == TSR_OK && !json_is_true(json_object_get(*doc, "active"))) {
        json_decref(*doc);
        *doc = NULL;
        return tsr_error_set(err, TSR_EFORBIDDEN, "this identity provider is not active");
    }
    return rc;
}

static void append_param(tsr_buf_t *b, const char *name, const char *value, bool first) {
    char *esc = curl_easy_escape(NULL, value, 0);
    tsr_buf_appendf(b, "%s%s=%s", first ? "" : "&", name, esc != NULL ? esc : "");
    curl_free(esc);
}

/* Drop tenant's expired states (and failure markers); TSR_EUNAVAILABLE when more than
 * TSR_ID__OIDC_MAX_PENDING sign-ins are still pending, so that unauthenticated starts cannot
 * grow the store without bound. */
static tsr_err_t states_prune(tsr_identity_t *id, const char *tenant, tsr_error_t *err) {
    json_t *rows = NULL, *r;
    size_t i, live = 0;
    int64_t now = tsr_wall_ms();
    tsr_err_t rc = id->docs.list(id->docs.ud, TSR_ID__C_OIDC_STATES, tenant, NULL, NULL, NULL,
                                 TSR_ID__OIDC_MAX_PENDING + 1, &rows, err);
    if (rc != TSR_OK) {
        return rc;
    }
    json_array_foreach(rows, i, r) {
        if (json_integer_value(json_object_get(r, "expiresMs")) <= now) {
            id->docs.del(id->docs.ud, TSR_ID__C_OIDC_STATES, tenant,
                         json_string_value(json_object_get(r, "id")), NULL, NULL);
        } else {
            live++;
        }
    }
    json_decref(rows);
    return live >= TSR_ID__OIDC_MAX_PENDING
               ? tsr_error_set(err, TSR_EUNAVAILABLE,
                               "too many sign-ins in progress for this tenant; retry later")
               : TSR_OK;
}

bool tsr_identity__returnto_ok(const char *r) {
    return r != NULL && r[0] == '/' && r[1] != '/' && r[1] != '\\' && strlen(r) <= 1024 &&
           strpbrk(r, "\r\n\\") == NULL;
}

tsr_err_t tsr_identity__oidc_start(tsr_identity_t *id, const char *tenant, const char *idp_id,
                                   const char *redirect_uri, const char *returnto, char **location,
                                   char **state_out, tsr_error_t *err) {
    json_t *idp = NULL;
    tsr_id__oidc_disc_t disc = {0};
    char state[64], nonce[64], verifier[64], hash[65];
    uint8_t md[32];
    *location = NULL;
    *state_out = NULL;
    if (returnto != NULL && !tsr_identity__returnto_ok(returnto)) {
        return tsr_error_set(err, TSR_EINVAL, "returnto must be a path on this site");
    }
    tsr_err_t rc = idp_load(id, tenant, idp_id, &idp, err);
    json_t *o = json_object_get(idp, "options");
    if (rc == TSR_OK) {
        rc = discovery_get(id, json_string_value(json_object_get(o, "discoveryUrl")), &disc, err);
    }
    if (rc != TSR_OK) {
        goto out;
    }
    if ((rc = states_prune(id, tenant, err)) != TSR_OK) {
        goto out;
    }
    tsr_identity__random_b64url(32, state, sizeof state);
    tsr_identity__random_b64url(32, nonce, sizeof nonce);
    tsr_identity__random_b64url(32, verifier, sizeof verifier);
    tsr_identity__sha256_hex(state, strlen(state), hash);
    json_t *st = json_pack("{ss ss ss ss ss ss sI}", "id", hash, "idpId", idp_id, "nonce", nonce,
                           "verifier", verifier, "redirectUri", redirect_uri, "returnto",
                           returnto != NULL ? returnto : "/", "expiresMs",
                           (json_int_t)(tsr_wall_ms() + TSR_ID__OIDC_STATE_TTL_MS));
    rc = id->docs.create(id->docs.ud, TSR_ID__C_OIDC_STATES, tenant, hash, st, NULL, err);
    json_decref(st);
    if (rc != TSR_OK) {
        goto out;
    }
    tsr_crypto_sha256(verifier, strlen(verifier), md);
    tsr_buf_t ch, loc;
    tsr_buf_init(&ch, 128);
    tsr_crypto_b64url_encode(md, sizeof md, &ch);
    tsr_buf_init(&loc, 8192);
    tsr_buf_append_str(&loc, disc.authorization_endpoint);
    tsr_buf_append_str(&loc, strchr(disc.authorization_endpoint, '?') != NULL ? "&" : "?");
    append_param(&loc, "response_type", "code", true);
    append_param(&loc, "client_id", json_string_value(json_object_get(o, "clientId")), false);
    append_param(&loc, "redirect_uri", redirect_uri, false);
    append_param(&loc, "scope", json_string_value(json_object_get(o, "scope")), false);
    append_param(&loc, "state", state, false);
    append_param(&loc, "nonce", nonce, false);
    append_param(&loc, "code_challenge", ch.data, false);
    append_param(&loc, "code_challenge_method", "S256", false);
    *location = tsr_buf_take(&loc, NULL);
    *state_out = tsr_xstrdup(state);
    tsr_buf_cleanup(&ch);
out:
    tsr_identity__oidc_disc_cleanup(&disc);
    json_decref(idp);
    return rc;
}

/* The provider's JWKS as a fresh key set (*ks returned-owned). */
static tsr_err_t jwks_get(tsr_identity_t *id, const char *url, bool refresh, tsr_jwt_keyset_t **ks,
                          tsr_error_t *err) {
    json_t *d = NULL;
    *ks = NULL;
    tsr_err_t rc = doc_get(id, url, TSR_ID__OIDC_JWKS_MAX, refresh, &d, err);
    if (rc != TSR_OK) {
        return rc;
    }
    char *s = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    tsr_jwt_keyset_t *set = tsr_crypto_jwt_keyset_create();
    size_t added = 0;
    rc = tsr_crypto_jwt_keyset_jwks_parse(set, s, strlen(s), &added, err);
    free(s);
    if (rc == TSR_OK && added == 0) {
        rc = tsr_error_set(err, TSR_EUNAVAILABLE, "oidc: the provider's JWKS has no usable key");
    }
    if (rc != TSR_OK) {
        tsr_crypto_jwt_keyset_destroy(set);
        return rc == TSR_EUNAVAILABLE ? rc
                                      : tsr_error_set(err, TSR_EUNAVAILABLE,
                                                      "oidc: the provider's JWKS is not usable");
    }
    *ks = set;
    return TSR_OK;
}

/* Exchange code at the token endpoint; *id_token returned-owned. */
static tsr_err_t token_exchange(json_t *o, const char *secret, const tsr_id__oidc_disc_t *disc,
                                const char *code, const char *redirect_uri, const char *verifier,
                                char **id_token, char **access_token, tsr_error_t *err) {
    const char *cid = json_string_value(json_object_get(o, "clientId"));
    bool post = strcmp(json_string_value(json_object_get(o, "tokenEndpointAuthMethod")),
                       "client_secret_post") == 0;
    tsr_buf_t f;
    char *body = NULL;
    size_t len = 0;
    long status = 0;
    *id_token = NULL;
    *access_token = NULL;
    tsr_buf_init(&f, 16384);
    append_param(&f, "grant_type", "authorization_code", true);
    append_param(&f, "code", code, false);
    append_param(&f, "redirect_uri", redirect_uri, false);
    append_param(&f, "code_verifier", verifier, false);
    char *u = NULL, *p = NULL;
    if (post) {
        append_param(&f, "client_id", cid, false);
        append_param(&f, "client_secret", secret, false);
    } else {
        /* RFC 6749 §2.3.1: both form-encoded before Basic. */
        u = curl_easy_escape(NULL, cid, 0);
        p = curl_easy_escape(NULL, secret, 0);
    }
    tsr_err_t rc = http_call(disc->token_endpoint, f.data, u, p, NULL, TSR_ID__OIDC_DOC_MAX, &body,
                             &len, &status, err);
    if (f.data != NULL) {
        tsr_crypto_cleanse(f.data, f.len);
    }
    tsr_buf_cleanup(&f);
    if (p != NULL) {
        tsr_crypto_cleanse(p, strlen(p));
    }
    curl_free(u);
    curl_free(p);
    if (rc != TSR_OK) {
        return rc;
    }
    json_t *r = json_loadb(body, len, 0, NULL);
    free(body);
    const char *it = json_string_value(json_object_get(r, "id_token"));
    if (status != 200) {
        const char *e = json_string_value(json_object_get(r, "error"));
        rc = tsr_error_set(err, TSR_EUNAUTHENTICATED,
                           "oidc: the token endpoint refused the code (HTTP %ld, %.64s)", status,
                           e != NULL ? e : "no error code");
    } else if (it == NULL) {
        rc = tsr_error_set(err, TSR_EUNAUTHENTICATED, "oidc: the token response has no id_token");
    } else {
        const char *at = json_string_value(json_object_get(r, "access_token"));
        *id_token = tsr_xstrdup(it);
        *access_token = at != NULL ? tsr_xstrdup(at) : NULL;
    }
    json_decref(r);
    return rc;
}

/* A failed sign-in of a real state (one this service issued) is audited like a failed password
 * login: a short-lived marker document in the states collection (pruned with expired states)
 * carries com.qlik.v1.user.login.failed into the outbox. Best effort. */
static void failure_record(tsr_identity_t *id, const char *tenant, const char *idp_id,
                           const char *reason) {
    char fid[25], key[32];
    tsr_id_new(fid);
    snprintf(key, sizeof key, "f.%s", fid);
    json_t *d = json_pack("{ss sI}", "id", key, "expiresMs", (json_int_t)tsr_wall_ms());
    json_t *ev = json_pack("{ss ss ss}", "idpId", idp_id, "authType", "oidc", "reason", reason);
    id->docs.create(id->docs.ud, TSR_ID__C_OIDC_STATES, tenant, key, d,
                    &(tsr_id__audit_t){"com.qlik.v1.user.login.failed", NULL, ev}, NULL);
    json_decref(ev);
    json_decref(d);
}

/* Providers often keep profile claims out of the ID token: fetch them from userinfo with the
 * access token (its sub must be the ID token's) and add those the ID token lacks. */
static tsr_err_t userinfo_merge(const char *url, const char *access_token, json_t *claims,
                                tsr_error_t *err) {
    char *body = NULL;
    size_t len = 0;
    long status = 0;
    tsr_err_t rc = http_call(url, NULL, NULL, NULL, access_token, TSR_ID__OIDC_DOC_MAX, &body, &len,
                             &status, err);
    if (rc != TSR_OK) {
        return rc;
    }
    json_t *u = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    free(body);
    const char *us = json_string_value(json_object_get(u, "sub"));
    const char *is = json_string_value(json_object_get(claims, "sub"));
    if (status != 200 || !json_is_object(u)) {
        rc = tsr_error_set(err, TSR_EUNAVAILABLE, "oidc: userinfo answered HTTP %ld", status);
    } else if (us == NULL || is == NULL || strcmp(us, is) != 0) {
        rc = tsr_error_set(err, TSR_EUNAUTHENTICATED,
                           "oidc: userinfo is about another subject than the ID token");
    } else {
        json_object_update_missing(claims, u);
    }
    json_decref(u);
    return rc;
}

tsr_err_t tsr_identity__oidc_finish(tsr_identity_t *id, const char *tenant, const char *idp_id,
                                    const char *state, const char *code, const char *browser_state,
                                    char **cookie, char **csrf, char **returnto, tsr_error_t *err) {
    json_t *st = NULL, *idp = NULL, *claims = NULL;
    tsr_id__oidc_disc_t disc = {0};
    tsr_jwt_keyset_t *ks = NULL;
    char hash[65], *secret = NULL, *id_token = NULL, *access_token = NULL, uid[25];
    bool consumed = false;
    *cookie = NULL;
    *csrf = NULL;
    *returnto = NULL;
    if (state == NULL || strlen(state) > 128 || code == NULL || strlen(code) > 2048) {
        return tsr_error_set(err, TSR_EINVAL, "the callback needs state and code");
    }
    /* The state must come back to the browser that started the sign-in. */
    if (browser_state == NULL || strlen(browser_state) != strlen(state) ||
        !tsr_identity__ct_eq(browser_state, state)) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED,
                             "oidc: the state does not belong to this browser's sign-in");
    }
    tsr_identity__sha256_hex(state, strlen(state), hash);
    tsr_err_t rc = id->docs.get(id->docs.ud, TSR_ID__C_OIDC_STATES, tenant, hash, &st, err);
    if (rc == TSR_OK) {
        /* Single use: whoever deletes it first owns the sign-in. */
        rc = id->docs.del(id->docs.ud, TSR_ID__C_OIDC_STATES, tenant, hash, NULL, err);
        consumed = rc == TSR_OK;
    }
    if (rc == TSR_ENOTFOUND) {
        rc = tsr_error_set(err, TSR_EUNAUTHENTICATED, "oidc: unknown, used or expired state");
    }
    if (rc != TSR_OK) {
        goto out;
    }
    const char *sidp = json_string_value(json_object_get(st, "idpId"));
    if (json_integer_value(json_object_get(st, "expiresMs")) <= tsr_wall_ms() || sidp == NULL ||
        strcmp(sidp, idp_id) != 0) {
        rc = tsr_error_set(err, TSR_EUNAUTHENTICATED, "oidc: unknown, used or expired state");
        goto out;
    }
    if ((rc = idp_load(id, tenant, idp_id, &idp, err)) != TSR_OK) {
        goto out;
    }
    json_t *o = json_object_get(idp, "options");
    const char *sealed = json_string_value(json_object_get(o, "clientSecretSealed"));
    if ((rc = tsr_identity__open_str(id, tenant, SECRET_KIND, idp_id, sealed != NULL ? sealed : "",
                                     &secret, err)) != TSR_OK ||
        (rc = discovery_get(id, json_string_value(json_object_get(o, "discoveryUrl")), &disc,
                            err)) != TSR_OK ||
        (rc = token_exchange(o, secret, &disc, code,
                             json_string_value(json_object_get(st, "redirectUri")),
                             json_string_value(json_object_get(st, "verifier")), &id_token,
                             &access_token, err)) != TSR_OK) {
        goto out;
    }
    const char *cid = json_string_value(json_object_get(o, "clientId"));
    const char *nonce = json_string_value(json_object_get(st, "nonce"));
    uint32_t skew = (uint32_t)json_integer_value(json_object_get(idp, "clockToleranceSec"));
    if (skew == 0) {
        skew = 1; /* 0 means "the default" to pkg/crypto */
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        tsr_crypto_jwt_keyset_destroy(ks);
        if ((rc = jwks_get(id, disc.jwks_uri, attempt > 0, &ks, err)) != TSR_OK) {
            goto out;
        }
        rc = tsr_identity__oidc_id_token_verify(ks, id_token, disc.issuer, cid, nonce, skew, 0,
                                                &claims, err);
        if (rc == TSR_OK) {
            break;
        }
        /* A key the cached JWKS lacks (rotation): fetch it once more. */
    }
    if (rc != TSR_OK) {
        goto out;
    }
    json_t *map = json_object_get(o, "claimsMapping");
    if (claim_str(claims, map, "email") == NULL && disc.userinfo_endpoint != NULL &&
        access_token != NULL &&
        (rc = userinfo_merge(disc.userinfo_endpoint, access_token, claims, err)) != TSR_OK) {
        goto out;
    }
    const char *sub = claim_str(claims, map, "sub");
    const char *email = claim_str(claims, map, "email");
    const char *name = claim_str(claims, map, "name");
    if (sub == NULL || sub[0] == '\0' || strlen(sub) > 255) {
        rc = tsr_error_set(err, TSR_EUNAUTHENTICATED, "oidc: the mapped sub claim is missing");
        goto out;
    }
    rc = tsr_identity__oidc_user(id, tenant, idp_id, sub, email, name,
                                 json_is_true(json_object_get(idp, "createNewUsersOnLogin")), uid,
                                 err);
    if (rc == TSR_OK) {
        rc = tsr_identity__oidc_groups_sync(id, tenant, uid, idp_id,
                                            claim_json(claims, map, "groups"), err);
    }
    if (rc == TSR_OK) {
        json_t *ev = json_pack("{ss ss ss}", "userId", uid, "idpId", idp_id, "authType", "oidc");
        rc = tsr_identity__session_create(
            id, tenant, uid, &(tsr_id__audit_t){"com.qlik.v1.user.session.created", uid, ev},
            cookie, csrf, err);
        json_decref(ev);
    }
    if (rc == TSR_OK) {
        *returnto = tsr_xstrdup(json_string_value(json_object_get(st, "returnto")));
    }
out:
    if (rc != TSR_OK && consumed) {
        failure_record(id, tenant, idp_id, err != NULL ? err->msg : tsr_strerror(rc));
    }
    if (secret != NULL) {
        tsr_crypto_cleanse(secret, strlen(secret));
    }
    free(secret);
    free(id_token);
    if (access_token != NULL) {
        tsr_crypto_cleanse(access_token, strlen(access_token));
    }
    free(access_token);
    tsr_crypto_jwt_keyset_destroy(ks);
    tsr_identity__oidc_disc_cleanup(&disc);
    json_decref(claims);
    json_decref(idp);
    json_decref(st);
    return rc;
}
