/*
 * pkg/engined internals shared by its files: the app (shared by every session that opened
 * it), the per-session document (selection state, open objects), objects and fields, and
 * the helpers that report changes. Locking: an app's mu guards its document, model pointer
 * and session list; a doc's mu guards its object list (read by other threads to push
 * changes). Order: app->mu before doc->mu. Not part of the API.
 */
#ifndef TSR_ENGINED_INT_H
#define TSR_ENGINED_INT_H

#include <pthread.h>

#include "engine.h"
#include "engined.h"

typedef struct tsr_engined__app tsr_engined__app_t;
typedef struct tsr_engined__doc tsr_engined__doc_t;
typedef struct tsr_engined__obj tsr_engined__obj_t;

/* A finalized model shared by the sessions using it; freed with its last reference. */
typedef struct {
    tsr_engine_model_t *m;
    unsigned refs; /* under the owning app's mu */
} tsr_engined__model_t;

struct tsr_engined {
    tsr_engined_appstore_t store;
    tsr_engined_access_t access; /* decide NULL: the app store decides */
    char *data_root;
    bool create_on_open;
    tsr_engine_cache_t *cache; /* shared result cache; NULL: none */
    pthread_mutex_t mu;
    tsr_engined__app_t *apps; /* known apps; models of idle ones leave memory by LRU */
    size_t mem_budget;        /* bytes of models kept loaded; 0: no limit */
    json_t *roles;            /* "<tenant>/<user>" → the X-Tsr-Roles last seen (under mu) */
    char *spaces_url;         /* data files from spaces (reloader role); NULL: none */
    /* The version watcher (serving replicas): swaps in model versions another process wrote. */
    int watch_ms;
    pthread_t watcher;
    bool watching, stop;
    pthread_cond_t cv; /* under mu: stop */
};

struct tsr_engined__app {
    tsr_engined_t *e;
    char *tenant_id;
    char *id;
    pthread_mutex_t mu;
    /* The stored document: {id, tenantId, title, script, properties, objects{qId: props},
     * hasData, lastReloadTime, createdDate, modifiedDate}. Owned. */
    json_t *doc;
    tsr_engined__model_t *model; /* NULL: no data yet */
    bool loaded;                 /* the model was loaded (or the app has no data) */
    tsr_engined_version_t ver;   /* version of the model file the model came from */
    bool saving;                 /* an interactive reload is writing a version: no refresh */
    size_t bytes;                /* estimated memory of the model */
    uint64_t last_used_ms;       /* monotonic: last open or close of a session */
    tsr_engined__doc_t **docs;   /* sessions that opened the app */
    size_t ndocs, capdocs;
    tsr_engined__app_t *next;
};

struct tsr_engined__doc {
    tsr_engined__app_t *app;
    tsr_qix_session_t *s;
    char *tenant_id;
    int handle;       /* the Doc handle; learned at the first Doc call */
    unsigned actions; /* TSR_ENGINED_* the session's user may do (decided at OpenDoc) */
    pthread_mutex_t mu;
    tsr_engined__obj_t **objs; /* open GenericObject handles */
    size_t nobjs, capobjs;
    /* Selection state: session-thread only. */
    tsr_engined__model_t *model; /* the model sel refers to (a reference) */
    tsr_engine_selection_t *sel;
    tsr_engine_state_t *state; /* computed from sel; NULL: stale */
    size_t back_count, forward_count;
    tsr_engined__obj_t *modal; /* object in selection mode, or NULL */
    size_t modal_back;         /* back_count when selection mode began */
    unsigned next_obj;
};

struct tsr_engined__obj {
    tsr_engined__doc_t *doc;
    int handle;
    char *id;
    bool persistent; /* props live in the app document's objects */
    json_t *props;   /* session objects: owned properties; persistent: NULL */
    bool in_selections, made_selections;
    bool lists_objects; /* has a qAppObjectListDef: changes when app objects do (under mu) */
    char *search;       /* pending list object search (SearchListObjectFor), or NULL */
};

typedef struct {
    tsr_engined__doc_t *doc;
    size_t field;
    char *name;
} tsr_engined__field_t;

