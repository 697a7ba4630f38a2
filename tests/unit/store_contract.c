/*
 * pkg/store contract tests (see store_contract.h): documents, versions, unique constraints,
 * tenant isolation, list filters/sort/paging, cursor tampering, two-process optimistic
 * writers, the outbox with commit and rollback, apply_once, leases and migrations. Only the
 * public API is used, so every backend runs the very same cases.
 */
#include "store_contract.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_BACKENDS 4

static const tsr_store_contract_t *g_backends[MAX_BACKENDS];
static int g_n_backends;

/* OK(call(..., ERR)): the call must succeed; its error message is printed when it does not. */
#define OK(expr)                                                                                   \
    do {                                                                                           \
        tsr_error_t e_;                                                                            \
        tsr_error_clear(&e_);                                                                      \
        tsr_err_t rc_ = (expr);                                                                    \
        ck_assert_msg(rc_ == TSR_OK, "%s -> %s (%s)", #expr, tsr_strerror(rc_), e_.msg);           \
    } while (0)
#define ERR (&e_)

static json_t *path2(json_t *o, const char *a, const char *b) {
    return json_object_get(json_object_get(o, a), b);
}

/* ---- fixture ----------------------------------------------------------------------------- */

static const char *const k_item_idx[] = {"name", "n", "group", "meta.rank"};
static const char *const k_u_name[] = {"name"};
static const char *const k_u_slug[] = {"slug"};
static const tsr_store_unique_t k_item_uniques[] = {{k_u_name, 1, false}, {k_u_slug, 1, true}};

static tsr_store_collection_t k_colls[] = {
    {.name = "items",
     .indexes = k_item_idx,
     .n_indexes = 4,
     .uniques = k_item_uniques,
     .n_uniques = 2},
    {.name = "counters"},
};

typedef struct {
    const tsr_store_contract_t *c;
    char *uri;
    tsr_store_t *s;
    tsr_error_t err;
} fx_t;

static bool fx_setup(fx_t *fx, int i, const char *test) {
    memset(fx, 0, sizeof(*fx));
    fx->c = g_backends[i];
    for (const char *const *p = fx->c->skip; p != NULL && *p != NULL; p++) {
        if (strcmp(*p, test) == 0) {
            fprintf(stderr, "SKIP %s on %s (documented limitation of this backend)\n", test,
                    fx->c->name);
            return false;
        }
    }
    fx->uri = fx->c->new_uri(fx->c->ctx);
    ck_assert_ptr_nonnull(fx->uri);
    tsr_store_opts_t o = {.collections = k_colls, .n_collections = 2};
    tsr_err_t rc = tsr_store_create(fx->uri, &o, &fx->s, &fx->err);
    ck_assert_msg(rc == TSR_OK, "open %s: %s", fx->uri, fx->err.msg);
    return true;
}

static void fx_teardown(fx_t *fx) {
    tsr_store_destroy(fx->s);
    if (fx->c->drop != NULL) {
        fx->c->drop(fx->c->ctx, fx->uri);
    }
    free(fx->uri);
}

static tsr_store_t *reopen(const char *uri) {
    tsr_store_t *s = NULL;
    tsr_error_t err;
    tsr_store_opts_t o = {.collections = k_colls, .n_collections = 2};
    tsr_err_t rc = tsr_store_create(uri, &o, &s, &err);
    ck_assert_msg(rc == TSR_OK, "reopen: %s", err.msg);
    return s;
}

static json_t *item(const char *name, int n, const char *group) {
    return json_pack("{s:s,s:i,s:s,s:{s:i}}", "name", name, "n", n, "group", group, "meta", "rank",
                     n % 3);
}

static tsr_err_t put_item(tsr_store_t *s, const char *tenant, const char *id, const char *name,
                          int n, const char *group) {
    json_t *d = item(name, n, group);
    tsr_err_t rc = tsr_store_doc_create(s, tenant, "items", id, d, NULL, 0, NULL, NULL);
    json_decref(d);
    return rc;
}

static size_t outbox_count(tsr_store_t *s) {
    tsr_store_event_t *rows = NULL;
    size_t n = 0;
    tsr_error_t err;
    ck_assert_int_eq(tsr_store_platform_outbox_fetch(s, 1000, &rows, &n, &err), TSR_OK);
    tsr_store_outbox_rows_free(rows, n);
    return n;
}

static tsr_store_event_t ev(const char *id, const char *key) {
    static const char payload[] = "{\"specversion\":\"1.0\",\"type\":\"com.tessera.v1.t.x\"}";
    return (tsr_store_event_t){id, "tessera.test", key, payload, sizeof(payload) - 1};
}

#define BEGIN(name)                                                                                \
    fx_t fx;                                                                                       \
    if (!fx_setup(&fx, _i, name)) {                                                                \
        return;                                                                                    \
    }                                                                                              \
    tsr_store_t *s = fx.s;                                                                         \
    tsr_error_t err;                                                                               \
    (void)err;

#define END() fx_teardown(&fx)

/* ---- documents --------------------------------------------------------------------------- */

START_TEST(test_doc_create_then_get_sets_owned_members) {
    BEGIN("create_get");
    json_t *d =
        json_pack("{s:s,s:s,s:i,s:s}", "name", "a", "tenantId", "evil", "version", 99, "id", "x");
    json_t *out = NULL, *got = NULL;
    OK(tsr_store_doc_create(s, "t1", "items", "doc1", d, NULL, 0, &out, ERR));
    ck_assert_str_eq(json_string_value(json_object_get(out, "id")), "doc1");
    ck_assert_str_eq(json_string_value(json_object_get(out, "tenantId")), "t1");
    ck_assert_int_eq(json_integer_value(json_object_get(out, "version")), 1);
    OK(tsr_store_doc_get(s, "t1", "items", "doc1", &got, ERR));
    ck_assert(json_equal(out, got));
    json_decref(got);
    json_decref(out);
    /* a generated id */
    json_t *empty = json_object();
    OK(tsr_store_doc_create(s, "t1", "items", NULL, empty, NULL, 0, &out, ERR));
    ck_assert_uint_eq(strlen(json_string_value(json_object_get(out, "id"))), 24);
    json_decref(out);
    json_decref(empty);
    json_decref(d);
    END();
}
END_TEST

START_TEST(test_doc_create_existing_id_conflicts) {
    BEGIN("create_conflict");
    OK(put_item(s, "t1", "a", "A", 1, "g"));
    ck_assert_int_eq(put_item(s, "t1", "a", "B", 2, "g"), TSR_ECONFLICT);
    /* the same id in another tenant is another document */
    OK(put_item(s, "t2", "a", "A", 1, "g"));
    END();
}
END_TEST

START_TEST(test_doc_unique_constraint_conflicts_per_tenant_and_global) {
    BEGIN("unique");
    OK(put_item(s, "t1", "a", "same", 1, "g"));
    ck_assert_int_eq(put_item(s, "t1", "b", "same", 2, "g"), TSR_ECONFLICT);
    OK(put_item(s, "t2", "b", "same", 2, "g")); /* per-tenant unique: other tenant may */
    json_t *d = json_pack("{s:s,s:s}", "name", "s1", "slug", "host.example");
    OK(tsr_store_doc_create(s, "t1", "items", "c", d, NULL, 0, NULL, ERR));
    json_object_set_new(d, "name", json_string("s2"));
    ck_assert_int_eq(tsr_store_doc_create(s, "t2", "items", "c", d, NULL, 0, NULL, &err),
                     TSR_ECONFLICT); /* global unique */
    /* replace into a taken value conflicts too, and leaves the document as it was */
    json_t *cur = NULL;
    OK(tsr_store_doc_get(s, "t1", "items", "a", &cur, ERR));
    json_object_set_new(cur, "name", json_string("s1"));
    ck_assert_int_eq(tsr_store_doc_replace(s, "t1", "items", "a", 1, cur, NULL, 0, NULL, &err),
                     TSR_ECONFLICT);
    json_decref(cur);
    OK(tsr_store_doc_get(s, "t1", "items", "a", &cur, ERR));
    ck_assert_str_eq(json_string_value(json_object_get(cur, "name")), "same");
    json_decref(cur);
    json_decref(d);
    END();
}
END_TEST

START_TEST(test_doc_replace_version_mismatch_conflicts) {
    BEGIN("replace_version");
    OK(put_item(s, "t1", "a", "A", 1, "g"));
    json_t *d = item("A2", 2, "g"), *out = NULL;
    OK(tsr_store_doc_replace(s, "t1", "items", "a", 1, d, NULL, 0, &out, ERR));
    ck_assert_int_eq(json_integer_value(json_object_get(out, "version")), 2);
    json_decref(out);
    ck_assert_int_eq(tsr_store_doc_replace(s, "t1", "items", "a", 1, d, NULL, 0, NULL, &err),
                     TSR_ECONFLICT);
    ck_assert_int_eq(tsr_store_doc_replace(s, "t1", "items", "zz", 1, d, NULL, 0, NULL, &err),
                     TSR_ENOTFOUND);
    OK(tsr_store_doc_replace(s, "t1", "items", "a", 0, d, NULL, 0, &out, ERR));
    ck_assert_int_eq(json_integer_value(json_object_get(out, "version")), 3);
    json_decref(out);
    json_decref(d);
    END();
}
END_TEST

START_TEST(test_doc_patch_merges_and_bumps_version) {
    BEGIN("patch");
    json_t *d = json_pack("{s:s,s:i,s:{s:i,s:i}}", "name", "A", "n", 1, "meta", "rank", 1, "x", 2);
    OK(tsr_store_doc_create(s, "t1", "items", "a", d, NULL, 0, NULL, ERR));
    json_t *p = json_pack("{s:n,s:{s:n,s:i},s:s,s:i}", "n", "meta", "x", "y", 5, "group", "g2",
                          "version", 77);
    json_t *out = NULL;
    OK(tsr_store_doc_patch(s, "t1", "items", "a", 1, p, NULL, 0, &out, ERR));
    ck_assert_ptr_null(json_object_get(out, "n"));
    ck_assert_int_eq(json_integer_value(json_object_get(out, "version")), 2);
    ck_assert_str_eq(json_string_value(json_object_get(out, "group")), "g2");
    ck_assert_int_eq(json_integer_value(path2(out, "meta", "rank")), 1);
    ck_assert_ptr_null(path2(out, "meta", "x"));
    ck_assert_int_eq(json_integer_value(path2(out, "meta", "y")), 5);
    json_decref(out);
    ck_assert_int_eq(tsr_store_doc_patch(s, "t1", "items", "a", 1, p, NULL, 0, NULL, &err),
                     TSR_ECONFLICT);
    OK(tsr_store_doc_patch(s, "t1", "items", "a", 0, p, NULL, 0, NULL, ERR));
    json_decref(p);
    json_decref(d);
    END();
}
END_TEST

START_TEST(test_doc_del_checks_version_and_existence) {
    BEGIN("delete");
    OK(put_item(s, "t1", "a", "A", 1, "g"));
    ck_assert_int_eq(tsr_store_doc_del(s, "t1", "items", "a", 5, NULL, 0, &err), TSR_ECONFLICT);
    OK(tsr_store_doc_del(s, "t1", "items", "a", 1, NULL, 0, ERR));
    ck_assert_int_eq(tsr_store_doc_del(s, "t1", "items", "a", 0, NULL, 0, &err), TSR_ENOTFOUND);
    json_t *got = NULL;
    ck_assert_int_eq(tsr_store_doc_get(s, "t1", "items", "a", &got, &err), TSR_ENOTFOUND);
    ck_assert_ptr_null(got);
    OK(put_item(s, "t1", "a", "A", 1, "g")); /* the id and the unique name are free again */
    END();
}
END_TEST

START_TEST(test_doc_bad_arguments_einval) {
    BEGIN("bad_args");
    json_t *d = json_pack("{s:s}", "_secret", "x"), *arr = json_array();
    ck_assert_int_eq(tsr_store_doc_create(s, "t1", "items", "a", d, NULL, 0, NULL, &err),
                     TSR_EINVAL);
    ck_assert_int_eq(tsr_store_doc_create(s, "t1", "items", "a", arr, NULL, 0, NULL, &err),
                     TSR_EINVAL);
    ck_assert_int_eq(tsr_store_doc_create(s, "t1", "nope", "a", d, NULL, 0, NULL, &err),
                     TSR_EINVAL);
    ck_assert_int_eq(tsr_store_doc_create(s, "_platform", "items", "a", arr, NULL, 0, NULL, &err),
                     TSR_EINVAL);
    ck_assert_int_eq(tsr_store_doc_create(s, "", "items", "a", arr, NULL, 0, NULL, &err),
                     TSR_EINVAL);
    json_t *got = NULL;
    ck_assert_int_eq(tsr_store_doc_get(s, "t1", "_tsr_meta", "cursor-key", &got, &err), TSR_EINVAL);
    ck_assert_int_eq(tsr_store_doc_get(s, "t1", "items", "a b", &got, &err), TSR_EINVAL);
    ck_assert_int_eq(tsr_store_doc_get(s, NULL, "items", "a", &got, &err), TSR_EINVAL);
    json_t *big = json_object();
    char *huge = malloc(TSR_STORE_DOC_MAX + 1);
    memset(huge, 'x', TSR_STORE_DOC_MAX);
    huge[TSR_STORE_DOC_MAX] = '\0';
    json_object_set_new(big, "blob", json_string(huge));
    ck_assert_int_eq(tsr_store_doc_create(s, "t1", "items", "big", big, NULL, 0, NULL, &err),
                     TSR_ETOOBIG);
    free(huge);
    json_decref(big);
    json_decref(arr);
    json_decref(d);
    END();
}
END_TEST

/* ---- tenancy ----------------------------------------------------------------------------- */

START_TEST(test_cross_tenant_access_is_missing) {
    BEGIN("cross_tenant");
    OK(put_item(s, "t1", "a", "A", 1, "g"));
    json_t *got = NULL, *d = item("X", 9, "g");
    tsr_error_t e_other, e_missing;
    /* get: the same code and message as for an id that does not exist */
    ck_assert_int_eq(tsr_store_doc_get(s, "t2", "items", "a", &got, &e_other), TSR_ENOTFOUND);
    ck_assert_int_eq(tsr_store_doc_get(s, "t2", "items", "nope", &got, &e_missing), TSR_ENOTFOUND);
    ck_assert_str_eq(e_other.msg, e_missing.msg);
    ck_assert_ptr_null(got);
    ck_assert_int_eq(tsr_store_doc_replace(s, "t2", "items", "a", 1, d, NULL, 0, NULL, &e_other),
                     TSR_ENOTFOUND);
    ck_assert_int_eq(
        tsr_store_doc_replace(s, "t2", "items", "nope", 1, d, NULL, 0, NULL, &e_missing),
        TSR_ENOTFOUND);
    ck_assert_str_eq(e_other.msg, e_missing.msg);
    ck_assert_int_eq(tsr_store_doc_replace(s, "t2", "items", "a", 0, d, NULL, 0, NULL, &err),
                     TSR_ENOTFOUND);
    ck_assert_int_eq(tsr_store_doc_patch(s, "t2", "items", "a", 1, d, NULL, 0, NULL, &err),
                     TSR_ENOTFOUND);
    ck_assert_int_eq(tsr_store_doc_patch(s, "t2", "items", "a", 0, d, NULL, 0, NULL, &err),
                     TSR_ENOTFOUND);
    ck_assert_int_eq(tsr_store_doc_del(s, "t2", "items", "a", 1, NULL, 0, &e_other), TSR_ENOTFOUND);
    ck_assert_int_eq(tsr_store_doc_del(s, "t2", "items", "nope", 1, NULL, 0, &e_missing),
                     TSR_ENOTFOUND);
    ck_assert_str_eq(e_other.msg, e_missing.msg);
    ck_assert_int_eq(tsr_store_doc_del(s, "t2", "items", "a", 0, NULL, 0, &err), TSR_ENOTFOUND);
    /* list: t2 sees nothing of t1, filtered or not */
    tsr_store_page_t page;
    tsr_store_filter_t f = {"name", TSR_STORE_EQ, json_string("A")};
    tsr_store_query_t q = {.filters = &f, .n_filters = 1};
    OK(tsr_store_doc_list(s, "t2", "items", &q, &page, ERR));
    ck_assert_uint_eq(json_array_size(page.items), 0);
    ck_assert_ptr_null(page.next_cursor);
    tsr_store_page_cleanup(&page);
    OK(tsr_store_doc_list(s, "t2", "items", NULL, &page, ERR));
    ck_assert_uint_eq(json_array_size(page.items), 0);
    tsr_store_page_cleanup(&page);
    /* and t1's document is untouched */
    OK(tsr_store_doc_get(s, "t1", "items", "a", &got, ERR));
    ck_assert_int_eq(json_integer_value(json_object_get(got, "version")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(got, "name")), "A");
    json_decref(got);
    json_decref((json_t *)f.value);
    json_decref(d);
    END();
}
END_TEST

START_TEST(test_platform_list_crosses_tenants) {
    BEGIN("platform_list");
    OK(put_item(s, "t1", "a", "A", 1, "g"));
    OK(put_item(s, "t2", "a", "A", 1, "g"));
    OK(put_item(s, "t3", "b", "B", 2, "g"));
    tsr_store_page_t page;
    tsr_store_query_t q = {.limit = 2};
    size_t total = 0;
    char *cursor = NULL;
    do {
        q.cursor = cursor;
        OK(tsr_store_platform_doc_list(s, "items", &q, &page, ERR));
        total += json_array_size(page.items);
        free(cursor);
        cursor = page.next_cursor;
        page.next_cursor = NULL;
        tsr_store_page_cleanup(&page);
    } while (cursor != NULL);
    ck_assert_uint_eq(total, 3);
    END();
}
END_TEST

/* ---- list -------------------------------------------------------------------------------- */

static size_t list_all(tsr_store_t *s, const char *tenant, tsr_store_query_t q, json_t *acc) {
    char *cursor = NULL;
    size_t pages = 0;
    tsr_error_t err;
    do {
        tsr_store_page_t page;
        q.cursor = cursor;
        tsr_err_t rc = tsr_store_doc_list(s, tenant, "items", &q, &page, &err);
        ck_assert_msg(rc == TSR_OK, "list: %s", err.msg);
        json_array_extend(acc, page.items);
        free(cursor);
        cursor = page.next_cursor;
        page.next_cursor = NULL;
        tsr_store_page_cleanup(&page);
        pages++;
    } while (cursor != NULL);
    return pages;
}

START_TEST(test_list_filters_sort_and_pages_cover_each_once) {
    BEGIN("list");
    char id[16], name[16];
    for (int i = 0; i < 25; i++) {
        snprintf(id, sizeof(id), "id%02d", (i * 7) % 25);
        snprintf(name, sizeof(name), "n%02d", i);
        OK(put_item(s, "t1", id, name, i, i % 2 ? "odd" : "even"));
    }
    json_t *empty = json_object();
    OK(tsr_store_doc_create(s, "t1", "items", "nofield", empty, NULL, 0, NULL, ERR));
    json_decref(empty);
    OK(put_item(s, "t2", "other", "n99", 5, "odd"));

    /* everything, by id, pages of 4 */
    json_t *acc = json_array();
    tsr_store_query_t q = {.limit = 4};
    ck_assert_uint_eq(list_all(s, "t1", q, acc), 7);
    ck_assert_uint_eq(json_array_size(acc), 26);
    for (size_t i = 1; i < json_array_size(acc); i++) {
        const char *a = json_string_value(json_object_get(json_array_get(acc, i - 1), "id"));
        const char *b = json_string_value(json_object_get(json_array_get(acc, i), "id"));
        ck_assert_int_lt(strcmp(a, b), 0);
    }
    json_array_clear(acc);

    /* range + equality, sorted by n descending, pages of 3 */
    json_t *lo = json_integer(5), *hi = json_integer(20), *grp = json_string("odd");
    tsr_store_filter_t f[] = {
        {"n", TSR_STORE_GE, lo}, {"n", TSR_STORE_LT, hi}, {"group", TSR_STORE_EQ, grp}};
    q = (tsr_store_query_t){
        .filters = f, .n_filters = 3, .sort = "n", .descending = true, .limit = 3};
    list_all(s, "t1", q, acc);
    int want[] = {19, 17, 15, 13, 11, 9, 7, 5};
    ck_assert_uint_eq(json_array_size(acc), 8);
    for (size_t i = 0; i < 8; i++) {
        ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(acc, i), "n")), want[i]);
    }
    json_array_clear(acc);

    /* sort by a nested index, ascending, missing field first, ties broken by id */
    q = (tsr_store_query_t){.sort = "meta.rank", .limit = 5};
    list_all(s, "t1", q, acc);
    ck_assert_uint_eq(json_array_size(acc), 26);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(acc, 0), "id")), "nofield");
    json_int_t prev = -1;
    for (size_t i = 1; i < 26; i++) {
        json_t *d = json_array_get(acc, i);
        json_int_t r = json_integer_value(json_object_get(json_object_get(d, "meta"), "rank"));
        ck_assert_int_ge(r, prev);
        prev = r;
    }
    json_array_clear(acc);

    /* descending with the missing field last, one page at a time */
    q = (tsr_store_query_t){.sort = "meta.rank", .descending = true, .limit = 1};
    ck_assert_uint_eq(list_all(s, "t1", q, acc), 26);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(acc, 25), "id")), "nofield");
    json_array_clear(acc);

    /* string range on name and on id */
    json_t *n10 = json_string("n10"), *id05 = json_string("id05");
    tsr_store_filter_t f2[] = {{"name", TSR_STORE_GT, n10}, {"id", TSR_STORE_LE, id05}};
    q = (tsr_store_query_t){.filters = f2, .n_filters = 2, .sort = "name"};
    list_all(s, "t1", q, acc);
    for (size_t i = 0; i < json_array_size(acc); i++) {
        json_t *d = json_array_get(acc, i);
        ck_assert_int_gt(strcmp(json_string_value(json_object_get(d, "name")), "n10"), 0);
        ck_assert_int_le(strcmp(json_string_value(json_object_get(d, "id")), "id05"), 0);
    }
    ck_assert_uint_gt(json_array_size(acc), 0);

    json_decref(acc);
    json_decref(lo);
    json_decref(hi);
    json_decref(grp);
    json_decref(n10);
    json_decref(id05);
    END();
}
END_TEST

