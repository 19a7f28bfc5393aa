/* One simulated guest: a scripted QMP monitor and the agent's chardev socket. */
#include "bench/scale/sim.h"

#include <errno.h>
#include <jansson.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define QMP_MAX_LINE (64 * 1024)

/* Every read lands in one buffer: the loop is single-threaded and each read is consumed
 * before the next one starts. */
static char read_buf[64 * 1024];

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = read_buf;
    buf->len = sizeof(read_buf);
}

struct write_req {
    uv_write_t req;
    struct sim_guest *guest; /* NULL: a QMP write, nothing to track */
    size_t len;
    char data[];
};

static void write_done(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    (void)status;
    if (w->guest)
        w->guest->write_busy = false;
    free(w);
}

/* Queue len bytes on a stream (copied). */
static int queue_write(uv_stream_t *s, const char *data, size_t len, struct sim_guest *track)
{
    struct write_req *w = malloc(sizeof(*w) + len);
    if (!w)
        return -ENOMEM;
    memcpy(w->data, data, len);
    w->len = len;
    w->guest = track;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    int r = uv_write(&w->req, s, &b, 1, write_done);
    if (r < 0) {
        free(w);
        return r;
    }
    if (track)
        track->write_busy = true;
    return 0;
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

/* Accept and close a second client at once: QEMU's sockets serve one client. */
static void refuse(struct sim_guest *g, uv_stream_t *server)
{
    uv_pipe_t *extra = malloc(sizeof(*extra));
    if (!extra)
        return;
    uv_pipe_init(g->sim->loop, extra, 0);
    uv_accept(server, (uv_stream_t *)extra);
    uv_close((uv_handle_t *)extra, free_handle);
}

/* --- scripted QMP monitor --- */

static void qmp_send_json(struct sim_guest *g, json_t *msg)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (!text)
        return;
    size_t len = strlen(text);
    char *line = malloc(len + 2);
    if (line) {
        memcpy(line, text, len);
        line[len] = '\r';
        line[len + 1] = '\n';
        queue_write((uv_stream_t *)&g->qmp_conn, line, len + 2, NULL);
        free(line);
    }
    free(text);
}

static json_t *reply(json_t *id, json_t *ret)
{
    json_t *r = json_pack("{s:o}", "return", ret);
    if (id)
        json_object_set(r, "id", id);
    return r;
}

static void qmp_handle(struct sim_guest *g, const char *line, size_t len)
{
    json_error_t err;
    json_t *msg = json_loadb(line, len, 0, &err);
    if (!msg || !json_is_object(msg)) {
        json_decref(msg);
        g->sim->counters.bad_from_daemon++;
        return;
    }
    const char *cmd = json_string_value(json_object_get(msg, "execute"));
    json_t *id = json_object_get(msg, "id");
    if (!cmd) {
        g->sim->counters.bad_from_daemon++;
    } else if (!strcmp(cmd, "qmp_capabilities")) {
        qmp_send_json(g, reply(id, json_object()));
    } else if (!strcmp(cmd, "query-balloon")) {
        g->qmp_queried = true;
        qmp_send_json(g, reply(id, json_pack("{s:I}", "actual", (json_int_t)g->actual_bytes)));
    } else if (!strcmp(cmd, "balloon")) {
        uint64_t now = uv_hrtime();
        json_int_t value =
            json_integer_value(json_object_get(json_object_get(msg, "arguments"), "value"));
        g->balloon_cmds++;
        g->sim->counters.balloon_cmds++;
        qmp_send_json(g, reply(id, json_object()));
        if (value > 0) {
            g->actual_bytes = (uint64_t)value;
            uv_timeval64_t tv;
            uv_gettimeofday(&tv);
            qmp_send_json(g,
                          json_pack("{s:s, s:{s:I}, s:{s:I, s:I}}", "event", "BALLOON_CHANGE",
                                    "data", "actual", value, "timestamp", "seconds",
                                    (json_int_t)tv.tv_sec, "microseconds", (json_int_t)tv.tv_usec));
        }
        if (g->sim->on_balloon)
            g->sim->on_balloon(g, (uint64_t)(value > 0 ? value : 0), now);
    } else {
        json_t *e = json_pack("{s:{s:s, s:s}}", "error", "class", "CommandNotFound", "desc",
                              "The command has not been found");
        if (id)
            json_object_set(e, "id", id);
        qmp_send_json(g, e);
    }
    json_decref(msg);
}

