/*
 * pkg/spaces HTTP handlers for data files (/api/v1/data-files): multipart upload (part "File"
 * with the bytes, part "Json" with {name, connectionId|spaceId, appId}), re-upload, metadata,
 * download, list and delete. Nothing holds a whole file in memory: pkg/httpd streams the
 * upload's body to a temporary file (an upload route, capped at the data-file limit plus the
 * multipart framing), the parts are found by scanning that file in bounded windows, and the
 * File part goes from it to pkg/blob under `<tenant>/datafile/<id>/<version>` in chunks,
 * sealed as a stream; a download opens the stream in chunks into an unlinked temporary file
 * that libmicrohttpd then sends (so the whole stream verified before the first byte goes out).
 * The record is an item (resourceType "datafile") whose name is unique per space. A space's
 * DataFiles connection id is the space id ("personal" for the personal space), so that the
 * load script's lib://DataFiles/<name> resolves by (space, name).
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "spaces_int.h"

#define CHUNK (64 * 1024)   /* plaintext bytes per sealed segment */
#define WINDOW (256 * 1024) /* bytes of the body file read at a time (scan, copy) */
#define HEAD_MAX 8192       /* bytes of one part's headers */
#define JSON_PART_MAX 65536 /* bytes of the Json part */
#define MAX_PARTS 8         /* named parts one upload may have */

/* ---- multipart/form-data, read from the body's temporary file --------------------------- */

typedef struct {
    const char *name;     /* form field name (arena) */
    const char *filename; /* or NULL (arena) */
    uint64_t off;         /* where the part's bytes start in the body file */
    uint64_t len;         /* bytes */
} part_t;

/* The request body as an open file and a window buffer to read it through. */
typedef struct {
    int fd;
    uint64_t size;
    char *win; /* WINDOW bytes, owned */
} body_t;

static const char *find(const char *hay, size_t n, const char *needle, size_t m) {
    if (m == 0 || n < m) {
        return NULL;
    }
    const char *p = hay, *last = hay + (n - m);
    while (p <= last) {
        p = memchr(p, needle[0], (size_t)(last - p) + 1);
        if (p == NULL) {
            return NULL;
        }
        if (memcmp(p, needle, m) == 0) {
            return p;
        }
        p++;
    }
    return NULL;
}

/* Read up to n bytes at off (fewer only at the end of the file) into p; *got the count. */
static tsr_err_t body_pread(const body_t *b, uint64_t off, void *p, size_t n, size_t *got,
                            tsr_error_t *err) {
    *got = 0;
    while (*got < n) {
        ssize_t r = pread(b->fd, (char *)p + *got, n - *got, (off_t)(off + *got));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return tsr_error_set(err, TSR_EIO, "reading the uploaded body: %s", strerror(errno));
        }
        if (r == 0) {
            break;
        }
        *got += (size_t)r;
    }
    return TSR_OK;
}

/* The first position >= from where needle (m bytes, at most a few hundred) starts;
 * UINT64_MAX when it does not occur. Windows overlap by m - 1 bytes so that a needle across
 * two windows is found. */
static tsr_err_t body_find(const body_t *b, uint64_t from, const char *needle, size_t m,
                           uint64_t *pos, tsr_error_t *err) {
    *pos = UINT64_MAX;
    for (uint64_t off = from; off + m <= b->size;) {
        size_t want = b->size - off < WINDOW ? (size_t)(b->size - off) : WINDOW, got = 0;
        tsr_err_t rc = body_pread(b, off, b->win, want, &got, err);
        if (rc != TSR_OK) {
            return rc;
        }
        if (got < m) {
            break; /* the file shrank under us: treat as not found */
        }
        const char *hit = find(b->win, got, needle, m);
        if (hit != NULL) {
            *pos = off + (uint64_t)(hit - b->win);
            return TSR_OK;
        }
        off += got - (m - 1);
    }
    return TSR_OK;
}

/* Value of param (e.g. name="x") inside one header line [p, end); arena copy or NULL. */
static const char *header_param(tsr_req_t *req, const char *p, const char *end, const char *param) {
    size_t pl = strlen(param);
    for (const char *q = p; q + pl + 1 < end; q++) {
        if ((q == p || q[-1] == ' ' || q[-1] == ';') && strncmp(q, param, pl) == 0 &&
            q[pl] == '=') {
            const char *v = q + pl + 1, *ve;
            if (v < end && *v == '"') {
                v++;
                ve = v;
                while (ve < end && *ve != '"') {
                    ve++;
                }
            } else {
                ve = v;
                while (ve < end && *ve != ';' && *ve != ' ' && *ve != '\r') {
                    ve++;
                }
            }
            return tsr_arena_strndup(tsr_req_arena(req), v, (size_t)(ve - v));
        }
    }
    return NULL;
}

/* Split the body file into at most max parts (their offsets; nothing of the data is read).
 * TSR_EUNSUPPORTEDMEDIA when not multipart, TSR_EINVAL when malformed. */
