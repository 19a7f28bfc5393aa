/* qmp-probe: drive a real QEMU's balloon with the bellows QMP client and report what
 * happens, one line per fact on stdout, for tests/qmp/qemu-balloon.sh.
 *
 *   qmp-probe SOCKET TARGET_BYTES [--expect-actual BYTES] [--timeout-ms MS]
 *             [--then-reconnect]
 *
 * Connects, waits for ready (the client has read the balloon), optionally checks the
 * actual size it read, sends `balloon` with TARGET_BYTES, and waits for a BALLOON_CHANGE
 * whose actual size is TARGET_BYTES; then confirms with query-balloon. With
 * --then-reconnect it prints "waiting-reconnect" and stays connected until QEMU goes
 * away and the client is ready again (on a new QEMU), printing that ready line.
 * Exit 0 when all of it happened within the timeout, 1 otherwise. Times are the loop's,
 * in ms. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host-daemon/qmp/qmp.h"

struct probe {
    uv_loop_t *loop;
    struct qmp_client *c;
    uv_timer_t deadline;
    int64_t target;
    int64_t expect_actual; /* -1: any */
    uint64_t t_start, t_sent, t_first_change;
    bool sent;
    bool reached;
    bool then_reconnect;
    bool waiting_reconnect;
    uint64_t t_disconnect;
    int status; /* exit code once finished */
};

static void finish(struct probe *p, int status)
{
    p->status = status;
    uv_timer_stop(&p->deadline);
    uv_close((uv_handle_t *)&p->deadline, NULL);
    qmp_client_close(p->c, NULL);
}

static void on_query(struct qmp_client *c, const struct qmp_result *res, void *opaque)
{
    struct probe *p = opaque;
    (void)c;
    if (res->status < 0) {
        fprintf(stderr, "qmp-probe: query-balloon failed: %s\n", strerror(-res->status));
        finish(p, 1);
        return;
    }
    printf("query actual=%" PRId64 "\n", res->actual_bytes);
    if (res->actual_bytes != p->target) {
        finish(p, 1);
    } else if (p->then_reconnect) {
        p->waiting_reconnect = true;
        printf("waiting-reconnect\n");
        fflush(stdout);
    } else {
        finish(p, 0);
    }
}

static void on_balloon_done(struct qmp_client *c, const struct qmp_result *res, void *opaque)
{
    struct probe *p = opaque;
    (void)c;
    if (res->status < 0) {
        fprintf(stderr, "qmp-probe: balloon failed: %s %s %s\n", strerror(-res->status),
                res->error_class ? res->error_class : "", res->error_desc ? res->error_desc : "");
        finish(p, 1);
        return;
    }
    printf("balloon accepted ms=%" PRIu64 "\n", uv_now(p->loop) - p->t_sent);
    fflush(stdout);
}

static void on_ready(struct qmp_client *c, int64_t actual, void *opaque)
{
    struct probe *p = opaque;
    int r;

    printf("ready actual=%" PRId64 " ms=%" PRIu64 "\n", actual, uv_now(p->loop) - p->t_start);
    fflush(stdout);
    if (p->waiting_reconnect && p->t_disconnect) {
        printf("reconnected actual=%" PRId64 " ms_since_disconnect=%" PRIu64 "\n", actual,
               uv_now(p->loop) - p->t_disconnect);
        finish(p, 0);
        return;
    }
    if (p->sent) {
        fprintf(stderr, "qmp-probe: reconnected mid-test\n");
        finish(p, 1);
        return;
    }
    if (p->expect_actual >= 0 && actual != p->expect_actual) {
        fprintf(stderr, "qmp-probe: read actual %" PRId64 ", expected %" PRId64 "\n", actual,
                p->expect_actual);
        finish(p, 1);
        return;
    }
    p->t_sent = uv_now(p->loop);
    p->sent = true;
    r = qmp_client_set_balloon(c, p->target, on_balloon_done, p);
    if (r < 0) {
        fprintf(stderr, "qmp-probe: set_balloon: %s\n", strerror(-r));
        finish(p, 1);
        return;
    }
    printf("balloon sent target=%" PRId64 "\n", p->target);
    fflush(stdout);
}

static void on_change(struct qmp_client *c, int64_t actual, void *opaque)
{
    struct probe *p = opaque;
    uint64_t ms = uv_now(p->loop) - p->t_sent;

    if (!p->sent || p->reached)
        return;
    if (!p->t_first_change)
        p->t_first_change = uv_now(p->loop);
    printf("change actual=%" PRId64 " ms=%" PRIu64 "\n", actual, ms);
    fflush(stdout);
    if (actual == p->target) {
        p->reached = true;
        printf("reached actual=%" PRId64 " ms=%" PRIu64 " first_change_ms=%" PRIu64 "\n", actual,
               ms, p->t_first_change - p->t_sent);
        fflush(stdout);
        if (qmp_client_query_balloon(c, on_query, p) < 0)
            finish(p, 1);
    }
}

static void on_disconnect(struct qmp_client *c, int err, const char *reason, bool was_ready,
                          void *opaque)
{
    struct probe *p = opaque;
    (void)c;
    if (p->waiting_reconnect && !p->t_disconnect) {
        p->t_disconnect = uv_now(p->loop);
        printf("disconnected err=%d reason=%s\n", err, reason);
        fflush(stdout);
    }
    fprintf(stderr, "qmp-probe: disconnected (%s, %s)%s\n", strerror(-err), reason,
            was_ready ? " after ready" : "");
}

static void on_deadline(uv_timer_t *t)
{
    struct probe *p = t->data;
    fprintf(stderr, "qmp-probe: timed out (%s)\n",
            !p->sent               ? "never ready"
            : p->waiting_reconnect ? "no reconnect"
                                   : "target not reached");
    finish(p, 1);
}

static int64_t parse_size(const char *s)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v <= 0) {
        fprintf(stderr, "qmp-probe: bad number: %s\n", s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    struct probe p = {.loop = uv_default_loop(), .expect_actual = -1, .status = 1};
    uint64_t timeout_ms = 60000;
    const struct qmp_callbacks cbs = {
        .on_ready = on_ready, .on_balloon_change = on_change, .on_disconnect = on_disconnect};
    int r;

    if (argc < 3) {
        fprintf(stderr,
                "usage: %s SOCKET TARGET_BYTES [--expect-actual BYTES] "
                "[--timeout-ms MS] [--then-reconnect]\n",
                argv[0]);
        return 2;
    }
    p.target = parse_size(argv[2]);
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--then-reconnect") == 0)
            p.then_reconnect = true;
        else if (strcmp(argv[i], "--expect-actual") == 0 && i + 1 < argc)
            p.expect_actual = parse_size(argv[++i]);
        else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc)
            timeout_ms = (uint64_t)parse_size(argv[++i]);
        else {
            fprintf(stderr, "qmp-probe: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    r = qmp_client_new(p.loop, argv[1], NULL, &cbs, &p, &p.c);
    if (r < 0) {
        fprintf(stderr, "qmp-probe: %s: %s\n", argv[1], strerror(-r));
        return 1;
    }
    uv_timer_init(p.loop, &p.deadline);
    p.deadline.data = &p;
    uv_timer_start(&p.deadline, on_deadline, timeout_ms, 0);
    p.t_start = uv_now(p.loop);
    qmp_client_start(p.c);
    uv_run(p.loop, UV_RUN_DEFAULT);
    uv_loop_close(p.loop);
    return p.status;
}
