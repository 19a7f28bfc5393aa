/* The libuv QMP client against a scripted QMP peer: a unix socket server on the same
 * loop that plays QEMU's side, answers by default like QEMU 7.2 and lets each test hold,
 * reorder, refuse or drop replies. Every wait runs the loop until a condition holds,
 * bounded by a guard timer. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>
#include <cmocka.h>

#include "host-daemon/qmp/qmp.h"

#define MiB (1024LL * 1024)

struct fx;

/* What the peer does with one command; return false for the default (QEMU-like) answer. */
typedef bool (*peer_hook)(struct fx *fx, json_t *cmd);

struct peer_conn {
    uv_pipe_t pipe;
    struct fx *fx;
    char buf[1 << 16];
    size_t len;
};

struct done_rec {
    struct fx *fx;
    const char *label;
    int calls;
    int status;
    char error_class[64];
    char error_desc[128];
    int64_t actual;
};

struct fx {
    uv_loop_t loop;
    uv_timer_t guard;
    bool guard_fired;
    char dir[256];
    char path[300];

    /* the peer */
    uv_pipe_t server;
    bool listening;
    struct peer_conn *conn;
    int accepts;
    bool greet;
    int64_t peer_actual;
    peer_hook hook;
    json_t *held;        /* commands a hook kept without answering */
    char commands[1024]; /* names of the commands the peer received, in order */

    /* the client and what it reported */
    struct qmp_client *c;
    struct qmp_client_config cfg;
    char trace[4096];
    int ready_count;
    int change_count;
    int disc_count;
    int disc_err[32];
    bool disc_was_ready[32];
    char disc_reason[256];
    uint64_t disc_time[32];
    uint64_t ready_time;
    int bad_actual_count;
    bool close_in_ready;
    bool hangup_in_ready;
    uint64_t disc_retry[32]; /* qmp_client_retry_ms() at each disconnect */
    bool closed;
};

static void trace(struct fx *fx, const char *fmt, ...)
{
    size_t n = strlen(fx->trace);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fx->trace + n, sizeof(fx->trace) - n, fmt, ap);
    va_end(ap);
}

/* ---- loop helpers ---- */

static void on_guard(uv_timer_t *t)
{
    ((struct fx *)t->data)->guard_fired = true;
}

/* Run the loop for `ms` of loop time, whatever happens meanwhile. */
static void run_for(struct fx *fx, uint64_t ms)
{
    fx->guard_fired = false;
    uv_timer_start(&fx->guard, on_guard, ms, 0);
    while (!fx->guard_fired)
        uv_run(&fx->loop, UV_RUN_ONCE);
}

/* Run the loop until `cond` holds; fail the test if it does not within `ms`. */
#define RUN_UNTIL(fx, cond, ms)                                                                    \
    do {                                                                                           \
        (fx)->guard_fired = false;                                                                 \
        uv_timer_start(&(fx)->guard, on_guard, (ms), 0);                                           \
        while (!(cond) && !(fx)->guard_fired)                                                      \
            uv_run(&(fx)->loop, UV_RUN_ONCE);                                                      \
        uv_timer_stop(&(fx)->guard);                                                               \
        if (!(cond))                                                                               \
            fail_msg("timed out after %d ms waiting for: %s (trace: %s)", (int)(ms), #cond,        \
                     (fx)->trace);                                                                 \
    } while (0)

/* ---- the scripted peer ---- */

static void free_peer_write(uv_write_t *req, int status)
{
    (void)status;
    free(req->data);
    free(req);
}

static void peer_send_raw(struct fx *fx, const char *text, size_t len)
{
    uv_write_t *req = malloc(sizeof(*req));
    char *copy = malloc(len);
    assert_non_null(fx->conn);
    assert_true(req && copy);
    memcpy(copy, text, len);
    req->data = copy;
    uv_buf_t b = uv_buf_init(copy, (unsigned)len);
    assert_int_equal(uv_write(req, (uv_stream_t *)&fx->conn->pipe, &b, 1, free_peer_write), 0);
}

/* Send a JSON object (stolen) followed by CRLF, as QEMU does. */
static void peer_send(struct fx *fx, json_t *msg)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    assert_non_null(text);
    size_t n = strlen(text);
    text = realloc(text, n + 3);
    memcpy(text + n, "\r\n", 3);
    peer_send_raw(fx, text, n + 2);
    free(text);
    json_decref(msg);
}

static void peer_reply(struct fx *fx, json_t *cmd, json_t *ret)
{
    peer_send(fx,
              json_pack("{soso}", "return", ret, "id", json_incref(json_object_get(cmd, "id"))));
}

static void peer_error(struct fx *fx, json_t *cmd, const char *cls, const char *desc)
{
    peer_send(fx, json_pack("{s{ssss}so}", "error", "class", cls, "desc", desc, "id",
                            json_incref(json_object_get(cmd, "id"))));
}

static void peer_event(struct fx *fx, const char *name, json_t *data)
{
    peer_send(fx, json_pack("{sss{sisi}so}", "event", name, "timestamp", "seconds", 1764067200,
                            "microseconds", 5, "data", data));
}

static void peer_conn_closed(uv_handle_t *h)
{
    free(h->data);
}

static void peer_hangup(struct fx *fx)
{
    if (!fx->conn)
        return;
    uv_close((uv_handle_t *)&fx->conn->pipe, peer_conn_closed);
    fx->conn = NULL;
}