static tsr_err_t multipart_parse(tsr_req_t *req, const body_t *b, part_t *parts, size_t max,
                                 size_t *n, tsr_error_t *err) {
    const char *ct = tsr_req_header(req, "content-type");
    *n = 0;
    if (ct == NULL || strncmp(ct, "multipart/form-data", 19) != 0) {
        return tsr_error_set(err, TSR_EUNSUPPORTEDMEDIA, "expected multipart/form-data");
    }
    const char *bd = header_param(req, ct, ct + strlen(ct), "boundary");
    if (bd == NULL || bd[0] == '\0' || strlen(bd) > 70) {
        return tsr_error_set(err, TSR_EINVAL, "multipart boundary missing or too long");
    }
    const char *delim = tsr_arena_printf(tsr_req_arena(req), "--%s", bd);
    const char *sep = tsr_arena_printf(tsr_req_arena(req), "\r\n--%s", bd);
    size_t dl = strlen(delim), sl = strlen(sep), got = 0;
    uint64_t p = 0, next = 0;
    tsr_err_t rc = body_find(b, 0, delim, dl, &p, err);
    if (rc != TSR_OK) {
        return rc;
    }
    if (p == UINT64_MAX) {
        return tsr_error_set(err, TSR_EINVAL, "multipart body without its boundary");
    }
    p += dl;
    for (;;) {
        char two[2];
        if ((rc = body_pread(b, p, two, 2, &got, err)) != TSR_OK) {
            return rc;
        }
        if (got == 2 && two[0] == '-' && two[1] == '-') {
            return TSR_OK; /* the closing delimiter */
        }
        if (got < 2 || two[0] != '\r' || two[1] != '\n') {
            return tsr_error_set(err, TSR_EINVAL, "malformed multipart delimiter");
        }
        p += 2;
        /* The part's headers: at most HEAD_MAX bytes before the blank line. */
        if ((rc = body_pread(b, p, b->win, HEAD_MAX + 4, &got, err)) != TSR_OK) {
            return rc;
        }
        const char *head = b->win, *hend = find(head, got, "\r\n\r\n", 4);
        if (hend == NULL || hend - head > HEAD_MAX) {
            return tsr_error_set(err, TSR_EINVAL, "malformed multipart part headers");
        }
        part_t part = {0};
        for (const char *line = head; line < hend;) {
            const char *le = find(line, (size_t)(hend - line), "\r\n", 2);
            if (le == NULL) {
                le = hend;
            }
            if ((size_t)(le - line) > 20 && strncasecmp(line, "content-disposition:", 20) == 0) {
                part.name = header_param(req, line, le, "name");
                part.filename = header_param(req, line, le, "filename");
            }
            line = le + 2;
        }
        uint64_t data = p + (uint64_t)(hend - head) + 4;
        if ((rc = body_find(b, data, sep, sl, &next, err)) != TSR_OK) {
            return rc;
        }
        if (next == UINT64_MAX) {
            return tsr_error_set(err, TSR_EINVAL, "multipart part without a closing boundary");
        }
        part.off = data;
        part.len = next - data;
        if (part.name != NULL) {
            if (*n == max) {
                return tsr_error_set(err, TSR_EINVAL, "too many multipart parts");
            }
            parts[(*n)++] = part;
        }
        p = next + sl;
    }
}

static const part_t *part_get(const part_t *parts, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(parts[i].name, name) == 0) {
            return &parts[i];
        }
    }
    return NULL;
}

/* ---- helpers -------------------------------------------------------------------------------- */

/* A data file name: 1..256 bytes of text, '/' separated folders, no empty, "." or ".."
 * segment, no backslash. */
static tsr_err_t check_name(const char *name, tsr_error_t *err) {
    size_t n = name != NULL ? strlen(name) : 0;
    if (n == 0 || n > TSR_SP__NAME_MAX) {
        return tsr_error_set(err, TSR_EINVAL, "name must be 1..%d bytes", TSR_SP__NAME_MAX);
    }
    tsr_str_t s = tsr_str(name), seg;
    while (tsr_str_next_tok(&s, '/', &seg)) {
        if (seg.n == 0 || tsr_str_eq_cstr(seg, ".") || tsr_str_eq_cstr(seg, "..")) {
            return tsr_error_set(err, TSR_EINVAL, "name has an empty, '.' or '..' folder");
        }
    }
    if (name[n - 1] == '/') {
        return tsr_error_set(err, TSR_EINVAL, "name must not end with '/'");
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch < 0x20 || ch == 0x7f || ch == '\\') {
            return tsr_error_set(err, TSR_EINVAL, "name has control characters or '\\'");
        }
    }
    return TSR_OK;
}

static const char *blob_key(tsr_sp__ctx_t *c, const char *id, int64_t version, char *key,
                            size_t cap, tsr_error_t *err) {
    if (tsr_blob_key_format(key, cap, c->tenant, "datafile", id,
                            tsr_arena_printf(tsr_req_arena(c->req), "%lld", (long long)version),
                            err) != TSR_OK) {
        return NULL;
    }
    return key;
}

static tsr_err_t to_writer(void *ctx, const void *p, size_t n) {
    tsr_error_t err;
    return tsr_blob_writer_write(ctx, p, n, &err);
}

/* Copy the body file's bytes [off, off + n) to the blob of (id, version) a window at a time,
 * sealed under the tenant's current DEK (a stream bound to tenant, "datafile", id and version)
 * when the service has a KEK. *sealed tells which. Nothing is visible unless everything was
 * written. */
