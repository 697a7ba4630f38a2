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
    tsr_engined__app_t *apps;      /* known apps; models of idle ones leave memory by LRU */
    size_t mem_budget;             /* bytes of models kept loaded; 0: no limit */
    json_t *roles;                 /* "<tenant>/<user>" → the X-Tsr-Roles last seen (under mu) */
    json_t *groups;                /* "<tenant>/<user>" → the X-Tsr-Groups last seen (under mu) */
    tsr_engined_token_fn token_fn; /* service tokens for calls to spaces; NULL: none */
    void *token_ud;
    char *spaces_url;       /* data files from spaces (reloader role); NULL: none */
    char *transfer_root;    /* import uploads and export downloads; NULL: no routes */
    uint64_t import_max;    /* bytes of one imported app file */
    uint64_t export_ttl_ms; /* lifetime of an export's temporary download */
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
    json_t *svars; /* session variables {qId: props} (variable.c); NULL: none. Session thread */
    /* Alternate states (state.c): each its own selection, swapped into sel/state/back_count/
     * forward_count while a call works on it. Session thread only. */
    struct tsr_engined__alt *alts;
    size_t nalts;
    json_t *session_states; /* AddSessionAlternateState names (array); NULL: none */
    /* Open GenericVariable and GenericBookmark handles (variable.c, bookmark.c), under mu. */
    struct tsr_engined__aux **aux;
    size_t naux, capaux;
};

/* A GenericVariable or GenericBookmark handle: the object is looked up by id at every call
 * (it may have been changed or destroyed by another session meanwhile). */
enum {
    TSR_ENGINED__AUX_VARIABLE = 1,
    TSR_ENGINED__AUX_BOOKMARK = 2,
    TSR_ENGINED__AUX_MEASURE = 3,
    TSR_ENGINED__AUX_DIMENSION = 4
};
typedef struct tsr_engined__aux {
    tsr_engined__doc_t *doc;
    int handle;
    int kind;
    char *id;
} tsr_engined__aux_t;

struct tsr_engined__obj {
    tsr_engined__doc_t *doc;
    int handle;
    char *id;
    bool persistent; /* props live in the app document's objects */
    json_t *props;   /* session objects: owned properties; persistent: NULL */
    bool in_selections, made_selections;
    bool lists_objects; /* has a qAppObjectListDef: changes when app objects do (under mu) */
    char *search;       /* pending list object search (SearchListObjectFor), or NULL */
    char *parent;       /* a session object's parent (children.c), or NULL */
};

typedef struct {
    tsr_engined__doc_t *doc;
    size_t field;
    char *name;
    char *state; /* alternate state name, or NULL for $ */
} tsr_engined__field_t;

extern const tsr_qix_type_t tsr_engined__doc_type;
extern const tsr_qix_type_t tsr_engined__object_type;
extern const tsr_qix_type_t tsr_engined__field_type;
extern const tsr_qix_type_t tsr_engined__variable_type;
extern const tsr_qix_type_t tsr_engined__bookmark_type;
extern const tsr_qix_type_t tsr_engined__measure_type;
extern const tsr_qix_type_t tsr_engined__dimension_type;

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

/* The value at JSON pointer path in root (borrowed), or NULL; "" and "/" are the root. */
json_t *tsr_engined__ptr_get(json_t *root, const char *path);

/* ---- aux handles (variable.c) ---- */
/* Register a GenericVariable/GenericBookmark handle for id on d; returns the ObjectInterface
 * (returned-owned). An open handle of the same kind and id is reused. */
json_t *tsr_engined__aux_open(tsr_qix_call_t *call, tsr_engined__doc_t *d, int kind, const char *id,
                              const char *generic_type);
/* The release of both handle types: unregisters the handle from its doc. */
void tsr_engined__aux_release(void *obj);
/* Close d's handles of kind and id (reported in the call's "close"). */
void tsr_engined__aux_close(tsr_qix_call_t *call, tsr_engined__doc_t *d, int kind, const char *id);

/* ---- app-document objects (libobj.c) ---- */
/* The qId parameter (non-empty string; else error "Invalid Params"). */
tsr_err_t tsr_engined__lib_id_param(tsr_qix_call_t *call, const char **id);
/* Error "Object not found" for id on the call. */
tsr_err_t tsr_engined__lib_not_found(tsr_qix_call_t *call, const char *id);
/* The id of a new object into id[size]: info's qId when given (shorter than size, else an
 * error on qId), else prefix and a random id. */
