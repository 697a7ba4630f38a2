/*
 * pkg/engine internals shared by the module's own files: symbol tables (field.c),
 * bit-packed columns (column.c), the model (model.c) and loaders (csv.c).
 * Invariant: a column cell holds symbol index + 1, 0 being null, packed at `bits` bits per
 * row; words carry one spare word at the end so an unaligned 8-byte read never overruns.
 */
#ifndef TSR_ENGINE_INT_H
#define TSR_ENGINE_INT_H

#include <stdatomic.h>
#include <string.h>

#include "engine.h"

/* One distinct value (16 bytes: a model holds millions). Text lives in the field's pool at
 * [off, off+len): pos = off << 24 | len (cells are capped below 16 MB, pools at 1 TB). */
typedef struct {
    double num;   /* NaN when the value has no number */
    uint64_t pos; /* see tsr_engine__sym_off / _len */
} tsr_engine__sym_t;

static inline uint64_t tsr_engine__sym_off(const tsr_engine__sym_t *y) {
    return y->pos >> 24;
}
static inline uint32_t tsr_engine__sym_len(const tsr_engine__sym_t *y) {
    return (uint32_t)(y->pos & 0xFFFFFF);
}

typedef struct {
    char *name; /* owned, NUL-terminated */
    tsr_engine__sym_t *syms;
    uint32_t n_syms, cap_syms;
    char *pool; /* text of all symbols, owned */
    uint64_t pool_len, pool_cap;
    uint32_t *slots; /* open addressing: symbol index + 1, 0 empty */
    uint32_t slot_mask;
    uint32_t *rank;   /* sort rank per symbol, built at finalize; owned; NULL when the load
                         order is the sort order (tsr_engine__rank) */
    uint32_t *hashes; /* per slot (the hash of its symbol), load time only (freed at seal) */
    bool ranked;      /* rank is built (or identity) */
    /* Load-time direct tables for canonical decimal text (see keyed below): key -> symbol
     * index + 1. Mapped memory; freed at finalize. */
    uint32_t *direct[4];    /* by fraction digits (0..3), indexed by the mantissa */
    uint32_t direct_cap[4]; /* entries */
    uint32_t *direct_date;  /* YYYY-MM-DD texts by date key -> symbol index + 1 (load time) */
    uint32_t direct_date_cap;
    /* keyed: the direct tables are authoritative for canonical texts (numbers and dates a
     * CSV load interned): such symbols are in them and need not be in slots, which then
     * hold the other n_slotted symbols only. Seal drops the direct tables; drop_slots
     * (after the rank) rebuilds complete slots unless it drops them. */
    bool keyed;
    bool slots_partial;
    uint32_t n_slotted;
} tsr_engine__field_t;

/* A bit-packed vector of small unsigned values. */
typedef struct {
    uint64_t *words; /* owned; n_words + 1 allocated (spare word) */
    size_t n_words;
    size_t n;      /* values */
    unsigned bits; /* 1..32 */
} tsr_engine__packed_t;

typedef struct {
    uint32_t field; /* model-wide field index */
    tsr_engine__packed_t data;
} tsr_engine__column_t;

typedef struct {
    char *name; /* owned */
    tsr_engine__column_t *cols;
    uint32_t n_cols;
    size_t n_rows;
} tsr_engine__table_t;

/* A run-length inverted index of one column (index.c): for every packed value v, its runs
 * of consecutive rows as a varint stream of (gap since the end of v's previous run, run
 * length). Built at finalize for key columns of large tables whose rows come in runs (a
 * fact table's per-order keys), so a selection on few values touches only their rows. */
typedef struct tsr_engine__runidx {
    const uint64_t *words; /* the column's words when built (a stale index is never used) */
    size_t n;              /* rows */
    uint32_t n_vals;       /* packed values covered: 0 .. n_vals-1 */
    uint64_t *off;         /* n_vals + 1 byte offsets into bytes */
    uint32_t *cnt;         /* rows per packed value */
    uint8_t *bytes;
    size_t n_bytes;
} tsr_engine__runidx_t;

