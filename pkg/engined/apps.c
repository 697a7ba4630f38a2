/*
 * Apps: the file app store, the registry of apps and their models (unloaded by LRU within a
 * memory budget), access decisions, the QIX backend (check_app, open_doc, list_docs), the
 * principal of a session, reloads, change pushes to the other sessions of an app, the REST
 * data model metadata, app import/export and the content copy behind spaces' copy and publish.
 * Invariant: an app is found only through its tenant; another tenant's id is answered exactly
 * like a missing one (TSR_ENOTFOUND).
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
#include "spaces_client.h"

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
    snprintf(path, sizeof path, "%s/%s/tombstone", f->root, app_id);
    if (access(path, F_OK) == 0) {
        return tsr_error_set(err, TSR_ENOTFOUND, "app not found"); /* deleted */
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

/* A staged model file's name in the app's folder dir (unique per process and moment). */
static void staged_name(const char *dir, char *staged, size_t n) {
    static unsigned long seq;
    snprintf(staged, n, "%s/model.staged.%ld.%llu.%lu", dir, (long)getpid(),
             (unsigned long long)tsr_mono_ms(), __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
}

static tsr_err_t switch_model(const char *dir, char *staged, const uint64_t *fence,
                              tsr_engined_version_t *out, tsr_error_t *err);

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
    char dir[4096], staged[4400];
    snprintf(dir, sizeof dir, "%s/%s", f->root, app_id);
    /* The new model goes to a file of its own first: a crash (or a refused switch) leaves the
     * current version untouched; a half-written file is never pointed to. */
    staged_name(dir, staged, sizeof staged);
    if ((rc = write_atomic(staged, buf, n, err)) != TSR_OK) {
        return rc;
    }
    return switch_model(dir, staged, fence, out, err);
}

/* Make the complete, fsynced model file staged (in dir; removed whatever happens) the app's
 * current version: under an flock of dir/model.lock, renamed to model-<token>-<seq>.tsra and
 * the pointer switched, refused with TSR_ECONFLICT when fence is set and not greater than the
 * pointer's token. */
static tsr_err_t switch_model(const char *dir, char *staged, const uint64_t *fence,
                              tsr_engined_version_t *out, tsr_error_t *err) {
    tsr_err_t rc = TSR_OK;
    char path[4400], lock[4400], old[256], file[256];
    snprintf(lock, sizeof lock, "%s/model.lock", dir);
    int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lfd < 0 || flock(lfd, LOCK_EX) != 0) {
        rc = tsr_error_set(err, TSR_EIO, "lock %s: %s", lock, strerror(errno));
        goto out;
    }
    snprintf(path, sizeof path, "%s/tombstone", dir);
    if (access(path, F_OK) == 0) {
        /* Deleted (tsr_engined_app_tombstone holds this lock): no new version. */
        rc = tsr_error_set(err, TSR_ENOTFOUND, "app not found: it was deleted");
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

/* ---- deleted apps: tombstone, then removal after a grace period ----------------------------- */

/* Spaces owns an app's record; when it deletes one (com.tessera.v1.app.deleted) every engine
 * process writes a tombstone in the app's folder (once, atomically: link(2) of a complete file,
 * under the same model.lock flock as the version switch, so a reloader either switched before
 * or sees the tombstone and refuses). A tombstoned app is not found (opens close 4204, saves
 * and reloads fail). Any engine process sweeps: a folder tombstoned longer than the grace is
 * renamed to a unique trash name (rename is atomic: of two racing sweepers one wins, the other
 * gets ENOENT and skips), then removed. Trash left by a crash is removed by the next sweep. */

#define TOMBSTONE "tombstone"
#define TRASH_PREFIX ".trash-"

/* The file store's root, or NULL when e's store is another implementation. */
static const char *files_root(const tsr_engined_t *e) {
    return e != NULL && e->store.close == files_close ? ((const files_t *)e->store.ud)->root : NULL;
}

static bool tombstoned_at(const char *root, const char *app_id) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s/" TOMBSTONE, root, app_id);
    return access(path, F_OK) == 0;
}

bool tsr_engined_app_tombstoned(const tsr_engined_t *e, const char *app_id) {
    const char *root = files_root(e);
    return root != NULL && id_is_valid(app_id) && tombstoned_at(root, app_id);
}

tsr_err_t tsr_engined_app_tombstone(tsr_engined_t *e, const char *tenant_id, const char *app_id,
                                    tsr_error_t *err) {
    const char *root = files_root(e);
    if (root == NULL) {
        return tsr_error_set(err, TSR_EUNSUPPORTED, "app store has no folders");
    }
    if (tenant_id == NULL || tenant_id[0] == '\0' || !id_is_valid(app_id)) {
        return tsr_error_set(err, TSR_ENOTFOUND, "app not found");
    }
    char dir[4096], path[4400], tmp[4500], lock[4400];
    snprintf(dir, sizeof dir, "%s/%s", root, app_id);
    /* Tenant isolation: the event's tenant must own the folder (the document's tenantId). */
    snprintf(path, sizeof path, "%s/app.json", dir);
    json_t *d = json_load_file(path, 0, NULL);
    const char *t = json_string_value(json_object_get(d, "tenantId"));
    bool own = t != NULL && strcmp(t, tenant_id) == 0;
    json_decref(d);
    if (!own) {
        return tsr_error_set(err, TSR_ENOTFOUND, "app not found");
    }
    snprintf(lock, sizeof lock, "%s/model.lock", dir);
    int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lfd < 0 || flock(lfd, LOCK_EX) != 0) {
        tsr_err_t rc = tsr_error_set(err, TSR_EIO, "lock %s: %s", lock, strerror(errno));
        if (lfd >= 0) {
            close(lfd);
        }
        return rc;
    }
    static unsigned long seq;
    snprintf(path, sizeof path, "%s/" TOMBSTONE, dir);
    snprintf(tmp, sizeof tmp, "%s.%ld.%lu", path, (long)getpid(),
             __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
    char now[32];
    tsr_time_format_rfc3339(tsr_wall_ms(), now);
    json_t *ts = json_pack("{ssss}", "tenantId", tenant_id, "deletedAt", now);
    char *text = json_dumps(ts, JSON_COMPACT);
    json_decref(ts);
    tsr_err_t rc = write_atomic(tmp, text, strlen(text), err);
    free(text);
    if (rc == TSR_OK) {
        /* link fails with EEXIST when another process tombstoned first: the first one stays. */
        if (link(tmp, path) != 0 && errno != EEXIST) {
            rc = tsr_error_set(err, TSR_EIO, "link %s: %s", path, strerror(errno));
        }
        (void)unlink(tmp);
        fsync_dir(dir);
    }
    close(lfd);
    return rc;
}

