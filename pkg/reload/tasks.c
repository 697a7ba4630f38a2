/*
 * pkg/reload tasks: the reload_tasks collection behind /api/v1/reload-tasks. Bodies are
 * checked against a closed field table (unknown members: 400; read-only members of the Task
 * model are ignored so a GET body can be PUT back). The stored next fire time (nextFireMs) is
 * computed here from the schedule and moved on only by the scheduler; a task change and its
 * event commit together.
 */
#include <stdlib.h>
#include <string.h>

#include "reload_int.h"

/* Members of Qlik's Task model a client may send back but never sets. */
static const char *const READ_ONLY[] = {"id",
                                        "tenantId",
                                        "userId",
                                        "spaceId",
                                        "disabledCode",
                                        "lastExecutionTime",
                                        "nextExecutionTime",
                                        "migrated",
                                        "links",
                                        "log",
                                        "fortressId",
                                        "type",
                                        "createdAt",
                                        "updatedAt",
                                        "version"};

typedef enum { F_STR, F_BOOL, F_ARR, F_OBJ } ftype_t;

static const struct {
    const char *name;
    ftype_t type;
} FIELDS[] = {
    {"appId", F_STR},       {"partial", F_BOOL},
    {"autoReload", F_BOOL}, {"autoReloadPartial", F_BOOL},
    {"timeZone", F_STR},    {"startDateTime", F_STR},
    {"endDateTime", F_STR}, {"recurrence", F_ARR},
    {"state", F_STR},       {"misfirePolicy", F_STR},
    {"trigger", F_OBJ},
};

static bool is_read_only(const char *k) {
    for (size_t i = 0; i < sizeof READ_ONLY / sizeof READ_ONLY[0]; i++) {
        if (strcmp(k, READ_ONLY[i]) == 0) {
            return true;
        }
    }
    return false;
}

static tsr_err_t check_fields(const json_t *body, tsr_error_t *err) {
    const char *k;
    json_t *v;
    if (!json_is_object(body)) {
        return tsr_error_set(err, TSR_EINVAL, "the body must be a JSON object");
    }
    json_object_foreach((json_t *)body, k, v) {
        size_t i;
        if (is_read_only(k)) {
            continue;
        }
        for (i = 0; i < sizeof FIELDS / sizeof FIELDS[0]; i++) {
            if (strcmp(k, FIELDS[i].name) == 0) {
                break;
            }
        }
        if (i == sizeof FIELDS / sizeof FIELDS[0]) {
            return tsr_error_set(err, TSR_EINVAL, "%s: unknown field", k);
        }
        bool ok = json_is_null(v) || (FIELDS[i].type == F_STR && json_is_string(v)) ||
                  (FIELDS[i].type == F_BOOL && json_is_boolean(v)) ||
                  (FIELDS[i].type == F_ARR && json_is_array(v)) ||
                  (FIELDS[i].type == F_OBJ && json_is_object(v));
        if (!ok) {
            return tsr_error_set(err, TSR_EINVAL, "%s: wrong type", k);
        }
    }
    return TSR_OK;
}

tsr_err_t tsr_rl__task_sched(const json_t *task, int64_t default_start_ms, tsr_reload_sched_t **out,
                             tsr_error_t *err) {
    const char *lines[TSR_RELOAD_MAX_RECURRENCE];
    json_t *rec = json_object_get(task, "recurrence");
    size_t n = json_array_size(rec);
    if (n > TSR_RELOAD_MAX_RECURRENCE) {
        return tsr_error_set(err, TSR_EINVAL, "recurrence: at most %d lines",
                             TSR_RELOAD_MAX_RECURRENCE);
    }
    for (size_t i = 0; i < n; i++) {
        lines[i] = json_string_value(json_array_get(rec, i));
        if (lines[i] == NULL) {
            return tsr_error_set(err, TSR_EINVAL, "recurrence[%zu]: must be a string", i);
        }
    }
    tsr_reload_sched_spec_t spec = {
        .time_zone = json_string_value(json_object_get(task, "timeZone")),
        .start = json_string_value(json_object_get(task, "startDateTime")),
        .end = json_string_value(json_object_get(task, "endDateTime")),
        .recurrence = lines,
        .n_recurrence = n,
        .start_default_ms = default_start_ms};
    return tsr_reload_sched_create(&spec, out, err);
}

