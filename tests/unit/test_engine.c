/*
 * Unit tests for pkg/engine: symbol tables and duals, bit-packed columns, the CSV loader,
 * table-graph checks (synthetic keys, loops), the load script statements, expressions, and
 * the Sales generator against SALES_MODEL.md's checksums and statistics.
 * TSR_ENGINE_TEST_SMALL=1 (set for sanitizer runs) skips the 1.6M-row checks.
 */
#include <check.h>
#include <pthread.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "engine_int.h"

/* The generator lives in bench/engine; the test compiles it in. */
#include "../../bench/engine/salesgen.c"
#include "../../bench/engine/salesq.c"

static tsr_engine_model_t *model_from_csv(const char *table, const char *csv) {
    tsr_engine_model_t *m = tsr_engine_model_create();
    tsr_error_t err = {0};
    ck_assert_msg(tsr_engine_model_load_csv_mem(m, table, csv, strlen(csv), NULL, &err) == TSR_OK,
                  "%s", err.msg);
    return m;
}

static size_t field_of(const tsr_engine_model_t *m, const char *name) {
    size_t f = SIZE_MAX;
    ck_assert_msg(tsr_engine_model_field_find(m, name, &f) == TSR_OK, "field %s", name);
    return f;
}

static size_t table_of(const tsr_engine_model_t *m, const char *name) {
    size_t t = SIZE_MAX;
    ck_assert_msg(tsr_engine_model_table_find(m, name, &t) == TSR_OK, "table %s", name);
    return t;
}

/* Text of the cell at row r of field `field` in table `table` ("<null>" for null). */
static const char *cell_text(const tsr_engine_model_t *m, const char *table, const char *field,
                             size_t r, char *buf, size_t cap) {
    size_t t = table_of(m, table), f = field_of(m, field);
    for (size_t c = 0; c < tsr_engine_model_table_field_count(m, t); c++) {
        if (tsr_engine_model_table_field(m, t, c) != f)
            continue;
        size_t sym;
        bool is_null;
        ck_assert_int_eq(tsr_engine_model_cell(m, t, c, r, &sym, &is_null), TSR_OK);
        if (is_null) {
            snprintf(buf, cap, "<null>");
        } else {
            tsr_engine_dual_t d;
            ck_assert_int_eq(tsr_engine_model_field_symbol(m, f, sym, &d), TSR_OK);
            snprintf(buf, cap, "%.*s", (int)d.text_len, d.text);
        }
        return buf;
    }
    ck_abort_msg("field %s not in table %s", field, table);
    return NULL;
}

static tsr_engine_model_t *reload_ok(const char *script, const char *dir) {
    tsr_engine_model_t *m = NULL;
    tsr_error_t err = {0};
    char *log = NULL;
    tsr_engine_reload_opts_t opts = {.data_dir = dir};
    tsr_err_t rc = tsr_engine_reload(script, strlen(script), &opts, &m, &log, &err);
    ck_assert_msg(rc == TSR_OK, "reload: %s\nlog:\n%s", err.msg, log);
    ck_assert_ptr_nonnull(log);
    free(log);
    return m;
}

static void reload_fails(const char *script, const char *dir, tsr_err_t code, const char *msg) {
    tsr_engine_model_t *m = NULL;
    tsr_error_t err = {0};
    char *log = NULL;
    tsr_engine_reload_opts_t opts = {.data_dir = dir};
    tsr_err_t rc = tsr_engine_reload(script, strlen(script), &opts, &m, &log, &err);
    ck_assert_int_eq(rc, code);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err.msg, msg) != NULL, "message '%s' lacks '%s'", err.msg, msg);
    ck_assert_ptr_nonnull(strstr(log, "error:"));
    free(log);
}

/* ---- data model ---- */

START_TEST(test_symbols_dual_values_one_per_distinct_in_load_order) {
    tsr_engine_model_t *m = model_from_csv("T", "A,B\n10,x\n2.50,y\n10,x\n2020-01-02,\n-3,y\n");
    size_t a = field_of(m, "A"), b = field_of(m, "B");
    ck_assert_uint_eq(tsr_engine_model_field_symbol_count(m, a), 4);
    ck_assert_uint_eq(tsr_engine_model_field_symbol_count(m, b), 3); /* x, y, '' */
    tsr_engine_dual_t d;
    ck_assert_int_eq(tsr_engine_model_field_symbol(m, a, 0, &d), TSR_OK);
    ck_assert(d.is_num && d.num == 10.0 && d.text_len == 2);
    ck_assert_int_eq(tsr_engine_model_field_symbol(m, a, 1, &d), TSR_OK);
    ck_assert(d.is_num && d.num == 2.5);
    ck_assert_int_eq(memcmp(d.text, "2.50", 4), 0); /* text kept as loaded */
    ck_assert_int_eq(tsr_engine_model_field_symbol(m, a, 2, &d), TSR_OK);
    ck_assert(d.is_num && d.num == 43832.0); /* 2020-01-02 as a Qlik serial day */
    ck_assert_int_eq(tsr_engine_model_field_symbol(m, b, 0, &d), TSR_OK);
    ck_assert(!d.is_num);
    size_t s;
    ck_assert_int_eq(tsr_engine_model_field_symbol_find(m, a, "-3", 2, &s), TSR_OK);
    ck_assert_uint_eq(s, 3);
    ck_assert_int_eq(tsr_engine_model_field_symbol_find(m, a, "3", 1, &s), TSR_ENOTFOUND);
    tsr_error_t err;
    ck_assert_int_eq(tsr_engine_model_finalize(m, &err), TSR_OK);
    /* Sort order: numbers ascending (-3, 2.50, 10, 43832), text after them. */
    ck_assert_uint_eq(tsr_engine_model_field_sort_rank(m, a, 3), 0);
    ck_assert_uint_eq(tsr_engine_model_field_sort_rank(m, a, 1), 1);
    ck_assert_uint_eq(tsr_engine_model_field_sort_rank(m, a, 0), 2);
    ck_assert_uint_eq(tsr_engine_model_field_sort_rank(m, a, 2), 3);
    tsr_engine_model_destroy(m);
}
END_TEST

START_TEST(test_columns_bit_packed_at_log2_distinct) {
    /* 1000 rows of 300 distinct values: 9 bits (300 symbols + null need 301 codes). */
    tsr_buf_t b;
    tsr_buf_init(&b, 0);
    tsr_buf_append_str(&b, "K,V\n");
    for (int i = 0; i < 1000; i++)
        tsr_buf_appendf(&b, "%d,%d\n", i % 300, i % 2);
    tsr_engine_model_t *m = model_from_csv("T", b.data);
    tsr_buf_cleanup(&b);
    ck_assert_uint_eq(tsr_engine_model_table_rows(m, 0), 1000);
    ck_assert_uint_eq(tsr_engine_model_table_field_bits(m, 0, 0), 9);
    ck_assert_uint_eq(tsr_engine_model_table_field_bits(m, 0, 1), 2);
    char buf[32];
    for (size_t r = 0; r < 1000; r += 37) {
        char want[16];
        snprintf(want, sizeof want, "%zu", r % 300);
        ck_assert_str_eq(cell_text(m, "T", "K", r, buf, sizeof buf), want);
    }
    tsr_engine_model_destroy(m);
}
END_TEST

START_TEST(test_csv_quotes_crlf_bom_and_blank_lines) {
    const char *csv =
        "\xEF\xBB\xBF"
        "Name,Note\r\n\"Smith, J\",\"say \"\"hi\"\"\"\r\n\r\nplain,\"two\nlines\"\r\n";
    tsr_engine_model_t *m = model_from_csv("T", csv);
    char buf[64];
    ck_assert_uint_eq(tsr_engine_model_table_rows(m, 0), 2);
    ck_assert_str_eq(cell_text(m, "T", "Name", 0, buf, sizeof buf), "Smith, J");
    ck_assert_str_eq(cell_text(m, "T", "Note", 0, buf, sizeof buf), "say \"hi\"");
    ck_assert_str_eq(cell_text(m, "T", "Note", 1, buf, sizeof buf), "two\nlines");
    ck_assert_str_eq(cell_text(m, "T", "Name", 1, buf, sizeof buf), "plain");
    tsr_engine_model_destroy(m);
}
END_TEST

START_TEST(test_csv_semicolon_delimiter_and_no_labels) {
    tsr_engine_model_t *m = tsr_engine_model_create();
    tsr_engine_csv_opts_t o = {.delimiter = ';', .no_labels = true};
    tsr_error_t err;
    ck_assert_int_eq(tsr_engine_model_load_csv_mem(m, "T", "a;1\nb;2\n", 8, &o, &err), TSR_OK);
    char buf[16];
    ck_assert_uint_eq(tsr_engine_model_table_rows(m, 0), 2);
    ck_assert_str_eq(cell_text(m, "T", "@1", 1, buf, sizeof buf), "b");
    ck_assert_str_eq(cell_text(m, "T", "@2", 0, buf, sizeof buf), "1");
    tsr_engine_model_destroy(m);
}
END_TEST

START_TEST(test_csv_ragged_row_reports_line_and_column) {
    tsr_engine_model_t *m = tsr_engine_model_create();
    tsr_error_t err;
    const char *csv = "A,B\n1,2\n3\n";
    ck_assert_int_eq(tsr_engine_model_load_csv_mem(m, "T", csv, strlen(csv), NULL, &err),
                     TSR_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "line 3"));
    const char *csv2 = "A,B\n1,2,3\n";
    ck_assert_int_eq(tsr_engine_model_load_csv_mem(m, "U", csv2, strlen(csv2), NULL, &err),
                     TSR_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "line 2 column 5"));
    const char *csv3 = "A,B\n\"open,2\n";
    ck_assert_int_eq(tsr_engine_model_load_csv_mem(m, "V", csv3, strlen(csv3), NULL, &err),
                     TSR_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "malformed"));
    ck_assert_uint_eq(tsr_engine_model_table_count(m), 0);
    tsr_engine_model_destroy(m);
}
END_TEST

START_TEST(test_csv_large_file_two_workers_match) {
    /* Over the parallel threshold: both workers' columns must line up row by row. */
    tsr_buf_t b;
    tsr_buf_init(&b, 0);
    tsr_buf_append_str(&b, "I,Sq,Txt,Half\n");
    /* Over the parallel threshold: symbols keep first-seen order, rows line up. */
    for (int i = 0; i < 250000; i++)
        tsr_buf_appendf(&b, "%d,%d,t%d,%s%d\n", i, (i * 7) % 1000, i % 13,
                        i < 200000 ? "early" : "late", i < 200000 ? 0 : 2 - i % 3);
    tsr_engine_model_t *m = model_from_csv("T", b.data);
    ck_assert_uint_eq(tsr_engine_model_table_rows(m, 0), 250000);
    size_t half = field_of(m, "Half");
    ck_assert_uint_eq(tsr_engine_model_field_symbol_count(m, half), 4);
    static const char *const order[] = {"early0", "late0", "late2", "late1"};
    for (size_t k = 0; k < 4; k++) {
        tsr_engine_dual_t d;
        tsr_engine_model_field_symbol(m, half, k, &d);
        ck_assert(d.text_len == strlen(order[k]) && memcmp(d.text, order[k], d.text_len) == 0);
    }
    /* A ragged row in the second half is reported with its file line. */
    tsr_buf_append_str(&b, "1,2\n");
    tsr_engine_model_t *bad = tsr_engine_model_create();
    tsr_error_t err = {0};
    ck_assert_int_eq(tsr_engine_model_load_csv_mem(bad, "T", b.data, b.len, NULL, &err),
                     TSR_EINVAL);
    ck_assert_msg(strstr(err.msg, "line 250002 column 1: 2 fields where 4 expected") != NULL, "%s",
                  err.msg);
    tsr_engine_model_destroy(bad);
    tsr_buf_cleanup(&b);
    char buf[32], want[32];
    for (size_t r = 0; r < 250000; r += 997) {
        snprintf(want, sizeof want, "%zu", (r * 7) % 1000);
        ck_assert_str_eq(cell_text(m, "T", "Sq", r, buf, sizeof buf), want);
        snprintf(want, sizeof want, "t%zu", r % 13);
        ck_assert_str_eq(cell_text(m, "T", "Txt", r, buf, sizeof buf), want);
        snprintf(want, sizeof want, "%zu", r);
        ck_assert_str_eq(cell_text(m, "T", "I", r, buf, sizeof buf), want);
    }
    tsr_engine_model_destroy(m);
}
END_TEST

/* Everything a load produced, as text: rows, per field its symbols in load order (text and
 * number) and per table column its width and cells. */
static char *model_dump(const tsr_engine_model_t *m) {
    tsr_buf_t b;
    tsr_buf_init(&b, 0);
    for (size_t f = 0; f < tsr_engine_model_field_count(m); f++) {
        tsr_buf_appendf(&b, "field %s:", tsr_engine_model_field_name(m, f));
        for (size_t s = 0; s < tsr_engine_model_field_symbol_count(m, f); s++) {
            tsr_engine_dual_t d;
            ck_assert_int_eq(tsr_engine_model_field_symbol(m, f, s, &d), TSR_OK);
            tsr_buf_appendf(&b, " [%.*s|%d|%.17g]", (int)d.text_len, d.text, d.is_num,
                            d.is_num ? d.num : 0.0);
        }
        tsr_buf_append_str(&b, "\n");
    }
    for (size_t t = 0; t < tsr_engine_model_table_count(m); t++) {
        size_t rows = tsr_engine_model_table_rows(m, t);
        tsr_buf_appendf(&b, "table %s %zu rows\n", tsr_engine_model_table_name(m, t), rows);
        for (size_t c = 0; c < tsr_engine_model_table_field_count(m, t); c++) {
            tsr_buf_appendf(&b, "col %zu field %zu bits %u:", c,
                            tsr_engine_model_table_field(m, t, c),
                            tsr_engine_model_table_field_bits(m, t, c));
            for (size_t r = 0; r < rows; r++) {
                size_t sym;
                bool is_null;
                ck_assert_int_eq(tsr_engine_model_cell(m, t, c, r, &sym, &is_null), TSR_OK);
                tsr_buf_appendf(&b, " %zu", is_null ? SIZE_MAX : sym);
            }
            tsr_buf_append_str(&b, "\n");
        }
    }
    size_t n;
    tsr_buf_append(&b, "", 0);
    return tsr_buf_take(&b, &n);
}

