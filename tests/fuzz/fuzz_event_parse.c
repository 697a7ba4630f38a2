/*
 * libFuzzer target for the CloudEvents envelope parser (pkg/events tsr_event_parse) and the
 * versioned type parser. Invariants: never crash; an envelope that parses also validates,
 * formats, and parses again to the same attributes (round trip).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(const char *a, const char *b) {
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tsr_error_t err = {0};
    tsr_event_t ev;
    memset(&ev, 0, sizeof ev);
    if (tsr_event_parse((const char *)data, size, &ev, &err) == TSR_OK) {
        if (tsr_event_validate(&ev, &err) != TSR_OK) {
            abort();
        }
        char *text = NULL;
        size_t len = 0;
        if (tsr_event_format(&ev, &text, &len, &err) == TSR_OK) {
            tsr_event_t again;
            memset(&again, 0, sizeof again);
            if (tsr_event_parse(text, len, &again, &err) != TSR_OK || !same(ev.id, again.id) ||
                !same(ev.type, again.type) || !same(ev.tenantid, again.tenantid) ||
                !same(ev.source, again.source) || !same(ev.subject, again.subject)) {
                abort();
            }
            tsr_event_cleanup(&again);
            free(text);
        }
        tsr_event_cleanup(&ev);
    }
    /* The type parser on the same bytes as a C string (bounded). */
    char type[256];
    size_t n = size < sizeof type - 1 ? size : sizeof type - 1;
    memcpy(type, data, n);
    type[n] = '\0';
    tsr_event_type_t t;
    if (tsr_event_type_parse(type, &t, &err) == TSR_OK) {
        char back[256];
        if (tsr_event_type_format(t.version, t.domain, t.action, back, sizeof back, &err) !=
                TSR_OK ||
            strcmp(back, type) != 0) {
            abort();
        }
    }
    return 0;
}