/* Remove path and what is under it (app folders are flat; depth capped); missing is fine. */
static void rm_tree(int pfd, const char *name, int depth) {
    if (unlinkat(pfd, name, 0) == 0 || errno == ENOENT || depth > 4) {
        return;
    }
    int fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            rm_tree(dirfd(d), de->d_name, depth + 1);
        }
    }
    closedir(d);
    (void)unlinkat(pfd, name, AT_REMOVEDIR);
}

size_t tsr_engined_apps_sweep(tsr_engined_t *e, int64_t grace_ms) {
    const char *root = files_root(e);
    if (root == NULL) {
        return 0;
    }
    int rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rfd < 0) {
        return 0;
    }
    DIR *d = fdopendir(rfd);
    if (d == NULL) {
        close(rfd);
        return 0;
    }
    static unsigned long seq;
    size_t n = 0;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, TRASH_PREFIX, strlen(TRASH_PREFIX)) == 0) {
            rm_tree(rfd, de->d_name, 0); /* a crashed sweep's, or one racing now: both fine */
            continue;
        }
        if (!id_is_valid(de->d_name)) {
            continue;
        }
        char ts[4400], trash[300];
        struct stat st;
        snprintf(ts, sizeof ts, "%s/" TOMBSTONE, de->d_name);
        if (fstatat(rfd, ts, &st, 0) != 0 ||
            now_ms - ((int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000) <
                grace_ms) {
            continue;
        }
        snprintf(trash, sizeof trash, TRASH_PREFIX "%s.%ld.%llu.%lu", de->d_name, (long)getpid(),
                 (unsigned long long)tsr_mono_ms(), __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
        if (renameat(rfd, de->d_name, rfd, trash) != 0) {
            continue; /* ENOENT: another sweeper took it */
        }
        rm_tree(rfd, trash, 0);
        n++;
        tsr_log_info(NULL, "engined: deleted app %s removed from disk", de->d_name);
    }
    closedir(d);
    return n;
}

size_t tsr_engined_sweep_old_files(const char *dir, int64_t max_age_ms) {
    DIR *d = dir != NULL ? opendir(dir) : NULL;
    if (d == NULL) {
        return 0;
    }
    size_t n = 0;
    int64_t now_s = (int64_t)time(NULL);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (de->d_name[0] == '.' && (de->d_name[1] == '\0' || strcmp(de->d_name, "..") == 0)) {
            continue;
        }
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
            (now_s - (int64_t)st.st_mtime) * 1000 >= max_age_ms &&
            unlinkat(dirfd(d), de->d_name, 0) == 0) {
            n++;
        }
    }
    closedir(d);
    return n;
}

size_t tsr_engined_transfer_sweep(tsr_engined_t *e, int64_t max_age_ms) {
    if (e == NULL || e->transfer_root == NULL) {
        return 0;
    }
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/uploads", e->transfer_root);
    return tsr_engined_sweep_old_files(dir, max_age_ms);
}

struct tsr_engined_sweeper {
    tsr_engined_t *e;
    int64_t grace_ms;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
};

