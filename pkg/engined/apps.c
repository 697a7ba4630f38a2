/*
 * Apps: the file app store, the registry of apps and their models (unloaded by LRU within a
 * memory budget), access decisions, the QIX backend (check_app, open_doc, list_docs), the
 * principal of a session, reloads, change pushes to the other sessions of an app, and the
 * REST data model metadata. Invariant: an app is found only through its tenant; another
 * tenant's id is answered exactly like a missing one (TSR_ENOTFOUND).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "engined_int.h"
#include "log.h"

#define MAX_ID 128

/* App, tenant and data file names become path segments: a conservative charset. */
static bool id_is_valid(const char *id) {
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > MAX_ID || id[0] == '.') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.')) {
            return false;
        }
    }
    return true;
}

/* ---- the file app store ------------------------------------------------------------------- */

typedef struct {
    char *root;
} files_t;

static tsr_err_t files_get(void *ud, const char *tenant_id, const char *app_id, json_t **doc,
                           tsr_error_t *err) {
    files_t *f = ud;
    char path[4096];
    *doc = NULL;
    if (!id_is_valid(app_id)) {
        return tsr_error_set(err, TSR_ENOTFOUND, "app not found");
    }
    snprintf(path, sizeof path, "%s/%s/app.json", f->root, app_id);
    json_error_t jerr;
    json_t *d = json_load_file(path, 0, &jerr);
    if (d == NULL) {
        if (access(path, F_OK) != 0) {
            return tsr_error_set(err, TSR_ENOTFOUND, "app not found");
        }
        return tsr_error_set(err, TSR_EIO, "%s: %s", path, jerr.text);
    }
    const char *t = json_string_value(json_object_get(d, "tenantId"));
    if (t == NULL || strcmp(t, tenant_id) != 0) {
        json_decref(d);
        return tsr_error_set(err, TSR_ENOTFOUND, "app not found");
    }
    *doc = d;
    return TSR_OK;
}

static tsr_err_t files_write(files_t *f, const char *app_id, const json_t *doc, tsr_error_t *err) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s/app.json", f->root, app_id);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (json_dump_file(doc, tmp, JSON_COMPACT) != 0) {
        unlink(tmp);
        return tsr_error_set(err, TSR_EIO, "cannot write %s", tmp);
    }
    int fd = open(tmp, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return tsr_error_set(err, TSR_EIO, "rename %s: %s", path, strerror(e));
    }
    return TSR_OK;
}

static tsr_err_t files_create(void *ud, const char *tenant_id, const char *app_id,
                              const json_t *doc, tsr_error_t *err) {
    files_t *f = ud;
    char dir[4096];
    (void)tenant_id;
    if (!id_is_valid(app_id)) {
        return tsr_error_set(err, TSR_EINVAL, "invalid app id");
    }
    snprintf(dir, sizeof dir, "%s/%s", f->root, app_id);
    /* mkdir is atomic across processes (both engine replicas share the state dir). */
    if (mkdir(dir, 0700) != 0) {
        if (errno == EEXIST) {
            return tsr_error_set(err, TSR_ECONFLICT, "app id taken");
        }
        return tsr_error_set(err, TSR_EIO, "mkdir %s: %s", dir, strerror(errno));
    }
    tsr_err_t rc = files_write(f, app_id, doc, err);
    if (rc != TSR_OK) {
        rmdir(dir);
    }
    return rc;
}

static tsr_err_t files_put(void *ud, const char *tenant_id, const char *app_id, const json_t *doc,
                           tsr_error_t *err) {
    json_t *old = NULL;
    tsr_err_t rc = files_get(ud, tenant_id, app_id, &old, err);
    json_decref(old);
    return rc == TSR_OK ? files_write(ud, app_id, doc, err) : rc;
}

#define MAX_MODEL_FILE (INT64_C(8) << 30) /* bytes of one app's model file */

/* Write n bytes to path through a temporary file: write, fsync, rename. */
static tsr_err_t write_atomic(const char *path, const void *buf, size_t n, tsr_error_t *err) {
    char tmp[4200];
    tsr_err_t rc = TSR_OK;
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return tsr_error_set(err, TSR_EIO, "open %s: %s", tmp, strerror(errno));
    }
    size_t off = 0;
    const uint8_t *p = buf;
    while (off < n) {
        ssize_t w = write(fd, p + off, n - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            rc = tsr_error_set(err, TSR_EIO, "write %s: %s", tmp, strerror(errno));
            break;
        }
        off += (size_t)w;
    }
    if (rc == TSR_OK && fsync(fd) != 0) {
        rc = tsr_error_set(err, TSR_EIO, "fsync %s: %s", tmp, strerror(errno));
    }
    close(fd);
    if (rc == TSR_OK && rename(tmp, path) != 0) {
        rc = tsr_error_set(err, TSR_EIO, "rename %s: %s", path, strerror(errno));
    }
    if (rc != TSR_OK) {
        unlink(tmp);
    }
    return rc;
}

static void fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* The app's version pointer <dir>/model.ptr: {token, seq, file, time}. No pointer: a zero
 * version and file "model.tsra" (apps written before versioned files). */
static void read_ptr(const char *dir, tsr_engined_version_t *v, char *file, size_t file_n) {
    char path[4200];
    memset(v, 0, sizeof *v);
    snprintf(file, file_n, "model.tsra");
    snprintf(path, sizeof path, "%s/model.ptr", dir);
    json_t *p = json_load_file(path, 0, NULL);
    if (p == NULL) {
        return;
    }
    const char *f = json_string_value(json_object_get(p, "file"));
    const char *t = json_string_value(json_object_get(p, "time"));
    json_int_t tok = json_integer_value(json_object_get(p, "token"));
    json_int_t seq = json_integer_value(json_object_get(p, "seq"));
    if (f != NULL && strchr(f, '/') == NULL && f[0] != '.' && tok >= 0 && seq > 0) {
        v->token = (uint64_t)tok;
        v->seq = (uint64_t)seq;
        snprintf(v->time, sizeof v->time, "%s", t != NULL ? t : "");
        snprintf(file, file_n, "%s", f);
    }
    json_decref(p);
}

