/*
 * pkg/engine: bit-packed vectors of symbol indexes (+1, 0 = null). Appends write at the
 * current width and repack when a value needs more bits, so a column under construction
 * never holds more than its packed size (the reload's memory stays near the model's).
 */
#include <stdlib.h>

#include "engine_int.h"

unsigned tsr_engine__bits_for(uint64_t max_value) {
    unsigned b = 1;
    while (b < 32 && (max_value >> b) != 0)
        b++;
    return b;
}

void tsr_engine__packed_init(tsr_engine__packed_t *p, unsigned bits) {
    memset(p, 0, sizeof *p);
    p->bits = bits < 1 ? 1 : bits;
}

void tsr_engine__packed_cleanup(tsr_engine__packed_t *p) {
    free(p->words);
    memset(p, 0, sizeof *p);
}

static void packed_reserve(tsr_engine__packed_t *p, size_t n_values) {
    size_t need = (n_values * p->bits + 63) / 64;
    if (need <= p->n_words)
        return;
    size_t cap = p->n_words ? p->n_words : 16;
    while (cap < need)
        cap *= 2;
    p->words = tsr_xrealloc(p->words, (cap + 1) * sizeof *p->words);
    memset(p->words + p->n_words, 0, (cap + 1 - p->n_words) * sizeof *p->words);
    p->n_words = cap;
}

static inline void packed_set(uint64_t *words, unsigned bits, size_t i, uint32_t v) {
    size_t bit = i * bits;
    size_t w = bit >> 6;
    unsigned sh = (unsigned)(bit & 63);
    words[w] |= (uint64_t)v << sh;
    if (sh + bits > 64)
        words[w + 1] |= (uint64_t)v >> (64 - sh);
}

void tsr_engine__packed_widen(tsr_engine__packed_t *p, unsigned bits) {
    if (bits <= p->bits)
        return;
    tsr_engine__packed_t q;
    tsr_engine__packed_init(&q, bits);
    packed_reserve(&q, p->n > 0 ? p->n : 1);
    for (size_t i = 0; i < p->n; i++)
        packed_set(q.words, bits, i, tsr_engine__packed_get(p, i));
    q.n = p->n;
    free(p->words);
    *p = q;
}

void tsr_engine__packed_push(tsr_engine__packed_t *p, uint32_t v) {
    if ((uint64_t)v >> p->bits != 0)
        tsr_engine__packed_widen(p, tsr_engine__bits_for(v));
    packed_reserve(p, p->n + 1);
    packed_set(p->words, p->bits, p->n, v);
    p->n++;
}

void tsr_engine__packed_shrink(tsr_engine__packed_t *p) {
    size_t need = (p->n * p->bits + 63) / 64;
    if (need >= p->n_words || p->words == NULL)
        return;
    p->words = tsr_xrealloc(p->words, (need + 1) * sizeof *p->words);
    p->words[need] = 0;
    p->n_words = need;
}
