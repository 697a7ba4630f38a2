/*
 * pkg/audit HTTP handlers: Qlik Cloud's audits API (list with filters, sort and opaque
 * next/prev cursors in absolute links; one event; types; sources; a day's archive as NDJSON;
 * settings) plus /verify. Every handler resolves the principal from the ingress headers,
 * requires TenantAdmin or AuditAdmin, and reads only the principal's tenant, so another
 * tenant's event answers 404 like a missing one. Nothing here writes to the store.
 */
#include <string.h>
#include <time.h>

#include "audit_int.h"

#define DEFAULT_LIMIT 10
#define MAX_LIMIT 100
#define FILTER_MAX 512    /* longest eventType/source/userId filter, bytes */
#define ARCHIVE_PAGE 1000 /* records per store page while building an archive */
#define SCAN_PAGE 500     /* records per store page when a second filter is checked here */
#define VERIFY_MAX 200000 /* records one /verify call checks; the report says where to go on */
#define DAY_MS 86400000LL

typedef struct {
    const char *tenant;
    const char *user;
} principal_t;

static bool role_in(const char *roles, const char *want) {
    tsr_str_t s = tsr_str(roles), tok;
    while (tsr_str_next_tok(&s, ',', &tok)) {
        if (tsr_str_eq_cstr(tsr_str_trim(tok), want)) {
            return true;
        }
    }
    return false;
}

tsr_err_t tsr_audit_principal(tsr_req_t *req, void *ud, const char **principal, tsr_error_t *err) {
    (void)ud;
    const char *t = tsr_req_header(req, "x-tsr-tenant-id");
    const char *u = tsr_req_header(req, "x-tsr-user-id");
    if (t == NULL || t[0] == '\0' || u == NULL || u[0] == '\0') {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "authentication required");
    }
    tsr_req_set_identity(req, t, u);
    *principal = tsr_arena_printf(tsr_req_arena(req), "user:%.64s:%.64s", t, u);
    return TSR_OK;
}

/* The caller, who must be a TenantAdmin or an AuditAdmin of its tenant. */
static tsr_err_t require_reader(tsr_req_t *req, principal_t *p, tsr_error_t *err) {
    const char *roles = tsr_req_header(req, "x-tsr-roles");
    p->tenant = tsr_req_header(req, "x-tsr-tenant-id");
    p->user = tsr_req_header(req, "x-tsr-user-id");
    if (p->tenant == NULL || p->tenant[0] == '\0' || p->user == NULL || p->user[0] == '\0') {
        return tsr_error_set(err, TSR_EUNAUTHENTICATED, "authentication required");
    }
    tsr_req_set_identity(req, p->tenant, p->user);
    if (roles == NULL || (!role_in(roles, "TenantAdmin") && !role_in(roles, "AuditAdmin"))) {
        return tsr_error_set(err, TSR_EFORBIDDEN,
                             "reading the audit trail needs the TenantAdmin or AuditAdmin role");
    }
    return TSR_OK;
}

/* ---- views --------------------------------------------------------------------------------- */

/* The API's AuditEvent for a stored record: the envelope, the chain position under
 * "integrity", a self link when base is set. */
static json_t *event_view(const json_t *rec, const char *base) {
    json_t *v = json_deep_copy(rec);
    json_t *integ =
        json_pack("{sO sO sO}", "seq", json_object_get(rec, "seq"), "hash",
                  json_object_get(rec, "hash"), "prevHash", json_object_get(rec, "prevHash"));
    const char *keys[] = {"seq",   "hash",  "prevHash", "tkey",
                          "kUser", "kType", "kSource",  "version"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_object_del(v, keys[i]);
    }
    json_object_set_new(v, "integrity", integ != NULL ? integ : json_object());
    if (base != NULL) {
        json_t *self = json_object();
        json_object_set_new(self, "href",
                            json_sprintf("%s/api/v1/audits/%s", base,
                                         json_string_value(json_object_get(rec, "id"))));
        json_object_set_new(v, "links", json_pack("{so}", "self", self));
    }
    return v;
}