static tsr_err_t files_version(void *ud, const char *tenant_id, const char *app_id,
                               tsr_engined_version_t *ver, tsr_error_t *err) {
    files_t *f = ud;
    char dir[4096], file[256];
    memset(ver, 0, sizeof *ver);
    if (!id_is_valid(app_id)) {
        return tsr_error_set(err, TSR_ENOTFOUND, "app not found");
    }
    (void)tenant_id; /* the pointer says nothing without the document: callers hold the app */
    snprintf(dir, sizeof dir, "%s/%s", f->root, app_id);
    read_ptr(dir, ver, file, sizeof file);
    return TSR_OK;
}

static tsr_err_t files_put_model(void *ud, const char *tenant_id, const char *app_id,
                                 const uint8_t *buf, size_t n, const uint64_t *fence,
                                 tsr_engined_version_t *out, tsr_error_t *err) {
    files_t *f = ud;
    json_t *doc = NULL;
    tsr_err_t rc = files_get(ud, tenant_id, app_id, &doc, err);
    json_decref(doc);
    if (rc != TSR_OK) {
        return rc;
    }
    char dir[4096], staged[4400], path[4400], lock[4400], old[256], file[256];
    snprintf(dir, sizeof dir, "%s/%s", f->root, app_id);
    /* The new model goes to a file of its own first: a crash (or a refused switch) leaves the
     * current version untouched; a half-written file is never pointed to. */
    snprintf(staged, sizeof staged, "%s/model.staged.%ld.%llu", dir, (long)getpid(),
             (unsigned long long)tsr_mono_ms());
    if ((rc = write_atomic(staged, buf, n, err)) != TSR_OK) {
        return rc;
    }
    snprintf(lock, sizeof lock, "%s/model.lock", dir);
    int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lfd < 0 || flock(lfd, LOCK_EX) != 0) {
        rc = tsr_error_set(err, TSR_EIO, "lock %s: %s", lock, strerror(errno));
        goto out;
    }
    tsr_engined_version_t cur, next = {0};
    read_ptr(dir, &cur, old, sizeof old);
    if (fence != NULL && *fence <= cur.token) {
        rc = tsr_error_set(err, TSR_ECONFLICT,
                           "stale fencing token %llu: the app's model is at token %llu",
                           (unsigned long long)*fence, (unsigned long long)cur.token);
        goto out;
    }
    next.token = fence != NULL ? *fence : cur.token;
    next.seq = cur.seq + 1;
    tsr_time_format_rfc3339(tsr_wall_ms(), next.time);
    snprintf(file, sizeof file, "model-%llu-%llu.tsra", (unsigned long long)next.token,
             (unsigned long long)next.seq);
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (rename(staged, path) != 0) {
        rc = tsr_error_set(err, TSR_EIO, "rename %s: %s", path, strerror(errno));
        goto out;
    }
    staged[0] = '\0';
    fsync_dir(dir);
    json_t *ptr = json_pack("{sIsIssss}", "token", (json_int_t)next.token, "seq",
                            (json_int_t)next.seq, "file", file, "time", next.time);
    char *text = json_dumps(ptr, JSON_COMPACT);
    json_decref(ptr);
    char ppath[4400];
    snprintf(ppath, sizeof ppath, "%s/model.ptr", dir);
    rc = write_atomic(ppath, text, strlen(text), err);
    free(text);
    if (rc != TSR_OK) {
        unlink(path);
        goto out;
    }
    fsync_dir(dir);
    if (strcmp(old, file) != 0) {
        /* Readers open the file the pointer names and read it whole; one that lost the race
         * with this unlink retries with the new pointer. */
        snprintf(path, sizeof path, "%s/%s", dir, old);
        (void)unlink(path);
    }
    if (out != NULL) {
        *out = next;
    }
out:
    if (staged[0] != '\0') {
        unlink(staged);
    }
    if (lfd >= 0) {
        close(lfd); /* releases the flock */
    }
    return rc;
}

static tsr_err_t read_file(const char *path, uint8_t **buf, size_t *n, tsr_error_t *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return tsr_error_set(err, errno == ENOENT ? TSR_ENOTFOUND : TSR_EIO, "open %s: %s", path,
                             strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 0 || st.st_size > MAX_MODEL_FILE) {
        close(fd);
        return tsr_error_set(err, TSR_ETOOBIG, "%s: unusable size", path);
    }
    size_t len = (size_t)st.st_size, off = 0;
    uint8_t *b = tsr_xmalloc(len + 1);
    while (off < len) {
        ssize_t r = read(fd, b + off, len - off);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        off += (size_t)r;
    }
    close(fd);
    if (off != len) {
        free(b);
        return tsr_error_set(err, TSR_EIO, "%s: short read", path);
    }
    *buf = b;
    *n = len;
    return TSR_OK;
}

static tsr_err_t files_get_model(void *ud, const char *tenant_id, const char *app_id, uint8_t **buf,
                                 size_t *n, tsr_engined_version_t *ver, tsr_error_t *err) {
    files_t *f = ud;
    json_t *doc = NULL;
    *buf = NULL;
    *n = 0;
    tsr_err_t rc = files_get(ud, tenant_id, app_id, &doc, err);
    json_decref(doc);
    if (rc != TSR_OK) {
        return rc;
    }
    char dir[4096], file[256], path[4400];
    snprintf(dir, sizeof dir, "%s/%s", f->root, app_id);
    for (int attempt = 0; attempt < 5; attempt++) {
        tsr_engined_version_t v;
        read_ptr(dir, &v, file, sizeof file);
        snprintf(path, sizeof path, "%s/%s", dir, file);
        rc = read_file(path, buf, n, err);
        if (rc == TSR_OK && ver != NULL) {
            *ver = v;
        }
        /* ENOTFOUND with a pointer: a newer version replaced the file after we read the
         * pointer; read the pointer again. */
        if (rc != TSR_ENOTFOUND || v.seq == 0) {
            break;
        }
    }
    return rc;
}

