/*
 * Unit tests for pkg/spaces, in-process through tsr_httpd_inject over a temporary SQLite store
 * and file blob store: spaces and assignments, the role table (README vs code, and every role ×
 * action through /internal/v1/access and the HTTP operations that enforce it), items and apps,
 * data files, events in the outbox, cross-tenant 404 on every route, and routes vs OpenAPI.
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "openapi_check.h"
#include "events.h"
#include "log.h"
#include "spaces.h"

#define FILE_MAX 4096

typedef struct {
    const char *tenant, *user, *roles;
    const char *groups; /* X-Tsr-Groups; NULL: not sent */
} who_t;

static const who_t A_ADMIN = {"ta", "adminA", "TenantAdmin,User", NULL};
static const who_t A_U1 = {"ta", "u1", "User", NULL};
static const who_t A_U2 = {"ta", "u2", "User", NULL};
static const who_t B_ADMIN = {"tb", "adminB", "TenantAdmin,User", NULL};

typedef struct {
    char dir[64];
    tsr_store_t *store;
    tsr_blob_store_t *blobs;
    tsr_kek_set_t *kek;
    tsr_spaces_t *sp;
    tsr_httpd_t *h;
} fx_t;

static const char *fx_engine_url;       /* opts.engine_url of the next fx_init (NULL: none) */
static tsr_spaces_token_fn fx_token_fn; /* opts.token_fn of the next fx_init (NULL: none) */

static void fx_init(fx_t *fx) {
    tsr_error_t err;
    char uri[128];
    size_t n = 0;
    memset(fx, 0, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/tsr-spaces-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(fx->dir));
    tsr_store_opts_t so = {.collections = tsr_spaces_collections(&n)};
    so.n_collections = n;
    snprintf(uri, sizeof uri, "sqlite:%s/store.db", fx->dir);
    ck_assert_msg(tsr_store_create(uri, &so, &fx->store, &err) == TSR_OK, "%s", err.msg);
    snprintf(uri, sizeof uri, "file:%s/blobs", fx->dir);
    ck_assert_msg(tsr_blob_store_open(uri, &fx->blobs, &err) == TSR_OK, "%s", err.msg);
    uint8_t kek[TSR_CRYPTO_KEY_LEN];
    tsr_random_fill(kek, sizeof kek);
    fx->kek = tsr_crypto_kek_set_create();
    ck_assert_int_eq(tsr_crypto_kek_set_add(fx->kek, kek, true, &err), TSR_OK);
    tsr_spaces_opts_t o = {.store = fx->store,
                           .blobs = fx->blobs,
                           .kek = fx->kek,
                           .datafile_max_bytes = FILE_MAX,
                           .json_max_body = 65536,
                           .engine_url = fx_engine_url,
                           .token_fn = fx_token_fn};
    ck_assert_int_eq(tsr_spaces_create(&o, &fx->sp, &err), TSR_OK);
    tsr_httpd_opts_t ho = {.service = "spaces",
                           .bind = "127.0.0.1",
                           .threads = 1,
                           .max_body = 1 << 20,
                           .on_principal = tsr_spaces_principal};
    ck_assert_int_eq(tsr_httpd_create(&ho, &fx->h, &err), TSR_OK);
    ck_assert_int_eq(tsr_spaces_routes(fx->h, fx->sp, &err), TSR_OK);
}

static void fx_cleanup(fx_t *fx) {
    char cmd[128];
    tsr_httpd_destroy(fx->h);
    tsr_spaces_destroy(fx->sp);
    tsr_blob_store_destroy(fx->blobs);
    tsr_store_destroy(fx->store);
    tsr_crypto_kek_set_destroy(fx->kek);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* One request as who (NULL: no principal headers) with an optional body of content type ct
 * (NULL with a body: application/json). Returns the status; r is filled. */
static unsigned callx(fx_t *fx, const who_t *who, const char *method, const char *path,
                      const char *ct, const char *body, size_t len, tsr_httpd_response_t *r) {
    const char *h[16] = {"Host", "spaces.test", NULL};
    size_t n = 2;
    if (who != NULL) {
        h[n++] = "X-Tsr-Tenant-Id";
        h[n++] = who->tenant;
        h[n++] = "X-Tsr-User-Id";
        h[n++] = who->user;
        h[n++] = "X-Tsr-Roles";
        h[n++] = who->roles;
        if (who->groups != NULL) {
            h[n++] = "X-Tsr-Groups";
            h[n++] = who->groups;
        }
    }
    if (body != NULL) {
        h[n++] = "Content-Type";
        h[n++] = ct != NULL ? ct : "application/json";
    }
    tsr_httpd_inject(fx->h, method, path, h, body, len, r);
    return r->status;
}

static unsigned call(fx_t *fx, const who_t *who, const char *method, const char *path,
                     const char *body, tsr_httpd_response_t *r) {
    return callx(fx, who, method, path, NULL, body, body != NULL ? strlen(body) : 0, r);
}

/* Status only. */
static unsigned st(fx_t *fx, const who_t *who, const char *method, const char *path,
                   const char *body) {
    tsr_httpd_response_t r;
    unsigned s = call(fx, who, method, path, body, &r);
    tsr_httpd_response_cleanup(&r);
    return s;
}

static json_t *body_json(const tsr_httpd_response_t *r) {
    json_error_t je;
    json_t *j = json_loads(r->body, 0, &je);
    ck_assert_msg(j != NULL, "not JSON: %s", r->body);
    return j;
}

/* POST/PUT and expect want; returns the string at JSON pointer-ish path "a.b" (heap). */
static char *call_get(fx_t *fx, const who_t *who, const char *method, const char *path,
                      const char *body, unsigned want, const char *k1, const char *k2) {
    tsr_httpd_response_t r;
    unsigned s = call(fx, who, method, path, body, &r);
    ck_assert_msg(s == want, "%s %s: %u, want %u: %s", method, path, s, want, r.body);
    json_t *j = body_json(&r);
    json_t *v = json_object_get(j, k1);
    if (k2 != NULL) {
        v = json_object_get(v, k2);
    }
    ck_assert_msg(json_is_string(v), "%s.%s missing in %s", k1, k2 ? k2 : "", r.body);
    char *out = strdup(json_string_value(v));
    json_decref(j);
    tsr_httpd_response_cleanup(&r);
    return out;
}

static char *space_create(fx_t *fx, const who_t *who, const char *name, const char *type) {
    char body[256];
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"type\":\"%s\"}", name, type);
    return call_get(fx, who, "POST", "/api/v1/spaces", body, 201, "id", NULL);
}

static char *assign(fx_t *fx, const who_t *who, const char *space, const char *user,
                    const char *role) {
    char path[128], body[256];
    snprintf(path, sizeof path, "/api/v1/spaces/%s/assignments", space);
    snprintf(body, sizeof body, "{\"type\":\"user\",\"assigneeId\":\"%s\",\"roles\":[\"%s\"]}",
             user, role);
    return call_get(fx, who, "POST", path, body, 201, "id", NULL);
}

static char *app_create(fx_t *fx, const who_t *who, const char *name, const char *space) {
    char body[256];
    if (space != NULL) {
        snprintf(body, sizeof body, "{\"attributes\":{\"name\":\"%s\",\"spaceId\":\"%s\"}}", name,
                 space);
    } else {
        snprintf(body, sizeof body, "{\"attributes\":{\"name\":\"%s\"}}", name);
    }
    return call_get(fx, who, "POST", "/api/v1/apps", body, 200, "attributes", "id");
}

#define BOUNDARY "----tsrBoundary7d1"

/* A multipart body with a File part (data, n bytes) and a Json part (json, may be NULL). */
static char *multipart(const char *json, const char *data, size_t n, size_t *len) {
    size_t cap = n + 1024 + (json != NULL ? strlen(json) : 0);
    char *b = malloc(cap);
    size_t off = 0;
    if (json != NULL) {
        off += (size_t)snprintf(b + off, cap - off,
                                "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"Json\"; "
                                "filename=\"\"\r\nContent-Type: application/json\r\n\r\n%s\r\n",
                                json);
    }
    off += (size_t)snprintf(b + off, cap - off,
                            "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"File\"; "
                            "filename=\"blob.csv\"\r\nContent-Type: "
                            "application/octet-stream\r\n\r\n");
    memcpy(b + off, data, n);
    off += n;
    off += (size_t)snprintf(b + off, cap - off, "\r\n--" BOUNDARY "--\r\n");
    *len = off;
    return b;
}

static unsigned upload(fx_t *fx, const who_t *who, const char *method, const char *path,
                       const char *json, const char *data, size_t n, tsr_httpd_response_t *r) {
    size_t len = 0;
    char *b = multipart(json, data, n, &len);
    unsigned s = callx(fx, who, method, path, "multipart/form-data; boundary=" BOUNDARY, b, len, r);
    free(b);
    return s;
}

static char *datafile_create(fx_t *fx, const who_t *who, const char *name, const char *space) {
    char json[256];
    tsr_httpd_response_t r;
    if (space != NULL) {
        snprintf(json, sizeof json, "{\"name\":\"%s\",\"connectionId\":\"%s\"}", name, space);
    } else {
        snprintf(json, sizeof json, "{\"name\":\"%s\"}", name);
    }
    unsigned s = upload(fx, who, "POST", "/api/v1/data-files", json, "a,b\n1,2\n", 8, &r);
    ck_assert_msg(s == 201, "upload: %u %s", s, r.body);
    json_t *j = body_json(&r);
    char *id = strdup(json_string_value(json_object_get(j, "id")));
    json_decref(j);
    tsr_httpd_response_cleanup(&r);
    return id;
}

/* The caller's actions on resource as a bit set (404 → -1). */
static int access_of(fx_t *fx, const who_t *who, const char *kind, const char *id) {
    char path[160];
    tsr_httpd_response_t r;
    snprintf(path, sizeof path, "/internal/v1/access?resource=%s:%s", kind, id);
    unsigned s = call(fx, who, "GET", path, NULL, &r);
    if (s == 404) {
        tsr_httpd_response_cleanup(&r);
        return -1;
    }
    ck_assert_msg(s == 200, "access: %u %s", s, r.body);
    json_t *j = body_json(&r);
    int bits = 0;
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(j, "actions"), i, a) {
        for (unsigned b = 0; b < TSR_SPACES_N_ACTIONS; b++) {
            if (strcmp(tsr_spaces_action_name(1u << b), json_string_value(a)) == 0) {
                bits |= (int)(1u << b);
            }
        }
    }
    json_decref(j);
    tsr_httpd_response_cleanup(&r);
    return bits;
}

/* Path and query of an absolute href ("http://host/p?q" → "/p?q"). */
static const char *path_of(const char *href) {
    ck_assert_ptr_nonnull(strstr(href, "://"));
    const char *p = strchr(strstr(href, "://") + 3, '/');
    ck_assert_ptr_nonnull(p);
    return p;
}

/* ---- principal ------------------------------------------------------------------------------ */

START_TEST(test_principal_missing_headers_is_401) {
    fx_t fx;
    fx_init(&fx);
    tsr_httpd_response_t r;
    ck_assert_uint_eq(call(&fx, NULL, "GET", "/api/v1/spaces", NULL, &r), 401);
    json_t *j = body_json(&r);
    ck_assert_str_eq(
        json_string_value(json_object_get(json_array_get(json_object_get(j, "errors"), 0), "code")),
        "HTTP-401");
    json_decref(j);
    tsr_httpd_response_cleanup(&r);
    const who_t bad = {"t/../x", "u", "User", NULL};
    ck_assert_uint_eq(st(&fx, &bad, "GET", "/api/v1/spaces", NULL), 401);
    fx_cleanup(&fx);
}
END_TEST

/* ---- spaces --------------------------------------------------------------------------------- */