static void *sweeper_main(void *arg) {
    tsr_engined_sweeper_t *s = arg;
    /* Every grace/2, within [1 s, 60 s]: a folder goes at most that late after its grace. */
    int64_t every = s->grace_ms / 2 < 1000    ? 1000
                    : s->grace_ms / 2 > 60000 ? 60000
                                              : s->grace_ms / 2;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        pthread_mutex_unlock(&s->mu);
        (void)tsr_engined_apps_sweep(s->e, s->grace_ms);
        pthread_mutex_lock(&s->mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = (int64_t)ts.tv_nsec + (every % 1000) * 1000000;
        ts.tv_sec += (time_t)(every / 1000 + ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        while (!s->stop && pthread_cond_timedwait(&s->cv, &s->mu, &ts) == 0) {
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

tsr_err_t tsr_engined_sweeper_start(tsr_engined_t *e, int64_t grace_ms, tsr_engined_sweeper_t **out,
                                    tsr_error_t *err) {
    *out = NULL;
    if (files_root(e) == NULL) {
        return TSR_OK; /* nothing on disk to sweep */
    }
    tsr_engined_sweeper_t *s = tsr_xcalloc(1, sizeof *s);
    s->e = e;
    s->grace_ms = grace_ms;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->th, NULL, sweeper_main, s) != 0) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        free(s);
        return tsr_error_set(err, TSR_EINTERNAL, "cannot start the app sweeper");
    }
    *out = s;
    return TSR_OK;
}

void tsr_engined_sweeper_stop(tsr_engined_sweeper_t *s) {
    if (s == NULL) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
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
        const char *groups = tsr_req_header(req, "X-Tsr-Groups");
        pthread_mutex_lock(&e->mu);
        if (json_object_size(e->roles) >= MAX_ROLES_CACHED) {
            json_object_clear(e->roles);
            json_object_clear(e->groups);
        }
        json_object_set_new(e->roles, *user_id, json_string(roles ? roles : ""));
        json_object_set_new(e->groups, *user_id, json_string(groups ? groups : ""));
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
    e->groups = json_object();
    e->spaces_url = opts->spaces_url != NULL ? tsr_xstrdup(opts->spaces_url) : NULL;
    e->transfer_root = opts->transfer_root != NULL ? tsr_xstrdup(opts->transfer_root) : NULL;
    e->import_max = opts->import_max_bytes > 0 ? opts->import_max_bytes : (UINT64_C(1) << 30);
    e->export_ttl_ms = opts->export_ttl_ms > 0 ? opts->export_ttl_ms : UINT64_C(3600000);
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

static tsr_err_t transfer_config(const char *state, tsr_engined_opts_t *o, char *dir, size_t n,
                                 tsr_error_t *err);

void tsr_engined_set_token_source(tsr_engined_t *e, tsr_engined_token_fn fn, void *ud) {
    e->token_fn = fn;
    e->token_ud = ud;
}

tsr_err_t tsr_engined_create_from_config(tsr_engined_t **out, tsr_error_t *err) {
    char apps[4096], data[4096], transfer[4096];
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
    if ((rc = transfer_config(state, &o, transfer, sizeof transfer, err)) != TSR_OK) {
        if (o.access.close != NULL) {
            o.access.close(o.access.ud);
        }
        return rc;
    }
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
    json_decref(e->groups);
    tsr_engine_cache_destroy(e->cache);
    free(e->data_root);
    free(e->spaces_url);
    free(e->transfer_root);
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
            if (strcmp(a->tenant_id, tenant_id) != 0 || tsr_engined_app_tombstoned(e, app_id)) {
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
    char *roles = NULL, *groups = NULL, *token = NULL;
    pthread_mutex_lock(&e->mu);
    const char *r = json_string_value(json_object_get(e->roles, user));
    const char *g = json_string_value(json_object_get(e->groups, user));
    roles = r ? tsr_xstrdup(r) : NULL;
    groups = g ? tsr_xstrdup(g) : NULL;
    pthread_mutex_unlock(&e->mu);
    tsr_engined_principal_t who = {
        .tenant_id = tenant, .user_id = user + strlen(tenant) + 1, .roles = roles};
    tsr_err_t rc = TSR_OK;
    /* A QIX session outlives the user's platform token: spaces gets a service token naming the
     * session's (verified) principal instead. */
    if (e->token_fn != NULL) {
        rc = e->token_fn(e->token_ud, who.tenant_id, who.user_id, roles, groups, &token, err);
        who.token = token;
    }
    if (rc == TSR_OK) {
        rc = e->access.decide(e->access.ud, &who, app_id, actions, err);
    }
    free(token);
    free(groups);
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

/* ---- REST: app import and export ------------------------------------------------------------
 * Qlik's POST /api/v1/apps/import (the app file as an octet-stream body), POST
 * /api/v1/apps/{appId}/export (201 + Location) and GET /api/v1/temp-contents/{id}. The file is
 * pkg/engine's app file (zstd, checksummed): the model, the script, and the app document's
 * content (title, properties, objects, bookmarks, variables) as its "objects" JSON. Under
 * transfer_root, shared by the replicas: uploads/ (request bodies being received, removed with
 * the request) and temp/<id>.tsra + temp/<id>.json (an export's download and its owner and
 * expiry). Invariants: an import creates nothing (no record, no files) unless the whole file
 * opened; an export is answered only after spaces committed its audit event. */

#define TEMP_ID_HEX 32      /* hex characters of a temporary content id (128 random bits) */
#define TEMP_SWEEP_MAX 1000 /* directory entries one sweep of expired downloads looks at */
#define IMPORT_NAME_MAX 256 /* bytes of an app name taken from an imported file */

static tsr_err_t transfer_config(const char *state, tsr_engined_opts_t *o, char *dir, size_t n,
                                 tsr_error_t *err) {
    int64_t max = 0, ttl = 0;
    tsr_err_t rc;
    if ((rc = tsr_config_get_int("TSR_ENGINE_IMPORT_MAX_BYTES", 1, INT64_C(1) << 40, &max, err)) !=
            TSR_OK ||
        (rc = tsr_config_get_int("TSR_ENGINE_EXPORT_TTL_S", 1, 7 * 86400, &ttl, err)) != TSR_OK) {
        return rc;
    }
    snprintf(dir, n, "%s/engine/transfer", state);
    o->transfer_root = dir;
    o->import_max_bytes = (uint64_t)max;
    o->export_ttl_ms = (uint64_t)ttl * 1000;
    return TSR_OK;
}

/* The caller as spaces must see it (forwarded headers, including the platform token). */
static void transfer_who(tsr_req_t *req, tsr_spaces_client_principal_t *p) {
    p->tenant_id = tsr_req_header(req, "X-Tsr-Tenant-Id");
    p->user_id = tsr_req_header(req, "X-Tsr-User-Id");
    p->roles = tsr_req_header(req, "X-Tsr-Roles");
    p->token = tsr_req_header(req, "X-Tsr-Token");
}

/* A spaces answer that is not a success, as our error (its detail kept). */
static tsr_err_t spaces_refused(long status, const json_t *resp, const char *what,
                                tsr_error_t *err) {
    const char *d = json_string_value(
        json_object_get(json_array_get(json_object_get(resp, "errors"), 0), "detail"));
    tsr_err_t code = status == 400   ? TSR_EINVAL
                     : status == 401 ? TSR_EUNAUTHENTICATED
                     : status == 403 ? TSR_EFORBIDDEN
                     : status == 404 ? TSR_ENOTFOUND
                     : status == 409 ? TSR_ECONFLICT
                                     : TSR_EUNAVAILABLE;
    return tsr_error_set(err, code, "%s: %s", what, d != NULL ? d : "spaces refused");
}

static tsr_err_t query_bool(tsr_req_t *req, const char *name, bool *out, tsr_error_t *err) {
    const char *v = tsr_req_query(req, name);
    *out = false;
    if (v == NULL || v[0] == '\0' || strcmp(v, "false") == 0 || strcmp(v, "0") == 0) {
        return TSR_OK;
    }
    if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0) {
        *out = true;
        return TSR_OK;
    }
    return tsr_error_set(err, TSR_EINVAL, "%s must be true or false", name);
}

static bool temp_id_valid(const char *id) {
    if (id == NULL || strlen(id) != TEMP_ID_HEX) {
        return false;
    }
    for (size_t i = 0; i < TEMP_ID_HEX; i++) {
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

static void temp_paths(const tsr_engined_t *e, const char *id, char *file, char *meta, size_t n) {
    snprintf(file, n, "%s/temp/%s.tsra", e->transfer_root, id);
    snprintf(meta, n, "%s/temp/%s.json", e->transfer_root, id);
}

static void temp_remove(const tsr_engined_t *e, const char *id) {
    char file[4400], meta[4400];
    temp_paths(e, id, file, meta, sizeof file);
    /* The description first: without it the download is gone even if the file stays. */
    (void)unlink(meta);
    (void)unlink(file);
}

/* Remove expired downloads (bounded per call; every export sweeps). */
static void temp_sweep(const tsr_engined_t *e) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/temp", e->transfer_root);
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    int64_t now = (int64_t)tsr_wall_ms();
    struct dirent *de;
    for (int seen = 0; seen < TEMP_SWEEP_MAX && (de = readdir(d)) != NULL; seen++) {
        size_t n = strlen(de->d_name);
        if (n != TEMP_ID_HEX + 5 || strcmp(de->d_name + TEMP_ID_HEX, ".json") != 0) {
            continue;
        }
        char id[TEMP_ID_HEX + 1], path[4400];
        memcpy(id, de->d_name, TEMP_ID_HEX);
        id[TEMP_ID_HEX] = '\0';
        int pn = snprintf(path, sizeof path, "%s/%s.json", dir, id);
        if (pn < 0 || (size_t)pn >= sizeof path) {
            continue;
        }
        json_t *m = json_load_file(path, 0, NULL);
        json_int_t exp = json_integer_value(json_object_get(m, "expiresAtMs"));
        json_decref(m);
        if (temp_id_valid(id) && exp < now) {
            temp_remove(e, id);
        }
    }
    closedir(d);
}

/* A download name: the app's title in a safe charset, ".tsra". */
static void export_filename(const char *title, char *out, size_t n) {
    size_t o = 0;
    for (const char *p = title != NULL ? title : ""; *p != '\0' && o + 6 < n && o < 100; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.' || c == ' ';
        out[o++] = ok ? c : '_';
    }
    if (o == 0) {
        o = (size_t)snprintf(out, n, "app");
    }
    snprintf(out + o, n - o, ".tsra");
}

/* A model with no tables (an app never reloaded, or NoData). */
static tsr_err_t empty_model(tsr_engined_t *e, tsr_engine_model_t **m, tsr_error_t *err) {
    tsr_engine_reload_opts_t o = {.data_dir = e->data_root};
    return tsr_engine_reload("", 0, &o, m, NULL, err);
}

static tsr_err_t h_export(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_engined_t *e = ud;
    char *user = NULL, *objects = NULL, *text = NULL;
    tsr_engined__app_t *a = NULL;
    tsr_engined__model_t *m = NULL;
    tsr_engine_model_t *empty = NULL;
    json_t *doc = NULL, *meta = NULL, *resp = NULL;
    char tid[TEMP_ID_HEX + 1], file[4400], mpath[4400], fname[128], loc[128];
    bool written = false, no_data = false;
    unsigned actions = 0;
    const char *app_id = tsr_req_param(req, "appId");
    tsr_err_t rc = tsr_engined_authenticate(e, req, &user, err);
    if (rc != TSR_OK) {
        return rc;
    }
    tsr_req_set_identity(req, tsr_req_header(req, "X-Tsr-Tenant-Id"),
                         tsr_req_header(req, "X-Tsr-User-Id"));
    if ((rc = query_bool(req, "NoData", &no_data, err)) != TSR_OK) {
        goto out;
    }
    rc = decide(e, user, app_id, &a, &actions, err);
    if (rc == TSR_EFORBIDDEN) {
        /* Without read the app is not there for the caller (the role table's "-"). */
        rc = tsr_error_set(err, TSR_ENOTFOUND, "app not found");
    }
    if (rc != TSR_OK) {
        goto out;
    }
    if ((actions & TSR_ENGINED_EXPORT) == 0) {
        rc = tsr_error_set(err, TSR_EFORBIDDEN, "exporting this app needs the export permission");
        goto out;
    }
    app_ensure_loaded(a);
    /* A version a reloader wrote since this replica loaded the app, without waiting for the
     * watcher: an export right after a reload has its data. */
    app_refresh(a);
    pthread_mutex_lock(&a->mu);
    doc = json_deep_copy(a->doc);
    if (!no_data && a->model != NULL) {
        m = a->model;
        m->refs++; /* the model stays while it is written, whatever eviction does */
    }
    pthread_mutex_unlock(&a->mu);
    const tsr_engine_model_t *model = m != NULL ? m->m : NULL;
    if (model == NULL) {
        if ((rc = empty_model(e, &empty, err)) != TSR_OK) {
            goto out;
        }
        model = empty;
    }
    if (e->spaces_url != NULL) {
        /* Spaces holds the app's name and description (the engine's title is its own). */
        tsr_spaces_client_principal_t who;
        transfer_who(req, &who);
        char path[512];
        snprintf(path, sizeof path, "/api/v1/apps/%s", app_id);
        long status = 0;
        rc = tsr_spaces_client_call(e->spaces_url, "GET", path, &who, NULL, &status, &resp, err);
        if (rc == TSR_OK && status != 200) {
            rc = spaces_refused(status, resp, "reading the app record", err);
        }
        if (rc != TSR_OK) {
            goto out;
        }
        json_t *attrs = json_object_get(resp, "attributes");
        const char *name = json_string_value(json_object_get(attrs, "name"));
        const char *desc = json_string_value(json_object_get(attrs, "description"));
        if (name != NULL) {
            json_object_set_new(doc, "title", json_string(name));
        }
        if (desc != NULL) {
            json_object_set_new(doc, "description", json_string(desc));
        }
        json_decref(resp);
        resp = NULL;
    }
    /* The file carries the app document without its identity (an import gets a new one). */
    json_object_del(doc, "id");
    json_object_del(doc, "tenantId");
    json_object_set_new(doc, "sourceAppId", json_string(app_id));
    objects = json_dumps(doc, JSON_COMPACT);
    const char *script = json_string_value(json_object_get(doc, "script"));
    tsr_engine_app_meta_t am = {.script = script != NULL ? script : "",
                                .script_len = script != NULL ? strlen(script) : 0,
                                .objects = objects,
                                .objects_len = strlen(objects)};
    temp_sweep(e);
    unsigned char rnd[TEMP_ID_HEX / 2];
    tsr_random_fill(rnd, sizeof rnd);
    tsr_hex_encode(rnd, sizeof rnd, tid);
    temp_paths(e, tid, file, mpath, sizeof file);
    if ((rc = tsr_engine_app_save(model, &am, file, NULL, err)) != TSR_OK) {
        goto out;
    }
    written = true;
    struct stat st;
    if (stat(file, &st) != 0) {
        rc = tsr_error_set(err, TSR_EIO, "stat %s: %s", file, strerror(errno));
        goto out;
    }
    char tenant[MAX_ID + 1];
    if (!principal_tenant(user, tenant, sizeof tenant)) {
        rc = tsr_error_set(err, TSR_EUNAUTHENTICATED, "no authenticated principal");
        goto out;
    }
    export_filename(json_string_value(json_object_get(doc, "title")), fname, sizeof fname);
    meta = json_pack("{ss ss ss ss sI sI}", "tenantId", tenant, "userId", user + strlen(tenant) + 1,
                     "appId", app_id, "filename", fname, "bytes", (json_int_t)st.st_size,
                     "expiresAtMs", (json_int_t)(tsr_wall_ms() + e->export_ttl_ms));
    text = json_dumps(meta, JSON_COMPACT);
    if ((rc = write_atomic(mpath, text, strlen(text), err)) != TSR_OK) {
        goto out;
    }
    if (e->spaces_url != NULL) {
        /* Spaces owns the app's audit events: no answer before it recorded the export. */
        tsr_spaces_client_principal_t who;
        transfer_who(req, &who);
        char path[512];
        snprintf(path, sizeof path, "/internal/v1/apps/%s/exported", app_id);
        json_t *body = json_pack("{ss sI}", "tempContentId", tid, "bytes", (json_int_t)st.st_size);
        long status = 0;
        rc = tsr_spaces_client_call(e->spaces_url, "POST", path, &who, body, &status, &resp, err);
        json_decref(body);
        if (rc == TSR_OK && status != 204 && status != 200) {
            rc = spaces_refused(status, resp, "recording the export", err);
        }
        if (rc != TSR_OK) {
            goto out;
        }
    }
    snprintf(loc, sizeof loc, "/api/v1/temp-contents/%s", tid);
    tsr_req_add_header(req, "Location", loc);
    tsr_req_reply_bytes(req, 201, NULL, "", 0);
    tsr_log_ctx_t ctx = {tsr_req_id(req), tenant, user + strlen(tenant) + 1};
    tsr_log_info(&ctx, "engined: app %s exported (%lld bytes) to temporary content %s", app_id,
                 (long long)st.st_size, tid);
out:
    if (rc != TSR_OK && written) {
        temp_remove(e, tid);
    }
    if (m != NULL) {
        pthread_mutex_lock(&a->mu);
        tsr_engined__model_unref(a, m);
        pthread_mutex_unlock(&a->mu);
    }
    tsr_engine_model_destroy(empty);
    json_decref(resp);
    json_decref(meta);
    json_decref(doc);
    free(text);
    free(objects);
    free(user);
    return rc;
}

static tsr_err_t h_temp_get(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_engined_t *e = ud;
    char *user = NULL, tenant[MAX_ID + 1], file[4400], mpath[4400], disp[256];
    json_t *meta = NULL;
    const char *id = tsr_req_param(req, "id");
    tsr_err_t rc = tsr_engined_authenticate(e, req, &user, err);
    if (rc != TSR_OK) {
        return rc;
    }
    tsr_req_set_identity(req, tsr_req_header(req, "X-Tsr-Tenant-Id"),
                         tsr_req_header(req, "X-Tsr-User-Id"));
    if (!temp_id_valid(id) || !principal_tenant(user, tenant, sizeof tenant)) {
        rc = tsr_error_set(err, TSR_ENOTFOUND, "temporary content not found");
        goto out;
    }
    temp_paths(e, id, file, mpath, sizeof file);
    meta = json_load_file(mpath, 0, NULL);
    const char *t = json_string_value(json_object_get(meta, "tenantId"));
    const char *u = json_string_value(json_object_get(meta, "userId"));
    /* Only the caller who exported it sees it; anyone else, another tenant above all, gets
     * exactly what a missing id gets. */
    if (t == NULL || u == NULL || strcmp(t, tenant) != 0 ||
        strcmp(u, user + strlen(tenant) + 1) != 0) {
        rc = tsr_error_set(err, TSR_ENOTFOUND, "temporary content not found");
        goto out;
    }
    if (json_integer_value(json_object_get(meta, "expiresAtMs")) < (json_int_t)tsr_wall_ms()) {
        temp_remove(e, id);
        rc = tsr_error_set(err, TSR_ENOTFOUND, "temporary content not found (expired)");
        goto out;
    }
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        rc = tsr_error_set(err, TSR_ENOTFOUND, "temporary content not found");
        goto out;
    }
    const char *fname = json_string_value(json_object_get(meta, "filename"));
    snprintf(disp, sizeof disp, "attachment; filename=\"%s\"", fname != NULL ? fname : "app.tsra");
    tsr_req_reply_fd(req, 200, "application/octet-stream", fd, (uint64_t)st.st_size);
    tsr_req_add_header(req, "Content-Disposition", disp);
    tsr_req_add_header(req, "Cache-Control", "no-store");
out:
    json_decref(meta);
    free(user);
    return rc;
}

/* Remove an app's folder from the file store (an import that failed after creating it). */
static void files_remove_app(tsr_engined_t *e, const char *app_id) {
    if (e->store.get != files_get || !id_is_valid(app_id)) {
        return;
    }
    files_t *f = e->store.ud;
    char dir[4096], path[4400];
    snprintf(dir, sizeof dir, "%s/%s", f->root, app_id);
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            (void)unlink(path);
        }
    }
    closedir(d);
    (void)rmdir(dir);
}

/* The app document of an imported file: a new identity, the file's content. */
static json_t *import_doc(const char *tenant, const char *id, const char *name,
                          const json_t *content, const char *script) {
    static const char *const own[] = {"id",          "tenantId",     "title",
                                      "script",      "hasData",      "lastReloadTime",
                                      "createdDate", "modifiedDate", NULL};
    json_t *d = new_app_doc(tenant, id, name);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)content, k, v) {
        bool skip = false;
        for (size_t i = 0; own[i] != NULL && !skip; i++) {
            skip = strcmp(own[i], k) == 0;
        }
        if (!skip) {
            json_object_set(d, k, v);
        }
    }
    if (!json_is_object(json_object_get(d, "properties"))) {
        json_object_set_new(d, "properties", json_object());
    }
    if (!json_is_object(json_object_get(d, "objects"))) {
        json_object_set_new(d, "objects", json_object());
    }
    json_object_set_new(d, "script", json_string(script != NULL ? script : ""));
    return d;
}

