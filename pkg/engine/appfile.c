/*
 * pkg/engine: app files — one file per app version: header (magic, format version, flags,
 * sizes), then a zstd frame (with checksum), optionally sealed by a caller's hook (the tenant
 * key). The payload holds the script, reload log, objects JSON, the fields' symbols (dual
 * values and sort ranks) and the tables' bit-packed columns as they are in memory, so opening
 * re-parses no rows. The reader trusts nothing: every size, index and packed value is checked.
 * Also: model slots (atomic swap of reference-counted models) for reloads.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "engine_int.h"

#define APP_MAGIC "TSRAPP\0\1"
#define APP_MAGIC_LEN 8
#define APP_VERSION 1u
#define APP_HEADER 32 /* magic 8, version 4, flags 4, stored size 8, raw size 8 */
#define APP_FLAG_SEALED 1u
#define APP_MAX_RAW (UINT64_C(16) << 30) /* bytes of an uncompressed payload */
/* Optional trailing section: script variables. Absent when a model has none, so files
 * without variables are byte-identical to those of earlier writers. */
#define APP_VARS_TAG 0x53524156u /* "VARS" */
#define APP_MAX_VARS 4096

/* ---- writer ---- */

static void put_u32(tsr_buf_t *b, uint32_t v) {
    unsigned char x[4];
    for (int i = 0; i < 4; i++)
        x[i] = (unsigned char)(v >> (8 * i));
    tsr_buf_append(b, x, 4);
}

static void put_u64(tsr_buf_t *b, uint64_t v) {
    unsigned char x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (unsigned char)(v >> (8 * i));
    tsr_buf_append(b, x, 8);
}

static void put_f64(tsr_buf_t *b, double d) {
    uint64_t v;
    memcpy(&v, &d, sizeof v);
    put_u64(b, v);
}

static void put_bytes(tsr_buf_t *b, const void *p, size_t n) {
    put_u64(b, n);
    if (n > 0)
        tsr_buf_append(b, p, n);
}

static void serialize(const tsr_engine_model_t *m, const tsr_engine_app_meta_t *meta,
                      tsr_buf_t *b) {
    put_bytes(b, meta ? meta->script : NULL, meta && meta->script ? meta->script_len : 0);
    put_bytes(b, meta ? meta->reload_log : NULL,
              meta && meta->reload_log ? meta->reload_log_len : 0);
    put_bytes(b, meta ? meta->objects : NULL, meta && meta->objects ? meta->objects_len : 0);
    put_u32(b, (uint32_t)m->n_fields);
    for (size_t f = 0; f < m->n_fields; f++) {
        const tsr_engine__field_t *fd = &m->fields[f];
        put_bytes(b, fd->name, strlen(fd->name));
        put_u32(b, fd->n_syms);
        for (uint32_t s = 0; s < fd->n_syms; s++) {
            put_f64(b, fd->syms[s].num);
            put_u32(b, tsr_engine__sym_len(&fd->syms[s]));
            put_u32(b, tsr_engine__rank(fd, s));
        }
        for (uint32_t s = 0; s < fd->n_syms; s++)
            tsr_buf_append(b, fd->pool + tsr_engine__sym_off(&fd->syms[s]),
                           tsr_engine__sym_len(&fd->syms[s]));
    }
    put_u32(b, (uint32_t)m->n_tables);
    for (size_t t = 0; t < m->n_tables; t++) {
        const tsr_engine__table_t *tb = &m->tables[t];
        put_bytes(b, tb->name, strlen(tb->name));
        put_u64(b, tb->n_rows);
        put_u32(b, tb->n_cols);
        for (uint32_t c = 0; c < tb->n_cols; c++) {
            const tsr_engine__packed_t *pk = &tb->cols[c].data;
            size_t words = (tb->n_rows * pk->bits + 63) / 64;
            put_u32(b, tb->cols[c].field);
            put_u32(b, pk->bits);
            for (size_t w = 0; w < words; w++)
                put_u64(b, pk->words[w]);
        }
    }
    if (m->n_vars > 0) {
        put_u32(b, APP_VARS_TAG);
        put_u32(b, (uint32_t)m->n_vars);
        for (size_t i = 0; i < m->n_vars; i++) {
            put_bytes(b, m->var_names[i], strlen(m->var_names[i]));
            put_bytes(b, m->var_values[i], strlen(m->var_values[i]));
        }
    }
}

