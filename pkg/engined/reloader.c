/*
 * The reloader role's job: run an app's load script with the app tenant's data files and
 * write the new model as a version fenced by the reload run's token. Data files: every
 * lib://<connection>/<name> the script names is fetched from spaces (GET
 * /internal/v1/data-files/content in the app's space, or the owner's personal space, as a
 * TenantAdmin of the app's tenant: the reload service already asked spaces for `reload` on
 * the app) into a run folder of its own; a name spaces does not have (404), or every name when
 * spaces is off, is taken from the engine's data folder <data_root>/<tenant>/<name>.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "engined_int.h"
#include "log.h"

#define DATAFILE_MAX (INT64_C(1) << 32) /* bytes of one data file fetched from spaces */
#define NAME_MAX_LEN 200
#define RELOADER_USER "tessera-reloader"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void) {
    (void)curl_global_init(CURL_GLOBAL_DEFAULT);
}

typedef struct {
    FILE *f;        /* file sink, or */
    tsr_buf_t *buf; /* memory sink */
    int64_t n;
} sink_t;

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    sink_t *s = ud;
    size_t len = size * n;
    s->n += (int64_t)len;
    if (s->n > DATAFILE_MAX) {
        return 0;
    }
    if (s->f != NULL) {
        return fwrite(p, 1, len, s->f);
    }
    return tsr_buf_append(s->buf, p, len) == TSR_OK ? len : 0;
}

/* GET spaces_url+path_query as user of tenant (TenantAdmin) into sink; *status the HTTP
 * status. With a token source the call carries a service token naming that principal (spaces
 * believes only verified tokens); the headers alone serve a spaces that trusts headers. */
static tsr_err_t spaces_get(tsr_engined_t *e, const char *path_query, const char *tenant,
                            const char *user, sink_t *sink, long *status, tsr_error_t *err) {
    char *token = NULL;
    if (e->token_fn != NULL) {
        tsr_err_t trc = e->token_fn(e->token_ud, tenant, user, "TenantAdmin", NULL, &token, err);
        if (trc != TSR_OK) {
            return trc;
        }
    }
    pthread_once(&curl_once, curl_init);
    CURL *c = curl_easy_init();
    if (c == NULL) {
        free(token);
        return tsr_error_set(err, TSR_EUNAVAILABLE, "curl init failed");
    }
    char url[2048], h1[256], h2[256];
    snprintf(url, sizeof url, "%s%s", e->spaces_url, path_query);
    snprintf(h1, sizeof h1, "X-Tsr-Tenant-Id: %s", tenant);
    snprintf(h2, sizeof h2, "X-Tsr-User-Id: %s", user);
    struct curl_slist *hdrs = curl_slist_append(NULL, h1);
    hdrs = curl_slist_append(hdrs, h2);
    hdrs = curl_slist_append(hdrs, "X-Tsr-Roles: TenantAdmin");
    if (token != NULL) {
        tsr_buf_t th;
        tsr_buf_init(&th, 0);
        tsr_buf_appendf(&th, "X-Tsr-Token: %s", token);
        hdrs = curl_slist_append(hdrs, th.data);
        tsr_buf_cleanup(&th);
        free(token);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, sink);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 300000L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode cc = curl_easy_perform(c);
    tsr_err_t rc = TSR_OK;
    if (cc != CURLE_OK) {
        rc = tsr_error_set(err, TSR_EUNAVAILABLE, "spaces: %s", curl_easy_strerror(cc));
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return rc;
}

/* The app's space id ("personal" for a personal space) and owner, from spaces' access
 * decision. */
static tsr_err_t app_space(tsr_engined_t *e, const char *tenant, const char *app_id, char *space,
                           size_t space_n, char *owner, size_t owner_n, tsr_error_t *err) {
    tsr_buf_t b;
    tsr_buf_init(&b, 64 * 1024);
    sink_t s = {.buf = &b};
    long status = 0;
    char pq[512];
    char *esc = curl_easy_escape(NULL, app_id, 0);
    snprintf(pq, sizeof pq, "/internal/v1/access?resource=app:%s", esc != NULL ? esc : "");
    curl_free(esc);
    tsr_err_t rc = spaces_get(e, pq, tenant, RELOADER_USER, &s, &status, err);
    if (rc == TSR_OK && status != 200) {
        rc = tsr_error_set(err, status == 404 ? TSR_ENOTFOUND : TSR_EUNAVAILABLE,
                           "spaces: access for app %s answered %ld", app_id, status);
    }
    if (rc == TSR_OK) {
        json_t *d = json_loadb(b.data != NULL ? b.data : "", b.len, 0, NULL);
        const char *sp = json_string_value(json_object_get(d, "spaceId"));
        const char *ow = json_string_value(json_object_get(d, "ownerId"));
        snprintf(space, space_n, "%s", sp != NULL && sp[0] != '\0' ? sp : "personal");
        snprintf(owner, owner_n, "%s", ow != NULL && ow[0] != '\0' ? ow : RELOADER_USER);
        json_decref(d);
    }
    tsr_buf_cleanup(&b);
    return rc;
}

/* A data file name as a path segment under the run folder: no separators, no dot files. */
static bool name_ok(const char *n) {
    size_t len = strlen(n);
    if (len == 0 || len > NAME_MAX_LEN || n[0] == '.' || strstr(n, "..") != NULL) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)n[i];
        if (c < 0x20 || c == '/' || c == '\\') {
            return false;
        }
    }
    return true;
}

