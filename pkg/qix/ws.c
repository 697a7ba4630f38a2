/*
 * The QIX WebSocket transport: the /app/... routes validate the RFC 6455 handshake,
 * authenticate through the opts hook and hand the socket to a session thread (httpd's upgrade
 * support), which runs a wslay event loop under poll(): text frames go to the message layer
 * (rpc.c), binary frames close 1003, oversized messages close 1009, idle peers get pings,
 * and a drain closes every session with 4003 between calls; so does a close another thread
 * asked for (tsr_qix_session_request_close: the wake pipe, then the close from this thread).
 * The server keeps the registry of live sessions for the drain. Invariant: only the session thread
 * touches its wslay context.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <wslay/wslay.h>

#include "config.h"
#include "log.h"
#include "qix_int.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

typedef struct conn conn_t;

struct tsr_qix_server {
    tsr_qix_opts_t opts;
    pthread_mutex_t mu;
    conn_t **conns; /* live sessions */
    size_t nconns, capconns;
    bool draining;
};

struct conn {
    tsr_qix_server_t *srv;
    char *user_id;
    char *app_id;
    uint16_t refuse_code; /* nonzero: close with this code right after the upgrade */
    int fd;
    const char *extra; /* bytes read before the upgrade; consumed first */
    size_t extra_len;
    int wake[2]; /* self-pipe: drain and pushes wake the poll loop */
    wslay_event_context_ptr ctx;
    tsr_qix_session_t *session;
    uint64_t last_recv_ms;
    bool close_queued; /* we queued a close: no more pings, idle checks or drain closes */
};

/* ---- options --------------------------------------------------------------------------------- */

tsr_err_t tsr_qix_opts_from_config(tsr_qix_opts_t *opts, tsr_error_t *err) {
    int64_t max_msg, ping;
    tsr_err_t rc = tsr_config_get_int("TSR_QIX_MAX_MESSAGE", 1024, INT64_C(1) << 30, &max_msg, err);
    if (rc == TSR_OK) {
        rc = tsr_config_get_int("TSR_QIX_PING_MS", 100, 3600 * 1000, &ping, err);
    }
    if (rc != TSR_OK) {
        return rc;
    }
    opts->max_message = (size_t)max_msg;
    opts->ping_ms = (unsigned)ping;
    return TSR_OK;
}

/* ---- server ---------------------------------------------------------------------------------- */

tsr_err_t tsr_qix_server_create(const tsr_qix_opts_t *opts, tsr_qix_server_t **out,
                                tsr_error_t *err) {
    (void)err;
    tsr_qix_server_t *s = tsr_xcalloc(1, sizeof *s);
    if (opts != NULL) {
        s->opts = *opts;
    }
    if (s->opts.max_message == 0) {
        s->opts.max_message = 4u << 20;
    }
    if (s->opts.ping_ms == 0) {
        s->opts.ping_ms = 30000;
    }
    if (s->opts.close_timeout_ms == 0) {
        s->opts.close_timeout_ms = 2000;
    }
    pthread_mutex_init(&s->mu, NULL);
    *out = s;
    return TSR_OK;
}

void tsr_qix_server_destroy(tsr_qix_server_t *s) {
    if (s == NULL) {
        return;
    }
    free(s->conns);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static void wake_conn(void *ud) {
    conn_t *c = ud;
    char b = 1;
    /* A full pipe already means "wake up"; nothing else can go wrong here. */
    ssize_t n = write(c->wake[1], &b, 1);
    (void)n;
}

void tsr_qix_server_drain(void *server) {
    tsr_qix_server_t *s = server;
    pthread_mutex_lock(&s->mu);
    s->draining = true;
    for (size_t i = 0; i < s->nconns; i++) {
        wake_conn(s->conns[i]);
    }
    pthread_mutex_unlock(&s->mu);
}

size_t tsr_qix_server_session_count(tsr_qix_server_t *s) {
    pthread_mutex_lock(&s->mu);
    size_t n = s->nconns;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static bool server_draining(tsr_qix_server_t *s) {
    pthread_mutex_lock(&s->mu);
    bool d = s->draining;
    pthread_mutex_unlock(&s->mu);
    return d;
}

static void server_add(tsr_qix_server_t *s, conn_t *c) {
    pthread_mutex_lock(&s->mu);
    if (s->nconns == s->capconns) {
        s->capconns = s->capconns ? s->capconns * 2 : 16;
        s->conns = tsr_xrealloc(s->conns, s->capconns * sizeof *s->conns);
    }
    s->conns[s->nconns++] = c;
    pthread_mutex_unlock(&s->mu);
}

static void server_remove(tsr_qix_server_t *s, conn_t *c) {
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->nconns; i++) {
        if (s->conns[i] == c) {
            s->conns[i] = s->conns[--s->nconns];
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
}

static void queue_close(conn_t *c, uint16_t code, const char *reason);

/* ---- wslay callbacks ------------------------------------------------------------------------- */

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *ud) {
    (void)flags;
    conn_t *c = ud;
    if (c->extra_len > 0) {
        size_t n = c->extra_len < len ? c->extra_len : len;
        memcpy(buf, c->extra, n);
        c->extra += n;
        c->extra_len -= n;
        c->last_recv_ms = tsr_mono_ms();
        return (ssize_t)n;
    }
    for (;;) {
        ssize_t n = recv(c->fd, buf, len, 0);
        if (n > 0) {
            c->last_recv_ms = tsr_mono_ms();
            return n;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        } else {
            /* EOF or a reset: the peer is gone. */
            wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        }
        return -1;
    }
}

static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *ud) {
    (void)flags;
    conn_t *c = ud;
    for (;;) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n >= 0) {
            return n;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        } else {
            wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        }
        return -1;
    }
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *ud) {
    conn_t *c = ud;
    if (arg->opcode == WSLAY_TEXT_FRAME) {
        if (!wslay_event_get_close_sent(ctx)) {
            tsr_qix_session_handle_message(c->session, (const char *)arg->msg, arg->msg_length);
        }
    } else if (arg->opcode == WSLAY_BINARY_FRAME) {
        queue_close(c, TSR_QIX_CLOSE_UNSUPPORTED, "binary frames are not supported");
    }
}

