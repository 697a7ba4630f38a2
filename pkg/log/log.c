/*
 * pkg/log implementation: builds each line as a jansson object and prints it compactly with
 * one fwrite + fflush under a mutex, so lines from many threads never interleave.
 */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_service[64] = "tessera";
static tsr_log_level_t g_min = TSR_LOG_INFO;
static FILE *g_out = NULL;

static const char *level_name(tsr_log_level_t l) {
    switch (l) {
    case TSR_LOG_DEBUG:
        return "debug";
    case TSR_LOG_INFO:
        return "info";
    case TSR_LOG_WARN:
        return "warn";
    case TSR_LOG_ERROR:
        return "error";
    }
    return "info";
}

void tsr_log_init(const char *service, tsr_log_level_t min_level, FILE *out) {
    pthread_mutex_lock(&g_mu);
    snprintf(g_service, sizeof g_service, "%s", service ? service : "tessera");
    g_min = min_level;
    g_out = out;
    pthread_mutex_unlock(&g_mu);
}

tsr_err_t tsr_log_level_parse(const char *s, tsr_log_level_t *out) {
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (tsr_log_level_t)i;
            return TSR_OK;
        }
    }
    return TSR_EINVAL;
}

void tsr_log_write(tsr_log_level_t level, const tsr_log_ctx_t *ctx, json_t *extra, const char *fmt,
                   ...) {
    if (level < g_min) {
        return;
    }
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    char ts[25];
    tsr_time_format_rfc3339(tsr_wall_ms(), ts);
    json_t *o = json_object();
    json_object_set_new(o, "time", json_string(ts));
    json_object_set_new(o, "level", json_string(level_name(level)));
    json_object_set_new(o, "service", json_string(g_service));
    if (ctx != NULL) {
        if (ctx->request_id != NULL) {
            json_object_set_new(o, "requestId", json_string(ctx->request_id));
        }
        if (ctx->tenant_id != NULL) {
            json_object_set_new(o, "tenantId", json_string(ctx->tenant_id));
        }
        if (ctx->user_id != NULL) {
            json_object_set_new(o, "userId", json_string(ctx->user_id));
        }
    }
    /* Invalid UTF-8 in a message must not drop the line: jansson refuses it, so fall back to
     * a lossy copy with non-ASCII bytes replaced. */
    json_t *m = json_string(msg);
    if (m == NULL) {
        for (char *p = msg; *p; p++) {
            if ((unsigned char)*p >= 0x80) {
                *p = '?';
            }
        }
        m = json_string(msg);
    }
    json_object_set_new(o, "msg", m);
    if (extra != NULL && json_is_object(extra)) {
        json_object_update_missing(o, extra);
    }
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (line == NULL) {
        return;
    }
    pthread_mutex_lock(&g_mu);
    FILE *out = g_out ? g_out : stdout;
    fputs(line, out);
    fputc('\n', out);
    fflush(out);
    pthread_mutex_unlock(&g_mu);
    free(line);
}