static int64_t cutoff_ms(const tsr_audit_t *a) {
    return tsr_wall_ms() - (int64_t)a->retention_days * DAY_MS;
}

static bool online(const tsr_audit_t *a, const json_t *rec) {
    int64_t ms = 0;
    const char *t = json_string_value(json_object_get(rec, "eventTime"));
    return t != NULL && tsr_time_parse_rfc3339(t, &ms) == TSR_OK && ms >= cutoff_ms(a);
}

/* ---- query helpers ------------------------------------------------------------------------- */

static void url_enc(tsr_buf_t *b, const char *s) {
    static const char hex[] = "0123456789ABCDEF";
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            tsr_buf_append(b, s, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            tsr_buf_append(b, e, 3);
        }
    }
}

typedef struct {
    const char *event_type, *source, *user_id, *event_time, *sort;
    bool desc;
    size_t limit;
    int64_t from_ms, to_ms; /* -1: open */
} list_q_t;

static tsr_err_t filter_param(tsr_req_t *req, const char *name, const char **out,
                              tsr_error_t *err) {
    const char *v = tsr_req_query(req, name);
    *out = NULL;
    if (v != NULL && (v[0] == '\0' || strlen(v) > FILTER_MAX)) {
        return tsr_error_set(err, TSR_EINVAL, "%s must be 1..%d bytes", name, FILTER_MAX);
    }
    *out = v;
    return TSR_OK;
}

static tsr_err_t parse_list_q(tsr_req_t *req, list_q_t *q, tsr_error_t *err) {
    tsr_err_t rc;
    int64_t lim = DEFAULT_LIMIT;
    memset(q, 0, sizeof *q);
    q->from_ms = q->to_ms = -1;
    const char *l = tsr_req_query(req, "limit");
    if (l != NULL && tsr_str_to_i64(tsr_str(l), 1, MAX_LIMIT, &lim) != TSR_OK) {
        return tsr_error_set(err, TSR_EINVAL, "limit must be an integer in 1..%d", MAX_LIMIT);
    }
    q->limit = (size_t)lim;
    if ((rc = filter_param(req, "eventType", &q->event_type, err)) != TSR_OK ||
        (rc = filter_param(req, "source", &q->source, err)) != TSR_OK ||
        (rc = filter_param(req, "userId", &q->user_id, err)) != TSR_OK ||
        (rc = filter_param(req, "eventTime", &q->event_time, err)) != TSR_OK) {
        return rc;
    }
    /* "+eventTime" arrives as " eventTime" when the client did not percent-encode the '+' */
    q->sort = tsr_req_query(req, "sort");
    q->desc = true;
    if (q->sort != NULL) {
        if (strcmp(q->sort, "+eventTime") == 0 || strcmp(q->sort, " eventTime") == 0 ||
            strcmp(q->sort, "eventTime") == 0) {
            q->desc = false;
        } else if (strcmp(q->sort, "-eventTime") != 0) {
            return tsr_error_set(err, TSR_EINVAL, "sort must be +eventTime or -eventTime");
        }
    }
    if (q->event_time != NULL) {
        const char *slash = strchr(q->event_time, '/');
        if (slash == NULL) {
            return tsr_error_set(err, TSR_EINVAL,
                                 "eventTime must be an interval <start>/<end> (RFC 3339)");
        }
        char *start =
            tsr_arena_strndup(tsr_req_arena(req), q->event_time, (size_t)(slash - q->event_time));
        if ((start[0] != '\0' && tsr_time_parse_rfc3339(start, &q->from_ms) != TSR_OK) ||
            (slash[1] != '\0' && tsr_time_parse_rfc3339(slash + 1, &q->to_ms) != TSR_OK) ||
            (start[0] == '\0' && slash[1] == '\0')) {
            return tsr_error_set(err, TSR_EINVAL,
                                 "eventTime must be an interval <start>/<end> (RFC 3339)");
        }
        if (q->from_ms >= 0 && q->to_ms >= 0 && q->to_ms < q->from_ms) {
            return tsr_error_set(err, TSR_EINVAL, "eventTime: the end is before the start");
        }
    }
    return TSR_OK;
}

