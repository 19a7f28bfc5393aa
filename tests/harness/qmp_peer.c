/* A scripted QMP monitor (qmp_peer.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <cmocka.h>

#include "tests/harness/qmp_peer.h"

#define MIB (INT64_C(1) << 20)

/* One message and its CRLF, as QEMU ends its lines. */
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
    int written = uv_try_write((uv_stream_t *)&p->client, &b, 1);
    if (p->strict)
        assert_int_equal(written, (int)(len + 2));
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

static void answer_balloon(struct qmp_peer *p, json_t *msg, json_t *id)
{
    if (p->balloons < 64)
        p->balloon_ms[p->balloons] = uv_now(p->loop);
    p->balloons++;
    p->last_balloon =
        json_integer_value(json_object_get(json_object_get(msg, "arguments"), "value"));
    if (p->mode == QMP_REFUSE_BALLOON) {
        peer_send(p, json_pack("{s{ssss}sO}", "error", "class", "GenericError", "desc",
                               "balloon refused by the test", "id", id));
    } else if (p->mode == QMP_VANISH_ON_MOVE) {
        peer_send(p, json_pack("{s{}sO}", "return", "id", id));
        peer_hangup(p); /* QEMU killed before the balloon moved */
    } else {
        peer_send(p, json_pack("{s{}sO}", "return", "id", id));
        p->actual = p->last_balloon;
        peer_send(p, json_pack("{ss s{sI} s{sIsI}}", "event", "BALLOON_CHANGE", "data", "actual",
                               (json_int_t)p->actual, "timestamp", "seconds", (json_int_t)1,
                               "microseconds", (json_int_t)0));
    }
}

static void peer_line(struct qmp_peer *p, const char *line, size_t len)
{
    json_t *msg = json_loadb(line, len, 0, NULL);
    assert_non_null(msg);
    const char *cmd = json_string_value(json_object_get(msg, "execute"));
    json_t *id = json_object_get(msg, "id");
    assert_non_null(cmd);
    if (strcmp(cmd, "query-balloon") == 0) {
        p->queries++;
        peer_send(p, json_pack("{s{sI}sO}", "return", "actual", (json_int_t)p->actual, "id", id));
    } else if (strcmp(cmd, "balloon") == 0) {
        answer_balloon(p, msg, id);
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

/* Line by line, until the peer hangs up (QMP_VANISH_ON_MOVE) in the middle. */
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

/* The previous connection's close callback must have run before its handle is reused;
 * a daemon that dialled again before this peer saw it go replaces it (unless strict). */
static void drop_previous(struct qmp_peer *p)
{
    if (p->strict)
        assert_false(p->connected);
    while (p->client_closing)
        uv_run(p->loop, UV_RUN_ONCE);
    peer_hangup(p);
    while (p->client_closing)
        uv_run(p->loop, UV_RUN_ONCE);
}

static void peer_connection(uv_stream_t *server, int status)
{
    struct qmp_peer *p = server->data;
    assert_int_equal(status, 0);
    drop_previous(p);
    uv_pipe_init(p->loop, &p->client, 0);
    p->client.data = p;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&p->client), 0);
    p->accepts++;
    p->connected = true;
    p->len = 0;
    if (p->mode != QMP_NO_GREETING)
        peer_send(p, json_pack("{s{s{s{sisisi}ss}s[s]}}", "QMP", "version", "qemu", "micro", 0,
                               "minor", 2, "major", 7, "package", "", "capabilities", "oob"));
    uv_read_start((uv_stream_t *)&p->client, peer_alloc, peer_read);
}

void qmp_peer_init(struct qmp_peer *p, uv_loop_t *loop, const char *dir, const char *file,
                   enum qmp_mode mode)
{
    memset(p, 0, sizeof(*p));
    p->loop = loop;
    snprintf(p->path, sizeof(p->path), "%s/%s", dir, file);
    p->mode = mode;
    p->actual = 512 * MIB;
}

void qmp_peer_listen(struct qmp_peer *p)
{
    uv_pipe_init(p->loop, &p->server, 0);
    p->server.data = p;
    assert_int_equal(uv_pipe_bind(&p->server, p->path), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&p->server, 4, peer_connection), 0);
}
