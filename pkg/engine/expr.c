/*
 * pkg/engine: the expression language (Qlik subset) — parser to an AST and a row-level
 * evaluator over dual values. Used by the load script (WHERE, LET, field expressions) and,
 * later, by measures. Precedence (low to high): OR, AND, NOT, comparison, &, + -, * /,
 * unary minus. Nulls propagate through arithmetic; comparisons with null are false.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine_int.h"

#define EXPR_MAX_DEPTH 64

typedef struct {
    const char *p, *end, *start;
    size_t line0, col0; /* position of start in the script */
    tsr_error_t *err;
    tsr_err_t rc;
    int depth;
} parser_t;

static tsr_engine__expr_t *node_new(tsr_engine__expr_kind_t kind) {
    tsr_engine__expr_t *e = tsr_xcalloc(1, sizeof *e);
    e->kind = kind;
    return e;
}

static void set_free(tsr_engine__set_t *set) {
    if (set == NULL)
        return;
    for (size_t i = 0; i < set->n_mods; i++) {
        for (size_t k = 0; k < set->mods[i].n_values; k++)
            free(set->mods[i].values[k]);
        free(set->mods[i].values);
        free(set->mods[i].field);
    }
    free(set->mods);
    free(set);
}

void tsr_engine__expr_free(tsr_engine__expr_t *e) {
    if (e == NULL)
        return;
    set_free(e->set);
    for (size_t i = 0; i < e->n_args; i++)
        tsr_engine__expr_free(e->args[i]);
    free(e->args);
    free(e->name);
    free(e);
}

static void add_arg(tsr_engine__expr_t *e, tsr_engine__expr_t *a) {
    e->args = tsr_xrealloc(e->args, (e->n_args + 1) * sizeof *e->args);
    e->args[e->n_args++] = a;
}