static void conn_closed(uv_handle_t *h)
{
    (void)h;
}

static void qmp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct sim_guest *g = s->data;
    if (n < 0) {
        g->sim->counters.disconnects++;
        g->qmp_connected = false;
        g->qmp_len = 0;
        uv_close((uv_handle_t *)s, conn_closed);
        return;
    }
    const char *p = buf->base;
    size_t left = (size_t)n;
    while (left > 0) {
        const char *nl = memchr(p, '\n', left);
        size_t take = nl ? (size_t)(nl - p) + 1 : left;
        if (g->qmp_len + take > QMP_MAX_LINE) {
            g->sim->counters.bad_from_daemon++;
            g->qmp_len = 0;
        } else {
            if (g->qmp_len + take > g->qmp_cap) {
                size_t cap = g->qmp_cap ? g->qmp_cap * 2 : 512;
                while (cap < g->qmp_len + take)
                    cap *= 2;
                char *nb = realloc(g->qmp_buf, cap);
                if (!nb)
                    return;
                g->qmp_buf = nb;
                g->qmp_cap = cap;
            }
            memcpy(g->qmp_buf + g->qmp_len, p, take);
            g->qmp_len += take;
            if (nl) {
                qmp_handle(g, g->qmp_buf, g->qmp_len);
                g->qmp_len = 0;
            }
        }
        p += take;
        left -= take;
    }
}

static void qmp_accept(uv_stream_t *server, int status)
{
    struct sim_guest *g = server->data;
    if (status < 0)
        return;
    if (g->qmp_connected) { /* one monitor client at a time, as QEMU */
        refuse(g, server);
        return;
    }
    uv_pipe_init(g->sim->loop, &g->qmp_conn, 0);
    g->qmp_conn.data = g;
    if (uv_accept(server, (uv_stream_t *)&g->qmp_conn) < 0) {
        uv_close((uv_handle_t *)&g->qmp_conn, NULL);
        return;
    }
    g->qmp_connected = true;
    g->sim->counters.qmp_connects++;
    qmp_send_json(g, json_pack("{s:{s:{s:{s:i, s:i, s:i}, s:s}, s:[]}}", "QMP", "version", "qemu",
                               "micro", 0, "minor", 2, "major", 7, "package", "bellows-scale",
                               "capabilities"));
    uv_read_start((uv_stream_t *)&g->qmp_conn, alloc_cb, qmp_read);
}

/* --- the agent's chardev --- */

static void on_daemon_frame(const char *payload, size_t len, void *opaque)
{
    struct sim_guest *g = opaque;
    struct bp_msg msg;
    if (bp_decode(payload, len, &msg, NULL, 0) != BP_OK) {
        g->sim->counters.bad_from_daemon++;
        return;
    }
    if (msg.type == BP_MSG_WELCOME && !g->welcomed) {
        g->welcomed = true;
        g->sim->counters.welcomes++;
    }
}

static void chan_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct sim_guest *g = s->data;
    if (n < 0) {
        g->sim->counters.disconnects++;
        g->chan_connected = false;
        g->welcomed = false;
        uv_close((uv_handle_t *)s, conn_closed);
        return;
    }
    bp_framer_feed(g->framer, buf->base, (size_t)n, on_daemon_frame, g);
}

