/*
 * The service runtime behind every cmd/<service>/main.c: read config, start logs and the
 * HTTP server, block until SIGTERM/SIGINT, then drain: stop accepting, finish in-flight
 * requests within TSR_SHUTDOWN_GRACE_MS, release dependencies, exit 0.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "httpd.h"
#include "log.h"

int tsr_service_main(const tsr_service_def_t *def, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: %s\n\nTessera %s service. Configured through TSR_* environment "
                   "variables:\n\n",
                   argv[0], def->name);
            tsr_config_print_markdown(stdout);
            return 0;
        }
    }
    tsr_log_level_t level;
    if (tsr_log_level_parse(tsr_config_get("TSR_LOG_LEVEL"), &level) != TSR_OK) {
        level = TSR_LOG_INFO;
    }
    tsr_log_init(def->name, level, stdout);

    /* Signals are taken synchronously by this thread; every thread created after this
     * inherits the mask, so none of them is interrupted by SIGTERM. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    tsr_error_t err;
    tsr_error_clear(&err);
    tsr_httpd_opts_t opts;
    tsr_httpd_t *h = NULL;
    void *ud = NULL;
    int code = 1;
    int64_t port, grace, base;
    if (tsr_httpd_opts_from_config(&opts, def->name, &err) != TSR_OK ||
        tsr_config_get_int("TSR_SERVICE_PORT", 0, 65535, &port, &err) != TSR_OK ||
        tsr_config_get_int("TSR_PORT", 1, 65535, &base, &err) != TSR_OK ||
        tsr_config_get_int("TSR_SHUTDOWN_GRACE_MS", 0, 600000, &grace, &err) != TSR_OK) {
        tsr_log_error(NULL, "configuration: %s", err.msg);
        return 2;
    }
    if (port == 0) {
        port = base + def->port_offset;
        if (port > 65535) {
            tsr_log_error(NULL, "configuration: TSR_PORT + %u is not a valid port",
                          (unsigned)def->port_offset);
            return 2;
        }
    }
    opts.port = (uint16_t)port;
    if (def->setup != NULL && def->setup(&opts, &ud, &err) != TSR_OK) {
        tsr_log_error(NULL, "setup: %s", err.msg);
        goto out;
    }
    if (tsr_httpd_create(&opts, &h, &err) != TSR_OK) {
        tsr_log_error(NULL, "http server: %s", err.msg);
        goto out;
    }
    if (def->routes != NULL && def->routes(h, ud, &err) != TSR_OK) {
        tsr_log_error(NULL, "routes: %s", err.msg);
        goto out;
    }
    if (tsr_httpd_start(h, &err) != TSR_OK) {
        tsr_log_error(NULL, "listen: %s", err.msg);
        goto out;
    }
    json_t *extra = json_pack("{s:s,s:i}", "bind", opts.bind, "port", (int)tsr_httpd_port(h));
    tsr_log_write(TSR_LOG_INFO, NULL, extra, "listening on %s:%u", opts.bind,
                  (unsigned)tsr_httpd_port(h));
    json_decref(extra);

    int sig = 0;
    sigwait(&set, &sig);
    tsr_log_info(NULL, "received %s: draining (grace %lld ms)",
                 sig == SIGTERM ? "SIGTERM" : "SIGINT", (long long)grace);
    unsigned left = tsr_httpd_stop(h, (unsigned)grace);
    if (left > 0) {
        tsr_log_warn(NULL, "stopped with %u requests still in flight", left);
    }
    code = left == 0 ? 0 : 1;
    tsr_log_info(NULL, "stopped");
out:
    tsr_httpd_destroy(h);
    if (def->teardown != NULL) {
        def->teardown(ud);
    }
    return code;
}