START_TEST(test_list_unindexed_field_einval) {
    BEGIN("list_unindexed");
    tsr_store_page_t page;
    json_t *v = json_string("x");
    tsr_store_filter_t f = {"slug", TSR_STORE_EQ, v};
    tsr_store_query_t q = {.filters = &f, .n_filters = 1};
    ck_assert_int_eq(tsr_store_doc_list(s, "t1", "items", &q, &page, &err), TSR_EINVAL);
    q = (tsr_store_query_t){.sort = "tenantId"};
    ck_assert_int_eq(tsr_store_doc_list(s, "t1", "items", &q, &page, &err), TSR_EINVAL);
    json_t *obj = json_object();
    tsr_store_filter_t f2 = {"name", TSR_STORE_EQ, obj};
    q = (tsr_store_query_t){.filters = &f2, .n_filters = 1};
    ck_assert_int_eq(tsr_store_doc_list(s, "t1", "items", &q, &page, &err), TSR_EINVAL);
    json_decref(obj);
    json_decref(v);
    END();
}
END_TEST

static tsr_err_t list_with(tsr_store_t *s, const char *tenant, const tsr_store_query_t *q0,
                           const char *cursor) {
    tsr_store_query_t q = *q0;
    tsr_store_page_t page;
    tsr_error_t err;
    q.cursor = cursor;
    tsr_err_t rc = tsr_store_doc_list(s, tenant, "items", &q, &page, &err);
    tsr_store_page_cleanup(&page);
    return rc;
}