START_TEST(test_space_crud_and_shapes) {
    fx_t fx;
    fx_init(&fx);
    tsr_httpd_response_t r;
    char path[128];
    char *id = space_create(&fx, &A_ADMIN, "Sales", "shared");
    ck_assert_uint_eq(st(&fx, &A_ADMIN, "POST", "/api/v1/spaces", "{\"name\":\"sales\"}"), 409);
    ck_assert_uint_eq(st(&fx, &A_ADMIN, "POST", "/api/v1/spaces", "{\"name\":\"\"}"), 400);
    ck_assert_uint_eq(
        st(&fx, &A_ADMIN, "POST", "/api/v1/spaces", "{\"name\":\"x\",\"type\":\"weird\"}"), 400);
    ck_assert_uint_eq(
        st(&fx, &A_U1, "POST", "/api/v1/spaces", "{\"name\":\"m\",\"type\":\"managed\"}"), 403);
    snprintf(path, sizeof path, "/api/v1/spaces/%s", id);
    ck_assert_uint_eq(call(&fx, &A_ADMIN, "GET", path, NULL, &r), 200);
    json_t *j = body_json(&r);
    ck_assert_str_eq(json_string_value(json_object_get(j, "type")), "shared");
    ck_assert_str_eq(json_string_value(json_object_get(j, "ownerId")), "adminA");
    ck_assert_str_eq(json_string_value(json_object_get(j, "tenantId")), "ta");
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(
                                     json_object_get(json_object_get(j, "links"), "self"), "href")),
                                 "http://spaces.test/api/v1/spaces/"));
    ck_assert_uint_gt(json_array_size(json_object_get(json_object_get(j, "meta"), "actions")), 0);
    json_decref(j);
    tsr_httpd_response_cleanup(&r);
    /* JSON Patch and PUT. */
    ck_assert_uint_eq(call(&fx, &A_ADMIN, "PATCH", path,
                           "[{\"op\":\"replace\",\"path\":\"/name\",\"value\":\"Sales EU\"},"
                           "{\"op\":\"replace\",\"path\":\"/description\",\"value\":\"d\"}]",
                           &r),
                      200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"Sales EU\""));
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(
        st(&fx, &A_ADMIN, "PATCH", path, "[{\"op\":\"replace\",\"path\":\"/type\",\"value\":1}]"),
        400);
    ck_assert_uint_eq(st(&fx, &A_ADMIN, "PUT", path, "{\"name\":\"Sales 2\",\"description\":\"\"}"),
                      200);
    /* Types, list with meta.count and absolute links. */
    ck_assert_uint_eq(call(&fx, &A_ADMIN, "GET", "/api/v1/spaces/types", NULL, &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "managed"));
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(call(&fx, &A_ADMIN, "GET", "/api/v1/spaces?type=shared", NULL, &r), 200);
    j = body_json(&r);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "meta"), "count")), 1);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "data")), 1);
    json_decref(j);
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(st(&fx, &A_ADMIN, "DELETE", path, NULL), 204);
    ck_assert_uint_eq(st(&fx, &A_ADMIN, "GET", path, NULL), 404);
    ck_assert_uint_eq(st(&fx, &A_ADMIN, "GET", "/api/v1/spaces/not-an-id", NULL), 404);
    free(id);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_space_list_pages_with_absolute_links) {
    fx_t fx;
    fx_init(&fx);
    tsr_httpd_response_t r;
    for (int i = 0; i < 23; i++) {
        char name[32];
        snprintf(name, sizeof name, "space %02d", i);
        free(space_create(&fx, &A_ADMIN, name, "shared"));
    }
    char path[2048] = "/api/v1/spaces?limit=10&sort=-name";
    size_t seen = 0, pages = 0;
    char last[64] = "zzz";
    for (;;) {
        ck_assert_uint_eq(call(&fx, &A_ADMIN, "GET", path, NULL, &r), 200);
        json_t *j = body_json(&r);
        ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "meta"), "count")),
                         23);
        size_t i;
        json_t *d;
        json_array_foreach(json_object_get(j, "data"), i, d) {
            const char *n = json_string_value(json_object_get(d, "name"));
            ck_assert_int_lt(strcmp(n, last), 0); /* descending, no repeats */
            snprintf(last, sizeof last, "%s", n);
            seen++;
        }
        pages++;
        json_t *next = json_object_get(json_object_get(j, "links"), "next");
        if (next == NULL) {
            json_decref(j);
            tsr_httpd_response_cleanup(&r);
            break;
        }
        const char *href = json_string_value(json_object_get(next, "href"));
        ck_assert_ptr_nonnull(strstr(href, "http://spaces.test/api/v1/spaces?"));
        ck_assert_ptr_nonnull(strstr(href, "sort=-name"));
        snprintf(path, sizeof path, "%s", path_of(href));
        json_decref(j);
        tsr_httpd_response_cleanup(&r);
    }
    ck_assert_uint_eq(seen, 23);
    ck_assert_uint_eq(pages, 3);
    /* A forged cursor is a 400. */
    ck_assert_uint_eq(st(&fx, &A_ADMIN, "GET", "/api/v1/spaces?next=AAAAforged", NULL), 400);
    ck_assert_uint_eq(st(&fx, &A_ADMIN, "GET", "/api/v1/spaces?limit=0", NULL), 400);
    ck_assert_uint_eq(st(&fx, &A_ADMIN, "GET", "/api/v1/spaces?sort=+nope", NULL), 400);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_space_visible_only_to_owner_members_and_admin) {
    fx_t fx;
    fx_init(&fx);
    tsr_httpd_response_t r;
    char path[128];
    char *id = space_create(&fx, &A_U1, "Mine", "shared");
    snprintf(path, sizeof path, "/api/v1/spaces/%s", id);
    ck_assert_uint_eq(st(&fx, &A_U2, "GET", path, NULL), 404);
    ck_assert_uint_eq(st(&fx, &A_ADMIN, "GET", path, NULL), 200);
    ck_assert_uint_eq(call(&fx, &A_U2, "GET", "/api/v1/spaces", NULL, &r), 200);
    ck_assert_ptr_null(strstr(r.body, id));
    tsr_httpd_response_cleanup(&r);
    /* The owner assigns u2 as consumer: u2 sees it but cannot manage it. */
    char *as = assign(&fx, &A_U1, id, "u2", "consumer");
    ck_assert_uint_eq(st(&fx, &A_U2, "GET", path, NULL), 200);
    ck_assert_uint_eq(call(&fx, &A_U2, "GET", "/api/v1/spaces", NULL, &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, id));
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(st(&fx, &A_U2, "PUT", path, "{\"name\":\"stolen\"}"), 403);
    ck_assert_uint_eq(st(&fx, &A_U2, "DELETE", path, NULL), 403);
    char ap[192];
    snprintf(ap, sizeof ap, "%s/assignments", path);
    ck_assert_uint_eq(st(&fx, &A_U2, "POST", ap,
                         "{\"type\":\"user\",\"assigneeId\":\"u3\",\"roles\":[\"consumer\"]}"),
                      403);
    /* Duplicate assignment, role not assignable in a shared space, unknown role. */
    ck_assert_uint_eq(st(&fx, &A_U1, "POST", ap,
                         "{\"type\":\"user\",\"assigneeId\":\"u2\",\"roles\":[\"producer\"]}"),
                      409);
    ck_assert_uint_eq(st(&fx, &A_U1, "POST", ap,
                         "{\"type\":\"user\",\"assigneeId\":\"u3\",\"roles\":[\"publisher\"]}"),
                      400);
    ck_assert_uint_eq(
        st(&fx, &A_U1, "POST", ap, "{\"type\":\"user\",\"assigneeId\":\"u3\",\"roles\":[]}"), 400);
    /* Assignment get, list, put, delete. */
    char one[256];
    snprintf(one, sizeof one, "%s/%s", ap, as);
    ck_assert_uint_eq(st(&fx, &A_U2, "GET", one, NULL), 200);
    ck_assert_uint_eq(call(&fx, &A_U1, "GET", ap, NULL, &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"assigneeId\":\"u2\""));
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(st(&fx, &A_U1, "PUT", one, "{\"roles\":[\"facilitator\"]}"), 200);
    ck_assert_uint_eq(st(&fx, &A_U2, "PUT", path, "{\"name\":\"renamed by facilitator\"}"), 200);
    ck_assert_uint_eq(st(&fx, &A_U1, "DELETE", one, NULL), 204);
    ck_assert_uint_eq(st(&fx, &A_U2, "GET", path, NULL), 404);
    ck_assert_uint_eq(st(&fx, &A_U1, "GET", one, NULL), 404);
    free(as);
    free(id);
    fx_cleanup(&fx);
}
END_TEST

/* ---- group assignments ---------------------------------------------------------------------- */

#define G_CONS "0000000000000000000000c1" /* assigned consumer in A's space */
#define G_PROD "0000000000000000000000b2" /* assigned producer in A's space */
#define G_NONE "0000000000000000000000d3" /* assigned nowhere */
#define G_B "0000000000000000000000e4"    /* assigned consumer in B's space */

static char *assign_group(fx_t *fx, const who_t *who, const char *space, const char *group,
                          const char *role) {
    char path[128], body[256];
    snprintf(path, sizeof path, "/api/v1/spaces/%s/assignments", space);
    snprintf(body, sizeof body, "{\"type\":\"group\",\"assigneeId\":\"%s\",\"roles\":[\"%s\"]}",
             group, role);
    return call_get(fx, who, "POST", path, body, 201, "id", NULL);
}

/* Whether GET path (a list) answers 200 with id somewhere in its body. */
static bool listed(fx_t *fx, const who_t *who, const char *path, const char *id) {
    tsr_httpd_response_t r;
    ck_assert_uint_eq(call(fx, who, "GET", path, NULL, &r), 200);
    bool found = strstr(r.body, id) != NULL;
    tsr_httpd_response_cleanup(&r);
    return found;
}

START_TEST(test_group_assignments_grant_their_roles) {
    fx_t fx;
    fx_init(&fx);
    char path[192];
    char *space = space_create(&fx, &A_ADMIN, "Group space", "shared");
    char *app = app_create(&fx, &A_ADMIN, "group app", space);
    char *a_cons = assign_group(&fx, &A_ADMIN, space, G_CONS, "consumer");
    char *a_prod = assign_group(&fx, &A_ADMIN, space, G_PROD, "producer");
    free(assign(&fx, &A_ADMIN, space, "u2", "consumer"));
    /* B's own space, with B's group: nothing of it reaches tenant A's callers. */
    char *space_b = space_create(&fx, &B_ADMIN, "B space", "shared");
    char *app_b = app_create(&fx, &B_ADMIN, "b app", space_b);
    free(assign_group(&fx, &B_ADMIN, space_b, G_B, "consumer"));
    const unsigned R = TSR_SPACES_READ, E = TSR_SPACES_EDIT;
    static const struct {
        const char *what;
        who_t who;
        unsigned space_want, app_want; /* actions; ~0u: none, the space and app answer 404 */
    } cases[] = {
        {"consumer group, no own assignment",
         {"ta", "g1", "User", G_CONS},
         R,
         R | TSR_SPACES_EXPORT},
        {"producer group",
         {"ta", "g2", "User", G_PROD},
         R | E,
         R | E | TSR_SPACES_RELOAD | TSR_SPACES_EXPORT | TSR_SPACES_PUBLISH | TSR_SPACES_DELETE},
        {"both groups unite",
         {"ta", "g3", "User", G_CONS "," G_PROD},
         R | E,
         R | E | TSR_SPACES_RELOAD | TSR_SPACES_EXPORT | TSR_SPACES_PUBLISH | TSR_SPACES_DELETE},
        {"own consumer + producer group",
         {"ta", "u2", "User", G_PROD},
         R | E,
         R | E | TSR_SPACES_RELOAD | TSR_SPACES_EXPORT | TSR_SPACES_PUBLISH | TSR_SPACES_DELETE},
        {"junk around a group id is skipped",
         {"ta", "g4", "User", " x, ," G_CONS ",zz"},
         R,
         R | TSR_SPACES_EXPORT},
        {"a group assigned nowhere", {"ta", "g5", "User", G_NONE}, ~0u, ~0u},
        {"no groups header", {"ta", "g6", "User", NULL}, ~0u, ~0u},
        {"another tenant's group id", {"ta", "g7", "User", G_B}, ~0u, ~0u},
        {"A's group id from tenant B", {"tb", "g8", "User", G_CONS "," G_PROD}, ~0u, ~0u},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const who_t *w = &cases[i].who;
        bool sees = cases[i].space_want != ~0u;
        /* /internal/v1/access: an object of the caller's tenant it may not touch has no
         * actions; another tenant's is 404 (-1). */
        int none = strcmp(w->tenant, "ta") == 0 ? 0 : -1;
        int want_space = sees ? (int)cases[i].space_want : none;
        int want_app = sees ? (int)cases[i].app_want : none;
        ck_assert_msg(access_of(&fx, w, "space", space) == want_space, "%s: space actions %d",
                      cases[i].what, access_of(&fx, w, "space", space));
        ck_assert_msg(access_of(&fx, w, "app", app) == want_app, "%s: app actions %d",
                      cases[i].what, access_of(&fx, w, "app", app));
        ck_assert_msg(listed(&fx, w, "/api/v1/spaces", space) == sees, "%s: spaces list",
                      cases[i].what);
        ck_assert_msg(listed(&fx, w, "/api/v1/items?resourceType=app", app) == sees,
                      "%s: items list", cases[i].what);
        snprintf(path, sizeof path, "/api/v1/spaces/%s", space);
        ck_assert_uint_eq(st(&fx, w, "GET", path, NULL), sees ? 200u : 404u);
        snprintf(path, sizeof path, "/api/v1/apps/%s", app);
        ck_assert_uint_eq(st(&fx, w, "GET", path, NULL), sees ? 200u : 404u);
        /* Editing needs edit: 200 for producers, 403 for consumers, 404 for strangers. */
        ck_assert_msg(st(&fx, w, "PUT", path, "{\"attributes\":{\"name\":\"group app\"}}") ==
                          (!sees                     ? 404u
                           : (cases[i].app_want & E) ? 200u
                                                     : 403u),
                      "%s: app PUT", cases[i].what);
        /* Creating content in the space needs space edit. */
        char body[256];
        snprintf(body, sizeof body, "{\"attributes\":{\"name\":\"by %s\",\"spaceId\":\"%s\"}}",
                 w->user, space);
        ck_assert_msg(st(&fx, w, "POST", "/api/v1/apps", body) == (!sees ? 404u
                                                                   : (cases[i].space_want & E)
                                                                       ? 200u
                                                                       : 403u),
                      "%s: app create", cases[i].what);
        /* B's space and app are 404 for every tenant A caller, whatever groups it carries. */
        if (strcmp(w->tenant, "ta") == 0) {
            ck_assert_int_eq(access_of(&fx, w, "space", space_b), -1);
            ck_assert_int_eq(access_of(&fx, w, "app", app_b), -1);
        }
    }
    /* The space view's roles are the effective ones. */
    const who_t both = {"ta", "g3", "User", G_CONS "," G_PROD};
    tsr_httpd_response_t r;
    snprintf(path, sizeof path, "/api/v1/spaces/%s", space);
    ck_assert_uint_eq(call(&fx, &both, "GET", path, NULL, &r), 200);
    json_t *j = body_json(&r);
    json_t *roles = json_object_get(json_object_get(j, "meta"), "roles");
    ck_assert_uint_eq(json_array_size(roles), 2);
    ck_assert_str_eq(json_string_value(json_array_get(roles, 0)), "consumer");
    ck_assert_str_eq(json_string_value(json_array_get(roles, 1)), "producer");
    json_decref(j);
    tsr_httpd_response_cleanup(&r);
    /* Removing a group's assignment removes what it granted, at once. */
    const who_t cons = {"ta", "g1", "User", G_CONS}, prod = {"ta", "g2", "User", G_PROD};
    snprintf(path, sizeof path, "/api/v1/spaces/%s/assignments/%s", space, a_cons);
    ck_assert_uint_eq(st(&fx, &A_ADMIN, "DELETE", path, NULL), 204);
    ck_assert_int_eq(access_of(&fx, &cons, "app", app), 0);
    ck_assert(!listed(&fx, &cons, "/api/v1/spaces", space));
    ck_assert(!listed(&fx, &cons, "/api/v1/items", app));
    snprintf(path, sizeof path, "/api/v1/apps/%s", app);
    ck_assert_uint_eq(st(&fx, &cons, "GET", path, NULL), 404u);
    ck_assert_int_eq(access_of(&fx, &both, "space", space), (int)(R | E));
    /* Changing a group's roles changes its members' actions. */
    snprintf(path, sizeof path, "/api/v1/spaces/%s/assignments/%s", space, a_prod);
    ck_assert_uint_eq(st(&fx, &A_ADMIN, "PUT", path, "{\"roles\":[\"consumer\"]}"), 200);
    ck_assert_int_eq(access_of(&fx, &prod, "app", app), (int)(R | TSR_SPACES_EXPORT));
    ck_assert_uint_eq(st(&fx, &A_ADMIN, "DELETE", path, NULL), 204);
    ck_assert_int_eq(access_of(&fx, &prod, "space", space), 0);
    free(a_cons);
    free(a_prod);
    free(space);
    free(app);
    free(space_b);
    free(app_b);
    fx_cleanup(&fx);
}
END_TEST

