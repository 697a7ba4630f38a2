/*
 * pkg/qix internals shared by the module's files: the session and call structures, the
 * handle registry entries and the Global handle's method table. Not part of the API.
 */
#ifndef TSR_QIX_INT_H
#define TSR_QIX_INT_H

#include <pthread.h>

#include "qix.h"

#define TSR_QIX__GLOBAL_HANDLE (-1)

typedef struct {
    int handle;
    const tsr_qix_type_t *type;
    void *obj; /* owned: type->release */
} tsr_qix__entry_t;

typedef struct {
    int *v;
    size_t n, cap;
} tsr_qix__ints_t;

struct tsr_qix_session {
    tsr_qix_backend_t backend;
    char *user_id;
    char *app_id; /* NULL: engineData (Global only) */
    tsr_qix_send_fn send;
    void *send_ud;
    /* Handles in increasing order (they are handed out increasing), so lookups bisect. */
    tsr_qix__entry_t *entries;
    size_t nentries, capentries;
    int next_handle; /* next handle to hand out; starts at 1, never 0, never reused */
    int doc_handle;  /* 0: no document open */
    char *doc_id;    /* the open document's id (qGenericId); NULL when none */
    /* Unsolicited change notifications queued by other threads. */
    pthread_mutex_t mu;
    tsr_qix__ints_t pending;
    void (*wake)(void *ud); /* tells the session thread to flush; may be NULL */
    void *wake_ud;
    /* A close asked for by another thread (tsr_qix_session_request_close), under mu: the
     * session thread sends it at its next wake-up. 0: none. */
    uint16_t close_code;
    char close_reason[124];
};

struct tsr_qix_call {
    tsr_qix_session_t *s;
    int handle;
    const char *method;
    const tsr_qix_method_t *m;
    json_t *params; /* borrowed: array, object or NULL */
    json_t *result; /* owned; NULL: {} */
    bool failed;
    int err_code;
    char *err_param; /* owned */
    char *err_msg;   /* owned */
    tsr_qix__ints_t change;
    tsr_qix__ints_t close;
};

extern const tsr_qix_type_t tsr_qix__global_type;

/* Add v to the set (no duplicates). */
void tsr_qix__ints_add(tsr_qix__ints_t *a, int v);
void tsr_qix__ints_cleanup(tsr_qix__ints_t *a);
/* The registry entry of a handle, or NULL. */
tsr_qix__entry_t *tsr_qix__session_find(tsr_qix_session_t *s, int handle);

#endif
