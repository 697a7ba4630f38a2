/*
 * cmd/engine: wiring only. Opens the engine's app store (pkg/engined, files under
 * $TSR_STATE_DIR/engine), creates the QIX protocol server (pkg/qix) over it, and serves the
 * /app/<appId> WebSocket behind the HTTP runtime: health, readiness, metrics. SIGTERM drains:
 * every QIX session ends its call and is closed with 4003 so clients resume elsewhere.
 */
#include <stdlib.h>

#include "engined.h"
#include "httpd.h"
#include "qix.h"

typedef struct {
    tsr_engined_t *engined;
    tsr_qix_server_t *qix;
} engine_t;

static tsr_err_t setup(tsr_httpd_opts_t *opts, void **ud, tsr_error_t *err) {
    engine_t *e = calloc(1, sizeof *e);
    tsr_qix_opts_t qo = {0};
    tsr_err_t rc;
    if (e == NULL) {
        return tsr_error_set(err, TSR_EINTERNAL, "out of memory");
    }
    if ((rc = tsr_engined_create_from_config(&e->engined, err)) != TSR_OK ||
        (rc = tsr_qix_opts_from_config(&qo, err)) != TSR_OK) {
        goto fail;
    }
    qo.backend = tsr_engined_backend(e->engined);
    qo.authenticate = tsr_engined_authenticate;
    qo.auth_ud = e->engined;
    if ((rc = tsr_qix_server_create(&qo, &e->qix, err)) != TSR_OK) {
        goto fail;
    }
    opts->on_drain = tsr_qix_server_drain;
    opts->drain_ud = e->qix;
    *ud = e;
    return TSR_OK;
fail:
    tsr_engined_destroy(e->engined);
    free(e);
    return rc;
}

static tsr_err_t routes(tsr_httpd_t *h, void *ud, tsr_error_t *err) {
    engine_t *e = ud;
    tsr_err_t rc = tsr_qix_routes(h, e->qix, err);
    return rc == TSR_OK ? tsr_engined_routes(h, e->engined, err) : rc;
}

static void teardown(void *ud) {
    engine_t *e = ud;
    tsr_qix_server_destroy(e->qix);
    tsr_engined_destroy(e->engined);
    free(e);
}

int main(int argc, char **argv) {
    static const tsr_service_def_t def = {
        .name = "engine",
        .port_offset = 3,
        .setup = setup,
        .routes = routes,
        .teardown = teardown,
    };
    return tsr_service_main(&def, argc, argv);
}
