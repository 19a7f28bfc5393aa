/* Host end of a virtio-serial port: a reconnecting unix socket client on libuv. */
#include "virtio/host_channel.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "virtio/link_backoff.h"
#include "virtio/link_gate.h"
#include "virtio/sock_watch.h"

#define NS_PER_MS UINT64_C(1000000)

/* One connection attempt and, if it succeeds, the connection. A new one is made for each
 * attempt because a libuv handle can only be reused after its close callback. */
/* Where an attempt stands in the process's link gate (link_gate.h). */
enum gate_state { GATE_NONE, GATE_IN_FLIGHT, GATE_OPEN };

struct conn {
    uv_pipe_t pipe;
    uv_connect_t req;
    struct host_channel *ch;
    size_t write_queued; /* bytes handed to uv_write and not yet done */
    bool reading;
    enum gate_state gate;
};

struct host_channel {
    uv_loop_t *loop;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct host_channel_config cfg;
    struct host_channel_callbacks cbs;
    void *opaque;

    uv_timer_t retry_timer;
    struct sock_watch watch; /* the socket's folder, while the link is down */
    bool watch_ok;           /* the watch handle was made (it needs closing) */
    struct conn *conn;       /* current attempt or connection; NULL while waiting to retry */
    bool connected;
    bool paused;
    bool started;
    bool closing;
    struct link_gate_waiter gate_wait; /* waiting for the gate to let an attempt through */
    struct host_channel_stats stats;
    struct link_backoff backoff;
    uint64_t retry_ms;     /* the delay of the retry now scheduled */
    unsigned open_handles; /* retry timer, watch, connections not yet closed */
    host_channel_closed_cb closed;

    char read_buf[HOST_CHANNEL_READ_BUF];
};

struct write_req {
    uv_write_t req;
    struct conn *conn;
    size_t len;
    char data[];
};

static void try_connect(struct host_channel *ch);

static void maybe_finish_close(struct host_channel *ch)
{
    if (!ch->closing || ch->open_handles > 0)
        return;
    if (ch->closed)
        ch->closed(ch, ch->opaque);
    free(ch);
}

static void on_conn_closed(uv_handle_t *handle)
{
    struct conn *conn = handle->data;
    struct host_channel *ch = conn->ch;
    /* Every attempt ends here once: its place in the gate is given back. */
    if (conn->gate == GATE_IN_FLIGHT)
        link_gate_failed(link_gate_shared());
    else if (conn->gate == GATE_OPEN)
        link_gate_closed(link_gate_shared());
    free(conn);
    ch->open_handles--;
    maybe_finish_close(ch);
}

static void on_timer_closed(uv_handle_t *handle)
{
    struct host_channel *ch = handle->data;
    ch->open_handles--;
    maybe_finish_close(ch);
}

static void on_watch_closed(uv_handle_t *handle)
{
    struct sock_watch *w = handle->data;
    struct host_channel *ch = w->opaque;
    ch->open_handles--;
    maybe_finish_close(ch);
}

static void on_retry(uv_timer_t *timer)
{
    struct host_channel *ch = timer->data;
    try_connect(ch);
}

/* The socket's name changed in its folder (QEMU made it again): do not wait for the
 * timer, and start the backoff over, since this is a new socket. */
static void on_socket_appeared(struct sock_watch *w, void *opaque)
{
    (void)w;
    struct host_channel *ch = opaque;
    if (ch->closing || ch->conn)
        return; /* an attempt is in flight or the link is up */
    ch->stats.watch_retries++;
    link_backoff_reset(&ch->backoff);
    uv_timer_stop(&ch->retry_timer);
    try_connect(ch);
}