static void peer_default(struct fx *fx, json_t *cmd)
{
    const char *name = json_string_value(json_object_get(cmd, "execute"));
    if (strcmp(name, "qmp_capabilities") == 0 || strcmp(name, "balloon") == 0)
        peer_reply(fx, cmd, json_object());
    else if (strcmp(name, "query-balloon") == 0)
        peer_reply(fx, cmd, json_pack("{sI}", "actual", (json_int_t)fx->peer_actual));
    else
        peer_error(fx, cmd, "CommandNotFound", "The command has not been found");
}

static void peer_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct peer_conn *pc = h->data;
    (void)suggested;
    *buf = uv_buf_init(pc->buf + pc->len, (unsigned)(sizeof(pc->buf) - pc->len));
}

static void peer_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct peer_conn *pc = s->data;
    struct fx *fx = pc->fx;
    char *nl;
    (void)buf;

    if (nread < 0) {
        if (fx->conn == pc)
            peer_hangup(fx);
        else
            uv_close((uv_handle_t *)&pc->pipe, peer_conn_closed);
        return;
    }
    pc->len += (size_t)nread;
    while (fx->conn == pc && (nl = memchr(pc->buf, '\n', pc->len))) {
        size_t n = (size_t)(nl - pc->buf) + 1;
        json_error_t e;
        json_t *cmd = json_loadb(pc->buf, n, 0, &e);
        memmove(pc->buf, pc->buf + n, pc->len - n);
        pc->len -= n;
        /* the client sends well-formed commands with an integer id */
        assert_non_null(cmd);
        assert_true(json_is_integer(json_object_get(cmd, "id")));
        const char *name = json_string_value(json_object_get(cmd, "execute"));
        assert_non_null(name);
        strncat(fx->commands, name, sizeof(fx->commands) - strlen(fx->commands) - 2);
        strcat(fx->commands, " ");
        if (!fx->hook || !fx->hook(fx, cmd))
            peer_default(fx, cmd);
        json_decref(cmd);
    }
}

static void peer_alloc_big(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char sink[1 << 16];
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(sink, sizeof(sink));
}

/* A peer that reads and drops everything (to drain the client's write queue). */
static void peer_read_discard(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)s;
    (void)nread;
    (void)buf;
}

static void peer_on_connection(uv_stream_t *server, int status)
{
    struct fx *fx = server->data;
    struct peer_conn *pc = calloc(1, sizeof(*pc));
    assert_int_equal(status, 0);
    assert_non_null(pc);
    pc->fx = fx;
    assert_int_equal(uv_pipe_init(&fx->loop, &pc->pipe, 0), 0);
    pc->pipe.data = pc;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&pc->pipe), 0);
    peer_hangup(fx); /* one client at a time, as QEMU's monitor */
    fx->conn = pc;
    fx->accepts++;
    assert_int_equal(uv_read_start((uv_stream_t *)&pc->pipe, peer_alloc, peer_read), 0);
    if (fx->greet)
        peer_send_raw(fx,
                      "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": "
                      "7}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n",
                      strlen("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, "
                             "\"major\": 7}, \"package\": \"\"}, \"capabilities\": "
                             "[\"oob\"]}}\r\n"));
}

static void peer_listen(struct fx *fx)
{
    assert_int_equal(uv_pipe_init(&fx->loop, &fx->server, 0), 0);
    fx->server.data = fx;
    assert_int_equal(uv_pipe_bind(&fx->server, fx->path), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&fx->server, 4, peer_on_connection), 0);
    fx->listening = true;
}

/* ---- client callbacks ---- */

static void cb_ready(struct qmp_client *c, int64_t actual, void *opaque)
{
    struct fx *fx = opaque;
    assert_ptr_equal(c, fx->c);
    assert_true(qmp_client_is_ready(c));
    fx->ready_count++;
    fx->ready_time = uv_now(&fx->loop);
    trace(fx, "ready:%lld ", (long long)actual);
    if (fx->close_in_ready)
        qmp_client_close(c, NULL);
    if (fx->hangup_in_ready)
        peer_hangup(fx);
}

static void cb_change(struct qmp_client *c, int64_t actual, void *opaque)
{
    struct fx *fx = opaque;
    (void)c;
    fx->change_count++;
    trace(fx, "change:%lld ", (long long)actual);
}

static void cb_disconnect(struct qmp_client *c, int err, const char *reason, bool was_ready,
                          void *opaque)
{
    struct fx *fx = opaque;
    assert_false(qmp_client_is_ready(c));
    assert_int_equal(qmp_client_actual(c), -1);
    assert_non_null(reason);
    if (fx->disc_count < 32) {
        fx->disc_err[fx->disc_count] = err;
        fx->disc_was_ready[fx->disc_count] = was_ready;
        fx->disc_time[fx->disc_count] = uv_now(&fx->loop);
        fx->disc_retry[fx->disc_count] = qmp_client_retry_ms(c);
    }
    snprintf(fx->disc_reason, sizeof(fx->disc_reason), "%s", reason);
    fx->disc_count++;
    trace(fx, "disc:%d ", err);
}

static void cb_done(struct qmp_client *c, const struct qmp_result *res, void *opaque)
{
    struct done_rec *d = opaque;
    (void)c;
    d->calls++;
    d->status = res->status;
    d->actual = res->actual_bytes;
    if (res->status == -EREMOTEIO) {
        assert_non_null(res->error_class);
        snprintf(d->error_class, sizeof(d->error_class), "%s", res->error_class);
        snprintf(d->error_desc, sizeof(d->error_desc), "%s", res->error_desc);
    } else {
        assert_null(res->error_class);
    }
    if (res->status == 0)
        assert_non_null(res->ret);
    trace(d->fx, "done:%s:%d ", d->label, res->status);
}