static tsr_err_t files_list(void *ud, const char *tenant_id, json_t **ids, tsr_error_t *err) {
    files_t *f = ud;
    /* Scans every app: fine on one machine; pkg/store's tenant index replaces it. */
    DIR *dir = opendir(f->root);
    if (dir == NULL) {
        return tsr_error_set(err, TSR_EIO, "opendir %s: %s", f->root, strerror(errno));
    }
    *ids = json_array();
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        json_t *doc = NULL;
        if (id_is_valid(de->d_name) && files_get(f, tenant_id, de->d_name, &doc, NULL) == TSR_OK) {
            json_array_append_new(*ids, json_string(de->d_name));
        }
        json_decref(doc);
    }
    closedir(dir);
    return TSR_OK;
}

static void files_close(void *ud) {
    files_t *f = ud;
    free(f->root);
    free(f);
}

tsr_err_t tsr_engined_appstore_files_open(const char *root, tsr_engined_appstore_t *out,
                                          tsr_error_t *err) {
    if (mkdir(root, 0700) != 0 && errno != EEXIST) {
        return tsr_error_set(err, TSR_EIO, "mkdir %s: %s", root, strerror(errno));
    }
    files_t *f = tsr_xcalloc(1, sizeof *f);
    f->root = tsr_xstrdup(root);
    *out = (tsr_engined_appstore_t){.ud = f,
                                    .get = files_get,
                                    .create = files_create,
                                    .put = files_put,
                                    .put_model = files_put_model,
                                    .get_model = files_get_model,
                                    .version = files_version,
                                    .list = files_list,
                                    .close = files_close};
    return TSR_OK;
}

/* ---- principal ------------------------------------------------------------------------------ */

tsr_err_t tsr_engined_principal_format(const char *tenant_id, const char *user_id, char **out,
                                       tsr_error_t *err) {
    *out = NULL;
    if (tenant_id == NULL || user_id == NULL || tenant_id[0] == '\0' || user_id[0] == '\0' ||
        !id_is_valid(tenant_id)) {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "no authenticated principal");
    }
    size_t n = strlen(tenant_id) + strlen(user_id) + 2;
    *out = tsr_xmalloc(n);
    snprintf(*out, n, "%s/%s", tenant_id, user_id);
    return TSR_OK;
}

/* The tenant part of a session user id ("<tenant>/<user>") into buf; false when malformed. */
static bool principal_tenant(const char *user, char *buf, size_t n) {
    const char *slash = user ? strchr(user, '/') : NULL;
    if (slash == NULL || (size_t)(slash - user) >= n || slash == user) {
        return false;
    }
    memcpy(buf, user, (size_t)(slash - user));
    buf[slash - user] = '\0';
    return id_is_valid(buf);
}

#define MAX_ROLES_CACHED 100000 /* principals whose roles are remembered */

tsr_err_t tsr_engined_authenticate(void *ud, tsr_req_t *req, char **user_id, tsr_error_t *err) {
    tsr_engined_t *e = ud;
    tsr_err_t rc = tsr_engined_principal_format(tsr_req_header(req, "X-Tsr-Tenant-Id"),
                                                tsr_req_header(req, "X-Tsr-User-Id"), user_id, err);
    if (rc == TSR_OK && e != NULL) {
        /* The QIX backend only sees the session's user id; spaces' decisions need the roles
         * (TenantAdmin sees every app of its tenant). */
        const char *roles = tsr_req_header(req, "X-Tsr-Roles");
        pthread_mutex_lock(&e->mu);
        if (json_object_size(e->roles) >= MAX_ROLES_CACHED) {
            json_object_clear(e->roles);
        }
        json_object_set_new(e->roles, *user_id, json_string(roles ? roles : ""));
        pthread_mutex_unlock(&e->mu);
    }
    return rc;
}

/* ---- service state and the app registry ------------------------------------------------------ */

static void *watch_main(void *arg);

tsr_err_t tsr_engined_create(const tsr_engined_opts_t *opts, tsr_engined_t **out,
                             tsr_error_t *err) {
    if (opts == NULL || opts->store.get == NULL || opts->data_root == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "engined: a store and a data root are required");
    }
    tsr_engined_t *e = tsr_xcalloc(1, sizeof *e);
    e->store = opts->store;
    e->data_root = tsr_xstrdup(opts->data_root);
    e->create_on_open = opts->create_on_open;
    e->access = opts->access;
    e->mem_budget = opts->memory_bytes;
    e->cache = opts->cache_bytes > 0 ? tsr_engine_cache_create(opts->cache_bytes) : NULL;
    e->roles = json_object();
    e->spaces_url = opts->spaces_url != NULL ? tsr_xstrdup(opts->spaces_url) : NULL;
    e->watch_ms = opts->watch_ms;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    if (e->watch_ms > 0 && pthread_create(&e->watcher, NULL, watch_main, e) == 0) {
        e->watching = true;
    }
    *out = e;
    return TSR_OK;
}

static tsr_err_t mkdir_p(const char *path, tsr_error_t *err) {
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof buf) {
        return tsr_error_set(err, TSR_EINVAL, "path too long");
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
                return tsr_error_set(err, TSR_EIO, "mkdir %s: %s", buf, strerror(errno));
            }
            buf[i] = c;
        }
    }
    return TSR_OK;
}

#define WATCH_MS 500 /* how often serving replicas look for model versions written elsewhere */

