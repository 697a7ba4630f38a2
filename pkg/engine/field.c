/*
 * pkg/engine: symbol tables. One per field, holding each distinct value once as a dual
 * (text + optional number) in load order. Interning hashes at load time only; queries work
 * on symbol indexes. Invariant: syms[i].off/len address pool; slots hold n_slotted <=
 * mask/2 symbols: all of them, or while a CSV load keys canonical numbers and dates in the
 * direct tables (keyed), the others only.
 */
/* MAP_ANONYMOUS (direct tables) */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "engine_int.h"

static void direct_free(tsr_engine__field_t *f);

uint32_t tsr_engine__hash(const char *p, size_t n) {
    /* 64-bit multiply-mix over 8-byte words; values here are short (IDs, names, dates). */
    uint64_t h = 0x9E3779B97F4A7C15u ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDu;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    if (n > 0) {
        uint64_t w = 0;
        memcpy(&w, p, n);
        h = (h ^ w) * 0xC4CEB9FE1A85EC53u;
    }
    h ^= h >> 29;
    h *= 0xFF51AFD7ED558CCDu;
    h ^= h >> 32;
    return (uint32_t)h;
}

void tsr_engine__field_init(tsr_engine__field_t *f, const char *name, size_t name_len) {
    memset(f, 0, sizeof *f);
    f->name = tsr_xstrndup(name, name_len);
    f->slot_mask = 63;
    f->slots = tsr_xcalloc(64, sizeof *f->slots);
    f->hashes = tsr_xcalloc(64, sizeof *f->hashes);
}

void tsr_engine__field_cleanup(tsr_engine__field_t *f) {
    free(f->name);
    free(f->syms);
    free(f->pool);
    free(f->slots);
    free(f->rank);
    direct_free(f);
    free(f->hashes);
    memset(f, 0, sizeof *f);
}

static void field_grow_slots(tsr_engine__field_t *f) {
    uint32_t old_mask = f->slot_mask, mask = old_mask * 2 + 1;
    uint32_t *slots = tsr_xcalloc((size_t)mask + 1, sizeof *slots);
    uint32_t *hashes = tsr_xcalloc((size_t)mask + 1, sizeof *hashes);
    for (uint32_t j = 0; j <= old_mask; j++) {
        uint32_t s1 = f->slots[j];
        if (s1 == 0)
            continue;
        uint32_t h = f->hashes != NULL
                         ? f->hashes[j]
                         : tsr_engine__hash(f->pool + tsr_engine__sym_off(&f->syms[s1 - 1]),
                                            tsr_engine__sym_len(&f->syms[s1 - 1]));
        uint32_t i = h & mask;
        while (slots[i] != 0)
            i = (i + 1) & mask;
        slots[i] = s1;
        hashes[i] = h;
    }
    free(f->slots);
    free(f->hashes);
    f->slots = slots;
    f->hashes = hashes;
    f->slot_mask = mask;
}

/* Slots for every symbol (after seal dropped the direct tables of a keyed field). */
static void field_rebuild_slots(tsr_engine__field_t *f) {
    uint32_t mask = 63;
    while ((uint64_t)f->n_syms * 2 > mask)
        mask = mask * 2 + 1;
    uint32_t *slots = tsr_xcalloc((size_t)mask + 1, sizeof *slots);
    for (uint32_t s = 0; s < f->n_syms; s++) {
        uint32_t i = tsr_engine__hash(f->pool + tsr_engine__sym_off(&f->syms[s]),
                                      tsr_engine__sym_len(&f->syms[s])) &
                     mask;
        while (slots[i] != 0)
            i = (i + 1) & mask;
        slots[i] = s + 1;
    }
    free(f->slots);
    free(f->hashes); /* (already NULL after seal) */
    f->hashes = NULL;
    f->slots = slots;
    f->slot_mask = mask;
    f->n_slotted = f->n_syms;
    f->slots_partial = false;
}

/* Direct tables are mapped, not malloc'd: up to 16 MB each, freed at finalize, and from a
 * loader thread's arena glibc could not give them back (malloc_trim keeps the top of a
 * thread's heap). Fresh pages are zero and cost nothing until touched. */
static uint32_t *direct_map(uint32_t cap) {
    void *p = mmap(NULL, (size_t)cap * sizeof(uint32_t), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "engine: out of memory (direct table)\n");
        abort();
    }
    return p;
}