/* Cursor: base64url of {"d":"n"|"p","k":tkey,"s":"+"|"-"}; opaque to clients. */
static char *cursor_make(tsr_req_t *req, char dir, const char *tkey, bool desc) {
    json_t *c = json_pack("{ss# ss ss}", "d", &dir, (size_t)1, "k", tkey, "s", desc ? "-" : "+");
    char *s = tsr_audit__canonical(c);
    tsr_buf_t b;
    tsr_buf_init(&b, 0);
    tsr_audit__b64u_encode(&b, (const unsigned char *)s, strlen(s));
    char *out = tsr_arena_strdup(tsr_req_arena(req), b.data != NULL ? b.data : "");
    tsr_buf_cleanup(&b);
    free(s);
    json_decref(c);
    return out;
}

static tsr_err_t cursor_open(tsr_req_t *req, const char *cur, bool desc, char *dir,
                             const char **tkey, tsr_error_t *err) {
    unsigned char buf[256];
    size_t n = 0;
    json_t *c = NULL;
    const char *d, *k, *s;
    if (strlen(cur) > 300 || !tsr_audit__b64u_decode(cur, strlen(cur), buf, sizeof buf, &n) ||
        (c = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, NULL)) == NULL ||
        (d = json_string_value(json_object_get(c, "d"))) == NULL ||
        (k = json_string_value(json_object_get(c, "k"))) == NULL ||
        (s = json_string_value(json_object_get(c, "s"))) == NULL || strlen(k) < 16 ||
        strlen(k) >= TSR_AUDIT__TKEY_MAX || strspn(k, "0123456789") != 15 || k[15] != '.' ||
        (strcmp(d, "n") != 0 && strcmp(d, "p") != 0)) {
        json_decref(c);
        return tsr_error_set(err, TSR_EINVAL, "not a valid cursor");
    }
    if (strcmp(s, desc ? "-" : "+") != 0) {
        json_decref(c);
        return tsr_error_set(err, TSR_EINVAL, "the cursor belongs to another sort order");
    }
    *dir = d[0];
    *tkey = tsr_arena_strdup(tsr_req_arena(req), k);
    json_decref(c);
    return TSR_OK;
}

static char *list_href(tsr_req_t *req, const list_q_t *q, const char *cname, const char *cval) {
    tsr_buf_t b;
    tsr_buf_init(&b, 0);
    tsr_buf_appendf(&b, "%s/api/v1/audits?limit=%zu", tsr_req_base_url(req), q->limit);
    const char *names[] = {"eventType", "source", "userId", "eventTime", "sort", cname};
    const char *vals[] = {q->event_type,
                          q->source,
                          q->user_id,
                          q->event_time,
                          q->sort != NULL ? (q->desc ? "-eventTime" : "+eventTime") : NULL,
                          cval};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (names[i] != NULL && vals[i] != NULL) {
            tsr_buf_appendf(&b, "&%s=", names[i]);
            url_enc(&b, vals[i]);
        }
    }
    char *out = tsr_arena_strdup(tsr_req_arena(req), b.data);
    tsr_buf_cleanup(&b);
    return out;
}

/* ---- handlers ------------------------------------------------------------------------------ */

/* ?id=a,b,c: those events (at most MAX_LIMIT ids), matching the other filters, in the sort
 * order; one page without cursors. */
static int cmp_tkey_asc(const void *x, const void *y) {
    const char *a = json_string_value(json_object_get(*(json_t *const *)x, "tkey"));
    const char *b = json_string_value(json_object_get(*(json_t *const *)y, "tkey"));
    return strcmp(a != NULL ? a : "", b != NULL ? b : "");
}