/* Load csv into a fresh model (after a first table "Pre" when pre != NULL) with one thread
 * or with the rows split in two chunks; returns the dump, or the error message. */
static char *load_dump(const char *pre, const char *csv, size_t len, const tsr_engine__proj_t *proj,
                       size_t n_proj, bool split) {
    size_t saved = tsr_engine__csv_parallel_min;
    tsr_engine__csv_parallel_min = split ? 0 : SIZE_MAX;
    tsr_engine_model_t *m = tsr_engine_model_create();
    tsr_error_t err = {0};
    if (pre != NULL)
        ck_assert_int_eq(tsr_engine__load_csv(m, "Pre", pre, strlen(pre), NULL, NULL, 0, &err),
                         TSR_OK);
    tsr_err_t rc = tsr_engine__load_csv(m, "T", csv, len, NULL, proj, n_proj, &err);
    tsr_engine__csv_parallel_min = saved;
    char *out;
    if (rc != TSR_OK) {
        out = tsr_xstrdup(err.msg);
    } else {
        out = model_dump(m);
        /* After finalize (slots rebuilt or dropped) every symbol is found by its text. */
        ck_assert_int_eq(tsr_engine_model_finalize(m, &err), TSR_OK);
        for (size_t f = 0; f < tsr_engine_model_field_count(m); f++) {
            for (size_t s = 0; s < tsr_engine_model_field_symbol_count(m, f); s++) {
                tsr_engine_dual_t d;
                size_t got = SIZE_MAX;
                tsr_engine_model_field_symbol(m, f, s, &d);
                ck_assert_int_eq(tsr_engine_model_field_symbol_find(m, f, d.text, d.text_len, &got),
                                 TSR_OK);
                ck_assert_uint_eq(got, s);
            }
        }
    }
    tsr_engine_model_destroy(m);
    return out;
}

START_TEST(test_csv_chunks_identical_to_one_thread) {
    /* Cells of every kind: canonical numbers and dates (direct tables), other numbers and
     * text (hashed), empty cells, quoted cells with delimiters, quotes and newlines, CRLF
     * and blank lines; later rows repeat earlier values and bring new ones. */
    static const char *const kinds[] = {
        "%d,%d.%02d,2021-%02d-%02d,t%d,\"q, %d\"\n",
        "%d,0.%d5,2020-02-%02d,,\"two\nlines %d\"\r\n",
        "00%d,-%d.5,20210230,%d,\"say \"\"%d\"\"\"\n",
        "%d,1e%d,%d-01-01,x%d,\"\"\n\n",
        "%d123456789,%d.,12.5.%d,Y%d,\"%d\"\n",
    };
    tsr_buf_t b;
    tsr_buf_init(&b, 0);
    tsr_buf_append_str(&b, "\xEF\xBB\xBF"
                           "A,B,C,D,E\n");
    for (int i = 0; i < 600; i++) {
        int k = (i * 7 + i / 11) % 5;
        int x = (i * 37) % 500, y = i % 97, z = i % 28 + 1;
        switch (k) {
        case 0:
            tsr_buf_appendf(&b, kinds[0], x, y, z, (y % 12) + 1, z, x % 50, i);
            break;
        case 1:
            tsr_buf_appendf(&b, kinds[1], x, y % 10, z, i % 300);
            break;
        case 2:
            tsr_buf_appendf(&b, kinds[2], y, x, i, y);
            break;
        case 3:
            tsr_buf_appendf(&b, kinds[3], i, y % 5, 1900 + y, x % 40);
            break;
        default:
            tsr_buf_appendf(&b, kinds[4], y, x, z, i % 13, i);
            break;
        }
    }
    const char *pre = "B,P\n0.05,t1\n7.5,zz\n2.00,x3\n-1.5,q\n";
    /* Grow the file a line at a time so the middle falls everywhere in a row, also inside
     * quoted cells that hold newlines. */
    for (int extra = 0; extra < 8; extra++) {
        char *one = load_dump(NULL, b.data, b.len, NULL, 0, false);
        char *two = load_dump(NULL, b.data, b.len, NULL, 0, true);
        ck_assert_str_eq(one, two);
        free(one);
        free(two);
        one = load_dump(pre, b.data, b.len, NULL, 0, false);
        two = load_dump(pre, b.data, b.len, NULL, 0, true);
        ck_assert_str_eq(one, two);
        free(one);
        free(two);
        tsr_buf_appendf(&b, "%d,\"l\nl\n%d\",x,\"a\"\"\nb\",%d\r\n", extra, extra, extra * 3);
    }
    /* A projection: only some columns, renamed. */
    tsr_engine__proj_t proj[] = {{"D", "Dx"}, {"B", "Bx"}};
    char *one = load_dump(pre, b.data, b.len, proj, 2, false);
    char *two = load_dump(pre, b.data, b.len, proj, 2, true);
    ck_assert_str_eq(one, two);
    ck_assert_ptr_nonnull(strstr(one, "field Dx:"));
    free(one);
    free(two);
    tsr_buf_cleanup(&b);
}
END_TEST

START_TEST(test_csv_chunk_boundary_inside_quoted_cell) {
    /* One quoted cell spans the middle of the file with many newlines (and unbalanced-looking
     * quotes and ragged "rows" inside): the second chunk's guessed start is wrong and its
     * errors must not surface. */
    tsr_buf_t b;
    tsr_buf_init(&b, 0);
    tsr_buf_append_str(&b, "K,Note\n");
    for (int i = 0; i < 200; i++)
        tsr_buf_appendf(&b, "%d,n%d\n", i, i % 7);
    tsr_buf_append_str(&b, "200,\"");
    for (int i = 0; i < 400; i++)
        tsr_buf_appendf(&b, "inner %d,\"\"x\"\",%d\n", i, i);
    tsr_buf_append_str(&b, "end\"\n");
    for (int i = 201; i < 400; i++)
        tsr_buf_appendf(&b, "%d,n%d\n", i, i % 9);
    char *one = load_dump(NULL, b.data, b.len, NULL, 0, false);
    char *two = load_dump(NULL, b.data, b.len, NULL, 0, true);
    ck_assert_str_eq(one, two);
    ck_assert_ptr_nonnull(strstr(one, "table T 400 rows"));
    free(one);
    free(two);
    /* Errors: the first in file order wins, with its file line, from either chunk. */
    tsr_buf_t e;
    tsr_buf_init(&e, 0);
    tsr_buf_append_str(&e, "A,B\n");
    for (int i = 0; i < 1000; i++)
        tsr_buf_appendf(&e, i == 900 ? "%d\n" : "%d,x\n", i);
    one = load_dump(NULL, e.data, e.len, NULL, 0, false);
    two = load_dump(NULL, e.data, e.len, NULL, 0, true);
    ck_assert_str_eq(one, two);
    ck_assert_msg(strstr(one, "line 902 column 1: 1 fields where 2 expected") != NULL, "%s", one);
    free(one);
    free(two);
    tsr_buf_cleanup(&e);
    tsr_buf_init(&e, 0);
    tsr_buf_append_str(&e, "A,B\n");
    for (int i = 0; i < 1000; i++)
        tsr_buf_appendf(&e, i == 100 ? "%d,x,y\n" : i == 900 ? "%d\n" : "%d,x\n", i);
    one = load_dump(NULL, e.data, e.len, NULL, 0, false);
    two = load_dump(NULL, e.data, e.len, NULL, 0, true);
    ck_assert_str_eq(one, two);
    ck_assert_msg(strstr(one, "line 102 column 7: more than 2 fields") != NULL, "%s", one);
    free(one);
    free(two);
    tsr_buf_cleanup(&e);
    /* An unterminated quote in the first half runs to the end of the file. */
    tsr_buf_init(&e, 0);
    tsr_buf_append_str(&e, "A,B\n");
    for (int i = 0; i < 1000; i++)
        tsr_buf_appendf(&e, i == 10 ? "%d,\"open\n" : "%d,x\n", i);
    one = load_dump(NULL, e.data, e.len, NULL, 0, false);
    two = load_dump(NULL, e.data, e.len, NULL, 0, true);
    ck_assert_str_eq(one, two);
    ck_assert_ptr_nonnull(strstr(one, "malformed"));
    free(one);
    free(two);
    tsr_buf_cleanup(&e);
    tsr_buf_cleanup(&b);
}
END_TEST

START_TEST(test_symbols_direct_tables_and_hashed_texts_agree) {
    /* A field with symbols interned as computed duals before a CSV load (hashed), then CSV
     * cells (canonical numbers and dates keyed by direct tables): one symbol per text,
     * lookups before and after finalize. */
    tsr_engine_model_t *m = tsr_engine_model_create();
    uint32_t f = tsr_engine__model_field(m, "A", 1);
    tsr_engine__field_t *fd = &m->fields[f];
    ck_assert_uint_eq(tsr_engine__field_intern_dual(fd, "10", 2, 10.0), 0);
    ck_assert_uint_eq(tsr_engine__field_intern_dual(fd, "2020-01-02", 10, 43832.0), 1);
    ck_assert_uint_eq(tsr_engine__field_intern_dual(fd, "abc", 3, NAN), 2);
    tsr_error_t err = {0};
    const char *csv = "A\n10\n2020-01-02\n7\nabc\n7\n010\n0.5\n0.50\n2020-01-02\n";
    ck_assert_int_eq(tsr_engine_model_load_csv_mem(m, "T", csv, strlen(csv), NULL, &err), TSR_OK);
    ck_assert_uint_eq(tsr_engine_model_field_symbol_count(m, f), 7);
    static const char *const texts[] = {"10", "2020-01-02", "abc", "7", "010", "0.5", "0.50"};
    for (int pass = 0; pass < 2; pass++) {
        for (size_t s = 0; s < 7; s++) {
            size_t got = SIZE_MAX;
            ck_assert_int_eq(
                tsr_engine_model_field_symbol_find(m, f, texts[s], strlen(texts[s]), &got), TSR_OK);
            ck_assert_uint_eq(got, s);
        }
        size_t got;
        ck_assert_int_eq(tsr_engine_model_field_symbol_find(m, f, "8", 1, &got), TSR_ENOTFOUND);
        ck_assert_int_eq(tsr_engine_model_field_symbol_find(m, f, "2020-01-03", 10, &got),
                         TSR_ENOTFOUND);
        ck_assert_int_eq(tsr_engine_model_field_symbol_find(m, f, "x", 1, &got), TSR_ENOTFOUND);
        if (pass == 0)
            ck_assert_int_eq(tsr_engine_model_finalize(m, &err), TSR_OK);
    }
    char buf[32];
    ck_assert_str_eq(cell_text(m, "T", "A", 5, buf, sizeof buf), "010");
    ck_assert_str_eq(cell_text(m, "T", "A", 8, buf, sizeof buf), "2020-01-02");
    tsr_engine_model_destroy(m);
}
END_TEST

START_TEST(test_finalize_synthetic_key_refused) {
    tsr_engine_model_t *m = model_from_csv("A", "X,Y,P\n1,2,3\n");
    tsr_error_t err;
    ck_assert_int_eq(tsr_engine_model_load_csv_mem(m, "B", "X,Y,Q\n1,2,4\n", 12, NULL, &err),
                     TSR_OK);
    ck_assert_int_eq(tsr_engine_model_finalize(m, &err), TSR_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(err.msg, "synthetic key"));
    tsr_engine_model_destroy(m);
}
END_TEST

START_TEST(test_finalize_circular_reference_refused) {
    tsr_engine_model_t *m = model_from_csv("A", "X,Y\n1,2\n");
    tsr_error_t err;
    ck_assert_int_eq(tsr_engine_model_load_csv_mem(m, "B", "Y,Z\n2,3\n", 8, NULL, &err), TSR_OK);
    ck_assert_int_eq(tsr_engine_model_load_csv_mem(m, "C", "Z,X\n3,1\n", 8, NULL, &err), TSR_OK);
    ck_assert_int_eq(tsr_engine_model_finalize(m, &err), TSR_EUNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(err.msg, "circular reference"));
    tsr_engine_model_destroy(m);
}
END_TEST

START_TEST(test_finalize_star_and_chain_accepted) {
    tsr_engine_model_t *m = model_from_csv("A", "X,Y\n1,2\n");
    tsr_error_t err;
    ck_assert_int_eq(tsr_engine_model_load_csv_mem(m, "B", "Y,Z\n2,3\n", 8, NULL, &err), TSR_OK);
    ck_assert_int_eq(tsr_engine_model_load_csv_mem(m, "C", "X,W\n1,3\n", 8, NULL, &err), TSR_OK);
    ck_assert_int_eq(tsr_engine_model_finalize(m, &err), TSR_OK);
    tsr_engine_model_destroy(m);
}
END_TEST

/* ---- load script ---- */

static char *tmpdir_with(const char *name, const char *content) {
    char tmpl[] = "/tmp/tsr-engine-test-XXXXXX";
    char *dir = mkdtemp(tmpl);
    ck_assert_ptr_nonnull(dir);
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(content, f);
    fclose(f);
    return tsr_xstrdup(dir);
}

static void rmdir_with(char *dir, const char *name) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
    rmdir(dir);
    free(dir);
}