static void direct_free(tsr_engine__field_t *f) {
    for (int k = 0; k < 4; k++) {
        if (f->direct[k] != NULL)
            munmap(f->direct[k], (size_t)f->direct_cap[k] * sizeof(uint32_t));
        f->direct[k] = NULL;
        f->direct_cap[k] = 0;
    }
    if (f->direct_date != NULL)
        munmap(f->direct_date, (size_t)f->direct_date_cap * sizeof(uint32_t));
    f->direct_date = NULL;
    f->direct_date_cap = 0;
}

static void direct_set(tsr_engine__field_t *f, uint32_t tab, uint32_t key, uint32_t v) {
    uint32_t **arr = tab == 4 ? &f->direct_date : &f->direct[tab];
    uint32_t *capp = tab == 4 ? &f->direct_date_cap : &f->direct_cap[tab];
    if (key >= *capp) {
        uint32_t cap = *capp ? *capp : 1024;
        while (cap <= key)
            cap *= 2;
        uint32_t *grown = direct_map(cap);
        if (*arr != NULL) {
            memcpy(grown, *arr, (size_t)*capp * sizeof **arr);
            munmap(*arr, (size_t)*capp * sizeof **arr);
        }
        *arr = grown;
        *capp = cap;
    }
    (*arr)[key] = v;
}

/* Order of (is_num, num, text) keys as the default sort (numbers first, then text). */
static int key_cmp(const tsr_engine__field_t *f, uint32_t s, bool kn, double num, const char *t,
                   uint32_t n) {
    const tsr_engine__sym_t *y = &f->syms[s];
    bool yn = !isnan(y->num);
    if (yn != kn)
        return yn ? -1 : 1;
    if (yn && y->num != num)
        return y->num < num ? -1 : 1;
    uint32_t l = tsr_engine__sym_len(y) < n ? tsr_engine__sym_len(y) : n;
    int c = memcmp(f->pool + tsr_engine__sym_off(y), t, l);
    if (c != 0)
        return c < 0 ? -1 : 1;
    return tsr_engine__sym_len(y) < n ? -1 : tsr_engine__sym_len(y) > n;
}

/* Lookup in a sealed field without slots (its load order is its sort order). */
static uint32_t lookup_sorted(const tsr_engine__field_t *f, const char *text, uint32_t len) {
    double num;
    bool kn = tsr_engine__parse_num(text, len, &num);
    uint32_t lo = 0, hi = f->n_syms;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = key_cmp(f, mid, kn, kn ? num : 0, text, len);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* Duals whose number is not their text's (computed values): a linear scan. */
    for (uint32_t s = 0; s < f->n_syms; s++) {
        const tsr_engine__sym_t *y = &f->syms[s];
        if (tsr_engine__sym_len(y) == len &&
            memcmp(f->pool + tsr_engine__sym_off(y), text, len) == 0)
            return s;
    }
    return UINT32_MAX;
}

void tsr_engine__field_drop_slots(tsr_engine__field_t *f) {
    /* Only when lookups can binary-search the symbols themselves. */
    if (f->ranked && f->rank == NULL && f->n_syms >= 65536) {
        free(f->slots);
        f->slots = NULL;
        f->slots_partial = false;
        return;
    }
    if (f->slots_partial)
        field_rebuild_slots(f);
}

uint32_t tsr_engine__field_lookup(const tsr_engine__field_t *f, const char *text, uint32_t len) {
    uint32_t tab, key;
    if (f->keyed && tsr_engine__text_key(text, len, &tab, &key))
        return tsr_engine__direct_get(f, tab, key) - 1; /* 0 (absent) becomes UINT32_MAX */
    if (f->slots == NULL)
        return lookup_sorted(f, text, len);
    uint32_t hash = tsr_engine__hash(text, len);
    uint32_t i = hash & f->slot_mask;
    for (;;) {
        uint32_t s = f->slots[i];
        if (s == 0)
            return UINT32_MAX;
        const tsr_engine__sym_t *y = &f->syms[s - 1];
        if ((f->hashes == NULL || f->hashes[i] == hash) && tsr_engine__sym_len(y) == len &&
            memcmp(f->pool + tsr_engine__sym_off(y), text, len) == 0)
            return s - 1;
        i = (i + 1) & f->slot_mask;
    }
}

static uint32_t field_intern(tsr_engine__field_t *f, const char *text, uint32_t len,
                             const uint32_t *hash, const double *num);

uint32_t tsr_engine__field_intern(tsr_engine__field_t *f, const char *text, uint32_t len,
                                  uint32_t hash) {
    return field_intern(f, text, len, &hash, NULL);
}

uint32_t tsr_engine__field_intern_dual(tsr_engine__field_t *f, const char *text, uint32_t len,
                                       double num) {
    return field_intern(f, text, len, NULL, &num);
}

