/*
 * Per-principal token buckets: per_min tokens per minute, up to burst. A chained hash table
 * bounded at MAX_KEYS principals; when full, buckets that have refilled completely (idle
 * principals) are dropped, which loses nothing since a full bucket is the default state.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "httpd_int.h"

#define NSLOTS 4096
#define MAX_KEYS 65536

typedef struct bucket {
    struct bucket *next;
    double tokens;
    uint64_t last_ns;
    char key[];
} bucket_t;

struct tsr_httpd__limiter {
    pthread_mutex_t mu;
    double per_ns; /* tokens per nanosecond */
    double burst;
    size_t nkeys;
    bucket_t *slots[NSLOTS];
};

tsr_httpd__limiter_t *tsr_httpd__limiter_create(uint32_t per_min, uint32_t burst) {
    tsr_httpd__limiter_t *l = tsr_xcalloc(1, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
    l->per_ns = (double)per_min / 60e9;
    l->burst = burst ? (double)burst : 1.0;
    return l;
}

void tsr_httpd__limiter_destroy(tsr_httpd__limiter_t *l) {
    if (l == NULL) {
        return;
    }
    for (size_t i = 0; i < NSLOTS; i++) {
        bucket_t *b = l->slots[i];
        while (b != NULL) {
            bucket_t *n = b->next;
            free(b);
            b = n;
        }
    }
    pthread_mutex_destroy(&l->mu);
    free(l);
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return h;
}

static void refill(tsr_httpd__limiter_t *l, bucket_t *b, uint64_t now) {
    b->tokens += (double)(now - b->last_ns) * l->per_ns;
    if (b->tokens > l->burst) {
        b->tokens = l->burst;
    }
    b->last_ns = now;
}

static void purge_idle(tsr_httpd__limiter_t *l, uint64_t now) {
    for (size_t i = 0; i < NSLOTS; i++) {
        bucket_t **pp = &l->slots[i];
        while (*pp != NULL) {
            bucket_t *b = *pp;
            refill(l, b, now);
            if (b->tokens >= l->burst) {
                *pp = b->next;
                free(b);
                l->nkeys--;
            } else {
                pp = &b->next;
            }
        }
    }
}

bool tsr_httpd__limiter_take(tsr_httpd__limiter_t *l, const char *key, unsigned *retry_after_s) {
    if (l->per_ns <= 0) {
        return true;
    }
    uint64_t now = tsr_mono_ns();
    size_t slot = (size_t)(fnv1a(key) % NSLOTS);
    pthread_mutex_lock(&l->mu);
    bucket_t *b = l->slots[slot];
    while (b != NULL && strcmp(b->key, key) != 0) {
        b = b->next;
    }
    if (b == NULL) {
        if (l->nkeys >= MAX_KEYS) {
            purge_idle(l, now);
        }
        size_t klen = strlen(key);
        b = tsr_xmalloc(sizeof *b + klen + 1);
        memcpy(b->key, key, klen + 1);
        b->tokens = l->burst;
        b->last_ns = now;
        b->next = l->slots[slot];
        l->slots[slot] = b;
        l->nkeys++;
    }
    refill(l, b, now);
    bool ok = b->tokens >= 1.0;
    if (ok) {
        b->tokens -= 1.0;
    } else {
        double wait_s = (1.0 - b->tokens) / (l->per_ns * 1e9);
        unsigned w = (unsigned)wait_s + 1;
        *retry_after_s = w;
    }
    pthread_mutex_unlock(&l->mu);
    return ok;
}
