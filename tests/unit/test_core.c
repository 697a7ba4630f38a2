/* Unit tests for pkg/core: errors, capped allocation, buffers, slices, arena, time, ids. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

START_TEST(test_error_set_truncates_and_returns_code) {
    tsr_error_t err;
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ck_assert_int_eq(tsr_error_set(&err, TSR_EINVAL, "%s", big), TSR_EINVAL);
    ck_assert_int_eq(err.code, TSR_EINVAL);
    ck_assert_uint_eq(strlen(err.msg), TSR_ERROR_MSG_MAX - 1);
    ck_assert_int_eq(tsr_error_set(NULL, TSR_ENOTFOUND, "x"), TSR_ENOTFOUND);
    tsr_error_clear(&err);
    ck_assert_int_eq(err.code, TSR_OK);
    ck_assert_str_eq(tsr_strerror(TSR_ENOTFOUND), "not found");
    ck_assert_str_eq(tsr_strerror((tsr_err_t)999), "unknown error");
}
END_TEST

START_TEST(test_alloc_capped_over_cap_is_toobig) {
    void *p = (void *)1;
    tsr_error_t err;
    ck_assert_int_eq(tsr_alloc_capped(&p, 1025, 1024, &err), TSR_ETOOBIG);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(tsr_alloc_capped(&p, 1024, 1024, &err), TSR_OK);
    ck_assert_ptr_nonnull(p);
    free(p);
    size_t out;
    ck_assert(!tsr_size_mul(SIZE_MAX / 2, 3, &out));
    ck_assert(tsr_size_mul(1000, 1000, &out) && out == 1000000);
    ck_assert(!tsr_size_add(SIZE_MAX, 1, &out));
}
END_TEST

START_TEST(test_buf_append_past_max_is_toobig_and_unchanged) {
    tsr_buf_t b;
    tsr_buf_init(&b, 10);
    ck_assert_int_eq(tsr_buf_append_str(&b, "hello"), TSR_OK);
    ck_assert_int_eq(tsr_buf_appendf(&b, "%d", 1234), TSR_OK);
    ck_assert_str_eq(b.data, "hello1234");
    ck_assert_int_eq(tsr_buf_append_str(&b, "ab"), TSR_ETOOBIG);
    ck_assert_str_eq(b.data, "hello1234");
    ck_assert_uint_eq(b.len, 9);
    size_t n;
    char *s = tsr_buf_take(&b, &n);
    ck_assert_uint_eq(n, 9);
    ck_assert_ptr_null(b.data);
    free(s);
    tsr_buf_cleanup(&b);
}
END_TEST

START_TEST(test_buf_grows_over_many_appends) {
    tsr_buf_t b;
    tsr_buf_init(&b, 0);
    for (int i = 0; i < 10000; i++) {
        ck_assert_int_eq(tsr_buf_append(&b, "abc", 3), TSR_OK);
    }
    ck_assert_uint_eq(b.len, 30000);
    ck_assert_int_eq(b.data[29999], 'c');
    ck_assert_int_eq(b.data[30000], '\0');
    tsr_buf_cleanup(&b);
}
END_TEST

START_TEST(test_str_tokens_trim_and_compare) {
    tsr_str_t s = tsr_str("a,,bc,");
    tsr_str_t t;
    const char *want[] = {"a", "", "bc", ""};
    int i = 0;
    while (tsr_str_next_tok(&s, ',', &t)) {
        ck_assert_int_lt(i, 4);
        ck_assert(tsr_str_eq_cstr(t, want[i]));
        i++;
    }
    ck_assert_int_eq(i, 4);
    ck_assert(tsr_str_eq_cstr(tsr_str_trim(tsr_str("  x y \t")), "x y"));
    ck_assert(tsr_str_case_eq_cstr(tsr_str("Content-Type"), "content-type"));
    ck_assert(tsr_str_has_prefix(tsr_str("/api/v1"), "/api"));
    ck_assert(!tsr_str_has_prefix(tsr_str("/a"), "/api"));
}
END_TEST

START_TEST(test_str_to_i64_rejects_garbage_and_range) {
    int64_t v;
    ck_assert_int_eq(tsr_str_to_i64(tsr_str("42"), 0, 100, &v), TSR_OK);
    ck_assert_int_eq(v, 42);
    ck_assert_int_eq(tsr_str_to_i64(tsr_str("-9223372036854775808"), INT64_MIN, 0, &v), TSR_OK);
    ck_assert(v == INT64_MIN);
    ck_assert_int_eq(tsr_str_to_i64(tsr_str("9223372036854775808"), 0, INT64_MAX, &v), TSR_EINVAL);
    ck_assert_int_eq(tsr_str_to_i64(tsr_str("12a"), 0, 100, &v), TSR_EINVAL);
    ck_assert_int_eq(tsr_str_to_i64(tsr_str(""), 0, 100, &v), TSR_EINVAL);
    ck_assert_int_eq(tsr_str_to_i64(tsr_str("-"), -5, 100, &v), TSR_EINVAL);
    ck_assert_int_eq(tsr_str_to_i64(tsr_str("101"), 0, 100, &v), TSR_EINVAL);
}
END_TEST

START_TEST(test_arena_alignment_and_large_allocations) {
    tsr_arena_t *a = tsr_arena_create(64);
    for (int i = 0; i < 1000; i++) {
        void *p = tsr_arena_alloc(a, (size_t)(i % 37) + 1);
        ck_assert_uint_eq((uintptr_t)p % 16, 0);
        memset(p, 0xab, (size_t)(i % 37) + 1);
    }
    char *big = tsr_arena_alloc(a, 1 << 20);
    memset(big, 1, 1 << 20);
    ck_assert_str_eq(tsr_arena_printf(a, "%s-%d", "x", 7), "x-7");
    ck_assert_uint_ge(tsr_arena_used(a), 1 << 20);
    tsr_arena_destroy(a);
    tsr_arena_destroy(NULL);
}
END_TEST

START_TEST(test_time_rfc3339_roundtrip_and_offsets) {
    char s[25];
    tsr_time_format_rfc3339(1700000000123, s);
    ck_assert_str_eq(s, "2023-11-14T22:13:20.123Z");
    int64_t ms;
    ck_assert_int_eq(tsr_time_parse_rfc3339(s, &ms), TSR_OK);
    ck_assert(ms == 1700000000123);
    ck_assert_int_eq(tsr_time_parse_rfc3339("2023-11-14T23:13:20+01:00", &ms), TSR_OK);
    ck_assert(ms == 1700000000000);
    ck_assert_int_eq(tsr_time_parse_rfc3339("2023-11-14", &ms), TSR_EINVAL);
    ck_assert_int_eq(tsr_time_parse_rfc3339("2023-13-14T00:00:00Z", &ms), TSR_EINVAL);
    ck_assert_int_eq(tsr_time_parse_rfc3339("2023-11-14T00:00:00Zjunk", &ms), TSR_EINVAL);
    uint64_t a = tsr_mono_ns(), b = tsr_mono_ns();
    ck_assert(b >= a);
}
END_TEST

START_TEST(test_id_new_is_hex_and_distinct) {
    char a[25], b[25];
    tsr_id_new(a);
    tsr_id_new(b);
    ck_assert_uint_eq(strlen(a), 24);
    ck_assert_str_ne(a, b);
    ck_assert_uint_eq(strspn(a, "0123456789abcdef"), 24);
}
END_TEST

int main(void) {
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_error_set_truncates_and_returns_code);
    tcase_add_test(tc, test_alloc_capped_over_cap_is_toobig);
    tcase_add_test(tc, test_buf_append_past_max_is_toobig_and_unchanged);
    tcase_add_test(tc, test_buf_grows_over_many_appends);
    tcase_add_test(tc, test_str_tokens_trim_and_compare);
    tcase_add_test(tc, test_str_to_i64_rejects_garbage_and_range);
    tcase_add_test(tc, test_arena_alignment_and_large_allocations);
    tcase_add_test(tc, test_time_rfc3339_roundtrip_and_offsets);
    tcase_add_test(tc, test_id_new_is_hex_and_distinct);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