/* The names after lib://<connection>/ in script (distinct, returned-owned JSON array). */
static json_t *script_files(const char *script) {
    json_t *names = json_array();
    const char *p = script;
    while ((p = strstr(p, "lib://")) != NULL) {
        const char *slash = p + 6;
        while (*slash != '\0' && *slash != '/' && *slash != ']' && *slash != '\'' &&
               *slash != '"' && *slash != '\n') {
            slash++;
        }
        if (*slash != '/') {
            p += 6;
            continue;
        }
        const char *s = slash + 1, *end = s;
        while (*end != '\0' && *end != ']' && *end != '\'' && *end != '"' && *end != '\n' &&
               *end != ')' && *end != ';' && *end != '(') {
            end++;
        }
        while (end > s && end[-1] == ' ') {
            end--;
        }
        char *name = tsr_xstrndup(s, (size_t)(end - s));
        bool dup = false;
        size_t i;
        json_t *v;
        json_array_foreach(names, i, v) {
            dup = dup || strcmp(json_string_value(v), name) == 0;
        }
        if (!dup && name_ok(name)) {
            json_array_append_new(names, json_string(name));
        }
        free(name);
        p = end;
    }
    return names;
}

/* ---- the live log ------------------------------------------------------------------------ */

#define PROGRESS_FIRST_MS 1000 /* first "still running" line of a statement (default) */
#define PROGRESS_MAX_MS 30000  /* the interval doubles up to this */

typedef struct {
    const tsr_engined_reload_opts_t *o;
    tsr_buf_t buf; /* the whole log */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    char stmt[32];           /* "line L" of the running statement; "" when none */
    uint64_t stmt_start_ms;  /* mono */
    uint64_t next_report_ms; /* mono: next "still running" line */
    uint64_t interval_ms;
    uint64_t first_ms; /* o->progress_ms or PROGRESS_FIRST_MS */
} live_t;

static void live_add_locked(live_t *lv, const char *text, size_t len) {
    (void)tsr_buf_append(&lv->buf, text, len);
    if (lv->o->on_log != NULL) {
        lv->o->on_log(lv->o->ud, text, len);
    }
}

/* Engine callback: whole lines; a "line L: ..." line starts a statement. */
static void live_text(void *ud, const char *text, size_t len) {
    live_t *lv = ud;
    pthread_mutex_lock(&lv->mu);
    if (len > 5 && strncmp(text, "line ", 5) == 0) {
        size_t i = 5;
        while (i < len && i < sizeof lv->stmt - 1 && text[i] >= '0' && text[i] <= '9') {
            i++;
        }
        memcpy(lv->stmt, text, i);
        lv->stmt[i] = '\0';
        lv->stmt_start_ms = tsr_mono_ms();
        lv->interval_ms = lv->first_ms;
        lv->next_report_ms = lv->stmt_start_ms + lv->interval_ms;
    }
    live_add_locked(lv, text, len);
    pthread_mutex_unlock(&lv->mu);
}