START_TEST(test_list_forged_cursor_einval_never_crashes) {
    BEGIN("cursor_forged");
    for (int i = 0; i < 6; i++) {
        char id[8];
        snprintf(id, sizeof(id), "d%d", i);
        OK(put_item(s, "t1", id, id, i, "g"));
        OK(put_item(s, "t2", id, id, i, "g"));
    }
    tsr_store_query_t q = {.sort = "n", .limit = 2};
    tsr_store_page_t page;
    OK(tsr_store_doc_list(s, "t1", "items", &q, &page, ERR));
    ck_assert_ptr_nonnull(page.next_cursor);
    char *good = strdup(page.next_cursor);
    tsr_store_page_cleanup(&page);
    OK(list_with(s, "t1", &q, good));

    size_t n = strlen(good);
    char *bad = malloc(n + 64);
    /* every single-character change anywhere in the cursor */
    for (size_t i = 0; i < n; i++) {
        memcpy(bad, good, n + 1);
        bad[i] = bad[i] == 'A' ? 'B' : 'A';
        ck_assert_int_eq(list_with(s, "t1", &q, bad), TSR_EINVAL);
    }
    /* truncations, extensions, garbage */
    for (size_t k = 0; k < n; k += 3) {
        memcpy(bad, good, k);
        bad[k] = '\0';
        ck_assert_int_eq(list_with(s, "t1", &q, bad), TSR_EINVAL);
    }
    snprintf(bad, n + 64, "%sAA", good);
    ck_assert_int_eq(list_with(s, "t1", &q, bad), TSR_EINVAL);
    const char *junk[] = {"",      ".",         "..",
                          "a.b",   "====.====", "\xff\xfe.\x01",
                          "eyJ9.", "%00%00",    "e30.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        ck_assert_int_eq(list_with(s, "t1", &q, junk[i]), TSR_EINVAL);
    }
    /* random multi-byte mutations (any byte value) and random byte strings */
    unsigned seed = 7;
    for (int round = 0; round < 300; round++) {
        memcpy(bad, good, n + 1);
        int flips = 1 + rand_r(&seed) % 4;
        for (int k = 0; k < flips; k++) {
            size_t at = (size_t)rand_r(&seed) % n;
            char c = (char)(1 + rand_r(&seed) % 255);
            bad[at] = c == good[at] ? (char)(c == 'A' ? 'B' : 'A') : c;
        }
        ck_assert_int_eq(list_with(s, "t1", &q, bad), TSR_EINVAL);
        size_t len = (size_t)rand_r(&seed) % (n + 32);
        for (size_t k = 0; k < len; k++) {
            bad[k] = (char)(1 + rand_r(&seed) % 255);
        }
        bad[len] = '\0';
        ck_assert_int_eq(list_with(s, "t1", &q, bad), TSR_EINVAL);
    }
    char *huge = malloc(100000);
    memset(huge, 'A', 99999);
    huge[99999] = '\0';
    huge[50000] = '.';
    ck_assert_int_eq(list_with(s, "t1", &q, huge), TSR_EINVAL);
    free(huge);
    /* a genuine cursor replayed by another tenant or with another query */
    ck_assert_int_eq(list_with(s, "t2", &q, good), TSR_EINVAL);
    tsr_store_query_t q2 = {.sort = "n", .limit = 2, .descending = true};
    ck_assert_int_eq(list_with(s, "t1", &q2, good), TSR_EINVAL);
    json_t *g = json_string("g");
    tsr_store_filter_t f = {"group", TSR_STORE_EQ, g};
    tsr_store_query_t q3 = {.sort = "n", .limit = 2, .filters = &f, .n_filters = 1};
    ck_assert_int_eq(list_with(s, "t1", &q3, good), TSR_EINVAL);
    ck_assert_int_eq(tsr_store_platform_doc_list(s, "items", &q, &page, &err), TSR_OK);
    tsr_store_page_cleanup(&page);
    q.cursor = good;
    ck_assert_int_eq(tsr_store_platform_doc_list(s, "items", &q, &page, &err), TSR_EINVAL);
    json_decref(g);
    free(bad);
    free(good);
    END();
}
END_TEST