static void pos_of(const parser_t *ps, const char *at, size_t *line, size_t *col) {
    size_t l = ps->line0, c = ps->col0;
    for (const char *q = ps->start; q < at; q++) {
        if (*q == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static void fail(parser_t *ps, const char *at, const char *what) {
    if (ps->rc != TSR_OK)
        return;
    size_t line, col;
    pos_of(ps, at, &line, &col);
    ps->rc = tsr_error_set(ps->err, TSR_EINVAL, "line %zu column %zu: %s", line, col, what);
}

static void skip_ws(parser_t *ps) {
    for (;;) {
        while (ps->p < ps->end &&
               (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
            ps->p++;
        if (ps->p + 1 < ps->end && ps->p[0] == '/' && ps->p[1] == '/') {
            while (ps->p < ps->end && *ps->p != '\n')
                ps->p++;
            continue;
        }
        if (ps->p + 1 < ps->end && ps->p[0] == '/' && ps->p[1] == '*') {
            const char *q = ps->p + 2;
            while (q + 1 < ps->end && !(q[0] == '*' && q[1] == '/'))
                q++;
            ps->p = q + 1 < ps->end ? q + 2 : ps->end;
            continue;
        }
        return;
    }
}

static bool is_ident_start(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == '@' ||
           (unsigned char)c >= 0x80;
}

static bool is_ident_char(char c) {
    return is_ident_start(c) || (c >= '0' && c <= '9') || c == '.' || c == '#' || c == '$';
}

static bool kw(parser_t *ps, const char *word) {
    skip_ws(ps);
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char a = ps->p[i], b = word[i];
        if (a >= 'a' && a <= 'z')
            a = (char)(a - 32);
        if (a != b)
            return false;
    }
    if (ps->p + n < ps->end && is_ident_char(ps->p[n]))
        return false;
    ps->p += n;
    return true;
}

static bool punct(parser_t *ps, const char *s) {
    skip_ws(ps);
    size_t n = strlen(s);
    if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, s, n) == 0) {
        ps->p += n;
        return true;
    }
    return false;
}

static tsr_engine__expr_t *parse_or(parser_t *ps);

/* A name: identifier, [bracketed] or "quoted". *out is heap (free()). */
static bool parse_name(parser_t *ps, char **out) {
    skip_ws(ps);
    const char *s = ps->p;
    if (s < ps->end && (*s == '[' || *s == '"')) {
        char close = *s == '[' ? ']' : '"';
        const char *q = s + 1;
        while (q < ps->end && *q != close)
            q++;
        if (q >= ps->end) {
            fail(ps, s, "unterminated name");
            return false;
        }
        *out = tsr_xstrndup(s + 1, (size_t)(q - s - 1));
        ps->p = q + 1;
        return true;
    }
    if (s < ps->end && is_ident_start(*s)) {
        const char *q = s;
        while (q < ps->end && is_ident_char(*q))
            q++;
        *out = tsr_xstrndup(s, (size_t)(q - s));
        ps->p = q;
        return true;
    }
    return false;
}

#define SET_MAX_MODS 32
#define SET_MAX_VALUES 4096

/* A quoted set element: 'text' ('' escapes) or "search" (kept with its leading '"'). */
static char *set_value(parser_t *ps) {
    skip_ws(ps);
    const char *at = ps->p;
    if (at >= ps->end || (*at != '\'' && *at != '"')) {
        /* A bare number. */
        const char *q = at;
        while (q < ps->end && ((*q >= '0' && *q <= '9') || *q == '.' || *q == '-'))
            q++;
        if (q == at) {
            fail(ps, at, "set element expected");
            return NULL;
        }
        ps->p = q;
        return tsr_xstrndup(at, (size_t)(q - at));
    }
    char close = *at;
    tsr_buf_t b;
    tsr_buf_init(&b, TSR_ENGINE_MAX_CELL);
    if (close == '"')
        tsr_buf_append(&b, "\"", 1);
    const char *q = at + 1;
    for (;;) {
        if (q >= ps->end) {
            tsr_buf_cleanup(&b);
            fail(ps, at, "unterminated set element");
            return NULL;
        }
        if (*q == close) {
            if (q + 1 < ps->end && q[1] == close) {
                tsr_buf_append(&b, q, 1);
                q += 2;
                continue;
            }
            break;
        }
        tsr_buf_append(&b, q, 1);
        q++;
    }
    ps->p = q + 1;
    tsr_buf_append(&b, "", 0);
    size_t n;
    return tsr_buf_take(&b, &n);
}

/* {1}, {$}, {<...>}, {$<...>}, {1<...>}: at ps->p == '{'. */
static tsr_engine__set_t *parse_set(parser_t *ps) {
    const char *at = ps->p;
    ps->p++;
    tsr_engine__set_t *set = tsr_xcalloc(1, sizeof *set);
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '1') {
        set->all = true;
        ps->p++;
    } else if (ps->p < ps->end && *ps->p == '$') {
        ps->p++;
    }
    if (punct(ps, "<")) {
        do {
            char *field = NULL;
            if (set->n_mods >= SET_MAX_MODS || !parse_name(ps, &field)) {
                fail(ps, ps->p, "field name expected in set modifier");
                goto bad;
            }
            set->mods = tsr_xrealloc(set->mods, (set->n_mods + 1) * sizeof *set->mods);
            tsr_engine__set_mod_t *mod = &set->mods[set->n_mods++];
            memset(mod, 0, sizeof *mod);
            mod->field = field;
            if (!punct(ps, "=")) {
                fail(ps, ps->p, "'=' expected in set modifier");
                goto bad;
            }
            if (punct(ps, "{")) {
                do {
                    char *v = mod->n_values < SET_MAX_VALUES ? set_value(ps) : NULL;
                    if (v == NULL) {
                        fail(ps, ps->p, "set element expected");
                        goto bad;
                    }
                    mod->values = tsr_xrealloc(mod->values, (mod->n_values + 1) * sizeof(char *));
                    mod->values[mod->n_values++] = v;
                } while (punct(ps, ","));
                if (!punct(ps, "}")) {
                    fail(ps, ps->p, "'}' expected");
                    goto bad;
                }
            }
        } while (punct(ps, ","));
        if (!punct(ps, ">")) {
            fail(ps, ps->p, "'>' expected");
            goto bad;
        }
    }
    if (!punct(ps, "}")) {
        fail(ps, ps->p, "'}' expected after set expression");
        goto bad;
    }
    return set;
bad:
    (void)at;
    set_free(set);
    return NULL;
}

static tsr_engine__expr_t *parse_primary(parser_t *ps) {
    skip_ws(ps);
    const char *at = ps->p;
    if (at >= ps->end) {
        fail(ps, at, "expression expected");
        return NULL;
    }
    if (*at == '(') {
        ps->p++;
        tsr_engine__expr_t *e = parse_or(ps);
        if (e != NULL && !punct(ps, ")")) {
            fail(ps, ps->p, "')' expected");
            tsr_engine__expr_free(e);
            return NULL;
        }
        return e;
    }
    if (*at == '\'') {
        tsr_buf_t b;
        tsr_buf_init(&b, TSR_ENGINE_MAX_CELL);
        const char *q = at + 1;
        for (;;) {
            if (q >= ps->end) {
                tsr_buf_cleanup(&b);
                fail(ps, at, "unterminated string");
                return NULL;
            }
            if (*q == '\'') {
                if (q + 1 < ps->end && q[1] == '\'') {
                    tsr_buf_append(&b, "'", 1);
                    q += 2;
                    continue;
                }
                break;
            }
            tsr_buf_append(&b, q, 1);
            q++;
        }
        ps->p = q + 1;
        tsr_engine__expr_t *e = node_new(TSR_ENGINE__E_STR);
        size_t n;
        e->name = tsr_buf_take(&b, &n);
        e->name_len = n;
        return e;
    }
    if ((*at >= '0' && *at <= '9') || *at == '.') {
        const char *q = at;
        while (q < ps->end && ((*q >= '0' && *q <= '9') || *q == '.'))
            q++;
        double v;
        if (!tsr_engine__parse_num(at, (size_t)(q - at), &v)) {
            fail(ps, at, "bad number");
            return NULL;
        }
        ps->p = q;
        tsr_engine__expr_t *e = node_new(TSR_ENGINE__E_NUM);
        e->num = v;
        return e;
    }
    char *name = NULL;
    if (!parse_name(ps, &name)) {
        fail(ps, at, "expression expected");
        return NULL;
    }
    if (*at != '[' && *at != '"' && punct(ps, "(")) {
        tsr_engine__expr_t *e = node_new(TSR_ENGINE__E_CALL);
        e->name = name;
        e->name_len = strlen(name);
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == '{') {
            e->set = parse_set(ps);
            if (e->set == NULL) {
                tsr_engine__expr_free(e);
                return NULL;
            }
        }
        e->distinct = kw(ps, "DISTINCT");
        e->total = kw(ps, "TOTAL");
        if (!punct(ps, ")")) {
            do {
                tsr_engine__expr_t *a = parse_or(ps);
                if (a == NULL) {
                    tsr_engine__expr_free(e);
                    return NULL;
                }
                add_arg(e, a);
            } while (punct(ps, ","));
            if (!punct(ps, ")")) {
                fail(ps, ps->p, "')' expected");
                tsr_engine__expr_free(e);
                return NULL;
            }
        }
        if (tsr_engine__expr_bind_func(e) != TSR_OK) {
            fail(ps, at, "unknown function or wrong argument count");
            tsr_engine__expr_free(e);
            return NULL;
        }
        return e;
    }
    tsr_engine__expr_t *e = node_new(TSR_ENGINE__E_FIELD);
    e->name = name;
    e->name_len = strlen(name);
    return e;
}

