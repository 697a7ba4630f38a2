/*
 * Fuzz target: the load-script parser and executor (pkg/engine tsr_engine_reload), and the
 * app-file reader: an input starting with the app-file magic "TSRAPP" goes to
 * tsr_engine_app_open_mem instead (a corrupted file must be an error, never a crash).
 * Scripts run without a data folder, so FROM files are refused and INLINE data is used.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (64u << 10))
        return 0;
    tsr_error_t err = {0};
    tsr_engine_model_t *m = NULL;
    if (size >= 6 && memcmp(data, "TSRAPP", 6) == 0) {
        tsr_engine_app_contents_t c;
        if (tsr_engine_app_open_mem(data, size, NULL, &m, &c, &err) == TSR_OK)
            tsr_engine_app_contents_cleanup(&c);
        tsr_engine_model_destroy(m);
        return 0;
    }
    char *log = NULL;
    tsr_engine_reload_opts_t opts = {.data_dir = NULL};
    if (tsr_engine_reload((const char *)data, size, &opts, &m, &log, &err) == TSR_OK) {
        /* A model that loaded must also survive a save/open round trip. */
        uint8_t *buf = NULL;
        size_t n = 0;
        if (tsr_engine_app_save_mem(m, NULL, NULL, &buf, &n, &err) == TSR_OK) {
            tsr_engine_model_t *m2 = NULL;
            if (tsr_engine_app_open_mem(buf, n, NULL, &m2, NULL, &err) != TSR_OK)
                abort();
            tsr_engine_model_destroy(m2);
        }
        free(buf);
    }
    free(log);
    tsr_engine_model_destroy(m);
    return 0;
}
