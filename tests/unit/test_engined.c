/*
 * Unit tests of pkg/engined: socket-less QIX sessions (tsr_qix_session_create) driven through
 * the Doc, GenericObject and Field methods on a small INLINE-loaded app: reload, hypercube
 * and list object layouts, selection states, change notifications (in responses and pushed
 * to other sessions), selection mode, persistence across restarts, and tenancy (another
 * tenant's app answers exactly like a missing one). Also the upgrade's principal check
 * through pkg/httpd's in-process requests.
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engined.h"
#include "httpd.h"
#include "openapi_check.h"
#include "qix.h"

static const char *SCRIPT = "Sales: LOAD * INLINE [\n"
                            "Country, Product, Amount\n"
                            "Sweden, A, 10\n"
                            "Sweden, B, 7\n"
                            "Norway, A, 20\n"
                            "Denmark, B, 5\n"
                            "];\n";

/* Country elements in load order. */
enum { SWEDEN = 0, NORWAY = 1, DENMARK = 2 };

/* ---- fixture: an engined over a temporary state dir ------------------------------------------ */

static char dir[64];

static tsr_engined_t *engined_open(bool create_on_open) {
    char apps[128], data[128];
    tsr_engined_opts_t o = {.create_on_open = create_on_open, .cache_bytes = 1u << 20};
    tsr_error_t err = {0};
    snprintf(apps, sizeof apps, "%s/apps", dir);
    snprintf(data, sizeof data, "%s/data", dir);
    ck_assert_int_eq(tsr_engined_appstore_files_open(apps, &o.store, &err), TSR_OK);
    o.data_root = data;
    tsr_engined_t *e = NULL;
    ck_assert_int_eq(tsr_engined_create(&o, &e, &err), TSR_OK);
    return e;
}

static tsr_engined_t *E;

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/tsr-engined.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    E = engined_open(false);
    tsr_error_t err = {0};
    ck_assert_int_eq(tsr_engined_app_create(E, "tA", "app1", "Sales app", &err), TSR_OK);
}

static void teardown(void) {
    tsr_engined_destroy(E);
    E = NULL;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* ---- a session whose frames are collected ------------------------------------------------------
 */

typedef struct {
    json_t *frames;
    tsr_qix_session_t *s;
    int next_id;
} sess_t;

static void sink_send(void *ud, const char *text, size_t len) {
    sess_t *t = ud;
    json_error_t e;
    json_t *v = json_loadb(text, len, 0, &e);
    ck_assert_msg(v != NULL, "invalid JSON sent: %.*s", (int)len, text);
    json_array_append_new(t->frames, v);
}

static void sess_open(sess_t *t, tsr_engined_t *e, const char *tenant, const char *user,
                      const char *app) {
    char *principal = NULL;
    tsr_error_t err = {0};
    ck_assert_int_eq(tsr_engined_principal_format(tenant, user, &principal, &err), TSR_OK);
    tsr_qix_opts_t o = {.backend = tsr_engined_backend(e)};
    t->frames = json_array();
    t->next_id = 1;
    ck_assert_int_eq(tsr_qix_session_create(&o, principal, app, sink_send, t, &t->s, &err), TSR_OK);
    free(principal);
}

static void sess_close(sess_t *t) {
    tsr_qix_session_destroy(t->s);
    json_decref(t->frames);
}

/* Call method on handle with params (JSON text, an array); the response (borrowed). */
static json_t *call(sess_t *t, int handle, const char *method, const char *params) {
    char *msg = NULL;
    size_t before = json_array_size(t->frames);
    json_t *p = json_loads(params ? params : "[]", 0, NULL);
    ck_assert_msg(p != NULL, "bad params in test: %s", params);
    json_t *req = json_pack("{s:s,s:i,s:s,s:o,s:i}", "jsonrpc", "2.0", "handle", handle, "method",
                            method, "params", p, "id", t->next_id++);
    msg = json_dumps(req, JSON_COMPACT);
    tsr_qix_session_handle_message(t->s, msg, strlen(msg));
    free(msg);
    json_decref(req);
    ck_assert_uint_eq(json_array_size(t->frames), before + 1);
    return json_array_get(t->frames, before);
}

static json_t *result(json_t *resp) {
    json_t *r = json_object_get(resp, "result");
    ck_assert_msg(json_is_object(r), "expected a result: %s", json_dumps(resp, 0));
    return r;
}

static int err_code(json_t *resp) {
    json_t *e = json_object_get(resp, "error");
    ck_assert_msg(json_is_object(e), "expected an error");
    return (int)json_integer_value(json_object_get(e, "code"));
}

static bool has_change(json_t *resp, int handle) {
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(resp, "change"), i, v) {
        if (json_integer_value(v) == handle) {
            return true;
        }
    }
    return false;
}

static int handle_of(json_t *resp) {
    json_t *q = json_object_get(result(resp), "qReturn");
    int h = (int)json_integer_value(json_object_get(q, "qHandle"));
    ck_assert_int_gt(h, 0);
    return h;
}

static int open_doc(sess_t *t, const char *app) {
    char params[160];
    snprintf(params, sizeof params, "[\"%s\"]", app);
    return handle_of(call(t, -1, "OpenDoc", params));
}

/* OpenDoc, SetScript (the INLINE sales data), DoReload. Returns the doc handle. */
static int open_loaded(sess_t *t) {
    int doc = open_doc(t, "app1");
    json_t *script = json_pack("[s]", SCRIPT);
    char *p = json_dumps(script, JSON_COMPACT);
    call(t, doc, "SetScript", p);
    free(p);
    json_decref(script);
    json_t *r = call(t, doc, "DoReload", "[]");
    ck_assert(json_is_true(json_object_get(result(r), "qReturn")));
    return doc;
}

static const char *CUBE =
    "[{\"qInfo\":{\"qType\":\"barchart\"},\"visualization\":\"barchart\","
    "\"title\":{\"qStringExpression\":{\"qExpr\":\"='Sales by country'\"}},"
    "\"total\":{\"qValueExpression\":{\"qExpr\":\"=Sum(Amount)\"}},"
    "\"qHyperCubeDef\":{\"qDimensions\":[{\"qDef\":{\"qFieldDefs\":[\"Country\"],\"cId\":\"d1\","
    "\"qSortCriterias\":[{\"qSortByLoadOrder\":1,\"qSortByNumeric\":1,\"qSortByAscii\":1}]}}],"
    "\"qMeasures\":[{\"qDef\":{\"qDef\":\"=Sum(Amount)\",\"cId\":\"m1\"},"
    "\"qSortBy\":{\"qSortByNumeric\":-1}}],\"qInterColumnSortOrder\":[1,0],"
    "\"qInitialDataFetch\":[{\"qWidth\":17,\"qHeight\":500}]}}]";

static const char *LISTBOX =
    "[{\"qInfo\":{\"qType\":\"njsListbox\",\"qId\":\"lb-country\"},\"qListObjectDef\":{"
    "\"qStateName\":\"$\",\"qShowAlternatives\":true,\"qDef\":{\"qFieldDefs\":[\"Country\"],"
    "\"qSortCriterias\":[{\"qSortByState\":1,\"qSortByAscii\":1}]},"
    "\"qInitialDataFetch\":[{\"qTop\":0,\"qLeft\":0,\"qWidth\":1,\"qHeight\":100}]}}]";

static json_t *layout(sess_t *t, int h) {
    return json_object_get(result(call(t, h, "GetLayout", "[]")), "qLayout");
}

static json_t *matrix(json_t *cube) {
    return json_object_get(json_array_get(json_object_get(cube, "qDataPages"), 0), "qMatrix");
}

static const char *cell_text(json_t *m, size_t r, size_t c) {
    return json_string_value(json_object_get(json_array_get(json_array_get(m, r), c), "qText"));
}

static const char *cell_state(json_t *m, size_t r, size_t c) {
    return json_string_value(json_object_get(json_array_get(json_array_get(m, r), c), "qState"));
}

/* The state of the list object row whose text is text. */
static const char *lo_state(json_t *lay, const char *text) {
    json_t *m = matrix(json_object_get(lay, "qListObject"));
    for (size_t r = 0; r < json_array_size(m); r++) {
        if (strcmp(cell_text(m, r, 0), text) == 0) {
            return cell_state(m, r, 0);
        }
    }
    return "missing";
}

/* ---- tests
 * ---------------------------------------------------------------------------------------- */

START_TEST(test_reload_inline_then_hypercube_layout_sorted_by_measure) {
    sess_t t;
    sess_open(&t, E, "tA", "alice", "app1");
    int doc = open_loaded(&t);
    json_t *al = json_object_get(result(call(&t, doc, "GetAppLayout", "[]")), "qLayout");
    ck_assert_str_eq(json_string_value(json_object_get(al, "qTitle")), "Sales app");
    ck_assert(json_is_true(json_object_get(al, "qHasData")));
    ck_assert(json_is_true(json_object_get(al, "qHasScript")));
    ck_assert_ptr_nonnull(json_object_get(json_object_get(al, "qLocaleInfo"), "qDecimalSep"));
    json_t *sc = call(&t, doc, "GetScript", "[]");
    ck_assert_str_eq(json_string_value(json_object_get(result(sc), "qScript")), SCRIPT);

    json_t *r = call(&t, doc, "CreateSessionObject", CUBE);
    int h = handle_of(r);
    json_t *q = json_object_get(result(r), "qReturn");
    ck_assert_str_eq(json_string_value(json_object_get(q, "qType")), "GenericObject");
    ck_assert_str_eq(json_string_value(json_object_get(q, "qGenericType")), "barchart");
    ck_assert(json_string_length(json_object_get(q, "qGenericId")) > 0);

    json_t *lay = layout(&t, h);
    ck_assert_str_eq(json_string_value(json_object_get(lay, "visualization")), "barchart");
    ck_assert_str_eq(json_string_value(json_object_get(lay, "title")), "Sales by country");
    ck_assert(json_real_value(json_object_get(lay, "total")) == 42.0);
    ck_assert_ptr_nonnull(json_object_get(lay, "qSelectionInfo"));
    json_t *hc = json_object_get(lay, "qHyperCube");
    ck_assert_ptr_null(json_object_get(lay, "qHyperCubeDef"));
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(hc, "qSize"), "qcy")), 3);
    json_t *m = matrix(hc);
    ck_assert_uint_eq(json_array_size(m), 3);
    ck_assert_str_eq(cell_text(m, 0, 0), "Norway");
    ck_assert_str_eq(cell_text(m, 0, 1), "20");
    ck_assert_str_eq(cell_text(m, 1, 0), "Sweden");
    ck_assert_str_eq(cell_text(m, 1, 1), "17");
    ck_assert_str_eq(cell_text(m, 2, 0), "Denmark");
    ck_assert_str_eq(cell_text(m, 2, 1), "5");
    json_t *norway = json_array_get(json_array_get(m, 0), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(norway, "qElemNumber")), NORWAY);
    ck_assert_str_eq(json_string_value(json_object_get(norway, "qNum")), "NaN");
    ck_assert_str_eq(cell_state(m, 0, 0), "O");
    ck_assert_str_eq(cell_state(m, 0, 1), "L");
    /* qArea clipped to the cube, totals over the whole set, custom keys echoed. */
    json_t *area = json_object_get(json_array_get(json_object_get(hc, "qDataPages"), 0), "qArea");
    ck_assert_int_eq(json_integer_value(json_object_get(area, "qWidth")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(area, "qHeight")), 3);
    json_t *tot = json_array_get(json_object_get(hc, "qGrandTotalRow"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(tot, "qText")), "42");
    json_t *di = json_array_get(json_object_get(hc, "qDimensionInfo"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(di, "cId")), "d1");
    ck_assert_str_eq(json_string_value(json_object_get(di, "qFallbackTitle")), "Country");
    ck_assert_int_eq(json_integer_value(json_object_get(di, "qCardinal")), 3);
    json_t *mi = json_array_get(json_object_get(hc, "qMeasureInfo"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(mi, "cId")), "m1");
    ck_assert(json_real_value(json_object_get(mi, "qMax")) == 20.0);
    ck_assert(json_real_value(json_object_get(mi, "qMin")) == 5.0);

    /* Paging through GetHyperCubeData: the second row only. */
    json_t *pages = json_object_get(
        result(call(&t, h, "GetHyperCubeData",
                    "[\"/qHyperCubeDef\",[{\"qLeft\":0,\"qTop\":1,\"qWidth\":2,\"qHeight\":1}]]")),
        "qDataPages");
    json_t *pm = json_object_get(json_array_get(pages, 0), "qMatrix");
    ck_assert_uint_eq(json_array_size(pm), 1);
    ck_assert_str_eq(cell_text(pm, 0, 0), "Sweden");
    sess_close(&t);
}
END_TEST

START_TEST(test_select_hypercube_values_changes_states_and_reports_every_object) {
    sess_t t;
    sess_open(&t, E, "tA", "alice", "app1");
    int doc = open_loaded(&t);
    int cube = handle_of(call(&t, doc, "CreateSessionObject", CUBE));
    int lb = handle_of(call(&t, doc, "CreateSessionObject", LISTBOX));
    json_t *lay = layout(&t, lb);
    ck_assert_str_eq(lo_state(lay, "Norway"), "O");

    json_t *r = call(&t, cube, "BeginSelections", "[[\"/qHyperCubeDef\"]]");
    ck_assert(has_change(r, cube));
    r = call(&t, cube, "SelectHyperCubeValues", "[\"/qHyperCubeDef\",0,[1],false]");
    ck_assert(json_is_true(json_object_get(result(r), "qSuccess")));
    ck_assert(has_change(r, cube));
    ck_assert(has_change(r, lb));

    lay = layout(&t, cube);
    json_t *si = json_object_get(lay, "qSelectionInfo");
    ck_assert(json_is_true(json_object_get(si, "qInSelections")));
    ck_assert(json_is_true(json_object_get(si, "qMadeSelections")));
    json_t *m = matrix(json_object_get(lay, "qHyperCube"));
    ck_assert_uint_eq(json_array_size(m), 1);
    ck_assert_str_eq(cell_text(m, 0, 0), "Norway");
    ck_assert_str_eq(cell_state(m, 0, 0), "S");
    json_t *tot =
        json_array_get(json_object_get(json_object_get(lay, "qHyperCube"), "qGrandTotalRow"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(tot, "qText")), "20");

    lay = layout(&t, lb);
    ck_assert_str_eq(lo_state(lay, "Norway"), "S");
    ck_assert_str_eq(lo_state(lay, "Sweden"), "A");
    ck_assert_str_eq(lo_state(lay, "Denmark"), "A");
    /* Sorted by state: the selected value first. */
    ck_assert_str_eq(cell_text(matrix(json_object_get(lay, "qListObject")), 0, 0), "Norway");
    json_t *counts = json_object_get(
        json_object_get(json_object_get(lay, "qListObject"), "qDimensionInfo"), "qStateCounts");
    ck_assert_int_eq(json_integer_value(json_object_get(counts, "qSelected")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(counts, "qAlternative")), 2);

    /* A product list box: B does not occur with Norway. */
    int prod = handle_of(
        call(&t, doc, "CreateSessionObject",
             "[{\"qInfo\":{\"qType\":\"lb\"},\"qListObjectDef\":{\"qShowAlternatives\":true,"
             "\"qDef\":{\"qFieldDefs\":[\"Product\"]},"
             "\"qInitialDataFetch\":[{\"qWidth\":1,\"qHeight\":10}]}}]"));
    lay = layout(&t, prod);
    ck_assert_str_eq(lo_state(lay, "A"), "O");
    ck_assert_str_eq(lo_state(lay, "B"), "X");

    /* EndSelections(false) rolls the selection back. */
    r = call(&t, cube, "SelectHyperCubeCells", "[\"/qHyperCubeDef\",[0],[0]]");
    ck_assert(json_is_true(json_object_get(result(r), "qSuccess")));
    ck_assert_str_eq(lo_state(layout(&t, lb), "Norway"), "S");
    r = call(&t, cube, "EndSelections", "[false]");
    ck_assert(has_change(r, lb));
    lay = layout(&t, lb);
    ck_assert_str_eq(lo_state(lay, "Norway"), "O");
    ck_assert_ptr_null(
        json_object_get(json_object_get(layout(&t, cube), "qSelectionInfo"), "qInSelections"));
    sess_close(&t);
}
END_TEST

START_TEST(test_listobject_and_field_selections_clear_back_forward) {
    sess_t t;
    sess_open(&t, E, "tA", "alice", "app1");
    int doc = open_loaded(&t);
    int lb = handle_of(call(&t, doc, "CreateSessionObject", LISTBOX));
    int cs = handle_of(call(&t, doc, "CreateSessionObject",
                            "[{\"qInfo\":{\"qType\":\"current-selections\"},"
                            "\"qSelectionObjectDef\":{\"qStateName\":\"$\"}}]"));
    json_t *r = call(&t, lb, "SelectListObjectValues", "[\"/qListObjectDef\",[0],true]");
    ck_assert(json_is_true(json_object_get(result(r), "qSuccess")));
    ck_assert(has_change(r, cs));
    json_t *so = json_object_get(layout(&t, cs), "qSelectionObject");
    json_t *item = json_array_get(json_object_get(so, "qSelections"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(item, "qField")), "Country");
    ck_assert_str_eq(json_string_value(json_object_get(item, "qSelected")), "Sweden");
    ck_assert_int_eq(json_integer_value(json_object_get(so, "qBackCount")), 1);

    int f = handle_of(call(&t, doc, "GetField", "[\"Country\",\"$\"]"));
    r = call(&t, f, "GetCardinal", "[]");
    ck_assert_int_eq(json_integer_value(json_object_get(result(r), "qReturn")), 3);
    r = call(&t, f, "ToggleSelect", "[\"Denmark\"]");
    ck_assert(json_is_true(json_object_get(result(r), "qReturn")));
    ck_assert(has_change(r, lb));
    json_t *lay = layout(&t, lb);
    ck_assert_str_eq(lo_state(lay, "Sweden"), "S");
    ck_assert_str_eq(lo_state(lay, "Denmark"), "S");
    r = call(&t, f, "SelectValues", "[[{\"qText\":\"Norway\"}],false]");
    ck_assert(json_is_true(json_object_get(result(r), "qReturn")));
    lay = layout(&t, lb);
    ck_assert_str_eq(lo_state(lay, "Norway"), "S");
    ck_assert_str_eq(lo_state(lay, "Sweden"), "A");
    r = call(&t, f, "Clear", "[]");
    ck_assert(has_change(r, lb));
    ck_assert_str_eq(lo_state(layout(&t, lb), "Norway"), "O");
    /* Back restores Norway, Forward clears again. */
    r = call(&t, doc, "Back", "[]");
    ck_assert(has_change(r, lb));
    ck_assert_str_eq(lo_state(layout(&t, lb), "Norway"), "S");
    call(&t, doc, "Forward", "[]");
    ck_assert_str_eq(lo_state(layout(&t, lb), "Norway"), "O");
    /* Locked fields survive ClearAll. */
    call(&t, f, "Select", "[\"Sweden\"]");
    r = call(&t, f, "Lock", "[]");
    ck_assert(json_is_true(json_object_get(result(r), "qReturn")));
    call(&t, doc, "ClearAll", "[]");
    ck_assert_str_eq(lo_state(layout(&t, lb), "Sweden"), "S");
    call(&t, f, "Unlock", "[]");
    r = call(&t, doc, "ClearAll", "[]");
    ck_assert(has_change(r, lb));
    ck_assert_str_eq(lo_state(layout(&t, lb), "Sweden"), "O");
    ck_assert_int_eq(err_code(call(&t, doc, "GetField", "[\"Nope\"]")), TSR_QIX_ERR_NOT_FOUND);
    /* Evaluate follows the selection: Sweden 17 of 42. */
    call(&t, f, "Select", "[\"Sweden\"]");
    json_t *ev = call(&t, doc, "Evaluate", "[\"=Sum(Amount)\"]");
    ck_assert_str_eq(json_string_value(json_object_get(result(ev), "qReturn")), "17");
    call(&t, doc, "ClearAll", "[]");
    ev = json_object_get(result(call(&t, doc, "EvaluateEx", "[\"Sum(Amount)/2\"]")), "qValue");
    ck_assert(json_real_value(json_object_get(ev, "qNumber")) == 21.0);
    ck_assert(json_is_true(json_object_get(ev, "qIsNumeric")));
    ev = json_object_get(result(call(&t, doc, "EvaluateEx", "[\"='text'\"]")), "qValue");
    ck_assert_str_eq(json_string_value(json_object_get(ev, "qText")), "text");
    ev = call(&t, doc, "Evaluate", "[\"Sum(NoSuchField)\"]");
    ck_assert(strncmp(json_string_value(json_object_get(result(ev), "qReturn")), "Error", 5) == 0);
    sess_close(&t);
}
END_TEST

