/*
 * pkg/log: structured logs, one JSON object per line on stdout (or a chosen stream):
 * {"time","level","service","requestId","tenantId","userId","msg", ...extra fields}.
 * Layer: above core. Thread safe: each line is written with one fwrite under a lock.
 */
#ifndef TSR_LOG_H
#define TSR_LOG_H

#include <stdio.h>

#include <jansson.h>

#include "core.h"

typedef enum { TSR_LOG_DEBUG = 0, TSR_LOG_INFO, TSR_LOG_WARN, TSR_LOG_ERROR } tsr_log_level_t;

/* Who a line is about; every member may be NULL (omitted from the line). Borrowed. */
typedef struct {
    const char *request_id;
    const char *tenant_id;
    const char *user_id;
} tsr_log_ctx_t;

/* Set the service name, the minimum level and the stream (NULL: stdout). Call once at start,
 * before other threads log. service is copied. */
void tsr_log_init(const char *service, tsr_log_level_t min_level, FILE *out);
/* Parse "debug", "info", "warn", "error"; TSR_EINVAL otherwise. */
tsr_err_t tsr_log_level_parse(const char *s, tsr_log_level_t *out);
/* Write one line. ctx may be NULL. extra (borrowed, may be NULL) is a JSON object whose
 * members are added to the line. */
void tsr_log_write(tsr_log_level_t level, const tsr_log_ctx_t *ctx, json_t *extra, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));

#define tsr_log_info(ctx, ...) tsr_log_write(TSR_LOG_INFO, (ctx), NULL, __VA_ARGS__)
#define tsr_log_warn(ctx, ...) tsr_log_write(TSR_LOG_WARN, (ctx), NULL, __VA_ARGS__)
#define tsr_log_error(ctx, ...) tsr_log_write(TSR_LOG_ERROR, (ctx), NULL, __VA_ARGS__)
#define tsr_log_debug(ctx, ...) tsr_log_write(TSR_LOG_DEBUG, (ctx), NULL, __VA_ARGS__)

#endif