static tsr_err_t h_import(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_engined_t *e = ud;
    char *user = NULL, tenant[MAX_ID + 1], id[MAX_ID + 1];
    tsr_engine_model_t *m = NULL;
    tsr_engine_app_contents_t contents = {0};
    json_t *content = NULL, *doc = NULL, *nxapp = NULL;
    uint8_t *file = NULL;
    size_t file_n = 0;
    bool recorded = false, created = false, no_data = false;
    uint64_t len = 0;
    const char *body = tsr_req_body_file(req, &len);
    tsr_spaces_client_principal_t who;
    transfer_who(req, &who);
    tsr_err_t rc = tsr_engined_authenticate(e, req, &user, err);
    if (rc != TSR_OK) {
        return rc;
    }
    tsr_req_set_identity(req, who.tenant_id, who.user_id);
    if (!principal_tenant(user, tenant, sizeof tenant)) {
        rc = tsr_error_set(err, TSR_EUNAUTHENTICATED, "no authenticated principal");
        goto out;
    }
    const char *mode = tsr_req_query(req, "mode");
    if (mode != NULL && mode[0] != '\0' && strcmp(mode, "NEW") != 0) {
        rc = tsr_error_set(err, TSR_EINVAL, "mode %s is not supported; only NEW", mode);
        goto out;
    }
    if (tsr_req_query(req, "fileId") != NULL) {
        rc = tsr_error_set(err, TSR_EINVAL,
                           "fileId is not supported: send the app file as the request body");
        goto out;
    }
    if ((rc = query_bool(req, "NoData", &no_data, err)) != TSR_OK) {
        goto out;
    }
    if (body == NULL) {
        rc = tsr_error_set(err, TSR_EIO, "the uploaded app file could not be stored");
        goto out;
    }
    if (len == 0) {
        rc = tsr_error_set(err, TSR_EINVAL,
                           "the request body must be an app file (application/octet-stream)");
        goto out;
    }
    /* The whole file is read and checked (header, checksum, every size and index) before
     * anything is created. */
    tsr_error_t ferr = {0};
    if (tsr_engine_app_open(body, NULL, &m, &contents, &ferr) != TSR_OK) {
        rc = tsr_error_set(err, TSR_EINVAL, "not a valid app file: %s", ferr.msg);
        goto out;
    }
    content = contents.objects_len > 0
                  ? json_loadb(contents.objects, contents.objects_len, JSON_REJECT_DUPLICATES, NULL)
                  : json_object();
    if (!json_is_object(content)) {
        rc = tsr_error_set(err, TSR_EINVAL,
                           "not a valid app file: its content is not a JSON object");
        goto out;
    }
    const char *name = tsr_req_query(req, "name");
    if (name == NULL || name[0] == '\0') {
        name = json_string_value(json_object_get(content, "title"));
    }
    if (name == NULL || name[0] == '\0') {
        name = tsr_req_query(req, "fallbackName");
    }
    if (name == NULL || name[0] == '\0') {
        name = "Imported app";
    }
    if (strlen(name) > IMPORT_NAME_MAX) {
        rc = tsr_error_set(err, TSR_EINVAL, "name is longer than %d bytes", IMPORT_NAME_MAX);
        goto out;
    }
    const char *space = tsr_req_query(req, "spaceId");
    if (space != NULL && (space[0] == '\0' || strcmp(space, "personal") == 0)) {
        space = NULL;
    }
    if (e->spaces_url != NULL) {
        /* The record first, in spaces (create in the target space is checked there). */
        const char *desc = json_string_value(json_object_get(content, "description"));
        json_t *rb = json_pack("{s{ss ss? ss?}}", "attributes", "name", name, "spaceId", space,
                               "description", desc);
        long status = 0;
        rc = tsr_spaces_client_call(e->spaces_url, "POST", "/api/v1/apps", &who, rb, &status,
                                    &nxapp, err);
        json_decref(rb);
        if (rc == TSR_OK && status != 200 && status != 201) {
            rc = spaces_refused(status, nxapp, "creating the app record", err);
        }
        if (rc != TSR_OK) {
            goto out;
        }
        const char *nid =
            json_string_value(json_object_get(json_object_get(nxapp, "attributes"), "id"));
        if (!id_is_valid(nid)) {
            rc = tsr_error_set(err, TSR_EUNAVAILABLE, "spaces answered without an app id");
            goto out;
        }
        snprintf(id, sizeof id, "%s", nid);
        recorded = true;
    } else {
        tsr_id_new(id);
    }
    doc = import_doc(tenant, id, name, content, contents.script);
    if ((rc = e->store.create(e->store.ud, tenant, id, doc, err)) != TSR_OK) {
        goto out;
    }
    created = true;
    size_t ntables = tsr_engine_model_table_count(m);
    /* The checked model is not kept: an open loads it from the stored file. */
    tsr_engine_model_destroy(m);
    m = NULL;
    if (!no_data && ntables > 0) {
        /* The checked file becomes the app's first model version as it is. */
        tsr_engined_version_t ver = {0};
        if ((rc = read_file(body, &file, &file_n, err)) != TSR_OK ||
            (rc = e->store.put_model(e->store.ud, tenant, id, file, file_n, NULL, &ver, err)) !=
                TSR_OK) {
            goto out;
        }
        const char *lrt = json_string_value(json_object_get(content, "lastReloadTime"));
        json_object_set_new(doc, "hasData", json_true());
        json_object_set_new(doc, "lastReloadTime",
                            json_string(lrt != NULL && lrt[0] != '\0' ? lrt : ver.time));
        if ((rc = e->store.put(e->store.ud, tenant, id, doc, err)) != TSR_OK) {
            goto out;
        }
    }
    if (nxapp == NULL) {
        nxapp = json_pack("{s{ss ss ss ss} s[ssss]}", "attributes", "id", id, "name", name,
                          "ownerId", who.user_id != NULL ? who.user_id : "", "lastReloadTime",
                          json_string_value(json_object_get(doc, "lastReloadTime")), "privileges",
                          "read", "update", "delete", "export");
    }
    tsr_log_ctx_t ctx = {tsr_req_id(req), tenant, who.user_id};
    tsr_log_info(&ctx, "engined: app %s imported (%llu bytes, %zu tables)", id,
                 (unsigned long long)len, ntables);
    tsr_req_reply_json(req, 200, nxapp);
    nxapp = NULL;
out:
    if (rc != TSR_OK && created) {
        files_remove_app(e, id);
    }
    if (rc != TSR_OK && recorded) {
        char path[256];
        long status = 0;
        tsr_error_t derr = {0};
        snprintf(path, sizeof path, "/api/v1/apps/%s", id);
        if (tsr_spaces_client_call(e->spaces_url, "DELETE", path, &who, NULL, &status, NULL,
                                   &derr) != TSR_OK ||
            status != 200) {
            tsr_log_ctx_t lctx = {tsr_req_id(req), tenant, who.user_id};
            tsr_log_error(&lctx, "engined: import failed and app record %s was not removed: %s", id,
                          derr.msg);
        }
    }
    tsr_engine_app_contents_cleanup(&contents);
    tsr_engine_model_destroy(m);
    json_decref(content);
    json_decref(doc);
    json_decref(nxapp);
    free(file);
    free(user);
    return rc;
}

