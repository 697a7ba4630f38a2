/*
 * pkg/engine: the associative engine core (a service-layer library with no network code).
 * Data model: one symbol table per field (dual values, one entry per distinct value, load
 * order = symbol index, sort ranks), tables of bit-packed symbol indexes, tables associated
 * by equal field names (synthetic keys and loops refused). Around it: the load script, the
 * selection state (S/O/A/X/XS by semi-join reduction over the table graph), hypercubes and
 * list objects, a result cache, versioned zstd app files, and reference-counted models that
 * a reload swaps atomically. Invariant: a model is mutable only while it is being built;
 * after tsr_engine_model_finalize it is read-only and may be shared between threads.
 */
#ifndef TSR_ENGINE_H
#define TSR_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Caps on input-derived sizes. */
#define TSR_ENGINE_MAX_FIELDS_PER_TABLE 1024
#define TSR_ENGINE_MAX_NAME 256        /* bytes in a table or field name */
#define TSR_ENGINE_MAX_CELL (1u << 20) /* bytes in one CSV cell */

typedef struct tsr_engine_model tsr_engine_model_t;

/* A dual value: text always, a number when the text reads as one (integer, decimal, or a
 * YYYY-MM-DD date, whose number is the Qlik serial day: days since 1899-12-30). */
typedef struct {
    double num;       /* valid when is_num */
    bool is_num;      /* false: text only */
    const char *text; /* borrowed from the model; not NUL-terminated; valid until destroy */
    size_t text_len;  /* bytes */
} tsr_engine_dual_t;

/* Options for delimited text ("txt, utf8, embedded labels, delimiter is ','"). */
typedef struct {
    char delimiter; /* 0 means ',' */
    char quote;     /* 0 means '"'; a quoted cell may hold delimiters, newlines and "" */
    bool no_labels; /* true: no header line, fields are named @1, @2, ... */
} tsr_engine_csv_opts_t;

/* Create an empty model. Returned-owned: free with tsr_engine_model_destroy. */
tsr_engine_model_t *tsr_engine_model_create(void);
/* Free a model and everything it owns. NULL is a no-op. */
void tsr_engine_model_destroy(tsr_engine_model_t *m);

/* Load a delimited UTF-8 text file as table `table` (new; TSR_ECONFLICT if the name
 * exists). Fields whose names already exist in the model share their symbol tables, which is
 * what associates tables. Errors: TSR_EIO (open/read), TSR_EINVAL (malformed file, with line
 * and column in err), TSR_ETOOBIG (caps). On error the model is unchanged apart from symbols
 * already interned. Not thread safe (the model is being built). */
tsr_err_t tsr_engine_model_load_csv(tsr_engine_model_t *m, const char *table, const char *path,
                                    const tsr_engine_csv_opts_t *opts, tsr_error_t *err);
/* The same from memory; buf is borrowed for the duration of the call. */
tsr_err_t tsr_engine_model_load_csv_mem(tsr_engine_model_t *m, const char *table, const char *buf,
                                        size_t len, const tsr_engine_csv_opts_t *opts,
                                        tsr_error_t *err);

/* Check the table graph once all tables are loaded: tables sharing more than one field
 * (a synthetic key) and loops in the table graph (a circular reference) are refused with
 * TSR_EUNSUPPORTED and a message naming the tables and fields, instead of computing
 * nonsense. After success the model is read-only. */
tsr_err_t tsr_engine_model_finalize(tsr_engine_model_t *m, tsr_error_t *err);

/* ---- load script ----------------------------------------------------------------------- */

typedef struct {
    /* Folder that lib://<any connection>/ maps to; paths may not leave it. Borrowed. */
    const char *data_dir;
    /* Live log (NULL: none): called on the reloading thread with whole lines as they happen:
     * "line L: <statement head>" as each statement starts, then that statement's log lines
     * (rows, fields, ms), and at the end the total or the error. text is valid during the
     * call. The returned *log holds the same lines minus the statement starts. */
    void (*on_log)(void *ud, const char *text, size_t len);
    void *log_ud;
} tsr_engine_reload_opts_t;