static tsr_engine__expr_t *binary(tsr_engine__expr_kind_t k, tsr_engine__expr_t *a,
                                  tsr_engine__expr_t *b) {
    tsr_engine__expr_t *e = node_new(k);
    add_arg(e, a);
    add_arg(e, b);
    return e;
}

static tsr_engine__expr_t *parse_unary(parser_t *ps) {
    if (++ps->depth > EXPR_MAX_DEPTH) {
        fail(ps, ps->p, "expression nested too deeply");
        return NULL;
    }
    tsr_engine__expr_t *e;
    if (punct(ps, "-")) {
        tsr_engine__expr_t *a = parse_unary(ps);
        if (a == NULL) {
            e = NULL;
        } else {
            e = node_new(TSR_ENGINE__E_NEG);
            add_arg(e, a);
        }
    } else {
        e = parse_primary(ps);
    }
    ps->depth--;
    return e;
}

typedef tsr_engine__expr_t *(*level_fn)(parser_t *);

static tsr_engine__expr_t *parse_mul(parser_t *ps) {
    tsr_engine__expr_t *a = parse_unary(ps);
    while (a != NULL) {
        tsr_engine__expr_kind_t k;
        if (punct(ps, "*"))
            k = TSR_ENGINE__E_MUL;
        else if (punct(ps, "/"))
            k = TSR_ENGINE__E_DIV;
        else
            break;
        tsr_engine__expr_t *b = parse_unary(ps);
        if (b == NULL) {
            tsr_engine__expr_free(a);
            return NULL;
        }
        a = binary(k, a, b);
    }
    return a;
}

static tsr_engine__expr_t *parse_add(parser_t *ps) {
    tsr_engine__expr_t *a = parse_mul(ps);
    while (a != NULL) {
        tsr_engine__expr_kind_t k;
        if (punct(ps, "+"))
            k = TSR_ENGINE__E_ADD;
        else if (punct(ps, "-"))
            k = TSR_ENGINE__E_SUB;
        else
            break;
        tsr_engine__expr_t *b = parse_mul(ps);
        if (b == NULL) {
            tsr_engine__expr_free(a);
            return NULL;
        }
        a = binary(k, a, b);
    }
    return a;
}

static tsr_engine__expr_t *parse_cat(parser_t *ps) {
    tsr_engine__expr_t *a = parse_add(ps);
    while (a != NULL && punct(ps, "&")) {
        tsr_engine__expr_t *b = parse_add(ps);
        if (b == NULL) {
            tsr_engine__expr_free(a);
            return NULL;
        }
        a = binary(TSR_ENGINE__E_CAT, a, b);
    }
    return a;
}

static tsr_engine__expr_t *parse_cmp(parser_t *ps) {
    tsr_engine__expr_t *a = parse_cat(ps);
    if (a == NULL)
        return NULL;
    tsr_engine__expr_kind_t k;
    if (punct(ps, "<>"))
        k = TSR_ENGINE__E_NE;
    else if (punct(ps, "<="))
        k = TSR_ENGINE__E_LE;
    else if (punct(ps, ">="))
        k = TSR_ENGINE__E_GE;
    else if (punct(ps, "<"))
        k = TSR_ENGINE__E_LT;
    else if (punct(ps, ">"))
        k = TSR_ENGINE__E_GT;
    else if (punct(ps, "="))
        k = TSR_ENGINE__E_EQ;
    else
        return a;
    tsr_engine__expr_t *b = parse_cat(ps);
    if (b == NULL) {
        tsr_engine__expr_free(a);
        return NULL;
    }
    return binary(k, a, b);
}