struct tsr_engine_model {
    tsr_engine__table_t *tables;
    size_t n_tables, cap_tables;
    tsr_engine__field_t *fields;
    size_t n_fields, cap_fields;
    bool finalized;
    uint64_t version;            /* unique per finalized model (cache fingerprints) */
    atomic_long refs;            /* references - 1 (calloc: one reference) */
    tsr_engine__runidx_t ***idx; /* per table (n_idx), per column: index or NULL */
    uint32_t *idx_cols;          /* per table: columns when the index array was built */
    size_t n_idx;
    atomic_int idx_state; /* 0: built on first use (finalize), 1: built, 2: none */
    size_t idx_min_rows;  /* for the build on first use */
    /* Script variables (SET/LET) as the script left them, in first-set order; owned. */
    char **var_names, **var_values;
    size_t n_vars;
};

/* Append a script variable to m (copies; used by the script and the app file reader). */
void tsr_engine__model_add_var(tsr_engine_model_t *m, const char *name, size_t name_len,
                               const char *value, size_t value_len);

/* ---- fields (field.c) ---- */
uint32_t tsr_engine__hash(const char *p, size_t n);
void tsr_engine__field_init(tsr_engine__field_t *f, const char *name, size_t name_len);
void tsr_engine__field_cleanup(tsr_engine__field_t *f);
/* Intern (text,len) with a precomputed hash; returns the symbol index. */
uint32_t tsr_engine__field_intern(tsr_engine__field_t *f, const char *text, uint32_t len,
                                  uint32_t hash);
/* Intern a computed dual: identity is the text; num (NAN for none) is kept on insert. */
uint32_t tsr_engine__field_intern_dual(tsr_engine__field_t *f, const char *text, uint32_t len,
                                       double num);
/* Intern through the canonical-number cache when the text qualifies. */
uint32_t tsr_engine__field_intern_fast(tsr_engine__field_t *f, const char *text, uint32_t len);
/* Drop load-time structures (the direct cache). */
void tsr_engine__field_seal(tsr_engine__field_t *f);
/* Lookup without inserting: symbol index or UINT32_MAX. */
uint32_t tsr_engine__field_lookup(const tsr_engine__field_t *f, const char *text, uint32_t len);
static inline uint32_t tsr_engine__rank(const tsr_engine__field_t *f, uint32_t s) {
    return f->rank != NULL ? f->rank[s] : s;
}
/* After build_rank: free the hash slots of a large field whose load order is its sort order
 * (lookups binary-search instead); otherwise complete them when seal left them partial. */
void tsr_engine__field_drop_slots(tsr_engine__field_t *f);
/* Build f->rank. */
void tsr_engine__field_build_rank(tsr_engine__field_t *f);
/* Parse text as a Qlik number: integer, decimal, or YYYY-MM-DD date. */
bool tsr_engine__parse_num(const char *p, size_t n, double *out);
/* Days since 1899-12-30 for a proleptic Gregorian date. */
int64_t tsr_engine__serial_day(int64_t y, int64_t m, int64_t d);

/* Canonical texts (load time): direct tables instead of hashing. Largest direct table in
 * entries per fraction-digit count (16 MiB of uint32, load time only). */
#define TSR_ENGINE__DIRECT_MAX (1u << 22)

/* Key of canonical decimal text: digits with at most one '.', 0..3 fraction digits, no
 * leading zero in the integer part unless it is exactly "0". Such text is a function of
 * (mantissa, fraction digits): the mantissa keys the table of its fraction digits.
 * UINT32_MAX when the text does not qualify or the mantissa is too large. */