static tsr_err_t blob_write(tsr_sp__ctx_t *c, const char *id, int64_t version, const body_t *b,
                            uint64_t off, uint64_t n, bool *sealed, tsr_error_t *err) {
    char key[TSR_BLOB_KEY_MAX + 1];
    tsr_blob_writer_t *w = NULL;
    tsr_sealer_t *sl = NULL;
    tsr_keyring_t *kr = NULL;
    tsr_err_t rc = TSR_OK;
    /* Room for the stream header and one tag per segment (plus the final one). */
    uint64_t cap = c->s->datafile_max + 64 + 16 * (c->s->datafile_max / CHUNK + 2);
    *sealed = c->s->kek != NULL;
    if (blob_key(c, id, version, key, sizeof key, err) == NULL) {
        return err != NULL ? err->code : TSR_EINVAL;
    }
    if ((rc = tsr_blob_put_open(c->s->blobs, c->tenant, key, cap, &w, err)) != TSR_OK) {
        return rc;
    }
    if (*sealed) {
        tsr_seal_ad_t ad = {c->tenant, "datafile", id, (uint64_t)version};
        rc = tsr_sp__keyring(c->s, c->tenant, false, &kr, err);
        if (rc == TSR_OK) {
            rc = tsr_crypto_sealer_create(kr, &ad, CHUNK, to_writer, w, &sl, err);
        }
    }
    for (uint64_t done = 0; rc == TSR_OK && done < n;) {
        size_t want = n - done < WINDOW ? (size_t)(n - done) : WINDOW, got = 0;
        if ((rc = body_pread(b, off + done, b->win, want, &got, err)) != TSR_OK) {
            break;
        }
        if (got < want) {
            rc = tsr_error_set(err, TSR_EIO, "the uploaded body is shorter than its parts");
            break;
        }
        rc = sl != NULL ? tsr_crypto_sealer_push(sl, b->win, got, err)
                        : tsr_blob_writer_write(w, b->win, got, err);
        done += got;
    }
    if (rc == TSR_OK && sl != NULL) {
        rc = tsr_crypto_sealer_finish(sl, err);
    }
    tsr_crypto_sealer_destroy(sl);
    if (rc == TSR_OK) {
        return tsr_blob_writer_commit(w, err);
    }
    tsr_blob_writer_abort(w);
    return rc;
}

/* Where a data file's plaintext goes: sink(ctx, p, n); a non-OK return stops the read with
 * that code (TSR_ETOOBIG past the caller's cap). */
typedef tsr_err_t (*sink_fn)(void *ctx, const void *p, size_t n);

static tsr_err_t to_buf(void *ctx, const void *p, size_t n) {
    return tsr_buf_append(ctx, p, n);
}

/* Read the content of a data file (doc) into sink, opening the sealed stream when the record
 * says so. Each segment reaches the sink once its tag verified; only a TSR_OK return means the
 * whole stream did (a caller answers nothing of a failed read). */
static tsr_err_t file_read_once(tsr_sp__ctx_t *c, const json_t *doc, bool reload, sink_fn sink,
                                void *ctx, tsr_error_t *err) {
    char key[TSR_BLOB_KEY_MAX + 1];
    tsr_blob_reader_t *r = NULL;
    tsr_opener_t *op = NULL;
    tsr_keyring_t *kr = NULL;
    const char *id = json_string_value(json_object_get(doc, "id"));
    int64_t version = json_integer_value(json_object_get(doc, "blobVersion"));
    bool sealed = json_is_true(json_object_get(doc, "sealed"));
    tsr_err_t rc = TSR_OK;
    if (blob_key(c, id, version, key, sizeof key, err) == NULL) {
        return err != NULL ? err->code : TSR_EINVAL;
    }
    if ((rc = tsr_blob_get(c->s->blobs, c->tenant, key, &r, err)) != TSR_OK) {
        return rc;
    }
    if (sealed) {
        tsr_seal_ad_t ad = {c->tenant, "datafile", id, (uint64_t)version};
        if (c->s->kek == NULL) {
            rc = tsr_error_set(err, TSR_EUNAVAILABLE, "sealed data file but no KEK configured");
        } else if ((rc = tsr_sp__keyring(c->s, c->tenant, reload, &kr, err)) == TSR_OK) {
            rc = tsr_crypto_opener_create(kr, &ad, sink, ctx, &op, err);
        }
    }
    char *chunk = rc == TSR_OK ? tsr_xmalloc(CHUNK) : NULL;
    while (rc == TSR_OK) {
        size_t got = 0;
        if ((rc = tsr_blob_reader_read(r, chunk, CHUNK, &got, err)) != TSR_OK || got == 0) {
            break;
        }
        if (op != NULL) {
            rc = tsr_crypto_opener_push(op, chunk, got, err);
        } else if ((rc = sink(ctx, chunk, got)) != TSR_OK) {
            rc = tsr_error_set(err, rc, "data file output failed");
        }
        if (rc == TSR_ETOOBIG) {
            rc = tsr_error_set(err, TSR_EINTERNAL, "stored data file exceeds the size limit");
        }
    }
    if (rc == TSR_OK && op != NULL) {
        rc = tsr_crypto_opener_finish(op, err);
    }
    free(chunk);
    tsr_crypto_opener_destroy(op);
    tsr_blob_reader_destroy(r);
    return rc;
}

tsr_err_t tsr_sp__file_read(tsr_sp__ctx_t *c, const json_t *doc, tsr_buf_t *out, tsr_error_t *err) {
    tsr_buf_reset(out);
    tsr_err_t rc = file_read_once(c, doc, false, to_buf, out, err);
    if (rc == TSR_ENOTFOUND && json_is_true(json_object_get(doc, "sealed"))) {
        /* A key version this process has not loaded yet (rotated elsewhere), or the blob
         * is really gone: reload the keyring once and try again. */
        tsr_buf_reset(out);
        rc = file_read_once(c, doc, true, to_buf, out, err);
    }
    if (rc != TSR_OK) {
        tsr_buf_reset(out);
    }
    return rc;
}