/* ---- app content copy: spaces' copy and publish ------------------------------------------------
 * Spaces holds the app record, the engine the content. POST /internal/v1/apps/{appId}/copy
 * (spaces, before it stores the new record; not routed from outside) gives the content of
 * appId to a new app id. Spaces has decided the access (read + export on the source, create in
 * the target space; publish) and the engine does not ask again (spaces is blocked on this
 * call), so the route takes only service tokens (verified auth type "service", which identity
 * mints for services alone): a user's own valid token sent straight to the engine port is a
 * 403 and nothing is copied. The engine finds the source only in the caller's tenant.
 * Invariant: the copy exists completely (document, then model version) or not at all. */

#define COPY_BODY_MAX 4096 /* bytes of a copy request's JSON body */

/* Whether a bookmark of the source goes to the copy: public ones (published or approved)
 * always; on a copy (not a publish) also the copier's own private ones. Others' private
 * bookmarks never leave their app. */
static bool copy_keeps_bookmark(const json_t *b, const char *user, bool publish) {
    if (json_is_true(json_object_get(b, "published")) ||
        json_is_true(json_object_get(b, "approved"))) {
        return true;
    }
    const char *owner = json_string_value(json_object_get(b, "owner"));
    return !publish && owner != NULL && user != NULL && strcmp(owner, user) == 0;
}

