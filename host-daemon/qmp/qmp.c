/* QMP client on a libuv loop (see qmp.h): connection state machine, command ids and
 * timeouts, reconnect with backoff. Message parsing lives in qmp_message.c. */
#include "host-daemon/qmp/qmp.h"
#include "host-daemon/qmp/qmp_message.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "virtio/link_backoff.h"
#include "virtio/link_gate.h"
#include "virtio/sock_watch.h"

#define NS_PER_MS UINT64_C(1000000)

enum qmp_state {
    QMP_IDLE,         /* made, not started */
    QMP_CONNECTING,   /* uv_pipe_connect in flight */
    QMP_GREETING,     /* connected, waiting for {"QMP": ...} */
    QMP_CAPABILITIES, /* qmp_capabilities sent */
    QMP_QUERY,        /* query-balloon sent: not ready until we know the actual size */
    QMP_READY,
    QMP_BACKOFF, /* connection dropped; the pipe closes, then the backoff timer runs */
    QMP_CLOSED,
};

enum qmp_purpose {
    PURPOSE_CAPABILITIES, /* handshake */
    PURPOSE_FIRST_QUERY,  /* handshake: the query-balloon before on_ready */
    PURPOSE_QUERY,        /* qmp_client_query_balloon */
    PURPOSE_BALLOON,      /* qmp_client_set_balloon */
    PURPOSE_EXECUTE,      /* qmp_client_execute */
};

struct qmp_command {
    struct qmp_command *next;
    uint64_t id;
    uint64_t deadline; /* loop time, ms */
    enum qmp_purpose purpose;
    int64_t target; /* PURPOSE_BALLOON */
    qmp_done_cb done;
    void *opaque;
};

/* A write in flight owns its bytes; it may finish after the connection it was for. */
struct qmp_write {
    uv_write_t req;
    char *bytes;
};

enum pipe_state { PIPE_NONE, PIPE_OPEN, PIPE_CLOSING };

/* Where the current attempt stands in the process's link gate (virtio/link_gate.h). */
enum gate_state { GATE_NONE, GATE_IN_FLIGHT, GATE_OPEN };

struct qmp_client {
    uv_loop_t *loop;
    char *path;
    struct qmp_client_config cfg;
    struct qmp_callbacks cbs;
    void *opaque;

    enum qmp_state state;
    unsigned generation; /* bumped whenever a connection ends: stale work checks it */
    uv_pipe_t pipe;
    enum pipe_state pipe_state;
    uv_connect_t connect_req;
    uv_timer_t timeout_timer; /* connect/greeting deadline, else earliest command deadline */
    uv_timer_t backoff_timer;
    struct sock_watch watch;           /* the socket's folder, while disconnected */
    struct link_gate_waiter gate_wait; /* waiting for the gate to let an attempt through */
    enum gate_state gate;
    bool watch_ok;           /* the watch's handle exists (it needs closing) */
    bool connect_asap;       /* the socket appeared while the pipe was still closing */
    uint64_t phase_deadline; /* QMP_CONNECTING and QMP_GREETING */
    struct link_backoff backoff;
    uint64_t retry_ms; /* the reconnect delay now scheduled */

    char *rbuf;
    size_t rlen, rcap;
    struct qmp_line_scan scan; /* how far rbuf was searched for a line end */

    struct qmp_command *pending; /* in send order */
    unsigned n_pending;
    unsigned missed; /* command timeouts since the last reply */
    uint64_t next_id;
    int64_t actual, target;
    const char *failed_phase;
    struct qmp_client_stats stats;

    bool closing;
    int handles_open; /* timers and the watch */
    qmp_closed_cb closed_cb;
};

static void start_connect(struct qmp_client *c);
static void drop_connection(struct qmp_client *c, int err, const char *reason);

static void on_timeout(uv_timer_t *t);

static bool connected(const struct qmp_client *c)
{
    return c->state == QMP_GREETING || c->state == QMP_CAPABILITIES || c->state == QMP_QUERY ||
           c->state == QMP_READY;
}

