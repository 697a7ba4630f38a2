/*
 * cmd/tsr-admin: the platform administrator's command line. Wiring only: it opens the metadata
 * store the identity service uses (TSR_STORE_URI, else sqlite:DIR/store.db) with identity's
 * collections, loads the KEK (TSR_KEK_FILE, else DIR/local/kek, created 0600 when missing)
 * and calls pkg/identity's platform functions.
 *   tsr-admin bootstrap --state-dir DIR --url URL   first start of the local stack (idempotent)
 *   tsr-admin tenant-create --state-dir DIR --name NAME --hostname H [--hostname H]...
 *             [--admin-email EMAIL]   also a TenantAdmin; prints its password and API key once
 *   tsr-admin tenant-delete --state-dir DIR --id TENANT_ID
 *   tsr-admin platform-token --state-dir DIR --name DESCRIPTION
 *             a token for POST/DELETE /internal/v1/tenants on identity, printed once
 *   tsr-admin audit verify --state-dir DIR [--tenant ID] [--from SEQ] [--to SEQ]   (audit.c)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "identity.h"
#ifdef TSR_ADMIN_HAVE_AUDIT
#include "tsr_admin_audit.h"
#endif

#define MAX_HOSTS 16

static int usage(void) {
    fprintf(stderr, "usage: tsr-admin bootstrap --state-dir DIR --url URL\n"
                    "       tsr-admin tenant-create --state-dir DIR --name NAME --hostname H "
                    "[--hostname H]... [--admin-email EMAIL]\n"
                    "       tsr-admin tenant-delete --state-dir DIR --id TENANT_ID\n"
                    "       tsr-admin platform-token --state-dir DIR --name DESCRIPTION\n"
                    "       tsr-admin audit verify --state-dir DIR [--tenant ID] [--from SEQ] "
                    "[--to SEQ]\n");
    return 2;
}

static int fail(const char *what, const tsr_error_t *err) {
    fprintf(stderr, "tsr-admin: %s: %s\n", what, err->msg);
    return 1;
}

static tsr_err_t open_identity(const char *state, tsr_identity_t **id, tsr_error_t *err) {
    char uri[4200];
    tsr_identity_opts_t io = {0};
    const char *store_uri = tsr_config_get("TSR_STORE_URI");
    if (mkdir(state, 0700) != 0 && errno != EEXIST) {
        return tsr_error_set(err, TSR_EIO, "cannot create %s", state);
    }
    if (store_uri[0] == '\0') {
        snprintf(uri, sizeof uri, "sqlite:%s/store.db", state);
        store_uri = uri;
    }
    tsr_err_t rc = tsr_identity_store_open(store_uri, &io.store, err);
    if (rc == TSR_OK && (rc = tsr_identity_kek_load(tsr_config_get("TSR_KEK_FILE"), state, &io.kek,
                                                    err)) != TSR_OK) {
        tsr_store_destroy(io.store);
        return rc;
    }
    return rc == TSR_OK ? tsr_identity_create(&io, id, err) : rc;
}

/* Write credentials.json atomically with mode 0600 (it holds a password and an API key). */
static tsr_err_t write_credentials(const char *state, const char *url, const tsr_identity_boot_t *b,
                                   tsr_error_t *err) {
    char dir[4096], tmp[4200], dst[4200];
    snprintf(dir, sizeof dir, "%s/local", state);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        return tsr_error_set(err, TSR_EIO, "cannot create %s", dir);
    }
    snprintf(tmp, sizeof tmp, "%s/credentials.json.tmp", dir);
    snprintf(dst, sizeof dst, "%s/credentials.json", dir);
    json_t *doc = json_pack("{ss ss ss ss ss}", "url", url, "tenantId", b->tenant_id, "user",
                            b->user, "password", b->password, "apiKey", b->api_key);
    mode_t old = umask(077);
    int rc = json_dump_file(doc, tmp, JSON_INDENT(2));
    umask(old);
    json_decref(doc);
    if (rc != 0 || chmod(tmp, 0600) != 0 || rename(tmp, dst) != 0) {
        unlink(tmp);
        return tsr_error_set(err, TSR_EIO, "cannot write %s", dst);
    }
    return TSR_OK;
}