/* A data file's plaintext on its way to an unlinked temporary file, capped. */
typedef struct {
    int fd;
    uint64_t n, max;
} fd_sink_t;

static tsr_err_t to_fd(void *ctx, const void *p, size_t n) {
    fd_sink_t *s = ctx;
    if (s->n + n > s->max) {
        return TSR_ETOOBIG;
    }
    while (n > 0) {
        ssize_t w = write(s->fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return TSR_EIO;
        }
        p = (const char *)p + w;
        n -= (size_t)w;
        s->n += (uint64_t)w;
    }
    return TSR_OK;
}

/* The verified plaintext of a data file (doc) in a new temporary file (mode 0600, unlinked at
 * once: only the descriptor reaches it) of *size bytes, at most the data-file limit. *fd is
 * returned-owned (close, or hand it to tsr_req_reply_fd). */
static tsr_err_t file_read_fd(tsr_sp__ctx_t *c, const json_t *doc, int *fd, uint64_t *size,
                              tsr_error_t *err) {
    *fd = -1;
    *size = 0;
    char *path = tsr_arena_printf(tsr_req_arena(c->req), "%s/datafile.XXXXXX", c->s->upload_dir);
    fd_sink_t s = {.fd = mkstemp(path), .max = c->s->datafile_max};
    if (s.fd < 0) {
        return tsr_error_set(err, TSR_EIO, "cannot create a temporary file in %s: %s",
                             c->s->upload_dir, strerror(errno));
    }
    (void)unlink(path);
    tsr_err_t rc = file_read_once(c, doc, false, to_fd, &s, err);
    if (rc == TSR_ENOTFOUND && json_is_true(json_object_get(doc, "sealed"))) {
        /* A key version this process has not loaded yet (rotated elsewhere), or the blob
         * is really gone: reload the keyring once and try again. */
        if (ftruncate(s.fd, 0) != 0 || lseek(s.fd, 0, SEEK_SET) != 0) {
            rc = tsr_error_set(err, TSR_EIO, "cannot reset a temporary file: %s", strerror(errno));
        } else {
            s.n = 0;
            rc = file_read_once(c, doc, true, to_fd, &s, err);
        }
    }
    if (rc != TSR_OK) {
        close(s.fd);
        return rc;
    }
    *fd = s.fd;
    *size = s.n;
    return TSR_OK;
}

static void blob_drop(tsr_sp__ctx_t *c, const char *id, int64_t version) {
    char key[TSR_BLOB_KEY_MAX + 1];
    tsr_error_t e;
    if (tsr_blob_key_format(key, sizeof key, c->tenant, "datafile", id,
                            tsr_arena_printf(tsr_req_arena(c->req), "%lld", (long long)version),
                            &e) != TSR_OK ||
        tsr_blob_del(c->s->blobs, c->tenant, key, &e) != TSR_OK) {
        tsr_log_ctx_t lc = {tsr_req_id(c->req), c->tenant, c->user};
        tsr_log_warn(&lc, "data file %s: blob version %lld not deleted: %s", id, (long long)version,
                     e.msg);
    }
}

/* The upload: its body file, the File part's place in it, and the Json part's fields. */
typedef struct {
    body_t body;  /* fd -1 until opened */
    part_t file;  /* the File part */
    json_t *meta; /* owned; {} when there is no Json part */
    const char *name;
    const char *space;
    bool space_given;
    const char *app;
} upload_t;

static void upload_cleanup(upload_t *u) {
    if (u->body.fd >= 0) {
        close(u->body.fd);
    }
    free(u->body.win);
    json_decref(u->meta);
    memset(u, 0, sizeof *u);
    u->body.fd = -1;
}

