/*
 * pkg/reload schedule core: RFC 5545 RRULE lines (libical's iterator) expanded in floating
 * local time and turned into instants in an IANA zone (libical's zoneinfo), the misfire
 * decision, chained-trigger matching and the auto-suspend rule. Pure: no store, no clock.
 * libical keeps global state (zone cache, errno), so every call into it holds one mutex.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <libical/ical.h>

#include "reload_int.h"

#define ITER_CAP 2000000 /* occurrences one next() may walk before giving up */
#define DAY_S INT64_C(86400)

struct tsr_reload_sched {
    icaltimezone *zone; /* NULL: UTC; libical's builtin zones live until exit */
    bool none;          /* neither start nor recurrence: never fires */
    int64_t start_local_s;
    int64_t end_ms; /* TSR_RELOAD_NEVER: no end */
    size_t n_rules;
    struct icalrecurrencetype rules[TSR_RELOAD_MAX_RECURRENCE];
};

static pthread_mutex_t ical_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t ical_once = PTHREAD_ONCE_INIT;

static void ical_init(void) {
    icalerror_set_errors_are_fatal(0);
}

/* ---- civil time (days since 1970-01-01, proleptic Gregorian) --------------------------------- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3u : 9u)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned dd = doy - (153 * mp + 2) / 5 + 1;
    unsigned mm = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (mm <= 2));
    *m = (int)mm;
    *d = (int)dd;
}

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static struct icaltimetype ical_of_local(int64_t s) {
    struct icaltimetype t = icaltime_null_time();
    int64_t days = floor_div(s, DAY_S);
    int64_t rem = s - days * DAY_S;
    civil_from_days(days, &t.year, &t.month, &t.day);
    t.hour = (int)(rem / 3600);
    t.minute = (int)(rem % 3600 / 60);
    t.second = (int)(rem % 60);
    t.is_date = 0;
    return t;
}

static int64_t local_of_ical(struct icaltimetype t) {
    return days_from_civil(t.year, (unsigned)t.month, (unsigned)t.day) * DAY_S + t.hour * 3600 +
           t.minute * 60 + t.second;
}

/* ---- zones (callers hold ical_mu) ------------------------------------------------------------ */

static int64_t offset_of_utc(icaltimezone *zone, int64_t utc_s) {
    if (zone == NULL) {
        return 0;
    }
    struct icaltimetype t = ical_of_local(utc_s);
    int dst = 0;
    return icaltimezone_get_utc_offset_of_utc_time(zone, &t, &dst);
}

/* RFC 5545 §3.3.5: a local time in a gap takes the offset before the gap; a local time that
 * occurs twice is its first occurrence. Offsets change at most once within a day either side. */
static int64_t local_to_utc(icaltimezone *zone, int64_t l) {
    if (zone == NULL) {
        return l;
    }
    int64_t o_early = offset_of_utc(zone, l - DAY_S);
    int64_t o_late = offset_of_utc(zone, l + DAY_S);
    int64_t u1 = l - o_early, u2 = l - o_late;
    bool v1 = u1 + offset_of_utc(zone, u1) == l;
    bool v2 = u2 + offset_of_utc(zone, u2) == l;
    if (v1 && v2) {
        return u1 < u2 ? u1 : u2;
    }
    if (v1) {
        return u1;
    }
    if (v2) {
        return u2;
    }
    return u1; /* in the gap */
}