static bool matches(const tsr_audit_t *a, const list_q_t *q, const json_t *rec) {
    const char *fields[] = {"eventType", "source", "userId"};
    const char *want[] = {q->event_type, q->source, q->user_id};
    int64_t ms = 0;
    for (size_t i = 0; i < 3; i++) {
        const char *v = json_string_value(json_object_get(rec, fields[i]));
        if (want[i] != NULL && (v == NULL || strcmp(v, want[i]) != 0)) {
            return false;
        }
    }
    tsr_time_parse_rfc3339(json_string_value(json_object_get(rec, "eventTime")), &ms);
    return online(a, rec) && (q->from_ms < 0 || ms >= q->from_ms) &&
           (q->to_ms < 0 || ms <= q->to_ms);
}

static tsr_err_t list_by_ids(tsr_req_t *req, tsr_audit_t *a, const principal_t *p,
                             const list_q_t *q, const char *ids, tsr_error_t *err) {
    json_t *found[MAX_LIMIT];
    size_t n = 0;
    tsr_err_t rc = TSR_OK;
    tsr_str_t s = tsr_str(ids), tok;
    while (rc == TSR_OK && tsr_str_next_tok(&s, ',', &tok)) {
        tok = tsr_str_trim(tok);
        if (n >= MAX_LIMIT) {
            rc = tsr_error_set(err, TSR_EINVAL, "id: at most %d ids", MAX_LIMIT);
            break;
        }
        if (tok.n != 24 || strspn(tok.p, "0123456789abcdef") < 24) {
            continue; /* cannot exist: like a missing one */
        }
        char id[25];
        memcpy(id, tok.p, 24);
        id[24] = '\0';
        bool dup = false;
        for (size_t i = 0; i < n && !dup; i++) {
            dup = strcmp(json_string_value(json_object_get(found[i], "id")), id) == 0;
        }
        json_t *doc = NULL;
        if (dup) {
            continue;
        }
        rc = tsr_store_doc_get(a->store, p->tenant, TSR_AUDIT_C_EVENTS, id, &doc, err);
        if (rc == TSR_ENOTFOUND) {
            tsr_error_clear(err);
            rc = TSR_OK;
        } else if (rc == TSR_OK && matches(a, q, doc)) {
            found[n++] = doc;
            doc = NULL;
        }
        json_decref(doc);
    }
    if (rc == TSR_OK) {
        qsort(found, n, sizeof found[0], cmp_tkey_asc);
        const char *base = tsr_req_base_url(req);
        json_t *data = json_array();
        for (size_t i = 0; i < n && i < q->limit; i++) {
            json_array_append_new(data, event_view(found[q->desc ? n - 1 - i : i], base));
        }
        tsr_buf_t b;
        tsr_buf_init(&b, 0);
        url_enc(&b, ids);
        char *self = tsr_arena_printf(tsr_req_arena(req), "%s&id=%s", list_href(req, q, NULL, NULL),
                                      b.data != NULL ? b.data : "");
        tsr_buf_cleanup(&b);
        tsr_req_reply_json(req, 200,
                           json_pack("{so s{s{ss}}}", "data", data, "links", "self", "href", self));
    }
    for (size_t i = 0; i < n; i++) {
        json_decref(found[i]);
    }
    return rc;
}

/* An equality filter of the list: the record field and its composite index field. */
typedef struct {
    const char *field;
    const char *kfield;
    const char *value;
} eq_t;

static bool eq_match(const eq_t *eqs, size_t n, const json_t *rec) {
    for (size_t i = 0; i < n; i++) {
        const char *v = json_string_value(json_object_get(rec, eqs[i].field));
        if (eqs[i].value != NULL && (v == NULL || strcmp(v, eqs[i].value) != 0)) {
            return false;
        }
    }
    return true;
}

static const char *jtkey(const json_t *rec) {
    const char *t = json_string_value(json_object_get(rec, "tkey"));
    return t != NULL ? t : "";
}

/* One list page. The time order is the tkey index; with an equality filter the composite index
 * of the most selective one (userId, then eventType, then source: value length-prefixed, then
 * tkey) answers filter and order in one range scan. Further equality filters are checked here,
 * scanning at most a->scan_max records per request: a page may then hold fewer than limit events
 * and still have a next link (the cursor continues after the last record examined). */