static void cb_bad_actual(struct qmp_client *c, const char *where, void *opaque)
{
    struct fx *fx = opaque;
    assert_true(qmp_client_is_ready(c));
    fx->bad_actual_count++;
    trace(fx, "bad:%s ", where);
}

static void cb_closed(struct qmp_client *c, void *opaque)
{
    struct fx *fx = opaque;
    assert_ptr_equal(c, fx->c);
    fx->closed = true;
}

static const struct qmp_callbacks callbacks = {
    .on_ready = cb_ready,
    .on_balloon_change = cb_change,
    .on_disconnect = cb_disconnect,
    .on_bad_actual = cb_bad_actual,
};

/* ---- fixture ---- */

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    const char *tmp = getenv("TMPDIR");
    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    uv_timer_init(&fx->loop, &fx->guard);
    fx->guard.data = fx;
    snprintf(fx->dir, sizeof(fx->dir), "%s/bellows-qmp-XXXXXX", tmp && *tmp ? tmp : P_tmpdir);
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof(fx->path), "%s/qmp.sock", fx->dir);
    fx->greet = true;
    fx->peer_actual = 512 * MiB;
    fx->held = json_array();
    fx->cfg.backoff_min_ms = 10;
    fx->cfg.backoff_max_ms = 40;
    fx->cfg.command_timeout_ms = 2000;
    *state = fx;
    return 0;
}

static void new_client(struct fx *fx)
{
    assert_int_equal(qmp_client_new(&fx->loop, fx->path, &fx->cfg, &callbacks, fx, &fx->c), 0);
    assert_string_equal(qmp_client_path(fx->c), fx->path);
}

/* Peer listening, client started and ready. */
static void start_ready(struct fx *fx)
{
    peer_listen(fx);
    new_client(fx);
    assert_int_equal(qmp_client_start(fx->c), 0);
    RUN_UNTIL(fx, fx->ready_count == 1, 5000);
}

static void close_cb_noop(uv_handle_t *h)
{
    (void)h;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    if (fx->c && !fx->closed) {
        qmp_client_close(fx->c, cb_closed);
        RUN_UNTIL(fx, fx->closed, 5000);
    }
    peer_hangup(fx);
    if (fx->listening)
        uv_close((uv_handle_t *)&fx->server, close_cb_noop);
    uv_close((uv_handle_t *)&fx->guard, close_cb_noop);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    /* every handle of the client was closed: the loop closes cleanly */
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    json_decref(fx->held);
    unlink(fx->path);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

/* ---- tests ---- */

/* Greeting, capabilities, query-balloon, then ready with QEMU's actual size. */
static void test_handshake_reads_balloon_before_ready(void **state)
{
    struct fx *fx = *state;
    struct done_rec d = {.fx = fx, .label = "early"};

    peer_listen(fx);
    new_client(fx);
    assert_int_equal(qmp_client_set_balloon(fx->c, 256 * MiB, cb_done, &d), -ENOTCONN);
    assert_int_equal(qmp_client_start(fx->c), 0);
    assert_int_equal(qmp_client_start(fx->c), -EALREADY);
    /* connecting: still blind, so nothing may move the balloon */
    assert_int_equal(qmp_client_set_balloon(fx->c, 256 * MiB, cb_done, &d), -ENOTCONN);
    assert_int_equal(qmp_client_query_balloon(fx->c, cb_done, &d), -ENOTCONN);
    assert_int_equal(qmp_client_execute(fx->c, "stop", NULL, cb_done, &d), -ENOTCONN);
    assert_int_equal(qmp_client_actual(fx->c), -1);
    RUN_UNTIL(fx, fx->ready_count == 1, 5000);
    assert_string_equal(fx->commands, "qmp_capabilities query-balloon ");
    assert_string_equal(fx->trace, "ready:536870912 ");
    assert_true(qmp_client_is_ready(fx->c));
    assert_int_equal(qmp_client_actual(fx->c), 512 * MiB);
    assert_int_equal(qmp_client_target(fx->c), -1);
    assert_int_equal(qmp_client_set_balloon(fx->c, 0, cb_done, &d), -EINVAL);
    assert_int_equal(qmp_client_set_balloon(fx->c, -1, cb_done, &d), -EINVAL);
    assert_int_equal(d.calls, 0);
}

static bool hook_hold(struct fx *fx, json_t *cmd)
{
    const char *name = json_string_value(json_object_get(cmd, "execute"));
    if (strcmp(name, "balloon") != 0 && strcmp(name, "query-balloon") != 0)
        return false;
    if (!qmp_client_is_ready(fx->c))
        return false; /* the handshake's query-balloon is answered */
    json_array_append(fx->held, cmd);
    return true;
}

/* Replies are matched by id, not by order. */
static void test_replies_matched_by_id(void **state)
{
    struct fx *fx = *state;
    struct done_rec bal = {.fx = fx, .label = "balloon"}, q = {.fx = fx, .label = "query"};

    start_ready(fx);
    fx->hook = hook_hold;
    assert_int_equal(qmp_client_set_balloon(fx->c, 300 * MiB, cb_done, &bal), 0);
    assert_int_equal(qmp_client_query_balloon(fx->c, cb_done, &q), 0);
    assert_int_equal(bal.calls, 0); /* never from inside the call */
    RUN_UNTIL(fx, json_array_size(fx->held) == 2, 5000);

    json_t *bcmd = json_array_get(fx->held, 0), *qcmd = json_array_get(fx->held, 1);
    assert_string_equal(json_string_value(json_object_get(bcmd, "execute")), "balloon");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(bcmd, "arguments"), "value")),
        300 * MiB);
    assert_int_not_equal(json_integer_value(json_object_get(bcmd, "id")),
                         json_integer_value(json_object_get(qcmd, "id")));
    /* answer in reverse order */
    peer_reply(fx, qcmd, json_pack("{sI}", "actual", (json_int_t)(512 * MiB)));
    peer_reply(fx, bcmd, json_object());
    RUN_UNTIL(fx, bal.calls == 1 && q.calls == 1, 5000);
    assert_string_equal(fx->trace, "ready:536870912 done:query:0 done:balloon:0 ");
    assert_int_equal(q.actual, 512 * MiB);
    assert_int_equal(bal.status, 0);
    assert_int_equal(bal.actual, -1);
    assert_int_equal(qmp_client_target(fx->c), 300 * MiB);
}

