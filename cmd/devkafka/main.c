/*
 * cmd/devkafka: a local Kafka-protocol broker for one machine and tests, built on librdkafka's
 * mock cluster. Creates the platform's topics (pkg/events/topics.def), writes the bootstrap
 * list to <state>/kafka/bootstrap and a control port to <state>/kafka/control, and serves a
 * line protocol on that loopback port for fault injection. Messages live in memory only.
 * Stops on SIGTERM/SIGINT with exit 0, removing both files.
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "config.h"
#include "core.h"
#include "events.h"
#include "log.h"

#define MAX_CLIENTS 16
#define LINE_MAX_BYTES 1024

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

typedef struct {
    int fd;
    char buf[LINE_MAX_BYTES];
    size_t len;
} client_t;

typedef struct {
    rd_kafka_mock_cluster_t *mc;
    int brokers;
    const char *bootstrap;
} devkafka_t;

static void usage(FILE *out) {
    fputs("usage: devkafka [--state-dir DIR] [--brokers N]\n"
          "  Local Kafka-protocol broker (librdkafka mock cluster, in memory) for one machine\n"
          "  and tests. Writes DIR/kafka/bootstrap and DIR/kafka/control (control port).\n"
          "  DIR defaults to $TSR_STATE_DIR; N (1..9) defaults to 3.\n",
          out);
}

static int mkdir_p(const char *path) {
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s", path);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
                return -1;
            }
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
        return -1;
    }
    return 0;
}

/* Write content to path through a temporary file and rename, so readers never see half. */
static int write_atomic(const char *path, const char *content) {
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        return -1;
    }
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        return -1;
    }
    int ok = fputs(content, f) >= 0 && fputc('\n', f) != EOF;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static const struct {
    const char *name;
    int16_t key;
} g_apis[] = {
    {"produce", 0},      {"fetch", 1},       {"listoffsets", 2},      {"metadata", 3},
    {"offsetcommit", 8}, {"offsetfetch", 9}, {"findcoordinator", 10}, {"joingroup", 11},
    {"heartbeat", 12},   {"leavegroup", 13}, {"syncgroup", 14},       {"initproducerid", 22},
    {"apiversions", 18},
};

static int parse_api(const char *s, int16_t *out) {
    for (size_t i = 0; i < sizeof g_apis / sizeof g_apis[0]; i++) {
        if (strcasecmp(s, g_apis[i].name) == 0) {
            *out = g_apis[i].key;
            return 0;
        }
    }
    int64_t v;
    if (tsr_str_to_i64(tsr_str(s), 0, 100, &v) == TSR_OK) {
        *out = (int16_t)v;
        return 0;
    }
    return -1;
}

static int parse_kafka_err(const char *s, rd_kafka_resp_err_t *out) {
    const struct rd_kafka_err_desc *descs;
    size_t cnt;
    const char *name = s;
    if (strncasecmp(name, "RD_KAFKA_RESP_ERR_", 18) == 0) {
        name += 18;
    }
    rd_kafka_get_err_descs(&descs, &cnt);
    for (size_t i = 0; i < cnt; i++) {
        if (descs[i].name != NULL && strcasecmp(descs[i].name, name) == 0) {
            *out = descs[i].code;
            return 0;
        }
    }
    int64_t v;
    if (tsr_str_to_i64(tsr_str(s), -200, 200, &v) == TSR_OK) {
        *out = (rd_kafka_resp_err_t)v;
        return 0;
    }
    return -1;
}

/* "all" or a broker id 1..N; *lo..*hi is the range to act on. */
static int parse_brokers(const devkafka_t *dk, const char *s, int32_t *lo, int32_t *hi) {
    int64_t v;
    if (strcmp(s, "all") == 0) {
        *lo = 1;
        *hi = dk->brokers;
        return 0;
    }
    if (tsr_str_to_i64(tsr_str(s), 1, dk->brokers, &v) != TSR_OK) {
        return -1;
    }
    *lo = *hi = (int32_t)v;
    return 0;
}

#define MAX_ARGS 34