START_TEST(test_script_load_from_file_fields_as_alias) {
    char *dir = tmpdir_with("x.csv", "ID,Name,Price\n1,a,1.50\n2,b,2\n");
    tsr_engine_model_t *m = reload_ok("Items: LOAD ID, Name AS ItemName\n"
                                      "FROM [lib://DataFiles/x.csv] (txt, utf8, embedded labels, "
                                      "delimiter is ',');",
                                      dir);
    char buf[32];
    ck_assert_uint_eq(tsr_engine_model_table_count(m), 1);
    ck_assert_uint_eq(tsr_engine_model_table_field_count(m, 0), 2);
    ck_assert_str_eq(cell_text(m, "Items", "ItemName", 1, buf, sizeof buf), "b");
    ck_assert_int_eq(tsr_engine_model_field_find(m, "Price", &(size_t){0}), TSR_ENOTFOUND);
    tsr_engine_model_destroy(m);
    /* LOAD * names the table after the file. */
    m = reload_ok("LOAD * FROM [lib://DataFiles/x.csv];", dir);
    ck_assert_str_eq(tsr_engine_model_table_name(m, 0), "x");
    ck_assert_uint_eq(tsr_engine_model_table_field_count(m, 0), 3);
    tsr_engine_model_destroy(m);
    rmdir_with(dir, "x.csv");
}
END_TEST

START_TEST(test_script_load_expressions_and_where) {
    char *dir =
        tmpdir_with("x.csv", "ID,Price,Qty,D\n1,1.50,2,2021-03-04\n2,2,0,2022-12-31\n3,4,3,\n");
    tsr_engine_model_t *m =
        reload_ok("T: LOAD ID, Price * Qty AS Amount, Year(D) AS Y, Month(D) AS M,\n"
                  "  'id-' & ID AS Tag\n"
                  "FROM [lib://DataFiles/x.csv] WHERE Qty > 0;",
                  dir);
    char buf[32];
    ck_assert_uint_eq(tsr_engine_model_table_rows(m, 0), 2);
    ck_assert_str_eq(cell_text(m, "T", "Amount", 0, buf, sizeof buf), "3");
    ck_assert_str_eq(cell_text(m, "T", "Amount", 1, buf, sizeof buf), "12");
    ck_assert_str_eq(cell_text(m, "T", "Y", 0, buf, sizeof buf), "2021");
    ck_assert_str_eq(cell_text(m, "T", "Y", 1, buf, sizeof buf), "<null>"); /* empty date */
    ck_assert_str_eq(cell_text(m, "T", "M", 0, buf, sizeof buf), "Mar");
    ck_assert_str_eq(cell_text(m, "T", "Tag", 1, buf, sizeof buf), "id-3");
    tsr_engine_dual_t d;
    ck_assert_int_eq(tsr_engine_model_field_symbol(m, field_of(m, "M"), 0, &d), TSR_OK);
    ck_assert(d.is_num && d.num == 3.0); /* Month() is a dual */
    tsr_engine_model_destroy(m);
    rmdir_with(dir, "x.csv");
}
END_TEST

START_TEST(test_script_inline_resident_drop) {
    tsr_engine_model_t *m = reload_ok("A: LOAD * INLINE [\n"
                                      "  K, V\n"
                                      "  1, one\n"
                                      "  2, two\n"
                                      "  3, three\n"
                                      "];\n"
                                      "B: NOCONCATENATE LOAD K AS K2, V RESIDENT A WHERE K >= 2;\n"
                                      "DROP TABLE A;\n",
                                      NULL);
    char buf[32];
    ck_assert_uint_eq(tsr_engine_model_table_count(m), 1);
    ck_assert_uint_eq(tsr_engine_model_table_rows(m, 0), 2);
    ck_assert_str_eq(cell_text(m, "B", "V", 0, buf, sizeof buf), "two");
    ck_assert_str_eq(cell_text(m, "B", "K2", 1, buf, sizeof buf), "3");
    /* Field K went with table A. */
    ck_assert_int_eq(tsr_engine_model_field_find(m, "K", &(size_t){0}), TSR_ENOTFOUND);
    tsr_engine_model_destroy(m);
}
END_TEST

START_TEST(test_script_concatenate_explicit_and_auto) {
    tsr_engine_model_t *m = reload_ok("T: LOAD * INLINE [A, B\n1, x];\n"
                                      "LOAD * INLINE [A, B\n2, y];\n" /* same fields: auto */
                                      "U: LOAD * INLINE [Z\n9];\n"
                                      "CONCATENATE (T) LOAD * INLINE [A, C\n3, z];\n",
                                      NULL);
    char buf[32];
    ck_assert_uint_eq(tsr_engine_model_table_count(m), 2);
    size_t t = table_of(m, "T");
    ck_assert_uint_eq(tsr_engine_model_table_rows(m, t), 3);
    ck_assert_uint_eq(tsr_engine_model_table_field_count(m, t), 3);
    ck_assert_str_eq(cell_text(m, "T", "B", 1, buf, sizeof buf), "y");
    ck_assert_str_eq(cell_text(m, "T", "B", 2, buf, sizeof buf), "<null>");
    ck_assert_str_eq(cell_text(m, "T", "C", 0, buf, sizeof buf), "<null>");
    ck_assert_str_eq(cell_text(m, "T", "C", 2, buf, sizeof buf), "z");
    tsr_engine_model_destroy(m);
}
END_TEST

START_TEST(test_script_set_let_expansion_and_drop_field) {
    tsr_engine_model_t *m = reload_ok("SET vTable = Facts;\n"
                                      "LET vLimit = 10 * 2 + 1;\n"
                                      "LET vName = 'Q' & 'ty';\n"
                                      "$(vTable): LOAD * INLINE [Id, Qty, Extra\n"
                                      "1, 20, e\n2, 21, f\n3, 22, g];\n"
                                      "R: NOCONCATENATE LOAD Id, $(vName) RESIDENT $(vTable)\n"
                                      "  WHERE $(vName) >= $(vLimit);\n"
                                      "DROP FIELD Extra FROM Facts;\n"
                                      "DROP TABLES Facts;\n",
                                      NULL);
    char buf[32];
    ck_assert_uint_eq(tsr_engine_model_table_count(m), 1);
    ck_assert_str_eq(tsr_engine_model_table_name(m, 0), "R");
    ck_assert_uint_eq(tsr_engine_model_table_rows(m, 0), 2);
    ck_assert_str_eq(cell_text(m, "R", "Qty", 0, buf, sizeof buf), "21");
    ck_assert_int_eq(tsr_engine_model_field_find(m, "Extra", &(size_t){0}), TSR_ENOTFOUND);
    tsr_engine_model_destroy(m);
}
END_TEST

START_TEST(test_script_variables_kept_on_model_and_in_app_file) {
    tsr_engine_model_t *m = reload_ok("SET vMeasure = Sum(Qty);\n"
                                      "LET vTwo = 1 + 1;\n"
                                      "SET vMeasure = Sum(Qty) * 2;\n"
                                      "T: LOAD * INLINE [Id, Qty\n1, 20];\n",
                                      NULL);
    const char *name = NULL, *value = NULL;
    ck_assert_uint_eq(tsr_engine_model_var_count(m), 2);
    ck_assert_int_eq(tsr_engine_model_var(m, 0, &name, &value), TSR_OK);
    ck_assert_str_eq(name, "vMeasure");
    ck_assert_str_eq(value, "Sum(Qty) * 2");
    ck_assert_int_eq(tsr_engine_model_var(m, 1, &name, &value), TSR_OK);
    ck_assert_str_eq(name, "vTwo");
    ck_assert_str_eq(value, "2");
    ck_assert_int_eq(tsr_engine_model_var(m, 2, &name, &value), TSR_ENOTFOUND);
    /* The app file carries them. */
    uint8_t *buf = NULL;
    size_t n = 0;
    tsr_error_t err = {0};
    ck_assert_int_eq(tsr_engine_app_save_mem(m, NULL, NULL, &buf, &n, &err), TSR_OK);
    tsr_engine_model_t *m2 = NULL;
    ck_assert_msg(tsr_engine_app_open_mem(buf, n, NULL, &m2, NULL, &err) == TSR_OK, "%s", err.msg);
    ck_assert_uint_eq(tsr_engine_model_var_count(m2), 2);
    ck_assert_int_eq(tsr_engine_model_var(m2, 1, &name, &value), TSR_OK);
    ck_assert_str_eq(name, "vTwo");
    ck_assert_str_eq(value, "2");
    tsr_engine_model_destroy(m2);
    free(buf);
    tsr_engine_model_destroy(m);
    /* A model without variables writes no section and reads back with none. */
    m = reload_ok("T: LOAD * INLINE [Id\n1];\n", NULL);
    ck_assert_uint_eq(tsr_engine_model_var_count(m), 0);
    ck_assert_int_eq(tsr_engine_app_save_mem(m, NULL, NULL, &buf, &n, &err), TSR_OK);
    ck_assert_int_eq(tsr_engine_app_open_mem(buf, n, NULL, &m2, NULL, &err), TSR_OK);
    ck_assert_uint_eq(tsr_engine_model_var_count(m2), 0);
    tsr_engine_model_destroy(m2);
    free(buf);
    tsr_engine_model_destroy(m);
}
END_TEST

START_TEST(test_script_comments_and_rem) {
    tsr_engine_model_t *m = reload_ok("// a comment; with a semicolon\n"
                                      "/* block; comment */\n"
                                      "REM nothing here;\n"
                                      "T: LOAD * INLINE [A\n1\n2]; // trailing\n",
                                      NULL);
    ck_assert_uint_eq(tsr_engine_model_table_rows(m, 0), 2);
    tsr_engine_model_destroy(m);
}
END_TEST

START_TEST(test_script_errors_carry_line_and_column) {
    reload_fails("T: LOAD * INLINE [A\n1];\n\nLOAD A,, B RESIDENT T;", NULL, TSR_EINVAL,
                 "line 4 column 8");
    reload_fails("T: LOAD * INLINE [A\n1];\nFOO bar;", NULL, TSR_EINVAL,
                 "line 3 column 1: unknown statement");
    reload_fails("LOAD X RESIDENT Nowhere;", NULL, TSR_EINVAL, "table Nowhere not found");
    reload_fails("LOAD * FROM [lib://DataFiles/../etc/passwd];", "/tmp", TSR_EINVAL,
                 "outside the data folder");
    reload_fails("LOAD * FROM [lib://DataFiles/none.csv];", "/tmp", TSR_EIO, "none.csv");
    reload_fails("CONCATENATE LOAD * INLINE [A\n1];", NULL, TSR_EINVAL, "without a previous");
    reload_fails("T: LOAD * INLINE [A\n1];\nU: LOAD A, Unknown(A) AS B RESIDENT T;", NULL,
                 TSR_EINVAL, "line 3 column 12: unknown function");
}
END_TEST

START_TEST(test_script_synthetic_key_and_loop_reported) {
    reload_fails("A: LOAD * INLINE [X, Y, P\n1, 2, 3];\nB: LOAD * INLINE [X, Y, Q\n1, 2, 4];", NULL,
                 TSR_EUNSUPPORTED, "synthetic key");
    reload_fails("A: LOAD * INLINE [X, Y\n1, 2];\nB: LOAD * INLINE [Y, Z\n2, 3];\n"
                 "C: LOAD * INLINE [Z, X\n3, 1];",
                 NULL, TSR_EUNSUPPORTED, "circular reference");
}
END_TEST

/* A file load's log line names the file as the script wrote it, never the server's path. */
START_TEST(test_script_reload_log_names_files_as_written) {
    char *dir = tmpdir_with("x.csv", "ID,Name\n1,a\n2,b\n");
    tsr_engine_model_t *m = NULL;
    tsr_error_t err = {0};
    char *log = NULL;
    const char *script = "T: LOAD * FROM [lib://DataFiles/x.csv];\n"
                         "Concatenate (T) LOAD * FROM [lib://DataFiles/x.csv];";
    tsr_engine_reload_opts_t opts = {.data_dir = dir};
    ck_assert_int_eq(tsr_engine_reload(script, strlen(script), &opts, &m, &log, &err), TSR_OK);
    ck_assert_msg(strstr(log, "T << lib://DataFiles/x.csv: 2 rows, 2 fields") != NULL, "%s", log);
    ck_assert_msg(strstr(log, "T << lib://DataFiles/x.csv: 2 rows (table now 4 rows") != NULL, "%s",
                  log);
    ck_assert_msg(strstr(log, dir) == NULL, "the log shows the data folder: %s", log);
    free(log);
    tsr_engine_model_destroy(m);
    rmdir_with(dir, "x.csv");
}
END_TEST

START_TEST(test_script_reload_log_lists_tables) {
    tsr_engine_model_t *m = NULL;
    tsr_error_t err;
    char *log = NULL;
    const char *script = "T: LOAD * INLINE [A, B\n1, 2\n3, 4];";
    ck_assert_int_eq(tsr_engine_reload(script, strlen(script), NULL, &m, &log, &err), TSR_OK);
    ck_assert_ptr_nonnull(strstr(log, "T << INLINE: 2 rows, 2 fields"));
    ck_assert_ptr_nonnull(strstr(log, "--- 1 tables, 2 fields"));
    free(log);
    tsr_engine_model_destroy(m);
}
END_TEST

/* ---- expressions through LET ---- */

static void let_is(const char *expr, const char *want) {
    char script[512];
    snprintf(script, sizeof script, "LET v = %s;\nT: LOAD '$(v)' AS R INLINE [A\n1];", expr);
    tsr_engine_model_t *m = reload_ok(script, NULL);
    char buf[64];
    ck_assert_msg(strcmp(cell_text(m, "T", "R", 0, buf, sizeof buf), want) == 0,
                  "%s gave %s, want %s", expr, buf, want);
    tsr_engine_model_destroy(m);
}

START_TEST(test_expr_nulls_text_numbers_division_by_zero) {
    let_is("1 + 2 * 3", "7");
    let_is("(1 + 2) * 3", "9");
    let_is("-2 - -3", "1");
    let_is("7 / 2", "3.5");
    let_is("If(1 / 0 = 0, 'zero', 'null')", "null"); /* x/0 is null; null = 0 is false */
    let_is("Alt(1 / 0, 'fallback')", "fallback");
    let_is("Alt('text', 5)", "5"); /* Alt takes the first number */
    let_is("'10' + 5", "15");      /* text that reads as a number */
    let_is("'abc' + 5", "");       /* not a number: null */
    let_is("'b' > 'a' AND 2 < 10", "-1");
    let_is("'10' = 10", "-1");
    let_is("NOT 0", "-1");
    let_is("Len('héllo')", "5");
    let_is("Upper('ab') & Lower('CD')", "ABcd");
    let_is("Year(MakeDate(2024, 2, 29))", "2024");
    let_is("Month(MakeDate(2024, 2, 29)) & Day(MakeDate(2024, 2, 29))", "Feb29");
    let_is("IsNull(Null())", "-1");
    let_is("Floor(2.7)", "2");
}
END_TEST

