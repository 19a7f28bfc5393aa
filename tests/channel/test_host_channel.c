/* The host end of a guest channel against fake QEMU chardev sockets on the same loop:
 * a chardev that accepts and closes at once is redialled ever more slowly (a connection
 * only resets the backoff once it has stayed up), and a socket that appears again is
 * noticed at once through its folder, however far the backoff had grown, even when the
 * folder itself appears only with it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>
#include <cmocka.h>

#include "virtio/host_channel.h"

struct fx {
    uv_loop_t loop;
    uv_timer_t guard;
    bool guard_fired;
    char dir[256];
    char path[320];

    uv_pipe_t server;
    bool listening;
    bool close_at_once; /* accept and close every connection */
    uv_pipe_t *peer;    /* the accepted connection, when kept */
    int accepts;

    struct host_channel *ch;
    int connects, disconnects;
    uint64_t retry[64]; /* the delay scheduled at each disconnect */
    uint64_t connect_ms;
    bool closed;
};

static void on_guard(uv_timer_t *t)
{
    ((struct fx *)t->data)->guard_fired = true;
}

#define RUN_UNTIL(fx, cond, ms)                                                                    \
    do {                                                                                           \
        (fx)->guard_fired = false;                                                                 \
        uv_timer_start(&(fx)->guard, on_guard, (ms), 0);                                           \
        while (!(cond) && !(fx)->guard_fired)                                                      \
            uv_run(&(fx)->loop, UV_RUN_ONCE);                                                      \
        uv_timer_stop(&(fx)->guard);                                                               \
        if (!(cond))                                                                               \
            fail_msg("timed out after %d ms waiting for: %s", (int)(ms), #cond);                   \
    } while (0)

/* Run the loop for `ms` of loop time (a timer ends it: nothing else may be active). */
static void run_for(struct fx *fx, uint64_t ms)
{
    fx->guard_fired = false;
    uv_timer_start(&fx->guard, on_guard, ms, 0);
    while (!fx->guard_fired)
        uv_run(&fx->loop, UV_RUN_ONCE);
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

static void noop_close(uv_handle_t *h)
{
    (void)h;
}

static void on_connection(uv_stream_t *server, int status)
{
    struct fx *fx = server->data;
    assert_int_equal(status, 0);
    uv_pipe_t *p = malloc(sizeof(*p));
    assert_non_null(p);
    uv_pipe_init(&fx->loop, p, 0);
    assert_int_equal(uv_accept(server, (uv_stream_t *)p), 0);
    fx->accepts++;
    if (fx->close_at_once) {
        uv_close((uv_handle_t *)p, free_handle);
        return;
    }
    if (fx->peer)
        uv_close((uv_handle_t *)fx->peer, free_handle);
    fx->peer = p;
}

static void listen_at(struct fx *fx, const char *path)
{
    assert_int_equal(uv_pipe_init(&fx->loop, &fx->server, 0), 0);
    fx->server.data = fx;
    assert_int_equal(uv_pipe_bind(&fx->server, path), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&fx->server, 8, on_connection), 0);
    fx->listening = true;
}

/* QEMU going away: its socket closes and its file is removed. */
static void stop_listening(struct fx *fx, const char *path)
{
    if (fx->peer)
        uv_close((uv_handle_t *)fx->peer, free_handle);
    fx->peer = NULL;
    uv_close((uv_handle_t *)&fx->server, noop_close);
    fx->listening = false;
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    unlink(path);
}

static void cb_connect(struct host_channel *ch, void *opaque)
{
    (void)ch;
    struct fx *fx = opaque;
    fx->connects++;
    fx->connect_ms = uv_now(&fx->loop);
}

static void cb_data(struct host_channel *ch, const char *data, size_t len, void *opaque)
{
    (void)ch;
    (void)data;
    (void)len;
    (void)opaque;
}

static void cb_disconnect(struct host_channel *ch, int err, bool was_connected, void *opaque)
{
    (void)err;
    (void)was_connected;
    struct fx *fx = opaque;
    if (fx->disconnects < 64)
        fx->retry[fx->disconnects] = host_channel_retry_ms(ch);
    fx->disconnects++;
}

static void cb_closed(struct host_channel *ch, void *opaque)
{
    (void)ch;
    ((struct fx *)opaque)->closed = true;
}

static const struct host_channel_callbacks cbs = {
    .on_connect = cb_connect,
    .on_data = cb_data,
    .on_disconnect = cb_disconnect,
};

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    const char *tmp = getenv("TMPDIR");
    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    uv_timer_init(&fx->loop, &fx->guard);
    fx->guard.data = fx;
    snprintf(fx->dir, sizeof(fx->dir), "%s/bellows-hc-XXXXXX", tmp && *tmp ? tmp : P_tmpdir);
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof(fx->path), "%s/chan.sock", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    if (fx->ch) {
        host_channel_close(fx->ch, cb_closed);
        RUN_UNTIL(fx, fx->closed, 5000);
    }
    if (fx->peer)
        uv_close((uv_handle_t *)fx->peer, free_handle);
    if (fx->listening)
        uv_close((uv_handle_t *)&fx->server, noop_close);
    uv_close((uv_handle_t *)&fx->guard, noop_close);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx->loop), 0); /* every handle released, watch too */
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