/* Forget the current connection and schedule the next attempt. */
static void drop_conn(struct host_channel *ch, int err)
{
    struct conn *conn = ch->conn;
    bool was_connected = ch->connected;

    ch->conn = NULL;
    ch->connected = false;
    if (conn)
        uv_close((uv_handle_t *)&conn->pipe, on_conn_closed);
    if (ch->closing)
        return;
    /* A link that did not stay up long enough keeps doubling the delay: a socket that
     * accepts and closes at once is not redialled at the minimum delay forever. */
    uint64_t delay_ns = link_backoff_down(&ch->backoff, uv_now(ch->loop) * NS_PER_MS);
    ch->retry_ms = (delay_ns + NS_PER_MS - 1) / NS_PER_MS;
    uv_timer_start(&ch->retry_timer, on_retry, ch->retry_ms, 0);
    if (ch->watch_ok)
        sock_watch_start(&ch->watch);
    if (ch->cbs.on_disconnect)
        ch->cbs.on_disconnect(ch, err, was_connected, ch->opaque);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct conn *conn = handle->data;
    *buf = uv_buf_init(conn->ch->read_buf, sizeof(conn->ch->read_buf));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *conn = stream->data;
    struct host_channel *ch = conn->ch;

    if (ch->conn != conn || ch->closing)
        return;
    if (nread > 0) {
        if (ch->cbs.on_data)
            ch->cbs.on_data(ch, buf->base, (size_t)nread, ch->opaque);
    } else if (nread < 0) {
        drop_conn(ch, nread == UV_EOF ? -EPIPE : (int)nread);
    }
}

static void start_reading(struct host_channel *ch)
{
    struct conn *conn = ch->conn;
    if (!ch->connected || ch->paused || conn->reading)
        return;
    int r = uv_read_start((uv_stream_t *)&conn->pipe, on_alloc, on_read);
    if (r < 0) {
        drop_conn(ch, r);
        return;
    }
    conn->reading = true;
}

static void on_connected(uv_connect_t *req, int status)
{
    struct conn *conn = req->data;
    struct host_channel *ch = conn->ch;

    if (ch->conn != conn || ch->closing)
        return;
    if (status < 0) {
        drop_conn(ch, status);
        return;
    }
    conn->gate = GATE_OPEN;
    link_gate_connected(link_gate_shared());
    ch->connected = true;
    /* Up, but not yet healthy: the backoff starts over only once it has stayed up. */
    link_backoff_up(&ch->backoff, uv_now(ch->loop) * NS_PER_MS);
    if (ch->watch_ok)
        sock_watch_stop(&ch->watch);
    ch->stats.connects++;
    if (ch->cbs.on_connect)
        ch->cbs.on_connect(ch, ch->opaque);
    if (ch->conn == conn && !ch->closing)
        start_reading(ch);
}

static void connect_now(struct host_channel *ch);

static void on_gate_admit(struct link_gate_waiter *w)
{
    struct host_channel *ch =
        (struct host_channel *)((char *)w - offsetof(struct host_channel, gate_wait));
    connect_now(ch);
}

/* An attempt, once the gate lets it through (at once, or when a place frees). */
static void try_connect(struct host_channel *ch)
{
    if (ch->conn || ch->gate_wait.queued)
        return; /* an attempt is in flight, or waiting for the gate already */
    if (link_gate_enter(link_gate_shared(), &ch->gate_wait, on_gate_admit))
        connect_now(ch);
    else
        ch->stats.gate_waits++;
}

static void connect_now(struct host_channel *ch)
{
    struct conn *conn = calloc(1, sizeof(*conn));
    if (!conn) {
        link_gate_failed(link_gate_shared());
        drop_conn(ch, -ENOMEM);
        return;
    }
    conn->gate = GATE_IN_FLIGHT;
    conn->ch = ch;
    int r = uv_pipe_init(ch->loop, &conn->pipe, 0);
    if (r < 0) {
        free(conn);
        link_gate_failed(link_gate_shared());
        drop_conn(ch, r);
        return;
    }
    conn->pipe.data = conn;
    conn->req.data = conn;
    ch->open_handles++;
    ch->conn = conn;
    /* Failures, even immediate ones, arrive through on_connected. */
    uv_pipe_connect(&conn->req, &conn->pipe, ch->path, on_connected);
}