/* A caller in TSR_SP__MAX_GROUPS groups, the last of them assigned: listing and access find it;
 * ids past the cap are ignored. Also measures the cost of a listing with that many groups. */
START_TEST(test_group_cap_and_many_groups) {
    fx_t fx;
    fx_init(&fx);
    char *space = space_create(&fx, &A_ADMIN, "Many", "shared");
    char *app = app_create(&fx, &A_ADMIN, "many app", space);
    char hdr[101 * 25 + 1] = "";
    size_t off = 0;
    for (int i = 0; i < 101; i++) {
        off += (size_t)snprintf(hdr + off, sizeof hdr - off, "%s%024x", i > 0 ? "," : "", i + 1);
    }
    char g100[25], g101[25];
    snprintf(g100, sizeof g100, "%024x", 100);
    snprintf(g101, sizeof g101, "%024x", 101);
    char *a100 = assign_group(&fx, &A_ADMIN, space, g100, "consumer");
    const who_t many = {"ta", "m1", "User", hdr};
    ck_assert_int_eq(access_of(&fx, &many, "space", space), (int)TSR_SPACES_READ);
    uint64_t t0 = tsr_mono_ns();
    ck_assert(listed(&fx, &many, "/api/v1/spaces", space));
    uint64_t t1 = tsr_mono_ns();
    fprintf(stderr, "spaces list with 101 groups in X-Tsr-Groups: %.2f ms\n",
            (double)(t1 - t0) / 1e6);
    ck_assert(listed(&fx, &many, "/api/v1/items", app));
    /* The 101st id is past the cap: its assignment grants nothing. */
    char path[192];
    snprintf(path, sizeof path, "/api/v1/spaces/%s/assignments/%s", space, a100);
    ck_assert_uint_eq(st(&fx, &A_ADMIN, "DELETE", path, NULL), 204);
    free(assign_group(&fx, &A_ADMIN, space, g101, "consumer"));
    ck_assert_int_eq(access_of(&fx, &many, "space", space), 0);
    ck_assert(!listed(&fx, &many, "/api/v1/spaces", space));
    free(a100);
    free(space);
    free(app);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_space_delete_with_content_needs_forcing_admin) {
    fx_t fx;
    fx_init(&fx);
    char path[160], app[128];
    char *id = space_create(&fx, &A_U1, "Full", "shared");
    char *a = app_create(&fx, &A_U1, "App", id);
    char *f = datafile_create(&fx, &A_U1, "data.csv", id);
    snprintf(path, sizeof path, "/api/v1/spaces/%s", id);
    ck_assert_uint_eq(st(&fx, &A_U1, "DELETE", path, NULL), 412);
    snprintf(path, sizeof path, "/api/v1/spaces/%s?force=true", id);
    ck_assert_uint_eq(st(&fx, &A_U1, "DELETE", path, NULL), 403);
    ck_assert_uint_eq(st(&fx, &A_ADMIN, "DELETE", path, NULL), 204);
    snprintf(app, sizeof app, "/api/v1/apps/%s", a);
    ck_assert_uint_eq(st(&fx, &A_ADMIN, "GET", app, NULL), 404);
    snprintf(app, sizeof app, "/api/v1/data-files/%s", f);
    ck_assert_uint_eq(st(&fx, &A_ADMIN, "GET", app, NULL), 404);
    free(id);
    free(a);
    free(f);
    fx_cleanup(&fx);
}
END_TEST

/* ---- the role table ------------------------------------------------------------------------- */

static unsigned parse_actions(const char *cell) {
    unsigned bits = 0;
    for (unsigned b = 0; b < TSR_SPACES_N_ACTIONS; b++) {
        const char *name = tsr_spaces_action_name(1u << b);
        const char *p = cell;
        while ((p = strstr(p, name)) != NULL) {
            size_t n = strlen(name);
            bool start = p == cell || p[-1] == ' ' || p[-1] == ',';
            bool end = p[n] == '\0' || p[n] == ',' || p[n] == ' ';
            if (start && end) {
                bits |= 1u << b;
            }
            p += n;
        }
    }
    return bits;
}

START_TEST(test_role_table_readme_matches_code) {
    FILE *f = fopen(TSR_SOURCE_DIR "/pkg/spaces/README.md", "r");
    ck_assert_ptr_nonnull(f);
    char line[512];
    bool in = false;
    size_t rows = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strstr(line, "role-table:begin") != NULL) {
            in = true;
            continue;
        }
        if (strstr(line, "role-table:end") != NULL) {
            break;
        }
        if (!in || line[0] != '|' || strncmp(line, "| role", 6) == 0 || line[1] == '-') {
            continue;
        }
        char *cells[5] = {NULL};
        size_t nc = 0;
        char *save = NULL;
        for (char *t = strtok_r(line + 1, "|", &save); t != NULL && nc < 5;
             t = strtok_r(NULL, "|", &save)) {
            while (*t == ' ') {
                t++;
            }
            char *e = t + strlen(t);
            while (e > t && (e[-1] == ' ' || e[-1] == '\n')) {
                *--e = '\0';
            }
            cells[nc++] = t;
        }
        ck_assert_uint_ge(nc, 4);
        const tsr_spaces_res_t res[3] = {TSR_SPACES_RES_SPACE, TSR_SPACES_RES_APP,
                                         TSR_SPACES_RES_DATAFILE};
        for (size_t k = 0; k < 3; k++) {
            ck_assert_msg(parse_actions(cells[k + 1]) == tsr_spaces_role_actions(cells[0], res[k]),
                          "README row %s column %zu differs from the code", cells[0], k + 1);
        }
        rows++;
    }
    fclose(f);
    size_t nroles = 0;
    for (const char *const *r = tsr_spaces_roles(); *r != NULL; r++) {
        nroles++;
    }
    ck_assert_uint_eq(rows, nroles);
    ck_assert_uint_eq(nroles, 8);
    ck_assert_uint_eq(tsr_spaces_role_actions("owner", TSR_SPACES_RES_APP), 0);
}
END_TEST

/* A space type in which role may be assigned. */
static const char *type_for(const char *role) {
    static const char *const TYPES[] = {"shared", "managed", "data"};
    for (size_t i = 0; i < 3; i++) {
        if (tsr_spaces_role_assignable(TYPES[i], role)) {
            return TYPES[i];
        }
    }
    return NULL;
}

/* Every role × action: the access decision equals the table for the space, an app and a data
 * file in it; and the HTTP operations enforce read, edit, export (copy) and delete. */