START_TEST(test_tables_and_keys_and_field_list) {
    sess_t t;
    sess_open(&t, E, "tA", "alice", "app1");
    int doc = open_loaded(&t);
    json_t *r = result(call(&t, doc, "GetTablesAndKeys",
                            "[{\"qcx\":1000,\"qcy\":1000},{\"qcx\":0,\"qcy\":0},40,true,false]"));
    json_t *tr = json_array_get(json_object_get(r, "qtr"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(tr, "qName")), "Sales");
    ck_assert_int_eq(json_integer_value(json_object_get(tr, "qNoOfRows")), 4);
    ck_assert_uint_eq(json_array_size(json_object_get(tr, "qFields")), 3);
    int fl = handle_of(call(&t, doc, "CreateSessionObject",
                            "[{\"qInfo\":{\"qType\":\"FieldList\",\"qId\":\"FieldList\"},"
                            "\"qFieldListDef\":{\"qShowSrcTables\":true}}]"));
    json_t *items = json_object_get(json_object_get(layout(&t, fl), "qFieldList"), "qItems");
    ck_assert_uint_eq(json_array_size(items), 3);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "qName")),
                     "Country");
    sess_close(&t);
}
END_TEST

START_TEST(test_objects_missing_persistent_properties_destroy) {
    sess_t t, u;
    sess_open(&t, E, "tA", "alice", "app1");
    sess_open(&u, E, "tA", "bob", "app1");
    int doc = open_loaded(&t);
    int doc2 = open_doc(&u, "app1");
    /* nebula needs exactly code 2 and "Object not found". */
    json_t *r = call(&t, doc, "GetObject", "[\"FieldList\"]");
    ck_assert_int_eq(err_code(r), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r, "error"), "message")),
                     "Object not found");

    /* Sheet lists (qAppObjectListDef) follow the app's objects in every session. */
    const char *list = "[{\"qInfo\":{\"qType\":\"sheetlist\"},\"qAppObjectListDef\":{"
                       "\"qType\":\"sheet\",\"qData\":{\"title\":\"/qMetaDef/title\"}}}]";
    int sl = handle_of(call(&t, doc, "CreateSessionObject", list));
    int sl2 = handle_of(call(&u, doc2, "CreateSessionObject", list));
    ck_assert_uint_eq(json_array_size(json_object_get(
                          json_object_get(layout(&t, sl), "qAppObjectList"), "qItems")),
                      0);
    r = call(&t, doc, "CreateObject",
             "[{\"qInfo\":{\"qId\":\"sheet-1\",\"qType\":\"sheet\"},\"qMetaDef\":{\"title\":\"S\"},"
             "\"custom\":1}]");
    ck_assert(has_change(r, sl));
    size_t n0 = json_array_size(u.frames);
    tsr_qix_session_flush(u.s);
    ck_assert_uint_eq(json_array_size(u.frames), n0 + 1);
    ck_assert(has_change(json_array_get(u.frames, n0), sl2));
    json_t *item = json_array_get(
        json_object_get(json_object_get(layout(&u, sl2), "qAppObjectList"), "qItems"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(item, "qData"), "title")),
                     "S");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(result(r), "qInfo"), "qId")),
                     "sheet-1");
    int h = handle_of(r);
    ck_assert_int_eq(err_code(call(&t, doc, "CreateObject",
                                   "[{\"qInfo\":{\"qId\":\"sheet-1\",\"qType\":\"sheet\"}}]")),
                     TSR_QIX_ERR_ALREADY_EXISTS);
    /* Another session sees it and is told when its properties change. */
    int h2 = handle_of(call(&u, doc2, "GetObject", "[\"sheet-1\"]"));
    json_t *lay = layout(&u, h2);
    ck_assert_int_eq(json_integer_value(json_object_get(lay, "custom")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(lay, "qMeta"), "title")),
                     "S");
    r = call(&t, h, "SetProperties",
             "[{\"qInfo\":{\"qId\":\"sheet-1\",\"qType\":\"sheet\"},\"custom\":2}]");
    ck_assert(has_change(r, h));
    size_t before = json_array_size(u.frames);
    tsr_qix_session_flush(u.s);
    ck_assert_uint_eq(json_array_size(u.frames), before + 1);
    json_t *push = json_array_get(u.frames, before);
    ck_assert_ptr_null(json_object_get(push, "id"));
    ck_assert(has_change(push, h2));
    ck_assert_int_eq(json_integer_value(json_object_get(layout(&u, h2), "custom")), 2);
    r = call(&t, h, "GetInfo", "[]");
    ck_assert_str_eq(
        json_string_value(json_object_get(json_object_get(result(r), "qInfo"), "qType")), "sheet");
    r = call(&t, h, "ApplyPatches",
             "[[{\"qOp\":\"replace\",\"qPath\":\"/custom\",\"qValue\":\"3\"}],false]");
    ck_assert(has_change(r, h));
    ck_assert_int_eq(
        json_integer_value(json_object_get(
            json_object_get(result(call(&t, h, "GetProperties", "[]")), "qProp"), "custom")),
        3);
    /* Session objects are destroyed with a close notification. */
    int so = handle_of(call(&t, doc, "CreateSessionObject", CUBE));
    const char *sid = NULL;
    json_t *info = json_object_get(result(call(&t, so, "GetInfo", "[]")), "qInfo");
    sid = json_string_value(json_object_get(info, "qId"));
    char p[128];
    snprintf(p, sizeof p, "[\"%s\"]", sid);
    r = call(&t, doc, "DestroySessionObject", p);
    ck_assert(json_is_true(json_object_get(result(r), "qSuccess")));
    ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(r, "close"), 0)), so);
    r = call(&t, doc, "DestroyObject", "[\"sheet-1\"]");
    ck_assert(json_is_true(json_object_get(result(r), "qSuccess")));
    ck_assert_int_eq(err_code(call(&u, doc2, "GetObject", "[\"sheet-1\"]")), 2);
    sess_close(&u);
    sess_close(&t);
}
END_TEST

START_TEST(test_reload_pushes_change_to_other_sessions_and_error_keeps_data) {
    sess_t t, u;
    sess_open(&t, E, "tA", "alice", "app1");
    sess_open(&u, E, "tA", "bob", "app1");
    int doc = open_loaded(&t);
    int doc2 = open_doc(&u, "app1");
    int cube2 = handle_of(call(&u, doc2, "CreateSessionObject", CUBE));
    ck_assert_int_eq(json_array_size(matrix(json_object_get(layout(&u, cube2), "qHyperCube"))), 3);
    /* bob's selection is his own: alice's layouts do not change. */
    int f2 = handle_of(call(&u, doc2, "GetField", "[\"Country\"]"));
    call(&u, f2, "Select", "[\"Sweden\"]");
    /* A computed state that the reload must free before its model. */
    ck_assert_uint_eq(json_array_size(matrix(json_object_get(layout(&u, cube2), "qHyperCube"))), 1);
    int cube = handle_of(call(&t, doc, "CreateSessionObject", CUBE));
    ck_assert_uint_eq(json_array_size(matrix(json_object_get(layout(&t, cube), "qHyperCube"))), 3);

    call(&t, doc, "SetScript",
         "[\"Sales: LOAD * INLINE [\\nCountry, Product, Amount\\nSweden, A, 1\\nFinland, C, "
         "2\\n];\"]");
    json_t *r = call(&t, doc, "DoReloadEx", "[{}]");
    ck_assert(json_is_true(json_object_get(json_object_get(result(r), "qResult"), "qSuccess")));
    ck_assert(has_change(r, cube));
    size_t before = json_array_size(u.frames);
    tsr_qix_session_flush(u.s);
    ck_assert_uint_eq(json_array_size(u.frames), before + 1);
    ck_assert(has_change(json_array_get(u.frames, before), cube2));
    ck_assert(has_change(json_array_get(u.frames, before), doc2));
    /* bob's selection of Sweden carried over to the new model. */
    json_t *m = matrix(json_object_get(layout(&u, cube2), "qHyperCube"));
    ck_assert_uint_eq(json_array_size(m), 1);
    ck_assert_str_eq(cell_text(m, 0, 0), "Sweden");
    ck_assert_str_eq(cell_text(m, 0, 1), "1");

    /* A broken script answers false and keeps the model. */
    call(&t, doc, "SetScript", "[\"Sales: LOAD * FROM nowhere;\"]");
    r = call(&t, doc, "DoReload", "[]");
    ck_assert(json_is_false(json_object_get(result(r), "qReturn")));
    ck_assert_uint_eq(json_array_size(matrix(json_object_get(layout(&t, cube), "qHyperCube"))), 2);
    sess_close(&u);
    sess_close(&t);
}
END_TEST

/* ---- the reloader's live log ------------------------------------------------------------------
 */

typedef struct {
    tsr_buf_t text;      /* every on_log call, in order */
    bool switched;       /* before_switch was called */
    bool rows_before;    /* the rows line came before the version switch */
    bool started_before; /* the statement's start line came before its rows line */
} live_rec_t;

static void rec_log(void *ud, const char *text, size_t len) {
    live_rec_t *r = ud;
    ck_assert_msg(len > 0 && text[len - 1] == '\n', "not whole lines: %.*s", (int)len, text);
    size_t at = r->text.len;
    ck_assert_int_eq(tsr_buf_append(&r->text, text, len), TSR_OK);
    if (strstr(r->text.data + at, "Sales << INLINE: 4 rows") != NULL) {
        r->rows_before = !r->switched;
        r->started_before = strstr(r->text.data, "line 2: Sales: LOAD * INLINE [ Country") != NULL;
    }
}

static void rec_switch(void *ud) {
    ((live_rec_t *)ud)->switched = true;
}

START_TEST(test_reload_app_log_is_live_line_by_line) {
    sess_t t;
    sess_open(&t, E, "tA", "alice", "app1");
    int doc = open_doc(&t, "app1");
    json_t *script = json_pack("[s]", "// sales\n"
                                      "Sales: LOAD * INLINE [\n"
                                      "Country, Product, Amount\n"
                                      "Sweden, A, 10\nSweden, B, 7\nNorway, A, 20\nDenmark, B, 5\n"
                                      "];\n"
                                      "LET n = 1;\n");
    char *p = json_dumps(script, JSON_COMPACT);
    call(&t, doc, "SetScript", p);
    free(p);
    json_decref(script);
    call(&t, doc, "DoSave", "[]");
    sess_close(&t);

    live_rec_t rec = {0};
    tsr_buf_init(&rec.text, 0);
    tsr_engined_reload_opts_t o = {
        .token = 7, .ud = &rec, .before_switch = rec_switch, .on_log = rec_log};
    char *log = NULL;
    tsr_error_t err = {0};
    char data[128];
    snprintf(data, sizeof data, "%s/data", dir);
    (void)mkdir(data, 0700); /* the run folders go under the data folder */
    tsr_err_t rc = tsr_engined_reload_app(E, "tA", "app1", &o, &log, &err);
    ck_assert_msg(rc == TSR_OK, "reload: %s", err.msg);
    ck_assert(rec.switched);
    ck_assert_msg(rec.rows_before, "rows line only after the switch: %s", rec.text.data);
    ck_assert_msg(rec.started_before, "no start line before the rows: %s", rec.text.data);
    /* Start lines count the comment line; the LET statement has its own. */
    ck_assert_ptr_nonnull(strstr(rec.text.data, "\nline 9: LET n = 1\n"));
    ck_assert_ptr_nonnull(strstr(rec.text.data, "model version 7."));
    /* The returned log is exactly what went out live. */
    ck_assert_str_eq(log, rec.text.data);
    free(log);
    tsr_buf_cleanup(&rec.text);
}
END_TEST

START_TEST(test_reload_app_long_statement_progress_lines_bounded) {
    /* A data file big enough for its LOAD to outlast a 2 ms first progress interval. */
    char path[256];
    snprintf(path, sizeof path, "%s/data", dir);
    (void)mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/data/tA", dir);
    (void)mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/data/tA/big.csv", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("Country,Amount\n", f);
    for (int i = 0; i < 400000; i++) {
        fprintf(f, "C%d,%d\n", i % 5000, i % 1000);
    }
    ck_assert_int_eq(fclose(f), 0);
    sess_t t;
    sess_open(&t, E, "tA", "alice", "app1");
    int doc = open_doc(&t, "app1");
    call(&t, doc, "SetScript",
         "[\"Big: LOAD * FROM [lib://DataFiles/big.csv] (txt, utf8, embedded labels, delimiter "
         "is ',');\"]");
    call(&t, doc, "DoSave", "[]");
    sess_close(&t);

    live_rec_t rec = {0};
    tsr_buf_init(&rec.text, 0);
    tsr_engined_reload_opts_t o = {.token = 3, .ud = &rec, .on_log = rec_log, .progress_ms = 2};
    char *log = NULL;
    tsr_error_t err = {0};
    uint64_t t0 = tsr_mono_ms();
    tsr_err_t rc = tsr_engined_reload_app(E, "tA", "app1", &o, &log, &err);
    uint64_t took = tsr_mono_ms() - t0;
    ck_assert_msg(rc == TSR_OK, "reload: %s", err.msg);
    const char *start = strstr(log, "line 1: Big: LOAD * FROM");
    const char *prog = strstr(log, "line 1: still running after ");
    const char *rows = strstr(log, "400000 rows");
    ck_assert_msg(start != NULL && rows != NULL, "log: %s", log);
    ck_assert_msg(prog != NULL, "no progress line in %llu ms: %s", (unsigned long long)took, log);
    ck_assert(start < prog && prog < rows);
    /* Bounded: the interval doubles (2, 4, 8 ... ms), so few lines however long it runs. */
    size_t n = 0;
    for (const char *p = log; (p = strstr(p, "still running")) != NULL; p++) {
        n++;
    }
    ck_assert_msg(n <= 16, "%zu progress lines in %llu ms", n, (unsigned long long)took);
    ck_assert_str_eq(log, rec.text.data);
    free(log);
    tsr_buf_cleanup(&rec.text);
}
END_TEST

START_TEST(test_app_persists_and_model_rebuilds_after_restart) {
    sess_t t;
    sess_open(&t, E, "tA", "alice", "app1");
    int doc = open_loaded(&t);
    call(&t, doc, "CreateObject",
         "[{\"qInfo\":{\"qId\":\"chart-1\",\"qType\":\"barchart\"},"
         "\"qHyperCubeDef\":{\"qDimensions\":[{\"qDef\":{\"qFieldDefs\":[\"Country\"]}}],"
         "\"qMeasures\":[{\"qDef\":{\"qDef\":\"Sum(Amount)\"}}],"
         "\"qInitialDataFetch\":[{\"qWidth\":2,\"qHeight\":10}]}}]");
    call(&t, doc, "SetAppProperties", "[{\"qTitle\":\"Renamed\",\"color\":\"red\"}]");
    call(&t, doc, "DoSave", "[]");
    sess_close(&t);
    tsr_engined_destroy(E);
    E = engined_open(false);

    sess_open(&t, E, "tA", "alice", "app1");
    doc = open_doc(&t, "app1");
    json_t *al = json_object_get(result(call(&t, doc, "GetAppLayout", "[]")), "qLayout");
    ck_assert_str_eq(json_string_value(json_object_get(al, "qTitle")), "Renamed");
    ck_assert_str_eq(json_string_value(json_object_get(al, "color")), "red");
    ck_assert(json_is_true(json_object_get(al, "qHasData")));
    int h = handle_of(call(&t, doc, "GetObject", "[\"chart-1\"]"));
    json_t *hc = json_object_get(layout(&t, h), "qHyperCube");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(hc, "qSize"), "qcy")), 3);
    json_t *list = result(call(&t, -1, "GetDocList", "[]"));
    ck_assert_uint_eq(json_array_size(json_object_get(list, "qDocList")), 1);
    sess_close(&t);
}
END_TEST

START_TEST(test_data_files_from_tenant_area_and_model_file_survives_restart) {
    char path[96];
    snprintf(path, sizeof path, "%s/data/tA", dir);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s' && printf 'Country,Amount\\nSweden,1\\nNorway,2\\n' > "
             "'%s/sales.csv'",
             path, path);
    ck_assert_int_eq(system(cmd), 0);
    sess_t t;
    sess_open(&t, E, "tA", "alice", "app1");
    int doc = open_doc(&t, "app1");
    call(&t, doc, "SetScript",
         "[\"Sales: LOAD * FROM [lib://DataFiles/sales.csv] (txt, embedded labels, delimiter is "
         "',');\"]");
    ck_assert(json_is_true(json_object_get(result(call(&t, doc, "DoReload", "[]")), "qReturn")));
    int f = handle_of(call(&t, doc, "GetField", "[\"Country\"]"));
    ck_assert_int_eq(
        json_integer_value(json_object_get(result(call(&t, f, "GetCardinal", "[]")), "qReturn")),
        2);
    /* A path out of the tenant's data area is refused. */
    call(&t, doc, "SetScript",
         "[\"T: LOAD * FROM [lib://DataFiles/../tB/x.csv] (txt, embedded labels);\"]");
    ck_assert(json_is_false(json_object_get(result(call(&t, doc, "DoReload", "[]")), "qReturn")));
    sess_close(&t);

    /* After a restart the model comes from its file, not from the data files. */
    tsr_engined_destroy(E);
    snprintf(cmd, sizeof cmd, "rm '%s/sales.csv'", path);
    ck_assert_int_eq(system(cmd), 0);
    E = engined_open(false);
    sess_open(&t, E, "tA", "alice", "app1");
    doc = open_doc(&t, "app1");
    f = handle_of(call(&t, doc, "GetField", "[\"Country\"]"));
    ck_assert_int_eq(
        json_integer_value(json_object_get(result(call(&t, f, "GetCardinal", "[]")), "qReturn")),
        2);
    sess_close(&t);
}
END_TEST

START_TEST(test_idle_apps_leave_memory_by_lru_and_load_again) {
    tsr_engined_destroy(E);
    char apps[128], data[128];
    snprintf(apps, sizeof apps, "%s/apps", dir);
    snprintf(data, sizeof data, "%s/data", dir);
    tsr_engined_opts_t o = {.data_root = data, .memory_bytes = 1, .create_on_open = true};
    tsr_error_t err = {0};
    ck_assert_int_eq(tsr_engined_appstore_files_open(apps, &o.store, &err), TSR_OK);
    ck_assert_int_eq(tsr_engined_create(&o, &E, &err), TSR_OK);
    size_t n = 0, bytes = 0;
    sess_t t, u;
    sess_open(&t, E, "tA", "alice", "app1");
    open_loaded(&t);
    tsr_engined_memory(E, &n, &bytes);
    ck_assert_uint_eq(n, 1); /* over budget, but in use */
    ck_assert_uint_gt(bytes, 0);
    sess_close(&t);
    tsr_engined_memory(E, &n, &bytes);
    ck_assert_uint_eq(n, 0); /* idle: unloaded */
    /* It loads again (from its model file) on the next open, with its data. */
    sess_open(&u, E, "tA", "bob", "app1");
    int doc = open_doc(&u, "app1");
    tsr_engined_memory(E, &n, &bytes);
    ck_assert_uint_eq(n, 1);
    int f = handle_of(call(&u, doc, "GetField", "[\"Country\"]"));
    ck_assert_int_eq(
        json_integer_value(json_object_get(result(call(&u, f, "GetCardinal", "[]")), "qReturn")),
        3);
    sess_close(&u);
}
END_TEST

/* Sessions of one app on their own threads while another reloads: every session sees a
 * consistent model (run under ASan/TSan, this guards the model swap and the pushes). */
typedef struct {
    int iterations;
    int failures;
} worker_t;

static void *selector(void *ud) {
    worker_t *w = ud;
    for (int i = 0; i < w->iterations; i++) {
        sess_t t;
        sess_open(&t, E, "tA", "bob", "app1");
        int doc = open_doc(&t, "app1");
        int cube = handle_of(call(&t, doc, "CreateSessionObject", CUBE));
        int lb = handle_of(call(&t, doc, "CreateSessionObject", LISTBOX));
        for (int j = 0; j < 5; j++) {
            call(&t, lb, "SelectListObjectValues", "[\"/qListObjectDef\",[0],true]");
            json_t *hc = json_object_get(layout(&t, cube), "qHyperCube");
            if (!json_is_object(hc)) {
                w->failures++;
            }
            layout(&t, lb);
            tsr_qix_session_flush(t.s);
        }
        sess_close(&t);
    }
    return NULL;
}