/* Run a load script (Qlik subset: LOAD [DISTINCT] fields / expr AS alias
 * FROM [lib://DataFiles/x.csv] (txt, embedded labels|no labels, delimiter is 'x'),
 * INLINE [...], RESIDENT T, WHERE, CONCATENATE [(T)], NOCONCATENATE, auto-concatenation,
 * labels `T:`, [LEFT|RIGHT|INNER|OUTER] JOIN [(T)], MAPPING LOAD + ApplyMap, SET/LET with
 * $(v) expansion, DROP TABLE[S]/FIELD[S] [FROM T], RENAME TABLE/FIELD a TO b,
 * QUALIFY/UNQUALIFY, STORE T INTO [file] (txt; a name ending .tsrt: our own table file,
 * which LOAD ... FROM reads back), comments, REM) into a new, finalized model.
 * On success *out is returned-owned (tsr_engine_model_destroy). Errors: TSR_EINVAL with
 * "line L column C: ..." in err, TSR_EIO, TSR_EUNSUPPORTED (synthetic key / circular
 * reference), TSR_ETOOBIG. *log (when log != NULL) is always set, returned-owned (free()):
 * one line per statement (table, rows, fields, ms) and a total, or the error. */
tsr_err_t tsr_engine_reload(const char *script, size_t len, const tsr_engine_reload_opts_t *opts,
                            tsr_engine_model_t **out, char **log, tsr_error_t *err);

/* The script variables (SET/LET) a reload left in model m, in first-set order (a variable
 * cleared with LET v = Null() or set to empty text is kept with an empty value). Names and
 * values are borrowed from the model, NUL-terminated. tsr_engine_model_var: TSR_ENOTFOUND when
 * i is out of range. Thread safe on a finalized model. Saved in app files. */
size_t tsr_engine_model_var_count(const tsr_engine_model_t *m);
tsr_err_t tsr_engine_model_var(const tsr_engine_model_t *m, size_t i, const char **name,
                               const char **value);

/* ---- selections and states -------------------------------------------------------------- */

/* A selection state over one model: per field a set of selected symbols, locks, and a
 * back/forward history. Not thread safe; one per user session. */
typedef struct tsr_engine_selection tsr_engine_selection_t;
/* Result of propagating a selection: per table the possible rows, per value its state. */
typedef struct tsr_engine_state tsr_engine_state_t;

typedef enum {
    TSR_ENGINE_S, /* selected */
    TSR_ENGINE_O, /* possible (optional) */
    TSR_ENGINE_A, /* alternative: possible if its own field's selection were cleared */
    TSR_ENGINE_X, /* excluded by selections in other fields */
    TSR_ENGINE_XS /* selected, but excluded by selections in other fields */
} tsr_engine_vstate_t;

/* Create an empty selection for m (borrowed: m must outlive it). Returned-owned. */
tsr_engine_selection_t *tsr_engine_selection_create(const tsr_engine_model_t *m);
void tsr_engine_selection_destroy(tsr_engine_selection_t *s); /* NULL: no-op */
/* Select symbols of field f. toggle=false makes exactly these the selection (an empty list
 * clears it); toggle=true flips each. Errors: TSR_ENOTFOUND (field), TSR_EINVAL (symbol),
 * TSR_EPRECONDITION (locked field). Each successful change is a history step. */
tsr_err_t tsr_engine_selection_select(tsr_engine_selection_t *s, size_t f, const size_t *syms,
                                      size_t n, bool toggle, tsr_error_t *err);
/* The same by value text; texts that match no value are ignored. */
tsr_err_t tsr_engine_selection_select_text(tsr_engine_selection_t *s, size_t f,
                                           const char *const *texts, size_t n, bool toggle,
                                           tsr_error_t *err);
tsr_err_t tsr_engine_selection_clear_field(tsr_engine_selection_t *s, size_t f, tsr_error_t *err);
/* Clear every unlocked field. */
void tsr_engine_selection_clear_all(tsr_engine_selection_t *s);
/* Lock or unlock field f: a locked field's selection cannot change (clear_all skips it). */
tsr_err_t tsr_engine_selection_lock(tsr_engine_selection_t *s, size_t f, bool locked,
                                    tsr_error_t *err);