START_TEST(test_role_action_matrix_enforced) {
    fx_t fx;
    fx_init(&fx);
    int k = 0;
    for (const char *const *role = tsr_spaces_roles(); *role != NULL; role++, k++) {
        char name[64], path[192];
        const char *type = type_for(*role);
        ck_assert_ptr_nonnull(type);
        snprintf(name, sizeof name, "space for %s", *role);
        char *space = space_create(&fx, &A_ADMIN, name, type);
        free(assign(&fx, &A_ADMIN, space, "u1", *role));
        char *app = app_create(&fx, &A_ADMIN, "app", space);
        char *app2 = app_create(&fx, &A_ADMIN, "app to delete", space);
        char *file = datafile_create(&fx, &A_ADMIN, "f.csv", space);
        unsigned want_space = tsr_spaces_role_actions(*role, TSR_SPACES_RES_SPACE);
        unsigned want_app = tsr_spaces_role_actions(*role, TSR_SPACES_RES_APP);
        unsigned want_file = tsr_spaces_role_actions(*role, TSR_SPACES_RES_DATAFILE);
        for (unsigned b = 0; b < TSR_SPACES_N_ACTIONS; b++) {
            unsigned bit = 1u << b;
            int got_space = access_of(&fx, &A_U1, "space", space);
            int got_app = access_of(&fx, &A_U1, "app", app);
            int got_file = access_of(&fx, &A_U1, "datafile", file);
            ck_assert_msg(((unsigned)got_space & bit) == (want_space & bit),
                          "role %s, action %s on the space", *role, tsr_spaces_action_name(bit));
            ck_assert_msg(((unsigned)got_app & bit) == (want_app & bit),
                          "role %s, action %s on an app", *role, tsr_spaces_action_name(bit));
            ck_assert_msg(((unsigned)got_file & bit) == (want_file & bit),
                          "role %s, action %s on a data file", *role, tsr_spaces_action_name(bit));
        }
        /* Owner and TenantAdmin: everything; someone without a role: nothing. */
        ck_assert_int_eq(access_of(&fx, &A_ADMIN, "app", app), TSR_SPACES_ALL);
        ck_assert_int_eq(access_of(&fx, &A_U2, "app", app), 0);
        ck_assert_int_eq(access_of(&fx, &B_ADMIN, "app", app), -1);
        /* Enforcement through the operations. */
        snprintf(path, sizeof path, "/api/v1/apps/%s", app);
        ck_assert_uint_eq(st(&fx, &A_U1, "GET", path, NULL),
                          (want_app & TSR_SPACES_READ) ? 200u : 404u);
        ck_assert_uint_eq(st(&fx, &A_U1, "PUT", path, "{\"attributes\":{\"name\":\"renamed\"}}"),
                          (want_app & TSR_SPACES_EDIT)   ? 200u
                          : (want_app & TSR_SPACES_READ) ? 403u
                                                         : 404u);
        snprintf(path, sizeof path, "/api/v1/apps/%s/copy", app);
        ck_assert_uint_eq(st(&fx, &A_U1, "POST", path, "{\"attributes\":{\"name\":\"mine\"}}"),
                          (want_app & TSR_SPACES_EXPORT) ? 200u
                          : (want_app & TSR_SPACES_READ) ? 403u
                                                         : 404u);
        snprintf(path, sizeof path, "/api/v1/data-files/%s/content", file);
        ck_assert_uint_eq(st(&fx, &A_U1, "GET", path, NULL),
                          (want_file & TSR_SPACES_READ) ? 200u : 404u);
        snprintf(path, sizeof path, "/api/v1/spaces/%s/assignments", space);
        snprintf(name, sizeof name,
                 "{\"type\":\"user\",\"assigneeId\":\"x%d\",\"roles\":[\"consumer\"]}", k);
        ck_assert_uint_eq(st(&fx, &A_U1, "POST", path, name),
                          (want_space & TSR_SPACES_MANAGE) ? 201u : 403u);
        snprintf(path, sizeof path, "/api/v1/apps/%s", app2);
        ck_assert_uint_eq(st(&fx, &A_U1, "DELETE", path, NULL),
                          (want_app & TSR_SPACES_DELETE) ? 200u
                          : (want_app & TSR_SPACES_READ) ? 403u
                                                         : 404u);
        /* Creating content in the space needs space edit (managed: publish). */
        char body[256];
        snprintf(body, sizeof body, "{\"attributes\":{\"name\":\"new\",\"spaceId\":\"%s\"}}",
                 space);
        unsigned create_ok = (want_space & TSR_SPACES_EDIT) ||
                             (strcmp(type, "managed") == 0 && (want_space & TSR_SPACES_PUBLISH));
        ck_assert_uint_eq(st(&fx, &A_U1, "POST", "/api/v1/apps", body), create_ok ? 200u : 403u);
        free(space);
        free(app);
        free(app2);
        free(file);
    }
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_published_app_is_locked_and_personal_is_private) {
    fx_t fx;
    fx_init(&fx);
    tsr_httpd_response_t r;
    char path[160], body[160];
    char *managed = space_create(&fx, &A_ADMIN, "Prod", "managed");
    char *shared = space_create(&fx, &A_U1, "Dev", "shared");
    char *app = app_create(&fx, &A_U1, "Report", shared);
    /* Publishing needs publish on the target space. */
    snprintf(path, sizeof path, "/api/v1/apps/%s/publish", app);
    snprintf(body, sizeof body, "{\"spaceId\":\"%s\"}", managed);
    ck_assert_uint_eq(st(&fx, &A_U1, "POST", path, body), 404);
    free(assign(&fx, &A_ADMIN, managed, "u1", "publisher"));
    ck_assert_uint_eq(call(&fx, &A_U1, "POST", path, body, &r), 200);
    json_t *j = body_json(&r);
    json_t *at = json_object_get(j, "attributes");
    ck_assert(json_is_true(json_object_get(at, "published")));
    ck_assert_str_eq(json_string_value(json_object_get(at, "originAppId")), app);
    char *pub = strdup(json_string_value(json_object_get(at, "id")));
    json_decref(j);
    tsr_httpd_response_cleanup(&r);
    /* Publishing into a shared space is refused. */
    snprintf(body, sizeof body, "{\"spaceId\":\"%s\"}", shared);
    ck_assert_uint_eq(st(&fx, &A_U1, "POST", path, body), 400);
    /* Republish refreshes the published copy from its origin; another app is refused. */
    snprintf(path, sizeof path, "/api/v1/apps/%s/publish", app);
    snprintf(body, sizeof body, "{\"targetId\":\"%s\",\"attributes\":{\"name\":\"R2\"}}", pub);
    ck_assert_uint_eq(call(&fx, &A_U1, "PUT", path, body, &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"name\":\"R2\""));
    tsr_httpd_response_cleanup(&r);
    char *other = app_create(&fx, &A_U1, "Other", shared);
    snprintf(path, sizeof path, "/api/v1/apps/%s/publish", other);
    ck_assert_uint_eq(st(&fx, &A_U1, "PUT", path, body), 409);
    free(other);
    /* Locked: not even a TenantAdmin edits a published app. */
    snprintf(path, sizeof path, "/api/v1/apps/%s", pub);
    ck_assert_uint_eq(st(&fx, &A_ADMIN, "PUT", path, "{\"attributes\":{\"name\":\"x\"}}"), 403);
    ck_assert_int_eq(access_of(&fx, &A_ADMIN, "app", pub), TSR_SPACES_ALL & ~TSR_SPACES_EDIT);
    /* Personal apps: only the owner and a TenantAdmin. */
    char *mine = app_create(&fx, &A_U2, "Private", NULL);
    snprintf(path, sizeof path, "/api/v1/apps/%s", mine);
    ck_assert_uint_eq(st(&fx, &A_U1, "GET", path, NULL), 404);
    ck_assert_uint_eq(st(&fx, &A_U2, "GET", path, NULL), 200);
    ck_assert_uint_eq(st(&fx, &A_ADMIN, "GET", path, NULL), 200);
    ck_assert_int_eq(access_of(&fx, &A_U1, "app", mine), 0);
    free(managed);
    free(shared);
    free(app);
    free(pub);
    free(mine);
    fx_cleanup(&fx);
}
END_TEST

/* ---- apps and items ------------------------------------------------------------------------- */

START_TEST(test_app_create_copy_move_delete) {
    fx_t fx;
    fx_init(&fx);
    tsr_httpd_response_t r;
    char path[160], body[160];
    char *space = space_create(&fx, &A_U1, "Team", "shared");
    ck_assert_uint_eq(call(&fx, &A_U1, "POST", "/api/v1/apps",
                           "{\"attributes\":{\"name\":\"Sales\",\"description\":\"d\"}}", &r),
                      200);
    json_t *j = body_json(&r);
    json_t *at = json_object_get(j, "attributes");
    char *app = strdup(json_string_value(json_object_get(at, "id")));
    ck_assert_str_eq(json_string_value(json_object_get(at, "name")), "Sales");
    ck_assert_str_eq(json_string_value(json_object_get(at, "ownerId")), "u1");
    ck_assert_str_eq(json_string_value(json_object_get(at, "spaceId")), "");
    ck_assert_ptr_nonnull(json_object_get(j, "privileges"));
    json_decref(j);
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(st(&fx, &A_U1, "POST", "/api/v1/apps", "{\"attributes\":{}}"), 400);
    ck_assert_uint_eq(
        st(&fx, &A_U1, "POST", "/api/v1/apps", "{\"attributes\":{\"name\":\"x\",\"usage\":\"?\"}}"),
        400);
    ck_assert_uint_eq(st(&fx, &A_U1, "POST", "/api/v1/apps", "not json"), 400);
    ck_assert_uint_eq(st(&fx, &A_U1, "GET", "/api/v1/apps/privileges", NULL), 200);
    /* Copy into the space, move the original there, back to personal, delete. */
    snprintf(path, sizeof path, "/api/v1/apps/%s/copy", app);
    snprintf(body, sizeof body, "{\"attributes\":{\"spaceId\":\"%s\"}}", space);
    char *copy = call_get(&fx, &A_U1, "POST", path, body, 200, "attributes", "id");
    ck_assert_str_ne(copy, app);
    snprintf(path, sizeof path, "/api/v1/apps/%s/space", app);
    snprintf(body, sizeof body, "{\"spaceId\":\"%s\"}", space);
    char *moved = call_get(&fx, &A_U1, "PUT", path, body, 200, "attributes", "spaceId");
    ck_assert_str_eq(moved, space);
    free(moved);
    ck_assert_uint_eq(
        call(&fx, &A_U1, "GET", "/api/v1/items?resourceType=app&spaceId=personal", NULL, &r), 200);
    j = body_json(&r);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "data")), 0);
    json_decref(j);
    tsr_httpd_response_cleanup(&r);
    moved = call_get(&fx, &A_U1, "DELETE", path, NULL, 200, "attributes", "spaceId");
    ck_assert_str_eq(moved, "");
    free(moved);
    /* Item view of the copy. */
    snprintf(path, sizeof path, "/api/v1/items/%s", copy);
    ck_assert_uint_eq(call(&fx, &A_U1, "GET", path, NULL, &r), 200);
    j = body_json(&r);
    ck_assert_str_eq(json_string_value(json_object_get(j, "resourceType")), "app");
    ck_assert_str_eq(json_string_value(json_object_get(j, "resourceId")), copy);
    ck_assert_str_eq(json_string_value(json_object_get(j, "spaceId")), space);
    json_decref(j);
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(st(&fx, &A_U1, "DELETE", path, NULL), 204);
    ck_assert_uint_eq(st(&fx, &A_U1, "GET", path, NULL), 404);
    snprintf(path, sizeof path, "/api/v1/apps/%s", app);
    ck_assert_uint_eq(call(&fx, &A_U1, "DELETE", path, NULL, &r), 200);
    ck_assert_uint_eq(r.body_len, 0);
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(st(&fx, &A_U1, "DELETE", path, NULL), 404);
    free(space);
    free(app);
    free(copy);
    fx_cleanup(&fx);
}
END_TEST

/* ---- copy and publish carry the content (a fake engine) -------------------------------------- */

static pthread_mutex_t fe_mu = PTHREAD_MUTEX_INITIALIZER;
static int fe_status = 201; /* what the fake engine answers */
static int fe_calls;
static json_t *fe_last; /* {appId, body, token, tenant, user, roles, authType} of the last call */

static tsr_err_t fake_engine_copy(tsr_req_t *req, void *ud, tsr_error_t *err) {
    (void)ud;
    (void)err;
    size_t len = 0;
    const char *b = tsr_req_body(req, &len);
    json_t *body = json_loadb(b != NULL ? b : "", len, 0, NULL);
    const char *tok = tsr_req_header(req, "X-Tsr-Token");
    const char *ten = tsr_req_header(req, "X-Tsr-Tenant-Id");
    const char *usr = tsr_req_header(req, "X-Tsr-User-Id");
    const char *rol = tsr_req_header(req, "X-Tsr-Roles");
    const char *aty = tsr_req_header(req, "X-Tsr-Auth-Type");
    pthread_mutex_lock(&fe_mu);
    fe_calls++;
    json_decref(fe_last);
    fe_last = json_pack("{ss so* ss ss ss ss ss}", "appId", tsr_req_param(req, "appId"), "body",
                        body, "token", tok != NULL ? tok : "", "tenant", ten != NULL ? ten : "",
                        "user", usr != NULL ? usr : "", "roles", rol != NULL ? rol : "", "authType",
                        aty != NULL ? aty : "");
    int st = fe_status;
    pthread_mutex_unlock(&fe_mu);
    if (st == 201) {
        tsr_req_reply_json(req, 201, json_pack("{sb}", "hasData", 1));
    } else {
        tsr_req_reply_json(req, st, json_pack("{s[{ss}]}", "errors", "detail", "engine trouble"));
    }
    return TSR_OK;
}

static const char *fe_str(const char *k1, const char *k2) {
    json_t *v = json_object_get(fe_last, k1);
    if (k2 != NULL) {
        v = json_object_get(v, k2);
    }
    return json_string_value(v);
}

/* POST path as u1 of ta with a platform token; the answer's attributes.id (heap) or NULL. */
static char *post_tok(fx_t *fx, const char *path, const char *body, unsigned want) {
    const char *h[] = {"Host",        "spaces.test",      "X-Tsr-Tenant-Id",
                       "ta",          "X-Tsr-User-Id",    "u1",
                       "X-Tsr-Roles", "TenantAdmin,User", "X-Tsr-Token",
                       "tok-u1",      "Content-Type",     "application/json",
                       NULL};
    tsr_httpd_response_t r = {0};
    tsr_httpd_inject(fx->h, "POST", path, h, body, strlen(body), &r);
    ck_assert_msg(r.status == want, "POST %s: %u, want %u: %s", path, r.status, want, r.body);
    char *id = NULL;
    if (want == 200) {
        json_t *j = body_json(&r);
        id = strdup(json_string_value(json_object_get(json_object_get(j, "attributes"), "id")));
        json_decref(j);
    }
    tsr_httpd_response_cleanup(&r);
    return id;
}

static size_t app_count(fx_t *fx) {
    tsr_httpd_response_t r;
    ck_assert_uint_eq(
        call(fx, &A_ADMIN, "GET", "/api/v1/items?resourceType=app&limit=100", NULL, &r), 200);
    json_t *j = body_json(&r);
    size_t n = json_array_size(json_object_get(j, "data"));
    json_decref(j);
    tsr_httpd_response_cleanup(&r);
    return n;
}

