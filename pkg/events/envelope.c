/*
 * pkg/events envelope: CloudEvents 1.0 JSON format/parse, the versioned type grammar, the
 * topic catalogue, bootstrap lookup and the faultpoint hook. Parsing takes network input:
 * every size is capped and every attribute's JSON type is checked before use.
 */
#include "events.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

/* ---- versioned types --------------------------------------------------------------------- */

static bool seg_valid(const char *p, size_t n) {
    if (n == 0 || n >= TSR_EVENT_NAME_MAX || p[0] < 'a' || p[0] > 'z') {
        return false;
    }
    for (size_t i = 1; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
            return false;
        }
    }
    return true;
}

tsr_err_t tsr_event_type_parse(const char *type, tsr_event_type_t *out, tsr_error_t *err) {
    memset(out, 0, sizeof *out);
    if (type == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "type: missing");
    }
    size_t len = strlen(type);
    size_t plen = strlen(TSR_EVENT_TYPE_PREFIX);
    if (len > TSR_EVENT_ATTR_MAX || strncmp(type, TSR_EVENT_TYPE_PREFIX, plen) != 0) {
        return tsr_error_set(err, TSR_EINVAL, "type: must start with \"%s\"",
                             TSR_EVENT_TYPE_PREFIX);
    }
    const char *p = type + plen;
    /* version: "v" then a decimal without leading zeros, >= 1 */
    if (p[0] != 'v' || p[1] < '1' || p[1] > '9') {
        return tsr_error_set(err, TSR_EINVAL, "type: expected v<N> (N >= 1) after the prefix");
    }
    p++;
    unsigned long v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (unsigned long)(*p - '0');
        if (v > 9999) {
            return tsr_error_set(err, TSR_EINVAL, "type: version too large");
        }
        p++;
    }
    if (*p != '.') {
        return tsr_error_set(err, TSR_EINVAL, "type: expected '.' after the version");
    }
    p++;
    const char *last_dot = strrchr(p, '.');
    if (last_dot == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "type: expected <domain>.<action>");
    }
    /* every segment of domain and action must be valid */
    const char *s = p;
    while (s <= last_dot) {
        const char *d = strchr(s, '.');
        if (!seg_valid(s, (size_t)(d - s))) {
            return tsr_error_set(err, TSR_EINVAL, "type: bad domain segment");
        }
        s = d + 1;
    }
    size_t dlen = (size_t)(last_dot - p);
    size_t alen = strlen(last_dot + 1);
    if (!seg_valid(last_dot + 1, alen)) {
        return tsr_error_set(err, TSR_EINVAL, "type: bad action");
    }
    if (dlen >= TSR_EVENT_NAME_MAX) {
        return tsr_error_set(err, TSR_EINVAL, "type: domain too long");
    }
    out->version = (unsigned)v;
    memcpy(out->domain, p, dlen);
    out->domain[dlen] = '\0';
    memcpy(out->action, last_dot + 1, alen + 1);
    return TSR_OK;
}

tsr_err_t tsr_event_type_format(unsigned version, const char *domain, const char *action, char *out,
                                size_t cap, tsr_error_t *err) {
    tsr_buf_t b;
    tsr_err_t rc;
    tsr_event_type_t check;
    tsr_buf_init(&b, TSR_EVENT_ATTR_MAX);
    if (version == 0 || domain == NULL || action == NULL) {
        rc = tsr_error_set(err, TSR_EINVAL, "type: version >= 1, domain and action required");
        goto out;
    }
    rc = tsr_buf_appendf(&b, "%sv%u.%s.%s", TSR_EVENT_TYPE_PREFIX, version, domain, action);
    if (rc != TSR_OK) {
        rc = tsr_error_set(err, TSR_EINVAL, "type: too long");
        goto out;
    }
    rc = tsr_event_type_parse(b.data, &check, err);
    if (rc != TSR_OK) {
        goto out;
    }
    if (strcmp(check.action, action) != 0) {
        rc = tsr_error_set(err, TSR_EINVAL, "type: action must be one segment");
        goto out;
    }
    if (b.len + 1 > cap) {
        rc = tsr_error_set(err, TSR_ETOOBIG, "type: output buffer too small");
        goto out;
    }
    memcpy(out, b.data, b.len + 1);
out:
    tsr_buf_cleanup(&b);
    return rc;
}

