/* A guest's bytes never reach a log line raw: the decoder's detail (jansson quotes the
 * bytes near a syntax error) is escaped before on_first_reject and last_error see it. */
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

#include "host-daemon/channel/guest_channel.h"

struct fx {
    uv_loop_t loop;
    uv_timer_t guard;
    bool guard_fired;
    char dir[256], path[300];
    uv_pipe_t server, peer;
    bool accepted;
    struct guest_channel *gc;
    int rejects;
    char reason[64], detail[512];
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

static void on_connection(uv_stream_t *server, int status)
{
    struct fx *fx = server->data;
    assert_int_equal(status, 0);
    uv_pipe_init(&fx->loop, &fx->peer, 0);
    assert_int_equal(uv_accept(server, (uv_stream_t *)&fx->peer), 0);
    fx->accepted = true;
}

static void on_message(struct guest_channel *gc, const struct bp_msg *msg, void *opaque)
{
    (void)gc;
    (void)msg;
    (void)opaque;
}

static void on_link(struct guest_channel *gc, bool connected, int err, void *opaque)
{
    (void)gc;
    (void)connected;
    (void)err;
    (void)opaque;
}

static void on_first_reject(struct guest_channel *gc, const char *reason, const char *detail,
                            void *opaque)
{
    (void)gc;
    struct fx *fx = opaque;
    fx->rejects++;
    snprintf(fx->reason, sizeof(fx->reason), "%s", reason);
    snprintf(fx->detail, sizeof(fx->detail), "%s", detail);
}

static void noop_close(uv_handle_t *h)
{
    (void)h;
}

static void assert_printable(const char *s)
{
    for (const char *p = s; *p; p++)
        if (*p < 0x20 || *p >= 0x7f)
            fail_msg("byte 0x%02x at %zu in \"%s\"", (unsigned char)*p, (size_t)(p - s), s);
}

static void decoder_detail_is_escaped(void **state)
{
    (void)state;
    struct fx fx = {0};
    const char *tmp = getenv("TMPDIR");
    assert_int_equal(uv_loop_init(&fx.loop), 0);
    uv_timer_init(&fx.loop, &fx.guard);
    fx.guard.data = &fx;
    snprintf(fx.dir, sizeof(fx.dir), "%s/bellows-gct-XXXXXX", tmp && *tmp ? tmp : P_tmpdir);
    assert_non_null(mkdtemp(fx.dir));
    snprintf(fx.path, sizeof(fx.path), "%s/chan.sock", fx.dir);
    uv_pipe_init(&fx.loop, &fx.server, 0);
    fx.server.data = &fx;
    assert_int_equal(uv_pipe_bind(&fx.server, fx.path), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&fx.server, 4, on_connection), 0);

    struct guest_channel_limits lim = {
        .frame_rate = 100, .frame_burst = 100, .byte_rate = 65536, .byte_burst = 65536};
    struct bp_welcome welcome = {.protocol_version = 1};
    struct guest_channel_callbacks cbs = {
        .on_message = on_message, .on_link = on_link, .on_first_reject = on_first_reject};
    assert_int_equal(guest_channel_new(&fx.loop, fx.path, &lim, &welcome, &cbs, &fx, &fx.gc), 0);
    RUN_UNTIL(&fx, fx.accepted, 5000);

    /* A frame whose syntax error sits on a terminal escape and a forged log line. */
    static const char frame[] = "\x1e{\"v\":1,\x1b[2J\x1b[31m\rbellowsd: error: forged}\n";
    uv_buf_t b = uv_buf_init((char *)frame, sizeof(frame) - 1);
    assert_int_equal(uv_try_write((uv_stream_t *)&fx.peer, &b, 1), (int)sizeof(frame) - 1);
    RUN_UNTIL(&fx, fx.rejects == 1, 5000);

    assert_string_equal(fx.reason, "json");
    assert_printable(fx.detail);
    assert_non_null(strstr(fx.detail, "\\x1b")); /* the byte is named, not sent */
    const struct guest_channel_stats *st = guest_channel_stats(fx.gc);
    assert_int_equal(st->invalid, 1);
    assert_printable(st->last_error);
    assert_non_null(strstr(st->last_error, "json: "));

    guest_channel_close(fx.gc);
    uv_close((uv_handle_t *)&fx.peer, noop_close);
    uv_close((uv_handle_t *)&fx.server, noop_close);
    uv_close((uv_handle_t *)&fx.guard, noop_close);
    uv_run(&fx.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&fx.loop), 0);
    unlink(fx.path);
    rmdir(fx.dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decoder_detail_is_escaped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