START_TEST(test_copy_and_publish_have_the_engine_copy_the_content) {
    tsr_httpd_t *eng = NULL;
    tsr_error_t err = {0};
    tsr_httpd_opts_t eo = {
        .service = "engine-fake", .bind = "127.0.0.1", .threads = 2, .max_body = 4096};
    ck_assert_int_eq(tsr_httpd_create(&eo, &eng, &err), TSR_OK);
    ck_assert_int_eq(tsr_httpd_route(eng, "POST", "/internal/v1/apps/{appId}/copy",
                                     fake_engine_copy, NULL, &err),
                     TSR_OK);
    ck_assert_int_eq(tsr_httpd_start(eng, &err), TSR_OK);
    char url[64], path[160], body[200];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)tsr_httpd_port(eng));
    fx_t fx;
    fx_engine_url = url;
    fx_init(&fx);
    fx_engine_url = NULL;
    fe_status = 201;
    fe_calls = 0;
    char *app = app_create(&fx, &A_U1, "Sales", NULL);

    /* A copy: the engine is asked first, on the caller's behalf, for the new id. */
    snprintf(path, sizeof path, "/api/v1/apps/%s/copy", app);
    char *copy = post_tok(&fx, path, "{\"attributes\":{\"name\":\"Sales copy\"}}", 200);
    ck_assert_int_eq(fe_calls, 1);
    ck_assert_str_eq(fe_str("appId", NULL), app);
    ck_assert_str_eq(fe_str("body", "targetId"), copy);
    ck_assert_str_eq(fe_str("body", "name"), "Sales copy");
    ck_assert(json_is_false(json_object_get(json_object_get(fe_last, "body"), "publish")));
    ck_assert_str_eq(fe_str("token", NULL), "tok-u1");
    ck_assert_str_eq(fe_str("tenant", NULL), "ta");
    ck_assert_str_eq(fe_str("user", NULL), "u1");
    /* No token source (trust-headers development): the claim only such an engine believes. */
    ck_assert_str_eq(fe_str("authType", NULL), "service");

    /* The engine has no content for the source (never opened): the copy starts empty. */
    fe_status = 404;
    free(post_tok(&fx, path, "{}", 200));

    /* The engine fails or is down: an error, and no record (nor its event). */
    size_t n = app_count(&fx);
    ck_assert_uint_eq(n, 3);
    fe_status = 500;
    ck_assert_ptr_null(post_tok(&fx, path, "{}", 503));
    ck_assert_uint_eq(app_count(&fx), n);

    /* Another tenant's source: 404, the engine is not asked. */
    int calls = fe_calls;
    ck_assert_uint_eq(st(&fx, &B_ADMIN, "POST", path, "{}"), 404);
    ck_assert_int_eq(fe_calls, calls);

    /* Publish to a managed space: the engine copies with publish (public bookmarks only). */
    char *managed = space_create(&fx, &A_ADMIN, "Managed", "managed");
    snprintf(path, sizeof path, "/api/v1/apps/%s/publish", app);
    snprintf(body, sizeof body, "{\"spaceId\":\"%s\"}", managed);
    /* u1 (no TenantAdmin) does not see the managed space: refused, the engine not asked. */
    ck_assert_uint_eq(st(&fx, &A_U1, "POST", path, body), 404);
    ck_assert_int_eq(fe_calls, calls);
    ck_assert_ptr_null(post_tok(&fx, path, body, 503));
    ck_assert_uint_eq(app_count(&fx), n);
    fe_status = 201;
    char *pub = post_tok(&fx, path, body, 200);
    ck_assert_str_eq(fe_str("body", "targetId"), pub);
    ck_assert_str_eq(fe_str("appId", NULL), app);
    ck_assert(json_is_true(json_object_get(json_object_get(fe_last, "body"), "publish")));
    ck_assert_uint_eq(app_count(&fx), n + 1);

    tsr_httpd_destroy(eng);
    snprintf(path, sizeof path, "/api/v1/apps/%s/copy", app);
    ck_assert_ptr_null(post_tok(&fx, path, "{}", 503));
    ck_assert_uint_eq(app_count(&fx), n + 1);
    json_decref(fe_last);
    fe_last = NULL;
    free(pub);
    free(managed);
    free(copy);
    free(app);
    fx_cleanup(&fx);
}
END_TEST

/* A token source standing in for identity's service tokens: "svc:<tenant>:<user>:<roles>", or
 * TSR_EUNAVAILABLE while ft_fail. */
static bool ft_fail;
static int ft_calls;

static tsr_err_t fake_tokens(void *ud, const char *tenant, const char *user, const char *roles,
                             const char *groups, char **jwt, tsr_error_t *err) {
    (void)ud;
    (void)groups;
    pthread_mutex_lock(&fe_mu);
    ft_calls++;
    bool fail = ft_fail;
    pthread_mutex_unlock(&fe_mu);
    if (fail) {
        return tsr_error_set(err, TSR_EUNAVAILABLE, "identity is down");
    }
    char buf[256];
    snprintf(buf, sizeof buf, "svc:%s:%s:%s", tenant, user, roles != NULL ? roles : "");
    *jwt = strdup(buf);
    return TSR_OK;
}

START_TEST(test_copy_calls_the_engine_with_a_service_token) {
    tsr_httpd_t *eng = NULL;
    tsr_error_t err = {0};
    tsr_httpd_opts_t eo = {
        .service = "engine-fake", .bind = "127.0.0.1", .threads = 2, .max_body = 4096};
    ck_assert_int_eq(tsr_httpd_create(&eo, &eng, &err), TSR_OK);
    ck_assert_int_eq(tsr_httpd_route(eng, "POST", "/internal/v1/apps/{appId}/copy",
                                     fake_engine_copy, NULL, &err),
                     TSR_OK);
    ck_assert_int_eq(tsr_httpd_start(eng, &err), TSR_OK);
    char url[64], path[160];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)tsr_httpd_port(eng));
    fx_t fx;
    fx_engine_url = url;
    fx_token_fn = fake_tokens;
    fx_init(&fx);
    fx_engine_url = NULL;
    fx_token_fn = NULL;
    fe_status = 201;
    fe_calls = 0;
    ft_calls = 0;
    ft_fail = false;
    char *app = app_create(&fx, &A_U1, "Sales", NULL);
    snprintf(path, sizeof path, "/api/v1/apps/%s/copy", app);

    /* The engine gets a service token for (tenant, caller), no roles; not the caller's token. */
    char *copy = post_tok(&fx, path, "{}", 200);
    ck_assert_int_eq(ft_calls, 1);
    ck_assert_int_eq(fe_calls, 1);
    ck_assert_str_eq(fe_str("token", NULL), "svc:ta:u1:");
    ck_assert_str_eq(fe_str("tenant", NULL), "ta");
    ck_assert_str_eq(fe_str("user", NULL), "u1");
    ck_assert_str_eq(fe_str("roles", NULL), "");

    /* No token: 503, the engine not asked, no record. */
    size_t n = app_count(&fx);
    ft_fail = true;
    ck_assert_ptr_null(post_tok(&fx, path, "{}", 503));
    ck_assert_int_eq(fe_calls, 1);
    ck_assert_uint_eq(app_count(&fx), n);

    /* The engine refuses the token (403): 503, no record. */
    ft_fail = false;
    fe_status = 403;
    ck_assert_ptr_null(post_tok(&fx, path, "{}", 503));
    ck_assert_int_eq(fe_calls, 2);
    ck_assert_uint_eq(app_count(&fx), n);

    tsr_httpd_destroy(eng);
    json_decref(fe_last);
    fe_last = NULL;
    fe_status = 201;
    free(copy);
    free(app);
    fx_cleanup(&fx);
}
END_TEST

START_TEST(test_items_filters_sort_and_cursor_paging) {
    fx_t fx;
    fx_init(&fx);
    tsr_httpd_response_t r;
    char *space = space_create(&fx, &A_U1, "Catalog", "shared");
    for (int i = 0; i < 7; i++) {
        char name[32];
        snprintf(name, sizeof name, "Budget %d", i);
        free(app_create(&fx, &A_U1, name, i % 2 == 0 ? space : NULL));
    }
    free(app_create(&fx, &A_U1, "Other", space));
    free(app_create(&fx, &A_U2, "Not visible to u1", NULL));
    free(datafile_create(&fx, &A_U1, "budget.csv", space));
    /* Apps u1 sees: 8; with a file: 9. */
    char path[2048] = "/api/v1/items?resourceType=app&limit=3";
    size_t seen = 0;
    for (;;) {
        ck_assert_uint_eq(call(&fx, &A_U1, "GET", path, NULL, &r), 200);
        json_t *j = body_json(&r);
        seen += json_array_size(json_object_get(j, "data"));
        json_t *next = json_object_get(json_object_get(j, "links"), "next");
        ck_assert_ptr_nonnull(
            strstr(json_string_value(json_object_get(
                       json_object_get(json_object_get(j, "links"), "self"), "href")),
                   "http://spaces.test/api/v1/items?"));
        if (next == NULL) {
            json_decref(j);
            tsr_httpd_response_cleanup(&r);
            break;
        }
        snprintf(path, sizeof path, "%s",
                 path_of(json_string_value(json_object_get(next, "href"))));
        ck_assert_ptr_nonnull(strstr(path, "resourceType=app"));
        json_decref(j);
        tsr_httpd_response_cleanup(&r);
    }
    ck_assert_uint_eq(seen, 8);
    struct {
        const char *q;
        size_t want;
    } cases[] = {
        {"/api/v1/items?limit=100", 9},
        {"/api/v1/items?resourceType=app,datafile&limit=100", 9},
        {"/api/v1/items?resourceType=datafile", 1},
        {"/api/v1/items?name=budget&limit=100", 8},
        {"/api/v1/items?query=BUDGET%203", 1},
        {"/api/v1/items?spaceId=personal&limit=100", 3},
        {"/api/v1/items?spaceType=shared&limit=100", 6},
        {"/api/v1/items?ownerId=u2", 0},
        {"/api/v1/items?notOwnerId=u1", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_uint_eq(call(&fx, &A_U1, "GET", cases[i].q, NULL, &r), 200);
        json_t *j = body_json(&r);
        ck_assert_msg(json_array_size(json_object_get(j, "data")) == cases[i].want,
                      "%s: %zu items, want %zu", cases[i].q,
                      json_array_size(json_object_get(j, "data")), cases[i].want);
        json_decref(j);
        tsr_httpd_response_cleanup(&r);
    }
    /* Sorted by name, ascending and descending. */
    ck_assert_uint_eq(call(&fx, &A_U1, "GET", "/api/v1/items?sort=-name&limit=1", NULL, &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"name\":\"Other\""));
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(call(&fx, &A_ADMIN, "GET", "/api/v1/items?ownerId=u2", NULL, &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "Not visible to u1"));
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(st(&fx, &A_U1, "GET", "/api/v1/items?sort=size", NULL), 400);
    /* A space u2 cannot read lists nothing (and is not scanned). */
    char sp2[160];
    snprintf(sp2, sizeof sp2, "/api/v1/items?spaceId=%s", space);
    ck_assert_uint_eq(call(&fx, &A_U2, "GET", sp2, NULL, &r), 200);
    json_t *j = body_json(&r);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "data")), 0);
    json_decref(j);
    tsr_httpd_response_cleanup(&r);
    free(space);
    fx_cleanup(&fx);
}
END_TEST

/* ---- data files ----------------------------------------------------------------------------- */

START_TEST(test_datafile_upload_download_reupload_delete) {
    fx_t fx;
    fx_init(&fx);
    tsr_httpd_response_t r;
    char path[160];
    char *space = space_create(&fx, &A_U1, "Files", "shared");
    char json[160];
    snprintf(json, sizeof json, "{\"name\":\"sales/2026.csv\",\"connectionId\":\"%s\"}", space);
    ck_assert_uint_eq(upload(&fx, &A_U1, "POST", "/api/v1/data-files", json, "x\0y", 3, &r), 201);
    json_t *j = body_json(&r);
    char *id = strdup(json_string_value(json_object_get(j, "id")));
    ck_assert_int_eq(json_integer_value(json_object_get(j, "size")), 3);
    ck_assert_str_eq(json_string_value(json_object_get(j, "baseName")), "2026.csv");
    ck_assert_str_eq(json_string_value(json_object_get(j, "spaceId")), space);
    json_decref(j);
    tsr_httpd_response_cleanup(&r);
    /* Name clash (case-insensitive), too big, bad names, not multipart, broken multipart. */
    snprintf(json, sizeof json, "{\"name\":\"SALES/2026.csv\",\"connectionId\":\"%s\"}", space);
    ck_assert_uint_eq(upload(&fx, &A_U1, "POST", "/api/v1/data-files", json, "z", 1, &r), 409);
    tsr_httpd_response_cleanup(&r);
    char *big = calloc(1, FILE_MAX + 1);
    ck_assert_uint_eq(upload(&fx, &A_U1, "POST", "/api/v1/data-files", "{\"name\":\"big\"}", big,
                             FILE_MAX + 1, &r),
                      413);
    tsr_httpd_response_cleanup(&r);
    free(big);
    ck_assert_uint_eq(
        upload(&fx, &A_U1, "POST", "/api/v1/data-files", "{\"name\":\"../x\"}", "a", 1, &r), 400);
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(st(&fx, &A_U1, "POST", "/api/v1/data-files", "{\"name\":\"x\"}"), 415);
    ck_assert_uint_eq(callx(&fx, &A_U1, "POST", "/api/v1/data-files",
                            "multipart/form-data; boundary=" BOUNDARY, "--" BOUNDARY "\r\nX", 22,
                            &r),
                      400);
    tsr_httpd_response_cleanup(&r);
    /* Download: the same bytes as an attachment. */
    snprintf(path, sizeof path, "/api/v1/data-files/%s/content", id);
    ck_assert_uint_eq(call(&fx, &A_U1, "GET", path, NULL, &r), 200);
    ck_assert_uint_eq(r.body_len, 3);
    ck_assert_int_eq(memcmp(r.body, "x\0y", 3), 0);
    ck_assert_str_eq(json_string_value(json_object_get(r.headers, "content-disposition")),
                     "attachment; filename=\"2026.csv\"");
    tsr_httpd_response_cleanup(&r);
    /* List: the space's files, the personal files, all. */
    free(datafile_create(&fx, &A_U1, "personal.csv", NULL));
    snprintf(path, sizeof path, "/api/v1/data-files?connectionId=%s", space);
    ck_assert_uint_eq(call(&fx, &A_U1, "GET", path, NULL, &r), 200);
    j = body_json(&r);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "data")), 1);
    json_decref(j);
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(call(&fx, &A_U1, "GET", "/api/v1/data-files", NULL, &r), 200);
    j = body_json(&r);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "data")), 1);
    json_decref(j);
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(call(&fx, &A_U1, "GET", "/api/v1/data-files?includeAllSpaces=true", NULL, &r),
                      200);
    j = body_json(&r);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "data")), 2);
    json_decref(j);
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(call(&fx, &A_U1, "GET", "/api/v1/data-files/connections", NULL, &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, space));
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(st(&fx, &A_U1, "GET", "/api/v1/data-files/quotas", NULL), 200);
    /* Re-upload: new content and size, same id. */
    snprintf(path, sizeof path, "/api/v1/data-files/%s", id);
    ck_assert_uint_eq(
        upload(&fx, &A_U1, "PUT", path, "{\"name\":\"sales/2026.csv\"}", "12345", 5, &r), 201);
    tsr_httpd_response_cleanup(&r);
    snprintf(path, sizeof path, "/api/v1/data-files/%s/content", id);
    ck_assert_uint_eq(call(&fx, &A_U1, "GET", path, NULL, &r), 200);
    ck_assert_uint_eq(r.body_len, 5);
    tsr_httpd_response_cleanup(&r);
    /* Delete. */
    snprintf(path, sizeof path, "/api/v1/data-files/%s", id);
    ck_assert_uint_eq(st(&fx, &A_U2, "DELETE", path, NULL), 404);
    ck_assert_uint_eq(st(&fx, &A_U1, "DELETE", path, NULL), 204);
    ck_assert_uint_eq(st(&fx, &A_U1, "GET", path, NULL), 404);
    snprintf(path, sizeof path, "/api/v1/data-files/%s/content", id);
    ck_assert_uint_eq(st(&fx, &A_U1, "GET", path, NULL), 404);
    free(id);
    free(space);
    fx_cleanup(&fx);
}
END_TEST