/* ---- concurrency ------------------------------------------------------------------------- */

#define INCREMENTS 150

/* One process's optimistic increments: read, add one, write if the version still matches,
 * else read again. Exit status 0 when all went in. */
static int incrementer(const char *uri) {
    tsr_store_t *s = reopen(uri);
    tsr_error_t err;
    int done = 0, conflicts = 0;
    while (done < INCREMENTS) {
        json_t *d = NULL;
        tsr_err_t rc = tsr_store_doc_get(s, "t1", "counters", "c", &d, &err);
        if (rc != TSR_OK) {
            return 2;
        }
        int64_t v = json_integer_value(json_object_get(d, "version"));
        json_object_set_new(d, "n", json_integer(json_integer_value(json_object_get(d, "n")) + 1));
        rc = tsr_store_doc_replace(s, "t1", "counters", "c", v, d, NULL, 0, NULL, &err);
        json_decref(d);
        if (rc == TSR_OK) {
            done++;
        } else if (rc == TSR_ECONFLICT || rc == TSR_EUNAVAILABLE) {
            conflicts++;
        } else {
            fprintf(stderr, "incrementer: %s\n", err.msg);
            return 3;
        }
    }
    tsr_store_destroy(s);
    return 0;
}

START_TEST(test_two_processes_optimistic_increments_lose_no_update) {
    BEGIN("concurrent_increments");
    json_t *d = json_pack("{s:i}", "n", 0);
    OK(tsr_store_doc_create(s, "t1", "counters", "c", d, NULL, 0, NULL, ERR));
    json_decref(d);
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        ck_assert_int_ge(kids[k], 0);
        if (kids[k] == 0) {
            _exit(incrementer(fx.uri));
        }
    }
    for (int k = 0; k < 2; k++) {
        int st = 0;
        ck_assert_int_eq(waitpid(kids[k], &st, 0), kids[k]);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d status %d", k, st);
    }
    OK(tsr_store_doc_get(s, "t1", "counters", "c", &d, ERR));
    ck_assert_int_eq(json_integer_value(json_object_get(d, "n")), 2 * INCREMENTS);
    ck_assert_int_eq(json_integer_value(json_object_get(d, "version")), 2 * INCREMENTS + 1);
    json_decref(d);
    END();
}
END_TEST

