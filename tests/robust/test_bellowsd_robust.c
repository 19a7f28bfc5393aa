/* bellowsd as a process against misbehaving peers this test plays on its own loop, and
 * what it logs meanwhile (the daemon's stderr, read line by line):
 * - a chardev that accepts and closes at once: redialled ever more slowly, a few lines;
 * - an agent repeating its hello: one line per agent or boot id, not per hello;
 * - a QMP monitor that accepts and never greets: the hung handshake is logged;
 * - a QMP monitor that refuses every move: the moves back off (1 s, 2 s, ...), one error
 *   line, then one when moves work again;
 * - a move sent to a QEMU that goes away before the balloon moved: the target is dropped
 *   when the link comes back;
 * - the operator's pause, set and add survive a restart of the daemon (state_dir).
 * The daemon's path comes from $BELLOWSD (set by meson). */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>
#include <cmocka.h>

#include "tests/protocol/samples.h"

#define MIB (UINT64_C(1) << 20)
#define WAIT_MS 15000 /* any single awaited event; far above what it takes */

static uv_loop_t loop;
static uv_timer_t deadline;
static bool deadline_expired;

static void on_deadline(uv_timer_t *t)
{
    (void)t;
    deadline_expired = true;
}

#define WAIT_FOR(cond)                                                                             \
    do {                                                                                           \
        deadline_expired = false;                                                                  \
        uv_timer_start(&deadline, on_deadline, WAIT_MS, 0);                                        \
        while (!(cond) && !deadline_expired)                                                       \
            uv_run(&loop, UV_RUN_ONCE);                                                            \
        uv_timer_stop(&deadline);                                                                  \
        if (!(cond))                                                                               \
            fail_msg("timed out waiting for: %s", #cond);                                          \
    } while (0)

/* Let the loop (and the daemon) run for ms, whatever happens. */
static void run_for(uint64_t ms)
{
    deadline_expired = false;
    uv_timer_start(&deadline, on_deadline, ms, 0);
    while (!deadline_expired)
        uv_run(&loop, UV_RUN_ONCE);
}

/* ---- a scripted QMP peer ---- */

enum qmp_mode {
    QMP_NORMAL,
    QMP_NO_GREETING,    /* accept, say nothing */
    QMP_REFUSE_BALLOON, /* answer `balloon` with an error */
    QMP_VANISH_ON_MOVE, /* answer `balloon`, then close without moving */
};

struct qmp_peer {
    uv_pipe_t server, client;
    char path[256];
    enum qmp_mode mode;
    bool listening, connected, client_closing;
    int accepts, balloons;
    uint64_t balloon_ms[64];
    int64_t actual;
    char buf[65536];
    size_t len;
};

static void peer_send(struct qmp_peer *p, json_t *msg)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    size_t len = strlen(text);
    char *line = malloc(len + 3);
    memcpy(line, text, len);
    memcpy(line + len, "\r\n", 3);
    free(text);
    uv_buf_t b = uv_buf_init(line, (unsigned)(len + 2));
    uv_try_write((uv_stream_t *)&p->client, &b, 1);
    free(line);
}

static void peer_client_closed(uv_handle_t *h)
{
    ((struct qmp_peer *)h->data)->client_closing = false;
}

static void peer_hangup(struct qmp_peer *p)
{
    if (!p->connected)
        return;
    p->connected = false;
    p->client_closing = true;
    uv_close((uv_handle_t *)&p->client, peer_client_closed);
}

static void peer_line(struct qmp_peer *p, const char *line, size_t len)
{
    json_t *msg = json_loadb(line, len, 0, NULL);
    assert_non_null(msg);
    const char *cmd = json_string_value(json_object_get(msg, "execute"));
    json_t *id = json_object_get(msg, "id");
    if (strcmp(cmd, "query-balloon") == 0) {
        peer_send(p, json_pack("{s{sI}sO}", "return", "actual", (json_int_t)p->actual, "id", id));
    } else if (strcmp(cmd, "balloon") == 0) {
        if (p->balloons < 64)
            p->balloon_ms[p->balloons] = uv_now(&loop);
        p->balloons++;
        int64_t value =
            json_integer_value(json_object_get(json_object_get(msg, "arguments"), "value"));
        if (p->mode == QMP_REFUSE_BALLOON) {
            peer_send(p, json_pack("{s{ssss}sO}", "error", "class", "GenericError", "desc",
                                   "balloon refused by the test", "id", id));
        } else if (p->mode == QMP_VANISH_ON_MOVE) {
            peer_send(p, json_pack("{s{}sO}", "return", "id", id));
            peer_hangup(p); /* QEMU killed before the balloon moved */
        } else {
            peer_send(p, json_pack("{s{}sO}", "return", "id", id));
            p->actual = value;
            peer_send(p, json_pack("{ss s{sI}}", "event", "BALLOON_CHANGE", "data", "actual",
                                   (json_int_t)p->actual));
        }
    } else {
        peer_send(p, json_pack("{s{}sO}", "return", "id", id));
    }
    json_decref(msg);
}