/* One timer serves the connection phase or, once connected, the earliest command. */
static void arm_timeout(struct qmp_client *c)
{
    uint64_t deadline, now = uv_now(c->loop);

    if (c->closing)
        return;
    if (c->state == QMP_CONNECTING || c->state == QMP_GREETING) {
        deadline = c->phase_deadline;
    } else if (c->pending && connected(c)) {
        deadline = c->pending->deadline;
        for (struct qmp_command *k = c->pending->next; k; k = k->next)
            if (k->deadline < deadline)
                deadline = k->deadline;
    } else {
        uv_timer_stop(&c->timeout_timer);
        return;
    }
    uv_timer_start(&c->timeout_timer, on_timeout, deadline > now ? deadline - now : 0, 0);
}

static void call_done(struct qmp_client *c, struct qmp_command *k, const struct qmp_result *res)
{
    if (k->done)
        k->done(c, res, k->opaque);
    free(k);
}

static void fail_command(struct qmp_client *c, struct qmp_command *k, int status)
{
    struct qmp_result res = {.status = status, .actual_bytes = -1};
    call_done(c, k, &res);
}

/* Fail every pending command; callbacks may add nothing (we are not ready). */
static void fail_all(struct qmp_client *c, int status)
{
    struct qmp_command *k = c->pending;
    c->pending = NULL;
    c->n_pending = 0;
    while (k) {
        struct qmp_command *next = k->next;
        fail_command(c, k, status);
        k = next;
    }
}

static void free_write(uv_write_t *req, int status)
{
    struct qmp_write *w = (struct qmp_write *)req;
    struct qmp_client *c = req->data;

    free(w->bytes);
    free(w);
    /* A write that fails on the live connection ends it; ECANCELED means it already ended. */
    if (status < 0 && status != UV_ECANCELED && !c->closing && connected(c))
        drop_connection(c, -EPIPE, "write to the QMP socket failed");
}

static int send_command(struct qmp_client *c, enum qmp_purpose purpose, const char *command,
                        const json_t *args, int64_t target, qmp_done_cb done, void *opaque)
{
    struct qmp_command *k;
    struct qmp_write *w;
    uv_buf_t buf;
    size_t len;
    int r;

    if (c->n_pending >= QMP_MAX_PENDING)
        return -EBUSY;
    k = calloc(1, sizeof(*k));
    w = calloc(1, sizeof(*w));
    if (!k || !w) {
        r = -ENOMEM;
        goto fail;
    }
    k->id = c->next_id++;
    k->purpose = purpose;
    k->target = target;
    k->done = done;
    k->opaque = opaque;
    k->deadline = uv_now(c->loop) + c->cfg.command_timeout_ms;
    r = qmp_build_command(command, args, k->id, &w->bytes, &len);
    if (r < 0)
        goto fail;
    /* Bytes a monitor has not read stay in libuv's queue, timed-out commands' too: bound
     * them, so a monitor that stops reading cannot make the daemon grow. */
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) + len > c->cfg.max_write_queue) {
        free(w->bytes);
        c->stats.write_refused++;
        r = -ENOBUFS;
        goto fail;
    }
    w->req.data = c;
    buf = uv_buf_init(w->bytes, (unsigned)len);
    r = uv_write(&w->req, (uv_stream_t *)&c->pipe, &buf, 1, free_write);
    if (r < 0) {
        free(w->bytes);
        goto fail;
    }
    /* Append: replies come in order, so the list stays short at its head. */
    struct qmp_command **tail = &c->pending;
    while (*tail)
        tail = &(*tail)->next;
    *tail = k;
    c->n_pending++;
    arm_timeout(c);
    return 0;

fail:
    free(w);
    free(k);
    return r;
}

static void on_backoff(uv_timer_t *t)
{
    start_connect(t->data);
}

/* The socket's name changed in its folder: QEMU made it again. Connect now instead of at
 * the end of the backoff, which starts over (this is a new socket). */
static void on_socket_appeared(struct sock_watch *w, void *opaque)
{
    struct qmp_client *c = opaque;
    (void)w;
    if (c->closing || c->state != QMP_BACKOFF)
        return;
    c->stats.watch_retries++;
    link_backoff_reset(&c->backoff);
    if (c->pipe_state != PIPE_NONE) {
        c->connect_asap = true; /* on_pipe_closed connects */
        return;
    }
    uv_timer_stop(&c->backoff_timer);
    start_connect(c);
}