/* ---- outbox ------------------------------------------------------------------------------ */

START_TEST(test_outbox_rows_commit_with_the_document_only) {
    BEGIN("outbox_commit");
    tsr_store_event_t e1[] = {ev("e1", "a"), ev("e2", "a")};
    json_t *d = item("A", 1, "g");
    OK(tsr_store_doc_create(s, "t1", "items", "a", d, e1, 2, NULL, ERR));
    ck_assert_uint_eq(outbox_count(s), 2);
    /* a failed create (duplicate id, unique name) writes no event */
    tsr_store_event_t e3 = ev("e3", "a");
    ck_assert_int_eq(tsr_store_doc_create(s, "t1", "items", "a", d, &e3, 1, NULL, &err),
                     TSR_ECONFLICT);
    /* nor does a replace with a stale version, or a delete of a missing document */
    ck_assert_int_eq(tsr_store_doc_replace(s, "t1", "items", "a", 7, d, &e3, 1, NULL, &err),
                     TSR_ECONFLICT);
    ck_assert_int_eq(tsr_store_doc_del(s, "t2", "items", "a", 0, &e3, 1, &err), TSR_ENOTFOUND);
    ck_assert_uint_eq(outbox_count(s), 2);
    json_t *d2 = item("A2", 2, "g");
    /* successful replace, patch and delete each add theirs, in commit order */
    OK(tsr_store_doc_replace(s, "t1", "items", "a", 1, d2, &e3, 1, NULL, ERR));
    tsr_store_event_t e4 = ev("e4", "a"), e5 = ev("e5", "a");
    OK(tsr_store_doc_patch(s, "t1", "items", "a", 2, d2, &e4, 1, NULL, ERR));
    OK(tsr_store_doc_del(s, "t1", "items", "a", 3, &e5, 1, ERR));
    tsr_store_event_t *rows = NULL;
    size_t n = 0;
    OK(tsr_store_platform_outbox_fetch(s, 10, &rows, &n, ERR));
    ck_assert_uint_eq(n, 5);
    const char *order[] = {"e1", "e2", "e3", "e4", "e5"};
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(rows[i].id, order[i]);
        ck_assert_str_eq(rows[i].topic, "tessera.test");
        ck_assert_uint_eq(rows[i].payload_len, strlen(rows[i].payload));
    }
    const char *sent[] = {rows[0].id, rows[1].id, "unknown"};
    OK(tsr_store_platform_outbox_mark_sent(s, sent, 3, ERR));
    tsr_store_outbox_rows_free(rows, n);
    OK(tsr_store_platform_outbox_fetch(s, 10, &rows, &n, ERR));
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(rows[0].id, "e3");
    tsr_store_outbox_rows_free(rows, n);
    json_decref(d);
    json_decref(d2);
    END();
}
END_TEST