/* The bytes at rest are a sealed stream bound to the file; the service opens them, the engine's
 * by-name read gets the plaintext, and a tampered blob never answers. */
START_TEST(test_datafile_sealed_at_rest_and_read_by_name) {
    fx_t fx;
    fx_init(&fx);
    tsr_httpd_response_t r;
    tsr_error_t err;
    char path[256], key[TSR_BLOB_KEY_MAX + 1];
    const char *secret = "Region,Sales\nNorth,SECRET-42\n";
    char *space = space_create(&fx, &A_U1, "Sealed", "shared");
    char json[160];
    snprintf(json, sizeof json, "{\"name\":\"Sales.csv\",\"connectionId\":\"%s\"}", space);
    ck_assert_uint_eq(
        upload(&fx, &A_U1, "POST", "/api/v1/data-files", json, secret, strlen(secret), &r), 201);
    json_t *j = body_json(&r);
    char *id = strdup(json_string_value(json_object_get(j, "id")));
    json_decref(j);
    tsr_httpd_response_cleanup(&r);
    ck_assert_int_eq(tsr_blob_key_format(key, sizeof key, "ta", "datafile", id, "1", &err), TSR_OK);
    char *raw = NULL;
    size_t n = 0;
    ck_assert_int_eq(tsr_blob_get_all(fx.blobs, "ta", key, 1 << 20, &raw, &n, &err), TSR_OK);
    ck_assert_uint_gt(n, strlen(secret));
    ck_assert_int_eq(memcmp(raw, "TSRS", 4), 0);
    ck_assert_ptr_null(strstr(raw + 4, "SECRET"));
    /* By (space, name), case-insensitively, as the engine reads lib://DataFiles/<name>. */
    snprintf(path, sizeof path, "/internal/v1/data-files/content?spaceId=%s&name=sales.csv", space);
    ck_assert_uint_eq(call(&fx, &A_U1, "GET", path, NULL, &r), 200);
    ck_assert_uint_eq(r.body_len, strlen(secret));
    ck_assert_int_eq(memcmp(r.body, secret, r.body_len), 0);
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(st(&fx, &A_U2, "GET", path, NULL), 404);
    ck_assert_uint_eq(st(&fx, &B_ADMIN, "GET", path, NULL), 404);
    snprintf(path, sizeof path, "/internal/v1/data-files/content?spaceId=%s&name=nope.csv", space);
    ck_assert_uint_eq(st(&fx, &A_U1, "GET", path, NULL), 404);
    /* The tenant's DEK was made once and is reused: a second file opens too. */
    free(datafile_create(&fx, &A_U1, "personal.csv", NULL));
    ck_assert_uint_eq(st(&fx, &A_U1, "GET",
                         "/internal/v1/data-files/content?spaceId=personal&name=personal.csv",
                         NULL),
                      200);
    /* One flipped byte: the download fails instead of answering altered data. */
    raw[n - 5] ^= 1;
    ck_assert_int_eq(tsr_blob_put(fx.blobs, "ta", key, raw, n, 1 << 20, &err), TSR_OK);
    snprintf(path, sizeof path, "/api/v1/data-files/%s/content", id);
    ck_assert_uint_eq(call(&fx, &A_U1, "GET", path, NULL, &r), 500);
    ck_assert_ptr_null(strstr(r.body, "SECRET"));
    tsr_httpd_response_cleanup(&r);
    free(raw);
    free(id);
    free(space);
    fx_cleanup(&fx);
}
END_TEST

/* ---- data files: the streamed path ---------------------------------------------------------- */

#define BIG_MAX (2u << 20)        /* the data-file cap of the streamed-path tests: 2 MiB */
#define SCAN_WINDOW (256u * 1024) /* pkg/spaces/h_datafiles.c's WINDOW (body file reads) */

/* fx with a second service on the same store and blobs whose cap is BIG_MAX (fx's is a few KiB)
 * and whose temporary files go to its own directory, so that files pass every buffer the
 * streamed path uses. */
static void big_init(fx_t *fx, fx_t *big, char *updir, size_t updir_cap) {
    tsr_error_t err;
    fx_init(fx);
    *big = *fx;
    snprintf(updir, updir_cap, "%s/uploads", fx->dir);
    tsr_spaces_opts_t o = {.store = fx->store,
                           .blobs = fx->blobs,
                           .kek = fx->kek,
                           .datafile_max_bytes = BIG_MAX,
                           .json_max_body = 65536,
                           .upload_dir = updir};
    ck_assert_int_eq(tsr_spaces_create(&o, &big->sp, &err), TSR_OK);
    tsr_httpd_opts_t ho = {.service = "spaces",
                           .bind = "127.0.0.1",
                           .threads = 1,
                           .max_body = 65536,
                           .on_principal = tsr_spaces_principal};
    ck_assert_int_eq(tsr_httpd_create(&ho, &big->h, &err), TSR_OK);
    ck_assert_int_eq(tsr_spaces_routes(big->h, big->sp, &err), TSR_OK);
}

static void big_cleanup(fx_t *fx, fx_t *big) {
    tsr_httpd_destroy(big->h);
    tsr_spaces_destroy(big->sp);
    fx_cleanup(fx);
}

/* n bytes of noise strewn with near-delimiters ("\r\n--" and the boundary but for its last
 * byte) every 4093 bytes, so that some straddle any window a scanner reads through. */
static char *noise(size_t n, uint32_t seed) {
    static const char trap[] = "\r\n--" BOUNDARY;
    char *p = malloc(n);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (char)(seed >> 16);
    }
    for (size_t i = 100; i + sizeof trap < n; i += 4093) {
        memcpy(p + i, trap, sizeof trap - 2);
        p[i + sizeof trap - 2] = 'X';
    }
    return p;
}

/* Blobs stored for tenant (any key). */
static size_t blob_count(fx_t *fx, const char *tenant) {
    tsr_blob_list_t l = {0};
    tsr_error_t err;
    ck_assert_int_eq(tsr_blob_list(fx->blobs, tenant, "", NULL, 10000, &l, &err), TSR_OK);
    size_t n = l.count;
    tsr_blob_list_cleanup(&l);
    return n;
}

/* Data file records the caller sees in every space. */
static size_t datafile_count(fx_t *fx, const who_t *who) {
    tsr_httpd_response_t r;
    ck_assert_uint_eq(call(fx, who, "GET", "/api/v1/data-files?includeAllSpaces=true", NULL, &r),
                      200);
    json_t *j = body_json(&r);
    size_t n = json_array_size(json_object_get(j, "data"));
    json_decref(j);
    tsr_httpd_response_cleanup(&r);
    return n;
}

/* Entries left in dir (temporary files of uploads and downloads). */
static size_t dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    }
    closedir(d);
    return n;
}

/* A file of several windows and segments goes in through the body file and out through a
 * temporary file byte for byte, by id and by name; a re-upload replaces it; no temporary file
 * stays behind; another tenant gets 404 for it everywhere. */
START_TEST(test_datafile_streamed_round_trip) {
    fx_t fx, big;
    char updir[128], path[256], key[TSR_BLOB_KEY_MAX + 1];
    tsr_httpd_response_t r;
    tsr_error_t err;
    big_init(&fx, &big, updir, sizeof updir);
    size_t n1 = (3u << 19) + 12345; /* ~1.5 MiB */
    char *d1 = noise(n1, 7);
    char *space = space_create(&big, &A_U1, "Big", "shared");
    char json[160];
    snprintf(json, sizeof json, "{\"name\":\"big.bin\",\"connectionId\":\"%s\"}", space);
    ck_assert_uint_eq(upload(&big, &A_U1, "POST", "/api/v1/data-files", json, d1, n1, &r), 201);
    json_t *j = body_json(&r);
    char *id = strdup(json_string_value(json_object_get(j, "id")));
    ck_assert_int_eq(json_integer_value(json_object_get(j, "size")), (json_int_t)n1);
    json_decref(j);
    tsr_httpd_response_cleanup(&r);
    /* Sealed at rest: header, then ciphertext and tags (longer than the plaintext). */
    ck_assert_int_eq(tsr_blob_key_format(key, sizeof key, "ta", "datafile", id, "1", &err), TSR_OK);
    char *raw = NULL;
    size_t rn = 0;
    ck_assert_int_eq(tsr_blob_get_all(fx.blobs, "ta", key, 4u << 20, &raw, &rn, &err), TSR_OK);
    ck_assert_uint_gt(rn, n1);
    ck_assert_int_eq(memcmp(raw, "TSRS", 4), 0);
    free(raw);
    snprintf(path, sizeof path, "/api/v1/data-files/%s/content", id);
    ck_assert_uint_eq(call(&big, &A_U1, "GET", path, NULL, &r), 200);
    ck_assert_uint_eq(r.body_len, n1);
    ck_assert_int_eq(memcmp(r.body, d1, n1), 0);
    tsr_httpd_response_cleanup(&r);
    snprintf(path, sizeof path, "/internal/v1/data-files/content?spaceId=%s&name=big.bin", space);
    ck_assert_uint_eq(call(&big, &A_U1, "GET", path, NULL, &r), 200);
    ck_assert_uint_eq(r.body_len, n1);
    ck_assert_int_eq(memcmp(r.body, d1, n1), 0);
    tsr_httpd_response_cleanup(&r);
    /* Re-upload: other bytes, other size, both readers see them. */
    size_t n2 = BIG_MAX; /* exactly the cap */
    char *d2 = noise(n2, 99);
    snprintf(path, sizeof path, "/api/v1/data-files/%s", id);
    ck_assert_uint_eq(upload(&big, &A_U1, "PUT", path, "{\"name\":\"big.bin\"}", d2, n2, &r), 201);
    tsr_httpd_response_cleanup(&r);
    snprintf(path, sizeof path, "/api/v1/data-files/%s/content", id);
    ck_assert_uint_eq(call(&big, &A_U1, "GET", path, NULL, &r), 200);
    ck_assert_uint_eq(r.body_len, n2);
    ck_assert_int_eq(memcmp(r.body, d2, n2), 0);
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(blob_count(&fx, "ta"), 1); /* the old version went */
    /* Another tenant: 404 to read, by id and by name, and to overwrite; nothing changed. */
    ck_assert_uint_eq(st(&big, &B_ADMIN, "GET", path, NULL), 404);
    snprintf(path, sizeof path, "/internal/v1/data-files/content?spaceId=%s&name=big.bin", space);
    ck_assert_uint_eq(st(&big, &B_ADMIN, "GET", path, NULL), 404);
    snprintf(path, sizeof path, "/api/v1/data-files/%s", id);
    ck_assert_uint_eq(upload(&big, &B_ADMIN, "PUT", path, "{\"name\":\"big.bin\"}", "x", 1, &r),
                      404);
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(blob_count(&fx, "tb"), 0);
    snprintf(path, sizeof path, "/api/v1/data-files/%s/content", id);
    ck_assert_uint_eq(call(&big, &A_U1, "GET", path, NULL, &r), 200);
    ck_assert_uint_eq(r.body_len, n2);
    ck_assert_int_eq(memcmp(r.body, d2, n2), 0);
    tsr_httpd_response_cleanup(&r);
    /* An empty file round-trips too. */
    ck_assert_uint_eq(
        upload(&big, &A_U1, "POST", "/api/v1/data-files", "{\"name\":\"empty.csv\"}", "", 0, &r),
        201);
    j = body_json(&r);
    snprintf(path, sizeof path, "/api/v1/data-files/%s/content",
             json_string_value(json_object_get(j, "id")));
    json_decref(j);
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(call(&big, &A_U1, "GET", path, NULL, &r), 200);
    ck_assert_uint_eq(r.body_len, 0);
    tsr_httpd_response_cleanup(&r);
    /* The scanner reads the body a window at a time from the File part's start: a closing
     * delimiter across a window's end is found all the same. */
    static const size_t sizes[] = {SCAN_WINDOW - 1, SCAN_WINDOW - 5, SCAN_WINDOW - 12,
                                   SCAN_WINDOW + 3, 2 * SCAN_WINDOW - 24 - 7};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        snprintf(json, sizeof json, "{\"name\":\"w%zu.bin\"}", i);
        ck_assert_uint_eq(upload(&big, &A_U1, "POST", "/api/v1/data-files", json, d1, sizes[i], &r),
                          201);
        j = body_json(&r);
        snprintf(path, sizeof path, "/api/v1/data-files/%s/content",
                 json_string_value(json_object_get(j, "id")));
        json_decref(j);
        tsr_httpd_response_cleanup(&r);
        ck_assert_uint_eq(call(&big, &A_U1, "GET", path, NULL, &r), 200);
        ck_assert_uint_eq(r.body_len, sizes[i]);
        ck_assert_int_eq(memcmp(r.body, d1, sizes[i]), 0);
        tsr_httpd_response_cleanup(&r);
    }
    /* Every body file and download file is gone. */
    ck_assert_uint_eq(dir_entries(updir), 0);
    free(d1);
    free(d2);
    free(id);
    free(space);
    big_cleanup(&fx, &big);
}
END_TEST