static void live_printf(live_t *lv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void live_printf(live_t *lv, const char *fmt, ...) {
    tsr_buf_t t;
    tsr_buf_init(&t, 64 * 1024);
    va_list ap;
    va_start(ap, fmt);
    tsr_err_t rc = tsr_buf_vappendf(&t, fmt, ap);
    va_end(ap);
    if (rc == TSR_OK) {
        pthread_mutex_lock(&lv->mu);
        lv->stmt[0] = '\0'; /* no statement runs between engine lines of ours */
        live_add_locked(lv, t.data, t.len);
        pthread_mutex_unlock(&lv->mu);
    }
    tsr_buf_cleanup(&t);
}

/* While the script runs: a line for a statement that takes long, at growing intervals. */
static void *live_progress_main(void *arg) {
    live_t *lv = arg;
    pthread_mutex_lock(&lv->mu);
    while (!lv->done) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t tick = lv->first_ms < 200 ? (int64_t)lv->first_ms : 200;
        int64_t ns = (int64_t)ts.tv_nsec + tick * 1000000;
        ts.tv_sec += (time_t)(ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&lv->cv, &lv->mu, &ts);
        uint64_t now = tsr_mono_ms();
        if (lv->done || lv->stmt[0] == '\0' || now < lv->next_report_ms) {
            continue;
        }
        char line[96];
        int n = snprintf(line, sizeof line, "%s: still running after %.1f s\n", lv->stmt,
                         (double)(now - lv->stmt_start_ms) / 1000.0);
        live_add_locked(lv, line, n > 0 && (size_t)n < sizeof line ? (size_t)n : 0);
        lv->interval_ms =
            lv->interval_ms * 2 < PROGRESS_MAX_MS ? lv->interval_ms * 2 : PROGRESS_MAX_MS;
        lv->next_report_ms = now + lv->interval_ms;
    }
    pthread_mutex_unlock(&lv->mu);
    return NULL;
}

static void rm_run_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *de;
    char path[4600];
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            (void)unlink(path);
        }
    }
    closedir(d);
    (void)rmdir(dir);
}

/* Put each data file the script names into run_dir: from spaces when it has it, else a link
 * to the engine's data folder. */
static tsr_err_t stage_files(tsr_engined_t *e, const char *tenant, const char *app_id,
                             const char *script, const char *run_dir, live_t *log,
                             tsr_error_t *err) {
    json_t *names = script_files(script);
    char space[256] = "", owner[256] = "";
    tsr_err_t rc = TSR_OK;
    bool use_spaces = e->spaces_url != NULL && json_array_size(names) > 0;
    if (use_spaces) {
        tsr_error_t serr = {0};
        if (app_space(e, tenant, app_id, space, sizeof space, owner, sizeof owner, &serr) !=
            TSR_OK) {
            /* The app is spaces': without its space the files cannot be resolved there. */
            live_printf(log,
                        "data files: spaces does not answer for the app (%s); using the "
                        "engine's data folder\n",
                        serr.msg);
            use_spaces = false;
        }
    }
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v) {
        const char *name = json_string_value(v);
        char path[4600], local[4600];
        snprintf(path, sizeof path, "%s/%s", run_dir, name);
        snprintf(local, sizeof local, "%s/%s/%s", e->data_root, tenant, name);
        long status = 0;
        if (use_spaces) {
            FILE *f = fopen(path, "wbe");
            if (f == NULL) {
                rc = tsr_error_set(err, TSR_EIO, "create %s: %s", path, strerror(errno));
                break;
            }
            sink_t s = {.f = f};
            char *en = curl_easy_escape(NULL, name, 0), *es = curl_easy_escape(NULL, space, 0);
            char pq[1024];
            snprintf(pq, sizeof pq, "/internal/v1/data-files/content?spaceId=%s&name=%s",
                     es != NULL ? es : "", en != NULL ? en : "");
            curl_free(en);
            curl_free(es);
            rc = spaces_get(e, pq, tenant, owner, &s, &status, err);
            if (fclose(f) != 0 && rc == TSR_OK) {
                rc = tsr_error_set(err, TSR_EIO, "write %s", path);
            }
            if (rc != TSR_OK) {
                break;
            }
            if (status == 200) {
                live_printf(log, "data file %s: from spaces (space %s, %lld bytes)\n", name, space,
                            (long long)s.n);
                continue;
            }
            (void)unlink(path);
            if (status != 404) {
                rc = tsr_error_set(err, TSR_EUNAVAILABLE, "data file %s: spaces answered %ld", name,
                                   status);
                break;
            }
        }
        if (access(local, R_OK) == 0 && symlink(local, path) == 0) {
            live_printf(log, "data file %s: from the engine's data folder\n", name);
        } else {
            live_printf(log, "data file %s: not found in spaces nor the engine's data folder\n",
                        name);
        }
    }
    json_decref(names);
    return rc;
}