static void maybe_finish_close(struct qmp_client *c)
{
    if (c->handles_open > 0 || c->pipe_state != PIPE_NONE)
        return;
    if (c->closed_cb)
        c->closed_cb(c, c->opaque);
    free(c->rbuf);
    free(c->path);
    free(c);
}

static void on_pipe_closed(uv_handle_t *h)
{
    struct qmp_client *c = h->data;

    c->pipe_state = PIPE_NONE;
    /* Every attempt ends here once: its place in the gate is given back. */
    if (c->gate == GATE_IN_FLIGHT)
        link_gate_failed(link_gate_shared());
    else if (c->gate == GATE_OPEN)
        link_gate_closed(link_gate_shared());
    c->gate = GATE_NONE;
    if (c->closing) {
        maybe_finish_close(c);
        return;
    }
    if (c->connect_asap) {
        c->connect_asap = false;
        start_connect(c);
        return;
    }
    uv_timer_start(&c->backoff_timer, on_backoff, c->retry_ms, 0);
}

/* Schedule the next attempt's delay: doubling, unless the connection proved healthy. */
static void next_backoff(struct qmp_client *c)
{
    uint64_t delay_ns = link_backoff_down(&c->backoff, uv_now(c->loop) * NS_PER_MS);
    c->retry_ms = (delay_ns + NS_PER_MS - 1) / NS_PER_MS;
    if (c->watch_ok)
        sock_watch_start(&c->watch);
}

static void close_pipe(struct qmp_client *c)
{
    if (c->pipe_state != PIPE_OPEN)
        return;
    c->pipe_state = PIPE_CLOSING;
    uv_close((uv_handle_t *)&c->pipe, on_pipe_closed);
}

/* End the current connection (or attempt): fail pending commands, tell the owner, and
 * let on_pipe_closed schedule the reconnect. */
static void drop_connection(struct qmp_client *c, int err, const char *reason)
{
    bool was_ready = c->state == QMP_READY;

    if (c->closing || c->state == QMP_BACKOFF)
        return;
    switch (c->state) {
    case QMP_CONNECTING:
        c->failed_phase = "connect";
        break;
    case QMP_GREETING:
        c->failed_phase = "greeting";
        break;
    case QMP_CAPABILITIES:
    case QMP_QUERY:
        c->failed_phase = "handshake";
        break;
    default:
        c->failed_phase = "ready";
        break;
    }
    c->state = QMP_BACKOFF;
    c->generation++;
    c->stats.disconnects++;
    c->rlen = 0;
    c->scan.scanned = 0;
    c->missed = 0;
    c->actual = -1;
    c->target = -1;
    next_backoff(c);
    uv_timer_stop(&c->timeout_timer);
    close_pipe(c);
    fail_all(c, -ECONNRESET);
    if (!c->closing && c->cbs.on_disconnect)
        c->cbs.on_disconnect(c, err, reason, was_ready, c->opaque);
}