tsr_err_t tsr_engined__lib_new_id(tsr_qix_call_t *call, json_t *info, const char *prefix, char *id,
                                  size_t size);
/* The object a->doc[key] (borrowed; created empty when missing or not an object). The caller
 * holds a->mu. */
json_t *tsr_engined__lib_all(tsr_engined__app_t *a, const char *key);
/* Store o (taken) as a->doc[key][id] and save the app, under a->mu; an error when id exists
 * or the app holds max of them already (message too_many); nothing stays on failure. */
tsr_err_t tsr_engined__lib_insert(tsr_qix_call_t *call, tsr_engined__app_t *a, const char *key,
                                  const char *id, json_t *o, size_t max, const char *too_many,
                                  tsr_error_t *err);
/* qData of o (returned-owned): for each {name: JSON pointer} of data, the value there (copied)
 * or null. */
json_t *tsr_engined__lib_qdata(json_t *o, json_t *data);
/* A list entry {qInfo, qMeta, qData} of o (returned-owned); meta is taken, NULL: a copy of
 * o's qMetaDef ({} when none). */
json_t *tsr_engined__lib_entry(json_t *o, json_t *meta, json_t *data);
/* qMeta of o: its qMetaDef with createdDate/modifiedDate and the privileges (read; with
 * may_edit also update and delete). */
json_t *tsr_engined__lib_meta(json_t *o, bool may_edit);
/* A handle type whose object is looked up by id at each call (tsr_engined__aux_t). */
typedef struct {
    /* A copy (returned-owned) of object id that d's user may see, or NULL. */
    json_t *(*copy)(tsr_engined__doc_t *d, const char *id);
    /* GetProperties' answer (returned-owned); NULL: the copy as it is. */
    json_t *(*props)(json_t *o);
    /* GetLayout's answer (returned-owned). */
    json_t *(*layout)(tsr_engined__doc_t *d, json_t *o);
} tsr_engined__lib_kind_t;
/* The handle's object (a copy, returned-owned) with its doc in *d, or NULL with "Object not
 * found" on the call. */
json_t *tsr_engined__lib_self(tsr_qix_call_t *call, void *obj, const tsr_engined__lib_kind_t *k,
                              tsr_engined__doc_t **d);
/* Answer {key: value} about the handle's object: qLayout, qProp, or else its member key
 * (qInfo, qMeasure, ...). */
tsr_err_t tsr_engined__lib_get(tsr_qix_call_t *call, void *obj, const tsr_engined__lib_kind_t *k,
                               const char *key);
/* The kinds of the GenericVariable, GenericBookmark and GenericMeasure handles (variable.c,
 * bookmark.c, measure.c). */
