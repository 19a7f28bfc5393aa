/* A fake QEMU chardev (fake_chardev.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/harness/fake_chardev.h"

static void sink_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char sink[4096]; /* what the daemon writes to its agent is not looked at */
    *buf = uv_buf_init(sink, sizeof(sink));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct fake_chardev *c = s->data;
    if (nread < 0 && c->connected) {
        c->connected = false;
        uv_close((uv_handle_t *)&c->client, NULL);
    }
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

/* Accepted and closed on its own pipe, so c->client (and connected) stay untouched. */
static void accept_and_close(uv_stream_t *server)
{
    uv_pipe_t *p = malloc(sizeof(*p));
    uv_pipe_init(server->loop, p, 0);
    assert_int_equal(uv_accept(server, (uv_stream_t *)p), 0);
    uv_close((uv_handle_t *)p, free_handle);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct fake_chardev *c = server->data;
    assert_int_equal(status, 0);
    c->accepts++;
    if (c->close_at_once) {
        accept_and_close(server);
        return;
    }
    uv_pipe_init(server->loop, &c->client, 0);
    c->client.data = c;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&c->client), 0);
    c->connected = true;
    uv_read_start((uv_stream_t *)&c->client, sink_alloc, on_read);
}

void fake_chardev_listen(struct fake_chardev *c, uv_loop_t *loop, const char *dir, const char *file,
                         int backlog)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->path, sizeof(c->path), "%s/%s", dir, file);
    uv_pipe_init(loop, &c->server, 0);
    c->server.data = c;
    assert_int_equal(uv_pipe_bind(&c->server, c->path), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&c->server, backlog, on_connection), 0);
}

void fake_chardev_close(struct fake_chardev *c)
{
    if (c->connected)
        uv_close((uv_handle_t *)&c->client, NULL);
    c->connected = false;
    uv_close((uv_handle_t *)&c->server, NULL);
}

void fake_chardev_send(struct fake_chardev *c, const struct bp_msg *msg)
{
    char frame[BP_MAX_FRAME];
    size_t len;
    assert_int_equal(bp_encode(msg, frame, sizeof(frame), &len), BP_OK);
    uv_buf_t b = uv_buf_init(frame, (unsigned)len);
    assert_int_equal(uv_try_write((uv_stream_t *)&c->client, &b, 1), (int)len);
}