/* The copy's document: the source's content (script, properties, objects, variables, state
 * names, public bookmarks...) under a new identity, without data until its model is in. */
static json_t *copy_doc(const json_t *src, const char *tenant, const char *id, const char *src_id,
                        const char *title, const char *user, bool publish) {
    char now[25];
    tsr_time_format_rfc3339(tsr_wall_ms(), now);
    json_t *d = json_deep_copy(src);
    json_object_set_new(d, "id", json_string(id));
    json_object_set_new(d, "tenantId", json_string(tenant));
    if (title != NULL && title[0] != '\0') {
        json_object_set_new(d, "title", json_string(title));
    }
    json_object_set_new(d, "sourceAppId", json_string(src_id));
    json_object_set_new(d, "createdDate", json_string(now));
    json_object_set_new(d, "modifiedDate", json_string(now));
    json_object_set_new(d, "hasData", json_false());
    json_object_set_new(d, "lastReloadTime", json_string(""));
    json_t *bms = json_object_get(d, "bookmarks");
    if (json_is_object(bms)) {
        const char *k;
        json_t *b, *tmp;
        json_object_foreach_safe(bms, tmp, k, b) {
            if (!copy_keeps_bookmark(b, user, publish)) {
                json_object_del(bms, k);
            }
        }
    }
    return d;
}

