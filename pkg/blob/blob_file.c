/*
 * pkg/blob file backend: blob `<tenant>/<kind>/<id>/<version>` is the file of that path under
 * the root directory. A writer streams into a hidden temp file (".<version>.tmp.<random>") in
 * the same directory, then fsync + rename + fsync(dir) on commit, so the key names either the
 * old or the new complete file and a killed writer leaves only a hidden temp file, which no
 * read or list ever returns (keys cannot start with '.').
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blob_int.h"

typedef struct {
    char *root; /* no trailing '/' */
} fbe_t;

typedef struct {
    int fd;
    char *tmp;   /* temp file path */
    char *final; /* the key's path */
    char *dir;   /* directory holding both */
} fwriter_t;

typedef struct {
    int fd;
} freader_t;

/* ENOSPC / EDQUOT: the disk is full, a condition to retry later rather than a bug. */
static tsr_err_t errno_code(int e) {
    if (e == ENOSPC || e == EDQUOT || e == EAGAIN || e == EMFILE || e == ENFILE)
        return TSR_EUNAVAILABLE;
    return TSR_EIO;
}

static char *path_join(const char *a, const char *b) {
    tsr_buf_t buf;
    tsr_buf_init(&buf, 0);
    tsr_buf_appendf(&buf, "%s/%s", a, b);
    return tsr_buf_take(&buf, NULL);
}

/* mkdir -p for path; existing directories are fine. */
static int mkdir_p(const char *path) {
    char *p = tsr_xstrdup(path);
    int rc = 0;
    for (char *q = p + 1; *q; q++) {
        if (*q != '/')
            continue;
        *q = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            rc = -1;
            break;
        }
        *q = '/';
    }
    if (rc == 0 && mkdir(p, 0700) != 0 && errno != EEXIST)
        rc = -1;
    free(p);
    return rc;
}

static int fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static void fbe_destroy(tsr_blob__backend_t *b) {
    fbe_t *f = b;
    free(f->root);
    free(f);
}

static tsr_err_t fbe_put_open(tsr_blob__backend_t *b, const char *key, tsr_blob__wimpl_t **out,
                              tsr_error_t *err) {
    fbe_t *f = b;
    tsr_err_t rc;
    fwriter_t *w = tsr_xcalloc(1, sizeof *w);
    w->fd = -1;
    w->final = path_join(f->root, key);
    const char *slash = strrchr(w->final, '/');
    w->dir = tsr_xstrndup(w->final, (size_t)(slash - w->final));
    char rnd[8], hex[17];
    tsr_random_fill(rnd, sizeof rnd);
    tsr_hex_encode(rnd, sizeof rnd, hex);
    tsr_buf_t t;
    tsr_buf_init(&t, 0);
    tsr_buf_appendf(&t, "%s/.%s.tmp.%s", w->dir, slash + 1, hex);
    w->tmp = tsr_buf_take(&t, NULL);
    /* A concurrent delete may remove the (then empty) directory between mkdir and open:
     * create it again. */
    for (int attempt = 0; attempt < 5 && w->fd < 0; attempt++) {
        if (mkdir_p(w->dir) != 0) {
            int e = errno;
            rc = tsr_error_set(err, errno_code(e), "blob: mkdir %s: %s", w->dir, strerror(e));
            goto fail;
        }
        w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (w->fd < 0 && errno != ENOENT)
            break;
    }
    if (w->fd < 0) {
        int e = errno;
        rc = tsr_error_set(err, errno_code(e), "blob: create temp file: %s", strerror(e));
        goto fail;
    }
    *out = w;
    return TSR_OK;
fail:
    free(w->final);
    free(w->dir);
    free(w->tmp);
    free(w);
    return rc;
}

static tsr_err_t fbe_put_write(tsr_blob__wimpl_t *wi, const void *p, size_t n, tsr_error_t *err) {
    fwriter_t *w = wi;
    const char *c = p;
    while (n > 0) {
        ssize_t k = write(w->fd, c, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            return tsr_error_set(err, errno_code(e), "blob: write: %s", strerror(e));
        }
        c += k;
        n -= (size_t)k;
    }
    return TSR_OK;
}

static void fwriter_free(fwriter_t *w) {
    if (w->fd >= 0)
        close(w->fd);
    free(w->final);
    free(w->dir);
    free(w->tmp);
    free(w);
}

static void fbe_put_abort(tsr_blob__wimpl_t *wi) {
    fwriter_t *w = wi;
    unlink(w->tmp);
    fwriter_free(w);
}