static tsr_err_t h_list(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_audit_t *a = ud;
    principal_t p;
    list_q_t q;
    char tk[TSR_AUDIT__TKEY_MAX], last_scanned[TSR_AUDIT__TKEY_MAX] = "";
    char dir = 'n';
    const char *ckey = NULL, *cname = NULL, *cval = NULL;
    json_t *vals[4] = {0}, *matches = NULL;
    size_t nf = 0, nv = 0, scanned = 0;
    tsr_store_filter_t f[4];
    char *scursor = NULL;
    bool capped = false;
    tsr_err_t rc = require_reader(req, &p, err);
    if (rc == TSR_OK) {
        rc = parse_list_q(req, &q, err);
    }
    if (rc != TSR_OK) {
        return rc;
    }
    const char *ids = tsr_req_query(req, "id");
    if (ids != NULL) {
        return list_by_ids(req, a, &p, &q, ids, err);
    }
    const char *next = tsr_req_query(req, "next"), *prev = tsr_req_query(req, "prev");
    if (next != NULL && prev != NULL) {
        return tsr_error_set(err, TSR_EINVAL, "provide next or prev, not both");
    }
    if (next != NULL || prev != NULL) {
        cname = next != NULL ? "next" : "prev";
        cval = next != NULL ? next : prev;
        if ((rc = cursor_open(req, cval, q.desc, &dir, &ckey, err)) != TSR_OK) {
            return rc;
        }
    }
    eq_t eqs[3] = {{"userId", "kUser", q.user_id},
                   {"eventType", "kType", q.event_type},
                   {"source", "kSource", q.source}};
    const eq_t *drv = NULL;
    for (size_t i = 0; i < 3 && drv == NULL; i++) {
        drv = eqs[i].value != NULL ? &eqs[i] : NULL;
    }
    bool other_eq = false;
    for (size_t i = 0; i < 3; i++) {
        other_eq = other_eq || (eqs[i].value != NULL && &eqs[i] != drv);
    }
    const char *prefix = drv != NULL ? tsr_audit__kprefix(tsr_req_arena(req), drv->value) : "";
    const char *kfield = drv != NULL ? drv->kfield : "tkey";
    tsr_arena_t *ar = tsr_req_arena(req);
    /* the time window: retention floor and interval, then the cursor */
    int64_t floor_ms = cutoff_ms(a);
    if (q.from_ms > floor_ms) {
        floor_ms = q.from_ms;
    }
    tsr_audit__tkey_floor(floor_ms, tk);
    vals[nv] = json_string(tsr_arena_printf(ar, "%s%s", prefix, tk));
    f[nf++] = (tsr_store_filter_t){kfield, TSR_STORE_GE, vals[nv++]};
    if (q.to_ms >= 0 || drv != NULL) {
        /* ':' sorts right after the digits every tkey starts with */
        tsr_audit__tkey_floor(q.to_ms + 1, tk);
        vals[nv] = json_string(tsr_arena_printf(ar, "%s%s", prefix, q.to_ms >= 0 ? tk : ":"));
        f[nf++] = (tsr_store_filter_t){kfield, TSR_STORE_LT, vals[nv++]};
    }
    /* a prev page walks backwards from the cursor, then is turned around */
    bool backward = dir == 'p';
    bool desc = q.desc != backward;
    if (ckey != NULL) {
        vals[nv] = json_string(tsr_arena_printf(ar, "%s%s", prefix, ckey));
        f[nf++] = (tsr_store_filter_t){kfield, desc ? TSR_STORE_LT : TSR_STORE_GT, vals[nv++]};
    }
    size_t want = q.limit + 1;
    matches = json_array();
    do {
        tsr_store_query_t sq = {
            .filters = f,
            .n_filters = nf,
            .sort = kfield,
            .descending = desc,
            .limit = other_eq ? (a->scan_max < SCAN_PAGE ? a->scan_max : SCAN_PAGE) : want,
            .cursor = scursor};
        tsr_store_page_t pg = {0};
        rc = tsr_store_doc_list(a->store, p.tenant, TSR_AUDIT_C_EVENTS, &sq, &pg, err);
        free(scursor);
        scursor = NULL;
        if (rc != TSR_OK) {
            break;
        }
        size_t i;
        json_t *d;
        json_array_foreach(pg.items, i, d) {
            scanned++;
            snprintf(last_scanned, sizeof last_scanned, "%s", jtkey(d));
            if (eq_match(eqs, 3, d)) {
                json_array_append(matches, d);
            }
            if (json_array_size(matches) == want) {
                break;
            }
        }
        if (other_eq && json_array_size(matches) < want && pg.next_cursor != NULL) {
            scursor = tsr_xstrdup(pg.next_cursor);
            capped = scanned >= a->scan_max;
        }
        tsr_store_page_cleanup(&pg);
    } while (scursor != NULL && !capped);
    free(scursor);
    for (size_t i = 0; i < nv; i++) {
        json_decref(vals[i]);
    }
    if (rc != TSR_OK) {
        json_decref(matches);
        return rc;
    }
    size_t got = json_array_size(matches);
    bool more = got > q.limit || capped;
    size_t n = got > q.limit ? q.limit : got;
    const char *base = tsr_req_base_url(req);
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++) {
        size_t idx = backward ? n - 1 - i : i;
        json_array_append_new(data, event_view(json_array_get(matches, idx), base));
    }
    json_t *links = json_object();
    json_object_set_new(links, "self", json_pack("{ss}", "href", list_href(req, &q, cname, cval)));
    /* nearest and farthest shown (in scan order); past a capped scan, continue after the last
     * record examined so that a page never repeats */
    const char *nearest = n > 0 ? jtkey(json_array_get(matches, 0)) : NULL;
    const char *farthest = n > 0 ? jtkey(json_array_get(matches, n - 1)) : NULL;
    const char *onward = capped && got <= q.limit ? last_scanned : farthest;
    const char *next_key = NULL, *prev_key = NULL;
    if (!backward) {
        next_key = more ? onward : NULL;
        prev_key = ckey != NULL ? nearest : NULL;
    } else {
        next_key = nearest;
        prev_key = more ? onward : NULL;
    }
    if (next_key != NULL) {
        json_object_set_new(
            links, "next",
            json_pack("{ss}", "href",
                      list_href(req, &q, "next", cursor_make(req, 'n', next_key, q.desc))));
    }
    if (prev_key != NULL) {
        json_object_set_new(
            links, "prev",
            json_pack("{ss}", "href",
                      list_href(req, &q, "prev", cursor_make(req, 'p', prev_key, q.desc))));
    }
    json_decref(matches);
    tsr_req_reply_json(req, 200, json_pack("{so so}", "data", data, "links", links));
    return TSR_OK;
}