static tsr_engine__expr_t *parse_not(parser_t *ps) {
    if (kw(ps, "NOT")) {
        if (++ps->depth > EXPR_MAX_DEPTH) {
            fail(ps, ps->p, "expression nested too deeply");
            return NULL;
        }
        tsr_engine__expr_t *a = parse_not(ps);
        ps->depth--;
        if (a == NULL)
            return NULL;
        tsr_engine__expr_t *e = node_new(TSR_ENGINE__E_NOT);
        add_arg(e, a);
        return e;
    }
    return parse_cmp(ps);
}

static tsr_engine__expr_t *parse_and(parser_t *ps) {
    tsr_engine__expr_t *a = parse_not(ps);
    while (a != NULL && kw(ps, "AND")) {
        tsr_engine__expr_t *b = parse_not(ps);
        if (b == NULL) {
            tsr_engine__expr_free(a);
            return NULL;
        }
        a = binary(TSR_ENGINE__E_AND, a, b);
    }
    return a;
}

static tsr_engine__expr_t *parse_or(parser_t *ps) {
    if (++ps->depth > EXPR_MAX_DEPTH) {
        fail(ps, ps->p, "expression nested too deeply");
        return NULL;
    }
    tsr_engine__expr_t *a = parse_and(ps);
    while (a != NULL && kw(ps, "OR")) {
        tsr_engine__expr_t *b = parse_and(ps);
        if (b == NULL) {
            tsr_engine__expr_free(a);
            a = NULL;
            break;
        }
        a = binary(TSR_ENGINE__E_OR, a, b);
    }
    ps->depth--;
    return a;
}

tsr_err_t tsr_engine__expr_parse(const char *text, size_t len, size_t line, size_t col,
                                 const char **end, tsr_engine__expr_t **out, tsr_error_t *err) {
    parser_t ps = {
        .p = text, .end = text + len, .start = text, .line0 = line, .col0 = col, .err = err};
    tsr_engine__expr_t *e = parse_or(&ps);
    if (ps.rc != TSR_OK || e == NULL) {
        tsr_engine__expr_free(e);
        if (ps.rc == TSR_OK)
            fail(&ps, ps.p, "expression expected");
        return ps.rc;
    }
    skip_ws(&ps);
    if (end != NULL) {
        *end = ps.p;
    } else if (ps.p != ps.end) {
        fail(&ps, ps.p, "unexpected text after expression");
        tsr_engine__expr_free(e);
        return ps.rc;
    }
    *out = e;
    return TSR_OK;
}

/* ---- functions ---- */

typedef struct {
    const char *name;
    tsr_engine__func_t id;
    size_t min_args, max_args;
} func_def_t;

static const func_def_t funcs[] = {
    {"IF", TSR_ENGINE__F_IF, 2, 3},
    {"YEAR", TSR_ENGINE__F_YEAR, 1, 1},
    {"MONTH", TSR_ENGINE__F_MONTH, 1, 1},
    {"DAY", TSR_ENGINE__F_DAY, 1, 1},
    {"LEN", TSR_ENGINE__F_LEN, 1, 1},
    {"UPPER", TSR_ENGINE__F_UPPER, 1, 1},
    {"LOWER", TSR_ENGINE__F_LOWER, 1, 1},
    {"ALT", TSR_ENGINE__F_ALT, 1, 16},
    {"NULL", TSR_ENGINE__F_NULL, 0, 0},
    {"MAKEDATE", TSR_ENGINE__F_MAKEDATE, 1, 3},
    {"ISNULL", TSR_ENGINE__F_ISNULL, 1, 1},
    {"FLOOR", TSR_ENGINE__F_FLOOR, 1, 1},
    {"SUM", TSR_ENGINE__F_SUM, 1, 1},
    {"COUNT", TSR_ENGINE__F_COUNT, 1, 1},
    {"AVG", TSR_ENGINE__F_AVG, 1, 1},
    {"MIN", TSR_ENGINE__F_MIN, 1, 1},
    {"MAX", TSR_ENGINE__F_MAX, 1, 1},
    {"ONLY", TSR_ENGINE__F_ONLY, 1, 1},
    {"APPLYMAP", TSR_ENGINE__F_APPLYMAP, 2, 3},
    {"DATE", TSR_ENGINE__F_DATE, 1, 2},
    {"DATE#", TSR_ENGINE__F_DATEP, 1, 2},
    {"NUM", TSR_ENGINE__F_NUM, 1, 2},
    {"TEXT", TSR_ENGINE__F_TEXT, 1, 1},
    {"LEFT", TSR_ENGINE__F_LEFT, 2, 2},
    {"RIGHT", TSR_ENGINE__F_RIGHT, 2, 2},
    {"MID", TSR_ENGINE__F_MID, 2, 3},
    {"TRIM", TSR_ENGINE__F_TRIM, 1, 1},
    {"ROUND", TSR_ENGINE__F_ROUND, 1, 2},
    {"CEIL", TSR_ENGINE__F_CEIL, 1, 1},
    {"FABS", TSR_ENGINE__F_FABS, 1, 1},
    {"ABS", TSR_ENGINE__F_FABS, 1, 1},
    {"MOD", TSR_ENGINE__F_MOD, 2, 2},
};

