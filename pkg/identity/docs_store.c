/*
 * pkg/identity storage over pkg/store: identity's collections (declared with their indexes and
 * unique constraints), the (collection, tenant, key) addressing its domain code uses, and audit
 * events written to the store's outbox in the same commit as the change they describe.
 * Layer: service. Invariants: each identity document is kept whole under "doc" (the store's own
 * id/tenantId/version members never leak into identity's views); a key the store cannot take
 * as an id (too long, not printable ASCII, or starting "h.") is stored under "h." + its SHA-256.
 */
#include <string.h>

#include "crypto.h"
#include "events.h"
#include "identity_int.h"

#define EVENT_SOURCE "/tessera/identity"
#define TOPIC_IDENTITY "tessera.identity"
#define TOPIC_AUDIT "tessera.audit"
#define KEY_DIRECT_MAX 100

/* ---- collections ---------------------------------------------------------------------------- */

static const char *const IDX_HOST[] = {"doc.hostname"};
static const char *const IDX_USER_ID[] = {"doc.userId"};
static const char *const IDX_SUB[] = {"doc.sub"};
static const char *const IDX_NAME[] = {"doc.id"};
static const char *const F_HOST[] = {"doc.hostname"};
static const char *const F_NAME[] = {"doc.id"};
static const tsr_store_unique_t U_HOST[] = {{F_HOST, 1, true}}; /* one tenant per hostname */
/* Claims (user emails, group names): the claimed value, lowercased, is the claim's "id". */
static const tsr_store_unique_t U_NAME[] = {{F_NAME, 1, false}};

static const tsr_store_collection_t COLLECTIONS[] = {
    {.name = TSR_ID__C_TENANTS},
    {.name = TSR_ID__C_HOSTS,
     .indexes = IDX_HOST,
     .n_indexes = 1,
     .uniques = U_HOST,
     .n_uniques = 1},
    {.name = TSR_ID__C_USERS},
    {.name = TSR_ID__C_EMAILS,
     .indexes = IDX_NAME,
     .n_indexes = 1,
     .uniques = U_NAME,
     .n_uniques = 1},
    {.name = TSR_ID__C_SECRETS},
    {.name = TSR_ID__C_KEYS, .indexes = IDX_SUB, .n_indexes = 1},
    {.name = TSR_ID__C_SIGNING_KEYS},
    {.name = TSR_ID__C_GROUPS},
    {.name = TSR_ID__C_GROUP_NAMES,
     .indexes = IDX_NAME,
     .n_indexes = 1,
     .uniques = U_NAME,
     .n_uniques = 1},
    {.name = TSR_ID__C_PLATFORM_TOKENS},
    {.name = TSR_ID__C_SESSIONS, .indexes = IDX_USER_ID, .n_indexes = 1},
    {.name = TSR_ID__C_DEKS},
    {.name = TSR_ID__C_IDPS},
    {.name = TSR_ID__C_OIDC_STATES},
    {.name = TSR_ID__C_OIDC_LINKS},
};

const tsr_store_collection_t *tsr_identity_collections(size_t *n) {
    *n = sizeof COLLECTIONS / sizeof COLLECTIONS[0];
    return COLLECTIONS;
}

tsr_err_t tsr_identity_store_open(const char *uri, tsr_store_t **out, tsr_error_t *err) {
    size_t n = 0;
    tsr_store_opts_t so = {.collections = tsr_identity_collections(&n)};
    so.n_collections = n;
    return uri != NULL && uri[0] != '\0' ? tsr_store_create(uri, &so, out, err)
                                         : tsr_store_create_default(&so, out, err);
}

/* ---- addressing ----------------------------------------------------------------------------- */