/* Open the request's body file (the upload route wrote it) and find the parts. */
static tsr_err_t upload_parse(tsr_sp__ctx_t *c, upload_t *u, tsr_error_t *err) {
    part_t parts[MAX_PARTS];
    size_t n = 0, got = 0;
    json_error_t je;
    uint64_t size = 0;
    const char *path = tsr_req_body_file(c->req, &size);
    if (path == NULL) {
        return tsr_error_set(err, TSR_EIO, "the upload could not be stored for processing");
    }
    /* O_NOFOLLOW: httpd made the file itself (mkstemp); nothing else is expected there. */
    u->body.fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (u->body.fd < 0) {
        return tsr_error_set(err, TSR_EIO, "cannot open the uploaded body: %s", strerror(errno));
    }
    u->body.size = size;
    u->body.win = tsr_xmalloc(WINDOW);
    tsr_err_t rc = multipart_parse(c->req, &u->body, parts, MAX_PARTS, &n, err);
    if (rc != TSR_OK) {
        return rc;
    }
    const part_t *f = part_get(parts, n, "File"), *j = part_get(parts, n, "Json");
    if (f == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "the multipart part 'File' is required");
    }
    u->file = *f;
    if (u->file.len > c->s->datafile_max) {
        return tsr_error_set(err, TSR_ETOOBIG, "data files are limited to %llu bytes",
                             (unsigned long long)c->s->datafile_max);
    }
    if (j != NULL) {
        if (j->len > JSON_PART_MAX) {
            return tsr_error_set(err, TSR_ETOOBIG, "the Json part is too large");
        }
        char *text = tsr_arena_alloc(tsr_req_arena(c->req), (size_t)j->len + 1);
        if ((rc = body_pread(&u->body, j->off, text, (size_t)j->len, &got, err)) != TSR_OK) {
            return rc;
        }
        u->meta = got == j->len ? json_loadb(text, got, JSON_REJECT_DUPLICATES, &je) : NULL;
        if (!json_is_object(u->meta)) {
            return tsr_error_set(err, TSR_EINVAL, "the Json part is not a JSON object");
        }
    } else {
        u->meta = json_object();
    }
    if ((rc = tsr_sp__str(u->meta, "name", false, TSR_SP__NAME_MAX, &u->name, err)) != TSR_OK ||
        (rc = tsr_sp__str(u->meta, "appId", false, TSR_STORE_ID_MAX, &u->app, err)) != TSR_OK) {
        return rc;
    }
    if (u->name == NULL) {
        u->name = u->file.filename;
    }
    const char *sp = NULL, *conn = NULL;
    if ((rc = tsr_sp__str(u->meta, "spaceId", false, TSR_STORE_ID_MAX, &sp, err)) != TSR_OK ||
        (rc = tsr_sp__str(u->meta, "connectionId", false, TSR_STORE_ID_MAX, &conn, err)) !=
            TSR_OK) {
        return rc;
    }
    if (sp == NULL) {
        sp = conn;
    }
    u->space_given = json_object_get(u->meta, "spaceId") != NULL ||
                     json_object_get(u->meta, "connectionId") != NULL;
    if (sp != NULL && (sp[0] == '\0' || strcmp(sp, TSR_SP__PERSONAL) == 0)) {
        sp = NULL;
    }
    if (sp != NULL && !tsr_sp__is_id(sp)) {
        return tsr_error_set(err, TSR_ENOTFOUND, "space or connection %s not found", sp);
    }
    u->space = sp;
    return check_name(u->name, err);
}

/* ---- handlers ------------------------------------------------------------------------------- */

tsr_err_t tsr_sp__h_df_upload(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    upload_t u = {.body.fd = -1};
    json_t *doc = NULL, *stored = NULL;
    tsr_sp__event_t ev = {0};
    char id[25];
    bool blob_written = false;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) != TSR_OK ||
        (rc = upload_parse(&c, &u, err)) != TSR_OK ||
        (rc = tsr_sp__can_create_in(&c, u.space, err)) != TSR_OK) {
        goto out;
    }
    const char *now = tsr_sp__now(req);
    const char *scope = u.space != NULL ? u.space : TSR_SP__PERSONAL;
    /* Personal spaces are per user: the unique key carries the owner there. */
    const char *file_key =
        tsr_arena_printf(tsr_req_arena(req), "%s/%s/%s", scope, u.space != NULL ? "" : c.user,
                         tsr_sp__lower(req, u.name));
    tsr_id_new(id);
    doc =
        json_pack("{ss ss ss ss ss ss ss sI sI ss ss ss ss ss}", "resourceType", "datafile", "name",
                  u.name, "nameKey", tsr_sp__lower(req, u.name), "description", "", "fileKey",
                  file_key, "scope", scope, "ownerId", c.user, "size", (json_int_t)u.file.len,
                  "blobVersion", (json_int_t)1, "contentType", "application/octet-stream",
                  "createdAt", now, "createdBy", c.user, "updatedAt", now, "updatedBy", c.user);
    if (u.space != NULL) {
        json_object_set_new(doc, "spaceId", json_string(u.space));
    }
    if (u.app != NULL) {
        json_object_set_new(doc, "appId", json_string(u.app));
    }
    bool sealed = false;
    if ((rc = blob_write(&c, id, 1, &u.body, u.file.off, u.file.len, &sealed, err)) != TSR_OK) {
        goto out;
    }
    blob_written = true;
    json_object_set_new(doc, "sealed", json_boolean(sealed));
    if ((rc = tsr_sp__event_make(&c, TSR_SP__T_APPS, "datafile", "created", id,
                                 json_pack("{ss ss ss? ss sI}", "id", id, "name", u.name, "spaceId",
                                           u.space, "ownerId", c.user, "size",
                                           (json_int_t)u.file.len),
                                 &ev, err)) != TSR_OK) {
        goto out;
    }
    rc = tsr_store_doc_create(c.s->store, c.tenant, TSR_SP__C_ITEMS, id, doc, &ev.row, 1, &stored,
                              err);
    if (rc == TSR_ECONFLICT) {
        rc =
            tsr_error_set(err, TSR_ECONFLICT, "a data file named '%s' already exists here", u.name);
    }
    if (rc == TSR_OK) {
        blob_written = false;
        tsr_req_reply_json(req, 201, tsr_sp__datafile_view(&c, stored, TSR_SPACES_ALL));
    }
out:
    if (blob_written) {
        blob_drop(&c, id, 1);
    }
    tsr_sp__event_cleanup(&ev);
    upload_cleanup(&u);
    json_decref(doc);
    json_decref(stored);
    return rc;
}

static tsr_err_t df_load(tsr_sp__ctx_t *c, json_t **doc, unsigned *a, tsr_error_t *err) {
    const char *id = NULL;
    *doc = NULL;
    tsr_err_t rc = tsr_sp__path_id(c->req, "id", &id, err);
    if (rc != TSR_OK) {
        return rc;
    }
    return tsr_sp__item_get(c, id, "datafile", doc, a, err);
}