int main(int argc, char **argv) {
    const char *state = NULL, *url = NULL, *name = NULL, *admin = NULL, *tid_arg = NULL;
    const char *hosts[MAX_HOSTS + 1] = {NULL};
    size_t nh = 0;
    tsr_error_t err = {0};
    tsr_identity_t *id = NULL;
    int status = 1;
    if (argc < 2) {
        return usage();
    }
#ifdef TSR_ADMIN_HAVE_AUDIT
    if (strcmp(argv[1], "audit") == 0) {
        return tsr_admin_audit_main(argc - 1, argv + 1);
    }
#endif
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            return usage();
        }
        if (strcmp(a, "--state-dir") == 0) {
            state = v;
        } else if (strcmp(a, "--url") == 0) {
            url = v;
        } else if (strcmp(a, "--name") == 0) {
            name = v;
        } else if (strcmp(a, "--id") == 0) {
            tid_arg = v;
        } else if (strcmp(a, "--admin-email") == 0) {
            admin = v;
        } else if (strcmp(a, "--hostname") == 0 && nh < MAX_HOSTS) {
            hosts[nh++] = v;
        } else {
            return usage();
        }
        i++;
    }
    if (state == NULL) {
        return usage();
    }
    if (strcmp(argv[1], "bootstrap") == 0) {
        tsr_identity_boot_t b;
        if (url == NULL) {
            return usage();
        }
        if (open_identity(state, &id, &err) != TSR_OK) {
            return fail("open", &err);
        }
        if (tsr_identity_bootstrap(id, url, &b, &err) != TSR_OK) {
            status = fail("bootstrap", &err);
        } else if (b.created && write_credentials(state, url, &b, &err) != TSR_OK) {
            status = fail("credentials", &err);
        } else {
            printf("{\"created\":%s,\"tenantId\":\"%s\"}\n", b.created ? "true" : "false",
                   b.tenant_id);
            status = 0;
        }
        tsr_identity_boot_cleanup(&b);
    } else if (strcmp(argv[1], "tenant-create") == 0) {
        char tid[25];
        if (name == NULL || nh == 0) {
            return usage();
        }
        if (open_identity(state, &id, &err) != TSR_OK) {
            return fail("open", &err);
        }
        tsr_identity_boot_t b = {0};
        if (tsr_identity_tenant_create(id, name, hosts, tid, &err) != TSR_OK) {
            status = fail("tenant-create", &err);
        } else if (admin != NULL &&
                   tsr_identity_tenant_admin_create(id, tid, admin, &b, &err) != TSR_OK) {
            status = fail("admin", &err);
        } else {
            json_t *out = json_pack("{ss}", "id", tid);
            if (b.created) {
                json_object_set_new(out, "user", json_string(b.user));
                json_object_set_new(out, "password", json_string(b.password));
                json_object_set_new(out, "apiKey", json_string(b.api_key));
            }
            json_dumpf(out, stdout, JSON_COMPACT);
            fputc('\n', stdout);
            json_decref(out);
            status = 0;
        }
        tsr_identity_boot_cleanup(&b);
    } else if (strcmp(argv[1], "platform-token") == 0) {
        char *tok = NULL;
        if (name == NULL) {
            return usage();
        }
        if (open_identity(state, &id, &err) != TSR_OK) {
            return fail("open", &err);
        }
        if (tsr_identity_platform_token_create(id, name, &tok, &err) != TSR_OK) {
            status = fail("platform-token", &err);
        } else {
            printf("{\"token\":\"%s\"}\n", tok);
            status = 0;
        }
        free(tok);
    } else if (strcmp(argv[1], "tenant-delete") == 0) {
        if (tid_arg == NULL) {
            return usage();
        }
        if (open_identity(state, &id, &err) != TSR_OK) {
            return fail("open", &err);
        }
        if (tsr_identity_tenant_del(id, tid_arg, &err) != TSR_OK) {
            status = fail("tenant-delete", &err);
        } else {
            printf("{\"deleted\":\"%s\"}\n", tid_arg);
            status = 0;
        }
    } else {
        return usage();
    }
    tsr_identity_destroy(id);
    return status;
}