START_TEST(test_concurrent_sessions_during_reloads) {
    sess_t t;
    sess_open(&t, E, "tA", "alice", "app1");
    int doc = open_loaded(&t);
    worker_t w[3] = {{20, 0}, {20, 0}, {20, 0}};
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(pthread_create(&th[i], NULL, selector, &w[i]), 0);
    }
    for (int i = 0; i < 20; i++) {
        ck_assert(
            json_is_true(json_object_get(result(call(&t, doc, "DoReload", "[]")), "qReturn")));
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(w[i].failures, 0);
    }
    sess_close(&t);
}
END_TEST

START_TEST(test_other_tenant_app_answers_like_missing_one) {
    tsr_qix_backend_t be = tsr_engined_backend(E);
    tsr_error_t e1 = {0}, e2 = {0};
    ck_assert_int_eq(be.check_app(be.ud, "tA/alice", "app1", &e1), TSR_OK);
    ck_assert_int_eq(be.check_app(be.ud, "tB/mallory", "app1", &e1), TSR_ENOTFOUND);
    ck_assert_int_eq(be.check_app(be.ud, "tB/mallory", "no-such-app", &e2), TSR_ENOTFOUND);
    ck_assert_str_eq(e1.msg, e2.msg);
    ck_assert_int_eq(be.check_app(be.ud, "malformed", "app1", &e1), TSR_ENOTFOUND);

    /* Over the protocol: OpenDoc (engineData connection) errors are identical. */
    sess_t b;
    sess_open(&b, E, "tB", "mallory", NULL);
    json_t *r1 = json_deep_copy(call(&b, -1, "OpenDoc", "[\"app1\"]"));
    json_t *r2 = json_deep_copy(call(&b, -1, "OpenDoc", "[\"no-such-app\"]"));
    ck_assert_int_eq(err_code(r1), TSR_QIX_ERR_APP_NOT_FOUND);
    json_object_del(json_object_get(r1, "error"), "parameter");
    json_object_del(json_object_get(r2, "error"), "parameter");
    json_object_del(r1, "id");
    json_object_del(r2, "id");
    ck_assert(json_equal(r1, r2));
    json_decref(r1);
    json_decref(r2);
    json_t *list = result(call(&b, -1, "GetDocList", "[]"));
    ck_assert_uint_eq(json_array_size(json_object_get(list, "qDocList")), 0);
    sess_close(&b);

    /* With create-on-open an unknown id becomes the caller's app, a taken one stays refused. */
    tsr_engined_t *c = engined_open(true);
    be = tsr_engined_backend(c);
    ck_assert_int_eq(be.check_app(be.ud, "tB/mallory", "app1", &e1), TSR_ENOTFOUND);
    ck_assert_int_eq(be.check_app(be.ud, "tB/mallory", "fresh", &e1), TSR_OK);
    ck_assert_int_eq(be.check_app(be.ud, "tA/alice", "fresh", &e1), TSR_ENOTFOUND);
    ck_assert_int_eq(be.check_app(be.ud, "tA/alice", "../etc", &e1), TSR_ENOTFOUND);
    tsr_engined_destroy(c);
}
END_TEST

START_TEST(test_upgrade_requires_principal_headers) {
    tsr_qix_opts_t qo = {.backend = tsr_engined_backend(E),
                         .authenticate = tsr_engined_authenticate};
    tsr_qix_server_t *q = NULL;
    tsr_httpd_t *h = NULL;
    tsr_error_t err = {0};
    ck_assert_int_eq(tsr_qix_server_create(&qo, &q, &err), TSR_OK);
    tsr_httpd_opts_t o = {.service = "engine", .bind = "127.0.0.1", .threads = 1, .max_body = 1024};
    ck_assert_int_eq(tsr_httpd_create(&o, &h, &err), TSR_OK);
    ck_assert_int_eq(tsr_qix_routes(h, q, &err), TSR_OK);
    const char *ws[] = {"Upgrade",
                        "websocket",
                        "Connection",
                        "Upgrade",
                        "Sec-WebSocket-Version",
                        "13",
                        "Sec-WebSocket-Key",
                        "dGhlIHNhbXBsZSBub25jZQ==",
                        NULL};
    tsr_httpd_response_t resp = {0};
    tsr_httpd_inject(h, "GET", "/app/app1", ws, NULL, 0, &resp);
    ck_assert_uint_eq(resp.status, 401);
    tsr_httpd_response_cleanup(&resp);
    const char *ok[] = {"Upgrade",
                        "websocket",
                        "Connection",
                        "Upgrade",
                        "Sec-WebSocket-Version",
                        "13",
                        "Sec-WebSocket-Key",
                        "dGhlIHNhbXBsZSBub25jZQ==",
                        "X-Tsr-Tenant-Id",
                        "tA",
                        "X-Tsr-User-Id",
                        "alice",
                        NULL};
    tsr_httpd_inject(h, "GET", "/app/app1", ok, NULL, 0, &resp);
    ck_assert_uint_eq(resp.status, 101);
    tsr_httpd_response_cleanup(&resp);
    tsr_httpd_destroy(h);
    tsr_qix_server_destroy(q);
}
END_TEST

/* A stand-in for spaces' decisions (the HTTP client is exercised by the integration test):
 * app "sp1" of tenant tA; alice may do everything, bob only read, carol nothing; a principal
 * whose roles hold TenantAdmin may do everything. */
static tsr_err_t fake_decide(void *ud, const tsr_engined_principal_t *who, const char *app_id,
                             unsigned *actions, tsr_error_t *err) {
    (void)ud;
    if (strcmp(who->tenant_id, "tA") != 0 || strcmp(app_id, "sp1") != 0) {
        return tsr_error_set(err, TSR_ENOTFOUND, "app not found");
    }
    if (who->roles != NULL && strstr(who->roles, "TenantAdmin") != NULL) {
        *actions = TSR_ENGINED_ALL;
    } else if (strcmp(who->user_id, "alice") == 0) {
        *actions = TSR_ENGINED_ALL;
    } else if (strcmp(who->user_id, "bob") == 0) {
        *actions = TSR_ENGINED_READ;
    } else {
        *actions = 0;
    }
    return TSR_OK;
}

static tsr_engined_t *engined_with_access(void) {
    char apps[128], data[128];
    tsr_engined_opts_t o = {.access = {.decide = fake_decide}};
    tsr_error_t err = {0};
    snprintf(apps, sizeof apps, "%s/apps", dir);
    snprintf(data, sizeof data, "%s/data", dir);
    ck_assert_int_eq(tsr_engined_appstore_files_open(apps, &o.store, &err), TSR_OK);
    o.data_root = data;
    tsr_engined_t *e = NULL;
    ck_assert_int_eq(tsr_engined_create(&o, &e, &err), TSR_OK);
    return e;
}

START_TEST(test_access_decisions_gate_open_edit_and_reload) {
    tsr_engined_t *e = engined_with_access();
    tsr_qix_backend_t be = tsr_engined_backend(e);
    tsr_error_t err = {0};
    ck_assert_int_eq(be.check_app(be.ud, "tA/alice", "sp1", &err), TSR_OK);
    ck_assert_int_eq(be.check_app(be.ud, "tA/carol", "sp1", &err), TSR_EFORBIDDEN);
    ck_assert_int_eq(be.check_app(be.ud, "tB/alice", "sp1", &err), TSR_ENOTFOUND);
    ck_assert_int_eq(be.check_app(be.ud, "tA/alice", "other", &err), TSR_ENOTFOUND);

    /* alice edits and reloads the app spaces knows; the engine creates its content. */
    sess_t a, b;
    sess_open(&a, e, "tA", "alice", "sp1");
    int doc = open_doc(&a, "sp1");
    json_t *script = json_pack("[s]", SCRIPT);
    char *p = json_dumps(script, JSON_COMPACT);
    ck_assert_ptr_nonnull(json_object_get(call(&a, doc, "SetScript", p), "result"));
    ck_assert(json_is_true(json_object_get(result(call(&a, doc, "DoReload", "[]")), "qReturn")));
    /* bob reads, but may neither edit nor reload. */
    sess_open(&b, e, "tA", "bob", "sp1");
    int doc2 = open_doc(&b, "sp1");
    ck_assert_str_eq(
        json_string_value(json_object_get(result(call(&b, doc2, "GetScript", "[]")), "qScript")),
        SCRIPT);
    ck_assert_int_eq(err_code(call(&b, doc2, "SetScript", p)), TSR_QIX_ERR_ACCESS_DENIED);
    json_t *list = json_object_get(result(call(&b, -1, "GetDocList", "[]")), "qDocList");
    ck_assert_uint_eq(json_array_size(list), 1);
    ck_assert(json_is_true(json_object_get(json_array_get(list, 0), "qReadOnly")));
    sess_t c;
    sess_open(&c, e, "tA", "carol", NULL);
    list = json_object_get(result(call(&c, -1, "GetDocList", "[]")), "qDocList");
    ck_assert_uint_eq(json_array_size(list), 0); /* carol may not see sp1 */
    sess_close(&c);
    ck_assert_int_eq(err_code(call(&b, doc2, "DoReload", "[]")), TSR_QIX_ERR_ACCESS_DENIED);
    ck_assert_int_eq(err_code(call(&b, doc2, "CreateObject", "[{\"qInfo\":{\"qType\":\"x\"}}]")),
                     TSR_QIX_ERR_ACCESS_DENIED);
    ck_assert_int_eq(
        err_code(call(&b, doc2, "CreateMeasure", "[{\"qMeasure\":{\"qDef\":\"Sum(Amount)\"}}]")),
        TSR_QIX_ERR_ACCESS_DENIED);
    int cube = handle_of(call(&b, doc2, "CreateSessionObject", CUBE));
    ck_assert_uint_eq(json_array_size(matrix(json_object_get(layout(&b, cube), "qHyperCube"))), 3);
    free(p);
    json_decref(script);
    sess_close(&b);
    sess_close(&a);

    /* The roles the upgrade carried reach the decision. */
    tsr_qix_opts_t qo = {.backend = be, .authenticate = tsr_engined_authenticate, .auth_ud = e};
    tsr_qix_server_t *q = NULL;
    tsr_httpd_t *h = NULL;
    ck_assert_int_eq(tsr_qix_server_create(&qo, &q, &err), TSR_OK);
    tsr_httpd_opts_t o = {.service = "engine", .bind = "127.0.0.1", .threads = 1, .max_body = 1024};
    ck_assert_int_eq(tsr_httpd_create(&o, &h, &err), TSR_OK);
    ck_assert_int_eq(tsr_qix_routes(h, q, &err), TSR_OK);
    ck_assert_int_eq(be.check_app(be.ud, "tA/dave", "sp1", &err), TSR_EFORBIDDEN);
    const char *hd[] = {"Upgrade",
                        "websocket",
                        "Connection",
                        "Upgrade",
                        "Sec-WebSocket-Version",
                        "13",
                        "Sec-WebSocket-Key",
                        "dGhlIHNhbXBsZSBub25jZQ==",
                        "X-Tsr-Tenant-Id",
                        "tA",
                        "X-Tsr-User-Id",
                        "dave",
                        "X-Tsr-Roles",
                        "TenantAdmin,User",
                        NULL};
    tsr_httpd_response_t resp = {0};
    tsr_httpd_inject(h, "GET", "/app/sp1", hd, NULL, 0, &resp);
    ck_assert_uint_eq(resp.status, 101);
    tsr_httpd_response_cleanup(&resp);
    ck_assert_int_eq(be.check_app(be.ud, "tA/dave", "sp1", &err), TSR_OK);

    /* GET /api/v1/apps/{id}/data/metadata: the same principal and decisions. */
    ck_assert_int_eq(tsr_engined_routes(h, e, &err), TSR_OK);
    const char *alice[] = {"X-Tsr-Tenant-Id", "tA", "X-Tsr-User-Id", "alice", NULL};
    tsr_httpd_inject(h, "GET", "/api/v1/apps/sp1/data/metadata", alice, NULL, 0, &resp);
    ck_assert_uint_eq(resp.status, 200);
    json_t *md = json_loads(resp.body, 0, NULL);
    json_t *tab = json_array_get(json_object_get(md, "tables"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(tab, "name")), "Sales");
    ck_assert_int_eq(json_integer_value(json_object_get(tab, "no_of_rows")), 4);
    ck_assert_uint_eq(json_array_size(json_object_get(md, "fields")), 3);
    json_decref(md);
    tsr_httpd_response_cleanup(&resp);
    const char *other[] = {"X-Tsr-Tenant-Id", "tB", "X-Tsr-User-Id", "alice", NULL};
    tsr_httpd_inject(h, "GET", "/api/v1/apps/sp1/data/metadata", other, NULL, 0, &resp);
    ck_assert_uint_eq(resp.status, 404);
    tsr_httpd_response_cleanup(&resp);
    const char *carol[] = {"X-Tsr-Tenant-Id", "tA", "X-Tsr-User-Id", "carol", NULL};
    tsr_httpd_inject(h, "GET", "/api/v1/apps/sp1/data/metadata", carol, NULL, 0, &resp);
    ck_assert_uint_eq(resp.status, 403);
    tsr_httpd_response_cleanup(&resp);
    tsr_httpd_inject(h, "GET", "/api/v1/apps/sp1/data/metadata", NULL, NULL, 0, &resp);
    ck_assert_uint_eq(resp.status, 401);
    tsr_httpd_response_cleanup(&resp);
    tsr_httpd_destroy(h);
    tsr_qix_server_destroy(q);
    tsr_engined_destroy(e);
}
END_TEST

/* Every offered method with malformed parameters answers exactly once and never crashes
 * (ASan runs this); a fuzz-like sweep over the handlers' parameter handling. */
START_TEST(test_malformed_params_answer_and_never_crash) {
    static const char *const params[] = {
        "[]",
        "[null]",
        "[1]",
        "[\"x\"]",
        "[{}]",
        "[[]]",
        "[[1,-1,99999999]]",
        "[\"/qHyperCubeDef\",[{\"qTop\":-5,\"qHeight\":99999999,\"qWidth\":99999999}]]",
        "[\"/qListObjectDef\",\"x\",true]",
        "[\"/nowhere/0/~1\",0,[0],true]",
        "[{\"qInfo\":{\"qId\":7},\"qHyperCubeDef\":{\"qDimensions\":[1,{}]}}]",
        "[[{\"qOp\":\"add\",\"qPath\":\"/a/b/c\",\"qValue\":\"{\"}]]",
        "{\"qProp\":5}"};
    static const char *const doc_m[] = {"GetAppLayout",
                                        "GetAppProperties",
                                        "SetAppProperties",
                                        "GetScript",
                                        "SetScript",
                                        "GetTablesAndKeys",
                                        "GetField",
                                        "GetFieldDescription",
                                        "ClearAll",
                                        "Back",
                                        "Forward",
                                        "LockAll",
                                        "UnlockAll",
                                        "AbortModal",
                                        "CreateSessionObject",
                                        "GetObject",
                                        "DestroySessionObject",
                                        "GetObjects",
                                        "GetAllInfos",
                                        "Evaluate",
                                        "EvaluateEx",
                                        NULL};
    static const char *const obj_m[] = {"GetLayout",
                                        "GetProperties",
                                        "GetInfo",
                                        "GetHyperCubeData",
                                        "GetListObjectData",
                                        "SelectHyperCubeValues",
                                        "SelectHyperCubeCells",
                                        "SelectListObjectValues",
                                        "SelectListObjectPossible",
                                        "SearchListObjectFor",
                                        "AcceptListObjectSearch",
                                        "BeginSelections",
                                        "EndSelections",
                                        "ResetMadeSelections",
                                        "ClearSelections",
                                        "Lock",
                                        "Unlock",
                                        "ApplyPatches",
                                        "SetProperties",
                                        NULL};
    static const char *const field_m[] = {
        "Select", "ToggleSelect", "SelectValues", "LowLevelSelect", "SelectAll",
        "Clear",  "Lock",         "Unlock",       "GetCardinal",    NULL};
    sess_t t;
    sess_open(&t, E, "tA", "alice", "app1");
    int doc = open_loaded(&t);
    int cube = handle_of(call(&t, doc, "CreateSessionObject", CUBE));
    int lb = handle_of(call(&t, doc, "CreateSessionObject", LISTBOX));
    int f = handle_of(call(&t, doc, "GetField", "[\"Country\"]"));
    for (size_t p = 0; p < sizeof params / sizeof params[0]; p++) {
        for (size_t i = 0; doc_m[i] != NULL; i++) {
            /* call() asserts exactly one response. */
            json_t *r = call(&t, doc, doc_m[i], params[p]);
            ck_assert(json_object_get(r, "result") || json_object_get(r, "error"));
        }
        for (size_t i = 0; obj_m[i] != NULL; i++) {
            call(&t, cube, obj_m[i], params[p]);
            call(&t, lb, obj_m[i], params[p]);
        }
        for (size_t i = 0; field_m[i] != NULL; i++) {
            call(&t, f, field_m[i], params[p]);
        }
    }
    sess_close(&t);
}
END_TEST

/* ---- app import and export (REST) --------------------------------------------------------- */

static tsr_engined_t *engined_transfer(tsr_engined_access_t access, uint64_t max, uint64_t ttl) {
    char apps[128], data[128], transfer[128];
    tsr_engined_opts_t o = {.access = access, .import_max_bytes = max, .export_ttl_ms = ttl};
    tsr_error_t err = {0};
    snprintf(apps, sizeof apps, "%s/apps", dir);
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(transfer, sizeof transfer, "%s/transfer", dir);
    ck_assert_int_eq(tsr_engined_appstore_files_open(apps, &o.store, &err), TSR_OK);
    o.data_root = data;
    o.transfer_root = transfer;
    tsr_engined_t *e = NULL;
    ck_assert_int_eq(tsr_engined_create(&o, &e, &err), TSR_OK);
    return e;
}

static tsr_httpd_t *transfer_server(tsr_engined_t *e) {
    tsr_httpd_opts_t o = {.service = "engine", .bind = "127.0.0.1", .threads = 1, .max_body = 1024};
    tsr_httpd_t *h = NULL;
    tsr_error_t err = {0};
    ck_assert_int_eq(tsr_httpd_create(&o, &h, &err), TSR_OK);
    ck_assert_int_eq(tsr_engined_routes(h, e, &err), TSR_OK);
    return h;
}

/* Entries of dir/sub other than . and .. */
static int entries(const char *sub) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls -A '%s/%s' | wc -l", dir, sub);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    int n = -1;
    ck_assert_int_eq(fscanf(p, "%d", &n), 1);
    pclose(p);
    return n;
}

static unsigned post_import(tsr_httpd_t *h, const char *const *hd, const char *query,
                            const void *body, size_t n, json_t **out) {
    char path[256];
    tsr_httpd_response_t resp = {0};
    snprintf(path, sizeof path, "/api/v1/apps/import%s", query);
    tsr_httpd_inject(h, "POST", path, hd, body, n, &resp);
    unsigned st = resp.status;
    if (out != NULL) {
        *out = json_loads(resp.body, 0, NULL);
    }
    tsr_httpd_response_cleanup(&resp);
    return st;
}