/* Execute one command line; the reply ("ok ..." or "err ...") goes to reply. */
static void run_command(devkafka_t *dk, char *line, tsr_buf_t *reply) {
    char *argv[MAX_ARGS];
    int argc = 0;
    char *p = line;
    while (*p != '\0' && argc < MAX_ARGS) {
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        argv[argc++] = p;
        while (*p != '\0' && *p != ' ' && *p != '\t') {
            p++;
        }
        if (*p != '\0') {
            *p++ = '\0';
        }
    }
    if (argc == 0) {
        tsr_buf_append_str(reply, "err empty command");
        return;
    }
    const char *cmd = argv[0];
    int32_t lo, hi;
    int16_t api;
    int64_t n;
    if (strcmp(cmd, "ping") == 0) {
        tsr_buf_append_str(reply, "ok pong");
    } else if (strcmp(cmd, "bootstrap") == 0) {
        tsr_buf_appendf(reply, "ok %s", dk->bootstrap);
    } else if (strcmp(cmd, "topics") == 0) {
        tsr_buf_append_str(reply, "ok");
        for (const tsr_events_topic_t *t = tsr_events_topics(); t->name != NULL; t++) {
            tsr_buf_appendf(reply, " %s:%d", t->name, t->partitions);
        }
    } else if (strcmp(cmd, "create-topic") == 0 && argc == 3 &&
               tsr_str_to_i64(tsr_str(argv[2]), 1, 256, &n) == TSR_OK) {
        rd_kafka_resp_err_t e =
            rd_kafka_mock_topic_create(dk->mc, argv[1], (int)n, dk->brokers < 3 ? dk->brokers : 3);
        tsr_buf_appendf(reply, e ? "err %s" : "ok", rd_kafka_err2name(e));
    } else if (strcmp(cmd, "push-errors") == 0 && argc >= 3 && parse_api(argv[1], &api) == 0) {
        rd_kafka_resp_err_t errs[MAX_ARGS];
        size_t cnt = 0;
        for (int i = 2; i < argc; i++) {
            if (parse_kafka_err(argv[i], &errs[cnt]) != 0) {
                tsr_buf_appendf(reply, "err unknown error %s", argv[i]);
                return;
            }
            cnt++;
        }
        rd_kafka_mock_push_request_errors_array(dk->mc, api, cnt, errs);
        tsr_buf_appendf(reply, "ok pushed %zu", cnt);
    } else if (strcmp(cmd, "broker-push-errors") == 0 && argc >= 4 &&
               parse_brokers(dk, argv[1], &lo, &hi) == 0 && parse_api(argv[2], &api) == 0) {
        size_t cnt = 0;
        for (int i = 3; i < argc; i++) {
            rd_kafka_resp_err_t e;
            if (parse_kafka_err(argv[i], &e) != 0) {
                tsr_buf_appendf(reply, "err unknown error %s", argv[i]);
                return;
            }
            for (int32_t b = lo; b <= hi; b++) {
                rd_kafka_mock_broker_push_request_error_rtts(dk->mc, b, api, 1, e, 0);
                cnt++;
            }
        }
        tsr_buf_appendf(reply, "ok pushed %zu", cnt);
    } else if (strcmp(cmd, "errors-left") == 0 && argc == 3 &&
               parse_brokers(dk, argv[1], &lo, &hi) == 0 && parse_api(argv[2], &api) == 0) {
        size_t total = 0;
        for (int32_t b = lo; b <= hi; b++) {
            size_t c = 0;
            if (rd_kafka_mock_broker_error_stack_cnt(dk->mc, b, api, &c) == 0) {
                total += c;
            }
        }
        tsr_buf_appendf(reply, "ok %zu", total);
    } else if (strcmp(cmd, "clear-errors") == 0 && argc == 2 && parse_api(argv[1], &api) == 0) {
        rd_kafka_mock_clear_request_errors(dk->mc, api);
        tsr_buf_append_str(reply, "ok");
    } else if ((strcmp(cmd, "broker-down") == 0 || strcmp(cmd, "broker-up") == 0) && argc == 2 &&
               parse_brokers(dk, argv[1], &lo, &hi) == 0) {
        for (int32_t b = lo; b <= hi; b++) {
            if (cmd[7] == 'd') {
                rd_kafka_mock_broker_set_down(dk->mc, b);
            } else {
                rd_kafka_mock_broker_set_up(dk->mc, b);
            }
        }
        tsr_buf_append_str(reply, "ok");
    } else if (strcmp(cmd, "rtt") == 0 && argc == 3 && parse_brokers(dk, argv[1], &lo, &hi) == 0 &&
               tsr_str_to_i64(tsr_str(argv[2]), 0, 60000, &n) == TSR_OK) {
        for (int32_t b = lo; b <= hi; b++) {
            rd_kafka_mock_broker_set_rtt(dk->mc, b, (int)n);
        }
        tsr_buf_append_str(reply, "ok");
    } else if (strcmp(cmd, "leader") == 0 && argc == 4 &&
               tsr_str_to_i64(tsr_str(argv[2]), 0, 255, &n) == TSR_OK &&
               parse_brokers(dk, argv[3], &lo, &hi) == 0 && lo == hi) {
        rd_kafka_resp_err_t e = rd_kafka_mock_partition_set_leader(dk->mc, argv[1], (int32_t)n, lo);
        tsr_buf_appendf(reply, e ? "err %s" : "ok", rd_kafka_err2name(e));
    } else if (strcmp(cmd, "topic-error") == 0 && argc == 3) {
        rd_kafka_resp_err_t e;
        if (parse_kafka_err(argv[2], &e) != 0) {
            tsr_buf_appendf(reply, "err unknown error %s", argv[2]);
            return;
        }
        rd_kafka_mock_topic_set_error(dk->mc, argv[1], e);
        tsr_buf_append_str(reply, "ok");
    } else {
        tsr_buf_appendf(reply,
                        "err unknown or malformed command %s (ping, bootstrap, topics, "
                        "create-topic, push-errors, broker-push-errors, errors-left, "
                        "clear-errors, broker-down, broker-up, rtt, leader, topic-error)",
                        cmd);
    }
}