static void send_hello(struct sim_guest *g)
{
    struct bp_msg m = {.type = BP_MSG_HELLO};
    m.u.hello.protocol_version = BP_PROTOCOL_VERSION;
    snprintf(m.u.hello.agent, sizeof(m.u.hello.agent), "bellows-scale 0.1.0");
    snprintf(m.u.hello.boot_id, sizeof(m.u.hello.boot_id), "scale-%s-%llu", g->name,
             (unsigned long long)uv_hrtime());
    m.u.hello.sources = (1u << BP_SOURCE_PSI) | (1u << BP_SOURCE_VMPRESSURE);
    m.u.hello.caps = BP_CAP_REPORT;
    g->seq = SIM_SEQ_BASE;
    char frame[BP_MAX_FRAME];
    size_t len;
    if (bp_encode(&m, frame, sizeof(frame), &len) == BP_OK)
        queue_write((uv_stream_t *)&g->chan_conn, frame, len, g);
}

static void chan_accept(uv_stream_t *server, int status)
{
    struct sim_guest *g = server->data;
    if (status < 0)
        return;
    if (g->chan_connected) { /* a chardev socket takes one client */
        refuse(g, server);
        return;
    }
    uv_pipe_init(g->sim->loop, &g->chan_conn, 0);
    g->chan_conn.data = g;
    if (uv_accept(server, (uv_stream_t *)&g->chan_conn) < 0) {
        uv_close((uv_handle_t *)&g->chan_conn, NULL);
        return;
    }
    g->chan_connected = true;
    g->write_busy = false;
    g->sim->counters.chan_connects++;
    bp_framer_reset(g->framer);
    uv_read_start((uv_stream_t *)&g->chan_conn, alloc_cb, chan_read);
    send_hello(g);
}

static int listen_on(struct sim *sim, uv_pipe_t *server, const char *path, uv_connection_cb cb,
                     struct sim_guest *g)
{
    int r = uv_pipe_init(sim->loop, server, 0);
    if (r < 0)
        return r;
    server->data = g;
    unlink(path);
    if ((r = uv_pipe_bind(server, path)) < 0 || (r = uv_listen((uv_stream_t *)server, 8, cb)) < 0) {
        uv_close((uv_handle_t *)server, NULL);
        return r;
    }
    return 0;
}

int sim_guest_listen(struct sim *sim, struct sim_guest *g)
{
    g->sim = sim;
    g->actual_bytes = sim->initial_actual;
    g->framer = malloc(sizeof(*g->framer));
    if (!g->framer)
        return -ENOMEM;
    bp_framer_init(g->framer);
    int r = listen_on(sim, &g->qmp_server, g->qmp_path, qmp_accept, g);
    if (r < 0)
        return r;
    r = listen_on(sim, &g->chan_server, g->chan_path, chan_accept, g);
    if (r < 0) {
        uv_close((uv_handle_t *)&g->qmp_server, NULL);
        return r;
    }
    g->listening = true;
    return 0;
}

void sim_guest_close(struct sim_guest *g)
{
    if (!g->listening)
        return;
    g->listening = false;
    uv_close((uv_handle_t *)&g->qmp_server, NULL);
    uv_close((uv_handle_t *)&g->chan_server, NULL);
    if (g->qmp_connected)
        uv_close((uv_handle_t *)&g->qmp_conn, NULL);
    if (g->chan_connected)
        uv_close((uv_handle_t *)&g->chan_conn, NULL);
    g->qmp_connected = g->chan_connected = false;
    unlink(g->qmp_path);
    unlink(g->chan_path);
}

static void fill_pressure(struct sim_guest *g, enum bp_level level, uint64_t mono_ns,
                          struct bp_msg *ret_msg)
{
    memset(ret_msg, 0, sizeof(*ret_msg));
    ret_msg->type = BP_MSG_PRESSURE;
    struct bp_pressure *p = &ret_msg->u.pressure;
    p->seq = g->seq + 1;
    p->mono_ns = SIM_MONO_BASE + mono_ns % SIM_MONO_BASE;
    p->level = level;
    p->source = BP_SOURCE_PSI;
    uint64_t total_kb = g->actual_bytes / 1024;
    p->mem.mem_total_kb = total_kb;
    p->mem.mem_free_kb = total_kb / 10;
    p->mem.mem_available_kb = total_kb / 8;
    p->mem.committed_as_kb = total_kb - total_kb / 8;
    p->mem.psi_some_avg10 = level >= BP_LEVEL_MEDIUM ? 30.0 : 2.0;
    p->mem.psi_full_avg10 = level >= BP_LEVEL_CRITICAL ? 20.0 : 0.0;
    p->mem.psi_some_total_us = 123456;
    p->mem.psi_full_total_us = 12345;
}