static void drop_protocol_error(struct qmp_client *c, const char *what, const char *detail)
{
    char reason[256];
    snprintf(reason, sizeof(reason), "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
    drop_connection(c, -EPROTO, reason);
}

static void on_ready(struct qmp_client *c, int64_t actual)
{
    c->state = QMP_READY;
    c->actual = actual;
    c->stats.readies++;
    /* Up, not yet healthy: a monitor that is ready and then drops at once keeps backing
     * off; one that stays ready for stable_ms starts the delays over. */
    link_backoff_up(&c->backoff, uv_now(c->loop) * NS_PER_MS);
    arm_timeout(c);
    if (c->cbs.on_ready)
        c->cbs.on_ready(c, actual, c->opaque);
}

static void handle_reply(struct qmp_client *c, const struct qmp_message *m)
{
    struct qmp_command *k, **p;
    struct qmp_result res = {.actual_bytes = -1};
    char detail[200];

    /* A reply we have no command for is a late one after its timeout: drop it. */
    if (!m->has_id)
        return;
    for (p = &c->pending; *p && (*p)->id != m->id; p = &(*p)->next)
        ;
    if (!*p)
        return;
    k = *p;
    *p = k->next;
    c->n_pending--;
    c->missed = 0; /* the monitor answers */
    arm_timeout(c);

    if (m->kind == QMP_MESSAGE_ERROR) {
        if (k->purpose == PURPOSE_CAPABILITIES || k->purpose == PURPOSE_FIRST_QUERY) {
            const char *what = k->purpose == PURPOSE_CAPABILITIES ? "qmp_capabilities refused"
                                                                  : "query-balloon failed";
            snprintf(detail, sizeof(detail), "%s: %s", m->error_class, m->error_desc);
            free(k);
            drop_protocol_error(c, what, detail);
            return;
        }
        res.status = -EREMOTEIO;
        res.error_class = m->error_class;
        res.error_desc = m->error_desc;
        call_done(c, k, &res);
        return;
    }

    res.ret = m->ret;
    switch (k->purpose) {
    case PURPOSE_CAPABILITIES:
        free(k);
        c->state = QMP_QUERY;
        if (send_command(c, PURPOSE_FIRST_QUERY, "query-balloon", NULL, 0, NULL, NULL) < 0)
            drop_connection(c, -EIO, "cannot send query-balloon");
        return;
    case PURPOSE_FIRST_QUERY: {
        int64_t actual;
        free(k);
        if (qmp_parse_balloon_actual(m->ret, &actual) < 0) {
            drop_protocol_error(c, "query-balloon", "reply without a valid \"actual\"");
            return;
        }
        on_ready(c, actual);
        return;
    }
    case PURPOSE_QUERY: {
        int64_t actual;
        if (qmp_parse_balloon_actual(m->ret, &actual) < 0) {
            unsigned gen = c->generation;
            c->stats.bad_actuals++;
            if (c->cbs.on_bad_actual)
                c->cbs.on_bad_actual(c, "query-balloon", c->opaque);
            res.status = -EBADMSG;
            if (gen != c->generation || c->closing)
                res.status = c->closing ? -ECANCELED : -ECONNRESET;
            call_done(c, k, &res);
            return;
        }
        res.actual_bytes = actual;
        if (actual != c->actual) {
            unsigned gen = c->generation;
            c->actual = actual;
            if (c->cbs.on_balloon_change)
                c->cbs.on_balloon_change(c, actual, c->opaque);
            if (gen != c->generation || c->closing) {
                /* The owner ended this connection from its callback: the command is
                 * still owed its answer. */
                fail_command(c, k, c->closing ? -ECANCELED : -ECONNRESET);
                return;
            }
        }
        call_done(c, k, &res);
        return;
    }
    case PURPOSE_BALLOON:
        c->target = k->target;
        call_done(c, k, &res);
        return;
    case PURPOSE_EXECUTE:
        call_done(c, k, &res);
        return;
    }
}

static void handle_event(struct qmp_client *c, const struct qmp_message *m)
{
    int64_t actual;

    /* Before ready the query-balloon reply that is on its way is the authority. */
    if (c->state != QMP_READY || strcmp(m->event, "BALLOON_CHANGE") != 0)
        return;
    if (qmp_parse_balloon_actual(m->data, &actual) < 0) {
        /* A size of 0 or less, or none: the value is wrong, not the stream. Ignore it and
         * keep the link (the next event or query brings a good one). */
        c->stats.bad_actuals++;
        if (c->cbs.on_bad_actual)
            c->cbs.on_bad_actual(c, "BALLOON_CHANGE", c->opaque);
        return;
    }
    c->actual = actual;
    if (c->cbs.on_balloon_change)
        c->cbs.on_balloon_change(c, actual, c->opaque);
}

static void handle_line(struct qmp_client *c, const char *line, size_t len)
{
    struct qmp_message m;
    char err[160];
    size_t i;
    int r;

    for (i = 0; i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'); i++)
        ;
    if (i == len)
        return;
    r = qmp_message_parse(line, len, &m, err, sizeof(err));
    if (r == -ENOMSG)
        return;
    if (r < 0) {
        drop_protocol_error(c, "bad QMP message", err);
        return;
    }
    if (c->state == QMP_GREETING) {
        if (m.kind != QMP_MESSAGE_GREETING) {
            drop_protocol_error(c, "expected the QMP greeting", NULL);
        } else {
            c->state = QMP_CAPABILITIES;
            if (send_command(c, PURPOSE_CAPABILITIES, "qmp_capabilities", NULL, 0, NULL, NULL) < 0)
                drop_connection(c, -EIO, "cannot send qmp_capabilities");
        }
    } else if (m.kind == QMP_MESSAGE_GREETING) {
        drop_protocol_error(c, "unexpected second QMP greeting", NULL);
    } else if (m.kind == QMP_MESSAGE_EVENT) {
        handle_event(c, &m);
    } else {
        handle_reply(c, &m);
    }
    qmp_message_clear(&m);
}

/* Handle every complete line in the receive buffer; keep the partial rest, and how far it
 * was searched. */
static void process_input(struct qmp_client *c)
{
    unsigned gen = c->generation;
    size_t off = 0;
    long n;

    while ((n = qmp_scan_line(&c->scan, c->rbuf + off, c->rlen - off)) >= 0) {
        size_t len = (size_t)n;
        if (len > 0 && c->rbuf[off + len - 1] == '\r')
            len--;
        if (len > c->cfg.max_message_bytes) {
            drop_connection(c, -EMSGSIZE, "QMP message too large");
            return;
        }
        handle_line(c, c->rbuf + off, len);
        if (gen != c->generation || c->closing)
            return; /* the connection ended: the rest of its bytes mean nothing */
        off += (size_t)n + 1;
    }
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
    if (c->rlen > c->cfg.max_message_bytes)
        drop_connection(c, -EMSGSIZE, "QMP message too large");
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct qmp_client *c = h->data;
    /* Room for one maximal message plus its CRLF, and no more. */
    size_t limit = c->cfg.max_message_bytes + 2;
    (void)suggested;

    if (c->rcap - c->rlen < 4096 && c->rcap < limit) {
        size_t cap = c->rcap ? c->rcap * 2 : 8192;
        char *p;
        if (cap > limit)
            cap = limit;
        p = realloc(c->rbuf, cap);
        if (p) {
            c->rbuf = p;
            c->rcap = cap;
        }
    }
    /* A zero-length buffer makes libuv report UV_ENOBUFS, which ends the connection. */
    *buf = uv_buf_init(c->rbuf ? c->rbuf + c->rlen : NULL, (unsigned)(c->rcap - c->rlen));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct qmp_client *c = s->data;
    (void)buf;

    if (nread == UV_EOF) {
        drop_connection(c, -ECONNRESET, "QEMU closed the QMP socket");
    } else if (nread < 0) {
        drop_connection(c, (int)nread, uv_strerror((int)nread));
    } else if (nread > 0) {
        c->rlen += (size_t)nread;
        process_input(c);
        /* Give back a large buffer once it is empty: most messages are small. */
        if (c->rlen == 0 && c->rcap > 65536 && !c->closing) {
            free(c->rbuf);
            c->rbuf = NULL;
            c->rcap = 0;
        }
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    struct qmp_client *c = req->data;
    char reason[160];
    int r;

    if (c->closing || c->state != QMP_CONNECTING)
        return; /* cancelled: the pipe was closed under the request */
    if (status < 0) {
        snprintf(reason, sizeof(reason), "connect: %s", uv_strerror(status));
        drop_connection(c, status, reason);
        return;
    }
    c->state = QMP_GREETING;
    c->gate = GATE_OPEN;
    link_gate_connected(link_gate_shared());
    if (c->watch_ok)
        sock_watch_stop(&c->watch);
    c->phase_deadline = uv_now(c->loop) + c->cfg.command_timeout_ms;
    arm_timeout(c);
    r = uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
    if (r < 0)
        drop_connection(c, r, uv_strerror(r));
}

static void connect_now(struct qmp_client *c);

static void on_gate_admit(struct link_gate_waiter *w)
{
    connect_now((struct qmp_client *)((char *)w - offsetof(struct qmp_client, gate_wait)));
}

/* An attempt, once the process's link gate lets it through. */
static void start_connect(struct qmp_client *c)
{
    if (c->closing || c->gate_wait.queued)
        return;
    c->state = QMP_CONNECTING; /* waiting for the gate counts as connecting */
    if (link_gate_enter(link_gate_shared(), &c->gate_wait, on_gate_admit))
        connect_now(c);
    else
        c->stats.gate_waits++;
}

static void connect_now(struct qmp_client *c)
{
    int r;

    c->gate = GATE_IN_FLIGHT;
    r = uv_pipe_init(c->loop, &c->pipe, 0);
    if (r < 0) {
        c->gate = GATE_NONE;
        link_gate_failed(link_gate_shared());
        /* Nothing to close: retry after the backoff as if the connection had failed. */
        c->state = QMP_BACKOFF;
        c->failed_phase = "connect";
        c->stats.disconnects++;
        next_backoff(c);
        uv_timer_start(&c->backoff_timer, on_backoff, c->retry_ms, 0);
        if (c->cbs.on_disconnect)
            c->cbs.on_disconnect(c, r, uv_strerror(r), false, c->opaque);
        return;
    }
    c->pipe.data = c;
    c->pipe_state = PIPE_OPEN;
    c->state = QMP_CONNECTING;
    c->phase_deadline = uv_now(c->loop) + c->cfg.command_timeout_ms;
    c->connect_req.data = c;
    uv_pipe_connect(&c->connect_req, &c->pipe, c->path, on_connect);
    arm_timeout(c);
}

static void on_timeout(uv_timer_t *t)
{
    struct qmp_client *c = t->data;
    uint64_t now = uv_now(c->loop);
    unsigned gen = c->generation;

    if (c->state == QMP_CONNECTING) {
        drop_connection(c, -ETIMEDOUT, "connect timed out");
        return;
    }
    if (c->state == QMP_GREETING) {
        drop_connection(c, -ETIMEDOUT, "no QMP greeting");
        return;
    }
    for (;;) {
        struct qmp_command *k, **p;
        for (p = &c->pending; *p && (*p)->deadline > now; p = &(*p)->next)
            ;
        if (!*p)
            break;
        k = *p;
        if (k->purpose == PURPOSE_CAPABILITIES || k->purpose == PURPOSE_FIRST_QUERY) {
            /* A monitor that does not answer the handshake is not usable: reconnect. */
            drop_connection(c, -ETIMEDOUT,
                            k->purpose == PURPOSE_CAPABILITIES ? "qmp_capabilities timed out"
                                                               : "query-balloon timed out");
            return;
        }
        /* A late reply will find no command and be dropped; the connection stays, unless
         * the monitor has now missed too many replies in a row: then it is dead (a QEMU
         * whose main loop hangs), and only a new connection can tell. */
        *p = k->next;
        c->n_pending--;
        c->missed++;
        c->stats.timeouts++;
        fail_command(c, k, -ETIMEDOUT);
        if (gen != c->generation || c->closing)
            return;
        if (c->missed >= c->cfg.max_missed_replies) {
            char reason[80];
            snprintf(reason, sizeof(reason), "the monitor missed %u replies in a row", c->missed);
            c->stats.dead_monitors++;
            drop_connection(c, -ETIMEDOUT, reason);
            return;
        }
    }
    arm_timeout(c);
}

int qmp_client_new(uv_loop_t *loop, const char *path, const struct qmp_client_config *cfg,
                   const struct qmp_callbacks *cbs, void *opaque, struct qmp_client **ret_client)
{
    struct qmp_client *c;

    if (!loop || !path || !*path || !ret_client)
        return -EINVAL;
    if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return -ENAMETOOLONG;
    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->path = strdup(path);
    if (!c->path) {
        free(c);
        return -ENOMEM;
    }
    c->loop = loop;
    if (cfg)
        c->cfg = *cfg;
    if (!c->cfg.command_timeout_ms)
        c->cfg.command_timeout_ms = QMP_DEFAULT_COMMAND_TIMEOUT_MS;
    if (!c->cfg.backoff_min_ms)
        c->cfg.backoff_min_ms = QMP_DEFAULT_BACKOFF_MIN_MS;
    if (!c->cfg.backoff_max_ms)
        c->cfg.backoff_max_ms = QMP_DEFAULT_BACKOFF_MAX_MS;
    if (c->cfg.backoff_max_ms < c->cfg.backoff_min_ms)
        c->cfg.backoff_max_ms = c->cfg.backoff_min_ms;
    if (!c->cfg.max_message_bytes)
        c->cfg.max_message_bytes = QMP_DEFAULT_MAX_MESSAGE_BYTES;
    if (!c->cfg.max_missed_replies)
        c->cfg.max_missed_replies = QMP_DEFAULT_MAX_MISSED_REPLIES;
    if (!c->cfg.max_write_queue)
        c->cfg.max_write_queue = QMP_DEFAULT_MAX_WRITE_QUEUE;
    if (!c->cfg.stable_ms)
        c->cfg.stable_ms = c->cfg.backoff_max_ms > 1000 ? c->cfg.backoff_max_ms : 1000;
    if (cbs)
        c->cbs = *cbs;
    c->opaque = opaque;
    c->state = QMP_IDLE;
    c->failed_phase = "";
    link_backoff_init(&c->backoff, c->cfg.backoff_min_ms * NS_PER_MS,
                      c->cfg.backoff_max_ms * NS_PER_MS, c->cfg.stable_ms * NS_PER_MS);
    c->next_id = 1;
    c->actual = -1;
    c->target = -1;
    uv_timer_init(loop, &c->timeout_timer);
    uv_timer_init(loop, &c->backoff_timer);
    c->timeout_timer.data = c;
    c->backoff_timer.data = c;
    c->handles_open = 2;
    if (sock_watch_init(loop, &c->watch, c->path, on_socket_appeared, c) == 0) {
        c->watch_ok = true;
        c->handles_open++;
    }
    *ret_client = c;
    return 0;
}

int qmp_client_start(struct qmp_client *c)
{
    if (c->closing)
        return -ECANCELED;
    if (c->state != QMP_IDLE)
        return -EALREADY;
    start_connect(c);
    return 0;
}

int qmp_client_set_balloon(struct qmp_client *c, int64_t target_bytes, qmp_done_cb done,
                           void *opaque)
{
    json_t *args;
    int r;

    if (target_bytes <= 0)
        return -EINVAL;
    if (c->state != QMP_READY)
        return -ENOTCONN;
    args = json_pack("{sI}", "value", (json_int_t)target_bytes);
    if (!args)
        return -ENOMEM;
    r = send_command(c, PURPOSE_BALLOON, "balloon", args, target_bytes, done, opaque);
    json_decref(args);
    return r;
}

int qmp_client_query_balloon(struct qmp_client *c, qmp_done_cb done, void *opaque)
{
    if (c->state != QMP_READY)
        return -ENOTCONN;
    return send_command(c, PURPOSE_QUERY, "query-balloon", NULL, 0, done, opaque);
}

int qmp_client_execute(struct qmp_client *c, const char *command, const json_t *args,
                       qmp_done_cb done, void *opaque)
{
    if (!command || !*command || (args && !json_is_object(args)))
        return -EINVAL;
    if (c->state != QMP_READY)
        return -ENOTCONN;
    return send_command(c, PURPOSE_EXECUTE, command, args, 0, done, opaque);
}

bool qmp_client_is_ready(const struct qmp_client *c)
{
    return c->state == QMP_READY;
}

int64_t qmp_client_actual(const struct qmp_client *c)
{
    return c->actual;
}

int64_t qmp_client_target(const struct qmp_client *c)
{
    return c->target;
}

const char *qmp_client_path(const struct qmp_client *c)
{
    return c->path;
}

const struct qmp_client_stats *qmp_client_stats(const struct qmp_client *c)
{
    return &c->stats;
}

const char *qmp_client_failed_phase(const struct qmp_client *c)
{
    return c->failed_phase;
}

uint64_t qmp_client_retry_ms(const struct qmp_client *c)
{
    return c->state == QMP_BACKOFF ? c->retry_ms : 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct qmp_client *c = h->data;
    c->handles_open--;
    maybe_finish_close(c);
}

static void on_watch_closed(uv_handle_t *h)
{
    struct sock_watch *w = h->data;
    struct qmp_client *c = w->opaque;
    c->handles_open--;
    maybe_finish_close(c);
}

void qmp_client_close(struct qmp_client *c, qmp_closed_cb closed)
{
    if (!c || c->closing)
        return;
    c->closing = true;
    c->closed_cb = closed;
    link_gate_leave(link_gate_shared(), &c->gate_wait);
    c->state = QMP_CLOSED;
    c->generation++;
    c->rlen = 0;
    fail_all(c, -ECANCELED);
    close_pipe(c);
    uv_close((uv_handle_t *)&c->timeout_timer, on_timer_closed);
    uv_close((uv_handle_t *)&c->backoff_timer, on_timer_closed);
    if (c->watch_ok)
        sock_watch_close(&c->watch, on_watch_closed);
}
