/* The HTTP server alone (libmicrohttpd on a libuv loop) with a handler made for the test,
 * over real TCP on 127.0.0.1: replies and their headers, read-only methods, unknown paths,
 * oversized headers, the connection limit, a slow client timed out, event streams (an
 * event delivered at once, the stream limit, a client that never reads cut off while the
 * others go on), and close with streams open.
 *
 * The loop runs in a thread of its own, as bellowsd's does; the test talks to it over
 * sockets only, and asks it to broadcast or report through a uv_async (run_on_loop). */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>
#include <cmocka.h>

#include "host-daemon/http/http_server.h"
#include "host-daemon/http/sse.h"

#define WAIT_MS 5000 /* any single awaited reply; far above what it takes */

static uv_loop_t loop;
static uv_async_t async;
static pthread_t loop_thread;
static struct http_server *server;
static uint16_t port;
static unsigned handler_calls;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static void (*pending_fn)(void *);
static void *pending_arg;
static bool pending_done;

/* ---- the server side, on the loop thread ---- */

static void handler(void *opaque, const struct http_request *req, struct http_reply *r)
{
    (void)opaque;
    handler_calls++;
    if (strcmp(req->path, "/hello") == 0) {
        r->status = 200;
        r->content_type = "text/plain";
        r->body = "hi";
        r->len = 2;
        r->body_static = true;
        return;
    }
    if (strcmp(req->path, "/arg") == 0) {
        const char *v = http_request_arg(req, "since");
        http_reply_json(r, 200, json_pack("{ss}", "since", v ? v : "(none)"));
        return;
    }
    if (strcmp(req->path, "/stream") == 0) {
        r->status = 200;
        r->content_type = "text/event-stream";
        r->body = "retry: 1000\n\n";
        r->len = strlen(r->body);
        r->body_static = true;
        r->stream = true;
        return;
    }
    if (strcmp(req->path, "/silent") == 0)
        return; /* a handler bug: the server answers 500 */
    http_reply_error(r, 404, "no such path: %s", req->path);
}

/* What the server says: warnings counted (a dropped stream says so), details shown when
 * HTTP_TEST_DEBUG is set. */
static unsigned warnings;
static void on_log(void *opaque, bool warning, const char *msg)
{
    (void)opaque;
    warnings += warning;
    if (warning || getenv("HTTP_TEST_DEBUG"))
        fprintf(stderr, "http: %s\n", msg);
}

static void on_async(uv_async_t *a)
{
    (void)a;
    pthread_mutex_lock(&lock);
    if (pending_fn && !pending_done) {
        pending_fn(pending_arg);
        pending_done = true;
        pthread_cond_broadcast(&cond);
    }
    pthread_mutex_unlock(&lock);
}

/* Call fn(arg) on the loop thread and wait for it. */
static void run_on_loop(void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&lock);
    pending_fn = fn;
    pending_arg = arg;
    pending_done = false;
    uv_async_send(&async);
    while (!pending_done)
        pthread_cond_wait(&cond, &lock);
    pending_fn = NULL;
    pthread_mutex_unlock(&lock);
}

static void broadcast_fn(void *arg)
{
    const char *text = arg;
    http_server_broadcast(server, text, strlen(text));
}

static void broadcast(const char *text)
{
    run_on_loop(broadcast_fn, (void *)text);
}

static void stats_fn(void *arg)
{
    *(struct http_server_stats *)arg = *http_server_stats(server);
}

static struct http_server_stats stats(void)
{
    struct http_server_stats s;
    run_on_loop(stats_fn, &s);
    return s;
}

static void close_fn(void *arg)
{
    (void)arg;
    http_server_close(server);
    uv_close((uv_handle_t *)&async, NULL);
    server = NULL;
}

static void *loop_main(void *arg)
{
    (void)arg;
    uv_run(&loop, UV_RUN_DEFAULT);
    return NULL;
}