static tsr_err_t fbe_put_commit(tsr_blob__wimpl_t *wi, tsr_error_t *err) {
    fwriter_t *w = wi;
    tsr_err_t rc = TSR_OK;
    /* Data first, then the name: after a crash the key holds the old or the new complete file. */
    if (fsync(w->fd) != 0) {
        int e = errno;
        rc = tsr_error_set(err, errno_code(e), "blob: fsync: %s", strerror(e));
        goto fail;
    }
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) != 0) {
        int e = errno;
        rc = tsr_error_set(err, errno_code(e), "blob: close: %s", strerror(e));
        goto fail;
    }
    if (rename(w->tmp, w->final) != 0) {
        int e = errno;
        rc = tsr_error_set(err, errno_code(e), "blob: rename: %s", strerror(e));
        goto fail;
    }
    if (fsync_dir(w->dir) != 0) {
        /* The blob is visible already; only its durability across a power cut is in doubt. */
        int e = errno;
        rc = tsr_error_set(err, errno_code(e), "blob: fsync directory: %s", strerror(e));
    }
    fwriter_free(w);
    return rc;
fail:
    fbe_put_abort(w);
    return rc;
}

static tsr_err_t fbe_get(tsr_blob__backend_t *b, const char *key, tsr_blob__rimpl_t **out,
                         uint64_t *size, tsr_error_t *err) {
    fbe_t *f = b;
    char *path = path_join(f->root, key);
    tsr_err_t rc = TSR_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR || e == EISDIR)
            rc = tsr_error_set(err, TSR_ENOTFOUND, "blob: no such blob");
        else
            rc = tsr_error_set(err, errno_code(e), "blob: open: %s", strerror(e));
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        rc = tsr_error_set(err, TSR_ENOTFOUND, "blob: no such blob");
        goto out;
    }
    freader_t *r = tsr_xcalloc(1, sizeof *r);
    r->fd = fd;
    *out = r;
    *size = (uint64_t)st.st_size;
out:
    free(path);
    return rc;
}

static tsr_err_t fbe_read(tsr_blob__rimpl_t *ri, void *buf, size_t cap, size_t *nread,
                          tsr_error_t *err) {
    freader_t *r = ri;
    for (;;) {
        ssize_t k = read(r->fd, buf, cap);
        if (k >= 0) {
            *nread = (size_t)k;
            return TSR_OK;
        }
        if (errno != EINTR) {
            int e = errno;
            return tsr_error_set(err, errno_code(e), "blob: read: %s", strerror(e));
        }
    }
}

static void fbe_reader_destroy(tsr_blob__rimpl_t *ri) {
    freader_t *r = ri;
    close(r->fd);
    free(r);
}

static tsr_err_t fbe_del(tsr_blob__backend_t *b, const char *key, tsr_error_t *err) {
    fbe_t *f = b;
    char *path = path_join(f->root, key);
    tsr_err_t rc = TSR_OK;
    if (unlink(path) != 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR || e == EISDIR)
            rc = tsr_error_set(err, TSR_ENOTFOUND, "blob: no such blob");
        else
            rc = tsr_error_set(err, errno_code(e), "blob: unlink: %s", strerror(e));
        goto out;
    }
    /* Drop the now possibly empty id, kind and tenant directories; a non-empty one stays
     * (rmdir refuses), and a concurrent writer recreates what it needs. */
    for (int i = 0; i < 3; i++) {
        char *slash = strrchr(path, '/');
        if (slash == NULL)
            break;
        *slash = '\0';
        if (rmdir(path) != 0)
            break;
    }
out:
    free(path);
    return rc;
}

/* ---- list -------------------------------------------------------------------------------- */

/* Directory names compared as if each ended in '/', so that walking directories in this
 * order yields keys in bytewise order ("a-b/..." sorts before "a/..."). */
static int name_cmp(const void *pa, const void *pb) {
    const unsigned char *a = *(const unsigned char *const *)pa;
    const unsigned char *b = *(const unsigned char *const *)pb;
    for (;; a++, b++) {
        unsigned ca = *a ? *a : '/';
        unsigned cb = *b ? *b : '/';
        if (ca != cb)
            return ca < cb ? -1 : 1;
        /* Names hold no '/', so equal virtual characters at an end mean both ended. */
        if (*a == '\0')
            return 0;
    }
}

typedef struct {
    const char *prefix;
    size_t plen;
    const char *after; /* may be NULL */
    size_t want;       /* stop after this many entries */
    tsr_blob_list_t *out;
} walk_t;

