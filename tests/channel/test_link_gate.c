/* The process's link gate: connects in flight and open links bounded, waiters admitted in
 * order as places free, a waiter that leaves loses its place; and many real host channels
 * through it: never more open than allowed, every one connected in the end. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>
#include <cmocka.h>

#include "virtio/host_channel.h"
#include "virtio/link_gate.h"

struct link {
    struct link_gate_waiter w;
    int admitted;
};

static void on_admit(struct link_gate_waiter *w)
{
    ((struct link *)w)->admitted++;
}

static void bounds_and_order(void **state)
{
    (void)state;
    struct link_gate g = {0};
    struct link l[6];
    memset(l, 0, sizeof(l));
    link_gate_set_limits(&g, 2, 3);
    assert_true(link_gate_enter(&g, &l[0].w, on_admit));
    assert_true(link_gate_enter(&g, &l[1].w, on_admit));
    assert_false(link_gate_enter(&g, &l[2].w, on_admit)); /* two in flight already */
    assert_false(link_gate_enter(&g, &l[3].w, on_admit));
    assert_false(link_gate_enter(&g, &l[3].w, on_admit)); /* asking twice keeps one place */
    assert_int_equal(g.queued, 2);
    link_gate_connected(&g); /* l0 open: one in flight, two open: l2 may go */
    assert_int_equal(l[2].admitted, 1);
    assert_int_equal(l[3].admitted, 0);
    link_gate_connected(&g); /* l1 open: in flight 1, open 3 = max_open: l3 waits */
    assert_int_equal(l[3].admitted, 0);
    link_gate_failed(&g); /* l2 failed: open 2 */
    assert_int_equal(l[3].admitted, 1);
    assert_int_equal(g.open, 3);
    /* a newcomer while someone waits goes behind, even when there would be room */
    assert_false(link_gate_enter(&g, &l[4].w, on_admit));
    assert_false(link_gate_enter(&g, &l[5].w, on_admit));
    link_gate_leave(&g, &l[4].w); /* closed while waiting: its place goes */
    link_gate_leave(&g, &l[4].w);
    link_gate_closed(&g); /* l0 closed: room for one more */
    assert_int_equal(l[4].admitted, 0);
    assert_int_equal(l[5].admitted, 1);
    assert_int_equal(g.queued, 0);
    /* no limits: everyone in */
    link_gate_set_limits(&g, 0, 0);
    assert_true(link_gate_enter(&g, &l[4].w, on_admit));
    assert_int_equal(g.waited, 4);
}

/* Raising the limits lets waiters in at once. */
static void limits_raised(void **state)
{
    (void)state;
    struct link_gate g = {0};
    struct link l[3];
    memset(l, 0, sizeof(l));
    link_gate_set_limits(&g, 1, 0);
    assert_true(link_gate_enter(&g, &l[0].w, on_admit));
    assert_false(link_gate_enter(&g, &l[1].w, on_admit));
    assert_false(link_gate_enter(&g, &l[2].w, on_admit));
    link_gate_set_limits(&g, 3, 0);
    assert_int_equal(l[1].admitted + l[2].admitted, 2);
}

/* ---- real channels through the shared gate ---- */

#define N 40
#define MAX_OPEN 10

static uv_loop_t loop;
static uv_pipe_t servers[N], clients[N];
static int accepted;
static bool was_accepted[N];
static int connected_now, connected_max, connects;

static void on_connection(uv_stream_t *server, int status)
{
    assert_int_equal(status, 0);
    int i = (int)((uv_pipe_t *)server - servers);
    uv_pipe_init(&loop, &clients[i], 0);
    assert_int_equal(uv_accept(server, (uv_stream_t *)&clients[i]), 0);
    was_accepted[i] = true;
    accepted++;
}

static void cb_connect(struct host_channel *ch, void *opaque)
{
    (void)ch;
    (void)opaque;
    connects++;
    if (++connected_now > connected_max)
        connected_max = connected_now;
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
    (void)ch;
    (void)err;
    (void)opaque;
    if (was_connected)
        connected_now--;
}

static void noop(uv_handle_t *h)
{
    (void)h;
}

static void many_channels(void **state)
{
    (void)state;
    char dir[128], path[N][200];
    struct host_channel *ch[N];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/bellows-gate-XXXXXX", tmp && *tmp ? tmp : P_tmpdir);
    assert_non_null(mkdtemp(dir));
    assert_int_equal(uv_loop_init(&loop), 0);
    for (int i = 0; i < N; i++) {
        snprintf(path[i], sizeof(path[i]), "%s/c%d.sock", dir, i);
        uv_pipe_init(&loop, &servers[i], 0);
        assert_int_equal(uv_pipe_bind(&servers[i], path[i]), 0);
        assert_int_equal(uv_listen((uv_stream_t *)&servers[i], 4, on_connection), 0);
    }
    link_gate_set_limits(link_gate_shared(), 3, MAX_OPEN);
    struct host_channel_callbacks cbs = {
        .on_connect = cb_connect, .on_data = cb_data, .on_disconnect = cb_disconnect};
    struct host_channel_config cfg = {.backoff_min_ms = 10, .backoff_max_ms = 50};
    for (int i = 0; i < N; i++) {
        assert_int_equal(host_channel_new(&loop, path[i], &cfg, &cbs, NULL, &ch[i]), 0);
        assert_int_equal(host_channel_start(ch[i]), 0);
    }
    while (connects < MAX_OPEN)
        uv_run(&loop, UV_RUN_ONCE);
    for (int i = 0; i < 20; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(connected_now, MAX_OPEN); /* the others wait for a place */
    assert_int_equal(link_gate_shared()->queued, N - MAX_OPEN);
    /* close the open ones: the waiting ones get in, a batch at a time */
    int closed = 0;
    while (connects < N) {
        for (int i = 0; i < N && closed < connects; i++) {
            if (ch[i] && host_channel_connected(ch[i])) {
                host_channel_close(ch[i], NULL);
                ch[i] = NULL;
                connected_now--;
                closed++;
            }
        }
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_true(connected_max <= MAX_OPEN);
    for (int i = 0; i < N; i++)
        if (ch[i])
            host_channel_close(ch[i], NULL);
    for (int i = 0; i < N; i++) {
        uv_close((uv_handle_t *)&servers[i], noop);
        if (was_accepted[i])
            uv_close((uv_handle_t *)&clients[i], noop);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    /* every place given back */
    assert_int_equal(link_gate_shared()->open, 0);
    assert_int_equal(link_gate_shared()->in_flight, 0);
    assert_int_equal(link_gate_shared()->queued, 0);
    link_gate_set_limits(link_gate_shared(), 0, 0);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bounds_and_order),
        cmocka_unit_test(limits_raised),
        cmocka_unit_test(many_channels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