tsr_err_t tsr_engine__expr_bind_func(tsr_engine__expr_t *e) {
    for (size_t i = 0; i < sizeof funcs / sizeof funcs[0]; i++) {
        if (tsr_str_case_eq_cstr(tsr_str_n(e->name, e->name_len), funcs[i].name)) {
            if (e->n_args < funcs[i].min_args || e->n_args > funcs[i].max_args)
                return TSR_EINVAL;
            e->func = funcs[i].id;
            if (e->distinct && e->func != TSR_ENGINE__F_COUNT)
                return TSR_EINVAL;
            if ((e->set != NULL || e->total) && e->func < TSR_ENGINE__F_SUM)
                return TSR_EINVAL; /* only aggregations take a set or TOTAL */
            return TSR_OK;
        }
    }
    return TSR_EINVAL;
}

/* ---- evaluation ---- */

static tsr_engine__val_t v_null(void) {
    return (tsr_engine__val_t){.kind = TSR_ENGINE__V_NULL};
}

static tsr_engine__val_t v_num(double d) {
    if (isnan(d) || isinf(d))
        return v_null();
    return (tsr_engine__val_t){.kind = TSR_ENGINE__V_NUM, .num = d};
}

/* Store text in the row scratch; NULL value when the scratch is full. */
static tsr_engine__val_t v_text(tsr_engine__eval_t *ev, const char *p, size_t n) {
    if (ev->scratch_len + n > sizeof ev->scratch)
        return v_null();
    char *dst = ev->scratch + ev->scratch_len;
    if (n > 0)
        memcpy(dst, p, n);
    ev->scratch_len += n;
    return (tsr_engine__val_t){.kind = TSR_ENGINE__V_TEXT, .text = dst, .len = n};
}

/* Number of a value: its number, or its text read as a number; NaN otherwise. */
static double as_num(tsr_engine__val_t v) {
    if (v.kind == TSR_ENGINE__V_NUM || v.kind == TSR_ENGINE__V_DUAL)
        return v.num;
    double d;
    if (v.kind == TSR_ENGINE__V_TEXT && tsr_engine__parse_num(v.text, v.len, &d))
        return d;
    return NAN;
}

/* Text of a value, formatted into buf for a pure number. */
static size_t as_text(tsr_engine__val_t v, char *buf, size_t cap, const char **p) {
    if (v.kind == TSR_ENGINE__V_TEXT || v.kind == TSR_ENGINE__V_DUAL) {
        *p = v.text;
        return v.len;
    }
    if (v.kind == TSR_ENGINE__V_NULL) {
        *p = "";
        return 0;
    }
    int n = snprintf(buf, cap, "%.15g", v.num);
    *p = buf;
    return n < 0 ? 0 : (size_t)n;
}

static bool truthy(tsr_engine__val_t v) {
    double d = as_num(v);
    return !isnan(d) && d != 0;
}

static int cmp_vals(tsr_engine__val_t a, tsr_engine__val_t b) {
    double x = as_num(a), y = as_num(b);
    if (!isnan(x) && !isnan(y))
        return x < y ? -1 : x > y;
    char ba[32], bb[32];
    const char *pa, *pb;
    size_t na = as_text(a, ba, sizeof ba, &pa), nb = as_text(b, bb, sizeof bb, &pb);
    int c = memcmp(pa, pb, na < nb ? na : nb);
    if (c != 0)
        return c < 0 ? -1 : 1;
    return na < nb ? -1 : na > nb;
}

static void civil_from_serial(double serial, int64_t *y, int64_t *m, int64_t *d) {
    int64_t z = (int64_t)floor(serial) - 25569 + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2);
}