extern const tsr_qix_type_t tsr_engined__doc_type;
extern const tsr_qix_type_t tsr_engined__object_type;
extern const tsr_qix_type_t tsr_engined__field_type;

/* ---- apps (apps.c) ---- */
/* Save the app document (caller holds app->mu). */
tsr_err_t tsr_engined__app_save(tsr_engined__app_t *a, tsr_error_t *err);
void tsr_engined__model_unref(tsr_engined__app_t *a, tsr_engined__model_t *m); /* holds mu */
/* Run the script; on success swap the model in and return TSR_OK; *log returned-owned. */
tsr_err_t tsr_engined__app_reload(tsr_engined__app_t *a, char **log, tsr_error_t *err);
/* Unload the models of idle apps (no open session), least recently used first, until the
 * loaded models fit the budget. keep is never unloaded. Takes e->mu, then each app's mu. */
void tsr_engined__evict(tsr_engined_t *e, const tsr_engined__app_t *keep);
/* Push "change" for every open handle of every other session of the app (skip: the
 * caller's doc, may be NULL); with obj_id only the handles of that object, plus (lists) the
 * objects that list the app's objects (qAppObjectListDef). */
void tsr_engined__app_push(tsr_engined__app_t *a, tsr_engined__doc_t *skip, const char *obj_id,
                           bool lists);

/* ---- docs (doc.c) ---- */
/* Bring the doc's selection to the app's current model (after a reload elsewhere). Called
 * once at the start of a method, never in the middle: states, cubes and field indexes of the
 * call refer to the model the doc had when the call began. */
void tsr_engined__doc_sync(tsr_engined__doc_t *d);
/* The propagated state of the doc's selection, computed on demand; NULL without data. Does
 * not sync. */
tsr_engine_state_t *tsr_engined__doc_state(tsr_engined__doc_t *d, tsr_error_t *err);
/* After a selection changed: stale state, history count, every object in the call's
 * "change". */
void tsr_engined__doc_selection_changed(tsr_qix_call_t *call, tsr_engined__doc_t *d);
/* Every open object handle of d in the call's "change". */
void tsr_engined__doc_change_all(tsr_qix_call_t *call, tsr_engined__doc_t *d);
/* d's objects that list the app's objects (qAppObjectListDef) in the call's "change". */
void tsr_engined__doc_change_lists(tsr_qix_call_t *call, tsr_engined__doc_t *d);
/* TSR_OK when the doc's user may do action; else error 5 "Access denied" on the call. */
tsr_err_t tsr_engined__doc_may(tsr_qix_call_t *call, tsr_engined__doc_t *d, unsigned action);
tsr_err_t tsr_engined__doc_field(tsr_engined__doc_t *d, const char *name, size_t *f,
                                 tsr_error_t *err);

/* ---- objects (object.c) ---- */
/* A copy of the object's properties (returned-owned). */
json_t *tsr_engined__obj_props(tsr_engined__obj_t *o);
/* Open a handle for object id with properties props (session object when !persistent:
 * props taken). Returns the ObjectInterface (returned-owned). */
json_t *tsr_engined__obj_open(tsr_qix_call_t *call, tsr_engined__doc_t *d, const char *id,
                              bool persistent, json_t *props);
tsr_engined__obj_t *tsr_engined__doc_find_obj(tsr_engined__doc_t *d, const char *id);

/* Evaluate a chart expression ("=Sum(Amount)/Count(Id)", a literal) over state st: *num and
 * *is_num, and its text (Qlik's auto format) in text. TSR_EINVAL (text "-") when it cannot
 * be evaluated. */
tsr_err_t tsr_engined__evaluate(tsr_engined__doc_t *d, tsr_engine_state_t *st, const char *expr,
                                double *num, bool *is_num, char *text, size_t n, tsr_error_t *err);

/* ---- json helpers (object.c) ---- */
json_t *tsr_engined__obj1(const char *key, json_t *value);
/* {qText, qNum} cell of a dual; "NaN" for text. */
void tsr_engined__set_num(json_t *o, const char *key, double v, bool is_num);
/* Format a number like Qlik's auto format: integers without decimals, else %.14g. */
void tsr_engined__num_text(double v, char *buf, size_t n);

#endif