START_TEST(test_app_export_download_import_round_trip_and_refusals) {
    tsr_engined_t *e = engined_transfer((tsr_engined_access_t){0}, 1u << 20, 60000);
    const char *alice[] = {"X-Tsr-Tenant-Id", "tA", "X-Tsr-User-Id", "alice", NULL};
    const char *bob[] = {"X-Tsr-Tenant-Id", "tA", "X-Tsr-User-Id", "bob", NULL};
    const char *other[] = {"X-Tsr-Tenant-Id", "tB", "X-Tsr-User-Id", "alice", NULL};
    sess_t s;
    sess_open(&s, e, "tA", "alice", NULL);
    int doc = open_doc(&s, "app1");
    json_t *script = json_pack("[s]", SCRIPT);
    char *p = json_dumps(script, JSON_COMPACT);
    call(&s, doc, "SetScript", p);
    ck_assert(json_is_true(json_object_get(result(call(&s, doc, "DoReload", "[]")), "qReturn")));
    handle_of(call(&s, doc, "CreateObject", "[{\"qInfo\":{\"qId\":\"sh1\",\"qType\":\"sheet\"}}]"));
    sess_close(&s);
    tsr_httpd_t *h = transfer_server(e);

    /* Export: 201 + Location; only the exporter downloads it, streamed as an attachment. */
    tsr_httpd_response_t resp = {0};
    tsr_httpd_inject(h, "POST", "/api/v1/apps/app1/export", alice, NULL, 0, &resp);
    ck_assert_uint_eq(resp.status, 201);
    char loc[128];
    snprintf(loc, sizeof loc, "%s", json_string_value(json_object_get(resp.headers, "location")));
    ck_assert_int_eq(strncmp(loc, "/api/v1/temp-contents/", 22), 0);
    tsr_httpd_response_cleanup(&resp);
    tsr_httpd_inject(h, "GET", loc, other, NULL, 0, &resp);
    ck_assert_uint_eq(resp.status, 404);
    tsr_httpd_response_cleanup(&resp);
    tsr_httpd_inject(h, "GET", loc, bob, NULL, 0, &resp);
    ck_assert_uint_eq(resp.status, 404);
    tsr_httpd_response_cleanup(&resp);
    tsr_httpd_inject(h, "GET", "/api/v1/temp-contents/..%2f..%2fapps", alice, NULL, 0, &resp);
    ck_assert_uint_eq(resp.status, 404);
    tsr_httpd_response_cleanup(&resp);
    tsr_httpd_inject(h, "POST", "/api/v1/apps/app1/export", other, NULL, 0, &resp);
    ck_assert_uint_eq(resp.status, 404);
    tsr_httpd_response_cleanup(&resp);
    tsr_httpd_inject(h, "GET", loc, alice, NULL, 0, &resp);
    ck_assert_uint_eq(resp.status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(resp.headers, "content-disposition")),
                     "attachment; filename=\"Sales app.tsra\"");
    size_t n = resp.body_len;
    ck_assert_uint_gt(n, 64);
    uint8_t *file = malloc(n);
    memcpy(file, resp.body, n);
    tsr_httpd_response_cleanup(&resp);

    /* Bad files answer 400 and create nothing: corrupt, truncated, empty, not an app file. */
    int apps_before = entries("apps");
    uint8_t *bad = malloc(n);
    memcpy(bad, file, n);
    bad[n / 2] ^= 0x5a;
    json_t *body = NULL;
    ck_assert_uint_eq(post_import(h, alice, "", bad, n, &body), 400);
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(body, "errors"), 0), "status")),
                     "400");
    json_decref(body);
    ck_assert_uint_eq(post_import(h, alice, "", file, n - 7, NULL), 400);
    ck_assert_uint_eq(post_import(h, alice, "", file, 0, NULL), 400);
    ck_assert_uint_eq(post_import(h, alice, "", "hello, world", 12, NULL), 400);
    ck_assert_uint_eq(post_import(h, alice, "?mode=AUTOREPLACE", file, n, NULL), 400);
    ck_assert_uint_eq(post_import(h, NULL, "", file, n, NULL), 401);
    ck_assert_int_eq(entries("apps"), apps_before);
    free(bad);

    /* Import: a new app with the data, script and objects of the exported one. */
    ck_assert_uint_eq(post_import(h, alice, "?name=Sales%20copy", file, n, &body), 200);
    json_t *attrs = json_object_get(body, "attributes");
    ck_assert_str_eq(json_string_value(json_object_get(attrs, "name")), "Sales copy");
    char id[64];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(attrs, "id")));
    ck_assert_str_ne(id, "app1");
    json_decref(body);
    ck_assert_int_eq(entries("apps"), apps_before + 1);
    ck_assert_int_eq(entries("transfer/uploads"), 0); /* request bodies never stay */
    char path[256];
    snprintf(path, sizeof path, "/api/v1/apps/%s/data/metadata", id);
    tsr_httpd_inject(h, "GET", path, alice, NULL, 0, &resp);
    ck_assert_uint_eq(resp.status, 200);
    json_t *md = json_loads(resp.body, 0, NULL);
    json_t *tab = json_array_get(json_object_get(md, "tables"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(tab, "name")), "Sales");
    ck_assert_int_eq(json_integer_value(json_object_get(tab, "no_of_rows")), 4);
    json_decref(md);
    tsr_httpd_response_cleanup(&resp);
    tsr_httpd_inject(h, "GET", path, other, NULL, 0, &resp);
    ck_assert_uint_eq(resp.status, 404);
    tsr_httpd_response_cleanup(&resp);
    sess_open(&s, e, "tA", "alice", NULL);
    doc = open_doc(&s, id);
    ck_assert_str_eq(
        json_string_value(json_object_get(result(call(&s, doc, "GetScript", "[]")), "qScript")),
        SCRIPT);
    handle_of(call(&s, doc, "GetObject", "[\"sh1\"]"));
    int cube = handle_of(call(&s, doc, "CreateSessionObject", CUBE));
    ck_assert_uint_eq(json_array_size(matrix(json_object_get(layout(&s, cube), "qHyperCube"))), 3);
    sess_close(&s);
    /* Without a name the file's title names the app. */
    ck_assert_uint_eq(post_import(h, other, "", file, n, &body), 200);
    ck_assert_str_eq(
        json_string_value(json_object_get(json_object_get(body, "attributes"), "name")),
        "Sales app");
    json_decref(body);
    tsr_httpd_destroy(h);
    tsr_engined_destroy(e);

    /* The import cap (413, nothing created) and the download's lifetime. */
    e = engined_transfer((tsr_engined_access_t){0}, 64, 1);
    h = transfer_server(e);
    apps_before = entries("apps");
    ck_assert_uint_eq(post_import(h, alice, "", file, n, NULL), 413);
    ck_assert_int_eq(entries("apps"), apps_before);
    tsr_httpd_inject(h, "POST", "/api/v1/apps/app1/export", alice, NULL, 0, &resp);
    ck_assert_uint_eq(resp.status, 201);
    snprintf(loc, sizeof loc, "%s", json_string_value(json_object_get(resp.headers, "location")));
    tsr_httpd_response_cleanup(&resp);
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
    tsr_httpd_inject(h, "GET", loc, alice, NULL, 0, &resp);
    ck_assert_uint_eq(resp.status, 404);
    tsr_httpd_response_cleanup(&resp);
    tsr_httpd_destroy(h);
    tsr_engined_destroy(e);
    free(file);
    free(p);
    json_decref(script);
}
END_TEST

/* The stored document of app id (returned-owned). */
static json_t *stored_doc(const char *id) {
    char path[256];
    snprintf(path, sizeof path, "%s/apps/%s/app.json", dir, id);
    json_t *d = json_load_file(path, 0, NULL);
    ck_assert_msg(d != NULL, "no stored document %s", path);
    return d;
}

/* Rows of the first table of app id's data model over REST (-1: not 200). */
static json_int_t metadata_rows(tsr_httpd_t *h, const char *const *hd, const char *id) {
    char path[256];
    tsr_httpd_response_t resp = {0};
    snprintf(path, sizeof path, "/api/v1/apps/%s/data/metadata", id);
    tsr_httpd_inject(h, "GET", path, hd, NULL, 0, &resp);
    json_int_t rows = -1;
    if (resp.status == 200) {
        json_t *md = json_loads(resp.body, 0, NULL);
        rows = json_integer_value(
            json_object_get(json_array_get(json_object_get(md, "tables"), 0), "no_of_rows"));
        json_decref(md);
    }
    tsr_httpd_response_cleanup(&resp);
    return rows;
}

static unsigned post_copy(tsr_httpd_t *h, const char *const *hd, const char *src, const char *body,
                          json_t **out) {
    char path[256];
    tsr_httpd_response_t resp = {0};
    snprintf(path, sizeof path, "/internal/v1/apps/%s/copy", src);
    tsr_httpd_inject(h, "POST", path, hd, body, body != NULL ? strlen(body) : 0, &resp);
    unsigned st = resp.status;
    if (out != NULL) {
        *out = json_loads(resp.body, 0, NULL);
    }
    tsr_httpd_response_cleanup(&resp);
    return st;
}

START_TEST(test_app_copy_and_publish_carry_the_content) {
    tsr_engined_t *e = engined_transfer((tsr_engined_access_t){0}, 1u << 20, 60000);
    const char *alice[] = {"X-Tsr-Tenant-Id", "tA", "X-Tsr-User-Id", "alice", NULL};
    tsr_error_t err = {0};
    sess_t s, b;
    sess_open(&s, e, "tA", "alice", NULL);
    int doc = open_doc(&s, "app1");
    json_t *script = json_pack("[s]", SCRIPT);
    char *p = json_dumps(script, JSON_COMPACT);
    call(&s, doc, "SetScript", p);
    ck_assert(json_is_true(json_object_get(result(call(&s, doc, "DoReload", "[]")), "qReturn")));
    handle_of(call(&s, doc, "CreateObject", "[{\"qInfo\":{\"qId\":\"sh1\",\"qType\":\"sheet\"}}]"));
    handle_of(call(&s, doc, "CreateBookmark", "[{\"qInfo\":{\"qId\":\"bmA\"}}]"));
    ck_assert_ptr_nonnull(json_object_get(
        result(call(&s, doc, "CreateVariableEx", "[{\"qName\":\"vApp\",\"qDefinition\":\"7\"}]")),
        "qInfo"));
    sess_open(&b, e, "tA", "bob", NULL);
    handle_of(call(&b, open_doc(&b, "app1"), "CreateBookmark", "[{\"qInfo\":{\"qId\":\"bmB\"}}]"));
    sess_close(&b);
    sess_close(&s);
    tsr_httpd_t *h = transfer_server(e);
    int apps_before = entries("apps");

    /* A copy: same script, objects, variables, data; the copier's own bookmarks only. */
    bool has_data = false;
    ck_assert_int_eq(tsr_engined_app_copy(e, "tA", "alice", "app1", "copy1", "Sales copy", false,
                                          &has_data, &err),
                     TSR_OK);
    ck_assert(has_data);
    json_t *d = stored_doc("copy1");
    ck_assert_str_eq(json_string_value(json_object_get(d, "title")), "Sales copy");
    ck_assert_str_eq(json_string_value(json_object_get(d, "tenantId")), "tA");
    ck_assert_str_eq(json_string_value(json_object_get(d, "sourceAppId")), "app1");
    ck_assert(json_is_true(json_object_get(d, "hasData")));
    ck_assert_ptr_nonnull(json_object_get(json_object_get(d, "bookmarks"), "bmA"));
    ck_assert_ptr_null(json_object_get(json_object_get(d, "bookmarks"), "bmB"));
    json_decref(d);
    ck_assert_int_eq(metadata_rows(h, alice, "copy1"), 4);
    sess_open(&s, e, "tA", "alice", NULL);
    doc = open_doc(&s, "copy1");
    ck_assert_str_eq(
        json_string_value(json_object_get(result(call(&s, doc, "GetScript", "[]")), "qScript")),
        SCRIPT);
    handle_of(call(&s, doc, "GetObject", "[\"sh1\"]"));
    handle_of(call(&s, doc, "GetVariableByName", "[\"vApp\"]"));
    int cube = handle_of(call(&s, doc, "CreateSessionObject", CUBE));
    ck_assert_uint_eq(json_array_size(matrix(json_object_get(layout(&s, cube), "qHyperCube"))), 3);
    sess_close(&s);

    /* A publish keeps public bookmarks only (none here: both are private). */
    ck_assert_int_eq(
        tsr_engined_app_copy(e, "tA", "alice", "app1", "pub1", NULL, true, &has_data, &err),
        TSR_OK);
    d = stored_doc("pub1");
    ck_assert_str_eq(json_string_value(json_object_get(d, "title")), "Sales app");
    ck_assert_uint_eq(json_object_size(json_object_get(d, "bookmarks")), 0);
    json_decref(d);
    ck_assert_int_eq(metadata_rows(h, alice, "pub1"), 4);

    /* The copy is its own: a later reload of the source leaves it as it was. */
    sess_open(&s, e, "tA", "alice", NULL);
    doc = open_doc(&s, "app1");
    call(&s, doc, "SetScript", "[\"T: LOAD * INLINE [\\nX\\n1\\n];\"]");
    ck_assert(json_is_true(json_object_get(result(call(&s, doc, "DoReload", "[]")), "qReturn")));
    sess_close(&s);
    ck_assert_int_eq(metadata_rows(h, alice, "app1"), 1);
    ck_assert_int_eq(metadata_rows(h, alice, "copy1"), 4);

    /* Refusals leave nothing: missing source, another tenant's, a taken or bad target. */
    apps_before = entries("apps");
    ck_assert_int_eq(tsr_engined_app_copy(e, "tA", "alice", "nope", "c2", NULL, false, NULL, &err),
                     TSR_ENOTFOUND);
    ck_assert_int_eq(tsr_engined_app_copy(e, "tB", "alice", "app1", "c2", NULL, false, NULL, &err),
                     TSR_ENOTFOUND);
    ck_assert_int_eq(
        tsr_engined_app_copy(e, "tA", "alice", "copy1", "app1", NULL, false, NULL, &err),
        TSR_ECONFLICT);
    ck_assert_int_eq(
        tsr_engined_app_copy(e, "tA", "alice", "app1", "../x", NULL, false, NULL, &err),
        TSR_EINVAL);
    ck_assert_int_eq(entries("apps"), apps_before);
    ck_assert_int_eq(metadata_rows(h, alice, "app1"), 1); /* the taken target is untouched */

    /* A source never reloaded: its copy has no data either. */
    ck_assert_int_eq(tsr_engined_app_create(e, "tA", "bare", "Bare", &err), TSR_OK);
    ck_assert_int_eq(
        tsr_engined_app_copy(e, "tA", "alice", "bare", "bare2", NULL, false, &has_data, &err),
        TSR_OK);
    ck_assert(!has_data);

    /* Over REST (what spaces calls, with a service token: auth type "service"). Any other
     * caller, even a valid user of the source's tenant, is refused and nothing is created. */
    const char *svc[] = {"X-Tsr-Tenant-Id", "tA", "X-Tsr-User-Id", "alice", "X-Tsr-Auth-Type",
                         "service",         NULL};
    const char *svc_other[] = {"X-Tsr-Tenant-Id", "tB", "X-Tsr-User-Id", "alice", "X-Tsr-Auth-Type",
                               "service",         NULL};
    static const char *const user_types[] = {NULL, "jwt", "session", "apikey", "Service", ""};
    apps_before = entries("apps");
    for (size_t i = 0; i < sizeof user_types / sizeof user_types[0]; i++) {
        const char *hd[] = {"X-Tsr-Tenant-Id",
                            "tA",
                            "X-Tsr-User-Id",
                            "alice",
                            user_types[i] != NULL ? "X-Tsr-Auth-Type" : NULL,
                            user_types[i],
                            NULL};
        json_t *refused = NULL;
        ck_assert_uint_eq(post_copy(h, hd, "app1", "{\"targetId\":\"copy3\"}", &refused), 403);
        ck_assert_str_eq(json_string_value(json_object_get(
                             json_array_get(json_object_get(refused, "errors"), 0), "status")),
                         "403");
        json_decref(refused);
    }
    ck_assert_int_eq(entries("apps"), apps_before);
    ck_assert_int_eq(metadata_rows(h, alice, "copy3"), -1);
    json_t *out = NULL;
    ck_assert_uint_eq(post_copy(h, svc, "app1", "{\"targetId\":\"copy3\",\"name\":\"C3\"}", &out),
                      201);
    ck_assert_str_eq(json_string_value(json_object_get(out, "id")), "copy3");
    ck_assert(json_is_true(json_object_get(out, "hasData")));
    json_decref(out);
    ck_assert_int_eq(metadata_rows(h, alice, "copy3"), 1);
    apps_before = entries("apps");
    ck_assert_uint_eq(post_copy(h, svc_other, "app1", "{\"targetId\":\"copy4\"}", NULL), 404);
    ck_assert_uint_eq(post_copy(h, svc, "app1", "{\"targetId\":\"copy3\"}", NULL), 409);
    ck_assert_uint_eq(post_copy(h, svc, "app1", "{\"targetId\":5}", NULL), 400);
    ck_assert_uint_eq(post_copy(h, svc, "app1", "{\"targetId\":\"c5\",\"publish\":1}", NULL), 400);
    ck_assert_uint_eq(post_copy(h, svc, "app1", "not json", NULL), 400);
    ck_assert_uint_eq(post_copy(h, svc, "app1", NULL, NULL), 400);
    ck_assert_uint_eq(post_copy(h, NULL, "app1", "{\"targetId\":\"copy4\"}", NULL), 401);
    ck_assert_int_eq(entries("apps"), apps_before);
    tsr_httpd_destroy(h);
    tsr_engined_destroy(e);
    free(p);
    json_decref(script);
}
END_TEST

START_TEST(test_app_export_needs_the_export_permission) {
    tsr_engined_t *e =
        engined_transfer((tsr_engined_access_t){.decide = fake_decide}, 1u << 20, 60000);
    tsr_httpd_t *h = transfer_server(e);
    static const struct {
        const char *user;
        unsigned status;
    } cases[] = {{"alice", 201}, {"bob", 403}, {"carol", 404}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *hd[] = {"X-Tsr-Tenant-Id", "tA", "X-Tsr-User-Id", cases[i].user, NULL};
        tsr_httpd_response_t resp = {0};
        tsr_httpd_inject(h, "POST", "/api/v1/apps/sp1/export", hd, NULL, 0, &resp);
        ck_assert_msg(resp.status == cases[i].status, "%s: %u", cases[i].user, resp.status);
        tsr_httpd_response_cleanup(&resp);
    }
    tsr_httpd_destroy(h);
    tsr_engined_destroy(e);
}
END_TEST

/* ---- bookmarks, variables, access cache --------------------------------------------------- */

static const char *field_state(sess_t *t, int lb, const char *text) {
    return lo_state(layout(t, lb), text);
}

START_TEST(test_bookmark_create_apply_restores_selection_and_persists) {
    sess_t t;
    sess_open(&t, E, "tA", "alice", "app1");
    int doc = open_loaded(&t);
    int lb = handle_of(call(&t, doc, "CreateSessionObject", LISTBOX));
    int f = handle_of(call(&t, doc, "GetField", "[\"Country\"]"));
    call(&t, f, "LowLevelSelect", "[[1],false]"); /* Norway */
    ck_assert_str_eq(field_state(&t, lb, "Norway"), "S");
    json_t *r = call(&t, doc, "CreateBookmark",
                     "[{\"qInfo\":{\"qId\":\"bm1\",\"qType\":\"bookmark\"},"
                     "\"qMetaDef\":{\"title\":\"Norway only\"}}]");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(result(r), "qInfo"), "qId")),
                     "bm1");
    int bh = handle_of(r);
    ck_assert_str_eq(
        json_string_value(json_object_get(json_object_get(result(r), "qReturn"), "qType")),
        "GenericBookmark");
    /* The stored state names the field and the value text. */
    json_t *bl = layout(&t, bh);
    json_t *item = json_array_get(
        json_object_get(
            json_array_get(json_object_get(json_object_get(bl, "qBookmark"), "qStateData"), 0),
            "qFieldItems"),
        0);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(item, "qDef"), "qName")),
                     "Country");
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(item, "qValues"), 0), "qText")),
                     "Norway");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(bl, "qMeta"), "title")),
                     "Norway only");
    /* Change the selection, then apply: Norway is back, Denmark is not selected. */
    call(&t, doc, "ClearAll", "[]");
    call(&t, f, "LowLevelSelect", "[[2],false]"); /* Denmark */
    ck_assert_str_eq(field_state(&t, lb, "Denmark"), "S");
    r = call(&t, doc, "ApplyBookmark", "[\"bm1\"]");
    ck_assert(json_is_true(json_object_get(result(r), "qSuccess")));
    ck_assert(has_change(r, lb));
    ck_assert_str_eq(field_state(&t, lb, "Norway"), "S");
    ck_assert_str_eq(field_state(&t, lb, "Denmark"), "A");
    /* The list, with qData from JSON pointers, and a bookmark list object. */
    json_t *list = json_object_get(
        result(call(&t, doc, "GetBookmarks",
                    "[{\"qTypes\":[\"bookmark\"],\"qData\":{\"t\":\"/qMetaDef/title\"}}]")),
        "qList");
    ck_assert_uint_eq(json_array_size(list), 1);
    ck_assert_str_eq(
        json_string_value(json_object_get(json_object_get(json_array_get(list, 0), "qData"), "t")),
        "Norway only");
    int bl_obj = handle_of(call(&t, doc, "CreateSessionObject",
                                "[{\"qInfo\":{\"qType\":\"BookmarkList\"},"
                                "\"qBookmarkListDef\":{\"qType\":\"bookmark\"}}]"));
    ck_assert_uint_eq(json_array_size(json_object_get(
                          json_object_get(layout(&t, bl_obj), "qBookmarkList"), "qItems")),
                      1);
    /* Errors: an unknown id, a missing id, bad properties, a taken id. */
    ck_assert_int_eq(err_code(call(&t, doc, "ApplyBookmark", "[\"nope\"]")), TSR_QIX_ERR_NOT_FOUND);
    ck_assert_int_eq(err_code(call(&t, doc, "GetBookmark", "[\"nope\"]")), TSR_QIX_ERR_NOT_FOUND);
    ck_assert_int_eq(err_code(call(&t, doc, "ApplyBookmark", "[]")), TSR_QIX_ERR_INVALID_PARAMS);
    ck_assert_int_eq(err_code(call(&t, doc, "CreateBookmark", "[\"x\"]")),
                     TSR_QIX_ERR_INVALID_PARAMS);
    ck_assert_int_eq(err_code(call(&t, doc, "CreateBookmark", "[{\"qInfo\":5}]")),
                     TSR_QIX_ERR_INVALID_PARAMETERS);
    ck_assert_int_eq(err_code(call(&t, doc, "CreateBookmark", "[{\"qInfo\":{\"qId\":\"bm1\"}}]")),
                     TSR_QIX_ERR_ALREADY_EXISTS);
    ck_assert_int_eq(err_code(call(&t, doc, "GetBookmarks", "[{\"qTypes\":5}]")),
                     TSR_QIX_ERR_INVALID_PARAMS);
    /* Another user of the tenant sees none of alice's bookmarks. */
    sess_t b;
    sess_open(&b, E, "tA", "bob", "app1");
    int doc_b = open_doc(&b, "app1");
    ck_assert_uint_eq(
        json_array_size(json_object_get(result(call(&b, doc_b, "GetBookmarks", "[{}]")), "qList")),
        0);
    ck_assert_int_eq(err_code(call(&b, doc_b, "ApplyBookmark", "[\"bm1\"]")),
                     TSR_QIX_ERR_NOT_FOUND);
    ck_assert(!json_is_true(
        json_object_get(result(call(&b, doc_b, "DestroyBookmark", "[\"bm1\"]")), "qSuccess")));
    sess_close(&b);
    sess_close(&t);

    /* After a restart and a reload the bookmark still applies (by value, not index). */
    tsr_engined_destroy(E);
    E = engined_open(false);
    sess_open(&t, E, "tA", "alice", "app1");
    doc = open_loaded(&t);
    lb = handle_of(call(&t, doc, "CreateSessionObject", LISTBOX));
    ck_assert_str_eq(field_state(&t, lb, "Norway"), "O");
    ck_assert(json_is_true(
        json_object_get(result(call(&t, doc, "ApplyBookmark", "[\"bm1\"]")), "qSuccess")));
    ck_assert_str_eq(field_state(&t, lb, "Norway"), "S");
    bh = handle_of(call(&t, doc, "GetBookmark", "[\"bm1\"]"));
    call(&t, doc, "ClearAll", "[]");
    ck_assert(json_is_true(json_object_get(result(call(&t, bh, "Apply", "[]")), "qSuccess")));
    ck_assert_str_eq(field_state(&t, lb, "Norway"), "S");
    r = call(&t, doc, "DestroyBookmark", "[\"bm1\"]");
    ck_assert(json_is_true(json_object_get(result(r), "qSuccess")));
    ck_assert_int_eq(err_code(call(&t, doc, "GetBookmark", "[\"bm1\"]")), TSR_QIX_ERR_NOT_FOUND);
    sess_close(&t);
}
END_TEST