/* Pending commands are bounded: a monitor that stops answering cannot grow the queue. */
static void test_pending_bounded(void **state)
{
    struct fx *fx = *state;
    struct done_rec d = {.fx = fx, .label = "held"};

    start_ready(fx);
    fx->hook = hook_hold;
    for (int i = 0; i < QMP_MAX_PENDING; i++)
        assert_int_equal(qmp_client_query_balloon(fx->c, cb_done, &d), 0);
    assert_int_equal(qmp_client_set_balloon(fx->c, 300 * MiB, cb_done, &d), -EBUSY);
    RUN_UNTIL(fx, json_array_size(fx->held) == QMP_MAX_PENDING, 5000);
    /* one answer frees one slot */
    peer_reply(fx, json_array_get(fx->held, 0),
               json_pack("{sI}", "actual", (json_int_t)(512 * MiB)));
    RUN_UNTIL(fx, d.calls == 1, 5000);
    assert_int_equal(qmp_client_set_balloon(fx->c, 300 * MiB, cb_done, &d), 0);
    assert_int_equal(qmp_client_set_balloon(fx->c, 300 * MiB, cb_done, &d), -EBUSY);
    /* close here: `d` lives on this stack; every waiting command is cancelled */
    qmp_client_close(fx->c, cb_closed);
    assert_int_equal(d.calls, 1 + QMP_MAX_PENDING);
    assert_int_equal(d.status, -ECANCELED);
    RUN_UNTIL(fx, fx->closed, 5000);
}

/* Never answer the handshake: a monitor that hangs before it is usable. */
static bool hook_hold_handshake(struct fx *fx, json_t *cmd)
{
    (void)fx;
    (void)cmd;
    return true;
}

static bool hook_refuse_balloon(struct fx *fx, json_t *cmd)
{
    if (strcmp(json_string_value(json_object_get(cmd, "execute")), "balloon") != 0)
        return false;
    peer_error(fx, cmd, "DeviceNotActive", "No balloon device has been activated");
    return true;
}

static void test_error_reply(void **state)
{
    struct fx *fx = *state;
    struct done_rec d = {.fx = fx, .label = "balloon"}, x = {.fx = fx, .label = "x"};

    start_ready(fx);
    fx->hook = hook_refuse_balloon;
    assert_int_equal(qmp_client_set_balloon(fx->c, 300 * MiB, cb_done, &d), 0);
    RUN_UNTIL(fx, d.calls == 1, 5000);
    assert_int_equal(d.status, -EREMOTEIO);
    assert_string_equal(d.error_class, "DeviceNotActive");
    assert_string_equal(d.error_desc, "No balloon device has been activated");
    assert_true(qmp_client_is_ready(fx->c));
    assert_int_equal(qmp_client_target(fx->c), -1); /* not accepted */
    /* a generic command, refused by the peer's default */
    json_t *args = json_pack("{ss}", "path", "/machine");
    assert_int_equal(qmp_client_execute(fx->c, "no-such-command", args, cb_done, &x), 0);
    json_decref(args);
    RUN_UNTIL(fx, x.calls == 1, 5000);
    assert_string_equal(x.error_class, "CommandNotFound");
    assert_int_equal(fx->disc_count, 0);
}

/* No reply: the command times out on the loop's clock; the connection stays usable. */
static void test_command_timeout(void **state)
{
    struct fx *fx = *state;
    struct done_rec d = {.fx = fx, .label = "balloon"}, q = {.fx = fx, .label = "query"};

    fx->cfg.command_timeout_ms = 60;
    start_ready(fx);
    fx->hook = hook_hold;
    uint64_t t0 = uv_now(&fx->loop);
    assert_int_equal(qmp_client_set_balloon(fx->c, 300 * MiB, cb_done, &d), 0);
    RUN_UNTIL(fx, d.calls == 1, 5000);
    assert_int_equal(d.status, -ETIMEDOUT);
    assert_true(uv_now(&fx->loop) - t0 >= 60);
    assert_true(qmp_client_is_ready(fx->c));
    assert_int_equal(fx->disc_count, 0);

    /* the late reply matches nothing and is dropped; the next command is matched */
    fx->hook = NULL;
    peer_reply(fx, json_array_get(fx->held, 0), json_object());
    fx->peer_actual = 400 * MiB;
    assert_int_equal(qmp_client_query_balloon(fx->c, cb_done, &q), 0);
    RUN_UNTIL(fx, q.calls == 1, 5000);
    assert_int_equal(q.status, 0);
    assert_int_equal(q.actual, 400 * MiB);
    assert_int_equal(d.calls, 1);
    assert_int_equal(qmp_client_target(fx->c), -1);
    /* a query that finds a new size tells the owner */
    assert_string_equal(fx->trace,
                        "ready:536870912 done:balloon:-110 change:419430400 done:query:0 ");
}

static bool hook_hangup_on_balloon(struct fx *fx, json_t *cmd)
{
    if (strcmp(json_string_value(json_object_get(cmd, "execute")), "balloon") != 0)
        return false;
    fx->peer_actual = 384 * MiB; /* QEMU restarted with another size, say */
    peer_hangup(fx);
    return true;
}

