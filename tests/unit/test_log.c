/* Unit tests for pkg/log: one JSON object per line with the context fields, level filter,
 * extra fields, and lines that stay valid JSON whatever the message holds. */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static json_t *read_lines(FILE *f, size_t *count) {
    rewind(f);
    json_t *arr = json_array();
    char line[8192];
    while (fgets(line, sizeof line, f) != NULL) {
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        ck_assert_msg(j != NULL, "not JSON: %s", line);
        json_array_append_new(arr, j);
    }
    *count = json_array_size(arr);
    return arr;
}

START_TEST(test_write_includes_context_and_extra) {
    FILE *f = tmpfile();
    tsr_log_init("spaces", TSR_LOG_INFO, f);
    tsr_log_ctx_t ctx = {"req-1", "t1", "u1"};
    json_t *extra = json_pack("{s:i}", "status", 201);
    tsr_log_write(TSR_LOG_INFO, &ctx, extra, "created %s", "space");
    json_decref(extra);
    size_t n;
    json_t *lines = read_lines(f, &n);
    ck_assert_uint_eq(n, 1);
    json_t *l = json_array_get(lines, 0);
    ck_assert_str_eq(json_string_value(json_object_get(l, "level")), "info");
    ck_assert_str_eq(json_string_value(json_object_get(l, "service")), "spaces");
    ck_assert_str_eq(json_string_value(json_object_get(l, "requestId")), "req-1");
    ck_assert_str_eq(json_string_value(json_object_get(l, "tenantId")), "t1");
    ck_assert_str_eq(json_string_value(json_object_get(l, "userId")), "u1");
    ck_assert_str_eq(json_string_value(json_object_get(l, "msg")), "created space");
    ck_assert_int_eq(json_integer_value(json_object_get(l, "status")), 201);
    ck_assert_uint_eq(strlen(json_string_value(json_object_get(l, "time"))), 24);
    json_decref(lines);
    fclose(f);
}
END_TEST

START_TEST(test_write_below_level_is_dropped) {
    FILE *f = tmpfile();
    tsr_log_init("x", TSR_LOG_WARN, f);
    tsr_log_info(NULL, "quiet");
    tsr_log_error(NULL, "loud");
    size_t n;
    json_t *lines = read_lines(f, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(lines, 0), "msg")), "loud");
    json_decref(lines);
    fclose(f);
}
END_TEST

START_TEST(test_write_hostile_message_stays_one_json_line) {
    FILE *f = tmpfile();
    tsr_log_init("x", TSR_LOG_DEBUG, f);
    tsr_log_info(NULL, "a\"b\nc\\d \xff\xfe end");
    size_t n;
    json_t *lines = read_lines(f, &n);
    ck_assert_uint_eq(n, 1);
    const char *m = json_string_value(json_object_get(json_array_get(lines, 0), "msg"));
    ck_assert_ptr_nonnull(strstr(m, "a\"b\nc\\d"));
    json_decref(lines);
    fclose(f);
    tsr_log_level_t lv;
    ck_assert_int_eq(tsr_log_level_parse("warn", &lv), TSR_OK);
    ck_assert_int_eq(lv, TSR_LOG_WARN);
    ck_assert_int_eq(tsr_log_level_parse("loud", &lv), TSR_EINVAL);
}
END_TEST

int main(void) {
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_add_test(tc, test_write_includes_context_and_extra);
    tcase_add_test(tc, test_write_below_level_is_dropped);
    tcase_add_test(tc, test_write_hostile_message_stays_one_json_line);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