/* Step back/forward in the history (locked fields keep their selection); TSR_ENOTFOUND at
 * either end. */
tsr_err_t tsr_engine_selection_back(tsr_engine_selection_t *s);
tsr_err_t tsr_engine_selection_forward(tsr_engine_selection_t *s);
bool tsr_engine_selection_is_selected(const tsr_engine_selection_t *s, size_t f, size_t sym);
/* Selected symbols of field f (for a current-selections object): writes up to cap of them
 * into syms (may be NULL when cap is 0) in symbol order and returns how many are selected. */
size_t tsr_engine_selection_selected(const tsr_engine_selection_t *s, size_t f, size_t *syms,
                                     size_t cap);
bool tsr_engine_selection_is_locked(const tsr_engine_selection_t *s, size_t f);

/* Propagate s over finalized model m. *out is returned-owned (tsr_engine_state_destroy);
 * it copies the selection, so s may change afterwards. Errors: TSR_EPRECONDITION (model not
 * finalized), TSR_EINVAL (s from another model). */
tsr_err_t tsr_engine_state_compute(const tsr_engine_model_t *m, const tsr_engine_selection_t *s,
                                   tsr_engine_state_t **out, tsr_error_t *err);
void tsr_engine_state_destroy(tsr_engine_state_t *st); /* NULL: no-op */
/* State of symbol sym of field f. Computes and caches field sets on first use, so a state
 * must not be shared between threads. */
tsr_engine_vstate_t tsr_engine_state_value(tsr_engine_state_t *st, size_t f, size_t sym);
/* Number of possible rows of table t. */
size_t tsr_engine_state_table_rows(const tsr_engine_state_t *st, size_t t);
/* "S", "O", "A", "X", "XS". Static. */
const char *tsr_engine_vstate_name(tsr_engine_vstate_t v);

/* ---- hypercubes ------------------------------------------------------------------------- */

typedef enum {
    TSR_ENGINE_SORT_DEFAULT, /* dimensions: numbers ascending then text; measures: number */
    TSR_ENGINE_SORT_LOAD,    /* dimensions: load order */
    TSR_ENGINE_SORT_TEXT     /* dimensions: by text (UTF-8 bytes) */
} tsr_engine_sort_by_t;

/* One key of the inter-column sort order. column: dimensions first, then measures. */
typedef struct {
    size_t column;
    tsr_engine_sort_by_t by;
    bool descending;
} tsr_engine_sort_t;

/* A hypercube definition. All pointers are borrowed for the duration of the call. */
typedef struct {
    const char *const *dims;     /* field names */
    size_t n_dims;               /* 0..16; 0: one row of measures (a KPI) */
    const char *const *measures; /* expressions: Sum, Count, Count(DISTINCT f), Avg, Min, Max
                                    of row expressions, combined by arithmetic/If/... */
    size_t n_measures;
    const tsr_engine_sort_t *sort; /* n_sort == 0: dimensions in order, default ascending */
    size_t n_sort;
    size_t top, height; /* page: rows [top, top+height); height 0 = all (qTop/qHeight) */
} tsr_engine_hypercube_def_t;

typedef struct tsr_engine_hypercube tsr_engine_hypercube_t;

/* Compute a hypercube over the possible rows of st (rows with no data are suppressed).
 * *out is returned-owned (tsr_engine_hypercube_destroy); it borrows m. Uses up to two
 * threads. Errors: TSR_EINVAL (bad expression, with position), TSR_ENOTFOUND (field),
 * TSR_EUNSUPPORTED (measures over several tables, a dimension not reachable by a functional
 * key path), TSR_ETOOBIG (more than 4M dense cells). */
tsr_err_t tsr_engine_hypercube_compute(const tsr_engine_model_t *m, tsr_engine_state_t *st,
                                       const tsr_engine_hypercube_def_t *def,
                                       tsr_engine_hypercube_t **out, tsr_error_t *err);