/* The peer goes away mid-command: the command fails, the client reconnects and reads the
 * balloon again before it is ready. */
static void test_disconnect_mid_command(void **state)
{
    struct fx *fx = *state;
    struct done_rec d = {.fx = fx, .label = "balloon"};

    start_ready(fx);
    fx->hook = hook_hangup_on_balloon;
    assert_int_equal(qmp_client_set_balloon(fx->c, 300 * MiB, cb_done, &d), 0);
    RUN_UNTIL(fx, fx->ready_count == 2, 5000);
    assert_int_equal(d.status, -ECONNRESET);
    assert_int_equal(d.calls, 1);
    assert_int_equal(fx->disc_count, 1);
    assert_int_equal(fx->disc_err[0], -ECONNRESET);
    assert_true(fx->disc_was_ready[0]);
    assert_int_equal(fx->accepts, 2);
    assert_string_equal(fx->trace, "ready:536870912 done:balloon:-104 disc:-104 ready:402653184 ");
    assert_string_equal(fx->commands, "qmp_capabilities query-balloon balloon "
                                      "qmp_capabilities query-balloon ");
    assert_int_equal(qmp_client_actual(fx->c), 384 * MiB);
    assert_int_equal(qmp_client_target(fx->c), -1);
}

static bool hook_events_before_reply(struct fx *fx, json_t *cmd)
{
    if (strcmp(json_string_value(json_object_get(cmd, "execute")), "balloon") != 0)
        return false;
    peer_event(fx, "BALLOON_CHANGE",
               json_pack("{sIss}", "actual", (json_int_t)(450 * MiB), "future-key", "ignored"));
    peer_event(fx, "SOMETHING_NEW", json_pack("{si}", "x", 1));
    peer_send_raw(fx, "{\"event\": \"RESUME\"}\r\n", 21); /* no data, no timestamp */
    peer_event(fx, "BALLOON_CHANGE", json_pack("{sI}", "actual", (json_int_t)(300 * MiB)));
    peer_send(fx, json_pack("{sos{}s{}}", "id", json_incref(json_object_get(cmd, "id")), "return",
                            "unknown-key"));
    return true;
}

static void test_events_between_command_and_reply(void **state)
{
    struct fx *fx = *state;
    struct done_rec d = {.fx = fx, .label = "balloon"};

    start_ready(fx);
    fx->hook = hook_events_before_reply;
    assert_int_equal(qmp_client_set_balloon(fx->c, 300 * MiB, cb_done, &d), 0);
    RUN_UNTIL(fx, d.calls == 1, 5000);
    assert_string_equal(fx->trace,
                        "ready:536870912 change:471859200 change:314572800 done:balloon:0 ");
    assert_int_equal(qmp_client_actual(fx->c), 300 * MiB);
    assert_int_equal(qmp_client_target(fx->c), 300 * MiB);
    assert_int_equal(fx->disc_count, 0);
}

/* Junk from the monitor ends the connection; the reconnect resynchronises. */
static void test_junk_reconnects(void **state)
{
    struct fx *fx = *state;

    start_ready(fx);
    peer_send_raw(fx, "this is not json\r\n", 18);
    RUN_UNTIL(fx, fx->ready_count == 2, 5000);
    assert_int_equal(fx->disc_err[0], -EPROTO);
    assert_true(fx->disc_was_ready[0]);
    assert_non_null(strstr(fx->disc_reason, "bad QMP message"));

    /* a second greeting is a protocol error */
    peer_send_raw(fx, "{\"QMP\": {}}\n", 12);
    RUN_UNTIL(fx, fx->ready_count == 3, 5000);
    assert_int_equal(fx->disc_err[1], -EPROTO);

    /* replies nobody asked for, and objects of no known kind, are ignored */
    peer_send_raw(
        fx, "{\"return\": {}, \"id\": 987654}\r\n{\"return\": {}}\r\n{\"x\": 1}\r\n\r\n",
        strlen("{\"return\": {}, \"id\": 987654}\r\n{\"return\": {}}\r\n{\"x\": 1}\r\n\r\n"));
    struct done_rec q = {.fx = fx, .label = "query"};
    assert_int_equal(qmp_client_query_balloon(fx->c, cb_done, &q), 0);
    RUN_UNTIL(fx, q.calls == 1, 5000);
    assert_int_equal(q.status, 0);
    assert_int_equal(fx->disc_count, 2);
}

/* The receive buffer is bounded: a longer message ends the connection. */
static void test_oversized_message(void **state)
{
    struct fx *fx = *state;
    enum { MAX = 4096 };
    char *big = malloc(3 * MAX);

    fx->cfg.max_message_bytes = MAX;
    start_ready(fx);

    /* just under the bound, in one line: fine */
    const char *head = "{\"event\": \"PADDED\", \"data\": {\"pad\": \"";
    size_t n = strlen(head);
    memcpy(big, head, n);
    memset(big + n, 'x', MAX - n - 4);
    memcpy(big + MAX - 4, "\"}}\n", 4); /* MAX - 1 bytes of JSON and LF */
    peer_send_raw(fx, big, MAX);
    struct done_rec q = {.fx = fx, .label = "query"};
    assert_int_equal(qmp_client_query_balloon(fx->c, cb_done, &q), 0);
    RUN_UNTIL(fx, q.calls == 1, 5000);
    assert_int_equal(q.status, 0);
    assert_int_equal(fx->disc_count, 0);

    /* over the bound, complete in one write */
    memset(big + n, 'x', MAX + 10);
    memcpy(big + n + MAX + 10, "\"}}\r\n", 5);
    peer_send_raw(fx, big, n + MAX + 15);
    RUN_UNTIL(fx, fx->ready_count == 2, 5000);
    assert_int_equal(fx->disc_err[0], -EMSGSIZE);

    /* over the bound with no end in sight: the client gives up before the end */
    memset(big, ' ', 3 * MAX);
    big[0] = '{';
    peer_send_raw(fx, big, 3 * MAX);
    RUN_UNTIL(fx, fx->ready_count == 3, 5000);
    assert_int_equal(fx->disc_err[1], -EMSGSIZE);
    assert_true(fx->disc_was_ready[1]);
    free(big);
}