static void start(struct fx *fx, const char *path, uint64_t min_ms, uint64_t max_ms,
                  uint64_t stable_ms)
{
    struct host_channel_config cfg = {
        .backoff_min_ms = min_ms, .backoff_max_ms = max_ms, .stable_ms = stable_ms};
    assert_int_equal(host_channel_new(&fx->loop, path, &cfg, &cbs, fx, &fx->ch), 0);
    assert_int_equal(host_channel_start(fx->ch), 0);
}

/* A chardev that accepts and closes at once: every connect succeeds, yet the delays
 * keep doubling to the maximum, since no connection stayed up for stable_ms. */
static void accept_and_close_backs_off(void **state)
{
    struct fx *fx = *state;
    const uint64_t want[] = {10, 20, 40, 80, 160, 200, 200, 200};

    fx->close_at_once = true;
    listen_at(fx, fx->path);
    start(fx, fx->path, 10, 200, 5000);
    RUN_UNTIL(fx, fx->disconnects == 8, 10000);
    for (int i = 0; i < 8; i++)
        if (fx->retry[i] != want[i])
            fail_msg("retry %d: %llu ms, want %llu", i, (unsigned long long)fx->retry[i],
                     (unsigned long long)want[i]);
    assert_int_equal(fx->connects, 8); /* each attempt did connect */
    assert_int_equal(fx->accepts, 8);
}

/* A connection that stayed up for stable_ms is healthy: after it, the minimum again. */
static void healthy_link_resets_backoff(void **state)
{
    struct fx *fx = *state;

    fx->close_at_once = true;
    listen_at(fx, fx->path);
    start(fx, fx->path, 10, 400, 100);
    RUN_UNTIL(fx, fx->disconnects == 4, 10000);
    assert_int_equal(fx->retry[3], 80);
    fx->close_at_once = false; /* the next connection is kept */
    RUN_UNTIL(fx, fx->peer != NULL, 5000);
    run_for(fx, 150); /* up for longer than 100 ms */
    assert_int_equal(fx->disconnects, 4);
    uv_close((uv_handle_t *)fx->peer, free_handle);
    fx->peer = NULL;
    RUN_UNTIL(fx, fx->disconnects == 5, 5000);
    assert_int_equal(fx->retry[4], 10);
}

/* QEMU back after a long outage: the backoff has reached 10 s, yet the channel connects
 * as soon as the socket appears. */
static void socket_appearing_is_noticed_at_once(void **state)
{
    struct fx *fx = *state;

    start(fx, fx->path, 10000, 10000, 10000); /* nothing listens yet: ENOENT */
    RUN_UNTIL(fx, fx->disconnects == 1, 5000);
    assert_int_equal(fx->retry[0], 10000);
    uint64_t t0 = uv_now(&fx->loop);
    listen_at(fx, fx->path);
    RUN_UNTIL(fx, fx->connects == 1, 5000);
    assert_true(fx->connect_ms - t0 < 1000);
    assert_int_equal(host_channel_stats(fx->ch)->watch_retries, 1);

    /* killed and restarted: the socket goes, and comes back a while later */
    stop_listening(fx, fx->path);
    RUN_UNTIL(fx, fx->disconnects >= 2, 5000);
    run_for(fx, 300);
    assert_int_equal(fx->connects, 1);
    t0 = uv_now(&fx->loop);
    listen_at(fx, fx->path);
    RUN_UNTIL(fx, fx->connects == 2, 5000);
    assert_true(fx->connect_ms - t0 < 1000);
}

/* The socket's folder does not exist yet (a per-run folder, made with the socket): the
 * nearest existing ancestor is watched and the watch follows the folders as they appear. */
static void folder_made_with_the_socket(void **state)
{
    struct fx *fx = *state;
    char sub[300], subsub[310], path[330];

    snprintf(sub, sizeof(sub), "%s/run-1", fx->dir);
    snprintf(subsub, sizeof(subsub), "%s/qemu", sub);
    snprintf(path, sizeof(path), "%s/chan.sock", subsub);
    start(fx, path, 10000, 10000, 10000);
    RUN_UNTIL(fx, fx->disconnects == 1, 5000);
    uint64_t t0 = uv_now(&fx->loop);
    assert_int_equal(mkdir(sub, 0700), 0);
    uv_run(&fx->loop, UV_RUN_NOWAIT); /* the watch moves down one folder, or not yet */
    assert_int_equal(mkdir(subsub, 0700), 0);
    listen_at(fx, path);
    RUN_UNTIL(fx, fx->connects == 1, 5000);
    assert_true(fx->connect_ms - t0 < 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(accept_and_close_backs_off, setup, teardown),
        cmocka_unit_test_setup_teardown(healthy_link_resets_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(socket_appearing_is_noticed_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(folder_made_with_the_socket, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