tsr_err_t tsr_engine_app_save_mem(const tsr_engine_model_t *m, const tsr_engine_app_meta_t *meta,
                                  const tsr_engine_appfile_opts_t *opts, uint8_t **out,
                                  size_t *out_n, tsr_error_t *err) {
    *out = NULL;
    *out_n = 0;
    if (!m->finalized)
        return tsr_error_set(err, TSR_EPRECONDITION, "model is not finalized");
    tsr_buf_t raw;
    tsr_buf_init(&raw, 0);
    serialize(m, meta, &raw);
    size_t cap = ZSTD_compressBound(raw.len);
    uint8_t *z = tsr_xmalloc(APP_HEADER + cap);
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    if (cc == NULL) {
        free(z);
        tsr_buf_cleanup(&raw);
        return tsr_error_set(err, TSR_EINTERNAL, "zstd: no context");
    }
    ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, opts && opts->level ? opts->level : 3);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
    /* Two workers when the library is built with threads (ignored otherwise). */
    ZSTD_CCtx_setParameter(cc, ZSTD_c_nbWorkers, 2);
    size_t zn = ZSTD_compress2(cc, z + APP_HEADER, cap, raw.data ? raw.data : "", raw.len);
    ZSTD_freeCCtx(cc);
    uint64_t raw_len = raw.len;
    tsr_buf_cleanup(&raw);
    if (ZSTD_isError(zn)) {
        free(z);
        return tsr_error_set(err, TSR_EINTERNAL, "zstd: %s", ZSTD_getErrorName(zn));
    }
    uint32_t flags = 0;
    if (opts != NULL && opts->seal != NULL) {
        uint8_t *sealed = NULL;
        size_t sn = 0;
        tsr_err_t rc = opts->seal(opts->ctx, z + APP_HEADER, zn, &sealed, &sn);
        if (rc != TSR_OK) {
            free(z);
            return tsr_error_set(err, rc, "sealing the app file failed");
        }
        z = tsr_xrealloc(z, APP_HEADER + sn);
        memcpy(z + APP_HEADER, sealed, sn);
        free(sealed);
        zn = sn;
        flags |= APP_FLAG_SEALED;
    }
    tsr_buf_t h;
    tsr_buf_init(&h, 0);
    tsr_buf_append(&h, APP_MAGIC, APP_MAGIC_LEN);
    put_u32(&h, APP_VERSION);
    put_u32(&h, flags);
    put_u64(&h, zn);
    put_u64(&h, raw_len);
    memcpy(z, h.data, APP_HEADER);
    tsr_buf_cleanup(&h);
    *out = z;
    *out_n = APP_HEADER + zn;
    return TSR_OK;
}

tsr_err_t tsr_engine_app_save(const tsr_engine_model_t *m, const tsr_engine_app_meta_t *meta,
                              const char *path, const tsr_engine_appfile_opts_t *opts,
                              tsr_error_t *err) {
    uint8_t *buf;
    size_t n;
    tsr_err_t rc = tsr_engine_app_save_mem(m, meta, opts, &buf, &n, err);
    if (rc != TSR_OK)
        return rc;
    size_t tl = strlen(path) + 16;
    char *tmp = tsr_xmalloc(tl);
    snprintf(tmp, tl, "%s.tmp%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        rc = tsr_error_set(err, TSR_EIO, "open %s: %s", tmp, strerror(errno));
        goto out;
    }
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, buf + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = tsr_error_set(err, TSR_EIO, "write %s: %s", tmp, strerror(errno));
            break;
        }
        off += (size_t)w;
    }
    /* The new version must be durable before it replaces the old one. */
    if (rc == TSR_OK && fsync(fd) != 0)
        rc = tsr_error_set(err, TSR_EIO, "fsync %s: %s", tmp, strerror(errno));
    close(fd);
    if (rc == TSR_OK && rename(tmp, path) != 0)
        rc = tsr_error_set(err, TSR_EIO, "rename %s: %s", path, strerror(errno));
    if (rc != TSR_OK)
        unlink(tmp);
out:
    free(tmp);
    free(buf);
    return rc;
}

/* ---- reader ---- */

typedef struct {
    const uint8_t *p, *end;
    bool bad;
} rd_t;

static bool need(rd_t *r, size_t n) {
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        return false;
    }
    return true;
}

static uint32_t get_u32(rd_t *r) {
    if (!need(r, 4))
        return 0;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)r->p[i] << (8 * i);
    r->p += 4;
    return v;
}

static uint64_t get_u64(rd_t *r) {
    if (!need(r, 8))
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)r->p[i] << (8 * i);
    r->p += 8;
    return v;
}