/* ---- envelope ---------------------------------------------------------------------------- */

void tsr_event_cleanup(tsr_event_t *ev) {
    if (ev == NULL) {
        return;
    }
    free(ev->id);
    free(ev->source);
    free(ev->type);
    free(ev->time);
    free(ev->subject);
    free(ev->datacontenttype);
    free(ev->tenantid);
    free(ev->userid);
    free(ev->traceid);
    if (ev->data != NULL) {
        json_decref(ev->data);
    }
    memset(ev, 0, sizeof *ev);
}

tsr_err_t tsr_event_init(tsr_event_t *ev, const char *source, const char *type,
                         const char *tenant_id, const char *subject, json_t *data,
                         tsr_error_t *err) {
    char id[25];
    char now[25];
    memset(ev, 0, sizeof *ev);
    ev->data = data;
    if (source == NULL || type == NULL || tenant_id == NULL) {
        tsr_event_cleanup(ev);
        return tsr_error_set(err, TSR_EINVAL, "event: source, type and tenant id are required");
    }
    tsr_id_new(id);
    tsr_time_format_rfc3339(tsr_wall_ms(), now);
    ev->id = tsr_xstrdup(id);
    ev->source = tsr_xstrdup(source);
    ev->type = tsr_xstrdup(type);
    ev->time = tsr_xstrdup(now);
    ev->tenantid = tsr_xstrdup(tenant_id);
    ev->subject = subject != NULL ? tsr_xstrdup(subject) : NULL;
    ev->datacontenttype = data != NULL ? tsr_xstrdup("application/json") : NULL;
    tsr_err_t rc = tsr_event_validate(ev, err);
    if (rc != TSR_OK) {
        tsr_event_cleanup(ev);
    }
    return rc;
}

static tsr_err_t check_attr(const char *name, const char *v, bool required, tsr_error_t *err) {
    if (v == NULL) {
        return required ? tsr_error_set(err, TSR_EINVAL, "%s: missing", name) : TSR_OK;
    }
    size_t n = strlen(v);
    if (n == 0 && required) {
        return tsr_error_set(err, TSR_EINVAL, "%s: empty", name);
    }
    if (n > TSR_EVENT_ATTR_MAX) {
        return tsr_error_set(err, TSR_EINVAL, "%s: longer than %d bytes", name, TSR_EVENT_ATTR_MAX);
    }
    return TSR_OK;
}

tsr_err_t tsr_event_validate(const tsr_event_t *ev, tsr_error_t *err) {
    tsr_err_t rc;
    tsr_event_type_t t;
    if ((rc = check_attr("id", ev->id, true, err)) != TSR_OK ||
        (rc = check_attr("source", ev->source, true, err)) != TSR_OK ||
        (rc = check_attr("type", ev->type, true, err)) != TSR_OK ||
        (rc = check_attr("tenantid", ev->tenantid, true, err)) != TSR_OK ||
        (rc = check_attr("time", ev->time, false, err)) != TSR_OK ||
        (rc = check_attr("subject", ev->subject, false, err)) != TSR_OK ||
        (rc = check_attr("datacontenttype", ev->datacontenttype, false, err)) != TSR_OK ||
        (rc = check_attr("userid", ev->userid, false, err)) != TSR_OK ||
        (rc = check_attr("traceid", ev->traceid, false, err)) != TSR_OK) {
        return rc;
    }
    if ((rc = tsr_event_type_parse(ev->type, &t, err)) != TSR_OK) {
        return rc;
    }
    if (ev->time != NULL) {
        int64_t ms;
        if (tsr_time_parse_rfc3339(ev->time, &ms) != TSR_OK) {
            return tsr_error_set(err, TSR_EINVAL, "time: not RFC 3339");
        }
    }
    if (ev->data != NULL && ev->datacontenttype != NULL &&
        strcmp(ev->datacontenttype, "application/json") != 0) {
        return tsr_error_set(err, TSR_EINVAL, "datacontenttype: only application/json data");
    }
    return TSR_OK;
}

