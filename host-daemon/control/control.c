/* Control socket server: a unix listener, one request at a time per connection, only the
 * daemon's own user, a bounded number of clients; requests answered through control_ops. */
#include "host-daemon/control/control.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "host-daemon/control/control_proto.h"
#include "host-daemon/util/log.h"

struct control_server {
    uv_pipe_t listener;
    const struct control_ops *ops;
    void *ops_ctx;
    char path[CONFIG_PATH_MAX];
    unsigned max_clients;
    unsigned clients;
    bool closing;
    struct control_conn *conns; /* list of open connections */
};

/* A connection that sends no complete request for this long is closed, so an idle or
 * stuck client cannot hold one of the few connection slots for ever. */
#define CONTROL_IDLE_TIMEOUT_MS 30000

struct control_conn {
    uv_pipe_t pipe;
    uv_timer_t idle;
    int open_handles;
    struct control_server *server;
    struct control_conn *next;
    bool closing;
    bool close_after_write;
    size_t len;
    char buf[CONTROL_MAX_REQUEST];
};

struct reply_write {
    uv_write_t req;
    struct control_conn *conn;
    char *text;
};

static void on_conn_closed(uv_handle_t *h)
{
    struct control_conn *conn = h->data;
    struct control_server *s = conn->server;
    if (--conn->open_handles > 0)
        return;
    for (struct control_conn **p = &s->conns; *p; p = &(*p)->next) {
        if (*p == conn) {
            *p = conn->next;
            break;
        }
    }
    s->clients--;
    free(conn);
    if (s->closing && s->clients == 0 && !s->listener.data)
        free(s);
}

static void conn_close(struct control_conn *conn)
{
    if (conn->closing)
        return;
    conn->closing = true;
    uv_close((uv_handle_t *)&conn->pipe, on_conn_closed);
    uv_close((uv_handle_t *)&conn->idle, on_conn_closed);
}

static void on_idle(uv_timer_t *t)
{
    conn_close(t->data);
}

static void process(struct control_conn *conn);

static void on_reply_written(uv_write_t *req, int status)
{
    struct reply_write *w = (struct reply_write *)req;
    struct control_conn *conn = w->conn;
    free(w->text);
    free(w);
    if (conn->closing)
        return;
    if (status < 0 || conn->close_after_write) {
        conn_close(conn);
        return;
    }
    /* One request at a time: read on only once the reply is out. */
    process(conn);
}

static void send_reply(struct control_conn *conn, json_t *reply)
{
    struct reply_write *w = calloc(1, sizeof(*w));
    char *text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
    json_decref(reply);
    if (!w || !text) {
        free(w);
        free(text);
        conn_close(conn);
        return;
    }
    size_t len = strlen(text);
    text[len] = '\0';
    char *line = realloc(text, len + 2);
    if (!line) {
        free(text);
        free(w);
        conn_close(conn);
        return;
    }
    line[len] = '\n';
    w->text = line;
    w->conn = conn;
    uv_buf_t buf = uv_buf_init(line, (unsigned)(len + 1));
    uv_read_stop((uv_stream_t *)&conn->pipe);
    if (uv_write(&w->req, (uv_stream_t *)&conn->pipe, &buf, 1, on_reply_written) < 0) {
        free(line);
        free(w);
        conn_close(conn);
    }
}

