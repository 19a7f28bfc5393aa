/* Guest end of the virtio-serial transport: discovery, non-blocking writes, hang-up backoff. */
#include "virtio/guest_port.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define NS_PER_MS UINT64_C(1000000)
/* Reads per wake-up before yielding to the rest of the loop. */
#define READS_PER_WAKEUP 16

static int join_path(char *buf, size_t cap, const char *a, const char *b, const char *c)
{
    int n = snprintf(buf, cap, "%s/%s%s%s", a, b, c ? "/" : "", c ? c : "");
    if (n < 0 || (size_t)n >= cap)
        return -ENAMETOOLONG;
    return 0;
}

/* Read a small sysfs attribute into buf without its trailing newline. */
static int read_attr(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, cap - 1);
    int err = errno;
    close(fd);
    if (n < 0)
        return -err;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\0'))
        n--;
    buf[n] = '\0';
    return 0;
}

int guest_port_find(const char *sys_root, const char *dev_root, const char *name, char *ret_path,
                    size_t cap)
{
    char path[PATH_MAX];
    int r;

    if (name[0] == '\0' || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return -EINVAL;

    /* udev's link first: it names exactly the port we want. */
    r = join_path(path, sizeof(path), dev_root, "virtio-ports", name);
    if (r < 0)
        return r;
    if (access(path, F_OK) == 0) {
        if (strlen(path) >= cap)
            return -ENAMETOOLONG;
        strcpy(ret_path, path);
        return 0;
    }

    r = join_path(path, sizeof(path), sys_root, "class", "virtio-ports");
    if (r < 0)
        return r;
    DIR *dir = opendir(path);
    if (!dir)
        return -ENOENT;
    r = -ENOENT;
    struct dirent *de;
    while ((de = readdir(dir))) {
        char attr[PATH_MAX], port_name[256];
        if (de->d_name[0] == '.')
            continue;
        if (snprintf(attr, sizeof(attr), "%s/%s/name", path, de->d_name) >= (int)sizeof(attr))
            continue;
        if (read_attr(attr, port_name, sizeof(port_name)) < 0 || strcmp(port_name, name) != 0)
            continue;
        r = join_path(ret_path, cap, dev_root, de->d_name, NULL);
        break;
    }
    closedir(dir);
    return r;
}

static void attempt(struct guest_port *port);

static void on_retry(uv_timer_t *timer)
{
    attempt(timer->data);
}

/* An attempt failed or the port is down and closed: schedule the next attempt. */
static void schedule_retry(struct guest_port *port, int err)
{
    uint64_t delay_ns = link_backoff_down(&port->backoff, uv_hrtime());
    uint64_t delay_ms = (delay_ns + NS_PER_MS - 1) / NS_PER_MS;
    port->last_err = err;
    port->stats.downs++;
    uv_timer_start(&port->retry, on_retry, delay_ms, 0);
    if (port->ops->on_down)
        port->ops->on_down(port, err, delay_ms, port->opaque);
}

static void finish_close(struct guest_port *port)
{
    if (--port->pending_closes == 0 && port->close_cb)
        port->close_cb(port);
}

static void on_poll_closed(uv_handle_t *handle)
{
    struct guest_port *port = handle->data;
    if (port->fd >= 0)
        close(port->fd);
    port->fd = -1;
    port->kind = GUEST_PORT_NONE;
    if (port->closing)
        finish_close(port);
    else
        schedule_retry(port, port->last_err);
}

/* Take the port down; the next attempt is scheduled once the poll handle is closed. */
static void hang_up(struct guest_port *port, int err)
{
    if (!port->up)
        return;
    port->up = false;
    port->out_len = port->out_off = 0;
    port->last_err = err;
    port->polling = false;
    uv_close((uv_handle_t *)&port->poll, on_poll_closed);
}

static void on_poll(uv_poll_t *poll, int status, int events);

/* Watch for what we need: input from the host, and room when a frame waits. */
static void update_poll(struct guest_port *port)
{
    int events = 0;
    if (port->kind != GUEST_PORT_FIFO)
        events |= UV_READABLE;
    if (port->out_len > 0)
        events |= UV_WRITABLE;
    if (events)
        uv_poll_start(&port->poll, events, on_poll);
    else
        uv_poll_stop(&port->poll);
}

/* Write what is left of the frame in flight. Returns 1 when it is all written, 0 when it
 * waits for room, a negative errno when the port went down. */
static int flush_out(struct guest_port *port)
{
    while (port->out_off < port->out_len) {
        const char *p = port->out + port->out_off;
        size_t n = port->out_len - port->out_off;
        ssize_t w = port->kind == GUEST_PORT_SOCKET ? send(port->fd, p, n, MSG_NOSIGNAL)
                                                    : write(port->fd, p, n);
        if (w >= 0) {
            port->out_off += (size_t)w;
            port->stats.bytes += (uint64_t)w;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            port->stats.eagain++;
            update_poll(port);
            return 0;
        }
        int err = -errno;
        hang_up(port, err);
        return err;
    }
    port->out_len = port->out_off = 0;
    port->stats.frames++;
    update_poll(port);
    return 1;
}

static void read_input(struct guest_port *port)
{
    char buf[4096];
    for (int i = 0; i < READS_PER_WAKEUP && port->up; i++) {
        ssize_t n = read(port->fd, buf, sizeof(buf));
        if (n > 0) {
            if (port->ops->on_data)
                port->ops->on_data(port, buf, (size_t)n, port->opaque);
            continue;
        }
        if (n == 0) {
            /* The host closed its side (a virtio port then stays POLLHUP). */
            hang_up(port, 0);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            hang_up(port, -errno);
        return;
    }
}

static void on_poll(uv_poll_t *poll, int status, int events)
{
    struct guest_port *port = poll->data;

    if (status < 0) {
        /* libuv reports POLLERR without POLLPRI as UV_EBADF: a terminal or port whose other
         * side is gone for good. A hang-up like any other. */
        hang_up(port, status == UV_EBADF ? 0 : status);
        return;
    }
    if (events & UV_READABLE)
        read_input(port);
    if (port->up && (events & UV_WRITABLE) && port->out_len > 0) {
        if (flush_out(port) == 1 && port->ops->on_writable)
            port->ops->on_writable(port, port->opaque);
    }
}

/* Open the path as what it is; returns the fd or a negative errno. */
static int open_device(struct guest_port *port)
{
    struct stat st;
    if (stat(port->path, &st) < 0)
        return -errno;
    if (S_ISSOCK(st.st_mode)) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(port->path) >= sizeof(sa.sun_path))
            return -ENAMETOOLONG;
        strcpy(sa.sun_path, port->path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            int err = -errno;
            close(fd);
            return err;
        }
        port->kind = GUEST_PORT_SOCKET;
        return fd;
    }
    if (S_ISFIFO(st.st_mode)) {
        /* Write-only: ENXIO until a reader opens it. */
        int fd = open(port->path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
            return -errno;
        port->kind = GUEST_PORT_FIFO;
        return fd;
    }
    if (S_ISCHR(st.st_mode)) {
        /* A virtio port allows one opener: EBUSY while another holds it. */
        int fd = open(port->path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
            return -errno;
        port->kind = GUEST_PORT_CHAR;
        return fd;
    }
    return -ENOTSUP;
}

static void attempt(struct guest_port *port)
{
    int r;

    if (port->closing || port->up || port->polling)
        return;
    if (port->cfg.device) {
        if (strlen(port->cfg.device) >= sizeof(port->path)) {
            schedule_retry(port, -ENAMETOOLONG);
            return;
        }
        strcpy(port->path, port->cfg.device);
    } else {
        r = guest_port_find(port->cfg.sys_root, port->cfg.dev_root, port->cfg.name, port->path,
                            sizeof(port->path));
        if (r < 0) {
            port->path[0] = '\0';
            schedule_retry(port, r);
            return;
        }
    }
    int fd = open_device(port);
    if (fd < 0) {
        schedule_retry(port, fd);
        return;
    }
    r = uv_poll_init(port->loop, &port->poll, fd);
    if (r < 0) {
        close(fd);
        port->kind = GUEST_PORT_NONE;
        schedule_retry(port, r);
        return;
    }
    port->poll.data = port;
    port->fd = fd;
    port->polling = true;
    port->up = true;
    port->stats.ups++;
    link_backoff_up(&port->backoff, uv_hrtime());
    update_poll(port);
    if (port->ops->on_up)
        port->ops->on_up(port, port->opaque);
}

int guest_port_init(uv_loop_t *loop, struct guest_port *port, const struct guest_port_config *cfg,
                    const struct guest_port_ops *ops, void *opaque)
{
    memset(port, 0, sizeof(*port));
    port->loop = loop;
    port->cfg = *cfg;
    if (!port->cfg.sys_root)
        port->cfg.sys_root = "/sys";
    if (!port->cfg.dev_root)
        port->cfg.dev_root = "/dev";
    port->ops = ops;
    port->opaque = opaque;
    port->fd = -1;
    /* A connection that outlives the longest delay is healthy. */
    uint64_t max_ns = cfg->backoff_max_ms * NS_PER_MS;
    link_backoff_init(&port->backoff, cfg->backoff_min_ms * NS_PER_MS, max_ns,
                      max_ns > 1000 * NS_PER_MS ? max_ns : 1000 * NS_PER_MS);
    int r = uv_timer_init(loop, &port->retry);
    if (r < 0)
        return r;
    port->retry.data = port;
    return 0;
}

void guest_port_start(struct guest_port *port)
{
    attempt(port);
}

bool guest_port_ready(const struct guest_port *port)
{
    return port->up && port->out_len == 0;
}

int guest_port_send(struct guest_port *port, const char *frame, size_t len)
{
    if (len > sizeof(port->out))
        return -EMSGSIZE;
    if (!port->up)
        return -ENOTCONN;
    if (port->out_len > 0)
        return -EBUSY;
    memcpy(port->out, frame, len);
    port->out_len = len;
    port->out_off = 0;
    flush_out(port);
    return 0;
}

static void on_timer_closed(uv_handle_t *handle)
{
    finish_close(handle->data);
}

void guest_port_close(struct guest_port *port, void (*close_cb)(struct guest_port *port))
{
    if (port->closing)
        return;
    port->closing = true;
    port->close_cb = close_cb;
    port->up = false;
    port->pending_closes = 1;
    uv_close((uv_handle_t *)&port->retry, on_timer_closed);
    if (port->polling) {
        port->polling = false;
        port->pending_closes++;
        uv_close((uv_handle_t *)&port->poll, on_poll_closed);
    } else if (port->fd >= 0) {
        /* Closing after a hang-up already started: on_poll_closed will see closing. */
        port->pending_closes++;
    }
}