/* Append a new symbol (no index updated). */
static uint32_t field_append(tsr_engine__field_t *f, const char *text, uint32_t len,
                             const double *num) {
    if (f->n_syms == f->cap_syms) {
        f->cap_syms = f->cap_syms ? f->cap_syms * 2 : 64;
        f->syms = tsr_xrealloc(f->syms, (size_t)f->cap_syms * sizeof *f->syms);
    }
    if (len > 0xFFFFFF || f->pool_len + len >= (UINT64_C(1) << 40)) {
        /* Cells are capped at TSR_ENGINE_MAX_CELL by every loader; a terabyte of distinct
         * text in one field is beyond any model this engine holds. */
        fprintf(stderr, "engine: symbol table of field %s overflows\n", f->name);
        abort();
    }
    if (f->pool_len + len > f->pool_cap) {
        uint64_t cap = f->pool_cap ? f->pool_cap * 2 : 1024;
        while (cap < f->pool_len + len)
            cap *= 2;
        f->pool = tsr_xrealloc(f->pool, (size_t)cap);
        f->pool_cap = cap;
    }
    tsr_engine__sym_t *y = &f->syms[f->n_syms];
    y->pos = f->pool_len << 24 | len;
    if (len > 0)
        memcpy(f->pool + f->pool_len, text, len);
    f->pool_len += len;
    double parsed;
    if (num != NULL)
        y->num = *num;
    else
        y->num = tsr_engine__parse_num(text, len, &parsed) ? parsed : NAN;
    return f->n_syms++;
}

static uint32_t field_intern(tsr_engine__field_t *f, const char *text, uint32_t len,
                             const uint32_t *hashp, const double *num) {
    uint32_t tab, key;
    if (f->keyed && tsr_engine__text_key(text, len, &tab, &key)) {
        uint32_t d = tsr_engine__direct_get(f, tab, key);
        if (d != 0)
            return d - 1;
        uint32_t idx = field_append(f, text, len, num);
        direct_set(f, tab, key, idx + 1);
        return idx;
    }
    uint32_t hash = hashp != NULL ? *hashp : tsr_engine__hash(text, len);
    uint32_t i = hash & f->slot_mask;
    for (;;) {
        uint32_t s = f->slots[i];
        if (s == 0)
            break;
        if (f->hashes == NULL || f->hashes[i] == hash) {
            const tsr_engine__sym_t *y = &f->syms[s - 1];
            if (tsr_engine__sym_len(y) == len &&
                memcmp(f->pool + tsr_engine__sym_off(y), text, len) == 0)
                return s - 1;
        }
        i = (i + 1) & f->slot_mask;
    }
    uint32_t idx = field_append(f, text, len, num);
    f->slots[i] = idx + 1;
    if (f->hashes != NULL)
        f->hashes[i] = hash;
    f->n_slotted++;
    if ((uint64_t)f->n_slotted * 2 > f->slot_mask)
        field_grow_slots(f);
    return idx;
}

/* Make the direct tables authoritative for canonical texts: index the symbols interned so
 * far (they stay in slots too, harmlessly). */
static void field_make_keyed(tsr_engine__field_t *f) {
    f->keyed = true;
    for (uint32_t s = 0; s < f->n_syms; s++) {
        uint32_t tab, key;
        const char *t = f->pool + tsr_engine__sym_off(&f->syms[s]);
        if (tsr_engine__text_key(t, tsr_engine__sym_len(&f->syms[s]), &tab, &key) &&
            tsr_engine__direct_get(f, tab, key) == 0)
            direct_set(f, tab, key, s + 1);
    }
}

uint32_t tsr_engine__field_intern_fast(tsr_engine__field_t *f, const char *text, uint32_t len) {
    if (!f->keyed)
        field_make_keyed(f);
    return field_intern(f, text, len, NULL, NULL);
}

void tsr_engine__field_seal(tsr_engine__field_t *f) {
    direct_free(f);
    if (f->keyed) {
        f->keyed = false;
        f->slots_partial = f->n_slotted < f->n_syms;
    }
    free(f->hashes);
    f->hashes = NULL;
    if (f->n_syms > 0 && f->cap_syms > f->n_syms) {
        f->syms = tsr_xrealloc(f->syms, (size_t)f->n_syms * sizeof *f->syms);
        f->cap_syms = f->n_syms;
    }
    if (f->pool_len > 0 && f->pool_cap > f->pool_len) {
        f->pool = tsr_xrealloc(f->pool, f->pool_len);
        f->pool_cap = f->pool_len;
    }
}