static inline uint32_t tsr_engine__canonical_key(const char *p, uint32_t n, uint32_t *fd_out) {
    if (n == 0 || n > 9 || p[0] == '.' || (p[0] == '0' && n > 1 && p[1] != '.'))
        return UINT32_MAX;
    uint32_t mant = 0, fd = 0;
    bool dot = false;
    for (uint32_t i = 0; i < n; i++) {
        char c = p[i];
        if (c >= '0' && c <= '9') {
            mant = mant * 10 + (uint32_t)(c - '0');
            fd += dot;
        } else if (c == '.' && !dot && i + 1 < n) {
            dot = true;
        } else {
            return UINT32_MAX;
        }
    }
    if (fd > 3 || mant >= TSR_ENGINE__DIRECT_MAX)
        return UINT32_MAX;
    *fd_out = fd;
    return mant;
}

/* Key of a canonical "YYYY-MM-DD" text between 1900 and 2199 ((y-1900) << 9 | m << 5 | d),
 * else UINT32_MAX. */
static inline uint32_t tsr_engine__date_key(const char *p, uint32_t n) {
    if (n != 10 || p[4] != '-' || p[7] != '-')
        return UINT32_MAX;
    uint32_t d[8];
    static const int pos[8] = {0, 1, 2, 3, 5, 6, 8, 9};
    for (int k = 0; k < 8; k++) {
        d[k] = (uint32_t)(unsigned char)p[pos[k]] - '0';
        if (d[k] > 9)
            return UINT32_MAX;
    }
    uint32_t y = d[0] * 1000 + d[1] * 100 + d[2] * 10 + d[3], mo = d[4] * 10 + d[5];
    uint32_t dd = d[6] * 10 + d[7];
    static const uint32_t mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1900 || y > 2199 || mo < 1 || mo > 12 || dd < 1 || dd > mdays[mo - 1])
        return UINT32_MAX;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && dd == 29 && !leap)
        return UINT32_MAX;
    return (y - 1900) << 9 | mo << 5 | dd;
}

/* Direct table of a canonical text: 0..3 by fraction digits, 4 dates; false if none. */
static inline bool tsr_engine__text_key(const char *p, uint32_t n, uint32_t *tab, uint32_t *key) {
    if (n == 10 && p[4] == '-') {
        uint32_t dk = tsr_engine__date_key(p, n);
        if (dk == UINT32_MAX)
            return false;
        *tab = 4;
        *key = dk;
        return true;
    }
    uint32_t fd = 0, k = tsr_engine__canonical_key(p, n, &fd);
    if (k == UINT32_MAX)
        return false;
    *tab = fd;
    *key = k;
    return true;
}

/* Symbol index + 1 of a keyed text in the direct tables, 0 when absent. */
static inline uint32_t tsr_engine__direct_get(const tsr_engine__field_t *f, uint32_t tab,
                                              uint32_t key) {
    if (tab == 4)
        return key < f->direct_date_cap ? f->direct_date[key] : 0;
    return key < f->direct_cap[tab] ? f->direct[tab][key] : 0;
}

/* ---- packed vectors (column.c) ---- */
void tsr_engine__packed_init(tsr_engine__packed_t *p, unsigned bits);
void tsr_engine__packed_cleanup(tsr_engine__packed_t *p);
/* Append v; widens (repacks) when v does not fit in the current width. */
void tsr_engine__packed_push(tsr_engine__packed_t *p, uint32_t v);
/* Set the width to at least `bits` (repacking). */
void tsr_engine__packed_widen(tsr_engine__packed_t *p, unsigned bits);
unsigned tsr_engine__bits_for(uint64_t max_value);
/* Release unused capacity (keeps the spare word). */
void tsr_engine__packed_shrink(tsr_engine__packed_t *p);

static inline uint32_t tsr_engine__packed_get(const tsr_engine__packed_t *p, size_t i) {
    size_t bit = i * p->bits;
    uint64_t w;
    memcpy(&w, (const char *)p->words + (bit >> 3), sizeof w);
    return (uint32_t)((w >> (bit & 7)) & ((UINT64_C(1) << p->bits) - 1));
}

