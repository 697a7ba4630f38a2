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

/* ---- the leased outbox relay of a service ------------------------------------------------ */

/* Every service that writes events runs one of these: a producer and a tsr_events_relay_t over
 * the store's outbox, started only while this process holds the store lease
 * TSR_STORE_EVENTS_RELAY_LEASE (shared by every service on the store, so one relay publishes a
 * store's outbox at a time; the others take over within the lease TTL when it dies), renewed
 * every TTL/3 from a thread of its own. */
#define TSR_STORE_EVENTS_RELAY_LEASE "events.outbox.relay"
#define TSR_STORE_EVENTS_RELAY_TTL_MS 15000

typedef struct tsr_store_events_relayer tsr_store_events_relayer_t;

/* Start the leased relay for service (its Kafka client id is "tessera-<service>"; the lease
 * owner "<service>@<host>:<pid>"). The broker comes from tsr_events_bootstrap_resolve; when
 * none is configured this logs a warning, sets *out = NULL and answers TSR_OK: the events stay
 * in the outbox until a process with a broker publishes them. store is borrowed and must
 * outlive the relayer. */
tsr_err_t tsr_store_events_relayer_start(tsr_store_t *store, const char *service,
                                         tsr_store_events_relayer_t **out, tsr_error_t *err);

/* Stop the relay (it flushes what it sent), release the lease, free. NULL: no-op. */
void tsr_store_events_relayer_stop(tsr_store_events_relayer_t *r);

#endif