static void session_send(void *ud, const char *text, size_t len) {
    conn_t *c = ud;
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)text, len};
    /* wslay copies the message; after a close was queued it refuses new ones, which is right. */
    wslay_event_queue_msg(c->ctx, &m);
}

static void queue_close(conn_t *c, uint16_t code, const char *reason) {
    c->close_queued = true;
    wslay_event_queue_close(c->ctx, code, (const uint8_t *)reason, strlen(reason));
}

/* ---- the session thread ------------------------------------------------------------------------
 */

static void run_loop(conn_t *c) {
    tsr_qix_server_t *srv = c->srv;
    uint64_t ping_ms = srv->opts.ping_ms;
    uint64_t last_ping = tsr_mono_ms();
    uint64_t close_deadline = 0;
    c->last_recv_ms = last_ping;
    for (;;) {
        if (wslay_event_get_close_sent(c->ctx) && close_deadline == 0) {
            close_deadline = tsr_mono_ms() + srv->opts.close_timeout_ms;
        }
        if (!wslay_event_want_read(c->ctx) && !wslay_event_want_write(c->ctx)) {
            break;
        }
        uint64_t now = tsr_mono_ms();
        if (close_deadline != 0 && now >= close_deadline) {
            break; /* the peer never answered our close */
        }
        if (!c->close_queued && !wslay_event_get_close_sent(c->ctx)) {
            if (now - c->last_recv_ms >= 3 * ping_ms) {
                /* Falls through to poll(), which sends the close. */
                queue_close(c, WSLAY_CODE_GOING_AWAY, "idle timeout");
            } else if (now - last_ping >= ping_ms && now - c->last_recv_ms >= ping_ms) {
                struct wslay_event_msg m = {WSLAY_PING, NULL, 0};
                wslay_event_queue_msg(c->ctx, &m);
                last_ping = now;
            }
        }
        struct pollfd pfd[2] = {{.fd = c->fd}, {.fd = c->wake[0], .events = POLLIN}};
        /* Back-pressure: a client that pipelines requests but does not read its responses
         * stops being read once its unsent responses pass the cap, instead of growing the
         * send queue without bound. */
        if (wslay_event_want_read(c->ctx) &&
            wslay_event_get_queued_msg_length(c->ctx) <= srv->opts.max_message) {
            pfd[0].events |= POLLIN;
        }
        if (wslay_event_want_write(c->ctx)) {
            pfd[0].events |= POLLOUT;
        }
        uint64_t next = last_ping + ping_ms;
        if (close_deadline != 0 && close_deadline < next) {
            next = close_deadline;
        }
        int timeout = next > now ? (int)(next - now) : 0;
        int pr = poll(pfd, 2, timeout);
        if (pr < 0 && errno != EINTR) {
            break;
        }
        if (pr <= 0) {
            continue;
        }
        if (pfd[1].revents & POLLIN) {
            char buf[64];
            while (read(c->wake[0], buf, sizeof buf) > 0) {
            }
            tsr_qix_session_flush(c->session);
            /* Calls run one at a time on this thread, so none is in flight right here. */
            char reason[124];
            uint16_t code = tsr_qix_session_close_requested(c->session, reason, sizeof reason);
            if (c->close_queued || wslay_event_get_close_sent(c->ctx)) {
                /* Closing already. */
            } else if (code != 0) {
                /* Another thread asked (e.g. the app was deleted): sent from this thread,
                 * the only one touching the wslay context. */
                queue_close(c, code, reason);
            } else if (server_draining(srv)) {
                queue_close(c, TSR_QIX_CLOSE_TERMINATING, "engine terminating");
            }
        }
        if (pfd[0].revents & (POLLIN | POLLERR | POLLHUP)) {
            if (wslay_event_recv(c->ctx) != 0) {
                break;
            }
        }
        if (wslay_event_want_write(c->ctx)) {
            if (wslay_event_send(c->ctx) != 0) {
                break;
            }
        }
    }
}