/* See host_channel.h. */
int host_channel_new(uv_loop_t *loop, const char *path, const struct host_channel_config *cfg,
                     const struct host_channel_callbacks *cbs, void *opaque,
                     struct host_channel **ret_channel)
{
    if (!loop || !path || !path[0] || !cbs)
        return -EINVAL;
    struct host_channel *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return -ENOMEM;
    if (strlen(path) >= sizeof(ch->path)) {
        free(ch);
        return -ENAMETOOLONG;
    }
    strcpy(ch->path, path);
    ch->loop = loop;
    if (cfg)
        ch->cfg = *cfg;
    if (!ch->cfg.backoff_min_ms)
        ch->cfg.backoff_min_ms = HOST_CHANNEL_DEFAULT_BACKOFF_MIN_MS;
    if (!ch->cfg.backoff_max_ms)
        ch->cfg.backoff_max_ms = HOST_CHANNEL_DEFAULT_BACKOFF_MAX_MS;
    if (ch->cfg.backoff_max_ms < ch->cfg.backoff_min_ms)
        ch->cfg.backoff_max_ms = ch->cfg.backoff_min_ms;
    if (!ch->cfg.max_write_queue)
        ch->cfg.max_write_queue = HOST_CHANNEL_DEFAULT_MAX_WRITE_QUEUE;
    if (!ch->cfg.stable_ms)
        ch->cfg.stable_ms = ch->cfg.backoff_max_ms > 1000 ? ch->cfg.backoff_max_ms : 1000;
    ch->cbs = *cbs;
    ch->opaque = opaque;
    link_backoff_init(&ch->backoff, ch->cfg.backoff_min_ms * NS_PER_MS,
                      ch->cfg.backoff_max_ms * NS_PER_MS, ch->cfg.stable_ms * NS_PER_MS);
    uv_timer_init(loop, &ch->retry_timer);
    ch->retry_timer.data = ch;
    ch->open_handles = 1;
    if (sock_watch_init(loop, &ch->watch, ch->path, on_socket_appeared, ch) == 0) {
        ch->watch_ok = true;
        ch->open_handles++;
    }
    *ret_channel = ch;
    return 0;
}

/* See host_channel.h. */
int host_channel_start(struct host_channel *ch)
{
    if (ch->started)
        return -EALREADY;
    ch->started = true;
    try_connect(ch);
    return 0;
}

/* See host_channel.h. */
void host_channel_pause(struct host_channel *ch)
{
    ch->paused = true;
    if (ch->conn && ch->conn->reading) {
        uv_read_stop((uv_stream_t *)&ch->conn->pipe);
        ch->conn->reading = false;
    }
}

/* See host_channel.h. */
void host_channel_resume(struct host_channel *ch)
{
    if (!ch->paused || ch->closing)
        return;
    ch->paused = false;
    if (ch->conn)
        start_reading(ch);
}

/* See host_channel.h. */
bool host_channel_paused(const struct host_channel *ch)
{
    return ch->paused;
}

static void on_written(uv_write_t *req, int status)
{
    (void)status; /* a failed write shows up as a read error or EOF too */
    struct write_req *w = (struct write_req *)req;
    w->conn->write_queued -= w->len;
    free(w);
}

/* See host_channel.h. */
int host_channel_write(struct host_channel *ch, const char *data, size_t len)
{
    if (!ch->connected || ch->closing)
        return -ENOTCONN;
    struct conn *conn = ch->conn;
    if (len > ch->cfg.max_write_queue - conn->write_queued || len > ch->cfg.max_write_queue)
        return -ENOBUFS;
    struct write_req *w = malloc(sizeof(*w) + len);
    if (!w)
        return -ENOMEM;
    memcpy(w->data, data, len);
    w->len = len;
    w->conn = conn;
    uv_buf_t buf = uv_buf_init(w->data, (unsigned)len);
    int r = uv_write(&w->req, (uv_stream_t *)&conn->pipe, &buf, 1, on_written);
    if (r < 0) {
        free(w);
        return r;
    }
    conn->write_queued += len;
    return 0;
}

/* See host_channel.h. */
bool host_channel_connected(const struct host_channel *ch)
{
    return ch->connected;
}

/* See host_channel.h. */
const struct host_channel_stats *host_channel_stats(const struct host_channel *ch)
{
    return &ch->stats;
}

/* See host_channel.h. */
uint64_t host_channel_retry_ms(const struct host_channel *ch)
{
    return ch->conn ? 0 : ch->retry_ms;
}

/* See host_channel.h. */
const char *host_channel_path(const struct host_channel *ch)
{
    return ch->path;
}

/* See host_channel.h. */
void host_channel_close(struct host_channel *ch, host_channel_closed_cb closed)
{
    if (ch->closing)
        return;
    ch->closing = true;
    ch->closed = closed;
    link_gate_leave(link_gate_shared(), &ch->gate_wait);
    uv_timer_stop(&ch->retry_timer);
    uv_close((uv_handle_t *)&ch->retry_timer, on_timer_closed);
    if (ch->watch_ok)
        sock_watch_close(&ch->watch, on_watch_closed);
    if (ch->conn) {
        struct conn *conn = ch->conn;
        ch->conn = NULL;
        ch->connected = false;
        uv_close((uv_handle_t *)&conn->pipe, on_conn_closed);
    }
}