/* A bar chart whose only measure is the master measure m-total. */
static const char *LIB_CUBE =
    "[{\"qInfo\":{\"qType\":\"barchart\"},\"qHyperCubeDef\":{\"qDimensions\":[{\"qDef\":{"
    "\"qFieldDefs\":[\"Country\"],\"qSortCriterias\":[{\"qSortByLoadOrder\":1}]}}],"
    "\"qMeasures\":[{\"qLibraryId\":\"m-total\",\"qDef\":{\"cId\":\"c1\"}}],"
    "\"qInitialDataFetch\":[{\"qWidth\":2,\"qHeight\":10}]}}]";

START_TEST(test_master_measure_create_list_use_in_chart_and_persist) {
    sess_t t;
    sess_open(&t, E, "tA", "alice", "app1");
    int doc = open_loaded(&t);
    json_t *r = call(&t, doc, "CreateMeasure",
                     "[{\"qInfo\":{\"qId\":\"m-total\",\"qType\":\"measure\"},"
                     "\"qMeasure\":{\"qLabel\":\"Total sales\",\"qDef\":\"Sum(Amount)\"},"
                     "\"qMetaDef\":{\"title\":\"Total sales\"}}]");
    ck_assert_str_eq(
        json_string_value(json_object_get(json_object_get(result(r), "qReturn"), "qType")),
        "GenericMeasure");
    int mh = handle_of(r);
    json_t *ml = layout(&t, mh);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(ml, "qMeasure"), "qDef")),
                     "Sum(Amount)");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(ml, "qMeta"), "title")),
                     "Total sales");
    /* A chart referencing it computes its expression and shows its label. */
    int cube = handle_of(call(&t, doc, "CreateSessionObject", LIB_CUBE));
    json_t *hc = json_object_get(layout(&t, cube), "qHyperCube");
    json_t *m = matrix(hc);
    ck_assert_uint_eq(json_array_size(m), 3);
    ck_assert_str_eq(cell_text(m, 0, 0), "Sweden");
    ck_assert_str_eq(cell_text(m, 0, 1), "17");
    ck_assert_str_eq(cell_text(m, 1, 1), "20");
    json_t *mi = json_array_get(json_object_get(hc, "qMeasureInfo"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(mi, "qFallbackTitle")), "Total sales");
    ck_assert_str_eq(json_string_value(json_object_get(mi, "qLibraryId")), "m-total");
    /* Editing the master measure changes the chart. */
    r = call(&t, mh, "SetProperties",
             "[{\"qMeasure\":{\"qLabel\":\"Sales x2\",\"qDef\":\"Sum(Amount)*2\"}}]");
    ck_assert_ptr_nonnull(json_object_get(r, "result"));
    ck_assert(has_change(r, cube));
    m = matrix(json_object_get(layout(&t, cube), "qHyperCube"));
    ck_assert_str_eq(cell_text(m, 0, 1), "34");
    /* The list (GetMeasureWithLabel, qMeasureListDef with qData pointers). */
    ck_assert_int_gt(handle_of(call(&t, doc, "GetMeasureWithLabel", "[\"Sales x2\"]")), 0);
    int lst =
        handle_of(call(&t, doc, "CreateSessionObject",
                       "[{\"qInfo\":{\"qType\":\"MeasureList\"},\"qMeasureListDef\":{"
                       "\"qType\":\"measure\",\"qData\":{\"label\":\"/qMeasure/qLabel\"}}}]"));
    json_t *items = json_object_get(json_object_get(layout(&t, lst), "qMeasureList"), "qItems");
    ck_assert_uint_eq(json_array_size(items), 1);
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_array_get(items, 0), "qData"), "label")),
                     "Sales x2");
    /* Errors: unknown id, bad properties, a taken id; nothing stored by them. */
    ck_assert_int_eq(err_code(call(&t, doc, "GetMeasure", "[\"nope\"]")), TSR_QIX_ERR_NOT_FOUND);
    ck_assert_int_eq(err_code(call(&t, doc, "GetMeasure", "[]")), TSR_QIX_ERR_INVALID_PARAMS);
    ck_assert_int_eq(err_code(call(&t, doc, "CreateMeasure", "[{\"qMeasure\":5}]")),
                     TSR_QIX_ERR_INVALID_PARAMETERS);
    ck_assert_int_eq(err_code(call(&t, doc, "CreateMeasure", "[{\"qMeasure\":{\"qDef\":7}}]")),
                     TSR_QIX_ERR_INVALID_PARAMETERS);
    ck_assert_int_eq(
        err_code(call(&t, doc, "CreateMeasure",
                      "[{\"qInfo\":{\"qId\":\"m-total\"},\"qMeasure\":{\"qDef\":\"1\"}}]")),
        TSR_QIX_ERR_ALREADY_EXISTS);
    ck_assert_int_eq(err_code(call(&t, mh, "SetProperties", "[{\"qMeasure\":[]}]")),
                     TSR_QIX_ERR_INVALID_PARAMETERS);
    ck_assert_uint_eq(json_array_size(json_object_get(
                          json_object_get(layout(&t, lst), "qMeasureList"), "qItems")),
                      1);
    sess_close(&t);

    /* Stored in the app: after a restart, the chart still uses it; then it is destroyed. */
    tsr_engined_destroy(E);
    E = engined_open(false);
    sess_open(&t, E, "tA", "alice", "app1");
    doc = open_doc(&t, "app1");
    cube = handle_of(call(&t, doc, "CreateSessionObject", LIB_CUBE));
    m = matrix(json_object_get(layout(&t, cube), "qHyperCube"));
    ck_assert_str_eq(cell_text(m, 1, 1), "40");
    r = call(&t, doc, "DestroyMeasure", "[\"m-total\"]");
    ck_assert(json_is_true(json_object_get(result(r), "qSuccess")));
    ck_assert_int_eq(err_code(call(&t, doc, "GetMeasure", "[\"m-total\"]")), TSR_QIX_ERR_NOT_FOUND);
    ck_assert(!json_is_true(
        json_object_get(result(call(&t, doc, "DestroyMeasure", "[\"m-total\"]")), "qSuccess")));
    sess_close(&t);
}
END_TEST

static json_t *var_layout(sess_t *t, int doc, const char *name) {
    char p[128];
    snprintf(p, sizeof p, "[\"%s\"]", name);
    int h = handle_of(call(t, doc, "GetVariableByName", p));
    return layout(t, h);
}

START_TEST(test_variables_script_session_app_and_dollar_expansion) {
    sess_t t;
    sess_open(&t, E, "tA", "alice", "app1");
    int doc = open_doc(&t, "app1");
    char *script = NULL;
    size_t n = strlen(SCRIPT) + 128;
    script = malloc(n);
    snprintf(script, n, "SET vMeasure = Sum(Amount);\nLET vTwo = 1+1;\n%s", SCRIPT);
    json_t *sj = json_pack("[s]", script);
    char *p = json_dumps(sj, JSON_COMPACT);
    call(&t, doc, "SetScript", p);
    free(p);
    json_decref(sj);
    free(script);
    ck_assert(json_is_true(json_object_get(result(call(&t, doc, "DoReload", "[]")), "qReturn")));

    /* Script variables. */
    json_t *l = var_layout(&t, doc, "vMeasure");
    ck_assert_str_eq(json_string_value(json_object_get(l, "qText")), "Sum(Amount)");
    ck_assert(json_is_true(json_object_get(l, "qIsScriptCreated")));
    l = var_layout(&t, doc, "vTwo");
    ck_assert_int_eq((int)json_number_value(json_object_get(l, "qNum")), 2);
    /* $(v) in Evaluate and in a hypercube measure. */
    ck_assert_str_eq(
        json_string_value(json_object_get(
            result(call(&t, doc, "Evaluate", "[\"=$(vMeasure)*$(vTwo)\"]")), "qReturn")),
        "84");
    int cube = handle_of(call(&t, doc, "CreateSessionObject",
                              "[{\"qInfo\":{\"qType\":\"t\"},\"qHyperCubeDef\":{\"qDimensions\":[{"
                              "\"qDef\":{\"qFieldDefs\":[\"Country\"]}}],\"qMeasures\":[{\"qDef\":{"
                              "\"qDef\":\"=$(vMeasure)\"}}],\"qInitialDataFetch\":[{\"qWidth\":2,"
                              "\"qHeight\":10}]}}]"));
    json_t *hc = json_object_get(layout(&t, cube), "qHyperCube");
    ck_assert_ptr_null(json_object_get(hc, "qError"));
    ck_assert_double_eq(json_number_value(json_object_get(
                            json_array_get(json_object_get(hc, "qGrandTotalRow"), 0), "qNum")),
                        42);

    /* A session variable defined by an expression follows the selection. */
    json_t *r = call(&t, doc, "CreateSessionVariable",
                     "[{\"qName\":\"vS\",\"qDefinition\":\"=Sum(Amount)*2\"}]");
    int vs = handle_of(r);
    ck_assert_str_eq(
        json_string_value(json_object_get(json_object_get(result(r), "qReturn"), "qType")),
        "GenericVariable");
    ck_assert_double_eq(json_number_value(json_object_get(layout(&t, vs), "qNum")), 84);
    int f = handle_of(call(&t, doc, "GetField", "[\"Country\"]"));
    r = call(&t, f, "LowLevelSelect", "[[1],false]"); /* Norway: 20 */
    ck_assert(has_change(r, vs));
    ck_assert_double_eq(json_number_value(json_object_get(layout(&t, vs), "qNum")), 40);
    ck_assert_str_eq(json_string_value(json_object_get(
                         result(call(&t, doc, "Evaluate", "[\"$(vS)+1\"]")), "qReturn")),
                     "41");
    ck_assert_str_eq(json_string_value(json_object_get(
                         result(call(&t, doc, "Evaluate", "[\"=$(=Sum(Amount))*2\"]")), "qReturn")),
                     "40");
    call(&t, vs, "SetStringValue", "[\"5\"]");
    ck_assert_double_eq(json_number_value(json_object_get(layout(&t, vs), "qNum")), 5);
    call(&t, vs, "SetNumValue", "[7.5]");
    ck_assert_str_eq(json_string_value(json_object_get(layout(&t, vs), "qText")), "7.5");
    json_t *props = json_object_get(result(call(&t, vs, "GetProperties", "[]")), "qProp");
    const char *vid = json_string_value(json_object_get(json_object_get(props, "qInfo"), "qId"));
    char idp[128];
    snprintf(idp, sizeof idp, "[\"%s\"]", vid);
    ck_assert_int_eq(handle_of(call(&t, doc, "GetVariableById", idp)), vs);
    /* Errors. */
    ck_assert_int_eq(err_code(call(&t, doc, "CreateSessionVariable", "[{}]")),
                     TSR_QIX_ERR_INVALID_PARAMETERS);
    ck_assert_int_eq(err_code(call(&t, doc, "CreateSessionVariable", "[{\"qName\":\"vS\"}]")),
                     TSR_QIX_ERR_ALREADY_EXISTS);
    ck_assert_int_eq(
        err_code(call(&t, doc, "CreateSessionVariable", "[{\"qName\":\"x\",\"qDefinition\":3}]")),
        TSR_QIX_ERR_INVALID_PARAMETERS);
    ck_assert_int_eq(err_code(call(&t, doc, "GetVariableByName", "[]")),
                     TSR_QIX_ERR_INVALID_PARAMS);
    ck_assert_int_eq(err_code(call(&t, doc, "GetVariableByName", "[\"nope\"]")),
                     TSR_QIX_ERR_NOT_FOUND);
    ck_assert_int_eq(err_code(call(&t, doc, "GetVariableById", "[\"nope\"]")),
                     TSR_QIX_ERR_NOT_FOUND);
    ck_assert_int_eq(err_code(call(&t, vs, "SetNumValue", "[\"x\"]")), TSR_QIX_ERR_INVALID_PARAMS);
    r = call(&t, doc, "DestroySessionVariableByName", "[\"vS\"]");
    ck_assert(json_is_true(json_object_get(result(r), "qSuccess")));
    ck_assert_int_eq(err_code(call(&t, doc, "GetVariableByName", "[\"vS\"]")),
                     TSR_QIX_ERR_NOT_FOUND);
    ck_assert(!json_is_true(json_object_get(
        result(call(&t, doc, "DestroySessionVariableById", "[\"nope\"]")), "qSuccess")));

    /* A variable expanding into itself many times is bounded (work and text). */
    {
        char def[4096] = "";
        for (int i = 0; i < 200; i++) {
            strncat(def, "$(vBomb)", sizeof def - strlen(def) - 1);
        }
        json_t *bp = json_pack("[{s:s,s:s}]", "qName", "vBomb", "qDefinition", def);
        char *bs = json_dumps(bp, JSON_COMPACT);
        handle_of(call(&t, doc, "CreateSessionVariable", bs));
        free(bs);
        json_decref(bp);
        ck_assert_ptr_nonnull(
            json_object_get(call(&t, doc, "Evaluate", "[\"$(vBomb)\"]"), "result"));
    }
    /* An app variable, and a changed script variable, persist. */
    r = call(&t, doc, "CreateVariableEx", "[{\"qName\":\"vApp\",\"qDefinition\":\"Norway\"}]");
    ck_assert_ptr_nonnull(json_object_get(result(r), "qInfo"));
    ck_assert_int_eq(err_code(call(&t, doc, "CreateVariableEx", "[{\"qName\":\"vTwo\"}]")),
                     TSR_QIX_ERR_ALREADY_EXISTS);
    int v2 = handle_of(call(&t, doc, "GetVariableByName", "[\"vTwo\"]"));
    call(&t, v2, "SetStringValue", "[\"3\"]");
    int vl = handle_of(call(&t, doc, "CreateSessionObject",
                            "[{\"qInfo\":{\"qType\":\"VariableList\"},\"qVariableListDef\":{"
                            "\"qType\":\"variable\"}}]"));
    json_t *items = json_object_get(json_object_get(layout(&t, vl), "qVariableList"), "qItems");
    ck_assert_uint_ge(json_array_size(items), 3);
    sess_close(&t);
    tsr_engined_destroy(E);
    E = engined_open(false);
    sess_open(&t, E, "tA", "alice", "app1");
    doc = open_doc(&t, "app1");
    ck_assert_str_eq(json_string_value(json_object_get(var_layout(&t, doc, "vApp"), "qText")),
                     "Norway");
    ck_assert_str_eq(json_string_value(json_object_get(var_layout(&t, doc, "vTwo"), "qText")), "3");
    /* The script variable came back from the model file, not a reload. */
    ck_assert_str_eq(json_string_value(json_object_get(var_layout(&t, doc, "vMeasure"), "qText")),
                     "Sum(Amount)");
    r = call(&t, doc, "DestroyVariableByName", "[\"vApp\"]");
    ck_assert(json_is_true(json_object_get(result(r), "qSuccess")));
    ck_assert_int_eq(err_code(call(&t, doc, "GetVariableByName", "[\"vApp\"]")),
                     TSR_QIX_ERR_NOT_FOUND);
    /* Malformed parameters on the new handle types answer once and never crash. */
    int bm = handle_of(call(&t, doc, "CreateBookmark", "[{}]"));
    int vh = handle_of(call(&t, doc, "GetVariableByName", "[\"vTwo\"]"));
    static const char *const bad[] = {"[]",   "[null]", "[1]",          "[\"x\"]",
                                      "[{}]", "[[]]",   "{\"qProp\":5}"};
    static const char *const vm[] = {"GetLayout",      "GetProperties", "SetProperties",
                                     "SetStringValue", "SetNumValue",   "SetDualValue",
                                     "GetInfo",        "GetRawContent", NULL};
    static const char *const bmm[] = {"GetLayout", "GetProperties", "SetProperties",
                                      "Apply",     "GetInfo",       NULL};
    static const char *const dm[] = {"CreateBookmark",
                                     "ApplyBookmark",
                                     "GetBookmark",
                                     "GetBookmarks",
                                     "CreateSessionVariable",
                                     "CreateVariableEx",
                                     "GetVariableById",
                                     "GetVariableByName",
                                     "GetVariables",
                                     "DestroySessionVariableById",
                                     "DestroySessionVariableByName",
                                     "CreateMeasure",
                                     "GetMeasure",
                                     "GetMeasureWithLabel",
                                     "DestroyMeasure",
                                     NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (size_t k = 0; vm[k] != NULL; k++) {
            call(&t, vh, vm[k], bad[i]);
        }
        for (size_t k = 0; bmm[k] != NULL; k++) {
            call(&t, bm, bmm[k], bad[i]);
        }
        for (size_t k = 0; dm[k] != NULL; k++) {
            json_t *x = call(&t, doc, dm[k], bad[i]);
            ck_assert(json_object_get(x, "result") || json_object_get(x, "error"));
        }
    }
    sess_close(&t);
}
END_TEST

static const char *LISTBOX_A =
    "[{\"qInfo\":{\"qType\":\"njsListbox\",\"qId\":\"lb-a\"},\"qListObjectDef\":{"
    "\"qStateName\":\"A\",\"qShowAlternatives\":true,\"qDef\":{\"qFieldDefs\":[\"Country\"],"
    "\"qSortCriterias\":[{\"qSortByState\":1,\"qSortByAscii\":1}]},"
    "\"qInitialDataFetch\":[{\"qTop\":0,\"qLeft\":0,\"qWidth\":1,\"qHeight\":100}]}}]";