static void peer_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct qmp_peer *p = h->data;
    *buf = uv_buf_init(p->buf + p->len, (unsigned)(sizeof(p->buf) - p->len));
}

static void peer_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct qmp_peer *p = s->data;
    if (nread < 0) {
        peer_hangup(p);
        return;
    }
    p->len += (size_t)nread;
    char *nl;
    while (p->connected && (nl = memchr(p->buf, '\n', p->len))) {
        size_t n = (size_t)(nl - p->buf);
        peer_line(p, p->buf, n);
        memmove(p->buf, nl + 1, p->len - n - 1);
        p->len -= n + 1;
    }
}

static void peer_connection(uv_stream_t *server, int status)
{
    struct qmp_peer *p = server->data;
    assert_int_equal(status, 0);
    while (p->client_closing)
        uv_run(&loop, UV_RUN_ONCE);
    peer_hangup(p);
    while (p->client_closing)
        uv_run(&loop, UV_RUN_ONCE);
    uv_pipe_init(&loop, &p->client, 0);
    p->client.data = p;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&p->client), 0);
    p->accepts++;
    p->connected = true;
    p->len = 0;
    if (p->mode != QMP_NO_GREETING)
        peer_send(p, json_pack("{s{s{s{sisisi}ss}s[]}}", "QMP", "version", "qemu", "micro", 0,
                               "minor", 2, "major", 7, "package", "", "capabilities"));
    uv_read_start((uv_stream_t *)&p->client, peer_alloc, peer_read);
}

static void peer_listen(struct qmp_peer *p)
{
    uv_pipe_init(&loop, &p->server, 0);
    p->server.data = p;
    assert_int_equal(uv_pipe_bind(&p->server, p->path), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&p->server, 4, peer_connection), 0);
    p->listening = true;
}

static void peer_init(struct qmp_peer *p, const char *dir, const char *name, enum qmp_mode mode)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->path, sizeof(p->path), "%s/%s.qmp", dir, name);
    p->mode = mode;
    p->actual = 512 * MIB;
}

/* ---- a fake chardev (the guest's end of the agent's port) ---- */

struct chardev {
    uv_pipe_t server, client;
    char path[256];
    bool close_at_once, connected;
    int accepts;
};

static void chardev_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char sink[4096];
    *buf = uv_buf_init(sink, sizeof(sink));
}

static void chardev_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct chardev *c = s->data;
    if (nread < 0 && c->connected) {
        c->connected = false;
        uv_close((uv_handle_t *)&c->client, NULL);
    }
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void chardev_connection(uv_stream_t *server, int status)
{
    struct chardev *c = server->data;
    assert_int_equal(status, 0);
    c->accepts++;
    if (c->close_at_once) {
        uv_pipe_t *p = malloc(sizeof(*p));
        uv_pipe_init(&loop, p, 0);
        assert_int_equal(uv_accept(server, (uv_stream_t *)p), 0);
        uv_close((uv_handle_t *)p, free_handle);
        return;
    }
    uv_pipe_init(&loop, &c->client, 0);
    c->client.data = c;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&c->client), 0);
    c->connected = true;
    uv_read_start((uv_stream_t *)&c->client, chardev_alloc, chardev_read);
}

static void chardev_listen(struct chardev *c, const char *dir, const char *name)
{
    snprintf(c->path, sizeof(c->path), "%s/%s.chan", dir, name);
    uv_pipe_init(&loop, &c->server, 0);
    c->server.data = c;
    assert_int_equal(uv_pipe_bind(&c->server, c->path), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&c->server, 16, chardev_connection), 0);
}

static void chardev_send(struct chardev *c, const struct bp_msg *msg)
{
    char frame[BP_MAX_FRAME];
    size_t len;
    assert_int_equal(bp_encode(msg, frame, sizeof(frame), &len), BP_OK);
    uv_buf_t b = uv_buf_init(frame, (unsigned)len);
    assert_int_equal(uv_try_write((uv_stream_t *)&c->client, &b, 1), (int)len);
}