static bool is_mutation(const char *line, size_t len)
{
    struct control_request req;
    char err[8];
    return control_parse_request(line, len, &req, err, sizeof(err)) == 0 &&
           control_is_change(req.cmd);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct control_conn *conn = h->data;
    *buf = uv_buf_init(conn->buf + conn->len, (unsigned)(sizeof(conn->buf) - conn->len));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

/* Handle the first complete line in the buffer, if any; else read more. */
static void process(struct control_conn *conn)
{
    struct control_server *s = conn->server;
    char *nl = memchr(conn->buf, '\n', conn->len);
    if (!nl) {
        if (conn->len == sizeof(conn->buf)) {
            conn->close_after_write = true;
            send_reply(conn, json_pack("{sbss}", "ok", 0, "error", "request too long"));
            return;
        }
        if (uv_read_start((uv_stream_t *)&conn->pipe, on_alloc, on_read) < 0)
            conn_close(conn);
        uv_timer_start(&conn->idle, on_idle, CONTROL_IDLE_TIMEOUT_MS, 0);
        return;
    }
    size_t line_len = (size_t)(nl - conn->buf);
    json_t *reply = control_handle_line(s->ops, s->ops_ctx, conn->buf, line_len);
    if (is_mutation(conn->buf, line_len)) {
        bool ok = json_is_true(json_object_get(reply, "ok"));
        log_info("control: %.*s -> %s", (int)(line_len > 200 ? 200 : line_len), conn->buf,
                 ok ? "ok" : json_string_value(json_object_get(reply, "error")));
    }
    memmove(conn->buf, nl + 1, conn->len - line_len - 1);
    conn->len -= line_len + 1;
    send_reply(conn, reply);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct control_conn *conn = stream->data;
    if (nread < 0) {
        conn_close(conn);
        return;
    }
    conn->len += (size_t)nread;
    if (memchr(conn->buf, '\n', conn->len) || conn->len == sizeof(conn->buf)) {
        uv_read_stop(stream);
        process(conn);
    }
}

/* Only the daemon's own user (or root) may talk to it, whatever the socket's mode. */
static bool peer_allowed(uv_pipe_t *pipe)
{
    uv_os_fd_t fd;
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (uv_fileno((uv_handle_t *)pipe, &fd) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return false;
    return cred.uid == 0 || cred.uid == geteuid();
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct control_server *s = listener->data;
    if (status < 0)
        return;
    struct control_conn *conn = calloc(1, sizeof(*conn));
    if (!conn)
        return;
    conn->server = s;
    uv_pipe_init(listener->loop, &conn->pipe, 0);
    conn->pipe.data = conn;
    uv_timer_init(listener->loop, &conn->idle);
    conn->idle.data = conn;
    conn->open_handles = 2;
    conn->next = s->conns;
    s->conns = conn;
    s->clients++;
    if (uv_accept(listener, (uv_stream_t *)&conn->pipe) < 0) {
        conn_close(conn);
        return;
    }
    if (!peer_allowed(&conn->pipe)) {
        log_warning("control: refused a connection from another user");
        conn_close(conn);
        return;
    }
    if (s->clients > s->max_clients) {
        conn->close_after_write = true;
        send_reply(conn, json_pack("{sbss}", "ok", 0, "error", "too many control connections"));
        return;
    }
    process(conn);
}

/* A socket file at path that nobody answers on is a leftover: remove it. */
static int remove_stale_socket(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode))
        return -EEXIST;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strcpy(addr.sun_path, path);
    int r = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
    close(fd);
    if (r == 0)
        return -EADDRINUSE;
    return unlink(path) < 0 ? -errno : 0;
}

static void on_listener_closed(uv_handle_t *h)
{
    struct control_server *s = h->data;
    s->listener.data = NULL;
    if (s->clients == 0)
        free(s);
}

/* See control.h. */
int control_server_start(uv_loop_t *loop, const char *path, unsigned max_clients,
                         const struct control_ops *ops, void *ops_ctx,
                         struct control_server **ret_server)
{
    if (strlen(path) >= CONFIG_PATH_MAX)
        return -ENAMETOOLONG;
    int r = remove_stale_socket(path);
    if (r < 0)
        return r;
    struct control_server *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->ops = ops;
    s->ops_ctx = ops_ctx;
    strcpy(s->path, path);
    s->max_clients = max_clients;
    uv_pipe_init(loop, &s->listener, 0);
    s->listener.data = s;
    /* Created owner-only from the start: no window with a wider mode. */
    mode_t old = umask(0077);
    r = uv_pipe_bind(&s->listener, path);
    umask(old);
    if (r == 0)
        r = chmod(path, 0600) < 0 ? -errno : 0;
    if (r == 0)
        r = uv_listen((uv_stream_t *)&s->listener, 16, on_connection);
    if (r < 0) {
        s->closing = true;
        uv_close((uv_handle_t *)&s->listener, on_listener_closed); /* frees s */
        return r;
    }
    *ret_server = s;
    return 0;
}

/* See control.h. */
void control_server_close(struct control_server *s)
{
    s->closing = true;
    unlink(s->path);
    for (struct control_conn *c = s->conns; c; c = c->next)
        conn_close(c);
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}