/* Checks and the stored document for a create (id NULL) or a replace of old. */
static tsr_err_t build_task(tsr_reload_t *r, const tsr_reload_caller_t *who, const json_t *body,
                            const json_t *old, json_t **out, tsr_error_t *err) {
    tsr_reload_sched_t *s = NULL;
    tsr_err_t rc = check_fields(body, err);
    if (rc != TSR_OK) {
        return rc;
    }
    const char *app = json_string_value(json_object_get(body, "appId"));
    if (app == NULL || app[0] == '\0' || strlen(app) > TSR_STORE_ID_MAX) {
        return tsr_error_set(err, TSR_EINVAL, "appId: required");
    }
    const char *state = json_string_value(json_object_get(body, "state"));
    if (state != NULL && strcmp(state, "Enabled") != 0 && strcmp(state, "Disabled") != 0) {
        return tsr_error_set(err, TSR_EINVAL, "state: Enabled or Disabled");
    }
    const char *mp = json_string_value(json_object_get(body, "misfirePolicy"));
    if (mp != NULL && strcmp(mp, "RUN_ONCE") != 0 && strcmp(mp, "SKIP") != 0) {
        return tsr_error_set(err, TSR_EINVAL, "misfirePolicy: RUN_ONCE or SKIP");
    }
    const json_t *trig = json_object_get(body, "trigger");
    const char *chain = NULL;
    if (json_is_object(trig)) {
        const char *on = json_string_value(json_object_get(trig, "on"));
        chain = json_string_value(json_object_get(trig, "taskId"));
        if (json_object_size(trig) != 2 || chain == NULL || on == NULL ||
            (strcmp(on, "SUCCEEDED") != 0 && strcmp(on, "FAILED") != 0 && strcmp(on, "ANY") != 0)) {
            return tsr_error_set(err, TSR_EINVAL,
                                 "trigger: {taskId, on: SUCCEEDED|FAILED|ANY} expected");
        }
        const char *self = old != NULL ? json_string_value(json_object_get(old, "id")) : NULL;
        json_t *other = NULL;
        if (self != NULL && strcmp(self, chain) == 0) {
            return tsr_error_set(err, TSR_EINVAL, "trigger.taskId: a task cannot chain itself");
        }
        if (strlen(chain) > TSR_STORE_ID_MAX ||
            tsr_store_doc_get(r->store, who->tenant, TSR_RL__C_TASKS, chain, &other, NULL) !=
                TSR_OK) {
            return tsr_error_set(err, TSR_EINVAL, "trigger.taskId: no such reload task");
        }
        json_decref(other);
    }
    int64_t now = r->now_ms();
    if ((rc = tsr_rl__task_sched(body, now, &s, err)) != TSR_OK) {
        return rc;
    }
    if ((rc = tsr_rl__access(r, who, app, err)) != TSR_OK) {
        tsr_reload_sched_destroy(s);
        return rc == TSR_ENOTFOUND ? tsr_error_set(err, TSR_EINVAL, "appId: no such app") : rc;
    }
    json_t *doc = json_deep_copy(body);
    for (size_t i = 0; i < sizeof READ_ONLY / sizeof READ_ONLY[0]; i++) {
        json_object_del(doc, READ_ONLY[i]);
    }
    char t[25];
    tsr_rl__time(now, t);
    if (old == NULL) {
        json_object_set_new(doc, "userId", json_string(who->user));
        json_object_set_new(doc, "createdAt", json_string(t));
        json_object_set_new(doc, "createdMs", json_integer((json_int_t)now));
        json_object_set_new(doc, "consecutiveFailures", json_integer(0));
    } else {
        const char *keep[] = {"userId", "createdAt", "createdMs", "lastExecutionTime",
                              "lastResultReloadId"};
        for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
            json_t *v = json_object_get(old, keep[i]);
            if (v != NULL) {
                json_object_set(doc, keep[i], v);
            }
        }
        /* Re-enabling a suspended task gives it a fresh failure budget. */
        json_object_set_new(doc, "consecutiveFailures", json_integer(0));
    }
    json_object_set_new(doc, "updatedAt", json_string(t));
    if (state == NULL) {
        json_object_set_new(doc, "state", json_string("Enabled"));
        state = "Enabled";
    }
    if (!json_is_boolean(json_object_get(doc, "partial"))) {
        json_object_set_new(doc, "partial", json_false());
    }
    if (mp == NULL) {
        json_object_set_new(
            doc, "misfirePolicy",
            json_string(r->misfire == TSR_RELOAD_MISFIRE_SKIP ? "SKIP" : "RUN_ONCE"));
    }
    if (chain != NULL) {
        json_object_set_new(doc, "chainTaskId", json_string(chain));
    } else {
        json_object_del(doc, "trigger");
    }
    if (strcmp(state, "Disabled") == 0) {
        json_object_set_new(doc, "disabledCode", json_string("MANUALLY"));
    }
    int64_t next = strcmp(state, "Enabled") == 0 ? tsr_reload_sched_next(s, now) : TSR_RELOAD_NEVER;
    tsr_reload_sched_destroy(s);
    if (next != TSR_RELOAD_NEVER) {
        tsr_rl__time(next, t);
        json_object_set_new(doc, "nextFireMs", json_integer((json_int_t)next));
        json_object_set_new(doc, "nextExecutionTime", json_string(t));
    } else if (strcmp(state, "Enabled") == 0 && chain == NULL &&
               json_string_length(json_object_get(body, "startDateTime")) > 0) {
        json_object_set_new(doc, "state", json_string("Completed"));
    }
    *out = doc;
    return TSR_OK;
}