static void store_key(const char *key, char out[TSR_STORE_ID_MAX + 1]) {
    size_t n = strlen(key);
    bool direct = n > 0 && n <= KEY_DIRECT_MAX && strncmp(key, "h.", 2) != 0;
    for (size_t i = 0; direct && i < n; i++) {
        unsigned char c = (unsigned char)key[i];
        direct = c > 0x20 && c < 0x7f;
    }
    if (direct) {
        memcpy(out, key, n + 1);
        return;
    }
    uint8_t md[32];
    tsr_crypto_sha256(key, n, md);
    memcpy(out, "h.", 2);
    tsr_hex_encode(md, sizeof md, out + 2);
}

static json_t *unwrap(json_t *stored) {
    json_t *d = json_incref(json_object_get(stored, "doc"));
    json_decref(stored);
    return d;
}

/* ---- audit events ------------------------------------------------------------------------- */

/* identity's own type names ("com.qlik.v1.api-key.created") to the platform's event types and
 * topics (pkg/events/topics.def): sign-ins go to the audit topic, the rest to identity's. */
static void event_type(const char *type, char *out, size_t cap, const char **topic) {
    static const char qlik[] = "com.qlik.v1.";
    const char *rest = strncmp(type, qlik, sizeof qlik - 1) == 0 ? type + sizeof qlik - 1 : type;
    tsr_buf_t b;
    *topic = TOPIC_IDENTITY;
    tsr_buf_init(&b, cap);
    if (strcmp(rest, "user.session.created") == 0) {
        rest = "auth.login.succeeded";
        *topic = TOPIC_AUDIT;
    } else if (strcmp(rest, "user.login.failed") == 0) {
        rest = "auth.login.failed";
        *topic = TOPIC_AUDIT;
    }
    tsr_buf_append(&b, "com.tessera.v1.", 15);
    for (; *rest != '\0'; rest++) {
        if (*rest != '-') {
            tsr_buf_append(&b, rest, 1);
        }
    }
    snprintf(out, cap, "%s", b.data);
    tsr_buf_cleanup(&b);
}

/* A copy of data without anything secret (hashes, TOTP secrets, keys, CSRF tokens): events
 * leave the service for Kafka and the audit trail. */
static json_t *event_data(json_t *data) {
    json_t *d = json_is_object(data) ? json_deep_copy(data) : json_object();
    static const char *const drop[] = {"hash",     "passwordHash", "totpSecret", "totpPending",
                                       "csrf",     "pem",          "inviteHash", "secret",
                                       "csrfHash", "password",     "token",      NULL};
    for (size_t i = 0; drop[i] != NULL; i++) {
        json_object_del(d, drop[i]);
    }
    return d;
}

typedef struct {
    tsr_event_t ev;
    char *payload;
    size_t payload_len;
    char type[128];
    tsr_store_event_t row;
} pending_t;

static tsr_err_t pending_init(pending_t *p, const char *tenant, const tsr_id__audit_t *a,
                              tsr_error_t *err) {
    const char *topic = NULL;
    memset(p, 0, sizeof *p);
    event_type(a->type, p->type, sizeof p->type, &topic);
    const char *subject = json_string_value(json_object_get(a->data, "id"));
    tsr_err_t rc =
        tsr_event_init(&p->ev, EVENT_SOURCE, p->type, tenant, subject, event_data(a->data), err);
    if (rc != TSR_OK) {
        return rc;
    }
    if (a->actor != NULL) {
        p->ev.userid = tsr_xstrdup(a->actor);
    }
    rc = tsr_event_format(&p->ev, &p->payload, &p->payload_len, err);
    if (rc != TSR_OK) {
        tsr_event_cleanup(&p->ev);
        return rc;
    }
    p->row = (tsr_store_event_t){.id = p->ev.id,
                                 .topic = topic,
                                 .key = tenant,
                                 .payload = p->payload,
                                 .payload_len = p->payload_len};
    return TSR_OK;
}

static void pending_cleanup(pending_t *p) {
    tsr_event_cleanup(&p->ev);
    free(p->payload);
}

/* ---- the table ------------------------------------------------------------------------------- */

