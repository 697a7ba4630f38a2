/*
 * TEST-ONLY store for the pkg/events integration tests: the outbox and the processed-event-id
 * set of events.h implemented directly over SQLite (WAL, synchronous=FULL: durable). This is a
 * stand-in until pkg/store implements tsr_events_outbox_t and tsr_events_dedupe_t; it lives
 * under tests/ and must not be linked by services.
 */
#ifndef TSR_TEST_SQLITE_EVENTS_STORE_H
#define TSR_TEST_SQLITE_EVENTS_STORE_H

#include <sqlite3.h>

#include "events.h"

typedef struct {
    sqlite3 *db;
} tsr_test_sqlite_store_t;

/* Open (creating the tables) path. */
tsr_err_t tsr_test_sqlite_store_open(tsr_test_sqlite_store_t *s, const char *path,
                                     tsr_error_t *err);
void tsr_test_sqlite_store_close(tsr_test_sqlite_store_t *s);

/* The application's write: in one transaction, create entity entity_id (if new) and queue the
 * event (already formatted) in the outbox. *created: whether the entity was new. */
tsr_err_t tsr_test_sqlite_store_write_entity(tsr_test_sqlite_store_t *s, const char *entity_id,
                                             const char *topic, const char *key,
                                             const char *event_id, const char *payload,
                                             bool *created, tsr_error_t *err);

/* Interface tables over s (s borrowed). */
tsr_events_outbox_t tsr_test_sqlite_store_outbox(tsr_test_sqlite_store_t *s);
tsr_events_dedupe_t tsr_test_sqlite_store_dedupe(tsr_test_sqlite_store_t *s);

/* The consumer side's effect: record that event_id was applied to subject at data sequence
 * seq, inside txn (the sqlite3 handle apply_once passed). */
tsr_err_t tsr_test_sqlite_store_record_effect(void *txn, const char *event_id, const char *subject,
                                              long long seq, tsr_error_t *err);

/* Counts for assertions. */
typedef struct {
    long long effects;          /* rows in effects (one per application) */
    long long distinct_effects; /* distinct event ids applied */
    long long duplicates;       /* deliveries skipped by the dedupe set */
    long long outbox_total;
    long long outbox_unsent;
    bool order_ok; /* per subject, data sequence strictly increasing in apply order */
} tsr_test_sqlite_counts_t;
tsr_err_t tsr_test_sqlite_store_counts(tsr_test_sqlite_store_t *s, tsr_test_sqlite_counts_t *out,
                                       tsr_error_t *err);

#endif