static void set_str(json_t *o, const char *k, const char *v) {
    if (v != NULL) {
        json_object_set_new(o, k, json_string(v));
    }
}

tsr_err_t tsr_event_format(const tsr_event_t *ev, char **out, size_t *out_len, tsr_error_t *err) {
    *out = NULL;
    *out_len = 0;
    tsr_err_t rc = tsr_event_validate(ev, err);
    if (rc != TSR_OK) {
        return rc;
    }
    json_t *o = json_object();
    json_object_set_new(o, "specversion", json_string(TSR_EVENT_SPECVERSION));
    set_str(o, "id", ev->id);
    set_str(o, "source", ev->source);
    set_str(o, "type", ev->type);
    set_str(o, "time", ev->time);
    set_str(o, "subject", ev->subject);
    set_str(o, "datacontenttype", ev->datacontenttype);
    set_str(o, "tenantid", ev->tenantid);
    set_str(o, "userid", ev->userid);
    set_str(o, "traceid", ev->traceid);
    if (ev->data != NULL) {
        json_object_set(o, "data", ev->data);
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "event: data cannot be serialised");
    }
    size_t n = strlen(s);
    if (n > TSR_EVENT_MAX_BYTES) {
        free(s);
        return tsr_error_set(err, TSR_ETOOBIG, "event: %zu bytes, over %d", n, TSR_EVENT_MAX_BYTES);
    }
    *out = s;
    *out_len = n;
    return TSR_OK;
}

/* Copy a string member; absent is fine (required-ness is checked by validate), any other JSON
 * type is an error. */
static tsr_err_t get_str(json_t *o, const char *k, char **dst, tsr_error_t *err) {
    json_t *v = json_object_get(o, k);
    if (v == NULL || json_is_null(v)) {
        return TSR_OK;
    }
    if (!json_is_string(v)) {
        return tsr_error_set(err, TSR_EINVAL, "%s: must be a string", k);
    }
    if (json_string_length(v) > TSR_EVENT_ATTR_MAX) {
        return tsr_error_set(err, TSR_EINVAL, "%s: longer than %d bytes", k, TSR_EVENT_ATTR_MAX);
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        return tsr_error_set(err, TSR_EINVAL, "%s: contains NUL", k);
    }
    *dst = tsr_xstrdup(json_string_value(v));
    return TSR_OK;
}

tsr_err_t tsr_event_parse(const char *buf, size_t len, tsr_event_t *ev, tsr_error_t *err) {
    tsr_err_t rc = TSR_OK;
    json_t *o = NULL;
    json_error_t jerr;
    memset(ev, 0, sizeof *ev);
    if (len > TSR_EVENT_MAX_BYTES) {
        return tsr_error_set(err, TSR_ETOOBIG, "event: %zu bytes, over %d", len,
                             TSR_EVENT_MAX_BYTES);
    }
    o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL) {
        rc = tsr_error_set(err, TSR_EINVAL, "event: not JSON: %s", jerr.text);
        goto out;
    }
    if (!json_is_object(o)) {
        rc = tsr_error_set(err, TSR_EINVAL, "event: not a JSON object");
        goto out;
    }
    json_t *sv = json_object_get(o, "specversion");
    if (sv == NULL) {
        rc = tsr_error_set(err, TSR_EINVAL, "specversion: missing");
        goto out;
    }
    if (!json_is_string(sv) || strcmp(json_string_value(sv), TSR_EVENT_SPECVERSION) != 0) {
        rc = tsr_error_set(err, TSR_EINVAL, "specversion: must be \"1.0\"");
        goto out;
    }
    if ((rc = get_str(o, "id", &ev->id, err)) != TSR_OK ||
        (rc = get_str(o, "source", &ev->source, err)) != TSR_OK ||
        (rc = get_str(o, "type", &ev->type, err)) != TSR_OK ||
        (rc = get_str(o, "time", &ev->time, err)) != TSR_OK ||
        (rc = get_str(o, "subject", &ev->subject, err)) != TSR_OK ||
        (rc = get_str(o, "datacontenttype", &ev->datacontenttype, err)) != TSR_OK ||
        (rc = get_str(o, "tenantid", &ev->tenantid, err)) != TSR_OK ||
        (rc = get_str(o, "userid", &ev->userid, err)) != TSR_OK ||
        (rc = get_str(o, "traceid", &ev->traceid, err)) != TSR_OK) {
        goto out;
    }
    json_t *data = json_object_get(o, "data");
    if (data != NULL) {
        ev->data = json_incref(data);
    }
    rc = tsr_event_validate(ev, err);