tsr_err_t tsr_rl__task_put(tsr_reload_t *r, const tsr_reload_caller_t *who, const char *id,
                           const json_t *body, json_t **out, tsr_error_t *err) {
    json_t *old = NULL, *doc = NULL;
    tsr_rl__ev_t ev;
    tsr_err_t rc;
    if (id != NULL && (rc = tsr_rl__task_get(r, who->tenant, id, &old, err)) != TSR_OK) {
        return rc;
    }
    if ((rc = build_task(r, who, body, old, &doc, err)) != TSR_OK) {
        json_decref(old);
        return rc;
    }
    const char *app = json_string_value(json_object_get(doc, "appId"));
    char nid[25];
    if (id == NULL) {
        tsr_id_new(nid);
    }
    const char *tid = id != NULL ? id : nid;
    rc = tsr_rl__ev_make(&ev, TSR_RL__T_RESULTS,
                         id == NULL ? "reload.task.created" : "reload.task.updated", who->tenant,
                         who->user, app,
                         json_pack("{ss ss sO}", "taskId", tid, "appId", app, "state",
                                   json_object_get(doc, "state")),
                         err);
    if (rc == TSR_OK) {
        tsr_store_event_t row = tsr_rl__ev_row(&ev);
        if (id == NULL) {
            rc = tsr_store_doc_create(r->store, who->tenant, TSR_RL__C_TASKS, tid, doc, &row, 1,
                                      out, err);
        } else {
            rc = tsr_store_doc_replace(r->store, who->tenant, TSR_RL__C_TASKS, tid,
                                       json_integer_value(json_object_get(old, "version")), doc,
                                       &row, 1, out, err);
        }
    }
    tsr_rl__ev_cleanup(&ev);
    json_decref(doc);
    json_decref(old);
    return rc;
}

tsr_err_t tsr_rl__task_get(tsr_reload_t *r, const char *tenant, const char *id, json_t **out,
                           tsr_error_t *err) {
    if (id == NULL || id[0] == '\0' || strlen(id) > TSR_STORE_ID_MAX) {
        return tsr_error_set(err, TSR_ENOTFOUND, "reload task not found");
    }
    tsr_err_t rc = tsr_store_doc_get(r->store, tenant, TSR_RL__C_TASKS, id, out, err);
    if (rc == TSR_ENOTFOUND) {
        tsr_error_set(err, TSR_ENOTFOUND, "reload task not found");
    }
    return rc;
}

tsr_err_t tsr_rl__task_del(tsr_reload_t *r, const tsr_reload_caller_t *who, const char *id,
                           tsr_error_t *err) {
    json_t *old = NULL;
    tsr_rl__ev_t ev;
    tsr_err_t rc = tsr_rl__task_get(r, who->tenant, id, &old, err);
    if (rc != TSR_OK) {
        return rc;
    }
    const char *app = json_string_value(json_object_get(old, "appId"));
    rc = tsr_rl__ev_make(&ev, TSR_RL__T_RESULTS, "reload.task.deleted", who->tenant, who->user, app,
                         json_pack("{ss ss}", "taskId", id, "appId", app), err);
    if (rc == TSR_OK) {
        tsr_store_event_t row = tsr_rl__ev_row(&ev);
        rc = tsr_store_doc_del(r->store, who->tenant, TSR_RL__C_TASKS, id,
                               json_integer_value(json_object_get(old, "version")), &row, 1, err);
    }
    tsr_rl__ev_cleanup(&ev);
    json_decref(old);
    return rc;
}

tsr_err_t tsr_reload_on_app_deleted(tsr_reload_t *r, const char *tenant, const char *app_id,
                                    tsr_error_t *err) {
    tsr_store_page_t page = {0};
    json_t *av = json_string(app_id);
    tsr_store_filter_t f = {"appId", TSR_STORE_EQ, av};
    tsr_store_query_t q = {.filters = &f, .n_filters = 1, .limit = TSR_STORE_LIST_MAX};
    tsr_reload_caller_t who = {.tenant = tenant, .user = NULL};
    tsr_err_t rc = tsr_store_doc_list(r->store, tenant, TSR_RL__C_TASKS, &q, &page, err);
    size_t i;
    json_t *t;
    json_array_foreach(page.items, i, t) {
        if (rc != TSR_OK) {
            break;
        }
        rc = tsr_rl__task_del(r, &who, json_string_value(json_object_get(t, "id")), err);
        if (rc == TSR_ENOTFOUND) {
            rc = TSR_OK; /* deleted meanwhile */
        }
    }
    tsr_store_page_cleanup(&page);
    json_decref(av);
    return rc;
}
