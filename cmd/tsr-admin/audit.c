/*
 * cmd/tsr-admin audit: offline checks of the audit trail, straight on the metadata store the
 * audit service writes (TSR_STORE_URI or $STATE/store.db) with the checkpoint key it signs
 * with (TSR_AUDIT_KEY_FILE or $STATE/audit/checkpoint-key.pem). Wiring only: pkg/audit does
 * the work.
 *   tsr-admin audit verify --state-dir DIR [--tenant ID] [--from SEQ] [--to SEQ]
 * Prints one JSON report per tenant; exit 0 when every chain verifies, 3 when one is broken,
 * 1 when the check could not run, 2 on usage errors.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "tsr_admin_audit.h"

static int audit_usage(void) {
    fprintf(stderr, "usage: tsr-admin audit verify --state-dir DIR [--tenant ID] [--from SEQ] "
                    "[--to SEQ]\n");
    return 2;
}

int tsr_admin_audit_main(int argc, char **argv) {
    const char *state = NULL, *tenant = NULL;
    int64_t from = 0, to = 0;
    tsr_error_t err = {0};
    tsr_store_t *store = NULL;
    tsr_audit_t *audit = NULL;
    json_t *tenants = NULL;
    int status = 1;
    if (argc < 2 || strcmp(argv[1], "verify") != 0) {
        return audit_usage();
    }
    for (int i = 2; i < argc; i += 2) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = v != NULL;
        if (ok && strcmp(k, "--state-dir") == 0) {
            state = v;
        } else if (ok && strcmp(k, "--tenant") == 0) {
            tenant = v;
        } else if (ok && strcmp(k, "--from") == 0) {
            ok = tsr_str_to_i64(tsr_str(v), 1, INT64_MAX / 2, &from) == TSR_OK;
        } else if (ok && strcmp(k, "--to") == 0) {
            ok = tsr_str_to_i64(tsr_str(v), 1, INT64_MAX / 2, &to) == TSR_OK;
        } else {
            ok = false;
        }
        if (!ok) {
            return audit_usage();
        }
    }
    if (state == NULL) {
        return audit_usage();
    }
    /* the service's own defaults resolve under the state dir */
    setenv("TSR_STATE_DIR", state, 1);
    tsr_audit_opts_t ao;
    tsr_store_opts_t so = {0};
    so.collections = tsr_audit_collections(&so.n_collections);
    if (tsr_audit_opts_from_config(&ao, &err) != TSR_OK) {
        goto fail;
    }
    /* never create a signing key here: a fresh one would fail every checkpoint */
    char first[4096];
    snprintf(first, sizeof first, "%.*s", (int)strcspn(ao.key_file, ","), ao.key_file);
    if (access(first, R_OK) != 0) {
        fprintf(stderr, "tsr-admin: no checkpoint key at %s\n", first);
        return 1;
    }
    if (tsr_store_create_default(&so, &store, &err) != TSR_OK) {
        goto fail;
    }
    ao.store = store;
    if (tsr_audit_create(&ao, &audit, &err) != TSR_OK) {
        goto fail;
    }
    if (tenant != NULL) {
        tenants = json_pack("[s]", tenant);
    } else if (tsr_audit_tenants(audit, &tenants, &err) != TSR_OK) {
        goto fail;
    }
    status = 0;
    size_t i;
    json_t *t;
    json_array_foreach(tenants, i, t) {
        json_t *report = NULL;
        if (tsr_audit_verify(audit, json_string_value(t), from, to, 0, &report, &err) != TSR_OK) {
            goto fail;
        }
        if (!json_is_true(json_object_get(report, "ok"))) {
            status = 3;
        }
        json_dumpf(report, stdout, JSON_COMPACT);
        fputc('\n', stdout);
        json_decref(report);
    }
    goto out;
fail:
    fprintf(stderr, "tsr-admin: audit verify: %s\n", err.msg);
    status = 1;
out:
    json_decref(tenants);
    tsr_audit_destroy(audit);
    tsr_store_destroy(store);
    return status;
}