/* packed_get with the column's fields hoisted into locals (hot loops). */
static inline uint32_t tsr_engine__unpack(const uint64_t *words, unsigned bits, uint64_t mask,
                                          size_t i) {
    size_t bit = i * bits;
    uint64_t w;
    memcpy(&w, (const char *)words + (bit >> 3), sizeof w);
    return (uint32_t)((w >> (bit & 7)) & mask);
}

/* ---- run-length inverted indexes (index.c) ---- */
/* Build the indexes of every eligible column (tables of at least min_rows rows; key columns
 * whose average run is at least 2 rows) now. Replaces existing indexes. */
void tsr_engine__index_build(tsr_engine_model_t *m, size_t min_rows);
/* Free the indexes; none are built again (tests: answers without indexes). */
void tsr_engine__index_drop(tsr_engine_model_t *m);
/* Free the indexes; the first index_get builds them (finalize: a reload does not wait for
 * indexes, the first selection that can use one pays for the build, once, thread safe). */
void tsr_engine__index_lazy(tsr_engine_model_t *m, size_t min_rows);
/* Default min_rows for finalize (tests may lower it; 0 keeps the default). */
extern size_t tsr_engine__index_min_rows;
/* Index of column c of table t, NULL when absent or stale. */
const tsr_engine__runidx_t *tsr_engine__index_get(const tsr_engine_model_t *m, size_t t,
                                                  uint32_t c);
/* Rows holding any symbol of syms (bitset over symbols, n_syms of them). */
uint64_t tsr_engine__index_count(const tsr_engine__runidx_t *ix, const uint64_t *syms,
                                 size_t n_syms);
/* OR the rows holding any symbol of syms into the row bitset out. */
void tsr_engine__index_fill(const tsr_engine__runidx_t *ix, const uint64_t *syms, size_t n_syms,
                            uint64_t *out);
/* Decode one varint of an index stream. */
static inline const uint8_t *tsr_engine__varint_get(const uint8_t *p, uint64_t *out) {
    uint64_t x = 0;
    unsigned shift = 0;
    for (;;) {
        uint8_t b = *p++;
        x |= (uint64_t)(b & 0x7F) << shift;
        if (b < 0x80)
            break;
        shift += 7;
    }
    *out = x;
    return p;
}
/* Bytes held by the model's indexes. */
size_t tsr_engine__index_bytes(const tsr_engine_model_t *m);

/* ---- expressions (expr.c) ---- */
typedef enum {
    TSR_ENGINE__E_NUM,
    TSR_ENGINE__E_STR,
    TSR_ENGINE__E_FIELD,
    TSR_ENGINE__E_CALL,
    TSR_ENGINE__E_NEG,
    TSR_ENGINE__E_NOT,
    TSR_ENGINE__E_AND,
    TSR_ENGINE__E_OR,
    TSR_ENGINE__E_CAT,
    TSR_ENGINE__E_ADD,
    TSR_ENGINE__E_SUB,
    TSR_ENGINE__E_MUL,
    TSR_ENGINE__E_DIV,
    TSR_ENGINE__E_EQ, /* comparisons last: eval tests kind >= E_EQ */
    TSR_ENGINE__E_NE,
    TSR_ENGINE__E_LT,
    TSR_ENGINE__E_LE,
    TSR_ENGINE__E_GT,
    TSR_ENGINE__E_GE
} tsr_engine__expr_kind_t;