out:
    if (o != NULL) {
        json_decref(o);
    }
    if (rc != TSR_OK) {
        tsr_event_cleanup(ev);
    }
    return rc;
}

/* ---- topic catalogue --------------------------------------------------------------------- */

static const tsr_events_topic_t g_topics[] = {
#define TSR_TOPIC(name, parts, key, types, producers, consumers)                                   \
    {name, parts, key, types, producers, consumers},
#include "topics.def"
#undef TSR_TOPIC
    {NULL, 0, NULL, NULL, NULL, NULL},
};

const tsr_events_topic_t *tsr_events_topics(void) {
    return g_topics;
}

const tsr_events_topic_t *tsr_events_topic_get(const char *name) {
    for (const tsr_events_topic_t *t = g_topics; t->name != NULL; t++) {
        if (strcmp(t->name, name) == 0) {
            return t;
        }
    }
    return NULL;
}

void tsr_events_topics_print_markdown(FILE *out) {
    fputs("| topic | partitions | key | event types | producers | consumers |\n", out);
    fputs("|---|---|---|---|---|---|\n", out);
    for (const tsr_events_topic_t *t = g_topics; t->name != NULL; t++) {
        fprintf(out, "| `%s` | %d | %s | %s | %s | %s |\n", t->name, t->partitions, t->key,
                t->types, t->producers, t->consumers);
    }
}

/* ---- wiring helpers ---------------------------------------------------------------------- */

tsr_err_t tsr_events_bootstrap_resolve(char **out, tsr_error_t *err) {
    *out = NULL;
    const char *knob = tsr_config_get("TSR_KAFKA_BOOTSTRAP");
    if (knob[0] != '\0') {
        *out = tsr_xstrdup(knob);
        return TSR_OK;
    }
    tsr_buf_t path;
    tsr_buf_init(&path, PATH_MAX);
    tsr_err_t rc = tsr_buf_appendf(&path, "%s/kafka/bootstrap", tsr_config_get("TSR_STATE_DIR"));
    if (rc != TSR_OK) {
        tsr_buf_cleanup(&path);
        return tsr_error_set(err, TSR_EINVAL, "TSR_STATE_DIR too long");
    }
    FILE *f = fopen(path.data, "r");
    if (f == NULL) {
        rc = tsr_error_set(err, TSR_ENOTFOUND,
                           "TSR_KAFKA_BOOTSTRAP is empty and %s cannot be read: %s", path.data,
                           strerror(errno));
        tsr_buf_cleanup(&path);
        return rc;
    }
    char line[4096];
    if (fgets(line, sizeof line, f) == NULL) {
        line[0] = '\0';
    }
    fclose(f);
    tsr_str_t s = tsr_str_trim(tsr_str(line));
    if (s.n == 0) {
        rc = tsr_error_set(err, TSR_ENOTFOUND, "%s is empty", path.data);
    } else {
        *out = tsr_str_dup(s);
    }
    tsr_buf_cleanup(&path);
    return rc;
}

void tsr_events_faultpoint(const char *name) {
    static atomic_int hits;
    const char *fp = tsr_config_get("TSR_FAULTPOINT");
    if (fp[0] == '\0') {
        return;
    }
    size_t n = strlen(name);
    if (strncmp(fp, name, n) != 0 || (fp[n] != '\0' && fp[n] != ':')) {
        return;
    }
    int64_t at = 1;
    if (fp[n] == ':' && tsr_str_to_i64(tsr_str(fp + n + 1), 1, INT32_MAX, &at) != TSR_OK) {
        at = 1;
    }
    if (atomic_fetch_add(&hits, 1) + 1 == (int)at) {
        static const char msg[] = "{\"level\":\"warn\",\"msg\":\"faultpoint hit: SIGKILL\"}\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)w;
        raise(SIGKILL);
    }
}
