/*
 * pkg/auth internals shared by its own files: one small HTTP client over libcurl (a timeout, a
 * capped answer, http and https only) and the shape check of the ids that go into headers.
 */
#ifndef TSR_AUTH_INT_H
#define TSR_AUTH_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"

/* method "GET" or "POST" (body: JSON, borrowed, may be NULL); headers: NULL-terminated list of
 * "Name: value" lines (may be NULL). The answer goes into out (its max caps it: TSR_ETOOBIG).
 * *status the HTTP status. TSR_EUNAVAILABLE when the server cannot be reached. */
tsr_err_t tsr_auth__http(const char *method, const char *url, const char *const *headers,
                         const char *body, uint32_t timeout_ms, long *status, tsr_buf_t *out,
                         tsr_error_t *err);

/* 1..TSR_AUTH_ID_MAX bytes of [A-Za-z0-9._:@-]: safe in a header and in a comma-separated list. */
bool tsr_auth__id_ok(const char *s);

#endif