typedef enum {
    TSR_ENGINE__F_IF,
    TSR_ENGINE__F_YEAR,
    TSR_ENGINE__F_MONTH,
    TSR_ENGINE__F_DAY,
    TSR_ENGINE__F_LEN,
    TSR_ENGINE__F_UPPER,
    TSR_ENGINE__F_LOWER,
    TSR_ENGINE__F_ALT,
    TSR_ENGINE__F_NULL,
    TSR_ENGINE__F_MAKEDATE,
    TSR_ENGINE__F_ISNULL,
    TSR_ENGINE__F_FLOOR,
    TSR_ENGINE__F_APPLYMAP,
    TSR_ENGINE__F_DATE,
    TSR_ENGINE__F_DATEP, /* Date#(text, format) */
    TSR_ENGINE__F_NUM,
    TSR_ENGINE__F_TEXT,
    TSR_ENGINE__F_LEFT,
    TSR_ENGINE__F_RIGHT,
    TSR_ENGINE__F_MID,
    TSR_ENGINE__F_TRIM,
    TSR_ENGINE__F_ROUND,
    TSR_ENGINE__F_CEIL,
    TSR_ENGINE__F_FABS,
    TSR_ENGINE__F_MOD,
    TSR_ENGINE__F_SUM, /* aggregations from here on */
    TSR_ENGINE__F_COUNT,
    TSR_ENGINE__F_AVG,
    TSR_ENGINE__F_MIN,
    TSR_ENGINE__F_MAX,
    TSR_ENGINE__F_ONLY
} tsr_engine__func_t;

/* A set expression {1} / {$} / {$<F={'a','b'}, G=, H={">=10"}>}: start from all data or
 * the current selection, then per modifier replace (values, searches) or clear a field. */
typedef struct tsr_engine__set_mod {
    char *field;     /* owned */
    char **values;   /* owned texts; a value in double quotes is a search ('"' kept first) */
    size_t n_values; /* 0: clear the field */
} tsr_engine__set_mod_t;

typedef struct tsr_engine__set {
    bool all; /* {1} */
    tsr_engine__set_mod_t *mods;
    size_t n_mods;
} tsr_engine__set_t;

typedef struct tsr_engine__expr {
    tsr_engine__expr_kind_t kind;
    tsr_engine__func_t func; /* E_CALL */
    double num;              /* E_NUM */
    char *name;              /* E_STR text, E_FIELD / E_CALL name; owned */
    size_t name_len;
    uint32_t slot; /* E_FIELD: resolved by the user of the tree (column index); aggregation
                      calls: index of the aggregation in its measure */
    bool distinct; /* Count(DISTINCT x) */
    bool total;    /* Sum(TOTAL x): over all rows of the chart, not the cell */
    struct tsr_engine__set *set; /* aggregation's set expression, owned; NULL: {$} */
    struct tsr_engine__expr **args;
    size_t n_args;
} tsr_engine__expr_t;

typedef enum {
    TSR_ENGINE__V_NULL,
    TSR_ENGINE__V_NUM,
    TSR_ENGINE__V_TEXT,
    TSR_ENGINE__V_DUAL
} tsr_engine__val_kind_t;

/* A runtime value. text is borrowed (model, expression or the row scratch). */
typedef struct tsr_engine__val {
    tsr_engine__val_kind_t kind;
    double num;
    const char *text;
    size_t len;
} tsr_engine__val_t;

typedef struct {
    tsr_engine__val_t (*field_cb)(void *ctx, const struct tsr_engine__expr *e);
    void *field_ctx;
    /* ApplyMap lookup (load script); NULL: ApplyMap returns its default. */
    tsr_engine__val_t (*map_cb)(void *ctx, const char *name, size_t name_len,
                                struct tsr_engine__val key, bool *found);
    void *map_ctx;
    /* Value of an aggregation call (measures); NULL: aggregations evaluate to null. */
    tsr_engine__val_t (*agg_cb)(void *ctx, const struct tsr_engine__expr *e);
    void *agg_ctx;
    char scratch[4096]; /* text made while evaluating one row; reset per row */
    size_t scratch_len;
} tsr_engine__eval_t;

/* Parse an expression. line/col are the script position of text[0] (for messages). With
 * end != NULL parsing stops at the first token that cannot continue the expression and
 * *end points there; otherwise trailing text is an error. *out is owned (expr_free). */
tsr_err_t tsr_engine__expr_parse(const char *text, size_t len, size_t line, size_t col,
                                 const char **end, tsr_engine__expr_t **out, tsr_error_t *err);
