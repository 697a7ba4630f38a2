/*
 * cmd/spaces: wiring only. Opens the metadata store (TSR_STORE_URI, default
 * $TSR_STATE_DIR/store.db) with the spaces collections and the blob store (TSR_BLOB_URI),
 * loads the key-encryption key (TSR_KEK_FILE) that wraps tenant DEKs, starts the outbox relay
 * to Kafka when a broker is configured (one relay per store at a time, under a store lease),
 * points app copy/publish at an engine replica (TSR_SPACES_ENGINE_URL), and runs pkg/spaces
 * behind the HTTP runtime. Callers are verified by pkg/auth (the platform JWT against identity's
 * JWKS, TSR_AUTH_JWKS_URL); without it the service refuses to start unless
 * TSR_AUTH_TRUST_HEADERS is set. The engine's copy route takes only service tokens: spaces gets
 * them from identity with the platform token in TSR_AUTH_SERVICE_TOKEN_FILE (pkg/auth).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "config.h"
#include "events.h"
#include "httpd.h"
#include "log.h"
#include "spaces.h"
#include "store_events.h"

typedef struct {
    tsr_store_t *store;
    tsr_blob_store_t *blobs;
    tsr_kek_set_t *kek;
    tsr_spaces_t *spaces;
    tsr_store_events_relayer_t *relayer;
    tsr_auth_verifier_t *verifier;
    tsr_auth_tokens_t *tokens; /* service tokens for the engine copy call; NULL: none */
} app_t;

static void teardown(void *ud) {
    app_t *a = ud;
    if (a == NULL) {
        return;
    }
    tsr_store_events_relayer_stop(a->relayer);
    tsr_spaces_destroy(a->spaces);
    tsr_blob_store_destroy(a->blobs);
    tsr_store_destroy(a->store);
    tsr_crypto_kek_set_destroy(a->kek);
    tsr_auth_verifier_destroy(a->verifier);
    tsr_auth_tokens_destroy(a->tokens);
    free(a);
}

static tsr_err_t setup(tsr_httpd_opts_t *opts, void **ud, tsr_error_t *err) {
    int64_t max_file = 0;
    size_t n = 0;
    tsr_err_t rc;
    app_t *a = tsr_xcalloc(1, sizeof *a);
    tsr_store_opts_t so = {.collections = tsr_spaces_collections(&n)};
    so.n_collections = n;
    if ((rc = tsr_auth_httpd_setup(opts, &a->verifier, err)) != TSR_OK ||
        (rc = tsr_auth_tokens_create_from_config(&a->tokens, err)) != TSR_OK ||
        (rc = tsr_config_get_int("TSR_SPACES_DATAFILE_MAX_BYTES", 1, (int64_t)1 << 40, &max_file,
                                 err)) != TSR_OK ||
        (rc = tsr_store_create_default(&so, &a->store, err)) != TSR_OK ||
        (rc = tsr_blob_store_open(NULL, &a->blobs, err)) != TSR_OK) {
        teardown(a);
        return rc;
    }
    /* Data files are sealed under tenant DEKs wrapped by the KEK; without one (a bare
     * development run) they are stored as they came, and the log says so. */
    const char *kek = tsr_config_get("TSR_KEK_FILE");
    if (kek[0] != '\0') {
        a->kek = tsr_crypto_kek_set_create();
        if ((rc = tsr_crypto_kek_set_load(a->kek, kek, err)) != TSR_OK) {
            teardown(a);
            return rc;
        }
    } else {
        tsr_log_warn(NULL, "TSR_KEK_FILE is not set: data files are stored unsealed");
    }
    /* App copy and publish have an engine replica copy the content (any replica: the app
     * folders are shared under the state dir). */
    char engine[512];
    const char *eurl = tsr_config_get("TSR_SPACES_ENGINE_URL");
    if (eurl[0] == '\0') {
        int64_t port = 0;
        if ((rc = tsr_config_get_int("TSR_PORT", 1, 65535 - 3, &port, err)) != TSR_OK) {
            teardown(a);
            return rc;
        }
        snprintf(engine, sizeof engine, "http://127.0.0.1:%lld", (long long)(port + 3));
        eurl = engine;
    }
    /* Data-file upload bodies and download plaintext go through temporary files here. */
    char updir[4200];
    snprintf(updir, sizeof updir, "%s/spaces-uploads", tsr_config_get("TSR_STATE_DIR"));
    /* What a crash left there: anything older than an hour (active files are newer). */
    size_t stale = tsr_spaces_sweep_uploads(updir, INT64_C(3600) * 1000);
    if (stale > 0) {
        tsr_log_info(NULL, "spaces: %zu stale upload file(s) removed", stale);
    }
    tsr_spaces_opts_t sp = {.store = a->store,
                            .kek = a->kek,
                            .blobs = a->blobs,
                            .datafile_max_bytes = (uint64_t)max_file,
                            .json_max_body = opts->max_body,
                            .engine_url = strcmp(eurl, "off") != 0 ? eurl : NULL,
                            .token_fn = a->tokens != NULL ? tsr_auth_tokens_cb : NULL,
                            .token_ud = a->tokens,
                            .upload_dir = updir};
    if ((rc = tsr_spaces_create(&sp, &a->spaces, err)) != TSR_OK) {
        teardown(a);
        return rc;
    }
    /* Data-file uploads are upload routes (the body streams to a file under their own cap,
     * TSR_SPACES_DATAFILE_MAX_BYTES plus framing): every other body keeps TSR_HTTP_MAX_BODY. */
    opts->on_ready = tsr_spaces_ready;
    opts->ready_ud = a->spaces;
    opts->on_principal = tsr_spaces_principal;
    if ((rc = tsr_store_events_relayer_start(a->store, "spaces", &a->relayer, err)) != TSR_OK) {
        teardown(a);
        return rc;
    }
    *ud = a;
    return TSR_OK;
}

static tsr_err_t routes(tsr_httpd_t *h, void *ud, tsr_error_t *err) {
    return tsr_spaces_routes(h, ((app_t *)ud)->spaces, err);
}

int main(int argc, char **argv) {
    static const tsr_service_def_t def = {
        .name = "spaces",
        .port_offset = 2,
        .setup = setup,
        .routes = routes,
        .teardown = teardown,
    };
    return tsr_service_main(&def, argc, argv);
}