/* ---- the daemon ---- */

struct daemon_proc {
    uv_process_t proc;
    uv_pipe_t err;
    bool exited;
    int64_t exit_status;
    char log[1 << 20];
    size_t log_len;
};

static void proc_exit(uv_process_t *p, int64_t status, int sig)
{
    (void)sig;
    struct daemon_proc *d = p->data;
    d->exited = true;
    d->exit_status = status;
    uv_close((uv_handle_t *)p, NULL);
}

static void log_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct daemon_proc *d = h->data;
    size_t room = sizeof(d->log) - 1 - d->log_len;
    *buf = uv_buf_init(d->log + d->log_len, (unsigned)(room > 4096 ? 4096 : room));
}

static void log_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct daemon_proc *d = s->data;
    if (nread < 0) {
        uv_close((uv_handle_t *)s, NULL);
        return;
    }
    fwrite(buf->base, 1, (size_t)nread, stderr); /* for the test log */
    d->log_len += (size_t)nread;
    d->log[d->log_len] = '\0';
}

static struct daemon_proc *spawned; /* killed by a failing test's teardown */

static void spawn_daemon(struct daemon_proc *d, const char *config)
{
    const char *daemon = getenv("BELLOWSD");
    if (!daemon)
        fail_msg("BELLOWSD is not set (run through meson test)");
    memset(d, 0, sizeof(*d));
    char *args[] = {(char *)daemon, "--config", (char *)config, NULL};
    uv_pipe_init(&loop, &d->err, 0);
    d->err.data = d;
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_INHERIT_FD, .data.fd = 2},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&d->err},
    };
    uv_process_options_t opts = {
        .file = daemon, .args = args, .exit_cb = proc_exit, .stdio = stdio, .stdio_count = 3};
    d->proc.data = d;
    assert_int_equal(uv_spawn(&loop, &d->proc, &opts), 0);
    spawned = d;
    uv_read_start((uv_stream_t *)&d->err, log_alloc, log_read);
}

static void stop_daemon(struct daemon_proc *d)
{
    uv_process_kill(&d->proc, SIGTERM);
    WAIT_FOR(d->exited);
    assert_int_equal(d->exit_status, 0);
    spawned = NULL;
}

/* Lines of the daemon's log that hold all of the given strings (NULL-terminated). */
static int count_lines(const struct daemon_proc *d, const char *first, ...)
{
    int n = 0;
    const char *line = d->log;
    while (*line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char copy[2048];
        snprintf(copy, sizeof(copy), "%.*s", (int)len, line);
        bool all = true;
        va_list ap;
        va_start(ap, first);
        for (const char *s = first; s; s = va_arg(ap, const char *))
            all &= strstr(copy, s) != NULL;
        va_end(ap);
        n += all;
        line += len + (end ? 1 : 0);
    }
    return n;
}

/* One control request, blocking (the daemon is another process). */
static json_t *control(const char *path, const char *request)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(write(fd, request, strlen(request)), (ssize_t)strlen(request));
    assert_int_equal(write(fd, "\n", 1), 1);
    static char buf[1 << 16];
    size_t used = 0;
    while (!memchr(buf, '\n', used)) {
        ssize_t n = read(fd, buf + used, sizeof(buf) - used - 1);
        assert_true(n > 0);
        used += (size_t)n;
    }
    close(fd);
    json_t *reply = json_loadb(buf, used, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(reply);
    return reply;
}

static bool control_up(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    bool up = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
    close(fd);
    return up;
}

/* The guest's entry in `show`. */
static json_t *show(const char *ctl, const char *name)
{
    char req[128];
    snprintf(req, sizeof(req), "{\"cmd\":\"show\",\"name\":\"%s\"}", name);
    json_t *r = control(ctl, req);
    json_t *g = json_incref(json_object_get(r, "guest"));
    json_decref(r);
    return g;
}

struct world {
    char dir[128], config[256], ctl[256], state[256];
};