/* Over the cap, 413 whether the body passes the route's cap (never read whole) or only the
 * File part passes the data-file cap; nothing is stored either way. */
START_TEST(test_datafile_streamed_over_cap_is_413_and_stores_nothing) {
    fx_t fx, big;
    char updir[128];
    tsr_httpd_response_t r;
    big_init(&fx, &big, updir, sizeof updir);
    char *d = noise(BIG_MAX + (1u << 20), 3);
    ck_assert_uint_eq(upload(&big, &A_U1, "POST", "/api/v1/data-files", "{\"name\":\"a.bin\"}", d,
                             BIG_MAX + 1, &r),
                      413);
    json_t *j = body_json(&r);
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(j, "errors"), 0), "status")),
                     "413");
    json_decref(j);
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(upload(&big, &A_U1, "POST", "/api/v1/data-files", "{\"name\":\"b.bin\"}", d,
                             BIG_MAX + (1u << 20), &r),
                      413);
    tsr_httpd_response_cleanup(&r);
    /* A re-upload over the cap leaves the file as it was. */
    char *id = datafile_create(&big, &A_U1, "c.csv", NULL);
    char path[160];
    snprintf(path, sizeof path, "/api/v1/data-files/%s", id);
    ck_assert_uint_eq(upload(&big, &A_U1, "PUT", path, "{\"name\":\"c.csv\"}", d, BIG_MAX + 1, &r),
                      413);
    tsr_httpd_response_cleanup(&r);
    snprintf(path, sizeof path, "/api/v1/data-files/%s/content", id);
    ck_assert_uint_eq(call(&big, &A_U1, "GET", path, NULL, &r), 200);
    ck_assert_uint_eq(r.body_len, 8);
    ck_assert_int_eq(memcmp(r.body, "a,b\n1,2\n", 8), 0);
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(datafile_count(&big, &A_U1), 1);
    ck_assert_uint_eq(blob_count(&fx, "ta"), 1);
    ck_assert_uint_eq(dir_entries(updir), 0);
    free(id);
    free(d);
    big_cleanup(&fx, &big);
}
END_TEST

/* Broken multipart bodies, small and large: 400 in the error shape, nothing stored. */
START_TEST(test_datafile_streamed_corrupt_multipart_is_400_and_stores_nothing) {
    fx_t fx, big;
    char updir[128];
    tsr_httpd_response_t r;
    big_init(&fx, &big, updir, sizeof updir);
    const char *ct = "multipart/form-data; boundary=" BOUNDARY;
    size_t n = (1u << 20) + 777, len = 0;
    char *d = noise(n, 5);
    char *body = multipart("{\"name\":\"x.bin\"}", d, n, &len);
    /* 1. The closing delimiter is cut off: the File part never ends. */
    size_t tail = strlen("\r\n--" BOUNDARY "--\r\n");
    ck_assert_uint_eq(callx(&big, &A_U1, "POST", "/api/v1/data-files", ct, body, len - tail, &r),
                      400);
    json_t *j = body_json(&r);
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(j, "errors"), 0), "status")),
                     "400");
    json_decref(j);
    tsr_httpd_response_cleanup(&r);
    /* 2. The closing delimiter is followed by neither "--" nor CRLF. */
    body[len - 4] = 'Z';
    body[len - 3] = 'Z';
    ck_assert_uint_eq(callx(&big, &A_U1, "POST", "/api/v1/data-files", ct, body, len, &r), 400);
    tsr_httpd_response_cleanup(&r);
    /* 3. Part headers that never end (past the header cap). */
    char *heads = malloc(16384);
    int k = snprintf(heads, 16384,
                     "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"File\"\r\nX-Pad: ");
    memset(heads + k, 'a', 16384 - (size_t)k);
    ck_assert_uint_eq(callx(&big, &A_U1, "POST", "/api/v1/data-files", ct, heads, 16384, &r), 400);
    tsr_httpd_response_cleanup(&r);
    free(heads);
    /* 4. No boundary in the Content-Type; 5. a boundary the body never has. */
    ck_assert_uint_eq(
        callx(&big, &A_U1, "POST", "/api/v1/data-files", "multipart/form-data", body, len, &r),
        400);
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(callx(&big, &A_U1, "POST", "/api/v1/data-files",
                            "multipart/form-data; boundary=elsewhere", body, len, &r),
                      400);
    tsr_httpd_response_cleanup(&r);
    /* 6. A Json part that is not JSON; 7. no File part (only Json). */
    free(body);
    body = multipart("{not json", "abc", 3, &len);
    ck_assert_uint_eq(callx(&big, &A_U1, "POST", "/api/v1/data-files", ct, body, len, &r), 400);
    tsr_httpd_response_cleanup(&r);
    free(body);
    const char *only_json =
        "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"Json\"\r\n\r\n"
        "{\"name\":\"y.csv\"}\r\n--" BOUNDARY "--\r\n";
    ck_assert_uint_eq(
        callx(&big, &A_U1, "POST", "/api/v1/data-files", ct, only_json, strlen(only_json), &r),
        400);
    tsr_httpd_response_cleanup(&r);
    /* Not multipart at all: 415. */
    ck_assert_uint_eq(
        callx(&big, &A_U1, "POST", "/api/v1/data-files", "application/octet-stream", d, n, &r),
        415);
    tsr_httpd_response_cleanup(&r);
    ck_assert_uint_eq(datafile_count(&big, &A_U1), 0);
    ck_assert_uint_eq(blob_count(&fx, "ta"), 0);
    ck_assert_uint_eq(dir_entries(updir), 0);
    free(d);
    big_cleanup(&fx, &big);
}
END_TEST

/* ---- events --------------------------------------------------------------------------------- */

START_TEST(test_every_change_commits_an_event) {
    fx_t fx;
    fx_init(&fx);
    tsr_error_t err;
    char path[160];
    char *space = space_create(&fx, &A_ADMIN, "Evented", "shared");
    char *as = assign(&fx, &A_ADMIN, space, "u1", "producer");
    char *app = app_create(&fx, &A_U1, "E", space);
    char *file = datafile_create(&fx, &A_U1, "e.csv", space);
    snprintf(path, sizeof path, "/api/v1/apps/%s", app);
    ck_assert_uint_eq(st(&fx, &A_U1, "DELETE", path, NULL), 200);
    snprintf(path, sizeof path, "/api/v1/data-files/%s", file);
    ck_assert_uint_eq(st(&fx, &A_U1, "DELETE", path, NULL), 204);
    snprintf(path, sizeof path, "/api/v1/spaces/%s/assignments/%s", space, as);
    ck_assert_uint_eq(st(&fx, &A_ADMIN, "DELETE", path, NULL), 204);
    snprintf(path, sizeof path, "/api/v1/spaces/%s", space);
    ck_assert_uint_eq(st(&fx, &A_ADMIN, "DELETE", path, NULL), 204);
    /* Failed requests write nothing. */
    ck_assert_uint_eq(st(&fx, &A_U1, "DELETE", path, NULL), 404);
    static const struct {
        const char *type, *topic, *subject_of;
    } WANT[] = {
        {"com.tessera.v1.space.created", "tessera.spaces", "space"},
        {"com.tessera.v1.space.member.added", "tessera.spaces", "space"},
        {"com.tessera.v1.app.created", "tessera.apps", "app"},
        {"com.tessera.v1.datafile.created", "tessera.apps", "file"},
        {"com.tessera.v1.app.deleted", "tessera.apps", "app"},
        {"com.tessera.v1.datafile.deleted", "tessera.apps", "file"},
        {"com.tessera.v1.space.member.removed", "tessera.spaces", "space"},
        {"com.tessera.v1.space.deleted", "tessera.spaces", "space"},
    };
    tsr_store_event_t *rows = NULL;
    size_t n = 0;
    ck_assert_int_eq(tsr_store_platform_outbox_fetch(fx.store, 100, &rows, &n, &err), TSR_OK);
    ck_assert_uint_eq(n, sizeof WANT / sizeof WANT[0]);
    for (size_t i = 0; i < n; i++) {
        tsr_event_t ev;
        ck_assert_int_eq(tsr_event_parse(rows[i].payload, rows[i].payload_len, &ev, &err), TSR_OK);
        ck_assert_str_eq(ev.type, WANT[i].type);
        ck_assert_str_eq(rows[i].topic, WANT[i].topic);
        const char *subj = strcmp(WANT[i].subject_of, "space") == 0 ? space
                           : strcmp(WANT[i].subject_of, "app") == 0 ? app
                                                                    : file;
        ck_assert_str_eq(ev.subject, subj);
        ck_assert_str_eq(rows[i].key, subj);
        ck_assert_str_eq(ev.tenantid, "ta");
        ck_assert_str_eq(ev.source, "/tessera/spaces");
        ck_assert_ptr_nonnull(ev.userid);
        ck_assert_str_eq(ev.id, rows[i].id);
        tsr_event_cleanup(&ev);
    }
    tsr_store_outbox_rows_free(rows, n);
    free(space);
    free(as);
    free(app);
    free(file);
    fx_cleanup(&fx);
}
END_TEST

/* The engine reports an export (POST /internal/v1/apps/{appId}/exported): read + export needed,
 * as the role table says; app.exported is committed with the caller and the temporary id. */
START_TEST(test_app_exported_needs_export_and_commits_event) {
    fx_t fx;
    fx_init(&fx);
    tsr_error_t err;
    char path[160];
    char *space = space_create(&fx, &A_ADMIN, "Exports", "managed");
    char *a1 = assign(&fx, &A_ADMIN, space, "u1", "consumer");
    char *a2 = assign(&fx, &A_ADMIN, space, "u2", "basicconsumer");
    char *app = app_create(&fx, &A_ADMIN, "Exported", space);
    snprintf(path, sizeof path, "/internal/v1/apps/%s/exported", app);
    size_t before = 0;
    tsr_store_event_t *rows = NULL;
    ck_assert_int_eq(tsr_store_platform_outbox_fetch(fx.store, 100, &rows, &before, &err), TSR_OK);
    tsr_store_outbox_rows_free(rows, before);
    ck_assert_uint_eq(st(&fx, &A_U2, "POST", path, "{}"), 403);    /* basicconsumer */
    ck_assert_uint_eq(st(&fx, &B_ADMIN, "POST", path, "{}"), 404); /* another tenant */
    ck_assert_uint_eq(st(&fx, &A_U1, "POST", path, "{\"bytes\":-1}"), 400);
    ck_assert_uint_eq(st(&fx, &A_U1, "POST", "/internal/v1/apps/nope/exported", NULL), 404);
    ck_assert_uint_eq(st(&fx, &A_U1, "POST", path, "{\"tempContentId\":\"t1\",\"bytes\":42}"), 204);
    size_t n = 0;
    ck_assert_int_eq(tsr_store_platform_outbox_fetch(fx.store, 100, &rows, &n, &err), TSR_OK);
    ck_assert_uint_eq(n, before + 1); /* refusals commit nothing */
    tsr_event_t ev;
    ck_assert_int_eq(tsr_event_parse(rows[n - 1].payload, rows[n - 1].payload_len, &ev, &err),
                     TSR_OK);
    ck_assert_str_eq(ev.type, "com.tessera.v1.app.exported");
    ck_assert_str_eq(rows[n - 1].topic, "tessera.apps");
    ck_assert_str_eq(ev.subject, app);
    ck_assert_str_eq(ev.userid, "u1");
    ck_assert_str_eq(json_string_value(json_object_get(ev.data, "tempContentId")), "t1");
    ck_assert_int_eq(json_integer_value(json_object_get(ev.data, "bytes")), 42);
    ck_assert_str_eq(json_string_value(json_object_get(ev.data, "spaceId")), space);
    tsr_event_cleanup(&ev);
    tsr_store_outbox_rows_free(rows, n);
    free(space);
    free(a1);
    free(a2);
    free(app);
    fx_cleanup(&fx);
}
END_TEST