START_TEST(test_alternate_states_keep_their_own_selections) {
    sess_t t;
    sess_open(&t, E, "tA", "alice", "app1");
    int doc = open_loaded(&t);
    ck_assert_ptr_nonnull(json_object_get(call(&t, doc, "AddAlternateState", "[\"A\"]"), "result"));
    json_t *names = json_object_get(
        json_object_get(result(call(&t, doc, "GetAppLayout", "[]")), "qLayout"), "qStateNames");
    ck_assert_uint_eq(json_array_size(names), 1);
    ck_assert_str_eq(json_string_value(json_array_get(names, 0)), "A");
    int lb = handle_of(call(&t, doc, "CreateSessionObject", LISTBOX));
    int lba = handle_of(call(&t, doc, "CreateSessionObject", LISTBOX_A));
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(layout(&t, lba), "qListObject"), "qStateName")),
                     "A");
    /* A field of state A selects in A only. */
    int fa = handle_of(call(&t, doc, "GetField", "[\"Country\",\"A\"]"));
    json_t *r = call(&t, fa, "LowLevelSelect", "[[1],false]"); /* Norway */
    ck_assert(json_is_true(json_object_get(result(r), "qReturn")));
    ck_assert_str_eq(lo_state(layout(&t, lba), "Norway"), "S");
    ck_assert_str_eq(lo_state(layout(&t, lb), "Norway"), "O");
    /* A hypercube of state A follows A. */
    int cube = handle_of(call(
        &t, doc, "CreateSessionObject",
        "[{\"qInfo\":{\"qType\":\"t\"},\"qHyperCubeDef\":{\"qStateName\":\"A\",\"qDimensions\":[{"
        "\"qDef\":{\"qFieldDefs\":[\"Country\"]}}],\"qMeasures\":[{\"qDef\":{\"qDef\":\"Sum("
        "Amount)\"}}],\"qInitialDataFetch\":[{\"qWidth\":2,\"qHeight\":10}]}}]"));
    json_t *hc = json_object_get(layout(&t, cube), "qHyperCube");
    ck_assert_str_eq(json_string_value(json_object_get(hc, "qStateName")), "A");
    ck_assert_uint_eq(json_array_size(matrix(hc)), 1);
    /* A list object selection in A, through its qPath. */
    r = call(&t, lba, "SelectListObjectValues", "[\"/qListObjectDef\",[2],true]"); /* +Denmark */
    ck_assert(json_is_true(json_object_get(result(r), "qSuccess")));
    ck_assert_str_eq(lo_state(layout(&t, lba), "Denmark"), "S");
    ck_assert_str_eq(lo_state(layout(&t, lb), "Denmark"), "O");
    /* The default state selects on its own; ClearAll of A leaves it. */
    int f = handle_of(call(&t, doc, "GetField", "[\"Country\"]"));
    call(&t, f, "LowLevelSelect", "[[0],false]"); /* Sweden in $ */
    ck_assert_str_eq(lo_state(layout(&t, lba), "Sweden"), "A");
    ck_assert_str_eq(lo_state(layout(&t, lb), "Sweden"), "S");
    /* A bookmark keeps both states. */
    ck_assert_int_gt(handle_of(call(&t, doc, "CreateBookmark", "[{\"qInfo\":{\"qId\":\"bs\"}}]")),
                     0);
    call(&t, doc, "ClearAll", "[false,\"A\"]");
    ck_assert_str_eq(lo_state(layout(&t, lba), "Norway"), "O");
    ck_assert_str_eq(lo_state(layout(&t, lb), "Sweden"), "S");
    call(&t, doc, "ClearAll", "[]");
    ck_assert_str_eq(lo_state(layout(&t, lb), "Sweden"), "O");
    call(&t, doc, "ApplyBookmark", "[\"bs\"]");
    ck_assert_str_eq(lo_state(layout(&t, lb), "Sweden"), "S");
    ck_assert_str_eq(lo_state(layout(&t, lba), "Norway"), "S");
    ck_assert_str_eq(lo_state(layout(&t, lba), "Denmark"), "S");
    /* A session state copies its source state's selection. */
    call(&t, doc, "AddSessionAlternateState", "[\"S1\",\"A\"]");
    int fs = handle_of(call(&t, doc, "GetField", "[\"Country\",\"S1\"]"));
    ck_assert_int_eq(
        json_integer_value(json_object_get(result(call(&t, fs, "GetCardinal", "[]")), "qReturn")),
        3);
    int lbs = handle_of(call(&t, doc, "CreateSessionObject",
                             "[{\"qInfo\":{\"qType\":\"x\"},\"qListObjectDef\":{\"qStateName\":"
                             "\"S1\",\"qDef\":{\"qFieldDefs\":[\"Country\"]},"
                             "\"qInitialDataFetch\":[{\"qWidth\":1,\"qHeight\":10}]}}]"));
    ck_assert_str_eq(lo_state(layout(&t, lbs), "Norway"), "S");
    r = call(&t, doc, "RemoveSessionAlternateState", "[\"S1\"]");
    ck_assert(json_is_true(json_object_get(result(r), "qSuccess")));
    ck_assert_ptr_nonnull(
        json_object_get(json_object_get(layout(&t, lbs), "qListObject"), "qError"));
    /* Errors. */
    ck_assert_int_eq(err_code(call(&t, doc, "GetField", "[\"Country\",\"nope\"]")),
                     TSR_QIX_ERR_INVALID_PARAMETERS);
    ck_assert_int_eq(err_code(call(&t, doc, "AddAlternateState", "[\"$\"]")),
                     TSR_QIX_ERR_INVALID_PARAMETERS);
    ck_assert_int_eq(err_code(call(&t, doc, "AddAlternateState", "[\"A\"]")),
                     TSR_QIX_ERR_ALREADY_EXISTS);
    ck_assert_int_eq(err_code(call(&t, doc, "RemoveAlternateState", "[\"nope\"]")),
                     TSR_QIX_ERR_NOT_FOUND);
    ck_assert_int_eq(err_code(call(&t, doc, "ClearAll", "[false,\"nope\"]")),
                     TSR_QIX_ERR_INVALID_PARAMETERS);
    sess_close(&t);
    /* The app's states persist; a new session starts with empty selections in them. */
    tsr_engined_destroy(E);
    E = engined_open(false);
    sess_open(&t, E, "tA", "alice", "app1");
    doc = open_doc(&t, "app1");
    names = json_object_get(json_object_get(result(call(&t, doc, "GetAppLayout", "[]")), "qLayout"),
                            "qStateNames");
    ck_assert_uint_eq(json_array_size(names), 1);
    lba = handle_of(call(&t, doc, "CreateSessionObject", LISTBOX_A));
    ck_assert_str_eq(lo_state(layout(&t, lba), "Norway"), "O");
    ck_assert_ptr_nonnull(
        json_object_get(call(&t, doc, "RemoveAlternateState", "[\"A\"]"), "result"));
    ck_assert_ptr_nonnull(
        json_object_get(json_object_get(layout(&t, lba), "qListObject"), "qError"));
    sess_close(&t);
}
END_TEST

/* The access cache over a counting stand-in for spaces. */
typedef struct {
    pthread_mutex_t mu;
    int calls;
    tsr_err_t answer;
    unsigned actions;
    unsigned sleep_ms;
} counting_t;

static void sleep_ms(unsigned ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static tsr_err_t counting_decide(void *ud, const tsr_engined_principal_t *who, const char *app_id,
                                 unsigned *actions, tsr_error_t *err) {
    counting_t *c = ud;
    (void)who;
    (void)app_id;
    pthread_mutex_lock(&c->mu);
    c->calls++;
    tsr_err_t rc = c->answer;
    unsigned a = c->actions;
    unsigned ms = c->sleep_ms;
    pthread_mutex_unlock(&c->mu);
    if (ms > 0) {
        sleep_ms(ms);
    }
    *actions = a;
    return rc == TSR_OK ? TSR_OK : tsr_error_set(err, rc, "spaces answered 429");
}

static int calls_of(counting_t *c) {
    pthread_mutex_lock(&c->mu);
    int n = c->calls;
    pthread_mutex_unlock(&c->mu);
    return n;
}

static tsr_engined_access_t cached(counting_t *c, uint64_t ttl_ms) {
    tsr_engined_access_t out = {0};
    tsr_error_t err = {0};
    tsr_engined_access_t inner = {.ud = c, .decide = counting_decide};
    ck_assert_int_eq(tsr_engined_access_cached(inner, ttl_ms, 0, &out, &err), TSR_OK);
    return out;
}

START_TEST(test_access_cache_hit_expiry_and_failures_not_cached) {
    counting_t c = {.answer = TSR_OK, .actions = TSR_ENGINED_READ};
    pthread_mutex_init(&c.mu, NULL);
    tsr_engined_access_t a = cached(&c, 150);
    tsr_engined_principal_t alice = {.tenant_id = "tA", .user_id = "alice", .roles = "User"},
                            bob = {.tenant_id = "tA", .user_id = "bob", .roles = "User"};
    unsigned acts = 0;
    tsr_error_t err = {0};
    /* Hit: the second identical question is not asked again. */
    ck_assert_int_eq(a.decide(a.ud, &alice, "app1", &acts, &err), TSR_OK);
    ck_assert_uint_eq(acts, TSR_ENGINED_READ);
    ck_assert_int_eq(a.decide(a.ud, &alice, "app1", &acts, &err), TSR_OK);
    ck_assert_uint_eq(acts, TSR_ENGINED_READ);
    ck_assert_int_eq(calls_of(&c), 1);
    /* Another user, roles or app is another question. */
    ck_assert_int_eq(a.decide(a.ud, &bob, "app1", &acts, &err), TSR_OK);
    ck_assert_int_eq(a.decide(a.ud, &alice, "app2", &acts, &err), TSR_OK);
    tsr_engined_principal_t admin = {
        .tenant_id = "tA", .user_id = "alice", .roles = "TenantAdmin,User"};
    ck_assert_int_eq(a.decide(a.ud, &admin, "app1", &acts, &err), TSR_OK);
    ck_assert_int_eq(calls_of(&c), 4);
    /* Expiry. */
    sleep_ms(200);
    ck_assert_int_eq(a.decide(a.ud, &alice, "app1", &acts, &err), TSR_OK);
    ck_assert_int_eq(calls_of(&c), 5);
    /* Failures (spaces 429/5xx/timeout) and refusals are asked again every time. */
    sleep_ms(200);
    c.answer = TSR_EUNAVAILABLE;
    ck_assert_int_eq(a.decide(a.ud, &alice, "app1", &acts, &err), TSR_EUNAVAILABLE);
    ck_assert_str_eq(err.msg, "spaces answered 429");
    ck_assert_int_eq(a.decide(a.ud, &alice, "app1", &acts, &err), TSR_EUNAVAILABLE);
    ck_assert_int_eq(calls_of(&c), 7);
    c.answer = TSR_ENOTFOUND;
    ck_assert_int_eq(a.decide(a.ud, &alice, "app1", &acts, &err), TSR_ENOTFOUND);
    c.answer = TSR_OK;
    c.actions = 0;
    ck_assert_int_eq(a.decide(a.ud, &alice, "app1", &acts, &err), TSR_OK);
    ck_assert_uint_eq(acts, 0);
    c.actions = TSR_ENGINED_ALL;
    ck_assert_int_eq(a.decide(a.ud, &alice, "app1", &acts, &err), TSR_OK);
    ck_assert_uint_eq(acts, TSR_ENGINED_ALL);
    ck_assert_int_eq(calls_of(&c), 10);
    a.close(a.ud);
    /* TTL 0: nothing kept. */
    a = cached(&c, 0);
    a.decide(a.ud, &alice, "app1", &acts, &err);
    a.decide(a.ud, &alice, "app1", &acts, &err);
    ck_assert_int_eq(calls_of(&c), 12);
    a.close(a.ud);
    pthread_mutex_destroy(&c.mu);
}
END_TEST

/* A stand-in spaces on a real socket: 200 with read, 429, or an answer later than the
 * engine's access timeout. */
static int fake_spaces_mode; /* 0: 200, 1: 429, 2: slow */
static int fake_spaces_calls;
static pthread_mutex_t fake_spaces_mu = PTHREAD_MUTEX_INITIALIZER;

static tsr_err_t fake_spaces_access(tsr_req_t *req, void *ud, tsr_error_t *err) {
    (void)ud;
    (void)err;
    pthread_mutex_lock(&fake_spaces_mu);
    int mode = fake_spaces_mode;
    fake_spaces_calls++;
    pthread_mutex_unlock(&fake_spaces_mu);
    if (mode == 1) {
        tsr_req_reply_json(req, 429, json_pack("{s:s}", "error", "slow down"));
        return TSR_OK;
    }
    if (mode == 2) {
        sleep_ms(1500);
    }
    tsr_req_reply_json(req, 200, json_pack("{s:[s]}", "actions", "read"));
    return TSR_OK;
}

START_TEST(test_access_from_spaces_429_and_timeout_fail_fast_and_are_not_cached) {
    tsr_httpd_t *h = NULL;
    tsr_error_t err = {0};
    tsr_httpd_opts_t o = {
        .service = "spaces-fake", .bind = "127.0.0.1", .threads = 2, .max_body = 1024};
    ck_assert_int_eq(tsr_httpd_create(&o, &h, &err), TSR_OK);
    ck_assert_int_eq(
        tsr_httpd_route(h, "GET", "/internal/v1/access", fake_spaces_access, NULL, &err), TSR_OK);
    ck_assert_int_eq(tsr_httpd_start(h, &err), TSR_OK);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)tsr_httpd_port(h));
    setenv("TSR_ENGINE_ACCESS_TIMEOUT_MS", "400", 1);
    tsr_engined_access_t a = {0};
    ck_assert_int_eq(tsr_engined_access_spaces_open(url, &a, &err), TSR_OK);
    unsetenv("TSR_ENGINE_ACCESS_TIMEOUT_MS");
    tsr_engined_principal_t alice = {.tenant_id = "tA", .user_id = "alice"};
    unsigned acts = 0;
    fake_spaces_mode = 1;
    ck_assert_int_eq(a.decide(a.ud, &alice, "app1", &acts, &err), TSR_EUNAVAILABLE);
    ck_assert_msg(strstr(err.msg, "429") != NULL, "%s", err.msg);
    ck_assert_int_eq(a.decide(a.ud, &alice, "app1", &acts, &err), TSR_EUNAVAILABLE);
    ck_assert_int_eq(fake_spaces_calls, 2);
    fake_spaces_mode = 0;
    ck_assert_int_eq(a.decide(a.ud, &alice, "app1", &acts, &err), TSR_OK);
    ck_assert_uint_eq(acts, TSR_ENGINED_READ);
    ck_assert_int_eq(a.decide(a.ud, &alice, "app1", &acts, &err), TSR_OK);
    ck_assert_int_eq(fake_spaces_calls, 3);
    /* A spaces slower than the timeout: refused after the timeout, not after its answer. */
    fake_spaces_mode = 2;
    tsr_engined_principal_t bob = {.tenant_id = "tA", .user_id = "bob"};
    uint64_t t0 = tsr_mono_ms();
    ck_assert_int_eq(a.decide(a.ud, &bob, "app1", &acts, &err), TSR_EUNAVAILABLE);
    ck_assert_uint_lt(tsr_mono_ms() - t0, 1200);
    a.close(a.ud);
    tsr_httpd_destroy(h);
}
END_TEST

typedef struct {
    tsr_engined_access_t *a;
    tsr_err_t rc;
    unsigned acts;
} asker_t;

static void *asker(void *ud) {
    asker_t *k = ud;
    tsr_engined_principal_t alice = {.tenant_id = "tA", .user_id = "alice"};
    k->rc = k->a->decide(k->a->ud, &alice, "app1", &k->acts, NULL);
    return NULL;
}

START_TEST(test_access_cache_coalesces_concurrent_questions) {
    for (int round = 0; round < 2; round++) {
        /* Round 1: a failure reaches every waiting asker, and is not kept. */
        counting_t c = {.answer = round == 0 ? TSR_OK : TSR_EUNAVAILABLE,
                        .actions = TSR_ENGINED_READ,
                        .sleep_ms = 300};
        pthread_mutex_init(&c.mu, NULL);
        tsr_engined_access_t a = cached(&c, 30000);
        enum { N = 16 };
        pthread_t th[N];
        asker_t k[N];
        for (int i = 0; i < N; i++) {
            k[i] = (asker_t){.a = &a};
            ck_assert_int_eq(pthread_create(&th[i], NULL, asker, &k[i]), 0);
        }
        for (int i = 0; i < N; i++) {
            pthread_join(th[i], NULL);
            ck_assert_int_eq(k[i].rc, c.answer);
        }
        ck_assert_int_eq(calls_of(&c), 1);
        c.sleep_ms = 0;
        asker(&k[0]);
        ck_assert_int_eq(calls_of(&c), round == 0 ? 1 : 2);
        a.close(a.ud);
        pthread_mutex_destroy(&c.mu);
    }
}
END_TEST

/* One event applied to an access hook's cache: how many answers it dropped. */
static size_t access_event(tsr_engined_access_t *a, const char *type, const char *tenant,
                           const char *subject) {
    tsr_event_t ev;
    tsr_error_t err = {0};
    ck_assert_int_eq(tsr_event_init(&ev, "/tessera/spaces", type, tenant, subject, NULL, &err),
                     TSR_OK);
    size_t n = tsr_engined_access_on_event(a, &ev);
    tsr_event_cleanup(&ev);
    return n;
}

/* One event applied to an engine (access answers, then what the event's type asks for). */
static void engine_event(const char *type, const char *tenant, const char *subject) {
    tsr_event_t ev;
    tsr_error_t err = {0};
    ck_assert_int_eq(tsr_event_init(&ev, "/tessera/spaces", type, tenant, subject, NULL, &err),
                     TSR_OK);
    (void)tsr_engined_on_event(E, &ev);
    tsr_event_cleanup(&ev);
}

START_TEST(test_app_deleted_event_closes_its_sessions_in_its_tenant_only) {
    tsr_error_t err = {0};
    ck_assert_int_eq(tsr_engined_app_create(E, "tA", "app2", "Other app", &err), TSR_OK);
    ck_assert_int_eq(tsr_engined_app_create(E, "tB", "appB", "B's app", &err), TSR_OK);
    sess_t t, u, v, w;
    sess_open(&t, E, "tA", "alice", "app1");
    sess_open(&u, E, "tA", "bob", "app1");
    sess_open(&v, E, "tA", "alice", "app2");
    sess_open(&w, E, "tB", "carol", "appB");
    int doc = open_loaded(&t);
    open_doc(&u, "app1");
    open_doc(&v, "app2");
    int doc_w = open_doc(&w, "appB");
    size_t n = 0, bytes = 0;
    tsr_engined_memory(E, &n, &bytes);
    ck_assert_uint_eq(n, 1); /* app1's model */
    /* Another tenant's app of the same id, another event on the app, another app: nothing. */
    engine_event("com.tessera.v1.app.deleted", "tB", "app1");
    engine_event("com.tessera.v1.app.updated", "tA", "app1");
    engine_event("com.tessera.v1.app.deleted", "tA", "app3");
    engine_event("com.tessera.v1.app.deleted", "tA", NULL);
    ck_assert_uint_eq(tsr_engined_app_deleted(E, "", "app1"), 0);
    ck_assert_uint_eq(tsr_engined_app_deleted(E, "tA", NULL), 0);
    sess_t *all[] = {&t, &u, &v, &w};
    for (size_t i = 0; i < 4; i++) {
        ck_assert_uint_eq(tsr_qix_session_close_requested(all[i]->s, NULL, 0), 0);
    }
    tsr_engined_memory(E, &n, &bytes);
    ck_assert_uint_eq(n, 1);
    /* The event of app1 in tenant A: both its sessions are asked to close with 4204. */
    engine_event("com.tessera.v1.app.deleted", "tA", "app1");
    char reason[128];
    ck_assert_uint_eq(tsr_qix_session_close_requested(t.s, reason, sizeof reason),
                      TSR_QIX_CLOSE_APP_NOT_FOUND);
    ck_assert_str_eq(reason, "app deleted");
    ck_assert_uint_eq(tsr_qix_session_close_requested(u.s, NULL, 0), TSR_QIX_CLOSE_APP_NOT_FOUND);
    ck_assert_uint_eq(tsr_qix_session_close_requested(v.s, NULL, 0), 0);
    ck_assert_uint_eq(tsr_qix_session_close_requested(w.s, NULL, 0), 0);
    /* The model left the app at once (the sessions hold theirs until they end). */
    tsr_engined_memory(E, &n, &bytes);
    ck_assert_uint_eq(n, 0);
    ck_assert_uint_eq(bytes, 0);
    /* Another tenant's session on its own app is untouched and still answers. */
    ck_assert_ptr_nonnull(json_object_get(call(&w, doc_w, "GetAppLayout", "[]"), "result"));
    (void)doc;
    /* Called directly it counts the sessions asked (again: idempotent). */
    ck_assert_uint_eq(tsr_engined_app_deleted(E, "tA", "app1"), 2);
    for (size_t i = 0; i < 4; i++) {
        sess_close(all[i]);
    }
    ck_assert_uint_eq(tsr_engined_app_deleted(E, "tA", "app1"), 0);
}
END_TEST