tsr_err_t tsr_engined_create_from_config(tsr_engined_t **out, tsr_error_t *err) {
    char apps[4096], data[4096];
    const char *state = tsr_config_get("TSR_STATE_DIR");
    bool create = false;
    tsr_err_t rc = tsr_config_get_bool("TSR_ENGINE_CREATE_ON_OPEN", &create, err);
    if (rc != TSR_OK) {
        return rc;
    }
    snprintf(apps, sizeof apps, "%s/engine/apps", state);
    snprintf(data, sizeof data, "%s/engine/datafiles", state);
    int64_t cache = 0, memory = 0;
    if ((rc = tsr_config_get_int("TSR_ENGINE_CACHE_BYTES", 0, INT64_C(1) << 40, &cache, err)) !=
            TSR_OK ||
        (rc = tsr_config_get_int("TSR_ENGINE_MEMORY_BYTES", 0, INT64_C(1) << 44, &memory, err)) !=
            TSR_OK) {
        return rc;
    }
    tsr_engined_opts_t o = {.data_root = data,
                            .create_on_open = create,
                            .cache_bytes = (size_t)cache,
                            .memory_bytes = (size_t)memory,
                            .watch_ms = WATCH_MS};
    const char *spaces = tsr_config_get("TSR_ENGINE_SPACES_URL");
    char url[512];
    if (spaces[0] == '\0') {
        int64_t port = 0;
        if ((rc = tsr_config_get_int("TSR_PORT", 1, 65535 - 2, &port, err)) != TSR_OK) {
            return rc;
        }
        snprintf(url, sizeof url, "http://127.0.0.1:%lld", (long long)(port + 2));
        spaces = url;
    }
    if (strcmp(spaces, "off") != 0 &&
        (rc = tsr_engined_access_spaces_open(spaces, &o.access, err)) != TSR_OK) {
        return rc;
    }
    o.spaces_url = strcmp(spaces, "off") != 0 ? spaces : NULL;
    if ((rc = mkdir_p(apps, err)) != TSR_OK || (rc = mkdir_p(data, err)) != TSR_OK ||
        (rc = tsr_engined_appstore_files_open(apps, &o.store, err)) != TSR_OK) {
        if (o.access.close != NULL) {
            o.access.close(o.access.ud);
        }
        return rc;
    }
    rc = tsr_engined_create(&o, out, err);
    if (rc != TSR_OK) {
        o.store.close(o.store.ud);
        if (o.access.close != NULL) {
            o.access.close(o.access.ud);
        }
    }
    return rc;
}

void tsr_engined__model_unref(tsr_engined__app_t *a, tsr_engined__model_t *m) {
    (void)a;
    if (m != NULL && --m->refs == 0) {
        tsr_engine_model_destroy(m->m);
        free(m);
    }
}