void tsr_engine__expr_free(tsr_engine__expr_t *e);
tsr_err_t tsr_engine__expr_bind_func(tsr_engine__expr_t *e);
tsr_engine__val_t tsr_engine__expr_eval(tsr_engine__eval_t *ev, const tsr_engine__expr_t *e);

/* ---- loaders (csv.c) ---- */
/* A projection item: load file column `src` as field `dst`. */
typedef struct {
    const char *src, *dst;
} tsr_engine__proj_t;
/* load_csv_mem with an optional projection: only listed columns are loaded (renamed); a
 * listed column missing from the header is an error. proj NULL loads every column. */
tsr_err_t tsr_engine__load_csv(tsr_engine_model_t *m, const char *table, const char *buf,
                               size_t len, const tsr_engine_csv_opts_t *opts,
                               const tsr_engine__proj_t *proj, size_t n_proj, tsr_error_t *err);

/* Rows below this many bytes are parsed by one thread (tests: SIZE_MAX for one thread, 0 to
 * split any input in two chunks). */
extern size_t tsr_engine__csv_parallel_min;

tsr_err_t tsr_engine__load_csv_file(tsr_engine_model_t *m, const char *table, const char *path,
                                    const tsr_engine_csv_opts_t *opts,
                                    const tsr_engine__proj_t *proj, size_t n_proj,
                                    tsr_error_t *err);

/* Field names of a delimited file's header (path != NULL: read from the file, else from
 * buf/len). *names is an owned array of owned strings. */
tsr_err_t tsr_engine__csv_header(const char *path, const char *buf, size_t len,
                                 const tsr_engine_csv_opts_t *opts, char ***names, size_t *n,
                                 tsr_error_t *err);

/* ---- states (state.c) ---- */
/* Possible rows of table t as a bitset (NULL: every row). Borrowed from st. */
const uint64_t *tsr_engine__state_rows(const tsr_engine_state_t *st, size_t t);
/* A state for an aggregation's set expression, derived from base. *out returned-owned. */
tsr_err_t tsr_engine__state_for_set(const tsr_engine_state_t *base,
                                    const struct tsr_engine__set *set, tsr_engine_state_t **out,
                                    tsr_error_t *err);
/* Fingerprint of the state's selection (includes the model version). */
void tsr_engine__state_fingerprint(const tsr_engine_state_t *st, uint64_t fp[2]);
const tsr_engine_model_t *tsr_engine__state_model(const tsr_engine_state_t *st);

/* ---- results (hypercube.c, listobject.c) ---- */
tsr_engine_hypercube_t *tsr_engine__hypercube_clone(const tsr_engine_hypercube_t *c, size_t *bytes);
tsr_engine_listobject_t *tsr_engine__listobject_clone(const tsr_engine_listobject_t *l,
                                                      size_t *bytes);

/* ---- model (model.c) ---- */
/* Field index by name, creating the field when absent. */
uint32_t tsr_engine__model_field(tsr_engine_model_t *m, const char *name, size_t len);
/* Append a table (name copied); returns its index. */
size_t tsr_engine__model_add_table(tsr_engine_model_t *m, const char *name);
/* Column index of field f in table t, adding an all-null column when absent. */
uint32_t tsr_engine__table_column(tsr_engine_model_t *m, size_t t, uint32_t f);
/* Remove table t (indexes above shift down). */
void tsr_engine__model_drop_table(tsr_engine_model_t *m, size_t t);
/* Remove column c of table t. */
void tsr_engine__table_drop_column(tsr_engine_model_t *m, size_t t, uint32_t c);
/* Return freed heap memory to the OS (after a reload or an app-file open). */
void tsr_engine__trim_heap(void);
/* Remove fields that no table uses any more (field indexes are renumbered). */
void tsr_engine__model_gc_fields(tsr_engine_model_t *m);

#endif