START_TEST(test_outbox_rows_roll_back_with_the_transaction) {
    BEGIN("outbox_rollback");
    if (!tsr_store_txn_is_atomic(s)) {
        END();
        return;
    }
    tsr_store_t *tx = NULL;
    json_t *d = item("A", 1, "g");
    tsr_store_event_t e1 = ev("e1", "a"), e2 = ev("e2", "b");
    OK(tsr_store_txn_begin(s, &tx, ERR));
    OK(tsr_store_doc_create(tx, "t1", "items", "a", d, &e1, 1, NULL, ERR));
    json_t *got = NULL;
    OK(tsr_store_doc_get(tx, "t1", "items", "a", &got, ERR)); /* visible inside */
    json_decref(got);
    /* a failing write inside leaves the transaction usable and adds nothing */
    ck_assert_int_eq(tsr_store_doc_create(tx, "t1", "items", "a", d, &e2, 1, NULL, &err),
                     TSR_ECONFLICT);
    tsr_store_txn_rollback(tx);
    ck_assert_int_eq(tsr_store_doc_get(s, "t1", "items", "a", &got, &err), TSR_ENOTFOUND);
    ck_assert_uint_eq(outbox_count(s), 0);

    OK(tsr_store_txn_begin(s, &tx, ERR));
    OK(tsr_store_doc_create(tx, "t1", "items", "a", d, &e1, 1, NULL, ERR));
    ck_assert_int_eq(tsr_store_doc_create(tx, "t1", "items", "b", d, &e2, 1, NULL, &err),
                     TSR_ECONFLICT);
    OK(tsr_store_txn_commit(tx, ERR));
    OK(tsr_store_doc_get(s, "t1", "items", "a", &got, ERR));
    json_decref(got);
    ck_assert_uint_eq(outbox_count(s), 1);
    json_decref(d);
    END();
}
END_TEST

/* ---- apply_once -------------------------------------------------------------------------- */

typedef struct {
    int calls;
    tsr_err_t result;
} effect_t;

static tsr_err_t effect_cb(void *opaque, tsr_store_t *txn, tsr_error_t *err) {
    effect_t *e = opaque;
    char id[16];
    e->calls++;
    snprintf(id, sizeof(id), "fx%d", e->calls);
    json_t *d = json_pack("{s:i}", "n", e->calls);
    tsr_err_t rc = tsr_store_doc_create(txn, "t1", "counters", id, d, NULL, 0, NULL, err);
    json_decref(d);
    if (rc == TSR_OK && e->result != TSR_OK) {
        rc = tsr_error_set(err, e->result, "effect failed on purpose");
    }
    return rc;
}

static size_t count_docs(tsr_store_t *s, const char *tenant, const char *coll) {
    tsr_store_page_t page;
    tsr_error_t err;
    tsr_store_query_t q = {.limit = TSR_STORE_LIST_MAX};
    ck_assert_int_eq(tsr_store_doc_list(s, tenant, coll, &q, &page, &err), TSR_OK);
    size_t n = json_array_size(page.items);
    tsr_store_page_cleanup(&page);
    return n;
}

START_TEST(test_apply_once_applies_each_event_id_once) {
    BEGIN("apply_once");
    effect_t e = {0, TSR_OK};
    bool applied = false;
    OK(tsr_store_apply_once(s, "grp", "ev1", effect_cb, &e, &applied, ERR));
    ck_assert(applied);
    OK(tsr_store_apply_once(s, "grp", "ev1", effect_cb, &e, &applied, ERR));
    ck_assert(!applied);
    ck_assert_int_eq(e.calls, 1);
    /* another group applies it again */
    OK(tsr_store_apply_once(s, "grp2", "ev1", effect_cb, &e, &applied, ERR));
    ck_assert(applied);
    ck_assert_uint_eq(count_docs(s, "t1", "counters"), 2);
    /* a failing effect records nothing (atomic backends: and its writes are undone) */
    e.result = TSR_EUNAVAILABLE;
    ck_assert_int_eq(tsr_store_apply_once(s, "grp", "ev2", effect_cb, &e, &applied, &err),
                     TSR_EUNAVAILABLE);
    ck_assert(!applied);
    if (tsr_store_txn_is_atomic(s)) {
        ck_assert_uint_eq(count_docs(s, "t1", "counters"), 2);
    }
    e.result = TSR_OK;
    OK(tsr_store_apply_once(s, "grp", "ev2", effect_cb, &e, &applied, ERR));
    ck_assert(applied);
    END();
}
END_TEST

/* ---- leases ------------------------------------------------------------------------------ */

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

