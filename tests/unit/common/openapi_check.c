/*
 * Routes against an OpenAPI document (see openapi_check.h). A line reader, not a YAML parser:
 * the documents under api/openapi/ keep "paths:" at column 0, each path at two spaces and each
 * operation's method at four.
 */
#include "openapi_check.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#define MAX_OPS 128

void tsr_test_routes_match_openapi(const char *spec_path, tsr_test_route_at_fn route_at) {
    FILE *f = fopen(spec_path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", spec_path);
    static const char *const methods[] = {"get", "post", "put", "patch", "delete"};
    static char ops[MAX_OPS][300];
    char line[512], path[256] = "";
    size_t nops = 0;
    bool in_paths = false;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "paths:", 6) == 0) {
            in_paths = true;
        } else if (in_paths && line[0] != ' ' && line[0] != '\n' && line[0] != '#') {
            in_paths = false;
        } else if (in_paths && strncmp(line, "  /", 3) == 0) {
            snprintf(path, sizeof path, "%.*s", (int)strcspn(line + 2, ":"), line + 2);
        } else if (in_paths && strncmp(line, "    ", 4) == 0 && line[4] != ' ') {
            for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
                size_t n = strlen(methods[i]);
                if (strncmp(line + 4, methods[i], n) == 0 && line[4 + n] == ':') {
                    ck_assert_msg(nops < MAX_OPS, "%s: more than %d operations", spec_path,
                                  MAX_OPS);
                    char upper[8];
                    for (size_t k = 0; k <= n; k++) {
                        char c = methods[i][k];
                        upper[k] = (char)(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
                    }
                    snprintf(ops[nops++], sizeof ops[0], "%s %s", upper, path);
                }
            }
        }
    }
    fclose(f);
    size_t nroutes = 0;
    const char *m, *pat;
    for (; route_at(nroutes, &m, &pat); nroutes++) {
        char want[300];
        snprintf(want, sizeof want, "%s %s", m, pat);
        bool found = false;
        for (size_t i = 0; i < nops && !found; i++) {
            found = strcmp(ops[i], want) == 0;
        }
        ck_assert_msg(found, "route %s is not in %s", want, spec_path);
    }
    ck_assert_msg(nops == nroutes, "%s has %zu operations, the service %zu routes", spec_path, nops,
                  nroutes);
}