/* ---- selections and states ---- */

/* A chain of three tables A -(K1)- B -(K2)- C with dangling values at each link:
 * Dave's k4 is not in B, B's k5 is not in A, C's w is not in B. */
static tsr_engine_model_t *chain_model(void) {
    return reload_ok("A: LOAD * INLINE [Name, K1\nAlice, k1\nBob, k2\nCarol, k3\nDave, k4];\n"
                     "B: LOAD * INLINE [K1, K2\nk1, x\nk2, y\nk3, y\nk5, z];\n"
                     "C: LOAD * INLINE [K2, Color\nx, red\ny, blue\nw, green];\n",
                     NULL);
}

/* States of every value of `field` in load order, e.g. "Alice:S Bob:X". */
static void states_are(tsr_engine_state_t *st, const tsr_engine_model_t *m, const char *field,
                       const char *want) {
    size_t f = field_of(m, field);
    tsr_buf_t b;
    tsr_buf_init(&b, 0);
    for (size_t s = 0; s < tsr_engine_model_field_symbol_count(m, f); s++) {
        tsr_engine_dual_t d;
        tsr_engine_model_field_symbol(m, f, s, &d);
        tsr_buf_appendf(&b, "%s%.*s:%s", s ? " " : "", (int)d.text_len, d.text,
                        tsr_engine_vstate_name(tsr_engine_state_value(st, f, s)));
    }
    ck_assert_msg(strcmp(b.data, want) == 0, "%s: got '%s', want '%s'", field, b.data, want);
    tsr_buf_cleanup(&b);
}

static void select_texts(tsr_engine_selection_t *sel, const tsr_engine_model_t *m,
                         const char *field, const char *const *texts, size_t n) {
    tsr_error_t err;
    ck_assert_int_eq(
        tsr_engine_selection_select_text(sel, field_of(m, field), texts, n, false, &err), TSR_OK);
}

static tsr_engine_state_t *compute(const tsr_engine_model_t *m, const tsr_engine_selection_t *s) {
    tsr_engine_state_t *st = NULL;
    tsr_error_t err;
    ck_assert_int_eq(tsr_engine_state_compute(m, s, &st, &err), TSR_OK);
    return st;
}

START_TEST(test_state_no_selection_everything_possible) {
    tsr_engine_model_t *m = chain_model();
    tsr_engine_selection_t *sel = tsr_engine_selection_create(m);
    tsr_engine_state_t *st = compute(m, sel);
    states_are(st, m, "Name", "Alice:O Bob:O Carol:O Dave:O");
    states_are(st, m, "K1", "k1:O k2:O k3:O k4:O k5:O");
    states_are(st, m, "Color", "red:O blue:O green:O");
    tsr_engine_state_destroy(st);
    tsr_engine_selection_destroy(sel);
    tsr_engine_model_destroy(m);
}
END_TEST

START_TEST(test_state_chain_of_three_propagates_both_ways) {
    tsr_engine_model_t *m = chain_model();
    tsr_engine_selection_t *sel = tsr_engine_selection_create(m);
    select_texts(sel, m, "Color", (const char *const[]){"red"}, 1);
    tsr_engine_state_t *st = compute(m, sel);
    states_are(st, m, "Color", "red:S blue:A green:A");
    states_are(st, m, "K2", "x:O y:X z:X w:X");
    states_are(st, m, "K1", "k1:O k2:X k3:X k4:X k5:X");
    states_are(st, m, "Name", "Alice:O Bob:X Carol:X Dave:X");
    ck_assert_uint_eq(tsr_engine_state_table_rows(st, table_of(m, "B")), 1);
    tsr_engine_state_destroy(st);
    /* From the other end: Name = Bob, Carol reach blue only. */
    select_texts(sel, m, "Color", NULL, 0);
    select_texts(sel, m, "Name", (const char *const[]){"Bob", "Carol"}, 2);
    st = compute(m, sel);
    states_are(st, m, "Name", "Alice:A Bob:S Carol:S Dave:A");
    states_are(st, m, "K1", "k1:X k2:O k3:O k4:X k5:X");
    states_are(st, m, "K2", "x:X y:O z:X w:X");
    states_are(st, m, "Color", "red:X blue:O green:X");
    tsr_engine_state_destroy(st);
    tsr_engine_selection_destroy(sel);
    tsr_engine_model_destroy(m);
}
END_TEST

START_TEST(test_state_alternatives_in_the_selected_field) {
    tsr_engine_model_t *m = chain_model();
    tsr_engine_selection_t *sel = tsr_engine_selection_create(m);
    select_texts(sel, m, "Name", (const char *const[]){"Alice", "Bob"}, 2);
    tsr_engine_state_t *st = compute(m, sel);
    /* Nothing else is selected, so the other names are alternatives, not excluded. */
    states_are(st, m, "Name", "Alice:S Bob:S Carol:A Dave:A");
    states_are(st, m, "Color", "red:O blue:O green:X");
    states_are(st, m, "K1", "k1:O k2:O k3:X k4:X k5:X");
    tsr_engine_state_destroy(st);
    /* With Color = blue as well, Alice becomes selected-excluded; Carol stays an
     * alternative (possible without the Name selection), Dave is excluded; green is
     * excluded too: without the Color selection, Alice and Bob reach only red and blue. */
    select_texts(sel, m, "Color", (const char *const[]){"blue"}, 1);
    st = compute(m, sel);
    states_are(st, m, "Name", "Alice:XS Bob:S Carol:A Dave:X");
    states_are(st, m, "Color", "red:A blue:S green:X");
    tsr_engine_state_destroy(st);
    tsr_engine_selection_destroy(sel);
    tsr_engine_model_destroy(m);
}
END_TEST

START_TEST(test_state_conflicting_selections_all_excluded_selected) {
    tsr_engine_model_t *m = chain_model();
    tsr_engine_selection_t *sel = tsr_engine_selection_create(m);
    select_texts(sel, m, "Name", (const char *const[]){"Bob"}, 1);
    select_texts(sel, m, "Color", (const char *const[]){"red"}, 1);
    tsr_engine_state_t *st = compute(m, sel);
    states_are(st, m, "Name", "Alice:A Bob:XS Carol:X Dave:X");
    states_are(st, m, "Color", "red:XS blue:A green:X");
    states_are(st, m, "K1", "k1:X k2:X k3:X k4:X k5:X");
    for (size_t t = 0; t < 3; t++)
        ck_assert_uint_eq(tsr_engine_state_table_rows(st, t), 0);
    tsr_engine_state_destroy(st);
    tsr_engine_selection_destroy(sel);
    tsr_engine_model_destroy(m);
}
END_TEST

START_TEST(test_selection_toggle_clear_lock_back_forward) {
    tsr_engine_model_t *m = chain_model();
    tsr_engine_selection_t *sel = tsr_engine_selection_create(m);
    size_t f = field_of(m, "Name"), c = field_of(m, "Color");
    tsr_error_t err;
    ck_assert_int_eq(tsr_engine_selection_select(sel, f, (size_t[]){0, 1}, 2, true, &err), TSR_OK);
    ck_assert_int_eq(tsr_engine_selection_select(sel, f, (size_t[]){1, 2}, 2, true, &err), TSR_OK);
    ck_assert(tsr_engine_selection_is_selected(sel, f, 0));
    ck_assert(!tsr_engine_selection_is_selected(sel, f, 1));
    ck_assert(tsr_engine_selection_is_selected(sel, f, 2));
    ck_assert_int_eq(tsr_engine_selection_select(sel, f, (size_t[]){9}, 1, false, &err),
                     TSR_EINVAL);
    ck_assert_int_eq(tsr_engine_selection_back(sel), TSR_OK); /* to {0,1} */
    ck_assert(tsr_engine_selection_is_selected(sel, f, 1));
    ck_assert_int_eq(tsr_engine_selection_forward(sel), TSR_OK); /* to {0,2} */
    ck_assert(!tsr_engine_selection_is_selected(sel, f, 1));
    ck_assert_int_eq(tsr_engine_selection_forward(sel), TSR_ENOTFOUND);
    ck_assert_int_eq(tsr_engine_selection_lock(sel, f, true, &err), TSR_OK);
    ck_assert_int_eq(tsr_engine_selection_select(sel, f, (size_t[]){3}, 1, false, &err),
                     TSR_EPRECONDITION);
    ck_assert_int_eq(tsr_engine_selection_select(sel, c, (size_t[]){0}, 1, false, &err), TSR_OK);
    tsr_engine_selection_clear_all(sel); /* keeps the locked field */
    ck_assert(tsr_engine_selection_is_selected(sel, f, 0));
    ck_assert(!tsr_engine_selection_is_selected(sel, c, 0));
    ck_assert_int_eq(tsr_engine_selection_lock(sel, f, false, &err), TSR_OK);
    ck_assert_int_eq(tsr_engine_selection_clear_field(sel, f, &err), TSR_OK);
    ck_assert(!tsr_engine_selection_is_selected(sel, f, 0));
    tsr_engine_selection_destroy(sel);
    tsr_engine_model_destroy(m);
}
END_TEST

START_TEST(test_state_middle_key_selection_alternatives_and_selected_excluded) {
    tsr_engine_model_t *m = chain_model();
    tsr_engine_selection_t *sel = tsr_engine_selection_create(m);
    /* K2 links B and C: y reaches Bob and Carol through B, and blue through C. */
    select_texts(sel, m, "K2", (const char *const[]){"y"}, 1);
    tsr_engine_state_t *st = compute(m, sel);
    states_are(st, m, "Name", "Alice:X Bob:O Carol:O Dave:X");
    states_are(st, m, "K1", "k1:X k2:O k3:O k4:X k5:X");
    states_are(st, m, "K2", "x:A y:S z:A w:A");
    states_are(st, m, "Color", "red:X blue:O green:X");
    ck_assert_uint_eq(tsr_engine_state_table_rows(st, table_of(m, "B")), 2);
    tsr_engine_state_destroy(st);
    /* red needs K2 = x: the two selections exclude each other. Both selected values are XS;
     * each field's alternatives are what the other selection allows. */
    select_texts(sel, m, "Color", (const char *const[]){"red"}, 1);
    st = compute(m, sel);
    states_are(st, m, "Name", "Alice:X Bob:X Carol:X Dave:X");
    states_are(st, m, "K2", "x:A y:XS z:X w:X");
    states_are(st, m, "Color", "red:XS blue:A green:X");
    for (size_t t = 0; t < 3; t++)
        ck_assert_uint_eq(tsr_engine_state_table_rows(st, t), 0);
    tsr_engine_state_destroy(st);
    size_t got[4];
    ck_assert_uint_eq(tsr_engine_selection_selected(sel, field_of(m, "Color"), got, 4), 1);
    ck_assert_uint_eq(got[0], 0); /* red */
    ck_assert(!tsr_engine_selection_is_locked(sel, field_of(m, "Color")));
    /* Back one step: only K2 = y again. */
    ck_assert_int_eq(tsr_engine_selection_back(sel), TSR_OK);
    st = compute(m, sel);
    states_are(st, m, "Color", "red:X blue:O green:X");
    tsr_engine_state_destroy(st);
    tsr_engine_selection_destroy(sel);
    tsr_engine_model_destroy(m);
}
END_TEST

/* ---- more load-script statements ---- */

START_TEST(test_script_mapping_load_applymap_default_and_passthrough) {
    tsr_engine_model_t *m =
        reload_ok("CountryMap: MAPPING LOAD * INLINE [Code, Name\n"
                  "se, Sweden\nde, Germany\nse, Duplicate];\n"
                  "T: LOAD Code, ApplyMap('CountryMap', Code, 'Unknown') AS C,\n"
                  "   ApplyMap('CountryMap', Code) AS Raw\n"
                  "INLINE [Code\nse\nde\nxx];\n",
                  NULL);
    char buf[32];
    /* The mapping table is not part of the model. */
    ck_assert_uint_eq(tsr_engine_model_table_count(m), 1);
    ck_assert_str_eq(cell_text(m, "T", "C", 0, buf, sizeof buf), "Sweden");
    ck_assert_str_eq(cell_text(m, "T", "C", 1, buf, sizeof buf), "Germany");
    ck_assert_str_eq(cell_text(m, "T", "C", 2, buf, sizeof buf), "Unknown");
    ck_assert_str_eq(cell_text(m, "T", "Raw", 2, buf, sizeof buf), "xx");
    tsr_engine_model_destroy(m);
}
END_TEST

static size_t rows_of(const tsr_engine_model_t *m, const char *table) {
    return tsr_engine_model_table_rows(m, table_of(m, table));
}

START_TEST(test_script_left_inner_outer_right_join) {
    static const char *const base = "A: LOAD * INLINE [K, X\n1, a\n2, b\n3, c];\n";
    char script[512];
    static const struct {
        const char *kind;
        size_t rows;
    } cases[] = {{"LEFT", 4}, {"INNER", 3}, {"OUTER", 5}, {"RIGHT", 4}, {"", 5}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(script, sizeof script,
                 "%s%s JOIN (A) LOAD * INLINE [K, Y\n2, two\n3, three\n3, drei\n9, nine];\n", base,
                 cases[i].kind);
        tsr_engine_model_t *m = reload_ok(script, NULL);
        ck_assert_uint_eq(tsr_engine_model_table_count(m), 1);
        /* K=3 matches twice; LEFT keeps 1 with a null Y; OUTER also adds 9. */
        size_t want = cases[i].rows;
        ck_assert_msg(rows_of(m, "A") == want, "%s JOIN: %zu rows, want %zu", cases[i].kind,
                      rows_of(m, "A"), want);
        tsr_engine_model_destroy(m);
    }
    tsr_engine_model_t *m = reload_ok("A: LOAD * INLINE [K, X\n1, a\n2, b];\n"
                                      "LEFT JOIN LOAD * INLINE [K, Y\n2, two];\n",
                                      NULL);
    char buf[32];
    ck_assert_str_eq(cell_text(m, "A", "Y", 0, buf, sizeof buf), "<null>");
    ck_assert_str_eq(cell_text(m, "A", "Y", 1, buf, sizeof buf), "two");
    tsr_engine_model_destroy(m);
}
END_TEST