tsr_err_t tsr_sp__h_df_reupload(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    upload_t u = {.body.fd = -1};
    json_t *doc = NULL, *patch = NULL, *stored = NULL;
    tsr_sp__event_t ev = {0};
    unsigned a = 0;
    int64_t ver = 0, old = 0;
    bool blob_written = false;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) != TSR_OK ||
        (rc = df_load(&c, &doc, &a, err)) != TSR_OK ||
        (rc = tsr_sp__require(a, TSR_SPACES_EDIT, "data file", err)) != TSR_OK ||
        (rc = upload_parse(&c, &u, err)) != TSR_OK) {
        goto out;
    }
    const char *id = json_string_value(json_object_get(doc, "id"));
    const char *space = json_string_value(json_object_get(doc, "spaceId"));
    if (u.space_given && (u.space == NULL) != (space == NULL)) {
        rc = tsr_error_set(err, TSR_EUNSUPPORTED, "moving a data file between spaces");
        goto out;
    }
    if (u.space_given && u.space != NULL && strcmp(u.space, space) != 0) {
        rc = tsr_error_set(err, TSR_EUNSUPPORTED, "moving a data file between spaces");
        goto out;
    }
    old = json_integer_value(json_object_get(doc, "blobVersion"));
    ver = old + 1;
    const char *scope = space != NULL ? space : TSR_SP__PERSONAL;
    const char *owner = json_string_value(json_object_get(doc, "ownerId"));
    patch = json_pack("{ss ss ss sI sI ss ss}", "name", u.name, "nameKey",
                      tsr_sp__lower(req, u.name), "fileKey",
                      tsr_arena_printf(tsr_req_arena(req), "%s/%s/%s", scope,
                                       space != NULL ? "" : owner, tsr_sp__lower(req, u.name)),
                      "size", (json_int_t)u.file.len, "blobVersion", (json_int_t)ver, "updatedAt",
                      tsr_sp__now(req), "updatedBy", c.user);
    bool sealed = false;
    if ((rc = blob_write(&c, id, ver, &u.body, u.file.off, u.file.len, &sealed, err)) != TSR_OK) {
        goto out;
    }
    blob_written = true;
    json_object_set_new(patch, "sealed", json_boolean(sealed));
    if ((rc = tsr_sp__event_make(&c, TSR_SP__T_APPS, "datafile", "updated", id,
                                 json_pack("{ss ss ss? sI}", "id", id, "name", u.name, "spaceId",
                                           space, "size", (json_int_t)u.file.len),
                                 &ev, err)) != TSR_OK) {
        goto out;
    }
    rc = tsr_store_doc_patch(c.s->store, c.tenant, TSR_SP__C_ITEMS, id,
                             json_integer_value(json_object_get(doc, "version")), patch, &ev.row, 1,
                             &stored, err);
    if (rc == TSR_ECONFLICT) {
        rc = tsr_error_set(err, TSR_ECONFLICT, "the name is taken or the file changed meanwhile");
    }
    if (rc == TSR_OK) {
        blob_written = false;
        blob_drop(&c, id, old);
        tsr_req_reply_json(req, 201, tsr_sp__datafile_view(&c, stored, a));
    }
out:
    if (blob_written) {
        blob_drop(&c, json_string_value(json_object_get(doc, "id")), ver);
    }
    tsr_sp__event_cleanup(&ev);
    upload_cleanup(&u);
    json_decref(doc);
    json_decref(patch);
    json_decref(stored);
    return rc;
}

tsr_err_t tsr_sp__h_df_get(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    json_t *doc = NULL;
    unsigned a = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) == TSR_OK &&
        (rc = df_load(&c, &doc, &a, err)) == TSR_OK) {
        tsr_req_reply_json(req, 200, tsr_sp__datafile_view(&c, doc, a));
    }
    json_decref(doc);
    return rc;
}

/* Answer with the file's verified plaintext as an attachment, streamed from a temporary file
 * by the server. */
static tsr_err_t reply_file(tsr_sp__ctx_t *c, const json_t *doc, tsr_error_t *err) {
    int fd = -1;
    uint64_t size = 0;
    tsr_err_t rc = file_read_fd(c, doc, &fd, &size, err);
    if (rc != TSR_OK) {
        return rc;
    }
    /* The file name goes into a quoted header value: keep it to safe characters. */
    const char *name = json_string_value(json_object_get(doc, "name"));
    const char *base = strrchr(name, '/') != NULL ? strrchr(name, '/') + 1 : name;
    char *safe = tsr_arena_strdup(tsr_req_arena(c->req), base);
    for (char *p = safe; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) {
            *p = '_';
        }
    }
    tsr_req_add_header(
        c->req, "Content-Disposition",
        tsr_arena_printf(tsr_req_arena(c->req), "attachment; filename=\"%s\"", safe));
    if (size == 0) {
        close(fd);
        tsr_req_reply_bytes(c->req, 200, "application/octet-stream", "", 0);
    } else {
        tsr_req_reply_fd(c->req, 200, "application/octet-stream", fd, size);
    }
    return TSR_OK;
}

tsr_err_t tsr_sp__h_df_content(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    json_t *doc = NULL;
    unsigned a = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) == TSR_OK &&
        (rc = df_load(&c, &doc, &a, err)) == TSR_OK) {
        rc = reply_file(&c, doc, err);
    }
    json_decref(doc);
    return rc;
}