extern const tsr_engined__lib_kind_t tsr_engined__variable_kind;
extern const tsr_engined__lib_kind_t tsr_engined__bookmark_kind;
extern const tsr_engined__lib_kind_t tsr_engined__measure_kind;
extern const tsr_engined__lib_kind_t tsr_engined__dimension_kind; /* dimension.c */
/* GetInfo, GetLayout and GetProperties of those handles (the kind by the handle's). */
tsr_err_t tsr_engined__lib_get_info(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__lib_get_layout(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__lib_get_properties(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
/* A master item kept in the app document (master measures, master dimensions): what differs
 * between them; the rest is the generic code below (libobj.c). */
typedef struct {
    const char *key;      /* member of the app document ("measures") */
    const char *qtype;    /* qInfo.qType and generic type of the handle ("measure") */
    const char *prefix;   /* of a new random id ("ms-") */
    const char *def_key;  /* the definition member ("qMeasure") */
    const char *too_many; /* error message when the app holds max_per_app already */
    size_t max_per_app;
    int aux; /* TSR_ENGINED__AUX_MEASURE ... */
    /* true when def (the def_key member, an object) is a valid definition. */
    bool (*def_ok)(json_t *def);
} tsr_engined__master_t;
extern const tsr_engined__master_t tsr_engined__measure_master;   /* measure.c */
extern const tsr_engined__master_t tsr_engined__dimension_master; /* dimension.c */
/* The stored item id (borrowed; caller holds app->mu), or NULL. */
json_t *tsr_engined__master_get_locked(const tsr_engined__master_t *m, tsr_engined__app_t *a,
                                       const char *id);
/* A copy of item id (returned-owned; takes app->mu), or NULL. */
json_t *tsr_engined__master_copy(const tsr_engined__master_t *m, tsr_engined__doc_t *d,
                                 const char *id);
/* The stored properties without the dates (GetProperties), and the layout with qMeta. */
json_t *tsr_engined__master_props(json_t *o);
json_t *tsr_engined__master_layout(tsr_engined__doc_t *d, json_t *o);
/* The qXxxListDef answer {qItems} of d's app. */
json_t *tsr_engined__master_list(const tsr_engined__master_t *m, tsr_engined__doc_t *d,
                                 json_t *def);
/* Doc CreateXxx, GetXxx (by qId) and DestroyXxx. */
tsr_err_t tsr_engined__master_create(const tsr_engined__master_t *m, tsr_qix_call_t *call,
                                     tsr_engined__doc_t *d, tsr_error_t *err);
tsr_err_t tsr_engined__master_get(const tsr_engined__master_t *m, tsr_qix_call_t *call,
                                  tsr_engined__doc_t *d);
tsr_err_t tsr_engined__master_destroy(const tsr_engined__master_t *m, tsr_qix_call_t *call,
                                      tsr_engined__doc_t *d, tsr_error_t *err);
/* Answer the handle's opened item id (GetMeasureWithLabel) as a new handle. */
void tsr_engined__master_open(const tsr_engined__master_t *m, tsr_qix_call_t *call,
                              tsr_engined__doc_t *d, const char *id);
/* Every object of the app that may use an item changes: this session's and the others'. */
void tsr_engined__master_changed(tsr_qix_call_t *call, tsr_engined__doc_t *d);
/* GetLinkedObjects and SetProperties of the GenericMeasure/GenericDimension handles, and
 * their GetMeasure/GetDimension (the def_key member). */
tsr_err_t tsr_engined__master_get_linked_objects(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__master_set_properties(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__master_get_def(tsr_qix_call_t *call, void *obj, tsr_error_t *err);

/* ---- variables (variable.c) ---- */
/* Dollar expansion: text with every $(name) replaced by the variable's value (session, app or
 * script variable; unknown: empty) and every $(=expr) by expr's evaluated text, nested up to
 * a few levels. NULL when text holds no "$(" (use text as it is); else returned-owned. */
char *tsr_engined__expand(tsr_engined__doc_t *d, const char *text);
/* {qItems:[...]} of a qVariableListDef (returned-owned). */
json_t *tsr_engined__variable_list(tsr_engined__doc_t *d, json_t *def);
tsr_err_t tsr_engined__d_create_session_variable(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__d_create_variable_ex(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__d_create_variable(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__d_get_variable_by_name(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__d_get_variable_by_id(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__d_destroy_session_variable_by_id(tsr_qix_call_t *call, void *obj,
                                                        tsr_error_t *err);
tsr_err_t tsr_engined__d_destroy_session_variable_by_name(tsr_qix_call_t *call, void *obj,
                                                          tsr_error_t *err);
tsr_err_t tsr_engined__d_destroy_variable_by_id(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__d_destroy_variable_by_name(tsr_qix_call_t *call, void *obj,
                                                  tsr_error_t *err);
tsr_err_t tsr_engined__d_get_variables(tsr_qix_call_t *call, void *obj, tsr_error_t *err);

/* ---- alternate states (state.c) ---- */
typedef struct tsr_engined__alt {
    char *name;
    tsr_engine_selection_t *sel; /* over the doc's model; NULL without data */
    tsr_engine_state_t *state;   /* computed from sel; NULL: stale */
    size_t back_count, forward_count;
} tsr_engined__alt_t;
/* Make state name the doc's current selection (swap it into d->sel, d->state and the history
 * counts); calling again with the same name swaps back. 0: the default state ($, "" or NULL:
 * nothing swapped), 1: swapped, -1: no such state (not an app state nor a session state).
 * Call after tsr_engined__doc_sync, never across one. */
int tsr_engined__state_swap(tsr_engined__doc_t *d, const char *name);
/* The names of the app's and the session's alternate states (returned-owned array). */
json_t *tsr_engined__state_names(tsr_engined__doc_t *d);
/* Move every alternate state to model m (selections carried by value; caller holds app mu). */
void tsr_engined__state_rebase(tsr_engined__doc_t *d, const tsr_engine_model_t *old_m,
                               const tsr_engine_model_t *m);
void tsr_engined__state_free(tsr_engined__doc_t *d);
/* Re-apply old's selections (by value text, per field name) to sel over model m (doc.c). */
void tsr_engined__carry_selections(const tsr_engine_model_t *old_m,
                                   const tsr_engine_selection_t *old, const tsr_engine_model_t *m,
                                   tsr_engine_selection_t *sel);
tsr_err_t tsr_engined__d_add_alternate_state(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__d_remove_alternate_state(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__d_add_session_alternate_state(tsr_qix_call_t *call, void *obj,
                                                     tsr_error_t *err);
tsr_err_t tsr_engined__d_remove_session_alternate_state(tsr_qix_call_t *call, void *obj,
                                                        tsr_error_t *err);
/* Field handles of an alternate state (GetField with qStateName): every Field method runs with
 * the state swapped in. */
extern const tsr_qix_type_t tsr_engined__field_state_type;
/* GenericObject methods taking a qPath run in the state named by that definition's
 * qStateName (state.c wraps them; object.c's table points at it). */
tsr_err_t tsr_engined__o_in_state(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
/* The real handler of a GenericObject method (object.c), for the wrapper. */
tsr_qix_method_fn tsr_engined__object_method(const char *name);

/* ---- bookmarks (bookmark.c) ---- */
/* {qItems:[...]} of a qBookmarkListDef (returned-owned): the bookmarks d's user may see. */
json_t *tsr_engined__bookmark_list(tsr_engined__doc_t *d, json_t *def);
tsr_err_t tsr_engined__d_create_bookmark(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__d_apply_bookmark(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__d_get_bookmark(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__d_get_bookmarks(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__d_destroy_bookmark(tsr_qix_call_t *call, void *obj, tsr_error_t *err);

/* ---- master measures (measure.c) ---- */
/* {qItems:[...]} of a qMeasureListDef (returned-owned). */
json_t *tsr_engined__measure_list(tsr_engined__doc_t *d, json_t *def);
/* The qDef of hypercube measure m (returned-owned): its own, or with a qLibraryId the master
 * measure's expression and label (qDef "" when that measure does not exist). Takes app->mu. */
json_t *tsr_engined__measure_qdef(tsr_engined__doc_t *d, json_t *m);
tsr_err_t tsr_engined__d_create_measure(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__d_get_measure(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__d_get_measure_with_label(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__d_destroy_measure(tsr_qix_call_t *call, void *obj, tsr_error_t *err);

/* ---- master dimensions (dimension.c) ---- */
/* {qItems:[...]} of a qDimensionListDef (returned-owned). */
json_t *tsr_engined__dimension_list(tsr_engined__doc_t *d, json_t *def);
/* The qDef of hypercube or list object dimension dim (returned-owned; NULL when dim has
 * none): its own, or with a qLibraryId the master dimension's qFieldDefs and qFieldLabels
 * (qFieldDefs [] when that dimension does not exist). Takes app->mu. */
json_t *tsr_engined__dimension_qdef(tsr_engined__doc_t *d, json_t *dim);
tsr_err_t tsr_engined__d_create_dimension(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__d_get_dimension(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__d_destroy_dimension(tsr_qix_call_t *call, void *obj, tsr_error_t *err);

/* ---- expression checks (doc.c) ---- */
tsr_err_t tsr_engined__d_check_expression(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__d_check_number_or_expression(tsr_qix_call_t *call, void *obj,
                                                    tsr_error_t *err);

/* Replace o's properties (p taken; its id kept): saved, change reported (SetProperties). */
tsr_err_t tsr_engined__obj_set_props(tsr_qix_call_t *call, tsr_engined__obj_t *o, json_t *p,
                                     tsr_error_t *err);

/* ---- children (children.c) ---- */
/* qChildList of o's layout for its qChildListDef def (returned-owned). */
json_t *tsr_engined__child_list(tsr_engined__obj_t *o, json_t *def);
/* Destroy the children of object id (and theirs), before the object itself goes. */
tsr_err_t tsr_engined__children_destroy(tsr_qix_call_t *call, tsr_engined__doc_t *d, const char *id,
                                        bool persistent, tsr_error_t *err);
tsr_err_t tsr_engined__o_create_child(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__o_destroy_child(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__o_destroy_all_children(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__o_get_child(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__o_get_child_infos(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__o_get_parent(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__o_get_full_property_tree(tsr_qix_call_t *call, void *obj, tsr_error_t *err);
tsr_err_t tsr_engined__o_set_full_property_tree(tsr_qix_call_t *call, void *obj, tsr_error_t *err);

/* ---- json helpers (object.c) ---- */
json_t *tsr_engined__obj1(const char *key, json_t *value);
/* {qText, qNum} cell of a dual; "NaN" for text. */
void tsr_engined__set_num(json_t *o, const char *key, double v, bool is_num);
/* Format a number like Qlik's auto format: integers without decimals, else %.14g. */
void tsr_engined__num_text(double v, char *buf, size_t n);

#endif