START_TEST(test_script_rename_qualify_unqualify) {
    tsr_engine_model_t *m = reload_ok("QUALIFY *;\nUNQUALIFY Key;\n"
                                      "Orders: LOAD * INLINE [Key, Name\n1, x];\n"
                                      "UNQUALIFY *;\n"
                                      "People: LOAD * INLINE [Key, Name\n1, y];\n"
                                      "RENAME TABLE People TO Persons;\n"
                                      "RENAME FIELD Name TO PersonName;\n",
                                      NULL);
    char buf[32];
    ck_assert_str_eq(cell_text(m, "Orders", "Orders.Name", 0, buf, sizeof buf), "x");
    ck_assert_str_eq(cell_text(m, "Orders", "Key", 0, buf, sizeof buf), "1");
    ck_assert_str_eq(cell_text(m, "Persons", "PersonName", 0, buf, sizeof buf), "y");
    tsr_engine_model_destroy(m);
    reload_fails("T: LOAD * INLINE [A, B\n1, 2];\nRENAME FIELD A TO B;\n", NULL, TSR_EINVAL,
                 "field B exists");
    reload_fails("RENAME TABLE Nope TO X;\n", NULL, TSR_EINVAL, "line 1 column");
}
END_TEST

START_TEST(test_script_store_then_load_roundtrip_and_distinct) {
    char *dir = tmpdir_with("unused.csv", "x\n1\n");
    tsr_engine_model_t *m = reload_ok("T: LOAD DISTINCT * INLINE [A, B\n1, \"x,y\"\n1, \"x,y\"\n"
                                      "2, z];\n"
                                      "STORE T INTO [lib://DataFiles/t.csv] (txt);\n"
                                      "DROP TABLE T;\n"
                                      "U: LOAD * FROM [lib://DataFiles/t.csv] (txt);\n",
                                      dir);
    char buf[32];
    ck_assert_uint_eq(rows_of(m, "U"), 2);
    ck_assert_str_eq(cell_text(m, "U", "B", 0, buf, sizeof buf), "x,y");
    tsr_engine_model_destroy(m);
    /* Our own table file: STORE into .tsrt, LOAD it back with aliases and WHERE. */
    m = reload_ok("T: LOAD * INLINE [A, B\n1, x\n2, y\n3, z];\n"
                  "STORE T INTO [lib://DataFiles/t.tsrt];\n"
                  "DROP TABLE T;\n"
                  "U: LOAD A AS X, B FROM [lib://DataFiles/t.tsrt] WHERE A >= 2;\n",
                  dir);
    ck_assert_uint_eq(rows_of(m, "U"), 2);
    ck_assert_str_eq(cell_text(m, "U", "X", 0, buf, sizeof buf), "2");
    ck_assert_str_eq(cell_text(m, "U", "B", 1, buf, sizeof buf), "z");
    tsr_engine_model_destroy(m);
    char path[256];
    snprintf(path, sizeof path, "%s/t.tsrt", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/t.csv", dir);
    unlink(path);
    rmdir_with(dir, "unused.csv");
}
END_TEST

START_TEST(test_expr_string_date_and_math_functions) {
    let_is("Left('abcdef', 2) & Right('abcdef', 2) & Mid('abcdef', 3, 2)", "abefcd");
    let_is("Mid('héllo', 2)", "éllo");
    let_is("'[' & Trim('  x  ') & ']'", "[x]");
    let_is("Date(MakeDate(2024, 3, 1) - 1)", "2024-02-29");
    let_is("Year(Date#('31/12/2023', 'DD/MM/YYYY'))", "2023");
    let_is("IsNull(Date#('31/02/2023', 'DD/MM/YYYY'))", "-1");
    let_is("Round(2.345, 0.01)", "2.35");
    let_is("Mod(-7, 3)", "2");
    let_is("Num('12.5') * 2", "25");
    let_is("Text(12) & 'x'", "12x");
    let_is("Ceil(1.2) + Fabs(-2)", "4");
    let_is("1 / 0", "");
    let_is("Null() + 1", "");
    let_is("If(Null() > 0, 'yes', 'no')", "no");
    let_is("'abc' < 'abd'", "-1");
    let_is("'2' < '10'", "-1"); /* both read as numbers */
}
END_TEST

/* ---- list objects and search ---- */

START_TEST(test_listobject_states_frequency_sort_and_paging) {
    tsr_engine_model_t *m = chain_model();
    tsr_engine_selection_t *sel = tsr_engine_selection_create(m);
    select_texts(sel, m, "Color", (const char *const[]){"blue"}, 1);
    tsr_engine_state_t *st = compute(m, sel);
    tsr_engine_listobject_def_t def = {
        .field = "Name", .sort_by_state = true, .by = TSR_ENGINE_SORT_TEXT, .frequency = true};
    tsr_engine_listobject_t *l = NULL;
    tsr_error_t err = {0};
    ck_assert_int_eq(tsr_engine_listobject_compute(m, st, &def, &l, &err), TSR_OK);
    ck_assert_uint_eq(tsr_engine_listobject_total_rows(l), 4);
    /* blue is reached by Bob (k2) and Carol (k3): O first, then X in text order. */
    static const char *const order[] = {"Bob", "Carol", "Alice", "Dave"};
    static const tsr_engine_vstate_t states[] = {TSR_ENGINE_O, TSR_ENGINE_O, TSR_ENGINE_X,
                                                 TSR_ENGINE_X};
    for (size_t i = 0; i < 4; i++) {
        tsr_engine_listobject_row_t row;
        tsr_engine_dual_t d;
        ck_assert_int_eq(tsr_engine_listobject_row(l, i, &row, &d), TSR_OK);
        ck_assert_int_eq((int)d.text_len, (int)strlen(order[i]));
        ck_assert(memcmp(d.text, order[i], d.text_len) == 0);
        ck_assert_int_eq(row.state, states[i]);
        ck_assert_uint_eq(row.frequency, states[i] == TSR_ENGINE_O ? 1 : 0);
    }
    size_t counts[5];
    tsr_engine_listobject_state_counts(l, counts);
    ck_assert_uint_eq(counts[TSR_ENGINE_O], 2);
    ck_assert_uint_eq(counts[TSR_ENGINE_X], 2);
    tsr_engine_listobject_destroy(l);
    /* A page of one row from the second, descending by text. */
    def = (tsr_engine_listobject_def_t){
        .field = "Name", .by = TSR_ENGINE_SORT_TEXT, .descending = true, .top = 1, .height = 1};
    ck_assert_int_eq(tsr_engine_listobject_compute(m, st, &def, &l, &err), TSR_OK);
    ck_assert_uint_eq(tsr_engine_listobject_rows(l), 1);
    tsr_engine_dual_t d;
    tsr_engine_listobject_row(l, 0, NULL, &d);
    ck_assert(d.text_len == 5 && memcmp(d.text, "Carol", 5) == 0);
    ck_assert_int_eq(tsr_engine_listobject_row(l, 1, NULL, &d), TSR_ENOTFOUND);
    tsr_engine_listobject_destroy(l);
    def.field = "Nope";
    ck_assert_int_eq(tsr_engine_listobject_compute(m, st, &def, &l, &err), TSR_ENOTFOUND);
    tsr_engine_state_destroy(st);
    tsr_engine_selection_destroy(sel);
    tsr_engine_model_destroy(m);
}
END_TEST

static size_t search_count(const tsr_engine_model_t *m, const char *field, const char *pat) {
    size_t *syms = NULL, n = 0;
    tsr_error_t err = {0};
    ck_assert_int_eq(tsr_engine_field_search(m, field_of(m, field), pat, &syms, &n, &err), TSR_OK);
    free(syms);
    return n;
}

START_TEST(test_search_wildcards_numeric_conditions_and_word_prefix) {
    tsr_engine_model_t *m = reload_ok("T: LOAD * INLINE [Name, N\nAlice Smith, 1\n"
                                      "Bob Alison, 5\nCarol, 10\nDave, 20];\n",
                                      NULL);
    ck_assert_uint_eq(search_count(m, "Name", "*li*"), 2);
    ck_assert_uint_eq(search_count(m, "Name", "a*"), 1);
    ck_assert_uint_eq(search_count(m, "Name", "?ave"), 1);
    ck_assert_uint_eq(search_count(m, "Name", "ali"), 2); /* word prefix: Alice, Alison */
    ck_assert_uint_eq(search_count(m, "Name", "smi"), 1);
    ck_assert_uint_eq(search_count(m, "N", ">=5"), 3);
    ck_assert_uint_eq(search_count(m, "N", ">1<20"), 2);
    ck_assert_uint_eq(search_count(m, "N", "=10"), 1);
    tsr_engine_selection_t *sel = tsr_engine_selection_create(m);
    tsr_error_t err = {0};
    ck_assert_int_eq(tsr_engine_selection_select_search(sel, field_of(m, "N"), ">=10", false, &err),
                     TSR_OK);
    tsr_engine_state_t *st = compute(m, sel);
    states_are(st, m, "Name", "Alice Smith:X Bob Alison:X Carol:O Dave:O");
    tsr_engine_state_destroy(st);
    ck_assert_int_eq(tsr_engine_selection_select_search(sel, field_of(m, "N"), "zzz", false, &err),
                     TSR_ENOTFOUND);
    tsr_engine_selection_destroy(sel);
    tsr_engine_model_destroy(m);
}
END_TEST

/* ---- hypercubes on a small model ---- */

static tsr_engine_model_t *shop_model(void) {
    return reload_ok("Facts: LOAD * INLINE [OrderID, ProdID, Qty, Price\n"
                     "1, p1, 2, 1.50\n1, p2, 1, 10\n2, p1, 3, 1.50\n3, p3, 1, 4.25\n"
                     "4, p2, , 10];\n"
                     "Products: LOAD * INLINE [ProdID, Category, ProdName\n"
                     "p1, Fruit, Apple\np2, Fruit, Banana\np3, Veg, Carrot\np4, Veg, Daikon];\n",
                     NULL);
}

static tsr_engine_hypercube_t *cube_ok(const tsr_engine_model_t *m, tsr_engine_state_t *st,
                                       const tsr_engine_hypercube_def_t *def) {
    tsr_engine_hypercube_t *c = NULL;
    tsr_error_t err = {0};
    ck_assert_msg(tsr_engine_hypercube_compute(m, st, def, &c, &err) == TSR_OK, "%s", err.msg);
    return c;
}

static double cell_num(const tsr_engine_hypercube_t *c, size_t r, size_t col) {
    tsr_engine_dual_t d;
    ck_assert_int_eq(tsr_engine_hypercube_cell(c, r, col, &d), TSR_OK);
    return d.is_num ? d.num : NAN;
}

static void cell_is(const tsr_engine_hypercube_t *c, size_t r, size_t col, const char *want) {
    tsr_engine_dual_t d;
    ck_assert_int_eq(tsr_engine_hypercube_cell(c, r, col, &d), TSR_OK);
    ck_assert_msg(d.text_len == strlen(want) && memcmp(d.text, want, d.text_len) == 0,
                  "cell %zu,%zu: %.*s, want %s", r, col, (int)d.text_len, d.text, want);
}

START_TEST(test_hypercube_aggregations_nulls_and_totals) {
    tsr_engine_model_t *m = shop_model();
    tsr_engine_selection_t *sel = tsr_engine_selection_create(m);
    tsr_engine_state_t *st = compute(m, sel);
    static const char *const dims[] = {"Category"};
    static const char *const meas[] = {"Sum(Qty*Price)",
                                       "Count(OrderID)",
                                       "Count(DISTINCT OrderID)",
                                       "Avg(Price)",
                                       "Min(Qty)",
                                       "Max(Qty)",
                                       "Only(Price)",
                                       "If(Sum(Qty) > 3, 1, 0)",
                                       "Sum(Qty) / 0",
                                       "Sum(Qty * 2 + 1)"};
    tsr_engine_hypercube_def_t def = {
        .dims = dims, .n_dims = 1, .measures = meas, .n_measures = 10};
    tsr_engine_hypercube_t *c = cube_ok(m, st, &def);
    ck_assert_uint_eq(tsr_engine_hypercube_rows(c), 2);
    cell_is(c, 0, 0, "Fruit");
    static const double fruit[] = {17.5, 4, 3, 5.75, 1, 3, NAN, 1, NAN, 15};
    static const double veg[] = {4.25, 1, 1, 4.25, 1, 1, 4.25, 0, NAN, 3};
    for (size_t j = 0; j < 10; j++) {
        double a = cell_num(c, 0, 1 + j), b = cell_num(c, 1, 1 + j);
        ck_assert_msg(isnan(fruit[j]) ? isnan(a) : fabs(a - fruit[j]) < 1e-9, "fruit %s: %g",
                      meas[j], a);
        ck_assert_msg(isnan(veg[j]) ? isnan(b) : fabs(b - veg[j]) < 1e-9, "veg %s: %g", meas[j], b);
    }
    double t;
    ck_assert_int_eq(tsr_engine_hypercube_total(c, 0, &t), TSR_OK);
    ck_assert_double_eq_tol(t, 21.75, 1e-9);
    ck_assert_int_eq(tsr_engine_hypercube_total(c, 2, &t), TSR_OK);
    ck_assert_double_eq(t, 4);
    tsr_engine_hypercube_destroy(c);
    /* No dimension: one row of measures (a KPI). */
    def = (tsr_engine_hypercube_def_t){.measures = meas, .n_measures = 3};
    c = cube_ok(m, st, &def);
    ck_assert_uint_eq(tsr_engine_hypercube_rows(c), 1);
    ck_assert_double_eq_tol(cell_num(c, 0, 0), 21.75, 1e-9);
    ck_assert_double_eq(cell_num(c, 0, 2), 4);
    tsr_engine_hypercube_destroy(c);
    /* Errors: an unknown field, a bad expression, a field outside an aggregation. */
    tsr_error_t err = {0};
    static const char *const bad_dim[] = {"Nope"};
    def = (tsr_engine_hypercube_def_t){
        .dims = bad_dim, .n_dims = 1, .measures = meas, .n_measures = 1};
    ck_assert_int_eq(tsr_engine_hypercube_compute(m, st, &def, &c, &err), TSR_ENOTFOUND);
    static const char *const bad_meas[] = {"Sum(Qty"};
    def = (tsr_engine_hypercube_def_t){
        .dims = dims, .n_dims = 1, .measures = bad_meas, .n_measures = 1};
    ck_assert_int_eq(tsr_engine_hypercube_compute(m, st, &def, &c, &err), TSR_EINVAL);
    static const char *const naked[] = {"Qty"};
    def.measures = naked;
    ck_assert_int_eq(tsr_engine_hypercube_compute(m, st, &def, &c, &err), TSR_EUNSUPPORTED);
    tsr_engine_state_destroy(st);
    tsr_engine_selection_destroy(sel);
    tsr_engine_model_destroy(m);
}
END_TEST

START_TEST(test_hypercube_two_dims_sort_by_measure_paging_and_selection) {
    tsr_engine_model_t *m = shop_model();
    tsr_engine_selection_t *sel = tsr_engine_selection_create(m);
    tsr_engine_state_t *st = compute(m, sel);
    static const char *const dims[] = {"ProdName", "Category"};
    static const char *const meas[] = {"Sum(Qty*Price)"};
    static const tsr_engine_sort_t by_sales[] = {{2, TSR_ENGINE_SORT_DEFAULT, true}};
    tsr_engine_hypercube_def_t def = {.dims = dims,
                                      .n_dims = 2,
                                      .measures = meas,
                                      .n_measures = 1,
                                      .sort = by_sales,
                                      .n_sort = 1};
    tsr_engine_hypercube_t *c = cube_ok(m, st, &def);
    /* Daikon has no facts: suppressed. */
    ck_assert_uint_eq(tsr_engine_hypercube_total_rows(c), 3);
    cell_is(c, 0, 0, "Banana");
    cell_is(c, 0, 1, "Fruit");
    cell_is(c, 1, 0, "Apple");
    cell_is(c, 2, 0, "Carrot");
    cell_is(c, 2, 1, "Veg");
    tsr_engine_hypercube_destroy(c);
    def.top = 1;
    def.height = 1;
    c = cube_ok(m, st, &def);
    ck_assert_uint_eq(tsr_engine_hypercube_rows(c), 1);
    cell_is(c, 0, 0, "Apple");
    ck_assert_double_eq_tol(cell_num(c, 0, 2), 7.5, 1e-9);
    tsr_engine_hypercube_destroy(c);
    tsr_engine_state_destroy(st);
    /* Selecting Fruit leaves Apple and Banana; a text sort of ProdName descending. */
    select_texts(sel, m, "Category", (const char *const[]){"Fruit"}, 1);
    st = compute(m, sel);
    static const tsr_engine_sort_t by_name[] = {{0, TSR_ENGINE_SORT_TEXT, true}};
    def = (tsr_engine_hypercube_def_t){
        .dims = dims, .n_dims = 2, .measures = meas, .n_measures = 1, .sort = by_name, .n_sort = 1};
    c = cube_ok(m, st, &def);
    ck_assert_uint_eq(tsr_engine_hypercube_rows(c), 2);
    cell_is(c, 0, 0, "Banana");
    cell_is(c, 1, 0, "Apple");
    tsr_engine_hypercube_destroy(c);
    tsr_engine_state_destroy(st);
    tsr_engine_selection_destroy(sel);
    tsr_engine_model_destroy(m);
}
END_TEST

START_TEST(test_hypercube_set_analysis_and_total) {
    tsr_engine_model_t *m = shop_model();
    tsr_engine_selection_t *sel = tsr_engine_selection_create(m);
    select_texts(sel, m, "Category", (const char *const[]){"Fruit"}, 1);
    tsr_engine_state_t *st = compute(m, sel);
    static const char *const dims[] = {"ProdName"};
    static const char *const meas[] = {"Sum(Qty)",
                                       "Sum({1} Qty)",
                                       "Sum({<Category=>} Qty)",
                                       "Sum(TOTAL Qty)",
                                       "Sum({$<ProdName={'Apple'}>} Qty)",
                                       "Count({<Qty={\">=2\"}>} OrderID)",
                                       "Sum({1<Category={'Veg'}>} Qty)"};
    tsr_engine_hypercube_def_t def = {.dims = dims, .n_dims = 1, .measures = meas, .n_measures = 7};
    tsr_engine_hypercube_t *c = cube_ok(m, st, &def);
    /* Carrot is excluded by the selection: no row even though {1} reaches it. */
    ck_assert_uint_eq(tsr_engine_hypercube_rows(c), 2);
    cell_is(c, 0, 0, "Apple");
    cell_is(c, 1, 0, "Banana");
    static const double apple[] = {5, 5, 5, 6, 5, 2, 0};
    static const double banana[] = {1, 1, 1, 6, 0, 0, 0};
    for (size_t j = 0; j < 7; j++) {
        ck_assert_msg(fabs(cell_num(c, 0, 1 + j) - apple[j]) < 1e-9, "Apple %s: %g", meas[j],
                      cell_num(c, 0, 1 + j));
        ck_assert_msg(fabs(cell_num(c, 1, 1 + j) - banana[j]) < 1e-9, "Banana %s: %g", meas[j],
                      cell_num(c, 1, 1 + j));
    }
    tsr_engine_hypercube_destroy(c);
    /* Bad set expressions are parse errors; an unknown field in a modifier is not found. */
    tsr_error_t err = {0};
    static const char *const bad[] = {"Sum({<Category={'Fruit'} Qty)"};
    def = (tsr_engine_hypercube_def_t){.dims = dims, .n_dims = 1, .measures = bad, .n_measures = 1};
    ck_assert_int_eq(tsr_engine_hypercube_compute(m, st, &def, &c, &err), TSR_EINVAL);
    static const char *const unknown[] = {"Sum({<Nope={'x'}>} Qty)"};
    def.measures = unknown;
    ck_assert_int_eq(tsr_engine_hypercube_compute(m, st, &def, &c, &err), TSR_ENOTFOUND);
    tsr_engine_state_destroy(st);
    tsr_engine_selection_destroy(sel);
    tsr_engine_model_destroy(m);
}
END_TEST

/* ---- app files, result cache, model slots ---- */

static tsr_err_t xor_seal(void *ctx, const uint8_t *in, size_t n, uint8_t **out, size_t *out_n) {
    uint8_t key = *(const uint8_t *)ctx;
    *out = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        (*out)[i] = in[i] ^ key;
    *out_n = n;
    return TSR_OK;
}

START_TEST(test_appfile_roundtrip_sealed_and_corruption_is_an_error) {
    tsr_engine_model_t *m = shop_model();
    static const char script[] = "Facts: LOAD ...;";
    tsr_engine_app_meta_t meta = {.script = script,
                                  .script_len = strlen(script),
                                  .reload_log = "log",
                                  .reload_log_len = 3,
                                  .objects = "{\"objects\":[]}",
                                  .objects_len = 14};
    uint8_t key = 0x5A;
    tsr_engine_appfile_opts_t opts = {.seal = xor_seal, .unseal = xor_seal, .ctx = &key};
    uint8_t *buf = NULL;
    size_t n = 0;
    tsr_error_t err = {0};
    ck_assert_int_eq(tsr_engine_app_save_mem(m, &meta, &opts, &buf, &n, &err), TSR_OK);
    tsr_engine_model_t *m2 = NULL;
    tsr_engine_app_contents_t ct;
    ck_assert_msg(tsr_engine_app_open_mem(buf, n, &opts, &m2, &ct, &err) == TSR_OK, "%s", err.msg);
    ck_assert_str_eq(ct.script, script);
    ck_assert_str_eq(ct.objects, "{\"objects\":[]}");
    tsr_engine_app_contents_cleanup(&ct);
    /* Same model: tables, symbols, and the same answers. */
    ck_assert_uint_eq(tsr_engine_model_table_count(m2), 2);
    ck_assert_uint_eq(tsr_engine_model_field_count(m2), tsr_engine_model_field_count(m));
    tsr_engine_selection_t *sel = tsr_engine_selection_create(m2);
    select_texts(sel, m2, "Category", (const char *const[]){"Veg"}, 1);
    tsr_engine_state_t *st = compute(m2, sel);
    /* Daikon has no facts: once anything is selected, the full reduction excludes it. */
    states_are(st, m2, "ProdName", "Apple:X Banana:X Carrot:O Daikon:X");
    tsr_engine_state_destroy(st);
    tsr_engine_selection_destroy(sel);
    tsr_engine_model_destroy(m2);
    /* Sealed without a key: refused. */
    ck_assert_int_eq(tsr_engine_app_open_mem(buf, n, NULL, &m2, NULL, &err), TSR_EPRECONDITION);
    /* Every truncation and many single-byte flips are errors, never crashes. */
    for (size_t cut = 0; cut < n; cut += 1 + n / 64) {
        ck_assert_int_ne(tsr_engine_app_open_mem(buf, cut, &opts, &m2, NULL, &err), TSR_OK);
        ck_assert_ptr_null(m2);
    }
    for (size_t i = 0; i < n; i += 1 + n / 97) {
        buf[i] ^= 0x41;
        tsr_err_t rc = tsr_engine_app_open_mem(buf, n, &opts, &m2, NULL, &err);
        ck_assert(rc != TSR_OK || m2 != NULL);
        tsr_engine_model_destroy(m2);
        buf[i] ^= 0x41;
    }
    free(buf);
    /* Unsealed, through a file. */
    char tmpl[] = "/tmp/tsr-engine-app-XXXXXX";
    char *dir = mkdtemp(tmpl);
    char path[256];
    snprintf(path, sizeof path, "%s/app.tsra", dir);
    ck_assert_int_eq(tsr_engine_app_save(m, NULL, path, NULL, &err), TSR_OK);
    ck_assert_int_eq(tsr_engine_app_open(path, NULL, &m2, NULL, &err), TSR_OK);
    ck_assert_uint_eq(tsr_engine_model_table_rows(m2, table_of(m2, "Facts")), 5);
    tsr_engine_model_destroy(m2);
    unlink(path);
    rmdir(dir);
    tsr_engine_model_destroy(m);
}
END_TEST

START_TEST(test_cache_repeat_hits_and_selection_change_misses) {
    tsr_engine_model_t *m = shop_model();
    tsr_engine_cache_t *cache = tsr_engine_cache_create(1 << 20);
    tsr_engine_selection_t *sel = tsr_engine_selection_create(m);
    static const char *const dims[] = {"Category"};
    static const char *const meas[] = {"Sum(Qty*Price)"};
    tsr_engine_hypercube_def_t def = {.dims = dims, .n_dims = 1, .measures = meas, .n_measures = 1};
    tsr_error_t err = {0};
    for (int i = 0; i < 3; i++) {
        tsr_engine_state_t *st = compute(m, sel);
        tsr_engine_hypercube_t *c = NULL;
        ck_assert_int_eq(tsr_engine_hypercube_compute_cached(cache, m, st, &def, &c, &err), TSR_OK);
        ck_assert_double_eq_tol(cell_num(c, 0, 1), i < 2 ? 17.5 : 10, 1e-9);
        tsr_engine_hypercube_destroy(c);
        tsr_engine_listobject_def_t ld = {.field = "ProdName"};
        tsr_engine_listobject_t *l = NULL;
        ck_assert_int_eq(tsr_engine_listobject_compute_cached(cache, m, st, &ld, &l, &err), TSR_OK);
        ck_assert_uint_eq(tsr_engine_listobject_rows(l), 4);
        tsr_engine_listobject_destroy(l);
        tsr_engine_state_destroy(st);
        if (i == 1)
            select_texts(sel, m, "ProdName", (const char *const[]){"Banana"}, 1);
    }
    uint64_t hits, misses;
    size_t bytes;
    tsr_engine_cache_stats(cache, &hits, &misses, &bytes);
    ck_assert_uint_eq(hits, 2);
    ck_assert_uint_eq(misses, 4);
    ck_assert_uint_gt(bytes, 0);
    tsr_engine_selection_destroy(sel);
    tsr_engine_cache_destroy(cache);
    /* A tiny cache keeps nothing and still answers. */
    cache = tsr_engine_cache_create(16);
    sel = tsr_engine_selection_create(m);
    tsr_engine_state_t *st = compute(m, sel);
    tsr_engine_hypercube_t *c = NULL;
    ck_assert_int_eq(tsr_engine_hypercube_compute_cached(cache, m, st, &def, &c, &err), TSR_OK);
    tsr_engine_hypercube_destroy(c);
    tsr_engine_cache_stats(cache, &hits, &misses, &bytes);
    ck_assert_uint_eq(bytes, 0);
    tsr_engine_state_destroy(st);
    tsr_engine_selection_destroy(sel);
    tsr_engine_cache_destroy(cache);
    tsr_engine_model_destroy(m);
}
END_TEST

START_TEST(test_slot_swap_keeps_readers_on_the_old_model) {
    tsr_engine_slot_t *slot = tsr_engine_slot_create();
    ck_assert_ptr_null(tsr_engine_slot_get(slot));
    tsr_engine_model_t *a = shop_model(), *b = chain_model();
    tsr_engine_slot_swap(slot, a);
    tsr_engine_model_t *reader = tsr_engine_slot_get(slot);
    ck_assert_ptr_eq(reader, a);
    tsr_engine_slot_swap(slot, b); /* a stays alive for the reader */
    ck_assert_uint_eq(tsr_engine_model_table_count(reader), 2);
    tsr_engine_model_release(reader);
    tsr_engine_model_t *now = tsr_engine_slot_get(slot);
    ck_assert_ptr_eq(now, b);
    tsr_engine_model_release(now);
    tsr_engine_slot_destroy(slot);
}
END_TEST

/* ---- Sales generator (SALES_MODEL.md §1.3) ---- */

static bool small_only(void) {
    const char *v = getenv("TSR_ENGINE_TEST_SMALL");
    return v != NULL && v[0] == '1';
}

/* Q5, Q5b and Q6 of SALES_MODEL.md §2.1 at N = 1,600,000. */
static void sales_states_match_reference(const tsr_engine_model_t *m) {
    tsr_engine_selection_t *sel = tsr_engine_selection_create(m);
    /* Q5: Category 07 selected: all 50 countries possible. */
    select_texts(sel, m, "Category", (const char *const[]){"Category 07"}, 1);
    tsr_engine_state_t *st = compute(m, sel);
    size_t country = field_of(m, "Country");
    for (size_t s = 0; s < 50; s++)
        ck_assert_int_eq(tsr_engine_state_value(st, country, s), TSR_ENGINE_O);
    tsr_engine_state_destroy(st);
    /* Q5b: CustomerID 50000: X for categories 00,02,03,05,07,08,10,11,13, O otherwise. */
    tsr_engine_selection_clear_all(sel);
    select_texts(sel, m, "CustomerID", (const char *const[]){"50000"}, 1);
    st = compute(m, sel);
    size_t cat = field_of(m, "Category");
    for (int k = 0; k < 20; k++) {
        char name[32];
        size_t sym;
        snprintf(name, sizeof name, "Category %02d", k);
        ck_assert_int_eq(tsr_engine_model_field_symbol_find(m, cat, name, strlen(name), &sym),
                         TSR_OK);
        bool x = k == 0 || k == 2 || k == 3 || k == 5 || k == 7 || k == 8 || k == 10 || k == 11 ||
                 k == 13;
        ck_assert_msg(tsr_engine_state_value(st, cat, sym) == (x ? TSR_ENGINE_X : TSR_ENGINE_O),
                      "%s", name);
    }
    tsr_engine_state_destroy(st);
    /* Q6: Year 2022, YearMonth 2022-03/04, Country 03/17: S S, other 2022 months A, rest X. */
    tsr_engine_selection_clear_all(sel);
    select_texts(sel, m, "Year", (const char *const[]){"2022"}, 1);
    select_texts(sel, m, "YearMonth", (const char *const[]){"2022-03", "2022-04"}, 2);
    select_texts(sel, m, "Country", (const char *const[]){"Country 03", "Country 17"}, 2);
    st = compute(m, sel);
    size_t ym = field_of(m, "YearMonth");
    size_t n_s = 0, n_a = 0, n_x = 0;
    ck_assert_uint_eq(tsr_engine_model_field_symbol_count(m, ym), 60);
    for (size_t s = 0; s < 60; s++) {
        tsr_engine_dual_t d;
        tsr_engine_model_field_symbol(m, ym, s, &d);
        tsr_engine_vstate_t v = tsr_engine_state_value(st, ym, s);
        bool y2022 = memcmp(d.text, "2022-", 5) == 0;
        bool picked =
            y2022 && (memcmp(d.text + 5, "03", 2) == 0 || memcmp(d.text + 5, "04", 2) == 0);
        if (picked) {
            ck_assert_int_eq(v, TSR_ENGINE_S);
            n_s++;
        } else if (y2022) {
            ck_assert_int_eq(v, TSR_ENGINE_A);
            n_a++;
        } else {
            ck_assert_int_eq(v, TSR_ENGINE_X);
            n_x++;
        }
    }
    ck_assert_uint_eq(n_s, 2);
    ck_assert_uint_eq(n_a, 10);
    ck_assert_uint_eq(n_x, 48);
    tsr_engine_state_destroy(st);
    tsr_engine_selection_destroy(sel);
}

/* Q1–Q7 of SALES_MODEL.md §2.1 at N = 1,600,000, exactly (2-decimal text). */
static void sales_answers_match_reference(const tsr_engine_model_t *m) {
    static const char *const q1[8] = {"1077635925.38", "675449170.61", "566947664.52",
                                      "516859095.66",  "491572268.48", "451911790.71",
                                      "444731937.88",  "432695004.02"};
    static const char *const q2[20] = {"15508877.96", "12067047.92", "12034938.33", "10501311.92",
                                       "13584467.59", "10944656.25", "11865435.12", "15908585.90",
                                       "10431418.58", "10575520.46", "12636770.85", "13284233.28",
                                       "11060744.19", "13701523.34", "15239828.92", "12838467.63",
                                       "12374360.91", "12177041.61", "12188368.23", "11408887.03"};
    static const int q3[5] = {48537, 48409, 48756, 48657, 48810};
    static const char *const q4 = "1,Product 0001,2431300.22\n4,Product 0004,816564.40\n"
                                  "9,Product 0009,589222.59\n6,Product 0006,562671.20\n"
                                  "11,Product 0011,516995.70\n13,Product 0013,451388.36\n"
                                  "5,Product 0005,405219.99\n18,Product 0018,393223.38\n"
                                  "3,Product 0003,325240.63\n20,Product 0020,306812.94";
    tsr_buf_t want[TSR_SALESQ_COUNT];
    for (int q = 0; q < TSR_SALESQ_COUNT; q++)
        tsr_buf_init(&want[q], 0);
    for (int k = 0; k < 8; k++)
        tsr_buf_appendf(&want[0], "%sRegion %d,%s", k ? "\n" : "", k, q1[k]);
    for (int k = 0; k < 20; k++)
        tsr_buf_appendf(&want[1], "%sCategory %02d,%s", k ? "\n" : "", k, q2[k]);
    for (int k = 0; k < 5; k++)
        tsr_buf_appendf(&want[2], "%s%d,%d", k ? "\n" : "", 2020 + k, q3[k]);
    tsr_buf_append_str(&want[3], q4);
    for (int k = 0; k < 50; k++)
        tsr_buf_appendf(&want[4], "%sCountry %02d,O", k ? "\n" : "", k);
    for (int k = 0; k < 20; k++) {
        bool x = k == 0 || k == 2 || k == 3 || k == 5 || k == 7 || k == 8 || k == 10 || k == 11 ||
                 k == 13;
        tsr_buf_appendf(&want[5], "%sCategory %02d,%s", k ? "\n" : "", k, x ? "X" : "O");
    }
    for (int y = 2020; y <= 2024; y++) {
        for (int mo = 1; mo <= 12; mo++) {
            const char *v = y != 2022 ? "X" : (mo == 3 || mo == 4) ? "S" : "A";
            tsr_buf_appendf(&want[6], "%s%d-%02d,%s", y == 2020 && mo == 1 ? "" : "\n", y, mo, v);
        }
    }
    for (int q = 0; q < TSR_SALESQ_COUNT; q++) {
        char *got = NULL;
        tsr_error_t err = {0};
        ck_assert_msg(tsr_salesq_run(m, q, &got, &err) == TSR_OK, "%s: %s", tsr_salesq_names[q],
                      err.msg);
        if (q == 7) {
            /* Q7: 1,200 rows, their MD5 and their total. */
            char hex[33];
            tsr_salesgen_md5_buf(got, strlen(got), hex);
            ck_assert_str_eq(hex, "37ff7582135a5108d3a57d60c5c0e2df");
            size_t lines = 1;
            for (const char *p = got; *p; p++)
                lines += *p == '\n';
            ck_assert_uint_eq(lines, 1200);
        } else {
            ck_assert_msg(strcmp(got, want[q].data) == 0, "%s: got\n%s\nwant\n%s",
                          tsr_salesq_names[q], got, want[q].data);
        }
        free(got);
        tsr_buf_cleanup(&want[q]);
    }
    /* Q7's grand total and Σ Quantity (§1.3) through hypercube totals. */
    tsr_engine_selection_t *sel = tsr_engine_selection_create(m);
    tsr_engine_state_t *st = compute(m, sel);
    static const char *const dims[] = {"YearMonth", "Category"};
    static const char *const meas[] = {"Sum(Quantity*UnitPrice)", "Sum(Quantity)",
                                       "Count(DISTINCT OrderID)"};
    tsr_engine_hypercube_def_t def = {
        .dims = dims, .n_dims = 2, .measures = meas, .n_measures = 3, .height = 5};
    tsr_engine_hypercube_t *c = NULL;
    tsr_error_t err = {0};
    ck_assert_msg(tsr_engine_hypercube_compute(m, st, &def, &c, &err) == TSR_OK, "%s", err.msg);
    ck_assert_uint_eq(tsr_engine_hypercube_total_rows(c), 1200);
    ck_assert_uint_eq(tsr_engine_hypercube_rows(c), 5);
    double total;
    char buf[64];
    ck_assert_int_eq(tsr_engine_hypercube_total(c, 0, &total), TSR_OK);
    snprintf(buf, sizeof buf, "%.2f", total);
    ck_assert_str_eq(buf, "4657802857.26");
    ck_assert_int_eq(tsr_engine_hypercube_total(c, 1, &total), TSR_OK);
    ck_assert_double_eq(total, 8801388);
    ck_assert_int_eq(tsr_engine_hypercube_total(c, 2, &total), TSR_OK);
    ck_assert_double_eq(total, 400198);
    tsr_engine_hypercube_destroy(c);
    tsr_engine_state_destroy(st);
    tsr_engine_selection_destroy(sel);
}

START_TEST(test_salesgen_dimension_md5_match_reference) {
    char tmpl[] = "/tmp/tsr-engine-gen-XXXXXX";
    char *dir = mkdtemp(tmpl);
    ck_assert_ptr_nonnull(dir);
    uint64_t rows = small_only() ? 1000 : 1600000;
    ck_assert_int_eq(tsr_salesgen_write_dir(dir, rows, 42), 0);
    static const char *const names[4] = {"Customers.csv", "Products.csv", "Calendar.csv",
                                         "Sales.csv"};
    static const char *const md5s[4] = {
        "bff66fd40cb04214f48fda7dd53b280f", "9f4c3f58e7279ca0eeaebcf8e38c1c70",
        "524090f62180d95fe042a503635ea778", "c4f86d963cad2d37aaffaec8b2e94dd3"};
    for (int i = 0; i < 4; i++) {
        char path[256], hex[33];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        ck_assert_int_eq(tsr_salesgen_md5_file(path, hex), 0);
        if (i < 3 || rows == 1600000)
            ck_assert_str_eq(hex, md5s[i]);
    }
    /* First lines as quoted in the model document. */
    char path[256], line[128];
    snprintf(path, sizeof path, "%s/Sales.csv", dir);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    ck_assert_str_eq(line, "1,2024-08-04,26,295,7,529.92,0.05\n");
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    ck_assert_str_eq(line, "1,2024-08-04,26,514,8,137.79,0.00\n");
    fclose(f);

    if (rows == 1600000) {
        /* Load through a script and check the model's statistics (§1.3 and footprint). */
        tsr_engine_model_t *m =
            reload_ok("Customers: LOAD * FROM [lib://DataFiles/Customers.csv];\n"
                      "Products: LOAD * FROM [lib://DataFiles/Products.csv];\n"
                      "Calendar: LOAD * FROM [lib://DataFiles/Calendar.csv];\n"
                      "Sales: LOAD * FROM [lib://DataFiles/Sales.csv];\n",
                      dir);
        ck_assert_uint_eq(tsr_engine_model_table_rows(m, table_of(m, "Sales")), 1600000);
        ck_assert_uint_eq(tsr_engine_model_field_symbol_count(m, field_of(m, "OrderID")), 400198);
        /* CustomerID's symbols come from Customers (100,000); Sales uses 93,946 of them. */
        ck_assert_uint_eq(tsr_engine_model_field_symbol_count(m, field_of(m, "CustomerID")),
                          100000);
        ck_assert_uint_eq(tsr_engine_model_field_symbol_count(m, field_of(m, "UnitPrice")), 22306);
        ck_assert_uint_eq(tsr_engine_model_field_symbol_count(m, field_of(m, "OrderDate")), 1827);
        ck_assert_uint_eq(tsr_engine_model_field_symbol_count(m, field_of(m, "Country")), 50);
        ck_assert_uint_eq(tsr_engine_model_field_symbol_count(m, field_of(m, "SubCategory")), 200);
        ck_assert_uint_eq(tsr_engine_model_field_symbol_count(m, field_of(m, "ListPrice")), 4886);
        size_t st = table_of(m, "Sales");
        unsigned bits = 0;
        for (size_t c = 0; c < tsr_engine_model_table_field_count(m, st); c++)
            bits += tsr_engine_model_table_field_bits(m, st, c);
        /* 82 bits/row at 1.6M counting distinct values; CustomerID's field holds all
         * 100,000 customers (17 bits either way). */
        ck_assert_uint_eq(bits, 82);
        sales_states_match_reference(m);
        sales_answers_match_reference(m);
        tsr_engine_model_destroy(m);
    }
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}
END_TEST

/* ---- run-length inverted indexes (index.c): identical answers with and without ---- */

static uint32_t lcg_next(uint64_t *x) {
    *x = *x * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)(*x >> 33);
}

