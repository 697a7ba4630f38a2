/*
 * pkg/spaces tenant data keys: each tenant's DEKs live wrapped by the KEK in the store
 * collection "tenant_deks" (id "v<version>", {version, record: base64url of the 77-byte
 * record}), shared by every service using the same store; version 1 is made on first use (a
 * concurrent creator loses the insert and loads the winner's). Unwrapped keyrings are cached
 * per tenant for the life of the service and are only read once published, so sealing and
 * opening need no lock; a key version the cache lacks (rotated elsewhere) reloads once.
 */
#include <pthread.h>
#include <string.h>

#include "spaces_int.h"

struct tsr_sp__keycache {
    pthread_mutex_t mu;
    struct entry {
        char tenant[TSR_STORE_TENANT_MAX + 1];
        tsr_keyring_t *kr;
    } * e;
    size_t n, cap;
    /* Replaced keyrings stay alive until destroy: a reader may still hold one. */
    tsr_keyring_t **old;
    size_t n_old;
};

tsr_sp__keycache_t *tsr_sp__keycache_create(void) {
    tsr_sp__keycache_t *k = tsr_xcalloc(1, sizeof *k);
    pthread_mutex_init(&k->mu, NULL);
    return k;
}

void tsr_sp__keycache_destroy(tsr_sp__keycache_t *k) {
    if (k == NULL) {
        return;
    }
    for (size_t i = 0; i < k->n; i++) {
        tsr_crypto_keyring_destroy(k->e[i].kr);
    }
    for (size_t i = 0; i < k->n_old; i++) {
        tsr_crypto_keyring_destroy(k->old[i]);
    }
    free(k->old);
    free(k->e);
    pthread_mutex_destroy(&k->mu);
    free(k);
}

/* Load every stored DEK of tenant into a new keyring; create version 1 when there is none. */
static tsr_err_t ring_load(tsr_spaces_t *s, const char *tenant, tsr_keyring_t **out,
                           tsr_error_t *err) {
    tsr_keyring_t *kr = tsr_crypto_keyring_create(tenant);
    tsr_store_query_t q = {.limit = TSR_STORE_LIST_MAX};
    tsr_store_page_t page = {0};
    tsr_buf_t rec;
    tsr_err_t rc = TSR_OK;
    tsr_buf_init(&rec, 4096);
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = tsr_store_doc_list(s->store, tenant, TSR_SP__C_DEKS, &q, &page, err);
        if (rc != TSR_OK) {
            goto out;
        }
        size_t i;
        json_t *d;
        json_array_foreach(page.items, i, d) {
            const char *b64 = json_string_value(json_object_get(d, "record"));
            tsr_buf_reset(&rec);
            if (b64 == NULL ||
                (rc = tsr_crypto_b64url_decode(b64, strlen(b64), &rec, err)) != TSR_OK ||
                (rc = tsr_crypto_keyring_load(kr, s->kek, (const uint8_t *)rec.data, rec.len,
                                              err)) != TSR_OK) {
                if (rc == TSR_OK) {
                    rc = tsr_error_set(err, TSR_ECORRUPT, "tenant key record without record");
                }
                goto out;
            }
        }
        tsr_store_page_cleanup(&page);
        if (tsr_crypto_keyring_current(kr) != 0) {
            break;
        }
        if (attempt == 1) {
            rc = tsr_error_set(err, TSR_EINTERNAL, "tenant key vanished while being created");
            goto out;
        }
        uint8_t record[TSR_CRYPTO_DEK_RECORD_LEN];
        tsr_buf_t b64;
        tsr_buf_init(&b64, 1024);
        rc = tsr_crypto_dek_create(s->kek, tenant, 1, record, err);
        if (rc == TSR_OK) {
            rc = tsr_crypto_b64url_encode(record, sizeof record, &b64);
        }
        if (rc == TSR_OK) {
            json_t *doc = json_pack("{sI ss}", "version", (json_int_t)1, "record", b64.data);
            rc = tsr_store_doc_create(s->store, tenant, TSR_SP__C_DEKS, "v1", doc, NULL, 0, NULL,
                                      err);
            json_decref(doc);
        }
        tsr_buf_cleanup(&b64);
        /* Someone else created it first: load theirs. */
        if (rc != TSR_OK && rc != TSR_ECONFLICT) {
            goto out;
        }
        rc = TSR_OK;
    }
out:
    tsr_store_page_cleanup(&page);
    tsr_buf_cleanup(&rec);
    if (rc != TSR_OK) {
        tsr_crypto_keyring_destroy(kr);
        return rc;
    }
    *out = kr;
    return TSR_OK;
}

tsr_err_t tsr_sp__keyring(tsr_spaces_t *s, const char *tenant, bool reload, tsr_keyring_t **out,
                          tsr_error_t *err) {
    tsr_sp__keycache_t *k = s->keys;
    tsr_keyring_t *kr = NULL;
    *out = NULL;
    pthread_mutex_lock(&k->mu);
    size_t i = 0;
    for (; i < k->n; i++) {
        if (strcmp(k->e[i].tenant, tenant) == 0) {
            break;
        }
    }
    if (i < k->n && !reload) {
        *out = k->e[i].kr;
        pthread_mutex_unlock(&k->mu);
        return TSR_OK;
    }
    /* Loading under the lock keeps one creator per process; other processes race on the
     * store's insert. */
    tsr_err_t rc = ring_load(s, tenant, &kr, err);
    if (rc == TSR_OK) {
        if (i < k->n) {
            k->old = tsr_xrealloc(k->old, (k->n_old + 1) * sizeof *k->old);
            k->old[k->n_old++] = k->e[i].kr;
            k->e[i].kr = kr;
        } else {
            if (k->n == k->cap) {
                k->cap = k->cap != 0 ? k->cap * 2 : 16;
                k->e = tsr_xrealloc(k->e, k->cap * sizeof *k->e);
            }
            snprintf(k->e[k->n].tenant, sizeof k->e[k->n].tenant, "%s", tenant);
            k->e[k->n++].kr = kr;
        }
        *out = kr;
    }
    pthread_mutex_unlock(&k->mu);
    return rc;
}