void tsr_engine_hypercube_destroy(tsr_engine_hypercube_t *c);            /* NULL: no-op */
size_t tsr_engine_hypercube_rows(const tsr_engine_hypercube_t *c);       /* in the page */
size_t tsr_engine_hypercube_total_rows(const tsr_engine_hypercube_t *c); /* before paging */
/* Cell (row in page, column). Dimensions: the value's dual (text borrowed from the model).
 * Measures: is_num false for null, text empty. */
tsr_err_t tsr_engine_hypercube_cell(const tsr_engine_hypercube_t *c, size_t row, size_t col,
                                    tsr_engine_dual_t *out);

/* ---- list objects ------------------------------------------------------------------------ */

/* A list object definition (one field's values with their states). Borrowed for the call. */
typedef struct {
    const char *field;
    bool sort_by_state;      /* selected (S, XS) first, then O/A, then X (qSortByState) */
    tsr_engine_sort_by_t by; /* then by value: DEFAULT (numbers, then text), LOAD or TEXT */
    bool descending;
    bool frequency;     /* count possible rows per value (one scan of the largest table) */
    size_t top, height; /* page: rows [top, top+height); height 0 = all */
} tsr_engine_listobject_def_t;

typedef struct {
    size_t sym; /* symbol index in the field (load order) */
    tsr_engine_vstate_t state;
    uint64_t frequency; /* possible rows holding the value; 0 unless def.frequency */
} tsr_engine_listobject_row_t;

typedef struct tsr_engine_listobject tsr_engine_listobject_t;

/* Compute a list object over state st. *out is returned-owned
 * (tsr_engine_listobject_destroy) and borrows m. Errors: TSR_ENOTFOUND (field). Not thread
 * safe on one st (field sets are cached in it). */
tsr_err_t tsr_engine_listobject_compute(const tsr_engine_model_t *m, tsr_engine_state_t *st,
                                        const tsr_engine_listobject_def_t *def,
                                        tsr_engine_listobject_t **out, tsr_error_t *err);
void tsr_engine_listobject_destroy(tsr_engine_listobject_t *l);            /* NULL: no-op */
size_t tsr_engine_listobject_rows(const tsr_engine_listobject_t *l);       /* in the page */
size_t tsr_engine_listobject_total_rows(const tsr_engine_listobject_t *l); /* all values */
/* Row i of the page; value (may be NULL) gets the dual, text borrowed from the model. */
tsr_err_t tsr_engine_listobject_row(const tsr_engine_listobject_t *l, size_t i,
                                    tsr_engine_listobject_row_t *row, tsr_engine_dual_t *value);
/* Number of values per state over the whole field, indexed by tsr_engine_vstate_t. */
void tsr_engine_listobject_state_counts(const tsr_engine_listobject_t *l, size_t counts[5]);

/* Symbols of field f matching a search string, as Qlik's list box search: "*" and "?"
 * wildcards match the whole text (case-insensitive); a numeric condition ">=10", "<5",
 * "=3", ">1<9" matches values by number; any other text matches values with a word that
 * starts with it (case-insensitive). *syms is returned-owned (free()), *n its length. */
tsr_err_t tsr_engine_field_search(const tsr_engine_model_t *m, size_t f, const char *pattern,
                                  size_t **syms, size_t *n, tsr_error_t *err);
/* Select the values of f matching pattern (see tsr_engine_field_search); toggle as in
 * tsr_engine_selection_select. No match leaves the selection unchanged (TSR_ENOTFOUND). */
tsr_err_t tsr_engine_selection_select_search(tsr_engine_selection_t *s, size_t f,
                                             const char *pattern, bool toggle, tsr_error_t *err);

/* Grand total of measure j over all possible rows (NaN for null). TSR_ENOTFOUND. */
tsr_err_t tsr_engine_hypercube_total(const tsr_engine_hypercube_t *c, size_t measure, double *out);

/* ---- result cache ---------------------------------------------------------------------------- */

/* A bounded cache of computed hypercubes and list objects, keyed by a fingerprint of the
 * model version, the selection state and the definition. Least recently used entries go
 * first when the entries exceed max_bytes. Thread safe; share one per engine process. */
