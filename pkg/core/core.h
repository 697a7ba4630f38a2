/*
 * pkg/core: the bottom layer every Tessera module stands on. Error codes and error detail,
 * allocation that aborts on exhaustion and refuses sizes over a caller's cap, growable
 * buffers with a hard maximum, string slices, a bump arena, monotonic and wall time, and
 * random bytes for identifiers. No dependency besides libc.
 */
#ifndef TSR_CORE_H
#define TSR_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ------------------------------------------------------------------------------ */

/* Append-only: values are never renumbered, new codes go at the end. */
typedef enum {
    TSR_OK = 0,
    TSR_EINVAL = 1,            /* malformed or invalid input (400) */
    TSR_ENOTFOUND = 2,         /* no such object, or not visible to the caller (404) */
    TSR_ECONFLICT = 3,         /* unique constraint or version mismatch (409) */
    TSR_EUNAUTHENTICATED = 4,  /* no or bad credentials (401) */
    TSR_EFORBIDDEN = 5,        /* authenticated but not allowed (403) */
    TSR_ETOOBIG = 6,           /* a size over its cap (413) */
    TSR_EUNAVAILABLE = 7,      /* a dependency is down or busy; retry later (503) */
    TSR_ETIMEOUT = 8,          /* a deadline passed (504) */
    TSR_EINTERNAL = 9,         /* a bug or an unexpected failure (500) */
    TSR_EMETHOD = 10,          /* method not allowed on this route (405) */
    TSR_ERATELIMITED = 11,     /* too many requests (429) */
    TSR_EIO = 12,              /* an I/O failure on local storage (500) */
    TSR_ECORRUPT = 13,         /* integrity check failed: bad tag, broken chain (500/400) */
    TSR_EUNSUPPORTED = 14,     /* a valid request for something not implemented (501) */
    TSR_ECANCELED = 15,        /* the operation was canceled (409) */
    TSR_EPRECONDITION = 16,    /* a precondition on the current state failed (412) */
    TSR_EUNSUPPORTEDMEDIA = 17 /* wrong Content-Type (415) */
} tsr_err_t;

#define TSR_ERROR_MSG_MAX 256

/* Detail for a failed call: the code and a bounded, human-readable message. */
typedef struct {
    tsr_err_t code;
    char msg[TSR_ERROR_MSG_MAX];
} tsr_error_t;

/* Static, never-NULL name of a code ("TSR_ENOTFOUND" style without the prefix, e.g.
 * "not found"). Thread safe. */
const char *tsr_strerror(tsr_err_t code);

/* Record code and a printf-style message into err (which may be NULL) and return code, so
 * that `return tsr_error_set(err, TSR_EINVAL, "bad %s", what);` reads naturally. The message
 * is truncated to TSR_ERROR_MSG_MAX-1 bytes. */