/* A snowflake whose fact rows come in orders (per-order customer and date), with a few long
 * orders (runs over several words) and a few null keys. */
static tsr_engine_model_t *runs_model(uint64_t seed) {
    tsr_engine_model_t *m = tsr_engine_model_create();
    tsr_error_t err = {0};
    tsr_buf_t b;
    tsr_buf_init(&b, 0);
    tsr_buf_appendf(&b, "CustomerID,Country\n");
    for (int c = 1; c <= 60; c++)
        tsr_buf_appendf(&b, "%d,C%d\n", c, c % 7);
    ck_assert(tsr_engine_model_load_csv_mem(m, "Customers", b.data, b.len, NULL, &err) == TSR_OK);
    b.len = 0;
    tsr_buf_appendf(&b, "Country,Region\n");
    for (int c = 0; c < 7; c++)
        tsr_buf_appendf(&b, "C%d,R%d\n", c, c % 3);
    ck_assert(tsr_engine_model_load_csv_mem(m, "Countries", b.data, b.len, NULL, &err) == TSR_OK);
    b.len = 0;
    tsr_buf_appendf(&b, "OrderDate,Year,Month\n");
    for (int d = 0; d < 40; d++)
        tsr_buf_appendf(&b, "D%02d,%d,%d\n", d, 2020 + d / 12, 1 + d % 12);
    ck_assert(tsr_engine_model_load_csv_mem(m, "Calendar", b.data, b.len, NULL, &err) == TSR_OK);
    b.len = 0;
    tsr_buf_appendf(&b, "ProductID,Category\n");
    for (int p = 1; p <= 30; p++)
        tsr_buf_appendf(&b, "%d,K%d\n", p, p % 5);
    ck_assert(tsr_engine_model_load_csv_mem(m, "Products", b.data, b.len, NULL, &err) == TSR_OK);
    b.len = 0;
    tsr_buf_appendf(&b, "OrderID,OrderDate,CustomerID,ProductID,Quantity\n");
    uint64_t x = seed;
    for (int o = 1, rows = 0; rows < 6000; o++) {
        uint32_t r = lcg_next(&x);
        int lines = r % 50 == 0 ? 70 + (int)(r % 130) : 1 + (int)(r % 7);
        uint32_t cu = lcg_next(&x) % 64, da = lcg_next(&x) % 42; /* some keys without a row */
        for (int l = 0; l < lines; l++, rows++) {
            char cust[16] = "", date[16] = "";
            if (cu < 61)
                snprintf(cust, sizeof cust, "%u", cu == 0 ? 1 : cu);
            if (da < 41)
                snprintf(date, sizeof date, "D%02u", da);
            tsr_buf_appendf(&b, "%d,%s,%s,%u,%u\n", o, date, cust, 1 + lcg_next(&x) % 31,
                            1 + lcg_next(&x) % 9);
        }
    }
    ck_assert(tsr_engine_model_load_csv_mem(m, "Sales", b.data, b.len, NULL, &err) == TSR_OK);
    tsr_buf_cleanup(&b);
    size_t old = tsr_engine__index_min_rows;
    tsr_engine__index_min_rows = 1000;
    ck_assert_msg(tsr_engine_model_finalize(m, &err) == TSR_OK, "%s", err.msg);
    tsr_engine__index_min_rows = old;
    return m;
}