static double get_f64(rd_t *r) {
    uint64_t v = get_u64(r);
    double d;
    memcpy(&d, &v, sizeof d);
    return d;
}

/* A length-prefixed byte string, borrowed from the buffer. */
static const char *get_bytes(rd_t *r, size_t *n) {
    uint64_t len = get_u64(r);
    if (r->bad || len > (uint64_t)(r->end - r->p)) {
        r->bad = true;
        *n = 0;
        return NULL;
    }
    const char *p = (const char *)r->p;
    r->p += len;
    *n = (size_t)len;
    return p;
}

static char *dup_bytes(const char *p, size_t n) {
    char *s = tsr_xmalloc(n + 1);
    if (n > 0)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

void tsr_engine_app_contents_cleanup(tsr_engine_app_contents_t *c) {
    if (c == NULL)
        return;
    free(c->script);
    free(c->reload_log);
    free(c->objects);
    memset(c, 0, sizeof *c);
}

static tsr_err_t corrupt(tsr_error_t *err, const char *what) {
    return tsr_error_set(err, TSR_EINVAL, "app file is corrupted: %s", what);
}

static tsr_err_t parse_payload(rd_t *r, tsr_engine_model_t **out,
                               tsr_engine_app_contents_t *contents, tsr_error_t *err) {
    tsr_engine_model_t *m = tsr_engine_model_create();
    tsr_err_t rc = TSR_OK;
    size_t n[3];
    const char *strs[3];
    for (int i = 0; i < 3; i++)
        strs[i] = get_bytes(r, &n[i]);
    if (r->bad) {
        rc = corrupt(err, "truncated header strings");
        goto out;
    }
    uint32_t n_fields = get_u32(r);
    /* Each field needs at least 12 bytes: caps the loop on garbage. */
    if (r->bad || n_fields > (size_t)(r->end - r->p) / 12 + 1) {
        rc = corrupt(err, "field count");
        goto out;
    }
    for (uint32_t f = 0; f < n_fields; f++) {
        size_t nl;
        const char *nm = get_bytes(r, &nl);
        uint32_t ns = get_u32(r);
        if (r->bad || nl == 0 || nl > TSR_ENGINE_MAX_NAME || ns > (size_t)(r->end - r->p) / 16) {
            rc = corrupt(err, "field header");
            goto out;
        }
        uint32_t idx = tsr_engine__model_field(m, nm, nl);
        if (idx != f) {
            rc = corrupt(err, "duplicate field name");
            goto out;
        }
        tsr_engine__field_t *fd = &m->fields[f];
        double *nums = tsr_xcalloc((size_t)ns + 1, sizeof *nums);
        uint32_t *lens = tsr_xcalloc((size_t)ns + 1, sizeof *lens);
        uint32_t *rank = tsr_xcalloc((size_t)ns + 1, sizeof *rank);
        uint64_t *seen = tsr_xcalloc((size_t)ns / 64 + 2, sizeof *seen);
        uint64_t total = 0;
        for (uint32_t s = 0; s < ns && !r->bad; s++) {
            nums[s] = get_f64(r);
            lens[s] = get_u32(r);
            rank[s] = get_u32(r);
            total += lens[s];
            if (rank[s] >= ns || (seen[rank[s] >> 6] >> (rank[s] & 63) & 1) ||
                lens[s] > TSR_ENGINE_MAX_CELL)
                r->bad = true;
            else
                seen[rank[s] >> 6] |= UINT64_C(1) << (rank[s] & 63);
        }
        free(seen);
        if (r->bad || !need(r, total)) {
            free(nums);
            free(lens);
            free(rank);
            rc = corrupt(err, "symbols");
            goto out;
        }
        for (uint32_t s = 0; s < ns && rc == TSR_OK; s++) {
            uint32_t got = tsr_engine__field_intern_dual(fd, (const char *)r->p, lens[s],
                                                         isnan(nums[s]) ? NAN : nums[s]);
            if (got != s)
                rc = corrupt(err, "duplicate symbol");
            r->p += lens[s];
        }
        free(nums);
        free(lens);
        if (rc != TSR_OK) {
            free(rank);
            goto out;
        }
        bool identity = true;
        for (uint32_t s = 0; s < ns && identity; s++)
            identity = rank[s] == s;
        if (identity) {
            free(rank);
            rank = NULL;
        }
        fd->rank = rank;
        fd->ranked = true;
    }
    uint32_t n_tables = get_u32(r);
    if (r->bad || n_tables > (size_t)(r->end - r->p) / 20 + 1) {
        rc = corrupt(err, "table count");
        goto out;
    }
    for (uint32_t t = 0; t < n_tables; t++) {
        size_t nl;
        const char *nm = get_bytes(r, &nl);
        uint64_t rows = get_u64(r);
        uint32_t nc = get_u32(r);
        /* A table has at least one column (a reload drops empty ones), so the column data
         * bounds the row count by the file's size. */
        if (r->bad || nl == 0 || nl > TSR_ENGINE_MAX_NAME || nc == 0 ||
            nc > TSR_ENGINE_MAX_FIELDS_PER_TABLE || rows > (UINT64_C(1) << 40)) {
            rc = corrupt(err, "table header");
            goto out;
        }
        char *name = dup_bytes(nm, nl);
        size_t dummy;
        if (tsr_engine_model_table_find(m, name, &dummy) == TSR_OK) {
            free(name);
            rc = corrupt(err, "duplicate table");
            goto out;
        }
        size_t ti = tsr_engine__model_add_table(m, name);
        free(name);
        tsr_engine__table_t *tb = &m->tables[ti];
        tb->n_rows = (size_t)rows;
        tb->cols = tsr_xcalloc((size_t)nc + 1, sizeof *tb->cols);
        for (uint32_t c = 0; c < nc; c++) {
            uint32_t f = get_u32(r), bits = get_u32(r);
            if (r->bad || f >= n_fields || bits < 1 || bits > 32) {
                rc = corrupt(err, "column header");
                goto out;
            }
            for (uint32_t k = 0; k < c; k++) {
                if (tb->cols[k].field == f) {
                    rc = corrupt(err, "duplicate column");
                    goto out;
                }
            }
            uint64_t words = (rows * bits + 63) / 64;
            if (words > (uint64_t)(r->end - r->p) / 8) {
                rc = corrupt(err, "column data");
                goto out;
            }
            tsr_engine__packed_t *pk = &tb->cols[c].data;
            tsr_engine__packed_init(pk, bits);
            pk->words = tsr_xcalloc((size_t)words + 1, sizeof *pk->words);
            pk->n_words = (size_t)words;
            pk->n = (size_t)rows;
            for (uint64_t w = 0; w < words; w++)
                pk->words[w] = get_u64(r);
            tb->cols[c].field = f;
            tb->n_cols = c + 1;
            /* Every packed value must name a symbol (or null): one pass, the price of
             * never indexing outside a symbol table later. */
            uint32_t ns = m->fields[f].n_syms;
            for (size_t i = 0; i < tb->n_rows; i++) {
                if (tsr_engine__packed_get(pk, i) > ns) {
                    rc = corrupt(err, "symbol index out of range");
                    goto out;
                }
            }
        }
    }
    if (r->p != r->end) {
        uint32_t tag = get_u32(r), nv = get_u32(r);
        if (r->bad || tag != APP_VARS_TAG || nv > APP_MAX_VARS) {
            rc = corrupt(err, "trailing bytes");
            goto out;
        }
        for (uint32_t i = 0; i < nv; i++) {
            size_t nl, vl;
            const char *nm = get_bytes(r, &nl);
            const char *val = get_bytes(r, &vl);
            if (r->bad || nl == 0 || nl > TSR_ENGINE_MAX_NAME || memchr(nm, 0, nl) != NULL ||
                memchr(val, 0, vl) != NULL) {
                rc = corrupt(err, "variables");
                goto out;
            }
            tsr_engine__model_add_var(m, nm, nl, val, vl);
        }
    }
    if (r->p != r->end) {
        rc = corrupt(err, "trailing bytes");
        goto out;
    }
    rc = tsr_engine_model_finalize(m, err);
    if (rc != TSR_OK)
        goto out;
    if (contents != NULL) {
        contents->script = dup_bytes(strs[0], n[0]);
        contents->script_len = n[0];
        contents->reload_log = dup_bytes(strs[1], n[1]);
        contents->reload_log_len = n[1];
        contents->objects = dup_bytes(strs[2], n[2]);
        contents->objects_len = n[2];
    }
    *out = m;
    m = NULL;
out:
    tsr_engine_model_destroy(m);
    return rc;
}

tsr_err_t tsr_engine_app_open_mem(const uint8_t *buf, size_t n,
                                  const tsr_engine_appfile_opts_t *opts, tsr_engine_model_t **m,
                                  tsr_engine_app_contents_t *contents, tsr_error_t *err) {
    *m = NULL;
    if (contents != NULL)
        memset(contents, 0, sizeof *contents);
    if (n < APP_HEADER || memcmp(buf, APP_MAGIC, APP_MAGIC_LEN) != 0)
        return tsr_error_set(err, TSR_EINVAL, "not an app file");
    rd_t h = {buf + APP_MAGIC_LEN, buf + APP_HEADER, false};
    uint32_t version = get_u32(&h), flags = get_u32(&h);
    uint64_t stored = get_u64(&h), raw_len = get_u64(&h);
    if (version != APP_VERSION)
        return tsr_error_set(err, TSR_EINVAL, "app file format version %u is not supported",
                             version);
    if (stored != n - APP_HEADER || (flags & ~APP_FLAG_SEALED) != 0)
        return corrupt(err, "header");
    if (raw_len > APP_MAX_RAW)
        return tsr_error_set(err, TSR_ETOOBIG, "app file payload too large");
    const uint8_t *z = buf + APP_HEADER;
    size_t zn = (size_t)stored;
    uint8_t *unsealed = NULL;
    if (flags & APP_FLAG_SEALED) {
        if (opts == NULL || opts->unseal == NULL)
            return tsr_error_set(err, TSR_EPRECONDITION, "app file is sealed: no key");
        size_t un = 0;
        tsr_err_t rc = opts->unseal(opts->ctx, z, zn, &unsealed, &un);
        if (rc != TSR_OK)
            return tsr_error_set(err, rc, "unsealing the app file failed");
        z = unsealed;
        zn = un;
    }
    /* The frame must declare exactly the header's size: a lying frame cannot make us
     * allocate more than the header promised (itself capped). */
    unsigned long long fsz = ZSTD_getFrameContentSize(z, zn);
    if (fsz != raw_len) {
        free(unsealed);
        return corrupt(err, "payload size");
    }
    uint8_t *raw = tsr_xmalloc((size_t)raw_len + 1);
    size_t got = ZSTD_decompress(raw, (size_t)raw_len, z, zn);
    free(unsealed);
    if (ZSTD_isError(got) || got != raw_len) {
        free(raw);
        return corrupt(err, ZSTD_isError(got) ? ZSTD_getErrorName(got) : "payload size");
    }
    rd_t r = {raw, raw + raw_len, false};
    tsr_err_t rc = parse_payload(&r, m, contents, err);
    free(raw);
    tsr_engine__trim_heap();
    return rc;
}

tsr_err_t tsr_engine_app_open(const char *path, const tsr_engine_appfile_opts_t *opts,
                              tsr_engine_model_t **m, tsr_engine_app_contents_t *contents,
                              tsr_error_t *err) {
    *m = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return tsr_error_set(err, TSR_EIO, "open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 0 || (uint64_t)st.st_size > APP_MAX_RAW) {
        close(fd);
        return tsr_error_set(err, TSR_EIO, "stat %s", path);
    }
    size_t n = (size_t)st.st_size, off = 0;
    uint8_t *buf = tsr_xmalloc(n + 1);
    while (off < n) {
        ssize_t got = read(fd, buf + off, n - off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        off += (size_t)got;
    }
    close(fd);
    tsr_err_t rc = off == n ? tsr_engine_app_open_mem(buf, n, opts, m, contents, err)
                            : tsr_error_set(err, TSR_EIO, "read %s", path);
    free(buf);
    return rc;
}

/* ---- slots ---- */

struct tsr_engine_slot {
    pthread_mutex_t mu; /* guards cur: held only to retain or exchange */
    tsr_engine_model_t *cur;
};

tsr_engine_slot_t *tsr_engine_slot_create(void) {
    tsr_engine_slot_t *s = tsr_xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    return s;
}

void tsr_engine_slot_destroy(tsr_engine_slot_t *s) {
    if (s == NULL)
        return;
    tsr_engine_model_release(s->cur);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

tsr_engine_model_t *tsr_engine_slot_get(tsr_engine_slot_t *s) {
    pthread_mutex_lock(&s->mu);
    tsr_engine_model_t *m = s->cur != NULL ? tsr_engine_model_retain(s->cur) : NULL;
    pthread_mutex_unlock(&s->mu);
    return m;
}

void tsr_engine_slot_swap(tsr_engine_slot_t *s, tsr_engine_model_t *m) {
    pthread_mutex_lock(&s->mu);
    tsr_engine_model_t *old = s->cur;
    s->cur = m;
    pthread_mutex_unlock(&s->mu);
    tsr_engine_model_release(old);
}