static void world_init(struct world *w, const char *guests, const char *extra_daemon)
{
    snprintf(w->dir, sizeof(w->dir), "%s/bellowsd-robust-XXXXXX", P_tmpdir);
    assert_non_null(mkdtemp(w->dir));
    snprintf(w->config, sizeof(w->config), "%s/bellowsd.conf", w->dir);
    snprintf(w->ctl, sizeof(w->ctl), "%s/ctl.sock", w->dir);
    snprintf(w->state, sizeof(w->state), "%s/state", w->dir);
    char cwd[512], text[8192];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    /* A calm host: only the guests' events move balloons. */
    snprintf(text, sizeof(text),
             "[daemon]\ncontrol_socket = %s\nstate_dir = %s\nlog_level = debug\n"
             "proc_dir = %s/tests/daemon/data/proc-calm\n%s\n%s",
             w->ctl, w->state, cwd, extra_daemon, guests);
    FILE *f = fopen(w->config, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void guest_text(char *out, size_t cap, const struct world *w, const char *name)
{
    snprintf(out, cap,
             "[guest %s]\nqmp = %s/%s.qmp\nchannel = %s/%s.chan\nfloor = 256M\nceiling = 1G\n",
             name, w->dir, name, w->dir, name);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (h != (uv_handle_t *)&deadline && !uv_is_closing(h))
        uv_close(h, NULL);
}

static void finish(struct world *w)
{
    uv_walk(&loop, close_walk, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", w->dir);
    assert_int_equal(system(cmd), 0);
}

static struct bp_msg hello(const char *boot_id)
{
    struct bp_msg m = sample_hello();
    snprintf(m.u.hello.boot_id, sizeof(m.u.hello.boot_id), "%s", boot_id);
    return m;
}

static struct bp_msg critical(uint64_t seq)
{
    struct bp_msg m = sample_pressure();
    m.u.pressure.level = BP_LEVEL_CRITICAL;
    m.u.pressure.seq = seq;
    return m;
}

/* ---- tests ---- */

/* A chardev that accepts and closes at once: every connect works, yet the redials slow
 * down to reconnect_max, and the log has a handful of lines, not two per attempt. */
static void accept_and_close_chardev(void **state)
{
    (void)state;
    struct world w;
    char g[512];
    world_init(&w, "", "reconnect_min = 10ms\nreconnect_max = 200ms\n");
    guest_text(g, sizeof(g), &w, "flap");
    FILE *f = fopen(w.config, "a");
    fputs(g, f);
    fclose(f);
    struct qmp_peer q;
    struct chardev c = {.close_at_once = true};
    peer_init(&q, w.dir, "flap", QMP_NORMAL);
    peer_listen(&q);
    chardev_listen(&c, w.dir, "flap");
    static struct daemon_proc d;
    spawn_daemon(&d, w.config);
    WAIT_FOR(c.accepts >= 1);
    run_for(3000);
    /* 10, 20, 40, 80, 160 ms, then every 200 ms: about 15 in 3 s (every 14 ms would be
     * 200); a connection that does not stay up never resets the delay. */
    print_message("chardev accepts in 3 s: %d\n", c.accepts);
    assert_true(c.accepts >= 5 && c.accepts <= 25);
    int lines = count_lines(&d, "warning: guest flap: channel", NULL) +
                count_lines(&d, "info: guest flap: channel", NULL);
    print_message("channel lines at info and warning: %d\n", lines);
    assert_true(lines <= 3); /* failing, connected (once), maybe a different error */
    stop_daemon(&d);
    finish(&w);
}

/* An agent repeating its hello: logged once per agent and boot id. */
static void repeated_hello(void **state)
{
    (void)state;
    struct world w;
    char g[512];
    world_init(&w, "", "reconnect_min = 10ms\nreconnect_max = 100ms\n");
    guest_text(g, sizeof(g), &w, "chatty");
    FILE *f = fopen(w.config, "a");
    fputs(g, f);
    fclose(f);
    struct qmp_peer q;
    struct chardev c = {0};
    peer_init(&q, w.dir, "chatty", QMP_NORMAL);
    peer_listen(&q);
    chardev_listen(&c, w.dir, "chatty");
    static struct daemon_proc d;
    spawn_daemon(&d, w.config);
    WAIT_FOR(c.connected);
    for (int i = 0; i < 30; i++) {
        struct bp_msg m = hello("boot-one");
        chardev_send(&c, &m);
    }
    WAIT_FOR(count_lines(&d, "says hello", "again", NULL) >= 29);
    struct bp_msg m = hello("boot-two");
    chardev_send(&c, &m);
    WAIT_FOR(count_lines(&d, "says hello", "boot-two", NULL) >= 1);
    assert_int_equal(count_lines(&d, "info: guest chatty: agent", "says hello", NULL), 2);
    stop_daemon(&d);
    finish(&w);
}

/* A monitor that accepts and never greets: a change of state from "no socket", logged. */
static void hung_handshake_logged(void **state)
{
    (void)state;
    struct world w;
    char g[512];
    world_init(&w, "", "reconnect_min = 10ms\nreconnect_max = 100ms\n");
    guest_text(g, sizeof(g), &w, "mute");
    FILE *f = fopen(w.config, "a");
    fputs(g, f);
    fclose(f);
    struct qmp_peer q;
    peer_init(&q, w.dir, "mute", QMP_NO_GREETING);
    static struct daemon_proc d;
    spawn_daemon(&d, w.config);
    WAIT_FOR(count_lines(&d, "warning: guest mute: QMP", "No such file", NULL) == 1);
    peer_listen(&q); /* the socket appears: connected at once, then silence */
    WAIT_FOR(count_lines(&d, "warning: guest mute: QMP", "while greeting", NULL) == 1);
    assert_true(q.accepts >= 1);
    stop_daemon(&d);
    finish(&w);
}

/* Moves refused by QEMU: a balloon below its floor is moved at every round the policy
 * runs, so only the backoff spaces the attempts: 1 s, then 2 s; one error line; when QEMU
 * takes moves again, one line says so. */
static void failing_moves_back_off(void **state)
{
    (void)state;
    struct world w;
    char g[512];
    world_init(&w, "", "reconnect_min = 10ms\nreconnect_max = 100ms\n");
    guest_text(g, sizeof(g), &w, "stuck");
    FILE *f = fopen(w.config, "a");
    fputs(g, f);
    fclose(f);
    struct qmp_peer q;
    struct chardev c = {0};
    peer_init(&q, w.dir, "stuck", QMP_REFUSE_BALLOON);
    q.actual = 128 * MIB; /* under its 256 MiB floor: a deflate to the floor, at once */
    peer_listen(&q);
    chardev_listen(&c, w.dir, "stuck");
    static struct daemon_proc d;
    spawn_daemon(&d, w.config);
    WAIT_FOR(q.balloons == 1);
    uint64_t t0 = q.balloon_ms[0];
    run_for(3500);
    print_message("moves sent in 3.5 s: %d, at +0, +%llu, +%llu ms\n", q.balloons,
                  (unsigned long long)(q.balloon_ms[1] - t0),
                  (unsigned long long)(q.balloon_ms[2] - t0));
    assert_int_equal(q.balloons, 3); /* at 0, 1 s, 3 s: not once a round */
    uint64_t gap1 = q.balloon_ms[1] - q.balloon_ms[0], gap2 = q.balloon_ms[2] - q.balloon_ms[1];
    assert_true(gap1 >= 1000 && gap1 < 1500);
    assert_true(gap2 >= 2000 && gap2 < 2500);
    assert_int_equal(count_lines(&d, "error: guest stuck: balloon command", NULL), 1);
    /* QEMU takes moves again: the next one works, and that is said once */
    q.mode = QMP_NORMAL;
    WAIT_FOR(q.balloons == 4 &&
             count_lines(&d, "guest stuck: balloon commands work again", NULL) == 1);
    assert_true(q.balloon_ms[3] - q.balloon_ms[2] >= 4000); /* still after the 4 s wait */
    assert_int_equal(q.actual, 256 * MIB);
    stop_daemon(&d);
    finish(&w);
}

/* A move acknowledged by a QEMU that is killed before the balloon moved: when the link
 * comes back the target is dropped (not shown, not built on, for ever). */
static void lost_target_dropped(void **state)
{
    (void)state;
    struct world w;
    char g[512];
    world_init(&w, "", "reconnect_min = 10ms\nreconnect_max = 100ms\n");
    guest_text(g, sizeof(g), &w, "killed");
    FILE *f = fopen(w.config, "a");
    fputs(g, f);
    fclose(f);
    struct qmp_peer q;
    struct chardev c = {0};
    peer_init(&q, w.dir, "killed", QMP_VANISH_ON_MOVE);
    peer_listen(&q);
    chardev_listen(&c, w.dir, "killed");
    static struct daemon_proc d;
    spawn_daemon(&d, w.config);
    WAIT_FOR(c.connected && q.accepts == 1 && count_lines(&d, "QMP", "ready", NULL) >= 1);
    q.mode = QMP_VANISH_ON_MOVE;
    struct bp_msg m = critical(1);
    chardev_send(&c, &m);
    WAIT_FOR(q.balloons == 1);
    q.mode = QMP_NORMAL; /* the new QEMU is well; its balloon is where it was */
    WAIT_FOR(q.accepts == 2 && count_lines(&d, "dropped; deciding again", NULL) == 1);
    json_t *gj = show(w.ctl, "killed");
    json_t *balloon = json_object_get(gj, "balloon");
    assert_non_null(balloon);
    assert_true(json_is_null(json_object_get(balloon, "target")));
    json_decref(gj);
    stop_daemon(&d);
    finish(&w);
}

/* pause, set and add survive a restart; resume and remove are kept too. */
static void operator_state_survives_restart(void **state)
{
    (void)state;
    struct world w;
    char g[512];
    world_init(&w, "", "reconnect_min = 10ms\nreconnect_max = 100ms\n");
    guest_text(g, sizeof(g), &w, "filed");
    FILE *f = fopen(w.config, "a");
    fputs(g, f);
    fclose(f);
    static struct daemon_proc d;
    spawn_daemon(&d, w.config);
    WAIT_FOR(control_up(w.ctl));
    json_decref(control(w.ctl, "{\"cmd\":\"pause\",\"name\":\"filed\"}"));
    char add[512];
    snprintf(add, sizeof(add),
             "{\"cmd\":\"add\",\"name\":\"later\",\"qmp\":\"%s/later.qmp\",\"channel\":\"%s/"
             "later.chan\",\"floor\":\"300M\",\"ceiling\":\"900M\"}",
             w.dir, w.dir);
    json_t *r = control(w.ctl, add);
    assert_true(json_is_true(json_object_get(r, "ok")));
    json_decref(r);
    r = control(w.ctl, "{\"cmd\":\"set\",\"name\":\"filed\",\"weight\":7}");
    assert_true(json_is_true(json_object_get(r, "ok")));
    json_decref(r);
    /* written off the loop: wait for the file to say it */
    char path[300], text[4096];
    snprintf(path, sizeof(path), "%s/state.json", w.state);
    for (;;) {
        FILE *sf = fopen(path, "r");
        size_t n = sf ? fread(text, 1, sizeof(text) - 1, sf) : 0;
        if (sf)
            fclose(sf);
        text[n] = '\0';
        if (strstr(text, "\"later\"") && strstr(text, "\"weight\":7"))
            break;
        run_for(20);
    }
    stop_daemon(&d);

    static struct daemon_proc d2;
    spawn_daemon(&d2, w.config);
    WAIT_FOR(control_up(w.ctl) && count_lines(&d2, "started:", NULL) == 1);
    json_t *filed = show(w.ctl, "filed");
    assert_true(json_is_true(json_object_get(filed, "paused")));
    assert_int_equal(json_integer_value(json_object_get(filed, "weight")), 7);
    json_decref(filed);
    json_t *later = show(w.ctl, "later");
    assert_non_null(later);
    assert_string_equal(json_string_value(json_object_get(later, "source")), "runtime");
    assert_int_equal(json_integer_value(json_object_get(later, "floor")), 300 * MIB);
    json_decref(later);
    /* resume and remove are kept too */
    json_decref(control(w.ctl, "{\"cmd\":\"resume\",\"name\":\"filed\"}"));
    json_decref(control(w.ctl, "{\"cmd\":\"remove\",\"name\":\"later\"}"));
    stop_daemon(&d2);
    static struct daemon_proc d3;
    spawn_daemon(&d3, w.config);
    WAIT_FOR(control_up(w.ctl) && count_lines(&d3, "started:", NULL) == 1);
    filed = show(w.ctl, "filed");
    assert_true(json_is_false(json_object_get(filed, "paused")));
    json_decref(filed);
    r = control(w.ctl, "{\"cmd\":\"show\",\"name\":\"later\"}");
    assert_true(json_is_false(json_object_get(r, "ok")));
    json_decref(r);
    stop_daemon(&d3);
    finish(&w);
}

static int setup(void **state)
{
    (void)state;
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_timer_init(&loop, &deadline);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (spawned && !spawned->exited)
        uv_process_kill(&spawned->proc, SIGKILL);
    spawned = NULL;
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_walk(&loop, close_walk, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    return uv_loop_close(&loop) == 0 ? 0 : -1;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(accept_and_close_chardev, setup, teardown),
        cmocka_unit_test_setup_teardown(repeated_hello, setup, teardown),
        cmocka_unit_test_setup_teardown(hung_handshake_logged, setup, teardown),
        cmocka_unit_test_setup_teardown(failing_moves_back_off, setup, teardown),
        cmocka_unit_test_setup_teardown(lost_target_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(operator_state_survives_restart, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