static tsr_err_t h_get(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_audit_t *a = ud;
    principal_t p;
    json_t *doc = NULL;
    tsr_err_t rc = require_reader(req, &p, err);
    if (rc != TSR_OK) {
        return rc;
    }
    const char *id = tsr_req_param(req, "id");
    if (id == NULL || strlen(id) != 24 || strspn(id, "0123456789abcdef") != 24) {
        return tsr_error_set(err, TSR_ENOTFOUND, "no such audit event");
    }
    rc = tsr_store_doc_get(a->store, p.tenant, TSR_AUDIT_C_EVENTS, id, &doc, err);
    if (rc == TSR_ENOTFOUND || (rc == TSR_OK && !online(a, doc))) {
        json_decref(doc);
        return tsr_error_set(err, TSR_ENOTFOUND, "no such audit event");
    }
    if (rc == TSR_OK) {
        tsr_req_reply_json(req, 200, event_view(doc, tsr_req_base_url(req)));
    }
    json_decref(doc);
    return rc;
}

static tsr_err_t facet(tsr_req_t *req, tsr_audit_t *a, const char *key, const char *path,
                       tsr_error_t *err) {
    principal_t p;
    json_t *head = NULL, *out;
    tsr_err_t rc = require_reader(req, &p, err);
    if (rc != TSR_OK) {
        return rc;
    }
    rc = tsr_store_doc_get(a->store, p.tenant, TSR_AUDIT_C_CHAINS, TSR_AUDIT__HEAD_ID, &head, err);
    if (rc == TSR_ENOTFOUND) {
        tsr_error_clear(err);
        rc = TSR_OK;
    }
    if (rc != TSR_OK) {
        return rc;
    }
    json_t *arr = json_object_get(head, key);
    out = json_is_array(arr) ? json_deep_copy(arr) : json_array();
    /* sorted for a stable answer: insertion order would leak when each first appeared */
    size_t n = json_array_size(out);
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0; j--) {
            const char *x = json_string_value(json_array_get(out, j - 1));
            const char *y = json_string_value(json_array_get(out, j));
            if (x == NULL || y == NULL || strcmp(x, y) <= 0) {
                break;
            }
            json_t *t = json_incref(json_array_get(out, j - 1));
            json_array_set(out, j - 1, json_array_get(out, j));
            json_array_set_new(out, j, t);
        }
    }
    json_decref(head);
    json_t *self = json_object();
    json_object_set_new(self, "href", json_sprintf("%s%s", tsr_req_base_url(req), path));
    tsr_req_reply_json(req, 200, json_pack("{so s{so}}", "data", out, "links", "self", self));
    return TSR_OK;
}

