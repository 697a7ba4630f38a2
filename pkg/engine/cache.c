/*
 * pkg/engine: the result cache. Key: 128-bit fingerprint of (model version, selection,
 * object definition); value: a private copy of the hypercube or list object. LRU eviction
 * bounded by bytes; one mutex (entries are copied in and out, never shared).
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "engine_int.h"

#define CACHE_BUCKETS 4096

typedef struct entry {
    uint64_t key[2];
    int kind; /* 0 hypercube, 1 list object */
    void *val;
    size_t bytes;
    struct entry *prev, *next; /* LRU list, most recent first */
    struct entry *chain;       /* bucket chain */
} entry_t;

struct tsr_engine_cache {
    pthread_mutex_t mu;
    entry_t *buckets[CACHE_BUCKETS];
    entry_t *head, *tail;
    size_t bytes, max_bytes;
    uint64_t hits, misses;
};

tsr_engine_cache_t *tsr_engine_cache_create(size_t max_bytes) {
    tsr_engine_cache_t *c = tsr_xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->max_bytes = max_bytes;
    return c;
}

static void entry_free(entry_t *e) {
    if (e->kind == 0)
        tsr_engine_hypercube_destroy(e->val);
    else
        tsr_engine_listobject_destroy(e->val);
    free(e);
}