static int setup(void **state)
{
    (void)state;
    struct http_server_limits lim;
    http_server_limits_default(&lim);
    lim.max_clients = 8;
    lim.max_streams = 3;
    lim.stream_queue_bytes = 64 * 1024;
    lim.timeout_s = 1;
    lim.request_s = 2;
    lim.request_memory = 8 * 1024;
    struct netaddr addr = {.enabled = true, .addr_len = sizeof(struct sockaddr_in)};
    struct sockaddr_in *sin = (struct sockaddr_in *)&addr.addr;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    snprintf(addr.text, sizeof(addr.text), "127.0.0.1:0");
    char err[200];
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(uv_async_init(&loop, &async, on_async), 0);
    int r = http_server_start(&loop, &addr, &lim, handler, on_log, NULL, &server, err, sizeof(err));
    if (r < 0)
        fail_msg("http_server_start: %s", err);
    port = http_server_port(server);
    assert_true(port > 0);
    assert_int_equal(pthread_create(&loop_thread, NULL, loop_main, NULL), 0);
    return 0;
}

static int open_stream(void);
static size_t read_until(int fd, char *buf, size_t cap, const char *until, bool *closed);

static int teardown(void **state)
{
    (void)state;
    /* Closing with a stream open (suspended, waiting for events) ends it cleanly. */
    int fd = open_stream();
    run_on_loop(close_fn, NULL);
    char buf[256];
    bool closed;
    read_until(fd, buf, sizeof(buf), NULL, &closed);
    assert_true(closed);
    close(fd);
    pthread_join(loop_thread, NULL);
    /* Every handle closed and freed: the loop closes cleanly. */
    assert_int_equal(uv_loop_close(&loop), 0);
    return 0;
}

/* ---- the client side, on the test's thread ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int connect_server(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    return fd;
}

static void send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return; /* the server may close early (an error reply): reading tells */
        data += n;
        len -= (size_t)n;
    }
}

/* Read until the text holds `until` (or the peer closes, or WAIT_MS); returns bytes held.
 * closed is set when the peer closed. */
static size_t read_until(int fd, char *buf, size_t cap, const char *until, bool *closed)
{
    size_t len = 0;
    int64_t deadline = now_ms() + WAIT_MS;
    *closed = false;
    buf[0] = '\0';
    while (len + 1 < cap && (!until || !strstr(buf, until))) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            *closed = true;
            break;
        }
        len += (size_t)n;
        buf[len] = '\0';
    }
    return len;
}

static int status_of(const char *reply)
{
    int status = 0;
    if (sscanf(reply, "HTTP/1.%*d %d", &status) != 1)
        return 0;
    return status;
}

/* One request on a fresh connection with Connection: close; the whole reply. */
static char *request(const char *text)
{
    int fd = connect_server();
    send_all(fd, text, strlen(text));
    char *buf = malloc(1 << 16);
    bool closed;
    read_until(fd, buf, 1 << 16, NULL, &closed);
    close(fd);
    return buf;
}

