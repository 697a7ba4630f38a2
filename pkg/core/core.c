/*
 * pkg/core implementation: errors, allocation, buffers, slices, arena, time, identifiers.
 * Invariants: tsr_buf_t.data is NUL-terminated whenever non-NULL; arena chunks are only
 * freed all at once.
 */
#define _GNU_SOURCE /* getrandom, timegm */
#include "core.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* ---- errors ------------------------------------------------------------------------------ */

const char *tsr_strerror(tsr_err_t code) {
    switch (code) {
    case TSR_OK:
        return "ok";
    case TSR_EINVAL:
        return "invalid argument";
    case TSR_ENOTFOUND:
        return "not found";
    case TSR_ECONFLICT:
        return "conflict";
    case TSR_EUNAUTHENTICATED:
        return "unauthenticated";
    case TSR_EFORBIDDEN:
        return "forbidden";
    case TSR_ETOOBIG:
        return "too large";
    case TSR_EUNAVAILABLE:
        return "unavailable";
    case TSR_ETIMEOUT:
        return "timeout";
    case TSR_EINTERNAL:
        return "internal error";
    case TSR_EMETHOD:
        return "method not allowed";
    case TSR_ERATELIMITED:
        return "rate limited";
    case TSR_EIO:
        return "i/o error";
    case TSR_ECORRUPT:
        return "integrity check failed";
    case TSR_EUNSUPPORTED:
        return "not supported";
    case TSR_ECANCELED:
        return "canceled";
    case TSR_EPRECONDITION:
        return "precondition failed";
    case TSR_EUNSUPPORTEDMEDIA:
        return "unsupported media type";
    }
    return "unknown error";
}

tsr_err_t tsr_error_set(tsr_error_t *err, tsr_err_t code, const char *fmt, ...) {
    if (err != NULL) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void tsr_error_clear(tsr_error_t *err) {
    if (err != NULL) {
        err->code = TSR_OK;
        err->msg[0] = '\0';
    }
}

/* ---- allocation -------------------------------------------------------------------------- */

static void oom(size_t n) {
    fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"out of memory allocating %zu bytes\"}\n", n);
    abort();
}

void *tsr_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        oom(n);
    }
    return p;
}

void *tsr_xcalloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL) {
        oom(count * size);
    }
    return p;
}

void *tsr_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        oom(n);
    }
    return q;
}

char *tsr_xstrdup(const char *s) {
    return tsr_xstrndup(s, strlen(s));
}

char *tsr_xstrndup(const char *s, size_t n) {
    char *p = tsr_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

tsr_err_t tsr_alloc_capped(void **out, size_t n, size_t cap, tsr_error_t *err) {
    *out = NULL;
    if (n > cap) {
        return tsr_error_set(err, TSR_ETOOBIG, "size %zu exceeds the limit of %zu bytes", n, cap);
    }
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        return tsr_error_set(err, TSR_EUNAVAILABLE, "cannot allocate %zu bytes", n);
    }
    *out = p;
    return TSR_OK;
}

bool tsr_size_mul(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}