static tsr_err_t h_types(tsr_req_t *req, void *ud, tsr_error_t *err) {
    return facet(req, ud, "types", "/api/v1/audits/types", err);
}

static tsr_err_t h_sources(tsr_req_t *req, void *ud, tsr_error_t *err) {
    return facet(req, ud, "sources", "/api/v1/audits/sources", err);
}

static tsr_err_t h_settings(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_audit_t *a = ud;
    principal_t p;
    tsr_err_t rc = require_reader(req, &p, err);
    if (rc == TSR_OK) {
        tsr_req_reply_json(req, 200,
                           json_pack("{s{sI sb sI}}", "data", "EventTTL",
                                     (json_int_t)a->retention_days * 86400, "ArchiveEnabled", 1,
                                     "retentionDays", (json_int_t)a->retention_days));
    }
    return rc;
}

/* "YYYY-MM-DD" → ms at 00:00:00Z. */
static tsr_err_t parse_day(const char *s, int64_t *ms, tsr_error_t *err) {
    char buf[32];
    if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-' ||
        strspn(s, "0123456789-") != 10) {
        return tsr_error_set(err, TSR_EINVAL, "date must be YYYY-MM-DD");
    }
    snprintf(buf, sizeof buf, "%sT00:00:00Z", s);
    if (tsr_time_parse_rfc3339(buf, ms) != TSR_OK) {
        return tsr_error_set(err, TSR_EINVAL, "date must be a valid YYYY-MM-DD");
    }
    return TSR_OK;
}