/* Parse text by a date format of YYYY, MM, M, DD, D and literal characters. */
static bool parse_date_fmt(const char *p, size_t n, const char *f, size_t fn, double *out) {
    int64_t y = -1, m = 1, d = 1;
    size_t i = 0, j = 0;
    while (j < fn) {
        char c = f[j];
        size_t run = 1;
        while (j + run < fn && f[j + run] == c)
            run++;
        if (c == 'Y' || c == 'M' || c == 'D') {
            size_t max = c == 'Y' ? 4 : 2, k = 0;
            int64_t v = 0;
            while (i < n && k < max && p[i] >= '0' && p[i] <= '9') {
                v = v * 10 + (p[i] - '0');
                i++;
                k++;
            }
            if (k == 0 || (run >= 2 && c != 'Y' && k != 2) || (c == 'Y' && run == 4 && k != 4))
                return false;
            if (c == 'Y')
                y = run == 2 ? 2000 + v : v;
            else if (c == 'M')
                m = v;
            else
                d = v;
        } else {
            for (size_t k = 0; k < run; k++, i++) {
                if (i >= n || p[i] != c)
                    return false;
            }
        }
        j += run;
    }
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (i != n || y < 0 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (m == 2 && d == 29 && !leap)
        return false;
    *out = (double)tsr_engine__serial_day(y, m, d);
    return true;
}

static tsr_engine__val_t eval_call(tsr_engine__eval_t *ev, const tsr_engine__expr_t *e) {
    switch (e->func) {
    case TSR_ENGINE__F_SUM:
    case TSR_ENGINE__F_COUNT:
    case TSR_ENGINE__F_AVG:
    case TSR_ENGINE__F_MIN:
    case TSR_ENGINE__F_MAX:
    case TSR_ENGINE__F_ONLY:
        return ev->agg_cb != NULL ? ev->agg_cb(ev->agg_ctx, e) : v_null();
    case TSR_ENGINE__F_APPLYMAP: {
        tsr_engine__val_t nm = tsr_engine__expr_eval(ev, e->args[0]);
        tsr_engine__val_t key = tsr_engine__expr_eval(ev, e->args[1]);
        bool found = false;
        if (ev->map_cb != NULL && nm.kind != TSR_ENGINE__V_NULL && nm.kind != TSR_ENGINE__V_NUM) {
            tsr_engine__val_t v = ev->map_cb(ev->map_ctx, nm.text, nm.len, key, &found);
            if (found)
                return v;
        }
        return e->n_args > 2 ? tsr_engine__expr_eval(ev, e->args[2]) : key;
    }
    case TSR_ENGINE__F_DATE: {
        double x = as_num(tsr_engine__expr_eval(ev, e->args[0]));
        if (isnan(x) || fabs(x) > 1e7)
            return v_null();
        int64_t y, m, d;
        civil_from_serial(x, &y, &m, &d);
        char buf[24];
        int n = snprintf(buf, sizeof buf, "%04lld-%02lld-%02lld", (long long)y, (long long)m,
                         (long long)d);
        tsr_engine__val_t v = v_text(ev, buf, n < 0 ? 0 : (size_t)n);
        if (v.kind == TSR_ENGINE__V_TEXT) {
            v.kind = TSR_ENGINE__V_DUAL;
            v.num = floor(x);
        }
        return v;
    }
    case TSR_ENGINE__F_DATEP: {
        tsr_engine__val_t t = tsr_engine__expr_eval(ev, e->args[0]);
        if (t.kind == TSR_ENGINE__V_NULL)
            return v_null();
        char buf[32], fb[32];
        const char *p, *fp = "YYYY-MM-DD";
        size_t n = as_text(t, buf, sizeof buf, &p), fn = 10;
        if (e->n_args > 1) {
            tsr_engine__val_t f = tsr_engine__expr_eval(ev, e->args[1]);
            fn = as_text(f, fb, sizeof fb, &fp);
        }
        double serial;
        if (!parse_date_fmt(p, n, fp, fn, &serial))
            return v_null();
        tsr_engine__val_t v = v_text(ev, p, n);
        if (v.kind == TSR_ENGINE__V_TEXT) {
            v.kind = TSR_ENGINE__V_DUAL;
            v.num = serial;
        }
        return v;
    }
    case TSR_ENGINE__F_NUM: {
        double x = as_num(tsr_engine__expr_eval(ev, e->args[0]));
        return isnan(x) ? v_null() : v_num(x);
    }
    case TSR_ENGINE__F_TEXT: {
        tsr_engine__val_t v = tsr_engine__expr_eval(ev, e->args[0]);
        if (v.kind == TSR_ENGINE__V_NULL)
            return v;
        char buf[32];
        const char *p;
        size_t n = as_text(v, buf, sizeof buf, &p);
        return v_text(ev, p, n);
    }
    case TSR_ENGINE__F_LEFT:
    case TSR_ENGINE__F_RIGHT:
    case TSR_ENGINE__F_MID:
    case TSR_ENGINE__F_TRIM: {
        tsr_engine__val_t v = tsr_engine__expr_eval(ev, e->args[0]);
        if (v.kind == TSR_ENGINE__V_NULL)
            return v;
        char buf[32];
        const char *p;
        size_t n = as_text(v, buf, sizeof buf, &p);
        if (e->func == TSR_ENGINE__F_TRIM) {
            tsr_str_t t = tsr_str_trim(tsr_str_n(p, n));
            return v_text(ev, t.p, t.n);
        }
        /* Character positions count UTF-8 code points. */
        double a = as_num(tsr_engine__expr_eval(ev, e->args[1]));
        double b = e->n_args > 2 ? as_num(tsr_engine__expr_eval(ev, e->args[2])) : 1e18;
        if (isnan(a) || isnan(b))
            return v_null();
        size_t chars = 0;
        for (size_t i = 0; i < n; i++)
            chars += ((unsigned char)p[i] & 0xC0) != 0x80;
        double from, count;
        if (e->func == TSR_ENGINE__F_LEFT) {
            from = 0;
            count = a;
        } else if (e->func == TSR_ENGINE__F_RIGHT) {
            from = (double)chars - a;
            count = a;
        } else {
            from = a - 1;
            count = b;
        }
        if (from < 0) {
            count += from;
            from = 0;
        }
        if (count <= 0 || from >= (double)chars)
            return v_text(ev, "", 0);
        size_t c0 = (size_t)from,
               c1 = count >= (double)chars ? chars : (size_t)from + (size_t)count;
        size_t b0 = n, b1 = n, ci = 0;
        for (size_t i = 0; i <= n; i++) {
            if (i == n || ((unsigned char)p[i] & 0xC0) != 0x80) {
                if (ci == c0 && b0 == n)
                    b0 = i;
                if (ci == c1) {
                    b1 = i;
                    break;
                }
                ci++;
            }
        }
        if (b0 > b1)
            b0 = b1;
        return v_text(ev, p + b0, b1 - b0);
    }
    case TSR_ENGINE__F_ROUND: {
        double x = as_num(tsr_engine__expr_eval(ev, e->args[0]));
        double step = e->n_args > 1 ? as_num(tsr_engine__expr_eval(ev, e->args[1])) : 1;
        if (isnan(x) || isnan(step) || step == 0)
            return v_null();
        return v_num(floor(x / step + 0.5) * step);
    }
    case TSR_ENGINE__F_CEIL: {
        double x = as_num(tsr_engine__expr_eval(ev, e->args[0]));
        return isnan(x) ? v_null() : v_num(ceil(x));
    }
    case TSR_ENGINE__F_FABS: {
        double x = as_num(tsr_engine__expr_eval(ev, e->args[0]));
        return isnan(x) ? v_null() : v_num(fabs(x));
    }
    case TSR_ENGINE__F_MOD: {
        double x = as_num(tsr_engine__expr_eval(ev, e->args[0]));
        double y = as_num(tsr_engine__expr_eval(ev, e->args[1]));
        if (isnan(x) || isnan(y) || y == 0)
            return v_null();
        double r = fmod(x, y);
        return v_num(r < 0 ? r + fabs(y) : r);
    }
    case TSR_ENGINE__F_IF: {
        tsr_engine__val_t c = tsr_engine__expr_eval(ev, e->args[0]);
        if (truthy(c))
            return tsr_engine__expr_eval(ev, e->args[1]);
        return e->n_args > 2 ? tsr_engine__expr_eval(ev, e->args[2]) : v_null();
    }
    case TSR_ENGINE__F_ALT:
        for (size_t i = 0; i < e->n_args; i++) {
            tsr_engine__val_t v = tsr_engine__expr_eval(ev, e->args[i]);
            if (v.kind == TSR_ENGINE__V_NUM || v.kind == TSR_ENGINE__V_DUAL ||
                (i + 1 == e->n_args && v.kind != TSR_ENGINE__V_NULL))
                return v;
        }
        return v_null();
    case TSR_ENGINE__F_NULL:
        return v_null();
    case TSR_ENGINE__F_ISNULL:
        return v_num(tsr_engine__expr_eval(ev, e->args[0]).kind == TSR_ENGINE__V_NULL ? -1 : 0);
    case TSR_ENGINE__F_YEAR:
    case TSR_ENGINE__F_MONTH:
    case TSR_ENGINE__F_DAY: {
        double s = as_num(tsr_engine__expr_eval(ev, e->args[0]));
        if (isnan(s))
            return v_null();
        int64_t y, m, d;
        civil_from_serial(s, &y, &m, &d);
        if (e->func == TSR_ENGINE__F_YEAR)
            return v_num((double)y);
        if (e->func == TSR_ENGINE__F_DAY)
            return v_num((double)d);
        /* Month is a dual: 'Jan' ... with number 1..12 (default MonthNames). */
        static const char *const names[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        tsr_engine__val_t v = v_text(ev, names[m - 1], 3);
        if (v.kind == TSR_ENGINE__V_TEXT) {
            v.kind = TSR_ENGINE__V_DUAL;
            v.num = (double)m;
        }
        return v;
    }
    case TSR_ENGINE__F_MAKEDATE: {
        double y = as_num(tsr_engine__expr_eval(ev, e->args[0]));
        double m = e->n_args > 1 ? as_num(tsr_engine__expr_eval(ev, e->args[1])) : 1;
        double d = e->n_args > 2 ? as_num(tsr_engine__expr_eval(ev, e->args[2])) : 1;
        if (isnan(y) || isnan(m) || isnan(d) || m < 1 || m > 12 || d < 1 || d > 31 ||
            fabs(y) > 100000)
            return v_null();
        int64_t serial = tsr_engine__serial_day((int64_t)y, (int64_t)m, (int64_t)d);
        char buf[16];
        int n = snprintf(buf, sizeof buf, "%04lld-%02lld-%02lld", (long long)y, (long long)m,
                         (long long)d);
        tsr_engine__val_t v = v_text(ev, buf, n < 0 ? 0 : (size_t)n);
        if (v.kind == TSR_ENGINE__V_TEXT) {
            v.kind = TSR_ENGINE__V_DUAL;
            v.num = (double)serial;
        }
        return v;
    }
    case TSR_ENGINE__F_FLOOR: {
        double x = as_num(tsr_engine__expr_eval(ev, e->args[0]));
        return isnan(x) ? v_null() : v_num(floor(x));
    }
    case TSR_ENGINE__F_LEN: {
        tsr_engine__val_t v = tsr_engine__expr_eval(ev, e->args[0]);
        if (v.kind == TSR_ENGINE__V_NULL)
            return v_null();
        char buf[32];
        const char *p;
        size_t n = as_text(v, buf, sizeof buf, &p), chars = 0;
        for (size_t i = 0; i < n; i++)
            chars += ((unsigned char)p[i] & 0xC0) != 0x80;
        return v_num((double)chars);
    }
    case TSR_ENGINE__F_UPPER:
    case TSR_ENGINE__F_LOWER: {
        tsr_engine__val_t v = tsr_engine__expr_eval(ev, e->args[0]);
        if (v.kind == TSR_ENGINE__V_NULL)
            return v_null();
        char buf[32];
        const char *p;
        size_t n = as_text(v, buf, sizeof buf, &p);
        tsr_engine__val_t r = v_text(ev, p, n);
        char *w = (char *)r.text;
        for (size_t i = 0; r.kind == TSR_ENGINE__V_TEXT && i < n; i++) {
            if (e->func == TSR_ENGINE__F_UPPER && w[i] >= 'a' && w[i] <= 'z')
                w[i] = (char)(w[i] - 32);
            else if (e->func == TSR_ENGINE__F_LOWER && w[i] >= 'A' && w[i] <= 'Z')
                w[i] = (char)(w[i] + 32);
        }
        return r;
    }
    }
    return v_null();
}

tsr_engine__val_t tsr_engine__expr_eval(tsr_engine__eval_t *ev, const tsr_engine__expr_t *e) {
    switch (e->kind) {
    case TSR_ENGINE__E_NUM:
        return v_num(e->num);
    case TSR_ENGINE__E_STR:
        return (tsr_engine__val_t){.kind = TSR_ENGINE__V_TEXT, .text = e->name, .len = e->name_len};
    case TSR_ENGINE__E_FIELD:
        return ev->field_cb != NULL ? ev->field_cb(ev->field_ctx, e) : v_null();
    case TSR_ENGINE__E_CALL:
        return eval_call(ev, e);
    case TSR_ENGINE__E_NEG: {
        double x = as_num(tsr_engine__expr_eval(ev, e->args[0]));
        return isnan(x) ? v_null() : v_num(-x);
    }
    case TSR_ENGINE__E_NOT:
        return v_num(truthy(tsr_engine__expr_eval(ev, e->args[0])) ? 0 : -1);
    case TSR_ENGINE__E_AND:
        return v_num(truthy(tsr_engine__expr_eval(ev, e->args[0])) &&
                             truthy(tsr_engine__expr_eval(ev, e->args[1]))
                         ? -1
                         : 0);
    case TSR_ENGINE__E_OR:
        return v_num(truthy(tsr_engine__expr_eval(ev, e->args[0])) ||
                             truthy(tsr_engine__expr_eval(ev, e->args[1]))
                         ? -1
                         : 0);
    case TSR_ENGINE__E_CAT: {
        tsr_engine__val_t a = tsr_engine__expr_eval(ev, e->args[0]);
        tsr_engine__val_t b = tsr_engine__expr_eval(ev, e->args[1]);
        char ba[32], bb[32];
        const char *pa, *pb;
        size_t na = as_text(a, ba, sizeof ba, &pa), nb = as_text(b, bb, sizeof bb, &pb);
        tsr_engine__val_t r = v_text(ev, pa, na);
        if (r.kind == TSR_ENGINE__V_NULL)
            return r;
        tsr_engine__val_t r2 = v_text(ev, pb, nb);
        if (r2.kind == TSR_ENGINE__V_NULL)
            return r2;
        r.len = na + nb;
        return r;
    }
    default:
        break;
    }
    /* Binary arithmetic and comparisons. */
    tsr_engine__val_t a = tsr_engine__expr_eval(ev, e->args[0]);
    tsr_engine__val_t b = tsr_engine__expr_eval(ev, e->args[1]);
    if (e->kind >= TSR_ENGINE__E_EQ) {
        if (a.kind == TSR_ENGINE__V_NULL || b.kind == TSR_ENGINE__V_NULL)
            return v_num(0);
        int c = cmp_vals(a, b);
        bool r = false;
        switch (e->kind) {
        case TSR_ENGINE__E_EQ:
            r = c == 0;
            break;
        case TSR_ENGINE__E_NE:
            r = c != 0;
            break;
        case TSR_ENGINE__E_LT:
            r = c < 0;
            break;
        case TSR_ENGINE__E_LE:
            r = c <= 0;
            break;
        case TSR_ENGINE__E_GT:
            r = c > 0;
            break;
        default:
            r = c >= 0;
            break;
        }
        return v_num(r ? -1 : 0);
    }
    double x = as_num(a), y = as_num(b);
    if (isnan(x) || isnan(y))
        return v_null();
    switch (e->kind) {
    case TSR_ENGINE__E_ADD:
        return v_num(x + y);
    case TSR_ENGINE__E_SUB:
        return v_num(x - y);
    case TSR_ENGINE__E_MUL:
        return v_num(x * y);
    default:
        return y == 0 ? v_null() : v_num(x / y); /* division by zero is null, as Qlik */
    }
}
