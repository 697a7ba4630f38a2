/*
 * Unit tests of pkg/engined: socket-less QIX sessions (tsr_qix_session_create) driven through
 * the Doc, GenericObject and Field methods on a small INLINE-loaded app: reload, hypercube
 * and list object layouts, selection states, change notifications (in responses and pushed
 * to other sessions), selection mode, persistence across restarts, and tenancy (another
 * tenant's app answers exactly like a missing one). Also the upgrade's principal check
 * through pkg/httpd's in-process requests.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engined.h"
#include "httpd.h"
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
    tcase_add_test(tc, test_data_files_from_tenant_area_and_model_file_survives_restart);
    tcase_add_test(tc, test_idle_apps_leave_memory_by_lru_and_load_again);
    tcase_add_test(tc, test_concurrent_sessions_during_reloads);
    tcase_add_test(tc, test_malformed_params_answer_and_never_crash);
    tcase_add_test(tc, test_other_tenant_app_answers_like_missing_one);
    tcase_add_test(tc, test_upgrade_requires_principal_headers);
    tcase_add_test(tc, test_access_decisions_gate_open_edit_and_reload);
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