typedef struct {
    tsr_store_t *store;
    tsr_identity_t *id; /* back pointer for the audit hook */
} docs_t;

/* Run one write with its audit event (if any) in the outbox, then the in-process hook. */
typedef enum { W_CREATE, W_REPLACE, W_DEL } write_t;

static tsr_err_t d_write(docs_t *d, write_t w, const char *coll, const char *tenant,
                         const char *key, json_t *doc, const tsr_id__audit_t *a, tsr_error_t *err) {
    char sk[TSR_STORE_ID_MAX + 1];
    pending_t p;
    json_t *wrapped = NULL;
    tsr_err_t rc;
    if (a != NULL && (rc = pending_init(&p, tenant, a, err)) != TSR_OK) {
        return rc;
    }
    const tsr_store_event_t *ev = a != NULL ? &p.row : NULL;
    size_t nev = a != NULL ? 1 : 0;
    store_key(key, sk);
    if (w != W_DEL) {
        wrapped = json_pack("{sO}", "doc", doc);
    }
    switch (w) {
    case W_CREATE:
        rc = tsr_store_doc_create(d->store, tenant, coll, sk, wrapped, ev, nev, NULL, err);
        break;
    case W_REPLACE:
        rc = tsr_store_doc_replace(d->store, tenant, coll, sk, 0, wrapped, ev, nev, NULL, err);
        break;
    default:
        rc = tsr_store_doc_del(d->store, tenant, coll, sk, 0, ev, nev, err);
        break;
    }
    json_decref(wrapped);
    if (a != NULL) {
        pending_cleanup(&p);
    }
    if (rc == TSR_OK && a != NULL) {
        tsr_identity__audit(d->id, tenant, a->actor, a->type, a->data);
    }
    return rc;
}

static tsr_err_t d_create(void *ud, const char *coll, const char *tenant, const char *key,
                          json_t *doc, const tsr_id__audit_t *a, tsr_error_t *err) {
    return d_write(ud, W_CREATE, coll, tenant, key, doc, a, err);
}

static tsr_err_t d_replace(void *ud, const char *coll, const char *tenant, const char *key,
                           json_t *doc, const tsr_id__audit_t *a, tsr_error_t *err) {
    return d_write(ud, W_REPLACE, coll, tenant, key, doc, a, err);
}

static tsr_err_t d_del(void *ud, const char *coll, const char *tenant, const char *key,
                       const tsr_id__audit_t *a, tsr_error_t *err) {
    return d_write(ud, W_DEL, coll, tenant, key, NULL, a, err);
}

static tsr_err_t d_get(void *ud, const char *coll, const char *tenant, const char *key,
                       json_t **out, tsr_error_t *err) {
    docs_t *d = ud;
    char sk[TSR_STORE_ID_MAX + 1];
    json_t *stored = NULL;
    *out = NULL;
    store_key(key, sk);
    tsr_err_t rc = tsr_store_doc_get(d->store, tenant, coll, sk, &stored, err);
    if (rc == TSR_OK && (*out = unwrap(stored)) == NULL) {
        rc = tsr_error_set(err, TSR_ECORRUPT, "identity store: %s document without body", coll);
    }
    return rc;
}

/* field (top-level in identity's documents) as the store's index path. */
static const char *index_of(const char *field) {
    if (strcmp(field, "userId") == 0) {
        return "doc.userId";
    }
    if (strcmp(field, "sub") == 0) {
        return "doc.sub";
    }
    if (strcmp(field, "hostname") == 0) {
        return "doc.hostname";
    }
    return NULL;
}