static bool tz_name_ok(const char *tz) {
    size_t n = strlen(tz);
    if (n == 0 || n > TSR_RELOAD_TZ_MAX || tz[0] == '/' || strstr(tz, "..") != NULL) {
        return false;
    }
    return strspn(tz, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+-/") == n;
}

static bool tz_is_utc(const char *tz) {
    return tz == NULL || tz[0] == '\0' || strcmp(tz, "UTC") == 0 || strcmp(tz, "Etc/UTC") == 0 ||
           strcmp(tz, "Z") == 0;
}

/* Callers hold ical_mu. */
static tsr_err_t zone_lookup(const char *tz, icaltimezone **out, tsr_error_t *err) {
    *out = NULL;
    if (tz_is_utc(tz)) {
        return TSR_OK;
    }
    if (!tz_name_ok(tz)) {
        return tsr_error_set(err, TSR_EINVAL, "timeZone: not an IANA time zone name");
    }
    *out = icaltimezone_get_builtin_timezone(tz);
    if (*out == NULL) {
        return tsr_error_set(err, TSR_EINVAL, "timeZone: unknown time zone '%s'", tz);
    }
    return TSR_OK;
}

tsr_err_t tsr_reload_tz_local_to_utc(const char *tz, int64_t local_s, int64_t *utc_s,
                                     tsr_error_t *err) {
    icaltimezone *zone = NULL;
    pthread_once(&ical_once, ical_init);
    pthread_mutex_lock(&ical_mu);
    tsr_err_t rc = zone_lookup(tz, &zone, err);
    if (rc == TSR_OK) {
        *utc_s = local_to_utc(zone, local_s);
    }
    pthread_mutex_unlock(&ical_mu);
    return rc;
}

/* ---- parsing --------------------------------------------------------------------------------- */

/* "YYYY-MM-DDTHH:MM:SS" exactly → local seconds. */
static bool parse_local(const char *s, int64_t *out) {
    int64_t v[6];
    static const size_t pos[6] = {0, 5, 8, 11, 14, 17}, len[6] = {4, 2, 2, 2, 2, 2};
    if (strlen(s) != 19 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':') {
        return false;
    }
    for (int i = 0; i < 6; i++) {
        if (tsr_str_to_i64(tsr_str_n(s + pos[i], len[i]), 0, 9999, &v[i]) != TSR_OK) {
            return false;
        }
    }
    if (v[0] < 1970 || v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 || v[4] > 59 ||
        v[5] > 59) {
        return false;
    }
    int y, m, d;
    int64_t days = days_from_civil(v[0], (unsigned)v[1], (unsigned)v[2]);
    civil_from_days(days, &y, &m, &d);
    if (d != v[2]) {
        return false; /* 31 February */
    }
    *out = days * DAY_S + v[3] * 3600 + v[4] * 60 + v[5];
    return true;
}

/* A start/end value: local without offset when a zone is set, else RFC 3339 with offset
 * (also accepted with a zone; then converted to local time there). Callers hold ical_mu. */
static tsr_err_t parse_when(const char *field, const char *s, icaltimezone *zone, bool have_tz,
                            int64_t *local_s, tsr_error_t *err) {
    int64_t ms = 0;
    if (have_tz && parse_local(s, local_s)) {
        return TSR_OK;
    }
    if (tsr_time_parse_rfc3339(s, &ms) != TSR_OK) {
        return tsr_error_set(err, TSR_EINVAL,
                             have_tz ? "%s: expected local YYYY-MM-DDTHH:MM:SS"
                                     : "%s: expected RFC 3339 with an offset (or set timeZone)",
                             field);
    }
    int64_t u = floor_div(ms, 1000);
    *local_s = u + offset_of_utc(zone, u);
    return TSR_OK;
}

tsr_err_t tsr_reload_sched_create(const tsr_reload_sched_spec_t *spec, tsr_reload_sched_t **out,
                                  tsr_error_t *err) {
    tsr_err_t rc = TSR_OK;
    bool have_start = spec->start != NULL && spec->start[0] != '\0';
    /* Any explicit zone (UTC too) takes local times; without one, times carry offsets. */
    bool have_tz = spec->time_zone != NULL && spec->time_zone[0] != '\0';
    *out = NULL;
    if (spec->n_recurrence > TSR_RELOAD_MAX_RECURRENCE) {
        return tsr_error_set(err, TSR_EINVAL, "recurrence: at most %d lines",
                             TSR_RELOAD_MAX_RECURRENCE);
    }
    tsr_reload_sched_t *s = tsr_xcalloc(1, sizeof *s);
    s->end_ms = TSR_RELOAD_NEVER;
    pthread_once(&ical_once, ical_init);
    pthread_mutex_lock(&ical_mu);
    if ((rc = zone_lookup(spec->time_zone, &s->zone, err)) != TSR_OK) {
        goto out;
    }
    if (!have_start && spec->n_recurrence == 0) {
        s->none = true;
        goto out;
    }
    if (have_start) {
        if ((rc = parse_when("startDateTime", spec->start, s->zone, have_tz, &s->start_local_s,
                             err)) != TSR_OK) {
            goto out;
        }
    } else {
        int64_t u = floor_div(spec->start_default_ms, 1000);
        s->start_local_s = u + offset_of_utc(s->zone, u);
    }
    if (spec->end != NULL && spec->end[0] != '\0') {
        int64_t end_local = 0;
        if ((rc = parse_when("endDateTime", spec->end, s->zone, have_tz, &end_local, err)) !=
            TSR_OK) {
            goto out;
        }
        s->end_ms = local_to_utc(s->zone, end_local) * 1000;
    }
    for (size_t i = 0; i < spec->n_recurrence; i++) {
        const char *line = spec->recurrence[i];
        if (line == NULL || strlen(line) > TSR_RELOAD_RECUR_MAX_LEN ||
            strncmp(line, "RRULE:", 6) != 0) {
            rc = tsr_error_set(err, TSR_EINVAL,
                               "recurrence[%zu]: expected an RRULE:... line (no DTSTART/DTEND)", i);
            goto out;
        }
        icalerror_clear_errno();
        struct icalrecurrencetype r = icalrecurrencetype_from_string(line + 6);
        if (icalerrno != ICAL_NO_ERROR || r.freq == ICAL_NO_RECURRENCE) {
            icalerror_clear_errno();
            rc = tsr_error_set(err, TSR_EINVAL, "recurrence[%zu]: not a valid RFC 5545 RRULE", i);
            goto out;
        }
        if (r.freq == ICAL_SECONDLY_RECURRENCE) {
            rc = tsr_error_set(err, TSR_EINVAL, "recurrence[%zu]: FREQ=SECONDLY is not allowed", i);
            goto out;
        }
        if (r.interval < 1) {
            r.interval = 1;
        }
        s->rules[s->n_rules++] = r;
    }
out:
    pthread_mutex_unlock(&ical_mu);
    if (rc != TSR_OK) {
        free(s);
        return rc;
    }
    *out = s;
    return TSR_OK;
}

void tsr_reload_sched_destroy(tsr_reload_sched_t *s) {
    free(s);
}

/* The length in local seconds of one step of a rule whose occurrence pattern repeats with it
 * (so the iteration may start a whole number of steps later), or 0 when it does not. */
static int64_t rule_period(const struct icalrecurrencetype *r) {
    if (r->count > 0) {
        return 0; /* COUNT counts from DTSTART */
    }
    switch (r->freq) {
    case ICAL_MINUTELY_RECURRENCE:
        return 60 * (int64_t)r->interval;
    case ICAL_HOURLY_RECURRENCE:
        return 3600 * (int64_t)r->interval;
    case ICAL_DAILY_RECURRENCE:
        return DAY_S * r->interval;
    case ICAL_WEEKLY_RECURRENCE:
        return 7 * DAY_S * r->interval;
    default:
        return 0; /* months and years have no fixed length; they are sparse anyway */
    }
}

/* First instant (s) > after_s of one rule, or TSR_RELOAD_NEVER. Callers hold ical_mu. */
static int64_t rule_next(const tsr_reload_sched_t *s, const struct icalrecurrencetype *r,
                         int64_t after_s) {
    int64_t dtstart = s->start_local_s;
    int64_t period = rule_period(r);
    /* Two days of margin cover any zone offset between the local and the UTC clock. */
    int64_t target = after_s + offset_of_utc(s->zone, after_s) - 2 * DAY_S;
    if (period > 0 && target > dtstart) {
        dtstart += (target - dtstart) / period * period;
    }
    icalrecur_iterator *it = icalrecur_iterator_new(*r, ical_of_local(dtstart));
    if (it == NULL) {
        return TSR_RELOAD_NEVER;
    }
    int64_t best = TSR_RELOAD_NEVER, best_local = 0;
    for (long i = 0; i < ITER_CAP; i++) {
        struct icaltimetype t = icalrecur_iterator_next(it);
        if (icaltime_is_null_time(t)) {
            break;
        }
        int64_t l = local_of_ical(t);
        /* Gap mapping is not monotonic: keep looking a few hours past the first hit. */
        if (best != TSR_RELOAD_NEVER && l > best_local + 3 * 3600) {
            break;
        }
        int64_t u = local_to_utc(s->zone, l);
        if (s->end_ms != TSR_RELOAD_NEVER && u * 1000 > s->end_ms) {
            if (u * 1000 > s->end_ms + 3 * 3600 * 1000) {
                break;
            }
            continue;
        }
        if (u > after_s && (best == TSR_RELOAD_NEVER || u < best)) {
            if (best == TSR_RELOAD_NEVER) {
                best_local = l;
            }
            best = u;
        }
    }
    icalrecur_iterator_free(it);
    return best;
}

int64_t tsr_reload_sched_next(const tsr_reload_sched_t *s, int64_t after_ms) {
    int64_t best = TSR_RELOAD_NEVER;
    int64_t after_s = floor_div(after_ms, 1000); /* fires are on whole seconds */
    if (s == NULL || s->none) {
        return TSR_RELOAD_NEVER;
    }
    pthread_once(&ical_once, ical_init);
    pthread_mutex_lock(&ical_mu);
    if (s->n_rules == 0) {
        int64_t u = local_to_utc(s->zone, s->start_local_s);
        if (u > after_s && (s->end_ms == TSR_RELOAD_NEVER || u * 1000 <= s->end_ms)) {
            best = u;
        }
    }
    for (size_t i = 0; i < s->n_rules; i++) {
        int64_t u = rule_next(s, &s->rules[i], after_s);
        if (u != TSR_RELOAD_NEVER && (best == TSR_RELOAD_NEVER || u < best)) {
            best = u;
        }
    }
    pthread_mutex_unlock(&ical_mu);
    return best == TSR_RELOAD_NEVER ? TSR_RELOAD_NEVER : best * 1000;
}

/* ---- decisions ------------------------------------------------------------------------------- */

void tsr_reload_decide(const tsr_reload_sched_t *s, int64_t due_ms, int64_t now_ms,
                       tsr_reload_misfire_t policy, int64_t grace_ms, tsr_reload_decision_t *out) {
    out->scheduled_ms = due_ms;
    out->missed = 0;
    out->fire = policy == TSR_RELOAD_MISFIRE_RUN_ONCE || now_ms - due_ms <= grace_ms;
    int64_t n = tsr_reload_sched_next(s, due_ms);
    /* Count a bounded number of the missed slots (for the log); jump past the rest. */
    while (n != TSR_RELOAD_NEVER && n <= now_ms && out->missed < 1000) {
        out->missed++;
        n = tsr_reload_sched_next(s, n);
    }
    if (n != TSR_RELOAD_NEVER && n <= now_ms) {
        n = tsr_reload_sched_next(s, now_ms);
    }
    out->next_ms = n;
}

bool tsr_reload_trigger_matches(tsr_reload_trigger_on_t on, const char *status) {
    if (status == NULL || !tsr_reload_status_is_terminal(status) ||
        strcmp(status, "CANCELED") == 0) {
        return false;
    }
    bool ok = strcmp(status, "SUCCEEDED") == 0;
    switch (on) {
    case TSR_RELOAD_ON_SUCCEEDED:
        return ok;
    case TSR_RELOAD_ON_FAILED:
        return !ok;
    case TSR_RELOAD_ON_ANY:
        return true;
    }
    return false;
}

unsigned tsr_reload_failures_after(unsigned failures, bool succeeded, unsigned max_failures,
                                   bool *suspend) {
    unsigned n = succeeded ? 0 : failures + 1;
    *suspend = max_failures > 0 && n >= max_failures;
    return n;
}
