/* The control socket server on a real loop with fake control_ops: replies over the socket,
 * owner-only mode, at most control_max_clients connections, and only the daemon's own
 * user (SO_PEERCRED; as root the test connects from a child running as nobody). */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "host-daemon/control/control.h"
#include "tests/harness/loop_wait.h"

#define WAIT_MS 5000
#define NOBODY 65534

static uv_loop_t loop;
static char self[4096]; /* this test's executable, for the peer of another user */

/* ---- fake ops: one guest "web1"; counts what is asked ---- */

static int lists, pauses;

static int fake_find(void *ctx, const char *name, struct config_guest *ret_cfg)
{
    (void)ctx;
    if (strcmp(name, "web1") != 0)
        return -ENOENT;
    *ret_cfg = (struct config_guest){.name = "web1", .floor_bytes = 1, .ceiling_bytes = 2};
    return 0;
}

static json_t *fake_list(void *ctx)
{
    (void)ctx;
    lists++;
    return json_pack("{sbsns[]}", "dry_run", 0, "host", "guests");
}

static void fake_pause(void *ctx, const char *name, bool paused)
{
    (void)ctx;
    (void)name;
    (void)paused;
    pauses++;
}

static const struct control_ops ops = {.find = fake_find, .list = fake_list, .pause = fake_pause};

/* ---- clients on the same loop ---- */

struct client {
    uv_pipe_t pipe;
    uv_connect_t connect;
    bool connected, closed;
    char buf[4096];
    size_t len;
};

static void client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct client *c = h->data;
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof(c->buf) - 1 - c->len));
}

static void client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct client *c = s->data;
    if (nread < 0) {
        c->closed = true;
        uv_read_stop(s);
        return;
    }
    c->len += (size_t)nread;
    c->buf[c->len] = '\0';
}

static void client_connected(uv_connect_t *req, int status)
{
    struct client *c = req->data;
    assert_int_equal(status, 0);
    c->connected = true;
    uv_read_start((uv_stream_t *)&c->pipe, client_alloc, client_read);
}

static void client_connect(struct client *c, const char *path)
{
    memset(c, 0, sizeof(*c));
    uv_pipe_init(&loop, &c->pipe, 0);
    c->pipe.data = c;
    c->connect.data = c;
    uv_pipe_connect(&c->connect, &c->pipe, path, client_connected);
}

static void client_send(struct client *c, const char *line)
{
    uv_buf_t b = uv_buf_init((char *)line, (unsigned)strlen(line));
    int r = uv_try_write((uv_stream_t *)&c->pipe, &b, 1);
    if (r != (int)strlen(line))
        fail_msg("send %s: %s (received so far: '%s', closed %d)", line, uv_strerror(r), c->buf,
                 c->closed);
}

static void client_close(struct client *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->pipe))
        uv_close((uv_handle_t *)&c->pipe, NULL);
}

/* ---- world ---- */

struct world {
    char dir[64];
    char path[128];
    struct control_server *server;
};

static int setup(void **state)
{
    static struct world w;
    memset(&w, 0, sizeof(w));
    snprintf(w.dir, sizeof(w.dir), "/tmp/bellows-control-XXXXXX");
    assert_non_null(mkdtemp(w.dir));
    snprintf(w.path, sizeof(w.path), "%s/control.sock", w.dir);
    assert_int_equal(uv_loop_init(&loop), 0);
    loop_wait_init(&loop, WAIT_MS);
    lists = pauses = 0;
    *state = &w;
    return 0;
}

static int teardown(void **state)
{
    struct world *w = *state;
    if (w->server)
        control_server_close(w->server);
    loop_wait_close();
    while (uv_run(&loop, UV_RUN_DEFAULT) != 0)
        ;
    assert_int_equal(uv_loop_close(&loop), 0);
    unlink(w->path);
    rmdir(w->dir);
    return 0;
}