START_TEST(test_lease_fencing_token_increases_on_every_new_holder) {
    BEGIN("lease");
    tsr_store_lease_t a, b, seen;
    OK(tsr_store_lease_acquire(s, "leader", "A", 60000, &a, ERR));
    ck_assert_uint_eq(a.token, 1);
    ck_assert_int_eq(tsr_store_lease_acquire(s, "leader", "B", 60000, &b, &err), TSR_ECONFLICT);
    ck_assert_str_eq(b.owner, "A");
    /* the holder renews (and re-acquires) without changing the token */
    OK(tsr_store_lease_renew(s, &a, 60000, ERR));
    ck_assert_uint_eq(a.token, 1);
    ck_assert_str_eq(a.name, "leader"); /* regression: renew once blanked the name */
    ck_assert_str_eq(a.owner, "A");
    OK(tsr_store_lease_acquire(s, "leader", "A", 60000, &a, ERR));
    ck_assert_uint_eq(a.token, 1);
    /* release: B takes it with a larger token; A's renew and release are refused/no-ops */
    OK(tsr_store_lease_release(s, &a, ERR));
    OK(tsr_store_lease_get(s, "leader", &seen, ERR));
    ck_assert_str_eq(seen.owner, "");
    OK(tsr_store_lease_acquire(s, "leader", "B", 100, &b, ERR));
    ck_assert_uint_eq(b.token, 2);
    ck_assert_int_eq(tsr_store_lease_renew(s, &a, 60000, &err), TSR_ECONFLICT);
    OK(tsr_store_lease_release(s, &a, ERR));
    OK(tsr_store_lease_get(s, "leader", &seen, ERR));
    ck_assert_str_eq(seen.owner, "B");
    /* expiry: after B's ttl passes A takes over with token 3 and B has lost it */
    sleep_ms(150);
    OK(tsr_store_lease_acquire(s, "leader", "A", 60000, &a, ERR));
    ck_assert_uint_eq(a.token, 3);
    ck_assert_int_eq(tsr_store_lease_renew(s, &b, 60000, &err), TSR_ECONFLICT);
    ck_assert_int_eq(tsr_store_lease_get(s, "never", &seen, &err), TSR_ENOTFOUND);
    /* leases are independent */
    OK(tsr_store_lease_acquire(s, "other", "B", 60000, &b, ERR));
    ck_assert_uint_eq(b.token, 1);
    END();
}
END_TEST

/* Several processes race for one lease: every holder sees a distinct, increasing token and
 * at most one holds it at a time (checked through a log of tokens written under the lease). */
START_TEST(test_lease_contended_by_processes_has_one_holder_at_a_time) {
    BEGIN("lease_processes");
    pid_t kids[3];
    for (int k = 0; k < 3; k++) {
        kids[k] = fork();
        ck_assert_int_ge(kids[k], 0);
        if (kids[k] == 0) {
            tsr_store_t *c = reopen(fx.uri);
            char owner[8];
            snprintf(owner, sizeof(owner), "p%d", k);
            int held = 0;
            for (int tries = 0; held < 5 && tries < 20000; tries++) {
                tsr_store_lease_t l;
                tsr_err_t rc = tsr_store_lease_acquire(c, "job", owner, 5000, &l, &err);
                if (rc == TSR_ECONFLICT || rc == TSR_EUNAVAILABLE) {
                    sleep_ms(1);
                    continue;
                }
                if (rc != TSR_OK) {
                    _exit(2);
                }
                /* inside the lease: record (token) as a document; a duplicate would conflict */
                char id[32];
                snprintf(id, sizeof(id), "tok%llu", (unsigned long long)l.token);
                json_t *d = json_pack("{s:s}", "owner", owner);
                rc = tsr_store_doc_create(c, "t1", "counters", id, d, NULL, 0, NULL, &err);
                json_decref(d);
                if (rc != TSR_OK) {
                    _exit(3);
                }
                if (tsr_store_lease_release(c, &l, &err) != TSR_OK) {
                    _exit(4);
                }
                held++;
            }
            _exit(held == 5 ? 0 : 5);
        }
    }
    for (int k = 0; k < 3; k++) {
        int st = 0;
        ck_assert_int_eq(waitpid(kids[k], &st, 0), kids[k]);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d status %d", k, st);
    }
    ck_assert_uint_eq(count_docs(s, "t1", "counters"), 15);
    tsr_store_lease_t l;
    OK(tsr_store_lease_get(s, "job", &l, ERR));
    ck_assert_uint_eq(l.token, 15);
    END();
}
END_TEST

/* ---- migrations -------------------------------------------------------------------------- */

/* Counts runs in the store itself, so runs in child processes are seen too. */
static tsr_err_t count_run(tsr_store_t *s, const char *which, tsr_error_t *err) {
    json_t *d = json_pack("{s:i}", "n", 1);
    tsr_err_t rc = tsr_store_doc_create(s, "ops", "counters", which, d, NULL, 0, NULL, err);
    json_decref(d);
    if (rc == TSR_ECONFLICT) {
        /* a second run is the failure under test: mark it */
        d = json_pack("{s:i}", "n", 2);
        rc = tsr_store_doc_replace(s, "ops", "counters", which, 0, d, NULL, 0, NULL, err);
        json_decref(d);
    }
    return rc;
}

/* expand v2: every item gets "label" from "name" (across tenants, via the platform list). */
static tsr_err_t expand_v2(tsr_store_t *s, const char *coll, void *opaque, tsr_error_t *err) {
    (void)opaque;
    tsr_store_page_t page;
    tsr_store_query_t q = {.limit = TSR_STORE_LIST_MAX};
    tsr_err_t rc = tsr_store_platform_doc_list(s, coll, &q, &page, err);
    for (size_t i = 0; rc == TSR_OK && i < json_array_size(page.items); i++) {
        json_t *d = json_array_get(page.items, i);
        json_t *p = json_pack("{s:O}", "label", json_object_get(d, "name"));
        rc = tsr_store_doc_patch(s, json_string_value(json_object_get(d, "tenantId")), coll,
                                 json_string_value(json_object_get(d, "id")), 0, p, NULL, 0, NULL,
                                 err);
        json_decref(p);
    }
    tsr_store_page_cleanup(&page);
    if (rc == TSR_OK) {
        rc = count_run(s, "expand2", err);
    }
    sleep_ms(100); /* widen the window in which a second process could start it too */
    return rc;
}

static tsr_err_t contract_v2(tsr_store_t *s, const char *coll, void *opaque, tsr_error_t *err) {
    (void)coll;
    (void)opaque;
    return count_run(s, "contract2", err);
}

static tsr_store_t *open_items_v2(const char *uri, unsigned contracted, tsr_error_t *err) {
    static const tsr_store_migration_t mig[] = {{2, expand_v2, contract_v2, NULL}};
    tsr_store_collection_t colls[2] = {k_colls[0], k_colls[1]};
    colls[0].version = 2;
    colls[0].contracted = contracted;
    colls[0].migrations = mig;
    colls[0].n_migrations = 1;
    tsr_store_opts_t o = {.collections = colls, .n_collections = 2};
    tsr_store_t *s = NULL;
    tsr_err_t rc = tsr_store_create(uri, &o, &s, err);
    return rc == TSR_OK ? s : NULL;
}