int sim_guest_encode_pressure(struct sim_guest *g, enum bp_level level, uint64_t mono_ns, char *buf,
                              size_t cap, size_t *ret_len)
{
    struct bp_msg msg;
    fill_pressure(g, level, mono_ns, &msg);
    return bp_encode(&msg, buf, cap, ret_len) == BP_OK ? 0 : -EINVAL;
}

/* Write decimal v into exactly width digits at p (v has that many digits). */
static void put_digits(char *p, size_t width, uint64_t v)
{
    for (size_t i = width; i-- > 0; v /= 10)
        p[i] = (char)('0' + v % 10);
}

/* The frame for g's next event: a full encode the first time per level, then the cached
 * frame with only seq and mono_ns rewritten in place (both keep their digit count, see
 * SIM_SEQ_BASE), so the generator's cost per frame is little more than the write. */
static int next_frame(struct sim_guest *g, enum bp_level level, uint64_t mono_ns, char *frame,
                      size_t cap, size_t *ret_len)
{
    struct sim_template *t = &g->tmpl;
    if (t->len && t->level == level && t->actual == g->actual_bytes && t->len <= cap) {
        memcpy(frame, t->text, t->len);
        put_digits(frame + t->seq_off, SIM_SEQ_DIGITS, g->seq + 1);
        put_digits(frame + t->mono_off, SIM_MONO_DIGITS, SIM_MONO_BASE + mono_ns % SIM_MONO_BASE);
        *ret_len = t->len;
        return 0;
    }
    int r = sim_guest_encode_pressure(g, level, mono_ns, frame, cap, ret_len);
    if (r < 0)
        return r;
    const char *seq = memmem(frame, *ret_len, "\"seq\":", 6);
    const char *mono = memmem(frame, *ret_len, "\"mono_ns\":", 10);
    if (seq && mono && *ret_len <= sizeof(t->text)) {
        memcpy(t->text, frame, *ret_len);
        t->len = *ret_len;
        t->seq_off = (size_t)(seq - frame) + 6;
        t->mono_off = (size_t)(mono - frame) + 10;
        t->level = level;
        t->actual = g->actual_bytes;
    }
    return 0;
}

int sim_guest_send_pressure(struct sim_guest *g, enum bp_level level, uint64_t mono_ns)
{
    if (!g->chan_connected)
        return -ENOTCONN;
    if (g->write_busy)
        return 0;
    char frame[BP_MAX_FRAME];
    size_t len;
    int r = next_frame(g, level, mono_ns, frame, sizeof(frame), &len);
    if (r < 0)
        return r;
    uv_buf_t b = uv_buf_init(frame, (unsigned)len);
    r = uv_try_write((uv_stream_t *)&g->chan_conn, &b, 1);
    if (r == UV_EAGAIN) {
        g->sim->counters.write_eagain++;
        return 0;
    }
    if (r < 0)
        return r;
    if ((size_t)r < len) {
        int q = queue_write((uv_stream_t *)&g->chan_conn, frame + r, len - (size_t)r, g);
        if (q < 0)
            return q;
    }
    g->seq++;
    g->frames_sent++;
    g->bytes_sent += len;
    return 1;
}

int sim_guest_unread(struct sim_guest *g, uint64_t *ret_bytes)
{
    uv_os_fd_t fd;
    if (!g->chan_connected || uv_fileno((uv_handle_t *)&g->chan_conn, &fd) < 0) {
        *ret_bytes = 0;
        return 0;
    }
    int queued = 0;
    if (ioctl(fd, SIOCOUTQ, &queued) < 0)
        return -errno;
    *ret_bytes = (uint64_t)queued;
    return 0;
}