static int listen_loopback(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t alen = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 8) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* Consume complete lines from a client; false when it should be dropped. */
static bool serve_client(devkafka_t *dk, client_t *cl) {
    ssize_t r = read(cl->fd, cl->buf + cl->len, sizeof cl->buf - 1 - cl->len);
    if (r <= 0) {
        return false;
    }
    cl->len += (size_t)r;
    for (;;) {
        char *nl = memchr(cl->buf, '\n', cl->len);
        if (nl == NULL) {
            /* a line longer than the buffer is a protocol error */
            return cl->len < sizeof cl->buf - 1;
        }
        *nl = '\0';
        if (nl > cl->buf && nl[-1] == '\r') {
            nl[-1] = '\0';
        }
        tsr_buf_t reply;
        tsr_buf_init(&reply, 4096);
        run_command(dk, cl->buf, &reply);
        tsr_log_info(NULL, "control: %s -> %s", cl->buf, reply.data ? reply.data : "");
        tsr_buf_append_str(&reply, "\n");
        ssize_t w = write(cl->fd, reply.data, reply.len);
        tsr_buf_cleanup(&reply);
        if (w < 0) {
            return false;
        }
        size_t used = (size_t)(nl - cl->buf) + 1;
        memmove(cl->buf, nl + 1, cl->len - used);
        cl->len -= used;
    }
}