bool tsr_size_add(size_t a, size_t b, size_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

/* ---- buffers ----------------------------------------------------------------------------- */

void tsr_buf_init(tsr_buf_t *b, size_t max) {
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max ? max : SIZE_MAX / 2;
}

void tsr_buf_cleanup(tsr_buf_t *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void tsr_buf_reset(tsr_buf_t *b) {
    b->len = 0;
    if (b->data != NULL) {
        b->data[0] = '\0';
    }
}

tsr_err_t tsr_buf_reserve(tsr_buf_t *b, size_t more) {
    size_t need;
    if (!tsr_size_add(b->len, more, &need) || need > b->max) {
        return TSR_ETOOBIG;
    }
    if (need + 1 <= b->cap) {
        return TSR_OK;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need + 1) {
        cap = cap > SIZE_MAX / 2 ? need + 1 : cap * 2;
    }
    b->data = tsr_xrealloc(b->data, cap);
    b->cap = cap;
    return TSR_OK;
}

tsr_err_t tsr_buf_append(tsr_buf_t *b, const void *p, size_t n) {
    tsr_err_t rc = tsr_buf_reserve(b, n);
    if (rc != TSR_OK) {
        return rc;
    }
    if (n > 0) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
    return TSR_OK;
}

tsr_err_t tsr_buf_append_str(tsr_buf_t *b, const char *s) {
    return tsr_buf_append(b, s, strlen(s));
}

tsr_err_t tsr_buf_vappendf(tsr_buf_t *b, const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        return TSR_EINVAL;
    }
    tsr_err_t rc = tsr_buf_reserve(b, (size_t)n);
    if (rc != TSR_OK) {
        return rc;
    }
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return TSR_OK;
}

tsr_err_t tsr_buf_appendf(tsr_buf_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    tsr_err_t rc = tsr_buf_vappendf(b, fmt, ap);
    va_end(ap);
    return rc;
}

char *tsr_buf_take(tsr_buf_t *b, size_t *len) {
    char *p = b->data;
    if (p == NULL) {
        p = tsr_xstrdup("");
    }
    if (len != NULL) {
        *len = b->len;
    }
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

/* ---- string slices ----------------------------------------------------------------------- */

tsr_str_t tsr_str(const char *cstr) {
    return (tsr_str_t){cstr ? cstr : "", cstr ? strlen(cstr) : 0};
}

tsr_str_t tsr_str_n(const char *p, size_t n) {
    return (tsr_str_t){p, n};
}

bool tsr_str_eq(tsr_str_t a, tsr_str_t b) {
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

bool tsr_str_eq_cstr(tsr_str_t a, const char *b) {
    return tsr_str_eq(a, tsr_str(b));
}

static char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

bool tsr_str_case_eq_cstr(tsr_str_t a, const char *b) {
    size_t n = strlen(b);
    if (n != a.n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (lower(a.p[i]) != lower(b[i])) {
            return false;
        }
    }
    return true;
}

bool tsr_str_has_prefix(tsr_str_t s, const char *prefix) {
    size_t n = strlen(prefix);
    return s.n >= n && memcmp(s.p, prefix, n) == 0;
}

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

tsr_str_t tsr_str_trim(tsr_str_t s) {
    while (s.n > 0 && is_space(s.p[0])) {
        s.p++;
        s.n--;
    }
    while (s.n > 0 && is_space(s.p[s.n - 1])) {
        s.n--;
    }
    return s;
}

bool tsr_str_next_tok(tsr_str_t *s, char sep, tsr_str_t *tok) {
    if (s->p == NULL) {
        return false;
    }
    const char *hit = s->n ? memchr(s->p, sep, s->n) : NULL;
    if (hit == NULL) {
        *tok = *s;
        s->p = NULL;
        s->n = 0;
        return true;
    }
    tok->p = s->p;
    tok->n = (size_t)(hit - s->p);
    s->n -= tok->n + 1;
    s->p = hit + 1;
    return true;
}

tsr_err_t tsr_str_to_i64(tsr_str_t s, int64_t min, int64_t max, int64_t *out) {
    if (s.n == 0 || s.n > 20) {
        return TSR_EINVAL;
    }
    size_t i = 0;
    bool neg = false;
    if (s.p[0] == '-' || s.p[0] == '+') {
        neg = s.p[0] == '-';
        i = 1;
        if (s.n == 1) {
            return TSR_EINVAL;
        }
    }
    uint64_t v = 0;
    for (; i < s.n; i++) {
        char c = s.p[i];
        if (c < '0' || c > '9') {
            return TSR_EINVAL;
        }
        if (v > (UINT64_MAX - (uint64_t)(c - '0')) / 10) {
            return TSR_EINVAL;
        }
        v = v * 10 + (uint64_t)(c - '0');
    }
    if (!neg && v > (uint64_t)INT64_MAX) {
        return TSR_EINVAL;
    }
    if (neg && v > (uint64_t)INT64_MAX + 1) {
        return TSR_EINVAL;
    }
    int64_t r = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    if (r < min || r > max) {
        return TSR_EINVAL;
    }
    *out = r;
    return TSR_OK;
}

char *tsr_str_dup(tsr_str_t s) {
    return tsr_xstrndup(s.p ? s.p : "", s.n);
}

/* ---- arena ------------------------------------------------------------------------------- */

typedef struct chunk {
    struct chunk *next;
    size_t size; /* bytes usable after the header */
    size_t used;
    _Alignas(16) unsigned char mem[];
} chunk_t;

struct tsr_arena {
    chunk_t *head;
    size_t chunk_size;
    size_t total; /* bytes handed out */
};

static chunk_t *chunk_new(size_t size) {
    chunk_t *c = tsr_xmalloc(sizeof(chunk_t) + size);
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

tsr_arena_t *tsr_arena_create(size_t first_chunk) {
    tsr_arena_t *a = tsr_xmalloc(sizeof *a);
    a->chunk_size = first_chunk ? first_chunk : 4096;
    a->head = chunk_new(a->chunk_size);
    a->total = 0;
    return a;
}

void tsr_arena_destroy(tsr_arena_t *a) {
    if (a == NULL) {
        return;
    }
    chunk_t *c = a->head;
    while (c != NULL) {
        chunk_t *n = c->next;
        free(c);
        c = n;
    }
    free(a);
}

void *tsr_arena_alloc(tsr_arena_t *a, size_t n) {
    size_t need = (n + 15) & ~(size_t)15;
    if (need < n) {
        oom(n);
    }
    chunk_t *c = a->head;
    if (c->size - c->used < need) {
        size_t size = a->chunk_size;
        while (size < need) {
            size *= 2;
        }
        if (a->chunk_size < 1024 * 1024) {
            a->chunk_size *= 2;
        }
        c = chunk_new(size);
        c->next = a->head;
        a->head = c;
    }
    void *p = c->mem + c->used;
    c->used += need;
    a->total += need;
    return p;
}

char *tsr_arena_strndup(tsr_arena_t *a, const char *s, size_t n) {
    char *p = tsr_arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *tsr_arena_strdup(tsr_arena_t *a, const char *s) {
    return tsr_arena_strndup(a, s, strlen(s));
}

char *tsr_arena_printf(tsr_arena_t *a, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        return tsr_arena_strdup(a, "");
    }
    char *p = tsr_arena_alloc(a, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}

size_t tsr_arena_used(const tsr_arena_t *a) {
    return a->total;
}

/* ---- time -------------------------------------------------------------------------------- */

uint64_t tsr_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t tsr_mono_ms(void) {
    return tsr_mono_ns() / 1000000u;
}

int64_t tsr_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tsr_time_format_rfc3339(int64_t wall_ms, char out[25]) {
    time_t secs = (time_t)(wall_ms / 1000);
    int ms = (int)(wall_ms % 1000);
    if (ms < 0) {
        ms += 1000;
        secs -= 1;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    char tmp[64]; /* roomy: the compiler cannot prove the fields are 2 digits */
    snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (tm.tm_year + 1900) % 10000,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    memcpy(out, tmp, 24);
    out[24] = '\0';
}

static bool digits(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

tsr_err_t tsr_time_parse_rfc3339(const char *s, int64_t *wall_ms) {
    int y, mo, d, h, mi, se;
    size_t n = strlen(s);
    if (n < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
        !digits(s + 17, 2, &se)) {
        return TSR_EINVAL;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) {
        return TSR_EINVAL;
    }
    const char *p = s + 19;
    int ms = 0;
    if (*p == '.') {
        p++;
        int nd = 0;
        while (*p >= '0' && *p <= '9') {
            if (nd < 3) {
                ms = ms * 10 + (*p - '0');
            }
            nd++;
            p++;
        }
        if (nd == 0) {
            return TSR_EINVAL;
        }
        for (; nd < 3; nd++) {
            ms *= 10;
        }
    }
    int off_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59) {
            return TSR_EINVAL;
        }
        off_min = (oh * 60 + om) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return TSR_EINVAL;
    }
    if (*p != '\0') {
        return TSR_EINVAL;
    }
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    time_t t = timegm(&tm);
    *wall_ms = ((int64_t)t - (int64_t)off_min * 60) * 1000 + ms;
    return TSR_OK;
}

/* ---- identifiers ------------------------------------------------------------------------- */

void tsr_random_fill(void *buf, size_t n) {
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"getrandom failed\"}\n");
            abort();
        }
        p += r;
        n -= (size_t)r;
    }
}

void tsr_hex_encode(const void *p, size_t n, char *out) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * n] = '\0';
}

void tsr_id_new(char out[25]) {
    unsigned char b[12];
    tsr_random_fill(b, sizeof b);
    tsr_hex_encode(b, sizeof b, out);
}