int64_t tsr_engine__serial_day(int64_t y, int64_t m, int64_t d) {
    /* days_from_civil (H. Hinnant), shifted from 1970-01-01 to Qlik's 1899-12-30 epoch. */
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468 + 25569;
}

static const double pow10_tab[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

bool tsr_engine__parse_num(const char *p, size_t n, double *out) {
    if (n == 0 || n > 40)
        return false;
    if (n == 10 && p[4] == '-' && p[7] == '-') {
        int v[8];
        static const int pos[8] = {0, 1, 2, 3, 5, 6, 8, 9};
        for (int k = 0; k < 8; k++) {
            char c = p[pos[k]];
            if (c < '0' || c > '9')
                return false;
            v[k] = c - '0';
        }
        int64_t y = v[0] * 1000 + v[1] * 100 + v[2] * 10 + v[3];
        int64_t mo = v[4] * 10 + v[5], d = v[6] * 10 + v[7];
        static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1])
            return false;
        bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        if (mo == 2 && d == 29 && !leap)
            return false;
        *out = (double)tsr_engine__serial_day(y, mo, d);
        return true;
    }
    size_t i = 0;
    bool neg = false;
    if (p[0] == '-' || p[0] == '+') {
        neg = p[0] == '-';
        i = 1;
    }
    uint64_t mant = 0;
    int digits = 0, frac = 0;
    bool dot = false, any = false;
    for (; i < n; i++) {
        char c = p[i];
        if (c >= '0' && c <= '9') {
            any = true;
            if (digits >= 18)
                return false; /* beyond exact integer mantissas: keep as text */
            if (mant != 0 || c != '0')
                digits++;
            mant = mant * 10 + (uint64_t)(c - '0');
            if (dot)
                frac++;
        } else if (c == '.' && !dot) {
            dot = true;
        } else {
            return false;
        }
    }
    if (!any || frac > 22)
        return false;
    /* mant < 2^63 is exact only below 2^53; above it the division still rounds once. */
    double v = (double)mant / pow10_tab[frac];
    *out = neg ? -v : v;
    return true;
}

static _Thread_local const tsr_engine__field_t *sort_field;

static int rank_cmp(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    const tsr_engine__sym_t *sx = &sort_field->syms[x], *sy = &sort_field->syms[y];
    bool nx = !isnan(sx->num), ny = !isnan(sy->num);
    if (nx != ny)
        return nx ? -1 : 1;
    if (nx && sx->num != sy->num)
        return sx->num < sy->num ? -1 : 1;
    size_t l = tsr_engine__sym_len(sx) < tsr_engine__sym_len(sy) ? tsr_engine__sym_len(sx)
                                                                 : tsr_engine__sym_len(sy);
    int c = memcmp(sort_field->pool + tsr_engine__sym_off(sx),
                   sort_field->pool + tsr_engine__sym_off(sy), l);
    if (c != 0)
        return c;
    if (tsr_engine__sym_len(sx) != tsr_engine__sym_len(sy))
        return tsr_engine__sym_len(sx) < tsr_engine__sym_len(sy) ? -1 : 1;
    return x < y ? -1 : (x > y);
}

void tsr_engine__field_build_rank(tsr_engine__field_t *f) {
    if (f->ranked)
        return; /* set by the app-file reader (validated permutation) */
    /* Load order is often the sort order (IDs, dates): then the rank is the identity. */
    sort_field = f;
    uint32_t s1 = 1;
    while (s1 < f->n_syms) {
        uint32_t a = s1 - 1;
        if (rank_cmp(&a, &s1) > 0)
            break;
        s1++;
    }
    sort_field = NULL;
    if (s1 >= f->n_syms) {
        f->rank = NULL;
        f->ranked = true;
        return;
    }
    uint32_t *order = tsr_xmalloc(((size_t)f->n_syms + 1) * sizeof *order);
    for (uint32_t s = 0; s < f->n_syms; s++)
        order[s] = s;
    /* qsort has no context argument in C11: the field travels in a thread-local. */
    sort_field = f;
    qsort(order, f->n_syms, sizeof *order, rank_cmp);
    sort_field = NULL;
    bool identity = true;
    for (uint32_t r = 0; r < f->n_syms && identity; r++)
        identity = order[r] == r;
    f->rank = NULL;
    if (!identity) {
        f->rank = tsr_xmalloc(((size_t)f->n_syms + 1) * sizeof *f->rank);
        for (uint32_t r = 0; r < f->n_syms; r++)
            f->rank[order[r]] = r;
    }
    free(order);
    f->ranked = true;
}
