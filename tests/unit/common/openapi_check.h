/*
 * Shared unit-test helper: a service's route table and its OpenAPI document describe exactly
 * the same operations. Used by every service's test binary (linked as tsr_testutil).
 */
#ifndef TSR_TEST_OPENAPI_CHECK_H
#define TSR_TEST_OPENAPI_CHECK_H

#include <stdbool.h>
#include <stddef.h>

/* The i-th route of a service (false past the end), as pkg/<service> exposes it. */
typedef bool (*tsr_test_route_at_fn)(size_t i, const char **method, const char **pattern);

/* Fail the running check test unless every route of route_at is an operation (method + path)
 * of the OpenAPI document at spec_path (YAML, paths at two spaces, methods at four) and every
 * operation there is a route. */
void tsr_test_routes_match_openapi(const char *spec_path, tsr_test_route_at_fn route_at);

#endif