static bool name_ok(const char *n) {
    if (n[0] == '.' || n[0] == '\0')
        return false;
    for (const char *p = n; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* Walk dir (holding keys that start with rel + "/"), depth = segments in rel (1..3). */
static tsr_err_t walk(walk_t *wk, const char *dir, const char *rel, int depth, tsr_error_t *err) {
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT || errno == ENOTDIR)
            return TSR_OK;
        int e = errno;
        return tsr_error_set(err, errno_code(e), "blob: list %s: %s", dir, strerror(e));
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!name_ok(de->d_name))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = tsr_xrealloc(names, cap * sizeof *names);
        }
        names[n++] = tsr_xstrdup(de->d_name);
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof *names, name_cmp);
    tsr_err_t rc = TSR_OK;
    for (size_t i = 0; i < n && rc == TSR_OK && wk->out->count < wk->want; i++) {
        tsr_buf_t kb;
        tsr_buf_init(&kb, 0);
        tsr_buf_appendf(&kb, "%s/%s", rel, names[i]);
        const char *k = kb.data;
        size_t klen = kb.len;
        /* Enter only subtrees whose keys can match the prefix, and can sort after start_after.
         */
        size_t cmp_n = klen < wk->plen ? klen : wk->plen;
        bool compatible = strncmp(k, wk->prefix, cmp_n) == 0;
        if (compatible) {
            char *child = path_join(dir, names[i]);
            if (depth == 3) {
                struct stat st;
                if (klen >= wk->plen && (wk->after == NULL || strcmp(k, wk->after) > 0) &&
                    stat(child, &st) == 0 && S_ISREG(st.st_mode)) {
                    int64_t ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
                    tsr_blob__list_push(wk->out, k, (uint64_t)st.st_size, ms);
                }
            } else {
                rc = walk(wk, child, k, depth + 1, err);
            }
            free(child);
        }
        tsr_buf_cleanup(&kb);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

static tsr_err_t fbe_list(tsr_blob__backend_t *b, const char *prefix, const char *start_after,
                          size_t limit, tsr_blob_list_t *out, tsr_error_t *err) {
    fbe_t *f = b;
    /* prefix starts with "<tenant>/": walk only that tenant's directory. */
    const char *slash = strchr(prefix, '/');
    char *tenant = tsr_xstrndup(prefix, (size_t)(slash - prefix));
    char *dir = path_join(f->root, tenant);
    walk_t wk = {prefix, strlen(prefix), start_after, limit + 1, out};
    tsr_err_t rc = walk(&wk, dir, tenant, 1, err);
    free(dir);
    free(tenant);
    return rc;
}

/* ---- sweep ------------------------------------------------------------------------------- */

/* A writer's temp file: ".<version>.tmp.<16 hex>". */
static bool is_temp_name(const char *n) {
    return n[0] == '.' && strstr(n, ".tmp.") != NULL;
}

static tsr_err_t sweep_dir(const char *dir, int depth, int64_t cutoff_ms, size_t *removed,
                           tsr_error_t *err) {
    DIR *d = opendir(dir);
    if (d == NULL)
        return TSR_OK; /* removed meanwhile by a delete */
    tsr_err_t rc = TSR_OK;
    struct dirent *de;
    while (rc == TSR_OK && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char *child = path_join(dir, de->d_name);
        struct stat st;
        if (lstat(child, &st) == 0) {
            if (S_ISDIR(st.st_mode) && depth < 3 && name_ok(de->d_name)) {
                rc = sweep_dir(child, depth + 1, cutoff_ms, removed, err);
            } else if (S_ISREG(st.st_mode) && depth == 3 && is_temp_name(de->d_name)) {
                int64_t ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
                if (ms <= cutoff_ms) {
                    if (unlink(child) == 0)
                        (*removed)++;
                    else if (errno != ENOENT)
                        rc = tsr_error_set(err, errno_code(errno), "blob: sweep %s: %s", child,
                                           strerror(errno));
                }
            }
        }
        free(child);
    }
    closedir(d);
    return rc;
}

static tsr_err_t fbe_sweep(tsr_blob__backend_t *b, int64_t older_than_ms, size_t *removed,
                           tsr_error_t *err) {
    fbe_t *f = b;
    return sweep_dir(f->root, 0, tsr_wall_ms() - older_than_ms, removed, err);
}

static const tsr_blob__ops_t FILE_OPS = {
    .name = "file",
    .destroy = fbe_destroy,
    .put_open = fbe_put_open,
    .put_write = fbe_put_write,
    .put_commit = fbe_put_commit,
    .put_abort = fbe_put_abort,
    .get = fbe_get,
    .read = fbe_read,
    .reader_destroy = fbe_reader_destroy,
    .del = fbe_del,
    .list = fbe_list,
    .sweep = fbe_sweep,
};

tsr_err_t tsr_blob__file_open(const char *root, const tsr_blob__ops_t **ops,
                              tsr_blob__backend_t **out, tsr_error_t *err) {
    if (root == NULL || root[0] == '\0')
        return tsr_error_set(err, TSR_EINVAL, "blob: file: URI without a path");
    char *r = tsr_xstrdup(root);
    size_t n = strlen(r);
    while (n > 1 && r[n - 1] == '/')
        r[--n] = '\0';
    if (mkdir_p(r) != 0) {
        int e = errno;
        free(r);
        return tsr_error_set(err, TSR_EIO, "blob: create %s: %s", root, strerror(e));
    }
    fbe_t *f = tsr_xcalloc(1, sizeof *f);
    f->root = r;
    *ops = &FILE_OPS;
    *out = f;
    return TSR_OK;
}