/* No greeting: the client waits no longer than its timeout, sends nothing, reconnects. */
static void test_greeting_timeout(void **state)
{
    struct fx *fx = *state;

    fx->cfg.command_timeout_ms = 50;
    fx->greet = false;
    peer_listen(fx);
    new_client(fx);
    assert_int_equal(qmp_client_start(fx->c), 0);
    RUN_UNTIL(fx, fx->disc_count == 1, 5000);
    assert_int_equal(fx->disc_err[0], -ETIMEDOUT);
    assert_false(fx->disc_was_ready[0]);
    assert_string_equal(fx->commands, ""); /* nothing before the greeting */
    fx->greet = true;
    RUN_UNTIL(fx, fx->ready_count == 1, 5000);
    assert_true(fx->accepts >= 2);
}

static bool hook_no_balloon_device(struct fx *fx, json_t *cmd)
{
    if (strcmp(json_string_value(json_object_get(cmd, "execute")), "query-balloon") != 0)
        return false;
    peer_error(fx, cmd, "DeviceNotActive", "No balloon device has been activated");
    return true;
}

/* Without a readable balloon the client never becomes ready: never act blind. */
static void test_query_refused_never_ready(void **state)
{
    struct fx *fx = *state;

    fx->hook = hook_no_balloon_device;
    peer_listen(fx);
    new_client(fx);
    assert_int_equal(qmp_client_start(fx->c), 0);
    RUN_UNTIL(fx, fx->disc_count == 3, 5000);
    assert_int_equal(fx->ready_count, 0);
    assert_int_equal(fx->disc_err[0], -EPROTO);
    assert_non_null(strstr(fx->disc_reason, "DeviceNotActive"));
    fx->hook = NULL;
    RUN_UNTIL(fx, fx->ready_count == 1, 5000);
}

/* Reconnect delays double up to the maximum and go back to the minimum once ready. */
static void test_backoff(void **state)
{
    struct fx *fx = *state;
    const uint64_t expect[] = {20, 40, 80, 160, 320, 320};

    fx->cfg.backoff_min_ms = 20;
    fx->cfg.backoff_max_ms = 320;
    fx->cfg.stable_ms = 100;
    new_client(fx); /* nothing listens at the path yet */
    assert_int_equal(qmp_client_start(fx->c), 0);
    RUN_UNTIL(fx, fx->disc_count == 7, 10000);
    for (int i = 0; i < 6; i++) {
        uint64_t gap = fx->disc_time[i + 1] - fx->disc_time[i];
        assert_int_equal(fx->disc_err[i], -ENOENT);
        assert_true(gap >= expect[i]);
        assert_true(gap < expect[i] + 150); /* 2x the next one would be well past this */
    }
    assert_non_null(strstr(fx->disc_reason, "connect"));

    peer_listen(fx);
    RUN_UNTIL(fx, fx->ready_count == 1, 5000);
    run_for(fx, 150); /* ready for longer than stable_ms: healthy */
    peer_hangup(fx);
    RUN_UNTIL(fx, fx->disc_count == 8, 5000);
    assert_int_equal(qmp_client_retry_ms(fx->c), 20); /* reset: 20 ms, not 320 */
    assert_string_equal(qmp_client_failed_phase(fx->c), "ready");
    RUN_UNTIL(fx, fx->ready_count == 2, 5000);
    assert_true(fx->ready_time - fx->disc_time[7] < 320);
}

/* A monitor that completes the handshake and drops at once is not healthy: the delays
 * keep doubling instead of starting over at every ready. */
static void test_ready_then_drop_backs_off(void **state)
{
    struct fx *fx = *state;
    const uint64_t want[] = {10, 20, 40, 80, 80};

    fx->cfg.backoff_min_ms = 10;
    fx->cfg.backoff_max_ms = 80;
    fx->cfg.stable_ms = 5000;
    fx->hangup_in_ready = true;
    peer_listen(fx);
    new_client(fx);
    assert_int_equal(qmp_client_start(fx->c), 0);
    RUN_UNTIL(fx, fx->disc_count == 5, 10000);
    for (int i = 0; i < 5; i++) {
        assert_true(fx->disc_was_ready[i]);
        if (fx->disc_retry[i] != want[i])
            fail_msg("retry %d: %llu ms, want %llu", i, (unsigned long long)fx->disc_retry[i],
                     (unsigned long long)want[i]);
    }
    assert_int_equal(qmp_client_stats(fx->c)->readies, 5);
}

/* A balloon size of 0 or less, or not a number, is a wrong value, not a broken stream:
 * ignored and counted, the link kept and the last good size kept. */