tsr_err_t tsr_engined_reload_app(tsr_engined_t *e, const char *tenant_id, const char *app_id,
                                 const tsr_engined_reload_opts_t *o, char **log, tsr_error_t *err) {
    live_t lv = {.o = o,
                 .first_ms = o->progress_ms > 0 ? (uint64_t)o->progress_ms : PROGRESS_FIRST_MS};
    tsr_buf_init(&lv.buf, 256 * 1024);
    pthread_mutex_init(&lv.mu, NULL);
    pthread_cond_init(&lv.cv, NULL);
    pthread_t progress;
    bool progress_on = false;
    json_t *doc = NULL;
    char run_dir[4400] = "";
    tsr_engine_model_t *m = NULL;
    uint8_t *file = NULL;
    size_t file_n = 0;
    char *elog = NULL;
    *log = NULL;
    tsr_err_t rc = TSR_OK;
    if (tsr_engined_app_tombstoned(e, app_id)) {
        /* Deleted: never re-created nor given a version (the switch checks again under its
         * flock, for a deletion that lands while the script runs). */
        rc = tsr_error_set(err, TSR_ENOTFOUND, "app %s was deleted", app_id);
        goto out;
    }
    rc = e->store.get(e->store.ud, tenant_id, app_id, &doc, err);
    if (rc == TSR_ENOTFOUND && e->access.decide != NULL) {
        /* Spaces knows the app (the reload service asked it); the engine never opened it. */
        rc = tsr_engined_app_create(e, tenant_id, app_id, NULL, err);
        if (rc == TSR_OK || rc == TSR_ECONFLICT) {
            rc = e->store.get(e->store.ud, tenant_id, app_id, &doc, err);
        }
    }
    if (rc != TSR_OK) {
        goto out;
    }
    const char *s = json_string_value(json_object_get(doc, "script"));
    const char *script = s != NULL ? s : "";
    live_printf(&lv, "reload of app %s (fencing token %llu)\n", app_id,
                (unsigned long long)o->token);
    char runs[4300];
    snprintf(runs, sizeof runs, "%s/.runs", e->data_root);
    snprintf(run_dir, sizeof run_dir, "%s/%s.%llu.%ld", runs, app_id, (unsigned long long)o->token,
             (long)getpid());
    if ((mkdir(runs, 0700) != 0 && errno != EEXIST) ||
        (mkdir(run_dir, 0700) != 0 && errno != EEXIST)) {
        rc = tsr_error_set(err, TSR_EIO, "mkdir %s: %s", run_dir, strerror(errno));
        run_dir[0] = '\0';
        goto out;
    }
    if ((rc = stage_files(e, tenant_id, app_id, script, run_dir, &lv, err)) != TSR_OK) {
        goto out;
    }
    tsr_engine_reload_opts_t ro = {.data_dir = run_dir, .on_log = live_text, .log_ud = &lv};
    progress_on = pthread_create(&progress, NULL, live_progress_main, &lv) == 0;
    rc = tsr_engine_reload(script, strlen(script), &ro, &m, &elog, err);
    if (progress_on) {
        pthread_mutex_lock(&lv.mu);
        lv.done = true;
        pthread_cond_signal(&lv.cv);
        pthread_mutex_unlock(&lv.mu);
        pthread_join(progress, NULL);
        progress_on = false;
    }
    /* Every engine line came through live_text (elog is the same minus statement starts). */
    if (lv.buf.len > 0 && lv.buf.data[lv.buf.len - 1] != '\n') {
        live_printf(&lv, "\n");
    }
    if (rc != TSR_OK) {
        goto out;
    }
    tsr_engine_app_meta_t meta = {.script = script, .script_len = strlen(script)};
    if ((rc = tsr_engine_app_save_mem(m, &meta, NULL, &file, &file_n, err)) != TSR_OK) {
        goto out;
    }
    if (o->should_stop != NULL && o->should_stop(o->ud)) {
        rc = tsr_error_set(err, TSR_ECANCELED, "the run was stopped before its model was saved");
        goto out;
    }
    if (o->before_switch != NULL) {
        o->before_switch(o->ud);
    }
    tsr_engined_version_t ver = {0};
    rc = e->store.put_model(e->store.ud, tenant_id, app_id, file, file_n, &o->token, &ver, err);
    if (rc == TSR_OK) {
        live_printf(&lv, "model version %llu.%llu saved (%zu bytes)\n",
                    (unsigned long long)ver.token, (unsigned long long)ver.seq, file_n);
    }
out:
    if (rc != TSR_OK && err != NULL) {
        live_printf(&lv, "error: %s\n", err->msg);
    }
    if (run_dir[0] != '\0') {
        rm_run_dir(run_dir);
    }
    free(elog);
    free(file);
    tsr_engine_model_destroy(m);
    json_decref(doc);
    *log = tsr_xstrndup(lv.buf.data != NULL ? lv.buf.data : "", lv.buf.len);
    tsr_buf_cleanup(&lv.buf);
    pthread_mutex_destroy(&lv.mu);
    pthread_cond_destroy(&lv.cv);
    return rc;
}