tsr_err_t tsr_error_set(tsr_error_t *err, tsr_err_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reset err to TSR_OK with an empty message. err may be NULL. */
void tsr_error_clear(tsr_error_t *err);

/* ---- allocation -------------------------------------------------------------------------- */

/* Allocation of small, internal sizes: never returns NULL; on exhaustion it logs one line
 * to stderr and aborts (the pod restarts). Free with free(). */
void *tsr_xmalloc(size_t n);
void *tsr_xcalloc(size_t count, size_t size);
void *tsr_xrealloc(void *p, size_t n);
char *tsr_xstrdup(const char *s);
char *tsr_xstrndup(const char *s, size_t n);

/* For sizes that come from outside: refuses n > cap with TSR_ETOOBIG before allocating and
 * reports an allocation failure as TSR_EUNAVAILABLE instead of aborting. *out is
 * returned-owned (free with free()). */
tsr_err_t tsr_alloc_capped(void **out, size_t n, size_t cap, tsr_error_t *err);

/* Overflow-checked a*b and a+b: false when the result does not fit in size_t. */
bool tsr_size_mul(size_t a, size_t b, size_t *out);
bool tsr_size_add(size_t a, size_t b, size_t *out);

/* ---- buffers ----------------------------------------------------------------------------- */

/* A growable byte buffer with a hard maximum. data is NUL-terminated after every append
 * (the NUL is not counted in len). Caller's storage: tsr_buf_init / tsr_buf_cleanup. */
typedef struct {
    char *data; /* owned; NULL until the first append */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated */
    size_t max; /* hard limit on len; 0 means SIZE_MAX/2 */
} tsr_buf_t;

void tsr_buf_init(tsr_buf_t *b, size_t max);
void tsr_buf_cleanup(tsr_buf_t *b);
void tsr_buf_reset(tsr_buf_t *b);
/* Ensure room for `more` further bytes; TSR_ETOOBIG past max. */
tsr_err_t tsr_buf_reserve(tsr_buf_t *b, size_t more);
tsr_err_t tsr_buf_append(tsr_buf_t *b, const void *p, size_t n);
tsr_err_t tsr_buf_append_str(tsr_buf_t *b, const char *s);
tsr_err_t tsr_buf_appendf(tsr_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
tsr_err_t tsr_buf_vappendf(tsr_buf_t *b, const char *fmt, va_list ap);
/* Hand the bytes to the caller (free with free()) and leave b empty. Never NULL. */
char *tsr_buf_take(tsr_buf_t *b, size_t *len);

/* ---- string slices ----------------------------------------------------------------------- */

/* A borrowed, not necessarily NUL-terminated run of bytes. */
typedef struct {
    const char *p;
    size_t n;
} tsr_str_t;

#define TSR_STR_LIT(s) ((tsr_str_t){(s), sizeof(s) - 1})

tsr_str_t tsr_str(const char *cstr); /* cstr may be NULL: empty slice */
tsr_str_t tsr_str_n(const char *p, size_t n);
bool tsr_str_eq(tsr_str_t a, tsr_str_t b);
bool tsr_str_eq_cstr(tsr_str_t a, const char *b);
bool tsr_str_case_eq_cstr(tsr_str_t a, const char *b); /* ASCII case-insensitive */
bool tsr_str_has_prefix(tsr_str_t s, const char *prefix);
tsr_str_t tsr_str_trim(tsr_str_t s);
/* Split off the part before the first `sep` into *tok and advance *s past sep. Returns false
 * when *s is exhausted (no token left). */
bool tsr_str_next_tok(tsr_str_t *s, char sep, tsr_str_t *tok);
/* Strict decimal parse of the whole slice into [min,max]; TSR_EINVAL otherwise. */
tsr_err_t tsr_str_to_i64(tsr_str_t s, int64_t min, int64_t max, int64_t *out);
/* A heap copy with a terminating NUL (free with free()). */
char *tsr_str_dup(tsr_str_t s);

/* ---- arena ------------------------------------------------------------------------------- */

/* A bump allocator: many small allocations, one free. Used per HTTP request. Not thread
 * safe. Allocations are 16-byte aligned and valid until tsr_arena_destroy. */
typedef struct tsr_arena tsr_arena_t;

tsr_arena_t *tsr_arena_create(size_t first_chunk);
void tsr_arena_destroy(tsr_arena_t *a); /* NULL: no-op */
void *tsr_arena_alloc(tsr_arena_t *a, size_t n);
char *tsr_arena_strdup(tsr_arena_t *a, const char *s);
char *tsr_arena_strndup(tsr_arena_t *a, const char *s, size_t n);
char *tsr_arena_printf(tsr_arena_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
size_t tsr_arena_used(const tsr_arena_t *a); /* bytes handed out */

/* ---- time -------------------------------------------------------------------------------- */

uint64_t tsr_mono_ns(void); /* CLOCK_MONOTONIC in ns */
uint64_t tsr_mono_ms(void);
int64_t tsr_wall_ms(void); /* CLOCK_REALTIME, ms since the Unix epoch */
/* RFC 3339 UTC with milliseconds: "2026-11-22T18:04:05.123Z". out must hold 25 bytes. */
void tsr_time_format_rfc3339(int64_t wall_ms, char out[25]);
/* Parse RFC 3339 ("...Z" or "+hh:mm", optional fraction) into ms since the epoch. */
tsr_err_t tsr_time_parse_rfc3339(const char *s, int64_t *wall_ms);

/* ---- identifiers ------------------------------------------------------------------------- */

/* Fill buf with n bytes from the kernel's CSPRNG (getrandom). Aborts if the kernel refuses:
 * there is no safe fallback. Secrets and keys use pkg/crypto (OpenSSL) instead. */
void tsr_random_fill(void *buf, size_t n);
/* 24 lowercase hex characters from 12 random bytes (the shape of a Mongo ObjectId), NUL
 * terminated. out must hold 25 bytes. */
void tsr_id_new(char out[25]);
/* Lowercase hex of n bytes into out (2n+1 bytes). */
void tsr_hex_encode(const void *p, size_t n, char *out);

#ifdef __cplusplus
}
#endif
#endif