/* ---- tenancy -------------------------------------------------------------------------------- */

/* Replace {name} segments of pattern with ids. */
static void fill(char *out, size_t cap, const char *pattern, const char *space, const char *as,
                 const char *app, const char *file) {
    size_t o = 0;
    for (const char *p = pattern; *p != '\0' && o + 1 < cap;) {
        if (*p == '{') {
            const char *e = strchr(p, '}');
            size_t n = (size_t)(e - p - 1);
            const char *v = strncmp(p + 1, "spaceId", n) == 0        ? space
                            : strncmp(p + 1, "assignmentId", n) == 0 ? as
                            : strncmp(p + 1, "appId", n) == 0        ? app
                            : strncmp(p + 1, "itemId", n) == 0       ? app
                                                                     : file;
            o += (size_t)snprintf(out + o, cap - o, "%s", v);
            p = e + 1;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
}

START_TEST(test_cross_tenant_every_endpoint_is_404) {
    fx_t fx;
    fx_init(&fx);
    tsr_httpd_response_t r;
    char *space = space_create(&fx, &A_ADMIN, "A only", "shared");
    char *managed = space_create(&fx, &A_ADMIN, "A managed", "managed");
    char *as = assign(&fx, &A_ADMIN, space, "u1", "consumer");
    char *app = app_create(&fx, &A_ADMIN, "A app", space);
    char *file = datafile_create(&fx, &A_ADMIN, "a.csv", space);
    /* B's admin has every right in B, none in A. */
    const char *m, *pat;
    size_t checked = 0;
    for (size_t i = 0; tsr_spaces_route_at(i, &m, &pat); i++) {
        char path[512];
        fill(path, sizeof path, pat, space, as, app, file);
        unsigned s = 0;
        if (strchr(pat, '{') == NULL) {
            continue; /* collection routes: below */
        }
        if (strstr(pat, "data-files/{id}") != NULL && strcmp(m, "PUT") == 0) {
            s = upload(&fx, &B_ADMIN, m, path, "{\"name\":\"a.csv\"}", "b", 1, &r);
            tsr_httpd_response_cleanup(&r);
        } else {
            char body[256];
            snprintf(body, sizeof body,
                     "{\"name\":\"n\",\"spaceId\":\"%s\",\"roles\":[\"consumer\"],"
                     "\"assigneeId\":\"u9\",\"attributes\":{\"name\":\"n\"}}",
                     managed);
            bool with_body = strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0;
            s = st(&fx, &B_ADMIN, m, path, with_body ? body : NULL);
            if (strcmp(m, "PATCH") == 0) {
                s = st(&fx, &B_ADMIN, m, path,
                       "[{\"op\":\"replace\",\"path\":\"/name\",\"value\":\"x\"}]");
            }
        }
        ck_assert_msg(s == 404, "%s %s as another tenant: %u, want 404", m, pat, s);
        checked++;
    }
    ck_assert_uint_ge(checked, 20);
    /* Collection routes: B sees nothing of A, and cannot put anything into A's spaces. */
    char body[256];
    snprintf(body, sizeof body, "{\"attributes\":{\"name\":\"x\",\"spaceId\":\"%s\"}}", space);
    ck_assert_uint_eq(st(&fx, &B_ADMIN, "POST", "/api/v1/apps", body), 404);
    snprintf(body, sizeof body, "{\"name\":\"x.csv\",\"connectionId\":\"%s\"}", space);
    ck_assert_uint_eq(upload(&fx, &B_ADMIN, "POST", "/api/v1/data-files", body, "b", 1, &r), 404);
    tsr_httpd_response_cleanup(&r);
    const char *lists[] = {"/api/v1/spaces", "/api/v1/items?limit=100",
                           "/api/v1/data-files?includeAllSpaces=true",
                           "/api/v1/data-files/connections"};
    for (size_t i = 0; i < 4; i++) {
        ck_assert_uint_eq(call(&fx, &B_ADMIN, "GET", lists[i], NULL, &r), 200);
        ck_assert_msg(strstr(r.body, space) == NULL && strstr(r.body, app) == NULL &&
                          strstr(r.body, file) == NULL,
                      "%s leaks A's objects: %s", lists[i], r.body);
        tsr_httpd_response_cleanup(&r);
    }
    char q[160];
    const char *kinds[] = {"space", "app", "datafile", "item"};
    const char *ids[] = {space, app, file, app};
    for (size_t i = 0; i < 4; i++) {
        snprintf(q, sizeof q, "/internal/v1/access?resource=%s:%s", kinds[i], ids[i]);
        ck_assert_uint_eq(st(&fx, &B_ADMIN, "GET", q, NULL), 404);
    }
    snprintf(q, sizeof q, "/internal/v1/data-files/content?spaceId=%s&name=a.csv", space);
    ck_assert_uint_eq(st(&fx, &B_ADMIN, "GET", q, NULL), 404);
    ck_assert_uint_eq(st(&fx, &A_ADMIN, "GET", q, NULL), 200);
    /* B may create a space with A's name: uniqueness is per tenant. */
    free(space_create(&fx, &B_ADMIN, "A only", "shared"));
    /* Nothing of A was changed or removed by B's attempts. */
    ck_assert_int_eq(access_of(&fx, &A_ADMIN, "app", app), TSR_SPACES_ALL);
    ck_assert_int_eq(access_of(&fx, &A_ADMIN, "datafile", file), TSR_SPACES_ALL);
    char path[160];
    snprintf(path, sizeof path, "/api/v1/spaces/%s/assignments/%s", space, as);
    ck_assert_uint_eq(call(&fx, &A_ADMIN, "GET", path, NULL, &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"consumer\""));
    tsr_httpd_response_cleanup(&r);
    snprintf(path, sizeof path, "/api/v1/spaces/%s", space);
    ck_assert_uint_eq(call(&fx, &A_ADMIN, "GET", path, NULL, &r), 200);
    ck_assert_ptr_nonnull(strstr(r.body, "\"A only\""));
    tsr_httpd_response_cleanup(&r);
    free(space);
    free(managed);
    free(as);
    free(app);
    free(file);
    fx_cleanup(&fx);
}
END_TEST

/* ---- contract -------------------------------------------------------------------------------- */

START_TEST(test_routes_and_openapi_cover_each_other) {
    tsr_test_routes_match_openapi(TSR_SOURCE_DIR "/api/openapi/spaces.yaml", tsr_spaces_route_at);
}
END_TEST

START_TEST(test_create_needs_store_and_blobs) {
    tsr_spaces_t *s = NULL;
    tsr_error_t err;
    tsr_spaces_opts_t o = {0};
    ck_assert_int_eq(tsr_spaces_create(&o, &s, &err), TSR_EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(tsr_spaces_create(NULL, &s, &err), TSR_EINVAL);
    tsr_spaces_destroy(NULL);
    ck_assert_ptr_null(tsr_spaces_action_name(3));
    ck_assert_str_eq(tsr_spaces_action_name(TSR_SPACES_MANAGE), "manage");
    ck_assert(!tsr_spaces_role_assignable("shared", "publisher"));
    ck_assert(tsr_spaces_role_assignable("managed", "publisher"));
    ck_assert(!tsr_spaces_role_assignable("personal", "consumer"));
}
END_TEST

START_TEST(test_upload_dir_sweep_removes_only_old_files) {
    char d[] = "/tmp/tsr-spaces-up.XXXXXX", p[96];
    ck_assert_ptr_nonnull(mkdtemp(d));
    const char *names[] = {"datafile.old", "upload.old", "datafile.new"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", d, names[i]);
        FILE *f = fopen(p, "w");
        ck_assert_ptr_nonnull(f);
        fputs("bytes", f);
        fclose(f);
        if (i < 2) {
            time_t old = time(NULL) - 2 * 3600;
            struct timespec tv[2] = {{.tv_sec = old}, {.tv_sec = old}};
            ck_assert_int_eq(utimensat(AT_FDCWD, p, tv, 0), 0);
        }
    }
    snprintf(p, sizeof p, "%s/sub", d);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    ck_assert_uint_eq(tsr_spaces_sweep_uploads(d, INT64_C(3600000)), 2);
    snprintf(p, sizeof p, "%s/datafile.old", d);
    ck_assert_int_ne(access(p, F_OK), 0);
    snprintf(p, sizeof p, "%s/datafile.new", d);
    ck_assert_int_eq(access(p, F_OK), 0);
    snprintf(p, sizeof p, "%s/sub", d);
    ck_assert_int_eq(access(p, F_OK), 0);
    ck_assert_uint_eq(tsr_spaces_sweep_uploads(d, INT64_C(3600000)), 0);
    /* The /tmp fallback and no directory: never swept. */
    ck_assert_uint_eq(tsr_spaces_sweep_uploads("/tmp", 0), 0);
    ck_assert_uint_eq(tsr_spaces_sweep_uploads(NULL, 0), 0);
    ck_assert_uint_eq(tsr_spaces_sweep_uploads(d, 0), 1); /* the new one, at age 0 */
    snprintf(p, sizeof p, "%s/sub", d);
    ck_assert_int_eq(rmdir(p), 0);
    ck_assert_int_eq(rmdir(d), 0);
}
END_TEST

int main(void) {
    FILE *devnull = fopen("/dev/null", "w");
    tsr_log_init("spaces", TSR_LOG_INFO, devnull);
    Suite *s = suite_create("spaces");
    TCase *tc = tcase_create("spaces");
    tcase_add_test(tc, test_principal_missing_headers_is_401);
    tcase_add_test(tc, test_space_crud_and_shapes);
    tcase_add_test(tc, test_space_list_pages_with_absolute_links);
    tcase_add_test(tc, test_space_visible_only_to_owner_members_and_admin);
    tcase_add_test(tc, test_space_delete_with_content_needs_forcing_admin);
    tcase_add_test(tc, test_group_assignments_grant_their_roles);
    tcase_add_test(tc, test_group_cap_and_many_groups);
    suite_add_tcase(s, tc);
    tc = tcase_create("roles");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_role_table_readme_matches_code);
    tcase_add_test(tc, test_role_action_matrix_enforced);
    tcase_add_test(tc, test_published_app_is_locked_and_personal_is_private);
    suite_add_tcase(s, tc);
    tc = tcase_create("items");
    tcase_add_test(tc, test_app_create_copy_move_delete);
    tcase_add_test(tc, test_copy_and_publish_have_the_engine_copy_the_content);
    tcase_add_test(tc, test_copy_calls_the_engine_with_a_service_token);
    tcase_add_test(tc, test_items_filters_sort_and_cursor_paging);
    tcase_add_test(tc, test_datafile_upload_download_reupload_delete);
    tcase_add_test(tc, test_datafile_sealed_at_rest_and_read_by_name);
    suite_add_tcase(s, tc);
    tc = tcase_create("datafiles-streamed");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_datafile_streamed_round_trip);
    tcase_add_test(tc, test_datafile_streamed_over_cap_is_413_and_stores_nothing);
    tcase_add_test(tc, test_datafile_streamed_corrupt_multipart_is_400_and_stores_nothing);
    suite_add_tcase(s, tc);
    tc = tcase_create("events");
    tcase_add_test(tc, test_every_change_commits_an_event);
    tcase_add_test(tc, test_app_exported_needs_export_and_commits_event);
    suite_add_tcase(s, tc);
    tc = tcase_create("tenancy");
    tcase_add_test(tc, test_cross_tenant_every_endpoint_is_404);
    suite_add_tcase(s, tc);
    tc = tcase_create("contract");
    tcase_add_test(tc, test_routes_and_openapi_cover_each_other);
    tcase_add_test(tc, test_create_needs_store_and_blobs);
    tcase_add_test(tc, test_upload_dir_sweep_removes_only_old_files);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    fclose(devnull);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