static void test_bad_actual_ignored(void **state)
{
    struct fx *fx = *state;
    struct done_rec q = {.fx = fx, .label = "query"};

    start_ready(fx);
    peer_event(fx, "BALLOON_CHANGE", json_pack("{ss}", "actual", "lots"));
    peer_event(fx, "BALLOON_CHANGE", json_pack("{si}", "actual", 0));
    peer_event(fx, "BALLOON_CHANGE", json_pack("{sI}", "actual", (json_int_t)(-5 * MiB)));
    peer_event(fx, "BALLOON_CHANGE", json_pack("{sI}", "actual", (json_int_t)(300 * MiB)));
    RUN_UNTIL(fx, fx->change_count == 1, 5000);
    assert_int_equal(fx->bad_actual_count, 3);
    assert_int_equal(qmp_client_stats(fx->c)->bad_actuals, 3);
    assert_int_equal(qmp_client_actual(fx->c), 300 * MiB);

    /* a query-balloon reply with a bad size fails that query only */
    fx->peer_actual = 0;
    assert_int_equal(qmp_client_query_balloon(fx->c, cb_done, &q), 0);
    RUN_UNTIL(fx, q.calls == 1, 5000);
    assert_int_equal(q.status, -EBADMSG);
    assert_int_equal(qmp_client_stats(fx->c)->bad_actuals, 4);
    assert_int_equal(qmp_client_actual(fx->c), 300 * MiB);
    assert_true(qmp_client_is_ready(fx->c));
    assert_int_equal(fx->disc_count, 0);
    assert_string_equal(fx->trace, "ready:536870912 bad:BALLOON_CHANGE bad:BALLOON_CHANGE "
                                   "bad:BALLOON_CHANGE change:314572800 bad:query-balloon "
                                   "done:query:-74 ");
}

/* A monitor that accepts commands and never answers (a QEMU whose main loop hangs) is dead
 * after max_missed_replies timeouts in a row: the client reconnects. A reply in between
 * starts the count again. */
static void test_dead_monitor_reconnected(void **state)
{
    struct fx *fx = *state;
    struct done_rec d = {.fx = fx, .label = "held"}, ok = {.fx = fx, .label = "ok"};

    fx->cfg.command_timeout_ms = 40;
    fx->cfg.max_missed_replies = 3;
    start_ready(fx);
    fx->hook = hook_hold;
    /* two missed, then one answered: the count starts over */
    assert_int_equal(qmp_client_query_balloon(fx->c, cb_done, &d), 0);
    assert_int_equal(qmp_client_query_balloon(fx->c, cb_done, &d), 0);
    RUN_UNTIL(fx, d.calls == 2, 5000);
    fx->hook = NULL;
    assert_int_equal(qmp_client_execute(fx->c, "query-version", NULL, cb_done, &ok), 0);
    RUN_UNTIL(fx, ok.calls == 1, 5000);
    fx->hook = hook_hold;
    assert_int_equal(qmp_client_query_balloon(fx->c, cb_done, &d), 0);
    assert_int_equal(qmp_client_query_balloon(fx->c, cb_done, &d), 0);
    RUN_UNTIL(fx, d.calls == 4, 5000);
    assert_int_equal(fx->disc_count, 0);
    assert_true(qmp_client_is_ready(fx->c));
    /* the third in a row: the monitor is dead */
    assert_int_equal(qmp_client_set_balloon(fx->c, 300 * MiB, cb_done, &d), 0);
    RUN_UNTIL(fx, fx->disc_count == 1, 5000);
    assert_int_equal(d.calls, 5);
    assert_int_equal(d.status, -ETIMEDOUT);
    assert_int_equal(fx->disc_err[0], -ETIMEDOUT);
    assert_true(fx->disc_was_ready[0]);
    assert_non_null(strstr(fx->disc_reason, "missed 3 replies in a row"));
    assert_int_equal(qmp_client_stats(fx->c)->dead_monitors, 1);
    assert_int_equal(qmp_client_stats(fx->c)->timeouts, 5);
    assert_string_equal(qmp_client_failed_phase(fx->c), "ready");
    RUN_UNTIL(fx, fx->ready_count == 2, 5000); /* the handshake is answered */
}

/* A monitor that stops reading: the bytes queued for it are bounded, further commands are
 * refused with -ENOBUFS, and once it reads again commands are accepted again. */
static void test_write_queue_bounded(void **state)
{
    struct fx *fx = *state;
    struct done_rec d = {.fx = fx, .label = "big"};
    char *pad = malloc(32 * 1024);
    int accepted = 0, r = 0;

    fx->cfg.max_write_queue = 64 * 1024;
    fx->cfg.command_timeout_ms = 60000;
    start_ready(fx);
    fx->hook = hook_hold;
    assert_int_equal(uv_read_stop((uv_stream_t *)&fx->conn->pipe), 0);
    memset(pad, 'x', 32 * 1024 - 1);
    pad[32 * 1024 - 1] = '\0';
    json_t *args = json_pack("{ss}", "pad", pad);
    /* the kernel's socket buffer takes some; then libuv's queue grows up to the bound */
    while (accepted < QMP_MAX_PENDING &&
           (r = qmp_client_execute(fx->c, "x-pad", args, cb_done, &d)) == 0)
        accepted++;
    assert_int_equal(r, -ENOBUFS);
    assert_true(accepted < QMP_MAX_PENDING);
    assert_int_equal(qmp_client_stats(fx->c)->write_refused, 1);
    /* the bound is in bytes: a small command still fits where a big one did not */
    assert_int_equal(qmp_client_query_balloon(fx->c, cb_done, &d), 0);
    assert_true(accepted * 32 * 1024 > 64 * 1024); /* the kernel took its share first */
    /* the monitor reads again: the queue drains, commands go out again */
    assert_int_equal(
        uv_read_start((uv_stream_t *)&fx->conn->pipe, peer_alloc_big, peer_read_discard), 0);
    RUN_UNTIL(fx, qmp_client_query_balloon(fx->c, cb_done, &d) == 0, 5000);
    json_decref(args);
    free(pad);
    qmp_client_close(fx->c, cb_closed); /* `d` lives on this stack */
    RUN_UNTIL(fx, fx->closed, 5000);
}