/* Close our side first and read until the peer closes (or a deadline): closing a socket with
 * unread input sends a reset, which can destroy our close frame before the client reads it
 * (e.g. after the rest of an oversized message). */
static void linger_close(int fd, unsigned timeout_ms) {
    shutdown(fd, SHUT_WR);
    uint64_t deadline = tsr_mono_ms() + timeout_ms;
    char buf[4096];
    for (;;) {
        uint64_t now = tsr_mono_ms();
        if (now >= deadline) {
            return;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, (int)(deadline - now));
        if (pr < 0 && errno == EINTR) {
            continue;
        }
        if (pr <= 0) {
            return;
        }
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) {
            return;
        }
    }
}

static void conn_free(conn_t *c) {
    if (c == NULL) {
        return;
    }
    free(c->user_id);
    free(c->app_id);
    free(c);
}

static void upgraded(int fd, const char *extra, size_t extra_len, void *ud) {
    conn_t *c = ud;
    if (fd < 0) {
        conn_free(c);
        return;
    }
    tsr_qix_server_t *srv = c->srv;
    c->fd = fd;
    c->extra = extra;
    c->extra_len = extra_len;
    c->wake[0] = c->wake[1] = -1;
    /* Responses are small frames written as soon as they are ready: without TCP_NODELAY,
     * Nagle holds a frame back until the peer's delayed ACK (~40 ms) whenever one is unacked. */
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || pipe(c->wake) != 0) {
        tsr_log_error(NULL, "qix: cannot set up a session: %s", strerror(errno));
        goto out;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(c->wake[i], F_SETFL, fcntl(c->wake[i], F_GETFL) | O_NONBLOCK);
        fcntl(c->wake[i], F_SETFD, FD_CLOEXEC);
    }
    struct wslay_event_callbacks cbs = {
        .recv_callback = on_recv, .send_callback = on_send, .on_msg_recv_callback = on_msg};
    if (wslay_event_context_server_init(&c->ctx, &cbs, c) != 0) {
        tsr_log_error(NULL, "qix: wslay context init failed");
        goto out;
    }
    wslay_event_config_set_max_recv_msg_length(c->ctx, srv->opts.max_message);
    tsr_error_t err = {0};
    if (tsr_qix_session_create(&srv->opts, c->user_id, c->app_id, session_send, c, &c->session,
                               &err) != TSR_OK) {
        tsr_log_error(NULL, "qix: %s", err.msg);
        goto out;
    }
    c->session->wake = wake_conn;
    c->session->wake_ud = c;
    server_add(srv, c);
    if (c->refuse_code != 0) {
        queue_close(c, c->refuse_code,
                    c->refuse_code == TSR_QIX_CLOSE_APP_NOT_FOUND ? "app not found"
                    : c->refuse_code == TSR_QIX_CLOSE_TRY_AGAIN
                        ? "access check unavailable, try again later"
                        : "no permission");
    } else if (server_draining(srv)) {
        queue_close(c, TSR_QIX_CLOSE_TERMINATING, "engine terminating");
    } else {
        tsr_qix_session_start(c->session);
    }
    run_loop(c);
    linger_close(fd, srv->opts.close_timeout_ms);
    server_remove(srv, c);
out:
    /* The wake pipe may still be written by a push racing the end: detach first. */
    if (c->session != NULL) {
        pthread_mutex_lock(&c->session->mu);
        c->session->wake = NULL;
        pthread_mutex_unlock(&c->session->mu);
    }
    tsr_qix_session_destroy(c->session);
    if (c->ctx != NULL) {
        wslay_event_context_free(c->ctx);
    }
    for (int i = 0; i < 2; i++) {
        if (c->wake[i] >= 0) {
            close(c->wake[i]);
        }
    }
    conn_free(c);
}

/* ---- handshake and routes ----------------------------------------------------------------------
 */

/* Whether a comma-separated header value holds token (ASCII case-insensitive). */
static bool header_has_token(const char *value, const char *token) {
    if (value == NULL) {
        return false;
    }
    tsr_str_t s = tsr_str(value), tok;
    while (tsr_str_next_tok(&s, ',', &tok)) {
        if (tsr_str_case_eq_cstr(tsr_str_trim(tok), token)) {
            return true;
        }
    }
    return false;
}