int main(int argc, char **argv) {
    const char *state_dir = NULL;
    int64_t brokers = 3;
    tsr_log_level_t lvl = TSR_LOG_INFO;
    (void)tsr_log_level_parse(tsr_config_get("TSR_LOG_LEVEL"), &lvl);
    tsr_log_init("devkafka", lvl, stdout);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--state-dir") == 0 && i + 1 < argc) {
            state_dir = argv[++i];
        } else if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc) {
            if (tsr_str_to_i64(tsr_str(argv[++i]), 1, 9, &brokers) != TSR_OK) {
                usage(stderr);
                return 2;
            }
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (state_dir == NULL) {
        state_dir = tsr_config_get("TSR_STATE_DIR");
    }
    char kdir[PATH_MAX], bootstrap_path[PATH_MAX], control_path[PATH_MAX];
    if (snprintf(kdir, sizeof kdir, "%s/kafka", state_dir) >= (int)sizeof kdir ||
        snprintf(bootstrap_path, sizeof bootstrap_path, "%s/bootstrap", kdir) >=
            (int)sizeof bootstrap_path ||
        snprintf(control_path, sizeof control_path, "%s/control", kdir) >=
            (int)sizeof control_path) {
        tsr_log_error(NULL, "state dir path too long");
        return 1;
    }
    if (mkdir_p(kdir) != 0) {
        tsr_log_error(NULL, "cannot create %s: %s", kdir, strerror(errno));
        return 1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, NULL);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (rk == NULL) {
        tsr_log_error(NULL, "rd_kafka_new: %s", errstr);
        return 1;
    }
    devkafka_t dk = {0};
    dk.brokers = (int)brokers;
    dk.mc = rd_kafka_mock_cluster_new(rk, dk.brokers);
    if (dk.mc == NULL) {
        tsr_log_error(NULL, "cannot start the mock cluster");
        rd_kafka_destroy(rk);
        return 1;
    }
    dk.bootstrap = rd_kafka_mock_cluster_bootstraps(dk.mc);
    int rf = dk.brokers < 3 ? dk.brokers : 3;
    for (const tsr_events_topic_t *t = tsr_events_topics(); t->name != NULL; t++) {
        rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(dk.mc, t->name, t->partitions, rf);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            tsr_log_error(NULL, "create topic %s: %s", t->name, rd_kafka_err2str(e));
        }
    }
    int port = 0;
    int lfd = listen_loopback(&port);
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = 0;
    if (lfd < 0 || write_atomic(control_path, portstr) != 0 ||
        write_atomic(bootstrap_path, dk.bootstrap) != 0) {
        tsr_log_error(NULL, "cannot open the control port or write %s: %s", kdir, strerror(errno));
        rc = 1;
        goto out;
    }
    json_t *extra = json_pack("{s:s,s:i,s:i,s:s}", "bootstrap", dk.bootstrap, "controlPort", port,
                              "brokers", dk.brokers, "stateDir", state_dir);
    tsr_log_write(TSR_LOG_INFO, NULL, extra, "devkafka ready on %s", dk.bootstrap);
    json_decref(extra);

    client_t clients[MAX_CLIENTS];
    size_t nclients = 0;
    while (!g_stop) {
        struct pollfd pfd[MAX_CLIENTS + 1];
        pfd[0].fd = lfd;
        pfd[0].events = POLLIN;
        for (size_t i = 0; i < nclients; i++) {
            pfd[i + 1].fd = clients[i].fd;
            pfd[i + 1].events = POLLIN;
        }
        int pr = poll(pfd, nclients + 1, 500);
        if (pr <= 0) {
            continue; /* timeout or EINTR: re-check g_stop */
        }
        for (size_t i = nclients; i-- > 0;) {
            if (pfd[i + 1].revents != 0 && !serve_client(&dk, &clients[i])) {
                close(clients[i].fd);
                clients[i] = clients[--nclients];
            }
        }
        if (pfd[0].revents & POLLIN) {
            int cfd = accept(lfd, NULL, NULL);
            if (cfd >= 0 && nclients < MAX_CLIENTS) {
                clients[nclients].fd = cfd;
                clients[nclients].len = 0;
                nclients++;
            } else if (cfd >= 0) {
                close(cfd);
            }
        }
    }
    for (size_t i = 0; i < nclients; i++) {
        close(clients[i].fd);
    }
    tsr_log_info(NULL, "devkafka stopping");
out:
    unlink(bootstrap_path);
    unlink(control_path);
    if (lfd >= 0) {
        close(lfd);
    }
    rd_kafka_mock_cluster_destroy(dk.mc);
    rd_kafka_destroy(rk);
    return rc;
}