static void app_free(tsr_engined__app_t *a) {
    tsr_engined__model_unref(a, a->model);
    json_decref(a->doc);
    free(a->docs);
    free(a->tenant_id);
    free(a->id);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

void tsr_engined_destroy(tsr_engined_t *e) {
    if (e == NULL) {
        return;
    }
    if (e->watching) {
        pthread_mutex_lock(&e->mu);
        e->stop = true;
        pthread_cond_signal(&e->cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->watcher, NULL);
    }
    while (e->apps != NULL) {
        tsr_engined__app_t *a = e->apps;
        e->apps = a->next;
        app_free(a);
    }
    if (e->store.close != NULL) {
        e->store.close(e->store.ud);
    }
    if (e->access.close != NULL) {
        e->access.close(e->access.ud);
    }
    json_decref(e->roles);
    tsr_engine_cache_destroy(e->cache);
    free(e->data_root);
    free(e->spaces_url);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

static json_t *new_app_doc(const char *tenant_id, const char *app_id, const char *title) {
    char now[25];
    tsr_time_format_rfc3339(tsr_wall_ms(), now);
    json_t *d = json_object();
    json_object_set_new(d, "id", json_string(app_id));
    json_object_set_new(d, "tenantId", json_string(tenant_id));
    json_object_set_new(d, "title", json_string(title ? title : app_id));
    json_object_set_new(d, "script", json_string(""));
    json_object_set_new(d, "properties", json_object());
    json_object_set_new(d, "objects", json_object());
    json_object_set_new(d, "hasData", json_false());
    json_object_set_new(d, "lastReloadTime", json_string(""));
    json_object_set_new(d, "createdDate", json_string(now));
    json_object_set_new(d, "modifiedDate", json_string(now));
    return d;
}

tsr_err_t tsr_engined_app_create(tsr_engined_t *e, const char *tenant_id, const char *app_id,
                                 const char *title, tsr_error_t *err) {
    if (!id_is_valid(tenant_id) || !id_is_valid(app_id)) {
        return tsr_error_set(err, TSR_EINVAL, "invalid tenant or app id");
    }
    json_t *d = new_app_doc(tenant_id, app_id, title);
    tsr_err_t rc = e->store.create(e->store.ud, tenant_id, app_id, d, err);
    json_decref(d);
    return rc;
}

/* The loaded app (tenant_id, app_id): from memory, else from the store, else (create) a new
 * one. Another tenant's id: TSR_ENOTFOUND, whatever create says. */
static tsr_err_t app_get(tsr_engined_t *e, const char *tenant_id, const char *app_id, bool create,
                         tsr_engined__app_t **out, tsr_error_t *err) {
    tsr_err_t rc = TSR_OK;
    json_t *doc = NULL;
    pthread_mutex_lock(&e->mu);
    for (tsr_engined__app_t *a = e->apps; a != NULL; a = a->next) {
        if (strcmp(a->id, app_id) == 0) {
            if (strcmp(a->tenant_id, tenant_id) != 0) {
                rc = tsr_error_set(err, TSR_ENOTFOUND, "app not found");
            }
            *out = a;
            goto out;
        }
    }
    rc = e->store.get(e->store.ud, tenant_id, app_id, &doc, err);
    if (rc == TSR_ENOTFOUND && create && id_is_valid(app_id)) {
        doc = new_app_doc(tenant_id, app_id, NULL);
        rc = e->store.create(e->store.ud, tenant_id, app_id, doc, err);
        if (rc == TSR_ECONFLICT) {
            rc = tsr_error_set(err, TSR_ENOTFOUND, "app not found");
        }
    }
    if (rc != TSR_OK) {
        goto out;
    }
    tsr_engined__app_t *a = tsr_xcalloc(1, sizeof *a);
    a->e = e;
    a->tenant_id = tsr_xstrdup(tenant_id);
    a->id = tsr_xstrdup(app_id);
    a->doc = doc;
    doc = NULL;
    pthread_mutex_init(&a->mu, NULL);
    a->next = e->apps;
    e->apps = a;
    *out = a;
out:
    pthread_mutex_unlock(&e->mu);
    json_decref(doc);
    if (rc != TSR_OK) {
        *out = NULL;
    }
    return rc;
}

tsr_err_t tsr_engined__app_save(tsr_engined__app_t *a, tsr_error_t *err) {
    char now[25];
    tsr_time_format_rfc3339(tsr_wall_ms(), now);
    json_object_set_new(a->doc, "modifiedDate", json_string(now));
    return a->e->store.put(a->e->store.ud, a->tenant_id, a->id, a->doc, err);
}

/* Run a script into a new model (no lock held: it may take long). */
static tsr_err_t run_script(tsr_engined__app_t *a, const char *script, tsr_engine_model_t **m,
                            char **log, tsr_error_t *err) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", a->e->data_root, a->tenant_id);
    tsr_err_t rc = mkdir_p(dir, err);
    if (rc != TSR_OK) {
        if (log != NULL) {
            *log = tsr_xstrdup(err ? err->msg : "cannot create the data folder");
        }
        return rc;
    }
    tsr_engine_reload_opts_t o = {.data_dir = dir};
    return tsr_engine_reload(script, strlen(script), &o, m, log, err);
}

/* An estimate of a model's memory: bit-packed columns plus per-value symbol overhead. */
static size_t model_bytes(const tsr_engine_model_t *m) {
    size_t b = 0;
    for (size_t t = 0; t < tsr_engine_model_table_count(m); t++) {
        size_t rows = tsr_engine_model_table_rows(m, t);
        for (size_t c = 0; c < tsr_engine_model_table_field_count(m, t); c++) {
            b += rows / 8 * tsr_engine_model_table_field_bits(m, t, c) + 64;
        }
    }
    for (size_t f = 0; f < tsr_engine_model_field_count(m); f++) {
        b += tsr_engine_model_field_symbol_count(m, f) * 48 + 256;
    }
    return b;
}

/* Caller holds a->mu. */
static void swap_model(tsr_engined__app_t *a, tsr_engine_model_t *m) {
    tsr_engined__model_t *nm = tsr_xcalloc(1, sizeof *nm);
    nm->m = m;
    nm->refs = 1;
    tsr_engined__model_unref(a, a->model);
    a->model = nm;
    a->loaded = true;
    a->bytes = model_bytes(m);
}

void tsr_engined__evict(tsr_engined_t *e, const tsr_engined__app_t *keep) {
    if (e->mem_budget == 0) {
        return;
    }
    pthread_mutex_lock(&e->mu);
    size_t used = 0;
    for (tsr_engined__app_t *a = e->apps; a != NULL; a = a->next) {
        pthread_mutex_lock(&a->mu);
        used += a->model != NULL ? a->bytes : 0;
        pthread_mutex_unlock(&a->mu);
    }
    while (used > e->mem_budget) {
        tsr_engined__app_t *victim = NULL;
        uint64_t oldest = UINT64_MAX;
        for (tsr_engined__app_t *a = e->apps; a != NULL; a = a->next) {
            pthread_mutex_lock(&a->mu);
            if (a != keep && a->model != NULL && a->ndocs == 0 && a->last_used_ms < oldest) {
                victim = a;
                oldest = a->last_used_ms;
            }
            pthread_mutex_unlock(&a->mu);
        }
        if (victim == NULL) {
            break; /* everything loaded is in use: over budget until sessions close */
        }
        pthread_mutex_lock(&victim->mu);
        used -= victim->bytes;
        tsr_engined__model_unref(victim, victim->model);
        victim->model = NULL;
        victim->loaded = false;
        victim->bytes = 0;
        pthread_mutex_unlock(&victim->mu);
        tsr_log_info(NULL, "engined: app %s unloaded (memory budget)", victim->id);
    }
    pthread_mutex_unlock(&e->mu);
}

void tsr_engined_memory(tsr_engined_t *e, size_t *apps_loaded, size_t *bytes) {
    size_t n = 0, b = 0;
    pthread_mutex_lock(&e->mu);
    for (tsr_engined__app_t *a = e->apps; a != NULL; a = a->next) {
        pthread_mutex_lock(&a->mu);
        if (a->model != NULL) {
            n++;
            b += a->bytes;
        }
        pthread_mutex_unlock(&a->mu);
    }
    pthread_mutex_unlock(&e->mu);
    *apps_loaded = n;
    *bytes = b;
}

tsr_err_t tsr_engined__app_reload(tsr_engined__app_t *a, char **log, tsr_error_t *err) {
    pthread_mutex_lock(&a->mu);
    const char *cur = json_string_value(json_object_get(a->doc, "script"));
    char *script = tsr_xstrdup(cur ? cur : "");
    pthread_mutex_unlock(&a->mu);
    tsr_engine_model_t *m = NULL;
    tsr_err_t rc = run_script(a, script, &m, log, err);
    if (rc != TSR_OK) {
        free(script);
        return rc;
    }
    /* The model file first: a crash before the document says hasData leaves the old state. */
    uint8_t *file = NULL;
    size_t file_n = 0;
    tsr_engine_app_meta_t meta = {.script = script, .script_len = strlen(script)};
    rc = tsr_engine_app_save_mem(m, &meta, NULL, &file, &file_n, err);
    tsr_engined_version_t ver = {0};
    pthread_mutex_lock(&a->mu);
    a->saving = true;
    pthread_mutex_unlock(&a->mu);
    if (rc == TSR_OK && a->e->store.put_model != NULL) {
        rc = a->e->store.put_model(a->e->store.ud, a->tenant_id, a->id, file, file_n, NULL, &ver,
                                   err);
    }
    if (rc != TSR_OK) {
        pthread_mutex_lock(&a->mu);
        a->saving = false;
        pthread_mutex_unlock(&a->mu);
    }
    free(file);
    free(script);
    if (rc != TSR_OK) {
        tsr_engine_model_destroy(m);
        return rc;
    }
    char now[25];
    tsr_time_format_rfc3339(tsr_wall_ms(), now);
    pthread_mutex_lock(&a->mu);
    swap_model(a, m);
    a->ver = ver;
    a->saving = false;
    json_object_set_new(a->doc, "hasData", json_true());
    json_object_set_new(a->doc, "lastReloadTime", json_string(now));
    rc = tsr_engined__app_save(a, err);
    pthread_mutex_unlock(&a->mu);
    return rc;
}

/* First open after a start: load the model of an app that had data from its model file (or,
 * when it has none, by running its script again). A failure leaves the app without data,
 * logged. */
static void app_ensure_loaded(tsr_engined__app_t *a) {
    pthread_mutex_lock(&a->mu);
    tsr_engined_version_t ver = {0};
    if (!a->loaded && a->e->store.version != NULL) {
        /* A reloader may have written a model this replica's document does not know of. */
        (void)a->e->store.version(a->e->store.ud, a->tenant_id, a->id, &ver, NULL);
    }
    if (!a->loaded && (json_is_true(json_object_get(a->doc, "hasData")) || ver.seq > 0)) {
        tsr_engine_model_t *m = NULL;
        tsr_error_t err = {0};
        uint8_t *file = NULL;
        size_t file_n = 0;
        const char *script = json_string_value(json_object_get(a->doc, "script"));
        /* Held on purpose: other sessions opening the app wait for the same model. The model
         * file when there is one; otherwise (older apps) the stored script runs again. */
        bool ok = a->e->store.get_model != NULL &&
                  a->e->store.get_model(a->e->store.ud, a->tenant_id, a->id, &file, &file_n, &ver,
                                        &err) == TSR_OK &&
                  tsr_engine_app_open_mem(file, file_n, NULL, &m, NULL, &err) == TSR_OK;
        if (!ok) {
            m = NULL;
            ok = run_script(a, script ? script : "", &m, NULL, &err) == TSR_OK;
        }
        if (ok) {
            swap_model(a, m);
            a->ver = ver;
            if (ver.seq > 0) {
                json_object_set_new(a->doc, "hasData", json_true());
                json_object_set_new(a->doc, "lastReloadTime", json_string(ver.time));
            }
        } else {
            tsr_log_ctx_t ctx = {.tenant_id = a->tenant_id};
            tsr_log_warn(&ctx, "engined: app %s: rebuilding the model failed: %s", a->id, err.msg);
        }
        free(file);
    }
    a->loaded = true;
    pthread_mutex_unlock(&a->mu);
}

void tsr_engined__app_push(tsr_engined__app_t *a, tsr_engined__doc_t *skip, const char *obj_id,
                           bool lists) {
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < a->ndocs; i++) {
        tsr_engined__doc_t *d = a->docs[i];
        if (d == skip) {
            continue;
        }
        pthread_mutex_lock(&d->mu);
        int *h = tsr_xmalloc((d->nobjs + 1) * sizeof *h);
        size_t n = 0;
        if (obj_id == NULL && d->handle > 0) {
            h[n++] = d->handle;
        }
        for (size_t j = 0; j < d->nobjs; j++) {
            if (obj_id == NULL || strcmp(d->objs[j]->id, obj_id) == 0 ||
                (lists && d->objs[j]->lists_objects)) {
                h[n++] = d->objs[j]->handle;
            }
        }
        pthread_mutex_unlock(&d->mu);
        if (n > 0) {
            tsr_qix_session_push_change(d->s, h, n);
        }
        free(h);
    }
    pthread_mutex_unlock(&a->mu);
}