/* A request gets its reply; the socket is the owner's only. */
static void answers_requests(void **state)
{
    struct world *w = *state;
    assert_int_equal(control_server_start(&loop, w->path, 4, &ops, NULL, &w->server), 0);
    struct stat st;
    assert_int_equal(stat(w->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    struct client c;
    client_connect(&c, w->path);
    WAIT_FOR(c.connected);
    client_send(&c, "{\"cmd\":\"list\"}\n{\"cmd\":\"pause\",\"name\":\"web1\"}\n");
    WAIT_FOR(strchr(c.buf, '\n') && strchr(strchr(c.buf, '\n') + 1, '\n'));
    assert_non_null(strstr(c.buf, "{\"ok\":true,\"dry_run\":false,\"host\":null,\"guests\":[]}\n"
                                  "{\"ok\":true}\n"));
    assert_int_equal(lists, 1);
    assert_int_equal(pauses, 1);
    client_close(&c);

    /* A second daemon on a live socket is refused. */
    struct control_server *other;
    assert_int_equal(control_server_start(&loop, w->path, 4, &ops, NULL, &other), -EADDRINUSE);
}

/* At most max_clients at once: the next one is told so and closed; once one leaves, a new
 * one is served. */
static void at_most_max_clients(void **state)
{
    struct world *w = *state;
    assert_int_equal(control_server_start(&loop, w->path, 2, &ops, NULL, &w->server), 0);
    struct client a, b, c;
    client_connect(&a, w->path);
    client_connect(&b, w->path);
    WAIT_FOR(a.connected && b.connected);
    client_send(&a, "{\"cmd\":\"list\"}\n");
    client_send(&b, "{\"cmd\":\"list\"}\n");
    WAIT_FOR(strchr(a.buf, '\n') && strchr(b.buf, '\n'));
    client_connect(&c, w->path);
    WAIT_FOR(c.closed);
    assert_string_equal(c.buf, "{\"ok\":false,\"error\":\"too many control connections\"}\n");
    assert_int_equal(lists, 2);
    /* a and b are still served. */
    client_send(&a, "{\"cmd\":\"list\"}\n");
    WAIT_FOR(lists == 3 && strchr(strchr(a.buf, '\n') + 1, '\n'));
    client_close(&c);

    /* Once b leaves, its slot is free again: the server notices b's close on a loop turn
     * of its own, so a newcomer may still be told "too many" first; it is served within a
     * few attempts. */
    client_close(&b);
    static struct client ds[20]; /* one each: a closing handle's memory stays untouched */
    bool served = false;
    for (int attempt = 0; attempt < 20 && !served; attempt++) {
        struct client *dp = &ds[attempt];
#define d (*dp)
        client_connect(&d, w->path);
        WAIT_FOR(d.connected);
        uv_buf_t req = uv_buf_init("{\"cmd\":\"list\"}\n", 15);
        uv_try_write((uv_stream_t *)&d.pipe, &req, 1); /* fails when refused already */
        WAIT_FOR(strchr(d.buf, '\n') || d.closed);
        served = strstr(d.buf, "\"ok\":true") != NULL;
        if (!served)
            assert_string_equal(d.buf, "{\"ok\":false,\"error\":\"too many control "
                                       "connections\"}\n");
        client_close(&d);
#undef d
    }
    assert_true(served);
    client_close(&a);
}

/* ---- a peer of another user: this executable again, as nobody ---- */

/* Connect, ask for the list, print what came back; exit 0 when the server closed without
 * a reply, 3 when it answered, 2 when it could not connect. */
static int peer_main(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        perror("peer: connect");
        return 2;
    }
    const char *req = "{\"cmd\":\"list\"}\n";
    if (write(fd, req, strlen(req)) < 0)
        perror("peer: write"); /* the server may have closed already */
    char buf[512];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, WAIT_MS) != 1)
        return 4;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    if (n > 0) {
        buf[n] = '\0';
        fprintf(stderr, "peer: answered: %s", buf);
        return 3;
    }
    return 0;
}

struct peer {
    uv_process_t proc;
    bool exited;
    int64_t status;
};

static void peer_exit(uv_process_t *p, int64_t status, int sig)
{
    (void)sig;
    struct peer *peer = p->data;
    peer->exited = true;
    peer->status = status;
    uv_close((uv_handle_t *)p, NULL);
}

/* Only the daemon's own user (or root) may talk to it, whatever the socket's mode. */
static void other_users_are_refused(void **state)
{
    struct world *w = *state;
    if (geteuid() != 0)
        skip(); /* connecting as another user needs root; scripts/test runs as root */
    assert_int_equal(control_server_start(&loop, w->path, 4, &ops, NULL, &w->server), 0);
    /* A mistake elsewhere opens the socket to everyone: the peer check still holds. */
    assert_int_equal(chmod(w->dir, 0755), 0);
    assert_int_equal(chmod(w->path, 0666), 0);

    struct peer peer = {.proc.data = &peer};
    char *args[] = {self, "--peer", w->path, NULL};
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_INHERIT_FD, .data.fd = 1},
        {.flags = UV_INHERIT_FD, .data.fd = 2},
    };
    uv_process_options_t opts = {
        .file = self,
        .args = args,
        .exit_cb = peer_exit,
        .stdio = stdio,
        .stdio_count = 3,
        .flags = UV_PROCESS_SETUID | UV_PROCESS_SETGID,
        .uid = NOBODY,
        .gid = NOBODY,
    };
    peer.proc.data = &peer;
    assert_int_equal(uv_spawn(&loop, &peer.proc, &opts), 0);
    WAIT_FOR(peer.exited);
    assert_int_equal(peer.status, 0); /* closed without an answer */
    assert_int_equal(lists, 0);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--peer") == 0)
        return peer_main(argv[2]);
    signal(SIGPIPE, SIG_IGN); /* as bellowsd: a peer gone under a write is an error, not death */
    size_t len = sizeof(self);
    if (uv_exepath(self, &len) != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(answers_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(at_most_max_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(other_users_are_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