/* A Sec-WebSocket-Key is the base64 of 16 bytes: 24 characters ending in "==". */
static bool key_is_valid(const char *key) {
    if (key == NULL || strlen(key) != 24 || key[22] != '=' || key[23] != '=') {
        return false;
    }
    for (size_t i = 0; i < 22; i++) {
        char ch = key[i];
        bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= '0' && ch <= '9') || ch == '+' || ch == '/';
        if (!ok) {
            return false;
        }
    }
    return true;
}

static void accept_of(const char *key, char out[29]) {
    char buf[24 + sizeof WS_GUID];
    memcpy(buf, key, 24);
    memcpy(buf + 24, WS_GUID, sizeof WS_GUID - 1);
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)buf, 24 + sizeof WS_GUID - 1, md);
    EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);
}

static tsr_err_t app_route(tsr_req_t *req, void *ud, tsr_error_t *err) {
    tsr_qix_server_t *srv = ud;
    if (!header_has_token(tsr_req_header(req, "Upgrade"), "websocket") ||
        !header_has_token(tsr_req_header(req, "Connection"), "upgrade")) {
        return tsr_error_set(err, TSR_EINVAL, "a WebSocket upgrade request is required");
    }
    const char *ver = tsr_req_header(req, "Sec-WebSocket-Version");
    if (ver == NULL || strcmp(ver, "13") != 0) {
        return tsr_error_set(err, TSR_EINVAL, "Sec-WebSocket-Version must be 13");
    }
    const char *key = tsr_req_header(req, "Sec-WebSocket-Key");
    if (!key_is_valid(key)) {
        return tsr_error_set(err, TSR_EINVAL, "missing or malformed Sec-WebSocket-Key");
    }
    char *user = NULL;
    if (srv->opts.authenticate != NULL) {
        tsr_err_t rc = srv->opts.authenticate(srv->opts.auth_ud, req, &user, err);
        if (rc != TSR_OK) {
            free(user);
            return rc;
        }
        if (user == NULL) {
            return tsr_error_set(err, TSR_EUNAUTHENTICATED, "no user");
        }
    } else {
        user = tsr_xstrdup("anonymous");
    }
    const char *app = tsr_req_param(req, "appId");
    conn_t *c = tsr_xcalloc(1, sizeof *c);
    c->srv = srv;
    c->user_id = user;
    c->fd = -1;
    if (app != NULL && strcmp(app, "engineData") != 0) {
        c->app_id = tsr_xstrdup(app);
        if (srv->opts.backend.check_app != NULL) {
            tsr_error_t cerr = {0};
            tsr_err_t rc = srv->opts.backend.check_app(srv->opts.backend.ud, user, app, &cerr);
            /* Qlik's engine proxy answers these with close codes after the upgrade, which is
             * what clients (enigma.js, @qlik/api) report to the user. */
            if (rc == TSR_ENOTFOUND) {
                c->refuse_code = TSR_QIX_CLOSE_APP_NOT_FOUND;
            } else if (rc == TSR_EFORBIDDEN) {
                c->refuse_code = TSR_QIX_CLOSE_NO_PERMISSION;
            } else if (rc == TSR_EUNAVAILABLE || rc == TSR_ETIMEOUT) {
                /* Spaces is overloaded or away: fail this open at once with a code clients
                 * show (1013 "try again later") rather than leave it waiting. */
                tsr_log_warn(NULL, "qix: access decision for app %s failed: %s", app, cerr.msg);
                c->refuse_code = TSR_QIX_CLOSE_TRY_AGAIN;
            } else if (rc != TSR_OK) {
                conn_free(c);
                return tsr_error_set(err, rc, "%s", cerr.msg);
            }
        }
    }
    tsr_req_set_identity(req, NULL, user);
    char accept[29];
    accept_of(key, accept);
    tsr_req_add_header(req, "Upgrade", "websocket");
    /* libmicrohttpd adds "Connection: Upgrade" to a 101 itself. */
    tsr_req_add_header(req, "Sec-WebSocket-Accept", accept);
    tsr_req_reply_upgrade(req, upgraded, c);
    return TSR_OK;
}

tsr_err_t tsr_qix_routes(tsr_httpd_t *h, tsr_qix_server_t *s, tsr_error_t *err) {
    static const char *const patterns[] = {
        "/app/{appId}",
        "/app/{appId}/identity/{identity}",
        "/app/{appId}/ttl/{ttl}",
        "/app/{appId}/identity/{identity}/ttl/{ttl}",
    };
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
        tsr_err_t rc = tsr_httpd_route(h, "GET", patterns[i], app_route, s, err);
        if (rc != TSR_OK) {
            return rc;
        }
    }
    return TSR_OK;
}