/* The engine's way to lib://DataFiles/<name>: a file by (space, name) for the caller. */
tsr_err_t tsr_sp__h_df_by_name(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    json_t *key = NULL, *doc = NULL;
    tsr_store_page_t page = {0};
    unsigned a = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) != TSR_OK) {
        goto out;
    }
    const char *space = tsr_req_query(req, "spaceId"), *name = tsr_req_query(req, "name");
    if (space == NULL || name == NULL || (rc = check_name(name, err)) != TSR_OK) {
        rc = rc != TSR_OK ? rc : tsr_error_set(err, TSR_EINVAL, "spaceId and name are required");
        goto out;
    }
    bool personal = strcmp(space, TSR_SP__PERSONAL) == 0;
    key = json_string(tsr_arena_printf(tsr_req_arena(req), "%s/%s/%s", space,
                                       personal ? c.user : "", tsr_sp__lower(req, name)));
    tsr_store_filter_t f = {"fileKey", TSR_STORE_EQ, key};
    tsr_store_query_t q = {.filters = &f, .n_filters = 1, .limit = 1};
    if ((rc = tsr_store_doc_list(c.s->store, c.tenant, TSR_SP__C_ITEMS, &q, &page, err)) !=
        TSR_OK) {
        goto out;
    }
    doc = json_incref(json_array_get(page.items, 0));
    if (doc == NULL || (rc = tsr_sp__item_actions(&c, doc, &a, err)) != TSR_OK ||
        (a & TSR_SPACES_READ) == 0) {
        rc = rc != TSR_OK ? rc : tsr_error_set(err, TSR_ENOTFOUND, "data file %s not found", name);
        goto out;
    }
    rc = reply_file(&c, doc, err);
out:
    tsr_store_page_cleanup(&page);
    json_decref(key);
    json_decref(doc);
    return rc;
}

tsr_err_t tsr_sp__h_df_del(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    json_t *doc = NULL;
    unsigned a = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) == TSR_OK &&
        (rc = df_load(&c, &doc, &a, err)) == TSR_OK &&
        (rc = tsr_sp__require(a, TSR_SPACES_DELETE, "data file", err)) == TSR_OK &&
        (rc = tsr_sp__item_delete(&c, doc, err)) == TSR_OK) {
        tsr_req_reply_bytes(req, 204, NULL, "", 0);
    }
    json_decref(doc);
    return rc;
}

typedef struct {
    const char *name;
    const char *app;
    const char *not_owner;
    bool personal_only;
} df_filter_t;

static bool df_keep(tsr_sp__ctx_t *c, json_t *doc, void *ud) {
    df_filter_t *f = ud;
    const char *owner = json_string_value(json_object_get(doc, "ownerId"));
    if (f->name != NULL && strcmp(f->name, json_string_value(json_object_get(doc, "name"))) != 0) {
        return false;
    }
    if (f->app != NULL) {
        const char *app = json_string_value(json_object_get(doc, "appId"));
        if (app == NULL || strcmp(app, f->app) != 0) {
            return false;
        }
    }
    if (f->not_owner != NULL && owner != NULL && strcmp(owner, f->not_owner) == 0) {
        return false;
    }
    if (f->personal_only && (owner == NULL || strcmp(owner, c->user) != 0)) {
        return false;
    }
    unsigned a = 0;
    tsr_error_t e;
    if (tsr_sp__item_actions(c, doc, &a, &e) != TSR_OK || (a & TSR_SPACES_READ) == 0) {
        return false;
    }
    json_object_set_new(doc, "_actions", json_integer(a));
    return true;
}

tsr_err_t tsr_sp__h_df_list(tsr_req_t *req, void *ud, tsr_error_t *err) {
    static const char *const SORTS[] = {"name", "createdAt", "updatedAt", "size", NULL};
    tsr_sp__ctx_t c;
    df_filter_t f = {0};
    tsr_store_filter_t filters[4];
    json_t *vals[4] = {NULL};
    size_t nv = 0;
    tsr_store_query_t q = {.filters = filters};
    json_t *docs = NULL;
    char *next = NULL;
    size_t limit = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) != TSR_OK ||
        (rc = tsr_sp__parse_limit(req, &limit, err)) != TSR_OK ||
        (rc = tsr_sp__parse_sort(req, SORTS, "name", false, &q, err)) != TSR_OK) {
        goto out;
    }
    if (strcmp(q.sort, "name") == 0) {
        q.sort = "nameKey";
    }
    vals[nv] = json_string("datafile");
    filters[q.n_filters++] = (tsr_store_filter_t){"resourceType", TSR_STORE_EQ, vals[nv++]};
    const char *conn = tsr_req_query(req, "connectionId");
    if (conn == NULL) {
        conn = tsr_req_query(req, "spaceId");
    }
    const char *all = tsr_req_query(req, "includeAllSpaces");
    if (conn != NULL && strcmp(conn, TSR_SP__PERSONAL) != 0) {
        vals[nv] = json_string(conn);
        filters[q.n_filters++] = (tsr_store_filter_t){"spaceId", TSR_STORE_EQ, vals[nv++]};
    } else if (conn != NULL || all == NULL || strcmp(all, "true") != 0) {
        /* Qlik: without a connection the personal space is meant. */
        vals[nv] = json_string(TSR_SP__PERSONAL);
        filters[q.n_filters++] = (tsr_store_filter_t){"scope", TSR_STORE_EQ, vals[nv++]};
        f.personal_only = true;
    }
    if (tsr_req_query(req, "ownerId") != NULL) {
        vals[nv] = json_string(tsr_req_query(req, "ownerId"));
        filters[q.n_filters++] = (tsr_store_filter_t){"ownerId", TSR_STORE_EQ, vals[nv++]};
    }
    f.name = tsr_req_query(req, "name");
    f.app = tsr_req_query(req, "appId");
    f.not_owner = tsr_req_query(req, "notOwnerId");
    q.cursor = tsr_req_query(req, "page");
    if ((rc = tsr_sp__list(&c, TSR_SP__C_ITEMS, &q, limit, df_keep, &f, &docs, &next, err)) !=
        TSR_OK) {
        goto out;
    }
    tsr_sp__reply_page(&c, req, docs, tsr_sp__datafile_view, "page", next);