void tsr_engine_cache_destroy(tsr_engine_cache_t *c) {
    if (c == NULL)
        return;
    for (entry_t *e = c->head; e != NULL;) {
        entry_t *n = e->next;
        entry_free(e);
        e = n;
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void tsr_engine_cache_stats(tsr_engine_cache_t *c, uint64_t *hits, uint64_t *misses,
                            size_t *bytes) {
    pthread_mutex_lock(&c->mu);
    *hits = c->hits;
    *misses = c->misses;
    *bytes = c->bytes;
    pthread_mutex_unlock(&c->mu);
}

typedef struct {
    uint64_t h[2];
} fp_t;

static void fp_bytes(fp_t *f, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        f->h[0] = (f->h[0] ^ b[i]) * 0x100000001B3u;
        f->h[1] = (f->h[1] + b[i] + 0x9E3779B97F4A7C15u) * 0xBF58476D1CE4E5B9u;
        f->h[1] ^= f->h[1] >> 29;
    }
}

static void fp_str(fp_t *f, const char *s) {
    size_t n = s != NULL ? strlen(s) : SIZE_MAX;
    fp_bytes(f, &n, sizeof n);
    if (s != NULL)
        fp_bytes(f, s, n);
}

static void fp_u64(fp_t *f, uint64_t v) {
    fp_bytes(f, &v, sizeof v);
}

static fp_t fp_start(tsr_engine_state_t *st, int kind) {
    fp_t f = {{0xCBF29CE484222325u, 0x84222325CBF29CE4u}};
    uint64_t s[2];
    tsr_engine__state_fingerprint(st, s);
    fp_u64(&f, s[0]);
    fp_u64(&f, s[1]);
    fp_u64(&f, tsr_engine__state_model(st)->version);
    fp_u64(&f, (uint64_t)kind);
    return f;
}

static void unlink_lru(tsr_engine_cache_t *c, entry_t *e) {
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void push_front(tsr_engine_cache_t *c, entry_t *e) {
    e->next = c->head;
    e->prev = NULL;
    if (c->head != NULL)
        c->head->prev = e;
    c->head = e;
    if (c->tail == NULL)
        c->tail = e;
}

static void unlink_bucket(tsr_engine_cache_t *c, entry_t *e) {
    entry_t **pp = &c->buckets[e->key[0] % CACHE_BUCKETS];
    while (*pp != e)
        pp = &(*pp)->chain;
    *pp = e->chain;
}

/* A copy of the cached value, or NULL. */
static void *lookup(tsr_engine_cache_t *c, const fp_t *k, int kind) {
    void *out = NULL;
    pthread_mutex_lock(&c->mu);
    for (entry_t *e = c->buckets[k->h[0] % CACHE_BUCKETS]; e != NULL; e = e->chain) {
        if (e->key[0] == k->h[0] && e->key[1] == k->h[1] && e->kind == kind) {
            unlink_lru(c, e);
            push_front(c, e);
            out = kind == 0 ? (void *)tsr_engine__hypercube_clone(e->val, NULL)
                            : (void *)tsr_engine__listobject_clone(e->val, NULL);
            break;
        }
    }
    if (out != NULL)
        c->hits++;
    else
        c->misses++;
    pthread_mutex_unlock(&c->mu);
    return out;
}

static void insert(tsr_engine_cache_t *c, const fp_t *k, int kind, const void *val) {
    size_t bytes;
    void *copy = kind == 0 ? (void *)tsr_engine__hypercube_clone(val, &bytes)
                           : (void *)tsr_engine__listobject_clone(val, &bytes);
    entry_t *e = tsr_xcalloc(1, sizeof *e);
    e->key[0] = k->h[0];
    e->key[1] = k->h[1];
    e->kind = kind;
    e->val = copy;
    e->bytes = bytes + sizeof *e;
    pthread_mutex_lock(&c->mu);
    if (e->bytes > c->max_bytes) {
        pthread_mutex_unlock(&c->mu);
        entry_free(e);
        return;
    }
    size_t b = k->h[0] % CACHE_BUCKETS;
    e->chain = c->buckets[b];
    c->buckets[b] = e;
    push_front(c, e);
    c->bytes += e->bytes;
    while (c->bytes > c->max_bytes && c->tail != NULL) {
        entry_t *old = c->tail;
        unlink_lru(c, old);
        unlink_bucket(c, old);
        c->bytes -= old->bytes;
        entry_free(old);
    }
    pthread_mutex_unlock(&c->mu);
}

tsr_err_t tsr_engine_hypercube_compute_cached(tsr_engine_cache_t *cache,
                                              const tsr_engine_model_t *m, tsr_engine_state_t *st,
                                              const tsr_engine_hypercube_def_t *def,
                                              tsr_engine_hypercube_t **out, tsr_error_t *err) {
    if (cache == NULL || m != tsr_engine__state_model(st))
        return tsr_engine_hypercube_compute(m, st, def, out, err);
    fp_t k = fp_start(st, 0);
    fp_u64(&k, def->n_dims);
    for (size_t i = 0; i < def->n_dims; i++)
        fp_str(&k, def->dims[i]);
    fp_u64(&k, def->n_measures);
    for (size_t i = 0; i < def->n_measures; i++)
        fp_str(&k, def->measures[i]);
    fp_u64(&k, def->n_sort);
    for (size_t i = 0; i < def->n_sort; i++) {
        fp_u64(&k, def->sort[i].column);
        fp_u64(&k, (uint64_t)def->sort[i].by);
        fp_u64(&k, def->sort[i].descending);
    }
    fp_u64(&k, def->top);
    fp_u64(&k, def->height);
    *out = lookup(cache, &k, 0);
    if (*out != NULL)
        return TSR_OK;
    tsr_err_t rc = tsr_engine_hypercube_compute(m, st, def, out, err);
    if (rc == TSR_OK)
        insert(cache, &k, 0, *out);
    return rc;
}

tsr_err_t tsr_engine_listobject_compute_cached(tsr_engine_cache_t *cache,
                                               const tsr_engine_model_t *m, tsr_engine_state_t *st,
                                               const tsr_engine_listobject_def_t *def,
                                               tsr_engine_listobject_t **out, tsr_error_t *err) {
    if (cache == NULL || m != tsr_engine__state_model(st))
        return tsr_engine_listobject_compute(m, st, def, out, err);
    fp_t k = fp_start(st, 1);
    fp_str(&k, def->field);
    fp_u64(&k, def->sort_by_state);
    fp_u64(&k, (uint64_t)def->by);
    fp_u64(&k, def->descending);
    fp_u64(&k, def->frequency);
    fp_u64(&k, def->top);
    fp_u64(&k, def->height);
    *out = lookup(cache, &k, 1);
    if (*out != NULL)
        return TSR_OK;
    tsr_err_t rc = tsr_engine_listobject_compute(m, st, def, out, err);
    if (rc == TSR_OK)
        insert(cache, &k, 1, *out);
    return rc;
}