/* Everything a selection shows: every value's state, rows per table, a cube's cells. */
static char *state_dump(const tsr_engine_model_t *m, const tsr_engine_selection_t *sel) {
    tsr_engine_state_t *st = compute(m, sel);
    tsr_buf_t b;
    tsr_buf_init(&b, 0);
    /* Cube first: it asks for the fact table's rows before any field's states. */
    static const char *const qty[] = {"Sum(Quantity)", "Count(DISTINCT OrderID)"};
    tsr_engine_hypercube_def_t d = {.dims = (const char *const[]){"Region", "Category"},
                                    .n_dims = 2,
                                    .measures = qty,
                                    .n_measures = 2};
    tsr_engine_hypercube_t *c = NULL;
    tsr_error_t err;
    ck_assert_int_eq(tsr_engine_hypercube_compute(m, st, &d, &c, &err), TSR_OK);
    for (size_t r = 0; r < tsr_engine_hypercube_rows(c); r++) {
        for (size_t k = 0; k < 4; k++) {
            tsr_engine_dual_t v;
            tsr_engine_hypercube_cell(c, r, k, &v);
            tsr_buf_appendf(&b, "%.*s/%g,", (int)v.text_len, v.text, v.num);
        }
    }
    tsr_engine_hypercube_destroy(c);
    for (size_t f = 0; f < m->n_fields; f++) {
        tsr_buf_appendf(&b, "\n%s:", m->fields[f].name);
        for (size_t y = 0; y < tsr_engine_model_field_symbol_count(m, f); y++)
            tsr_buf_appendf(&b, "%s ", tsr_engine_vstate_name(tsr_engine_state_value(st, f, y)));
    }
    for (size_t t = 0; t < tsr_engine_model_table_count(m); t++)
        tsr_buf_appendf(&b, "\nrows %zu", tsr_engine_state_table_rows(st, t));
    tsr_engine_state_destroy(st);
    tsr_buf_append(&b, "", 1);
    return b.data;
}

