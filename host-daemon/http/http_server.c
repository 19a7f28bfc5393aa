/* libmicrohttpd on bellowsd's libuv loop: epoll descriptor, timer, streams, limits. */
#include "host-daemon/http/http_server.h"

#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "host-daemon/http/routes.h"
#include "host-daemon/http/sse.h"

#define STREAM_BLOCK 16384  /* bytes MHD asks the stream reader for at once */
#define STREAM_SNDBUF 65536 /* kernel send buffer of a stream: bounds what a stuck client holds */

/* One TCP connection: its socket, and the time by which it must have sent a whole request
 * (or read a whole reply). Libmicrohttpd's own timeout only counts silence, so a client
 * dripping a byte at a time would hold its slot for ever; this one does not reset. */
struct conn_ctx {
    struct MHD_Connection *conn;
    int fd;
    int64_t deadline; /* loop ms; INT64_MAX for an event stream */
    struct conn_ctx *prev, *next;
};

struct stream {
    struct http_server *srv;
    struct MHD_Connection *conn;
    struct sse_queue q;
    bool suspended;
    bool dead; /* overflowed or closing: the reader ends the response */
    struct stream *prev, *next;
};

struct http_server {
    uv_loop_t *loop;
    struct MHD_Daemon *mhd;
    uv_poll_t poll;       /* MHD's epoll descriptor */
    uv_timer_t timer;     /* MHD_get_timeout() */
    uv_timer_t keepalive; /* a comment to every stream */
    uv_timer_t sweep;     /* once a second: connections past their deadline */
    int open_handles;     /* close callbacks still to run */
    struct conn_ctx *conns;
    bool closing;
    bool rerun; /* run MHD again on the next turn */
    http_handler_fn handler;
    http_log_fn log;
    void *opaque;
    struct http_server_limits lim;
    struct stream *streams;
    struct http_server_stats stats;
    uint16_t port;
};

/* See http_server.h. */
void http_server_limits_default(struct http_server_limits *lim)
{
    *lim = (struct http_server_limits){
        .max_clients = 64,
        .max_streams = 16,
        .stream_queue_bytes = 256 * 1024,
        .timeout_s = 10,
        .request_s = 10,
        .request_memory = 16 * 1024,
        .keepalive_ms = 15000,
    };
}

/* ---- replies ---- */

/* See http_server.h. */
void http_reply_json(struct http_reply *r, unsigned status, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(j);
    if (!text) {
        r->status = 500;
        r->content_type = "application/json";
        r->body = "{\"error\":\"out of memory\"}";
        r->len = strlen(r->body);
        r->body_static = true;
        return;
    }
    r->status = status;
    r->content_type = "application/json";
    r->body = text;
    r->len = strlen(text);
    r->body_static = false;
}

/* See http_server.h. */
void http_reply_error(struct http_reply *r, unsigned status, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    http_reply_json(r, status, json_pack("{ss}", "error", msg));
}

/* See http_server.h. */
void http_reply_header(struct http_reply *r, const char *name, const char *value)
{
    size_t cap = sizeof(r->headers) / sizeof(r->headers[0]);
    if (r->n_headers < cap) {
        r->headers[r->n_headers].name = name;
        r->headers[r->n_headers].value = value;
        r->n_headers++;
    }
}