static void get_ok(void **state)
{
    (void)state;
    char *reply = request("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_int_equal(status_of(reply), 200);
    assert_non_null(strstr(reply, "Content-Type: text/plain"));
    assert_non_null(strstr(reply, "X-Content-Type-Options: nosniff"));
    assert_non_null(strstr(reply, "Cache-Control: no-store"));
    assert_non_null(strstr(reply, "\r\n\r\nhi"));
    free(reply);

    reply = request("GET /arg?since=123 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_non_null(strstr(reply, "{\"since\":\"123\"}"));
    free(reply);

    /* HEAD: the same headers, no body. */
    reply = request("HEAD /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_int_equal(status_of(reply), 200);
    assert_null(strstr(reply, "\r\n\r\nhi"));
    free(reply);
}

static void read_only(void **state)
{
    (void)state;
    unsigned before = handler_calls;
    char *reply = request("POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                          "Connection: close\r\n\r\nabcde");
    assert_int_equal(status_of(reply), 405);
    assert_non_null(strstr(reply, "Allow: GET, HEAD"));
    assert_non_null(strstr(reply, "read-only"));
    free(reply);
    reply = request("DELETE /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_int_equal(status_of(reply), 405);
    free(reply);
    /* A large body announced: answered at once, never read into memory. */
    reply = request("PUT /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n");
    assert_int_equal(status_of(reply), 405);
    free(reply);
    assert_int_equal(handler_calls, before); /* the handler was never asked */
}

static void errors(void **state)
{
    (void)state;
    char *reply = request("GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_int_equal(status_of(reply), 404);
    assert_non_null(strstr(reply, "Content-Type: application/json"));
    assert_non_null(strstr(reply, "{\"error\":\"no such path: /nope\"}"));
    free(reply);
    reply = request("GET /silent HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_int_equal(status_of(reply), 500);
    free(reply);
    /* Not HTTP at all. */
    reply = request("\x01\x02garbage\r\n\r\n");
    assert_true(status_of(reply) == 400 || reply[0] == '\0');
    free(reply);
}

static void oversized_headers(void **state)
{
    (void)state;
    size_t big = 32 * 1024;
    char *text = malloc(big + 200);
    int n = snprintf(text, 200, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(text + n, 'a', big);
    strcpy(text + n + big, "\r\nConnection: close\r\n\r\n");
    char *reply = request(text);
    int status = status_of(reply);
    /* MHD's answer to a request that does not fit the connection's memory. */
    if (status != 431 && status != 413 && status != 414)
        fail_msg("oversized headers: status %d, reply: %.200s", status, reply);
    free(reply);
    free(text);
    /* A long URL too. */
    text = malloc(big + 200);
    n = snprintf(text, 200, "GET /");
    memset(text + n, 'u', big);
    strcpy(text + n + big, " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    reply = request(text);
    status = status_of(reply);
    if (status != 414 && status != 431 && status != 413)
        fail_msg("long URL: status %d", status);
    free(reply);
    free(text);
    /* And the server goes on. */
    reply = request("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_int_equal(status_of(reply), 200);
    free(reply);
}

static void slow_client_timed_out(void **state)
{
    (void)state;
    int fd = connect_server();
    send_all(fd, "GET /hel", 8); /* and nothing more */
    int64_t t0 = now_ms();
    char buf[256];
    bool closed;
    read_until(fd, buf, sizeof(buf), NULL, &closed);
    int64_t took = now_ms() - t0;
    close(fd);
    assert_true(closed);
    /* timeout_s is 1: closed after about a second, not held. */
    assert_true(took >= 900 && took < 4000);
}

/* Never silent, never done: one byte every 200 ms. The idle timeout (1 s) never fires;
 * the request deadline (2 s) does. */
static void dripping_client_cut(void **state)
{
    (void)state;
    uint64_t cut = stats().connections_cut;
    int fd = connect_server();
    const char *text =
        "GET /hello HTTP/1.1\r\nHost: x\r\nX-Drip: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    int64_t t0 = now_ms();
    bool closed = false;
    for (size_t i = 0; i < strlen(text) && !closed; i++) {
        send(fd, text + i, 1, MSG_NOSIGNAL);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 200) == 1) {
            char buf[256];
            closed = recv(fd, buf, sizeof(buf), 0) <= 0;
        }
    }
    int64_t took = now_ms() - t0;
    close(fd);
    assert_true(closed);
    assert_true(took >= 1800 && took < 5000);
    assert_int_equal(stats().connections_cut, cut + 1);
}

static void connection_limit(void **state)
{
    (void)state;
    enum { N = 20 };
    int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = connect_server();
    /* The kernel completes every handshake; MHD holds at most max_clients (8) of them and
     * leaves the rest in the listen queue. Idle ones are closed after timeout_s (1 s), and
     * the queued ones taken in turn: a second later the server still holds at most 8. */
    for (int round = 0; round < 3; round++) {
        usleep(500000);
        struct http_server_stats s = stats();
        assert_true(s.connections_open <= 8);
        assert_true(s.connections_peak <= 8);
    }
    assert_int_equal(stats().connections_peak, 8);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    /* Room again once they are gone. */
    int64_t deadline = now_ms() + WAIT_MS;
    for (;;) {
        char *reply = request("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        int status = status_of(reply);
        free(reply);
        if (status == 200)
            break;
        assert_true(now_ms() < deadline);
    }
}

static int open_stream(void)
{
    int fd = connect_server();
    const char *req = "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n";
    send_all(fd, req, strlen(req));
    char buf[1024];
    bool closed;
    read_until(fd, buf, sizeof(buf), "retry: 1000", &closed);
    if (closed)
        fail_msg("stream closed: %s", buf);
    assert_int_equal(status_of(buf), 200);
    assert_non_null(strstr(buf, "Content-Type: text/event-stream"));
    return fd;
}

/* Closed streams are noticed when written to: broadcast until every one is gone. */
static void wait_streams_closed(void)
{
    int64_t deadline = now_ms() + WAIT_MS;
    while (stats().streams_open > 0) {
        broadcast(": ping\n\n");
        assert_true(now_ms() < deadline);
        usleep(20000);
    }
}

static void stream_delivers_at_once(void **state)
{
    (void)state;
    int fd = open_stream();
    char event[64];
    sse_format(event, sizeof(event), "sample", "{\"n\":1}", 7);
    int64_t t0 = now_ms();
    broadcast(event);
    char buf[1024];
    bool closed;
    read_until(fd, buf, sizeof(buf), "data: {\"n\":1}", &closed);
    assert_non_null(strstr(buf, "event: sample\n"));
    assert_true(now_ms() - t0 < 500);
    /* A second one after the stream was parked again. */
    sse_format(event, sizeof(event), "decision", "{\"n\":2}", 7);
    broadcast(event);
    read_until(fd, buf, sizeof(buf), "data: {\"n\":2}", &closed);
    assert_non_null(strstr(buf, "data: {\"n\":2}"));
    close(fd);
    wait_streams_closed();
}

static void stream_limit(void **state)
{
    (void)state;
    int a = open_stream(), b = open_stream(), c = open_stream();
    char *reply = request("GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_int_equal(status_of(reply), 503);
    assert_non_null(strstr(reply, "Retry-After: 10"));
    free(reply);
    close(a);
    close(b);
    close(c);
    wait_streams_closed();
    /* The slots are free again. */
    a = open_stream();
    close(a);
    wait_streams_closed();
}

static void stream_that_never_reads(void **state)
{
    (void)state;
    struct http_server_stats before = stats();
    int good = open_stream();
    int bad = connect_server();
    int small = 4096;
    setsockopt(bad, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    const char *req = "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n";
    send_all(bad, req, strlen(req));
    /* Wait until the server counts both streams. */
    int64_t deadline = now_ms() + WAIT_MS;
    while (stats().streams_open < before.streams_open + 2)
        assert_true(now_ms() < deadline);

    /* 1 MiB of events against a 64 KiB queue: the bad client is cut off, the good one,
     * which reads, gets every event. */
    char data[1000], event[1100];
    memset(data, 'x', sizeof(data) - 1);
    data[sizeof(data) - 1] = '\0';
    size_t len = sse_format(event, sizeof(event), "sample", data, strlen(data));
    char *buf = malloc(1 << 16);
    size_t got = 0;
    for (int i = 0; i < 1024; i++) {
        broadcast(event);
        /* Drain the good client as a browser would. */
        struct pollfd p = {.fd = good, .events = POLLIN};
        while (poll(&p, 1, 0) == 1) {
            ssize_t n = recv(good, buf, 1 << 16, 0);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
    }
    bool closed;
    /* The rest of the good client's events. */
    while (got < 1024 * len) {
        size_t n = read_until(good, buf, 1 << 16, NULL, &closed);
        if (n == 0 || closed)
            break;
        got += n;
    }
    struct http_server_stats after = stats();
    assert_int_equal(after.streams_dropped, before.streams_dropped + 1);
    assert_true(warnings >= 1); /* and it said so */
    /* Chunked framing adds a little to each write; every event arrived. */
    assert_true(got >= 1024 * len);
    free(buf);
    close(bad);
    close(good);
    wait_streams_closed();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(get_ok),
        cmocka_unit_test(read_only),
        cmocka_unit_test(errors),
        cmocka_unit_test(oversized_headers),
        cmocka_unit_test(slow_client_timed_out),
        cmocka_unit_test(dripping_client_cut),
        cmocka_unit_test(connection_limit),
        cmocka_unit_test(stream_delivers_at_once),
        cmocka_unit_test(stream_limit),
        cmocka_unit_test(stream_that_never_reads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