typedef struct tsr_engine_cache tsr_engine_cache_t;
tsr_engine_cache_t *tsr_engine_cache_create(size_t max_bytes); /* returned-owned */
void tsr_engine_cache_destroy(tsr_engine_cache_t *c);          /* NULL: no-op */
/* Hits and misses so far; bytes held. */
void tsr_engine_cache_stats(tsr_engine_cache_t *c, uint64_t *hits, uint64_t *misses, size_t *bytes);

/* As tsr_engine_hypercube_compute / tsr_engine_listobject_compute, answered from cache when
 * the same definition was computed on the same model and selection. *out is returned-owned
 * either way (a copy). cache NULL: no caching. */
tsr_err_t tsr_engine_hypercube_compute_cached(tsr_engine_cache_t *cache,
                                              const tsr_engine_model_t *m, tsr_engine_state_t *st,
                                              const tsr_engine_hypercube_def_t *def,
                                              tsr_engine_hypercube_t **out, tsr_error_t *err);
tsr_err_t tsr_engine_listobject_compute_cached(tsr_engine_cache_t *cache,
                                               const tsr_engine_model_t *m, tsr_engine_state_t *st,
                                               const tsr_engine_listobject_def_t *def,
                                               tsr_engine_listobject_t **out, tsr_error_t *err);

/* ---- app files ---------------------------------------------------------------------------- */

/* What an app file holds besides the data model. All byte strings, not NUL-terminated in the
 * file; the reader returns them NUL-terminated. */
typedef struct {
    const char *script; /* the load script */
    size_t script_len;
    const char *reload_log;
    size_t reload_log_len;
    const char *objects; /* generic objects, bookmarks, variables: JSON owned by the caller */
    size_t objects_len;
} tsr_engine_app_meta_t;

/* Sealing hook (the tenant key, pkg/crypto): seal transforms the compressed payload, unseal
 * reverses it; each returns TSR_OK and a returned-owned (free()) buffer. Both NULL: the
 * payload is stored unsealed. */
typedef struct {
    tsr_err_t (*seal)(void *ctx, const uint8_t *in, size_t n, uint8_t **out, size_t *out_n);
    tsr_err_t (*unseal)(void *ctx, const uint8_t *in, size_t n, uint8_t **out, size_t *out_n);
    void *ctx;
    int level; /* zstd level; 0: 3 */
} tsr_engine_appfile_opts_t;

/* Write finalized model m and meta as one app file (format version 1: header, zstd payload
 * with checksum, optionally sealed). The file appears atomically (written beside, fsynced,
 * renamed). Errors: TSR_EPRECONDITION (not finalized), TSR_EIO, TSR_EINTERNAL (zstd/seal).
 * opts may be NULL. */
tsr_err_t tsr_engine_app_save(const tsr_engine_model_t *m, const tsr_engine_app_meta_t *meta,
                              const char *path, const tsr_engine_appfile_opts_t *opts,
                              tsr_error_t *err);
/* The same into memory: *out returned-owned (free()). */
tsr_err_t tsr_engine_app_save_mem(const tsr_engine_model_t *m, const tsr_engine_app_meta_t *meta,
                                  const tsr_engine_appfile_opts_t *opts, uint8_t **out,
                                  size_t *out_n, tsr_error_t *err);

/* The app file's own strings, returned-owned: free with tsr_engine_app_contents_cleanup. */
typedef struct {
    char *script, *reload_log, *objects; /* NUL-terminated */
    size_t script_len, reload_log_len, objects_len;
} tsr_engine_app_contents_t;
void tsr_engine_app_contents_cleanup(tsr_engine_app_contents_t *c);

/* Open an app file: the model comes back finalized without re-parsing any rows. Every size
 * and index is checked: a corrupted or truncated file is TSR_EINVAL (or TSR_ETOOBIG), never a
 * crash. *m returned-owned; contents may be NULL. */