/* Link the current model file of app src into app dst's folder (both under the file store's
 * root) and make it dst's first version. Model files are never changed once written (a new
 * version is a new file), so a hard link is a copy that costs nothing; where links are not
 * possible the bytes are copied. TSR_ENOTFOUND: src has no model. */
static tsr_err_t files_copy_model(files_t *f, const char *src, const char *dst,
                                  tsr_engined_version_t *ver, tsr_error_t *err) {
    char sdir[4096], ddir[4096], file[256], path[4400], staged[4400];
    snprintf(sdir, sizeof sdir, "%s/%s", f->root, src);
    snprintf(ddir, sizeof ddir, "%s/%s", f->root, dst);
    tsr_err_t rc = TSR_ENOTFOUND;
    for (int attempt = 0; attempt < 5; attempt++) {
        tsr_engined_version_t v;
        read_ptr(sdir, &v, file, sizeof file);
        snprintf(path, sizeof path, "%s/%s", sdir, file);
        staged_name(ddir, staged, sizeof staged);
        if (link(path, staged) == 0) {
            fsync_dir(ddir);
            rc = TSR_OK;
            break;
        }
        if (errno == ENOENT) {
            /* No model, or a newer version replaced the file after the pointer was read. */
            if (v.seq == 0) {
                break;
            }
            continue;
        }
        uint8_t *buf = NULL;
        size_t n = 0;
        rc = read_file(path, &buf, &n, err);
        if (rc == TSR_OK) {
            rc = write_atomic(staged, buf, n, err);
            free(buf);
        }
        if (rc != TSR_ENOTFOUND || v.seq == 0) {
            break;
        }
    }
    if (rc == TSR_ENOTFOUND) {
        return tsr_error_set(err, TSR_ENOTFOUND, "app %s has no data model", src);
    }
    return rc == TSR_OK ? switch_model(ddir, staged, NULL, ver, err) : rc;
}

static void files_remove_app(tsr_engined_t *e, const char *app_id);

