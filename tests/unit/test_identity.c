/* Unit tests for pkg/identity handlers, in-process: the authn decision fails closed. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identity.h"
#include "log.h"

static tsr_httpd_t *server(void) {
    tsr_httpd_opts_t o = {
        .service = "identity", .bind = "127.0.0.1", .threads = 1, .max_body = 4096};
    tsr_httpd_t *h = NULL;
    tsr_error_t err;
    ck_assert_int_eq(tsr_httpd_create(&o, &h, &err), TSR_OK);
    ck_assert_int_eq(tsr_identity_routes(h, NULL, &err), TSR_OK);
    return h;
}

START_TEST(test_authn_without_credentials_is_401) {
    tsr_httpd_t *h = server();
    tsr_httpd_response_t r;
    tsr_httpd_inject(h, "GET", "/internal/v1/authn", NULL, NULL, 0, &r);
    ck_assert_uint_eq(r.status, 401);
    ck_assert_ptr_nonnull(strstr(r.body, "\"HTTP-401\""));
    ck_assert_ptr_nonnull(strstr(r.body, "authentication required"));
    tsr_httpd_response_cleanup(&r);
    tsr_httpd_destroy(h);
}
END_TEST

START_TEST(test_authn_unknown_bearer_is_401) {
    tsr_httpd_t *h = server();
    tsr_httpd_response_t r;
    const char *hdr[] = {"Authorization", "Bearer made-up", NULL};
    tsr_httpd_inject(h, "GET", "/internal/v1/authn", hdr, NULL, 0, &r);
    ck_assert_uint_eq(r.status, 401);
    ck_assert_ptr_nonnull(strstr(r.body, "not recognised"));
    tsr_httpd_response_cleanup(&r);
    tsr_httpd_destroy(h);
}
END_TEST

int main(void) {
    FILE *devnull = fopen("/dev/null", "w");
    tsr_log_init("identity", TSR_LOG_INFO, devnull);
    Suite *s = suite_create("identity");
    TCase *tc = tcase_create("authn");
    tcase_add_test(tc, test_authn_without_credentials_is_401);
    tcase_add_test(tc, test_authn_unknown_bearer_is_401);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    fclose(devnull);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