out:
    for (size_t k = 0; k < nv; k++) {
        json_decref(vals[k]);
    }
    json_decref(docs);
    free(next);
    return rc;
}

tsr_err_t tsr_sp__h_df_quotas(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    tsr_err_t rc = tsr_sp__ctx_init(&c, ud, req, err);
    if (rc == TSR_OK) {
        tsr_req_reply_json(
            req, 200,
            json_pack("{sI sI sI sI s[ssssss] s[]}", "maxFileSize", (json_int_t)c.s->datafile_max,
                      "maxLargeFileSize", (json_int_t)c.s->datafile_max, "maxSize", (json_int_t)-1,
                      "size", (json_int_t)0, "allowedExtensions", ".csv", ".txt", ".tsv", ".json",
                      ".qvd", ".xlsx", "allowedInternalExtensions"));
    }
    return rc;
}

static json_t *connection_view(tsr_sp__ctx_t *c, const char *space) {
    const char *id = space != NULL ? space : TSR_SP__PERSONAL;
    return json_pack(
        "{ss ss ss ss ss ss}", "id", id, "name", "DataFiles", "type", "qix-datafiles", "spaceId",
        space != NULL ? space : "", "connectStatement",
        "CUSTOM CONNECT TO \"provider=qix-datafiles.exe;\"", "qri",
        tsr_arena_printf(tsr_req_arena(c->req), "qdc:qix-datafiles:%s:%s", c->tenant, id));
}

static bool conn_keep(tsr_sp__ctx_t *c, json_t *doc, void *ud) {
    (void)ud;
    tsr_error_t e;
    unsigned a = tsr_sp__space_actions(c, doc, &e);
    return (a & TSR_SPACES_READ) != 0;
}

tsr_err_t tsr_sp__h_df_connections(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_sp__ctx_t c;
    tsr_store_query_t q = {.sort = "createdAt"};
    json_t *docs = NULL;
    char *next = NULL;
    size_t limit = 0;
    tsr_err_t rc;
    if ((rc = tsr_sp__ctx_init(&c, ud, req, err)) != TSR_OK ||
        (rc = tsr_sp__parse_limit(req, &limit, err)) != TSR_OK) {
        goto out;
    }
    const char *space = tsr_req_query(req, "spaceId");
    json_t *data = json_array();
    if (space != NULL && strcmp(space, TSR_SP__PERSONAL) != 0) {
        const tsr_sp__acl_entry_t *e = NULL;
        if ((rc = tsr_sp__acl_space(&c, space, &e, err)) != TSR_OK) {
            json_decref(data);
            goto out;
        }
        if ((tsr_sp__acl_actions(&c, e, TSR_SPACES_RES_SPACE) & TSR_SPACES_READ) != 0) {
            json_array_append_new(data, connection_view(&c, space));
        }
    } else {
        q.cursor = tsr_req_query(req, "page");
        if (q.cursor == NULL) {
            json_array_append_new(data, connection_view(&c, NULL));
        }
        if (space == NULL) {
            rc = tsr_sp__list(&c, TSR_SP__C_SPACES, &q, limit, conn_keep, NULL, &docs, &next, err);
            if (rc != TSR_OK) {
                json_decref(data);
                goto out;
            }
            size_t i;
            json_t *d;
            json_array_foreach(docs, i, d) {
                json_array_append_new(
                    data, connection_view(&c, json_string_value(json_object_get(d, "id"))));
            }
        }
    }
    tsr_req_reply_json(
        req, 200, json_pack("{so so}", "data", data, "links", tsr_sp__links(req, "page", next)));
out:
    json_decref(docs);
    free(next);
    return rc;
}

size_t tsr_spaces_sweep_uploads(const char *dir, int64_t max_age_ms) {
    /* Never the /tmp fallback: only a directory of spaces' own holds nothing else. */
    DIR *d = dir != NULL && dir[0] != '\0' && strcmp(dir, "/tmp") != 0 ? opendir(dir) : NULL;
    if (d == NULL) {
        return 0;
    }
    size_t n = 0;
    int64_t now_s = (int64_t)time(NULL);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        /* A body being written or a download being read is newer: its mtime moves as it is
         * written, and a download's file is unlinked as soon as it is open. */
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
            (now_s - (int64_t)st.st_mtime) * 1000 >= max_age_ms &&
            unlinkat(dirfd(d), de->d_name, 0) == 0) {
            n++;
        }
    }
    closedir(d);
    return n;
}