/* Pages through the store (keyset cursor) until limit documents or the end. */
static tsr_err_t list_pages(docs_t *d, const char *coll, const char *tenant, bool platform,
                            const tsr_store_filter_t *f, size_t nf, size_t limit, json_t **out,
                            tsr_error_t *err) {
    char *cursor = NULL;
    tsr_err_t rc = TSR_OK;
    *out = json_array();
    while (json_array_size(*out) < limit) {
        size_t want = limit - json_array_size(*out);
        tsr_store_query_t q = {.filters = f,
                               .n_filters = nf,
                               .limit = want > TSR_STORE_LIST_MAX ? TSR_STORE_LIST_MAX : want,
                               .cursor = cursor};
        tsr_store_page_t page = {0};
        json_t *it;
        size_t i;
        rc = platform ? tsr_store_platform_doc_list(d->store, coll, &q, &page, err)
                      : tsr_store_doc_list(d->store, tenant, coll, &q, &page, err);
        free(cursor);
        cursor = NULL;
        if (rc != TSR_OK) {
            break;
        }
        json_array_foreach(page.items, i, it) {
            json_t *doc = json_object_get(it, "doc");
            if (doc != NULL) {
                json_array_append(*out, doc);
            }
        }
        cursor = page.next_cursor != NULL ? tsr_xstrdup(page.next_cursor) : NULL;
        tsr_store_page_cleanup(&page);
        if (cursor == NULL) {
            break;
        }
    }
    free(cursor);
    if (rc != TSR_OK) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

static tsr_err_t d_list(void *ud, const char *coll, const char *tenant, const char *field,
                        const char *value, const char *after, size_t limit, json_t **out,
                        tsr_error_t *err) {
    tsr_store_filter_t f[2] = {{0}};
    size_t nf = 0;
    char sk[TSR_STORE_ID_MAX + 1];
    json_t *jv = NULL, *ja = NULL;
    *out = NULL;
    if (field != NULL) {
        const char *path = index_of(field);
        if (path == NULL) {
            return tsr_error_set(err, TSR_EINVAL, "identity store: %s is not indexed", field);
        }
        jv = json_string(value != NULL ? value : "");
        f[nf++] = (tsr_store_filter_t){.field = path, .op = TSR_STORE_EQ, .value = jv};
    }
    if (after != NULL && after[0] != '\0') {
        store_key(after, sk);
        ja = json_string(sk);
        f[nf++] = (tsr_store_filter_t){.field = "id", .op = TSR_STORE_GT, .value = ja};
    }
    tsr_err_t rc = list_pages(ud, coll, tenant, false, f, nf, limit, out, err);
    json_decref(jv);
    json_decref(ja);
    return rc;
}

static tsr_err_t d_find(void *ud, const char *coll, const char *field, const char *value,
                        json_t **out, tsr_error_t *err) {
    const char *path = index_of(field);
    json_t *rows = NULL;
    *out = NULL;
    if (path == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "identity store: %s is not indexed", field);
    }
    json_t *jv = json_string(value);
    tsr_store_filter_t f = {.field = path, .op = TSR_STORE_EQ, .value = jv};
    tsr_err_t rc = list_pages(ud, coll, NULL, true, &f, 1, 1, &rows, err);
    json_decref(jv);
    if (rc == TSR_OK && json_array_size(rows) == 0) {
        rc = tsr_error_set(err, TSR_ENOTFOUND, "not found");
    } else if (rc == TSR_OK) {
        *out = json_incref(json_array_get(rows, 0));
    }
    json_decref(rows);
    return rc;
}

static void d_close(void *ud) {
    docs_t *d = ud;
    if (d != NULL) {
        tsr_store_destroy(d->store);
        free(d);
    }
}

void tsr_identity__docs_store(tsr_identity_t *id, tsr_store_t *store, tsr_id__docs_t *docs) {
    docs_t *d = tsr_xcalloc(1, sizeof *d);
    d->store = store;
    d->id = id;
    *docs = (tsr_id__docs_t){.ud = d,
                             .create = d_create,
                             .get = d_get,
                             .replace = d_replace,
                             .del = d_del,
                             .list = d_list,
                             .find = d_find,
                             .close = d_close};
}