START_TEST(test_access_cache_invalidated_by_events_per_app_and_tenant) {
    counting_t c = {.answer = TSR_OK, .actions = TSR_ENGINED_READ};
    pthread_mutex_init(&c.mu, NULL);
    tsr_engined_access_t a = cached(&c, 600000);
    tsr_engined_principal_t alice = {.tenant_id = "tA", .user_id = "alice", .roles = "User"},
                            bob = {.tenant_id = "tA", .user_id = "bob", .roles = "User"},
                            bert = {.tenant_id = "tB", .user_id = "alice", .roles = "User"};
    unsigned acts = 0;
    tsr_error_t err = {0};
#define ASK(who, app) ck_assert_int_eq(a.decide(a.ud, &(who), (app), &acts, &err), TSR_OK)
    ASK(alice, "app1");
    ASK(bob, "app1");
    ASK(alice, "app2");
    ASK(bert, "app1"); /* the same app id and user id in tenant B */
    ck_assert_int_eq(calls_of(&c), 4);
    /* Nothing to do with access, or no tenant of ours: nothing dropped. */
    ck_assert_uint_eq(access_event(&a, "com.tessera.v1.datafile.updated", "tA", "f1"), 0);
    ck_assert_uint_eq(access_event(&a, "com.tessera.v1.reload.finished", "tA", "app1"), 0);
    ck_assert_uint_eq(access_event(&a, "com.tessera.v1.user.created", "tA", "u1"), 0);
    ck_assert_uint_eq(access_event(&a, "com.tessera.v1.app.deleted", "tC", "app1"), 0);
    /* Tenant B's app event drops B's entry of app1 and none of A's. */
    ck_assert_uint_eq(access_event(&a, "com.tessera.v1.app.deleted", "tB", "app1"), 1);
    ASK(alice, "app1");
    ASK(bob, "app1");
    ck_assert_int_eq(calls_of(&c), 4);
    ASK(bert, "app1");
    ck_assert_int_eq(calls_of(&c), 5);
    /* An app event of A: every user's entry of that app, not A's other apps. */
    ck_assert_uint_eq(access_event(&a, "com.tessera.v1.app.updated", "tA", "app1"), 2);
    ASK(alice, "app2");
    ck_assert_int_eq(calls_of(&c), 5);
    ASK(alice, "app1");
    ASK(bob, "app1");
    ck_assert_int_eq(calls_of(&c), 7);
    /* A space or membership event of B drops all of B's entries and none of A's. */
    ck_assert_uint_eq(access_event(&a, "com.tessera.v1.space.member.removed", "tB", "sp1"), 1);
    ASK(alice, "app1");
    ASK(alice, "app2");
    ck_assert_int_eq(calls_of(&c), 7);
    /* ... of A: all of A's (the answer does not say which space an app is in). */
    ck_assert_uint_eq(access_event(&a, "com.tessera.v1.space.deleted", "tA", "sp1"), 3);
    ck_assert_uint_eq(access_event(&a, "com.tessera.v1.group.updated", "tA", "g1"), 0);
    ASK(alice, "app1");
    ck_assert_int_eq(calls_of(&c), 8);
    ck_assert_uint_eq(access_event(&a, "com.tessera.v1.group.updated", "tA", "g1"), 1);
#undef ASK
    a.close(a.ud);
    pthread_mutex_destroy(&c.mu);
}
END_TEST

typedef struct {
    tsr_engined_access_t *a;
    counting_t *c;
} inval_ctx_t;

static void *late_invalidate(void *ud) {
    inval_ctx_t *k = ud;
    sleep_ms(100); /* while the question is with spaces */
    k->a->invalidate(k->a->ud, "tA", "app1");
    return NULL;
}

START_TEST(test_access_answer_asked_across_an_event_is_not_kept) {
    counting_t c = {.answer = TSR_OK, .actions = TSR_ENGINED_READ, .sleep_ms = 300};
    pthread_mutex_init(&c.mu, NULL);
    tsr_engined_access_t a = cached(&c, 600000);
    tsr_engined_principal_t alice = {.tenant_id = "tA", .user_id = "alice"};
    unsigned acts = 0;
    inval_ctx_t k = {&a, &c};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, late_invalidate, &k), 0);
    ck_assert_int_eq(a.decide(a.ud, &alice, "app1", &acts, NULL), TSR_OK);
    pthread_join(th, NULL);
    ck_assert_uint_eq(acts, TSR_ENGINED_READ); /* the asker gets its answer ... */
    c.sleep_ms = 0;
    ck_assert_int_eq(a.decide(a.ud, &alice, "app1", &acts, NULL), TSR_OK);
    ck_assert_int_eq(calls_of(&c), 2); /* ... but it was not kept */
    ck_assert_int_eq(a.decide(a.ud, &alice, "app1", &acts, NULL), TSR_OK);
    ck_assert_int_eq(calls_of(&c), 2);
    a.close(a.ud);
    pthread_mutex_destroy(&c.mu);
}
END_TEST

/* Child objects (children.c): a sheet's charts and a filter pane's listboxes. */
static size_t child_count(sess_t *t, int h) {
    return json_array_size(json_object_get(json_object_get(layout(t, h), "qChildList"), "qItems"));
}

START_TEST(test_children_sheet_filterpane_tree_and_dimensionless_cube) {
    sess_t t, u;
    sess_open(&t, E, "tA", "alice", "app1");
    sess_open(&u, E, "tA", "bob", "app1");
    int doc = open_loaded(&t);
    int doc2 = open_doc(&u, "app1");
    int sheet = handle_of(call(&t, doc, "CreateObject",
                               "[{\"qInfo\":{\"qId\":\"s1\",\"qType\":\"sheet\"},\"cells\":[],"
                               "\"qChildListDef\":{\"qData\":{\"title\":\"/title\"}}}]"));
    ck_assert_uint_eq(child_count(&t, sheet), 0);
    /* A chart on the sheet: a persistent child, also reachable with GetObject. */
    json_t *r = call(&t, sheet, "CreateChild",
                     "[{\"qInfo\":{\"qType\":\"kpi\"},\"title\":\"Total\",\"qHyperCubeDef\":{"
                     "\"qDimensions\":[],\"qMeasures\":[{\"qDef\":{\"qDef\":\"=Sum(Amount)\"}}],"
                     "\"qInitialDataFetch\":[{\"qWidth\":1,\"qHeight\":1}]}}]");
    ck_assert(has_change(r, sheet));
    int kpi = handle_of(r);
    char kid[64];
    snprintf(kid, sizeof kid, "%s",
             json_string_value(json_object_get(json_object_get(result(r), "qInfo"), "qId")));
    ck_assert_uint_gt(strlen(kid), 0);
    json_t *items = json_object_get(json_object_get(layout(&t, sheet), "qChildList"), "qItems");
    ck_assert_uint_eq(json_array_size(items), 1);
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_array_get(items, 0), "qData"), "title")),
                     "Total");
    /* No dimensions: one row holding the measure over all records (a KPI). */
    json_t *cube = json_object_get(layout(&t, kpi), "qHyperCube");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(cube, "qSize"), "qcy")), 1);
    ck_assert_str_eq(cell_text(matrix(cube), 0, 0), "42");
    /* The other session finds the child through the sheet and by id. */
    int sheet2 = handle_of(call(&u, doc2, "GetObject", "[\"s1\"]"));
    ck_assert_uint_eq(child_count(&u, sheet2), 1);
    char p[160];
    snprintf(p, sizeof p, "[\"%s\"]", kid);
    int kpi2 = handle_of(call(&u, sheet2, "GetChild", p));
    ck_assert_int_eq(handle_of(call(&u, doc2, "GetObject", p)), kpi2);
    ck_assert_int_eq(err_code(call(&u, sheet2, "GetChild", "[\"s1\"]")), 2);
    r = call(&u, kpi2, "GetParent", "[]");
    ck_assert_int_eq(handle_of(r), sheet2);
    /* A session filter pane gets its listboxes from SetFullPropertyTree (nebula.js). */
    int fp = handle_of(call(&t, doc, "CreateSessionObject",
                            "[{\"qInfo\":{\"qId\":\"fp\",\"qType\":\"filterpane\"},"
                            "\"qChildListDef\":{\"qData\":{}}}]"));
    r = call(&t, fp, "SetFullPropertyTree",
             "[{\"qProperty\":{\"qInfo\":{\"qId\":\"fp\",\"qType\":\"filterpane\"},"
             "\"qChildListDef\":{\"qData\":{}}},\"qChildren\":["
             "{\"qProperty\":{\"qInfo\":{\"qType\":\"listbox\"},\"qListObjectDef\":{"
             "\"qDef\":{\"qFieldDefs\":[\"Country\"]},\"qInitialDataFetch\":[{\"qWidth\":1,"
             "\"qHeight\":10}]}},\"qChildren\":[]},"
             "{\"qProperty\":{\"qInfo\":{\"qType\":\"listbox\"},\"qListObjectDef\":{"
             "\"qDef\":{\"qFieldDefs\":[\"Product\"]}}},\"qChildren\":[]}]}]");
    ck_assert(json_is_object(result(r)));
    items = json_object_get(json_object_get(layout(&t, fp), "qChildList"), "qItems");
    ck_assert_uint_eq(json_array_size(items), 2);
    snprintf(p, sizeof p, "[\"%s\"]",
             json_string_value(
                 json_object_get(json_object_get(json_array_get(items, 0), "qInfo"), "qId")));
    int lb = handle_of(call(&t, doc, "GetObject", p));
    ck_assert_str_eq(lo_state(layout(&t, lb), "Norway"), "O");
    /* The whole tree comes back; a tree without the second listbox removes it. */
    json_t *tree = json_object_get(result(call(&t, fp, "GetFullPropertyTree", "[]")), "qPropEntry");
    ck_assert_uint_eq(json_array_size(json_object_get(tree, "qChildren")), 2);
    json_array_remove(json_object_get(tree, "qChildren"), 1);
    json_t *params = json_pack("[O]", tree);
    char *ps = json_dumps(params, JSON_COMPACT);
    call(&t, fp, "SetFullPropertyTree", ps);
    free(ps);
    json_decref(params);
    ck_assert_uint_eq(child_count(&t, fp), 1);
    ck_assert_str_eq(lo_state(layout(&t, lb), "Norway"), "O"); /* kept: same id */
    /* Not a tree: refused, nothing changed. */
    ck_assert_int_eq(err_code(call(&t, fp, "SetFullPropertyTree", "[5]")),
                     TSR_QIX_ERR_INVALID_PARAMS);
    ck_assert_uint_eq(child_count(&t, fp), 1);
    /* Destroying a parent destroys its children. */
    r = call(&t, doc, "DestroySessionObject", "[\"fp\"]");
    ck_assert(json_is_true(json_object_get(result(r), "qSuccess")));
    ck_assert_int_eq(err_code(call(&t, doc, "GetObject", p)), 2);
    snprintf(p, sizeof p,
             "[\"%s\",{\"qInfo\":{\"qId\":\"s1\",\"qType\":\"sheet\"},"
             "\"cells\":[]}]",
             kid);
    r = call(&t, sheet, "DestroyChild", p);
    ck_assert(json_is_true(json_object_get(result(r), "qSuccess")));
    ck_assert_uint_eq(child_count(&t, sheet), 0);
    snprintf(p, sizeof p, "[\"%s\"]", kid);
    ck_assert_int_eq(err_code(call(&u, doc2, "GetObject", p)), 2);
    /* CreateChild + DestroyObject of the sheet: the child goes with it. */
    r = call(&t, sheet, "CreateChild", "[{\"qInfo\":{\"qId\":\"c2\",\"qType\":\"table\"}}]");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(result(r), "qInfo"), "qId")),
                     "c2");
    r = call(&t, doc, "DestroyObject", "[\"s1\"]");
    ck_assert(json_is_true(json_object_get(result(r), "qSuccess")));
    ck_assert_int_eq(err_code(call(&u, doc2, "GetObject", "[\"c2\"]")), 2);
    sess_close(&u);
    sess_close(&t);
}
END_TEST

START_TEST(test_rest_routes_and_openapi_cover_each_other) {
    tsr_test_routes_match_openapi(TSR_SOURCE_DIR "/api/openapi/engine.yaml", tsr_engined_route_at);
}
END_TEST

/* ---- deleted apps: tombstone, refusals, sweep -------------------------------------------------
 */

static bool app_path_exists(const char *app, const char *name) {
    char p[256];
    snprintf(p, sizeof p, "%s/apps/%s%s%s", dir, app, name != NULL ? "/" : "",
             name != NULL ? name : "");
    return access(p, F_OK) == 0;
}

START_TEST(test_app_deleted_event_tombstones_the_owning_tenants_folder_only) {
    tsr_error_t err = {0};
    ck_assert_int_eq(tsr_engined_app_create(E, "tB", "appB", "B's app", &err), TSR_OK);
    sess_t t;
    sess_open(&t, E, "tA", "alice", "app1");
    (void)open_loaded(&t);
    /* Another tenant's event for app1 (and tenant A's for B's app): nothing tombstoned. */
    engine_event("com.tessera.v1.app.deleted", "tB", "app1");
    engine_event("com.tessera.v1.app.deleted", "tA", "appB");
    ck_assert(!app_path_exists("app1", "tombstone"));
    ck_assert(!app_path_exists("appB", "tombstone"));
    ck_assert(!tsr_engined_app_tombstoned(E, "app1"));
    ck_assert_int_eq(tsr_engined_app_tombstone(E, "tB", "app1", &err), TSR_ENOTFOUND);
    ck_assert_int_eq(tsr_engined_app_tombstone(E, "tA", "../apps", &err), TSR_ENOTFOUND);
    ck_assert_int_eq(tsr_engined_app_tombstone(E, "tA", "missing", &err), TSR_ENOTFOUND);
    tsr_qix_backend_t be = tsr_engined_backend(E);
    ck_assert_int_eq(be.check_app(be.ud, "tA/alice", "app1", &err), TSR_OK);
    ck_assert_int_eq(be.check_app(be.ud, "tB/carol", "appB", &err), TSR_OK);
    /* The owner's event: tombstone written with the tenant, the session asked to close. */
    engine_event("com.tessera.v1.app.deleted", "tA", "app1");
    ck_assert(app_path_exists("app1", "tombstone"));
    ck_assert(tsr_engined_app_tombstoned(E, "app1"));
    ck_assert(!tsr_engined_app_tombstoned(E, "appB"));
    char p[256];
    snprintf(p, sizeof p, "%s/apps/app1/tombstone", dir);
    json_t *ts = json_load_file(p, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(ts, "tenantId")), "tA");
    ck_assert_ptr_nonnull(json_string_value(json_object_get(ts, "deletedAt")));
    json_decref(ts);
    ck_assert_uint_eq(tsr_qix_session_close_requested(t.s, NULL, 0), TSR_QIX_CLOSE_APP_NOT_FOUND);
    /* Opens are refused like a missing app (4204 / OpenDoc app not found), the folder stays. */
    ck_assert_int_eq(be.check_app(be.ud, "tA/alice", "app1", &err), TSR_ENOTFOUND);
    sess_t u;
    sess_open(&u, E, "tA", "bob", NULL);
    ck_assert_int_eq(err_code(call(&u, -1, "OpenDoc", "[\"app1\"]")), TSR_QIX_ERR_APP_NOT_FOUND);
    sess_close(&u);
    ck_assert(app_path_exists("app1", "app.json"));
    /* A second event (another replica's, a redelivery) keeps the first tombstone. */
    ck_assert_int_eq(tsr_engined_app_tombstone(E, "tA", "app1", &err), TSR_OK);
    /* Tenant B's app is untouched and still opens. */
    ck_assert_int_eq(be.check_app(be.ud, "tB/carol", "appB", &err), TSR_OK);
    /* The id stays taken until the sweep removed the folder. */
    ck_assert_int_eq(tsr_engined_app_create(E, "tA", "app1", "again", &err), TSR_ECONFLICT);
    sess_close(&t);
}
END_TEST

static void tombstone_in_switch(void *ud) {
    (void)ud;
    tsr_error_t err = {0};
    ck_assert_int_eq(tsr_engined_app_tombstone(E, "tA", "app1", &err), TSR_OK);
}

START_TEST(test_reloader_refuses_a_tombstoned_app) {
    char data[128];
    snprintf(data, sizeof data, "%s/data", dir);
    (void)mkdir(data, 0700);
    sess_t t;
    sess_open(&t, E, "tA", "alice", "app1");
    int doc = open_doc(&t, "app1");
    json_t *script = json_pack("[s]", SCRIPT);
    char *sp = json_dumps(script, 0);
    call(&t, doc, "SetScript", sp);
    free(sp);
    json_decref(script);
    sess_close(&t);
    char *log = NULL;
    tsr_error_t err = {0};
    tsr_engined_reload_opts_t o = {.token = 3};
    ck_assert_int_eq(tsr_engined_reload_app(E, "tA", "app1", &o, &log, &err), TSR_OK);
    free(log);
    /* Deleted while the run is between its script and the switch: the switch is refused. */
    o = (tsr_engined_reload_opts_t){.token = 4, .before_switch = tombstone_in_switch};
    ck_assert_int_eq(tsr_engined_reload_app(E, "tA", "app1", &o, &log, &err), TSR_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(log, "error:"));
    free(log);
    /* A later run is refused up front, and names the deletion; no new version either way. */
    o = (tsr_engined_reload_opts_t){.token = 5};
    ck_assert_int_eq(tsr_engined_reload_app(E, "tA", "app1", &o, &log, &err), TSR_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err.msg, "deleted"));
    free(log);
    char p[256];
    snprintf(p, sizeof p, "%s/apps/app1/model.ptr", dir);
    json_t *ptr = json_load_file(p, 0, NULL);
    ck_assert_int_eq(json_integer_value(json_object_get(ptr, "token")), 3);
    json_decref(ptr);
    ck_assert(app_path_exists("app1", "model-3-1.tsra"));
    ck_assert(!app_path_exists("app1", "model-4-2.tsra"));
}
END_TEST

START_TEST(test_sweep_removes_tombstoned_folders_after_the_grace) {
    tsr_error_t err = {0};
    ck_assert_int_eq(tsr_engined_app_create(E, "tA", "app2", "kept", &err), TSR_OK);
    ck_assert_int_eq(tsr_engined_app_tombstone(E, "tA", "app1", &err), TSR_OK);
    /* Within the grace: nothing goes. */
    ck_assert_uint_eq(tsr_engined_apps_sweep(E, INT64_C(3600000)), 0);
    ck_assert(app_path_exists("app1", "app.json"));
    /* A trash folder a crashed sweep left goes on the next sweep, whatever its age. */
    char p[256];
    snprintf(p, sizeof p, "%s/apps/.trash-old.1.2.3", dir);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/apps/.trash-old.1.2.3/model-1-1.tsra", dir);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs("x", f);
    fclose(f);
    /* After a tiny grace: the tombstoned folder goes, the other app stays. */
    struct timespec ts = {.tv_sec = 1, .tv_nsec = 100000000};
    nanosleep(&ts, NULL);
    ck_assert_uint_eq(tsr_engined_apps_sweep(E, 1000), 1);
    ck_assert(!app_path_exists("app1", NULL));
    ck_assert(!app_path_exists(".trash-old.1.2.3", NULL));
    ck_assert(app_path_exists("app2", "app.json"));
    tsr_qix_backend_t be = tsr_engined_backend(E);
    ck_assert_int_eq(be.check_app(be.ud, "tA/alice", "app1", &err), TSR_ENOTFOUND);
    ck_assert_uint_eq(tsr_engined_apps_sweep(E, 0), 0);
    ck_assert(app_path_exists("app2", "app.json"));
}
END_TEST

typedef struct {
    tsr_engined_t *e;
    size_t removed;
} sweep_arg_t;

static void *sweep_thread(void *arg) {
    sweep_arg_t *s = arg;
    s->removed = tsr_engined_apps_sweep(s->e, 0);
    return NULL;
}

START_TEST(test_racing_sweeps_remove_each_folder_once_and_do_not_fail) {
    tsr_error_t err = {0};
    enum { N = 40 };
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof id, "gone%d", i);
        ck_assert_int_eq(tsr_engined_app_create(E, "tA", id, "x", &err), TSR_OK);
        ck_assert_int_eq(tsr_engined_app_tombstone(E, "tA", id, &err), TSR_OK);
    }
    /* Two engines (two replicas' views of the shared folder) sweep at once. */
    tsr_engined_t *e2 = engined_open(false);
    sweep_arg_t a = {.e = E}, b = {.e = e2};
    pthread_t ta, tb;
    ck_assert_int_eq(pthread_create(&ta, NULL, sweep_thread, &a), 0);
    ck_assert_int_eq(pthread_create(&tb, NULL, sweep_thread, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    ck_assert_uint_eq(a.removed + b.removed, N);
    ck_assert_uint_eq(tsr_engined_apps_sweep(E, 0), 0);
    ck_assert_uint_eq(tsr_engined_apps_sweep(e2, 0), 0);
    char p[128];
    snprintf(p, sizeof p, "%s/apps", dir);
    DIR *d = opendir(p);
    ck_assert_ptr_nonnull(d);
    size_t left = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        left += de->d_name[0] != '.';
        ck_assert_msg(strncmp(de->d_name, ".trash-", 7) != 0, "trash left: %s", de->d_name);
    }
    closedir(d);
    ck_assert_uint_eq(left, 1); /* app1 */
    tsr_engined_destroy(e2);
}
END_TEST