/* ---- model versions written elsewhere ----------------------------------------------------------
 */

static bool ver_newer(const tsr_engined_version_t *a, const tsr_engined_version_t *b) {
    return a->seq > b->seq;
}

/* Swap in the stored model of a when it is newer than the loaded one; push "change" to every
 * handle of every session of the app. */
static void app_refresh(tsr_engined__app_t *a) {
    tsr_engined_version_t v = {0};
    pthread_mutex_lock(&a->mu);
    bool loaded = a->loaded && !a->saving;
    tsr_engined_version_t cur = a->ver;
    pthread_mutex_unlock(&a->mu);
    if (!loaded || a->e->store.version == NULL ||
        a->e->store.version(a->e->store.ud, a->tenant_id, a->id, &v, NULL) != TSR_OK ||
        !ver_newer(&v, &cur)) {
        return;
    }
    uint8_t *file = NULL;
    size_t n = 0;
    tsr_engine_model_t *m = NULL;
    tsr_error_t err = {0};
    if (a->e->store.get_model(a->e->store.ud, a->tenant_id, a->id, &file, &n, &v, &err) != TSR_OK ||
        tsr_engine_app_open_mem(file, n, NULL, &m, NULL, &err) != TSR_OK) {
        tsr_log_ctx_t ctx = {.tenant_id = a->tenant_id};
        tsr_log_warn(&ctx, "engined: app %s: loading model version %llu.%llu failed: %s", a->id,
                     (unsigned long long)v.token, (unsigned long long)v.seq, err.msg);
        free(file);
        return;
    }
    free(file);
    pthread_mutex_lock(&a->mu);
    bool swapped = a->loaded && !a->saving && ver_newer(&v, &a->ver);
    if (swapped) {
        swap_model(a, m);
        a->ver = v;
        json_object_set_new(a->doc, "hasData", json_true());
        json_object_set_new(a->doc, "lastReloadTime", json_string(v.time));
    }
    pthread_mutex_unlock(&a->mu);
    if (!swapped) {
        tsr_engine_model_destroy(m);
        return;
    }
    tsr_log_ctx_t ctx = {.tenant_id = a->tenant_id};
    tsr_log_info(&ctx, "engined: app %s: model version %llu.%llu swapped in", a->id,
                 (unsigned long long)v.token, (unsigned long long)v.seq);
    tsr_engined__app_push(a, NULL, NULL, false);
    tsr_engined__evict(a->e, a);
}