tsr_err_t tsr_engined_app_copy(tsr_engined_t *e, const char *tenant_id, const char *user_id,
                               const char *src_id, const char *dst_id, const char *title,
                               bool publish, bool *has_data, tsr_error_t *err) {
    json_t *src = NULL, *doc = NULL;
    char *user = NULL;
    uint8_t *buf = NULL;
    size_t n = 0;
    bool created = false;
    tsr_engined_version_t ver = {0};
    if (has_data != NULL) {
        *has_data = false;
    }
    tsr_err_t rc = tsr_engined_principal_format(tenant_id, user_id, &user, err);
    if (rc != TSR_OK) {
        return rc;
    }
    if (!id_is_valid(dst_id) || (src_id != NULL && strcmp(src_id, dst_id) == 0)) {
        rc = tsr_error_set(err, TSR_EINVAL, "targetId must be a new app id");
        goto out;
    }
    /* Another tenant's source is exactly a missing one (the store looks it up by tenant). */
    if ((rc = e->store.get(e->store.ud, tenant_id, src_id, &src, err)) != TSR_OK) {
        goto out;
    }
    doc = copy_doc(src, tenant_id, dst_id, src_id, title, user, publish);
    if ((rc = e->store.create(e->store.ud, tenant_id, dst_id, doc, err)) != TSR_OK) {
        goto out;
    }
    created = true;
    if (e->store.get == files_get) {
        rc = files_copy_model(e->store.ud, src_id, dst_id, &ver, err);
    } else if ((rc = e->store.get_model(e->store.ud, tenant_id, src_id, &buf, &n, NULL, err)) ==
               TSR_OK) {
        rc = e->store.put_model(e->store.ud, tenant_id, dst_id, buf, n, NULL, &ver, err);
    }
    if (rc == TSR_ENOTFOUND) {
        rc = TSR_OK; /* never reloaded: the copy has no data either */
    } else if (rc == TSR_OK) {
        const char *lrt = json_string_value(json_object_get(src, "lastReloadTime"));
        json_object_set_new(doc, "hasData", json_true());
        json_object_set_new(doc, "lastReloadTime",
                            json_string(lrt != NULL && lrt[0] != '\0' ? lrt : ver.time));
        rc = e->store.put(e->store.ud, tenant_id, dst_id, doc, err);
        if (rc == TSR_OK && has_data != NULL) {
            *has_data = true;
        }
    }
out:
    if (rc != TSR_OK && created) {
        files_remove_app(e, dst_id);
    }
    free(buf);
    free(user);
    json_decref(doc);
    json_decref(src);
    return rc;
}

static tsr_err_t h_app_copy(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_engined_t *e = ud;
    char *user = NULL;
    json_t *body = NULL;
    bool has_data = false;
    size_t len = 0;
    const char *src = tsr_req_param(req, "appId");
    const char *tenant = tsr_req_header(req, "X-Tsr-Tenant-Id");
    const char *uid = tsr_req_header(req, "X-Tsr-User-Id");
    tsr_err_t rc = tsr_engined_authenticate(NULL, req, &user, err);
    if (rc != TSR_OK) {
        return rc;
    }
    tsr_req_set_identity(req, tenant, uid);
    const char *atype = tsr_req_header(req, "X-Tsr-Auth-Type");
    if (atype == NULL || strcmp(atype, "service") != 0) {
        tsr_log_ctx_t ctx = {tsr_req_id(req), tenant, uid};
        tsr_log_warn(&ctx, "engined: app copy refused to a caller of auth type %.32s",
                     atype != NULL ? atype : "(none)");
        rc = tsr_error_set(err, TSR_EFORBIDDEN, "only a service may copy app content");
        goto out;
    }
    const char *text = tsr_req_body(req, &len);
    if (len == 0 || len > COPY_BODY_MAX) {
        rc = tsr_error_set(err, TSR_EINVAL,
                           "a JSON body {targetId, name, publish} of at most %d "
                           "bytes is required",
                           COPY_BODY_MAX);
        goto out;
    }
    body = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *target = json_object_get(body, "targetId");
    json_t *name = json_object_get(body, "name");
    json_t *publish = json_object_get(body, "publish");
    if (!json_is_object(body) || !json_is_string(target) ||
        (name != NULL && !json_is_null(name) &&
         (!json_is_string(name) || json_string_length(name) > IMPORT_NAME_MAX)) ||
        (publish != NULL && !json_is_boolean(publish))) {
        rc = tsr_error_set(err, TSR_EINVAL,
                           "the body must be {targetId: string, name?: string of at most %d "
                           "bytes, publish?: boolean}",
                           IMPORT_NAME_MAX);
        goto out;
    }
    const char *dst = json_string_value(target);
    if ((rc = tsr_engined_app_copy(e, tenant, uid, src, dst, json_string_value(name),
                                   json_is_true(publish), &has_data, err)) != TSR_OK) {
        goto out;
    }
    tsr_log_ctx_t ctx = {tsr_req_id(req), tenant, uid};
    tsr_log_info(&ctx, "engined: app %s content copied to %s (%s, %s)", src, dst,
                 json_is_true(publish) ? "publish" : "copy", has_data ? "with data" : "no data");
    tsr_req_reply_json(req, 201,
                       json_pack("{ss ss sb}", "id", dst, "sourceAppId", src, "hasData", has_data));
out:
    json_decref(body);
    free(user);
    return rc;
}

/* The engine's REST routes (api/openapi/engine.yaml); transfer: only with a transfer_root. */
static const struct {
    const char *method, *pattern;
    tsr_httpd_handler_fn fn;
    bool transfer, upload;
} REST[] = {
    {"GET", "/api/v1/apps/{appId}/data/metadata", h_metadata, false, false},
    {"POST", "/api/v1/apps/import", h_import, true, true},
    {"POST", "/api/v1/apps/{appId}/export", h_export, true, false},
    {"GET", "/api/v1/temp-contents/{id}", h_temp_get, true, false},
    {"POST", "/internal/v1/apps/{appId}/copy", h_app_copy, false, false},
};

bool tsr_engined_route_at(size_t i, const char **method, const char **pattern) {
    if (i >= sizeof REST / sizeof REST[0]) {
        return false;
    }
    *method = REST[i].method;
    *pattern = REST[i].pattern;
    return true;
}

tsr_err_t tsr_engined_routes(tsr_httpd_t *h, tsr_engined_t *e, tsr_error_t *err) {
    char up[4200] = "", tmp[4200];
    tsr_err_t rc = TSR_OK;
    if (e->transfer_root != NULL) {
        snprintf(up, sizeof up, "%s/uploads", e->transfer_root);
        snprintf(tmp, sizeof tmp, "%s/temp", e->transfer_root);
        if ((rc = mkdir_p(up, err)) != TSR_OK || (rc = mkdir_p(tmp, err)) != TSR_OK) {
            return rc;
        }
    }
    for (size_t i = 0; rc == TSR_OK && i < sizeof REST / sizeof REST[0]; i++) {
        if (REST[i].transfer && e->transfer_root == NULL) {
            continue;
        }
        rc = REST[i].upload
                 ? tsr_httpd_route_upload(h, REST[i].method, REST[i].pattern, REST[i].fn, e, up,
                                          e->import_max, err)
                 : tsr_httpd_route(h, REST[i].method, REST[i].pattern, REST[i].fn, e, err);
    }
    return rc;
}