static int counter_n(tsr_store_t *s, const char *id) {
    json_t *d = NULL;
    if (tsr_store_doc_get(s, "ops", "counters", id, &d, NULL) != TSR_OK) {
        return 0;
    }
    int n = (int)json_integer_value(json_object_get(d, "n"));
    json_decref(d);
    return n;
}

START_TEST(test_migration_runs_once_across_restarts_and_processes) {
    BEGIN("migration");
    OK(put_item(s, "t1", "a", "A", 1, "g"));
    OK(put_item(s, "t2", "b", "B", 2, "g"));
    tsr_store_destroy(s);
    fx.s = NULL;
    /* three processes start the v2 release at once */
    pid_t kids[3];
    for (int k = 0; k < 3; k++) {
        kids[k] = fork();
        ck_assert_int_ge(kids[k], 0);
        if (kids[k] == 0) {
            tsr_store_t *c = open_items_v2(fx.uri, 0, &err);
            if (c == NULL) {
                fprintf(stderr, "child open: %s\n", err.msg);
                _exit(2);
            }
            tsr_store_destroy(c);
            _exit(0);
        }
    }
    for (int k = 0; k < 3; k++) {
        int st = 0;
        ck_assert_int_eq(waitpid(kids[k], &st, 0), kids[k]);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d status %d", k, st);
    }
    s = open_items_v2(fx.uri, 0, &err); /* a restart: nothing runs again */
    ck_assert_ptr_nonnull(s);
    fx.s = s;
    ck_assert_int_eq(counter_n(s, "expand2"), 1);
    ck_assert_int_eq(counter_n(s, "contract2"), 0);
    json_t *d = NULL;
    OK(tsr_store_doc_get(s, "t2", "items", "b", &d, ERR));
    ck_assert_str_eq(json_string_value(json_object_get(d, "label")), "B");
    json_decref(d);
    /* the next release contracts v2, once */
    tsr_store_destroy(s);
    s = fx.s = open_items_v2(fx.uri, 2, &err);
    ck_assert_ptr_nonnull(s);
    tsr_store_destroy(s);
    s = fx.s = open_items_v2(fx.uri, 2, &err);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(counter_n(s, "expand2"), 1);
    ck_assert_int_eq(counter_n(s, "contract2"), 1);
    END();
}
END_TEST

START_TEST(test_migration_new_collection_runs_nothing) {
    BEGIN("migration_new");
    tsr_store_destroy(s);
    fx.s = NULL;
    /* a fresh store declared at v2 starts there: expand_v2 must not run */
    char *uri = fx.c->new_uri(fx.c->ctx);
    s = open_items_v2(uri, 2, &err);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(counter_n(s, "expand2"), 0);
    ck_assert_int_eq(counter_n(s, "contract2"), 0);
    tsr_store_destroy(s);
    if (fx.c->drop != NULL) {
        fx.c->drop(fx.c->ctx, uri);
    }
    free(uri);
    END();
}
END_TEST

/* ---- registration ------------------------------------------------------------------------ */

static const char *const k_names[] = {"create_get",
                                      "create_conflict",
                                      "unique",
                                      "replace_version",
                                      "patch",
                                      "delete",
                                      "bad_args",
                                      "cross_tenant",
                                      "platform_list",
                                      "list",
                                      "list_unindexed",
                                      "cursor_forged",
                                      "concurrent_increments",
                                      "outbox_commit",
                                      "outbox_rollback",
                                      "apply_once",
                                      "lease",
                                      "lease_processes",
                                      "migration",
                                      "migration_new",
                                      NULL};

const char *const *tsr_store_contract_names(void) {
    return k_names;
}

void tsr_store_contract_add(Suite *suite, const tsr_store_contract_t *c) {
    if (g_n_backends == MAX_BACKENDS) {
        fprintf(stderr, "store_contract: too many backends\n");
        abort();
    }
    int i = g_n_backends++;
    g_backends[i] = c;
    static char names[MAX_BACKENDS][64]; /* check keeps the pointer for the run */
    snprintf(names[i], sizeof(names[i]), "%s-contract", c->name);
    TCase *tc = tcase_create(names[i]);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_doc_create_then_get_sets_owned_members, i, i + 1);
    tcase_add_loop_test(tc, test_doc_create_existing_id_conflicts, i, i + 1);
    tcase_add_loop_test(tc, test_doc_unique_constraint_conflicts_per_tenant_and_global, i, i + 1);
    tcase_add_loop_test(tc, test_doc_replace_version_mismatch_conflicts, i, i + 1);
    tcase_add_loop_test(tc, test_doc_patch_merges_and_bumps_version, i, i + 1);
    tcase_add_loop_test(tc, test_doc_del_checks_version_and_existence, i, i + 1);
    tcase_add_loop_test(tc, test_doc_bad_arguments_einval, i, i + 1);
    tcase_add_loop_test(tc, test_cross_tenant_access_is_missing, i, i + 1);
    tcase_add_loop_test(tc, test_platform_list_crosses_tenants, i, i + 1);
    tcase_add_loop_test(tc, test_list_filters_sort_and_pages_cover_each_once, i, i + 1);
    tcase_add_loop_test(tc, test_list_unindexed_field_einval, i, i + 1);
    tcase_add_loop_test(tc, test_list_forged_cursor_einval_never_crashes, i, i + 1);
    tcase_add_loop_test(tc, test_two_processes_optimistic_increments_lose_no_update, i, i + 1);
    tcase_add_loop_test(tc, test_outbox_rows_commit_with_the_document_only, i, i + 1);
    tcase_add_loop_test(tc, test_outbox_rows_roll_back_with_the_transaction, i, i + 1);
    tcase_add_loop_test(tc, test_apply_once_applies_each_event_id_once, i, i + 1);
    tcase_add_loop_test(tc, test_lease_fencing_token_increases_on_every_new_holder, i, i + 1);
    tcase_add_loop_test(tc, test_lease_contended_by_processes_has_one_holder_at_a_time, i, i + 1);
    tcase_add_loop_test(tc, test_migration_runs_once_across_restarts_and_processes, i, i + 1);
    tcase_add_loop_test(tc, test_migration_new_collection_runs_nothing, i, i + 1);
    suite_add_tcase(suite, tc);
}