START_TEST(test_run_index_same_answers_as_scans_on_random_selections) {
    tsr_engine_model_t *m = runs_model(7);
    size_t t_sales = table_of(m, "Sales");
    int32_t c_cust = -1, c_date = -1, c_prod = -1;
    for (uint32_t c = 0; c < m->tables[t_sales].n_cols; c++) {
        const char *name = m->fields[m->tables[t_sales].cols[c].field].name;
        if (strcmp(name, "CustomerID") == 0)
            c_cust = (int32_t)c;
        else if (strcmp(name, "OrderDate") == 0)
            c_date = (int32_t)c;
        else if (strcmp(name, "ProductID") == 0)
            c_prod = (int32_t)c;
    }
    /* Per-order keys are indexed; per-line ProductID (runs of one row) and OrderID (not a
     * key) are not. */
    ck_assert_ptr_nonnull(tsr_engine__index_get(m, t_sales, (uint32_t)c_cust));
    ck_assert_ptr_nonnull(tsr_engine__index_get(m, t_sales, (uint32_t)c_date));
    ck_assert_ptr_null(tsr_engine__index_get(m, t_sales, (uint32_t)c_prod));
    ck_assert_uint_gt(tsr_engine__index_bytes(m), 0);
    /* The index holds exactly each value's rows. */
    const tsr_engine__runidx_t *ix = tsr_engine__index_get(m, t_sales, (uint32_t)c_cust);
    size_t ns = m->fields[m->tables[t_sales].cols[c_cust].field].n_syms;
    size_t nrows = m->tables[t_sales].n_rows;
    for (size_t y = 0; y < ns; y++) {
        uint64_t one[64] = {0};
        one[y / 64] |= UINT64_C(1) << (y % 64);
        uint64_t *rows = calloc(nrows / 64 + 2, sizeof *rows);
        tsr_engine__index_fill(ix, one, ns, rows);
        uint64_t n = 0;
        for (size_t r = 0; r < nrows; r++) {
            bool want = tsr_engine__packed_get(&m->tables[t_sales].cols[c_cust].data, r) == y + 1;
            ck_assert_int_eq(want, (rows[r / 64] >> (r % 64)) & 1);
            n += want;
        }
        ck_assert_uint_eq(n, tsr_engine__index_count(ix, one, ns));
        free(rows);
    }
    static const char *const fields[] = {"Country",    "Region",    "Category",  "Year",    "Month",
                                         "CustomerID", "OrderDate", "ProductID", "Quantity"};
    uint64_t x = 99;
    for (int it = 0; it < 150; it++) {
        tsr_engine_selection_t *sel = tsr_engine_selection_create(m);
        int nsel = 1 + (int)(lcg_next(&x) % 3);
        for (int k = 0; k < nsel; k++) {
            size_t f = field_of(m, fields[lcg_next(&x) % 9]);
            size_t nv = tsr_engine_model_field_symbol_count(m, f);
            size_t syms[8], n = 1 + lcg_next(&x) % (nv < 6 ? 2 : 6);
            for (size_t j = 0; j < n; j++)
                syms[j] = lcg_next(&x) % nv;
            tsr_error_t err;
            ck_assert_int_eq(tsr_engine_selection_select(sel, f, syms, n, false, &err), TSR_OK);
        }
        char *with = state_dump(m, sel);
        tsr_engine__index_drop(m);
        char *without = state_dump(m, sel);
        tsr_engine__index_build(m, 1000);
        size_t at = 0;
        while (with[at] != '\0' && with[at] == without[at])
            at++;
        ck_assert_msg(with[at] == without[at], "iteration %d differs at %zu: '%.80s' vs '%.80s'",
                      it, at, with + at, without + at);
        free(with);
        free(without);
        tsr_engine_selection_destroy(sel);
    }
    tsr_engine_model_destroy(m);
}
END_TEST

typedef struct {
    const tsr_engine_model_t *m;
    const tsr_engine_selection_t *sel;
    char *out;
} dump_job_t;

static void *dump_run(void *arg) {
    dump_job_t *j = arg;
    j->out = state_dump(j->m, j->sel);
    return NULL;
}

START_TEST(test_run_index_built_once_on_first_use_from_two_threads) {
    tsr_engine_model_t *m = runs_model(11);
    /* Finalize leaves the build for first use. */
    ck_assert_int_eq(atomic_load(&m->idx_state), 0);
    tsr_engine_selection_t *sel = tsr_engine_selection_create(m);
    size_t ys[] = {3};
    tsr_error_t err;
    ck_assert_int_eq(
        tsr_engine_selection_select(sel, field_of(m, "CustomerID"), ys, 1, false, &err), TSR_OK);
    dump_job_t a = {m, sel, NULL}, b = {m, sel, NULL};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, dump_run, &b), 0);
    dump_run(&a);
    pthread_join(th, NULL);
    ck_assert_int_eq(atomic_load(&m->idx_state), 1);
    ck_assert_str_eq(a.out, b.out);
    tsr_engine__index_drop(m);
    char *without = state_dump(m, sel);
    ck_assert_str_eq(a.out, without);
    free(a.out);
    free(b.out);
    free(without);
    tsr_engine_selection_destroy(sel);
    tsr_engine_model_destroy(m);
}
END_TEST

int main(void) {
    Suite *s = suite_create("engine");
    TCase *tm = tcase_create("model");
    tcase_add_test(tm, test_symbols_dual_values_one_per_distinct_in_load_order);
    tcase_add_test(tm, test_columns_bit_packed_at_log2_distinct);
    tcase_add_test(tm, test_csv_quotes_crlf_bom_and_blank_lines);
    tcase_add_test(tm, test_csv_semicolon_delimiter_and_no_labels);
    tcase_add_test(tm, test_csv_ragged_row_reports_line_and_column);
    tcase_add_test(tm, test_csv_large_file_two_workers_match);
    tcase_add_test(tm, test_csv_chunks_identical_to_one_thread);
    tcase_add_test(tm, test_csv_chunk_boundary_inside_quoted_cell);
    tcase_add_test(tm, test_symbols_direct_tables_and_hashed_texts_agree);
    tcase_add_test(tm, test_finalize_synthetic_key_refused);
    tcase_add_test(tm, test_finalize_circular_reference_refused);
    tcase_add_test(tm, test_finalize_star_and_chain_accepted);
    suite_add_tcase(s, tm);
    TCase *ts = tcase_create("script");
    tcase_add_test(ts, test_script_load_from_file_fields_as_alias);
    tcase_add_test(ts, test_script_load_expressions_and_where);
    tcase_add_test(ts, test_script_inline_resident_drop);
    tcase_add_test(ts, test_script_variables_kept_on_model_and_in_app_file);
    tcase_add_test(ts, test_script_concatenate_explicit_and_auto);
    tcase_add_test(ts, test_script_set_let_expansion_and_drop_field);
    tcase_add_test(ts, test_script_comments_and_rem);
    tcase_add_test(ts, test_script_errors_carry_line_and_column);
    tcase_add_test(ts, test_script_synthetic_key_and_loop_reported);
    tcase_add_test(ts, test_script_reload_log_lists_tables);
    tcase_add_test(ts, test_script_reload_log_names_files_as_written);
    tcase_add_test(ts, test_script_mapping_load_applymap_default_and_passthrough);
    tcase_add_test(ts, test_script_left_inner_outer_right_join);
    tcase_add_test(ts, test_script_rename_qualify_unqualify);
    tcase_add_test(ts, test_script_store_then_load_roundtrip_and_distinct);
    suite_add_tcase(s, ts);
    TCase *te = tcase_create("expr");
    tcase_add_test(te, test_expr_nulls_text_numbers_division_by_zero);
    tcase_add_test(te, test_expr_string_date_and_math_functions);
    suite_add_tcase(s, te);
    TCase *tst = tcase_create("state");
    tcase_add_test(tst, test_state_no_selection_everything_possible);
    tcase_add_test(tst, test_state_chain_of_three_propagates_both_ways);
    tcase_add_test(tst, test_state_alternatives_in_the_selected_field);
    tcase_add_test(tst, test_state_conflicting_selections_all_excluded_selected);
    tcase_add_test(tst, test_selection_toggle_clear_lock_back_forward);
    tcase_add_test(tst, test_state_middle_key_selection_alternatives_and_selected_excluded);
    tcase_add_test(tst, test_listobject_states_frequency_sort_and_paging);
    tcase_add_test(tst, test_search_wildcards_numeric_conditions_and_word_prefix);
    tcase_add_test(tst, test_run_index_same_answers_as_scans_on_random_selections);
    tcase_add_test(tst, test_run_index_built_once_on_first_use_from_two_threads);
    suite_add_tcase(s, tst);
    TCase *tc = tcase_create("hypercube");
    tcase_add_test(tc, test_hypercube_aggregations_nulls_and_totals);
    tcase_add_test(tc, test_hypercube_two_dims_sort_by_measure_paging_and_selection);
    tcase_add_test(tc, test_hypercube_set_analysis_and_total);
    suite_add_tcase(s, tc);
    TCase *ta = tcase_create("appfile");
    tcase_add_test(ta, test_appfile_roundtrip_sealed_and_corruption_is_an_error);
    tcase_add_test(ta, test_cache_repeat_hits_and_selection_change_misses);
    tcase_add_test(ta, test_slot_swap_keeps_readers_on_the_old_model);
    suite_add_tcase(s, ta);
    TCase *tg = tcase_create("salesgen");
    tcase_set_timeout(tg, 300);
    tcase_add_test(tg, test_salesgen_dimension_md5_match_reference);
    suite_add_tcase(s, tg);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