START_TEST(test_stale_import_files_swept_by_age) {
    char d[128], p[192];
    snprintf(d, sizeof d, "%s/uploads", dir);
    ck_assert_int_eq(mkdir(d, 0700), 0);
    const char *names[] = {"old1", "old2", "fresh"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", d, names[i]);
        FILE *f = fopen(p, "w");
        ck_assert_ptr_nonnull(f);
        fclose(f);
        if (i < 2) {
            struct timespec tv[2] = {{.tv_sec = time(NULL) - 7200}, {.tv_sec = time(NULL) - 7200}};
            ck_assert_int_eq(utimensat(AT_FDCWD, p, tv, 0), 0);
        }
    }
    snprintf(p, sizeof p, "%s/subdir", d);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    ck_assert_uint_eq(tsr_engined_sweep_old_files(d, INT64_C(3600000)), 2);
    snprintf(p, sizeof p, "%s/fresh", d);
    ck_assert_int_eq(access(p, F_OK), 0);
    snprintf(p, sizeof p, "%s/old1", d);
    ck_assert_int_ne(access(p, F_OK), 0);
    snprintf(p, sizeof p, "%s/subdir", d);
    ck_assert_int_eq(access(p, F_OK), 0);
    ck_assert_uint_eq(tsr_engined_sweep_old_files(d, INT64_C(3600000)), 0);
    ck_assert_uint_eq(tsr_engined_sweep_old_files("/nonexistent/tsr", 0), 0);
}
END_TEST

/* A bar chart over the master dimension dm-country (by load order) and Sum(Amount). */
static const char *LIB_DIM_CUBE =
    "[{\"qInfo\":{\"qType\":\"barchart\"},\"qHyperCubeDef\":{\"qDimensions\":[{\"qLibraryId\":"
    "\"dm-country\",\"qDef\":{\"cId\":\"d1\",\"qSortCriterias\":[{\"qSortByLoadOrder\":1}]}}],"
    "\"qMeasures\":[{\"qDef\":{\"qDef\":\"Sum(Amount)\"}}],"
    "\"qInitialDataFetch\":[{\"qWidth\":2,\"qHeight\":10}]}}]";

/* The same chart over the field itself. */
static const char *FIELD_DIM_CUBE =
    "[{\"qInfo\":{\"qType\":\"barchart\"},\"qHyperCubeDef\":{\"qDimensions\":[{\"qDef\":{"
    "\"qFieldDefs\":[\"Country\"],\"qSortCriterias\":[{\"qSortByLoadOrder\":1}]}}],"
    "\"qMeasures\":[{\"qDef\":{\"qDef\":\"Sum(Amount)\"}}],"
    "\"qInitialDataFetch\":[{\"qWidth\":2,\"qHeight\":10}]}}]";

static size_t dim_list_size(sess_t *t, int lst) {
    return json_array_size(
        json_object_get(json_object_get(layout(t, lst), "qDimensionList"), "qItems"));
}

START_TEST(test_master_dimension_create_get_destroy_and_chart_rows) {
    sess_t t;
    sess_open(&t, E, "tA", "alice", "app1");
    int doc = open_loaded(&t);
    json_t *r = call(&t, doc, "CreateDimension",
                     "[{\"qInfo\":{\"qId\":\"dm-country\",\"qType\":\"dimension\"},"
                     "\"qDim\":{\"qGrouping\":\"N\",\"qFieldDefs\":[\"Country\"],"
                     "\"qFieldLabels\":[\"Land\"],\"title\":\"Land\"},"
                     "\"qMetaDef\":{\"title\":\"Land\"}}]");
    ck_assert_str_eq(
        json_string_value(json_object_get(json_object_get(result(r), "qReturn"), "qType")),
        "GenericDimension");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(result(r), "qInfo"), "qId")),
                     "dm-country");
    int dh = handle_of(r);
    json_t *dim = json_object_get(result(call(&t, dh, "GetDimension", "[]")), "qDim");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(dim, "qFieldDefs"), 0)),
                     "Country");
    json_t *dl = layout(&t, dh);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(dl, "qMeta"), "title")),
                     "Land");
    ck_assert_uint_eq(json_array_size(json_object_get(json_object_get(dl, "qMeta"), "privileges")),
                      3);
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(result(call(&t, dh, "GetInfo", "[]")), "qInfo"), "qId")),
                     "dm-country");
    ck_assert_int_eq(handle_of(call(&t, doc, "GetDimension", "[\"dm-country\"]")), dh);

    /* A chart over the master dimension has the rows of the chart over the field. */
    int lib = handle_of(call(&t, doc, "CreateSessionObject", LIB_DIM_CUBE));
    int fld = handle_of(call(&t, doc, "CreateSessionObject", FIELD_DIM_CUBE));
    json_t *hl = json_object_get(layout(&t, lib), "qHyperCube");
    json_t *ml = matrix(hl), *mf = matrix(json_object_get(layout(&t, fld), "qHyperCube"));
    ck_assert_uint_eq(json_array_size(ml), 3);
    ck_assert_uint_eq(json_array_size(ml), json_array_size(mf));
    for (size_t i = 0; i < json_array_size(mf); i++) {
        ck_assert_str_eq(cell_text(ml, i, 0), cell_text(mf, i, 0));
        ck_assert_str_eq(cell_text(ml, i, 1), cell_text(mf, i, 1));
    }
    ck_assert_str_eq(cell_text(ml, 0, 0), "Sweden");
    json_t *di = json_array_get(json_object_get(hl, "qDimensionInfo"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(di, "qFallbackTitle")), "Land");
    ck_assert_str_eq(json_string_value(json_object_get(di, "qLibraryId")), "dm-country");
    /* Selecting in it selects the master dimension's field. */
    r = call(&t, lib, "SelectHyperCubeValues", "[\"/qHyperCubeDef\",0,[1],false]");
    ck_assert(json_is_true(json_object_get(result(r), "qSuccess")));
    mf = matrix(json_object_get(layout(&t, fld), "qHyperCube"));
    ck_assert_uint_eq(json_array_size(mf), 1);
    ck_assert_str_eq(cell_text(mf, 0, 0), "Norway");
    call(&t, doc, "ClearAll", "[]");

    /* The list of master dimensions (qDimensionListDef with qData pointers). */
    int lst = handle_of(call(&t, doc, "CreateSessionObject",
                             "[{\"qInfo\":{\"qType\":\"DimensionList\"},\"qDimensionListDef\":{"
                             "\"qType\":\"dimension\",\"qData\":{\"title\":\"/qDim/title\"}}}]"));
    json_t *items = json_object_get(json_object_get(layout(&t, lst), "qDimensionList"), "qItems");
    ck_assert_uint_eq(json_array_size(items), 1);
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(json_array_get(items, 0), "qData"), "title")),
                     "Land");

    /* Editing the master dimension changes the chart using it. */
    r = call(&t, dh, "SetProperties",
             "[{\"qDim\":{\"qFieldDefs\":[\"Product\"],\"qFieldLabels\":[\"\"],"
             "\"title\":\"Item\"}}]");
    ck_assert_ptr_nonnull(json_object_get(r, "result"));
    ck_assert(has_change(r, lib));
    hl = json_object_get(layout(&t, lib), "qHyperCube");
    ml = matrix(hl);
    ck_assert_uint_eq(json_array_size(ml), 2);
    ck_assert_str_eq(cell_text(ml, 0, 0), "A");
    ck_assert_str_eq(cell_text(ml, 0, 1), "30");
    di = json_array_get(json_object_get(hl, "qDimensionInfo"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(di, "qFallbackTitle")), "Item");
    sess_close(&t);

    /* Stored in the app: after a restart the chart still uses it; then it is destroyed. */
    tsr_engined_destroy(E);
    E = engined_open(false);
    sess_open(&t, E, "tA", "alice", "app1");
    doc = open_doc(&t, "app1");
    lib = handle_of(call(&t, doc, "CreateSessionObject", LIB_DIM_CUBE));
    ck_assert_str_eq(cell_text(matrix(json_object_get(layout(&t, lib), "qHyperCube")), 1, 0), "B");
    r = call(&t, doc, "DestroyDimension", "[\"dm-country\"]");
    ck_assert(json_is_true(json_object_get(result(r), "qSuccess")));
    ck_assert_int_eq(err_code(call(&t, doc, "GetDimension", "[\"dm-country\"]")),
                     TSR_QIX_ERR_NOT_FOUND);
    ck_assert(!json_is_true(json_object_get(
        result(call(&t, doc, "DestroyDimension", "[\"dm-country\"]")), "qSuccess")));
    /* A chart over a missing master dimension has no rows (and answers). */
    ck_assert_uint_eq(json_array_size(matrix(json_object_get(layout(&t, lib), "qHyperCube"))), 0);
    sess_close(&t);
}
END_TEST

START_TEST(test_master_dimension_needs_edit_and_rejects_bad_input) {
    tsr_engined_t *e = engined_with_access();
    sess_t a, b;
    sess_open(&a, e, "tA", "alice", "sp1");
    int doc = open_doc(&a, "sp1");
    const char *ok = "[{\"qInfo\":{\"qId\":\"dm-1\"},\"qDim\":{\"qFieldDefs\":[\"Country\"]}}]";
    int dh = handle_of(call(&a, doc, "CreateDimension", ok));
    ck_assert_int_gt(dh, 0);
    int lst = handle_of(call(&a, doc, "CreateSessionObject",
                             "[{\"qInfo\":{\"qType\":\"DimensionList\"},"
                             "\"qDimensionListDef\":{\"qType\":\"dimension\"}}]"));
    ck_assert_uint_eq(dim_list_size(&a, lst), 1);
    /* Bad properties: clear errors, nothing stored. */
    static const char *const bad[] = {
        "[{\"qDim\":5}]",
        "[{\"qDim\":{}}]",
        "[{\"qDim\":{\"qFieldDefs\":[]}}]",
        "[{\"qDim\":{\"qFieldDefs\":[7]}}]",
        "[{\"qDim\":{\"qFieldDefs\":[\"\"]}}]",
        "[{\"qDim\":{\"qFieldDefs\":[\"Country\"],\"qFieldLabels\":\"x\"}}]",
        "[{\"qInfo\":5,\"qDim\":{\"qFieldDefs\":[\"Country\"]}}]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(err_code(call(&a, doc, "CreateDimension", bad[i])),
                         TSR_QIX_ERR_INVALID_PARAMETERS);
        ck_assert_int_eq(err_code(call(&a, dh, "SetProperties", bad[i])),
                         TSR_QIX_ERR_INVALID_PARAMETERS);
    }
    ck_assert_int_eq(err_code(call(&a, doc, "CreateDimension", "[]")), TSR_QIX_ERR_INVALID_PARAMS);
    ck_assert_int_eq(err_code(call(&a, doc, "CreateDimension", ok)), TSR_QIX_ERR_ALREADY_EXISTS);
    /* Caps: 65 fields (a drill-down has at most 64), an id over 128 bytes. */
    tsr_buf_t big;
    tsr_buf_init(&big, 1 << 20);
    tsr_buf_append_str(&big, "[{\"qDim\":{\"qFieldDefs\":[");
    for (int i = 0; i < 65; i++) {
        tsr_buf_append_str(&big, i > 0 ? ",\"Country\"" : "\"Country\"");
    }
    tsr_buf_append_str(&big, "]}}]");
    ck_assert_int_eq(err_code(call(&a, doc, "CreateDimension", big.data)),
                     TSR_QIX_ERR_INVALID_PARAMETERS);
    tsr_buf_reset(&big);
    tsr_buf_append_str(&big, "[{\"qInfo\":{\"qId\":\"");
    for (int i = 0; i < 129; i++) {
        tsr_buf_append_str(&big, "x");
    }
    tsr_buf_append_str(&big, "\"},\"qDim\":{\"qFieldDefs\":[\"Country\"]}}]");
    ck_assert_int_eq(err_code(call(&a, doc, "CreateDimension", big.data)),
                     TSR_QIX_ERR_INVALID_PARAMETERS);
    tsr_buf_cleanup(&big);
    ck_assert_uint_eq(dim_list_size(&a, lst), 1);

    /* bob reads the app: he sees the dimension but may not create, change or destroy one. */
    sess_open(&b, e, "tA", "bob", "sp1");
    int doc2 = open_doc(&b, "sp1");
    int dh2 = handle_of(call(&b, doc2, "GetDimension", "[\"dm-1\"]"));
    ck_assert_int_gt(dh2, 0);
    ck_assert_uint_eq(
        json_array_size(json_object_get(json_object_get(layout(&b, dh2), "qMeta"), "privileges")),
        1);
    ck_assert_int_eq(
        err_code(call(&b, doc2, "CreateDimension", "[{\"qDim\":{\"qFieldDefs\":[\"Country\"]}}]")),
        TSR_QIX_ERR_ACCESS_DENIED);
    ck_assert_int_eq(
        err_code(call(&b, dh2, "SetProperties", "[{\"qDim\":{\"qFieldDefs\":[\"Product\"]}}]")),
        TSR_QIX_ERR_ACCESS_DENIED);
    ck_assert_int_eq(err_code(call(&b, doc2, "DestroyDimension", "[\"dm-1\"]")),
                     TSR_QIX_ERR_ACCESS_DENIED);
    json_t *qd = json_object_get(result(call(&b, dh2, "GetDimension", "[]")), "qDim");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(qd, "qFieldDefs"), 0)),
                     "Country");
    ck_assert_uint_eq(dim_list_size(&a, lst), 1);
    sess_close(&b);
    sess_close(&a);
    tsr_engined_destroy(e);
}
END_TEST

static json_t *check(sess_t *t, int doc, const char *method, const char *params) {
    json_t *r = result(call(t, doc, method, params));
    ck_assert_ptr_nonnull(r);
    return r;
}

static const char *check_msg(json_t *r) {
    return json_string_value(json_object_get(r, "qErrorMsg"));
}

START_TEST(test_check_expression_syntax_and_field_names) {
    sess_t t;
    sess_open(&t, E, "tA", "alice", "app1");
    int doc = open_loaded(&t);
    /* Fine: no message, no bad names. */
    json_t *r = check(&t, doc, "CheckExpression", "[\"=Sum(Amount)/Count(Country)\"]");
    ck_assert_str_eq(check_msg(r), "");
    ck_assert_uint_eq(json_array_size(json_object_get(r, "qBadFieldNames")), 0);
    ck_assert(json_is_array(json_object_get(r, "qDangerousFieldNames")));
    /* Bad syntax: a message in words. */
    r = check(&t, doc, "CheckExpression", "[\"Sum(Amount\"]");
    ck_assert_ptr_nonnull(strstr(check_msg(r), "Error in expression"));
    r = check(&t, doc, "CheckExpression", "[\"Sum(Amount) +\"]");
    ck_assert_str_ne(check_msg(r), "");
    r = check(&t, doc, "CheckExpression", "[\"\"]");
    ck_assert_str_ne(check_msg(r), "");
    /* An unknown field: named, with its place in the expression. */
    r = check(&t, doc, "CheckExpression", "[\"Sum(Amount)+Sum(Price)\"]");
    ck_assert_str_eq(check_msg(r), "Bad field name(s): Price");
    json_t *bad = json_object_get(r, "qBadFieldNames");
    ck_assert_uint_eq(json_array_size(bad), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(bad, 0), "qFrom")), 16);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(bad, 0), "qCount")), 5);
    /* A name given in qLabels is not a bad field. */
    r = check(&t, doc, "CheckExpression", "[\"Sum(Amount)+Price\",[\"Price\"]]");
    ck_assert_str_eq(check_msg(r), "");
    /* Set modifiers name fields too. */
    r = check(&t, doc, "CheckExpression", "[\"Sum({<Nope={'a'}>} Amount)\"]");
    ck_assert_str_eq(check_msg(r), "Bad field name(s): Nope");
    /* CheckNumberOrExpression: numbers as they are, else the expression check. */
    r = check(&t, doc, "CheckNumberOrExpression", "[\"42.5\"]");
    ck_assert_str_eq(check_msg(r), "");
    r = check(&t, doc, "CheckNumberOrExpression", "[\"=Max(Amount)\"]");
    ck_assert_str_eq(check_msg(r), "");
    r = check(&t, doc, "CheckNumberOrExpression", "[\"Max(Nope\"]");
    ck_assert_str_ne(check_msg(r), "");
    /* Bad parameters. */
    ck_assert_int_eq(err_code(call(&t, doc, "CheckExpression", "[]")), TSR_QIX_ERR_INVALID_PARAMS);
    ck_assert_int_eq(err_code(call(&t, doc, "CheckExpression", "[5]")), TSR_QIX_ERR_INVALID_PARAMS);
    ck_assert_int_eq(err_code(call(&t, doc, "CheckExpression", "[\"1\",5]")),
                     TSR_QIX_ERR_INVALID_PARAMS);
    sess_close(&t);
}
END_TEST

static Suite *engined_suite(void) {
    Suite *s = suite_create("engined");
    TCase *tc = tcase_create("qix");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_reload_inline_then_hypercube_layout_sorted_by_measure);
    tcase_add_test(tc, test_select_hypercube_values_changes_states_and_reports_every_object);
    tcase_add_test(tc, test_listobject_and_field_selections_clear_back_forward);
    tcase_add_test(tc, test_tables_and_keys_and_field_list);
    tcase_add_test(tc, test_objects_missing_persistent_properties_destroy);
    tcase_add_test(tc, test_reload_pushes_change_to_other_sessions_and_error_keeps_data);
    tcase_add_test(tc, test_app_persists_and_model_rebuilds_after_restart);
    tcase_add_test(tc, test_reload_app_log_is_live_line_by_line);
    tcase_add_test(tc, test_reload_app_long_statement_progress_lines_bounded);
    tcase_add_test(tc, test_data_files_from_tenant_area_and_model_file_survives_restart);
    tcase_add_test(tc, test_idle_apps_leave_memory_by_lru_and_load_again);
    tcase_add_test(tc, test_concurrent_sessions_during_reloads);
    tcase_add_test(tc, test_malformed_params_answer_and_never_crash);
    tcase_add_test(tc, test_other_tenant_app_answers_like_missing_one);
    tcase_add_test(tc, test_upgrade_requires_principal_headers);
    tcase_add_test(tc, test_access_decisions_gate_open_edit_and_reload);
    tcase_add_test(tc, test_bookmark_create_apply_restores_selection_and_persists);
    tcase_add_test(tc, test_master_measure_create_list_use_in_chart_and_persist);
    tcase_add_test(tc, test_master_dimension_create_get_destroy_and_chart_rows);
    tcase_add_test(tc, test_master_dimension_needs_edit_and_rejects_bad_input);
    tcase_add_test(tc, test_check_expression_syntax_and_field_names);
    tcase_add_test(tc, test_variables_script_session_app_and_dollar_expansion);
    tcase_add_test(tc, test_alternate_states_keep_their_own_selections);
    tcase_add_test(tc, test_access_cache_hit_expiry_and_failures_not_cached);
    tcase_add_test(tc, test_access_cache_coalesces_concurrent_questions);
    tcase_add_test(tc, test_access_cache_invalidated_by_events_per_app_and_tenant);
    tcase_add_test(tc, test_access_answer_asked_across_an_event_is_not_kept);
    tcase_add_test(tc, test_access_from_spaces_429_and_timeout_fail_fast_and_are_not_cached);
    tcase_add_test(tc, test_app_export_download_import_round_trip_and_refusals);
    tcase_add_test(tc, test_app_export_needs_the_export_permission);
    tcase_add_test(tc, test_app_copy_and_publish_carry_the_content);
    tcase_add_test(tc, test_children_sheet_filterpane_tree_and_dimensionless_cube);
    tcase_add_test(tc, test_rest_routes_and_openapi_cover_each_other);
    tcase_add_test(tc, test_app_deleted_event_closes_its_sessions_in_its_tenant_only);
    tcase_add_test(tc, test_app_deleted_event_tombstones_the_owning_tenants_folder_only);
    tcase_add_test(tc, test_reloader_refuses_a_tombstoned_app);
    tcase_add_test(tc, test_sweep_removes_tombstoned_folders_after_the_grace);
    tcase_add_test(tc, test_racing_sweeps_remove_each_folder_once_and_do_not_fail);
    tcase_add_test(tc, test_stale_import_files_swept_by_age);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(engined_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