/* Stop the peer listening and remove its socket, as a QEMU that exits does. */
static void peer_unlisten(struct fx *fx)
{
    peer_hangup(fx);
    uv_close((uv_handle_t *)&fx->server, close_cb_noop);
    fx->listening = false;
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    unlink(fx->path);
}

/* QEMU back after a long outage: the backoff has reached 10 s, yet the client is ready
 * well within a second of the socket appearing (its folder is watched). */
static void test_socket_reappearing_noticed(void **state)
{
    struct fx *fx = *state;

    fx->cfg.backoff_min_ms = 10000;
    fx->cfg.backoff_max_ms = 10000;
    start_ready(fx);
    peer_unlisten(fx);
    RUN_UNTIL(fx, fx->disc_count == 1, 5000);
    run_for(fx, 200);
    assert_int_equal(fx->ready_count, 1);
    uint64_t t0 = uv_now(&fx->loop);
    peer_listen(fx);
    RUN_UNTIL(fx, fx->ready_count == 2, 5000);
    assert_true(fx->ready_time - t0 < 1000);
    assert_true(qmp_client_stats(fx->c)->watch_retries >= 1);
}

/* Where an attempt ended, for logs that only speak on a change. */
static void test_failed_phase(void **state)
{
    struct fx *fx = *state;

    fx->cfg.command_timeout_ms = 50;
    new_client(fx);
    assert_string_equal(qmp_client_failed_phase(fx->c), "");
    assert_int_equal(qmp_client_start(fx->c), 0);
    RUN_UNTIL(fx, fx->disc_count == 1, 5000);
    assert_string_equal(qmp_client_failed_phase(fx->c), "connect");
    fx->greet = false;
    peer_listen(fx);
    RUN_UNTIL(fx, fx->disc_err[fx->disc_count - 1] == -ETIMEDOUT, 5000);
    assert_string_equal(qmp_client_failed_phase(fx->c), "greeting");
    fx->greet = true;
    fx->hook = hook_hold_handshake;
    RUN_UNTIL(fx, strcmp(qmp_client_failed_phase(fx->c), "handshake") == 0, 5000);
    assert_non_null(strstr(fx->disc_reason, "qmp_capabilities timed out"));
}

/* Closing fails pending commands at once and calls nothing else; handles are released. */
static void test_close_with_pending(void **state)
{
    struct fx *fx = *state;
    struct done_rec d = {.fx = fx, .label = "balloon"};

    start_ready(fx);
    fx->hook = hook_hold;
    assert_int_equal(qmp_client_set_balloon(fx->c, 300 * MiB, cb_done, &d), 0);
    RUN_UNTIL(fx, json_array_size(fx->held) == 1, 5000);
    qmp_client_close(fx->c, cb_closed);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, -ECANCELED);
    qmp_client_close(fx->c, cb_closed); /* twice: a no-op */
    assert_false(fx->closed);           /* only after libuv's close callbacks */
    RUN_UNTIL(fx, fx->closed, 5000);
    assert_int_equal(fx->disc_count, 0);
    assert_string_equal(fx->trace, "ready:536870912 done:balloon:-125 ");
}

/* Closing from inside a callback of the client itself is safe. */
static void test_close_from_callback(void **state)
{
    struct fx *fx = *state;

    fx->close_in_ready = true;
    peer_listen(fx);
    new_client(fx);
    assert_int_equal(qmp_client_start(fx->c), 0);
    RUN_UNTIL(fx, fx->ready_count == 1, 5000);
    /* the client is closing itself; let libuv finish, then nothing is left */
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    fx->c = NULL;
    assert_int_equal(fx->disc_count, 0);
}

/* Closing while the connect is in flight, before the loop ever ran. */
static void test_close_while_connecting(void **state)
{
    struct fx *fx = *state;

    peer_listen(fx);
    new_client(fx);
    assert_int_equal(qmp_client_start(fx->c), 0);
    qmp_client_close(fx->c, cb_closed);
    RUN_UNTIL(fx, fx->closed, 5000);
    assert_int_equal(fx->ready_count, 0);
    assert_int_equal(fx->disc_count, 0);
}

static void test_bad_arguments(void **state)
{
    struct fx *fx = *state;
    struct qmp_client *c = NULL;
    char longpath[200];

    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[sizeof(longpath) - 1] = '\0';
    assert_int_equal(qmp_client_new(&fx->loop, longpath, NULL, &callbacks, fx, &c), -ENAMETOOLONG);
    assert_int_equal(qmp_client_new(&fx->loop, "", NULL, &callbacks, fx, &c), -EINVAL);
    assert_int_equal(qmp_client_new(NULL, fx->path, NULL, &callbacks, fx, &c), -EINVAL);
    assert_null(c);
    /* made and closed without ever starting: no handle leaks (teardown checks the loop) */
    new_client(fx);
    json_t *arr = json_array();
    assert_int_equal(qmp_client_execute(fx->c, "x", arr, NULL, NULL), -EINVAL);
    json_decref(arr);
}

int main(void)
{
    /* as in bellowsd: a write to a socket the other end closed is an error, not a signal */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_handshake_reads_balloon_before_ready, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replies_matched_by_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disconnect_mid_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_between_command_and_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_junk_reconnects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_greeting_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_refused_never_ready, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ready_then_drop_backs_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_actual_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_monitor_reconnected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_queue_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_reappearing_noticed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_phase, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_while_connecting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