static void *watch_main(void *arg) {
    tsr_engined_t *e = arg;
    pthread_mutex_lock(&e->mu);
    while (!e->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + (int64_t)e->watch_ms * 1000000;
        ts.tv_sec += (time_t)(ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&e->cv, &e->mu, &ts);
        if (e->stop) {
            break;
        }
        /* Apps stay registered until destroy (only their models leave), so the list can be
         * walked without e->mu while refreshing; new apps are pushed at the head. */
        tsr_engined__app_t *head = e->apps;
        pthread_mutex_unlock(&e->mu);
        for (tsr_engined__app_t *a = head; a != NULL; a = a->next) {
            app_refresh(a);
        }
        pthread_mutex_lock(&e->mu);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* ---- the QIX backend ------------------------------------------------------------------------ */

/* What user (a session user id) may do to app_id, and the loaded app. With an access hook
 * spaces decides whether the app exists (its content is created here on first use); without
 * one the app store does. TSR_ENOTFOUND (close 4204 / 1003), TSR_EFORBIDDEN (4203). */
static tsr_err_t decide(tsr_engined_t *e, const char *user, const char *app_id,
                        tsr_engined__app_t **app, unsigned *actions, tsr_error_t *err) {
    char tenant[MAX_ID + 1];
    *app = NULL;
    *actions = 0;
    if (!principal_tenant(user, tenant, sizeof tenant) || !id_is_valid(app_id)) {
        return tsr_error_set(err, TSR_ENOTFOUND, "app not found");
    }
    if (e->access.decide == NULL) {
        *actions = TSR_ENGINED_ALL;
        return app_get(e, tenant, app_id, e->create_on_open, app, err);
    }
    char *roles = NULL;
    pthread_mutex_lock(&e->mu);
    const char *r = json_string_value(json_object_get(e->roles, user));
    roles = r ? tsr_xstrdup(r) : NULL;
    pthread_mutex_unlock(&e->mu);
    tsr_engined_principal_t who = {
        .tenant_id = tenant, .user_id = user + strlen(tenant) + 1, .roles = roles};
    tsr_err_t rc = e->access.decide(e->access.ud, &who, app_id, actions, err);
    free(roles);
    if (rc == TSR_OK && (*actions & TSR_ENGINED_READ) == 0) {
        rc = tsr_error_set(err, TSR_EFORBIDDEN, "no access to the app");
    }
    if (rc == TSR_OK) {
        rc = app_get(e, tenant, app_id, true, app, err);
    }
    return rc;
}

static tsr_err_t be_check_app(void *ud, const char *user_id, const char *app_id, tsr_error_t *err) {
    tsr_engined__app_t *a = NULL;
    unsigned actions = 0;
    return decide(ud, user_id, app_id, &a, &actions, err);
}

static tsr_err_t be_open_doc(void *ud, tsr_qix_session_t *s, const char *app_id,
                             const char *user_id, bool no_data, const tsr_qix_type_t **type,
                             void **doc, tsr_error_t *err) {
    tsr_engined__app_t *a = NULL;
    unsigned actions = 0;
    (void)no_data;
    tsr_err_t rc = decide(ud, user_id, app_id, &a, &actions, err);
    if (rc == TSR_EFORBIDDEN) {
        /* OpenDoc has no 4203: no access reads as a missing app (1003), as Qlik's does. */
        rc = tsr_error_set(err, TSR_ENOTFOUND, "app not found");
    }
    if (rc != TSR_OK) {
        return rc;
    }
    tsr_engined__doc_t *d = tsr_xcalloc(1, sizeof *d);
    d->app = a;
    d->s = s;
    d->tenant_id = tsr_xstrdup(a->tenant_id);
    d->actions = actions;
    pthread_mutex_init(&d->mu, NULL);
    pthread_mutex_lock(&a->mu);
    if (a->ndocs == a->capdocs) {
        a->capdocs = a->capdocs ? a->capdocs * 2 : 8;
        a->docs = tsr_xrealloc(a->docs, a->capdocs * sizeof *a->docs);
    }
    a->docs[a->ndocs++] = d;
    a->last_used_ms = tsr_mono_ms();
    pthread_mutex_unlock(&a->mu);
    /* Registered first: an app with an open session is never unloaded under it. */
    app_ensure_loaded(a);
    tsr_engined__doc_sync(d);
    tsr_engined__evict(a->e, a);
    *type = &tsr_engined__doc_type;
    *doc = d;
    return TSR_OK;
}

static tsr_err_t be_list_docs(void *ud, const char *user_id, json_t **entries, tsr_error_t *err) {
    tsr_engined_t *e = ud;
    char tenant[MAX_ID + 1];
    *entries = json_array();
    if (!principal_tenant(user_id, tenant, sizeof tenant)) {
        return TSR_OK;
    }
    json_t *ids = NULL;
    tsr_err_t rc = e->store.list(e->store.ud, tenant, &ids, err);
    if (rc != TSR_OK) {
        return rc;
    }
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) {
        json_t *doc = NULL;
        tsr_engined__app_t *a = NULL;
        unsigned actions = TSR_ENGINED_ALL;
        /* Only the apps this user may open: spaces decides per app when it is asked. */
        if (e->access.decide != NULL &&
            decide(e, user_id, json_string_value(v), &a, &actions, NULL) != TSR_OK) {
            continue;
        }
        if (e->store.get(e->store.ud, tenant, json_string_value(v), &doc, NULL) != TSR_OK) {
            continue;
        }
        json_t *en = json_object();
        const char *title = json_string_value(json_object_get(doc, "title"));
        json_object_set_new(en, "qDocName", json_string(title ? title : json_string_value(v)));
        json_object_set_new(en, "qDocId", json_string(json_string_value(v)));
        json_object_set_new(en, "qTitle", json_string(title ? title : json_string_value(v)));
        json_object_set_new(en, "qFileSize", json_integer(0));
        json_object_set(en, "qFileTime", json_object_get(doc, "modifiedDate"));
        json_object_set(en, "qLastReloadTime", json_object_get(doc, "lastReloadTime"));
        json_object_set_new(en, "qReadOnly", json_boolean((actions & TSR_ENGINED_EDIT) == 0));
        json_object_set_new(en, "qMeta", json_object());
        json_object_set_new(en, "qThumbnail", tsr_engined__obj1("qUrl", json_string("")));
        json_array_append_new(*entries, en);
        json_decref(doc);
    }
    json_decref(ids);
    return TSR_OK;
}

tsr_qix_backend_t tsr_engined_backend(tsr_engined_t *e) {
    return (tsr_qix_backend_t){
        .ud = e, .check_app = be_check_app, .open_doc = be_open_doc, .list_docs = be_list_docs};
}

/* ---- REST: GET /api/v1/apps/{appId}/data/metadata ----------------------------------------- */

static json_t *metadata_json(const tsr_engine_model_t *m, size_t bytes) {
    json_t *fields = json_array(), *tables = json_array();
    size_t nt = m ? tsr_engine_model_table_count(m) : 0,
           nf = m ? tsr_engine_model_field_count(m) : 0;
    for (size_t f = 0; f < nf; f++) {
        json_t *src = json_array();
        for (size_t t = 0; t < nt; t++) {
            for (size_t c = 0; c < tsr_engine_model_table_field_count(m, t); c++) {
                if (tsr_engine_model_table_field(m, t, c) == f) {
                    json_array_append_new(src, json_string(tsr_engine_model_table_name(m, t)));
                }
            }
        }
        size_t card = tsr_engine_model_field_symbol_count(m, f);
        bool numeric = card > 0;
        for (size_t y = 0; y < card && y < 1000 && numeric; y++) {
            tsr_engine_dual_t v;
            numeric = tsr_engine_model_field_symbol(m, f, y, &v) == TSR_OK && v.is_num;
        }
        json_array_append_new(
            fields, json_pack("{ss so sb sb sb sb sI sI sb sb sb ss s[] sI ss}", "name",
                              tsr_engine_model_field_name(m, f), "src_tables", src, "is_system", 0,
                              "is_hidden", 0, "is_semantic", 0, "distinct_only", 0, "cardinal",
                              (json_int_t)card, "total_count", (json_int_t)card, "is_locked", 0,
                              "always_one_selected", 0, "is_numeric", numeric, "comment", "",
                              "tags", "byte_size", (json_int_t)(card * 48), "hash", ""));
    }
    for (size_t t = 0; t < nt; t++) {
        size_t rows = tsr_engine_model_table_rows(m, t), keys = 0, tb = 0;
        size_t ncols = tsr_engine_model_table_field_count(m, t);
        for (size_t c = 0; c < ncols; c++) {
            size_t f = tsr_engine_model_table_field(m, t, c);
            json_t *src = json_object_get(json_array_get(fields, f), "src_tables");
            keys += json_array_size(src) > 1 ? 1 : 0;
            tb += rows / 8 * tsr_engine_model_table_field_bits(m, t, c);
        }
        json_array_append_new(tables, json_pack("{ss sb sb sb sI sI sI ss sI}", "name",
                                                tsr_engine_model_table_name(m, t), "is_system", 0,
                                                "is_semantic", 0, "is_loose", 0, "no_of_rows",
                                                (json_int_t)rows, "no_of_fields", (json_int_t)ncols,
                                                "no_of_key_fields", (json_int_t)keys, "comment", "",
                                                "byte_size", (json_int_t)tb));
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return json_pack("{s{sI s{sI sI} sI} sI so so sb sb ss ss s[]}", "reload_meta",
                     "cpu_time_spent_ms", (json_int_t)0, "hardware", "logical_cores",
                     (json_int_t)(cores > 0 ? cores : 1), "total_memory", (json_int_t)0,
                     "peak_memory_bytes", (json_int_t)bytes, "static_byte_size", (json_int_t)bytes,
                     "fields", fields, "tables", tables, "has_section_access", 0,
                     "is_direct_query_mode", 0, "usage", "ANALYTICS", "source_app_id", "",
                     "tables_profiling_data");
}

static tsr_err_t h_metadata(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_engined_t *e = ud;
    char *user = NULL;
    tsr_engined__app_t *a = NULL;
    unsigned actions = 0;
    tsr_err_t rc = tsr_engined_authenticate(e, req, &user, err);
    if (rc != TSR_OK) {
        return rc;
    }
    tsr_req_set_identity(req, tsr_req_header(req, "X-Tsr-Tenant-Id"),
                         tsr_req_header(req, "X-Tsr-User-Id"));
    rc = decide(e, user, tsr_req_param(req, "appId"), &a, &actions, err);
    free(user);
    if (rc != TSR_OK) {
        return rc;
    }
    app_ensure_loaded(a);
    /* A reference keeps the model alive while it is described (eviction may run meanwhile). */
    pthread_mutex_lock(&a->mu);
    tsr_engined__model_t *m = a->model;
    size_t bytes = a->bytes;
    if (m != NULL) {
        m->refs++;
    }
    pthread_mutex_unlock(&a->mu);
    json_t *body = metadata_json(m ? m->m : NULL, bytes);
    pthread_mutex_lock(&a->mu);
    tsr_engined__model_unref(a, m);
    pthread_mutex_unlock(&a->mu);
    tsr_req_reply_json(req, 200, body);
    return TSR_OK;
}

tsr_err_t tsr_engined_routes(tsr_httpd_t *h, tsr_engined_t *e, tsr_error_t *err) {
    return tsr_httpd_route(h, "GET", "/api/v1/apps/{appId}/data/metadata", h_metadata, e, err);
}