static tsr_err_t h_archive(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_audit_t *a = ud;
    principal_t p;
    int64_t day = 0;
    char lo[TSR_AUDIT__TKEY_MAX], hi[TSR_AUDIT__TKEY_MAX];
    char *cursor = NULL;
    size_t count = 0;
    tsr_buf_t out;
    tsr_err_t rc = require_reader(req, &p, err);
    if (rc == TSR_OK) {
        rc = parse_day(tsr_req_query(req, "date"), &day, err);
    }
    if (rc != TSR_OK) {
        return rc;
    }
    const char *accept = tsr_req_header(req, "accept");
    bool as_json = accept != NULL && strstr(accept, "application/json") != NULL &&
                   strstr(accept, "ndjson") == NULL;
    tsr_audit__tkey_floor(day, lo);
    tsr_audit__tkey_floor(day + DAY_MS, hi);
    json_t *vlo = json_string(lo), *vhi = json_string(hi);
    tsr_store_filter_t f[2] = {{"tkey", TSR_STORE_GE, vlo}, {"tkey", TSR_STORE_LT, vhi}};
    tsr_buf_init(&out, a->archive_max_bytes);
    if (as_json) {
        tsr_buf_append_str(&out, "{\"data\":[");
    }
    do {
        tsr_store_query_t q = {
            .filters = f, .n_filters = 2, .sort = "tkey", .limit = ARCHIVE_PAGE, .cursor = cursor};
        tsr_store_page_t pg = {0};
        rc = tsr_store_doc_list(a->store, p.tenant, TSR_AUDIT_C_EVENTS, &q, &pg, err);
        free(cursor);
        cursor = NULL;
        if (rc != TSR_OK) {
            break;
        }
        size_t i;
        json_t *d;
        json_array_foreach(pg.items, i, d) {
            json_t *v = event_view(d, NULL);
            char *line = json_dumps(v, JSON_COMPACT);
            json_decref(v);
            if ((as_json && count > 0 && tsr_buf_append_str(&out, ",") != TSR_OK) ||
                tsr_buf_append_str(&out, line) != TSR_OK ||
                (!as_json && tsr_buf_append_str(&out, "\n") != TSR_OK)) {
                rc = tsr_error_set(err, TSR_ETOOBIG, "the archive of %s is larger than %zu bytes",
                                   tsr_req_query(req, "date"), a->archive_max_bytes);
            }
            free(line);
            count++;
            if (rc != TSR_OK) {
                break;
            }
        }
        if (rc == TSR_OK && pg.next_cursor != NULL) {
            cursor = tsr_xstrdup(pg.next_cursor);
        }
        tsr_store_page_cleanup(&pg);
    } while (rc == TSR_OK && cursor != NULL);
    free(cursor);
    json_decref(vlo);
    json_decref(vhi);
    if (rc == TSR_OK && count == 0) {
        rc = tsr_error_set(err, TSR_ENOTFOUND, "no archived events on that day");
    }
    if (rc == TSR_OK) {
        if (as_json) {
            tsr_buf_append_str(&out, "]}");
        }
        tsr_req_reply_bytes(req, 200, as_json ? "application/json" : "application/x-ndjson",
                            out.data, out.len);
    }
    tsr_buf_cleanup(&out);
    return rc;
}

static tsr_err_t h_verify(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_audit_t *a = ud;
    principal_t p;
    int64_t from = 0, to = 0;
    json_t *report = NULL;
    tsr_err_t rc = require_reader(req, &p, err);
    if (rc != TSR_OK) {
        return rc;
    }
    const char *f = tsr_req_query(req, "from"), *t = tsr_req_query(req, "to");
    if ((f != NULL && tsr_str_to_i64(tsr_str(f), 1, INT64_MAX / 2, &from) != TSR_OK) ||
        (t != NULL && tsr_str_to_i64(tsr_str(t), 1, INT64_MAX / 2, &to) != TSR_OK) ||
        (to != 0 && to < from)) {
        return tsr_error_set(err, TSR_EINVAL, "from and to must be sequence numbers, from <= to");
    }
    rc = tsr_audit_verify(a, p.tenant, from, to, VERIFY_MAX, &report, err);
    if (rc == TSR_OK) {
        tsr_req_reply_json(req, 200, report);
    }
    return rc;
}

static const struct {
    const char *pattern;
    tsr_httpd_handler_fn fn;
} ROUTES[] = {
    {"/api/v1/audits", h_list},
    {"/api/v1/audits/types", h_types},
    {"/api/v1/audits/sources", h_sources},
    {"/api/v1/audits/settings", h_settings},
    {"/api/v1/audits/archive", h_archive},
    {"/api/v1/audits/verify", h_verify},
    {"/api/v1/audits/{id}", h_get},
};

bool tsr_audit__route_at(size_t i, const char **method, const char **pattern) {
    if (i >= sizeof ROUTES / sizeof ROUTES[0]) {
        return false;
    }
    *method = "GET";
    *pattern = ROUTES[i].pattern;
    return true;
}

tsr_err_t tsr_audit_routes(tsr_httpd_t *h, void *ud, tsr_error_t *err) {
    if (ud == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "audit routes need the service");
    }
    for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0]; i++) {
        tsr_err_t rc = tsr_httpd_route(h, "GET", ROUTES[i].pattern, ROUTES[i].fn, ud, err);
        if (rc != TSR_OK) {
            return rc;
        }
    }
    return TSR_OK;
}
