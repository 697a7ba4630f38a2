/*
 * The pkg/store contract suite: every behaviour a backend must show, written once against the
 * public API (store.h) and run per backend by tests/unit/test_store.c (SQLite always, MongoDB
 * when TSR_MONGODB_URI is set, the smartmongo test server when available). A backend is
 * described by a factory of fresh, empty store URIs.
 */
#ifndef TSR_TEST_STORE_CONTRACT_H
#define TSR_TEST_STORE_CONTRACT_H

#include <check.h>

#include "store.h"

typedef struct {
    const char *name; /* backend label used in the test case name, e.g. "sqlite" */
    /* A URI of a new, empty store (returned-owned, free()). Called in the test's process. */
    char *(*new_uri)(void *ctx);
    /* Remove what new_uri made (may be NULL). */
    void (*drop)(void *ctx, const char *uri);
    void *ctx;
    /* NULL-terminated names of contract tests this backend cannot pass (documented reasons
     * only, e.g. a test server without unique indexes), or NULL. */
    const char *const *skip;
} tsr_store_contract_t;

/* Add one TCase "<name>-contract" with every contract test to suite, run against backend c
 * (borrowed; must live until the suite has run). At most 4 backends per process. */
void tsr_store_contract_add(Suite *suite, const tsr_store_contract_t *c);

/* The contract test names, NULL-terminated (for skip lists and documentation). */
const char *const *tsr_store_contract_names(void);

#endif
