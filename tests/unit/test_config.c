/* Unit tests for pkg/config: defaults, environment overrides, typed parsing, and that the
 * README documents every declared knob. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

START_TEST(test_get_default_and_env_override) {
    unsetenv("TSR_PORT");
    ck_assert_str_eq(tsr_config_get("TSR_PORT"), "8080");
    setenv("TSR_PORT", "9090", 1);
    ck_assert_str_eq(tsr_config_get("TSR_PORT"), "9090");
    setenv("TSR_PORT", "", 1); /* empty means unset */
    ck_assert_str_eq(tsr_config_get("TSR_PORT"), "8080");
    unsetenv("TSR_PORT");
}
END_TEST

START_TEST(test_get_int_out_of_range_names_the_knob) {
    int64_t v;
    tsr_error_t err;
    setenv("TSR_HTTP_THREADS", "0", 1);
    ck_assert_int_eq(tsr_config_get_int("TSR_HTTP_THREADS", 1, 64, &v, &err), TSR_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "TSR_HTTP_THREADS"));
    setenv("TSR_HTTP_THREADS", "4x", 1);
    ck_assert_int_eq(tsr_config_get_int("TSR_HTTP_THREADS", 1, 64, &v, &err), TSR_EINVAL);
    setenv("TSR_HTTP_THREADS", " 4 ", 1);
    ck_assert_int_eq(tsr_config_get_int("TSR_HTTP_THREADS", 1, 64, &v, &err), TSR_OK);
    ck_assert_int_eq(v, 4);
    unsetenv("TSR_HTTP_THREADS");
}
END_TEST

START_TEST(test_get_bool_accepts_words) {
    bool b;
    tsr_error_t err;
    setenv("TSR_LOG_LEVEL", "yes", 1); /* any declared knob can be read as a bool */
    ck_assert_int_eq(tsr_config_get_bool("TSR_LOG_LEVEL", &b, &err), TSR_OK);
    ck_assert(b);
    setenv("TSR_LOG_LEVEL", "Off", 1);
    ck_assert_int_eq(tsr_config_get_bool("TSR_LOG_LEVEL", &b, &err), TSR_OK);
    ck_assert(!b);
    setenv("TSR_LOG_LEVEL", "maybe", 1);
    ck_assert_int_eq(tsr_config_get_bool("TSR_LOG_LEVEL", &b, &err), TSR_EINVAL);
    unsetenv("TSR_LOG_LEVEL");
}
END_TEST

START_TEST(test_readme_documents_every_knob) {
    FILE *f = fopen(TSR_SOURCE_DIR "/README.md", "r");
    ck_assert_ptr_nonnull(f);
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    for (const tsr_config_knob_t *k = tsr_config_knobs(); k->name != NULL; k++) {
        char needle[128];
        snprintf(needle, sizeof needle, "`%s`", k->name);
        ck_assert_msg(strstr(text, needle) != NULL, "README.md does not document %s", k->name);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, test_get_default_and_env_override);
    tcase_add_test(tc, test_get_int_out_of_range_names_the_knob);
    tcase_add_test(tc, test_get_bool_accepts_words);
    tcase_add_test(tc, test_readme_documents_every_knob);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
