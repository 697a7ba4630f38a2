/*
 * pkg/store events adapters: the outbox and processed-event-id interfaces of pkg/events
 * (tsr_events_outbox_t, tsr_events_dedupe_t) implemented over a tsr_store_t. A separate
 * library (tsr_store_events) so that tsr_store itself does not depend on pkg/events.
 */
#ifndef TSR_STORE_EVENTS_H
#define TSR_STORE_EVENTS_H

#include "events.h"
#include "store.h"

/* The outbox of s (borrowed: it must outlive the table) for a tsr_events_relay_t. fetch_unsent
 * hands out rows of every tenant in commit order (tsr_store_platform_outbox_fetch); mark_sent
 * removes them from the outbox. Call from one thread at a time, as the relay does. */
tsr_events_outbox_t tsr_store_events_outbox(tsr_store_t *s);

/* The processed-event-id set of s for a tsr_events_consumer_t (tsr_store_apply_once). The
 * effect's txn argument is a tsr_store_t * transaction view: write the effect through it. */
tsr_events_dedupe_t tsr_store_events_dedupe(tsr_store_t *s);

#endif
