/*
 * pkg/httpd internals shared by its own files: request metrics (Prometheus text) and the
 * per-principal token-bucket rate limiter. Both are thread safe (one mutex each).
 */
#ifndef TSR_HTTPD_INT_H
#define TSR_HTTPD_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "core.h"

typedef struct tsr_httpd__metrics tsr_httpd__metrics_t;
typedef struct tsr_httpd__limiter tsr_httpd__limiter_t;

tsr_httpd__metrics_t *tsr_httpd__metrics_create(void);
void tsr_httpd__metrics_destroy(tsr_httpd__metrics_t *m);
/* Count one request and its latency under (route, method, status). */
void tsr_httpd__metrics_observe(tsr_httpd__metrics_t *m, const char *route, const char *method,
                                unsigned status, uint64_t duration_ns);
/* Append the Prometheus text exposition. */
void tsr_httpd__metrics_format(tsr_httpd__metrics_t *m, const char *service, unsigned in_flight,
                               tsr_buf_t *out);

/* per_min == 0 disables limiting (take always succeeds). */
tsr_httpd__limiter_t *tsr_httpd__limiter_create(uint32_t per_min, uint32_t burst);
void tsr_httpd__limiter_destroy(tsr_httpd__limiter_t *l);
/* Take one token for key; false with *retry_after_s (>= 1) when the bucket is empty. */
bool tsr_httpd__limiter_take(tsr_httpd__limiter_t *l, const char *key, unsigned *retry_after_s);

#endif