/* See http_server.h. */
const char *http_request_arg(const struct http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* See http_server.h. */
const char *http_request_header(const struct http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

/* ---- running MHD from the loop ---- */

static void on_timer(uv_timer_t *t);

/* Arm the timer from MHD's own idea of when it must run next, unless something asked for
 * a run on the next turn meanwhile. */
static void rearm(struct http_server *s)
{
    MHD_UNSIGNED_LONG_LONG ms;
    if (s->closing)
        return;
    if (s->rerun)
        uv_timer_start(&s->timer, on_timer, 0, 0);
    else if (MHD_get_timeout(s->mhd, &ms) == MHD_YES)
        uv_timer_start(&s->timer, on_timer, ms, 0);
    else
        uv_timer_stop(&s->timer);
}

static void run(struct http_server *s)
{
    if (s->closing)
        return;
    s->rerun = false;
    MHD_run(s->mhd);
    rearm(s);
}

static void on_timer(uv_timer_t *t)
{
    run(t->data);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    run(p->data);
}

/* Run MHD on the next loop turn: a stream was resumed, or a connection closed at the
 * limit. Called inside MHD_run too, so the flag survives rearm(). */
static void kick(struct http_server *s)
{
    if (s->closing)
        return;
    s->rerun = true;
    uv_timer_start(&s->timer, on_timer, 0, 0);
}

/* ---- event streams ---- */

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct stream *st = cls;
    if (st->dead)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = sse_queue_read(&st->q, buf, max);
    if (n > 0)
        return (ssize_t)n;
    if (st->srv->closing)
        return MHD_CONTENT_READER_END_OF_STREAM;
    /* Nothing to send: park the connection until the next broadcast (returning 0
     * without suspending would make MHD ask again at once, a busy loop). */
    MHD_suspend_connection(st->conn);
    st->suspended = true;
    return 0;
}

/* The response is gone, so is the connection: forget the stream. */
static void stream_free(void *cls)
{
    struct stream *st = cls;
    struct http_server *s = st->srv;
    if (st->prev)
        st->prev->next = st->next;
    else
        s->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    s->stats.streams_open--;
    sse_queue_free(&st->q);
    free(st);
}

static void resume(struct stream *st)
{
    if (!st->suspended)
        return;
    st->suspended = false;
    MHD_resume_connection(st->conn);
}

/* See http_server.h. */
void http_server_broadcast(struct http_server *s, const char *text, size_t len)
{
    bool resumed = false;
    for (struct stream *st = s->streams; st; st = st->next) {
        if (st->dead)
            continue;
        if (!sse_queue_push(&st->q, text, len)) {
            /* Too slow: cut it off now and free its queue; it reconnects and reloads. */
            st->dead = true;
            sse_queue_free(&st->q);
            s->stats.streams_dropped++;
            if (s->log) {
                char msg[120];
                snprintf(msg, sizeof(msg),
                         "event-stream client dropped: more than %zu bytes unread",
                         s->lim.stream_queue_bytes);
                s->log(s->opaque, true, msg);
            }
        }
        if (st->suspended) {
            resume(st);
            resumed = true;
        }
    }
    if (resumed)
        kick(s);
}

static void on_keepalive(uv_timer_t *t)
{
    static const char comment[] = ": keepalive\n\n";
    struct http_server *s = t->data;
    /* Also how a client gone while its stream was suspended is noticed: MHD sees no
     * hang-up on a suspended connection, only a failed write after resuming it. */
    http_server_broadcast(s, comment, sizeof(comment) - 1);
}

/* ---- requests ---- */

static void count_response(struct http_server *s, unsigned status)
{
    unsigned c = status / 100;
    if (c >= 2 && c <= 5)
        s->stats.responses[c]++;
}

static enum MHD_Result queue(struct http_server *s, struct MHD_Connection *conn,
                             struct http_reply *r)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        r->len, r->body, r->body_static ? MHD_RESPMEM_PERSISTENT : MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        if (!r->body_static)
            free(r->body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
                            r->cache_control ? r->cache_control : "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    for (size_t i = 0; i < r->n_headers; i++)
        MHD_add_response_header(resp, r->headers[i].name, r->headers[i].value);
    enum MHD_Result ret = MHD_queue_response(conn, r->status, resp);
    MHD_destroy_response(resp);
    count_response(s, r->status);
    return ret;
}

static enum MHD_Result open_stream(struct http_server *s, struct MHD_Connection *conn,
                                   struct http_reply *r)
{
    if (s->stats.streams_open >= s->lim.max_streams) {
        if (!r->body_static)
            free(r->body);
        struct http_reply busy = {0};
        http_reply_error(&busy, 503, "too many event-stream clients (the limit is %u)",
                         s->lim.max_streams);
        http_reply_header(&busy, "Retry-After", "10");
        return queue(s, conn, &busy);
    }
    struct stream *st = calloc(1, sizeof(*st));
    if (!st)
        goto oom;
    st->srv = s;
    st->conn = conn;
    sse_queue_init(&st->q, s->lim.stream_queue_bytes);
    if (r->len && !sse_queue_push(&st->q, r->body, r->len)) {
        free(st);
        goto oom;
    }
    if (!r->body_static)
        free(r->body);
    r->body = NULL;
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK,
                                                                  stream_read, st, stream_free);
    if (!resp) {
        sse_queue_free(&st->q);
        free(st);
        return MHD_NO;
    }
    /* Linked now, unlinked by stream_free when the response goes: at the connection's end,
     * or right below if it cannot be queued. */
    st->next = s->streams;
    if (s->streams)
        s->streams->prev = st;
    s->streams = st;
    s->stats.streams_open++;
    /* Past this much in the kernel, a client that does not read fills its queue and is
     * dropped, instead of parking megabytes in socket buffers. */
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (fd) {
        int sndbuf = STREAM_SNDBUF;
        setsockopt(fd->connect_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ret = MHD_queue_response(conn, 200, resp);
    if (ret == MHD_YES) {
        s->stats.streams_total++;
        count_response(s, 200);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        if (ci && ci->socket_context)
            ((struct conn_ctx *)ci->socket_context)->deadline = INT64_MAX;
    }
    MHD_destroy_response(resp);
    return ret;
oom:
    if (r->body && !r->body_static)
        free(r->body);
    struct http_reply err = {0};
    http_reply_error(&err, 500, "out of memory");
    return queue(s, conn, &err);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    (void)con_cls;
    struct http_server *s = cls;
    struct http_reply r = {0};

    /* Everything is answered on the first call, once the headers are in: a body, if any,
     * is never read (MHD closes the connection after the reply). */
    *upload_data_size = 0;
    s->stats.requests++;
    /* The request is in: from now on the connection has request_s to take the reply. */
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci && ci->socket_context)
        ((struct conn_ctx *)ci->socket_context)->deadline =
            (int64_t)uv_now(s->loop) + (int64_t)s->lim.request_s * 1000;
    if (!http_method_allowed(method)) {
        http_reply_error(&r, 405, "%.16s: bellowsd's HTTP surface is read-only (GET, HEAD)",
                         method);
        http_reply_header(&r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
        return queue(s, conn, &r);
    }
    struct http_request req = {.method = method, .path = url, .conn = conn};
    s->handler(s->opaque, &req, &r);
    if (!r.content_type) {
        /* A handler that said nothing is a bug, not the client's fault. */
        if (r.body && !r.body_static)
            free(r.body);
        memset(&r, 0, sizeof(r));
        http_reply_error(&r, 500, "no reply");
    }
    if (r.stream && strcmp(method, "HEAD") != 0)
        return open_stream(s, conn, &r);
    return queue(s, conn, &r);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct http_server *s = cls;
    if (!s->log)
        return;
    char msg[300];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    s->log(s->opaque, false, msg);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct http_server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        s->stats.connections_open++;
        s->stats.connections_total++;
        if (s->stats.connections_open > s->stats.connections_peak)
            s->stats.connections_peak = s->stats.connections_open;
        struct conn_ctx *c = calloc(1, sizeof(*c));
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (c && fd) {
            c->conn = conn;
            c->fd = fd->connect_fd;
            c->deadline = (int64_t)uv_now(s->loop) + (int64_t)s->lim.request_s * 1000;
            c->next = s->conns;
            if (s->conns)
                s->conns->prev = c;
            s->conns = c;
            *socket_context = c;
        } else {
            free(c);
        }
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        s->stats.connections_open--;
        struct conn_ctx *c = *socket_context;
        if (c) {
            if (c->prev)
                c->prev->next = c->next;
            else
                s->conns = c->next;
            if (c->next)
                c->next->prev = c->prev;
            free(c);
            *socket_context = NULL;
        }
        /* At the limit MHD took its listening socket out of its epoll set; it puts it back
         * only at the start of a later MHD_run, and with nothing else to do none would come:
         * the queued clients would wait for ever. */
        if (s->stats.connections_open + 1 >= s->lim.max_clients)
            kick(s);
    }
}

/* A reply is out: the connection has request_s for its next request. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)con_cls;
    (void)toe;
    struct http_server *s = cls;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci && ci->socket_context)
        ((struct conn_ctx *)ci->socket_context)->deadline =
            (int64_t)uv_now(s->loop) + (int64_t)s->lim.request_s * 1000;
}

/* Cut the connections past their deadline: shutdown() makes MHD see the end of the
 * connection on its next run and close it itself (the descriptor stays MHD's). */
static void on_sweep(uv_timer_t *t)
{
    struct http_server *s = t->data;
    int64_t now = (int64_t)uv_now(s->loop);
    bool cut = false;
    for (struct conn_ctx *c = s->conns; c; c = c->next) {
        if (now <= c->deadline)
            continue;
        shutdown(c->fd, SHUT_RDWR);
        c->deadline = INT64_MAX;
        s->stats.connections_cut++;
        cut = true;
    }
    if (cut)
        kick(s);
}

/* ---- start and stop ---- */

static void on_handle_closed(uv_handle_t *h)
{
    struct http_server *s = h->data;
    if (--s->open_handles == 0)
        free(s);
}

/* See http_server.h. */
int http_server_start(uv_loop_t *loop, const struct netaddr *addr,
                      const struct http_server_limits *lim, http_handler_fn handler,
                      http_log_fn log, void *opaque, struct http_server **ret, char *err,
                      size_t err_cap)
{
    struct http_server *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, err_cap, "out of memory");
        return -ENOMEM;
    }
    s->loop = loop;
    s->handler = handler;
    s->log = log;
    s->opaque = opaque;
    s->lim = *lim;
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (addr->addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    errno = 0;
    /* The logger goes first: MHD logs with its own logger until it has read this option. */
    s->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
        MHD_OPTION_SOCK_ADDR, &addr->addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)lim->max_clients,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)lim->timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        lim->request_memory, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_NOTIFY_CONNECTION,
        on_connection, s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (!s->mhd) {
        int e = errno ? errno : EADDRNOTAVAIL;
        snprintf(err, err_cap, "cannot listen on %s: %s", addr->text, strerror(e));
        free(s);
        return -e;
    }
    const union MHD_DaemonInfo *fd_info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    const union MHD_DaemonInfo *port_info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = port_info ? port_info->port : 0;
    int r = fd_info ? uv_poll_init(loop, &s->poll, fd_info->epoll_fd) : -EINVAL;
    if (r < 0) {
        snprintf(err, err_cap, "cannot watch libmicrohttpd's epoll descriptor: %s", uv_strerror(r));
        MHD_stop_daemon(s->mhd);
        free(s);
        return r;
    }
    uv_timer_init(loop, &s->timer);
    uv_timer_init(loop, &s->keepalive);
    uv_timer_init(loop, &s->sweep);
    s->poll.data = s->timer.data = s->keepalive.data = s->sweep.data = s;
    s->open_handles = 4;
    uv_timer_start(&s->sweep, on_sweep, 1000, 1000);
    uv_poll_start(&s->poll, UV_READABLE, on_poll);
    uv_timer_start(&s->keepalive, on_keepalive, lim->keepalive_ms, lim->keepalive_ms);
    rearm(s);
    *ret = s;
    return 0;
}

/* See http_server.h. */
uint16_t http_server_port(const struct http_server *s)
{
    return s->port;
}

/* See http_server.h. */
const struct http_server_stats *http_server_stats(const struct http_server *s)
{
    return &s->stats;
}

/* See http_server.h. */
void http_server_close(struct http_server *s)
{
    if (!s || s->closing)
        return;
    /* Stop watching MHD's descriptor before MHD closes it (a closed number may be reused
     * by the time a later uv_close would take it out of libuv's epoll set). */
    uv_close((uv_handle_t *)&s->poll, on_handle_closed);
    uv_close((uv_handle_t *)&s->timer, on_handle_closed);
    uv_close((uv_handle_t *)&s->keepalive, on_handle_closed);
    uv_close((uv_handle_t *)&s->sweep, on_handle_closed);
    /* MHD must not be stopped with suspended connections: resume them, let each stream
     * end, then stop (which frees every response, so every stream). */
    for (struct stream *st = s->streams; st; st = st->next) {
        st->dead = true;
        resume(st);
    }
    MHD_run(s->mhd);
    s->closing = true;
    MHD_stop_daemon(s->mhd);
    s->mhd = NULL;
}