tsr_err_t tsr_engine_app_open(const char *path, const tsr_engine_appfile_opts_t *opts,
                              tsr_engine_model_t **m, tsr_engine_app_contents_t *contents,
                              tsr_error_t *err);
tsr_err_t tsr_engine_app_open_mem(const uint8_t *buf, size_t n,
                                  const tsr_engine_appfile_opts_t *opts, tsr_engine_model_t **m,
                                  tsr_engine_app_contents_t *contents, tsr_error_t *err);

/* ---- model handles: reference counting and atomic swap --------------------------------------- */

/* A finalized model shared by readers: retain/release count references (create's caller holds
 * the first; the last release destroys the model). Thread safe. */
tsr_engine_model_t *tsr_engine_model_retain(tsr_engine_model_t *m);
void tsr_engine_model_release(tsr_engine_model_t *m); /* NULL: no-op */

/* The current model of an app: readers take a reference (get), a reload builds a new model
 * beside the old one and swaps it in; readers of the old model finish on it. Thread safe. */
typedef struct tsr_engine_slot tsr_engine_slot_t;
tsr_engine_slot_t *tsr_engine_slot_create(void);    /* returned-owned */
void tsr_engine_slot_destroy(tsr_engine_slot_t *s); /* releases the model it holds */
/* Returned reference (release it), or NULL when empty. */
tsr_engine_model_t *tsr_engine_slot_get(tsr_engine_slot_t *s);
/* Install m (the slot takes the caller's reference) and release the previous model. */
void tsr_engine_slot_swap(tsr_engine_slot_t *s, tsr_engine_model_t *m);

/* ---- inspection (read-only; thread safe on a finalized model) ---------------------------- */

size_t tsr_engine_model_table_count(const tsr_engine_model_t *m);
/* Borrowed NUL-terminated name, valid until destroy; NULL when t is out of range. */
const char *tsr_engine_model_table_name(const tsr_engine_model_t *m, size_t t);
size_t tsr_engine_model_table_rows(const tsr_engine_model_t *m, size_t t);
size_t tsr_engine_model_table_field_count(const tsr_engine_model_t *m, size_t t);
/* Model-wide field index of the c-th column of table t; SIZE_MAX when out of range. */
size_t tsr_engine_model_table_field(const tsr_engine_model_t *m, size_t t, size_t c);
/* Bits per row of column c of table t (ceil(log2(distinct+1)), null included). */
unsigned tsr_engine_model_table_field_bits(const tsr_engine_model_t *m, size_t t, size_t c);
/* Table index by name; TSR_ENOTFOUND. */
tsr_err_t tsr_engine_model_table_find(const tsr_engine_model_t *m, const char *name, size_t *t);

size_t tsr_engine_model_field_count(const tsr_engine_model_t *m);
const char *tsr_engine_model_field_name(const tsr_engine_model_t *m, size_t f);
tsr_err_t tsr_engine_model_field_find(const tsr_engine_model_t *m, const char *name, size_t *f);
/* Distinct values of field f (its symbol count). */
size_t tsr_engine_model_field_symbol_count(const tsr_engine_model_t *m, size_t f);
/* Symbol s of field f (load order). Text is borrowed, valid until destroy. */
tsr_err_t tsr_engine_model_field_symbol(const tsr_engine_model_t *m, size_t f, size_t s,
                                        tsr_engine_dual_t *out);
/* Find the symbol whose text equals (text,len); TSR_ENOTFOUND. */
tsr_err_t tsr_engine_model_field_symbol_find(const tsr_engine_model_t *m, size_t f,
                                             const char *text, size_t len, size_t *s);
/* Symbol index at row r of column c of table t; *is_null set for a null cell. */
tsr_err_t tsr_engine_model_cell(const tsr_engine_model_t *m, size_t t, size_t c, size_t r,
                                size_t *sym, bool *is_null);
/* Rank of symbol s in field f's default sort order (numbers ascending, then text by UTF-8
 * bytes); valid after finalize. */
size_t tsr_engine_model_field_sort_rank(const tsr_engine_model_t *m, size_t f, size_t s);

#ifdef __cplusplus
}
#endif
#endif
